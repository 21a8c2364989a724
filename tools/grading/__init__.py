"""Auto-graded assignments: release, grade, validate and collect, with nbgrader underneath.

One module per job: ``config`` (the course's nbgrader settings and shared plumbing), ``release``
(student versions), ``autograde`` with ``records`` (what changed since it was graded) and ``report``
(tables and CSVs), ``validate`` (what students run), ``collect`` (an LMS download), and the command
line in ``__main__`` (``python -m tools.grading --help``).
"""
