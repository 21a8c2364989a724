"""Step through a 2-D normalizing flow layer by layer: samples, a grid and the density after k layers.

The flow's layers map data to base (``forward(x) -> (z, logdet)``, ``inverse(z) -> x``, as in
``utils.models.flows``). Generating runs them backwards: ``h_0 = z ~ N(0, I)``, and step k applies the
inverse of layer ``K - k``, so ``h_K`` is a sample of the model. The density of ``h_k`` is the base
density pulled back through the last k layers, ``log p_k(h) = log N(F_k(h); 0, I) + sum of their logdets``.

>>> stepper = FlowStepper(model.layers, bounds=toy_bounds("ring8"))
>>> stepper                       # slider k = 0..K, the picture
>>> stepper.slider.value = 3      # headless: redrawn at once; stepper.last holds what is shown
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from torch import nn

from utils.widgets.layout import Displayable

LOG_2PI = math.log(2.0 * math.pi)


def _device_of(layers: Sequence[nn.Module]) -> torch.device:
    for layer in layers:
        for p in list(layer.parameters()) + list(layer.buffers()):
            return p.device
    return torch.device("cpu")


class FlowStepper(Displayable):
    """A slider k = 0..K over a 2-D flow's generative steps, drawing on one picture:

    * the density of the variable after k steps (filled contours, on a ``resolution``^2 grid),
    * ``n_samples`` base samples and a grid of ``grid_lines`` lines of the base space, both moved by the
      k steps (the lines show how each layer stretches and bends space).

    ``last`` holds what is shown: ``k``, ``samples [n, 2]``, ``log_density [r, r]`` and ``mass``, the
    density summed over the picture (about 1 when the box holds the mass: a check of the log-dets).
    Headless: set ``.slider.value`` and read ``.last``; ``.image`` holds the PNG.
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        bounds: tuple[float, float, float, float] = (-4.0, 4.0, -4.0, 4.0),
        *,
        n_samples: int = 1000,
        grid_lines: int = 13,
        resolution: int = 90,
        generator: torch.Generator | None = None,
        size: float = 4.2,
    ) -> None:
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("FlowStepper needs at least one flow layer to step through.")
        for i, layer in enumerate(self.layers):
            if not (callable(layer) and callable(getattr(layer, "inverse", None))):
                raise TypeError(f"Layer {i} ({type(layer).__name__}) has no inverse(z); pass flow layers.")
        self.bounds, self.resolution, self.size = tuple(float(b) for b in bounds), int(resolution), size
        self.device = _device_of(self.layers)
        z = torch.randn(n_samples, 2, generator=generator, device=generator.device if generator else None)
        lines = self._base_grid(grid_lines)  # [L, P, 2]
        self.samples, self.lines = self._walk(z.to(self.device)), self._walk_lines(lines)
        self.last: dict[str, Any] = {}
        self.slider = widgets.IntSlider(
            value=len(self.layers),
            min=0,
            max=len(self.layers),
            description="layers k",
            continuous_update=False,
        )
        self.slider.observe(lambda _: self.update(), names="value")
        self.image = widgets.Image(format="png")
        self.update()
        self.widget = widgets.VBox([self.slider, self.image])

    # --- the numbers -------------------------------------------------------------------------------

    def _base_grid(self, n: int) -> torch.Tensor:
        ticks = torch.linspace(-3.0, 3.0, n)
        along = torch.linspace(-3.5, 3.5, 120)
        vertical = torch.stack([ticks[:, None].expand(n, 120), along.expand(n, 120)], -1)
        horizontal = torch.stack([along.expand(n, 120), ticks[:, None].expand(n, 120)], -1)
        return torch.cat([vertical, horizontal])  # [2n, 120, 2]

    @torch.no_grad()
    def _walk(self, z: torch.Tensor) -> list[np.ndarray]:
        """Points after 0, 1, ..., K generative steps, as NumPy arrays."""
        stages, h = [z.cpu().numpy()], z
        for layer in reversed(self.layers):
            h = layer.inverse(h)
            stages.append(h.cpu().numpy())
        return stages

    def _walk_lines(self, lines: torch.Tensor) -> list[np.ndarray]:
        stages = self._walk(lines.reshape(-1, 2).to(self.device))
        return [s.reshape(lines.shape) for s in stages]

    @torch.no_grad()
    def log_density(self, k: int, points: torch.Tensor) -> torch.Tensor:
        """log p_k at ``points [M, 2]``: the base density pulled back through the last k layers."""
        h = points.to(self.device)
        logdet = torch.zeros(h.shape[0], device=self.device, dtype=h.dtype)
        for layer in self.layers[len(self.layers) - k :]:
            h, ld = layer(h)
            logdet = logdet + ld
        return -0.5 * (h**2).sum(1) - LOG_2PI + logdet

    def _grid(self) -> tuple[np.ndarray, np.ndarray, torch.Tensor, float]:
        x0, x1, y0, y1 = self.bounds
        xs, ys = torch.linspace(x0, x1, self.resolution), torch.linspace(y0, y1, self.resolution)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        cell = (xs[1] - xs[0]).item() * (ys[1] - ys[0]).item()
        return xs.numpy(), ys.numpy(), torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), cell

    # --- the picture -------------------------------------------------------------------------------

    def update(self) -> None:
        """Draw the state after ``slider.value`` steps (called on each change; callable directly)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        k = int(self.slider.value)
        xs, ys, points, cell = self._grid()
        log_p = self.log_density(k, points).cpu().double().reshape(self.resolution, self.resolution)
        mass = float(log_p.exp().sum() * cell)
        fig = Figure(figsize=(self.size, self.size))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.contourf(xs, ys, torch.exp(log_p - log_p.max()).numpy(), levels=12, cmap="viridis")
        for line in self.lines[k]:
            ax.plot(line[:, 0], line[:, 1], color="white", lw=0.5, alpha=0.5)
        pts = self.samples[k]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="orange", alpha=0.6, linewidths=0)
        ax.set(xlim=self.bounds[:2], ylim=self.bounds[2:], aspect="equal")
        which = "base N(0, I)" if k == 0 else ("the model" if k == len(self.layers) else "")
        ax.set_title(f"after {k} of {len(self.layers)} layers {which}  (mass in box {mass:.3f})", fontsize=9)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()
        self.last = {"k": k, "samples": pts, "log_density": log_p.numpy(), "mass": mass}
