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
from .value import clv_kernel, discount_factors  # discount_factors re-exported: costs and margin share one discounting

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
    "customer_values",
    "value_and_segment",
    "segment_customers",
    "segment_sensitivity",
    "holdout_active_months",
    "return_counts",
    "read_customer_costs",
    "segment_validation",
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
    rate = np.asarray(return_rate, dtype=float)
    per_order = costs.cost_per_order + rate * costs.cost_per_return
    orders = purchases_by_month @ disc
    alive_months = p_alive_by_month @ disc
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
    spend in their group, or their own spend if that is higher.  It is the
    up-sell/cross-sell lever of seed 002 made concrete: what this customer
    would be worth if they bought like the better customers who buy as often
    as they do.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    f = pd.Series(np.asarray(frequency, float), index=spend.index)
    if f.nunique() <= 1 or n_groups == 1:
        groups = pd.Series(0, index=f.index)
    else:
        groups = pd.qcut(f, q=min(n_groups, len(f)), labels=False, duplicates="drop")
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
    # positional (numpy) assignment: label look-ups on millions of string ids are slow
    net = net_clv.to_numpy(dtype=float)
    gap_all = potential_net_clv.to_numpy(dtype=float) - net
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
    return pd.Series(pd.Categorical.from_codes(seg, categories=SEGMENT_ORDER), index=net_clv.index)


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
    ok = np.flatnonzero(~nan)
    if k >= len(ok):
        return np.concatenate([ok, np.flatnonzero(nan)[: k - len(ok)]])
    v = values[ok]
    cut = np.partition(v, len(v) - k)[len(v) - k]          # the k-th largest value
    above = ok[v > cut]
    return np.concatenate([above, ok[v == cut][: k - len(above)]])


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
    cost = expected_cost_to_serve(P, A, costs, monthly_discount_rate, return_rate=return_rate,
                                  extra_cost_per_active_month=extra_cost_per_active_month)
    gross = clv_kernel(P, monthly_discount_rate, spend, margin)
    net = gross - cost
    pot_net = clv_kernel(P, monthly_discount_rate, pot, margin) - cost
    return pd.DataFrame({
        "expected_purchases": P.sum(axis=1),
        "alive_months": A.sum(axis=1),
        "expected_spend": spend,
        "gross_margin": gross,
        "cost_to_serve": cost,
        "net_clv": net,
        "potential_spend": pot,
        "potential_net_clv": pot_net,
        "growth_gap": pot_net - net,
    }, index=index)


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
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Net CLV, potential and segment of every customer at the end of ``summary``'s period.

    Parameters
    ----------
    model_fit : FittedModel
        Frequency model fitted on ``summary`` (time unit ``time_unit``).
    spend_fit : GammaGammaFit
    summary : DataFrame
        ``x, t_x, T, m_x`` per customer (``total_spend`` optional).
    horizon_months : int
    margin, monthly_discount_rate, costs
        As in :func:`customer_values`.
    mvc_share, mgc_share
        As in :func:`assign_segments`.
    time_unit : str
    uplift_quantile, uplift_groups
        Potential spend per order, see :func:`spend_uplift_potential`.
    return_rate, extra_cost_per_active_month
        Per-customer cost inputs (Series aligned with ``summary`` or scalars).

    Returns
    -------
    table : DataFrame
        Per customer: the history (``x``, ``t_x``, ``T``, ``recency`` = ``T - t_x``,
        ``m_x``), ``p_alive`` now, the columns of :func:`customer_values` and ``segment``.
    purchases_by_month, p_alive_by_month : DataFrame
        The month-by-month expectations (for sensitivity analyses).
    """
    from .value import monthly_expectations  # noqa: PLC0415  (value does not import segments)

    purchases, alive = monthly_expectations(model_fit, summary, horizon_months, time_unit=time_unit)
    spend = pd.Series(spend_fit.expected_spend(summary["x"], summary["m_x"]), index=summary.index)
    potential = spend_uplift_potential(summary["x"], spend, quantile=uplift_quantile, n_groups=uplift_groups)
    rr = return_rate.reindex(summary.index).fillna(0.0) if isinstance(return_rate, pd.Series) else return_rate
    ec = (extra_cost_per_active_month.reindex(summary.index).fillna(0.0)
          if isinstance(extra_cost_per_active_month, pd.Series) else extra_cost_per_active_month)
    vals = value_and_segment(purchases, alive, spend, potential, margin, monthly_discount_rate, costs,
                             mvc_share, mgc_share, return_rate=rr, extra_cost_per_active_month=ec)
    table = pd.DataFrame({
        "x": summary["x"], "t_x": summary["t_x"], "T": summary["T"],
        "recency": summary["T"] - summary["t_x"], "m_x": summary["m_x"],
        "p_alive": model_fit.p_alive(summary),
    }, index=summary.index)
    table = table.join(vals)
    return table, purchases, alive


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
        and the rules are re-evaluated, so a grid costs milliseconds).
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
    rows = []
    for name, values in vary.items():
        if name not in base:
            raise ValueError(f"unknown setting {name!r}; base has {sorted(base)}")
        for v in values:
            cfg = dict(base, **{name: v})
            costs = CostModel(**{k: cfg[k] for k in cost_keys})
            t = value_and_segment(purchases_by_month, p_alive_by_month, expected_spend, potential_spend,
                                  cfg["margin"], cfg["monthly_discount_rate"], costs, cfg["mvc_share"],
                                  cfg["mgc_share"], return_rate=cfg.get("return_rate", 0.0),
                                  extra_cost_per_active_month=cfg.get("extra_cost_per_active_month", 0.0))
            counts = t["segment"].value_counts().reindex(SEGMENT_ORDER, fill_value=0)
            rows.append({"parameter": name, "value": v, **counts.to_dict(),
                         "share_BZ": counts["BZ"] / len(t), "net_equity": t["net_clv"].sum()})
    return pd.DataFrame(rows).set_index(["parameter", "value"])


# ---------------------------------------------------------------------------
# holdout: what customers actually did
# ---------------------------------------------------------------------------

def holdout_active_months(
    transactions: pd.DataFrame,
    calibration_end,
    observation_end,
    customers: pd.Index,
    days_per_month: float = 365.25 / 12,
) -> pd.Series:
    """Observed months of activity in the holdout: from its start to the customer's last holdout purchase.

    Zero for customers who did not buy in the holdout.  Being alive is not
    observable; a customer who bought on day ``d`` of the holdout was alive
    at least until then, so this is the observable lower bound of the months
    the customer had to be served.  The upper bound is the whole holdout
    length for everybody (a firm that cannot tell who is alive serves all).
    """
    start = pd.Timestamp(calibration_end).normalize()
    end = pd.Timestamp(observation_end).normalize()
    d = transactions["date"].dt.normalize()
    h = transactions.loc[(d > start) & (d <= end), ["customer_id"]].assign(day=d)
    last = h.groupby("customer_id")["day"].max()
    months = (last - start).dt.days / days_per_month
    return months.reindex(customers, fill_value=0.0).rename("active_months").astype(float)


def return_counts(returns: pd.DataFrame, customers: pd.Index, start=None, end=None) -> pd.Series:
    """Number of returned orders (rows with negative amounts) per customer, within ``(start, end]``.

    Several return rows of one customer on one day count as one returned order.
    """
    if returns is None or len(returns) == 0:
        return pd.Series(0.0, index=customers, name="returns")
    d = returns["date"].dt.normalize()
    keep = np.ones(len(returns), dtype=bool)
    if start is not None:
        keep &= (d > pd.Timestamp(start).normalize()).to_numpy()
    if end is not None:
        keep &= (d <= pd.Timestamp(end).normalize()).to_numpy()
    r = pd.DataFrame({"customer_id": returns["customer_id"].to_numpy()[keep], "day": d.to_numpy()[keep]})
    n = r.drop_duplicates().groupby("customer_id").size()
    return n.reindex(customers, fill_value=0).astype(float).rename("returns")


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
