"""utils.models.aae: the priors (sampler and density agree) and the AAE's training step."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from utils.models import aae as A
from utils.models.gan import discriminator_loss


@pytest.mark.parametrize("make", [A.standard_normal_prior, A.ring_prior, A.swiss_roll_prior])
def test_prior_density_integrates_to_one(make):
    prior = make()
    u = torch.linspace(-7, 7, 281, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1)  # [281, 281, 2]
    mass = prior.log_prob(grid).exp().sum() * (u[1] - u[0]) ** 2
    assert abs(float(mass) - 1) < 1e-3, f"{prior.name}: the density sums to {float(mass):.4f} on a grid"


def test_standard_normal_prior_is_log_n01():
    z = torch.randn(10, 2)
    expected = -0.5 * z.pow(2).sum(1) - math.log(2 * math.pi)
    assert torch.allclose(A.standard_normal_prior(2).log_prob(z), expected, atol=1e-5)


@pytest.mark.parametrize("make", [A.ring_prior, A.swiss_roll_prior])
def test_samples_follow_the_density(make):
    prior = make()
    z = prior.sample(40_000, torch.Generator().manual_seed(0))
    # E_p[log p(z)] estimated from samples, against the same mean by quadrature on a grid.
    u = torch.linspace(-7, 7, 281, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1)
    lp = prior.log_prob(grid)
    exact = float((lp.exp() * lp).sum() * (u[1] - u[0]) ** 2)
    est = prior.log_prob(z.double())
    assert abs(float(est.mean()) - exact) < 4 * float(est.std()) / 200, "sampler and log_prob disagree"


def test_ring_prior_labels_name_the_nearest_mean():
    prior = A.ring_prior(10, radius=4.0, std=0.1)
    z, k = prior.sample(500, torch.Generator().manual_seed(1), return_labels=True)
    assert torch.equal(torch.cdist(z, prior.means).argmin(1), k)


def test_prior_refuses_a_wrong_latent_size():
    with pytest.raises(ValueError, match="2-D"):
        A.ring_prior().log_prob(torch.zeros(3, 5))


def _toy_aae(seed: int = 0) -> A.AAE:
    torch.manual_seed(seed)
    return A.AAE.mlp(A.ring_prior(), hidden=(16,), x_dim=12, adversarial_weight=2.0)


def test_discriminator_step_does_not_reach_the_encoder():
    aae = _toy_aae()
    arrivals = []
    hooks = [p.register_hook(lambda g: arrivals.append(1)) for p in aae.encoder.parameters()]
    x = torch.rand(8, 12)
    opts = {"ae": torch.optim.SGD([*aae.encoder.parameters(), *aae.decoder.parameters()], 0.1),
            "disc": torch.optim.SGD(aae.discriminator.parameters(), 0.1)}  # fmt: skip
    aae.training_step(x, opts)
    for h in hooks:
        h.remove()
    assert len(arrivals) == len(list(aae.encoder.parameters())), (
        "gradients reached the encoder more than once per step: are the codes detached in D's loss?"
    )


def test_training_step_is_d_first_then_reconstruction_plus_weighted_adversarial():
    aae, twin = _toy_aae(), _toy_aae()
    aae.binarize = twin.binarize = False
    x = torch.rand(8, 12)
    sgd = {"ae": torch.optim.SGD([*aae.encoder.parameters(), *aae.decoder.parameters()], 0.1),
           "disc": torch.optim.SGD(aae.discriminator.parameters(), 0.1)}  # fmt: skip
    torch.manual_seed(5)
    aae.training_step(x, sgd)
    # By hand on the twin: the same prior draws (same seed), D's step, then the autoencoder's.
    torch.manual_seed(5)
    z_prior = twin.prior.sample(8)
    z = twin.encoder(x)
    d_loss = discriminator_loss(twin.discriminator(z_prior), twin.discriminator(z.detach()))
    grads = torch.autograd.grad(d_loss, list(twin.discriminator.parameters()))
    with torch.no_grad():
        for p, g in zip(twin.discriminator.parameters(), grads):
            p -= 0.1 * g
    rec = nn.functional.binary_cross_entropy_with_logits(twin.decoder(z), x, reduction="sum") / 8
    adv = nn.functional.softplus(-twin.discriminator(z)).mean()
    ae_params = [*twin.encoder.parameters(), *twin.decoder.parameters()]
    grads = torch.autograd.grad(rec + 2.0 * adv, ae_params)
    with torch.no_grad():
        for p, g in zip(ae_params, grads):
            p -= 0.1 * g
    for a, b in zip(aae.parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6), "one step differs from D-then-(rec + w * -log D(z)) by hand"


def test_training_step_needs_both_optimizers():
    aae = _toy_aae()
    with pytest.raises(KeyError, match="'ae' and 'disc'"):
        aae.training_step(torch.rand(4, 12), {"disc": torch.optim.SGD(aae.discriminator.parameters(), 0.1)})


def test_fit_trains_the_aae_and_reconstruction_improves():
    from utils.train import fit

    torch.manual_seed(0)
    x = (torch.rand(256, 1, 12) < torch.linspace(0.1, 0.9, 12)).float().squeeze(1)
    aae = A.AAE.mlp(A.standard_normal_prior(2), hidden=(32,), x_dim=12)
    before = A.reconstruction_nats(aae.decode, aae.encode, x)
    history = fit(aae, x, epochs=30, batch_size=64, optimizer=A.aae_optimizers(aae, lr=3e-3),
                  progress=False, live_plot=False)  # fmt: skip
    after = A.reconstruction_nats(aae.decode, aae.encode, x)
    assert after < before - 1.0, f"reconstruction did not improve: {before:.2f} -> {after:.2f} nats"
    assert {"rec", "adv", "d_loss", "d_prior", "d_code"} <= set(history.keys())


def test_aae_refuses_raw_uint8_pixels():
    aae = _toy_aae()
    with pytest.raises(ValueError, match="divide uint8"):
        aae.loss(torch.full((2, 12), 255.0))


def test_reconstruction_nats_uses_the_first_item_of_a_tuple_code():
    dec = nn.Linear(2, 12)
    x = torch.ones(3, 12)
    a = A.reconstruction_nats(dec, lambda x: (torch.zeros(len(x), 2), None), x)
    b = A.reconstruction_nats(dec, lambda x: torch.zeros(len(x), 2), x)
    assert a == pytest.approx(b)
    assert a == pytest.approx(float(nn.functional.softplus(-dec.bias.detach()).sum()), rel=1e-5)


def test_sample_decodes_prior_draws_into_pixel_probabilities():
    aae = _toy_aae()
    g = torch.Generator().manual_seed(3)
    out = aae.sample(5, generator=g)
    z = aae.prior.sample(5, torch.Generator().manual_seed(3))
    assert out.shape == (5, 12) and torch.allclose(out, torch.sigmoid(aae.decode(z)).detach())


def test_loss_reports_both_players_without_a_step():
    aae = _toy_aae()
    before = [p.clone() for p in aae.parameters()]
    out = aae.loss(torch.rand(6, 12))
    assert {"loss", "rec", "adv", "d_loss"} <= set(out)
    assert torch.allclose(out["loss"], out["rec"] + 2.0 * out["adv"])
    assert all(torch.equal(a, b) for a, b in zip(before, aae.parameters())), "loss must not change parameters"
