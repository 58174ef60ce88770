"""Pareto/NBD with time-varying (dynamic) covariates: Bachmann, Meierer & Näf (2021),
"The role of time-varying contextual factors in latent attrition models for customer
base analysis", *Marketing Science* 40(4), 783-809.

Model
-----
Calendar time is cut into periods of equal length (weeks here) that start at the
dates of the covariate table (``Cov.Date``); within a period customer ``i`` has the
covariate vectors ``z_purchase(t)`` and ``z_attrition(t)`` (piecewise constant).  While
alive the customer buys at the rate ``lambda A(t)`` with ``A(t) = exp(gamma_purchase'
z_purchase(t))`` and dies at the hazard ``mu C(t)`` with ``C(t) = exp(gamma_attrition'
z_attrition(t))``; ``lambda ~ Gamma(r, alpha)``, ``mu ~ Gamma(s, beta)`` as in the
Pareto/NBD (Schmittlein, Morrison & Colombo 1987), so ``alpha``, ``beta`` are the
values at ``z = 0``.  Time starts at the customer's first purchase (``t = 0``); ``x``
repeat purchases at ``t_1 .. t_x = t_x`` in ``(0, T]``.  With the cumulated rates
``Abar(t) = int_0^t A``, ``Cbar(t) = int_0^t C`` the likelihood, integrated over
``lambda`` and ``mu`` (the paper's eqs. 5-8 and its appendix), is

    L = Gamma(r+x)/Gamma(r) alpha^r beta^s prod_j A(t_j) *
        [ (alpha + Abar(T))^-(r+x) (beta + Cbar(T))^-s
          + s int_{t_x}^{T} C(tau) (alpha + Abar(tau))^-(r+x) (beta + Cbar(tau))^-(s+1) dtau ].

The first bracket term is "alive at ``T``", the second "died at ``tau`` in
``(t_x, T]``".  On a stretch ``[l, l + L]`` where ``A``, ``C`` are constant the
integrand becomes, with ``p = alpha + Abar(l)``, ``q = (beta + Cbar(l)) A / C`` and
``y = A (tau - l)``,

    (A / C)^s int_0^{A L} (p + y)^-(r+x) (q + y)^-(s+1) dy
      = (A / C)^s [F(p, q) - F(p + A L, q + A L)],

with ``F(p, q) = int_0^inf (p+y)^-a (q+y)^-b dy = M^-(a+b-1) / (a+b-1) 2F1(a+b-1, e;
a+b; 1 - m/M)``, ``M = max(p, q)``, ``m = min(p, q)`` and ``e`` the exponent (``a =
r+x`` or ``b = s+1``) of the smaller one: Fader & Hardie (2005) note 009 eqs.
(19)-(20) (the no-covariate Pareto/NBD is ``A = C = 1``).  Consecutive periods with
the same covariate values are merged into one stretch first (exactly: the integrand
only depends on ``A`` and ``C``), so a season flag that switches four times a year
costs about ten 2F1 evaluations per customer and likelihood evaluation, whatever the
period length.

Given alive at ``T`` the posterior is ``lambda ~ Gamma(r+x, alpha + Abar(T))``,
``mu ~ Gamma(s, beta + Cbar(T))`` (independent), which gives

* ``P(alive at T) = term1 / (term1 + term2)`` (the share of the first bracket term);
* ``E[X(T, T+t]] = P(alive) (r+x) / (alpha + Abar(T)) int_T^{T+t} A(u) ((beta + Cbar(T))
  / (beta + Cbar(u)))^s du`` (the paper's conditional expected transactions, CET),
  evaluated period by period in closed form on the covariate path of the holdout.

With constant-in-time covariates the model is the static-covariate Pareto/NBD with
``alpha_i = alpha exp(-gamma_purchase' z_i)`` and ``beta_i = beta exp(-gamma_attrition'
z_i)`` (CLVTools' parameterisation); with all gammas 0 it is the Pareto/NBD.

Data
----
:func:`prepare_dynamic_data` takes the transaction log (one row per transaction:
customer, date), the covariate table (one row per customer per period: customer,
period start date, numeric covariate columns), the calibration end (inclusive, as a
date: ``T`` = days from the first purchase to it / days per unit; CLVTools'
``estimation.split``), the time unit and the covariate names of each process.
Same-day transactions count once.  Every customer needs covariate rows for every
period that overlaps ``[first purchase, calibration end]`` (and, for predictions, the
holdout), and for the period of each repeat purchase; the period starts must lie on
one regular grid whose step is the period length.

Cost: preparation builds customers x periods x covariates arrays (``n K p`` floats:
600 x 313 x 3 here; 1e5 customers x 300 weeks x 3 covariates ~ 0.7 GB, so chunk the
customers beyond that); a likelihood evaluation is ``O(n S p)`` array work plus two
2F1 per stretch after ``t_x``, where ``S`` is the largest number of constant-covariate
stretches a customer has in the calibration period.

Public API
----------
``prepare_dynamic_data(transactions, covariates, calibration_end, ...) -> DynamicCovariateData``
``log_likelihood(params, coefficients, data) -> ndarray`` (per customer)
``fit_pareto_nbd_dynamic(transactions, covariates, calibration_end, ...) -> DynamicCovariateFit``
``DynamicCovariateFit.p_alive(data)``, ``.expected_purchases(t, data)``
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import gammaln, logsumexp

from ..summary import days_per_unit, purchase_days
from .base import ModelFitError, _log_hyp2f1_safe
from .fit import _num_hessian

__all__ = [
    "DynamicCovariateData",
    "DynamicCovariateFit",
    "prepare_dynamic_data",
    "log_likelihood",
    "fit_pareto_nbd_dynamic",
    "PROCESSES",
]

#: process names, in the order of the parameter vector (CovariateFit's convention)
PROCESSES = ("purchase", "attrition")
PARAM_NAMES = ("r", "alpha", "s", "beta")
#: CLVTools' vignette start values for the base parameters
START_PARAMS = {"r": 1.0, "alpha": 2.0, "s": 1.0, "beta": 2.0}
#: CLVTools' default start value of a covariate coefficient
START_GAMMA = 0.1
_Z95 = 1.959963984540054
_LABEL = "Pareto/NBD with time-varying covariates"


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

@dataclass
class DynamicCovariateData:
    """Per-customer arrays for the dynamic-covariate Pareto/NBD (see :func:`prepare_dynamic_data`).

    Attributes
    ----------
    customers : Index
        Customer ids, in row order.
    x, t_x, T : ndarray (n,)
        Repeat purchase days, recency and age in the time unit (Fader-Hardie notation).
    names : dict
        ``{"purchase": (...), "attrition": (...)}`` covariate names per process.
    period_dates : DatetimeIndex (K,)
        Start dates of the covariate periods (regular grid).
    period_length : float
        Period length in time units.
    period_start : ndarray (n, K)
        Start of each period in customer time (time units since the first purchase).
    Z : dict of ndarray (n, K, p)
        Covariate values per process, customer and period (NaN where the table has no row).
    z_at_purchases : ndarray (n, p_purchase)
        Sum of the purchase covariates at the customer's repeat purchases (``log prod_j A(t_j) =
        gamma' z_at_purchases``).
    seg_len, seg_pre : ndarray (n, S)
        Length of each constant-covariate stretch within ``[0, T]`` and its part before ``t_x``.
    seg_Z : dict of ndarray (n, S, p)
        Covariate values of each stretch, per process (0 for padding, where ``seg_len`` is 0).
    x_star : ndarray (n,) or None
        Repeat purchase days in ``(calibration end, holdout end]`` when a holdout end was given.
    calibration_end, time_unit, holdout_end :
        As passed.
    """

    customers: pd.Index
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    names: dict
    period_dates: pd.DatetimeIndex
    period_length: float
    period_start: np.ndarray
    Z: dict
    z_at_purchases: np.ndarray
    seg_len: np.ndarray
    seg_pre: np.ndarray
    seg_Z: dict
    calibration_end: pd.Timestamp
    time_unit: str
    x_star: np.ndarray | None = None
    holdout_end: pd.Timestamp | None = None

    @property
    def n_customers(self) -> int:
        return len(self.x)

    def summary(self) -> pd.DataFrame:
        """``x, t_x, T`` (and ``x_star``) indexed by customer."""
        out = pd.DataFrame({"x": self.x, "t_x": self.t_x, "T": self.T}, index=self.customers)
        if self.x_star is not None:
            out["x_star"] = self.x_star
        return out

    def constant_covariates(self, process: str) -> pd.DataFrame:
        """Each customer's covariates of ``process`` if they do not change over ``[0, T]`` (else ValueError)."""
        Z, L = self.seg_Z[process], self.seg_len
        first = Z[:, 0, :]
        varying = np.any((L[:, :, None] > 0) & (Z != first[:, None, :]), axis=(1, 2))
        if varying.any():
            ex = list(self.customers[varying][:5])
            raise ValueError(f"{process} covariates change over the calibration period for "
                             f"{int(varying.sum())} customers (e.g. {ex})")
        return pd.DataFrame(first, index=self.customers, columns=list(self.names[process]))


