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
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

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

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class CheckError(AssertionError):
    """A self-check failed; the message says what differs and the likely mistake."""


# ---------------------------------------------------------------------------------------------
# Formatting helpers
# ---------------------------------------------------------------------------------------------


def _ok(name: str, detail: str = "", quiet: bool = False) -> None:
    if not quiet:
        print(f"✓ {name} ok" + (f" ({detail})" if detail else ""))


def _fail(name: str, what: str, hint: str) -> CheckError:
    message = f"{name}: {what}"
    if hint:
        message += f" Likely mistake: {hint}"
    return CheckError(message)


def _as_float64(x: Any) -> torch.Tensor:
    """A detached CPU float64 copy of a tensor, array or number."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _fmt_shape(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


def _fmt_value(t: torch.Tensor) -> str:
    if t.numel() == 1:
        return f"{t.item():.6g}"
    if t.numel() <= 6:
        return "[" + ", ".join(f"{v:.4g}" for v in t.reshape(-1).tolist()) + "]"
    return f"a tensor of shape {_fmt_shape(t.shape)}"


def _index(flat_index: int, shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, tuple(shape))) if len(shape) else ()


# ---------------------------------------------------------------------------------------------
# Guessing the mistake from the numbers
# ---------------------------------------------------------------------------------------------


def _relation_hint(actual: torch.Tensor, expected: torch.Tensor) -> str:
    """Name a simple relation between actual and expected (factor, sign, offset), or ''.

    For a single number every ratio and offset is "constant", so only recognisable ones are named.
    """
    a, e = actual.reshape(-1), expected.reshape(-1)
    if not (torch.isfinite(a).all() and torch.isfinite(e).all()) or e.abs().max() == 0:
        return ""
    several = a.numel() > 1
    scale = e.abs().max().item()
    mask = e.abs() > 1e-3 * scale
    ratios = a[mask] / e[mask]
    r = ratios.median().item()
    if (ratios - r).abs().max().item() <= 1e-3 * max(abs(r), 1.0) and abs(r - 1) > 1e-3:
        factor = _factor_hint(r)
        if factor or several:
            return factor or f"got = {r:.4g} x expected everywhere: a wrong constant factor."
    offsets = a - e
    c = offsets.median().item()
    if (offsets - c).abs().max().item() <= 1e-6 * max(scale, 1.0) + 1e-9 and abs(c) > 0:
        k = round(c / _HALF_LOG_2PI)
        if k != 0 and abs(c / _HALF_LOG_2PI - k) < 1e-3:
            return (
                f"got = expected {'+' if k > 0 else '-'} {abs(k)} x 0.5*log(2*pi): a Gaussian normalising "
                "constant added or dropped (it appears once per dimension)."
            )
        if several:
            return f"got = expected {c:+.4g} everywhere: a constant term (a normalising constant?) added or dropped."
    return ""


def _factor_hint(r: float) -> str:
    if abs(r + 1) < 1e-3:
        return "got = -expected: a flipped sign (log p vs -log p, loss vs objective?)."
    for k in (2, 3, 4):
        if abs(r - k) < 1e-3 * k:
            return f"got = {k} x expected: a doubled term, or a missing 1/{k} (e.g. the 1/2 in a Gaussian)."
        if abs(r - 1 / k) < 1e-3:
            square = " (e.g. the 2 from differentiating a square)" if k == 2 else ""
            return f"got = expected / {k}: an extra 1/{k}, or a missing factor {k}{square}."
    rounded = round(r)
    if rounded > 4 and abs(r - rounded) < 1e-3 * r:
        return f"got = {rounded} x expected: a sum where a mean belongs (over {rounded} elements?)."
    inv = round(1 / r) if r != 0 else 0
    if inv > 4 and abs(1 / r - inv) < 1e-3 * inv:
        return f"got = expected / {inv}: a mean where a sum belongs (over {inv} elements?)."
    return ""


def _shape_hint(actual: Sequence[int], expected: Sequence[int | None]) -> str:
    """Guess why a tensor has the wrong shape."""
    actual, expected = list(actual), list(expected)

    def fits(a: Sequence[int], e: Sequence[int | None]) -> bool:
        return len(a) == len(e) and all(x is None or x == y for y, x in zip(a, e))

    if len(actual) == len(expected) + 1:
        if len(actual) >= 2 and actual[-1] == actual[-2] and fits(actual[:-1], expected):
            return (
                f"a square {_fmt_shape(actual)} result: broadcasting a [B] tensor against a [B, 1] one "
                "(make both the same shape), or a missing sum over the last dimension."
            )
        if fits(actual[:-1], expected):
            return (
                f"an extra last dimension of size {actual[-1]}: did you forget to sum over the last "
                f"dimension (.sum(-1)), so the shape is {_fmt_shape(actual)} instead of {_fmt_shape(expected)}?"
            )
        if fits(actual[1:], expected):
            return (
                f"an extra first dimension of size {actual[0]}: average or sum over the samples "
                "(dim 0), or drop the batch dimension you added."
            )
    if len(actual) == len(expected) - 1:
        if fits(actual, expected[:-1]) and expected[-1] in (1, None):
            return "the last dimension is missing: use keepdim=True or add [..., None]."
        return (
            "a dimension is missing: did you reduce over one dimension too many (e.g. summed over the "
            "batch as well as the features)?"
        )
    if len(actual) == len(expected):
        if len(actual) >= 2 and fits(actual[::-1], expected):
            return "the dimensions are in the wrong order: a missing transpose (.T / .transpose / .permute)?"
        if len(actual) == 2 and actual[0] == actual[1] and expected[1] == 1:
            return (
                "a [B, B] result: broadcasting a [B] tensor against a [B, 1] one; make both the same shape."
            )
    known = [e for e in expected if e is not None]
    if None not in expected and math.prod(actual) == math.prod(known):
        return "the same number of elements arranged differently: a reshape/view into the wrong shape?"
    return "compare each dimension with the docstring's shapes."


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


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
        raise _fail(
            name,
            f"expected a tensor of shape {_fmt_shape(shape)}, got a {type(tensor).__name__}.",
            hint or "return a torch.Tensor (not a Python number, list or .item()).",
        )
    actual = list(tensor.shape)
    expected = list(shape)
    ok = len(actual) == len(expected) and all(e is None or e == a for a, e in zip(actual, expected))
    if not ok:
        raise _fail(
            name,
            f"expected shape {_fmt_shape(expected)}, got {_fmt_shape(actual)}.",
            hint or _shape_hint(actual, expected),
        )
    _ok(name, f"shape {_fmt_shape(actual)}", quiet)


def _check_nonfinite(name: str, a: torch.Tensor, e: torch.Tensor, hint: str) -> None:
    bad = ~torch.isfinite(a) & torch.isfinite(e)
    if bad.any():
        first = int(bad.reshape(-1).nonzero()[0])
        i = _index(first, a.shape)
        kind = "NaN" if torch.isnan(a.reshape(-1)[first]) else "inf"
        raise _fail(
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
    quiet: bool = False,
) -> None:
    """Check ``|actual - expected| <= atol + rtol * |expected|`` everywhere (both as float64).

    Shapes must match exactly, except that a Python number (or 0-d) ``expected`` is compared with
    every entry. The failure message shows the worst entry and, without a ``hint``, guesses the
    mistake (a factor, a sign, a constant offset such as 0.5*log(2*pi) per dimension).
    """
    a, e = _as_float64(actual), _as_float64(expected)
    if e.dim() > 0 and a.shape != e.shape:
        raise _fail(
            name,
            f"expected shape {_fmt_shape(e.shape)}, got {_fmt_shape(a.shape)}.",
            hint or _shape_hint(list(a.shape), list(e.shape)),
        )
    e = e.expand_as(a)
    _check_nonfinite(name, a, e, hint)
    same_inf = torch.isinf(a) & (a == e)  # -inf == -inf is a match (log 0 on both sides)
    diff = torch.where(same_inf, torch.zeros_like(a), (a - e).abs())
    diff = torch.nan_to_num(diff, nan=math.inf, posinf=math.inf)
    # An infinite expected value must be matched exactly: rtol * |inf| would accept any number.
    allowed = torch.where(torch.isfinite(e), atol + rtol * e.abs(), torch.zeros_like(e))
    excess = torch.where(diff <= allowed, torch.zeros_like(diff), diff - allowed)
    if excess.numel() and excess.max() > 0:
        worst = int(torch.argmax(excess))
        i = _index(worst, a.shape)
        if a.numel() <= 6:
            what = f"expected {_fmt_value(e)}, got {_fmt_value(a)} (max abs diff {diff.max().item():.3g}"
        else:
            what = (
                f"expected {e.reshape(-1)[worst].item():.6g} at index {i}, got "
                f"{a.reshape(-1)[worst].item():.6g} (max abs diff {diff.max().item():.3g}; "
                f"{int((excess > 0).sum())} of {a.numel()} entries off"
            )
        what += f"; tolerance atol={atol:g} + rtol={rtol:g}*|expected|)."
        raise _fail(name, what, hint or _relation_hint(a, e) or "recheck the formula term by term.")
    _ok(name, f"max abs diff {diff.max().item():.2g}" if diff.numel() else "", quiet)


def check_finite(t: Any, name: str = "tensor", hint: str = "", *, quiet: bool = False) -> None:
    """Check that ``t`` has no NaN and no +-inf."""
    x = _as_float64(t)
    bad = ~torch.isfinite(x)
    if bad.any():
        i = _index(int(bad.reshape(-1).nonzero()[0]), x.shape)
        raise _fail(
            name,
            f"expected finite values, got {int(torch.isnan(x).sum())} NaN and {int(torch.isinf(x).sum())} "
            f"inf of {x.numel()} entries (first at index {i}).",
            hint
            or "a log of 0 or of a negative number, exp overflow, or a division by zero; "
            "use logsumexp / log1p / clamp and work in log space.",
        )
    _ok(name, "finite", quiet)


def check_no_nan(t: Any, name: str = "tensor", hint: str = "", *, quiet: bool = False) -> None:
    """Check that ``t`` has no NaN (infinities are allowed, e.g. log 0 = -inf outside a support)."""
    x = _as_float64(t)
    bad = torch.isnan(x)
    if bad.any():
        i = _index(int(bad.reshape(-1).nonzero()[0]), x.shape)
        raise _fail(
            name,
            f"expected no NaN, got {int(bad.sum())} of {x.numel()} entries (first at index {i}).",
            hint or "0 * inf, inf - inf, a log of a negative number or sqrt of a negative variance.",
        )
    _ok(name, "no NaN", quiet)


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
    x = _as_float64(t)
    bad = (x < low) | (x > high) | torch.isnan(x)
    if bad.any():
        flat = bad.reshape(-1).nonzero()[0].item()
        raise _fail(
            name,
            f"expected values in [{low:g}, {high:g}], got min {x.min().item():.4g} and max {x.max().item():.4g} "
            f"({int(bad.sum())} of {x.numel()} entries outside, first at index {_index(flat, x.shape)}).",
            hint
            or "logits where probabilities belong (apply a sigmoid/softmax), or a log-variance "
            "used as a variance (take exp).",
        )
    _ok(name, f"in [{low:g}, {high:g}]", quiet)


def check_requires_grad(
    t: Any,
    name: str = "tensor",
    hint: str = "",
    *,
    quiet: bool = False,
) -> None:
    """Check that ``t`` is a tensor that is part of the autograd graph (gradients can flow through it)."""
    if not isinstance(t, torch.Tensor):
        raise _fail(
            name,
            f"expected a tensor that carries a gradient, got a {type(t).__name__}.",
            hint or "a .item(), .tolist() or .numpy() turned the tensor into a plain number.",
        )
    if not t.requires_grad:
        raise _fail(
            name,
            "expected a tensor that carries a gradient, got one with requires_grad=False.",
            hint
            or "a sample that carries no gradient: did you call .detach() or torch.no_grad(), "
            "or use .sample() where .rsample() (the reparameterisation trick) belongs?",
        )
    _ok(name, "carries a gradient", quiet)


# ---------------------------------------------------------------------------------------------
# Facts stated in words, and checks that must fail
# ---------------------------------------------------------------------------------------------


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
        raise _fail(name, f"expected {expected}, got an empty condition: nothing was checked.", hint)
    if not bool(flags.all()):
        detail = f", got {got}" if got else ", but it does not hold"
        if flags.numel() > 1:
            first = _index(int((~flags).reshape(-1).nonzero()[0]), flags.shape)
            detail += f" ({int((~flags).sum())} of {flags.numel()} entries false, first at index {first})"
        raise _fail(name, f"expected {expected}{detail}.", hint)
    _ok(name, what, quiet)


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
            raise _fail(
                name,
                f"expected {names} with a message matching {match!r}, got {type(err).__name__}: {first_line}",
                hint or "it failed, but for another reason than the one this check is about.",
            ) from err
        _ok(name, f"{type(err).__name__} raised, as expected", quiet)
        return err
    shown = repr(result)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise _fail(name, f"expected {names}, but fn returned {shown} without raising.", hint)


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------


def _scalarize(out: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """A fixed random projection of a non-scalar output, so one backward pass checks the whole Jacobian's VJP."""
    if out.dim() == 0:
        return out
    if not weights:
        g = torch.Generator().manual_seed(1234)
        weights.append(torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.device, out.dtype))
    return (out * weights[0]).sum()


