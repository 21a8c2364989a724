"""Mutation test of the graders: how many single-site changes of the solutions lose at least one point?

For each solution region of an assignment (``solutions/<id>/<id>.ipynb``), ``operators`` makes every
single-site mutant; a seeded sample of them is scored, each in one fresh kernel: the solution notebook
with the mutated answer cell, executed as the autograder executes a submission (FAST mode, its execute
class, its per-cell timeout, errors do not stop the run; see ``runner``). A mutant is *killed* when at
least one graded test cell (visible or hidden) loses points, *killed by a visible test* when a visible
one does; a cell that runs past the timeout kills it too (the autograder would time out). Mutants
whose text does not parse as the intended tree are invalid and excluded.

Only what can change a verdict is run: every code cell up to the last graded cell (the ungraded plots
after it never count), in order, so the report lists every graded cell a mutant costs. ``--settle``
stops a run once a visible graded cell has lost points (both verdicts are settled then; the list of
cells ends there). The unmutated notebook is run first and must keep all its points.

Survivors are matched against ``verdicts.SURVIVORS`` (a reviewed list: equivalent or not, and why);
the report gives the killed share of all valid mutants and of the non-equivalent ones. Results are
cached under ``build/mutation/`` by notebook and mutant, so an interrupted run resumes (``--fresh``
starts over). Run by hand, from the repository root::

    PYTHONPATH=. DIGM_DATA_DIR=... DIGM_OFFLINE=1 .venv/bin/python -m tests.mutation.mutate \\
        --assignment a1_estimators --sample 60 --seed 0 --out results/mutation_a1_estimators.md

``--list`` prints the mutants and exits; ``--cells GRADE_ID ...`` keeps the mutants of some answer cells;
``--part-only`` runs only up to the mutated part's own tests (quicker; later parts can then no longer
kill the mutant, so the report says so).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from tests.mutation import operators
from tests.mutation.operators import Mutant
from tests.mutation.verdicts import SURVIVORS, Verdict

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = REPO_ROOT / "build" / "mutation"
HIDDEN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


# --------------------------------------------------------------------------------------------
# The notebook: which cells are graded, which run


@dataclass
class Layout:
    """Where things are in one assignment notebook."""

    nb: nbformat.NotebookNode
    graded: dict[int, bool]  # code cell index -> it has visible test code (not only hidden tests and comments)
    hidden_lines: dict[int, list[int]]  # graded cell index -> its lines (1-based) inside hidden-test blocks
    names: dict[int, str]  # cell index -> grade_id (or "cellN")
    code: list[int]  # code cells up to and including the last graded one

    @classmethod
    def of(cls, nb: nbformat.NotebookNode) -> Layout:
        graded, hidden_lines, names = {}, {}, {}
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            names[index] = meta.get("grade_id", f"cell{index}")
            if cell.cell_type == "code" and meta.get("grade") and meta.get("points"):
                hidden, visible = split_hidden(cell.source)
                graded[index], hidden_lines[index] = bool(visible), hidden
        last = max(graded)
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and i <= last]
        return cls(nb, graded, hidden_lines, names, code)

    def part_end(self, answer: int) -> int:
        """The last graded cell before the next solution cell after ``answer`` (its part's tests)."""
        later_answers = [i for i in self.code if i > answer and operators.BEGIN in self.nb.cells[i].source]
        stop = min(later_answers) if later_answers else len(self.nb.cells)
        tests = [i for i in self.graded if answer < i < stop]
        return max(tests) if tests else answer


def split_hidden(source: str) -> tuple[list[int], list[int]]:
    """(lines inside hidden-test blocks, markers included; visible lines of code) of a test cell, 1-based.

    A test cell may hold a visible test and a hidden re-check after it (a1, a2): a failure is visible
    when it is raised on a visible line, which is what a student running the released notebook sees."""
    hidden, visible, inside = [], [], False
    for number, line in enumerate(source.splitlines(), start=1):
        text = line.strip()
        if text == HIDDEN:
            inside = True
        if inside:
            hidden.append(number)
        elif text and not text.startswith("#"):
            visible.append(number)
        if text == HIDDEN_END:
            inside = False
    return hidden, visible


def notebook_path(assignment: str) -> Path:
    return REPO_ROOT / "solutions" / assignment / f"{assignment}.ipynb"


def fingerprint(nb: nbformat.NotebookNode) -> str:
    """A hash of what decides a run's outcome: the notebook's code, the course's utils, the grading
    configuration and execute class, and the runner (a mutant's own text is in its key). The report's
    layout and the reviewed verdicts are not in it: changing them reuses the runs."""
    digest = hashlib.sha1()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode())
    for path in [*sorted((REPO_ROOT / "utils").rglob("*.py")), REPO_ROOT / "nbgrader_config.py",
                 REPO_ROOT / "tools" / "grading" / "execute.py", Path(__file__).with_name("runner.py")]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# One run: a worker process with one kernel


