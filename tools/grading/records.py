"""Which submissions and assignment sources changed since they were graded or recorded.

nbgrader regrades a submission only when both the new and the graded copy hold a timestamp.txt and
the new one is later, so a notebook replaced by hand (no timestamp.txt) or a resubmission with an
older file date kept its old score. The course decides by content instead: a fingerprint of the
submitted notebook and of the assignment source is recorded for each graded submission, in
``grading/graded-submissions.json`` beside the gradebook; the sources the gradebook holds are
fingerprinted in ``grading/gradebook-sources.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from traitlets.config import Config

from tools.grading.config import course_dir, db_path, generate


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records_path(cfg: Config) -> Path:
    return db_path(cfg).with_name("graded-submissions.json")


def load_records(cfg: Config) -> dict[str, dict]:
    path = records_path(cfg)
    return json.loads(path.read_text()) if path.exists() else {}


def save_record(cfg: Config, key: str, record: dict | None) -> None:
    records = load_records(cfg)
    if record is None:
        records.pop(key, None)
    else:
        records[key] = record
    records_path(cfg).parent.mkdir(parents=True, exist_ok=True)
    records_path(cfg).write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")


def submission_paths(cfg: Config, assignment: str, student: str) -> tuple[Path, Path, Path]:
    """(submitted notebook, autograded notebook, assignment source notebook)."""
    name = f"{assignment}.ipynb"
    return (
        course_dir(cfg, "submitted") / student / assignment / name,
        course_dir(cfg, "autograded") / student / assignment / name,
        course_dir(cfg, "source") / assignment / name,
    )


def regrade_reason(cfg: Config, assignment: str, student: str) -> str | None:
    """Why a submission must be autograded (again), in a few words; None when neither the
    submitted notebook nor the assignment source changed since it was last graded."""
    from nbgrader.api import Gradebook, MissingEntry

    submitted, autograded, source = submission_paths(cfg, assignment, student)
    if not autograded.exists():
        return "new"
    if db_path(cfg).exists():
        with Gradebook(cfg.CourseDirectory.db_url) as gb:
            try:
                gb.find_submission(assignment, student)
            except MissingEntry:
                return "not in the gradebook"
    record = load_records(cfg).get(f"{assignment}/{student}")
    if record is None:
        return "no fingerprint of the graded version"
    if not submitted.exists() or record.get("notebook") != sha256(submitted):
        return "submission changed"
    if record.get("source") != sha256(source):
        return "assignment changed"
    return None


def stamp(submitted: Path, ours: str | None) -> str | None:
    """Give a submission without ``timestamp.txt`` one from the notebook's modification time, so
    that nbgrader's own newer-than check and the gradebook's submission time agree with it.

    ``ours`` is the text this module wrote last time: such a stamp follows the notebook when it is
    replaced, while one written by ``collect`` or the instructor is never touched. Returns the text
    this module now owns, or None.
    """
    stamp_file = submitted.parent / "timestamp.txt"
    current = stamp_file.read_text().strip() if stamp_file.exists() else None
    if current is not None and current != ours:
        return None
    mtime = dt.datetime.fromtimestamp(submitted.stat().st_mtime, tz=dt.timezone.utc)
    text = timestamp_text(mtime)
    stamp_file.write_text(text + "\n")
    return text


def timestamp_text(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f %Z")


def sync_gradebook(cfg: Config, assignment: str, scratch: Path) -> None:
    """Record ``solutions/<assignment>`` in the gradebook (its test cells, points and checksums),
    unless the gradebook already holds this exact source (a fingerprint beside the database says so).

    nbgrader generate_assignment does the recording; its student version goes to ``scratch`` so
    that ``assignments/`` is left alone.
    """
    from nbgrader.api import Gradebook, MissingEntry

    source = course_dir(cfg, "source") / assignment / f"{assignment}.ipynb"
    fingerprint = sha256(source)
    record = db_path(cfg).with_name("gradebook-sources.json")
    known = json.loads(record.read_text()) if record.exists() else {}
    if known.get(assignment) == fingerprint and db_path(cfg).exists():
        with Gradebook(cfg.CourseDirectory.db_url) as gb:
            try:
                gb.find_notebook(assignment, assignment)
                return
            except MissingEntry:
                pass
    generate(cfg, assignment, scratch)
    known[assignment] = fingerprint
    record.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