def _as_list(v) -> tuple:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    return tuple(v)


def prepare_dynamic_data(transactions: pd.DataFrame, covariates: pd.DataFrame, calibration_end,
                         *, purchase_covariates=None, attrition_covariates=None, time_unit: str = "W",
                         customer_col: str = "customer_id", date_col: str = "date",
                         period_col: str = "Cov.Date", holdout_end=None) -> DynamicCovariateData:
    """Build the per-customer arrays of the dynamic-covariate likelihood from a log and a covariate table.

    Parameters
    ----------
    transactions : DataFrame
        One row per transaction with ``customer_col`` and ``date_col`` (parsable dates);
        same-day transactions count once.  Customers whose first purchase is after
        ``calibration_end`` are left out.
    covariates : DataFrame
        One row per customer per period: ``customer_col``, ``period_col`` (the period's
        start date) and the numeric covariate columns.  Rows of customers not in the log
        are ignored.
    calibration_end : date
        Last day of the calibration period (inclusive); ``T`` is measured to it.
    purchase_covariates, attrition_covariates : sequence of str, optional
        Covariate columns acting on the purchase rate / on the attrition rate (either may be
        empty; a column may act on both).
    time_unit : str
        ``"W"`` (weeks, default) or ``"D"`` (see :func:`helpers.summary.days_per_unit`).
    holdout_end : date, optional
        With it, ``x_star`` counts the repeat purchase days in ``(calibration_end, holdout_end]``.

    Returns
    -------
    DynamicCovariateData

    Raises
    ------
    ValueError
        Missing columns, non-numeric or NaN covariates, an irregular period grid, duplicate
        (customer, period) rows, or customers without covariates for a period they need; the
        message names the column or rule, the count and examples.
    """
    names = {"purchase": _as_list(purchase_covariates), "attrition": _as_list(attrition_covariates)}
    used = list(dict.fromkeys(names["purchase"] + names["attrition"]))
    for col in (customer_col, date_col):
        if col not in transactions.columns:
            raise ValueError(f"the transaction log has no column {col!r} (columns: {list(transactions.columns)})")
    for col in (customer_col, period_col, *used):
        if col not in covariates.columns:
            raise ValueError(f"the covariate table has no column {col!r} (columns: {list(covariates.columns)})")
    for col in used:
        if not pd.api.types.is_numeric_dtype(covariates[col]):
            raise ValueError(f"covariate column {col!r} is not numeric (dtype {covariates[col].dtype}); "
                             "make dummies first")
        n_nan = int(covariates[col].isna().sum())
        if n_nan:
            ex = covariates.loc[covariates[col].isna(), customer_col].unique()[:5].tolist()
            raise ValueError(f"covariate column {col!r} has {n_nan} missing values (customers e.g. {ex})")
    unit_days = days_per_unit(time_unit)
    cal_end = pd.Timestamp(calibration_end).normalize()
    h_end = None if holdout_end is None else pd.Timestamp(holdout_end).normalize()

    daily = purchase_days(pd.DataFrame({"customer_id": transactions[customer_col].to_numpy(),
                                        "date": pd.to_datetime(transactions[date_col])}))
    first = daily.groupby("customer_id", sort=True)["day"].min()
    first = first[first <= cal_end]
    ids = first.index
    n = len(ids)
    if n == 0:
        raise ValueError(f"no customer made a first purchase by the calibration end {cal_end.date()}")
    daily = daily[daily["customer_id"].isin(ids)]
    cal = daily[daily["day"] <= cal_end]
    g = cal.groupby("customer_id", sort=True)
    x = (g.size() - 1).reindex(ids).to_numpy(float)
    t_x = ((g["day"].max() - first).dt.days / unit_days).reindex(ids).to_numpy(float)
    T = ((cal_end - first).dt.days / unit_days).to_numpy(float)
    x_star = None
    if h_end is not None:
        ho = daily[(daily["day"] > cal_end) & (daily["day"] <= h_end)]
        x_star = ho.groupby("customer_id").size().reindex(ids, fill_value=0).to_numpy(float)

    # -- the period grid ----------------------------------------------------------------
    cov = covariates[covariates[customer_col].isin(ids)]
    missing_c = ids.difference(pd.Index(cov[customer_col].unique()))
    if len(missing_c):
        raise ValueError(f"{len(missing_c)} customers of the log have no covariate rows "
                         f"(e.g. {list(missing_c[:5])})")
    pdates = pd.to_datetime(cov[period_col]).dt.normalize()
    grid = pd.DatetimeIndex(np.sort(pdates.unique()))
    steps = np.diff(grid.asi8) / 86400e9 if len(grid) > 1 else np.array([unit_days])
    step = float(np.min(steps))
    if np.any(np.abs(steps / step - np.round(steps / step)) > 1e-9):
        raise ValueError(f"the period start dates ({period_col!r}) are not on a regular grid: steps of "
                         f"{sorted(set(steps.tolist()))[:5]} days")
    K = int(round((grid[-1] - grid[0]).days / step)) + 1
    dates = pd.DatetimeIndex(grid[0] + pd.to_timedelta(np.arange(K) * step, unit="D"))
    plen = step / unit_days
    ci = ids.get_indexer(cov[customer_col])
    ck = np.round((pdates - grid[0]).dt.days.to_numpy() / step).astype(np.int64)
    dup = pd.Series(ci * K + ck).duplicated()
    if dup.any():
        ex = cov.loc[dup.to_numpy(), [customer_col, period_col]].head(3).values.tolist()
        raise ValueError(f"the covariate table has {int(dup.sum())} duplicate (customer, {period_col}) rows "
                         f"(e.g. {ex})")
    Z = {}
    for proc in PROCESSES:
        arr = np.full((n, K, len(names[proc])), np.nan)
        if names[proc]:
            arr[ci, ck, :] = cov[list(names[proc])].to_numpy(float)
        Z[proc] = arr
    have = np.zeros((n, K), bool)
    have[ci, ck] = True
    start = ((dates.asi8[None, :] - first.to_numpy().astype("datetime64[ns]").astype(np.int64)[:, None])
             / 86400e9 / unit_days)                                           # (n, K) customer time

    def need(lo, hi, what):
        """periods overlapping [lo, hi] (customer time) must have rows."""
        ov = (start < hi[:, None]) & (start + plen > lo[:, None])
        ov |= (start <= lo[:, None]) & (start + plen > lo[:, None])          # the period containing lo
        bad = ov & ~have
        if bad.any() or np.any(lo < start[:, 0]) or np.any(hi > start[:, -1] + plen):
            rows = np.flatnonzero(bad.any(axis=1) | (lo < start[:, 0]) | (hi > start[:, -1] + plen))
            raise ValueError(f"the covariate periods do not cover the {what} for {len(rows)} customers "
                             f"(e.g. {list(ids[rows[:5]])}): every period overlapping it needs a row "
                             f"in the covariate table (grid {dates[0].date()} to {dates[-1].date()})")

    need(np.zeros(n), T, "calibration period")
    if h_end is not None:
        need(T, T + (h_end - cal_end).days / unit_days, "holdout period")

    # -- purchase covariates at the repeat purchases --------------------------------------------
    rep = cal[~cal["is_first"].to_numpy()]
    ri = ids.get_indexer(rep["customer_id"])
    rk = np.floor((rep["day"] - dates[0]).dt.days.to_numpy() / step).astype(np.int64)
    zsum = np.zeros((n, len(names["purchase"])))
    if len(names["purchase"]) and len(ri):
        zr = Z["purchase"][ri, rk, :]
        if np.isnan(zr).any():
            bad = np.isnan(zr).any(axis=1)
            raise ValueError(f"{int(bad.sum())} repeat purchases fall in periods without covariate rows "
                             f"(customers e.g. {list(ids[np.unique(ri[bad])[:5]])})")
        np.add.at(zsum, ri, zr)

    # -- constant-covariate stretches of [0, T] -----------------------------------------
    expo = np.clip(np.minimum(start + plen, T[:, None]) - np.maximum(start, 0.0), 0.0, None)
    pre = np.clip(np.minimum(start + plen, t_x[:, None]) - np.maximum(start, 0.0), 0.0, None)
    exposed = expo > 0
    Zall = np.concatenate([Z[p] for p in PROCESSES], axis=2)
    same = np.zeros((n, K), bool)
    if Zall.shape[2]:
        same[:, 1:] = exposed[:, :-1] & np.all(Zall[:, 1:] == Zall[:, :-1], axis=2)
    else:
        same[:, 1:] = exposed[:, :-1]
    new = exposed & ~same
    sid = np.cumsum(new, axis=1) - 1
    S = int(sid.max()) + 1
    ii, kk = np.nonzero(exposed)
    flat = ii * S + sid[ii, kk]
    seg_len = np.bincount(flat, weights=expo[ii, kk], minlength=n * S).reshape(n, S)
    seg_pre = np.bincount(flat, weights=pre[ii, kk], minlength=n * S).reshape(n, S)
    seg_Z = {}
    for proc in PROCESSES:
        sz = np.zeros((n * S, len(names[proc])))
        sz[flat] = Z[proc][ii, kk, :]
        seg_Z[proc] = sz.reshape(n, S, len(names[proc]))
    return DynamicCovariateData(customers=ids, x=x, t_x=t_x, T=T, names=names, period_dates=dates,
                                period_length=plen, period_start=start, Z=Z, z_at_purchases=zsum,
                                seg_len=seg_len, seg_pre=seg_pre, seg_Z=seg_Z, calibration_end=cal_end,
                                time_unit=time_unit, x_star=x_star, holdout_end=h_end)


