"""Figures for the revenue-dynamics report: bridge, cohorts, returning share, order value, market.

Conventions as in :mod:`helpers.plots`: one function per figure, ``ax=None``,
the Axes returned, the currency on money axes; they draw what
:mod:`helpers.revenue` and :func:`helpers.simulate.simulate_market` return and
compute no model quantity themselves.  Call :func:`helpers.plots.style` first.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from .plots import (
    BLUE, GREEN, NEUTRAL, ORANGE, SKY, VERMILLION, colors, legend_outside, money_axis, new_axes, percent_axis, thin_ticks, with_unit,
)
from .report import fmt_money, fmt_number, fmt_share

__all__ = [
    "COMPONENT_COLORS",
    "HEADROOM",
    "bridge_bars",
    "bridge_waterfall",
    "cohort_heatmap",
    "returning_share",
    "order_value_by_number",
    "market_scatter",
]

#: One colour per bridge component: gains blue / green / sky blue, losses orange / vermillion.
COMPONENT_COLORS = {
    "new": BLUE,
    "expansion": GREEN,
    "resurrected": SKY,
    "contraction": ORANGE,
    "churned": VERMILLION,
}
_GAINS = ("new", "expansion", "resurrected")
_LOSSES = ("contraction", "churned")
#: Free space above the highest and below the lowest bar, as a share of the data range.
HEADROOM = 0.08


def _pad_limits(ax: Axes, low: float, high: float, pad: float = HEADROOM) -> None:
    span = max(high - low, 1e-12)
    ax.set_ylim(low - pad * span if low < 0 else min(0.0, low), high + pad * span)


def bridge_bars(table: pd.DataFrame, title: str = "Revenue bridge per period", ylabel: str = "revenue change",
                *, currency: str = "", ax: Axes | None = None) -> Axes:
    """Stacked bars of the bridge components per period, net change as black dots.

    Gains (new, expansion, resurrected) stack upwards, losses (contraction,
    churned) downwards; the dot is ``change`` = revenue(t) - revenue(t-1),
    which the bars sum to.  The first period (no previous period) is left out.
    The y limits leave :data:`HEADROOM` of the range free above the highest
    stack and below the lowest; the legend is outside the axes.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`helpers.revenue.growth_accounting`.
    currency : str
        Currency of the value axis.
    """
    t = table.iloc[1:]
    labels = [str(p) for p in t.index]
    x = np.arange(len(t))
    ax = new_axes(ax, (10, 4.2))
    up = np.zeros(len(t))
    down = np.zeros(len(t))
    handles = []
    for comp in (*_GAINS, *_LOSSES):
        v = t[comp].to_numpy(dtype=float)
        base = up if comp in _GAINS else down
        handles.append(ax.bar(x, v, 0.8, bottom=base.copy(), color=COMPONENT_COLORS[comp], label=comp, alpha=0.95))
        base += v
    change = t["change"].to_numpy(dtype=float)
    handles += ax.plot(x, change, "o", color="black", ms=4, label="net change")
    ax.axhline(0, color="black", lw=0.8)
    if len(t):
        thin_ticks(ax, labels)
        _pad_limits(ax, float(min(down.min(initial=0.0), change.min(initial=0.0))),
                    float(max(up.max(initial=0.0), change.max(initial=0.0))))
    else:  # a log of one period: nothing to account for, an empty frame that says so
        ax.set_xticks([])
        ax.text(0.5, 0.5, "one period only: no change to account for", transform=ax.transAxes,
                ha="center", va="center", color="grey")
    ax.set(ylabel=with_unit(ylabel, currency or None), title=title)
    money_axis(ax, currency)
    legend_outside(ax, handles, [h.get_label() for h in handles])
    return ax


def bridge_waterfall(table: pd.DataFrame, title: str = "Revenue bridge, first to last period",
                     ylabel: str = "revenue per period", *, currency: str = "", ax: Axes | None = None) -> Axes:
    """Waterfall from the first period's level (revenue, purchases, ...) to the last period's.

    Each component bar is the component summed over all periods after the
    first; by the bridge identity they carry level(first) exactly to
    level(last).  Every bar is labelled with its amount.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`helpers.revenue.growth_accounting` for any measure (the
        level column is ``attrs["measure"]``, ``revenue`` by default).
    """
    t = table.iloc[1:]
    measure = table.attrs.get("measure", "revenue")
    first_rev = float(table[measure].iloc[0])
    last_rev = float(table[measure].iloc[-1])
    comps = [*_GAINS, *_LOSSES]
    steps = [float(t[c].sum()) for c in comps]
    ax = new_axes(ax, (8.5, 4.0))
    names = [f"{measure}\n{table.index[0]}"] + comps + [f"{measure}\n{table.index[-1]}"]
    ax.bar(0, first_rev, 0.7, color=NEUTRAL)
    level = first_rev
    levels = [first_rev]
    for i, (c, s) in enumerate(zip(comps, steps), start=1):
        ax.bar(i, s, 0.7, bottom=level, color=COMPONENT_COLORS[c])
        ax.plot([i - 1 + 0.35, i - 0.35], [level, level], color="grey", lw=0.8)
        level += s
        levels.append(level)
    ax.plot([len(comps) + 0.35 - 1, len(comps) + 1 - 0.35], [level, level], color="grey", lw=0.8)
    ax.bar(len(comps) + 1, last_rev, 0.7, color=NEUTRAL)
    ymax = max(first_rev, last_rev, *levels)
    for i, v in enumerate([first_rev] + steps + [last_rev]):
        ax.annotate(fmt_money(v, None, decimals=0, signed=0 < i <= len(comps)), (i, ymax * 1.02),
                    ha="center", fontsize=9)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set(ylabel=with_unit(ylabel, currency or None), title=title, ylim=(min(0, ymax * -0.05), ymax * 1.12))
    money_axis(ax, currency)
    ax.axhline(0, color="black", lw=0.8)
    return ax


def cohort_heatmap(matrix: pd.DataFrame, title: str, cbar_label: str, percent: bool = False,
                   max_age: int | None = None, vmax: float | None = None, *, vmin: float | None = 0.0,
                   scale_from_age: int | None = 1, currency: str = "", ax: Axes | None = None) -> Axes:
    """Cohort x periods-since-acquisition heatmap (unobserved cells blank).

    Parameters
    ----------
    matrix : DataFrame
        :func:`helpers.revenue.cohort_table` or
        :func:`helpers.revenue.retention_rates` output (rows cohorts,
        columns ages); cohorts without customers are dropped.
    percent : bool
        Colour-bar ticks as percentages (retention rates).
    max_age : int, optional
        Show ages ``0 .. max_age`` only.
    vmax : float, optional
        Upper end of the colour scale.  By default the largest value at ages
        ``scale_from_age`` and older, so that age 0 (every customer buys at
        acquisition: retention 100 %, the whole first order's revenue) does
        not wash out the rest.  Cells above the scale take its top colour; the
        colour bar then has an arrow and its label says so.
    scale_from_age : int or None
        Youngest age that sets the colour scale (None: all ages).
    currency : str
        Appended to the colour-bar label (money matrices).

    Returns
    -------
    Axes (the colour bar, horizontal below the map, is ``ax.collections[0].colorbar``).
    """
    m = matrix
    if max_age is not None:
        m = m.loc[:, [c for c in m.columns if c <= max_age]]
    m = m.loc[m.iloc[:, 0].fillna(0) > 0]
    vals = m.to_numpy(dtype=float)
    finite = np.isfinite(vals)
    scale_note = ""
    if vmax is None:
        cols = np.asarray([c >= scale_from_age for c in m.columns]) if scale_from_age is not None else \
            np.ones(len(m.columns), dtype=bool)
        sub = vals[:, cols] if cols.any() else vals
        vmax = float(np.nanmax(sub)) if np.isfinite(sub).any() else 1.0
        if scale_from_age is not None and cols.any() and not cols.all():
            scale_note = f"scale set by ages {scale_from_age}+"
    above = int((vals[finite] > vmax * (1 + 1e-12)).sum())
    fmt_edge = fmt_share(vmax, 0) if percent else (fmt_money(vmax, currency) if currency else fmt_number(vmax))
    if above:
        scale_note = "; ".join(s for s in (scale_note, f"{above} cells above {fmt_edge} in the top colour") if s)
    full_label = with_unit(cbar_label, currency or None) + (f" ({scale_note})" if scale_note else "")
    ax = new_axes(ax, (9, max(3.4, min(7.4, 0.17 * len(m) + 2.6))))
    ystep = max(1, int(np.ceil(len(m) / 18)))
    xstep = max(1, int(np.ceil(len(m.columns) / 18)))
    frame = pd.DataFrame(vals, index=[str(p) for p in m.index], columns=[str(c) for c in m.columns])
    sns.heatmap(frame, mask=~finite, cmap="viridis", vmin=vmin, vmax=vmax, xticklabels=xstep, yticklabels=ystep,
                cbar_kws={"label": full_label, "extend": "max" if above else "neither", "orientation": "horizontal",
                          "aspect": 40}, ax=ax)
    ax.tick_params(axis="x", rotation=0)
    ax.tick_params(axis="y", rotation=0)
    ax.grid(False)
    cb = ax.collections[0].colorbar
    if percent:
        cb.ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    period = matrix.attrs.get("period", "")
    ax.set(xlabel=f"periods since acquisition ({period})" if period else "periods since acquisition",
           ylabel="acquisition cohort", title=title)
    return ax


def returning_share(table: pd.DataFrame, band: tuple[float, float] = (0.25, 0.40),
                    title: str = "Revenue share of returning customers", *, ax: Axes | None = None) -> Axes:
    """Returning-customer revenue share per period with the claimed band shaded.

    Parameters
    ----------
    table : DataFrame
        ``ReturningShare.table`` of :func:`helpers.revenue.returning_revenue_share`.
    band : (low, high)
        Shaded band (fractions).
    """
    labels = [str(p) for p in table.index]
    x = np.arange(len(table), dtype=float)
    share = table["returning_share"].to_numpy(dtype=float)
    ax = new_axes(ax, (10, 3.8))
    ax.axhspan(band[0], band[1], color=ORANGE, alpha=0.22,
               label=f"claimed band {band[0]:.0%} to {band[1]:.0%}")
    sns.lineplot(x=x, y=share, color=BLUE, lw=1.8, marker="o", ms=4, label="returning share",
                 estimator=None, ax=ax)
    inb = table["in_band"].to_numpy(dtype=bool)
    ax.plot(x[inb], share[inb], "o", color=VERMILLION, ms=6, label="in band")
    thin_ticks(ax, labels)
    percent_axis(ax)
    ax.set(ylim=(0, 1.05), ylabel="share of revenue", title=title)
    legend_outside(ax)
    return ax


def order_value_by_number(table: pd.DataFrame, title: str = "Order value by order number",
                          ylabel: str = "geometric mean order value", *, currency: str = "",
                          ax: Axes | None = None) -> Axes:
    """Order value by the order's number in the customer's history, one line per group.

    Lines differ in colour (palette order: with four groups blue, orange,
    green and reddish purple, pairwise far apart) and in marker.

    Parameters
    ----------
    table : DataFrame
        Index: order number (1 = first order); one column per line (e.g.
        customers grouped by how many orders they placed); values e.g. the
        geometric mean order value.
    """
    ax = new_axes(ax)
    markers = ["o", "s", "D", "^", "v", "P", "X"]
    xs = table.index.to_numpy(float)
    for i, (col, c) in enumerate(zip(table.columns, colors(len(table.columns)))):
        sns.lineplot(x=xs, y=table[col].to_numpy(float), color=c, marker=markers[i % len(markers)], ms=6, lw=1.6,
                     label=str(col), estimator=None, ax=ax)
    ax.set(xlabel="order number (1 = first order)", ylabel=with_unit(ylabel, currency or None), title=title)
    ax.set_xticks(xs)
    money_axis(ax, currency)
    legend_outside(ax, title=table.columns.name)
    return ax


def market_scatter(firms: pd.DataFrame, slope: float, intercept: float, low: float = 0.10,
                   high: float = 0.40, color: str = "mean_dropout",
                   title: str = "Simulated market: revenue against repeat-revenue share",
                   *, currency: str = "", ax: Axes | None = None) -> Axes:
    """Firms' revenue (log scale) against repeat share, with the fitted OLS line.

    Parameters
    ----------
    firms : DataFrame
        :func:`helpers.simulate.simulate_market` output.
    slope, intercept : float
        The fit ``log(revenue) = intercept + slope * repeat_share``
        (:func:`helpers.revenue.repeat_share_revenue_regression`).
    low, high : float
        Repeat shares marked with dotted lines (the claim compares 10 % and 40 %).
    color : str
        Column that colours the points (colour bar).
    """
    ax = new_axes(ax, (8.5, 4.2))
    vals = firms[color].to_numpy(float)
    norm = plt.Normalize(float(np.nanmin(vals)), float(np.nanmax(vals)))
    sns.scatterplot(x=firms["repeat_share"].to_numpy(float), y=firms["revenue"].to_numpy(float), hue=vals,
                    hue_norm=norm, palette="viridis_r", s=22, alpha=0.85, legend=False, ax=ax)
    xs = np.linspace(float(firms["repeat_share"].min()), float(firms["repeat_share"].max()), 100)
    ax.plot(xs, np.exp(intercept + slope * xs), color=VERMILLION, lw=2.0, label="OLS fit of log revenue")
    for v in (low, high):
        ax.axvline(v, color=NEUTRAL, ls=":", lw=1)
        ax.plot([v], [np.exp(intercept + slope * v)], "s", color=VERMILLION, ms=7)
    ax.set_yscale("log")
    percent_axis(ax, "x")
    ax.set(xlabel="share of revenue from returning customers",
           ylabel=with_unit("revenue, log scale", currency or None), title=title)
    sm = plt.cm.ScalarMappable(cmap="viridis_r", norm=norm)
    ax.figure.colorbar(sm, ax=ax, label=color.replace("_", " "))
    ax.legend(loc="upper left")
    return ax
