"""Revenue accounting: growth bridges, cohorts, returning-customer shares, on any log.

This module tests, on a transaction log, claims about *where revenue comes
from* (the source essays' claims, phrased as the claims they are):

* a common claim: market share grows by converting prospects (new customers)
  and by existing customers buying more, and shrinks when customers buy less
  or leave -- :func:`growth_accounting` splits each period's change exactly
  into new, expansion, contraction, resurrected and churned;
* who stays -- :func:`cohort_table` and :func:`retention_rates`;
* a common claim: 25-40 % of a stable company's revenue comes from returning
  customers -- :func:`returning_revenue_share`;
* a common claim: repeat customers buy more per purchase than new ones --
  :func:`order_value_repeat_effect` (within-customer comparison);
* a common claim: firms with 40 % of revenue from repeat customers earn 47 %
  more than firms with 10 % -- :func:`repeat_share_revenue_regression`
  (cross-firm, on a table of firms), illustrated on a simulated market by
  :func:`market_illustration`.

:func:`revenue_dynamics` computes what the revenue-dynamics report needs in
one call, on any log: with or without amounts, one or many acquisition
cohorts, any length; a log whose purchases all fall in one period, or with a
single customer, gives results with sentences that say what cannot be
measured (:attr:`RevenueDynamics.limits`) instead of an error.

Conventions
-----------
``transactions`` is the clean purchase frame of
:func:`helpers.data.load_transactions` (``customer_id``, ``date`` and, when
the log has amounts, ``amount``).  A customer is *active* in a period when it
has at least one transaction dated in it (a zero-amount transaction counts as
activity with zero revenue).  Periods are calendar months (``"M"``) or
calendar quarters (``"Q"``) and are returned as a :class:`pandas.PeriodIndex`
named ``"period"`` covering every period from the first to the last
transaction, including periods without any transaction.

**Measures.**  The bridge identity holds for any measure that adds up over
customers; the functions take ``measure``:

``"revenue"``
    the sum of amounts (needs amounts);
``"purchases"``
    purchase days: a customer's purchases on one day are one purchase, as in
    :func:`helpers.summary.purchase_days` and the models;
``"customers"``
    active customers: each active (customer, period) counts 1 (expansion and
    contraction are then 0, and the bridge is the growth accounting of the
    active base).

Every analysis derives from the compact tables of
:mod:`helpers.aggregates_revenue` (per period, per cohort and age, per
order class; computed by pandas, DuckDB or Spark into the shared stage), so
:func:`revenue_dynamics` never needs the log itself: it takes the stage's
aggregates (``stage.aggregates``) or, for researchers, a transaction frame,
of which it first computes the same tables with pandas.  The public
functions on transactions (:func:`growth_accounting`, :func:`cohort_table`,
:func:`returning_revenue_share`, :func:`order_value_repeat_effect`, ...)
take the same route, so each formula exists once.  :func:`customer_periods`
(one row per customer and active period) is the per-customer view the
pandas tables are computed from.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .summary import purchase_days

__all__ = [
    "strategic_functions",
    "order_value_profile",
    "PERIODS",
    "MEASURES",
    "BRIDGE_COMPONENTS",
    "RETENTION_AGES",
    "resolve_period",
    "AGGREGATES_PREFIX",
    "revenue_tables",
    "customer_periods",
    "growth_accounting",
    "bridge_identity_error",
    "cohort_table",
    "retention_rates",
    "retention_by_age",
    "AcquisitionWindow",
    "acquisition_window",
    "ReturningShare",
    "returning_revenue_share",
    "RepeatEffect",
    "order_value_repeat_effect",
    "repeat_effect_unavailable",
    "RepeatShareRegression",
    "repeat_share_revenue_regression",
    "MarketIllustration",
    "market_illustration",
    "RevenueDynamics",
    "revenue_dynamics",
]

#: Supported period codes: calendar month and calendar quarter.
PERIODS = ("M", "Q")

#: Additive measures of a bridge, a cohort table and a returning share (see the module docstring).
MEASURES = ("revenue", "purchases", "customers")

#: Components of the bridge; they sum to ``change``.
BRIDGE_COMPONENTS = ("new", "expansion", "contraction", "resurrected", "churned")

#: Ages (periods since acquisition) of the retention summary, per period code.
RETENTION_AGES = {"M": (1, 2, 3, 6, 12, 24), "Q": (1, 2, 4, 8)}

_PERIOD_NAME = {"M": "month", "Q": "quarter"}
_MONTHS_PER_PERIOD = {"M": 1, "Q": 3}


# ---------------------------------------------------------------------------
# input checks and the (customer, period) table
# ---------------------------------------------------------------------------

def _check_period(period: str) -> str:
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS} (month, quarter), got {period!r}")
    return period


def _check_measure(measure: str, allowed: tuple[str, ...] = MEASURES) -> str:
    if measure not in allowed:
        raise ValueError(f"measure must be one of {allowed}, got {measure!r}")
    return measure


def _check_transactions(transactions, need_amount: bool = True) -> pd.DataFrame:
    if not isinstance(transactions, pd.DataFrame):
        raise TypeError(
            "transactions must be a pandas DataFrame (e.g. load_transactions(...).transactions), "
            f"got {type(transactions).__name__}"
        )
    needed = ["customer_id", "date"] + (["amount"] if need_amount else [])
    missing = [c for c in needed if c not in transactions.columns]
    if missing:
        raise ValueError(
            f"transactions: required column(s) {missing} missing "
            f"(columns present: {list(transactions.columns)})"
        )
    if len(transactions) == 0:
        raise ValueError("transactions: the log is empty (at least one row is required)")
    if not pd.api.types.is_datetime64_any_dtype(transactions["date"]):
        raise ValueError(
            f"transactions: column 'date' must be datetime64, got {transactions['date'].dtype}"
        )
    if transactions["date"].isna().any():
        raise ValueError(
            f"transactions: column 'date' has {int(transactions['date'].isna().sum())} missing value(s)"
        )
    if transactions["customer_id"].isna().any():
        raise ValueError(
            "transactions: column 'customer_id' has "
            f"{int(transactions['customer_id'].isna().sum())} missing value(s)"
        )
    if need_amount:
        a = transactions["amount"]
        if not pd.api.types.is_numeric_dtype(a) or pd.api.types.is_bool_dtype(a):
            raise ValueError(f"transactions: column 'amount' must be numeric, got {a.dtype}")
        vals = a.to_numpy(dtype=float)
        if not np.isfinite(vals).all():
            raise ValueError(
                f"transactions: column 'amount' has {int((~np.isfinite(vals)).sum())} "
                "missing or infinite value(s)"
            )
        if (vals < 0).any():
            raise ValueError(
                f"transactions: column 'amount' has {int((vals < 0).sum())} negative value(s); "
                "load with negative_amounts='returns' to set returns aside"
            )
    return transactions


def _period_ordinals(dates: pd.Series, period: str) -> np.ndarray:
    """Integer period ordinals (pandas Period ordinals) of a datetime column."""
    return dates.dt.to_period(period).array.asi8.astype(np.int64)


def _period_index(p0: int, p1: int, period: str) -> pd.PeriodIndex:
    idx = pd.PeriodIndex.from_ordinals(np.arange(p0, p1 + 1), freq=period)
    idx.name = "period"
    return idx


def resolve_period(period: str, data, max_periods: int = 48) -> str:
    """The reporting period: ``period`` itself, or for ``"auto"`` months unless the log spans more
    than ``max_periods`` months (then quarters), so a long log does not give hundreds of bars.

    ``data``: a transaction frame or the aggregates of :func:`revenue_tables` / ``stage.aggregates``.
    """
    if period != "auto":
        return _check_period(period)
    if isinstance(data, Mapping):
        info = _tables_of(data)["info"].iloc[0]
        months = int(info["p1_M"]) - int(info["p0_M"]) + 1
    else:
        _check_transactions(data, need_amount=False)
        p = data["date"].dt.to_period("M")
        months = int((p.max() - p.min()).n) + 1
    return "M" if months <= max_periods else "Q"


#: Prefix of this module's tables in ``stage.aggregates``.
AGGREGATES_PREFIX = "aggregates_revenue."


def revenue_tables(transactions: pd.DataFrame, orders: bool = True, max_order_number: int | None = None,
                   mixedlm_cap: int | None = None) -> dict[str, pd.DataFrame]:
    """The compact tables of :mod:`helpers.aggregates_revenue`, computed with pandas from a transaction frame.

    ``orders=False`` leaves out the order tables (they also need ``amount``); ``max_order_number``:
    order numbers kept in the profile (default the stage's bound); ``mixedlm_cap``: customers kept for
    the MixedLM variant (default None: all, unlike the stage's capped sample).
    """
    from .aggregates_revenue import PROFILE_MAX_ORDER, compute_pandas  # noqa: PLC0415

    has_amount = isinstance(transactions, pd.DataFrame) and "amount" in transactions.columns
    _check_transactions(transactions, need_amount=has_amount)
    cols = ["customer_id", "date", *(["amount"] if has_amount else [])]
    bound = max(PROFILE_MAX_ORDER, int(max_order_number or 0))
    return compute_pandas(transactions[cols], cap=mixedlm_cap, max_order=bound, orders=orders)


def _tables_of(data) -> dict[str, pd.DataFrame]:
    """This module's tables (names without the prefix) from ``stage.aggregates`` or :func:`revenue_tables`."""
    out = {k[len(AGGREGATES_PREFIX):]: v for k, v in data.items() if str(k).startswith(AGGREGATES_PREFIX)}
    if not out:
        out = dict(data)
    missing = [t for t in ("periods", "cohorts", "info") if t not in out]
    if missing:
        raise ValueError(f"revenue aggregates: table(s) {missing} missing (expected the tables of "
                         f"helpers.aggregates_revenue, e.g. stage.aggregates; present: {sorted(data)})")
    return out


def _data_tables(data, need_amount: bool, orders: bool = False, max_order_number: int | None = None):
    """Tables from aggregates (returned as they are) or from a transaction frame (computed with pandas)."""
    if isinstance(data, Mapping):
        t = _tables_of(data)
        if need_amount and not bool(t["info"]["has_amounts"].iloc[0]):
            raise ValueError("this analysis needs amounts: the log has no 'amount' column")
        return t
    if need_amount:
        _check_transactions(data, need_amount=True)
    elif isinstance(data, pd.DataFrame) and "amount" in data.columns:
        data = data[["customer_id", "date"]]        # amounts not needed: not validated either
    return revenue_tables(data, orders=orders, max_order_number=max_order_number)


def _bounds(tables, period: str) -> tuple[int, int]:
    info = tables["info"].iloc[0]
    return int(info[f"p0_{period}"]), int(info[f"p1_{period}"])


def customer_periods(transactions: pd.DataFrame, period: str = "M", revenue: bool | None = None) -> pd.DataFrame:
    """One row per (customer, active period): the per-customer view behind the period tables of
    :mod:`helpers.aggregates_revenue`.

    Parameters
    ----------
    transactions : DataFrame
        Clean purchases (``customer_id``, ``date`` and optionally ``amount``).
    period : {"M", "Q"}
    revenue : bool, optional
        Include the ``revenue`` column (needs ``amount``); default: when the
        log has an ``amount`` column.

    Returns
    -------
    DataFrame
        Columns ``customer_id``, ``p`` (period ordinal), ``purchases``
        (distinct purchase days in the period), ``revenue`` (sum of amounts,
        when included) and ``first_p`` (the customer's first period), sorted by
        customer and period.  ``attrs``: ``period``, ``p0`` and ``p1`` (first
        and last period ordinals of the log), ``n_days`` (distinct purchase
        dates), ``first_day``.
    """
    period = _check_period(period)
    if revenue is None:
        revenue = "amount" in transactions.columns if isinstance(transactions, pd.DataFrame) else True
    _check_transactions(transactions, need_amount=bool(revenue))
    day = transactions["date"].dt.normalize()
    df = pd.DataFrame({
        "customer_id": transactions["customer_id"].to_numpy(),
        "day": day.to_numpy(),
        "p": _period_ordinals(transactions["date"], period),
    })
    keys = ["customer_id", "p"]
    days = (df.drop_duplicates(["customer_id", "day"])
            .groupby(keys, sort=True, observed=True).size().rename("purchases"))
    if revenue:
        rev = (df.assign(revenue=transactions["amount"].to_numpy(dtype=float))
               .groupby(keys, sort=True, observed=True)["revenue"].sum())
        cp = pd.concat([rev, days], axis=1).reset_index()
    else:
        cp = days.reset_index()
    cp["purchases"] = cp["purchases"].astype(np.int64)
    cp["first_p"] = cp.groupby("customer_id", sort=False, observed=True)["p"].transform("min")
    cp.attrs.update(period=period, p0=int(cp["p"].min()), p1=int(cp["p"].max()),
                    n_days=int(day.nunique()), first_day=day.min())
    return cp


# ---------------------------------------------------------------------------
# 1. growth accounting
# ---------------------------------------------------------------------------

def growth_accounting(transactions, period: str = "M", measure: str = "revenue") -> pd.DataFrame:
    """Growth accounting (a "bridge") per period, in any additive measure.

    Every customer active in period *t* or *t-1* is put in exactly one class:

    ``new``
        first-ever purchase in *t* (its whole measure in *t*);
    ``retained``
        active in *t-1* and *t*; the change of its measure versus *t-1* is
        ``expansion`` (increase, >= 0) or ``contraction`` (decrease, <= 0);
    ``resurrected``
        active in *t*, not in *t-1*, but in some earlier period (its whole
        measure in *t*);
    ``churned``
        active in *t-1*, not in *t* (minus its measure in *t-1*, <= 0).

    Hence, for every period after the first, exactly (up to float rounding)::

        change = new + expansion + contraction + resurrected + churned

    where ``change`` is level(t) - level(t-1) and the level is the period's
    total of the measure (the identity holds because the measure adds up over
    customers); see :func:`bridge_identity_error`.

    Parameters
    ----------
    transactions : DataFrame
        Clean purchases with ``customer_id``, ``date`` (datetime64) and, for
        ``measure="revenue"``, ``amount`` (>= 0), as in
        ``load_transactions(...).transactions``; or the aggregates of
        :func:`revenue_tables` (``stage.aggregates``).
    period : {"M", "Q"}
        Calendar month or calendar quarter.
    measure : {"revenue", "purchases", "customers"}
        Revenue (sum of amounts), purchases (purchase days) or active
        customers (see the module docstring).

    Returns
    -------
    DataFrame
        Indexed by a :class:`pandas.PeriodIndex` ``period`` covering every
        period from the first to the last transaction (periods without
        transactions appear with level 0, so that customers active just
        before them are recorded as churned).  Columns:

        ``<measure>`` (the level: ``revenue``, ``purchases`` or ``customers``),
        ``new``, ``expansion``, ``contraction``, ``resurrected``, ``churned``, ``change``
            as above; ``change`` is NaN in the first period (the level before
            the log starts is not observed; all its customers are ``new``);
        ``n_new``, ``n_retained``, ``n_resurrected``, ``n_churned``, ``n_active``
            customer counts (``n_active = n_new + n_retained + n_resurrected``;
            ``n_churned`` counts customers active in *t-1* but not in *t*);
        ``quick_ratio``
            (new + resurrected + expansion) / (|churned| + |contraction|).
            Explicit conventions: NaN in the first period (no previous
            period); ``inf`` when there are gains but no losses; NaN when
            gains and losses are both zero (no movement).

        ``attrs["period"]`` and ``attrs["measure"]`` record how it was made.
        A log within one period gives a one-row table (nothing to account for).

    Raises
    ------
    ValueError
        Missing columns (``amount`` for revenue), empty log, non-datetime
        ``date``, non-numeric, non-finite or negative ``amount``, or an
        unknown ``period`` or ``measure``.
    """
    period = _check_period(period)
    measure = _check_measure(measure)
    return _bridge(_data_tables(transactions, need_amount=(measure == "revenue")), period, measure)


def _bridge(tables, period: str, measure: str) -> pd.DataFrame:
    """The bridge of :func:`growth_accounting` from the per-period parts of :mod:`helpers.aggregates_revenue`."""
    p0, p1 = _bounds(tables, period)
    per = tables["periods"]
    per = per.loc[per["grain"] == period].set_index("p")
    if measure == "customers":
        parts = {measure: per["n_active"], "new": per["n_new"], "expansion": 0.0, "contraction": 0.0,
                 "resurrected": per["n_resurrected"], "churned": -per["n_churned"]}
    else:
        if measure not in per.columns:
            raise ValueError(f"measure {measure!r} needs amounts: the log has no 'amount' column")
        parts = {measure: per[measure], **{c: per[f"{c}_{measure}"] for c in BRIDGE_COMPONENTS}}
    out = pd.DataFrame(parts, index=per.index).astype(float)
    for c in ["n_new", "n_retained", "n_resurrected", "n_churned"]:
        out[c] = per[c]
    out = out.reindex(np.arange(p0, p1 + 1), fill_value=0)   # the aggregates cover every period already
    out.index = _period_index(p0, p1, period)
    for c in ["n_new", "n_retained", "n_resurrected", "n_churned"]:
        out[c] = out[c].astype(np.int64)
    out["n_active"] = out["n_new"] + out["n_retained"] + out["n_resurrected"]
    out["change"] = out[measure].diff()

    gains = (out["new"] + out["resurrected"] + out["expansion"]).to_numpy()
    losses = (out["churned"].abs() + out["contraction"].abs()).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        qr = np.where(losses > 0, gains / np.where(losses > 0, losses, 1.0),
                      np.where(gains > 0, np.inf, np.nan))
    qr[0] = np.nan
    out["quick_ratio"] = qr

    cols = [measure, *BRIDGE_COMPONENTS, "change",
            "n_new", "n_retained", "n_resurrected", "n_churned", "n_active", "quick_ratio"]
    out = out[cols]
    out.attrs["period"] = period
    out.attrs["measure"] = measure
    return out


def _level_column(table: pd.DataFrame) -> str:
    """The level column of a bridge: ``attrs["measure"]``, else the first measure present."""
    m = table.attrs.get("measure")
    if m in table.columns:
        return m
    return next((c for c in MEASURES if c in table.columns), "revenue")


def bridge_identity_error(table: pd.DataFrame) -> float:
    """Largest absolute error of the bridge identity.

    For every period after the first, computes
    ``|(level(t) - level(t-1)) - (new + expansion + contraction +
    resurrected + churned)|`` (the change is recomputed from the level column
    -- ``revenue``, ``purchases`` or ``customers`` -- so the check does not
    trust the table's ``change`` column; where the table has a ``change``
    column its deviation from the level's difference is included too) and
    returns the maximum.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`growth_accounting` (consecutive periods, in order).

    Returns
    -------
    float
        Maximum absolute error; 0.0 when the table has a single period
        (nothing to check).

    Raises
    ------
    ValueError
        If a required column is missing.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a DataFrame from growth_accounting, got {type(table).__name__}")
    level = _level_column(table)
    missing = [c for c in (level, *BRIDGE_COMPONENTS) if c not in table.columns]
    if missing:
        raise ValueError(f"table: required column(s) {missing} missing (from growth_accounting)")
    if len(table) < 2:
        return 0.0
    change = table[level].astype(float).diff().iloc[1:]
    parts = table[list(BRIDGE_COMPONENTS)].astype(float).sum(axis=1).iloc[1:]
    err = (change - parts).abs()
    if "change" in table.columns:
        err = np.maximum(err, (table["change"].astype(float).iloc[1:] - change).abs())
    return float(np.nanmax(err.to_numpy())) if err.notna().any() else float("nan")


@dataclass
class AcquisitionWindow:
    """When new customers arrived, from a bridge.

    Attributes
    ----------
    first, last : str
        First and last period with new customers (the first is the log's first period).
    periods_with_new : int
        Periods with at least one new customer.
    window_periods : int
        Periods from the log's first period to ``last`` (inclusive).
    n_periods : int
        Periods of the log.
    period : str
    """

    first: str
    last: str
    periods_with_new: int
    window_periods: int
    n_periods: int
    period: str

    @property
    def period_name(self) -> str:
        return _PERIOD_NAME[self.period]


def acquisition_window(bridge: pd.DataFrame) -> AcquisitionWindow:
    """The acquisition window of a :func:`growth_accounting` table (any measure)."""
    has_new = bridge["n_new"].to_numpy() > 0
    pos = np.flatnonzero(has_new)
    return AcquisitionWindow(
        first=str(bridge.index[pos[0]]), last=str(bridge.index[pos[-1]]),
        periods_with_new=int(has_new.sum()), window_periods=int(pos[-1]) + 1,
        n_periods=int(len(bridge)), period=bridge.attrs.get("period", "M"),
    )


# ---------------------------------------------------------------------------
# 2. cohorts
# ---------------------------------------------------------------------------

def cohort_table(transactions, period: str = "M", value: str = "customers") -> pd.DataFrame:
    """Acquisition cohorts by periods since acquisition.

    Parameters
    ----------
    transactions : DataFrame
        Clean purchases (``customer_id``, ``date``; ``amount`` for revenue).
    period : {"M", "Q"}
        Calendar month or quarter.
    value : {"customers", "revenue", "purchases"}
        Number of active customers of the cohort, their revenue, or their
        purchases (purchase days).

    Returns
    -------
    DataFrame
        Rows: acquisition cohort (period of first purchase; every period from
        the first to the last transaction, cohorts without new customers as
        rows of 0); columns: periods since acquisition ``0, 1, 2, ...``.
        Cells after the end of the log (cohort + age > last period) are NaN
        (not observed), observed cells without activity are 0.  Column 0 of
        the customers table is the cohort size and equals ``n_new`` of
        :func:`growth_accounting`.  ``attrs["value"]`` and ``attrs["period"]``
        record how the table was made.

    Raises
    ------
    ValueError
        Bad ``period``/``value`` or invalid transactions.
    """
    period = _check_period(period)
    if value not in MEASURES:
        raise ValueError(f"value must be 'customers', 'revenue' or 'purchases', got {value!r}")
    return _cohorts(_data_tables(transactions, need_amount=(value == "revenue")), period, value)


def _cohorts(tables, period: str, value: str) -> pd.DataFrame:
    """The table of :func:`cohort_table` from the (cohort, age) table of :mod:`helpers.aggregates_revenue`."""
    p0, p1 = _bounds(tables, period)
    c = tables["cohorts"]
    c = c.loc[c["grain"] == period]
    if value not in c.columns:
        raise ValueError(f"value {value!r} needs amounts: the log has no 'amount' column")
    agg = pd.Series(c[value].to_numpy(dtype=float),
                    index=pd.MultiIndex.from_arrays([c["cohort"].to_numpy(), c["age"].to_numpy()],
                                                    names=["first_p", "age"]))
    n = p1 - p0 + 1
    tab = agg.unstack("age").reindex(index=np.arange(p0, p1 + 1), columns=np.arange(n)).fillna(0)
    cohort = np.arange(p0, p1 + 1)[:, None]
    unobserved = cohort + np.arange(n)[None, :] > p1
    tab = tab.astype(float).mask(unobserved)
    tab.index = _period_index(p0, p1, period).rename("cohort")
    tab.columns = pd.Index(np.arange(n), name="periods_since_acquisition")
    tab.attrs["value"] = value
    tab.attrs["period"] = period
    return tab


def retention_rates(cohort_counts: pd.DataFrame) -> pd.DataFrame:
    """Share of each cohort active k periods after acquisition.

    Parameters
    ----------
    cohort_counts : DataFrame
        ``cohort_table(..., value="customers")``: column 0 is the cohort size.

    Returns
    -------
    DataFrame
        The table divided row-wise by its column 0 (so column 0 is 1.0).
        Cohorts of size 0 give NaN rows; unobserved cells stay NaN.

    Raises
    ------
    ValueError
        If the table is not a customers table (``attrs["value"]`` other than
        ``"customers"``), has no column 0, or has negative values.
    """
    if not isinstance(cohort_counts, pd.DataFrame):
        raise TypeError(f"cohort_counts must be a DataFrame, got {type(cohort_counts).__name__}")
    if cohort_counts.attrs.get("value", "customers") != "customers":
        raise ValueError(
            "cohort_counts must be a customers table (cohort_table(..., value='customers')), "
            f"got value={cohort_counts.attrs.get('value')!r}"
        )
    if 0 not in cohort_counts.columns:
        raise ValueError("cohort_counts: column 0 (cohort size, periods since acquisition 0) missing")
    if (cohort_counts.fillna(0) < 0).to_numpy().any():
        raise ValueError("cohort_counts: customer counts must be >= 0")
    size = cohort_counts[0].astype(float)
    rates = cohort_counts.astype(float).div(size.where(size > 0), axis=0)
    rates.attrs = {**cohort_counts.attrs, "value": "retention_rate"}
    return rates


def retention_by_age(cohort_counts: pd.DataFrame, cohort_values: pd.DataFrame | None = None,
                     ages=None) -> pd.DataFrame:
    """Retention and value per acquired customer at given ages, pooled over the cohorts observed there.

    For each age *k*, the cohorts observed *k* periods after acquisition
    (cohort + k <= last period, cohort size > 0) are pooled, weighted by
    size: retention = customers active at age *k* / customers acquired, and
    (with ``cohort_values``) value per acquired customer = the cohorts' value
    at age *k* / customers acquired.

    Parameters
    ----------
    cohort_counts : DataFrame
        ``cohort_table(..., value="customers")``.
    cohort_values : DataFrame, optional
        ``cohort_table(..., value="revenue")`` or ``"purchases"``.
    ages : sequence of int, optional
        Default :data:`RETENTION_AGES` of the table's period.  Ages no cohort
        was observed at are left out.

    Returns
    -------
    DataFrame
        Index: age (``periods_since_acquisition``); columns ``cohorts``
        (observed cohorts, int), ``customers`` (acquired in them, int),
        ``retention`` and, with values, ``<value>_per_customer``.  Empty
        (no rows) when no age is observed.
    """
    period = cohort_counts.attrs.get("period", "M")
    ages = RETENTION_AGES.get(period, RETENTION_AGES["M"]) if ages is None else ages
    sizes = cohort_counts[0].astype(float)
    rows = []
    for a in ages:
        if a not in cohort_counts.columns:
            continue
        seen = (cohort_counts[a].notna() & (sizes > 0)).to_numpy()
        if not seen.any():
            continue
        n = float(sizes[seen].sum())
        row = {"age": int(a), "cohorts": int(seen.sum()), "customers": int(n),
               "retention": float(cohort_counts.loc[seen, a].sum() / n)}
        if cohort_values is not None:
            row[f"{cohort_values.attrs.get('value', 'value')}_per_customer"] = float(cohort_values.loc[seen, a].sum() / n)
        rows.append(row)
    cols = ["cohorts", "customers", "retention"]
    if cohort_values is not None:
        cols.append(f"{cohort_values.attrs.get('value', 'value')}_per_customer")
    out = pd.DataFrame(rows, columns=["age", *cols]).set_index("age")
    out.index.name = "periods_since_acquisition"
    out.attrs["period"] = period
    return out


# ---------------------------------------------------------------------------
# 3. returning-customer share
# ---------------------------------------------------------------------------

@dataclass
class ReturningShare:
    """Per-period share of returning customers in a measure, and its summary.

    Attributes
    ----------
    table : DataFrame
        Per period: ``<measure>``, ``new_<measure>``, ``returning_<measure>``
        (``revenue``, ``new_revenue``, ``returning_revenue`` for revenue),
        ``returning_share`` (NaN when the period's total is 0), ``in_band``
        (bool; False when the share is NaN).
    band : tuple of float
        The band tested (default 25-40 %).
    definition : str
        ``"period"`` or ``"purchase_day"`` (see
        :func:`returning_revenue_share`).
    mean, min, max, median : float
        Unweighted statistics of ``returning_share`` over periods with activity.
    overall : float
        Weighted share: total returning / total.
    n_periods, n_in_band : int
        Periods with activity, and how many of them lie in the band.
    measure : str
        ``"revenue"`` or ``"purchases"``.
    """

    table: pd.DataFrame
    band: tuple
    definition: str
    mean: float
    min: float
    max: float
    median: float
    overall: float
    n_periods: int
    n_in_band: int
    measure: str = "revenue"

    @property
    def summary(self) -> dict:
        """The scalar results as a dict (no table)."""
        d = asdict(self)
        d.pop("table")
        return d

    def recent(self, n: int) -> tuple[float, int]:
        """Mean share over the last ``n`` periods with activity among the table's last ``n`` periods,
        and how many periods that is (NaN, 0 when there are none)."""
        if n <= 0:
            return float("nan"), 0
        s = self.table["returning_share"].iloc[-n:].dropna()
        return (float(s.mean()), int(len(s))) if len(s) else (float("nan"), 0)


def _check_band(band) -> tuple[float, float]:
    try:
        lo, hi = (float(band[0]), float(band[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"band must be a pair (low, high) of shares, got {band!r}") from None
    if not (0.0 <= lo <= hi <= 1.0):
        raise ValueError(f"band must satisfy 0 <= low <= high <= 1 (shares, not percent), got {band!r}")
    return lo, hi


def returning_revenue_share(
    transactions,
    period: str = "M",
    band: tuple[float, float] = (0.25, 0.40),
    definition: str = "period",
    measure: str = "revenue",
) -> ReturningShare:
    """Share of each period's revenue (or purchases) that comes from returning customers.

    Definition (default ``"period"``): a customer is *returning* in a period
    when its first purchase was in an **earlier** period; all of a customer's
    revenue (purchases) in its acquisition period counts as new.  This is the
    standard reporting definition (the "new vs returning customer revenue"
    split of periodic e-commerce reports and of growth accounting): a
    customer is new for the whole reporting period in which it was acquired.
    It makes ``returning = level - new`` of :func:`growth_accounting` in the
    same measure (retained + resurrected), so the two analyses agree, and it
    does not depend on how many orders a new customer places in its first
    period.

    The alternative ``definition="purchase_day"`` counts as returning every
    purchase day after the customer's first purchase day (including later
    days in the acquisition period); it gives a higher share and is offered
    as a sensitivity check.

    Parameters
    ----------
    transactions : DataFrame
        Clean purchases (``customer_id``, ``date``; ``amount`` for revenue).
    period : {"M", "Q"}
        Reporting period.
    band : (low, high)
        Band for ``in_band`` (inclusive), default the claimed 25-40 %.
    definition : {"period", "purchase_day"}
        See above.
    measure : {"revenue", "purchases"}
        Share of revenue, or of purchases (purchase days) for a log without
        amounts.

    Returns
    -------
    ReturningShare

    Notes
    -----
    The band is a claim about *stable* companies.  A log of a few
    acquisition cohorts (CDNOW: all customers acquired in Jan-Mar 1997) is
    not one: after acquisition stops every customer is returning and the
    share is 100 % by construction.
    """
    period = _check_period(period)
    measure = _check_measure(measure, ("revenue", "purchases"))
    if definition not in ("period", "purchase_day"):
        raise ValueError(f"definition must be 'period' or 'purchase_day', got {definition!r}")
    band = _check_band(band)
    if definition == "period":
        return _returning(_data_tables(transactions, need_amount=(measure == "revenue")), period, measure, band)
    if isinstance(transactions, Mapping):
        raise ValueError("definition='purchase_day' needs the transactions (the aggregates hold the 'period' "
                         "definition's tables only)")
    _check_transactions(transactions, need_amount=(measure == "revenue"))
    tx = transactions if measure == "revenue" else transactions[["customer_id", "date"]]
    daily = purchase_days(tx)
    p = _period_ordinals(daily["day"], period)
    amount = daily["amount"].to_numpy(dtype=float) if measure == "revenue" else np.ones(len(daily))
    is_first = daily["is_first"].to_numpy()
    parts = pd.DataFrame({"level": amount, "new": np.where(is_first, amount, 0.0)}).groupby(p, sort=True).sum()
    parts = parts.reindex(np.arange(int(p.min()), int(p.max()) + 1), fill_value=0.0)
    return _share_table(parts["level"].to_numpy(), parts["new"].to_numpy(), int(p.min()), int(p.max()), period,
                        measure, band, "purchase_day")


def _returning(tables, period: str, measure: str, band: tuple[float, float]) -> ReturningShare:
    """The ``"period"`` definition: per period, returning = level - new of the bridge in the same measure."""
    b = _bridge(tables, period, measure)
    p0, p1 = _bounds(tables, period)
    return _share_table(b[measure].to_numpy(), b["new"].to_numpy(), p0, p1, period, measure, band, "period")


def _share_table(level, new, p0, p1, period, measure, band, definition) -> ReturningShare:
    """The share table and summary from per-period totals (``level``, ``new``) over every period p0..p1."""
    lo, hi = band
    new_col, ret_col = f"new_{measure}", f"returning_{measure}"
    tab = pd.DataFrame({measure: np.asarray(level, dtype=float), new_col: np.asarray(new, dtype=float)},
                       index=_period_index(p0, p1, period))
    tab[ret_col] = tab[measure] - tab[new_col]
    level = tab[measure]
    tab["returning_share"] = (tab[ret_col] / level.where(level > 0)).astype(float)
    share = tab["returning_share"]
    tab["in_band"] = share.between(lo, hi).fillna(False).astype(bool)
    tab.attrs.update(period=period, measure=measure)
    ok = share.dropna()
    total = float(level.sum())
    return ReturningShare(
        table=tab,
        band=(lo, hi),
        definition=definition,
        mean=float(ok.mean()) if len(ok) else float("nan"),
        min=float(ok.min()) if len(ok) else float("nan"),
        max=float(ok.max()) if len(ok) else float("nan"),
        median=float(ok.median()) if len(ok) else float("nan"),
        overall=float(tab[ret_col].sum() / total) if total > 0 else float("nan"),
        n_periods=int(len(ok)),
        n_in_band=int(tab["in_band"].sum()),
        measure=measure,
    )


# ---------------------------------------------------------------------------
# 4. do repeat orders have higher value? (within customer)
# ---------------------------------------------------------------------------

@dataclass
class RepeatEffect:
    """Within-customer effect of being a repeat order on order value.

    Attributes
    ----------
    effect : float
        Percentage difference (as a fraction) of a repeat order's value
        versus the same customer's first order, ``exp(beta) - 1`` where beta
        is the difference in mean log order value (a ratio of geometric
        means; 0.2 = repeat orders 20 % larger).
    ci_low, ci_high : float
        95 % confidence interval of ``effect``.
    p_value : float
        Two-sided p-value of beta = 0.
    beta, se : float
        Log-scale estimate and its standard error.
    n_customers, n_orders : int
        Customers (with a positive first order and at least one positive
        repeat order) and their orders used in the estimate.
    method : str
        ``"mixedlm"``, ``"mixedlm+mundlak"`` or ``"paired"``.
    supported : bool
        ``effect > 0 and p_value < 0.05``.
    statement : str
        Plain-language result.
    n_nonpositive_orders : int
        Purchase days with total value <= 0, excluded (log undefined).
    n_customers_no_repeat : int
        Customers excluded because they have no (positive) repeat order.
    n_customers_bad_first : int
        Customers excluded because their first purchase day has value <= 0
        (the first order stays the first purchase day; it is not replaced
        by the next day).
    pooled_effect : float
        For context, the naive between-customer contrast over *all*
        customers: exp(mean log repeat order - mean log first order) - 1.
        It mixes customers, so heavy buyers (with many, larger repeat
        orders) can make it differ from the within-customer effect.
    seconds : float
        Wall-clock time of the fit.
    warnings : list of str
        Warnings raised by the fit (e.g. statsmodels convergence warnings).
    sampled : bool
        MixedLM only: the fit used a deterministic sample of the customers
        (:data:`helpers.aggregates_revenue.MIXEDLM_MAX_CUSTOMERS`, chosen by
        the MD5 digest of their id), not all of them.
    n_customers_eligible : int
        Customers with a positive first and a positive repeat order (all of
        them, also when the fit used a sample).
    """

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    beta: float
    se: float
    n_customers: int
    n_orders: int
    method: str
    supported: bool
    statement: str
    n_nonpositive_orders: int = 0
    n_customers_no_repeat: int = 0
    n_customers_bad_first: int = 0
    pooled_effect: float = float("nan")
    seconds: float = float("nan")
    warnings: list = field(default_factory=list)
    sampled: bool = False
    n_customers_eligible: int = 0

    def to_dict(self) -> dict:
        """All fields as a plain dict."""
        return asdict(self)


def _repeat_info(tables) -> dict:
    """The exclusion counts and the pooled contrast of the repeat-order test from the ``repeat`` table."""
    r = tables["repeat"].iloc[0]
    fs, fn, rs, rn = (float(r["first_log_sum"]), int(r["first_n"]), float(r["repeat_log_sum"]), int(r["repeat_n"]))
    pooled = float(np.expm1(rs / rn - fs / fn)) if rn > 0 and fn > 0 else float("nan")
    return {"n_nonpositive_orders": int(r["n_nonpositive_orders"]),
            "n_customers_bad_first": int(r["n_customers_bad_first"]),
            "n_customers_no_repeat": int(r["n_customers_no_repeat"]), "pooled_effect": pooled}


def _order_tables(data, max_order_number: int | None = None, mixedlm_cap: int | None = None):
    """The order tables (``repeat``, ``repeat_orders``, ``profile``) from aggregates or a transaction frame."""
    if isinstance(data, Mapping):
        t = _tables_of(data)
        if "repeat" not in t:
            raise ValueError("the order-value analyses need amounts: the log has no 'amount' column "
                             "(no aggregates_revenue.repeat table)")
        return t
    _check_transactions(data, need_amount=True)
    return revenue_tables(data, orders=True, max_order_number=max_order_number, mixedlm_cap=mixedlm_cap)


def _fit_mixedlm(d: pd.DataFrame, mundlak: bool = False) -> tuple[float, float, float, list]:
    import statsmodels.api as sm
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    y = d["log_value"].to_numpy()
    groups = d["customer_id"].to_numpy()
    mundlak_note: list[str] = []
    cols = [np.ones(len(d)), d["repeat"].to_numpy()]
    if mundlak:
        # customer mean of the repeat indicator (share of repeat orders)
        share = d.groupby("customer_id", sort=False)["repeat"].transform("mean").to_numpy()
        if np.ptp(share) > 0:
            cols.append(share)
        else:
            mundlak_note = ["Mundlak term dropped: every customer has the same share of repeat orders"]
    x = np.column_stack(cols)
    # moment-based start values (pooled OLS + one-way ANOVA variance split):
    # they make L-BFGS converge quickly and avoid the boundary solution it
    # can reach from statsmodels' default start.
    beta0 = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = pd.Series(y - x @ beta0)
    gm = resid.groupby(groups)
    within = float(((resid - gm.transform("mean")) ** 2).sum() / max(len(y) - gm.ngroups, 1))
    within = max(within, 1e-12)
    nbar = len(y) / gm.ngroups
    between = max(float(gm.mean().var()) - within / nbar, 1e-3 * within)
    start = MixedLMParams.from_components(fe_params=beta0, cov_re=np.array([[between / within]]))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = sm.MixedLM(y, x, groups=groups).fit(reml=True, method=["lbfgs"], start_params=start)
        if not res.converged:
            res = sm.MixedLM(y, x, groups=groups).fit(reml=True, method=["bfgs"], start_params=start)
    caught = mundlak_note + sorted({f"{type(m.message).__name__}: {m.message}" for m in w})
    if not res.converged:
        caught.append("MixedLM did not converge")
    beta, se = float(res.fe_params[1]), float(res.bse_fe[1])
    p = float(2 * stats.norm.sf(abs(beta / se)))
    return beta, se, p, caught


def order_value_repeat_effect(
    transactions, method: str = "mixedlm", mundlak: bool = False
) -> RepeatEffect:
    """Do repeat orders have higher value than the same customer's first order?

    Orders are purchase days (amounts summed per customer and day, as in
    :func:`helpers.summary.purchase_days`).  The first order is the first
    purchase day; repeat orders are the later days.  Orders with value <= 0
    are excluded and counted (their log is undefined); a customer whose
    first purchase day has value <= 0 is excluded (counted).  **Only
    customers with at least one repeat order are used** -- a customer
    without repeats carries no within-customer information.

    Parameters
    ----------
    transactions : DataFrame or mapping
        Clean purchases (``customer_id``, ``date``, ``amount``), or the
        aggregates of :func:`revenue_tables` / ``stage.aggregates`` (their
        ``repeat`` statistics and ``repeat_orders``; the stage keeps the
        orders of at most
        :data:`helpers.aggregates_revenue.MIXEDLM_MAX_CUSTOMERS` customers,
        so MixedLM on a larger log runs on that sample, said in
        ``statement``, ``warnings`` and ``sampled``; from a transaction
        frame every customer is used).
    method : {"mixedlm", "paired"}
        ``"mixedlm"``: statsmodels MixedLM (REML, L-BFGS from moment start
        values) of ``log(order value) ~ 1 + repeat`` with a random intercept
        per customer; Wald 95 % CI and p-value of the ``repeat``
        coefficient.  ``"paired"``: per customer d_i = mean log repeat order
        value - log first order value; one-sample t-test of d (scipy) and
        its t-based 95 % CI.  In both, ``effect = exp(beta) - 1`` with the
        CI transformed the same way: the ratio of geometric means of repeat
        and first orders.
    mundlak : bool
        MixedLM only: add the customer's share of repeat orders as a
        covariate (Mundlak 1978, correlated random effects), which makes
        the ``repeat`` coefficient a within-customer estimate.  Default
        False (the plain random-intercept model).

    Returns
    -------
    RepeatEffect

    Raises
    ------
    ValueError
        Bad ``method``, invalid transactions, or fewer than 3 customers with
        a repeat order.

    Notes
    -----
    The plain random-intercept model assumes a customer's spend level is
    unrelated to its share of repeat orders.  When big spenders also order
    more often (as in CDNOW, where the naive ``pooled_effect`` is far above
    the within-customer estimates), it borrows some between-customer
    information and is biased towards the pooled contrast; the paired
    method and ``mundlak=True`` are purely within-customer.

    This is a within-customer contrast: it answers "does the same customer
    spend more per order once it is a repeat buyer?".  It conditions on
    customers who came back, and first/repeat also differ in calendar time,
    so it is descriptive, not causal.
    """
    if method not in ("mixedlm", "paired"):
        raise ValueError(f"method must be 'mixedlm' or 'paired', got {method!r}")
    if mundlak and method != "mixedlm":
        raise ValueError("mundlak=True applies to method='mixedlm' only (the paired method is already within-customer)")
    tables = _order_tables(transactions)
    info = _repeat_info(tables)
    r = tables["repeat"].iloc[0]
    n_cust, n_orders = int(r["n_customers"]), int(r["n_orders"])
    if n_cust < 3:
        raise ValueError(
            f"order_value_repeat_effect needs at least 3 customers with a positive first order and "
            f"a positive repeat order; found {n_cust}"
        )
    t0 = time.perf_counter()
    caught: list[str] = []
    sampled = False
    if method == "mixedlm":
        d = tables["repeat_orders"]
        sampled = bool(d.attrs.get("sampled", False))
        beta, se, p, caught = _fit_mixedlm(d, mundlak=bool(mundlak))
        lo, hi = beta - stats.norm.ppf(0.975) * se, beta + stats.norm.ppf(0.975) * se
        if sampled:
            n_cust, n_orders = int(d["customer_id"].nunique()), int(len(d))
    else:
        # paired t-test of d_i from its sufficient statistics (n, mean, sample variance): exact
        n = n_cust
        beta = float(r["mean_d"])
        se = float(np.sqrt(float(r["var_d"]) / n))
        t_crit = float(stats.t.ppf(0.975, n - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_stat = beta / se
        p = float(2 * stats.t.sf(abs(t_stat), n - 1)) if np.isfinite(t_stat) else (1.0 if beta == 0 else 0.0)
        lo, hi = beta - t_crit * se, beta + t_crit * se
    seconds = time.perf_counter() - t0

    effect = float(np.expm1(beta))
    ci_low, ci_high = float(np.expm1(lo)), float(np.expm1(hi))
    supported = bool(effect > 0 and p < 0.05)
    if method == "mixedlm":
        label = "MixedLM, random intercept per customer" + (" + Mundlak term" if mundlak else "")
    else:
        label = "paired t-test"
    ptxt = "p < 0.001" if p < 0.001 else f"p = {p:.3g}"
    direction = "larger" if effect >= 0 else "smaller"
    verdict = (
        "supports the claim that repeat customers buy more per purchase"
        if supported
        else ("contradicts the claim (repeat orders are significantly smaller)"
              if (effect < 0 and p < 0.05)
              else "does not support the claim (no significant difference)")
    )
    sample = (f"a sample of {n_cust:,} of the {int(r['n_customers']):,} customers with at least one repeat "
              "order, chosen by the MD5 digest of their id" if sampled else
              f"{n_cust:,} customers with at least one repeat order")
    statement = (
        f"Within customers, repeat orders were {abs(effect):.1%} {direction} than the same "
        f"customer's first order (95% CI {ci_low:+.1%} to {ci_high:+.1%}, {ptxt}; {label}; "
        f"{sample}, {n_orders:,} orders). "
        f"This {verdict}."
    )
    return RepeatEffect(
        effect=effect, ci_low=ci_low, ci_high=ci_high, p_value=p, beta=beta, se=se,
        n_customers=n_cust, n_orders=n_orders,
        method=method + ("+mundlak" if (mundlak and method == "mixedlm") else ""), supported=supported,
        statement=statement, seconds=seconds, warnings=caught, sampled=sampled,
        n_customers_eligible=int(r["n_customers"]), **info,
    )


# ---------------------------------------------------------------------------
# 5. cross-firm: repeat share vs revenue
# ---------------------------------------------------------------------------

@dataclass
class RepeatShareRegression:
    """OLS of log(revenue) on repeat-revenue share across firms.

    Attributes
    ----------
    slope, slope_ci_low, slope_ci_high, p_value : float
        Coefficient of ``repeat_share`` (per unit share, i.e. 0 -> 1), its
        95 % CI and p-value.
    intercept : float
    low, high : float
        The two repeat shares compared (default 0.10 and 0.40).
    implied_difference, ci_low, ci_high : float
        Implied revenue difference of a firm at ``high`` versus ``low``:
        ``exp(slope * (high - low)) - 1`` with its 95 % CI.
    claimed : float
        The claimed difference (+47 % by default).
    claim_in_ci : bool
        Whether the claimed difference lies in the 95 % CI.
    n_firms : int
    r_squared : float
    cov_type : str
    """

    slope: float
    slope_ci_low: float
    slope_ci_high: float
    p_value: float
    intercept: float
    low: float
    high: float
    implied_difference: float
    ci_low: float
    ci_high: float
    claimed: float
    claim_in_ci: bool
    n_firms: int
    r_squared: float
    cov_type: str

    def to_dict(self) -> dict:
        """All fields as a plain dict."""
        return asdict(self)


#: The common claim's four strategic functions, mapped onto the bridge components.
STRATEGIC_FUNCTIONS = {
    "new": "(1) convert prospects into customers",
    "expansion": "(2) existing customers buy more",
    "resurrected": "(2) existing customers buy more (win-back of lapsed customers)",
    "contraction": "(3)+(4) avoid disappointing customers: they buy less",
    "churned": "(3)+(4) avoid disappointing customers: they leave",
}

_GAINS = ("new", "expansion", "resurrected")
_LOSSES = ("contraction", "churned")


def strategic_functions(bridge: pd.DataFrame) -> pd.DataFrame:
    """The claimed strategic functions on a bridge (any measure), summed over the periods after the first.

    Returns one row per bridge component (``new``, ``expansion``,
    ``resurrected``, ``contraction``, ``churned``) with the strategic
    function it measures, its sum, its share of all gains (new + expansion +
    resurrected) or of all losses (contraction + churned), and the number of
    periods in which it is non-zero.  The first period has no previous period
    to compare with and is left out.  A share is NaN when there are no gains
    (losses) to share, e.g. on a log within one period.
    """
    after_first = bridge.iloc[1:]
    order = list(STRATEGIC_FUNCTIONS)
    totals = after_first[order].sum().astype(float)
    gains = float(totals[list(_GAINS)].sum())
    losses = float(totals[list(_LOSSES)].sum())
    denominator = {k: gains if k in _GAINS else losses for k in order}
    share = pd.Series({k: totals[k] / denominator[k] if denominator[k] != 0 else float("nan") for k in order})
    out = pd.DataFrame({
        "strategic function": pd.Series(STRATEGIC_FUNCTIONS),
        "sum over periods": totals,
        "share of gains or losses": share,
        "periods with any": (after_first[order] != 0).sum().astype(np.int64),
    }).reindex(order)
    out.index.name = "bridge component"
    out.attrs["measure"] = bridge.attrs.get("measure", _level_column(bridge))
    return out


def order_value_profile(transactions, max_order_number: int = 6) -> pd.DataFrame:
    """Geometric-mean order value by order number, for groups of customers by their number of orders.

    Orders are purchase days (amounts summed per customer and day, as in
    :func:`helpers.summary.purchase_days`); orders with a non-positive value
    are left out (a log cannot be taken).  Rows: order number 1 ..
    ``max_order_number``; columns: customers with 1, 2, 3-4 and 5+ orders.
    Reading across a row compares different customers; reading down a column
    follows the same kind of customer from first to later orders.  The
    geometric mean is ``exp(sum of log values / count)`` of the ``profile``
    aggregate; ``transactions`` may be those aggregates (``stage.aggregates``,
    order numbers up to :data:`helpers.aggregates_revenue.PROFILE_MAX_ORDER`).
    """
    tables = _order_tables(transactions, max_order_number=max_order_number)
    prof = tables["profile"]
    bound = int(prof.attrs.get("max_order_number", max_order_number))
    if max_order_number > bound:
        raise ValueError(f"max_order_number={max_order_number}: the aggregates keep order numbers up to {bound} "
                         "(helpers.aggregates_revenue.PROFILE_MAX_ORDER)")
    from .aggregates_revenue import PROFILE_GROUPS  # noqa: PLC0415

    prof = prof.loc[prof["order_number"] <= max_order_number]
    table = (prof.assign(mean=prof["log_sum"] / prof["n"])
             .pivot(index="order_number", columns="group", values="mean"))
    table = table.reindex(columns=[g for g in PROFILE_GROUPS if g in table.columns])
    table.columns = pd.CategoricalIndex(table.columns, categories=list(PROFILE_GROUPS), ordered=False,
                                        name="customers")
    return np.exp(table)
    return np.exp(table)




def repeat_share_revenue_regression(
    firms: pd.DataFrame,
    low: float = 0.10,
    high: float = 0.40,
    claimed: float = 0.47,
    cov_type: str = "nonrobust",
) -> RepeatShareRegression:
    """Cross-firm regression of log revenue on the repeat-revenue share.

    Fits ``log(revenue) = a + b * repeat_share + e`` by OLS (statsmodels)
    and converts b into the implied revenue difference between firms with
    ``repeat_share = high`` and ``low``: ``exp(b * (high - low)) - 1``, for
    comparison with the claim that firms with 40 % of revenue from repeat
    customers earn 47 % more than firms with 10 % (``claimed=0.47``).  The
    log-linear form assumes a constant percentage effect per point of share.
    It is an association across firms, not a causal effect.

    Parameters
    ----------
    firms : DataFrame
        One row per firm with ``repeat_share`` (fraction in [0, 1]) and
        ``revenue`` (> 0).
    low, high : float
        Shares to compare (fractions).
    claimed : float
        Claimed fractional difference.
    cov_type : str
        statsmodels covariance type, e.g. ``"nonrobust"`` or ``"HC1"``.

    Returns
    -------
    RepeatShareRegression

    Raises
    ------
    ValueError
        Missing/non-numeric/non-finite columns, ``repeat_share`` outside
        [0, 1] (give fractions, not percent) or constant, ``revenue`` <= 0,
        fewer than 3 firms.
    """
    import statsmodels.api as sm

    if not isinstance(firms, pd.DataFrame):
        raise TypeError(f"firms must be a DataFrame, got {type(firms).__name__}")
    missing = [c for c in ("repeat_share", "revenue") if c not in firms.columns]
    if missing:
        raise ValueError(f"firms: required column(s) {missing} missing (columns present: {list(firms.columns)})")
    for c in ("repeat_share", "revenue"):
        if not pd.api.types.is_numeric_dtype(firms[c]) or pd.api.types.is_bool_dtype(firms[c]):
            raise ValueError(f"firms: column '{c}' must be numeric, got {firms[c].dtype}")
        bad = ~np.isfinite(firms[c].to_numpy(dtype=float))
        if bad.any():
            raise ValueError(f"firms: column '{c}' has {int(bad.sum())} missing or infinite value(s)")
    share = firms["repeat_share"].to_numpy(dtype=float)
    rev = firms["revenue"].to_numpy(dtype=float)
    if ((share < 0) | (share > 1)).any():
        raise ValueError(
            f"firms: column 'repeat_share' must be a fraction in [0, 1] (not percent); "
            f"{int(((share < 0) | (share > 1)).sum())} value(s) outside"
        )
    if (rev <= 0).any():
        raise ValueError(f"firms: column 'revenue' must be > 0 (log is taken); {int((rev <= 0).sum())} value(s) <= 0")
    if len(firms) < 3:
        raise ValueError(f"firms: at least 3 firms are needed, got {len(firms)}")
    if np.ptp(share) == 0:
        raise ValueError("firms: column 'repeat_share' is constant; the slope is not identified")
    for name, v in (("low", low), ("high", high)):
        if not (0.0 <= float(v) <= 1.0):
            raise ValueError(f"{name} must be a share in [0, 1], got {v!r}")

    x = sm.add_constant(share, has_constant="add")
    res = sm.OLS(np.log(rev), x).fit(cov_type=cov_type)
    b = float(res.params[1])
    ci = np.asarray(res.conf_int(0.05))[1]
    gap = float(high) - float(low)
    lo_, hi_ = sorted((float(np.expm1(ci[0] * gap)), float(np.expm1(ci[1] * gap))))
    return RepeatShareRegression(
        slope=b, slope_ci_low=float(ci[0]), slope_ci_high=float(ci[1]),
        p_value=float(res.pvalues[1]), intercept=float(res.params[0]),
        low=float(low), high=float(high),
        implied_difference=float(np.expm1(b * gap)), ci_low=lo_, ci_high=hi_,
        claimed=float(claimed), claim_in_ci=bool(lo_ <= claimed <= hi_),
        n_firms=int(len(firms)), r_squared=float(res.rsquared), cov_type=cov_type,
    )


def repeat_effect_unavailable(transactions, min_customers: int = 3) -> str:
    """Why :func:`order_value_repeat_effect` cannot run on a log ("" when it can).

    It needs amounts, and at least ``min_customers`` customers with a
    positive first order and a positive repeat order (purchase days).
    ``transactions``: a frame or the aggregates (``stage.aggregates``).
    """
    no_amounts = (not bool(_tables_of(transactions)["info"]["has_amounts"].iloc[0])
                  if isinstance(transactions, Mapping) else "amount" not in transactions.columns)
    if no_amounts:
        return ("the log has no amounts (no amount column mapped), and the test compares the value of repeat "
                "orders with that of first orders")
    n = int(_order_tables(transactions)["repeat"]["n_customers"].iloc[0])
    if n < min_customers:
        return (f"only {n} customer{'s' if n != 1 else ''} bought on two different days with positive order "
                f"values; the within-customer comparison needs at least {min_customers}")
    return ""


# ---------------------------------------------------------------------------
# 6. the cross-firm claim on a simulated market
# ---------------------------------------------------------------------------

@dataclass
class MarketIllustration:
    """The cross-firm regression on simulated markets (:func:`market_illustration`).

    Attributes
    ----------
    markets : dict of float -> DataFrame
        :func:`helpers.simulate.simulate_market` per correlation of retention and acquisition.
    fits, local_fits : dict of float -> RepeatShareRegression
        The regression over all firms, and over firms with a repeat share in ``local_range``.
    main_correlation : float
        The correlation closest to 0 (retention and acquisition independent): the one shown.
    benchmark : float
        The accounting benchmark ``(1 - low) / (1 - high) - 1``: the revenue difference of two firms
        with the same new-customer revenue at repeat shares ``high`` and ``low``.
    low, high, claimed : float
    local_range : tuple of float
    seed, n_firms, measure_months : int
    """

    markets: dict
    fits: dict
    local_fits: dict
    main_correlation: float
    benchmark: float
    low: float
    high: float
    claimed: float
    local_range: tuple
    seed: int
    n_firms: int
    measure_months: int

    @property
    def fit(self) -> RepeatShareRegression:
        return self.fits[self.main_correlation]

    @property
    def local_fit(self) -> RepeatShareRegression:
        return self.local_fits[self.main_correlation]

    @property
    def firms(self) -> pd.DataFrame:
        return self.markets[self.main_correlation]

    def headline(self) -> dict:
        """The headline number of the illustration: the implied difference (percent, 0.1 precision)."""
        return {"market_implied_difference_pct": _pct(self.fit.implied_difference, "the regression failed")}

    def sensitivity(self) -> pd.DataFrame:
        """One row per correlation: firms, share range, slope, p-value, R², implied difference and interval,
        whether the claim is in it, and the same for the local fit."""
        rows = {}
        for c, f in self.fits.items():
            m, lf = self.markets[c], self.local_fits[c]
            rows[c] = {
                "firms": f.n_firms, "share_low": float(m["repeat_share"].min()),
                "share_high": float(m["repeat_share"].max()), "slope": f.slope, "p_value": f.p_value,
                "r_squared": f.r_squared, "implied_difference": f.implied_difference, "ci_low": f.ci_low,
                "ci_high": f.ci_high, "claim_in_ci": f.claim_in_ci, "local_firms": lf.n_firms,
                "local_implied_difference": lf.implied_difference, "local_ci_low": lf.ci_low,
                "local_ci_high": lf.ci_high, "local_claim_in_ci": lf.claim_in_ci,
            }
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = "correlation"
        return out


def market_illustration(n_firms: int = 200, months: int = 36, measure_months: int = 12,
                        correlations=(-0.5, 0.0, 0.5), seed: int = 2024, low: float = 0.10,
                        high: float = 0.40, claimed: float = 0.47, local_range=(0.05, 0.50),
                        cov_type: str = "HC1") -> MarketIllustration:
    """The cross-firm claim on simulated markets: one market per correlation of retention and acquisition.

    Each market is :func:`helpers.simulate.simulate_market` (``n_firms`` firms
    over ``months`` months, revenue and repeat share over the last
    ``measure_months``; the same ``seed`` for every correlation); on each,
    :func:`repeat_share_revenue_regression` over all firms and over the firms
    with a repeat share in ``local_range``.  Independent of any transaction
    log.
    """
    from .simulate import simulate_market  # noqa: PLC0415  (simulate sits beside this module)

    correlations = [float(c) for c in correlations]
    if not correlations:
        raise ValueError("correlations: at least one correlation is needed")
    lo_r, hi_r = float(local_range[0]), float(local_range[1])
    markets = {c: simulate_market(n_firms, months=months, measure_months=measure_months, correlation=c,
                                  seed=seed, show_progress=False) for c in correlations}
    kw = dict(low=low, high=high, claimed=claimed, cov_type=cov_type)
    fits = {c: repeat_share_revenue_regression(m, **kw) for c, m in markets.items()}
    local = {c: repeat_share_revenue_regression(m.loc[m["repeat_share"].between(lo_r, hi_r)], **kw)
             for c, m in markets.items()}
    return MarketIllustration(
        markets=markets, fits=fits, local_fits=local, main_correlation=min(correlations, key=abs),
        benchmark=(1 - low) / (1 - high) - 1, low=float(low), high=float(high), claimed=float(claimed),
        local_range=(lo_r, hi_r), seed=int(seed), n_firms=int(n_firms), measure_months=int(measure_months),
    )


# ---------------------------------------------------------------------------
# 7. everything the revenue-dynamics report needs, on any log
# ---------------------------------------------------------------------------

@dataclass
class RevenueDynamics:
    """The revenue-dynamics analyses of one log (:func:`revenue_dynamics`).

    Attributes
    ----------
    period : str
        ``"M"`` or ``"Q"``.
    measure : str
        ``"revenue"`` with amounts, else ``"purchases"`` (purchase days).
    has_amounts : bool
    n_customers, n_periods, n_days : int
        Customers, periods from the first to the last transaction, distinct purchase dates.
    bridge : DataFrame
        :func:`growth_accounting` in ``measure``.
    customers_bridge : DataFrame
        :func:`growth_accounting` of active customers (``measure="customers"``).
    functions : DataFrame
        :func:`strategic_functions` of ``bridge``.
    window : AcquisitionWindow
    cohort_counts, retention, cohort_values, value_per_customer : DataFrame
        :func:`cohort_table` of customers, :func:`retention_rates`, the cohort table in ``measure`` and
        that divided by the cohort size.
    retention_summary : DataFrame
        :func:`retention_by_age`.
    returning : ReturningShare
        In ``measure`` (share of revenue, or of purchases).
    recent_periods : int
        Periods of the "recent" summary of the returning share (the last ones, never the first period;
        periods without activity among them have no share and are left out of the mean).
    recent_share : float
        Mean returning share over them (NaN when there are none).
    repeat_effect : RepeatEffect or None
        :func:`order_value_repeat_effect` (None when it cannot run).
    repeat_effect_reason : str
        Why it did not run ("" when it did): :func:`repeat_effect_unavailable`.
    order_profile : DataFrame or None
        :func:`order_value_profile` (None without amounts).
    identity_error : float
        :func:`bridge_identity_error` of ``bridge`` (max over it and ``customers_bridge``).
    limits : list of str
        Sentences on what this log cannot show (one period, one customer, no repeat buyers).
    """

    period: str
    measure: str
    has_amounts: bool
    n_customers: int
    n_periods: int
    n_days: int
    bridge: pd.DataFrame
    customers_bridge: pd.DataFrame
    functions: pd.DataFrame
    window: AcquisitionWindow
    cohort_counts: pd.DataFrame
    retention: pd.DataFrame
    cohort_values: pd.DataFrame
    value_per_customer: pd.DataFrame
    retention_summary: pd.DataFrame
    returning: ReturningShare
    recent_periods: int
    recent_share: float
    repeat_effect: RepeatEffect | None
    repeat_effect_reason: str
    order_profile: pd.DataFrame | None
    identity_error: float
    limits: list = field(default_factory=list)

    @property
    def period_name(self) -> str:
        return _PERIOD_NAME[self.period]

    @property
    def after_first(self) -> int:
        """Periods with a previous period to compare with (the bridge's rows after the first)."""
        return max(self.n_periods - 1, 0)

    def totals(self) -> dict[str, float]:
        """Each bridge component summed over the periods after the first, and ``gains``/``losses``
        (losses as a positive number)."""
        t = {k: float(v) for k, v in self.functions["sum over periods"].items()}
        t["gains"] = sum(t[k] for k in _GAINS)
        t["losses"] = -sum(t[k] for k in _LOSSES)
        return t

    def share_of_gains(self, component: str) -> float:
        """A component's share of gains (new, expansion, resurrected) or losses; NaN when there are none."""
        return float(self.functions.loc[component, "share of gains or losses"])

    def retention_at(self, age: int) -> float:
        """Pooled retention at ``age`` periods since acquisition (NaN when no cohort was observed there)."""
        s = self.retention_summary
        return float(s.loc[age, "retention"]) if age in s.index else float("nan")

    def headline(self) -> dict:
        """The report's headline numbers of the log: shares in percent (``*_pct``, 0.1 precision), counts
        as integers; a number the log cannot give is a string ``"n/a: <why>"``."""
        if not self.has_amounts:
            effect_why = "no amounts"
        elif self.repeat_effect_reason:
            effect_why = "fewer than 3 customers with a repeat order"
        else:
            effect_why = ""
        return {
            "gains_from_new_customers_pct": _pct(self.share_of_gains("new"), "no gains after the first period"),
            "losses_from_churn_pct": _pct(self.share_of_gains("churned"), "no losses after the first period"),
            "periods": int(self.n_periods),
            "acquisition_periods": int(self.window.periods_with_new),
            "returning_share_recent_pct": _pct(self.recent_share, "no period after the first with purchases"),
            "retention_after_1_period_pct": _pct(self.retention_at(1), "no cohort observed one period later"),
            "repeat_order_effect_pct": (_pct(self.repeat_effect.effect, "") if self.repeat_effect is not None
                                        else f"n/a: {effect_why}"),
        }


def _pct(x: float, why: str):
    """A share in percent with 0.1 precision, or ``"n/a: why"`` when it is undefined."""
    return round(100 * float(x), 1) if x is not None and math.isfinite(float(x)) else f"n/a: {why}"


def _limits(tables, n_customers: int, period: str, reason: str, has_amounts: bool) -> list[str]:
    name = _PERIOD_NAME[period]
    info = tables["info"].iloc[0]
    p0, p1 = _bounds(tables, period)
    out = []
    if int(info["n_days"]) == 1:
        day = pd.Timestamp(info["first_day"]).date().isoformat()
        out.append(f"Every purchase in the log falls on one day ({day}): there is no change from one {name} to "
                   f"the next, so the bridge, retention and the returning-customer share have nothing to measure.")
    elif p0 == p1:
        p = str(pd.Period(ordinal=p0, freq=period))
        out.append(f"Every purchase in the log falls in one {name} ({p}): there is no change from one {name} to "
                   f"the next, so the bridge, retention and the returning-customer share have nothing to measure.")
    if n_customers == 1:
        out.append("The log has a single customer: the bridge and the cohorts follow that one customer, not a "
                   "customer base.")
    if has_amounts and reason:
        out.append(f"The first-vs-repeat order value test is not run: {reason}.")
    return out


def revenue_dynamics(data, period: str = "auto", band: tuple[float, float] = (0.25, 0.40),
                     recent_months: int = 12, repeat_method: str = "paired", max_order_number: int = 6,
                     max_periods: int = 48) -> RevenueDynamics:
    """Bridge, cohorts, returning share and order values of a log, in revenue or (without amounts) purchases.

    The compact tables of :mod:`helpers.aggregates_revenue` feed the bridges
    (the measure and active customers), the cohort tables, the returning
    share and the order-value analyses; the report passes the stage's
    (``stage.aggregates``, computed by the configured engine), so it never
    holds the log.  With
    amounts the measure is revenue and the order-value analyses run; without
    (no ``amount`` column) the measure is purchases (purchase days), the
    returning share is the share of purchases, and the order-value analyses
    are None with the reason.  Nothing assumes a shape of the log: any number
    of cohorts and periods; a log within one period or with one customer
    gives results and :attr:`RevenueDynamics.limits` sentences instead of an
    error.

    Parameters
    ----------
    data : mapping or DataFrame
        ``stage.aggregates`` (or :func:`revenue_tables`), or clean purchases
        (``customer_id``, ``date``, optionally ``amount``) of which the
        tables are computed with pandas first.
    period : {"auto", "M", "Q"}
        Reporting period; ``"auto"``: :func:`resolve_period` with ``max_periods``.
    band : (low, high)
        The claimed band of the returning share.
    recent_months : int
        The returning share is also summarised over the last periods covering
        this many months (12 months = 12 monthly or 4 quarterly periods), but
        never the log's first period (0 % returning by construction).
    repeat_method : {"paired", "mixedlm", "mixedlm+mundlak"}
        Method of :func:`order_value_repeat_effect`.  MixedLM runs on the
        aggregates' order sample: every customer up to
        :data:`helpers.aggregates_revenue.MIXEDLM_MAX_CUSTOMERS` customers
        with a repeat order, beyond that a deterministic sample of that many
        (from a transaction frame too, so both give the same result); the
        paired test always uses every customer.
    max_order_number : int
        Orders shown in :func:`order_value_profile` (with aggregates: at most
        :data:`helpers.aggregates_revenue.PROFILE_MAX_ORDER`).
    """
    if repeat_method not in ("paired", "mixedlm", "mixedlm+mundlak"):
        raise ValueError(f"repeat_method must be 'paired', 'mixedlm' or 'mixedlm+mundlak', got {repeat_method!r}")
    band = _check_band(band)
    if isinstance(data, Mapping):
        tables = _tables_of(data)
    else:
        # the stage's bound on MixedLM's customers applies to a frame as well: the same result either way
        from .aggregates_revenue import MIXEDLM_MAX_CUSTOMERS  # noqa: PLC0415

        tables = revenue_tables(data, max_order_number=max_order_number, mixedlm_cap=MIXEDLM_MAX_CUSTOMERS)
    period = resolve_period(period, tables, max_periods)
    info = tables["info"].iloc[0]
    has_amounts = bool(info["has_amounts"])
    measure = "revenue" if has_amounts else "purchases"
    n_customers = int(info["n_customers"])
    p0, p1 = _bounds(tables, period)
    n_periods = p1 - p0 + 1

    bridge = _bridge(tables, period, measure)
    customers_bridge = _bridge(tables, period, "customers")
    counts = _cohorts(tables, period, "customers")
    values = _cohorts(tables, period, measure)
    per_customer = values.div(counts[0].where(counts[0] > 0), axis=0)
    per_customer.attrs = {**values.attrs, "value": f"{measure}_per_customer"}
    returning = _returning(tables, period, measure, band)
    recent = min(int(math.ceil(recent_months / _MONTHS_PER_PERIOD[period])), n_periods - 1)
    recent_share, _ = returning.recent(recent)

    reason = repeat_effect_unavailable(tables)
    effect = profile = None
    if not reason:
        method, mundlak = ("mixedlm", repeat_method.endswith("+mundlak")) if repeat_method.startswith("mixedlm") \
            else (repeat_method, False)
        effect = order_value_repeat_effect(tables, method=method, mundlak=mundlak)
    if has_amounts:
        profile = order_value_profile(tables, max_order_number=max_order_number)

    return RevenueDynamics(
        period=period, measure=measure, has_amounts=has_amounts, n_customers=n_customers,
        n_periods=int(n_periods), n_days=int(info["n_days"]), bridge=bridge, customers_bridge=customers_bridge,
        functions=strategic_functions(bridge), window=acquisition_window(bridge), cohort_counts=counts,
        retention=retention_rates(counts), cohort_values=values, value_per_customer=per_customer,
        retention_summary=retention_by_age(counts, values), returning=returning, recent_periods=recent,
        recent_share=recent_share, repeat_effect=effect, repeat_effect_reason=reason, order_profile=profile,
        identity_error=max(bridge_identity_error(bridge), bridge_identity_error(customers_bridge)),
        limits=_limits(tables, n_customers, period, reason, has_amounts),
    )
