"""Layout pieces shared by the explorers: sliders, columns that wrap instead of overlapping, PNG image
widgets, and a base class that displays its widget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

# A change that takes longer than this is only applied on slider release (continuous_update=False).
SMOOTH_SECONDS = 0.05


def float_slider(description: str, r: float, step: float, value: float = 0.0) -> widgets.FloatSlider:
    return widgets.FloatSlider(
        value=value,
        min=-r,
        max=r,
        step=step,
        description=description,
        readout_format=".2f",
        continuous_update=True,
        layout=widgets.Layout(width="320px"),
        style={"description_width": "56px"},
    )


def column(children: Sequence[widgets.Widget], width: str | None = None) -> widgets.VBox:
    """A column that keeps its natural (or given) width and leaves a gap to its right.

    ipywidgets boxes are flex items with ``overflow: auto``, so a row that is too narrow squeezes
    them below their content's width and their contents overlap the next column (slider readouts
    over the example image). ``flex: 0 0 auto`` forbids the squeeze; the row wraps
    instead (see :func:`row`). ``align_items`` keeps images at their own size instead of
    stretching them to the column's width.
    """
    layout = widgets.Layout(flex="0 0 auto", width=width, margin="0 16px 8px 0", align_items="flex-start")
    return widgets.VBox(list(children), layout=layout)


def row(children: Sequence[widgets.Widget]) -> widgets.HBox:
    """Columns side by side, wrapping onto a new line where the notebook is too narrow for them."""
    return widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"))


def image_widget(height: int, width: int, value: bytes | None = None) -> widgets.Image:
    """A PNG Image widget shown at ``width x height`` CSS pixels (the PNG's own size), whatever the box."""
    layout = widgets.Layout(width=f"{width}px", height=f"{height}px", object_fit="contain")
    return widgets.Image(value=value if value is not None else b"", format="png", layout=layout)


class Displayable:
    """Display ``self.widget`` when the object is the last expression of a cell or passed to display()."""

    widget: widgets.Widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
