"""Compare two runs: every headline and model parameter, and whether it moved beyond its interval.

``clv-lab compare RUN_A RUN_B`` reads two run folders written by ``clv-lab
run`` (``run.json`` and each notebook's ``results.json``) and prints a table
of every declared headline (``results["headlines"]``) and every model
parameter (the ``*.params.*`` results) of every notebook: old value (A), new
value (B), change, and a verdict:

``same``
    identical values;
``within interval`` / ``BEYOND interval``
    the change is compared with the sampling intervals recorded in the two
    runs (see :func:`change_threshold`);
``no interval``
    the value changed but neither run recorded an interval for it;
``changed``
    a text (e.g. the recommended model) differs;
``only in A`` / ``only in B``
    the item exists in one run only.

Run references are folders (``reports/cdnow/20250101T000000000000Z``) or
``latest``-style names with an optional ``~N`` suffix: ``reports/cdnow/latest~1``
is the N-th successful run of the same configuration before the one named
(here: the previous successful run before ``latest``).

Exit status: 0 when nothing moved beyond its interval, 1 when something
did, 2 for bad input (a folder without ``run.json``, an unknown reference).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .report import fmt_share, fmt_value, flatten, headlines_from_results, is_missing

__all__ = [
    "RunError",
    "Item",
    "Row",
    "load_run",
    "list_runs",
    "resolve_run",
    "previous_successful",
    "run_items",
    "change_threshold",
    "compare_items",
    "compare_runs",
    "format_table",
    "compare_html",
    "add_compare_parser",
    "run_compare",
    "main_compare",
    "Z_95",
]

#: Two-sided 95% normal quantile: a standard error becomes an interval half-width z * se.
Z_95 = 1.959963984540054

SAME, WITHIN, BEYOND, NO_INTERVAL, CHANGED, ONLY_A, ONLY_B = (
    "same", "within interval", "BEYOND interval", "no interval", "changed", "only in A", "only in B")


class RunError(ValueError):
    """A run reference that does not name a readable run folder."""


# ---------------------------------------------------------------------------
# Runs on disk
# ---------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise RunError(f"{path}: cannot be read ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise RunError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None


def load_run(path: str | Path) -> dict[str, Any]:
    """A run record (``run.json``) with each notebook's ``results.json`` filled in.

    The returned dict has the keys of ``run.json`` plus ``path`` (the run
    folder) and ``stamp`` (its name); each ``notebooks[i]["results"]`` is the
    notebook's ``results.json`` when that file exists (else what ``run.json``
    holds).

    Raises
    ------
    RunError
        The folder has no readable ``run.json``.
    """
    folder = Path(path)
    rec = folder / "run.json"
    if not rec.is_file():
        raise RunError(f"{folder}: not a run folder (no run.json)")
    run = _read_json(rec)
    if not isinstance(run, dict) or not isinstance(run.get("notebooks", []), list):
        raise RunError(f"{rec}: not a run record (expected an object with a 'notebooks' list)")
    for nb in run.get("notebooks", []):
        res = folder / str(nb.get("name", "")) / "results.json"
        if nb.get("name") and res.is_file():
            nb["results"] = _read_json(res)
        nb.setdefault("results", {})
    run["path"] = str(folder.resolve())
    run["stamp"] = folder.resolve().name
    return run


def list_runs(config_dir: str | Path) -> list[dict[str, Any]]:
    """The runs of one configuration folder, oldest first: ``{stamp, path, status, started, finished}``.

    Folders without ``run.json`` and the ``latest`` link are skipped; a
    ``run.json`` that cannot be read counts as status ``"unreadable"``.
    """
    base = Path(config_dir)
    out = []
    for d in sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink()) if base.is_dir() else []:
        rec = d / "run.json"
        if not rec.is_file():
            continue
        try:
            run = json.loads(rec.read_text())
            status, started, finished = run.get("status"), run.get("started"), run.get("finished")
        except (OSError, json.JSONDecodeError):
            status, started, finished = "unreadable", None, None
        out.append({"stamp": d.name, "path": str(d), "status": status, "started": started, "finished": finished})
    return out


_REF = re.compile(r"^(?P<base>.*?)(?:~(?P<n>\d*))?$")


def resolve_run(ref: str | Path) -> Path:
    """The run folder a reference names.

    ``folder`` is that folder (``latest`` is followed); ``folder~N`` (``~``
    alone: ``~1``) is the N-th *successful* run of the same configuration
    before it, by timestamp.

    Raises
    ------
    RunError
        The folder does not exist or has no ``run.json``, or there are fewer
        than N earlier successful runs.
    """
    m = _REF.match(str(ref))
    base, n = Path(m.group("base")), m.group("n")
    steps = 0 if n is None else (int(n) if n else 1)
    if not base.exists():
        raise RunError(f"{base}: no such run folder")
    folder = base.resolve()
    if not (folder / "run.json").is_file():
        raise RunError(f"{base}: not a run folder (no run.json)")
    if steps == 0:
        return folder
    earlier = [r for r in list_runs(folder.parent) if r["status"] == "ok" and r["stamp"] < folder.name]
    if len(earlier) < steps:
        raise RunError(f"{ref}: only {len(earlier)} successful run(s) of this configuration before {folder.name}")
    return Path(earlier[-steps]["path"]).resolve()


def previous_successful(config_dir: str | Path, stamp: str) -> Path | None:
    """The last successful run of a configuration folder before ``stamp`` (None when there is none)."""
    earlier = [r for r in list_runs(config_dir) if r["status"] == "ok" and r["stamp"] < stamp]
    return Path(earlier[-1]["path"]) if earlier else None


# ---------------------------------------------------------------------------
# What is compared
# ---------------------------------------------------------------------------

@dataclass
class Item:
    """One comparable number (or text) of one notebook of one run."""

    notebook: str
    key: str                     #: dotted key in results.json
    label: str
    kind: str                    #: count / money / share / number / text
    value: Any
    unit: str | None = None
    half_width: float | None = None   #: sampling interval half-width (z * se, or (upper - lower) / 2)
    interval: str = ""                #: where the interval came from ("se", "90% interval", ...)
    section: str = "headline"         #: headline / parameter / result
    missing: str | None = None

    def text(self, v: Any = None) -> str:
        v = self.value if v is None else v
        if is_missing(v):
            return f"n/a: {self.missing or 'not computed'}"
        return fmt_value(v, self.kind, unit=self.unit, missing=self.missing)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _half_width(lower: Any, upper: Any, se: Any, z: float) -> tuple[float | None, str]:
    lo, hi, s = _num(lower), _num(upper), _num(se)
    if lo is not None and hi is not None and hi >= lo:
        return (hi - lo) / 2.0, "interval"
    if s is not None and s >= 0:
        return z * s, "se"
    return None, ""


def run_items(run: Mapping[str, Any], z: float = Z_95, everything: bool = False) -> dict[tuple[str, str], Item]:
    """The comparable items of a run, keyed by (notebook, key).

    * every declared headline, with its interval (``lower``/``upper`` or
      ``se`` of the declaration; else, for a key ``X.estimate``, the results'
      ``X.lower``/``X.upper``);
    * every model parameter: each result ``P.params.K``, with the standard
      error ``P.se.K`` when the results record one;
    * with ``everything``, every other numeric result as well.
    """
    items: dict[tuple[str, str], Item] = {}
    for nb in run.get("notebooks", []):
        name = str(nb.get("name"))
        results = nb.get("results") or {}
        flat = flatten({k: v for k, v in results.items() if k != "headlines"})
        for h in headlines_from_results(results):
            hw, src = _half_width(h.get("lower"), h.get("upper"), h.get("se"), z)
            if hw is None and h["key"].endswith(".estimate"):
                stem = h["key"][: -len(".estimate")]
                hw, src = _half_width(flat.get(f"{stem}.lower"), flat.get(f"{stem}.upper"), None, z)
            if src == "interval" and h.get("level"):
                src = f"{float(h['level']):.0%} interval"
            items[(name, h["key"])] = Item(name, h["key"], h.get("label") or h["key"], h.get("kind") or "number",
                                           h.get("value"), h.get("unit"), hw, src, "headline", h.get("missing"))
        for key, v in flat.items():
            if (name, key) in items:
                continue
            parts = key.split(".")
            if "params" in parts[:-1]:
                i = len(parts) - 1 - parts[::-1].index("params")
                se_key = ".".join(parts[:i] + ["se"] + parts[i + 1:])
                hw, src = _half_width(None, None, flat.get(se_key), z)
                if isinstance(v, (int, float)) and not isinstance(v, bool) or v is None:
                    items[(name, key)] = Item(name, key, key, "number", v, None, hw, src, "parameter")
            elif everything and (isinstance(v, (int, float)) and not isinstance(v, bool)):
                hw, src = None, ""
                if key.endswith(".estimate"):
                    stem = key[: -len(".estimate")]
                    hw, src = _half_width(flat.get(f"{stem}.lower"), flat.get(f"{stem}.upper"), None, z)
                kind = "count" if isinstance(v, int) else "number"
                items[(name, key)] = Item(name, key, key, kind, v, None, hw, src, "result")
    return items


def change_threshold(old: Item | None, new: Item | None) -> float | None:
    """How large a change the two runs' sampling intervals allow: ``sqrt(w_A^2 + w_B^2)``.

    ``w`` is an interval half-width: ``z * se`` for a recorded standard error
    (z = 1.96 by default), or ``(upper - lower) / 2`` for a recorded
    interval (at its own level).  For two independent, normally distributed
    estimates this is the half-width of the interval of their difference at
    the same level.  When only one run records an interval, the other is
    taken to be as precise (``sqrt(2) * w``).  None when neither records one.
    """
    ws = [it.half_width for it in (old, new) if it is not None and it.half_width is not None]
    if not ws:
        return None
    if len(ws) == 1:
        ws = ws * 2
    return math.sqrt(sum(w * w for w in ws))


# ---------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the comparison."""

    notebook: str
    key: str
    label: str
    section: str
    old: str
    new: str
    change: str
    verdict: str
    threshold: str = ""
    delta: float | None = None
    details: dict = field(default_factory=dict)

    @property
    def moved(self) -> bool:
        """The change is larger than the runs' sampling intervals allow."""
        return self.verdict == BEYOND