def _finite_difference(
    f: Callable[[], torch.Tensor], x: torch.Tensor, eps: float, coords: torch.Tensor
) -> torch.Tensor:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / 2 eps`` for the flat indices ``coords``."""
    grad = torch.zeros(coords.numel(), dtype=torch.float64)
    flat = x.data.view(-1)
    with torch.no_grad():
        for k, i in enumerate(coords.tolist()):
            original = flat[i].item()
            flat[i] = original + eps
            up = f().item()
            flat[i] = original - eps
            down = f().item()
            flat[i] = original
            grad[k] = (up - down) / (2 * eps)
    return grad


def _grad_leaf(x: Any, dtype: torch.dtype | None) -> Any:
    """A fresh leaf copy of a floating-point tensor input (cast to dtype); other inputs unchanged."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        # Contiguous, so that finite differences can nudge entries through a flat view (x may be a W.T).
        leaf = x.detach().clone(memory_format=torch.contiguous_format)
        return leaf.to(dtype) if dtype is not None else leaf
    return x


def check_grad(
    fn: Callable[..., torch.Tensor],
    *inputs: Any,
    expected_grads: Any = None,
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    dtype: torch.dtype | None = torch.float64,
    max_checks: int = 200,
    name: str = "gradient",
    hint: str = "",
    quiet: bool = False,
) -> None:
    """Check the autograd gradient of ``fn(*inputs)`` w.r.t. every floating-point input.

    Without ``expected_grads`` the reference is central finite differences (at most ``max_checks``
    randomly chosen coordinates per input); with ``expected_grads`` (one tensor per floating input,
    or a single tensor) it is those tensors, e.g. a gradient derived by hand. A non-scalar output
    is reduced with fixed random weights, which checks the vector-Jacobian product.

    Inputs are cloned and cast to ``dtype`` (float64 by default, so finite differences are
    accurate; a model inside ``fn`` then needs ``.double()``; ``dtype=None`` keeps the inputs'
    dtype with a looser ``eps``). ``fn`` must be deterministic: fix its noise.
    """
    leaves = [_grad_leaf(x, dtype) for x in inputs]
    diff_idx = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor) and x.is_floating_point()]
    if not diff_idx:
        raise _fail(
            name, "got no floating-point tensor input to differentiate.", "pass the input tensors after fn."
        )
    for i in diff_idx:
        leaves[i].requires_grad_(True)
    low_precision = any(leaves[i].dtype in (torch.float32, torch.float16, torch.bfloat16) for i in diff_idx)
    eps = eps if eps is not None else (1e-3 if low_precision else 1e-6)
    rtol = rtol if rtol is not None else (1e-2 if low_precision else 1e-4)
    atol = atol if atol is not None else (1e-3 if low_precision else 1e-6)

    weights: list[torch.Tensor] = []
    try:
        out = fn(*leaves)
    except RuntimeError as err:
        if dtype is not None and any(
            word in str(err) for word in ("dtype", "Double", "Float", "scalar type")
        ):
            raise TypeError(
                f"{name}: fn failed on {dtype} inputs ({err}); check_grad works in {dtype} for accurate "
                "finite differences: call model.double() first, or pass dtype=None to keep float32."
            ) from err
        raise
    if not isinstance(out, torch.Tensor):
        raise _fail(
            name, f"fn returned a {type(out).__name__}, not a tensor.", "return the tensor, not .item()."
        )
    objective = _scalarize(out, weights)
    if not objective.requires_grad:
        raise _fail(
            name,
            "the output of fn carries no gradient (requires_grad=False).",
            hint
            or "a .detach(), torch.no_grad(), .item()/.numpy() round trip, or .sample() instead of "
            ".rsample() cuts the graph between the inputs and the output.",
        )
    grads = torch.autograd.grad(objective, [leaves[i] for i in diff_idx], allow_unused=True)
    autograd = [torch.zeros_like(leaves[i]) if g is None else g for i, g in zip(diff_idx, grads)]

    def evaluate() -> torch.Tensor:
        return _scalarize(fn(*leaves), weights)

    if expected_grads is None:
        with torch.no_grad():
            first, second = evaluate().item(), evaluate().item()
        if first != second:
            raise _fail(
                name,
                f"fn gave {first:.6g} and then {second:.6g} at the same inputs, so finite differences are meaningless.",
                "fn is random: fix its noise (draw eps once outside fn, or pass a seeded torch.Generator).",
            )
    else:
        expected_list = [expected_grads] if isinstance(expected_grads, torch.Tensor) else list(expected_grads)
        if len(expected_list) != len(diff_idx):
            raise _fail(
                name,
                f"got {len(expected_list)} expected gradients for {len(diff_idx)} floating-point inputs.",
                "pass one expected gradient per floating-point input, in order.",
            )

    worst: tuple[float, str, str] = (0.0, "", "")
    gen = torch.Generator().manual_seed(0)
    for k, (i, g) in enumerate(zip(diff_idx, autograd)):
        g_flat = g.detach().to("cpu", torch.float64).reshape(-1)
        if expected_grads is None:
            n = g_flat.numel()
            coords = (
                torch.randperm(n, generator=gen)[:max_checks].sort().values
                if n > max_checks
                else torch.arange(n)
            )
            ref = _finite_difference(evaluate, leaves[i], eps, coords)
            ref_name = "finite differences"
        else:
            ref_full = _as_float64(expected_list[k])
            if ref_full.numel() != g_flat.numel():
                raise _fail(
                    name,
                    f"expected gradient {k} has shape {_fmt_shape(ref_full.shape)} but input {i} has shape "
                    f"{_fmt_shape(g.shape)}.",
                    hint or "a gradient has the shape of the tensor it is taken with respect to.",
                )
            coords = torch.arange(g_flat.numel())
            ref = ref_full.reshape(-1)
            ref_name = "expected_grads"
        got = g_flat[coords]
        excess = (got - ref).abs() - (atol + rtol * ref.abs())
        if excess.numel() and excess.max() > worst[0]:
            j = int(torch.argmax(excess))
            where = _index(int(coords[j]), g.shape)
            all_zero = bool((g_flat == 0).all())
            guess = (
                "autograd's gradient is zero everywhere: the graph is cut (.detach(), torch.no_grad(), "
                "integer ops or argmax) between this input and the output."
                if all_zero
                else _relation_hint(got, ref) or "compare your derivation with autograd term by term."
            )
            worst = (
                float(excess.max()),
                f"w.r.t. input {i} at index {where}: got {got[j].item():.6g} from autograd, expected "
                f"{ref[j].item():.6g} from {ref_name} (max abs diff {(got - ref).abs().max().item():.3g}, "
                f"{int((excess > 0).sum())} of {coords.numel()} checked entries off; "
                f"rtol={rtol:g}, atol={atol:g}).",
                guess,
            )
    if worst[0] > 0:
        raise _fail(name, f"gradient mismatch {worst[1]}", hint or worst[2])
    _ok(name, "autograd matches " + ("finite differences" if expected_grads is None else "expected"), quiet)


