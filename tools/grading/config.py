"""The course's nbgrader set-up: its configuration and the plumbing every grading command shares.

The course layout and nbgrader settings (timeouts, feedback without hidden tests) live in
``nbgrader_config.py`` at the repository root; every function here takes ``root`` so that tests can
run the same pipeline in a temporary course directory holding a copy of ``solutions/``.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from tools.paths import REPO_ROOT

CONFIG_FILE = "nbgrader_config.py"


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


def nbgrader_api(cfg: Config):
    """An NbGraderAPI that logs warnings only (the per-step INFO chatter would bury the summary)."""
    from nbgrader.apps import NbGraderAPI

    cfg = copy.deepcopy(cfg)
    cfg.NbGraderAPI.log_level = "WARN"
    return NbGraderAPI(config=cfg)


def course_dir(cfg: Config, step: str) -> Path:
    return Path(cfg.CourseDirectory.root) / getattr(cfg.CourseDirectory, f"{step}_directory")


def assignment_ids(root: str | os.PathLike | None = None) -> list[str]:
    """Every ``<id>`` with a source notebook ``solutions/<id>/<id>.ipynb``, sorted."""
    source = course_dir(course_config(root), "source")
    return (
        sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file())
        if source.is_dir()
        else []
    )


def check_ids(requested: Sequence[str] | None, root: str | os.PathLike | None) -> list[str]:
    known = assignment_ids(root)
    if not requested:
        return known
    unknown = [a for a in requested if a not in known]
    if unknown:
        raise SystemExit(
            f"Unknown assignment(s) {', '.join(unknown)}; the sources in solutions/ are: {', '.join(known) or 'none'}."
        )
    return list(requested)


def db_path(cfg: Config) -> Path:
    """The gradebook database file; the course's other grading records are kept beside it."""
    return Path(cfg.CourseDirectory.db_url.removeprefix("sqlite:///"))


def generate(cfg: Config, assignment: str, release_dir: Path) -> None:
    """nbgrader generate_assignment into ``release_dir``; the gradebook in ``cfg`` records the cells."""
    cfg = copy.deepcopy(cfg)
    cfg.CourseDirectory.release_directory = str(release_dir)
    db_path(cfg).parent.mkdir(parents=True, exist_ok=True)
    result = nbgrader_api(cfg).generate_assignment(assignment, force=True)
    if not result["success"]:
        detail = (result.get("log") or "") + (result.get("error") or "")
        raise RuntimeError(f"nbgrader could not generate {assignment!r} from solutions/:\n{detail.strip()}")

