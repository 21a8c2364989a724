"""Richer variational posteriors (lecture 07): flows inside q, and Gaussian weight posteriors.

Convention (the *sampling* direction): a step maps a posterior sample ``z`` to ``z'`` and returns
``(z', log|det dz'/dz|)``; the density of the pushed sample is ``log q(z') = log q(z) - log|det|``.
Lecture 06's ``PlanarFlow.forward`` returns the same quantity, which a density model (data -> base)
*adds* instead; here it is subtracted.

* ``amortized_planar``: one planar map per example, its ``(u, w, b)`` given as tensors (computed by an
  encoder from x), with the ``u_hat`` of Rezende & Mohamed (2015) that keeps every map invertible.
* ``IAFStep``: inverse autoregressive flow (Kingma et al. 2016), ``z' = sigma z + (1 - sigma) m`` with
  ``[m, s]`` from a one-hidden-layer MADE over z plus a context ``h``; ``log|det| = sum log sigma``.
* ``BayesLinear``: a linear layer with a factorised Gaussian over its weights and a closed-form KL to
  ``N(0, prior_std^2)`` (Bayes by backprop, Blundell et al. 2015).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from utils.models.autoregressive import MaskedLinear, made_degrees, made_masks


def amortized_planar(
    z: torch.Tensor, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """z' = z + u_hat tanh(w.z + b) per example: z [..., B, D]; u, w [B, D]; b [B].

    Returns (z' [..., B, D], log|det dz'/dz| [..., B]); leading sample dimensions of z broadcast.
    """
    if u.shape != w.shape or u.dim() != 2 or b.shape != u.shape[:1] or z.shape[-2:] != u.shape:
        raise ValueError(
            f"amortized_planar needs z [..., B, D], u and w [B, D], b [B]; got z {tuple(z.shape)}, "
            f"u {tuple(u.shape)}, w {tuple(w.shape)}, b {tuple(b.shape)}."
        )
    wu = (w * u).sum(-1, keepdim=True)  # [B, 1]
    u_hat = u + (F.softplus(wu) - 1.0 - wu) * w / (w * w).sum(-1, keepdim=True).clamp_min(1e-12)
    t = torch.tanh((z * w).sum(-1) + b)  # [..., B]
    psi_u = (1.0 - t**2) * (w * u_hat).sum(-1)  # matrix determinant lemma; w.u_hat > -1
    return z + u_hat * t[..., None], torch.log(torch.abs(1.0 + psi_u))


class IAFStep(nn.Module):
    """One IAF step: [m, s] = MADE(z, h), sigma = sigmoid(s), z' = sigma z + (1 - sigma) m.

    m_d and s_d depend on the z's before d in the step's order (natural, or reversed with
    ``reverse=True``) and on the context h, never on z_d: the Jacobian is triangular with diagonal
    sigma, so log|det| = sum_d log sigma_d. The s-head starts at sigma = sigmoid(2) = 0.88 for every
    input (Kingma et al.'s advice), close to the identity. ``forward(z [..., D], h [..., C])``.
    """

    def __init__(self, dim: int, context: int, hidden: int, reverse: bool = False) -> None:
        super().__init__()
        if dim < 2 or context < 1 or hidden < 1:
            raise ValueError(
                f"IAFStep needs dim >= 2, context >= 1, hidden >= 1; got {dim}, {context}, {hidden}."
            )
        self.dim, self.context = dim, context
        order = torch.arange(dim).flip(0) if reverse else torch.arange(dim)
        mask_in, mask_out = made_masks(made_degrees(dim, [hidden], order=order, connectivity="even"))
        self.inp = MaskedLinear(dim, hidden, mask_in)
        self.ctx = nn.Linear(context, hidden)  # the context is not one of the z's: every unit sees it
        self.m = MaskedLinear(hidden, dim, mask_out)
        self.s = MaskedLinear(hidden, dim, mask_out)
        self.ctx_out = nn.Linear(context, 2 * dim)  # so that the first coordinate's m, s depend on h
        nn.init.zeros_(self.s.weight)
        nn.init.zeros_(self.ctx_out.weight)
        nn.init.zeros_(self.ctx_out.bias)  # its bias would add to s's: sigma would start off 0.88
        nn.init.constant_(self.s.bias, 2.0)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if z.shape[-1] != self.dim or h.shape[-1] != self.context or z.shape[:-1] != h.shape[:-1]:
            raise ValueError(
                f"IAFStep needs z [..., {self.dim}] and h [..., {self.context}] with the same leading "
                f"shape; got {tuple(z.shape)} and {tuple(h.shape)} (expand h over the samples)."
            )
        a = F.elu(self.inp(z) + self.ctx(h))
        m_h, s_h = self.ctx_out(h).chunk(2, -1)
        m, s = self.m(a) + m_h, self.s(a) + s_h
        sigma = torch.sigmoid(s)
        return sigma * z + (1.0 - sigma) * m, F.logsigmoid(s).sum(-1)


class BayesLinear(nn.Module):
    """Linear layer with q(W) = prod N(mu, softplus(rho)^2) and prior N(0, prior_std^2) on each weight.

    ``forward(x [S, N, in])`` draws one weight matrix per sample s (shared across the N rows) by
    reparameterisation -> [S, N, out]. ``kl()``: KL(q || prior), summed, in closed form.
    """

    def __init__(self, n_in: int, n_out: int, prior_std: float = 1.0, rho_init: float = -5.0) -> None:
        super().__init__()
        if prior_std <= 0:
            raise ValueError(f"prior_std={prior_std} must be positive.")
        self.n_in, self.n_out, self.prior_std = n_in, n_out, prior_std
        self.w_mu = nn.Parameter(torch.randn(n_out, n_in) / math.sqrt(n_in))
        self.b_mu = nn.Parameter(torch.zeros(n_out))
        self.w_rho = nn.Parameter(torch.full((n_out, n_in), float(rho_init)))
        self.b_rho = nn.Parameter(torch.full((n_out,), float(rho_init)))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.n_in:
            raise ValueError(
                f"BayesLinear needs x [S, N, {self.n_in}] (S weight samples), got {tuple(x.shape)}."
            )
        S = x.shape[0]
        eps_w = torch.randn(S, self.n_out, self.n_in, device=x.device, dtype=x.dtype, generator=generator)
        eps_b = torch.randn(S, 1, self.n_out, device=x.device, dtype=x.dtype, generator=generator)
        w = self.w_mu + F.softplus(self.w_rho) * eps_w  # [S, out, in]
        b = self.b_mu + F.softplus(self.b_rho) * eps_b  # [S, 1, out]
        return torch.baddbmm(b, x, w.transpose(1, 2))

    def kl(self) -> torch.Tensor:
        """KL(q(W) || N(0, prior_std^2 I)) over the weights and biases, a scalar."""
        total = self.w_mu.new_zeros(())
        for mu, rho in ((self.w_mu, self.w_rho), (self.b_mu, self.b_rho)):
            ratio = (F.softplus(rho) / self.prior_std) ** 2  # sigma^2 / prior^2
            total = total + 0.5 * (ratio + (mu / self.prior_std) ** 2 - 1.0 - torch.log(ratio)).sum()
        return total
