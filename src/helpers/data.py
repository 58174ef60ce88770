"""Load and validate transaction logs.

A transaction log is one row per purchase with a customer identifier, a date
and (optionally) an amount.  :func:`load_transactions` reads a CSV or Parquet
file (or a DataFrame), validates it *before anything else*, and returns the
clean purchases together with a data-quality table that every report shows.

Validation never fails silently and never drops silently:

* a rule that makes the data unusable raises :class:`DataValidationError`
  naming the column, the rule, how many rows break it and up to five example
  rows;
* a rule whose policy is to exclude or set aside rows (duplicates, rows after
  the observation end, negative amounts treated as returns) counts those rows
  in the quality table.
"""

from __future__ import annotations

import glob as _glob
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "DataValidationError",
    "TransactionData",
    "load_transactions",
    "file_sha256",
    "resolve_files",
    "check_policies",
    "POLICIES",
]

NegativePolicy = Literal["error", "returns"]
DuplicatePolicy = Literal["keep", "drop", "error"]
AfterEndPolicy = Literal["exclude", "error"]

MAX_EXAMPLES = 5


class DataValidationError(ValueError):
    """A transaction log broke a validation rule.

    Attributes
    ----------
    column : str or None
        The column the rule applies to (``None`` for whole-log rules).
    rule : str
        A short statement of the rule that was broken.
    n_rows : int
        How many rows break it.
    examples : pandas.DataFrame
        Up to five offending rows, as read (index = 0-based row number).
    """

    def __init__(self, column, rule, n_rows, examples=None, hint=""):
        self.column = column
        self.rule = rule
        self.n_rows = int(n_rows)
        self.examples = examples if examples is not None else pd.DataFrame()
        where = f"column '{column}'" if column else "transaction log"
        msg = f"{where}: {rule} ({self.n_rows:,} row{'s' if self.n_rows != 1 else ''} affected)"
        if len(self.examples):
            msg += f"\nfirst {len(self.examples)} example row(s) (0-based row number):\n"
            msg += self.examples.to_string()
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)


@dataclass
class TransactionData:
    """Clean transactions plus what validation did to them.

    Attributes
    ----------
    transactions : pandas.DataFrame
        Purchases with columns ``customer_id`` (str), ``date`` (datetime64)
        and, when the log has amounts, ``amount`` (float, >= 0).
    returns : pandas.DataFrame
        Rows with negative amounts when ``negative_amounts="returns"``
        (same columns, amount < 0); empty otherwise.
    quality : pandas.DataFrame
        The data-quality table: one row per check with the number of rows
        concerned and the action taken.
    sha256 : str
        SHA-256 of the input file(s), or of the DataFrame's content.
    has_amount : bool
        Whether the log carries amounts (frequency models work without).
    """

    transactions: pd.DataFrame
    returns: pd.DataFrame
    quality: pd.DataFrame
    sha256: str
    has_amount: bool
    source: str = ""
    counts: dict = field(default_factory=dict)

    def quality_table(self) -> pd.DataFrame:
        """The data-quality table formatted for a report (check as index, counts with separators)."""
        t = self.quality.set_index("check")
        t["rows"] = [f"{v:,}" if pd.notna(v) else "" for v in t["rows"]]
        return t

    @property
    def n_customers(self) -> int:
        return int(self.transactions["customer_id"].nunique())

    @property
    def first_date(self) -> pd.Timestamp:
        return self.transactions["date"].min()

    @property
    def last_date(self) -> pd.Timestamp:
        return self.transactions["date"].max()


def resolve_files(source: str | Path) -> list[Path]:
    """Expand a file, a directory (of Parquet/CSV files) or a glob pattern."""
    text = str(source)
    p = Path(text)
    if p.is_dir():
        files = sorted(
            f for f in p.iterdir() if f.suffix.lower() in {".parquet", ".pq", ".csv"}
        )
    elif any(ch in text for ch in "*?["):
        files = sorted(Path(f) for f in _glob.glob(text))
    else:
        files = [p]
    if not files:
        raise FileNotFoundError(f"no transaction files found at {text!r}")
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"transaction log not found: {f}")
    return files


