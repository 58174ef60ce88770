"""Static covariates at scale: 5 covariates, 1e6 customers, Pareto/NBD and BG/NBD (issue #13).

Simulates customers with known coefficients (:func:`helpers.models.covariates.simulate_covariate_summary`:
5 independent 0/1 covariates with P(1) = 0.5, 0.4, 0.3, 0.5, 0.2, on both processes; ages uniform over
39..78 weeks in days, purchase times rounded up to days as a daily log gives), then times

* the covariate fit, ``fit_covariate_model(name, summary, Z, Z)`` (standard errors included; it fits the
  model without covariates first as its start), and
* the same fit without covariates, ``fit_model(name, summary)`` (standard errors included),

and prints the times, their ratio and the recovered coefficients with standard errors.  Simulation is
untimed.  Usage: ``python benchmarks/bench_covariates.py [n_customers] [model ...]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from helpers.models import fit_model
from helpers.models.covariates import fit_covariate_model, simulate_covariate_summary

SEED = 2026
P_ONE = (0.5, 0.4, 0.3, 0.5, 0.2)
GAMMA = {"purchase": np.array([0.3, -0.2, 0.4, 0.1, -0.3]), "attrition": np.array([0.5, 0.2, -0.4, 0.3, 0.1])}
THETA = {"pareto_nbd": (0.8, 10.0, 0.7, 12.0), "bgnbd": (0.8, 10.0, 0.8, 3.0)}


def simulate(name, n, seed=SEED):
    rng = np.random.default_rng(seed)
    z = np.column_stack([rng.random(n) < p for p in P_ONE]).astype(float)
    T = rng.integers(39 * 7, 78 * 7 + 1, n) / 7.0
    sim = simulate_covariate_summary(name, THETA[name], GAMMA, {"purchase": z, "attrition": z}, T, rng)
    # a daily log: purchase times on whole days (the last purchase day rounds up, at most T)
    sim["t_x"] = np.minimum(np.ceil(sim["t_x"].to_numpy() * 7.0 - 1e-9) / 7.0, sim["T"].to_numpy())
    sim.index = pd.RangeIndex(n).astype(str)
    cols = [f"z{k + 1}" for k in range(len(P_ONE))]
    return sim, pd.DataFrame(z, index=sim.index, columns=cols)


def main(argv):
    n = int(float(argv[1])) if len(argv) > 1 else 1_000_000
    names = argv[2:] or ["pareto_nbd", "bgnbd"]
    for name in names:
        sim, Z = simulate(name, n)
        t0 = time.perf_counter()
        nocov = fit_model(name, sim)
        t_nocov = time.perf_counter() - t0
        t0 = time.perf_counter()
        f = fit_covariate_model(name, sim, Z, Z)
        t_cov = time.perf_counter() - t0
        print(f"{name}: n = {n:,}, {f.n_unique:,} unique (x, t_x, T, z) rows, {f.n_groups} covariate groups")
        print(f"  fit without covariates {t_nocov:.2f} s, with 5 + 5 covariates {t_cov:.2f} s, "
              f"ratio {t_cov / t_nocov:.2f}")
        base = zip(f.params.items(), THETA[name])
        print("  base: " + ", ".join(f"{k} {v:.4g} (true {t:.4g})" for (k, v), t in base))
        for proc, g in GAMMA.items():
            est = f.coefficients[proc]
            print(f"  {proc:9s}: " + ", ".join(f"{c} {est[c]:+.4f} +- {f.se[proc + '.' + c]:.4f} (true {gv:+.2f})"
                                              for c, gv in zip(est, g)))
        print(f"  LR statistic {f.lr_test(nocov)['statistic']:.1f} on 10 df; nocov LL {nocov.log_likelihood:.1f}")


if __name__ == "__main__":
    main(sys.argv)
