"""Lectures are slide decks: every cell has slide metadata, and `make slides` builds offline decks.

The deck test builds lecture 01 (executed in FAST mode so its figures exist) with
``utils.slides``, serves the folder on a loopback port and opens it in headless Chromium with every
request to another host aborted and recorded: reveal.js must start and MathJax must typeset with no
network at all. Screenshots go to tests/artifacts/<test>/.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from conftest import REPO_ROOT, watch_page

from utils import slides

SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}
DECK_LECTURE = "01_*.ipynb"
NPM_DIR = REPO_ROOT / "build" / "npm"  # the same cache `make slides` uses: installed once per checkout


def slide_notebooks() -> list[Path]:
    """Every lecture and template notebook that exists now."""
    return sorted((REPO_ROOT / "lectures").glob("*.ipynb")) + sorted(
        (REPO_ROOT / "templates").glob("*.ipynb")
    )


@pytest.mark.parametrize("path", slide_notebooks(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_cell_has_slide_metadata(path):
    notebook = nbformat.read(path, as_version=4)
    bad = [
        f"cell {index} ({cell.cell_type}, {cell.source[:40]!r}): {cell.metadata.get('slideshow')!r}"
        for index, cell in enumerate(notebook.cells)
        if cell.metadata.get("slideshow", {}).get("slide_type") not in SLIDE_TYPES
    ]
    assert not bad, (
        f"{path.name}: cells without a valid metadata.slideshow.slide_type (one of {sorted(SLIDE_TYPES)}); "
        "set it in JupyterLab's property inspector or with RISE's Shift+I/B/G:\n" + "\n".join(bad)
    )


@pytest.mark.notebook
@pytest.mark.parametrize("path", sorted((REPO_ROOT / "templates").glob("*.ipynb")), ids=lambda p: p.name)
def test_template_notebook_runs_in_fast_mode(path, monkeypatch):
    # Students start from these; a template that fails before they change anything is a bad start.
    monkeypatch.setenv("DIGM_FAST", "1")  # the kernel nbclient starts inherits it
    notebook = nbformat.read(path, as_version=4)
    slides.execute_notebook(notebook, path.parent, timeout=300)
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name} raised: {errors[0].get('ename')}: {errors[0].get('evalue')}"


def test_report_rubric_adds_up_to_100():
    text = (REPO_ROOT / "templates" / "project_report.md").read_text(encoding="utf-8")
    sections = {
        name.strip(): int(points) for name, points in re.findall(r"^## (.+?) \((\d+) points\)$", text, re.M)
    }
    table = {
        name.strip(): int(points)
        for name, points in re.findall(r"^\| ([A-Z][^|*]+?) \| (\d+) \|$", text, re.M)
    }
    assert sum(sections.values()) == 100, (
        f"the section points of project_report.md add up to {sum(sections.values())}: {sections}"
    )
    assert sum(table.values()) == 100, (
        f"the rubric table of project_report.md adds up to {sum(table.values())}: {table}"
    )
    headings = {re.sub(r"^\d+\. ", "", name): points for name, points in sections.items()}
    assert headings == table, f"section headings {headings} and the rubric table {table} disagree"


def test_widget_views_become_their_last_drawing():
    # A static deck cannot run a slider, so the figure its Output widget captured is shown instead.
    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("interact(...)")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "text/plain": "interactive(...)",
                slides.WIDGET_VIEW: {"model_id": "box", "version_major": 2},
            },
        )
    ]
    notebook.cells = [cell]
    notebook.metadata["widgets"] = {
        slides.WIDGET_STATE: {
            "state": {
                "box": {
                    "model_name": "VBoxModel",
                    "state": {"children": ["IPY_MODEL_slider", "IPY_MODEL_out"]},
                },
                "slider": {"model_name": "FloatSliderModel", "state": {"value": 1.0}},
                "out": {"model_name": "OutputModel", "state": {"outputs": [figure]}},
            }
        }
    }
    slides.flatten_widget_outputs(notebook)
    assert cell.outputs == [figure], (
        f"expected the Output widget's figure in place of the widget, got {cell.outputs}"
    )
    assert "widgets" not in notebook.metadata, (
        "widget state left in: nbconvert would load the widget manager from a CDN"
    )


def test_a_lecture_whose_kernel_dies_fails_with_a_slides_error(tmp_path):
    # build_decks skips a lecture that raises SlidesError and builds the others; a dead kernel
    # (out of memory) must be one of those, not an exception that ends the whole build.
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell("import os\nos._exit(1)")]
    path = tmp_path / "dies.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(slides.SlidesError, match="kernel died"):
        slides.build_deck(path, tmp_path / "out", execute="always", timeout=60)


# --------------------------------------------------------------------------------------------
# The built deck


def _require_npm() -> None:
    if shutil.which("npm") is None and not (NPM_DIR / "node_modules").is_dir():
        reason = "building slides needs npm once, to fetch reveal.js and MathJax (apt-get install npm)"
        if os.environ.get("DIGM_REQUIRE_BROWSER", "").strip() in {"1", "true", "yes"}:
            pytest.fail(f"DIGM_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def deck(tmp_path_factory) -> Path:
    """Lecture 01 built into a temporary folder by utils.slides, executed in FAST mode."""
    _require_npm()
    found = sorted((REPO_ROOT / "lectures").glob(DECK_LECTURE))
    if not found:
        pytest.fail(f"lectures/{DECK_LECTURE} does not exist; the slides test builds its deck")
    out = tmp_path_factory.mktemp("slides")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIGM_FAST", "1")  # the kernel nbclient starts inherits it
        (path,) = slides.build_decks([found[0]], out, execute="always", npm_dir=NPM_DIR, quiet=True)
    return path


def test_deck_loads_nothing_from_the_network(deck):
    # Links a reader may click (arXiv) are fine; scripts, stylesheets, images, fonts and module
    # imports are fetched while the deck loads, so they must all be local.
    html = deck.read_text(encoding="utf-8")
    remote = r"""(?:https?:)?//[^"'\s)]+"""
    loads = re.findall(rf"""\ssrc\s*=\s*["']({remote})""", html)
    loads += re.findall(rf"""<link\b[^>]*\shref\s*=\s*["']({remote})""", html)
    loads += re.findall(rf"""\bimport\b[^;]*?\bfrom\s*["']({remote})""", html)
    loads += re.findall(rf"""url\(\s*["']?({remote})""", html)
    assert not loads, f"{deck.name} loads files from the network, so it breaks offline: {loads}"


