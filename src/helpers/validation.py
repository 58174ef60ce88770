"""Judge fitted frequency models: calibration fit, holdout validation, comparison.

The checks are those of Fader, Hardie & Lee (2005, "Counting your customers
the easy way"): the histogram of repeat purchases in the calibration period
(their Figure 2), weekly tracking of repeat transactions (Figure 3),
conditional expectations of holdout purchases by calibration frequency
(Figure 4), and holdout totals; plus customer-level errors against a naive
baseline, and a recommendation that states its reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .models import FittedModel
from .value import holdout_errors, naive_baseline_holdout

__all__ = [
    "calibration_fit",
    "holdout_predictions",
    "conditional_expectations",
    "holdout_comparison",
    "recommend_model",
    "frequency_recency_matrix",
]


def _classes(x: np.ndarray, max_x: int) -> np.ndarray:
    labels = np.array([str(i) for i in range(max_x)] + [f"{max_x}+"], dtype=object)
    return labels[np.minimum(x.astype(int), max_x)]


def calibration_fit(fits: dict[str, FittedModel], summary: pd.DataFrame, max_x: int = 7) -> pd.DataFrame:
    """Observed and expected numbers of customers with 0, 1, ..., ``max_x``+ repeat purchases.

    Expected counts sum P(X(T_i) = x) over customers (each with their own
    age T_i).  Returns a frame indexed by class with ``actual`` and one column
    per model.
    """
    x = summary["x"].to_numpy(float)
    labels = [str(i) for i in range(max_x)] + [f"{max_x}+"]
    actual = pd.Series(_classes(x, max_x)).value_counts().reindex(labels, fill_value=0)
    out = pd.DataFrame({"actual": actual.to_numpy()}, index=pd.Index(labels, name="repeat purchases"))
    for name, fit in fits.items():
        out[name] = fit.expected_count_distribution(summary["T"].to_numpy(float), max_x=max_x)["expected"].to_numpy()
    return out


def holdout_predictions(fits: dict[str, FittedModel], summary: pd.DataFrame) -> pd.DataFrame:
    """Per-customer holdout purchases: ``actual`` (x_star), each model's E[X(t_star) | x, t_x, T], ``baseline``."""
    if "x_star" not in summary.columns:
        raise ValueError("summary has no holdout columns: use helpers.summary.calibration_holdout")
    t_star = float(summary["t_star"].iloc[0])
    out = pd.DataFrame({"actual": summary["x_star"].to_numpy(float)}, index=summary.index)
    for name, fit in fits.items():
        out[name] = fit.expected_purchases(t_star, summary)
    out["baseline"] = naive_baseline_holdout(summary).to_numpy()
    return out


def conditional_expectations(predictions: pd.DataFrame, x: pd.Series, max_x: int = 7) -> pd.DataFrame:
    """Mean holdout purchases by calibration frequency class, actual vs each model.

    ``predictions`` comes from :func:`holdout_predictions`; ``x`` is the
    calibration frequency of the same customers.
    """
    cls = pd.Series(_classes(x.to_numpy(float), max_x), index=x.index, name="calibration repeat purchases")
    labels = [str(i) for i in range(max_x)] + [f"{max_x}+"]
    g = predictions.groupby(cls)
    out = g.mean().reindex(labels)
    out.insert(0, "customers", g.size().reindex(labels, fill_value=0))
    return out