# ---------------------------------------------------------------------------
# likelihood
# ---------------------------------------------------------------------------

def _log_F(a, b, p, q):
    """``log int_0^inf (p+y)^-a (q+y)^-b dy`` for ``a + b > 1``, ``p, q > 0``.

    ``= -(a+b-1) log M - log(a+b-1) + log 2F1(a+b-1, e; a+b; 1 - m/M)`` with ``M = max(p, q)``,
    ``m = min(p, q)`` and ``e`` the exponent of the smaller one: Fader & Hardie (2005) note 009,
    eqs. (19)-(20) (there ``p = alpha + t``, ``q = beta + t``, ``a = r + x``, ``b = s + 1``).
    """
    c = a + b - 1.0
    p_big = p >= q
    M = np.where(p_big, p, q)
    m = np.where(p_big, q, p)
    e = np.where(p_big, b, a)
    return -c * np.log(M) - np.log(c) + _log_hyp2f1_safe(c, e, c + 1.0, (M - m) / M)


def _rates(data: DynamicCovariateData, coefficients) -> tuple[np.ndarray, np.ndarray]:
    """``A = exp(gamma_purchase' z)`` and ``C = exp(gamma_attrition' z)`` per stretch, shapes (n, S)."""
    out = []
    for proc in PROCESSES:
        g = np.asarray([coefficients.get(proc, {}).get(k, 0.0) for k in data.names[proc]], float)
        Z = data.seg_Z[proc]
        out.append(np.exp(Z @ g) if len(g) else np.ones(data.seg_len.shape))
    return out[0], out[1]


