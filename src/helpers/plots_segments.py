"""Figures of the segmentation report (notebook 04): one function per figure.

Conventions as in :mod:`helpers.plots`: ``ax=None``, the Axes returned
(:func:`sensitivity`, a grid of panels, returns an array of Axes), the
currency on money axes.  Nothing here computes a model quantity: the
functions draw what :mod:`helpers.segments` returns.  Call
:func:`helpers.plots.style` first.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from .plots import BLUE, GREEN, NEUTRAL, PALETTE, VERMILLION, legend_outside, money_axis, new_axes, new_axes_grid, percent_axis, with_unit
from .report import fmt_money, fmt_share
from .segments import SEGMENT_ORDER

__all__ = ["SEGMENT_COLORS", "segment_overview", "capture_curves", "sensitivity", "money_at_stake",
           "holdout_intervals"]

#: One colour per segment, the same in every figure (Okabe-Ito: blue, green, grey, vermillion).
SEGMENT_COLORS = {"MVC": BLUE, "MGC": GREEN, "Maintain": "#999999", "BZ": VERMILLION}
_HATCHES = ["", "//", ".."]


def _segments(index) -> list[str]:
    return [s for s in SEGMENT_ORDER if s in set(index)]


def segment_overview(shares: pd.DataFrame, title: str, *, ax: Axes | None = None) -> Axes:
    """Each segment's share of customers next to its share of value (one group of bars per segment).

    Parameters
    ----------
    shares : DataFrame
        Indexed by segment; each column a share (0..1, may be negative), e.g.
        ``share of customers``, ``share of net CLV``, ``share of realised holdout value``.
        Bars take the segment's colour; the measures differ in tone and hatch
        (legend), and every bar is labelled with its percentage.
    """
    segs = _segments(shares.index)
    t = shares.reindex(segs)
    measures = [str(c) for c in t.columns]
    long = pd.DataFrame({"segment": np.repeat(segs, len(measures)), "measure": measures * len(segs),
                         "share": t.to_numpy(float).ravel()})
    ax = new_axes(ax, (9.5, 4.0))
    sns.barplot(data=long, x="segment", y="share", hue="measure", order=segs, hue_order=measures,
                palette=["#777777"] * len(measures), saturation=1, ax=ax)
    alphas = np.linspace(0.4, 1.0, len(measures))
    for j, container in enumerate(ax.containers):
        for seg, bar in zip(segs, container):
            bar.set_facecolor(SEGMENT_COLORS.get(seg, NEUTRAL))
            bar.set_alpha(alphas[j])
            bar.set_hatch(_HATCHES[j % len(_HATCHES)])
            bar.set_edgecolor("white")
        ax.bar_label(container, labels=[fmt_share(v, 0) for v in container.datavalues], fontsize=9, padding=2)
    ax.axhline(0, color="black", lw=0.8)
    percent_axis(ax)
    ax.margins(y=0.12)
    ax.set(xlabel="segment", ylabel="share", title=title)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor="#555555", alpha=alphas[j], hatch=_HATCHES[j % len(_HATCHES)],
                             edgecolor="white") for j in range(len(measures))]
    legend_outside(ax, handles, measures)
    return ax


def capture_curves(curves: dict[str, pd.DataFrame], title: str, mark: float = 0.2, ylabel: str = "share of value",
                   *, ax: Axes | None = None) -> Axes:
    """Capture (gains) curves: share of value captured by targeting the top share of customers.

    Parameters
    ----------
    curves : dict
        Ranking name -> frame with ``share_customers`` and ``share_value``
        (:func:`helpers.segments.capture_curve`).  A name starting with
        ``"perfect"`` is drawn dashed in black (the hindsight ceiling).
    mark : float
        Share of customers marked with a vertical line (e.g. the top 20%).
    """
    ax = new_axes(ax, (7.8, 4.2))
    palette = iter(PALETTE)
    for name, c in curves.items():
        ceiling = name.lower().startswith("perfect")
        sns.lineplot(x=c["share_customers"].to_numpy(float), y=c["share_value"].to_numpy(float),
                     color="black" if ceiling else next(palette), lw=1.2 if ceiling else 1.9,
                     ls="--" if ceiling else "-", label=name, estimator=None, ax=ax)
    ax.plot([0, 1], [0, 1], color=NEUTRAL, lw=0.9, ls=":", label="random order")
    ax.axvline(mark, color="black", lw=0.8, ls=":")
    percent_axis(ax, "x")
    percent_axis(ax, "y")
    ax.set(xlabel="top share of customers targeted", ylabel=ylabel, title=title)
    legend_outside(ax)
    return ax


def sensitivity(table: pd.DataFrame, base: dict, labels: dict[str, str] | None = None, ncols: int = 3,
                *, ax=None) -> np.ndarray:
    """Segment shares as one setting at a time moves (small multiples, one panel per setting).

    Parameters
    ----------
    table : DataFrame
        :func:`helpers.segments.segment_sensitivity` output (index ``parameter, value``,
        a column of customer counts per segment).
    base : dict
        The settings of the report (a dotted line marks the base value).
    labels : dict, optional
        Setting name -> axis label.
    ax : sequence of Axes, optional
        At least one Axes per setting.

    Returns
    -------
    ndarray of Axes, one per setting (in the table's order); one legend, right of the first row.
    """
    params = list(dict.fromkeys(table.index.get_level_values("parameter")))
    segs = _segments(table.columns)
    nrows = int(np.ceil(len(params) / ncols))
    axes = new_axes_grid(ax, len(params), nrows, ncols, (3.9 * ncols + 1.6, 2.9 * nrows), sharey=True)
    for a, p in zip(axes, params):
        t = table.xs(p, level="parameter")
        total = t[segs].sum(axis=1)
        for s in segs:
            sns.lineplot(x=t.index.to_numpy(float), y=(t[s] / total).to_numpy(float), marker="o", ms=4,
                         color=SEGMENT_COLORS[s], label=s, estimator=None, ax=a)
        if p in base:
            a.axvline(float(base[p]), color="black", lw=0.8, ls=":")
        a.set_xlabel((labels or {}).get(p, p))
        a.set_ylabel("share of customers")
        percent_axis(a)
        if a.get_legend() is not None:
            a.get_legend().remove()
    legend_outside(axes[min(len(axes), ncols) - 1], title="segment")
    axes[0].figure.suptitle("Segment sizes when one setting moves (dotted: the report's setting)")
    return axes


def money_at_stake(amounts: pd.Series, title: str, xlabel: str = "money at stake", *, currency: str = "",
                   ax: Axes | None = None) -> Axes:
    """Horizontal bars of the money at stake per recommended action (index: 'segment: action'), labelled."""
    labels = [str(lbl) for lbl in amounts.index]
    vals = amounts.to_numpy(float)
    ax = new_axes(ax, (8.5, 0.6 * len(amounts) + 1.4))
    palette = {lbl: SEGMENT_COLORS.get(lbl.split(":")[0], NEUTRAL) for lbl in labels}
    sns.barplot(x=vals, y=labels, hue=labels, order=labels, hue_order=labels, palette=palette, orient="h",
                legend=False, saturation=1, ax=ax)
    decimals = 0 if np.nanmax(np.abs(vals), initial=0.0) >= 100 else 2
    for container in ax.containers:
        ax.bar_label(container, labels=[fmt_money(v, currency or None, decimals) for v in container.datavalues],
                     fontsize=9, padding=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel=with_unit(xlabel, currency or None), ylabel="", title=title)
    ax.locator_params(axis="x", nbins=5)
    money_axis(ax, currency, axis="x")
    ax.margins(x=0.2)
    return ax


def holdout_intervals(table: pd.DataFrame, unit: str, level: float = 0.9, *, ax=None):
    """Each segment's forecast holdout value with its forecast interval, and what it realised.

    One panel per segment, each with its own value scale (segment values differ
    by orders of magnitude).

    Parameters
    ----------
    table : DataFrame
        Indexed by segment, columns ``forecast``, ``lower``, ``upper``, ``realised``;
        segments without customers are left out, segments without an interval
        (NaN bounds) get the forecast and the realised point only.
    unit : str
        Unit of the values (currency or ``"purchases"``), for the axis label.
    level : float
        Interval level, for the legend.
    ax : sequence of Axes, optional
        One per segment drawn (multi-panel, as :func:`sensitivity`).

    Returns
    -------
    ndarray of Axes
    """
    segs = [s for s in _segments(table.index) if np.isfinite(table.loc[s, "forecast"])
            and ("customers" not in table.columns or table.loc[s, "customers"] > 0)]
    t = table.reindex(segs)
    axes = ax
    if axes is None:
        fig, axes = plt.subplots(len(segs), 1, figsize=(7.0, 1.05 * len(segs) + 0.9), squeeze=False)
        axes = axes[:, 0]
    axes = np.asarray(axes).ravel()
    for ax, s in zip(axes, segs):
        lo, hi, f, r = (float(t.loc[s, c]) for c in ("lower", "upper", "forecast", "realised"))
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot([lo, hi], [0, 0], color=SEGMENT_COLORS[s], lw=8, alpha=0.35, solid_capstyle="butt",
                    label=f"{level:.0%} forecast interval")
        ax.plot([f], [0], marker="|", ms=18, mew=2.5, color=SEGMENT_COLORS[s], ls="none", label="forecast")
        ax.plot([r], [0], marker="o", ms=7, color="black", ls="none", label="realised")
        ax.set_yticks([0], [s])
        ax.set_ylim(-1, 1)
        ax.margins(x=0.15)
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.locator_params(axis="x", nbins=5)
    axes[0].set_title("Holdout value per segment: forecast, interval and realised")
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[len(segs) - 1].set_xlabel(f"holdout value ({unit}); each panel on its own scale")
    axes[0].figure.tight_layout()
    return axes[: len(segs)]
