"""Compact tables of the log for the revenue-dynamics report (producer of :mod:`helpers.aggregates`).

:func:`helpers.revenue.revenue_dynamics` needs, from the log, only what
these tables hold; they are computed by the configured engine (pandas,
DuckDB SQL, Spark DataFrame operations) into the shared stage, so the report
never holds the transaction log.  Every table is per period, per (cohort,
age), per order class or one row; the only exception is the bounded sample
of orders for the MixedLM variant of the repeat-order test (``repeat_orders``).

Orders are purchase days (a customer's rows on one day summed, as in
:func:`helpers.summary.purchase_days`); a customer is active in a period when
it has a purchase day in it.  Periods are pandas period ordinals of calendar
months (``grain = "M"``: ``(year - 1970) * 12 + month - 1``) and quarters
(``"Q"``: ``(year - 1970) * 4 + quarter - 1``); both grains are stored because
the stage cannot know the report's ``period`` parameter.

Tables (named ``aggregates_revenue.<table>`` in ``stage.aggregates``):

``periods``
    Per (grain, period ``p``) from the log's first to its last period: the
    growth-accounting parts of every customer-period, classified with the
    customer's previous active period (LAG over customer and period):
    ``n_active``, ``n_new`` (first period), ``n_retained`` (active in p-1),
    ``n_resurrected`` (active before, not in p-1), ``n_churned`` (active in
    p-1, not in p; counted in p) and, per measure ``m`` in ``purchases``
    (purchase days) and, with amounts, ``revenue``: the level ``m``,
    ``new_m``, ``expansion_m`` / ``contraction_m`` (sum of the positive /
    negative changes of retained customers), ``resurrected_m``,
    ``churned_m`` (minus the measure in p-1 of the churned).
``cohorts``
    Per (grain, ``cohort`` = first period, ``age`` = periods since it) with
    activity: active ``customers``, ``purchases`` and ``revenue``.
``info``
    One row: ``n_customers``, ``n_days`` (distinct purchase dates),
    ``first_day``, ``last_day``, ``p0_M``, ``p1_M``, ``p0_Q``, ``p1_Q``,
    ``has_amounts``.
``repeat`` (with amounts)
    One row of sufficient statistics of the first-versus-repeat order test
    (:func:`helpers.revenue.order_value_repeat_effect`): with d_i = mean log
    value of customer i's positive repeat orders - log value of its first
    order, over the customers with a positive first order and a positive
    repeat order: ``n_customers``, ``n_orders``, ``mean_d``, ``var_d``
    (sample variance); the exclusions ``n_nonpositive_orders``,
    ``n_customers_bad_first``, ``n_customers_no_repeat``; the pooled
    contrast's ``first_log_sum``, ``first_n``, ``repeat_log_sum``,
    ``repeat_n``.  The paired t-test and its interval follow exactly.
``repeat_orders`` (with amounts)
    The positive orders (``customer_id``, ``log_value``, ``repeat`` 0/1,
    sorted by customer and day) of the customers used by the test, for the
    MixedLM variant; when more than :data:`MIXEDLM_MAX_CUSTOMERS` customers
    qualify, a deterministic sample of that many: the customers with the
    smallest MD5 digest of their id (the same in every engine).
    ``attrs``: ``sampled``, ``cap``, ``n_customers_eligible``.
``profile`` (with amounts)
    Per (``order_number`` <= :data:`PROFILE_MAX_ORDER`, customer ``group`` by
    number of orders: 1, 2, 3-4, 5+): ``log_sum`` and ``n`` of the positive
    orders (:func:`helpers.revenue.order_value_profile`: geometric means).
"""

from __future__ import annotations

import hashlib
import inspect

import numpy as np
import pandas as pd

__all__ = ["GRAINS", "PROFILE_MAX_ORDER", "MIXEDLM_MAX_CUSTOMERS", "PROFILE_GROUPS", "compute",
           "compute_pandas", "compute_duckdb", "compute_spark"]

#: Period grains stored (calendar month, calendar quarter).
GRAINS = ("M", "Q")

#: Order numbers kept in ``profile`` (the report's ``max_order_number`` can be at most this).
PROFILE_MAX_ORDER = 12

#: Customers per pass of the DuckDB per-customer order table (its top-n aggregate states stay in memory).
PER_CUSTOMER_PASS = 2_000_000

#: Customers whose orders are kept for the MixedLM variant of the repeat-order test.
MIXEDLM_MAX_CUSTOMERS = 50_000

#: Customer groups of ``profile`` by number of orders (purchase days).
PROFILE_GROUPS = ("1 order", "2 orders", "3-4 orders", "5+ orders")

