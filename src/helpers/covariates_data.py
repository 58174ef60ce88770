"""Covariate tables: load, validate and encode the customer attributes a configuration names.

A configuration's ``data.covariates`` section (:class:`helpers.config.CovariatesSpec`)
names up to two tables:

``static``
    one row per customer: the id column and covariate columns (gender,
    acquisition channel, region, ...);
``dynamic``
    one row per customer per period, with the period's start day (``date``)
    and time-varying covariates (a season flag, a promotion, ...); the
    periods (``period``: a day, a week or a calendar month) of every customer
    must cover the observation window from the customer's first purchase to
    the observation end, without gaps.

and which columns go to which process (``purchase``, ``attrition``,
``spend``).  A listed column found in the static table is a static
covariate; one found only in the dynamic table is time-varying (only the
time-varying Pareto/NBD uses it; the dynamic model gets the static covariates
as constant over the periods).  A column in both tables is taken from the
static one.

Validation is as strict as the transaction log's (:mod:`helpers.data`; the
rules are in its one table, :data:`helpers.data.RULES`, named ``cov_*``): a
broken rule raises :class:`helpers.data.DataValidationError` naming the
column, the rule, the count and up to five example rows.  The rules, in the
order they are checked: required columns present; ids not null; one row per
customer (static) or per customer and period (dynamic); every customer of the
log has covariates; rows for customers who are not in the log excluded and
counted (``unknown_customers: exclude``, default) or an error; no missing
value; numeric values in a column that is not declared categorical; finite
values; a categorical column's reference level is one of its levels; no
constant column (among the customers of the log); dynamic: period start dates
parse, lie on one grid of the period length, have no gaps and cover every
customer's observation window.

Categorical columns (``categorical: {Channel: {reference: store}}``) become
one dummy per level except the reference, named ``Channel[web]``; without a
stated reference the most frequent level is the reference (ties: the first
level in sorted order), and :attr:`CovariateData.references` says which and
why.  The pre-flight (:func:`helpers.preflight.preflight`) runs
:func:`load_covariates` before any kernel starts, so a broken table ends a
run with exit code 3 like a broken log.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .data import ID_WHITESPACE, MAX_EXAMPLES, _read_raw, _text_missing, date_fmt_text, rule_error

__all__ = ["CovariateData", "load_covariates", "covariates_for_config", "PROCESSES", "dummy_name"]

#: The processes covariates can act on.
PROCESSES = ("purchase", "attrition", "spend")

_PERIOD_TEXT = {"D": "days", "W": "weeks (7 days)", "M": "calendar months"}


def dummy_name(column: str, level: Any) -> str:
    """The name of the dummy of ``level`` of a categorical column: ``Channel[web]``."""
    return f"{column}[{level}]"


@dataclass
class CovariateData:
    """Validated, encoded covariates of the customers of a log.

    Attributes
    ----------
    static : DataFrame or None
        One row per customer of the log (index ``customer_id``, in the order
        of the customers given to :func:`load_covariates`), numeric columns:
        the numeric covariates and the dummies of the categorical ones.
    dynamic : DataFrame or None
        One row per customer and period (columns ``customer_id``,
        ``period_start`` and every covariate of the time-varying model:
        the time-varying columns and the static ones repeated over the periods),
        sorted by customer and period.
    processes : dict
        Process -> the static model's covariate columns (dummies expanded);
        a process with none is left out.
    dynamic_processes : dict
        Process -> the time-varying model's columns (time-varying and static).
    time_varying : list of str
        The columns that vary over time (from the dynamic table).
    constrain_equal : list of str
        Covariate columns (dummies expanded) whose coefficient is the same in
        the purchase and the attrition process.
    penalizer : float
        L2 penalty on the coefficients.
    references : dict
        Categorical column -> ``{"reference", "chosen", "levels", "dummies", "counts"}``;
        ``chosen`` is ``"configured"`` or ``"most frequent"``.
    quality : DataFrame
        ``check``, ``rows``, ``action``: what validation counted and did.
    period : str or None
        The dynamic table's period length (``"D"``, ``"W"``, ``"M"``).
    sha256 : dict
        Table kind -> SHA-256 of its file.
    sources : dict
        Table kind -> file path.
    """

    static: pd.DataFrame | None
    dynamic: pd.DataFrame | None
    processes: dict[str, list[str]]
    dynamic_processes: dict[str, list[str]]
    time_varying: list[str]
    constrain_equal: list[str]
    penalizer: float
    references: dict[str, dict]
    quality: pd.DataFrame
    period: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def Z(self, process: str, index: pd.Index | None = None) -> pd.DataFrame | None:
        """The static model's covariate matrix of ``process`` (None when it has none), optionally on ``index``.

        Raises
        ------
        KeyError
            ``index`` holds customers without covariates.
        """
        if process not in PROCESSES:
            raise ValueError(f"process must be one of {PROCESSES}, got {process!r}")
        cols = self.processes.get(process)
        if not cols or self.static is None:
            return None
        Z = self.static[cols]
        if index is None:
            return Z.copy()
        missing = pd.Index(index).difference(Z.index)
        if len(missing):
            raise KeyError(f"{len(missing):,} customer(s) have no covariates, e.g. {list(missing[:5])}")
        return Z.loc[index].copy()

    @property
    def covariates(self) -> list[str]:
        """Every static model column, in process order (purchase, attrition, spend), once."""
        return list(dict.fromkeys(c for p in PROCESSES for c in self.processes.get(p, [])))

    def groups(self) -> pd.DataFrame:
        """Per customer, the level of each categorical column and the value of each numeric one (static table),
        as text labels for grouping (``Channel = web``)."""
        return self._groups.copy() if self._groups is not None else pd.DataFrame()

    _groups: pd.DataFrame | None = None


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------

def _source(path: Path) -> str:
    """The table's path as results record it: relative to the project when inside it (the same record on
    every clone), else as configured."""
    try:
        return Path(path).resolve().relative_to(Path(__file__).resolve().parents[2]).as_posix()
    except ValueError:
        return str(path)


def _open_table(spec: Mapping, kind: str, default_id: str, sha: dict, sources: dict):
    """Read the ``kind`` ("static" or "dynamic") covariate table of ``spec``; record its SHA-256 and
    source; return the raw table, its name for messages and its customer id column."""
    path = Path(spec["path"])
    raw = _read_table(path, spec.get("encoding", "utf-8"), kind)
    sha[kind], sources[kind] = _sha256(path), _source(path)
    return raw, f"{kind} covariate table '{path.name}'", spec.get("customer_id") or default_id


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _read_table(path: Path, encoding: str, kind: str) -> pd.DataFrame:
    """A covariate table as read: CSV (also ``.csv.gz``) as text, or Parquet."""
    if not path.exists():
        from .config import ConfigError  # noqa: PLC0415  (config imports data; no cycle at call time)

        raise ConfigError(f"data.covariates.{kind}.path: covariate table not found: {path}",
                          key=f"data.covariates.{kind}.path")
    if path.suffix.lower() in (".gz", ".bz2", ".zip", ".xz"):
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding=encoding,
                           index_col=False)
    return _read_raw([path], encoding)


def _examples(raw: pd.DataFrame, mask, cols: list[str]) -> pd.DataFrame:
    ex = raw.loc[np.asarray(mask, dtype=bool), cols].head(MAX_EXAMPLES)
    ex.index.name = "row"
    return ex


def _id_examples(ids, what: str = "customer_id") -> pd.DataFrame:
    ids = list(ids)[:MAX_EXAMPLES]
    return pd.DataFrame({what: ids}, index=pd.RangeIndex(len(ids), name="example"))


# ---------------------------------------------------------------------------
# the rules
# ---------------------------------------------------------------------------

def _check_ids(raw: pd.DataFrame, id_col: str, table: str) -> pd.Series:
    null = _text_missing(raw[id_col])
    if null.any():
        raise rule_error("cov_null_id", int(null.sum()), _examples(raw, null, [id_col]), column=id_col, table=table)
    return raw[id_col].astype(str).str.strip(ID_WHITESPACE)


def _check_customers(ids: pd.Series, customers: pd.Index, id_col: str, table: str, policy: str,
                     raw: pd.DataFrame, quality: list) -> np.ndarray:
    """Rows of known customers (mask); errors for customers without rows and (policy) unknown customers."""
    present = pd.Index(ids.unique())
    lacking = customers.difference(present, sort=False)
    if len(lacking):
        raise rule_error("cov_missing_customers", len(lacking), _id_examples(lacking), column=id_col, table=table,
                         unit="customer")
    known = ids.isin(customers).to_numpy()
    n_unknown = int((~known).sum())
    if n_unknown and policy == "error":
        raise rule_error("cov_unknown_customers", n_unknown, _examples(raw, ~known, [id_col]), column=id_col,
                         table=table)
    quality.append((f"{table}: rows for customers not in the log", n_unknown, "excluded"))
    return known


def _numeric(raw: pd.DataFrame, col: str, id_col: str, table: str) -> pd.Series:
    values = raw[col]
    nan = _text_missing(values)
    if nan.any():
        raise rule_error("cov_nan", int(nan.sum()), _examples(raw, nan, [id_col, col]), column=col, table=table)
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        num = pd.to_numeric(values.astype(str).str.strip(ID_WHITESPACE), errors="coerce")
        bad = num.isna().to_numpy()
        if bad.any():
            raise rule_error("cov_non_numeric", int(bad.sum()), _examples(raw, bad, [id_col, col]), column=col,
                             table=table)
        values = num
    out = values.astype(float)
    inf = ~np.isfinite(out.to_numpy())
    if inf.any():
        raise rule_error("cov_inf", int(inf.sum()), _examples(raw, inf, [id_col, col]), column=col, table=table)
    return out


def _check_not_constant(values: pd.Series, col: str, id_col: str, table: str, raw: pd.DataFrame) -> None:
    if values.nunique(dropna=False) <= 1:
        shown = values.iloc[0] if len(values) else "no value"
        shown = repr(shown) if isinstance(shown, str) else f"{float(shown):g}"
        raise rule_error("cov_constant", len(values), _examples(raw, raw.index.isin(values.index), [id_col, col]),
                         column=col, table=table, value=shown)


def _categorical(raw: pd.DataFrame, col: str, id_col: str, table: str, reference, used: pd.Index
                 ) -> tuple[pd.DataFrame, dict]:
    """Dummies of a categorical column on the rows ``used`` and how its reference level was chosen."""
    values = raw[col]
    nan = _text_missing(values)
    if nan.any():
        raise rule_error("cov_nan", int(nan.sum()), _examples(raw, nan, [id_col, col]), column=col, table=table)
    text = values.astype(str).str.strip(ID_WHITESPACE).loc[used]
    _check_not_constant(text, col, id_col, table, raw)
    counts = text.value_counts()
    levels = sorted(counts.index, key=lambda v: (not _is_number(v), _num_key(v), v))
    if reference is not None:
        ref = str(reference).strip(ID_WHITESPACE)
        if ref not in counts.index:
            raise rule_error("cov_reference", len(text), _examples(raw, raw.index.isin(used), [id_col, col]),
                             column=col, table=table, reference=reference, levels=", ".join(map(repr, levels)))
        chosen = "configured"
    else:
        top = counts.max()
        ref = next(v for v in levels if counts[v] == top)
        chosen = "most frequent"
    dummies = {dummy_name(col, v): (text == v).astype(float) for v in levels if v != ref}
    info = {"reference": ref, "chosen": chosen, "levels": levels, "dummies": list(dummies),
            "counts": {v: int(counts[v]) for v in levels}}
    return pd.DataFrame(dummies, index=text.index), info


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _num_key(v: str) -> float:
    return float(v) if _is_number(v) else 0.0


def _period_index(dates: pd.Series, anchor: pd.Timestamp, period: str) -> tuple[np.ndarray, np.ndarray]:
    """(period number from ``anchor``, whether the date is a period start) for each date."""
    if period == "M":
        months = (dates.dt.year - anchor.year) * 12 + (dates.dt.month - anchor.month)
        return months.to_numpy(np.int64), (dates.dt.day == anchor.day).to_numpy()
    step = 7 if period == "W" else 1
    days = ((dates - anchor) // pd.Timedelta(days=1)).to_numpy(np.int64)
    return np.floor_divide(days, step), (days % step == 0)


def _period_of(day: pd.Series, anchor: pd.Timestamp, period: str) -> np.ndarray:
    """The number of the period (from ``anchor``) that contains each day."""
    k, on = _period_index(day, anchor, period)
    if period == "M":
        k = k - (day.dt.day < anchor.day).to_numpy().astype(np.int64)
    return k


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------

def load_covariates(spec: Mapping[str, Any], first_purchase: pd.Series, observation_end: str | pd.Timestamp,
                    default_id: str = "customer_id") -> CovariateData:
    """Load, validate and encode the covariate tables of a ``data.covariates`` section.

    Parameters
    ----------
    spec : mapping
        The ``data.covariates`` section as :func:`helpers.config.load_config`
        puts it into ``Config.data["covariates"]`` (paths absolute).
    first_purchase : Series
        Each customer's first purchase day, indexed by customer id: the
        customers of the log (the full-period summary's ``first_purchase``).
    observation_end : date
        The end of the observation window (the dynamic periods must reach it).
    default_id : str
        The id column of a table that names none (the log's, ``data.columns.customer_id``).

    Returns
    -------
    CovariateData
        Frames indexed by customer id in the order of ``first_purchase``.

    Raises
    ------
    DataValidationError
        A broken rule (see the module docstring): naming the column, the rule,
        the count and up to five example rows (or customers).
    ConfigError
        A table's file does not exist.
    """
    customers = pd.Index(first_purchase.index.astype(str), name="customer_id")
    first = pd.Series(pd.to_datetime(first_purchase.to_numpy()), index=customers).dt.normalize()
    obs_end = pd.Timestamp(observation_end).normalize()
    listed = list(dict.fromkeys([*spec.get("purchase", []), *spec.get("attrition", []), *spec.get("spend", [])]))
    categorical = {c: (v or {}).get("reference") for c, v in (spec.get("categorical") or {}).items()}
    policy = spec.get("unknown_customers", "exclude")
    quality: list[tuple] = []
    sha, sources = {}, {}

    static = dynamic = groups = None
    static_cols: list[str] = []
    references: dict[str, dict] = {}
    encoded: dict[str, list[str]] = {}   # original column -> model columns

    st = spec.get("static")
    if st:
        raw, table, id_col = _open_table(st, "static", default_id, sha, sources)
        static_cols = [c for c in listed if c in raw.columns]
        # a listed column the static table lacks is an error, unless a dynamic table may hold it (checked there)
        missing = [c for c in [id_col] + ([] if spec.get("dynamic") else listed) if c not in raw.columns]
        if missing:
            raise rule_error("cov_missing_column", len(raw), column=missing[0], table=table, missing=missing,
                             present=list(raw.columns))
        ids = _check_ids(raw, id_col, table)
        dup = ids.duplicated(keep=False).to_numpy()
        if dup.any():
            raise rule_error("cov_duplicate_customer", int(ids[dup].nunique()), _examples(raw, dup, [id_col]),
                             column=id_col, table=table, unit="customer")
        known = _check_customers(ids, customers, id_col, table, policy, raw, quality)
        raw = raw.loc[known]
        ids = ids.loc[known]
        by_id = pd.Series(raw.index, index=ids.to_numpy())
        rows = by_id.loc[customers].to_numpy()      # row of each customer, in the customers' order
        cols: dict[str, pd.Series] = {}
        labels: dict[str, pd.Series] = {}
        for c in static_cols:
            if c in categorical:
                d, info = _categorical(raw, c, id_col, table, categorical[c], raw.index)
                references[c] = info
                for name in d.columns:
                    cols[name] = d[name]
                encoded[c] = list(d.columns)
                labels[c] = raw[c].astype(str).str.strip(ID_WHITESPACE)
            else:
                v = _numeric(raw, c, id_col, table)
                _check_not_constant(v, c, id_col, table, raw)
                cols[c] = v
                encoded[c] = [c]
                labels[c] = v
        static = pd.DataFrame({k: v.loc[rows].to_numpy(float) for k, v in cols.items()}, index=customers)
        groups = pd.DataFrame({k: v.loc[rows].to_numpy() for k, v in labels.items()}, index=customers)
        quality.append((f"{table}: customers with covariates", len(customers), ""))

    time_varying: list[str] = []
    period = None
    dy = spec.get("dynamic")
    if dy:
        raw, table, id_col = _open_table(dy, "dynamic", default_id, sha, sources)
        date_col = dy.get("date", "date")
        period = dy.get("period", "W")
        time_varying = [c for c in listed if c not in static_cols]
        needed = [id_col, date_col] + time_varying
        missing = [c for c in needed if c not in raw.columns]
        if missing:
            raise rule_error("cov_missing_column", len(raw), column=missing[0], table=table, missing=missing,
                             present=list(raw.columns))
        ids = _check_ids(raw, id_col, table)
        d_raw = raw[date_col]
        null = _text_missing(d_raw)
        if null.any():
            raise rule_error("cov_null_date", int(null.sum()), _examples(raw, null, [id_col, date_col]),
                             column=date_col, table=table)
        dates = pd.to_datetime(d_raw.astype(str).str.strip(ID_WHITESPACE), format=dy.get("date_format"),
                               errors="coerce")
        bad = dates.isna().to_numpy()
        if bad.any():
            raise rule_error("cov_bad_date", int(bad.sum()), _examples(raw, bad, [id_col, date_col]), column=date_col,
                             table=table, fmt=date_fmt_text(dy.get("date_format")))
        dates = dates.dt.normalize()
        dup = pd.DataFrame({"i": ids, "d": dates}).duplicated(keep=False).to_numpy()
        if dup.any():
            raise rule_error("cov_duplicate_period", int(dup.sum()), _examples(raw, dup, [id_col, date_col]),
                             column=date_col, table=table)
        known = _check_customers(ids, customers, id_col, table, policy, raw, quality)
        raw, ids, dates = raw.loc[known], ids.loc[known], dates.loc[known]
        anchor = dates.min()
        k, on_grid = _period_index(dates, anchor, period)
        if not on_grid.all():
            raise rule_error("cov_off_grid", int((~on_grid).sum()), _examples(raw, ~on_grid, [id_col, date_col]),
                             column=date_col, table=table, period_text=_PERIOD_TEXT[period],
                             anchor=anchor.date(), period=period)
        per = pd.DataFrame({"k": k, "id": ids.to_numpy()}).groupby("id")["k"].agg(["min", "max", "count"])
        per = per.reindex(customers)
        gaps = per.index[(per["max"] - per["min"] + 1 != per["count"]).to_numpy()]
        if len(gaps):
            ex = per.loc[gaps[:MAX_EXAMPLES]]
            ex = pd.DataFrame({"periods present": ex["count"].astype(int),
                               "periods from first to last": (ex["max"] - ex["min"] + 1).astype(int)})
            ex.index.name = "customer_id"
            raise rule_error("cov_gap", len(gaps), ex, column=date_col, table=table, unit="customer")
        start_k = pd.Series(_period_of(first.reset_index(drop=True), anchor, period), index=customers)
        late = per.index[(per["min"] > start_k).to_numpy()]
        if len(late):
            ex = pd.DataFrame({"first purchase": first.loc[late[:MAX_EXAMPLES]].dt.date,
                               "first period start": [dates[ids == c].min().date() for c in late[:MAX_EXAMPLES]]},
                              index=pd.Index(late[:MAX_EXAMPLES], name="customer_id"))
            raise rule_error("cov_late_start", len(late), ex, column=date_col, table=table, unit="customer")
        end_k = int(_period_of(pd.Series([obs_end]), anchor, period)[0])
        early = per.index[(per["max"] < end_k).to_numpy()]
        if len(early):
            ex = pd.DataFrame({"last period start": [dates[ids == c].max().date() for c in early[:MAX_EXAMPLES]]},
                              index=pd.Index(early[:MAX_EXAMPLES], name="customer_id"))
            raise rule_error("cov_early_end", len(early), ex, column=date_col, table=table, unit="customer",
                             end=obs_end.date())
        frame = pd.DataFrame({"customer_id": ids.to_numpy(), "period_start": dates.to_numpy()}, index=raw.index)
        for c in time_varying:
            if c in categorical:
                d, info = _categorical(raw, c, id_col, table, categorical[c], raw.index)
                references[c] = info
                encoded[c] = list(d.columns)
                for name in d.columns:
                    frame[name] = d[name].to_numpy(float)
            else:
                v = _numeric(raw, c, id_col, table)
                _check_not_constant(v, c, id_col, table, raw)
                frame[c] = v.to_numpy(float)
                encoded[c] = [c]
        if static is not None:
            extra = static.reindex(frame["customer_id"].to_numpy())
            for c in static.columns:
                frame[c] = extra[c].to_numpy()
        order = {c: i for i, c in enumerate(customers)}
        frame = frame.assign(_o=frame["customer_id"].map(order)).sort_values(["_o", "period_start"])
        dynamic = frame.drop(columns="_o").reset_index(drop=True)
        quality.append((f"{table}: rows (customer and period) used", len(dynamic), ""))

    def expand(cols):
        return [m for c in cols for m in encoded.get(c, [])]

    processes, dynamic_processes = {}, {}
    for p in PROCESSES:
        names = list(spec.get(p, []))
        st_cols = expand([c for c in names if c in static_cols])
        if st_cols:
            processes[p] = st_cols
        if dynamic is not None and names:
            dynamic_processes[p] = expand(names)
    constrain = expand(spec.get("constrain_equal", []))
    q = pd.DataFrame(quality, columns=["check", "rows", "action"])
    q["rows"] = q["rows"].astype("Int64")
    out = CovariateData(static=static, dynamic=dynamic, processes=processes, dynamic_processes=dynamic_processes,
                        time_varying=[m for c in time_varying for m in encoded.get(c, [])],
                        constrain_equal=constrain, penalizer=float(spec.get("penalizer", 0.0)),
                        references=references, quality=q, period=period, sha256=sha, sources=sources)
    out._groups = groups
    return out


def covariates_for_config(cfg, first_purchase: pd.Series, observation_end) -> CovariateData | None:
    """:func:`load_covariates` on a configuration's ``data.covariates`` (None when it names none)."""
    spec = cfg.data.get("covariates")
    if not spec:
        return None
    return load_covariates(spec, first_purchase, observation_end, default_id=cfg.data["columns"]["customer_id"])
