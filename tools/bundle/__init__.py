"""The student bundle (``python -m tools.bundle``, ``make student-bundle``): see ``build``."""

from tools.bundle.build import BundleError, build, student_tool_modules

__all__ = ["BundleError", "build", "student_tool_modules"]
