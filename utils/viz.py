"""Static pictures for the course: image grids, 2-D densities, latent scatters and training curves.

Every function draws with matplotlib only and never calls ``plt.show()``: in Jupyter the figure
appears at the end of the cell (end the line with ``;`` to hide the returned Axes' text), and
headless runs (tests, CI, ``MPLBACKEND=Agg``) just build the figure. Functions that draw take an
optional ``ax`` and return the Axes they drew on; ``ax.figure`` is the Figure.

>>> from utils import viz
>>> grid = viz.image_grid(torch.rand(16, 784))          # np.ndarray [H, W] in [0, 1]
>>> viz.show_images(samples, title="VAE samples");
>>> viz.plot_density_2d(lambda x: toy_log_prob("ring8", x), samples=x_train[:500]);
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap

ArrayLike = torch.Tensor | np.ndarray
Bounds = tuple[float, float, float, float]


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def _to_numpy(x: Any) -> np.ndarray:
    """A CPU NumPy copy of a tensor, array or nested list (gradients dropped)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


def _square_side(d: int) -> int:
    side = math.isqrt(d)
    if side * side != d:
        raise ValueError(
            f"Cannot guess the image size of flat vectors of length {d} (not a square); pass "
            "image_shape=(H, W), reshape the images to [N, H, W], or pass one [H, W] image as image[None]."
        )
    return side


def as_image_batch(
    images: Any,
    image_shape: tuple[int, ...] | None = None,
    value_range: tuple[float, float] | str | None = (0.0, 1.0),
) -> np.ndarray:
    """Bring images to float32 NumPy ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` (colour) in [0, 1].

    Accepts ``[N, D]`` flat vectors (square images, or ``image_shape``), ``[N, H, W]``,
    ``[N, 1, H, W]``, ``[N, 3, H, W]`` or ``[N, H, W, 3]`` (a 2-D input is always ``[N, D]``: pass one
    ``[H, W]`` image as ``image[None]``); torch or NumPy;
    uint8 (0..255) or floats. Floats must lie in ``value_range`` (default [0, 1]); pass
    ``value_range="auto"`` to stretch min..max to [0, 1], or ``None`` to clip silently.
    """
    x = _to_numpy(images)
    if x.dtype == np.bool_:
        x = x.astype(np.float32)
    if x.ndim == 1:
        raise ValueError(
            f"Got a single flat vector of shape {tuple(x.shape)}; pass a batch [N, D] "
            "(e.g. x[None]) or an image [H, W]."
        )
    if image_shape is not None:
        x = x.reshape(x.shape[0], *image_shape) if x.ndim == 2 and len(image_shape) >= 2 else x
    if x.ndim == 2:
        side = _square_side(x.shape[1])
        x = x.reshape(x.shape[0], side, side)
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
            x = np.moveaxis(x, 1, -1)  # channels last for matplotlib
        if x.shape[-1] == 1:
            x = x[..., 0]
        elif x.shape[-1] != 3:
            raise ValueError(
                f"Images of shape {tuple(x.shape)} have neither 1 nor 3 channels; "
                "pass [N, H, W], [N, 1, H, W] or [N, 3, H, W]."
            )
    if x.ndim not in (3, 4):
        raise ValueError(
            f"Cannot read images of shape {tuple(x.shape)}; pass [N, D], [N, H, W] or [N, C, H, W]."
        )
    return _to_unit_range(x, value_range)


def _to_unit_range(x: np.ndarray, value_range: tuple[float, float] | str | None) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    x = x.astype(np.float32, copy=False)
    if value_range == "auto":
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if value_range is not None:
        lo, hi = value_range
        x_min, x_max = float(np.nanmin(x)), float(np.nanmax(x))
        slack = 1e-3 * (hi - lo)
        if x_min < lo - slack or x_max > hi + slack:
            raise ValueError(
                f"Image values span [{x_min:.3g}, {x_max:.3g}], outside value_range=({lo}, {hi}); if these "
                "are logits apply torch.sigmoid first, or pass value_range='auto' to stretch them."
            )
        x = (x - lo) / (hi - lo)
    return np.clip(x, 0.0, 1.0)


