"""The class's JupyterHub (README, "Running a class"). As root, from the repository root:

    python -m tools.hub env                       # make or reuse the hub environment (make hub-env)
    python -m tools.hub serve                     # lay out HUB_STATE, then run JupyterHub (make hub)
    python -m tools.hub nbgrader COMMAND ID ...   # nbgrader with the hub's exchange (make hub-nbgrader)

``nbgrader`` runs the hub environment's nbgrader in the course directory (this repository, or
``--course DIR``) with the exchange the students' servers use: ``release_assignment``, ``collect``,
``release_feedback``, ``list --inbound``. Grading itself is ``make grade`` (the sandbox).
Settings come from ``HUB_*`` variables (tools/hub/settings.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.hub.environment import HubEnvironmentError, ensure_environment
from tools.hub.settings import HubSettings
from tools.paths import REPO_ROOT


def _course_id(course: Path) -> str:
    """The course id of the instructor's nbgrader_config.py (the exchange's folder name); the folder
    of its gradebook is made if missing (``collect`` opens the gradebook before anything else)."""
    from traitlets.config.loader import PyFileConfigLoader

    if not (course / "nbgrader_config.py").is_file():
        raise SystemExit(f"No nbgrader_config.py in {course}; give the course's folder (a checkout) with --course.")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    course_id = config.CourseDirectory.get("course_id", "")
    if not course_id:
        raise SystemExit(f"{course / 'nbgrader_config.py'} sets no CourseDirectory.course_id; the exchange needs one.")
    db_url = config.CourseDirectory.get("db_url", "")
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return course_id


def _require_environment(settings: HubSettings) -> None:
    for path in (settings.env / "bin" / "jupyterhub", settings.proxy_command):
        if not path.exists():
            raise SystemExit(f"{path} is missing; make the hub environment first (make hub-env).")


def serve(settings: HubSettings) -> int:
    """Lay out HUB_STATE and replace this process by JupyterHub (Ctrl-C or SIGTERM stops it)."""
    from tools.hub.state import StateError, prepare, protect_checkout

    if os.geteuid() != 0:
        raise SystemExit("Run the hub as root: it starts each user's server as that user (sudo make hub).")
    _require_environment(settings)
    if not settings.config_file.is_file():
        raise SystemExit(f"No hub configuration at {settings.config_file} (HUB_CONFIG_FILE).")
    course_id = _course_id(REPO_ROOT)
    for note in protect_checkout():
        print(note, flush=True)
    try:
        prepare(settings)
    except StateError as exc:
        raise SystemExit(f"The hub cannot start: {exc}.") from exc
    env = {**os.environ, "DIGM_COURSE_ID": course_id, "HUB_ENV": str(settings.env), "HUB_STATE": str(settings.state)}
    print(
        f"JupyterHub on http://{settings.ip}:{settings.port}/ (course {course_id}, state {settings.state}, "
        f"exchange {settings.exchange}); Ctrl-C stops it",
        flush=True,
    )
    os.chdir(settings.hub_dir)
    # A shell that starts a command in the background (`make hub &`, nohup) leaves SIGINT ignored,
    # and an ignored signal stays ignored across exec: the hub's services (the idle culler) would then
    # ignore the hub's SIGINT on shutdown and be killed only after 30 s. Restore the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    hub = str(settings.env / "bin" / "jupyterhub")
    os.execve(hub, [hub, "-f", str(settings.config_file)], env)
    return 1  # not reached


def nbgrader(settings: HubSettings, course: Path, args: Sequence[str]) -> int:
    """nbgrader ``args`` in ``course`` with the hub's exchange; its exit code."""
    config_dir = settings.jupyter_config_dir("instructor")
    if not (config_dir / "nbgrader_config.py").is_file():
        raise SystemExit(f"{config_dir} holds no nbgrader_config.py; start the hub once (make hub) first.")
    if not args:
        raise SystemExit("Name an nbgrader command, e.g. release_assignment a1_estimators.")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(config_dir),
        "DIGM_ROLE": "instructor",
        "DIGM_EXCHANGE": str(settings.exchange),
        "DIGM_COURSE_ID": _course_id(course),
        "DIGM_COURSE_DIR": str(settings.course_dir),
        "PATH": f"{settings.env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run([str(settings.env / "bin" / "nbgrader"), *args], cwd=course, env=env).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.hub", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="make or reuse the hub environment (HUB_ENV, from HUB_PYTHON)")
    sub.add_parser("serve", help="lay out HUB_STATE and run JupyterHub on HUB_IP:HUB_PORT (as root)")
    p = sub.add_parser("nbgrader", help="nbgrader with the hub's exchange, in the course directory")
    p.add_argument("--course", type=Path, default=REPO_ROOT, help="the instructor's course directory")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the nbgrader command and its arguments")
    args = parser.parse_args(argv)
    try:
        settings = HubSettings.from_environ()
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if args.command == "env":
        try:
            ensure_environment(settings.env, settings.python)
        except HubEnvironmentError as exc:
            print(f"The hub environment was not made: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "serve":
        return serve(settings)
    return nbgrader(settings, args.course.absolute(), args.args)


if __name__ == "__main__":
    sys.exit(main())
