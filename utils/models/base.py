"""The model contract that ``utils.train.fit``, the metrics and the widgets rely on."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class GenerativeModel(Protocol):
    """What ``utils.train.fit`` and the lectures expect of a generative model (an ``nn.Module``).

    ``loss(batch)`` takes a tensor (or a tuple of tensors whose first element is the data) and
    returns a dict with a scalar ``"loss"`` to minimise plus any other scalars worth logging.
    ``sample(n)`` returns ``n`` samples as a tensor whose first dimension is ``n``.
    """

    def loss(self, batch: torch.Tensor | tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]: ...

    def sample(self, n: int) -> torch.Tensor: ...
