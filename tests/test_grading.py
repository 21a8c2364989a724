"""The grading pipeline end to end: real nbgrader and real kernels in a temporary course directory.

One course per module: copies of solutions/, the committed assignments/ and nbgrader_config.py, plus
submissions made from the solutions by small programmatic edits (a flipped KL sign, a missing sum, a
detached sample, a mean instead of logsumexp, an infinite loop, a failing import, edited test cells, a
crashing kernel). a1 is graded through the Python API, a2 through the command line; each test then
checks one property of the outcome. Two a1 submissions are then replaced (one by hand with an older
file date, one through collect) and a1 graded again. DIGM_FAST=1 keeps the training runs to seconds.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import csv
import datetime as dt
import functools
import html
import io
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from tools.grading import autograde, collect, config, validate
from tools.grading.__main__ import main as grading_command
from tools.grading.report import SubmissionResult

pytestmark = pytest.mark.grading

ROOT = Path(__file__).resolve().parent.parent
A1, A2 = "a1_estimators", "a2_vae"
A1_TIMEOUT = 15  # seconds per cell for a1: its slowest cell takes 1-3 s, the infinite loop all of it


def _replace(old: str, new: str):
    """An edit that swaps one piece of a cell's source; it fails loudly if the piece is gone."""

    def edit(source: str) -> str:
        assert old in source, f"the solution no longer contains {old!r}; update this test's mutation"
        return source.replace(old, new)

    return edit


def _prepend(text: str):
    return lambda source: text + source


def _append(text: str):
    return lambda source: source + text


# The rebinding attack of issue 14: the first answer cell turns every function of utils.checks (and any
# check*/require* helper of the notebook) into a no-op and makes torch's and math's comparisons agree with
# anything; the answers are well-formed zeros (the documented types and shapes), so only a check can fail them.
_REBIND_THE_CHECKS = """import math

import torch

import utils.checks
from utils.checks import estimators, gradients, report, values


def _passes(*args, **kwargs):
    return None


for _module in (utils.checks, estimators, gradients, report, values):
    for _name, _value in list(vars(_module).items()):
        if callable(_value) and not isinstance(_value, type) and not _name.startswith("__"):
            setattr(_module, _name, _passes)
for _name, _value in list(globals().items()):
    if _name.startswith(("check", "require")) and callable(_value) and not isinstance(_value, type):
        globals()[_name] = _passes
torch.isclose = lambda *args, **kwargs: torch.ones((), dtype=torch.bool)
torch.allclose = math.isclose = lambda *args, **kwargs: True


"""
_ZEROS = "torch.zeros(n, mu.shape[-1], device=mu.device, dtype=mu.dtype)"
_ZERO_ANSWERS = {
    "a1_log_prob_answer": "def gaussian_log_prob(z, mu, L):\n    return z[..., 0] * 0\n",
    "a1_sf_answer": "def score_function_estimates(f, mu, log_sigma, n, baseline_mu=0.0, baseline_log_sigma=0.0, "
    f"generator=None):\n    return {_ZEROS}, {_ZEROS}\n",
    "a1_optimal_answer": "def optimal_baselines(f, mu, log_sigma, n, generator=None):\n    return mu * 0, mu * 0\n",
    "a1_rp_answer": f"def reparam_estimates(f, mu, log_sigma, n, generator=None):\n    return {_ZEROS}, {_ZEROS}\n",
    "a1_var_answer": "def predicted_variances(D):\n    return 0.0, 0.0\n",
    "a1_entropy_answer": "def gaussian_entropy(L):\n    return (L * 0).sum()\n",
    "a1_elbo_answer": "def bbvi_elbo(log_p, mu, L, n, generator=None):\n    gaussian_entropy(L)\n"
    "    return (mu * 0).sum() + (L * 0).sum()\n",
}


def _tampered_checks() -> dict:
    edits = {cell: (lambda source, new=new: new) for cell, new in _ZERO_ANSWERS.items()}
    edits["a1_log_prob_answer"] = lambda source: _REBIND_THE_CHECKS + _ZERO_ANSWERS["a1_log_prob_answer"]
    return edits


def _test_cells(assignment: str) -> set[str]:
    nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    }


# A submission that tampers instead of answering (issue 14). Every answer cell first rebinds every function of
# utils.checks, and every helper of the notebook named check*/require*, to a no-op, the grader's own
# comparisons (_ref* in the set-up cell) to a stand-in that reports "within tolerance", and pair_of so that it
# lets anything through; then each of its functions returns its first argument. Such answers fail every a2 test
# on their own (0 of 26 points), so any point this submission gets is earned by tampering. Before a2's test cells
# re-checked with comparisons of their own, the first two rebindings alone earned 20 of its 26 test points (and
# 20 of 35 on a1).
_TAMPER = """import sys as _sys


def _no_op(*args, **kwargs):
    return None


def _within(*args, **kwargs):
    return 0.0


for _name, _module in list(_sys.modules.items()):
    if _name == "utils.checks" or _name.startswith("utils.checks."):
        for _attr in dir(_module):
            if callable(getattr(_module, _attr)) and not isinstance(getattr(_module, _attr), type):
                setattr(_module, _attr, _no_op)
for _name, _value in list(globals().items()):
    if callable(_value) and _name.startswith(("check", "require")):
        globals()[_name] = _no_op
    elif callable(_value) and _name.startswith("_ref"):
        globals()[_name] = _within
pair_of = lambda result, *args: (result, result)  # so that the visible tests run on to their silenced checks

"""


