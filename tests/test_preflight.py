"""Pre-flight: every mistake that needs no kernel ends in one message and a documented exit code,
before any kernel starts, with no run folder written and `latest` untouched; and the schema's errors
name the key and what is allowed."""

import os
from pathlib import Path

import nbformat
import pytest

from helpers.config import ConfigError, load_config, load_data
from helpers.preflight import EXIT_CONFIG, EXIT_DATA, preflight
from helpers.run import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "cdnow_sample.csv"


def make_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'config: str = "x.yaml"  # run configuration\nscale: int = 1  # a number\nstage_dir: str = ""  # the stage')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print(scale)")]
    nb.metadata["kernelspec"] = {"name": "clv-lab", "display_name": "Python (clv-lab)", "language": "python"}
    nbformat.write(nb, path)


def write(tmp_path: Path, data: str = "", params: str = "{calibration_end: '1997-09-30'}",
          notebooks: str = "  - path: tiny.ipynb\n    parameters: {scale: 3}\n", top: str = "") -> Path:
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(
        "name: demo\n"
        f"data:\n  path: {SAMPLE}\n  date_format: '%Y%m%d'\n  observation_end: '1998-06-30'\n{data}"
        f"parameters: {params}\n{top}"
        f"notebooks:\n{notebooks}"
    )
    return cfg


@pytest.fixture()
def kernels(monkeypatch):
    """Every way a run could start a kernel, counted (and refused)."""
    import jupyter_client.provisioning.local_provisioner as lp
    import papermill

    import helpers.run as hr

    started = []

    def refuse(what):
        def f(*a, **k):
            started.append(what)
            raise RuntimeError(f"test: {what} must not be called")
        return f

    monkeypatch.setattr(lp, "launch_kernel", refuse("launch_kernel"))
    monkeypatch.setattr(papermill, "execute_notebook", refuse("papermill.execute_notebook"))
    monkeypatch.setattr(hr, "_execute_notebook", refuse("_execute_notebook"))
    return started


@pytest.fixture()
def project(tmp_path):
    make_notebook(tmp_path / "tiny.ipynb")
    reports = tmp_path / "reports" / "demo"
    (reports / "20200101T000000Z").mkdir(parents=True)
    os.symlink("20200101T000000Z", reports / "latest")
    return tmp_path


def run_fails(project, cfg, capsys, kernels, code) -> str:
    """Run the CLI; check the exit code, one message, no kernel, nothing written, `latest` untouched."""
    reports = project / "reports"
    before = sorted(p.name for p in (reports / "demo").iterdir())
    assert main(["run", str(cfg), "--output-dir", str(reports), "--jobs", "1"]) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("clv-lab:") == 1, err
    assert kernels == []
    assert sorted(p.name for p in (reports / "demo").iterdir()) == before
    assert os.readlink(reports / "demo" / "latest") == "20200101T000000Z"
    return err


def test_wrong_column(project, capsys, kernels):
    cfg = write(project, data="  columns: {customer_id: client, date: date}\n")
    err = run_fails(project, cfg, capsys, kernels, EXIT_DATA)
    assert "column 'client': required column missing" in err and "data.columns" in err
    assert "(6,919 rows affected)" in err  # every row of the log lacks the column


def test_bad_date_format(project, capsys, kernels):
    cfg = write(project).read_text().replace("'%Y%m%d'", "'%d/%m/%Y'")
    (project / "demo.yaml").write_text(cfg)
    err = run_fails(project, project / "demo.yaml", capsys, kernels, EXIT_DATA)
    assert "column 'date': date must parse with format '%d/%m/%Y'" in err
    assert "(6,919 rows affected)" in err
    assert "first 5 example row(s)" in err and "19970101" in err


def test_bad_date_format_with_the_duckdb_engine(project, capsys, kernels):
    """The data are validated with the configured engine (here DuckDB's SQL rules)."""
    cfg = write(project, data="  engine: duckdb\n").read_text().replace("'%Y%m%d'", "'%d/%m/%Y'")
    (project / "demo.yaml").write_text(cfg)
    err = run_fails(project, project / "demo.yaml", capsys, kernels, EXIT_DATA)
    assert "column 'date': date must parse with format '%d/%m/%Y'" in err and "(6,919 rows affected)" in err


def test_unknown_parameter(project, capsys, kernels):
    cfg = write(project, notebooks="  - path: tiny.ipynb\n    parameters: {scael: 3}\n")
    err = run_fails(project, cfg, capsys, kernels, EXIT_CONFIG)
    assert "notebooks[0].parameters.scael: not declared in the parameters cell of tiny.ipynb" in err
    assert "allowed: config, scale, stage_dir" in err


def test_parameter_of_the_wrong_type(project, capsys, kernels):
    cfg = write(project, notebooks="  - path: tiny.ipynb\n    parameters: {scale: three}\n")
    err = run_fails(project, cfg, capsys, kernels, EXIT_CONFIG)
    assert "notebooks[0].parameters.scale: 'three' (str) does not fit the type int" in err


