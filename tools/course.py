"""Run the whole course: execute every lecture and tabulate its key numbers (``make course``).

    python -m tools.course                 # every lectures/NN_*.ipynb in full mode (a GPU helps)
    python -m tools.course --fast          # DIGM_FAST=1: each notebook in about a minute on a CPU
    python -m tools.course --only 03 05    # lectures whose file names start with 03 or 05
    python -m tools.course --budget 600    # stop after 10 minutes in all, keeping what was measured

Executed notebooks go to ``build/course/`` and a table to ``build/course/results.md``: per notebook
its status, seconds, device (read from the notebook's ``runtime.describe`` line), the
``[result] name = value unit`` lines that ``runtime.report_result`` printed, and its files. A failing
notebook is reported in the table and the run goes on; the exit code is 1 if any notebook failed or
was stopped. ``<name>.ipynb`` is the last run that ended ok: a run is written to
``<name>.running.ipynb`` after every cell (so a run that is killed still leaves the outputs and
results of the cells that finished) and replaces ``<name>.ipynb`` only when it ends ok; otherwise it
is kept as ``<name>.failed.ipynb`` or ``<name>.stopped.ipynb``. The kernel's own log lines go to
``<name>.kernel.log``, which a failure points to. Ctrl-C stops the run the way ``--budget`` does:
the running cell is interrupted as by the stop button and may wind up (a training cell saves its
checkpoint), the table is written, and the exit code is 130; a second Ctrl-C stops within seconds
(the kernel is shut down) and the table is still written. A cell past ``--timeout`` (none by default
in full mode) is interrupted the same way.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tools import notebooks
from tools.notebooks import CTRL_C, Stop, count, ctrl_c_stops, kernel_env, numbered_notebooks
from tools.paths import REPO_ROOT
from utils.runtime import RESULT_PREFIX

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
    """What running one notebook gave: ``status`` is "ok" or says what went wrong; ``executed`` is
    its copy (see ``keep_copy``), ``log`` the kernel's log of this run (None if no kernel started)."""

    name: str
    status: str
    seconds: float
    device: str = "?"
    results: list[Result] = field(default_factory=list)
    executed: Path | None = None
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def find_lectures(folder: Path, only: Sequence[str] = ()) -> list[Path]:
    """The lectures ``folder/NN_*.ipynb`` in name order, kept to those whose names start with one of ``only``.

    Only numbered notebooks count, as for the slides, so a scratch ``Untitled.ipynb`` is never run.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"No lecture folder at {str(folder)!r}; pass --lectures DIR.")
    lectures = numbered_notebooks(folder)
    if only:
        lectures = [p for p in lectures if any(p.name.startswith(prefix) for prefix in only)]
    return lectures


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


FAST_CELL_TIMEOUT = 900  # seconds: a FAST cell that runs longer has hung (as in `make test`'s nbval limit)


def cell_timeout(requested: int | None, fast: bool) -> int | None:
    """Seconds a cell may run (None: no limit). Full mode has no default limit: a training cell may
    legitimately run for hours on a CPU, and stopping it is --budget's job."""
    if requested is None:
        return FAST_CELL_TIMEOUT if fast else None
    return requested or None


def copy_path(out_dir: Path, stem: str, kind: str = "") -> Path:
    """Where a notebook's executed copy of a ``kind`` goes: "" for the last run that ended ok,
    "running" while it runs, "failed" or "stopped" for a run that did not end ok."""
    return out_dir / (f"{stem}.{kind}.ipynb" if kind else f"{stem}.ipynb")


def kernel_log(out_dir: Path, stem: str) -> Path:
    return out_dir / f"{stem}.kernel.log"


