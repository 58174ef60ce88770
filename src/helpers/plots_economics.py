"""Figures of the retention-versus-acquisition notebook (one function per figure).

They draw what :mod:`helpers.economics` returns and compute nothing of their
own; the house style comes from :func:`helpers.plots.style`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .plots import PALETTE

__all__ = ["payback_curve", "equity_gain_by_delta", "frontier", "programme_payback", "tornado"]


def payback_curve(cashflows: pd.DataFrame, acquisition_cost: float, payback: float | None = None,
                  interval: tuple[float, float] | None = None, currency: str = ""):
    """Cumulative discounted margin of a new customer by month, with the acquisition cost.

    Parameters
    ----------
    cashflows : DataFrame from :func:`helpers.economics.new_customer_cashflows`.
    acquisition_cost : float or None
        Drawn as a line; None when the values are not money.
    payback : float, optional
        Payback month (marked when finite).
    interval : (lower, upper), optional
        Interval of the horizon value, drawn as an error bar at the last month.
    """
    fig, ax = plt.subplots()
    ax.plot(cashflows.index, cashflows["cumulative"], color=PALETTE[0], marker="o", ms=3,
            label="cumulative discounted margin")
    if acquisition_cost is not None:   # None: values are not money (no cost line to compare with)
        ax.axhline(acquisition_cost, color=PALETTE[1], ls="--", lw=1.2,
                   label=f"acquisition cost {acquisition_cost:,.4g}")
    if payback is not None and np.isfinite(payback):
        ax.axvline(payback, color="grey", ls=":", lw=1, label=f"payback {payback:.1f} months")
    if interval is not None:
        last = cashflows.index[-1]
        v = cashflows["cumulative"].iloc[-1]
        ax.errorbar([last], [v], yerr=[[v - interval[0]], [interval[1] - v]], color="k", capsize=4,
                    label="interval at horizon")
    ax.set(xlabel="months since acquisition", ylabel=f"value {currency}".strip(),
           title="Value of a new customer and payback of the acquisition cost")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def equity_gain_by_delta(grid: pd.DataFrame, claim: tuple[float, float] | None = (25.0, 95.0)):
    """% change in customer equity against the programme strength, per mode and population.

    ``grid`` has columns ``population, delta, mode, change_pct`` (e.g.
    :func:`helpers.economics.retention_grid` for the base and a new customer,
    concatenated).
    """
    fig, ax = plt.subplots()
    styles = {"base": "-", "new": "--"}
    colours = {"dropout": PALETTE[0], "retention": PALETTE[3]}
    names = {"dropout": "drop-out cut", "retention": "retention increase"}
    for (pop, mode), g in grid.groupby(["population", "mode"], sort=False):
        ax.plot(100 * g["delta"], g["change_pct"], ls=styles.get(pop, "-"), color=colours.get(mode, "k"),
                marker="o", ms=3, label=f"{names.get(mode, mode)}, {'existing base' if pop == 'base' else 'new customer'}")
    if claim is not None:
        ax.axhspan(*claim, color=PALETTE[2], alpha=0.2, label=f"claim: +{claim[0]:.0f}-{claim[1]:.0f}% profit")
    ax.set(xlabel="relative change delta (%)", ylabel="change in customer equity (%)",
           title="Equity gain of a retention programme")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def frontier(front: pd.DataFrame, default_acquisition: float, default_retention: float, currency: str = ""):
    """Break-even frontier of retention versus acquisition costs, with the default pair marked."""
    fig, ax = plt.subplots()
    x = front["acquisition_cost"].to_numpy(float)
    y = front["retention_cost"].to_numpy(float)
    ymax = float(np.nanmax(y))
    # a log scale when the default programme cost is far from the frontier (either way)
    log = ymax > 0 and default_retention > 0 and not (0.1 < default_retention / ymax < 10)
    keep = (x > 0) & (y > 0) if log else np.ones_like(x, dtype=bool)
    x, y = x[keep], y[keep]
    top = max(ymax, default_retention) * (3 if log else 1.15)
    bottom = min(float(y.min()), default_retention) / 3 if log else 0.0
    ax.plot(x, y, color="k", lw=1.5, label="break-even: equally efficient")
    ax.fill_between(x, bottom, y, color=PALETTE[3], alpha=0.15, label="retention cheaper per unit of equity")
    ax.fill_between(x, y, top, color=PALETTE[1], alpha=0.10, label="acquisition cheaper per unit of equity")
    ax.plot([default_acquisition], [default_retention], marker="*", ms=14, color=PALETTE[2], mec="k",
            label=f"defaults ({default_acquisition:,.4g}, {default_retention:,.4g})", ls="none")
    if log:
        ax.set_yscale("log")
    ax.set(xlabel=f"acquisition cost per customer {currency}".strip(),
           ylabel=f"retention cost per customer-month {currency}".strip(),
           title="Where retention and acquisition break even", ylim=(bottom, top), xlim=(x.min(), x.max()))
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def programme_payback(table: pd.DataFrame, payback: float | None = None):
    """Cumulative discounted equity gain against cumulative programme cost, by month."""
    fig, ax = plt.subplots()
    ax.plot(table.index, table["cumulative_gain"], color=PALETTE[3], marker="o", ms=3, label="cumulative equity gain")
    ax.plot(table.index, table["cumulative_cost"], color=PALETTE[1], marker="o", ms=3, label="cumulative programme cost")
    if payback is not None and np.isfinite(payback):
        ax.axvline(payback, color="grey", ls=":", lw=1, label=f"payback {payback:.1f} months")
    ax.set(xlabel="months since programme start", ylabel="discounted value", title="Payback of the retention programme")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tornado(sens: pd.DataFrame, metric_label: str = "advantage", log: bool = True, reference: float | None = 1.0):
    """Tornado chart of a one-at-a-time sensitivity table (:func:`helpers.economics.sensitivity`).

    Each bar spans the metric at the low and high value of one assumption
    (labelled with them); the base value is the vertical line.
    """
    s = sens.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(s) + 1.4))
    base = float(s["metric_base"].iloc[0])
    for i, (name, row) in enumerate(s.iterrows()):
        lo, hi = row["metric_low"], row["metric_high"]
        ax.barh(i, lo - base, left=base, color=PALETTE[0], alpha=0.85, label="low value" if i == 0 else None)
        ax.barh(i, hi - base, left=base, color=PALETTE[1], alpha=0.85, label="high value" if i == 0 else None)
        ax.text(max(lo, hi), i, f"  {row['low']:g} / {row['high']:g}", va="center", fontsize=8)
    ax.axvline(base, color="k", lw=1)
    if reference is not None:
        ax.axvline(reference, color="grey", ls="--", lw=1, label=f"= {reference:g} (levers equally efficient)")
    ax.set_yticks(range(len(s)), s.index)
    if log and (s[["metric_low", "metric_high", "metric_base"]].to_numpy() > 0).all():
        ax.set_xscale("log")
    ax.set(xlabel=metric_label, title="Sensitivity (one assumption at a time; labels: low / high value)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
