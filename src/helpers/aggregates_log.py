"""Compact views of the transaction log for notebooks 01, 02 and 04, by the configured engine.

A producer of :mod:`helpers.aggregates`: :func:`compute` returns these tables
(in ``stage.aggregates`` as ``"aggregates_log.<name>"``), computed by pandas,
DuckDB SQL or Spark DataFrame operations with the same validation policies as
the summaries (the rows are those the summaries count: duplicates, returns,
rows after the observation end, implausible dates and id trimming as
configured).  Purchases are counted per *day*, as everywhere in
:mod:`helpers.summary`.

``days``
    One row per calendar day on which some customer bought (days without a
    purchase have no row; the roll-ups fill them with zeros), indexed by
    ``day``: ``rows`` (transactions), ``new_customers`` (first purchase days),
    ``repeat_days`` (customers buying on a later day than their first),
    ``repeat_days_cal`` (the same, by calibration customers: first purchase on
    or before the calibration end) and, with amounts, ``first_day_spend`` and
    ``repeat_spend``.  Rolled up by :func:`helpers.summary.repeats_by_period`
    (tracking) and :func:`helpers.summary.cohorts_from_days` (cohorts);
    :func:`repeat_split` gives the repeat purchase days after the calibration
    end by calibration customers and by later arrivals.
``gaps``
    Days between consecutive purchase days of a customer, as a value count
    (``count`` per gap in ``days``): :func:`helpers.summary.gap_statistics`
    gives its mean, quartiles, median and maximum.
``holdout_last``
    Per calibration customer who bought in the holdout (after the calibration
    end, up to the observation end): ``last_day``, the last holdout purchase
    day (:func:`helpers.segments.holdout_active_months`).
``returns``
    Per customer with a returned order (rows set aside by
    ``negative_amounts: returns``; several on one day are one returned order):
    ``calibration`` (on or before the calibration end), ``holdout`` (after it,
    up to the observation end) and ``full`` (up to the observation end)
    (:func:`helpers.segments.return_counts`).  Empty without returns.
``opportunities``
    Discrete-time logs (``data.opportunity_period``, pandas engine only: the
    discrete-time models, and so the discrete branch of
    :func:`helpers.clv_models.tracking`, run only there): per opportunity
    period (``period``, its ordinal), ``transactions`` of calibration
    customers after their first period (at most one per customer and period).
    Empty otherwise.

``examples``
    The purchase days (``customer_id``, ``day``) of the candidates for
    notebook 02's example customers: the union of :func:`example_ids` of the
    chosen model's full-period summary for 1 to :data:`MAX_EXAMPLES`
    customers (at most 36 customers), fetched by id in the stage so that no
    kernel scans the log or starts an engine for them.  Its ``ids`` attribute
    lists the customers fetched; :func:`customer_days` reads it and fetches
    any other customer through the engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import DEFAULT_ENCODING, DEFAULT_MAX_ABS_AMOUNT, DEFAULT_MIN_DATE, limits
from .summary import day_table, gap_table, purchase_days

__all__ = ["compute", "CustomerDays", "tables_pandas", "tables_duckdb", "tables_spark", "customer_days", "repeat_split",
           "holdout_last_days", "return_windows", "opportunity_counts", "example_ids", "example_pool",
           "MAX_EXAMPLES"]

#: The largest number of example customers whose purchase days the stage fetches in advance.
MAX_EXAMPLES = 8

_EPOCH = pd.Timestamp("1970-01-01")
_RETURN_WINDOWS = ("calibration", "holdout", "full")


# ---------------------------------------------------------------------------
# the producer
# ---------------------------------------------------------------------------

def compute(ctx) -> dict[str, pd.DataFrame]:
    """The tables of this module for the stage (see the module docstring)."""
    from .config import ensure_data, load_options  # noqa: PLC0415

    cfg = ctx.cfg
    cal_end, obs_end = pd.Timestamp(ctx.calibration_end), pd.Timestamp(ctx.observation_end)
    shared = getattr(ctx, "duckdb_days", None)       # the stage's customer-day table (DuckDB), if built
    if ctx.engine == "pandas":
        out = tables_pandas(ctx.transactions, ctx.returns, cal_end, obs_end)
        period = cfg.data.get("opportunity_period")
        out["opportunities"] = (opportunity_counts(ctx.transactions, period, cal_end) if period
                                else _empty_opportunities())
    else:
        ensure_data(cfg)
        fn = tables_duckdb if ctx.engine == "duckdb" else tables_spark
        opts = load_options(cfg, fn)
        opts["observation_end"] = obs_end
        if shared is not None:
            opts["shared"] = shared
        out = fn(cfg.data["path"], cal_end, **opts)
        out["opportunities"] = _empty_opportunities()
    ids = [str(i) for i in getattr(ctx, "example_ids", ())]
    if ctx.engine == "pandas":
        out["examples"] = _days_of_frame(ctx.transactions, ids)
    elif shared is not None and ids:
        out["examples"] = _sorted_days(shared.days_of(ids))
    else:
        out["examples"] = customer_days(cfg, ids) if ids else _days_of_frame(None, [])
    out["examples"].attrs["ids"] = ids
    for frame in out.values():
        # as text: pandas writes attrs into the Parquet file's metadata as JSON
        frame.attrs.update(calibration_end=cal_end.date().isoformat(), observation_end=obs_end.date().isoformat(),
                           engine=ctx.engine)
    return out


def _empty_opportunities() -> pd.DataFrame:
    return pd.DataFrame({"transactions": pd.Series([], dtype=np.int64)},
                        index=pd.Index([], dtype=np.int64, name="period"))


# ---------------------------------------------------------------------------
# pandas
# ---------------------------------------------------------------------------

def _customer_days(transactions: pd.DataFrame) -> pd.DataFrame:
    """:func:`helpers.summary.purchase_days` plus ``rows`` (transactions on the customer's day)."""
    daily = purchase_days(transactions)
    rows = transactions.groupby(["customer_id", transactions["date"].dt.normalize().rename("day")],
                                sort=True).size()
    daily["rows"] = rows.to_numpy(np.int64)       # same (customer, day) order as purchase_days
    return daily


def tables_pandas(transactions: pd.DataFrame, returns: pd.DataFrame | None, calibration_end,
                  observation_end) -> dict[str, pd.DataFrame]:
    """``days``, ``gaps``, ``holdout_last`` and ``returns`` from the validated log in memory."""
    cal_end = pd.Timestamp(calibration_end).normalize()
    daily = _customer_days(transactions)
    days = day_table(daily, cal_end)
    return {"days": days, "gaps": gap_table(daily),
            "holdout_last": holdout_last_days(transactions, cal_end, observation_end),
            "returns": return_windows(returns, cal_end, observation_end)}


def holdout_last_days(transactions: pd.DataFrame, calibration_end, observation_end) -> pd.DataFrame:
    """The last holdout purchase day (``last_day``) of every calibration customer who bought in the holdout
    (after ``calibration_end``, up to ``observation_end``), indexed by ``customer_id`` (sorted)."""
    start = pd.Timestamp(calibration_end).normalize()
    end = pd.Timestamp(observation_end).normalize()
    d = transactions["date"].dt.normalize()
    first = d.groupby(transactions["customer_id"].to_numpy()).transform("min")
    h = (d > start) & (d <= end) & (first <= start).to_numpy()
    last = d[h].groupby(transactions["customer_id"].to_numpy()[h.to_numpy()]).max().sort_index()
    return pd.DataFrame({"last_day": last.to_numpy().astype("datetime64[ns]")},
                        index=pd.Index(last.index.astype(object), name="customer_id"))


def return_windows(returns: pd.DataFrame | None, calibration_end, observation_end) -> pd.DataFrame:
    """Returned orders per customer (return days: several return rows on one day are one order) in the
    windows ``calibration`` (up to ``calibration_end``), ``holdout`` (after it, up to ``observation_end``)
    and ``full`` (up to ``observation_end``); customers without a return have no row."""
    cols = {w: pd.Series([], dtype=np.int64) for w in _RETURN_WINDOWS}
    if returns is None or len(returns) == 0:
        return pd.DataFrame(cols, index=pd.Index([], dtype=object, name="customer_id"))
    cal = pd.Timestamp(calibration_end).normalize()
    end = pd.Timestamp(observation_end).normalize()
    r = pd.DataFrame({"customer_id": returns["customer_id"].to_numpy(),
                      "day": returns["date"].dt.normalize().to_numpy()}).drop_duplicates()
    r = r[r["day"] <= end]
    g = pd.DataFrame({"calibration": (r["day"] <= cal).to_numpy(np.int64),
                      "holdout": (r["day"] > cal).to_numpy(np.int64),
                      "full": np.ones(len(r), dtype=np.int64)}).groupby(r["customer_id"].to_numpy()).sum()
    g.index = pd.Index(g.index.astype(object), name="customer_id")
    return g.sort_index()


def opportunity_counts(transactions: pd.DataFrame, period: str, calibration_end) -> pd.DataFrame:
    """Transactions per opportunity period (ordinal ``period``) by calibration customers after their first
    period, at most one per customer and period (the actual series of the discrete-time tracking plot)."""
    first_day = transactions.groupby("customer_id")["date"].transform("min").dt.normalize()
    cohort = transactions[(first_day <= pd.Timestamp(calibration_end).normalize()).to_numpy()]
    opp = pd.DataFrame({"customer_id": cohort["customer_id"].to_numpy(),
                        "p": cohort["date"].dt.to_period(period).array.asi8}).drop_duplicates()
    first = opp.groupby("customer_id")["p"].transform("min")
    counts = opp.loc[opp["p"] > first, "p"].value_counts().sort_index()
    return pd.DataFrame({"transactions": counts.to_numpy(np.int64)},
                        index=pd.Index(counts.index.to_numpy(np.int64), name="period"))


# ---------------------------------------------------------------------------
# roll-ups (pure pandas, any engine)
# ---------------------------------------------------------------------------

def repeat_split(days: pd.DataFrame, calibration_end) -> dict[str, int]:
    """Repeat purchase days up to the calibration end and after it, by calibration customers (the holdout)
    and by customers who first bought later, from the ``days`` table."""
    cal = pd.Timestamp(calibration_end).normalize()
    after = pd.DatetimeIndex(days.index) > cal
    rep, rep_cal = days["repeat_days"].to_numpy(np.int64), days["repeat_days_cal"].to_numpy(np.int64)
    return {"calibration": int(rep[~after].sum()), "holdout": int(rep_cal[after].sum()),
            "later_arrivals": int((rep[after] - rep_cal[after]).sum()), "after": int(rep[after].sum())}


# ---------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------

class CustomerDays:
    """The clean log's customer-day table in one DuckDB connection, shared by the stage's DuckDB producers.

    One scan of the log, grouped by customer and day (DuckDB spills beyond its memory limit), gives
    ``cid``, ``d`` (DATE), ``nr`` (rows on the day) and, with amounts, ``a`` (the day's spend) for the
    rows of :func:`helpers.summary_duckdb._rows_sql` (the summaries' policies; the log is assumed
    validated, so ``duplicates="error"`` counts as ``"keep"``).  Ids are grouped as stored and the
    table is regrouped on stripped ids only when an id has surrounding whitespace.  The DuckDB stage
    builds it once (in the runner, the pre-flight builds it for its customer counts,
    :meth:`customer_counts`, and hands it to the stage) and reads everything from it: the
    calibration and full-period summaries
    (:meth:`summaries`), both DuckDB producers (:func:`tables_duckdb`,
    :func:`helpers.aggregates_revenue.compute_duckdb`) and the example customers' days.  At 1.2e8
    rows each of them had scanned and grouped the log itself (25-50 s each).  Use as a context
    manager or call :meth:`close`.

    Attributes
    ----------
    con : DuckDB connection
        Its own, unless ``con`` is passed (then used, and left open without the table).
    table : str
        The table's name in ``con``.
    has_amount : bool
    trimmed : bool
        Whether the ids needed stripping.

    ``progress`` is that of the module's other DuckDB steps (None: shown when longer than 2 s,
    True: from the start, False: never); every query on the table runs under this one step.
    """

    def __init__(self, source, *, customer_id: str = "customer_id", date: str = "date",
                 amount: str | None = "amount", date_format: str | None = None, observation_end=None,
                 negative_amounts: str = "error", duplicates: str = "keep", threads: int | None = None,
                 memory_limit: str | None = None, encoding: str | None = DEFAULT_ENCODING,
                 max_abs_amount: float | None = DEFAULT_MAX_ABS_AMOUNT, min_date=DEFAULT_MIN_DATE, max_date=None,
                 implausible_dates: str = "error", con=None, progress: bool | None = None, **_ignored):
        from contextlib import ExitStack  # noqa: PLC0415

        from . import summary_duckdb as sd  # noqa: PLC0415
        from .progress import polled  # noqa: PLC0415

        # None: the default (the revenue producer's options come as None when not configured)
        lim = limits(encoding or DEFAULT_ENCODING,
                     DEFAULT_MAX_ABS_AMOUNT if max_abs_amount is None else max_abs_amount,
                     DEFAULT_MIN_DATE if min_date is None else min_date, max_date, implausible_dates)
        duplicates = "keep" if duplicates == "error" else duplicates
        self.has_amount = amount is not None
        self.negative_amounts = negative_amounts
        end_sql = sd._date_sql(sd._day(observation_end)) if observation_end is not None else None
        self._stack = ExitStack()
        step = self._stack.enter_context(polled("log customer days (DuckDB)", progress))
        self.con, own, self.src, self.run = sd._open(source, customer_id, date, amount, con,
                                                     threads or sd.DEFAULT_THREADS,
                                                     memory_limit or sd.DEFAULT_MEMORY_LIMIT, step,
                                                     encoding=lim.encoding)
        self.table = f"clvlab_customer_days_{id(self):x}"
        if own:
            self._stack.callback(self.con.close)      # a connection passed in is left open, without the table
        else:
            self._stack.callback(lambda: self.con.execute(f"DROP TABLE IF EXISTS {self.table}"))
        self._stack.callback(self.src.close)

        def rows(trim_ids, policy=negative_amounts):
            return sd._rows_sql(self.src, customer_id, date, amount, date_format, duplicates, policy, end_sql,
                                lim, trim_ids)

        self.rows = rows
        try:
            amt = ", sum(a) AS a" if self.has_amount else ""
            self.execute(f"CREATE TEMP TABLE {self.table} AS SELECT cid, d, count(*) AS nr{amt} "
                         f"FROM {rows(False)} WHERE NOT bad GROUP BY cid, d")
            self.trimmed = sd._needs_trim(sd._arrow(self.con, f"SELECT DISTINCT cid FROM {self.table}")
                                          .column("cid"))
            if self.trimmed:
                raw = f"{self.table}_raw"
                self.execute(f"ALTER TABLE {self.table} RENAME TO {raw}")
                self.execute(f"CREATE TEMP TABLE {self.table} AS SELECT trim(cid, {sd._lit(sd._WS)}) AS cid, d, "
                             f"sum(nr)::BIGINT AS nr{amt} FROM {raw} GROUP BY 1, d")
                self.execute(f"DROP TABLE {raw}")
        except BaseException:
            self.close()
            raise

    def execute(self, sql: str):
        """Run a statement (Ctrl-C interrupts it; a malformed CSV line is the ``file_csv`` rule)."""
        return self.run(lambda: self.con.execute(sql))

    def frame(self, sql: str) -> pd.DataFrame:
        return self.run(lambda: self.con.execute(sql).df())

    def summaries(self, calibration_end, observation_end, time_unit: str = "W"):
        """(cal, full) summaries from the table (:func:`helpers.summary_duckdb.summaries_of_days`)."""
        from .summary_duckdb import summaries_of_days  # noqa: PLC0415

        return summaries_of_days(self.con, self.table, calibration_end, observation_end, time_unit,
                                 self.has_amount, self.run)

    def customer_counts(self) -> tuple[int, int]:
        """``(customers, repeat_buyers)``: the customers with a purchase day in the table, and those with two
        or more (the pre-flight's counts, :func:`helpers.summary_duckdb.validate_duckdb`'s ``customer_counts``)."""
        n_cust, n_rep = self.run(lambda: self.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE n > 1) FROM (SELECT count(*) AS n FROM {self.table} "
            f"GROUP BY cid)").fetchall()[0])      # fetchall: no unfinished result left on the connection
        return int(n_cust), int(n_rep)

    def days_of(self, ids) -> pd.DataFrame:
        """``customer_id`` and ``day`` of the purchase days of ``ids`` (stripped ids), unsorted."""
        from .summary_duckdb import _lit  # noqa: PLC0415

        wanted = ", ".join(_lit(str(i)) for i in ids) or "NULL"
        res = self.frame(f"SELECT cid AS customer_id, d AS day FROM {self.table} WHERE cid IN ({wanted})")
        res["day"] = pd.to_datetime(res["day"])
        return res

    def close(self) -> None:
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tables_duckdb(
    source,
    calibration_end,
    observation_end=None,
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    date_format: str | None = None,
    *,
    negative_amounts: str = "error",
    duplicates: str = "keep",
    threads: int | None = None,
    memory_limit: str | None = None,
    progress: bool | None = None,
    encoding: str = DEFAULT_ENCODING,
    max_abs_amount: float = DEFAULT_MAX_ABS_AMOUNT,
    min_date=DEFAULT_MIN_DATE,
    max_date=None,
    implausible_dates: str = "error",
    shared: "CustomerDays | None" = None,
    **_ignored,
) -> dict[str, pd.DataFrame]:
    """``days``, ``gaps``, ``holdout_last`` and ``returns`` computed by DuckDB out of core.

    The rows are :func:`helpers.summary_duckdb._rows_sql`'s (the summaries' policies); the log is assumed
    validated (the stage validated it: a log with rows breaking a fatal rule never gets here), so
    ``duplicates="error"`` counts as ``"keep"``.  The tables are queries on the customer-day table of
    :class:`CustomerDays` (one scan of the log) plus one window per customer; ``shared`` is that table
    when the stage has built it for every DuckDB producer, otherwise it is built here and closed.
    """
    from . import summary_duckdb as sd  # noqa: PLC0415

    own = shared is None
    if own:
        shared = CustomerDays(source, customer_id=customer_id, date=date, amount=amount, date_format=date_format,
                              observation_end=observation_end, negative_amounts=negative_amounts,
                              duplicates=duplicates, threads=threads, memory_limit=memory_limit, encoding=encoding,
                              max_abs_amount=max_abs_amount, min_date=min_date, max_date=max_date,
                              implausible_dates=implausible_dates, progress=progress)
    has_amount = shared.has_amount
    cal = sd._date_sql(sd._day(calibration_end))
    frame = shared.frame
    try:
        amt = ", a" if has_amount else ""
        # the customer's first day (running minimum) and the gap to the previous day: one window
        shared.execute(f"CREATE OR REPLACE TEMP TABLE clvlab_days AS SELECT cid, d, nr{amt}, min(d) OVER w AS f, "
                       f"d - lag(d) OVER w AS gap FROM {shared.table} WINDOW w AS (PARTITION BY cid ORDER BY d)")
        spend = (", coalesce(sum(a) FILTER (WHERE d = f), 0.0) AS first_day_spend, "
                 "coalesce(sum(a) FILTER (WHERE d > f), 0.0) AS repeat_spend" if has_amount else "")
        days = frame(f"SELECT d AS day, sum(nr)::BIGINT AS rows, count(*) FILTER (WHERE d = f) AS new_customers, "
                     f"count(*) FILTER (WHERE d > f) AS repeat_days, "
                     f"count(*) FILTER (WHERE d > f AND f <= {cal}) AS repeat_days_cal{spend} "
                     f"FROM clvlab_days GROUP BY d ORDER BY d")
        gaps = frame("SELECT gap::BIGINT AS days, count(*) AS count FROM clvlab_days "
                     "WHERE gap IS NOT NULL GROUP BY gap ORDER BY gap")
        last = frame(f"SELECT cid, max(d) AS last_day FROM clvlab_days WHERE f <= {cal} "
                     f"AND d > {cal} GROUP BY cid ORDER BY cid")
        ret = None
        if has_amount and shared.negative_amounts == "returns":
            # the rows the returns policy sets aside: the same relation with negative amounts kept
            ret = frame(f"SELECT cid, count(DISTINCT d) FILTER (WHERE d <= {cal}) AS calibration, "
                        f"count(DISTINCT d) FILTER (WHERE d > {cal}) AS holdout, count(DISTINCT d) AS \"full\" "
                        f"FROM {shared.rows(shared.trimmed, 'error')} WHERE a < 0 GROUP BY cid ORDER BY cid")
        shared.execute("DROP TABLE IF EXISTS clvlab_days")
    finally:
        if own:
            shared.close()
    return _finish(days, gaps, last, ret, has_amount)


