"""What one ``fit`` logged, as lists a notebook can plot or save: :class:`History`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Keys of History.to_dict() that are not logged values; a model's loss() may not use them.
RESERVED_KEYS = ("step", "meta")


@dataclass
class History:
    """What one ``fit`` logged: per-log-point means of every ``loss()`` entry, and eval results.

    ``history["loss"]`` is the list of means (one per log point, at ``history.steps``);
    ``history["eval_loss"]`` the eval results (at ``history.eval_steps``); with an ``lr_schedule``,
    ``history["lr"]`` is the learning rate of the last update before each log point. ``speed`` is
    the mode that actually ran (after any fallback) and ``notes`` says why it differs from the one
    asked for.
    """

    steps: list[int] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    eval_steps: list[int] = field(default_factory=list)
    eval_values: dict[str, list[float]] = field(default_factory=dict)
    speed: str = ""
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False

    def keys(self) -> list[str]:
        return [*self.values, *self.eval_values]

    def __contains__(self, key: object) -> bool:
        return key in self.values or key in self.eval_values

    def __getitem__(self, key: str) -> list[float]:
        if key in self.values:
            return self.values[key]
        if key in self.eval_values:
            return self.eval_values[key]
        raise KeyError(f"No values were logged under {key!r}; logged keys: {self.keys()}.")

    def steps_of(self, key: str) -> list[int]:
        """The training steps at which ``key`` was logged (log points, or eval points for ``eval_*``)."""
        self[key]  # noqa: B018 - raises the KeyError that lists the logged keys
        return self.steps if key in self.values else self.eval_steps

    def last(self, key: str) -> float:
        """The most recent value logged under ``key``."""
        values = self[key]
        if not values:
            raise KeyError(f"{key!r} has not been logged yet.")
        return values[-1]

    def log(self, step: int, epoch: float, seconds: float, means: Mapping[str, float]) -> None:
        self.steps.append(step)
        self.epochs.append(epoch)
        self.seconds.append(seconds)
        for key, value in means.items():
            self.values.setdefault(key, []).append(value)

    def log_eval(self, step: int, results: Mapping[str, float]) -> None:
        self.eval_steps.append(step)
        for key, value in results.items():
            self.eval_values.setdefault(f"eval_{key}", []).append(value)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists: ``{"step": [...], "loss": [...], "eval_loss": [[step, value], ...], "meta": {...}}``.

        This is the layout ``utils.viz.plot_curves`` reads (eval entries as (step, value) pairs).
        """
        out: dict[str, Any] = {"step": list(self.steps)}
        out.update({k: list(v) for k, v in self.values.items()})
        for key, values in self.eval_values.items():
            out[key] = [[s, v] for s, v in zip(self.eval_steps, values)]
        out["meta"] = {
            "epoch": list(self.epochs),
            "seconds": list(self.seconds),
            "speed": self.speed,
            "notes": list(self.notes),
            "interrupted": self.interrupted,
        }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        meta = data.get("meta", {})
        history = cls(
            steps=[int(s) for s in data.get("step", [])],
            epochs=[float(e) for e in meta.get("epoch", [])],
            seconds=[float(s) for s in meta.get("seconds", [])],
            speed=str(meta.get("speed", "")),
            notes=list(meta.get("notes", [])),
            interrupted=bool(meta.get("interrupted", False)),
        )
        for key, values in data.items():
            if key in RESERVED_KEYS:
                continue
            if key.startswith("eval_"):
                history.eval_values[key] = [float(v) for _, v in values]
                if not history.eval_steps:
                    history.eval_steps = [int(s) for s, _ in values]
            else:
                history.values[key] = [float(v) for v in values]
        return history

    def plot(self, keys: list[str] | None = None, ax: Any = None) -> Any:
        """Training curves against the step (eval results as points); returns the matplotlib Axes.

        By default every logged key except ``"lr"``, whose scale has nothing in common with a loss's
        (draw it on its own with ``history.plot(["lr"])``).
        """
        from utils.viz import plot_curves  # here, so that training never needs matplotlib

        return plot_curves(
            self, keys=keys if keys is not None else [k for k in self.keys() if k != "lr"], ax=ax
        )
