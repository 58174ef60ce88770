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
``lambda`` and ``mu`` (derived here from the hazards; the paper's individual likelihood and
its closed form; the published equation numbers were not available to check), is

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
costs about ten stretch integrals per customer and likelihood evaluation, whatever the
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

Likelihood evaluation and cost
------------------------------
A stretch integral is computed by Gauss-Legendre quadrature after the substitution ``u = log(1 +
y / min(p, q))`` (:func:`_log_stretch_integral`; to about 1e-15 of the 2F1 closed form
:func:`_log_F`, which is slow and, in CLVTools' GSL version, fails where ``A / C`` is extreme), and
the gradient analytically (:func:`_log_likelihood_grad`: chain rule through the stretches, the
integral's derivatives on the same nodes).  Preparation builds customers x periods x covariates
arrays (``n K p`` floats: 600 x 313 x 3 here; 1e5 customers x 300 weeks x 3 covariates ~ 0.7 GB,
so chunk the customers beyond that); an evaluation is ``O(n S p)`` array work plus 16 nodes per
panel of each stretch after ``t_x`` (``S`` the largest number of constant-covariate stretches of
a customer in the calibration period, 9 on apparel): about 15 ms for the value and 25 ms for value
and gradient on apparel (600 customers), the fit 2-3 s.

On CLVTools' apparel data (High.Season, Gender, Channel on both processes) the likelihood has no
finite maximum: it rises as the attrition coefficient of High.Season goes to -infinity (nobody
drops out in the high season) to a supremum of -5752.6236; the fit stops on the bound
``|gamma| <= GAMMA_BOUND`` and says so (see :func:`fit_pareto_nbd_dynamic`).  CLVTools' BFGS-polished
point (-4.4998, LL -5752.6314 by CLVTools) is on that ridge; its exact likelihood there is
-5752.6256 (CLVTools' 2F1 fallback is 0.0058 off at that point; at CLVTools' four reference points
the two agree to 1e-11).

Public API
----------
``prepare_dynamic_data(transactions, covariates, calibration_end, *, purchase_covariates,
attrition_covariates, time_unit="W", customer_col="customer_id", date_col="date",
period_col="Cov.Date", holdout_end=None) -> DynamicCovariateData``

``fit_pareto_nbd_dynamic(transactions, covariates, calibration_end, *, purchase_covariates,
attrition_covariates, constrain_equal=(), penalizer=0.0, initial=None, fixed=None,
gamma_bound=GAMMA_BOUND, time_unit="W", customer_col=..., date_col=..., period_col=..., se=True)
-> DynamicCovariateFit`` (or ``fit_pareto_nbd_dynamic(data=prepared, ...)``); the result is a
:class:`helpers.models.covariates.CovariateFit` (``dynamic=True``) whose predictions take the
prepared data: ``fit.p_alive(data)``, ``fit.expected_purchases(t, data)``.

``log_likelihood(params, coefficients, data)``, ``p_alive(...)``, ``expected_purchases(params,
coefficients, data, t)`` and ``simulate_dynamic_log(params, coefficients, covariates,
first_purchase, end, rng, ...)`` at given parameters (``params = {"r", "alpha", "s", "beta"}``,
``coefficients = {"purchase": {cov: gamma}, "attrition": {cov: gamma}}``).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import gammaln, logsumexp, psi

from ..summary import days_per_unit, purchase_days
from .base import ModelFitError, _log_hyp2f1_safe
from .covariates import CovariateFit
from .covariates import _layout as _covariate_layout
from .fit import _grad_hessian, _once_per_point
from .pareto_nbd import ParetoNBD

__all__ = [
    "DynamicCovariateData",
    "DynamicCovariateFit",
    "prepare_dynamic_data",
    "log_likelihood",
    "fit_pareto_nbd_dynamic",
    "simulate_dynamic_log",
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
_LOG_BOUND = 30.0     # |log r|, |log alpha|, ... beyond this = ran off to 0 or infinity
#: default box constraint on each gamma (see :func:`fit_pareto_nbd_dynamic`)
GAMMA_BOUND = 10.0
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
    """``log int_0^inf (p+y)^-a (q+y)^-b dy`` for ``a + b > 1``, ``p, q > 0`` (closed form).

    ``= -(a+b-1) log M - log(a+b-1) + log 2F1(a+b-1, e; a+b; 1 - m/M)`` with ``M = max(p, q)``,
    ``m = min(p, q)`` and ``e`` the exponent of the smaller one: Fader & Hardie (2005) note 009,
    eqs. (19)-(20) (there ``p = alpha + t``, ``q = beta + t``, ``a = r + x``, ``b = s + 1``).
    Kept as the closed-form reference of :func:`_log_stretch_integral` (scipy's 2F1 is slow and
    CLVTools' GSL one fails when ``m / M`` is tiny, which happens for large ``|gamma|``).
    """
    c = a + b - 1.0
    p_big = p >= q
    M = np.where(p_big, p, q)
    m = np.where(p_big, q, p)
    e = np.where(p_big, b, a)
    return -c * np.log(M) - np.log(c) + _log_hyp2f1_safe(c, e, c + 1.0, (M - m) / M)


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)
_PANEL_MAX = 4.0      # panel width in u: the integrand's singularities are >= pi away from the real axis
_PANEL_DECAY = 16.0   # and it changes by at most exp(16) (the (a+b-1) u slope) within a panel


def _log_stretch_integral(a, b, p, q, Y, derivatives=False):
    """``log int_0^Y (p+y)^-a (q+y)^-b dy`` (``Y > 0``), by Gauss-Legendre quadrature after ``u = log(1 + y/m)``.

    With ``m = min(p, q)`` (exponent ``e_m``) and ``M = max(p, q)`` (exponent ``e_M``) the
    integrand becomes ``exp((1 - e_m)(log m + u) - e_M log(M + m expm1(u)))`` on ``[0, log(1 + Y/m)]``:
    analytic, with its nearest singularities at imaginary distance ``pi`` (``e^u = 1 - M/m``),
    so 16 nodes on panels of width ``<= 4`` and ``<= 16 / (a+b-1)`` give the integral to about
    machine precision, without the cancellation of a difference of two 2F1 terms and whatever
    ``M / m``.  The value equals ``log(F(p, q) - F(p+Y, q+Y))`` of :func:`_log_F`.

    With ``derivatives`` also returns the logarithmic derivatives ``dlogD/dp, dlogD/dq, dlogD/da,
    dlogD/db, dlogD/dY`` (differentiation under the integral sign, on the same nodes:
    ``-a / (p+y)``, ``-b / (q+y)``, ``-log(p+y)``, ``-log(q+y)`` weighted by the integrand;
    ``dD/dY`` the integrand at ``Y``).
    """
    a, b, p, q, Y = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, b, p, q, Y)))
    p_small = p <= q
    m = np.where(p_small, p, q)
    M = np.where(p_small, q, p)
    e_m = np.where(p_small, a, b)
    e_M = np.where(p_small, b, a)
    U = np.log1p(Y / m)
    J = np.maximum(1, np.ceil(np.maximum(U / _PANEL_MAX, U * (a + b - 1.0) / _PANEL_DECAY))).astype(np.int64)
    owner = np.repeat(np.arange(len(U)), J)                     # stretch of each panel
    k = np.arange(len(owner)) - np.repeat(np.cumsum(J) - J, J)  # panel number within its stretch
    w = (U / J)[owner]
    u = (k[:, None] + 0.5 * (_GL_NODES[None, :] + 1.0)) * w[:, None]        # (panels, nodes)
    lm = np.log(m)[owner][:, None]
    g = ((1.0 - e_m)[owner][:, None] * (lm + u)
         - e_M[owner][:, None] * np.log(M[owner][:, None] + m[owner][:, None] * np.expm1(u)))
    g = g + np.log(0.5 * w)[:, None] + np.log(_GL_WEIGHTS)[None, :]          # dy = m e^u du: in the (1 - e_m) term
    gmax = np.full(len(U), -np.inf)
    np.maximum.at(gmax, owner, g.max(axis=1))
    wgt = np.exp(g - gmax[owner][:, None])
    tot = np.bincount(owner, weights=wgt.sum(axis=1), minlength=len(U))
    logD = gmax + np.log(tot)
    if not derivatives:
        return logD
    lsmall = lm + u                                                      # log(m + y)
    lbig = np.log(M[owner][:, None] + m[owner][:, None] * np.expm1(u))   # log(M + y)
    ps = p_small[owner][:, None]
    lp, lq = np.where(ps, lsmall, lbig), np.where(ps, lbig, lsmall)      # log(p + y), log(q + y)

    def avg(h):
        return np.bincount(owner, weights=(wgt * h).sum(axis=1), minlength=len(U)) / tot

    d_p = -a * avg(np.exp(-lp))
    d_q = -b * avg(np.exp(-lq))
    d_a = -avg(lp)
    d_b = -avg(lq)
    d_Y = np.exp(-a * np.log(p + Y) - b * np.log(q + Y) - logD)
    return logD, (d_p, d_q, d_a, d_b, d_Y)


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
        log_piece[i, j] = s * np.log(Aij / Cij) + _log_stretch_integral(ai, b, p, q, Apost[i, j])
    with np.errstate(divide="ignore"):
        log_died = np.log(s) + logsumexp(log_piece, axis=1)
    return log_front, log_alive, log_died, Abar_T, Cbar_T


