"""Every registered continuous-time model fitted on a multi-cohort summary (issue #15).

The benchmark in ``bench.py`` fits a log whose customers were all acquired
within 12 weeks, so the ages ``T`` take few distinct values.  A log acquired
over years at day resolution has hundreds of thousands of distinct
``(x, t_x, T)`` rows at 1e6 customers, and that is what the fitters' cost
grows with.  This script simulates such a summary (BG/NBD truth r=0.6,
alpha=4, a=0.8, b=4 per week; first purchases spread uniformly over two
years, observed to the end of the third; ``t_x`` rounded to whole days) and
times each model's fit (standard errors included) in this process, then
lifetimes' BG/NBD on the same summary for the ratio, and lifetimes' Pareto/NBD on
the first ``--lifetimes-pareto`` customers (default 1e5; it takes minutes at 1e6)
against ours on the same customers.

Usage (repository root)::

    python benchmarks/bench_cohorts.py --customers 1e6 [--models bgnbd pareto_nbd] [--no-lifetimes]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

THETA = (0.6, 4.0, 0.8, 4.0)            # BG/NBD r, alpha, a, b (weeks)
SEED = 7


def summary(n_customers: int, seed: int = SEED):
    """The multi-cohort calibration summary (x, t_x, T in weeks, day resolution)."""
    from helpers.models import get_model

    rng = np.random.default_rng(seed)
    T = rng.integers(365, 3 * 365, n_customers) / 7.0       # ages: acquired over two years, 3 years of data
    s = get_model("bgnbd").simulate_summary(THETA, T, rng)
    s["t_x"] = np.where(s["x"] > 0, np.maximum(np.round(s["t_x"] * 7), 1) / 7, 0.0)
    return s


def main(argv=None) -> int:
    from helpers.models import fit_model, get_model, registered_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=float, default=1e6)
    ap.add_argument("--models", nargs="*", default=None, help="registry names (default: every continuous model)")
    ap.add_argument("--no-lifetimes", action="store_true", help="skip lifetimes' BG/NBD and Pareto/NBD")
    ap.add_argument("--lifetimes-pareto", type=float, default=1e5,
                    help="customers for the lifetimes Pareto/NBD comparison (default 1e5)")
    args = ap.parse_args(argv)
    n = int(args.customers)
    names = args.models or [m for m in registered_models() if not get_model(m).discrete]
    s = summary(n)
    n_unique = len(s[["x", "t_x", "T"]].drop_duplicates())
    print(f"{n:,} customers, {n_unique:,} unique (x, t_x, T) rows, {s['T'].nunique():,} distinct T; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    times = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            f = fit_model(name, s, time_unit="W")
        except Exception as e:  # noqa: BLE001 - a benchmark reports every model
            print(f"{name:15s} failed: {type(e).__name__}: {e}")
            continue
        times[name] = time.perf_counter() - t0
        params = ", ".join(f"{k}={v:.4g}" for k, v in f.params.items())
        print(f"{name:15s} {times[name]:7.2f} s  converged={f.converged}  {params}")
    if not args.no_lifetimes and "bgnbd" in times:
        import lifetimes

        t0 = time.perf_counter()
        lf = lifetimes.BetaGeoFitter().fit(s["x"], s["t_x"], s["T"])
        t_lf = time.perf_counter() - t0
        params = {k: round(float(v), 4) for k, v in lf.params_.items()}
        print(f"lifetimes BG/NBD {t_lf:7.2f} s  {params}  ratio {t_lf / times['bgnbd']:.1f}x")
    if not args.no_lifetimes and "pareto_nbd" in times:
        import lifetimes

        # lifetimes' Pareto/NBD evaluates hyp2f1 per customer with numerical gradients: minutes at 1e6,
        # so it runs on the first --lifetimes-pareto customers, timed against ours on the same rows
        m = min(n, int(args.lifetimes_pareto))
        sub = s.iloc[:m]
        t0 = time.perf_counter()
        fit_model("pareto_nbd", sub, time_unit="W")
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        lf = lifetimes.ParetoNBDFitter().fit(sub["x"], sub["t_x"], sub["T"])
        t_lf = time.perf_counter() - t0
        params = {k: round(float(v), 4) for k, v in lf.params_.items()}
        print(f"lifetimes Pareto/NBD on {m:,} customers {t_lf:7.2f} s  {params}; "
              f"ours {t_ours:.2f} s there: ratio {t_lf / t_ours:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
