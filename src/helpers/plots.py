"""Figures for the reports: one function per figure, drawn with seaborn on one project theme.

Conventions (those of lifetimes and pymc-marketing):

* every plot function takes ``ax=None``: without it the function makes its
  own figure, with it the function draws into the given Axes (so figures can
  be composed);
* every plot function returns the Axes it drew on.  The two multi-panel
  figures return a 1-D NumPy array of their Axes instead: :func:`tracking`
  (incremental, cumulative) and :func:`helpers.plots_segments.sensitivity`
  (one panel per setting); their ``ax`` is then a sequence of Axes;
* value axes carry their unit, and money axes the currency (``currency=``);
* legends sit outside the data area (right of the axes) unless the data leave
  a corner free by construction;
* plots never compute a model quantity themselves: they draw what
  ``summary``, ``models``, ``value`` and the other modules return.

Call :func:`style` once (each notebook does) for the theme: seaborn's
``whitegrid`` with the Okabe-Ito colour-blind-safe palette and legend and tick
labels of at least 10 pt.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from .report import fmt_money, fmt_number

__all__ = [
    "PALETTE",
    "NEUTRAL",
    "BLUE", "ORANGE", "GREEN", "PURPLE", "VERMILLION", "SKY", "YELLOW",
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

#: The Okabe & Ito (2008) colour-blind-safe colours, by name.
BLUE, ORANGE, GREEN, PURPLE, VERMILLION, SKY, YELLOW = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442")
#: Series colours in this order: any four of the first four differ by a CIELAB distance of 50 or more
#: (orange and vermillion, the closest Okabe-Ito pair, are not both among them).
PALETTE = [BLUE, ORANGE, GREEN, PURPLE, VERMILLION, SKY, YELLOW]
#: Reference lines, "actual" series and other non-data marks.
NEUTRAL = "#555555"
#: Smallest font size (points) of legends and tick labels in the theme.
MIN_FONT = 10

_RC = {
    "figure.figsize": (9.0, 3.8),
    "figure.dpi": 90,
    "savefig.dpi": 90,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "grid.alpha": 0.4,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": MIN_FONT,
    "ytick.labelsize": MIN_FONT,
    "legend.fontsize": MIN_FONT,
    "legend.title_fontsize": MIN_FONT,
    "legend.framealpha": 0.9,
    "svg.hashsalt": "clv-lab",
}


def style() -> None:
    """Set the project theme (seaborn ``whitegrid``, Okabe-Ito palette, legible legends and ticks)."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, rc=_RC)
    # seaborn's context scales fonts; restate the sizes the reports rely on
    matplotlib.rcParams.update(_RC)
    matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=PALETTE)


# ---------------------------------------------------------------------------
# shared helpers of the plots_* modules
# ---------------------------------------------------------------------------

def new_axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    """``ax`` itself, or the Axes of a new constrained-layout figure of ``figsize``."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def new_axes_grid(ax, n: int, nrows: int, ncols: int, figsize: tuple[float, float], **kw) -> np.ndarray:
    """The first ``n`` of the given Axes (a sequence), or of a new ``nrows x ncols`` grid."""
    if ax is not None:
        axes = np.asarray(ax, dtype=object).ravel()
        if len(axes) < n:
            raise ValueError(f"this figure has {n} panels but ax holds {len(axes)} Axes")
        return axes[:n]
    _, grid = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained", **kw)
    flat = grid.ravel()
    for extra in flat[n:]:
        extra.set_visible(False)
    return flat[:n]


def with_unit(text: str, unit: str | None = None) -> str:
    """Axis label with its unit in brackets: ``with_unit("revenue", "USD")`` -> ``"revenue (USD)"``."""
    return f"{text} ({unit})" if unit else text


def money_axis(ax: Axes, currency: str | None = None, axis: str = "y") -> None:
    """Tick labels with thousands separators (the currency is in the axis label, see :func:`label`)."""
    fmt = plt.FuncFormatter(lambda v, _: fmt_money(v, None, decimals=0 if abs(v) >= 10 or v == 0 else 2))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def percent_axis(ax: Axes, axis: str = "y", decimals: int = 0) -> None:
    """Tick labels of a 0..1 axis as percentages."""
    fmt = plt.FuncFormatter(lambda v, _: f"{v:.{decimals}%}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def legend_outside(ax: Axes, handles=None, labels=None, title: str | None = None, **kw):
    """A legend to the right of the axes (never on the data); returns it."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    old = ax.get_legend()
    if old is not None:
        old.remove()
    return ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     title=title, **kw)