def keep_copy(out_dir: Path, stem: str, status: str) -> Path:
    """Put the running copy of ``stem`` in its place for ``status`` and return that place.

    Only a run that ended ok replaces ``<stem>.ipynb``, so a failed or stopped rerun never costs the
    good copy of an earlier one; it is kept as ``<stem>.failed.ipynb`` or ``<stem>.stopped.ipynb``
    instead, and the partial copy of an earlier run (stale now) is removed.
    """
    kind = "" if status == "ok" else ("failed" if status.startswith("failed") else "stopped")
    target = copy_path(out_dir, stem, kind)
    os.replace(copy_path(out_dir, stem, "running"), target)
    for stale in {"failed", "stopped"} - {kind}:
        copy_path(out_dir, stem, stale).unlink(missing_ok=True)
    return target


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
    """Execute ``path`` top to bottom in a fresh kernel (cwd = its folder), its copy in ``out_dir``.

    ``deadline`` (a ``time.monotonic()`` value) interrupts the running cell at that moment, as the
    stop button would, and gives it time to wind up; so does ``timeout`` (seconds per cell, None for
    no limit) for a cell that runs too long, and Ctrl-C (see ``notebooks.ctrl_c_stops``). The copy
    ``<name>.running.ipynb`` is written after every cell, so what finished is kept even if the run is
    killed; at the end it goes where ``keep_copy`` says. The kernel's log goes to ``<name>.kernel.log``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(path, as_version=4)
    outcome = notebooks.execute(
        nb, path.parent, env=kernel_env(fast), kernel=kernel, timeout=timeout, deadline=deadline, stop=stop,
        save_to=copy_path(out_dir, path.stem, "running"), log=kernel_log(out_dir, path.stem),
    )
    executed = keep_copy(out_dir, path.stem, outcome.status)
    device, results = parse_outputs(nb)
    return NotebookRun(
        path.stem, outcome.status, outcome.seconds, device or _runner_device(), results, executed, outcome.log
    )


def cut_short(path: Path, out_dir: Path, status: str, seconds: float) -> NotebookRun:
    """The row of a notebook stopped without the chance to finish its row: read from its running copy
    (written after every cell), which is kept as the stopped copy."""
    running = copy_path(out_dir, path.stem, "running")
    if not running.exists():  # stopped before its first cell finished
        nbformat.write(nbformat.read(path, as_version=4), running)
    executed = keep_copy(out_dir, path.stem, status)
    device, results = parse_outputs(nbformat.read(executed, as_version=4))
    log = kernel_log(out_dir, path.stem)
    return NotebookRun(
        path.stem, status, seconds, device or _runner_device(), results, executed, log if log.exists() else None
    )


def _runner_device() -> str:
    """The device this machine would give a notebook, for notebooks that print no describe line."""
    from utils import runtime

    try:
        return f"{runtime.get_device()} (runner)"
    except (RuntimeError, ValueError):
        return "?"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def files(run: NotebookRun) -> list[Path]:
    """The files that show what happened: the executed copy, and the kernel's log when it did not end ok."""
    shown = [run.executed] + ([run.log] if not run.ok else [])
    return [path for path in shown if path is not None]


def results_table(runs: Sequence[NotebookRun]) -> str:
    """A markdown table: notebook, status, seconds, device, key results, and its files (in the same folder)."""
    lines = ["| notebook | status | seconds | device | key results | files |", "|---|---|---|---|---|---|"]
    for run in runs:
        results = "; ".join(str(r) for r in run.results) or "-"
        names = ", ".join(path.name for path in files(run)) or "-"
        lines.append(
            f"| {_cell(run.name)} | {_cell(run.status)} | {run.seconds:.1f} | {_cell(run.device)} | {_cell(results)} "
            f"| {_cell(names)} |"
        )
    return "\n".join(lines)


def report(runs: Sequence[NotebookRun], *, fast: bool, command: str) -> str:
    failed = [r.name for r in runs if not r.ok]
    total = sum(r.seconds for r in runs)
    summary = f"{count(len(runs), 'notebook')}, {len(runs) - len(failed)} ok, {len(failed)} failed" + (
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
    parser.add_argument("--lectures", type=Path, default=REPO_ROOT / "lectures", help="folder of notebooks")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "build" / "course", help="executed notebooks, results.md"
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
        lectures = find_lectures(args.lectures, only)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    if not lectures:
        print(
            f"No notebook in {args.lectures} matches {only or '*.ipynb'}; check --only / --lectures.",
            file=sys.stderr,
        )
        return 2

    mode = "FAST" if args.fast else "full"
    print(f"Running {count(len(lectures), 'notebook')} in {mode} mode; copies go to {args.out}", flush=True)
    runs = []
    stop = Stop()
    with ctrl_c_stops(stop):
        for path in lectures:
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
            if not run.ok and run.log is not None:  # where to look, on a line of its own
                print(f"      see {' and '.join(str(file) for file in files(run))}", flush=True)
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
