"""Student versions of the assignments: ``solutions/<id>`` -> ``assignments/<id>`` (``make release``)."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nbformat

from tools.grading.config import assignment_ids, check_ids, course_config, course_dir, generate

# nbgrader cell metadata that changes from run to run or carries no meaning for the student version.
_VOLATILE_NB_METADATA = ("widgets", "celltoolbar")


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
    dest = Path(dest) if dest is not None else course_dir(cfg, "release")
    written = []
    with tempfile.TemporaryDirectory(prefix="digm-release-") as tmp:
        cfg.CourseDirectory.db_url = "sqlite:///" + str(Path(tmp) / "gradebook.db")
        for assignment in check_ids(assignments, root):
            generated = Path(tmp) / "release"
            generate(cfg, assignment, generated)
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
    committed_dir = course_dir(cfg, "release")
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
            problems.append(f"{folder} has no source in {course_dir(cfg, 'source')}")
    return problems

