"""utils.data toy densities: samplers, exact log-densities, and that the two agree."""

from __future__ import annotations

import math

import pytest
import torch

from utils import data
from utils.data import toy

EXACT_WITH_GRID = ("ring8", "grid25", "checkerboard", "banana", "bimodal")  # funnel's neck is too thin for a grid
GRID_BOXES = {  # wide enough to hold all but a negligible part of the mass
    "ring8": (-4.0, 4.0, -4.0, 4.0),
    "grid25": (-5.0, 5.0, -5.0, 5.0),
    "checkerboard": (-5.0, 5.0, -5.0, 5.0),
    "banana": (-9.0, 9.0, -5.0, 40.0),
    "bimodal": (-6.0, 6.0, -4.0, 4.0),
}


def grid(box: tuple[float, float, float, float], n: int) -> tuple[torch.Tensor, float]:
    """Cell midpoints of an n x n grid over ``box`` as [n*n, 2] float64, and the cell area."""
    x0, x1, y0, y1 = box
    dx, dy = (x1 - x0) / n, (y1 - y0) / n
    xs = x0 + dx * (torch.arange(n, dtype=torch.float64) + 0.5)
    ys = y0 + dy * (torch.arange(n, dtype=torch.float64) + 0.5)
    gx, gy = torch.meshgrid(xs, ys, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), dx * dy


@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_samples_are_float32_points_in_the_plane(name):
    x = data.toy_sample(name, 500, generator=torch.Generator().manual_seed(0))
    assert x.shape == (500, 2) and x.dtype == torch.float32, f"{name}: got {tuple(x.shape)} {x.dtype}"
    assert torch.isfinite(x).all(), f"{name}: samples should be finite"


@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_seeded_samples_repeat_and_seeds_differ(name):
    a = data.toy_sample(name, 100, generator=torch.Generator().manual_seed(3))
    b = data.toy_sample(name, 100, generator=torch.Generator().manual_seed(3))
    c = data.toy_sample(name, 100, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b), f"{name}: the same seed should give the same samples"
    assert not torch.equal(a, c), f"{name}: different seeds should give different samples"


@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_plotting_box_holds_nearly_all_samples(name):
    x = data.toy_sample(name, 5000, generator=torch.Generator().manual_seed(0))
    x0, x1, y0, y1 = data.toy_bounds(name)
    inside = ((x[:, 0] >= x0) & (x[:, 0] <= x1) & (x[:, 1] >= y0) & (x[:, 1] <= y1)).float().mean().item()
    wanted = 0.93 if name == "funnel" else 0.97  # the funnel's mouth is wider than any useful plot
    assert inside > wanted, f"{name}: only {inside:.1%} of samples fall in toy_bounds"


@pytest.mark.parametrize("name", EXACT_WITH_GRID)
def test_exact_densities_integrate_to_one(name):
    points, area = grid(GRID_BOXES[name], 400)
    mass = data.toy_log_prob(name, points).exp().sum().item() * area
    assert abs(mass - 1.0) < 0.01, f"{name}: the density integrates to {mass:.4f}; is a constant missing?"


@pytest.mark.parametrize("name", EXACT_WITH_GRID)
def test_sampler_and_density_have_the_same_moments(name):
    points, area = grid(GRID_BOXES[name], 400)
    weights = data.toy_log_prob(name, points).exp() * area  # [n*n]
    samples = data.toy_sample(name, 40_000, generator=torch.Generator().manual_seed(0)).double()
    for label, f in (("mean", lambda p: p), ("second moment", lambda p: p**2)):
        expected = (weights[:, None] * f(points)).sum(0)
        values = f(samples)
        error = (values.mean(0) - expected).abs()
        tolerance = 5 * values.std(0) / math.sqrt(len(values)) + 0.01
        assert (error < tolerance).all(), (
            f"{name}: sample {label} {values.mean(0).tolist()} vs density {expected.tolist()}; "
            "the sampler and toy_log_prob describe different distributions"
        )


