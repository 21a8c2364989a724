"""Static reveal.js decks of the lectures that open with no network: ``make slides``.

Every lecture cell carries ``metadata["slideshow"]["slide_type"]``, so a lecture is also a deck.
For live presenting inside JupyterLab use RISE (``Alt+R``); this module builds *static* HTML decks
for sharing or for a projector machine without Python::

    python -m tools.slides                          # every lecture -> build/slides/<name>.slides.html
    DIGM_FAST=1 python -m tools.slides              # quicker: execute the lectures in FAST mode
    python -m tools.slides --out /tmp/deck lectures/01_*.ipynb
    python -m tools.slides --execute never build/course/*.ipynb   # notebooks that already have outputs

nbconvert's reveal template loads reveal.js, MathJax, require.js and jQuery from CDNs, and offline
it degrades to one flat page with raw LaTeX. Here those files come from pinned npm packages
(``package.json`` / ``package-lock.json`` in the repository root), installed once into
``build/npm`` and copied (only the parts a deck needs, about 4 MB) into ``<out>/assets``, so the
output folder is self-contained: open a deck from ``file://`` or serve the folder.

For a projector, the decks add their own stylesheet and a small script (``_DECK_CSS``, ``_DECK_JS``):
16:9 slides, no "In [n]:" prompts, code and output blocks whose font shrinks until their longest
line fits (then they scroll sideways), and slides taller than the screen that scroll inside the
slide box instead of being cut off. ``index.html`` lists every deck by number and title, with the
keys for presenting.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "build" / "slides"
DEFAULT_NPM_DIR = REPO_ROOT / "build" / "npm"
NPM_MANIFESTS = ("package.json", "package-lock.json")
REVEAL_THEME = "white"

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

# The slide's size in reveal's own pixels; reveal scales the whole slide to the screen. 16:9 is what
# projectors and laptops show today, and 1280 px across holds a 110-character code line (ruff's limit
# for the course) at a readable size once the "In [n]:" prompts are hidden.
DECK_WIDTH, DECK_HEIGHT = 1280, 720
# How far the deck script may shrink a code or output block's font to fit its longest line, before
# the block scrolls sideways instead (below about 70% the code gets hard to read from the back row).
CODE_MIN_SCALE = 0.7
LECTURE_TITLE_META = "digm-lecture-title"

# Our layer over nbconvert's and the theme's styles. Every rule starts with `.reveal .slides` so it
# wins over the reveal theme, which the template links after this block. A slide never grows past
# the slide box: a taller one scrolls inside it (mouse wheel or trackpad; the arrow keys still change
# slides), and long code lines shrink or scroll inside their own block, not off the right edge.
_DECK_CSS = """
:root {
  --jp-content-font-size1: 22px;
  --jp-code-font-size: 18px;
  --jp-cell-prompt-width: 0px;
}
.reveal .slides > section:not(.stack),
.reveal .slides > section > section {
  box-sizing: border-box;
  max-height: 100%;
  padding: 16px 12px;
  overflow-x: hidden;
  overflow-y: auto;
}
.reveal .slides section.digm-more-below::after {
  /* a slide that scrolls says so: a fade and an arrow stay at its bottom edge until the end shows */
  content: "\\25BE";
  position: sticky;
  bottom: 0;
  display: block;
  height: 36px;
  margin-top: -36px;
  text-align: center;
  font-size: 28px;
  line-height: 40px;
  color: #777;
  background: linear-gradient(rgba(255, 255, 255, 0), rgba(255, 255, 255, 0.95) 70%);
  pointer-events: none;
}
.reveal .slides h1, .reveal .slides h2, .reveal .slides h3,
.reveal .slides h4, .reveal .slides h5, .reveal .slides h6 {
  text-transform: none;  /* the theme's capitals would also capitalise maths in a heading */
}
.reveal .slides .jp-InputPrompt,
.reveal .slides .jp-OutputPrompt {
  display: none;  /* execution counts mean nothing to an audience and cost a tenth of the width */
}
.reveal .slides .jp-InputArea-editor pre,
.reveal .slides .jp-RenderedText > pre {
  box-sizing: border-box;
  width: 100%;
  max-width: 100%;
  margin: 0;
  white-space: pre;
  word-wrap: normal;
  overflow-wrap: normal;
  word-break: normal;
  overflow-x: auto;
  overflow-y: hidden;
}
.reveal .slides .jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"] > pre,
.reveal .slides .jp-RenderedText > pre.digm-wrapped {
  white-space: pre-wrap;  /* warnings are prose: wrap them rather than shrink them */
  overflow-wrap: anywhere;
}
.reveal .slides .jp-OutputArea-output {
  max-width: 100%;
  overflow-x: auto;
}
.reveal .slides .jp-RenderedHTMLCommon table {
  display: block;
  max-width: 100%;
  overflow-x: auto;
}
.reveal .slides .jp-OutputArea-output img,
.reveal .slides .jp-RenderedHTMLCommon img {
  box-sizing: border-box;
  max-width: 100%;
  max-height: 600px;  /* a figure and a line of text above it fit on one 720 px slide */
  width: auto;
  height: auto;
  object-fit: contain;
}
"""

# Runs after nbconvert's own start-up script, which has called Reveal.initialize.
_DECK_JS = """
(function (revealUrl, minScale) {
  "use strict";
  var CODE = ".jp-InputArea-editor pre";
  var TEXT_OUTPUT = ".jp-RenderedText:not([data-mime-type='application/vnd.jupyter.stderr']) > pre";

  // Shrink a block's font until its longest line fits, down to minScale of the stylesheet's size.
  // Output still too wide is mostly prose (a check's message), so it wraps at full size instead;
  // code keeps its lines and scrolls sideways.
  function fitBlock(pre, wrapIfTooWide) {
    pre.style.fontSize = "";
    pre.classList.remove("digm-wrapped");
    var size = parseFloat(getComputedStyle(pre).fontSize);
    var smallest = size * minScale;
    while (pre.scrollWidth > pre.clientWidth + 1 && size > smallest) {
      size = Math.max(smallest, size * Math.min(pre.clientWidth / pre.scrollWidth, 0.97));
      pre.style.fontSize = size + "px";
    }
    if (wrapIfTooWide && pre.scrollWidth > pre.clientWidth + 1) {
      pre.style.fontSize = "";
      pre.classList.add("digm-wrapped");
    }
  }

  function markMoreBelow(slide) {
    slide.classList.toggle("digm-more-below",
      slide.scrollTop + slide.clientHeight < slide.scrollHeight - 2);
  }

  function start(Reveal) {
    // Reveal centres a slide once, from its height when it is shown; MathJax (re)typesets it and
    // its figures decode later. A slide that grew would then hang below the slide box, so it is
    // laid out again whenever one of its cells changes size.
    function relayout() {
      Reveal.layout();
      if (Reveal.getCurrentSlide()) { markMoreBelow(Reveal.getCurrentSlide()); }
    }
    var grown = window.ResizeObserver ? new ResizeObserver(relayout) : null;
    function fitCurrentSlide() {
      var slide = Reveal.getCurrentSlide();
      if (!slide) { return; }
      slide.querySelectorAll(CODE).forEach(function (pre) { fitBlock(pre, false); });
      slide.querySelectorAll(TEXT_OUTPUT).forEach(function (pre) { fitBlock(pre, true); });
      relayout();
      if (grown) {
        grown.disconnect();
        Array.prototype.forEach.call(slide.children, function (cell) { grown.observe(cell); });
      }
    }
    document.querySelectorAll(".reveal .slides section").forEach(function (slide) {
      slide.addEventListener("scroll", function () { markMoreBelow(slide); }, {passive: true});
    });
    Reveal.addEventListener("slidechanged", fitCurrentSlide);
    fitCurrentSlide();
  }

  require([revealUrl], function (Reveal) {
    if (Reveal.isReady && Reveal.isReady()) { start(Reveal); }
    else { Reveal.addEventListener("ready", function () { start(Reveal); }); }
  });
})
"""

# The stock template imports mermaid from a CDN in every deck; the lectures draw no mermaid
# diagrams, so the block is dropped rather than left as a request that fails offline. The lecture's
# title goes into a <meta> tag so index.html can list decks built in earlier runs too.
_TEMPLATE_NAME = "digm_offline_reveal.html.j2"
_TEMPLATE_SOURCE = (
    "{%- extends 'index.html.j2' -%}\n"
    "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}\n"
    "{%- block html_head_css -%}\n"
    f'<meta name="{LECTURE_TITLE_META}" '
    "content=\"{{ nb.metadata.get('title', '') | escape_html }}\">\n"
    '<style type="text/css">{% raw %}' + _DECK_CSS + "{% endraw %}</style>\n"
    "{%- endblock html_head_css -%}\n"
    "{% block footer_js %}{{ super() }}\n"
    "<script>{% raw %}" + _DECK_JS + "{% endraw %}"
    f'("{{{{ resources.reveal.url_prefix }}}}/dist/reveal.js", {CODE_MIN_SCALE});</script>\n'
    "{% endblock footer_js %}\n"
)


class SlidesError(RuntimeError):
    """A deck could not be built; the message says what to do."""


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


def has_outputs(notebook: nbformat.NotebookNode) -> bool:
    """True if any code cell of the notebook carries an output (figures for the slides)."""
    return any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


def execute_notebook(notebook: nbformat.NotebookNode, cwd: Path, timeout: int) -> None:
    """Run every cell in place, in a fresh kernel started in ``cwd`` (the kernel inherits DIGM_FAST)."""
    from nbclient import NotebookClient  # imported here: only the executing path needs a kernel

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_WIDGET_NOTE = {
    "text/html": '<p class="digm-widget-note"><em>(interactive widget: present with RISE in JupyterLab)</em></p>',
    "text/plain": "(interactive widget: present with RISE in JupyterLab)",
}


def _widget_snapshot(model_id: str, state: dict, seen: set[str]) -> list[dict]:
    """Static outputs of a widget tree: what its Output widgets captured and its Image widgets show."""
    if model_id in seen or model_id not in state:
        return []
    seen.add(model_id)
    model = state[model_id]
    if model["model_name"] == "OutputModel":
        return list(model["state"].get("outputs", []))
    if model["model_name"] == "ImageModel":
        image_format = model["state"].get("format", "png")
        for buffer in model.get("buffers", []):
            if buffer.get("path") == ["value"] and buffer.get("encoding") == "base64":
                mime = f"image/{'jpeg' if image_format == 'jpg' else image_format}"
                return [nbformat.v4.new_output("display_data", data={mime: buffer["data"]})]
        return []
    outputs = []
    for child in model["state"].get("children", []):
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            outputs.extend(_widget_snapshot(child.removeprefix("IPY_MODEL_"), state, seen))
    return outputs


def flatten_widget_outputs(notebook: nbformat.NotebookNode) -> None:
    """Replace each widget view by a snapshot of what it displayed when the notebook ran.

    A static deck has no kernel and (offline) no widget manager, so a slider cannot move; showing
    the figure it drew at its initial value is the useful static equivalent. Drops the stored
    widget state afterwards, which would otherwise make nbconvert load the widget manager from a CDN.
    """
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        flattened = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                flattened.append(output)
                continue
            snapshot = _widget_snapshot(view.get("model_id", ""), state, set())
            flattened.extend(snapshot or [nbformat.v4.new_output("display_data", data=dict(_WIDGET_NOTE))])
        cell.outputs = flattened
    notebook.metadata.pop("widgets", None)


def make_exporter():
    """A SlidesExporter that points every asset at ``assets/`` and loads nothing from a CDN."""
    from jinja2 import DictLoader
    from nbconvert import SlidesExporter

    exporter = SlidesExporter(
        extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE_SOURCE})],
        template_file=_TEMPLATE_NAME,
        reveal_theme=REVEAL_THEME,
        reveal_transition="none",
        reveal_number="c/t",  # "slide 14 of 42" lets the class say which slide a question is about
        reveal_width=str(DECK_WIDTH),
        reveal_height=str(DECK_HEIGHT),
        # nbconvert's own scrolling sizes a tall slide to 95% of the window *before* reveal scales
        # it, so on most screens its bottom is still cut off; the stylesheet above does it instead.
        reveal_scroll=False,
        **ASSET_URLS,
    )
    return exporter


def deck_name(notebook_path: Path) -> str:
    """File name of a notebook's deck: ``03_vae.ipynb`` -> ``03_vae.slides.html``."""
    return f"{notebook_path.stem}.slides.html"


