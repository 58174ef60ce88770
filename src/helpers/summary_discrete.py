"""Discrete-time summaries: a dated log as ``(x, t_x, T = n)`` per customer for BG/BB.

In a discrete-time setting (Fader, Hardie & Shang 2010) time is a sequence of
transaction opportunities (a year, a quarter, a week, an appeal) and a
customer either transacts at an opportunity or not.  The counting rule:

* each transaction date falls in one period of the calendar ``period``
  (a pandas period alias: ``"Y"`` calendar years, ``"Y-JUN"`` years ending in
  June, ``"Q"``, ``"M"``, ``"W"`` weeks ending on Sunday, ``"D"``);
* the customer's first period is opportunity 0 (the first transaction);
  opportunities ``1..n`` are the following periods up to the period that
  ends the observation (``end``); ``T = n``;
* ``x`` is the number of opportunities ``1..n`` with at least one
  transaction (several transactions in one period count once, and further
  transactions in the first period count nowhere), ``t_x`` the last of them
  (0 when ``x == 0``).

All counting is vectorised (group-bys); no Python loop runs per customer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import DataValidationError

__all__ = ["discrete_summary", "discrete_calibration_holdout"]


def _period_end(period: pd.Period) -> pd.Timestamp:
    return period.end_time.normalize()


def discrete_summary(
    transactions: pd.DataFrame,
    period: str = "Y",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per-customer ``x``, ``t_x`` and ``T`` (= ``n`` opportunities) of a dated log.

    Parameters
    ----------
    transactions : DataFrame
        Transactions with columns ``customer_id`` and ``date`` (datetime64 or
        parseable strings), e.g. ``helpers.data.load_transactions(...).transactions``.
    period : str
        Length of one transaction opportunity, a pandas period alias
        (``"Y"``, ``"Y-JUN"``, ``"Q"``, ``"M"``, ``"W"``, ``"D"``).
    start : date, optional
        Start of the cohort: only customers whose first transaction is on or
        after ``start`` are summarised (customers first seen earlier were
        acquired before the window; their opportunity 0 is unknown).
    end : date, optional
        End of the observation: the last opportunity is the period ending on
        ``end``, which must be the last day of a period (a partly observed
        period would count as a full opportunity).  Transactions after ``end``
        are ignored.  Default: the end of the period of the last transaction.

    Returns
    -------
    DataFrame
        Indexed by ``customer_id`` (sorted), with integer columns ``x``,
        ``t_x``, ``T`` and the customer's ``first_period`` (a pandas Period).

    Raises
    ------
    DataValidationError
        Missing columns, missing or unparseable dates.
    ValueError
        An unknown ``period`` alias, ``end`` not the last day of its period,
        or no customer left to summarise.
    """
    missing = [c for c in ("customer_id", "date") if c not in transactions.columns]
    if missing:
        raise DataValidationError(missing[0], f"column missing; the log has columns {list(transactions.columns)}",
                                  len(transactions))
    dates = transactions["date"]
    if not pd.api.types.is_datetime64_any_dtype(dates):
        dates = pd.to_datetime(dates, errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        raise DataValidationError("date", "date must be a valid date (missing or unparseable)", bad.sum(),
                                  transactions.loc[bad, ["customer_id", "date"]].head(5))
    try:
        end_p = pd.Period(pd.Timestamp(end) if end is not None else dates.max(), freq=period)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"period={period!r} is not a pandas period alias such as 'Y', 'Q', 'M', 'W' ({exc})") from None
    if end is not None and pd.Timestamp(end).normalize() != _period_end(end_p):
        prev = _period_end(end_p - 1)
        raise ValueError(
            f"end={pd.Timestamp(end).date()} is not the last day of its period ({end_p}, period={period!r}): "
            f"the last opportunity would be only partly observed; pass {_period_end(end_p).date()} "
            f"or {prev.date()}")
    frame = pd.DataFrame({"customer_id": transactions["customer_id"].to_numpy(),
                          "opp": dates.dt.to_period(period).array.asi8})
    first_date = dates.groupby(frame["customer_id"].to_numpy()).transform("min")
    keep = (frame["opp"] <= end_p.ordinal).to_numpy()
    if start is not None:
        keep &= (first_date >= pd.Timestamp(start)).to_numpy()
    frame = frame.loc[keep].drop_duplicates()
    if frame.empty:
        raise ValueError(f"no customer to summarise: no transaction "
                         f"{'from ' + str(pd.Timestamp(start).date()) + ' ' if start is not None else ''}"
                         f"up to {_period_end(end_p).date()}")
    g = frame.groupby("customer_id", sort=True)["opp"]
    first = g.min()
    rel = frame["opp"].to_numpy() - g.transform("min").to_numpy()
    rg = pd.Series(rel, index=frame["customer_id"].to_numpy()).groupby(level=0, sort=True)
    out = pd.DataFrame(index=first.index)
    out["x"] = (rg.count() - 1).astype(np.int64)      # one row per (customer, period) after drop_duplicates
    out["t_x"] = rg.max().astype(np.int64)
    out["T"] = (end_p.ordinal - first).astype(np.int64)
    out["first_period"] = pd.PeriodIndex.from_ordinals(first.to_numpy(), freq=end_p.freq)
    out.index.name = "customer_id"
    return out


def discrete_calibration_holdout(
    transactions: pd.DataFrame,
    period: str,
    calibration_end: str | pd.Timestamp,
    end: str | pd.Timestamp,
    start: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Discrete-time calibration summary with the holdout: ``x, t_x, T`` up to ``calibration_end``,
    ``x_star`` transactions (opportunities with a transaction) in the ``t_star`` opportunities after it.

    The counting rule is :func:`discrete_summary`'s, applied twice: once with
    ``end=calibration_end`` (customers whose first transaction is in a period up
    to it) and once with ``end``; for those customers the opportunities are
    numbered from the same first period, so ``x_star = x(end) - x(calibration_end)``
    and ``t_star = T(end) - T(calibration_end)``, the same for everyone.

    Parameters
    ----------
    transactions : DataFrame
        ``customer_id`` and ``date``.
    period : str
        Length of one opportunity (pandas period alias, see :func:`discrete_summary`).
    calibration_end, end : date
        Last days of the calibration and of the observation; each must be the
        last day of a period, and ``end`` must be at least one period later.
    start : date, optional
        As in :func:`discrete_summary`.

    Returns
    -------
    DataFrame
        Indexed by ``customer_id``: ``x, t_x, T`` (calibration), ``x_star``,
        ``t_star`` (integers) and ``first_period``.

    Raises
    ------
    ValueError
        As :func:`discrete_summary`, or no holdout opportunity after ``calibration_end``.
    """
    cal = discrete_summary(transactions, period=period, start=start, end=calibration_end)
    full = discrete_summary(transactions, period=period, start=start, end=end)
    t_star = pd.Period(pd.Timestamp(end), freq=period).ordinal - pd.Period(pd.Timestamp(calibration_end),
                                                                           freq=period).ordinal
    if t_star < 1:
        raise ValueError(f"no holdout opportunity: calibration_end {pd.Timestamp(calibration_end).date()} and "
                         f"end {pd.Timestamp(end).date()} fall in the same period (period={period!r}); the "
                         "holdout needs at least one whole period after the calibration end")
    later = full.reindex(cal.index)
    out = cal[["x", "t_x", "T"]].copy()
    out["x_star"] = (later["x"] - cal["x"]).astype(np.int64)
    out["t_star"] = np.int64(t_star)
    out["first_period"] = cal["first_period"]
    return out
