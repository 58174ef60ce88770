"""clv-lab compare and the dashboard index on synthetic run folders with a known change.

Run A: customer equity 1,000,000 USD with the 90% interval 900,000 to 1,100,000; BG/NBD r = 0.24 (se 0.01),
alpha = 4.4 (se 0.2).  Run B: equity 1,500,000 (interval 1,350,000 to 1,650,000) and r = 0.245, alpha unchanged.
The allowed change of the equity is sqrt(100,000^2 + 150,000^2) = 180,278 < 500,000: beyond; that of r is
1.96 * sqrt(0.01^2 + 0.01^2) = 0.0277 > 0.005: within.
"""

import json
import math
import re
from pathlib import Path

import pytest

from helpers import compare, dashboard, report


def headlines(equity, lower, upper, mae=0.52, customers=2357, model="bgnbd"):
    return [
        report.headline("customer_equity.estimate", "Customer equity, 12 months", equity, "money", "USD",
                        lower=lower, upper=upper, level=0.9),
        report.headline("customers", "Customers", customers, "count"),
        report.headline("holdout.mae", "Holdout MAE per customer", mae, "number", "purchases"),
        report.headline("recommended_model", "Recommended model", model, "text"),
    ]


def write_run(base: Path, stamp: str, status="ok", equity=1_000_000.0, lower=900_000.0, upper=1_100_000.0,
              r=0.24, alpha=4.4, mae=0.52, sha="a" * 64, failed_nb=False) -> Path:
    run_dir = base / stamp
    results = report.record_results(
        {"models": {"bgnbd": {"params": {"r": r, "alpha": alpha}, "se": {"r": 0.01, "alpha": 0.2}}},
         "customer_equity": {"lower": lower, "upper": upper}},
        headlines=headlines(equity, lower, upper, mae), question="What is the base worth?")
    notebooks = [{"name": "02-clv-models", "status": "ok", "duration_s": 12.5, "results": results,
                  "parameters": {"horizon_months": 12, "config": "/x.yaml"}},
                 {"name": "01-data-overview", "status": "failed" if failed_nb else "ok", "duration_s": 3.25,
                  "results": {"customers": 2357}, "parameters": {"horizon_months": 12},
                  **({"error": "cell 4: RuntimeError: boom"} if failed_nb else {})}]
    for nb in notebooks:
        (run_dir / nb["name"]).mkdir(parents=True)
        (run_dir / nb["name"] / "results.json").write_text(json.dumps(nb["results"]))
    run = {"status": status, "config": {"name": "demo", "path": "/configs/demo.yaml", "description": "a demo",
                                        "content": {"parameters": {"model": "bgnbd"}}},
           "data_path": "/data/x.csv", "data_sha256": sha, "git_commit": "abc123", "clv_lab_version": "0.1.0",
           "started": f"2025-01-0{stamp[-1]}T00:00:00+00:00", "finished": "later", "duration_s": 20.0,
           "packages": {"numpy": "2.2.6"}, "notebooks": notebooks}
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir


@pytest.fixture()
def runs(tmp_path):
    base = tmp_path / "reports" / "demo"
    a = write_run(base, "20250101T000000Z1")
    write_run(base, "20250102T000000Z2", status="failed", equity=5.0, failed_nb=True)  # never compared with
    b = write_run(base, "20250103T000000Z3", equity=1_500_000.0, lower=1_350_000.0, upper=1_650_000.0, r=0.245,
                  sha="b" * 64)
    c = write_run(base, "20250104T000000Z4", equity=1_500_000.0, lower=1_350_000.0, upper=1_650_000.0, r=0.245,
                  sha="b" * 64)
    (base / "latest").symlink_to(c.name, target_is_directory=True)
    return base, a, b, c


def rows_by_key(a, b):
    _, rows = compare.compare_runs(compare.load_run(a), compare.load_run(b))
    return {r.key: r for r in rows}


