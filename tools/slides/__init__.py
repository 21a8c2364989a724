"""Static reveal.js decks of the lectures that open with no network: ``make slides``.

Every lecture cell carries ``metadata["slideshow"]["slide_type"]``, so a lecture is also a deck.
For live presenting inside JupyterLab use RISE (``Alt+R``); this package builds *static* HTML decks
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
keys for presenting. Notebooks run in the course's one notebook runner (``tools.notebooks``); a
kernel's own log goes to ``<out>/logs/<name>.kernel.log``.

Modules: ``assets`` (npm packages -> ``<out>/assets``), ``deck`` (one notebook -> one deck),
``index`` (``index.html``) and ``build`` (all of them, and the command line).
"""


class SlidesError(RuntimeError):
    """A deck could not be built; the message says what to do."""
