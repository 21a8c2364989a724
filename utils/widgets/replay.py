"""Replay of training: a slider over snapshots saved during training, each shown as one image.

A GAN lecture saves the generator every few hundred steps and renders the same fixed latent batch
with each snapshot (a grid of digits, or a 2-D scatter drawn as an image); the slider then steps
through training. Frames are rendered before the widget is built, so a change only swaps a PNG.

>>> replay = TrainingReplay(frames, labels=[f"step {s}" for s in steps])   # frames [T, H, W(, 3)]
>>> replay                                   # the slider and the frame
>>> replay.slider.value = 3                  # headless: .last_image is frame 3, .caption its label
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np

from utils.widgets.images import png_bytes
from utils.widgets.layout import Displayable


class TrainingReplay(Displayable):
    """An integer slider over ``frames`` (``[T, H, W]`` grey or ``[T, H, W, 3]`` colour, floats in [0, 1]).

    ``labels`` (one string per frame, e.g. the training step) is shown above the image. The slider starts
    at the last frame (the trained model). Headless: set ``.slider.value`` and read ``.last_image`` and
    ``.caption``; :meth:`show` does the same.
    """

    def __init__(self, frames: Any, labels: Sequence[str] | None = None, *, scale: int = 2) -> None:
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[-1] != 3) or len(frames) == 0:
            raise ValueError(
                f"frames must be [T, H, W] or [T, H, W, 3] with T >= 1 images, got shape {list(frames.shape)}."
            )
        if not np.isfinite(frames).all() or frames.min() < 0 or frames.max() > 1:
            raise ValueError("frames must hold finite values in [0, 1]; rescale the images first.")
        labels = [f"snapshot {i}" for i in range(len(frames))] if labels is None else [str(s) for s in labels]
        if len(labels) != len(frames):
            raise ValueError(f"{len(labels)} labels for {len(frames)} frames; give one label per frame.")
        self.frames, self.labels, self._scale = frames, labels, int(scale)
        self._pngs: dict[int, bytes] = {}
        last = len(frames) - 1
        self.slider = widgets.IntSlider(
            value=last, min=0, max=last, step=1, description="snapshot", continuous_update=True
        )
        self.label = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.slider.observe(lambda _: self.update(), names="value")
        self.update()
        self.widget = widgets.VBox([widgets.HBox([self.slider, self.label]), self.image])

    def update(self) -> None:
        """Show the frame at the slider's value (called on each change; callable directly)."""
        i = int(self.slider.value)
        if i not in self._pngs:  # encoded once, then reused: dragging back and forth costs nothing
            self._pngs[i] = png_bytes(self.frames[i], self._scale)
        self.last_image = self.frames[i]
        self.caption = self.labels[i]
        self.label.value = f"<b>{self.caption}</b>"
        self.image.value = self._pngs[i]

    def show(self, index: int) -> np.ndarray:
        """Move the slider to ``index`` and return the frame shown."""
        self.slider.value = int(index)
        return self.last_image
