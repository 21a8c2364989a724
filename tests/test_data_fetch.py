"""utils.data.sources: finding, downloading, verifying and caching files, against a loopback mirror.

Every download here goes to an ``http.server`` on 127.0.0.1 started by the test; nothing reaches the
internet. Small made-up files stand in for datasets (a ``Resource`` carries its own checksums), and
the real MNIST files are served from ``DIGM_DATA_DIR`` where the end-to-end tests need them.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from utils.data import images, sources
from utils.data.errors import CacheWarning, DatasetNotFoundError
from utils.data.sources import Resource, locate

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFLINE_DATA = os.environ.get("DIGM_DATA_DIR", "").strip()
needs_offline_data = pytest.mark.skipif(
    not OFFLINE_DATA, reason="needs the offline datasets: set DIGM_DATA_DIR (CI sets ../shared/data)"
)

CONTENT = bytes(range(256)) * 64  # 16 KiB of "dataset"
PAYLOAD = gzip.compress(CONTENT, mtime=0)  # what the mirror publishes


def blob_resource(mirrors: tuple[str, ...] = ()) -> Resource:
    return Resource(
        folder="blobs",
        filename="blob.bin.gz",
        file_hashes=(("sha256", hashlib.sha256(PAYLOAD).hexdigest()),),
        content_hashes=(("md5", hashlib.md5(CONTENT).hexdigest()),),
        mirrors=mirrors,
        description="a test blob",
    )


# ---------------------------------------------------------------------------------- loopback mirror


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    send_bytes: int | None = None  # send only this many bytes of the body, then close (truncation)
    stall_after: int | None = None  # send this many bytes, then hang until the test releases it


@dataclass
class Mirror:
    """A loopback HTTP server whose answers each test sets per path; it records every request."""

    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, prefix: str = "") -> str:
        return f"{self.base}/{prefix}".rstrip("/") + "/"


def _handler(mirror: Mirror) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            mirror.requests.append(self.path)
            route = mirror.routes.get(self.path, Route(status=404))
            if route.status != 200:
                self.send_error(route.status)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            if route.stall_after is not None:
                self.wfile.write(route.body[: route.stall_after])
                self.wfile.flush()
                mirror.stalled.set()
                mirror.release.wait(timeout=60)
                return
            self.wfile.write(route.body[: route.send_bytes])
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

    return Handler


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    server.daemon_threads = True
    state = Mirror(base=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    """No offline folder, an empty cache in tmp_path, downloads allowed, a private system temp."""
    for name in ("DIGM_DATA_DIR", "DIGM_MIRRORS", "DIGM_OFFLINE", "DIGM_REQUIRE_FULL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    (tmp_path / "systmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    sources.clear_memory_cache()
    images.SUBSET_WARNING.reset()
    yield tmp_path
    sources.clear_memory_cache()


def cached_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------- tests


def test_download_is_verified_and_cached_under_its_name(env, mirror):
    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD)
    found = locate(blob_resource((mirror.url(),)))
    assert found.path == env / "cache" / "blobs" / "blob.bin.gz", "a download should land in the cache folder"
    assert found.content() == CONTENT, "the content should be the decompressed download"
    assert cached_files(env / "cache") == ["blob.bin.gz"], "no temporary .part file should remain"


def test_mirror_answering_403_or_404_moves_on_to_the_next(env, mirror):
    mirror.routes["/a/blob.bin.gz"] = Route(status=403)
    mirror.routes["/c/blob.bin.gz"] = Route(PAYLOAD)
    found = locate(blob_resource((mirror.url("a"), mirror.url("b"), mirror.url("c"))))
    assert mirror.requests == ["/a/blob.bin.gz", "/b/blob.bin.gz", "/c/blob.bin.gz"], (
        "mirrors should be tried in order until one works"
    )
    assert found.content() == CONTENT


def test_truncated_download_is_rejected_and_the_next_mirror_used(env, mirror):
    mirror.routes["/a/blob.bin.gz"] = Route(PAYLOAD, send_bytes=len(PAYLOAD) // 2)
    mirror.routes["/b/blob.bin.gz"] = Route(PAYLOAD)
    found = locate(blob_resource((mirror.url("a"), mirror.url("b"))))
    assert found.content() == CONTENT, "the complete copy from the second mirror should be used"


def test_truncated_download_alone_is_an_error_and_leaves_nothing(env, mirror):
    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD, send_bytes=len(PAYLOAD) // 2)
    with pytest.raises(DatasetNotFoundError, match="truncated"):
        locate(blob_resource((mirror.url(),)))
    assert cached_files(env / "cache") == [], "a truncated download must not stay in the cache"


def test_file_with_wrong_checksum_is_rejected_and_never_cached(env, mirror):
    mirror.routes["/blob.bin.gz"] = Route(gzip.compress(b"not the dataset"))
    with pytest.raises(DatasetNotFoundError, match="checksum"):
        locate(blob_resource((mirror.url(),)))
    assert cached_files(env / "cache") == [], "a file that fails verification must be deleted"


def test_corrupt_gzip_in_the_cache_is_detected_and_replaced(env, mirror):
    folder = env / "cache" / "blobs"
    folder.mkdir(parents=True)
    (folder / "blob.bin.gz").write_bytes(PAYLOAD[: len(PAYLOAD) // 2])  # a gzip cut in half
    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD)
    found = locate(blob_resource((mirror.url(),)))
    assert mirror.requests == ["/blob.bin.gz"], "the broken cached file should trigger one fresh download"
    assert (folder / "blob.bin.gz").read_bytes() == PAYLOAD, "the cached file should now be the good one"
    assert found.content() == CONTENT


def test_valid_cache_touches_no_network(env, mirror):
    folder = env / "cache" / "blobs"
    folder.mkdir(parents=True)
    (folder / "blob.bin.gz").write_bytes(PAYLOAD)
    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD)
    assert locate(blob_resource((mirror.url(),))).content() == CONTENT
    assert mirror.requests == [], "a verified cached file must be used without any request"


def test_file_placed_by_hand_uncompressed_is_accepted(env, mirror):
    folder = env / "cache" / "blobs"
    folder.mkdir(parents=True)
    (folder / "blob.bin").write_bytes(CONTENT)  # someone gunzipped it; its content checksum matches
    found = locate(blob_resource((mirror.url(),)))
    assert found.content() == CONTENT and mirror.requests == [], "a hand-placed verified copy should be used"


def test_bad_file_in_the_offline_folder_is_reported_not_deleted(env, mirror, monkeypatch):
    offline = env / "offline"
    (offline / "blobs").mkdir(parents=True)
    (offline / "blobs" / "blob.bin.gz").write_bytes(b"\x1f\x8bgarbage")
    monkeypatch.setenv("DIGM_DATA_DIR", str(offline))
    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD)
    assert locate(blob_resource((mirror.url(),))).content() == CONTENT, "the download should take over"
    assert (offline / "blobs" / "blob.bin.gz").exists(), "files in DIGM_DATA_DIR are never deleted"


def test_offline_flag_means_no_request(env, mirror, monkeypatch):
    monkeypatch.setenv("DIGM_OFFLINE", "1")
    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD)
    with pytest.raises(DatasetNotFoundError, match="DIGM_OFFLINE=1"):
        locate(blob_resource((mirror.url(),)))
    assert mirror.requests == [], "DIGM_OFFLINE=1 must not try any download"


def test_error_names_every_place_tried(env, mirror, monkeypatch):
    offline = env / "offline"
    offline.mkdir()
    monkeypatch.setenv("DIGM_DATA_DIR", str(offline))
    mirror.routes["/a/blob.bin.gz"] = Route(status=403)
    urls = (mirror.url("a"), mirror.url("b"))
    with pytest.raises(DatasetNotFoundError) as info:
        locate(blob_resource(urls))
    message = str(info.value)
    for place in (str(offline / "blobs"), str(env / "cache" / "blobs"), urls[0] + "blob.bin.gz", urls[1]):
        assert place in message, f"the error should name {place}; it says: {message}"
    assert "HTTP 403" in message and "HTTP 404" in message, "each mirror's failure should be given"
    assert len(info.value.attempts) == 4, f"expected 4 attempts, got {info.value.attempts}"


def test_error_lists_reasons_without_stray_full_stops(env, mirror):
    mirror.routes["/a/blob.bin.gz"] = Route(status=403)  # a DownloadError's reason is a sentence ending in "."
    with pytest.raises(DatasetNotFoundError) as info:
        locate(blob_resource((mirror.url("a"), mirror.url("b"))))
    message = str(info.value)
    assert ".;" not in message and ".." not in message, f"each listed reason should end at its ';': {message}"
    assert message.endswith("Not Found."), f"the sentence should end with one full stop: {message}"


def test_offline_folder_that_does_not_exist_is_named(env, monkeypatch):
    monkeypatch.setenv("DIGM_DATA_DIR", str(env / "typo"))
    monkeypatch.setenv("DIGM_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError, match=r"DIGM_DATA_DIR=.*typo: no such folder"):
        locate(blob_resource())


def test_unwritable_cache_downloads_to_a_temporary_folder_with_a_warning(env, mirror, monkeypatch):
    blocker = env / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("DIGM_CACHE_DIR", str(blocker / "cache"))  # cannot be created, even as root
    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD)
    with pytest.warns(CacheWarning, match="DIGM_CACHE_DIR"):
        found = locate(blob_resource((mirror.url(),)))
    assert found.path.is_relative_to(env / "systmp"), f"expected a temporary cache, got {found.path}"
    again = locate(blob_resource((mirror.url(),)))
    assert again.path == found.path and len(mirror.requests) == 1, "the temporary copy should be reused"


def test_no_writable_folder_at_all_is_a_clear_error(env, mirror, monkeypatch):
    blocker = env / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("DIGM_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD)
    with pytest.raises(DatasetNotFoundError, match="cannot be written"):
        locate(blob_resource((mirror.url(),)))
    assert mirror.requests == [], "nothing should be downloaded when it cannot be stored"


def test_mirrors_override_from_the_environment(env, mirror, monkeypatch):
    mirror.routes["/blobs/blob.bin.gz"] = Route(PAYLOAD)
    monkeypatch.setenv("DIGM_MIRRORS", f"{mirror.base}/nothing-here/, {mirror.base}/{{folder}}/")
    locate(blob_resource(("https://example.invalid/",)))
    assert mirror.requests == ["/nothing-here/blob.bin.gz", "/blobs/blob.bin.gz"], (
        "DIGM_MIRRORS should replace the built-in mirrors, with {folder} filled in"
    )


_KILLED_DOWNLOAD = """
import sys
from utils.data.sources import Resource, locate
locate(Resource(folder="blobs", filename="blob.bin.gz", file_hashes=(("sha256", sys.argv[1]),),
                mirrors=(sys.argv[2],)))