def image_grid(
    images: Any,
    nrow: int | None = None,
    pad: int = 1,
    *,
    pad_value: float = 1.0,
    image_shape: tuple[int, ...] | None = None,
    value_range: tuple[float, float] | str | None = (0.0, 1.0),
) -> np.ndarray:
    """Tile images into one array: ``[H_grid, W_grid]`` (grey) or ``[H_grid, W_grid, 3]`` in [0, 1].

    images: ``[N, 784]``, ``[N, 28, 28]``, ``[N, 1, 28, 28]`` (any square size), torch or NumPy,
    floats in [0, 1] or uint8. ``nrow`` is the number of images per row (default: a square-ish grid).
    ``pad`` pixels of ``pad_value`` separate the images and frame the grid, so
    ``H_grid = rows * (h + pad) + pad``.
    """
    x = as_image_batch(images, image_shape=image_shape, value_range=value_range)
    n, h, w = x.shape[:3]
    if n == 0:
        raise ValueError("image_grid got zero images; pass at least one.")
    ncol = nrow if nrow is not None else math.ceil(math.sqrt(n))
    if ncol < 1:
        raise ValueError(f"nrow must be a positive number of images per row, got {nrow}.")
    ncol = min(ncol, n)
    rows = math.ceil(n / ncol)
    grid = np.full(
        (rows * (h + pad) + pad, ncol * (w + pad) + pad, *x.shape[3:]), pad_value, dtype=np.float32
    )
    for i in range(n):
        r, c = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = x[i]
    return grid


