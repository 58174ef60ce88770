"""The configured summary engine (pandas, DuckDB, Spark) gives the same summary."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.config import load_config
from helpers.data import DataValidationError
from helpers.engines import engine_of, summarise

ROOT = Path(__file__).resolve().parents[1]


def assert_same(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns)
    assert a.index.equals(b.index)
    for col in a.columns:
        if pd.api.types.is_numeric_dtype(a[col]):
            np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-9, atol=0, err_msg=col)
        else:
            assert a[col].equals(b[col]), col


@pytest.fixture(scope="module")
def paper_cfg():
    return load_config(ROOT / "configs" / "cdnow-paper.yaml")


def test_default_engine_is_pandas(paper_cfg):
    assert engine_of(paper_cfg) == "pandas"


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_engines_agree_on_the_paper_split(paper_cfg, engine):
    ref = summarise(paper_cfg, "1997-09-30", time_unit="W", engine="pandas")
    other = summarise(paper_cfg, "1997-09-30", time_unit="W", engine=engine)
    assert other["x"].sum() == 2457 and other["x_star"].sum() == 1882
    assert_same(ref, other)


def test_duckdb_engine_on_the_master_log():
    cfg = load_config(ROOT / "configs" / "cdnow.yaml")
    assert_same(summarise(cfg, engine="pandas"), summarise(cfg, engine="duckdb"))


def test_engine_from_config_and_validation(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("customer_id,date,amount\nA,2020-01-01,5\nA,2020-02-01,-3\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\ndata:\n  path: {log}\n  engine: duckdb\n  columns: {{amount: amount}}\nnotebooks: []\n")
    with pytest.raises(DataValidationError, match="negative"):
        summarise(load_config(cfg))
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: t\ndata:\n  path: {log}\n  engine: polars\n")
    with pytest.raises(ValueError, match="data.engine"):
        engine_of(load_config(bad))


def test_duckdb_engine_inside_a_jupyter_kernel(tmp_path):
    """Notebooks run on a Jupyter kernel, where DuckDB refuses to touch its progress-bar
    setting without ipywidgets; the engine must still work there (regression: notebook 02
    failed with ``engine: duckdb``)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from helpers.config import load_config\n"
        "from helpers.engines import summarise\n"
        f"s = summarise(load_config({str(ROOT / 'configs' / 'cdnow-paper.yaml')!r}), '1997-09-30', engine='duckdb')\n"
        "print(len(s), int(s['x'].sum()))")]
    NotebookClient(nb, kernel_name="clv-lab", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    ref = summarise(load_config(ROOT / "configs" / "cdnow-paper.yaml"), "1997-09-30", engine="pandas")
    assert nb.cells[0].outputs[0]["text"].split() == [str(len(ref)), str(int(ref["x"].sum()))]


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_validate_with_the_configured_engine_and_the_modelability_check(tmp_path, paper_cfg, engine):
    from helpers.engines import validate

    q = validate(paper_cfg, engine=engine)
    assert q.attrs["counts"]["customers"] == 2357 and q.attrs["counts"]["rows_read"] == 6919
    log = tmp_path / "log.csv"
    log.write_text("customer_id,date,amount\n" + "".join(f"c{i},2020-01-01,{i + 1}\n" for i in range(12)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\ndata:\n  path: {log}\n  engine: {engine}\nnotebooks: []\n")
    with pytest.raises(DataValidationError, match="single day") as e:
        validate(load_config(cfg))
    assert e.value.check == "too_small"
    assert validate(load_config(cfg), modelable=False).attrs["counts"]["customers"] == 12
    cfg.write_text(f"name: t\ndata:\n  path: {log}\n  engine: {engine}\n  min_customers: 20\nnotebooks: []\n")
    with pytest.raises(DataValidationError, match="12 customers, fewer than data.min_customers = 20"):
        validate(load_config(cfg))
