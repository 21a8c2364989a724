"""Adversarial autoencoders (lecture 09): priors that can be sampled *and* evaluated, and the AAE itself.

* ``GaussianMixturePrior(means [K, D], std)``: an equal-weight mixture of isotropic Gaussians with
  ``sample(n)`` (optionally with the component of each draw) and an exact ``log_prob(z)``. Three priors
  on a 2-D latent are built from it:

  - ``standard_normal_prior(dim)``: N(0, I), one component at the origin with std 1;
  - ``ring_prior(k=10, radius=4, std=0.5)``: k Gaussians with means evenly spaced on a circle
    (Makhzani et al.'s mixture of 10 Gaussians, with round components instead of their elongated ones);
  - ``swiss_roll_prior(nodes=400, ...)``: a spiral ``r(t) (cos theta(t), sin theta(t))`` with t ~ U(0, 1)
    and Gaussian noise around it. The uniform t is replaced by ``nodes`` equally spaced midpoints, so the
    prior *is* a mixture and its sampler and density agree exactly (the node spacing is a small fraction
    of the noise, so it looks like the continuous roll).

* ``AAE``: Makhzani et al. (2015). A deterministic encoder ``x -> z``, a decoder ``z -> Bernoulli logits``
  and a discriminator ``z -> logit`` that tells prior draws ("real") from codes ("fake"). Each
  ``training_step(batch, {"ae": ..., "disc": ...})`` for ``utils.train.fit``:

  1. the discriminator descends ``discriminator_loss(D(z_prior), D(z.detach()))`` (codes detached: its
     step must not move the encoder);
  2. the encoder and decoder descend ``rec + adversarial_weight * nonsaturating_generator_loss(D(z))``
     through the updated discriminator, where ``rec = -log p(x | z)`` in nats per image.

  Matching the **aggregate posterior** q(z) = E_x q(z|x) to the prior needs only samples of both, which is
  why the adversarial game (lecture 08) fits: q(z) has no density we could put into a KL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from utils import runtime
from utils.data import dynamic_binarize
from utils.models.densities import LOG_2PI, bernoulli_log_likelihood
from utils.models.gan import discriminator_loss, mlp_discriminator, nonsaturating_generator_loss
from utils.models.networks import MLP
from utils.train.steppers import adam

# ------------------------------------------------------------------------------------------------ priors


class GaussianMixturePrior:
    """p(z) = (1/K) sum_k N(z; means[k], std^2 I): ``sample`` and an exact ``log_prob``.

    means: [K, D]; std: one positive number for every component and dimension. The prior lives on the
    device of ``means`` (``.to(device)`` returns a copy elsewhere); it has no parameters to train.
    """

    def __init__(self, means: torch.Tensor, std: float, name: str = "mixture") -> None:
        means = torch.as_tensor(means, dtype=torch.get_default_dtype())
        if means.dim() != 2 or means.shape[0] < 1:
            raise ValueError(f"means must be [K, D] with K >= 1 components, got shape {tuple(means.shape)}.")
        if not float(std) > 0:
            raise ValueError(f"std must be a positive number, got {std}.")
        self.means, self.std, self.name = means, float(std), name

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device: torch.device | str) -> GaussianMixturePrior:
        return GaussianMixturePrior(self.means.to(device), self.std, self.name)

    def sample(
        self, n: int, generator: torch.Generator | None = None, return_labels: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """n draws [n, D] on the prior's device (and, with ``return_labels``, their components [n])."""
        where = generator.device if generator is not None else self.device
        k = torch.randint(self.means.shape[0], (n,), generator=generator, device=where).to(self.device)
        eps = torch.randn(n, self.dim, generator=generator, device=where).to(self.device)
        z = self.means[k] + self.std * eps  # [n, D]
        return (z, k) if return_labels else z

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z [..., D] -> [...] (a logsumexp over the components, stable far from the means)."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"z has {z.shape[-1]} values in its last dimension; this prior is {self.dim}-D.")
        means = self.means.to(device=z.device, dtype=z.dtype)
        sq = (z.unsqueeze(-2) - means).pow(2).sum(-1)  # [..., K]
        log_comp = -0.5 * sq / self.std**2 - self.dim * (math.log(self.std) + 0.5 * LOG_2PI)
        return torch.logsumexp(log_comp, dim=-1) - math.log(self.means.shape[0])