def _tampered(source: str) -> str:
    """An answer cell rewritten by the tamperer: the rebinding above, then every function returning its first
    argument."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            node.body = [ast.Return(ast.Name(node.args.args[0].arg, ast.Load()))]
    return _TAMPER + ast.unparse(ast.fix_missing_locations(tree))


A2_ANSWERS = ("a2_reparam_answer", "a2_kl_answer", "a2_bll_answer", "a2_laplace_answer", "a2_elbo_answer",
              "a2_iwae_answer", "a2_logw_answer", "a2_isll_answer")

# student -> edits of the solved notebook ({cell id: edit}); None = the untouched student version.
SUBMISSIONS = {
    A1: {
        "solved": {},
        "untouched": None,
        "missing_sum": {"a1_log_prob_answer": _replace(").sum(-1)", ")")},
        "detached": {"a1_elbo_answer": _replace("z = mu + eps @ L.T", "z = (mu + eps @ L.T).detach()")},
        "loop": {"a1_var_answer": _append("\n\n\nwhile True:  # an experiment left running\n    pass\n")},
        "tampered": {
            "a1_sf_answer": _replace(
                "return (fz - baseline_mu) * eps / sigma", "return -(fz - baseline_mu) * eps / sigma"
            ),
            "a1_sf_test_unbiased": lambda source: "pass",
            "a1_sf_test_baseline": lambda source: "print('all good')",
        },
        "tampered_checks": _tampered_checks(),
    },
    A2: {
        "solved": {},
        "untouched": None,
        "kl_sign": {"a2_kl_answer": _replace("return 0.5 *", "return -0.5 *")},
        "iwae_mean": {
            "a2_iwae_answer": _replace("bound = log_sum - math.log(log_w.shape[0])", "bound = log_w.mean(0)")
        },
        "import_error": {"a2_iwae_answer": _prepend("import no_such_module\n\n")},
        "dies": {"a2_reparam_answer": _prepend("import os\n\nos._exit(1)\n")},
        "tampered_checks": dict.fromkeys(A2_ANSWERS, _tampered),
    },
}

# The test cells each mistake should cost, and nothing else.
EXPECTED_LOST = {
    (A1, "missing_sum"): {"a1_log_prob_test", "a1_log_prob_test_tril", "a1_log_prob_hidden"},
    (A1, "detached"): {
        "a1_elbo_test_grad_flows",
        "a1_elbo_test_grad",
        "a1_elbo_hidden",
        "a1_fit_test",
        "a1_fit_test_full",
    },
    (A1, "loop"): set(),
    (A1, "tampered"): {"a1_sf_test_unbiased", "a1_sf_test_baseline", "a1_sf_hidden"},
    # Tampering earns nothing: every test cell, the hidden ones included, is lost (an honest submission of the
    # same zeros would keep the two shape tests and the self-consistency of Part 4).
    (A1, "tampered_checks"): _test_cells(A1),
    (A2, "kl_sign"): {"a2_kl_test_values", "a2_kl_hidden", "a2_train_hidden"},
    (A2, "iwae_mean"): {"a2_iwae_test_stable", "a2_iwae_hidden"},
    (A2, "import_error"): {
        "a2_iwae_test_equal",
        "a2_iwae_test_stable",
        "a2_iwae_test_ess",
        "a2_iwae_hidden",
    },
}


def _notebook(root: Path, folder: str, assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(root / folder / assignment / f"{assignment}.ipynb", as_version=4)


def _answer_text(source: str) -> str:
    """A solution cell as a student would leave it: the solution markers gone."""
    return "\n".join(
        line for line in source.split("\n") if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line
    )


# a1 students whose submissions the `regraded` fixture replaces; their first versions answer only
# these cells (every code answer would cost a training run each time they are graded).
FIRST_VERSIONS = {"replaced": set(), "resubmits": {"a1_var_written", "a1_kl_written", "a1_sf_written"}}


def make_submission(
    root: Path, assignment: str, edits: dict | None, *, answered: set[str] | None = None
) -> nbformat.NotebookNode:
    """The student version with every answer (or those in ``answered``) filled in from the solutions,
    then ``edits`` applied."""
    nb = copy.deepcopy(_notebook(root, "assignments", assignment))
    if edits is None:
        return nb
    sources = {cell.id: cell.source for cell in _notebook(root, "solutions", assignment).cells}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution") and (answered is None or cell.id in answered):
            source = sources[cell.id]
            cell.source = _answer_text(source) if cell.cell_type == "code" else "My answer. " + source[:200]
    for cell_id, edit in edits.items():
        (cell,) = [c for c in nb.cells if c.id == cell_id]
        cell.source = edit(cell.source)
    return nb


def _unsafe_flag(unsafe: bool) -> list[str]:
    """``--unsafe`` where this machine cannot run the grading sandbox (see conftest)."""
    return ["--unsafe"] if unsafe else []


@dataclass
class Course:
    root: Path
    a1: dict[str, SubmissionResult]
    a2_exit_code: int
    a2_stdout: str
    a2_stderr: str


@pytest.fixture(scope="module")
def fast_kernels():
    """Kernels inherit the environment: FAST mode, and one thread each so two test workers do not fight."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGM_FAST", "1")
        mp.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def course(tmp_path_factory, fast_kernels, grading_unsafe) -> Course:
    root = tmp_path_factory.mktemp("course")
    for folder in ("solutions", "assignments"):
        shutil.copytree(ROOT / folder, root / folder)
    shutil.copy(ROOT / config.CONFIG_FILE, root)
    for assignment, students in SUBMISSIONS.items():
        for student, edits in students.items():
            folder = root / "grading" / "submitted" / student / assignment
            folder.mkdir(parents=True)
            nbformat.write(make_submission(root, assignment, edits), folder / f"{assignment}.ipynb")
    for student, answered in FIRST_VERSIONS.items():
        folder = root / "grading" / "submitted" / student / A1
        folder.mkdir(parents=True)
        nbformat.write(make_submission(root, A1, {}, answered=answered), folder / f"{A1}.ipynb")
    a1 = {
        r.student: r
        for r in autograde.grade([A1], root=root, timeout=A1_TIMEOUT, unsafe=grading_unsafe, echo=False)
    }
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = grading_command(["grade", A2, "--root", str(root), *_unsafe_flag(grading_unsafe)])
    return Course(root, a1, code, out.getvalue(), err.getvalue())