_COUNTS = ("n_active", "n_new", "n_retained", "n_resurrected", "n_churned")
_PARTS = ("", "new_", "expansion_", "contraction_", "resurrected_", "churned_")


def _measures(has_amounts: bool) -> tuple[str, ...]:
    return ("purchases", "revenue") if has_amounts else ("purchases",)


def _period_columns(has_amounts: bool) -> list[str]:
    return [*_COUNTS, *(f"{part}{m}" for m in _measures(has_amounts) for part in _PARTS)]


def _group_of(n_orders: np.ndarray) -> np.ndarray:
    return np.select([n_orders <= 1, n_orders == 2, n_orders <= 4], list(PROFILE_GROUPS[:3]), PROFILE_GROUPS[3])


def _digest(ids) -> np.ndarray:
    return np.array([hashlib.md5(str(c).encode("utf-8")).hexdigest() for c in ids], dtype=object)


# ---------------------------------------------------------------------------
# the shared finish: every engine's raw parts -> the same tables
# ---------------------------------------------------------------------------

def _finish(active: pd.DataFrame, churn: pd.DataFrame, cohorts: pd.DataFrame, info: dict, has_amounts: bool,
            repeat: dict | None = None, orders: pd.DataFrame | None = None, profile: pd.DataFrame | None = None,
            n_eligible: int = 0, cap: int | None = MIXEDLM_MAX_CUSTOMERS) -> dict[str, pd.DataFrame]:
    """The tables from an engine's raw aggregates (as plain pandas frames), with one set of dtypes and orders.

    ``active``: per (grain, p) the parts of the active customer-periods; ``churn``: per (grain, p) the
    churned parts (p = the period after the customer's last active one, may exceed the log's last period);
    ``cohorts``: per (grain, cohort, age); ``info``: n_customers, n_days, first_day, last_day.
    """
    measures = _measures(has_amounts)
    first_day, last_day = pd.Timestamp(info["first_day"]), pd.Timestamp(info["last_day"])
    bounds = {g: (int(pd.Period(first_day, g).ordinal), int(pd.Period(last_day, g).ordinal)) for g in GRAINS}
    frames = []
    for g in GRAINS:
        p0, p1 = bounds[g]
        idx = pd.Index(np.arange(p0, p1 + 1, dtype=np.int64), name="p")
        a = active.loc[active["grain"] == g].set_index("p").drop(columns="grain")
        c = churn.loc[(churn["grain"] == g) & (churn["p"] <= p1)].set_index("p").drop(columns="grain")
        t = pd.concat([a.reindex(idx), c.reindex(idx)], axis=1).fillna(0)
        t.insert(0, "grain", g)
        frames.append(t.reset_index())
    periods = pd.concat(frames, ignore_index=True)
    for col in _COUNTS:
        periods[col] = periods[col].astype(np.int64)
    for m in measures:
        for part in _PARTS:
            periods[f"{part}{m}"] = periods[f"{part}{m}"].astype(float)
    periods["p"] = periods["p"].astype(np.int64)
    periods = periods[["grain", "p", *_period_columns(has_amounts)]]

    coh = cohorts[["grain", "cohort", "age", "customers", *measures]].copy()
    for col in ("cohort", "age", "customers"):
        coh[col] = coh[col].astype(np.int64)
    for m in measures:
        coh[m] = coh[m].astype(float)
    coh["grain"] = coh["grain"].astype(str)
    coh = coh.sort_values(["grain", "cohort", "age"], ignore_index=True)

    one = {"n_customers": int(info["n_customers"]), "n_days": int(info["n_days"]), "first_day": first_day,
           "last_day": last_day, "has_amounts": bool(has_amounts)}
    for g in GRAINS:
        one[f"p0_{g}"], one[f"p1_{g}"] = bounds[g]
    out = {"periods": periods, "cohorts": coh, "info": pd.DataFrame([one])}
    if has_amounts and repeat is not None:
        def num(v):
            return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

        ints = ("n_customers", "n_orders", "n_nonpositive_orders", "n_customers_bad_first", "n_customers_no_repeat",
                "first_n", "repeat_n")
        floats = ("mean_d", "var_d", "first_log_sum", "repeat_log_sum")
        row = {k: int(num(repeat[k]) or 0) for k in ints}
        row.update({k: float(num(repeat[k])) if num(repeat[k]) is not None else float("nan") for k in floats})
        out["repeat"] = pd.DataFrame([row])[[*ints[:2], "mean_d", "var_d", *ints[2:5], "first_log_sum", "first_n",
                                              "repeat_log_sum", "repeat_n"]]
        o = pd.DataFrame({"customer_id": orders["customer_id"].astype(str).to_numpy(dtype=object),
                          "log_value": orders["log_value"].to_numpy(dtype=float),
                          "repeat": orders["repeat"].to_numpy(dtype=float),
                          "_rn": orders["rn"].to_numpy(dtype=np.int64)})
        o = o.sort_values(["customer_id", "_rn"], ignore_index=True).drop(columns="_rn")
        o.attrs.update(sampled=bool(cap is not None and n_eligible > cap), cap=int(cap) if cap is not None else -1,
                       n_customers_eligible=int(n_eligible))
        out["repeat_orders"] = o
        prof = profile[["order_number", "group", "log_sum", "n"]].copy()
        prof["order_number"] = prof["order_number"].astype(np.int64)
        prof["n"] = prof["n"].astype(np.int64)
        prof["log_sum"] = prof["log_sum"].astype(float)
        prof["group"] = prof["group"].astype(str)
        prof = prof.sort_values(["order_number", "group"], ignore_index=True)
        prof.attrs["max_order_number"] = PROFILE_MAX_ORDER
        out["profile"] = prof
    return out


