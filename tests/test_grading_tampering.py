"""tools.grading.tampering: answer cells that reach into the tests are named for review, honest ones are not."""

from __future__ import annotations

import nbformat
import pytest

from tools.grading.report import SubmissionResult
from tools.grading.tampering import suspicious_lines

LOCKED = (
    "import torch\nfrom utils import checks\n\n\n"
    "def require_calls(fn, name):\n    return fn\n"
)
HONEST = (
    "import math\nimport torch.nn.functional as F\n\n\n"
    "class Model:\n    def __init__(self, k):\n        self.k = k  # an attribute of its own object\n\n\n"
    "def answer(x):\n    mu = x.mean(0)\n    out = torch.logsumexp(x, 0) - math.log(x.shape[0])\n"
    "    return F.softplus(out) + mu.sum()\n"
)


def notebook(answer: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    locked = nbformat.v4.new_code_cell(LOCKED)
    locked.metadata["nbgrader"] = {"grade_id": "setup", "locked": True, "solution": False, "grade": False}
    cell = nbformat.v4.new_code_cell(answer)
    cell.metadata["nbgrader"] = {"grade_id": "my_answer", "locked": False, "solution": True, "grade": False}
    nb.cells = [locked, cell]
    return nb


def test_an_honest_answer_is_not_flagged():
    assert suspicious_lines(notebook(HONEST)) == [], "honest code must cost no review"


@pytest.mark.parametrize(
    ("attack", "named"),
    [
        ("checks.check_close = lambda *a, **k: None", "changes checks.check_close"),
        ("torch.allclose = lambda *a, **k: True", "changes torch.allclose"),
        ("del checks.check_shape", "changes checks.check_shape"),
        ("for n in dir(checks):\n    setattr(checks, n, print)", "calls setattr()"),
        ("def require_calls(fn, name):\n    return fn", "redefines 'require_calls'"),
        ("require_calls = print", "rebinds 'require_calls'"),
        ("import gc", "imports gc"),
        ("import sys\nsys.modules['utils.checks'] = None", "uses sys.modules"),
        ("answer = print\nanswer.__code__ = (lambda: 0).__code__", "reaches into __code__"),
        ("exec('checks.check_close = print')", "calls exec()"),
        ("globals()['require_calls'] = print", "calls globals()"),
    ],
)
def test_each_way_of_reaching_into_the_tests_is_named_with_its_line(attack, named):
    found = suspicious_lines(notebook(HONEST + "\n" + attack + "\n"))
    assert any(named in line and line.startswith("my_answer line ") for line in found), (
        f"{attack!r} should be named ({named!r}); found {found}"
    )


def test_a_flagged_submission_is_marked_for_review_in_the_report():
    result = SubmissionResult(student="s", assignment="a", graded=True, score=3, max_score=5)
    result.tampering = suspicious_lines(notebook("checks.check_close = print\n"))
    assert result.notes.startswith("REVIEW, answer cells reach into the tests: my_answer line 1"), result.notes
    assert result.score == 3, "a finding marks for review; it changes no score"