# ---------------------------------------------------------------------------------------------
# Monte Carlo estimators
# ---------------------------------------------------------------------------------------------


def _takes_a_count(sample_fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(sample_fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) and p.default is p.empty
    ]
    return bool(positional)


def _draw(sample_fn: Callable[..., Any], n: int, batch_size: int) -> torch.Tensor:
    """n i.i.d. estimates stacked along dim 0, as float64 on the CPU."""
    by_count = _takes_a_count(sample_fn)
    pieces: list[torch.Tensor] = []
    drawn = 0
    with torch.no_grad():
        while drawn < n:
            m = min(batch_size, n - drawn)
            out = _as_float64(sample_fn(m) if by_count else sample_fn())
            if by_count and (out.dim() == 0 or out.shape[0] != m):
                raise CheckError(
                    f"estimator: sample_fn({m}) returned shape {_fmt_shape(out.shape)}; it should return {m} "
                    f"independent estimates along dim 0, shape [{m}, ...]. Likely mistake: averaging inside "
                    "sample_fn (a .mean() over the samples) or ignoring its argument."
                )
            out = out.reshape(1, *out.shape) if out.dim() == 0 else out
            pieces.append(out)
            drawn += out.shape[0]
    return torch.cat(pieces)[:n]


def _per_entry_z(z: float, entries: int) -> float:
    """The z each of ``entries`` tests needs so that all of them together fail a correct estimator
    with the two-sided normal tail probability of ``z`` (Bonferroni; ``z`` itself for one entry)."""
    if entries <= 1:
        return z
    alpha = math.erfc(z / math.sqrt(2.0)) / entries  # two-sided tail probability per entry
    if alpha == 0.0:  # z beyond about 38: the tail underflows; use its asymptote exp(-z^2 / 2)
        return math.sqrt(z * z + 2.0 * math.log(entries))
    return -torch.special.ndtri(torch.tensor(alpha / 2.0, dtype=torch.float64)).item()