def test_known_change_is_beyond_and_small_one_within(runs):
    _, a, b, _ = runs
    rows = rows_by_key(a, b)
    eq = rows["customer_equity.estimate"]
    assert eq.verdict == "BEYOND interval" and eq.moved
    assert eq.details["threshold"] == pytest.approx(math.hypot(100_000, 150_000))
    assert eq.old == "1,000,000 USD" and eq.new == "1,500,000 USD" and eq.change == "+500,000 USD (+50.0%)"
    r = rows["models.bgnbd.params.r"]
    assert r.verdict == "within interval" and not r.moved
    assert r.details["threshold"] == pytest.approx(1.959964 * math.hypot(0.01, 0.01), rel=1e-6)
    assert rows["models.bgnbd.params.alpha"].verdict == "same"
    assert rows["holdout.mae"].verdict == "same" and rows["customers"].verdict == "same"
    assert rows["recommended_model"].verdict == "same"


def test_change_without_interval_is_reported_but_does_not_fail(tmp_path):
    base = tmp_path / "demo"
    a = write_run(base, "20250101T000000Z1", mae=0.52)
    b = write_run(base, "20250102T000000Z2", mae=0.61)
    rows = rows_by_key(a, b)
    assert rows["holdout.mae"].verdict == "no interval"
    assert rows["holdout.mae"].change == "+0.09 purchases (+17.3%)"
    assert compare.main_compare([str(a), str(b), "--no-html"]) == 0


