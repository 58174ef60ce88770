"""Per-customer RFM summaries and the calibration/holdout split.

The counting rules are those of ``lifetimes.utils.summary_data_from_transaction_data``
and ``calibration_and_holdout_data`` with ``freq="D"``: purchases are counted
per *day* (several purchases on one day are one purchase occasion), and time is
then expressed in a chosen unit (days or weeks; ``freq_multiplier=7`` in
lifetimes' terms for weeks).  Column names follow the literature (Fader,
Hardie & Lee 2005):

``x``
    number of repeat purchase days (purchase days after the first one);
``t_x``
    time of the last purchase, measured from the first purchase (recency);
``T``
    time from the first purchase to the end of the period (customer age);
``m_x``
    mean spend per repeat purchase day (0 when ``x == 0``), the first
    purchase day excluded as in Fader, Hardie & Lee (2005, "RFM and CLV");
``x_star``, ``m_x_star``, ``t_star``
    repeat purchase days, their mean spend, and the length of the holdout
    period (calibration/holdout split only).

Everything is vectorised with pandas group-bys; no Python loop runs per
customer.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .data import DataValidationError

__all__ = [
    "DAYS_PER_UNIT",
    "days_per_unit",
    "purchase_days",
    "rfm_summary",
    "calibration_holdout",
    "check_calibration_end",
    "repeat_transactions_by_period",
    "day_table",
    "repeats_by_period",
    "cohorts_from_days",
    "gap_counts",
    "gap_table",
    "gap_statistics",
    "purchases_per_customer",
    "purchase_day_distribution",
    "interpurchase_days",
    "first_purchase_cohorts",
    "log_facts",
    "PERIOD_NAMES",
    "period_name",
]

#: Length of one time unit in days.  "M", "Q" and "Y" are average Gregorian months, quarters and years
#: (a discrete-time model's opportunity period, e.g. "Y", is its time unit when it values customers).
DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Q": 365.25 / 4, "Y": 365.25}


def days_per_unit(time_unit: str) -> float:
    """Days in one time unit ("D", "W", "M" = 365.25/12 days, "Q" = 365.25/4, "Y" = 365.25)."""
    try:
        return DAYS_PER_UNIT[time_unit]
    except KeyError:
        raise ValueError(f"time_unit must be one of {sorted(DAYS_PER_UNIT)}, got {time_unit!r}") from None


def purchase_days(transactions: pd.DataFrame) -> pd.DataFrame:
    """Collapse transactions to one row per customer and purchase day.

    Returns a frame sorted by customer and day with columns ``customer_id``,
    ``day`` (datetime64, midnight), ``amount`` (the day's total, when the log
    has amounts) and ``is_first`` (the customer's first purchase day).
    """
    df = pd.DataFrame(
        {"customer_id": transactions["customer_id"].to_numpy(),
         "day": transactions["date"].dt.normalize().to_numpy()}
    )
    has_amount = "amount" in transactions.columns
    if has_amount:
        df["amount"] = transactions["amount"].to_numpy()
        daily = df.groupby(["customer_id", "day"], sort=True)["amount"].sum().reset_index()
    else:
        daily = df.drop_duplicates().sort_values(["customer_id", "day"], ignore_index=True)
    first_day = daily.groupby("customer_id", sort=False)["day"].transform("min")
    daily["is_first"] = (daily["day"] == first_day).to_numpy()
    return daily


def _summarise_days(daily: pd.DataFrame, end: pd.Timestamp, unit_days: float) -> pd.DataFrame:
    g = daily.groupby("customer_id", sort=True)
    first = g["day"].min()
    last = g["day"].max()
    n_days = g["day"].size()
    out = pd.DataFrame(index=first.index)
    out["x"] = (n_days - 1).astype(float)
    out["t_x"] = (last - first).dt.days / unit_days
    out["T"] = (end - first).dt.days / unit_days
    if "amount" in daily.columns:
        total = g["amount"].sum()
        first_amount = daily.loc[daily["is_first"]].set_index("customer_id")["amount"]
        repeat_spend = total - first_amount.reindex(total.index)
        with np.errstate(invalid="ignore", divide="ignore"):
            m_x = np.where(out["x"] > 0, repeat_spend / out["x"].where(out["x"] > 0, 1.0), 0.0)
        out["m_x"] = m_x
        out["total_spend"] = total
    out["first_purchase"] = first
    out.index.name = "customer_id"
    return out


def rfm_summary(
    transactions: pd.DataFrame,
    observation_end: str | pd.Timestamp | None = None,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Per-customer frequency, recency, age and monetary value.

    Equivalent to ``lifetimes.utils.summary_data_from_transaction_data(...,
    freq="D", freq_multiplier=k)`` with k = days per ``time_unit``, but with
    the literature's column names (see the module docstring).

    Parameters
    ----------
    transactions : DataFrame
        Clean purchases (``customer_id``, ``date``, optional ``amount``), as
        returned by :func:`helpers.data.load_transactions`.
    observation_end : date, optional
        End of the observation period (default: the last transaction date).
        Transactions after it are ignored.
    time_unit : {"D", "W", "M"}
        Unit of ``t_x`` and ``T``.

    Returns
    -------
    DataFrame indexed by ``customer_id`` with ``x, t_x, T`` and, when the log
    has amounts, ``m_x`` and ``total_spend``; plus ``first_purchase``.
    """
    unit_days = days_per_unit(time_unit)
    end = (pd.Timestamp(observation_end) if observation_end is not None
           else transactions["date"].max()).normalize()
    daily = purchase_days(transactions)
    daily = daily.loc[daily["day"] <= end]
    return _summarise_days(daily, end, unit_days)


def check_calibration_end(calibration_end, first_day, observation_end, n_rows: int = 0) -> None:
    """The rule for a calibration end: on or after the first purchase day, before the observation end.

    Every engine and the pre-flight check apply this one rule.

    Raises
    ------
    DataValidationError
        Column ``date``, naming the three days; ``n_rows`` is reported as the rows concerned.
    """
    cal_end = pd.Timestamp(calibration_end).normalize()
    first_day = pd.Timestamp(first_day).normalize()
    obs_end = pd.Timestamp(observation_end).normalize()
    if not (first_day <= cal_end < obs_end):
        raise DataValidationError(
            "date",
            f"calibration end {cal_end.date()} must lie inside the data's date range: on or after "
            f"the first purchase day {first_day.date()} and before the observation end {obs_end.date()}",
            n_rows,
        )


def calibration_holdout(
    transactions: pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp | None = None,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Split into a calibration summary and holdout counts per customer.

    Equivalent to ``lifetimes.utils.calibration_and_holdout_data(...,
    freq="D", freq_multiplier=k)``.  Only customers whose first purchase falls
    in the calibration period are included.

    Parameters
    ----------
    transactions : DataFrame
        Clean purchases.
    calibration_end : date
        Last day of the calibration period (inclusive).
    observation_end : date, optional
        Last day of the holdout period (default: the last transaction date).
    time_unit : {"D", "W", "M"}

    Returns
    -------
    DataFrame indexed by ``customer_id``: the calibration summary (``x, t_x,
    T[, m_x, total_spend], first_purchase``) and ``x_star`` (repeat purchase
    days in the holdout), ``m_x_star`` (their mean daily spend, 0 if none) and
    ``t_star`` (holdout length).

    Raises
    ------
    DataValidationError
        When the calibration end does not lie inside the data's date range
        (on or after the first purchase day and before the observation end).
    """
    unit_days = days_per_unit(time_unit)
    cal_end = pd.Timestamp(calibration_end).normalize()
    first_day = transactions["date"].min().normalize()
    last_day = transactions["date"].max().normalize()
    obs_end = pd.Timestamp(observation_end).normalize() if observation_end is not None else last_day
    check_calibration_end(cal_end, first_day, obs_end, len(transactions))
    daily = purchase_days(transactions)
    cal = _summarise_days(daily.loc[daily["day"] <= cal_end], cal_end, unit_days)
    hold = daily.loc[(daily["day"] > cal_end) & (daily["day"] <= obs_end)]
    hold = hold.loc[hold["customer_id"].isin(cal.index)]
    g = hold.groupby("customer_id", sort=False)
    cal["x_star"] = g["day"].size().reindex(cal.index, fill_value=0).astype(float)
    if "amount" in hold.columns:
        cal["m_x_star"] = g["amount"].mean().reindex(cal.index, fill_value=0.0)
        cal["holdout_spend"] = g["amount"].sum().reindex(cal.index, fill_value=0.0)
    cal["t_star"] = (obs_end - cal_end).days / unit_days
    return cal


def day_table(daily: pd.DataFrame, calibration_end=None) -> pd.DataFrame:
    """Activity per calendar day from the customer-day rows of :func:`purchase_days`.

    One row per day on which some customer bought (days without a purchase
    have no row; the roll-ups fill them with zeros).

    Parameters
    ----------
    daily : DataFrame
        :func:`purchase_days` of the clean log (``customer_id``, ``day``,
        ``is_first``[, ``amount``]), optionally with ``rows`` (transactions on
        the customer's day).
    calibration_end : date, optional
        With it, ``repeat_days_cal`` counts the repeat purchase days of the
        calibration customers (first purchase on or before it).

    Returns
    -------
    DataFrame indexed by ``day`` (datetime64, sorted) with ``rows``
    (transactions, when ``daily`` has them), ``new_customers`` (customers whose
    first purchase day it is), ``repeat_days`` (customers buying on a later
    day than their first)[, ``repeat_days_cal``][, ``first_day_spend``,
    ``repeat_spend``: the spend of those first and repeat days].
    """
    first = daily["is_first"].to_numpy()
    cols = {"new_customers": first.astype(np.int64), "repeat_days": (~first).astype(np.int64)}
    if calibration_end is not None:
        first_day = daily.groupby("customer_id", sort=False)["day"].transform("min")
        cal = (first_day <= pd.Timestamp(calibration_end).normalize()).to_numpy()
        cols["repeat_days_cal"] = ((~first) & cal).astype(np.int64)
    if "amount" in daily.columns:
        a = daily["amount"].to_numpy(float)
        cols["first_day_spend"] = np.where(first, a, 0.0)
        cols["repeat_spend"] = np.where(first, 0.0, a)
    frame = pd.DataFrame(cols, index=pd.DatetimeIndex(daily["day"].to_numpy(), name="day"))
    if "rows" in daily.columns:
        frame.insert(0, "rows", daily["rows"].to_numpy(np.int64))
    return frame.groupby(level=0, sort=True).sum()


def repeats_by_period(repeat_days: pd.Series, start=None, end=None, period_days: int = 7) -> pd.DataFrame:
    """Repeat purchase days per period, from a count per calendar day (a column of :func:`day_table`).

    Periods are consecutive blocks of ``period_days`` days from ``start``
    (default: the first day of ``repeat_days``) to ``end`` (default: its last
    day); days outside are not counted.

    Returns
    -------
    DataFrame with ``period`` (1-based), ``period_start``, ``repeat`` and ``cumulative``.
    """
    days = pd.DatetimeIndex(repeat_days.index)
    start = (pd.Timestamp(start) if start is not None else days.min()).normalize()
    end = (pd.Timestamp(end) if end is not None else days.max()).normalize()
    n_periods = int(np.ceil(((end - start).days + 1) / period_days))
    inside = (days >= start) & (days <= end)
    idx = ((days[inside] - start).days // period_days).to_numpy()
    counts = np.bincount(idx, weights=repeat_days.to_numpy()[inside], minlength=n_periods)[:n_periods]
    out = pd.DataFrame({
        "period": np.arange(1, n_periods + 1),
        "period_start": start + pd.to_timedelta(np.arange(n_periods) * period_days, unit="D"),
        "repeat": np.rint(counts).astype(np.int64),
    })
    out["cumulative"] = out["repeat"].cumsum()
    return out


def repeat_transactions_by_period(
    transactions: pd.DataFrame,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    period_days: int = 7,
) -> pd.DataFrame:
    """Repeat purchase days per period (the "tracking" series of the papers).

    A repeat purchase is any purchase day after a customer's first purchase
    day (several purchases on one day count once).  Periods are consecutive
    blocks of ``period_days`` days from ``start`` (default: first purchase);
    :func:`repeats_by_period` of the log's :func:`day_table`.

    Returns
    -------
    DataFrame with ``period`` (1-based), ``period_start``, ``repeat`` (repeat
    purchase days in the period) and ``cumulative``.
    """
    return repeats_by_period(day_table(purchase_days(transactions))["repeat_days"], start, end, period_days)


def purchases_per_customer(transactions: pd.DataFrame, max_count: int = 10) -> pd.DataFrame:
    """Distribution of purchase days per customer.

    Returns a frame indexed by the number of purchase days (1, 2, ...,
    ``max_count``+ pooled in the last row labelled ``"{max_count}+"``) with the
    number and share of customers.
    """
    n = purchase_days(transactions).groupby("customer_id", sort=False).size()
    return purchase_day_distribution(n, max_count)


def purchase_day_distribution(n_days: pd.Series, max_count: int = 10) -> pd.DataFrame:
    """Distribution of purchase days per customer, from one count per customer.

    The same table as :func:`purchases_per_customer`, computed from per-customer
    counts of purchase days instead of the log, e.g. ``x + 1`` of a summary
    (:func:`rfm_summary`, or the stage's ``full``): rows 1, 2, ...,
    ``max_count - 1`` and ``"{max_count}+"`` pooling the rest, with the number
    and share of customers.
    """
    # counted on integers (np.bincount), not on a text label per customer: at 1e7 customers the labels
    # were 1e7 Python strings (0.6 GB and 9 s in notebook 01); a count below 1 has no row, as before
    n = np.asarray(n_days, dtype=float)
    if not np.all(np.isfinite(n)):
        raise ValueError(f"purchase days per customer must be finite; {int((~np.isfinite(n)).sum()):,} are not")
    k = np.minimum(n, max_count).astype(np.int64)
    order = [str(i) for i in range(1, max_count)] + [f"{max_count}+"]
    counts = pd.Series(np.bincount(k[k >= 1], minlength=max_count + 1)[1:], index=order)
    out = pd.DataFrame({"customers": counts, "share": counts / counts.sum()})
    out.index.name = "purchase_days"
    return out


def _gaps(daily: pd.DataFrame) -> pd.Series:
    """Days between consecutive purchase days of a customer, from :func:`purchase_days` rows (sorted)."""
    gap = daily["day"].diff().dt.days
    same = daily["customer_id"].eq(daily["customer_id"].shift())
    return gap[same.to_numpy()].astype(np.int64)


def interpurchase_days(transactions: pd.DataFrame) -> pd.Series:
    """Days between consecutive purchase days of the same customer (all customers pooled)."""
    return _gaps(purchase_days(transactions)).astype(int).rename("days_between_purchases").reset_index(drop=True)


def gap_table(daily: pd.DataFrame) -> pd.DataFrame:
    """The gaps between consecutive purchase days as a value count, from :func:`purchase_days` rows:
    ``count`` per gap in ``days`` (sorted)."""
    counts = _gaps(daily).value_counts().sort_index()
    return pd.DataFrame({"count": counts.to_numpy(np.int64)},
                        index=pd.Index(counts.index.to_numpy(np.int64), name="days"))


def gap_counts(transactions: pd.DataFrame) -> pd.DataFrame:
    """:func:`interpurchase_days` as a value count: ``count`` per gap in ``days`` (sorted)."""
    return gap_table(purchase_days(transactions))


def _weighted_quantile(values: np.ndarray, cum: np.ndarray, q: float) -> float:
    """``pandas.Series.quantile(q)`` (linear interpolation) of the sorted sample holding ``values`` with
    cumulative counts ``cum``, without expanding it."""
    h = (cum[-1] - 1) * q
    lo = int(np.floor(h))
    v_lo = values[np.searchsorted(cum, lo, side="right")]
    v_hi = values[np.searchsorted(cum, min(lo + 1, cum[-1] - 1), side="right")]
    return float(v_lo + (h - lo) * (v_hi - v_lo))


def gap_statistics(counts: pd.DataFrame) -> dict:
    """Count, mean, quartiles, median and maximum of the gaps in a value count (:func:`gap_counts`).

    The same numbers as ``Series.mean()``, ``.quantile(q)`` (linear
    interpolation), ``.median()`` and ``.max()`` of the expanded gaps; NaN
    (count 0) when there is no gap.
    """
    values = counts.index.to_numpy(np.int64)
    n = counts["count"].to_numpy(np.int64)
    keep = n > 0
    values, n = values[keep], n[keep]
    order = np.argsort(values, kind="stable")
    values, n = values[order], n[order]
    total = int(n.sum())
    if total == 0:
        return {"n": 0, "mean": math.nan, "q25": math.nan, "median": math.nan, "q75": math.nan, "max": math.nan}
    cum = np.cumsum(n)
    return {"n": total, "mean": float(np.dot(values, n)) / total,
            "q25": _weighted_quantile(values, cum, 0.25), "median": _weighted_quantile(values, cum, 0.5),
            "q75": _weighted_quantile(values, cum, 0.75), "max": float(values[-1])}


def cohorts_from_days(days: pd.DataFrame, period: str = "M") -> pd.DataFrame:
    """New customers (and their first-day spend, when known) per first-purchase period, from a :func:`day_table`.

    ``period`` is a pandas period alias: "W", "M" or "Q".  Every period from
    the first to the last with a new customer is a row (zeros in between).
    """
    first = days.loc[days["new_customers"] > 0]
    cols = ["new_customers"] + (["first_day_spend"] if "first_day_spend" in days.columns else [])
    out = first[cols].groupby(pd.DatetimeIndex(first.index).to_period(period).rename("cohort")).sum()
    full = pd.period_range(out.index.min(), out.index.max(), freq=period)
    return out.reindex(full, fill_value=0).rename_axis("cohort")


def first_purchase_cohorts(transactions: pd.DataFrame, period: str = "M") -> pd.DataFrame:
    """New customers (and their first-day spend, when known) per first-purchase period.

    ``period`` is a pandas period alias: "W", "M" or "Q"; :func:`cohorts_from_days` of the log's :func:`day_table`.
    """
    return cohorts_from_days(day_table(purchase_days(transactions)), period)


def log_facts(transactions: pd.DataFrame) -> pd.Series:
    """Headline counts of a clean transaction log.

    Customers, transactions, purchase days (purchases counted per day),
    repeat purchase days, first and last date and, with amounts, revenue and
    the mean value per purchase day.
    """
    daily = purchase_days(transactions)
    facts = {
        "customers": int(daily["customer_id"].nunique()),
        "transactions": int(len(transactions)),
        "purchase_days": int(len(daily)),
        "repeat_purchase_days": int((~daily["is_first"]).sum()),
        "one_time_buyers": int((daily.groupby("customer_id", sort=False).size() == 1).sum()),
        "first_date": daily["day"].min().date().isoformat(),
        "last_date": daily["day"].max().date().isoformat(),
    }
    if "amount" in daily.columns:
        facts["revenue"] = float(daily["amount"].sum())
        facts["mean_value_per_purchase_day"] = float(daily["amount"].mean())
    return pd.Series(facts, name="value", dtype=object)


#: English names of time units and period aliases, for report text (``"W"`` -> ``"week"``).
PERIOD_NAMES = {"D": "day", "W": "week", "M": "month", "Q": "quarter", "Y": "year"}


def period_name(alias: str) -> str:
    """The English name of a time unit or pandas period alias: ``"D"``, ``"W"``, ``"M"``, ``"Q"``, ``"Y"``."""
    try:
        return PERIOD_NAMES[alias]
    except KeyError:
        raise ValueError(f"unknown period {alias!r}; allowed: {', '.join(PERIOD_NAMES)}") from None
