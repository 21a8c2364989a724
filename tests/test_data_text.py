"""utils.data text corpus: load_text, CharVocab, and rebuilding the novels from the Debian package.

The Debian-package path is tested with a package this file builds itself (an ``ar`` archive with a
``data.tar.xz`` holding an R lazy-load database of the offline novels), served by a loopback mirror;
the real package's bytes are not available offline, so its sha256 is replaced for the test.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import os
import struct
import tarfile
import tempfile
import threading
import zlib
from pathlib import Path

import pytest
import torch

from utils import data
from utils.data import rdata, sources, text
from utils.data.errors import CorruptFileError, DatasetNotFoundError

OFFLINE_DATA = os.environ.get("DIGM_DATA_DIR", "").strip()
needs_offline_data = pytest.mark.skipif(
    not OFFLINE_DATA, reason="needs the offline datasets: set DIGM_DATA_DIR (CI sets ../shared/data)"
)
TOTAL_CHARS = 4_025_028  # from ../shared/data/text/README.txt


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    for name in ("DIGM_DATA_DIR", "DIGM_MIRRORS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGM_OFFLINE", "1")  # only the test that serves a package allows downloads
    monkeypatch.setenv("DIGM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    (tmp_path / "systmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    sources.clear_memory_cache()
    yield tmp_path
    sources.clear_memory_cache()


def reference_text() -> str:
    folder = Path(OFFLINE_DATA) / "text"
    return "".join((folder / name).read_text(encoding="utf-8") for name, *_ in text.AUSTEN_NOVELS)


# ------------------------------------------------------------------------------------ the corpus


@needs_offline_data
def test_corpus_is_the_six_novels_in_publication_order(isolated, monkeypatch):
    monkeypatch.setenv("DIGM_DATA_DIR", OFFLINE_DATA)
    corpus = data.load_text()
    assert len(corpus) == TOTAL_CHARS and len(set(corpus)) == 81, "expected 4,025,028 characters, 81 distinct"
    assert corpus.startswith("SENSE AND SENSIBILITY"), (
        "the first novel should be Sense and Sensibility (1811)"
    )
    assert corpus == reference_text()


@needs_offline_data
def test_limit_chars_is_a_prefix(isolated, monkeypatch):
    monkeypatch.setenv("DIGM_DATA_DIR", OFFLINE_DATA)
    assert data.load_text(limit_chars=1000) == reference_text()[:1000]


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_bad_limit_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="limit_chars"):
        data.load_text(limit_chars=bad)


def test_missing_corpus_names_the_places_and_the_package(isolated):
    with pytest.raises(DatasetNotFoundError) as info:
        data.load_text()
    message = str(info.value)
    for needle in ("DIGM_DATA_DIR", str(isolated / "cache" / "text"), "r-cran-janeaustenr", "DIGM_OFFLINE=1"):
        assert needle in message, f"the error should mention {needle!r}: {message}"


# ---------------------------------------------------------------------------------- CharVocab


def test_vocab_round_trip():
    vocab = data.CharVocab.from_text("the quick brown fox £")
    ids = vocab.encode("fox £ the")
    assert ids.dtype == torch.int64 and ids.shape == (9,)
    assert vocab.decode(ids) == "fox £ the" and vocab.decode(ids.tolist()) == "fox £ the"


def test_vocab_ids_follow_sorted_characters():
    vocab = data.CharVocab.from_text("cab")
    assert vocab.chars == ("a", "b", "c") and vocab.encode("abc").tolist() == [0, 1, 2] and len(vocab) == 3


def test_unknown_character_is_named_with_its_position():
    vocab = data.CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"'z' at position 2"):
        vocab.encode("abz")


def test_decode_rejects_ids_outside_the_vocabulary_and_2d_input():
    vocab = data.CharVocab.from_text("abc")
    with pytest.raises(ValueError, match="outside"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="1-D"):
        vocab.decode(torch.zeros(2, 2, dtype=torch.long))


def test_empty_text_has_no_vocabulary():
    with pytest.raises(ValueError, match="empty"):
        data.CharVocab.from_text("")


# ------------------------------------------------------- R serialization and the Debian package


def r_int(value: int) -> bytes:
    return struct.pack(">i", value)


def r_string(value: str | None, latin1: bool = False) -> bytes:
    if value is None:
        return r_int(9) + r_int(-1)
    level = 1 << 2 if latin1 else 1 << 3
    raw = value.encode("latin-1" if latin1 else "utf-8")
    return r_int(9 | (level << 12)) + r_int(len(raw)) + raw


def r_strings(values: list[str | None]) -> bytes:
    return r_int(16) + r_int(len(values)) + b"".join(r_string(v) for v in values)


def r_named_list(items: dict[str, bytes]) -> bytes:
    """A VECSXP with a names attribute (a pairlist whose tag is the symbol ``names``)."""
    body = r_int(19 | (1 << 9)) + r_int(len(items)) + b"".join(items.values())
    names = r_int(2 | (1 << 10)) + r_int(1) + r_string("names") + r_strings(list(items)) + r_int(254)
    return body + names


def r_serialize(item: bytes, version: int = 2) -> bytes:
    header = b"X\n" + r_int(version) + r_int(0x040201) + r_int(0x020300)
    if version == 3:
        header += r_int(5) + b"UTF-8"
    return header + item


def lazyload_db(objects: dict[str, bytes]) -> tuple[bytes, bytes]:
    """(rdx, rdb) bytes of an R lazy-load database holding the serialized ``objects``."""
    rdb, spans = b"", {}
    for name, item in objects.items():
        raw = r_serialize(item, version=3)
        blob = struct.pack(">I", len(raw)) + zlib.compress(raw)
        spans[name] = r_int(13) + r_int(2) + r_int(len(rdb)) + r_int(len(blob))
        rdb += blob
    index = r_named_list(
        {
            "variables": r_named_list(spans),
            "references": r_named_list({}),
            "compressed": r_int(10) + r_int(1) + r_int(1),
        }
    )
    return gzip.compress(r_serialize(index)), rdb


def debian_package(objects: dict[str, bytes]) -> bytes:
    rdx, rdb = lazyload_db(objects)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:xz", preset=0) as tar:
        for name, body in (("Rdata.rdx", rdx), ("Rdata.rdb", rdb)):
            info = tarfile.TarInfo("./usr/lib/R/site-library/janeaustenr/data/" + name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    archive = b"!<arch>\n"
    for name, body in (("debian-binary", b"2.0\n"), ("data.tar.xz", tar_bytes.getvalue())):
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode()
        archive += header + body + (b"\n" if len(body) % 2 else b"")
    return archive


def test_rdata_reads_strings_na_latin1_and_named_lists():
    latin = r_int(16) + r_int(2) + r_string("£5", latin1=True) + r_string(None)
    obj = rdata.unserialize(r_serialize(r_named_list({"a": latin, "b": r_strings(["x"])}), version=3))
    named = obj.named()
    assert named["a"].values == ["£5", None] and named["b"].values == ["x"]


def test_rdata_rejects_what_it_cannot_read():
    with pytest.raises(CorruptFileError, match="XDR"):
        rdata.unserialize(b"A\n" + r_int(2))
    with pytest.raises(CorruptFileError, match="type 3"):
        rdata.unserialize(r_serialize(r_int(3)))  # a closure
    with pytest.raises(CorruptFileError, match="ends in the middle"):
        rdata.unserialize(r_serialize(r_strings(["abc"]))[:-2])


@functools.cache
def novel_objects() -> dict[str, bytes]:
    folder = Path(OFFLINE_DATA) / "text"
    objects = {}
    for name, _, r_name, _ in text.AUSTEN_NOVELS:
        lines = (folder / name).read_text(encoding="utf-8").split("\n")[:-1]  # each file ends in "\n"
        objects[r_name] = r_strings(lines)
    return objects


@needs_offline_data
def test_novels_are_rebuilt_from_a_downloaded_debian_package(isolated, monkeypatch):
    package = debian_package(novel_objects())
    fake = dataclasses.replace(
        text.DEBIAN_PACKAGE, file_hashes=(("sha256", hashlib.sha256(package).hexdigest()),)
    )
    monkeypatch.setattr(text, "DEBIAN_PACKAGE", fake)
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            requests.append(self.path)
            if self.path != f"/text/{fake.filename}":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(package)))
            self.end_headers()
            self.wfile.write(package)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        monkeypatch.delenv("DIGM_OFFLINE")
        monkeypatch.setenv("DIGM_MIRRORS", f"http://127.0.0.1:{server.server_address[1]}/{{folder}}/")
        corpus = data.load_text()
        sources.clear_memory_cache()
        again = data.load_text()
    finally:
        server.shutdown()
        server.server_close()
    assert corpus == reference_text() and again == corpus, "the rebuilt novels should equal the offline files"
    assert requests == [f"/text/{fake.filename}"], f"only the package should be fetched, once: {requests}"
    cached = sorted(p.name for p in (isolated / "cache" / "text").glob("*.txt"))
    assert cached == sorted(name for name, *_ in text.AUSTEN_NOVELS), "each novel should be in the cache"


@needs_offline_data
def test_a_package_with_an_altered_novel_is_rejected(isolated):
    objects = dict(novel_objects())
    objects["emma"] = r_strings(["EMMA", "", "an altered text"])
    with pytest.raises(data.ChecksumError, match="emma.txt"):
        text.unpack_novels(debian_package(objects))
    assert not (isolated / "cache" / "text").exists(), "nothing should be written from a bad package"
