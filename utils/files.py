"""Files that are never seen half-written, and folders checked writable before long work starts.

* ``atomic_file(path)``: a context manager yielding a binary file; on success the temporary file is
  flushed, synced and renamed over ``path`` (``os.replace`` is atomic on one file system), on failure
  it is deleted and ``path`` keeps its old content. A crash while writing a checkpoint or a download
  therefore never leaves a truncated file under the final name.
* ``atomic_write(path, data)``: the same for bytes already in memory.
* ``probe_writable(folder)``: create the folder and write (then delete) a probe file in it, raising
  the ``OSError`` the real write would meet, so that a run can fail at its start and not after an
  hour of training.

Temporary and probe files are named ``.<name>.<pid>.<random>.part`` and ``.write-test.<pid>.<random>.part``:
hidden, recognisable as leftovers, and tagged with the writer's process id so that a sweep of
stale ``.part`` files can spare those of a process that is still running.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PART_SUFFIX = ".part"

__all__ = ["PART_SUFFIX", "atomic_file", "atomic_write", "probe_writable"]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` when the ``with`` block ends without an exception.

    The file is opened for reading too, so the block may ``seek(0)`` and check what it wrote; raising
    inside the block (a failed checksum, say) discards the file and leaves ``path`` as it was.

    ``mode``: permission bits for the new file (``mkstemp`` makes it private, 0o600, by default;
    a shared cache wants 0o644). The folder must exist.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent if str(path.parent) else ".",
        prefix=f".{path.name}.{os.getpid()}.",
        suffix=PART_SUFFIX,
    )
    try:
        with os.fdopen(fd, "w+b") as out:  # readable too: a download is verified before it replaces path
            yield out
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def atomic_write(path: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_file`: readers see the old file or the new one."""
    with atomic_file(path, mode) as out:
        out.write(data)


def probe_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) and prove a file can be written there; return it as a Path.

    Raises the ``OSError`` (``PermissionError``, ``FileExistsError`` for a file in the way,
    ``OSError`` for a full or read-only disk, ...) that a real write would meet.
    """
    folder = Path(folder) if str(folder) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=f".write-test.{os.getpid()}.", suffix=PART_SUFFIX)
    os.close(fd)
    os.unlink(probe)
    return folder
