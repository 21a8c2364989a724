"""Helpers of tests/test_hub_class.py: real local accounts, the class's JupyterHub on loopback ports,
and HTTP calls as the hub's admin service or as a student.

Everything is started by id and stopped by id: the hub by its process id, each student's server
through the hub's API, and any process left under a test account (by the ids found for that account's
user id) before the account is removed. Accounts and their group get names no real account has.

The hub needs root (it starts each server as its user), Linux accounts (useradd) and the hub
environment (``make hub-env``: HUB_ENV, default /opt/digm-hub). Where one is missing the tests are
skipped with the reason, except under ``DIGM_REQUIRE_HUB=1`` (set by ``.ci/run``): then they fail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO_ROOT, free_port, pid_alive, running_as_root, stop_process

HUB_ENV = Path(os.environ.get("HUB_ENV") or "/opt/digm-hub")
HUB_PYTHON = HUB_ENV / "bin" / "python"


def require_hub() -> None:
    """Skip (or fail under DIGM_REQUIRE_HUB=1) where the class's hub cannot run here."""
    problems = []
    if not sys.platform.startswith("linux"):
        problems.append("the hub runs on Linux only")
    if not running_as_root():
        problems.append("the hub must run as root to start servers as each student (CI runs as root)")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "chpasswd"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found (the test creates real local accounts)")
    for path in (HUB_ENV / "bin" / "jupyterhub", HUB_ENV / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"):
        if not path.exists():
            problems.append(f"{path} is missing (make hub-env)")
    if problems:
        reason = "cannot run the class's hub: " + "; ".join(problems)
        if os.environ.get("DIGM_REQUIRE_HUB", "").strip() in {"1", "true", "yes"}:
            pytest.fail(f"DIGM_REQUIRE_HUB=1 but {reason}", pytrace=False)
        pytest.skip(reason)


# --------------------------------------------------------------------------------------------
# Accounts


@dataclass(frozen=True)
class Account:
    name: str
    password: str
    uid: int
    gid: int
    home: Path


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def create_group(name: str) -> None:
    _run(["groupadd", name])


def create_account(name: str, group: str) -> Account:
    """A real local account in ``group`` with a home and a random password (for PAM)."""
    import pwd

    password = secrets.token_urlsafe(12)
    _run(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", group, name])
    _run(["chpasswd"], input=f"{name}:{password}\n")
    entry = pwd.getpwnam(name)
    return Account(name, password, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def processes_of(uid: int) -> list[int]:
    """Ids of the live processes whose real user id is ``uid``."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        uid_line = next((line for line in lines if line.startswith("Uid:")), "")
        if uid_line.split()[1:2] == [str(uid)] and pid_alive(int(status.parent.name)):
            found.append(int(status.parent.name))
    return found


def remove_account(account: Account) -> list[int]:
    """Stop what still runs as the account (by process id), then remove it with its home.
    Returns the ids that had to be stopped (a clean hub shutdown leaves none)."""
    leftovers = processes_of(account.uid)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while processes_of(account.uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run(["userdel", "--remove", account.name], capture_output=True)
    return leftovers


def server_processes(account: Account) -> list[int]:
    """Ids of the account's JupyterLab servers (jupyterhub-singleuser)."""
    found = []
    for pid in processes_of(account.uid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"jupyterhub-singleuser") for part in command):
            found.append(pid)
    return found


def distinct_free_ports(count: int) -> tuple[int, ...]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return tuple(ports)


def run_as(
    account: Account, command: list[str], *, env: dict[str, str] | None = None, cwd: str = "/", timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``command`` as ``account`` (its user and group ids only, no others)."""
    return subprocess.run(
        command,
        user=account.uid,
        group=account.gid,
        extra_groups=[],
        cwd=cwd,
        env=env or {"HOME": str(account.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def process_environment(pid: int) -> dict[str, str]:
    """The environment a process was started with (what a terminal in that server inherits)."""
    items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)


# --------------------------------------------------------------------------------------------
# The hub


@dataclass
class Hub:
    """The class's hub as ``python -m tools.hub serve`` runs it, on free loopback ports."""

    state: Path
    students_group: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    ports: tuple[int, ...] = field(default_factory=lambda: distinct_free_ports(3))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    def env(self) -> dict[str, str]:
        port, api_port, proxy_api_port = self.ports
        return {
            **os.environ,
            "HUB_ENV": str(HUB_ENV),
            "HUB_STATE": str(self.state),
            "HUB_PORT": str(port),
            "HUB_API_PORT": str(api_port),
            "HUB_PROXY_API_PORT": str(proxy_api_port),
            "HUB_STUDENTS": self.students_group,
            "HUB_INSTRUCTORS": self.students_group + "-staff",
            "HUB_API_TOKEN": self.token,
            **self.extra_env,
        }

    def start(self, timeout: float = 90) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [str(HUB_PYTHON), "-m", "tools.hub", "serve"],
                cwd=REPO_ROOT,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the hub exited with code {self.process.returncode}; its log:\n{self.log()[-4000:]}")
            try:
                if self.call("GET", "/hub/api/", token=None)[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the hub did not answer within {timeout:.0f} s; its log:\n{self.log()[-4000:]}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=40)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def call(self, method: str, path: str, body=None, *, token: str | None = "", timeout: float = 120):
        """(status, decoded JSON or text) of an HTTP request through the hub's proxy.
        ``token`` "" means the admin service's token; None sends none."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"token {token or self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                status, text = reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode(errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def expect(self, expected: int | tuple[int, ...], method: str, path: str, body=None, *, token: str | None = ""):
        """The JSON of a request that must answer ``expected``; fails with the reply and the log otherwise."""
        status, reply = self.call(method, path, body, token=token)
        if status not in ((expected,) if isinstance(expected, int) else expected):
            pytest.fail(f"{method} {path} answered {status}: {reply}\nhub log:\n{self.log()[-3000:]}")
        return reply

    # -- as the admin service ------------------------------------------------------------------
    def add_user(self, name: str) -> None:
        self.expect((201, 409), "POST", f"/hub/api/users/{name}")

    def token_for(self, name: str) -> str:
        return self.expect(201, "POST", f"/hub/api/users/{name}/tokens", {"note": "test", "expires_in": 3600})["token"]

    def start_servers(self, names: list[str], timeout: float = 120) -> None:
        """Ask for every server at once, then wait until each is ready (they start in parallel)."""
        for name in names:
            self.expect((201, 202, 400), "POST", f"/hub/api/users/{name}/server")
        deadline = time.monotonic() + timeout
        waiting = set(names)
        while waiting:
            for name in sorted(waiting):
                server = (self.expect(200, "GET", f"/hub/api/users/{name}").get("servers") or {}).get("", {})
                if server.get("ready"):
                    waiting.discard(name)
            if waiting and time.monotonic() > deadline:
                pytest.fail(f"servers of {sorted(waiting)} not ready after {timeout:.0f} s:\n{self.log()[-3000:]}")
            time.sleep(0.5)

    def stop_server(self, name: str) -> None:
        self.call("DELETE", f"/hub/api/users/{name}/server")

    # -- as a student, through their own server ----------------------------------------------------
    def assignments(self, name: str, token: str, action: str, course_id: str, assignment: str) -> list[dict]:
        """What the Assignments panel does: POST /assignments/<action>; the list it shows afterwards."""
        reply = self.expect(
            200, "POST", f"/user/{name}/assignments/{action}", {"course_id": course_id, "assignment_id": assignment}, token=token
        )
        if not reply.get("success"):
            pytest.fail(f"{action} of {assignment} by {name} failed: {reply.get('value')}")
        return reply["value"]

    def validate(self, name: str, token: str, path: str) -> dict:
        """What the notebook's Validate button does: nbgrader's validator in the student's server."""
        reply = self.expect(200, "POST", f"/user/{name}/assignments/validate", {"path": path}, token=token)
        if not reply.get("success"):
            pytest.fail(f"validating {path} as {name} failed: {reply.get('value')}")
        return reply["value"]

    def read_file(self, name: str, token: str, path: str) -> str:
        quoted = urllib.request.quote(path)
        return self.expect(200, "GET", f"/user/{name}/api/contents/{quoted}?type=file&format=text&content=1", token=token)[
            "content"
        ]

    def read_notebook(self, name: str, token: str, path: str) -> dict:
        quoted = urllib.request.quote(path)
        return self.expect(200, "GET", f"/user/{name}/api/contents/{quoted}?type=notebook&content=1", token=token)[
            "content"
        ]

    def save_notebook(self, name: str, token: str, path: str, notebook: dict) -> None:
        quoted = urllib.request.quote(path)
        body = {"type": "notebook", "format": "json", "content": notebook}
        self.expect(200, "PUT", f"/user/{name}/api/contents/{quoted}", body, token=token)
