"""The summary step on Apache Spark (``engine: spark``).

:func:`rfm_summary_spark` and :func:`calibration_holdout_spark` compute exactly
the same per-customer summaries as :func:`helpers.summary.rfm_summary` and
:func:`helpers.summary.calibration_holdout` (same index, columns, dtypes and
counting rules: purchases counted per *day*, the first purchase day excluded
from ``m_x``), but the transaction log is read, validated and aggregated by
Spark.  Only the compact per-customer result (one row per customer, a handful
of numbers) is collected to the driver; the models are then fitted locally as
with the default engine.

The log can be a Spark DataFrame, a path / glob / directory of Parquet or CSV
files (local, or a data-lake URI such as ``s3a://bucket/transactions/``) or a
pandas DataFrame.  Validation follows :func:`helpers.data.load_transactions`
(same rules, same policies, same :class:`~helpers.data.DataValidationError`),
computed in one Spark pass; the example rows of an error carry no row number
(Spark rows have no stable order).

Dates are turned into calendar days without depending on the session time
zone: ``DATE`` columns are used as they are, ``TIMESTAMP_NTZ`` columns and
parsed strings keep their wall-clock day, and ``TIMESTAMP`` (instant) columns
are cut at midnight UTC -- which is what pandas gives for the same Parquet file
(a UTC-adjusted timestamp read back and made naive).  Parquet files written by
pandas with nanosecond timestamps are read too (Spark itself rejects them).

Progress: the Spark actions run in a worker thread while the calling thread
polls ``spark.sparkContext.statusTracker()`` (completed / total tasks of the
active stages) and shows it with :class:`helpers.progress.polled` -- in a
notebook one line updated in place ("progress · log summary (Spark): 40%",
"running" between stages, "done" at the end), in a terminal a ``tqdm`` bar,
elsewhere nothing.  With the default ``progress=None`` only steps longer than
2 s show it; ``progress=True`` from the start; ``progress=False`` never (the
actions then run in the calling thread).  Ctrl-C cancels the running jobs.  With
Spark Connect (no ``SparkContext`` on the client) the actions run as usual,
without progress.

pyspark is imported lazily: the rest of :mod:`helpers` works without it.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import codecs

from .data import (
    DEFAULT_ENCODING,
    DEFAULT_MAX_ABS_AMOUNT,
    DEFAULT_MIN_DATE,
    AMOUNT_PATTERN,
    ID_WHITESPACE,
    MAX_EXAMPLES,
    MISSING_TOKENS,
    VALUE_RULES,
    DataValidationError,
    Limits,
    check_files,
    check_policies,
    date_fmt_text,
    limits,
    quality_frame,
    resolve_files,
    rule_error,
)
from .progress import polled
from .summary import check_calibration_end, days_per_unit

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = [
    "SPARK_MASTER_ENV",
    "get_spark",
    "rfm_summary_spark",
    "calibration_holdout_spark",
    "validate_spark",
    "strftime_to_spark",
]

#: Environment variable naming the Spark master (e.g. ``spark://host:7077``, ``yarn``, ``k8s://...``).
SPARK_MASTER_ENV = "CLV_LAB_SPARK_MASTER"

#: Default master when neither an argument, the environment nor spark-submit names one.
LOCAL_MASTER = "local[2]"

_MICROS_PER_DAY = 86_400_000_000
_NANOS_PER_DAY = 86_400_000_000_000
_EPOCH = pd.Timestamp("1970-01-01")

# internal column names (cannot clash: the normalised frame only has these)
_CID, _DAY, _AMT = "__cid", "__day", "__amt"


def _pyspark():
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession, functions as F, types as T
    except ImportError as exc:  # pragma: no cover - exercised only without pyspark
        raise ImportError(
            "engine 'spark' needs pyspark (pip install 'pyspark>=3.5,<5') and Java 17"
        ) from exc
    return SparkSession, F, T


# ---------------------------------------------------------------------------
# session
# ---------------------------------------------------------------------------

def get_spark(app_name: str = "clv-lab", master: str | None = None, conf: dict | None = None) -> "SparkSession":
    """Build (or get) the SparkSession used by the Spark engine.

    The master comes from ``master``, else the environment variable
    ``CLV_LAB_SPARK_MASTER``, else -- when the script was launched by
    ``spark-submit`` -- from spark-submit's own ``--master``, else it is
    ``local[2]``.  An already running session (spark-submit, a notebook on a
    cluster, Databricks ...) is returned as it is, settings untouched.

    Local mode is set up for a small shared machine: small shuffle partitions
    (4), no web UI, no progress bar, the driver bound to 127.0.0.1 (no network
    beyond loopback) and a JVM tuned to start fast (C1 JIT only, serial GC --
    about twice as quick to warm up on 2 cores; override with
    ``conf={"spark.driver.extraJavaOptions": ""}`` for long local jobs).
    Every new session gets ``spark.sql.session.timeZone = UTC`` and Arrow
    transfers to/from pandas (the summary does not depend on the session time
    zone, though).  ``conf`` adds or overrides Spark settings.
    """
    SparkSession, _, _ = _pyspark()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    master = master or os.environ.get(SPARK_MASTER_ENV) or None
    launched_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if master is None and not launched_by_submit:
        master = LOCAL_MASTER
    settings: dict[str, Any] = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if master is not None and master.startswith("local"):
        # SPARK_LOCAL_IP is read by the JVM at launch: bind to loopback only.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings.update({
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.adaptive.enabled": "true",
            # a quick JVM start on a small machine: C1 JIT only, serial GC
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        })
    settings.update(conf or {})
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------

_STRFTIME = {
    "Y": ("yyyy", "yyyy"), "m": ("MM", "M"), "d": ("dd", "d"),
    "H": ("HH", "H"), "I": ("hh", "h"), "M": ("mm", "m"), "S": ("ss", "s"),
    "f": ("SSSSSS", "SSSSSS"), "p": ("a", "a"), "b": ("MMM", "MMM"), "B": ("MMMM", "MMMM"),
    "j": ("DDD", "D"), "a": ("EEE", "EEE"), "A": ("EEEE", "EEEE"),
}


def strftime_to_spark(fmt: str) -> str:
    """Translate a ``strftime`` date format (as in the config) into a Spark datetime pattern.

    Numeric fields between separators accept one or two digits, as
    Python's ``strptime`` does; adjacent fields (``%Y%m%d``) are fixed width.
    """
    out: list[str] = []
    i = 0
    after_field = False
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            if i + 1 >= len(fmt):
                raise ValueError(f"date_format {fmt!r} ends with a lone '%'")
            code = fmt[i + 1]
            i += 2
            if code == "%":
                out.append("%")
                after_field = False
                continue
            if code == "y":
                # Spark reads two-digit years as 2000-2099, Python as 1969-2068: refuse to guess
                raise ValueError("date_format directive %y (two-digit year) is not supported by the Spark "
                                 "engine; use %Y or convert the dates first")
            if code not in _STRFTIME:
                raise ValueError(f"date_format directive %{code} is not supported by the Spark engine")
            fixed, lenient = _STRFTIME[code]
            followed_by_field = i < len(fmt) and fmt[i] == "%" and fmt[i + 1: i + 2] != "%"
            out.append(fixed if (followed_by_field or after_field) else lenient)
            after_field = True
            continue
        else:
            j = i
            while j < len(fmt) and fmt[j] != "%":
                j += 1
            literal = fmt[i:j]
            i = j
            after_field = False
            if re.search(r"[A-Za-z']", literal):
                out.append("'" + literal.replace("'", "''") + "'")
            else:
                out.append(literal)
    return "".join(out)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _is_uri(text: str) -> bool:
    """A data-lake / remote location (s3a://, abfss://, hdfs://, gs:// ...), read by Spark as given."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) is not None and not text.startswith("file://")


def _local(text: str) -> str:
    return text[len("file://"):] if text.startswith("file://") else text


# Java's names of common encodings (by Python codec name); others are passed as given
_JAVA_ENCODINGS = {"utf-8": "UTF-8", "ascii": "US-ASCII", "iso8859-1": "ISO-8859-1", "cp1252": "windows-1252",
                   "utf-16": "UTF-16", "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE"}


def _csv_options(encoding: str) -> dict:
    name = codecs.lookup(encoding).name
    opts = {"header": True, "inferSchema": False, "escape": '"', "mode": "PERMISSIVE",
            "encoding": _JAVA_ENCODINGS.get(name, encoding)}
    if "\n".encode(name) != b"\n":          # lines are not split on the byte 0x0a (UTF-16 ...)
        opts["multiLine"] = True
    return opts


def _read_files(spark, source, date: str, file_format: str | None,
                encoding: str = DEFAULT_ENCODING) -> list[tuple[Any, str | None]]:
    """Read files into Spark DataFrames, one per format: [(frame, date encoding)].

    Local files are checked first (:func:`helpers.data.check_files`: text in ``encoding``, not
    binary, readable Parquet), as the other engines do; data-lake URIs are read as they are.
    """
    text = str(source)
    csv_opts = _csv_options(encoding)
    if _is_uri(text):
        fmt = file_format or ("csv" if text.lower().rstrip("/").endswith(".csv") else "parquet")
        reader = spark.read.options(**csv_opts) if fmt == "csv" else spark.read
        return [(reader.format(fmt).load(text), None)]
    groups: dict[str, list[Path]] = {}
    files = resolve_files(_local(text))
    if file_format is None:
        check_files(files, encoding)
    for f in files:
        fmt = file_format or ("csv" if f.suffix.lower() == ".csv" else "parquet")
        groups.setdefault(fmt, []).append(f.resolve())
    parts = []
    for fmt, paths in groups.items():
        if fmt == "csv":
            parts.append((spark.read.options(**csv_opts).csv([str(p) for p in paths]), None))
        else:
            nanos = _nanos_columns(paths)
            parts.append((spark.read.parquet(*[str(p) for p in paths]), "nanos" if date in nanos else None))
    return parts


def _nanos_columns(files: list[Path]) -> set[str]:
    """Columns stored as nanosecond timestamps in local Parquet files (pandas' default)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover
        return set()
    found: set[str] = set()
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception:  # unreadable footer: let Spark report it
            continue
        found |= {fld.name for fld in schema if pa.types.is_timestamp(fld.type) and fld.type.unit == "ns"}
    return found


def _from_pandas(spark, frame: pd.DataFrame, wanted: list[str], customer_id: str, date: str):
    """A pandas log as a Spark frame; datetimes go over as wall-clock microseconds (no time zone)."""
    pdf = pd.DataFrame(index=range(len(frame)))
    encoding = None
    for c in wanted:
        if c not in frame.columns:
            continue
        col = frame[c].reset_index(drop=True)
        if c == date and pd.api.types.is_datetime64_any_dtype(col):
            if col.dt.tz is not None:
                col = col.dt.tz_localize(None)  # as load_transactions: keep the wall clock
            micros = col.astype("datetime64[us]").astype("int64")
            pdf[c] = micros.where(col.notna(), other=None).astype("Int64")
            encoding = "micros"
        elif c != customer_id and pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            pdf[c] = col.astype(float)
        else:  # ids (as text, like the loader's astype(str)), text dates and amounts
            pdf[c] = col.astype(str).where(col.notna(), None).astype(object)
    _, _, T = _pyspark()
    fields = []
    for c in pdf.columns:
        if str(pdf[c].dtype) == "Int64":
            fields.append(T.StructField(c, T.LongType(), True))
        elif pdf[c].dtype == float:
            fields.append(T.StructField(c, T.DoubleType(), True))
        else:
            fields.append(T.StructField(c, T.StringType(), True))
    pdf = pdf.astype({c: object for c in pdf.columns if str(pdf[c].dtype) == "Int64"})
    pdf = pdf.where(pdf.notna(), None) if len(pdf) else pdf
    sdf = spark.createDataFrame(pdf, schema=T.StructType(fields))
    return sdf, encoding


# ---------------------------------------------------------------------------
# normalisation and validation
# ---------------------------------------------------------------------------

def _day_column(df, date: str, date_format: str | None, encoding: str | None):
    """Epoch day (int) of the date column, or null when it does not parse."""
    _, F, T = _pyspark()
    q = _quote(date)
    dtype = df.schema[date].dataType

    def floor_div(value_sql: str, per_day: int):
        # exact integer floor division (no double rounding, also before 1970)
        return F.expr(f"cast((({value_sql}) - pmod({value_sql}, {per_day}L)) div {per_day}L as int)")

    if encoding == "micros":
        return floor_div(f"cast({q} as bigint)", _MICROS_PER_DAY)
    if encoding == "nanos" and isinstance(dtype, T.LongType):
        return floor_div(q, _NANOS_PER_DAY)
    if isinstance(dtype, T.DateType):
        return F.expr(f"unix_date({q})")
    if isinstance(dtype, T.TimestampNTZType):
        return F.expr(f"unix_date(to_date({q}))")
    if isinstance(dtype, T.TimestampType):
        # an instant: cut at midnight UTC whatever the session time zone
        return floor_div(f"unix_micros({q})", _MICROS_PER_DAY)
    # text (or numbers such as 19970101): parse.  Parsing and the cut to a day
    # use the same session time zone, so the wall-clock day is kept.
    text = _stripped(df[date])
    if date_format:
        ts = F.try_to_timestamp(text, F.lit(strftime_to_spark(date_format)))
    else:
        ts = text.try_cast("timestamp_ntz")
    return F.unix_date(F.to_date(ts))


def _stripped(column):
    """A column as text with :data:`helpers.data.ID_WHITESPACE` stripped (as every engine strips)."""
    _, F, _ = _pyspark()
    return F.btrim(column.cast("string"), F.lit(ID_WHITESPACE))


def _missing(df, name: str):
    """Null, or text that means missing (:data:`helpers.data.MISSING_TOKENS`)."""
    _, F, T = _pyspark()
    col = df[name]
    dtype = df.schema[name].dataType
    if isinstance(dtype, (T.DoubleType, T.FloatType)):
        return col.isNull() | F.isnan(col)
    if not isinstance(dtype, T.StringType):
        return col.isNull()
    return col.isNull() | F.lower(_stripped(col)).isin(list(MISSING_TOKENS))


def _amount_column(df, amount: str):
    _, F, T = _pyspark()
    dtype = df.schema[amount].dataType
    if isinstance(dtype, T.NumericType):
        return df[amount].cast("double")
    text = _stripped(df[amount])
    # a number only when it looks like one (helpers.data.AMOUNT_PATTERN), as in every engine
    return F.when(text.rlike(f"^(?i)(?:{AMOUNT_PATTERN})$"), text.try_cast("double"))


class _Prepared:
    """The log as (customer, day, amount) rows plus validation counts."""

    def __init__(self, rows, has_amount: bool, n_rows: int | None, first_day: int | None, last_day: int | None,
                 stats: dict | None = None, norm=None, keep=None):
        self.rows = rows
        self.has_amount = has_amount
        self.n_rows = n_rows
        self.first_day = first_day
        self.last_day = last_day
        self.stats = stats or {}      # the validation pass's counts (for validate_spark)
        self.norm = norm              # the normalised rows before any exclusion, and the keep condition
        self.keep = keep


def _day_of(value) -> int:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return int((ts.normalize() - _EPOCH).days)


def _date_of(day: int) -> str:
    return (_EPOCH + pd.Timedelta(days=int(day))).date().isoformat()


def _examples(raw, cond, wanted: list[str], micros_col: str | None = None, run=None) -> pd.DataFrame:
    """Up to five offending rows as read (a pandas log's datetimes shown as datetimes again)."""
    rows = raw.filter(cond).select(*[raw[c] for c in wanted]).limit(5)
    ex = (run or _direct)(rows.toPandas)
    if micros_col is not None and micros_col in ex.columns:
        ex[micros_col] = pd.to_datetime(ex[micros_col], unit="us")
    ex.index.name = "example"
    return ex


def _prepare(
    source, spark, *, customer_id: str, date: str, amount: str | None, date_format: str | None,
    observation_end, negative_amounts: str, duplicates: str, after_observation_end: str,
    file_format: str | None, run=None, lim: Limits | None = None,
) -> _Prepared:
    _, F, T = _pyspark()
    from pyspark.sql import DataFrame as SparkDataFrame

    check_policies(negative_amounts, duplicates, after_observation_end)
    lim = lim or limits()
    run = run or _direct

    has_amount = amount is not None
    wanted = [customer_id, date] + ([amount] if has_amount else [])
    columns = {"customer_id": customer_id, "date": date, "amount": amount}

    if isinstance(source, SparkDataFrame):
        parts = [(source, None)]
    elif isinstance(source, pd.DataFrame):
        parts = [_from_pandas(spark, source, wanted, customer_id, date)]
    else:
        parts = _read_files(spark, source, date, file_format, lim.encoding)

    micros_col = date if any(enc == "micros" for _, enc in parts) else None
    normalised = []
    for raw, encoding in parts:
        missing = [c for c in wanted if c not in raw.columns]
        if missing:
            raise rule_error("missing_column", 0, column=missing[0], missing=missing, present=list(raw.columns))
        cols = [
            _stripped(raw[customer_id]).alias(_CID),
            _missing(raw, customer_id).alias("__id_missing"),
            _day_column(raw, date, date_format, encoding).alias(_DAY),
            _missing(raw, date).alias("__date_missing"),
        ]
        if has_amount:
            cols += [_amount_column(raw, amount).alias(_AMT), _missing(raw, amount).alias("__amt_missing")]
        # the raw columns stay for error examples and duplicate detection
        raw_cols = [raw[c] if len(parts) == 1 else raw[c].cast("string").alias(c) for c in wanted]
        normalised.append(raw.select(*raw_cols, *cols))
    norm = normalised[0]
    for other in normalised[1:]:
        norm = norm.unionByName(other)

    # one pass counts every rule and the range of the rows that will be kept
    end_day = _day_of(observation_end) if observation_end is not None else None
    lo_day, hi_day = _day_of(lim.min_date), _day_of(lim.max_date)
    day, col = F.col(_DAY), F.col
    conds: dict[str, Any] = {
        "null_id": col("__id_missing"),
        "null_date": col("__date_missing"),
        "bad_date": ~col("__date_missing") & day.isNull(),
    }
    if has_amount:
        a = col(_AMT)
        infinite = a.isin(float("inf"), float("-inf"))
        conds["nan_amount"] = col("__amt_missing")
        conds["non_numeric"] = ~col("__amt_missing") & (a.isNull() | F.isnan(a))
        conds["inf_amount"] = infinite
        conds["large_amount"] = ~infinite & (F.abs(a) > F.lit(lim.max_abs_amount))
    conds = {name: conds[name] for name in VALUE_RULES if name in conds}
    outside = F.coalesce((day < F.lit(lo_day)) | (day > F.lit(hi_day)), F.lit(False))
    conds["outside"] = outside
    after = (~outside & (day > F.lit(end_day))) if end_day is not None else F.lit(False)
    conds["after_end"] = after
    keep = ~after & ~outside
    if has_amount:
        conds["negative"] = (col(_AMT) < 0) & keep
        conds["zero"] = (col(_AMT) == 0) & keep
        keep = keep & (col(_AMT) >= 0)

    aggs = [F.count(F.lit(1)).alias("n")]
    aggs += [F.sum(F.when(cond, 1).otherwise(0)).alias(k) for k, cond in conds.items()]
    aggs += [F.sum(F.when(keep, 1).otherwise(0)).alias("kept"),
             F.min(F.when(keep, day)).alias("lo"), F.max(F.when(keep, day)).alias("hi")]
    stats = run(norm.agg(*aggs).collect)[0].asDict()
    stats = {k: (int(v) if v is not None else None) for k, v in stats.items()}
    n_read = stats["n"]
    if n_read == 0:
        raise rule_error("empty", 0)

    def check(key, rule=None, **fmt):
        n = int(stats[key] or 0)
        if n:
            raise rule_error(rule or key, n, _examples(norm, conds[key], wanted, micros_col, run), columns=columns,
                             **fmt)

    for name in VALUE_RULES:
        if name in conds:
            check(name, fmt=date_fmt_text(date_format), max_abs_amount=lim.max_abs_amount)
    if lim.implausible_dates == "error":
        check("outside", "implausible_date", min_date=lim.min_date.date(), max_date=lim.max_date.date())

    rows = norm
    n_kept = int(stats["kept"] or 0)
    if duplicates == "error":
        raw = norm.select(*wanted)
        n_distinct = run(raw.distinct().count)
        if n_distinct != n_read:
            dup_keys = raw.groupBy(*wanted).count().filter(F.col("count") > 1).drop("count")
            ex = _examples(dup_keys, F.lit(True), wanted, micros_col, run)
            raise rule_error("duplicates", n_read - n_distinct, ex)
    if end_day is not None and after_observation_end == "error":
        check("after_end", end=_date_of(end_day))
    if has_amount and negative_amounts == "error":
        check("negative")
    if n_kept == 0:
        raise rule_error("nothing_left", n_read)
    rows = rows.filter(keep)
    if duplicates == "drop":
        rows = rows.dropDuplicates(wanted)
        n_kept = None  # counted only if an error message needs it
    rows = rows.select(_CID, _DAY, *([_AMT] if has_amount else []))
    return _Prepared(rows, has_amount, n_kept, stats["lo"], stats["hi"], stats=stats, norm=norm, keep=keep)


def validate_spark(
    source,
    *,
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    date_format: str | None = None,
    observation_end=None,
    negative_amounts: str = "error",
    duplicates: str = "keep",
    after_observation_end: str = "exclude",
    encoding: str = DEFAULT_ENCODING,
    max_abs_amount: float = DEFAULT_MAX_ABS_AMOUNT,
    min_date=DEFAULT_MIN_DATE,
    max_date=None,
    implausible_dates: str = "error",
    spark: "SparkSession | None" = None,
    file_format: str | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run the validation rules of :func:`helpers.data.load_transactions` on Spark.

    The same rules, policies and errors as the pandas loader and
    :func:`helpers.summary_duckdb.validate_duckdb` (example rows carry no row
    number).  Parameters are those of :func:`rfm_summary_spark` and the
    plausibility settings of :func:`helpers.data.load_transactions`.

    Returns
    -------
    DataFrame
        The data-quality table of :attr:`helpers.data.TransactionData.quality`;
        ``attrs["counts"]`` holds the counts by name as in
        ``TransactionData.counts`` (what :func:`helpers.data.check_modelable` reads).
    """
    _, F, _ = _pyspark()
    check_policies(negative_amounts, duplicates, after_observation_end, implausible_dates)
    lim = limits(encoding, max_abs_amount, min_date, max_date, implausible_dates)
    spark = spark or get_spark()
    has_amount = amount is not None
    wanted = [customer_id, date] + ([amount] if has_amount else [])
    with _nanos_as_long(spark, source), polled("log validation (Spark)", progress) as step:
        run = _job_runner(step, spark)
        prep = _prepare(
            source, spark, customer_id=customer_id, date=date, amount=amount, date_format=date_format,
            observation_end=observation_end, negative_amounts=negative_amounts, duplicates=duplicates,
            after_observation_end=after_observation_end, file_format=file_format, run=run, lim=lim,
        )
        st = prep.stats
        n_read = st["n"]
        n_distinct = run(prep.norm.select(*wanted).distinct().count)
        counts = {"rows_read": n_read, "duplicate_rows": int(n_read - n_distinct),
                  "implausible_dates": int(st["outside"] or 0), "after_observation_end": int(st["after_end"] or 0)}
        base = prep.norm
        if duplicates == "drop":
            base = base.dropDuplicates(wanted)
        # counts over the rows kept (deduplicated with duplicates="drop"), as load_transactions counts them
        kept = base.filter(prep.keep)
        aggs = [F.count(F.lit(1)).alias("used"), F.countDistinct(_DAY).alias("dates")]
        if has_amount:
            neg_zero = base.filter(_not_excluded(observation_end, lim)).agg(
                F.sum(F.when(F.col(_AMT) < 0, 1).otherwise(0)).alias("neg"),
                F.sum(F.when(F.col(_AMT) == 0, 1).otherwise(0)).alias("zero")).collect
            n_neg, n_zero = (int(v or 0) for v in run(neg_zero)[0])
            counts["returns"] = n_neg
            counts["zero_amount_rows"] = n_zero
        used = run(kept.agg(*aggs).collect)[0]
        per = kept.groupBy(_CID).agg(F.min(_DAY).alias("d0"), F.max(_DAY).alias("d1"))
        cust = run(per.agg(F.count(F.lit(1)).alias("n"),
                           F.sum(F.when(F.col("d0") < F.col("d1"), 1).otherwise(0)).alias("rep")).collect)[0]
    counts["rows_used"] = int(used["used"])
    counts.update({"customers": int(cust["n"]), "repeat_buyers": int(cust["rep"] or 0),
                   "purchase_dates": int(used["dates"])})
    quality = quality_frame(counts, has_amount=has_amount, duplicates=duplicates, negative_amounts=negative_amounts,
                            implausible_dates=lim.implausible_dates, window=lim.window,
                            observation_end=_day_ts(observation_end) if observation_end is not None else None,
                            first=_EPOCH + pd.Timedelta(days=prep.first_day),
                            last=_EPOCH + pd.Timedelta(days=prep.last_day))
    quality.attrs["counts"] = counts
    return quality


def _day_ts(value) -> pd.Timestamp:
    return _EPOCH + pd.Timedelta(days=_day_of(value))


def _not_excluded(observation_end, lim: Limits):
    """Rows inside the plausible window and not after the observation end (returns may be among them)."""
    _, F, _ = _pyspark()
    day = F.col(_DAY)
    ok = F.coalesce((day >= F.lit(_day_of(lim.min_date))) & (day <= F.lit(_day_of(lim.max_date))), F.lit(False))
    if observation_end is not None:
        ok = ok & (day <= F.lit(_day_of(observation_end)))
    return ok


# ---------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------

def _daily(prep: _Prepared):
    """One row per customer and purchase day (with the day's total spend)."""
    _, F, _ = _pyspark()
    g = prep.rows.groupBy(_CID, _DAY)
    if prep.has_amount:
        return g.agg(F.sum(_AMT).alias(_AMT))
    return g.agg(F.count(F.lit(1)).alias("__n")).drop("__n")


def _finish(compact: pd.DataFrame, end_day: int, unit_days: float, has_amount: bool) -> pd.DataFrame:
    """Build the summary from the collected per-customer numbers, as helpers.summary does."""
    index = pd.Index(compact["cid"].astype(object).to_numpy(), name="customer_id", dtype=object)
    first = compact["first"].to_numpy(dtype=np.int64)
    last = compact["last"].to_numpy(dtype=np.int64)
    n_days = compact["n_days"].to_numpy(dtype=np.int64)
    out = pd.DataFrame(index=index)
    out["x"] = (n_days - 1).astype(float)
    out["t_x"] = (last - first) / unit_days
    out["T"] = (end_day - first) / unit_days
    if has_amount:
        total = compact["total"].to_numpy(dtype=float)
        repeat_spend = total - compact["first_amount"].to_numpy(dtype=float)
        x = out["x"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out["m_x"] = np.where(x > 0, repeat_spend / np.where(x > 0, x, 1.0), 0.0)
        out["total_spend"] = total
    out["first_purchase"] = (_EPOCH + pd.to_timedelta(first, unit="D")).astype("datetime64[ns]")
    return out


def _collect(frame, run=None) -> pd.DataFrame:
    """The compact per-customer result on the driver, sorted by customer id (as pandas sorts)."""
    pdf = (run or _direct)(frame.toPandas)
    return pdf.sort_values("cid", kind="stable", ignore_index=True)


def rfm_summary_spark(
    source,
    observation_end: str | pd.Timestamp | None = None,
    time_unit: str = "W",
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    date_format: str | None = None,
    spark: "SparkSession | None" = None,
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
) -> pd.DataFrame:
    """Per-customer ``x, t_x, T[, m_x, total_spend], first_purchase``, computed by Spark.

    The same result as ``rfm_summary(load_transactions(source, ...).transactions,
    observation_end, time_unit)`` (see :func:`helpers.summary.rfm_summary`).

    Parameters
    ----------
    source : Spark DataFrame, path, glob, directory or pandas DataFrame
        The raw transaction log.  Paths may be local files / directories /
        globs of Parquet or CSV files, or a data-lake URI (``s3a://``,
        ``abfss://``, ``hdfs://``, ``gs://`` ...; Parquet unless it ends in
        ``.csv`` or ``file_format="csv"``).  CSV is read as text, so ids keep
        their leading zeros.
    observation_end : date, optional
        End of the observation period (default: the last transaction day).
        Later rows are excluded (or an error with
        ``after_observation_end="error"``).
    time_unit : {"D", "W", "M"}
    customer_id, date, amount : str
        Column names in the log (``amount=None``: a log without amounts).
    date_format : str, optional
        ``strftime`` format of a text date column (e.g. ``"%Y%m%d"``).
    spark : SparkSession, optional
        Default: :func:`get_spark`.
    negative_amounts, duplicates, after_observation_end
        The validation policies of :func:`helpers.data.load_transactions`.
    encoding, max_abs_amount, min_date, max_date, implausible_dates
        Its plausibility settings (``data.encoding`` ...): CSV encoding, bound
        on amounts, the plausible window of dates and its policy.
    file_format : {"parquet", "csv"}, optional
        Force the file format (default: from the file extension).
    progress : bool or None
        Progress of the Spark jobs in a notebook or terminal (see the module
        docstring): None (default) for steps longer than 2 s, True from the
        start, False never.  The result is the same.
    """
    unit_days = days_per_unit(time_unit)
    spark = spark or get_spark()
    with _nanos_as_long(spark, source), polled("log summary (Spark)", progress) as step:
        run = _job_runner(step, spark)
        prep = _prepare(
            source, spark, customer_id=customer_id, date=date, amount=amount, date_format=date_format,
            observation_end=observation_end, negative_amounts=negative_amounts, duplicates=duplicates,
            after_observation_end=after_observation_end, file_format=file_format, run=run,
            lim=limits(encoding, max_abs_amount, min_date, max_date, implausible_dates),
        )
        end_day = _day_of(observation_end) if observation_end is not None else prep.last_day
        compact = _collect(_customer_aggregate(_daily(prep), prep.has_amount, end_day), run)
    return _finish(compact, end_day, unit_days, prep.has_amount)


def _customer_aggregate(daily, has_amount: bool, end_day: int):
    _, F, _ = _pyspark()
    d = daily.filter(F.col(_DAY) <= F.lit(end_day))
    aggs = [
        F.min(_DAY).alias("first"), F.max(_DAY).alias("last"), F.count(F.lit(1)).alias("n_days"),
    ]
    if has_amount:
        aggs += [F.sum(_AMT).alias("total"), F.expr(f"min_by({_AMT}, {_DAY})").alias("first_amount")]
    return d.groupBy(F.col(_CID).alias("cid")).agg(*aggs)


def calibration_holdout_spark(
    source,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp | None = None,
    time_unit: str = "W",
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    date_format: str | None = None,
    spark: "SparkSession | None" = None,
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
) -> pd.DataFrame:
    """Calibration summary and holdout counts per customer, computed by Spark.

    The same result as ``calibration_holdout(load_transactions(source,
    observation_end=observation_end, ...).transactions, calibration_end,
    observation_end, time_unit)`` (see :func:`helpers.summary.calibration_holdout`):
    ``x, t_x, T[, m_x, total_spend], first_purchase, x_star[, m_x_star,
    holdout_spend], t_star`` for the customers whose first purchase falls in
    the calibration period.  Parameters as in :func:`rfm_summary_spark`
    (``progress``: None shows the progress of steps longer than 2 s, True from
    the start, False never).

    Raises
    ------
    DataValidationError
        When the calibration end does not lie inside the data's date range
        (on or after the first purchase day and before the observation end),
        or the log breaks a validation rule.
    """
    _, F, _ = _pyspark()
    unit_days = days_per_unit(time_unit)
    cal_day = _day_of(calibration_end)
    spark = spark or get_spark()
    with _nanos_as_long(spark, source), polled("calibration/holdout summary (Spark)", progress) as step:
        run = _job_runner(step, spark)
        prep = _prepare(
            source, spark, customer_id=customer_id, date=date, amount=amount, date_format=date_format,
            observation_end=observation_end, negative_amounts=negative_amounts, duplicates=duplicates,
            after_observation_end=after_observation_end, file_format=file_format, run=run,
            lim=limits(encoding, max_abs_amount, min_date, max_date, implausible_dates),
        )
        obs_day = _day_of(observation_end) if observation_end is not None else prep.last_day
        if not (prep.first_day <= cal_day < obs_day):
            check_calibration_end(_date_of(cal_day), _date_of(prep.first_day), _date_of(obs_day),
                                  prep.n_rows if prep.n_rows is not None else run(prep.rows.count))
        daily = _daily(prep).filter(F.col(_DAY) <= F.lit(obs_day))
        in_cal = F.col(_DAY) <= F.lit(cal_day)
        hold = ~in_cal
        aggs = [
            F.min(F.when(in_cal, F.col(_DAY))).alias("first"),
            F.max(F.when(in_cal, F.col(_DAY))).alias("last"),
            F.count(F.when(in_cal, 1)).alias("n_days"),
            F.count(F.when(hold, 1)).alias("x_star"),
        ]
        if prep.has_amount:
            aggs += [
                F.sum(F.when(in_cal, F.col(_AMT))).alias("total"),
                # the customer's first day overall is the first calibration day
                F.expr(f"min_by({_AMT}, {_DAY})").alias("first_amount"),
                F.sum(F.when(hold, F.col(_AMT))).alias("holdout_spend"),
            ]
        per_customer = (
            daily.groupBy(F.col(_CID).alias("cid")).agg(*aggs).filter(F.col("n_days") > 0)
        )
        compact = _collect(per_customer, run)
    out = _finish(compact, cal_day, unit_days, prep.has_amount)
    x_star = compact["x_star"].to_numpy(dtype=np.int64)
    out["x_star"] = x_star.astype(float)
    if prep.has_amount:
        spend = compact["holdout_spend"].fillna(0.0).to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["m_x_star"] = np.where(x_star > 0, spend / np.where(x_star > 0, x_star, 1), 0.0)
        out["holdout_spend"] = spend
    out["t_star"] = (obs_day - cal_day) / unit_days
    return out


def _direct(fn):
    return fn()


def _job_runner(step, spark):
    """Run Spark actions through ``step`` (:class:`helpers.progress.polled`).

    The action runs in a :class:`pyspark.InheritableThread` (the caller's job group and other local
    properties carry over) with a job tag of its own; the calling thread shows the completed / total
    tasks of the active stages and cancels the tagged jobs on Ctrl-C.  Spark Connect sessions (no
    ``SparkContext`` on the client) run the actions directly, without progress.
    """
    if step.channel is None:
        return _direct
    try:
        sc = spark.sparkContext
        tracker = sc.statusTracker()
    except Exception:  # noqa: BLE001 - Spark Connect: no SparkContext here
        return _direct
    from pyspark import InheritableThread  # noqa: PLC0415

    def percent():
        done = total = 0
        for stage in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage)
            if info is not None:
                done += info.numCompletedTasks
                total += info.numTasks
        return 100.0 * done / total if total else None

    def run(action):
        tag = f"clv-lab-{os.getpid()}-{uuid.uuid4().hex[:12]}"

        def tagged():
            sc.addJobTag(tag)
            try:
                return action()
            finally:
                sc.removeJobTag(tag)

        return step.run(tagged, percent, lambda: sc.cancelJobsWithTag(tag), thread=InheritableThread)

    return run


@contextlib.contextmanager
def _nanos_as_long(spark, source):
    """Let Spark read pandas-written Parquet files with nanosecond timestamps (as longs).

    Only switched on (for the duration of the call) when the source is local
    Parquet with a nanosecond column; Spark rejects such files otherwise.
    """
    key = "spark.sql.legacy.parquet.nanosAsLong"
    needed = False
    if isinstance(source, (str, Path)) and not _is_uri(str(source)):
        try:
            files = [f for f in resolve_files(_local(str(source))) if f.suffix.lower() in {".parquet", ".pq"}]
        except FileNotFoundError:
            files = []
        needed = bool(files) and bool(_nanos_columns(files))
    if not needed:
        yield
        return
    previous = spark.conf.get(key, None)
    spark.conf.set(key, "true")
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)
