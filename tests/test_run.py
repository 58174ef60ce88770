"""The runner's success and failure paths, with small throw-away notebooks on the clv-lab kernel."""

import json
import os
import re
import sys
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
        "  observation_end: '1998-06-30'\n"
        "parameters: {calibration_end: '1997-09-30'}\n"
        f"cell_timeout_s: {timeout}\n"
        f"notebooks:\n{nb_lines}\n"
    )
    return cfg


@pytest.fixture()
def project(tmp_path):
    make_notebook(tmp_path / "good.ipynb",
                  "report.record_results({'customers': data.n_customers, 'scaled': 3 * scale})")
    make_notebook(tmp_path / "bad.ipynb", "n = 1\nraise RuntimeError('deliberate failure for the test')\nn = 2")
    make_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(600)")
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
    # the line that raised, not the first line of the cell
    assert "line 2" in err and "[raise RuntimeError('deliberate failure for the test')]" in err
    assert "[n = 1]" not in err
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
    # the earlier cells (imports, loading the sample) must finish within the timeout on a loaded machine
    cfg = make_config(project, "slowdemo", ["slow.ipynb"], timeout=20)
    assert main(["run", str(cfg), "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "notebook slow failed" in err and "CellTimeoutError" in err and "cell 4" in err
    assert not (out / "slowdemo" / "latest").exists()


def test_unknown_notebook_parameter_is_reported(project, capsys):
    """Found by pre-flight: a configuration error (exit 2), before any run folder exists."""
    cfg = project / "typo.yaml"
    cfg.write_text(
        f"name: typo\ndata:\n  path: {ROOT / 'data' / 'cdnow_sample.csv'}\n  date_format: '%Y%m%d'\n"
        "parameters: {calibration_end: '1997-09-30'}\n"
        "notebooks:\n  - path: good.ipynb\n    parameters: {scael: 3}\n"
    )
    assert main(["run", str(cfg), "--output-dir", str(project / "reports")]) == 2
    assert "notebooks[0].parameters.scael" in capsys.readouterr().err
    assert not (project / "reports").exists()


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


def test_run_records_the_stage_model_timings_and_code_version(project, capsys):
    """The stage is computed once and passed to notebooks that declare `stage_dir`; run.json records the
    model, how it was chosen, per-step times and the code version (the package's own git commit, although
    the configuration lives outside the repository); the index shows one customer-equity figure."""
    import subprocess

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('config: str = "x.yaml"  # run configuration\n'
                                       'stage_dir: str = ""  # the run\'s stage folder')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from helpers.stage import get_stage\nfrom helpers import report\n"
        "stage = get_stage(config, stage_dir)\n"
        "report.record_results({'stage_dir': stage_dir, 'equity_here': stage.equity, **stage.provenance_results()})")]
    nb.metadata["kernelspec"] = {"name": "clv-lab", "display_name": "Python (clv-lab)", "language": "python"}
    nbformat.write(nb, project / "staged.ipynb")
    cfg = make_config(project, "demo", ["good.ipynb", "staged.ipynb"])
    cfg.write_text(cfg.read_text().replace("  - path: staged.ipynb\n    parameters: {scale: 3}",
                                           "  - path: staged.ipynb"))
    out = project / "reports"
    assert main(["run", str(cfg), "--output-dir", str(out), "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "pre-flight: ok" in printed and "stage: Pareto/NBD (auto)" in printed
    run_dir = (out / "demo" / "latest").resolve()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["model"]["name"] == "pareto_nbd" and run["model"]["chosen_by"] == "auto"
    assert "customer-level holdout MAE" in run["model"]["reason"] and "Pareto/NBD" in run["model"]["reason"]
    assert set(run["model"]["params"]) == {"r", "alpha", "s", "beta"}
    assert run["valuation"]["horizon_months"] == 12 and run["valuation"]["units"] == "purchases"
    t = run["timings"]
    assert t["preflight_s"] > 0 and t["stage_s"] > 0 and set(t["notebooks"]) == {"good", "staged"}
    head = subprocess.run(["git", "-C", str(ROOT / "src" / "helpers"), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert not str(cfg).startswith(str(ROOT)) and run["git_commit"].startswith(head)
    assert run["code_version"]["clv_lab"] == run["clv_lab_version"]
    assert (run_dir / "stage" / "stage.json").exists()
    staged = json.loads((run_dir / "staged" / "results.json").read_text())
    assert staged["stage_dir"] == str(run_dir / "stage")  # passed by the runner, not recomputed
    assert staged["model"]["name"] == "pareto_nbd"
    assert staged["model"]["params"] == pytest.approx(run["model"]["params"], rel=1e-9)
    assert staged["valuation"]["horizon_months"] == 12
    assert staged["equity_here"] == pytest.approx(run["valuation"]["customer_equity"], rel=1e-9)
    index = (run_dir / "index.html").read_text()
    assert index.count("Customer equity") == 1 and "equity_here" not in index
    assert "Pareto/NBD" in index and "12 months" in index
    assert "code version" in index and head in index


def test_stage_failure_exits_4_without_notebooks(project, capsys, monkeypatch):
    import helpers.stage as hs

    def fail(*a, **k):
        raise hs.StageError("no frequency model could be fitted (test)")

    monkeypatch.setattr(hs, "compute_stage", fail)
    out = project / "reports"
    assert main(["run", str(make_config(project, "demo", ["good.ipynb"])), "--output-dir", str(out)]) == 4
    err = capsys.readouterr().err
    assert "shared analysis stage failed" in err and "no frequency model could be fitted (test)" in err
    assert not (out / "demo" / "latest").exists()
    (run_dir,) = [p for p in (out / "demo").iterdir()]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and run["stage"]["status"] == "failed"
    assert [nb["status"] for nb in run["notebooks"]] == ["skipped"]
    assert not (run_dir / "good").exists()  # no notebook ran



def test_notebook_order_is_longest_first_by_the_last_good_run(tmp_path):
    from helpers.run import notebook_order

    names = ["a", "b", "c", "d"]
    base = tmp_path / "cfg"
    base.mkdir()
    assert notebook_order(base, names) == ([0, 1, 2, 3], "configuration")      # no last good run
    (base / "20260101T000000Z").mkdir()
    (base / "20260101T000000Z" / "run.json").write_text(json.dumps(
        {"timings": {"notebooks": {"a": 4.0, "b": 30.5, "d": 12.0, "gone": 99.0}}}))
    (base / "latest").symlink_to("20260101T000000Z", target_is_directory=True)
    order, source = notebook_order(base, names)
    # c is new (no duration): first; then b, d, a by their last durations
    assert [names[i] for i in order] == ["c", "b", "d", "a"]
    assert "20260101T000000Z" in source
    (base / "20260101T000000Z" / "run.json").write_text("{not json")
    assert notebook_order(base, names)[0] == [0, 1, 2, 3]


def test_a_run_starts_the_notebook_that_took_longest_last_time_first(project):
    """The runner submits by notebook_order: a last good run (its record written here) in which "longer" took
    longer makes the next run start it first, though the configuration lists it second."""
    make_notebook(project / "longer.ipynb", "report.record_results({'n': 1})")
    cfg = make_config(project, "order", ["good.ipynb", "longer.ipynb"])
    out = project / "reports"
    last = out / "order" / "20260101T000000000000Z"
    last.mkdir(parents=True)
    (last / "run.json").write_text(json.dumps({"timings": {"notebooks": {"good": 2.0, "longer": 9.0}}}))
    (out / "order" / "latest").symlink_to(last.name, target_is_directory=True)
    assert main(["run", str(cfg), "--output-dir", str(out), "--quiet", "--jobs", "2"]) == 0
    run = json.loads((out / "order" / "latest" / "run.json").read_text())
    assert run["notebook_order"] == ["longer", "good"]
    assert last.name in run["notebook_order_from"]
    assert [nb["name"] for nb in run["notebooks"]] == ["good", "longer"]   # the record keeps the config order
    assert all(nb["status"] == "ok" for nb in run["notebooks"])


def test_kernels_run_in_parallel_share_the_cores_among_their_thread_pools(project, monkeypatch):
    """With two notebooks at a time on four cores each kernel's BLAS/OpenMP pools get two threads (the
    kernels report what they see); a variable the user set is left as it is."""
    from helpers import run as run_mod

    body = ("import os\nreport.record_results({k: os.environ.get(k) for k in "
            "('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')})")
    make_notebook(project / "env1.ipynb", body)
    make_notebook(project / "env2.ipynb", body)
    cfg = make_config(project, "threads", ["env1.ipynb", "env2.ipynb"])
    for name in run_mod.THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(run_mod.os, "cpu_count", lambda: 4)
    out = project / "reports"
    assert main(["run", str(cfg), "--output-dir", str(out), "--quiet", "--jobs", "2"]) == 0
    run = json.loads((out / "threads" / "latest" / "run.json").read_text())
    seen = {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "2"}
    for nb in run["notebooks"]:
        assert {k: nb["results"][k] for k in seen} == seen
    assert {k: run["kernel_thread_env"][k] for k in seen} == seen
    assert "OPENBLAS_NUM_THREADS" not in os.environ          # the runner's own environment is not changed


def test_kernel_threads_divide_the_cores():
    from helpers.run import cap_threads, kernel_threads

    assert [kernel_threads(j, cpus=4) for j in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]
    assert kernel_threads(2, cpus=1) == 1
    env = {"MKL_NUM_THREADS": "7"}
    got = cap_threads(2, env)
    assert got["MKL_NUM_THREADS"] == "7" and got["OPENBLAS_NUM_THREADS"] == "2" and env == got


def test_the_engine_writes_the_output_notebook_once_not_at_every_cell(tmp_path, monkeypatch):
    """papermill writes the output notebook at the start and end of every cell (here 2 + 2 x 4 writes); the run's
    engine writes it when the notebook ends, with every cell's outputs, and on failure with the failed cell."""
    import papermill as pm
    import papermill.engines as engines

    from helpers.run import ENGINE_NAME, KERNEL_NAME, _saving_engine

    _saving_engine()
    writes = []
    real = engines.write_ipynb
    monkeypatch.setattr(engines, "write_ipynb", lambda nb, path: (writes.append(path), real(nb, path)))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"print({i})") for i in range(4)]
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    for engine, expected in ((None, 10), (ENGINE_NAME, 1)):
        writes.clear()
        pm.execute_notebook(str(src), str(out), kernel_name=KERNEL_NAME, progress_bar=False, engine_name=engine)
        assert len(writes) == expected, engine
        done = nbformat.read(out, as_version=4)
        assert [c.outputs[0]["text"] for c in done.cells] == ["0\n", "1\n", "2\n", "3\n"]
    nb.cells[2] = nbformat.v4.new_code_cell("raise ValueError('cell 3')")
    nbformat.write(nb, src)
    writes.clear()
    with pytest.raises(pm.PapermillExecutionError):
        pm.execute_notebook(str(src), str(out), kernel_name=KERNEL_NAME, progress_bar=False, engine_name=ENGINE_NAME)
    failed = [c for c in nbformat.read(out, as_version=4).cells if c.metadata.get("papermill", {}).get("exception")]
    assert len(failed) == 1 and "cell 3" in failed[0].outputs[-1]["evalue"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's (the CI runs on Linux)")
def test_release_freed_memory_hands_the_freed_heap_back():
    """The runner calls this after deleting its stage: freed arrays that glibc kept on the heap are returned."""
    import numpy as np
    import psutil

    from helpers.run import release_freed_memory

    rss = psutil.Process().memory_info
    big = np.ones(20_000_000 // 8)
    del big                                  # raises glibc's mmap threshold: the next 1 MB arrays go on the heap
    chunks = [np.ones(125_000) for _ in range(300)]
    keep = np.ones(125_000)                  # on top of them, so that freeing them does not shrink the heap's top
    del chunks
    before = rss().rss
    release_freed_memory()
    assert before - rss().rss > 200e6        # of the 300 MB freed
    assert keep.sum() == 125_000


def test_the_runner_imports_jsonschema_without_building_the_iri_grammars():
    """helpers.run imports jsonschema (for nbformat) with ``rfc3987_syntax`` hidden, whose import builds
    grammars (1.65 s); afterwards the module is importable again, and notebooks still validate."""
    import subprocess

    code = ("import sys, helpers.run, nbformat\n"
            "print('jsonschema' in sys.modules, 'rfc3987_syntax' in sys.modules)\n"
            "nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')]))\n"
            "import importlib.util\n"
            "if importlib.util.find_spec('rfc3987_syntax') is None:\n"
            "    print('not-installed')\n"
            "else:\n"
            "    import rfc3987_syntax\n"
            "    print(rfc3987_syntax.is_valid_syntax('iri', 'http://example.org/a'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["True", "False"]
    assert out[2] in ("True", "not-installed")     # installed (requirements.lock pins it): importable again
