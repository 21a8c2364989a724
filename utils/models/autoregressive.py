"""Autoregressive models: p(x) = prod_d p(x_d | x_<d), each factor a network output (lecture 05).

* ``made_degrees`` / ``made_masks``: MADE's connectivity (Germain et al. 2015). Inputs get their
  position in an ordering (1..D), hidden units a degree in [min of the layer below, D - 1]; a hidden
  unit sees a unit below when its degree is ``>=`` that unit's, an output sees a unit below only when
  its degree is strictly ``>``. So output d depends only on inputs earlier in the ordering.
* ``MaskedLinear``: ``nn.Linear`` whose weight is multiplied by a 0/1 mask.
* ``MADE``: a masked MLP over D binary variables (Bernoulli logits), with ``num_masks`` orderings /
  connectivities drawn once (order-agnostic training picks one per step; ``log_prob`` averages the
  probabilities of all of them, a mixture that is itself a normalised density).
* ``MaskedConv2d`` (type ``"A"``: a pixel cannot see itself; ``"B"``: it can see its own features)
  and ``PixelCNN`` (van den Oord et al. 2016), a raster-order model of binary images.
* ``CharRNN``: a character-level LSTM, p(c_t | c_<t) by softmax, with temperature sampling.
* ``ancestral_sample``: fill positions one at a time in a given order, each from its conditional.

Shapes: ``B`` examples, ``D`` binary variables (784 pixels), ``V`` characters, ``T`` time steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from utils import runtime
from utils.models.densities import bernoulli_log_likelihood

CONNECTIVITIES = ("random", "even")


def _check_binary(x: torch.Tensor, what: str) -> None:
    runtime.require(
        (x == 0) | (x == 1),
        f"{what} models binary data, and x has values other than 0 and 1; binarize it first "
        "(utils.data.load_binarized_mnist, or utils.data.dynamic_binarize for grey levels).",
    )


# ---------------------------------------------------------------------------------------------- MADE
def made_degrees(
    dim: int,
    hidden: Sequence[int],
    order: Sequence[int] | torch.Tensor | None = None,
    connectivity: str = "random",
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Degrees of MADE's units: ``[inputs [D], hidden layer 1 [H1], ...]`` as int64 tensors.

    ``order``: a permutation of 0..D-1, the variables in the order they are generated (default
    0, 1, ..., D-1); input ``order[i]`` gets degree i + 1. A hidden unit's degree lies in
    [smallest degree of the layer below, D - 1]: drawn uniformly (``"random"``, Germain et al.) or
    cycled through that range (``"even"``, every degree as often as the others).
    """
    if dim < 2:
        raise ValueError(f"dim={dim}: an autoregressive model needs at least 2 variables.")
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity={connectivity!r} is not one of {CONNECTIVITIES}.")
    if any(int(h) < 1 for h in hidden):
        raise ValueError(f"hidden={tuple(hidden)}: every hidden layer needs at least one unit.")
    order_t = torch.arange(dim) if order is None else torch.as_tensor(order, dtype=torch.int64).cpu()
    if order_t.shape != (dim,) or not torch.equal(order_t.sort().values, torch.arange(dim)):
        raise ValueError(f"order must be a permutation of 0..{dim - 1}; got {order_t.tolist()[:10]}...")
    degrees = [torch.empty(dim, dtype=torch.int64)]
    degrees[0][order_t] = torch.arange(1, dim + 1)
    for size in hidden:
        low = min(int(degrees[-1].min()), dim - 1)
        if connectivity == "random":
            d = torch.randint(low, dim, (int(size),), generator=generator)
        else:
            d = low + torch.arange(int(size)) % (dim - low)
        degrees.append(d)
    return degrees


