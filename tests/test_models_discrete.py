"""utils.models.discrete: Gumbel-max and Gumbel-softmax sampling, the Concrete density, straight-through,
the score-function surrogate, NVIL's baselines and the categorical VAE (one property per test)."""

from __future__ import annotations

import math

import pytest
import torch

from utils import models
from utils.metrics import importance_sampled_log_likelihood
from utils.models import discrete as D
from utils.train import fit

LOGITS = torch.tensor([1.0, -0.5, 0.2, 2.0, -3.0], dtype=torch.float64)


def test_gumbel_max_frequencies_match_the_categorical_probabilities():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    counts = D.gumbel_max_sample(LOGITS.expand(n, 5), g).sum(0)
    p = torch.softmax(LOGITS, 0)
    chi2 = ((counts - n * p) ** 2 / (n * p)).sum().item()
    # 4 degrees of freedom: P(chi2 > 25) is about 5e-5; a wrong noise (-log U, or no noise) gives thousands.
    assert chi2 < 25.0, f"chi-square {chi2:.1f} with 4 dof: Gumbel-max does not sample softmax(logits)"


def test_gumbel_max_is_one_hot():
    z = D.gumbel_max_sample(torch.randn(7, 3, 4))
    assert z.shape == (7, 3, 4) and torch.all(z.sum(-1) == 1) and torch.all((z == 0) | (z == 1))


def test_gumbel_softmax_lies_on_the_simplex_and_hardens_as_tau_falls():
    g = torch.Generator().manual_seed(1)
    cold = D.gumbel_softmax_sample(LOGITS.expand(2000, 5), 0.05, g)
    hot = D.gumbel_softmax_sample(LOGITS.expand(2000, 5), 5.0, g)
    assert torch.allclose(cold.sum(-1), torch.ones(2000, dtype=torch.float64))
    assert cold.max(-1).values.mean() > 0.95 > 0.6 > hot.max(-1).values.mean(), (
        "tau should sharpen the samples"
    )


def test_gumbel_softmax_argmax_is_the_gumbel_max_sample_with_the_same_noise():
    soft = D.gumbel_softmax_sample(LOGITS.expand(500, 5), 0.7, torch.Generator().manual_seed(2))
    hard = D.gumbel_max_sample(LOGITS.expand(500, 5), torch.Generator().manual_seed(2))
    assert torch.equal(soft.argmax(-1), hard.argmax(-1)), "softmax((l+g)/tau) keeps the argmax of l+g"


def test_concrete_density_integrates_to_one_on_the_3_simplex():
    logits = torch.tensor([0.5, -1.0, 0.3], dtype=torch.float64)
    n = 1200
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # midpoints of the unit square
    y1, y2 = torch.meshgrid(t, t, indexing="ij")
    inside = y1 + y2 < 1
    y = torch.stack([y1[inside], y2[inside], 1 - y1[inside] - y2[inside]], -1)
    mass = D.concrete_log_prob(y, logits, 2.0).exp().sum().item() / n**2
    assert abs(mass - 1.0) < 0.01, f"Concrete density over the simplex sums to {mass:.4f}, not 1"


def test_binary_concrete_matches_the_logistic_change_of_variables():
    # K = 2: y1 = sigmoid((l1 - l2 + L) / tau) with L ~ Logistic(0, 1); its density is known in closed form.
    logits, tau = torch.tensor([0.8, -0.4], dtype=torch.float64), 0.6
    y1 = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    a = logits[0] - logits[1]
    u = tau * torch.log(y1 / (1 - y1)) - a  # the logistic variable giving y1
    log_logistic = u - 2 * torch.nn.functional.softplus(u)
    expected = log_logistic + math.log(tau) - torch.log(y1 * (1 - y1))
    got = D.concrete_log_prob(torch.stack([y1, 1 - y1], -1), logits, tau)
    assert torch.allclose(got, expected), "concrete_log_prob disagrees with the binary Concrete density"


