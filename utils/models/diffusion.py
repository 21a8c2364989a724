"""Score matching and diffusion (lecture 13): noise schedules, the forward process, the DDPM loss, its
posterior and bound, ancestral and DDIM sampling, denoising score matching, annealed Langevin dynamics
and a small U-Net with a time embedding.

Indexing: arrays of the schedule have length ``T`` and code index ``t = 0 .. T-1`` stands for the
paper's step ``t + 1`` (Ho et al. 2020 count 1..T): ``x_t`` in code is ``x_{t+1}`` in the paper, and
``x0`` is the data. ``alpha_bar[t] = prod_{s <= t} (1 - beta[s])``.

* ``linear_betas(T)``, ``cosine_alpha_bars(T)``, ``alpha_bars(betas)``: schedules.
* ``q_sample(x0, t, alpha_bar, noise)``: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise.
* ``posterior_mean_var(x0, xt, t, betas)``: mean and variance of q(x_{t-1} | x_t, x0).
* ``ddpm_loss(eps_model, x0, alpha_bar)``: Ho et al.'s L_simple, E ||eps - eps_theta(x_t, t)||^2.
* ``DDPM``: an epsilon network and its schedule for ``utils.train.fit`` (``loss``, ``sample``).
* ``ddpm_sample`` (ancestral), ``ddim_sample`` (Song, Meng & Ermon 2021; ``eta=0`` is deterministic).
* ``ddpm_bound_terms``: the negative ELBO in nats, L_T + sum_t L_{t-1} + L_0 (Gaussian KLs and a
  discretized Gaussian decoder), and ``discretized_gaussian_log_likelihood``.
* ``dsm_loss`` (Vincent 2011, sigma^2-weighted as Song & Ermon 2019) and ``annealed_langevin``.
* ``timestep_embedding``, ``TimeResBlock``, ``TimeUNet``: the epsilon network for 28x28 images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from utils.models.densities import standard_normal

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t [B, ...], t [B] long) -> eps [B, ...]

# ------------------------------------------------------------------------------------------------ schedules


def linear_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """Ho et al.'s linear schedule [T] (float64), rescaled by 1000 / T so that a shorter chain still ends
    near pure noise (for T = 1000 it is exactly theirs: 1e-4 to 0.02)."""
    if int(T) < 2:
        raise ValueError(f"A diffusion needs T >= 2 steps, got T={T}.")
    scale = 1000.0 / T
    return torch.linspace(beta_1 * scale, min(beta_T * scale, 0.999), int(T), dtype=torch.float64)


def cosine_alpha_bars(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: alpha_bar [T] (float64), betas clipped at 0.999."""
    if int(T) < 2:
        raise ValueError(f"A diffusion needs T >= 2 steps, got T={T}.")
    u = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0)


def alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar [T] = cumulative product of (1 - beta)."""
    if betas.dim() != 1 or not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError("betas must be a 1-D tensor of noise variances strictly between 0 and 1.")
    return torch.cumprod(1 - betas, 0)


def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] [B] shaped [B, 1, ...] to broadcast against ``like`` [B, ...], in like's dtype."""
    v = values.to(like.device)[t].to(like.dtype)
    return v.reshape(-1, *([1] * (like.dim() - 1)))


# ------------------------------------------------------------------------------------- forward process