def standard_normal_prior(dim: int = 2) -> GaussianMixturePrior:
    """N(0, I) in ``dim`` dimensions as a one-component mixture."""
    return GaussianMixturePrior(torch.zeros(1, int(dim)), 1.0, name="gaussian")


def ring_prior(k: int = 10, radius: float = 4.0, std: float = 0.5) -> GaussianMixturePrior:
    """k round Gaussians of width ``std`` with means on a circle of ``radius`` (2-D), the first at angle 0."""
    if int(k) < 1:
        raise ValueError(f"k must be a positive number of components, got {k}.")
    angle = 2 * math.pi * torch.arange(int(k)) / int(k)
    return GaussianMixturePrior(radius * torch.stack([angle.cos(), angle.sin()], 1), std, name="ring")


def swiss_roll_means(
    nodes: int = 400, turns: float = 1.5, r_min: float = 0.5, r_max: float = 4.0
) -> torch.Tensor:
    """Points [nodes, 2] on the spiral r(t) (cos 2 pi turns t, sin 2 pi turns t), r(t) = r_min + (r_max - r_min) t,
    at the midpoints t = (i + 1/2) / nodes."""
    if int(nodes) < 1:
        raise ValueError(f"nodes must be a positive number of points on the roll, got {nodes}.")
    t = (torch.arange(int(nodes)) + 0.5) / int(nodes)
    theta, r = 2 * math.pi * turns * t, r_min + (r_max - r_min) * t
    return torch.stack([r * theta.cos(), r * theta.sin()], 1)


def swiss_roll_prior(
    nodes: int = 400, turns: float = 1.5, std: float = 0.25, **spiral: float
) -> GaussianMixturePrior:
    """The swiss roll: t ~ U(0, 1) on ``nodes`` midpoints, z = spiral(t) + N(0, std^2 I) (2-D)."""
    return GaussianMixturePrior(swiss_roll_means(nodes, turns, **spiral), std, name="swiss_roll")


# --------------------------------------------------------------------------------------------------- AAE