def test_straight_through_forward_is_exactly_one_hot_and_backward_is_softmax():
    logits = torch.randn(6, 4, requires_grad=True)
    z = D.straight_through_sample(logits, torch.Generator().manual_seed(3))
    assert torch.all((z == 0) | (z == 1)) and torch.all(z.sum(-1) == 1), "ST's forward must be one-hot"
    w = torch.randn(6, 4)
    (grad,) = torch.autograd.grad((z * w).sum(), logits)
    (expected,) = torch.autograd.grad((torch.softmax(logits, -1) * w).sum(), logits)
    assert torch.allclose(grad, expected), "ST's backward must be that of softmax(logits)"


def test_st_gumbel_softmax_is_one_hot_with_the_relaxed_gradient():
    logits = torch.randn(5, 3, requires_grad=True)
    z = D.gumbel_softmax_sample(logits, 0.5, torch.Generator().manual_seed(4), hard=True)
    soft = D.gumbel_softmax_sample(logits, 0.5, torch.Generator().manual_seed(4))
    assert torch.all((z == 0) | (z == 1)) and torch.all(z.sum(-1) == 1)
    w = torch.randn(5, 3)
    assert torch.allclose(
        torch.autograd.grad((z * w).sum(), logits)[0], torch.autograd.grad((soft * w).sum(), logits)[0]
    )


def test_score_function_surrogate_is_unbiased_with_and_without_a_baseline():
    theta = torch.tensor([0.3, -0.2, 0.9], requires_grad=True)
    f_table = torch.tensor([2.0, -1.0, 5.0])
    exact = torch.autograd.grad((torch.softmax(theta, 0) * f_table).sum(), theta)[0]
    g = torch.Generator().manual_seed(5)
    z = D.gumbel_max_sample(theta.detach().expand(100_000, 3), g)  # [n, 3]
    f = (z * f_table).sum(-1)
    for b in (0.0, 3.0):
        log_q = (z * torch.log_softmax(theta, 0)).sum(-1)
        (grad,) = torch.autograd.grad(D.score_function_surrogate(f, log_q, b).mean(), theta)
        assert torch.allclose(grad, exact, atol=0.03), f"baseline {b}: {grad} != {exact}"


def test_score_function_surrogate_keeps_the_value_of_f():
    f, log_q = torch.tensor([1.5, -2.0]), torch.tensor([-0.1, -3.0], requires_grad=True)
    assert torch.equal(D.score_function_surrogate(f, log_q, 0.7).detach(), f)


def test_categorical_kl_uniform_is_zero_at_uniform_and_log_k_at_one_hot():
    assert torch.allclose(D.categorical_kl_uniform(torch.zeros(3, 20, 10)), torch.zeros(3), atol=1e-6)
    sharp = torch.full((2, 4), -1e4).index_fill(1, torch.tensor([1]), 0.0)  # [B=2, K=4] nearly one-hot
    assert torch.allclose(D.categorical_kl_uniform(sharp), torch.full((2,), math.log(4)), atol=1e-5)


def test_moving_average_returns_the_value_before_the_batch():
    avg = D.MovingAverage(decay=0.5)
    first = avg(torch.tensor([4.0, 6.0]))
    assert first.item() == 5.0, "the first batch replaces the zero start"
    second = avg(torch.tensor([1.0]))
    assert second.item() == 5.0 and avg.value.item() == 3.0, "0.5 * 5 + 0.5 * 1 = 3 after the second batch"


def test_nvil_baseline_learns_an_input_dependent_signal():
    torch.manual_seed(0)
    base = D.NVILBaseline(x_dim=3, hidden=(16,), normalise=False)
    opt = torch.optim.Adam(base.parameters(), lr=1e-2)
    x = torch.randn(256, 3)
    signal = 10 * x[:, 0] - 50.0  # depends on x, far from zero
    for _ in range(400):
        _, loss = base(x, signal)
        opt.zero_grad()
        loss.backward()
        opt.step()
    centred, _ = base(x, signal)
    assert centred.var() < 0.05 * signal.var(), "c(x) + b should explain most of an x-dependent signal"


