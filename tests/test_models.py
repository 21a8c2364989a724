"""Mathematical properties of the reference building blocks in utils.models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal

from utils import models
from utils.models import (
    VAE,
    BernoulliDecoder,
    ConvDecoder,
    ConvEncoder,
    GaussianEncoder,
    bernoulli_log_likelihood,
    gaussian_kl,
    iwae_bound,
    log_normal,
    log_standard_normal,
    reparameterize,
)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# Gaussian KL
# ----------------------------------------------------------------------------------------------
def test_gaussian_kl_is_zero_at_the_prior():
    kl = gaussian_kl(torch.zeros(4, 50), torch.zeros(4, 50))
    assert kl.shape == (4,), f"KL must be summed over the latent dim, giving [B]; got {tuple(kl.shape)}"
    assert torch.all(kl == 0), f"KL(N(0, I) || N(0, I)) must be exactly 0, got {kl}"


def test_gaussian_kl_is_positive_away_from_the_prior():
    g = _gen(1)
    mu, logvar = torch.randn(256, 5, generator=g), torch.randn(256, 5, generator=g)
    kl = gaussian_kl(mu, logvar)
    assert torch.all(kl > 0), f"KL must be > 0 whenever q differs from the prior; min was {kl.min():.3g}"


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    g = _gen(2)
    mu = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.3, -0.7, 0.1]], dtype=torch.float64)
    z = reparameterize(mu, logvar, generator=g, k=200_000)  # [k, 1, 3]
    terms = log_normal(z, mu, logvar) - log_standard_normal(z)  # [k, 1]
    mc, se = terms.mean(), terms.std() / math.sqrt(terms.shape[0])
    exact = gaussian_kl(mu, logvar)[0]
    assert abs(mc - exact) < 4 * se, (
        f"closed-form KL {exact:.4f} disagrees with E_q[log q - log p] = {mc:.4f} +- {se:.4f}; "
        "check the 1/2, the -1 and that logvar is a log *variance*"
    )


def test_gaussian_kl_matches_torch_distributions():
    g = _gen(3)
    mu, logvar = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    q = Normal(mu, torch.exp(0.5 * logvar))
    expected = torch.distributions.kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected, msg="closed-form KL is wrong")


# ----------------------------------------------------------------------------------------------
# Densities
# ----------------------------------------------------------------------------------------------
def test_log_normal_matches_torch_distributions():
    g = _gen(4)
    x, mu, logvar = (torch.randn(3, 7, 5, generator=g) for _ in range(3))
    expected = Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
    actual = log_normal(x, mu, logvar)
    assert actual.shape == (3, 7), f"log_normal must sum over the last dim only; got {tuple(actual.shape)}"
    torch.testing.assert_close(actual, expected, msg="log_normal differs from torch.distributions.Normal")


def test_log_normal_defaults_give_the_standard_normal():
    x = torch.randn(6, 4, generator=_gen(5))
    expected = Normal(0.0, 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(log_normal(x), expected, msg="log_normal(x) must be log N(x; 0, I)")
    torch.testing.assert_close(log_standard_normal(x), expected, msg="log_standard_normal is wrong")


def test_log_normal_broadcasts_samples_against_parameters():
    g = _gen(6)
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    z = torch.randn(4, 5, 3, generator=g)  # [k, B, D]
    expected = torch.stack([log_normal(z[i], mu, logvar) for i in range(4)])
    torch.testing.assert_close(log_normal(z, mu, logvar), expected, msg="[k,B,D] vs [B,D] broadcast wrong")


@CUDA
def test_log_normal_with_number_parameters_can_be_captured_in_a_cuda_graph():
    x = torch.randn(4, 3, device="cuda")
    expected = log_normal(x, 0.5, -1.0)  # also the warm-up run before capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = log_normal(x, 0.5, -1.0)
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(
        captured, expected, msg="numbers as mu/logvar must be made on the device, not copied from the host"
    )


def test_bernoulli_log_likelihood_matches_the_explicit_formula():
    g = _gen(7)
    logits = torch.randn(6, 10, generator=g, dtype=torch.float64)
    x = torch.bernoulli(torch.full((6, 10), 0.5, dtype=torch.float64), generator=g)
    p = torch.sigmoid(logits)
    expected = (x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum(-1)
    torch.testing.assert_close(
        bernoulli_log_likelihood(logits, x), expected, msg="sum x log p + (1-x) log(1-p)"
    )
    torch.testing.assert_close(
        bernoulli_log_likelihood(logits, x), Bernoulli(logits=logits).log_prob(x).sum(-1), msg="vs torch"
    )


def test_bernoulli_log_likelihood_is_stable_for_large_logits():
    logits = torch.tensor([[200.0, -200.0, 200.0, -200.0]])
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    ll = bernoulli_log_likelihood(logits, x)
    assert torch.isfinite(ll).all(), f"log-likelihood overflowed for logits of +-200: {ll}"
    torch.testing.assert_close(ll, torch.tensor([-400.0]), msg="right pixels cost 0, wrong ones |logit|")


def test_bernoulli_log_likelihood_broadcasts_over_samples_and_accepts_uint8_data():
    g = _gen(8)
    logits = torch.randn(3, 5, 784, generator=g)  # [k, B, X]
    x = torch.bernoulli(torch.full((5, 784), 0.3), generator=g)
    ll = bernoulli_log_likelihood(logits, x.to(torch.uint8))
    assert ll.shape == (3, 5), f"expected [k, B] = (3, 5), got {tuple(ll.shape)}"
    torch.testing.assert_close(ll[1], bernoulli_log_likelihood(logits[1], x), msg="sample 1 differs")


def test_bernoulli_likelihood_sums_to_one_over_all_binary_images():
    logits = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    images = torch.tensor([[(i >> b) & 1 for b in range(3)] for i in range(8)], dtype=torch.float64)
    total = bernoulli_log_likelihood(logits, images).exp().sum()
    assert abs(total - 1) < 1e-12, f"p(x) over all 8 binary 3-pixel images sums to {total}, not 1"


# ----------------------------------------------------------------------------------------------
# Reparameterization
# ----------------------------------------------------------------------------------------------
def test_reparameterize_passes_gradients_to_mu_and_logvar():
    mu = torch.zeros(4, 3, requires_grad=True)
    logvar = torch.zeros(4, 3, requires_grad=True)
    reparameterize(mu, logvar, generator=_gen(9)).pow(2).sum().backward()
    assert mu.grad is not None and logvar.grad is not None, "the sample must be a differentiable function"
    assert logvar.grad.abs().sum() > 0, "no gradient reaches logvar: is the noise scaled by exp(logvar/2)?"


def test_reparameterize_samples_have_the_right_mean_and_variance():
    mu, logvar = torch.tensor([1.0, -2.0]), torch.tensor([math.log(4.0), math.log(0.25)])
    z = reparameterize(mu, logvar, generator=_gen(10), k=100_000)  # [k, 2]
    torch.testing.assert_close(z.mean(0), mu, atol=0.03, rtol=0, msg="sample mean is not mu")
    torch.testing.assert_close(
        z.var(0), torch.tensor([4.0, 0.25]), atol=0, rtol=0.03, msg="sample variance is not exp(logvar)"
    )


def test_reparameterize_with_k_adds_a_leading_sample_dim_and_is_reproducible():
    mu, logvar = torch.zeros(5, 2), torch.zeros(5, 2)
    a = reparameterize(mu, logvar, generator=_gen(11), k=7)
    b = reparameterize(mu, logvar, generator=_gen(11), k=7)
    assert a.shape == (7, 5, 2), f"k samples must stack in front: expected (7, 5, 2), got {tuple(a.shape)}"
    assert torch.equal(a, b), "the same generator seed must give the same samples"
    assert not torch.equal(a[0], a[1]), "the k samples must be independent draws, not copies"


# ----------------------------------------------------------------------------------------------
# IWAE bound
# ----------------------------------------------------------------------------------------------
def test_iwae_bound_with_one_sample_is_the_log_weight():
    log_w = torch.randn(1, 9, generator=_gen(12))
    torch.testing.assert_close(iwae_bound(log_w), log_w[0], msg="with k=1 the bound is log w itself")


def test_iwae_bound_is_at_least_the_mean_log_weight():
    log_w = 3 * torch.randn(10, 50, generator=_gen(13))
    gap = iwae_bound(log_w) - log_w.mean(0)
    assert torch.all(gap >= -1e-6), f"Jensen: log mean w >= mean log w, but the gap went to {gap.min():.3g}"


def test_iwae_bound_handles_very_negative_log_weights():
    log_w = torch.tensor([[-1000.0], [-1001.0]])
    expected = -1000.0 + math.log((1 + math.exp(-1)) / 2)
    bound = iwae_bound(log_w)
    assert torch.isfinite(bound).all(), "log (1/k) sum exp underflowed: use logsumexp"
    assert abs(bound.item() - expected) < 1e-3, f"expected {expected:.4f}, got {bound.item():.4f}"


def test_iwae_bound_along_another_dim():
    log_w = torch.randn(4, 6, generator=_gen(14))
    torch.testing.assert_close(iwae_bound(log_w.T, dim=1), iwae_bound(log_w), msg="dim argument ignored")


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------
def test_mlp_puts_activations_between_layers_only():
    net = models.MLP([4, 8, 8, 2])
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear], f"unexpected layers {kinds}"
    with pytest.raises(ValueError, match="at least"):
        models.MLP([4])


def test_mlp_starts_from_the_glorot_uniform_heuristic():
    net = models.MLP([300, 100, 10])
    for layer in (net[0], net[2]):
        limit = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= limit, "weights must lie in the Glorot-uniform range"
        assert layer.weight.abs().max() > 0.9 * limit, "weights look narrower than Glorot-uniform"
        assert torch.all(layer.bias == 0), "biases start at zero"


def test_default_vae_is_the_burda_et_al_architecture():
    vae = VAE()
    linears = [m for m in vae.encoder.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 200), (200, 200), (200, 100)]
    linears = [m for m in vae.decoder.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(50, 200), (200, 200), (200, 784)]
    assert sum(isinstance(m, nn.Tanh) for m in vae.modules()) == 4, "tanh hidden units as in Burda et al."


def test_encoders_and_decoders_handle_leading_sample_dims():
    x = torch.rand(3, 784)
    z = torch.randn(5, 3, 10)  # [k, B, D]
    for enc in (GaussianEncoder(784, (32,), 10), ConvEncoder(10, channels=(4, 8))):
        mu, logvar = enc(x)
        assert mu.shape == logvar.shape == (3, 10), f"{type(enc).__name__} gave {tuple(mu.shape)}"
    mu_img, _ = ConvEncoder(10, channels=(4, 8))(x.reshape(3, 1, 28, 28))
    assert mu_img.shape == (3, 10), "ConvEncoder must accept [B, 1, 28, 28] images"
    for dec in (BernoulliDecoder(10, (32,), 784), ConvDecoder(10, channels=(8, 4), hidden=16)):
        logits = dec(z)
        assert logits.shape == (5, 3, 784), f"{type(dec).__name__} gave {tuple(logits.shape)}"
        torch.testing.assert_close(logits[2], dec(z[2]), msg=f"{type(dec).__name__} mixes samples")


def test_conv_encoder_rejects_other_image_sizes():
    with pytest.raises(ValueError, match="784"):
        ConvEncoder(4)(torch.rand(2, 32, 32))


# ----------------------------------------------------------------------------------------------
# VAE
# ----------------------------------------------------------------------------------------------
def _tiny_vae(**kwargs) -> VAE:
    torch.manual_seed(0)
    return VAE(x_dim=784, hidden=(32,), z_dim=4, **kwargs)


def test_vae_loss_returns_finite_scalars_with_consistent_signs():
    out = _tiny_vae(k=3).loss(torch.rand(8, 784))
    assert set(out) == {"loss", "elbo", "kl", "rec"}, f"unexpected keys {sorted(out)}"
    for key, value in out.items():
        assert value.shape == (), f"{key} must be a scalar (per-example mean), got {tuple(value.shape)}"
        assert torch.isfinite(value), f"{key} is not finite: {value}"
    assert out["loss"].requires_grad, "loss must carry gradients"
    assert out["kl"] >= 0 and out["rec"] >= 0, "kl and rec are reported as non-negative nats"
    torch.testing.assert_close(out["loss"], -out["elbo"], msg="for bound='elbo', loss = -elbo")


def test_vae_loss_accepts_a_tuple_and_image_shaped_uint8_data():
    vae = _tiny_vae().eval()
    x = (torch.rand(6, 28, 28) > 0.5).to(torch.uint8)
    torch.manual_seed(1)
    a = vae.loss((x, torch.zeros(6)))["loss"]
    torch.manual_seed(1)
    b = vae.loss(x.reshape(6, 784).float())["loss"]
    torch.testing.assert_close(
        a, b, msg="a (x, labels) tuple of uint8 images must mean the same as x [B, 784]"
    )


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_vae_loss_rejects_raw_0_to_255_images_with_a_clear_error(mode):
    vae = _tiny_vae().train(mode == "train")
    raw = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)  # MNIST as stored, not divided by 255
    with pytest.raises(ValueError, match="divide by 255"):
        vae.loss(raw)


def test_vae_iwae_loss_with_one_sample_equals_the_elbo_loss():
    x = torch.rand(8, 784)
    elbo_model, iwae_model = _tiny_vae(k=1, bound="elbo"), _tiny_vae(k=1, bound="iwae")
    torch.manual_seed(2)
    a = elbo_model.loss(x)["loss"]
    torch.manual_seed(2)
    b = iwae_model.loss(x)["loss"]
    torch.testing.assert_close(a, b, msg="with k=1 and the same noise the IWAE and ELBO losses must agree")


def test_vae_iwae_loss_is_below_the_elbo_loss_for_the_same_samples():
    vae = _tiny_vae(k=10, bound="iwae")
    out = vae.loss(torch.rand(8, 784))
    assert out["loss"] <= -out["elbo"] + 1e-5, "the IWAE bound must be >= the ELBO from the same samples"


def test_vae_analytic_kl_variant_reports_elbo_as_minus_rec_minus_kl():
    out = _tiny_vae(k=2, analytic_kl=True).loss(torch.rand(8, 784))
    torch.testing.assert_close(out["elbo"], -(out["rec"] + out["kl"]), msg="elbo = -(rec + kl)")


def test_vae_rejects_bad_options():
    with pytest.raises(ValueError, match="bound"):
        VAE(bound="tight")
    with pytest.raises(ValueError, match="k="):
        VAE(k=0)
    with pytest.raises(ValueError, match="analytic_kl"):
        VAE(bound="iwae", analytic_kl=True)


class _RecordingEncoder(nn.Module):
    """A Gaussian encoder that remembers the data it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = GaussianEncoder(784, (16,), 4)
        self.seen: torch.Tensor | None = None

    def forward(self, x):
        self.seen = x
        return self.inner(x)


