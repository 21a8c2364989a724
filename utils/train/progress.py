"""What ``fit`` shows while it trains: a tqdm bar, a live loss curve in a notebook, text lines elsewhere."""

from __future__ import annotations

import time
from typing import Any

from utils.train.history import History


def in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class LivePlot:
    """A loss curve in a notebook display handle, redrawn at most every ``interval`` seconds.

    The figure is rendered to PNG here, so it shows whatever matplotlib backend the kernel uses.
    """

    def __init__(self, interval: float = 2.0):
        from matplotlib.figure import Figure

        self.interval = interval
        self.last_draw = 0.0
        self.fig = Figure(figsize=(6.0, 3.0))
        self.ax = self.fig.add_subplot()
        self.handle = None

    def _png(self) -> Any:
        import io

        from IPython.display import Image

        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        return Image(data=buffer.getvalue(), format="png")

    def update(self, history: History, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last_draw < self.interval:
            return
        self.last_draw = now
        self.ax.clear()
        history.plot([k for k in ("loss", "eval_loss") if k in history], ax=self.ax)
        if self.handle is None:
            from IPython.display import display

            self.handle = display(self._png(), display_id=True)
        else:
            self.handle.update(self._png())


class Progress:
    def __init__(self, total: int, initial: int, enabled: bool, live_plot: bool):
        self.enabled = enabled
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=True)
        self.plot = LivePlot() if live_plot else None

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def logged(self, history: History) -> None:
        if self.bar is not None:
            self.bar.set_postfix(
                {k: f"{v[-1]:.4g}" for k, v in list(history.values.items())[:4]}, refresh=False
            )
        if self.plot is not None:
            self.plot.update(history)

    def say(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line)

    def close(self, history: History) -> None:
        if self.plot is not None and history.steps:
            self.plot.update(history, force=True)
        if self.bar is not None:
            self.bar.close()