@pytest.mark.parametrize("estimator", D.ESTIMATORS)
def test_categorical_vae_trains_with_every_estimator(estimator):
    torch.manual_seed(0)
    x = (torch.rand(256, 16) < torch.linspace(0.1, 0.9, 16)).float()
    model = D.CategoricalVAE(x_dim=16, hidden=(32,), n_vars=3, n_classes=4, estimator=estimator)
    model.eval()
    before = -model.loss(x)["loss"].item()
    model.train()
    fit(model, x, epochs=15, batch_size=32, lr=3e-3, progress=False, live_plot=False)
    model.eval()
    after = -model.loss(x, torch.Generator().manual_seed(0))["loss"].item()
    assert after > before + 1.0, f"{estimator}: ELBO {before:.2f} -> {after:.2f}, training did not help"


def _tiny_vae_and_exact_terms():
    """A 2 x 3 categorical VAE on 6 pixels and, by enumerating its 9 codes, log p(x) and the ELBO per x."""
    torch.manual_seed(0)
    model = D.CategoricalVAE(x_dim=6, hidden=(8,), n_vars=2, n_classes=3).double().eval()
    x = (torch.rand(4, 6, dtype=torch.float64) < 0.5).double()
    codes = torch.nn.functional.one_hot(
        torch.cartesian_prod(torch.arange(3), torch.arange(3)), 3
    ).double()  # [9, 2, 3]
    log_joint = models.bernoulli_log_likelihood(model.decode(codes), x[:, None]) - 2 * math.log(3)  # [4, 9]
    log_q = torch.einsum("bnk,cnk->bc", model.logits(x), codes)  # [4, 9]
    return model, x, torch.logsumexp(log_joint, -1), (log_q.exp() * (log_joint - log_q)).sum(-1)


def test_categorical_vae_log_weights_average_to_the_exact_elbo():
    model, x, _, elbo = _tiny_vae_and_exact_terms()
    with torch.no_grad():
        mean = model.log_weights(x, 200_000, torch.Generator().manual_seed(0)).mean(0)
    assert torch.allclose(mean, elbo, atol=0.02), (
        f"mean log weight {mean} != exact ELBO {elbo}: log p(z) or log q(z|x) wrong?"
    )


def test_categorical_vae_multi_sample_bound_reaches_the_exact_log_likelihood():
    model, x, log_px, _ = _tiny_vae_and_exact_terms()
    fn = lambda xb, n: model.log_weights(xb, n, torch.Generator().manual_seed(n))  # noqa: E731
    l_k = importance_sampled_log_likelihood(fn, x, k=20_000, chunk=20_000)
    assert torch.allclose(l_k, log_px, atol=0.01), (
        f"L_k {l_k} should approach log p(x) {log_px} by enumeration"
    )


def test_categorical_vae_temperature_anneals_to_its_floor():
    model = D.CategoricalVAE(
        x_dim=4, hidden=(8,), n_vars=2, n_classes=3, tau=1.0, tau_min=0.5, anneal_rate=0.1
    )
    assert model.temperature().item() == 1.0
    model.step.fill_(100.0)
    assert model.temperature().item() == 0.5


def test_bad_inputs_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="estimator"):
        D.CategoricalVAE(estimator="reinforce")
    with pytest.raises(ValueError, match="tau > 0"):
        D.gumbel_softmax_sample(torch.zeros(3), 0.0)
    with pytest.raises(TypeError, match="float logits"):
        D.gumbel_max_sample(torch.zeros(3, dtype=torch.long))


def test_exported_from_utils_models():
    assert (
        models.CategoricalVAE is D.CategoricalVAE and models.gumbel_softmax_sample is D.gumbel_softmax_sample
    )
