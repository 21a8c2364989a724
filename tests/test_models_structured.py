"""utils.models.structured: the Gaussian filterbank and attention, DRAW's ELBO, and M2's bounds
(one property per test)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from utils import models
from utils.models import structured as S


def _bank(
    n: int = 5, size: int = 28, centre: float = 13.5, delta: float = 3.0, sigma2: float = 1.0
) -> torch.Tensor:
    one = torch.ones(2, dtype=torch.float64)
    return S.filterbank(centre * one, delta * one, sigma2 * one, n, size)


def test_filterbank_rows_sum_to_one():
    f = _bank()
    assert f.shape == (2, 5, 28)
    assert torch.allclose(f.sum(-1), torch.ones(2, 5, dtype=torch.float64)), (
        "normalise each filter over pixels"
    )


def test_filter_means_are_spaced_by_delta_around_the_centre():
    f = _bank(n=4, centre=13.5, delta=4.0, sigma2=0.5)
    means = (f[0] * torch.arange(28, dtype=torch.float64)).sum(-1)
    expected = 13.5 + (torch.arange(4, dtype=torch.float64) - 2 + 0.5) * 4.0
    assert torch.allclose(means, expected, atol=1e-6), "mu_i = centre + (i - n/2 + 1/2) delta (0-based i)"


def test_a_centred_wide_window_reads_the_image_mean():
    x = torch.rand(2, 28, 28, dtype=torch.float64)
    f = _bank(n=1, centre=13.5, sigma2=1e6)
    glimpse = S.attention_read(x, f, f, torch.ones(2, dtype=torch.float64))
    assert torch.allclose(glimpse[:, 0, 0], x.mean((1, 2)), atol=1e-6), (
        "F_Y x F_X^T with one flat filter averages"
    )


def test_read_then_write_with_the_transpose_reproduces_a_blurred_image():
    x = torch.zeros(1, 28, 28, dtype=torch.float64)
    x[0, 10:18, 12:16] = 1.0
    f = S.filterbank(*(torch.tensor([v], dtype=torch.float64) for v in (13.5, 1.0, 0.3)), 28, 28)
    gamma = torch.tensor([2.0], dtype=torch.float64)
    back = S.attention_write(S.attention_read(x, f, f, gamma), f, f, gamma)
    assert (back - x).abs().max() < 0.5 and (back - x).abs().mean() < 0.05, "write should be F^T w F / gamma"
    assert torch.allclose(back.sum(), x.sum(), rtol=0.02), (
        "a blur moves ink but keeps its amount: divide by gamma"
    )


def test_write_is_the_adjoint_of_read_with_different_filterbanks():
    # <read(x), w> = gamma^2 <x, write(w)>; F_Y != F_X so a swapped or untransposed filterbank fails
    torch.manual_seed(0)
    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    fy = S.filterbank(t(10.0, 17.5), t(2.0, 3.0), t(1.0, 0.5), 5, 28)
    fx = S.filterbank(t(20.5, 6.0), t(3.5, 1.5), t(0.7, 2.0), 5, 28)
    x, w, gamma = (
        torch.rand(2, 28, 28, dtype=torch.float64),
        torch.randn(2, 5, 5, dtype=torch.float64),
        t(2.0, 0.5),
    )
    lhs = (S.attention_read(x, fy, fx, gamma) * w).sum((1, 2))
    rhs = gamma**2 * (x * S.attention_write(w, fy, fx, gamma)).sum((1, 2))
    assert torch.allclose(lhs, rhs), (
        "write should be F_Y^T w F_X / gamma, the transpose of read's F_Y x F_X^T"
    )


def test_draw_loss_is_reconstruction_at_the_last_canvas_plus_every_steps_kl():
    torch.manual_seed(0)
    draw = models.DRAW(steps=3, hidden=16, latent_dim=4, read_n=2, write_n=3)
    x = torch.bernoulli(torch.full((5, 784), 0.3))
    torch.manual_seed(1)
    out = draw.loss(x)
    torch.manual_seed(1)
    run = draw.run(x)
    recon = -models.bernoulli_log_likelihood(run["logits"], x).mean()
    assert run["kl"].shape == (3, 5) and run["canvases"].shape == (3, 5, 784)
    assert torch.allclose(out["loss"], recon + run["kl"].sum(0).mean()), "sum the KL over all steps"
    assert torch.allclose(run["canvases"][-1], run["logits"]), "the likelihood uses the final canvas"


@pytest.mark.parametrize("read_n, write_n", [(None, None), (2, 5)])
def test_draw_samples_are_probabilities(read_n, write_n):
    draw = models.DRAW(steps=2, hidden=8, latent_dim=3, read_n=read_n, write_n=write_n)
    s = draw.sample(4)
    assert s.shape == (4, 784) and s.min() >= 0 and s.max() <= 1


def _m2(**kw) -> S.M2:
    torch.manual_seed(0)
    return models.M2(data_dim=12, latent_dim=3, hidden=(8,), classes=4, **kw).double()


def test_unlabelled_bound_equals_the_enumeration_over_classes():
    m2, x = _m2(), torch.bernoulli(torch.full((3, 12), 0.5, dtype=torch.float64))
    torch.manual_seed(5)
    u, logits = m2.unlabelled_bound(x)
    torch.manual_seed(5)  # the same noise: the enumeration draws z for class 0..K-1 of example 0, then 1, ...
    eps = torch.randn(3 * 4, 3, dtype=torch.float64).reshape(3, 4, 3)
    q = F.softmax(logits, -1)
    expected = torch.zeros(3, dtype=torch.float64)
    for y in range(4):
        onehot = F.one_hot(torch.full((3,), y), 4).double()
        mu, logvar = m2.encode(x, onehot)
        z = mu + torch.exp(0.5 * logvar) * eps[:, y]
        bound = (
            models.bernoulli_log_likelihood(m2.decode(z, onehot), x)
            - math.log(4)
            - models.gaussian_kl(mu, logvar)
        )
        expected += q[:, y] * (bound - q[:, y].log())
    assert torch.allclose(u, expected), "U(x) = sum_y q(y|x) (L(x, y) - log q(y|x))"


def test_labelled_loss_weights_the_classifier_by_alpha():
    x_l = torch.bernoulli(torch.full((6, 12), 0.5, dtype=torch.float64))
    y_l = torch.arange(6) % 4
    parts = []
    for alpha in (0.0, 10.0):
        m2 = _m2(alpha=alpha, labelled=(x_l, y_l), binarize=False).double()
        torch.manual_seed(3)
        parts.append(m2.loss(x_l[:2]))
    diff = parts[1]["loss"] - parts[0]["loss"]
    assert torch.allclose(diff, 10.0 * parts[0]["classifier"]), "alpha multiplies the mean cross-entropy"


def test_analogies_decode_one_style_in_every_class():
    m2 = _m2()
    out = m2.analogies(torch.rand(2, 12, dtype=torch.float64))
    assert out.shape == (2, 4, 12) and not torch.allclose(out[:, 0], out[:, 1]), "vary y, keep z"


def test_sampled_inputs_are_drawn_from_each_rows_gaussian():
    m2 = _m2(likelihood="gaussian", sample_inputs=True)
    mean = torch.randn(4000, 12, dtype=torch.float64)
    sure = m2.draw_inputs(
        torch.cat([mean, torch.full_like(mean, -40.0)], -1)
    )  # log-variance -40: the mean itself
    assert sure.shape == (4000, 12) and torch.allclose(sure, mean, atol=1e-6), (
        "[mean, logvar] rows, mean first"
    )
    torch.manual_seed(1)
    noisy = m2.draw_inputs(torch.cat([mean, torch.full_like(mean, math.log(4.0))], -1)) - mean
    assert abs(noisy.std().item() - 2.0) < 0.05, (
        "log-variance log 4 is a standard deviation of 2, not 4 or sqrt 2"
    )
    torch.manual_seed(2)
    again = m2.draw_inputs(torch.cat([mean, torch.zeros_like(mean)], -1))
    assert not torch.allclose(again, m2.draw_inputs(torch.cat([mean, torch.zeros_like(mean)], -1))), (
        "fresh draws"
    )


def test_sampled_inputs_reach_the_labelled_digits_too():
    stats_l = torch.cat(
        [torch.randn(6, 12, dtype=torch.float64), torch.full((6, 12), -40.0, dtype=torch.float64)], -1
    )
    y_l = torch.arange(6) % 4
    m2 = _m2(likelihood="gaussian", sample_inputs=True, labelled=(stats_l, y_l))
    plain = _m2(likelihood="gaussian", binarize=False, labelled=(stats_l[:, :12], y_l))
    # Both built from the same seed with the same networks; the cross-entropy needs no noise, only the inputs.
    sampled, exact = m2.loss(stats_l[:2])["classifier"], plain.loss(stats_l[:2, :12])["classifier"]
    assert torch.allclose(sampled, exact, atol=1e-6), (
        "with a tiny variance the labelled digits' inputs must be their means (the first half of each row)"
    )
    unsure = torch.cat([stats_l[:, :12], torch.zeros(6, 12, dtype=torch.float64)], -1)  # variance 1
    noisy = _m2(likelihood="gaussian", sample_inputs=True, labelled=(unsure, y_l))
    torch.manual_seed(3)
    first = noisy.loss(stats_l[:2])["classifier"]
    torch.manual_seed(4)
    assert not torch.allclose(first, noisy.loss(stats_l[:2])["classifier"]), (
        "the labelled digits' inputs must be drawn afresh each step, not fixed at their means"
    )
    with pytest.raises(ValueError, match="gaussian"):
        models.M2(sample_inputs=True)


def test_gaussian_m2_and_bad_inputs():
    m2 = _m2(likelihood="gaussian", binarize=False)
    assert torch.isfinite(m2.loss(torch.randn(3, 12, dtype=torch.float64))["loss"])
    with pytest.raises(ValueError, match="likelihood"):
        models.M2(likelihood="poisson")
    with pytest.raises(ValueError, match="at least one step"):
        models.DRAW(steps=0)
