"""utils.widgets, headless: set slider values from Python and read back what the explorer shows."""

from __future__ import annotations

import io
import math
import struct

import numpy as np
import pytest
import torch

from utils import widgets as W

LATENT = 20


@pytest.fixture
def weights() -> torch.Tensor:
    return torch.randn(LATENT, 784, generator=torch.Generator().manual_seed(0)) * 0.5


@pytest.fixture
def decode(weights):
    """A deterministic linear decoder: z [B, 20] -> probabilities [B, 784]."""
    return lambda z: torch.sigmoid(z @ weights)


@pytest.fixture
def encode(weights):
    """A linear 'encoder' returning (mean, logvar) like utils.models.GaussianEncoder."""
    return lambda x: (x @ weights.T / 100.0, torch.zeros(x.shape[0], LATENT))


@pytest.fixture
def examples() -> torch.Tensor:
    return torch.rand(12, 784, generator=torch.Generator().manual_seed(1))


def expected_image(decode, z: torch.Tensor) -> np.ndarray:
    return decode(z[None]).reshape(28, 28).numpy()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "the image widget should hold PNG bytes"
    return struct.unpack(">II", data[16:24])


# --- the slider explorer -----------------------------------------------------------------------


def test_initial_image_is_the_decode_of_zero(decode):
    explorer = W.LatentExplorer(decode, LATENT)
    assert torch.equal(explorer.z, torch.zeros(LATENT))
    assert np.allclose(explorer.last_image, expected_image(decode, torch.zeros(LATENT)), atol=1e-6)


def test_setting_a_slider_redraws_the_decode_of_the_new_z(decode):
    explorer = W.LatentExplorer(decode, LATENT)
    before = explorer.image.value
    explorer.sliders[3].value = 1.5
    assert explorer.z[3] == 1.5 and explorer.z.abs().sum() == 1.5, "slider 3 should set z[3] only"
    assert np.allclose(explorer.last_image, expected_image(decode, explorer.z), atol=1e-6), (
        "image != decode(z)"
    )
    assert explorer.image.value != before, "the shown PNG should change with the slider"


def test_image_is_shown_enlarged(decode):
    explorer = W.LatentExplorer(decode, LATENT, scale=3)
    assert png_size(explorer.image.value) == (84, 84), "28x28 at scale 3 should be an 84x84 PNG"


def test_selector_switches_which_dims_the_sliders_control(decode):
    explorer = W.LatentExplorer(decode, LATENT, n_sliders=8)
    explorer.sliders[0].value = 1.0
    explorer.block.value = 8
    assert explorer.dims_shown() == list(range(8, 16))
    assert explorer.sliders[0].value == 0.0, "after switching, slider 0 should show z[8]"
    explorer.sliders[0].value = -2.0
    assert explorer.z[8] == -2.0 and explorer.z[0] == 1.0, "dims outside the block must keep their values"
    explorer.block.value = 0
    assert explorer.sliders[0].value == 1.0, "switching back should show z[0] again"


def test_short_last_block_disables_spare_sliders(decode):
    explorer = W.LatentExplorer(decode, LATENT, n_sliders=8)
    explorer.show_block(16)
    assert [s.disabled for s in explorer.sliders] == [False] * 4 + [True] * 4
    explorer.sliders[6].value = 2.0
    assert explorer.z.abs().sum() == 0, "a disabled slider must not change z"


def test_no_selector_when_all_dims_fit(decode):
    explorer = W.LatentExplorer(decode, LATENT, n_sliders=32)
    assert explorer.block is None and len(explorer.sliders) == LATENT


def test_order_puts_chosen_dims_first(decode):
    explorer = W.LatentExplorer(decode, LATENT, n_sliders=2, order=[7, 3, 1])
    explorer.sliders[0].value = 0.5
    assert explorer.z[7] == 0.5 and explorer.sliders[0].description == "z[7]"
    with pytest.raises(ValueError, match="distinct latent dims"):
        W.LatentExplorer(decode, LATENT, order=[1, 1])


