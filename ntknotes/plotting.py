"""One style for every figure of the book.

The convention: every figure comes from :func:`figure` (which applies :func:`use_style`), a
single panel at ``SINGLE`` inches and each panel of a grid at ``PANEL`` unless a figure
needs other proportions (small multiples, a legend below the axes); series take their colours
from ``COLORS`` in order; a legend with many entries uses ``fontsize=LEGEND_SMALL``; axes that
recur across chapters are labelled from ``LABELS``, in the notation of the book.
"""
from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["use_style", "COLORS", "SINGLE", "PANEL", "LEGEND_SMALL", "LABELS", "figure", "add_slope_guide"]

# Colour-blind-safe palette (Okabe–Ito), in the order chapters use for series.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

# Sizes in inches: a figure of one panel, and each panel of a grid.
SINGLE = (5.0, 3.4)
PANEL = (3.6, 3.0)
# Font size of a crowded legend (the style's default is 8.5).
LEGEND_SMALL = 7.5
# Axis labels that recur across chapters (notation of the book's Notation page).
LABELS = {
    "width": "width n",
    "depth": "depth L",
    "step": "step k",
    "time": "time t = ηk",
    "accuracy": "test accuracy (%)",
    "n_train": "training points N",
}

_STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "figure.figsize": (6.4, 4.0),
    "axes.prop_cycle": mpl.cycler(color=COLORS),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "font.size": 10,
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the book's matplotlib style (idempotent)."""
    mpl.rcParams.update(_STYLE)


def figure(ncols: int = 1, nrows: int = 1, *, width: "float | None" = None, height: "float | None" = None,
           **kwargs):
    """A styled figure with a grid of axes, each about ``width`` × ``height`` inches.

    The sizes default to ``SINGLE`` for one panel and to ``PANEL`` for each of several.
    """
    default = SINGLE if ncols * nrows == 1 else PANEL
    width = default[0] if width is None else width
    height = default[1] if height is None else height
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), constrained_layout=True, **kwargs)
    return fig, axes


def add_slope_guide(ax, x, slope: float, anchor: float, *, label: str | None = None, **kwargs) -> None:
    """Draw y = anchor · (x / x[0])^slope on log-log axes as a dashed reference line."""
    x = np.asarray(x, dtype=float)
    ax.plot(x, anchor * (x / x[0]) ** slope, "--", color=kwargs.pop("color", "0.4"), lw=1.2,
            label=label if label is not None else f"slope {slope:g}", **kwargs)
