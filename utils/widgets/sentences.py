"""Explorers of a sentence code space (lecture 11): a homotopy between two sentences, and the nearest
neighbours of a typed sentence.

Both take plain functions, so any sentence model fits:

* ``encode(sentences: list[str]) -> codes [N, D]`` (a tensor; e.g. a VAE's posterior means or
  skip-thought vectors of the tokenized sentences);
* ``decode(codes [N, D], greedy: bool, seed: int) -> list[str]`` (greedy decoding, or sampling with
  a generator seeded by ``seed``).

Headless use (tests, nbval): set a control's ``.value`` and read ``.last_greedy`` / ``.last_sampled``
/ ``.last_path`` or ``.last_neighbours``; or call ``update()``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import numpy as np
import torch

from utils.models.sequence import cosine_neighbours
from utils.widgets.interpolation import _interpolate
from utils.widgets.layout import Displayable

EncodeSentences = Callable[[list[str]], torch.Tensor]
DecodeSentences = Callable[[torch.Tensor, bool, int], list[str]]


def _codes(encode: EncodeSentences, sentences: list[str]) -> torch.Tensor:
    with torch.no_grad():
        z = encode(sentences)
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or len(z) != len(sentences):
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(
            f"encode(list of {len(sentences)} sentences) must return codes [{len(sentences)}, D], got {got}."
        )
    return z.detach()


def _short(sentence: str, width: int = 70) -> str:
    return sentence if len(sentence) <= width else sentence[: width - 1] + "…"


class SentenceHomotopy(Displayable):
    """Pick two sentences; the slider ``t`` moves z(t) on the line (or great circle, ``path="slerp"``)
    between their codes, and z(t) is decoded greedily and by sampling (``seed``). Below, the greedy
    decodes at ``n_steps`` evenly spaced t: the homotopies of Bowman et al. (2016)."""

    def __init__(
        self,
        encode: EncodeSentences,
        decode: DecodeSentences,
        sentences: Sequence[str],
        a: int = 0,
        b: int = 1,
        *,
        n_steps: int = 5,
        path: str = "linear",
    ) -> None:
        if len(sentences) < 2:
            raise ValueError(
                f"SentenceHomotopy needs at least 2 sentences to choose from, got {len(sentences)}."
            )
        if path not in ("linear", "slerp"):
            raise ValueError(f"path={path!r} is unknown; use 'linear' or 'slerp'.")
        if n_steps < 2:
            raise ValueError(f"n_steps={n_steps} must be at least 2 (the two ends).")
        self._encode, self._decode, self._path, self._n_steps = encode, decode, path, n_steps
        self.sentences = list(sentences)
        options = [(f"{i}: {_short(s)}", i) for i, s in enumerate(self.sentences)]
        layout = widgets.Layout(width="640px")
        self.first = widgets.Dropdown(options=options, value=a, description="from", layout=layout)
        self.second = widgets.Dropdown(options=options, value=b, description="to", layout=layout)
        self.slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t",
                                          continuous_update=False, readout_format=".2f")  # fmt: skip
        self.seed = widgets.IntSlider(value=0, min=0, max=50, description="seed", continuous_update=False)
        self.output = widgets.HTML()
        self.last_greedy, self.last_sampled, self.last_path = "", "", []
        for control in (self.first, self.second, self.slider, self.seed):
            control.observe(lambda _: self.update(), names="value")
        self.update()
        self.widget = widgets.VBox(
            [self.first, self.second, widgets.HBox([self.slider, self.seed]), self.output]
        )

    def codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes [D] of the two chosen sentences."""
        z = _codes(self._encode, [self.sentences[self.first.value], self.sentences[self.second.value]])
        return z[0], z[1]

    def z_at(self, t: float) -> torch.Tensor:
        z_a, z_b = self.codes()
        return _interpolate(z_a, z_b, float(t), self._path)

    def update(self) -> None:
        """Decode at the slider's t and along the whole path, and redraw."""
        z_a, z_b = self.codes()
        ts = np.linspace(0.0, 1.0, self._n_steps).tolist()
        path = torch.stack([_interpolate(z_a, z_b, t, self._path) for t in ts])
        here = _interpolate(z_a, z_b, float(self.slider.value), self._path)[None]
        with torch.no_grad():
            self.last_path = self._decode(path, True, 0)
            self.last_greedy = self._decode(here, True, 0)[0]
            self.last_sampled = self._decode(here, False, int(self.seed.value))[0]
        rows = "".join(
            f"<tr><td>t = {t:.2f}</td><td>{html.escape(s)}</td></tr>" for t, s in zip(ts, self.last_path)
        )
        self.output.value = (
            f"<b>greedy at t = {self.slider.value:.2f}:</b> {html.escape(self.last_greedy)}<br>"
            f"<b>sampled (seed {self.seed.value}):</b> {html.escape(self.last_sampled)}"
            f"<table style='margin-top: 8px'>{rows}</table>"
        )


class NearestSentences(Displayable):
    """Type a sentence: the ``k`` sentences of ``bank`` whose codes are most cosine-similar to its code."""

    def __init__(
        self,
        encode: EncodeSentences,
        bank: Sequence[str],
        *,
        bank_codes: torch.Tensor | None = None,
        k: int = 5,
        value: str = "",
    ) -> None:
        if not 1 <= k <= len(bank):
            raise ValueError(
                f"k={k} neighbours asked from a bank of {len(bank)} sentences; use 1 <= k <= {len(bank)}."
            )
        self._encode, self.k = encode, k
        self.bank = list(bank)
        self.bank_codes = _codes(encode, self.bank) if bank_codes is None else bank_codes.detach()
        if len(self.bank_codes) != len(self.bank):
            raise ValueError(f"bank_codes has {len(self.bank_codes)} rows for {len(self.bank)} sentences.")
        self.text = widgets.Text(value=value or self.bank[0], description="sentence",
                                 continuous_update=False, layout=widgets.Layout(width="640px"))  # fmt: skip
        self.output = widgets.HTML()
        self.last_neighbours: list[tuple[str, float]] = []
        self.text.observe(lambda _: self.update(), names="value")
        self.update()
        self.widget = widgets.VBox([self.text, self.output])

    def neighbours(self, sentence: str) -> list[tuple[str, float]]:
        """The k nearest bank sentences of ``sentence`` with their cosine similarities, nearest first."""
        query = _codes(self._encode, [sentence])
        sims, idx = cosine_neighbours(query.to(self.bank_codes.device), self.bank_codes, self.k)
        return [(self.bank[i], float(s)) for s, i in zip(sims[0].tolist(), idx[0].tolist())]

    def update(self) -> None:
        """Recompute the neighbours of the typed sentence and redraw."""
        self.last_neighbours = self.neighbours(self.text.value)
        rows = "".join(f"<tr><td>{s:.3f}</td><td>{html.escape(t)}</td></tr>" for t, s in self.last_neighbours)
        self.output.value = f"<table><tr><th>cosine</th><th>sentence</th></tr>{rows}</table>"
