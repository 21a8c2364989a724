"""Checkpoints: a model's (and optimizer's) ``state_dict`` written atomically, read back with clear errors.

Only tensors, numbers, strings, lists and dicts are stored, so a file loads with
``torch.load(path, weights_only=True)``; a crash while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.files import atomic_file, probe_writable

CHECKPOINT_FORMAT = 1


def _optimizer_state(optimizer: Any) -> Any:
    if optimizer is None:
        return None
    if isinstance(optimizer, Mapping):
        return {name: _optimizer_state(opt) for name, opt in optimizer.items()}
    state = optimizer.state_dict()
    for group in state["param_groups"]:  # copies: the optimizer's own groups are not touched
        if isinstance(group.get("lr"), torch.Tensor):
            # A device tensor rate (lr_schedule under CUDA graphs) is stored as the number it holds,
            # so the checkpoint loads anywhere and a float-rate optimizer takes it unchanged.
            group["lr"] = group["lr"].item()
    return state


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | None = None,
    step: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the model's (and optimizer's) ``state_dict`` to ``path`` atomically; return the path.

    The file is written to a temporary file in the same folder and then renamed over ``path``
    (``os.replace`` is atomic on one file system), so a crash while saving leaves the previous
    checkpoint intact. Only tensors, numbers, strings, lists and dicts are stored: the file loads
    with ``torch.load(path, weights_only=True)``.
    """
    path = Path(path)
    checkpoint_folder(path)
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": _optimizer_state(optimizer),
        "step": int(step),
        "extra": dict(extra or {}),
    }
    with atomic_file(path) as f:
        torch.save(state, f)
    return path


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | None = None,
) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``) in place from ``path``; return ``{"step", "extra"}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at {str(path)!r}; train with fit(..., checkpoint=path) first."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{str(path)!r} is not a readable course checkpoint ({type(err).__name__}: {err}); "
            "delete it or pass another path."
        ) from err
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{str(path)!r} is not a checkpoint written by save_checkpoint; pass another path.")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[0]
        raise ValueError(
            f"The checkpoint {str(path)!r} was saved from a different model ({first_line}); "
            "build the same architecture, or delete the file / use resume=False to start afresh."
        ) from err
    saved_opt = state.get("optimizer")
    if optimizer is not None and saved_opt is not None:
        _load_optimizer_state(path, optimizer, saved_opt)
    return {"step": int(state.get("step", 0)), "extra": state.get("extra", {})}


def _load_optimizer_state(path: Path, optimizer: Any, saved: Any) -> None:
    named = isinstance(saved, Mapping) and "param_groups" not in saved
    if named != isinstance(optimizer, Mapping):
        raise ValueError(
            f"The checkpoint {str(path)!r} holds {'several named' if named else 'one'} optimizer state(s) but "
            f"{'several' if isinstance(optimizer, Mapping) else 'one'} optimizer was given; pass the same kind, "
            "or delete the file / use resume=False to start afresh."
        )
    pairs = [(optimizer[k], saved.get(k)) for k in optimizer] if named else [(optimizer, saved)]
    for opt, state in pairs:
        if state is None:
            continue
        try:
            opt.load_state_dict(state)
        except (ValueError, KeyError) as err:
            raise ValueError(
                f"The optimizer state in {str(path)!r} does not fit this optimizer ({err}); "
                "build the same optimizer, or delete the file / use resume=False to start afresh."
            ) from err


def checkpoint_folder(path: Path) -> Path:
    """The folder that will hold the checkpoint ``path``, created and proven writable (else a clear error)."""
    if path.is_dir():
        raise IsADirectoryError(
            f"checkpoint={str(path)!r} is a folder; give a file name inside it, e.g. {str(path / 'model.pt')!r}."
        )
    folder = path.parent if str(path.parent) else Path(".")
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise PermissionError(
            f"Cannot write a checkpoint in {str(folder)!r}: {str(blocker)!r} is a file, not a folder; "
            "pass checkpoint= a path in a folder you can write to, e.g. 'checkpoints/model.pt'."
        )
    try:
        return probe_writable(folder)
    except OSError as err:
        raise PermissionError(
            f"Cannot write a checkpoint in {str(folder)!r} ({type(err).__name__}: {err.strerror or err}); "
            "pass checkpoint= a path in a folder you can write to, e.g. 'checkpoints/model.pt'."
        ) from err


def rng_state() -> dict[str, Any]:
    """The random state of torch on the CPU and every initialised GPU, to store in a checkpoint."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``rng_state`` saved (a GPU state only on a machine with as many GPUs)."""
    if "cpu" in state:
        torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
