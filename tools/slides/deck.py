"""One notebook -> one offline reveal.js deck: the template, its stylesheet and script, and the
static snapshot of widgets."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from tools import notebooks
from tools.slides import SlidesError
from tools.slides.assets import ASSET_URLS

REVEAL_THEME = "white"

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


def has_outputs(notebook: nbformat.NotebookNode) -> bool:
    """True if any code cell of the notebook carries an output (figures for the slides)."""
    return any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")



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


def kernel_log(out_dir: Path, notebook_path: Path) -> Path:
    """Where the kernel that runs a notebook for its deck writes its own log (its warnings and errors,
    which would otherwise land among the progress lines): a folder of its own, apart from the decks."""
    return out_dir / "logs" / f"{notebook_path.stem}.kernel.log"


def build_deck(
    notebook_path: Path,
    out_dir: Path,
    *,
    execute: str = "auto",
    timeout: int = 1800,
    fast: bool | None = None,
    stop: notebooks.Stop | None = None,
    exporter=None,
) -> Path:
    """Write ``out_dir/<stem>.slides.html`` for one notebook and return its path.

    ``execute``: "auto" runs the notebook only when it has no outputs (committed lectures have
    none, so their figures are made now), "always" reruns it, "never" converts it as it is.
    A run's kernel gets DIGM_FAST=1 with ``fast`` (None: this process's DIGM_FAST); a cell past
    ``timeout`` seconds is interrupted. The notebook file itself is never modified.
    """
    if execute not in ("auto", "always", "never"):
        raise SlidesError(f"execute={execute!r} is not one of 'auto', 'always', 'never'.")
    notebook = nbformat.read(notebook_path, as_version=4)
    if execute == "always" or (execute == "auto" and not has_outputs(notebook)):
        log = kernel_log(out_dir, notebook_path)
        outcome = notebooks.execute(
            notebook, notebook_path.resolve().parent, env=notebooks.kernel_env(fast), timeout=timeout,
            stop=stop, log=log,
        )
        if not outcome.ok:  # the other decks still build
            failed = outcome.status.startswith("failed")
            hint = "; try --fast, or run the notebook in JupyterLab to see the cell" if failed else ""
            raise SlidesError(
                f"{notebook_path.name}: {outcome.status.removeprefix('failed: ')}, so its deck was not built "
                f"(the kernel's log: {log}{hint})."
            )
    flatten_widget_outputs(notebook)
    # The browser tab, the speaker view and index.html show the lecture's own title.
    notebook.metadata.setdefault("title", lecture_title(notebook) or notebook_path.stem)
    exporter = exporter or make_exporter()
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": notebook_path.stem}})
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / deck_name(notebook_path)
    target.write_text(body, encoding="utf-8")
    return target


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

