"""Self-checks for students: each compares what you computed with what it should be, and explains.

Every check prints one short line (``✓ elbo ok``) when it passes (``quiet=True`` hides it) and
returns None; when it fails it raises :class:`CheckError` (an ``AssertionError``, so pytest and
nbgrader treat it as a failed test) whose message reads

    ``<name>: expected ..., got ... (max abs diff ...). Likely mistake: <hint>``

The hint is yours when you pass ``hint=``; otherwise the check guesses from the numbers (a factor of
2, a flipped sign, an extra trailing dimension, a graph cut by ``.detach()``, ...).

>>> check_close(my_kl, reference_kl, name="KL", hint="KL of two Gaussians has a -1/2 per dimension")
>>> check_shape(log_px, [B], name="log p(x)")
>>> check_grad(lambda mu: elbo(mu).sum(), mu0)
>>> check_estimator(lambda m: score_function_grad(m), expected=true_grad, n=20_000)
>>> check_true(n_active <= n_before, name="collapse", what=f"{n_active} <= {n_before} active units")
>>> check_raises(lambda: check_estimator(biased, expected=true_grad), name="the bias is caught")

Modules: ``values`` (shapes, closeness, finiteness, ranges, conditions, expected failures),
``gradients`` (``check_grad``), ``estimators`` (``check_estimator``) and ``report`` (``CheckError``
and the hints).
"""

from utils.checks.estimators import check_estimator
from utils.checks.gradients import check_grad
from utils.checks.report import CheckError
from utils.checks.values import (
    check_close,
    check_finite,
    check_in_range,
    check_no_nan,
    check_raises,
    check_requires_grad,
    check_shape,
    check_true,
)

__all__ = [
    "CheckError",
    "check_close",
    "check_shape",
    "check_grad",
    "check_estimator",
    "check_finite",
    "check_no_nan",
    "check_requires_grad",
    "check_in_range",
    "check_true",
    "check_raises",
]
