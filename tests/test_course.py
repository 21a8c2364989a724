"""tools.course (`make course`): runs notebooks, collects [result] lines, reports failures, exits non-zero."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest

from tools import course, notebooks

SETUP = "from utils import runtime\nprint(runtime.describe(runtime.get_device('cpu')))"
REPORT = "runtime.report_result('answer', 42.5, 'nats')\nruntime.report_result('fast_flag', float(runtime.is_fast()))"


def write_notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nb, path)


def run_fast_course(lectures: Path, out: Path, *limits: str) -> tuple[int, str]:
    """`make course --fast` over `lectures` into `out` with the given limits: (exit code, what it printed)."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = course.main(["--fast", "--lectures", str(lectures), "--out", str(out), *limits])
    return code, stdout.getvalue()


# The first line of a real failure message: its end is the fix, so the runner must not cut it.
LONG_ERROR = (
    "deliberately broken: DIGM_DEVICE=cuda but this machine has no CUDA device; install a CUDA build "
    "of torch, or unset DIGM_DEVICE to fall back to the CPU"
)
KERNEL_LOG_LINE = "get_ipython().kernel.log.error('kernel log line: KeyboardInterrupt caught in kernel')"


class CourseRun(NamedTuple):
    code: int
    stdout: str
    stderr: str
    out: Path


@pytest.fixture(scope="module")
def course_run(tmp_path_factory) -> CourseRun:
    """One `python -m tools.course --fast` over a folder with a good notebook and a failing one whose
    kernel writes a log line (as a real kernel does on an interrupt); its terminal output is kept."""
    root = tmp_path_factory.mktemp("course")
    lectures = root / "lectures"
    lectures.mkdir()
    write_notebook(lectures / "01_good.ipynb", SETUP, REPORT)
    broken = f"raise ValueError({LONG_ERROR + chr(10) + 'more'!r})"  # the second line is not for the table
    write_notebook(lectures / "02_broken.ipynb", KERNEL_LOG_LINE, broken)
    out = root / "build"
    command = [sys.executable, "-m", "tools.course", "--fast", "--lectures", str(lectures), "--out", str(out)]
    done = subprocess.run([*command, "--timeout", "120"], capture_output=True, text=True, timeout=600)
    return CourseRun(done.returncode, done.stdout, done.stderr, out)


