"""Formatting rules, report tables, headline declarations and the render-time report (no runner needed)."""

import json
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from helpers import report
from helpers.report import (
    MissingValueError, fmt_count, fmt_money, fmt_number, fmt_share, fmt_value, format_value,
)

BAD = ("nan", "NaN", "None", "inf")


def no_bad_tokens(text: str) -> bool:
    return not any(re.search(rf"(?<![A-Za-z]){t}(?![A-Za-z])", text) for t in BAD)


# ---------------------------------------------------------------------------
# formatting rules
# ---------------------------------------------------------------------------

def test_counts_are_whole_numbers_with_separators():
    assert fmt_count(7846.0) == "7,846"
    assert fmt_count(np.int64(44021)) == "44,021"
    assert fmt_count(-3) == "-3" and fmt_count(12, signed=True) == "+12"
    with pytest.raises(ValueError, match="not a whole number"):
        fmt_count(7846.4)


def test_money_has_separators_and_the_currency():
    assert fmt_money(2500315.63, "USD") == "2,500,316 USD"
    assert fmt_money(2500315.63, "USD", decimals=2) == "2,500,315.63 USD"
    assert fmt_money(12.5, "$") == "$12.50"
    assert fmt_money(-1234.4, "EUR") == "-1,234 EUR"
    assert fmt_money(0.004, "EUR") == "0.00 EUR"  # no "-0.00"
    assert fmt_money(-0.004, "EUR") == "0.00 EUR"
    assert fmt_money(500, "USD", signed=True) == "+500.00 USD"


def test_shares_are_percentages():
    assert fmt_share(0.2346) == "23.5%"
    assert fmt_share(1.0) == "100.0%" and fmt_share(0) == "0.0%"
    assert fmt_share(0.2346, decimals=0) == "23%"
    assert fmt_share(0.0126, signed=True, points=True) == "+1.3 pp"
    assert fmt_share(-0.05, signed=True) == "-5.0%"


def test_numbers_have_at_most_four_significant_decimals():
    assert fmt_number(41.946311) == "41.95"
    assert fmt_number(19684.0) == "19,684"
    assert fmt_number(2500315.63) == "2,500,316"
    assert fmt_number(0.000000123) == "1.23e-07"
    assert fmt_number(0.5) == "0.5" and fmt_number(0) == "0" and fmt_number(-2.0) == "-2"
    assert fmt_number(999.96) == "1,000"
    assert fmt_number(0.123456, sig=2) == "0.12"


def test_number_rule_holds_for_any_value():
    rng = np.random.default_rng(7)
    values = np.r_[rng.uniform(-999, 999, 300), 10.0 ** rng.uniform(-9, 2.9, 300)]
    for v in values:
        s = fmt_number(v)
        if "e" in s:
            mantissa = s.split("e")[0]
            assert len(re.sub(r"\D", "", mantissa)) <= 4
            assert abs(v) < 1e-4
        else:
            digits = re.sub(r"\D", "", s).lstrip("0")
            assert len(digits) <= 4 or float(s.replace(",", "")).is_integer(), (v, s)
        assert math.isclose(float(s.replace(",", "")), v, rel_tol=5e-4, abs_tol=0), (v, s)


def test_missing_values_need_a_reason_and_never_print_nan():
    for v in (None, float("nan"), np.nan, float("inf"), pd.NA, pd.NaT):
        assert fmt_value(v, "money", currency="USD", missing="no repeat buyers") == "n/a: no repeat buyers"
        with pytest.raises(MissingValueError, match="no reason"):
            fmt_value(v, "number")
    assert format_value(None) == "n/a: not computed (null in results.json)"
    assert format_value(19684.0) == "19,684" and format_value(0.41946311) == "0.4195"


def test_fmt_value_kinds_units_and_asked_precision():
    assert fmt_value(12, "count", unit="months") == "12 months"
    assert fmt_value(2500315.63, "money", unit="USD") == "2,500,316 USD"
    assert fmt_value(0.25, "share") == "25.0%"
    assert fmt_value(41.946311, "number", fmt="{:.6f}") == "41.946311"  # asked for
    assert fmt_value(True, "text") == "yes"
    assert fmt_value(pd.Timestamp("1997-09-30"), "auto") == "1997-09-30"
    assert fmt_value(7846, "auto") == "7,846" and fmt_value(7846.25, "auto") == "7,846"
    with pytest.raises(ValueError, match="unknown kind"):
        fmt_value(1, "percent")


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------

