"""`make lab` starts a JupyterLab that answers, and stopping it by its process id leaves nothing behind.

No browser is needed: the server's REST API is enough to tell it is up. The command line is the
one `make -n lab` prints (so a change to the Makefile is tested), plus what a test needs on top:
no browser window, a free port, a known token, and --allow-root where tests run as root.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, pid_alive, running_as_root


def make_lab_command() -> list[str]:
    """The `jupyter lab ...` line of the Makefile's lab recipe, for this interpreter's environment."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed; `make lab` cannot be used on this machine either")
    dry_run = subprocess.run(
        [make, "-n", "lab", f"VENV={Path(sys.prefix)}", "PORT={port}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in dry_run.stdout.splitlines() if " lab " in f"{line} " and "jupyter" in line]
    assert len(lines) == 1, f"expected one `jupyter lab` line in `make -n lab`, got:\n{dry_run.stdout}"
    command = shlex.split(lines[0])
    command += ["--no-browser", "--IdentityProvider.token={token}", "--ServerApp.port_retries=0"]
    if running_as_root() and "--allow-root" not in command:
        command.append("--allow-root")
    return command


def test_make_lab_server_answers_and_stops_by_pid(lab_server_factory):
    server = lab_server_factory(REPO_ROOT, command=make_lab_command(), cwd=REPO_ROOT)
    status = server.api("status")
    assert "started" in status, f"/api/status of the `make lab` server has no 'started' field: {status}"
    pid = server.process.pid
    assert pid_alive(pid), "the server process died right after answering /api/status"

    server.stop()
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid), f"JupyterLab (pid {pid}) is still running after SIGTERM and the kill timeout"
    assert server.process.returncode is not None, "the server was not reaped after stopping"


def test_make_lab_serves_the_whole_course(lab_server_factory):
    server = lab_server_factory(REPO_ROOT, command=make_lab_command(), cwd=REPO_ROOT)
    names = {item["name"] for item in server.api("contents")["content"]}
    missing = {"lectures", "assignments", "templates"} - names
    served = re.search(r"Serving notebooks from local directory: (\S+)", server.log())
    assert not missing, (
        f"`make lab` serves {served.group(1) if served else '?'}, so students cannot open {sorted(missing)}; "
        "a positional folder argument to `jupyter lab` replaces --ServerApp.root_dir "
        "(use --LabApp.default_url=/lab/tree/lectures to start in lectures/)"
    )
