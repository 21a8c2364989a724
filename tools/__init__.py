"""The instructor's commands, apart from the student library ``utils``.

``python -m tools.course`` (``make course``) runs every lecture and tabulates its numbers,
``python -m tools.slides`` (``make slides``) builds offline slide decks, and ``python -m tools.grading``
(``make release`` / ``make grade``) releases, validates, collects and grades the assignments.
``tools`` imports ``utils``; ``utils`` never imports ``tools``, so students need only ``utils``.
"""