def _finish(days, gaps, last, ret, has_amount) -> dict[str, pd.DataFrame]:
    """The engines' results in the pandas engine's shapes and dtypes."""
    d = pd.DataFrame(index=pd.DatetimeIndex(pd.to_datetime(days["day"]).astype("datetime64[ns]"), name="day"))
    for col in ("rows", "new_customers", "repeat_days", "repeat_days_cal"):
        d[col] = days[col].to_numpy(np.int64)
    if has_amount:
        for col in ("first_day_spend", "repeat_spend"):
            d[col] = days[col].to_numpy(float)
    g = pd.DataFrame({"count": gaps["count"].to_numpy(np.int64)},
                     index=pd.Index(gaps["days"].to_numpy(np.int64), name="days"))
    h = pd.DataFrame({"last_day": pd.to_datetime(last["last_day"]).to_numpy().astype("datetime64[ns]")},
                     index=pd.Index(last["cid"].astype(object).to_numpy(), name="customer_id"))
    if ret is None or len(ret) == 0:
        r = return_windows(None, _EPOCH, _EPOCH)
    else:
        r = pd.DataFrame({w: ret[w].to_numpy(np.int64) for w in _RETURN_WINDOWS},
                         index=pd.Index(ret["cid"].astype(object).to_numpy(), name="customer_id"))
        r = r[r["full"] > 0]
    return {"days": d, "gaps": g, "holdout_last": h.sort_index(), "returns": r.sort_index()}