@pytest.mark.parametrize("name", data.TOY_EXACT)
def test_every_sample_has_positive_density(name):
    x = data.toy_sample(name, 2000, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(data.toy_log_prob(name, x)).all(), f"{name}: samples fall outside the support"


def test_funnel_is_neals_funnel():
    x = torch.tensor([[0.5, -1.2], [-2.0, 0.1], [3.0, 4.0]], dtype=torch.float64)
    v, y = x[:, 0], x[:, 1]
    log_p_v = -(v**2) / (2 * 9.0) - math.log(3.0) - 0.5 * math.log(2 * math.pi)  # N(v; 0, 3^2)
    log_p_y = -(y**2) / (2 * v.exp()) - v / 2 - 0.5 * math.log(2 * math.pi)  # N(y; 0, e^v)
    expected = log_p_v + log_p_y
    assert torch.allclose(data.toy_log_prob("funnel", x), expected), (
        'toy_log_prob("funnel") is not N(v; 0, 9) N(x; 0, e^v)'
    )
    s = data.toy_sample("funnel", 40_000, generator=torch.Generator().manual_seed(0)).double()
    assert abs(s[:, 0].std().item() - 3.0) < 0.1, "v = x[:, 0] should have standard deviation 3"
    assert abs((s[:, 1] / (s[:, 0] / 2).exp()).std().item() - 1.0) < 0.05, "x | v should have variance e^v"


def test_checkerboard_is_zero_on_white_squares_and_off_the_board():
    x = torch.tensor([[-3.0, -3.0], [-1.0, -3.0], [5.0, 0.0], [1.0, 1.0]])
    log_p = data.toy_log_prob("checkerboard", x)
    assert log_p[0] == pytest.approx(-math.log(32)) and log_p[3] == pytest.approx(-math.log(32))
    assert log_p[1] == -math.inf and log_p[2] == -math.inf


@pytest.mark.parametrize("name", ("ring8", "funnel", "banana", "bimodal"))
def test_log_densities_have_correct_gradients(name):
    x = data.toy_sample(name, 5, generator=torch.Generator().manual_seed(2)).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda p: data.toy_log_prob(name, p), (x,)), f"{name}: bad gradient"


def test_ring8_modes_are_equally_likely():
    x = data.toy_sample("ring8", 16_000, generator=torch.Generator().manual_seed(0))
    nearest = torch.cdist(x, data.ring8_centers()).argmin(dim=1)
    share = nearest.bincount(minlength=8).float() / len(x)
    assert (share - 1 / 8).abs().max() < 0.015, f"mode shares {share.tolist()} should all be 1/8"
    assert torch.allclose(data.ring8_centers().norm(dim=1), torch.full((8,), toy.RING8_RADIUS))


def test_grid25_modes_are_equally_likely_and_on_the_grid():
    x = data.toy_sample("grid25", 25_000, generator=torch.Generator().manual_seed(0))
    nearest = torch.cdist(x, data.grid25_centers()).argmin(dim=1)
    share = nearest.bincount(minlength=25).float() / len(x)
    assert (share - 1 / 25).abs().max() < 0.008, f"mode shares {share.tolist()} should all be 1/25"
    ticks = {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert set(data.grid25_centers().flatten().tolist()) == ticks, "centres should lie on {-4, -2, 0, 2, 4}^2"


@pytest.mark.parametrize("name", ("two_moons", "spirals"))
def test_no_exact_density_is_a_clear_error(name):
    with pytest.raises(ValueError, match="supports ring8, checkerboard, funnel, banana, bimodal"):
        data.toy_log_prob(name, torch.zeros(3, 2))


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="two_moons, ring8"):
        data.toy_sample("swiss_roll", 10)
    with pytest.raises(ValueError, match="two_moons, ring8"):
        data.toy_log_prob("swiss_roll", torch.zeros(3, 2))


def test_points_must_be_n_by_2():
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        data.toy_log_prob("banana", torch.zeros(3))
    with pytest.raises(ValueError, match="non-negative integer"):
        data.toy_sample("banana", -1)


def test_samples_go_to_the_requested_device():
    x = data.toy_sample("ring8", 10, device="cpu")
    assert x.device.type == "cpu"
    meta = data.toy_sample("ring8", 10, generator=torch.Generator().manual_seed(0), device="meta")
    assert meta.device.type == "meta", "a CPU-seeded draw should be moved to the requested device"
