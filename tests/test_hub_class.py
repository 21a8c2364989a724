"""A class on the hub, on loopback: a term of one assignment, with real accounts and real components.

`python -m tools.hub serve` (what `make hub` runs) starts JupyterHub on free ports with its state in
a temporary folder; two students (real local accounts, made here and removed at the end) get a token
from the hub's admin service, start their servers and, through the same HTTP calls as JupyterLab's
Assignments panel, fetch a1, save an answer (one the model answer, one with a log-density that
forgets its sum over dimensions) and submit. The hub is then restarted. The instructor (root, with a
private copy of the course: solutions/, assignments/, nbgrader_config.py) collects with nbgrader
through the hub's exchange, grades in the sandbox (`python -m tools.grading grade`, as `make grade`)
and releases feedback; each student fetches feedback from their server. Each test then checks one
property of the term. A student's attempts to reach another's work, the exchange's private folders
and the solutions are made as that student's Unix user; a last test logs in through the hub's login
page in Chromium and opens a lecture.

One hub per module; about 1.5 minutes on two cores, most of it grading.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from classroom import (
    HUB_PYTHON,
    Account,
    Hub,
    create_account,
    create_group,
    process_environment,
    remove_account,
    require_hub,
    run_as,
    server_processes,
)
from conftest import ARTIFACTS, REPO_ROOT, grading_sandbox_problem

# The submissions of the grading tests: the solved notebook, and the same with one known mistake.
from test_grading import EXPECTED_LOST, SUBMISSIONS, make_submission

pytestmark = pytest.mark.hub

A1 = "a1_estimators"
WRONG = "missing_sum"  # a1_log_prob_answer forgets the sum over dimensions
COURSE_ID = "digm"  # CourseDirectory.course_id in nbgrader_config.py
SCORE = re.compile(r"<h4>\s*" + A1 + r" \(Score: ([0-9.]+) / ([0-9.]+)\)</h4>")


@dataclass
class Classroom:
    hub: Hub
    course: Path
    alice: Account
    bob: Account
    tokens: dict[str, str]
    artifacts: Path


@dataclass
class Term:
    fetched: dict[str, dict] = field(default_factory=dict)  # student -> the Assignments panel's entry
    fetched_notebook: dict[str, dict] = field(default_factory=dict)  # student -> the notebook as fetched
    validation: dict = field(default_factory=dict)  # the Validate button on the wrong answer
    submitted: dict[str, list[dict]] = field(default_factory=dict)
    servers_before_restart: dict[str, list[int]] = field(default_factory=dict)
    servers_after_restart: dict[str, list[int]] = field(default_factory=dict)
    inbound_after_restart: str = ""
    collect: subprocess.CompletedProcess | None = None
    plain_autograde: subprocess.CompletedProcess | None = None  # nbgrader's own, refused on the hub
    scores_before_plain: dict[str, float] = field(default_factory=dict)
    scores_after_plain: dict[str, float] = field(default_factory=dict)
    grade: subprocess.CompletedProcess | None = None
    release_feedback: subprocess.CompletedProcess | None = None
    feedback: dict[str, list[str]] = field(default_factory=dict)  # student -> feedback pages they fetched
    seconds: dict[str, float] = field(default_factory=dict)


def _instructor_course(tmp_root: Path) -> Path:
    """A private copy of what the instructor grades from (the served bundle never holds it)."""
    course = tmp_root / "instructor-course"
    course.mkdir(mode=0o700)
    for folder in ("solutions", "assignments"):
        shutil.copytree(REPO_ROOT / folder, course / folder)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    return course


@pytest.fixture(scope="module")
def classroom() -> Classroom:
    require_hub()
    sandbox_problem = grading_sandbox_problem()
    if sandbox_problem:
        if os.environ.get("DIGM_REQUIRE_HUB", "").strip() in {"1", "true", "yes"}:
            pytest.fail(f"DIGM_REQUIRE_HUB=1 but {sandbox_problem}", pytrace=False)
        pytest.skip(sandbox_problem)
    artifacts = ARTIFACTS / "hub_class"
    artifacts.mkdir(parents=True, exist_ok=True)
    tag = "dgt" + secrets.token_hex(3)  # names no real account has
    with contextlib.ExitStack() as cleanup:
        # The hub's state must be reachable by the students' servers: not under pytest's 0700 tmp.
        state_root = Path(tempfile.mkdtemp(prefix="digm-hub-test-", dir="/tmp"))
        cleanup.callback(shutil.rmtree, state_root, True)
        state_root.chmod(0o755)
        private = state_root / "private"
        private.mkdir(mode=0o700)
        course = _instructor_course(private)
        create_group(tag)
        cleanup.callback(subprocess.run, ["groupdel", tag], capture_output=True)
        alice = create_account(f"{tag}a", tag)
        cleanup.callback(remove_account, alice)
        bob = create_account(f"{tag}b", tag)
        cleanup.callback(remove_account, bob)
        hub = Hub(
            state=state_root / "state",
            students_group=tag,
            log_path=artifacts / "hub.log",
            extra_env={"DIGM_FAST": "1", "OMP_NUM_THREADS": "1"},
        )
        hub.log_path.write_text("")
        hub.start()
        cleanup.callback(hub.stop)
        for account in (alice, bob):
            hub.add_user(account.name)
            cleanup.callback(hub.stop_server, account.name)
        tokens = {account.name: hub.token_for(account.name) for account in (alice, bob)}
        hub.start_servers([alice.name, bob.name])
        yield Classroom(hub, course, alice, bob, tokens, artifacts)


def _gradebook_scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    from tools.grading.config import course_config

    with Gradebook(course_config(course).CourseDirectory.db_url) as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(A1)}


def _instructor(classroom: Classroom, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """A command of the instructor, as root from the repository (make hub-nbgrader / make grade)."""
    env = {**classroom.hub.env(), "DIGM_FAST": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def term(classroom) -> Term:
    hub, term = classroom.hub, Term()
    students = {classroom.alice.name: "solved", classroom.bob.name: WRONG}

    def timed(step: str, started: float) -> None:
        term.seconds[step] = round(time.monotonic() - started, 1)

    started = time.monotonic()
    released = _instructor(classroom, "tools.hub", "nbgrader", "--course", str(classroom.course), "release_assignment", A1)
    assert released.returncode == 0, f"release_assignment failed:\n{released.stdout}{released.stderr}"
    timed("release", started)

    started = time.monotonic()
    for name, kind in students.items():
        token = classroom.tokens[name]
        listed = hub.assignments(name, token, "fetch", COURSE_ID, A1)
        term.fetched[name] = next(a for a in listed if a["assignment_id"] == A1 and a["status"] == "fetched")
        term.fetched_notebook[name] = hub.read_notebook(name, token, f"{A1}/{A1}.ipynb")
        answer = make_submission(REPO_ROOT, A1, SUBMISSIONS[A1][kind])
        hub.save_notebook(name, token, f"{A1}/{A1}.ipynb", answer)
        term.submitted[name] = hub.assignments(name, token, "submit", COURSE_ID, A1)
    timed("fetch, save and submit (2 students)", started)
    started = time.monotonic()
    wrong = classroom.bob.name
    term.validation = hub.validate(wrong, classroom.tokens[wrong], f"{A1}/{A1}.ipynb")
    timed("validate (1 notebook)", started)

    started = time.monotonic()
    term.servers_before_restart = {a.name: server_processes(a) for a in (classroom.alice, classroom.bob)}
    hub.stop()
    hub.start()
    term.servers_after_restart = {a.name: server_processes(a) for a in (classroom.alice, classroom.bob)}
    timed("hub restart", started)
    listed = _instructor(classroom, "tools.hub", "nbgrader", "--course", str(classroom.course), "list", "--inbound")
    term.inbound_after_restart = listed.stdout + listed.stderr

    started = time.monotonic()
    term.collect = _instructor(classroom, "tools.hub", "nbgrader", "--course", str(classroom.course), "collect", A1)
    timed("collect", started)
    started = time.monotonic()
    term.grade = _instructor(classroom, "tools.grading", "grade", A1, "--root", str(classroom.course), "--timeout", "120", timeout=600)
    timed("grade (sandbox, 2 submissions)", started)
    # nbgrader's own autograde, as the formgrader's button runs it (forced), for one student
    term.scores_before_plain = _gradebook_scores(classroom.course)
    term.plain_autograde = _instructor(
        classroom, "tools.hub", "nbgrader", "--course", str(classroom.course), "autograde", A1,
        "--student", classroom.bob.name, "--force",
    )
    term.scores_after_plain = _gradebook_scores(classroom.course)
    started = time.monotonic()
    term.release_feedback = _instructor(
        classroom, "tools.hub", "nbgrader", "--course", str(classroom.course), "release_feedback", A1
    )
    for name in students:
        token = classroom.tokens[name]
        listed = hub.assignments(name, token, "fetch_feedback", COURSE_ID, A1)
        folders = [s["local_feedback_path"] for a in listed if a.get("submissions") for s in a["submissions"]]
        term.feedback[name] = [
            hub.read_file(name, token, f"{folder}/{A1}.html") for folder in folders if folder
        ]
    timed("release and fetch feedback", started)
    (classroom.artifacts / "timings.json").write_text(json.dumps(term.seconds, indent=2))
    return term


def _score(page: str) -> tuple[float, float]:
    match = SCORE.search(page)
    assert match, "the feedback page shows no total score line"
    return float(match[1]), float(match[2])


def _graded_cells() -> dict[str, bool]:
    """grade id -> whether it is a written answer (graded by hand), for every graded cell of a1."""
    nb = nbformat.read(REPO_ROOT / "solutions" / A1 / f"{A1}.ipynb", as_version=4)
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    return {m["grade_id"]: bool(m.get("solution")) for m in meta if m.get("grade")}


def _points(cell_ids: set[str]) -> float:
    nb = nbformat.read(REPO_ROOT / "solutions" / A1 / f"{A1}.ipynb", as_version=4)
    return sum(c.metadata["nbgrader"]["points"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in cell_ids)


def test_each_student_fetches_the_released_assignment(classroom, term):
    released = nbformat.read(REPO_ROOT / "assignments" / A1 / f"{A1}.ipynb", as_version=4)
    for account in (classroom.alice, classroom.bob):
        assert term.fetched[account.name]["path"] == A1, f"{account.name} fetched into {term.fetched[account.name]}"
        submitted = [a for a in term.submitted[account.name] if a["status"] == "submitted"]
        assert submitted and submitted[0]["submissions"], f"{account.name}'s submission is not listed: {submitted}"
        fetched = nbformat.from_dict(term.fetched_notebook[account.name])
        assert [(c.cell_type, c.source) for c in fetched.cells] == [(c.cell_type, c.source) for c in released.cells], (
            f"what {account.name} fetched differs from assignments/{A1}"
        )


def test_the_validate_button_names_the_failing_visible_test(term):
    released = nbformat.read(REPO_ROOT / "assignments" / A1 / f"{A1}.ipynb", as_version=4)
    source = {c.metadata["nbgrader"]["grade_id"]: c.source.strip() for c in released.cells if "nbgrader" in c.metadata}
    visible_lost = {cell for cell in EXPECTED_LOST[(A1, WRONG)] if source.get(cell) and "hidden" not in cell}
    failed = {cell for cell, text in source.items() for f in term.validation.get("failed", []) if f["source"] == text}
    assert visible_lost and failed == visible_lost, f"Validate should fail exactly {visible_lost}, got {term.validation}"


def test_servers_run_as_their_students_from_the_served_bundle(classroom, term):
    state = classroom.hub.state
    for account in (classroom.alice, classroom.bob):
        (pid,) = term.servers_after_restart[account.name] or [None]
        assert pid, f"{account.name} has no running server"
        assert os.stat(f"/proc/{pid}").st_uid == account.uid
        environ = process_environment(pid)
        assert environ.get("PYTHONPATH") == str(state / "course"), "the server should import the served bundle"
        assert (account.home / "lectures").is_dir(), f"the lectures were not copied into {account.home}"
        assert stat.S_IMODE(account.home.stat().st_mode) & 0o077 == 0, f"{account.home} is readable by others"
    assert not (state / "course" / "solutions").exists(), "the served bundle holds solutions/"


def test_the_idle_culler_runs_as_a_hub_service_with_its_permissions(classroom, term):
    # It lists the users' servers and their activity at start and then every few minutes; a 403 here
    # would mean its role lacks a scope. (Stopping an idle server after HUB_IDLE_MINUTES is the
    # culler's own behaviour, not waited for here.)
    calls = re.findall(r"(\d{3}) GET /hub/api/users\S* \(idle-culler@", classroom.hub.log())
    assert calls and set(calls) == {"200"}, f"the idle culler's calls to the hub answered {calls}"


def test_submissions_and_servers_survive_a_restart_of_the_hub(classroom, term):
    assert term.servers_after_restart == term.servers_before_restart, (
        f"the students' servers changed over the restart: {term.servers_before_restart} -> {term.servers_after_restart}"
    )
    for account in (classroom.alice, classroom.bob):
        assert f"{COURSE_ID} {account.name} {A1}" in term.inbound_after_restart, (
            f"{account.name}'s submission is missing from the exchange after the restart:\n{term.inbound_after_restart}"
        )
    assert term.collect.returncode == 0, f"collect failed:\n{term.collect.stdout}{term.collect.stderr}"
    for account in (classroom.alice, classroom.bob):
        assert (classroom.course / "grading" / "submitted" / account.name / A1 / f"{A1}.ipynb").is_file()


def test_nbgrader_autograde_outside_the_sandbox_is_refused_on_the_hub(term):
    output = term.plain_autograde.stdout + term.plain_autograde.stderr
    assert term.plain_autograde.returncode != 0, f"nbgrader autograde ran students' code unsandboxed:\n{output}"
    assert "make grade" in output, f"the refusal should say what to run instead:\n{output[-2000:]}"
    # Nothing was executed or scored. (nbgrader, forced, first removes the student's autograded copy;
    # `make grade ARGS=--force` makes it again: hub/README.md, "Limits".)
    assert term.scores_after_plain == term.scores_before_plain and len(term.scores_before_plain) == 2


def test_grading_runs_in_the_sandbox_and_grades_both(classroom, term):
    # No --unsafe was given, so every kernel ran in the sandbox: grading refuses to run otherwise.
    output = term.grade.stdout + term.grade.stderr
    assert term.grade.returncode == 0, f"grading failed:\n{output}"
    for account in (classroom.alice, classroom.bob):
        assert re.search(rf"{A1}\s+{account.name}\s+[0-9.]+ / [0-9.]+\s+graded", output), output


def test_each_student_fetches_only_their_own_feedback_with_their_score(classroom, term):
    assert term.release_feedback.returncode == 0, term.release_feedback.stdout + term.release_feedback.stderr
    graded = _graded_cells()
    most = _points(set(graded))
    right = _points({cell for cell, written in graded.items() if not written})
    assert _score(term.feedback[classroom.alice.name][0]) == (right, most), (
        f"the model answer gets every test point ({right}) of {most}, its written answers still to grade"
    )
    expected_wrong = right - _points(EXPECTED_LOST[(A1, WRONG)])
    for account, score in ((classroom.alice, right), (classroom.bob, expected_wrong)):
        pages = term.feedback[account.name]
        assert len(pages) == 1, f"{account.name} fetched {len(pages)} feedback pages, expected their one"
        assert _score(pages[0]) == (score, 35.0), f"{account.name}'s feedback shows {_score(pages[0])}"
        fetched = list((account.home / A1 / "feedback").rglob("*.html"))
        assert len(fetched) == 1, f"{account.name}'s home holds {fetched}"


# What bob tries, as his Unix user. "read" opens a file, "list" lists a folder; each answers "ok" or
# the error's name. The first three must succeed: they show the probe can succeed where it should.
_PROBE = """
import json, os, sys
out = {}
for label, op, path in json.loads(sys.argv[1]):
    try:
        (os.listdir(path) if op == "list" else open(path, "rb").read(1))
        out[label] = "ok"
    except OSError as exc:
        out[label] = type(exc).__name__