# ---------------------------------------------------------------------------
# Spark
# ---------------------------------------------------------------------------

def tables_spark(
    source,
    calibration_end,
    observation_end=None,
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    date_format: str | None = None,
    spark=None,
    *,
    negative_amounts: str = "error",
    duplicates: str = "keep",
    after_observation_end: str = "exclude",
    file_format: str | None = None,
    progress: bool | None = None,
    encoding: str = DEFAULT_ENCODING,
    max_abs_amount: float = DEFAULT_MAX_ABS_AMOUNT,
    min_date=DEFAULT_MIN_DATE,
    max_date=None,
    implausible_dates: str = "error",
) -> dict[str, pd.DataFrame]:
    """``days``, ``gaps``, ``holdout_last`` and ``returns`` computed by Spark.

    The rows are :func:`helpers.summary_spark._prepare`'s (the summaries' policies); customer-days by
    ``groupBy``, the first day and the gap to the previous purchase day by windows per customer; only
    the compact tables come back to the driver.
    """
    from . import summary_spark as ss  # noqa: PLC0415
    from .progress import polled  # noqa: PLC0415

    _, F, _ = ss._pyspark()
    from pyspark.sql import Window  # noqa: PLC0415

    lim = limits(encoding, max_abs_amount, min_date, max_date, implausible_dates)
    spark = spark or ss.get_spark()
    cal = ss._day_of(calibration_end)
    has_amount = amount is not None
    cid, day = ss._CID, ss._DAY
    with ss._nanos_as_long(spark, source), polled("log aggregates (Spark)", progress) as step:
        run = ss._job_runner(step, spark)
        prep = ss._prepare(
            source, spark, customer_id=customer_id, date=date, amount=amount, date_format=date_format,
            observation_end=observation_end, negative_amounts=negative_amounts, duplicates=duplicates,
            after_observation_end=after_observation_end, file_format=file_format, run=run, lim=lim)
        aggs = [F.count(F.lit(1)).alias("nr")] + ([F.sum(ss._AMT).alias("a")] if has_amount else [])
        per = prep.rows.groupBy(cid, day).agg(*aggs)
        w = Window.partitionBy(cid).orderBy(day)   # one window: the running minimum is the first day
        per = per.withColumn("f", F.min(day).over(w)).withColumn("gap", F.col(day) - F.lag(day).over(w)).cache()
        d, f = F.col(day), F.col("f")
        cols = [F.sum("nr").alias("rows"), F.count(F.when(d == f, 1)).alias("new_customers"),
                F.count(F.when(d > f, 1)).alias("repeat_days"),
                F.count(F.when((d > f) & (f <= F.lit(cal)), 1)).alias("repeat_days_cal")]
        if has_amount:
            cols += [F.coalesce(F.sum(F.when(d == f, F.col("a"))), F.lit(0.0)).alias("first_day_spend"),
                     F.coalesce(F.sum(F.when(d > f, F.col("a"))), F.lit(0.0)).alias("repeat_spend")]
        try:
            days = run(per.groupBy(day).agg(*cols).toPandas).sort_values(day, ignore_index=True)
            gaps = run(per.filter(F.col("gap").isNotNull()).groupBy(F.col("gap").alias("days"))
                       .agg(F.count(F.lit(1)).alias("count")).toPandas).sort_values("days", ignore_index=True)
            last = run(per.filter((f <= F.lit(cal)) & (d > F.lit(cal))).groupBy(F.col(cid).alias("cid"))
                       .agg(F.max(day).alias("last_day")).toPandas)
        finally:
            per.unpersist()
        ret = None
        if has_amount and negative_amounts == "returns":
            base = prep.norm.dropDuplicates(_wanted(customer_id, date, amount)) if duplicates == "drop" \
                else prep.norm
            r = (base.filter(ss._not_excluded(observation_end, lim) & (F.col(ss._AMT) < 0))
                 .select(cid, day).distinct())
            ret = run(r.groupBy(F.col(cid).alias("cid")).agg(
                F.count(F.when(d <= F.lit(cal), 1)).alias("calibration"),
                F.count(F.when(d > F.lit(cal), 1)).alias("holdout"),
                F.count(F.lit(1)).alias("full")).toPandas)
    days["day"] = _EPOCH + pd.to_timedelta(days[day].to_numpy(np.int64), unit="D")
    last["last_day"] = _EPOCH + pd.to_timedelta(last["last_day"].to_numpy(np.int64), unit="D")
    return _finish(days, gaps, last, ret, has_amount)


