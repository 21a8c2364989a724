"""utils.files: atomic replacement and the writable-folder probe that checkpoints and downloads share."""

from __future__ import annotations

import pytest

from utils import files


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(files.PART_SUFFIX))


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    files.atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert leftovers(tmp_path) == [], "the temporary file should have been renamed, not left behind"


def test_a_failure_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="checksum"):
        with files.atomic_file(target) as out:
            out.write(b"half a new fi")
            raise RuntimeError("checksum mismatch")
    assert target.read_bytes() == b"old", "a failed write must not touch the file under the final name"
    assert leftovers(tmp_path) == [], "a failed write must delete its temporary file"


def test_the_block_can_read_back_what_it_wrote(tmp_path):
    with files.atomic_file(tmp_path / "x") as out:
        out.write(b"abc")
        out.seek(0)
        assert out.read() == b"abc", "a download is verified from the temporary file before it is kept"


def test_mode_sets_the_permission_bits(tmp_path):
    files.atomic_write(tmp_path / "shared", b"x", mode=0o644)
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o644, "mkstemp's private 0o600 should be replaced"


def test_probe_creates_missing_folders_and_leaves_nothing(tmp_path):
    folder = files.probe_writable(tmp_path / "a" / "b")
    assert folder.is_dir() and list(folder.iterdir()) == [], "the probe file should be gone"


def test_probe_fails_where_a_file_is_in_the_way(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    with pytest.raises(OSError):
        files.probe_writable(tmp_path / "blocker" / "sub")
