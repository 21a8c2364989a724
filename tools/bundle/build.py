"""The student bundle: what students of a class receive, and what the class's hub serves.

It holds the lectures, the student versions of the assignments, the ``utils`` library, the templates,
a student README (``README.student.md`` here), the files to install the course (pyproject.toml,
environment.yml, LICENSE) and nbgrader_config.py, which the Validate button and
``python -m tools.grading validate`` read. Of ``tools`` it holds only what ``validate`` imports: the
modules reached from ``tools.grading.validate`` and ``tools.grading.__main__`` by their module-level
imports (``__main__`` imports each instructor command only when it runs, and says so in one sentence
where the command is missing).

Never in it: ``solutions/`` (answers, hidden tests, mark schemes), ``grading/``, ``tests/``, the rest of
``tools/``, the Makefile, ``hub/``, ``results/``, checkpoints and caches. Every notebook is checked
on the way in: one that still carries a solution or hidden-test region, or a cell nbgrader would
replace by a stub (a written answer with its model answer), stops the build.

Only the standard library, so that any Python can build it.
"""

from __future__ import annotations

import ast
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from tools.paths import REPO_ROOT

# Whole folders students get (their notebooks are checked for instructor-only content).
FOLDERS = ("lectures", "assignments", "templates")
# Files copied as they are.
FILES = ("pyproject.toml", "environment.yml", "LICENSE", "nbgrader_config.py")
# The student library: its Python files.
LIBRARY = "utils"
# What students run of tools/ (README: python -m tools.grading validate ...).
STUDENT_TOOL_ENTRIES = ("tools.grading.validate", "tools.grading.__main__")
STUDENT_README = Path(__file__).with_name("README.student.md")
# Never copied from a shipped folder: caches, checkpoints, executed copies.
IGNORED = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "checkpoints", "*.failed.ipynb", "*.running.ipynb")
# A notebook carrying any of these still holds what nbgrader removes from the student version.
INSTRUCTOR_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
# What nbgrader leaves in a written-answer cell of a student version.
WRITTEN_STUB = "YOUR ANSWER HERE"


class BundleError(RuntimeError):
    """The bundle would hold something students must not get, or misses something; one sentence."""


def student_tool_modules(root: Path = REPO_ROOT) -> list[str]:
    """Dotted names of the ``tools`` modules students need: the entries and, transitively, every
    ``tools`` module they import at module level (plus the packages containing them)."""
    wanted, todo = set(), list(STUDENT_TOOL_ENTRIES)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        parts = name.split(".")
        wanted.update(".".join(parts[:i]) for i in range(1, len(parts)))  # the packages above it
        todo.extend(_module_level_tool_imports(root, _module_file(root, name), name))
    return sorted(wanted)


def _module_file(root: Path, name: str) -> Path:
    path = root.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise BundleError(f"the student tools need {name}, which has no file under {root}.")


def _module_level_tool_imports(root: Path, path: Path, name: str) -> list[str]:
    """``tools.*`` modules that ``path`` imports when it is imported: every import statement but
    those inside functions (which run only when called)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in _import_time_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .config import x
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.append(base)
            # "from tools.grading import config" imports a module, not just a name
            found += [f"{base}.{a.name}" for a in node.names if _is_module(root, f"{base}.{a.name}")]
    return [m for m in found if m == "tools" or m.startswith("tools.")]


def _import_time_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        yield from _import_time_nodes(node)


def _is_module(root: Path, name: str) -> bool:
    try:
        _module_file(root, name)
    except BundleError:
        return False
    return True


def check_notebook(path: Path, shown_as: str) -> None:
    """Raise BundleError if the notebook still holds instructor-only content."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{shown_as} is not a readable notebook ({exc}).") from exc
    for index, cell in enumerate(nb.get("cells", [])):
        source = "".join(cell.get("source", []))
        marker = next((m for m in INSTRUCTOR_MARKERS if m in source), None)
        if marker:
            raise BundleError(f"{shown_as} cell {index} still holds {marker!r}; ship the released version.")
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "markdown" and meta.get("solution") and source.strip() != WRITTEN_STUB:
            raise BundleError(
                f"{shown_as} cell {index} is a written answer that is not the empty stub (a model answer?)."
            )


def build(out: Path, *, root: Path = REPO_ROOT, archive: bool = True) -> Path:
    """Write the bundle to the folder ``out`` (replacing it) and, with ``archive``, ``out``.zip beside it.

    The bundle is assembled in a temporary folder beside ``out`` and moved into place only when
    complete and checked, so a failed build leaves an earlier bundle as it was. Returns ``out``.
    """
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=out.parent) as tmp:
        stage = Path(tmp) / "bundle"
        stage.mkdir()
        for folder in FOLDERS:
            if not (root / folder).is_dir():
                raise BundleError(f"{root / folder} is missing; the bundle needs {', '.join(FOLDERS)}.")
            shutil.copytree(root / folder, stage / folder, ignore=shutil.ignore_patterns(*IGNORED))
        for name in FILES:
            shutil.copy2(root / name, stage / name)
        _copy_python_package(root / LIBRARY, stage / LIBRARY)
        for module in student_tool_modules(root):
            source = _module_file(root, module)
            target = stage / source.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        shutil.copyfile(STUDENT_README, stage / "README.md")
        for notebook in sorted(stage.rglob("*.ipynb")):
            check_notebook(notebook, str(notebook.relative_to(stage)))
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    if archive:
        write_zip(out, out.with_suffix(".zip"))
    return out


def _copy_python_package(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def write_zip(folder: Path, zip_path: Path) -> Path:
    """``folder`` as a zip whose entries start with the folder's name (it unpacks into one folder)."""
    partial = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(_files(folder)):
            archive.write(path, Path(folder.name) / path.relative_to(folder))
    partial.replace(zip_path)
    return zip_path


def _files(folder: Path) -> Iterable[Path]:
    return (p for p in folder.rglob("*") if p.is_file())