def show_images(
    images: Any,
    nrow: int | None = None,
    title: str | None = None,
    ax: Axes | None = None,
    *,
    pad: int = 1,
    image_shape: tuple[int, ...] | None = None,
    value_range: tuple[float, float] | str | None = (0.0, 1.0),
    cmap: str = "gray",
    size: float = 4.0,
) -> Axes:
    """Show a grid of images (see :func:`image_grid` for accepted shapes) without axes ticks.

    ``size`` is the figure height in inches when a new figure is made. Returns the Axes.
    """
    grid = image_grid(images, nrow=nrow, pad=pad, image_shape=image_shape, value_range=value_range)
    if ax is None:
        aspect = grid.shape[1] / grid.shape[0]
        _, ax = plt.subplots(figsize=(max(size * aspect, 1.5), size))
    ax.imshow(grid, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------------------------------------
# 2-D densities and samples
# ---------------------------------------------------------------------------------------------


def _infer_device(fn: Callable[..., Any]) -> torch.device:
    """The device of a module (or of the module a bound method belongs to); CPU otherwise."""
    owner = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
    if isinstance(owner, torch.nn.Module):
        for tensor in owner.parameters():
            return tensor.device
        for tensor in owner.buffers():
            return tensor.device
    return torch.device("cpu")


def density_grid(
    log_prob_fn: Callable[[torch.Tensor], Any],
    bounds: Bounds = (-4.0, 4.0, -4.0, 4.0),
    n: int = 200,
    *,
    chunk: int = 16384,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``log_prob_fn`` on an ``n x n`` grid over ``bounds = (x_min, x_max, y_min, y_max)``.

    log_prob_fn: ``[M, 2] float32 -> [M]`` log-densities (normalized or not). Called under
    ``torch.no_grad`` in chunks of ``chunk`` points on ``device`` (default: the function's module
    device, else CPU). Returns NumPy ``(xs [n], ys [n], log_p [n, n])`` with ``log_p[i, j]`` at
    ``(xs[j], ys[i])``.
    """
    x_min, x_max, y_min, y_max = bounds
    device = torch.device(device) if device is not None else _infer_device(log_prob_fn)
    xs = torch.linspace(x_min, x_max, n)
    ys = torch.linspace(y_min, y_max, n)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)  # [n*n, 2]
    pieces = []
    with torch.no_grad():
        for start in range(0, points.shape[0], chunk):
            batch = points[start : start + chunk].to(device)
            out = torch.as_tensor(log_prob_fn(batch))
            if out.shape != (batch.shape[0],):
                raise ValueError(
                    f"log_prob_fn returned shape {list(out.shape)} for {batch.shape[0]} points; it must return "
                    f"one log-density per point, shape [{batch.shape[0]}] (did you forget to sum over "
                    "the last dimension?)."
                )
            pieces.append(out.detach().to("cpu", torch.float64))
    log_p = torch.cat(pieces).reshape(n, n).numpy()
    if np.isnan(log_p).any():
        i, j = np.argwhere(np.isnan(log_p))[0]
        raise ValueError(
            f"log_prob_fn returned NaN at {int(np.isnan(log_p).sum())} grid points, e.g. at "
            f"({xs[j]:.2f}, {ys[i]:.2f}); look for a log of a negative number or 0 * inf."
        )
    return xs.numpy(), ys.numpy(), log_p


def plot_density_2d(
    log_prob_fn: Callable[[torch.Tensor], Any],
    bounds: Bounds = (-4.0, 4.0, -4.0, 4.0),
    n: int = 200,
    ax: Axes | None = None,
    samples: Any = None,
    levels: int | Sequence[float] = 12,
    *,
    log_scale: bool = False,
    title: str | None = None,
    cmap: str = "viridis",
    device: torch.device | str | None = None,
    sample_color: str = "white",
    max_samples: int = 2000,
) -> Axes:
    """Filled contours of a 2-D density ``exp(log_prob_fn(x))`` (unnormalized is fine).

    log_prob_fn: ``[M, 2] -> [M]``, evaluated on an ``n x n`` grid (see :func:`density_grid`).
    ``log_scale=True`` contours the log-density instead (clipped 12 nats below its maximum), which
    shows the tails. ``samples`` (``[S, 2]``, at most ``max_samples`` drawn) are overlaid as dots.
    Returns the Axes.
    """
    xs, ys, log_p = density_grid(log_prob_fn, bounds, n, device=device)
    finite = np.isfinite(log_p)
    if not finite.any():
        raise ValueError("log_prob_fn is -inf (or inf) everywhere on the grid; widen bounds or check it.")
    peak = log_p[finite].max()
    if log_scale:
        values = np.where(finite, np.maximum(log_p, peak - 12.0), peak - 12.0)
    else:
        values = np.exp(np.where(finite, log_p - peak, -np.inf))  # peak-normalized: no overflow
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.contourf(xs, ys, values, levels=levels, cmap=cmap)
    if samples is not None:
        pts = _to_numpy(samples)[:max_samples]
        ax.scatter(pts[:, 0], pts[:, 1], s=3, c=sample_color, alpha=0.6, linewidths=0)
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title if title is not None else ("log density" if log_scale else "density"))
    return ax


def plot_samples_2d(
    samples: Any,
    ax: Axes | None = None,
    *,
    bounds: Bounds | None = None,
    title: str | None = None,
    s: float = 3.0,
    alpha: float = 0.5,
    color: str | None = None,
    label: str | None = None,
) -> Axes:
    """Scatter 2-D samples ``[N, 2]`` (e.g. data next to model samples). Returns the Axes."""
    pts = _to_numpy(samples)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"plot_samples_2d expects samples of shape [N, 2], got {list(pts.shape)}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, c=color, linewidths=0, label=label)
    if bounds is not None:
        ax.set_xlim(bounds[0], bounds[1])
        ax.set_ylim(bounds[2], bounds[3])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    if label:
        ax.legend(loc="upper right", fontsize="small", markerscale=4)
    return ax


# ---------------------------------------------------------------------------------------------
# Latent spaces
# ---------------------------------------------------------------------------------------------


def _project_2d(z: np.ndarray, dims: tuple[int, int], project: str | None) -> tuple[np.ndarray, list[str]]:
    if project is None:
        if max(dims) >= z.shape[1]:
            raise ValueError(f"dims={dims} do not exist in latents of shape {list(z.shape)}.")
        return z[:, list(dims)], [f"$z_{{{dims[0]}}}$", f"$z_{{{dims[1]}}}$"]
    if project == "pca":
        centred = z - z.mean(axis=0, keepdims=True)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return centred @ vt[:2].T, ["PC 1", "PC 2"]
    raise ValueError(f"project={project!r} is unknown; use None (pick dims) or 'pca'.")


def plot_latent_scatter(
    z: Any,
    labels: Any = None,
    ax: Axes | None = None,
    *,
    dims: tuple[int, int] = (0, 1),
    project: str | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = "latent space",
    s: float = 4.0,
    alpha: float = 0.7,
    max_points: int | None = None,
) -> Axes:
    """Scatter latent codes ``z [N, D]`` coloured by integer ``labels [N]`` with a legend of classes.

    For ``D > 2`` the two ``dims`` are shown, or the first two principal components when
    ``project="pca"``. All points go into one scatter (one collection of N points) so large sets stay
    fast; ``max_points`` keeps only the first ones. Returns the Axes.
    """
    zz = _to_numpy(z).astype(np.float64)
    if zz.ndim != 2 or zz.shape[1] < 2:
        raise ValueError(f"plot_latent_scatter expects z of shape [N, D] with D >= 2, got {list(zz.shape)}.")
    lab = None if labels is None else _to_numpy(labels).reshape(-1).astype(np.int64)
    if lab is not None and lab.shape[0] != zz.shape[0]:
        raise ValueError(
            f"Got {zz.shape[0]} latent codes but {lab.shape[0]} labels; pass one label per code."
        )
    if max_points is not None:
        zz, lab = zz[:max_points], (None if lab is None else lab[:max_points])
    xy, axis_names = _project_2d(zz, dims, project)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 4.2))
    if lab is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=s, alpha=alpha, linewidths=0)
    else:
        classes = int(lab.max()) + 1 if lab.size else 1
        colors = plt.get_cmap("tab10" if classes <= 10 else "tab20")(np.arange(classes) % 20)
        cmap = ListedColormap(colors)
        norm = BoundaryNorm(np.arange(classes + 1) - 0.5, classes)
        points = ax.scatter(xy[:, 0], xy[:, 1], c=lab, cmap=cmap, norm=norm, s=s, alpha=alpha, linewidths=0)
        handles, _ = points.legend_elements(num=list(range(classes)))
        names = class_names if class_names is not None else [str(c) for c in range(classes)]
        ax.legend(
            handles,
            names[: len(handles)],
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            fontsize="small",
            frameon=False,
            title="label",
        )
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------------------------------------
# Curves and histograms
# ---------------------------------------------------------------------------------------------

_STEP_KEYS = ("step", "steps", "epoch", "epochs", "iteration", "time")


def _as_mapping(history_or_dict: Any) -> Mapping[str, Any]:
    if hasattr(history_or_dict, "to_dict"):
        return history_or_dict.to_dict()
    if isinstance(history_or_dict, Mapping):
        return history_or_dict
    raise TypeError(
        f"plot_curves needs a dict of lists or an object with .to_dict() (utils.train.History), "
        f"got {type(history_or_dict).__name__}."
    )


def _series(values: Any, steps: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(x, y, sparse) for one logged key: a list of numbers, or a list of (step, value) pairs (sparse)."""
    if isinstance(values, str | Mapping):
        return None
    try:
        arr = np.asarray([_to_numpy(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim == 2 and arr.shape[1] == 2:
        return arr[:, 0], arr[:, 1], True
    if arr.ndim != 1 or arr.size == 0:
        return None
    if steps is not None and steps.shape[0] == arr.shape[0]:
        return steps, arr, False
    return np.arange(arr.shape[0], dtype=np.float64), arr, False


def _ema(y: np.ndarray, weight: float) -> np.ndarray:
    out = np.empty_like(y)
    acc = y[0]
    for i, v in enumerate(y):
        acc = weight * acc + (1 - weight) * v
        out[i] = acc
    return out


def plot_curves(
    history_or_dict: Any,
    keys: Sequence[str] | None = None,
    ax: Axes | None = None,
    logy: bool = False,
    *,
    smooth: float | None = None,
    title: str | None = None,
    xlabel: str = "step",
) -> Axes:
    """Plot logged training curves on one Axes, one line per key.

    history_or_dict: a ``utils.train.History`` (anything with ``.to_dict()``) or a dict mapping a key
    to a list of numbers (or of ``(step, value)`` pairs, drawn with dots, e.g. eval results). A
    ``"step"``/``"epoch"`` entry of the same length is used as the x axis. ``keys`` picks entries (default: every numeric one).
    ``smooth`` in [0, 1) draws an exponential moving average over the faint raw curve.
    Returns the Axes.
    """
    data = _as_mapping(history_or_dict)
    step_key = next((k for k in _STEP_KEYS if k in data), None)
    steps = None if step_key is None else np.asarray(data[step_key], dtype=np.float64)
    wanted = list(keys) if keys is not None else [k for k in data if k != step_key]
    missing = [k for k in wanted if k not in data]
    if missing:
        raise KeyError(f"plot_curves: no logged values for {missing}; available keys: {sorted(data)}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    for key in wanted:
        series = _series(data[key], steps)
        if series is None:
            if keys is not None:
                raise ValueError(f"plot_curves: values logged under {key!r} are not a list of numbers.")
            continue
        x, y, sparse = series
        marker = "o" if sparse else None  # eval results: a few points, drawn as dots
        if smooth and not sparse:
            (line,) = ax.plot(x, y, alpha=0.3)
            ax.plot(x, _ema(y, smooth), color=line.get_color(), label=key)
        else:
            ax.plot(x, y, marker=marker, markersize=3, label=key)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def plot_histograms(
    samples: Mapping[str, Any] | Any,
    bins: int = 50,
    ax: Axes | None = None,
    *,
    density: bool = True,
    title: str | None = None,
    xlabel: str | None = None,
) -> Axes:
    """Overlaid histograms of 1-D samples, e.g. two gradient estimators' spreads.

    samples: a tensor/array (flattened) or a dict ``{name: samples}``; each gets its own colour and
    its mean and standard deviation in the legend. Returns the Axes.
    """
    named = dict(samples) if isinstance(samples, Mapping) else {"samples": samples}
    arrays = {k: _to_numpy(v).astype(np.float64).reshape(-1) for k, v in named.items()}
    finite = [a[np.isfinite(a)] for a in arrays.values()]
    empty = [k for k, a in zip(arrays, finite) if not a.size]
    if empty:
        raise ValueError(
            f"plot_histograms got no finite values for {empty}; check those estimates for NaN or inf."
        )
    lo = min(a.min() for a in finite)
    hi = max(a.max() for a in finite)
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 3.5))
    for (name, _), vals in zip(arrays.items(), finite):
        ax.hist(
            vals,
            bins=edges,
            density=density,
            alpha=0.5,
            label=f"{name} ({vals.mean():.3g} ± {vals.std():.3g})",
        )
    ax.legend(fontsize="small")
    ax.set_ylabel("density" if density else "count")
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return ax