def _log_likelihood_grad(params, coefficients, data: DynamicCovariateData):
    """Per-customer log-likelihood and its gradient w.r.t. ``(log r, log alpha, log s, log beta,
    gamma_purchase, gamma_attrition)`` (``(n,)`` and ``(n, 4 + p_purchase + p_attrition)``).

    The derivatives of the terms of :func:`_parts` by the chain rule; the stretch integrals'
    derivatives from :func:`_log_stretch_integral` (same nodes).
    """
    r, alpha, s, beta = (float(params[k]) for k in PARAM_NAMES)
    A, C = _rates(data, coefficients)
    x, L, pre = data.x, data.seg_len, data.seg_pre
    Zp, Za = data.seg_Z["purchase"], data.seg_Z["attrition"]
    kp, ka = Zp.shape[2], Za.shape[2]
    n = len(x)
    post = L - pre
    Apost, Cpost = A * post, C * post
    Abar_tx = np.einsum("ij,ij->i", A, pre)
    Cbar_tx = np.einsum("ij,ij->i", C, pre)
    Abar_T = Abar_tx + Apost.sum(axis=1)
    Cbar_T = Cbar_tx + Cpost.sum(axis=1)
    A_lo = Abar_tx[:, None] + np.cumsum(Apost, axis=1) - Apost
    C_lo = Cbar_tx[:, None] + np.cumsum(Cpost, axis=1) - Cpost
    # derivatives of the cumulated rates w.r.t. the gammas of their process
    dA_tx = np.einsum("ij,ijk->ik", A * pre, Zp)
    dC_tx = np.einsum("ij,ijk->ik", C * pre, Za)
    dApost = (Apost[:, :, None] * Zp)
    dCpost = (Cpost[:, :, None] * Za)
    dA_T = dA_tx + dApost.sum(axis=1)
    dC_T = dC_tx + dCpost.sum(axis=1)
    dA_lo = dA_tx[:, None, :] + np.cumsum(dApost, axis=1) - dApost
    dC_lo = dC_tx[:, None, :] + np.cumsum(dCpost, axis=1) - dCpost
    a = r + x
    b = s + 1.0
    g_p = np.asarray([coefficients.get("purchase", {}).get(k, 0.0) for k in data.names["purchase"]], float)
    log_front = gammaln(a) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    if kp:
        log_front = log_front + data.z_at_purchases @ g_p
    lAT, lCT = np.log(alpha + Abar_T), np.log(beta + Cbar_T)
    L1 = -a * lAT - s * lCT
    G = np.zeros((n, 4 + kp + ka))
    G[:, 0] = r * (psi(a) - psi(r) + np.log(alpha))
    G[:, 1] = r
    G[:, 2] = s * np.log(beta)
    G[:, 3] = s
    G[:, 4:4 + kp] = data.z_at_purchases
    D1 = np.zeros_like(G)
    D1[:, 0] = -r * lAT
    D1[:, 1] = -a * alpha / (alpha + Abar_T)
    D1[:, 2] = -s * lCT
    D1[:, 3] = -s * beta / (beta + Cbar_T)
    D1[:, 4:4 + kp] = -(a / (alpha + Abar_T))[:, None] * dA_T
    D1[:, 4 + kp:] = -(s / (beta + Cbar_T))[:, None] * dC_T
    i, j = np.nonzero(post > 0)
    log_piece = np.full(L.shape, -np.inf)
    dpiece = np.zeros((len(i), 4 + kp + ka))
    if len(i):
        Aij, Cij, ai = A[i, j], C[i, j], a[i]
        rho = Aij / Cij
        Bq = beta + C_lo[i, j]
        p = alpha + A_lo[i, j]
        q = Bq * rho
        Y = Apost[i, j]
        logD, (d_p, d_q, d_a, d_b, d_Y) = _log_stretch_integral(ai, b, p, q, Y, derivatives=True)
        log_piece[i, j] = s * np.log(rho) + logD
        zp, za = Zp[i, j], Za[i, j]
        dpiece[:, 0] = r * d_a
        dpiece[:, 1] = alpha * d_p
        dpiece[:, 2] = s * (np.log(rho) + d_b)
        dpiece[:, 3] = beta * rho * d_q
        # purchase gammas move p (A_lo), q (through rho), Y and the (A/C)^s factor
        dpiece[:, 4:4 + kp] = (s * zp + d_p[:, None] * dA_lo[i, j] + (d_q * q)[:, None] * zp
                               + (d_Y * Y)[:, None] * zp)
        # attrition gammas move q (C_lo and rho) and the (A/C)^s factor
        dpiece[:, 4 + kp:] = -s * za + d_q[:, None] * (rho[:, None] * dC_lo[i, j] - q[:, None] * za)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = logsumexp(log_piece, axis=1)
        L2 = np.log(s) + lse
        wpiece = np.exp(log_piece[i, j] - lse[i])
    D2 = np.zeros_like(G)
    for col in range(G.shape[1]):
        D2[:, col] = np.bincount(i, weights=wpiece * dpiece[:, col], minlength=n)
    D2[:, 2] += 1.0                                                      # the log s of L2
    ll2 = np.logaddexp(L1, L2)
    pi1 = np.exp(L1 - ll2)
    pi2 = np.where(np.isfinite(L2), 1.0 - pi1, 0.0)
    grad = G + pi1[:, None] * D1 + pi2[:, None] * np.nan_to_num(D2)
    return log_front + ll2, grad


