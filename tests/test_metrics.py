"""Properties of the evaluation measures in utils.metrics.

Most tests use a linear-Gaussian model, z ~ N(0, I_2), x | z ~ N(W z + b, s^2 I_3), whose marginal
p(x) = N(b, W W^T + s^2 I) and posterior are known in closed form. W has orthogonal columns, so
the exact posterior is a diagonal Gaussian and can be used (or deliberately spoiled) as q.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from utils import metrics
from utils.models import VAE, iwae_bound, log_normal, log_standard_normal, reparameterize

W = torch.tensor([[1.0, 1.0], [1.0, -1.0], [0.5, 0.0]], dtype=torch.float64)  # W^T W = diag(2.25, 2)
B_OFFSET = torch.tensor([0.2, -0.1, 0.4], dtype=torch.float64)
NOISE_VAR = 0.25


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def exact_log_px(x: torch.Tensor) -> torch.Tensor:
    cov = W @ W.T + NOISE_VAR * torch.eye(3, dtype=torch.float64)
    return MultivariateNormal(B_OFFSET, covariance_matrix=cov).log_prob(x)


def posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact p(z|x) = N(mean, diag var): x [B, 3] -> (mean [B, 2], log var [B, 2])."""
    var = 1.0 / (1.0 + torch.diag(W.T @ W) / NOISE_VAR)  # [2]
    mean = var * ((x - B_OFFSET) @ W) / NOISE_VAR  # [B, 2]
    return mean, torch.log(var).expand_as(mean)


