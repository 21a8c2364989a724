"""A score field on a 2-D toy at a chosen noise level, with Langevin particles moving in it.

``score_fn(x [M, 2], sigma [M]) -> [M, 2]`` is a noise-conditional score, learned (lecture 13's
network) or exact. A slider picks the noise level sigma_i; the arrows show the score there (scaled to a
common length, coloured by its size), and a second slider runs k steps of Langevin dynamics at that
level, x <- x + a/2 s(x, sigma_i) + sqrt(a) z with a = ``step`` * sigma_i^2 (Song & Ermon's step rule),
from one fixed cloud of starting points. The Langevin paths are computed once per level and cached, so
moving the step slider only redraws.

>>> field = ScoreField(net, sigmas, bounds=toy_bounds("ring8"))
>>> field                                  # two sliders and the picture
>>> field.level.value = 3; field.steps.value = 50   # headless: .last holds what is drawn
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from utils.widgets.layout import Displayable

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ScoreField(Displayable):
    """Sliders ``level`` (index into ``sigmas``, largest first) and ``steps`` (0..``max_steps`` Langevin moves).

    ``last`` holds what is shown: ``sigma``, ``k``, ``particles [n, 2]`` after k steps, ``grid [r*r, 2]`` and
    ``score [r*r, 2]`` (the arrows, unscaled). Headless: set a slider's ``.value`` and read ``.last``.
    """

    def __init__(
        self,
        score_fn: ScoreFn,
        sigmas: Sequence[float] | torch.Tensor,
        bounds: tuple[float, float, float, float] = (-4.0, 4.0, -4.0, 4.0),
        *,
        n_particles: int = 300,
        max_steps: int = 200,
        step: float = 0.1,
        arrows: int = 21,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
        size: float = 4.2,
    ) -> None:
        sig = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
        if sig.numel() == 0 or not bool((sig > 0).all()):
            raise ValueError("sigmas must be a non-empty list of positive noise levels.")
        if int(max_steps) < 1 or not step > 0:
            raise ValueError("max_steps must be at least 1 and step positive.")
        self.score_fn, self.sigmas, self.bounds = score_fn, sig.tolist(), tuple(float(b) for b in bounds)
        self.max_steps, self.step, self.size, self.device = (
            int(max_steps),
            float(step),
            size,
            torch.device(device),
        )
        self.generator = generator
        x0, x1, y0, y1 = self.bounds
        start = torch.rand(
            int(n_particles), 2, generator=generator, device=generator.device if generator else None
        )
        self.start = (
            start * torch.tensor([x1 - x0, y1 - y0], device=start.device)
            + torch.tensor([x0, y0], device=start.device)
        ).to(self.device)
        gx, gy = torch.meshgrid(torch.linspace(x0, x1, arrows), torch.linspace(y0, y1, arrows), indexing="xy")
        self.grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).to(self.device)  # [r*r, 2]
        self._paths: dict[int, np.ndarray] = {}
        self.last: dict[str, Any] = {}
        self.level = widgets.IntSlider(
            value=0, min=0, max=len(self.sigmas) - 1, description="noise level", continuous_update=False
        )
        self.steps = widgets.IntSlider(
            value=self.max_steps, min=0, max=self.max_steps, description="Langevin k", continuous_update=True
        )
        self.level.observe(lambda _: self.update(), names="value")
        self.steps.observe(lambda _: self.update(), names="value")
        self.image = widgets.Image(format="png")
        self.update()
        self.widget = widgets.VBox([widgets.HBox([self.level, self.steps]), self.image])

    @torch.no_grad()
    def _score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        return self.score_fn(x, torch.full((x.shape[0],), sigma, device=x.device, dtype=x.dtype))

    @torch.no_grad()
    def path(self, i: int) -> np.ndarray:
        """Particles [max_steps + 1, n, 2] of Langevin dynamics at level i from the fixed start (cached)."""
        if i not in self._paths:
            sigma = self.sigmas[i]
            a = self.step * sigma**2
            g = torch.Generator(device=self.device).manual_seed(1000 + i)  # the same noise on every redraw
            x, out = self.start.clone(), [self.start.cpu().numpy()]
            for _ in range(self.max_steps):
                z = torch.randn(x.shape, generator=g, device=self.device)
                x = x + 0.5 * a * self._score(x, sigma) + a**0.5 * z
                out.append(x.cpu().numpy())
            self._paths[i] = np.stack(out)
        return self._paths[i]

    def update(self) -> None:
        """Draw level ``level.value`` after ``steps.value`` Langevin moves (callable directly)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        i, k = int(self.level.value), int(self.steps.value)
        sigma = self.sigmas[i]
        score = self._score(self.grid, sigma).cpu().numpy()  # [r*r, 2]
        pts = self.path(i)[k]
        norm = np.linalg.norm(score, axis=1)
        unit = score / np.maximum(norm, 1e-12)[:, None]
        fig = Figure(figsize=(self.size, self.size))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        g = self.grid.cpu().numpy()
        ax.quiver(
            g[:, 0], g[:, 1], unit[:, 0], unit[:, 1], np.log1p(norm), cmap="viridis", scale=30, width=0.004
        )
        ax.scatter(pts[:, 0], pts[:, 1], s=4, c="crimson", alpha=0.7, linewidths=0)
        ax.set(xlim=self.bounds[:2], ylim=self.bounds[2:], aspect="equal")
        ax.set_title(
            f"score at sigma = {sigma:.3g}; {k} Langevin steps (a = {self.step * sigma**2:.2g})", fontsize=9
        )
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()
        self.last = {"sigma": sigma, "k": k, "particles": pts, "grid": g, "score": score}