def thin_ticks(ax: Axes, labels: Sequence[str], max_ticks: int = 12, rotation: float = 45) -> None:
    """At most ``max_ticks`` category labels on the x axis (positions 0..n-1)."""
    pos = np.arange(len(labels))
    step = max(1, int(np.ceil(len(labels) / max_ticks)))
    ax.set_xticks(pos[::step], [labels[i] for i in pos[::step]])
    ax.tick_params(axis="x", rotation=rotation)


def colors(n: int) -> list[str]:
    """``n`` distinct colours of the palette (cycled beyond its length)."""
    return [PALETTE[i % len(PALETTE)] for i in range(n)]


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------

def bar_distribution(table: pd.DataFrame, column: str, xlabel: str, ylabel: str, title: str,
                     *, ax: Axes | None = None) -> Axes:
    """A bar chart of one column of a small table (index on the x axis, one bar per row)."""
    ax = new_axes(ax)
    names = table.index.astype(str).tolist()
    sns.barplot(x=names, y=table[column].to_numpy(float), order=names, color=BLUE, saturation=1, ax=ax)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return ax


def histogram(values: pd.Series, bins: int | np.ndarray, xlabel: str, title: str, marks: dict | None = None,
              *, unit: str | None = None, weights=None, ax: Axes | None = None) -> Axes:
    """A histogram of ``values`` with optional labelled vertical marks (e.g. ``{"median": m}``).

    ``weights`` (one per value) draws a value count: each distinct value once with its count, the same
    bars as the expanded values (the bins span the same minimum and maximum).
    """
    ax = new_axes(ax)
    w = None if weights is None else np.asarray(weights, dtype=float)
    sns.histplot(x=np.asarray(values, dtype=float), weights=w, bins=bins, color=BLUE, alpha=0.85, ax=ax)
    for i, (name, x) in enumerate((marks or {}).items()):
        ax.axvline(x, color=PALETTE[1 + i % (len(PALETTE) - 1)], ls="--", lw=1.6,
                   label=f"{name}: {fmt_number(x)}" + (f" {unit}" if unit else ""))
    if marks:
        legend_outside(ax)
    ax.set(xlabel=with_unit(xlabel, unit), ylabel="count", title=title)
    return ax


