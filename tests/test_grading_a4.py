"""a4_adversarial through the real grading pipeline: nbgrader and real kernels in a temporary course.

As tests/test_grading_a3.py: a course of its own, made with tests/test_grading.py's helpers. Submissions: the model
answer, correct answers written otherwise (each must keep every point), the untouched release, typical mistakes
(each must lose exactly its tests, with the visible one naming the mistake), honest but empty answers of the
documented shapes, the same answers after rebinding utils.checks and torch's comparisons, and a2's tamperer. The
mistakes of the training step are chosen so that the coverage tests' verdict on them is not a matter of luck
(results/a4_coverage_spread.md): the minimax loss covers the ring from a fresh start as well as the non-saturating
one (so only the exact step tests may catch it), a flipped sign and a generator that never moves cover nothing on
every seed measured.
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

A4 = "a4_adversarial"
ANSWERS = ("a4_losses_answer", "a4_opt_answer", "a4_step_answer", "a4_aae_answer")

# Answers of the documented types and shapes that compute nothing (an honest, empty attempt).
_EMPTY = {
    "a4_losses_answer": "def discriminator_loss(real_logits, fake_logits):\n    return real_logits.sum() * 0\n\n\n"
    "def minimax_generator_loss(fake_logits):\n    return fake_logits.sum() * 0\n\n\n"
    "def nonsaturating_generator_loss(fake_logits):\n    return fake_logits.sum() * 0\n",
    "a4_opt_answer": "def optimal_logit(log_p, log_q, real_share=0.5):\n    return log_p * 0\n\n\n"
    "def jsd_by_optimal_discriminator(log_p, log_q, x_p, x_q):\n    return x_p.sum() * 0\n",
    "a4_step_answer": "def gan_step(generator, discriminator, x_real, z, opt_g, opt_d):\n"
    "    return x_real.sum() * 0, x_real.sum() * 0\n",
    "a4_aae_answer": "def aae_losses(discriminator, z_prior, z_codes):\n    return z_prior.sum() * 0, z_codes.sum() * 0\n",
}


def _empty(rebind: bool) -> dict:
    edits = {cell: (lambda source, new=new: new) for cell, new in _EMPTY.items()}
    if rebind:  # the first answer cell rebinds utils.checks, the check* helpers and torch's comparisons
        first = ANSWERS[0]
        edits[first] = lambda source: _REBIND_THE_CHECKS + _EMPTY[first]
    return edits


_G_LOSS = "g_loss = F.softplus(-discriminator(fake)).mean()"

# Correct answers written otherwise than the model answer, each of a form a test once failed or could fail: the stable
# softplus max(l, 0) + log1p(exp(-|l|)) (autograd's gradient at l = 0 is 1, not 1/2: no test logit sits there) and
# binary_cross_entropy_with_logits; the log-odds as a float32 constant and log 4 as torch.log(torch.tensor(4.0)) (off
# by 1e-8 and 2e-9); the fakes made again under no_grad for the discriminator and the losses returned as floats (a
# step that rounds differently, so its coverage runs are new draws: 8 modes on every seed of the tests); the AAE's
# losses by binary_cross_entropy_with_logits. Each must keep every test point.
_ALTERNATIVE = {
    "a4_losses_answer": """def _softplus(logits):
    return torch.clamp(logits, min=0) + torch.log1p(torch.exp(-logits.abs()))


def discriminator_loss(real_logits, fake_logits):
    return _softplus(-real_logits).mean() + _softplus(fake_logits).mean()


def minimax_generator_loss(fake_logits):
    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def nonsaturating_generator_loss(fake_logits):
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
""",
    "a4_opt_answer": """def optimal_logit(log_p, log_q, real_share=0.5):
    return log_p - log_q + torch.logit(torch.tensor(real_share))


def jsd_by_optimal_discriminator(log_p, log_q, x_p, x_q):
    on_p, on_q = optimal_logit(log_p(x_p), log_q(x_p)), optimal_logit(log_p(x_q), log_q(x_q))
    value = -F.softplus(-on_p).mean() - F.softplus(on_q).mean()
    return 0.5 * (value + torch.log(torch.tensor(4.0)))
""",
    "a4_step_answer": """def gan_step(generator, discriminator, x_real, z, opt_g, opt_d):
    with torch.no_grad():
        fake = generator(z)
    opt_d.zero_grad()
    real_l, fake_l = discriminator(x_real), discriminator(fake)
    d_loss = F.binary_cross_entropy_with_logits(real_l, torch.ones_like(real_l)) + F.binary_cross_entropy_with_logits(
        fake_l, torch.zeros_like(fake_l)
    )
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    judged = discriminator(generator(z))
    g_loss = F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged))
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()
""",
    "a4_aae_answer": """def aae_losses(discriminator, z_prior, z_codes):
    on_prior, on_codes = discriminator(z_prior), discriminator(z_codes.detach())
    d_loss = F.binary_cross_entropy_with_logits(on_prior, torch.ones_like(on_prior)) + (
        F.binary_cross_entropy_with_logits(on_codes, torch.zeros_like(on_codes))
    )
    judged = discriminator(z_codes)
    return d_loss, F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged))