def _parts(params, coefficients, data: DynamicCovariateData):
    """The pieces of the likelihood: ``(log_front, log_alive, log_died, Abar_T, Cbar_T)`` per customer.

    ``log_front = log[Gamma(r+x)/Gamma(r) alpha^r beta^s prod_j A(t_j)]``, ``log_alive`` and
    ``log_died`` the logs of the two bracket terms of the module docstring (``-inf`` when the
    customer cannot have died in ``(t_x, T]``, i.e. ``t_x = T``).
    """
    r, alpha, s, beta = (float(params[k]) for k in PARAM_NAMES)
    A, C = _rates(data, coefficients)
    x, L, pre = data.x, data.seg_len, data.seg_pre
    post = L - pre
    Abar_tx = np.einsum("ij,ij->i", A, pre)
    Cbar_tx = np.einsum("ij,ij->i", C, pre)
    Apost, Cpost = A * post, C * post
    Abar_T = Abar_tx + Apost.sum(axis=1)
    Cbar_T = Cbar_tx + Cpost.sum(axis=1)
    # cumulated rates at the start of each stretch's part after t_x
    A_lo = Abar_tx[:, None] + np.cumsum(Apost, axis=1) - Apost
    C_lo = Cbar_tx[:, None] + np.cumsum(Cpost, axis=1) - Cpost
    a = r + x
    b = s + 1.0
    g_p = np.asarray([coefficients.get("purchase", {}).get(k, 0.0) for k in data.names["purchase"]], float)
    log_front = gammaln(a) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    if len(g_p):
        log_front = log_front + data.z_at_purchases @ g_p
    log_alive = -a * np.log(alpha + Abar_T) - s * np.log(beta + Cbar_T)
    i, j = np.nonzero(post > 0)
    log_piece = np.full(L.shape, -np.inf)
    if len(i):
        Aij, Cij, ai = A[i, j], C[i, j], a[i]
        p = alpha + A_lo[i, j]
        q = (beta + C_lo[i, j]) * Aij / Cij
        dy = Apost[i, j]
        f1 = _log_F(ai, b, p, q)
        f2 = _log_F(ai, b, p + dy, q + dy)
        with np.errstate(divide="ignore"):
            log_piece[i, j] = s * np.log(Aij / Cij) + f1 + np.log(-np.expm1(np.minimum(f2 - f1, 0.0)))
    with np.errstate(divide="ignore"):
        log_died = np.log(s) + logsumexp(log_piece, axis=1)
    return log_front, log_alive, log_died, Abar_T, Cbar_T