def made_masks(degrees: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """0/1 float masks shaped like ``nn.Linear`` weights ``[out, in]``, one per layer, last = output.

    Hidden layer: M[k, j] = 1 iff degree_k >= degree_j (below). Output layer (D units whose degrees
    are the inputs'): M[d, j] = 1 iff degree_d > degree_j, strictly, so output d never sees x_d.
    """
    masks = [(out[:, None] >= below[None, :]).float() for below, out in zip(degrees[:-1], degrees[1:])]
    masks.append((degrees[0][:, None] > degrees[-1][None, :]).float())
    return masks


class MaskedLinear(nn.Linear):
    """``nn.Linear`` with its weight multiplied by a fixed 0/1 ``mask`` [out, in] (a buffer).

    ``forward(x, mask=None)`` uses the stored mask, or the one given (MADE keeps one per ordering).
    """

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor | None = None) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", torch.ones(out_features, in_features))
        if mask is not None:
            self.set_mask(mask)

    def set_mask(self, mask: torch.Tensor) -> None:
        if tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(
                f"mask shape {tuple(mask.shape)} must match the weight's {tuple(self.weight.shape)}."
            )
        self.mask.copy_(mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(x, self.weight * (self.mask if mask is None else mask), self.bias)


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation over D binary variables (Germain et al. 2015).

    ``hidden``: sizes of the ReLU layers. ``num_masks`` masks are drawn once from ``seed``, each with
    fresh hidden degrees, and with a random ordering when ``order_agnostic`` (else all use the natural
    order 0..D-1). Training (``loss``) uses one mask per batch, drawn on the device; ``log_prob(x)``
    averages the probabilities of all masks (the ensemble, itself a normalised mixture). ``direct``
    adds a masked linear map from the inputs to the logits (strictly earlier inputs only, started at 0).
    """

    def __init__(
        self,
        dim: int = 784,
        hidden: Sequence[int] = (500,),
        num_masks: int = 1,
        order_agnostic: bool = False,
        connectivity: str = "random",
        seed: int = 0,
        direct: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(num_masks, bool) or int(num_masks) != num_masks or num_masks < 1:
            raise ValueError(f"num_masks={num_masks!r} must be a positive integer.")
        self.dim, self.num_masks = dim, int(num_masks)
        gen = torch.Generator().manual_seed(seed)
        sizes = [dim, *[int(h) for h in hidden], dim]
        self.layers = nn.ModuleList(MaskedLinear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        orders, banks, direct_masks = [], [[] for _ in self.layers], []
        for _ in range(self.num_masks):
            order = torch.randperm(dim, generator=gen) if order_agnostic else torch.arange(dim)
            degrees = made_degrees(dim, hidden, order, connectivity, gen)
            for bank, mask in zip(banks, made_masks(degrees)):
                bank.append(mask)
            orders.append(order)
            direct_masks.append(
                (degrees[0][:, None] > degrees[0][None, :]).float()
            )  # the strict rule, x to logits
        self.register_buffer("orders", torch.stack(orders))  # [K, D]: generation order of each mask
        for i, bank in enumerate(banks):
            self.register_buffer(f"masks_{i}", torch.stack(bank))  # [K, out, in]
        for layer, bank in zip(self.layers, banks):
            layer.set_mask(bank[0])
        self.direct = None
        if direct:  # a logistic regression on the earlier inputs added to the logits (Germain et al.'s code offers it)
            self.direct = MaskedLinear(dim, dim, direct_masks[0])
            nn.init.zeros_(self.direct.weight)
            nn.init.zeros_(self.direct.bias)
            self.register_buffer("masks_direct", torch.stack(direct_masks))  # [K, D, D]

    @staticmethod
    def _pick(bank: torch.Tensor, index: torch.Tensor | int) -> torch.Tensor:
        """bank[index] for an int, or for a device tensor without reading it back (no host sync, so a
        training step that draws the mask on the GPU can still be recorded as a CUDA graph)."""
        return bank[index] if isinstance(index, int) else bank.index_select(0, index.reshape(1))[0]

    def _masks(self, index: torch.Tensor | int) -> list[torch.Tensor]:
        return [self._pick(getattr(self, f"masks_{i}"), index) for i in range(len(self.layers))]

    def forward(self, x: torch.Tensor, mask_index: torch.Tensor | int = 0) -> torch.Tensor:
        """Bernoulli logits of p(x_d | x_<d) for every d at once: x [B, D] -> [B, D]."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"MADE over {self.dim} variables got x with last dimension {x.shape[-1]}.")
        h = x.to(self.layers[0].weight.dtype)
        masks = self._masks(mask_index)
        for i, (layer, mask) in enumerate(zip(self.layers, masks)):
            h = layer(h, mask)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        if self.direct is not None:
            h = h + self.direct(x.to(h.dtype), self._pick(self.masks_direct, mask_index))
        return h

    def log_prob(self, x: torch.Tensor, mask_index: int | None = None) -> torch.Tensor:
        """Exact log p(x) in nats: x [B, D] of 0/1 -> [B]. ``None``: the average over all masks."""
        _check_binary(x, "MADE")
        x = x.to(self.layers[0].weight.dtype)
        indices = range(self.num_masks) if mask_index is None else [mask_index]
        per_mask = torch.stack([bernoulli_log_prob(self(x, k), x) for k in indices])  # [K, B]
        return torch.logsumexp(per_mask, 0) - math.log(len(indices))

    def loss(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mean -log p(x) over the batch with one mask (drawn on the device) when training; in eval
        mode the ensemble of all masks."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not self.training:
            return {"loss": -self.log_prob(x).mean()}
        _check_binary(x, "MADE")
        x = x.to(self.layers[0].weight.dtype)
        k = torch.randint(self.num_masks, (), device=x.device) if self.num_masks > 1 else 0
        return {"loss": -bernoulli_log_prob(self(x, k), x).mean()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mask_index: int = 0) -> torch.Tensor:
        """n binary vectors [n, D] by ancestral sampling in the order of mask ``mask_index`` (D passes)."""
        x = torch.zeros(n, self.dim, device=self.orders.device)
        return ancestral_sample(lambda v: self(v, mask_index), x, self.orders[mask_index].tolist(), generator)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_d log Bernoulli(x_d; sigmoid(logits_d)) over every dim but the first: [B, ...] -> [B].

    ``densities.bernoulli_log_likelihood`` (last dim only) on flattened inputs, so images [B, C, H, W] work too."""
    return bernoulli_log_likelihood(logits.flatten(1), x.flatten(1))


@torch.no_grad()
def ancestral_sample(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    positions: Sequence[int],
    generator: torch.Generator | None = None,
    return_probs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fill ``positions`` of the binary x [n, D] one at a time, in that order, each x_d ~ p(x_d | x_<d).

    ``logits_fn(x) -> [n, D]`` Bernoulli logits whose entry d may depend only on entries generated
    before d (MADE, PixelCNN on flattened images). Entries of x not in ``positions`` are kept (a
    given top half, say). One network pass per position: D passes for a whole sample. Returns the
    filled copy, and with ``return_probs`` also the probabilities p(x_d = 1 | ...) used, [n, len(positions)].
    """
    x = x.clone()
    positions = [int(p) for p in positions]
    if any(not 0 <= p < x.shape[1] for p in positions) or len(set(positions)) != len(positions):
        raise ValueError(f"positions must be distinct indices in 0..{x.shape[1] - 1}.")
    probs = torch.empty(x.shape[0], len(positions), device=x.device)
    for i, d in enumerate(positions):
        p = torch.sigmoid(logits_fn(x)[:, d])  # [n]
        probs[:, i] = p
        x[:, d] = torch.bernoulli(p, generator=generator).to(x.dtype)
    return (x, probs) if return_probs else x


# ------------------------------------------------------------------------------------------ PixelCNN
class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded convolution that sees only pixels before the centre in raster order.

    Type ``"A"`` (first layer) also hides the centre, so output (i, j) never sees input (i, j);
    type ``"B"`` (later layers) keeps the centre, where the features already summarise x_<(i,j).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type={mask_type!r}: use 'A' (first layer) or 'B' (later layers).")
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f"kernel_size={kernel_size} must be odd, so the kernel has a centre.")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", raster_mask(kernel_size, mask_type).expand_as(self.weight).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def raster_mask(kernel_size: int, mask_type: str) -> torch.Tensor:
    """The k x k 0/1 kernel mask: rows above the centre, and the centre row left of (type A) or up to
    and including (type B) the centre."""
    c = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size)
    mask[:c] = 1
    mask[c, : c + (mask_type == "B")] = 1
    return mask


