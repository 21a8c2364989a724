"""The hub's Python environment (``python -m tools.hub env``; ``make hub-env``, and ``make hub`` first).

One venv, made from Debian's Python in a world-readable prefix (``HUB_ENV``, default /opt/digm-hub),
holds JupyterHub, the idle culler, torch==2.13.0, the course's dependencies (from pyproject.toml) and,
under ``proxy/``, configurable-http-proxy from the npm registry (pinned by hub/proxy/package-lock.json).
Every student's server runs from it, as that student, so nothing in it may live under /root.

The course itself (``utils``, lectures) is not installed here: the hub serves the student bundle from
``HUB_STATE`` and puts it on the servers' ``PYTHONPATH``, so a new bundle needs no reinstall. A
fingerprint of everything that goes in (the requirement files, the lock file, the Python) is kept in
the environment; when it matches, the environment is reused as it is (seconds), which is what lets CI
keep it under /opt from run to run.

Only the standard library: it runs under the system Python before the environment exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import tomllib

from tools.paths import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "hub" / "requirements.txt"
PROXY_PACKAGE = REPO_ROOT / "hub" / "proxy"
# Always this build: an unpinned torch pulls a multi-GB CUDA build, and the class must run what CI ran.
TORCH = "torch==2.13.0"
STAMP = ".digm-hub-installed"
# JupyterLab settings for every user of the hub: no news or update checks (a class machine should not
# make every student's browser ask, and the prompt covers the notebook).
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"}}
MIN_PYTHON = (3, 11)  # tomllib, and what Debian 12 ships


class HubEnvironmentError(RuntimeError):
    """The hub environment cannot be made; the message says why and what to do, in one sentence."""


def course_requirements() -> list[str]:
    """The course's dependencies from pyproject.toml, with torch pinned to ``TORCH``."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return [TORCH if _name(r) == "torch" else r for r in project["dependencies"]]


def _name(requirement: str) -> str:
    for stop in "<>=!~ [;":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower().replace("_", "-")


def fingerprint(python: str) -> str:
    """What the environment is made of: a change here means it must be brought up to date."""
    parts = {
        "python": str(Path(python).resolve()),
        "course": course_requirements(),
        "hub": REQUIREMENTS.read_text(),
        "proxy": (PROXY_PACKAGE / "package-lock.json").read_text(),
        "lab": LAB_OVERRIDES,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def ensure_environment(prefix: Path, python: str, *, log: Callable[[str], None] = print) -> bool:
    """Make or update the hub environment at ``prefix`` from ``python``; False when it was already current.

    Raises HubEnvironmentError when it cannot be made (no such Python, too old, no npm, a failed install).
    """
    wanted = fingerprint(python)
    stamp = prefix / STAMP
    if stamp.is_file() and stamp.read_text().strip() == wanted and (prefix / "bin" / "jupyterhub").exists():
        log(f"hub environment {prefix}: up to date")
        return False
    _check_python(python)
    if shutil.which("npm") is None:
        raise HubEnvironmentError("npm not found; install it (Debian: apt-get install npm) for the hub's proxy.")
    stamp.unlink(missing_ok=True)  # a half-made environment is never taken for a finished one
    env_python = prefix / "bin" / "python"
    if not env_python.exists():
        log(f"creating the hub environment {prefix} from {python}")
        _run([python, "-m", "venv", str(prefix)], "creating the venv")
    pip = [str(env_python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    log(f"installing {TORCH} (the CPU wheel where pip finds one) ...")
    _run([*pip, TORCH], f"pip install {TORCH}")
    log("installing JupyterHub, the idle culler and the course's dependencies ...")
    _run([*pip, "-r", str(REQUIREMENTS), *course_requirements()], "pip install")
    log("installing configurable-http-proxy (npm) ...")
    proxy = prefix / "proxy"
    proxy.mkdir(exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PROXY_PACKAGE / name, proxy / name)
    _run(["npm", "ci", "--omit=dev", "--no-audit", "--no-fund", "--prefix", str(proxy)], "npm ci")
    overrides = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    overrides.write_text(json.dumps(LAB_OVERRIDES, indent=2) + "\n")
    _make_world_readable(prefix)
    stamp.write_text(wanted + "\n")
    log(f"hub environment {prefix}: ready")
    return True


def _check_python(python: str) -> None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise HubEnvironmentError(
            f"{python} cannot make a venv ({exc}); set HUB_PYTHON to a Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+"
            " with venv (Debian: apt-get install python3-venv)."
        ) from exc
    if tuple(int(x) for x in out) < MIN_PYTHON:
        raise HubEnvironmentError(f"{python} is Python {'.'.join(out)}; the hub needs 3.11 or newer (HUB_PYTHON).")
    if str(Path(python).resolve()).startswith("/root/"):
        raise HubEnvironmentError(
            f"{python} lives under /root, which students' accounts cannot read; set HUB_PYTHON to a system "
            "Python such as /usr/bin/python3.11."
        )


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise HubEnvironmentError(f"{what} failed (exit {result.returncode}):\n" + "\n".join(tail))


def _make_world_readable(prefix: Path) -> None:
    """Every student's server runs from here as that student: read (and enter) for all, write for root."""
    for folder, dirs, files in os.walk(prefix):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            wanted = mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0)
            if wanted != mode:
                path.chmod(wanted)
    prefix.chmod(prefix.stat().st_mode | 0o555)

