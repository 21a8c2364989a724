"""utils.widgets.structured, headless: boxes drawn on canvases, and the analogy grid's slider."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.widgets import AnalogyGrid, frames_with_boxes


def test_frames_with_boxes_draws_the_box_edges_in_colour():
    frames = frames_with_boxes(torch.zeros(2, 784), torch.tensor([[10.0, 12.0, 3.0], [-50.0, -50.0, 1.0]]))
    assert frames.shape == (2, 28, 28, 3)
    assert np.allclose(frames[0, 9, 7:14, 0], 1.0) and np.allclose(frames[0, 15, 7:14, 0], 1.0), (
        "top and bottom edges"
    )
    assert np.allclose(frames[0, 12, 10], 0.0), "the inside stays as it was"
    assert np.allclose(frames[1], 0.0), "a box outside the image draws nothing"


def test_frames_with_boxes_refuses_logits():
    with pytest.raises(ValueError, match="sigmoid"):
        frames_with_boxes(torch.full((1, 784), 3.0))


def test_analogy_grid_shows_the_example_then_each_class():
    examples = torch.rand(3, 784)
    grid = AnalogyGrid(lambda i: torch.full((10, 784), i / 10), examples, labels=torch.tensor([4, 5, 6]))
    grid.slider.value = 2
    assert grid.last_image.shape == (28, 28 * 11 + 2)
    assert np.allclose(grid.last_image[:, :28], examples[2].reshape(28, 28).numpy(), atol=1e-6)
    assert np.allclose(grid.last_image[:, 30:], 0.2) and "label 6" in grid.caption
    assert bytes(grid.image.value).startswith(b"\x89PNG")
    assert np.allclose(grid.show(1)[:, 30:], 0.1)
