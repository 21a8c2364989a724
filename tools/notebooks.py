"""One notebook runner for ``make course`` and ``make slides``: a fresh kernel, cell by cell.

A cell is interrupted as Jupyter's stop button does (SIGINT to the kernel) when it runs past its
``timeout`` or past the run's ``deadline``, and gets INTERRUPT_GRACE seconds to wind up (a training
cell saves its checkpoint) before the kernel is shut down. ``ctrl_c_stops`` makes the terminal's
Ctrl-C do the same. The kernel's own output (its log lines, what C libraries write to the process's
stderr) goes to a log file instead of the terminal, so it never lands inside a progress line.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tools.paths import REPO_ROOT

CTRL_C = "stopped: Ctrl-C"  # status prefix of a notebook the user stopped
BUDGET = "stopped: --budget spent"  # status prefix of a notebook the run's deadline stopped

# After a cell is interrupted, how long it may take to wind up (a training loop saves its
# checkpoint) before the kernel is shut down regardless.
INTERRUPT_GRACE = 60


def numbered_notebooks(folder: Path) -> list[Path]:
    """The lectures ``folder/NN_*.ipynb`` in name order: a scratch ``Untitled.ipynb`` is never run."""
    return sorted(folder.glob("[0-9]*.ipynb"))


def count(number: int, noun: str) -> str:
    """"1 notebook", "2 notebooks": a number with its noun (a plural made with -s)."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def kernel_env(fast: bool | None) -> dict[str, str]:
    """The kernel's environment: ours, with the repository importable and DIGM_FAST set to ``fast``
    (None keeps whatever DIGM_FAST this process has)."""
    env = dict(os.environ)
    if fast is not None:
        env["DIGM_FAST"] = "1" if fast else "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class Stop:
    """What a run shares with its Ctrl-C handler: the running kernel's pid (None between kernels)
    and whether the user has pressed Ctrl-C."""

    pid: int | None = None
    pressed: threading.Event = field(default_factory=threading.Event)


@dataclass
class Outcome:
    """How a run of one notebook ended: ``status`` is "ok" or says what went wrong, and where;
    ``log`` is the kernel's log file when a kernel was started and its output sent there."""

    status: str
    seconds: float
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def execute(
    nb: nbformat.NotebookNode,
    cwd: Path,
    *,
    env: dict[str, str],
    kernel: str = "python3",
    timeout: int | None = None,
    deadline: float | None = None,
    stop: Stop | None = None,
    save_to: Path | None = None,
    log: Path | None = None,
) -> Outcome:
    """Run every cell of ``nb`` in place, in a fresh kernel started in ``cwd`` with ``env``.

    ``timeout`` (seconds per cell, None for no limit) and ``deadline`` (a ``time.monotonic()`` value
    for the whole run) interrupt the running cell; so does Ctrl-C under ``ctrl_c_stops(stop)``.
    ``save_to`` gets the notebook after every cell, so a run that is killed keeps what finished;
    ``log`` gets the kernel's stdout and stderr (None: they go where ours go). The widget state is
    stored in ``nb`` either way. A failing cell is reported in the outcome, never raised; only a
    second Ctrl-C raises (KeyboardInterrupt), once the kernel is shut down.
    """
    from nbclient import NotebookClient

    stop = stop or Stop()
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(cwd)}})

    def save() -> None:
        client.set_widgets_metadata()  # widget state, so the copy shows (and the slides keep) its widgets
        if save_to is not None:
            nbformat.write(nb, save_to)

    start = time.perf_counter()
    if stop.pressed.is_set():
        status, log = f"{CTRL_C} before it started", None
    elif deadline is not None and time.monotonic() >= deadline:
        status, log = f"{BUDGET} before it started", None
    else:
        with _kernel_output(log) as output:
            status = _run_cells(client, nb, env, output, timeout, deadline, stop, save)
    seconds = time.perf_counter() - start
    save()
    return Outcome(status, seconds, log)


@contextlib.contextmanager
def _kernel_output(log: Path | None) -> Iterator[dict]:
    """The stdout/stderr arguments that send the kernel process's own output to ``log``."""
    if log is None:
        yield {}
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as stream:
        yield {"stdout": stream, "stderr": stream}