def make_log_weights_fn(shift: float = 0.0, inflate: float = 1.0):
    """log p(x, z) - log q(z|x) for q = the exact posterior, shifted by ``shift`` and widened."""

    def log_weights(x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        mean, logvar = posterior(x)
        mu, logvar = mean + shift, logvar + math.log(inflate)
        z = reparameterize(mu, logvar, generator=generator, k=k)  # [k, B, 2]
        log_px_given_z = log_normal(x, z @ W.T + B_OFFSET, math.log(NOISE_VAR))  # [k, B]
        return log_px_given_z + log_standard_normal(z) - log_normal(z, mu, logvar)

    return log_weights


def data(n: int = 4, seed: int = 0) -> torch.Tensor:
    g = _gen(seed)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return z @ W.T + B_OFFSET + math.sqrt(NOISE_VAR) * torch.randn(n, 3, generator=g, dtype=torch.float64)


def table_fn(table: torch.Tensor):
    """A log_weights_fn that deals out the rows of a fixed [k, B] table in order, recording requests."""
    state = {"next": 0, "requests": []}

    def log_weights(x: torch.Tensor, k: int) -> torch.Tensor:
        start = state["next"]
        state["next"] += k
        state["requests"].append(k)
        return table[start : start + k]

    return log_weights, state


# ----------------------------------------------------------------------------------------------
# Importance-sampled log-likelihood
# ----------------------------------------------------------------------------------------------
def test_is_estimate_with_large_k_is_close_to_the_exact_log_likelihood():
    x = data()
    g = _gen(1)
    fn = make_log_weights_fn(shift=0.3, inflate=2.0)
    estimate = metrics.importance_sampled_log_likelihood(lambda xb, k: fn(xb, k, g), x, k=20_000, chunk=2_000)
    exact = exact_log_px(x)
    assert estimate.shape == (4,), f"one estimate per example expected, got {tuple(estimate.shape)}"
    assert torch.allclose(estimate, exact, atol=0.03), f"IS {estimate.tolist()} vs exact {exact.tolist()}"


def test_is_estimate_is_exact_when_q_is_the_true_posterior():
    x = data()
    estimate = metrics.importance_sampled_log_likelihood(make_log_weights_fn(), x, k=3, chunk=2)
    torch.testing.assert_close(
        estimate, exact_log_px(x), msg="with q = p(z|x) every weight equals p(x), so any k gives log p(x)"
    )


def test_expected_bound_increases_with_k_towards_log_px():
    x = data(n=2)
    fn = make_log_weights_fn(shift=0.5, inflate=3.0)
    log_w = fn(x.repeat(2_000, 1), 32, _gen(2))  # [32, R * B]: 2000 replicates of 32 samples each
    ks = (1, 2, 4, 8, 32)
    bounds = [iwae_bound(log_w[:k]) for k in ks]  # nested: each bound reuses the smaller k's samples
    for k_small, k_big, small, big in zip(ks, ks[1:], bounds, bounds[1:]):
        diff = big - small
        mean, se = diff.mean(), diff.std() / math.sqrt(diff.numel())
        assert mean > 3 * se, f"E[L_{k_big}] - E[L_{k_small}] = {mean:.4f} +- {se:.4f} is not positive"
    gap = exact_log_px(x).repeat(2_000) - bounds[-1]
    assert gap.mean() > 0, f"E[L_32] exceeds log p(x) by {-gap.mean():.4f}: it must be a lower bound"


def test_chunked_estimate_equals_the_unchunked_one():
    table = 5 * torch.randn(1_003, 6, generator=_gen(3), dtype=torch.float64)  # k not a multiple of chunk
    fn, state = table_fn(table)
    chunked = metrics.importance_sampled_log_likelihood(fn, torch.zeros(6, 1), k=1_003, chunk=100)
    expected = torch.logsumexp(table, 0) - math.log(1_003)
    torch.testing.assert_close(
        chunked, expected, msg="running logsumexp over chunks lost or repeated samples"
    )
    assert max(state["requests"]) <= 100, f"asked for {max(state['requests'])} samples at once, chunk was 100"
    assert sum(state["requests"]) == 1_003, f"drew {sum(state['requests'])} samples in all, not k=1003"


def test_is_estimate_builds_no_autograd_graph():
    param = torch.zeros((), requires_grad=True)
    estimate = metrics.importance_sampled_log_likelihood(
        lambda x, k: param + torch.zeros(k, 2), torch.zeros(2), k=4
    )
    assert not estimate.requires_grad, "evaluation must run under no_grad so chunks do not pile up a graph"


def test_is_estimate_rejects_log_weights_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\[n, B\]"):
        metrics.importance_sampled_log_likelihood(
            lambda x, k: torch.zeros(x.shape[0], k), torch.zeros(3, 1), k=5
        )


# ----------------------------------------------------------------------------------------------
# evaluate_nll
# ----------------------------------------------------------------------------------------------
def test_evaluate_nll_averages_minus_log_px_over_batches():
    x = data(n=7)
    nll = metrics.evaluate_nll(make_log_weights_fn(), x, k=3, batch_size=3, chunk=2)
    assert isinstance(nll, float), "evaluate_nll returns a plain float (mean nats per example)"
    assert abs(nll + exact_log_px(x).mean().item()) < 1e-9, "uneven last batch or wrong sign/mean"


def test_evaluate_nll_of_a_vae_matches_the_is_estimate_and_restores_training_mode():
    torch.manual_seed(0)
    vae = VAE(x_dim=784, hidden=(16,), z_dim=3).train()
    x = torch.bernoulli(torch.full((5, 784), 0.2), generator=_gen(4))
    nll = metrics.evaluate_nll(vae, x, k=20, batch_size=5, chunk=8, generator=_gen(5))
    g = _gen(5)
    expected = -metrics.importance_sampled_log_likelihood(
        lambda xb, k: vae.log_weights(xb, k, generator=g), x, k=20, chunk=8
    ).mean()
    assert abs(nll - expected.item()) < 1e-4, f"evaluate_nll {nll:.4f} vs direct IS estimate {expected:.4f}"
    assert vae.training, "evaluate_nll must put the model back in training mode afterwards"


def test_evaluate_nll_rejects_a_module_without_log_weights():
    with pytest.raises(TypeError, match="log_weights"):
        metrics.evaluate_nll(torch.nn.Linear(2, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="no examples"):
        metrics.evaluate_nll(make_log_weights_fn(), torch.zeros(0, 3))


# ----------------------------------------------------------------------------------------------
# Active units, bits/dim, mode coverage
# ----------------------------------------------------------------------------------------------
def test_active_units_counts_dims_whose_posterior_mean_varies():
    x = torch.randn(500, 4, generator=_gen(6))
    scales = torch.tensor([1.0, 0.3, 0.05, 0.0, 0.0])  # variances about 1, 0.09, 0.0025, 0, 0

    def encode(xb):
        mu = torch.cat([xb[:, :1].expand(-1, 5) * scales])
        return mu + torch.tensor([0.0, 0.0, 0.0, 7.0, 0.0]), torch.zeros_like(mu)  # a tuple, like VAE.encode

    assert metrics.active_units(encode, x, batch_size=128) == 2, "only dims with Var_x E[z] > 0.01 are active"
    assert metrics.active_units(encode, x, threshold=1e-3) == 3, "threshold is not honoured"


def test_active_units_rejects_empty_data_and_a_zero_batch_size():
    with pytest.raises(ValueError, match="no examples"):
        metrics.active_units(lambda xb: xb, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="batch_size=0"):
        metrics.active_units(lambda xb: xb, torch.zeros(5, 3), batch_size=0)


def test_latent_variances_are_the_population_variance_of_the_means():
    x = torch.randn(300, 3, generator=_gen(7))
    variances = metrics.latent_variances(lambda xb: 2 * xb, x, batch_size=64)
    torch.testing.assert_close(variances, (2 * x).double().var(0, correction=0), msg="Var over data wrong")


def test_bits_per_dim_converts_nats_per_example():
    assert abs(metrics.bits_per_dim(784 * math.log(2), 784) - 1.0) < 1e-12, "784 ln 2 nats = 1 bit/dim"
    torch.testing.assert_close(
        metrics.bits_per_dim(torch.tensor([0.0, 2 * math.log(2)]), 2), torch.tensor([0.0, 1.0])
    )


def test_mode_coverage_counts_modes_hit_and_good_samples():
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = 2 * torch.stack([angles.cos(), angles.sin()], 1)  # ring of 8 modes, radius 2
    near = centers[[0, 0, 1, 2, 2, 2, 5]] + 0.01  # 7 good samples on modes 0, 1, 2, 5
    far = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-1.0, 0.0]])  # 3 samples between or beyond modes
    out = metrics.mode_coverage(torch.cat([near, far]), centers, radius=0.2)
    assert out["modes"] == 4, f"samples sit on 4 modes, counted {out['modes']}"
    assert abs(out["high_quality"] - 0.7) < 1e-6, (
        f"7 of 10 samples are near a mode, got {out['high_quality']}"
    )
    assert out["counts"].tolist() == [2, 1, 3, 0, 0, 1, 0, 0], f"per-mode counts wrong: {out['counts']}"
    assert metrics.mode_coverage(torch.cat([near, far]), centers, 0.2, min_count=2)["modes"] == 2


def test_nats_to_bits_divides_by_ln_2():
    assert abs(metrics.nats_to_bits(math.log(2)) - 1.0) < 1e-12, "ln 2 nats must be exactly 1 bit"
    torch.testing.assert_close(
        metrics.nats_to_bits(torch.tensor([0.0, 3 * math.log(2)])), torch.tensor([0.0, 3.0])
    )


def test_bits_per_char_of_a_uniform_model_is_log2_of_the_alphabet():
    n_chars, alphabet = 1000, 64
    total = n_chars * math.log(alphabet)  # -log p of 1000 characters, each with probability 1/64
    assert abs(metrics.bits_per_char(total, n_chars) - 6.0) < 1e-12, (
        "uniform over 64 characters is 6 bits/char"
    )
    with pytest.raises(ValueError, match="dims=0"):
        metrics.bits_per_char(1.0, 0)
