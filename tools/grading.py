"""Auto-graded assignments: release, grade, validate and collect, with nbgrader underneath.

Instructors (from the repository root; `make release` and `make grade` call the first two)::

    python -m tools.grading release [ASSIGNMENT ...]   # solutions/<id> -> assignments/<id> (student versions)
    python -m tools.grading grade [ASSIGNMENT ...]     # grading/submitted/* -> scores, feedback, grades.csv
    python -m tools.grading collect DIR                # DIR/<student>_<id>.ipynb -> grading/submitted/...
    python -m tools.grading check                      # exit 1 when assignments/ is out of date

Students::

    python -m tools.grading validate assignments/a1_estimators/a1_estimators.ipynb

The course layout and nbgrader settings (timeouts, feedback without hidden tests) live in
``nbgrader_config.py`` at the repository root; every function here takes ``root`` so that tests can
run the same pipeline in a temporary course directory holding a copy of ``solutions/``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = "nbgrader_config.py"
TIMEOUT_ENAME = "CellTimeoutError"

# nbgrader cell metadata that changes from run to run or carries no meaning for the student version.
_VOLATILE_NB_METADATA = ("widgets", "celltoolbar")


# ----------------------------------------------------------------------------------------------
# configuration


def course_config(root: str | os.PathLike | None = None, *, timeout: int | None = None) -> Config:
    """nbgrader settings from ``nbgrader_config.py``, for the course directory ``root``.

    ``root`` defaults to the repository; a test passes a temporary copy. The gradebook and the other
    instructor folders keep their place relative to ``root``. ``timeout`` (seconds per cell)
    overrides the configured one.
    """
    _put_venv_tools_on_path()
    config_dir = Path(root) if root is not None and (Path(root) / CONFIG_FILE).exists() else REPO_ROOT
    cfg = PyFileConfigLoader(CONFIG_FILE, path=str(config_dir)).load_config()
    configured_root = Path(cfg.CourseDirectory.root)
    course_root = Path(root).resolve() if root is not None else configured_root
    db_file = Path(cfg.CourseDirectory.db_url.removeprefix("sqlite:///"))
    cfg.CourseDirectory.root = str(course_root)
    cfg.CourseDirectory.db_url = "sqlite:///" + str(course_root / db_file.relative_to(configured_root))
    # Unchanged cells with hidden tests are restored quietly; real edits are reported by name.
    from nbgrader.converters.autograde import Autograde

    sanitize = list(Autograde.class_traits()["sanitize_preprocessors"].default())
    cfg.Autograde.sanitize_preprocessors = [
        _restore_locked_cells_class() if _is_overwrite(p) else p for p in sanitize
    ]
    if timeout is not None:
        cfg.Execute.timeout = int(timeout)
    return cfg


def _put_venv_tools_on_path() -> None:
    """nbgrader runs the ``alembic`` command of its own environment to open the gradebook; make it
    findable when this module runs as ``.venv/bin/python -m tools.grading`` without an activated venv."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def _is_overwrite(preprocessor: type) -> bool:
    from nbgrader.preprocessors import OverwriteCells

    return preprocessor is OverwriteCells


def released_source(source: str) -> str:
    """A locked cell's source as students got it: the gradebook keeps its hidden tests, the release not."""
    from nbgrader.preprocessors import ClearHiddenTests

    cell = nbformat.from_dict({"source": source, "metadata": {}})
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source


def _restore_locked_cells_class() -> type:
    """nbgrader's OverwriteCells without its false alarm on hidden tests (nbgrader issue #1961).

    The gradebook stores each locked cell with its hidden tests, students see it without them, so
    nbgrader warns that every such cell was edited. A cell whose source is the released one gets its
    hidden tests back silently; any other edit is overwritten from the gradebook with nbgrader's warning
    (``edited_locked_cells`` reports those cells by name).
    """
    from nbgrader.api import MissingEntry
    from nbgrader.preprocessors import OverwriteCells

    class RestoreLockedCells(OverwriteCells):
        def preprocess_cell(self, cell, resources, cell_index):
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id is not None:
                try:
                    source_cell = self.gradebook.find_source_cell(
                        grade_id, self.notebook_id, self.assignment_id
                    )
                except MissingEntry:
                    source_cell = None
                if (
                    source_cell is not None
                    and source_cell.locked
                    and cell.source == released_source(source_cell.source)
                ):
                    cell.source = source_cell.source
            return super().preprocess_cell(cell, resources, cell_index)

    return RestoreLockedCells


def edited_locked_cells(cfg: Config, assignment: str, notebook: Path) -> tuple[list[str], list[str]]:
    """(edited, deleted): ids of locked cells of a submission that differ from the release or are gone.

    Grading restores edited cells from the gradebook, so this is for the instructor's attention only.
    """
    from nbgrader.api import Gradebook

    with Gradebook(cfg.CourseDirectory.db_url) as gb:
        source_cells = gb.find_notebook(assignment, assignment).source_cells
        locked = {c.name: c.source for c in source_cells if c.locked}
    submitted = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nbformat.read(notebook, as_version=4).cells
        if "grade_id" in c.metadata.get("nbgrader", {})
    }
    edited = [
        name
        for name, source in locked.items()
        if name in submitted and submitted[name] != released_source(source)
    ]
    return sorted(edited), sorted(set(locked) - set(submitted))