@dataclass
class Outcome:
    """The scored run of one mutant (or of the unmutated notebook)."""

    lost: dict[str, str] = field(default_factory=dict)  # grade_id -> why it lost points
    visible_lost: list[str] = field(default_factory=list)
    timeout: str = ""  # the timeout that ended the run, if any
    broken: str = ""  # the run itself failed (runner error, hung worker): not scored
    note: str = ""  # how the run ended otherwise (settled, kernel died)
    seconds: float = 0.0
    cell_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def killed(self) -> bool:
        return bool(self.lost or self.timeout)

    @property
    def killed_visible(self) -> bool:
        return bool(self.visible_lost)


def _kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (a kernel or worker this tool started), by id."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def run_notebook(nb: nbformat.NotebookNode, layout: Layout, cells: list[int], *, stop: str, cell_timeout: int,
                 run_timeout: float) -> Outcome:
    """Execute ``cells`` of ``nb`` in a fresh kernel (a worker process) and score the graded ones."""
    work = Path(tempfile.mkdtemp(prefix="digm-mutant-"))
    try:
        notebook = work / "notebook.ipynb"
        nbformat.write(nb, notebook)
        spec = {
            "notebook": str(notebook), "cwd": str(work), "cells": cells, "stop": stop,
            "graded": {str(i): v for i, v in layout.graded.items()},
            "hidden_lines": {str(i): v for i, v in layout.hidden_lines.items()},
            "timeouts": {str(i): cell_timeout for i in cells},
            "pid_file": str(work / "kernel.pid"),
        }
        (work / "spec.json").write_text(json.dumps(spec))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        began = time.perf_counter()
        with open(work / "worker.log", "wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tests.mutation.runner", str(work / "spec.json"), str(work / "result.json")],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            try:
                worker.wait(timeout=run_timeout)
                hung = False
            except subprocess.TimeoutExpired:
                hung = True
            finally:
                # The kernel leads its own process group: end it by its id, then the worker by its own.
                if (work / "kernel.pid").exists():
                    with contextlib.suppress(ValueError):
                        _kill_group(int((work / "kernel.pid").read_text()))
                if worker.poll() is None:
                    _kill_group(worker.pid)
                    worker.wait()
        seconds = time.perf_counter() - began
        if hung or not (work / "result.json").exists():
            tail = (work / "worker.log").read_text(errors="replace")[-500:]
            why = f"the worker ran past {run_timeout:.0f} s" if hung else f"the worker exited without a result: {tail}"
            return Outcome(broken=why, seconds=round(seconds, 1))
        result = json.loads((work / "result.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    outcome = Outcome(seconds=round(seconds, 1))
    for index, entry in result["cells"].items():
        index = int(index)
        outcome.cell_seconds[layout.names[index]] = entry["seconds"]
        if entry["lost"]:
            outcome.lost[layout.names[index]] = entry["reason"]
            if entry.get("visible", layout.graded[index]):
                outcome.visible_lost.append(layout.names[index])
    stopped = result.get("stopped", "")
    if result.get("runner_error"):
        outcome.broken = stopped
    elif stopped.startswith("timeout"):
        outcome.timeout = stopped
    elif stopped:
        outcome.note = stopped
    if stopped.startswith("kernel died") and not outcome.lost:
        # Every graded cell after a dead kernel loses its points in autograding.
        outcome.lost["(kernel died)"] = stopped
    return outcome


# --------------------------------------------------------------------------------------------
# The whole assignment


@dataclass
class Scored:
    mutant: Mutant
    outcome: Outcome | None  # None: invalid, not run
    verdict: Verdict | None = None  # for survivors: the reviewed classification, if any


def mutated_notebook(nb: nbformat.NotebookNode, mutant: Mutant) -> nbformat.NotebookNode:
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    copy.cells[mutant.cell_index].source = mutant.source
    return copy


def choose(mutants: list[Mutant], sample: int, seed: int) -> list[Mutant]:
    """A seeded sample (all when ``sample`` is 0 or at least the population), in notebook order."""
    if sample <= 0 or sample >= len(mutants):
        return list(mutants)
    picked = set(random.Random(seed).sample(range(len(mutants)), sample))
    return [m for i, m in enumerate(mutants) if i in picked]


def load_cache(path: Path, print_key: str) -> dict[str, Outcome]:
    cached = {}
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                if entry["fingerprint"] == print_key:
                    cached[entry["key"]] = Outcome(**entry["outcome"])
    return cached


def survivor_verdict(mutant: Mutant) -> Verdict | None:
    return SURVIVORS.get((mutant.grade_id, mutant.after.strip()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation.mutate", description=__doc__.split("\n")[0])
    parser.add_argument("--assignment", action="append", help="assignment id (repeatable; default: all)")
    parser.add_argument("--sample", type=int, default=60, help="mutants per assignment (0: all; default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cells", nargs="*", help="only the mutants of these answer cells (grade ids)")
    parser.add_argument("--out", help="report file (with one --assignment; default results/mutation_<id>.md)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants scored at once (one kernel each)")
    parser.add_argument("--cell-timeout", type=int, help="seconds per cell (default: the autograder's)")
    parser.add_argument("--settle", action="store_true",
                        help="stop a run once a visible test loses points (quicker; lists fewer cells)")
    parser.add_argument("--part-only", action="store_true", help="run only up to the mutated part's own tests")
    parser.add_argument("--fresh", action="store_true", help="ignore cached results")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--no-report", action="store_true", help="print the summary only")
    args = parser.parse_args(argv)

    assignments = args.assignment or sorted(p.name for p in (REPO_ROOT / "solutions").iterdir() if p.is_dir())
    if args.out and len(assignments) != 1:
        parser.error("--out needs exactly one --assignment")
    status = 0
    for assignment in assignments:
        status |= mutate_assignment(assignment, args, " ".join(["python -m tests.mutation.mutate", *(argv or sys.argv[1:])]))
    return status


def mutate_assignment(assignment: str, args, command: str) -> int:
    from tools.grading.config import course_config

    nb = nbformat.read(notebook_path(assignment), as_version=4)
    layout = Layout.of(nb)
    population = operators.notebook_mutants(nb)
    if args.cells:
        population = [m for m in population if m.grade_id in args.cells]
    picked = choose(population, args.sample, args.seed)
    if args.list:
        for m in picked:
            print(f"{m.key}  {m.kind:9s} {m.description:40s} | {m.after.strip() if m.valid else '(invalid)'}")
        return 0
    cell_timeout = args.cell_timeout or int(course_config().Execute.timeout)
    stop = "settled" if args.settle else "all"
    key = fingerprint(nb) + ("-part" if args.part_only else "") + ("-settle" if args.settle else "") + f"-t{cell_timeout}"
    cache_path = CACHE / assignment / "results.jsonl"
    cached = {} if args.fresh else load_cache(cache_path, key)
    cache_path.parent.mkdir(parents=True, exist_ok=True)

    print(f"{assignment}: {len(population)} mutants, {len(picked)} picked (seed {args.seed}); "
          f"{sum(m.key in cached for m in picked)} cached", flush=True)
    started = time.perf_counter()
    baseline_cells = layout.code
    if args.part_only and args.cells:
        answers = sorted({m.cell_index for m in picked})
        baseline_cells = [i for i in layout.code if i <= max(layout.part_end(a) for a in answers)] if answers else []
    baseline = cached.get("baseline")
    if baseline is None:
        baseline = run_notebook(nb, layout, baseline_cells, stop="all", cell_timeout=cell_timeout,
                                run_timeout=len(baseline_cells) * cell_timeout)
    if baseline.killed or baseline.broken:
        print(f"{assignment}: the unmodified solution does not keep all its points ({baseline.lost or baseline.timeout}"
              f"{baseline.broken}); fix that first", file=sys.stderr)
        return 1
    _append(cache_path, key, "baseline", baseline)
    print(f"  unmodified solution: full marks in {baseline.seconds:.0f} s", flush=True)
    # No run may take more than a generous multiple of the clean one, plus one cell's timeout.
    run_timeout = 3 * baseline.seconds + cell_timeout + 120

    def score(mutant: Mutant) -> Scored:
        if not mutant.valid:
            return Scored(mutant, None)
        if mutant.key in cached:
            return Scored(mutant, cached[mutant.key])
        cells = layout.code
        if args.part_only:
            cells = [i for i in layout.code if i <= layout.part_end(mutant.cell_index)]
        outcome = run_notebook(mutated_notebook(nb, mutant), layout, cells, stop=stop, cell_timeout=cell_timeout,
                               run_timeout=run_timeout)
        if not outcome.broken:
            _append(cache_path, key, mutant.key, outcome)
        return Scored(mutant, outcome)

    results: list[Scored] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for number, scored in enumerate(pool.map(score, picked), start=1):
            if scored.outcome is not None and not scored.outcome.killed and not scored.outcome.broken:
                scored.verdict = survivor_verdict(scored.mutant)
            results.append(scored)
            print(f"  [{number}/{len(picked)}] {_line(scored)}", flush=True)
    elapsed = time.perf_counter() - started
    summary = Summary.of(results)
    print(f"{assignment}: {summary.text()}", flush=True)
    if not args.no_report:
        out = Path(args.out) if args.out else REPO_ROOT / "results" / f"mutation_{assignment}.md"
        out.write_text(report(assignment, args, command, population, results, baseline, elapsed, cell_timeout))
        print(f"  report: {out}", flush=True)
    return 0


def _append(path: Path, key: str, mutant_key: str, outcome: Outcome) -> None:
    with open(path, "a") as stream:
        stream.write(json.dumps({"fingerprint": key, "key": mutant_key, "outcome": asdict(outcome)}) + "\n")


def _line(scored: Scored) -> str:
    m, o = scored.mutant, scored.outcome
    what = f"{m.grade_id} l.{m.line} {m.kind}: {m.description}"
    if o is None:
        return f"{what}: invalid"
    if o.broken:
        return f"{what}: NOT SCORED ({o.broken})"
    if o.killed:
        first = next(iter(o.lost), "") or "timeout"
        return f"{what}: killed by {first}{' (visible)' if o.killed_visible else ''}, {o.seconds:.0f} s"
    v = scored.verdict
    label = "unreviewed" if v is None else ("equivalent" if v.equivalent else "not equivalent")
    return f"{what}: SURVIVED ({label}), {o.seconds:.0f} s"


# --------------------------------------------------------------------------------------------
# Summary and report


@dataclass
class Summary:
    picked: int
    invalid: int
    broken: int
    valid: int
    killed: int
    killed_visible: int
    timeouts: int
    equivalent: int
    survivors: int

    @classmethod
    def of(cls, results: list[Scored]) -> Summary:
        scored = [r for r in results if r.outcome is not None and not r.outcome.broken]
        survivors = [r for r in scored if not r.outcome.killed]
        return cls(
            picked=len(results),
            invalid=sum(r.outcome is None for r in results),
            broken=sum(r.outcome is not None and bool(r.outcome.broken) for r in results),
            valid=len(scored),
            killed=sum(r.outcome.killed for r in scored),
            killed_visible=sum(r.outcome.killed_visible for r in scored),
            timeouts=sum(bool(r.outcome.timeout) for r in scored),
            equivalent=sum(r.verdict is not None and r.verdict.equivalent for r in survivors),
            survivors=len(survivors),
        )

    @property
    def non_equivalent(self) -> int:
        return self.valid - self.equivalent

    def text(self) -> str:
        return (f"{self.killed}/{self.valid} valid mutants killed ({_pct(self.killed, self.valid)}), "
                f"{self.killed_visible} by a visible test ({_pct(self.killed_visible, self.valid)}); "
                f"{self.survivors} survived ({self.equivalent} equivalent); of the non-equivalent, "
                f"{_pct(self.killed, self.non_equivalent)} killed, {_pct(self.killed_visible, self.non_equivalent)} "
                f"by a visible test")


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "n/a"


def _code(text: str) -> str:
    return "`" + text.strip().replace("`", "'").replace("|", "\\|") + "`"


def machine() -> str:
    import torch

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError, AttributeError):
        load = ", load average at the end {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu or 'unknown CPU'}){load}; "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "solutions", "utils"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (solutions/ or utils/ modified)" if dirty else "")


def report(assignment: str, args, command: str, population: list[Mutant], results: list[Scored],
           baseline: Outcome, elapsed: float, cell_timeout: int) -> str:
    s = Summary.of(results)
    scored = [r for r in results if r.outcome is not None and not r.outcome.broken]
    times = [r.outcome.seconds for r in scored]
    lines = [
        f"# Mutation test of the graders: {assignment}",
        "",
        f"Made by `tests/mutation/mutate.py` on {dt.date.today().isoformat()}, commit {git_commit()}.",
        f"Machine: {machine()}.",
        "",
        f"Command: `PYTHONPATH=. DIGM_FAST=1 OMP_NUM_THREADS=1 {command}`",
        "",
        "Each mutant is one single-site change of one solution region (see `tests/mutation/operators.py`); it is "
        "scored by executing the solution notebook with the mutated answer cell in a fresh kernel, as the "
        "autograder executes a submission (FAST mode, the autograder's execute class and per-cell timeout, "
        "nbgrader's own scoring of each graded cell). *Killed*: at least one graded test cell loses points; "
        "*by a visible test*: a visible one does. "
        + ("Each run stopped after the mutated part's own tests (`--part-only`): later parts could not kill. "
           if args.part_only else
           "Every code cell up to the last graded one runs, in order"
           + ("; a run stops once a visible test has lost points (`--settle`: both verdicts are settled then), "
              "so the lists of failing cells below end there. " if args.settle else
              ", so the lists below name every graded cell a mutant costs. "))
        + f"Per-cell timeout {cell_timeout} s"
        + ("." if args.cell_timeout else " (the autograder's `c.Execute.timeout`)."),
        "",
        "## Numbers",
        "",
        "| | mutants | share |",
        "|---|---:|---:|",
        f"| generated (all single-site mutants of the solution regions) | {len(population)} | |",
        f"| sampled (seed {args.seed}) | {s.picked} | |",
        f"| invalid (do not parse as intended; excluded) | {s.invalid} | |",
        f"| not scored (the run itself failed) | {s.broken} | |",
        f"| valid, scored | {s.valid} | |",
        f"| killed (at least one graded cell loses points) | {s.killed} | {_pct(s.killed, s.valid)} |",
        f"| killed by a visible test | {s.killed_visible} | {_pct(s.killed_visible, s.valid)} |",
        f"| of which killed by the per-cell timeout | {s.timeouts} | |",
        f"| survived | {s.survivors} | |",
        f"| survived, reviewed as equivalent | {s.equivalent} | |",
        f"| **killed, share of the non-equivalent** | {s.killed} of {s.non_equivalent} | "
        f"**{_pct(s.killed, s.non_equivalent)}** |",
        f"| **killed by a visible test, share of the non-equivalent** | {s.killed_visible} of {s.non_equivalent} | "
        f"**{_pct(s.killed_visible, s.non_equivalent)}** |",
        "",
        f"Time: the unmodified notebook {baseline.seconds:.0f} s; per mutant median "
        f"{statistics.median(times) if times else 0:.0f} s, mean {statistics.mean(times) if times else 0:.0f} s, "
        f"max {max(times, default=0):.0f} s (worker start, kernel start and every cell, with {args.jobs} at once "
        f"on this machine); {sum(times) / 60:.0f} min of runs in all"
        + (f", this invocation {elapsed / 60:.0f} min." if elapsed >= 60 else " (reused from the cache by this invocation)."),
        "",
        "## By kind of change",
        "",
        "| kind | generated | scored | killed | by a visible test | survived |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by_kind = collections.Counter(m.kind for m in population)
    for kind in operators.KINDS:
        group = [r for r in scored if r.mutant.kind == kind]
        if not by_kind[kind]:
            continue
        lines.append(f"| {kind} | {by_kind[kind]} | {len(group)} | {sum(r.outcome.killed for r in group)} | "
                     f"{sum(r.outcome.killed_visible for r in group)} | {sum(not r.outcome.killed for r in group)} |")
    lines += ["", "## By answer cell", "", "| answer cell | generated | scored | killed | by a visible test | survived |",
              "|---|---:|---:|---:|---:|---:|"]
    for grade_id in dict.fromkeys(m.grade_id for m in population):
        group = [r for r in scored if r.mutant.grade_id == grade_id]
        lines.append(f"| {grade_id} | {sum(m.grade_id == grade_id for m in population)} | {len(group)} | "
                     f"{sum(r.outcome.killed for r in group)} | {sum(r.outcome.killed_visible for r in group)} | "
                     f"{sum(not r.outcome.killed for r in group)} |")
    survivors = [r for r in scored if not r.outcome.killed]
    lines += ["", "## Survivors", "", "Classified in `tests/mutation/verdicts.py` (reviewed by hand; the reason is "
              "given, read it before trusting the share above).", ""]
    if not survivors:
        lines.append("None.")
    for r in survivors:
        m, v = r.mutant, r.verdict
        label = ("**unreviewed**: counted as not equivalent" if v is None else
                 ("equivalent" if v.equivalent else "**not equivalent**"))
        lines += [
            f"- `{m.key}`, {m.grade_id} line {m.line}, {m.kind} ({m.description}): {label}.",
            f"  - before: {_code(m.before)}",
            f"  - after: {_code(m.after)}",
        ]
        if v is not None:
            lines.append(f"  - why: {v.reason}")
            if v.killer:
                lines.append(f"  - to kill it: {v.killer}")
    broken = [r for r in results if r.outcome is not None and r.outcome.broken]
    if broken:
        lines += ["", "## Not scored", ""]
        lines += [f"- `{r.mutant.key}` {r.mutant.grade_id} ({r.mutant.description}): {r.outcome.broken}" for r in broken]
    hidden_only = [r for r in scored if r.outcome.killed and not r.outcome.killed_visible]
    lines += ["", "## Killed by hidden tests only", "",
              "The visible tests miss these; a student sees them only in the feedback.", ""]
    if not hidden_only:
        lines.append("None.")
    for r in hidden_only:
        m, o = r.mutant, r.outcome
        reason = next(iter(o.lost.values()), "") if o.lost else o.timeout
        lines.append(f"- `{m.key}`, {m.grade_id} line {m.line}, {m.kind} ({m.description}): {_code(m.after)}; "
                     f"lost {', '.join(o.lost) or 'the timeout'}: {_code(reason[:160])}")
    lines += ["", "## Killed mutants", "",
              "The graded cells each mutant loses (visible, hidden), the first one's reason, and the run's time.", "",
              "| mutant | cell, line | change | visible tests lost | hidden tests lost | first reason | s |",
              "|---|---|---|---|---|---|---:|"]
    for r in scored:
        if not r.outcome.killed:
            continue
        m, o = r.mutant, r.outcome
        visible = ", ".join(g for g in o.lost if g in o.visible_lost) or "-"
        hidden = ", ".join(g for g in o.lost if g not in o.visible_lost) or "-"
        reason = (next(iter(o.lost.values()), "") if o.lost else o.timeout)[:120]
        lines.append(f"| `{m.key}` | {m.grade_id} l.{m.line} | {m.kind}: {_code(m.after)} | {visible} | {hidden} | "
                     f"{_code(reason) if reason else ''} | {o.seconds:.0f} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
