"""``check_estimator``: is a Monte Carlo estimator unbiased? Its sample mean against the expected value,
in standard errors, with the false-alarm level shared across the entries (Bonferroni)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from utils.checks.report import CheckError, as_float64, failure, fmt_shape, index_of, say_passed
from utils.checks.values import check_finite


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
            out = as_float64(sample_fn(m) if by_count else sample_fn())
            if by_count and (out.dim() == 0 or out.shape[0] != m):
                raise CheckError(
                    f"estimator: sample_fn({m}) returned shape {fmt_shape(out.shape)}; it should return {m} "
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
        raise failure(name, "needs at least 2 samples to estimate a standard error.", "raise n.")
    check_finite(draws, name=f"{name} samples", quiet=True)
    mean = draws.mean(0)
    se = draws.std(0) / math.sqrt(draws.shape[0])
    e = as_float64(expected)
    try:
        e = e.expand_as(mean)
    except RuntimeError:
        raise failure(
            name,
            f"the estimates have shape {fmt_shape(mean.shape)} but expected has shape {fmt_shape(e.shape)}.",
            hint or "return one estimate per sample along dim 0, each shaped like expected.",
        ) from None
    z_entry = _per_entry_z(z, mean.numel())
    allowed = z_entry * se + atol + 1e-9 * e.abs().clamp(min=1.0)
    gap = (mean - e).abs()
    if (gap > allowed).any():
        j = int(torch.argmax(gap / allowed))
        i = index_of(j, mean.shape)
        where = f" at index {i}" if mean.dim() else ""
        m_j, s_j, e_j = mean.reshape(-1)[j].item(), se.reshape(-1)[j].item(), e.reshape(-1)[j].item()
        n_se = gap.reshape(-1)[j].item() / s_j if s_j > 0 else math.inf
        raise failure(
            name,
            f"expected mean {e_j:.6g}{where}, got {m_j:.6g} ± {s_j:.3g} (standard error, n={draws.shape[0]}): "
            f"{n_se:.1f} standard errors away, allowed {_z_text(z, z_entry, mean.numel())}"
            + (f" plus atol={atol:g}." if atol else "."),
            # A caller's hint names the likely mistake; the generic guesses would only blur it.
            hint
            or "biased estimator? too few samples? (a missing term, samples not independent, or a wrong "
            "weight such as p/q inverted)",
        )
    worst = (gap / se.clamp(min=1e-300)).max().item()
    say_passed(name, f"mean within {worst:.1f} standard errors, n={draws.shape[0]}", quiet)