def _api(cfg: Config):
    """An NbGraderAPI that logs warnings only (the per-step INFO chatter would bury the summary)."""
    from nbgrader.apps import NbGraderAPI

    cfg = copy.deepcopy(cfg)
    cfg.NbGraderAPI.log_level = "WARN"
    return NbGraderAPI(config=cfg)


def _course_dir(cfg: Config, step: str) -> Path:
    return Path(cfg.CourseDirectory.root) / getattr(cfg.CourseDirectory, f"{step}_directory")


def assignment_ids(root: str | os.PathLike | None = None) -> list[str]:
    """Every ``<id>`` with a source notebook ``solutions/<id>/<id>.ipynb``, sorted."""
    source = _course_dir(course_config(root), "source")
    return (
        sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file())
        if source.is_dir()
        else []
    )


def _check_ids(requested: Sequence[str] | None, root: str | os.PathLike | None) -> list[str]:
    known = assignment_ids(root)
    if not requested:
        return known
    unknown = [a for a in requested if a not in known]
    if unknown:
        raise SystemExit(
            f"Unknown assignment(s) {', '.join(unknown)}; the sources in solutions/ are: {', '.join(known) or 'none'}."
        )
    return list(requested)


# ----------------------------------------------------------------------------------------------
# release


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The committed form of a student notebook: no outputs, counts or widget state; nbgrader
    metadata (ids, points, checksums, locks) kept."""
    nb = copy.deepcopy(nb)
    for key in _VOLATILE_NB_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def comparable(nb: nbformat.NotebookNode) -> list[dict]:
    """What must agree between a committed student notebook and a fresh release: each cell's type,
    source and nbgrader metadata (the checksums included, so a changed test cell is caught)."""
    return [
        {
            "cell_type": cell.cell_type,
            "source": cell.source,
            "nbgrader": dict(cell.metadata.get("nbgrader", {})),
        }
        for cell in nb.cells
    ]


def _generate(cfg: Config, assignment: str, release_dir: Path) -> None:
    """nbgrader generate_assignment into ``release_dir``; the gradebook in ``cfg`` records the cells."""
    cfg = copy.deepcopy(cfg)
    cfg.CourseDirectory.release_directory = str(release_dir)
    _db_path(cfg).parent.mkdir(parents=True, exist_ok=True)
    result = _api(cfg).generate_assignment(assignment, force=True)
    if not result["success"]:
        detail = (result.get("log") or "") + (result.get("error") or "")
        raise RuntimeError(f"nbgrader could not generate {assignment!r} from solutions/:\n{detail.strip()}")


def release(
    assignments: Sequence[str] | None = None,
    *,
    root: str | os.PathLike | None = None,
    dest: str | os.PathLike | None = None,
) -> list[Path]:
    """Regenerate the student versions of ``assignments`` (default: all) into ``dest``/<id>/.

    ``dest`` defaults to the course's release folder (``assignments/``). A throw-away gradebook is
    used, so releasing never touches the instructor's grades. Returns the notebooks written.
    """
    cfg = course_config(root)
    dest = Path(dest) if dest is not None else _course_dir(cfg, "release")
    written = []
    with tempfile.TemporaryDirectory(prefix="digm-release-") as tmp:
        cfg.CourseDirectory.db_url = "sqlite:///" + str(Path(tmp) / "gradebook.db")
        for assignment in _check_ids(assignments, root):
            generated = Path(tmp) / "release"
            _generate(cfg, assignment, generated)
            out_dir = dest / assignment
            if out_dir.exists():
                shutil.rmtree(out_dir)
            shutil.copytree(generated / assignment, out_dir)
            for path in sorted(out_dir.rglob("*.ipynb")):
                nb = nbformat.read(path, as_version=4)
                nbformat.write(student_notebook(nb), path)
                written.append(path)
            shutil.rmtree(generated)
    return written


def out_of_date(root: str | os.PathLike | None = None) -> list[str]:
    """Differences between the committed ``assignments/`` and a fresh release of ``solutions/``,
    one sentence each (empty when up to date). Compared per cell: type, source and nbgrader metadata
    (checksums included); outputs in a committed notebook count as a difference too."""
    cfg = course_config(root)
    committed_dir = _course_dir(cfg, "release")
    problems = []
    with tempfile.TemporaryDirectory(prefix="digm-check-") as tmp:
        fresh = release(root=root, dest=tmp)
        for path in fresh:
            committed = committed_dir / path.relative_to(tmp)
            if not committed.exists():
                problems.append(f"{committed} is missing")
                continue
            old_nb = nbformat.read(committed, as_version=4)
            old, new = comparable(old_nb), comparable(nbformat.read(path, as_version=4))
            if old != new:
                cells = [str(i) for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b]
                if len(old) != len(new):
                    cells.append(f"{len(old)} cells instead of {len(new)}")
                problems.append(f"{committed} differs from its source (cells {', '.join(cells)})")
            elif old_nb != student_notebook(old_nb):
                problems.append(f"{committed} holds outputs, execution counts or widget state")
    sources = set(assignment_ids(root))
    if committed_dir.is_dir():
        for folder in sorted(p for p in committed_dir.iterdir() if p.is_dir() and p.name not in sources):
            problems.append(f"{folder} has no source in {_course_dir(cfg, 'source')}")
    return problems


# ----------------------------------------------------------------------------------------------
# grading


@dataclass
class SubmissionResult:
    """One student's graded (or failed) submission of one assignment.

    ``unchanged`` marks a submission that was not autograded again because neither it nor the
    assignment changed since it was graded; its feedback was still rewritten.
    """

    student: str
    assignment: str
    graded: bool
    score: float = 0.0
    max_score: float = 0.0
    needs_manual_grade: bool = False
    cell_scores: dict[str, float | None] = field(default_factory=dict)
    review_cells: list[str] = field(default_factory=list)
    edited_locked_cells: list[str] = field(default_factory=list)
    deleted_locked_cells: list[str] = field(default_factory=list)
    timed_out_cells: list[str] = field(default_factory=list)
    rewritten_answers: list[str] = field(default_factory=list)
    unchanged: bool = False
    error: str = ""

    @property
    def status(self) -> str:
        """``failed``, ``unchanged`` (not autograded again, feedback refreshed) or ``graded``."""
        if not self.graded:
            return "failed"
        return "unchanged" if self.unchanged else "graded"

    @property
    def pending_cells(self) -> list[str]:
        """Written answers that wait for a grader: nbgrader has no score for them yet."""
        return [name for name, score in self.cell_scores.items() if score is None]

    @property
    def manual_pending(self) -> int:
        return len(self.pending_cells)

    @property
    def notes(self) -> str:
        parts = []
        if not self.graded:
            parts.append(f"NOT GRADED: {self.error}")
        if self.timed_out_cells:
            parts.append(f"timeout in {', '.join(self.timed_out_cells)}")
        if self.edited_locked_cells:
            parts.append(f"edited locked cells (restored): {', '.join(self.edited_locked_cells)}")
        if self.deleted_locked_cells:
            parts.append(f"deleted locked cells: {', '.join(self.deleted_locked_cells)}")
        if self.pending_cells and self.graded:
            parts.append(f"to grade by hand: {', '.join(self.pending_cells)}")
        if self.rewritten_answers:
            parts.append(
                f"written answers changed since graded by hand (grade again): {', '.join(self.rewritten_answers)}"
            )
        return "; ".join(parts)


def submissions(assignment: str, cfg: Config) -> list[str]:
    """Students with a folder ``grading/submitted/<student>/<assignment>/``, sorted."""
    submitted = _course_dir(cfg, "submitted")
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())


_EXCEPTION_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(?P<name>\w+(?:Error|Exception|Entry)): (?P<message>.*)$")


def _failure_reason(text: str) -> str:
    """The first real exception named in an nbgrader log (its own wrapper exception says nothing)."""
    for line in text.splitlines():
        match = _EXCEPTION_LINE.match(line)
        if match and match["name"] != "NbGraderException":
            name, message = match["name"], match["message"].strip()
            if name == "DeadKernelError":
                return "the kernel died (the notebook crashed Python or ran out of memory)"
            return f"{name}: {message}"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _timed_out_cells(notebook: Path) -> list[str]:
    if not notebook.exists():
        return []
    nb = nbformat.read(notebook, as_version=4)
    names = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(o.get("ename") == TIMEOUT_ENAME for o in cell.get("outputs", [])):
            names.append(cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {index}"))
    return names


def _read_result(cfg: Config, assignment: str, student: str, result: SubmissionResult) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(cfg.CourseDirectory.db_url) as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return
        result.score = float(sub.score)
        result.max_score = float(sub.max_score)
        result.needs_manual_grade = bool(sub.needs_manual_grade)
        result.cell_scores, result.review_cells = {}, []
        for notebook in sub.notebooks:
            for grade in notebook.grades:
                value = grade.manual_score if grade.manual_score is not None else grade.auto_score
                result.cell_scores[grade.name] = None if value is None else float(value)
                if grade.manual_score is not None and grade.needs_manual_grade:
                    # graded by hand before an autograde run that nbgrader wants reviewed
                    result.review_cells.append(grade.name)


# ----------------------------------------------------------------------------------------------
# which submissions changed since they were graded
#
# nbgrader regrades a submission only when both the new and the graded copy hold a timestamp.txt and
# the new one is later, so a notebook replaced by hand (no timestamp.txt) or a resubmission with an
# older file date kept its old score. The course decides by content instead: a fingerprint of the
# submitted notebook and of the assignment source is recorded for each graded submission.


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records_path(cfg: Config) -> Path:
    return _db_path(cfg).with_name("graded-submissions.json")


def _load_records(cfg: Config) -> dict[str, dict]:
    path = _records_path(cfg)
    return json.loads(path.read_text()) if path.exists() else {}


def _save_record(cfg: Config, key: str, record: dict | None) -> None:
    records = _load_records(cfg)
    if record is None:
        records.pop(key, None)
    else:
        records[key] = record
    _records_path(cfg).parent.mkdir(parents=True, exist_ok=True)
    _records_path(cfg).write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")


def _paths(cfg: Config, assignment: str, student: str) -> tuple[Path, Path, Path]:
    """(submitted notebook, autograded notebook, assignment source notebook)."""
    name = f"{assignment}.ipynb"
    return (
        _course_dir(cfg, "submitted") / student / assignment / name,
        _course_dir(cfg, "autograded") / student / assignment / name,
        _course_dir(cfg, "source") / assignment / name,
    )


def regrade_reason(cfg: Config, assignment: str, student: str) -> str | None:
    """Why a submission must be autograded (again), in a few words; None when neither the
    submitted notebook nor the assignment source changed since it was last graded."""
    from nbgrader.api import Gradebook, MissingEntry

    submitted, autograded, source = _paths(cfg, assignment, student)
    if not autograded.exists():
        return "new"
    if _db_path(cfg).exists():
        with Gradebook(cfg.CourseDirectory.db_url) as gb:
            try:
                gb.find_submission(assignment, student)
            except MissingEntry:
                return "not in the gradebook"
    record = _load_records(cfg).get(f"{assignment}/{student}")
    if record is None:
        return "no fingerprint of the graded version"
    if not submitted.exists() or record.get("notebook") != _sha256(submitted):
        return "submission changed"
    if record.get("source") != _sha256(source):
        return "assignment changed"
    return None


def _stamp(submitted: Path, ours: str | None) -> str | None:
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
    text = _timestamp_text(mtime)
    stamp_file.write_text(text + "\n")
    return text


def _timestamp_text(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f %Z")


def _written_answers(notebook: Path) -> dict[str, str]:
    """grade id -> source of every written (hand-graded) answer cell of a notebook; {} when absent."""
    if not notebook.exists():
        return {}
    return {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in nbformat.read(notebook, as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("grade") and cell.metadata["nbgrader"].get("solution")
    }


def grade_submission(cfg: Config, assignment: str, student: str, *, force: bool = False) -> SubmissionResult:
    """Autograde one submission, if new or changed (or ``force``), and write its feedback.

    A crash is recorded in the result, never raised. nbgrader keeps manual grades through a regrade;
    a written answer that changed after it was graded by hand is named in ``rewritten_answers`` until
    a grader saves a grade for it again (nbgrader then clears its needs-manual-grade flag).
    """
    api = _api(cfg)
    result = SubmissionResult(student=student, assignment=assignment, graded=False)
    expected, autograded, source = _paths(cfg, assignment, student)
    if not expected.exists():
        found = sorted(p.name for p in expected.parent.glob("*.ipynb"))
        result.error = f"no {expected.name} in {expected.parent} (found: {', '.join(found) or 'nothing'})"
        return result
    try:
        nbformat.read(expected, as_version=4)
    except Exception as exc:  # a truncated upload, a renamed PDF, ...
        result.error = f"{expected} is not a readable notebook ({type(exc).__name__}: {exc})"
        return result
    key = f"{assignment}/{student}"
    record = _load_records(cfg).get(key, {})
    rewritten = set(record.get("rewritten", []))
    reason = "--force" if force else regrade_reason(cfg, assignment, student)
    result.unchanged = reason is None
    if reason is not None:
        before = _written_answers(autograded)
        stamp = _stamp(expected, record.get("timestamp"))
        with warnings.catch_warnings():
            # nbgrader's own session handling after a crashed run; the crash itself is reported below.
            warnings.filterwarnings("ignore", message=".*not in session.*")
            outcome = api.autograde(assignment, student, force=True)
        result.edited_locked_cells, result.deleted_locked_cells = edited_locked_cells(
            cfg, assignment, expected
        )
        result.timed_out_cells = _timed_out_cells(autograded)
        if not outcome["success"]:
            _save_record(cfg, key, None)
            result.error = _failure_reason((outcome.get("log") or "") + "\n" + (outcome.get("error") or ""))
            _read_result(cfg, assignment, student, result)
            return result
        after = _written_answers(autograded)
        rewritten |= {name for name in before if name in after and before[name] != after[name]}
        record = {"notebook": _sha256(expected), "source": _sha256(source), "timestamp": stamp}
    else:
        result.edited_locked_cells, result.deleted_locked_cells = edited_locked_cells(
            cfg, assignment, expected
        )
        result.timed_out_cells = _timed_out_cells(autograded)
    feedback = api.generate_feedback(assignment, student, force=True)
    if not feedback["success"]:
        result.error = "feedback failed: " + _failure_reason(
            (feedback.get("log") or "") + (feedback.get("error") or "")
        )
    result.graded = feedback["success"]
    _read_result(cfg, assignment, student, result)
    result.rewritten_answers = sorted(rewritten & set(result.review_cells))
    _save_record(cfg, key, {**record, "rewritten": result.rewritten_answers})
    return result


def _db_path(cfg: Config) -> Path:
    return Path(cfg.CourseDirectory.db_url.removeprefix("sqlite:///"))


def sync_gradebook(cfg: Config, assignment: str, scratch: Path) -> None:
    """Record ``solutions/<assignment>`` in the gradebook (its test cells, points and checksums),
    unless the gradebook already holds this exact source (a fingerprint beside the database says so).

    nbgrader generate_assignment does the recording; its student version goes to ``scratch`` so
    that ``assignments/`` is left alone.
    """
    from nbgrader.api import Gradebook, MissingEntry

    source = _course_dir(cfg, "source") / assignment / f"{assignment}.ipynb"
    fingerprint = hashlib.sha256(source.read_bytes()).hexdigest()
    record = _db_path(cfg).with_name("gradebook-sources.json")
    known = json.loads(record.read_text()) if record.exists() else {}
    if known.get(assignment) == fingerprint and _db_path(cfg).exists():
        with Gradebook(cfg.CourseDirectory.db_url) as gb:
            try:
                gb.find_notebook(assignment, assignment)
                return
            except MissingEntry:
                pass
    _generate(cfg, assignment, scratch)
    known[assignment] = fingerprint
    record.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")


def export_csv(cfg: Config, path: Path) -> None:
    """nbgrader's grades.csv (one row per student and assignment) for the whole gradebook."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    with Gradebook(cfg.CourseDirectory.db_url) as gb:
        CsvExportPlugin(to=str(path)).export(gb)


