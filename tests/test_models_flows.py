"""Mathematical properties of the flow layers, the flow model and the bits/dim helpers in utils.models.flows."""

from __future__ import annotations

import math

import pytest
import torch

from utils import metrics
from utils.models import flows as F


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _perturb(module: torch.nn.Module, seed: int = 1, scale: float = 0.3) -> torch.nn.Module:
    """Move every parameter away from its start (zero-initialised nets would make the tests trivial)."""
    g = _gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module


def _layers() -> dict[str, tuple[torch.nn.Module, tuple[int, ...]]]:
    """One of each layer, float64, with moved parameters, and one example's shape."""
    torch.manual_seed(0)  # the networks' own start: the same whichever tests ran before
    g = _gen(0)
    img = (2, 4, 4)
    cases = {
        "planar": (F.PlanarFlow(3, generator=g), (3,)),
        "radial": (F.RadialFlow(3, generator=g), (3,)),
        "additive": (F.AdditiveCoupling(F.alternating_mask(4), F.coupling_mlp(4, 16)), (4,)),
        "affine": (F.AffineCoupling(F.alternating_mask(4, 1), F.coupling_mlp(4, 16, out=8)), (4,)),
        "scaling": (F.Scaling(4), (4,)),
        "actnorm": (F.ActNorm(4), (4,)),
        "actnorm_image": (F.ActNorm(2), img),
        "affine_checkerboard": (
            F.AffineCoupling(F.checkerboard_mask(*img), F.ConvCouplingNet(2, 4, 8, 1)),
            img,
        ),
        "affine_channel": (F.AffineCoupling(F.channel_mask(*img), F.ConvCouplingNet(2, 4, 8, 1)), img),
        "squeeze": (F.Squeeze(), img),
        "invertible_linear": (F.InvertibleLinear(3, generator=g), (3,)),
        "invertible_1x1_conv": (F.InvertibleLinear(2, generator=g), img),
    }
    return {k: (_perturb(m).double(), s) for k, (m, s) in cases.items()}


LAYERS = list(_layers())


def _jacobian_logdet(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """log|det dz/dx| per example from autograd's full Jacobian: [B, ...] -> [B]."""
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], xi)
        jac = jac.reshape(xi.numel(), xi.numel())
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


@pytest.mark.parametrize("name", LAYERS)
def test_logdet_equals_the_autograd_jacobian_slogdet(name):
    layer, shape = _layers()[name]
    x = torch.randn(3, *shape, generator=_gen(2), dtype=torch.float64)
    _, logdet = layer(x)
    expected = _jacobian_logdet(layer, x)
    assert logdet.shape == (3,), f"{name}: logdet must be one number per example, got {tuple(logdet.shape)}"
    assert torch.allclose(logdet, expected, atol=1e-8), (
        f"{name}: logdet {logdet.tolist()} != log|det J| {expected.tolist()} from autograd; a flipped sign, "
        "a missing term, or a coupling that also changes its conditioning half"
    )


@pytest.mark.parametrize("name", LAYERS)
def test_inverse_undoes_forward_to_1e_5(name):
    layer, shape = _layers()[name]
    x = torch.randn(16, *shape, generator=_gen(3), dtype=torch.float64)
    z, _ = layer(x)
    back = layer.inverse(z)
    err = (back - x).abs().max().item()
    assert err < 1e-5, (
        f"{name}: inverse(forward(x)) differs from x by {err:.2g}; the inverse is not the forward's"
    )


def test_a_flow_models_density_integrates_to_one_on_a_grid():
    torch.manual_seed(4)  # a fixed random flow whose mass lies well inside the grid
    g = _gen(4)
    layers = [F.AffineCoupling(F.alternating_mask(2, i % 2), F.coupling_mlp(2, 16, out=4)) for i in range(4)]
    model = _perturb(F.FlowModel([*layers, F.PlanarFlow(2, generator=g), F.ActNorm(2)], 2)).double()
    side = torch.linspace(-9, 9, 601, dtype=torch.float64)
    grid = torch.cartesian_prod(side, side)  # [601^2, 2]
    with torch.no_grad():
        mass = model.log_prob(grid).exp().sum().item() * (side[1] - side[0]).item() ** 2
    assert abs(mass - 1.0) < 1e-3, (
        f"the density integrates to {mass:.4f} on [-9, 9]^2; a logdet term is missing"
    )


def test_planar_flow_stays_invertible_for_any_u():
    flow = F.PlanarFlow(2).double()
    with torch.no_grad():
        flow.w.copy_(torch.tensor([1.0, 0.5]))
        flow.u.copy_(-10.0 * flow.w)  # w.u = -12.5 < -1: the raw map would fold the plane
        flow.b.zero_()
    wu_hat = (flow.w @ flow.u_hat()).item()
    assert wu_hat >= -1.0, f"w.u_hat = {wu_hat:.3f} < -1: the u_hat reparameterisation is wrong"
    t = torch.linspace(-6, 6, 2001, dtype=torch.float64)[:, None]
    z, logdet = flow(t * flow.w.detach() / flow.w.detach().norm())  # a line along w
    along = z @ flow.w.detach()
    assert torch.all(along[1:] > along[:-1]), "the map is not monotone along w: it is not invertible"
    assert torch.isfinite(logdet).all(), "log|det| must stay finite: 1 + u_hat.psi must never reach 0"


