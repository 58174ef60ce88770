"""The product, measured: the whole report collection (`clv-lab run`) on a simulated multi-cohort log.

The helpers' benchmarks (bench.py, bench_cohorts.py) time functions; a user
waits for the collection: pre-flight, the shared stage and every notebook in
its own kernel.  This script

1. simulates a BG/NBD + Gamma-Gamma log once (untimed, cached): ``--customers``
   customers acquired uniformly over two years, three years of day-resolved
   purchases, written as Parquet chunks (:func:`helpers.simulate.write_parquet_chunks`);
2. writes a configuration for it with ``data.engine`` = ``--engine`` (DuckDB by
   default; ``spark`` for local-mode Spark) and every notebook;
3. runs ``clv-lab run`` on it and samples, every 0.2 s, the resident memory of
   the whole process tree (the runner, the stage, every kernel, DuckDB or the
   Spark JVM): the peak of the sum is "peak RSS of the run";
4. prints the wall time, the peak RSS and what made it up (runner, workers, kernels,
   Spark; the notebooks running then), the runner's per-step times (run.json)
   and its exit code.

With ``--config`` it runs an existing configuration instead (e.g. the default
CDNOW collection: ``--config configs/cdnow.yaml``), so the same numbers are
measured for the collection a new user runs first.

Targets (issue 15): CDNOW under 15 s; 1e6 customers (~1e7 rows) under 90 s and
4 GB; 1e7 customers (~1e8 rows) under 5 minutes and 8 GB.

    .venv/bin/python benchmarks/bench_collection.py --customers 1000000
    .venv/bin/python benchmarks/bench_collection.py --config configs/cdnow.yaml
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIM = dict(r=0.7, alpha=2.5, a=0.6, b=4.0, p=6.25, q=3.74, gamma=15.44, observation_days=1095.0,
           acquisition_days=730.0, resolution="day", start="2021-01-01", time_unit_days=7.0)
SEED = 2026
CALIBRATION_END = "2023-01-31"          # ~two thirds into the three years
OBSERVATION_END = "2023-12-31"          # start + 1095 days - 1


def ensure_log(workdir: Path, n_customers: int) -> tuple[Path, int]:
    """The simulated log's folder and its row count (generated on first use, untimed)."""
    from helpers.simulate import write_parquet_chunks  # noqa: PLC0415

    out = workdir / f"collection-log-{n_customers}"
    meta = out.with_name(out.name + ".json")
    if meta.exists() and out.exists():
        return out, int(json.loads(meta.read_text())["rows"])
    t0 = time.perf_counter()
    files = write_parquet_chunks(out, n_customers, chunk_customers=min(n_customers, 500_000), seed=SEED, **SIM)
    import pyarrow.parquet as pq  # noqa: PLC0415

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    meta.write_text(json.dumps({"n_customers": n_customers, "rows": rows, "files": len(files), "sim": SIM,
                                "seed": SEED, "seconds": round(time.perf_counter() - t0, 1)}))
    print(f"generated {rows:,} rows for {n_customers:,} customers in {len(files)} file(s) "
          f"({time.perf_counter() - t0:.0f} s, untimed) -> {out}", flush=True)
    return out, rows


def write_config(workdir: Path, log: Path, n_customers: int, engine: str, models: list[str] | None = None) -> Path:
    """A configuration of the simulated log with every notebook (paths absolute: it lives outside the repo);
    ``models`` restricts the stage's candidate models (default: every registered one)."""
    notebooks = "\n".join(f"  - path: {p}" for p in sorted((ROOT / "notebooks").glob("0*.ipynb")))
    candidates = f"models: [{', '.join(models)}]\n" if models else ""
    path = workdir / f"collection-{n_customers}-{engine}.yaml"
    path.write_text(f"""# written by benchmarks/bench_collection.py
name: collection-{n_customers}-{engine}
description: >-
  Simulated multi-cohort log for the collection benchmark: {n_customers:,} customers acquired uniformly over
  two years, three years of day-resolved BG/NBD purchases with Gamma-Gamma spend (seed {SEED}).
data:
  path: {log}
  engine: {engine}
  columns: {{customer_id: customer_id, date: date, amount: amount}}
  observation_end: "{OBSERVATION_END}"
parameters:
  time_unit: W
  calibration_end: "{CALIBRATION_END}"
{candidates}cell_timeout_s: 1800
notebooks:
{notebooks}
""")
    return path