""",
}

# student -> edits of the solved notebook ({cell id: edit}); None = the untouched student version.
SUBMISSIONS = {
    "solved": {},
    "untouched": None,
    "alternative": {cell: (lambda source, new=new: new) for cell, new in _ALTERNATIVE.items()},
    "log_of_sigmoid": {
        "a4_losses_answer": _replace(
            "return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()",
            "return -torch.log(torch.sigmoid(real_logits)).mean() - torch.log(1 - torch.sigmoid(fake_logits)).mean()",
        )
    },
    "densities_not_logs": {
        "a4_opt_answer": _replace(
            "return log_p - log_q + math.log(real_share) - math.log1p(-real_share)",
            "p, q = real_share * log_p.exp(), (1 - real_share) * log_q.exp()\n    return torch.logit(p / (p + q))",
        )
    },
    "minimax_step": {"a4_step_answer": _replace(_G_LOSS, "g_loss = -F.softplus(discriminator(fake)).mean()")},
    "sign_step": {"a4_step_answer": _replace(_G_LOSS, "g_loss = -F.softplus(-discriminator(fake)).mean()")},
    "generator_detached": {
        "a4_step_answer": _replace(_G_LOSS, "g_loss = F.softplus(-discriminator(fake.detach())).mean()")
    },
    "aae_codes_attached": {
        "a4_aae_answer": _replace(
            "F.softplus(discriminator(z_codes.detach())).mean()", "F.softplus(discriminator(z_codes)).mean()"
        )
    },
    "aae_minimax": {
        "a4_aae_answer": _replace(
            "enc_loss = F.softplus(-discriminator(z_codes)).mean()",
            "enc_loss = -F.softplus(discriminator(z_codes)).mean()",
        )
    },
    "empty": _empty(rebind=False),
    "empty_rebound": _empty(rebind=True),
    "tampered_checks": dict.fromkeys(ANSWERS, _tampered),
}

_STEP_EXACT = {"a4_step_test_sgd", "a4_step_hidden"}
_COVERAGE = {"a4_cover_test_ring", "a4_cover_hidden"}

# The test cells each mistake costs, and the words of the visible test's message that name it.
EXPECTED = {
    "log_of_sigmoid": (
        {"a4_loss_test_stable", "a4_loss_hidden"},
        {"a4_loss_test_stable": "write -log sigmoid(l) = softplus(-l)"},
    ),
    "densities_not_logs": (
        {"a4_opt_test_tails", "a4_jsd_test_far"},
        {
            "a4_opt_test_tails": "work with log_p - log_q, never with exp(log_p)",
            "a4_jsd_test_far": "D* = p / (p + q) computed from densities is 0 / 0 = NaN",
        },
    ),
    "minimax_step": (
        _STEP_EXACT | {"a4_step_test_losses"},
        {
            "a4_step_test_sgd": "Likely mistake: the minimax generator loss",
            "a4_step_test_losses": "Likely mistake: the minimax loss",
        },
    ),
    "sign_step": (
        _STEP_EXACT | _COVERAGE | {"a4_step_test_losses"},
        {"a4_step_test_sgd": "Likely mistake: the generator's loss with the wrong sign"},
    ),
    "generator_detached": (
        _STEP_EXACT | _COVERAGE,
        {"a4_step_test_sgd": "Likely mistake: the generator never moved"},
    ),
    "aae_codes_attached": (
        {"a4_aae_test_disc_grad", "a4_aae_hidden"},
        {"a4_aae_test_disc_grad": "detach the codes in the discriminator's loss"},
    ),
    "aae_minimax": (
        {"a4_aae_test_values", "a4_aae_test_enc_grad", "a4_aae_hidden"},
        {
            "a4_aae_test_values": "Likely mistake: the minimax loss mean log(1 - D(codes))",
            "a4_aae_test_enc_grad": "Likely mistake: the minimax loss",
        },
    ),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory, fast_kernels, grading_unsafe):  # noqa: F811
    """A course with every a4 submission above, graded once: (root, {student: SubmissionResult})."""
    root = tmp_path_factory.mktemp("course_a4")
    return root, grade_one_assignment(root, A4, SUBMISSIONS, grading_unsafe)


def test_solution_source_passes_every_visible_and_hidden_test(fast_kernels):  # noqa: F811
    assert_solution_passes_its_tests(A4)


def test_every_submission_was_graded(course):
    _, results = course
    failed = {s: r.error for s, r in results.items() if not r.graded}
    assert not failed and set(results) == set(SUBMISSIONS), (
        f"a4 submissions not graded: {failed or sorted(results)}"
    )


def test_model_answer_gets_every_test_point_and_waits_for_written_grades(course):
    root, _ = course
    scores = cell_scores(root, A4, "solved")
    short = {name: s for name, s in auto_points(scores).items() if s[0] != s[1]}
    assert not short, f"a4: the model answer loses points in {short}"
    assert sum(most for _, most in auto_points(scores).values()) == 23, (
        "a4 has 23 test points (README, intro)"
    )
    written = {name: s for name, s in scores.items() if name.endswith("_written")}
    assert len(written) == 4 and all(auto is None for auto, _ in written.values()), written
    assert sum(most for _, most in written.values()) == 12, "a4 has 12 written points (README, intro)"


def test_correct_answers_written_otherwise_get_every_test_point(course):
    root, _ = course
    short = {name: s for name, s in auto_points(cell_scores(root, A4, "alternative")).items() if s[0] != s[1]}
    assert not short, f"a4: a correct answer written otherwise than the model answer loses points in {short}"


def test_blank_submission_scores_zero(course):
    root, _ = course
    scores = cell_scores(root, A4, "untouched")
    assert scores and all(auto == 0 for auto, _ in scores.values()), f"the untouched release scored {scores}"


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_mistake_loses_exactly_its_tests_and_the_visible_one_names_it(course, student):
    root, _ = course
    lost = {
        name for name, (auto, most) in auto_points(cell_scores(root, A4, student)).items() if auto != most
    }
    expected, hints = EXPECTED[student]
    assert lost == expected, (
        f"a4/{student}: lost points in {sorted(lost)}, expected exactly {sorted(expected)}"
    )
    for grade_id, words in hints.items():
        message = visible_error(root, A4, student, grade_id)
        assert words in message, f"a4/{student}: {grade_id} should say {words!r}; it said:\n{message[:600]}"


def test_rebinding_the_checks_earns_nothing_over_the_same_empty_answers(course):
    root, _ = course
    honest = auto_points(cell_scores(root, A4, "empty"))
    rebound = auto_points(cell_scores(root, A4, "empty_rebound"))
    gained = {name: (honest[name][0], auto) for name, (auto, _) in rebound.items() if auto > honest[name][0]}
    assert not gained, (
        f"a4: rebinding utils.checks, the check helpers and torch.allclose/isclose earned points that the same "
        f"answers do not earn honestly (honest, rebound): {gained}"
    )
    hidden_only = {name for name in _test_cells(A4) if name.endswith("_hidden")}
    earned = {name: rebound[name][0] for name in hidden_only if rebound[name][0]}
    assert not earned, f"a4: the rebinding submission earned hidden-test points: {earned}"


def test_empty_answers_earn_no_test_point(course):
    root, _ = course
    earned = {name: auto for name, (auto, _) in auto_points(cell_scores(root, A4, "empty")).items() if auto}
    assert not earned, f"a4: answers that compute nothing earned {earned}"


def test_tampering_with_everything_the_tests_call_earns_no_test_point(course):
    root, _ = course
    tests = auto_points(cell_scores(root, A4, "tampered_checks"))
    assert len(tests) == len(_test_cells(A4)), (
        f"the tampering submission was not graded as a whole: {sorted(tests)}"
    )
    earned = {name: auto for name, (auto, _) in tests.items() if auto}
    assert not earned, (
        f"a4: a submission that rebinds utils.checks, the notebook's helpers and the grader's _ref comparisons, and "
        f"answers nothing, earned {earned}"
    )


def test_rebinding_answers_are_marked_for_review_and_honest_ones_are_not(course):
    _, results = course
    for student in ("empty_rebound", "tampered_checks"):
        assert results[student].notes.startswith("REVIEW, answer cells reach into the tests"), (
            f"a4/{student}: notes {results[student].notes!r}"
        )
    honest = {
        s: r.tampering
        for s, r in results.items()
        if s not in ("empty_rebound", "tampered_checks") and r.tampering
    }
    assert not honest, f"a4: honest answers were marked for review: {honest}"


def test_feedback_shows_no_line_of_any_hidden_test(course):
    root, _ = course
    hidden = _hidden_lines(root, A4)
    feedback = sorted((root / "grading" / "feedback").glob(f"*/{A4}/{A4}.html"))
    assert len(feedback) == len(SUBMISSIONS), f"expected feedback for every a4 submission, found {feedback}"
    for path in feedback:
        leaked = sorted(hidden & _html_lines(path))
        assert not leaked, f"{path} shows hidden test lines: {leaked[:3]}"
