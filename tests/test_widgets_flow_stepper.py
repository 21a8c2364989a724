"""utils.widgets.FlowStepper, headless: move the layer slider from Python and read back what is drawn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.models import flows as F
from utils.widgets import FlowStepper


@pytest.fixture
def layers() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    out = [
        F.ActNorm(2),
        F.PlanarFlow(2),
        F.AffineCoupling(F.alternating_mask(2), F.coupling_mlp(2, 8, out=4)),
    ]
    with torch.no_grad():
        out[0].log_scale.fill_(0.3)
        for p in out[2].net.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    return out


def test_slider_spans_the_base_to_the_model(layers):
    stepper = FlowStepper(layers, resolution=40, generator=torch.Generator().manual_seed(1))
    assert (stepper.slider.min, stepper.slider.max, stepper.slider.value) == (0, 3, 3)
    assert stepper.last["k"] == 3 and stepper.image.value[:4] == b"\x89PNG"


def test_k_zero_shows_the_base_samples_and_the_standard_normal(layers):
    g = torch.Generator().manual_seed(2)
    stepper = FlowStepper(layers, n_samples=50, resolution=40, generator=g)
    stepper.slider.value = 0
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(2)).numpy()
    assert np.allclose(stepper.last["samples"], z), "at k = 0 the samples must be the base draws"
    point = torch.tensor([[0.5, -1.0]])
    expected = -0.5 * 1.25 - math.log(2 * math.pi)
    assert abs(stepper.log_density(0, point).item() - expected) < 1e-5, "k = 0 must be log N(0, I)"


def test_k_equal_to_all_layers_shows_model_samples_and_the_model_density(layers):
    model = F.FlowModel(layers, 2)
    stepper = FlowStepper(layers, n_samples=50, resolution=40, generator=torch.Generator().manual_seed(3))
    stepper.slider.value = 1
    stepper.slider.value = 3
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(3))
    assert np.allclose(stepper.last["samples"], model.inverse(z).detach().numpy(), atol=1e-5)
    points = torch.randn(20, 2, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(stepper.log_density(3, points), model.log_prob(points).detach(), atol=1e-5)


def test_every_stage_is_a_normalized_density(layers):
    stepper = FlowStepper(layers, bounds=(-8, 8, -8, 8), resolution=160)
    for k in range(4):
        stepper.slider.value = k
        assert abs(stepper.last["mass"] - 1.0) < 0.01, (
            f"after {k} layers the density has mass {stepper.last['mass']}"
        )


def test_a_layer_without_inverse_is_refused():
    with pytest.raises(TypeError, match="no inverse"):
        FlowStepper([torch.nn.Linear(2, 2)])
