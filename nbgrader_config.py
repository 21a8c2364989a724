"""nbgrader configuration of the course (read by `nbgrader ...`, JupyterLab's Validate button and
`python -m tools.grading`).

Layout: `solutions/<id>/<id>.ipynb` are the instructor sources (solutions, visible and hidden tests),
`assignments/<id>/<id>.ipynb` the generated student versions (committed). Everything that holds
student work or grades lives under `grading/`, which git ignores:

    grading/submitted/<student>/<id>/<id>.ipynb    what students handed in
    grading/autograded/<student>/<id>/             the executed submissions (instructor only: hidden tests)
    grading/feedback/<student>/<id>/<id>.html      what goes back to students (hidden tests removed)
    grading/gradebook.db, grading/grades.csv, grading/report.csv
    grading/graded-submissions.json                fingerprints of what was graded (to regrade changes)
"""

import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821  (nbgrader injects get_config into config files)

_ROOT = os.path.dirname(os.path.abspath(__file__))
_GRADING = "grading"

c.CourseDirectory.root = _ROOT
c.CourseDirectory.course_id = "digm"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = os.path.join(_GRADING, "submitted")
c.CourseDirectory.autograded_directory = os.path.join(_GRADING, "autograded")
c.CourseDirectory.feedback_directory = os.path.join(_GRADING, "feedback")
c.CourseDirectory.solution_directory = os.path.join(_GRADING, "solution")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(_ROOT, _GRADING, "gradebook.db")

# Per cell, on a laptop CPU: the longest cells are the short training runs (about 30-60 s there).
c.Execute.timeout = 180
# A quiet kernel without a history file; Minimal tracebacks show the error message but not the source
# lines around it, which would otherwise print hidden test code into the feedback.
# (The kernel's own log level only hides its start-up notice about unencrypted local TCP.)
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:",
    "--InteractiveShell.xmode=Minimal",
    "--IPKernelApp.log_level=ERROR",
]

# Each submission's kernel runs in the grading sandbox (tools/grading/sandbox.py: bubblewrap, no
# network, read-only Python, utils/ and data, nothing else of the course). Its limits, with their
# defaults; `make grade ARGS="--unsafe"` grades without it where bubblewrap cannot run.
# c.GradingSandbox.cpu_seconds = 1800      # CPU seconds per process, then the kernel is killed
# c.GradingSandbox.memory_mb = 6144        # memory per process: a larger allocation fails
# c.GradingSandbox.processes = 256         # processes and threads together (4 per core if more)
# c.GradingSandbox.scratch_mb = 1024       # the writable /tmp (home, working folder) and /dev/shm, each
# c.GradingSandbox.output_chars = 100_000  # output kept per cell, the rest cut with a note (always)

# A Python warning printed to stderr must not turn a passing test into 0 points.
# nbgrader searches each stderr output for it: "Warning: " matches exactly what r"\w*Warning: "
# did (the \w* may be empty), in linear time; that one took 17 s on 100,000 letters a submission
# printed to stderr, and quadratically longer on more.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning: "

# nbgrader's Validator (JupyterLab's Validate button, `python -m tools.grading validate`) also fails
# a test cell that writes to stderr, but it takes no preprocessors from configuration, so it cannot
# drop warnings the way the autograder does. Its kernels print Python warnings to stdout instead;
# otherwise a student is told "failed" for a cell that gets full points. Nested under Validator,
# this leaves the autograder's kernel (and so the feedback, which must not show hidden test lines
# that a warning quotes) as it is. Everything is bound as a default argument: the student's
# namespace gets no new name that the autograder's kernel would lack.
_PRINT_WARNINGS_TO_STDOUT = (
    "__import__('warnings').showwarning = ("
    "lambda message, category, filename, lineno, file=None, line=None,"
    " warnings=__import__('warnings'), sys=__import__('sys'):"
    " sys.stdout.write(warnings.formatwarning(message, category, filename, lineno, line)))"
)
c.Validator.Execute.extra_arguments = [
    *c.Execute.extra_arguments,
    f"--IPKernelApp.exec_lines={_PRINT_WARNINGS_TO_STDOUT}",
]


class WrappedFeedbackCSS(CSSHTMLHeaderPreprocessor):
    """nbconvert's page CSS plus wrapped long lines: an error message such as a check's "Likely
    mistake: ..." stays on screen instead of running off a horizontally scrolling box."""

    def preprocess(self, nb, resources):
        nb, resources = super().preprocess(nb, resources)
        resources["inlining"]["css"].append(
            # Bootstrap's break-all would split words; break-word splits only a word wider than the page.
            "pre { white-space: pre-wrap; word-break: normal; overflow-wrap: break-word; }\n"
            "div.output_subarea img { max-width: 100%; height: auto; }\n"
        )
        return nb, resources


# Feedback without hidden tests (nbgrader issues #917 and #1363: by default they are shown).
# MathJax stays on nbconvert's CDN default: the HTML goes to students, where a local path would not exist.
c.GenerateFeedback.preprocessors = [ClearHiddenTests, GetGrades, WrappedFeedbackCSS]
c.WrappedFeedbackCSS.enabled = True  # nbconvert preprocessors are off unless enabled by name