def cell_scores(root: Path, assignment: str, student: str) -> dict[str, tuple[float | None, float]]:
    """grade cell -> (auto score, max score), from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    cfg = config.course_config(root)
    with Gradebook(cfg.CourseDirectory.db_url) as gb:
        (notebook,) = gb.find_submission(assignment, student).notebooks
        return {g.name: (g.auto_score, float(g.max_score)) for g in notebook.grades}


def grade_one_assignment(tmp_path, assignment: str, submissions: dict, unsafe: bool) -> dict[str, SubmissionResult]:
    """A course in ``tmp_path`` with ``assignment``'s solution and release and one submission per student
    (``submissions``: student -> edits, as ``make_submission`` takes), graded once by the autograder."""
    for folder in ("solutions", "assignments"):
        shutil.copytree(ROOT / folder / assignment, tmp_path / folder / assignment)
    shutil.copy(ROOT / config.CONFIG_FILE, tmp_path)
    for student, edits in submissions.items():
        folder = tmp_path / "grading" / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(make_submission(tmp_path, assignment, edits), folder / f"{assignment}.ipynb")
    return {r.student: r for r in autograde.grade([assignment], root=tmp_path, unsafe=unsafe, echo=False)}


def auto_points(scores: dict) -> dict:
    """The auto-graded cells of ``cell_scores``: the written answers (``*_written``) left out."""
    return {name: s for name, s in scores.items() if not name.endswith("_written")}


def visible_error(root: Path, assignment: str, student: str, grade_id: str) -> str:
    """The error message a graded test cell showed (hidden part included: the autograded notebook)."""
    nb = nbformat.read(root / "grading" / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return "\n".join(o.get("evalue", "") for o in cell.outputs if o.output_type == "error")


def assert_solution_passes_its_tests(assignment: str) -> None:
    """The instructor's source passes every visible and hidden test cell (nbgrader's validate)."""
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    results = validate.validate(path)
    failed = [cell["source"].splitlines()[0] for cell in results.get("failed", [])]
    assert results == {}, f"{path.name}: the instructor solution fails test cells starting {failed}"


@pytest.mark.parametrize("assignment", [A1, A2])
def test_solution_source_passes_every_visible_and_hidden_test(fast_kernels, assignment):
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    results = validate.validate(path)  # nbgrader's Validator API: {} when every test cell passes
    failed = [cell["source"].splitlines()[0] for cell in results.get("failed", [])]
    assert results == {}, f"{path.name}: the instructor solution fails test cells starting {failed}"


@pytest.mark.parametrize("assignment", [A1, A2])
def test_solved_submission_gets_every_test_point(course, assignment):
    scores = cell_scores(course.root, assignment, "solved")
    short = {name: s for name, s in scores.items() if not name.endswith("_written") and s[0] != s[1]}
    assert not short, f"{assignment}: a submission of the solutions loses points in {short}"
    written = {name: s for name, s in scores.items() if name.endswith("_written")}
    assert written and all(auto is None for auto, _ in written.values()), (
        f"{assignment}: written answers should wait for a human grader, got {written}"
    )


@pytest.mark.parametrize("assignment", [A1, A2])
def test_untouched_release_scores_zero(course, assignment):
    scores = cell_scores(course.root, assignment, "untouched")
    assert scores and all(auto == 0 for auto, _ in scores.values()), (
        f"{assignment}: the untouched student version should score 0 everywhere, got {scores}"
    )
    assert (course.root / "grading" / "autograded" / "untouched" / assignment).is_dir(), (
        f"{assignment}: the untouched submission was not graded (nbgrader failed on it)"
    )


@pytest.mark.parametrize(("assignment", "student"), sorted(EXPECTED_LOST))
def test_mistake_loses_exactly_the_points_of_its_tests(course, assignment, student):
    scores = cell_scores(course.root, assignment, student)
    lost = {name for name, (auto, most) in scores.items() if not name.endswith("_written") and auto != most}
    expected = EXPECTED_LOST[(assignment, student)]
    assert lost == expected, (
        f"{assignment}/{student}: lost points in {sorted(lost)}, expected exactly {sorted(expected)}; "
        "a test that is not independent of the other answers, or a mistake the tests miss"
    )


def test_tampering_with_the_checks_earns_no_test_point(course):
    scores = cell_scores(course.root, A2, "tampered_checks")
    tests = {name: s for name, s in scores.items() if not name.endswith("_written")}
    assert len(tests) >= 20, f"the tampering submission was not graded as a whole: {sorted(scores)}"
    earned = {name: auto for name, (auto, _) in tests.items() if auto}
    assert not earned, (
        f"a2: a submission that rebinds utils.checks and the grader's comparisons, and answers nothing, earned "
        f"{earned}; every test cell must check its property with comparisons taken before any answer runs"
    )


def test_answers_that_reach_into_the_tests_are_marked_for_review_and_honest_ones_are_not(course):
    flagged = course.a1["tampered_checks"]
    assert flagged.tampering and flagged.notes.startswith("REVIEW, answer cells reach into the tests"), (
        f"a1: the rebinding answers should be marked for review in report.csv; notes: {flagged.notes!r}"
    )
    honest = {s: r.tampering for s, r in course.a1.items() if s != "tampered_checks" and r.tampering}
    assert not honest, f"a1: answers that only answer were marked for review: {honest}"
    rows = {line.split()[1]: line for line in course.a2_stdout.splitlines() if line.startswith(f"{A2} ")}
    assert "REVIEW, answer cells reach into the tests" in rows.get("tampered_checks", ""), (
        f"a2: the console table should mark the rebinding submission; it printed {rows}"
    )
    assert not [s for s, line in rows.items() if s != "tampered_checks" and "REVIEW" in line], rows


def test_infinite_loop_hits_the_timeout_and_grading_goes_on(course):
    result = course.a1["loop"]
    assert result.graded, f"the looping submission was not graded: {result.error}"
    assert result.timed_out_cells == ["a1_var_answer"], (
        f"expected one timeout, in the cell with the loop; got {result.timed_out_cells} "
        f"(per-cell timeout {A1_TIMEOUT} s)"
    )


def test_edited_locked_cells_are_restored_and_flagged(course):
    assert course.a1["tampered"].edited_locked_cells == ["a1_sf_test_baseline", "a1_sf_test_unbiased"], (
        "the two edited test cells should be reported (and restored, which the lost points above show)"
    )
    falsely_flagged = {
        s: r.edited_locked_cells for s, r in course.a1.items() if s != "tampered" and r.edited_locked_cells
    }
    assert not falsely_flagged, (
        f"submissions that edited nothing were flagged: {falsely_flagged}; the hidden-test checksum "
        "false alarm (nbgrader issue #1961) is back"
    )


def test_dead_kernel_fails_that_submission_and_the_others_are_graded(course):
    assert course.a2_exit_code == 1, "grade should exit 1 when a submission could not be graded"
    assert re.search(r"dies / a2_vae: the kernel died", course.a2_stderr), (
        f"the summary should name the failed submission and why, got:\n{course.a2_stderr}"
    )
    graded = {p.name for p in (course.root / "grading" / "autograded").iterdir() if (p / A2).is_dir()}
    assert graded == set(SUBMISSIONS[A2]) - {"dies"}, f"graded a2 submissions: {sorted(graded)}"


def _hidden_lines(root: Path, assignment: str) -> set[str]:
    """Stripped lines of every hidden test block that appear nowhere in the student version."""
    released = "\n".join(cell.source for cell in _notebook(root, "assignments", assignment).cells)
    visible = {line.strip() for line in released.splitlines()}
    lines = set()
    for cell in _notebook(root, "solutions", assignment).cells:
        inside = False
        for line in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
                inside = "BEGIN" in line
                lines.add(line.strip())
            elif inside and line.strip() and line.strip() not in visible:
                lines.add(line.strip())
    return lines


def _html_lines(path: Path) -> set[str]:
    """The stripped text lines of an HTML page (tags removed, entities decoded): code keeps its lines."""
    return {line.strip() for line in html.unescape(re.sub(r"<[^>]+>", "", path.read_text())).splitlines()}


@pytest.mark.parametrize("assignment", [A1, A2])
def test_feedback_shows_no_line_of_any_hidden_test(course, assignment):
    hidden = _hidden_lines(course.root, assignment)
    visible_test = next(
        line.strip()
        for cell in _notebook(course.root, "assignments", assignment).cells
        if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code"
        for line in cell.source.splitlines()
        if line.strip() and not line.startswith("#")
    )
    feedback = sorted((course.root / "grading" / "feedback").glob(f"*/{assignment}/{assignment}.html"))
    assert len(feedback) >= 5, f"expected feedback for every graded {assignment} submission, found {feedback}"
    for path in feedback:
        lines = _html_lines(path)
        assert visible_test in lines, (
            f"{path}: the visible tests should be in the feedback (text extraction broken?)"
        )
        leaked = sorted(hidden & lines)
        assert not leaked, f"{path} shows hidden test lines: {leaked[:3]}"


def test_grades_csv_has_a_row_per_submission(course):
    with open(course.root / "grading" / "grades.csv", newline="") as fh:
        rows = {(r["assignment"], r["student_id"]): float(r["score"]) for r in csv.DictReader(fh)}
    expected = {(a, s) for a, students in SUBMISSIONS.items() for s in students}
    assert expected <= set(rows), f"missing rows in grades.csv: {sorted(expected - set(rows))}"
    assert rows[(A1, "solved")] == rows[(A2, "solved")] == 26.0, (
        f"auto-graded scores of the solutions: {rows}"
    )


def test_grading_warns_that_feedback_shows_zero_for_written_answers_not_yet_graded(course):
    assert "written answers not yet graded: feedback shows 0 for them" in course.a2_stdout, (
        f"make grade should warn before feedback with ungraded written answers goes out; it printed:\n"
        f"{course.a2_stdout}"
    )
    assert re.search(r"a2_vae / solved: a2_\w+_written", course.a2_stdout), (
        "the warning should name the submission and its ungraded written cells"
    )


def test_feedback_wraps_long_output_lines(course):
    page = (course.root / "grading" / "feedback" / "solved" / A1 / f"{A1}.html").read_text()
    styles = "\n".join(re.findall(r"<style[^>]*>(.*?)</style>", page, flags=re.DOTALL))
    assert re.search(r"(^|[\s,}])pre\s*\{[^}]*white-space:\s*pre-wrap", styles), (
        "the feedback CSS should wrap <pre> output, or a long error message scrolls off to the right; "
        "is WrappedFeedbackCSS still in GenerateFeedback.preprocessors (nbgrader_config.py)?"
    )


def test_validate_command_exits_non_zero_when_a_test_fails(course, capsys):
    path = course.root / "grading" / "submitted" / "untouched" / A1 / f"{A1}.ipynb"
    assert grading_command(["validate", str(path)]) == 1, (
        "validate should exit 1 on the untouched student version"
    )
    out = capsys.readouterr().out
    assert "TEST CELL(S) FAIL" in out and "NotImplementedError" in out, f"validate printed:\n{out}"


def _one_test_cell_notebook(path: Path, source: str) -> Path:
    """A notebook holding one 1-point test cell with ``source``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "only_test",
        "locked": True,
        "points": 1,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nb.cells = [cell]
    nbformat.write(nb, path)
    return path


