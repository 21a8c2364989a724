"""File an LMS download (``<student>_<assignment>.ipynb`` files) into ``grading/submitted``."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.grading.config import assignment_ids, course_config, course_dir
from tools.grading.records import timestamp_text

_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class _Download:
    """One ``<student>_<assignment>[-N].ipynb`` file of an LMS download; ``attempt`` is N (0 without)."""

    path: Path
    student: str
    assignment: str
    attempt: int


def _parse_download(path: Path, known: Sequence[str]) -> _Download | str:
    """The student, assignment and attempt a file name gives, or why the file cannot be filed."""
    # The longest matching id wins, so that an id that ends another (vae, a2_vae) cannot steal its files.
    for assignment in sorted(known, key=len, reverse=True):
        match = re.fullmatch(
            rf"(?P<student>.*)_{re.escape(assignment)}(?:-(?P<attempt>\d+))?\.ipynb", path.name
        )
        if match:
            break
    else:
        return f"{path.name}: name it <student>_<assignment>.ipynb with one of {', '.join(known)}"
    student = match["student"]
    if not _STUDENT_ID.match(student):
        return f"{path.name}: the student id {student!r} may hold only letters, digits, '.', '_' and '-'"
    return _Download(path, student, assignment, int(match["attempt"] or 0))


def _latest_attempts(downloads: Sequence[_Download]) -> list[_Download]:
    """Per student and assignment, the file with the highest -N counter (the newest file on a tie)."""
    latest: dict[tuple[str, str], _Download] = {}
    for d in downloads:
        key = (d.student, d.assignment)
        rank = (d.attempt, d.path.stat().st_mtime)
        if key not in latest or rank > (latest[key].attempt, latest[key].path.stat().st_mtime):
            latest[key] = d
    return [latest[key] for key in sorted(latest)]


def collect(
    folder: str | os.PathLike, *, root: str | os.PathLike | None = None
) -> tuple[list[Path], list[str]]:
    """Copy ``<student>_<assignment>.ipynb`` files (an LMS download) into ``grading/submitted``.

    A trailing ``-N`` counts resubmissions: of several files of one student for one assignment,
    the one with the highest N (none counts as 0) is filed, whatever order the names sort in.
    The file's modification time becomes the submission timestamp. Returns the files written and
    one sentence per file that could not be filed.
    """
    cfg = course_config(root)
    known = assignment_ids(root)
    downloads, skipped = [], []
    for path in sorted(Path(folder).glob("*.ipynb")):
        parsed = _parse_download(path, known)
        if isinstance(parsed, str):
            skipped.append(parsed)
        else:
            downloads.append(parsed)
    written = []
    for d in _latest_attempts(downloads):
        target_dir = course_dir(cfg, "submitted") / d.student / d.assignment
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{d.assignment}.ipynb"
        shutil.copy2(d.path, target)
        stamp = dt.datetime.fromtimestamp(d.path.stat().st_mtime, tz=dt.timezone.utc)
        (target_dir / "timestamp.txt").write_text(timestamp_text(stamp) + "\n")
        written.append(target)
    return written, skipped

