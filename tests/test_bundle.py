"""The student bundle (`make student-bundle`) holds what students need and nothing of the instructor's.

The secrets are read from solutions/: every line of every hidden-test region, every line of every
solution region and every line of every written answer's model answer and mark scheme (the whole
source of a markdown solution cell), each longer than a few characters. A line that the student
materials of the repository (lectures, utils, templates, the released assignments) also contain,
anywhere in a line, is public by design (an assignment asks again for what a lecture derived) and
is left out; the rest must appear in no file of the bundle, nor in its zip, searched as text and,
for notebooks and other JSON, as the decoded strings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from tools.bundle import BundleError, build, student_tool_modules
from tools.paths import REPO_ROOT

MIN_LENGTH = 8  # "a few characters": shorter lines (`else:`, `pass`, `x = 0`) say nothing
PUBLIC_SOURCES = ("lectures", "utils", "templates", "assignments")
REGIONS = {
    "hidden test": ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
    "solution": ("### BEGIN SOLUTION", "### END SOLUTION"),
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("bundle") / "student-bundle")


def instructor_lines() -> dict[str, dict[str, set[str]]]:
    """assignment -> kind ("hidden test", "solution", "mark scheme") -> stripped lines of solutions/."""
    found: dict[str, dict[str, set[str]]] = {}
    for path in sorted((REPO_ROOT / "solutions").glob("*/*.ipynb")):
        kinds = found.setdefault(path.stem, {kind: set() for kind in [*REGIONS, "mark scheme"]})
        for cell in nbformat.read(path, as_version=4).cells:
            lines = cell.source.splitlines()
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "markdown" and meta.get("solution"):
                kinds["mark scheme"] |= {line.strip() for line in lines}
            for kind, (begin, end) in REGIONS.items():
                inside = False
                for line in lines:
                    if begin in line or end in line:
                        inside = begin in line
                    elif inside:
                        kinds[kind].add(line.strip())
    for kinds in found.values():
        for kind in kinds:
            kinds[kind] = {line for line in kinds[kind] if len(line) > MIN_LENGTH}
    return found


def texts_of(data: bytes, name: str) -> list[str]:
    """What a file says: its text and, for JSON (notebooks), every string in it decoded."""
    text = data.decode("utf-8", errors="replace")
    texts = [text]
    if name.endswith((".ipynb", ".json")):
        strings: list[str] = []

        def walk(node) -> None:
            if isinstance(node, str):
                strings.append(node)
            elif isinstance(node, list):
                strings.append("".join(n for n in node if isinstance(n, str)))  # notebook sources are lists
                for item in node:
                    walk(item)
            elif isinstance(node, dict):
                for value in node.values():
                    walk(value)

        walk(json.loads(text))
        texts.append("\n".join(strings))
    return texts


def files_of(folder: Path) -> dict[str, list[str]]:
    """relative path -> texts, for every file of ``folder`` and every entry of every zip in it."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = str(path.relative_to(folder))
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                for entry in archive.namelist():
                    found[f"{relative}!{entry}"] = texts_of(archive.read(entry), entry)
        else:
            found[relative] = texts_of(path.read_bytes(), path.name)
    return found


def secrets_to_find() -> dict[tuple[str, str], set[str]]:
    """(assignment, kind) -> the instructor-only lines: those no student material of the repository holds."""
    public = "\n".join(
        text for folder in PUBLIC_SOURCES for texts in files_of(REPO_ROOT / folder).values() for text in texts
    )
    return {
        (assignment, kind): {line for line in lines if line not in public}
        for assignment, kinds in instructor_lines().items()
        for kind, lines in kinds.items()
    }


def test_the_secrets_searched_for_are_many_and_findable():
    """The search below cannot pass by finding nothing to search for, or by failing to read notebooks."""
    secrets = secrets_to_find()
    assert {assignment for assignment, _ in secrets} == {p.name for p in (REPO_ROOT / "solutions").iterdir() if p.is_dir()}
    for (assignment, kind), lines in secrets.items():
        assert len(lines) >= 5, f"{assignment}: only {len(lines)} {kind} lines to search for"
    in_solutions = files_of(REPO_ROOT / "solutions")
    everything = "\n".join(text for texts in in_solutions.values() for text in texts)
    missed = [line for lines in secrets.values() for line in lines if line not in everything]
    assert not missed, f"the search does not find these lines in solutions/ itself: {missed[:3]}"


