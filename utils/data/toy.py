"""Two-dimensional toy densities: samplers for all, exact log-densities where one exists.

=================  ==========================================================  ===================
name               distribution                                                exact log-density
=================  ==========================================================  ===================
``two_moons``      two interleaved half circles (radius 2) plus N(0, 0.2^2)    no
``ring8``          mixture of 8 equal Gaussians, means on a circle of          yes
                   radius 2, std 0.2
``grid25``         mixture of 25 equal Gaussians, means on the grid            yes
                   {-4, -2, 0, 2, 4}^2, std 0.05
``spirals``        two interleaved spiral arms (1.5 turns, radius up to 3.5)   no
                   plus N(0, 0.1^2)
``checkerboard``   uniform on the 8 "black" 2x2 squares of a 4x4 board         yes (piecewise
                   covering [-4, 4]^2                                          constant, -inf off)
``funnel``         Neal's funnel: v = x[:, 0] ~ N(0, 3^2),                     yes
                   x[:, 1] | v ~ N(0, e^v)
``banana``         x1 ~ N(0, 1.5^2), x2 = 0.5 (x1^2 - 2.25) + N(0, 0.5^2)      yes (unit Jacobian)
``bimodal``        0.5 N((-2, 0), 0.6^2 I) + 0.5 N((2, 0), 0.6^2 I)            yes
=================  ==========================================================  ===================

Every exact log-density here is **normalized** (it integrates to 1; the tests check this on a
grid). A lecture that needs an *unnormalized* target, such as black-box variational inference on
``funnel``, ``banana`` or ``bimodal``, can use them as they are: adding a constant changes nothing.
All log-densities are differentiable in ``x`` (checkerboard's gradient is zero where it is finite).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

TOY_NAMES = ("two_moons", "ring8", "spirals", "checkerboard", "funnel", "banana", "bimodal", "grid25")
TOY_EXACT = ("ring8", "checkerboard", "funnel", "banana", "bimodal", "grid25")

RING8_RADIUS = 2.0
RING8_STD = 0.2
GRID25_SPACING = 2.0
GRID25_STD = 0.05
BIMODAL_MEANS = ((-2.0, 0.0), (2.0, 0.0))
BIMODAL_STD = 0.6
FUNNEL_V_STD = 3.0
BANANA_X1_STD = 1.5
BANANA_CURVATURE = 0.5
BANANA_X2_STD = 0.5
CHECKERBOARD_HALF_WIDTH = 4.0  # the board covers [-4, 4]^2 in 4x4 squares of side 2

_LOG_2PI = math.log(2.0 * math.pi)

_BOUNDS = {
    "two_moons": (-4.0, 4.0, -3.0, 3.0),
    "ring8": (-3.5, 3.5, -3.5, 3.5),
    "grid25": (-5.0, 5.0, -5.0, 5.0),
    "spirals": (-4.5, 4.5, -4.5, 4.5),
    "checkerboard": (-4.5, 4.5, -4.5, 4.5),
    "funnel": (-9.0, 9.0, -10.0, 10.0),
    "banana": (-5.0, 5.0, -3.0, 10.0),
    "bimodal": (-4.5, 4.5, -3.0, 3.0),
}


def _check_name(name: str) -> None:
    if name not in TOY_NAMES:
        raise ValueError(f"Unknown toy density {name!r}; use one of {', '.join(TOY_NAMES)}.")


def toy_bounds(name: str) -> tuple[float, float, float, float]:
    """A plotting box ``(xmin, xmax, ymin, ymax)`` that holds nearly all of the mass of ``name``.

    For ``funnel`` it holds about 95%: the mouth (|x| up to e^4.5 at v = 9) is wider than any useful plot.
    """
    _check_name(name)
    return _BOUNDS[name]


def ring8_centers(device: torch.device | str | None = None) -> torch.Tensor:
    """The 8 mixture means of ``ring8``, ``float32 [8, 2]`` (useful for mode-coverage measures)."""
    angles = torch.arange(8, dtype=torch.float32, device=device) * (2.0 * math.pi / 8.0)
    return RING8_RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)


def grid25_centers(device: torch.device | str | None = None) -> torch.Tensor:
    """The 25 mixture means of ``grid25``, ``float32 [25, 2]``, on the grid {-4, -2, 0, 2, 4}^2."""
    ticks = GRID25_SPACING * (torch.arange(5, dtype=torch.float32, device=device) - 2.0)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


# ------------------------------------------------------------------------------------------ samplers
# Each draws float32 [n, 2] on the generator's device (or on `device` when there is no generator).


def _uniform(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=dev)


def _normal(shape: tuple[int, ...], g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=g, device=dev)


def _coin(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=g, device=dev)


def _sample_two_moons(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    t = math.pi * _uniform(n, g, dev)  # [n]
    lower = _coin(n, g, dev).bool()
    upper_moon = torch.stack([t.cos(), t.sin()], dim=1)
    lower_moon = torch.stack([1.0 - t.cos(), 0.5 - t.sin()], dim=1)
    x = torch.where(lower[:, None], lower_moon, upper_moon) + 0.1 * _normal((n, 2), g, dev)
    return 2.0 * (x - torch.tensor([0.5, 0.25], device=dev))  # centred, radius 2


def _sample_ring8(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=g, device=dev)
    return ring8_centers(dev)[k] + RING8_STD * _normal((n, 2), g, dev)


def _sample_grid25(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    k = torch.randint(0, 25, (n,), generator=g, device=dev)
    return grid25_centers(dev)[k] + GRID25_STD * _normal((n, 2), g, dev)


def _sample_spirals(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    t = 3.0 * math.pi * _uniform(n, g, dev).sqrt()  # sqrt spreads points evenly along the arm
    radius = t * (3.5 / (3.0 * math.pi))
    sign = 2.0 * _coin(n, g, dev).float() - 1.0
    arm = torch.stack([t.cos(), t.sin()], dim=1) * (sign * radius)[:, None]
    return arm + 0.1 * _normal((n, 2), g, dev)


def _sample_checkerboard(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    w = CHECKERBOARD_HALF_WIDTH
    x1 = -w + 2.0 * w * _uniform(n, g, dev)
    column = torch.floor((x1 + w) / 2.0).clamp(0, 3)
    row = torch.remainder(column, 2) + 2.0 * _coin(n, g, dev)  # rows with (row + column) even
    x2 = -w + 2.0 * row + 2.0 * _uniform(n, g, dev)
    return torch.stack([x1, x2], dim=1)


def _sample_funnel(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    v = FUNNEL_V_STD * _normal((n,), g, dev)
    x = (0.5 * v).exp() * _normal((n,), g, dev)
    return torch.stack([v, x], dim=1)


def _sample_banana(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    x1 = BANANA_X1_STD * _normal((n,), g, dev)
    x2 = _banana_shift(x1) + BANANA_X2_STD * _normal((n,), g, dev)
    return torch.stack([x1, x2], dim=1)


def _sample_bimodal(n: int, g: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    means = torch.tensor(BIMODAL_MEANS, device=dev)
    return means[_coin(n, g, dev)] + BIMODAL_STD * _normal((n, 2), g, dev)


_SAMPLERS: dict[str, Callable[[int, torch.Generator | None, torch.device], torch.Tensor]] = {
    "two_moons": _sample_two_moons,
    "ring8": _sample_ring8,
    "grid25": _sample_grid25,
    "spirals": _sample_spirals,
    "checkerboard": _sample_checkerboard,
    "funnel": _sample_funnel,
    "banana": _sample_banana,
    "bimodal": _sample_bimodal,
}


def toy_sample(
    name: str,
    n: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` samples of the toy density ``name``, ``float32 [n, 2]`` on ``device``.

    The draw happens on the generator's device (so a seeded CPU generator gives the same points on
    every machine) and is then moved to ``device``, which defaults to the generator's device, else CPU.
    """
    _check_name(name)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n={n!r} must be a non-negative integer (the number of samples).")
    draw_on = (
        generator.device if generator is not None else torch.device(device if device is not None else "cpu")
    )
    x = _SAMPLERS[name](n, generator, draw_on).to(torch.float32)
    return x.to(device) if device is not None else x


