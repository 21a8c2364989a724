"""Checks of values: shapes, closeness to a reference, finiteness, ranges, gradients carried, stated
conditions and expected failures."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from utils.checks.report import (
    CheckError,
    as_float64,
    failure,
    fmt_shape,
    fmt_value,
    index_of,
    relation_hint,
    say_passed,
    shape_hint,
)


def check_shape(
    tensor: Any,
    shape: Sequence[int | None],
    name: str = "tensor",
    hint: str = "",
    *,
    quiet: bool = False,
) -> None:
    """Check ``tensor.shape`` against ``shape``; ``None`` in ``shape`` accepts any size there.

    >>> check_shape(log_px, [B], name="log p(x)")          # not [B, D]: sum over pixels
    >>> check_shape(z, [None, 2], name="z")
    """
    if not hasattr(tensor, "shape"):
        raise failure(
            name,
            f"expected a tensor of shape {fmt_shape(shape)}, got a {type(tensor).__name__}.",
            hint or "return a torch.Tensor (not a Python number, list or .item()).",
        )
    actual = list(tensor.shape)
    expected = list(shape)
    ok = len(actual) == len(expected) and all(e is None or e == a for a, e in zip(actual, expected))
    if not ok:
        raise failure(
            name,
            f"expected shape {fmt_shape(expected)}, got {fmt_shape(actual)}.",
            hint or shape_hint(actual, expected),
        )
    say_passed(name, f"shape {fmt_shape(actual)}", quiet)


def _check_nonfinite(name: str, a: torch.Tensor, e: torch.Tensor, hint: str) -> None:
    bad = ~torch.isfinite(a) & torch.isfinite(e)
    if bad.any():
        first = int(bad.reshape(-1).nonzero()[0])
        i = index_of(first, a.shape)
        kind = "NaN" if torch.isnan(a.reshape(-1)[first]) else "inf"
        raise failure(
            name,
            f"got {kind} at {int(bad.sum())} of {a.numel()} entries (first at index {i}) where "
            f"{e.reshape(-1)[bad.reshape(-1)][0].item():.6g} was expected.",
            hint
            or "a log of 0 or of a negative number, exp of a large number, or 0 * inf; "
            "use torch.log1p / logsumexp / clamp, or work with log-variances.",
        )


def check_close(
    actual: Any,
    expected: Any,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    name: str = "value",
    hint: str = "",
    mistakes: Mapping[str, Any] | None = None,
    quiet: bool = False,
) -> None:
    """Check ``|actual - expected| <= atol + rtol * |expected|`` everywhere (both as float64).

    Shapes must match exactly, except that a Python number (or 0-d) ``expected`` is compared with
    every entry. The failure message shows the worst entry and, without a ``hint``, guesses the
    mistake (a factor, a sign, a constant offset such as 0.5*log(2*pi) per dimension).

    ``mistakes`` maps the description of a known mistake to the value it produces (computed by the
    caller, e.g. the formula with one sign flipped or one term left out). A wrong ``actual`` that
    matches one of them, to the same tolerances, NaN and infinities included, is reported with that
    description, before ``hint``: this tells apart mistakes that no simple relation names, such as a
    missing term and the same term written out again. The first match in the mapping's order wins.

    >>> check_close(elbo_value, expected, name="elbo", mistakes={"the KL term is missing": recon_only})
    """
    a, e = as_float64(actual), as_float64(expected)
    if e.dim() > 0 and a.shape != e.shape:
        raise failure(
            name,
            f"expected shape {fmt_shape(e.shape)}, got {fmt_shape(a.shape)}.",
            named_mistake(a, mistakes, rtol, atol) or hint or shape_hint(list(a.shape), list(e.shape)),
        )
    e = e.expand_as(a)
    named = named_mistake(a, mistakes, rtol, atol)
    _check_nonfinite(name, a, e, named or hint)
    same_inf = torch.isinf(a) & (a == e)  # -inf == -inf is a match (log 0 on both sides)
    diff = torch.where(same_inf, torch.zeros_like(a), (a - e).abs())
    diff = torch.nan_to_num(diff, nan=math.inf, posinf=math.inf)
    # An infinite expected value must be matched exactly: rtol * |inf| would accept any number.
    allowed = torch.where(torch.isfinite(e), atol + rtol * e.abs(), torch.zeros_like(e))
    excess = torch.where(diff <= allowed, torch.zeros_like(diff), diff - allowed)
    if excess.numel() and excess.max() > 0:
        worst = int(torch.argmax(excess))
        i = index_of(worst, a.shape)
        if a.numel() <= 6:
            what = f"expected {fmt_value(e)}, got {fmt_value(a)} (max abs diff {diff.max().item():.3g}"
        else:
            what = (
                f"expected {e.reshape(-1)[worst].item():.6g} at index {i}, got "
                f"{a.reshape(-1)[worst].item():.6g} (max abs diff {diff.max().item():.3g}; "
                f"{int((excess > 0).sum())} of {a.numel()} entries off"
            )
        what += f"; tolerance atol={atol:g} + rtol={rtol:g}*|expected|)."
        raise failure(name, what, named or hint or relation_hint(a, e) or "recheck the formula term by term.")
    say_passed(name, f"max abs diff {diff.max().item():.2g}" if diff.numel() else "", quiet)


def named_mistake(actual: Any, mistakes: Mapping[str, Any] | None, rtol: float = 1e-5, atol: float = 1e-8) -> str:
    """The description of the first mistake in ``mistakes`` whose value ``actual`` matches, or ''.

    A match means the same shape (a 0-d value is compared with every entry), NaN where the mistake
    has NaN, the same infinities, and finite entries within ``atol + rtol * |value|``.
    """
    if not mistakes:
        return ""
    a = as_float64(actual)
    for description, value in mistakes.items():
        v = as_float64(value)
        if v.dim() > 0 and v.shape != a.shape:
            continue
        v = v.expand_as(a)
        same = torch.isclose(a, v, rtol=rtol, atol=atol, equal_nan=True)
        if a.numel() and bool(same.all()):
            return description
    return ""


def check_finite(t: Any, name: str = "tensor", hint: str = "", *, quiet: bool = False) -> None:
    """Check that ``t`` has no NaN and no +-inf."""
    x = as_float64(t)
    bad = ~torch.isfinite(x)
    if bad.any():
        i = index_of(int(bad.reshape(-1).nonzero()[0]), x.shape)
        raise failure(
            name,
            f"expected finite values, got {int(torch.isnan(x).sum())} NaN and {int(torch.isinf(x).sum())} "
            f"inf of {x.numel()} entries (first at index {i}).",
            hint
            or "a log of 0 or of a negative number, exp overflow, or a division by zero; "
            "use logsumexp / log1p / clamp and work in log space.",
        )
    say_passed(name, "finite", quiet)


def check_no_nan(t: Any, name: str = "tensor", hint: str = "", *, quiet: bool = False) -> None:
    """Check that ``t`` has no NaN (infinities are allowed, e.g. log 0 = -inf outside a support)."""
    x = as_float64(t)
    bad = torch.isnan(x)
    if bad.any():
        i = index_of(int(bad.reshape(-1).nonzero()[0]), x.shape)
        raise failure(
            name,
            f"expected no NaN, got {int(bad.sum())} of {x.numel()} entries (first at index {i}).",
            hint or "0 * inf, inf - inf, a log of a negative number or sqrt of a negative variance.",
        )
    say_passed(name, "no NaN", quiet)


def check_in_range(
    t: Any,
    low: float = -math.inf,
    high: float = math.inf,
    name: str = "tensor",
    hint: str = "",
    *,
    quiet: bool = False,
) -> None:
    """Check ``low <= t <= high`` everywhere, e.g. probabilities in [0, 1] or variances >= 0."""
    x = as_float64(t)
    bad = (x < low) | (x > high) | torch.isnan(x)
    if bad.any():
        flat = bad.reshape(-1).nonzero()[0].item()
        raise failure(
            name,
            f"expected values in [{low:g}, {high:g}], got min {x.min().item():.4g} and max {x.max().item():.4g} "
            f"({int(bad.sum())} of {x.numel()} entries outside, first at index {index_of(flat, x.shape)}).",
            hint
            or "logits where probabilities belong (apply a sigmoid/softmax), or a log-variance "
            "used as a variance (take exp).",
        )
    say_passed(name, f"in [{low:g}, {high:g}]", quiet)


def check_requires_grad(
    t: Any,
    name: str = "tensor",
    hint: str = "",
    *,
    quiet: bool = False,
) -> None:
    """Check that ``t`` is a tensor that is part of the autograd graph (gradients can flow through it)."""
    if not isinstance(t, torch.Tensor):
        raise failure(
            name,
            f"expected a tensor that carries a gradient, got a {type(t).__name__}.",
            hint or "a .item(), .tolist() or .numpy() turned the tensor into a plain number.",
        )
    if not t.requires_grad:
        raise failure(
            name,
            "expected a tensor that carries a gradient, got one with requires_grad=False.",
            hint
            or "a sample that carries no gradient: did you call .detach() or torch.no_grad(), "
            "or use .sample() where .rsample() (the reparameterisation trick) belongs?",
        )
    say_passed(name, "carries a gradient", quiet)


def _condition_as_bool_tensor(condition: Any, name: str) -> torch.Tensor:
    """``condition`` as a boolean tensor; anything but a bool or a boolean array is refused."""
    if isinstance(condition, (bool, np.bool_)):
        return torch.tensor(bool(condition))
    if isinstance(condition, np.ndarray):
        condition = torch.from_numpy(condition)
    if isinstance(condition, torch.Tensor) and condition.dtype == torch.bool:
        return condition.detach().cpu()
    # Truthiness would make a non-empty list, a string or a non-zero number pass whatever it holds.
    is_tensor = isinstance(condition, torch.Tensor)
    kind = f"a {condition.dtype} tensor" if is_tensor else f"a {type(condition).__name__}"
    raise TypeError(
        f"{name}: check_true needs a bool or a boolean tensor, got {kind}; "
        "pass a comparison such as `gap < tol` or `count <= limit`."
    )


def check_true(
    condition: Any,
    name: str = "condition",
    what: str = "",
    hint: str = "",
    *,
    got: str = "",
    quiet: bool = False,
) -> None:
    """Check a fact that no numeric check states directly: ``condition`` must be true.

    ``condition`` is a bool or a boolean tensor/array whose every entry must be true (an empty one
    fails: it checks nothing). ``what`` says in words what should hold; it is printed after the ✓ and
    after ``expected`` in the failure message, so put the numbers in it. ``got`` says what was seen
    instead, for a failure. Anything else, such as a float tensor or a list, raises TypeError,
    because its truthiness says nothing about the fact.

    >>> check_true(n_heavy <= 0.75 * n_plain, name="collapse",
    ...            what=f"{n_heavy} <= 0.75 x {n_plain} active units", hint="is beta applied to the KL?")
    """
    flags = _condition_as_bool_tensor(condition, name)
    expected = what or "the condition to hold"
    if flags.numel() == 0:
        raise failure(name, f"expected {expected}, got an empty condition: nothing was checked.", hint)
    if not bool(flags.all()):
        detail = f", got {got}" if got else ", but it does not hold"
        if flags.numel() > 1:
            first = index_of(int((~flags).reshape(-1).nonzero()[0]), flags.shape)
            detail += f" ({int((~flags).sum())} of {flags.numel()} entries false, first at index {first})"
        raise failure(name, f"expected {expected}{detail}.", hint)
    say_passed(name, what, quiet)


def check_raises(
    fn: Callable[[], Any],
    name: str = "expected failure",
    hint: str = "",
    *,
    error: type[BaseException] | tuple[type[BaseException], ...] = CheckError,
    match: str | None = None,
    quiet: bool = False,
) -> BaseException:
    """Check that ``fn()`` raises ``error`` (a :class:`CheckError` by default); return what it raised.

    Shows that a check catches a wrong answer (a check that cannot fail checks nothing), or that a
    function refuses bad input. ``match`` is a regular expression the error's message must contain,
    so that a failure for another reason (a shape error instead of the bias) does not count.
    Exceptions of other types propagate unchanged: they are bugs, not the expected failure.

    >>> err = check_raises(lambda: check_estimator(biased_sampler, true_grad), name="bias caught",
    ...                    match="standard errors away", hint="is the baseline independent of z_s?")
    """
    expected = error if isinstance(error, tuple) else (error,)
    names = " or ".join(e.__name__ for e in expected)
    try:
        result = fn()
    except expected as err:
        first_line = (str(err).splitlines() or [""])[0]
        if match is not None and not re.search(match, str(err)):
            raise failure(
                name,
                f"expected {names} with a message matching {match!r}, got {type(err).__name__}: {first_line}",
                hint or "it failed, but for another reason than the one this check is about.",
            ) from err
        say_passed(name, f"{type(err).__name__} raised, as expected", quiet)
        return err
    shown = repr(result)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise failure(name, f"expected {names}, but fn returned {shown} without raising.", hint)
