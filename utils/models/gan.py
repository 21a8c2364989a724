"""Generative adversarial networks (lecture 08): losses from logits, MLP and DCGAN players, a GAN module.

* Losses take the discriminator's **logits** ``l`` (D = sigmoid(l)) and are written with ``softplus`` so
  that no ``log(0)`` appears at any logit: ``-log sigmoid(l) = softplus(-l)`` and
  ``-log(1 - sigmoid(l)) = softplus(l)``.

  - ``discriminator_loss(real, fake)``  -E log D(x) - E log(1 - D(G(z)))  (binary cross-entropy)
  - ``minimax_generator_loss(fake)``    E log(1 - D(G(z)))                (Goodfellow et al.'s game; saturates)
  - ``nonsaturating_generator_loss(fake)``  -E log D(G(z))                (the "-log D trick")

* ``mlp_generator`` / ``mlp_discriminator``: small players for 2-D toys.
* ``DCGANGenerator`` / ``DCGANDiscriminator``: Radford et al. (2016) for 28x28 images (three transposed
  convolutions and batch norm in G; four strided convolutions, LeakyReLU 0.2, batch norm in D) and
  ``dcgan_init`` (weights N(0, 0.02)).
* ``generator_jacobian_norm`` / ``jacobian_truncation``: |dG/dz|_F per latent (Hutchinson's estimator,
  forward mode) and Tanielian et al.'s (2020) sampler that drops the latents where it is largest.
* ``GAN``: the two players with ``training_step(batch, optimizers)`` for ``utils.train.fit``
  (``optimizer=gan_optimizers(gan)``, Adam lr 2e-4, beta1 0.5), ``loss(batch)`` for evaluation and
  ``sample(n)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import forward_ad

from utils.models.networks import MLP
from utils.train.steppers import adam

# ------------------------------------------------------------------------------------------------ losses


def _logits(t: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty floating-point tensor of discriminator logits (before the sigmoid)."
        )
    return t


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] from logits (scalar): softplus(-real).mean() + softplus(fake).mean()."""
    real, fake = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))] = -softplus(l).mean(), the generator's side of the minimax game (to minimise).

    Its gradient in the logit is -sigmoid(l), which vanishes when D confidently rejects the fakes.
    """
    return -F.softplus(_logits(fake_logits, "fake_logits")).mean()


def nonsaturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))] = softplus(-l).mean(); gradient in the logit -(1 - sigmoid(l)), near -1 when D wins."""
    return F.softplus(-_logits(fake_logits, "fake_logits")).mean()


GENERATOR_LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "minimax": minimax_generator_loss,
    "non_saturating": nonsaturating_generator_loss,
}


# ----------------------------------------------------------------------------------------------- players


def mlp_generator(z_dim: int = 2, hidden: Sequence[int] = (128, 128, 128), x_dim: int = 2) -> MLP:
    """z [B, z_dim] -> x [B, x_dim]: an MLP with ReLU hidden layers and a linear output (2-D toys)."""
    return MLP([z_dim, *hidden, x_dim], activation=nn.ReLU)


class _LeakyReLU(nn.LeakyReLU):
    def __init__(self) -> None:
        super().__init__(0.2)


def mlp_discriminator(x_dim: int = 2, hidden: Sequence[int] = (128, 128, 128)) -> nn.Module:
    """x [B, x_dim] -> one logit per point [B]: an MLP with LeakyReLU(0.2) hidden layers."""
    return nn.Sequential(MLP([x_dim, *hidden, 1], activation=_LeakyReLU), nn.Flatten(0))


class DCGANGenerator(nn.Module):
    """z [B, z_dim] -> images [B, 1, 28, 28] in (-1, 1) (tanh).

    Linear to ``4*width`` maps of 3x3, then three stride-2 transposed convolutions (3 -> 7 -> 14 -> 28)
    that halve the channels (4w -> 2w -> w -> 1), batch norm and ReLU after every layer but the last
    (Radford et al. 2016's generator, scaled down to 28x28).
    """

    def __init__(self, z_dim: int = 64, width: int = 64) -> None:
        super().__init__()
        self.z_dim, self.width = int(z_dim), int(width)
        w = self.width
        self.project = nn.Sequential(nn.Linear(z_dim, 4 * w * 9, bias=False), nn.BatchNorm1d(4 * w * 9))
        self.deconv = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 3, stride=2, bias=False),  # [B, 2w, 7, 7]
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1, bias=False),  # [B, w, 14, 14]
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1),  # [B, 1, 28, 28]
            nn.Tanh(),
        )
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], 4 * self.width, 3, 3)  # [B, 4w, 3, 3]
        return self.deconv(h)


