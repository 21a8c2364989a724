"""One optimisation step per call, run eagerly, compiled, or recorded once as a CUDA graph and replayed.

Everything ``fit`` knows about CUDA graphs lives here. A small model's step is bound by kernel
launches, not arithmetic, so on a GPU the whole step (forward, backward, clipping, fused Adam and
the logging sums) is recorded once and replayed per batch. A step can be recorded only if it never
waits for the GPU (``.item()``, ``.cpu()``, ``print(tensor)``, ``torch.tensor(x, device="cuda")``, a
data-dependent ``if``): the warm-up steps run with PyTorch's sync debug mode set to "error", so such
a step is found before any recording starts and the model trains eagerly, with one warning. Input
checks of the library (``runtime.require``) are recorded on the device instead of read back, so
they never stop a recording. If a recording still fails, the current stream and the default CUDA
generator are put back as they were (a failed capture leaves the generator in capture mode, and
every later random call in the process would fail), so the process stays usable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from utils import runtime
from utils.train.contract import ModelContractError, check_output


class CaptureRefused(Exception):
    """The step cannot be recorded as a CUDA graph; ``reason`` says why. Nothing was left broken."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def adam(model_or_params: nn.Module | Any, lr: float = 1e-3, **kwargs: Any) -> torch.optim.Adam:
    """Adam as ``fit`` builds it: on CUDA fused (one kernel for all parameters) and capturable (its
    step counter lives on the GPU) so that a CUDA graph can record it; PyTorch's defaults elsewhere.

    Pass it as ``fit(..., optimizer=adam(model))`` to keep its state across several ``fit`` calls;
    other keywords (``eps=1e-4``, ``capturable=False`` for an eager-only run, ...) go to Adam.
    """
    params = model_or_params.parameters() if isinstance(model_or_params, nn.Module) else model_or_params
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("The model has no parameters with requires_grad=True, so there is nothing to train.")
    if params[0].device.type == "cuda":
        kwargs.setdefault("fused", True)
        kwargs.setdefault("capturable", True)
    return torch.optim.Adam(params, lr=lr, **kwargs)


def optimizers(optimizer: Any) -> list[torch.optim.Optimizer]:
    return list(optimizer.values()) if isinstance(optimizer, Mapping) else [optimizer]


