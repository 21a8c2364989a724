"""utils.models.gan: the losses from logits, the optimal discriminator's game value, the players and
the GAN's training step (one property per test)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from utils import models
from utils.train import fit

# torch's forward-mode AD scripts its decompositions on first use and warns that scripting is deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
LOGITS = torch.tensor([-6.0, -1.5, 0.0, 0.7, 4.0], dtype=torch.float64)


def test_discriminator_loss_is_binary_cross_entropy():
    real, fake = LOGITS, LOGITS.flip(0)
    expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    got = models.discriminator_loss(real, fake)
    assert torch.allclose(got, expected), f"{got} != -E log D(x) - E log(1 - D(G(z))) = {expected}"


def test_generator_losses_match_their_formulas():
    d = torch.sigmoid(LOGITS)
    minimax = models.minimax_generator_loss(LOGITS)
    assert torch.allclose(minimax, torch.log(1 - d).mean()), "minimax loss should be E log(1 - D(G(z)))"
    ns = models.nonsaturating_generator_loss(LOGITS)
    assert torch.allclose(ns, -torch.log(d).mean()), "non-saturating loss should be -E log D(G(z))"


def test_losses_stay_finite_and_exact_at_extreme_logits():
    big = torch.tensor([200.0])  # float32: sigmoid(200) == 1 exactly, so log(1 - D) would be log 0
    assert torch.allclose(models.discriminator_loss(big, -big), torch.tensor(0.0), atol=1e-30)
    assert torch.allclose(models.discriminator_loss(-big, big), torch.tensor(400.0)), "should be 200 + 200"
    assert torch.allclose(models.minimax_generator_loss(big), torch.tensor(-200.0)), (
        "log(1 - D) = -l for large l"
    )
    assert torch.allclose(models.nonsaturating_generator_loss(-big), torch.tensor(200.0)), (
        "-log D = -l for l << 0"
    )


def test_minimax_gradient_vanishes_where_the_nonsaturating_one_does_not():
    logit = torch.tensor([-10.0], requires_grad=True)  # D is sure the fake is fake
    (g_mm,) = torch.autograd.grad(models.minimax_generator_loss(logit), logit)
    (g_ns,) = torch.autograd.grad(models.nonsaturating_generator_loss(logit), logit)
    assert torch.allclose(g_mm, -torch.sigmoid(logit.detach())), "d/dl log(1 - sigmoid(l)) = -sigmoid(l)"
    assert torch.allclose(g_ns, -(1 - torch.sigmoid(logit.detach()))), (
        "d/dl -log sigmoid(l) = -(1 - sigmoid(l))"
    )
    assert g_mm.abs() < 1e-4 < 0.99 < g_ns.abs(), (
        f"minimax {g_mm.item():.2e}, non-saturating {g_ns.item():.3f}"
    )


def _log_normal(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def test_optimal_discriminator_value_is_minus_log4_plus_twice_jsd():
    gen = torch.Generator().manual_seed(0)
    n = 400_000
    x_p = 1.0 + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)  # data: N(1, 0.5^2)
    x_q = -0.5 + 1.2 * torch.randn(n, generator=gen, dtype=torch.float64)  # model: N(-0.5, 1.2^2)

    def optimal_logit(x):  # D* = p / (p + q), so its logit is log p - log q
        return _log_normal(x, 1.0, 0.5) - _log_normal(x, -0.5, 1.2)

    value = -models.discriminator_loss(optimal_logit(x_p), optimal_logit(x_q))
    grid = torch.linspace(-9, 9, 200_001, dtype=torch.float64)
    log_p, log_q = _log_normal(grid, 1.0, 0.5), _log_normal(grid, -0.5, 1.2)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    dx = grid[1] - grid[0]
    jsd = 0.5 * ((log_p.exp() * (log_p - log_m)).sum() + (log_q.exp() * (log_q - log_m)).sum()) * dx
    expected = -math.log(4) + 2 * jsd
    assert abs(value - expected) < 0.01, f"V(D*, G) = {value:.4f}, -log 4 + 2 JSD = {expected:.4f}"


def test_dcgan_players_have_the_right_shapes_and_range():
    torch.manual_seed(0)
    g, d = models.DCGANGenerator(z_dim=8, width=4), models.DCGANDiscriminator(width=4)
    x = g(torch.randn(3, 8))
    assert x.shape == (3, 1, 28, 28), f"generator output {tuple(x.shape)}, expected (3, 1, 28, 28)"
    assert x.abs().max() < 1, "generator output should lie in (-1, 1) (tanh)"
    assert d(x).shape == (3,) and d(x.flatten(1)).shape == (3,), "discriminator: one logit per image"


def _toy_gan(loss="non_saturating"):
    torch.manual_seed(0)
    return models.GAN(models.mlp_generator(2, (16,)), models.mlp_discriminator(2, (16,)), 2, loss)


def _sgd(gan, lr=0.1):
    return {
        "gen": torch.optim.SGD(gan.generator.parameters(), lr),
        "disc": torch.optim.SGD(gan.discriminator.parameters(), lr),
    }


def test_training_step_moves_g_only_by_its_own_loss_through_the_updated_d():
    gan, x = _toy_gan(), torch.randn(32, 2)
    reference = copy.deepcopy(gan)
    torch.manual_seed(1)
    gan.training_step(x, _sgd(gan))
    # By hand: the same z, one D step on detached fakes, then G's gradient through the updated D.
    torch.manual_seed(1)
    z = reference.latent(32)
    d_loss = models.discriminator_loss(
        reference.discriminator(x), reference.discriminator(reference.generator(z))
    )
    d_grads = torch.autograd.grad(d_loss, list(reference.discriminator.parameters()))
    with torch.no_grad():
        for p, g in zip(reference.discriminator.parameters(), d_grads):
            p -= 0.1 * g
    g_loss = models.nonsaturating_generator_loss(reference.discriminator(reference.generator(z)))
    g_grads = torch.autograd.grad(g_loss, list(reference.generator.parameters()))
    for p, p0, g in zip(gan.generator.parameters(), reference.generator.parameters(), g_grads):
        assert torch.allclose(p, p0 - 0.1 * g, atol=1e-6), (
            "G moved by more than its own loss (fakes not detached?)"
        )
    for p, p0 in zip(gan.discriminator.parameters(), reference.discriminator.parameters()):
        assert torch.allclose(p, p0, atol=1e-6), (
            "D's step differs from one SGD step on the discriminator loss"
        )


def test_a_generator_step_raises_the_discriminators_score_of_its_samples():
    for loss in models.GENERATOR_LOSSES:
        gan = _toy_gan(loss)
        z = gan.latent(256, torch.Generator().manual_seed(0))
        before = gan.discriminator(gan.generator(z)).mean()
        opt = torch.optim.SGD(gan.generator.parameters(), 0.05)
        models.GENERATOR_LOSSES[loss](gan.discriminator(gan.generator(z))).backward()
        opt.step()
        after = gan.discriminator(gan.generator(z)).mean()
        assert after > before, (
            f"{loss}: a G step lowered the mean logit ({before:.4f} -> {after:.4f}); sign flipped?"
        )


def test_fit_trains_a_gan_with_two_optimizers_and_logs_both_losses():
    gan, x = _toy_gan(), torch.randn(512, 2) + 3
    history = fit(
        gan, x, steps=20, batch_size=64, optimizer=models.gan_optimizers(gan, lr=1e-3), progress=False
    )
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(history.values), f"logged {sorted(history.values)}"
    assert gan.sample(5).shape == (5, 2) and gan.training, "sample(n) gives [n, 2] and restores training mode"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="generator_loss"):
        models.GAN(models.mlp_generator(), models.mlp_discriminator(), 2, "wasserstein")
    with pytest.raises(KeyError, match="'gen' and 'disc'"):
        _toy_gan().training_step(torch.randn(4, 2), {"gen": torch.optim.SGD(_toy_gan().parameters(), 0.1)})
    with pytest.raises(ValueError, match="floating-point"):
        models.discriminator_loss(torch.tensor([1, 2]), torch.tensor([0.0]))


def test_jacobian_norm_of_a_linear_generator_is_its_frobenius_norm():
    torch.manual_seed(0)
    g = torch.nn.Linear(6, 20)  # J = W at every z, so |J|_F = |W|_F for each row
    z = torch.randn(5, 6)
    got = models.generator_jacobian_norm(g, z, n_directions=4000, rng=torch.Generator().manual_seed(1))
    exact = g.weight.detach().norm()
    assert got.shape == (5,), f"one norm per latent expected, got shape {tuple(got.shape)}"
    # Hutchinson's estimate of |J|_F^2 has relative sd <= sqrt(2 / n); its root about half that (1.1% here).
    assert torch.allclose(got, exact.expand(5), rtol=0.05), (
        f"{got.tolist()} != |W|_F = {exact:.3f}: square root of the mean of |J v|^2 over directions?"
    )


def test_jacobian_norm_matches_the_exact_jacobian_of_a_nonlinear_generator():
    torch.manual_seed(0)
    g = models.mlp_generator(3, (16, 16), x_dim=5)
    z = torch.randn(4, 3)
    exact = torch.stack([torch.autograd.functional.jacobian(g, zi).norm() for zi in z])  # [4], |J|_F row by row
    got = models.generator_jacobian_norm(g, z, n_directions=4000, rng=torch.Generator().manual_seed(2))
    assert torch.allclose(got, exact, rtol=0.05), f"{got.tolist()} != exact {exact.tolist()}"
    assert (exact.max() / exact.min()) > 1.05, "the test needs latents whose norms differ"


def test_jacobian_norm_uses_eval_mode_and_leaves_the_generator_as_it_was():
    torch.manual_seed(0)
    g = models.DCGANGenerator(z_dim=4, width=2)
    g.train()
    stats = copy.deepcopy(g.state_dict())
    z = torch.randn(6, 4)
    other = torch.cat([z[:1], torch.randn(5, 4)])  # the same first latent among different companions
    both = models.generator_jacobian_norm(g, z, 3, torch.Generator().manual_seed(3))
    mixed = models.generator_jacobian_norm(g, other, 3, torch.Generator().manual_seed(3))
    assert g.training, "the generator's train/eval mode should be restored"
    assert all(torch.equal(stats[k], v) for k, v in g.state_dict().items()), "batch norm's statistics moved"
    # Eval mode: row 0 depends on z[0] alone (train-mode batch norm would mix the rows).
    assert torch.allclose(both[0], mixed[0], rtol=1e-5), f"row 0 {both[0]:.3g} changed with its companions: {mixed[0]:.3g}"
    assert not both.requires_grad, "a measurement: no graph should be kept"


def test_jacobian_truncation_keeps_the_flattest_share():
    torch.manual_seed(0)
    g = models.mlp_generator(2, (32,), x_dim=2)
    z = torch.randn(200, 2)
    mask = models.jacobian_truncation(g, z, keep=0.75, n_directions=4, rng=torch.Generator().manual_seed(4))
    norms = models.generator_jacobian_norm(g, z, 4, torch.Generator().manual_seed(4))
    assert mask.dtype == torch.bool and int(mask.sum()) == 150, f"kept {int(mask.sum())} of 200, expected 150"
    assert norms[mask].max() <= norms[~mask].min(), "every kept latent should be flatter than every dropped one"


def test_jacobian_sampler_refuses_bad_input():
    g = models.mlp_generator(2, (8,), x_dim=2)
    with pytest.raises(ValueError, match="keep"):
        models.jacobian_truncation(g, torch.randn(4, 2), keep=0.0)
    with pytest.raises(ValueError, match="n_directions"):
        models.generator_jacobian_norm(g, torch.randn(4, 2), n_directions=0)
    with pytest.raises(ValueError, match=r"\[B, z_dim\]"):
        models.generator_jacobian_norm(g, torch.randn(4))