def log_likelihood(params, coefficients, data: DynamicCovariateData) -> np.ndarray:
    """Per-customer log-likelihood of the Pareto/NBD with time-varying covariates.

    Bachmann, Meierer & Näf (2021), *Marketing Science* 40(4): the individual likelihood with
    piecewise-constant covariates (their eqs. 5-8, the ``lambda``/``mu`` mixtures in their
    appendix), evaluated stretch by stretch with Fader & Hardie (2005) note 009 eqs.
    (19)-(20); see the module docstring for the formula.

    Parameters
    ----------
    params : mapping
        ``r, alpha, s, beta`` (natural scale; ``alpha``, ``beta`` at ``z = 0``).
    coefficients : mapping
        ``{"purchase": {cov: gamma}, "attrition": {cov: gamma}}``; missing entries are 0.
    data : DynamicCovariateData

    Returns
    -------
    ndarray (n,)
        The full log-likelihood of each customer (sums to CLVTools' LL).
    """
    log_front, log_alive, log_died, _, _ = _parts(params, coefficients, data)
    return log_front + np.logaddexp(log_alive, log_died)


# ---------------------------------------------------------------------------
# predictions
# ---------------------------------------------------------------------------

def p_alive(params, coefficients, data: DynamicCovariateData) -> np.ndarray:
    """P(alive at T | x, t_x, T, covariate path): the "alive" share of the likelihood.

    ``term1 / (term1 + term2)`` in the notation of the module docstring (Bachmann, Meierer &
    Näf 2021, section 3; SMC 1987 eq. 11 without covariates).
    """
    _, log_alive, log_died, _, _ = _parts(params, coefficients, data)
    return np.exp(log_alive - np.logaddexp(log_alive, log_died))


