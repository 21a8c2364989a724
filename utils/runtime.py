"""Where and how fast the course runs: the FAST switch, device choice, seeding, a timer, and input
checks that cost no host synchronisation inside a training step (``require``).

Every notebook starts with::

    from utils import runtime
    FAST = runtime.is_fast()           # DIGM_FAST=1: tiny data and few steps (CI, laptops)
    device = runtime.get_device()      # CUDA, else MPS, else CPU; DIGM_DEVICE overrides
    runtime.seed_everything(0)

Nothing here keeps state between calls: each function reads the environment when it is called,
so a test (or a student) can change ``DIGM_FAST`` / ``DIGM_DEVICE`` and call again. The one piece
of context is the check recorder that ``utils.train`` installs for the duration of a training step
(a ``ContextVar``, set and reset around the step).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import torch

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_KNOWN_DEVICES = ("cpu", "cuda", "mps")


def env_flag(name: str) -> bool:
    """Read a yes/no environment variable; anything but 1/0/true/false/yes/no/on/off is an error."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a yes/no value; set it to 1 or 0.")


def is_fast() -> bool:
    """True when ``DIGM_FAST`` is set to 1: notebooks shrink data and steps to run in about a minute."""
    return env_flag("DIGM_FAST")


def fast_or(full: T, fast: T) -> T:
    """Pick the full-mode value, or the FAST-mode one when ``DIGM_FAST=1``.

    >>> epochs = fast_or(full=50, fast=1)
    """
    return fast if is_fast() else full


def get_device(name: str | None = None) -> torch.device:
    """The device to compute on: ``name``, else ``DIGM_DEVICE``, else CUDA, else MPS, else CPU.

    An explicit choice that this machine cannot honour is an error rather than a silent fallback,
    so a student never trains on the CPU believing it is the GPU.
    """
    requested = name if name is not None else os.environ.get("DIGM_DEVICE", "").strip()
    if not requested:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = requested.split(":")[0].lower()
    if kind not in _KNOWN_DEVICES:
        raise ValueError(
            f"Unknown device {requested!r} (from DIGM_DEVICE or the argument); use one of "
            f"{', '.join(_KNOWN_DEVICES)}, e.g. DIGM_DEVICE=cpu, or unset it to choose automatically."
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"Device {requested!r} was asked for but {_why_no_cuda()}")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError(
            f"Device {requested!r} was asked for but MPS is not available here; unset DIGM_DEVICE to use the CPU."
        )
    return torch.device(requested.lower())


def _why_no_cuda() -> str:
    """What is missing for CUDA, as the end of a sentence that says how to go on."""
    if torch.version.cuda is None:
        return (
            f"this PyTorch ({torch.__version__}) is a CPU-only build; install a CUDA build of torch on a "
            "machine with an NVIDIA GPU, or unset DIGM_DEVICE to use the CPU."
        )
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return (
            f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU from this CUDA {torch.version.cuda} build of torch; "
            "unset it (or list a GPU), or unset DIGM_DEVICE to use the CPU."
        )
    return (
        f"this CUDA {torch.version.cuda} build of torch finds no usable GPU (no NVIDIA GPU, or its driver is "
        "missing or older than the build needs; `nvidia-smi` tells which); unset DIGM_DEVICE to use the CPU."
    )


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work, so that a timer measures the computation and not just its launch."""
    dev = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (dev is None or dev.type == "cuda"):
        torch.cuda.synchronize(dev)
    elif dev is not None and dev.type == "mps":
        torch.mps.synchronize()


@dataclass
class Timer:
    """Wall-clock timer that synchronises the device at both ends.

    >>> with Timer("epoch") as t:
    ...     pass
    >>> t.seconds >= 0
    True
    """

    label: str = ""
    device: torch.device | str | None = None
    verbose: bool = False
    seconds: float = field(default=0.0, init=False)
    _start: float = field(default=0.0, init=False, repr=False)

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
        if self.verbose:
            print(f"{self.label or 'elapsed'}: {self.seconds:.3f} s")


def describe(device: torch.device | None = None) -> str:
    """One line for the top of a notebook: mode, device (with GPU name) and torch version."""
    device = device if device is not None else get_device()
    where = str(device)
    if device.type == "cuda":
        where += f" ({torch.cuda.get_device_name(device)})"
    mode = "FAST (DIGM_FAST=1)" if is_fast() else "full"
    return f"mode: {mode} | device: {where} | torch {torch.__version__}"


RESULT_PREFIX = "[result]"


def format_result(name: str, value: float, unit: str = "") -> str:
    """The line ``report_result`` prints, e.g. ``[result] test_nll = 88.9123 nats``."""
    return f"{RESULT_PREFIX} {name} = {float(value):.6g}{(' ' + unit) if unit else ''}"


def report_result(name: str, value: float, unit: str = "") -> None:
    """Print a lecture's key number as one parseable line, e.g. ``[result] test_nll = 88.91 nats``.

    ``make course`` (tools.course) collects these lines from the executed notebooks into its table.
    Returns None, so a call as a cell's last expression does not echo the line a second time.
    """
    print(format_result(name, value, unit))


# --------------------------------------------------------------------------------------------------
# Input checks that a training step can defer
# --------------------------------------------------------------------------------------------------


class CheckRecorder(Protocol):
    """Where ``require`` sends a check while a training step runs (``utils.train`` provides one)."""

    def record(self, ok: torch.Tensor, message: str) -> None: ...


_RECORDER: contextvars.ContextVar[CheckRecorder | None] = contextvars.ContextVar(
    "digm_check_recorder", default=None
)


def require(ok: torch.Tensor | bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok`` (a bool, or a boolean tensor that must be all True) holds.

    Reading a GPU tensor's value waits for the GPU, which a training loop wants to do rarely and a
    CUDA graph cannot do at all. So while ``utils.train.fit`` runs a training step, the check is only
    recorded on the device, and ``fit`` raises the same ``ValueError`` at its next read-back (within
    ``log_every`` steps), naming the step. Everywhere else it is checked at once.
    Library code calls this instead of ``if not ok.item(): raise ...``; it never needs to know whether
    the step is being captured. Inside ``torch.compile``d code the check is skipped: compiled code
    can neither read the value back nor raise on it without breaking the graph.
    """
    if torch.compiler.is_compiling():
        return
    recorder = _RECORDER.get()
    if recorder is not None and isinstance(ok, torch.Tensor):
        recorder.record(ok.all(), message)
    elif not bool(ok.all() if isinstance(ok, torch.Tensor) else ok):
        raise ValueError(message)


@contextlib.contextmanager
def recording_checks(recorder: CheckRecorder) -> Iterator[None]:
    """Within this block, ``require`` hands its checks to ``recorder`` instead of checking them now."""
    token = _RECORDER.set(recorder)
    try:
        yield
    finally:
        _RECORDER.reset(token)
