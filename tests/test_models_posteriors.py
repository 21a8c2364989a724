"""Properties of the richer posteriors of lecture 07 in utils.models.posteriors."""

from __future__ import annotations

import pytest
import torch

from utils.models import BayesLinear, IAFStep, PlanarFlow, amortized_planar


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_iaf(reverse: bool = False) -> IAFStep:
    """A float64 IAF step whose every parameter is random (the zero-started heads would hide mistakes)."""
    step = IAFStep(dim=5, context=3, hidden=16, reverse=reverse).double()
    with torch.no_grad():
        for i, p in enumerate(step.parameters()):
            p.copy_(torch.randn(p.shape, dtype=torch.float64, generator=_gen(i)))
    return step


def _jacobian(step: IAFStep, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(lambda v: step(v, h)[0], z)


def test_amortized_planar_matches_planar_flow_per_example():
    layers = [PlanarFlow(3, generator=_gen(i)).double() for i in range(4)]
    u = torch.stack([layer.u for layer in layers]).detach()  # [B=4, 3]
    w = torch.stack([layer.w for layer in layers]).detach()
    b = torch.stack([layer.b for layer in layers]).detach()
    z = torch.randn(6, 4, 3, dtype=torch.float64, generator=_gen(9))  # [k, B, D]
    out, logdet = amortized_planar(z, u, w, b)
    for i, layer in enumerate(layers):
        ref, ref_logdet = layer(z[:, i])
        assert torch.allclose(out[:, i], ref), "example i must use its own (u_i, w_i, b_i), with u_hat"
        assert torch.allclose(logdet[:, i], ref_logdet), "log-det differs from PlanarFlow's for the same map"


def test_amortized_planar_logdet_matches_autograd():
    g = _gen(2)
    u, w = (torch.randn(1, 3, dtype=torch.float64, generator=g) for _ in range(2))
    b = torch.full((1,), 0.3, dtype=torch.float64)
    for z in torch.randn(5, 1, 3, dtype=torch.float64, generator=g):
        jac = torch.autograd.functional.jacobian(lambda v: amortized_planar(v[None], u, w, b)[0][0], z[0])
        got = amortized_planar(z[None], u, w, b)[1][0, 0]
        assert torch.allclose(got, torch.linalg.slogdet(jac)[1]), "log|1 + u_hat.w tanh'| is wrong"


def test_amortized_planar_keeps_every_map_invertible():
    # w.u_hat > -1 is what makes z -> z + u_hat tanh(w.z + b) invertible; pick u against w on purpose
    w = torch.tensor([[1.0, 0.0], [0.5, 2.0], [3.0, -1.0]], dtype=torch.float64)
    u = -torch.tensor([4.0, 10.0, 0.5], dtype=torch.float64)[:, None] * w  # w.u far below -1
    b = torch.zeros(3, dtype=torch.float64)
    z = torch.linspace(-30, 30, 2001, dtype=torch.float64)[:, None, None] * w  # [2001, 3, 2] along w
    _, logdet = amortized_planar(z, u, w, b)
    assert torch.isfinite(logdet).all(), "1 + u_hat.w tanh' reached 0: u_hat must satisfy w.u_hat > -1"
    out = amortized_planar(z, u, w, b)[0]
    along = (out * w).sum(-1)  # w.z' must increase with w.z, or two z's map to one z'
    assert (along.diff(dim=0) > 0).all(), "the map folds along w: u_hat does not keep w.u_hat > -1"


def test_iaf_starts_near_the_identity():
    step = IAFStep(dim=4, context=3, hidden=8)
    z, h = torch.randn(7, 4, generator=_gen(10)), torch.randn(7, 3, generator=_gen(11))
    _, logdet = step(z, h)
    expected = 4 * torch.nn.functional.logsigmoid(torch.tensor(2.0))
    assert torch.allclose(logdet, expected.expand(7)), "a fresh step must have sigma = sigmoid(2) everywhere"


@pytest.mark.parametrize("reverse", [False, True])
def test_iaf_jacobian_is_triangular_in_its_order(reverse):
    step = _random_iaf(reverse)
    jac = _jacobian(step, torch.randn(5, dtype=torch.float64, generator=_gen(3)), torch.randn(3).double())
    above = jac.flip(0, 1).triu(1) if reverse else jac.triu(1)
    assert torch.all(above == 0), "z'_d depends on a z_j later in the step's order: the MADE masks are wrong"


def test_iaf_diagonal_is_sigma_so_z_d_never_sees_itself():
    step = _random_iaf()
    z, h = torch.randn(5, dtype=torch.float64, generator=_gen(4)), torch.randn(3, dtype=torch.float64)
    _, logdet = step(z, h)
    diag = _jacobian(step, z, h).diagonal()
    assert torch.all(diag > 0) and torch.all(diag < 1), "dz'_d/dz_d must be sigma_d in (0, 1): m_d sees z_d?"
    assert torch.allclose(diag.log().sum(), logdet), "log|det| must be the sum of log sigma"


def test_iaf_logdet_matches_autograd_with_sample_dimensions():
    step = _random_iaf(reverse=True)
    z = torch.randn(2, 4, 5, dtype=torch.float64, generator=_gen(5))  # [k, B, D]
    h = torch.randn(4, 3, dtype=torch.float64, generator=_gen(6)).expand(2, 4, 3)
    _, logdet = step(z, h)
    assert logdet.shape == (2, 4)
    ref = torch.linalg.slogdet(_jacobian(step, z[1, 2], h[1, 2]))[1]
    assert torch.allclose(logdet[1, 2], ref), "per-sample log-det must come from that sample's own sigma"


def test_iaf_refuses_mismatched_context():
    with pytest.raises(ValueError, match="same leading"):
        IAFStep(4, 3, 8)(torch.zeros(2, 4), torch.zeros(3, 3))


def test_bayes_linear_kl_matches_monte_carlo():
    layer = BayesLinear(3, 2, prior_std=0.7, rho_init=-1.0).double()
    n = 200_000
    std = torch.nn.functional.softplus(layer.w_rho.detach())
    w = layer.w_mu.detach() + std * torch.randn(n, 2, 3, dtype=torch.float64, generator=_gen(7))
    log_q = torch.distributions.Normal(layer.w_mu.detach(), std).log_prob(w).sum((1, 2))
    log_p = torch.distributions.Normal(0.0, 0.7).log_prob(w).sum((1, 2))
    bias_std = torch.nn.functional.softplus(layer.b_rho.detach())
    bias_kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(layer.b_mu.detach(), bias_std), torch.distributions.Normal(0.0, 0.7)
    ).sum()
    mc = (log_q - log_p).mean() + bias_kl
    assert abs(layer.kl().item() - mc.item()) < 0.05, (
        "closed-form KL(q || prior) disagrees with its Monte Carlo mean"
    )


def test_bayes_linear_kl_vanishes_at_the_prior():
    layer = BayesLinear(4, 3, prior_std=1.0)
    with torch.no_grad():
        layer.w_mu.zero_()
        layer.w_rho.fill_(torch.log(torch.expm1(torch.tensor(1.0))))  # softplus(rho) = 1
        layer.b_rho.copy_(layer.w_rho[0, :3])
    assert abs(layer.kl().item()) < 1e-5, "KL(prior || prior) must be 0"


def test_bayes_linear_draws_one_weight_matrix_per_sample():
    layer = BayesLinear(1, 1, rho_init=0.0)
    x = torch.ones(3, 5, 1)  # three samples, five identical rows
    y = layer(x, generator=_gen(8))
    assert y.shape == (3, 5, 1)
    assert torch.allclose(y, y[:, :1].expand_as(y)), "rows of one sample must share that sample's weights"
    assert not torch.allclose(y[0], y[1]), "different samples must draw different weights"


def test_bayes_linear_refuses_unbatched_input():
    with pytest.raises(ValueError, match="weight samples"):
        BayesLinear(2, 1)(torch.zeros(5, 2))