def _batch_x(batch: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    x = batch[0] if isinstance(batch, tuple | list) else batch
    return x.flatten(1) if x.dim() > 2 else x


class AAE(nn.Module):
    """An adversarial autoencoder with a deterministic encoder, a Bernoulli decoder and a latent discriminator.

    ``AAE.mlp(prior, hidden=(1000, 1000))`` builds Makhzani et al.'s MNIST networks (ReLU MLPs for
    encoder and decoder, a LeakyReLU MLP for the discriminator). Train with
    ``fit(aae, x, epochs=..., optimizer=aae_optimizers(aae))``; x [N, 784] in [0, 1] is dynamically
    binarized in training mode (``binarize=True``). Logged: ``rec`` (nats per image), ``adv``,
    ``d_loss``, ``d_prior`` / ``d_code`` (mean D on prior draws / on codes).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        discriminator: nn.Module,
        prior: GaussianMixturePrior,
        adversarial_weight: float = 1.0,
        binarize: bool = True,
    ) -> None:
        super().__init__()
        if not adversarial_weight >= 0:
            raise ValueError(f"adversarial_weight must be >= 0, got {adversarial_weight}.")
        self.encoder, self.decoder, self.discriminator = encoder, decoder, discriminator
        self.prior, self.adversarial_weight, self.binarize = prior, float(adversarial_weight), binarize

    @classmethod
    def mlp(
        cls,
        prior: GaussianMixturePrior,
        hidden: Sequence[int] = (1000, 1000),
        disc_hidden: Sequence[int] | None = None,
        x_dim: int = 784,
        **kwargs: float,
    ) -> AAE:
        z_dim, hidden = prior.dim, tuple(hidden)
        encoder = MLP([x_dim, *hidden, z_dim], activation=nn.ReLU)
        decoder = MLP([z_dim, *reversed(hidden), x_dim], activation=nn.ReLU)
        disc = mlp_discriminator(z_dim, tuple(disc_hidden) if disc_hidden is not None else hidden)
        return cls(encoder, decoder, disc, prior, **kwargs)

    def _device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 784] -> z [B, D] (deterministic)."""
        return self.encoder(x.flatten(1) if x.dim() > 2 else x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., D] -> Bernoulli logits [..., 784]."""
        return self.decoder(z)

    def _prepare(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        x = _batch_x(batch)
        runtime.require(
            x.numel() == 0 or ((x >= 0) & (x <= 1)).all(),
            "AAE expects pixel intensities in [0, 1]; divide uint8 images by 255 first.",
        )
        x = x if x.is_floating_point() else x.to(torch.get_default_dtype())
        return dynamic_binarize(x) if self.binarize and self.training else x

    def _prior_draws(self, n: int) -> torch.Tensor:
        if self.prior.device != self._device():  # once, after the module moved: the prior is not a buffer
            self.prior = self.prior.to(self._device())
        return self.prior.sample(n)

    def loss(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Both players' losses on one batch, no step (for ``utils.train.evaluate``); ``loss`` = rec + w adv."""
        x = self._prepare(batch)
        z = self.encode(x)
        rec = -bernoulli_log_likelihood(self.decode(z), x).mean()
        code_logits = self.discriminator(z)
        adv = nonsaturating_generator_loss(code_logits)
        d_loss = discriminator_loss(self.discriminator(self._prior_draws(x.shape[0])), code_logits)
        return {"loss": rec + self.adversarial_weight * adv, "rec": rec, "adv": adv, "d_loss": d_loss}

    def training_step(
        self, batch: torch.Tensor | Sequence[torch.Tensor], optimizers: Mapping[str, torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]:
        missing = {"ae", "disc"} - set(optimizers)
        if missing:
            raise KeyError(f"AAE.training_step needs optimizers 'ae' and 'disc'; {sorted(missing)} missing.")
        x = self._prepare(batch)  # [B, 784]
        z = self.encode(x)  # [B, D]
        # Regularization phase, discriminator: prior draws are "real", codes "fake" and detached.
        optimizers["disc"].zero_grad(set_to_none=True)
        prior_logits = self.discriminator(self._prior_draws(x.shape[0]))
        d_loss = discriminator_loss(prior_logits, self.discriminator(z.detach()))
        d_loss.backward()
        optimizers["disc"].step()
        # Reconstruction plus the encoder's side of the game, through the updated discriminator.
        optimizers["ae"].zero_grad(set_to_none=True)
        rec = -bernoulli_log_likelihood(self.decode(z), x).mean()
        code_logits = self.discriminator(z)
        adv = nonsaturating_generator_loss(code_logits)
        (rec + self.adversarial_weight * adv).backward()
        optimizers["ae"].step()
        rec, adv, d_loss = rec.detach(), adv.detach(), d_loss.detach()
        return {
            "loss": rec + self.adversarial_weight * adv,
            "rec": rec,
            "adv": adv,
            "d_loss": d_loss,
            "d_prior": torch.sigmoid(prior_logits.detach()).mean(),
            "d_code": torch.sigmoid(code_logits.detach()).mean(),
        }

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel probabilities sigmoid(decode(z)) [n, 784] for z drawn from the prior."""
        where = generator.device if generator is not None else self._device()
        z = self.prior.to(where).sample(n, generator).to(self._device())
        return torch.sigmoid(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities decoded from the code: x [B, 784] -> [B, 784]."""
        return torch.sigmoid(self.decode(self.encode(x)))


def reconstruction_nats(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    encode_fn: Callable[[torch.Tensor], Any],
    x: torch.Tensor,
    chunk: int = 1000,
) -> float:
    """Mean -log p(x | z = encode(x)) in nats per image over binary x [N, 784] (a point code: the VAE's mean).

    ``encode_fn(x)`` may return z or a tuple whose first item is the code (a VAE's (mu, logvar)).
    """
    if x.shape[0] == 0:
        raise ValueError("reconstruction_nats got no examples; pass the binary test images.")
    total = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], chunk):
            xb = x[i : i + chunk].flatten(1).to(torch.get_default_dtype())
            code = encode_fn(xb)
            z = code[0] if isinstance(code, tuple | list) else code
            total += float(-bernoulli_log_likelihood(logits_fn(z), xb).sum())
    return total / x.shape[0]


def aae_optimizers(
    aae: AAE, lr: float = 2e-4, disc_lr: float | None = None, betas: tuple[float, float] = (0.5, 0.999)
) -> dict[str, torch.optim.Optimizer]:
    """``{"ae": Adam(encoder + decoder), "disc": Adam(discriminator)}``, eager-only (beta1 0.5 as for GANs)."""
    ae_params = [*aae.encoder.parameters(), *aae.decoder.parameters()]
    return {
        "ae": adam(ae_params, lr, betas=betas, capturable=False),
        "disc": adam(
            aae.discriminator, disc_lr if disc_lr is not None else lr, betas=betas, capturable=False
        ),
    }
