"""The mutation test of the graders (tests/mutation): its mutants, and one small run end to end.

The generator tests are fast and run with the suite. The end-to-end tests execute notebooks (a
kernel per mutant) and are marked ``slow``: they run only with ``DIGM_SLOW=1``, e.g.
``DIGM_SLOW=1 DIGM_FAST=1 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python -m pytest -m slow tests/test_mutation_tool.py``.
"""

from __future__ import annotations

import ast
import collections
import json
import os
from pathlib import Path

import nbformat
import pytest
from conftest import pid_alive

from tests.mutation import mutate, operators

ROOT = Path(__file__).resolve().parent.parent

SNIPPET = '''import math
import torch


def answer(x, mu, log_sigma, k: int, generator=None):
    """Docstring: untouched."""
    ### BEGIN SOLUTION
    eps = torch.randn(k, mu.shape[-1], generator=generator, dtype=mu.dtype)  # noise
    z = (mu + log_sigma.exp() * eps).detach()
    if k > 1:
        z = z - x
    total = torch.logsumexp(z, dim=0, keepdim=False) - math.log(k)
    return -total.sum(-1) + z.mean(0) ** 2 / 2
    ### END SOLUTION


def outside(y):
    return y + 1  # not in a solution region: never mutated
'''

slow = pytest.mark.skipif(
    os.environ.get("DIGM_SLOW", "").strip() not in {"1", "true", "yes"},
    reason="slow (one kernel per mutant): set DIGM_SLOW=1 to run",
)


@pytest.fixture(scope="module")
def mutants() -> list[operators.Mutant]:
    return operators.cell_mutants(SNIPPET, cell_index=3, grade_id="answer")


def test_every_kind_of_change_is_made(mutants):
    assert set(operators.KINDS) <= {m.kind for m in mutants}


@pytest.mark.parametrize(
    ("kind", "after"),
    [
        ("binop", "z = (mu - log_sigma.exp() * eps).detach()"),  # + -> -
        ("binop", "z = (mu + log_sigma.exp() / eps).detach()"),  # * -> /
        ("binop", "return -total.sum(-1) + z.mean(0) * 2 / 2"),  # ** -> *
        ("unary", "return total.sum(-1) + z.mean(0) ** 2 / 2"),  # minus removed
        ("unary", "z = -(mu + log_sigma.exp() * eps).detach()"),  # minus added
        ("compare", "if k >= 1:"),
        ("constant", "if k > 0:"),  # 1 -> 0
        ("constant", "return -total.sum(-1) + z.mean(0) ** 4 / 2"),  # c -> 2c
        ("constant", "return -total.sum(-1) + z.mean(0) ** 2 / -2"),  # c -> -c
        ("call", "z = (mu + log_sigma * eps).detach()"),  # .exp() dropped
        ("call", "z = mu + log_sigma.exp() * eps"),  # .detach() dropped
        ("call", "total = torch.logsumexp(z, dim=0, keepdim=False) - k"),  # math.log dropped
        ("call", "return -total + z.mean(0) ** 2 / 2"),  # .sum(-1) dropped
        ("sum-mean", "return -total.mean(-1) + z.mean(0) ** 2 / 2"),
        ("sum-mean", "return -total.sum(-1) + z.sum(0) ** 2 / 2"),
        ("dim", "total = torch.logsumexp(z, dim=-1, keepdim=False) - math.log(k)"),
        ("dim", "return -total.sum(0) + z.mean(0) ** 2 / 2"),
        ("dim", "eps = torch.randn(k, mu.shape[0], generator=generator, dtype=mu.dtype)  # noise"),
        ("keepdim", "total = torch.logsumexp(z, dim=0, keepdim=True) - math.log(k)"),
        ("keepdim", "return -total.sum(-1, keepdim=True) + z.mean(0) ** 2 / 2"),
        ("argument", "eps = torch.randn(k, mu.shape[-1], dtype=mu.dtype)  # noise"),  # generator= removed
        ("argument", "return -total.sum() + z.mean(0) ** 2 / 2"),  # dim removed
    ],
)
def test_a_listed_change_is_among_the_mutants(mutants, kind, after):
    made = {(m.kind, m.after.strip()) for m in mutants}
    assert (kind, after) in made


def test_every_mutant_differs_from_the_source_in_exactly_one_site(mutants):
    original = ast.parse(SNIPPET)
    assert mutants and all(m.valid for m in mutants)
    for m in mutants:
        assert operators.differing_sites(original, ast.parse(m.source)) == 1, m