def tracking(actual: pd.DataFrame, expected: dict[str, pd.DataFrame] | None = None,
             x: str = "period", split: float | None = None, unit: str = "week",
             *, ax: Sequence[Axes] | None = None) -> np.ndarray:
    """Incremental and cumulative repeat purchases per period, actual against models (two panels).

    Parameters
    ----------
    actual : DataFrame with columns ``x``, ``repeat`` and ``cumulative``.
    expected : mapping of model name -> DataFrame with the same three columns.
    split : period at which calibration ends: a labelled vertical line, optional.
    unit : the period's name (axis labels).
    ax : two Axes to draw into, optional.

    Returns
    -------
    ndarray of 2 Axes (incremental, cumulative); the legend is to the right of the second.
    """
    axes = new_axes_grid(ax, 2, 1, 2, (12, 3.9))
    series = {"actual": actual, **(expected or {})}
    palette = {"actual": "black", **dict(zip(expected or {}, colors(len(expected or {}))))}
    for a, col, kind in zip(axes, ["repeat", "cumulative"], ["incremental", "cumulative"]):
        for name, frame in series.items():
            sns.lineplot(x=frame[x].to_numpy(float), y=frame[col].to_numpy(float), color=palette[name],
                         lw=1.8 if name == "actual" else 1.5, ls="-" if name == "actual" else "--",
                         label=name, estimator=None, ax=a)
        if split is not None:
            a.axvline(split, color=NEUTRAL, ls=":", lw=1.4, label=f"calibration end ({unit} {split:.0f})")
            a.annotate("calibration end", (split, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                       textcoords="offset points", ha="left", va="top", fontsize=MIN_FONT, color=NEUTRAL)
        a.set(xlabel=unit, ylabel="repeat purchases", title=f"{kind} repeat purchases per {unit}")
        if a.get_legend() is not None:
            a.get_legend().remove()
    legend_outside(axes[-1])
    return axes


def cohort_bars(cohorts: pd.DataFrame, column: str = "new_customers", title: str = "new customers per cohort",
                *, ax: Axes | None = None) -> Axes:
    """Bar chart of new customers per first-purchase cohort (one bar per cohort)."""
    ax = new_axes(ax)
    names = cohorts.index.astype(str).tolist()
    sns.barplot(x=names, y=cohorts[column].to_numpy(float), order=names, color=BLUE, saturation=1, ax=ax)
    ax.set(xlabel="first-purchase cohort", ylabel=column.replace("_", " "), title=title)
    thin_ticks(ax, names)
    return ax


def grouped_bars(table: pd.DataFrame, xlabel: str, ylabel: str, title: str,
                 *, ax: Axes | None = None) -> Axes:
    """Side-by-side bars: one group per row of ``table``, one bar (and legend entry) per column.

    A column named ``actual`` is drawn in black, the others in the palette.
    """
    ax = new_axes(ax)
    groups = table.index.astype(str).tolist()
    cols = [str(c) for c in table.columns]
    long = pd.DataFrame({
        "group": np.repeat(groups, len(cols)),
        "series": cols * len(groups),
        "value": table.to_numpy(float).ravel(),
    })
    model_colors = iter(colors(len(cols)))
    palette = {c: ("black" if c == "actual" else next(model_colors)) for c in cols}
    sns.barplot(data=long, x="group", y="value", hue="series", order=groups, hue_order=cols, palette=palette,
                alpha=0.9, saturation=1, ax=ax)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    legend_outside(ax)
    return ax


def lines_by_class(table: pd.DataFrame, xlabel: str, ylabel: str, title: str, actual: str = "actual",
                   *, ax: Axes | None = None) -> Axes:
    """Actual (black, solid) and model lines (coloured, dashed) over ordered classes; one line per column."""
    ax = new_axes(ax)
    pos = np.arange(len(table), dtype=float)
    model_colors = iter(colors(len(table.columns)))
    for col in table.columns:
        is_actual = col == actual
        sns.lineplot(x=pos, y=table[col].to_numpy(float), label=str(col), estimator=None,
                     color="black" if is_actual else next(model_colors), lw=2.0 if is_actual else 1.5,
                     ls="-" if is_actual else "--", marker="o" if is_actual else "s", ms=5, ax=ax)
    ax.set_xticks(pos, table.index.astype(str))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    legend_outside(ax)
    return ax


def heatmap(matrix: pd.DataFrame, title: str, cbar_label: str, fmt_cols: int = 6,
            *, ax: Axes | None = None) -> Axes:
    """A frequency x recency matrix as a heatmap (rows = x, x = 0 at the bottom); the colour bar is labelled."""
    ax = new_axes(ax, (6.4, 4.4))
    xstep = max(1, len(matrix.columns) // fmt_cols)
    ystep = max(1, int(np.ceil(len(matrix.index) / 15)))
    sns.heatmap(matrix.astype(float), cmap="viridis", cbar_kws={"label": cbar_label}, xticklabels=xstep,
                yticklabels=ystep, ax=ax)
    ax.invert_yaxis()
    ax.grid(False)
    ax.tick_params(axis="x", rotation=0)
    ax.tick_params(axis="y", rotation=0)
    ax.set(xlabel=f"recency {matrix.columns.name or ''}".strip(),
           ylabel=f"frequency {matrix.index.name or ''}".strip(), title=title)
    return ax


def p_alive_histories(histories: dict[str, pd.DataFrame], purchases: dict[str, pd.Series], title: str,
                      *, ax: Axes | None = None) -> Axes:
    """P(alive) over time for a few customers (one line and legend entry each), purchase days as dots."""
    ax = new_axes(ax, (10, 4.0))
    for (name, h), c in zip(histories.items(), colors(len(histories))):
        dates = pd.to_datetime(h["date"])
        sns.lineplot(x=dates, y=h["p_alive"].to_numpy(float), color=c, lw=1.6, label=name, estimator=None, ax=ax)
        days = pd.to_datetime(pd.Series(purchases[name]))
        ax.plot(days, np.interp(days.astype("int64"), dates.astype("int64"), h["p_alive"].to_numpy(float)),
                "o", color=c, ms=5, label="_nolegend_")
    ax.set(ylabel="P(alive)", xlabel="date", ylim=(0, 1.05), title=title)
    legend_outside(ax, title="customer (dots: purchase days)")
    return ax


def value_distribution(values: pd.Series, xlabel: str, title: str, bins: int = 60,
                       *, currency: str | None = None, ax: Axes | None = None) -> Axes:
    """Histogram of a per-customer value on a log axis.

    Values at or below max(1st percentile, 0.01) cannot be drawn on a log
    axis; their number is given in the title.
    """
    ax = new_axes(ax)
    v = np.asarray(values, dtype=float)
    floor = max(float(np.quantile(v, 0.01)), 1e-2) if (v > 0).any() else 0.0
    pos = v[v > floor]
    if len(pos):
        sns.histplot(x=pos, bins=bins, log_scale=True, color=BLUE, alpha=0.85, ax=ax)
    n_low = int((v <= floor).sum())
    note = f"\n({n_low:,} customers at or below {fmt_money(floor, currency)} not shown)" if n_low else ""
    ax.set(xlabel=with_unit(xlabel, currency), ylabel="customers", title=title + note)
    return ax


def concentration(curves: dict[str, pd.DataFrame], title: str, marks=(0.01, 0.1, 0.2),
                  *, ax: Axes | None = None) -> Axes:
    """Concentration / capture curves (share of value vs share of customers), diagonal for reference."""
    ax = new_axes(ax, (7.2, 4.2))
    ax.plot([0, 1], [0, 1], color=NEUTRAL, ls=":", lw=1.2, label="equal value")
    for (name, c), col in zip(curves.items(), colors(len(curves))):
        sns.lineplot(x=c["share_customers"].to_numpy(float), y=c["share_value"].to_numpy(float), color=col,
                     lw=1.8, label=name, estimator=None, ax=ax)
    for m in marks:
        ax.axvline(m, color=NEUTRAL, lw=0.7, alpha=0.5)
    percent_axis(ax, "x")
    percent_axis(ax, "y")
    ax.set(xlabel="share of customers (ranked)", ylabel="share of value", title=title, xlim=(0, 1), ylim=(0, 1.02))
    legend_outside(ax)
    return ax


def multipliers(table: pd.DataFrame, title: str, *, ax: Axes | None = None) -> Axes:
    """Forest plot of covariate effects: one row per (quantity, covariate) of ``table`` (columns ``covariate``,
    ``quantity``, ``multiplier``, ``lower``, ``upper``; rows with an undefined multiplier are left out), the
    multiplier with its interval on a log axis, and the line of no effect at 1."""
    t = table.dropna(subset=["multiplier", "lower", "upper"])
    t = t[(t["multiplier"] > 0) & (t["lower"] > 0)]
    ax = new_axes(ax, figsize=(8, 0.5 * max(len(t), 2) + 1.2))
    labels = [f"{c}  ({q})" for c, q in zip(t["covariate"], t["quantity"])]
    y = np.arange(len(t))[::-1]
    quantities = list(dict.fromkeys(t["quantity"]))
    palette = dict(zip(quantities, colors(len(quantities))))
    for yi, (_, row) in zip(y, t.iterrows()):
        c = palette[row["quantity"]]
        ax.plot([row["lower"], row["upper"]], [yi, yi], color=c, lw=2)
        ax.plot([row["multiplier"]], [yi], "o", color=c)
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.set_xlabel("multiplier per unit of the covariate (log scale; 1 = no effect)")
    ax.set_title(title)
    return ax
