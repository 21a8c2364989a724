"""A 2-D latent map and the per-dimension latent explorer (sliders, examples, a marked map)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import partial
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
    encode_png,
    png_bytes,
)
from utils.widgets.interpolation import InterpolationExplorer
from utils.widgets.layout import SMOOTH_SECONDS, Displayable, column, float_slider, image_widget, row

_MARK_RGB = (1.0, 0.15, 0.1)
_CONTROLS_WIDTH = "330px"  # the sliders and dropdowns are 320 px wide
_PLACEHOLDER_GREY = 0.93  # the example panel before an example is picked: a blank, light square


# Grey levels 0..254 plus a red mark at index 255: a marked grey map is 1 byte per pixel instead of
# RGB's 3, so it encodes faster.
_GREY_AND_MARK = np.concatenate(
    [np.repeat(np.rint(np.linspace(0, 255, 255))[:, None], 3, axis=1), [[255 * c for c in _MARK_RGB]]]
).astype(np.uint8)
_MARK_INDEX = 255


def latent_map(
    decode: Decode,
    *,
    n: int = 15,
    r: float = 3.0,
    image_shape: Sequence[int] = (28, 28),
    output: str = "probs",
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Decodes of an ``n x n`` grid over ``[-r, r]^2`` tiled into one image ``[n*H, n*W]`` (or ``[..., 3]``).

    For a decoder with a 2-D latent. Columns go left to right in ``z_1``, rows bottom to top in
    ``z_2`` (like a plot), no padding, so tile ``(row, col)`` shows ``z = (-r + col*2r/(n-1),
    r - row*2r/(n-1))``. Show it with ``viz.show_images(grid[None])`` or ``plt.imshow``.
    """
    if n < 2:
        raise ValueError(f"latent_map needs n >= 2 tiles per side, got n={n}.")
    values = torch.linspace(-r, r, n)
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")  # row 0 at the top: z_2 = +r
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)  # [n*n, 2]
    tiles = decode_images(decode, z, image_shape, output=output, device=device)  # [n*n, H, W(, 3)]
    h, w = tiles.shape[1:3]
    grid = tiles.reshape(n, n, h, w, *tiles.shape[3:]).swapaxes(1, 2)  # [n, H, n, W(, 3)]
    return np.ascontiguousarray(grid.reshape(n * h, n * w, *tiles.shape[3:]))


def _mark_point(canvas: np.ndarray, z: torch.Tensor, n: int, r: float, mark: Any) -> None:
    """Draw ``mark`` in place on a latent map: a frame around the tile nearest to ``z`` and a dot at ``z``."""
    tile_h, tile_w = canvas.shape[0] // n, canvas.shape[1] // n
    col_f = (float(z[0]) + r) / (2 * r) * (n - 1)
    row_f = (r - float(z[1])) / (2 * r) * (n - 1)
    col, row = (int(np.clip(round(v), 0, n - 1)) for v in (col_f, row_f))
    top, left = row * tile_h, col * tile_w
    canvas[top, left : left + tile_w] = mark
    canvas[top + tile_h - 1, left : left + tile_w] = mark
    canvas[top : top + tile_h, left] = mark
    canvas[top : top + tile_h, left + tile_w - 1] = mark
    y = int(np.clip((row_f + 0.5) * tile_h, 1, canvas.shape[0] - 2))
    x = int(np.clip((col_f + 0.5) * tile_w, 1, canvas.shape[1] - 2))
    canvas[y - 1 : y + 2, x - 1 : x + 2] = mark


class _MarkedMap:
    """A latent map image that is redrawn with the current z marked, as fast PNG bytes."""

    def __init__(self, grid: np.ndarray, n: int, r: float) -> None:
        self.grid, self.n, self.r = grid, n, r
        self._levels = np.rint(grid * 254).astype(np.uint8) if grid.ndim == 2 else None
        self.marked: np.ndarray = grid

    def png(self, z: torch.Tensor) -> bytes:
        if self._levels is not None:
            self.marked = self._levels.copy()
            _mark_point(self.marked, z, self.n, self.r, _MARK_INDEX)
            return encode_png(self.marked, 3, _GREY_AND_MARK)
        self.marked = self.grid.copy()
        _mark_point(self.marked, z, self.n, self.r, np.asarray(_MARK_RGB, dtype=self.grid.dtype))
        return png_bytes(self.marked)

    def rgb(self) -> np.ndarray:
        """The marked map as floats ``[H, W, 3]`` in [0, 1]."""
        if self._levels is not None:
            return _GREY_AND_MARK[self.marked].astype(np.float32) / 255.0
        return self.marked


