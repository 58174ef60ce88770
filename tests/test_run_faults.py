"""The runner under faults: SIGKILL, two runs at once, a full disk, a hung cell; and rerun determinism.

Tiny notebooks and logs written in tmp_path, run on the clv-lab kernel by ``clv-lab run``
(``python -m helpers.run``) in a subprocess where a process must be killed or two must overlap.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from helpers.run import main, read_status

SRC = Path(__file__).resolve().parents[1] / "src"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def write_log(path: Path, shuffle_seed: int | None = None, crlf: bool = False) -> Path:
    """A small valid log: 30 customers, Jan-Jun 2020, some same-day purchases."""
    rng = np.random.default_rng(5)
    rows = []
    for c in range(30):
        days = np.sort(rng.choice(182, size=int(rng.integers(1, 6)), replace=False))
        for d in days:
            for _ in range(int(rng.integers(1, 3))):
                rows.append((f"c{c:03d}", (pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(d))).strftime("%Y-%m-%d"),
                             f"{rng.gamma(2.0, 12.5):.2f}"))
    if shuffle_seed is not None:
        rows = [rows[i] for i in np.random.default_rng(shuffle_seed).permutation(len(rows))]
    eol = "\r\n" if crlf else "\n"
    path.write_bytes(("customer_id,date,amount" + eol + eol.join(",".join(r) for r in rows) + eol).encode())
    return path


def make_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    # two lines: a cell of one line starting with 'config' would be IPython's %config magic
    params = nbformat.v4.new_code_cell('config: str = "x.yaml"  # run configuration\nscale: int = 1  # a number')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A tiny report"),
        params,
        nbformat.v4.new_code_cell("from helpers.config import load_config, load_data\nfrom helpers import report\n"
                                  "data = load_data(load_config(config))"),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {"name": "clv-lab", "display_name": "Python (clv-lab)", "language": "python"}
    nbformat.write(nb, path)
    return path


def make_config(folder: Path, name: str, log: Path, notebooks: list[str], timeout: int = 120,
                file: str | None = None) -> Path:
    cfg = folder / (file or f"{name}.yaml")
    nbs = "\n".join(f"  - path: {nb}" for nb in notebooks)
    cfg.write_text(f"name: {name}\ndata:\n  path: {log}\n  columns: {{customer_id: customer_id, date: date, amount: amount}}\n"
                   f"parameters:\n  calibration_end: '2020-04-30'\n"
                   f"cell_timeout_s: {timeout}\nnotebooks:\n{nbs}\n")
    return cfg


GOOD = "report.record_results({'customers': data.n_customers, 'rows': len(data.transactions)})"


def start(cfg: Path, out: Path, *extra: str) -> subprocess.Popen:
    """``clv-lab run`` in its own process group (so that the test can clean up everything it started)."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "helpers.run", "run", str(cfg), "--output-dir", str(out), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's main process, then whatever it left (workers, kernels) in its group."""
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=60)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(predicate, timeout: float = 120.0, what: str = "") -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_dirs(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink()) if base.exists() else []


@pytest.fixture()
def project(tmp_path):
    log = write_log(tmp_path / "log.csv")
    make_notebook(tmp_path / "good.ipynb", GOOD)
    return tmp_path, log


# ---------------------------------------------------------------------------
# SIGKILL
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("point", ["at start", "first notebook executing", "between notebooks"])
def test_sigkill_leaves_latest_on_the_last_good_run(project, point):
    tmp, log = project
    out = tmp / "reports"
    good_cfg = make_config(tmp, "demo", log, ["good.ipynb"])
    assert main(["run", str(good_cfg), "--output-dir", str(out), "--quiet", "--jobs", "1"]) == 0
    base = out / "demo"
    good_target = os.readlink(base / "latest")
    assert read_status(base / good_target) == "ok"

    started, between = tmp / "first-started", tmp / "second-started"
    make_notebook(tmp / "first.ipynb", f"open({str(started)!r}, 'w').close()\nimport time\ntime.sleep(2)\n{GOOD}")
    make_notebook(tmp / "second.ipynb", f"open({str(between)!r}, 'w').close()\nimport time\ntime.sleep(120)")
    cfg = make_config(tmp, "demo", log, ["first.ipynb", "second.ipynb"], file="demo-two.yaml")
    proc = start(cfg, out, "--jobs", "1")
    try:
        if point == "at start":
            time.sleep(0.3)
        elif point == "first notebook executing":
            wait_for(started.exists, what="the first notebook to start")
        else:
            wait_for(between.exists, what="the second notebook to start")
            new = [d for d in run_dirs(base) if d.name != good_target]
            assert (new[0] / "first" / "results.json").exists()     # the first notebook's outputs are written
    finally:
        kill_group(proc)
    assert os.readlink(base / "latest") == good_target
    for d in run_dirs(base):
        if d.name != good_target:
            assert read_status(d) in (None, "running"), d         # never "ok": a reader knows it is incomplete
            if point != "at start":
                assert read_status(d) == "running"
    # the next run works and moves latest
    assert main(["run", str(good_cfg), "--output-dir", str(out), "--quiet", "--jobs", "1"]) == 0
    new_target = os.readlink(base / "latest")
    assert new_target != good_target and new_target > good_target
    assert read_status(base / new_target) == "ok"
    assert json.loads((base / new_target / "good" / "results.json").read_text())["customers"] == 30


