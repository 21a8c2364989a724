"""Discrete latent variables and their gradient estimators (lecture 10).

Shapes: ``K`` classes of one categorical variable on the last dimension, ``N`` variables before it,
``B`` examples; a code is one-hot ``[B, N, K]``. Logits need not be normalised.

* ``sample_gumbel``                   g = -log(-log U), U ~ Uniform(0, 1)
* ``gumbel_max_sample(logits)``       one-hot of argmax(logits + g): an exact categorical sample
* ``gumbel_softmax_sample(l, tau)``   softmax((l + g) / tau), the Concrete / Gumbel-softmax relaxation
                                      (``hard=True``: the straight-through Gumbel-softmax of Jang et al.)
* ``concrete_log_prob(y, l, tau)``    its log-density on the simplex (Maddison et al. 2017, eq. 1)
* ``straight_through(hard, soft)``    forward ``hard``, backward the gradient of ``soft``
* ``straight_through_sample(l)``      a categorical one-hot whose gradient is that of softmax(l) (Bengio et al. 2013)
* ``score_function_surrogate(f, log_q, baseline)``  value f, gradient (f - b) grad log q + grad f
* ``categorical_kl_uniform(l)``       KL(Cat(softmax l) || uniform), summed over the variables
* ``MovingAverage``, ``NVILBaseline``  the control variates of Mnih & Gregor (2014)
* ``CategoricalVAE``                  Jang et al.'s categorical VAE, trained with any ``ESTIMATORS`` entry;
                                      ``log_weights(x, k)`` for the multi-sample bound L_k
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from utils import runtime
from utils.models.densities import bernoulli_log_likelihood
from utils.models.networks import MLP

# Smallest uniform draw: keeps -log(-log U) finite in float32 (U = 0 gives -inf, U = 1 gives +inf).
_TINY = 1e-20
ESTIMATORS = ("sf", "sf-ma", "nvil", "st", "gumbel", "st-gumbel")


def sample_gumbel(
    shape: Sequence[int], like: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Standard Gumbel noise of ``shape`` on ``like``'s device and dtype: -log(-log U)."""
    where = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=where, dtype=like.dtype).to(like.device)
    return -torch.log(-torch.log(u.clamp(_TINY, 1.0 - 1e-7)))


def _check_logits(logits: torch.Tensor, who: str) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() == 0:
        raise TypeError(f"{who} needs float logits with the classes on the last dimension, e.g. [B, N, K].")


def _check_tau(tau: float | torch.Tensor, who: str) -> None:
    if isinstance(tau, torch.Tensor):
        runtime.require(tau > 0, f"{who} needs a temperature tau > 0.")
    elif not tau > 0:
        raise ValueError(f"{who} needs a temperature tau > 0, got {tau}.")


def gumbel_max_sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One-hot z with P(z_k = 1) = softmax(logits)_k, as argmax_k (logits_k + g_k): same shape as logits."""
    _check_logits(logits, "gumbel_max_sample")
    index = (logits.detach() + sample_gumbel(logits.shape, logits, generator)).argmax(-1)
    return F.one_hot(index, logits.shape[-1]).to(logits.dtype)


def gumbel_softmax_sample(
    logits: torch.Tensor,
    tau: float | torch.Tensor = 1.0,
    generator: torch.Generator | None = None,
    hard: bool = False,
) -> torch.Tensor:
    """A Concrete(logits, tau) sample softmax((logits + g) / tau), differentiable in logits.

    ``hard=True`` returns the one-hot argmax of the same sample (an exact categorical draw) in the
    forward pass and the relaxed sample's gradient in the backward pass (ST Gumbel-softmax).
    """
    _check_logits(logits, "gumbel_softmax_sample")
    _check_tau(tau, "gumbel_softmax_sample")
    soft = torch.softmax((logits + sample_gumbel(logits.shape, logits, generator)) / tau, dim=-1)
    if not hard:
        return soft
    return straight_through(F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype), soft)


def concrete_log_prob(y: torch.Tensor, logits: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """log p(y) of Concrete(logits, tau) on the open simplex, w.r.t. Lebesgue measure on y_1..y_{K-1}.

    p(y) = (K-1)! tau^(K-1) prod_k [alpha_k y_k^(-tau-1) / sum_i alpha_i y_i^(-tau)], alpha = exp(logits)
    (Maddison et al. 2017, eq. 1). y [..., K] with positive entries summing to 1 -> [...].
    """
    _check_logits(logits, "concrete_log_prob")
    _check_tau(tau, "concrete_log_prob")
    k = y.shape[-1]
    tau = torch.as_tensor(tau, dtype=y.dtype, device=y.device)
    log_y = torch.log(y)
    log_norm = torch.logsumexp(logits - tau * log_y, dim=-1)  # log sum_i alpha_i y_i^(-tau)
    return math.lgamma(k) + (k - 1) * torch.log(tau) + (logits - (tau + 1) * log_y).sum(-1) - k * log_norm


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Equal to ``hard`` in value, with the gradient of ``soft``: (soft - soft.detach()) + hard.

    Written in this order so that the value is exactly ``hard``: soft - soft.detach() is exactly 0,
    while hard + soft - soft.detach() can be off by a rounding error (1 + 0.7 - 0.7 != 1 in float).
    """
    return (soft - soft.detach()) + hard.detach()