def test_bits_per_dim_with_the_logit_jacobian_against_a_hand_calculation():
    # One pixel at level 128, dequantized to y = 0.5 (u = 0): p = 0.5, l = 0, dl/dy = 0.9 / 0.25 = 3.6.
    # With log p(l) = -1.2 nats: -log p(x + u) = 1.2 - log 3.6 + log 256, in bits over one dimension.
    logits, logdet = F.logit_transform(torch.tensor([[0.5]]), alpha=0.05)
    assert abs(logits.item()) < 1e-7 and abs(logdet.item() - math.log(3.6)) < 1e-6, (
        "logit or its log-det is off"
    )
    bits = F.dequantized_bits_per_dim(torch.tensor([-1.2]), logdet, dims=1)
    hand = (1.2 - math.log(3.6) + math.log(256)) / math.log(2)
    assert abs(bits.item() - hand) < 1e-5, f"{bits.item():.6f} bits/dim, by hand {hand:.6f}"
    assert abs(bits.item() - metrics.bits_per_dim(1.2 - math.log(3.6) + math.log(256), 1)) < 1e-6


def test_the_uniform_density_gives_exactly_8_bits_per_dim():
    # When y is uniform, l = logit(0.05 + 0.9 y) has the truncated logistic density sigma(l) sigma(-l) / 0.9,
    # computed here without the transform's log-det (which it must cancel): bits/dim = log2(256) = 8.
    y = torch.rand(5, 10, generator=_gen(5))
    logits, logdet = F.logit_transform(y, alpha=0.05)
    log_sigmoids = torch.nn.functional.logsigmoid(logits) + torch.nn.functional.logsigmoid(-logits)  # [5, 10]
    log_p = log_sigmoids.sum(1) - 10 * math.log(0.9)
    bits = F.dequantized_bits_per_dim(log_p, logdet, dims=10)
    assert torch.allclose(bits, torch.full_like(bits, 8.0), atol=1e-5), (
        f"uniform model: {bits.tolist()} bits/dim, not 8: the logit's log-det or the D log 256 is off"
    )


def test_the_dequantized_flow_reports_bits_per_dim_of_its_flow_in_logit_space():
    flow = F.FlowModel([F.ActNorm(1), F.Squeeze()], (1, 4, 4))
    model = F.DequantizedFlow(flow)
    x = torch.randint(0, 256, (3, 16), generator=_gen(6))
    bits = model.bits_per_dim(x, generator=_gen(7))
    logits, logdet = model.to_logit(x, generator=_gen(7))
    expected = (-(flow.log_prob(logits) + logdet) / 16 + math.log(256)) / math.log(2)
    assert torch.allclose(bits, expected, atol=1e-5), (
        "DequantizedFlow must include the logit and 1/256 log-dets"
    )


def test_logit_inverse_undoes_the_logit_transform():
    y = torch.rand(4, 7, generator=_gen(8))
    assert torch.allclose(F.logit_inverse(F.logit_transform(y)[0]), y, atol=1e-5)


def test_affine_coupling_leaves_its_conditioning_half_unchanged():
    layer, shape = _layers()["affine_checkerboard"]
    x = torch.randn(2, *shape, generator=_gen(9), dtype=torch.float64)
    z, _ = layer(x)
    kept = layer.mask.bool().expand_as(x)
    assert torch.equal(z[kept], x[kept]), "the masked (conditioning) entries must pass through unchanged"


def test_actnorm_initialize_normalises_the_batch():
    x = 3.0 + 2.0 * torch.randn(512, 2, 6, 6, generator=_gen(10))
    layer = F.ActNorm(2)
    layer.initialize(x)
    z, _ = layer(x)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(2), atol=1e-4), "per-channel mean should be 0"
    assert torch.allclose(z.std((0, 2, 3)), torch.ones(2), atol=1e-3), "per-channel std should be 1"


def test_flow_model_follows_the_training_contract():
    model = F.FlowModel([F.AffineCoupling(F.alternating_mask(2), F.coupling_mlp(2, 8, out=4))], 2)
    out = model.loss(torch.randn(8, 2, generator=_gen(11)))
    assert set(out) >= {"loss"} and out["loss"].shape == () and out["loss"].requires_grad
    assert model.sample(5, generator=_gen(12)).shape == (5, 2)


def test_samples_have_the_data_shape_when_a_squeeze_changes_the_base_shape():
    model = F.FlowModel([F.Squeeze(), F.ActNorm(4)], (1, 4, 4))
    assert model.sample(3, generator=_gen(13)).shape == (3, 1, 4, 4), (
        "sample in the base's shape, then invert"
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: F.PlanarFlow(2)(torch.zeros(3, 5)), r"shape \[B, 2\]"),
        (lambda: F.AffineCoupling(torch.ones(2), F.coupling_mlp(2)), "both present"),
        (lambda: F.channel_mask(1, 4, 4), "even number of channels"),
        (lambda: F.FlowModel([F.Scaling(2)], 2).log_prob(torch.zeros(3, 3)), r"\[B, 2\]"),
        (lambda: F.FlowModel([torch.nn.Linear(2, 2)], 2), "no forward"),
        (lambda: F.dequantize(torch.tensor([0.0, 300.0])), "0..255"),
        (lambda: F.logit_transform(torch.tensor([[1.5]])), r"\[0, 1\]"),
        (lambda: F.Squeeze()(torch.zeros(1, 1, 5, 4)), "even H and W"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
