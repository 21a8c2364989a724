"""Densities, divergences and bounds that the lectures derive, as plain functions.

Every function sums over the *last* dimension and broadcasts over the leading ones:

* ``reparameterize(mu, logvar)``      z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)
* ``gaussian_kl(mu, logvar)``         KL(N(mu, diag exp(logvar)) || N(0, I)) in closed form
* ``log_normal(x, mu, logvar)``       log N(x; mu, diag exp(logvar)), with the -1/2 log 2 pi constant
* ``log_standard_normal(x)``          log N(x; 0, I)
* ``bernoulli_log_likelihood(l, x)``  log Bernoulli(x; sigmoid(l)), stable for large |l|
* ``iwae_bound(log_w)``               log (1/k) sum_i w_i over the sample dimension
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def standard_normal(
    shape: Sequence[int], like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """eps ~ N(0, I) of ``shape`` on ``like``'s device and dtype, drawn from ``generator`` if given."""
    if generator is None or generator.device == like.device:
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
    # A CPU generator with a GPU tensor: draw where the generator lives, then move (reproducible).
    eps = torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype)
    return eps.to(like.device)


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator | None = None,
    k: int | None = None,
) -> torch.Tensor:
    """A sample z = mu + sigma * eps from N(mu, diag exp(logvar)) that carries gradients to mu, logvar.

    mu, logvar: [..., D] (broadcastable). Returns [..., D], or [k, ..., D] when ``k`` is given
    (k independent samples along a new leading dimension). ``logvar`` is the log *variance*, so
    sigma = exp(logvar / 2).
    """
    shape = torch.broadcast_shapes(mu.shape, logvar.shape)
    if k is not None:
        if k < 1:
            raise ValueError(f"k={k} samples were asked for; k must be a positive integer.")
        shape = (k, *shape)
    eps = standard_normal(shape, mu, generator)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) in closed form, summed over the last dim.

    mu, logvar: [..., D] -> [...]. Per dimension: (sigma^2 + mu^2 - 1 - log sigma^2) / 2, which is
    zero exactly at the prior (mu = 0, logvar = 0) and positive everywhere else.
    """
    return 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar).sum(-1)


def _parameter_like(value: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """``value`` as a tensor of ``x``'s dtype on ``x``'s device.

    A Python number is filled in on the device (``torch.full``) rather than copied from the host
    (``torch.as_tensor``): a host-to-device copy inside a loss makes CUDA graph capture fail.
    """
    if isinstance(value, torch.Tensor):
        return value.to(device=x.device, dtype=x.dtype)
    return torch.full((), float(value), dtype=x.dtype, device=x.device)


def log_normal(
    x: torch.Tensor,
    mu: torch.Tensor | float = 0.0,
    logvar: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """log N(x; mu, diag exp(logvar)), summed over the last dim (the -1/2 log 2 pi term included).

    x, mu, logvar: broadcastable, [..., D] -> [...]. ``logvar`` is the log variance.
    """
    mu, logvar = _parameter_like(mu, x), _parameter_like(logvar, x)
    # Broadcasting first makes the sum run over the full D even when mu/logvar are scalars.
    x, mu, logvar = torch.broadcast_tensors(x, mu, logvar)
    return -0.5 * (LOG_2PI + logvar + (x - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def log_standard_normal(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, I), summed over the last dim: [..., D] -> [...]."""
    return -0.5 * (LOG_2PI + x.pow(2)).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log prod_i Bernoulli(x_i; sigmoid(logits_i)), summed over the last dim (= -BCE with logits).

    logits, x: broadcastable, e.g. logits [k, B, X] and x [B, X] -> [k, B]. Written as
    x * l - softplus(l), which never forms sigmoid(l) and so stays finite for |l| in the hundreds.
    """
    x = x.to(logits.dtype)
    return (x * logits - F.softplus(logits)).sum(-1)


def iwae_bound(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """The importance-weighted bound log (1/k) sum_i exp(log_w_i) along ``dim`` (k = its size).

    log_w: e.g. [k, B] of log p(x, z_i) - log q(z_i | x) -> [B]. With k = 1 it is the ELBO
    estimate itself; by Jensen it is never below the mean of the log weights.
    """
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])