def _role(p: psutil.Process, parent: psutil.Process) -> str:
    """What a process of the run is: the runner, a notebook kernel, the Spark JVM or a notebook worker."""
    if p.pid == parent.pid:
        return "runner"
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return "other"
    return "kernel" if "ipykernel" in cmd else "spark" if "java" in cmd else "worker"


def run_collection(config: Path, output_dir: Path, jobs: int | None = None) -> dict:
    """``clv-lab run`` with the process tree's summed RSS sampled every 0.2 s.

    Besides the peak of the sum it records what made it up (``peak_by_role``: runner, workers,
    kernels, Spark, in GB), when it came (``peak_at_s``) and which notebooks were running then
    (``running_at_peak``, from the times the runner prints as each notebook ends).
    """
    cmd = [str(Path(sys.executable).with_name("clv-lab")), "run", str(config), "--output-dir", str(output_dir)]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    peak, stop = {"total": 0, "at": 0.0, "by_role": {}}, threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    parent = psutil.Process(proc.pid)

    def sample():
        while not stop.is_set():
            try:
                procs = [parent, *parent.children(recursive=True)]
                total, by_role = 0, {}
                for p in procs:
                    try:
                        rss = p.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    role = _role(p, parent)
                    by_role[role] = by_role.get(role, 0) + rss
                if total > peak["total"]:
                    peak.update(total=total, at=time.perf_counter() - t0, by_role=by_role)
            except psutil.Error:
                pass
            stop.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    lines, ended = [], {}
    for line in proc.stdout:
        lines.append(line)
        m = re.match(r"\[\d+/\d+\] (\S+): \w+ in ([\d.]+) s", line)
        if m:
            end = time.perf_counter() - t0
            ended[m.group(1)] = (end - float(m.group(2)), end)
    proc.wait()
    wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    runs = sorted((output_dir / config.stem.replace("_", "-")).glob("2*")) or sorted(output_dir.glob("*/2*"))
    run_json = json.loads((runs[-1] / "run.json").read_text()) if runs else {}
    return {"exit_code": proc.returncode, "wall_s": round(wall, 1), "peak_rss_gb": round(peak["total"] / 1e9, 2),
            "peak_at_s": round(peak["at"], 1),
            "peak_by_role": {k: round(v / 1e9, 2) for k, v in sorted(peak["by_role"].items())},
            "running_at_peak": [n for n, (a, b) in ended.items() if a <= peak["at"] <= b],
            "timings": run_json.get("timings", {}), "output": "".join(lines)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000, help="customers of the simulated log")
    ap.add_argument("--engine", default="duckdb", choices=["pandas", "duckdb", "spark"])
    ap.add_argument("--config", help="run this configuration instead of a simulated log")
    ap.add_argument("--workdir", default="/tmp/clv-lab-bench", help="where the log, config and reports go")
    ap.add_argument("--jobs", type=int, help="notebooks run in parallel (default: the runner's)")
    ap.add_argument("--models", nargs="+", help="the stage's candidate models (default: every registered one)")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if args.config:
        config, what = Path(args.config).resolve(), args.config
    else:
        log, rows = ensure_log(workdir, args.customers)
        config = write_config(workdir, log, args.customers, args.engine, args.models)
        what = (f"{rows:,} rows, {args.customers:,} customers, engine {args.engine}"
                + (f", models {', '.join(args.models)}" if args.models else ", every model"))
    res = run_collection(config, workdir / "reports", args.jobs)
    print(res.pop("output"))
    print(f"collection on {what}: exit {res['exit_code']}, wall {res['wall_s']} s, "
          f"peak RSS of the run {res['peak_rss_gb']} GB")
    print(f"the peak came at {res['peak_at_s']} s: " + ", ".join(f"{k} {v} GB" for k, v in res["peak_by_role"].items())
          + "; notebooks running: " + (", ".join(res["running_at_peak"]) or "none (pre-flight or stage)"))
    print(json.dumps(res["timings"], indent=1))
    return int(res["exit_code"])


if __name__ == "__main__":
    raise SystemExit(main())
