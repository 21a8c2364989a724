"""Shared fixtures: a JupyterLab server on a free loopback port, headless Chromium, artifact folders.

The server fixture is generic: any test can start JupyterLab over any folder with extra
environment (``DIGM_FAST`` for the kernels, a temporary ``JUPYTER_CONFIG_DIR`` for a student
set-up, ...). Every server is started with ``Popen`` in its own session and stopped by its process
id, and all of Jupyter's per-user state (settings, workspaces, runtime files, user kernelspecs) lives
in the test's temporary folder, so neither the developer's ``~/.jupyter`` nor the shared venv is
read or written.

Browser tests need Playwright (a Python package of the test extras) and a Chromium binary (Debian's
``chromium`` package; ``playwright install`` is not needed). Where either is missing they are
skipped with the reason, except when ``DIGM_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then the
skip becomes a failure so CI cannot pass without having run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
VENV_BIN = Path(sys.executable).parent

# Chromium flags for a machine with no display and no network: no GPU process, no background
# fetches (component updates, sync, field trials) that would try to reach Google.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--disable-quic",
)

# User-level JupyterLab settings of every test server. JupyterLab asks whether to fetch Jupyter
# news and may check for updates; both would hit the network and the toast covers screenshots.
_LAB_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
    # Render every cell into the page (no virtual scrolling), so a test sees all outputs.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


# --------------------------------------------------------------------------------------------
# Processes and ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a process started with ``start_new_session=True``: SIGTERM by pid, SIGKILL if it hangs.

    Only this process id is signalled (never a name pattern), so nothing else on the machine
    is touched; kernels started by a Jupyter server are shut down by the server itself on SIGTERM.
    """
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/stat")
    if status.exists():
        try:
            return status.read_text().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False
    return True


# --------------------------------------------------------------------------------------------
# JupyterLab server


