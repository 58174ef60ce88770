"""The run's index page as a dashboard, and the stylesheets of every page a run writes.

:func:`index_html` renders ``index.html`` of a run folder: on top the run's
model, horizon and customer-equity figure, its status and duration; then per
notebook its declared headline numbers (:mod:`helpers.report` headlines) with
units, its status and duration, and each headline's change against the
previous successful run of the same configuration (judged against the
recorded sampling intervals, as ``clv-lab compare`` does); at the end links
to the earlier runs and the provenance.  The page is self-contained (inline
CSS, no script, no external fetch) and prints on A4 or Letter
(:data:`PRINT_CSS`, which :func:`inject_css` also puts into the reports).

:func:`index_for_run_dir` gathers the inputs from a run folder and its
siblings (what ``clv-lab run`` calls after the last notebook).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .compare import BEYOND, SAME, WITHIN, compare_items, list_runs, load_run, previous_successful, run_items
from .report import flatten, fmt_value, format_value, headlines_from_results, is_missing

__all__ = ["PAGE_CSS", "PRINT_CSS", "UNDECLARED_ROWS", "inject_css", "run_overview", "index_html",
           "index_for_run_dir"]

#: A notebook that declares no headlines shows this many of its recorded results instead.
UNDECLARED_ROWS = 8

#: Screen style of the index and compare pages.
PAGE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:68em;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.4em 0 1em}td,th{border:1px solid #d5d5d5;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;white-space:nowrap}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}.card{border:1px solid #d5d5d5;border-radius:6px;
padding:.6em .9em;min-width:11em;flex:1}.card .k{font-size:.8em;color:#666;text-transform:uppercase;
letter-spacing:.04em}.card .v{font-size:1.35em;font-weight:600}.card .sub{font-size:.85em;color:#555}
.ok{color:#1a7f37}.failed{color:#b42318}.muted{color:#666}.beyond{color:#b42318;font-weight:600}
.within{color:#555}small{font-weight:normal}code{font-size:90%}tr.changed td{background:#fff7e0}
.verdict{font-weight:600}
"""

#: Print rules for the index, the compare page and the rendered reports: tables shrink and wrap to
#: the page width (A4 and Letter; ``@page size: auto`` keeps the printer's paper), nothing is clipped
#: by the notebook template's scrolling output areas, and figures scale to the page.
PRINT_CSS = """
@media print {
  @page { size: auto; margin: 12mm 10mm; }
  html, body { font-size: 9pt; max-width: none !important; margin: 0 !important; padding: 0 !important; }
  .jp-Notebook, .jp-Cell, .jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output,
  .jp-RenderedHTMLCommon, .jp-RenderedHTML, .jp-RenderedMarkdown {
    overflow: visible !important; max-width: 100% !important; padding-left: 0 !important; }
  .jp-OutputArea-child { display: block !important; table-layout: auto !important; width: 100% !important; }
  .jp-OutputArea-output { display: block !important; width: 100% !important; }
  .jp-OutputPrompt, .jp-InputPrompt, .jp-CodeCell .jp-InputArea, .jp-Collapser { display: none !important; }
  .jp-MarkdownCell .jp-InputArea { display: block !important; width: auto !important; }
  table, .jp-RenderedHTMLCommon table {
    table-layout: auto !important; width: auto !important; max-width: 100% !important;
    font-size: 7pt !important; margin-left: 0 !important; margin-right: 0 !important; }
  th, td, .jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td {
    white-space: normal !important; overflow-wrap: anywhere; word-break: break-word;
    padding: 1px 3px !important; max-width: none !important; }
  thead { display: table-header-group; }
  tr, img, svg, .jp-OutputArea-child { break-inside: avoid; page-break-inside: avoid; }
  img, svg { max-width: 100% !important; height: auto !important; }
  h1, h2, h3 { break-after: avoid; page-break-after: avoid; }
  pre { white-space: pre-wrap !important; word-break: break-word; }
  details { display: block; } details > summary { display: none; }
  a { color: inherit; text-decoration: none; }
  .cards { display: block; } .card { display: inline-block; min-width: 0; margin: 0 .5em .5em 0; }
}
"""


def inject_css(page: str, css: str = PRINT_CSS) -> str:
    """``page`` with ``css`` in a ``<style>`` element at the end of its head (or at the start)."""
    tag = f"<style>{css}</style>"
    i = page.lower().rfind("</head>")
    return page[:i] + tag + page[i:] if i >= 0 else tag + page