def test_vae_binarizes_dynamically_in_training_mode_only():
    enc = _RecordingEncoder()
    vae = VAE(z_dim=4, hidden=(16,), encoder=enc)
    x = torch.full((4, 784), 0.5)
    vae.train().loss(x)
    first = enc.seen
    assert set(first.unique().tolist()) == {0.0, 1.0}, "training batches must be Bernoulli(x) samples"
    vae.loss(x)
    assert not torch.equal(first, enc.seen), "each use of a batch must draw a fresh binarization"
    vae.eval().loss(x)
    assert torch.equal(enc.seen, x), "in eval mode the data must be used as given"


def test_vae_log_weights_and_bounds_have_the_documented_shapes():
    vae = _tiny_vae()
    x = torch.bernoulli(torch.full((5, 784), 0.3))
    assert vae.log_weights(x, 7).shape == (7, 5), "log_weights(x, k) must be [k, B]"
    assert vae.elbo(x, k=3).shape == (5,) and vae.iwae(x, k=3).shape == (5,), "bounds must be [B]"
    assert vae.encode(x)[0].shape == (5, 4) and vae.decode(torch.zeros(2, 5, 4)).shape == (2, 5, 784)


def test_vae_sample_gives_probabilities_without_gradients():
    samples = _tiny_vae().sample(6, generator=_gen(15))
    assert samples.shape == (6, 784), f"sample(n) must be [n, 784], got {tuple(samples.shape)}"
    assert samples.min() >= 0 and samples.max() <= 1, "samples are pixel probabilities in [0, 1]"
    assert not samples.requires_grad, "samples are for looking at, not for backprop"
    torch.testing.assert_close(samples, _tiny_vae().sample(6, generator=_gen(15)), msg="not reproducible")