@dataclass
class LabServer:
    """A running JupyterLab: its process, base URL, token, root folder and log file."""

    process: subprocess.Popen
    port: int
    token: str
    root_dir: Path
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "lab") -> str:
        """A browser URL under the server, with the token (``path`` like ``lab/tree/x.ipynb``)."""
        separator = "&" if "?" in path else "?"
        return f"{self.base_url}/{path.lstrip('/')}{separator}token={self.token}"

    def api(self, path: str, timeout: float = 5.0) -> dict:
        """GET ``/api/<path>`` with the token and decode the JSON reply."""
        request = urllib.request.Request(
            f"{self.base_url}/api/{path.lstrip('/')}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.loads(reply.read().decode())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)


def isolated_jupyter_env(home: Path, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a Jupyter server whose per-user state all lives under ``home``.

    Config, data (user kernelspecs), runtime files, lab settings and workspaces point into ``home``
    so a developer's own ``~/.jupyter`` cannot change what the test sees, and a test cannot change it.
    """
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab-workspaces",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    for relative, settings in _LAB_USER_SETTINGS.items():
        target = dirs["JUPYTERLAB_SETTINGS_DIR"] / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(settings))
    env = dict(os.environ)
    env.update({name: str(path) for name, path in dirs.items()})
    env["JUPYTER_PREFER_ENV_PATH"] = "1"  # the venv's kernelspec and config win over system ones
    # Kernels inherit this environment: ``utils`` stays importable from a copied notebook folder.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra_env or {})
    return env


def lab_command(port: int, token: str, root_dir: Path) -> list[str]:
    """The ``jupyter lab`` command line for a test server on 127.0.0.1:``port``."""
    command = [
        str(VENV_BIN / "jupyter"),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # fail loudly instead of silently moving to another port
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if running_as_root():  # JupyterLab refuses to start as root otherwise (containers, CI)
        command.append("--allow-root")
    return command


def wait_for_status(server: LabServer, timeout: float) -> dict:
    """Poll ``/api/status`` until the server answers; fail with its log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            pytest.fail(
                f"JupyterLab exited with code {server.process.returncode} before answering; "
                f"its log ({server.log_path}):\n{server.log()[-3000:]}"
            )
        try:
            return server.api("status", timeout=2.0)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            if time.monotonic() > deadline:
                stop_process(server.process)
                pytest.fail(
                    f"JupyterLab did not answer /api/status within {timeout:.0f} s; "
                    f"its log ({server.log_path}):\n{server.log()[-3000:]}"
                )
            time.sleep(0.25)


def start_lab_server(
    root_dir: Path,
    home: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    cwd: Path | None = None,
    timeout: float = 90.0,
) -> LabServer:
    """Start JupyterLab over ``root_dir`` on a free port and wait until ``/api/status`` answers.

    ``command`` replaces the default command line (it must then contain the port and token that
    ``lab_command`` would use, see tests/test_lab_server.py); ``home`` receives the log and all of
    Jupyter's per-user folders.
    """
    port, token = free_port(), f"digm-test-{os.getpid()}-{time.monotonic_ns()}"
    home.mkdir(parents=True, exist_ok=True)
    env = isolated_jupyter_env(home, extra_env)
    log_path = home / "lab_server.log"
    argv = list(command) if command is not None else lab_command(port, token, root_dir)
    argv = [arg.replace("{port}", str(port)).replace("{token}", token) for arg in argv]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd or root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a Ctrl-C of pytest does not orphan kernels
        )
    server = LabServer(process, port, token, Path(root_dir), log_path, env)
    wait_for_status(server, timeout)
    return server


@pytest.fixture
def lab_server_factory(tmp_path_factory) -> Iterator[Callable[..., LabServer]]:
    """Call it like ``start_lab_server`` (``home`` optional); every server is stopped at teardown.

    >>> server = lab_server_factory(root_dir, extra_env={"DIGM_FAST": "1"})
    """
    servers: list[LabServer] = []

    def start(root_dir: Path, home: Path | None = None, **kwargs) -> LabServer:
        home = home or tmp_path_factory.mktemp("jupyter-home")
        server = start_lab_server(root_dir, home, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --------------------------------------------------------------------------------------------
# Browser


def require_browser() -> str:
    """Path of a Chromium binary usable by Playwright; skip (or fail under DIGM_REQUIRE_BROWSER=1).

    Looks for ``DIGM_CHROMIUM``, then ``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH.
    """
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the Python package playwright is not installed (pip install -e '.[test]')")
    candidates = [os.environ.get("DIGM_CHROMIUM", "")]
    candidates += [shutil.which(name) or "" for name in ("chromium", "chromium-browser", "google-chrome")]
    executable = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    if executable is None:
        problems.append("no Chromium found (apt-get install chromium, or set DIGM_CHROMIUM=/path/to/chrome)")
    if problems:
        reason = "cannot run browser tests: " + "; ".join(problems)
        if os.environ.get("DIGM_REQUIRE_BROWSER", "").strip() in {"1", "true", "yes"}:
            pytest.fail(f"DIGM_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return executable


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """A headless Chromium (Playwright ``Browser``) shared by one test module; skips without one.

    Module scope, not session: Playwright's sync API keeps an asyncio loop running in the worker while
    it is open, so any later test in the same worker that calls ``asyncio.run`` (the grading sandbox's,
    the course runner's) would fail with "cannot be called from a running event loop"."""
    executable = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        yield browser
        browser.close()


@dataclass
class PageProblems:
    """Browser console errors and uncaught page errors seen by a page."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [f"console: {m}" for m in self.console_errors] + [f"page error: {m}" for m in self.page_errors]


def watch_page(page, harmless: Sequence[re.Pattern[str]] = ()) -> PageProblems:
    """Record console errors and uncaught exceptions of ``page``, except messages matching ``harmless``.

    Callers list their harmless patterns explicitly, each with a comment saying why it is harmless.
    """
    problems = PageProblems()

    def on_console(message) -> None:
        if message.type != "error":
            return
        location = message.location or {}
        text = f"{message.text} [{location.get('url', '')}]"
        target = problems.ignored if any(p.search(text) for p in harmless) else problems.console_errors
        target.append(text)

    def on_page_error(error) -> None:
        text = str(error)
        target = problems.ignored if any(p.search(text) for p in harmless) else problems.page_errors
        target.append(text)

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return problems


@pytest.fixture
def artifacts_dir(request) -> Path:
    """``tests/artifacts/<test name>/`` (git-ignored) for screenshots and logs worth keeping."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path = ARTIFACTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _required(flag: str) -> bool:
    return os.environ.get(flag, "").strip() in {"1", "true", "yes"}


def grading_sandbox_problem() -> str:
    """Why student kernels cannot run in the grading sandbox here ("" when they can): bubblewrap
    missing, or namespaces refused. Under ``DIGM_REQUIRE_SANDBOX=1`` (set by ``.ci/run``) a problem
    fails the calling test instead, so CI cannot pass without having graded in the sandbox."""
    import tempfile

    from tools.grading.config import course_config
    from tools.grading.sandbox import Sandbox, SandboxUnavailable

    with tempfile.TemporaryDirectory(prefix="digm-probe-") as tmp:
        try:
            Sandbox.for_course(course_config(), Path(tmp))
        except SandboxUnavailable as exc:
            reason = f"cannot run kernels in the grading sandbox: {exc}"
            if _required("DIGM_REQUIRE_SANDBOX"):
                pytest.fail(f"DIGM_REQUIRE_SANDBOX=1 but {reason}", pytrace=False)
            return reason
    return ""


@pytest.fixture(scope="session")
def grading_unsafe() -> bool:
    """True where grading tests must pass ``--unsafe`` (no sandbox here, and none required)."""
    return bool(grading_sandbox_problem())
