"""Customer lifetime value, its uncertainty, and model-based tracking.

CLV (Fader, Hardie & Lee 2005, "RFM and CLV", JMR 42; discrete-time
discounting as in lifetimes) for a customer with history ``(x, t_x, T, m_x)``::

    CLV = sum_{m=1}^{H} margin * E[M | x, m_x] * (E[X(t_m) | .] - E[X(t_{m-1}) | .]) / (1 + d)^m

with ``E[M | x, m_x]`` the Gamma-Gamma conditional expected spend (eq. 5),
``E[X(t) | x, t_x, T]`` the frequency model's conditional expectation and
``t_m`` the end of month ``m`` **in the model's time unit**.  By default a
month is ``365.25 / 12`` days, i.e. ``365.25 / 12 / 7 = 4.348`` weeks for a
weekly model.

Relation to lifetimes
---------------------
``lifetimes.GammaGammaFitter.customer_lifetime_value(model, ..., time=H,
discount_rate=d, freq=F)`` (lifetimes 0.11.3, ``utils._customer_lifetime_value``)
uses the same sum but fixed month lengths per ``freq``: ``"D"`` -> 30 time
units (it assumes a *daily* model and 30-day months), ``"W"`` -> 4.345,
``"M"`` -> 1, ``"H"`` -> 720.  Its default ``freq="D"`` applied to a weekly
model therefore treats 30 *weeks* as a month.  :func:`clv` reproduces it
exactly with ``days_per_month=30`` and ``time_unit="D"`` for a daily model, or
``days_per_month=4.345 * 7`` and ``time_unit="W"`` for a weekly one (see
:func:`lifetimes_days_per_month`); the tests check equality to 1e-9.
"""

from __future__ import annotations

import time as _time
import warnings

import numpy as np
import pandas as pd

from .models import (
    FittedModel,
    GammaGammaFit,
    ModelFitError,
    fit_gamma_gamma,
    fit_model,
    unique_rows,
)
from .progress import progress
from .summary import days_per_unit

__all__ = [
    "DAYS_PER_MONTH",
    "month_grid",
    "discount_factors",
    "lifetimes_days_per_month",
    "clv",
    "customer_equity",
    "BootstrapResult",
    "bootstrap",
    "p_alive_history",
    "naive_baseline_holdout",
    "holdout_errors",
    "expected_tracking",
    "p_alive_future",
    "monthly_expectations",
    "clv_kernel",
    "ConstantSpend",
]

#: Average Gregorian month in days.
DAYS_PER_MONTH = 365.25 / 12

_LIFETIMES_FACTOR = {"D": 30.0, "W": 4.345, "M": 1.0, "H": 30.0 * 24}


def lifetimes_days_per_month(freq: str = "D") -> float:
    """Month length in days implied by lifetimes' ``customer_lifetime_value(freq=...)``.

    lifetimes steps ``30`` time units per month for ``freq="D"``, ``4.345``
    for ``"W"``, ``1`` for ``"M"`` (our "M" unit is 365.25/12 days) and
    ``720`` for ``"H"``.  Pass the result as ``days_per_month`` to :func:`clv`
    together with the matching ``time_unit`` to reproduce lifetimes.
    """
    if freq not in _LIFETIMES_FACTOR:
        raise ValueError(f"freq must be one of {sorted(_LIFETIMES_FACTOR)}, got {freq!r}")
    if freq == "H":
        return 30.0
    if freq == "M":
        return DAYS_PER_MONTH
    return _LIFETIMES_FACTOR[freq] * days_per_unit(freq)


def month_grid(horizon_months: int, time_unit: str = "W", days_per_month: float = DAYS_PER_MONTH) -> np.ndarray:
    """Month ends ``t_0 = 0, t_1, ..., t_H`` in the model's time unit (a month is ``days_per_month`` days)."""
    if int(horizon_months) != horizon_months or horizon_months < 1:
        raise ValueError(f"horizon_months must be a positive whole number, got {horizon_months!r}")
    if days_per_month <= 0:
        raise ValueError("days_per_month must be > 0")
    units_per_month = days_per_month / days_per_unit(time_unit)
    return np.arange(int(horizon_months) + 1) * units_per_month   # t_0 = 0, ..., t_H


def discount_factors(horizon_months: int, monthly_discount_rate: float) -> np.ndarray:
    """``1 / (1 + d)^m`` for months m = 1..H (cash flows at the end of each month)."""
    if horizon_months < 1:
        raise ValueError(f"horizon_months must be >= 1, got {horizon_months}")
    if monthly_discount_rate <= -1:
        raise ValueError(f"monthly_discount_rate must be > -1, got {monthly_discount_rate}")
    return 1.0 / (1.0 + monthly_discount_rate) ** np.arange(1, horizon_months + 1)


def clv_kernel(purchases_by_month, monthly_discount_rate: float, spend=1.0, margin=1.0) -> np.ndarray:
    """The CLV kernel: ``margin * spend * sum_{m=1..H} purchases[..., m] / (1 + d)^m``.

    The one place where expected purchases become discounted value (used by
    :func:`clv`, :func:`bootstrap`, :func:`helpers.segments.customer_values` and
    :mod:`helpers.economics`).  ``purchases_by_month`` has the months on its
    last axis (expected purchases in month ``m``, cash flows at the month end);
    since the sum is linear it may also be a factor of them (the part of the
    conditional expectation in ``(x, T)``, see :func:`_discounted_purchases`).
    ``spend`` (expected spend per purchase) and ``margin`` broadcast against the
    result.
    """
    P = np.asarray(purchases_by_month, dtype=float)
    disc = discount_factors(P.shape[-1], monthly_discount_rate)
    return margin * np.asarray(spend, dtype=float) * (P @ disc)


def _discounted_purchases(model_fit, x, t_x, T, t_grid, monthly_discount_rate):
    """sum_m (E[X(t_m)] - E[X(t_{m-1})]) / (1 + d)^m per customer.

    E[X(t) | x, t_x, T] = G[inv] * h (the model's ``expected_purchases_parts``), so the
    discounted sum over months is taken on G, once per distinct row of G, and scaled by h.
    """
    with np.errstate(all="ignore"):
        G, inv, h = model_fit.model.expected_purchases_parts(model_fit.theta, t_grid[1:], x, t_x, T)
    G = np.concatenate([np.zeros((len(G), 1)), G], axis=1)
    return clv_kernel(np.diff(G, axis=1), monthly_discount_rate)[inv] * h