def write_report(results: Sequence[SubmissionResult], path: Path) -> None:
    """A per-submission CSV with what grades.csv lacks: status (graded, unchanged or failed), the
    number of written answers still to grade by hand, timeouts, edited cells and other notes."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["assignment", "student_id", "status", "score", "max_score", "manual_pending", "notes"]
        )
        for r in results:
            writer.writerow(
                [r.assignment, r.student, r.status, r.score, r.max_score, r.manual_pending, r.notes]
            )


def format_table(results: Sequence[SubmissionResult]) -> str:
    """A fixed-width table, one line per submission."""
    rows = [("assignment", "student", "score", "status", "notes")]
    rows += [
        (r.assignment, r.student, f"{r.score:g} / {r.max_score:g}", r.status, r.notes or "ok")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    )


def pending_warning(results: Sequence[SubmissionResult]) -> str:
    """A warning naming the submissions whose feedback shows 0 for written answers nobody graded yet
    (empty when there are none)."""
    pending = [r for r in results if r.graded and r.pending_cells]
    if not pending:
        return ""
    lines = [
        "WARNING: written answers not yet graded: feedback shows 0 for them. Grade them in Formgrader "
        "(Nbgrader menu -> Formgrader -> Manual Grading) and run the grading again before returning feedback:"
    ]
    lines += [f"  {r.assignment} / {r.student}: {', '.join(r.pending_cells)}" for r in pending]
    return "\n".join(lines)


def grade(
    assignments: Sequence[str] | None = None,
    *,
    root: str | os.PathLike | None = None,
    students: Sequence[str] | None = None,
    force: bool = False,
    timeout: int | None = None,
    echo: bool = True,
) -> list[SubmissionResult]:
    """Autograde every new or changed submission of ``assignments`` (default: all), write feedback
    and the CSVs.

    The gradebook is first brought in line with ``solutions/`` (nbgrader generate_assignment into a
    scratch folder, so ``assignments/`` is left alone). A submission is autograded again when its
    notebook's content or the assignment source differs from what was graded (fingerprints in
    ``grading/graded-submissions.json``), or with ``force``; others are reported as unchanged. Manual
    grades survive either way. Feedback is always rewritten, so it shows manual grades given since.
    A submission that cannot be graded (its kernel died, its cells were tampered with beyond repair)
    is reported and the others go on.
    """
    cfg = course_config(root, timeout=timeout)
    ids = _check_ids(assignments, root)
    results = []
    with tempfile.TemporaryDirectory(prefix="digm-grade-") as tmp:
        for assignment in ids:
            who = [s for s in submissions(assignment, cfg) if not students or s in students]
            if not who:
                if echo:
                    print(
                        f"{assignment}: no submissions in {_course_dir(cfg, 'submitted')}/<student>/{assignment}/"
                    )
                continue
            sync_gradebook(cfg, assignment, Path(tmp) / "release")
            for student in who:
                reason = "--force" if force else regrade_reason(cfg, assignment, student)
                if echo and reason is None:
                    print(f"{assignment} / {student}: unchanged, skipped (feedback refreshed)", flush=True)
                elif echo:
                    print(f"grading {assignment} / {student} ({reason}) ...", flush=True)
                try:
                    results.append(grade_submission(cfg, assignment, student, force=reason is not None))
                except Exception as exc:  # one broken submission must not stop the class's grading
                    error = f"grading crashed: {type(exc).__name__}: {exc}"
                    results.append(
                        SubmissionResult(student=student, assignment=assignment, graded=False, error=error)
                    )
    grading_dir = _db_path(cfg).parent
    grading_dir.mkdir(parents=True, exist_ok=True)
    if _db_path(cfg).exists():
        export_csv(cfg, grading_dir / "grades.csv")
    write_report(results, grading_dir / "report.csv")
    if echo and results:
        print()
        print(format_table(results))
        print()
        print(f"scores: {grading_dir / 'grades.csv'}   details: {grading_dir / 'report.csv'}")
        print(f"feedback to return: {_course_dir(cfg, 'feedback')}/<student>/<assignment>/<assignment>.html")
        warning = pending_warning(results)
        if warning:
            print()
            print(warning)
    return results


# ----------------------------------------------------------------------------------------------
# validate and collect


@dataclass
class Validation:
    """nbgrader's verdict on a notebook and the executed notebook it came from.

    ``results`` is nbgrader's dictionary: empty when every test cell passes and every written answer
    was filled in; otherwise ``failed``, ``changed`` (edited test cells) or ``type_changed`` lists the
    cells concerned. ``executed`` is None when nbgrader refused to run it (a changed cell type).
    """

    path: Path
    results: dict
    executed: nbformat.NotebookNode | None

    @property
    def passed(self) -> bool:
        return not self.results


def run_validation(notebook: str | os.PathLike, *, timeout: int | None = None) -> Validation:
    """Run a notebook's tests as the autograder would (nbgrader's Validator), keeping the executed copy."""
    from nbgrader.preprocessors import IgnorePattern
    from nbgrader.validator import Validator

    class KeepExecuted(Validator):
        executed = None

        def _preprocess(self, nb):
            self.executed = super()._preprocess(nb)
            return self.executed

    path = Path(notebook)
    if not path.is_file():
        raise FileNotFoundError(f"No notebook at {path}; give the path of your .ipynb file.")
    cfg = course_config(timeout=timeout)
    cfg.Validator.log_level = "WARN"
    validator = KeepExecuted(config=cfg)
    # The autograder drops stderr warnings (IgnorePattern in nbgrader_config.py) before it scores a
    # cell; nbgrader's Validator does not. Its kernel prints Python warnings to stdout (also
    # nbgrader_config.py), and this drops the rest the same way the autograder does, e.g. a warning
    # that a C library writes straight to stderr.
    validator.preprocessors = [*validator.preprocessors, IgnorePattern]
    results = validator.validate(str(path.resolve()))
    return Validation(path, results, validator.executed)


def validate(notebook: str | os.PathLike, *, timeout: int | None = None) -> dict:
    """Run a notebook's tests as the autograder would; nbgrader's result dictionary (see ``Validation``)."""
    return run_validation(notebook, timeout=timeout).results


@dataclass(frozen=True)
class _Cell:
    """A cell of an executed notebook as a student should find it: its name, part and outcome."""

    index: int
    name: str  # nbgrader grade id, or "cell N" counted from 1
    kind: str  # "test", "hidden" (a test cell with no code: hidden tests run at grading), "written", "other"
    points: float
    score: float | None  # nbgrader's score for a test or written answer (None: to grade by hand)
    part: str  # the nearest markdown heading above it
    question: str  # the last paragraph of the markdown cell above it, shortened
    error: str  # "Name: message" of the exception it raised (for a test, else its stderr), "" when none
    source: str

    @property
    def fails(self) -> bool:
        return self.kind == "test" and self.score is not None and self.score < self.points

    @property
    def empty(self) -> bool:
        return self.kind == "written" and self.score == 0

    def where(self) -> str:
        points = f" ({self.points:g} point{'s' if self.points != 1 else ''})" if self.points else ""
        return f"{self.name}{points}{', in ' + self.part if self.part else ''}"


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _is_comment_only(source: str) -> bool:
    """True for a test cell with no code, as a hidden-test cell is in the student version."""
    return all(not line.strip() or line.lstrip().startswith("#") for line in source.splitlines())


def _error_of(cell, *, stderr: bool) -> str:
    """The exception a code cell raised, as "Name: message"; else, with ``stderr``, its last stderr
    line (nbgrader fails a test cell that writes to stderr); else ""."""
    outputs = cell.get("outputs", []) if cell.cell_type == "code" else []
    for output in outputs:
        if output.get("output_type") == "error":
            name, message = output.get("ename", "Error"), _ANSI.sub("", output.get("evalue", "")).strip()
            if name == "NotImplementedError" and not message:
                # the placeholder nbgrader puts in every answer cell of the student version
                message = "an answer it uses is not written yet (# YOUR CODE HERE)"
            return f"{name}: {message}" if message else name
    for output in outputs if stderr else []:
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            lines = [line for line in _ANSI.sub("", output.get("text", "")).splitlines() if line.strip()]
            if lines:
                return lines[-1].strip()
    return ""


def _last_heading(markdown: str) -> str:
    headings = [line.lstrip("#").strip() for line in markdown.splitlines() if line.startswith("#")]
    return headings[-1] if headings else ""


def _question_line(markdown: str) -> str:
    """A markdown cell's last paragraph on one line, without bold markers, cut to 100 characters."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", markdown) if p.strip()]
    if not paragraphs:
        return ""
    line = " ".join(paragraphs[-1].split()).replace("**", "").lstrip("#").strip()
    return line if len(line) <= 100 else line[:97].rstrip() + "..."