@pytest.fixture
def deck_server(deck):
    """Serve the deck's folder on a free loopback port; yields its base URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest's output clean
            pass

    handler = functools.partial(QuietHandler, directory=str(deck.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# [h, v] of the first slide (a leaf: vertical subslides sit inside a horizontal one) with `selector`.
_FIRST_SLIDE_WITH_JS = """selector => {
    const tops = Array.from(document.querySelectorAll('.reveal .slides > section'));
    for (let h = 0; h < tops.length; h++) {
        const inner = Array.from(tops[h].querySelectorAll(':scope > section'));
        const leaves = inner.length ? inner : [tops[h]];
        for (let v = 0; v < leaves.length; v++)
            if (leaves[v].querySelector(selector)) return [h, v];
    }
    return null;
}"""
_PRESENT = ".reveal .slides section.present:not(.stack)"
_MATHJAX_DONE_JS = "() => new Promise(resolve => MathJax.Hub.Queue(() => resolve(true)))"
_PRESENT_MATHS_RENDERED_JS = """() => {
    const slide = document.querySelector('.reveal .slides section.present:not(.stack)');
    const maths = slide ? Array.from(slide.querySelectorAll('.MathJax_CHTML')) : [];
    return maths.length > 0 && maths.every(m => m.getBoundingClientRect().width > 0);
}"""


@pytest.mark.browser
def test_deck_starts_reveal_and_renders_maths_offline(chromium, deck, deck_server, artifacts_dir):
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError  # only browser tests need it

    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    problems = watch_page(page)
    remote, failed = [], []

    def only_loopback(route) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:  # the deck must work with no network: record and refuse anything else
            remote.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.on("requestfailed", lambda request: failed.append(f"{request.url} ({request.failure})"))
    page.on(
        "response",
        lambda response: response.status >= 400 and failed.append(f"{response.url} ({response.status})"),
    )
    try:
        page.goto(f"{deck_server}/{deck.name}")
        page.wait_for_selector(".reveal.ready", timeout=30_000)
        page.evaluate(_MATHJAX_DONE_JS)
        page.screenshot(path=str(artifacts_dir / "deck_title.png"))

        where = page.evaluate(_FIRST_SLIDE_WITH_JS, 'script[type^="math/tex"]')
        assert where is not None, (
            f"{deck.name} has no maths at all; expected lecture 01 to show its estimators"
        )
        slide = "/".join(map(str, where))
        page.goto(f"{deck_server}/{deck.name}#/{slide}")
        try:  # changing slide makes the template re-typeset it, so wait for visible, sized maths
            page.wait_for_function(_PRESENT_MATHS_RENDERED_JS, timeout=20_000, polling=250)
        except PlaywrightTimeoutError:
            page.screenshot(path=str(artifacts_dir / "deck_first_maths.png"))
            pytest.fail(
                f"slide {slide} has TeX but MathJax showed none of it; are the MathJax assets complete?"
            )
        page.screenshot(path=str(artifacts_dir / "deck_first_maths.png"))
        text = page.locator(_PRESENT).inner_text()
        assert "$$" not in text, f"raw $$ left on slide {slide}: MathJax did not typeset it"
        where = page.evaluate(_FIRST_SLIDE_WITH_JS, "img")
        assert where is not None, f"{deck.name} has no figure; was the lecture executed before conversion?"
        slide = "/".join(map(str, where))
        page.goto(f"{deck_server}/{deck.name}#/{slide}")
        figure = page.locator(f"{_PRESENT} img").first
        figure.wait_for(state="visible", timeout=10_000)
        assert figure.evaluate("img => img.naturalWidth") > 0, f"the figure on slide {slide} did not decode"
        page.screenshot(path=str(artifacts_dir / "deck_first_figure.png"))
    finally:
        page.close()
    assert not remote, f"the deck tried to reach the network: {remote}"
    assert not failed, f"requests that failed (missing assets?): {failed}"
    assert not problems.all(), "browser console errors in the deck:\n" + "\n".join(problems.all())
