"""The whole report collection through `clv-lab run` on logs WITHOUT amounts (issue: one run, one model).

Two frequency-only configurations run every notebook: CDNOW with its amounts left out
(`configs/cdnow-no-amounts.yaml`) and a simulated retailer whose true BG/NBD parameters are
known (`configs/simulated-frequency.yaml`).  Checks: every notebook ok; every results.json
names the run's model; the index shows the stage's customer equity, which equals 02's; the
frequency models fitted without amounts equal those of the default run with amounts (read
from the committed, nbval-checked notebook 02); the simulated truth is recovered.
"""

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from helpers.config import load_config
from helpers.report import extract_results
from helpers.run import run_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["cdnow-no-amounts", "simulated-frequency"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each configuration run once per module, on first use."""
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            run = run_config(ROOT / "configs" / f"{name}.yaml", out, progress=False)
            run_dir = Path(run["run_dir"])
            results = {}
            for nb in run["notebooks"]:
                f = run_dir / nb["name"] / "results.json"
                results[nb["name"]] = json.loads(f.read_text()) if f.exists() else {}
            cache[name] = (name, run, run_dir, results)
        return cache[name]

    return get


@pytest.fixture(params=CONFIGS)
def frequency_run(request, runs):
    return runs(request.param)


def test_every_notebook_runs_without_amounts(frequency_run):
    name, run, _, _ = frequency_run
    assert run["status"] == "ok", [(nb["name"], nb.get("error")) for nb in run["notebooks"] if nb["status"] != "ok"]
    listed = {Path(nb.path).stem for nb in load_config(ROOT / "configs" / f"{name}.yaml").notebooks}
    assert {nb["name"] for nb in run["notebooks"]} == listed and len(listed) == 6


def test_every_report_names_the_runs_model(frequency_run):
    _, run, _, results = frequency_run
    names = {nb: r["model"]["name"] for nb, r in results.items()}
    assert set(names.values()) == {run["model"]["name"]}, names
    horizons = {nb: r["valuation"]["horizon_months"] for nb, r in results.items()}
    assert len(set(horizons.values())) == 1, horizons


def test_index_equity_is_the_stage_equity_and_02s(frequency_run):
    _, run, run_dir, results = frequency_run
    equity = results["02-clv-models"]["customer_equity"]["estimate"]
    assert equity == pytest.approx(run["valuation"]["customer_equity"], rel=1e-9)  # results.json keeps 10 digits
    index = (run_dir / "index.html").read_text()
    assert f"{equity:,.0f}" in index
    # values without amounts are purchases, and the reports say so
    assert run["valuation"]["units"] == "purchases"


def test_no_amount_models_equal_the_amount_run(runs):
    _, _, _, results = runs("cdnow-no-amounts")
    committed = nbformat.read(ROOT / "notebooks" / "02-clv-models.ipynb", as_version=4)
    with_amounts = extract_results(committed)        # the default run, on CDNOW with amounts
    without = results["02-clv-models"]
    for model, m in with_amounts["models"].items():
        for k, v in m["params"].items():
            assert without["models"][model]["params"][k] == pytest.approx(v, rel=1e-9), (model, k)
        assert without["models"][model]["log_likelihood"] == pytest.approx(m["log_likelihood"], rel=1e-12)
    assert without["model"]["name"] == with_amounts["model"]["name"]


def test_simulated_truth_recovered(runs):
    _, _, _, results = runs("simulated-frequency")
    truth = load_config(ROOT / "configs" / "simulated-frequency.yaml").simulate
    m = results["02-clv-models"]["models"]["bgnbd"]
    for k in ("r", "alpha", "a", "b"):
        z = (m["params"][k] - truth[k]) / m["se"][k]
        # per-day counting biases alpha upwards by a few percent at weekly rates (README); 4 SE allows it
        assert abs(z) < 4, (k, m["params"][k], truth[k], z)


def test_reports_have_no_raw_missing_values(frequency_run):
    _, run, run_dir, _ = frequency_run
    for nb in run["notebooks"]:
        html = (run_dir / nb["name"] / f"{nb['name']}.html").read_text()
        body = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S)
        # a raw missing value in a table cell, or in a sentence as the words nan/NaN
        cells = re.findall(r"<t[dh][^>]*>\s*(None|nan|NaN|<NA>|NaT)\s*</t[dh]>", body)
        assert not cells, (nb["name"], cells[:5])
        text = re.sub(r"<[^>]+>", " ", body)
        for token in (" nan ", " NaN ", "progress ·"):
            assert token not in f" {text} ", (nb["name"], token)
    assert np.isfinite(run["valuation"]["customer_equity"])