def test_the_one_site_check_counts_two_changes_as_two():
    a = ast.parse("y = a + b * c")
    assert operators.differing_sites(a, ast.parse("y = a + b * c")) == 0
    assert operators.differing_sites(a, ast.parse("y = a - b * c")) == 1
    assert operators.differing_sites(a, ast.parse("y = a - b / c")) == 2


def test_mutants_touch_only_the_solution_region(mutants):
    lines = SNIPPET.split("\n")
    (first, last), = operators.solution_lines(SNIPPET)
    for m in mutants:
        changed = m.source.split("\n")
        assert changed[: first - 1] == lines[: first - 1], m
        assert changed[last:] == lines[last:], m
        assert "# noise" in m.source and '"""Docstring: untouched."""' in m.source  # comments kept


def test_a_change_keeps_the_meaning_of_the_rest_with_parentheses_where_needed():
    source = "def f(a, b, c):\n    ### BEGIN SOLUTION\n    return a - b * c\n    ### END SOLUTION\n"
    afters = {m.after.strip() for m in operators.cell_mutants(source) if m.kind == "binop"}
    # '-' -> '/' must divide a by the product, not (a / b) * c
    assert "return a / (b * c)" in afters


def test_generation_is_deterministic_and_without_duplicates(mutants):
    again = operators.cell_mutants(SNIPPET, cell_index=3, grade_id="answer")
    assert [m.source for m in again] == [m.source for m in mutants]
    assert len({m.source for m in mutants}) == len(mutants)
    assert len({m.key for m in mutants}) == len(mutants)


def test_no_mutant_can_only_crash_by_construction(mutants):
    # Dropping a call's only input, or negating a value unpacked into two names, can only raise:
    # such mutants would pad the killed share, so none is made.
    afters = [m.after.strip() for m in mutants]
    assert "total = torch.logsumexp(dim=0, keepdim=False) - math.log(k)" not in afters
    assert not any("math.log()" in a for a in afters)
    two = "def g(e, x):\n    ### BEGIN SOLUTION\n    m, v = e(x)\n    return m\n    ### END SOLUTION\n"
    assert not any(m.after.strip().startswith("m, v = -") for m in operators.cell_mutants(two))


def test_the_sample_is_seeded_and_in_notebook_order(mutants):
    one = mutate.choose(mutants, 5, seed=3)
    assert one == mutate.choose(mutants, 5, seed=3)
    assert len(one) == 5 and one != mutate.choose(mutants, 5, seed=4)
    assert [mutants.index(m) for m in one] == sorted(mutants.index(m) for m in one)
    assert mutate.choose(mutants, 0, seed=3) == mutants


@pytest.mark.parametrize("assignment", ["a1_estimators", "a2_vae"])
def test_every_answer_cell_of_the_assignments_gets_mutants(assignment):
    nb = nbformat.read(mutate.notebook_path(assignment), as_version=4)
    population = operators.notebook_mutants(nb)
    answers = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
               if c.cell_type == "code" and operators.BEGIN in c.source}
    assert answers and answers == {m.grade_id for m in population}
    assert all(m.valid for m in population)
    counts = collections.Counter(m.kind for m in population)
    assert {"binop", "constant", "call", "dim"} <= set(counts)


# --------------------------------------------------------------------------------------------
# End to end (slow)