# -------------------------------------------------------------------------------- log-densities


def _log_normal(x: torch.Tensor, mean: torch.Tensor | float, std: torch.Tensor | float) -> torch.Tensor:
    """Elementwise log N(x; mean, std^2)."""
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    return -0.5 * ((x - mean) / std) ** 2 - std.log() - 0.5 * _LOG_2PI


def _banana_shift(x1: torch.Tensor) -> torch.Tensor:
    return BANANA_CURVATURE * (x1**2 - BANANA_X1_STD**2)  # zero-mean bend


def _log_prob_ring8(x: torch.Tensor) -> torch.Tensor:
    centers = ring8_centers(x.device).to(x.dtype)  # [8, 2]
    per_component = _log_normal(x[:, None, :], centers, RING8_STD).sum(-1)  # [n, 8]
    return torch.logsumexp(per_component, dim=1) - math.log(8.0)


def _log_prob_grid25(x: torch.Tensor) -> torch.Tensor:
    centers = grid25_centers(x.device).to(x.dtype)  # [25, 2]
    per_component = _log_normal(x[:, None, :], centers, GRID25_STD).sum(-1)  # [n, 25]
    return torch.logsumexp(per_component, dim=1) - math.log(25.0)


def _log_prob_checkerboard(x: torch.Tensor) -> torch.Tensor:
    w = CHECKERBOARD_HALF_WIDTH
    cells = torch.floor((x + w) / 2.0)  # [n, 2] square indices 0..3 inside the board
    inside = ((x >= -w) & (x < w)).all(dim=1)
    black = torch.remainder(cells.sum(dim=1), 2) == 0
    log_density = -math.log(8 * 2.0 * 2.0)  # 8 squares of area 4
    on = torch.full_like(x[:, 0], log_density)
    # x * 0 keeps the graph connected, so autograd gives zero gradients instead of none.
    return torch.where(inside & black, on, torch.full_like(on, -math.inf)) + 0.0 * x.sum(dim=1)