def comparison():
    return pd.DataFrame({"customers": [7846.0, 19684.0], "revenue": [2500315.63, 1234.5],
                         "share_active": [0.2346, 0.5], "mae": [0.41946311, np.nan], "method": ["a", "b"]},
                        index=pd.Index(["BG/NBD", "baseline"], name="model"))


def test_table_formats_each_column_by_its_kind():
    t = report.table(comparison(), {"customers": "count", "revenue": "money", "share_active": "share",
                                    "mae": "number", "method": "text"}, currency="USD",
                     missing={"mae": "no model: the baseline has no MAE"})
    assert t.text.loc["BG/NBD"].tolist() == ["7,846", "2,500,316 USD", "23.5%", "0.4195", "a"]
    assert t.text.loc["baseline", "mae"] == "n/a: no model: the baseline has no MAE"
    html = t._repr_html_()
    assert no_bad_tokens(html) and "2,500,316 USD" in html and ">model</th>" in html


def test_table_missing_value_without_reason_names_column_and_rows():
    with pytest.raises(MissingValueError, match=r"column 'mae' has 1 missing value\(s\) \(rows: baseline\)"):
        report.table(comparison(), {"mae": "number"})
    with pytest.raises(ValueError, match="does not have: \\['rmse'\\]"):
        report.table(comparison(), {"rmse": "number"}, missing="x")


def test_long_table_capped_with_a_note_and_the_full_csv(tmp_path):
    df = pd.DataFrame({"value": np.arange(60) / 7.0}, index=pd.Index(range(60), name="row"))
    t = report.table(df, max_rows=10, csv_dir=tmp_path, name="sensitivity")
    assert len(t.text) == 10
    assert t.note == "Showing the first 10 of 60 rows; the full table: sensitivity.csv in the run folder."
    full = pd.read_csv(tmp_path / "sensitivity.csv", index_col=0)
    assert len(full) == 60 and np.allclose(full["value"], df["value"])
    assert t.note in t._repr_html_()
    t = report.table(df, max_rows=10, full_table="results.json, key segments.sensitivity")
    assert t.note.endswith("the full table: results.json, key segments.sensitivity.")
    t = report.table(df, max_rows=10, csv_dir="", name="sensitivity")  # interactive: no run folder
    assert "export_dir is empty" in t.note
    with pytest.raises(ValueError, match="60 rows, more than max_rows=10"):
        report.table(df, max_rows=10)
    assert len(report.table(df, max_rows=60).text) == 60 and report.table(df, max_rows=60).note == ""


# ---------------------------------------------------------------------------
# headlines
# ---------------------------------------------------------------------------

def declared(equity=2500315.63):
    h = report.Headlines("Which model forecasts best, and what is the base worth?", currency="USD")
    h.add("customer_equity.estimate", "Customer equity, 12 months", equity, "money", lower=2.1e6, upper=2.9e6,
          level=0.9)
    h.add("customers", "Customers", 23570, "count")
    h.add("holdout.total_error_pct.bgnbd", "Holdout forecast error, BG/NBD", -0.032, "share")
    h.add("payback_months", "Payback of the acquisition cost", float("inf"), "number", "months",
          missing="not paid back within 12 months")
    return h


def test_headlines_feed_results_once():
    h = declared()
    res = h.record({"customer_equity": {"lower": 2.1e6, "upper": 2.9e6}, "models": {"bgnbd": {"params": {"r": 0.24}}}},
                   meaning=["**The base is worth 2.5 M USD.**"])
    assert res["customer_equity"] == {"lower": 2.1e6, "upper": 2.9e6, "estimate": 2500315.63}
    assert res["holdout"]["total_error_pct"]["bgnbd"] == -0.032 and res["customers"] == 23570
    assert res["payback_months"] is None  # infinite: JSON null, shown with its reason
    heads = report.headlines_from_results(res)
    assert [x["key"] for x in heads] == [i.key for i in h.items]
    assert heads[0]["text"] == "2,500,316 USD" and heads[0]["unit"] == "USD" and heads[0]["level"] == 0.9
    assert heads[2]["text"] == "-3.2%"
    assert heads[3]["text"] == "n/a: not paid back within 12 months"
    assert json.loads(json.dumps(res)) == res
    assert report.Headline.from_dict(heads[0]).text == "2,500,316 USD"


