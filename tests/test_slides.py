"""Lectures are slide decks: every cell has slide metadata, and `make slides` builds offline decks.

The deck test builds lecture 01 (executed in FAST mode so its figures exist) with
``tools.slides``, serves the folder on a loopback port and opens it in headless Chromium with every
request to another host aborted and recorded: reveal.js must start and MathJax must typeset with no
network at all. The same deck is then shown slide by slide to check that no code or output block runs
off a slide, and its index.html is opened to follow the link and press every key the page names.
Screenshots go to tests/artifacts/<test>/.
"""

from __future__ import annotations

import functools
import html
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

from tools import notebooks
from tools.slides import SlidesError
from tools.slides.build import build_decks
from tools.slides.deck import (
    LECTURE_TITLE_META,
    WIDGET_STATE,
    WIDGET_VIEW,
    build_deck,
    flatten_widget_outputs,
    lecture_title,
)
from tools.slides.index import COURSE_TITLE, PRESENTING_KEYS, write_index

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
def test_template_notebook_runs_in_fast_mode(path):
    # Students start from these; a template that fails before they change anything is a bad start.
    notebook = nbformat.read(path, as_version=4)
    outcome = notebooks.execute(notebook, path.parent, env=notebooks.kernel_env(fast=True), timeout=300)
    assert outcome.ok, f"{path.name}: {outcome.status}"
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
                WIDGET_VIEW: {"model_id": "box", "version_major": 2},
            },
        )
    ]
    notebook.cells = [cell]
    notebook.metadata["widgets"] = {
        WIDGET_STATE: {
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
    flatten_widget_outputs(notebook)
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
    with pytest.raises(SlidesError, match="kernel died"):
        build_deck(path, tmp_path / "out", execute="always", timeout=60)


def test_a_failing_lecture_names_its_kernel_log_and_keeps_the_log_off_the_terminal(tmp_path, capfd):
    # A kernel logs to its stderr ("[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel."); those
    # lines used to land among the build's progress lines, and the error named no place to look.
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell("get_ipython().kernel.log.error('kernel log line: caught in kernel')"),
        nbformat.v4.new_code_cell("raise ValueError('deliberately broken')"),
    ]
    path = tmp_path / "03_broken.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(SlidesError) as failed:
        build_deck(path, tmp_path / "out", execute="always", timeout=60)
    log = tmp_path / "out" / "logs" / "03_broken.kernel.log"
    assert "ValueError: deliberately broken" in str(failed.value) and str(log) in str(failed.value), (
        f"the error does not say what failed and where the kernel's log is: {failed.value}"
    )
    assert "kernel log line: caught in kernel" in log.read_text(), f"the kernel's log line is not in {log}"
    terminal = "".join(capfd.readouterr())
    assert "kernel log line" not in terminal, f"the kernel's log line reached the terminal:\n{terminal}"


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
    """Lecture 01 built into a temporary folder by tools.slides, executed in FAST mode."""
    _require_npm()
    found = sorted((REPO_ROOT / "lectures").glob(DECK_LECTURE))
    if not found:
        pytest.fail(f"lectures/{DECK_LECTURE} does not exist; the slides test builds its deck")
    out = tmp_path_factory.mktemp("slides")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIGM_FAST", "1")  # the kernel nbclient starts inherits it
        (path,) = build_decks([found[0]], out, execute="always", npm_dir=NPM_DIR, quiet=True)
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


# --------------------------------------------------------------------------------------------
# Presentable on a projector: nothing runs off a slide, and index.html is a page to start from


def test_lecture_title_is_the_first_markdown_heading():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("# a comment, not a heading"),
        nbformat.v4.new_markdown_cell("Some text first.\n\n## Week 07 · Flows *beyond* mean field ##\n# Later"),
    ]
    assert lecture_title(notebook) == "Week 07 · Flows *beyond* mean field"
    notebook.cells = [nbformat.v4.new_markdown_cell("#hashtag is not a heading")]
    assert lecture_title(notebook) is None


