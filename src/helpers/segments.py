"""Customer segments: Most Valuable, Most Growable and Below-Zero customers.

A common claim of the relationship-marketing essays: a firm should identify
its customers, differentiate them into Most Valuable Customers (MVC), Most
Growable Customers (MGC) and Below Zeros (BZ, whose cost to serve exceeds
their value), and serve the MVCs customer-centrically.  This module turns that
into explicit, parameterised rules on model-based net customer lifetime value,
with any frequency model of :mod:`helpers.models` (the run's chosen one).

Cost to serve
    Three documented components (:class:`CostModel`):

    * ``cost_per_order`` — fulfilment, payment and handling per purchase
      occasion, charged on every expected future purchase;
    * ``cost_per_active_month`` — account upkeep, mailings and service per
      customer-month while the customer is alive (charged with the model's
      probability that the customer is still alive in that month);
    * ``cost_per_return`` — handling per returned order, charged at the
      customer's historical return rate per order (when the log has returns).

    A per-customer cost column from the data (e.g. service tickets priced by
    finance) can be added with ``extra_cost``.  All future costs are
    discounted with the same monthly rate as the margin.

Net CLV
    discounted gross margin on expected spend minus discounted expected cost
    to serve over the same horizon.

Value basis (:func:`value_basis`, as in :mod:`helpers.stage`)
    ``"spend model"`` (the log has amounts): the value of a purchase is the
    margin on the Gamma-Gamma expected spend ``E[M | x, m_x]``.
    ``"value per purchase"`` (no amounts, the configuration gives a money value
    per purchase): ``margin * value_per_purchase``; costs apply in the same money.
    ``"purchases"`` (no amounts, no value per purchase): value is counted in
    (discounted) expected purchases; a cost in money cannot be set against a
    count, so the costs must be zero and nobody is below zero.  Without amounts
    there is no spend per order to raise, so nobody has a growth gap and the
    MGC segment is empty (:func:`spend_uplift_potential` needs amounts).

Segments (every customer gets exactly one, in this priority order)
    ``BZ``  net CLV < 0;
    ``MVC`` the top ``mvc_share`` of all customers by net CLV (among those
            not BZ);
    ``MGC`` among the rest, the top ``mgc_share`` of all customers by growth
            gap = potential net CLV - net CLV;
    ``Maintain`` everybody else: positive, neither top nor growable.

Holdout validation and its forecast interval (:func:`holdout_interval`)
    The segments are formed at the calibration end with the calibration fits;
    each segment's forecast holdout value (:func:`holdout_forecast`) is set
    against what its customers realised (:func:`realised_holdout_value`).  The
    interval of that forecast is a parametric bootstrap of the whole procedure
    from the models' own generative processes: a look-alike base (the
    calibration customers' ages ``T``) is simulated from the fitted frequency
    model (``simulate_summary``: calibration history and holdout purchases) and
    the fitted Gamma-Gamma model (per customer ``nu ~ Gamma(q, gamma)``,
    calibration mean spend from ``Gamma(p x, nu) / x``, holdout spend
    ``Gamma(p x*, nu)``); it is segmented by the same rules with parameters
    drawn from the estimates' asymptotic normal distribution on the log scale
    (estimation error; the fits' ``cov``), and each segment's realised over
    forecast ratio of purchases and of spend is recorded.  The real segment's
    interval applies those ratios, jointly, to its own forecast parts and
    takes the central quantiles of the result, widened for the finite number
    of replicates (:func:`ensemble_interval`).  So the interval holds the Poisson-Gamma noise of purchases (including
    drop-out during the holdout), the Gamma spend noise, the selection of the
    segments by the forecast itself and the parameter uncertainty; it assumes
    the model (a misfitting model shows as a realised value outside it).  An
    analytic predictive variance (mixed Poisson with a Gamma posterior rate)
    was not used: it needs each model's second conditional moment, which the
    model interface does not have, and it misses the drop-out within the
    holdout and the parameter uncertainty.  The tests check the coverage on
    logs simulated from BG/NBD + Gamma-Gamma (90% and 50% intervals hold the
    realised value about 90% and 50% of the time; twice or 0.4 times as wide
    fail): neither too narrow nor too wide.  Without amounts only the purchase
    ratio enters (values in purchases or at a value per purchase).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import age_interpolation
from .concentration import _descending, concentration_curve, top_share
from .data import release_arrow_memory
from .models.base import unique_rows
from .value import clv_kernel, discount_factors  # discount_factors re-exported: costs and margin share one discounting

__all__ = [
    "verdict_by_model",
    "CostModel",
    "SEGMENT_ORDER",
    "discount_factors",
    "expected_cost_to_serve",
    "assign_segments",
    "spend_uplift_potential",
    "rfm_score",
    "capture_curve",
    "top_share_captured",
    "capture_difference",
    "realised_net_value",
    "segment_profile",
    "customer_values",
    "value_and_segment",
    "segment_customers",
    "segment_sensitivity",
    "holdout_active_months",
    "return_counts",
    "read_customer_costs",
    "segment_validation",
    "value_basis",
    "holdout_forecast",
    "realised_holdout_value",
    "HoldoutInterval",
    "holdout_interval",
    "ensemble_interval",
    "export_segment_table",
    "segment_results",
    "EXPORT_COLUMNS",
]

SEGMENT_ORDER = ["MVC", "MGC", "Maintain", "BZ"]


@dataclass(frozen=True)
class CostModel:
    """Cost-to-serve parameters (currency units of the log's amounts).

    Attributes
    ----------
    cost_per_order : float
        Cost of serving one purchase occasion (pick, pack, ship, payment).
    cost_per_active_month : float
        Cost of keeping an alive customer's relationship for a month.
    cost_per_return : float
        Cost of handling one returned order.
    """

    cost_per_order: float = 0.0
    cost_per_active_month: float = 0.0
    cost_per_return: float = 0.0

    def __post_init__(self):
        for k, v in asdict(self).items():
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"CostModel.{k} must be a finite number >= 0, got {v!r}")


def expected_cost_to_serve(
    purchases_by_month: np.ndarray,
    p_alive_by_month: np.ndarray,
    costs: CostModel,
    monthly_discount_rate: float,
    return_rate: np.ndarray | float = 0.0,
    extra_cost: np.ndarray | float = 0.0,
    extra_cost_per_active_month: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Discounted expected cost to serve each customer over the horizon.

    Parameters
    ----------
    purchases_by_month : array (n_customers, H)
        Expected purchases of each customer in each future month.
    p_alive_by_month : array (n_customers, H)
        Probability that the customer is alive in each future month.
    costs : CostModel
    monthly_discount_rate : float
    return_rate : array or float
        Returned orders per order (historical, per customer), for
        ``cost_per_return``.
    extra_cost : array or float
        An already discounted per-customer cost from the data, added as is.
    extra_cost_per_active_month : array or float
        A per-customer monthly cost from the data (e.g. priced service
        contacts), charged like ``cost_per_active_month`` on top of it.

    Returns
    -------
    ndarray (n_customers,)
        sum_m disc_m * [orders_m * (c_order + rate * c_return) + P(alive)_m * (c_month + c_i)] + extra.
    """
    purchases_by_month = np.asarray(purchases_by_month, dtype=float)
    p_alive_by_month = np.asarray(p_alive_by_month, dtype=float)
    if purchases_by_month.shape != p_alive_by_month.shape or purchases_by_month.ndim != 2:
        raise ValueError(
            "purchases_by_month and p_alive_by_month must be 2-D arrays of the same shape "
            f"(customers x months), got {purchases_by_month.shape} and {p_alive_by_month.shape}"
        )
    disc = discount_factors(purchases_by_month.shape[1], monthly_discount_rate)
    return _cost_from_sums(purchases_by_month @ disc, p_alive_by_month @ disc, costs, return_rate, extra_cost,
                           extra_cost_per_active_month)


def _cost_from_sums(orders, alive_months, costs: CostModel, return_rate=0.0, extra_cost=0.0,
                    extra_cost_per_active_month=0.0) -> np.ndarray:
    """:func:`expected_cost_to_serve` from the discounted sums over months: ``orders = sum_m disc_m orders_m``
    and ``alive_months = sum_m disc_m P(alive)_m``."""
    rate = np.asarray(return_rate, dtype=float)
    per_order = costs.cost_per_order + rate * costs.cost_per_return
    monthly = costs.cost_per_active_month + np.asarray(extra_cost_per_active_month, dtype=float)
    return orders * per_order + alive_months * monthly + np.asarray(extra_cost, float)


def spend_uplift_potential(
    frequency: pd.Series, spend: pd.Series, quantile: float = 0.75, n_groups: int = 5
) -> pd.Series:
    """Spend per order a customer could reach: the ``quantile`` of comparable customers.

    Customers are grouped by purchase frequency (up to ``n_groups`` quantile
    bins of the *values* of ``frequency``; customers with the same frequency
    always share a group, so when most customers bought once they form one
    group); a customer's potential spend is the ``quantile`` of the expected
    spend in their group, or their own spend if that is higher: what this
    customer would be worth if they bought like the better customers who buy
    as often as they do (the up-sell/cross-sell lever, a bigger basket per
    order).  It needs amounts: without them spend per order is unknown.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    # numpy throughout (the holdout interval calls this once per simulated base): the groups are those
    # of pandas.qcut(f, q, labels=False, duplicates="drop") and the targets Series.quantile per group,
    # both np.percentile with linear interpolation, as pandas computes them
    f = np.asarray(frequency, dtype=float)
    values = np.asarray(spend, dtype=float)
    if len(f) != len(values):
        raise ValueError(f"frequency and spend must have the same length, got {len(f)} and {len(values)}")
    target = np.empty(len(values))
    if len(f) == 0:
        return np.maximum(spend, pd.Series(target, index=spend.index, name=spend.name))
    # pandas leaves missing values out of both quantiles (a missing frequency: no group, no target)
    if pd.Series(f).nunique() <= 1 or n_groups == 1:
        groups = np.zeros(len(f), dtype=np.int64)
    else:
        ok = ~np.isnan(f)
        edges = np.unique(np.percentile(f[ok], np.linspace(0, 1, min(n_groups, len(f)) + 1) * 100.0))
        groups = np.searchsorted(edges, f, side="left")
        groups[f == edges[0]] = 1
        groups -= 1
        groups[~ok] = -1
    target[groups < 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # a group without any spend: NaN, as pandas
        for g in np.unique(groups[groups >= 0]):
            rows = groups == g
            target[rows] = np.nanpercentile(values[rows], quantile * 100.0)
    return np.maximum(spend, pd.Series(target, index=spend.index, name=spend.name))


def assign_segments(
    net_clv: pd.Series,
    potential_net_clv: pd.Series,
    mvc_share: float = 0.2,
    mgc_share: float = 0.2,
) -> pd.Series:
    """Assign exactly one segment to every customer.

    Parameters
    ----------
    net_clv : Series
        Net CLV per customer.
    potential_net_clv : Series
        Net CLV if the customer reached their potential (same index).
    mvc_share : float
        Share of *all* customers that form the MVC segment (top by net CLV,
        excluding below-zero customers).
    mgc_share : float
        Share of all customers that form the MGC segment (largest growth gap
        among customers neither BZ nor MVC).

    Returns
    -------
    Series of categorical labels in :data:`SEGMENT_ORDER`.
    """
    for name, v in [("mvc_share", mvc_share), ("mgc_share", mgc_share)]:
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    if mvc_share + mgc_share > 1:
        raise ValueError("mvc_share + mgc_share must not exceed 1")
    if not net_clv.index.equals(potential_net_clv.index):
        raise ValueError("net_clv and potential_net_clv must have the same index")
    # positional (numpy) assignment: label look-ups on millions of string ids are slow
    net = net_clv.to_numpy(dtype=float)
    seg = _segment_codes(net, potential_net_clv.to_numpy(dtype=float) - net, mvc_share, mgc_share)
    return pd.Series(pd.Categorical.from_codes(seg, categories=SEGMENT_ORDER), index=net_clv.index)


def _segment_codes(net: np.ndarray, gap_all: np.ndarray, mvc_share: float, mgc_share: float) -> np.ndarray:
    """The rules of :func:`assign_segments` on arrays: codes into :data:`SEGMENT_ORDER` (int8)."""
    n = len(net)
    code = {name: i for i, name in enumerate(SEGMENT_ORDER)}
    seg = np.full(n, code["Maintain"], dtype=np.int8)
    bz = net < 0
    seg[bz] = code["BZ"]
    # top net CLV among the rest
    candidates = np.flatnonzero(~bz)
    seg[candidates[_top_k(net[candidates], int(round(mvc_share * n)))]] = code["MVC"]
    # largest positive growth gap among the customers still in Maintain
    rest = np.flatnonzero(seg == code["Maintain"])
    rest = rest[gap_all[rest] > 0]
    seg[rest[_top_k(gap_all[rest], int(round(mgc_share * n)))]] = code["MGC"]
    return seg


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values; ties at the cut go to the earlier positions, NaN last.

    The same set as the first k of a stable descending sort, found with a partition
    (linear time) instead of a sort.
    """
    n = len(values)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.arange(n)
    nan = np.isnan(values)
    ok, v = None, values         # the usual case, no NaN: no copy of the values and no array of positions
    if nan.any():
        ok = np.flatnonzero(~nan)
        if k >= len(ok):
            return np.concatenate([ok, np.flatnonzero(nan)[: k - len(ok)]])
        v = values[ok]
    cut = np.partition(v, len(v) - k)[len(v) - k]          # the k-th largest value
    above = np.flatnonzero(v > cut)
    top = np.concatenate([above, np.flatnonzero(v == cut)[: k - len(above)]])
    return top if ok is None else ok[top]


def rfm_score(recency_days_ago: pd.Series, frequency: pd.Series, monetary: pd.Series | None = None,
              bins: int = 5) -> pd.Series:
    """Classic RFM score: quintile scores 1-5 of recency, frequency and monetary value, summed.

    Recency is "days since last purchase" (fewer is better); ties are broken by
    rank so each quintile has the same size.  Without ``monetary`` (a log
    without amounts) the score is the RF score, recency plus frequency.
    """
    def score(s: pd.Series, ascending: bool) -> pd.Series:
        r = s.rank(method="first", ascending=ascending)
        return pd.qcut(r, bins, labels=False) + 1

    out = score(-recency_days_ago, True) + score(frequency, True)
    return out if monetary is None else out + score(monetary, True)


def capture_curve(score: pd.Series, value: pd.Series, points: int = 101) -> pd.DataFrame:
    """Share of ``value`` captured by targeting the top share of customers by ``score``.

    Returns a frame with ``share_customers`` (0..1) and ``share_value``;
    customers with equal scores are taken in index order (stable).
    """
    return concentration_curve(value, score=score, points=points)


def top_share_captured(score: pd.Series, value: pd.Series, share: float = 0.2) -> float:
    """Share of total ``value`` held by the top ``share`` of customers ranked by ``score``."""
    return top_share(value, share, score=score)


def capture_difference(score: pd.Series, alternative: pd.Series, value: pd.Series, share: float = 0.2,
                       n_boot: int = 200, seed: int = 0, max_customers: int | None = 25_000) -> dict:
    """Top-``share`` capture of ``value`` by ``score`` minus that by ``alternative``, with its bootstrap SE.

    The customers are resampled with replacement (paired: the same draw for
    both rankings, each ranking's order fixed); in each replicate the top
    ``share`` of the resampled customers by each ranking captures its share of
    the resampled total.  The SE is the replicates' standard deviation: how
    much the difference between two rankings moves with the customers who
    happen to be in the data, the margin a ranking must beat another by before
    a report says it captures more (:func:`helpers.claims.ranking_beats`).

    A replicate's counts (how often each customer is drawn) are multinomial
    ``(n; 1/n, ..., 1/n)``, drawn as ``n`` uniform picks of a customer counted
    per customer (the same distribution as ``Generator.multinomial``, which
    draws ``n`` binomials per replicate and took minutes at a million
    customers); replicates are drawn one at a time, so memory stays a few
    vectors per customer.  The picks are drawn as positions in ``score``'s
    ranking (a uniformly drawn customer has a uniformly distributed position)
    and mapped to ``alternative``'s, so both rankings see the same customers.  ``seed`` seeds ``numpy.random.default_rng``; the
    picks differ from the multinomial draws of earlier versions, the
    distribution of the SE does not.

    Subsample and rescale (``max_customers``): above ``m = max_customers``
    customers the bootstrap runs on a simple random sample of ``m`` of the
    ``n`` customers (without replacement; both rankings' orders restricted to
    it) and its SE is multiplied by ``sqrt(m / n)``.  The difference of two
    top-share captures is a smooth function of sums over customers (the two
    captured sums, the total and the cut of each ranking at its ``share``
    quantile), so its sampling variance is proportional to ``1 / n`` (the
    delta method): the SE of a sample of ``m`` is ``sqrt(n / m)`` times the
    SE at ``n``.  The 200 replicates then cost what they cost at ``m`` at any
    base size (25 s per call at a million customers before, about 1 s after);
    at ``n <= m`` (the default keeps CDNOW's 23,570 whole) nothing is
    subsampled and the draws are those of the whole-base bootstrap.  The
    default is not smaller because on CDNOW a sample of 10,000 gave SEs about
    7% lower on average and twice as variable between seeds (heavy-tailed
    holdout values: whether the few largest customers are in the sample
    matters); the estimate is always computed on all customers.

    Returns
    -------
    dict with ``estimate`` (the difference on the data), ``se``, ``n_boot``.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    if int(n_boot) < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    if max_customers is not None and int(max_customers) < 2:
        raise ValueError(f"max_customers must be at least 2 (or None), got {max_customers}")
    v = value.to_numpy(dtype=float)
    n = len(v)
    pos = pd.Series(np.arange(n), index=value.index)
    orders = [_descending(s) if s.index.equals(value.index)          # aligned: by position, no label look-ups
              else pos.reindex(s.reindex(value.index).sort_values(ascending=False, kind="mergesort").index).to_numpy()
              for s in (score, alternative)]
    k_top = int(round(share * n))                      # top_share_captured, on the orders already found
    total = v.sum()
    est = (float(v[orders[0][:k_top]].sum() / total) - float(v[orders[1][:k_top]].sum() / total) if total != 0
           else float("nan"))
    rng = np.random.default_rng(seed)
    scale = 1.0
    if max_customers is not None and n > int(max_customers):
        m = int(max_customers)
        keep = np.zeros(n, dtype=bool)
        keep[rng.choice(n, size=m, replace=False)] = True
        sub = np.cumsum(keep) - 1                                  # position of a kept customer in the sample
        orders = [sub[o[keep[o]]] for o in orders]                 # each ranking's order, restricted to the sample
        v, n, scale = v[keep], m, float(np.sqrt(m / n))
    d = _bootstrap_capture_differences(v, orders[0], orders[1], share * n, int(n_boot), rng)
    return {"estimate": float(est), "se": scale * float(d.std(ddof=1)) if len(d) > 1 else float("nan"),
            "n_boot": int(n_boot)}


def _bootstrap_capture_differences(v: np.ndarray, order1: np.ndarray, order2: np.ndarray, k: float, n_boot: int,
                                   rng: np.random.Generator) -> np.ndarray:
    """The finite replicates of :func:`capture_difference`: top-``k`` capture by ``order1`` minus by ``order2``."""
    n = len(v)
    # picks are drawn as positions in the first ranking (a uniform customer has a uniform position there) and
    # carried to the second ranking by a position map, so each replicate gathers once, on 32-bit integers
    v1, v2 = v[order1], v[order2]
    rank2 = np.empty(n, dtype=np.int64)
    rank2[order2] = np.arange(n)
    to_second = rank2[order1].astype(np.int32 if n < 2**31 else np.int64)
    d = np.empty(n_boot)
    with np.errstate(all="ignore"):
        for b in range(n_boot):
            p1 = rng.integers(0, n, size=n, dtype=to_second.dtype)
            caps = []
            for vo, w in ((v1, np.bincount(p1, minlength=n).astype(float)),
                          (v2, np.bincount(to_second[p1], minlength=n).astype(float))):
                top = int(np.searchsorted(np.cumsum(w), k, side="right"))   # the top: a prefix of the ranking
                caps.append((np.dot(w[:top], vo[:top]), np.dot(w, vo)))
            d[b] = caps[0][0] / caps[0][1] - caps[1][0] / caps[1][1]
    return d[np.isfinite(d)]


def realised_net_value(
    holdout_spend: pd.Series,
    holdout_orders: pd.Series,
    holdout_active_months: pd.Series,
    margin: float,
    costs: CostModel,
    holdout_returns: pd.Series | float = 0.0,
) -> pd.Series:
    """Realised (undiscounted) net value in the holdout period, with the same cost model.

    margin * spend - c_order * orders - c_month * active months - c_return * returns.
    ``holdout_active_months`` is the observed activity span: months from the
    start of the holdout to the customer's last holdout purchase (0 when the
    customer did not buy); being alive is not observable, so this is the
    observable lower bound of the months a customer was served.
    """
    return (
        margin * holdout_spend
        - costs.cost_per_order * holdout_orders
        - costs.cost_per_active_month * holdout_active_months
        - costs.cost_per_return * holdout_returns
    )


def segment_profile(table: pd.DataFrame, segment_col: str = "segment", value_col: str = "net_clv",
                    means: tuple[str, ...] = ()) -> pd.DataFrame:
    """Size, share of customers, share of (positive) equity and mean profile per segment.

    Share of equity is each segment's net CLV over the total net CLV of all
    customers (so BZ's share is negative: the value they destroy).
    """
    g = table.groupby(segment_col, observed=False)
    out = pd.DataFrame({
        "customers": g.size(),
        "share_customers": g.size() / len(table),
        "net_clv_total": g[value_col].sum(),
    })
    total = table[value_col].sum()
    out["share_equity"] = out["net_clv_total"] / total if total != 0 else np.nan
    for col in means:
        out[f"mean_{col}"] = g[col].mean()
    return out.reindex([s for s in SEGMENT_ORDER if s in out.index])


# ---------------------------------------------------------------------------
# from model expectations to a segment table
# ---------------------------------------------------------------------------

def customer_values(
    purchases_by_month,
    p_alive_by_month,
    expected_spend,
    margin: float,
    monthly_discount_rate: float,
    costs: CostModel,
    potential_spend=None,
    return_rate=0.0,
    extra_cost_per_active_month=0.0,
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """Gross margin, cost to serve, net CLV and potential net CLV per customer.

    ``gross_margin = margin * E[spend per order] * sum_m disc_m * E[orders in month m]``
    (:func:`helpers.value.clv_kernel`, the CLV of :func:`helpers.value.clv` with the same month grid);
    ``cost_to_serve`` from :func:`expected_cost_to_serve`;
    ``net_clv = gross_margin - cost_to_serve``.  ``potential_net_clv`` is the
    net CLV with ``potential_spend`` per order instead (same orders, so the
    same cost to serve); ``growth_gap`` the difference.

    Parameters
    ----------
    purchases_by_month, p_alive_by_month : (n, H) arrays or DataFrames
        From :func:`helpers.value.monthly_expectations`.
    expected_spend : (n,) array or Series
        Expected spend per order (Gamma-Gamma ``E[M | x, m_x]``).
    margin : float
        Gross margin on revenue, in (0, 1].
    monthly_discount_rate : float
    costs : CostModel
    potential_spend : (n,) array or Series, optional
        Spend per order the customer could reach (default: ``expected_spend``).
    return_rate, extra_cost_per_active_month
        Per-customer inputs of :func:`expected_cost_to_serve`.
    index : Index, optional
        Customer index (default: the index of ``purchases_by_month`` if it is a DataFrame).

    Returns
    -------
    DataFrame with ``expected_purchases``, ``alive_months`` (undiscounted sums
    over the horizon), ``expected_spend``, ``gross_margin``, ``cost_to_serve``,
    ``net_clv``, ``potential_spend``, ``potential_net_clv``, ``growth_gap``.
    """
    if not 0 < margin <= 1:
        raise ValueError(f"margin must be in (0, 1], got {margin}")
    if index is None:
        index = purchases_by_month.index if isinstance(purchases_by_month, pd.DataFrame) else None
    P = np.asarray(purchases_by_month, dtype=float)
    A = np.asarray(p_alive_by_month, dtype=float)
    spend = np.asarray(expected_spend, dtype=float)
    pot = spend if potential_spend is None else np.asarray(potential_spend, dtype=float)
    if spend.shape != (P.shape[0],) or pot.shape != spend.shape:
        raise ValueError("expected_spend and potential_spend need one value per customer (row)")
    if P.shape != A.shape or P.ndim != 2:
        raise ValueError(
            "purchases_by_month and p_alive_by_month must be 2-D arrays of the same shape "
            f"(customers x months), got {P.shape} and {A.shape}")
    sums = {"orders": clv_kernel(P, monthly_discount_rate), "alive": clv_kernel(A, monthly_discount_rate),
            "purchases": P.sum(axis=1), "alive_months": A.sum(axis=1)}
    return _values_from_sums(sums, spend, pot, margin, costs, return_rate, extra_cost_per_active_month, index)


def _values_from_sums(sums: dict, spend, pot, margin, costs, return_rate=0.0, extra_cost_per_active_month=0.0,
                      index=None) -> pd.DataFrame:
    """:func:`customer_values` from the per-customer sums over the months (all a customer's value needs):
    ``orders`` and ``alive`` (discounted, :func:`helpers.value.clv_kernel` of the monthly expectations),
    ``purchases`` and ``alive_months`` (undiscounted)."""
    cost = _cost_from_sums(sums["orders"], sums["alive"], costs, return_rate,
                           extra_cost_per_active_month=extra_cost_per_active_month)
    gross = margin * spend * sums["orders"]                      # clv_kernel: margin x spend x discounted orders
    net = gross - cost
    pot_net = margin * pot * sums["orders"] - cost
    # one block per column, no consolidating copy (at 1e7 customers 0.7 GB at once); the inputs are copied, so
    # the table never shares memory with an argument or holds one array twice (``pot`` may be ``spend``)
    return pd.DataFrame({
        "expected_purchases": np.array(sums["purchases"], dtype=float),
        "alive_months": np.array(sums["alive_months"], dtype=float),
        "expected_spend": np.array(spend, dtype=float),
        "gross_margin": gross,
        "cost_to_serve": cost,
        "net_clv": net,
        "potential_spend": np.array(pot, dtype=float),
        "potential_net_clv": pot_net,
        "growth_gap": pot_net - net,
    }, index=index, copy=False)


def value_and_segment(
    purchases_by_month,
    p_alive_by_month,
    expected_spend,
    potential_spend,
    margin: float,
    monthly_discount_rate: float,
    costs: CostModel,
    mvc_share: float = 0.2,
    mgc_share: float = 0.2,
    return_rate=0.0,
    extra_cost_per_active_month=0.0,
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """:func:`customer_values` plus the ``segment`` column of :func:`assign_segments`."""
    vals = customer_values(purchases_by_month, p_alive_by_month, expected_spend, margin, monthly_discount_rate,
                           costs, potential_spend=potential_spend, return_rate=return_rate,
                           extra_cost_per_active_month=extra_cost_per_active_month, index=index)
    vals["segment"] = assign_segments(vals["net_clv"], vals["potential_net_clv"], mvc_share, mgc_share)
    return vals


def value_basis(spend_fit, value_per_purchase: float | None = None) -> str:
    """What a purchase is worth: ``"spend model"``, ``"value per purchase"`` or ``"purchases"`` (module docstring)."""
    if spend_fit is not None:
        return "spend model"
    return "purchases" if value_per_purchase is None else "value per purchase"


def _per_purchase(spend_fit, summary: pd.DataFrame, margin: float, costs: CostModel,
                  value_per_purchase: float | None, extra_cost=0.0) -> tuple[np.ndarray, float]:
    """Expected value of a purchase per customer (before the margin) and the margin that applies.

    Checks that a cost in money is not set against a value in purchases.
    """
    basis = value_basis(spend_fit, value_per_purchase)
    n = len(summary)
    if basis == "spend model":
        if "m_x" not in summary.columns:
            raise ValueError("summary is missing column 'm_x' (mean spend per repeat purchase), which the spend "
                             "model needs; without amounts pass spend_fit=None")
        return np.asarray(spend_fit.expected_spend(summary["x"], summary["m_x"]), dtype=float), margin
    if basis == "value per purchase":
        return np.full(n, float(value_per_purchase)), margin
    if any(v > 0 for v in asdict(costs).values()) or np.any(np.asarray(extra_cost, dtype=float) > 0):
        raise ValueError(
            "values are in purchases (no amounts, no value_per_purchase), so a cost to serve in money cannot be "
            f"charged against them: got {costs}; set valuation.value_per_purchase, or use zero costs")
    return np.ones(n), 1.0


def segment_customers(
    model_fit,
    spend_fit,
    summary: pd.DataFrame,
    horizon_months: int,
    margin: float,
    monthly_discount_rate: float,
    costs: CostModel,
    mvc_share: float = 0.2,
    mgc_share: float = 0.2,
    time_unit: str = "W",
    uplift_quantile: float = 0.75,
    uplift_groups: int = 5,
    return_rate=0.0,
    extra_cost_per_active_month=0.0,
    value_per_purchase: float | None = None,
    dense: bool = True,
) -> tuple:
    """Net CLV, potential and segment of every customer at the end of ``summary``'s period.

    Parameters
    ----------
    model_fit : FittedModel
        Frequency model fitted on ``summary`` (time unit ``time_unit``), any registered model.
    spend_fit : GammaGammaFit or None
        None for a log without amounts: then a purchase is worth
        ``value_per_purchase`` (money) or, without it, one purchase (see the
        module docstring, "Value basis").
    summary : DataFrame
        ``x, t_x, T`` per customer, ``m_x`` with a spend model (``total_spend`` optional).
    horizon_months : int
    margin, monthly_discount_rate, costs
        As in :func:`customer_values` (in purchases the margin is 1 and the costs must be zero).
    mvc_share, mgc_share
        As in :func:`assign_segments`.
    time_unit : str
    uplift_quantile, uplift_groups
        Potential spend per order, see :func:`spend_uplift_potential` (only with a spend model).
    return_rate, extra_cost_per_active_month
        Per-customer cost inputs (Series aligned with ``summary`` or scalars).
    value_per_purchase : float, optional
        Money per purchase when there is no spend model.

    Returns
    -------
    table : DataFrame
        Per customer: the history (``x``, ``t_x``, ``T``, ``recency`` = ``T - t_x``,
        ``m_x`` when present), ``p_alive`` now, the columns of :func:`customer_values` and ``segment``.
    purchases_by_month, p_alive_by_month : DataFrame
        The month-by-month expectations (for sensitivity analyses); with ``dense=False`` instead one
        :class:`MonthlyExpectations` (the same expectations without customers x months frames, which at
        1e6 customers took 3.9 of the 4.3 s and 0.1 GB each) and no third item: ``(table, monthly)``.
    """
    vals, purchases, alive = _segment_values(model_fit, spend_fit, summary, horizon_months, margin,
                                             monthly_discount_rate, costs, mvc_share, mgc_share, time_unit,
                                             uplift_quantile, uplift_groups, return_rate,
                                             extra_cost_per_active_month, value_per_purchase, dense=dense,
                                             check=True)
    factors = purchases.get("factors") if not dense else None
    history = {c: summary[c].to_numpy(dtype=float, copy=True) for c in ("x", "t_x", "T")}
    table = pd.DataFrame({
        **history, "recency": history["T"] - history["t_x"],
        **({"m_x": summary["m_x"].to_numpy(dtype=float, copy=True)} if "m_x" in summary.columns else {}),
        # P(alive) of every customer, already evaluated by the (x, T) factorisation where it applied
        "p_alive": (np.array(factors["p_alive"], dtype=float) if factors is not None
                    else np.asarray(model_fit.p_alive(summary), dtype=float)),
        **{c: vals[c].array for c in vals.columns},
    }, index=summary.index, copy=False)       # one block per column: no copy of the values' columns (as a join)
    if not dense:
        return table, purchases["monthly"]
    return table, purchases, alive


def verdict_by_model(fits, chosen: str, chosen_table: pd.DataFrame, spend_fit, summary: pd.DataFrame,
                     **rules) -> pd.DataFrame:
    """Each fitted model's segmentation of the same customers under the same rules, beside the chosen one's.

    Parameters
    ----------
    fits : mapping
        Model name -> frequency fit on ``summary`` (the run's full-period fits).
    chosen : str
        The report's model; its segmentation is ``chosen_table`` (:func:`segment_customers`'s table).
    spend_fit, summary, **rules
        As in :func:`segment_customers` (the rules that formed ``chosen_table``).

    Returns
    -------
    DataFrame
        One row per model (``fits``' order): ``BZ`` (customers below zero), ``share BZ``,
        ``P(alive) of one-time buyers`` (mean; NaN without any), ``net equity`` (sum of net CLV)
        and ``MVC overlap`` (share of the chosen model's MVCs that are MVCs under this one).
        The other models' values come without the month-by-month frames of
        :func:`segment_customers` (customers x months, two per model), which are not needed here.
    """
    if not chosen_table.index.equals(summary.index):
        raise ValueError("chosen_table must have summary's index (segment_customers of summary)")
    mvc = chosen_table["segment"].eq("MVC").to_numpy()
    one_time = summary["x"].to_numpy() == 0
    rows = {}
    for name, fit in fits.items():
        if name == chosen:
            segment, net = chosen_table["segment"], chosen_table["net_clv"]
            p_one = chosen_table["p_alive"].to_numpy()[one_time]
        else:
            vals, sums, _ = _segment_values(fit, spend_fit, summary, **rules, dense=False, check=True)
            segment, net = vals["segment"], vals["net_clv"]
            factors = sums["factors"]          # P(alive) of every customer, where the (x, T) factorisation applied
            p_one = (factors["p_alive"][one_time] if factors is not None
                     else np.asarray(fit.p_alive(summary[one_time]), dtype=float) if one_time.any() else np.zeros(0))
            del vals, sums, factors    # freed before the next model's values are computed
        bz = segment.eq("BZ").to_numpy()
        rows[name] = {"BZ": int(bz.sum()), "share BZ": float(bz.mean()),
                      "P(alive) of one-time buyers": float(p_one.mean()) if len(p_one) else np.nan,
                      "net equity": float(net.sum()),
                      "MVC overlap": float((segment.eq("MVC").to_numpy() & mvc).sum() / max(int(mvc.sum()), 1))}
    return pd.DataFrame(rows).T


@dataclass(frozen=True)
class MonthlyExpectations:
    """The customers' expected purchases and P(alive) in each future month, without customers x months frames.

    Customer ``i``'s row of either is ``scale[i] * rows[inv[i]]``: in the ``(x, T)`` factorisation of
    :func:`_monthly_sums` ``scale`` is P(alive) now and ``rows`` the months given alive of the
    distinct ``(x, T)``; where it does not apply ``rows`` has one row per customer (``inv`` and
    ``scale`` None).  What a customer's value needs of the months are their discounted sums, which
    :meth:`discounted` gives for any discount rate (:func:`segment_sensitivity` tries several).
    """

    purchases: np.ndarray
    alive: np.ndarray
    inv: np.ndarray | None = None
    scale: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.purchases) if self.inv is None else len(self.inv)

    @property
    def months(self) -> int:
        return self.purchases.shape[1]

    def discounted(self, monthly_discount_rate: float) -> tuple[np.ndarray, np.ndarray]:
        """Per customer ``(sum_m purchases_m / (1 + d)^m, sum_m P(alive)_m / (1 + d)^m)``: the discounted
        orders and alive months of :func:`helpers.value.clv_kernel`, taken once per row."""
        orders, alive = (clv_kernel(F, monthly_discount_rate) for F in (self.purchases, self.alive))
        if self.inv is None:
            return orders, alive
        return self.scale * orders[self.inv], self.scale * alive[self.inv]

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """The customers x months arrays themselves (``purchases_by_month``, ``p_alive_by_month``)."""
        if self.inv is None:
            return self.purchases, self.alive
        return (self.scale[:, None] * self.purchases[self.inv], self.scale[:, None] * self.alive[self.inv])


def _segment_values(model_fit, spend_fit, summary, horizon_months, margin, monthly_discount_rate, costs,
                    mvc_share=0.2, mgc_share=0.2, time_unit="W", uplift_quantile=0.75, uplift_groups=5,
                    return_rate=0.0, extra_cost_per_active_month=0.0, value_per_purchase=None, dense=True,
                    check=None):
    """The values and segments of :func:`segment_customers` without its history columns:
    ``(value_and_segment table, purchases_by_month, p_alive_by_month)`` (the holdout interval needs no more;
    without ``dense`` no month-by-month frames: ``(table, sums, None)``, ``sums`` those of :func:`_monthly_sums`,
    with ``sums["factors"]`` the ``(x, T)`` factorisation (``rows``, ``inv``, ``p_alive``, ``p_alive_rows``) or None
    and ``sums["monthly"]`` the :class:`MonthlyExpectations`).
    ``check``: :func:`_monthly_sums`'s (default ``dense``)."""
    rr = return_rate.reindex(summary.index).fillna(0.0) if isinstance(return_rate, pd.Series) else return_rate
    ec = (extra_cost_per_active_month.reindex(summary.index).fillna(0.0)
          if isinstance(extra_cost_per_active_month, pd.Series) else extra_cost_per_active_month)
    per_purchase, margin = _per_purchase(spend_fit, summary, margin, costs, value_per_purchase, ec)
    sums, purchases, alive = _monthly_sums(model_fit, summary, horizon_months, time_unit, monthly_discount_rate,
                                           dense=dense, check=dense if check is None else check)
    spend = pd.Series(per_purchase, index=summary.index)
    potential = (spend_uplift_potential(summary["x"], spend, quantile=uplift_quantile, n_groups=uplift_groups)
                 if spend_fit is not None else spend)
    if not 0 < margin <= 1:
        raise ValueError(f"margin must be in (0, 1], got {margin}")
    vals = _values_from_sums(sums, spend.to_numpy(float), potential.to_numpy(float), margin, costs,
                             np.asarray(rr, dtype=float), np.asarray(ec, dtype=float), summary.index)
    vals["segment"] = assign_segments(vals["net_clv"], vals["potential_net_clv"], mvc_share, mgc_share)
    if not dense:                # the sums and their (x, T) factorisation: the interval, segment_customers(dense=False)
        return vals, sums, None
    return vals, purchases, alive


#: Relative tolerance of the checks of the factorised and interpolated monthly expectations (:func:`_monthly_sums`)
#: against their direct evaluation: far below a cent of net CLV, above the rounding of the hypergeometric survival.
_FACTORED_RTOL = 1e-9


def _monthly_sums(model_fit, summary: pd.DataFrame, horizon_months: int, time_unit, monthly_discount_rate: float,
                  dense: bool = True, check: bool = True):
    """The per-customer sums over the months of :func:`helpers.value.monthly_expectations` (the inputs of
    :func:`_values_from_sums`) and, with ``dense``, the month-by-month frames themselves.

    Factorised: for a model whose survival does not depend on ``t_x`` the future of a customer
    given alive at ``T`` depends on ``(x, T)`` only, so both monthly expectations are
    ``P(alive | x, t_x, T)`` times a row of ``(x, T)``:
    ``E[X(T+t_{m-1}, T+t_m] | x, t_x, T] = P(alive | x, t_x, T) E[... | alive, x, T]`` and
    ``P(alive at T+s | x, t_x, T) = P(alive | x, t_x, T) S(s | alive, x, T)`` (the identity of
    :class:`helpers.value._AliveFactored`).  ``monthly_expectations`` then runs on the distinct
    ``(x, T)`` (each as the row with ``t_x = T``, divided by its P(alive)) instead of the distinct
    ``(x, t_x, T)``: 60,000 rows instead of 800,000 at a million customers, and no customers x
    months arrays unless ``dense``.  Where an ``x`` has many distinct ages (a multi-cohort base with
    daily ages) the rows given alive are interpolated in ``T``
    (:func:`helpers.age_interpolation.interpolated_in_age`, which checks them against the direct
    evaluation).  The row of ``(x, T)`` has the largest P(alive) of its
    customers (P(alive) rises with ``t_x``), so the ratios ``P(alive | x, t_x, T) / P(alive | x, T, T)``
    are at most 1 and the division loses no precision.  With ``check`` the identity is also checked
    on up to 256 of the rows against the direct evaluation (without it, the holdout interval's
    replicates, only that every sum is finite); where it does not hold (or the survival depends on
    ``t_x``) the direct evaluation is used.
    """
    from .value import monthly_expectations  # noqa: PLC0415  (value does not import segments)

    def direct():
        P, A = monthly_expectations(model_fit, summary, horizon_months, time_unit=time_unit)
        Pn, An = P.to_numpy(), A.to_numpy()
        monthly = MonthlyExpectations(Pn, An)
        orders, alive = monthly.discounted(monthly_discount_rate)
        sums = {"orders": orders, "alive": alive, "purchases": Pn.sum(axis=1), "alive_months": An.sum(axis=1),
                "factors": None, "monthly": monthly}
        return sums, (P if dense else None), (A if dense else None)

    model, th = model_fit.model, model_fit.theta
    if getattr(model, "survival_depends_on_t_x", True) or len(summary) == 0:
        return direct()

    def given_alive(xr, Tr):
        """The monthly expectations of customers alive at ``Tr`` with ``xr`` purchases (rows with ``t_x = T``)."""
        r = pd.DataFrame({"x": xr, "t_x": np.where(xr > 0, Tr, 0.0), "T": Tr})
        P, A = (f.to_numpy() for f in monthly_expectations(model_fit, r, horizon_months, time_unit=time_unit))
        pr = np.asarray(model.p_alive(th, r["x"].to_numpy(), r["t_x"].to_numpy(), Tr), dtype=float)[:, None]
        return P / pr, A / pr

    x, t_x, T = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    (xk, Tk), inv, _ = unique_rows(x, T)
    rows = pd.DataFrame({"x": xk, "t_x": np.where(xk > 0, Tk, 0.0), "T": Tk})
    with np.errstate(all="ignore"):
        # many ages per x (a multi-cohort base): interpolated in T (helpers.age_interpolation, checked there)
        Pk, Ak = (age_interpolation.interpolated_in_age(given_alive, xk, Tk, rtol=_FACTORED_RTOL)
                  or given_alive(xk, Tk))
        pak = np.asarray(model.p_alive(th, rows["x"].to_numpy(), rows["t_x"].to_numpy(), Tk), dtype=float)
        pa = np.asarray(model.p_alive(th, x, t_x, T), dtype=float)
        monthly = MonthlyExpectations(Pk, Ak, inv, pa)
        orders, alive = monthly.discounted(monthly_discount_rate)
        sums = {"orders": orders, "alive": alive,
                "purchases": pa * Pk.sum(axis=1)[inv], "alive_months": pa * Ak.sum(axis=1)[inv]}
    factors = {"rows": rows, "inv": inv, "p_alive": pa, "p_alive_rows": pak}
    ok = all(np.all(np.isfinite(v)) for v in sums.values())
    sums["factors"] = factors
    sums["monthly"] = monthly
    if ok and check:
        rows_checked = np.unique(np.linspace(0, len(summary) - 1, min(256, len(summary))).astype(np.int64))
        rows_checked = np.union1d(rows_checked, np.argsort(pa, kind="stable")[:16])   # the least alive rows too
        ref = monthly_expectations(model_fit, summary.iloc[rows_checked], horizon_months, time_unit=time_unit)
        ok = all(np.allclose(pa[rows_checked, None] * F[inv[rows_checked]], R.to_numpy(), rtol=_FACTORED_RTOL,
                             atol=1e-12)
                 for F, R in zip((Pk, Ak), ref))
    if not ok:
        return direct()
    if not dense:
        return sums, None, None
    cols = pd.RangeIndex(1, Pk.shape[1] + 1, name="month")              # as monthly_expectations
    return sums, *(pd.DataFrame(F, index=summary.index, columns=cols) for F in monthly.dense())


def segment_sensitivity(
    purchases_by_month,
    p_alive_by_month,
    expected_spend,
    potential_spend,
    base: dict,
    vary: dict[str, list],
) -> pd.DataFrame:
    """Segment sizes when one setting at a time moves away from ``base``.

    Parameters
    ----------
    purchases_by_month, p_alive_by_month, expected_spend, potential_spend
        As in :func:`value_and_segment` (computed once; only the economics
        and the rules are re-evaluated, so a grid costs milliseconds); or
        ``purchases_by_month`` the :class:`MonthlyExpectations` of
        :func:`segment_customers` with ``dense=False`` and ``p_alive_by_month`` None.
    base : dict
        ``margin, monthly_discount_rate, cost_per_order, cost_per_active_month,
        cost_per_return, mvc_share, mgc_share`` and optionally ``return_rate``,
        ``extra_cost_per_active_month``.
    vary : dict
        Setting name -> values to try.

    Returns
    -------
    DataFrame indexed by (``parameter``, ``value``) with the number of
    customers per segment, ``share_BZ`` and ``net_equity`` (sum of net CLV).
    """
    cost_keys = ("cost_per_order", "cost_per_active_month", "cost_per_return")
    for name in vary:
        if name not in base:
            raise ValueError(f"unknown setting {name!r}; base has {sorted(base)}")
    spend = np.asarray(expected_spend, dtype=float)
    pot = np.asarray(potential_spend, dtype=float)
    if isinstance(purchases_by_month, MonthlyExpectations):
        if p_alive_by_month is not None:
            raise ValueError("with a MonthlyExpectations p_alive_by_month must be None (it holds both)")
        monthly = purchases_by_month
        if spend.shape != (len(monthly),) or pot.shape != spend.shape:
            raise ValueError(f"the spends must be one value per customer ({len(monthly)}), got {spend.shape}, "
                             f"{pot.shape}")
    else:
        P = np.asarray(purchases_by_month, dtype=float)
        A = np.asarray(p_alive_by_month, dtype=float)
        if P.shape != A.shape or P.ndim != 2 or spend.shape != (P.shape[0],) or pot.shape != spend.shape:
            raise ValueError("purchases_by_month and p_alive_by_month must be (customers x months) arrays of the "
                             f"same shape and the spends one value per customer, got {P.shape}, {A.shape}, "
                             f"{spend.shape}, {pot.shape}")
        monthly = MonthlyExpectations(P, A)
    # the months enter only through the discounted sums (one pair per discount rate tried): each setting
    # re-evaluates the economics and the rules on per-customer vectors (_values_from_sums, _segment_codes).
    # Only the base rate's pair is kept (every setting but the rate itself uses it): a pair per rate tried
    # would hold two customers-sized arrays each (at 1e7 customers 0.16 GB a rate)
    base_rate = float(base["monthly_discount_rate"])
    sums_by_rate = {}
    rows = []
    for name, values in vary.items():
        for v in values:
            cfg = dict(base, **{name: v})
            costs = CostModel(**{k: cfg[k] for k in cost_keys})
            if not 0 < cfg["margin"] <= 1:
                raise ValueError(f"margin must be in (0, 1], got {cfg['margin']}")
            d = float(cfg["monthly_discount_rate"])
            if d not in sums_by_rate:
                orders, alive = monthly.discounted(d)
                sums_by_rate = {r: v for r, v in sums_by_rate.items() if r == base_rate}
                sums_by_rate[d] = {"orders": orders, "alive": alive}
            sums = sums_by_rate[d]
            cost = _cost_from_sums(sums["orders"], sums["alive"], costs, cfg.get("return_rate", 0.0),
                                   extra_cost_per_active_month=cfg.get("extra_cost_per_active_month", 0.0))
            # net CLV and growth gap as _values_from_sums computes them (the same roundings), in place: fewer
            # customers-sized temporaries at once
            net = cfg["margin"] * spend * sums["orders"]
            net -= cost
            gap = cfg["margin"] * pot * sums["orders"]
            gap -= cost
            gap -= net
            del cost
            for label, share in (("mvc_share", cfg["mvc_share"]), ("mgc_share", cfg["mgc_share"])):
                if not 0 <= share <= 1:
                    raise ValueError(f"{label} must be in [0, 1], got {share}")
            if cfg["mvc_share"] + cfg["mgc_share"] > 1:
                raise ValueError("mvc_share + mgc_share must not exceed 1")
            counts = np.bincount(_segment_codes(net, gap, cfg["mvc_share"], cfg["mgc_share"]),
                                 minlength=len(SEGMENT_ORDER))
            rows.append({"parameter": name, "value": v, **dict(zip(SEGMENT_ORDER, counts.tolist())),
                         "share_BZ": counts[SEGMENT_ORDER.index("BZ")] / len(net), "net_equity": float(net.sum())})
    return pd.DataFrame(rows).set_index(["parameter", "value"])


# ---------------------------------------------------------------------------
# holdout: what customers actually did
# ---------------------------------------------------------------------------

def holdout_active_months(
    last_days: pd.DataFrame,
    calibration_end,
    customers: pd.Index,
    days_per_month: float = 365.25 / 12,
) -> pd.Series:
    """Observed months of activity in the holdout: from its start to the customer's last holdout purchase.

    Zero for customers who did not buy in the holdout.  Being alive is not
    observable; a customer who bought on day ``d`` of the holdout was alive
    at least until then, so this is the observable lower bound of the months
    the customer had to be served.  The upper bound is the whole holdout
    length for everybody (a firm that cannot tell who is alive serves all).

    Parameters
    ----------
    last_days : DataFrame
        ``last_day`` (the last holdout purchase day) per customer who bought in
        the holdout: the stage's ``aggregates_log.holdout_last``
        (:func:`helpers.aggregates_log.holdout_last_days`).
    calibration_end : date
        The holdout starts the day after it.
    customers : Index
        The customers to report (others in ``last_days`` are ignored).
    """
    start = pd.Timestamp(calibration_end).normalize()
    months = (pd.to_datetime(last_days["last_day"]) - start).dt.days / days_per_month
    return months.reindex(customers, fill_value=0.0).rename("active_months").astype(float)


def return_counts(returns: pd.DataFrame, customers: pd.Index, window: str = "full") -> pd.Series:
    """Number of returned orders (return days: several return rows of one customer on one day are one
    returned order) per customer in a window.

    Parameters
    ----------
    returns : DataFrame
        Returned orders per customer with a return, by window (columns
        ``calibration``, ``holdout``, ``full``): the stage's
        ``aggregates_log.returns`` (:func:`helpers.aggregates_log.return_windows`).
    customers : Index
    window : {"calibration", "holdout", "full"}
        Up to the calibration end, after it up to the observation end, or up to the observation end.
    """
    if window not in ("calibration", "holdout", "full"):
        raise ValueError(f"window must be 'calibration', 'holdout' or 'full', got {window!r}")
    return returns[window].reindex(customers, fill_value=0).astype(float).rename("returns")


def read_customer_costs(path: str, customers: pd.Index, column: str = "cost_per_month") -> pd.Series:
    """A per-customer monthly cost from a CSV or Parquet file (``customer_id`` and ``column``).

    Customers missing from the file get 0; negative or non-numeric costs are an error.
    """
    p = str(path)
    df = pd.read_parquet(p) if p.lower().endswith((".parquet", ".pq")) else pd.read_csv(p, dtype={"customer_id": str})
    missing = {"customer_id", column} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; columns present {list(df.columns)}")
    cost = pd.to_numeric(df[column], errors="coerce")
    if cost.isna().any() or (cost < 0).any():
        raise ValueError(f"{path}: column {column!r} must hold numbers >= 0")
    s = pd.Series(cost.to_numpy(float), index=df["customer_id"].astype(str)).groupby(level=0).sum()
    return s.reindex(pd.Index(customers).astype(str), fill_value=0.0).set_axis(customers).rename(column)


def segment_validation(segment: pd.Series, forecast: pd.Series, realised: dict[str, pd.Series]) -> pd.DataFrame:
    """Forecast against realised value per segment.

    Parameters
    ----------
    segment : Series of segment labels.
    forecast : Series
        Model-expected value of each customer over the holdout.
    realised : dict
        Name -> realised value per customer (e.g. two conventions for the
        months served).

    Returns
    -------
    DataFrame per segment: ``customers``, ``forecast`` (total), and for each
    realised series its total, share of the overall total and per-customer mean.
    """
    g = segment.astype(pd.CategoricalDtype(SEGMENT_ORDER))
    out = pd.DataFrame({"customers": g.value_counts().reindex(SEGMENT_ORDER),
                        "forecast": forecast.groupby(g, observed=False).sum()})
    for name, v in realised.items():
        tot = v.groupby(g, observed=False).sum()
        out[name] = tot
        out[f"{name}_share"] = tot / v.sum() if v.sum() != 0 else np.nan
        out[f"{name}_per_customer"] = tot / out["customers"].replace(0, np.nan)
    return out.reindex(SEGMENT_ORDER)


# ---------------------------------------------------------------------------
# holdout: the model's forecast per segment, what customers realised, and the forecast's interval
# ---------------------------------------------------------------------------

def holdout_forecast(
    model_fit,
    spend_fit,
    cal: pd.DataFrame,
    holdout_months: float,
    margin: float,
    costs: CostModel,
    value_per_purchase: float | None = None,
    return_rate=0.0,
    extra_cost_per_active_month=0.0,
) -> pd.DataFrame:
    """The model's forecast of each calibration customer's (undiscounted) holdout value.

    ``forecast = (v - c) * E[X(t_star) | x, t_x, T] - (cost_per_active_month + c_i) * holdout_months``

    with ``v`` the value of a purchase (``margin * E[M | x, m_x]``, ``margin *
    value_per_purchase`` or 1 purchase, see :func:`value_basis`), ``c =
    cost_per_order + return_rate * cost_per_return`` and the months served
    charged for the whole holdout (the firm served every customer in it), the
    same convention as :func:`realised_holdout_value`.

    Parameters
    ----------
    model_fit, spend_fit
        Calibration fits (``spend_fit`` None without amounts).
    cal : DataFrame
        Calibration summary with ``t_star`` (holdout length in the model's time unit, the same for everyone).
    holdout_months : float
        Holdout length in months (for the monthly costs).
    margin, costs, value_per_purchase, return_rate, extra_cost_per_active_month
        As in :func:`segment_customers`.

    Returns
    -------
    DataFrame per customer: ``expected_purchases``, ``value_per_purchase`` (``v``),
    ``order_cost`` (``c``), ``fixed_cost`` and ``forecast``.
    """
    t_star = np.unique(cal["t_star"].to_numpy(float))
    if len(t_star) != 1:
        raise ValueError(f"cal['t_star'] must be one holdout length for everybody, got {len(t_star)} values")
    rr = return_rate.reindex(cal.index).fillna(0.0) if isinstance(return_rate, pd.Series) else return_rate
    ec = (extra_cost_per_active_month.reindex(cal.index).fillna(0.0)
          if isinstance(extra_cost_per_active_month, pd.Series) else extra_cost_per_active_month)
    per_purchase, m = _per_purchase(spend_fit, cal, margin, costs, value_per_purchase, ec)
    E = np.asarray(model_fit.expected_purchases(float(t_star[0]), cal), dtype=float)
    v = m * per_purchase
    c = costs.cost_per_order + np.asarray(rr, dtype=float) * costs.cost_per_return
    fixed = (costs.cost_per_active_month + np.asarray(ec, dtype=float)) * float(holdout_months)
    out = pd.DataFrame({"expected_purchases": E, "value_per_purchase": v}, index=cal.index)
    out["order_cost"] = np.broadcast_to(c, E.shape)
    out["fixed_cost"] = np.broadcast_to(fixed, E.shape)
    out["forecast"] = (out["value_per_purchase"] - out["order_cost"]) * E - out["fixed_cost"]
    return out


def realised_holdout_value(
    cal: pd.DataFrame,
    months_served,
    margin: float,
    costs: CostModel,
    basis: str,
    value_per_purchase: float | None = None,
    holdout_returns=0.0,
    extra_cost_per_active_month=0.0,
) -> pd.Series:
    """What each calibration customer realised in the holdout, in the units of :func:`holdout_forecast`.

    ``basis`` (:func:`value_basis`): ``"spend model"`` ``margin * holdout_spend``,
    ``"value per purchase"`` ``margin * value_per_purchase * x_star``, each minus
    the costs of :func:`realised_net_value` (and ``extra_cost_per_active_month``
    per month served); ``"purchases"``: ``x_star``, the holdout purchases.
    """
    if basis == "purchases":
        return cal["x_star"].astype(float).rename("realised")
    if basis == "spend model":
        if "holdout_spend" not in cal.columns:
            raise ValueError("cal is missing column 'holdout_spend' (the log has no amounts?)")
        spend = cal["holdout_spend"]
    elif basis == "value per purchase":
        spend = float(value_per_purchase) * cal["x_star"]
    else:
        raise ValueError(f"basis must be 'spend model', 'value per purchase' or 'purchases', got {basis!r}")
    v = realised_net_value(spend, cal["x_star"], months_served, margin, costs, holdout_returns)
    v = v - np.asarray(extra_cost_per_active_month, dtype=float) * months_served
    return pd.Series(np.asarray(v, dtype=float), index=cal.index, name="realised")


@dataclass
class HoldoutInterval:
    """Forecast intervals of each segment's holdout value (:func:`holdout_interval`).

    Attributes
    ----------
    table : DataFrame
        Per segment (:data:`SEGMENT_ORDER`): ``customers``, ``forecast``, ``lower``,
        ``upper`` (value), ``forecast_purchases``, ``lower_purchases``,
        ``upper_purchases`` and ``replicates`` (simulations in which the
        segment had customers).  Bounds are NaN for a segment without customers
        or with too few replicates.
    draws : DataFrame
        Simulated holdout value of each segment (one row per replicate): the
        forecast distribution the bounds are quantiles of.
    draws_purchases : DataFrame
        The same for holdout purchases.
    ratios : DataFrame
        Per replicate and segment (columns ``(quantity, segment)``, quantity
        ``purchases`` or ``spend``): realised over forecast in the simulated base.
    level : float
    n_sim, n_failed, seed : int
        Replicates asked for, dropped (a parameter draw without a finite mean spend), seed.
    parameter_uncertainty : bool
        Whether parameters were drawn from their estimates' distribution.
    """

    table: pd.DataFrame
    draws: pd.DataFrame
    draws_purchases: pd.DataFrame
    ratios: pd.DataFrame
    level: float
    n_sim: int
    n_failed: int
    seed: int
    parameter_uncertainty: bool = True
    notes: list = field(default_factory=list)


def _perturbed(fit, rng: np.random.Generator):
    """``fit`` with parameters drawn from the asymptotic normal of the log estimates (``fit.cov``).

    Parameters without a finite variance (structural integer ones such as CNBD-k's
    ``k``) stay at their estimates.  Returns ``(fit, drawn)``.
    """
    return _perturber(fit)(rng)


def _perturber(fit):
    """:func:`_perturbed` of ``fit`` as a function of ``rng``: the covariance's root is found once."""
    names = list(fit.params.index)
    theta = fit.params.to_numpy(dtype=float)
    cov = fit.cov.reindex(index=names, columns=names).to_numpy(dtype=float)
    free = (theta > 0) & np.isfinite(np.diag(cov)) & (np.diag(cov) > 0)
    free &= np.all(np.isfinite(cov[:, free]), axis=1) if free.any() else free
    if not free.any():
        return lambda rng: (fit, False)
    c = cov[np.ix_(free, free)] / np.outer(theta[free], theta[free])     # log scale (delta method)
    w, V = np.linalg.eigh((c + c.T) / 2)
    root = V * np.sqrt(np.clip(w, 0.0, None))
    k = int(free.sum())

    def draw_fit(rng: np.random.Generator):
        draw = theta.copy()
        draw[free] = theta[free] * np.exp(root @ rng.standard_normal(k))
        return dataclasses.replace(fit, params=pd.Series(draw, index=names, name=fit.params.name)), True

    return draw_fit


def _simulated_base(model_fit, spend_fit, cal: pd.DataFrame, t_star: float, time_unit: str,
                    rng: np.random.Generator) -> pd.DataFrame:
    """A look-alike of the calibration base from the fitted models: ``x, t_x, T[, m_x], x_star[, holdout_spend]``.

    Ages ``T`` are the real customers'; recency is rounded to whole days, as the
    summaries count purchases per day.
    """
    from .summary import days_per_unit  # noqa: PLC0415

    model = model_fit.model
    T = cal["T"].to_numpy(dtype=float)
    sim = model.simulate_summary(model_fit.theta, T, rng, t_star)
    x = sim["x"].to_numpy(dtype=float)
    if not getattr(model, "discrete", False):
        ud = days_per_unit(time_unit)
        t_x = np.minimum(np.maximum(np.round(sim["t_x"].to_numpy(float) * ud) / ud, 1.0 / ud), T)
        sim["t_x"] = np.where(x > 0, t_x, 0.0)
    sim.index = cal.index
    sim["t_star"] = t_star
    if spend_fit is not None:
        p, q, gamma = spend_fit.theta
        nu = rng.gamma(q, 1.0 / gamma, size=len(sim))
        xs = sim["x_star"].to_numpy(dtype=float)
        # the sum of n Gamma(p, nu) amounts is Gamma(n p, nu)
        sim["m_x"] = np.where(x > 0, rng.gamma(np.maximum(p * x, 1e-12)) / nu / np.maximum(x, 1.0), 0.0)
        sim["holdout_spend"] = np.where(xs > 0, rng.gamma(np.maximum(p * xs, 1e-12)) / nu, 0.0)
    return sim


def _holdout_expectation(model_fit, sim: pd.DataFrame, t_star: float, factors=None, p_alive=None) -> np.ndarray:
    """``E[X(t_star) | x, t_x, T]`` per simulated customer (``expected_purchases`` of :func:`holdout_forecast`).

    With the ``(x, T)`` factorisation of :func:`_monthly_sums` (``factors``) it is evaluated
    per distinct ``(x, T)`` and scaled by ``P(alive)`` (``p_alive`` when already computed under
    ``model_fit``), the identity of :func:`_monthly_sums`; if that gives anything non-finite,
    or without ``factors``, per customer.
    """
    if factors is not None:
        m, th = model_fit.model, model_fit.theta
        rows, inv = factors["rows"], factors["inv"]
        x, t_x, T = (rows[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
        if p_alive is None:
            p_alive = np.asarray(m.p_alive(th, *(sim[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))), float)
        pak = factors["p_alive_rows"] if p_alive is factors["p_alive"] else np.asarray(m.p_alive(th, x, t_x, T), float)
        E = p_alive * (np.asarray(model_fit.expected_purchases(t_star, rows), dtype=float) / pak)[inv]
        if np.all(np.isfinite(E)):
            return E
    return np.asarray(model_fit.expected_purchases(t_star, sim), dtype=float)


def ensemble_interval(draws, level: float = 0.9) -> tuple[float, float]:
    """Central interval of ``m`` simulated draws that holds a new value from their distribution with probability ``level``.

    A new value falls between the interpolated ``p``- and ``q``-quantiles of
    ``m`` draws (``numpy.quantile``'s default, order statistic ``1 + p (m - 1)``)
    with probability ``(q - p)(m - 1) / (m + 1)``, so the quantiles are
    ``0.5 -+ level (m + 1) / (2 (m - 1))`` (capped at the extremes).
    """
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    m = len(d)
    if m < 2:
        return float("nan"), float("nan")
    half = min(1.0, level * (m + 1) / (m - 1)) / 2
    lo, hi = np.quantile(d, [0.5 - half, 0.5 + half])
    return float(lo), float(hi)


def _segment_sums(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=len(SEGMENT_ORDER))


def holdout_interval(
    model_fit,
    spend_fit,
    cal: pd.DataFrame,
    segment: pd.Series,
    forecast: pd.DataFrame,
    rules: dict,
    holdout_months: float,
    level: float = 0.9,
    n_sim: int = 200,
    seed: int = 0,
    parameter_uncertainty: bool | str = True,
    min_replicates: float = 0.8,
    max_customers: int | None = 5_000,
) -> HoldoutInterval:
    """Forecast interval of each segment's holdout value: a parametric bootstrap of the procedure.

    See the module docstring ("Holdout validation and its forecast interval").
    Each replicate simulates a look-alike base from ``model_fit`` and
    ``spend_fit`` (the fits the segments were formed with), draws parameters
    from their estimates' distribution, segments the base with ``rules`` and
    forecasts its holdout (:func:`holdout_forecast`), and records per segment
    ``rho_X`` = realised / forecast purchases and ``rho_S`` = realised /
    forecast spend (with a spend model; else ``rho_S = rho_X``).  A real
    segment with forecast parts ``A`` (value of purchases), ``C`` (order costs)
    and ``D`` (fixed costs) then has the simulated holdout values
    ``A rho_S - C rho_X - D``; the bounds are their central quantiles, widened
    for the finite number ``m`` of replicates (``level (m + 1) / (m - 1)``) so
    that a value from the same distribution lies inside with probability ``level``.

    Parameters
    ----------
    model_fit, spend_fit
        Calibration fits (``spend_fit`` None without amounts).
    cal : DataFrame
        Calibration summary with ``t_star``.
    segment : Series
        The real customers' segments (index as ``cal``).
    forecast : DataFrame
        :func:`holdout_forecast` of the real customers.
    rules : dict
        Keyword arguments of :func:`segment_customers` that formed ``segment``
        (``horizon_months``, ``margin``, ``monthly_discount_rate``, ``costs``, ...);
        ``return_rate`` and ``extra_cost_per_active_month`` are applied to the
        simulated customers position by position.
    holdout_months : float
    level : float
        Central interval level.
    n_sim : int
        Replicates.
    seed : int
    parameter_uncertainty : bool or {"draw", "refit", "fixed"}
        How each replicate treats the estimation error: ``"draw"`` (True, the
        default) parameters drawn from the estimates' asymptotic normal
        distribution on the log scale; ``"refit"`` the models refitted on the
        simulated calibration base (the exact parametric bootstrap, one fit per
        replicate; on simulated logs it gave the same coverage); ``"fixed"``
        (False) the estimates themselves.
    min_replicates : float
        Share of replicates in which a segment must have customers for its bounds.
    max_customers : int or None
        Largest look-alike base simulated (None: always the whole calibration
        base).  A base of ``n`` customers above it is represented by ``m =
        max_customers`` of them (every ``n/m``-th customer in order of age, so the
        ages keep their distribution; their return rates and monthly costs go
        with them), and each replicate's realised segment sums are rescaled to
        the noise of ``n`` customers: with ``mu_i`` the simulating model's
        expectation of customer ``i``'s holdout purchases given the simulated
        history (``E[X* | x, t_x, T]`` under ``model_fit``; times
        ``E[M | x, m_x]`` under ``spend_fit`` for spend), a segment's realised
        sum ``R = sum x*_i`` is replaced by ``M + sqrt(m / n) (R - M)``, ``M =
        sum mu_i``.  Given the simulated histories (which fix the segments and
        the forecasts) the holdout purchases of different customers are
        independent, so ``R - M`` is a sum of independent zero-mean terms over
        the segment's customers and its variance is proportional to the segment's
        size, a share of the base: scaled by ``sqrt(m / n)`` it has the variance
        it has in a base of ``n``.  ``M / F`` (``F`` the forecast sum under the
        replicate's parameters) carries the parameter uncertainty; over the same
        simulated customers it is a ratio of two sums of smooth functions of the
        same histories, whose sampling error is of the order of the parameter
        error divided by ``sqrt(m)``, negligible beside it.  Left out: the
        sampling fluctuation of the segments' composition and of ``M / F``
        between bases of ``m`` and ``n``, which is of that same second order.
        At ``n <= max_customers`` the method is the one described above,
        unchanged.  The default, 5,000 customers, makes a replicate cost about
        the same at any base size (simulating and valuing a base has a fixed
        cost per customer: 60 ms per replicate for CDNOW's 23,570, seconds at a
        million); CDNOW's bases are subsampled too since this default (it was
        25,000): its intervals moved by their Monte-Carlo noise (a new random
        stream), and the coverage checks of the tests (logs of 1,500 customers
        represented by 400) hold at that ratio.

    Returns
    -------
    HoldoutInterval
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mode = {True: "draw", False: "fixed"}.get(parameter_uncertainty, parameter_uncertainty)
    if mode not in ("draw", "refit", "fixed"):
        raise ValueError(f"parameter_uncertainty must be True, False, 'draw', 'refit' or 'fixed', got {mode!r}")
    if int(n_sim) < 2:
        raise ValueError(f"n_sim must be at least 2, got {n_sim}")
    if not forecast.index.equals(cal.index) or not segment.index.equals(cal.index):
        raise ValueError("segment, forecast and cal must have the same index")
    if max_customers is not None and int(max_customers) < 2:
        raise ValueError(f"max_customers must be at least 2 (or None), got {max_customers}")
    rng = np.random.default_rng(seed)
    t_star = float(cal["t_star"].iloc[0])
    time_unit = rules.get("time_unit", "W")
    positional = {k: (np.asarray(rules[k], dtype=float) if isinstance(rules.get(k), pd.Series) else rules.get(k, 0.0))
                  for k in ("return_rate", "extra_cost_per_active_month")}
    n_real = len(cal)
    sim_cal, noise_scale = cal, 1.0
    if max_customers is not None and n_real > int(max_customers):
        m = int(max_customers)
        by_age = np.argsort(cal["T"].to_numpy(dtype=float), kind="stable")
        keep = np.sort(by_age[((np.arange(m) + 0.5) * n_real / m).astype(np.int64)])
        sim_cal, noise_scale = cal.iloc[keep], float(np.sqrt(m / n_real))
        positional = {k: (v[keep] if np.ndim(v) == 1 and len(v) == n_real else v) for k, v in positional.items()}
    seg_rules = {**rules, **positional}
    code = {s: i for i, s in enumerate(SEGMENT_ORDER)}

    rho_x, rho_s, failed, drawn_any = [], [], 0, False
    if mode == "draw":
        perturb_model = _perturber(model_fit)
        perturb_spend = _perturber(spend_fit) if spend_fit is not None else None
    for _ in range(int(n_sim)):
        fit_b, gg_b = model_fit, spend_fit
        if mode == "draw":
            fit_b, d1 = perturb_model(rng)
            d2 = False
            if spend_fit is not None:
                gg_b, d2 = perturb_spend(rng)
                if not np.isfinite(gg_b.population_mean_spend()):
                    failed += 1
                    continue
            drawn_any |= d1 or d2
        sim = _simulated_base(model_fit, spend_fit, sim_cal, t_star, time_unit, rng)
        if mode == "refit":
            from .models import ModelFitError, fit_gamma_gamma, fit_model  # noqa: PLC0415

            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    fit_b = fit_model(model_fit.name, sim, initial_params=model_fit.params, time_unit=time_unit,
                                      penalizer=model_fit.penalizer, _se=False)
                    if spend_fit is not None:
                        gg_b = fit_gamma_gamma(sim, initial_params=spend_fit.params, warn=False, _se=False,
                                               penalizer=spend_fit.penalizer)
            except (ModelFitError, ValueError):
                failed += 1
                continue
            if spend_fit is not None and not np.isfinite(gg_b.population_mean_spend()):
                failed += 1
                continue
            drawn_any = True
        with np.errstate(all="ignore"):
            tab, sums_b, _ = _segment_values(fit_b, gg_b, sim, **seg_rules, dense=False)
            factors = sums_b["factors"]
            E = _holdout_expectation(fit_b, sim, t_star, factors, factors["p_alive"] if factors else None)
        codes = tab["segment"].cat.codes.to_numpy()
        fx, rx = _segment_sums(codes, E), _segment_sums(codes, sim["x_star"].to_numpy(float))
        if noise_scale != 1.0:      # realised = conditional mean + deviation scaled to n customers (max_customers)
            with np.errstate(all="ignore"):
                mu = _holdout_expectation(model_fit, sim, t_star, factors)
            mx = _segment_sums(codes, mu)
            rx = mx + noise_scale * (rx - mx)
        with np.errstate(all="ignore"):
            rho_x.append(np.where(fx > 0, rx / fx, np.nan))
            if spend_fit is not None:
                spend = gg_b.expected_spend(sim["x"], sim["m_x"])
                fs = _segment_sums(codes, spend * E)
                rs = _segment_sums(codes, sim["holdout_spend"].to_numpy(float))
                if noise_scale != 1.0:
                    ms = _segment_sums(codes, mu * np.asarray(spend_fit.expected_spend(sim["x"], sim["m_x"]), float))
                    rs = ms + noise_scale * (rs - ms)
                rho_s.append(np.where(fs > 0, rs / fs, np.nan))
    if not rho_x:
        raise ValueError("every replicate failed: the spend model's parameter draws have no finite mean spend")
    RX = np.vstack(rho_x)
    RS = np.vstack(rho_s) if rho_s else RX

    seg = segment.astype(pd.CategoricalDtype(SEGMENT_ORDER)).cat.codes.to_numpy()
    E = forecast["expected_purchases"].to_numpy(float)
    A = _segment_sums(seg, forecast["value_per_purchase"].to_numpy(float) * E)
    C = _segment_sums(seg, forecast["order_cost"].to_numpy(float) * E)
    D = _segment_sums(seg, forecast["fixed_cost"].to_numpy(float))
    FX = _segment_sums(seg, E)
    n = np.bincount(seg, minlength=len(SEGMENT_ORDER))
    V = A * RS - C * RX - D                                  # (replicates, segments)
    X = FX * RX
    ok = np.isfinite(V)
    used = ok.sum(axis=0)
    enough = (used >= min_replicates * len(V)) & (n > 0)
    lo, hi, xlo, xhi = (np.full(len(SEGMENT_ORDER), np.nan) for _ in range(4))
    for j in np.flatnonzero(enough):
        lo[j], hi[j] = ensemble_interval(V[ok[:, j], j], level)
        xlo[j], xhi[j] = ensemble_interval(X[ok[:, j], j], level)
    table = pd.DataFrame({
        "customers": n,
        "forecast": A - C - D,
        "lower": np.where(enough, lo, np.nan),
        "upper": np.where(enough, hi, np.nan),
        "forecast_purchases": FX,
        "lower_purchases": np.where(enough, xlo, np.nan),
        "upper_purchases": np.where(enough, xhi, np.nan),
        "replicates": used,
    }, index=pd.Index(SEGMENT_ORDER, name="segment"))
    notes = [f"{s}: the simulated bases had customers in this segment in only {used[code[s]]} of {len(V)} "
             "replicates, too few for an interval" for s in SEGMENT_ORDER if n[code[s]] > 0 and not enough[code[s]]]
    cols = pd.Index(SEGMENT_ORDER, name="segment")
    return HoldoutInterval(table=table, draws=pd.DataFrame(V, columns=cols),
                           draws_purchases=pd.DataFrame(X, columns=cols),
                           ratios=pd.concat({"purchases": pd.DataFrame(RX, columns=cols),
                                             "spend": pd.DataFrame(RS, columns=cols)}, axis=1),
                           level=level, n_sim=int(n_sim),
                           n_failed=failed, seed=seed, parameter_uncertainty=bool(mode != "fixed" and drawn_any),
                           notes=notes)


# ---------------------------------------------------------------------------
# export for the CRM system
# ---------------------------------------------------------------------------

#: Columns of the exported segment table, in this order (those present).
EXPORT_COLUMNS = ("segment", "net_clv", "gross_margin", "cost_to_serve", "potential_net_clv", "growth_gap",
                  "p_alive", "expected_purchases", "alive_months", "expected_spend", "potential_spend",
                  "x", "recency_days", "T", "total_spend")


def export_segment_table(table: pd.DataFrame, folder: str | Path, model: str, horizon_months: int,
                         units: str) -> list[Path]:
    """Write the per-customer segment table for the CRM system: ``customer_segments.parquet`` and ``.csv``.

    Raw customer identifiers (index ``customer_id``), the columns of
    :data:`EXPORT_COLUMNS` that ``table`` has, plus ``model``, ``horizon_months``,
    ``units`` and ``rank_net_clv`` (1 = highest net CLV).  Returns the two paths.

    Both files come from one Arrow table built column by column: its numeric columns are the
    table's own arrays (no copy), the texts are made once.  Through pandas (a frame of the
    columns, Arrow's copy of it for the Parquet file, ``reset_index`` and another copy for the
    CSV) the export had held about four copies of the table at once: +4.5 GB at 1e7 customers,
    the peak of notebook 04 and of the whole collection.  The files are the same: the Parquet
    schema and its pandas metadata are those of the frame (taken from its first row), missing
    values are nulls, and the CSV is Arrow's writer on the same table.
    """
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.csv as pacsv  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    cols = [c for c in EXPORT_COLUMNS if c in table.columns]
    if "segment" not in cols or "net_clv" not in cols:
        raise ValueError(f"the segment table needs columns 'segment' and 'net_clv'; it has {list(table.columns)}")

    def frame(t: pd.DataFrame) -> pd.DataFrame:
        """The export as a pandas frame (for the schema: its first row)."""
        out = t[cols].assign(segment=t["segment"].astype(str), model=model, horizon_months=int(horizon_months),
                             units=units)
        out["rank_net_clv"] = out["net_clv"].rank(ascending=False, method="first").astype(int)
        out.index = pd.Index(t.index, name="customer_id")
        return out

    if len(table) == 0:
        data = pa.Table.from_pandas(frame(table))
    else:
        schema = pa.Table.from_pandas(frame(table.iloc[:1])).schema
        n = len(table)

        def constant(value):
            return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)), pa.array([value]))

        segment = pd.Categorical(table["segment"])
        columns = {
            **{c: table[c].to_numpy() for c in cols if c != "segment"},
            "segment": pa.DictionaryArray.from_arrays(pa.array(segment.codes, mask=segment.codes < 0),
                                                      pa.array([str(c) for c in segment.categories])),
            "model": constant(model), "units": constant(units),
            "horizon_months": np.full(n, int(horizon_months), dtype=np.int64),
            "rank_net_clv": table["net_clv"].rank(ascending=False, method="first").astype(int).to_numpy(),
            "customer_id": table.index.to_numpy(),
        }
        arrays = []
        for field in schema:
            v = columns[field.name]
            arrays.append(v.cast(field.type) if isinstance(v, pa.Array) else
                          pa.array(v, type=field.type, from_pandas=True))   # NaN -> null, as from_pandas
        data = pa.Table.from_arrays(arrays, schema=schema)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "customer_segments.parquet", folder / "customer_segments.csv"]
    pq.write_table(data, paths[0])
    # the CSV by Arrow's writer: the same values as DataFrame.to_csv (text fields quoted), 8x faster
    # (1e6 customers: 1.3 s against 10.6 s, which was a third of notebook 04 at that size); ids first
    pacsv.write_csv(data.select(["customer_id", *[c for c in data.column_names if c != "customer_id"]]), paths[1])
    del data
    release_arrow_memory()          # the writers' buffers (0.4 GB kept at 1e7 customers)
    return paths


def segment_results(profile: pd.DataFrame, validation: pd.DataFrame, at_stake: pd.Series) -> dict:
    """The per-segment numbers a report records (``segments.<name>.*`` of ``results.json``).

    ``profile`` from :func:`segment_profile`, ``validation`` from
    :func:`segment_validation` joined with :attr:`HoldoutInterval.table`,
    ``at_stake`` the value at stake per segment.  Undefined numbers (a segment
    without customers, an interval that could not be formed) are left out
    rather than recorded as null.
    """
    keys = {"customers": ("p", "customers"), "share_customers": ("p", "share_customers"),
            "share_equity": ("p", "share_equity"), "net_clv_total": ("p", "net_clv_total"),
            "holdout_customers": ("v", "customers"), "holdout_forecast": ("v", "forecast"),
            "holdout_lower": ("v", "lower"), "holdout_upper": ("v", "upper"), "holdout_value": ("v", "realised"),
            "holdout_purchases": ("v", "purchases"), "holdout_purchases_forecast": ("v", "forecast_purchases"),
            "holdout_purchases_lower": ("v", "lower_purchases"), "holdout_purchases_upper": ("v", "upper_purchases")}
    out = {}
    for s in SEGMENT_ORDER:
        row = {}
        for key, (table, col) in keys.items():
            t = profile if table == "p" else validation
            if col in t.columns and s in t.index:
                row[key] = t.loc[s, col]
        row["money_at_stake"] = at_stake.get(s, np.nan)
        row = {k: (int(x) if k.endswith("customers") and k != "share_customers" else float(x)) for k, x in row.items()
               if np.isfinite(float(x))}
        out[s] = row
    return out
