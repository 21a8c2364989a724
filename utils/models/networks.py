"""Encoder and decoder networks: an MLP with the Glorot start, Gaussian recognition networks (MLP and
convolutional) and Bernoulli generative networks (MLP and deconvolutional), all shape-agnostic in
their leading sample dimensions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


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
