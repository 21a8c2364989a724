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
from test_grading import (
    _REBIND_THE_CHECKS,
    _hidden_lines,
    _html_lines,
    _replace,
    _tampered,
    _test_cells,
    assert_solution_passes_its_tests,
    auto_points,
    cell_scores,
    fast_kernels,  # noqa: F401  (a module fixture: FAST kernels with one thread each)
    grade_one_assignment,
    visible_error,
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
    """A course with every a3 submission above, graded once: (root, {student: SubmissionResult})."""
    root = tmp_path_factory.mktemp("course_a3")
    return root, grade_one_assignment(root, A3, SUBMISSIONS, grading_unsafe)


def test_solution_source_passes_every_visible_and_hidden_test(fast_kernels):  # noqa: F811
    assert_solution_passes_its_tests(A3)


def test_every_submission_was_graded(course):
    _, results = course
    failed = {s: r.error for s, r in results.items() if not r.graded}
    assert not failed and set(results) == set(SUBMISSIONS), (
        f"a3 submissions not graded: {failed or sorted(results)}"
    )


def test_model_answer_gets_every_test_point_and_waits_for_written_grades(course):
    root, _ = course
    scores = cell_scores(root, A3, "solved")
    short = {name: s for name, s in auto_points(scores).items() if s[0] != s[1]}
    assert not short, f"a3: the model answer loses points in {short}"
    assert sum(most for _, most in auto_points(scores).values()) == 25, (
        "a3 has 25 test points (README, intro)"
    )
    written = {name: s for name, s in scores.items() if name.endswith("_written")}
    assert len(written) == 3 and all(auto is None for auto, _ in written.values()), written


def test_blank_submission_scores_zero(course):
    root, _ = course
    scores = cell_scores(root, A3, "untouched")
    assert scores and all(auto == 0 for auto, _ in scores.values()), f"the untouched release scored {scores}"


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_mistake_loses_exactly_its_tests_and_the_visible_one_names_it(course, student):
    root, _ = course
    lost = {
        name for name, (auto, most) in auto_points(cell_scores(root, A3, student)).items() if auto != most
    }
    expected, hints = EXPECTED[student]
    assert lost == expected, (
        f"a3/{student}: lost points in {sorted(lost)}, expected exactly {sorted(expected)}"
    )
    for grade_id, words in hints.items():
        message = visible_error(root, A3, student, grade_id)
        assert words in message, f"a3/{student}: {grade_id} should say {words!r}; it said:\n{message[:600]}"


def test_rebinding_the_checks_earns_nothing_over_the_same_empty_answers(course):
    root, _ = course
    honest = auto_points(cell_scores(root, A3, "empty"))
    rebound = auto_points(cell_scores(root, A3, "empty_rebound"))
    gained = {name: (honest[name][0], auto) for name, (auto, _) in rebound.items() if auto > honest[name][0]}
    assert not gained, (
        f"a3: rebinding utils.checks, the check helpers and torch.allclose/isclose earned points that the same "
        f"answers do not earn honestly (honest, rebound): {gained}"
    )
    hidden_only = {name for name in _test_cells(A3) if name.endswith("_hidden")}
    earned = {name: rebound[name][0] for name in hidden_only if rebound[name][0]}
    assert not earned, f"a3: the rebinding submission earned hidden-test points: {earned}"


def test_tampering_with_everything_the_tests_call_earns_no_test_point(course):
    root, _ = course
    tests = auto_points(cell_scores(root, A3, "tampered_checks"))
    assert len(tests) == len(_test_cells(A3)), (
        f"the tampering submission was not graded as a whole: {sorted(tests)}"
    )
    earned = {name: auto for name, (auto, _) in tests.items() if auto}
    assert not earned, (
        f"a3: a submission that rebinds utils.checks, the notebook's helpers and the grader's _ref comparisons, and "
        f"answers nothing, earned {earned}"
    )


def test_rebinding_answers_are_marked_for_review_and_honest_ones_are_not(course):
    _, results = course
    for student in ("empty_rebound", "tampered_checks"):
        assert results[student].notes.startswith("REVIEW, answer cells reach into the tests"), (
            f"a3/{student}: notes {results[student].notes!r}"
        )
    honest = {
        s: r.tampering
        for s, r in results.items()
        if s not in ("empty_rebound", "tampered_checks") and r.tampering
    }
    assert not honest, f"a3: honest answers were marked for review: {honest}"


def test_feedback_shows_no_line_of_any_hidden_test(course):
    root, _ = course
    hidden = _hidden_lines(root, A3)
    feedback = sorted((root / "grading" / "feedback").glob(f"*/{A3}/{A3}.html"))
    assert len(feedback) == len(SUBMISSIONS), f"expected feedback for every a3 submission, found {feedback}"
    for path in feedback:
        leaked = sorted(hidden & _html_lines(path))
        assert not leaked, f"{path} shows hidden test lines: {leaked[:3]}"