def q_sample(x0: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t ~ q(x_t | x0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I), given the noise. [B, ...] -> [B, ...]."""
    if noise.shape != x0.shape:
        raise ValueError(f"noise {list(noise.shape)} must have the shape of x0 {list(x0.shape)}.")
    ab = _at(alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def posterior_mean_var(
    x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, betas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """q(x_{t-1} | x_t, x0) = N(mean, var): mean [B, ...], var [B, 1, ...] (Ho et al. eq. 6-7).

    mean = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t,
    var = (1 - ab_{t-1}) / (1 - ab_t) beta_t, with ab_{-1} = 1 (so var = 0 at the first step).
    """
    ab = alpha_bars(betas)
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    b, a, a_t, a_p = _at(betas, t, x0), _at(1 - betas, t, x0), _at(ab, t, x0), _at(ab_prev, t, x0)
    mean = a_p.sqrt() * b / (1 - a_t) * x0 + a.sqrt() * (1 - a_p) / (1 - a_t) * xt
    return mean, (1 - a_p) / (1 - a_t) * b


def predict_x0(xt: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t): q_sample solved for x0."""
    ab = _at(alpha_bar, t, xt)
    return (xt - (1 - ab).sqrt() * eps) / ab.sqrt()


def ddpm_loss(
    eps_model: EpsModel, x0: torch.Tensor, alpha_bar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """L_simple: t ~ U{0..T-1}, eps ~ N(0, I), mean over the batch of ||eps - eps_model(x_t, t)||^2 / dims."""
    T = alpha_bar.shape[0]
    t = torch.randint(0, T, (x0.shape[0],), device=x0.device, generator=generator)  # [B]
    noise = standard_normal(x0.shape, x0, generator)
    return F.mse_loss(eps_model(q_sample(x0, t, alpha_bar, noise), t), noise)


class DDPM(nn.Module):
    """An epsilon network and a schedule: ``loss(x0)`` (L_simple) for ``fit`` and ``sample(n)``.

    ``net(x_t, t)`` with x_t [B, *shape] and t [B] (code index 0..T-1) returns the noise estimate.
    """

    def __init__(self, net: nn.Module, betas: torch.Tensor, shape: Sequence[int] = (1, 28, 28)) -> None:
        super().__init__()
        self.net, self.shape = net, tuple(shape)
        self.register_buffer("betas", betas.float())
        self.register_buffer("alpha_bar", alpha_bars(betas).float())

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    def loss(self, x0: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": ddpm_loss(self.net, x0, self.alpha_bar)}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        was = self.training
        self.eval()
        x = ddpm_sample(self.net, (n, *self.shape), self.betas, generator=generator, clip_x0=True)
        self.train(was)
        return x


# ------------------------------------------------------------------------------------------- sampling


def _noise(shape: Sequence[int], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return standard_normal(shape, torch.empty(0, device=device), generator)


@torch.no_grad()
def ddpm_sample(
    eps_model: EpsModel,
    shape: Sequence[int],
    betas: torch.Tensor,
    generator: torch.Generator | None = None,
    variance: str = "beta",
    keep: Sequence[int] = (),
    device: torch.device | str | None = None,
    clip_x0: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Ancestral sampling (Ho et al. Algorithm 2) from the paper's x_T ~ N(0, I) down to x0.

    x_{t-1} = (x_t - beta_t / sqrt(1 - ab_t) eps) / sqrt(alpha_t) + sigma_t z, no noise at the last step;
    sigma_t^2 = beta_t (``variance="beta"``) or the posterior variance (``"posterior"``). ``keep``: steps
    t in 0..T, counted as in the paper, whose x_t to return as well, as ``(x0, {t: x_t})``: the update at
    code index t gives the paper's x_t, so ``{T: the starting noise, ..., 0: the sample}``. ``clip_x0``: form
    the mean as the posterior mean of q(x_{t-1} | x_t, x0_hat) with x0_hat = ``predict_x0`` clipped to
    [-1, 1], as Ho et al.'s code does (without the clip this is the same mean, rearranged).
    """
    if variance not in ("beta", "posterior"):
        raise ValueError(f"variance must be 'beta' or 'posterior', got {variance!r}.")
    dev = torch.device(device) if device is not None else betas.device
    betas = betas.to(dev)
    ab = alpha_bars(betas.double()).float()
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    x, kept = _noise(shape, dev, generator), {}
    T = betas.shape[0]
    if T in keep:
        kept[T] = x.clone()
    for t in range(T - 1, -1, -1):
        tt = torch.full((shape[0],), t, device=dev, dtype=torch.long)
        eps = eps_model(x, tt)
        if clip_x0:
            x0_hat = predict_x0(x, tt, ab, eps).clamp(-1, 1)
            x = x0_hat if t == 0 else posterior_mean_var(x0_hat, x, tt, betas.double())[0].to(x.dtype)
        else:
            x = (x - betas[t] / (1 - ab[t]).sqrt() * eps) / (1 - betas[t]).sqrt()
        if t > 0:
            var = betas[t] if variance == "beta" else (1 - ab_prev[t]) / (1 - ab[t]) * betas[t]
            x = x + var.sqrt() * _noise(shape, dev, generator)
        if t in keep:
            kept[t] = x.clone()
    return (x, kept) if keep else x


@torch.no_grad()
def ddim_sample(
    eps_model: EpsModel,
    shape: Sequence[int],
    alpha_bar: torch.Tensor,
    steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon 2021) on ``steps`` evenly spaced code steps; ``eta = 0``: deterministic.

    x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps + sigma z, x0_hat from ``predict_x0``,
    sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s); after the last step, x0_hat.
    """
    T = alpha_bar.shape[0]
    if not 1 <= int(steps) <= T:
        raise ValueError(f"steps must be between 1 and T={T}, got {steps}.")
    dev = alpha_bar.device
    ts = torch.linspace(T - 1, 0, int(steps)).round().long().tolist()
    x = _noise(shape, dev, generator) if x_T is None else x_T.clone()
    for i, t in enumerate(ts):
        tt = torch.full((shape[0],), t, device=dev, dtype=torch.long)
        eps = eps_model(x, tt)
        x0 = predict_x0(x, tt, alpha_bar, eps)
        if i == len(ts) - 1:
            return x0
        a_t, a_s = alpha_bar[t], alpha_bar[ts[i + 1]]
        sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()
        x = a_s.sqrt() * x0 + (1 - a_s - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * _noise(shape, dev, generator)
    return x


# ------------------------------------------------------------------------------------------ the bound


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor
) -> torch.Tensor:
    """log P(x) per entry for x on the 256 levels of [-1, 1] (bins of width 2/255) under N(mean, e^{2 log_scale});
    the edge bins take the tails (Ho et al. section 3.3). All [B, ...] -> [B, ...]."""
    inv = torch.exp(-log_scale)
    upper = _std_normal_cdf(inv * (x - mean + 1 / 255))
    lower = _std_normal_cdf(inv * (x - mean - 1 / 255))
    upper = torch.where(x > 0.999, torch.ones_like(upper), upper)
    lower = torch.where(x < -0.999, torch.zeros_like(lower), lower)
    return torch.log((upper - lower).clamp(min=1e-12))


def _kl_normal(
    mu_q: torch.Tensor, var_q: torch.Tensor, mu_p: torch.Tensor, var_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) per entry (lecture 03's KL with a general second Gaussian)."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1)


@torch.no_grad()
def ddpm_bound_terms(
    eps_model: EpsModel, x0: torch.Tensor, betas: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The negative ELBO's terms in nats per image, [B, T + 1]: column 0 is L_0 (the discretized decoder,
    -log p(x0 | x_1)), column t (1..T-1) is L_t = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)) with
    p's variance beta_t, and column T is L_T = KL(q(x_T | x0) || N(0, I)). One draw of x_t per term.
    Their sum over columns is -ELBO >= -log p(x0)."""
    betas = betas.to(x0.device)
    ab = alpha_bars(betas.double()).to(x0.dtype)
    B, T = x0.shape[0], betas.shape[0]
    dims = tuple(range(1, x0.dim()))
    terms = x0.new_zeros(B, T + 1)
    for t in range(T):
        tt = torch.full((B,), t, device=x0.device, dtype=torch.long)
        xt = q_sample(x0, tt, ab, standard_normal(x0.shape, x0, generator))
        eps = eps_model(xt, tt)
        mean_p = (xt - _at(betas, tt, x0) / (1 - _at(ab, tt, x0)).sqrt() * eps) / _at(
            1 - betas, tt, x0
        ).sqrt()
        if t == 0:
            log_scale = 0.5 * torch.log(_at(betas, tt, x0)).expand_as(x0)
            terms[:, 0] = -discretized_gaussian_log_likelihood(x0, mean_p, log_scale).sum(dims)
        else:
            mean_q, var_q = posterior_mean_var(x0, xt, tt, betas)
            terms[:, t] = _kl_normal(mean_q, var_q, mean_p, _at(betas, tt, x0)).sum(dims)
    a_T = ab[-1]
    terms[:, T] = _kl_normal(
        a_T.sqrt() * x0, (1 - a_T).expand_as(x0), torch.zeros_like(x0), torch.ones_like(x0)
    ).sum(dims)
    return terms


# ------------------------------------------------------------------------------ score matching, Langevin


def dsm_loss(
    score_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Denoising score matching over noise levels (Song & Ermon 2019, eq. 5-6), sigma^2-weighted:
    sigma ~ U(sigmas), x~ = x + sigma z, loss = mean of 1/2 ||sigma s(x~, sigma) + z||^2.
    ``score_model(x [B, d], sigma [B]) -> [B, d]``."""
    idx = torch.randint(0, sigmas.shape[0], (x.shape[0],), device=x.device, generator=generator)
    sigma = sigmas.to(x.device, x.dtype)[idx]  # [B]
    z = standard_normal(x.shape, x, generator)
    s = sigma.reshape(-1, *([1] * (x.dim() - 1)))
    return 0.5 * (s * score_model(x + s * z, sigma) + z).pow(2).flatten(1).sum(1).mean()


@torch.no_grad()
def annealed_langevin(
    score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    steps: int = 100,
    eps: float = 2e-5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Song & Ermon's Algorithm 1: for sigma_i from the largest to the smallest, ``steps`` Langevin moves
    x <- x + a_i / 2 s(x, sigma_i) + sqrt(a_i) z with a_i = eps sigma_i^2 / sigma_L^2. x [B, d] -> [B, d]."""
    if not bool((sigmas[:-1] > sigmas[1:]).all()):
        raise ValueError(
            "sigmas must decrease strictly: annealing runs from the largest noise to the smallest."
        )
    x = x.clone()
    for sigma in sigmas:
        a = eps * (sigma / sigmas[-1]) ** 2
        level = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype)
        for _ in range(int(steps)):
            x = x + 0.5 * a * score_fn(x, level) + a.sqrt() * standard_normal(x.shape, x, generator)
    return x


# ------------------------------------------------------------------------------------------- networks


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of (float or integer) steps t [B], as the Transformer's positions:
    [cos(t f_0), ..., cos(t f_{h-1}), sin(t f_0), ...] with f_k = max_period^(-k / h), h = dim / 2."""
    if dim % 2:
        raise ValueError(f"the embedding dimension must be even, got {dim}.")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # [B, half]
    return torch.cat([torch.cos(args), torch.sin(args)], 1)


class TimeResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv; add a projection of the time embedding; again; plus a (1x1) skip."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int = 8) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(groups, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = (
            nn.GroupNorm(min(groups, c_out), c_out),
            nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # [B, c_in, H, W], [B, t_dim]
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(emb))[:, :, None, None]  # the step enters every block
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)  # [B, c_out, H, W]


class TimeUNet(nn.Module):
    """eps(x_t, t) for [B, C, 28, 28]: a U-Net on 28 -> 14 -> 7 with widths (w, 2w, 2w), a residual block per
    level on the way down and up, skip connections by concatenation and a sinusoidal time embedding."""

    def __init__(self, channels: int = 1, width: int = 32, groups: int = 8) -> None:
        super().__init__()
        if width % groups:
            raise ValueError(f"width={width} must be a multiple of groups={groups} for GroupNorm.")
        w, e = int(width), 4 * int(width)
        self.width = w
        self.time_mlp = nn.Sequential(nn.Linear(w, e), nn.SiLU(), nn.Linear(e, e))
        self.conv_in = nn.Conv2d(channels, w, 3, padding=1)
        self.down1, self.pool1 = TimeResBlock(w, w, e, groups), nn.Conv2d(w, w, 3, stride=2, padding=1)
        self.down2, self.pool2 = (
            TimeResBlock(w, 2 * w, e, groups),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
        )
        self.mid = TimeResBlock(2 * w, 2 * w, e, groups)
        self.up2 = TimeResBlock(4 * w, 2 * w, e, groups)
        self.up1 = TimeResBlock(3 * w, w, e, groups)
        self.norm_out, self.conv_out = nn.GroupNorm(groups, w), nn.Conv2d(w, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # start by predicting eps = 0: a calm first step
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[-2:]) != (28, 28):
            raise ValueError(
                f"TimeUNet takes images [B, C, 28, 28], got {list(x.shape)}; reshape flat digits first."
            )
        emb = self.time_mlp(timestep_embedding(t, self.width))  # [B, 4w]
        h1 = self.down1(self.conv_in(x), emb)  # [B, w, 28, 28]
        h2 = self.down2(self.pool1(h1), emb)  # [B, 2w, 14, 14]
        m = self.mid(self.pool2(h2), emb)  # [B, 2w, 7, 7]
        u = self.up2(torch.cat([F.interpolate(m, scale_factor=2.0), h2], 1), emb)  # [B, 2w, 14, 14]
        u = self.up1(torch.cat([F.interpolate(u, scale_factor=2.0), h1], 1), emb)  # [B, w, 28, 28]
        return self.conv_out(F.silu(self.norm_out(u)))