def _index_entries(index_html: str) -> list[tuple[str, str, str]]:
    """(href, number, title) of every deck entry of an index page, in page order."""
    entries = re.findall(
        r'<li class="deck"><a href="([^"]+)"><span class="deck-number">([^<]*)</span>'
        r'<span class="deck-title">([^<]*)</span></a></li>',
        index_html,
    )
    return [(html.unescape(h), n, html.unescape(t)) for h, n, t in entries]


def test_index_lists_every_deck_with_its_number_and_title(tmp_path):
    meta = LECTURE_TITLE_META
    (tmp_path / "12_structured.slides.html").write_text(
        f'<html><head><meta content="Week 12 · Encoders &amp; decoders" name="{meta}"></head></html>'
    )
    (tmp_path / "03_vae.slides.html").write_text(
        f'<html><head><meta name="{meta}" content="Variational autoencoders"></head></html>'
    )
    (tmp_path / "talk.slides.html").write_text("<html><head></head></html>")  # built before titles
    page = write_index(tmp_path, tmp_path.glob("*.slides.html")).read_text(encoding="utf-8")
    assert _index_entries(page) == [
        ("03_vae.slides.html", "03", "Variational autoencoders"),
        ("12_structured.slides.html", "12", "Encoders & decoders"),  # the number has its own column
        ("talk.slides.html", "", "talk"),
    ], f"index.html does not list the three decks in order with number and title:\n{page}"
    assert f"<h1>{COURSE_TITLE}</h1>" in page, "index.html does not start with the course title"
    for keys, _ in PRESENTING_KEYS:
        for key in keys:
            assert f"<kbd>{html.escape(key)}</kbd>" in page, f"index.html does not show the {key!r} key"


# Every leaf slide that holds code or outputs, shown one after the other through the URL; for each,
# once MathJax has typeset it, the blocks that cannot be seen whole. A block may run below the slide
# only when the slide scrolls; nothing may stick out sideways or be cut off by a box that hides
# overflow, and the slide itself must lie inside the window. (Slides of Markdown only get the same
# slide box; skipping them saves the MathJax wait of some 25 slides, about 9 s.)
_BLOCKS_OFF_THE_SLIDE_JS = """async () => {
    const BLOCKS = '.jp-InputArea-editor, .jp-InputArea-editor pre, .jp-OutputArea-output, '
        + '.jp-OutputArea-output pre, .jp-OutputArea-output img, .jp-OutputArea-output table';
    const frames = () => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
    const at = r => `x ${Math.round(r.left)}..${Math.round(r.right)}, y ${Math.round(r.top)}..${Math.round(r.bottom)}`;
    const clips = value => value === 'hidden' || value === 'clip';
    const typeset = slide => {
        const scripts = slide.querySelectorAll('script[type^="math/tex"]').length;
        const shown = Array.from(slide.querySelectorAll('.MathJax_CHTML'))
            .filter(m => m.getBoundingClientRect().width > 0).length;
        return shown >= scripts;
    };
    const name = block => {
        const text = (block.textContent || block.getAttribute('alt') || '').trim().slice(0, 40);
        return `<${block.tagName.toLowerCase()} class="${block.className}"> "${text}"`;
    };
    function problemsOf(slide) {
        const box = slide.getBoundingClientRect();
        const problems = [];
        if (box.left < -1 || box.top < -1 || box.right > innerWidth + 1 || box.bottom > innerHeight + 1)
            problems.push(`the slide itself (${at(box)}) is not inside the ${innerWidth}x${innerHeight} window`);
        const scrolls = ['auto', 'scroll'].includes(getComputedStyle(slide).overflowY);
        for (const block of slide.querySelectorAll(BLOCKS)) {
            const r = block.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) continue;
            if (r.left < box.left - 1 || r.right > box.right + 1)
                problems.push(`${name(block)} (${at(r)}) sticks out sideways from the slide (${at(box)})`);
            if (r.bottom > box.bottom + 1 && !scrolls)
                problems.push(`${name(block)} (${at(r)}) runs below the slide (${at(box)}), which does not scroll`);
            const own = getComputedStyle(block);
            if ((clips(own.overflowX) && block.scrollWidth > block.clientWidth + 1)
                || (clips(own.overflowY) && block.scrollHeight > block.clientHeight + 1))
                problems.push(`${name(block)} hides part of its content and does not scroll`);
            for (let outer = block.parentElement; outer && outer !== slide; outer = outer.parentElement) {
                const style = getComputedStyle(outer), edge = outer.getBoundingClientRect();
                if ((clips(style.overflowX) && (r.left < edge.left - 1 || r.right > edge.right + 1))
                    || (clips(style.overflowY) && (r.top < edge.top - 1 || r.bottom > edge.bottom + 1)))
                    problems.push(`${name(block)} (${at(r)}) is cut off by <div class="${outer.className}"> (${at(edge)})`);
            }
        }
        return problems;
    }
    const leaves = [];
    document.querySelectorAll('.reveal .slides > section').forEach((top, h) => {
        const inner = Array.from(top.querySelectorAll(':scope > section'));
        (inner.length ? inner : [top]).forEach((slide, v) => {
            if (slide.querySelector(BLOCKS)) leaves.push([slide, h, v]);
        });
    });
    const found = [];
    for (const [slide, h, v] of leaves) {
        location.hash = `#/${h}/${v}`;
        for (let i = 0; i < 120 && !(slide.classList.contains('present') && typeset(slide)); i++) await frames();
        await frames();  // the deck re-lays a slide out after it grew
        if (!slide.classList.contains('present')) { found.push(`${h}/${v}: reveal did not show it`); continue; }
        for (const problem of problemsOf(slide)) found.push(`${h}/${v}: ${problem}`);
    }
    return {slides: leaves.length, found};
}"""