def test_buttons_reset_and_sample_z(decode):
    explorer = W.LatentExplorer(decode, LATENT)
    explorer.random_button.click()
    assert explorer.z.abs().sum() > 0 and explorer.sliders[0].value == pytest.approx(
        explorer.z[0].item(), abs=1e-6
    )
    assert np.allclose(explorer.last_image, expected_image(decode, explorer.z), atol=1e-6)
    explorer.zero_button.click()
    assert torch.equal(explorer.z, torch.zeros(LATENT))


def test_set_z_checks_its_length(decode):
    explorer = W.LatentExplorer(decode, LATENT)
    with pytest.raises(ValueError, match="latent_dim=20"):
        explorer.set_z(torch.zeros(3))


def test_example_picker_encodes_the_example(decode, encode, examples):
    explorer = W.LatentExplorer(
        decode, LATENT, encode=encode, examples=examples, labels=torch.arange(12) % 10
    )
    explorer.example_picker.value = 5
    mean = encode(examples[5:6])[0][0]
    assert torch.allclose(explorer.z, mean), "picking an example should set z to its encoder mean"
    assert np.allclose(explorer.last_example, examples[5].reshape(28, 28).numpy())
    assert np.allclose(explorer.last_image, expected_image(decode, mean), atol=1e-6)


def test_example_image_holds_a_valid_png_before_any_example_is_picked(decode, encode, examples):
    image_module = pytest.importorskip("PIL.Image")
    explorer = W.LatentExplorer(decode, LATENT, encode=encode, examples=examples, scale=3)
    assert explorer.example_picker.value is None and explorer.last_example is None, "no example picked yet"
    assert explorer.example_picker.label == "choose…", "the picker should say 'choose…', not show a blank box"
    data = explorer.example_image.value
    assert data, "the example image is empty, which a browser shows as a broken-image icon"
    picture = image_module.open(io.BytesIO(data))
    picture.load()  # raises on a truncated or corrupt PNG
    assert picture.size == png_size(explorer.image.value) == (84, 84), (
        f"the placeholder is {picture.size}; it should be as large as the decode (84x84 at scale 3)"
    )


def test_images_are_laid_out_at_their_own_pixel_size(decode_2d):
    explorer = W.LatentExplorer(decode_2d, 2, map_size=5, scale=3)
    for name, image in (("decode", explorer.image), ("latent map", explorer.map_widget)):
        width, height = png_size(image.value)
        shown = (image.layout.width, image.layout.height)
        assert shown == (f"{width}px", f"{height}px"), (
            f"the {name} image is laid out as {shown} but its PNG is {width}x{height}: it would be stretched"
        )


def test_examples_need_an_encoder(decode, examples):
    with pytest.raises(ValueError, match="encode="):
        W.LatentExplorer(decode, LATENT, examples=examples)


def test_module_decoders_and_logits(weights):
    torch.manual_seed(0)
    net = torch.nn.Linear(LATENT, 784).double()  # a float64 module: z must follow its dtype
    explorer = W.LatentExplorer(net, LATENT, output="logits")
    explorer.sliders[1].value = 1.0
    want = torch.sigmoid(net(explorer.z[None].double())).reshape(28, 28).detach().numpy()
    assert np.allclose(explorer.last_image, want, atol=1e-6), "output='logits' should show sigmoid(decode(z))"


def test_decoder_returning_a_distribution(weights):
    decode = lambda z: torch.distributions.Bernoulli(logits=z @ weights)  # noqa: E731
    explorer = W.LatentExplorer(decode, LATENT)
    assert np.allclose(explorer.last_image, 0.5), "a distribution's mean should be shown"


def test_continuous_update_can_be_forced_off(decode):
    explorer = W.LatentExplorer(decode, LATENT, continuous_update=False)
    assert not any(s.continuous_update for s in explorer.sliders)


def test_explorer_displays_as_a_widget(decode, monkeypatch):
    explorer = W.LatentExplorer(decode, LATENT)
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle, "the explorer should display its widget"
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **_: shown.extend(objs))
    explorer._ipython_display_()
    assert shown == [explorer.widget], "display(explorer) should display explorer.widget"