def _wanted(customer_id: str, date: str, amount: str | None) -> list[str]:
    """The raw columns a duplicate is judged on (as :func:`helpers.summary_spark._prepare`)."""
    return [customer_id, date] + ([amount] if amount is not None else [])


# ---------------------------------------------------------------------------
# example customers, by id
# ---------------------------------------------------------------------------

def example_ids(summary: pd.DataFrame, n: int) -> list:
    """``n`` repeat buyers spread evenly over the frequency range of ``summary`` (sorted by ``x`` then
    ``t_x``; fewer when there are fewer repeat buyers): notebook 02's example customers."""
    return _spread(summary, _by_frequency(summary), n)


def _by_frequency(summary: pd.DataFrame) -> np.ndarray:
    """Positions of the repeat buyers of ``summary`` sorted by ``x`` then ``t_x`` (ties in the summary's
    order: the sort is stable)."""
    x, t_x = summary["x"].to_numpy(float), summary["t_x"].to_numpy(float)
    rep = np.flatnonzero(x > 0)
    return rep[np.lexsort((t_x[rep], x[rep]))]


def _spread(summary: pd.DataFrame, order: np.ndarray, n: int) -> list:
    if len(order) == 0 or n < 1:
        return []
    picks = summary.index[order[[int(i * (len(order) - 1) / max(n - 1, 1)) for i in range(min(n, len(order)))]]]
    return list(dict.fromkeys(picks))