def straight_through_sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """An exact one-hot categorical sample whose backward pass is that of softmax(logits) (ST)."""
    return straight_through(gumbel_max_sample(logits, generator), torch.softmax(logits, dim=-1))


def score_function_surrogate(
    f: torch.Tensor, log_q: torch.Tensor, baseline: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """A surrogate whose value is ``f`` and whose gradient is (f - baseline) grad log_q + grad f.

    f, log_q: [...] per sample (log_q = log q(z) of the drawn z). The learning signal f - baseline is
    held constant, so ``baseline`` (a number, or a tensor that may depend on x but not on z) gets
    no gradient from it; train a learned baseline with its own loss.
    """
    signal = (f - baseline).detach()
    return f + signal * (log_q - log_q.detach())


def categorical_kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(Cat(softmax(logits)) || uniform over K), summed over all but the first dimension: [B, ...] -> [B]."""
    log_q = torch.log_softmax(logits, dim=-1)
    kl = (log_q.exp() * (log_q + math.log(logits.shape[-1]))).sum(-1)
    return kl.reshape(kl.shape[0], -1).sum(-1) if kl.dim() > 1 else kl


class MovingAverage(nn.Module):
    """An exponential moving average of a batch statistic, kept in a buffer and updated in place.

    ``forward(values)`` returns the average *before* this batch (so it does not depend on the
    current samples) and then folds the batch mean in: m <- decay m + (1 - decay) mean(values).
    The first batch replaces the zero start, so early values are not pulled towards 0.
    """

    def __init__(self, decay: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay} must lie in [0, 1).")
        self.decay = decay
        self.register_buffer("value", torch.zeros(()))
        self.register_buffer("started", torch.zeros(()))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        batch = values.detach().mean().to(self.value.dtype)
        before, started = self.value.clone(), self.started > 0
        weight = torch.where(started, torch.full_like(batch, self.decay), torch.zeros_like(batch))
        if self.training:
            self.value.mul_(weight).add_((1 - weight) * batch)
            self.started.fill_(1.0)
        return torch.where(started, before, batch)


class NVILBaseline(nn.Module):
    """The control variates of NVIL (Mnih & Gregor 2014) for a learning signal l(x, z).

    ``forward(x, signal) -> (centred, loss)``: centred = (l - b - c(x)) / max(1, sd), where c is an
    MLP of x (input-dependent baseline), b a moving average of l - c(x) and sd a moving estimate of
    the centred signal's standard deviation (``normalise=True``, their variance normalisation);
    ``loss`` = mean (l - b - c(x))^2 trains c. Everything returned as centred is detached.
    """

    def __init__(self, x_dim: int = 784, hidden: Sequence[int] = (100,), decay: float = 0.9,
                 normalise: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.net = MLP([x_dim, *hidden, 1], nn.Tanh)
        self.mean, self.square = MovingAverage(decay), MovingAverage(decay)
        self.normalise = normalise

    def forward(self, x: torch.Tensor, signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.net(x).squeeze(-1)  # [B]
        residual = signal.detach() - c  # what c(x) leaves unexplained
        b = self.mean(residual)
        loss = (residual - b.detach()).pow(2).mean()
        centred = (residual - b).detach()
        if self.normalise:
            sd = self.square(centred.pow(2)).sqrt()
            centred = centred / sd.clamp(min=1.0)
        return centred, loss


class CategoricalVAE(nn.Module):
    """A VAE with ``n_vars`` categorical latents of ``n_classes`` classes and a uniform prior.

    Defaults: the 20 x 10 categorical code of Jang et al. (2017)'s MNIST VAE, with encoder
    784-512-256-(20 x 10) and decoder (20 x 10)-256-512-784 (ReLU MLPs): the hidden sizes of the
    authors' public demo notebook, not stated in the paper (its Figure 4 labels the model
    784-(20 x 10)-200). A Bernoulli p(x|z), and the KL to the uniform prior in closed form. ``estimator`` picks the encoder's gradient:

    * ``"sf"``: the score function with no baseline; ``"sf-ma"``: minus a moving average;
      ``"nvil"``: minus NVIL's moving average and input-dependent baseline c(x). Without NVIL's variance
      normalisation: with the KL term in closed form it would shrink only the score part of the
      encoder's gradient, and in lecture 10's runs the KL term then switched the whole code off;
    * ``"st"``: straight-through (forward a categorical sample, backward softmax(logits));
    * ``"gumbel"``: the decoder sees the Gumbel-softmax relaxation at temperature tau;
      ``"st-gumbel"``: a one-hot forward with the relaxation's gradient.

    tau = max(tau_min, tau0 exp(-anneal_rate * step)), kept in buffers so a recorded step stays right.
    ``loss`` returns {"loss", "elbo", "kl", "tau"}; in eval mode every estimator is scored on the
    same quantity, the ELBO of the discrete model (hard samples), ``-loss``.
    """

    def __init__(
        self,
        x_dim: int = 784,
        hidden: Sequence[int] = (512, 256),
        n_vars: int = 20,
        n_classes: int = 10,
        estimator: str = "gumbel",
        tau: float = 1.0,
        tau_min: float = 0.5,
        anneal_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator={estimator!r} is not known; use one of {ESTIMATORS}.")
        if not (tau > 0 and tau_min > 0):
            raise ValueError(f"temperatures must be positive, got tau={tau}, tau_min={tau_min}.")
        self.x_dim, self.n_vars, self.n_classes, self.estimator = x_dim, n_vars, n_classes, estimator
        self.tau0, self.tau_min, self.anneal_rate = float(tau), float(tau_min), float(anneal_rate)
        hidden = tuple(hidden)
        self.encoder = MLP([x_dim, *hidden, n_vars * n_classes], nn.ReLU)
        self.decoder = MLP([n_vars * n_classes, *reversed(hidden), x_dim], nn.ReLU)
        self.register_buffer("step", torch.zeros(()))
        self.average = MovingAverage() if estimator == "sf-ma" else None
        self.baseline = NVILBaseline(x_dim, normalise=False) if estimator == "nvil" else None

    def temperature(self) -> torch.Tensor:
        return (self.tau0 * torch.exp(-self.anneal_rate * self.step)).clamp(min=self.tau_min)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised log q(z_n = k | x): [B, X] -> [B, N, K]."""
        return torch.log_softmax(self.encoder(x).unflatten(-1, (self.n_vars, self.n_classes)), dim=-1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of p(x|z): z [..., N, K] (one-hot or relaxed) -> [..., X]."""
        return self.decoder(z.flatten(-2))

    def code(self, log_q: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The code the decoder sees in training, by estimator: [B, N, K]."""
        if self.estimator == "gumbel":
            return gumbel_softmax_sample(log_q, self.temperature(), generator)
        if self.estimator == "st-gumbel":
            return gumbel_softmax_sample(log_q, self.temperature(), generator, hard=True)
        if self.estimator == "st":
            return straight_through_sample(log_q, generator)
        return gumbel_max_sample(log_q, generator)  # score-function family: no gradient through z

    def loss(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        x = batch.to(self.step.dtype)
        log_q = self.logits(x)  # [B, N, K]
        kl = categorical_kl_uniform(log_q)  # [B]
        if not self.training:
            rec = bernoulli_log_likelihood(self.decode(gumbel_max_sample(log_q, generator)), x)
            return {"loss": (kl - rec).mean(), "kl": kl.mean()}
        z = self.code(log_q, generator)
        rec = bernoulli_log_likelihood(self.decode(z), x)  # [B] log p(x|z)
        extra = torch.zeros((), device=x.device)
        if self.estimator in ("sf", "sf-ma", "nvil"):
            log_q_z = (z * log_q).sum((-2, -1))  # [B] log q(z|x) of the drawn code
            if self.estimator == "sf":
                rec = score_function_surrogate(rec, log_q_z)
            elif self.estimator == "sf-ma":
                rec = score_function_surrogate(rec, log_q_z, self.average(rec))
            else:
                centred, extra = self.baseline(x, rec)
                rec = rec + centred * (log_q_z - log_q_z.detach())  # value rec, gradient centred * grad log q
        elbo = rec - kl
        tau = self.temperature()
        self.step.add_(1.0)
        return {
            "loss": -elbo.mean() + extra,
            "elbo": elbo.mean().detach(),
            "kl": kl.mean().detach(),
            "tau": tau,
        }

    @torch.no_grad()
    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x|z) + log p(z) - log q(z|x) for k one-hot codes z ~ q(z|x) per example: [B, X] -> [k, B].

        For ``utils.metrics.evaluate_nll``: the log-mean-exp over k is the multi-sample bound L_k of the
        discrete model (Burda et al. 2016), the quantity Jang et al. (2017) report with k = 1000.
        The prior is uniform, log p(z) = -N log K.
        """
        x = x.to(self.step.dtype)
        log_q = self.logits(x)  # [B, N, K]
        z = gumbel_max_sample(log_q.expand(k, *log_q.shape), generator)  # [k, B, N, K]
        log_prior = -self.n_vars * math.log(self.n_classes)
        rec = bernoulli_log_likelihood(self.decode(z), x.expand(k, *x.shape))  # [k, B]
        return rec + log_prior - (z * log_q).sum((-2, -1))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Bernoulli means of p(x|z) for n codes from the uniform prior: [n, X]."""
        logits = torch.zeros(n, self.n_vars, self.n_classes, device=self.step.device)
        return torch.sigmoid(self.decode(gumbel_max_sample(logits, generator)))
