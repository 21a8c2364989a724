"""utils.widgets.LatentMapComparison, headless: move z from Python and read back each panel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.widgets import LatentMapComparison, MapPanel


def _log_n01(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * z.pow(2).sum(-1) - math.log(2 * math.pi)


@pytest.fixture
def panels():
    w = torch.randn(2, 784, generator=torch.Generator().manual_seed(0))
    codes = torch.tensor([[0.0, 0.0], [2.0, 2.0], [-4.9, 4.9], [9.0, 9.0]])  # the last lies off the map

    def sample(n):
        return torch.full((n, 2), 1.5)

    return {
        "a": MapPanel(
            lambda z: torch.sigmoid(z @ w), _log_n01, codes=codes, labels=torch.tensor([0, 1, 2, 3])
        ),
        "b": MapPanel(lambda z: torch.sigmoid(-(z @ w)), _log_n01, sample_prior=sample),
    }


def test_every_panel_decodes_the_shared_z(panels):
    view = LatentMapComparison(panels, resolution=40)
    view.set_z([1.0, -0.5])
    w_img = panels["a"].decode(torch.tensor([[1.0, -0.5]]))[0].reshape(28, 28).numpy()
    assert np.allclose(view.last_images["a"], w_img, atol=1e-6)
    assert np.allclose(view.last_images["b"], 1 - w_img, atol=1e-5)
    assert view.log_density["a"] == pytest.approx(-0.5 * 1.25 - math.log(2 * math.pi), abs=1e-6)


def test_a_slider_moves_z_and_redraws(panels):
    view = LatentMapComparison(panels, resolution=40)
    before = view.last_images["a"].copy()
    view.sliders[0].value = 2.0
    assert view.z.tolist() == [2.0, 0.0]
    assert np.abs(view.last_images["a"] - before).max() > 0, "moving z_1 must redraw the decode"


def test_map_shows_density_codes_and_the_cross(panels):
    view = LatentMapComparison(panels, resolution=50, bounds=(-5, 5, -5, 5))
    view.set_z([-2.0, 3.0])
    m = view.last_maps["b"]
    assert m.shape == (50, 50, 3)
    centre, corner = m[25, 25], m[1, 48]
    assert centre.sum() < corner.sum(), "the density must shade the map where the prior is high (darker)"
    row, col = int((5 - 3.0) / 10 * 50), int((-2.0 + 5) / 10 * 50)
    assert np.allclose(m[row, col], [0.9, 0.05, 0.05]), "the red cross must mark z (z_2 upwards)"
    a = view.last_maps["a"]
    assert np.allclose(a[25, 25], [31 / 255, 119 / 255, 180 / 255], atol=1e-6), "code (0, 0) with label 0"
    assert np.allclose(a[0, 0], [44 / 255, 160 / 255, 44 / 255], atol=1e-6), (
        "code (-4.9, 4.9) at the top left"
    )


def test_prior_button_sets_z(panels):
    view = LatentMapComparison(panels, resolution=20)
    view.buttons[0].click()
    assert view.z.tolist() == [1.5, 1.5]


def test_bad_inputs_are_refused(panels):
    with pytest.raises(ValueError, match="at least one panel"):
        LatentMapComparison({})
    view = LatentMapComparison(panels, resolution=20)
    with pytest.raises(ValueError, match="2-D latent"):
        view.set_z([1.0, 2.0, 3.0])
    bad = dict(panels, c=MapPanel(panels["a"].decode, _log_n01, codes=torch.zeros(3, 2), labels=[0, 1]))
    with pytest.raises(ValueError, match="one label per code"):
        LatentMapComparison(bad, resolution=20)