def _run_cells(client, nb, env, output, timeout, deadline, stop, save) -> str:
    """The cell loop of ``execute``; returns the status."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    def where(index: int) -> str:
        return f"cell {index + 1} of {len(nb.cells)}"

    def past_deadline() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def too_long(index: int) -> str:
        return f"failed: {where(index)} ran past --timeout {timeout} s and was interrupted"

    status, index = "ok", 0
    fired = threading.Event()  # set when this cell was interrupted for the deadline or its timeout
    try:
        with client.setup_kernel(env=env, **output):
            stop.pid = client.km.provisioner.pid
            for channel in (client.kc.shell_channel, client.kc.iopub_channel):
                poll_in_slices(channel)
            try:
                for index, cell in enumerate(nb.cells):
                    if stop.pressed.is_set():
                        return f"{CTRL_C} before {where(index)}"
                    if past_deadline():
                        return f"{BUDGET} before {where(index)}"
                    fired = threading.Event()  # one per cell: a late timer cannot touch the next cell
                    alarm = None
                    limits = [t for t in (deadline, None if timeout is None else time.monotonic() + timeout) if t is not None]
                    if limits:
                        # Interrupt the cell at its limit, then allow INTERRUPT_GRACE s to wind up before nbclient
                        # gives up on it (and the kernel is shut down, losing whatever it had not saved).
                        client.timeout = math.ceil(min(limits) - time.monotonic() + INTERRUPT_GRACE)
                        alarm = _interrupt_at(min(limits), stop.pid, fired)
                    try:
                        client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                    finally:
                        if alarm is not None:
                            alarm.cancel()
                            alarm.join()  # a callback already under way finishes before the next cell
                    save()
                    if stop.pressed.is_set():  # the cell caught the interrupt, or Ctrl-C came as it ended
                        return f"{CTRL_C} at {where(index)}"
                    if fired.is_set() and not past_deadline():
                        return too_long(index)
            finally:
                stop.pid = None
    except (CellExecutionError, CellTimeoutError) as err:
        if stop.pressed.is_set():
            return f"{CTRL_C} in {where(index)}"
        if past_deadline():
            return f"{BUDGET} in {where(index)}"
        if fired.is_set():
            return too_long(index)
        return failure(err)
    except Exception as err:  # a notebook that fails is an outcome, not the end of the caller's run
        return failure(err)
    return status


POLL_SLICE = 1.0  # seconds: how long one wait for a kernel message may go without looking again


def poll_in_slices(channel, step: float = POLL_SLICE) -> None:
    """Make ``channel.get_msg`` look at its socket again every ``step`` seconds while it waits.

    nbclient waits for a cell's reply and outputs with one long ``get_msg`` (``timeout=None`` when
    there is no limit). Under load the asyncio wake-up for a message that has already arrived can be
    missed, and that wait never ends although the kernel is idle (seen here on widget cells;
    jupyter/nbclient#312). A new poll finds the queued message, so waiting in slices ends the hang.
    """
    from queue import Empty

    wait_once = channel.get_msg

    async def get_msg(timeout: float | None = None, **kwargs):
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = step if end is None else min(step, max(0.0, end - time.monotonic()))
            try:
                return await wait_once(timeout=left, **kwargs)
            except Empty:
                if end is not None and time.monotonic() >= end:
                    raise

    channel.get_msg = get_msg


def failure(err: BaseException) -> str:
    """The status of a notebook that raised ``err``: the whole first line of the error, since its
    end is often the fix ("...; unset DIGM_DEVICE to fall back to the CPU")."""
    name = type(err).__name__
    if name == "CellExecutionError":
        ename = getattr(err, "ename", "") or "error"
        evalue = (getattr(err, "evalue", "") or "").strip().splitlines()
        return f"failed: {ename}: {evalue[0] if evalue else ''}".rstrip(": ")
    if name == "CellTimeoutError":
        return "failed: a cell ran past --timeout"
    if name == "DeadKernelError":
        return "failed: the kernel died (out of memory?)"
    text = str(err).strip().splitlines()
    return f"failed: {name}: {text[0] if text else ''}".rstrip(": ")


def _interrupt(pid: int | None) -> None:
    """SIGINT to the kernel's process group, as Jupyter's stop button sends (the kernel leads its own)."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg") and os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGINT)
        else:
            os.kill(pid, signal.SIGINT)


def _interrupt_at(deadline: float, pid: int | None, fired: threading.Event) -> threading.Timer | None:
    """Interrupt the kernel (as the stop button does) at ``deadline`` and set ``fired``: the running
    cell ends with KeyboardInterrupt after its own clean-up, e.g. ``fit`` saving its checkpoint."""
    if pid is None or not hasattr(signal, "SIGINT"):
        return None

    def interrupt() -> None:
        fired.set()
        _interrupt(pid)

    alarm = threading.Timer(max(0.0, deadline - time.monotonic()), interrupt)
    alarm.daemon = True
    alarm.start()
    return alarm


@contextlib.contextmanager
def ctrl_c_stops(stop: Stop):
    """For the whole run, the first Ctrl-C interrupts the running kernel (if any) and sets ``stop.pressed``
    instead of killing the runner, so the cell can wind up and the run can report; the second one raises
    KeyboardInterrupt as usual. The kernel runs in its own session, so the terminal's Ctrl-C misses it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first_ctrl_c(signum, frame) -> None:
        stop.pressed.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _interrupt(stop.pid)
        with contextlib.suppress(Exception):  # e.g. a reentrant write to stderr: the stop matters more
            print(
                "\nCtrl-C: interrupting the running cell and stopping after it winds up (a training cell saves "
                "its checkpoint); Ctrl-C again stops within seconds.", file=sys.stderr, flush=True,
            )

    previous = signal.signal(signal.SIGINT, first_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