@pytest.mark.browser
def test_code_and_outputs_stay_inside_every_slide(chromium, deck, deck_server, artifacts_dir):
    # A laptop-shaped window: reveal scales the slide to fit it, so what fits here fits a projector.
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(f"{deck_server}/{deck.name}")
        page.wait_for_selector(".reveal.ready", timeout=30_000)
        result = page.evaluate(_BLOCKS_OFF_THE_SLIDE_JS)
        found = result["found"]
        if found:
            page.goto(f"{deck_server}/{deck.name}#/{found[0].split(':')[0]}")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(artifacts_dir / "first_overflowing_slide.png"))
    finally:
        page.close()
    assert result["slides"] >= 5, (
        f"{deck.name} has {result['slides']} slides with code or outputs; was the lecture converted whole?"
    )
    assert not found, (
        f"{len(found)} code/output block(s) of {deck.name} cannot be seen whole on a 1280x800 window "
        "(the deck stylesheet or fitting script in tools/slides/deck.py is not applied?); slide h/v: problem\n"
        + "\n".join(found[:20])
    )


# The slide on show as [h, v], and the number of slides in each vertical stack.
_POSITION_JS = """() => {
    const tops = Array.from(document.querySelectorAll('.reveal .slides > section'));
    const h = tops.findIndex(top => top.classList.contains('present'));
    const inner = h < 0 ? [] : Array.from(tops[h].querySelectorAll(':scope > section'));
    return [h, Math.max(inner.findIndex(slide => slide.classList.contains('present')), 0)];
}"""
_STACK_SIZES_JS = """() => Array.from(document.querySelectorAll('.reveal .slides > section'))
    .map(top => Math.max(top.querySelectorAll(':scope > section').length, 1))"""


def _go_to(page, h: int, v: int) -> None:
    page.evaluate(f"location.hash = '#/{h}/{v}'")
    page.wait_for_function(f"() => ({_POSITION_JS})().join('/') === '{h}/{v}'", timeout=5_000)


