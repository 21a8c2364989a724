"""Answer cells that reach into the code that grades them, found by reading the submission.

A submission's kernel runs the student's answer cells and the instructor's tests in one Python
process, so an answer cell can rebind what a test calls (``checks.check_close = lambda *a, **k:
None``, ``torch.allclose = ...``) or redefine a helper of a locked cell. The tests of the course
guard against the common forms, but no test inside that process can be sure of itself; this module
reads the answer cells from outside, where nothing the student wrote runs, and names every line
that does something an answer has no reason to do:

* assigning to (or deleting) an attribute of an imported module or of a name a locked cell defines;
* defining at top level a name that a locked cell defines (a test helper replaced);
* ``setattr``/``delattr``, ``exec``/``eval``/``compile``/``__import__``, ``globals()``/``vars()``/
  ``locals()`` subscripts, ``importlib.reload``, ``sys.modules``, ``gc``/``inspect``/``ctypes``/
  ``builtins`` and the dunder attributes that reach inside functions and modules (``__code__``,
  ``__globals__``, ``__builtins__``, ``__dict__``, ``__class__``, ``__closure__``, ``__defaults__``).

A finding marks the submission for review in ``report.csv``; it changes no score (a false alarm on
honest code must cost nothing but a look).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

# Modules an answer never needs to reach into, and calls that reach into running code.
_FORBIDDEN_MODULES = {"gc", "inspect", "ctypes", "builtins", "importlib", "sys"}
_FORBIDDEN_CALLS = {
    "setattr",
    "delattr",
    "exec",
    "eval",
    "compile",
    "__import__",
    "globals",
    "vars",
    "locals",
}
_DUNDERS = {
    "__code__",
    "__globals__",
    "__builtins__",
    "__dict__",
    "__class__",
    "__closure__",
    "__defaults__",
    "__kwdefaults__",
    "__module__",
    "__wrapped__",
}


def _is_answer(cell) -> bool:
    return cell.cell_type == "code" and bool(cell.metadata.get("nbgrader", {}).get("solution"))


def _tree(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:  # a cell that does not parse fails its tests anyway
        return None


def _bound_names(tree: ast.Module) -> set[str]:
    """Names of the code a cell provides at top level: imports, functions and classes (its data
    variables are left out: an answer may well reuse a name such as ``x`` or ``mu``)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
    return names


def _modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _root(node: ast.expr) -> str | None:
    """The name an attribute chain starts from: ``checks`` for ``checks.values.check_close``."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _findings(tree: ast.Module, protected: set[str], locked_names: set[str]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in tree.body:
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name in locked_names
        ):
            found.append((node.lineno, f"redefines {node.name!r}, which a locked cell defines"))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in locked_names:
                    found.append((node.lineno, f"rebinds {target.id!r}, which a locked cell defines"))
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            if isinstance(target, ast.Attribute) and _root(target) in protected:
                found.append(
                    (node.lineno, f"changes {ast.unparse(target)}, which belongs to code it should only call")
                )
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FORBIDDEN_CALLS
        ):
            found.append((node.lineno, f"calls {node.func.id}()"))
        if isinstance(node, ast.Attribute) and node.attr in _DUNDERS:
            found.append((node.lineno, f"reaches into {node.attr}"))
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("modules", "reload")
            and _root(node) in ("sys", "importlib")
        ):
            found.append((node.lineno, f"uses {ast.unparse(node)}"))
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module.split(".")[0] in _FORBIDDEN_MODULES:
                    found.append((node.lineno, f"imports {module}"))
    return found


def suspicious_lines(notebook: nbformat.NotebookNode) -> list[str]:
    """Every line of the answer cells that reaches into the code that grades them, as
    ``"<grade id> line <n>: <what> (<the line>)"``; empty for an honest submission."""
    locked = [_tree(c.source) for c in notebook.cells if c.cell_type == "code" and not _is_answer(c)]
    locked = [t for t in locked if t is not None]
    locked_names = set().union(*(_bound_names(t) for t in locked)) if locked else set()
    answers = [(c, _tree(c.source)) for c in notebook.cells if _is_answer(c)]
    modules = set().union(*(_modules(t) for t in [*locked, *(t for _, t in answers if t)]))
    protected = modules | locked_names | {"torch", "np", "numpy", "math", "utils", "checks", "F", "nn"}
    report = []
    for cell, tree in answers:
        if tree is None:
            continue
        lines = cell.source.splitlines()
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "?")
        for lineno, what in sorted(set(_findings(tree, protected, locked_names))):
            text = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
            report.append(f"{grade_id} line {lineno}: {what} ({text[:80]})")
    return report


def suspicious_lines_in(path: Path) -> list[str]:
    """``suspicious_lines`` of the notebook file at ``path`` (nothing for an unreadable file)."""
    try:
        return suspicious_lines(nbformat.read(path, as_version=4))
    except Exception:  # an unreadable notebook is reported by the grading itself
        return []
