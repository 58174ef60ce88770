"""Probability models of purchase counts and spend: fit, predict, compare.

One class per model on a common base (:class:`FrequencyModel`, ``base.py``),
one module per model, a registry by name (``registry.py``) and one generic
fitter (``fit.py``).  Frequency models (customers who make repeat purchases at
random while "alive" and drop out unobserved) summarise each customer by ``x``
(repeat purchase occasions), ``t_x`` (recency) and ``T`` (age), see
:mod:`helpers.summary`:

``"bgnbd"`` (:mod:`.bgnbd`)
    BG/NBD, Fader, Hardie & Lee (2005), "Counting your customers the easy
    way: an alternative to the Pareto/NBD model", *Marketing Science* 24(2),
    275-284.  Parameters ``r, alpha`` (gamma heterogeneity of the purchase
    rate) and ``a, b`` (beta heterogeneity of the drop-out probability).
``"mbgnbd"`` (:mod:`.mbgnbd`)
    MBG/NBD, Batislam, Denizel & Filiztekin (2007), "Empirical validation and
    comparison of models for customer base analysis", *International Journal
    of Research in Marketing* 24(3), 201-209.  As BG/NBD, but a customer may
    also drop out at time zero, right after the first purchase.
``"pareto_nbd"`` (:mod:`.pareto_nbd`)
    Pareto/NBD, Schmittlein, Morrison & Colombo (1987), "Counting your
    customers: who are they and what will they do next?", *Management Science*
    33(1), 1-24; likelihood as in Fader & Hardie (2005), "A note on deriving
    the Pareto/NBD model and related expressions" (brucehardie.com note 009).
    Parameters ``r, alpha`` (purchase rate) and ``s, beta`` (exponential
    lifetime rate heterogeneity).

Spend model (:mod:`.gamma_gamma`): Gamma-Gamma, Fader, Hardie & Lee (2005),
"RFM and CLV: using iso-value curves for customer base analysis", *Journal of
Marketing Research* 42(4), 415-430 (and Fader & Hardie note 025).  Parameters
``p, q, gamma``.

Engine
------
All log-likelihoods are the *full* log-likelihoods of the papers (so BG/NBD on
the CDNOW sample gives -9582.4 and Pareto/NBD -9595.0), vectorised with
numpy/scipy.  Estimates maximise them over the log-parameters (``fit.py``:
L-BFGS-B with the model's analytic gradient when it has one, then a few Newton
steps), on the unique ``(x, t_x, T)`` rows with customer counts as weights.
The fast paths: the (M)BG/NBD likelihood in a rearranged, equal form with one
term per customer per evaluation (``_BGFamilyObjective``), the Pareto/NBD
likelihood and exact gradient from a hypergeometric series
(``_pnbd_ll_grad_sum``, with the hyp2f1 likelihood and central differences as
fallback), and the Gamma-Gamma likelihood as six row sums that depend on gamma
alone with an analytic Hessian (``_GammaGammaObjective``).  The penalizer
follows lifetimes' convention (see :mod:`.fit`).

lifetimes (0.11.3) is used only as a reference in the tests; its own objective
is normalised, its Pareto/NBD fitter starts from unseeded random values and
its ``variance_matrix_`` is not a proper covariance, hence the own engine.

Adding a model: write ``models/<name>.py`` with a :class:`FrequencyModel`
subclass and add one line to ``registry.REGISTRY``; the conformance tests
(``tests/test_model_conformance.py``) then run on it.
"""

from __future__ import annotations

import sys
import types

import numpy as np

