"""Ranking diagnostics of a holdout forecast: does the model put the right customers first?

A forecast can get the *total* of holdout purchases right and still rank
customers badly, or rank them well with a biased total.  The closing sentences
of the reports ("the model ranks customers well") rest on the metrics here,
each computed for the model and for the naive baseline ``x / T * t_star`` on
the same customers:

``spearman``
    Spearman rank correlation of predicted and actual holdout purchases
    (ties get average ranks).
``top_capture``
    Share of all actual holdout purchases made by the ``share`` of customers
    with the highest predictions (ties at the cut-off shared pro rata, so the
    value does not depend on row order); the "top-decile capture" of
    direct-marketing practice for ``share = 0.1``.
``gini``
    Normalised Gini coefficient of the actual purchases ordered by the
    prediction: 1 for a perfect ordering, 0 for a random one (the area between
    the cumulative-capture curve and the diagonal, divided by that of the
    perfect ordering).

All three are undefined (NaN) when the holdout has no purchases at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

__all__ = ["spearman", "top_capture", "gini", "ranking_table", "RANKING_METRICS"]

#: The ranking metrics, in the order the reports show them.
RANKING_METRICS = ("spearman", "top_decile_capture", "gini")


def _arrays(actual, predicted) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if a.shape != p.shape:
        raise ValueError(f"actual and predicted differ in length: {a.size} vs {p.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(p))):
        raise ValueError("actual and predicted must be finite")
    return a, p


def spearman(actual, predicted) -> float:
    """Spearman rank correlation of ``predicted`` with ``actual`` (NaN if either is constant)."""
    a, p = _arrays(actual, predicted)
    ra, rp = rankdata(a), rankdata(p)
    sa, sp = ra.std(), rp.std()
    if a.size < 2 or sa == 0 or sp == 0:
        return float("nan")
    return float(np.mean((ra - ra.mean()) * (rp - rp.mean())) / (sa * sp))


def _capture_curve(a: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of customers and of actual purchases, customers sorted by falling prediction.

    Customers with equal predictions form one block whose purchases are spread
    evenly over it (the expected curve under a random order within the tie).
    """
    order = np.argsort(-p, kind="mergesort")
    ps, as_ = p[order], a[order]
    # blocks of equal prediction
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    sizes = np.diff(np.r_[starts, ps.size])
    block_sum = np.add.reduceat(as_, starts)
    x = np.r_[0.0, np.cumsum(sizes)] / ps.size
    y = np.r_[0.0, np.cumsum(block_sum)] / a.sum()
    return x, y


def top_capture(actual, predicted, share: float = 0.1) -> float:
    """Share of actual holdout purchases made by the top ``share`` of customers by prediction."""
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    a, p = _arrays(actual, predicted)
    if a.sum() <= 0:
        return float("nan")
    x, y = _capture_curve(a, p)
    return float(np.interp(share, x, y))


def gini(actual, predicted) -> float:
    """Normalised Gini of ``actual`` ordered by ``predicted`` (1 perfect, 0 random)."""
    a, p = _arrays(actual, predicted)
    if a.sum() <= 0:
        return float("nan")
    x, y = _capture_curve(a, p)
    xp, yp = _capture_curve(a, a)
    area = np.trapezoid(y, x) - 0.5
    best = np.trapezoid(yp, xp) - 0.5
    return float(area / best) if best > 0 else float("nan")


def ranking_table(actual, predictions: pd.DataFrame, share: float = 0.1) -> pd.DataFrame:
    """One row per column of ``predictions`` (models and the naive baseline): the ranking metrics."""
    rows = {}
    for name in predictions.columns:
        p = predictions[name]
        rows[name] = {"spearman": spearman(actual, p), "top_decile_capture": top_capture(actual, p, share),
                      "gini": gini(actual, p)}
    out = pd.DataFrame(rows).T
    out.index.name = "model"
    return out[list(RANKING_METRICS)]
