"""Where the class's hub keeps everything, from the ``HUB_*`` variables (``make hub HUB_PORT=...``).

Only the standard library: ``python -m tools.hub env`` runs under the system Python before the hub
environment exists.

| variable | default | what |
| --- | --- | --- |
| HUB_ENV | /opt/digm-hub | the hub's Python environment (world-readable: every student's server runs from it) |
| HUB_PYTHON | /usr/bin/python3.11, else python3 | the Python the environment is made from (not one under /root) |
| HUB_STATE | /srv/digm-hub | the hub's database and secrets, the served course, the exchange, the config |
| HUB_EXCHANGE | $HUB_STATE/exchange | nbgrader's exchange (on a shared volume beyond one machine) |
| HUB_IP / HUB_PORT | 127.0.0.1 / 8000 | where the hub listens (loopback: see README, "Running a class") |
| HUB_API_PORT / HUB_PROXY_API_PORT | 8081 / 8001 | the hub's and the proxy's own APIs, on 127.0.0.1 |
| HUB_STUDENTS / HUB_INSTRUCTORS | digm-students / digm-instructors | Unix groups allowed to log in |
| HUB_ADMINS | (none) | hub admins, comma-separated user names |
| HUB_IDLE_MINUTES | 60 | a server idle this long is stopped (jupyterhub-idle-culler) |
| HUB_EXTRA_CONFIG | (none) | a Python file loaded last by hub/jupyterhub_config.py (OAuth, LDAP, ...) |
| HUB_CONFIG_FILE | hub/jupyterhub_config.py | the hub's configuration (hub/slurm/jupyterhub_config.py on a Slurm cluster) |
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tools.paths import REPO_ROOT


def _default_python() -> str:
    # Debian's interpreter: a venv made from a Python under /root is unusable by students' accounts.
    return "/usr/bin/python3.11" if Path("/usr/bin/python3.11").exists() else (shutil.which("python3") or "python3")


@dataclass(frozen=True)
class HubSettings:
    env: Path
    python: str
    state: Path
    exchange: Path
    ip: str
    port: int
    api_port: int
    proxy_api_port: int
    students_group: str
    instructors_group: str
    admins: tuple[str, ...]
    idle_minutes: int
    extra_config: str
    config_file: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> HubSettings:
        """The settings named by ``HUB_*`` variables; a malformed value raises ValueError in one sentence."""
        env = os.environ if environ is None else environ
        state = Path(env.get("HUB_STATE") or "/srv/digm-hub").absolute()
        return cls(
            env=Path(env.get("HUB_ENV") or "/opt/digm-hub").absolute(),
            python=env.get("HUB_PYTHON") or _default_python(),
            state=state,
            exchange=Path(env.get("HUB_EXCHANGE") or state / "exchange").absolute(),
            ip=env.get("HUB_IP") or "127.0.0.1",
            port=_number(env, "HUB_PORT", 8000, 1, 65535),
            api_port=_number(env, "HUB_API_PORT", 8081, 1, 65535),
            proxy_api_port=_number(env, "HUB_PROXY_API_PORT", 8001, 1, 65535),
            students_group=env.get("HUB_STUDENTS") or "digm-students",
            instructors_group=env.get("HUB_INSTRUCTORS") or "digm-instructors",
            admins=tuple(name.strip() for name in (env.get("HUB_ADMINS") or "").split(",") if name.strip()),
            idle_minutes=_number(env, "HUB_IDLE_MINUTES", 60, 1, 60 * 24 * 14),
            extra_config=env.get("HUB_EXTRA_CONFIG") or "",
            config_file=Path(env.get("HUB_CONFIG_FILE") or REPO_ROOT / "hub" / "jupyterhub_config.py").absolute(),
        )

    # Below HUB_STATE. The hub's own files are private to root; the rest is read by every student.
    @property
    def hub_dir(self) -> Path:
        """jupyterhub.sqlite, the cookie secret, the proxy's token and the log (mode 0700)."""
        return self.state / "hub"

    @property
    def course_dir(self) -> Path:
        """The student bundle the hub serves (read-only for students)."""
        return self.state / "course"

    def jupyter_config_dir(self, role: str) -> Path:
        """The Jupyter config folder of a student's or an instructor's server (``JUPYTER_CONFIG_PATH``)."""
        return self.state / "jupyter" / role

    @property
    def proxy_command(self) -> Path:
        return self.env / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"


def _number(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name) or ""
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name}={raw!r} is not a whole number from {low} to {high}.")
    return int(raw)
