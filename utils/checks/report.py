"""How every check reports: ``CheckError``, the one-line pass message, and hints guessed from the numbers
(a factor of 2, a flipped sign, an added constant, an extra dimension)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class CheckError(AssertionError):
    """A self-check failed; the message says what differs and the likely mistake."""


# ---------------------------------------------------------------------------------------------
# Formatting helpers
# ---------------------------------------------------------------------------------------------


def say_passed(name: str, detail: str = "", quiet: bool = False) -> None:
    if not quiet:
        print(f"✓ {name} ok" + (f" ({detail})" if detail else ""))


def failure(name: str, what: str, hint: str) -> CheckError:
    message = f"{name}: {what}"
    if hint:
        message += f" Likely mistake: {hint}"
    return CheckError(message)


def as_float64(x: Any) -> torch.Tensor:
    """A detached CPU float64 copy of a tensor, array or number."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def fmt_shape(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


def fmt_value(t: torch.Tensor) -> str:
    if t.numel() == 1:
        return f"{t.item():.6g}"
    if t.numel() <= 6:
        return "[" + ", ".join(f"{v:.4g}" for v in t.reshape(-1).tolist()) + "]"
    return f"a tensor of shape {fmt_shape(t.shape)}"


def index_of(flat_index: int, shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, tuple(shape))) if len(shape) else ()


# ---------------------------------------------------------------------------------------------
# Guessing the mistake from the numbers
# ---------------------------------------------------------------------------------------------


def relation_hint(actual: torch.Tensor, expected: torch.Tensor) -> str:
    """Name a simple relation between actual and expected (offset, factor, sign), or ''.

    An added constant is looked for first: on values far from zero (log-likelihoods of hundreds of
    nats) an offset such as log k also makes the ratio nearly constant, and "a wrong factor 0.9966"
    would name the wrong mistake. For a single number every ratio and offset is "constant", so only
    recognisable ones are named.
    """
    a, e = actual.reshape(-1), expected.reshape(-1)
    if not (torch.isfinite(a).all() and torch.isfinite(e).all()) or e.abs().max() == 0:
        return ""
    several = a.numel() > 1
    scale = e.abs().max().item()
    offsets = a - e
    c = offsets.median().item()
    if (offsets - c).abs().max().item() <= 1e-6 * max(scale, 1.0) + 1e-9 and abs(c) > 0:
        named = _offset_hint(c)
        if named or several:
            return (
                named
                or f"got = expected {c:+.4g} everywhere: a constant term (a normalising constant?) added or dropped."
            )
    mask = e.abs() > 1e-3 * scale
    ratios = a[mask] / e[mask]
    r = ratios.median().item()
    if (ratios - r).abs().max().item() <= 1e-3 * max(abs(r), 1.0) and abs(r - 1) > 1e-3:
        factor = _factor_hint(r)
        if factor or several:
            return factor or f"got = {r:.4g} x expected everywhere: a wrong constant factor."
    return ""


def _offset_hint(c: float) -> str:
    """Name an added constant that is a multiple of 0.5*log(2*pi) or the log of a small whole number."""
    k = round(c / _HALF_LOG_2PI)
    if k != 0 and abs(c / _HALF_LOG_2PI - k) < 1e-3:
        return (
            f"got = expected {'+' if k > 0 else '-'} {abs(k)} x 0.5*log(2*pi): a Gaussian normalising "
            "constant added or dropped (it appears once per dimension)."
        )
    n = round(math.exp(abs(c)))
    if 2 <= n <= 100_000 and abs(abs(c) - math.log(n)) < 1e-4:
        sign = "+" if c > 0 else "-"
        return (
            f"got = expected {sign} log {n}: a log-mean over {n} terms computed as a log-sum, or the other way "
            f"round (a missing or extra - log {n}, as in log (1/k) sum_i w_i with k = {n}?)."
        )
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


def shape_hint(actual: Sequence[int], expected: Sequence[int | None]) -> str:
    """Guess why a tensor has the wrong shape."""
    actual, expected = list(actual), list(expected)

    def fits(a: Sequence[int], e: Sequence[int | None]) -> bool:
        return len(a) == len(e) and all(x is None or x == y for y, x in zip(a, e))

    if len(actual) == len(expected) + 1:
        if len(actual) >= 2 and actual[-1] == actual[-2] and fits(actual[:-1], expected):
            return (
                f"a square {fmt_shape(actual)} result: broadcasting a [B] tensor against a [B, 1] one "
                "(make both the same shape), or a missing sum over the last dimension."
            )
        if fits(actual[:-1], expected):
            return (
                f"an extra last dimension of size {actual[-1]}: did you forget to sum over the last "
                f"dimension (.sum(-1)), so the shape is {fmt_shape(actual)} instead of {fmt_shape(expected)}?"
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
