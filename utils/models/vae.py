"""The variational autoencoder with a Gaussian q(z|x) and a Bernoulli p(x|z), trained on the k-sample
ELBO or the IWAE bound (Burda, Grosse & Salakhutdinov 2016).

Shapes: ``B`` examples, ``D`` latent dimensions, ``X`` = 784 pixels, ``k`` importance samples.
Samples always come first: a VAE turns x [B, X] into z [k, B, D] and logits [k, B, X] in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from utils import runtime
from utils.data import dynamic_binarize
from utils.models.densities import (
    bernoulli_log_likelihood,
    gaussian_kl,
    iwae_bound,
    log_normal,
    log_standard_normal,
    reparameterize,
    standard_normal,
)
from utils.models.networks import BernoulliDecoder, GaussianEncoder

_BOUNDS = ("elbo", "iwae")


class VAE(nn.Module):
    """Variational autoencoder with a N(0, I) prior, Gaussian q(z|x) and Bernoulli p(x|z).

    Defaults give the one-stochastic-layer model of Burda et al. (2016): tanh MLPs 784-200-200-50
    and 50-200-200-784. ``encoder`` / ``decoder`` replace the MLPs (e.g. ``ConvDecoder(z_dim)``);
    an encoder must return (mu, logvar) and a decoder logits of shape [..., x_dim].

    Training objective (``loss``), with k = ``k`` samples z_i ~ q(z|x) and
    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x):

    * ``bound="elbo"``: mean_i log w_i, the k-sample ELBO estimate ("VAE" in Burda et al.).
      With ``analytic_kl=True`` it is mean_i log p(x|z_i) - KL(q||p) instead (lower variance,
      Kingma & Welling 2014).
    * ``bound="iwae"``: log (1/k) sum_i w_i (``iwae_bound``). For k = 1 and the same noise it
      equals the ELBO estimate exactly.

    With ``binarize=True`` every training batch is dynamically binarized (x ~ Bernoulli(pixel
    intensity)) while the module is in training mode; in eval mode x is used as given.
    """

    def __init__(
        self,
        x_dim: int = 784,
        hidden: Sequence[int] = (200, 200),
        z_dim: int = 50,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        k: int = 1,
        bound: str = "elbo",
        binarize: bool = True,
        analytic_kl: bool = False,
    ) -> None:
        super().__init__()
        if bound not in _BOUNDS:
            raise ValueError(f"bound={bound!r} is not known; use one of {_BOUNDS}.")
        if int(k) != k or k < 1:
            raise ValueError(f"k={k} samples per example; k must be a positive integer.")
        if analytic_kl and bound == "iwae":
            raise ValueError(
                "analytic_kl=True only applies to bound='elbo'; the IWAE bound needs log q(z|x) per sample."
            )
        self.x_dim, self.z_dim = x_dim, z_dim
        self.k, self.bound, self.binarize, self.analytic_kl = int(k), bound, binarize, analytic_kl
        self.encoder = encoder if encoder is not None else GaussianEncoder(x_dim, hidden, z_dim)
        self.decoder = (
            decoder if decoder is not None else BernoulliDecoder(z_dim, tuple(reversed(tuple(hidden))), x_dim)
        )

    # -- the two networks -----------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): x [..., x_dim] -> (mu, logvar), each [..., z_dim]."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """p(x|z): z [..., z_dim] -> Bernoulli logits [..., x_dim]."""
        return self.decoder(z)

    @torch.no_grad()
    def init_decoder_bias(self, x: torch.Tensor, eps: float = 1e-3) -> VAE:
        """Start the decoder at the data's mean image: output bias = logit(mean pixel of x).

        x: [N, x_dim] (or images) in [0, 1], e.g. the training set. Training then skips the early
        plateau in which the decoder only learns the average digit (on MNIST the initial
        reconstruction cost drops from about 540 to about 205 nats). Returns the model, so
        ``vae = VAE().init_decoder_bias(x_train)`` works. The decoder needs ``set_output_bias``.
        """
        if not hasattr(self.decoder, "set_output_bias"):
            raise TypeError(
                f"{type(self.decoder).__name__} has no set_output_bias(logits) method; add one that sets "
                "its per-pixel output bias, or skip init_decoder_bias."
            )
        mean = x.flatten(1).to(torch.float64).mean(0)
        if bool((mean < 0).any() or (mean > 1).any()):
            raise ValueError(
                "init_decoder_bias needs data in [0, 1] (pixel intensities or binary pixels); "
                "divide uint8 images by 255 first."
            )
        mean = mean.clamp(eps, 1 - eps)
        ref = next(self.decoder.parameters())
        self.decoder.set_output_bias(torch.logit(mean).to(device=ref.device, dtype=ref.dtype))
        return self

    # -- log weights and bounds -----------------------------------------------------------------
    def _log_weight_terms(
        self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log p(x|z) [k, B], log p(z) - log q(z|x) [k, B], mu [B, D], logvar [B, D]) for z ~ q."""
        mu, logvar = self.encode(x)  # [B, D] each
        z = reparameterize(mu, logvar, generator, k=k)  # [k, B, D]
        log_px_given_z = bernoulli_log_likelihood(self.decode(z), x)  # [k, B]
        log_prior_ratio = log_standard_normal(z) - log_normal(z, mu, logvar)  # [k, B]
        return log_px_given_z, log_prior_ratio, mu, logvar

    def log_weights(
        self, x: torch.Tensor, k: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """log w = log p(x, z) - log q(z|x) for k samples z ~ q(z|x): x [B, x_dim] -> [k, B].

        x is used as given (no binarization): evaluate on data that is already binary.
        """
        log_px_given_z, log_prior_ratio, _, _ = self._log_weight_terms(x, k, generator)
        return log_px_given_z + log_prior_ratio

    def elbo(self, x: torch.Tensor, k: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """The ELBO estimate per example, averaged over k samples: x [B, x_dim] -> [B] (nats, <= 0)."""
        log_px_given_z, log_prior_ratio, mu, logvar = self._log_weight_terms(x, k, generator)
        if self.analytic_kl:
            return log_px_given_z.mean(0) - gaussian_kl(mu, logvar)
        return (log_px_given_z + log_prior_ratio).mean(0)

    def iwae(self, x: torch.Tensor, k: int = 50, generator: torch.Generator | None = None) -> torch.Tensor:
        """The k-sample importance-weighted bound per example: x [B, x_dim] -> [B] (nats)."""
        return iwae_bound(self.log_weights(x, k, generator))

    # -- training --------------------------------------------------------------------------------
    def _prepare(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """The data of a batch as float [B, x_dim], binarized afresh when training with binarize=True."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if x.dim() > 2:  # images [B, 28, 28] or [B, 1, 28, 28]
            x = x.flatten(1)
        if not x.is_floating_point():
            # Raw uint8 images (0..255) would give a meaningless likelihood; binary 0/1 integers are fine.
            runtime.require(
                x.numel() == 0 or x.max() <= 1,
                f"VAE expects pixel intensities in [0, 1] or binary 0/1 data, got {x.dtype} values above 1: "
                "divide by 255 first (utils.data.mnist_vectors returns [0, 1] floats).",
            )
            x = x.to(torch.get_default_dtype())
        if self.binarize and self.training:
            x = dynamic_binarize(x)
        return x

    def loss(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Negative bound for one batch x [B, x_dim] in [0, 1] (or a tuple whose first item is x).

        Returns scalars, per-example means in nats: ``loss`` = -bound (minimise this), ``elbo``
        (the ELBO estimate, <= 0), ``kl`` = KL(q(z|x) || p(z)) in closed form, ``rec`` =
        -E_q log p(x|z) (the reconstruction term, >= 0). With analytic_kl, elbo = -(rec + kl);
        otherwise elbo equals -(rec + kl) only in expectation. Only ``loss`` carries gradients.
        """
        x = self._prepare(batch)
        log_px_given_z, log_prior_ratio, mu, logvar = self._log_weight_terms(x, self.k)
        kl = gaussian_kl(mu, logvar)  # [B]
        rec = -log_px_given_z.mean(0)  # [B]
        log_w = log_px_given_z + log_prior_ratio  # [k, B]
        elbo = -(rec + kl) if self.analytic_kl else log_w.mean(0)  # [B]
        bound = iwae_bound(log_w) if self.bound == "iwae" else elbo
        return {
            "loss": -bound.mean(),
            "elbo": elbo.mean().detach(),
            "kl": kl.mean().detach(),
            "rec": rec.mean().detach(),
        }

    # -- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images from the model as pixel probabilities sigmoid(decode(z)), z ~ N(0, I): [n, x_dim].

        Returns Bernoulli means (smooth images), not binary draws; use torch.bernoulli for those.
        """
        ref = next(self.parameters())
        z = standard_normal((n, self.z_dim), ref, generator)
        return torch.sigmoid(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities decoded from the posterior mean: x [B, x_dim] -> [B, x_dim]."""
        mu, _ = self.encode(x.flatten(1).to(next(self.parameters()).dtype))
        return torch.sigmoid(self.decode(mu))