"""


def test_killed_download_leaves_no_file_under_the_final_name(env, mirror):
    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD, stall_after=len(PAYLOAD) // 2)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_DOWNLOAD, sha, mirror.url()],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    folder = env / "cache" / "blobs"
    try:
        started = mirror.stalled.wait(timeout=60)
        deadline = time.monotonic() + 10
        while started and not list(folder.glob(".*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        parts = list(folder.glob(".*.part"))
    finally:
        process.send_signal(signal.SIGKILL)  # this test's own child, by its pid
        process.wait(timeout=30)
        errors = process.stderr.read().decode(errors="replace")
        process.stderr.close()
    assert started, f"the download never started; the child said: {errors[-2000:]}"
    assert parts, "the download should have been writing a temporary .part file when it was killed"
    assert not (folder / "blob.bin.gz").exists(), (
        "a killed download must not leave a file under the final name"
    )

    mirror.routes["/blob.bin.gz"] = Route(PAYLOAD)
    locate(blob_resource((mirror.url(),)))
    assert cached_files(folder) == ["blob.bin.gz"], "the next download should clear the dead process's .part"


# ------------------------------------------------------------- end to end with the real dataset files


def _serve_offline_file(mirror: Mirror, folder: str, name: str, *, decompress: bool = False) -> None:
    body = (Path(OFFLINE_DATA) / folder / name).read_bytes()
    if decompress:
        body, name = gzip.decompress(body), name.removesuffix(".gz")
    mirror.routes[f"/{folder}/{name}"] = Route(body)


@needs_offline_data
def test_load_mnist_downloads_and_then_reuses_the_cache(env, mirror, monkeypatch):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        _serve_offline_file(mirror, "mnist", name)
    monkeypatch.setenv("DIGM_MIRRORS", f"{mirror.base}/{{folder}}/")
    downloaded, labels = images.load_mnist("test")
    assert len(mirror.requests) == 2, f"two files should be fetched, got {mirror.requests}"
    sources.clear_memory_cache()
    again, _ = images.load_mnist("test")
    assert len(mirror.requests) == 2, "the second load should come from the cache"
    monkeypatch.setenv("DIGM_DATA_DIR", OFFLINE_DATA)
    reference, reference_labels = images.load_mnist("test")
    assert torch.equal(downloaded, reference) and torch.equal(labels, reference_labels)
    assert torch.equal(again, reference)


@needs_offline_data
def test_binarized_mnist_from_a_mirror_serving_uncompressed_amat(env, mirror, monkeypatch):
    _serve_offline_file(mirror, "binarized-mnist", "binarized_mnist_test.amat.gz", decompress=True)
    monkeypatch.setenv("DIGM_MIRRORS", f"{mirror.base}/{{folder}}/")
    downloaded = images.load_binarized_mnist("test")
    assert mirror.requests == ["/binarized-mnist/binarized_mnist_test.amat"]
    monkeypatch.setenv("DIGM_DATA_DIR", OFFLINE_DATA)
    assert torch.equal(downloaded, images.load_binarized_mnist("test")), (
        "the .amat verified by its sha1 should decode to the same rows as the offline gzip copy"
    )
