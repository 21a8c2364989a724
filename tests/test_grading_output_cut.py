"""Cutting huge outputs keeps nbgrader's grade and costs no time (no kernel: outputs made by hand).

The autograder cuts a cell's outputs past ``c.GradingSandbox.output_chars`` while they arrive
(tools/grading/execute.py). nbgrader scores a test cell by its first error, stderr stream or
execute_result, after dropping stderr that matches IgnorePattern; each case here compares that
score on the full outputs with the score on the cut ones.
"""

from __future__ import annotations

import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_output

from tools.grading import config
from tools.grading.execute import VERDICT_CHARS, CellBudget, cut_note, ignored_stderr, output_chars
from tools.grading.sandbox import GradingSandbox

pytestmark = pytest.mark.grading

LIMIT = GradingSandbox().output_chars


def _graded(outputs: list, cfg) -> tuple:
    """nbgrader's score of a 2-point test cell with ``outputs``, after its IgnorePattern step."""
    from nbgrader.preprocessors import IgnorePattern
    from nbgrader.utils import determine_grade

    cell = new_code_cell("check()", outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": 2, "grade_id": "t"}
    cell, _ = IgnorePattern(config=cfg).preprocess_cell(cell, {}, 0)
    return determine_grade(cell)


def _stream(name: str, text: str):
    return new_output("stream", name=name, text=text)


FLOOD = _stream("stdout", "y" * (2 * LIMIT))
CUT_CASES = {
    "error after the flood": [FLOOD, new_output("error", ename="AssertionError", evalue="no", traceback=[])],
    "warning after the flood": [FLOOD, _stream("stderr", "x.py:1: UserWarning: harmless\n")],
    "stderr after the flood": [FLOOD, _stream("stderr", "something broke\n")],
    "partial credit after the flood": [FLOOD, new_output("execute_result", data={"text/plain": "0.5"})],
    "real stderr after a flood of warnings": [
        _stream("stderr", "UserWarning: " + "w" * 2 * LIMIT),
        _stream("stderr", "real trouble\n"),
    ],
    "huge error": [new_output("error", ename="ValueError", evalue="v" * 3 * LIMIT, traceback=["t" * LIMIT])],
    "images then partial credit": [
        *[new_output("display_data", data={"image/png": "i" * (LIMIT // 3)}) for _ in range(5)],
        new_output("execute_result", data={"text/plain": "1.5"}),
    ],
    "second error after the cut": [
        FLOOD,
        new_output("error", ename="E", evalue="1", traceback=[]),
        new_output("error", ename="E", evalue="2", traceback=[]),
    ],
}


@pytest.mark.parametrize("case", sorted(CUT_CASES))
def test_output_cut_keeps_the_grade_nbgrader_gives(case):
    cfg = config.course_config()
    outputs = CUT_CASES[case]
    budget = CellBudget(LIMIT, ignored_stderr(cfg))
    cut = [kept for out in nbformat.from_dict(outputs) for kept in budget.admit(out)]
    assert _graded(cut, cfg) == _graded(nbformat.from_dict(outputs), cfg), (
        f"{case}: cutting the output changed the grade; kept {[o.output_type for o in cut]}"
    )
    assert sum(output_chars(o) for o in cut) <= LIMIT + 3 * VERDICT_CHARS + 100, f"{case}: not cut"
    assert any(cut_note(LIMIT) == o.get("text") for o in cut), f"{case}: the cut carries no note"


def test_a_stderr_flood_is_cut_and_judged_in_well_under_a_second():
    """nbgrader's IgnorePattern runs a regular expression over every kept stderr output: the
    course's pattern must take linear time (the former one, led by a run of word characters, took
    17 s on 100,000 letters)."""
    from nbgrader.preprocessors import IgnorePattern

    cfg = config.course_config()
    flood = [_stream("stderr", "a" * LIMIT), _stream("stderr", "b" * LIMIT)]
    start = time.monotonic()
    budget = CellBudget(LIMIT, ignored_stderr(cfg))
    cell = new_code_cell("check()", outputs=[kept for out in flood for kept in budget.admit(out)])
    IgnorePattern(config=cfg).preprocess_cell(cell, {}, 0)
    seconds = time.monotonic() - start
    assert seconds < 1, f"cutting and judging {2 * LIMIT:,} letters of stderr took {seconds:.1f} s"