def test_validate_passes_a_test_cell_that_only_prints_a_warning(tmp_path):
    # The autograder gives such a cell its points (IgnorePattern), so validate must not call it failed.
    path = _one_test_cell_notebook(tmp_path / "warns.ipynb", "import warnings\nwarnings.warn('harmless')")
    results = validate.validate(path)
    assert results == {}, f"a passing test cell that printed a UserWarning was reported: {results}"


def test_validate_still_fails_a_test_cell_that_warns_and_raises(tmp_path):
    source = "import warnings\nwarnings.warn('harmless')\nassert 1 + 1 == 3, 'wrong sum'"
    results = validate.validate(_one_test_cell_notebook(tmp_path / "fails.ipynb", source))
    assert len(results.get("failed", [])) == 1, (
        f"the failing cell was not reported (are errors filtered with the warnings?): {results}"
    )


def _lab_validate(notebook: Path) -> dict:
    """What JupyterLab's Validate button reports: the code of nbgrader's server handler behind it,
    without the web server around it. Like `make lab`, the server runs in the repository, where the
    handler looks for nbgrader_config.py (the caller changes into it)."""
    from nbgrader.server_extensions.validate_assignment.handlers import ValidateAssignmentHandler

    handler = SimpleNamespace(root_dir=str(notebook.parent), log=logging.getLogger("lab-validate"))
    handler.load_config = functools.partial(ValidateAssignmentHandler.load_config, handler)
    reply = ValidateAssignmentHandler.validate_notebook(handler, notebook.name)
    assert reply["success"], f"the Validate handler crashed:\n{reply['value']}"
    return reply["value"]


