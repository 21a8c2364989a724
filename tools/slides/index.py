"""``index.html`` of a deck folder: the course title, one link per deck, the keys for presenting."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path

from tools.slides.deck import LECTURE_TITLE_META

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