def example_pool(summary: pd.DataFrame, most: int = MAX_EXAMPLES) -> list:
    """Every customer :func:`example_ids` picks for 1 to ``most`` examples (the stage's ``examples``);
    the repeat buyers are sorted once (at 1e7 customers each sort takes seconds)."""
    order = _by_frequency(summary)
    return list(dict.fromkeys(i for n in range(1, most + 1) for i in _spread(summary, order, n)))


def _days_of_frame(transactions: pd.DataFrame | None, ids) -> pd.DataFrame:
    """The (customer, purchase day) rows of ``ids`` in a validated log in memory, sorted."""
    if transactions is None or not len(ids):
        out = pd.DataFrame({"customer_id": pd.Series([], dtype=object),
                            "day": pd.Series([], dtype="datetime64[ns]")})
        return out
    sub = transactions[transactions["customer_id"].isin(ids)]
    out = pd.DataFrame({"customer_id": sub["customer_id"].to_numpy(),
                        "day": sub["date"].dt.normalize().to_numpy()}).drop_duplicates()
    out = out.sort_values(["customer_id", "day"], ignore_index=True)
    out["day"] = out["day"].astype("datetime64[ns]")
    return out


def customer_days(cfg, ids, stage=None) -> pd.DataFrame:
    """The purchase days of a few customers: from the stage's ``examples`` table when it holds them all,
    otherwise fetched by id through the configured engine.

    Parameters
    ----------
    cfg : Config or path
    ids : sequence of str
        Customer ids (as in the summaries: surrounding whitespace stripped).
    stage : Stage, optional
        The run's stage: its ``aggregates_log.examples`` table (:data:`MAX_EXAMPLES`) is used when it
        lists every id.

    Returns
    -------
    DataFrame with ``customer_id`` and ``day`` (datetime64, midnight): one row per customer and purchase
    day of the clean log (the summaries' rows), sorted.
    """
    from .config import Config, ensure_data, load_config, load_data, load_options  # noqa: PLC0415
    from .engines import engine_of  # noqa: PLC0415

    ids = [str(i) for i in ids]
    held = getattr(stage, "aggregates", {}).get("aggregates_log.examples") if stage is not None else None
    if held is not None and set(ids) <= set(held.attrs.get("ids", ())):
        out = held[held["customer_id"].isin(ids)].reset_index(drop=True)
        out.attrs = {}
        return out
    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    engine = engine_of(cfg)
    if engine == "pandas":
        return _days_of_frame(load_data(cfg).transactions, ids)
    ensure_data(cfg)
    fn = _days_of_duckdb if engine == "duckdb" else _days_of_spark
    return _sorted_days(fn(cfg.data["path"], ids, **load_options(cfg, fn)))


