"""The grading sandbox: each submission's kernel runs in bubblewrap, apart from the course.

Autograding runs student code. Without isolation a notebook could rewrite the gradebook, read
``solutions/`` and the hidden tests, or damage the course, all with the instructor's rights. Here the
kernel that nbgrader starts for a submission runs inside ``bwrap`` (Debian's ``bubblewrap``) with:

* its own network, process, IPC and host-name namespaces: no network at all (not even the grader's
  loopback), and no view of the grader's processes;
* a root file system made of read-only binds of what a kernel needs: ``/usr`` (with the ``/bin``,
  ``/lib`` links), the dynamic linker's files from ``/etc``, the Python environment, the course's
  ``utils`` package and the offline data (``DIGM_DATA_DIR``, else the download cache); nothing else
  of the machine, so no ``solutions/``, no ``grading/`` and no other student's work;
* one writable place, the scratch ``/tmp`` (a size-limited tmpfs): ``HOME`` and the working folder
  are in it, and the submission's files (all but notebooks, which hold the hidden tests once
  restored) are bound read-only into the working folder; ``/dev/shm`` is a second such tmpfs;
* the kernel's Unix sockets (``transport="ipc"``: TCP cannot cross the network namespace) in a
  folder of its own, which becomes unwritable once the kernel is up;
* an unprivileged user: as root, a user id of its own (``setpriv``) so that the process limit counts
  the sandbox's processes only; otherwise a user namespace (``--unshare-user``);
* resource limits (``prlimit``): CPU seconds and memory (RLIMIT_DATA) per process, processes
  (threads included; a full sandbox is stopped), no core files;
* an environment made from scratch: none of the grader's variables but a few, so no tokens.

The kernel never sees the gradebook: nbgrader, in the grading process, writes it from the outputs
it reads back. Limits come from ``c.GradingSandbox`` in ``nbgrader_config.py``.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from traitlets import Instance, Integer, default
from traitlets.config import Config, Configurable

# The kernel's view of itself: one scratch tmpfs at /tmp holds its home and working folder.
SCRATCH = Path("/tmp")
HOME = SCRATCH / "student"
USER = "student"
# Variables the kernel may keep from the grading process (everything else is dropped: an
# instructor's environment can hold tokens). NBGRADER_EXECUTION is nbgrader's "autograde" marker.
PASSED_ENV = (
    "DIGM_FAST",
    "DIGM_DEVICE",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "PYTHONHASHSEED",
    "NBGRADER_EXECUTION",
)
# Files of /etc that a Python process uses when present (dynamic linker, time zone, fontconfig).
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/fonts",
)
# As root, every kernel gets a user id of its own, far above real accounts (and below 2**31), so
# that RLIMIT_NPROC, counted per user id, counts this sandbox's processes and nobody else's: not a
# concurrent grading run's, nor those of the previous kernel, which may still be dying.
SANDBOX_UID_BASE = 1_000_000_000
SANDBOX_UID_SPAN = 2**30
MB = 2**20


class GradingSandbox(Configurable):
    """The limits of a sandboxed kernel (``c.GradingSandbox.<name>`` in ``nbgrader_config.py``)."""

    cpu_seconds = Integer(1800, help="CPU seconds per process; the kernel is killed past it").tag(config=True)
    # RLIMIT_DATA (private writable memory), not RLIMIT_AS: threads reserve address space they
    # never use (stacks, malloc arenas), which would make an address-space limit depend on the cores.
    memory_mb = Integer(6144, help="memory per process (MiB): a larger allocation fails").tag(config=True)
    processes = Integer(help="processes and threads of the sandbox together").tag(config=True)
    scratch_mb = Integer(1024, help="size of the writable /tmp and of /dev/shm (MiB, each)").tag(config=True)
    output_chars = Integer(
        100_000, help="characters of output kept per cell; the rest is cut with a note (also with --unsafe)"
    ).tag(config=True)

    @default("processes")
    def _processes_default(self) -> int:
        # torch starts a thread per core (twice: intra- and inter-op pools), and threads count
        return max(256, 4 * (os.cpu_count() or 1))


class SandboxUnavailable(RuntimeError):
    """This machine cannot run a kernel in the sandbox; the message says why, in one sentence."""


@dataclass(frozen=True)
class Sandbox:
    """How to wrap a kernel command in bubblewrap, for one grading run.

    ``base`` is a private folder of the grading run (one ``KernelRun`` folder per kernel).
    ``binds`` are (host path, sandbox path) pairs bound read-only; ``env`` is the whole environment
    of the kernel.
    """

    base: Path
    limits: dict[str, int]
    as_root: bool
    binds: tuple[tuple[str, str], ...]
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_course(cls, cfg: Config, base: Path) -> Sandbox:
        """The sandbox the configuration asks for; raises SandboxUnavailable where it cannot run."""
        settings = GradingSandbox(config=cfg)
        limits = {name: getattr(settings, name) for name in settings.trait_names() if name != "config"}
        as_root = os.geteuid() == 0
        tools = ("bwrap", "prlimit", "setpriv") if as_root else ("bwrap", "prlimit")
        missing = [tool for tool in tools if shutil.which(tool) is None]
        if missing:
            package = "bubblewrap" if "bwrap" in missing else "util-linux"
            raise SandboxUnavailable(
                f"{', '.join(missing)} not found (install Debian's {package}: apt-get install {package})"
            )
        binds, env = _binds_and_env()
        base.mkdir(parents=True, exist_ok=True)
        sandbox = cls(base, limits, as_root, binds, env)
        sandbox.probe()
        return sandbox

    def command(self, inner: list[str], run: KernelRun, workdir: Path | None) -> list[str]:
        """bwrap + limits around ``inner`` for ``run``, whose socket folder is bound read-write;
        the entries of ``workdir`` (but notebooks and links) go read-only into the working folder."""
        lim = self.limits
        cmd = [
            "bwrap",
            *("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"),
            "--die-with-parent",
            "--new-session",
            "--clearenv",
        ]
        if not self.as_root:
            # Namespaces without privileges; the kernel keeps this user's id, mapped as itself.
            cmd += ["--unshare-user", "--disable-userns"]
        for name, value in self.env.items():
            cmd += ["--setenv", name, value]
        cmd += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):  # merged /usr: /bin -> usr/bin
                cmd += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                cmd += ["--ro-bind", top, top]
        cmd += ["--perms", "0755", "--dir", "/etc"]  # bwrap would make it 0700, unreadable to the kernel
        for path in ETC_FILES:
            cmd += ["--ro-bind-try", path, path]
        cmd += ["--ro-bind", str(run.folder / "passwd"), "/etc/passwd"]
        cmd += ["--ro-bind", str(run.folder / "group"), "/etc/group"]
        scratch = str(lim["scratch_mb"] * MB)
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        cmd += ["--size", scratch, "--perms", "1777", "--tmpfs", "/dev/shm"]
        cmd += ["--size", scratch, "--perms", "1777", "--tmpfs", str(SCRATCH)]
        work = HOME / (workdir.name if workdir is not None else "work")
        cmd += ["--perms", "0777", "--dir", str(HOME), "--perms", "0777", "--dir", str(work)]
        for entry in sorted(workdir.iterdir()) if workdir is not None else ():
            if not entry.is_symlink() and entry.suffix != ".ipynb" and (entry.is_file() or entry.is_dir()):
                cmd += ["--ro-bind", str(entry), str(work / entry.name)]
        made = {"/", "/usr", "/etc", "/proc", "/dev", str(SCRATCH), str(HOME), str(work)}
        for source, target in self.binds:
            cmd += _parents(target, made) + ["--ro-bind", source, target]
        cmd += _parents(str(run.sockets), made) + ["--bind", str(run.sockets), str(run.sockets)]
        cmd += ["--chdir", str(work), "--"]
        if self.as_root:
            cmd += [
                "setpriv",
                f"--reuid={run.uid}",
                f"--regid={run.uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        cmd += [
            "prlimit",
            f"--cpu={lim['cpu_seconds']}",
            f"--data={lim['memory_mb'] * MB}",
            f"--nproc={lim['processes']}",
            "--core=0",
            "--",
        ]
        return cmd + inner

    def new_run(self) -> KernelRun:
        """A folder and a user id for one kernel (see ``KernelRun``)."""
        folder = Path(tempfile.mkdtemp(prefix="kernel-", dir=self.base)).resolve()
        uid = SANDBOX_UID_BASE + secrets.randbelow(SANDBOX_UID_SPAN) if self.as_root else os.getuid()
        (folder / "passwd").write_text(f"{USER}:x:{uid}:{uid}:{USER}:{HOME}:/usr/sbin/nologin\n")
        (folder / "group").write_text(f"{USER}:x:{uid}:\n")
        # A Unix socket's path has at most 107 bytes, so the sockets live in a short folder of /tmp
        # rather than under ``base`` (a deep TMPDIR or a test's tmp_path would be too long).
        short = "/tmp" if os.access("/tmp", os.W_OK) else None
        sockets = Path(tempfile.mkdtemp(prefix="digm-", dir=short)).resolve()
        if self.as_root:
            os.chown(sockets, uid, uid)
        return KernelRun(folder, sockets, uid)

    def probe(self) -> None:
        """Run Python in the sandbox once; raise SandboxUnavailable with bwrap's reason if it fails."""
        run = self.new_run()
        try:
            cmd = self.command([sys.executable, "-c", "import ipykernel"], run, None)
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap could not start a sandbox here ({exc})") from exc
        finally:
            run.remove()
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = lines[-1].strip() if lines else f"exit status {done.returncode}"
            raise SandboxUnavailable(f"bubblewrap could not start a sandbox here ({reason})")


