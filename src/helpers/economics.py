"""Retention versus acquisition economics on the run's frequency model and its value per purchase.

Is keeping a customer cheaper than winning one, by how much, and when does the
answer flip?  Every quantity here is computed from a fitted frequency model
(:mod:`helpers.models`: any model whose class has the retention-lever methods,
today BG/NBD, MBG/NBD and Pareto/NBD), a value per purchase (a Gamma-Gamma fit,
a constant such as the configuration's value per purchase, or 1 when values
are counted in purchases) and explicit assumptions (:class:`Assumptions`); the
notebook ``03-retention-vs-acquisition`` only calls these functions.

Time and money conventions (as :mod:`helpers.value`)
----------------------------------------------------
A month is ``365.25 / 12`` days; month ``m`` ends at ``t_m = m * 365.25 / 12 /
days(time_unit)`` model time units (4.348 weeks for a weekly model).  Cash
flows of month ``m`` are discounted by ``(1 + d)^-m`` (end of month); the first
purchase of a new customer happens at month 0 and is not discounted.  Money is
gross margin: ``margin * spend``.  With values in purchases, spend is 1 and
the margin 1: "equity" is then discounted expected purchases.

Value of a new customer (break-even acquisition cost)
-----------------------------------------------------
``V_new = margin * s1 + margin * E[Z] * sum_m (E[X(t_m)] - E[X(t_{m-1})]) / (1 + d)^m``
with ``E[X(t)]`` the model's unconditional expectation of repeat purchases of
a customer acquired at time 0 (BG/NBD: FHL 2005a, eq. 9), ``E[Z]`` the mean
value per purchase (Gamma-Gamma: ``p gamma / (q - 1)``) and ``s1`` the value
of the first purchase (default ``E[Z]`` as well).  A firm that pays more than
``V_new`` to acquire a customer destroys value over the horizon: ``V_new`` is
the break-even acquisition cost.  Its interval comes from the bootstrap
parameter draws of :func:`helpers.value.bootstrap`
(:func:`new_customer_value_interval`).

The retention lever and how it is computed (exact, no approximation)
--------------------------------------------------------------------
A retention programme of strength ``delta`` lowers every customer's drop-out.
Two forms are supported (``mode``), written as ``p' = clip(s p + c, 0, 1)``
(:func:`dropout_map`):

``"dropout"``   ``s, c = 1 - delta, 0``    (relative cut in drop-out)
``"retention"`` ``s, c = 1 + delta, -delta`` (relative increase in retention ``1 - p``, capped at 1)

What ``p`` is depends on the model, and the model class computes the lever
(``lever_expectations``, ``lever_totals``; ``lever_continuation`` simulates it):

* BG/NBD and MBG/NBD: ``p ~ Beta(a, b)`` is the drop-out probability after
  each purchase.  Given ``(lambda, p')`` and alive, the purchases in the next
  ``t`` are ``min(J, N)``, ``J ~ Geometric(p')``, ``N ~ Poisson(lambda t)``, so
  ``E[X(t) | lambda, p'] = (1 - exp(-lambda p' t)) / p'`` and ``P(alive at t |
  lambda, p') = exp(-lambda p' t)`` (FHL 2005a, section 4); ``lambda`` is
  integrated in closed form and ``p`` by Gauss-Jacobi quadrature (the interval
  split where ``p'`` hits 0 or 1, so the kink of the capped form is exact).
  The MBG/NBD new customer's drop-out chance at time 0 is lowered too (the
  programme runs from acquisition).
* Pareto/NBD: the drop-out is a rate ``mu ~ Gamma(s, beta)`` (exponential
  lifetime).  The drop-out form scales it, ``mu' = (1 - delta) mu`` (``beta ->
  beta / (1 - delta)`` for a new customer; for a customer alive at ``T`` the
  posterior is ``Gamma(s, beta + T)``, so survival becomes ``((beta + T) /
  (beta + T + (1 - delta) t))^s``), in closed form.  The retention form
  multiplies the probability of surviving one month, ``exp(-mu L)``, by ``1 +
  delta`` (capped at 1): ``mu' = max(0, mu - ln(1 + delta) / L)``.

With ``delta = 0`` each lever reproduces its model's closed-form expectations
(tested).  *New cohort*: the prior, customer alive at time 0.  *Existing base*
(customer with history ``x, t_x, T``): the posterior comes from the
*unmodified* model (the history happened without the programme); given alive
at ``T`` the purchase rate and the drop-out are independent, and ``E[future
X(t) | history, lever] = P(alive | history) * E[X(t) | posterior, lever]``.
The programme acts on future drop-out only.  :func:`lever_simulation_check`
verifies both by simulating the model's generative process
(``draw_latent``/``draw_purchases`` for the histories, then
``lever_continuation``: a future with and without the programme on common
random numbers).  A model without the lever methods raises a ``ValueError``
naming it (:func:`lever_available` asks first).

On a large base the expectation given alive depends on a customer through
``(x, T)`` only and is evaluated once per distinct pair; where an ``x`` has
many distinct ages (a multi-cohort base with daily ages, simulated customers
with continuous ages) it is interpolated in ``T`` on Chebyshev nodes, with
the customers' weights aggregated on the nodes (:func:`_lever_rows`): the
error bound is below double rounding, and every evaluation is checked
against the direct one at a few ages (relative error 1e-12, else every
distinct ``(x, T)`` is evaluated directly).

The common "shift the Beta at fixed a + b" approximation (``a' = a m'/m``,
``b' = a + b - a'`` with ``m, m'`` the mean drop-out before/after) is available
for the BG models as :func:`shifted_beta` for comparison only;
:func:`shifted_beta_error` quantifies its error against the exact value.

Costs, referrals, comparisons
-----------------------------
* Programme cost: ``c_r`` per targeted customer per month, discounted; with
  ``cost_on="targeted"`` every targeted customer is charged every month (a
  firm cannot tell who has silently left), with ``cost_on="alive"`` only the
  expected alive customers (start of month, under the programme).
* Referral (a common claim: customers recruit customers): ``referral_rate``
  = expected new customers recruited by each *retained* customer, a customer
  alive at the end of the horizon; each is worth ``V_new`` discounted from the
  horizon end; one generation only.  The retention lever earns it on the
  extra customers alive at the horizon end, a new customer on their own
  probability of being alive then.
* Cost per unit of equity: retention = discounted programme cost / (equity
  gain + referral value); acquisition = ``c_a / (V_new + referral value)``.
  ``advantage = cost_per_equity_acquisition / cost_per_equity_retention``:
  above 1 retention creates equity more cheaply.  Both equities scale with the
  margin and the value per purchase, so the advantage does not depend on them
  (the returns do): it is defined in purchases too.
* Break-even frontier: the retention cost ``c_r*(c_a)`` at which both levers
  cost the same per unit of equity, linear in ``c_a``.
* Price cut (a common warning: do not buy share with discounts): a price cut
  of ``k`` (fraction of price) turns the margin per purchase from ``margin *
  s`` into ``(margin - k) * s``; to break even the programme it pays for must
  raise equity by ``margin / (margin - k)`` (assumes the cut changes nothing but
  retention).  It needs a margin on money.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import optimize

from . import age_interpolation
from .models import FittedModel, FrequencyModel, GammaGamma, GammaGammaFit, get_model, registered_models, unique_rows
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
    "LEVER_METHODS",
    "lever_available",
    "lever_models",
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
    "sensitivity_ranges",
    "simulate_continuation",
    "lever_simulation_check",
]

#: Supported forms of the retention lever (see module docstring).
MODES = ("dropout", "retention")

#: The methods a model class provides for the retention lever (the interface economics calls).
LEVER_METHODS = ("lever_expectations", "lever_totals", "lever_continuation")

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
    "retention_cost": "programme cost per targeted customer per month (currency of the data)",
    "delta": "relative strength of the retention programme",
    "mode": "'dropout': drop-out x (1-delta); 'retention': retention x (1+delta), capped at 1",
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


def lever_available(model) -> bool:
    """Whether a model (a :class:`FittedModel`, a :class:`FrequencyModel` or a registry name) has the retention lever."""
    if isinstance(model, FittedModel):
        model = model.model
    elif isinstance(model, str):
        model = get_model(model)
    return all(callable(getattr(model, k, None)) for k in LEVER_METHODS)


def lever_models() -> list[str]:
    """Registry names of the frequency models whose class has the retention lever."""
    out = []
    for name in registered_models():
        try:
            m = get_model(name)
        except (ValueError, KeyError):
            continue
        if isinstance(m, FrequencyModel) and lever_available(m):
            out.append(name)
    return out


def _lever_model(model):
    """The model and ``theta`` of the retention lever.

    ``model`` is a :class:`FittedModel` whose model class has the lever
    methods (:data:`LEVER_METHODS`), a pair ``(FrequencyModel, theta)``, or
    BG/NBD parameters ``(r, alpha, a, b)`` as a Series, mapping or 4-tuple.
    A model without the lever raises a ``ValueError`` naming it.
    """
    if isinstance(model, FittedModel):
        m, theta = model.model, tuple(float(v) for v in model.theta)
    elif isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], FrequencyModel):
        m, theta = model[0], model[0].theta_of(model[1])
    else:
        m = BGNBD()
        if isinstance(model, (pd.Series, Mapping)):
            return m, tuple(float(model[k]) for k in m.param_names)
        th = tuple(float(v) for v in model)
        if len(th) != len(m.param_names):
            raise ValueError("BG/NBD parameters are (r, alpha, a, b)")
        return m, th
    if not lever_available(m):
        raise ValueError(f"the retention lever is not available for {m.label} (model {m.name!r}): its model class "
                         f"has no {'/'.join(LEVER_METHODS)}; models with the lever: {', '.join(lever_models())}")
    return m, theta


def _model_theta(model):
    """The model and ``theta`` of a fitted model (any model; the lever is not needed), or as :func:`_lever_model`."""
    if isinstance(model, FittedModel):
        return model.model, tuple(float(v) for v in model.theta)
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], FrequencyModel):
        return model[0], model[0].theta_of(model[1])
    return _lever_model(model)


def _period(time_unit: str, days_per_month: float) -> float:
    """One month in model time units: the period of a drop-out rate's retention form."""
    return float(month_grid(1, time_unit, days_per_month)[1])