# ---------------------------------------------------------------------------
# pandas
# ---------------------------------------------------------------------------

def _pd_period(days: pd.Series, grain: str) -> np.ndarray:
    return days.dt.to_period(grain).array.asi8.astype(np.int64)


def compute_pandas(transactions: pd.DataFrame, cap: int | None = MIXEDLM_MAX_CUSTOMERS,
                   max_order: int = PROFILE_MAX_ORDER, orders: bool = True) -> dict[str, pd.DataFrame]:
    """The tables from a validated pandas log (``customer_id``, ``date`` and optionally ``amount``).

    ``cap``: customers kept in ``repeat_orders`` (None: all); ``max_order``: order numbers kept in
    ``profile``; ``orders=False``: without the order tables (``repeat``, ``repeat_orders``, ``profile``).
    """
    from .summary import purchase_days  # noqa: PLC0415

    has_amounts = "amount" in transactions.columns
    daily = purchase_days(transactions[["customer_id", "date", *(["amount"] if has_amounts else [])]])
    cid = daily["customer_id"].to_numpy()
    measures = _measures(has_amounts)
    actives, churns, cohorts = [], [], []
    for g in GRAINS:
        cp = pd.DataFrame({"customer_id": cid, "p": _pd_period(daily["day"], g), "purchases": 1.0})
        if has_amounts:
            cp["revenue"] = daily["amount"].to_numpy(dtype=float)
        cp = cp.groupby(["customer_id", "p"], sort=True).sum().reset_index()   # sorted by customer, period
        same = cp["customer_id"].to_numpy()
        first_row = np.r_[True, same[1:] != same[:-1]]
        last_row = np.r_[same[1:] != same[:-1], True]
        p = cp["p"].to_numpy()
        prev_p = np.where(first_row, -(2 ** 62), np.r_[0, p[:-1]])
        next_p = np.where(last_row, 2 ** 62, np.r_[p[1:], 0])
        new, retained = first_row, ~first_row & (prev_p == p - 1)
        resurrected = ~first_row & ~retained
        churned = next_p != p + 1
        a = pd.DataFrame({"p": p, "n_active": 1, "n_new": new.astype(np.int64),
                          "n_retained": retained.astype(np.int64), "n_resurrected": resurrected.astype(np.int64)})
        c = pd.DataFrame({"p": p + 1, "n_churned": churned.astype(np.int64)})
        for m in measures:
            v = cp[m].to_numpy(dtype=float)
            prev_v = np.r_[0.0, v[:-1]]
            diff = np.where(retained, v - prev_v, 0.0)
            a[m] = v
            a[f"new_{m}"] = np.where(new, v, 0.0)
            a[f"expansion_{m}"] = np.where(retained, np.maximum(diff, 0.0), 0.0)
            a[f"contraction_{m}"] = np.where(retained, np.minimum(diff, 0.0), 0.0)
            a[f"resurrected_{m}"] = np.where(resurrected, v, 0.0)
            c[f"churned_{m}"] = np.where(churned, -v, 0.0)
        actives.append(a.groupby("p", sort=True).sum().reset_index().assign(grain=g))
        churns.append(c.loc[churned].groupby("p", sort=True).sum().reset_index().assign(grain=g))
        first_p = pd.Series(p).groupby(same, sort=False).transform("min").to_numpy()
        k = pd.DataFrame({"cohort": first_p, "age": p - first_p, "customers": 1,
                          **{m: cp[m].to_numpy(dtype=float) for m in measures}})
        cohorts.append(k.groupby(["cohort", "age"], sort=True).sum().reset_index().assign(grain=g))
    info = {"n_customers": int(pd.unique(cid).size), "n_days": int(daily["day"].nunique()),
            "first_day": daily["day"].min(), "last_day": daily["day"].max()}
    kw = {}
    if has_amounts and orders:
        kw = _pd_orders(daily, cap, max_order)
    return _finish(pd.concat(actives, ignore_index=True), pd.concat(churns, ignore_index=True),
                   pd.concat(cohorts, ignore_index=True), info, has_amounts, cap=cap, **kw)