def test_no_hidden_test_solution_or_mark_scheme_is_in_any_file_of_the_bundle(bundle):
    bundle_zip = bundle.with_suffix(".zip")
    assert bundle_zip.is_file()
    shutil.copy(bundle_zip, bundle / "searched-too.zip")  # the zip is searched as well, entry by entry
    try:
        files = files_of(bundle)
    finally:
        (bundle / "searched-too.zip").unlink()
    leaks = []
    for (assignment, kind), lines in secrets_to_find().items():
        for name, texts in files.items():
            found = sorted(line for line in lines if any(line in text for text in texts))
            leaks += [f"{name}: {kind} of {assignment}: {line!r}" for line in found[:2]]
    assert not leaks, "instructor-only lines in the bundle:\n" + "\n".join(leaks[:20])


def test_bundle_holds_the_student_materials_and_no_instructor_files(bundle):
    files = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    for folder in ("lectures", "assignments", "templates"):
        expected = {
            str(p.relative_to(REPO_ROOT))
            for p in (REPO_ROOT / folder).rglob("*")
            if p.is_file() and "checkpoints" not in p.parts and "__pycache__" not in p.parts
        }
        assert expected and expected <= files, f"{folder}/ is incomplete: {sorted(expected - files)[:5]}"
    assert {"README.md", "pyproject.toml", "environment.yml", "LICENSE", "nbgrader_config.py"} <= files
    assert "utils/__init__.py" in files and "utils/checks/__init__.py" in files
    tools = {f for f in files if f.startswith("tools/")}
    assert tools == {
        "tools/__init__.py",
        "tools/paths.py",
        "tools/grading/__init__.py",
        "tools/grading/__main__.py",
        "tools/grading/config.py",
        "tools/grading/validate.py",
    }, "only validate and what it imports: a new import there must be reviewed before it ships"
    top = {f.split("/")[0] for f in files}
    assert not top & {"solutions", "tests", "hub", "grading", "results", "Makefile", ".ci", "build"}, top
    readme = (bundle / "README.md").read_text()
    assert "python -m tools.grading validate" in readme and "make grade" not in readme


def test_student_tools_are_the_import_closure_of_validate():
    assert student_tool_modules() == [
        "tools",
        "tools.grading",
        "tools.grading.__main__",
        "tools.grading.config",
        "tools.grading.validate",
        "tools.paths",
    ]


def _in_bundle(bundle: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m`` in the bundle, as a student runs it there: the bundle first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(DIGM_FAST="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=bundle, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_validate_runs_from_the_bundle_alone(bundle):
    where = _in_bundle(bundle, "tools.grading.validate")  # importing it must not need instructor modules
    assert where.returncode == 0, where.stderr
    result = _in_bundle(bundle, "tools.grading", "validate", "assignments/a1_estimators/a1_estimators.ipynb")
    assert result.returncode == 1, f"the untouched assignment should fail validation:\n{result.stdout}{result.stderr}"
    assert "visible test points pass" in result.stdout, result.stdout[-2000:]


def test_instructor_commands_say_they_are_not_in_the_bundle(bundle):
    result = _in_bundle(bundle, "tools.grading", "grade")
    assert result.returncode != 0
    assert "instructor's command, not part of the student bundle" in result.stderr, result.stderr


def test_a_notebook_with_solutions_stops_the_build_and_keeps_the_old_bundle(tmp_path, bundle):
    root = tmp_path / "course"
    for name in ("lectures", "templates", "utils", "tools"):
        shutil.copytree(REPO_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "environment.yml", "LICENSE", "nbgrader_config.py"):
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "solutions", root / "assignments")  # the instructor's versions by mistake
    out = tmp_path / "student-bundle"
    shutil.copytree(bundle, out)
    with pytest.raises(BundleError, match="BEGIN SOLUTION|BEGIN HIDDEN TESTS|written answer"):
        build(out, root=root)
    assert (out / "assignments" / "a1_estimators" / "a1_estimators.ipynb").read_text() == (
        bundle / "assignments" / "a1_estimators" / "a1_estimators.ipynb"
    ).read_text(), "a failed build must leave the earlier bundle as it was"
    assert not list(tmp_path.glob(".bundle-*")), "a failed build must not leave its staging folder"