@pytest.fixture
def kernel_env(monkeypatch):
    monkeypatch.setenv("DIGM_FAST", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@slow
@pytest.mark.slow
def test_a_few_mutants_of_one_part_are_scored_end_to_end(tmp_path, kernel_env, monkeypatch):
    # Four mutants of the entropy (seed 1 picks two real mistakes and two reviewed equivalents), each run
    # in its own kernel up to the entropy's tests; the report counts them and classifies the survivors.
    monkeypatch.setattr(mutate, "CACHE", tmp_path / "cache")
    out = tmp_path / "report.md"
    code = mutate.main(["--assignment", "a1_estimators", "--cells", "a1_entropy_answer", "--sample", "4",
                        "--seed", "1", "--part-only", "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert "| sampled (seed 1) | 4 |" in text and "| valid, scored | 4 |" in text
    cached = [json.loads(line) for line in (tmp_path / "cache" / "a1_estimators" / "results.jsonl").read_text().splitlines()]
    runs = {c["key"]: c["outcome"] for c in cached if c["key"] != "baseline"}
    assert len(runs) == 4 and "baseline" in {c["key"] for c in cached}
    killed = [k for k, o in runs.items() if o["lost"]]
    assert killed and all(set(runs[k]["lost"]) <= {"a1_entropy_test", "a1_entropy_hidden"} for k in killed)
    assert all("a1_entropy_test" in runs[k]["visible_lost"] for k in killed)
    # every survivor is a reviewed equivalent: this part's tests kill every real mistake in the sample
    assert "**unreviewed**" not in text and "**not equivalent**" not in text
    assert f"| **killed, share of the non-equivalent** | {len(killed)} of {len(killed)} | **100.0%** |" in text


@slow
@pytest.mark.slow
@pytest.mark.parametrize(("assignment", "mistake"), [("a1_estimators", "missing_sum"), ("a1_estimators", "detached"),
                                                     ("a2_vae", "kl_sign"), ("a2_vae", "iwae_mean")])
def test_the_fast_scoring_agrees_with_the_autograder(assignment, mistake, kernel_env):
    # tests/test_grading.py grades these mistakes with the real nbgrader pipeline and checks that each
    # loses exactly EXPECTED_LOST; the mutation tool's quick scoring must find the same cells.
    import test_grading

    (grade_id, edit), = test_grading.SUBMISSIONS[assignment][mistake].items()
    nb = nbformat.read(mutate.notebook_path(assignment), as_version=4)
    layout = mutate.Layout.of(nb)
    (index,) = [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    nb.cells[index].source = edit(nb.cells[index].source)
    outcome = mutate.run_notebook(nb, layout, layout.code, stop="all", cell_timeout=180, run_timeout=900)
    assert not outcome.broken and not outcome.timeout
    assert set(outcome.lost) == test_grading.EXPECTED_LOST[(assignment, mistake)]


@slow
@pytest.mark.slow
@pytest.mark.parametrize("deaf", [False, True], ids=["interruptible", "deaf-to-interrupt"])
def test_a_cell_that_never_ends_is_a_kill_by_the_timeout_and_its_kernel_is_ended(tmp_path, kernel_env, deaf):
    pid_file = tmp_path / "kernel.pid"
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell(
        "import os, signal\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        # deaf: the interrupt is ignored, as by a long C loop
        + ("signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if deaf else "")
        + "while True:\n    pass\n"
    )
    answer.metadata["nbgrader"] = {"grade_id": "answer", "solution": True, "grade": False, "locked": False}
    test = nbformat.v4.new_code_cell("assert True")
    test.metadata["nbgrader"] = {"grade_id": "test", "grade": True, "points": 1, "solution": False, "locked": True}
    nb.cells = [answer, test]
    layout = mutate.Layout.of(nb)
    outcome = mutate.run_notebook(nb, layout, layout.code, stop="all", cell_timeout=5, run_timeout=120)
    assert outcome.killed and outcome.timeout.startswith("timeout in cell 0"), outcome
    assert outcome.seconds < 60
    assert not pid_alive(int(pid_file.read_text()))


def test_a_test_cell_is_split_into_its_visible_lines_and_its_hidden_block():
    source = ("# Visible test: a comment is no test\nchecks.check_close(a, b)\n\n"
              "### BEGIN HIDDEN TESTS\nassert _tools_intact()\n### END HIDDEN TESTS\nprint('after')")
    hidden, visible = mutate.split_hidden(source)
    assert hidden == [4, 5, 6], "the hidden block (markers included) was not found where it is"
    assert visible == [2, 7], "comments or blank lines were counted as visible test code, or code was missed"
    assert mutate.split_hidden("# Hidden tests only\n### BEGIN HIDDEN TESTS\nassert x\n### END HIDDEN TESTS")[1] == []


def test_an_error_is_placed_on_the_line_of_the_executed_cell_that_raised_it():
    from tests.mutation import runner

    # IPython's traceback (colours included): the executed cell's frame first, then a helper of another cell
    frames = ["\x1b[31m---------\x1b[39m", "\x1b[31mAssertionError\x1b[39m   Traceback (most recent call last)",
              "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[12]\x1b[39m\x1b[32m, line 5\x1b[39m\n  3 x = 1",
              "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[3]\x1b[39m\x1b[32m, line 40\x1b[39m, in helper()"]
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="no", traceback=frames)]
    assert runner.error_line(cell) == 5, "the line was not read from the executed cell's own (outermost) frame"
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="warning")]
    assert runner.error_line(cell) is None
