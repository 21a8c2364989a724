"""The files a deck loads (reveal.js, MathJax, require.js, jQuery): pinned npm packages, installed
once into ``build/npm`` and copied (only the parts a deck needs) into ``<out>/assets``."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from tools.paths import REPO_ROOT
from tools.slides import SlidesError

DEFAULT_NPM_DIR = REPO_ROOT / "build" / "npm"
NPM_MANIFESTS = ("package.json", "package-lock.json")

# What a deck needs from each package, relative to node_modules; copied into <out>/assets.
# MathJax 2 is 71 MB on npm; the TeX -> CommonHTML path below is what the
# "TeX-AMS_CHTML-full" configuration loads (the rest are other output formats and unpacked sources).
DECK_ASSET_PATHS = (
    "reveal.js/LICENSE",
    "reveal.js/dist/reveal.js",
    "reveal.js/dist/reveal.css",
    "reveal.js/dist/reset.css",
    "reveal.js/dist/theme",
    "reveal.js/plugin/notes",
    "mathjax/LICENSE",
    "mathjax/MathJax.js",
    "mathjax/config/TeX-AMS_CHTML-full.js",
    "mathjax/config/Safe.js",
    "mathjax/extensions",
    "mathjax/jax/element",
    "mathjax/jax/input/TeX",
    "mathjax/jax/output/CommonHTML",
    "mathjax/jax/output/PreviewHTML",
    "mathjax/fonts/HTML-CSS/TeX/woff",
    "requirejs/require.js",
    "jquery/LICENSE.txt",
    "jquery/dist/jquery.min.js",
)

# nbconvert's URL options, relative to the deck's HTML file.
ASSET_URLS = {
    "reveal_url_prefix": "assets/reveal.js",
    "mathjax_url": "assets/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
    "require_js_url": "assets/requirejs/require.js",
    "jquery_url": "assets/jquery/dist/jquery.min.js",
}


def _lock_digest(npm_dir: Path) -> str:
    return hashlib.sha256(b"".join((npm_dir / name).read_bytes() for name in NPM_MANIFESTS)).hexdigest()


def install_npm_assets(npm_dir: Path = DEFAULT_NPM_DIR, *, quiet: bool = False) -> Path:
    """Install the pinned slide packages with ``npm ci`` into ``npm_dir``; return its node_modules.

    Reinstalls only when ``package-lock.json`` changed since the last install (a stamp file keeps
    the lock's hash), so repeated ``make slides`` runs need no network.
    """
    npm_dir.mkdir(parents=True, exist_ok=True)
    for name in NPM_MANIFESTS:
        source = REPO_ROOT / name
        if not source.is_file():
            raise SlidesError(f"{source} is missing; restore it from git (it pins the slide assets).")
        shutil.copyfile(source, npm_dir / name)
    stamp = npm_dir / ".digm-installed"
    node_modules = npm_dir / "node_modules"
    digest = _lock_digest(npm_dir)
    if node_modules.is_dir() and stamp.is_file() and stamp.read_text() == digest:
        return node_modules
    npm = shutil.which("npm")
    if npm is None:
        raise SlidesError(
            "npm was not found; install Node.js (e.g. `apt-get install npm`) so the offline slide "
            "assets can be fetched once, or present with RISE inside JupyterLab instead."
        )
    if not quiet:
        print(f"installing slide assets (reveal.js, MathJax, require.js, jQuery) into {npm_dir}")
    command = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    result = subprocess.run(command, cwd=npm_dir, capture_output=True, text=True)
    if result.returncode != 0:
        raise SlidesError(
            f"`npm ci` failed in {npm_dir} (is the npm registry reachable?):\n{result.stderr.strip()}"
        )
    stamp.write_text(digest)
    return node_modules


def copy_deck_assets(node_modules: Path, out_dir: Path) -> Path:
    """Copy the files the decks load from ``node_modules`` into ``out_dir/assets``; return that folder."""
    assets = out_dir / "assets"
    for relative in DECK_ASSET_PATHS:
        source, target = node_modules / relative, assets / relative
        if not source.exists():
            raise SlidesError(
                f"{source} is missing; delete {node_modules.parent} and run again to reinstall."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
    return assets