@dataclass(frozen=True)
class KernelRun:
    """One kernel's private files: its passwd and group files in ``folder``, and ``sockets`` (the
    connection file and Unix sockets), writable by the kernel's user ``uid`` until ``lock_down``."""

    folder: Path
    sockets: Path
    uid: int

    def remove(self) -> None:
        shutil.rmtree(self.sockets, ignore_errors=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def _parents(target: str, made: set[str]) -> list[str]:
    """bwrap arguments that create the missing ancestors of ``target`` traversable by anyone (bwrap
    would otherwise copy the host's modes, and /root is 0700)."""
    args = []
    for parent in reversed(Path(target).parents):
        if str(parent) not in made:
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    made.add(target)
    return args


def _binds_and_env() -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """What the kernel sees of the machine, read-only, and its environment.

    The Python environment: the venv (bound where it is found, even through a symlink, so that
    ``sys.executable`` works inside) and the interpreter it was made from. Not ``sys.path``: it may
    hold the course folder itself (PYTHONPATH). ``utils``: the package this grading process would
    import, on PYTHONPATH. Data: ``DIGM_DATA_DIR``, else the download cache (the rule of
    ``utils.data.sources.cache_dir``), offered as ``DIGM_DATA_DIR`` since nothing may be downloaded.
    """
    binds: dict[str, str] = {}  # sandbox path -> host path

    def bind(path: str) -> None:
        path = os.path.abspath(path)
        if not any(_inside(path, target) for target in [*binds, "/usr"]):  # /usr is bound anyway
            binds[path] = os.path.realpath(path)

    for path in sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}):
        bind(path)
    for key in ("purelib", "platlib", "stdlib"):
        if sysconfig.get_path(key):
            bind(sysconfig.get_path(key))
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(HOME),
        "USER": USER,
        "LOGNAME": USER,
        "TMPDIR": str(SCRATCH),
        "DIGM_OFFLINE": "1",
        "DIGM_CACHE_DIR": str(HOME / ".cache" / "digm"),
    }
    env.update({name: os.environ[name] for name in PASSED_ENV if name in os.environ})
    spec = importlib.util.find_spec("utils")
    if spec is not None and spec.submodule_search_locations:
        utils_dir = os.path.abspath(next(iter(spec.submodule_search_locations)))
        bind(utils_dir)
        env["PYTHONPATH"] = os.path.dirname(utils_dir)
    data = os.environ.get("DIGM_DATA_DIR", "").strip()
    if not data:
        cache = os.environ.get("DIGM_CACHE_DIR", "").strip()
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        data = cache or os.path.join(xdg or os.path.join(os.path.expanduser("~"), ".cache"), "digm")
    data = os.path.abspath(os.path.expanduser(data))
    if os.path.isdir(data):
        bind(data)
        env["DIGM_DATA_DIR"] = data
    return tuple((source, target) for target, source in sorted(binds.items())), env


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class SandboxedKernelManager(AsyncKernelManager):
    """A Python kernel started inside the grading sandbox, talking over Unix sockets.

    The kernel spec is fixed (this environment's ipykernel), whatever the notebook names: installed
    kernel specs are the instructor's, not the sandbox's. Interrupts are messages on the control
    channel, since a signal to bwrap would not reach the kernel inside.
    """

    sandbox = Instance(Sandbox)
    _run: KernelRun | None = None
    _workdir: Path | None = None
    stop_reason: str = ""  # why the kernel was stopped from here, if it was

    @property
    def kernel_spec(self) -> KernelSpec:
        if self._kernel_spec is None:
            self._kernel_spec = KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python 3 (grading sandbox)",
                language="python",
                interrupt_mode="message",
            )
        return self._kernel_spec

    async def _async_pre_start_kernel(self, **kw):
        self._run = self.sandbox.new_run()
        self._workdir = Path(kw["cwd"]) if kw.get("cwd") else None
        self.transport = "ipc"
        self.ip = str(self._run.sockets / "kernel")
        self.connection_file = str(self._run.sockets / "kernel.json")
        return await super()._async_pre_start_kernel(**kw)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        assert self._run is not None, "the kernel's folder is made before its command"
        inner = super().format_kernel_cmd(extra_arguments)
        return self.sandbox.command(inner, self._run, self._workdir)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        assert self._run is not None
        if self.sandbox.as_root:  # jupyter_client wrote it 0600 for root; the kernel must read it
            os.chown(self.connection_file, self._run.uid, self._run.uid)
        # The kernel's own stdout and stderr (not the notebook's: those go over the sockets) would
        # otherwise reach the grader's terminal, where a notebook could flood it.
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        # bwrap's own processes (the sandbox's pid 1 among them) keep this environment: give them
        # none of the grader's variables either.
        kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        await super()._async_launch_kernel(kernel_cmd, **kw)

    def lock_down(self) -> None:
        """Once the kernel has bound its sockets (it answered), take away its write access to their
        folder, the one host folder it could write to. Student code runs only after this."""
        if self._run is None:
            return
        if self.sandbox.as_root:
            os.chown(self._run.sockets, 0, 0)
            os.chmod(self._run.sockets, 0o700)
        else:  # the kernel is this user and could change the mode back; the tmpfs limits stay
            os.chmod(self._run.sockets, 0o500)

    async def _async_is_alive(self) -> bool:
        """Alive, and below the process limit: a process that hits RLIMIT_NPROC just fails to fork,
        so a fork bomb would leave the sandbox full of spinning copies of the kernel, taking the
        CPUs for the rest of the notebook. nbclient asks every second while a cell runs; the sandbox
        is stopped as soon as it is full."""
        alive = await super()._async_is_alive()
        if alive and await self.stop_if_full():
            return False
        return alive

    async def stop_if_full(self) -> bool:
        """Kill the kernel, with the reason, if its sandbox holds as many tasks as the process limit."""
        if self.provisioner is None or not getattr(self.provisioner, "pid", None):
            return False
        limit = self.sandbox.limits["processes"]
        if tasks_under(self.provisioner.pid) < limit:
            return False
        self.stop_reason = f"it reached the sandbox's limit of {limit} processes and threads"
        await self._async_kill_kernel()
        return True

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self._run is not None and not restart:
            self._run.remove()
            self._run = None

    # AsyncKernelManager binds its public names to KernelManager's coroutines: rebind to these.
    is_alive = _async_is_alive
    cleanup_resources = _async_cleanup_resources


def tasks_under(pid: int) -> int:
    """Threads of every process below ``pid`` (not ``pid`` itself), from /proc; 0 where unreadable."""
    children: dict[int, list[int]] = {}
    threads: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
        except (OSError, IndexError):
            continue  # gone meanwhile
        child = int(entry.name)
        children.setdefault(int(fields[1]), []).append(child)
        threads[child] = int(fields[17])
    total, stack = 0, list(children.get(pid, []))
    while stack:
        child = stack.pop()
        total += threads.get(child, 1)
        stack.extend(children.get(child, []))
    return total