def _mean_spend(spend) -> float:
    """Population mean spend per purchase: from a Gamma-Gamma fit, its ``p, q, gamma``, or a number."""
    if isinstance(spend, GammaGammaFit):
        return float(spend.population_mean_spend())
    if isinstance(spend, (pd.Series, Mapping)):
        gg = GammaGamma()
        return float(gg.population_mean_spend(gg.theta_of(dict(spend))))
    return float(spend)


def expected_purchases_lever(model, t, delta: float = 0.0, mode: str = "dropout",
                             x=None, t_x=None, T=None, n_nodes: int = 64, time_unit: str = "W",
                             days_per_month: float = DAYS_PER_MONTH) -> np.ndarray:
    """Expected (repeat) purchases in the next ``t`` time units under the lever (exact).

    Without ``x, t_x, T``: a new customer acquired at time 0 (``delta=0`` gives
    the model's unconditional expectation, BG/NBD: FHL 2005a eq. 9).  With
    them: customers with these histories, from their age ``T`` on (``delta=0``
    gives the conditional expectation, BG/NBD: eq. 10).  Returns shape
    ``(len(t),)`` or ``(n_customers, len(t))`` for array ``t``; a scalar ``t``
    drops that axis.  ``time_unit`` and ``days_per_month`` give the month of
    a drop-out rate's retention form.
    """
    m, theta = _lever_model(model)
    s, c = dropout_map(delta, mode)
    EX, _ = m.lever_expectations(theta, np.atleast_1d(t), s, c, x, t_x, T, n_nodes,
                                 period=_period(time_unit, days_per_month))
    return EX[..., 0] if np.ndim(t) == 0 else EX