# ---------------------------------------------------------------------------
# two runs of one configuration at once
# ---------------------------------------------------------------------------

def test_two_concurrent_runs_both_finish_and_latest_is_the_newer(project):
    """The older run is made to finish last: ``latest`` must still end on the newer one."""
    tmp, log = project
    out = tmp / "reports"
    claim = tmp / "claim"
    body = (
        "import glob, os, time\n"
        f"try:\n    os.mkdir({str(claim)!r})\n    waiter = True\nexcept FileExistsError:\n    waiter = False\n"
        "if waiter:  # the first run to get here waits until the other one is complete\n"
        "    t0 = time.time()\n"
        f"    pattern = {str(out / 'race' / '*' / 'status')!r}\n"
        "    while time.time() - t0 < 120 and not any(open(p).read().strip() == 'ok' for p in glob.glob(pattern)):\n"
        "        time.sleep(0.1)\n"
        f"{GOOD}"
    )
    make_notebook(tmp / "race.ipynb", body)
    cfg = make_config(tmp, "race", log, ["race.ipynb"])
    older = start(cfg, out, "--jobs", "1")
    newer = None
    try:
        wait_for(claim.exists, what="the first run's notebook")
        newer = start(cfg, out, "--jobs", "1")
        rc_new, _, err_new = finish(newer)
        rc_old, _, err_old = finish(older)
    finally:
        for proc in (older, newer):
            if proc is not None and proc.poll() is None:
                kill_group(proc)
    assert rc_new == 0, err_new
    assert rc_old == 0, err_old
    base = out / "race"
    dirs = run_dirs(base)
    assert len(dirs) == 2
    first, second = dirs                                           # by start time
    runs = {d.name: json.loads((d / "run.json").read_text()) for d in dirs}
    assert all(r["status"] == "ok" for r in runs.values())
    assert all(read_status(d) == "ok" for d in dirs)
    assert runs[first.name]["finished"] > runs[second.name]["finished"]   # the older one finished last
    assert os.readlink(base / "latest") == second.name


# ---------------------------------------------------------------------------
# a full output disk
# ---------------------------------------------------------------------------

