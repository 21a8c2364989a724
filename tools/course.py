"""Run the whole course: execute every lecture and tabulate its key numbers (``make course``).

    python -m tools.course                 # every lectures/*.ipynb in full mode (a GPU helps)
    python -m tools.course --fast          # DIGM_FAST=1: each notebook in about a minute on a CPU
    python -m tools.course --only 03 05    # lectures whose file names start with 03 or 05
    python -m tools.course --budget 600    # stop after 10 minutes in all, keeping what was measured

Executed notebooks go to ``build/course/`` and a table to ``build/course/results.md``: per notebook
its status, seconds, device (read from the notebook's ``runtime.describe`` line) and the
``[result] name = value unit`` lines that ``runtime.report_result`` printed. A failing notebook is
reported in the table and the run goes on; the exit code is 1 if any notebook failed or was stopped.
The executed copy is rewritten after every cell, so a run that is killed (or stopped by ``--budget``)
still leaves the outputs and results of the cells that finished. Ctrl-C stops the run the way the
budget does: the running cell is interrupted as by the stop button and may wind up (a training cell
saves its checkpoint), the table is written, and the exit code is 130; a second Ctrl-C stops within
seconds (the kernel is shut down) and the table is still written.
A cell past ``--timeout`` (none by default in full mode) is interrupted the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import platform
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from utils.runtime import RESULT_PREFIX

ROOT = Path(__file__).resolve().parents[1]
RESULT_LINE = re.compile(
    rf"^{re.escape(RESULT_PREFIX)} (?P<name>\S+) = (?P<value>\S+)(?: (?P<unit>.+?))?\s*$"
)
DEVICE_LINE = re.compile(r"\bdevice: (?P<device>[^|\n]+?)\s*(?:\||$)", re.MULTILINE)


@dataclass
class Result:
    name: str
    value: str
    unit: str = ""

    def __str__(self) -> str:
        return f"{self.name} = {self.value}{(' ' + self.unit) if self.unit else ''}"


@dataclass
class NotebookRun:
    """What running one notebook gave: ``status`` is "ok" or says what went wrong."""

    name: str
    status: str
    seconds: float
    device: str = "?"
    results: list[Result] = field(default_factory=list)
    executed: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def find_lectures(folder: Path, only: Sequence[str] = ()) -> list[Path]:
    """The lectures ``folder/NN_*.ipynb`` in name order, kept to those whose names start with one of ``only``.

    Only numbered notebooks count, as for the slides, so a scratch ``Untitled.ipynb`` is never run.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"No lecture folder at {str(folder)!r}; pass --lectures DIR.")
    notebooks = sorted(folder.glob("[0-9]*.ipynb"))
    if only:
        notebooks = [p for p in notebooks if any(p.name.startswith(prefix) for prefix in only)]
    return notebooks


def _stream_text(nb) -> str:
    """Everything the notebook printed (stdout and stderr streams, plain-text results) as one text."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output and "text/plain" in output["data"]:
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


def parse_outputs(nb) -> tuple[str | None, list[Result]]:
    """The device named by the notebook's ``runtime.describe`` line, and its ``[result]`` lines."""
    text = _stream_text(nb)
    device = DEVICE_LINE.search(text)
    results = []
    for line in text.splitlines():
        match = RESULT_LINE.match(line.strip())
        if match:
            results.append(Result(match["name"], match["value"], match["unit"] or ""))
    return (device["device"].strip() if device else None), results


def _failure(err: BaseException) -> str:
    """One short status line for a notebook that did not finish."""
    name = type(err).__name__
    if name == "CellExecutionError":
        ename = getattr(err, "ename", "") or "error"
        evalue = (getattr(err, "evalue", "") or "").strip().splitlines()
        return f"failed: {ename}: {evalue[0][:100] if evalue else ''}".rstrip(": ")
    if name == "CellTimeoutError":
        return "failed: a cell ran past --timeout"
    if name == "DeadKernelError":
        return "failed: the kernel died (out of memory?)"
    text = str(err).strip().splitlines()
    return f"failed: {name}: {text[0][:100] if text else ''}".rstrip(": ")


def kernel_env(fast: bool) -> dict[str, str]:
    """The kernel's environment: ours, with DIGM_FAST set for the mode and the repository importable."""
    env = dict(os.environ)
    env["DIGM_FAST"] = "1" if fast else "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


FAST_CELL_TIMEOUT = 900  # seconds: a FAST cell that runs longer has hung (as in `make test`'s nbval limit)


