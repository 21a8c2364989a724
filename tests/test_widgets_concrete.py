"""utils.widgets.ConcreteExplorer, headless: move the temperature slider from Python and read back what is drawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.widgets import ConcreteExplorer
from utils.widgets.concrete import simplex_to_plane


def test_it_draws_at_the_start_and_samples_lie_on_the_simplex():
    explorer = ConcreteExplorer(n_samples=200)
    assert explorer.image.value[:4] == b"\x89PNG" and explorer.last["tau"] == pytest.approx(1.0)
    assert np.allclose(explorer.last["samples"].sum(1), 1.0) and np.allclose(
        explorer.last["codes"].sum(1), 1.0
    )


def test_low_temperature_gives_nearly_one_hot_samples_and_high_temperature_the_centre():
    explorer = ConcreteExplorer(n_samples=400)
    explorer.slider.value = 0.01
    cold = explorer.last["sharpness"]
    explorer.slider.value = 10.0
    hot = explorer.last["sharpness"]
    assert cold > 0.97 and hot < 0.45, f"mean largest coordinate: {cold:.3f} at tau 0.01, {hot:.3f} at tau 10"


def test_the_class_frequencies_do_not_depend_on_tau_and_match_softmax():
    explorer = ConcreteExplorer(logits3=(1.0, 0.0, -1.0), n_samples=4000)
    first = explorer.last["corner_freq"]
    explorer.slider.value = 0.05
    assert np.allclose(explorer.last["corner_freq"], first), (
        "the argmax of a relaxed sample is fixed by the noise"
    )
    p = torch.softmax(torch.tensor([1.0, 0.0, -1.0]), 0).numpy()
    assert np.abs(first - p).max() < 0.03, f"corner frequencies {first} should match softmax {p}"


def test_corners_of_the_simplex_map_to_the_triangle():
    xy = simplex_to_plane(np.eye(3))
    assert np.allclose(xy[0], [0, 0]) and np.allclose(xy[1], [1, 0]) and xy[2, 1] > 0.8


def test_bad_logits_are_refused():
    with pytest.raises(ValueError, match="3 logits"):
        ConcreteExplorer(logits3=(1.0, 2.0))
