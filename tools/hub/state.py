"""The hub's folders under ``HUB_STATE``, laid out before the hub starts (``python -m tools.hub serve``).

    HUB_STATE/                   0755 root
      hub/                       0700 root: jupyterhub.sqlite, the cookie secret, the proxy's pid
      course/                    the student bundle the hub serves (tools.bundle), read-only for all
      jupyter/student/           the Jupyter config of a student's server (JUPYTER_CONFIG_PATH):
        nbgrader_config.py         the exchange, the course id, private submissions (hub/nbgrader_config.py)
        labconfig/page_config.json the instructor panels of nbgrader's lab extension switched off
      jupyter/instructor/        the same config with every panel (formgrader, create assignment)
      exchange/                  nbgrader's exchange, 1777 like /tmp (unless HUB_EXCHANGE puts it elsewhere)

The exchange's course folder (``exchange/<course id>/``: outbound, inbound, feedback) is made by the
instructor's first ``nbgrader release_assignment``, owned by the instructor, as nbgrader expects.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from tools.bundle import build as build_bundle
from tools.hub.settings import HubSettings
from tools.paths import REPO_ROOT

SERVER_NBGRADER_CONFIG = REPO_ROOT / "hub" / "nbgrader_config.py"
# nbgrader's lab extension: what only an instructor uses (students keep Assignments and Validate).
INSTRUCTOR_PLUGINS = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:course-list",
)
ROLES = ("student", "instructor")


class StateError(RuntimeError):
    """The hub's folders cannot be laid out; the message says why, in one sentence."""


def prepare(settings: HubSettings) -> None:
    """Lay out ``HUB_STATE`` for ``settings``: the served bundle rebuilt from this checkout, the
    servers' config written, the exchange made if missing. Idempotent; keeps the hub's database."""
    settings.state.mkdir(parents=True, exist_ok=True)
    settings.state.chmod(0o755)
    settings.hub_dir.mkdir(exist_ok=True)
    settings.hub_dir.chmod(0o700)
    build_bundle(settings.course_dir, archive=False)
    _readable_by_all(settings.course_dir)
    for role in ROLES:
        write_server_config(settings.jupyter_config_dir(role), instructor=role == "instructor")
    ensure_exchange(settings.exchange)


def write_server_config(folder: Path, *, instructor: bool) -> None:
    """A Jupyter config folder for one role: the hub's nbgrader settings, and for students the
    instructor panels of nbgrader's lab extension turned off."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SERVER_NBGRADER_CONFIG, folder / "nbgrader_config.py")
    labconfig = folder / "labconfig"
    labconfig.mkdir(exist_ok=True)
    disabled = {} if instructor else {name: True for name in INSTRUCTOR_PLUGINS}
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}, indent=2) + "\n")
    _readable_by_all(folder.parent)


def ensure_exchange(exchange: Path) -> None:
    """nbgrader's exchange root: everyone may create in it, nobody may remove what others made (1777).

    An existing folder (a shared volume) is kept; one that students could not write to is an error.
    """
    if not exchange.exists():
        exchange.mkdir(parents=True)
        exchange.chmod(0o1777)
    mode = stat.S_IMODE(exchange.stat().st_mode)
    if mode & 0o1777 != 0o1777:
        raise StateError(
            f"the exchange {exchange} has mode {oct(mode)}; students must be able to write to it and nobody "
            f"to remove what others made: chmod 1777 {exchange}"
        )


def protect_checkout(root: Path = REPO_ROOT) -> list[str]:
    """Make the instructor's checkout private to its owner; notes on what changed or needs a hand.

    It holds solutions/ (answers, hidden tests, mark schemes), their git history and, in grading/,
    every student's submission and grade, while students' code runs on this machine. A git folder
    outside the checkout (a worktree's) is named, not changed.
    """
    notes = []
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        root.chmod(mode & 0o7700)
        notes.append(f"made {root} private to its owner (it holds solutions/ and grading/)")
    dot_git = root / ".git"
    if dot_git.is_file():  # a worktree: "gitdir: <common>/.git/worktrees/<name>"
        gitdir = Path(dot_git.read_text().split(":", 1)[1].strip())
        common = gitdir.parent.parent if gitdir.parent.name == "worktrees" else gitdir
        if _others_can_read(common):
            notes.append(f"WARNING: {common} (git history, with solutions/) is readable by other accounts")
    return notes


def _others_can_read(path: Path) -> bool:
    """True when an account that is neither the owner nor in the group can list ``path``."""
    path = path.resolve()
    if not stat.S_IMODE(path.stat().st_mode) & 0o004:
        return False
    return all(stat.S_IMODE(p.stat().st_mode) & 0o001 for p in path.parents)


def _readable_by_all(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        Path(root).chmod(0o755)
        for name in files:
            (Path(root) / name).chmod(0o644)
