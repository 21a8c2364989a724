"""Execute one notebook as the autograder does and score its graded test cells.

The kernel is started and driven by the autograder's own execute class (``tools.grading.execute``:
nbgrader's Execute with outputs cut to size, without the sandbox) with the course's nbgrader
configuration (per-cell timeout, kernel arguments), and each graded cell is scored by nbgrader's own
``determine_grade`` after its ``IgnorePattern``: a cell loses points on an error, on stderr that is not
a warning, or on a partial-credit result below its points. One kernel per run; cells run in order and
errors do not stop the run (as in autograding).

Run as a worker process so that the caller can bound it in time and kill it (and its kernel, whose
process-group id the worker writes to a file as soon as the kernel is up)::

    python -m tests.mutation.runner SPEC.json RESULT.json

SPEC: {"notebook": path, "cwd": path, "cells": [indices to run, in order], "graded": {index: has visible
test code}, "hidden_lines": {index: [1-based lines inside hidden-test blocks]}, "timeouts": {index: seconds},
"stop": "settled" | "all", "pid_file": path}.
"settled" stops after the first graded cell that loses points on a visible line (both verdicts, killed
and killed by a visible test, are known by then); "all" runs every listed cell.
RESULT: {"cells": {index: {"seconds", "lost", "reason", "visible"}}, "stopped": why or "", "seconds": total}.
"visible": the cell lost its points on a visible line (an error raised there, or stderr or partial credit
in a cell with visible test code), which a student sees before handing in.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat

TIMEOUT_ENAME = "CellTimeoutError"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CELL_FRAME = re.compile(r"Cell In\[\d+\], line (\d+)")


def error_line(cell) -> int | None:
    """The line of the executed cell at which its error was raised (IPython's outermost frame), if any."""
    for out in cell.outputs:
        if out.output_type == "error":
            for frame in out.get("traceback", []):
                found = _CELL_FRAME.search(_ANSI.sub("", frame))
                if found:
                    return int(found.group(1))
    return None


def kernel_env() -> dict[str, str]:
    """The kernel's environment: ours, FAST mode, one BLAS thread, the repository importable, and the
    autograder's NBGRADER_EXECUTION marker."""
    from tools.paths import REPO_ROOT

    env = dict(os.environ)
    env.setdefault("DIGM_FAST", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["NBGRADER_EXECUTION"] = "autograde"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def verdict(cell, ignore) -> tuple[bool, str]:
    """(lost points?, why) for an executed graded code cell, as nbgrader's autograder decides it."""
    from nbgrader.utils import determine_grade

    cell = nbformat.from_dict(json.loads(json.dumps(cell)))  # a copy: IgnorePattern edits in place
    cell, _ = ignore.preprocess_cell(cell, {}, 0)
    score, points = determine_grade(cell)
    if score is None or score >= points:
        return False, ""
    for out in cell.outputs:
        if out.output_type == "error":
            first = (out.evalue or "").strip().split("\n")[0]
            return True, f"{out.ename}: {first}"[:300]
        if out.output_type == "stream" and out.name == "stderr":
            return True, "stderr: " + out.text.strip().split("\n")[0][:280]
        if out.output_type == "execute_result":
            return True, f"partial credit {score:g} of {points:g}"
    return True, f"{score:g} of {points:g} points"


def run(spec: dict) -> dict:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbgrader.preprocessors import IgnorePattern

    from tools.grading.config import course_config
    from tools.grading.execute import execute_class

    cfg = course_config()
    ignore = IgnorePattern(config=cfg)
    nb = nbformat.read(spec["notebook"], as_version=4)
    graded = {int(k): v for k, v in spec["graded"].items()}
    hidden_lines = {int(k): set(v) for k, v in spec.get("hidden_lines", {}).items()}
    timeouts = {int(k): v for k, v in spec["timeouts"].items()}
    client = execute_class(None)(config=cfg, shutdown_kernel="immediate")
    client.nb = nb
    client.reset_execution_trackers()
    client._check_assign_resources({"metadata": {"path": spec["cwd"]}})
    result: dict = {"cells": {}, "stopped": "", "seconds": 0.0}
    start = time.perf_counter()
    index = None
    try:
        with client.setup_kernel(env=kernel_env()):
            Path(spec["pid_file"]).write_text(str(client.km.provisioner.pid))
            for index in spec["cells"]:
                cell = nb.cells[index]
                client.timeout = int(timeouts.get(index, cfg.Execute.timeout))
                began = time.perf_counter()
                client.execute_cell(cell, index, store_history=True)
                entry = {"seconds": round(time.perf_counter() - began, 2), "lost": False, "reason": ""}
                timed_out = any(o.output_type == "error" and o.ename == TIMEOUT_ENAME for o in cell.outputs)
                if index in graded:
                    entry["lost"], entry["reason"] = verdict(cell, ignore)
                    line = error_line(cell)
                    entry["visible"] = entry["lost"] and graded[index] and (
                        line is None or line not in hidden_lines.get(index, set()))
                result["cells"][str(index)] = entry
                if timed_out:
                    # The autograder would interrupt and go on; a cell this slow is the mutant's doing, and
                    # what follows an interrupted cell is not worth the wait: the run ends here.
                    result["stopped"] = f"timeout in cell {index} after {client.timeout} s"
                    break
                if spec["stop"] == "settled" and entry.get("visible"):
                    result["stopped"] = "settled"
                    break
    except CellTimeoutError:
        # A cell deaf to the interrupt (a C loop, SIGINT ignored): nbclient gives up waiting for its output.
        result["stopped"] = f"timeout in cell {index} after {client.timeout} s (the interrupt did not stop it)"
    except DeadKernelError as err:
        result["stopped"] = f"kernel died in cell {index}: {err}"[:300]
    except Exception as err:  # reported, never counted as a kill: the caller marks the run as broken
        result["stopped"] = f"runner error in cell {index}: {type(err).__name__}: {err}"[:300]
        result["runner_error"] = True
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def main(argv: list[str]) -> int:
    spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text())
    result = run(spec)
    Path(result_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
