"""End to end: `clv-lab run configs/cdnow-paper.yaml` reproduces Fader, Hardie & Lee (2005).

Published numbers (docs/purpose.md): BG/NBD r=0.243, alpha=4.414, a=0.793,
b=2.426, LL=-9582.4; Pareto/NBD r=0.553, alpha=10.578, s=0.606, beta=11.669,
LL=-9595.0; Gamma-Gamma on 946 repeat buyers p=6.25, q=3.74, gamma=15.44; 1,882
repeat transactions in weeks 40-78.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.run import run_config

from collections_support import quick_notebooks

ROOT = Path(__file__).resolve().parents[1]


#: The reports whose results these tests read (03 and 05 run on every configuration in test_collection.py
#: and under nbval; leaving them out here keeps CI within its time).
PAPER_NOTEBOOKS = ("01-data-overview", "02-clv-models", "04-customer-segments")


@pytest.fixture(scope="module")
def paper_results(tmp_path_factory):
    import yaml

    out = tmp_path_factory.mktemp("reports")
    cfg = yaml.safe_load((ROOT / "configs" / "cdnow-paper.yaml").read_text())
    cfg["data"]["path"] = str((ROOT / "configs" / cfg["data"]["path"]).resolve())
    cfg["notebooks"] = quick_notebooks(ROOT / "notebooks" / f"{name}.ipynb" for name in PAPER_NOTEBOOKS)
    path = tmp_path_factory.mktemp("config") / "cdnow-paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = run_config(path, out, progress=False)
    assert [nb["name"] for nb in run["notebooks"]] == list(PAPER_NOTEBOOKS)
    assert run["status"] == "ok", [nb.get("error") for nb in run["notebooks"]]
    run_dir = Path(run["run_dir"])
    results = {nb["name"]: json.loads((run_dir / nb["name"] / "results.json").read_text()) for nb in run["notebooks"]}
    results["_run_dir"] = run_dir
    return results


def test_bgnbd_published(paper_results):
    m = paper_results["02-clv-models"]["models"]["bgnbd"]
    assert {k: round(v, 3) for k, v in m["params"].items()} == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert round(m["log_likelihood"], 1) == -9582.4


def test_pareto_nbd_published(paper_results):
    m = paper_results["02-clv-models"]["models"]["pareto_nbd"]
    published = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    for k, v in published.items():
        assert m["params"][k] == pytest.approx(v, abs=5e-4), k      # published to 3 decimals
    assert round(m["log_likelihood"], 1) == -9595.0


def test_standard_errors_exported(paper_results, paper_split):
    """The report's standard errors are the references' (see test_standard_errors.py): lifetimes 0.11.3 for
    BG/NBD (issue 17, 6 decimals), MBG/NBD and Gamma-Gamma (fitted here), CLVTools' published Pareto/NBD
    errors (its testthat tolerance 0.001)."""
    import lifetimes

    r = paper_results["02-clv-models"]
    bg = {"r": 0.012557, "alpha": 0.378224, "a": 0.185734, "b": 0.705414}
    for k, v in bg.items():
        assert r["models"]["bgnbd"]["se"][k] == pytest.approx(v, abs=5e-7), k
    clvtools = {"r": 0.0476264, "alpha": 0.8427222, "s": 0.1872594, "beta": 6.2105448}
    for k, v in clvtools.items():
        assert r["models"]["pareto_nbd"]["se"][k] == pytest.approx(v, rel=1e-3), k
    cal = paper_split
    mbg = lifetimes.ModifiedBetaGeoFitter().fit(cal["x"], cal["t_x"], cal["T"])
    for k, v in mbg.summary["se(coef)"].items():
        assert r["models"]["mbgnbd"]["se"][k] == pytest.approx(v, rel=2e-5), k
    rep = cal[cal["x"] > 0]
    gg = lifetimes.GammaGammaFitter().fit(rep["x"], rep["m_x"])
    for k, v in zip(("p", "q", "gamma"), gg.summary["se(coef)"]):
        assert r["gamma_gamma"]["se"][k] == pytest.approx(v, rel=2e-5), k


def test_gamma_gamma_published(paper_results):
    g = paper_results["02-clv-models"]["gamma_gamma"]
    assert g["n_used"] == 946
    assert {k: round(v, 2) for k, v in g["params"].items()} == {"p": 6.25, "q": 3.74, "gamma": 15.44}


def test_holdout_counts_published(paper_results):
    h = paper_results["02-clv-models"]["holdout"]
    assert h["actual_total"] == 1882
    assert paper_results["01-data-overview"]["repeat_purchase_days_calibration"] == 2457
    assert paper_results["01-data-overview"]["repeat_purchase_days_after_calibration"] == 1882


def test_results_contract(paper_results):
    """The keys dashboards rely on (issue: CLV models notebook)."""
    r = paper_results["02-clv-models"]
    for model in ("bgnbd", "mbgnbd", "pareto_nbd"):
        assert {"params", "se", "log_likelihood"} <= set(r["models"][model])
        assert model in r["holdout"]["predicted_total"] and model in r["holdout"]["mae"]
    assert "baseline" in r["holdout"]["mae"]
    assert {"p", "q", "gamma"} == set(r["gamma_gamma"]["params"])
    assert "frequency_spend_corr" in r["gamma_gamma"]
    ce = r["customer_equity"]
    assert ce["lower"] <= ce["estimate"] <= ce["upper"]


def test_customer_equity_recomputed_with_lifetimes(paper_results, cdnow_sample):
    """The reported customer equity recomputed independently: the exported final-model and full-period
    Gamma-Gamma parameters in lifetimes 0.11.3's conditional expectations and spend, on the full-period
    summary, months of 365.25/12 days, with the notebook's margin, discount rate and horizon (its defaults
    and the run's parameters)."""
    import lifetimes

    from helpers.summary import rfm_summary

    run = json.loads((paper_results["_run_dir"] / "run.json").read_text())
    val = run["valuation"]                      # the run's one valuation (config `valuation:`, the stage)
    assert run["model"]["time_unit"] == "W"
    r = paper_results["02-clv-models"]
    name = r["model"]["name"]
    assert name == run["model"]["name"]
    cls = {"bgnbd": "BetaGeoFitter", "mbgnbd": "ModifiedBetaGeoFitter", "pareto_nbd": "ParetoNBDFitter"}[name]
    lf = getattr(lifetimes, cls)()
    lf.params_ = pd.Series(r["model"]["params"])
    lg = lifetimes.GammaGammaFitter()
    gg = r["gamma_gamma"]["full_period_params"]
    lg.params_ = pd.Series({"p": gg["p"], "q": gg["q"], "v": gg["gamma"]})
    params = {"horizon_months": val["horizon_months"], "monthly_discount_rate": val["monthly_discount_rate"],
              "margin": val["margin"]}
    full = rfm_summary(cdnow_sample.transactions, time_unit="W")
    H, d = int(params["horizon_months"]), float(params["monthly_discount_rate"])
    E = np.column_stack([np.zeros(len(full))] + [
        lf.conditional_expected_number_of_purchases_up_to_time(m * 365.25 / 12 / 7, full["x"], full["t_x"],
                                                               full["T"]) for m in range(1, H + 1)])
    spend = lg.conditional_expected_average_profit(full["x"], full["m_x"]).to_numpy()
    equity = params["margin"] * spend @ np.diff(E, axis=1) @ (1 + d) ** -np.arange(1.0, H + 1)
    assert r["customer_equity"]["estimate"] == pytest.approx(equity, rel=1e-8)  # parameters kept to 10 digits


def test_segment_table_exported_for_the_crm(paper_results):
    """04 writes its per-customer segment table into its run folder, with raw ids (for the CRM)."""
    import pandas as pd

    folder = paper_results["_run_dir"] / "04-customer-segments"
    table = pd.read_parquet(folder / "customer_segments.parquet")
    csv = pd.read_csv(folder / "customer_segments.csv", dtype={"customer_id": str})
    assert len(table) == len(csv) == 2357
    assert set(table["segment"].astype(str)) <= {"MVC", "MGC", "Maintain", "BZ"}
    seg = paper_results["04-customer-segments"]["segments"]
    assert sum(v["customers"] for v in seg.values()) == 2357
    html = (folder / "04-customer-segments.html").read_text()
    ids = table["customer_id"] if "customer_id" in table.columns else table.index.to_series()
    assert not any(f">{i}<" in html for i in ids.astype(str).head(50))  # the report shows pseudonyms