def _pd_orders(daily: pd.DataFrame, cap: int | None, max_order: int) -> dict:
    """Repeat statistics, the MixedLM orders and the profile parts from the purchase days (with amounts)."""
    cid = daily["customer_id"].to_numpy()
    rn = daily.groupby("customer_id", sort=False).cumcount().to_numpy() + 1
    n_orders = pd.Series(rn).groupby(cid, sort=False).transform("max").to_numpy()
    a = daily["amount"].to_numpy(dtype=float)
    pos = a > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lv = np.where(pos, np.log(np.where(pos, a, 1.0)), np.nan)
    first = rn == 1
    g = pd.DataFrame({"a_first": np.where(first, a, np.nan), "k": (~first & pos).astype(np.int64),
                      "s": np.where(~first & pos, lv, 0.0), "nonpos": (~pos).astype(np.int64)}).groupby(
        cid, sort=True).agg(a_first=("a_first", "max"), k=("k", "sum"), s=("s", "sum"), nonpos=("nonpos", "sum"))
    good = g["a_first"].to_numpy() > 0
    k = g["k"].to_numpy()
    use = good & (k > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_first = np.log(np.where(good, g["a_first"].to_numpy(), 1.0))
        d = g["s"].to_numpy()[use] / k[use] - log_first[use]
    repeat = {
        "n_customers": int(use.sum()), "n_orders": int((k[use] + 1).sum()),
        "mean_d": float(d.mean()) if d.size else None, "var_d": float(d.var(ddof=1)) if d.size > 1 else None,
        "n_nonpositive_orders": int(g["nonpos"].sum()), "n_customers_bad_first": int((~good).sum()),
        "n_customers_no_repeat": int((good & (k == 0)).sum()),
        "first_log_sum": float(log_first[good].sum()), "first_n": int(good.sum()),
        "repeat_log_sum": float(g["s"].to_numpy()[good].sum()), "repeat_n": int(k[good].sum()),
    }
    eligible = g.index.to_numpy()[use]
    chosen = eligible
    if cap is not None and eligible.size > cap:
        order = pd.DataFrame({"h": _digest(eligible), "c": eligible}).sort_values(["h", "c"]).head(cap)
        chosen = order["c"].to_numpy()
    keep = pd.Index(chosen).get_indexer(cid) >= 0
    keep &= pos
    orders = pd.DataFrame({"customer_id": cid[keep], "log_value": lv[keep], "repeat": (~first[keep]).astype(float),
                           "rn": rn[keep]})
    pk = pos & (rn <= max_order)
    profile = (pd.DataFrame({"order_number": rn[pk], "group": _group_of(n_orders[pk]), "log_sum": lv[pk], "n": 1})
               .groupby(["order_number", "group"], sort=True).sum().reset_index())
    return {"repeat": repeat, "orders": orders, "profile": profile, "n_eligible": int(eligible.size)}


# ---------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------

def _sql_period(col: str, grain: str) -> str:
    if grain == "M":
        return f"((year({col}) - 1970) * 12 + month({col}) - 1)::BIGINT"
    return f"((year({col}) - 1970) * 4 + (month({col}) - 1) // 3)::BIGINT"


def compute_duckdb(source, *, customer_id: str = "customer_id", date: str = "date", amount: str | None = "amount",
                   date_format: str | None = None, observation_end=None, negative_amounts: str = "error",
                   duplicates: str = "keep", after_observation_end: str = "exclude", con=None, threads: int | None = None,
                   memory_limit: str | None = None, encoding: str | None = None, max_abs_amount=None, min_date=None,
                   max_date=None, implausible_dates: str = "error", cap: int | None = MIXEDLM_MAX_CUSTOMERS,
                   max_order: int = PROFILE_MAX_ORDER, shared=None) -> dict[str, pd.DataFrame]:
    """The tables computed in DuckDB (out of core) from a log the stage has validated.

    The clean rows are :func:`helpers.summary_duckdb._rows_sql` (the summaries' validation policies: duplicates,
    returns, rows after ``observation_end``, implausible dates, id trimming), grouped by customer and day in
    :class:`helpers.aggregates_log.CustomerDays`: ``shared`` when the stage has built it for every DuckDB
    producer, otherwise built here (on ``con`` if given) and closed.  Only the compact tables come back.
    """
    from .aggregates_log import CustomerDays  # noqa: PLC0415
    from .data import check_policies  # noqa: PLC0415

    check_policies(negative_amounts, duplicates)
    own = shared is None
    if own:
        shared = CustomerDays(source, customer_id=customer_id, date=date, amount=amount, date_format=date_format,
                              observation_end=observation_end, negative_amounts=negative_amounts,
                              duplicates=duplicates, con=con, threads=threads, memory_limit=memory_limit,
                              encoding=encoding, max_abs_amount=max_abs_amount, min_date=min_date,
                              max_date=max_date, implausible_dates=implausible_dates, progress=False)
    tag = f"clvrev_{id(shared):x}"
    try:
        return _duckdb_tables(shared, tag, cap, max_order)
    finally:
        for t in ("per", "cp_M", "cp_Q"):
            try:
                shared.con.execute(f"DROP TABLE IF EXISTS {tag}_{t}")
            except Exception:  # noqa: BLE001  # pragma: no cover - best effort
                pass
        if own:
            shared.close()


def _duckdb_tables(shared, tag, cap, max_order) -> dict[str, pd.DataFrame]:
    q, ex = shared.frame, shared.execute
    has_amounts = shared.has_amount
    measures = _measures(has_amounts)
    days = shared.table

    def windowed(name, inner):
        """(customer, period) rows with the customer's first, previous and next period (LAG/LEAD)."""
        ex(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT *, first_value(p) OVER w AS first_p, "
           f"lag(p) OVER w AS prev_p, lead(p) OVER w AS next_p, "
           + ", ".join(f"lag({m}) OVER w AS prev_{m}" for m in measures)
           + f" FROM ({inner}) WINDOW w AS (PARTITION BY cid ORDER BY p)")

    rev = ", sum(a) AS revenue" if has_amounts else ""
    month = f"SELECT cid, {_sql_period('d', 'M')} AS p, count(*)::DOUBLE AS purchases{rev} FROM {days} GROUP BY cid, p"
    windowed(f"{tag}_cp_M", month)
    # quarters from months: quarter ordinal = floor(month ordinal / 3)
    rev_q = ", sum(revenue) AS revenue" if has_amounts else ""
    windowed(f"{tag}_cp_Q", f"SELECT cid, CAST(floor(p / 3) AS BIGINT) AS p, sum(purchases) AS purchases{rev_q} "
                            f"FROM {tag}_cp_M GROUP BY cid, CAST(floor(p / 3) AS BIGINT)")
    actives, churns, cohorts = [], [], []
    for g in GRAINS:
        cp = f"{tag}_cp_{g}"
        new, ret, res = "prev_p IS NULL", "prev_p = p - 1", "prev_p < p - 1"
        parts = [f"count(*) FILTER ({new}) AS n_new", f"count(*) FILTER ({ret}) AS n_retained",
                 f"count(*) FILTER ({res}) AS n_resurrected"]
        for m in measures:
            parts += [f"sum({m}) AS {m}", f"coalesce(sum({m}) FILTER ({new}), 0) AS new_{m}",
                      f"coalesce(sum(greatest({m} - prev_{m}, 0)) FILTER ({ret}), 0) AS expansion_{m}",
                      f"coalesce(sum(least({m} - prev_{m}, 0)) FILTER ({ret}), 0) AS contraction_{m}",
                      f"coalesce(sum({m}) FILTER ({res}), 0) AS resurrected_{m}"]
        actives.append(q(f"SELECT p, count(*) AS n_active, {', '.join(parts)} FROM {cp} GROUP BY p").assign(grain=g))
        churned = ", ".join(f"-sum({m}) AS churned_{m}" for m in measures)
        churns.append(q(f"SELECT p + 1 AS p, count(*) AS n_churned, {churned} FROM {cp} "
                        f"WHERE next_p IS NULL OR next_p > p + 1 GROUP BY p + 1").assign(grain=g))
        cohorts.append(q(f"SELECT first_p AS cohort, p - first_p AS age, count(*) AS customers, "
                         f"{', '.join(f'sum({m}) AS {m}' for m in measures)} FROM {cp} GROUP BY first_p, p - first_p")
                       .assign(grain=g))
    for g in GRAINS:
        ex(f"DROP TABLE {tag}_cp_{g}")
    info = q(f"SELECT count(DISTINCT d) AS n_days, min(d) AS first_day, max(d) AS last_day FROM {days}"
             ).iloc[0].to_dict()
    info["n_customers"] = int(actives[0]["n_new"].sum())      # every customer is new in exactly one month
    kw = {}
    if has_amounts:
        per = f"{tag}_per"
        # one pass per customer (no window over the purchase days): the first max_order orders in day
        # order (a top-n aggregate), the first day, the counts and the sum of log values of positive orders
        # in passes of at most PER_CUSTOMER_PASS customers (by a hash of the id): the top-n states of
        # min_by do not spill, and at 1e7 customers one pass ran out of DuckDB's 4 GB
        passes = max(1, -(-int(info["n_customers"]) // PER_CUSTOMER_PASS))
        for i in range(passes):
            where = f" WHERE hash(cid) % {passes} = {i}" if passes > 1 else ""
            ex(f"{'CREATE TEMP TABLE' if i == 0 else 'INSERT INTO'} {per} {'AS ' if i == 0 else ''}SELECT cid, "
               f"min(d) AS f, count(*) AS n_orders, min_by(a, d, {int(max_order)}) AS firsts, "
               f"count(*) FILTER (a <= 0) AS nonpos, count(*) FILTER (a > 0) AS k_all, "
               f"sum(ln(CASE WHEN a > 0 THEN a END)) AS s_all FROM {days}{where} GROUP BY cid")
        a1 = "firsts[1]"
        good = f"{a1} > 0"
        lf = f"ln(CASE WHEN {a1} > 0 THEN {a1} END)"
        k = f"(k_all - CASE WHEN {good} THEN 1 ELSE 0 END)"
        s_rep = f"(coalesce(s_all, 0) - coalesce({lf}, 0))"     # log values of the positive repeat orders
        ok = f"{good} AND {k} > 0"
        d_i = f"({s_rep} / CASE WHEN {k} > 0 THEN {k} END - {lf})"
        repeat = q(f"SELECT count(*) FILTER ({ok}) AS n_customers, sum({k} + 1) FILTER ({ok}) AS n_orders, "
                   f"avg({d_i}) FILTER ({ok}) AS mean_d, var_samp({d_i}) FILTER ({ok}) AS var_d, "
                   f"sum(nonpos) AS n_nonpositive_orders, count(*) FILTER (NOT ({good})) AS n_customers_bad_first, "
                   f"count(*) FILTER ({good} AND {k} = 0) AS n_customers_no_repeat, "
                   f"sum({lf}) FILTER ({good}) AS first_log_sum, count(*) FILTER ({good}) AS first_n, "
                   f"coalesce(sum({s_rep}) FILTER ({good}), 0) AS repeat_log_sum, "
                   f"coalesce(sum({k}) FILTER ({good}), 0) AS repeat_n FROM {per}").iloc[0].to_dict()
        n_eligible = int(repeat["n_customers"] or 0)
        limit = f"ORDER BY md5(cid), cid LIMIT {int(cap)}" if cap is not None and n_eligible > cap else ""
        sample = q(f"SELECT o.cid AS customer_id, ln(o.a) AS log_value, (o.d > c.f)::DOUBLE AS repeat, "
                   f"(o.d - DATE '1970-01-01')::BIGINT AS rn FROM {days} AS o "
                   f"JOIN (SELECT cid, f FROM {per} WHERE {ok} {limit}) AS c USING (cid) WHERE o.a > 0")
        profile = q(f"SELECT i AS order_number, CASE WHEN n_orders <= 1 THEN '1 order' WHEN n_orders = 2 THEN "
                    f"'2 orders' WHEN n_orders <= 4 THEN '3-4 orders' ELSE '5+ orders' END AS \"group\", "
                    f"sum(ln(x)) AS log_sum, count(*) AS n FROM (SELECT n_orders, unnest(firsts) AS x, "
                    f"generate_subscripts(firsts, 1) AS i FROM {per}) WHERE x > 0 GROUP BY ALL")
        kw = {"repeat": repeat, "orders": sample, "profile": profile, "n_eligible": n_eligible}
    return _finish(pd.concat(actives, ignore_index=True), pd.concat(churns, ignore_index=True),
                   pd.concat(cohorts, ignore_index=True), info, has_amounts, cap=cap, **kw)


# ---------------------------------------------------------------------------
# Spark
# ---------------------------------------------------------------------------

def compute_spark(source, *, customer_id: str = "customer_id", date: str = "date", amount: str | None = "amount",
                  date_format: str | None = None, observation_end=None, negative_amounts: str = "error",
                  duplicates: str = "keep", after_observation_end: str = "exclude", spark=None,
                  file_format: str | None = None, encoding: str | None = None, max_abs_amount=None, min_date=None,
                  max_date=None, implausible_dates: str = "error", cap: int | None = MIXEDLM_MAX_CUSTOMERS,
                  max_order: int = PROFILE_MAX_ORDER) -> dict[str, pd.DataFrame]:
    """The tables computed by Spark (Window functions over customer and period) from a validated log.

    The clean rows are :func:`helpers.summary_spark._prepare` (the summaries' validation policies);
    only the compact tables are collected.
    """
    from pyspark.sql import Window  # noqa: PLC0415

    from . import summary_spark as ss  # noqa: PLC0415
    from .data import DEFAULT_ENCODING, DEFAULT_MAX_ABS_AMOUNT, DEFAULT_MIN_DATE, limits  # noqa: PLC0415

    _, F, _ = ss._pyspark()
    lim = limits(encoding or DEFAULT_ENCODING, DEFAULT_MAX_ABS_AMOUNT if max_abs_amount is None else max_abs_amount,
                 DEFAULT_MIN_DATE if min_date is None else min_date, max_date, implausible_dates)
    if duplicates == "error":
        duplicates = "keep"
    spark = spark or ss.get_spark()
    has_amounts = amount is not None
    measures = _measures(has_amounts)
    with ss._nanos_as_long(spark, source):
        prep = ss._prepare(source, spark, customer_id=customer_id, date=date, amount=amount, date_format=date_format,
                           observation_end=observation_end, negative_amounts=negative_amounts, duplicates=duplicates,
                           after_observation_end="exclude", file_format=file_format, lim=lim)
        days = ss._daily(prep).withColumnRenamed(ss._CID, "cid").withColumnRenamed(ss._DAY, "day")
        if has_amounts:
            days = days.withColumnRenamed(ss._AMT, "a")
        days = days.withColumn("dt", F.date_add(F.lit("1970-01-01").cast("date"), F.col("day"))).cache()
        try:
            actives, churns, cohorts = [], [], []
            for g in GRAINS:
                y, mth = F.year("dt") - 1970, F.month("dt") - 1
                p_expr = (y * 12 + mth) if g == "M" else (y * 4 + F.floor(mth / 3))
                aggs = [F.count(F.lit(1)).cast("double").alias("purchases")]
                if has_amounts:
                    aggs.append(F.sum("a").alias("revenue"))
                cp = days.groupBy("cid", p_expr.cast("long").alias("p")).agg(*aggs)
                w = Window.partitionBy("cid").orderBy("p")
                cp = cp.select("*", F.min("p").over(Window.partitionBy("cid")).alias("first_p"),
                               F.lag("p").over(w).alias("prev_p"), F.lead("p").over(w).alias("next_p"),
                               *(F.lag(m).over(w).alias(f"prev_{m}") for m in measures)).cache()
                p, prev_p = F.col("p"), F.col("prev_p")
                new, ret, res = prev_p.isNull(), prev_p == p - 1, prev_p < p - 1

                def count_if(cond):
                    return F.sum(F.when(cond, 1).otherwise(0))

                def sum_if(cond, value):
                    return F.sum(F.when(cond, value).otherwise(F.lit(0.0)))

                parts = [F.count(F.lit(1)).alias("n_active"), count_if(new).alias("n_new"),
                         count_if(ret).alias("n_retained"), count_if(res).alias("n_resurrected")]
                for m in measures:
                    v, diff = F.col(m), F.col(m) - F.col(f"prev_{m}")
                    parts += [F.sum(v).alias(m), sum_if(new, v).alias(f"new_{m}"),
                              sum_if(ret, F.greatest(diff, F.lit(0.0))).alias(f"expansion_{m}"),
                              sum_if(ret, F.least(diff, F.lit(0.0))).alias(f"contraction_{m}"),
                              sum_if(res, v).alias(f"resurrected_{m}")]
                actives.append(cp.groupBy("p").agg(*parts).toPandas().assign(grain=g))
                gone = F.col("next_p").isNull() | (F.col("next_p") > p + 1)
                churns.append(cp.filter(gone).groupBy((p + 1).alias("p")).agg(
                    F.count(F.lit(1)).alias("n_churned"), *((-F.sum(m)).alias(f"churned_{m}") for m in measures))
                    .toPandas().assign(grain=g))
                cohorts.append(cp.groupBy(F.col("first_p").alias("cohort"), (p - F.col("first_p")).alias("age")).agg(
                    F.count(F.lit(1)).alias("customers"), *(F.sum(m).alias(m) for m in measures))
                    .toPandas().assign(grain=g))
                cp.unpersist()
            r = days.agg(F.countDistinct("cid").alias("n_customers"), F.countDistinct("day").alias("n_days"),
                         F.min("day").alias("f"), F.max("day").alias("l")).collect()[0]
            epoch = pd.Timestamp("1970-01-01")
            info = {"n_customers": r["n_customers"], "n_days": r["n_days"],
                    "first_day": epoch + pd.Timedelta(days=int(r["f"])),
                    "last_day": epoch + pd.Timedelta(days=int(r["l"]))}
            kw = {}
            if has_amounts:
                kw = _spark_orders(F, Window, days, cap, max_order)
        finally:
            days.unpersist()
    return _finish(pd.concat(actives, ignore_index=True), pd.concat(churns, ignore_index=True),
                   pd.concat(cohorts, ignore_index=True), info, has_amounts, cap=cap, **kw)


def _spark_orders(F, Window, days, cap, max_order) -> dict:
    a = F.col("a")
    orders = days.select("cid", "day", "a", F.row_number().over(Window.partitionBy("cid").orderBy("day")).alias("rn"),
                         F.count(F.lit(1)).over(Window.partitionBy("cid")).alias("n_orders")).cache()
    try:
        rn = F.col("rn")
        rep_pos = (rn > 1) & (a > 0)
        per = orders.groupBy("cid").agg(
            F.max(F.when(rn == 1, a)).alias("a_first"), F.sum(F.when(rep_pos, 1).otherwise(0)).alias("k"),
            F.sum(F.when(rep_pos, F.log(a))).alias("s"), F.sum(F.when(a <= 0, 1).otherwise(0)).alias("nonpos"))
        good = F.col("a_first") > 0
        ok = good & (F.col("k") > 0)
        lf = F.log(F.when(good, F.col("a_first")))
        d_i = F.when(ok, F.col("s") / F.col("k") - lf)
        r = per.agg(
            F.sum(F.when(ok, 1).otherwise(0)).alias("n_customers"), F.sum(F.when(ok, F.col("k") + 1)).alias("n_orders"),
            F.avg(d_i).alias("mean_d"), F.var_samp(d_i).alias("var_d"), F.sum("nonpos").alias("n_nonpositive_orders"),
            F.sum(F.when(~good, 1).otherwise(0)).alias("n_customers_bad_first"),
            F.sum(F.when(good & (F.col("k") == 0), 1).otherwise(0)).alias("n_customers_no_repeat"),
            F.sum(F.when(good, lf)).alias("first_log_sum"), F.sum(F.when(good, 1).otherwise(0)).alias("first_n"),
            F.coalesce(F.sum(F.when(good, F.col("s"))), F.lit(0.0)).alias("repeat_log_sum"),
            F.coalesce(F.sum(F.when(good, F.col("k"))), F.lit(0)).alias("repeat_n")).collect()[0].asDict()
        n_eligible = int(r["n_customers"] or 0)
        chosen = per.filter(ok).select("cid")
        if cap is not None and n_eligible > cap:
            chosen = chosen.orderBy(F.md5(F.col("cid")), F.col("cid")).limit(int(cap))
        sample = (orders.filter(a > 0).join(chosen, "cid")
                  .select(F.col("cid").alias("customer_id"), F.log(a).alias("log_value"),
                          (rn > 1).cast("double").alias("repeat"), "rn").toPandas())
        n = F.col("n_orders")
        group = (F.when(n <= 1, PROFILE_GROUPS[0]).when(n == 2, PROFILE_GROUPS[1]).when(n <= 4, PROFILE_GROUPS[2])
                 .otherwise(PROFILE_GROUPS[3]))
        profile = (orders.filter((a > 0) & (rn <= int(max_order)))
                   .groupBy(rn.alias("order_number"), group.alias("group"))
                   .agg(F.sum(F.log(a)).alias("log_sum"), F.count(F.lit(1)).alias("n")).toPandas())
    finally:
        orders.unpersist()
    return {"repeat": r, "orders": sample, "profile": profile, "n_eligible": n_eligible}


# ---------------------------------------------------------------------------
# the producer
# ---------------------------------------------------------------------------

def _options(cfg, fn) -> dict:
    from .config import load_options  # noqa: PLC0415

    opts = load_options(cfg, fn)
    accepted = inspect.signature(fn).parameters
    return {k: v for k, v in opts.items() if k in accepted}


def compute(ctx) -> dict[str, pd.DataFrame]:
    """The tables of this module with the stage's engine (see the module docstring)."""
    if ctx.engine == "pandas":
        return compute_pandas(ctx.transactions)
    if ctx.engine == "duckdb":
        return compute_duckdb(ctx.cfg.data["path"], **_options(ctx.cfg, compute_duckdb),
                              shared=getattr(ctx, "duckdb_days", None))
    if ctx.engine == "spark":
        return compute_spark(ctx.cfg.data["path"], **_options(ctx.cfg, compute_spark))
    raise ValueError(f"engine must be 'pandas', 'duckdb' or 'spark', got {ctx.engine!r}")
