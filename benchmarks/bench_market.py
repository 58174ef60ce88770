"""Benchmark of helpers.simulate.simulate_market (the cross-firm market notebook's simulation).

Usage (from the repository root, with the project's Python)::

    python benchmarks/bench_market.py                     # 200 firms, seed 0, 3 rounds
    python benchmarks/bench_market.py --firms 500 --rounds 5 --json /tmp/clv-bench/market.json

Each round runs ``simulate_market(n_firms, seed=seed)`` in a fresh subprocess (so that imports and caches of
one round do not speed up the next) and reports its wall time; the median is compared with the target of
15 s for 200 firms (the limit the test suite used to assert; timings belong here, not in tests).  Nothing
is written to the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
TARGET_S = 15.0          # for 200 firms


def _worker(n_firms: int, seed: int) -> dict:
    import time

    from helpers.simulate import simulate_market

    t0 = time.perf_counter()
    firms = simulate_market(n_firms, seed=seed)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "firms": int(len(firms)), "customers": int(firms["n_customers"].sum())}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        print(json.dumps(_worker(int(argv[1]), int(argv[2]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firms", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)
    runs = []
    for k in range(args.rounds):
        p = subprocess.run([sys.executable, str(HERE), "_worker", str(args.firms), str(args.seed)],
                           capture_output=True, text=True, timeout=3600)
        if p.returncode != 0:
            raise SystemExit(f"worker failed:\n{p.stderr[-2000:]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        runs.append(r)
        print(f"round {k + 1}: {r['seconds']:.2f} s ({r['firms']} firms, {r['customers']:,} customers)", flush=True)
    med = statistics.median(r["seconds"] for r in runs)
    target = TARGET_S * args.firms / 200
    ok = med < target
    print(f"median {med:.2f} s over {args.rounds} rounds (load average {os.getloadavg()[0]:.1f}) -> "
          f"target < {target:.0f} s: {'MET' if ok else 'MISSED'}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"firms": args.firms, "seed": args.seed, "median_s": med,
                                               "target_s": target, "met": ok, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
