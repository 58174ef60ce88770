"""The whole report collection through `clv-lab run` on logs WITHOUT amounts (issue: one run, one model).

Two frequency-only configurations run every notebook: CDNOW with its amounts left out
(`configs/cdnow-no-amounts.yaml`) and a simulated retailer whose true BG/NBD parameters are
known (`configs/simulated-frequency.yaml`).  Checks: every notebook ok; every results.json
names the run's model; the index shows the stage's customer equity, which equals 02's; the
frequency models fitted without amounts equal those of the default run with amounts (read
from the committed, nbval-checked notebook 02); the simulated truth is recovered; every notebook
declares 3-8 headline numbers and the index lists every one of them; every rendered report opens
with its answer and obeys the formatting rules (no nan/None/NaN, no progress lines); the run's
stderr carries no kernel transport warning and no spurious KeyboardInterrupt error.
"""

import contextlib
import html
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from helpers.config import load_config
from helpers.report import MAX_HEADLINES, MIN_HEADLINES, extract_results, headlines_from_results, leftovers
from helpers.run import run_config

from collections_support import quick_config

ROOT = Path(__file__).resolve().parents[1]


def _run_capturing_stderr(config, out):
    """``run_config`` with everything written to stderr captured: the process's own ``sys.stderr``
    and file descriptor 2, which the kernels and the notebook workers inherit."""
    with tempfile.TemporaryFile() as fd_err, contextlib.redirect_stderr(io.StringIO()) as py_err:
        sys.__stderr__.flush()
        saved = os.dup(2)
        os.dup2(fd_err.fileno(), 2)
        try:
            run = run_config(config, out, progress=False)
        finally:
            sys.__stderr__.flush()
            os.dup2(saved, 2)
            os.close(saved)
        fd_err.seek(0)
        return run, py_err.getvalue() + fd_err.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each configuration run once per module, on first use (its stderr in ``get.stderr[name]``)."""
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            config = quick_config(ROOT / "configs" / f"{name}.yaml", out / "config")  # fewer bootstrap replicates
            run, get.stderr[name] = _run_capturing_stderr(config, out / "reports")
            run_dir = Path(run["run_dir"])
            results = {}
            for nb in run["notebooks"]:
                f = run_dir / nb["name"] / "results.json"
                results[nb["name"]] = json.loads(f.read_text()) if f.exists() else {}
            cache[name] = (name, run, run_dir, results)
        return cache[name]

    get.stderr = {}
    return get


@pytest.fixture
def frequency_run(request, runs):
    """The run of the configuration the test's class names (``CONFIG``)."""
    return runs(request.cls.CONFIG)


def _visible(page: str) -> str:
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


