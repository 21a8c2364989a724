"""utils.course (`make course`): runs notebooks, collects [result] lines, reports failures, exits non-zero."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nbformat
import pytest

from utils import course

SETUP = "from utils import runtime\nprint(runtime.describe(runtime.get_device('cpu')))"
REPORT = "runtime.report_result('answer', 42.5, 'nats')\nruntime.report_result('fast_flag', float(runtime.is_fast()))"


def write_notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def course_run(tmp_path_factory):
    """One --fast run over a folder with a good notebook and a failing one."""
    root = tmp_path_factory.mktemp("course")
    lectures = root / "lectures"
    lectures.mkdir()
    write_notebook(lectures / "01_good.ipynb", SETUP, REPORT)
    write_notebook(lectures / "02_broken.ipynb", "raise ValueError('deliberately broken')")
    out = root / "build"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = course.main(["--fast", "--lectures", str(lectures), "--out", str(out), "--timeout", "120"])
    return code, stdout.getvalue(), out


def row_of(text: str, name: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| {name} |")]
    assert rows, f"no table row for {name} in:\n{text}"
    return rows[0]


def test_results_of_a_notebook_reach_its_table_row(course_run):
    _, stdout, _ = course_run
    row = row_of(stdout, "01_good")
    assert "| ok |" in row, f"the good notebook is not reported ok: {row}"
    assert "answer = 42.5 nats" in row, f"the [result] line was not collected: {row}"
    assert "| cpu |" in row, f"the device from runtime.describe is missing: {row}"


def test_fast_flag_reaches_the_kernel(course_run):
    _, stdout, _ = course_run
    assert "fast_flag = 1" in row_of(stdout, "01_good"), "--fast did not set DIGM_FAST=1 in the kernel"


def test_a_failing_notebook_is_a_row_and_the_exit_code_is_nonzero(course_run):
    code, stdout, _ = course_run
    row = row_of(stdout, "02_broken")
    assert "failed: ValueError: deliberately broken" in row, f"failure not reported: {row}"
    assert code == 1, f"exit code {code} after a failing notebook; expected 1"


def test_results_md_and_executed_notebooks_are_written(course_run):
    _, stdout, out = course_run
    text = (out / "results.md").read_text()
    assert row_of(stdout, "01_good") in text, "results.md lacks the table printed on stdout"
    assert "FAST" in text and "1 failed (02_broken)" in text, f"results.md header is off:\n{text}"
    executed = nbformat.read(out / "01_good.ipynb", as_version=4)
    assert executed.cells[1].outputs, "the executed copy carries no outputs"


def test_only_keeps_notebooks_by_prefix(tmp_path):
    for name in ("01_a.ipynb", "02_b.ipynb", "03_c.ipynb"):
        write_notebook(tmp_path / name, "1")
    picked = [p.name for p in course.find_lectures(tmp_path, ["01", "03"])]
    assert picked == ["01_a.ipynb", "03_c.ipynb"], f"--only 01 03 picked {picked}"


def test_only_numbered_lectures_are_run(tmp_path):
    for name in ("01_a.ipynb", "Untitled.ipynb", ".hidden.ipynb"):
        write_notebook(tmp_path / name, "1")
    picked = [p.name for p in course.find_lectures(tmp_path)]
    assert picked == ["01_a.ipynb"], f"a scratch notebook would be run by make course: {picked}"


def test_no_matching_notebook_exits_with_a_message(tmp_path, capsys):
    code = course.main(["--lectures", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 2 and "No notebook" in capsys.readouterr().err
