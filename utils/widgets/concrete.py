"""A temperature slider for the Concrete / Gumbel-softmax distribution (lecture 10).

Left: ``n_samples`` draws of Concrete(logits, tau) for a 3-class variable, drawn on the triangle whose
corners are the one-hot codes (a point's barycentric coordinates are its three probabilities).
Right: a few relaxed one-hot codes of a ``n_classes``-class variable, one row each, the same
Gumbel noise at every temperature, so moving the slider shows each sample hardening or melting.

>>> explorer = ConcreteExplorer(logits3=[1.0, 0.0, -1.0])
>>> explorer                       # slider tau, the picture
>>> explorer.slider.value = 0.1    # headless: redrawn at once; explorer.last holds what is shown
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from utils.models.discrete import sample_gumbel
from utils.widgets.layout import Displayable

# Corners of the triangle for the three one-hot codes (an equilateral triangle of side 1).
_CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3.0) / 2.0]])


def simplex_to_plane(y: np.ndarray) -> np.ndarray:
    """Points of the 3-simplex [n, 3] to the plane [n, 2]: the triangle's corners weighted by y."""
    return np.asarray(y) @ _CORNERS


class ConcreteExplorer(Displayable):
    """A log-scale slider over the temperature tau of Concrete(logits, tau) samples.

    ``last`` holds what is shown: ``tau``, ``samples [n, 3]`` (on the simplex), ``codes [m, K]``
    (relaxed one-hot codes), ``sharpness`` (the mean largest coordinate of the 3-class samples: 1
    for one-hot samples, 1/3 at the centre) and ``corner_freq [3]`` (how often each class is the
    largest coordinate, which does not depend on tau: it is the Gumbel-max sample). Headless: set
    ``.slider.value`` and read ``.last``; ``.image`` holds the PNG.
    """

    def __init__(
        self,
        logits3: Sequence[float] = (1.0, 0.0, -1.0),
        logits_k: Sequence[float] | None = None,
        *,
        n_samples: int = 600,
        n_codes: int = 6,
        tau: float = 1.0,
        generator: torch.Generator | None = None,
        size: float = 3.4,
    ) -> None:
        self.logits3 = torch.as_tensor(logits3, dtype=torch.float64)
        if self.logits3.shape != (3,):
            raise ValueError(
                f"logits3 must hold 3 logits (one per corner of the triangle), got {list(logits3)}."
            )
        default_k = torch.linspace(1.5, -1.5, 10, dtype=torch.float64)
        self.logits_k = default_k if logits_k is None else torch.as_tensor(logits_k, dtype=torch.float64)
        if self.logits_k.dim() != 1 or self.logits_k.numel() < 2:
            raise ValueError("logits_k must be a 1-D list of at least 2 logits.")
        if not tau > 0:
            raise ValueError(f"tau must be positive, got {tau}.")
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        like = torch.zeros((), dtype=torch.float64)
        # Fixed noise: every temperature relaxes the same Gumbel draws, so a sample moves smoothly.
        self.noisy3 = self.logits3 + sample_gumbel((n_samples, 3), like, g).cpu()  # [n, 3]
        self.noisy_k = self.logits_k + sample_gumbel((n_codes, self.logits_k.numel()), like, g).cpu()
        self.size = size
        self.last: dict[str, Any] = {}
        self.slider = widgets.FloatLogSlider(
            value=tau, base=10, min=-2, max=1, step=0.05, description="tau", continuous_update=False,
            readout_format=".3f",
        )  # fmt: skip
        self.slider.observe(lambda _: self.update(), names="value")
        self.image = widgets.Image(format="png")
        self.update()
        self.widget = widgets.VBox([self.slider, self.image])

    def samples(self, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The relaxed samples at temperature tau: ([n, 3], [m, K])."""
        return torch.softmax(self.noisy3 / tau, -1), torch.softmax(self.noisy_k / tau, -1)

    def update(self) -> None:
        """Draw the samples at ``slider.value`` (called on each change; callable directly)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        tau = float(self.slider.value)
        y3, codes = self.samples(tau)
        y3_np, codes_np = y3.numpy(), codes.numpy()
        fig = Figure(figsize=(2.2 * self.size, self.size))
        FigureCanvasAgg(fig)
        ax, ax_codes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.2]})
        ax.fill(*_CORNERS.T, color="0.95", edgecolor="0.5")
        xy = simplex_to_plane(y3_np)
        ax.scatter(xy[:, 0], xy[:, 1], s=4, c=y3_np.argmax(1), cmap="viridis", vmin=0, vmax=2, alpha=0.6)
        p = torch.softmax(self.logits3, 0).numpy()
        for corner, name, prob in zip(_CORNERS, ("class 1", "class 2", "class 3"), p):
            ax.annotate(f"{name}\np = {prob:.2f}", corner, ha="center", va="center", fontsize=7,
                        xytext=(0, -14 if corner[1] == 0 else 12), textcoords="offset points")  # fmt: skip
        ax.set(xlim=(-0.15, 1.15), ylim=(-0.2, 1.0), aspect="equal")
        ax.set_axis_off()
        ax.set_title(f"Concrete samples, tau = {tau:.3g}", fontsize=9)
        ax_codes.imshow(codes_np, cmap="gray_r", vmin=0, vmax=1, aspect="auto")
        ax_codes.set(xlabel="class", ylabel="sample", xticks=range(codes_np.shape[1]), yticks=[])
        ax_codes.set_title(f"relaxed one-hot codes (K = {codes_np.shape[1]})", fontsize=9)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()
        corner_freq = np.bincount(y3_np.argmax(1), minlength=3) / len(y3_np)
        self.last = {"tau": tau, "samples": y3_np, "codes": codes_np,
                     "sharpness": float(y3_np.max(1).mean()), "corner_freq": corner_freq}  # fmt: skip