@pytest.mark.parametrize("decoder", ["mlp", "conv"])
def test_init_decoder_bias_starts_the_decoder_at_the_mean_image(decoder):
    x = (0.05 + 0.9 * torch.rand(1, 784, generator=_gen(17))).expand(32, 784)  # all the same "mean image"
    torch.manual_seed(0)
    dec = ConvDecoder(4, channels=(4, 2), hidden=8) if decoder == "conv" else None
    vae = VAE(hidden=(16,), z_dim=4, decoder=dec).init_decoder_bias(x)
    for layer in vae.decoder.modules():  # silence z so only the bias speaks
        if isinstance(layer, (nn.Linear, nn.ConvTranspose2d)):
            nn.init.zeros_(layer.weight)
    probs = vae.sample(3)
    torch.testing.assert_close(probs, x[:3], atol=1e-6, rtol=0, msg="sigmoid(bias) must be the mean image")
    with pytest.raises(ValueError, match="255"):
        vae.init_decoder_bias(255 * x)


@pytest.mark.parametrize("bound", ["elbo", "iwae"])
def test_vae_loss_decreases_under_adam(bound):
    torch.manual_seed(0)
    x = torch.bernoulli(torch.rand(1, 784).expand(32, 784).clamp(0.05, 0.95))  # one noisy prototype
    vae = _tiny_vae(k=4, bound=bound)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = vae.loss(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert end < start - 50, f"{bound} loss went from {start:.1f} to {end:.1f} nats in 40 Adam steps"


def test_vae_loss_traces_as_one_graph_for_compile_and_cuda_graphs():
    vae = _tiny_vae(k=3, bound="iwae")
    compiled = torch.compile(vae.loss, backend="eager", fullgraph=True)
    out = compiled(torch.rand(8, 784))  # fullgraph=True fails on .item(), data-dependent branches, ...
    assert torch.isfinite(out["loss"]), "compiled loss is not finite"


def test_vae_log_weights_estimate_the_exact_marginal_likelihood():
    # A VAE with a 1-D latent: p(x) = int p(x|z) N(z) dz is exact by quadrature on a fine grid.
    torch.manual_seed(3)
    vae = VAE(x_dim=3, hidden=(8,), z_dim=1).double().eval()
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    grid = torch.linspace(-12, 12, 48_001, dtype=torch.float64).reshape(-1, 1, 1)  # [G, 1, 1]
    with torch.no_grad():
        log_joint = bernoulli_log_likelihood(vae.decode(grid), x) + log_standard_normal(grid)  # [G, B]
        exact = torch.logsumexp(log_joint, 0) + math.log(grid[1, 0, 0] - grid[0, 0, 0])
        log_w = vae.log_weights(x, 20_000, generator=_gen(16))  # [k, B]
    estimate = iwae_bound(log_w)
    assert torch.allclose(estimate, exact, atol=0.02), (
        f"IS estimate {estimate.tolist()} vs exact log p(x) {exact.tolist()}: log_weights must be "
        "log p(x|z) + log p(z) - log q(z|x)"
    )
