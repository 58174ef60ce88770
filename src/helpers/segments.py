"""Customer segments: Most Valuable, Most Growable and Below-Zero customers.

Seed 004's relationship-marketing steps: identify the customers, differentiate
them into Most Valuable Customers (MVC), Most Growable Customers (MGC) and
Below Zeros (BZ, whose cost to serve exceeds their value), then serve the MVCs
customer-centrically.  This module turns that into explicit, parameterised
rules on model-based net customer lifetime value.

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

Segments (every customer gets exactly one, in this priority order)
    ``BZ``  net CLV < 0;
    ``MVC`` the top ``mvc_share`` of all customers by net CLV (among those
            not BZ);
    ``MGC`` among the rest, the top ``mgc_share`` of all customers by growth
            gap = potential net CLV - net CLV;
    ``Maintain`` everybody else: positive, neither top nor growable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .concentration import concentration_curve, top_share

__all__ = [
    "CostModel",
    "SEGMENT_ORDER",
    "discount_factors",
    "expected_cost_to_serve",
    "assign_segments",
    "spend_uplift_potential",
    "rfm_score",
    "capture_curve",
    "top_share_captured",
    "realised_net_value",
    "segment_profile",
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


def discount_factors(horizon_months: int, monthly_discount_rate: float) -> np.ndarray:
    """``1 / (1 + d)^m`` for months m = 1..H (cash flows at the end of each month)."""
    if horizon_months < 1:
        raise ValueError(f"horizon_months must be >= 1, got {horizon_months}")
    if monthly_discount_rate <= -1:
        raise ValueError(f"monthly_discount_rate must be > -1, got {monthly_discount_rate}")
    return 1.0 / (1.0 + monthly_discount_rate) ** np.arange(1, horizon_months + 1)


def expected_cost_to_serve(
    purchases_by_month: np.ndarray,
    p_alive_by_month: np.ndarray,
    costs: CostModel,
    monthly_discount_rate: float,
    return_rate: np.ndarray | float = 0.0,
    extra_cost: np.ndarray | float = 0.0,
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

    Returns
    -------
    ndarray (n_customers,)
        sum_m disc_m * [orders_m * (c_order + rate * c_return) + P(alive)_m * c_month] + extra.
    """
    purchases_by_month = np.asarray(purchases_by_month, dtype=float)
    p_alive_by_month = np.asarray(p_alive_by_month, dtype=float)
    if purchases_by_month.shape != p_alive_by_month.shape or purchases_by_month.ndim != 2:
        raise ValueError(
            "purchases_by_month and p_alive_by_month must be 2-D arrays of the same shape "
            f"(customers x months), got {purchases_by_month.shape} and {p_alive_by_month.shape}"
        )
    disc = discount_factors(purchases_by_month.shape[1], monthly_discount_rate)
    rate = np.asarray(return_rate, dtype=float)
    per_order = costs.cost_per_order + rate * costs.cost_per_return
    orders = purchases_by_month @ disc
    alive_months = p_alive_by_month @ disc
    return orders * per_order + alive_months * costs.cost_per_active_month + np.asarray(extra_cost, float)


def spend_uplift_potential(
    frequency: pd.Series, spend: pd.Series, quantile: float = 0.75, n_groups: int = 5
) -> pd.Series:
    """Spend per order a customer could reach: the ``quantile`` of comparable customers.

    Customers are grouped by purchase frequency (``n_groups`` quantile bins of
    ``frequency``); a customer's potential spend is the ``quantile`` of the
    expected spend in their group, or their own spend if that is higher.  It
    is the up-sell/cross-sell lever of seed 002 made concrete: what this
    customer would be worth if they bought like the better customers who buy
    as often as they do.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    f = pd.Series(np.asarray(frequency, float), index=spend.index)
    ranks = f.rank(method="first")
    groups = pd.qcut(ranks, q=min(n_groups, len(f)), labels=False, duplicates="drop")
    target = spend.groupby(groups).transform(lambda s: s.quantile(quantile))
    return np.maximum(spend, target)


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
    n = len(net_clv)
    seg = pd.Series("Maintain", index=net_clv.index, dtype=object)
    bz = net_clv < 0
    seg[bz] = "BZ"
    n_mvc = int(round(mvc_share * n))
    candidates = net_clv[~bz].sort_values(ascending=False, kind="mergesort")
    mvc = candidates.index[:n_mvc]
    seg[mvc] = "MVC"
    n_mgc = int(round(mgc_share * n))
    rest = seg.index[(seg == "Maintain").to_numpy()]
    gap = (potential_net_clv - net_clv)[rest].sort_values(ascending=False, kind="mergesort")
    gap = gap[gap > 0]
    seg[gap.index[:n_mgc]] = "MGC"
    return seg.astype(pd.CategoricalDtype(SEGMENT_ORDER))


def rfm_score(recency_days_ago: pd.Series, frequency: pd.Series, monetary: pd.Series, bins: int = 5) -> pd.Series:
    """Classic RFM score: quintile scores 1-5 of recency, frequency and monetary value, summed.

    Recency is "days since last purchase" (fewer is better); ties are broken by
    rank so each quintile has the same size.
    """
    def score(s: pd.Series, ascending: bool) -> pd.Series:
        r = s.rank(method="first", ascending=ascending)
        return pd.qcut(r, bins, labels=False) + 1

    return score(-recency_days_ago, True) + score(frequency, True) + score(monetary, True)


def capture_curve(score: pd.Series, value: pd.Series, points: int = 101) -> pd.DataFrame:
    """Share of ``value`` captured by targeting the top share of customers by ``score``.

    Returns a frame with ``share_customers`` (0..1) and ``share_value``;
    customers with equal scores are taken in index order (stable).
    """
    return concentration_curve(value, score=score, points=points)


def top_share_captured(score: pd.Series, value: pd.Series, share: float = 0.2) -> float:
    """Share of total ``value`` held by the top ``share`` of customers ranked by ``score``."""
    return top_share(value, share, score=score)


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