def expected_purchases(params, coefficients, data: DynamicCovariateData, t) -> np.ndarray:
    """Conditional expected repeat purchases in ``(T, T + t]`` given the covariate path (CET).

    ``P(alive) (r+x)/(alpha + Abar(T)) int_T^{T+t} A(u) ((beta + Cbar(T)) / (beta + Cbar(u)))^s du``
    (Bachmann, Meierer & Näf 2021, the conditional expectation of section 3), with ``A``, ``C``
    constant per period: on a period part ``[l, l + L]`` with ``B = beta + Cbar(l)``
    the integral is ``A B0^s (B^(1-s) - (B + C L)^(1-s)) / (C (s - 1))`` (``B0 = beta + Cbar(T)``;
    ``A B0 / C log((B + C L) / B)`` for ``s = 1``).  Needs covariate rows for every period of the
    horizon (``holdout_end`` in :func:`prepare_dynamic_data`, or a longer covariate table).

    Parameters
    ----------
    t : float
        Horizon in time units (the same for every customer).

    Returns
    -------
    ndarray (n,)
    """
    r, alpha, s, beta = (float(params[k]) for k in PARAM_NAMES)
    _, log_alive, log_died, Abar_T, Cbar_T = _parts(params, coefficients, data)
    pa = np.exp(log_alive - np.logaddexp(log_alive, log_died))
    t = float(t)
    T, start, plen = data.T, data.period_start, data.period_length
    L = np.clip(np.minimum(start + plen, (T + t)[:, None]) - np.maximum(start, T[:, None]), 0.0, None)
    need = L > 0
    rates = []
    for proc in PROCESSES:
        g = np.asarray([coefficients.get(proc, {}).get(k, 0.0) for k in data.names[proc]], float)
        Z = data.Z[proc]
        if len(g):
            if np.isnan(Z[need]).any():
                bad = np.flatnonzero(np.isnan(Z).any(axis=2) & need)
                raise ValueError(f"the covariate table does not cover the horizon of {t:g} time units after "
                                 f"the calibration end for {len(np.unique(bad // Z.shape[1]))} customers")
            rates.append(np.exp(np.nan_to_num(Z) @ g))
        else:
            rates.append(np.ones(start.shape))
    A, C = rates
    CL = C * L
    B = beta + Cbar_T[:, None] + np.cumsum(CL, axis=1) - CL             # beta + Cbar at each part's start
    B0 = (beta + Cbar_T)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        if math.isclose(s, 1.0):
            integral = A * B0 / C * np.log1p(CL / B)
        else:
            integral = A * B0 ** s * (B ** (1.0 - s) - (B + CL) ** (1.0 - s)) / (C * (s - 1.0))
    integral = np.where(need, integral, 0.0).sum(axis=1)
    return pa * (r + data.x) / (alpha + Abar_T) * integral


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------

@dataclass
class DynamicCovariateFit:
    """A fitted Pareto/NBD with time-varying covariates.

    Same fields and ``to_results()`` as :class:`helpers.models.covariates.CovariateFit`
    (see /work/notes/covariates.md), plus the predictions on a :class:`DynamicCovariateData`.
    ``params`` are ``r, alpha, s, beta`` at ``z = 0``; ``coefficients`` ``{process: {cov: gamma}}``
    with the purchase rate scaled by ``exp(gamma_purchase' z_t)`` and the attrition rate by
    ``exp(gamma_attrition' z_t)``; ``se``/``ci95``/``cov`` are keyed ``r, alpha, s, beta,
    purchase.<cov>, attrition.<cov>`` (natural-scale delta method for the base parameters,
    intervals ``exp(log theta +- 1.96 se_log)``; ``gamma +- 1.96 se`` for the coefficients).
    """

    name: str
    label: str
    params: dict
    coefficients: dict
    se: dict
    ci95: dict
    cov: pd.DataFrame
    log_likelihood: float
    aic: float
    bic: float
    n_customers: int
    converged: bool
    penalizer: float | dict = 0.0
    constraints: tuple = ()
    time_unit: str | None = None
    dynamic: bool = True
    message: str = ""
    fit_seconds: float = float("nan")
    max_abs_gradient: float = float("nan")
    n_evaluations: int = 0
    extra: dict = field(default_factory=dict)

    # -- reporting ------------------------------------------------------------------
    def multipliers(self, level: float = 0.95) -> pd.DataFrame:
        """One row per (process, covariate): gamma, se and the multiplier of the purchase rate
        (``exp(gamma)``) or of the mean lifetime (``exp(-gamma)``: the attrition rate scales by
        ``exp(gamma)``) per unit of the covariate, with the ``level`` interval."""
        z = stats.norm.ppf(0.5 + level / 2.0)
        rows = []
        for proc in PROCESSES:
            for cov, g in self.coefficients.get(proc, {}).items():
                se = self.se.get(f"{proc}.{cov}", float("nan"))
                lo, hi = g - z * se, g + z * se
                if proc == "purchase":
                    m, ml, mh, what = math.exp(g), math.exp(lo), math.exp(hi), "purchase rate"
                else:
                    m, ml, mh, what = math.exp(-g), math.exp(-hi), math.exp(-lo), "mean lifetime"
                rows.append({"process": proc, "covariate": cov, "gamma": g, "se": se, "multiplier_of": what,
                             "multiplier": m, "lower": ml, "upper": mh})
        return pd.DataFrame(rows)

    def to_results(self) -> dict:
        """The results.json block: params, coefficients, se, log_likelihood, aic, bic, n_customers."""
        return {"params": {k: float(v) for k, v in self.params.items()},
                "coefficients": {p: {k: float(v) for k, v in self.coefficients.get(p, {}).items()}
                                 for p in PROCESSES},
                "se": {k: float(v) for k, v in self.se.items()},
                "log_likelihood": float(self.log_likelihood), "aic": float(self.aic), "bic": float(self.bic),
                "n_customers": int(self.n_customers)}

    def lr_test(self, nocov_fit) -> dict:
        """Likelihood-ratio test against the Pareto/NBD without covariates fitted on the same customers.

        ``statistic = 2 (LL - LL_0)``, ``df`` = number of free coefficients, chi-square p-value.
        """
        ll0 = float(nocov_fit.log_likelihood)
        df = len(self.se) - len(PARAM_NAMES)
        stat = 2.0 * (self.log_likelihood - ll0)
        return {"statistic": stat, "df": int(df), "p_value": float(stats.chi2.sf(stat, df))}

    # -- predictions ----------------------------------------------------------------
    def log_likelihood_rows(self, data: DynamicCovariateData) -> np.ndarray:
        return log_likelihood(self.params, self.coefficients, data)

    def p_alive(self, data: DynamicCovariateData) -> np.ndarray:
        """P(alive at T) per customer of ``data`` (see :func:`p_alive`)."""
        return p_alive(self.params, self.coefficients, data)

    def expected_purchases(self, t, data: DynamicCovariateData) -> np.ndarray:
        """E[X(T, T+t] | data, covariate path] per customer (see :func:`expected_purchases`)."""
        return expected_purchases(self.params, self.coefficients, data, t)