def alive_probability_lever(model, t, delta: float = 0.0, mode: str = "dropout",
                            x=None, t_x=None, T=None, n_nodes: int = 64, time_unit: str = "W",
                            days_per_month: float = DAYS_PER_MONTH) -> np.ndarray:
    """P(alive) ``t`` time units ahead under the lever (new customer, or per history row)."""
    m, theta = _lever_model(model)
    s, c = dropout_map(delta, mode)
    _, S = m.lever_expectations(theta, np.atleast_1d(t), s, c, x, t_x, T, n_nodes,
                                period=_period(time_unit, days_per_month))
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
    approximated change.  Only for models with a Beta drop-out ``(a, b)``
    (BG/NBD, MBG/NBD).
    """
    m, theta = _lever_model(model)
    if tuple(m.param_names) != ("r", "alpha", "a", "b"):
        raise ValueError(f"the shifted-Beta approximation needs a Beta drop-out (a, b); {m.label} has "
                         f"{list(m.param_names)}")
    r, alpha, a, b = theta
    base = expected_purchases_lever((m, theta), t)
    exact = expected_purchases_lever((m, theta), t, delta, mode) - base
    a2, b2 = shifted_beta(a, b, delta, mode)
    approx = expected_purchases_lever((m, (r, alpha, a2, b2)), t) - base
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
    model : FittedModel with the retention lever, (FrequencyModel, theta), or BG/NBD (r, alpha, a, b)
    spend : GammaGammaFit, (p, q, gamma) mapping, or a mean value per purchase (1: values in purchases)
    margin, monthly_discount_rate, horizon_months, time_unit, days_per_month
        See the module docstring.
    delta, mode
        Retention lever applied from acquisition on (0 = none).
    first_purchase_spend : float, optional
        Spend of the first purchase (default: the population mean spend).

    Without a programme (``delta = 0``) any frequency model will do (its
    unconditional expectation); with one the model needs the retention lever.

    Returns
    -------
    DataFrame indexed by month ``0..H``: ``purchases`` (expected purchases in
    the month; month 0 = the first purchase), ``alive`` (P(alive) at the month
    end), ``discount`` (factor), ``margin`` (discounted expected margin of the
    month) and ``cumulative`` (running sum; the last value is ``V_new``).
    """
    m, theta = _model_theta(model)
    ez = _mean_spend(spend)
    s1 = ez if first_purchase_spend is None else float(first_purchase_spend)
    t = month_grid(horizon_months, time_unit, days_per_month)
    if delta == 0 and not lever_available(m):
        # no programme: any model's unconditional expectation and survival from time 0 (alive at 0)
        EX = np.asarray(m.expected_purchases_new(theta, t[1:]), dtype=float)
        S = np.asarray(m.survival_given_alive(theta, t[1:], 0.0, 0.0, 0.0), dtype=float)
    else:
        EX, S = m.lever_expectations(theta, t[1:], *dropout_map(delta, mode),
                                     period=_period(time_unit, days_per_month))
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


