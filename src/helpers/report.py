"""What notebooks show and hand over: headline numbers, formatted tables, identifiers.

* **Formatting rules** (the only place they are written): counts are whole
  numbers with thousands separators (:func:`fmt_count`), money has separators
  and the currency (:func:`fmt_money`), shares are percentages
  (:func:`fmt_share`), other numbers carry at most 4 significant digits after
  the decimal point unless a format is asked for (:func:`fmt_number`).  A
  missing value (None, NaN, infinite) is never printed as ``nan``/``None``: it
  must come with a reason and renders as ``"n/a: <reason>"`` (:func:`fmt_value`,
  ``missing=``); without a reason formatting raises :class:`MissingValueError`.
* :func:`table` renders a DataFrame for a report with per-column kinds
  (count / money / share / number / text / auto), capped at ``max_rows`` rows
  with a note saying where the full table is (a CSV it writes to the run
  folder, or ``results.json``).
* **Headlines**: a notebook declares its 3-8 headline numbers once
  (:class:`Headlines` or :func:`headline` + :func:`record_results`).  The
  declaration puts the values into ``results.json`` (at their dotted keys, and
  as the list ``results["headlines"]`` that the index and ``clv-lab compare``
  read) and shows the "answer first" block (question, headline numbers,
  what they mean); :func:`prepare_report` moves that block to the top of the
  rendered report.
* :func:`record_results` shows a notebook's results and attaches them,
  machine-readable, to the cell output; the runner collects them with
  :func:`extract_results` into ``results.json`` (so a notebook never needs to
  know where its report goes, and runs the same in JupyterLab).
* :func:`prepare_report` is the render-time step: it drops progress lines
  (:mod:`helpers.progress`) and other transient outputs, moves the answer
  block to the top and appends the provenance at the end.
* :func:`pseudonymise` replaces raw customer identifiers in anything a
  report shows, unless the configuration allows raw ones.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "RESULTS_MIME",
    "HEADLINES_MIME",
    "HEADLINES_KEY",
    "PROGRESS_PREFIX",
    "TRANSIENT_METADATA",
    "KINDS",
    "MissingValueError",
    "is_missing",
    "fmt_count",
    "fmt_money",
    "fmt_share",
    "fmt_number",
    "fmt_value",
    "format_value",
    "table",
    "ReportTable",
    "Headline",
    "headline",
    "Headlines",
    "headlines_from_results",
    "record_results",
    "extract_results",
    "extract_answer",
    "prepare_report",
    "strip_transient",
    "leftovers",
    "flatten",
    "pseudonymise",
    "display_ids",
    "to_jsonable",
]

#: MIME type under which :func:`record_results` attaches the results.
RESULTS_MIME = "application/vnd.clv-lab.results+json"
#: MIME type of the "answer first" block (question, headlines, meaning) in a cell output.
HEADLINES_MIME = "application/vnd.clv-lab.headlines+json"
#: Key of the declared headlines (a list of dicts, see :meth:`Headline.to_dict`) in ``results.json``.
HEADLINES_KEY = "headlines"
#: How :mod:`helpers.progress` lines start in a notebook ("progress · bootstrap resamples: 50/50").
PROGRESS_PREFIX = "progress · "
#: Output metadata that marks a display as transient: :func:`prepare_report` drops it.
TRANSIENT_METADATA = {"clv-lab": {"transient": True}}
#: Value kinds of the formatting rules.
KINDS = ("count", "money", "share", "number", "text")
#: Significant digits of a number below 1,000 unless a format is asked for.
SIG_DIGITS = 4
#: Headlines a notebook declares (fewer is not an answer, more is not a headline).
MIN_HEADLINES, MAX_HEADLINES = 3, 8


class MissingValueError(ValueError):
    """A missing value (None, NaN, infinite) was to be shown without a reason."""


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------

def to_jsonable(obj: Any) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON types.

    Floats are rounded to 10 significant digits, so that the recorded numbers
    do not depend on the last bits of floating-point summation order; NaN and
    infinities become None.
    """
    if isinstance(obj, Headline):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, pd.Series):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x) or math.isinf(x):
            return None
        return float(f"{x:.10g}")
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, (pd.Timestamp, datetime, date)):
        return obj.isoformat()
    if isinstance(obj, pd.Period):
        return str(obj)
    return obj


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten nested results to dotted keys (``models.bgnbd.params.r``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


# ---------------------------------------------------------------------------
# Formatting rules
# ---------------------------------------------------------------------------

def is_missing(v: Any) -> bool:
    """None, NaN, NaT, pd.NA and infinities are missing values."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return not math.isfinite(float(v))
    return False


def _na(reason: str | None, what: str = "value") -> str:
    if reason is None or not str(reason).strip():
        raise MissingValueError(
            f"{what} is missing (None/NaN/infinite) and no reason was given: pass missing='why it is missing' "
            "(rendered as 'n/a: why it is missing')")
    return f"n/a: {str(reason).strip()}"


def _sign(x: float, signed: bool) -> str:
    return "-" if x < 0 else ("+" if signed and x > 0 else "")


def fmt_count(v: Any, signed: bool = False) -> str:
    """A count: a whole number with thousands separators (``7846.0`` -> ``"7,846"``).

    Raises
    ------
    ValueError
        If ``v`` is not a whole number (it is then not a count: use kind "number").
    """
    if is_missing(v):
        raise MissingValueError("a count is missing: format it with fmt_value(..., missing='why')")
    x = float(v)
    n = round(x)
    if abs(x - n) > 1e-9 * max(1.0, abs(x)):
        raise ValueError(f"count {v!r} is not a whole number: format it as kind 'number' (or round it first)")
    return f"{_sign(n, signed)}{abs(int(n)):,}"


def _is_symbol(currency: str) -> bool:
    return len(currency) == 1 and not currency.isalpha()


def fmt_money(v: Any, currency: str | None, decimals: int | None = None, signed: bool = False) -> str:
    """An amount of money with thousands separators and the currency.

    ``decimals`` defaults to 0 for amounts of 1,000 or more and 2 below;
    a currency code follows the amount (``"2,500,316 USD"``), a one-character
    symbol precedes it (``"$2,500,316"``).
    """
    if is_missing(v):
        raise MissingValueError("an amount is missing: format it with fmt_value(..., missing='why')")
    x = float(v)
    d = (0 if abs(x) >= 1000 else 2) if decimals is None else int(decimals)
    body = f"{abs(x):,.{d}f}"
    sign = _sign(x, signed) if float(body.replace(",", "")) != 0 else ""
    cur = (currency or "").strip()
    if not cur:
        return sign + body
    return f"{sign}{cur}{body}" if _is_symbol(cur) else f"{sign}{body} {cur}"


def fmt_share(v: Any, decimals: int = 1, signed: bool = False, points: bool = False) -> str:
    """A share (0..1) as a percentage (``0.2345`` -> ``"23.5%"``).

    ``points=True`` formats a difference of two shares in percentage points
    (``0.012`` -> ``"+1.2 pp"`` with ``signed``).
    """
    if is_missing(v):
        raise MissingValueError("a share is missing: format it with fmt_value(..., missing='why')")
    x = 100.0 * float(v)
    body = f"{abs(x):.{int(decimals)}f}"
    sign = _sign(x, signed) if float(body) != 0 else ""
    return f"{sign}{body} pp" if points else f"{sign}{body}%"


def fmt_number(v: Any, sig: int = SIG_DIGITS, signed: bool = False) -> str:
    """A number with at most ``sig`` significant digits after the decimal point.

    Whole numbers and numbers of 1,000 or more are shown without decimals and
    with thousands separators (``19684.0`` -> ``"19,684"``, ``41946.311`` ->
    ``"41,946"``); smaller ones are rounded to ``sig`` significant digits with
    trailing zeros dropped (``41.946311`` -> ``"41.95"``, ``0.00012345`` ->
    ``"0.0001235"``); below ``10**-sig`` they are written in scientific
    notation (``1.235e-07``).  Zero is ``"0"``.
    """
    if is_missing(v):
        raise MissingValueError("a number is missing: format it with fmt_value(..., missing='why')")
    x = float(v)
    if x == 0:
        return "0"
    a = abs(x)
    sign = _sign(x, signed)
    if a >= 1000 or (a < 1e15 and x == round(x)):
        return f"{sign}{a:,.0f}"
    if a >= 10.0 ** -sig:
        decimals = max(0, sig - 1 - math.floor(math.log10(a)))
        body = f"{a:,.{decimals}f}"
        if "." in body:
            body = body.rstrip("0").rstrip(".")
        return sign + body
    mantissa, exponent = f"{a:.{max(sig - 1, 0)}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{sign}{mantissa}e{exponent}"


def _auto_kind(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "text"
    if isinstance(v, (int, np.integer)):
        return "count"
    if isinstance(v, (float, np.floating)):
        return "number"
    return "text"


def _text(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (pd.Timestamp, datetime)):
        ts = pd.Timestamp(v)
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float):
        return fmt_number(v)
    return str(v)


def fmt_value(value: Any, kind: str = "number", *, currency: str | None = None, unit: str | None = None,
              fmt: str | None = None, missing: str | None = None, sig: int = SIG_DIGITS,
              decimals: int | None = None, signed: bool = False) -> str:
    """Format one value by its kind: the single entry point of the formatting rules.

    Parameters
    ----------
    value : any
    kind : {"count", "money", "share", "number", "text", "auto"}
        "auto" picks count for integers, number for floats, text otherwise.
    currency : str, optional
        For "money" (``unit`` is used when ``currency`` is not given).
    unit : str, optional
        Appended to counts and numbers (``"12 months"``).
    fmt : str, optional
        An explicit format, ``"{:.6f}"`` or ``".6f"``: asked-for precision.
    missing : str, optional
        Why a missing value is missing; required when ``value`` is missing.
    sig, decimals, signed
        Significant digits of numbers; decimals of money and shares; a leading
        ``+`` on positive values (changes).

    Raises
    ------
    MissingValueError
        ``value`` is missing and ``missing`` gives no reason.
    ValueError
        Unknown kind, or a count that is not a whole number.
    """
    if kind not in (*KINDS, "auto"):
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join((*KINDS, 'auto'))}")
    if is_missing(value):
        return _na(missing)
    if isinstance(value, str) and kind != "text":
        return value  # already text (e.g. a label in a numeric column): shown as is
    if fmt is not None:
        text = fmt.format(value) if "{" in fmt else format(value, fmt)
        return f"{text} {unit}" if unit and kind not in ("money", "share") else text
    if kind == "auto":
        kind = _auto_kind(value)
    if isinstance(value, (bool, np.bool_)) or kind == "text":
        return _text(value)
    if kind == "count":
        text = fmt_count(value, signed=signed)
    elif kind == "money":
        return fmt_money(value, currency if currency is not None else unit, decimals=decimals, signed=signed)
    elif kind == "share":
        return fmt_share(value, decimals=1 if decimals is None else decimals, signed=signed)
    else:
        text = fmt_number(value, sig=sig, signed=signed)
    return f"{text} {unit}" if unit else text


def format_value(v: Any) -> str:
    """Human-readable value of an undeclared result (legacy index, result tables).

    Numbers follow :func:`fmt_number` (``19684.0`` -> ``"19,684"``); a null
    in ``results.json`` renders as "n/a: not computed"; lists show at most 6 items.
    """
    if isinstance(v, list):
        return ", ".join(format_value(x) for x in v[:6]) + (" …" if len(v) > 6 else "")
    if is_missing(v):
        return _na("not computed (null in results.json)")
    return fmt_value(v, "auto")


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

@dataclass
class ReportTable:
    """A DataFrame formatted for a report (what :func:`table` returns; displays as HTML)."""

    data: pd.DataFrame          #: the values, unformatted (all rows)
    text: pd.DataFrame          #: the formatted cells of the rows shown
    note: str = ""              #: e.g. where the full table is when rows were cut
    caption: str = ""
    show_index: bool = True
    csv_path: Path | None = None

    def _repr_html_(self) -> str:
        body = self.text.to_html(escape=True, index=self.show_index, border=0, classes="dataframe clv-table")
        cap = f"<p class='clv-table-caption'><strong>{html.escape(self.caption)}</strong></p>" if self.caption else ""
        note = f"<p class='clv-table-note'><em>{html.escape(self.note)}</em></p>" if self.note else ""
        return f"<div class='clv-table-wrap'>{cap}{body}{note}</div>"

    def __repr__(self) -> str:
        out = self.text.to_string(index=self.show_index)
        return "\n".join(s for s in (self.caption, out, self.note) if s)


def _reason(missing: str | Mapping[str, str] | None, column: Any) -> str | None:
    if isinstance(missing, Mapping):
        return missing.get(column, missing.get(str(column)))
    return missing


def _format_column(values: pd.Series, kind: str, column: Any, *, currency, unit, fmt, missing, sig) -> list[str]:
    na = [is_missing(v) for v in values]
    if any(na) and _reason(missing, column) is None:
        where = [str(i) for i, m in zip(values.index, na) if m][:3]
        raise MissingValueError(
            f"column {column!r} has {sum(na)} missing value(s) (rows: {', '.join(where)}"
            f"{', …' if sum(na) > 3 else ''}) and no reason: pass missing={{{str(column)!r}: 'why'}}")
    return [fmt_value(v, kind, currency=currency, unit=unit, fmt=fmt, missing=_reason(missing, column), sig=sig)
            for v in values]


def table(df: pd.DataFrame | pd.Series, kinds: Mapping[str, str] | None = None, *, currency: str | None = None,
          units: Mapping[str, str] | None = None, fmt: Mapping[str, str] | None = None,
          missing: str | Mapping[str, str] | None = None, max_rows: int = 25, full_table: str | None = None,
          csv_dir: str | Path | None = None, name: str | None = None, caption: str = "",
          index: bool = True, sig: int = SIG_DIGITS) -> ReportTable:
    """A DataFrame formatted for a report by the formatting rules, long tables capped.

    Parameters
    ----------
    df : DataFrame or Series
    kinds : mapping column -> kind, optional
        "count", "money", "share", "number", "text" or "auto" (the default for
        columns not listed, and for the index unless its name is listed).
    currency : str, optional
        Currency of the "money" columns.
    units, fmt : mapping column -> unit / explicit format, optional
    missing : str or mapping column -> str, optional
        Why values are missing (one reason for all columns, or per column);
        a column with a missing value and no reason raises
        :class:`MissingValueError` naming the column, the count and the rows.
    max_rows : int
        Longer tables show their first ``max_rows`` rows and a note saying
        where the full table is.
    csv_dir : str or Path, optional
        Write the full table to ``csv_dir/<name>.csv`` when rows are cut
        (notebooks pass their ``export_dir``, which the runner sets to the
        notebook's run folder; an empty string means "not run by the runner").
    full_table : str, optional
        Where the full table is otherwise (e.g. ``"results.json, key
        segments.sensitivity"``).
    name : str, optional
        File name of the CSV (required with ``csv_dir``).

    Raises
    ------
    ValueError
        Rows would be cut but neither ``csv_dir`` nor ``full_table`` says
        where the full table is.
    """
    data = df.to_frame() if isinstance(df, pd.Series) else df
    kinds = dict(kinds or {})
    unknown = set(kinds) - {str(c) for c in data.columns} - {str(data.index.name)}
    if unknown:
        raise ValueError(f"kinds name columns that the table does not have: {sorted(unknown)} "
                         f"(columns: {[str(c) for c in data.columns]})")
    n = len(data)
    shown = data.iloc[:max_rows] if n > max_rows else data
    note, csv_path = "", None
    if n > max_rows:
        if csv_dir is not None:
            if not name:
                raise ValueError("table(): a capped table written to csv_dir needs name= (the CSV's file name)")
            if str(csv_dir):
                csv_path = Path(csv_dir) / f"{name}.csv"
                csv_path.parent.mkdir(parents=True, exist_ok=True)
                data.to_csv(csv_path)
                where = f"{csv_path.name} in the run folder"
            else:
                where = (f"{name}.csv, written to the run folder when the notebook runs under clv-lab run "
                         "(export_dir is empty here)")
        elif full_table:
            where = full_table
        else:
            raise ValueError(
                f"table {name or ''!s} has {n:,} rows, more than max_rows={max_rows}: say where the full table is "
                "(full_table='results.json, key …') or pass csv_dir=export_dir and name= to write it")
        note = f"Showing the first {max_rows} of {n:,} rows; the full table: {where}."
    cols = {}
    for c in shown.columns:
        key = str(c)
        cols[c] = _format_column(shown[c], kinds.get(key, "auto"), c, currency=currency,
                                 unit=(units or {}).get(key), fmt=(fmt or {}).get(key), missing=missing, sig=sig)
    text = pd.DataFrame(cols, index=shown.index, columns=shown.columns)
    if index:
        iname = str(data.index.name) if data.index.name is not None else None
        idx = _format_column(pd.Series(shown.index, index=shown.index), kinds.get(iname, "text") if iname else "text",
                             iname or "index", currency=currency, unit=None, fmt=None, missing=missing, sig=sig)
        text.index = pd.Index(idx, name=data.index.name)
    return ReportTable(data=data, text=text, note=note, caption=caption, show_index=index, csv_path=csv_path)


# ---------------------------------------------------------------------------
# Headlines
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Headline:
    """One headline number of a report: what it is, its value, how it is shown.

    ``lower``/``upper`` (at ``level``) or ``se`` describe its sampling
    interval; ``clv-lab compare`` uses them to judge whether a change between
    two runs is larger than sampling explains.
    """

    key: str                    #: dotted key in results.json ("customer_equity.estimate")
    label: str                  #: what a reader sees ("Customer equity, 12 months")
    value: Any
    kind: str = "number"        #: count / money / share / number / text
    unit: str | None = None     #: currency of money, unit of counts and numbers
    fmt: str | None = None      #: explicit format ("{:.6f}"), when more precision is asked for
    note: str | None = None     #: one short qualifier shown next to the value
    missing: str | None = None  #: why the value is missing (required when it is)
    lower: float | None = None
    upper: float | None = None
    level: float | None = None  #: level of [lower, upper] (0.9 for a 90% interval)
    se: float | None = None

    def __post_init__(self):
        if not self.key or any(not part for part in str(self.key).split(".")):
            raise ValueError(f"headline key {self.key!r} must be a dotted path like 'customer_equity.estimate'")
        if not str(self.label).strip():
            raise ValueError(f"headline {self.key!r} needs a label")
        if self.kind not in KINDS:
            raise ValueError(f"headline {self.key!r}: unknown kind {self.kind!r} (use one of {', '.join(KINDS)})")
        if is_missing(self.value) and not (self.missing and str(self.missing).strip()):
            raise MissingValueError(f"headline {self.key!r} ({self.label}) has no value and no reason: "
                                    "pass missing='why it is missing'")
        self.text  # noqa: B018 - formats now, so a bad value fails at the declaration

    def _fmt(self, v: Any, signed: bool = False) -> str:
        return fmt_value(v, self.kind, unit=self.unit, fmt=self.fmt, missing=self.missing, signed=signed)

    @property
    def text(self) -> str:
        """The value as the report shows it."""
        return self._fmt(self.value)

    @property
    def interval_text(self) -> str:
        """``"90% interval 2.1 to 2.9"``, ``"± 1.96 SE: 0.04"`` or ``""``."""
        if self.lower is not None and self.upper is not None and not (is_missing(self.lower) or is_missing(self.upper)):
            lvl = f"{self.level:.0%} " if self.level else ""
            return f"{lvl}interval {self._fmt(self.lower)} to {self._fmt(self.upper)}"
        if self.se is not None and not is_missing(self.se):
            return f"standard error {fmt_value(self.se, 'share' if self.kind == 'share' else 'number', sig=2)}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in ``results.json["headlines"]`` (None fields left out)."""
        out = {"key": self.key, "label": self.label, "value": to_jsonable(self.value), "kind": self.kind,
               "unit": self.unit, "text": self.text, "note": self.note, "missing": self.missing,
               "lower": to_jsonable(self.lower), "upper": to_jsonable(self.upper), "level": self.level,
               "se": to_jsonable(self.se), "fmt": self.fmt}
        return {k: v for k, v in out.items() if v is not None or k == "value"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Headline:
        """Rebuild a headline read from ``results.json``."""
        fields = {k: d.get(k) for k in ("key", "label", "value", "kind", "unit", "fmt", "note", "missing",
                                        "lower", "upper", "level", "se")}
        fields["kind"] = fields["kind"] or "number"
        if is_missing(fields["value"]) and not fields["missing"]:
            fields["missing"] = "not computed"
        return cls(**fields)


def headline(key: str, label: str, value: Any, kind: str = "number", unit: str | None = None,
             fmt: str | None = None, note: str | None = None, **interval) -> Headline:
    """Declare one headline number (see :class:`Headline`; ``interval``: lower, upper, level, se, missing)."""
    return Headline(key=key, label=label, value=value, kind=kind, unit=unit, fmt=fmt, note=note, **interval)


class Headlines:
    """The headline numbers of one report, declared once.

    Example (end of a notebook)::

        h = report.Headlines("Which model forecasts CDNOW's repeat purchases best, and what is the base worth?",
                             currency=currency)
        h.add("customer_equity.estimate", f"Customer equity, {horizon_months} months", equity["estimate"], "money",
              lower=equity["lower"], upper=equity["upper"], level=0.9)
        h.add("holdout.total_error_pct.bgnbd", "Holdout forecast error, BG/NBD", err / 100, "share")
        h.add("recommended_model", "Recommended model", recommended, "text")
        results = h.record({...the other results...}, meaning=["- **The models forecast the holdout well** ..."])
    """

    def __init__(self, question: str, currency: str | None = None):
        self.question = question
        self.currency = currency
        self.items: list[Headline] = []

    def add(self, key: str, label: str, value: Any, kind: str = "number", unit: str | None = None,
            fmt: str | None = None, note: str | None = None, **interval) -> Headline:
        """Declare a headline (money takes the report's currency unless ``unit`` says otherwise)."""
        if kind == "money" and unit is None:
            unit = self.currency
        if any(h.key == key for h in self.items):
            raise ValueError(f"headline {key!r} is declared twice")
        h = headline(key, label, value, kind, unit, fmt, note, **interval)
        self.items.append(h)
        return h

    def record(self, results: Mapping[str, Any] | None = None, meaning: Iterable[str] | None = None) -> dict:
        """Record the results with these headlines (see :func:`record_results`)."""
        return record_results(dict(results or {}), headlines=self.items, question=self.question, meaning=meaning)


def headlines_from_results(results: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The declared headlines (list of dicts) of one notebook's ``results.json``; [] when none."""
    items = (results or {}).get(HEADLINES_KEY) or []
    return [dict(h) for h in items if isinstance(h, Mapping) and "key" in h]


def _set_path(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = d
    for i, p in enumerate(parts[:-1]):
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ValueError(f"headline {key!r}: results[{'.'.join(parts[:i + 1])!r}] is a value, not a section")
        node = nxt
    last = parts[-1]
    if last in node and node[last] != value:
        raise ValueError(f"headline {key!r} is {value!r} but the results record {node[last]!r} at that key: "
                         "declare the number once (as the headline)")
    node[last] = value


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _answer_markdown(question: str | None, items: list[Headline], meaning: list[str]) -> str:
    lines = ["## The answer", ""]
    if question:
        lines += [f"**Question.** {question}", ""]
    lines += ["| headline | value | |", "|---|---|---|"]
    for h in items:
        extra = "; ".join(s for s in (h.interval_text, h.note or "") if s)
        lines.append(f"| {_md_escape(h.label)} | **{_md_escape(h.text)}** | {_md_escape(extra)} |")
    if meaning:
        lines += ["", "**What it means**", ""]
        lines += [m if m.lstrip().startswith(("-", "*")) else f"- {m}" for m in meaning]
    lines += ["", "*Every recorded number, with more digits: `results.json` in this report's folder.*"]
    return "\n".join(lines)


def record_results(results: dict[str, Any], *, headlines: Iterable[Headline] | None = None,
                   question: str | None = None, meaning: Iterable[str] | None = None,
                   max_rows: int = 30):
    """Show a notebook's results and attach them for ``results.json``.

    Parameters
    ----------
    results : dict
        Nested dictionary of results (numpy types allowed).
    headlines : iterable of Headline, optional
        The report's 3-8 headline numbers.  Their values are written into the
        results at their keys (a different value already there is an error:
        a number is declared once), and the list goes to
        ``results["headlines"]``.  The cell then shows the answer block
        (``question``, the headlines, the ``meaning`` bullets) instead of the
        table of every result.
    question, meaning : optional
        The report's question and its "what it means" bullets (markdown).
    max_rows : int
        Without headlines: the results table shows at most this many rows.

    Returns
    -------
    dict
        The JSON-ready results (as stored in ``results.json``).
    """
    items = list(headlines or [])
    clean = to_jsonable(results)
    if items:
        if not MIN_HEADLINES <= len(items) <= MAX_HEADLINES:
            raise ValueError(f"a report declares {MIN_HEADLINES}-{MAX_HEADLINES} headline numbers, got {len(items)}: "
                             f"{[h.key for h in items]}")
        keys = [h.key for h in items]
        if len(set(keys)) != len(keys):
            raise ValueError(f"headline keys repeat: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
        if HEADLINES_KEY in clean:
            raise ValueError(f"results use the reserved key {HEADLINES_KEY!r}")
        for h in items:
            _set_path(clean, h.key, to_jsonable(h.value))
        clean[HEADLINES_KEY] = [h.to_dict() for h in items]
        meaning_list = [str(m) for m in (meaning or [])]
        md = _answer_markdown(question, items, meaning_list)
        bundle = {"text/markdown": md, "text/plain": md, RESULTS_MIME: clean,
                  HEADLINES_MIME: {"question": question, "headlines": clean[HEADLINES_KEY], "meaning": meaning_list}}
    else:
        flat = flatten(clean)
        lines = ["| result | value |", "|---|---|"]
        lines += [f"| `{k}` | {_md_escape(format_value(v))} |" for k, v in list(flat.items())[:max_rows]]
        if len(flat) > max_rows:
            lines.append(f"| … | {len(flat) - max_rows} more in results.json |")
        bundle = {"text/markdown": "\n".join(lines), RESULTS_MIME: clean}
    _display(bundle)
    return clean


def _display(bundle: dict) -> None:
    """Show a raw MIME bundle in a notebook (nothing outside IPython: scripts and tests stay quiet)."""
    try:
        from IPython import get_ipython  # noqa: PLC0415
        from IPython.display import display  # noqa: PLC0415
    except ImportError:  # pragma: no cover - IPython is a dependency
        return
    if get_ipython() is not None:
        display(bundle, raw=True)


def _outputs_with(nb, mime: str):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if mime in data:
                payload = data[mime]
                yield cell, out, (json.loads(payload) if isinstance(payload, str) else payload)


def extract_results(nb) -> dict[str, Any]:
    """Collect what :func:`record_results` attached in an executed notebook.

    Later calls update earlier ones (a notebook may record in several cells).
    """
    results: dict[str, Any] = {}
    for _, _, payload in _outputs_with(nb, RESULTS_MIME):
        results.update(payload)
    return results


def extract_answer(nb) -> dict[str, Any] | None:
    """The answer block (question, headlines, meaning) a notebook recorded, or None (the last one wins)."""
    found = None
    for _, _, payload in _outputs_with(nb, HEADLINES_MIME):
        found = payload
    return found


# ---------------------------------------------------------------------------
# Render time
# ---------------------------------------------------------------------------

def _text_of(out) -> str:
    data = out.get("data", {})
    t = data.get("text/plain", out.get("text", ""))
    return "".join(t) if isinstance(t, list) else str(t)


def _is_transient(out) -> bool:
    meta = out.get("metadata", {}) or {}
    if (meta.get("clv-lab") or {}).get("transient"):
        return True
    if out.get("output_type") in ("display_data", "update_display_data"):
        data = out.get("data", {})
        return set(data) == {"text/plain"} and _text_of(out).startswith(PROGRESS_PREFIX)
    return False


def strip_transient(nb) -> int:
    """Remove progress lines and transient displays from ``nb`` in place; returns how many.

    A progress line is a display whose only content is text starting with
    :data:`PROGRESS_PREFIX` (what :mod:`helpers.progress` shows in a
    notebook); any output whose metadata carries :data:`TRANSIENT_METADATA`
    is transient as well.
    """
    n = 0
    for cell in nb.cells:
        outs = cell.get("outputs")
        if not outs:
            continue
        keep = [o for o in outs if not _is_transient(o)]
        n += len(outs) - len(keep)
        cell["outputs"] = keep
    return n


def prepare_report(nb, appendix_markdown: str | None = None):
    """The executed notebook as the report shows it (a copy; ``nb`` is not changed).

    1. progress lines and transient outputs are removed (:func:`strip_transient`);
    2. the answer block recorded with the headlines moves to a markdown cell
       right after the title cell (or to the top when the first cell is not
       markdown): the reader meets the answer first;
    3. ``appendix_markdown`` (the runner's provenance and parameters) becomes
       the last cell.
    """
    import nbformat  # noqa: PLC0415

    nb = nbformat.from_dict(copy.deepcopy(json.loads(json.dumps(nb))))
    strip_transient(nb)
    answer_md = None
    for cell in nb.cells:
        outs = cell.get("outputs") or []
        for i, out in enumerate(outs):
            if HEADLINES_MIME in out.get("data", {}):
                answer_md = out["data"].get("text/markdown")
                answer_md = "".join(answer_md) if isinstance(answer_md, list) else answer_md
                del outs[i]
                break
    if answer_md:
        at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
        nb.cells.insert(at, nbformat.v4.new_markdown_cell(answer_md))
    if appendix_markdown:
        nb.cells.append(nbformat.v4.new_markdown_cell(appendix_markdown))
    return nb


_RAW_CELLS = {"nan", "NaN", "None", "NaT", "inf", "-inf", "<NA>", "null"}
_CELL = re.compile(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", re.S | re.I)
_HIDDEN = re.compile(r"<(style|script)\b.*?</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_RAW_WORD = re.compile(r"(?<![\w.])(nan|NaN)(?![\w])")


def leftovers(page: str) -> list[str]:
    """What a rendered page shows that the formatting rules forbid (empty when it is clean).

    Reported: table cells that read ``nan``, ``NaN``, ``None``, ``NaT``,
    ``inf``, ``<NA>`` or ``null``; the words ``nan``/``NaN`` anywhere in the
    visible text; progress lines (:data:`PROGRESS_PREFIX`).  Each finding is
    a short excerpt, for an error message.
    """
    visible = _HIDDEN.sub(" ", page)
    found = []
    for cell in _CELL.findall(visible):
        text = html.unescape(_TAG.sub("", cell)).strip()
        if text in _RAW_CELLS:
            found.append(f"table cell {text!r}")
    text = html.unescape(_TAG.sub(" ", visible))
    for m in _RAW_WORD.finditer(text):
        found.append("text …" + " ".join(text[max(0, m.start() - 30): m.end() + 30].split()) + "…")
    i = text.find(PROGRESS_PREFIX)
    while i >= 0:
        found.append("progress line …" + " ".join(text[i: i + 60].split()) + "…")
        i = text.find(PROGRESS_PREFIX, i + 1)
    return found


# ---------------------------------------------------------------------------
# Identifiers
# ---------------------------------------------------------------------------

def pseudonymise(ids, salt: str = "clv-lab") -> pd.Index:
    """Stable pseudonyms ``C-xxxxxxxx`` for customer identifiers.

    The same identifier always maps to the same pseudonym for a given salt,
    so tables in different reports can be joined by a reader, but the raw
    identifier cannot be read off a report.
    """
    vals = [
        "C-" + hashlib.sha256(f"{salt}:{i}".encode()).hexdigest()[:8]
        for i in pd.Index(ids).astype(str)
    ]
    return pd.Index(vals, name="customer")


def display_ids(df: pd.DataFrame, show_raw: bool = False, salt: str = "clv-lab") -> pd.DataFrame:
    """Return ``df`` with its customer-id index pseudonymised unless ``show_raw``."""
    if show_raw:
        return df
    out = df.copy()
    out.index = pseudonymise(out.index, salt)
    return out
