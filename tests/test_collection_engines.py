"""The report collection on a Parquet log with the out-of-core engines (issue: the collection on 1e8 rows).

* A smoke run of every notebook on a simulated multi-cohort Parquet log of about 1e6 rows with
  ``data.engine: duckdb``.
* The same small simulated log through ``pandas`` and ``spark`` (local mode): every notebook's headline
  numbers agree (the engines make the same summaries and aggregates, so the fits and values are the same;
  DuckDB's stage equals pandas' in tests/test_stage.py and its aggregates in the aggregates' tests).
* No notebook holds the transaction log: none calls ``load_data`` or reads ``.transactions``; they read
  the stage's summaries and aggregates, whatever the engine.
"""

import json
import math
import re
from pathlib import Path

import nbformat
import pyarrow.parquet as pq
import pytest
import yaml

from helpers.report import headlines_from_results
from helpers.run import run_config
from helpers.simulate import write_parquet_chunks

from collections_support import quick_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
SIM = dict(r=0.7, alpha=2.5, a=0.6, b=4.0, p=6.25, q=3.74, gamma=15.44, observation_days=1095.0,
           acquisition_days=730.0, resolution="day", start="2021-01-01", time_unit_days=7.0)


def _config(folder: Path, log: Path, engine: str, models: str = "") -> Path:
    listed = yaml.safe_dump(quick_notebooks(NOTEBOOKS), sort_keys=False)  # fewer bootstrap replicates
    path = folder / f"sim-{engine}.yaml"
    path.write_text(f"""name: sim-{engine}
description: simulated multi-cohort log, two years of acquisition, three years of purchases
data:
  path: {log}
  engine: {engine}
  columns: {{customer_id: customer_id, date: date, amount: amount}}
  observation_end: "2023-12-31"
parameters:
  time_unit: W
  calibration_end: "2023-01-31"
{f"models: {models}" if models else ""}
cell_timeout_s: 900
notebooks:
{listed}
""")
    return path


def _results(run) -> dict:
    run_dir = Path(run["run_dir"])
    return {nb["name"]: json.loads((run_dir / nb["name"] / "results.json").read_text()) for nb in run["notebooks"]}


def _headlines(results: dict) -> dict:
    """Every notebook's declared headline values, by notebook and key."""
    return {nb: {h["key"]: h["value"] for h in headlines_from_results(r)} for nb, r in results.items()}


def test_no_notebook_holds_the_log():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert not re.search(r"\bload_data\b|\.transactions\b|\bload_transactions\b", code), path.name


def test_the_collection_on_a_1e6_row_parquet_log_with_duckdb(tmp_path):
    log = tmp_path / "log"
    files = write_parquet_chunks(log, 85_000, chunk_customers=85_000, seed=7, show_progress=False, **SIM)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    assert 900_000 < rows < 1_200_000
    # three models keep CI short (the CDNOW collections fit all six); the other notebooks are all at scale
    run = run_config(_config(tmp_path, log, "duckdb", models="[bgnbd, mbgnbd, pareto_nbd]"), tmp_path / "reports",
                     progress=False)
    assert run["status"] == "ok", [(nb["name"], nb.get("error")) for nb in run["notebooks"] if nb["status"] != "ok"]
    assert {nb["name"] for nb in run["notebooks"]} == {p.stem for p in NOTEBOOKS}
    results = _results(run)
    assert results["01-data-overview"]["transactions"] == rows
    assert results["01-data-overview"]["customers"] == 85_000
    equity = results["02-clv-models"]["customer_equity"]["estimate"]
    assert equity == pytest.approx(run["valuation"]["customer_equity"], rel=1e-9)


@pytest.fixture(scope="module")
def engine_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engines")
    log = folder / "log"
    write_parquet_chunks(log, 2_000, chunk_customers=2_000, seed=11, show_progress=False, **SIM)
    # two models: the stage's model choice and every notebook run as with six, and the engines' summaries,
    # which every model's fit reads, are equal in tests/test_stage.py and tests/test_summary_spark.py
    return {engine: run_config(_config(folder, log, engine, models="[bgnbd, pareto_nbd]"), folder / f"reports-{engine}",
                               progress=False)
            for engine in ("pandas", "spark")}


def test_spark_gives_the_same_headlines_as_pandas(engine_runs):
    engine = "spark"
    base, other = engine_runs["pandas"], engine_runs[engine]
    for run in (base, other):
        assert run["status"] == "ok", [(nb["name"], nb.get("error")) for nb in run["notebooks"] if nb["status"] != "ok"]
    assert other["engine"] == engine
    want, got = _headlines(_results(base)), _headlines(_results(other))
    assert set(got) == set(want)
    for nb, values in want.items():
        assert set(got[nb]) == set(values), nb
        for key, v in values.items():
            g = got[nb][key]
            if isinstance(v, float) and math.isfinite(v):
                assert g == pytest.approx(v, rel=1e-6, abs=1e-9), (nb, key)
            else:
                assert g == v, (nb, key)
