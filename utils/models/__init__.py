"""Reference building blocks that the lectures derive from scratch and later lectures reuse, by family.

* ``densities``: ``reparameterize``, ``gaussian_kl``, ``log_normal``, ``log_standard_normal``,
  ``bernoulli_log_likelihood``, ``iwae_bound`` (functions summing over the last dimension).
* ``networks``: ``MLP``, ``GaussianEncoder`` / ``ConvEncoder`` (x -> mu, logvar),
  ``BernoulliDecoder`` / ``ConvDecoder`` (z -> logits).
* ``vae``: ``VAE``, the k-sample ELBO or IWAE model of Burda et al. (2016); by default their
  one-stochastic-layer MNIST model (784-200-200-50 tanh networks).
* ``flows``: ``Flow`` (forward(x) -> (z, logdet), inverse(z)), ``PlanarFlow``, ``RadialFlow``,
  ``AdditiveCoupling``, ``Scaling``, ``AffineCoupling``, ``ActNorm``, ``InvertibleLinear``, ``Squeeze``, masks, coupling
  networks, ``FlowModel``; for images ``dequantize``, ``logit_transform``, ``dequantized_bits_per_dim``
  and ``DequantizedFlow``.
* ``base``: ``GenerativeModel``, the contract of ``utils.train.fit``: ``loss(batch) -> dict`` and
  ``sample(n)``.

Autoregressive models, GANs, ... get a module of their own as their lectures land. Everything
is importable from here: ``from utils.models import VAE, iwae_bound``.
"""

from utils.models.base import GenerativeModel
from utils.models.densities import (
    LOG_2PI,
    bernoulli_log_likelihood,
    gaussian_kl,
    iwae_bound,
    log_normal,
    log_standard_normal,
    reparameterize,
)
from utils.models.flows import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    ConvCouplingNet,
    DequantizedFlow,
    Flow,
    FlowModel,
    InvertibleLinear,
    PlanarFlow,
    RadialFlow,
    Scaling,
    Squeeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    coupling_mlp,
    dequantize,
    dequantized_bits_per_dim,
    logit_inverse,
    logit_transform,
)
from utils.models.networks import MLP, BernoulliDecoder, ConvDecoder, ConvEncoder, GaussianEncoder
from utils.models.vae import VAE

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
    "Flow",
    "PlanarFlow",
    "RadialFlow",
    "AdditiveCoupling",
    "Scaling",
    "AffineCoupling",
    "ActNorm",
    "InvertibleLinear",
    "Squeeze",
    "alternating_mask",
    "checkerboard_mask",
    "channel_mask",
    "coupling_mlp",
    "ConvCouplingNet",
    "FlowModel",
    "dequantize",
    "logit_transform",
    "logit_inverse",
    "dequantized_bits_per_dim",
    "DequantizedFlow",
]