def _cell_kind(cell) -> str:
    meta = _nbgrader(cell)
    if meta.get("grade") and meta.get("solution"):
        return "written"
    if meta.get("grade") and cell.cell_type == "code":
        return "hidden" if _is_comment_only(cell.source) else "test"
    return "other"


def _located_cells(nb: nbformat.NotebookNode) -> list[_Cell]:
    """Every cell of an executed notebook with its kind, score, part, question and error."""
    from nbgrader.utils import determine_grade

    cells, part, question = [], "", ""
    for index, cell in enumerate(nb.cells):
        meta, kind = _nbgrader(cell), _cell_kind(cell)
        cells.append(
            _Cell(
                index=index,
                name=meta.get("grade_id") or f"cell {index + 1}",
                kind=kind,
                points=float(meta.get("points", 0) or 0),
                score=determine_grade(cell)[0] if meta.get("grade") else None,
                part=part,
                question=question,
                error=_error_of(cell, stderr=kind == "test"),
                source=cell.source,
            )
        )
        if cell.cell_type == "markdown" and not meta.get("solution"):
            part = _last_heading(cell.source) or part
            question = _question_line(cell.source)
    return cells


_NAME_ERROR = re.compile(r"NameError: name '(?P<name>\w+)' is not defined")


def _earlier_cause(failing: _Cell, raised: list[_Cell]) -> str:
    """For a test that failed because a name is undefined, the earlier cell whose error is the likely
    cause: the last one before it that raised and mentions the name, else the last one that raised."""
    match = _NAME_ERROR.search(failing.error)
    if not match:
        return ""
    before = [c for c in raised if c.index < failing.index]
    mentioning = [c for c in before if re.search(rf"\b{match['name']}\b", c.source)]
    cause = (mentioning or before or [None])[-1]
    if cause is None:
        return f"no cell defines {match['name']}: keep the names the assignment gives"
    return f"{match['name']} is undefined because {cause.name} raised {cause.error.splitlines()[0]}"