@pytest.fixture()
def small_disk(tmp_path):
    """A 6 MB tmpfs (the tests run as root), unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True, text=True)
    assert res.returncode == 0, f"cannot mount a tmpfs for the full-disk test: {res.stderr}"
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, leave: int) -> Path:
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def test_full_disk_ends_in_one_clear_line_and_keeps_latest(project, small_disk, capsys):
    tmp, log = project
    make_notebook(tmp / "other.ipynb", "x = list(range(10))\n" + GOOD)
    good_cfg = make_config(tmp, "full", log, ["good.ipynb"])
    assert main(["run", str(good_cfg), "--output-dir", str(small_disk), "--quiet"]) == 0
    base = small_disk / "full"
    good_target = os.readlink(base / "latest")
    capsys.readouterr()

    cfg = make_config(tmp, "full", log, ["good.ipynb", "other.ipynb"], file="full-two.yaml")
    for leave in (40_000, 400_000):          # full while writing the notebooks / while writing the reports
        filler = fill(small_disk, leave)
        rc = main(["run", str(cfg), "--output-dir", str(small_disk)])
        out, err = capsys.readouterr()
        assert rc != 0
        lines = [ln for ln in err.splitlines() if ln.strip()]
        full_lines = [ln for ln in lines if "disk is full" in ln]
        assert len(full_lines) == 1, err
        assert "notebook" not in full_lines[0] or "failed at" not in full_lines[0]
        assert "NotJSONError" not in out + err and "worker crashed" not in out + err, out + err
        assert "Traceback" not in err
        assert os.readlink(base / "latest") == good_target
        for d in run_dirs(base):
            if d.name != good_target:
                assert read_status(d) != "ok"
        filler.unlink()
    assert main(["run", str(cfg), "--output-dir", str(small_disk), "--quiet"]) == 0
    assert os.readlink(base / "latest") != good_target


# ---------------------------------------------------------------------------
# a hung cell
# ---------------------------------------------------------------------------

def test_hung_cell_ends_at_the_timeout_naming_notebook_and_cell(project, capsys):
    tmp, log = project
    out = tmp / "reports"
    assert main(["run", str(make_config(tmp, "hang", log, ["good.ipynb"])), "--output-dir", str(out), "--quiet", "--jobs", "1"]) == 0
    good_target = os.readlink(out / "hang" / "latest")
    make_notebook(tmp / "hung.ipynb", "import threading\nthreading.Event().wait()   # never returns")
    cfg = make_config(tmp, "hang", log, ["good.ipynb", "hung.ipynb"], timeout=3, file="hang-two.yaml")
    capsys.readouterr()
    assert main(["run", str(cfg), "--output-dir", str(out), "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert "notebook hung failed at cell 4, line 2: CellTimeoutError: cell exceeded cell_timeout_s=3" in err
    assert os.readlink(out / "hang" / "latest") == good_target
    failed = [d for d in run_dirs(out / "hang") if d.name != good_target]
    assert len(failed) == 1 and read_status(failed[0]) == "failed"
    statuses = {nb["name"]: nb["status"] for nb in json.loads((failed[0] / "run.json").read_text())["notebooks"]}
    assert statuses == {"good": "ok", "hung": "failed"}


# ---------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------

SUMMARY = """\
from helpers.summary import calibration_holdout, rfm_summary
tx = data.transactions
s = rfm_summary(tx, time_unit="W")
ch = calibration_holdout(tx, "2020-03-31", time_unit="W")
report.record_results({
    "customers": len(s),
    "customer": [str(i) for i in report.pseudonymise(s.index)],
    "x": s["x"].tolist(), "t_x": s["t_x"].tolist(), "T": s["T"].tolist(), "m_x": s["m_x"].tolist(),
    "total_spend": float(s["total_spend"].sum()), "mean_m_x": float(s["m_x"].mean()),
    "holdout": {"x_star": ch["x_star"].tolist(), "m_x_star": ch["m_x_star"].tolist()},
})
"""


def test_results_are_byte_identical_whatever_the_row_order_or_line_endings(tmp_path):
    make_notebook(tmp_path / "summary.ipynb", SUMMARY)
    out = tmp_path / "reports"
    plain = make_config(tmp_path, "plain", write_log(tmp_path / "plain.csv"), ["summary.ipynb"])
    shuffled = make_config(tmp_path, "shuffled", write_log(tmp_path / "shuffled.csv", shuffle_seed=1, crlf=True),
                           ["summary.ipynb"])
    assert (tmp_path / "plain.csv").read_bytes() != (tmp_path / "shuffled.csv").read_bytes()
    assert b"\r\n" in (tmp_path / "shuffled.csv").read_bytes()
    results = []
    for cfg in (plain, plain, shuffled):
        assert main(["run", str(cfg), "--output-dir", str(out), "--quiet", "--jobs", "1"]) == 0
        latest = out / cfg.stem / "latest"
        results.append((latest / "summary" / "results.json").read_bytes())
    assert results[0] == results[1] == results[2]
    parsed = json.loads(results[0])
    assert parsed["customers"] == 30 and len(parsed["x"]) == 30
    assert sum(parsed["x"]) > 0 and sum(parsed["holdout"]["x_star"]) > 0      # not a trivial log


# ---------------------------------------------------------------------------
# a killed runner leaves no workers or kernels behind
# ---------------------------------------------------------------------------

def test_killed_runner_leaves_no_worker_or_kernel_behind(project):
    """SIGKILL of the runner alone (not of its process group: a scheduler may kill just the command) while two
    notebooks run in two workers: the workers and every kernel end by themselves within seconds (without
    helpers.run._worker_init the workers stayed, idle, with their kernels)."""
    import psutil

    tmp, log = project
    flags = [tmp / "a-started", tmp / "b-started"]
    for name, flag in zip("ab", flags):
        make_notebook(tmp / f"{name}.ipynb", f"open({str(flag)!r}, 'w').close()\nimport time\ntime.sleep(120)")
    cfg = make_config(tmp, "killed", log, ["a.ipynb", "b.ipynb"])
    proc = start(cfg, tmp / "reports", "--jobs", "2")
    try:
        wait_for(lambda: all(f.exists() for f in flags), what="both notebooks to start")
        left = psutil.Process(proc.pid).children(recursive=True)
        kernels = [p for p in left if "ipykernel" in " ".join(p.cmdline())]
        assert len(kernels) >= 2 and len(left) >= 4                 # two workers, their kernels
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        gone, alive = psutil.wait_procs(left, timeout=30)
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        kill_group(proc)
