"""Figures for the revenue-dynamics report: bridge, cohorts, returning share, market.

Like :mod:`helpers.plots`, one function per figure, each returning the
matplotlib Figure; they draw what :mod:`helpers.revenue` and
:func:`helpers.simulate.simulate_market` return and compute no model
quantity themselves.  Call :func:`helpers.plots.style` first for the house
style.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .plots import PALETTE

__all__ = [
    "COMPONENT_COLORS",
    "GROUP_COLORS",
    "bridge_bars",
    "bridge_waterfall",
    "cohort_heatmap",
    "returning_share",
    "order_value_by_number",
    "market_scatter",
]

#: One colour per bridge component (gains warm/blue, losses red/grey).
COMPONENT_COLORS = {
    "new": PALETTE[0],
    "expansion": PALETTE[3],
    "resurrected": PALETTE[4],
    "contraction": PALETTE[2],
    "churned": PALETTE[1],
}


#: Colours of groups of customers, from Okabe & Ito's colour-blind-safe set, ordered so that the first four
#: (blue, orange, reddish purple, black) differ pairwise by at least 0.88 in summed RGB.
GROUP_COLORS = ["#0072B2", "#E69F00", "#CC79A7", "#000000", "#009E73", "#56B4E9", "#D55E00"]
GROUP_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]



def _thousands(v, _pos) -> str:
    """Value-axis tick with thousands separators (no "1e6" offset)."""
    return f"{v:,.0f}"


def _thin_ticks(ax, labels: list[str], max_ticks: int = 12) -> None:
    pos = np.arange(len(labels))
    step = max(1, int(np.ceil(len(labels) / max_ticks)))
    ax.set_xticks(pos[::step], [labels[i] for i in pos[::step]])
    ax.tick_params(axis="x", rotation=45)


def bridge_bars(table: pd.DataFrame, title: str = "Bridge per period", ylabel: str = "change"):
    """Stacked bars of the bridge components per period, net change as black dots.

    Gains (new, expansion, resurrected) stack upwards, losses (contraction,
    churned) downwards; the dot is ``change`` = level(t) - level(t-1),
    which the bars sum to.  The first period (no previous period) is left out;
    a one-period table gives an empty frame that says so.  The value axis
    spans the tallest stacks with headroom, and the legend sits outside the
    frame, so neither bars nor legend hide data.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`helpers.revenue.growth_accounting` (any measure).
    ylabel : str
        Value-axis label, with its unit (e.g. "revenue change (USD)").
    """
    t = table.iloc[1:]
    labels = [str(p) for p in t.index]
    x = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(10, 4))
    up = np.zeros(len(t))
    down = np.zeros(len(t))
    for comp in ["new", "expansion", "resurrected", "contraction", "churned"]:
        v = t[comp].to_numpy(dtype=float)
        base = up if comp in ("new", "expansion", "resurrected") else down
        ax.bar(x, v, 0.8, bottom=base, color=COMPONENT_COLORS[comp], label=comp, alpha=0.9)
        base += v
    change = t["change"].to_numpy(dtype=float)
    ax.plot(x, change, "o", color="k", ms=3.5, label="net change")
    ax.axhline(0, color="k", lw=0.8)
    if len(t):
        top = float(np.nanmax(np.r_[up, change, 0.0]))
        bottom = float(np.nanmin(np.r_[down, change, 0.0]))
        pad = 0.08 * ((top - bottom) or 1.0)
        ax.set_ylim(bottom - pad, top + pad)
        _thin_ticks(ax, labels)
    else:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "one period only: no change to account for", transform=ax.transAxes,
                ha="center", va="center", color="grey")
    ax.set(ylabel=ylabel, title=title)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(_thousands))
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def bridge_waterfall(table: pd.DataFrame, title: str = "Bridge, first to last period",
                     ylabel: str = "level per period"):
    """Waterfall from the first period's level to the last period's.

    Each component bar is the component summed over all periods after the
    first; by the bridge identity they carry level(first) exactly to
    level(last).

    Parameters
    ----------
    table : DataFrame
        Output of :func:`helpers.revenue.growth_accounting` (any measure: the
        level column is ``attrs["measure"]``, ``revenue`` by default).
    """
    t = table.iloc[1:]
    measure = table.attrs.get("measure", "revenue")
    first_rev = float(table[measure].iloc[0])
    last_rev = float(table[measure].iloc[-1])
    comps = ["new", "expansion", "resurrected", "contraction", "churned"]
    steps = [float(t[c].sum()) for c in comps]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    names = [f"{measure}\n{table.index[0]}"] + comps + [f"{measure}\n{table.index[-1]}"]
    ax.bar(0, first_rev, 0.7, color=PALETTE[5])
    level = first_rev
    for i, (c, s) in enumerate(zip(comps, steps), start=1):
        ax.bar(i, s, 0.7, bottom=level, color=COMPONENT_COLORS[c])
        ax.plot([i - 1 + 0.35, i - 0.35], [level, level], color="grey", lw=0.8)
        level += s
    ax.plot([len(comps) + 0.35 - 1, len(comps) + 1 - 0.35], [level, level], color="grey", lw=0.8)
    ax.bar(len(comps) + 1, last_rev, 0.7, color=PALETTE[5])
    ymax = max(first_rev, last_rev, *np.cumsum([first_rev] + steps)) or 1.0
    for i, v in enumerate([first_rev] + steps + [last_rev]):
        ax.annotate(f"{v:+,.0f}" if 0 < i <= len(comps) else f"{v:,.0f}", (i, ymax * 1.02),
                    ha="center", fontsize=8)
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set(ylabel=ylabel, title=title, ylim=(min(0, ymax * -0.05), ymax * 1.12))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(_thousands))
    ax.axhline(0, color="k", lw=0.8)
    fig.tight_layout()
    return fig


def cohort_heatmap(matrix: pd.DataFrame, title: str, cbar_label: str, percent: bool = False,
                   max_age: int | None = None, vmax: float | None = None):
    """Cohort x periods-since-acquisition heatmap (unobserved cells blank).

    The colour scale ends at the largest value at ages 1 and later unless
    ``vmax`` is given: age 0 (retention always 100 %, and the acquisition
    period's value, usually far above later periods') would otherwise wash
    out every later age.  Cells above the scale take its top colour; the
    colour bar then ends in an arrow and its label says so.

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
        Upper end of the colour scale (default: see above).
    """
    m = matrix
    if max_age is not None:
        m = m.loc[:, [c for c in m.columns if c <= max_age]]
    m = m.loc[m.iloc[:, 0].fillna(0) > 0]
    vals = np.ma.masked_invalid(m.to_numpy(dtype=float))
    if vmax is None:
        later = m.loc[:, [c for c in m.columns if c >= 1]].to_numpy(dtype=float)
        vmax = float(np.nanmax(later)) if later.size and np.isfinite(later).any() else None
        if vmax is not None and vmax <= 0:
            vmax = None
    above = vmax is not None and bool((vals.filled(-np.inf) > vmax * (1 + 1e-12)).any())
    fig, ax = plt.subplots(figsize=(8, max(2.6, min(6.5, 0.16 * len(m) + 1.8))))
    im = ax.imshow(vals, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0, vmax=vmax)
    ax.grid(False)
    ystep = max(1, int(np.ceil(len(m) / 18)))
    ax.set_yticks(np.arange(0, len(m), ystep), [str(p) for p in m.index[::ystep]], fontsize=8)
    xstep = max(1, int(np.ceil(len(m.columns) / 18)))
    ax.set_xticks(np.arange(0, len(m.columns), xstep), [str(c) for c in m.columns[::xstep]], fontsize=8)
    period = {"M": "months", "Q": "quarters"}.get(matrix.attrs.get("period", ""), "periods")
    ax.set(xlabel=f"{period} since acquisition", ylabel="acquisition cohort", title=title)
    label = cbar_label + ("\n(arrow: values beyond the scale)" if above else "")
    cb = fig.colorbar(im, ax=ax, label=label, extend="max" if above else "neither")
    if percent:
        cb.ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    fig.tight_layout()
    return fig


def returning_share(table: pd.DataFrame, band: tuple[float, float] = (0.25, 0.40),
                    title: str = "Share of returning customers"):
    """Returning-customer share (of revenue, or of purchases) per period with the claimed band shaded.

    Parameters
    ----------
    table : DataFrame
        ``ReturningShare.table`` of :func:`helpers.revenue.returning_revenue_share`
        (``attrs["measure"]`` names the measure on the axis).
    band : (low, high)
        Shaded band (fractions).
    """
    labels = [str(p) for p in table.index]
    x = np.arange(len(table))
    share = table["returning_share"].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.axhspan(band[0], band[1], color=PALETTE[2], alpha=0.25, label=f"claimed band {band[0]:.0%}-{band[1]:.0%}")
    ax.plot(x, share, color=PALETTE[0], lw=1.6, marker="o", ms=3, label="returning share")
    inb = table["in_band"].to_numpy(dtype=bool)
    ax.plot(x[inb], share[inb], "o", color=PALETTE[1], ms=5, label="in band")
    _thin_ticks(ax, labels)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set(ylim=(0, 1.05), ylabel=f"share of {table.attrs.get('measure', 'revenue')}", title=title)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def order_value_by_number(table: pd.DataFrame, title: str = "Order value by order number",
                          ylabel: str = "geometric mean order value"):
    """Order value by the order's number in the customer's history, one line per group.

    Groups get clearly different colours (:data:`GROUP_COLORS`, the
    Okabe-Ito colour-blind-safe set) and markers.

    Parameters
    ----------
    table : DataFrame
        Index: order number (1 = first order); one column per line (e.g.
        customers grouped by how many orders they placed); values e.g. the
        geometric mean order value.
    """
    fig, ax = plt.subplots()
    for i, col in enumerate(table.columns):
        ax.plot(table.index, table[col], marker=GROUP_MARKERS[i % len(GROUP_MARKERS)], ms=5, lw=1.6,
                color=GROUP_COLORS[i % len(GROUP_COLORS)], label=str(col))
    ax.set(xlabel="order number (1 = first order)", ylabel=ylabel, title=title)
    ax.set_xticks(table.index)
    ax.legend(fontsize=9, title=table.columns.name, title_fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    fig.tight_layout()
    return fig


def market_scatter(firms: pd.DataFrame, slope: float, intercept: float, low: float = 0.10,
                   high: float = 0.40, color: str = "mean_dropout",
                   title: str = "Simulated market: revenue against repeat-revenue share"):
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
        Column that colours the points.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4))
    sc = ax.scatter(firms["repeat_share"], firms["revenue"], c=firms[color], cmap="viridis_r", s=16, alpha=0.85)
    xs = np.linspace(float(firms["repeat_share"].min()), float(firms["repeat_share"].max()), 100)
    ax.plot(xs, np.exp(intercept + slope * xs), color=PALETTE[1], lw=1.8, label="OLS fit of log revenue")
    for v in (low, high):
        ax.axvline(v, color="grey", ls=":", lw=1)
        ax.plot([v], [np.exp(intercept + slope * v)], "s", color=PALETTE[1], ms=6)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set(xlabel="share of revenue from returning customers", ylabel="revenue (log scale)", title=title)
    fig.colorbar(sc, ax=ax, label=color.replace("_", " "))
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
