"""Learning-rate schedules: stages ``[(until, lr), ...]`` or a function of the step, written into the
optimizer before each update, in a way that a captured CUDA graph also sees."""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

LrSchedule = Sequence[tuple[float, float]] | Callable[[int], float]


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Schedule:
    """The learning rate as a function of the step: ``lr_at(step)`` for the update with 0-based index
    ``step`` (the number of updates already taken).

    Stages ``[(until_1, lr_1), (until_2, lr_2), ...]``: ``lr_1`` for the updates before ``until_1``,
    ``lr_2`` for those before ``until_2``, ..., and the last rate after the last boundary. Boundaries
    count epochs (``per_epoch`` updates each) or updates (``per_epoch=None``).
    """

    def __init__(self, schedule: LrSchedule, per_epoch: int | None):
        self.fn: Callable[[int], float] | None = None
        if callable(schedule):
            self.fn = schedule
            return
        self.bounds, self.rates = self._check_stages(schedule, "epoch" if per_epoch else "step")
        if per_epoch:
            self.bounds = [until * per_epoch for until in self.bounds]

    @staticmethod
    def _check_stages(schedule: Any, unit: str) -> tuple[list[float], list[float]]:
        example = f"e.g. lr_schedule=[(10, 1e-3), (15, 3e-4)] for 1e-3 until {unit} 10, then 3e-4"
        if isinstance(schedule, str | bytes) or not isinstance(schedule, Sequence) or not schedule:
            raise ValueError(
                f"lr_schedule must be a non-empty list of (until_{unit}, lr) pairs or a function step -> lr, "
                f"got {schedule!r}; {example}."
            )
        pairs = [tuple(s) if isinstance(s, Sequence) and not isinstance(s, str) else (s,) for s in schedule]
        bad = next((p for p in pairs if len(p) != 2 or not all(is_number(v) for v in p)), None)
        if bad is not None:
            raise ValueError(
                f"lr_schedule entry {bad!r} is not an (until_{unit}, lr) pair of numbers; {example}."
            )
        bounds, rates = [float(u) for u, _ in pairs], [float(r) for _, r in pairs]
        if bounds[0] <= 0 or any(b <= a for a, b in zip(bounds, bounds[1:])):
            raise ValueError(
                f"lr_schedule boundaries must be positive and strictly increasing {unit} counts (each stage "
                f"lasts until its boundary), got {[u for u, _ in pairs]}; {example}."
            )
        wrong = next((r for r in rates if not (math.isfinite(r) and r >= 0)), None)
        if wrong is not None:
            raise ValueError(
                f"lr_schedule holds the learning rate {wrong}; learning rates must be finite and non-negative."
            )
        return bounds, rates

    def lr_at(self, step: int) -> float:
        if self.fn is None:
            stage = bisect.bisect_right(self.bounds, step)
            return self.rates[min(stage, len(self.rates) - 1)]
        value = self.fn(step)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if not is_number(value) or not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"lr_schedule({step}) returned {value!r}; the function must return a finite, "
                "non-negative learning rate (a float) for every step."
            )
        return float(value)


class ScheduledLr:
    """Writes the scheduled learning rate into every param group of the optimizer before each step.

    Under CUDA-graph replay the rate must live in device memory that the captured fused Adam kernel
    reads: a float would be baked into the graph at capture. So with ``in_place`` each group's rate
    becomes a one-element float32 tensor on the device (PyTorch's Adam accepts a tensor lr when it is
    fused or capturable; see the ``lr`` argument in ``torch/optim/adam.py``), updated with ``fill_``
    between replays, on the same stream, outside the graph. Otherwise the rate is a plain float
    (a tensor rate the user put there is filled in place too). Writes happen only when the value
    changes, so a stage costs one tiny kernel, not one per step.
    """

    def __init__(
        self,
        schedule: Schedule,
        optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
        in_place: bool,
        device,
    ):
        self.schedule = schedule
        optimizers = optimizer.values() if isinstance(optimizer, Mapping) else [optimizer]
        self.groups = [
            group for opt in optimizers for group in opt.param_groups
        ]  # every player's, for a dict
        self.converted = False
        if in_place:
            for group in self.groups:
                if not (isinstance(group["lr"], torch.Tensor) and group["lr"].device == device):
                    group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
                    self.converted = True
        self.current: float | None = None

    def apply(self, step: int) -> None:
        value = self.schedule.lr_at(step)
        if value == self.current:
            return
        for group in self.groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(value)
            else:
                group["lr"] = value
        self.current = value

    def release(self) -> None:
        """Give back plain float rates where this object made tensors (the last value stays)."""
        if self.converted and self.current is not None:
            for group in self.groups:
                group["lr"] = self.current
