"""The model contract of ``fit`` and what it accepts as data, checked with one-sentence errors.

A model is an ``nn.Module`` whose ``loss(batch)`` returns ``{"loss": scalar tensor to minimise, ...
other scalars to log}``; several players (a GAN) define ``training_step(batch, optimizers)`` instead.
Data is a tensor ``[N, ...]`` or a tuple of tensors sharing their first dimension, already on the
model's device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from utils.train.history import RESERVED_KEYS


class ModelContractError(TypeError):
    """The model does not follow the contract ``loss(batch) -> {"loss": scalar tensor, ...}``."""


def check_output(model: nn.Module, out: Any, where: str, needs_grad: bool) -> None:
    """Raise ModelContractError unless ``out`` is ``{"loss": scalar tensor, ...scalars}``."""
    name = type(model).__name__
    if not isinstance(out, Mapping):
        raise ModelContractError(
            f"{name}.{where} returned a {type(out).__name__}; return a dict such as "
            "{'loss': loss, 'kl': kl.mean()} whose 'loss' entry is the scalar to minimise."
        )
    if "loss" not in out:
        raise ModelContractError(
            f"{name}.{where} returned a dict with keys {sorted(out)} but no 'loss' entry; "
            "add 'loss': the scalar tensor to minimise (e.g. -elbo.mean())."
        )
    for key, value in out.items():
        if key in RESERVED_KEYS:
            raise ModelContractError(
                f"{name}.{where} logs an entry named {key!r}, a reserved name; rename it."
            )
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise ModelContractError(
                f"Entry {key!r} of {name}.{where} has shape {list(value.shape)}; return scalars, "
                "e.g. average over the batch with .mean()."
            )
        if not isinstance(value, torch.Tensor | int | float):
            raise ModelContractError(
                f"Entry {key!r} of {name}.{where} is a {type(value).__name__}; return scalar tensors or numbers."
            )
    loss = out["loss"]
    if needs_grad and not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        raise ModelContractError(
            f"{name}.{where}['loss'] carries no gradient; do not call .item() or .detach() on it, "
            "and check that the parameters it uses have requires_grad=True."
        )


def as_tensors(data: Any, what: str) -> tuple[tuple[torch.Tensor, ...], bool]:
    """``(tensors, single)``: the data as a tuple of aligned tensors, and whether it was one tensor."""
    if isinstance(data, torch.Tensor):
        tensors, single = (data,), True
    elif isinstance(data, tuple | list) and data and all(isinstance(t, torch.Tensor) for t in data):
        tensors, single = tuple(data), False
    else:
        raise TypeError(
            f"{what} must be a tensor or a tuple of tensors already on the device (got "
            f"{type(data).__name__}); load the whole set as tensors, e.g. x, y = utils.data.mnist_vectors(device=device)."
        )
    n = tensors[0].shape[0] if tensors[0].ndim else 0
    if n == 0:
        raise ValueError(f"{what} is empty; pass at least one example.")
    if any(t.ndim == 0 or t.shape[0] != n for t in tensors):
        raise ValueError(
            f"The tensors of {what} must share their first (example) dimension; got {[tuple(t.shape) for t in tensors]}."
        )
    if any(t.device != tensors[0].device for t in tensors):
        raise ValueError(
            f"The tensors of {what} sit on different devices; move them all to one with .to(device)."
        )
    return tensors, single


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (None for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return None