def _log_prob_funnel(x: torch.Tensor) -> torch.Tensor:
    v, y = x[:, 0], x[:, 1]
    return _log_normal(v, 0.0, FUNNEL_V_STD) + _log_normal(y, 0.0, (0.5 * v).exp())


def _log_prob_banana(x: torch.Tensor) -> torch.Tensor:
    # (x1, x2) -> (x1, x2 - shift(x1)) has unit Jacobian, so the Gaussian densities simply add.
    x1, x2 = x[:, 0], x[:, 1]
    return _log_normal(x1, 0.0, BANANA_X1_STD) + _log_normal(x2 - _banana_shift(x1), 0.0, BANANA_X2_STD)


def _log_prob_bimodal(x: torch.Tensor) -> torch.Tensor:
    means = torch.tensor(BIMODAL_MEANS, dtype=x.dtype, device=x.device)  # [2, 2]
    per_component = _log_normal(x[:, None, :], means, BIMODAL_STD).sum(-1)  # [n, 2]
    return torch.logsumexp(per_component, dim=1) - math.log(2.0)


_LOG_PROBS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ring8": _log_prob_ring8,
    "grid25": _log_prob_grid25,
    "checkerboard": _log_prob_checkerboard,
    "funnel": _log_prob_funnel,
    "banana": _log_prob_banana,
    "bimodal": _log_prob_bimodal,
}


def toy_log_prob(name: str, x: torch.Tensor) -> torch.Tensor:
    """The exact, normalized log-density of toy ``name`` at points ``x [n, 2]`` -> ``[n]`` (x's dtype/device).

    Raises ValueError for ``two_moons`` and ``spirals``, whose densities have no closed form.
    """
    _check_name(name)
    if name not in _LOG_PROBS:
        raise ValueError(
            f"The toy density {name!r} has no exact log-density (it is defined by its sampler); "
            f"toy_log_prob supports {', '.join(TOY_EXACT)}."
        )
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"toy_log_prob needs points of shape [n, 2], got {shape}; stack coordinates as columns."
        )
    if not x.is_floating_point():
        x = x.to(torch.float32)
    return _LOG_PROBS[name](x)
