"""utils.metrics' two-sample MMD: the unbiased estimator against closed forms, its bandwidths, its test."""

from __future__ import annotations

import math

import pytest
import torch

from utils import metrics


def _gaussian_mmd2(delta: float, s: float, d: int) -> float:
    # MMD^2 of N(0, I) and N(delta e_1, I) under exp(-|a-b|^2 / (2 s^2)): closed form.
    c = (s**2 / (s**2 + 2)) ** (d / 2)
    return 2 * c * (1 - math.exp(-(delta**2) / (2 * (s**2 + 2))))


def test_unbiased_mean_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    delta, s, d, n, reps = 1.0, 1.5, 2, 100, 300
    shift = torch.tensor([delta, 0.0])
    values = torch.tensor(
        [
            metrics.mmd2_unbiased(torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + shift, s)
            for _ in range(reps)
        ]
    )
    se = values.std() / math.sqrt(reps)
    assert abs(values.mean() - _gaussian_mmd2(delta, s, d)) < 4 * se, (
        "the mean of the estimate is off the closed form: are the diagonal terms k(x_i, x_i) left out "
        "and the cross term weighted by 2?"
    )


def test_null_mean_is_zero_and_estimates_can_be_negative():
    g = torch.Generator().manual_seed(1)
    values = torch.tensor(
        [
            metrics.mmd2_unbiased(torch.randn(50, 2, generator=g), torch.randn(50, 2, generator=g), 1.0)
            for _ in range(300)
        ]
    )
    assert abs(values.mean()) < 4 * values.std() / math.sqrt(300), (
        "under P = Q the unbiased MMD^2 must average 0"
    )
    assert (values < 0).any(), (
        "an unbiased estimate of 0 must sometimes be negative (is the diagonal included?)"
    )


def test_matches_a_brute_force_double_loop():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y, widths = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5, [0.5, 2.0]

    def k(a, b):
        return sum(math.exp(-float((a - b).pow(2).sum()) / (2 * s * s)) for s in widths)

    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / 42
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(a, b) for a in x for b in y) / 35
    assert metrics.mmd2_unbiased(x, y, widths) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_median_heuristic_is_the_median_pairwise_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    y = torch.tensor([[0.0, 4.0]])
    assert metrics.median_heuristic(x, y) == pytest.approx(4.0)  # distances 3, 4, 5
    assert metrics.mmd_bandwidths(x, y, factors=(0.5, 1.0)) == pytest.approx([2.0, 4.0])


def test_permutation_test_separates_shifted_from_equal_samples():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(80, 2, generator=g)
    _, p_shift = metrics.mmd_permutation_test(x, torch.randn(80, 2, generator=g) + 1.0, 1.0, 99, g)
    _, p_same = metrics.mmd_permutation_test(x, torch.randn(80, 2, generator=g), 1.0, 99, g)
    assert p_shift <= 0.02, f"a shift of one standard deviation must be detected, p = {p_shift}"
    assert p_same > 0.02, f"two samples of one distribution must not be rejected here, p = {p_same}"


@pytest.mark.parametrize("block", [None, 7])  # one block of rows, and many with a ragged last one
def test_permuted_statistics_equal_the_estimate_on_each_relabelling(block):
    g = torch.Generator().manual_seed(5)
    pooled = torch.cat([torch.randn(23, 3, generator=g), torch.randn(17, 3, generator=g) + 0.5])
    orders = [torch.randperm(40, generator=g) for _ in range(6)]
    widths = [0.5, 2.0]
    fast = metrics._permuted_mmd2(pooled, 23, widths, orders, block=block)
    slow = [metrics.mmd2_unbiased(pooled[o[:23]], pooled[o[23:]], widths) for o in orders]
    assert fast.tolist() == pytest.approx(slow, rel=1e-9, abs=1e-12), (
        "the kernel sums of a relabelling are wrong: check a'Ka, (1-a)'K(1-a), a'K(1-a) and the diagonal terms"
    )


def test_permutation_p_value_counts_the_permuted_statistics_at_least_the_observed():
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(30, 2, generator=g), torch.randn(20, 2, generator=g) + 0.3
    observed, p = metrics.mmd_permutation_test(x, y, 1.0, 49, torch.Generator().manual_seed(2))
    replay = torch.Generator().manual_seed(2)
    pooled = torch.cat([x, y])
    permuted = [
        metrics.mmd2_unbiased(pooled[o[:30]], pooled[o[30:]], 1.0)
        for o in (torch.randperm(50, generator=replay) for _ in range(49))
    ]
    assert observed == pytest.approx(metrics.mmd2_unbiased(x, y, 1.0))
    assert p == pytest.approx((1 + sum(v >= observed for v in permuted)) / 50), (
        "p = (1 + #{permuted >= observed}) / (1 + P)"
    )


def test_bad_inputs_are_refused():
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match="same d"):
        metrics.mmd2_unbiased(x, torch.randn(5, 3), 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mmd2_unbiased(x, x[:1], 1.0)
    with pytest.raises(ValueError, match="positive"):
        metrics.mmd2_unbiased(x, x, [1.0, 0.0])