def test_headline_rules():
    with pytest.raises(ValueError, match="3-8 headline numbers, got 2"):
        report.record_results({}, headlines=declared().items[:2])
    many = [report.headline(f"k{i}", f"K {i}", i, "count") for i in range(9)]
    with pytest.raises(ValueError, match="got 9"):
        report.record_results({}, headlines=many)
    with pytest.raises(ValueError, match="declare the number once"):
        declared().record({"customers": 23000})
    with pytest.raises(MissingValueError, match="'x' .*no value and no reason"):
        report.headline("x", "X", float("nan"), "number")
    with pytest.raises(ValueError, match="declared twice"):
        declared().add("customers", "again", 1, "count")
    with pytest.raises(ValueError, match="not a whole number"):
        report.headline("n", "N", 3.5, "count")
    with pytest.raises(ValueError, match="reserved key"):
        report.record_results({"headlines": 1}, headlines=declared().items)


def headline_notebook(progress_lines=("progress · bootstrap resamples: 50/50",)):
    """An executed notebook as papermill stores it: title, a progress display, a table, the answer."""
    res = declared().record({"models": {"bgnbd": {"params": {"r": 0.24}}}}, meaning=["- It is worth a lot."])
    md = report._answer_markdown(declared().question, declared().items, ["- It is worth a lot."])
    nb = nbformat.v4.new_notebook()
    title = nbformat.v4.new_markdown_cell("# 02 CLV models\n\nWhat is the base worth?")
    work = nbformat.v4.new_code_cell("boot = value.bootstrap(...)")
    work.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": line}) for line in progress_lines]
    work.outputs.append(nbformat.v4.new_output("display_data", data={
        "text/html": report.table(comparison(), {"mae": "number"}, missing="baseline: no model")._repr_html_(),
        "text/plain": "table"}))
    body = nbformat.v4.new_markdown_cell("## Body of the report")
    rec = nbformat.v4.new_code_cell("h.record(...)")
    rec.outputs = [nbformat.v4.new_output("display_data", data={
        "text/markdown": md, "text/plain": md, report.RESULTS_MIME: res,
        report.HEADLINES_MIME: {"question": declared().question, "headlines": res["headlines"], "meaning": []}})]
    nb.cells = [title, work, body, rec]
    return nbformat.from_dict(json.loads(json.dumps(nb))), res


def test_extract_results_reads_the_declaration():
    nb, res = headline_notebook()
    assert report.extract_results(nb) == res
    assert [h["key"] for h in report.extract_answer(nb)["headlines"]] == [h["key"] for h in res["headlines"]]


def test_prepare_report_strips_progress_and_puts_the_answer_first():
    nb, _ = headline_notebook(("progress · bootstrap resamples: 50/50", "progress · simulated firms: 200/200"))
    before = json.dumps(nb)
    out = report.prepare_report(nb, appendix_markdown="### Parameters and provenance\n\n| a | b |")
    assert json.dumps(nb) == before  # the executed notebook itself is not changed
    texts = [report._text_of(o) for c in out.cells for o in c.get("outputs", [])]
    assert not any(t.startswith("progress ·") for t in texts)
    assert out.cells[0].source.startswith("# 02 CLV models")
    assert out.cells[1].cell_type == "markdown" and out.cells[1].source.startswith("## The answer")
    assert "Customer equity, 12 months | **2,500,316 USD**" in out.cells[1].source
    assert out.cells[-1].source.startswith("### Parameters and provenance")
    assert not any(report.HEADLINES_MIME in o.get("data", {}) for c in out.cells for o in c.get("outputs", []))


def test_rendered_report_has_the_answer_first_and_no_progress_or_nan():
    from nbconvert import HTMLExporter

    nb, _ = headline_notebook()
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    raw, _ = exporter.from_notebook_node(nb)
    assert "progress · bootstrap" in raw  # without the render-time step the leftover is there
    page, _ = exporter.from_notebook_node(report.prepare_report(nb))
    assert "progress ·" not in page
    assert page.index("The answer") < page.index("Body of the report")
    assert "2,500,316 USD" in page and "n/a: not paid back within 12 months" in page
    body = re.sub(r"<style.*?</style>|<script.*?</script>", "", page, flags=re.S)
    assert no_bad_tokens(re.sub(r"<[^>]+>", " ", body))
    assert report.leftovers(page) == []
    assert any(f.startswith("progress line") for f in report.leftovers(raw))


