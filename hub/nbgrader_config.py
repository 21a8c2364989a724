"""nbgrader settings of every server on the hub, and of the instructor's exchange commands.

`python -m tools.hub serve` copies this file into each role's Jupyter config folder
(``HUB_STATE/jupyter/<role>/``, on the servers' ``JUPYTER_CONFIG_PATH``); the hub's spawner sets the
variables it reads: ``DIGM_EXCHANGE`` (nbgrader's exchange), ``DIGM_COURSE_ID``, ``DIGM_COURSE_DIR``
(the served student bundle, whose nbgrader_config.py holds the course's validation settings) and
``DIGM_ROLE``. An instructor's formgrader works on their clone of the repository, ``~/digm-course``
(or ``DIGM_INSTRUCTOR_COURSE``), whose nbgrader_config.py is loaded when it exists.

nbgrader's own autograde (the formgrader's Autograde button, ``nbgrader autograde``) is switched
off here: it would run students' code with the instructor's rights. Grading goes through
``make grade``, which runs every submission in the sandbox (tools/grading/sandbox.py).

Submissions are private: nbgrader makes every file of a submission readable by all (``0644`` in a
``0777`` folder), hidden only by a random folder name in the unlistable ``inbound/``. Here a
submission is readable and removable only by its student and the group of ``inbound/`` (the
instructor's: nbgrader gives ``inbound/`` the set-group-id bit, so new folders inherit its group), so
another student cannot read it even by its exact path. That also keeps each student's
``submission_secret.txt`` private, from which the name of their feedback file in the exchange is made.
"""

import os
import shutil

from nbgrader.exchange.default import ExchangeSubmit
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import ignore_patterns
from traitlets.config.loader import PyFileConfigLoader

c = get_config()  # noqa: F821  (nbgrader injects get_config into config files)

if os.environ.get("DIGM_EXCHANGE"):
    c.Exchange.root = os.environ["DIGM_EXCHANGE"]
if os.environ.get("DIGM_COURSE_ID"):
    c.CourseDirectory.course_id = os.environ["DIGM_COURSE_ID"]


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, with the submission readable only by its student and the instructors' group."""

    def do_copy(self, src, dest, log=None):
        """As nbgrader copies, except into ``inbound/``: there the submission's folder is made first and
        its own mode never copied, so it keeps the group and set-group-id bit it inherits from
        ``inbound/`` until nbgrader has written every file (copytree would copy the folder's mode,
        dropping the bit, and the timestamp and secret written next would get the student's group)."""
        if os.path.dirname(os.path.normpath(dest)) != os.path.normpath(self.inbound_path):
            return super().do_copy(src, dest, log)
        size = self.get_size(src)
        if size > 1000 * self.coursedir.max_dir_size:
            raise RuntimeError(f"Directory size is too big. Size is {size}, maximum size is {1000 * self.coursedir.max_dir_size}")
        ignore = ignore_patterns(
            exclude=self.coursedir.ignore,
            include=self.coursedir.include,
            max_file_size=self.coursedir.max_file_size,
            log=self.log,
        )
        os.mkdir(dest)
        names = os.listdir(src)
        skipped = set(ignore(src, names))
        for name in sorted(set(names) - skipped):
            if os.path.isdir(os.path.join(src, name)):
                shutil.copytree(os.path.join(src, name), os.path.join(dest, name), ignore=ignore, copy_function=shutil.copyfile)
            else:
                shutil.copyfile(os.path.join(src, name), os.path.join(dest, name))

    def copy_files(self):
        super().copy_files()
        submission = os.path.join(self.inbound_path, self.assignment_filename)
        for folder, dirs, files in os.walk(submission):
            for name in files:
                os.chmod(os.path.join(folder, name), 0o640)
            for name in dirs:
                os.chmod(os.path.join(folder, name), 0o770)
        os.chmod(submission, 0o770)  # group write: the instructors may remove it, as nbgrader intends


c.ExchangeFactory.submit = PrivateSubmit


class AutogradeWithMakeGrade(NbGraderPreprocessor):  # nbgrader's base: enabled, unlike nbconvert's
    """Stands in for nbgrader's execution step: a submission is never run outside the sandbox."""

    def preprocess(self, nb, resources):
        raise RuntimeError(
            "On the class's hub, grade with `make grade` (python -m tools.grading grade), which runs each "
            "submission in the sandbox; nbgrader's own autograde would run it with your rights."
        )


c.Autograde.autograde_preprocessors = [AutogradeWithMakeGrade]

if os.environ.get("DIGM_ROLE") == "instructor":
    _clone = os.path.expanduser(os.environ.get("DIGM_INSTRUCTOR_COURSE") or "~/digm-course")
    if os.path.isfile(os.path.join(_clone, "nbgrader_config.py")):
        load_subconfig(os.path.join(_clone, "nbgrader_config.py"))  # noqa: F821  (injected by traitlets)
        c.Autograde.autograde_preprocessors = [AutogradeWithMakeGrade]  # not undone by the course's file

# What the Validate button runs: the course's own settings (timeouts, warnings, kernel options).
_course_dir = os.environ.get("DIGM_COURSE_DIR", "")
if _course_dir and os.path.isfile(os.path.join(_course_dir, "nbgrader_config.py")):
    _course = PyFileConfigLoader("nbgrader_config.py", path=_course_dir).load_config()
    for _section in ("Execute", "Validator", "IgnorePattern"):
        if _section in _course:
            c[_section].merge(_course[_section])
