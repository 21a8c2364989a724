"""``fit``: one training loop for every model of the course, and ``evaluate``.

The data set stays on the device as tensors and is sliced per batch (no per-item ``DataLoader``);
logged values are summed on the device and read back every ``log_every`` steps (each read waits
for the GPU); how a step runs (eagerly, compiled, as a replayed CUDA graph) is the stepper's
business (:mod:`utils.train.steppers`). Nothing is lost on bad input or bad luck: a non-finite loss
stops with :class:`NonFiniteLossError` naming the step and the last finite loss, checkpoints are
written atomically, and an unwritable checkpoint path is an error before the first step.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.data.batching import batches, num_batches
from utils.train.checkpoints import (
    checkpoint_folder,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from utils.train.contract import ModelContractError, as_tensors, check_output, model_device
from utils.train.history import History
from utils.train.progress import Progress, in_notebook
from utils.train.schedules import LrSchedule, Schedule, ScheduledLr
from utils.train.steppers import GraphStepper, Meter, adam, build_stepper, first_step, graph_obstacle

SPEEDS = ("auto", "eager", "compile", "graph")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``.step``, ``.last_finite_loss`` and ``.history`` say where."""

    def __init__(self, message: str, step: int, last_finite_loss: float | None, history: History):
        super().__init__(message)
        self.step = step
        self.last_finite_loss = last_finite_loss
        self.history = history


def evaluate(model: nn.Module, data: Any, batch_size: int = 1024) -> dict[str, float]:
    """Every entry of ``model.loss`` averaged over ``data`` (weighted by batch size), in eval mode
    and without gradients."""
    tensors, single = as_tensors(data, "eval_data")
    if not callable(getattr(model, "loss", None)):
        raise ModelContractError(
            f"{type(model).__name__} has no loss(batch) method to evaluate eval_data with."
        )
    device = tensors[0].device
    dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    n = 0
    try:
        with torch.no_grad():
            for batch in batches(*tensors, batch_size=batch_size, shuffle=False):
                out = model.loss(batch[0] if single else batch)
                check_output(model, out, "loss(batch)", needs_grad=False)
                size = batch[0].shape[0]
                for key, value in out.items():
                    if key not in sums:
                        sums[key] = torch.zeros((), dtype=dtype, device=device)
                    value = value.detach().reshape(()) if isinstance(value, torch.Tensor) else float(value)
                    sums[key].add_(value * size)
                n += size
    finally:
        model.train(was_training)
    keys = list(sums)
    values = torch.stack([sums[k] for k in keys]).cpu().tolist()  # one device-to-host copy
    return {k: v / n for k, v in zip(keys, values)}


@dataclass
class Plan:
    """The numbers a run needs, resolved from fit's arguments."""

    total: int
    per_epoch: int
    batch_size: int
    drop_last: bool
    log_every: int
    eval_every: int
    checkpoint_every: int


def _data_seed(generator: int | torch.Generator | None) -> int:
    if isinstance(generator, torch.Generator):
        return int(generator.initial_seed())
    if generator is not None:
        return int(generator)
    # Drawn from torch's global generator, so runtime.seed_everything(seed) makes it reproducible.
    return int(torch.randint(0, 2**62, (1,)).item())


