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
    "grouped_bars",
    "lines_by_class",
    "heatmap",
    "p_alive_histories",
    "value_distribution",
    "concentration",
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


def grouped_bars(table: pd.DataFrame, xlabel: str, ylabel: str, title: str):
    """Side-by-side bars: one group per row of ``table``, one bar per column."""
    fig, ax = plt.subplots()
    n = len(table.columns)
    width = 0.8 / n
    pos = np.arange(len(table))
    for i, col in enumerate(table.columns):
        ax.bar(pos + (i - (n - 1) / 2) * width, table[col], width, label=str(col),
               color="k" if col == "actual" else PALETTE[i % len(PALETTE)], alpha=0.85)
    ax.set_xticks(pos, table.index.astype(str))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def lines_by_class(table: pd.DataFrame, xlabel: str, ylabel: str, title: str, actual: str = "actual"):
    """Actual (black) and model lines over ordered classes (e.g. conditional expectations)."""
    fig, ax = plt.subplots()
    x = np.arange(len(table))
    for i, col in enumerate(table.columns):
        style = dict(color="k", lw=2, marker="o") if col == actual else \
            dict(color=PALETTE[i % len(PALETTE)], ls="--", marker=".")
        ax.plot(x, table[col], label=str(col), **style)
    ax.set_xticks(x, table.index.astype(str))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def heatmap(matrix: pd.DataFrame, title: str, cbar_label: str, fmt_cols: int = 6):
    """A frequency x recency matrix as a heatmap (rows = x, bottom = 0)."""
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    im = ax.imshow(matrix.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set(xlabel=f"recency {matrix.columns.name}", ylabel=f"frequency {matrix.index.name}", title=title)
    step = max(1, len(matrix.columns) // fmt_cols)
    ax.set_xticks(np.arange(0, len(matrix.columns), step), matrix.columns[::step])
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=cbar_label)
    fig.tight_layout()
    return fig


def p_alive_histories(histories: dict[str, pd.DataFrame], purchases: dict[str, pd.Series], title: str):
    """P(alive) over time for a few customers, purchase days marked."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for i, (name, h) in enumerate(histories.items()):
        c = PALETTE[i % len(PALETTE)]
        ax.plot(h["date"], h["p_alive"], color=c, lw=1.4, label=name)
        days = pd.to_datetime(purchases[name])
        ax.plot(days, np.interp(days.astype("int64"), h["date"].astype("int64"), h["p_alive"]),
                "o", color=c, ms=4)
    ax.set(ylabel="P(alive)", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def value_distribution(values: pd.Series, xlabel: str, title: str, bins: int = 60):
    """Histogram of a per-customer value on a log axis; values below max(1st percentile, 0.01) are counted in the title."""
    v = values.to_numpy(float)
    floor = max(np.quantile(v, 0.01), 1e-2) if (v > 0).any() else 0.0
    pos = v[v > floor]
    fig, ax = plt.subplots()
    if len(pos):
        edges = np.logspace(np.log10(pos.min()), np.log10(pos.max()), bins)
        ax.hist(pos, bins=edges, color=PALETTE[0], alpha=0.85)
        ax.set_xscale("log")
    n_low = int((v <= floor).sum())
    ax.set(xlabel=xlabel, ylabel="customers",
           title=title + (f"\n({n_low:,} customers at or below {floor:,.2f} not shown)" if n_low else ""))
    fig.tight_layout()
    return fig


def concentration(curves: dict[str, pd.DataFrame], title: str, marks=(0.01, 0.1, 0.2)):
    """Concentration / capture curves (share of value vs share of customers), diagonal for reference."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="equal value")
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(c["share_customers"], c["share_value"], color=PALETTE[i % len(PALETTE)], lw=1.8, label=name)
    for m in marks:
        ax.axvline(m, color="grey", lw=0.6, alpha=0.5)
    ax.set(xlabel="share of customers (ranked)", ylabel="share of value", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
