"""The grading sandbox against hostile submissions: real nbgrader, real kernels, one grading run.

A temporary course (as in test_grading.py) gets an honest a1 submission and six attackers, graded
together by one `grade` command with a short per-cell timeout:

* ``snoop`` (otherwise the solutions) tries, each attempt caught and printed: to set every manual
  score in the gradebook to 999 with sqlite3; to find solutions/, notebooks, databases and the
  hidden tests anywhere it can read; to connect to a port this test listens on at 127.0.0.1; to
  write into the course, the repository's utils/, /etc and its own socket folder; to read the
  grader's environment; to allocate 10 GB. It must end with every test point, having got nothing.
* ``rowdy`` (the solutions too) prints 100 MB, leaves a 10 GB allocation and a sleep forever in
  answer cells: every test point, a small feedback page, one timeout.
* ``forkbomb``, ``exits`` (``os._exit(0)``) and ``deaf`` (ignores the interrupt and sleeps) must
  fail with a reason, within seconds or one timeout, and take nothing else down.

Throughout, the honest submission keeps its exact scores and no file of the course outside
grading/ (nor the repository's utils/) changes. Then, each limit in a bare sandboxed kernel (no
nbgrader): a fork bomb stopped within seconds, a busy kernel killed at its CPU limit, a full scratch
folder. Grading refuses without a sandbox and ``--unsafe`` then grades. (The output cut itself:
test_grading_output_cut.py.) The attack run takes about a minute, the rest 25 s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import io
import queue
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from conftest import grading_sandbox_problem
from test_grading import A1, ROOT, _append, _hidden_lines, _prepend, cell_scores, make_submission

from tools.grading import config
from tools.grading.__main__ import main as grading_command
from tools.grading.execute import cut_note
from tools.grading.sandbox import GradingSandbox, Sandbox, SandboxedKernelManager

pytestmark = pytest.mark.grading

TIMEOUT = 10  # seconds per cell: a1's slowest cell takes 1-3 s, the sleepers all of it
LIMIT = GradingSandbox().output_chars
SECRET_VARIABLE = "DIGM_GRADER_SECRET"
PROBE = "_sandbox_probe"  # the name of every file an attacker tries to write

SNOOP = """\
def _attacks(course, repo_utils, port, needles):
    import base64, glob, os, socket, sqlite3, sys, time

    def say(name, result):
        print(f"ATTACK {name}: {result}")

    for path in (course + "/grading/gradebook.db", "../../../gradebook.db"):
        try:
            db = sqlite3.connect(path)
            db.execute("UPDATE grade SET manual_score = 999")
            db.commit()
            say("gradebook", "WROTE " + path)
        except Exception as exc:
            say("gradebook", type(exc).__name__)
    say("solutions", glob.glob(course + "/solutions/*/*.ipynb") + glob.glob("../../../../solutions/*/*"))
    skip = {"/proc", "/sys", "/dev", "/usr", os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    hidden = [base64.b64decode(n) for n in needles]
    read, kept, leaks = 0, [], []
    for top, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(top, d)) not in skip]
        for name in files:
            path = os.path.join(top, name)
            if name.endswith((".ipynb", ".db")):
                kept.append(path)
            try:
                if os.path.getsize(path) < 2_000_000:
                    data = open(path, "rb").read()
                    read += 1
                    leaks += [path for h in hidden if h in data]
            except OSError:
                pass
    say("scan", f"{read} files read; notebooks and databases: {kept}; hidden tests in: {leaks}")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        say("network", "CONNECTED")
    except OSError as exc:
        say("network", type(exc).__name__)
    sockets = os.path.dirname([a for a in sys.argv if a.endswith(".json")][0])
    for path in (
        os.path.expanduser("~/scratch-ok"), repo_utils + "/PROBE.py", course + "/assignments/PROBE",
        course + "/PROBE", "../../../../assignments/PROBE", "/etc/PROBE", sockets + "/PROBE",
    ):
        try:
            with open(path, "w") as fh:
                fh.write("x")
            say("write", "WROTE " + path)
        except OSError as exc:
            say("write", f"{type(exc).__name__} {path}")
    say("environment", sorted(os.environ.items()))
    try:
        say("environment", open("/proc/1/environ").read())
    except OSError as exc:
        say("environment", f"/proc/1/environ: {type(exc).__name__}")
    start = time.monotonic()
    try:
        block = bytearray(10 * 2**30)
        say("memory", f"GOT {len(block)} bytes")
    except MemoryError:
        say("memory", f"MemoryError after {time.monotonic() - start:.1f} s")

