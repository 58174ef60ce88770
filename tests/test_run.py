"""The runner's success and failure paths, with small throw-away notebooks on the clv-lab kernel."""

import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from helpers.config import ConfigError, load_config
from helpers.run import main

ROOT = Path(__file__).resolve().parents[1]


def make_notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('config: str = "x.yaml"  # run configuration\nscale: int = 1  # a number')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A tiny report"),
        params,
        nbformat.v4.new_code_cell(
            "from helpers.config import load_config, load_data\n"
            "from helpers import report\n"
            "data = load_data(load_config(config))"
        ),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {"name": "clv-lab", "display_name": "Python (clv-lab)", "language": "python"}
    nbformat.write(nb, path)


def make_config(tmp_path: Path, name: str, notebooks: list[str], timeout: int = 120) -> Path:
    cfg = tmp_path / f"{name}.yaml"
    nb_lines = "\n".join(f"  - path: {nb}\n    parameters: {{scale: 3}}" for nb in notebooks)
    cfg.write_text(
        f"name: {name}\n"
        f"data:\n  path: {ROOT / 'data' / 'cdnow_sample.csv'}\n  date_format: '%Y%m%d'\n"
        f"cell_timeout_s: {timeout}\n"
        f"notebooks:\n{nb_lines}\n"
    )
    return cfg


@pytest.fixture()
def project(tmp_path):
    make_notebook(tmp_path / "good.ipynb",
                  "report.record_results({'customers': data.n_customers, 'scaled': 3 * scale})")
    make_notebook(tmp_path / "bad.ipynb", "raise RuntimeError('deliberate failure for the test')")
    make_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(60)")
    return tmp_path


def test_successful_run_writes_the_record(project, capsys):
    cfg = make_config(project, "demo", ["good.ipynb"])
    out = project / "reports"
    assert main(["run", str(cfg), "--output-dir", str(out)]) == 0
    latest = out / "demo" / "latest"
    assert latest.is_symlink()
    run_dir = latest.resolve()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "ok"
    assert run["config"]["name"] == "demo"
    assert len(run["data_sha256"]) == 64
    assert run["packages"]["lifetimes"] == "0.11.3"
    nb = run["notebooks"][0]
    assert nb["name"] == "good" and nb["status"] == "ok"
    assert 0 < nb["duration_s"] <= run["duration_s"]  # recorded, and part of the run's own time
    assert nb["parameters"]["scale"] == 3
    results = json.loads((run_dir / "good" / "results.json").read_text())
    assert results == {"customers": 2357, "scaled": 9}
    html = (run_dir / "good" / "good.html").read_text()
    assert "Parameters and provenance" in html and run["data_sha256"] in html
    assert "run configuration" in html and "notebook default" not in html  # both parameters were set
    assert "a number" in html  # the parameter's documentation is shown
    for bad in ('src="http', "src='http", 'href="http', "href='http"):
        assert bad not in html, f"report fetches from the internet: {bad}"
    for script in re.findall(r"<script[^>]*>(.*?)</script>", html, re.S):
        assert "http://" not in script and "https://" not in script, "a script loads code from the internet"
    assert "url(http" not in html
    assert "raise" not in html and "record_results" not in html  # code is hidden
    index = (run_dir / "index.html").read_text()
    links = re.findall(r"<a\s[^>]*href=[\"']([^\"'#]+)", index)
    assert "good/good.html" in links, f"the index does not link to the report: {links}"
    for link in (k for k in links if "://" not in k and not k.startswith("mailto:")):
        assert (run_dir / link).is_file(), f"the index links to a missing file: {link}"
    assert "2,357" in index or "2357" in index  # the headline result
    assert "[1/1] good" in capsys.readouterr().out


def test_failing_notebook_keeps_latest_and_exits_non_zero(project, capsys):
    out = project / "reports"
    assert main(["run", str(make_config(project, "demo", ["good.ipynb"])), "--output-dir", str(out)]) == 0
    good_target = os.readlink(out / "demo" / "latest")

    cfg = make_config(project, "demo", ["good.ipynb", "bad.ipynb"])
    assert main(["run", str(cfg), "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "notebook bad failed" in err and "cell 4" in err
    assert "RuntimeError" in err and "deliberate failure for the test" in err
    assert os.readlink(out / "demo" / "latest") == good_target  # untouched
    runs = sorted(p for p in (out / "demo").iterdir() if not p.is_symlink())
    assert len(runs) == 2
    failed = json.loads((runs[-1] / "run.json").read_text())
    assert failed["status"] == "failed"
    statuses = {nb["name"]: nb["status"] for nb in failed["notebooks"]}
    assert statuses == {"good": "ok", "bad": "failed"}
    assert (runs[-1] / "bad" / "bad.ipynb").exists()  # kept for debugging


def test_cell_timeout_fails_the_run(project, capsys):
    out = project / "reports"
    cfg = make_config(project, "slowdemo", ["slow.ipynb"], timeout=3)
    assert main(["run", str(cfg), "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "notebook slow failed" in err and "CellTimeoutError" in err and "cell 4" in err
    assert not (out / "slowdemo" / "latest").exists()


def test_unknown_notebook_parameter_is_reported(project, capsys):
    cfg = project / "typo.yaml"
    cfg.write_text(
        f"name: typo\ndata:\n  path: {ROOT / 'data' / 'cdnow_sample.csv'}\n  date_format: '%Y%m%d'\n"
        "notebooks:\n  - path: good.ipynb\n    parameters: {scael: 3}\n"
    )
    assert main(["run", str(cfg), "--output-dir", str(project / "reports")]) == 1
    assert "scael" in capsys.readouterr().err


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {path: a.csv, colums: {}}\n")
    with pytest.raises(ConfigError, match="colums"):
        load_config(bad)


def test_shipped_configs_load():
    for cfg_path in sorted((ROOT / "configs").glob("*.yaml")):
        cfg = load_config(cfg_path)
        assert cfg.notebooks, cfg_path
        for nb in cfg.notebooks:
            assert nb.path.exists(), nb.path
        if cfg.simulate is None:
            assert cfg.data_path.exists(), cfg.data_path
