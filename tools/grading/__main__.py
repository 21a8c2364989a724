"""The grading commands (``python -m tools.grading <command>``; ``make release`` and ``make grade``).

Instructors, from the repository root::

    python -m tools.grading release [ASSIGNMENT ...]   # solutions/<id> -> assignments/<id> (student versions)
    python -m tools.grading grade [ASSIGNMENT ...]     # grading/submitted/* -> scores, feedback, grades.csv
    python -m tools.grading collect DIR                # DIR/<student>_<id>.ipynb -> grading/submitted/...
    python -m tools.grading check                      # exit 1 when assignments/ is out of date

Students::

    python -m tools.grading validate assignments/a1_estimators/a1_estimators.ipynb
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from tools.grading.validate import format_validation, run_validation

# Each instructor command's module is imported only when that command runs: the student bundle
# (tools.bundle) ships this file with ``validate`` and its imports, and none of these.
INSTRUCTOR_MODULES = {"release": "release", "check": "release", "grade": "autograde", "collect": "collect"}


def _instructor_module(command: str) -> ModuleType:
    name = f"tools.grading.{INSTRUCTOR_MODULES[command]}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise SystemExit(
            f"`{command}` is an instructor's command, not part of the student bundle; students run `validate`."
        ) from exc


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
    p.add_argument(
        "--unsafe",
        action="store_true",
        help="run submissions without the grading sandbox, with your own rights (where bubblewrap cannot run)",
    )
    p = sub.add_parser("validate", help="run a notebook's tests; exit 1 if any fails")
    p.add_argument("notebook")
    p.add_argument("--timeout", type=int, help="seconds per cell (default: nbgrader_config.py)")
    p = sub.add_parser("collect", help="import DIR/<student>_<assignment>.ipynb into grading/submitted/")
    p.add_argument("folder")
    sub.add_parser("check", help="exit 1 when assignments/ is out of date with solutions/")
    for p in sub.choices.values():
        p.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.command in INSTRUCTOR_MODULES:
        module = _instructor_module(args.command)
    if args.command == "release":
        for path in module.release(args.assignments, root=args.root):
            print(f"wrote {path}")
        return 0
    if args.command == "grade":
        results = module.grade(
            args.assignments,
            root=args.root,
            students=args.student,
            force=args.force,
            timeout=args.timeout,
            unsafe=args.unsafe,
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
        written, skipped = module.collect(args.folder, root=args.root)
        for path in written:
            print(f"collected {path}")
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        return 0 if not skipped else 1
    if args.command == "check":
        problems = module.out_of_date(args.root)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("Run `make release` and commit assignments/.", file=sys.stderr)
        return 1 if problems else 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