def build_deck(
    notebook_path: Path,
    out_dir: Path,
    *,
    execute: str = "auto",
    timeout: int = 1800,
    exporter=None,
) -> Path:
    """Write ``out_dir/<stem>.slides.html`` for one notebook and return its path.

    ``execute``: "auto" runs the notebook only when it has no outputs (committed lectures have
    none, so their figures are made now), "always" reruns it, "never" converts it as it is.
    The notebook file itself is never modified.
    """
    if execute not in ("auto", "always", "never"):
        raise SlidesError(f"execute={execute!r} is not one of 'auto', 'always', 'never'.")
    notebook = nbformat.read(notebook_path, as_version=4)
    if execute == "always" or (execute == "auto" and not has_outputs(notebook)):
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        try:
            execute_notebook(notebook, notebook_path.resolve().parent, timeout)
        except CellExecutionError as error:
            raise SlidesError(
                f"{notebook_path.name}: a cell raised {error.ename}: {error.evalue} "
                "(run the notebook in JupyterLab to see which), so its deck was not built."
            ) from None
        except CellTimeoutError:
            raise SlidesError(
                f"{notebook_path.name}: a cell ran longer than {timeout} s; raise --timeout or use --fast."
            ) from None
        except DeadKernelError:  # out of memory, or a cell that ends Python: the other decks still build
            raise SlidesError(
                f"{notebook_path.name}: the kernel died while running it (out of memory?); "
                "try --fast, or run it in JupyterLab to see which cell."
            ) from None
    flatten_widget_outputs(notebook)
    # The browser tab, the speaker view and index.html show the lecture's own title.
    notebook.metadata.setdefault("title", lecture_title(notebook) or notebook_path.stem)
    exporter = exporter or make_exporter()
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": notebook_path.stem}})
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / deck_name(notebook_path)
    target.write_text(body, encoding="utf-8")
    return target