def _validation_summary(cells: Sequence[_Cell]) -> str:
    """The last line of a validation: visible test points passing, hidden-test points, empty answers."""
    visible = sum(c.points for c in cells if c.kind == "test")
    passing = sum(c.score or 0.0 for c in cells if c.kind == "test")
    hidden = sum(c.points for c in cells if c.kind == "hidden")
    empty = sum(c.empty for c in cells)
    hidden_note = f" ({hidden:g} more in hidden tests that run at grading)" if hidden else ""
    return (
        f"{passing:g} of {visible:g} visible test points pass{hidden_note}; "
        f"{empty} written answer{'s' if empty != 1 else ''} to complete."
    )


def format_validation(results: dict | Validation) -> str:
    """What a student reads after validating: edited test cells, the other cells that raised (in the
    order they ran), every failing test by grade id, points, part and error (with the earlier cell
    that left a name undefined), the written answers still empty by question, and a summary line.

    Given only nbgrader's dictionary (no executed notebook), cells are named by their first line.
    """
    if not isinstance(results, Validation) or results.executed is None:
        return _format_results_only(results.results if isinstance(results, Validation) else results)
    cells = _located_cells(results.executed)
    summary = _validation_summary(cells)
    if not results.results:
        return (
            "Success! Every visible test passes. Hidden tests with other inputs run when it is graded.\n"
            + summary
        )
    lines = []
    edited = {c["source"] for c in results.results.get("changed", [])}
    if edited:
        lines.append(
            f"{len(edited)} TEST CELL(S) WERE EDITED. Grading restores them, so your answer must pass "
            "the original tests; undo the edits (or copy the cells from the released notebook):"
        )
        lines += [f"  - {c.where()}" for c in cells if c.source.strip() in edited]
    raised = [c for c in cells if c.kind == "other" and c.error]
    if raised:
        lines.append(
            f"{len(raised)} OTHER CELL(S) RAISED AN ERROR, in the order they ran (fix the first one first; "
            "later cells and tests may fail because of it):"
        )
        lines += [f"  - {c.where()}: {c.error.splitlines()[0]}" for c in raised]
    failing = [c for c in cells if c.fails]
    if failing:
        lines.append(f"{len(failing)} TEST CELL(S) FAIL. As it is, this notebook would not get full marks:")
        for c in failing:
            lines += [f"  - {c.where()}", f"      {_first_line(c.source)}"]
            error = c.error or "partial credit: it passed some but not all of its checks"
            lines += [f"      {line}" for line in error.splitlines()]
            cause = _earlier_cause(c, raised)
            if cause:
                lines.append(f"      (likely cause: {cause})")
    empty = [c for c in cells if c.empty]
    if empty:
        lines.append(f"{len(empty)} WRITTEN ANSWER(S) STILL EMPTY (graded by hand, 0 points as they are):")
        lines += [f"  - {c.where()}: {c.question or '(see the cell above it)'}" for c in empty]
    return "\n".join([*lines, "", summary])


