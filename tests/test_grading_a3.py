"""a3_flows_ar through the real grading pipeline: nbgrader and real kernels in a temporary course.

tests/test_grading.py grades a1 and a2 in one module-wide course; its fixture is not parametrised over
assignments, so a3 gets a course of its own here, made with that module's helpers (make_submission,
cell_scores, the edits and the tampering rewrite). Submissions: the model answer, the untouched
release, typical mistakes (each must lose exactly its tests, with the visible one naming the mistake),
honest but empty answers of the documented shapes, the same answers after rebinding utils.checks and
torch's comparisons, and a2's tamperer (everything the tests call rebound, every function returning its
first argument). The course is graded once (about 10 notebooks, a few minutes on two cores).
"""

from __future__ import annotations

import pytest
from graded_course import GradedCourse
from test_grading import (
    _REBIND_THE_CHECKS,
    _replace,
    _tampered,
    assert_solution_passes_its_tests,
    fast_kernels,  # noqa: F401  (a module fixture: FAST kernels with one thread each)
    grade_one_assignment,
)

pytestmark = pytest.mark.grading

A3 = "a3_flows_ar"
ANSWERS = (
    "a3_coupling_forward_answer",
    "a3_coupling_inverse_answer",
    "a3_made_answer",
    "a3_logprob_answer",
    "a3_sample_answer",
    "a3_maf_inverse_answer",
    "a3_maf_forward_answer",
    "a3_ancestral_answer",
)

# Answers of the documented types and shapes that compute nothing (an honest, empty attempt).
_EMPTY = {
    "a3_coupling_forward_answer": "def coupling_forward(x, mask, net):\n    return x * 1, x[:, 0] * 0\n",
    "a3_coupling_inverse_answer": "def coupling_inverse(y, mask, net):\n    return y * 1, y[:, 0] * 0\n",
    "a3_made_answer": "def made_masks(ordering, hidden_degrees, n_params=1):\n"
    "    sizes = [len(ordering), *(len(h) for h in hidden_degrees), n_params * len(ordering)]\n"
    "    return [torch.ones(b, a) for a, b in zip(sizes[:-1], sizes[1:])]\n",
    "a3_logprob_answer": "def flow_log_prob(x, layers):\n    return x[:, 0] * 0\n",
    "a3_sample_answer": "def flow_sample(layers, n, dim, generator=None):\n"
    "    return torch.zeros(n, dim, device=device), torch.zeros(n, device=device)\n",
    "a3_maf_inverse_answer": "def maf_inverse(x, net):\n    return x * 1, x[:, 0] * 0\n",
    "a3_maf_forward_answer": "def maf_forward(u, net):\n    return u * 1, u[:, 0] * 0\n",
    "a3_ancestral_answer": "def ancestral_sample(conditional, ordering, n, generator=None):\n"
    "    return torch.zeros(n, len(ordering), device=ordering.device), torch.zeros(n, device=ordering.device)\n",
}


def _empty(rebind: bool) -> dict:
    edits = {cell: (lambda source, new=new: new) for cell, new in _EMPTY.items()}
    if rebind:  # the first answer cell rebinds utils.checks, the check* helpers and torch's comparisons
        first = ANSWERS[0]
        edits[first] = lambda source: _REBIND_THE_CHECKS + _EMPTY[first]
    return edits


# student -> edits of the solved notebook ({cell id: edit}); None = the untouched student version.
SUBMISSIONS = {
    "solved": {},
    "untouched": None,
    "logdet_sign": {
        "a3_coupling_forward_answer": _replace(
            "log_det = ((1 - mask) * log_s).sum(-1)", "log_det = -((1 - mask) * log_s).sum(-1)"
        )
    },
    "made_ge": {
        "a3_made_answer": _replace("output = (ordering[:, None] > ", "output = (ordering[:, None] >= ")
    },
    "layers_in_order": {"a3_logprob_answer": _replace("reversed(layers)", "layers")},
    "natural_order": {"a3_ancestral_answer": _replace("torch.argsort(ordering).tolist()", "range(dim)")},
    "one_maf_pass": {"a3_maf_forward_answer": _replace("range(u.shape[-1])", "range(1)")},
    "empty": _empty(rebind=False),
    "empty_rebound": _empty(rebind=True),
    "tampered_checks": dict.fromkeys(ANSWERS, _tampered),
}

# The test cells each mistake costs, and the words of the visible test's message that name it.
EXPECTED = {
    "logdet_sign": (
        {"a3_coupling_test_logdet", "a3_coupling_hidden"},
        {"a3_coupling_test_logdet": "Likely mistake: the sign flipped"},
    ),
    "made_ge": (
        {"a3_made_test_masks", "a3_made_test_autoregressive", "a3_made_test_direct", "a3_made_hidden"},
        {
            "a3_made_test_masks": "Likely mistake: >= on the output, where > belongs",
            "a3_made_test_autoregressive": "Likely mistake: >= on the output, where > belongs",
        },
    ),
    "layers_in_order": (
        {"a3_logprob_test_order", "a3_logprob_hidden"},
        {"a3_logprob_test_order": "Likely mistake: the layers undone in the order listed"},
    ),
    "natural_order": (
        {"a3_ar_test_frequencies", "a3_ar_test_log_prob", "a3_ar_hidden"},
        {"a3_ar_test_frequencies": "Likely mistake: the entries drawn in the order 0, 1, 2"},
    ),
    "one_maf_pass": (
        {"a3_maf_test_forward", "a3_maf_hidden"},
        {"a3_maf_test_forward": "Likely mistake: maf_forward called net 1 times"},
    ),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory, fast_kernels, grading_unsafe):  # noqa: F811
    """Every a3 submission above, graded once in a course of its own."""
    root = tmp_path_factory.mktemp("course_a3")
    return GradedCourse(root, A3, grade_one_assignment(root, A3, SUBMISSIONS, grading_unsafe))


def test_solution_source_passes_every_visible_and_hidden_test(fast_kernels):  # noqa: F811
    assert_solution_passes_its_tests(A3)


def test_every_submission_was_graded(course):
    course.assert_every_submission_graded(SUBMISSIONS)


def test_model_answer_gets_every_test_point_and_waits_for_written_grades(course):
    course.assert_model_answer_full_marks(test_points=25, written_cells=3, written_points=9)


def test_blank_submission_scores_zero(course):
    course.assert_blank_scores_zero()


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_mistake_loses_exactly_its_tests_and_the_visible_one_names_it(course, student):
    course.assert_loses_exactly(student, *EXPECTED[student])


def test_rebinding_the_checks_earns_nothing_over_the_same_empty_answers(course):
    course.assert_rebinding_gains_nothing()


def test_tampering_with_everything_the_tests_call_earns_no_test_point(course):
    course.assert_tampering_earns_nothing()


def test_rebinding_answers_are_marked_for_review_and_honest_ones_are_not(course):
    course.assert_rebinders_marked_for_review_and_no_one_else()


def test_feedback_shows_no_line_of_any_hidden_test(course):
    course.assert_feedback_hides_hidden_tests(SUBMISSIONS)
