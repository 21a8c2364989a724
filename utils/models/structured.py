"""Structured encoders and decoders (lecture 12): DRAW's attention and canvas, and the semi-supervised M2.

* ``filterbank(centre, delta, sigma2, n, size)``: the rows of a Gaussian filterbank (Gregor et al. 2015,
  eq. 19-22), each normalised to sum to one; ``attention_params`` maps the decoder's five numbers to a grid;
  ``attention_read`` / ``attention_write`` apply ``gamma F_Y x F_X^T`` and ``F_Y^T w F_X / gamma``.
* ``DRAW``: the recurrent VAE that adds to a canvas over ``steps`` steps, with or without attention;
  its loss is the negative ELBO: reconstruction at the final canvas plus the KL of every step.
* ``M2``: the semi-supervised VAE of Kingma et al. (2014): a classifier q(y|x), an encoder q(z|x,y)
  and a decoder p(x|y,z); ``labelled_bound``, ``unlabelled_bound`` (the sum over classes weighted by
  q(y|x), plus its entropy) and a loss with the classifier term weighted by ``alpha``.

Every bound is in nats per example. KL terms reuse ``densities.gaussian_kl``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from utils.data import dynamic_binarize
from utils.models.densities import bernoulli_log_likelihood, gaussian_kl, log_normal, reparameterize
from utils.models.networks import MLP

EPS = 1e-8


def filterbank(
    centre: torch.Tensor, delta: torch.Tensor, sigma2: torch.Tensor, n: int, size: int
) -> torch.Tensor:
    """Gaussian filters F[b, i, a] proportional to exp(-(a - mu_i)^2 / (2 sigma2)), each row summing to one.

    centre, delta, sigma2: [B] (grid centre, stride between filters, variance, in pixels); the filter
    means are mu_i = centre + (i - n/2 + 1/2) delta for i = 0..n-1. Returns [B, n, size].
    """
    if n < 1 or size < 1:
        raise ValueError(f"filterbank needs n >= 1 filters over size >= 1 pixels, got n={n}, size={size}.")
    i = torch.arange(n, device=centre.device, dtype=centre.dtype)
    a = torch.arange(size, device=centre.device, dtype=centre.dtype)
    mu = centre[:, None] + (i - n / 2 + 0.5) * delta[:, None]  # [B, n]
    f = torch.exp(-((a - mu[:, :, None]) ** 2) / (2 * sigma2[:, None, None]))  # [B, n, size]
    return f / (f.sum(-1, keepdim=True) + EPS)


def attention_params(
    params: torch.Tensor, height: int, width: int, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The five numbers (g~x, g~y, log sigma^2, log delta~, log gamma) [B, 5] -> F_Y [B, n, H], F_X [B, n, W],
    gamma [B], and the grid's centre (gx, gy) [B, 2] and stride delta [B] in pixels (for drawing it)."""
    gx_, gy_, log_sigma2, log_delta, log_gamma = params.unbind(-1)
    gx = (width + 1) / 2 * (gx_ + 1)  # the centre: -1..1 maps onto the image (1-based pixel units)
    gy = (height + 1) / 2 * (gy_ + 1)
    delta = (max(height, width) - 1) / max(n - 1, 1) * torch.exp(log_delta)
    sigma2 = torch.exp(log_sigma2)
    # pixels are 1..W in the paper's convention; filterbank counts from 0
    fx = filterbank(gx - 1, delta, sigma2, n, width)
    fy = filterbank(gy - 1, delta, sigma2, n, height)
    return fy, fx, torch.exp(log_gamma), torch.stack([gx - 1, gy - 1], -1), delta