def test_shared_parameter_no_notebook_declares(project, capsys, kernels):
    cfg = write(project, params="{calibration_end: '1997-09-30', calibraton_start: x}")
    err = run_fails(project, cfg, capsys, kernels, EXIT_CONFIG)
    assert "parameters.calibraton_start: used by no notebook" in err and "calibration_end" in err


def test_missing_notebook_file(project, capsys, kernels):
    cfg = write(project, notebooks="  - path: tiny.ipynb\n  - path: gone.ipynb\n")
    err = run_fails(project, cfg, capsys, kernels, EXIT_CONFIG)
    assert "notebooks[1].path: notebook not found" in err and "gone.ipynb" in err


def test_calibration_end_outside_the_data(project, capsys, kernels):
    cfg = write(project, params="{calibration_end: '1999-01-31'}")
    err = run_fails(project, cfg, capsys, kernels, EXIT_CONFIG)
    assert "parameters.calibration_end: calibration end 1999-01-31 must lie inside the data's date range" in err
    assert "first purchase day 1997-01-01" in err and "observation end 1998-06-30" in err


def test_calibration_end_missing(project, capsys, kernels):
    cfg = write(project, params="{}")
    err = run_fails(project, cfg, capsys, kernels, EXIT_CONFIG)
    assert "parameters.calibration_end: required key missing" in err


def test_schema_error_at_the_cli(project, capsys, kernels):
    cfg = write(project, data="  engine: polars\n")
    err = run_fails(project, cfg, capsys, kernels, EXIT_CONFIG)
    assert "data.engine: got 'polars'; allowed: 'pandas', 'duckdb' or 'spark'" in err


def test_a_good_configuration_passes_and_validates_the_data_once(project, monkeypatch):
    import helpers.config as hc

    calls = []
    real = hc.load_transactions
    monkeypatch.setattr(hc, "load_transactions", lambda *a, **k: calls.append(1) or real(*a, **k))
    pf = preflight(write(project))
    assert len(calls) == 1
    assert pf.data.engine == "pandas" and pf.data.data.n_customers == 2357
    assert str(pf.data.first_day.date()) == "1997-01-01" and str(pf.data.observation_end.date()) == "1998-06-30"
    assert set(pf.declared["tiny"]) == {"config", "scale", "stage_dir"}
    from helpers.stage import compute_stage

    compute_stage(pf.cfg, pf)  # reuses the validated log
    assert len(calls) == 1


# --- the schema ---------------------------------------------------------------------------

def schema_error(tmp_path: Path, text: str) -> ConfigError:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    return info.value


@pytest.mark.parametrize("text, key, allowed", [
    ("data: {path: a.csv, colums: {}}", "data.colums", "allowed keys here: path, columns, date_format"),
    ("data: {path: a.csv}\nvaluaton: {}", "valuaton", "allowed keys here: name, description, data, parameters, model"),
    ("data: {path: a.csv, columns: {amout: x}}", "data.columns.amout", "allowed keys here: customer_id, date, amount"),
    ("data: {path: a.csv, duplicates: maybe}", "data.duplicates", "allowed: 'keep', 'drop' or 'error'"),
    ("data: {path: a.csv, implausible_dates: fix}", "data.implausible_dates", "allowed: 'error' or 'exclude'"),
    ("data: {path: a.csv, min_customers: many}", "data.min_customers", "valid integer"),
    ("data: {path: a.csv, max_abs_amount: -1}", "data.max_abs_amount", "greater than 0"),
    ("data: {path: a.csv, min_date: someday}", "data.min_date", "a date such as"),
    ("data: {path: a.csv, encoding: klingon}", "data.encoding", "a Python codec name"),
    ("data: {path: a.csv}\nmodel: bgnbdd", "model", "'auto' or one of 'bgnbd', 'mbgnbd', 'pareto_nbd'"),
    ("data: {path: a.csv}\nvaluation: {horizon_months: '12'}", "valuation.horizon_months", "valid integer"),
    ("data: {path: a.csv}\nvaluation: {margin: 1.5}", "valuation.margin", "less than or equal to 1"),
    ("data: {path: a.csv}\nparameters: {time_unit: Y}", "parameters.time_unit", "allowed: 'D', 'W' or 'M'"),
    ("data: {path: a.csv}\nnotebooks: [{parameters: {}}]", "notebooks[0].path", "required key missing"),
    ("data: {path: a.csv, columns: {amount: value}}\nvaluation: {value_per_purchase: 5}", "(top level)",
     "valuation.value_per_purchase is for logs without amounts"),
    ("name: x", "data", "required key missing"),
])
def test_schema_errors_name_the_key_and_what_is_allowed(tmp_path, text, key, allowed):
    e = schema_error(tmp_path, text)
    assert e.key == key, str(e)
    assert allowed in str(e) and key in str(e)


def test_several_schema_errors_in_one_message(tmp_path):
    e = schema_error(tmp_path, "data: {path: a.csv, engine: polars}\ncell_timeout_s: -1\nfoo: 1\n")
    assert "3 configuration errors" in str(e)
    assert {k for k, _ in e.problems} == {"data.engine", "cell_timeout_s", "foo"}


