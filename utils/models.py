"""Reference building blocks that the lectures derive from scratch and later lectures reuse.

Densities and bounds (functions, every one summing over the *last* dimension):

* ``reparameterize(mu, logvar)``      z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)
* ``gaussian_kl(mu, logvar)``         KL(N(mu, diag exp(logvar)) || N(0, I)) in closed form
* ``log_normal(x, mu, logvar)``       log N(x; mu, diag exp(logvar)), with the -1/2 log 2 pi constant
* ``log_standard_normal(x)``          log N(x; 0, I)
* ``bernoulli_log_likelihood(l, x)``  log Bernoulli(x; sigmoid(l)), stable for large |l|
* ``iwae_bound(log_w)``               log (1/k) sum_i w_i over the sample dimension

Networks: ``MLP``, ``GaussianEncoder`` / ``ConvEncoder`` (x -> mu, logvar), ``BernoulliDecoder`` /
``ConvDecoder`` (z -> logits), and ``VAE``, which trains either the k-sample ELBO or the IWAE bound
(Burda, Grosse & Salakhutdinov 2016). The default VAE is their one-stochastic-layer MNIST model:
784-200-200-50 tanh encoder, 50-200-200-784 tanh decoder, diagonal Gaussian q, Bernoulli p(x|z).

Shapes: ``B`` examples, ``D`` latent dimensions, ``X`` = 784 pixels, ``k`` importance samples.
Samples always come first: a VAE turns x [B, X] into z [k, B, D] and logits [k, B, X] in one pass.

The model contract of ``utils.train.fit`` is the ``GenerativeModel`` protocol below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2.0 * math.pi)

__all__ = [
    "LOG_2PI",
    "GenerativeModel",
    "reparameterize",
    "gaussian_kl",
    "log_normal",
    "log_standard_normal",
    "bernoulli_log_likelihood",
    "iwae_bound",
    "MLP",
    "GaussianEncoder",
    "BernoulliDecoder",
    "ConvEncoder",
    "ConvDecoder",
    "VAE",
]


# ----------------------------------------------------------------------------------------------
# The model contract
# ----------------------------------------------------------------------------------------------
@runtime_checkable
class GenerativeModel(Protocol):
    """What ``utils.train.fit`` and the lectures expect of a generative model (an ``nn.Module``).

    ``loss(batch)`` takes a tensor (or a tuple of tensors whose first element is the data) and
    returns a dict with a scalar ``"loss"`` to minimise plus any other scalars worth logging.
    ``sample(n)`` returns ``n`` samples as a tensor whose first dimension is ``n``.
    """

    def loss(self, batch: torch.Tensor | tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]: ...

    def sample(self, n: int) -> torch.Tensor: ...


# ----------------------------------------------------------------------------------------------
# Densities, divergences and bounds
# ----------------------------------------------------------------------------------------------
def _standard_normal(
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
    eps = _standard_normal(shape, mu, generator)
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


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------
class MLP(nn.Sequential):
    """Linear layers of ``sizes`` with ``activation`` between them (not after the last one).

    ``MLP([784, 200, 200, 50])``: 784 -> 200 -> tanh -> 200 -> tanh -> 50. Input [..., sizes[0]],
    output [..., sizes[-1]]; ``final_activation`` (a module class) is appended when given.
    Weights start from the Glorot & Bengio (2010) uniform heuristic and biases at zero, as in
    Burda et al. (2016); PyTorch's default init shrinks tanh activations layer by layer and
    trains noticeably slower here.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: type[nn.Module] = nn.Tanh,
        final_activation: type[nn.Module] | None = None,
    ) -> None:
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(
                f"MLP needs at least an input and an output size, got sizes={sizes}; e.g. MLP([784, 200, 50])."
            )
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(activation())
        if final_activation is not None:
            layers.append(final_activation())
        super().__init__(*layers)
        for layer in self:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)


