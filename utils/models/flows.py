"""Normalizing flows: invertible layers with exact log-determinants, a sequential flow model, and the
dequantization and logit helpers that turn an image flow's density into bits per dimension.

Convention (as NICE and Real NVP): a layer maps the *data side* ``x`` towards the *base side* ``z``,

    ``forward(x) -> (z, logdet)`` with ``logdet = log |det dz/dx|`` per example, shape [B];
    ``inverse(z) -> x``;

so that ``log p(x) = log N(z; 0, I) + sum of the layers' logdets`` (change of variables).

* ``PlanarFlow``, ``RadialFlow``: Rezende & Mohamed (2015), with their invertibility conditions built
  in (the planar ``u_hat``; ``beta >= -alpha`` for the radial flow).
* ``AdditiveCoupling`` and ``Scaling``: NICE (Dinh et al. 2014); ``AffineCoupling``: Real NVP (Dinh
  et al. 2016); ``ActNorm``: Glow's per-channel affine layer with data-dependent start (Kingma &
  Dhariwal 2018), and its invertible 1x1 convolution ``InvertibleLinear``; ``Squeeze``: space-to-depth, so that images can use channel masks.
* Masks: ``alternating_mask`` (vectors), ``checkerboard_mask`` and ``channel_mask`` (images).
* Coupling networks: ``coupling_mlp`` and ``ConvCouplingNet``, last layer zero so a coupling starts
  as the identity.
* ``FlowModel``: layers in sequence over a standard normal base: ``log_prob``, ``sample``, ``loss``
  (the contract of ``utils.train.fit``), ``initialize`` (data-dependent start of ActNorm layers).
* Images: ``dequantize``, ``logit_transform`` / ``logit_inverse``, ``dequantized_bits_per_dim``
  and ``DequantizedFlow``, which trains a ``FlowModel`` on 8-bit images in bits per dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from utils import metrics, runtime

LOG_2PI = math.log(2.0 * math.pi)


@runtime_checkable
class Flow(Protocol):
    """An invertible layer: ``forward(x) -> (z, log|det dz/dx|)`` per example, and ``inverse(z) -> x``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def inverse(self, z: torch.Tensor) -> torch.Tensor: ...


def _check_vectors(x: torch.Tensor, dim: int, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != dim:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who} needs points of shape [B, {dim}], got {shape}; stack them as rows.")


def _per_example(t: torch.Tensor) -> torch.Tensor:
    """Sum every dimension but the first: [B, ...] -> [B]."""
    return t.flatten(1).sum(1)


# ------------------------------------------------------------------------------ Rezende & Mohamed