def log_likelihood(params, coefficients, data: DynamicCovariateData) -> np.ndarray:
    """Per-customer log-likelihood of the Pareto/NBD with time-varying covariates.

    Bachmann, Meierer & Näf (2021), *Marketing Science* 40(4): the individual likelihood with
    piecewise-constant covariates (the ``lambda``/``mu`` mixture of the module docstring),
    evaluated stretch by stretch: the integral of Fader & Hardie (2005) note 009 eqs. (19)-(20)
    on each constant-covariate stretch, by quadrature (:func:`_log_stretch_integral`).

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
    Näf 2021; SMC 1987 eq. 11 without covariates).
    """
    _, log_alive, log_died, _, _ = _parts(params, coefficients, data)
    return np.exp(log_alive - np.logaddexp(log_alive, log_died))


def expected_purchases(params, coefficients, data: DynamicCovariateData, t) -> np.ndarray:
    """Conditional expected repeat purchases in ``(T, T + t]`` given the covariate path (CET).

    ``P(alive) (r+x)/(alpha + Abar(T)) int_T^{T+t} A(u) ((beta + Cbar(T)) / (beta + Cbar(u)))^s du``
    (the conditional expectation of Bachmann, Meierer & Näf 2021; SMC 1987 eq. 22 without
    covariates), with ``A``, ``C``
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
    short = T + t > start[:, -1] + plen + 1e-9
    if short.any():
        raise ValueError(f"the covariate table does not cover the horizon of {t:g} time units after the "
                         f"calibration end for {int(short.sum())} customers (e.g. "
                         f"{list(data.customers[short][:5])}): its last period starts {data.period_dates[-1].date()}")
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
# the generative process
# ---------------------------------------------------------------------------

def simulate_dynamic_log(params, coefficients, covariates: pd.DataFrame, first_purchase: pd.Series, end, rng,
                         *, purchase_covariates=None, attrition_covariates=None, time_unit: str = "W",
                         customer_col: str = "customer_id", period_col: str = "Cov.Date") -> pd.DataFrame:
    """Simulate a transaction log from the model (the generative process of the module docstring).

    Each customer ``i`` (index of ``first_purchase``, the first purchase dates) draws
    ``lambda ~ Gamma(r, alpha)``, ``mu ~ Gamma(s, beta)`` and ``E ~ Exp(1)``; the death time
    ``tau`` solves ``mu Cbar(tau) = E`` (cumulated hazard), and the repeat purchases are a
    Poisson process of rate ``lambda A(t)`` on ``(0, min(tau, end)]``: ``N ~ Poisson(lambda
    Abar)`` points uniform on the ``Abar`` scale, mapped back through the piecewise-linear
    ``Abar``.  Times are rounded down to days (purchases on the same day as an earlier one are
    kept; :func:`prepare_dynamic_data` counts a day once).

    Returns
    -------
    DataFrame
        ``customer_col``, ``date``: the first purchases and the repeat purchases, sorted.
    """
    r, alpha, s, beta = (float(params[k]) for k in PARAM_NAMES)
    unit_days = days_per_unit(time_unit)
    end = pd.Timestamp(end)
    first = pd.to_datetime(first_purchase)
    names = {"purchase": _as_list(purchase_covariates), "attrition": _as_list(attrition_covariates)}
    cov = covariates.sort_values([customer_col, period_col])
    pdates = pd.to_datetime(cov[period_col])
    grid = pd.DatetimeIndex(np.sort(pdates.unique()))
    step = float(np.min(np.diff(grid.asi8)) / 86400e9) if len(grid) > 1 else unit_days
    K = int(round((grid[-1] - grid[0]).days / step)) + 1
    ids = first.index
    ci = ids.get_indexer(cov[customer_col])
    keep = ci >= 0
    ck = np.round((pdates[keep] - grid[0]).dt.days.to_numpy() / step).astype(np.int64)
    logA = np.zeros((len(ids), K))
    logC = np.zeros((len(ids), K))
    for proc, out in (("purchase", logA), ("attrition", logC)):
        g = np.asarray([coefficients.get(proc, {}).get(c, 0.0) for c in names[proc]], float)
        if len(g):
            out[ci[keep], ck] = cov.loc[keep, list(names[proc])].to_numpy(float) @ g
    n = len(ids)
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    E = rng.exponential(1.0, n)
    plen = step / unit_days
    g0 = grid[0].value
    rows_c, rows_t = [], []
    for i in range(n):
        t0 = (first.iloc[i].value - g0) / 86400e9 / unit_days       # birth on the grid's time axis
        t_end = (end.value - g0) / 86400e9 / unit_days
        edges = np.arange(K + 1) * plen
        lo = np.clip(edges[:-1], t0, t_end)
        hi = np.clip(edges[1:], t0, t_end)
        seg = hi - lo
        A, C = np.exp(logA[i]), np.exp(logC[i])
        Cc = np.concatenate([[0.0], np.cumsum(C * seg)])
        k_d = np.searchsorted(Cc, E[i] / mu[i]) - 1                  # period of death (K if alive at end)
        if k_d >= K:
            tau = t_end
        else:
            tau = lo[k_d] + (E[i] / mu[i] - Cc[k_d]) / C[k_d]
        stop = min(tau, t_end)
        seg_a = np.clip(np.minimum(hi, stop) - lo, 0.0, None)
        Ac = np.concatenate([[0.0], np.cumsum(A * seg_a)])
        N = rng.poisson(lam[i] * Ac[-1])
        if N:
            u = rng.uniform(0.0, Ac[-1], N)
            k = np.clip(np.searchsorted(Ac, u) - 1, 0, K - 1)
            times = lo[k] + (u - Ac[k]) / A[k]
            rows_c.append(np.full(N, ids[i]))
            rows_t.append(times)
    days = np.floor(np.concatenate(rows_t) * unit_days) if rows_t else np.array([])
    rep = pd.DataFrame({customer_col: np.concatenate(rows_c) if rows_c else np.array([], dtype=ids.dtype),
                        "date": grid[0] + pd.to_timedelta(days, unit="D")})
    rep = rep[rep["date"] > first.reindex(rep[customer_col]).to_numpy()]
    log = pd.concat([pd.DataFrame({customer_col: ids, "date": first.to_numpy()}), rep], ignore_index=True)
    return log.sort_values([customer_col, "date"], ignore_index=True)


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------

@dataclass(repr=False)
class DynamicCovariateFit(CovariateFit):
    """A fitted Pareto/NBD with time-varying covariates: a :class:`~helpers.models.covariates.CovariateFit`.

    The fields, :meth:`to_results`, :meth:`params_table`, :meth:`multipliers` and
    :meth:`lr_test` are those of the static-covariate fit (``dynamic`` is True):
    ``params`` are ``r, alpha, s, beta`` at ``z = 0``; ``coefficients`` ``{process: {cov:
    gamma}}`` with the purchase rate scaled by ``exp(gamma_purchase' z_t)`` and the attrition
    rate by ``exp(gamma_attrition' z_t)`` in each period; ``se``/``ci95``/``cov`` keyed ``r,
    alpha, s, beta, purchase.<cov>, attrition.<cov>``.  The multipliers are per unit of a
    covariate while it is in force (purchase rate ``exp(gamma)``; lifetime quantiles
    ``exp(-gamma)`` for a covariate constant in time).  Coefficients held fixed or on the bound
    (``extra["fixed"]``, ``extra["at_bound"]``) have NaN standard errors and intervals, and the
    other standard errors are conditional on them.

    The predictions need the covariate path, so they take a :class:`DynamicCovariateData`
    instead of ``(x, t_x, T, Z)``: :meth:`p_alive` and :meth:`expected_purchases`.
    """

    dynamic: bool = True
    fit_seconds: float = float("nan")
    max_abs_gradient: float = float("nan")
    n_evaluations: int = 0
    extra: dict = field(default_factory=dict)

    def multipliers(self, level: float = 0.95) -> pd.DataFrame:
        out = super().multipliers(level)
        held = set(self.extra.get("at_bound", [])) | set(self.extra.get("fixed", []))
        for i, row in out.iterrows():
            if f"{row.process}.{row.covariate}" in held:
                out.loc[i, ["lower", "upper"]] = np.nan
        return out

    def log_likelihood_rows(self, data: DynamicCovariateData) -> np.ndarray:
        """Per-customer log-likelihood on ``data`` (see :func:`log_likelihood`)."""
        return log_likelihood(self.params, self.coefficients, data)

    def p_alive(self, data: DynamicCovariateData) -> np.ndarray:  # noqa: D102  (signature: the covariate path)
        """P(alive at T) per customer of ``data`` (see :func:`p_alive`)."""
        return p_alive(self.params, self.coefficients, data)

    def expected_purchases(self, t, data: DynamicCovariateData) -> np.ndarray:
        """E[X(T, T+t] | data, covariate path] per customer of ``data`` (see :func:`expected_purchases`)."""
        return expected_purchases(self.params, self.coefficients, data, t)

    def __repr__(self) -> str:
        return super().__repr__().replace("<CovariateFit", "<DynamicCovariateFit", 1)


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
    """Per-parameter L2 weights on the mean objective: 0 for the base parameters, the process's penalizer
    for each gamma (a constrained gamma once, with the larger of the two)."""
    if isinstance(penalizer, dict):
        lam = {p: float(penalizer.get(p, 0.0)) for p in PROCESSES}
    else:
        lam = {p: float(penalizer) for p in PROCESSES}
    if min(lam.values()) < 0:
        raise ValueError("penalizer must be >= 0")
    w = np.zeros(len(layout.keys))
    for (proc, cov), i in layout.slot.items():
        w[i] = max(w[i], lam[proc])
    return w


def fit_pareto_nbd_dynamic(transactions=None, covariates=None, calibration_end=None, *,
                           purchase_covariates=None, attrition_covariates=None,
                           data: DynamicCovariateData | None = None, constrain_equal=(),
                           penalizer: float | dict = 0.0, initial: dict | None = None, fixed: dict | None = None,
                           gamma_bound: float = GAMMA_BOUND, time_unit: str = "W",
                           customer_col: str = "customer_id", date_col: str = "date", period_col: str = "Cov.Date",
                           se: bool = True, gtol: float = 1e-3) -> DynamicCovariateFit:
    """Fit the Pareto/NBD with time-varying covariates by maximum likelihood.

    Either pass the raw inputs (``transactions``, ``covariates``, ``calibration_end`` and the
    covariate names; see :func:`prepare_dynamic_data` for their form and the column options) or
    a prepared ``data``.

    The objective is the mean negative log-likelihood plus ``penalizer * sum(gamma^2)`` (the
    convention of :mod:`helpers.models.covariates` and lifetimes; CLVTools' ``reg.lambdas``
    ``lambda``, added to the summed one, is ``penalizer = lambda / n``); ``penalizer`` is one value
    for both processes or ``{"purchase": .., "attrition": ..}``.  It is minimised over
    ``phi = (log r, log alpha, log s, log beta, gammas)``, minimised by L-BFGS-B with
    the analytic gradient (:func:`_log_likelihood_grad`) and ``|gamma| <= gamma_bound``, then
    Newton steps on the Hessian from central differences of that gradient.  A coefficient that ends on the bound is a likelihood that keeps
    rising as ``|gamma|`` grows (no finite maximum: e.g. nobody ever drops out while the
    covariate is 1); it is reported at the bound with a RuntimeWarning, NaN standard error and
    its key in ``fit.extra["at_bound"]``, and the other standard errors are conditional on it.
    Start values: CLVTools' vignette ``r = 1, alpha = 2, s = 1, beta = 2`` and ``0.1`` per
    gamma, or ``initial`` (``{"r": .., ..., "purchase": {cov: ..}, "attrition": {cov: ..}}``).

    Parameters
    ----------
    constrain_equal : sequence of str
        Covariates whose gamma is the same for both processes (they must act on both); reported
        under both processes.
    fixed : mapping, optional
        Parameters held at given values (keys ``"r"``, ..., ``"purchase.<cov>"``,
        ``"attrition.<cov>"``): a profile of the likelihood; their standard errors are NaN.
    gamma_bound : float
        Box constraint on each gamma (a rate multiplier of ``exp(gamma_bound)`` per unit).
    se : bool
        Compute the Hessian and standard errors (``2 k`` gradient evaluations).
    gtol : float
        Convergence: largest absolute gradient of the total negative log-likelihood over the
        free parameters.

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
    fixed = dict(fixed or {})
    for key, v in fixed.items():
        if key in PARAM_NAMES:
            init[key] = float(v)
        elif "." in key and key.split(".", 1)[0] in PROCESSES and key.split(".", 1)[1] in data.names[key.split(".", 1)[0]]:
            proc, cov = key.split(".", 1)
            init_coefs.setdefault(proc, {})[cov] = float(v)
            if cov in layout.constraints:
                other = "attrition" if proc == "purchase" else "purchase"
                init_coefs.setdefault(other, {})[cov] = float(v)
        else:
            raise ValueError(f"fixed: unknown parameter {key!r} (known: {_public_keys(layout)})")
    phi_all = layout.pack(init, init_coefs)
    fixed_slots = sorted({PARAM_NAMES.index(k) if k in PARAM_NAMES else layout.slot[tuple(k.split(".", 1))]
                          for k in fixed})
    n = data.n_customers
    n_eval = [0]
    k_all = len(phi_all)
    is_gamma = np.arange(k_all) >= 4
    bounds_all = np.where(is_gamma[:, None], [-gamma_bound, gamma_bound], [-_LOG_BOUND, _LOG_BOUND])
    phi_all = np.clip(phi_all, bounds_all[:, 0], bounds_all[:, 1])

    # expanded gradient (log r, log alpha, log s, log beta, purchase gammas, attrition gammas) -> slots
    expand = np.zeros((4 + len(data.names["purchase"]) + len(data.names["attrition"]), k_all))
    expand[np.arange(4), np.arange(4)] = 1.0
    for e_i, (proc, cov) in enumerate([(p_, c_) for p_ in PROCESSES for c_ in data.names[p_]]):
        expand[4 + e_i, layout.slot[(proc, cov)]] = 1.0

    def make(free):
        """objective and analytic gradient over the free slots (the others held at phi_all)"""
        def both(v):
            n_eval[0] += 1
            phi = phi_all.copy()
            phi[free] = v
            params, coefs = layout.unpack(phi)
            with np.errstate(all="ignore"):
                ll, g = _log_likelihood_grad(params, coefs, data)
                val = -float(np.sum(ll)) + n * float(pen_w @ phi ** 2)
                gr = (-(g.sum(axis=0) @ expand) + 2.0 * n * pen_w * phi)[free]
            if not (np.isfinite(val) and np.all(np.isfinite(gr))):
                return np.inf, np.zeros_like(v)
            return val, gr

        cached = _once_per_point(both)
        return (lambda v: cached(v)[0]), (lambda v: cached(v)[1])

    free = np.array([i for i in range(k_all) if i not in fixed_slots], dtype=int)
    total, grad = make(free)
    res = optimize.minimize(lambda v: min(total(v) / n, 1e100), phi_all[free], jac=lambda v: grad(v) / n,
                            method="L-BFGS-B", bounds=bounds_all[free],
                            options={"maxiter": 3000, "ftol": 1e-15, "gtol": gtol / n / 10})
    phi_all[free] = res.x
    # coefficients on the bound: the likelihood has no finite maximum in that direction
    on_bound = [int(i) for i in free if is_gamma[i] and abs(phi_all[i]) >= gamma_bound * (1 - 1e-9)]
    at_bound = [key for key, i in zip(_public_keys(layout), _public_index(layout)) if i in on_bound]
    if at_bound:
        warnings.warn(f"{_LABEL}: {', '.join(at_bound)} ended on the bound |gamma| = {gamma_bound:g}: the "
                      "likelihood keeps increasing in that direction (no finite estimate); reported at the "
                      "bound, without standard error", RuntimeWarning, stacklevel=2)
    free = np.array([i for i in free if i not in on_bound], dtype=int)
    total, grad = make(free)
    v = phi_all[free]
    H = None
    for _ in range(4):                       # Newton polish on a finite-difference Hessian
        g = grad(v)
        if np.max(np.abs(g)) < gtol / 10:
            break
        H = _grad_hessian(grad, v)
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or np.max(np.abs(step)) > 1.0:
            break
        cand = np.clip(v - step, bounds_all[free, 0], bounds_all[free, 1])
        if total(cand) <= total(v):
            v, H = cand, None
        else:
            break
    phi_all[free] = v
    g = grad(v)
    final = total(v)
    if not np.isfinite(final):
        raise ModelFitError(f"{_LABEL}: the log-likelihood is not finite at the optimiser's end point")
    max_g = float(np.max(np.abs(g))) if len(g) else 0.0
    converged = max_g < gtol
    if not converged:
        raise ModelFitError(f"{_LABEL} did not converge ({res.message}; max |gradient| of the negative "
                            f"log-likelihood {max_g:.3g})")
    params, coefs = layout.unpack(phi_all)
    ll = float(np.sum(log_likelihood(params, coefs, data)))
    keys = _public_keys(layout)
    idx = _public_index(layout)
    se_d = {key: float("nan") for key in keys}
    ci_d = {key: (float("nan"), float("nan")) for key in keys}
    cov = pd.DataFrame(np.full((len(keys), len(keys)), np.nan), index=keys, columns=keys)
    if se and len(free):
        if H is None:
            H = _grad_hessian(grad, v)
        try:
            cov_free = np.linalg.inv(H)
            ok = np.all(np.isfinite(cov_free)) and np.all(np.diag(cov_free) > 0)
        except np.linalg.LinAlgError:
            ok = False
        if not ok:
            warnings.warn(f"{_LABEL}: the Hessian at the optimum is not positive definite; standard errors "
                          "are NaN", RuntimeWarning, stacklevel=2)
            cov_free = np.full((len(free), len(free)), np.nan)
        cov_phi = np.full((k_all, k_all), np.nan)
        cov_phi[np.ix_(free, free)] = cov_free
        jac = np.where(is_gamma, 1.0, np.exp(phi_all))       # delta method for the log-parameters
        cov_nat = cov_phi * np.outer(jac, jac)
        se_phi = np.sqrt(np.diag(cov_phi))
        cov = pd.DataFrame(cov_nat[np.ix_(idx, idx)], index=keys, columns=keys)
        for key, i in zip(keys, idx):
            se_d[key] = float(jac[i] * se_phi[i])
            if i < 4:
                ci_d[key] = (float(np.exp(phi_all[i] - _Z95 * se_phi[i])), float(np.exp(phi_all[i] + _Z95 * se_phi[i])))
            else:
                ci_d[key] = (float(phi_all[i] - _Z95 * se_phi[i]), float(phi_all[i] + _Z95 * se_phi[i]))
    k = len(free) + len(on_bound)
    cov_layout = _covariate_layout(ParetoNBD(), {p: list(data.names[p]) for p in PROCESSES}, constrain_equal, None)
    cov_phi_out = None
    if se and len(free):
        cov_phi_out = np.nan_to_num(cov_phi, nan=0.0)        # held parameters: no variance
    return DynamicCovariateFit(
        _phi=phi_all.copy(), _cov_phi=cov_phi_out, _layout=cov_layout, _data=(data.x, data.t_x, data.T),
        n_unique=n, n_groups=0, name="pareto_nbd", label=_LABEL,
        params={k_: float(v_) for k_, v_ in params.items()}, coefficients=coefs, se=se_d, ci95=ci_d, cov=cov, log_likelihood=ll, aic=-2 * ll + 2 * k, bic=-2 * ll + k * math.log(n),
        n_customers=n, converged=converged, penalizer=penalizer, constraints=tuple(constrain_equal),
        time_unit=data.time_unit, message=str(res.message), fit_seconds=time.perf_counter() - t0,
        max_abs_gradient=max_g, n_evaluations=n_eval[0],
        extra={"at_bound": at_bound, "fixed": sorted(fixed), "gamma_bound": gamma_bound, "n_gamma": k_all - 4})


def _public_keys(layout: _Layout) -> list[str]:
    return list(PARAM_NAMES) + [f"{proc}.{cov}" for proc in PROCESSES for cov in layout.names[proc]]


def _public_index(layout: _Layout) -> list[int]:
    return list(range(4)) + [layout.slot[(proc, cov)] for proc in PROCESSES for cov in layout.names[proc]]