class _AliveFactored:
    """Discounted expected purchases of fixed rows under many parameter values, as ``P(alive) x f(x, T)``.

    Given alive at ``T`` the future of a model whose survival does not depend
    on ``t_x`` (:attr:`~helpers.models.base.FrequencyModel.survival_depends_on_t_x`
    False: BG/NBD, MBG/NBD, Pareto/NBD, ...) depends on ``(x, T)`` only, so
    ``E[X(T, T+t] | x, t_x, T] = P(alive | x, t_x, T) E[X(T, T+t] | alive, x, T]``
    and the same holds for the discounted sum over months.  The second factor
    is evaluated on the distinct ``(x, T)`` (as the discounted purchases of a
    row with ``t_x = T``, divided by its ``P(alive)``), the first in closed
    form per row; the grouping of the rows into distinct ``(x, T)`` is done
    once for all parameter values (a bootstrap's replicates).  The
    factorisation is checked at construction against the direct evaluation
    (:func:`_discounted_purchases`); where it does not hold (or the model's
    survival depends on ``t_x``) :attr:`ok` is False and the caller uses the
    direct evaluation.
    """

    def __init__(self, model_fit, x, t_x, T, t_grid, monthly_discount_rate):
        self.x, self.t_x, self.T = x, t_x, T
        self.t_grid, self.rate = t_grid, monthly_discount_rate
        (self.xk, self.Tk), self.inv, _ = unique_rows(x, T)
        self.txk = np.where(self.xk > 0, self.Tk, 0.0)
        self.ok = not getattr(model_fit.model, "survival_depends_on_t_x", True)
        if self.ok:
            direct = _discounted_purchases(model_fit, x, t_x, T, t_grid, monthly_discount_rate)
            with np.errstate(all="ignore"):
                fast = self(model_fit)
            self.ok = bool(np.all(np.isfinite(fast)) and np.allclose(fast, direct, rtol=1e-9, atol=0.0))

    def __call__(self, model_fit) -> np.ndarray:
        m, th = model_fit.model, model_fit.theta
        with np.errstate(all="ignore"):
            per_xT = (_discounted_purchases(model_fit, self.xk, self.txk, self.Tk, self.t_grid, self.rate)
                      / np.asarray(m.p_alive(th, self.xk, self.txk, self.Tk), dtype=float))
            return np.asarray(m.p_alive(th, self.x, self.t_x, self.T), dtype=float) * per_xT[self.inv]


def _clv_rows(model_fit, spend_fit, x, t_x, T, m_x, t_grid, monthly_discount_rate, margin, x_spend=None):
    """CLV for (unique) rows: (n,) arrays -> (n,) CLV; vectorised over months.

    The spend model conditions on ``(x_spend, m_x)`` (``x_spend`` defaults to ``x``).
    """
    spend = spend_fit.expected_spend(x if x_spend is None else x_spend, m_x)
    return margin * spend * _discounted_purchases(model_fit, x, t_x, T, t_grid, monthly_discount_rate)


def _summary_arrays(summary, spend_x: str = "x", need_m_x: bool = True):
    """``x, t_x, T, m_x, x_spend`` of a summary (``m_x`` zeros when not ``need_m_x`` and absent)."""
    need = ["x", "t_x", "T"] + (["m_x"] if need_m_x else []) + ([spend_x] if spend_x != "x" else [])
    missing = [c for c in need if c not in summary.columns]
    if missing:
        raise ValueError(f"summary is missing column(s) {missing}; CLV needs x, t_x, T and m_x"
                         + (f" (and {spend_x!r}, the count the spend model conditions on)" if spend_x != "x" else ""))
    x, t_x, T = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    m_x = summary["m_x"].to_numpy(dtype=float) if "m_x" in summary.columns else np.zeros(len(summary))
    return x, t_x, T, m_x, summary[spend_x].to_numpy(dtype=float)


def clv(
    model_fit: FittedModel,
    spend_fit: GammaGammaFit,
    summary: pd.DataFrame,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
    time_unit: str | None = "W",
    days_per_month: float = DAYS_PER_MONTH,
    spend_x: str = "x",
) -> pd.Series:
    """Discounted expected customer lifetime value per customer.

    ``CLV_i = sum_{m=1..H} margin * E[M_i] * (E[X_i(t_m)] - E[X_i(t_{m-1})]) / (1 + d)^m``
    with ``t_m = m * days_per_month / days(time_unit)`` (see module docstring).

    Parameters
    ----------
    model_fit : FittedModel
        Frequency model fitted with ``t_x``/``T`` in ``time_unit``.
    spend_fit : GammaGammaFit
    summary : DataFrame
        Columns ``x, t_x, T, m_x`` (same time unit as the fit).
    horizon_months : int
        Number of months H.
    monthly_discount_rate : float
        d, per month.
    margin : float
        Profit margin applied to spend (1 = revenue).
    time_unit : {"D", "W", "M"}
        Unit of the model's time axis.  If the fit records a different unit,
        a ValueError is raised.
    days_per_month : float
        Month length in days (default 365.25/12; 30 reproduces lifetimes'
        ``freq="D"``).
    spend_x : str
        Column with the repeat-purchase count the spend model conditions on
        (``E[M | x, m_x]``); default ``"x"``.  A discrete-time model's summary
        counts opportunities with a transaction in ``x``; it passes the count of
        repeat purchase days from the continuous summary here, the ``x`` the
        Gamma-Gamma model was fitted on.

    Returns
    -------
    Series indexed like ``summary`` (name ``"clv"``).
    """
    if time_unit is None:
        time_unit = model_fit.time_unit or "W"
    if model_fit.time_unit is not None and model_fit.time_unit != time_unit:
        raise ValueError(f"the model was fitted in time unit {model_fit.time_unit!r} but time_unit={time_unit!r}")
    if monthly_discount_rate <= -1:
        raise ValueError("monthly_discount_rate must be > -1")
    t_grid = month_grid(horizon_months, time_unit, days_per_month)
    x, t_x, T, m_x, x_spend = _summary_arrays(summary, spend_x)
    # CLV = margin x E[spend | x, m_x] x (discounted purchases | x, t_x, T); the hypergeometric
    # part of the purchases is evaluated once per distinct (x, T), the rest in closed form per customer
    vals = _clv_rows(model_fit, spend_fit, x, t_x, T, m_x, t_grid, monthly_discount_rate, margin, x_spend)
    return pd.Series(vals, index=summary.index, name="clv")


def customer_equity(clv_values) -> float:
    """Customer equity: the sum of the customers' CLVs."""
    return float(np.nansum(np.asarray(clv_values, dtype=float)))


# ---------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------