def _e(s: Any) -> str:
    return html.escape("" if s is None else str(s))


def _params(run: Mapping[str, Any]) -> tuple[dict, list[dict]]:
    cfg = (run.get("config") or {}).get("content") or {}
    return dict(cfg.get("parameters") or {}), [nb.get("parameters") or {} for nb in run.get("notebooks", [])]


def run_overview(run: Mapping[str, Any], headlines: Mapping[str, list[dict]]) -> dict[str, Any]:
    """The run's model, horizon and customer equity, and where each was found.

    Looked up in this order: the run record's own ``model``,
    ``horizon_months`` and ``customer_equity`` (a runner that fixes one model
    per run records them); the configuration's parameters; the notebooks'
    parameters (when all that set one agree); the notebooks' results
    (``final_model.name`` / ``recommended_model``; a declared headline whose
    key starts with ``customer_equity``, else a ``customer_equity`` result).
    Missing entries are None.
    """
    cfg_params, nb_params = _params(run)

    def agreed(key):
        vals = {repr(p[key]) for p in nb_params if key in p}
        return next(p[key] for p in nb_params if key in p) if len(vals) == 1 else None

    model = run.get("model")
    model_src = "run record"
    if isinstance(model, Mapping):
        model = model.get("label") or model.get("name")
    if model is None:
        model, model_src = cfg_params.get("model"), "configuration"
    if model is None:
        model, model_src = agreed("model"), "notebook parameters"
    if model is None:
        for nb in run.get("notebooks", []):
            res = nb.get("results") or {}
            found = (res.get("final_model") or {}).get("name") if isinstance(res.get("final_model"), dict) else None
            found = found or res.get("recommended_model")
            if found:
                model, model_src = found, f"{nb.get('name')} results"
                break
    valuation = run.get("valuation") if isinstance(run.get("valuation"), Mapping) else {}
    horizon = run.get("horizon_months", valuation.get("horizon_months"))
    horizon_src = "run record"
    if horizon is None:
        horizon, horizon_src = cfg_params.get("horizon_months"), "configuration"
    if horizon is None:
        horizon, horizon_src = agreed("horizon_months"), "notebook parameters"

    equity = run.get("customer_equity")
    equity_src = "run record"
    if equity is not None and not isinstance(equity, Mapping):
        equity = {"value": equity, "kind": "money"}
    if equity is None and valuation.get("customer_equity") is not None:
        # the shared analysis stage: one equity figure for the run, in money or in purchases
        units = valuation.get("units")
        equity = ({"value": valuation["customer_equity"], "kind": "number", "unit": "purchases"}
                  if units == "purchases" else
                  {"value": valuation["customer_equity"], "kind": "money", "unit": units})
        equity_src = "shared analysis stage"
    if equity is None:
        for nb_name, hs in headlines.items():
            h = next((h for h in hs if str(h.get("key", "")).split(".")[0] == "customer_equity"), None)
            if h is not None:
                equity, equity_src = dict(h), nb_name
                break
    if equity is None:
        for nb in run.get("notebooks", []):
            ce = (nb.get("results") or {}).get("customer_equity")
            if ce is not None:
                equity = ({"value": ce.get("estimate"), "lower": ce.get("lower"), "upper": ce.get("upper")}
                          if isinstance(ce, Mapping) else {"value": ce})
                equity.update(kind="money", unit=cfg_params.get("currency"))
                equity_src = f"{nb.get('name')} results"
                break
    return {"model": model, "model_source": model_src if model is not None else None,
            "horizon_months": horizon, "horizon_source": horizon_src if horizon is not None else None,
            "customer_equity": equity, "customer_equity_source": equity_src if equity is not None else None}


def _money_text(d: Mapping[str, Any], v: Any) -> str:
    return fmt_value(v, d.get("kind") or "money", unit=d.get("unit"), missing=d.get("missing") or "not computed")


def _card(key: str, value: str, sub: str = "", cls: str = "") -> str:
    return (f"<div class='card'><div class='k'>{_e(key)}</div><div class='v {cls}'>{_e(value)}</div>"
            + (f"<div class='sub'>{_e(sub)}</div>" if sub else "") + "</div>")


def _duration(s: Any) -> str:
    try:
        x = float(s)
    except (TypeError, ValueError):
        return "duration not recorded"
    return f"{x:,.1f} s" if x < 120 else f"{x / 60:,.1f} min"