COURSE_TITLE = "Differentiable Inference and Generative Models"

# What reveal.js 4.0.2 and its notes plugin bind, as (keys, what they do) for index.html; each key is
# pressed in tests/test_slides.py. The lectures put most steps on vertical subslides, so Space, not the
# right arrow, walks through every slide in order.
PRESENTING_KEYS = (
    (("Space", "N"), "next slide, in order"),
    (("P",), "previous slide"),
    (("\u2192", "\u2190"), "next / previous section"),
    (("\u2193", "\u2191"), "down / up within a section"),
    (("F",), "full screen"),
    (("S",), "speaker view in a second window: timer, upcoming slide, notes (allow pop-ups)"),
    (("Esc", "O"), "overview of all slides (press again to leave)"),
    (("B", "."), "black screen, to pause (press again to resume)"),
    (("?",), "list of all keys"),
)

_INDEX_CSS = """
body { font-family: "Source Sans Pro", Helvetica, Arial, sans-serif; color: #222; margin: 0;
       line-height: 1.45; background: #fafafa; }
main { max-width: 52rem; margin: 0 auto; padding: 2.5rem 1.5rem; }
h1 { font-size: 2.1rem; margin: 0 0 0.3rem; }
.subtitle { color: #555; margin: 0 0 2rem; }
ol.decks { list-style: none; padding: 0; margin: 0 0 2.5rem; }
ol.decks li a { display: flex; gap: 1rem; align-items: baseline; padding: 0.8rem 1rem; margin: 0.4rem 0;
                background: #fff; border: 1px solid #ddd; border-radius: 6px; color: inherit;
                text-decoration: none; font-size: 1.2rem; }
ol.decks li a:hover, ol.decks li a:focus { border-color: #2a76dd; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
.deck-number { font-weight: 600; color: #2a76dd; min-width: 2.2rem; }
table.keys { border-collapse: collapse; }
table.keys td { padding: 0.25rem 1rem 0.25rem 0; vertical-align: top; }
kbd { font-family: monospace; background: #fff; border: 1px solid #bbb; border-radius: 4px;
      padding: 0.05rem 0.4rem; white-space: nowrap; }
"""


