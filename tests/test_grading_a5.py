"""a5_discrete through the real grading pipeline: nbgrader and real kernels in a temporary course.

As tests/test_grading_a4.py: a course of its own, made with tests/test_grading.py's helpers. Submissions: the model
answer, the untouched release, typical mistakes, honest but empty answers of the documented shapes, the same answers
after rebinding utils.checks and torch's comparisons, and a2's tamperer. To keep the suite short the mistakes are
combined, several per submission, each in another part, so their test cells do not overlap: each mistake must still
lose exactly its own tests, and the visible one must name it. The variance-band tests are random; their tolerance
was set from the reference's spread over 2,000 seeds (results/a5_variance_spread.md), so the model answer's verdict
is not a matter of luck.
"""

from __future__ import annotations

import pytest
from graded_course import GradedAssignmentTests, standard_submissions
from test_grading import (
    _replace,
    fast_kernels,  # noqa: F401  (a module fixture that the grading tests' course fixture requests)
)

pytestmark = pytest.mark.grading

A5 = "a5_discrete"
ANSWERS = ("a5_gumbel_answer", "a5_st_answer", "a5_reinforce_answer", "a5_variance_answer")

# Answers of the documented types and shapes that compute nothing (an honest, empty attempt).
_EMPTY = {
    "a5_gumbel_answer": "def gumbel_noise(u):\n    return u * 0\n\n\n"
    "def gumbel_softmax(logits, g, tau):\n    return logits * 0\n",
    "a5_st_answer": "def st_gumbel_softmax(logits, g, tau):\n    return logits * 0\n",
    "a5_reinforce_answer": "def reinforce_loo(logits, z, f_values):\n    return logits.sum() * 0\n",
    "a5_variance_answer": "def measure_variance(estimator, n_repeats):\n    x = estimator()\n"
    "    return x * 0, x.sum() * 0\n",
}


def _edits(*changes: tuple[str, str, str]) -> dict:
    """{answer cell: one edit} from (cell, old, new) triples; at most one change per cell."""
    cells = [cell for cell, _, _ in changes]
    assert len(set(cells)) == len(cells), f"one mistake per answer cell, got {cells}"
    return {cell: _replace(old, new) for cell, old, new in changes}


_NOISE = "return -torch.log(-torch.log(u))"
_SOFTMAX = "return torch.softmax((logits + g) / tau, dim=-1)"
_ST = "return (soft - soft.detach()) + hard"
_LOO = "baseline = (f_values.sum() - f_values) / (n - 1)"
_VAR = "draws.var(0, unbiased=True).sum()"
_DRAWS = "torch.stack([estimator().detach() for _ in range(n_repeats)])"

# Correct answers in other words: log1p, F.softmax, another detach placement and argmax, the LOO estimator as
# 1/(n - 1) sum (f_i - mean f) grad log q_i (Kool et al.'s form, equal to the model's), float32 running sums.
_ALTERNATIVE = {
    "a5_gumbel_answer": "def gumbel_noise(u):\n    return -torch.log(-torch.log1p(u - 1))\n\n\n"
    "def gumbel_softmax(logits, g, tau):\n    return F.softmax((logits + g) / tau, dim=-1)\n",
    "a5_st_answer": "def st_gumbel_softmax(logits, g, tau):\n    soft = F.softmax((logits + g) / tau, dim=-1)\n"
    "    hard = torch.zeros_like(soft).scatter_(-1, (logits + g).argmax(-1, keepdim=True), 1.0)\n"
    "    return hard - soft.detach() + soft\n",
    "a5_reinforce_answer": "def reinforce_loo(logits, z, f_values):\n    n = z.shape[0]\n"
    "    log_q = torch.distributions.Categorical(logits=logits).log_prob(z)\n"
    "    centred = f_values - f_values.mean()\n"
    "    return f_values.mean() + (centred * (log_q - log_q.detach())).sum() / (n - 1)\n",
    "a5_variance_answer": "def measure_variance(estimator, n_repeats):\n    first = estimator()\n"
    "    s, s2 = torch.zeros(first.shape), torch.zeros(first.shape)\n"
    "    for r in range(n_repeats):\n        x = (first if r == 0 else estimator()).detach().cpu()\n"
    "        s += x\n        s2 += x * x\n    mean = s / n_repeats\n"
    "    return mean, ((s2 - n_repeats * mean * mean) / (n_repeats - 1)).sum()\n",
}