class _EveryConfiguration:
    """Checks that hold for every frequency-only configuration.  One subclass per configuration, so that
    pytest-xdist (``--dist loadscope``, pyproject addopts) runs the two configurations' runs on different
    workers, each once."""

    CONFIG = ""

    def test_every_notebook_runs_without_amounts(self, frequency_run):
        name, run, _, _ = frequency_run
        assert run["status"] == "ok", [(nb["name"], nb.get("error")) for nb in run["notebooks"] if nb["status"] != "ok"]
        listed = {Path(nb.path).stem for nb in load_config(ROOT / "configs" / f"{name}.yaml").notebooks}
        assert {nb["name"] for nb in run["notebooks"]} == listed and len(listed) == 6

    def test_every_report_names_the_runs_model(self, frequency_run):
        _, run, _, results = frequency_run
        names = {nb: r["model"]["name"] for nb, r in results.items()}
        assert set(names.values()) == {run["model"]["name"]}, names
        horizons = {nb: r["valuation"]["horizon_months"] for nb, r in results.items()}
        assert len(set(horizons.values())) == 1, horizons

    def test_index_equity_is_the_stage_equity_and_02s(self, frequency_run):
        _, run, run_dir, results = frequency_run
        equity = results["02-clv-models"]["customer_equity"]["estimate"]
        assert equity == pytest.approx(run["valuation"]["customer_equity"], rel=1e-9)  # results.json keeps 10 digits
        index = (run_dir / "index.html").read_text()
        assert f"{equity:,.0f}" in index
        # values without amounts are purchases, and the reports say so
        assert run["valuation"]["units"] == "purchases"

    def test_reports_have_no_raw_missing_values(self, frequency_run):
        _, run, run_dir, _ = frequency_run
        assert leftovers((run_dir / "index.html").read_text()) == []
        for nb in run["notebooks"]:
            page = (run_dir / nb["name"] / f"{nb['name']}.html").read_text()
            assert leftovers(page) == [], nb["name"]  # the formatting rules' own check (helpers.report.leftovers)
            assert "@media print" in page, nb["name"]  # the print stylesheet (tables wrap and shrink on A4/Letter)
            body = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", page, flags=re.S)
            # a raw missing value in a table cell, or in a sentence as the words nan/NaN
            cells = re.findall(r"<t[dh][^>]*>\s*(None|nan|NaN|<NA>|NaT)\s*</t[dh]>", body)
            assert not cells, (nb["name"], cells[:5])
            text = re.sub(r"<[^>]+>", " ", body)
            for token in (" nan ", " NaN ", "progress ·"):
                assert token not in f" {text} ", (nb["name"], token)
        assert np.isfinite(run["valuation"]["customer_equity"])

    def test_index_lists_every_declared_headline(self, frequency_run):
        _, run, run_dir, results = frequency_run
        index = (run_dir / "index.html").read_text()
        sections = re.split(r"<h2>", index)
        for nb in run["notebooks"]:
            name = nb["name"]
            declared = headlines_from_results(results[name])
            assert MIN_HEADLINES <= len(declared) <= MAX_HEADLINES, (name, [h["key"] for h in declared])
            section = next(s for s in sections if s.startswith(f"<a href='{name}/{name}.html'>"))
            assert "No headline numbers declared" not in section, name
            shown = _visible(section)
            for h in declared:
                # the label and the formatted value of the declaration, in this notebook's part of the index
                assert " ".join(h["label"].split()) in shown, (name, h["key"], h["label"])
                assert h["text"] in shown, (name, h["key"], h["text"])
                # the declared value is the one results.json holds at the headline's key
                node = results[name]
                for part in h["key"].split("."):
                    node = node[part]
                assert node == h["value"], (name, h["key"])

    def test_every_report_opens_with_its_answer(self, frequency_run):
        _, run, run_dir, results = frequency_run
        for nb in run["notebooks"]:
            page = (run_dir / nb["name"] / f"{nb['name']}.html").read_text()
            headings = [_visible(h) for h in re.findall(r"<h2[^>]*>(.*?)</h2>", page, flags=re.S)]
            assert headings and headings[0].startswith("The answer"), (nb["name"], headings[:3])
            answer = _visible(page.split("</h2>", 1)[1].split("<h2", 1)[0])  # up to the next heading
            assert "Question." in answer and "What it means" in answer, nb["name"]
            for h in headlines_from_results(results[nb["name"]]):
                assert h["text"] in answer, (nb["name"], h["key"])

    def test_run_stderr_has_no_kernel_noise(self, frequency_run, runs):
        name = frequency_run[0]
        err = runs.stderr[name]
        for noise in ("running over TCP without encryption", "KeyboardInterrupt", "[IPKernelApp] ERROR",
                      "[IPKernelApp] WARNING"):
            assert noise not in err, (name, noise, err[-2000:])


    def test_warm_kernels_serve_the_first_notebooks_unseen(self, frequency_run):
        """Kernels started (and their imports done) while the stage computed ran the first notebooks; the
        notebooks cannot tell: their cells count from 1, as in a fresh kernel."""
        _, run, run_dir, _ = frequency_run
        warmed = [nb["name"] for nb in run["notebooks"] if nb.get("warm_kernel")]
        assert run["timings"]["warm_kernels_s"] and all(isinstance(t, float) for t in run["timings"]["warm_kernels_s"])
        assert 1 <= len(warmed) <= run["jobs"]
        for nb in run["notebooks"]:
            executed = nbformat.read(run_dir / nb["name"] / f"{nb['name']}.ipynb", as_version=4)
            counts = [c.execution_count for c in executed.cells if c.cell_type == "code"]
            assert counts == list(range(1, len(counts) + 1)), (nb["name"], counts[:5])
            assert nb["render_s"] > 0


class TestCdnowNoAmounts(_EveryConfiguration):
    CONFIG = "cdnow-no-amounts"

    def test_no_amount_models_equal_the_amount_run(self, frequency_run):
        _, _, _, results = frequency_run
        committed = nbformat.read(ROOT / "notebooks" / "02-clv-models.ipynb", as_version=4)
        with_amounts = extract_results(committed)        # the default run, on CDNOW with amounts
        without = results["02-clv-models"]
        for model, m in with_amounts["models"].items():
            for k, v in m["params"].items():
                assert without["models"][model]["params"][k] == pytest.approx(v, rel=1e-9), (model, k)
            assert without["models"][model]["log_likelihood"] == pytest.approx(m["log_likelihood"], rel=1e-12)
        assert without["model"]["name"] == with_amounts["model"]["name"]


class TestSimulatedFrequency(_EveryConfiguration):
    CONFIG = "simulated-frequency"

    def test_simulated_truth_recovered(self, frequency_run):
        _, _, _, results = frequency_run
        truth = load_config(ROOT / "configs" / "simulated-frequency.yaml").simulate
        m = results["02-clv-models"]["models"]["bgnbd"]
        for k in ("r", "alpha", "a", "b"):
            z = (m["params"][k] - truth[k]) / m["se"][k]
            # per-day counting biases alpha upwards by a few percent at weekly rates (README); 4 SE allows it
            assert abs(z) < 4, (k, m["params"][k], truth[k], z)