class DCGANDiscriminator(nn.Module):
    """images [B, 1, 28, 28] (or [B, 784]) in [-1, 1] -> one logit per image [B].

    Four stride-2 convolutions that double the channels (w, 2w, 4w, 8w; 28 -> 14 -> 7 -> 4 -> 2) with
    LeakyReLU(0.2), batch norm on all but the first (none on the input layer, as Radford et al.), then a
    linear logit.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = int(width)
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 4, stride=2, padding=1),  # [B, w, 14, 14]
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1, bias=False),  # [B, 2w, 7, 7]
            nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1, bias=False),  # [B, 4w, 4, 4]
            nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 8 * w, 3, stride=2, padding=1, bias=False),  # [B, 8w, 2, 2]
            nn.BatchNorm2d(8 * w),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(8 * w * 4, 1),
        )
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], 1, 28, 28)).squeeze(1)


def dcgan_init(module: nn.Module) -> nn.Module:
    """Radford et al.'s start: conv / linear weights N(0, 0.02), batch-norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


# ------------------------------------------------------------------------------------------------- GAN


class GAN(nn.Module):
    """A generator ``G: z [B, z_dim] -> x`` and a discriminator ``D: x -> logits [B]`` for ``utils.train.fit``.

    ``fit(gan, x_train, steps=..., optimizer=gan_optimizers(gan))``: each ``training_step`` draws
    z ~ N(0, I), takes one Adam step of D on ``discriminator_loss`` with the fakes **detached** (D's step
    must not move G), then one step of G on ``generator_loss`` ("non_saturating" or "minimax") through
    the updated D. Logged: ``d_loss``, ``g_loss``, ``d_real`` / ``d_fake`` (mean D on real / fake).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        z_dim: int,
        generator_loss: str = "non_saturating",
    ) -> None:
        super().__init__()
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(
                f"generator_loss={generator_loss!r} is unknown; use one of {sorted(GENERATOR_LOSSES)}."
            )
        if int(z_dim) < 1:
            raise ValueError(f"z_dim must be a positive number of latent dimensions, got {z_dim}.")
        self.generator, self.discriminator = generator, discriminator
        self.z_dim, self.generator_loss = int(z_dim), generator_loss

    def _device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), [n, z_dim], on the generator's device (or ``generator``'s, then moved)."""
        where = generator.device if generator is not None else self._device()
        return torch.randn(n, self.z_dim, generator=generator, device=where).to(self._device())

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        """G(z) for n fresh latents (or the given ``z``), in eval mode (batch norm uses its running averages)."""
        was_training = self.training
        self.eval()
        try:
            return self.generator(self.latent(n, generator) if z is None else z.to(self._device()))
        finally:
            self.train(was_training)

    def _losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        fake = self.generator(self.latent(x.shape[0]))
        real_logits, fake_logits = self.discriminator(x), self.discriminator(fake)
        d_loss = discriminator_loss(real_logits, fake_logits)
        return d_loss, GENERATOR_LOSSES[self.generator_loss](fake_logits), real_logits, fake_logits

    def loss(self, batch: torch.Tensor | tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Both losses on one batch without any step (for ``utils.train.evaluate``)."""
        x = batch[0] if isinstance(batch, tuple | list) else batch
        d_loss, g_loss, real_logits, fake_logits = self._losses(x)
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    def training_step(
        self, batch: torch.Tensor | tuple[torch.Tensor, ...], optimizers: Mapping[str, torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]:
        missing = {"gen", "disc"} - set(optimizers)
        if missing:
            raise KeyError(f"GAN.training_step needs optimizers 'gen' and 'disc'; {sorted(missing)} missing.")
        x = batch[0] if isinstance(batch, tuple | list) else batch  # labels, if any, are ignored
        fake = self.generator(self.latent(x.shape[0]))  # [B, ...]
        # Discriminator: fakes detached, so that this backward pass leaves G's gradients alone.
        optimizers["disc"].zero_grad(set_to_none=True)
        real_logits = self.discriminator(x)
        d_loss = discriminator_loss(real_logits, self.discriminator(fake.detach()))
        d_loss.backward()
        optimizers["disc"].step()
        # Generator: through the updated discriminator.
        optimizers["gen"].zero_grad(set_to_none=True)
        fake_logits = self.discriminator(fake)
        g_loss = GENERATOR_LOSSES[self.generator_loss](fake_logits)
        g_loss.backward()
        optimizers["gen"].step()
        d_loss, g_loss = d_loss.detach(), g_loss.detach()
        return {
            "loss": d_loss + g_loss,
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": torch.sigmoid(real_logits.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        }


def gan_optimizers(
    gan: GAN, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)
) -> dict[str, torch.optim.Optimizer]:
    """``{"gen": Adam(G), "disc": Adam(D)}`` with Radford et al.'s lr 2e-4 and beta1 0.5 (eager-only)."""
    return {
        "gen": adam(gan.generator, lr, betas=betas, capturable=False),
        "disc": adam(gan.discriminator, lr, betas=betas, capturable=False),
    }


# ------------------------------------------------------------------------- sampling away from the gaps


@torch.no_grad()
def generator_jacobian_norm(
    generator: nn.Module, z: torch.Tensor, n_directions: int = 8, rng: torch.Generator | None = None
) -> torch.Tensor:
    """|dG/dz|_F at each latent, z [B, z_dim] -> [B], by Hutchinson's estimator.

    For v ~ N(0, I), E|J v|^2 = tr(J^T J) = |J|_F^2, and J v is one forward-mode pass (dual numbers);
    the estimate averages ``n_directions`` such passes, direction k drawn as ``torch.randn(z.shape,
    generator=rng)`` in order (``rng``, if given, on z's device). The generator runs in eval mode
    (restored afterwards): batch norm then uses its running averages, so row i of the output depends on
    z[i] alone and one batched pass gives every row's own J_i v_i.
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or not z.is_floating_point():
        raise ValueError(f"z must be a floating-point [B, z_dim] batch of latents, got {getattr(z, 'shape', z)}.")
    if int(n_directions) < 1:
        raise ValueError(f"n_directions must be a positive number of random directions, got {n_directions}.")
    was_training = generator.training
    generator.eval()
    try:
        total = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for _ in range(int(n_directions)):
            v = torch.randn(z.shape, generator=rng, dtype=z.dtype, device=z.device)
            with forward_ad.dual_level():  # forward mode: J v in one pass, the output's shape
                jv = forward_ad.unpack_dual(generator(forward_ad.make_dual(z, v))).tangent
            total += jv.flatten(1).pow(2).sum(1)
        return (total / int(n_directions)).sqrt()
    finally:
        generator.train(was_training)


def jacobian_truncation(
    generator: nn.Module,
    z: torch.Tensor,
    keep: float = 0.7,
    n_directions: int = 8,
    rng: torch.Generator | None = None,
) -> torch.Tensor:
    """A boolean mask [B] keeping the share ``keep`` of latents with the smallest |dG/dz|_F (lecture 08: 70%).

    Tanielian et al. (2020): a continuous G must cross from one class to the next somewhere, and it tends
    to do so where it changes fastest; dropping those latents drops many of the in-between samples (for
    lecture 08's DCGAN the steepest 30% of latents held just over half of the samples its judge was unsure of).
    """
    if not 0.0 < float(keep) <= 1.0:
        raise ValueError(f"keep={keep} must lie in (0, 1]: the share of latents to keep.")
    norms = generator_jacobian_norm(generator, z, n_directions, rng)
    order = norms.argsort()
    mask = torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
    mask[order[: max(1, round(float(keep) * z.shape[0]))]] = True
    return mask