# student -> edits of the solved notebook ({cell id: edit}); None = the untouched student version.
SUBMISSIONS = {
    **standard_submissions(ANSWERS, _EMPTY, _ALTERNATIVE),
    # -log u (exponential noise); no stop-gradient in ST; a baseline that sees its own sample; the biased variance
    "mistakes_a": _edits(
        ("a5_gumbel_answer", _NOISE, "return -torch.log(u)"),
        ("a5_st_answer", _ST, "return hard - soft + soft"),
        ("a5_reinforce_answer", _LOO, "baseline = f_values.mean().expand(n)"),
        ("a5_variance_answer", _VAR, "draws.var(0, unbiased=False).sum()"),
    ),
    # tau dividing the logits only; Bengio's plain ST gradient; no baseline; one draw reused
    "mistakes_b": _edits(
        ("a5_gumbel_answer", _SOFTMAX, "return torch.softmax(logits / tau + g, dim=-1)"),
        (
            "a5_st_answer",
            _ST,
            "plain = torch.softmax(logits, dim=-1)\n    return (plain - plain.detach()) + hard",
        ),
        ("a5_reinforce_answer", _LOO, "baseline = torch.zeros_like(f_values)"),
        ("a5_variance_answer", _DRAWS, "torch.stack([estimator().detach()] * n_repeats)"),
    ),
    # a hand-made softmax that overflows; the relaxed sample returned forward; standard deviations summed
    "mistakes_c": _edits(
        (
            "a5_gumbel_answer",
            _SOFTMAX,
            "e = torch.exp((logits + g) / tau)\n    return e / e.sum(-1, keepdim=True)",
        ),
        ("a5_st_answer", _ST, "return soft"),
        ("a5_variance_answer", _VAR, "draws.std(0).sum()"),
    ),
    # a correct total variance returned as a Python float: the exact test asks for a 0-dim tensor; it costs that once
    "float_total": _edits(("a5_variance_answer", _VAR, "float(draws.var(0, unbiased=True).sum())")),
}

_VAR_ALL = {"a5_var_test_exact", "a5_var_test_band", "a5_var_hidden"}

# The test cells each submission loses, and the words of each visible test's message that name its mistake.
EXPECTED = {
    "mistakes_a": (
        {"a5_noise_test", "a5_gs_hidden"}
        | {"a5_st_test_grad", "a5_st_hidden"}
        | {"a5_rf_test_grad", "a5_rf_test_unbiased", "a5_rf_hidden"}
        | {"a5_var_test_exact", "a5_var_hidden"},
        {
            "a5_noise_test": "-log u: that is Exponential(1) noise",
            "a5_st_test_grad": "without .detach() cancels the soft part's gradient",
            "a5_rf_test_grad": "the baseline includes f(z_i) itself",
            "a5_rf_test_unbiased": "(n - 1) / n",
            "a5_var_test_exact": "the biased variance (divided by R)",
        },
    ),
    "mistakes_b": (
        {"a5_gs_test_values", "a5_gs_test_limits", "a5_gs_hidden"}
        | {"a5_st_test_grad", "a5_st_hidden"}
        | {"a5_rf_test_grad", "a5_rf_hidden"}
        | _VAR_ALL,
        {
            "a5_gs_test_values": "only the logits divided by tau",
            "a5_gs_test_limits": "divide the whole sum (logits + g) by tau",
            "a5_st_test_grad": "the plain straight-through of Bengio et al.",
            "a5_rf_test_grad": "no baseline at all",
            "a5_var_test_exact": "the estimator is called once per repeat",
            "a5_var_test_band": "near 0: one draw reused",
        },
    ),
    "float_total": ({"a5_var_test_exact"}, {"a5_var_test_exact": "expected a 0-dim tensor, got float"}),
    "mistakes_c": (
        {"a5_gs_test_stable"} | {"a5_st_test_forward", "a5_st_hidden"} | _VAR_ALL,
        {
            "a5_gs_test_stable": "exp((logits + g) / tau) overflows",
            "a5_st_test_forward": "the relaxed sample returned",
            "a5_var_test_exact": "standard deviations summed",
            "a5_var_test_band": "a square root: a standard deviation",
        },
    ),
}


class TestA5Discrete(GradedAssignmentTests):
    ASSIGNMENT = A5
    SUBMISSIONS = SUBMISSIONS
    EXPECTED = EXPECTED
    TEST_POINTS, WRITTEN_CELLS, WRITTEN_POINTS = 23, 4, 12
