"""Run a notebook's tests as the autograder would and tell the student what to fix.

Students run it as ``python -m tools.grading validate assignments/<id>/<id>.ipynb`` (JupyterLab's
Validate button runs nbgrader's own validator). Besides nbgrader it needs only ``tools.grading.config``
and ``tools.paths``, so it can ship to students without the instructor's modules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tools.grading.config import course_config


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

