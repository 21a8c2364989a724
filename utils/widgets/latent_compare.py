"""Several 2-D latent spaces side by side: the prior's density under each model's codes, decoded at one z.

Each panel is one model: its prior's density drawn as shades of blue, the codes of some examples as dots
(coloured by label when labels are given), a red cross at the current z, and the model's decode of z
beside it. Two sliders move z in every panel at once, so one point of the plane is compared across
models (where one model's codes leave a hole, its decoder has never been trained). Everything is drawn
with NumPy into PNGs, so a change redraws in milliseconds on a CPU.

>>> view = LatentMapComparison({"VAE": MapPanel(vae.decode, prior.log_prob, codes=mu, labels=y),
...                             "AAE": MapPanel(aae.decode, prior.log_prob, codes=z, labels=y)},
...                            output="logits")
>>> view                          # sliders z_1, z_2 and one map + decode per model
>>> view.set_z([1.0, -2.0])       # headless: view.last_images["AAE"], view.last_maps["VAE"]

Without a browser extension for mouse events (ipyevents is not part of the course's environment) the
point is moved by the sliders, by the "z ~ prior of" buttons or from Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from utils.widgets.images import Decode, check_image_shape, decode_images, png_bytes
from utils.widgets.layout import Displayable, column, float_slider, image_widget, row

# Ten distinguishable colours (matplotlib's tab10) for labelled codes; unlabelled codes are dark grey.
_TAB10 = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
     [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
    dtype=np.float32,
) / 255.0  # fmt: skip
_DENSITY_RGB = np.array([0.16, 0.35, 0.75], dtype=np.float32)  # full density: a mid blue
_CROSS_RGB = np.array([0.9, 0.05, 0.05], dtype=np.float32)


@dataclass
class MapPanel:
    """One model in the comparison: ``decode(z [B, 2])``, the prior's ``log_density(z [..., 2]) -> [...]``,
    optionally ``codes [N, 2]`` (where examples land) with ``labels [N]`` for their colours and a
    ``sample_prior(n) -> [n, 2]`` for the panel's "z ~ prior" button."""

    decode: Decode
    log_density: Callable[[torch.Tensor], torch.Tensor]
    codes: Any = None
    labels: Any = None
    sample_prior: Callable[[int], torch.Tensor] | None = None