class _Layout:
    """The parameter vector ``phi``: log r, log alpha, log s, log beta, then the free gammas.

    A covariate in ``constraints`` (it must act on both processes) has one gamma shared by both.
    """

    def __init__(self, names: dict, constraints=()):
        self.constraints = tuple(constraints)
        for c in self.constraints:
            if c not in names["purchase"] or c not in names["attrition"]:
                raise ValueError(f"constrained covariate {c!r} must act on both processes "
                                 f"(purchase: {list(names['purchase'])}, attrition: {list(names['attrition'])})")
        self.keys = list(PARAM_NAMES)
        self.slot = {}
        for proc in PROCESSES:
            for cov in names[proc]:
                if cov in self.constraints:
                    key = f"constrained.{cov}"
                    if key not in self.keys:
                        self.keys.append(key)
                else:
                    key = f"{proc}.{cov}"
                    self.keys.append(key)
                self.slot[(proc, cov)] = self.keys.index(key)
        self.names = names

    def unpack(self, phi):
        params = dict(zip(PARAM_NAMES, np.exp(phi[:4])))
        coefs = {proc: {cov: float(phi[self.slot[(proc, cov)]]) for cov in self.names[proc]} for proc in PROCESSES}
        return params, coefs

    def pack(self, params, coefs):
        phi = np.empty(len(self.keys))
        phi[:4] = np.log([params[k] for k in PARAM_NAMES])
        for (proc, cov), i in self.slot.items():
            phi[i] = coefs.get(proc, {}).get(cov, START_GAMMA)
        return phi


def _penalty_weights(layout: _Layout, penalizer) -> np.ndarray:
    """Per-parameter L2 weights: 0 for the base parameters, the process's lambda for each gamma."""
    if isinstance(penalizer, dict):
        lam = {p: float(penalizer.get(p, 0.0)) for p in PROCESSES}
    else:
        lam = {p: float(penalizer) for p in PROCESSES}
    w = np.zeros(len(layout.keys))
    for (proc, cov), i in layout.slot.items():
        w[i] += lam[proc]
    return w