from . import base as _base_module
from . import pareto_nbd as _pnbd_module
from .base import (
    ADVICE,
    GG_ADVICE,
    FrequencyModel,
    IndependenceWarning,
    ModelFitError,
    SpendModel,
    _CHUNK,
    _frequency_arrays,
    _log_hyp2f1_safe,
    _log_nbd_pmf,
    _validate_xtT,
    unique_apply,
    unique_rows,
)
from .bgnbd import BGNBD, _BGFamilyObjective, _ll_bgnbd
from .fit import (
    FittedModel,
    _cov_from_hessian,
    _grad_hessian,
    _minimise,
    _num_grad,
    _num_hessian,
    _once_per_point,
    compare_models,
    fit_model,
    log_likelihood,
)
from .gamma_gamma import GammaGamma, GammaGammaFit, _GammaGammaObjective, _ll_gamma_gamma, fit_gamma_gamma
from .mbgnbd import MBGNBD, _ll_mbgnbd
from .pareto_nbd import (
    _PNBD_SERIES_MAX_TERMS,
    ParetoNBD,
    _ll_pareto_nbd,
    _pnbd_ll_grad,
    _pnbd_ll_grad_sum,
    _PnbdIndex,
)
from .registry import REGISTRY, fit_bgnbd, fit_mbgnbd, fit_pareto_nbd, get_model, registered_models
from .covariates import CovariateFit, fit_covariate_model  # noqa: E402  (after the registry it uses)

__all__ = [
    "CovariateFit",
    "fit_covariate_model",
    "ModelFitError",
    "IndependenceWarning",
    "MODELS",
    "FittedModel",
    "GammaGammaFit",
    "fit_model",
    "fit_bgnbd",
    "fit_mbgnbd",
    "fit_pareto_nbd",
    "fit_gamma_gamma",
    "compare_models",
    "unique_rows",
    "unique_apply",
    "log_likelihood",
    "FrequencyModel",
    "SpendModel",
    "GammaGamma",
    "get_model",
    "registered_models",
]

#: Parameter names (literature order) of each registered frequency model.
MODELS: dict[str, tuple[str, ...]] = {name: cls.param_names for name, cls in REGISTRY.items()}

#: Per-row log-likelihood function of each registered model (``_LL[name](theta, x, t_x, T)``).
_LL = {name: get_model(name).log_likelihood for name in REGISTRY}


# -- the former module's private helpers, by model name (kept importable for existing callers) --------

_LABELS = {**{name: cls.label for name, cls in REGISTRY.items()}, GammaGamma.name: GammaGamma.label}
_TIME_SCALE = {name: cls.time_scale_params for name, cls in REGISTRY.items()}


def _check_model(model) -> str:
    """Registry name of ``model`` (aliases accepted); ValueError for unknown names."""
    return get_model(model).name


def _theta(model, params) -> tuple:
    return get_model(model).theta_of(params)


def _initial(model, T):
    """Log-scale starting values of the generic fitter."""
    return np.log(get_model(model).initial(None, None, np.asarray(T, dtype=float), None))


def _p_alive(model, theta, x, t_x, T):
    return get_model(model).p_alive(theta, x, t_x, T)


def _count_pmf(model, theta, t, n):
    return get_model(model).count_pmf(theta, t, n)


def _cond_expected_parts(model, theta, t_grid, x, t_x, T):
    return get_model(model).expected_purchases_parts(theta, t_grid, x, t_x, T)


def _cond_expected_grid(model, theta, t_grid, x, t_x, T):
    G, inv, h = _cond_expected_parts(model, theta, t_grid, x, t_x, T)
    return G[inv] * h[:, None]


def _cond_expected(model, theta, t, x, t_x, T):
    """E[X(t) | x, t_x, T] of a registered model (kept for callers of the former module)."""
    return get_model(model).expected_purchases(theta, t, x, t_x, T)


def _uncond_expected(model, theta, t):
    """Unconditional E[X(t)] of a registered model (kept for callers of the former module)."""
    return get_model(model).expected_purchases_new(theta, np.asarray(t, dtype=float))


# Tuning constants that tests patch on the package are read by the module that uses them:
# setting them here forwards the value there.
_FORWARD = {"_CHUNK": _base_module, "_PNBD_SERIES_MAX_TERMS": _pnbd_module}


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        target = _FORWARD.get(name)
        if target is not None:
            setattr(target, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