def _z_text(z: float, z_entry: float, entries: int) -> str:
    return f"z={z:g}" if entries <= 1 else f"z={z_entry:.2f} per entry (z={z:g} for all {entries} entries)"


def check_estimator(
    sample_fn: Callable[..., Any],
    expected: Any,
    *,
    n: int = 10_000,
    batch_size: int = 2_000,
    z: float = 4.0,
    atol: float = 0.0,
    name: str = "estimator",
    hint: str = "",
    quiet: bool = False,
) -> None:
    """Check that a Monte Carlo estimator is unbiased: ``|mean - expected| <= z * se + atol``.

    sample_fn: ``m -> [m, ...]``, ``m`` independent single-sample estimates (called in batches of
    ``batch_size`` until ``n`` are drawn), or a zero-argument callable returning one estimate (or a
    batch along dim 0). ``expected`` broadcasts to the estimate's shape ``[...]``; every entry is
    tested. ``se = std / sqrt(n)`` is the standard error. ``z`` sets the false-alarm rate of the whole
    check: with z = 4 a correct estimator fails about once in 16,000 runs however many entries it has,
    because each of the N entries is held to the stricter per-entry level of the same total rate
    (Bonferroni: z = 4 for one entry, about 4.7 for 20, 5.4 for 1,000), while a bias of a few standard
    errors is still caught.
    """
    draws = _draw(sample_fn, n, batch_size)  # [n, ...]
    if draws.shape[0] < 2:
        raise _fail(name, "needs at least 2 samples to estimate a standard error.", "raise n.")
    check_finite(draws, name=f"{name} samples", quiet=True)
    mean = draws.mean(0)
    se = draws.std(0) / math.sqrt(draws.shape[0])
    e = _as_float64(expected)
    try:
        e = e.expand_as(mean)
    except RuntimeError:
        raise _fail(
            name,
            f"the estimates have shape {_fmt_shape(mean.shape)} but expected has shape {_fmt_shape(e.shape)}.",
            hint or "return one estimate per sample along dim 0, each shaped like expected.",
        ) from None
    z_entry = _per_entry_z(z, mean.numel())
    allowed = z_entry * se + atol + 1e-9 * e.abs().clamp(min=1.0)
    gap = (mean - e).abs()
    if (gap > allowed).any():
        j = int(torch.argmax(gap / allowed))
        i = _index(j, mean.shape)
        where = f" at index {i}" if mean.dim() else ""
        m_j, s_j, e_j = mean.reshape(-1)[j].item(), se.reshape(-1)[j].item(), e.reshape(-1)[j].item()
        n_se = gap.reshape(-1)[j].item() / s_j if s_j > 0 else math.inf
        raise _fail(
            name,
            f"expected mean {e_j:.6g}{where}, got {m_j:.6g} ± {s_j:.3g} (standard error, n={draws.shape[0]}): "
            f"{n_se:.1f} standard errors away, allowed {_z_text(z, z_entry, mean.numel())}"
            + (f" plus atol={atol:g}." if atol else "."),
            (hint + " " if hint else "")
            + "biased estimator? too few samples? (a missing term, samples not independent, or a wrong "
            "weight such as p/q inverted)",
        )
    worst = (gap / se.clamp(min=1e-300)).max().item()
    _ok(name, f"mean within {worst:.1f} standard errors, n={draws.shape[0]}", quiet)