def fit_pareto_nbd_dynamic(transactions=None, covariates=None, calibration_end=None, *,
                           purchase_covariates=None, attrition_covariates=None, data: DynamicCovariateData | None = None,
                           constrain_equal=(), penalizer: float | dict = 0.0, initial: dict | None = None,
                           time_unit: str = "W", customer_col: str = "customer_id", date_col: str = "date",
                           period_col: str = "Cov.Date", se: bool = True, gtol: float = 1e-4,
                           maxiter: int = 2000) -> DynamicCovariateFit:
    """Fit the Pareto/NBD with time-varying covariates by maximum likelihood.

    Either pass the raw inputs (``transactions``, ``covariates``, ``calibration_end`` and the
    covariate names; see :func:`prepare_dynamic_data` for their form) or a prepared ``data``.

    The objective is ``-sum_i LL_i + sum_k lambda_k gamma_k^2`` (CLVTools' L2 penalty,
    ``penalizer`` a float for both processes or ``{"purchase": .., "attrition": ..}``) over
    ``(log r, log alpha, log s, log beta, gammas)``, minimised by BFGS with central-difference
    gradients, then Newton steps on a finite-difference Hessian.  Start values: CLVTools'
    vignette ``r = 1, alpha = 2, s = 1, beta = 2`` and ``0.1`` per gamma, or ``initial``
    (``{"r": .., ..., "purchase": {cov: ..}, "attrition": {cov: ..}}``).  Standard errors from
    the inverse Hessian of the (penalised) negative log-likelihood.

    Parameters
    ----------
    constrain_equal : sequence of str
        Covariates whose gamma is the same for both processes (they must act on both).
    se : bool
        Compute the Hessian and standard errors (about ``2 k^2`` likelihood evaluations).
    gtol : float
        Stop when the largest absolute gradient of the total negative log-likelihood is below it.

    Returns
    -------
    DynamicCovariateFit

    Raises
    ------
    ModelFitError
        The optimiser did not reach a finite optimum with a small gradient.
    """
    t0 = time.perf_counter()
    if data is None:
        if transactions is None or covariates is None or calibration_end is None:
            raise ValueError("pass transactions, covariates and calibration_end, or a prepared data=")
        data = prepare_dynamic_data(transactions, covariates, calibration_end,
                                    purchase_covariates=purchase_covariates,
                                    attrition_covariates=attrition_covariates, time_unit=time_unit,
                                    customer_col=customer_col, date_col=date_col, period_col=period_col)
    layout = _Layout(data.names, constrain_equal)
    pen_w = _penalty_weights(layout, penalizer)
    init = dict(START_PARAMS)
    init_coefs = {}
    if initial:
        init.update({k: float(v) for k, v in initial.items() if k in PARAM_NAMES})
        init_coefs = {p: dict(initial.get(p, {})) for p in PROCESSES}
    phi0 = layout.pack(init, init_coefs)
    n = data.n_customers
    n_eval = [0]

    def total(phi):
        """penalised negative log-likelihood (sum over customers)"""
        n_eval[0] += 1
        params, coefs = layout.unpack(phi)
        with np.errstate(all="ignore"):
            v = -float(np.sum(log_likelihood(params, coefs, data))) + float(pen_w @ phi ** 2)
        return v if np.isfinite(v) else np.inf

    def grad(phi, h=1e-6):
        g = np.empty_like(phi)
        for k in range(len(phi)):
            e = np.zeros_like(phi)
            e[k] = h
            g[k] = (total(phi + e) - total(phi - e)) / (2 * h)
        return g

    def fun(phi):
        v = total(phi) / n
        return v if np.isfinite(v) else 1e100

    res = optimize.minimize(fun, phi0, jac=lambda p: grad(p) / n, method="BFGS",
                            options={"maxiter": maxiter, "gtol": gtol / n / 10})
    phi = res.x
    H = None
    for _ in range(4):                       # Newton polish on a finite-difference Hessian
        g = grad(phi)
        if np.max(np.abs(g)) < gtol / 10:
            break
        H = _num_hessian(total, phi, h=1e-4)
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or np.max(np.abs(step)) > 1.0:
            break
        cand = phi - step
        if total(cand) <= total(phi):
            phi, H = cand, None
        else:
            break
    final = total(phi)
    g = grad(phi)
    if not np.isfinite(final):
        raise ModelFitError(f"{_LABEL}: the log-likelihood is not finite at the optimiser's end point")
    converged = bool(np.max(np.abs(g)) < gtol)
    if not converged:
        raise ModelFitError(f"{_LABEL} did not converge ({res.message}; max |gradient| of the negative "
                            f"log-likelihood {np.max(np.abs(g)):.3g})")
    params, coefs = layout.unpack(phi)
    ll = float(np.sum(log_likelihood(params, coefs, data)))
    k = len(phi)
    se_d, ci_d = {}, {}
    keys = _public_keys(layout)
    cov = pd.DataFrame(np.full((len(keys), len(keys)), np.nan), index=keys, columns=keys)
    if se:
        if H is None:
            H = _num_hessian(total, phi, h=1e-4)
        try:
            cov_phi = np.linalg.inv(H)
            ok = np.all(np.isfinite(cov_phi)) and np.all(np.diag(cov_phi) > 0)
        except np.linalg.LinAlgError:
            ok = False
        if not ok:
            warnings.warn(f"{_LABEL}: the Hessian at the optimum is not positive definite; standard errors "
                          "are NaN", RuntimeWarning, stacklevel=2)
            cov_phi = np.full((k, k), np.nan)
        jac = np.ones(k)
        jac[:4] = np.exp(phi[:4])                      # delta method for the log-parameters
        cov_nat = cov_phi * np.outer(jac, jac)
        se_phi = np.sqrt(np.diag(cov_phi))
        # expand to public keys (a constrained gamma appears under both processes)
        idx = _public_index(layout)
        cov = pd.DataFrame(cov_nat[np.ix_(idx, idx)], index=keys, columns=keys)
        for key, i in zip(keys, idx):
            se_d[key] = float(jac[i] * se_phi[i])
            if i < 4:
                ci_d[key] = (float(np.exp(phi[i] - _Z95 * se_phi[i])), float(np.exp(phi[i] + _Z95 * se_phi[i])))
            else:
                ci_d[key] = (float(phi[i] - _Z95 * se_phi[i]), float(phi[i] + _Z95 * se_phi[i]))
    return DynamicCovariateFit(
        name="pareto_nbd", label=_LABEL, params={k_: float(v) for k_, v in params.items()}, coefficients=coefs,
        se=se_d, ci95=ci_d, cov=cov, log_likelihood=ll, aic=-2 * ll + 2 * k, bic=-2 * ll + k * math.log(n),
        n_customers=n, converged=converged, penalizer=penalizer, constraints=tuple(constrain_equal),
        time_unit=data.time_unit, message=str(res.message), fit_seconds=time.perf_counter() - t0,
        max_abs_gradient=float(np.max(np.abs(g))), n_evaluations=n_eval[0])


def _public_keys(layout: _Layout) -> list[str]:
    return list(PARAM_NAMES) + [f"{proc}.{cov}" for proc in PROCESSES for cov in layout.names[proc]]


def _public_index(layout: _Layout) -> list[int]:
    return list(range(4)) + [layout.slot[(proc, cov)] for proc in PROCESSES for cov in layout.names[proc]]
