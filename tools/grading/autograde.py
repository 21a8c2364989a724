"""Autograding the submissions: ``grading/submitted/*`` -> scores, feedback and CSVs (``make grade``)."""

from __future__ import annotations

import copy
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import nbformat
from traitlets.config import Config

from tools.grading import records
from tools.grading.config import check_ids, course_config, course_dir, db_path, nbgrader_api, released_source
from tools.grading.execute import execute_class
from tools.grading.report import SubmissionResult, export_csv, format_table, pending_warning, write_report
from tools.grading.sandbox import Sandbox, SandboxUnavailable
from tools.grading.tampering import suspicious_lines_in

TIMEOUT_ENAME = "CellTimeoutError"


def submissions(assignment: str, cfg: Config) -> list[str]:
    """Students with a folder ``grading/submitted/<student>/<assignment>/``, sorted."""
    submitted = course_dir(cfg, "submitted")
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
            if name == "DeadKernelError" and message.startswith("Kernel stopped: "):
                return "the kernel was stopped: " + message.removeprefix("Kernel stopped: ")
            if name == "DeadKernelError":
                return "the kernel died (the notebook exited or crashed Python, or passed a limit of the sandbox)"
            if name == "CellTimeoutError":  # a plain timeout is a cell's output; this one stopped the run
                return "a cell ran past the per-cell timeout and did not stop when interrupted"
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
    api = nbgrader_api(cfg)
    result = SubmissionResult(student=student, assignment=assignment, graded=False)
    expected, autograded, source = records.submission_paths(cfg, assignment, student)
    if not expected.exists():
        found = sorted(p.name for p in expected.parent.glob("*.ipynb"))
        result.error = f"no {expected.name} in {expected.parent} (found: {', '.join(found) or 'nothing'})"
        return result
    try:
        nbformat.read(expected, as_version=4)
    except Exception as exc:  # a truncated upload, a renamed PDF, ...
        result.error = f"{expected} is not a readable notebook ({type(exc).__name__}: {exc})"
        return result
    result.tampering = suspicious_lines_in(expected)  # read from outside the kernel, before it runs
    key = f"{assignment}/{student}"
    record = records.load_records(cfg).get(key, {})
    rewritten = set(record.get("rewritten", []))
    reason = "--force" if force else records.regrade_reason(cfg, assignment, student)
    result.unchanged = reason is None
    if reason is not None:
        before = _written_answers(autograded)
        stamp = records.stamp(expected, record.get("timestamp"))
        with warnings.catch_warnings():
            # nbgrader's own session handling after a crashed run; the crash itself is reported below.
            warnings.filterwarnings("ignore", message=".*not in session.*")
            outcome = api.autograde(assignment, student, force=True)
        result.edited_locked_cells, result.deleted_locked_cells = edited_locked_cells(
            cfg, assignment, expected
        )
        result.timed_out_cells = _timed_out_cells(autograded)
        if not outcome["success"]:
            records.save_record(cfg, key, None)
            result.error = _failure_reason((outcome.get("log") or "") + "\n" + (outcome.get("error") or ""))
            _read_result(cfg, assignment, student, result)
            return result
        after = _written_answers(autograded)
        rewritten |= {name for name in before if name in after and before[name] != after[name]}
        record = {"notebook": records.sha256(expected), "source": records.sha256(source), "timestamp": stamp}
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
    records.save_record(cfg, key, {**record, "rewritten": result.rewritten_answers})
    return result


def executing_config(cfg: Config, scratch: Path, *, unsafe: bool = False) -> Config:
    """``cfg`` with nbgrader's Execute replaced by the course's: outputs cut to size and, unless
    ``unsafe``, each kernel in the grading sandbox (whose private files go under ``scratch``).

    Raises SystemExit, in one sentence, where the sandbox cannot run on this machine.
    """
    from nbgrader.converters.autograde import Autograde
    from nbgrader.preprocessors import Execute

    sandbox = None
    if not unsafe:
        try:
            sandbox = Sandbox.for_course(cfg, scratch)
        except SandboxUnavailable as exc:
            raise SystemExit(
                f"Grading refused, since student code cannot be isolated here: {exc}; pass --unsafe "
                '(make grade ARGS="--unsafe") to run submissions with your own rights instead.'
            ) from exc
    cfg = copy.deepcopy(cfg)
    default = Autograde.class_traits()["autograde_preprocessors"].default()
    cfg.Autograde.autograde_preprocessors = [execute_class(sandbox) if p is Execute else p for p in default]
    return cfg


def grade(
    assignments: Sequence[str] | None = None,
    *,
    root: str | os.PathLike | None = None,
    students: Sequence[str] | None = None,
    force: bool = False,
    timeout: int | None = None,
    unsafe: bool = False,
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

    Each kernel runs in the grading sandbox (``tools.grading.sandbox``); where it cannot run,
    grading stops before the first kernel with SystemExit, unless ``unsafe``.
    """
    cfg = course_config(root, timeout=timeout)
    ids = check_ids(assignments, root)
    results = []
    if unsafe and echo:
        print("WARNING: --unsafe: submissions run without the sandbox, with your rights.", flush=True)
    with tempfile.TemporaryDirectory(prefix="digm-grade-") as tmp:
        run_cfg = None  # made before the first kernel: a run with nothing to grade needs no sandbox
        for assignment in ids:
            who = [s for s in submissions(assignment, cfg) if not students or s in students]
            if not who:
                if echo:
                    print(
                        f"{assignment}: no submissions in {course_dir(cfg, 'submitted')}/<student>/{assignment}/"
                    )
                continue
            records.sync_gradebook(cfg, assignment, Path(tmp) / "release")
            for student in who:
                reason = "--force" if force else records.regrade_reason(cfg, assignment, student)
                if reason is not None and run_cfg is None:
                    run_cfg = executing_config(cfg, Path(tmp) / "sandbox", unsafe=unsafe)
                if echo and reason is None:
                    print(f"{assignment} / {student}: unchanged, skipped (feedback refreshed)", flush=True)
                elif echo:
                    print(f"grading {assignment} / {student} ({reason}) ...", flush=True)
                try:
                    results.append(
                        grade_submission(run_cfg or cfg, assignment, student, force=reason is not None)
                    )
                except Exception as exc:  # one broken submission must not stop the class's grading
                    error = f"grading crashed: {type(exc).__name__}: {exc}"
                    results.append(
                        SubmissionResult(student=student, assignment=assignment, graded=False, error=error)
                    )
    grading_dir = db_path(cfg).parent
    grading_dir.mkdir(parents=True, exist_ok=True)
    if db_path(cfg).exists():
        export_csv(cfg, grading_dir / "grades.csv")
    write_report(results, grading_dir / "report.csv")
    if echo and results:
        print()
        print(format_table(results))
        print()
        print(f"scores: {grading_dir / 'grades.csv'}   details: {grading_dir / 'report.csv'}")
        print(f"feedback to return: {course_dir(cfg, 'feedback')}/<student>/<assignment>/<assignment>.html")
        warning = pending_warning(results)
        if warning:
            print()
            print(warning)
    return results