def _moves_to(page, start, key, wanted, label) -> None:
    """Press ``key`` on slide ``start``; the deck must show ``wanted`` ([h, v]; v None: any)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    _go_to(page, *start)
    page.keyboard.press(key)
    h, v = wanted
    reached = f"([h, v]) => h === {h}" + (f" && v === {v}" if v is not None else "")
    try:
        page.wait_for_function(f"() => ({reached})(({_POSITION_JS})())", timeout=3_000)
    except PlaywrightTimeoutError:
        where = page.evaluate(_POSITION_JS)
        pytest.fail(f"key {label} on slide {list(start)} went to {where}, expected {list(wanted)}")


def _toggles(page, key, selector, label) -> None:
    """Press ``key`` twice: ``selector`` must appear, then go again (reveal's on/off keys)."""
    page.keyboard.press(key)
    page.wait_for_selector(selector, state="attached", timeout=3_000)
    page.keyboard.press(key)
    page.wait_for_selector(selector, state="detached", timeout=3_000)


def _check_key(page, label: str, stack: int, deck_name: str) -> None:
    """What the key named ``label`` on index.html must do in the deck (``stack``: a vertical stack of 3+)."""
    navigation = {  # label: (Playwright key, slide it must reach from [stack, 1])
        "Space": ("Space", (stack, 2)),
        "N": ("n", (stack, 2)),
        "P": ("p", (stack, 0)),
        "\u2192": ("ArrowRight", (stack + 1, None)),
        "\u2190": ("ArrowLeft", (stack - 1, None)),
        "\u2193": ("ArrowDown", (stack, 2)),
        "\u2191": ("ArrowUp", (stack, 0)),
    }
    toggles = {"Esc": ("Escape", ".reveal.overview"), "O": ("o", ".reveal.overview"),
               "B": ("b", ".reveal.paused"), ".": ("Period", ".reveal.paused")}
    if label in navigation:
        key, wanted = navigation[label]
        _moves_to(page, (stack, 1), key, wanted, label)
    elif label in toggles:
        _toggles(page, *toggles[label], label)
    elif label == "?":
        page.keyboard.press("Shift+?")  # what a keyboard sends: reveal wants the shift with the "?"
        page.wait_for_selector(".reveal .overlay-help", timeout=3_000)
        page.keyboard.press("Escape")
        page.wait_for_selector(".reveal .overlay-help", state="detached", timeout=3_000)
    elif label == "F":
        page.keyboard.press("f")
        page.wait_for_function("() => document.fullscreenElement !== null", timeout=3_000)
        page.evaluate("() => document.exitFullscreen()")
    elif label == "S":
        with page.expect_popup(timeout=10_000) as opened:
            page.keyboard.press("s")
        speaker = opened.value
        speaker.wait_for_selector("#current-slide iframe", state="attached", timeout=10_000)
        source = speaker.locator("#current-slide iframe").get_attribute("src") or ""
        speaker.close()
        assert deck_name in source, f"the speaker view (S) does not show the deck: iframe src {source!r}"
    else:
        pytest.fail(f"index.html names the key {label!r}, which this test does not know how to check")


@pytest.mark.browser
def test_index_links_each_deck_and_the_keys_it_names_work(chromium, deck, deck_server, artifacts_dir):
    notebook = nbformat.read(sorted((REPO_ROOT / "lectures").glob(DECK_LECTURE))[0], as_version=4)
    heading = lecture_title(notebook)
    entries = _index_entries((deck.parent / "index.html").read_text(encoding="utf-8"))
    assert len(entries) == 1 and entries[0][0] == deck.name, f"index.html should list {deck.name} only: {entries}"
    _, number, title = entries[0]
    assert number == "01" and title and heading.endswith(title), (
        f"index.html lists {deck.name} as {number!r} {title!r}; expected 01 and the end of its heading {heading!r}"
    )
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(f"{deck_server}/index.html")
        page.screenshot(path=str(artifacts_dir / "index.png"), full_page=True)
        page.get_by_role("link", name=re.compile(re.escape(title))).click()
        page.wait_for_selector(".reveal.ready", timeout=30_000)
        assert urlparse(page.url).path == f"/{deck.name}", f"the index link opened {page.url}, not {deck.name}"
        assert heading in page.title(), f"the deck's window title {page.title()!r} lacks {heading!r}"
        stacks = page.evaluate(_STACK_SIZES_JS)
        stack = next((h for h, size in enumerate(stacks) if h > 0 and size >= 3 and h + 1 < len(stacks)), None)
        assert stack is not None, f"{deck.name} has no vertical stack of 3+ slides to try the keys on: {stacks}"
        labels = [label for keys, _ in PRESENTING_KEYS for label in keys]
        for label in sorted(labels, key=lambda label: label == "S"):  # the speaker window last
            _check_key(page, label, stack, deck.name)
    finally:
        page.close()