class LatentExplorer(Displayable):
    """Sliders over the latent ``z``, redrawing ``decode(z)`` on every change.

    decode: ``z [B, latent_dim] -> [B, H*W]`` (or ``[B, H, W]``, ``[B, 1, H, W]``) probabilities, logits
    (``output="logits"``) or a distribution. With more latent dims than ``n_sliders`` (default 8) a
    selector picks which block of dims the sliders control; the other dims keep their values.
    ``order`` lists the dims in the order the sliders present them (e.g. sorted by KL so the first
    sliders move the active units; dims left out stay fixed). Buttons set z to zero or to a draw from
    N(0, I). With ``encode`` and ``examples`` (``[N, ...]`` inputs, optional ``labels [N]``) a picker
    sets z to an example's encoder mean and shows the example beside its decode. A 2-D latent also
    gets a latent map (decodes over ``[-slider_range, slider_range]^2``) with the current z marked.

    Headless use: ``explorer.sliders[i].value = v`` (or :meth:`set_z`) redraws at once;
    ``.last_image`` is the shown image ``[H, W]`` in [0, 1], ``.z`` the current latent,
    ``.last_map`` the marked latent map (RGB) for 2-D latents, ``.seconds_per_update`` the cost of
    one redraw. ``continuous_update=None`` turns live dragging off when a redraw is slower than 50 ms.
    """

    def __init__(
        self,
        decode: Decode,
        latent_dim: int,
        *,
        n_sliders: int | None = None,
        image_shape: Sequence[int] = (28, 28),
        encode: Encode | None = None,
        examples: Any = None,
        labels: Any = None,
        slider_range: float = 3.0,
        device: torch.device | str | None = None,
        output: str = "probs",
        scale: int = 4,
        step: float = 0.05,
        order: Sequence[int] | None = None,
        map_size: int = 15,
        continuous_update: bool | None = None,
        max_examples: int = 100,
        seed: int = 0,
    ) -> None:
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive number of latent dimensions, got {latent_dim}.")
        if examples is not None and encode is None:
            raise ValueError(
                "examples were given without encode; pass encode=model.encode to place them in z."
            )
        self.latent_dim = int(latent_dim)
        self.image_shape = check_image_shape(image_shape)
        self._decode, self._encode = decode, encode
        self._device, self._output, self._scale = device, output, int(scale)
        self._range = float(slider_range)
        self._order = self._check_order(order)
        self._n = min(int(n_sliders) if n_sliders is not None else 8, len(self._order))
        if self._n < 1:
            raise ValueError(f"n_sliders must be at least 1, got {n_sliders}.")
        self._offset = 0
        self._syncing = False
        self._generator = torch.Generator().manual_seed(seed)
        self._z = torch.zeros(self.latent_dim)
        self._map_size = int(map_size)
        self.last_image: np.ndarray = np.zeros(self.image_shape)
        self.map_image: np.ndarray | None = None
        self._map: _MarkedMap | None = None
        self.last_example: np.ndarray | None = None
        self.seconds_per_update = 0.0

        self.sliders = [float_slider("", self._range, step) for _ in range(self._n)]
        for i, slider in enumerate(self.sliders):
            slider.observe(partial(self._on_slider, i), names="value")
        self.block = self._make_block_selector()
        self.zero_button = widgets.Button(description="z = 0", layout=widgets.Layout(width="90px"))
        self.random_button = widgets.Button(description="z ~ N(0, I)", layout=widgets.Layout(width="110px"))
        self.zero_button.on_click(lambda _: self.set_z(torch.zeros(self.latent_dim)))
        self.random_button.on_click(
            lambda _: self.set_z(torch.randn(self.latent_dim, generator=self._generator))
        )
        self.image = image_widget(*self._pixels())
        # HTML, not a Label: a Label never wraps and cuts its text at the column's edge with "…".
        self.status = widgets.HTML()
        self._examples, self._labels = self._check_examples(examples, labels)
        self.example_picker, self.example_image = self._make_example_picker(max_examples)
        self.map_widget = self._make_latent_map()
        self._sync_sliders()
        self.update()
        self.widget = self._layout()
        self._time_and_choose_update_mode(continuous_update)

    # --- construction helpers -----------------------------------------------------------------

    def _check_order(self, order: Sequence[int] | None) -> list[int]:
        if order is None:
            return list(range(self.latent_dim))
        dims = [int(d) for d in (order.tolist() if isinstance(order, torch.Tensor | np.ndarray) else order)]
        bad = [d for d in dims if not 0 <= d < self.latent_dim]
        if bad or len(set(dims)) != len(dims) or not dims:
            raise ValueError(
                f"order must list distinct latent dims in [0, {self.latent_dim - 1}], got {dims[:12]}; "
                "e.g. order=kl_per_dim.argsort(descending=True)."
            )
        return dims

    def _check_examples(self, examples: Any, labels: Any) -> tuple[torch.Tensor | None, list[Any] | None]:
        if examples is None:
            return None, None
        x = torch.as_tensor(examples)
        lab = None if labels is None else torch.as_tensor(labels).reshape(-1).tolist()
        if lab is not None and len(lab) != x.shape[0]:
            raise ValueError(f"Got {x.shape[0]} examples but {len(lab)} labels; pass one label per example.")
        return x, lab

    def _make_block_selector(self) -> widgets.Dropdown | None:
        if len(self._order) <= self._n:
            return None
        options = []
        for offset in range(0, len(self._order), self._n):
            dims = self._order[offset : offset + self._n]
            options.append((f"dims {offset + 1}-{offset + len(dims)}: z[{dims[0]}] … z[{dims[-1]}]", offset))
        selector = widgets.Dropdown(
            options=options, value=0, description="sliders", layout={"width": "320px"}
        )
        selector.observe(lambda change: self.show_block(change["new"]), names="value")
        return selector

    def _make_example_picker(self, max_examples: int) -> tuple[widgets.Dropdown | None, widgets.Image | None]:
        if self._examples is None:
            return None, None
        count = min(int(max_examples), self._examples.shape[0])
        names = [
            (f"#{i}" + (f" (label {self._labels[i]})" if self._labels is not None else ""), i)
            for i in range(count)
        ]
        picker = widgets.Dropdown(
            options=[("choose…", None), *names], index=0, description="example", layout={"width": "320px"}
        )
        picker.observe(
            lambda change: None if self._syncing else self.show_example(change["new"]), names="value"
        )
        # A valid blank PNG until an example is picked: an empty Image shows a broken-image icon.
        blank = np.full(self._display_shape(), _PLACEHOLDER_GREY, dtype=np.float32)
        return picker, image_widget(*self._pixels(), value=png_bytes(blank, self._scale))

    def _display_shape(self) -> tuple[int, ...]:
        """The shape of a shown image: ``(H, W)`` or ``(H, W, 3)``."""
        return (*self.image_shape[1:], 3) if len(self.image_shape) == 3 else self.image_shape

    def _pixels(self) -> tuple[int, int]:
        """(height, width) of the decoded and example PNGs, in pixels."""
        height, width = self._display_shape()[:2]
        return height * self._scale, width * self._scale

    def _make_latent_map(self) -> widgets.Image | None:
        if self.latent_dim != 2:
            return None
        self.map_image = latent_map(
            self._decode,
            n=self._map_size,
            r=self._range,
            image_shape=self.image_shape,
            output=self._output,
            device=self._device,
        )
        self._map = _MarkedMap(self.map_image, self._map_size, self._range)
        return image_widget(*self.map_image.shape[:2])

    def _layout(self) -> widgets.Widget:
        """Controls, then the example and the decode side by side; a 2-D latent's map sits in a third
        column and the example and decode go under the controls, so that all fits a notebook's width."""
        controls: list[widgets.Widget] = []
        if self.block is not None:
            controls.append(self.block)
        controls.extend(self.sliders)
        controls.append(widgets.HBox([self.zero_button, self.random_button]))
        if self.example_picker is not None:
            controls.append(self.example_picker)
        pictures = [column([widgets.Label("decode(z)"), self.image, self.status])]
        if self.example_image is not None:
            pictures.insert(0, column([widgets.Label("example x"), self.example_image]))
        if self.map_widget is None:
            return row([column(controls, _CONTROLS_WIDTH), *pictures])
        left = column([*controls, row(pictures)], _CONTROLS_WIDTH)
        return row([left, column([widgets.Label("latent map, z marked"), self.map_widget])])

    def _time_and_choose_update_mode(self, continuous_update: bool | None) -> None:
        start = time.perf_counter()
        self.update()
        self.seconds_per_update = time.perf_counter() - start
        live = self.seconds_per_update <= SMOOTH_SECONDS if continuous_update is None else continuous_update
        for slider in self.sliders:
            slider.continuous_update = live

    # --- state ---------------------------------------------------------------------------------

    @property
    def last_map(self) -> np.ndarray | None:
        """For a 2-D latent: the latent map as shown, ``[H, W, 3]`` floats with z marked in red; else None."""
        return None if self._map is None else self._map.rgb()

    @property
    def z(self) -> torch.Tensor:
        """The current latent, a CPU float32 copy ``[latent_dim]``."""
        return self._z.clone()

    def dims_shown(self) -> list[int]:
        """The latent dims the sliders control now (slider i -> dims_shown()[i])."""
        return self._order[self._offset : self._offset + self._n]

    def set_z(self, z: Any) -> None:
        """Set the whole latent ``[latent_dim]`` (e.g. an encoding), move the sliders and redraw."""
        new = torch.as_tensor(z, dtype=torch.float32).detach().to("cpu").reshape(-1)
        if new.numel() != self.latent_dim:
            raise ValueError(
                f"set_z got {new.numel()} values but latent_dim={self.latent_dim}; pass z of shape [D]."
            )
        self._z = new.clone()
        self._sync_sliders()
        self.update()

    def show_block(self, offset: int) -> None:
        """Let the sliders control dims ``order[offset : offset + n_sliders]`` (the selector's value)."""
        if not 0 <= offset < len(self._order):
            raise ValueError(f"block offset {offset} is outside 0..{len(self._order) - 1}.")
        self._offset = int(offset)
        if self.block is not None and self.block.value != self._offset:
            self.block.value = self._offset  # observer calls back here once with the same offset
            return
        self._sync_sliders()

    def show_example(self, index: int | None) -> None:
        """Set z to the encoder mean of example ``index`` and show the example beside its decode."""
        if index is None or self._examples is None or self._encode is None:
            return
        x = self._examples[index : index + 1]
        z = encode_means(self._encode, x)
        if z.shape[1] != self.latent_dim:
            raise ValueError(
                f"encode returned {z.shape[1]} latent values per example but latent_dim={self.latent_dim}; "
                "pass the encoder that matches the decoder."
            )
        self.last_example = as_display_image(x[0], self.image_shape)
        if self.example_image is not None and self.last_example is not None:
            self.example_image.value = png_bytes(self.last_example, self._scale)
        if self.example_picker is not None and self.example_picker.value != index:
            self._syncing = True
            # By index: value=None would select nothing, and the picker would show a blank box.
            values = [value for _, value in self.example_picker.options]
            self.example_picker.index = values.index(index) if index in values else 0
            self._syncing = False
        self.set_z(z[0])

    def interpolation(self, x_a: Any, x_b: Any, **kwargs: Any) -> InterpolationExplorer:
        """An :class:`InterpolationExplorer` between two inputs (or two example indices) of this explorer."""
        if self._encode is None:
            raise ValueError("interpolation needs an encoder; build the explorer with encode=model.encode.")
        if isinstance(x_a, int) and isinstance(x_b, int):
            if self._examples is None:
                raise ValueError(
                    "integer endpoints index the examples; build the explorer with examples=... ."
                )
            x_a, x_b = self._examples[x_a], self._examples[x_b]
        options = dict(
            image_shape=self.image_shape, output=self._output, device=self._device, scale=self._scale
        )
        options.update(kwargs)
        return InterpolationExplorer(self._decode, self._encode, x_a, x_b, **options)

    # --- redraw --------------------------------------------------------------------------------

    def _on_slider(self, i: int, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        dims = self.dims_shown()
        if i < len(dims):
            self._z[dims[i]] = float(change["new"])
            self.update()

    def _sync_sliders(self) -> None:
        """Point the sliders at the dims of the current block and show their values (no redraws)."""
        self._syncing = True
        try:
            dims = self.dims_shown()
            for i, slider in enumerate(self.sliders):
                if i < len(dims):
                    slider.description, slider.disabled = f"z[{dims[i]}]", False
                    slider.value = float(np.clip(self._z[dims[i]].item(), slider.min, slider.max))
                else:  # the last block can be shorter than n_sliders
                    slider.description, slider.disabled, slider.value = "—", True, 0.0
        finally:
            self._syncing = False

    def update(self) -> None:
        """Decode the current z and redraw every view (called on each change; callable directly)."""
        image = decode_images(
            self._decode, self._z[None], self.image_shape, output=self._output, device=self._device
        )
        self.last_image = image[0]
        self.image.value = png_bytes(self.last_image, self._scale)
        log_prior = -0.5 * float(self._z.pow(2).sum()) - self.latent_dim * 0.5 * math.log(2 * math.pi)
        self.status.value = f"|z| = {float(self._z.norm()):.2f}<br>log N(z; 0, I) = {log_prior:.1f}"
        if self._map is not None and self.map_widget is not None:
            self.map_widget.value = self._map.png(self._z)