def test_schema_defaults_and_normalisation(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {path: a.csv, observation_end: 1998-06-30}\n"
                 "parameters: {calibration_end: 1997-09-30, other: 2020-01-02}\n"
                 "notebooks: [x.ipynb, {path: y.ipynb, parameters: {when: 2021-03-04}}]\n")
    cfg = load_config(p)
    assert cfg.data["columns"] == {"customer_id": "customer_id", "date": "date", "amount": None}
    assert not cfg.has_amounts
    assert cfg.data["observation_end"] == "1998-06-30"   # YAML dates become ISO strings
    assert cfg.parameters == {"calibration_end": "1997-09-30", "other": "2020-01-02"}  # no defaults added
    assert cfg.notebooks[1].parameters == {"when": "2021-03-04"}
    assert cfg.data["encoding"] == "utf-8" and cfg.data["max_abs_amount"] == 1e9
    assert cfg.data["min_date"] == "1970-01-01" and cfg.data["implausible_dates"] == "error"
    assert cfg.data["min_customers"] == 10 and len(cfg.data["max_date"]) == 10
    assert cfg.model == "auto" and cfg.valuation.horizon_months == 12 and cfg.valuation.currency == "USD"
    assert cfg.settings.time_unit == "W" and cfg.settings.penalizer == 0.0
    assert cfg.data_path == tmp_path / "a.csv"


def test_omitted_amount_means_no_amounts(tmp_path):
    """A log with an `amount` column but none mapped is read without amounts (no silent fallback)."""
    p = tmp_path / "c.yaml"
    p.write_text(f"data: {{path: {SAMPLE}, date_format: '%Y%m%d'}}\n")
    data = load_data(load_config(p))
    assert not data.has_amount and "amount" not in data.transactions.columns
    p.write_text(f"data: {{path: {SAMPLE}, date_format: '%Y%m%d', columns: {{amount: amount}}}}\n")
    assert load_data(load_config(p)).has_amount


def test_a_rule_key_the_reader_cannot_apply_is_an_error(tmp_path, monkeypatch):
    """Until a reader accepts a data-rule key, a non-default value is refused, never silently ignored."""
    import helpers.config as hc

    p = tmp_path / "c.yaml"
    p.write_text(f"data: {{path: {SAMPLE}, date_format: '%Y%m%d', max_abs_amount: 50}}\n")
    cfg = load_config(p)

    def reader(source, *, customer_id, date, amount, date_format, observation_end, negative_amounts,
               duplicates, after_observation_end):
        """A reader without the rule keys."""

    with pytest.raises(ConfigError, match=r"data\.max_abs_amount: 50(\.0)? is not supported"):
        hc.load_options(cfg, reader)
    p.write_text(f"data: {{path: {SAMPLE}, date_format: '%Y%m%d'}}\n")
    assert "max_abs_amount" not in hc.load_options(load_config(p), reader)  # defaults pass quietly

    def reader_with_rules(source, *, max_abs_amount=1e9, max_date=None, **policies):
        """A reader that applies two of the rules."""

    opts = hc.load_options(cfg, reader_with_rules)
    assert opts["max_abs_amount"] == 50 and opts["max_date"] == cfg.data["max_date"]
    assert "implausible_dates" not in opts


# --- covariate tables (data.covariates): checked in the pre-flight, exit code 3, no kernel ----------

def _covariate_config(project, table_text: str, extra: str = "") -> Path:
    (project / "cov.csv").write_text(table_text)
    return write(project, data=("  covariates:\n    static: {path: cov.csv, customer_id: customer_id}\n"
                                "    purchase: [channel]\n    attrition: [channel]\n" + extra))


def _sample_ids():
    import pandas as pd

    return sorted(pd.read_csv(SAMPLE, dtype=str)["customer_id"].unique())


def test_covariates_missing_for_customers_of_the_log(project, capsys, kernels):
    ids = _sample_ids()
    text = "customer_id,channel\n" + "".join(f"{c},{i % 2}\n" for i, c in enumerate(ids[:-3]))
    err = run_fails(project, _covariate_config(project, text), capsys, kernels, EXIT_DATA)
    assert "column 'customer_id': static covariate table 'cov.csv': every customer of the log needs covariates" in err
    assert "(3 customers affected)" in err and ids[-1] in err


def test_covariate_not_numeric(project, capsys, kernels):
    ids = _sample_ids()
    text = "customer_id,channel\n" + "".join(f"{c},{'web' if i < 4 else i % 2}\n" for i, c in enumerate(ids))
    err = run_fails(project, _covariate_config(project, text), capsys, kernels, EXIT_DATA)
    assert "column 'channel': static covariate table 'cov.csv': covariate must be numeric" in err
    assert "(4 rows affected)" in err and "web" in err


def test_covariate_table_missing_is_a_configuration_error(project, capsys, kernels):
    cfg = write(project, data="  covariates:\n    static: nope.csv\n    purchase: [channel]\n")
    err = run_fails(project, cfg, capsys, kernels, EXIT_CONFIG)
    assert "data.covariates.static.path: covariate table not found" in err
