"""What notebooks show and hand over: headline results, tables, identifiers.

* :func:`record_results` shows a notebook's headline numbers as a table and
  attaches them, machine-readable, to the cell output; the runner collects
  them into ``results.json`` (so a notebook never needs to know where its
  report goes, and runs the same in JupyterLab).
* :func:`pseudonymise` replaces raw customer identifiers in anything a
  report shows, unless the configuration allows raw ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "RESULTS_MIME",
    "record_results",
    "extract_results",
    "flatten",
    "pseudonymise",
    "display_ids",
    "to_jsonable",
]

#: MIME type under which :func:`record_results` attaches the results.
RESULTS_MIME = "application/vnd.clv-lab.results+json"


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON types.

    Floats are rounded to 10 significant digits, so that the recorded numbers
    do not depend on the last bits of floating-point summation order.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
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
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
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


def format_value(v: Any) -> str:
    """Human-readable number: thousands separators, 4 significant digits below 1,000."""
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(format_value(x) for x in v[:6]) + (" …" if len(v) > 6 else "")
    return str(v)


def record_results(results: dict[str, Any]):
    """Show headline results and attach them for ``results.json``.

    Parameters
    ----------
    results : dict
        Nested dictionary of headline numbers (numpy types allowed).

    Returns
    -------
    dict
        The JSON-ready results (also displayed as a table in the notebook).
    """
    clean = to_jsonable(results)
    flat = flatten(clean)
    lines = ["| result | value |", "|---|---|"]
    lines += [f"| `{k}` | {format_value(v)} |" for k, v in flat.items()]
    try:
        from IPython.display import display  # noqa: PLC0415

        display({"text/markdown": "\n".join(lines), RESULTS_MIME: clean}, raw=True)
    except ImportError:  # pragma: no cover - IPython is a dependency
        pass
    return clean


def extract_results(nb) -> dict[str, Any]:
    """Collect what :func:`record_results` attached in an executed notebook.

    Later calls update earlier ones (a notebook may record in several cells).
    """
    results: dict[str, Any] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if RESULTS_MIME in data:
                payload = data[RESULTS_MIME]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                results.update(payload)
    return results


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
