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


def _thin_ticks(ax, labels: list[str], max_ticks: int = 12) -> None:
    pos = np.arange(len(labels))
    step = max(1, int(np.ceil(len(labels) / max_ticks)))
    ax.set_xticks(pos[::step], [labels[i] for i in pos[::step]])
    ax.tick_params(axis="x", rotation=45)


def bridge_bars(table: pd.DataFrame, title: str = "Revenue bridge per period", ylabel: str = "revenue change"):
    """Stacked bars of the bridge components per period, net change as black dots.

    Gains (new, expansion, resurrected) stack upwards, losses (contraction,
    churned) downwards; the dot is ``change`` = revenue(t) - revenue(t-1),
    which the bars sum to.  The first period (no previous period) is left out.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`helpers.revenue.growth_accounting`.
    """
    t = table.iloc[1:]
    labels = [str(p) for p in t.index]
    x = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(9, 4))
    up = np.zeros(len(t))
    down = np.zeros(len(t))
    for comp in ["new", "expansion", "resurrected", "contraction", "churned"]:
        v = t[comp].to_numpy(dtype=float)
        base = up if comp in ("new", "expansion", "resurrected") else down
        ax.bar(x, v, 0.8, bottom=base, color=COMPONENT_COLORS[comp], label=comp, alpha=0.9)
        base += v
    ax.plot(x, t["change"].to_numpy(dtype=float), "o", color="k", ms=3.5, label="net change")
    ax.axhline(0, color="k", lw=0.8)
    _thin_ticks(ax, labels)
    ax.set(ylabel=ylabel, title=title)
    ax.margins(y=0.2)
    ax.legend(fontsize=8, ncol=6, loc="upper center")
    fig.tight_layout()
    return fig


def bridge_waterfall(table: pd.DataFrame, title: str = "Revenue bridge, first to last period",
                     ylabel: str = "revenue per period"):
    """Waterfall from the first period's revenue to the last period's.

    Each component bar is the component summed over all periods after the
    first; by the bridge identity they carry revenue(first) exactly to
    revenue(last).

    Parameters
    ----------
    table : DataFrame
        Output of :func:`helpers.revenue.growth_accounting`.
    """
    t = table.iloc[1:]
    first_rev = float(table["revenue"].iloc[0])
    last_rev = float(table["revenue"].iloc[-1])
    comps = ["new", "expansion", "resurrected", "contraction", "churned"]
    steps = [float(t[c].sum()) for c in comps]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    names = [f"revenue\n{table.index[0]}"] + comps + [f"revenue\n{table.index[-1]}"]
    ax.bar(0, first_rev, 0.7, color=PALETTE[5])
    level = first_rev
    for i, (c, s) in enumerate(zip(comps, steps), start=1):
        ax.bar(i, s, 0.7, bottom=level, color=COMPONENT_COLORS[c])
        ax.plot([i - 1 + 0.35, i - 0.35], [level, level], color="grey", lw=0.8)
        level += s
    ax.plot([len(comps) + 0.35 - 1, len(comps) + 1 - 0.35], [level, level], color="grey", lw=0.8)
    ax.bar(len(comps) + 1, last_rev, 0.7, color=PALETTE[5])
    ymax = max(first_rev, last_rev, *np.cumsum([first_rev] + steps))
    for i, v in enumerate([first_rev] + steps + [last_rev]):
        ax.annotate(f"{v:+,.0f}" if 0 < i <= len(comps) else f"{v:,.0f}", (i, ymax * 1.02),
                    ha="center", fontsize=8)
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set(ylabel=ylabel, title=title, ylim=(min(0, ymax * -0.05), ymax * 1.12))
    ax.axhline(0, color="k", lw=0.8)
    fig.tight_layout()
    return fig


def cohort_heatmap(matrix: pd.DataFrame, title: str, cbar_label: str, percent: bool = False,
                   max_age: int | None = None, vmax: float | None = None):
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
        Upper end of the colour scale (e.g. to keep age 0 of retention,
        always 100 %, from washing out the rest).
    """
    m = matrix
    if max_age is not None:
        m = m.loc[:, [c for c in m.columns if c <= max_age]]
    m = m.loc[m.iloc[:, 0].fillna(0) > 0]
    vals = np.ma.masked_invalid(m.to_numpy(dtype=float))
    fig, ax = plt.subplots(figsize=(8, max(2.6, min(6.5, 0.16 * len(m) + 1.8))))
    im = ax.imshow(vals, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0, vmax=vmax)
    ax.grid(False)
    ystep = max(1, int(np.ceil(len(m) / 18)))
    ax.set_yticks(np.arange(0, len(m), ystep), [str(p) for p in m.index[::ystep]], fontsize=8)
    xstep = max(1, int(np.ceil(len(m.columns) / 18)))
    ax.set_xticks(np.arange(0, len(m.columns), xstep), [str(c) for c in m.columns[::xstep]], fontsize=8)
    period = matrix.attrs.get("period", "")
    ax.set(xlabel=f"periods since acquisition ({period})", ylabel="acquisition cohort", title=title)
    cb = fig.colorbar(im, ax=ax, label=cbar_label)
    if percent:
        cb.ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    fig.tight_layout()
    return fig


def returning_share(table: pd.DataFrame, band: tuple[float, float] = (0.25, 0.40),
                    title: str = "Revenue share of returning customers"):
    """Returning-customer revenue share per period with the claimed band shaded.

    Parameters
    ----------
    table : DataFrame
        ``ReturningShare.table`` of :func:`helpers.revenue.returning_revenue_share`.
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
    ax.set(ylim=(0, 1.05), ylabel="share of revenue", title=title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def order_value_by_number(table: pd.DataFrame, title: str = "Order value by order number",
                          ylabel: str = "geometric mean order value"):
    """Order value by the order's number in the customer's history, one line per group.

    Parameters
    ----------
    table : DataFrame
        Index: order number (1 = first order); one column per line (e.g.
        customers grouped by how many orders they placed); values e.g. the
        geometric mean order value.
    """
    fig, ax = plt.subplots()
    for i, col in enumerate(table.columns):
        ax.plot(table.index, table[col], marker="o", ms=3.5, lw=1.4, color=PALETTE[i % len(PALETTE)],
                label=str(col))
    ax.set(xlabel="order number (1 = first order)", ylabel=ylabel, title=title)
    ax.set_xticks(table.index)
    ax.legend(fontsize=8, title=table.columns.name, title_fontsize=8)
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