def trainable(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


# --------------------------------------------------------------------------------------------------
# Logged values and deferred checks, summed on the device
# --------------------------------------------------------------------------------------------------


class Meter:
    """Sums every logged entry on the device, remembers the first non-finite loss and the first step at
    which each ``runtime.require`` check failed, and reads all of it back in one copy.

    All updates are in place on tensors allocated during the eager warm-up, before any recording,
    so a recorded step keeps accumulating into the same memory on every replay.
    """

    def __init__(self, device: torch.device):
        self.device = device
        # float64 sums lose nothing over a log window; MPS has no float64.
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums: dict[str, torch.Tensor] = {}
        self.failed_checks: dict[str, torch.Tensor] = {}  # message -> first failing step (1-based), or -1
        self.count = 0
        self.recording = False  # set while a CUDA graph records the step: no new accumulator may appear then
        self.step = torch.zeros((), dtype=self.dtype, device=device)
        self.bad_step = torch.full((), -1.0, dtype=self.dtype, device=device)
        self.bad_value = torch.zeros((), dtype=self.dtype, device=device)
        self.last_finite = torch.full((), math.nan, dtype=self.dtype, device=device)

    def record(self, ok: torch.Tensor, message: str) -> None:
        """``runtime.require``'s check inside a step: note the step if ``ok`` is False (no host sync)."""
        if ok.device.type == "cpu" and self.device.type != "cpu":  # a host value: nothing to wait for
            if not bool(ok):
                raise ValueError(message)
            return
        if message not in self.failed_checks:
            self._refuse_new("a check", message)
            self.failed_checks[message] = torch.full((), -1.0, dtype=self.dtype, device=self.device)
        first = self.failed_checks[message]
        first.copy_(torch.where(~ok & (first < 0), self.step + 1, first))

    def _refuse_new(self, what: str, name: str) -> None:
        """A new accumulator made while a graph records would be re-created (zeroed) on every replay."""
        if self.recording:
            raise CaptureRefused(
                f"{what} named {name!r} appears only when the step is recorded, not in the eager warm-up "
                "steps before it; the step must do the same Python work every time"
            )

    def add(self, out: Mapping[str, Any]) -> None:
        for key, value in out.items():
            if key not in self.sums:
                self._refuse_new("a logged value", key)
                self.sums[key] = torch.zeros((), dtype=self.dtype, device=self.device)
            self.sums[key].add_(
                value.detach().reshape(()) if isinstance(value, torch.Tensor) else float(value)
            )
        loss = out["loss"]
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().reshape(()).to(self.dtype)
        else:  # a number from a training_step hook, which always runs eagerly
            loss = torch.tensor(float(loss), dtype=self.dtype, device=self.device)
        self.step.add_(1)
        finite = torch.isfinite(loss)
        still_good = self.bad_step < 0
        first_bad = still_good & ~finite
        self.bad_step.copy_(torch.where(first_bad, self.step, self.bad_step))
        self.bad_value.copy_(torch.where(first_bad, loss, self.bad_value))
        self.last_finite.copy_(torch.where(finite & still_good, loss, self.last_finite))

    def reset(self, step: int) -> None:
        for s in self.sums.values():
            s.zero_()
        for first in self.failed_checks.values():
            first.fill_(-1.0)
        self.step.fill_(step)
        self.bad_step.fill_(-1.0)
        self.last_finite.fill_(math.nan)
        self.count = 0

    def read(self) -> tuple[dict[str, float], tuple[int, float, float] | None, list[tuple[str, int]]]:
        """``(means since the last read, (bad step, bad value, last finite loss) or None, failed checks as
        (message, first step), earliest first)``; one device-to-host copy. The sums start again from zero."""
        keys, messages = list(self.sums), list(self.failed_checks)
        packed = torch.stack(
            [*(self.sums[k] for k in keys), self.bad_step, self.bad_value, self.last_finite,
             *(self.failed_checks[m] for m in messages)]
        )  # fmt: skip
        values = packed.cpu().tolist()
        means = {k: v / max(self.count, 1) for k, v in zip(keys, values)}
        for s in self.sums.values():
            s.zero_()
        self.count = 0
        bad_step, bad_value, last_finite = values[len(keys) : len(keys) + 3]
        failed = sorted(
            ((m, int(s)) for m, s in zip(messages, values[len(keys) + 3 :]) if s >= 0), key=lambda f: f[1]
        )
        return means, (None if bad_step < 0 else (int(bad_step), bad_value, last_finite)), failed


# --------------------------------------------------------------------------------------------------
# Steppers
# --------------------------------------------------------------------------------------------------


def defers_checks(device: torch.device) -> bool:
    """Whether ``runtime.require`` checks inside a step are collected and read with the logged values.

    On a CPU a check costs nothing to read at once (and its traceback points at the failing line);
    on a GPU each read waits for the device.
    """
    return device.type != "cpu"


class Stepper:
    """One optimisation step per call: ``stepper(batch)``. Subclasses differ in how the step runs."""

    mode = "eager"

    def __init__(self, model, optimizer, meter: Meter, single: bool, grad_clip, loss_fn=None):
        self.model, self.optimizer, self.meter, self.single = model, optimizer, meter, single
        self.grad_clip = grad_clip
        self.hook = getattr(model, "training_step", None) if isinstance(optimizer, Mapping) else None
        self.loss_fn = loss_fn if loss_fn is not None else getattr(model, "loss", None)
        self.checked = False
        self.defer_checks = defers_checks(meter.device)

    def _arg(self, batch: tuple[torch.Tensor, ...]) -> Any:
        return batch[0] if self.single else batch

    def body(self, batch: tuple[torch.Tensor, ...]) -> Mapping[str, Any]:
        """Forward, backward and update, with no host-device synchronisation (so it can be recorded)."""
        if self.hook is not None:
            out = self.hook(self._arg(batch), self.optimizer)
            if not self.checked:
                check_output(self.model, out, "training_step(batch, optimizers)", needs_grad=False)
            return out
        out = self.loss_fn(self._arg(batch))
        if not self.checked:
            check_output(self.model, out, "loss(batch)", needs_grad=True)
        out["loss"].backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(trainable(self.model), self.grad_clip)
        self.optimizer.step()
        return out

    def run_body(self, batch: tuple[torch.Tensor, ...]) -> Mapping[str, Any]:
        if not self.defer_checks:
            return self.body(batch)
        with runtime.recording_checks(self.meter):
            return self.body(batch)

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> None:
        if self.hook is None:
            self.optimizer.zero_grad(set_to_none=True)
        out = self.run_body(batch)
        self.checked = True
        self.meter.add(out)
        self.meter.count += 1


class GraphStepper(Stepper):
    """The whole step recorded once in a CUDA graph and replayed per batch; each batch is copied into
    fixed input buffers first.

    Randomness stays fresh on every replay: PyTorch records, at capture, how far each random op
    advances the default CUDA generator's Philox offset, and each replay first advances the
    generator by that total, so the noise (reparameterisation, dynamic binarisation) differs per
    step. See the note "CUDA Graph-safe RNG states" in ATen's CUDAGeneratorImpl.h and the CUDA-graph
    section of the PyTorch CUDA semantics notes. Use the default CUDA generator inside the step (with
    another generator, older torch versions fail the recording and fit trains eagerly). A failed
    recording replaces the default generator's state by a copy taken just before it; a CUDA graph
    recorded elsewhere and still alive keeps drawing from the old state.
    """

    mode = "graph"
    warmup_steps = 3

    def capture(self, first_batch: tuple[torch.Tensor, ...], step0: int) -> None:
        """Warm up, record the step, then put model and optimizer back as they were (in place).

        Raises CaptureRefused (the model cannot be recorded; train it eagerly) or the ValueError of a
        ``runtime.require`` check that the warm-up steps failed (bad data, not a recording problem).
        """
        self.defer_checks = True  # a recorded step cannot raise: its checks are read back with the sums
        self.static = tuple(t.clone() for t in first_batch)
        params_before = {k: v.clone() for k, v in self.model.state_dict().items()}
        opt_before = _snapshot_optimizer(self.optimizer)
        try:
            with torch.cuda.device(self.meter.device):  # the generator and streams of the data's GPU
                self._warm_up()
                _, _, failed = self.meter.read()
                if failed:  # every warm-up step takes the first batch: it is training step step0 + 1's data
                    raise ValueError(f"At training step {step0 + 1}: {failed[0][0]}")
                self.optimizer.zero_grad(set_to_none=True)  # gradients now live in the graph's memory
                self.graph = self._record()
        finally:
            # The warm-up stepped three times on one batch: undo it. copy_ keeps the memory that the
            # graph reads from and writes to.
            torch.cuda.synchronize()
            _restore_in_place(self.model.state_dict(), params_before)
            _restore_optimizer(self.optimizer, opt_before)
            self.meter.reset(step0)

    def _warm_up(self) -> None:
        """Eager steps on a side stream (as the PyTorch docs ask): they create the optimizer state and the
        autograd buffers, so the recording allocates nothing outside the graph's pool. A step that waits
        for the GPU is refused here, before a recording could fail."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        mode = torch.cuda.get_sync_debug_mode()
        try:
            with torch.cuda.stream(side):
                torch.cuda.set_sync_debug_mode("error")
                try:
                    for _ in range(self.warmup_steps):
                        super().__call__(self.static)
                finally:
                    torch.cuda.set_sync_debug_mode(mode)
        except RuntimeError as err:
            if "synchroniz" not in str(err):
                raise  # the model's own error: the same would happen eagerly
            raise CaptureRefused(
                f"the step waits for the GPU ({_first_line(err)}), e.g. .item(), .cpu(), print(tensor), "
                "torch.tensor(number, device=...) or an `if` on a tensor inside loss(), which a CUDA graph "
                "cannot record"
            ) from None
        torch.cuda.current_stream().wait_stream(side)

    def _record(self) -> torch.cuda.CUDAGraph:
        index = torch.cuda.current_device()
        generator = torch.cuda.default_generators[index]
        clean_rng = generator.clone_state()  # a copy of the generator state, not in capture mode
        stream = torch.cuda.current_stream()
        graph, pool = torch.cuda.CUDAGraph(), torch.cuda.graph_pool_handle()
        self.meter.recording = True
        try:
            with runtime.recording_checks(self.meter), torch.cuda.graph(graph, pool=pool):
                self.meter.add(self.body(self.static))
        except BaseException as err:
            # A failed capture_end leaves torch.cuda.graph's capture stream current and (torch 2.11) the
            # generator in capture mode, so that every later random call fails with "Offset increment
            # outside graph capture": put both back, and stop the allocator routing memory to the graph.
            torch.cuda.set_stream(stream)
            generator.graphsafe_set_state(clean_rng)
            _abandon(graph, pool, index)
            if not isinstance(err, Exception):
                raise
            # capture_end's own error ("operation failed due to a previous error during capture") hides
            # the one that matters, raised by the step itself.
            reason = _first_line(err.__context__ if err.__context__ is not None else err)
        else:
            return graph
        finally:
            self.meter.recording = False
        torch.cuda.synchronize()
        raise CaptureRefused(f"recording the step failed ({reason})")

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> None:
        for buffer, values in zip(self.static, batch):
            buffer.copy_(values)
        self.graph.replay()
        self.meter.count += 1

    def release(self) -> None:
        """Free the graph and the gradients that live in its private memory."""
        if hasattr(self, "graph"):
            for opt in optimizers(self.optimizer):
                opt.zero_grad(set_to_none=True)
            del self.graph


def _snapshot_optimizer(optimizer: torch.optim.Optimizer) -> dict[int, dict[str, torch.Tensor]]:
    return {
        id(p): {k: v.clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
        for p, state in optimizer.state.items()
    }


def _restore_optimizer(
    optimizer: torch.optim.Optimizer, snapshot: dict[int, dict[str, torch.Tensor]]
) -> None:
    """Put each state tensor back to its snapshot value; state created during warm-up goes to zero,
    which is a fresh Adam (or momentum) state."""
    with torch.no_grad():
        for p, state in optimizer.state.items():
            saved = snapshot.get(id(p), {})
            for key, value in state.items():
                if not isinstance(value, torch.Tensor):
                    continue
                if key in saved:
                    value.copy_(saved[key])
                else:
                    value.zero_()


def _restore_in_place(current: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for key, tensor in current.items():
            tensor.copy_(saved[key])


# Graphs whose recording failed. PyTorch's caching allocators keep a filter that points at the graph
# object after a failed capture_end (the device allocator until told otherwise, the pinned-host one for
# good), so such a graph is kept for the life of the process rather than freed under them.
_ABANDONED_GRAPHS: list[torch.cuda.CUDAGraph] = []


def _abandon(graph: torch.cuda.CUDAGraph, pool: Any, device_index: int) -> None:
    """Let go of a graph whose recording failed: stop the device allocator from routing new memory to its
    pool and let the pool be freed (capture_end raised before doing so), and keep the object alive."""
    end = getattr(torch._C, "_cuda_endAllocateToPool", None) or getattr(
        torch._C, "_cuda_endAllocateCurrentStreamToPool", None
    )
    release = getattr(torch._C, "_cuda_releasePool", None)
    if end is not None and release is not None:
        try:
            end(device_index, pool)
        except RuntimeError:
            pass  # this torch ended the routing itself before it failed
        else:
            release(device_index, pool)
    _ABANDONED_GRAPHS.append(graph)


# --------------------------------------------------------------------------------------------------
# Choosing and starting a stepper
# --------------------------------------------------------------------------------------------------


def graph_obstacle(optimizer: Any, device: torch.device) -> str | None:
    """Why this run cannot be recorded whole, known before trying, or None."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, and the data is on {device}"
    if isinstance(optimizer, Mapping):
        return "a training_step hook with several optimizers runs eagerly"
    if not all(g.get("capturable", False) for g in optimizer.param_groups):
        return "the optimizer was not built with capturable=True (use utils.train.adam(model))"
    return None


def build_stepper(mode: str, model, optimizer, meter: Meter, single: bool, grad_clip) -> Stepper:
    if mode == "graph":
        return GraphStepper(model, optimizer, meter, single, grad_clip)
    if mode == "compile":
        stepper = Stepper(model, optimizer, meter, single, grad_clip, loss_fn=torch.compile(model.loss))
        stepper.mode = "compile"
        return stepper
    return Stepper(model, optimizer, meter, single, grad_clip)


def first_step(stepper: Stepper, batch, step: int, notes: list[str]) -> tuple[Stepper, str | None]:
    """Take the first step, which records the graph (or compiles). If that is refused or fails for a
    reason other than the model contract or the data, fall back to an eager stepper and return it
    with the reason (None when nothing fell back); the reason is also added to ``notes``."""
    reason = None
    try:
        if isinstance(stepper, GraphStepper):
            stepper.capture(batch, step)
        stepper(batch)
        return stepper, None
    except CaptureRefused as refused:
        reason = refused.reason
    except Exception as err:  # compiling fails in many ways; a broken model contract is the model's error
        if stepper.mode != "compile" or isinstance(err, ModelContractError):
            raise
        reason = _first_line(err)
    notes.append(f"{stepper.mode} -> eager: {reason}")
    meter = stepper.meter
    meter.sums.clear()
    meter.reset(step)
    eager = Stepper(stepper.model, stepper.optimizer, meter, stepper.single, stepper.grad_clip)
    eager(batch)
    return eager, f"speed={stepper.mode!r} is not possible for {type(stepper.model).__name__}: {reason}"