print(json.dumps(out))
"""


def test_a_student_cannot_reach_another_students_work_or_the_solutions(classroom, term):
    alice, bob = classroom.alice, classroom.bob
    exchange = classroom.hub.state / "exchange" / COURSE_ID
    (alice_submission,) = [p for p in (exchange / "inbound").iterdir() if p.name.startswith(alice.name + "+")]
    (alice_feedback,) = (alice.home / A1 / "feedback").rglob("*.html")
    allowed = [
        ("own notebook", "read", str(bob.home / A1 / f"{A1}.ipynb")),
        ("released assignments", "list", str(exchange / "outbound" / A1)),
        ("served lectures", "list", str(classroom.hub.state / "course" / "lectures")),
    ]
    refused = [
        ("alice's home", "list", str(alice.home)),
        ("alice's notebook", "read", str(alice.home / A1 / f"{A1}.ipynb")),
        ("alice's fetched feedback", "read", str(alice_feedback)),
        ("the exchange's inbound", "list", str(exchange / "inbound")),
        ("the exchange's feedback", "list", str(exchange / "feedback")),
        ("alice's submission", "read", str(alice_submission / f"{A1}.ipynb")),
        # the secret from which the name of her feedback file in the exchange is made
        ("alice's submission secret", "read", str(alice_submission / "submission_secret.txt")),
        ("the instructor's solutions", "read", str(classroom.course / "solutions" / A1 / f"{A1}.ipynb")),
        ("the instructor's grading", "list", str(classroom.course / "grading")),
        ("the repository's solutions", "read", str(REPO_ROOT / "solutions" / A1 / f"{A1}.ipynb")),
    ]
    result = run_as(bob, [str(HUB_PYTHON), "-c", _PROBE, json.dumps(allowed + refused)])
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert {label: outcome[label] for label, _, _ in allowed} == {label: "ok" for label, _, _ in allowed}
    reached = {label: outcome[label] for label, _, _ in refused if outcome[label] != "PermissionError"}
    assert not reached, f"bob reached: {reached}"


def test_a_student_uses_nbgrader_from_a_terminal_of_their_server(classroom, term):
    bob = classroom.bob
    (pid,) = term.servers_after_restart[bob.name]
    env = {k: v for k, v in process_environment(pid).items() if not k.startswith(("JUPYTERHUB_", "JPY_"))}
    released = run_as(bob, ["nbgrader", "list"], env=env, cwd=str(bob.home))  # found on the server's PATH
    submitted = run_as(bob, ["nbgrader", "list", "--cached"], env=env, cwd=str(bob.home))
    output = released.stdout + released.stderr + submitted.stdout + submitted.stderr
    assert released.returncode == submitted.returncode == 0, output
    assert f"{COURSE_ID} {A1} (already downloaded)" in output, output
    assert f"{COURSE_ID} {bob.name} {A1}" in output and classroom.alice.name not in output, output


@pytest.mark.browser
def test_a_student_logs_in_through_the_login_page_and_opens_a_lecture(classroom, chromium):
    hub, bob = classroom.hub, classroom.bob
    lecture = sorted((REPO_ROOT / "lectures").glob("01_*.ipynb"))[0].name
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{hub.url}/hub/login")
        page.fill("input#username_input", bob.name)
        page.fill("input#password_input", bob.password)
        page.click("#login_submit")
        page.wait_for_url(f"**/user/{bob.name}/lab**", timeout=120_000)
        page.goto(f"{hub.url}/user/{bob.name}/lab/tree/lectures/{lecture}")
        heading = page.wait_for_selector(".jp-Notebook .jp-RenderedHTMLCommon h1", timeout=120_000)
        title = heading.inner_text()
        validate_buttons = page.locator(".jp-NotebookPanel-toolbar [title='Validate Assignment']").count()
        page.click("text=Nbgrader")
        menu = page.wait_for_selector(".lm-Menu", timeout=30_000).inner_text()
        page.screenshot(path=str(classroom.artifacts / "student_lecture.png"))
    finally:
        page.close()
    assert title.startswith("Week 01"), f"the lecture's title should show, got {title!r}"
    # nbgrader's student parts are there, its instructor panels are not (hub/jupyter/student labconfig)
    assert validate_buttons == 1, "the notebook toolbar should have nbgrader's Validate button"
    assert [item.strip() for item in menu.split("\n") if item.strip()] == ["Assignment List"], (
        f"a student's Nbgrader menu should hold only the Assignment List, got {menu!r}"
    )