def _headline_text(h: Mapping[str, Any]) -> str:
    if h.get("text"):
        return str(h["text"])
    v = h.get("value")
    if is_missing(v):
        return f"n/a: {h.get('missing') or 'not computed'}"
    return fmt_value(v, h.get("kind") or "number", unit=h.get("unit"))


def _interval_text(h: Mapping[str, Any]) -> str:
    lo, hi = h.get("lower"), h.get("upper")
    if lo is not None and hi is not None:
        lvl = f"{float(h['level']):.0%} " if h.get("level") else ""
        kind = h.get("kind") or "number"
        return f"{lvl}interval {fmt_value(lo, kind, unit=h.get('unit'))} to {fmt_value(hi, kind, unit=h.get('unit'))}"
    if h.get("se") is not None:
        return f"standard error {fmt_value(h['se'], 'number', sig=2)}"
    return ""


def index_html(run: Mapping[str, Any], headlines: Mapping[str, list[dict]], previous: Mapping[str, Any] | None = None,
               earlier_runs: Iterable[Mapping[str, Any]] = ()) -> str:
    """The index page of a run as a dashboard (self-contained HTML).

    Parameters
    ----------
    run : dict
        The run record (``run.json``).
    headlines : dict
        Notebook name -> its declared headlines (:func:`helpers.report.headlines_from_results`).
    previous : dict, optional
        The previous successful run of the same configuration, as
        :func:`helpers.compare.load_run` returns it (its notebooks' results
        hold their headlines); an ``href`` key, if present, links to it
        (default ``../<stamp>/index.html``).
    earlier_runs : iterable of dict
        Earlier runs of the configuration, newest first or in any order:
        ``stamp`` (folder name), ``status``, ``started``, optional ``href``
        (default ``../<stamp>/index.html``).
    """
    cfg = run.get("config") or {}
    name = cfg.get("name", "run")
    over = run_overview(run, headlines)
    prev_items = run_items(previous) if previous else {}
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>clv-lab: {_e(name)} ({_e(run.get('started', ''))})</title>",
             f"<style>{PAGE_CSS}{PRINT_CSS}</style></head><body>",
             f"<h1>clv-lab: {_e(name)}</h1>"]
    if cfg.get("description"):
        parts.append(f"<p>{_e(cfg['description'])}</p>")

    cards = []
    cards.append(_card("model", str(over["model"]) if over["model"] is not None else "not recorded",
                       f"from the {over['model_source']}" if over["model_source"] else ""))
    hz = over["horizon_months"]
    cards.append(_card("horizon", f"{fmt_value(hz, 'number')} months" if hz is not None else "notebook defaults",
                       f"from the {over['horizon_source']}" if over["horizon_source"] else "see each report"))
    eq = over["customer_equity"]
    if eq is not None:
        sub = _interval_text(eq)
        sub = "; ".join(s for s in (sub, f"from {over['customer_equity_source']}") if s)
        cards.append(_card("Customer equity", _headline_text(eq), sub))
    else:
        cards.append(_card("Customer equity", "not recorded", "no notebook declared it"))
    n_ok = sum(nb.get("status") == "ok" for nb in run.get("notebooks", []))
    cards.append(_card("status", str(run.get("status", "unknown")),
                       f"{n_ok} of {len(run.get('notebooks', []))} notebooks ok, {_duration(run.get('duration_s'))}",
                       "ok" if run.get("status") == "ok" else "failed"))
    parts.append("<div class='cards'>" + "".join(cards) + "</div>")

    if previous:
        href = previous.get("href") or f"../{previous.get('stamp', '')}/index.html"
        parts.append(f"<p>Changes are against the previous successful run of this configuration, "
                     f"<a href='{_e(href)}'>{_e(previous.get('stamp') or previous.get('started'))}</a>; "
                     "a change is marked <span class='beyond'>beyond</span> when it is larger than the two "
                     "runs' sampling intervals allow, as in <code>clv-lab compare</code>.</p>")
    else:
        parts.append("<p class='muted'>No earlier successful run of this configuration to compare with.</p>")

    for nb in run.get("notebooks", []):
        nb_name = str(nb.get("name"))
        status = str(nb.get("status", "unknown"))
        link = f"{nb_name}/{nb_name}.html"
        parts.append(f"<h2><a href='{_e(link)}'>{_e(nb_name)}</a> <small class='{'ok' if status == 'ok' else 'failed'}'>"
                     f"{_e(status)} in {_e(_duration(nb.get('duration_s')))}</small></h2>")
        if nb.get("error"):
            parts.append(f"<p class='failed'>{_e(nb['error'])}</p>")
        hs = list(headlines.get(nb_name) or [])
        if not hs:
            # the run's one customer-equity figure is on top; a notebook's own equity keys are not repeated
            flat = {k: v for k, v in flatten({k: v for k, v in (nb.get("results") or {}).items()
                                              if k != "headlines"}).items() if "equity" not in k}
            shown = list(flat.items())[:UNDECLARED_ROWS]
            parts.append(f"<p class='muted'>No headline numbers declared"
                         + (f"; the first {len(shown)} of {len(flat)} recorded results" if shown else "")
                         + f" (every result: <a href='{_e(nb_name)}/results.json'>results.json</a>).</p>")
            if shown:
                parts.append("<table><tr><th>result</th><th>value</th></tr>" + "".join(
                    f"<tr><td><code>{_e(k)}</code></td><td class='num'>{_e(format_value(v))}</td></tr>"
                    for k, v in shown) + "</table>")
            continue
        cur_items = run_items({"notebooks": [{"name": nb_name, "results": {"headlines": hs}}]})
        rows = {r.key: r for r in compare_items({k: v for k, v in prev_items.items() if k in cur_items}, cur_items)}
        head = "<tr><th>headline</th><th>value</th><th>interval, note</th>"
        head += "<th>previous run</th><th>change</th></tr>" if previous else "</tr>"
        parts.append("<table class='headlines'>" + head)
        for h in hs:
            extra = "; ".join(s for s in (_interval_text(h), h.get("note") or "") if s)
            cells = (f"<td>{_e(h.get('label') or h.get('key'))}</td><td class='num'><strong>{_e(_headline_text(h))}"
                     f"</strong></td><td>{_e(extra)}</td>")
            if previous:
                r = rows.get(h["key"])
                if r is None or r.old == "":
                    cells += "<td class='muted'>not in that run</td><td></td>"
                else:
                    cls = "beyond" if r.verdict == BEYOND else ("within" if r.verdict == WITHIN else "")
                    if r.verdict == SAME:
                        change = "no change"
                    else:
                        change = f"{r.change} ({r.verdict})" if r.change and r.change != r.verdict else r.verdict
                    cells += f"<td class='num'>{_e(r.old)}</td><td class='{cls}'>{_e(change)}</td>"
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
        parts.append(f"<p class='muted'><a href='{_e(nb_name)}/results.json'>every recorded result (results.json)</a>"
                     "</p>")

    earlier = list(earlier_runs)
    parts.append("<h2>Earlier runs</h2>")
    if earlier:
        parts.append("<table><tr><th>run</th><th>status</th><th>started (UTC)</th></tr>")
        for r in sorted(earlier, key=lambda r: str(r.get("stamp")), reverse=True):
            href = r.get("href") or f"../{r.get('stamp')}/index.html"
            st = str(r.get("status"))
            parts.append(f"<tr><td><a href='{_e(href)}'>{_e(r.get('stamp'))}</a></td>"
                         f"<td class='{'ok' if st == 'ok' else 'failed'}'>{_e(st)}</td><td>{_e(r.get('started'))}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p class='muted'>This is the first run of this configuration.</p>")

    parts.append("<h2>Provenance</h2><table>")
    for k, v in [("started (UTC)", run.get("started")), ("finished (UTC)", run.get("finished")),
                 ("data", run.get("data_path")), ("data SHA-256", run.get("data_sha256")),
                 ("code version (git)", run.get("git_commit")), ("clv-lab", run.get("clv_lab_version")),
                 ("configuration file", cfg.get("path"))]:
        parts.append(f"<tr><th>{_e(k)}</th><td><code>{_e(v if v is not None else 'not recorded')}</code></td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def index_for_run_dir(run_dir: str | Path) -> str:
    """:func:`index_html` for a run folder: its record, headlines, previous successful run and earlier runs."""
    folder = Path(run_dir).resolve()
    run = load_run(folder)
    headlines = {str(nb.get("name")): headlines_from_results(nb.get("results")) for nb in run.get("notebooks", [])}
    prev_dir = previous_successful(folder.parent, folder.name)
    previous = load_run(prev_dir) if prev_dir else None
    earlier = [r for r in list_runs(folder.parent) if r["stamp"] < folder.name]
    return index_html(run, headlines, previous, earlier)
