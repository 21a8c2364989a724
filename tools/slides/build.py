"""``make slides``: build the decks of the lectures (or of given notebooks) into one offline folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.notebooks import CTRL_C, Stop, count, ctrl_c_stops, numbered_notebooks
from tools.paths import REPO_ROOT
from tools.slides import SlidesError
from tools.slides.assets import DEFAULT_NPM_DIR, copy_deck_assets, install_npm_assets
from tools.slides.deck import build_deck, make_exporter
from tools.slides.index import write_index

DEFAULT_OUT = REPO_ROOT / "build" / "slides"


def build_decks(
    notebooks: Sequence[Path],
    out_dir: Path = DEFAULT_OUT,
    *,
    execute: str = "auto",
    timeout: int = 1800,
    fast: bool | None = None,
    npm_dir: Path = DEFAULT_NPM_DIR,
    quiet: bool = False,
    stop: Stop | None = None,
) -> list[Path]:
    """Install/copy the offline assets once, then build one deck per notebook; return the deck paths.

    Raises SlidesError naming every notebook that failed, after building all the others. Once
    ``stop`` says Ctrl-C was pressed, the remaining notebooks are not run (see ``build_deck`` for the rest).
    """
    missing = [str(path) for path in notebooks if not Path(path).is_file()]
    if missing:
        raise SlidesError(f"no such notebook: {', '.join(missing)}; pass paths to .ipynb files.")
    if not notebooks:
        raise SlidesError("no notebooks to convert; pass .ipynb paths or add lectures under lectures/.")
    copy_deck_assets(install_npm_assets(npm_dir, quiet=quiet), out_dir)
    exporter = make_exporter()
    decks, failures = [], []
    for path in notebooks:
        if not quiet:
            print(f"slides: {path}", flush=True)
        if stop is not None and stop.pressed.is_set():
            failures.append(f"{Path(path).name}: {CTRL_C} before it started")
            continue
        try:  # one failing lecture should not cost the decks of the others
            decks.append(
                build_deck(
                    Path(path), out_dir, execute=execute, timeout=timeout, fast=fast, stop=stop, exporter=exporter
                )
            )
        except SlidesError as error:
            failures.append(str(error))
    write_index(out_dir, out_dir.glob("*.slides.html"))
    if failures:
        raise SlidesError(
            f"{len(failures)} of {count(len(notebooks), 'deck')} failed (the others are in {out_dir}):\n  "
            + "\n  ".join(failures)
        )
    return decks


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.slides",
        description="Build offline reveal.js decks of the lectures (default: every lectures/*.ipynb).",
    )
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to convert (default: all lectures)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: build/slides)")
    parser.add_argument(
        "--execute",
        choices=("auto", "always", "never"),
        default="auto",
        help="run notebooks first: 'auto' (default) runs those without outputs",
    )
    parser.add_argument("--fast", action="store_true", help="execute in FAST mode (DIGM_FAST=1 in the kernels)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell when executing")
    parser.add_argument("--npm-dir", type=Path, default=DEFAULT_NPM_DIR, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notebooks = args.notebooks or numbered_notebooks(REPO_ROOT / "lectures")
    stop = Stop()
    try:
        with ctrl_c_stops(stop):  # Ctrl-C: the running cell stops, the decks built so far get their index
            decks = build_decks(
                notebooks, args.out, execute=args.execute, timeout=args.timeout, fast=True if args.fast else None,
                npm_dir=args.npm_dir, stop=stop,
            )
    except SlidesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 130 if stop.pressed.is_set() else 1
    print(f"{count(len(decks), 'deck')} in {args.out} (open index.html: the lectures and the keys for presenting)")
    return 0