def test_a_small_decode_runs_on_one_thread_and_restores_the_count(weights, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # as on a 2-core machine, whatever this one has
    counts = []
    monkeypatch.setattr(torch, "set_num_threads", counts.append)

    def failing_decode(z):
        raise RuntimeError("decoder bug")

    with pytest.raises(ValueError, match="decoder bug"):
        W.decode_images(failing_decode, torch.zeros(1, LATENT))
    assert counts == [1, 2], f"set_num_threads calls {counts}: one thread for the decode, then 2 restored"


# --- bad input ---------------------------------------------------------------------------------


def test_wrong_image_shape_is_named(decode):
    with pytest.raises(ValueError, match=r"image_shape=\(10, 10\) needs 100"):
        W.LatentExplorer(decode, LATENT, image_shape=(10, 10))


def test_wrong_latent_dim_is_named(decode):
    with pytest.raises(ValueError, match="is latent_dim the decoder's latent size"):
        W.LatentExplorer(decode, 3)


def test_logits_passed_as_probabilities_are_named(weights):
    with pytest.raises(ValueError, match="output='logits'"):
        W.LatentExplorer(lambda z: z @ weights + 5.0, LATENT)


def test_bad_output_and_image_shape_arguments(decode):
    with pytest.raises(ValueError, match="'probs'"):
        W.LatentExplorer(decode, LATENT, output="sigmoid")
    with pytest.raises(ValueError, match="not an image shape"):
        W.LatentExplorer(decode, LATENT, image_shape=(784,))


# --- 2-D latents: the latent map -------------------------------------------------------------


@pytest.fixture
def decode_2d():
    w = torch.randn(2, 784, generator=torch.Generator().manual_seed(2))
    return lambda z: torch.sigmoid(z @ w)


def test_latent_map_tiles_decodes_over_the_square(decode_2d):
    grid = W.latent_map(decode_2d, n=5, r=2.0)
    assert grid.shape == (5 * 28, 5 * 28)
    tile = grid[28:56, 84:112]  # row 1 (z_2 = +1), column 3 (z_1 = +1)
    assert np.allclose(tile, expected_image(decode_2d, torch.tensor([1.0, 1.0])), atol=1e-6), "tile misplaced"


def test_explorer_with_2d_latent_marks_the_current_point(decode_2d):
    explorer = W.LatentExplorer(decode_2d, 2, slider_range=2.0, map_size=5)
    assert explorer.map_image.shape == (140, 140) and explorer.last_map.shape == (140, 140, 3)
    explorer.sliders[0].value = 2.0  # right-most column
    explorer.sliders[1].value = -2.0  # bottom row
    red = (explorer.last_map[..., 0] > 0.9) & (explorer.last_map[..., 1] < 0.3)
    rows, cols = np.nonzero(red)
    assert rows.min() >= 112 and cols.min() >= 112, "the mark should sit in the bottom-right tile"
    assert png_size(explorer.map_widget.value) == (140, 140)


def test_no_latent_map_for_higher_dimensions(decode):
    explorer = W.LatentExplorer(decode, LATENT)
    assert explorer.map_widget is None and explorer.last_map is None


# --- interpolation -----------------------------------------------------------------------------


def test_interpolation_endpoints_are_the_decoded_encodings(decode, encode, examples):
    explorer = W.InterpolationExplorer(decode, encode, examples[0], examples[1])
    z_a, z_b = encode(examples[:1])[0][0], encode(examples[1:2])[0][0]
    assert np.allclose(explorer.last_image, expected_image(decode, z_a), atol=1e-6), "t=0 should decode z_a"
    explorer.slider.value = 1.0
    assert np.allclose(explorer.last_image, expected_image(decode, z_b), atol=1e-6), "t=1 should decode z_b"
    explorer.slider.value = 0.5
    assert np.allclose(explorer.last_image, expected_image(decode, (z_a + z_b) / 2), atol=1e-6)


def test_interpolation_strip_holds_inputs_and_frames(decode, encode, examples):
    explorer = W.interpolation_widget(decode, encode, examples[0], examples[1], n_frames=6)
    assert explorer.strip.shape == (28 + 4, 8 * 30 + 2), "6 frames plus the two inputs, padded by 2"


def test_slerp_keeps_the_endpoints_and_the_norm(decode):
    unit_encode = lambda x: x  # noqa: E731  (inputs are latents already)
    e0, e1 = torch.eye(LATENT)[0], torch.eye(LATENT)[1]
    slerp = W.InterpolationExplorer(decode, unit_encode, e0, e1, path="slerp")
    assert torch.allclose(slerp.z_at(0.0), e0, atol=1e-6) and torch.allclose(slerp.z_at(1.0), e1, atol=1e-6)
    assert slerp.z_at(0.5).norm() == pytest.approx(1.0, abs=1e-6), (
        "slerp between unit vectors stays on the sphere"
    )
    linear = W.InterpolationExplorer(decode, unit_encode, e0, e1)
    assert linear.z_at(0.5).norm() == pytest.approx(math.sqrt(0.5), abs=1e-6)


def test_unknown_path_is_named(decode, encode, examples):
    with pytest.raises(ValueError, match="'linear' or 'slerp'"):
        W.InterpolationExplorer(decode, encode, examples[0], examples[1], path="cubic")


def test_explorer_interpolation_between_example_indices(decode, encode, examples):
    explorer = W.LatentExplorer(decode, LATENT, encode=encode, examples=examples)
    inter = explorer.interpolation(2, 3)
    assert torch.allclose(inter.z_a, encode(examples[2:3])[0][0])
    assert torch.allclose(inter.z_b, encode(examples[3:4])[0][0])


def test_uint8_examples_are_scaled_before_encoding(decode, encode):
    x = torch.full((2, 784), 255, dtype=torch.uint8)
    explorer = W.InterpolationExplorer(decode, encode, x[0], x[1])
    assert torch.allclose(explorer.z_a, encode(torch.ones(1, 784))[0][0]), "uint8 pixels should become [0, 1]"


# --- PNG encoding ------------------------------------------------------------------------------


def test_png_bytes_round_trip():
    image_module = pytest.importorskip("PIL.Image")
    grey = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    decoded = np.asarray(image_module.open(io.BytesIO(W.png_bytes(grey, scale=2))))
    assert decoded.shape == (6, 8)
    assert np.array_equal(decoded[::2, ::2], np.rint(grey * 255).astype(np.uint8))
    rgb = np.random.default_rng(0).random((5, 4, 3))
    assert np.array_equal(np.asarray(image_module.open(io.BytesIO(W.png_bytes(rgb)))), np.rint(rgb * 255))


def test_latent_map_png_shows_the_marked_map(decode_2d):
    image_module = pytest.importorskip("PIL.Image")
    explorer = W.LatentExplorer(decode_2d, 2, slider_range=2.0, map_size=4)
    explorer.sliders[0].value = 1.0
    shown = np.asarray(image_module.open(io.BytesIO(explorer.map_widget.value)).convert("RGB"))
    assert np.abs(shown.astype(float) - explorer.last_map * 255).max() <= 1.5, "the PNG should be last_map"


def test_works_with_the_course_vae():
    models = pytest.importorskip("utils.models")
    torch.manual_seed(0)
    vae = models.VAE(x_dim=784, hidden=(32,), z_dim=4)
    x = torch.rand(3, 784)
    explorer = W.LatentExplorer(vae.decode, 4, output="logits", encode=vae.encode, examples=x)
    explorer.show_example(2)
    mu = vae.encode(x[2:3])[0][0].detach()
    assert torch.allclose(explorer.z, mu, atol=1e-6), "z should be the VAE's encoder mean"
    want = torch.sigmoid(vae.decode(mu[None])).reshape(28, 28).detach().numpy()
    assert np.allclose(explorer.last_image, want, atol=1e-6)
