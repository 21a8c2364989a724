"""utils.models.diffusion (and the judge of lecture 13, utils.models.classifier): schedules, the forward
process, the posterior against Bayes' rule, the loss, the samplers on Gaussian data with the exact
noise predictor, the bound, denoising score matching, annealed Langevin and the U-Net (one property per test)."""

from __future__ import annotations

import math

import pytest
import torch

from utils import models
from utils.train import fit

S = 0.5  # data N(0, S^2 I): the exact noise predictor and score are known in closed form


def gaussian_eps(alpha_bar: torch.Tensor, s: float = S):
    """E[eps | x_t] for x0 ~ N(0, s^2): x_t ~ N(0, ab s^2 + 1 - ab), eps's share sqrt(1 - ab) x_t / var."""

    def eps(x, t):
        ab = alpha_bar[t].reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        return (1 - ab).sqrt() * x / (ab * s**2 + 1 - ab)

    return eps


def test_linear_schedule_is_ho_et_al_at_T_1000_and_ends_near_noise():
    betas = models.linear_betas(1000)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02), (
        "Ho et al.: 1e-4 .. 0.02"
    )
    for T in (100, 1000):
        ab = models.alpha_bars(models.linear_betas(T))
        assert bool((ab[1:] < ab[:-1]).all()), "alpha_bar must decrease"
        assert ab[-1] < 1e-3, (
            f"T={T}: alpha_bar_T={ab[-1]:.3g}, x_T should be nearly pure noise (betas rescaled by 1000/T?)"
        )


def test_cosine_schedule_decreases_inside_the_unit_interval():
    ab = models.cosine_alpha_bars(200)
    assert bool(((ab > 0) & (ab < 1)).all()) and bool((ab[1:] < ab[:-1]).all())


def test_q_sample_is_the_closed_form_marginal():
    ab = models.alpha_bars(models.linear_betas(50))
    x0, noise, t = torch.randn(6, 3), torch.randn(6, 3), torch.tensor([0, 5, 10, 20, 40, 49])
    expected = ab[t, None].sqrt().float() * x0 + (1 - ab[t, None]).sqrt().float() * noise
    assert torch.allclose(models.q_sample(x0, t, ab, noise), expected, atol=1e-6), (
        "sqrt(ab) x0 + sqrt(1 - ab) eps"
    )


@pytest.mark.parametrize("t", [1, 7, 30])
def test_posterior_matches_bayes_rule_on_a_grid(t):
    betas = models.linear_betas(40)
    ab = models.alpha_bars(betas)
    x0, xt = torch.tensor([[0.7]], dtype=torch.float64), torch.tensor([[-0.3]], dtype=torch.float64)
    grid = torch.linspace(-6, 6, 200_001, dtype=torch.float64)  # x_{t-1}
    # q(x_{t-1} | x0) q(x_t | x_{t-1}), normalised numerically
    log_w = (
        -0.5 * (grid - ab[t - 1].sqrt() * 0.7) ** 2 / (1 - ab[t - 1])
        - 0.5 * (-0.3 - (1 - betas[t]).sqrt() * grid) ** 2 / betas[t]
    )
    w = torch.softmax(log_w, 0)
    mean_b = (w * grid).sum()
    var_b = (w * (grid - mean_b) ** 2).sum()
    mean, var = models.posterior_mean_var(x0, xt, torch.tensor([t]), betas)
    assert mean.item() == pytest.approx(mean_b.item(), rel=1e-6), "posterior mean differs from Bayes' rule"
    assert var.item() == pytest.approx(var_b.item(), rel=1e-5), "posterior variance differs from Bayes' rule"


