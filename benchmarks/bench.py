"""Benchmarks of clv-lab's fast paths against plain lifetimes.

Usage (from the repository root, with the project's Python)::

    python benchmarks/bench.py summary --scale 1e7     # transaction log -> RFM summary
    python benchmarks/bench.py fit     --scale 1e6     # BG/NBD fit, customers
    python benchmarks/bench.py clv     --scale 1e6     # 12-month CLV, customers
    python benchmarks/bench.py e2e     --scale 1e8     # log -> summary -> fit -> CLV -> segments
    python benchmarks/bench.py all     --scale 1e5     # quick smoke run of everything
    python benchmarks/bench.py fit     --scale 1e6 --cohorts   # the same on a multi-cohort log (issue #15)

Every timed measurement runs in a fresh subprocess (``python bench.py _worker
...``) that reports its wall time and its peak extra memory: the peak resident
set size (``VmHWM`` from ``/proc/self/status``, reset through
``/proc/self/clear_refs`` after the untimed preparation where the kernel
allows it) minus the resident set size just before the timed section.  That
counts native memory (DuckDB, numpy) too, unlike ``tracemalloc``.  The two
paths alternate for ``--rounds`` rounds and medians are reported.  Before
timing, both paths' outputs are compared (``check`` step).

Data are simulated with :func:`helpers.simulate.write_parquet_chunks` (BG/NBD +
Gamma-Gamma, seeded, day-resolution dates, about 9.7 transactions per
customer) into ``--workdir`` (default ``/tmp/clv-bench``, never the
repository); generation is cached and not timed.  By default the first purchases fall within 12 weeks
(``acquisition_days=84``), so the ages ``T`` take few distinct values; ``--cohorts`` simulates the
shape of issue #15 instead (:data:`COHORTS`: first purchases spread over two years, observed to the
end of the third, hundreds of thousands of distinct ``(x, t_x, T)`` rows at 1e6 customers), cached
under its own names (``log-<n>-cohorts``, ``summary-<n>-cohorts.pkl``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SIM = dict(r=0.7, alpha=2.5, a=0.6, b=4.0, p=6.25, q=3.74, gamma=15.44, observation_days=546.0,
           acquisition_days=84.0, resolution="day", start="2021-01-01")
ROWS_PER_CUSTOMER = 9.68          # measured at SIM (seed 2024): 9,680,790 rows for 1,000,000 customers
#: --cohorts: acquisition over two years, observation to the end of the third (the log shape of issue #15)
COHORTS = dict(acquisition_days=730.0, observation_days=1095.0)
TAG = ""                          # "-cohorts" with --cohorts (file names of the cached data)
SEED = 2024
HORIZON, RATE = 12, 0.01
TARGETS = {"summary": ("speed-up >= 10x, memory <= 1/4", 10.0),
           "fit": ("speed-up >= 10x", 10.0),
           "clv": ("speed-up >= 20x", 20.0)}


# ---------------------------------------------------------------------------
# memory and timing inside a worker
# ---------------------------------------------------------------------------

def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class Measure:
    """Wall time and peak extra RSS of the ``with`` block (RSS before it as the baseline)."""

    def __enter__(self):
        import gc

        gc.collect()
        self.reset = _reset_peak()
        self.base = _status("VmRSS")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.peak = _status("VmHWM")
        self.extra = max(self.peak - self.base, 0)
        return False

    def report(self, **kw):
        return {"seconds": self.seconds, "base_mb": self.base / 2**20, "peak_mb": self.peak / 2**20,
                "extra_mb": self.extra / 2**20, "peak_reset": self.reset, **kw}


# ---------------------------------------------------------------------------
# data preparation (untimed, cached)
# ---------------------------------------------------------------------------

def log_dir(workdir: Path, n_customers: int) -> Path:
    return workdir / f"log-{n_customers}{TAG}"


def ensure_log(workdir: Path, n_customers: int) -> Path:
    from helpers.simulate import write_parquet_chunks

    out = log_dir(workdir, n_customers)
    meta = out.with_name(out.name + ".json")
    if meta.exists() and out.exists():
        return out
    if out.exists():
        shutil.rmtree(out)
    need = n_customers * ROWS_PER_CUSTOMER * 11 * 1.3      # ~11 bytes per row on disk, +30%
    free = shutil.disk_usage(workdir).free
    if need > free:
        raise SystemExit(f"not enough disk space in {workdir}: need ~{need / 2**30:.1f} GiB, have {free / 2**30:.1f}")
    t0 = time.perf_counter()
    files = write_parquet_chunks(out, n_customers, chunk_customers=min(n_customers, 1_000_000), seed=SEED, **SIM)
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    meta.write_text(json.dumps({"n_customers": n_customers, "rows": rows, "files": len(files),
                                "seconds": time.perf_counter() - t0, "sim": SIM, "seed": SEED}))
    print(f"  generated {rows:,} rows for {n_customers:,} customers in {len(files)} file(s) "
          f"({time.perf_counter() - t0:.0f} s, untimed) -> {out}", flush=True)
    return out


def log_rows(path: Path) -> int:
    return json.loads(Path(path).with_name(Path(path).name + ".json").read_text())["rows"]


def ensure_summary(workdir: Path, n_customers: int) -> Path:
    """The weekly RFM summary (DuckDB) of a simulated log plus our BG/NBD and Gamma-Gamma fits."""
    out = workdir / f"summary-{n_customers}{TAG}.pkl"
    if out.exists():
        return out
    from helpers.models import fit_gamma_gamma, fit_model
    from helpers.summary_duckdb import rfm_summary_duckdb

    log = ensure_log(workdir, n_customers)
    s = rfm_summary_duckdb(log, time_unit="W")
    f = fit_model("bgnbd", s, time_unit="W")
    rep = s[s["x"] > 0]
    g = fit_gamma_gamma(x=rep["x"], m_x=rep["m_x"], warn=False)
    with open(out, "wb") as fh:
        pickle.dump({"summary": s[["x", "t_x", "T", "m_x"]], "bgnbd": f, "gg": g}, fh)
    return out


# ---------------------------------------------------------------------------
# the paths (run inside workers)
# ---------------------------------------------------------------------------

def run_summary(path: str, engine: str, save: str | None):
    if engine == "ours":
        from helpers.summary_duckdb import rfm_summary_duckdb

        with Measure() as m:
            s = rfm_summary_duckdb(path, time_unit="W")
        out = {"x": s["x"].to_numpy(), "t_x": s["t_x"].to_numpy(), "T": s["T"].to_numpy(),
               "m_x": s["m_x"].to_numpy(), "ids": s.index.to_numpy()}
    else:
        import pandas as pd
        from lifetimes.utils import summary_data_from_transaction_data

        with Measure() as m:
            df = pd.read_parquet(path)
            s = summary_data_from_transaction_data(df, "customer_id", "date", monetary_value_col="amount",
                                                   freq="D", freq_multiplier=7)
        s = s.sort_index()
        out = {"x": s["frequency"].to_numpy(), "t_x": s["recency"].to_numpy(), "T": s["T"].to_numpy(),
               "m_x": s["monetary_value"].to_numpy(), "ids": s.index.to_numpy()}
    if save:
        with open(save, "wb") as fh:
            pickle.dump(out, fh)
    return m.report(customers=len(s))


def _load(path):
    with open(path, "rb") as fh:
        return pickle.load(fh)


def run_fit(path: str, engine: str, save: str | None):
    d = _load(path)
    s = d["summary"]
    x, t_x, T = (s[c].to_numpy() for c in ("x", "t_x", "T"))
    if engine == "ours":
        from helpers.models import fit_model

        with Measure() as m:
            f = fit_model("bgnbd", x=x, t_x=t_x, T=T, time_unit="W")
        params = f.params[["r", "alpha", "a", "b"]].to_numpy()
    else:
        from lifetimes import BetaGeoFitter

        with Measure() as m:
            f = BetaGeoFitter().fit(x, t_x, T)
        params = f.params_[["r", "alpha", "a", "b"]].to_numpy()
    if save:
        with open(save, "wb") as fh:
            pickle.dump({"params": params}, fh)
    return m.report(customers=len(x), params=[float(v) for v in params])


def run_clv(path: str, engine: str, save: str | None):
    d = _load(path)
    s, f, g = d["summary"], d["bgnbd"], d["gg"]
    if engine == "ours":
        from helpers.value import clv, lifetimes_days_per_month

        with Measure() as m:
            v = clv(f, g, s, horizon_months=HORIZON, monthly_discount_rate=RATE, time_unit="W",
                    days_per_month=lifetimes_days_per_month("W")).to_numpy()
    else:
        import lifetimes

        bgf = lifetimes.BetaGeoFitter()
        bgf.params_ = f.params.copy()
        bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time   # as fit() sets it
        ggf = lifetimes.GammaGammaFitter()
        ggf.params_ = g.params.rename({"gamma": "v"})
        with Measure() as m:
            v = ggf.customer_lifetime_value(bgf, s["x"], s["t_x"], s["T"], s["m_x"], time=HORIZON,
                                            discount_rate=RATE, freq="W").to_numpy()
    if save:
        with open(save, "wb") as fh:
            pickle.dump({"clv": v}, fh)
    return m.report(customers=len(s))


def run_e2e(path: str, engine: str, save: str | None):
    """Log -> summary -> BG/NBD + Gamma-Gamma fits -> 12-month CLV -> net CLV -> segments."""
    import pandas as pd

    from helpers.models import fit_gamma_gamma, fit_model, unique_apply
    from helpers.segments import CostModel, assign_segments
    from helpers.value import clv

    steps = {}
    with Measure() as m:
        t = time.perf_counter()
        if engine == "ours":
            from helpers.summary_duckdb import rfm_summary_duckdb

            s = rfm_summary_duckdb(path, time_unit="W")
        else:  # lifetimes' summary, then the same model code (only to show where lifetimes stops)
            from lifetimes.utils import summary_data_from_transaction_data

            df = pd.read_parquet(path)
            s = summary_data_from_transaction_data(df, "customer_id", "date", monetary_value_col="amount",
                                                   freq="D", freq_multiplier=7)
            del df
            s = s.rename(columns={"frequency": "x", "recency": "t_x", "monetary_value": "m_x"})
        steps["summary"] = time.perf_counter() - t
        t = time.perf_counter()
        if engine == "ours":
            f = fit_model("bgnbd", s, time_unit="W")
            rep = s["x"].to_numpy() > 0
            g = fit_gamma_gamma(x=s["x"].to_numpy()[rep], m_x=s["m_x"].to_numpy()[rep], warn=False)
        else:
            import lifetimes

            f = lifetimes.BetaGeoFitter().fit(s["x"], s["t_x"], s["T"])
            rep = s["x"] > 0
            g = lifetimes.GammaGammaFitter().fit(s["x"][rep], s["m_x"][rep])
        steps["fit"] = time.perf_counter() - t
        t = time.perf_counter()
        margin, costs = 0.3, CostModel(cost_per_order=2.0, cost_per_active_month=0.25)
        if engine == "ours":
            value = clv(f, g, s, horizon_months=HORIZON, monthly_discount_rate=RATE, margin=margin, time_unit="W")
        else:
            value = g.customer_lifetime_value(f, s["x"], s["t_x"], s["T"], s["m_x"], time=HORIZON,
                                              discount_rate=RATE, freq="W") * margin
        steps["clv"] = time.perf_counter() - t
        t = time.perf_counter()
        # simple cost model: cost per expected order over the horizon + cost per month while alive now
        weeks = HORIZON * 365.25 / 12 / 7
        x, t_x, T = (s[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
        if engine == "ours":
            orders = unique_apply(lambda a, b, c: f.expected_purchases(weeks, a, b, c), x, t_x, T)
            alive = unique_apply(lambda a, b, c: f.p_alive(a, b, c), x, t_x, T)
            spend = g.expected_spend(x, s["m_x"].to_numpy())
        else:
            orders = f.conditional_expected_number_of_purchases_up_to_time(weeks, x, t_x, T)
            alive = f.conditional_probability_alive(x, t_x, T)
            spend = g.conditional_expected_average_profit(s["x"], s["m_x"]).to_numpy()
        cost = costs.cost_per_order * orders + costs.cost_per_active_month * HORIZON * alive
        net = pd.Series(np.asarray(value) - cost, index=s.index, name="net_clv")
        # potential: the same orders at the 75th percentile of expected spend per order (if higher)
        uplift = np.maximum(np.quantile(spend, 0.75) / spend, 1.0)
        potential = np.asarray(value) * uplift - cost
        seg = assign_segments(net, pd.Series(potential, index=s.index))
        steps["segments"] = time.perf_counter() - t
    counts = seg.value_counts().reindex(["MVC", "MGC", "Maintain", "BZ"]).to_dict()
    return m.report(customers=len(s), steps=steps, segments={k: int(v) for k, v in counts.items()},
                    equity=float(np.sum(value)), net_equity=float(net.sum()))


RUNNERS = {"summary": run_summary, "fit": run_fit, "clv": run_clv, "e2e": run_e2e}


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------

def worker(task, path, engine, save=None, timeout=3600):
    cmd = [sys.executable, str(HERE), "_worker", task, str(path), engine] + ([save] if save else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        return {"failed": True, "returncode": p.returncode, "stderr": p.stderr[-2000:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def compare(task, a_path, b_path):
    a, b = _load(a_path), _load(b_path)
    if task == "summary":
        assert np.array_equal(a["ids"].astype(str), b["ids"].astype(str)), "customer ids differ"
        for c in ("x", "t_x", "T"):
            assert np.array_equal(a[c], b[c]), f"{c} differs"
        np.testing.assert_allclose(a["m_x"], b["m_x"], rtol=1e-9, atol=0)
        return "ids, x, t_x, T identical; m_x equal to 1e-9 relative"
    if task == "fit":
        rel = np.max(np.abs(a["params"] / b["params"] - 1))
        assert rel < 1e-3, f"parameters differ by {rel:.2e} relative"
        return f"parameters equal to {rel:.1e} relative (ours r, alpha, a, b = {np.round(a['params'], 5).tolist()})"
    if task == "clv":
        np.testing.assert_allclose(a["clv"], b["clv"], rtol=1e-9, atol=0)
        rel = np.max(np.abs(a["clv"] / b["clv"] - 1))
        return f"CLV equal to {rel:.1e} relative (max over customers)"
    raise ValueError(task)


def bench(task, scale, rounds, workdir: Path, results: list):
    print(f"\n== {task} (scale {scale:,.0f}) ==", flush=True)
    if task == "summary":
        n_customers = max(int(round(scale / ROWS_PER_CUSTOMER)), 100)
        path = ensure_log(workdir, n_customers)
        size = f"{log_rows(path):,} transactions ({n_customers:,} customers)"
    else:
        n_customers = int(scale)
        path = ensure_summary(workdir, n_customers)
        size = f"{n_customers:,} customers"
        if TAG:
            summ = _load(path)["summary"]
            size += (f" (multi-cohort: {len(summ[['x', 't_x', 'T']].drop_duplicates()):,} unique rows, "
                     f"{summ['T'].nunique():,} distinct T)")
    a, b = workdir / f"{task}{TAG}-ours.pkl", workdir / f"{task}{TAG}-lifetimes.pkl"
    first_ours = worker(task, path, "ours", str(a))
    first_lt = worker(task, path, "lifetimes", str(b))
    for r in (first_ours, first_lt):
        if r.get("failed"):
            raise SystemExit(f"worker failed: {r['stderr']}")
    check = compare(task, a, b)
    print(f"  check: {check}", flush=True)
    runs = {"ours": [], "lifetimes": []}
    for k in range(rounds):
        for engine in (("ours", "lifetimes") if k % 2 == 0 else ("lifetimes", "ours")):
            r = worker(task, path, engine)
            if r.get("failed"):
                raise SystemExit(f"worker failed: {r['stderr']}")
            runs[engine].append(r)
            print(f"  round {k + 1} {engine:9s} {r['seconds']:8.2f} s  +{r['extra_mb']:8.0f} MB", flush=True)
    med = {e: statistics.median(r["seconds"] for r in v) for e, v in runs.items()}
    mem = {e: statistics.median(r["extra_mb"] for r in v) for e, v in runs.items()}
    ratio = med["lifetimes"] / med["ours"]
    goal, need = TARGETS[task]
    ok = ratio >= need and (task != "summary" or mem["ours"] <= mem["lifetimes"] / 4)
    row = {"task": task, "size": size, "ours_s": med["ours"], "lifetimes_s": med["lifetimes"], "ratio": ratio,
           "ours_mb": mem["ours"], "lifetimes_mb": mem["lifetimes"], "target": goal, "met": ok, "check": check,
           "rounds": rounds, "all": runs}
    print(f"  median: ours {med['ours']:.2f} s (+{mem['ours']:.0f} MB), lifetimes {med['lifetimes']:.2f} s "
          f"(+{mem['lifetimes']:.0f} MB), ratio {ratio:.1f}x, memory {mem['lifetimes'] / max(mem['ours'], 1):.1f}x "
          f"-> target {goal}: {'MET' if ok else 'MISSED'}", flush=True)
    results.append(row)


def bench_e2e(scale, workdir: Path, results: list, lifetimes_scale: float | None):
    n_customers = max(int(round(scale / ROWS_PER_CUSTOMER)), 100)
    print(f"\n== e2e (scale {scale:,.0f}) ==", flush=True)
    path = ensure_log(workdir, n_customers)
    r = worker("e2e", path, "ours")
    if r.get("failed"):
        raise SystemExit(f"worker failed: {r['stderr']}")
    peak_gb = r["peak_mb"] / 1024
    ok = r["seconds"] < 120 and peak_gb < 8
    print(f"  ours: {log_rows(path):,} transactions, {r['customers']:,} customers: {r['seconds']:.1f} s, "
          f"peak RSS {peak_gb:.2f} GB; steps " + ", ".join(f"{k} {v:.1f} s" for k, v in r["steps"].items())
          + f"; segments {r['segments']} -> target < 120 s and < 8 GB: {'MET' if ok else 'MISSED'}", flush=True)
    row = {"task": "e2e", "size": f"{log_rows(path):,} transactions ({r['customers']:,} customers)",
           "ours": r, "met": ok}
    if lifetimes_scale:
        n_lt = max(int(round(lifetimes_scale / ROWS_PER_CUSTOMER)), 100)
        lp = ensure_log(workdir, n_lt)
        lt = worker("e2e", lp, "lifetimes", timeout=1800)
        if lt.get("failed"):
            print(f"  lifetimes at {log_rows(lp):,} transactions failed: {lt['stderr'][-500:]}", flush=True)
        else:
            print(f"  lifetimes at {log_rows(lp):,} transactions ({lt['customers']:,} customers): "
                  f"{lt['seconds']:.1f} s, peak RSS {lt['peak_mb'] / 1024:.2f} GB (+{lt['extra_mb'] / 1024:.2f} GB); "
                  "steps " + ", ".join(f"{k} {v:.1f} s" for k, v in lt["steps"].items()), flush=True)
        row["lifetimes"] = lt
        row["lifetimes_size"] = f"{log_rows(lp):,} transactions"
    results.append(row)


def machine() -> dict:
    import duckdb
    import lifetimes
    import pandas
    import pyarrow
    import scipy

    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = _meminfo("MemTotal")
    return {"nproc": os.cpu_count(), "memory_gb": mem / 2**30, "cpu": cpu, "python": sys.version.split()[0],
            "numpy": np.__version__, "pandas": pandas.__version__, "duckdb": duckdb.__version__,
            "pyarrow": pyarrow.__version__, "scipy": scipy.__version__, "lifetimes": lifetimes.__version__,
            "load_average": os.getloadavg()}


def _meminfo(key):
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        task, path, engine = argv[1:4]
        save = argv[4] if len(argv) > 4 else None
        print(json.dumps(RUNNERS[task](path, engine, save)))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=["summary", "fit", "clv", "e2e", "all"])
    ap.add_argument("--scale", type=float, default=None,
                    help="transactions (summary, e2e) or customers (fit, clv); default: the target sizes "
                         "1e7, 1e6, 1e6, 1e8 (all: 1e5)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per path (median reported)")
    ap.add_argument("--workdir", default="/tmp/clv-bench", help="where simulated data go (not the repository)")
    ap.add_argument("--lifetimes-scale", type=float, default=None,
                    help="e2e: also run the lifetimes chain on a log of this many transactions (e.g. 1e7)")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    ap.add_argument("--cohorts", action="store_true",
                    help="multi-cohort log: first purchases over two years, observed to the end of the third")
    args = ap.parse_args(argv)
    if args.cohorts:
        global TAG
        SIM.update(COHORTS)
        TAG = "-cohorts"
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"machine: {info}", flush=True)
    print(f"disk free in {workdir}: {shutil.disk_usage(workdir).free / 2**30:.0f} GiB", flush=True)
    results = []
    defaults = {"summary": 1e7, "fit": 1e6, "clv": 1e6, "e2e": 1e8}
    tasks = ["summary", "fit", "clv", "e2e"] if args.task == "all" else [args.task]
    for task in tasks:
        scale = args.scale if args.scale is not None else (1e5 if args.task == "all" else defaults[task])
        if task == "e2e":
            bench_e2e(scale, workdir, results, args.lifetimes_scale)
        else:
            bench(task, scale, args.rounds, workdir, results)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