class _CustomerDraws:
    """The per-customer CLV of a bootstrap's replicates, evaluated on demand (never customers x replicates).

    Holds the unique ``(x, t_x, T, m_x, x_spend)`` rows, the map of the customers to them and the
    replicates' fits; :meth:`draws` evaluates the replicates' CLV (:func:`_clv_rows`) of some rows: a few
    customers, or all of them in blocks.
    """

    def __init__(self, index, inverse, rows, clv_base, fits, settings):
        self.index, self.inverse, self.rows_, self.clv_base = index, inverse, rows, clv_base
        self.fits, self.settings = fits, settings

    def draws(self, u) -> np.ndarray:
        """CLV of the unique rows ``u`` (positions) under every replicate: ``(n_replicates, len(u))``."""
        x, t_x, T, m_x, x_spend = (c[u] for c in self.rows_)
        t_grid, rate, margin = self.settings
        out = np.empty((len(self.fits), len(u)))
        for b, (f, g) in enumerate(self.fits):
            out[b] = _clv_rows(f, g, x, t_x, T, m_x, t_grid, rate, margin, x_spend)
        return out

    def table(self, positions, level: float) -> pd.DataFrame:
        """``clv``, ``lower``, ``upper`` of the customers at ``positions`` (of the summary's index)."""
        lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
        u_all = self.inverse[positions]
        u, back = np.unique(u_all, return_inverse=True)
        lo, hi = np.empty(len(u)), np.empty(len(u))
        block = max(1, 2_000_000 // max(len(self.fits), 1))     # about 16 MB of draws at a time
        for s in range(0, len(u), block):
            q = np.quantile(self.draws(u[s:s + block]), [lo_q, hi_q], axis=0)
            lo[s:s + block], hi[s:s + block] = q
        return pd.DataFrame({"clv": self.clv_base[u_all], "lower": lo[back], "upper": hi[back]},
                            index=self.index[positions])


class BootstrapResult:
    """Percentile bootstrap intervals for parameters, customer equity and CLV.

    Attributes
    ----------
    params : DataFrame
        One row per (model, parameter): ``estimate`` (full-data fit),
        ``lower``, ``upper`` (percentile interval), ``se`` (bootstrap SD).
    equity : Series
        ``estimate``, ``lower``, ``upper`` of the customer equity of the
        original customers.
    clv : DataFrame
        Per customer: ``clv`` (point estimate), ``lower``, ``upper``.  Computed
        on first access from the replicates' fits (in blocks of customers; the
        customers x replicates matrix is never held); for a few customers use
        :meth:`customer_clv`.
    param_draws : DataFrame
        Parameters of each successful replicate.
    n_customers, resample_size : int
        Customers of the summary, and customers drawn per replicate (fewer
        on a large base: an m-out-of-n bootstrap, see :func:`bootstrap`).
    equity_draws : ndarray
    level : float
    n_boot, n_failed, seed : int
    seconds : float
        Wall time.
    """

    def __init__(self, params: pd.DataFrame, equity: pd.Series, clv: pd.DataFrame | None = None,
                 param_draws: pd.DataFrame | None = None, equity_draws: np.ndarray | None = None,
                 level: float = 0.90, n_boot: int = 0, n_failed: int = 0, seed: int = 0, seconds: float = 0.0,
                 model: str = "bgnbd", customer_draws: _CustomerDraws | None = None,
                 n_customers: int | None = None, resample_size: int | None = None):
        self.n_customers, self.resample_size = n_customers, resample_size
        self.params, self.equity, self._clv = params, equity, clv
        self.param_draws, self.equity_draws = param_draws, equity_draws
        self.level, self.n_boot, self.n_failed, self.seed, self.seconds = level, n_boot, n_failed, seed, seconds
        self.model, self._customer_draws = model, customer_draws

    def __repr__(self) -> str:
        return (f"BootstrapResult(model={self.model!r}, n_boot={self.n_boot}, n_failed={self.n_failed}, "
                f"level={self.level}, seed={self.seed}, equity={dict(self.equity)})")

    @property
    def clv(self) -> pd.DataFrame:
        if self._clv is None:
            if self._customer_draws is None:
                raise ValueError("this BootstrapResult holds no per-customer CLV")
            self._clv = self._customer_draws.table(np.arange(len(self._customer_draws.index)), self.level)
        return self._clv

    def customer_clv(self, customers) -> pd.DataFrame:
        """``clv``, ``lower``, ``upper`` of the given customers (labels of the summary's index), in their order.

        The same numbers as ``clv.loc[customers]``, evaluated for these customers only.
        """
        if self._customer_draws is None:
            return self.clv.loc[list(customers)]
        cd = self._customer_draws
        positions = cd.index.get_indexer(pd.Index(list(customers)))
        if (positions < 0).any():
            missing = [c for c, p in zip(customers, positions) if p < 0]
            raise KeyError(f"{len(missing)} customer(s) not in the bootstrap's summary, e.g. {missing[:5]}")
        return cd.table(positions, self.level)


def bootstrap(
    summary: pd.DataFrame,
    model: str = "bgnbd",
    n_boot: int = 200,
    seed: int = 0,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
    time_unit: str = "W",
    days_per_month: float = DAYS_PER_MONTH,
    level: float = 0.90,
    penalizer: float = 0.0,
    show_progress: bool = True,
    *,
    fit: FittedModel | None = None,
    spend_fit: GammaGammaFit | None = None,
    value_per_purchase: float | None = None,
    spend_x: str = "x",
    refit: str = "newton",
    resample_above: int | None = 100_000,
    resample_size: int = 20_000,
) -> BootstrapResult:
    """Nonparametric bootstrap of the frequency and Gamma-Gamma models and of CLV.

    Customers are resampled with replacement; since customers with the same
    ``(x, t_x, T, m_x)`` are interchangeable, a replicate is a multinomial
    draw of counts over the unique rows, and each refit runs on the unique
    rows with those counts as weights (warm-started at the full-data
    estimates; the frequency model on the distinct ``(x, t_x, T)``).  Under
    each replicate's parameters the CLV of the *original* customers is
    evaluated, giving percentile intervals for customer equity and (on
    demand, :attr:`BootstrapResult.clv`) for each customer's CLV.  Replicates whose fit fails are dropped and
    counted (``n_failed``).

    A summary without ``m_x`` (a log without amounts) bootstraps the
    frequency model alone: no Gamma-Gamma draws, and "CLV" is ``margin`` times
    the discounted expected purchases (a value of 1 per purchase, or
    ``value_per_purchase``).

    Parameters
    ----------
    summary : DataFrame
        ``x, t_x, T`` and (with amounts) ``m_x`` per customer.
    model : str
        A registered frequency model (ignored when ``fit`` is given).
    n_boot : int
        Number of replicates.
    seed : int
        Seed of ``numpy.random.default_rng``.
    horizon_months, monthly_discount_rate, margin, time_unit, days_per_month
        As in :func:`clv`.
    level : float
        Central interval level (0.90 -> 5th and 95th percentiles).
    penalizer : float
    show_progress : bool
        Show the count of resamples fitted (notebook: a line updated in place;
        terminal: a progress bar; otherwise nothing).
    fit : FittedModel, optional
        The full-data fit to start from (default: fitted here on ``summary``);
        it is the point estimate, so the equity estimate equals :func:`clv`
        under it.  Its integer parameters (the ``k`` of the CNBD-k models) are
        held at its values in every replicate.
    spend_fit : GammaGammaFit, optional
        The full-data spend fit (default: fitted here); ignored with ``value_per_purchase``.
    value_per_purchase : float, optional
        Value every expected purchase at this constant instead of the
        Gamma-Gamma spend (a log without amounts: 1 counts discounted
        purchases, or the configured money per purchase); only the frequency
        model is resampled.
    spend_x : str
        Column with the count the spend model conditions on (see :func:`clv`).
    refit : {"newton", "full"}
        How a replicate's frequency model is refitted.  ``"newton"`` (default):
        Newton iterations from the full-data estimate with the full-data
        Hessian (:func:`_newton_refit`), which converge to the replicate's
        maximum-likelihood estimate; where they do not apply (no analytic
        gradient, a penalizer, integer parameters, no finite covariance) or do
        not converge, the full optimiser runs.  ``"full"``: the optimiser
        (:func:`helpers.models.fit_model`, warm-started) for every replicate.
        Both give the same estimates to the optimiser's tolerance (tested on
        CDNOW), so the draws and intervals are the same for the same ``seed``.
        The Gamma-Gamma refit is the warm-started optimiser in both cases.
    resample_above, resample_size : int
        A summary of more than ``resample_above`` customers (None: never) is
        bootstrapped by resamples of ``resample_size`` customers, rescaled
        (see Large bases); smaller ones by resamples of all ``n`` customers.

    Notes
    -----
    Large bases.  With ``n`` above ``resample_above``, a replicate draws
    ``m = resample_size`` customers with replacement (an m-out-of-n
    bootstrap), refits on them and moves each log parameter to
    ``phi_0 + sqrt(m / n) (phi_m - phi_0)``: the estimator's deviation is
    asymptotically normal with variance proportional to ``1 / n``, so the
    rescaled replicates have the spread of resamples of ``n`` customers
    (Bickel, Goetze & van Zwet 1997, Statistica Sinica 7, for the m-out-of-n
    bootstrap; the rescaling is its normal-theory form), at the cost of fits
    on ``m`` customers.  A replicate's equity of the original customers is
    then the full-data equity plus a model-assisted (GREG, :class:`_Greg`)
    estimate of its change from a fixed Poisson sample of the distinct
    ``(x, T)`` (about 1,000, drawn with probability proportional to their
    share of the equity, every customer of a drawn ``(x, T)`` evaluated
    exactly): asymptotically unbiased for the change, with an error of about
    1-2% of the replicates' spread on the simulated 1e6-customer base of
    issue #15 and below 15% of it on a 12,000-customer base where every
    customer is its own ``(x, T)`` (tested); such an error adds at most about
    2% to the variance of the draws, whose percentile ends at 50 replicates
    have a Monte-Carlo error of about a quarter of their spread.  The per-customer intervals (:attr:`BootstrapResult.clv`,
    :meth:`BootstrapResult.customer_clv`) are evaluated exactly under the
    rescaled replicates.  Memory is O(customers + replicates) in both cases:
    no customers x replicates matrix is formed.

    Returns
    -------
    BootstrapResult
    """
    from .models import get_model  # noqa: PLC0415
    from .models.fit import fit as _generic_fit  # noqa: PLC0415

    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    t_start = _time.perf_counter()
    if value_per_purchase is None and "m_x" not in summary.columns:
        value_per_purchase = 1.0   # a log without amounts: a value of 1 per purchase (times margin)
    with_spend = value_per_purchase is None
    x, t_x, T, m_x, xs = _summary_arrays(summary, spend_x, need_m_x=with_spend)
    (xu, txu, Tu, mu, xsu), inverse, counts = unique_rows(x, t_x, T, m_x, xs)
    n = int(counts.sum())
    t_grid = month_grid(horizon_months, time_unit, days_per_month)

    base = fit if fit is not None else fit_model(model, x=xu, t_x=txu, T=Tu, weights=counts, penalizer=penalizer,
                                                 time_unit=time_unit)
    freq_model = get_model(base.name)
    fixed = {k: float(base.params[k]) for k in freq_model.integer_params}
    if with_spend:
        base_gg = spend_fit
        if base_gg is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                base_gg = fit_gamma_gamma(x=xsu, m_x=mu, weights=counts, warn=False)
    else:
        base_gg = ConstantSpend(value_per_purchase)
    clv_base = _clv_rows(base, base_gg, xu, txu, Tu, mu, t_grid, monthly_discount_rate, margin, xsu)
    # the frequency model sees the distinct (x, t_x, T) rows (a replicate's weights summed over them); the
    # replicates' CLV is the discounted purchases factorised as P(alive) x f(x, T) when that holds
    (xf, txf, Tf), inv_f, _ = unique_rows(xu, txu, Tu)

    newton = refit == "newton"
    if refit not in ("newton", "full"):
        raise ValueError(f"refit must be 'newton' or 'full', got {refit!r}")

    def full_refit(k, w):
        if fixed:
            return _generic_fit(freq_model, xf[k], txf[k], Tf[k], w, penalizer=penalizer,
                                initial_params=base.params, time_unit=time_unit, se=False, fixed=fixed)
        return fit_model(base.name, x=xf[k], t_x=txf[k], T=Tf[k], weights=w, penalizer=penalizer,
                         initial_params=base.params, time_unit=time_unit, _se=False, _rows_unique=True)

    def refit_one(k, w, weight_scale):
        """The frequency model refitted on the distinct rows ``k`` (positions) with weights ``w`` (> 0)."""
        f = (_newton_refit(base, xf[k], txf[k], Tf[k], w, weight_scale=weight_scale)
             if newton and not fixed and not penalizer else None)
        return f if f is not None else full_refit(k, w)

    rng = np.random.default_rng(seed)
    probs = counts / n
    if resample_above is not None and n > resample_above and int(resample_size) < 2:
        raise ValueError(f"resample_size must be >= 2, got {resample_size!r}")
    m = n if resample_above is None or n <= resample_above else min(int(resample_size), n)
    shrink = np.sqrt(m / n)               # replicates of m customers: deviations rescaled to n customers
    if m < n:
        # the equity of the original customers under a replicate: the full-data equity plus a
        # model-assisted (GREG) estimate of its change from a fixed sample of the distinct (x, T) (where
        # the cost of the discounted purchases lies), drawn with probability proportional to their share
        # of the equity (Poisson sampling, its own random stream), every customer of a drawn (x, T) included
        (xc, Tc), cell, _ = unique_rows(xu, Tu)
        w0 = np.bincount(cell, weights=counts * clv_base, minlength=len(xc))      # each (x, T)'s equity
        share = np.abs(w0) + 0.01 * np.abs(w0).mean()
        share = np.ones(len(xc)) if not np.any(share > 0) else share
        pi = np.minimum(1.0, _EQUITY_CELLS * share / share.sum())
        drawn = np.flatnonzero(np.random.default_rng([seed, 2]).random(len(pi)) < pi)
        S = np.flatnonzero(np.isin(cell, drawn))
        _, cell_S = np.unique(cell[S], return_inverse=True)                      # sampled (x, T) of S's rows
        Z = _greg_covariates(xc, Tc)
        greg = _Greg(Z[drawn], w0[drawn], pi[drawn], w0 @ Z)
        (xS, txS, TS), inv_S, _ = unique_rows(xu[S], txu[S], Tu[S])
        factored = _AliveFactored(base, xS, txS, TS, t_grid, monthly_discount_rate)
    else:
        factored = _AliveFactored(base, xf, txf, Tf, t_grid, monthly_discount_rate)
    equity_0 = float(clv_base @ counts)
    draws, eq_draws, fits, failed = [], [], [], 0
    for _ in progress(range(n_boot), n_boot, "bootstrap resamples", enabled=show_progress):
        if m == n:      # a multinomial draw of n customers: counts over the unique rows
            w = rng.multinomial(n, probs).astype(float)
            k = np.flatnonzero(w)
            w = w[k]
        else:           # m customers drawn with replacement, counted per unique row
            k, w = np.unique(inverse[rng.integers(0, n, size=m)], return_counts=True)
            w = w.astype(float)
        kf, to_f = np.unique(inv_f[k], return_inverse=True)      # their distinct (x, t_x, T) and weights
        wf = np.bincount(to_f, weights=w, minlength=len(kf))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = refit_one(kf, wf, m / n)
                g = (fit_gamma_gamma(x=xsu[k], m_x=mu[k], weights=w, initial_params=base_gg.params, warn=False,
                                     _se=False) if with_spend else base_gg)
        except (ModelFitError, ValueError):
            failed += 1
            continue
        if m < n:
            f, g = _rescaled(f, base, shrink), (_rescaled(g, base_gg, shrink) if with_spend else g)
        draws.append(np.concatenate([f.params.to_numpy(), g.params.to_numpy()]) if with_spend
                     else f.params.to_numpy())
        # the equity of the original customers under the replicate (no CLV per customer is kept)
        if m < n:
            purchases = (factored(f) if factored.ok
                         else _discounted_purchases(f, xS, txS, TS, t_grid, monthly_discount_rate))[inv_S]
            clv_S = margin * np.asarray(g.expected_spend(xsu[S], mu[S]), dtype=float) * purchases
            change = np.bincount(cell_S, weights=counts[S] * (clv_S - clv_base[S]), minlength=len(drawn))
            eq_draws.append(equity_0 + greg.total(change))
        else:
            spend = margin * np.asarray(g.expected_spend(xsu, mu), dtype=float)
            purchases = (factored(f) if factored.ok
                         else _discounted_purchases(f, xf, txf, Tf, t_grid, monthly_discount_rate))[inv_f]
            eq_draws.append(float((spend * purchases) @ counts))
        fits.append((f, g))
    if not draws:
        raise ModelFitError("every bootstrap replicate failed to fit; try a penalizer such as 0.001")
    names = [(base.label, k) for k in base.params.index]
    est = base.params.to_numpy(dtype=float)
    if with_spend:
        names += [("Gamma-Gamma", k) for k in base_gg.params.index]
        est = np.concatenate([est, base_gg.params.to_numpy(dtype=float)])
    D = np.vstack(draws)
    eq_draws = np.asarray(eq_draws)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    idx = pd.MultiIndex.from_tuples(names, names=["model", "parameter"])
    params = pd.DataFrame({"estimate": est, "lower": np.quantile(D, lo_q, axis=0),
                           "upper": np.quantile(D, hi_q, axis=0), "se": D.std(axis=0, ddof=1) if len(D) > 1
                           else np.nan}, index=idx)
    equity = pd.Series({"estimate": equity_0, "lower": float(np.quantile(eq_draws, lo_q)),
                        "upper": float(np.quantile(eq_draws, hi_q))}, name="customer_equity")
    customers = _CustomerDraws(summary.index, inverse, (xu, txu, Tu, mu, xsu), clv_base, fits,
                               (t_grid, monthly_discount_rate, margin))
    return BootstrapResult(
        params=params, equity=equity, param_draws=pd.DataFrame(D, columns=idx), equity_draws=eq_draws,
        level=level, n_boot=n_boot, n_failed=failed, seed=seed, seconds=_time.perf_counter() - t_start,
        model=base.name, customer_draws=customers, n_customers=n, resample_size=m,
    )


#: Expected number of distinct (x, T) in the sample that evaluates a replicate's equity when the bootstrap
#: resamples fewer customers than the summary has (see ``resample_size`` of :func:`bootstrap`).
_EQUITY_CELLS = 1_000


def _greg_covariates(x, T) -> np.ndarray:
    """Covariates of a distinct ``(x, T)`` for :class:`_Greg`: 1, ln(1 + x), its square, T (scaled) and its
    square, and their product: a replicate's relative change of a cell's equity is smooth in them."""
    lx = np.log1p(x)
    t = T / max(float(np.max(T)), 1e-12)
    return np.column_stack([np.ones(len(x)), lx, lx ** 2, t, t ** 2, lx * t])


class _Greg:
    """The generalised regression (GREG) estimator of a population total from a Poisson sample
    (Saerndal, Swensson & Wretman 1992, Model Assisted Survey Sampling, section 6.5).

    Each unit ``c`` (a distinct ``(x, T)``) has a known size ``w0_c`` (its full-data equity) and covariates
    ``z_c``; a replicate's change ``y_c`` is observed on the sample only, and its relative change
    ``y_c / w0_c`` is modelled as ``z_c' beta`` (smooth in ``z``), fitted by ``1 / pi``-weighted least
    squares on the sample.  The estimate ``sum_all w0_c z_c' beta_hat + sum_sample (y_c - w0_c z_c'
    beta_hat) / pi_c`` is asymptotically unbiased whatever the model, and its error is that of the
    residuals rather than of ``y`` itself (the Horvitz-Thompson estimator, ``beta = 0``).
    """

    def __init__(self, z, w0, pi, z_total):
        self.z, self.w0, self.pi, self.z_total = z, w0, pi, z_total
        wts = np.where(w0 != 0, 1.0 / pi, 0.0)
        self.solve = np.linalg.pinv((z * wts[:, None]).T @ z) @ (z * wts[:, None]).T

    def total(self, y) -> float:
        with np.errstate(all="ignore"):
            r = np.where(self.w0 != 0, y / self.w0, 0.0)
        beta = self.solve @ r
        return float(self.z_total @ beta + ((y - self.w0 * (self.z @ beta)) / self.pi).sum())


def _rescaled(fit, base, shrink: float):
    """``fit`` with its parameters moved to ``base`` + ``shrink`` x (their deviation from ``base``), on the log scale."""
    import dataclasses  # noqa: PLC0415

    p0 = base.params.to_numpy(dtype=float)
    p = fit.params.reindex(base.params.index).to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        new = (np.exp(np.log(p0) + shrink * (np.log(p) - np.log(p0))) if np.all(p0 > 0) and np.all(p > 0)
               else p0 + shrink * (p - p0))
    return dataclasses.replace(fit, params=pd.Series(new, index=base.params.index, name=fit.params.name))


#: Largest step of a log parameter in :func:`_newton_refit` (a factor of e): a replicate optimum farther away
#: is left to the optimiser.
_NEWTON_MAX_STEP = 1.0
#: The converged point's chord step ``H_0^{-1} g`` must be below this (log parameters).
_NEWTON_CHORD_TOL = 1e-7


def _newton_refit(base: FittedModel, x, t_x, T, w, max_iter: int = 30, tol: float = 1e-10,
                  weight_scale: float = 1.0) -> FittedModel | None:
    """The maximum-likelihood refit of ``base`` on the rows ``(x, t_x, T)`` reweighted by ``w``, by Newton
    iterations with the full-data Hessian; None where that does not apply or does not converge.

    A bootstrap replicate reweights the same customers (a multinomial draw of
    the same total), so its log-likelihood differs from the full-data one by
    ``O(sqrt(n))`` and its optimum ``phi_b`` (log parameters) lies
    ``O(1/sqrt(n))`` from the full-data optimum ``phi_0``.  The iteration

        ``phi_{k+1} = phi_k - H_0^{-1} g_b(phi_k)``,

    with ``g_b`` the exact gradient of the replicate's negative log-likelihood
    (the model's analytic :meth:`~helpers.models.base.FrequencyModel.objective`)
    and ``H_0`` the Hessian of the full-data negative log-likelihood at
    ``phi_0`` (the inverse of ``base.cov`` on the log scale, which the fit
    already computed), is a chord (simplified Newton) method: its fixed point is
    the zero of ``g_b``, i.e. the replicate's maximum-likelihood estimate itself,
    and it contracts at the rate ``||I - H_0^{-1} H_b||``, which is
    ``O(1/sqrt(n))`` (a few iterations to ``tol``; on CDNOW about 5).  Each
    iteration costs one likelihood-and-gradient evaluation, against the dozens
    of the L-BFGS-B/trust-region run it replaces.  The inverse Hessian is
    updated after each step by Broyden's ("good") rank-one rule, ``B_{k+1} =
    B_k + (s - B_k y) s' B_k / (s' B_k y)`` with ``s`` the step and ``y`` the
    change of the gradient (Broyden 1965; Dennis & Moré 1977): started at
    ``H_0^{-1}`` it converges superlinearly, so the replicates where the chord
    method contracts slowly or unevenly (Pareto/NBD on CDNOW's calibration
    period, seed 0: 20 of 50 replicates stopped) need no
    full refit; the fixed point is unchanged.

    Returns None (the caller then runs the full optimiser) when the model has
    no analytic objective, ``base.cov`` is not finite and positive definite, an
    evaluation is not finite, a step of a log parameter exceeds
    ``_NEWTON_MAX_STEP`` (a weakly identified model, e.g. Pareto/NBD on the
    2,357 customers of the CDNOW sample, whose replicate optima lie far from
    the full-data one), the converged point's chord step ``H_0^{-1} g``
    exceeds ``_NEWTON_CHORD_TOL``, or the steps do not fall below ``tol`` (maximum
    absolute change of a log parameter) within ``max_iter`` iterations.  The
    result carries no standard errors; ``aic``/``bic`` are NaN.

    ``weight_scale`` is the replicate's total weight over the full data's
    (``m / n`` for a resample of ``m`` of the ``n`` customers): the replicate's
    Hessian is about ``weight_scale * H_0``, and the iteration uses that.
    """
    import dataclasses  # noqa: PLC0415

    from .models.fit import _no_se  # noqa: PLC0415

    names = list(base.params.index)
    theta = base.params.to_numpy(dtype=float)
    cov = base.cov.reindex(index=names, columns=names).to_numpy(dtype=float)
    if not (np.all(np.isfinite(cov)) and np.all(theta > 0)):
        return None
    cov_log = cov / np.outer(theta, theta) / weight_scale   # inverse Hessian of the replicate's -LL in log theta
    try:
        np.linalg.cholesky((cov_log + cov_log.T) / 2)
    except np.linalg.LinAlgError:
        return None
    keep = w > 0
    objective = base.model.objective(x[keep], t_x[keep], T[keep], w[keep])
    if objective is None:
        return None

    def gradient(phi):
        """The log-likelihood at ``exp(phi)`` and the gradient of -LL in log theta (None if not finite)."""
        out = objective(tuple(np.exp(phi)))
        if out is None:
            return None
        ll, grad = float(out[0]), np.asarray(out[1], dtype=float)
        if not (np.isfinite(ll) and np.all(np.isfinite(grad))):
            return None
        return ll, -grad * np.exp(phi)

    phi = np.log(theta)
    B = cov_log                      # the inverse Jacobian of the gradient map, updated by Broyden's rule
    with np.errstate(all="ignore"):
        now = gradient(phi)
        if now is None:
            return None
        ll, G = now
        for _ in range(int(max_iter)):
            step = B @ G
            size = np.max(np.abs(step))
            if not np.isfinite(size):
                return None
            if size < tol:
                # a zero of the gradient also in the full-data metric (B stays close to H_0^{-1} near it)
                if np.max(np.abs(cov_log @ G)) > _NEWTON_CHORD_TOL:
                    return None
                phi = phi - step
                break
            if size > _NEWTON_MAX_STEP:   # a far optimum (a weakly identified model): the optimiser instead
                return None
            new = gradient(phi - step)
            if new is None:
                return None
            s, y = -step, new[1] - G
            By = B @ y
            denom = s @ By
            if np.isfinite(denom) and abs(denom) > 1e-300:
                B = B + np.outer(s - By, s @ B) / denom
            phi, (ll, G) = phi - step, new
        else:
            return None
    se, ci, cv = _no_se(names)
    # (the log-likelihood is the last evaluated one, a step below ``tol`` before the returned parameters:
    # it differs from the value there by about |gradient x step|, far below any reported digit)
    return dataclasses.replace(base, params=pd.Series(np.exp(phi), index=names, name=base.params.name), se=se,
                               ci95=ci, cov=cv, log_likelihood=ll, aic=np.nan, bic=np.nan,
                               n_unique=int(keep.sum()), message="Newton iterations from the full-data fit")


class ConstantSpend:
    """A constant value per purchase in place of a spend model, so that :func:`clv` and
    :func:`bootstrap` (the one discounting formula) value a log without amounts: ``expected_spend``
    is ``value`` for every customer (1 counts discounted purchases)."""

    def __init__(self, value: float):
        self.value = float(value)
        self.params = pd.Series(dtype=float)

    def expected_spend(self, x, m_x=None) -> np.ndarray:
        return np.full(np.shape(np.asarray(x, dtype=float)), self.value)


# ---------------------------------------------------------------------------
# one customer over time, baselines, tracking
# ---------------------------------------------------------------------------

def p_alive_history(
    model_fit: FittedModel,
    purchase_dates,
    start=None,
    end=None,
    time_unit: str = "W",
    step_days: int = 7,
) -> pd.DataFrame:
    """P(alive) of one customer along a time grid (replaces lifetimes' ``plot_history_alive``).

    At each grid date ``s`` (from ``start`` to ``end`` every ``step_days``
    days, plus the purchase days themselves) the customer's history up to
    ``s`` is summarised per day as in :mod:`helpers.summary` (``x`` = repeat
    purchase days so far, ``t_x``, ``T = s - first purchase``) and
    ``model_fit.p_alive`` is evaluated.

    Parameters
    ----------
    model_fit : FittedModel
    purchase_dates : array_like of dates
        The customer's purchase dates (any order; same-day purchases count once).
    start, end : date, optional
        Grid range (default: first purchase day to last purchase day + 26 weeks).
    time_unit : {"D", "W", "M"}
        Unit the model was fitted in.
    step_days : int

    Returns
    -------
    DataFrame with ``date, p_alive, x, t_x, T``.
    """
    days = pd.to_datetime(pd.Series(np.asarray(purchase_dates).ravel())).dt.normalize()
    if days.isna().any() or len(days) == 0:
        raise ValueError("purchase_dates must be one or more valid dates")
    days = np.sort(days.unique())
    first = pd.Timestamp(days[0])
    start = first if start is None else max(pd.Timestamp(start).normalize(), first)
    end = (pd.Timestamp(days[-1]) + pd.Timedelta(weeks=26)) if end is None else pd.Timestamp(end).normalize()
    if end < start:
        raise ValueError("end must not be before start")
    if step_days <= 0:
        raise ValueError("step_days must be > 0")
    grid = pd.date_range(start, end, freq=f"{int(step_days)}D")
    extra = pd.DatetimeIndex(days[(days >= np.datetime64(start)) & (days <= np.datetime64(end))])
    grid = grid.union(extra).union(pd.DatetimeIndex([end]))
    unit = days_per_unit(time_unit)
    g = grid.values
    n_upto = np.searchsorted(days, g, side="right")             # purchase days <= s
    last = days[np.maximum(n_upto - 1, 0)]
    x = (n_upto - 1).astype(float)
    t_x = (last - np.datetime64(first)) / np.timedelta64(1, "D") / unit
    T = (g - np.datetime64(first)) / np.timedelta64(1, "D") / unit
    pa = model_fit.p_alive(x, t_x, T)
    return pd.DataFrame({"date": grid, "p_alive": pa, "x": x, "t_x": t_x, "T": T})


def naive_baseline_holdout(summary: pd.DataFrame) -> pd.Series:
    """Naive holdout forecast: calibration purchase rate times holdout length, ``x / T * t_star``.

    Customers with ``T == 0`` get 0.
    """
    for c in ("x", "T", "t_star"):
        if c not in summary.columns:
            raise ValueError(f"summary is missing column {c!r} (use helpers.summary.calibration_holdout)")
    T = summary["T"].to_numpy(float)
    rate = np.divide(summary["x"].to_numpy(float), T, out=np.zeros_like(T), where=T > 0)
    return pd.Series(rate * summary["t_star"].to_numpy(float), index=summary.index, name="naive")


def holdout_errors(actual, predicted) -> dict:
    """Mean absolute error, root mean squared error and mean bias (predicted - actual)."""
    a = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if a.shape != p.shape:
        raise ValueError(f"actual and predicted differ in shape: {a.shape} vs {p.shape}")
    e = p - a
    return {"mae": float(np.mean(np.abs(e))), "rmse": float(np.sqrt(np.mean(e ** 2))),
            "bias": float(np.mean(e)), "n": int(a.size)}


def expected_tracking(
    model_fit: FittedModel,
    first_purchase_dates,
    start=None,
    n_periods: int | None = None,
    period_days: int = 7,
    time_unit: str = "W",
    end=None,
) -> pd.DataFrame:
    """Model-expected cumulative repeat purchases of a cohort, per period (tracking plot).

    ``E[cum repeat purchases by s] = sum_i E[X(s - first_i)]`` (unconditional
    expectation, e.g. FHL 2005a eq. 9), evaluated at each period end
    ``s_k = start + k * period_days`` and grouped by first-purchase day, so
    the cost is (#distinct first days) x (#periods).  Periods align with
    :func:`helpers.summary.repeat_transactions_by_period`.

    Parameters
    ----------
    model_fit : FittedModel
    first_purchase_dates : array_like of dates
    start : date, optional
        Start of period 1 (default: earliest first purchase).
    n_periods : int, optional
        Number of periods (or give ``end``).
    period_days : int
    time_unit : {"D", "W", "M"}
        Unit the model was fitted in.

    Returns
    -------
    DataFrame with ``period, period_start, period_end, expected_cumulative, expected``.
    """
    firsts = pd.to_datetime(pd.Series(np.asarray(first_purchase_dates).ravel())).dt.normalize()
    if firsts.isna().any() or len(firsts) == 0:
        raise ValueError("first_purchase_dates must be one or more valid dates")
    start = firsts.min() if start is None else pd.Timestamp(start).normalize()
    if n_periods is None:
        if end is None:
            raise ValueError("give n_periods or end")
        n_periods = int(np.ceil(((pd.Timestamp(end).normalize() - start).days + 1) / period_days))
    if n_periods < 1:
        raise ValueError("n_periods must be >= 1")
    uniq, cnt = np.unique(firsts.values, return_counts=True)
    k = np.arange(1, n_periods + 1)
    ends = np.datetime64(start) + (k * period_days).astype("timedelta64[D]")
    age_days = (ends[None, :] - uniq[:, None]) / np.timedelta64(1, "D")           # (n_first, n_periods)
    t = np.clip(age_days, 0.0, None) / days_per_unit(time_unit)
    E = np.where(age_days > 0, model_fit.expected_purchases_new(t), 0.0)
    cum = cnt @ E
    return pd.DataFrame({
        "period": k,
        "period_start": start + pd.to_timedelta((k - 1) * period_days, unit="D"),
        "period_end": pd.DatetimeIndex(ends) - pd.Timedelta(days=1),
        "expected_cumulative": cum,
        "expected": np.diff(np.concatenate([[0.0], cum])),
    })


# ---------------------------------------------------------------------------
# month by month: expected purchases and P(alive) over a future horizon
# ---------------------------------------------------------------------------

def p_alive_future(model_fit: FittedModel, t, x, t_x=None, T=None) -> np.ndarray:
    """P(alive at T + t | x, t_x, T): the probability that a customer is still alive ``t`` time units from now.

    ``P(alive at T+t | data) = P(alive at T | data) * P(survive (T, T+t] | alive at T, data)``.

    The survival factor is the model's ``survival_given_alive`` (derivations
    in its docstring: BG/NBD and MBG/NBD a Gauss hypergeometric function of the
    Beta posterior of the drop-out probability, Pareto/NBD
    ``((beta + T) / (beta + T + t))^s``); this function only delegates to
    :meth:`helpers.models.FittedModel.p_alive_future`.

    ``S(0) = 1``, so at ``t = 0`` this is :meth:`FittedModel.p_alive`.  The
    tests check the BG/NBD and MBG/NBD formulas against Gauss-Jacobi
    quadrature of the Beta integral and all three against simulation.

    Parameters
    ----------
    model_fit : FittedModel
    t : float or 1-D array
        Time(s) after ``T``, in the model's time unit.
    x, t_x, T : array_like, or a summary DataFrame as ``x``

    Returns
    -------
    ndarray of shape ``(n,)`` for scalar ``t``, ``(n, len(t))`` for a 1-D ``t``.
    """
    return model_fit.p_alive_future(t, x, t_x, T)


def monthly_expectations(
    model_fit: FittedModel,
    summary: pd.DataFrame,
    horizon_months: int = 12,
    time_unit: str | None = "W",
    days_per_month: float = DAYS_PER_MONTH,
    alive: str = "mean",
    nodes: int = 5,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Expected purchases and P(alive) of each customer in each future month.

    Month ``m`` (1..H) runs from ``t_{m-1}`` to ``t_m`` after the customer's
    ``T`` (the end of the data), ``t_m = m * days_per_month / days(time_unit)``
    exactly as in :func:`clv`.  Everything is computed once per unique
    ``(x, t_x, T)`` row (the survival part once per unique ``(x, T)``) and
    broadcast back to the customers.

    Parameters
    ----------
    model_fit : FittedModel
    summary : DataFrame
        ``x, t_x, T`` per customer, in ``time_unit``.
    horizon_months : int
    time_unit : {"D", "W", "M"}
        Unit of the model's time axis (checked against the fit).
    days_per_month : float
    alive : {"mean", "start", "end"}
        What "P(alive) in month m" means: ``"mean"`` (default) the expected
        fraction of the month the customer is alive,
        ``(1/L) * integral_{t_{m-1}}^{t_m} P(alive at T+s) ds`` (Gauss-Legendre
        with ``nodes`` points per month), i.e. the expected alive
        customer-months, the right weight for a cost per alive month;
        ``"start"``/``"end"``: P(alive) at the start/end of the month.
    nodes : int
        Gauss-Legendre points per month for ``alive="mean"``.

    Returns
    -------
    purchases_by_month, p_alive_by_month : DataFrame (n_customers, H)
        Indexed like ``summary``, columns ``1..H`` (name ``"month"``).
        ``purchases_by_month`` holds ``E[X(t_m)] - E[X(t_{m-1})]`` (rows sum to
        :meth:`FittedModel.expected_purchases` at ``t_H``).
    """
    if time_unit is None:
        time_unit = model_fit.time_unit or "W"
    if model_fit.time_unit is not None and model_fit.time_unit != time_unit:
        raise ValueError(f"the model was fitted in time unit {model_fit.time_unit!r} but time_unit={time_unit!r}")
    if alive not in ("mean", "start", "end"):
        raise ValueError(f"alive must be 'mean', 'start' or 'end', got {alive!r}")
    if int(nodes) < 1:
        raise ValueError("nodes must be >= 1")
    t_grid = month_grid(horizon_months, time_unit, days_per_month)
    H = len(t_grid) - 1
    x, t_x, T = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    model_fit._args(x, t_x, T)  # validation only
    (xu, txu, Tu), inverse, _ = unique_rows(x, t_x, T)
    th = model_fit.theta
    with np.errstate(all="ignore"):
        G, inv_g, h = model_fit.model.expected_purchases_parts(th, t_grid[1:], xu, txu, Tu)
        E = G[inv_g] * h[:, None]
    E = np.concatenate([np.zeros((len(xu), 1)), E], axis=1)
    purchases = np.diff(E, axis=1)
    if alive == "mean":
        u, wts = np.polynomial.legendre.leggauss(int(nodes))
        frac = 0.5 * (u + 1.0)                                   # nodes in (0, 1) of each month
        s = (t_grid[:-1, None] + frac[None, :] * np.diff(t_grid)[:, None]).ravel()
        pa = p_alive_future(model_fit, s, xu, txu, Tu).reshape(len(xu), H, len(frac))
        p_alive_m = pa @ (0.5 * wts)
    else:
        s = t_grid[:-1] if alive == "start" else t_grid[1:]
        p_alive_m = p_alive_future(model_fit, s, xu, txu, Tu)
    cols = pd.RangeIndex(1, H + 1, name="month")
    return (pd.DataFrame(purchases[inverse], index=summary.index, columns=cols),
            pd.DataFrame(p_alive_m[inverse], index=summary.index, columns=cols))