def _change_text(it: Item, old: Any, new: Any) -> tuple[str, float | None]:
    a, b = _num(old), _num(new)
    if it.kind == "text" or a is None or b is None:
        return ("changed" if old != new else ""), None
    d = b - a
    if d == 0:
        return "", 0.0
    if it.kind == "share":
        return fmt_share(d, signed=True, points=True), d
    body = fmt_value(d, it.kind if it.kind != "count" or float(d).is_integer() else "number", unit=it.unit,
                     signed=True)
    rel = f" ({d / abs(a):+.1%})" if a != 0 else ""
    return body + rel, d


def compare_items(old: Mapping[tuple[str, str], Item], new: Mapping[tuple[str, str], Item]) -> list[Row]:
    """Rows for the union of two runs' items (A's order first, then items new in B)."""
    rows = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        it = b or a
        if a is None or b is None:
            rows.append(Row(it.notebook, it.key, it.label, it.section, a.text() if a else "", b.text() if b else "",
                            "", ONLY_B if a is None else ONLY_A))
            continue
        change, delta = _change_text(it, a.value, b.value)
        thr = change_threshold(a, b)
        if a.value == b.value or (delta == 0.0):
            verdict = SAME
        elif delta is None and (it.kind == "text" or isinstance(b.value, str)):
            verdict = CHANGED
        elif delta is None or thr is None:
            verdict = NO_INTERVAL
        else:
            verdict = BEYOND if abs(delta) > thr else WITHIN
        thr_text = "" if thr is None else (fmt_share(thr, points=True) if it.kind == "share"
                                           else fmt_value(thr, "money" if it.kind == "money" else "number",
                                                          unit=it.unit))
        src = " / ".join(dict.fromkeys(s for s in (a.interval, b.interval) if s))
        rows.append(Row(it.notebook, it.key, it.label, it.section, a.text(), b.text(), change, verdict,
                        f"± {thr_text} ({src})" if thr_text else "", delta,
                        {"old": a.value, "new": b.value, "threshold": thr}))
    return rows


