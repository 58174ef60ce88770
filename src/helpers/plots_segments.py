"""Figures of the segmentation report (notebook 04): one function per figure, returning the Figure.

As in :mod:`helpers.plots`, nothing here computes a model quantity: the
functions draw what :mod:`helpers.segments` returns.  Call
:func:`helpers.plots.style` first for the house style.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .segments import SEGMENT_ORDER

__all__ = ["SEGMENT_COLORS", "segment_overview", "capture_curves", "sensitivity", "money_at_stake",
           "holdout_intervals"]

#: One colour per segment, the same in every figure.
SEGMENT_COLORS = {"MVC": "#1b6ca8", "MGC": "#66a182", "Maintain": "#8d96a3", "BZ": "#d1495b"}


def _segments(index) -> list[str]:
    return [s for s in SEGMENT_ORDER if s in set(index)]


def segment_overview(shares: pd.DataFrame, title: str):
    """Each segment's share of customers next to its share of value (one group of bars per segment).

    Parameters
    ----------
    shares : DataFrame
        Indexed by segment; each column a share (0..1, may be negative), e.g.
        ``share of customers``, ``share of net CLV``, ``share of realised holdout value``.
        The first column is drawn hatched-free in light tone, the others in the segment colour.
    """
    segs = _segments(shares.index)
    t = shares.reindex(segs)
    k = t.shape[1]
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    xs = np.arange(len(segs))
    alphas = np.linspace(0.35, 1.0, k)
    hatches = ["", "//", ".."]
    for j, col in enumerate(t.columns):
        vals = t[col].to_numpy(float)
        bars = ax.bar(xs + (j - (k - 1) / 2) * width, vals, width * 0.95,
                      color=[SEGMENT_COLORS[s] for s in segs], alpha=alphas[j],
                      hatch=hatches[j % len(hatches)], edgecolor="white", label=col)
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.0%}", (b.get_x() + b.get_width() / 2, v), ha="center",
                        va="bottom" if v >= 0 else "top", fontsize=8, xytext=(0, 2 if v >= 0 else -2),
                        textcoords="offset points")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(xs, segs)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set(ylabel="share", title=title)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor="#555555", alpha=alphas[j], hatch=hatches[j % len(hatches)],
                             edgecolor="white") for j in range(k)]
    ax.legend(handles, list(t.columns), fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def capture_curves(curves: dict[str, pd.DataFrame], title: str, mark: float = 0.2, ylabel: str = "share of value"):
    """Capture (gains) curves: share of value captured by targeting the top share of customers.

    Parameters
    ----------
    curves : dict
        Ranking name -> frame with ``share_customers`` and ``share_value``
        (:func:`helpers.segments.capture_curve`).  A name starting with
        ``"perfect"`` is drawn dashed (the hindsight ceiling).
    mark : float
        Share of customers marked with a vertical line (e.g. the top 20%).
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, c in curves.items():
        ls = "--" if name.lower().startswith("perfect") else "-"
        ax.plot(c["share_customers"], c["share_value"], ls=ls, lw=1.8 if ls == "-" else 1.2, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="random order")
    ax.axvline(mark, color="black", lw=0.8, ls=":")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set(xlabel="top share of customers targeted", ylabel=ylabel, title=title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def sensitivity(table: pd.DataFrame, base: dict, labels: dict[str, str] | None = None, ncols: int = 3):
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
    """
    params = list(dict.fromkeys(table.index.get_level_values("parameter")))
    segs = _segments(table.columns)
    nrows = int(np.ceil(len(params) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False, sharey=True)
    for ax, p in zip(axes.ravel(), params):
        t = table.xs(p, level="parameter")
        total = t[segs].sum(axis=1)
        for s in segs:
            ax.plot(t.index.astype(float), t[s] / total, marker="o", ms=3, color=SEGMENT_COLORS[s], label=s)
        if p in base:
            ax.axvline(float(base[p]), color="black", lw=0.8, ls=":")
        ax.set_xlabel((labels or {}).get(p, p))
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    for ax in axes.ravel()[len(params):]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("share of customers")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Segment sizes when one setting moves (dotted: the report's setting)")
    fig.tight_layout()
    return fig


def money_at_stake(amounts: pd.Series, title: str, xlabel: str = "money at stake"):
    """Horizontal bars of the money at stake per recommended action (index: 'segment: action')."""
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(amounts) + 1.2))
    labels = list(amounts.index)
    colors = [SEGMENT_COLORS.get(str(lbl).split(":")[0], "#555555") for lbl in labels]
    ys = np.arange(len(labels))[::-1]
    ax.barh(ys, amounts.to_numpy(float), color=colors)
    for y, v in zip(ys, amounts.to_numpy(float)):
        ax.annotate(f"{v:,.0f}", (v, y), va="center", ha="left" if v >= 0 else "right", fontsize=8,
                    xytext=(3 if v >= 0 else -3, 0), textcoords="offset points")
    ax.set_yticks(ys, labels)
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel=xlabel, title=title)
    ax.locator_params(axis="x", nbins=5)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.margins(x=0.15)
    fig.tight_layout()
    return fig


def holdout_intervals(table: pd.DataFrame, unit: str, level: float = 0.9, axes=None):
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
    axes : array of Axes, optional
        One per segment drawn.

    Returns
    -------
    ndarray of Axes
    """
    segs = [s for s in _segments(table.index) if np.isfinite(table.loc[s, "forecast"])
            and ("customers" not in table.columns or table.loc[s, "customers"] > 0)]
    t = table.reindex(segs)
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
