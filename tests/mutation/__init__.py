"""Mutation test of the graders: single-site changes of the solution code, each scored by the tests.

``operators`` makes the mutants (pure ``ast`` work, fast), ``runner`` executes one notebook in a fresh
kernel as the autograder would and scores its test cells, ``mutate`` is the command line that ties them
together and writes the report, ``verdicts`` holds the reviewed classification of surviving mutants.
Run by hand (see ``mutate``'s docstring); it is not part of ``make test``.
"""