def _sorted_days(out: pd.DataFrame) -> pd.DataFrame:
    out = out.sort_values(["customer_id", "day"], ignore_index=True)
    out["day"] = out["day"].astype("datetime64[ns]")
    return out


def _days_of_duckdb(source, ids, customer_id="customer_id", date="date", amount="amount", date_format=None, *,
                    observation_end=None, negative_amounts="error", duplicates="keep", encoding=DEFAULT_ENCODING,
                    max_abs_amount=DEFAULT_MAX_ABS_AMOUNT, min_date=DEFAULT_MIN_DATE, max_date=None, implausible_dates="error", **_ignored):
    from . import summary_duckdb as sd  # noqa: PLC0415
    from .progress import polled  # noqa: PLC0415

    lim = limits(encoding, max_abs_amount, min_date, max_date, implausible_dates)
    duplicates = "keep" if duplicates == "error" else duplicates
    end_sql = sd._date_sql(sd._day(observation_end)) if observation_end is not None else None
    with polled("example customers (DuckDB)", False) as step:
        con, own, src, run = sd._open(source, customer_id, date, amount, None, sd.DEFAULT_THREADS,
                                      sd.DEFAULT_MEMORY_LIMIT, step, encoding=lim.encoding)
        try:
            rows = sd._rows_sql(src, customer_id, date, amount, date_format, duplicates, negative_amounts, end_sql,
                                lim, True)
            wanted = ", ".join(sd._lit(i) for i in ids) or "NULL"
            res = run(lambda: con.execute(f"SELECT DISTINCT cid AS customer_id, d AS day FROM {rows} "
                                          f"WHERE cid IN ({wanted})").df())
        finally:
            src.close()
            if own:
                con.close()
    res["day"] = pd.to_datetime(res["day"])
    return res


