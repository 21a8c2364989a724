"""python -m tools.bundle [--out build/student-bundle] [--no-zip]: the folder students receive, and a zip."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.bundle.build import BundleError, build
from tools.paths import REPO_ROOT


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bundle",
        description="Build the student bundle: lectures, assignments, utils, templates, a student README, "
        "no solutions, hidden tests, mark schemes or instructor tools.",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "student-bundle", help="the folder to write")
    parser.add_argument("--no-zip", action="store_true", help="write the folder only, no .zip beside it")
    args = parser.parse_args(argv)
    try:
        out = build(args.out, archive=not args.no_zip)
    except BundleError as exc:
        print(f"No bundle written: {exc}", file=sys.stderr)
        return 1
    files = sum(1 for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({files} files)" + ("" if args.no_zip else f" and {out.with_suffix('.zip')}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