def new_customer_value_interval(boot, level: float | None = None, spend=None, **kwargs) -> pd.Series:
    """Point estimate and percentile interval of :func:`new_customer_value` over bootstrap draws.

    Parameters
    ----------
    boot : helpers.value.BootstrapResult
        Its ``param_draws`` (frequency-model and, with amounts, Gamma-Gamma
        parameters per replicate) and ``params["estimate"]`` (full-data fit)
        are used; ``boot.model`` names the frequency model.
    level : float, optional
        Central level (default: the bootstrap's, 0.90).
    spend : float, optional
        Value per purchase when the bootstrap has no Gamma-Gamma draws (a log
        without amounts: the configuration's value per purchase, or 1 for
        values in purchases).
    **kwargs
        Passed to :func:`new_customer_value` (margin, discount rate, ...).

    Returns
    -------
    Series ``estimate, lower, upper, n_draws``.
    """
    model = get_model(boot.model)
    level = boot.level if level is None else level
    D = boot.param_draws
    freq = [col for col in D.columns if col[0] != "Gamma-Gamma"]
    gg = [col for col in D.columns if col[0] == "Gamma-Gamma"]
    if not gg and spend is None:
        raise ValueError("the bootstrap has no spend-model draws: give spend (a value per purchase)")

    def one(row_freq, row_gg):
        value = dict(zip(("p", "q", "gamma"), row_gg)) if gg else float(spend)
        return new_customer_value((model, tuple(row_freq)), value, **kwargs)

    F, G = D[freq].to_numpy(float), D[gg].to_numpy(float)   # positional rows (MultiIndex look-ups are slow)
    vals = np.array([one(F[i], G[i]) for i in range(len(D))])
    est_params = boot.params["estimate"]
    est = one(est_params.loc[freq].to_numpy(float), est_params.loc[gg].to_numpy(float) if gg else ())
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
    model : FittedModel with the retention lever, (FrequencyModel, theta), or BG/NBD (r, alpha, a, b)
    spend : GammaGammaFit or float
        Gamma-Gamma: existing customers are valued at their conditional
        expected spend (FHL 2005b eq. 5), new ones at the population mean.  A
        number: that value per purchase for everyone (1: values in purchases).
    summary : DataFrame, optional
        ``x, t_x, T`` (and ``m_x`` with a Gamma-Gamma fit) of the existing
        customers, valued from the end of their observation (age ``T``).
        ``None``: one new customer.

    Returns
    -------
    RetentionEffect
    """
    pop = _population(model, spend, summary, horizon_months, time_unit, days_per_month, first_purchase_spend,
                      n_nodes)
    return pop.effect(delta, mode, margin, monthly_discount_rate)


#: Populations built so far (:func:`_population`), newest last; a few are kept.
_POPULATIONS: "OrderedDict[tuple, _Population]" = OrderedDict()
_POPULATIONS_KEPT = 4
#: Existing bases' lever rows built so far (:func:`_base_rows`), shared by their populations at any horizon.
_BASES: "OrderedDict[tuple, _BaseRows]" = OrderedDict()
_BASES_KEPT = 2


def _fingerprint(summary: pd.DataFrame, cols) -> str:
    """A digest of the values of ``cols`` (row order included): equal digests, equal base.

    SHA-1 of the columns' float64 bytes (a cache key, not a security measure;
    about 20 ms per million customers and four columns).
    """
    h = hashlib.sha1(str((len(summary), tuple(cols))).encode())
    for c in cols:
        h.update(np.ascontiguousarray(summary[c].to_numpy(dtype=float)).view(np.uint8))
    return h.hexdigest()


def _remember(cache: OrderedDict, key, kept: int, build):
    """``cache[key]``, built by ``build()`` when absent; the ``kept`` most recently used entries are kept."""
    hit = cache.get(key)
    if hit is None:
        hit = cache[key] = build()
        while len(cache) > kept:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return hit


def _population(model, spend, summary, horizon_months, time_unit, days_per_month, first_purchase_spend=None,
                n_nodes=32) -> "_Population":
    """:class:`_Population`, shared between calls on the same base.

    A notebook evaluates the lever on one base many times (the effect, the
    grid of strengths, the claims, the sensitivity of a scenario, the price
    cuts), each time with the same model, spend model, horizon and customers;
    the population and the lever totals it has computed are reused when the
    model (name and parameters), the spend model (parameters or value), the
    month grid, the quadrature nodes and the customers' ``x, t_x, T[, m_x]``
    (a digest of their values) are the same, and the base's lever rows
    (:func:`_base_rows`) whatever the horizon.  The result is the one a new
    population would compute (the totals are a function of these inputs).
    A one-new-customer population (``summary`` None) costs nothing to rebuild
    and is not kept.
    """
    if summary is None:
        return _Population(model, spend, None, horizon_months, time_unit, days_per_month, first_purchase_spend,
                           n_nodes)
    m, theta = _lever_model(model)
    constant = not hasattr(spend, "expected_spend")
    cols = ("x", "t_x", "T") if constant else ("x", "t_x", "T", "m_x")
    if any(c not in summary.columns for c in cols):     # the population names what is missing
        return _Population(model, spend, summary, horizon_months, time_unit, days_per_month, first_purchase_spend,
                           n_nodes)
    spend_key = (("value", _mean_spend(spend)) if constant
                 else (type(spend).__name__, tuple(float(v) for v in spend.params)))
    base_key = (m.name, theta, spend_key, _fingerprint(summary, cols))
    rows = _remember(_BASES, base_key, _BASES_KEPT, lambda: _base_rows(m, theta, spend, summary))
    key = base_key + (int(horizon_months), time_unit, float(days_per_month), first_purchase_spend, int(n_nodes))
    return _remember(_POPULATIONS, key, _POPULATIONS_KEPT,
                     lambda: _Population(model, spend, summary, horizon_months, time_unit, days_per_month,
                                         first_purchase_spend, n_nodes, rows=rows))


@dataclass(frozen=True)
class _BaseRows:
    """An existing base reduced to the rows its lever is evaluated on (see :class:`_Population`).

    ``direct``: the distinct ``(x, T)`` with their ``P(alive)``-weighted spend
    and customer counts, ``(x, T, spend_weight, count_weight)``; ``fast``: the
    same after the interpolation in ``T`` (:func:`_lever_rows`); ``checks``:
    ``(x, T, nodes, L)`` per checked piece (check rows ``T``, the piece's
    Chebyshev nodes and the rows' Lagrange weights ``L``, ``(len(T), len(nodes))``);
    ``n``: customers.
    """

    direct: tuple
    fast: tuple
    checks: tuple
    n: int


def _base_rows(m, theta, spend, summary) -> _BaseRows:
    """The lever rows of an existing base: per distinct ``(x, T)``, then interpolated in ``T`` (:func:`_lever_rows`)."""
    constant = not hasattr(spend, "expected_spend")
    cols = ("x", "t_x", "T") if constant else ("x", "t_x", "T", "m_x")
    missing = [c for c in cols if c not in summary.columns]
    if missing:
        raise ValueError(f"summary is missing column(s) {missing}")
    if constant:
        (xu, txu, Tu), _, counts = unique_rows(*(summary[c].to_numpy(float) for c in cols))
        sp = _mean_spend(spend) * counts
    else:
        (xu, txu, Tu, mu), _, counts = unique_rows(*(summary[c].to_numpy(float) for c in cols))
        sp = np.asarray(spend.expected_spend(xu, mu), dtype=float) * counts
    pa = m.p_alive(theta, xu, txu, Tu)
    (xk, Tk), inv, _ = unique_rows(xu, Tu)
    spk = np.bincount(inv, weights=pa * sp, minlength=len(xk))
    ck = np.bincount(inv, weights=pa * counts, minlength=len(xk))
    fast, checks = _lever_rows(xk, Tk, spk, ck)
    return _BaseRows(direct=(xk, Tk, spk, ck), fast=fast, checks=checks, n=int(counts.sum()))


def _lever_rows(x, T, spend_weight, count_weight):
    """Replace a base's many distinct ages per ``x`` by Chebyshev nodes in ``T`` with aggregated weights.

    Every lever total is ``sum_i w_i F(x_i, T_i, t)`` over the distinct
    ``(x, T)`` (:class:`_Population`).  For fixed ``x``, ``F`` is analytic in
    ``T`` for ``T > 0`` (BG/NBD and MBG/NBD: through ``alpha + T`` in ``(alpha
    + T) / (alpha + T + q t)`` with ``q >= 0``, Pareto/NBD through ``alpha +
    T`` and ``beta + T``), so on each piece of ages of
    :func:`helpers.age_interpolation.age_pieces` ``F(T) ~ sum_j L_j(T)
    F(T_j)`` (its convergence: that module's docstring), and the piece's total
    is ``sum_j W_j F(x, T_j, t)`` with ``W_j = sum_i w_i L_j(T_i)``: a model
    evaluation per node instead of per age.  :func:`_lever_totals` checks the
    interpolant against the direct evaluation at a few ages of the smallest
    and the largest interpolated ``x`` on every call.

    Returns ``(x, T, spend_weight, count_weight)`` of the rows to evaluate
    (the ages left as they are, then the nodes) and the checks (see
    :class:`_BaseRows`).
    """
    x, T, sw, cw = (np.asarray(v, dtype=float) for v in (x, T, spend_weight, count_weight))
    keep, groups = age_interpolation.age_pieces(x, T)
    if not groups:
        return (x, T, sw, cw), ()
    out_x, out_T, out_sw, out_cw = [x[keep]], [T[keep]], [sw[keep]], [cw[keep]]
    for xg, nodes, rows, L in groups:
        out_x.append(np.full(len(nodes), xg))
        out_T.append(nodes)
        out_sw.append(sw[rows] @ L)
        out_cw.append(cw[rows] @ L)
    checks = tuple((xg, T[rows][pick], nodes, L[pick])
                   for xg, nodes, rows, L, pick in age_interpolation.check_rows(groups))
    return tuple(np.concatenate(v) for v in (out_x, out_T, out_sw, out_cw)), checks


def _given_alive(m, theta, t, s, c, x, T, n_nodes, period):
    """``F(x, T, t)``: the model's ``lever_expectations`` of customers alive at ``T`` (``(len(x), len(t))`` pairs).

    The model's per-customer expectations at ``t_x = T`` divided by its
    ``P(alive | x, T, T)`` (> 0: BG/NBD ``1 / (1 + a / (b + x - 1))``).
    """
    E, S = m.lever_expectations(theta, t, s, c, x, T, T, n_nodes, period=period)
    pa = np.asarray(m.p_alive(theta, x, T, T), dtype=float)[:, None]
    return E / pa, S / pa


def _lever_totals(m, theta, t, s, c, rows: _BaseRows, n_nodes, period):
    """The model's ``lever_totals`` on a base's lever rows: interpolated in ``T`` when the check passes.

    At each check row (:func:`_lever_rows`) the interpolant ``sum_j L_j F(x,
    T_j, t)`` is compared with the model's direct ``F(x, T, t)``
    (:func:`_given_alive`); if any relative error (to the row's largest value
    over ``t``) exceeds ``age_interpolation.T_RTOL``, every distinct ``(x, T)`` is evaluated
    directly.
    """
    def totals(x, T, ws, wc):   # P(alive) is in the weights; t_x = T is a placeholder, unused with it given
        return m.lever_totals(theta, t, s, c, x, T, T, ws, wc, n_nodes, period=period, p_alive=np.ones(len(x)))

    if rows.checks:
        t = np.atleast_1d(np.asarray(t, dtype=float))
        xc = np.concatenate([np.full(len(Tc), xq) for xq, Tc, _, _ in rows.checks])
        xn = np.concatenate([np.full(len(nodes), xq) for xq, _, nodes, _ in rows.checks])
        direct = _given_alive(m, theta, t, s, c, xc, np.concatenate([ch[1] for ch in rows.checks]), n_nodes, period)
        on_nodes = _given_alive(m, theta, t, s, c, xn, np.concatenate([ch[2] for ch in rows.checks]), n_nodes,
                                period)
        starts = np.cumsum([0] + [len(ch[2]) for ch in rows.checks])
        for d, f in zip(direct, on_nodes):
            interp = np.concatenate([L @ f[a:b] for (_, _, _, L), a, b in zip(rows.checks, starts[:-1], starts[1:])])
            if not age_interpolation.close(interp, d):
                return totals(*rows.direct)
    return totals(*rows.fast)


def _lever_expectations_rows(m, theta, t, s, c, x, t_x, T, n_nodes=64, period=1.0):
    """The model's per-customer ``lever_expectations`` (``(n, len(t))`` arrays), interpolated in ``T`` as
    :func:`_lever_rows` where an ``x`` has many distinct ages (simulated customers with continuous ages).

    ``F(x, T, t)``, the expectation given alive at ``T``
    (:func:`_given_alive`), is interpolated in ``T`` and checked by
    :func:`helpers.age_interpolation.interpolated_in_age` (every distinct ``(x,
    T)`` evaluated directly if a check row is off by more than its ``T_RTOL``),
    and multiplied by each customer's ``P(alive | x, t_x, T)``.
    """
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    t = np.atleast_1d(np.asarray(t, dtype=float))
    (xk, Tk), inv, _ = unique_rows(x, T)
    def given_alive(xr, Tr):
        return _given_alive(m, theta, t, s, c, xr, Tr, n_nodes, period)

    interpolated = age_interpolation.interpolated_in_age(given_alive, xk, Tk)
    if interpolated is None:
        return m.lever_expectations(theta, t, s, c, x, t_x, T, n_nodes, period=period)
    EK, SK = interpolated
    pa = np.asarray(m.p_alive(theta, x, t_x, T), dtype=float)[:, None]
    return pa * EK[inv], pa * SK[inv]


class _Population:
    """A population (base or one new customer) on a month grid; caches the lever totals.

    An existing base is held as its distinct ``(x, T)`` rows: every model with
    the lever factorises a customer's expected purchases and survival under a
    programme as ``P(alive | x, t_x, T) F(x, T, t)`` (given alive at ``T``, the
    future depends on ``(x, T)`` only: BG/NBD and MBG/NBD through the
    gamma-beta posterior of FHL 2005a, Pareto/NBD through the gamma posteriors
    of Schmittlein, Morrison & Colombo 1987), so the spend- and count-weighted
    totals of the model's ``lever_totals`` are sums over the distinct ``(x, T)``
    of ``F`` weighted by ``sum P(alive) x weight`` of their customers.  These
    sums are formed once (:func:`_base_rows`, with ``P(alive)`` once per unique
    row), and each lever evaluation runs on the distinct ``(x, T)`` rows with
    ``P(alive)`` 1, instead of re-grouping every customer row for each
    ``delta``.  Where an ``x`` has many distinct ages (a multi-cohort base with
    daily ages: hundreds per ``x``), ``F`` is interpolated in ``T`` on
    Chebyshev nodes and the weights aggregated on them (:func:`_lever_rows`,
    checked on every evaluation by :func:`_lever_totals`).
    """

    def __init__(self, model, spend, summary, horizon_months, time_unit, days_per_month,
                 first_purchase_spend=None, n_nodes=32, rows: _BaseRows | None = None):
        self.model, self.theta = _lever_model(model)
        self.H = int(horizon_months)
        self.t = month_grid(self.H, time_unit, days_per_month)
        self.time_unit = time_unit
        self.period = _period(time_unit, days_per_month)
        self.n_nodes = n_nodes
        self.summary = summary
        if summary is None:
            self.ez = _mean_spend(spend)
            self.first_spend = self.ez if first_purchase_spend is None else float(first_purchase_spend)
            self.n = 1
        else:
            self.rows = _base_rows(self.model, self.theta, spend, summary) if rows is None else rows
            self.first_spend = 0.0
            self.n = self.rows.n
        self._cache = {}

    def totals(self, delta, mode):
        """(spend-weighted expected purchases, expected alive customers) on the grid t_0..t_H."""
        key = (0.0, "dropout") if delta == 0 else (float(delta), mode)
        if key not in self._cache:
            if self.summary is None:
                E, S = self.model.lever_expectations(self.theta, self.t, *dropout_map(*key), n_nodes=self.n_nodes,
                                                     period=self.period)
                self._cache[key] = (self.ez * E, S)
            else:   # on the base's lever rows, with the P(alive)-weighted sums (class docstring)
                self._cache[key] = _lever_totals(self.model, self.theta, self.t, *dropout_map(*key), self.rows,
                                                 self.n_nodes, self.period)
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
    pop = _population(model, spend, summary, kwargs.pop("horizon_months", 24), kwargs.pop("time_unit", "W"),
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
    pop = _population(model, spend, summary, horizon_months, time_unit, days_per_month, n_nodes=n_nodes)
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
    """Fitted models, the customer base and the assumptions: evaluates every headline metric.

    ``spend`` is a Gamma-Gamma fit or a value per purchase (1: values in purchases).
    """

    model: FittedModel
    spend: GammaGammaFit | float
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
            self._populations[key] = _population(self.model, self.spend, self.summary, A.horizon_months,
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


def sensitivity_ranges(assumptions: Assumptions, in_money: bool = True) -> dict[str, tuple[float, float]]:
    """One-at-a-time ranges around a scenario's assumptions.

    Costs, the horizon and ``delta`` are halved and doubled (``delta`` capped
    at 1); margin, discount rate and referrals keep :data:`DEFAULT_RANGES`.
    Without money (values in purchases) the margin is left out: it is not
    applied there.
    """
    A = assumptions
    out = {
        "margin": DEFAULT_RANGES["margin"],
        "monthly_discount_rate": DEFAULT_RANGES["monthly_discount_rate"],
        "horizon_months": (max(1, int(round(A.horizon_months / 2))), int(2 * A.horizon_months)),
        "acquisition_cost": (A.acquisition_cost / 2, 2 * A.acquisition_cost),
        "retention_cost": (A.retention_cost / 2, 2 * A.retention_cost),
        "delta": (A.delta / 2, min(2 * A.delta, 1.0)),
        "referral_rate": DEFAULT_RANGES["referral_rate"],
    }
    if not in_money:
        del out["margin"]
    return out


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

def simulate_continuation(model, latent, t: float, delta: float, mode: str = "dropout", seed: int | None = 0,
                          x=None, T=None, time_unit: str = "W", days_per_month: float = DAYS_PER_MONTH) -> pd.DataFrame:
    """Simulate purchases in the next ``t`` time units, without and with the lever.

    ``latent`` holds simulated customers' traits (the model's ``draw_latent``);
    with ``x, T`` (their purchases up to their ages ``T``, from
    ``draw_purchases`` on the same traits) the future starts at ``T``,
    otherwise at acquisition.  The model's ``lever_continuation`` draws both
    futures on common random numbers, so the per-customer difference has
    little noise.

    Returns
    -------
    DataFrame with ``base`` and ``lever`` purchase counts (0 for dead customers).
    """
    m, theta = _lever_model(model)
    base, lever = m.lever_continuation(theta, latent, t, *dropout_map(delta, mode), np.random.default_rng(seed),
                                       x=x, T=T, period=_period(time_unit, days_per_month))
    return pd.DataFrame({"base": base, "lever": lever})


def lever_simulation_check(
    model,
    delta: float = 0.1,
    mode: str = "dropout",
    t: float = 52.0,
    n_customers: int = 200_000,
    population: str = "base",
    ages: tuple[float, float] = (27.0, 39.0),
    seed: int = 0,
    time_unit: str = "W",
    days_per_month: float = DAYS_PER_MONTH,
) -> dict:
    """Compare the analytic change in future purchases with a simulation of the model's generative process.

    ``population="base"``: ``n_customers`` customers are simulated with the
    model's ``draw_latent`` and ``draw_purchases`` (true parameters: the
    model's), their ages ``T`` uniform on ``ages`` (model time units; the
    default is CDNOW's calibration: 39 weeks of observation, first purchases
    over the first 12); their histories ``(x, t_x, T)`` feed the analytic
    conditional expectation, and the simulated future (the next ``t`` time
    units from each customer's ``T``, the model's ``lever_continuation``) uses
    each customer's true traits and alive state, with and without the lever.
    ``"new"``: the same customers' traits at acquisition (no history), against
    the unconditional expectation.

    Returns
    -------
    dict: ``analytic_change`` and ``simulated_change`` (mean per customer),
    ``se`` (Monte-Carlo standard error of their difference), ``z`` (difference
    / se), ``change_over_se`` (analytic change / se: how sharply the check
    separates the lever from no lever), and the same for the baseline level
    (``analytic_base``, ``simulated_base``, ``z_base``).
    """
    m, theta = _lever_model(model)
    if population not in ("base", "new"):
        raise ValueError("population must be 'base' or 'new'")
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    latent = m.draw_latent(theta, n, rng)
    kw = dict(time_unit=time_unit, days_per_month=days_per_month)
    if population == "base":
        T = rng.uniform(float(ages[0]), float(ages[1]), size=n)
        counts, times = m.draw_purchases(theta, latent, T, rng)
        x = counts.astype(float)
        t_x = np.zeros(n)
        np.maximum.at(t_x, np.repeat(np.arange(n), counts), times)
        # per customer (the residuals' spread is needed), interpolated in the continuous ages
        per = _period(time_unit, days_per_month)
        E0 = _lever_expectations_rows(m, theta, [t], *dropout_map(0.0, mode), x, t_x, T, period=per)[0][:, 0]
        E1 = _lever_expectations_rows(m, theta, [t], *dropout_map(delta, mode), x, t_x, T, period=per)[0][:, 0]
        sim_f = simulate_continuation((m, theta), latent, t, delta, mode, seed + 1, x=x, T=T, **kw)
    else:
        E0 = np.full(n, float(expected_purchases_lever((m, theta), t, 0.0, mode, **kw)))
        E1 = np.full(n, float(expected_purchases_lever((m, theta), t, delta, mode, **kw)))
        sim_f = simulate_continuation((m, theta), latent, t, delta, mode, seed + 1, **kw)
    d_sim = (sim_f["lever"] - sim_f["base"]).to_numpy()
    resid = d_sim - (E1 - E0)
    se = resid.std(ddof=1) / np.sqrt(n)
    resid0 = sim_f["base"].to_numpy() - E0
    se0 = resid0.std(ddof=1) / np.sqrt(n)
    return {
        "model": m.name, "population": population, "delta": delta, "mode": mode, "t": t, "n_customers": n,
        "analytic_change": float(np.mean(E1 - E0)), "simulated_change": float(d_sim.mean()),
        "se": float(se), "z": float(resid.mean() / se), "change_over_se": float(np.mean(E1 - E0) / se),
        "analytic_base": float(E0.mean()), "simulated_base": float(sim_f["base"].mean()),
        "se_base": float(se0), "z_base": float(resid0.mean() / se0),
    }