def test_exit_status_both_ways_and_html(runs, capsys):
    base, a, b, c = runs
    assert compare.main_compare([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "customer_equity.estimate" in ln)
    assert "BEYOND interval" in line and "1,000,000 USD" in line and "1,500,000 USD" in line
    assert "data SHA-256" in out  # the runs were made on different data
    page = (base / f"compare-{a.name}-vs-{b.name}.html").read_text()
    assert "1 item(s) moved beyond their sampling interval" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page and "@media print" in page
    assert compare.main_compare([str(b), str(c), "--no-html"]) == 0
    assert "Nothing" not in capsys.readouterr().out  # the table, not the page, goes to stdout


def test_latest_tilde_references_skip_failed_runs(runs):
    base, a, b, c = runs
    assert compare.resolve_run(base / "latest") == c.resolve()
    assert compare.resolve_run(f"{base}/latest~1") == b.resolve()
    assert compare.resolve_run(f"{base}/latest~2") == a.resolve()  # the failed run in between is skipped
    assert compare.resolve_run(f"{base}/latest~") == b.resolve()
    assert compare.main_compare([f"{base}/latest~2", f"{base}/latest", "--no-html"]) == 1
    assert compare.main_compare([f"{base}/latest~1", f"{base}/latest", "--no-html"]) == 0


def test_bad_input_exits_2(runs, tmp_path, capsys):
    base, a, _, _ = runs
    assert compare.main_compare([str(tmp_path / "nope"), str(a)]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert compare.main_compare([str(tmp_path / "empty"), str(a)]) == 2
    assert "no run.json" in capsys.readouterr().err
    assert compare.main_compare([f"{base}/latest~9", str(a)]) == 2
    assert "only 2 successful run(s)" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    assert compare.main_compare([str(bad), str(a)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert compare.main_compare([str(a)]) == 2  # argparse: RUN_B missing


def test_only_in_one_run(tmp_path):
    base = tmp_path / "demo"
    a = write_run(base, "20250101T000000Z1")
    b = write_run(base, "20250102T000000Z2")
    res = json.loads((b / "02-clv-models" / "results.json").read_text())
    res["models"]["pareto_nbd"] = {"params": {"r": 0.5}}
    (b / "02-clv-models" / "results.json").write_text(json.dumps(res))
    rows = rows_by_key(a, b)
    assert rows["models.pareto_nbd.params.r"].verdict == "only in B"


def test_hook_for_the_clv_lab_parser(runs):
    import argparse

    _, a, b, _ = runs
    parser = argparse.ArgumentParser(prog="clv-lab")
    sub = parser.add_subparsers(dest="command", required=True)
    compare.add_compare_parser(sub)
    args = parser.parse_args(["compare", str(a), str(b), "--no-html"])
    assert compare.run_compare(args) == 1


# --- dashboard ----------------------------------------------------------------

def test_index_is_a_dashboard(runs):
    base, a, b, c = runs
    page = dashboard.index_for_run_dir(b)
    top = page.split("<h2>")[0]
    assert "bgnbd" in top and "1,500,000 USD" in top and "90% interval 1,350,000 USD to 1,650,000 USD" in top
    assert "notebook parameters" in top  # where the horizon came from
    assert "12 months" in top
    # every declared headline, with its unit and value
    for label, text in [("Customer equity, 12 months", "1,500,000 USD"), ("Customers", "2,357"),
                        ("Holdout MAE per customer", "0.52 purchases"), ("Recommended model", "bgnbd")]:
        assert re.search(rf"<td>{re.escape(label)}</td><td class='num'><strong>{re.escape(text)}</strong>", page)
    # change against the previous *successful* run (A, not the failed one in between)
    assert f"../{a.name}/index.html" in page
    assert "+500,000 USD (+50.0%) (BEYOND interval)" in page
    assert "no change" in page
    # links to every earlier run, failed ones included
    for stamp in ("20250101T000000Z1", "20250102T000000Z2"):
        assert f"href='../{stamp}/index.html'" in page
    assert "20250104" not in page  # later runs are not "earlier runs"
    assert "12.5 s" in page
    assert "No headline numbers declared; the first 1 of 1 recorded results" in page  # 01 declares none
    assert "<td><code>customers</code></td><td class='num'>2,357</td>" in page
    for bad in ("http://", "https://", "<script", "<link", ">nan<", ">None<", "NaN"):
        assert bad not in page
    assert "@media print" in page


def test_first_run_and_failed_notebook(tmp_path):
    base = tmp_path / "demo"
    d = write_run(base, "20250101T000000Z1", status="failed", failed_nb=True)
    page = dashboard.index_for_run_dir(d)
    assert "No earlier successful run" in page and "This is the first run" in page
    assert "cell 4: RuntimeError: boom" in page and "class='failed'" in page


def test_index_html_takes_the_runner_inputs_directly(runs):
    _, a, b, _ = runs
    run = json.loads((b / "run.json").read_text())
    heads = {nb["name"]: report.headlines_from_results(nb["results"]) for nb in run["notebooks"]}
    prev = compare.load_run(a)
    prev["href"] = "../custom/index.html"
    page = dashboard.index_html(run, heads, prev, [{"stamp": "x1", "status": "ok", "started": "s"}])
    assert "../custom/index.html" in page and "href='../x1/index.html'" in page


def test_run_overview_prefers_the_run_record():
    run = {"model": {"name": "pareto_nbd", "label": "Pareto/NBD"}, "horizon_months": 24,
           "customer_equity": 123456.0, "notebooks": []}
    over = dashboard.run_overview(run, {})
    assert over["model"] == "Pareto/NBD" and over["horizon_months"] == 24
    assert over["customer_equity"]["value"] == 123456.0 and over["customer_equity_source"] == "run record"


def test_inject_css_and_print_rules():
    page = "<html><head><title>x</title></head><body></body></html>"
    out = dashboard.inject_css(page)
    assert out.index("@media print") < out.index("</head>")
    css = dashboard.PRINT_CSS
    # tables wrap and shrink, the notebook template's clipped output areas are opened
    assert "white-space: normal" in css and "overflow-wrap: anywhere" in css and "table-layout: auto" in css
    assert "overflow: visible" in css and ".jp-OutputArea-child" in css and "@page" in css


def test_print_rules_hide_code_not_the_text():
    """nbconvert's lab template puts a markdown cell's rendered text (the question, the answer, every
    heading) inside ``.jp-InputArea``, like a code cell's source: a print rule hiding ``.jp-InputArea``
    printed the reports without any of their text (found rendering them to A4 with WeasyPrint)."""
    import re

    hidden = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", dashboard.PRINT_CSS):
        if re.search(r"display\s*:\s*none", body):
            hidden += [sel.strip() for sel in selectors.split(",")]
    assert hidden, "the print rules hide the prompts and the code"
    for sel in hidden:
        parts = sel.split()
        assert not (parts[-1].startswith(".jp-InputArea") and ".jp-CodeCell" not in parts[:-1]), sel
        assert not any(p.startswith((".jp-MarkdownCell", ".jp-RenderedMarkdown", ".jp-Cell-inputWrapper"))
                       for p in parts), sel
    assert ".jp-CodeCell .jp-InputArea" in hidden