class LatentMapComparison(Displayable):
    """One panel per model (a map of ``resolution`` x ``resolution`` pixels over ``bounds``), z shared.

    Headless: ``set_z(z)`` or ``sliders[i].value = v`` redraws; ``.z`` is the current point,
    ``.last_images[name]`` the decode ``[H, W]`` in [0, 1], ``.last_maps[name]`` the map as drawn
    ``[resolution, resolution, 3]`` (row 0 at the top, z_2 upwards) and ``.log_density[name]`` the
    prior's log-density at z.
    """

    def __init__(
        self,
        panels: Mapping[str, MapPanel],
        *,
        bounds: tuple[float, float, float, float] = (-5.0, 5.0, -5.0, 5.0),
        resolution: int = 160,
        image_shape: Sequence[int] = (28, 28),
        output: str = "probs",
        device: torch.device | str | None = None,
        scale: int = 4,
        map_scale: int = 2,
        step: float = 0.05,
    ) -> None:
        if not panels:
            raise ValueError("LatentMapComparison needs at least one panel: {name: MapPanel(...)}.")
        x0, x1, y0, y1 = (float(b) for b in bounds)
        if not (x0 < x1 and y0 < y1):
            raise ValueError(f"bounds must be (x_min, x_max, y_min, y_max) with min < max, got {bounds}.")
        if int(resolution) < 8:
            raise ValueError(f"resolution must be at least 8 pixels, got {resolution}.")
        self.panels, self.bounds, self.resolution = dict(panels), (x0, x1, y0, y1), int(resolution)
        self.image_shape = check_image_shape(image_shape)
        self._output, self._device, self._scale, self._map_scale = output, device, int(scale), int(map_scale)
        self._backgrounds = {name: self._background(p) for name, p in self.panels.items()}
        self._z = torch.zeros(2)
        self._syncing = False
        self.last_images: dict[str, np.ndarray] = {}
        self.last_maps: dict[str, np.ndarray] = {}
        self.log_density: dict[str, float] = {}
        reach = max(abs(x0), abs(x1), abs(y0), abs(y1))
        self.sliders = [float_slider(f"z_{i + 1}", reach, step) for i in range(2)]
        for slider in self.sliders:
            slider.observe(self._on_slider, names="value")
        self.buttons = []
        for name, panel in self.panels.items():
            if panel.sample_prior is not None:
                button = widgets.Button(
                    description=f"z ~ prior of {name}", layout=widgets.Layout(width="200px")
                )
                button.on_click(lambda _, p=panel: self.set_z(p.sample_prior(1)[0]))
                self.buttons.append(button)
        side = self.resolution * self._map_scale
        self._maps = {n: image_widget(side, side) for n in self.panels}
        self._images = {
            n: image_widget(*(s * self._scale for s in self.image_shape[-2:])) for n in self.panels
        }
        self._status = {n: widgets.HTML() for n in self.panels}
        self.update()
        self.widget = self._layout()

    # --- drawing --------------------------------------------------------------------------------

    def _pixel_centres(self) -> torch.Tensor:
        x0, x1, y0, y1 = self.bounds
        n = self.resolution
        xs = x0 + (torch.arange(n) + 0.5) * (x1 - x0) / n
        ys = y1 - (torch.arange(n) + 0.5) * (y1 - y0) / n  # row 0 at the top
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([xx, yy], -1)  # [n, n, 2]

    def _to_pixel(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x0, x1, y0, y1 = self.bounds
        n = self.resolution
        cols = np.floor((z[:, 0] - x0) / (x1 - x0) * n).astype(int)
        rows = np.floor((y1 - z[:, 1]) / (y1 - y0) * n).astype(int)
        return rows, cols

    def _background(self, panel: MapPanel) -> np.ndarray:
        """The prior's density (shaded by density / its maximum on the map) with the codes on top."""
        with torch.no_grad():
            log_p = panel.log_density(self._pixel_centres().to(torch.float64)).detach().cpu().double()
        density = torch.exp(log_p - log_p.max()).numpy().astype(np.float32)[..., None]  # [n, n, 1] in [0, 1]
        canvas = 1.0 - density * (1.0 - _DENSITY_RGB) * 0.8  # white where the prior is ~0
        if panel.codes is not None:
            codes = torch.as_tensor(panel.codes).detach().cpu().double().numpy().reshape(-1, 2)
            rows, cols = self._to_pixel(codes)
            inside = (rows >= 0) & (rows < self.resolution) & (cols >= 0) & (cols < self.resolution)
            if panel.labels is not None:
                labels = np.asarray(torch.as_tensor(panel.labels).cpu()).reshape(-1)
                if len(labels) != len(codes):
                    raise ValueError(
                        f"Got {len(codes)} codes but {len(labels)} labels; pass one label per code."
                    )
                colours = _TAB10[labels[inside] % len(_TAB10)]
            else:
                colours = np.full((int(inside.sum()), 3), 0.15, dtype=np.float32)
            canvas[rows[inside], cols[inside]] = colours
        return canvas

    def _marked(self, name: str) -> np.ndarray:
        canvas = self._backgrounds[name].copy()
        (row_,), (col,) = self._to_pixel(self._z.numpy()[None].astype(np.float64))
        n, arm = self.resolution, max(2, self.resolution // 40)
        if 0 <= row_ < n and 0 <= col < n:
            canvas[row_, max(col - arm, 0) : col + arm + 1] = _CROSS_RGB
            canvas[max(row_ - arm, 0) : row_ + arm + 1, col] = _CROSS_RGB
        return canvas

    def _layout(self) -> widgets.Widget:
        controls = column([*self.sliders, *self.buttons], "330px")
        views = [
            column(
                [
                    widgets.HTML(f"<b>{name}</b>"),
                    self._maps[name],
                    row([self._images[name], self._status[name]]),
                ]
            )
            for name in self.panels
        ]
        return widgets.VBox([controls, row(views)])

    # --- state ------------------------------------------------------------------------------------

    @property
    def z(self) -> torch.Tensor:
        """The current point, a CPU float32 copy [2]."""
        return self._z.clone()

    def set_z(self, z: Any) -> None:
        """Move the point to ``z`` (2 values), move the sliders and redraw every panel."""
        new = torch.as_tensor(z, dtype=torch.float32).detach().cpu().reshape(-1)
        if new.numel() != 2:
            raise ValueError(
                f"set_z got {new.numel()} values; this comparison shows a 2-D latent, pass z [2]."
            )
        self._z = new.clone()
        self._syncing = True
        try:
            for slider, value in zip(self.sliders, self._z.tolist()):
                slider.value = float(np.clip(value, slider.min, slider.max))
        finally:
            self._syncing = False
        self.update()

    def _on_slider(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._z = torch.tensor([float(s.value) for s in self.sliders])
            self.update()

    def update(self) -> None:
        """Decode the current z with every model and redraw every map (callable directly)."""
        for name, panel in self.panels.items():
            image = decode_images(
                panel.decode, self._z[None], self.image_shape, output=self._output, device=self._device
            )[0]
            self.last_images[name] = image
            self._images[name].value = png_bytes(image, self._scale)
            self.last_maps[name] = self._marked(name)
            self._maps[name].value = png_bytes(self.last_maps[name], self._map_scale)
            with torch.no_grad():
                log_p = float(panel.log_density(self._z[None].double())[0])
            self.log_density[name] = log_p
            self._status[name].value = f"z = ({self._z[0]:.2f}, {self._z[1]:.2f})<br>log p(z) = {log_p:.2f}"