def _days_of_spark(source, ids, customer_id="customer_id", date="date", amount="amount", date_format=None,
                   spark=None, *, observation_end=None, negative_amounts="error", duplicates="keep",
                   after_observation_end="exclude", file_format=None, encoding=DEFAULT_ENCODING,
                   max_abs_amount=DEFAULT_MAX_ABS_AMOUNT, min_date=DEFAULT_MIN_DATE, max_date=None, implausible_dates="error"):
    from . import summary_spark as ss  # noqa: PLC0415

    _, F, _ = ss._pyspark()
    lim = limits(encoding, max_abs_amount, min_date, max_date, implausible_dates)
    spark = spark or ss.get_spark()
    with ss._nanos_as_long(spark, source):
        prep = ss._prepare(
            source, spark, customer_id=customer_id, date=date, amount=amount, date_format=date_format,
            observation_end=observation_end, negative_amounts=negative_amounts, duplicates=duplicates,
            after_observation_end=after_observation_end, file_format=file_format, lim=lim)
        res = (prep.rows.filter(F.col(ss._CID).isin(list(ids))).select(F.col(ss._CID).alias("customer_id"),
                                                                        F.col(ss._DAY).alias("day"))
               .distinct().toPandas())
    res["day"] = _EPOCH + pd.to_timedelta(res["day"].to_numpy(np.int64), unit="D")
    return res
