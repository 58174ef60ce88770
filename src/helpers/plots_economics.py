"""Figures of the retention-versus-acquisition notebook (one function per figure).

They draw what :mod:`helpers.economics` returns and compute nothing of their
own.  Conventions as in :mod:`helpers.plots`: ``ax=None``, the Axes returned,
the currency on money axes; call :func:`helpers.plots.style` first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from .plots import BLUE, GREEN, NEUTRAL, ORANGE, PURPLE, SKY, VERMILLION, legend_outside, money_axis, new_axes, with_unit
from .report import fmt_money, fmt_number

__all__ = ["payback_curve", "equity_gain_by_delta", "frontier", "programme_payback", "tornado",
           "EQUITY_GAIN_STYLES"]

#: Colour, dash pattern and marker of each (population, mode) line of :func:`equity_gain_by_delta`:
#: the four lines differ in colour (Okabe-Ito, distinguishable with colour-blindness), the two
#: populations also in the dash pattern and the two levers in the marker.
EQUITY_GAIN_STYLES = {
    ("base", "dropout"): (BLUE, "", "o"),
    ("base", "retention"): (ORANGE, "", "s"),
    ("new", "dropout"): (GREEN, (5, 2), "o"),
    ("new", "retention"): (PURPLE, (5, 2), "s"),
}
_LEVER = {"dropout": "drop-out cut", "retention": "retention increase"}
_POPULATION = {"base": "existing base", "new": "new customer"}


def payback_curve(cashflows: pd.DataFrame, acquisition_cost: float, payback: float | None = None,
                  interval: tuple[float, float] | None = None, currency: str = "",
                  *, ax: Axes | None = None) -> Axes:
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
    currency : str
        Currency of the value axis.
    """
    ax = new_axes(ax)
    sns.lineplot(x=cashflows.index.to_numpy(float), y=cashflows["cumulative"].to_numpy(float), color=BLUE,
                 marker="o", ms=4, label="cumulative discounted margin", estimator=None, ax=ax)
    if acquisition_cost is not None:   # None: values are not money (no cost line to compare with)
        ax.axhline(acquisition_cost, color=VERMILLION, ls="--", lw=1.4,
                   label=f"acquisition cost {fmt_money(acquisition_cost, currency)}")
    if payback is not None and np.isfinite(payback):
        ax.axvline(payback, color=NEUTRAL, ls=":", lw=1.2, label=f"payback {payback:.1f} months")
    if interval is not None:
        last = cashflows.index[-1]
        v = cashflows["cumulative"].iloc[-1]
        ax.errorbar([last], [v], yerr=[[v - interval[0]], [interval[1] - v]], color="black", capsize=4,
                    label="interval at horizon")
    ax.set(xlabel="months since acquisition", ylabel=with_unit("value of a new customer", currency or None),
           title="Value of a new customer and payback of the acquisition cost")
    money_axis(ax, currency)
    ax.set_ylim(bottom=0)
    legend_outside(ax)
    return ax


def equity_gain_by_delta(grid: pd.DataFrame, claim: tuple[float, float] | None = (25.0, 95.0),
                         *, ax: Axes | None = None) -> Axes:
    """% change in customer equity against the programme strength: one line per (population, lever).

    ``grid`` has columns ``population, delta, mode, change_pct`` (e.g.
    :func:`helpers.economics.retention_grid` for the base and a new customer,
    concatenated).  Each line's colour, dash pattern and marker are those of
    :data:`EQUITY_GAIN_STYLES`.
    """
    ax = new_axes(ax)
    for (pop, mode), g in grid.groupby(["population", "mode"], sort=False):
        color, dashes, marker = EQUITY_GAIN_STYLES.get((pop, mode), ("black", "", "^"))
        line_label = f"{_LEVER.get(mode, mode)}, {_POPULATION.get(pop, pop)}"
        sns.lineplot(x=100 * g["delta"].to_numpy(float), y=g["change_pct"].to_numpy(float), color=color,
                     marker=marker, ms=5, lw=1.8, label=line_label, estimator=None, ax=ax)
        if dashes:
            ax.get_lines()[-1].set_dashes(dashes)
    if claim is not None:
        ax.axhspan(*claim, color=SKY, alpha=0.2, label=f"claim: +{claim[0]:.0f} to {claim[1]:.0f}% profit")
    ax.set(xlabel="relative change delta (%)", ylabel="change in customer equity (%)",
           title="Equity gain of a retention programme")
    legend_outside(ax)
    return ax