def _format_results_only(results: dict) -> str:
    """The report from nbgrader's dictionary alone (a changed cell type stops nbgrader before it runs)."""
    if not results:
        return "Success! Every visible test passes. Hidden tests with other inputs run when it is graded."
    lines = []
    if results.get("type_changed"):
        lines.append(f"THE TYPE OF {len(results['type_changed'])} CELL(S) WAS CHANGED; change them back:")
        lines += [
            f"  - {c['old_type']} cell (should be {c['new_type']}): {_first_line(c['source'])}"
            for c in results["type_changed"]
        ]
    if results.get("changed"):
        lines.append(
            f"{len(results['changed'])} TEST CELL(S) WERE EDITED. Grading restores them, so your answer must pass "
            "the original tests; undo the edits (or copy the cells from the released notebook):"
        )
        lines += [f"  - {_first_line(c['source'])}" for c in results["changed"]]
    if results.get("failed"):
        lines.append(
            f"{len(results['failed'])} TEST CELL(S) FAIL. As it is, this notebook would not get full marks:"
        )
        for c in results["failed"]:
            lines.append(f"  - {_first_line(c['source'])}")
            error = _ANSI.sub("", c["raw_error"]).strip().splitlines()
            lines += [f"      {line}" for line in error[-3:]]
    return "\n".join(lines)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return "(empty cell)"


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
        target_dir = _course_dir(cfg, "submitted") / d.student / d.assignment
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{d.assignment}.ipynb"
        shutil.copy2(d.path, target)
        stamp = dt.datetime.fromtimestamp(d.path.stat().st_mtime, tz=dt.timezone.utc)
        (target_dir / "timestamp.txt").write_text(_timestamp_text(stamp) + "\n")
        written.append(target)
    return written, skipped