def row_of(text: str, name: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| {name} |")]
    assert rows, f"no table row for {name} in:\n{text}"
    return rows[0]


def test_results_of_a_notebook_reach_its_table_row(course_run):
    row = row_of(course_run.stdout, "01_good")
    assert "| ok |" in row, f"the good notebook is not reported ok: {row}"
    assert "answer = 42.5 nats" in row, f"the [result] line was not collected: {row}"
    assert "| cpu |" in row, f"the device from runtime.describe is missing: {row}"


def test_fast_flag_reaches_the_kernel(course_run):
    assert "fast_flag = 1" in row_of(course_run.stdout, "01_good"), "--fast did not set DIGM_FAST=1 in the kernel"


def test_a_failing_notebook_is_a_row_and_the_exit_code_is_nonzero(course_run):
    row = row_of(course_run.stdout, "02_broken")
    assert "failed: ValueError: deliberately broken" in row, f"failure not reported: {row}"
    assert course_run.code == 1, f"exit code {course_run.code} after a failing notebook; expected 1"


def test_a_failure_shows_the_whole_first_line_of_its_error(course_run):
    # The end of an error message is often the fix ("... unset DIGM_DEVICE to fall back to the CPU").
    progress = [line for line in course_run.stdout.splitlines() if line.startswith("  02_broken.ipynb ...")]
    table = (course_run.out / "results.md").read_text()
    for where, text in (("progress line", "\n".join(progress)), ("results.md row", row_of(table, "02_broken"))):
        assert f"failed: ValueError: {LONG_ERROR}" in text, f"the {where} cut the error short: {text}"
        assert "more" not in text, f"the {where} shows more than the error's first line: {text}"


def test_the_kernels_log_goes_to_a_file_that_a_failure_names(course_run):
    log = course_run.out / "02_broken.kernel.log"
    assert log.is_file() and "KeyboardInterrupt caught in kernel" in log.read_text(), (
        f"the kernel's log line did not reach {log.name}"
    )
    terminal = course_run.stdout + course_run.stderr
    assert "KeyboardInterrupt caught in kernel" not in terminal, (
        f"the kernel's log line landed among the progress lines:\n{terminal}"
    )
    assert f"see {course_run.out / '02_broken.failed.ipynb'} and {log}" in course_run.stdout, (
        f"the failure does not name its partial copy and the kernel's log:\n{course_run.stdout}"
    )
    assert "02_broken.failed.ipynb, 02_broken.kernel.log" in row_of(course_run.stdout, "02_broken")


def test_results_md_and_executed_notebooks_are_written(course_run):
    out = course_run.out
    text = (out / "results.md").read_text()
    assert row_of(course_run.stdout, "01_good") in text, "results.md lacks the table printed on stdout"
    assert "FAST" in text and "1 failed (02_broken)" in text, f"results.md header is off:\n{text}"
    executed = nbformat.read(out / "01_good.ipynb", as_version=4)
    assert executed.cells[1].outputs, "the executed copy carries no outputs"
    assert not (out / "02_broken.ipynb").exists(), "a failed run was put where the copy of a good run goes"


def test_counts_of_notebooks_are_in_good_english(course_run, tmp_path):
    assert "Running 2 notebooks in FAST mode" in course_run.stdout, course_run.stdout.splitlines()[0]
    assert "; 2 notebooks, 1 ok, 1 failed" in (course_run.out / "results.md").read_text()
    write_notebook(tmp_path / "01_only.ipynb", "print('never run')")
    code, printed = run_fast_course(tmp_path, tmp_path / "out", "--budget", "1e-9")  # spent before it starts
    assert code == 1 and "Running 1 notebook in FAST mode" in printed, printed
    assert "; 1 notebook, 0 ok, 1 failed" in (tmp_path / "out" / "results.md").read_text()


def test_a_rerun_that_fails_keeps_the_good_copy_of_an_earlier_run(tmp_path):
    lectures, out = tmp_path / "lectures", tmp_path / "out"
    lectures.mkdir()

    def outputs(name: str) -> str:
        return "".join(o.get("text", "") for c in nbformat.read(out / name, as_version=4).cells for o in c.outputs)

    write_notebook(lectures / "03_vae.ipynb", "print('first run, ok')")
    assert run_fast_course(lectures, out)[0] == 0
    write_notebook(lectures / "03_vae.ipynb", "print('second run')", "raise ValueError('broken now')")
    code, printed = run_fast_course(lectures, out, "--only", "03")
    assert code == 1 and "first run, ok" in outputs("03_vae.ipynb"), "a failed rerun overwrote the good copy"
    assert "second run" in outputs("03_vae.failed.ipynb"), "the failed run's partial copy was not kept"
    assert "03_vae.failed.ipynb" in row_of(printed, "03_vae"), "the row does not point to the failed run's copy"

    run_fast_course(lectures, out, "--budget", "1e-9")  # stopped before it starts: an unexecuted copy
    assert "first run, ok" in outputs("03_vae.ipynb"), "a stopped rerun overwrote the good copy"
    assert (out / "03_vae.stopped.ipynb").exists() and not (out / "03_vae.failed.ipynb").exists(), (
        "the folder should hold the latest run's partial copy only"
    )

    write_notebook(lectures / "03_vae.ipynb", "print('third run, ok')")
    assert run_fast_course(lectures, out)[0] == 0
    assert "third run, ok" in outputs("03_vae.ipynb"), "a good rerun did not replace the copy"
    left = sorted(p.name for p in out.glob("03_vae.*.ipynb"))
    assert not left, f"stale partial copies after a good run: {left}"


def test_only_keeps_notebooks_by_prefix(tmp_path):
    for name in ("01_a.ipynb", "02_b.ipynb", "03_c.ipynb"):
        write_notebook(tmp_path / name, "1")
    picked = [p.name for p in course.find_lectures(tmp_path, ["01", "03"])]
    assert picked == ["01_a.ipynb", "03_c.ipynb"], f"--only 01 03 picked {picked}"


def test_only_numbered_lectures_are_run(tmp_path):
    for name in ("01_a.ipynb", "Untitled.ipynb", ".hidden.ipynb"):
        write_notebook(tmp_path / name, "1")
    picked = [p.name for p in course.find_lectures(tmp_path)]
    assert picked == ["01_a.ipynb"], f"a scratch notebook would be run by make course: {picked}"


def test_no_matching_notebook_exits_with_a_message(tmp_path, capsys):
    code = course.main(["--lectures", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 2 and "No notebook" in capsys.readouterr().err


WIND_UP = """import pathlib
import time

try:
    time.sleep(60)
except KeyboardInterrupt:  # like fit saving its checkpoint: clean-up that takes a few seconds
    time.sleep(4)
    pathlib.Path("wound_up.txt").write_text("checkpoint saved")
    raise"""


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    """--budget 8 over a notebook whose second cell sleeps a minute, and a second notebook after it."""
    root = tmp_path_factory.mktemp("budget")
    lectures = root / "lectures"
    lectures.mkdir()
    write_notebook(
        lectures / "01_slow.ipynb",
        SETUP + "\nruntime.report_result('early', 1.0)\nimport ipywidgets\nipywidgets.IntSlider(3)",
        WIND_UP,
        "runtime.report_result('late', 2.0)",
    )
    write_notebook(lectures / "02_after.ipynb", "print('ran')")
    out = root / "build"
    start = time.monotonic()
    code, printed = run_fast_course(lectures, out, "--budget", "8")
    return code, printed, out, time.monotonic() - start, lectures


def test_budget_stops_inside_a_cell_and_keeps_what_finished(budget_run):
    code, stdout, out, seconds, _ = budget_run
    row = row_of(stdout, "01_slow")
    assert "stopped: --budget spent in cell 2 of 3" in row, f"the sleeping cell was not stopped: {row}"
    assert "early = 1" in row and "late" not in row, f"results before the stop should be kept, none after: {row}"
    assert seconds < 40, f"--budget 8 let the run go on for {seconds:.0f} s"
    assert code == 1, "a stopped notebook must make the exit code non-zero (the table is incomplete)"
    executed = nbformat.read(out / "01_slow.stopped.ipynb", as_version=4)
    assert executed.cells[0].outputs, "the finished cell's outputs were not saved"


def test_budget_interrupts_the_cell_and_lets_it_wind_up(budget_run):
    _, _, out, _, lectures = budget_run
    marker = lectures / "wound_up.txt"
    assert marker.exists(), (
        "the stopped cell got no KeyboardInterrupt, or was killed during its 4 s of clean-up "
        "(a training cell would lose the checkpoint it saves when interrupted)"
    )
    errors = [o for o in nbformat.read(out / "01_slow.stopped.ipynb", as_version=4).cells[1].outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "KeyboardInterrupt", f"the cell did not end with the interrupt: {errors}"


def test_executed_copies_keep_widget_state(budget_run):
    _, _, out, _, _ = budget_run
    executed = nbformat.read(out / "01_slow.stopped.ipynb", as_version=4)
    state = executed.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    assert state.get("state"), "the executed copy lost its widget state: widgets show 'model not found' and slides a placeholder"


def test_notebooks_after_the_budget_are_reported_not_run(budget_run):
    _, stdout, out, _, _ = budget_run
    row = row_of(stdout, "02_after")
    assert "stopped: --budget spent before it started" in row, f"a notebook after the budget was run: {row}"
    assert (out / "02_after.stopped.ipynb").exists(), "the notebook that was not run has no copy in the output folder"


def test_a_killed_run_leaves_the_cells_that_finished(tmp_path):
    write_notebook(tmp_path / "01_long.ipynb", "print('first cell done')", "import time\ntime.sleep(120)")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.course", "--fast", "--lectures", str(tmp_path), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (out / "01_long.running.ipynb").exists():
            time.sleep(0.5)
        assert (out / "01_long.running.ipynb").exists(), "no executed copy while the notebook was running"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner, as a job limit would (its kernel then exits by itself)
        proc.wait()
    saved = nbformat.read(out / "01_long.running.ipynb", as_version=4)
    text = "".join(o.get("text", "") for o in saved.cells[0].outputs)
    assert "first cell done" in text, "a killed run lost the output of the cell that had finished"


def press_ctrl_c(lectures: Path, out: Path, presses: int) -> tuple[int, str]:
    """Run `python -m tools.course --fast` in the background and, 3 s into the cell after the first one,
    send the runner SIGINT `presses` times, 1 s apart (what the terminal sends it on Ctrl-C).
    Returns the exit code and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.course", "--fast", "--lectures", str(lectures), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (out / "01_slow.running.ipynb").exists():
            time.sleep(0.5)
        assert (out / "01_slow.running.ipynb").exists(), "the first cell never finished"
        time.sleep(3)  # the second cell is running now
        for press in range(presses):
            time.sleep(1 if press else 0)
            proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stderr


def test_ctrl_c_interrupts_the_cell_keeps_the_table_and_skips_the_rest(tmp_path):
    """Ctrl-C on `make course` reaches the runner only (the kernel has its own session): it must pass the
    interrupt on, let the cell wind up, write the table, and not start the next notebook."""
    write_notebook(tmp_path / "01_slow.ipynb", "print('first cell done')", WIND_UP, "print('late')")
    write_notebook(tmp_path / "02_after.ipynb", "print('ran')")
    out = tmp_path / "out"
    returncode, stderr = press_ctrl_c(tmp_path, out, presses=1)
    assert returncode == 130, f"Ctrl-C should end the run with exit code 130, got {returncode}:\n{stderr[-2000:]}"
    assert (tmp_path / "wound_up.txt").exists(), "the cell got no KeyboardInterrupt, or was killed before it wound up"
    table = (out / "results.md").read_text()
    assert "stopped: Ctrl-C in cell 2 of 3" in row_of(table, "01_slow"), f"wrong status after Ctrl-C:\n{table}"
    assert "stopped: Ctrl-C before it started" in row_of(table, "02_after"), f"the next notebook was run:\n{table}"
    assert "Ctrl-C again stops within seconds" in stderr, "the user was not told what the first Ctrl-C does"


def test_a_cell_past_timeout_is_interrupted_and_winds_up(tmp_path):
    """A cell over --timeout used to fail the notebook with its kernel shut down, which left a training cell
    only jupyter_client's 5 s shutdown wait to save its checkpoint. It must be interrupted like --budget."""
    lectures = tmp_path / "lectures"
    lectures.mkdir()
    write_notebook(lectures / "01_slow.ipynb", "print('first')", WIND_UP, "print('late')")
    code, printed = run_fast_course(lectures, tmp_path / "out", "--timeout", "5")
    row = row_of(printed, "01_slow")
    assert "failed: cell 2 of 3 ran past --timeout 5 s and was interrupted" in row, f"wrong status: {row}"
    assert (lectures / "wound_up.txt").exists(), "the cell over --timeout was not interrupted, or not allowed to wind up"
    assert code == 1, "a notebook stopped by --timeout must make the exit code non-zero"


def test_full_mode_cells_have_no_default_time_limit():
    assert course.cell_timeout(None, fast=False) is None, (
        "full mode must not cut cells off by default: training cells run for hours on a CPU (--budget bounds a run)"
    )
    assert course.cell_timeout(None, fast=True) == course.FAST_CELL_TIMEOUT, "a hung FAST cell must still be caught"
    assert course.cell_timeout(0, fast=True) is None and course.cell_timeout(120, fast=False) == 120


def test_a_second_ctrl_c_stops_at_once_and_still_writes_the_table(tmp_path):
    write_notebook(tmp_path / "01_slow.ipynb", SETUP + "\nruntime.report_result('early', 1.0)", WIND_UP, "print('late')")
    out = tmp_path / "out"
    returncode, stderr = press_ctrl_c(tmp_path, out, presses=2)  # the second while the cell winds up (4 s)
    assert returncode == 130, f"a second Ctrl-C should end the run with 130, got {returncode}:\n{stderr[-2000:]}"
    row = row_of((out / "results.md").read_text(), "01_slow")
    assert "stopped: Ctrl-C twice" in row and "early = 1" in row, f"the table lost the stopped notebook's row: {row}"


def test_ctrl_c_pressed_before_a_notebook_means_it_is_not_started(tmp_path):
    write_notebook(tmp_path / "01_next.ipynb", "print('ran')")
    stop = notebooks.Stop()
    stop.pressed.set()
    run = course.run_notebook(tmp_path / "01_next.ipynb", tmp_path / "out", fast=True, timeout=None, kernel="python3", stop=stop)
    assert run.status == "stopped: Ctrl-C before it started", f"a notebook after Ctrl-C was run: {run.status}"
    assert (tmp_path / "out" / "01_next.stopped.ipynb").exists(), "the notebook that was not run has no copy in the output folder"


def test_a_cell_that_swallows_the_timeout_interrupt_still_fails_the_notebook(tmp_path):
    swallow = "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('caught')"
    write_notebook(tmp_path / "01_slow.ipynb", swallow, "print('late')")
    out = tmp_path / "out"
    code, printed = run_fast_course(tmp_path, out, "--timeout", "3")
    row = row_of(printed, "01_slow")
    assert "failed: cell 1 of 2 ran past --timeout 3 s and was interrupted" in row, f"wrong status: {row}"
    late = nbformat.read(out / "01_slow.failed.ipynb", as_version=4).cells[1].outputs
    assert not late and code == 1, "the notebook went on after a cell was cut short by --timeout"


def test_a_negative_timeout_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        course.main(["--lectures", str(tmp_path), "--timeout", "-5"])
    assert stopped.value.code == 2 and "--timeout must be" in capsys.readouterr().err


class MissedWakeUps:
    """A kernel channel whose message is queued, but whose first `misses` waits do not see it (the
    asyncio/ZMQ race that left nbclient waiting forever on an idle kernel)."""

    def __init__(self, misses: int):
        self.misses, self.waits = misses, []

    async def get_msg(self, timeout=None):
        from queue import Empty

        self.waits.append(timeout)
        if len(self.waits) <= self.misses:
            if timeout is None:
                raise AssertionError("an unbounded wait that misses its wake-up never returns")
            raise Empty
        return {"msg_type": "execute_reply"}


def test_a_wait_without_limit_looks_again_until_the_queued_message_is_seen():
    import asyncio

    channel = MissedWakeUps(misses=3)
    notebooks.poll_in_slices(channel, step=0.01)
    assert asyncio.run(channel.get_msg(timeout=None)) == {"msg_type": "execute_reply"}
    assert len(channel.waits) == 4 and all(t is not None and t <= 0.01 for t in channel.waits), channel.waits


def test_a_wait_with_a_limit_still_ends_with_empty_at_that_limit():
    import asyncio
    from queue import Empty

    channel = MissedWakeUps(misses=10**6)
    notebooks.poll_in_slices(channel, step=0.01)
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(channel.get_msg(timeout=0.05))
    assert 0.04 <= time.monotonic() - start < 1.0, "the limit given by nbclient must still hold"
