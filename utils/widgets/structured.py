"""Explorers for structured models (lecture 12): DRAW's canvas with its attention window, and analogy grids.

``frames_with_boxes`` turns canvases [T, H, W] and windows (centre x, centre y, half-width) [T, 3]
into RGB frames with the window drawn in red, for ``TrainingReplay`` (a slider over steps).
``AnalogyGrid`` shows one example beside its style decoded in every class; its slider picks the example.

>>> grid = AnalogyGrid(lambda i: m2.analogies(x_test[i:i+1])[0], x_test, labels=y_test)
>>> grid.slider.value = 3                    # headless: .last_image is [H, W * (K + 1)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from utils.widgets.images import png_bytes
from utils.widgets.layout import Displayable


def frames_with_boxes(
    canvases: Any, boxes: Any | None = None, image_shape: tuple[int, int] = (28, 28), colour=(1.0, 0.1, 0.1)
) -> np.ndarray:
    """Grey canvases [T, H*W] or [T, H, W] in [0, 1] -> RGB frames [T, H, W, 3] with each box drawn.

    boxes: [T, 3] of (centre x, centre y, half-width) in pixels, or None for no boxes. A box is
    clipped to the image; one wholly outside it leaves the frame unchanged.
    """
    frames = torch.as_tensor(canvases).detach().float().cpu().reshape(-1, *image_shape).numpy()
    if not np.isfinite(frames).all() or frames.min() < 0 or frames.max() > 1:
        raise ValueError("canvases must hold finite values in [0, 1]; pass sigmoid(canvas logits).")
    rgb = np.repeat(frames[..., None], 3, -1).copy()
    if boxes is None:
        return rgb
    boxes = torch.as_tensor(boxes).detach().float().cpu().numpy()
    if boxes.shape != (len(frames), 3):
        raise ValueError(
            f"boxes must be [T, 3] (centre x, centre y, half-width) for {len(frames)} frames, got {list(boxes.shape)}."
        )
    h, w = image_shape
    for t, (cx, cy, r) in enumerate(boxes):
        x0, x1 = int(round(cx - r)), int(round(cx + r))
        y0, y1 = int(round(cy - r)), int(round(cy + r))
        xs, ys = range(max(x0, 0), min(x1, w - 1) + 1), range(max(y0, 0), min(y1, h - 1) + 1)
        for y in (y0, y1):
            if 0 <= y < h and len(xs):
                rgb[t, y, xs.start : xs.stop] = colour
        for x in (x0, x1):
            if 0 <= x < w and len(ys):
                rgb[t, ys.start : ys.stop, x] = colour
    return rgb


class AnalogyGrid(Displayable):
    """A slider over ``examples`` [N, H*W]; each choice shows the example, then ``analogies(i)`` [K, H*W].

    ``analogies(i)`` returns the i-th example's style decoded in each of K classes (values in [0, 1]).
    Headless: set ``.slider.value`` and read ``.last_image`` ([H, W * (K + 1)]) and ``.caption``.
    """

    def __init__(
        self,
        analogies: Callable[[int], Any],
        examples: Any,
        labels: Sequence[int] | Any | None = None,
        *,
        image_shape: tuple[int, int] = (28, 28),
        scale: int = 2,
    ) -> None:
        self.examples = torch.as_tensor(examples).detach().float().cpu().reshape(len(examples), *image_shape)
        if len(self.examples) == 0:
            raise ValueError("AnalogyGrid needs at least one example to pick from.")
        self.labels = None if labels is None else [int(v) for v in torch.as_tensor(labels).cpu()]
        self._analogies, self._shape, self._scale = analogies, image_shape, int(scale)
        self.slider = widgets.IntSlider(value=0, min=0, max=len(self.examples) - 1, description="example")
        self.label = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.slider.observe(lambda _: self.update(), names="value")
        self.update()
        self.widget = widgets.VBox([widgets.HBox([self.slider, self.label]), self.image])

    def update(self) -> None:
        """Decode the chosen example's style in every class and show it (called on each change)."""
        i = int(self.slider.value)
        with torch.no_grad():
            row = torch.as_tensor(self._analogies(i)).detach().float().cpu().reshape(-1, *self._shape)
        gap = np.ones((self._shape[0], 2), dtype=np.float32)  # a white gap after the example itself
        parts = [self.examples[i].clamp(0, 1).numpy(), gap, *row.clamp(0, 1).numpy()]
        self.last_image = np.concatenate(parts, 1)
        known = "" if self.labels is None else f" (label {self.labels[i]})"
        self.caption = f"example {i}{known}, then its style in classes 0..{len(row) - 1}"
        self.label.value = self.caption
        self.image.value = png_bytes(self.last_image, self._scale)

    def show(self, index: int) -> np.ndarray:
        """Move the slider to ``index`` and return the grid shown."""
        self.slider.value = int(index)
        return self.last_image
