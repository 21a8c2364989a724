"""Interpolation between two latent codes (linear or spherical), with a slider over the path."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from utils.widgets.images import (
    Decode,
    Encode,
    as_display_image,
    check_image_shape,
    decode_images,
    encode_means,
    png_bytes,
)
from utils.widgets.layout import SMOOTH_SECONDS, Displayable


def _interpolate(z_a: torch.Tensor, z_b: torch.Tensor, t: float, path: str) -> torch.Tensor:
    """The point at ``t`` in [0, 1] on the straight line (``"linear"``) or great circle (``"slerp"``)."""
    if path == "slerp":
        cos = torch.dot(z_a, z_b) / (z_a.norm() * z_b.norm()).clamp(min=1e-12)
        omega = torch.arccos(cos.clamp(-1.0, 1.0))
        if omega.abs() > 1e-4:
            return (torch.sin((1 - t) * omega) * z_a + torch.sin(t * omega) * z_b) / torch.sin(omega)
    return (1 - t) * z_a + t * z_b


class InterpolationExplorer(Displayable):
    """A slider ``t`` in [0, 1] showing ``decode(z(t))`` between the encoder means of ``x_a`` and ``x_b``.

    ``z(t) = (1 - t) z_a + t z_b`` (``path="linear"``) or spherical interpolation (``path="slerp"``),
    which keeps the norm typical of a Gaussian prior. A strip of ``n_frames`` decodes at evenly
    spaced t sits below, with the two inputs at its ends when they are images.
    x_a, x_b: single inputs as the encoder takes them without the batch dimension (e.g. ``[784]``).
    Headless: set ``.slider.value`` and read ``.last_image``; ``.strip`` is the frames' grid.
    """

    def __init__(
        self,
        decode: Decode,
        encode: Encode,
        x_a: Any,
        x_b: Any,
        *,
        image_shape: Sequence[int] = (28, 28),
        output: str = "probs",
        device: torch.device | str | None = None,
        n_frames: int = 8,
        path: str = "linear",
        scale: int = 4,
        step: float = 0.01,
        continuous_update: bool | None = None,
    ) -> None:
        if path not in ("linear", "slerp"):
            raise ValueError(f"path={path!r} is unknown; use 'linear' or 'slerp'.")
        if n_frames < 2:
            raise ValueError(f"n_frames must be at least 2 (the two ends), got {n_frames}.")
        self.image_shape = check_image_shape(image_shape)
        self._decode, self._device, self._output = decode, device, output
        self._path, self._scale = path, int(scale)
        x_a, x_b = torch.as_tensor(x_a), torch.as_tensor(x_b)
        if x_a.shape != x_b.shape:
            raise ValueError(
                f"x_a has shape {list(x_a.shape)} but x_b has {list(x_b.shape)}; pass two inputs alike."
            )
        z = encode_means(encode, torch.stack([x_a, x_b]), device)  # [2, D]
        self.z_a, self.z_b = z[0], z[1]
        self.latent_dim = z.shape[1]
        self.last_image: np.ndarray = np.zeros(self.image_shape)
        self.slider = widgets.FloatSlider(
            value=0.0,
            min=0.0,
            max=1.0,
            step=step,
            description="t",
            readout_format=".2f",
            continuous_update=True,
        )
        self.slider.observe(lambda _: self.update(), names="value")
        self.image = widgets.Image(format="png")
        self.strip = self._frames(
            n_frames, as_display_image(x_a, self.image_shape), as_display_image(x_b, self.image_shape)
        )
        self.strip_image = widgets.Image(value=png_bytes(self.strip, max(1, self._scale // 2)), format="png")
        start = time.perf_counter()
        self.update()
        self.seconds_per_update = time.perf_counter() - start
        live = self.seconds_per_update <= SMOOTH_SECONDS if continuous_update is None else continuous_update
        self.slider.continuous_update = live
        self.widget = widgets.VBox(
            [
                widgets.HBox([widgets.VBox([self.slider, widgets.Label(f"z(t), {path} path")]), self.image]),
                widgets.Label(f"t = 0 … 1 in {n_frames} steps (inputs at the ends)"),
                self.strip_image,
            ]
        )

    def z_at(self, t: float) -> torch.Tensor:
        """The latent ``[D]`` at position ``t`` in [0, 1] on the path."""
        return _interpolate(self.z_a, self.z_b, float(t), self._path)

    def decode_at(self, ts: Sequence[float]) -> np.ndarray:
        """Decoded images ``[len(ts), H, W]`` at the given positions."""
        z = torch.stack([self.z_at(t) for t in ts])
        return decode_images(self._decode, z, self.image_shape, output=self._output, device=self._device)

    def _frames(self, n_frames: int, first: np.ndarray | None, last: np.ndarray | None) -> np.ndarray:
        frames = list(self.decode_at(np.linspace(0.0, 1.0, n_frames).tolist()))
        if first is not None and last is not None:
            frames = [first, *frames, last]
        from utils.viz import image_grid  # viz pulls in matplotlib; only needed here

        return image_grid(np.stack(frames), nrow=len(frames), pad=2, pad_value=0.5)

    def update(self) -> None:
        """Decode at the slider's t and redraw (called on each change; callable directly)."""
        self.last_image = self.decode_at([self.slider.value])[0]
        self.image.value = png_bytes(self.last_image, self._scale)


def interpolation_widget(
    decode: Decode, encode: Encode, x_a: Any, x_b: Any, **kwargs: Any
) -> InterpolationExplorer:
    """Shorthand for :class:`InterpolationExplorer` (same arguments)."""
    return InterpolationExplorer(decode, encode, x_a, x_b, **kwargs)
