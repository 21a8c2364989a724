"""What every assignment's grading test asserts of its graded course, written once (a3, a4, a5).

Each ``tests/test_grading_aN.py`` grades its submissions in a module fixture and keeps one named test per
property; the test's body is one call to a method here, so a property is checked the same way for every
assignment and its failure message says which assignment, which submission and what went wrong.
The submission names are the course's convention: ``solved`` (the model answer), ``untouched`` (the
release as handed out), ``empty`` (honest answers of the documented shapes that compute nothing),
``empty_rebound`` (the same after rebinding utils.checks and torch's comparisons) and
``tampered_checks`` (a submission that rebinds everything the tests call and answers nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from test_grading import (
    _REBIND_THE_CHECKS,
    _hidden_lines,
    _html_lines,
    _tampered,
    _test_cells,
    assert_solution_passes_its_tests,
    auto_points,
    cell_scores,
    grade_one_assignment,
    visible_error,
)

REBINDERS = ("empty_rebound", "tampered_checks")  # the submissions that reach into the tests


def rewritten(answers: dict[str, str]) -> dict:
    """Edits that replace the whole source of each named answer cell by the one given."""
    return {cell: (lambda source, new=new: new) for cell, new in answers.items()}


def standard_submissions(
    answers: tuple[str, ...], empty: dict[str, str], alternative: dict[str, str]
) -> dict:
    """The submissions every assignment grades, as {student: edits of the solved notebook} (None: the release).

    ``empty``: honest answers of the documented shapes that compute nothing, one source per answer cell;
    ``empty_rebound`` is the same with the first answer cell also rebinding utils.checks, the check helpers and
    torch's comparisons; ``tampered_checks`` rebinds everything the tests call in every answer cell and answers
    nothing; ``alternative``: correct answers written otherwise than the model answer.
    """
    first = answers[0]
    return {
        "solved": {},
        "untouched": None,
        "alternative": rewritten(alternative),
        "empty": rewritten(empty),
        "empty_rebound": {**rewritten(empty), first: lambda source: _REBIND_THE_CHECKS + empty[first]},
        "tampered_checks": dict.fromkeys(answers, _tampered),
    }


def combined_mistakes(mistakes: dict, combined: dict) -> tuple[dict, dict]:
    """Submissions that each make several typical mistakes at once, and what each must lose.

    ``mistakes``: {name: (answer cell, its edit, the test cells it costs, {visible test: words naming it})};
    ``combined``: {student: names}, at most one mistake per answer cell. Returns ({student: edits},
    {student: (the union of the test cells, every visible test's words)}), as ``GradedAssignmentTests`` takes them.
    """
    submissions, expected = {}, {}
    for student, names in combined.items():
        cells = [mistakes[name][0] for name in names]
        assert len(set(cells)) == len(cells), f"{student}: one mistake per answer cell, got {cells}"
        submissions[student] = {mistakes[name][0]: mistakes[name][1] for name in names}
        expected[student] = (
            set().union(*(mistakes[name][2] for name in names)),
            {grade_id: words for name in names for grade_id, words in mistakes[name][3].items()},
        )
    return submissions, expected


@dataclass
class GradedCourse:
    """One assignment graded in a temporary course: ``root``, its ``name`` and ``{student: SubmissionResult}``."""

    root: Path
    name: str
    results: dict

    def points(self, student: str) -> dict[str, tuple[float, float]]:
        """{test cell: (points earned, most)} of one submission."""
        return auto_points(cell_scores(self.root, self.name, student))

    def assert_every_submission_graded(self, submissions: dict) -> None:
        failed = {s: r.error for s, r in self.results.items() if not r.graded}
        assert not failed and set(self.results) == set(submissions), (
            f"{self.name} submissions not graded: {failed or sorted(self.results)}"
        )

    def assert_model_answer_full_marks(
        self, test_points: int, written_cells: int, written_points: int
    ) -> None:
        """The model answer earns every test point; the written answers wait for a grader (no automatic score)."""
        scores = cell_scores(self.root, self.name, "solved")
        short = {name: s for name, s in auto_points(scores).items() if s[0] != s[1]}
        assert not short, f"{self.name}: the model answer loses points in {short}"
        total = sum(most for _, most in auto_points(scores).values())
        assert total == test_points, (
            f"{self.name} has {test_points} test points (README, intro), the notebook {total}"
        )
        written = {name: s for name, s in scores.items() if name.endswith("_written")}
        assert len(written) == written_cells and all(auto is None for auto, _ in written.values()), written
        most = sum(most for _, most in written.values())
        assert most == written_points, (
            f"{self.name} has {written_points} written points (README, intro), not {most}"
        )

    def assert_full_marks(self, student: str, what: str) -> None:
        short = {name: s for name, s in self.points(student).items() if s[0] != s[1]}
        assert not short, f"{self.name}: {what} loses points in {short}"

    def assert_blank_scores_zero(self) -> None:
        scores = cell_scores(self.root, self.name, "untouched")
        assert scores and all(auto == 0 for auto, _ in scores.values()), (
            f"{self.name}: the untouched release scored {scores}"
        )

    def assert_loses_exactly(self, student: str, expected: set[str], hints: dict[str, str]) -> None:
        """The submission loses the points of ``expected`` and no others; each visible test in ``hints`` names
        the mistake in its error message."""
        lost = {name for name, (auto, most) in self.points(student).items() if auto != most}
        assert lost == expected, (
            f"{self.name}/{student}: lost points in {sorted(lost)}, expected exactly {sorted(expected)}"
        )
        for grade_id, words in hints.items():
            message = visible_error(self.root, self.name, student, grade_id)
            assert words in message, (
                f"{self.name}/{student}: {grade_id} should say {words!r}; it said:\n{message[:600]}"
            )

    def assert_rebinding_gains_nothing(self) -> None:
        """Rebinding the checks earns no point that the same answers do not earn honestly, and no hidden point."""
        honest, rebound = self.points("empty"), self.points("empty_rebound")
        gained = {
            name: (honest[name][0], auto) for name, (auto, _) in rebound.items() if auto > honest[name][0]
        }
        assert not gained, (
            f"{self.name}: rebinding utils.checks, the check helpers and torch.allclose/isclose earned points that "
            f"the same answers do not earn honestly (honest, rebound): {gained}"
        )
        hidden_only = {name for name in _test_cells(self.name) if name.endswith("_hidden")}
        earned = {name: rebound[name][0] for name in hidden_only if rebound[name][0]}
        assert not earned, f"{self.name}: the rebinding submission earned hidden-test points: {earned}"

    def assert_empty_answers_earn_nothing(self) -> None:
        earned = {name: auto for name, (auto, _) in self.points("empty").items() if auto}
        assert not earned, f"{self.name}: answers that compute nothing earned {earned}"

    def assert_tampering_earns_nothing(self) -> None:
        tests = self.points("tampered_checks")
        assert len(tests) == len(_test_cells(self.name)), (
            f"{self.name}: the tampering submission was not graded as a whole: {sorted(tests)}"
        )
        earned = {name: auto for name, (auto, _) in tests.items() if auto}
        assert not earned, (
            f"{self.name}: a submission that rebinds utils.checks, the notebook's helpers and the grader's _ref "
            f"comparisons, and answers nothing, earned {earned}"
        )

    def assert_rebinders_marked_for_review_and_no_one_else(self) -> None:
        for student in REBINDERS:
            notes = self.results[student].notes
            assert notes.startswith("REVIEW, answer cells reach into the tests"), (
                f"{self.name}/{student}: notes {notes!r}"
            )
        honest = {s: r.tampering for s, r in self.results.items() if s not in REBINDERS and r.tampering}
        assert not honest, f"{self.name}: honest answers were marked for review: {honest}"

    def assert_feedback_hides_hidden_tests(self, submissions: dict) -> None:
        hidden = _hidden_lines(self.root, self.name)
        feedback = sorted((self.root / "grading" / "feedback").glob(f"*/{self.name}/{self.name}.html"))
        assert len(feedback) == len(submissions), (
            f"expected feedback for every {self.name} submission, found {feedback}"
        )
        for path in feedback:
            leaked = sorted(hidden & _html_lines(path))
            assert not leaked, f"{path} shows hidden test lines: {leaked[:3]}"


class GradedAssignmentTests:
    """The tests every graded assignment shares. A test module subclasses it as ``Test...`` and sets:

    ``ASSIGNMENT`` (its folder name), ``SUBMISSIONS`` (student -> edits of the solved notebook; None for the release;
    it must hold ``solved``, ``untouched``, ``empty``, ``empty_rebound`` and ``tampered_checks``), ``EXPECTED``
    (student -> (the test cells it must lose, {visible test: words naming the mistake})), ``FULL_MARKS`` (students
    other than ``solved`` whose answers are correct, written otherwise: {student: what they are}; by default
    ``standard_submissions``' ``alternative``) and the points the
    README and the notebook's introduction announce (``TEST_POINTS``, ``WRITTEN_CELLS``, ``WRITTEN_POINTS``).
    The whole course is graded once per class (a few minutes on two cores).
    """

    ASSIGNMENT: str
    SUBMISSIONS: dict
    EXPECTED: dict
    FULL_MARKS: dict = {"alternative": "a correct answer written otherwise than the model answer"}
    TEST_POINTS: int
    WRITTEN_CELLS: int
    WRITTEN_POINTS: int

    def pytest_generate_tests(self, metafunc):
        # one test per mistaken submission and one per correct alternative, named after the student
        if "mistaken" in metafunc.fixturenames:
            metafunc.parametrize("mistaken", sorted(self.EXPECTED))
        if "alternative" in metafunc.fixturenames:
            metafunc.parametrize("alternative", sorted(self.FULL_MARKS))

    @pytest.fixture(scope="class")
    @classmethod
    def course(cls, tmp_path_factory, fast_kernels, grading_unsafe) -> GradedCourse:
        """Every submission, graded once in a course of its own."""
        root = tmp_path_factory.mktemp(f"course_{cls.ASSIGNMENT}")
        return GradedCourse(
            root, cls.ASSIGNMENT, grade_one_assignment(root, cls.ASSIGNMENT, cls.SUBMISSIONS, grading_unsafe)
        )

    def test_solution_source_passes_every_visible_and_hidden_test(self, fast_kernels):
        assert_solution_passes_its_tests(self.ASSIGNMENT)

    def test_every_submission_was_graded(self, course):
        course.assert_every_submission_graded(self.SUBMISSIONS)

    def test_model_answer_gets_every_test_point_and_waits_for_written_grades(self, course):
        course.assert_model_answer_full_marks(self.TEST_POINTS, self.WRITTEN_CELLS, self.WRITTEN_POINTS)

    def test_correct_answers_written_otherwise_get_every_test_point(self, course, alternative):
        course.assert_full_marks(alternative, self.FULL_MARKS[alternative])

    def test_blank_submission_scores_zero(self, course):
        course.assert_blank_scores_zero()

    def test_mistake_loses_exactly_its_tests_and_the_visible_one_names_it(self, course, mistaken):
        course.assert_loses_exactly(mistaken, *self.EXPECTED[mistaken])

    def test_rebinding_the_checks_earns_nothing_over_the_same_empty_answers(self, course):
        course.assert_rebinding_gains_nothing()

    def test_empty_answers_earn_no_test_point(self, course):
        course.assert_empty_answers_earn_nothing()

    def test_tampering_with_everything_the_tests_call_earns_no_test_point(self, course):
        course.assert_tampering_earns_nothing()

    def test_rebinding_answers_are_marked_for_review_and_honest_ones_are_not(self, course):
        course.assert_rebinders_marked_for_review_and_no_one_else()

    def test_feedback_shows_no_line_of_any_hidden_test(self, course):
        course.assert_feedback_hides_hidden_tests(self.SUBMISSIONS)
