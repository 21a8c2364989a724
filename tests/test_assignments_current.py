"""The committed student versions in assignments/ are what `make release` makes from solutions/."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tools.grading import release

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "solutions").glob("*/*.ipynb"))
RELEASED = sorted((ROOT / "assignments").glob("*/*.ipynb"))


@pytest.mark.grading
def test_assignments_are_up_to_date_with_solutions():
    problems = release.out_of_date()
    assert not problems, "assignments/ is out of date; run `make release` and commit it:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_student_version_holds_no_solution_or_hidden_test(path):
    text = path.read_text()
    for marker in (
        "BEGIN SOLUTION",
        "END SOLUTION",
        "BEGIN HIDDEN TESTS",
        "END HIDDEN TESTS",
        "Model answer",
    ):
        assert marker not in text, f"{path} contains {marker!r}: it was edited by hand or released wrongly"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_assignment_is_worth_20_to_40_points_with_written_answers(path):
    graded = [
        c for c in nbformat.read(path, as_version=4).cells if c.metadata.get("nbgrader", {}).get("grade")
    ]
    written = sum(c.metadata["nbgrader"]["points"] for c in graded if c.cell_type == "markdown")
    total = sum(c.metadata["nbgrader"]["points"] for c in graded)
    assert 20 <= total <= 40, f"{path.name} is worth {total} points; the course plans 20 to 40 per assignment"
    assert written > 0, f"{path.name} has no manually graded written answer"