def file_sha256(source: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, or of the concatenated files of a directory/glob."""
    h = hashlib.sha256()
    for f in resolve_files(source):
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def _frame_sha256(df: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def _read_raw(files: list[Path], columns: list[str]) -> pd.DataFrame:
    frames = []
    for f in files:
        if f.suffix.lower() in {".parquet", ".pq"}:
            frames.append(pd.read_parquet(f))
        else:
            # everything as text: parsing (and its failures) happens in validation
            frames.append(
                pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[""])
            )
    raw = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return raw


def _examples(raw: pd.DataFrame, mask: np.ndarray | pd.Series, cols: list[str]) -> pd.DataFrame:
    mask = np.asarray(mask, dtype=bool)
    ex = raw.loc[mask, cols].head(MAX_EXAMPLES)
    ex.index.name = "row"
    return ex


POLICIES = {
    "negative_amounts": ("error", "returns"),
    "duplicates": ("keep", "drop", "error"),
    "after_observation_end": ("exclude", "error"),
}


def check_policies(negative_amounts: str = "error", duplicates: str = "keep",
                   after_observation_end: str = "exclude") -> None:
    """Raise ValueError for a validation policy that is not one of :data:`POLICIES`."""
    given = {"negative_amounts": negative_amounts, "duplicates": duplicates,
             "after_observation_end": after_observation_end}
    for name, value in given.items():
        if value not in POLICIES[name]:
            raise ValueError(f"{name} must be one of {POLICIES[name]}, got {value!r}")


def load_transactions(
    source: str | Path | pd.DataFrame,
    *,
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    date_format: str | None = None,
    observation_end: str | pd.Timestamp | None = None,
    negative_amounts: NegativePolicy = "error",
    duplicates: DuplicatePolicy = "keep",
    after_observation_end: AfterEndPolicy = "exclude",
) -> TransactionData:
    """Read a transaction log, validate it and return clean purchases.

    Parameters
    ----------
    source : path, glob, directory or DataFrame
        CSV or Parquet file(s), or an in-memory DataFrame.
    customer_id, date, amount : str
        Column names in the log.  ``amount=None`` reads a log without amounts
        (enough for the frequency models BG/NBD, MBG/NBD, Pareto/NBD).
    date_format : str, optional
        ``strftime`` format of the date column (e.g. ``"%Y%m%d"``); inferred
        when omitted.
    observation_end : date, optional
        End of the observation window.  Rows after it are excluded and
        counted (``after_observation_end="exclude"``) or are an error.
    negative_amounts : {"error", "returns"}
        Reject negative amounts (default) or set them aside as returns.
    duplicates : {"keep", "drop", "error"}
        What to do with exact duplicate rows; they are always counted.
    after_observation_end : {"exclude", "error"}
        Policy for rows dated after ``observation_end``.

    Returns
    -------
    TransactionData

    Raises
    ------
    DataValidationError
        Missing columns, an empty log, null ids or dates, unparseable dates,
        non-numeric or missing amounts, negative amounts (unless treated as
        returns), duplicates (with ``duplicates="error"``) or rows after the
        observation end (with ``after_observation_end="error"``).
    """
    check_policies(negative_amounts, duplicates, after_observation_end)

    if isinstance(source, pd.DataFrame):
        raw = source.reset_index(drop=True)
        label = "<DataFrame>"
        sha = None
    else:
        files = resolve_files(source)
        raw = _read_raw(files, [])
        label = str(source)
        sha = file_sha256(source)

    has_amount = amount is not None
    wanted = [customer_id, date] + ([amount] if has_amount else [])

    # --- whole-log rules -------------------------------------------------
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise DataValidationError(
            missing[0],
            f"required column missing (missing: {missing}; columns present: {list(raw.columns)})",
            len(raw),
            hint="Map your column names in the config's data.columns section.",
        )
    if len(raw) == 0:
        raise DataValidationError(None, "the log is empty: at least one transaction is required", 0)

    raw = raw[wanted].copy()
    n_read = len(raw)

    # --- customer id -------------------------------------------------------
    ids = raw[customer_id]
    null_id = ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy()
    if null_id.any():
        raise DataValidationError(
            customer_id, "customer id must not be null or empty", null_id.sum(),
            _examples(raw, null_id, wanted),
        )

    # --- date --------------------------------------------------------------
    d_raw = raw[date]
    null_date = d_raw.isna().to_numpy()
    if null_date.any():
        raise DataValidationError(
            date, "date must not be null", null_date.sum(), _examples(raw, null_date, wanted)
        )
    if pd.api.types.is_datetime64_any_dtype(d_raw):
        dates = d_raw.dt.tz_localize(None) if d_raw.dt.tz is not None else d_raw
    else:
        dates = pd.to_datetime(d_raw.astype(str), format=date_format, errors="coerce")
        bad = dates.isna().to_numpy()
        if bad.any():
            fmt = f"format {date_format!r}" if date_format else "an inferable date format"
            raise DataValidationError(
                date, f"date must parse with {fmt}", bad.sum(), _examples(raw, bad, wanted),
                hint="Set data.date_format in the config (e.g. '%Y-%m-%d').",
            )
    dates = dates.astype("datetime64[ns]")

    # --- amount ------------------------------------------------------------
    amounts = None
    if has_amount:
        a_raw = raw[amount]
        nan_amount = a_raw.isna().to_numpy()
        if nan_amount.any():
            raise DataValidationError(
                amount, "amount must not be missing (NaN/empty)", nan_amount.sum(),
                _examples(raw, nan_amount, wanted),
            )
        if pd.api.types.is_numeric_dtype(a_raw) and not pd.api.types.is_bool_dtype(a_raw):
            amounts = a_raw.astype(float)
        else:
            amounts = pd.to_numeric(a_raw.astype(str).str.strip(), errors="coerce")
            non_num = amounts.isna().to_numpy()
            if non_num.any():
                raise DataValidationError(
                    amount, "amount must be numeric", non_num.sum(), _examples(raw, non_num, wanted)
                )
            amounts = amounts.astype(float)
        inf = ~np.isfinite(amounts.to_numpy())
        if inf.any():
            raise DataValidationError(
                amount, "amount must be finite", inf.sum(), _examples(raw, inf, wanted)
            )

    clean = pd.DataFrame({"customer_id": ids.astype(str).str.strip().to_numpy(), "date": dates.to_numpy()})
    if has_amount:
        clean["amount"] = amounts.to_numpy()

    rows: list[tuple[str, int, str]] = [("rows read", n_read, "")]
    keep = np.ones(n_read, dtype=bool)
    counts = {"rows_read": n_read}

    # --- exact duplicates (on the raw row as read) -------------------------
    dup = raw.duplicated(keep="first").to_numpy()
    n_dup = int(dup.sum())
    counts["duplicate_rows"] = n_dup
    if n_dup and duplicates == "error":
        raise DataValidationError(
            None, "exact duplicate rows are not allowed (duplicates: error)", n_dup,
            _examples(raw, raw.duplicated(keep=False).to_numpy(), wanted),
            hint="Set data.duplicates to 'keep' or 'drop' if duplicates are legitimate.",
        )
    if duplicates == "drop":
        keep &= ~dup
        rows.append(("exact duplicate rows", n_dup, "excluded"))
    else:
        rows.append(("exact duplicate rows", n_dup, "kept (counted as separate purchases)"))

    # --- observation end ---------------------------------------------------
    n_after = 0
    if observation_end is not None:
        obs_end = pd.Timestamp(observation_end)
        # the observation end is a day: everything on that day is inside
        after = (clean["date"] >= obs_end.normalize() + pd.Timedelta(days=1)).to_numpy()
        n_after = int(after.sum())
        if n_after and after_observation_end == "error":
            raise DataValidationError(
                date, f"date must not be after the observation end {obs_end.date()}", n_after,
                _examples(raw, after, wanted),
            )
        keep &= ~after
        rows.append((f"rows after observation end {obs_end.date()}", n_after, "excluded"))
    counts["after_observation_end"] = n_after

    # --- negative and zero amounts -----------------------------------------
    returns = clean.iloc[0:0].copy()
    if has_amount:
        neg = (clean["amount"] < 0).to_numpy()
        n_neg = int((neg & keep).sum())
        if n_neg and negative_amounts == "error":
            raise DataValidationError(
                amount, "amount must not be negative", n_neg, _examples(raw, neg & keep, wanted),
                hint="Set data.negative_amounts: returns to treat negative amounts as returns.",
            )
        returns = clean.loc[neg & keep].reset_index(drop=True)
        keep &= ~neg
        counts["returns"] = n_neg
        if negative_amounts == "returns":
            rows.append(("negative amounts (returns)", n_neg, "set aside as returns"))
        zero = (clean["amount"] == 0).to_numpy() & keep
        counts["zero_amount_rows"] = int(zero.sum())
        rows.append(
            ("zero-amount rows", int(zero.sum()), "kept as purchases; excluded from the spend model")
        )

    clean = clean.loc[keep].reset_index(drop=True)
    if len(clean) == 0:
        raise DataValidationError(
            None, "no transactions left after validation (the log is empty once exclusions apply)",
            n_read,
        )
    counts["rows_used"] = len(clean)
    rows.append(("rows used", len(clean), ""))
    n_cust = int(clean["customer_id"].nunique())
    counts["customers"] = n_cust
    rows.append(("customers", n_cust, ""))

    quality = pd.DataFrame(rows, columns=["check", "rows", "action"])
    first, last = clean["date"].min(), clean["date"].max()
    quality = pd.concat(
        [quality, pd.DataFrame([("date range", None, f"{first.date()} to {last.date()}")],
                               columns=["check", "rows", "action"])],
        ignore_index=True,
    )
    quality["rows"] = quality["rows"].astype("Int64")

    if sha is None:
        sha = _frame_sha256(raw)
    return TransactionData(
        transactions=clean, returns=returns, quality=quality, sha256=sha,
        has_amount=has_amount, source=label, counts=counts,
    )