def cell_timeout(requested: int | None, fast: bool) -> int | None:
    """Seconds a cell may run (None: no limit). Full mode has no default limit: a training cell may
    legitimately run for hours on a CPU, and stopping it is --budget's job."""
    if requested is None:
        return FAST_CELL_TIMEOUT if fast else None
    return requested or None


CTRL_C = "stopped: Ctrl-C"  # status prefix of a notebook the user stopped

# After --budget interrupts a cell, how long the cell may take to wind up (a training loop saves
# its checkpoint) before the kernel is shut down regardless.
INTERRUPT_GRACE = 60


@dataclass
class Stop:
    """What the runner shares with its Ctrl-C handler: the running kernel's pid (None between kernels)
    and whether the user has pressed Ctrl-C."""

    pid: int | None = None
    pressed: threading.Event = field(default_factory=threading.Event)


def run_notebook(
    path: Path,
    out_dir: Path,
    *,
    fast: bool,
    timeout: int | None,
    kernel: str,
    deadline: float | None = None,
    stop: Stop | None = None,
) -> NotebookRun:
    """Execute ``path`` top to bottom in a fresh kernel (cwd = its folder); save it to ``out_dir``.

    ``deadline`` (a ``time.monotonic()`` value) interrupts the running cell at that moment, as the
    stop button would, and gives it INTERRUPT_GRACE seconds to wind up; so does ``timeout`` (seconds
    per cell, None for no limit) for a cell that runs too long, and Ctrl-C (see ``ctrl_c_stops``).
    The copy in ``out_dir`` is written after every cell, so what finished is kept either way.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    stop = stop or Stop()
    nb = nbformat.read(path, as_version=4)
    if stop.pressed.is_set():
        return not_started(path, out_dir, f"{CTRL_C} before it started")
    if deadline is not None and time.monotonic() >= deadline:
        return not_started(path, out_dir, "stopped: --budget spent before it started")
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}}
    )

    def save() -> None:
        client.set_widgets_metadata()  # widget state, so the copy shows (and the slides keep) its widgets
        nbformat.write(nb, executed)

    def where(index: int) -> str:
        return f"cell {index + 1} of {len(nb.cells)}"

    start = time.perf_counter()
    status = "ok"
    index = 0
    fired = threading.Event()  # set when this cell was interrupted for --budget or --timeout
    try:
        with client.setup_kernel(env=kernel_env(fast)):
            stop.pid = client.km.provisioner.pid
            try:
                for index, cell in enumerate(nb.cells):
                    if stop.pressed.is_set():
                        status = f"{CTRL_C} before {where(index)}"
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        status = f"stopped: --budget spent before {where(index)}"
                        break
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
                        status = f"{CTRL_C} at {where(index)}"
                        break
                    if fired.is_set() and not (deadline is not None and time.monotonic() >= deadline):
                        status = f"failed: {where(index)} ran past --timeout {timeout} s and was interrupted"
                        break
            finally:
                stop.pid = None
    except (CellExecutionError, CellTimeoutError) as err:
        if stop.pressed.is_set():
            status = f"{CTRL_C} in {where(index)}"
        elif deadline is not None and time.monotonic() >= deadline:
            status = f"stopped: --budget spent in {where(index)}"
        elif fired.is_set():
            status = f"failed: {where(index)} ran past --timeout {timeout} s and was interrupted"
        else:
            status = _failure(err)
    except Exception as err:  # a failing notebook is a row in the table, not the end of the run
        status = _failure(err)
    seconds = time.perf_counter() - start
    save()
    device, results = parse_outputs(nb)
    return NotebookRun(path.stem, status, seconds, device or _runner_device(), results, executed)


def not_started(path: Path, out_dir: Path, status: str) -> NotebookRun:
    """The row of a notebook the run stopped before: its unexecuted copy goes to ``out_dir`` too."""
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.read(path, as_version=4), out_dir / path.name)
    return NotebookRun(path.stem, status, 0.0, _runner_device())


def cut_short(path: Path, out_dir: Path, status: str, seconds: float) -> NotebookRun:
    """The row of a notebook stopped without the chance to finish its row: read from its executed copy."""
    import nbformat

    executed = out_dir / path.name
    if not executed.exists():
        return not_started(path, out_dir, status)
    device, results = parse_outputs(nbformat.read(executed, as_version=4))
    return NotebookRun(path.stem, status, seconds, device or _runner_device(), results, executed)


def _interrupt(pid: int | None) -> None:
    """SIGINT to the kernel's process group, as Jupyter's stop button sends (the kernel leads its own)."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg") and os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGINT)
        else:
            os.kill(pid, signal.SIGINT)