""".replace("PROBE", PROBE)

ATTACKERS = {
    "forkbomb": "import os\n\nwhile True:\n    os.fork()\n",
    "exits": "import os\n\nos._exit(0)\n",
    "deaf": "import signal, time\n\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(1)\n",
}


def _course_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file of the course outside grading/, and of the repository's utils/ (but
    bytecode caches, which other test processes write while this runs)."""
    files = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "grading"]
    files += [p for p in (ROOT / "utils").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@dataclass
class Attacked:
    root: Path
    exit_code: int
    stdout: str
    stderr: str
    report: dict[str, dict[str, str]]  # student -> report.csv row
    outputs: dict[str, dict[str, str]]  # student -> grade id -> text of the autograded cell's outputs
    connections: int  # connections the listener on the grader's loopback received
    hashes: tuple[dict[str, str], dict[str, str]]  # before, after
    secret: str


def _output_text(outputs) -> str:
    return "".join(
        o.get("text", "") + o.get("ename", "") + ": " + o.get("evalue", "") + str(o.get("data", ""))
        for o in outputs
    )


def _needles(root: Path) -> list[str]:
    """The three longest hidden-test lines, base64-encoded so the attack's own source is no match."""
    longest = sorted(_hidden_lines(root, A1), key=len, reverse=True)[:3]
    return [base64.b64encode(line.encode()).decode() for line in longest]


@pytest.fixture(scope="module")
def attacked(tmp_path_factory) -> Attacked:
    problem = grading_sandbox_problem()
    if problem:  # without the sandbox these submissions would do real damage: never grade them
        pytest.skip(problem)
    root = tmp_path_factory.mktemp("attacked")
    for folder in ("solutions", "assignments"):
        shutil.copytree(ROOT / folder, root / folder)
    shutil.copy(ROOT / config.CONFIG_FILE, root)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    snoop = _prepend(
        SNOOP + f"_attacks({str(root)!r}, {str(ROOT / 'utils')!r}, {port}, {_needles(root)!r})\n\n"
    )
    submissions = {
        "honest": make_submission(root, A1, {}),
        "snoop": make_submission(root, A1, {"a1_log_prob_answer": snoop}),
        "rowdy": make_submission(
            root,
            A1,
            {
                "a1_log_prob_answer": _prepend("print('x' * 100_000_000)\n\n"),
                "a1_sf_answer": _append("\n\nblock = bytearray(10 * 2**30)\n"),
                "a1_var_answer": _append("\n\nimport time\n\ntime.sleep(10**9)\n"),
            },
        ),
    }
    for student, code in ATTACKERS.items():
        nb = make_submission(root, A1, None)
        (cell,) = [c for c in nb.cells if c.id == "a1_log_prob_answer"]
        cell.source = code + "\n" + cell.source
        submissions[student] = nb
    for student, nb in submissions.items():
        folder = root / "grading" / "submitted" / student / A1
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{A1}.ipynb")
    before = _course_hashes(root)
    secret = secrets.token_hex(16)
    out, err = io.StringIO(), io.StringIO()
    try:
        with (
            pytest.MonkeyPatch.context() as mp,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            mp.setenv(SECRET_VARIABLE, secret)
            mp.setenv("DIGM_FAST", "1")
            mp.setenv("OMP_NUM_THREADS", "1")
            code = grading_command(["grade", A1, "--root", str(root), "--timeout", str(TIMEOUT)])
        listener.setblocking(False)
        connections = 0
        with contextlib.suppress(BlockingIOError):
            while listener.accept():
                connections += 1
    finally:
        listener.close()
        (ROOT / "utils" / f"{PROBE}.py").unlink(missing_ok=True)  # only if the sandbox failed
    with open(root / "grading" / "report.csv", newline="") as fh:
        report = {row["student_id"]: row for row in csv.DictReader(fh)}
    outputs = {}
    for notebook in (root / "grading" / "autograded").glob(f"*/{A1}/{A1}.ipynb"):
        cells = nbformat.read(notebook, as_version=4).cells
        outputs[notebook.parts[-3]] = {
            c.metadata["nbgrader"]["grade_id"]: _output_text(c.get("outputs", []))
            for c in cells
            if "grade_id" in c.metadata.get("nbgrader", {})
        }
    hashes = (before, _course_hashes(root))
    return Attacked(root, code, out.getvalue(), err.getvalue(), report, outputs, connections, hashes, secret)


def _attack_lines(attacked: Attacked, name: str) -> list[str]:
    text = attacked.outputs["snoop"]["a1_log_prob_answer"]
    lines = [line for line in text.splitlines() if line.startswith(f"ATTACK {name}: ")]
    assert lines, f"the snoop's {name} attack printed nothing (did it run?); its cell shows:\n{text[:3000]}"
    return [line.split(": ", 1)[1] for line in lines]


@pytest.mark.parametrize("student", ["honest", "snoop", "rowdy"])
def test_honest_code_keeps_every_test_point_beside_the_attackers(attacked, student):
    assert attacked.report[student]["status"] == "graded", f"{student}: {attacked.report[student]}"
    scores = cell_scores(attacked.root, A1, student)
    short = {name: s for name, s in scores.items() if not name.endswith("_written") and s[0] != s[1]}
    assert not short, f"{student} (the solutions) lost points in {short}, graded beside the attackers"


def test_gradebook_write_from_an_answer_cell_reaches_no_gradebook(attacked):
    from nbgrader.api import Gradebook

    results = _attack_lines(attacked, "gradebook")
    assert not [r for r in results if r.startswith("WROTE")], f"the snoop wrote a gradebook: {results}"
    cfg = config.course_config(attacked.root)
    with Gradebook(cfg.CourseDirectory.db_url) as gb:
        tampered = [
            (s.id, g.name)
            for s in gb.students
            for g in gb.find_submission(A1, s.id).notebooks[0].grades
            if g.manual_score is not None
        ]
    assert not tampered, f"manual scores appeared without a grader: {tampered}"


def test_submission_finds_no_solutions_and_no_hidden_tests(attacked):
    (solutions,) = _attack_lines(attacked, "solutions")
    assert solutions == "[]", f"the snoop found solution notebooks: {solutions}"
    (scan,) = _attack_lines(attacked, "scan")
    read = int(scan.split(" files read")[0])
    assert read > 20, f"the scan read only {read} files: it proves nothing ({scan})"
    assert scan.endswith("notebooks and databases: []; hidden tests in: []"), (
        f"the sandbox showed the submission a notebook, a database or the hidden tests: {scan}"
    )


def test_submission_cannot_reach_a_port_on_the_graders_loopback(attacked):
    assert _attack_lines(attacked, "network") != ["CONNECTED"] and attacked.connections == 0, (
        f"the kernel connected to 127.0.0.1 outside the sandbox ({attacked.connections} connections)"
    )


def test_submission_writes_only_to_its_scratch_folder(attacked):
    wrote = [r for r in _attack_lines(attacked, "write") if r.startswith("WROTE")]
    assert wrote == ["WROTE /tmp/student/scratch-ok"], (
        f"the submission should write its home in the scratch /tmp and nowhere else; it wrote {wrote}"
    )


def test_graders_environment_does_not_reach_the_kernel(attacked):
    assert len(_attack_lines(attacked, "environment")) == 2
    leaked = [s for s, cells in attacked.outputs.items() if attacked.secret in "".join(cells.values())]
    assert not leaked, f"{SECRET_VARIABLE} of the grading process was readable by {leaked}"


def test_ten_gigabyte_allocation_fails_at_once(attacked):
    (memory,) = _attack_lines(attacked, "memory")
    assert memory.startswith("MemoryError after") and float(memory.split()[2]) < 2, memory
    assert "MemoryError" in attacked.outputs["rowdy"]["a1_sf_answer"], (
        "an uncaught 10 GB allocation in an answer cell should fail that cell with MemoryError"
    )


def test_hundred_megabytes_of_output_are_cut_and_the_submission_graded(attacked):
    printed = attacked.outputs["rowdy"]["a1_log_prob_answer"]
    assert cut_note(LIMIT).strip() in printed and len(printed) < LIMIT + 1_000, (
        f"the 100 MB print should be cut to {LIMIT:,} characters with a note; {len(printed):,} kept"
    )
    page = attacked.root / "grading" / "feedback" / "rowdy" / A1 / f"{A1}.html"
    assert page.stat().st_size < 1_000_000 and cut_note(LIMIT).strip() in page.read_text(), (
        f"the feedback page is {page.stat().st_size:,} bytes or lacks the cut note"
    )


def test_sleeping_forever_costs_one_timeout_and_nothing_else(attacked):
    assert attacked.report["rowdy"]["notes"].startswith("timeout in a1_var_answer;"), (
        f"the sleep should time out once, in its cell: {attacked.report['rowdy']['notes']}"
    )


@pytest.mark.parametrize(
    ("student", "reason"),
    [
        ("forkbomb", "the kernel was stopped: it reached the sandbox's limit of"),
        ("exits", "the kernel died"),
        ("deaf", "a cell ran past the per-cell timeout and did not stop when interrupted"),
    ],
)
def test_hostile_kernel_fails_its_submission_with_the_reason(attacked, student, reason):
    assert attacked.report[student]["status"] == "failed", f"{student}: {attacked.report[student]}"
    assert f"{student} / {A1}: {reason}" in attacked.stderr, (
        f"the summary should say why {student} failed; it printed:\n{attacked.stderr}"
    )
    assert attacked.exit_code == 1


@dataclass
class BareRun:
    seconds: float  # from the execute request until the kernel died or went idle
    alive: bool
    stop_reason: str  # the kernel manager's, when it stopped the kernel itself
    text: str  # what the cell printed


def _run_in_bare_kernel(tmp_path: Path, code: str, **limits: int) -> BareRun:
    """``code`` in a sandboxed kernel without nbgrader, watched as nbclient does: the manager's
    liveness check every half second (nbclient: every second) until the kernel is idle or dead."""
    problem = grading_sandbox_problem()
    if problem:
        pytest.skip(problem)
    cfg = config.course_config()
    for name, value in limits.items():
        setattr(cfg.GradingSandbox, name, value)
    sandbox = Sandbox.for_course(cfg, tmp_path / "sandbox")

    async def run() -> BareRun:
        km = SandboxedKernelManager(sandbox=sandbox, kernel_name="python3")
        await km.start_kernel(cwd=str(tmp_path))
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            km.lock_down()
            msg_id = kc.execute(code)
            start, text, idle = time.monotonic(), [], False
            while not idle and await km.is_alive() and time.monotonic() - start < 60:
                with contextlib.suppress(queue.Empty):  # nothing for half a second: check liveness
                    while True:
                        msg = await kc.get_iopub_msg(timeout=0.5)
                        if msg["parent_header"].get("msg_id") != msg_id:
                            continue
                        content = msg["content"]
                        text.append(content.get("text", "") + content.get("evalue", ""))
                        idle = content.get("execution_state") == "idle"
                        if idle:
                            break
            return BareRun(time.monotonic() - start, await km.is_alive(), km.stop_reason, "".join(text))
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    return asyncio.run(run())


def test_fork_bomb_is_stopped_within_seconds(tmp_path):
    result = _run_in_bare_kernel(tmp_path, "import os\nwhile True:\n    os.fork()")
    assert not result.alive and result.stop_reason.startswith("it reached the sandbox's limit"), result
    # Unstopped, it would run until this helper's 60 s cap; stopped, it takes 1-3 s on an idle machine and
    # up to about 8 s on two cores busy with other notebooks (seen: 7.6 s at a load average of 13).
    assert result.seconds < 15, f"the fork bomb ran {result.seconds:.1f} s before the process limit stopped it"


def test_cpu_limit_kills_a_busy_kernel(tmp_path):
    result = _run_in_bare_kernel(tmp_path, "while True:\n    pass", cpu_seconds=2)
    assert not result.alive and result.seconds < 15, (
        f"a kernel busy past c.GradingSandbox.cpu_seconds=2 should be killed: {result}"
    )


def test_scratch_folder_is_size_limited(tmp_path):
    code = "try:\n    open('big', 'wb').write(bytes(16 * 2**20))\nexcept OSError as exc:\n    print(exc)"
    result = _run_in_bare_kernel(tmp_path, code, scratch_mb=8)
    assert result.alive and "No space left on device" in result.text, (
        f"16 MB written to an 8 MiB scratch folder should fail: {result}"
    )


def test_grading_changes_no_file_of_the_course(attacked):
    before, after = attacked.hashes
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert not changed, f"grading changed files outside grading/: {changed}"


@dataclass
class Refused:
    message: str
    graded_before: bool
    unsafe_code: int
    unsafe_stdout: str
    report: dict[str, str]


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> Refused:
    """One untouched a1 submission, graded on a PATH without bubblewrap: refused, then --unsafe."""
    root = tmp_path_factory.mktemp("refused")
    for folder in ("solutions", "assignments"):
        shutil.copytree(ROOT / folder, root / folder)
    shutil.copy(ROOT / config.CONFIG_FILE, root)
    folder = root / "grading" / "submitted" / "untouched" / A1
    folder.mkdir(parents=True)
    nbformat.write(make_submission(root, A1, None), folder / f"{A1}.ipynb")
    args = ["grade", A1, "--root", str(root), "--timeout", str(TIMEOUT)]
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", str(Path(sys.executable).parent))  # the venv's tools, no bwrap
        mp.setenv("DIGM_FAST", "1")
        with pytest.raises(SystemExit) as refusal:
            grading_command(args)
        graded_before = (root / "grading" / "autograded").exists()
        with contextlib.redirect_stdout(out):
            code = grading_command([*args, "--unsafe"])
    with open(root / "grading" / "report.csv", newline="") as fh:
        (report,) = csv.DictReader(fh)
    return Refused(str(refusal.value), graded_before, code, out.getvalue(), report)


def test_grading_without_a_sandbox_is_refused_in_one_sentence(refused):
    assert refused.message.startswith("Grading refused") and "--unsafe" in refused.message, refused.message
    assert refused.message.endswith(".") and ". " not in refused.message, (
        f"the refusal should be one sentence: {refused.message!r}"
    )
    assert not refused.graded_before, "a refused grading run still executed a submission"


def test_unsafe_grades_without_the_sandbox_and_says_so(refused):
    assert refused.unsafe_code == 0 and refused.report["status"] == "graded", refused.report
    assert "--unsafe" in refused.unsafe_stdout, "an unsafe run should say it runs without the sandbox"