def holdout_comparison(fits: dict[str, FittedModel], predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per model (and the naive baseline): fit statistics and holdout accuracy.

    Columns: ``log_likelihood``, ``n_params``, ``bic``, ``predicted_total``,
    ``actual_total``, ``total_error_pct`` (predicted vs actual holdout
    purchases, %), ``mae``, ``rmse`` (customer level).
    """
    actual = predictions["actual"]
    rows = []
    for name in [*fits, "baseline"]:
        err = holdout_errors(actual, predictions[name])
        fit = fits.get(name)
        rows.append({
            "model": name,
            "log_likelihood": fit.log_likelihood if fit else np.nan,
            "n_params": fit.n_params if fit else np.nan,
            "bic": fit.bic if fit else np.nan,
            "predicted_total": float(predictions[name].sum()),
            "actual_total": float(actual.sum()),
            "total_error_pct": 100 * (predictions[name].sum() / actual.sum() - 1),
            "mae": err["mae"],
            "rmse": err["rmse"],
        })
    return pd.DataFrame(rows).set_index("model")


def recommend_model(comparison: pd.DataFrame, tolerance: float = 0.01,
                    total_tolerance_pct: float = 0.1) -> tuple[str, str]:
    """Pick a model and say why.

    Rule: the lowest customer-level holdout MAE wins, since the models exist
    to forecast individual customers.  Models within ``tolerance`` (relative)
    of the best MAE count as tied; ties go to the smallest absolute error in
    *total* holdout purchases, because customer equity is a sum over customers
    and inherits any aggregate bias one for one.  Totals within
    ``total_tolerance_pct`` percentage points of the smallest error are equal
    too (nested models at their common limit, e.g. GGompertz/NBD at b -> 0 and
    Pareto/NBD, differ only by optimiser noise); among those the model with
    fewer parameters wins (the column ``n_params``, when present), so the
    choice does not hinge on the last digits of an optimiser.  The naive
    baseline is never recommended, but every model is compared with it.

    Returns
    -------
    (model name, reason sentence)
    """
    models = comparison.drop(index="baseline", errors="ignore")
    best_mae = models["mae"].min()
    tied = models[models["mae"] <= best_mae * (1 + tolerance)]
    abs_total = tied["total_error_pct"].abs()
    close = tied[abs_total <= abs_total.min() + total_tolerance_pct]
    if len(close) > 1 and "n_params" in close.columns:
        close = close[close["n_params"] == close["n_params"].min()]
    choice = close["total_error_pct"].abs().idxmin()
    row = comparison.loc[choice]
    if len(tied) == 1:
        reason = f"{choice} has the lowest customer-level holdout MAE ({row['mae']:.3f})"
    else:
        reason = (f"{', '.join(tied.index)} are within {tolerance:.0%} of the best customer-level holdout MAE; "
                  f"of these, {choice} misses total holdout purchases by the least ({row['total_error_pct']:+.1f}%), "
                  f"which matters because customer equity sums over customers")
    if "baseline" in comparison.index:
        base = comparison.loc["baseline", "mae"]
        gain = 100 * (1 - row["mae"] / base)
        side = f"{gain:.0f}% below" if round(gain) > 0 else (f"{-gain:.0f}% above" if round(gain) < 0 else "equal to")
        reason += f"; its MAE ({row['mae']:.3f}) is {side} the naive baseline's ({base:.3f})"
    if len(tied) == 1:
        reason += f", and it misses total holdout purchases by {row['total_error_pct']:+.1f}%"
    return choice, reason + "."


def frequency_recency_matrix(fit: FittedModel, T: float, max_x: int = 20, n_recency: int = 20,
                             what: str = "p_alive", t: float | None = None) -> pd.DataFrame:
    """P(alive) or expected purchases over a frequency x recency grid at age ``T``.

    Rows: ``x`` = 0..max_x; columns: recency ``t_x`` from 0 to ``T`` in
    ``n_recency`` steps (``x = 0`` implies ``t_x = 0``; other cells with
    ``x = 0`` are left empty).  ``what="expected"`` gives E[X(t) | x, t_x, T].
    """
    if what not in ("p_alive", "expected"):
        raise ValueError("what must be 'p_alive' or 'expected'")
    xs = np.arange(max_x + 1, dtype=float)
    rs = np.linspace(0, T, n_recency)
    X, R = np.meshgrid(xs, rs, indexing="ij")
    TT = np.full_like(X, T)
    if what == "p_alive":
        val = fit.p_alive(X.ravel(), R.ravel(), TT.ravel())
    else:
        val = fit.expected_purchases(float(t if t is not None else T), X.ravel(), R.ravel(), TT.ravel())
    M = np.asarray(val, float).reshape(X.shape)
    M[0, 1:] = np.nan
    return pd.DataFrame(M, index=pd.Index(xs.astype(int), name="x"), columns=pd.Index(np.round(rs, 1), name="t_x"))


def parameter_recovery(fit, truth: dict) -> pd.DataFrame:
    """Known true parameters (simulated data) against the estimates.

    Returns ``true``, ``estimate``, ``se``, ``error_pct`` and ``z`` =
    (estimate - true) / se for the parameters of ``fit`` that ``truth`` names.
    """
    names = [k for k in fit.params.index if k in truth]
    if not names:
        raise ValueError(f"truth names none of the parameters {list(fit.params.index)}")
    true = pd.Series({k: float(truth[k]) for k in names})
    est = fit.params[names].astype(float)
    se = fit.se[names].astype(float)
    return pd.DataFrame({"true": true, "estimate": est, "se": se,
                         "error_pct": 100 * (est / true - 1), "z": (est - true) / se})