class PixelCNN(nn.Module):
    """PixelCNN for binary images (van den Oord et al. 2016): a 7x7 type-A layer, residual blocks of
    type-B convolutions, two 1x1 layers, one Bernoulli logit per pixel.

    Input x [B, H*W] or [B, 1, H, W] of 0/1 (default 28 x 28); ``forward`` returns logits of the
    same layout as [B, 1, H, W]. The plain masked stack has a *blind spot*: pixels to the upper right
    are never seen, however deep (gated PixelCNN's vertical/horizontal stacks remove it).
    """

    def __init__(self, channels: int = 64, blocks: int = 8, kernel: int = 5, side: int = 28) -> None:
        super().__init__()
        if channels < 2 or blocks < 0:
            raise ValueError(f"channels={channels} (>= 2) and blocks={blocks} (>= 0) are out of range.")
        self.side = side
        self.first = MaskedConv2d(1, channels, 7, "A")
        self.blocks = nn.ModuleList(MaskedConv2d(channels, channels, kernel, "B") for _ in range(blocks))
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1)
        )

    def _as_images(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.shape[1] == self.side**2:
            return x.view(-1, 1, self.side, self.side)
        if x.dim() == 4 and x.shape[1:] == (1, self.side, self.side):
            return x
        raise ValueError(f"PixelCNN needs x as [B, {self.side ** 2}] or [B, 1, {self.side}, {self.side}], "
                         f"got {tuple(x.shape)}.")  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of p(x_ij = 1 | pixels before (i, j)): [B, 1, H, W]."""
        h = self.first(self._as_images(x).to(self.first.weight.dtype))
        for block in self.blocks:
            h = h + block(torch.relu(h))  # residual: the input's own features pass straight through
        return self.head(h)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats: [B] (one network pass for all pixels)."""
        _check_binary(x, "PixelCNN")
        return bernoulli_log_prob(self(x), self._as_images(x))

    def loss(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return {"loss": -self.log_prob(x).mean()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n binary images [n, H*W] in raster order (H*W network passes)."""
        x = torch.zeros(n, self.side**2, device=self.first.weight.device)
        return ancestral_sample(lambda v: self(v).flatten(1), x, range(self.side**2), generator)


# --------------------------------------------------------------------------------- characters
class CharRNN(nn.Module):
    """p(c_t | c_<t) for characters: embedding -> LSTM -> linear (logits over V characters).

    ``dropout`` acts between LSTM layers while training (none in eval mode, where ``nll`` is used).

    ``loss(batch)``: batch [B, T+1] of ids; predicts ids 1..T from 0..T-1 (teacher forcing), mean
    nats per character. ``nll(ids)``: the exact -log p of a long text given its first character,
    carrying the LSTM state across chunks.
    """

    def __init__(
        self, vocab_size: int, embed: int = 64, hidden: int = 512, layers: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size={vocab_size}: a text model needs at least 2 characters.")
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = nn.LSTM(embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """ids [B, T] -> (logits [B, T, V] of the *next* character at every step, new state)."""
        h, state = self.rnn(self.embed(ids), state)
        return self.out(h), state

    def loss(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = batch[0] if isinstance(batch, (tuple, list)) else batch
        logits, _ = self(ids[:, :-1])
        nats = F.cross_entropy(logits.reshape(-1, self.vocab_size), ids[:, 1:].reshape(-1))
        return {"loss": nats, "bits_per_char": nats.detach() / math.log(2)}

    @torch.no_grad()
    def nll(self, ids: torch.Tensor, chunk: int = 2000) -> tuple[float, int]:
        """(total -log p(ids[1:] | ids[0]) in nats, number of characters scored) for a 1-D id tensor."""
        if ids.dim() != 1 or ids.numel() < 2:
            raise ValueError("nll needs a 1-D tensor of at least 2 character ids.")
        total, state = torch.zeros((), dtype=torch.float64, device=ids.device), None
        for start in range(0, ids.numel() - 1, chunk):
            inputs, targets = ids[start : start + chunk], ids[start + 1 : start + chunk + 1]
            logits, state = self(inputs[None, : targets.numel()], state)
            total += F.cross_entropy(logits[0], targets, reduction="sum").double()
        return float(total), ids.numel() - 1

    @torch.no_grad()
    def sample(
        self,
        prompt: torch.Tensor,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n new ids [n] continuing ``prompt`` [P >= 1], from softmax(logits / temperature)."""
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be positive (near 0: greedy).")
        if prompt.dim() != 1 or prompt.numel() == 0:
            raise ValueError("prompt must be a non-empty 1-D tensor of ids (encode at least one character).")
        logits, state = self(prompt[None])
        out = []
        for _ in range(n):
            probs = torch.softmax(logits[0, -1].double() / temperature, -1)
            nxt = torch.multinomial(probs, 1, generator=generator)  # [1]
            out.append(nxt)
            logits, state = self(nxt[None], state)
        return torch.cat(out) if out else prompt.new_empty(0)
