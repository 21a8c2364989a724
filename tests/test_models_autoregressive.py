"""Properties of the autoregressive reference models in utils.models.autoregressive (lecture 05)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from utils.models import (
    MADE,
    CharRNN,
    MaskedConv2d,
    PixelCNN,
    ancestral_sample,
    made_degrees,
    made_masks,
    raster_mask,
)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global random state (models draw their initial weights from it)."""
    torch.manual_seed(0)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _all_binary(dim: int) -> torch.Tensor:
    """Every binary vector of length dim, [2^dim, dim]."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=dim)))


def _jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """d fn(x)[d] / d x[j] for one example x [D]: [D_out, D_in]."""
    return torch.autograd.functional.jacobian(lambda v: fn(v[None])[0].flatten(), x)


def _randomise(model: torch.nn.Module, scale: float = 1.0, seed: int = 0) -> torch.nn.Module:
    """Large random weights, so that no conditional is close to 1/2 by accident."""
    g = _gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


# ------------------------------------------------------------------------------------------- MADE
def test_made_output_d_depends_only_on_inputs_before_d_in_the_ordering():
    made = _randomise(MADE(dim=10, hidden=(32, 32), num_masks=3, order_agnostic=True, seed=1, direct=True))
    made = made.double()
    x = torch.rand(10, dtype=torch.float64, generator=_gen(1))
    for k in range(3):
        jac = _jacobian(lambda v, k=k: made(v, k), x)  # [D, D]
        position = torch.empty(10, dtype=torch.long)
        position[made.orders[k]] = torch.arange(10)
        allowed = position[None, :] < position[:, None]  # allowed[d, j]: j comes before d
        assert torch.all(jac[~allowed] == 0), (
            f"mask {k}: output d depends on an input that is not before d in the ordering "
            "(an output mask with >= instead of >, or masks built from the wrong order)"
        )
        assert (jac[allowed] != 0).float().mean() > 0.5, f"mask {k}: most allowed connections are missing"


def test_a_non_strict_output_mask_lets_each_output_see_its_own_input():
    degrees = made_degrees(6, [16], generator=_gen(2))
    masks = made_masks(degrees)
    wrong_output = (degrees[0][:, None] >= degrees[-1][None, :]).float()  # the off-by-one mistake
    reach_ok = (masks[1] @ masks[0]) > 0  # [D, D]: a path from input j to output d
    reach_wrong = (wrong_output @ masks[0]) > 0
    assert not reach_ok.diagonal().any(), "with the strict output mask no output may reach its own input"
    assert reach_wrong.diagonal().any(), "the >= mutant should connect some output to its own input"


def test_made_masks_follow_the_degree_rules():
    order = torch.randperm(7, generator=_gen(3))
    degrees = made_degrees(7, [20, 15], order=order, generator=_gen(3))
    assert degrees[0][order].tolist() == list(range(1, 8)), "input order[i] must get degree i + 1"
    for below, layer in zip(degrees[:-1], degrees[1:]):
        assert layer.min() >= below.min() and layer.max() <= 6, (
            "hidden degrees must lie in [min below, D - 1]"
        )
    masks = made_masks(degrees)
    assert torch.equal(masks[0], (degrees[1][:, None] >= degrees[0][None, :]).float()), "hidden rule is >="
    assert torch.equal(masks[-1], (degrees[0][:, None] > degrees[-1][None, :]).float()), "output rule is >"
    assert [tuple(m.shape) for m in masks] == [(20, 7), (15, 20), (7, 15)], "masks are [out, in] like weights"


def test_even_connectivity_uses_every_allowed_degree():
    degrees = made_degrees(5, [8], connectivity="even")
    assert sorted(set(degrees[1].tolist())) == [1, 2, 3, 4], "even degrees must cycle through 1..D-1"


def test_made_probabilities_of_all_binary_vectors_sum_to_one():
    for masks, agnostic in ((1, False), (4, True)):
        made = MADE(dim=8, hidden=(16,), num_masks=masks, order_agnostic=agnostic, seed=4, direct=agnostic)
        made = _randomise(made, 2.0)
        total = made.log_prob(_all_binary(8)).double().exp().sum()
        assert abs(total - 1) < 1e-5, f"{masks} mask(s): sum over 2^8 vectors of p(x) = {total:.6f}, not 1"


def test_made_samples_have_the_frequencies_of_its_probabilities():
    made = _randomise(MADE(dim=3, hidden=(8,), num_masks=2, order_agnostic=True, seed=5), 1.5, seed=5)
    n = 40_000
    samples = made.sample(n, generator=_gen(5), mask_index=1)  # [n, 3], the second (random) order
    codes = (samples * torch.tensor([4.0, 2.0, 1.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=8).double() / n
    p = made.log_prob(_all_binary(3), mask_index=1).double().exp()
    se = (p * (1 - p) / n).sqrt()
    assert torch.all((freq - p).abs() < 5 * se + 1e-4), (
        f"sample frequencies {freq.tolist()} disagree with exp(log_prob) {p.tolist()}: the sampler fills "
        "positions in another order than the masks assume, or draws from the wrong conditional"
    )


def test_made_mask_index_as_a_tensor_picks_the_same_mask_as_an_int():
    made = _randomise(MADE(dim=6, hidden=(12,), num_masks=3, order_agnostic=True, direct=True))
    x = torch.bernoulli(torch.full((5, 6), 0.5), generator=_gen(14))
    for k in range(3):  # the training step draws k on the device; it must select the same mask set
        assert torch.equal(made(x, k), made(x, torch.tensor(k))), f"mask {k}: tensor and int index disagree"


def test_made_refuses_bad_input():
    made = MADE(dim=4, hidden=(8,))
    with pytest.raises(ValueError, match="binary"):
        made.log_prob(torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match="last dimension"):
        made(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="permutation"):
        made_degrees(4, [8], order=[0, 1, 1, 2])
    with pytest.raises(ValueError, match="num_masks"):
        MADE(dim=4, num_masks=0)
    with pytest.raises(ValueError, match="connectivity"):
        made_degrees(4, [8], connectivity="dense")


# ---------------------------------------------------------------------------------------- PixelCNN
def test_type_a_hides_the_centre_and_type_b_shows_it():
    assert raster_mask(3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]], (
        "type A: rows above, left of centre"
    )
    assert raster_mask(3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]], "type B adds the centre"
    x = torch.rand(1, 1, 5, 5, generator=_gen(6))
    for kind, sees_centre in (("A", False), ("B", True)):
        conv = _randomise(MaskedConv2d(1, 1, 3, kind), seed=6).double()
        jac = _jacobian(conv, x[0].double()).view(25, 25)
        assert (jac[12, 12] != 0) == sees_centre, f"type {kind}: output (2, 2) seeing input (2, 2) is wrong"
        assert torch.all(jac[12, 13:] == 0), f"type {kind}: output (2, 2) sees a later pixel"


def test_pixelcnn_pixel_depends_only_on_earlier_pixels_in_raster_order():
    model = PixelCNN(channels=8, blocks=2, kernel=3, side=6).double()
    jac = _jacobian(model, torch.rand(1, 36, dtype=torch.float64, generator=_gen(7))[0])  # [36, 36]
    later_or_self = torch.ones(36, 36).triu().bool()  # [i, j]: j >= i
    assert torch.all(jac[later_or_self] == 0), (
        "a pixel's logit depends on itself or a later pixel (type B first?)"
    )


def test_a_type_b_first_layer_lets_a_pixel_see_itself():
    model = PixelCNN(channels=8, blocks=1, kernel=3, side=5).double()
    model.first.mask.copy_(raster_mask(7, "B").expand_as(model.first.mask))
    jac = _jacobian(model, torch.rand(25, dtype=torch.float64, generator=_gen(8)))
    assert torch.all(jac.diagonal() != 0), "with a type-B first layer every pixel should see itself"


def test_the_plain_pixelcnn_has_a_blind_spot_above_right():
    model = PixelCNN(channels=8, blocks=6, kernel=3, side=12).double()
    jac = _jacobian(model, torch.rand(144, dtype=torch.float64, generator=_gen(9)))
    row = jac[6 * 12 + 2].view(12, 12)  # the logit of pixel (6, 2)
    assert row[5, 2] != 0 and row[6, 1] != 0, "the pixels just above and just left must be seen"
    assert row[5, 11] == 0, "pixel (5, 11) comes earlier but should be in the stacked masks' blind spot"


def test_pixelcnn_probabilities_of_all_binary_images_sum_to_one():
    model = _randomise(PixelCNN(channels=4, blocks=1, kernel=3, side=3), 0.7, seed=10)
    total = model.log_prob(_all_binary(9)).double().exp().sum()
    assert abs(total - 1) < 1e-5, f"sum of p(x) over all 2^9 images of 3 x 3 pixels is {total:.6f}, not 1"


def test_pixelcnn_samples_match_its_probabilities():
    model = _randomise(PixelCNN(channels=4, blocks=1, kernel=3, side=2), 0.7, seed=11)
    n = 40_000
    codes = (model.sample(n, generator=_gen(11)) * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / n
    p = model.log_prob(_all_binary(4)).double().exp()
    assert torch.all((freq - p).abs() < 5 * (p * (1 - p) / n).sqrt() + 1e-4), "samples disagree with log_prob"


def test_pixelcnn_refuses_bad_input():
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 1, 4, "A")
    with pytest.raises(ValueError, match=r"\[B, 784\]"):
        PixelCNN(channels=4, blocks=0)(torch.zeros(2, 700))
    with pytest.raises(ValueError, match="binary"):
        PixelCNN(channels=4, blocks=0).log_prob(torch.full((1, 784), 0.3))


def test_ancestral_sample_keeps_given_entries_and_refuses_repeats():
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    out = ancestral_sample(lambda v: torch.full_like(v, 30.0), x, [2, 3])  # p(1) = 1 at every position
    assert out.tolist() == [[1.0, 0.0, 1.0, 1.0]], "given entries must stay, filled ones follow the model"
    with pytest.raises(ValueError, match="distinct"):
        ancestral_sample(lambda v: v, x, [1, 1])


# ---------------------------------------------------------------------------------------- CharRNN
def test_char_model_probabilities_of_all_continuations_sum_to_one():
    torch.manual_seed(12)
    model = CharRNN(vocab_size=3, embed=4, hidden=8, layers=1)
    seqs = torch.tensor([[0, *rest] for rest in itertools.product(range(3), repeat=3)])  # [27, 4]
    total = sum(math.exp(-model.nll(s)[0]) for s in seqs)
    assert abs(total - 1) < 1e-5, f"p(c_2..c_4 | c_1) over all 27 continuations sums to {total:.6f}"


def test_char_model_nll_does_not_depend_on_the_chunk_and_matches_the_loss():
    torch.manual_seed(13)
    model = CharRNN(vocab_size=5, embed=4, hidden=8, layers=2)
    ids = torch.randint(0, 5, (40,), generator=_gen(13))
    whole, n = model.nll(ids, chunk=1000)
    pieces, _ = model.nll(ids, chunk=7)
    assert abs(whole - pieces) < 1e-4, f"chunk 7 gives {pieces:.5f}, one chunk {whole:.5f}: state not carried"
    mean_loss = model.loss(ids[None])["loss"].item()
    assert abs(whole / n - mean_loss) < 1e-5, "loss (mean nats per char) and nll / n must agree"


def test_char_model_sampling_refuses_bad_input():
    model = CharRNN(vocab_size=4, embed=4, hidden=8, layers=1)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(torch.tensor([0]), 5, temperature=0.0)
    with pytest.raises(ValueError, match="non-empty"):
        model.sample(torch.tensor([], dtype=torch.long), 5)
    assert model.sample(torch.tensor([1, 2]), 6, generator=_gen(0)).shape == (6,), "n new ids"