class PlanarFlow(nn.Module):
    """z = x + u_hat tanh(w.x + b), with log|det dz/dx| = log|1 + u_hat.w tanh'(w.x + b)|.

    ``u_hat = u + (softplus(w.u) - 1 - w.u) w / |w|^2`` makes ``w.u_hat = softplus(w.u) - 1 > -1``,
    the condition under which the map is invertible, for any value of the free parameter ``u``.
    There is no closed-form inverse: ``inverse`` solves the scalar equation for ``w.x`` by bisection.
    """

    def __init__(self, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.w = nn.Parameter(0.5 * torch.randn(dim, generator=generator))
        self.u = nn.Parameter(0.5 * torch.randn(dim, generator=generator))
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> torch.Tensor:
        wu = self.w @ self.u
        return self.u + (F.softplus(wu) - 1.0 - wu) * self.w / (self.w @ self.w).clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_vectors(x, self.dim, "PlanarFlow")
        u = self.u_hat()  # [D]
        a = x @ self.w + self.b  # [B]
        z = x + u * torch.tanh(a)[:, None]  # [B, D]
        psi_u = (1.0 - torch.tanh(a) ** 2) * (self.w @ u)  # [B], matrix determinant lemma
        return z, torch.log(torch.abs(1.0 + psi_u))

    @torch.no_grad()
    def inverse(self, z: torch.Tensor, iterations: int = 80) -> torch.Tensor:
        _check_vectors(z, self.dim, "PlanarFlow.inverse")
        u, w, b = self.u_hat().double(), self.w.double(), self.b.double()
        c, s = w @ u, z.double() @ w  # w.x solves alpha + c tanh(alpha + b) = s, increasing in alpha
        low, high = s - c.abs() - 1.0, s + c.abs() + 1.0  # tanh is in (-1, 1): the root is inside
        for _ in range(iterations):
            mid = 0.5 * (low + high)
            above = mid + c * torch.tanh(mid + b) > s
            low, high = torch.where(above, low, mid), torch.where(above, mid, high)
        alpha = 0.5 * (low + high)
        return (z.double() - u * torch.tanh(alpha + b)[:, None]).to(z.dtype)


class RadialFlow(nn.Module):
    """z = x + beta h(r) (x - x0), h = 1 / (alpha + r), r = |x - x0|; alpha > 0 and beta >= -alpha.

    log|det| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r); the inverse is closed-form
    (a quadratic in r). ``alpha = softplus(alpha_raw)``, ``beta = -alpha + softplus(beta_raw)``.
    """

    def __init__(self, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.x0 = nn.Parameter(torch.randn(dim, generator=generator))
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def alpha_beta(self) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = F.softplus(self.alpha_raw)
        return alpha, -alpha + F.softplus(self.beta_raw)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_vectors(x, self.dim, "RadialFlow")
        alpha, beta = self.alpha_beta()
        diff = x - self.x0  # [B, D]
        r = diff.norm(dim=1)  # [B]
        bh = beta / (alpha + r)
        z = x + bh[:, None] * diff
        logdet = (self.dim - 1) * torch.log1p(bh) + torch.log1p(bh - beta * r / (alpha + r) ** 2)
        return z, logdet

    @torch.no_grad()
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        _check_vectors(z, self.dim, "RadialFlow.inverse")
        alpha, beta = self.alpha_beta()
        diff = z - self.x0
        rz = diff.norm(dim=1)  # |z - x0| = r (1 + beta / (alpha + r)): solve for r >= 0
        p = alpha + beta - rz
        r = 0.5 * (-p + torch.sqrt(p**2 + 4.0 * alpha * rz))
        return self.x0 + diff / (1.0 + beta / (alpha + r))[:, None]


# --------------------------------------------------------------------------- NICE, Real NVP, Glow


def alternating_mask(dim: int, parity: int = 0) -> torch.Tensor:
    """1 on the coordinates a coupling conditions on (every other one, starting at ``parity``): [dim]."""
    return (torch.arange(dim) % 2 == parity).float()


def checkerboard_mask(channels: int, height: int, width: int, parity: int = 0) -> torch.Tensor:
    """Real NVP's spatial checkerboard, 1 where (row + column) % 2 == parity: [C, H, W]."""
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    board = ((rows + cols) % 2 == parity).float()
    return board.expand(channels, height, width).clone()


def channel_mask(channels: int, height: int, width: int, parity: int = 0) -> torch.Tensor:
    """Real NVP's channel mask: 1 on the first half of the channels (``parity=0``) or the second: [C, H, W]."""
    if channels % 2:
        raise ValueError(f"A channel mask needs an even number of channels, got {channels}; squeeze first.")
    first = (torch.arange(channels) < channels // 2).float()
    return (first if parity == 0 else 1.0 - first)[:, None, None].expand(channels, height, width).clone()


def _check_mask(mask: torch.Tensor) -> torch.Tensor:
    if not bool(((mask == 0) | (mask == 1)).all()) or bool(mask.all()) or not bool(mask.any()):
        raise ValueError("A coupling mask must hold 0s and 1s, with both present (1 = conditioning part).")
    return mask.float()


class _Coupling(nn.Module):
    """Shared by the couplings: the mask (1 = conditioning half, passed through unchanged) and its net."""

    def __init__(self, mask: torch.Tensor, net: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mask", _check_mask(mask))
        self.net = net

    def _check(self, x: torch.Tensor, who: str) -> None:
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != tuple(self.mask.shape):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{who} needs inputs of shape [B, {', '.join(map(str, self.mask.shape))}], got {shape}."
            )


class AdditiveCoupling(_Coupling):
    """NICE: z = x on the mask, z = x + m(x_masked) off it. Volume-preserving: logdet = 0."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x, "AdditiveCoupling")
        shift = (1.0 - self.mask) * self.net(self.mask * x)
        return x + shift, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        self._check(z, "AdditiveCoupling.inverse")
        return z - (1.0 - self.mask) * self.net(self.mask * z)


class AffineCoupling(_Coupling):
    """Real NVP: z = x on the mask, z = x exp(s) + t off it, with (s_raw, t) = net(x_masked) split along
    dim 1 and s = scale * tanh(s_raw) (a learnt scale per coordinate keeps early steps tame).
    logdet = sum of s over the transformed coordinates."""

    def __init__(self, mask: torch.Tensor, net: nn.Module) -> None:
        super().__init__(mask, net)
        self.scale = nn.Parameter(torch.ones_like(self.mask))

    def _shift_and_log_scale(self, x_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s_raw, t = self.net(x_masked).chunk(2, dim=1)
        free = 1.0 - self.mask
        return free * t, free * self.scale * torch.tanh(s_raw)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x, "AffineCoupling")
        t, s = self._shift_and_log_scale(self.mask * x)
        return x * torch.exp(s) + t, _per_example(s)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        self._check(z, "AffineCoupling.inverse")
        t, s = self._shift_and_log_scale(self.mask * z)
        return (z - t) * torch.exp(-s)


class Scaling(nn.Module):
    """NICE's diagonal scaling layer: z = x exp(s), logdet = sum(s). ``shape`` is one example's shape."""

    def __init__(self, shape: Sequence[int] | int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tuple(x.shape[1:]) != tuple(self.log_scale.shape):
            raise ValueError(f"Scaling needs inputs [B, {list(self.log_scale.shape)}], got {tuple(x.shape)}.")
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.exp(-self.log_scale)


class ActNorm(nn.Module):
    """Glow's activation normalisation: z = (x - loc) exp(log_scale) per feature (vectors [B, C]) or per
    channel (images [B, C, H, W]); logdet = (H W) sum(log_scale). ``initialize(x)`` sets loc and scale
    so that a batch leaves with zero mean and unit variance per channel (call it once, before training)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))

    def _view(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 4) or x.shape[1] != p.shape[0]:
            raise ValueError(
                f"ActNorm({p.shape[0]}) needs [B, {p.shape[0]}] or [B, {p.shape[0]}, H, W], got {tuple(x.shape)}."
            )
        return p.view(1, -1, *([1] * (x.dim() - 2)))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        dims = [0] + list(range(2, x.dim()))
        self.loc.copy_(x.mean(dims))
        self.log_scale.copy_(-torch.log(x.std(dims) + 1e-6))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (x - self._view(self.loc, x)) * torch.exp(self._view(self.log_scale, x))
        pixels = x[0, 0].numel()  # 1 for vectors, H W for images
        return z, (pixels * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.exp(-self._view(self.log_scale, z)) + self._view(self.loc, z)


class InvertibleLinear(nn.Module):
    """Glow's invertible 1x1 convolution: z = W x over the features (vectors [B, C]) or the channels of
    each pixel (images [B, C, H, W]); logdet = (H W) log|det W|. Starts as a random rotation, so that
    couplings with fixed masks see every direction (axis-aligned couplings alone can stall in 2-D)."""

    def __init__(self, channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        self.weight = nn.Parameter(q)

    def _mix(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 4) or x.shape[1] != w.shape[0]:
            c = w.shape[0]
            raise ValueError(f"InvertibleLinear({c}) needs [B, {c}] or [B, {c}, H, W], got {tuple(x.shape)}.")
        return x @ w.T if x.dim() == 2 else torch.einsum("ij,bjhw->bihw", w, x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self._mix(self.weight, x)
        pixels = x[0, 0].numel()
        return z, (pixels * torch.linalg.slogdet(self.weight).logabsdet).expand(x.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self._mix(torch.linalg.inv(self.weight), z)


class Squeeze(nn.Module):
    """Space-to-depth: [B, C, H, W] -> [B, 4C, H/2, W/2], each 2x2 block into channels. A permutation: logdet 0."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"Squeeze needs images [B, C, H, W] with even H and W, got {tuple(x.shape)}.")
        b, c, h, w = x.shape
        z = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return z, torch.zeros(b, dtype=x.dtype, device=x.device)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        b, c4, h, w = z.shape
        c = c4 // 4
        return z.reshape(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, 2 * h, 2 * w)


def coupling_mlp(dim: int, hidden: int = 64, depth: int = 2, out: int | None = None) -> nn.Sequential:
    """A coupling network for vectors: ``depth`` hidden ReLU layers, output ``out`` (default dim), last layer
    zero so that the coupling starts as the identity. Affine couplings need ``out = 2 * dim``."""
    sizes = [dim] + [hidden] * depth
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    last = nn.Linear(hidden, out if out is not None else dim)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class ConvCouplingNet(nn.Module):
    """A coupling network for images: 3x3 conv in, ``blocks`` residual blocks of ``hidden`` channels,
    3x3 conv out (zero at the start). [B, C_in, H, W] -> [B, C_out, H, W]."""

    def __init__(self, c_in: int, c_out: int, hidden: int = 64, blocks: int = 2) -> None:
        super().__init__()
        self.first = nn.Conv2d(c_in, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1)
            )
            for _ in range(blocks)
        )
        self.last = nn.Conv2d(hidden, c_out, 3, padding=1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        for block in self.blocks:
            h = h + block(h)
        return self.last(torch.relu(h))


# ------------------------------------------------------------------------------------- the model


class FlowModel(nn.Module):
    """Flow layers in sequence over a standard normal base density on one example's ``event_shape``.

    ``log_prob(x)`` = log N(z; 0, I) + sum of logdets; ``sample(n)`` inverts the layers in reverse order;
    ``loss(batch)`` = mean negative log-likelihood in nats (``utils.train.fit``'s contract).
    """

    def __init__(self, layers: Sequence[nn.Module], event_shape: Sequence[int] | int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Flow):
                raise TypeError(
                    f"Layer {i} ({type(layer).__name__}) has no forward(x) -> (z, logdet) and inverse(z)."
                )

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != self.event_shape:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"FlowModel needs a batch of shape [B, {', '.join(map(str, self.event_shape))}], got {shape}."
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x)
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    @staticmethod
    def base_log_prob(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * _per_example(z**2) - 0.5 * z[0].numel() * LOG_2PI

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, logdet = self(x)
        return self.base_log_prob(z) + logdet

    def loss(self, batch: torch.Tensor | tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return {"loss": -self.log_prob(x).mean()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        p = next(self.parameters())
        base_shape = self(torch.zeros(1, *self.event_shape, device=p.device, dtype=p.dtype))[0].shape[1:]
        # the base shape differs from the data shape when a squeeze reshapes
        z = torch.randn((n, *base_shape), generator=generator, device=p.device, dtype=p.dtype)
        return self.inverse(z)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> FlowModel:
        """Data-dependent start: each layer with an ``initialize`` (ActNorm) sees the batch as it arrives."""
        self._check(x)
        for layer in self.layers:
            if hasattr(layer, "initialize"):
                layer.initialize(x)
            x, _ = layer(x)
        return self


# ------------------------------------------------------------------------ images in bits per dim


def dequantize(x: torch.Tensor, levels: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization: integer levels 0..levels-1 -> y = (x + u) / levels in [0, 1), u ~ U[0, 1)."""
    x = x.float() if not x.is_floating_point() else x
    runtime.require(
        (x >= 0) & (x <= levels - 1),
        f"dequantize needs integer pixel levels in 0..{levels - 1}; rescale [0, 1] images by {levels - 1}.",
    )
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + u) / levels


def logit_transform(y: torch.Tensor, alpha: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Real NVP's logit: l = logit(alpha + (1 - 2 alpha) y) for y in [0, 1]; returns (l, log|dl/dy| summed) [B]."""
    runtime.require(
        (y >= 0) & (y <= 1), "logit_transform needs y in [0, 1]; dequantize and divide by the levels first."
    )
    p = alpha + (1.0 - 2.0 * alpha) * y
    logdet = math.log(1.0 - 2.0 * alpha) - torch.log(p) - torch.log1p(-p)
    return torch.log(p) - torch.log1p(-p), _per_example(logdet)


def logit_inverse(logits: torch.Tensor, alpha: float = 0.05) -> torch.Tensor:
    """y = (sigmoid(l) - alpha) / (1 - 2 alpha), clamped to [0, 1]."""
    return ((torch.sigmoid(logits) - alpha) / (1.0 - 2.0 * alpha)).clamp(0.0, 1.0)


def dequantized_bits_per_dim(
    log_p_logit: torch.Tensor, logit_logdet: torch.Tensor, dims: int, levels: int = 256
) -> torch.Tensor:
    """Bits per dimension of the discrete data from a flow's log-density in logit space.

    log p(x + u) on the [0, levels) scale = log p(l) + log|dl/dy| - dims log(levels) (y = (x + u) / levels);
    its negative, in expectation over u, bounds -log P(x) from above (Theis et al. 2016).
    """
    nll = -(log_p_logit + logit_logdet) + dims * math.log(levels)
    return metrics.bits_per_dim(nll, dims)


class DequantizedFlow(nn.Module):
    """A ``FlowModel`` in logit space trained on integer images (levels 0..255, any shape [B, ...]).

    ``loss`` dequantizes afresh each time, logit-transforms, and returns the bits per dimension.
    ``sample(n)`` returns images in [0, 1].
    """

    def __init__(self, flow: FlowModel, alpha: float = 0.05, levels: int = 256) -> None:
        super().__init__()
        self.flow, self.alpha, self.levels = flow, alpha, levels
        self.dims = math.prod(flow.event_shape)

    def to_logit(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y = dequantize(x.reshape(x.shape[0], *self.flow.event_shape), self.levels, generator)
        return logit_transform(y, self.alpha)

    def bits_per_dim(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        logits, logdet = self.to_logit(x, generator)
        return dequantized_bits_per_dim(self.flow.log_prob(logits), logdet, self.dims, self.levels)

    def initialize(self, x: torch.Tensor) -> DequantizedFlow:
        self.flow.initialize(self.to_logit(x)[0])
        return self

    def loss(self, batch: torch.Tensor | tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return {"loss": self.bits_per_dim(x).mean()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return logit_inverse(self.flow.sample(n, generator), self.alpha)
