"""a4_adversarial through the real grading pipeline: nbgrader and real kernels in a temporary course.

As tests/test_grading_a3.py: a course of its own, made with tests/test_grading.py's helpers. Submissions: the model
answer, correct answers written otherwise (each must keep every point), the untouched release, typical mistakes
(each must lose exactly its tests, with the visible one naming the mistake), honest but empty answers of the
documented shapes, the same answers after rebinding utils.checks and torch's comparisons, and a2's tamperer. The
mistakes of the training step are chosen so that the coverage tests' verdict on them is not a matter of luck
(results/a4_coverage_spread.md): the minimax loss covers the ring from a fresh start as well as the non-saturating
one (so only the exact step tests may catch it), a flipped sign and a generator that never moves cover nothing on
every seed measured. Mistakes in different answer cells are graded together, several per submission.
"""

from __future__ import annotations

import pytest
from graded_course import GradedAssignmentTests, combined_mistakes, standard_submissions
from test_grading import (
    _replace,
    fast_kernels,  # noqa: F401  (a module fixture that the grading tests' course fixture requests)
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

_STEP_EXACT = {"a4_step_test_sgd", "a4_step_hidden"}
_COVERAGE = {"a4_cover_test_ring", "a4_cover_hidden"}

# One typical mistake each: (answer cell, its edit, the test cells it costs, {visible test: words naming it}).
MISTAKES = {
    "log_of_sigmoid": (
        "a4_losses_answer",
        _replace(
            "return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()",
            "return -torch.log(torch.sigmoid(real_logits)).mean() - torch.log(1 - torch.sigmoid(fake_logits)).mean()",
        ),
        {"a4_loss_test_stable", "a4_loss_hidden"},
        {"a4_loss_test_stable": "write -log sigmoid(l) = softplus(-l)"},
    ),
    "densities_not_logs": (
        "a4_opt_answer",
        _replace(
            "return log_p - log_q + math.log(real_share) - math.log1p(-real_share)",
            "p, q = real_share * log_p.exp(), (1 - real_share) * log_q.exp()\n    return torch.logit(p / (p + q))",
        ),
        {"a4_opt_test_tails", "a4_jsd_test_far"},
        {
            "a4_opt_test_tails": "work with log_p - log_q, never with exp(log_p)",
            "a4_jsd_test_far": "D* = p / (p + q) computed from densities is 0 / 0 = NaN",
        },
    ),
    "minimax_step": (
        "a4_step_answer",
        _replace(_G_LOSS, "g_loss = -F.softplus(discriminator(fake)).mean()"),
        _STEP_EXACT | {"a4_step_test_losses"},
        {
            "a4_step_test_sgd": "Likely mistake: the minimax generator loss",
            "a4_step_test_losses": "Likely mistake: the minimax loss",
        },
    ),
    "sign_step": (
        "a4_step_answer",
        _replace(_G_LOSS, "g_loss = -F.softplus(-discriminator(fake)).mean()"),
        _STEP_EXACT | _COVERAGE | {"a4_step_test_losses"},
        {"a4_step_test_sgd": "Likely mistake: the generator's loss with the wrong sign"},
    ),
    "generator_detached": (
        "a4_step_answer",
        _replace(_G_LOSS, "g_loss = F.softplus(-discriminator(fake.detach())).mean()"),
        _STEP_EXACT | _COVERAGE,
        {"a4_step_test_sgd": "Likely mistake: the generator never moved"},
    ),
    "aae_codes_attached": (
        "a4_aae_answer",
        _replace(
            "F.softplus(discriminator(z_codes.detach())).mean()", "F.softplus(discriminator(z_codes)).mean()"
        ),
        {"a4_aae_test_disc_grad", "a4_aae_hidden"},
        {"a4_aae_test_disc_grad": "detach the codes in the discriminator's loss"},
    ),
    "aae_minimax": (
        "a4_aae_answer",
        _replace(
            "enc_loss = F.softplus(-discriminator(z_codes)).mean()",
            "enc_loss = -F.softplus(discriminator(z_codes)).mean()",
        ),
        {"a4_aae_test_values", "a4_aae_test_enc_grad", "a4_aae_hidden"},
        {
            "a4_aae_test_values": "Likely mistake: the minimax loss mean log(1 - D(codes))",
            "a4_aae_test_enc_grad": "Likely mistake: the minimax loss",
        },
    ),
}

# To keep the suite short, mistakes in different answer cells share a submission (as in a5): each must still lose
# exactly its own tests, so one submission loses the union, and each visible test must still name its mistake.
COMBINED = {
    "mistakes_a": ("log_of_sigmoid", "densities_not_logs", "minimax_step", "aae_codes_attached"),
    "mistakes_b": ("sign_step", "aae_minimax"),
    "mistakes_c": ("generator_detached",),
}


# student -> edits of the solved notebook ({cell id: edit}); None = the untouched student version. EXPECTED: the test
# cells each combined submission loses, and the words of the visible tests' messages that name its mistakes.
MISTAKEN, EXPECTED = combined_mistakes(MISTAKES, COMBINED)
SUBMISSIONS = {**standard_submissions(ANSWERS, _EMPTY, _ALTERNATIVE), **MISTAKEN}


class TestA4Adversarial(GradedAssignmentTests):
    ASSIGNMENT = A4
    SUBMISSIONS = SUBMISSIONS
    EXPECTED = EXPECTED
    TEST_POINTS, WRITTEN_CELLS, WRITTEN_POINTS = 23, 4, 12