# ----------------------------------------------------------------------------------------------
# command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.grading", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="regenerate assignments/ from solutions/")
    p.add_argument("assignments", nargs="*")
    p = sub.add_parser("grade", help="autograde grading/submitted/*, write feedback and grading/grades.csv")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument("--timeout", type=int, help="seconds per cell (default: nbgrader_config.py)")
    p.add_argument("--force", action="store_true", help="autograde again submissions that were graded before")
    p = sub.add_parser("validate", help="run a notebook's tests; exit 1 if any fails")
    p.add_argument("notebook")
    p.add_argument("--timeout", type=int, help="seconds per cell (default: nbgrader_config.py)")
    p = sub.add_parser("collect", help="import DIR/<student>_<assignment>.ipynb into grading/submitted/")
    p.add_argument("folder")
    sub.add_parser("check", help="exit 1 when assignments/ is out of date with solutions/")
    for p in sub.choices.values():
        p.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.command == "release":
        for path in release(args.assignments, root=args.root):
            print(f"wrote {path}")
        return 0
    if args.command == "grade":
        results = grade(
            args.assignments, root=args.root, students=args.student, force=args.force, timeout=args.timeout
        )
        failed = [r for r in results if not r.graded]
        if failed:
            print(f"\n{len(failed)} of {len(results)} submission(s) could not be graded:", file=sys.stderr)
            for r in failed:
                print(f"  {r.student} / {r.assignment}: {r.error}", file=sys.stderr)
            return 1
        return 0
    if args.command == "validate":
        validation = run_validation(args.notebook, timeout=args.timeout)
        print(format_validation(validation))
        return 0 if validation.passed else 1
    if args.command == "collect":
        written, skipped = collect(args.folder, root=args.root)
        for path in written:
            print(f"collected {path}")
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        return 0 if not skipped else 1
    if args.command == "check":
        problems = out_of_date(args.root)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("Run `make release` and commit assignments/.", file=sys.stderr)
        return 1 if problems else 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