def frontier(front: pd.DataFrame, default_acquisition: float, default_retention: float, currency: str = "",
             *, ax: Axes | None = None) -> Axes:
    """Break-even frontier of retention versus acquisition costs, with the default pair marked."""
    ax = new_axes(ax)
    x = front["acquisition_cost"].to_numpy(float)
    y = front["retention_cost"].to_numpy(float)
    ymax = float(np.nanmax(y))
    # a log scale when the default programme cost is far from the frontier (either way)
    log = ymax > 0 and default_retention > 0 and not (0.1 < default_retention / ymax < 10)
    keep = (x > 0) & (y > 0) if log else np.ones_like(x, dtype=bool)
    x, y = x[keep], y[keep]
    top = max(ymax, default_retention) * (3 if log else 1.15)
    bottom = min(float(y.min()), default_retention) / 3 if log else 0.0
    ax.plot(x, y, color="black", lw=1.6, label="break-even: equally efficient")
    ax.fill_between(x, bottom, y, color=GREEN, alpha=0.18, label="retention cheaper per unit of equity")
    ax.fill_between(x, y, top, color=VERMILLION, alpha=0.12, label="acquisition cheaper per unit of equity")
    ax.plot([default_acquisition], [default_retention], marker="*", ms=15, color=ORANGE, mec="black",
            label=f"defaults ({fmt_money(default_acquisition, currency)}, {fmt_money(default_retention, currency)})",
            ls="none")
    if log:
        ax.set_yscale("log")
    ax.set(xlabel=with_unit("acquisition cost per customer", currency or None),
           ylabel=with_unit("retention cost per customer-month", currency or None),
           title="Where retention and acquisition break even", ylim=(bottom, top), xlim=(x.min(), x.max()))
    legend_outside(ax)
    return ax


def programme_payback(table: pd.DataFrame, payback: float | None = None, *, currency: str = "",
                      ax: Axes | None = None) -> Axes:
    """Cumulative discounted equity gain against cumulative programme cost, by month."""
    ax = new_axes(ax)
    months = table.index.to_numpy(float)
    sns.lineplot(x=months, y=table["cumulative_gain"].to_numpy(float), color=GREEN, marker="o", ms=4,
                 label="cumulative equity gain", estimator=None, ax=ax)
    sns.lineplot(x=months, y=table["cumulative_cost"].to_numpy(float), color=VERMILLION, marker="s", ms=4,
                 label="cumulative programme cost", estimator=None, ax=ax)
    if payback is not None and np.isfinite(payback):
        ax.axvline(payback, color=NEUTRAL, ls=":", lw=1.2, label=f"payback {payback:.1f} months")
    ax.set(xlabel="months since programme start", ylabel=with_unit("discounted value", currency or None),
           title="Payback of the retention programme")
    money_axis(ax, currency)
    legend_outside(ax)
    return ax


def tornado(sens: pd.DataFrame, metric_label: str = "advantage", log: bool = True, reference: float | None = 1.0,
            *, ax: Axes | None = None) -> Axes:
    """Tornado chart of a one-at-a-time sensitivity table (:func:`helpers.economics.sensitivity`).

    Each assumption has two bars from the base value: to the metric at its low
    value and at its high value (labelled with those values); the base value
    is the black line.  Range bars, drawn with matplotlib.
    """
    s = sens.iloc[::-1]
    ax = new_axes(ax, (8.5, 0.45 * len(s) + 1.6))
    base = float(s["metric_base"].iloc[0])
    for i, (_, row) in enumerate(s.iterrows()):
        lo, hi = row["metric_low"], row["metric_high"]
        ax.barh(i, lo - base, left=base, color=BLUE, alpha=0.9, label="low value" if i == 0 else None)
        ax.barh(i, hi - base, left=base, color=ORANGE, alpha=0.9, label="high value" if i == 0 else None)
        ax.text(max(lo, hi), i, f"  {fmt_number(row['low'])} / {fmt_number(row['high'])}", va="center",
                fontsize=9)
    ax.axvline(base, color="black", lw=1)
    if reference is not None:
        ax.axvline(reference, color=NEUTRAL, ls="--", lw=1,
                   label=f"= {fmt_number(reference)} (levers equally efficient)")
    ax.set_yticks(range(len(s)), s.index)
    if log and (s[["metric_low", "metric_high", "metric_base"]].to_numpy() > 0).all():
        ax.set_xscale("log")
    ax.margins(x=0.15)
    ax.set(xlabel=metric_label, title="Sensitivity (one assumption at a time; labels: low / high value)")
    legend_outside(ax)
    return ax
