"""utils.widgets.ScoreField, headless: move the sliders from Python and read back what is drawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.widgets import ScoreField

S = 0.5


def gaussian_score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """grad log N(0, (S^2 + sigma^2) I): the exact score of N(0, S^2 I) smoothed at sigma."""
    return -x / (S**2 + sigma[:, None] ** 2)


def make(**kwargs) -> ScoreField:
    return ScoreField(gaussian_score, [2.0, 0.5, 0.1], generator=torch.Generator().manual_seed(0), **kwargs)


def test_starts_at_the_largest_noise_after_all_steps():
    field = make(max_steps=20, arrows=5)
    assert field.last["sigma"] == 2.0 and field.last["k"] == 20
    assert bytes(field.image.value).startswith(b"\x89PNG")


def test_arrows_show_the_score_at_the_chosen_level():
    field = make(max_steps=5, arrows=5)
    field.level.value = 2
    expected = gaussian_score(torch.as_tensor(field.last["grid"]), torch.full((25,), 0.1)).numpy()
    assert field.last["sigma"] == pytest.approx(0.1) and np.allclose(field.last["score"], expected, atol=1e-6)


def test_step_zero_shows_the_start_and_langevin_reaches_the_smoothed_density():
    field = make(n_particles=2000, max_steps=400, step=0.2, arrows=5)
    field.level.value = 1
    field.steps.value = 0
    assert np.allclose(field.last["particles"], field.start.numpy()), "k = 0 must show the starting cloud"
    field.steps.value = 400
    var = field.last["particles"].var(0).mean()
    assert var == pytest.approx(S**2 + 0.25, rel=0.15), (
        f"Langevin at sigma=0.5 should reach variance 0.5, got {var:.3f}"
    )


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="positive noise levels"):
        ScoreField(gaussian_score, [])
    with pytest.raises(ValueError, match="max_steps"):
        ScoreField(gaussian_score, [1.0], max_steps=0)