def test_ddpm_loss_vanishes_for_the_oracle_that_knows_x0():
    ab = models.alpha_bars(models.linear_betas(100)).float()
    x0 = torch.randn(32, 1, 28, 28)

    def oracle(xt, t):
        a = ab[t].reshape(-1, 1, 1, 1)
        return (xt - a.sqrt() * x0) / (1 - a).sqrt()

    loss = models.ddpm_loss(oracle, x0, ab, generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-8, (
        f"loss {loss.item():.3g} for the exact noise: is x_t built with sqrt(alpha_bar)?"
    )


@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_ancestral_sampling_with_the_exact_predictor_recovers_the_data_variance(variance):
    betas = models.linear_betas(1000)
    eps = gaussian_eps(models.alpha_bars(betas).float())
    x = models.ddpm_sample(
        eps, (20_000, 2), betas.float(), generator=torch.Generator().manual_seed(1), variance=variance
    )
    assert x.var().item() == pytest.approx(S**2, rel=0.05), f"sample variance {x.var():.4f} != {S**2}"


def test_clipping_x0_changes_nothing_when_the_prediction_stays_inside():
    betas = models.linear_betas(50)
    eps = gaussian_eps(models.alpha_bars(betas).float(), s=0.05)  # data N(0, 0.05^2): x0_hat stays in [-1, 1]
    a = models.ddpm_sample(eps, (500, 2), betas.float(), generator=torch.Generator().manual_seed(7))
    b = models.ddpm_sample(
        eps, (500, 2), betas.float(), generator=torch.Generator().manual_seed(7), clip_x0=True
    )
    assert torch.allclose(a, b, atol=1e-4), "the x0-form of the mean must equal the eps-form"
    wide = gaussian_eps(models.alpha_bars(betas).float(), s=3.0)
    c = models.ddpm_sample(
        wide, (500, 2), betas.float(), generator=torch.Generator().manual_seed(7), clip_x0=True
    )
    assert c.abs().max() <= 1.0 + 1e-5, "the last step returns the clipped x0_hat"


def test_ancestral_sampling_keeps_the_requested_steps():
    betas = models.linear_betas(20).float()
    x, kept = models.ddpm_sample(lambda x, t: torch.zeros_like(x), (3, 2), betas, keep=(20, 10, 0))
    assert set(kept) == {20, 10, 0} and torch.equal(kept[0], x), "kept[0] should be the final sample"


def test_ddim_with_the_exact_predictor_recovers_the_data_variance_deterministically():
    ab = models.alpha_bars(models.linear_betas(1000)).float()
    eps = gaussian_eps(ab)
    x_T = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(2))
    x = models.ddim_sample(
        eps, x_T.shape, ab, steps=1000, x_T=x_T
    )  # 100 steps: 0.236, a discretisation error
    assert x.var().item() == pytest.approx(S**2, rel=0.02), f"DDIM variance {x.var():.4f} != {S**2}"
    assert torch.equal(x, models.ddim_sample(eps, x_T.shape, ab, steps=1000, x_T=x_T)), (
        "eta=0 must be deterministic"
    )


def test_bound_terms_with_the_oracle_mean_leave_only_the_variance_mismatch():
    betas = models.linear_betas(10)
    ab = models.alpha_bars(betas)
    x0 = torch.rand(4, 1, 28, 28, dtype=torch.float64) * 2 - 1

    def oracle(xt, t):
        a = ab[t].reshape(-1, 1, 1, 1)
        return (xt - a.sqrt() * x0) / (1 - a).sqrt()

    terms = models.ddpm_bound_terms(oracle, x0, betas)
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    ratio = (1 - ab_prev) / (1 - ab)  # posterior variance / beta
    expected = 784 * 0.5 * (-torch.log(ratio) + ratio - 1)  # KL(N(m, r b) || N(m, b)) per image
    assert torch.allclose(terms[:, 1:10], expected[1:].expand(4, 9)), (
        "L_t with the exact mean is a pure variance KL"
    )
    L_T = 784 * 0.5 * (-ab[-1] - torch.log(1 - ab[-1])) + 0.5 * ab[-1] * x0.pow(2).flatten(1).sum(1)
    assert torch.allclose(terms[:, 10], L_T), "L_T = KL(q(x_T | x0) || N(0, I))"


def test_discretized_likelihood_sums_to_one_over_the_256_levels():
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)
    logp = models.discretized_gaussian_log_likelihood(
        levels, torch.tensor(0.2, dtype=torch.float64), torch.tensor(-1.0, dtype=torch.float64)
    )
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-9), "edge bins must take the tails"


