"""Figures for the reports: one function per figure, returning the matplotlib Figure.

Plots never compute a model quantity themselves: they draw what ``summary``,
``models``, ``value`` and the other modules return.
"""

from __future__ import annotations

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = [
    "style",
    "bar_distribution",
    "histogram",
    "tracking",
    "cohort_bars",
]

PALETTE = ["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d96a3", "#30638e"]


def style() -> None:
    """House style: small, legible figures that embed compactly in HTML reports."""
    matplotlib.rcParams.update({
        "figure.figsize": (7.5, 3.6),
        "figure.dpi": 90,
        "savefig.dpi": 90,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
        "font.size": 10,
        "svg.hashsalt": "clv-lab",
    })


def bar_distribution(table: pd.DataFrame, column: str, xlabel: str, ylabel: str, title: str):
    """A bar chart of one column of a small table (index on the x axis)."""
    fig, ax = plt.subplots()
    ax.bar(table.index.astype(str), table[column], color=PALETTE[0])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.tight_layout()
    return fig


def histogram(values: pd.Series, bins: int | np.ndarray, xlabel: str, title: str, marks: dict | None = None):
    """A histogram with optional labelled vertical marks (e.g. median)."""
    fig, ax = plt.subplots()
    ax.hist(values, bins=bins, color=PALETTE[0], alpha=0.85)
    for i, (label, x) in enumerate((marks or {}).items()):
        ax.axvline(x, color=PALETTE[1 + i], ls="--", label=f"{label}: {x:,.0f}")
    if marks:
        ax.legend()
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    fig.tight_layout()
    return fig


def tracking(actual: pd.DataFrame, expected: dict[str, pd.Series] | None = None,
             x: str = "period", split: float | None = None, unit: str = "week"):
    """Incremental and cumulative repeat purchases per period, actual vs models.

    Parameters
    ----------
    actual : DataFrame with columns ``x``, ``repeat`` and ``cumulative``.
    expected : mapping of model name -> DataFrame with the same two columns.
    split : period at which calibration ends (a vertical line), optional.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, col, title in zip(axes, ["repeat", "cumulative"], ["incremental", "cumulative"]):
        ax.plot(actual[x], actual[col], color="k", lw=1.6, label="actual")
        for i, (name, exp) in enumerate((expected or {}).items()):
            ax.plot(exp[x], exp[col], lw=1.3, ls="--", color=PALETTE[i % len(PALETTE)], label=name)
        if split is not None:
            ax.axvline(split, color="grey", ls=":", lw=1)
        ax.set(xlabel=unit, ylabel="repeat purchases", title=f"{title} repeat purchases per {unit}")
    axes[0].legend()
    fig.tight_layout()
    return fig


def cohort_bars(cohorts: pd.DataFrame, column: str = "new_customers", title: str = "new customers per cohort"):
    """Bar chart of new customers per first-purchase cohort."""
    fig, ax = plt.subplots()
    ax.bar(cohorts.index.astype(str), cohorts[column], color=PALETTE[0])
    ax.set(xlabel="first-purchase cohort", ylabel=column.replace("_", " "), title=title)
    if len(cohorts) > 12:
        ax.set_xticks(ax.get_xticks()[:: max(1, len(cohorts) // 12)])
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig
