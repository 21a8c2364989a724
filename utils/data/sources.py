"""Where dataset files come from: an offline folder, the user cache, or a verified download.

A file is looked for, in this order:

1. ``$DIGM_DATA_DIR/<folder>/<name>`` (the offline copy CI uses; read-only is fine, nothing is
   ever written or extracted there);
2. the user cache, ``$DIGM_CACHE_DIR/<folder>/<name>`` (default ``$XDG_CACHE_HOME/digm`` or
   ``~/.cache/digm``), which also accepts files placed there by hand;
3. a download from each mirror in turn (skipped when ``DIGM_OFFLINE=1``): the body is streamed to a
   temporary ``.part`` file in the cache folder, verified, and only then moved under its final name
   with ``os.replace``, so a killed process never leaves a partial file under that name.

Every file is verified before use: its bytes must match a published checksum, or, for a gzip file
or an uncompressed copy, its decompressed content must match the published checksum of the content
(so a file recompressed or decompressed by hand is accepted too). A file in the cache that fails is
deleted and fetched again; one in ``DIGM_DATA_DIR`` is only reported, since that folder may be
read-only. When nothing works, :class:`DatasetNotFoundError` names every place tried and why.

``DIGM_MIRRORS`` (or the ``mirrors=`` argument) replaces the built-in mirror list, e.g. for tests
against a loopback server: base URLs separated by spaces or commas, where ``{folder}`` stands for
the dataset's folder name (``http://127.0.0.1:8000/{folder}/``).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from utils.data.errors import (
    CacheWarning,
    ChecksumError,
    CorruptFileError,
    DataError,
    DatasetNotFoundError,
    DownloadError,
)
from utils.files import PART_SUFFIX, atomic_file, probe_writable
from utils.runtime import env_flag

T = TypeVar("T")

ENV_DATA_DIR = "DIGM_DATA_DIR"
ENV_CACHE_DIR = "DIGM_CACHE_DIR"
ENV_OFFLINE = "DIGM_OFFLINE"
ENV_MIRRORS = "DIGM_MIRRORS"

DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation, not per file: a slow but live mirror is fine
STALE_PART_AGE_S = 24 * 3600.0  # a .part older than this is garbage even if its pid was reused
CACHE_FILE_MODE = 0o644
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def data_dir() -> Path | None:
    """The offline data folder from ``DIGM_DATA_DIR``, or None when it is unset."""
    value = os.environ.get(ENV_DATA_DIR, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The download cache: ``DIGM_CACHE_DIR``, else ``$XDG_CACHE_HOME/digm``, else ``~/.cache/digm``."""
    value = os.environ.get(ENV_CACHE_DIR, "").strip()
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "digm"


def temporary_cache_dir() -> Path:
    """Where downloads go when the cache folder cannot be written: a per-user folder in the system temp."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"digm-cache-{user}"


@dataclass(frozen=True)
class Resource:
    """One file of a dataset and what is needed to find, fetch and verify it.

    ``file_hashes`` are ``(algorithm, hexdigest)`` pairs of whole files accepted as they are (e.g. the
    published ``.gz``); ``content_hashes`` are of the decompressed content, checked when the file
    itself matches none (a hand-made gzip, or an uncompressed copy). ``mirrors`` are base URLs: the
    file's URL is the base followed by ``filename``, which is also the name it is cached under.
    """

    folder: str
    filename: str
    file_hashes: tuple[tuple[str, str], ...]
    content_hashes: tuple[tuple[str, str], ...] = ()
    mirrors: tuple[str, ...] = ()
    description: str = ""

    def names(self) -> tuple[str, str]:
        """Names accepted in a folder: the published name, and its gzip or uncompressed twin."""
        if self.filename.endswith(".gz"):
            return (self.filename, self.filename[: -len(".gz")])
        return (self.filename, self.filename + ".gz")

    def urls(self, mirrors: Sequence[str] | None = None) -> list[str]:
        """Download URLs in the order tried: ``mirrors``, else ``DIGM_MIRRORS``, else the built-in list.

        A file with no built-in mirrors is not downloaded unless ``mirrors`` names some.
        """
        if mirrors is None:
            if not self.mirrors:
                return []  # not published anywhere: DIGM_MIRRORS only replaces real mirror lists
            override = os.environ.get(ENV_MIRRORS, "").strip()
            mirrors = [m for m in re.split(r"[\s,]+", override) if m] if override else self.mirrors
        return [m.replace("{folder}", self.folder).rstrip("/") + "/" + self.filename for m in mirrors]

    @property
    def label(self) -> str:
        return f"{self.folder}/{self.filename}"


@dataclass(frozen=True)
class VerifiedFile:
    """A file whose bytes passed verification; ``sha256`` identifies its content for the memory cache."""

    path: Path
    raw: bytes = field(repr=False)
    sha256: str

    def content(self) -> bytes:
        """The file's content, decompressed in memory when it is gzip (never extracted to disk)."""
        return _gunzip(self.raw, str(self.path)) if self.raw[:2] == _GZIP_MAGIC else self.raw