def test_dsm_loss_at_the_exact_score_of_gaussian_data():
    sigma = torch.tensor([0.3])
    x = S * torch.randn(400_000, 2, generator=torch.Generator().manual_seed(3))

    def score(x, s):  # grad log N(0, (S^2 + s^2) I)
        return -x / (S**2 + s[:, None] ** 2)

    got = models.dsm_loss(score, x, sigma, generator=torch.Generator().manual_seed(4)).item()
    expected = 0.5 * 2 * S**2 / (S**2 + 0.09)  # E 1/2 ||sigma s + z||^2 at the optimum, worked out by hand
    assert got == pytest.approx(expected, rel=0.01), "the sigma^2-weighted DSM loss at the exact score"


def test_annealed_langevin_with_the_exact_score_reaches_the_data_variance():
    sigmas = torch.logspace(0, -2, 8)

    def score(x, s):
        return -x / (S**2 + s[:, None] ** 2)

    x = 3 * torch.randn(20_000, 2, generator=torch.Generator().manual_seed(5))
    out = models.annealed_langevin(
        score, x, sigmas, steps=100, eps=2e-4, generator=torch.Generator().manual_seed(6)
    )
    assert out.var().item() == pytest.approx(S**2 + 1e-4, rel=0.06)
    with pytest.raises(ValueError, match="decrease"):
        models.annealed_langevin(score, x, sigmas.flip(0))


def test_timestep_embedding_starts_at_cos_one_sin_zero():
    e = models.timestep_embedding(torch.tensor([0, 5]), 8)
    assert e.shape == (2, 8) and torch.allclose(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert not torch.allclose(e[0], e[1]), "different steps need different embeddings"


def test_unet_keeps_the_shape_starts_at_zero_and_depends_on_t():
    torch.manual_seed(0)
    net = models.TimeUNet(width=8)
    x = torch.randn(3, 1, 28, 28)
    out = net(x, torch.tensor([0, 1, 2]))
    assert out.shape == x.shape and out.abs().max() == 0, (
        "zero-initialised output layer: eps_hat = 0 at the start"
    )
    torch.nn.init.normal_(net.conv_out.weight)
    a, b = net(x, torch.tensor([0, 0, 0])), net(x, torch.tensor([500, 500, 500]))
    assert not torch.allclose(a, b), "the time embedding must reach the output"
    with pytest.raises(ValueError, match="28, 28"):
        net(torch.randn(3, 784), torch.tensor([0, 0, 0]))


def test_ddpm_trains_through_fit():
    torch.manual_seed(0)
    ddpm = models.DDPM(models.TimeUNet(width=8), models.linear_betas(50))
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    history = fit(ddpm, x, steps=6, batch_size=32, progress=False, live_plot=False)
    assert math.isfinite(history.last("loss")) and ddpm.sample(2).shape == (2, 1, 28, 28)


def test_digit_classifier_gives_probabilities_and_128_features():
    clf = models.DigitClassifier(8)
    probs, feats = clf.probs_and_features(torch.rand(5, 1, 28, 28) * 2 - 1)
    assert probs.shape == (5, 10) and feats.shape == (5, 128)
    assert torch.allclose(probs.sum(1), torch.ones(5)), "softmax over the 10 classes"
    assert clf.training, "probs_and_features must give the module back in the mode it was in"


def test_digit_classifier_has_the_layers_of_lecture_08s_classifier():
    """Lecture 13 compares its DDPM with lecture 08's DCGAN through this module: it must be lecture 08's judge."""
    import json
    from pathlib import Path

    import torch.nn.functional as F
    from torch import nn

    cells = json.loads((Path(__file__).parents[1] / "lectures" / "08_gans.ipynb").read_text())["cells"]
    source = next(
        "".join(c["source"]) for c in cells if "class Classifier(nn.Module)" in "".join(c["source"])
    )
    namespace = {"torch": torch, "nn": nn, "F": F, "load_mnist": None, "device": "cpu"}
    exec(source, namespace)
    torch.manual_seed(0)
    theirs, ours = namespace["Classifier"](8), models.DigitClassifier(8)
    shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in ours.state_dict().items()}, (
        "layer names or shapes differ from lecture 08"
    )
    ours.load_state_dict(theirs.state_dict())
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    for a, b in zip(theirs.probs_and_features(x), ours.probs_and_features(x)):
        assert torch.allclose(a, b), "same weights, different probabilities or features"