class GaussianEncoder(nn.Module):
    """Recognition network q(z|x) = N(mu(x), diag exp(logvar(x))): an MLP with a (mu, logvar) head.

    forward(x [..., x_dim]) -> (mu [..., z_dim], logvar [..., z_dim]).
    """

    def __init__(
        self,
        x_dim: int = 784,
        hidden: Sequence[int] = (200, 200),
        z_dim: int = 50,
        activation: type[nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__()
        hidden = tuple(hidden)
        self.z_dim = z_dim
        self.body = (
            MLP([x_dim, *hidden], activation, final_activation=activation) if hidden else nn.Identity()
        )
        # One linear head for both outputs: a single matmul, split afterwards.
        self.head = nn.Linear(hidden[-1] if hidden else x_dim, 2 * z_dim)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=-1)
        return mu, logvar


class BernoulliDecoder(nn.Module):
    """Generative network p(x|z) = prod_i Bernoulli(x_i; sigmoid(logits_i(z))), an MLP.

    forward(z [..., z_dim]) -> logits [..., x_dim] (any number of leading sample dims).
    """

    def __init__(
        self,
        z_dim: int = 50,
        hidden: Sequence[int] = (200, 200),
        x_dim: int = 784,
        activation: type[nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = MLP([z_dim, *hidden, x_dim], activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    @torch.no_grad()
    def set_output_bias(self, logits: torch.Tensor) -> None:
        """Set the output layer's bias to ``logits`` [x_dim] (e.g. the logits of the pixel means)."""
        self.net[-1].bias.copy_(logits)


class ConvEncoder(nn.Module):
    """Convolutional q(z|x) for 28x28 images: two stride-2 convolutions (28 -> 14 -> 7), then a head.

    forward(x [..., 784] or [..., 1, 28, 28]) -> (mu [..., z_dim], logvar [..., z_dim]).
    """

    def __init__(self, z_dim: int = 50, channels: Sequence[int] = (32, 64)) -> None:
        super().__init__()
        c1, c2 = channels
        self.z_dim = z_dim
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=4, stride=2, padding=1),  # [N, c1, 14, 14]
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=4, stride=2, padding=1),  # [N, c2, 7, 7]
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Linear(c2 * 7 * 7, 2 * z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] == 784:
            lead = x.shape[:-1]
        elif x.dim() >= 3 and tuple(x.shape[-3:]) == (1, 28, 28):
            lead = x.shape[:-3]
        else:
            raise ValueError(
                f"ConvEncoder expects images of shape [..., 784] or [..., 1, 28, 28], got {tuple(x.shape)}."
            )
        h = self.conv(x.reshape(-1, 1, 28, 28))
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu.reshape(*lead, self.z_dim), logvar.reshape(*lead, self.z_dim)


class ConvDecoder(nn.Module):
    """Deconvolutional p(x|z) for 28x28 images: z -> [c1, 7, 7] -> [c2, 14, 14] -> [1, 28, 28] logits.

    forward(z [..., z_dim]) -> logits [..., 784] (leading sample dims are flattened and restored).
    """

    def __init__(self, z_dim: int = 50, channels: Sequence[int] = (64, 32), hidden: int = 256) -> None:
        super().__init__()
        c1, c2 = channels
        self.z_dim = z_dim
        self.net = nn.Sequential(
            nn.Linear(z_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, c1 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (c1, 7, 7)),
            nn.ConvTranspose2d(c1, c2, kernel_size=4, stride=2, padding=1),  # [N, c2, 14, 14]
            nn.ReLU(),
            nn.ConvTranspose2d(c2, 1, kernel_size=4, stride=2, padding=1, bias=False),  # [N, 1, 28, 28]
            nn.Flatten(),
        )
        # One bias per pixel (a convolution's bias is shared by all pixels): lets the decoder start
        # from the mean image, see ``set_output_bias``.
        self.pixel_bias = nn.Parameter(torch.zeros(784))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.net(z.reshape(-1, self.z_dim)) + self.pixel_bias  # [N, 784]
        return logits.reshape(*z.shape[:-1], 784)

    @torch.no_grad()
    def set_output_bias(self, logits: torch.Tensor) -> None:
        """Set the per-pixel output bias to ``logits`` [784] (e.g. the logits of the pixel means)."""
        self.pixel_bias.copy_(logits)


# ----------------------------------------------------------------------------------------------
# The variational autoencoder
# ----------------------------------------------------------------------------------------------
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
            # Raw uint8 images (0..255) would make torch.bernoulli fail (a device-side assert on a GPU,
            # which ends the CUDA session) or, in eval mode, give a meaningless likelihood. Binary 0/1
            # integers are fine. The check reads one number back, so not while a CUDA graph records.
            capturing = x.is_cuda and torch.cuda.is_current_stream_capturing()
            if not capturing and x.numel() and int(x.max()) > 1:
                raise ValueError(
                    f"VAE expects pixel intensities in [0, 1] or binary 0/1 data, got {x.dtype} values up to "
                    f"{int(x.max())}: divide by 255 first (utils.data.mnist_vectors returns [0, 1] floats)."
                )
            x = x.to(torch.get_default_dtype())
        if self.binarize and self.training:
            x = torch.bernoulli(x)
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
        z = _standard_normal((n, self.z_dim), ref, generator)
        return torch.sigmoid(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities decoded from the posterior mean: x [B, x_dim] -> [B, x_dim]."""
        mu, _ = self.encode(x.flatten(1).to(next(self.parameters()).dtype))
        return torch.sigmoid(self.decode(mu))
