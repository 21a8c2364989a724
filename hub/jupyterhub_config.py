"""JupyterHub for one class on one machine (``make hub``; README, "Running a class").

Read by ``jupyterhub -f hub/jupyterhub_config.py``, which ``python -m tools.hub serve`` runs as root
after laying out ``HUB_STATE`` (tools/hub/state.py). Every setting comes from a ``HUB_*`` variable
(tools/hub/settings.py lists them with their defaults), so this file is the same on every machine.

- Log in: local Unix accounts through PAM, members of the students' or the instructors' group. For a
  university's single sign-on, put an authenticator in a file named by ``HUB_EXTRA_CONFIG``, loaded
  last (hub/auth/oauth_example.py, hub/auth/ldap_example.py).
- Each user's JupyterLab runs as that Unix user (LocalProcessSpawner) from the hub environment,
  with the student bundle (``HUB_STATE/course``) on its ``PYTHONPATH`` and nbgrader's exchange
  configured; on first start the lectures and templates are copied into the user's home, and the
  home is made private to its owner.
- Idle servers are stopped by jupyterhub-idle-culler, a hub service.
- The hub's own files (database, cookie secret) stay in ``HUB_STATE/hub`` (root only). Users'
  servers outlive a restart of the hub (``cleanup_servers = False``).
"""

import grp
import os
import pwd
import subprocess
import sys
from pathlib import Path

# The settings module is plain Python from this checkout; the hub process (root) reads it, students' servers do not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.hub.settings import HubSettings  # noqa: E402

c = get_config()  # noqa: F821  (JupyterHub injects get_config into config files)
hub = HubSettings.from_environ()
COURSE_ID = os.environ.get("DIGM_COURSE_ID", "digm")
# Copied into a user's home on each start when missing (never overwriting the user's own copy).
HOME_COPIES = ("lectures", "templates", "README.md")

# --- where the hub listens and keeps its state ---------------------------------------------------
c.JupyterHub.ip = hub.ip
c.JupyterHub.port = hub.port
# The hub's own API and the proxy's, for the processes of this machine only.
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = hub.api_port
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub.proxy_api_port}"
c.JupyterHub.db_url = f"sqlite:///{hub.hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub.hub_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.command = [str(hub.proxy_command)]
c.ConfigurableHTTPProxy.pid_file = str(hub.hub_dir / "proxy.pid")
# A restart of the hub (an upgrade, a crash) leaves the students' servers and kernels running.
c.JupyterHub.cleanup_servers = False

# --- who may log in ------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {hub.students_group, hub.instructors_group}
c.PAMAuthenticator.open_sessions = False  # no systemd-logind sessions in a container or a test
c.Authenticator.admin_users = set(hub.admins)


def _role(username: str) -> str:
    """"instructor" for members of the instructors' Unix group, else "student"."""
    try:
        members = grp.getgrnam(hub.instructors_group).gr_mem
    except KeyError:
        return "student"
    return "instructor" if username in members else "student"


# --- each user's server ------------------------------------------------------------------------------
c.Spawner.cmd = [str(hub.env / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90
c.Spawner.environment = {
    "PATH": f"{hub.env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    # The student bundle: `import utils` and `python -m tools.grading validate` work in every folder.
    "PYTHONPATH": str(hub.course_dir),
    "DIGM_COURSE_DIR": str(hub.course_dir),
    "DIGM_COURSE_ID": COURSE_ID,
    "DIGM_EXCHANGE": str(hub.exchange),
    "DIGM_ROLE": lambda spawner: _role(spawner.user.name),
    "JUPYTER_CONFIG_PATH": lambda spawner: str(hub.jupyter_config_dir(_role(spawner.user.name))),
    # torch would start a thread per core in every kernel; a class shares the cores
    "OMP_NUM_THREADS": os.environ.get("HUB_THREADS_PER_USER", "2"),
}
# Passed on only when set: FAST mode for a small machine, a shared read-only copy of the datasets.
for _name in ("DIGM_FAST", "DIGM_DATA_DIR", "DIGM_OFFLINE"):
    if os.environ.get(_name):
        c.Spawner.environment[_name] = os.environ[_name]


def provision_home(spawner) -> None:
    """Before a server starts: the home private to its owner, and the course's lectures, templates
    and README copied in where missing. The copy runs as the user, so a link a user planted in
    their home cannot make root write elsewhere."""
    user = pwd.getpwnam(spawner.user.name)
    home = Path(user.pw_dir)
    info = os.lstat(home)
    if info.st_uid == user.pw_uid and (info.st_mode & 0o077):
        os.chmod(home, info.st_mode & 0o7700)  # Debian's useradd makes homes 0755: readable by all
        spawner.log.info("made %s private to %s", home, user.pw_name)
    sources = [str(hub.course_dir / name) for name in HOME_COPIES if (hub.course_dir / name).exists()]
    result = subprocess.run(
        ["cp", "-R", "--no-clobber", "--no-preserve=mode,ownership", *sources, str(home)],
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        spawner.log.warning("copying the course into %s: %s", home, result.stderr.strip())


c.Spawner.pre_spawn_hook = provision_home

# --- services ----------------------------------------------------------------------------------
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={hub.idle_minutes * 60}"],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
# An optional service for scripts (adding users, starting servers): its token comes from the
# environment, never from a file in the repository.
if os.environ.get("HUB_API_TOKEN"):
    c.JupyterHub.services.append({"name": "course-admin", "api_token": os.environ["HUB_API_TOKEN"]})
    c.JupyterHub.load_roles.append(
        {
            "name": "course-admin",
            "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "access:servers"],
            "services": ["course-admin"],
        }
    )

# --- a university's own settings (authenticator, limits, TLS): loaded last, so they win -------------
if hub.extra_config:
    load_subconfig(hub.extra_config)  # noqa: F821  (injected by traitlets)
