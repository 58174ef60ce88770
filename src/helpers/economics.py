"""Retention versus acquisition economics on the BG/NBD + Gamma-Gamma models.

Is keeping a customer cheaper than winning one, by how much, and when does the
answer flip?  Every quantity here is computed from fitted models
(:mod:`helpers.models`) and explicit assumptions (:class:`Assumptions`); the
notebook ``03-retention-vs-acquisition`` only calls these functions.

Time and money conventions (as :mod:`helpers.value`)
----------------------------------------------------
A month is ``365.25 / 12`` days; month ``m`` ends at ``t_m = m * 365.25 / 12 /
days(time_unit)`` model time units (4.348 weeks for a weekly model).  Cash
flows of month ``m`` are discounted by ``(1 + d)^-m`` (end of month); the first
purchase of a new customer happens at month 0 and is not discounted.  Money is
gross margin: ``margin * spend``.

Value of a new customer (break-even acquisition cost)
-----------------------------------------------------
``V_new = margin * s1 + margin * E[Z] * sum_m (E[X(t_m)] - E[X(t_{m-1})]) / (1 + d)^m``
with ``E[X(t)]`` the unconditional BG/NBD expectation (FHL 2005a, eq. 9) of
repeat purchases of a customer acquired at time 0, ``E[Z] = p gamma / (q - 1)``
the Gamma-Gamma population mean spend, and ``s1`` the spend of the first
purchase (default ``E[Z]`` as well).  A firm that pays more than ``V_new`` to
acquire a customer destroys value over the horizon: ``V_new`` is the
break-even acquisition cost.  Its interval comes from the bootstrap parameter
draws of :func:`helpers.value.bootstrap` (:func:`new_customer_value_interval`).

The retention lever and how it is computed (exact, no approximation)
--------------------------------------------------------------------
In the BG/NBD an alive customer buys at Poisson rate ``lambda ~ Gamma(r,
alpha)`` and after every repeat purchase drops out with probability ``p ~
Beta(a, b)``.  A retention programme replaces each customer's ``p`` by
``p' = g(p)``; two forms are supported (``mode``):

``"dropout"``   ``p' = (1 - delta) p``                 (relative cut in drop-out probability)
``"retention"`` ``p' = max(0, 1 - (1 + delta)(1 - p))`` (relative increase in retention probability
                                                        ``1 - p``, capped at 1)

Given ``(lambda, p')`` and alive at the start, the number of purchases in the
next ``t`` is ``min(J, N)``, ``J ~ Geometric(p')``, ``N ~ Poisson(lambda t)``,
so ``E[X(t) | lambda, p'] = (1 - exp(-lambda p' t)) / p'`` and ``P(alive at t |
lambda, p') = exp(-lambda p' t)`` (FHL 2005a, section 4).  Integrating
``lambda ~ Gamma(R, A)`` in closed form:

    E[X(t) | p'] = (1 - (A / (A + p' t))^R) / p'      (-> R t / A as p' -> 0)
    P(alive at t | p') = (A / (A + p' t))^R

and the remaining one-dimensional integral over ``p ~ Beta(a, B)`` is done by
Gauss-Jacobi quadrature (weight ``p^(a-1) (1-p)^(B-1)`` absorbed exactly; the
interval is split where ``g`` hits 0 or 1, so the kink of the capped form is
integrated exactly too).  With ``delta = 0`` this reproduces FHL eq. (9) and
(10) to ~1e-10 (tested).

*New cohort*: ``R, A, B = r, alpha, b``, customer alive at time 0.
*Existing base* (customer with history ``x, t_x, T``): the posterior over
``(lambda, p)`` comes from the *unmodified* model (the history happened
without the programme).  Given alive at ``T`` the posterior is
``lambda ~ Gamma(r + x, alpha + T)`` independent of ``p ~ Beta(a, b + x)``;
so ``E[future X(t) | history, lever] = P(alive | history) * E_p[E[X(t) | g(p)]]``
with ``R, A, B = r + x, alpha + T, b + x``.  The programme acts on future
drop-out chances only.  :func:`lever_simulation_check` verifies both by
simulating the generative process (:func:`helpers.simulate.simulate_bgnbd`
for the histories, then a future with and without the programme on common
random numbers).

The common "shift the Beta at fixed a + b" approximation (``a' = a m'/m``,
``b' = a + b - a'`` with ``m, m'`` the mean drop-out before/after) is available
as :func:`shifted_beta` for comparison only; :func:`shifted_beta_error`
quantifies its error against the exact value.

Costs, referrals, comparisons
-----------------------------
* Programme cost: ``c_r`` per targeted customer per month, discounted; with
  ``cost_on="targeted"`` every targeted customer is charged every month (a
  firm cannot tell who has silently left), with ``cost_on="alive"`` only the
  expected alive customers (start of month, under the programme).
* Referral (seed 000): ``referral_rate`` = expected new customers recruited by
  each *retained* customer, a customer alive at the end of the horizon; each
  is worth ``V_new`` discounted from the horizon end; one generation only.
  The retention lever earns it on the extra customers alive at the horizon
  end, a new customer on their own probability of being alive then.
* Cost per unit of equity: retention = discounted programme cost / (equity
  gain + referral value); acquisition = ``c_a / (V_new + referral value)``.
  ``advantage = cost_per_equity_acquisition / cost_per_equity_retention``:
  above 1 retention creates equity more cheaply.  Both equities scale with the
  margin, so the advantage does not depend on it (the returns do).
* Break-even frontier: the retention cost ``c_r*(c_a)`` at which both levers
  cost the same per unit of equity, linear in ``c_a``.
* Price cut (seed 001): a price cut of ``k`` (fraction of price) turns the
  margin per purchase from ``margin * s`` into ``(margin - k) * s``; to break
  even the programme it pays for must raise equity by ``margin / (margin - k)``
  (assumes the cut changes nothing but retention).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import optimize

from .models import FittedModel, GammaGamma, GammaGammaFit, get_model, unique_rows
from .models.bgnbd import BGNBD
from .models.bgnbd import _beta_nodes  # noqa: F401  (the lever's quadrature; tests reach it here)
from .value import DAYS_PER_MONTH, clv_kernel, discount_factors, month_grid

__all__ = [
    "DAYS_PER_MONTH",
    "MODES",
    "DEFAULT_RANGES",
    "Assumptions",
    "month_grid",
    "dropout_map",
    "shifted_beta",
    "shifted_beta_error",
    "expected_purchases_lever",
    "alive_probability_lever",
    "new_customer_cashflows",
    "new_customer_value",
    "new_customer_value_interval",
    "payback_months",
    "RetentionEffect",
    "retention_effect",
    "retention_grid",
    "programme_cost",
    "retention_payback",
    "referral_value",
    "cost_per_equity",
    "breakeven_frontier",
    "price_cut_breakeven",
    "Scenario",
    "sensitivity",
    "simulate_continuation",
    "lever_simulation_check",
]

#: Supported forms of the retention lever (see module docstring).
MODES = ("dropout", "retention")

#: One-at-a-time sensitivity ranges (low, high) around the defaults.  Margins
#: of 15-50% span discount retail to specialist goods; 0.5-2% a month is a
#: 6-27% annual cost of capital; 12-36 months are the usual planning horizons;
#: costs are halved and doubled; delta 5-20% spans modest to ambitious
#: programmes; up to 0.5 referred customers per retained customer.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "margin": (0.15, 0.5),
    "monthly_discount_rate": (0.005, 0.02),
    "horizon_months": (12, 36),
    "acquisition_cost": (10.0, 40.0),
    "retention_cost": (0.25, 1.0),
    "delta": (0.05, 0.2),
    "referral_rate": (0.0, 0.5),
}

_DESCRIPTIONS = {
    "margin": "gross margin on revenue",
    "monthly_discount_rate": "discount rate per month",
    "horizon_months": "valuation horizon, months",
    "acquisition_cost": "cost of acquiring one customer (currency of the data)",
    "retention_cost": "programme cost per targeted customer per month",
    "delta": "relative strength of the retention programme",
    "mode": "'dropout': p' = (1-delta) p; 'retention': 1-p' = (1+delta)(1-p)",
    "referral_rate": "new customers referred per retained customer",
    "cost_on": "programme charged on 'targeted' (all) or expected 'alive' customers",
    "time_unit": "model time unit",
    "days_per_month": "days per month",
}


# ---------------------------------------------------------------------------
# assumptions and grids
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Assumptions:
    """Every economic assumption of a scenario (defaults = the notebook's)."""

    margin: float = 0.3
    monthly_discount_rate: float = 0.01
    horizon_months: int = 24
    acquisition_cost: float = 20.0
    retention_cost: float = 0.5
    delta: float = 0.1
    mode: str = "dropout"
    referral_rate: float = 0.0
    cost_on: str = "targeted"
    time_unit: str = "W"
    days_per_month: float = DAYS_PER_MONTH

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.cost_on not in ("targeted", "alive"):
            raise ValueError(f"cost_on must be 'targeted' or 'alive', got {self.cost_on!r}")
        if int(self.horizon_months) != self.horizon_months or self.horizon_months < 1:
            raise ValueError("horizon_months must be a positive whole number")
        if self.monthly_discount_rate <= -1:
            raise ValueError("monthly_discount_rate must be > -1")
        for k in ("acquisition_cost", "retention_cost", "referral_rate"):
            if getattr(self, k) < 0:
                raise ValueError(f"{k} must be >= 0")

    def replace(self, **changes) -> "Assumptions":
        """A copy with some fields changed (``horizon_months`` rounded to a whole number)."""
        if "horizon_months" in changes:
            changes["horizon_months"] = int(round(changes["horizon_months"]))
        return replace(self, **changes)

    def table(self) -> pd.DataFrame:
        """The assumptions as a reviewer-readable table (value and meaning)."""
        d = asdict(self)
        return pd.DataFrame({"value": [d[k] for k in d], "meaning": [_DESCRIPTIONS[k] for k in d]},
                            index=pd.Index(list(d), name="assumption"))


def dropout_map(delta: float, mode: str = "dropout") -> tuple[float, float]:
    """The lever as ``p' = clip(s p + c, 0, 1)``; returns ``(s, c)``.

    ``"dropout"``: ``s = 1 - delta, c = 0`` (``delta`` in ``[0, 1]``; negative
    values raise drop-out).  ``"retention"``: ``s = 1 + delta, c = -delta``
    (``delta >= -1``).
    """
    if mode == "dropout":
        if delta > 1:
            raise ValueError("a relative drop-out cut delta must be <= 1")
        return 1.0 - float(delta), 0.0
    if mode == "retention":
        if delta < -1:
            raise ValueError("a relative retention change delta must be >= -1")
        return 1.0 + float(delta), -float(delta)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _lever_model(model):
    """The model and ``theta`` of the retention lever: a fitted model whose model has the lever, or BG/NBD parameters.

    ``model`` is a :class:`FittedModel` (its registered model must provide
    ``lever_expectations``/``lever_totals``; today BG/NBD) or BG/NBD
    parameters ``(r, alpha, a, b)`` as a Series, mapping or 4-tuple.
    """
    if isinstance(model, FittedModel):
        m = model.model
        if not hasattr(m, "lever_expectations"):
            raise ValueError(f"the retention lever is implemented for the BG/NBD, got {model.label}")
        return m, tuple(float(v) for v in model.theta)
    m = BGNBD()
    if isinstance(model, (pd.Series, Mapping)):
        return m, tuple(float(model[k]) for k in m.param_names)
    th = tuple(float(v) for v in model)
    if len(th) != len(m.param_names):
        raise ValueError("BG/NBD parameters are (r, alpha, a, b)")
    return m, th


def _mean_spend(spend) -> float:
    """Population mean spend per purchase: from a Gamma-Gamma fit, its ``p, q, gamma``, or a number."""
    if isinstance(spend, GammaGammaFit):
        return float(spend.population_mean_spend())
    if isinstance(spend, (pd.Series, Mapping)):
        gg = GammaGamma()
        return float(gg.population_mean_spend(gg.theta_of(dict(spend))))
    return float(spend)


def expected_purchases_lever(model, t, delta: float = 0.0, mode: str = "dropout",
                             x=None, t_x=None, T=None, n_nodes: int = 64) -> np.ndarray:
    """Expected (repeat) purchases in the next ``t`` time units under the lever (BG/NBD, exact).

    Without ``x, t_x, T``: a new customer acquired at time 0 (``delta=0`` gives
    FHL 2005a eq. 9).  With them: customers with these histories, from their
    age ``T`` on (``delta=0`` gives eq. 10).  Returns shape ``(len(t),)`` or
    ``(n_customers, len(t))`` for array ``t``; a scalar ``t`` drops that axis.
    """
    m, theta = _lever_model(model)
    s, c = dropout_map(delta, mode)
    EX, _ = m.lever_expectations(theta, np.atleast_1d(t), s, c, x, t_x, T, n_nodes)
    return EX[..., 0] if np.ndim(t) == 0 else EX


def alive_probability_lever(model, t, delta: float = 0.0, mode: str = "dropout",
                            x=None, t_x=None, T=None, n_nodes: int = 64) -> np.ndarray:
    """P(alive) ``t`` time units ahead under the lever (new customer, or per history row)."""
    m, theta = _lever_model(model)
    s, c = dropout_map(delta, mode)
    _, S = m.lever_expectations(theta, np.atleast_1d(t), s, c, x, t_x, T, n_nodes)
    return S[..., 0] if np.ndim(t) == 0 else S


def shifted_beta(a: float, b: float, delta: float, mode: str = "dropout") -> tuple[float, float]:
    """The approximation: a Beta with the lever's mean drop-out and the same ``a + b``.

    For ``"dropout"`` the new mean is exactly ``(1 - delta) a / (a + b)``; for
    ``"retention"`` it is ``max(0, (1 + delta) m - delta)`` (ignoring the cap),
    floored at a tiny positive value.  Compare with the exact computation via
    :func:`shifted_beta_error`.
    """
    s, c = dropout_map(delta, mode)
    m = a / (a + b)
    m2 = min(max(s * m + c, 1e-9), 1 - 1e-9)
    a2 = m2 * (a + b)
    return a2, a + b - a2


def shifted_beta_error(model, t, delta: float, mode: str = "dropout") -> dict:
    """Change in a new customer's E[X(t)]: exact versus the shifted-Beta approximation.

    Returns ``exact_change``, ``approx_change`` and ``relative_error`` of the
    approximated change.
    """
    _, (r, alpha, a, b) = _lever_model(model)
    base = expected_purchases_lever((r, alpha, a, b), t)
    exact = expected_purchases_lever((r, alpha, a, b), t, delta, mode) - base
    a2, b2 = shifted_beta(a, b, delta, mode)
    approx = expected_purchases_lever((r, alpha, a2, b2), t) - base
    return {"exact_change": float(exact), "approx_change": float(approx),
            "relative_error": float((approx - exact) / exact) if exact != 0 else float("nan")}


# ---------------------------------------------------------------------------
# a new customer
# ---------------------------------------------------------------------------

def new_customer_cashflows(
    model,
    spend,
    margin: float = 0.3,
    monthly_discount_rate: float = 0.01,
    horizon_months: int = 24,
    time_unit: str = "W",
    days_per_month: float = DAYS_PER_MONTH,
    delta: float = 0.0,
    mode: str = "dropout",
    first_purchase_spend: float | None = None,
) -> pd.DataFrame:
    """Month-by-month expected discounted margin of one newly acquired customer.

    Parameters
    ----------
    model : FittedModel (BG/NBD) or (r, alpha, a, b)
    spend : GammaGammaFit, (p, q, gamma) mapping, or a mean spend per purchase
    margin, monthly_discount_rate, horizon_months, time_unit, days_per_month
        See the module docstring.
    delta, mode
        Retention lever applied from acquisition on (0 = none).
    first_purchase_spend : float, optional
        Spend of the first purchase (default: the population mean spend).

    Returns
    -------
    DataFrame indexed by month ``0..H``: ``purchases`` (expected purchases in
    the month; month 0 = the first purchase), ``alive`` (P(alive) at the month
    end), ``discount`` (factor), ``margin`` (discounted expected margin of the
    month) and ``cumulative`` (running sum; the last value is ``V_new``).
    """
    m, theta = _lever_model(model)
    ez = _mean_spend(spend)
    s1 = ez if first_purchase_spend is None else float(first_purchase_spend)
    t = month_grid(horizon_months, time_unit, days_per_month)
    EX, S = m.lever_expectations(theta, t[1:], *dropout_map(delta, mode))
    purchases = np.concatenate([[1.0], np.diff(np.concatenate([[0.0], EX]))])
    disc = np.concatenate([[1.0], discount_factors(int(horizon_months), monthly_discount_rate)])
    value = margin * disc * np.concatenate([[s1], ez * purchases[1:]])
    return pd.DataFrame({"purchases": purchases, "alive": np.concatenate([[1.0], S]), "discount": disc,
                         "margin": value, "cumulative": np.cumsum(value)},
                        index=pd.RangeIndex(int(horizon_months) + 1, name="month"))


def new_customer_value(model, spend, margin: float = 0.3, monthly_discount_rate: float = 0.01,
                       horizon_months: int = 24, time_unit: str = "W", days_per_month: float = DAYS_PER_MONTH,
                       delta: float = 0.0, mode: str = "dropout",
                       first_purchase_spend: float | None = None) -> float:
    """Discounted expected margin of a new customer over the horizon, first purchase included.

    This is the break-even acquisition cost; see :func:`new_customer_cashflows`.
    """
    cf = new_customer_cashflows(model, spend, margin, monthly_discount_rate, horizon_months, time_unit,
                                days_per_month, delta, mode, first_purchase_spend)
    return float(cf["cumulative"].iloc[-1])


def new_customer_value_interval(boot, level: float | None = None, **kwargs) -> pd.Series:
    """Point estimate and percentile interval of :func:`new_customer_value` over bootstrap draws.

    Parameters
    ----------
    boot : helpers.value.BootstrapResult
        Its ``param_draws`` (BG/NBD and Gamma-Gamma parameters per replicate)
        and ``params["estimate"]`` (full-data fit) are used.
    level : float, optional
        Central level (default: the bootstrap's, 0.90).
    **kwargs
        Passed to :func:`new_customer_value` (margin, discount rate, ...).

    Returns
    -------
    Series ``estimate, lower, upper, n_draws``.
    """
    if not hasattr(get_model(boot.model), "lever_expectations"):
        raise ValueError(f"new_customer_value_interval needs a bootstrap of a model with the retention lever "
                         f"(BG/NBD), got {boot.model!r}")
    level = boot.level if level is None else level
    D = boot.param_draws
    freq = [c for c in D.columns if c[0] != "Gamma-Gamma"]
    gg = [c for c in D.columns if c[0] == "Gamma-Gamma"]

    def one(row_freq, row_gg):
        return new_customer_value(tuple(row_freq), dict(zip(("p", "q", "gamma"), row_gg)), **kwargs)

    vals = np.array([one(D.loc[i, freq].to_numpy(float), D.loc[i, gg].to_numpy(float)) for i in D.index])
    est_params = boot.params["estimate"]
    est = one(est_params.loc[freq].to_numpy(float), est_params.loc[gg].to_numpy(float))
    lo, hi = np.quantile(vals, [(1 - level) / 2, 1 - (1 - level) / 2])
    return pd.Series({"estimate": est, "lower": float(lo), "upper": float(hi), "n_draws": len(vals)},
                     name="new_customer_value")


def payback_months(cumulative, cost: float, months=None) -> float:
    """Months until a cumulative (discounted) value first covers ``cost``.

    ``cumulative[k]`` is the value accumulated by the end of ``months[k]``
    (default ``0, 1, 2, ...``).  The crossing is interpolated linearly within
    the month; 0 if ``cumulative[0] >= cost``; ``inf`` if it is never covered.
    """
    cum = np.asarray(cumulative, dtype=float)
    m = np.arange(len(cum), dtype=float) if months is None else np.asarray(months, dtype=float)
    hit = np.flatnonzero(cum >= cost)
    if len(hit) == 0:
        return float("inf")
    k = int(hit[0])
    if k == 0:
        return float(m[0])
    c0, c1 = cum[k - 1], cum[k]
    return float(m[k - 1] + (m[k] - m[k - 1]) * (cost - c0) / (c1 - c0))


# ---------------------------------------------------------------------------
# the retention lever on the base / on a cohort
# ---------------------------------------------------------------------------

@dataclass
class RetentionEffect:
    """Change in customer equity from a retention programme.

    Attributes
    ----------
    population : str
        ``"base"`` (existing customers, conditional on their histories) or
        ``"new"`` (one newly acquired customer; equity includes the first purchase).
    delta, mode : the lever.
    n_customers : int
        Customers targeted (1 for ``"new"``).
    equity_base, equity_lever : float
        Discounted expected margin over the horizon without / with the programme.
    monthly : DataFrame
        Per month ``1..H``: ``gain`` (discounted equity gain of the month),
        ``cumulative_gain``, ``alive_base``/``alive_lever`` (expected customers
        alive at the month end) and ``alive_start_lever`` (at the month start).
    assumptions : dict
        margin, monthly_discount_rate, horizon_months, time_unit.
    """

    population: str
    delta: float
    mode: str
    n_customers: int
    equity_base: float
    equity_lever: float
    monthly: pd.DataFrame
    assumptions: dict = field(default_factory=dict)

    @property
    def change(self) -> float:
        return self.equity_lever - self.equity_base

    @property
    def change_pct(self) -> float:
        return 100.0 * self.change / self.equity_base if self.equity_base else float("nan")

    @property
    def extra_retained(self) -> float:
        """Extra customers alive at the horizon end thanks to the programme."""
        m = self.monthly
        return float(m["alive_lever"].iloc[-1] - m["alive_base"].iloc[-1])

    def as_dict(self) -> dict:
        return {"population": self.population, "delta": self.delta, "mode": self.mode,
                "n_customers": self.n_customers, "equity_base": self.equity_base,
                "equity_lever": self.equity_lever, "change": self.change, "change_pct": self.change_pct,
                "extra_retained": self.extra_retained}


def retention_effect(
    model,
    spend,
    summary: pd.DataFrame | None = None,
    delta: float = 0.1,
    mode: str = "dropout",
    margin: float = 0.3,
    monthly_discount_rate: float = 0.01,
    horizon_months: int = 24,
    time_unit: str = "W",
    days_per_month: float = DAYS_PER_MONTH,
    first_purchase_spend: float | None = None,
    n_nodes: int = 32,
) -> RetentionEffect:
    """Equity change from lowering drop-out by ``delta`` (see the module docstring for the method).

    Parameters
    ----------
    model : FittedModel (BG/NBD) or (r, alpha, a, b)
    spend : GammaGammaFit
        Existing customers are valued at their conditional expected spend
        (FHL 2005b eq. 5), new ones at the population mean.
    summary : DataFrame, optional
        ``x, t_x, T, m_x`` of the existing customers, valued from the end of
        their observation (age ``T``).  ``None``: one new customer.

    Returns
    -------
    RetentionEffect
    """
    pop = _Population(model, spend, summary, horizon_months, time_unit, days_per_month, first_purchase_spend,
                      n_nodes)
    return pop.effect(delta, mode, margin, monthly_discount_rate)


class _Population:
    """A population (base or one new customer) on a month grid; caches the no-programme totals."""

    def __init__(self, model, spend, summary, horizon_months, time_unit, days_per_month,
                 first_purchase_spend=None, n_nodes=32):
        self.model, self.theta = _lever_model(model)
        self.H = int(horizon_months)
        self.t = month_grid(self.H, time_unit, days_per_month)
        self.time_unit = time_unit
        self.n_nodes = n_nodes
        self.summary = summary
        if summary is None:
            self.ez = _mean_spend(spend)
            self.first_spend = self.ez if first_purchase_spend is None else float(first_purchase_spend)
            self.n = 1
        else:
            missing = [c for c in ("x", "t_x", "T", "m_x") if c not in summary.columns]
            if missing:
                raise ValueError(f"summary is missing column(s) {missing}")
            x, t_x, T, m_x = (summary[c].to_numpy(float) for c in ("x", "t_x", "T", "m_x"))
            (self.xu, self.txu, self.Tu, mu), _, self.counts = unique_rows(x, t_x, T, m_x)
            self.sp = np.asarray(spend.expected_spend(self.xu, mu), dtype=float) * self.counts
            self.first_spend = 0.0
            self.n = int(self.counts.sum())
        self._cache = {}

    def totals(self, delta, mode):
        """(spend-weighted expected purchases, expected alive customers) on the grid t_0..t_H."""
        key = (0.0, "dropout") if delta == 0 else (float(delta), mode)
        if key not in self._cache:
            if self.summary is None:
                E, S = self.model.lever_expectations(self.theta, self.t, *dropout_map(*key), n_nodes=self.n_nodes)
                self._cache[key] = (self.ez * E, S)
            else:
                self._cache[key] = self.model.lever_totals(self.theta, self.t, *dropout_map(*key), self.xu, self.txu,
                                                           self.Tu, self.sp, self.counts, self.n_nodes)
        return self._cache[key]

    def equity(self, delta, mode, margin, rate):
        E, _ = self.totals(delta, mode)
        return float(margin * self.first_spend + clv_kernel(np.diff(E), rate, margin=margin))

    def effect(self, delta, mode, margin, rate) -> RetentionEffect:
        disc = discount_factors(self.H, rate)
        E0, alive0 = self.totals(0.0, mode)
        E1, alive1 = self.totals(delta, mode)
        inc0 = margin * np.diff(E0) * disc
        inc1 = margin * np.diff(E1) * disc
        first = margin * self.first_spend
        gain = inc1 - inc0
        monthly = pd.DataFrame({"gain": gain, "cumulative_gain": np.cumsum(gain), "alive_base": alive0[1:],
                                "alive_lever": alive1[1:], "alive_start_lever": alive1[:-1]},
                               index=pd.RangeIndex(1, self.H + 1, name="month"))
        info = {"margin": margin, "monthly_discount_rate": rate, "horizon_months": self.H,
                "time_unit": self.time_unit}
        return RetentionEffect(population="new" if self.summary is None else "base", delta=float(delta),
                               mode=mode, n_customers=self.n, equity_base=float(first + inc0.sum()),
                               equity_lever=float(first + inc1.sum()), monthly=monthly, assumptions=info)


def retention_grid(model, spend, summary=None, deltas=(0.0, 0.05, 0.1, 0.15, 0.2, 0.3),
                   modes=MODES, **kwargs) -> pd.DataFrame:
    """:func:`retention_effect` over a grid of ``delta`` and modes, one row each."""
    margin = kwargs.pop("margin", 0.3)
    rate = kwargs.pop("monthly_discount_rate", 0.01)
    pop = _Population(model, spend, summary, kwargs.pop("horizon_months", 24), kwargs.pop("time_unit", "W"),
                      kwargs.pop("days_per_month", DAYS_PER_MONTH), **kwargs)
    rows = [pop.effect(d, m, margin, rate).as_dict() for m in modes for d in deltas]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# costs, referrals, comparisons
# ---------------------------------------------------------------------------

def programme_cost(effect: RetentionEffect, cost_per_customer_month: float, cost_on: str = "targeted",
                   monthly_discount_rate: float | None = None) -> np.ndarray:
    """Discounted programme cost per month ``1..H``.

    ``cost_on="targeted"``: ``c * n_customers`` every month; ``"alive"``:
    ``c *`` expected customers alive at the start of the month (under the
    programme).
    """
    rate = effect.assumptions["monthly_discount_rate"] if monthly_discount_rate is None else monthly_discount_rate
    H = len(effect.monthly)
    disc = discount_factors(H, rate)
    if cost_on == "targeted":
        heads = np.full(H, float(effect.n_customers))
    elif cost_on == "alive":
        heads = effect.monthly["alive_start_lever"].to_numpy(float)
    else:
        raise ValueError(f"cost_on must be 'targeted' or 'alive', got {cost_on!r}")
    return cost_per_customer_month * heads * disc


def retention_payback(effect: RetentionEffect, cost_per_customer_month: float,
                      cost_on: str = "targeted") -> tuple[pd.DataFrame, float]:
    """Cumulative discounted gain and cost of a programme by month, and its payback month.

    Returns ``(table, payback)``: ``table`` indexed by month ``0..H`` with
    ``cumulative_gain``, ``cumulative_cost`` and ``net``; ``payback`` the
    (interpolated) month at which the net first turns >= 0 after month 0, or
    ``inf`` if it never does within the horizon.  (A programme that is stopped
    at the horizon earns nothing after it.)
    """
    cost = programme_cost(effect, cost_per_customer_month, cost_on)
    gain = effect.monthly["gain"].to_numpy(float)
    tab = pd.DataFrame({"cumulative_gain": np.concatenate([[0.0], np.cumsum(gain)]),
                        "cumulative_cost": np.concatenate([[0.0], np.cumsum(cost)])},
                       index=pd.RangeIndex(len(gain) + 1, name="month"))
    tab["net"] = tab["cumulative_gain"] - tab["cumulative_cost"]
    if cost_per_customer_month == 0:
        return tab, 0.0
    # month 0 has net 0 by construction; a net >= 0 already at month 1 counts as month 1
    pb = payback_months(tab["net"].to_numpy()[1:], 0.0, months=np.arange(1, len(tab)))
    return tab, pb


def referral_value(retained_customers: float, referral_rate: float, new_value: float,
                   monthly_discount_rate: float, horizon_months: int) -> float:
    """Value of referrals: ``referral_rate * retained * V_new / (1 + d)^H`` (one generation)."""
    return float(referral_rate * retained_customers * new_value / (1.0 + monthly_discount_rate) ** horizon_months)


def cost_per_equity(
    effect: RetentionEffect,
    new_value: float,
    new_alive_at_horizon: float,
    acquisition_cost: float,
    retention_cost: float,
    referral_rate: float = 0.0,
    cost_on: str = "targeted",
) -> dict:
    """Currency spent per currency of customer equity created, by each lever.

    Parameters
    ----------
    effect : RetentionEffect of the programme on the population it targets.
    new_value : float
        ``V_new`` (:func:`new_customer_value`, same assumptions).
    new_alive_at_horizon : float
        P(a new customer is alive at the horizon end) (for referrals).
    acquisition_cost, retention_cost : float
        ``c_a`` per acquired customer; ``c_r`` per targeted customer-month.
    referral_rate : float
    cost_on : {"targeted", "alive"}

    Returns
    -------
    dict with ``retention``, ``acquisition`` (cost per unit of equity; ``inf``
    when the lever creates none), ``advantage`` (= acquisition / retention;
    > 1: retention is cheaper), the equities and costs behind them, and
    ``frontier_slope`` (break-even ``c_r`` per unit of ``c_a``).
    """
    a = effect.assumptions
    rate, H = a["monthly_discount_rate"], a["horizon_months"]
    unit_cost = float(programme_cost(effect, 1.0, cost_on).sum())
    ref_ret = referral_value(effect.extra_retained, referral_rate, new_value, rate, H)
    ref_new = referral_value(new_alive_at_horizon, referral_rate, new_value, rate, H)
    eq_ret = effect.change + ref_ret
    eq_acq = new_value + ref_new
    cost_ret = retention_cost * unit_cost
    cpe_ret = cost_ret / eq_ret if eq_ret > 0 else float("inf")
    cpe_acq = acquisition_cost / eq_acq if eq_acq > 0 else float("inf")
    if cpe_ret == 0:
        adv = float("inf")
    else:
        adv = cpe_acq / cpe_ret if np.isfinite(cpe_ret) else 0.0
    slope = eq_ret / (eq_acq * unit_cost) if eq_acq > 0 and unit_cost > 0 else float("nan")
    return {"retention": cpe_ret, "acquisition": cpe_acq, "advantage": adv,
            "retention_equity": eq_ret, "acquisition_equity": eq_acq,
            "retention_programme_cost": cost_ret, "referral_value_retention": ref_ret,
            "referral_value_acquisition": ref_new, "cost_units": unit_cost, "frontier_slope": slope}


def breakeven_frontier(cpe: dict, acquisition_costs) -> pd.DataFrame:
    """Pairs ``(c_a, c_r*)`` at which both levers cost the same per unit of equity.

    ``c_r* = c_a * frontier_slope``, from :func:`cost_per_equity`.  Below the
    line (cheaper programme) retention is the more efficient lever.
    """
    ca = np.asarray(acquisition_costs, dtype=float)
    return pd.DataFrame({"acquisition_cost": ca, "retention_cost": ca * cpe["frontier_slope"]})


def price_cut_breakeven(
    model,
    spend,
    summary: pd.DataFrame | None = None,
    discounts=(0.05, 0.10, 0.15, 0.20),
    margin: float = 0.3,
    monthly_discount_rate: float = 0.01,
    horizon_months: int = 24,
    time_unit: str = "W",
    days_per_month: float = DAYS_PER_MONTH,
    n_nodes: int = 32,
) -> pd.DataFrame:
    """The retention uplift a price cut must buy to leave customer equity unchanged.

    A cut of ``k`` (fraction of price) turns the margin per unit of original
    spend from ``margin`` into ``margin - k``; equity breaks even when the
    programme multiplies the equity by ``margin / (margin - k)``.  Solved for
    ``delta`` in both modes (root finding on :func:`retention_effect`).

    Returns
    -------
    DataFrame indexed by ``discount``: ``margin_after`` (gross margin on the
    discounted price, ``(margin - k) / (1 - k)``), ``equity_multiplier``,
    ``required_dropout_cut`` and ``required_retention_increase`` (relative, the
    latter searched up to 19, i.e. retention x 20;
    NaN when impossible, e.g. ``k >= margin`` or even no drop-out at all is
    not enough within the horizon).
    """
    pop = _Population(model, spend, summary, horizon_months, time_unit, days_per_month, n_nodes=n_nodes)
    base = pop.equity(0.0, "dropout", 1.0, monthly_discount_rate)

    def ratio(d, mode):
        return pop.equity(d, mode, 1.0, monthly_discount_rate) / base

    bounds = {"dropout": 1.0, "retention": 19.0}   # retention x20: only p > 0.95 can still drop
    max_ratio = {m: ratio(bounds[m], m) for m in MODES}
    rows = []
    for k in discounts:
        k = float(k)
        row = {"discount": k, "margin_after": (margin - k) / (1 - k) if k < 1 else float("nan")}
        if k >= margin:
            row.update({"equity_multiplier": float("inf"), "required_dropout_cut": float("nan"),
                        "required_retention_increase": float("nan")})
            rows.append(row)
            continue
        target = margin / (margin - k)
        row["equity_multiplier"] = target
        for m, col in (("dropout", "required_dropout_cut"), ("retention", "required_retention_increase")):
            if max_ratio[m] < target:
                row[col] = float("nan")
            else:
                row[col] = optimize.brentq(lambda d: ratio(d, m) - target, 0.0, bounds[m], xtol=1e-5)
        rows.append(row)
    return pd.DataFrame(rows).set_index("discount")


# ---------------------------------------------------------------------------
# a whole scenario and its sensitivity
# ---------------------------------------------------------------------------

@dataclass
class Scenario:
    """Fitted models, the customer base and the assumptions: evaluates every headline metric."""

    model: FittedModel
    spend: GammaGammaFit
    summary: pd.DataFrame
    assumptions: Assumptions = field(default_factory=Assumptions)
    first_purchase_spend: float | None = None
    n_nodes: int = 32
    _populations: dict = field(default_factory=dict, init=False, repr=False)

    def evaluate(self, **overrides) -> dict:
        """Headline metrics under the assumptions (with ``overrides`` applied).

        Keys: ``new_customer_value``, ``acquisition_payback_months``,
        ``equity_base``, ``equity_change``, ``equity_change_pct``,
        ``programme_cost``, ``retention_payback_months``, ``cost_per_equity_retention``,
        ``cost_per_equity_acquisition``, ``advantage`` (acquisition / retention
        cost per equity; > 1 retention cheaper), ``frontier_slope``,
        ``retention_return`` (equity per currency of programme cost) and
        ``acquisition_return`` (equity per currency of acquisition cost).
        """
        A = self.assumptions.replace(**overrides) if overrides else self.assumptions
        kw = dict(margin=A.margin, monthly_discount_rate=A.monthly_discount_rate,
                  horizon_months=A.horizon_months, time_unit=A.time_unit, days_per_month=A.days_per_month)
        cf = new_customer_cashflows(self.model, self.spend, first_purchase_spend=self.first_purchase_spend, **kw)
        v_new = float(cf["cumulative"].iloc[-1])
        key = (A.horizon_months, A.time_unit, A.days_per_month)
        if key not in self._populations:
            self._populations[key] = _Population(self.model, self.spend, self.summary, A.horizon_months,
                                                 A.time_unit, A.days_per_month, n_nodes=self.n_nodes)
        eff = self._populations[key].effect(A.delta, A.mode, A.margin, A.monthly_discount_rate)
        cpe = cost_per_equity(eff, v_new, float(cf["alive"].iloc[-1]), A.acquisition_cost, A.retention_cost,
                              A.referral_rate, A.cost_on)
        _, pb_ret = retention_payback(eff, A.retention_cost, A.cost_on)
        return {
            "new_customer_value": v_new,
            "acquisition_payback_months": payback_months(cf["cumulative"], A.acquisition_cost),
            "equity_base": eff.equity_base,
            "equity_change": eff.change,
            "equity_change_pct": eff.change_pct,
            "programme_cost": cpe["retention_programme_cost"],
            "retention_payback_months": pb_ret,
            "cost_per_equity_retention": cpe["retention"],
            "cost_per_equity_acquisition": cpe["acquisition"],
            "advantage": cpe["advantage"],
            "frontier_slope": cpe["frontier_slope"],
            "retention_return": (cpe["retention_equity"] / cpe["retention_programme_cost"]
                                 if cpe["retention_programme_cost"] > 0 else float("inf")),
            "acquisition_return": (cpe["acquisition_equity"] / A.acquisition_cost
                                   if A.acquisition_cost > 0 else float("inf")),
        }


def sensitivity(scenario: Scenario, ranges: Mapping[str, tuple[float, float]] | None = None,
                metric: str = "advantage") -> pd.DataFrame:
    """One-at-a-time sensitivity of a metric of :meth:`Scenario.evaluate`.

    Each assumption in ``ranges`` (default :data:`DEFAULT_RANGES`) is set to
    its low and high value with all others at the scenario's values.

    Returns
    -------
    DataFrame indexed by assumption: ``base_value``, ``low``, ``high``,
    ``metric_base``, ``metric_low``, ``metric_high`` and ``swing`` (|high -
    low| of the metric), sorted by swing (largest first).
    """
    ranges = DEFAULT_RANGES if ranges is None else ranges
    base_metric = scenario.evaluate()[metric]
    rows = []
    for name, (lo, hi) in ranges.items():
        if not hasattr(scenario.assumptions, name):
            raise ValueError(f"unknown assumption {name!r}")
        m_lo = scenario.evaluate(**{name: lo})[metric]
        m_hi = scenario.evaluate(**{name: hi})[metric]
        rows.append({"assumption": name, "base_value": getattr(scenario.assumptions, name), "low": lo,
                     "high": hi, "metric_base": base_metric, "metric_low": m_lo, "metric_high": m_hi,
                     "swing": abs(m_hi - m_lo)})
    out = pd.DataFrame(rows).set_index("assumption")
    out.attrs["metric"] = metric
    return out.sort_values("swing", ascending=False)


# ---------------------------------------------------------------------------
# verification by simulation
# ---------------------------------------------------------------------------

def simulate_continuation(lam, p_drop, alive, t: float, delta: float, mode: str = "dropout",
                          seed: int | None = 0) -> pd.DataFrame:
    """Simulate purchases in the next ``t`` time units, without and with the lever.

    Customers alive now (``alive``) buy at Poisson rate ``lam``; after each
    purchase they drop with probability ``p_drop`` (baseline) or ``g(p_drop)``
    (lever).  Common random numbers: the same Poisson count and the same
    uniform drive both geometric drop-out draws, so the per-customer
    difference has little noise.

    Returns
    -------
    DataFrame with ``base`` and ``lever`` purchase counts (0 for dead customers).
    """
    base, lever = BGNBD().lever_continuation(lam, p_drop, alive, t, *dropout_map(delta, mode),
                                             np.random.default_rng(seed))
    return pd.DataFrame({"base": base, "lever": lever})


def lever_simulation_check(
    params,
    delta: float = 0.1,
    mode: str = "dropout",
    t: float = 52.0,
    n_customers: int = 200_000,
    population: str = "base",
    observation_days: float = 273.0,
    acquisition_days: float = 84.0,
    seed: int = 0,
    sim=None,
) -> dict:
    """Compare the analytic change in future purchases with a simulation.

    ``population="base"``: customers are simulated with
    :func:`helpers.simulate.simulate_bgnbd` (true parameters ``params``) over
    an observation window; their histories ``(x, t_x, T)`` feed the analytic
    conditional expectation; the simulated future (next ``t`` time units,
    starting at each customer's ``T``) uses each customer's true ``lambda,
    p`` and alive state, with and without the lever.  ``"new"``: the same
    customers' ``lambda, p`` at acquisition (all alive, no history),
    compared with the unconditional expectation.  Pass ``sim`` (a
    :class:`helpers.simulate.SimulationResult` simulated with ``params`` and
    ``time_unit_days`` matching the model) to reuse one simulation for several checks.

    Returns
    -------
    dict: ``analytic_change`` and ``simulated_change`` (mean per customer),
    ``se`` (Monte-Carlo standard error of their difference), ``z`` (difference
    / se), ``change_over_se`` (analytic change / se: how sharply the test
    separates the lever from no lever), and the same for the baseline level
    (``analytic_base``, ``simulated_base``, ``z_base``).
    """
    from .simulate import simulate_bgnbd  # noqa: PLC0415

    _, theta = _lever_model(params)
    r, alpha, a, b = theta
    if sim is None:
        sim = simulate_bgnbd(n_customers, r, alpha, a, b, observation_days=observation_days,
                             acquisition_days=acquisition_days, time_unit_days=7.0, seed=seed)
    n_customers = len(sim.customers)
    cust = sim.customers
    if population == "base":
        alive = (cust["x"] < cust["J"]).to_numpy()
        E0 = expected_purchases_lever(theta, [t], 0.0, mode, cust["x"], cust["t_x"], cust["T"])[:, 0]
        E1 = expected_purchases_lever(theta, [t], delta, mode, cust["x"], cust["t_x"], cust["T"])[:, 0]
    elif population == "new":
        alive = np.ones(len(cust), dtype=bool)
        E0 = np.full(len(cust), float(expected_purchases_lever(theta, t, 0.0, mode)))
        E1 = np.full(len(cust), float(expected_purchases_lever(theta, t, delta, mode)))
    else:
        raise ValueError("population must be 'base' or 'new'")
    sim_f = simulate_continuation(cust["lam"].to_numpy(), cust["p_drop"].to_numpy(), alive, t, delta, mode,
                                  seed=seed + 1)
    d_sim = (sim_f["lever"] - sim_f["base"]).to_numpy()
    resid = d_sim - (E1 - E0)
    se = resid.std(ddof=1) / np.sqrt(len(resid))
    resid0 = sim_f["base"].to_numpy() - E0
    se0 = resid0.std(ddof=1) / np.sqrt(len(resid0))
    return {
        "population": population, "delta": delta, "mode": mode, "t": t, "n_customers": n_customers,
        "analytic_change": float(np.mean(E1 - E0)), "simulated_change": float(d_sim.mean()),
        "se": float(se), "z": float(resid.mean() / se), "change_over_se": float(np.mean(E1 - E0) / se),
        "analytic_base": float(E0.mean()), "simulated_base": float(sim_f["base"].mean()),
        "se_base": float(se0), "z_base": float(resid0.mean() / se0),
    }
