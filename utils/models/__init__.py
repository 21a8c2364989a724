"""Reference building blocks that the lectures derive from scratch and later lectures reuse, by family.

* ``densities``: ``reparameterize``, ``gaussian_kl``, ``log_normal``, ``log_standard_normal``,
  ``bernoulli_log_likelihood``, ``iwae_bound`` (functions summing over the last dimension).
* ``networks``: ``MLP``, ``GaussianEncoder`` / ``ConvEncoder`` (x -> mu, logvar),
  ``BernoulliDecoder`` / ``ConvDecoder`` (z -> logits).
* ``vae``: ``VAE``, the k-sample ELBO or IWAE model of Burda et al. (2016); by default their
  one-stochastic-layer MNIST model (784-200-200-50 tanh networks).
* ``autoregressive``: ``made_degrees``, ``made_masks``, ``MaskedLinear``, ``MADE``, ``raster_mask``,
  ``MaskedConv2d``, ``PixelCNN``, ``CharRNN``, ``ancestral_sample``, ``bernoulli_log_prob`` (lecture 05).
* ``flows``: ``Flow`` (forward(x) -> (z, logdet), inverse(z)), ``PlanarFlow``, ``RadialFlow``,
  ``AdditiveCoupling``, ``Scaling``, ``AffineCoupling``, ``ActNorm``, ``InvertibleLinear``, ``Squeeze``, masks, coupling
  networks, ``FlowModel``; for images ``dequantize``, ``logit_transform``, ``dequantized_bits_per_dim``
  and ``DequantizedFlow``.
* ``posteriors``: richer q's in the sampling direction (lecture 07): ``amortized_planar``, ``IAFStep``,
  and ``BayesLinear`` (Bayes by backprop).
* ``gan``: losses from discriminator logits (``discriminator_loss``, ``minimax_generator_loss``,
  ``nonsaturating_generator_loss``), MLP players for 2-D toys, ``DCGANGenerator`` /
  ``DCGANDiscriminator`` (Radford et al. 2016), ``GAN`` with ``training_step`` for two optimizers, and
  ``generator_jacobian_norm`` / ``jacobian_truncation`` (sampling away from the gaps between classes).
* ``aae``: adversarial autoencoders (lecture 09): ``GaussianMixturePrior`` with ``standard_normal_prior``,
  ``ring_prior`` and ``swiss_roll_prior`` (sampled and evaluated exactly), ``AAE`` with ``training_step`` for
  two optimizers (``aae_optimizers``) and ``reconstruction_nats``.
* ``discrete``: categorical latents (lecture 10): ``sample_gumbel``, ``gumbel_max_sample``,
  ``gumbel_softmax_sample`` (Concrete; ``hard=True`` for straight-through), ``concrete_log_prob``,
  ``straight_through``, ``straight_through_sample``, ``score_function_surrogate``,
  ``categorical_kl_uniform``, ``MovingAverage``, ``NVILBaseline`` and ``CategoricalVAE``.
* ``diffusion``: score matching and DDPMs (lecture 13): schedules (``linear_betas``, ``cosine_alpha_bars``,
  ``alpha_bars``), ``q_sample``, ``posterior_mean_var``, ``predict_x0``, ``ddpm_loss``, ``DDPM``, ``ddpm_sample``,
  ``ddim_sample``, ``ddpm_bound_terms``, ``discretized_gaussian_log_likelihood``, ``dsm_loss``,
  ``annealed_langevin``, ``timestep_embedding``, ``TimeResBlock``, ``TimeUNet``.
* ``classifier``: ``DigitClassifier``, lecture 08's judge of generated digits (features for the Fréchet distance).
* ``sequence``: sentence models (lecture 11): ``sentence_log_prob``, ``word_dropout``, ``kl_weight``,
  ``LSTMLanguageModel``, ``SentenceVAE`` (Bowman et al. 2016), ``SkipThought`` (Kiros et al. 2015),
  ``generate``, ``cosine_neighbours``, ``perplexity``.
* ``structured``: lecture 12: the Gaussian ``filterbank``, ``attention_params``, ``attention_read`` /
  ``attention_write``, ``DRAW`` (Gregor et al. 2015) and the semi-supervised ``M2`` (Kingma et al. 2014).
* ``base``: ``GenerativeModel``, the contract of ``utils.train.fit``: ``loss(batch) -> dict`` and
  ``sample(n)``.

Later families get a module of their own as their lectures land. Everything
is importable from here: ``from utils.models import VAE, iwae_bound``.
"""