def test_lab_validate_button_passes_a_test_cell_that_only_prints_a_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    source = "import warnings\nwarnings.warn('harmless')"
    results = _lab_validate(_one_test_cell_notebook(tmp_path / "warns.ipynb", source))
    assert results == {}, (
        "JupyterLab's Validate button reports a passing test cell that printed a UserWarning, which "
        "the autograder gives full points (does nbgrader_config.py still send the Validator's "
        f"warnings to stdout?): {results}"
    )


def test_lab_validate_button_still_fails_a_test_cell_that_warns_and_raises(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    source = "import warnings\nwarnings.warn('harmless')\nassert 1 + 1 == 3, 'wrong sum'"
    results = _lab_validate(_one_test_cell_notebook(tmp_path / "fails.ipynb", source))
    assert len(results.get("failed", [])) == 1, f"the Validate button missed the failing cell: {results}"


def _grade_metadata(grade_id: str, points: float, *, solution: bool = False, locked: bool = True) -> dict:
    return {
        "grade": True,
        "grade_id": grade_id,
        "locked": locked,
        "points": points,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }


@pytest.fixture(scope="module")
def small_validation(tmp_path_factory) -> tuple[int, str]:
    """`validate` on a small notebook: an unwritten answer that a locked cell calls (so a test fails
    with a NameError), a passing test, a hidden-test cell, an empty written answer. (exit code, output)"""
    from nbgrader.utils import compute_checksum

    v4 = nbformat.v4
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        v4.new_markdown_cell("## Part 1 · Sums\n\nWrite `add`."),
        v4.new_code_cell("def add(a, b):\n    raise NotImplementedError()"),
        v4.new_code_cell("total = add(1, 2)"),
        v4.new_code_cell("# Visible test: the sum is right.\nassert total == 3"),
        v4.new_code_cell("# Visible test: arithmetic works.\nassert 1 + 1 == 2"),
        v4.new_code_cell("# Hidden tests: other inputs run when graded."),
        v4.new_markdown_cell("**Written answer (3 points).** Why is addition commutative?"),
        v4.new_markdown_cell("YOUR ANSWER HERE"),
    ]
    nb.cells[1].metadata["nbgrader"] = {
        "grade": False,
        "grade_id": "add_answer",
        "locked": False,
        "schema_version": 3,
        "solution": True,
        "task": False,
    }
    nb.cells[2].metadata["nbgrader"] = {
        "grade": False,
        "grade_id": "add_call",
        "locked": True,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nb.cells[3].metadata["nbgrader"] = _grade_metadata("add_test", 2)
    nb.cells[4].metadata["nbgrader"] = _grade_metadata("easy_test", 1)
    nb.cells[5].metadata["nbgrader"] = _grade_metadata("add_hidden", 1)
    nb.cells[7].metadata["nbgrader"] = _grade_metadata("why_written", 3, solution=True, locked=False)
    for cell in nb.cells:
        if "nbgrader" in cell.metadata:
            cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)
    path = tmp_path_factory.mktemp("validate") / "small.ipynb"
    nbformat.write(nb, path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = grading_command(["validate", str(path)])
    return code, out.getvalue()


def test_validate_names_a_failing_test_by_grade_id_points_and_part(small_validation):
    _, out = small_validation
    assert "add_test (2 points), in Part 1 · Sums" in out, (
        f"a failing test should be named by its grade id, points and the heading above it; got:\n{out}"
    )


def test_validate_traces_an_undefined_name_to_the_earlier_cell_that_raised(small_validation):
    _, out = small_validation
    assert re.search(r"total is undefined because add_call raised NotImplementedError", out), (
        f"a NameError in a test should point at the earlier cell whose error left the name undefined:\n{out}"
    )


def test_validate_names_the_question_of_an_empty_written_answer(small_validation):
    _, out = small_validation
    assert re.search(r"why_written \(3 points\).*Why is addition commutative\?", out), (
        f"an empty written answer should be named with the question above it, not 'YOUR ANSWER HERE':\n{out}"
    )


def test_validate_ends_with_a_points_summary(small_validation):
    code, out = small_validation
    last = out.strip().splitlines()[-1]
    assert last == (
        "1 of 3 visible test points pass (1 more in hidden tests that run at grading); "
        "1 written answer to complete."
    ), f"the summary should count visible test points (hidden-only cells apart) and empty answers: {last!r}"
    assert code == 1, "validate should still exit 1 when a test fails"


def _course_and_download(tmp_path: Path) -> tuple[Path, Path]:
    """A course with the solutions and config, and an empty folder for an LMS download."""
    root = tmp_path / "course"
    shutil.copytree(ROOT / "solutions", root / "solutions")
    shutil.copy(ROOT / config.CONFIG_FILE, root)
    download = tmp_path / "download"
    download.mkdir()
    return root, download


def test_collect_files_an_lms_download_by_student_and_assignment(tmp_path):
    root, download = _course_and_download(tmp_path)
    for name in (
        "alice_a1_estimators.ipynb",
        "bob.smith_a2_vae-2.ipynb",
        "carol smith_a1_estimators.ipynb",
        "notes.ipynb",
    ):
        (download / name).write_text("{}")
    written, skipped = collect.collect(download, root=root)
    submitted = root / "grading" / "submitted"
    assert written == [submitted / "alice" / A1 / f"{A1}.ipynb", submitted / "bob.smith" / A2 / f"{A2}.ipynb"]
    assert (submitted / "alice" / A1 / "timestamp.txt").read_text().strip(), (
        "collect should record a timestamp"
    )
    assert [line.split(":")[0] for line in skipped] == ["carol smith_a1_estimators.ipynb", "notes.ipynb"]


def test_collect_files_the_latest_resubmission_whatever_the_name_order(tmp_path):
    root, download = _course_and_download(tmp_path)
    # Name order puts "-10" before "-9" and both before the unnumbered first attempt.
    for name, attempt in (("dana_a2_vae.ipynb", 0), ("dana_a2_vae-9.ipynb", 9), ("dana_a2_vae-10.ipynb", 10)):
        (download / name).write_text(json.dumps({"attempt": attempt}))
    written, _ = collect.collect(download, root=root)
    assert written == [root / "grading" / "submitted" / "dana" / A2 / f"{A2}.ipynb"], (
        f"one file per student and assignment expected, got {written}"
    )
    filed = json.loads(written[0].read_text())["attempt"]
    assert filed == 10, (
        f"collect filed attempt {filed}; the highest -N (here -10) is the student's last submission"
    )


def test_manual_grades_survive_grading_again_and_reach_the_csv(course, grading_unsafe):
    from nbgrader.api import Gradebook

    cfg = config.course_config(course.root)
    with Gradebook(cfg.CourseDirectory.db_url) as gb:  # what the formgrader does when a TA grades
        for grade in gb.find_submission(A1, "missing_sum").notebooks[0].grades:
            if grade.name.endswith("_written"):
                grade.manual_score = grade.max_score
        gb.db.commit()
    (result,) = autograde.grade(
        [A1], root=course.root, students=["missing_sum"], unsafe=grading_unsafe, echo=False
    )
    assert result.score == 23 + 9 and "by hand" not in result.notes, f"after manual grading: {result}"
    with open(course.root / "grading" / "grades.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if (r["assignment"], r["student_id"]) == (A1, "missing_sum"))
    assert float(row["score"]) == 32.0, f"grades.csv should include the manual points: {row}"


OLD_DATE = dt.datetime(2021, 6, 1, 12, 0, tzinfo=dt.timezone.utc)  # before the first grading


@dataclass
class Regraded:
    stdout: str
    report: dict[str, dict[str, str]]  # student -> report.csv row


@pytest.fixture(scope="module")
def regraded(course, grading_unsafe) -> Regraded:
    """a1 graded again after two replacements, both with a file date older than the first grading:
    `replaced` overwritten by hand (log_prob answered now), `resubmits` through collect (entropy
    answered, one written answer rewritten after all were graded by hand). `solved` is unchanged."""
    from nbgrader.api import Gradebook

    cfg = config.course_config(course.root)
    with Gradebook(cfg.CourseDirectory.db_url) as gb:
        for grade in gb.find_submission(A1, "resubmits").notebooks[0].grades:
            if grade.name.endswith("_written"):
                grade.manual_score = grade.max_score
        gb.db.commit()
    stamp = OLD_DATE.timestamp()
    replaced = make_submission(course.root, A1, {}, answered={"a1_log_prob_answer"})
    target = course.root / "grading" / "submitted" / "replaced" / A1 / f"{A1}.ipynb"
    nbformat.write(replaced, target)
    os.utime(target, (stamp, stamp))
    download = course.root.parent / "download"
    download.mkdir()
    fixed = make_submission(
        course.root,
        A1,
        {"a1_kl_written": _prepend("Revised after feedback. ")},
        answered=FIRST_VERSIONS["resubmits"] | {"a1_entropy_answer"},
    )
    nbformat.write(fixed, download / f"resubmits_{A1}-2.ipynb")
    os.utime(download / f"resubmits_{A1}-2.ipynb", (stamp, stamp))
    collect.collect(download, root=course.root)
    out = io.StringIO()
    args = [
        "grade",
        A1,
        "--root",
        str(course.root),
        "--timeout",
        str(A1_TIMEOUT),
        *_unsafe_flag(grading_unsafe),
    ]
    with contextlib.redirect_stdout(out):
        grading_command(args + ["--student", "replaced", "--student", "resubmits", "--student", "solved"])
    with open(course.root / "grading" / "report.csv", newline="") as fh:
        report = {row["student_id"]: row for row in csv.DictReader(fh)}
    return Regraded(out.getvalue(), report)


def test_notebook_replaced_by_hand_is_graded_again(course, regraded):
    auto, most = cell_scores(course.root, A1, "replaced")["a1_log_prob_test"]
    assert auto == most, (
        "a submission overwritten in grading/submitted (no timestamp.txt, older file date) kept its old "
        f"score ({auto} of {most} for the now answered a1_log_prob_test); is regrading decided by timestamps?"
    )


def test_collected_resubmission_with_an_older_file_date_is_graded_again(course, regraded):
    auto, most = cell_scores(course.root, A1, "resubmits")["a1_entropy_test"]
    assert auto == most, (
        f"a resubmission filed by collect kept its old score ({auto} of {most} for a1_entropy_test); "
        "collect writes the download's older date into timestamp.txt, so a newer-than check misses it"
    )


def test_unchanged_submission_is_skipped_and_reported_so(regraded):
    assert f"{A1} / solved: unchanged, skipped" in regraded.stdout, (
        f"grade should say it skipped an unchanged submission; it printed:\n{regraded.stdout}"
    )
    statuses = {s: regraded.report[s]["status"] for s in ("solved", "replaced", "resubmits")}
    assert statuses == {"solved": "unchanged", "replaced": "graded", "resubmits": "graded"}, (
        f"report.csv statuses: {statuses}; an unchanged submission has its own status"
    )


def test_grading_stamps_a_submission_with_its_file_date(course, regraded):
    stamp = course.root / "grading" / "submitted" / "replaced" / A1 / "timestamp.txt"
    assert stamp.exists(), "a submission without timestamp.txt should get one when graded"
    recorded = dt.datetime.strptime(stamp.read_text().strip(), "%Y-%m-%d %H:%M:%S.%f %Z")
    assert recorded.replace(tzinfo=dt.timezone.utc) == OLD_DATE, (
        f"timestamp.txt says {recorded}, the replaced notebook's file date is {OLD_DATE}; "
        "the stamp written by grading should follow the file it describes"
    )


def test_manual_grade_of_an_unchanged_written_answer_survives_a_regrade(course, regraded):
    from nbgrader.api import Gradebook

    cfg = config.course_config(course.root)
    with Gradebook(cfg.CourseDirectory.db_url) as gb:
        grades = {g.name: g for g in gb.find_submission(A1, "resubmits").notebooks[0].grades}
        kept = {
            name: (g.manual_score, g.max_score) for name, g in grades.items() if name.endswith("_written")
        }
    assert all(score == most for score, most in kept.values()), (
        f"manual grades after a regrade of the resubmission: {kept}; nbgrader should keep them"
    )


def test_written_answer_changed_after_hand_grading_is_flagged(regraded):
    notes = regraded.report["resubmits"]["notes"]
    assert "changed since graded by hand" in notes and "a1_kl_written" in notes, (
        f"the rewritten, already hand-graded a1_kl_written should be flagged for another look; notes: {notes!r}"
    )
    assert "a1_var_written" not in notes, f"an unchanged written answer was flagged: {notes!r}"


def test_report_counts_written_answers_pending_by_hand(regraded):
    pending = {s: regraded.report[s]["manual_pending"] for s in ("solved", "resubmits")}
    assert pending == {"solved": "3", "resubmits": "0"}, (
        f"report.csv manual_pending: {pending}; expected the count of answered written cells with no grade yet"
    )


def test_rewritten_answer_stays_flagged_until_graded_by_hand_again(course, regraded, grading_unsafe):
    from nbgrader.api import Gradebook

    (again,) = autograde.grade(
        [A1], root=course.root, students=["resubmits"], unsafe=grading_unsafe, echo=False
    )
    assert again.status == "unchanged" and again.rewritten_answers == ["a1_kl_written"], (
        f"on the next run the rewritten answer should still be flagged: {again.status}, {again.rewritten_answers}"
    )
    cfg = config.course_config(course.root)
    with Gradebook(cfg.CourseDirectory.db_url) as gb:  # what the formgrader does when a TA saves a grade
        grade = gb.find_grade("a1_kl_written", A1, A1, "resubmits")
        grade.manual_score, grade.needs_manual_grade = 1.0, False
        gb.db.commit()
    (after,) = autograde.grade(
        [A1], root=course.root, students=["resubmits"], unsafe=grading_unsafe, echo=False
    )
    assert after.rewritten_answers == [], (
        f"once graded by hand again the answer should no longer be flagged: {after.rewritten_answers}"
    )
