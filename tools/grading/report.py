"""What grading one submission gave, and the tables and CSV files that report it."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from traitlets.config import Config


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
    tampering: list[str] = field(default_factory=list)  # answer lines that reach into the tests: review them
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
        if self.tampering:
            parts.append(f"REVIEW, answer cells reach into the tests: {' | '.join(self.tampering)}")
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