from utils.models.aae import (
    AAE,
    GaussianMixturePrior,
    aae_optimizers,
    reconstruction_nats,
    ring_prior,
    standard_normal_prior,
    swiss_roll_means,
    swiss_roll_prior,
)
from utils.models.autoregressive import (
    MADE,
    CharRNN,
    MaskedConv2d,
    MaskedLinear,
    PixelCNN,
    ancestral_sample,
    bernoulli_log_prob,
    made_degrees,
    made_masks,
    raster_mask,
)
from utils.models.base import GenerativeModel
from utils.models.classifier import DigitClassifier
from utils.models.densities import (
    LOG_2PI,
    bernoulli_log_likelihood,
    gaussian_kl,
    iwae_bound,
    log_normal,
    log_standard_normal,
    reparameterize,
)
from utils.models.diffusion import (
    DDPM,
    TimeResBlock,
    TimeUNet,
    alpha_bars,
    annealed_langevin,
    cosine_alpha_bars,
    ddim_sample,
    ddpm_bound_terms,
    ddpm_loss,
    ddpm_sample,
    discretized_gaussian_log_likelihood,
    dsm_loss,
    linear_betas,
    posterior_mean_var,
    predict_x0,
    q_sample,
    timestep_embedding,
)
from utils.models.discrete import (
    ESTIMATORS,
    CategoricalVAE,
    MovingAverage,
    NVILBaseline,
    categorical_kl_uniform,
    concrete_log_prob,
    gumbel_max_sample,
    gumbel_softmax_sample,
    sample_gumbel,
    score_function_surrogate,
    straight_through,
    straight_through_sample,
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
from utils.models.gan import (
    GAN,
    GENERATOR_LOSSES,
    DCGANDiscriminator,
    DCGANGenerator,
    dcgan_init,
    discriminator_loss,
    gan_optimizers,
    generator_jacobian_norm,
    jacobian_truncation,
    minimax_generator_loss,
    mlp_discriminator,
    mlp_generator,
    nonsaturating_generator_loss,
)
from utils.models.networks import MLP, BernoulliDecoder, ConvDecoder, ConvEncoder, GaussianEncoder
from utils.models.posteriors import BayesLinear, IAFStep, amortized_planar
from utils.models.sequence import (
    LSTMLanguageModel,
    SentenceVAE,
    SkipThought,
    cosine_neighbours,
    generate,
    kl_weight,
    last_state,
    num_predicted,
    perplexity,
    sentence_log_prob,
    word_dropout,
)
from utils.models.structured import (
    DRAW,
    M2,
    attention_params,
    attention_read,
    attention_write,
    filterbank,
)
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
    # gan (lecture 08)
    "GAN",
    "GENERATOR_LOSSES",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "dcgan_init",
    "discriminator_loss",
    "gan_optimizers",
    "generator_jacobian_norm",
    "jacobian_truncation",
    "minimax_generator_loss",
    "mlp_discriminator",
    "mlp_generator",
    "nonsaturating_generator_loss",
    # aae (lecture 09)
    "AAE",
    "GaussianMixturePrior",
    "aae_optimizers",
    "reconstruction_nats",
    "ring_prior",
    "standard_normal_prior",
    "swiss_roll_means",
    "swiss_roll_prior",
    # autoregressive (lecture 05)
    "made_degrees",
    "made_masks",
    "MaskedLinear",
    "MADE",
    "raster_mask",
    "MaskedConv2d",
    "PixelCNN",
    "CharRNN",
    "ancestral_sample",
    "bernoulli_log_prob",
    # flows (lecture 06)
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
    # posteriors (lecture 07)
    "amortized_planar",
    "IAFStep",
    "BayesLinear",
    # discrete latents (lecture 10)
    "ESTIMATORS",
    "sample_gumbel",
    "gumbel_max_sample",
    "gumbel_softmax_sample",
    "concrete_log_prob",
    "straight_through",
    "straight_through_sample",
    "score_function_surrogate",
    "categorical_kl_uniform",
    "MovingAverage",
    "NVILBaseline",
    "CategoricalVAE",
    # diffusion and score matching (lecture 13)
    "linear_betas",
    "cosine_alpha_bars",
    "alpha_bars",
    "q_sample",
    "posterior_mean_var",
    "predict_x0",
    "ddpm_loss",
    "DDPM",
    "ddpm_sample",
    "ddim_sample",
    "ddpm_bound_terms",
    "discretized_gaussian_log_likelihood",
    "dsm_loss",
    "annealed_langevin",
    "timestep_embedding",
    "TimeResBlock",
    "TimeUNet",
    "DigitClassifier",
    # sequence (lecture 11)
    "LSTMLanguageModel",
    "SentenceVAE",
    "SkipThought",
    "cosine_neighbours",
    "generate",
    "kl_weight",
    "last_state",
    "num_predicted",
    "perplexity",
    "sentence_log_prob",
    "word_dropout",
    # structured encoders and decoders (lecture 12)
    "filterbank",
    "attention_params",
    "attention_read",
    "attention_write",
    "DRAW",
    "M2",
]