def lecture_title(notebook: nbformat.NotebookNode) -> str | None:
    """The text of the notebook's first Markdown heading, or None when it has none."""
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            match = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
            if match:
                return match.group(1)
    return None


class _TitleMetaParser(HTMLParser):
    """Finds the content of the lecture-title <meta> tag, whatever order its attributes are in."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("name") == LECTURE_TITLE_META:
            self.title = (values.get("content") or "").strip()


def deck_title(deck: Path) -> str:
    """The lecture title ``build_deck`` wrote into a deck, or its file stem for a deck without one."""
    parser = _TitleMetaParser()
    parser.feed(deck.read_text(encoding="utf-8", errors="replace"))
    return parser.title or deck.name.removesuffix(".slides.html")


def _index_entry(deck: Path) -> str:
    stem = deck.name.removesuffix(".slides.html")
    number = re.match(r"\d+", stem)
    title = deck_title(deck)
    if number:  # "Week 01 · Foo" -> "Foo": the number has a column of its own
        title = re.sub(r"^(?:week|lecture)\s*0*\d+\s*[\u00b7:.\u2013\u2014-]\s*", "", title, flags=re.I) or title
    return (
        f'  <li class="deck"><a href="{html.escape(deck.name)}">'
        f'<span class="deck-number">{html.escape(number.group(0) if number else "")}</span>'
        f'<span class="deck-title">{html.escape(title)}</span></a></li>'
    )


def write_index(out_dir: Path, decks: Iterable[Path]) -> Path:
    """Write ``out_dir/index.html``: the course title, one link per deck (number and title), the keys."""
    entries = "\n".join(_index_entry(deck) for deck in sorted(decks))
    keys = "\n".join(
        f"  <tr><td>{' '.join(f'<kbd>{html.escape(key)}</kbd>' for key in keys)}</td>"
        f"<td>{html.escape(action)}</td></tr>"
        for keys, action in PRESENTING_KEYS
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(COURSE_TITLE)}: lecture slides</title>
<style>{_INDEX_CSS}</style></head>
<body><main>
<h1>{html.escape(COURSE_TITLE)}</h1>
<p class="subtitle">Lecture slides. Every deck works offline: open it from this folder, no server needed.</p>
<ol class="decks">
{entries}
</ol>
<h2>Presenting</h2>
<p>Open a deck, press <kbd>F</kbd> for full screen. A slide taller than the screen scrolls with the
mouse wheel or trackpad; long code lines shrink to fit, or scroll sideways inside their box.</p>
<table class="keys">
{keys}
</table>
</main></body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def default_notebooks() -> list[Path]:
    """Every lecture notebook, in course order."""
    return sorted((REPO_ROOT / "lectures").glob("[0-9]*.ipynb"))


def build_decks(
    notebooks: Sequence[Path],
    out_dir: Path = DEFAULT_OUT,
    *,
    execute: str = "auto",
    timeout: int = 1800,
    npm_dir: Path = DEFAULT_NPM_DIR,
    quiet: bool = False,
) -> list[Path]:
    """Install/copy the offline assets once, then build one deck per notebook; return the deck paths.

    Raises SlidesError naming every notebook that failed, after building all the others.
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
        try:  # one failing lecture should not cost the decks of the others
            decks.append(build_deck(Path(path), out_dir, execute=execute, timeout=timeout, exporter=exporter))
        except SlidesError as error:
            failures.append(str(error))
    write_index(out_dir, out_dir.glob("*.slides.html"))
    if failures:
        raise SlidesError(
            f"{len(failures)} of {len(notebooks)} deck(s) failed (the others are in {out_dir}):\n  "
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
    parser.add_argument("--fast", action="store_true", help="execute in FAST mode (sets DIGM_FAST=1)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell when executing")
    parser.add_argument("--npm-dir", type=Path, default=DEFAULT_NPM_DIR, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fast:
        os.environ["DIGM_FAST"] = "1"  # this process ends after the build; kernels inherit it
    notebooks = args.notebooks or default_notebooks()
    try:
        decks = build_decks(
            notebooks, args.out, execute=args.execute, timeout=args.timeout, npm_dir=args.npm_dir
        )
    except SlidesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{len(decks)} deck(s) in {args.out} (open index.html: the lectures and the keys for presenting)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
