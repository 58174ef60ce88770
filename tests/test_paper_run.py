"""End to end: `clv-lab run configs/cdnow-paper.yaml` reproduces Fader, Hardie & Lee (2005).

Published numbers (../shared/MISSION.md): BG/NBD r=0.243, alpha=4.414, a=0.793,
b=2.426, LL=-9582.4; Pareto/NBD r=0.553, alpha=10.578, s=0.606, beta=11.669,
LL=-9595.0; Gamma-Gamma on 946 repeat buyers p=6.25, q=3.74, gamma=15.44; 1,882
repeat transactions in weeks 40-78.
"""

import json
from pathlib import Path

import pytest

from helpers.run import run_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    run = run_config(ROOT / "configs" / "cdnow-paper.yaml", out, progress=False)
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
        assert m["params"][k] == pytest.approx(v, abs=0.005), k
    assert round(m["log_likelihood"], 1) == -9595.0


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