def attention_read(x: torch.Tensor, fy: torch.Tensor, fx: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """gamma F_Y x F_X^T: images [B, H, W] -> glimpses [B, n, n]."""
    return gamma[:, None, None] * (fy @ x @ fx.transpose(1, 2))


def attention_write(w: torch.Tensor, fy: torch.Tensor, fx: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """F_Y^T w F_X / gamma: patches [B, n, n] -> images [B, H, W]."""
    return (fy.transpose(1, 2) @ w @ fx) / gamma[:, None, None]


class DRAW(nn.Module):
    """DRAW (Gregor et al. 2015) for binary images: an LSTM encoder and decoder, a canvas built over ``steps``.

    ``read_n`` / ``write_n`` set the glimpse sizes; ``None`` reads the whole image and error image and
    writes a whole image through a linear layer (DRAW without attention). ``loss(x)`` is the negative
    ELBO, -log p(x | sigmoid(c_T)) + sum_t KL(q(z_t | h_enc_t) || N(0, I)), with ``recon`` and ``kl``.
    """

    def __init__(
        self,
        image_shape: tuple[int, int] = (28, 28),
        steps: int = 16,
        hidden: int = 256,
        latent_dim: int = 100,
        read_n: int | None = 2,
        write_n: int | None = 5,
    ) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"DRAW needs at least one step, got steps={steps}.")
        self.h, self.w = image_shape
        self.steps, self.hidden, self.latent_dim = steps, hidden, latent_dim
        self.read_n, self.write_n = read_n, write_n
        read_dim = 2 * (read_n**2 if read_n else self.h * self.w)
        self.encoder = nn.LSTMCell(read_dim + hidden, hidden)
        self.decoder = nn.LSTMCell(latent_dim, hidden)
        self.to_q = nn.Linear(hidden, 2 * latent_dim)  # mu, logvar of q(z_t | h_enc)
        self.read_attn = nn.Linear(hidden, 5) if read_n else None
        self.write_attn = nn.Linear(hidden, 5) if write_n else None
        self.to_write = nn.Linear(hidden, write_n**2 if write_n else self.h * self.w)

    def read(
        self, x: torch.Tensor, x_err: torch.Tensor, h_dec: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, H*W] twice -> the glimpse [B, read_dim] and the read window (centre x, y, stride) [B, 3]."""
        b = x.shape[0]
        if self.read_attn is None:
            return torch.cat([x, x_err], -1), x.new_zeros(b, 3)
        fy, fx, gamma, centre, delta = attention_params(self.read_attn(h_dec), self.h, self.w, self.read_n)
        both = torch.stack([x, x_err], 1).reshape(b * 2, self.h, self.w)
        glimpse = attention_read(
            both, fy.repeat_interleave(2, 0), fx.repeat_interleave(2, 0), gamma.repeat_interleave(2)
        )
        return glimpse.reshape(b, -1), torch.cat([centre, delta[:, None]], -1)

    def write(self, h_dec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h_dec [B, hidden] -> the canvas update [B, H*W] and the write window [B, 3]."""
        w = self.to_write(h_dec)
        if self.write_attn is None:
            return w, w.new_zeros(w.shape[0], 3)
        fy, fx, gamma, centre, delta = attention_params(self.write_attn(h_dec), self.h, self.w, self.write_n)
        patch = w.reshape(-1, self.write_n, self.write_n)
        return attention_write(patch, fy, fx, gamma).reshape(w.shape[0], -1), torch.cat(
            [centre, delta[:, None]], -1
        )

    def run(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Encode and decode x [B, H*W] (0/1): final canvas logits [B, H*W], KL per step [T, B], canvases
        [T, B, H*W] and read/write windows [T, B, 3]."""
        b = x.shape[0]
        zeros = x.new_zeros(b, self.hidden)
        h_enc, c_enc, h_dec, c_dec = zeros, zeros, zeros, zeros
        canvas = x.new_zeros(b, self.h * self.w)
        kls, canvases, reads, writes = [], [], [], []
        for _ in range(self.steps):
            x_err = x - torch.sigmoid(canvas)  # what the canvas still gets wrong
            r, read_window = self.read(x, x_err, h_dec)
            h_enc, c_enc = self.encoder(torch.cat([r, h_dec], -1), (h_enc, c_enc))
            mu, logvar = self.to_q(h_enc).chunk(2, -1)
            z = reparameterize(mu, logvar, generator)
            h_dec, c_dec = self.decoder(z, (h_dec, c_dec))
            update, write_window = self.write(h_dec)
            canvas = canvas + update
            kls.append(gaussian_kl(mu, logvar))
            canvases.append(canvas)
            reads.append(read_window)
            writes.append(write_window)
        return {"logits": canvas, "kl": torch.stack(kls), "canvases": torch.stack(canvases),
                "reads": torch.stack(reads), "writes": torch.stack(writes)}  # fmt: skip

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x if x.is_floating_point() else x.float()
        out = self.run(x)
        recon = -bernoulli_log_likelihood(out["logits"], x)  # [B]
        kl = out["kl"].sum(0)  # [B]: the KL of every step
        return {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean()}

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Run the decoder alone from z_t ~ N(0, I): canvases [T, n, H*W] (logits) and write windows [T, n, 3]."""
        device = self.to_q.weight.device
        h = torch.zeros(n, self.hidden, device=device)
        c, canvas = h, torch.zeros(n, self.h * self.w, device=device)
        canvases, writes = [], []
        for _ in range(self.steps):
            z = reparameterize(h.new_zeros(n, self.latent_dim), h.new_zeros(n, self.latent_dim), generator)
            h, c = self.decoder(z, (h, c))
            update, window = self.write(h)
            canvas = canvas + update
            canvases.append(canvas)
            writes.append(window)
        return {"canvases": torch.stack(canvases), "writes": torch.stack(writes)}

    def sample(self, n: int) -> torch.Tensor:
        """n images [n, H*W] of Bernoulli means at the final canvas."""
        return torch.sigmoid(self.generate(n)["canvases"][-1])


class M2(nn.Module):
    """The semi-supervised VAE M2 of Kingma et al. (2014) with y ~ Cat(1/K), z ~ N(0, I), x ~ p(x | y, z).

    ``labelled``: an optional ``(x_l [L, D], y_l [L])`` kept as buffers; each ``loss(x_u)`` uses all of it
    (100 labels fit in every batch). ``likelihood`` is ``"bernoulli"`` (x in [0, 1], dynamically
    binarized in ``loss`` when ``binarize``) or ``"gaussian"`` (a learned variance per dimension;
    for M1+M2, x are M1's codes). The loss per batch is
    mean(-U(x_u)) + mean(-L(x_l, y_l)) + alpha * mean(-log q(y_l | x_l)).
    ``sample_inputs`` (Gaussian likelihood only): each data row, labelled ones too, is the mean and
    log-variance of a Gaussian over the D inputs, ``[mean, logvar]`` of width 2 D (for M1+M2, M1's
    q(z1 | x)), and every step draws fresh inputs from it, as dynamic binarization does for pixels;
    ``classify`` and ``analogies`` then take D-wide inputs (the means).
    The paper's alpha = 0.1 N multiplies a sum over the data set: 0.1 N / N_l = 50 unlabelled bounds per
    labelled digit for N = 50,000, N_l = 100, the ratio the default puts inside each step. As every labelled
    digit enters every step, the labelled terms weigh N / batch_size (500) times more per epoch than in the paper.
    """

    def __init__(
        self,
        data_dim: int = 784,
        latent_dim: int = 50,
        hidden: tuple[int, ...] = (500,),
        classes: int = 10,
        alpha: float = 50.0,
        likelihood: str = "bernoulli",
        labelled: tuple[torch.Tensor, torch.Tensor] | None = None,
        binarize: bool = True,
        sample_inputs: bool = False,
    ) -> None:
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}.")
        if sample_inputs and likelihood != "gaussian":
            raise ValueError("sample_inputs draws Gaussian inputs; use it with likelihood='gaussian'.")
        self.classes, self.alpha, self.likelihood = classes, alpha, likelihood
        self.binarize = binarize and likelihood == "bernoulli"
        self.sample_inputs = sample_inputs
        act = nn.Softplus
        self.classifier = MLP([data_dim, *hidden, classes], activation=act)
        self.encoder = MLP([data_dim + classes, *hidden, 2 * latent_dim], activation=act)
        self.decoder = MLP([latent_dim + classes, *hidden[::-1], data_dim], activation=act)
        self.log_var = nn.Parameter(torch.zeros(data_dim)) if likelihood == "gaussian" else None
        self.latent_dim = latent_dim
        if labelled is not None:
            x_l, y_l = labelled
            if len(x_l) != len(y_l) or len(x_l) == 0:
                raise ValueError(
                    f"labelled needs as many labels as images (and some), got {len(x_l)} and {len(y_l)}."
                )
            self.register_buffer("x_l", x_l.float())
            self.register_buffer("y_l", y_l.long())
        else:
            self.x_l = self.y_l = None

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x, y): x [..., D], y one-hot [..., K] -> mu, logvar [..., latent]."""
        return self.encoder(torch.cat([x, y], -1)).chunk(2, -1)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """p(x | y, z): logits (Bernoulli) or means (Gaussian) [..., D]."""
        return self.decoder(torch.cat([z, y], -1))

    def log_likelihood(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.log_var is None:
            return bernoulli_log_likelihood(out, x)
        return log_normal(x, out, self.log_var)

    def labelled_bound(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L(x, y) = E_q(z|x,y)[log p(x | y, z)] + log p(y) - KL(q(z | x, y) || p(z)), one sample: [B]."""
        onehot = torch.eye(self.classes, device=x.device, dtype=x.dtype)[y]  # one-hot without a host sync
        mu, logvar = self.encode(x, onehot)
        z = reparameterize(mu, logvar)
        return (
            self.log_likelihood(self.decode(z, onehot), x) - math.log(self.classes) - gaussian_kl(mu, logvar)
        )

    def unlabelled_bound(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)), every class at once: [B], and the logits of q(y|x) [B, K]."""
        b, k = x.shape[0], self.classes
        logits = self.classifier(x)
        log_q = F.log_softmax(logits, -1)  # [B, K]
        ys = torch.arange(k, device=x.device).repeat(b)  # [B*K]: every example with every class
        bounds = self.labelled_bound(x.repeat_interleave(k, 0), ys).reshape(b, k)
        q = log_q.exp()
        return (q * (bounds - log_q)).sum(-1), logits

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable class under q(y | x): [B]."""
        return self.classifier(x).argmax(-1)

    def draw_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """This step's inputs from the stored rows: a Bernoulli draw of pixels (``binarize``), a Gaussian draw
        from ``[mean, logvar]`` rows [B, 2 D] -> [B, D] (``sample_inputs``), or the rows themselves."""
        x = x if x.is_floating_point() else x.float()
        if self.binarize:
            return dynamic_binarize(x)
        if self.sample_inputs:
            return reparameterize(*x.chunk(2, -1))
        return x

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.draw_inputs(x)
        u, _ = self.unlabelled_bound(x)
        out = {"unlabelled": -u.mean()}
        loss = -u.mean()
        if self.x_l is not None:
            x_l = self.draw_inputs(self.x_l)
            lab = -self.labelled_bound(x_l, self.y_l).mean()
            ce = F.cross_entropy(self.classifier(x_l), self.y_l)
            loss = loss + lab + self.alpha * ce
            out.update(labelled=lab, classifier=ce)
        out["loss"] = loss
        return out

    @torch.no_grad()
    def analogies(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Fix each example's style, the mean of q(z | x, y) (y: given, else q(y|x)'s choice), and decode it in
        every class: [B, K, D] (Bernoulli means, or Gaussian means)."""
        y = self.classify(x) if y is None else y
        mu, _ = self.encode(x, F.one_hot(y, self.classes).to(x.dtype))
        eye = torch.eye(self.classes, device=x.device, dtype=x.dtype)
        out = self.decode(mu[:, None].expand(-1, self.classes, -1), eye.expand(len(x), -1, -1))
        return torch.sigmoid(out) if self.log_var is None else out

    def sample(self, n: int) -> torch.Tensor:
        device = self.classifier[0].weight.device
        y = torch.arange(n, device=device) % self.classes
        z = torch.randn(n, self.latent_dim, device=device)
        out = self.decode(z, F.one_hot(y, self.classes).float())
        return torch.sigmoid(out) if self.log_var is None else out