def _context_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Row]:
    """What differs in how the runs were made (data, code, configuration, parameters)."""
    pairs = [("configuration", (a.get("config") or {}).get("name"), (b.get("config") or {}).get("name")),
             ("data SHA-256", a.get("data_sha256"), b.get("data_sha256")),
             ("code version (git)", a.get("git_commit"), b.get("git_commit")),
             ("clv-lab", a.get("clv_lab_version"), b.get("clv_lab_version"))]
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    pairs += [(f"package {k}", pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    nba = {nb.get("name"): nb.get("parameters") or {} for nb in a.get("notebooks", [])}
    nbb = {nb.get("name"): nb.get("parameters") or {} for nb in b.get("notebooks", [])}
    for name in list(nba) + [n for n in nbb if n not in nba]:
        pa_, pb_ = nba.get(name, {}), nbb.get(name, {})
        for k in sorted(set(pa_) | set(pb_)):
            if k in ("config", "export_dir"):
                continue  # paths of the run, not settings
            pairs.append((f"{name}: parameter {k}", pa_.get(k), pb_.get(k)))
    rows = []
    for label, va, vb in pairs:
        ta = "" if va is None else str(va)
        tb = "" if vb is None else str(vb)
        rows.append(Row("run", label, label, "run", ta or "not recorded", tb or "not recorded",
                        "" if va == vb else "changed", "same" if va == vb else "changed"))
    return rows


def compare_runs(a: Mapping[str, Any], b: Mapping[str, Any], z: float = Z_95,
                 everything: bool = False) -> tuple[list[Row], list[Row]]:
    """(context rows, item rows) of runs ``a`` (old) and ``b`` (new), as returned by :func:`load_run`."""
    return _context_rows(a, b), compare_items(run_items(a, z, everything), run_items(b, z, everything))


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

_COLUMNS = ("notebook", "item", "A (old)", "B (new)", "change", "verdict", "allowed by the intervals")


def _cells(r: Row, label: bool = True) -> list[str]:
    item = r.label if r.label == r.key or not label else f"{r.label} [{r.key}]"
    return [r.notebook, item if label else r.key, r.old, r.new, r.change, r.verdict, r.threshold]


def format_table(context: list[Row], rows: list[Row], width: int = 48) -> str:
    """A plain-text table for the terminal (long cells shortened to ``width`` characters)."""
    def cut(s: str) -> str:
        return s if len(s) <= width else s[: width - 1] + "…"

    out = []
    changed_ctx = [r for r in context if r.verdict != "same"]
    if changed_ctx:
        out.append("What differs in how the runs were made:")
        out += [f"  {r.label}: {cut(r.old)} -> {cut(r.new)}" for r in changed_ctx]
        out.append("")
    grid = [list(_COLUMNS)] + [[cut(c) for c in _cells(r, label=False)] for r in rows]
    widths = [max(len(row[i]) for row in grid) for i in range(len(_COLUMNS))]
    for j, row in enumerate(grid):
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    moved = [r for r in rows if r.moved]
    out.append("")
    out.append(f"{len(rows)} items: {sum(r.verdict == SAME for r in rows)} same, "
               f"{sum(r.verdict == WITHIN for r in rows)} within their interval, {len(moved)} beyond, "
               f"{sum(r.verdict in (NO_INTERVAL, CHANGED) for r in rows)} changed without an interval, "
               f"{sum(r.verdict in (ONLY_A, ONLY_B) for r in rows)} in one run only.")
    return "\n".join(out)


def compare_html(context: list[Row], rows: list[Row], a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """A self-contained HTML page of the comparison (no external fetch; prints on A4/Letter)."""
    from .dashboard import PAGE_CSS, PRINT_CSS  # noqa: PLC0415 - the dashboard imports this module

    e = html.escape
    moved = [r for r in rows if r.moved]
    title = f"clv-lab compare: {a.get('stamp', 'A')} vs {b.get('stamp', 'B')}"
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{e(title)}</title><style>{PAGE_CSS}{PRINT_CSS}</style></head><body>",
             f"<h1>{e(title)}</h1>",
             f"<p class='verdict {'failed' if moved else 'ok'}'>"
             + (f"{len(moved)} item(s) moved beyond their sampling interval." if moved else
                "Nothing moved beyond its sampling interval.") + "</p>",
             "<p>A = <code>" + e(str(a.get("path", ""))) + "</code><br>B = <code>" + e(str(b.get("path", "")))
             + "</code></p>",
             "<h2>How the runs were made</h2><table><tr><th>what</th><th>A</th><th>B</th><th></th></tr>"]
    for r in context:
        parts.append(f"<tr class='{'changed' if r.verdict != 'same' else ''}'><td>{e(r.label)}</td>"
                     f"<td><code>{e(r.old)}</code></td><td><code>{e(r.new)}</code></td><td>{e(r.change)}</td></tr>")
    parts.append("</table>")
    for section, heading in (("headline", "Headline numbers"), ("parameter", "Model parameters"),
                             ("result", "Other results")):
        sel = [r for r in rows if r.section == section]
        if not sel:
            continue
        parts.append(f"<h2>{heading}</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in _COLUMNS) + "</tr>")
        for r in sel:
            cls = {BEYOND: "failed", WITHIN: "ok"}.get(r.verdict, "")
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in _cells(r)[:5])
                         + f"<td class='{cls}'>{e(r.verdict)}</td><td>{e(r.threshold)}</td></tr>")
        parts.append("</table>")
    parts.append("<p class='muted'>Allowed change: sqrt(w<sub>A</sub><sup>2</sup> + w<sub>B</sub><sup>2</sup>), "
                 "w = 1.96 &times; standard error or half the recorded interval; "
                 "\"no interval\": the runs recorded none for this number.</p></body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``compare`` sub-command to the ``clv-lab`` parser (``argparse`` sub-parsers)."""
    p = subparsers.add_parser(
        "compare", help="compare two runs: every headline and model parameter, against their intervals",
        description="Compare two runs of clv-lab (folders, or references like reports/cdnow/latest~1). "
                    "Exit status 0: nothing moved beyond its sampling interval; 1: something did; 2: bad input.")
    p.add_argument("run_a", help="the old run: a run folder, or e.g. reports/cdnow/latest~1")
    p.add_argument("run_b", help="the new run: a run folder, or e.g. reports/cdnow/latest")
    p.add_argument("--html", default=None,
                   help="where the HTML page goes (default: compare-<A>-vs-<B>.html beside the runs of B)")
    p.add_argument("--no-html", action="store_true", help="print the table only")
    p.add_argument("--all", action="store_true", dest="everything",
                   help="also compare every other numeric result, not only headlines and model parameters")
    p.add_argument("--z", type=float, default=Z_95, help="normal quantile that turns a standard error into an "
                                                          "interval half-width (default 1.96: 95%%)")
    return p


def run_compare(args: argparse.Namespace, out=None, err=None) -> int:
    """Execute a parsed ``compare`` command; returns the exit status (0, 1 or 2)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        pa, pb = resolve_run(args.run_a), resolve_run(args.run_b)
        a, b = load_run(pa), load_run(pb)
    except RunError as e:
        print(f"clv-lab compare: error: {e}", file=err)
        return 2
    context, rows = compare_runs(a, b, z=args.z, everything=args.everything)
    print(f"A = {pa}\nB = {pb}\n", file=out)
    print(format_table(context, rows), file=out)
    if not args.no_html:
        target = Path(args.html) if args.html else pb.parent / f"compare-{pa.name}-vs-{pb.name}.html"
        try:
            target.write_text(compare_html(context, rows, a, b))
        except OSError as e:
            print(f"clv-lab compare: error: cannot write {target}: {e.strerror or e}", file=err)
            return 2
        print(f"HTML: {target}", file=out)
    return 1 if any(r.moved for r in rows) else 0


def main_compare(argv: Iterable[str] | None = None) -> int:
    """``clv-lab compare RUN_A RUN_B [--html PATH] [--no-html] [--all] [--z Z]`` as a function."""
    parser = argparse.ArgumentParser(prog="clv-lab")
    add_compare_parser(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(["compare", *(list(argv) if argv is not None else sys.argv[1:])])
    except SystemExit as e:  # argparse: bad arguments (2) or --help (0)
        return int(e.code or 0)
    return run_compare(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_compare())