def _epoch_order(tensors, plan: Plan, seed: int, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """The batches of one epoch; the permutation depends only on (seed, epoch), so a resumed run
    sees the same order as an uninterrupted one."""
    gen = torch.Generator(device=tensors[0].device)
    gen.manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return batches(
        *tensors, batch_size=plan.batch_size, shuffle=True, drop_last=plan.drop_last, generator=gen
    )


def _resolve_speed(speed: str, optimizer, device, notes: list[str]) -> str:
    if speed not in SPEEDS:
        raise ValueError(f"speed={speed!r} is not one of {SPEEDS}; 'auto' picks the fastest that works here.")
    obstacle = graph_obstacle(optimizer, device)
    if speed == "graph" and device.type != "cuda":
        raise ValueError(
            f"speed='graph' needs a CUDA GPU, but the data is on {device}; use speed='auto' "
            "(eager on this device) or move the model and data to a CUDA device."
        )
    if speed == "graph" and obstacle:
        warnings.warn(f"speed='graph' is not possible ({obstacle}); training eagerly instead.", stacklevel=3)
        notes.append(f"graph -> eager: {obstacle}")
        return "eager"
    if speed == "auto":
        return "graph" if obstacle is None else "eager"
    return speed


def _plan(n: int, epochs, steps, batch_size, speed, log_every, eval_every, checkpoint_every) -> Plan:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    batch_size = min(batch_size, n)
    # Graph replay and compiled code want one batch shape, so those modes drop the ragged last batch
    # (a different one each epoch, since the order is reshuffled).
    drop_last = speed in ("graph", "compile")
    per_epoch = num_batches(n, batch_size, drop_last)
    if epochs is None and steps is None:
        raise ValueError("Say how long to train: pass epochs= (passes over the data) or steps= (updates).")
    for name, value in (("epochs", epochs), ("steps", steps)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    total = min(x for x in (steps, None if epochs is None else epochs * per_epoch) if x is not None)
    if log_every is None:
        log_every = max(1, min(100, total // 100))
    for name, value in (
        ("log_every", log_every),
        ("eval_every", eval_every),
        ("checkpoint_every", checkpoint_every),
    ):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive number of steps, got {value!r}.")
    return Plan(
        total=total,
        per_epoch=per_epoch,
        batch_size=batch_size,
        drop_last=drop_last,
        log_every=log_every,
        eval_every=eval_every or per_epoch,
        checkpoint_every=checkpoint_every or per_epoch,
    )


def fit(
    model: nn.Module,
    data: torch.Tensor | tuple[torch.Tensor, ...],
    *,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_schedule: LrSchedule | None = None,
    optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | None = None,
    eval_data: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
    eval_every: int | None = None,
    speed: str = "auto",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    progress: bool = True,
    live_plot: bool | str = "auto",
    grad_clip: float | None = None,
    generator: int | torch.Generator | None = None,
    log_every: int | None = None,
) -> History:
    """Train ``model`` on ``data`` by minimising ``model.loss(batch)["loss"]``; return the History.

    data: a tensor ``[N, ...]`` or a tuple of tensors ``([N, ...], [N], ...)`` on the model's device.
        Each batch reaches ``model.loss`` as a tensor (single tensor data) or as a tuple.
    epochs / steps: how long; ``steps`` counts updates. Both are totals: with a checkpoint that is
        resumed, training continues up to them. If both are given the shorter wins.
    lr_schedule: the learning rate by stages, ``[(until_1, lr_1), (until_2, lr_2), ...]``: ``lr_1``
        until ``until_1``, then ``lr_2`` until ``until_2``, ..., and the last rate after that. The
        boundaries count epochs when ``epochs=`` is given, else steps (updates), from the start of
        training (a resumed run continues in the right stage), e.g. ``epochs=12,
        lr_schedule=[(10, 2e-3), (12, 5e-4)]``. Or a function ``step -> lr`` of the 0-based update
        index. Written into every param group of the optimizer before each update (it overrides
        ``lr``, and the optimizer keeps the last rate afterwards); logged as ``history["lr"]``.
        Works with every speed: under CUDA graphs the rate lives in a device tensor updated in place.
        With several optimizers (a dict) it sets the rate of every one of them, e.g. to lower both
        players' rates for the last epochs of a GAN.
    optimizer: default ``adam(model, lr)`` (fused and capturable on CUDA). For several players
        (GANs) pass a dict ``{"gen": opt_g, "disc": opt_d}``; the model must then define
        ``training_step(batch, optimizers) -> dict`` that zeroes, backpropagates and steps each
        optimizer itself and returns the logged scalars (with a ``"loss"`` entry for the NaN guard).
    eval_data: evaluated with ``model.loss`` (eval mode, no gradients) every ``eval_every`` steps
        (default: each epoch) and at the end; logged as ``eval_<key>``.
    speed: ``"eager"``; ``"compile"`` (``torch.compile`` of ``model.loss``; minutes of compiling pay
        off only on long GPU runs); ``"graph"`` (CUDA only: the whole step recorded in one CUDA graph,
        fixed batch size, last ragged batch dropped); ``"auto"`` = ``"graph"`` on CUDA when the model
        allows it, else ``"eager"``. On a CPU eager is the fast path: CPU kernels have little launch
        overhead to save, and compiling costs more than a short run gains. A step that waits for the
        GPU (``.item()``, ``print(tensor)``, an ``if`` on a tensor) cannot be recorded: fit then warns
        once, trains eagerly and says why in ``history.notes``.
        Under graph capture, Python code inside ``loss`` runs only once, at capture: keep changing
        numbers (a KL weight schedule, say) in tensors updated in place, or pass ``speed="eager"``.
    checkpoint: a file path. Saved atomically every ``checkpoint_every`` steps (default: each epoch)
        and at the end; with ``resume=True`` an existing file restores the model, the optimizer, the
        random state, the data order and the history, and training continues from its step.
        The folder is created and checked writable before the first step.
    progress: a tqdm bar (with the latest means as its postfix). live_plot: ``"auto"`` draws a live
        loss curve in a Jupyter notebook and prints eval lines as text elsewhere.
    grad_clip: clip the gradients' global norm to this value.
    generator: seed (int or ``torch.Generator``, whose initial seed is used) of the data order;
        default: drawn from torch's global generator, so ``runtime.seed_everything`` fixes it.
    log_every: read the summed logged values back from the device every this many steps (default:
        about 100 log points per run). Each read waits for the device, so not every step.

    An interrupt (Jupyter's stop button, Ctrl-C) saves the checkpoint, prints the step reached and
    propagates, so the cell and "Run All" stop; the model keeps the weights it has reached.

    Raises NonFiniteLossError (a NaN/inf loss, naming the step and the last finite loss), the
    ValueError of a failed ``runtime.require`` input check (bad data, naming the step; on a GPU read
    back with the logged values),
    ModelContractError (``loss`` returns no ``"loss"`` entry, or non-scalars), PermissionError (the
    checkpoint folder cannot be written), ValueError/TypeError for other bad arguments.
    """
    tensors, single = as_tensors(data, "data")
    device = tensors[0].device
    where = model_device(model)
    if where is None:
        raise ValueError(f"{type(model).__name__} has no parameters, so there is nothing to train.")
    if where != device:
        raise ValueError(
            f"The data is on {device} but the model's parameters are on {where}; move one of "
            "them, e.g. model.to(device) and data.to(device) with device = runtime.get_device()."
        )
    eval_tensors = None if eval_data is None else as_tensors(eval_data, "eval_data")
    if eval_tensors is not None and eval_tensors[0][0].device != device:
        raise ValueError(
            f"eval_data is on {eval_tensors[0][0].device} but the data and the model are on {device}; "
            "move it with .to(device) so that evaluation does not fail after the first epoch."
        )
    if isinstance(optimizer, Mapping):
        if not callable(getattr(model, "training_step", None)):
            raise ModelContractError(
                f"optimizer is a dict, so {type(model).__name__} needs a training_step(batch, optimizers) "
                "method that steps each one; define it, or pass a single optimizer."
            )
        if grad_clip is not None:
            raise ValueError("grad_clip applies to fit's own step; with training_step, clip inside the hook.")
    elif not callable(getattr(model, "loss", None)):
        raise ModelContractError(
            f"{type(model).__name__} has no loss(batch) method; the training loop needs one that returns "
            "{'loss': scalar to minimise, ...other scalars to log}."
        )
    history = History()
    if optimizer is None:
        # Capturable Adam keeps its step count on the GPU: needed for a graph, a little slower eagerly.
        optimizer = adam(model, lr, **({} if speed in ("auto", "graph") else {"capturable": False}))
    mode = _resolve_speed(speed, optimizer, device, history.notes)
    plan = _plan(
        tensors[0].shape[0], epochs, steps, batch_size, mode, log_every, eval_every, checkpoint_every
    )
    schedule = None
    if lr_schedule is not None:
        schedule = Schedule(lr_schedule, plan.per_epoch if epochs is not None else None)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None:
        checkpoint_folder(ckpt)  # fail now, not after an hour of training

    step0, seed, seconds0 = 0, None, 0.0
    if ckpt is not None and resume and ckpt.exists():
        state = load_checkpoint(ckpt, model, optimizer)
        extra = state["extra"]
        step0, seed = state["step"], extra.get("data_seed")
        if "history" in extra:
            history = History.from_dict(extra["history"])
            seconds0 = history.seconds[-1] if history.seconds else 0.0
        set_rng_state(extra.get("rng", {}))
        history.interrupted = False  # continuing now; set again if this run is interrupted too
        history.notes.append(f"resumed from {ckpt} at step {step0}")
    seed = _data_seed(generator) if seed is None else int(seed)
    history.speed = mode
    live = in_notebook() if live_plot == "auto" else bool(live_plot)
    progress_ = Progress(plan.total, step0, progress, live and (progress or live_plot is True))
    if step0 > plan.total:
        # The model is the longer-trained one; say so rather than let a lowered setting pass unnoticed.
        warnings.warn(
            f"{ckpt} holds {step0} steps, more than the {plan.total} asked for: the model trained for {step0}; "
            "delete the file to train for fewer.",
            stacklevel=2,
        )
    if step0 >= plan.total:
        progress_.close(history)
        return history

    meter = Meter(device)
    meter.reset(step0)
    # After the checkpoint is loaded (it replaces the param groups) and before the graph is captured.
    rates = None if schedule is None else ScheduledLr(schedule, optimizer, mode == "graph", device)
    stepper = build_stepper(mode, model, optimizer, meter, single, grad_clip)
    model.train()
    start = time.perf_counter()

    def elapsed() -> float:
        return seconds0 + time.perf_counter() - start

    def save(step: int) -> None:
        extra = {"data_seed": seed, "history": history.to_dict(), "rng": rng_state()}
        save_checkpoint(ckpt, model, optimizer, step, extra)

    def current_lr() -> float:
        if rates is not None and rates.current is not None:
            return rates.current
        return lr if isinstance(optimizer, Mapping) else float(optimizer.param_groups[0]["lr"])

    def flush(step: int) -> None:
        means, bad, failed = meter.read()
        if failed:
            message, first = failed[0]
            raise ValueError(f"At training step {first}: {message}")
        if bad is not None:
            raise _non_finite(bad, current_lr(), grad_clip, ckpt, history)
        if rates is not None:
            means["lr"] = current_lr()
        history.log(step, step / plan.per_epoch, elapsed(), means)
        progress_.logged(history)

    step = step0
    pending = False  # steps taken since the last flush
    try:
        while step < plan.total:
            epoch, skip = divmod(step, plan.per_epoch)
            for i, batch in enumerate(_epoch_order(tensors, plan, seed, epoch)):
                if i < skip:
                    continue
                if step >= plan.total:
                    break
                if rates is not None:
                    rates.apply(step)  # outside any graph, before the update it is for
                if stepper.checked:
                    stepper(batch)
                else:  # the first step: records the graph or compiles, and may fall back to eager
                    stepper, refused = first_step(stepper, batch, step, history.notes)
                    if refused is not None:
                        history.speed = "eager"
                        warnings.warn(f"{refused}; training eagerly instead.", stacklevel=2)
                step += 1
                pending = True
                progress_.step()
                if step % plan.log_every == 0 or step == plan.total:
                    flush(step)
                    pending = False
                if eval_tensors is not None and (step % plan.eval_every == 0 or step == plan.total):
                    _eval_and_log(model, eval_data, plan, step, history, progress_)
                if ckpt is not None and (step % plan.checkpoint_every == 0 or step == plan.total):
                    if pending:
                        flush(step)
                        pending = False
                    save(step)
    except KeyboardInterrupt:
        # Stop like any interrupted cell (the rest of the cell and "Run All" must not go on as if
        # training had finished), but keep the work: the model has its weights, the checkpoint its step.
        history.interrupted = True
        if pending:
            flush(step)
        if ckpt is not None:
            save(step)
        print(
            f"Interrupted at step {step} of {plan.total}; the model keeps the weights it has"
            + (f", and {ckpt} resumes from here when the cell runs again." if ckpt is not None else ".")
        )
        raise
    finally:
        progress_.close(history)
        if isinstance(stepper, GraphStepper):
            stepper.release()
        if rates is not None:
            rates.release()
    if progress and history.values:
        progress_.say(_summary(history, step0, step, seconds0))
    return history


def _eval_and_log(model, eval_data, plan: Plan, step: int, history: History, progress: Progress) -> None:
    results = evaluate(model, eval_data, batch_size=max(plan.batch_size, 256))
    history.log_eval(step, results)
    text = ", ".join(f"{k}={v:.4g}" for k, v in results.items())
    progress.say(f"step {step} (epoch {step / plan.per_epoch:.2f}): eval {text}")


def _non_finite(bad: tuple[int, float, float], lr, grad_clip, ckpt: Path | None, history: History):
    step, value, last = bad
    where = (
        f"the last finite loss was {last:.6g}, at step {step - 1}"
        if math.isfinite(last)
        else "no finite loss was seen before it"
    )
    advice = f"lower the learning rate (lr={lr:g} now)"
    if grad_clip is None:
        advice += ", pass grad_clip=1.0"
    advice += ", or look for log(0), a division by zero or an exp overflow in loss()"
    kept = (
        f" The checkpoint {str(ckpt)!r} still holds the last state saved before it."
        if ckpt and ckpt.exists()
        else ""
    )
    message = f"The training loss became {value} at step {step} ({where}); {advice}.{kept}"
    last_value = last if math.isfinite(last) else None
    return NonFiniteLossError(message, step=step, last_finite_loss=last_value, history=history)


def _summary(history: History, step0: int, step: int, seconds0: float) -> str:
    """One line for the end of `fit`. A resumed run names the steps it took and its own time beside the
    time over all runs, so the speed of this piece can be read off it."""
    values = ", ".join(f"{k}={v[-1]:.4g}" for k, v in history.values.items())
    evals = ", ".join(f"{k}={v[-1]:.4g}" for k, v in history.eval_values.items())
    seconds = history.seconds[-1] if history.seconds else seconds0
    if step0 == 0:
        text = f"{step} steps ({history.speed}) in {seconds:.1f} s: {values}"
    else:
        text = (
            f"steps {step0 + 1} to {step} ({history.speed}, resumed from the checkpoint) in "
            f"{seconds - seconds0:.1f} s, {seconds:.1f} s over all runs: {values}"
        )
    return text + (f"; {evals}" if evals else "")