@contextlib.contextmanager
def ctrl_c_stops(stop: Stop):
    """For the whole run, the first Ctrl-C interrupts the running kernel (if any) and sets ``stop.pressed``
    instead of killing the runner, so the cell can wind up and the table is written; the second one raises
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


def _runner_device() -> str:
    """The device this machine would give a notebook, for notebooks that print no describe line."""
    from utils import runtime

    try:
        return f"{runtime.get_device()} (runner)"
    except (RuntimeError, ValueError):
        return "?"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def results_table(runs: Sequence[NotebookRun]) -> str:
    """A markdown table: notebook, status, seconds, device, key results."""
    lines = ["| notebook | status | seconds | device | key results |", "|---|---|---|---|---|"]
    for run in runs:
        results = "; ".join(str(r) for r in run.results) or "-"
        lines.append(
            f"| {_cell(run.name)} | {_cell(run.status)} | {run.seconds:.1f} | {_cell(run.device)} | {_cell(results)} |"
        )
    return "\n".join(lines)


def report(runs: Sequence[NotebookRun], *, fast: bool, command: str) -> str:
    failed = [r.name for r in runs if not r.ok]
    total = sum(r.seconds for r in runs)
    summary = f"{len(runs)} notebooks, {len(runs) - len(failed)} ok, {len(failed)} failed" + (
        f" ({', '.join(failed)})" if failed else ""
    )
    return "\n".join(
        [
            "# Course run",
            "",
            f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
            f"- mode: {'FAST (DIGM_FAST=1)' if fast else 'full'}",
            f"- machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} CPU cores), Python {platform.python_version()}",
            f"- command: `{command}`",
            f"- total: {total:.0f} s; {summary}",
            "",
            results_table(runs),
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.course", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="run in FAST mode (DIGM_FAST=1)")
    parser.add_argument("--only", nargs="+", default=[], metavar="PREFIX", help="e.g. --only 03 05")
    parser.add_argument(
        "--timeout", type=int, default=None, metavar="SECONDS",
        help=f"interrupt a cell that runs longer (0: no limit; default {FAST_CELL_TIMEOUT} with --fast, "
        "none in full mode, where training cells take hours on a CPU: use --budget to bound the run)",
    )
    parser.add_argument("--lectures", type=Path, default=ROOT / "lectures", help="folder of notebooks")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "build" / "course", help="executed notebooks, results.md"
    )
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    parser.add_argument(
        "--budget", type=float, default=0, metavar="SECONDS",
        help="stop the whole run after this many seconds, keeping finished cells (0: no limit)",
    )
    args = parser.parse_args(argv)
    if args.budget < 0:
        parser.error(f"--budget must be a number of seconds >= 0, not {args.budget:g}")
    if args.timeout is not None and args.timeout < 0:
        parser.error(f"--timeout must be a number of seconds >= 0 (0: no limit), not {args.timeout}")
    deadline = time.monotonic() + args.budget if args.budget else None
    only = [p for item in args.only for p in item.split(",") if p]
    try:
        notebooks = find_lectures(args.lectures, only)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    if not notebooks:
        print(
            f"No notebook in {args.lectures} matches {only or '*.ipynb'}; check --only / --lectures.",
            file=sys.stderr,
        )
        return 2

    mode = "FAST" if args.fast else "full"
    print(
        f"Running {len(notebooks)} notebook(s) in {mode} mode; executed copies go to {args.out}", flush=True
    )
    runs = []
    stop = Stop()
    with ctrl_c_stops(stop):
        for path in notebooks:
            print(f"  {path.name} ...", end=" ", flush=True)
            start = time.perf_counter()
            try:
                run = run_notebook(
                    path, args.out, fast=args.fast, timeout=cell_timeout(args.timeout, args.fast),
                    kernel=args.kernel, deadline=deadline, stop=stop,
                )
            except KeyboardInterrupt:  # the second Ctrl-C: the kernel is gone, the table is still written
                stop.pressed.set()
                run = cut_short(path, args.out, f"{CTRL_C} twice", time.perf_counter() - start)
            print(f"{run.status} ({run.seconds:.1f} s)", flush=True)
            runs.append(run)

    command = "python -m tools.course " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(runs, fast=args.fast, command=command.strip())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    print("\n" + results_table(runs))
    print(f"\nwritten: {args.out / 'results.md'}")
    if any(r.status.startswith(CTRL_C) for r in runs):
        return 130  # what a shell reports for Ctrl-C
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