def _gunzip(raw: bytes, where: str) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptFileError(f"{where} is not a readable gzip file ({err}).") from err


def verify_bytes(resource: Resource, raw: bytes, where: str) -> str:
    """Check ``raw`` against the resource's checksums; return its sha256, or raise.

    Raises :class:`CorruptFileError` for a broken gzip stream and :class:`ChecksumError` when neither
    the file nor its decompressed content matches a published checksum.
    """
    digests = {"sha256": hashlib.sha256(raw).hexdigest()}
    for algo, expected in resource.file_hashes:
        if algo not in digests:
            digests[algo] = hashlib.new(algo, raw).hexdigest()
        if digests[algo] == expected:
            return digests["sha256"]
    if resource.content_hashes:
        content = _gunzip(raw, where) if raw[:2] == _GZIP_MAGIC else raw
        for algo, expected in resource.content_hashes:
            if hashlib.new(algo, content).hexdigest() == expected:
                return digests["sha256"]
    algo, expected = resource.file_hashes[0]
    raise ChecksumError(
        f"{where} ({len(raw):,} bytes, {algo} {digests[algo][:16]}...) does not match the published "
        f"checksum of {resource.filename} ({algo} {expected[:16]}...), so it is not used."
    )


def locate(
    resource: Resource, *, mirrors: Sequence[str] | None = None, offline: bool | None = None
) -> VerifiedFile:
    """Find a verified copy of ``resource``: offline folder, then cache, then a download.

    ``mirrors`` replaces the mirror list (see the module docstring); ``offline`` defaults to
    ``DIGM_OFFLINE``. Raises :class:`DatasetNotFoundError` naming every place tried.
    """
    offline = env_flag(ENV_OFFLINE) if offline is None else offline
    attempts: list[str] = []
    roots: list[tuple[Path, str, bool]] = []
    offline_root = data_dir()
    if offline_root is None:
        attempts.append(f"{ENV_DATA_DIR}: not set")
    elif not offline_root.is_dir():
        attempts.append(f"{ENV_DATA_DIR}={offline_root}: no such folder")
    else:
        roots.append((offline_root, ENV_DATA_DIR, False))
    roots.append((cache_dir(), "cache", True))
    if temporary_cache_dir().joinpath(resource.folder).is_dir():
        roots.append((temporary_cache_dir(), "temporary cache", True))
    for root, label, deletable in roots:
        found = _find_in_folder(resource, root / resource.folder, label, deletable, attempts)
        if found is not None:
            return found
    if offline:
        attempts.append(f"download: not tried because {ENV_OFFLINE}=1")
        raise _not_found(resource, attempts)
    urls = resource.urls(mirrors)
    if not urls:
        attempts.append("download: no mirror is known for this file")
        raise _not_found(resource, attempts)
    target = writable_folder(resource, attempts)
    if target is None:
        raise _not_found(resource, attempts)
    for url in urls:
        try:
            return _download_verified(resource, url, target)
        except DataError as err:
            attempts.append(f"{url}: {err}")
    raise _not_found(resource, attempts)


def _find_in_folder(
    resource: Resource, folder: Path, label: str, deletable: bool, attempts: list[str]
) -> VerifiedFile | None:
    seen = False
    for name in resource.names():
        path = folder / name
        if not path.is_file():
            continue
        seen = True
        try:
            raw = path.read_bytes()
            return VerifiedFile(path, raw, verify_bytes(resource, raw, str(path)))
        except OSError as err:
            attempts.append(f"{path} ({label}): could not be read ({err.strerror or err})")
        except DataError as err:
            note = ""
            if deletable:
                # A bad file in our own cache would fail forever; remove it so a fresh copy replaces it.
                path.unlink(missing_ok=True)
                note = " It was deleted."
            attempts.append(f"{path} ({label}): {err}{note}")
    if not seen:
        attempts.append(f"{folder} ({label}): no {' or '.join(resource.names())}")
    return None