def test_leftovers_finds_raw_missing_values_not_prose():
    page = ("<html><style>.nan{}</style><body><p>None of the customers came back.</p>"
            "<table><tr><td>NaN</td><td> None </td><td>1.5</td><td>n/a: no repeat buyers</td></tr></table>"
            "<p>the mean is nan here</p><pre>progress · simulated firms: 200/200</pre></body></html>")
    found = report.leftovers(page)
    assert found[:2] == ["table cell 'NaN'", "table cell 'None'"]
    assert any("the mean is nan here" in f for f in found)
    assert any(f.startswith("progress line …progress · simulated firms") for f in found)
    assert len(found) == 5  # the NaN cell is also a NaN word; the prose "None" is not flagged
    assert report.leftovers("<table><tr><td>n/a: not computed</td></tr></table><p>None of them</p>") == []


def test_transient_metadata_is_dropped():
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("x")
    c.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "keep me"}),
                 nbformat.v4.new_output("display_data", data={"text/plain": "step 3 of 9"},
                                        metadata=report.TRANSIENT_METADATA),
                 nbformat.v4.new_output("display_data", data={"text/plain": "progress · x: 1/2",
                                                              "text/html": "<b>a real result</b>"})]
    nb.cells = [c]
    assert report.strip_transient(nb) == 1
    assert [report._text_of(o) for o in nb.cells[0].outputs] == ["keep me", "progress · x: 1/2"]


def test_progress_of_a_real_kernel_never_reaches_the_report(tmp_path):
    """helpers.progress on the clv-lab kernel, executed as papermill would, rendered as the runner will."""
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "clv-lab", "display_name": "Python (clv-lab)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A report"),
        nbformat.v4.new_code_cell("from helpers import progress, report\n"
                                  "total = sum(progress.progress(range(40), 40, 'bootstrap resamples'))"),
        nbformat.v4.new_markdown_cell("## The body"),
        nbformat.v4.new_code_cell(
            "h = report.Headlines('What is the sum?', currency='USD')\n"
            "h.add('total', 'Sum of 0..39', total, 'count')\n"
            "h.add('money', 'Money', 1234567.891, 'money')\n"
            "h.add('share', 'Share', 0.25, 'share')\n"
            "_ = h.record({'n': 40}, meaning=['The sum is 780.'])"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="clv-lab", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [report._text_of(o) for c in nb.cells for o in c.get("outputs", [])]
    assert "progress · bootstrap resamples: 40/40" in shown  # what the kernel left in the notebook
    res = report.extract_results(nb)
    assert res["total"] == 780 and res["n"] == 40
    assert [h["text"] for h in res["headlines"]] == ["780", "1,234,568 USD", "25.0%"]
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    page, _ = exporter.from_notebook_node(report.prepare_report(nb))
    assert "progress ·" not in page and "bootstrap resamples" not in page
    assert page.index("What is the sum?") < page.index("The body")


COMMITTED = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_reports_follow_the_formatting_rules(path):
    """Every notebook as committed (executed on the default configuration, nbval-checked), rendered by
    the runner's render step: answer first with 3-8 declared headlines, no nan/None/NaN, no progress
    line, the print stylesheet in the page."""
    from helpers.run import render_html

    nb = nbformat.read(path, as_version=4)
    answer = report.extract_answer(nb)
    assert answer is not None, f"{path.stem} declares no headlines (report.Headlines)"
    assert report.MIN_HEADLINES <= len(answer["headlines"]) <= report.MAX_HEADLINES
    assert answer["question"] and answer["meaning"], path.stem
    assert report.extract_results(nb)["headlines"] == answer["headlines"]  # one declaration feeds both
    tables = ["".join(o["data"]["text/html"]) for c in nb.cells for o in c.get("outputs", [])
              if "<table" in "".join(o.get("data", {}).get("text/html", ""))]
    assert all("clv-table" in t for t in tables), f"{path.stem}: a table not formatted by report.table"
    page = render_html(nb, {"config": "default"}, {})
    assert report.leftovers(page) == [], path.stem
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", page, flags=re.S)
    assert headings and re.sub(r"<[^>]+>", "", headings[0]).startswith("The answer"), (path.stem, headings[:2])
    assert "@media print" in page and "overflow-wrap: anywhere" in page
