"""Minibatches sliced from tensors that already sit on the compute device.

A per-item ``DataLoader`` spends most of a small model's step in Python; slicing one permuted
index tensor keeps the whole epoch on the device (see ../README, "Speed").
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches ``batches`` yields for ``n`` rows."""
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield tuples of aligned slices of ``tensors`` (all with the same first dimension) for one epoch.

    The permutation is drawn on the tensors' device, so no index crosses from the CPU per batch;
    ``generator`` must live on that device too when given.
    """
    if not tensors:
        raise ValueError("batches() needs at least one tensor.")
    n = tensors[0].shape[0]
    for t in tensors[1:]:
        if t.shape[0] != n:
            raise ValueError(f"All tensors must have the same first dimension; got {n} and {t.shape[0]}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    device = tensors[0].device
    order = torch.randperm(n, device=device, generator=generator) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield tuple(t[start : start + batch_size] for t in tensors)
        else:
            idx = order[start : start + batch_size]
            yield tuple(t[idx] for t in tensors)