def writable_folder(resource: Resource, attempts: list[str]) -> Path | None:
    """The cache folder for downloads, else the temporary cache (with a warning), else None."""
    for i, root in enumerate((cache_dir(), temporary_cache_dir())):
        folder = root / resource.folder
        try:
            probe_writable(folder)
        except OSError as err:
            attempts.append(f"{folder}: cannot be written ({err.strerror or err})")
            continue
        if i > 0:
            warnings.warn(
                CacheWarning(
                    f"The cache folder {cache_dir()} cannot be written, so {resource.label} is downloaded "
                    f"to {folder} instead; set {ENV_CACHE_DIR} to a writable folder to keep downloads."
                ),
                stacklevel=4,
            )
        return folder
    return None


def _download_verified(resource: Resource, url: str, folder: Path) -> VerifiedFile:
    """Stream ``url`` to a temporary file in ``folder``, verify it, then move it under its final name."""
    remove_stale_parts(folder)
    final = folder / resource.filename
    # A cache is shared data: 0o644 rather than mkstemp's private 0o600.
    with atomic_file(final, mode=CACHE_FILE_MODE) as out:
        print(f"utils.data: downloading {url}", file=sys.stderr, flush=True)
        _stream(url, out)
        out.seek(0)
        raw = out.read()
        digest = verify_bytes(resource, raw, "the download")  # raising here deletes the temporary file
    return VerifiedFile(final, raw, digest)


def _stream(url: str, out: object) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "digm-course-data/1"})
    received = 0
    expected: str | None = None
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            expected = response.headers.get("Content-Length")
            while chunk := response.read(_CHUNK):
                out.write(chunk)  # type: ignore[attr-defined]
                received += len(chunk)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"HTTP {err.code} {err.reason}.") from err
    except http.client.IncompleteRead as err:
        raise DownloadError(f"truncated download, the connection closed after {received:,} bytes.") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise DownloadError(f"download failed after {received:,} bytes ({reason}).") from err
    if expected is not None and expected.isdigit() and received != int(expected):
        raise DownloadError(f"truncated download, {received:,} of {int(expected):,} bytes arrived.")


def remove_stale_parts(folder: Path) -> None:
    """Delete ``.part`` files left by downloads whose process has died (or that are over a day old)."""
    now = time.time()
    for part in folder.glob(f".*{PART_SUFFIX}"):
        pieces = part.name[: -len(PART_SUFFIX)].rsplit(".", 2)
        pid = int(pieces[1]) if len(pieces) == 3 and pieces[1].isdigit() else None
        try:
            old = now - part.stat().st_mtime > STALE_PART_AGE_S
        except OSError:
            continue
        if old or pid is None or not _process_alive(pid):
            part.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no cheap check; the age rule cleans these up
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _not_found(resource: Resource, attempts: list[str]) -> DatasetNotFoundError:
    what = f"{resource.description} ({resource.label})" if resource.description else resource.label
    # Reasons are sentences of their own (a DownloadError ends in "."); inside the list they end at the ";".
    tried = "; ".join(f"({i}) {a.rstrip('. ')}" for i, a in enumerate(attempts, 1))
    return DatasetNotFoundError(f"No verified copy of {what} was found; tried {tried}.", attempts)


class _MemoryCache:
    """Decoded arrays of verified files, keyed by path and content checksum, so a second load is a copy.

    This is one of the package's two pieces of process-wide state (the other is the once-per-process
    flag of the subset warning, ``images.SUBSET_WARNING``): reloading MNIST in every lecture cell
    would otherwise decompress and parse 47 MB each time. The key includes the file's sha256, so a
    file replaced on disk is decoded again; entries are evicted least-recently-used.
    """

    def __init__(self, max_entries: int = 16) -> None:
        self._entries: OrderedDict[Hashable, object] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> object | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


MEMORY_CACHE = _MemoryCache()


def clear_memory_cache() -> None:
    """Forget every decoded dataset held in memory (the next load reads and decodes the files again)."""
    MEMORY_CACHE.clear()


def load_decoded(
    resource: Resource, decode: Callable[[bytes, str], T], *, mirrors: Sequence[str] | None = None
) -> T:
    """Locate and verify ``resource``, then return ``decode(content, where)``, cached per path and checksum.

    The returned object is shared between calls: callers must copy before handing it out.
    """
    found = locate(resource, mirrors=mirrors)
    key = (str(found.path.resolve()), found.sha256, getattr(decode, "__qualname__", repr(decode)))
    cached = MEMORY_CACHE.get(key)
    if cached is None:
        cached = decode(found.content(), str(found.path))
        MEMORY_CACHE.put(key, cached)
    return cached  # type: ignore[return-value]
