"""utils.metrics for GANs: the Fréchet distance against closed forms, and a classifier's view of samples."""

from __future__ import annotations

import math

import pytest
import torch

from utils import metrics


def test_frechet_distance_of_a_set_with_itself_is_zero():
    f = torch.randn(500, 6, generator=torch.Generator().manual_seed(0))
    assert metrics.frechet_distance(f, f) < 1e-8, "identical feature sets must be at distance 0"


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    mu_a, mu_b = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.0])
    sd_a, sd_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 1.0, 0.5])
    got = metrics.frechet_distance_from_statistics(mu_a, torch.diag(sd_a**2), mu_b, torch.diag(sd_b**2))
    expected = ((mu_a - mu_b) ** 2).sum() + ((sd_a - sd_b) ** 2).sum()  # 5 + 5 = 10
    assert abs(got - float(expected)) < 1e-9, (
        f"got {got}, expected |dmu|^2 + sum (sd_a - sd_b)^2 = {expected}"
    )


def test_frechet_distance_with_non_commuting_covariances_is_the_closed_form():
    cov_a = torch.tensor([[2.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    cov_b = torch.tensor([[0.5, -0.3], [-0.3, 1.5]], dtype=torch.float64)
    m = cov_a @ cov_b  # not symmetric; its eigenvalues are those of C_a^1/2 C_b C_a^1/2
    tr_sqrt = math.sqrt(
        m.trace() + 2 * math.sqrt(torch.det(m))
    )  # Tr sqrt(M) for a 2x2 M with positive spectrum
    expected = cov_a.trace() + cov_b.trace() - 2 * tr_sqrt
    got = metrics.frechet_distance_from_statistics(torch.zeros(2), cov_a, torch.zeros(2), cov_b)
    assert abs(got - float(expected)) < 1e-9, f"got {got}, expected {float(expected)}"


def test_frechet_distance_of_samples_approaches_that_of_their_gaussians():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(200_000, 2, generator=gen, dtype=torch.float64)  # N(0, I)
    b = torch.randn(200_000, 2, generator=gen, dtype=torch.float64) * 2 + torch.tensor(
        [1.0, 0.0], dtype=torch.float64
    )
    got = metrics.frechet_distance(a, b)  # closed form: 1 + 2 (2 - 1)^2 = 3
    assert abs(got - 3.0) < 0.05, f"got {got:.4f}, expected 3 for N(0, I) vs N((1, 0), 4 I)"


def test_frechet_distance_refuses_bad_features():
    f = torch.randn(10, 3)
    with pytest.raises(ValueError, match="same feature extractor"):
        metrics.frechet_distance(f, torch.randn(10, 4))
    with pytest.raises(ValueError, match="n >= 2"):
        metrics.frechet_distance(f, f[:1])
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(f, torch.full((10, 3), math.nan))


def test_confident_share_and_class_histogram_count_by_hand():
    probs = torch.tensor([[0.95, 0.05, 0.0], [0.5, 0.4, 0.1], [0.0, 0.05, 0.95], [0.0, 0.91, 0.09]])
    assert metrics.confident_share(probs, 0.9) == 0.75, "three of four rows have a top class >= 0.9"
    assert torch.equal(metrics.class_histogram(probs), torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))


def test_classifier_measures_refuse_logits_and_bad_thresholds():
    with pytest.raises(ValueError, match="softmax"):
        metrics.class_histogram(torch.tensor([[2.0, -1.0]]))
    with pytest.raises(ValueError, match="threshold"):
        metrics.confident_share(torch.tensor([[1.0, 0.0]]), 1.5)
