"""Static covariates in the frequency and spend models (issue #13).

A model declares in class attributes which parameters the covariates of each
process scale (:attr:`FrequencyModel.covariate_links`); this module does the
rest for every such model: the per-customer parameters, the likelihood, the
fit, inference and predictions.  Adding covariates to a model is class
attributes only (see ``docs/model_interface.md``, section "Covariates").

The parameterisation (CLVTools; Bachmann, Meierer & Naef 2021, "The role of
time-varying contextual factors in latent attrition models for customer base
analysis", *Marketing Science* 40(4), 783-809, the static-covariate models; Fader & Hardie 2007,
"Incorporating time-invariant covariates into the Pareto/NBD and BG/NBD
models", note 019): customer ``i`` with covariates ``z_i`` (one vector per
process) has

    theta_ij = theta_0j exp(sign_j gamma_p' z_i)     for each parameter j linked to process p,

the other parameters shared.  Declared links:

* Pareto/NBD (Schmittlein, Morrison & Colombo 1987) and GGompertz/NBD (Bemmaor &
  Glady 2012): ``alpha_i = alpha_0 exp(-gamma_purchase' z_i)``,
  ``beta_i = beta_0 exp(-gamma_attrition' z_i)``; the purchase rate
  ``lambda ~ Gamma(r, alpha_i)`` has mean ``r / alpha_i``, so a unit of a
  covariate multiplies the mean purchase rate by ``exp(gamma_purchase)``; the
  drop-out rate ``mu ~ Gamma(s, beta_i)`` has mean ``s / beta_i``.
* BG/NBD (Fader, Hardie & Lee 2005a) and MBG/NBD (Batislam et al. 2007):
  ``alpha_i`` as above, ``a_i = a_0 exp(gamma_attrition' z_i)`` and
  ``b_i = b_0 exp(gamma_attrition' z_i)`` (CLVTools: one coefficient scales both
  parameters of the Beta drop-out distribution, so the mean drop-out probability
  ``a / (a + b)`` stays and its dispersion changes).
* Gamma-Gamma (Fader, Hardie & Lee 2005b, "RFM and CLV", eq. 3):
  ``gamma_i = gamma_0 exp(gamma_spend' z_i)``: the mean spend ``p gamma_i / (q - 1)``
  is multiplied by ``exp(gamma_spend' z_i)``.

With every coefficient at 0, ``theta_i = theta_0`` exactly and the likelihood is
the model's own, row by row (a test checks it bit for bit).

Likelihood and gradient
-----------------------
Customers with identical ``(x, t_x, T, z)`` are one row with a weight.  When the
covariates take few distinct values (dummies), rows are grouped by ``z``: in
a group the parameters are scalars and the model's own weighted objective
(:meth:`FrequencyModel.objective`, the exact gradient of Pareto/NBD's series,
BG/NBD's rearranged likelihood, ...) gives the group's log-likelihood ``LL_g`` and
``D_gj = dLL_g / d log theta_gj``.  The chain rule then gives the gradient:

    dLL / d log theta_0j = sum_g D_gj,
    dLL / d gamma_pk     = sum_g sum_{j linked to p} sign_j D_gj z_gk.

Since ``log theta_g = A_g phi`` is linear in the free parameters ``phi``, the Hessian
is ``sum_g A_g' H_g A_g`` with ``H_g`` the group's Hessian in its own log-parameters
(differences of its analytic gradient: a few evaluations per model parameter,
whatever the number of covariates).

With more than :data:`MAX_GROUPS` distinct covariate vectors (continuous
covariates) and a model whose ``log_likelihood`` broadcasts per-row parameters,
the per-row derivatives ``d LL_i / d log theta_ij`` come from the model's
``log_likelihood_grad_rows`` (BG/NBD, MBG/NBD: analytic; Pareto/NBD: analytic
in the per-customer ``alpha_i, beta_i``, central differences in the shared ``r, s``)
or else from central differences (two evaluations per parameter) and meet the
same chain rule; predictions then use per-row parameters as well.

Fit and inference
-----------------
The free parameters are ``log theta_0`` (the positive base parameters) and the
coefficients.  Start: the no-covariate fit (on a random subsample of
:data:`START_SAMPLE` customers for large data) with all coefficients 0; then one
Newton step with the Hessian there, L-BFGS-B preconditioned by it (its Cholesky
factor), and Newton steps whose last Hessian gives the standard errors.  The L2
penalty follows the lifetimes/fit.py convention on the mean:
``penalizer * sum(gamma^2)`` is added to the mean negative log-likelihood (base
parameters are not penalised; a coefficient constrained equal across processes is
counted once).  Standard errors: inverse Hessian of the total negative
log-likelihood (penalty included) in ``(log theta_0, gamma)``; base parameters
are mapped by the delta method ``se(theta) = theta se(log theta)`` and get the
intervals ``exp(log theta +- z se(log theta))``, as in :mod:`.fit`; coefficients
get ``gamma +- z se``.  A maximum at the edge of the parameter space (a base
parameter moved by more than ``e^8`` from the no-covariate fit, or ``|gamma| > 10``)
is the maximum with those parameters held on that edge (:func:`_optimise_within_edge`),
reported by a RuntimeWarning and in ``message``; they have no standard errors.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .base import ADVICE, FrequencyModel, ModelFitError, SpendModel, _frequency_arrays, unique_rows
from .fit import _Z95, _grad_hessian, _invert_hessian

__all__ = ["CovariateFit", "fit_covariate_model", "covariate_log_likelihood", "covariate_models",
           "simulate_covariate_summary",
           "per_customer_theta"]

#: at most this many distinct covariate vectors: the likelihood runs once per group (the model's fast path)
MAX_GROUPS = 256
#: above this many customers the optimiser's start is a no-covariate fit on a random subsample of this size
START_SAMPLE = 100_000
_H_ROW = 1e-5          # step in log theta of the per-row central differences
_EDGE_LOG = 8.0        # a base parameter this far (in log) from the no-covariate fit's (x or / 3,000): the edge
_EDGE_GAMMA = 10.0     # |gamma| beyond this (a multiplier beyond e^10): likewise
_ROOT_STEP = 1e-3      # Newton steps this short (max over log-parameters and coefficients): taken on the gradient


# ---------------------------------------------------------------------------
# model lookup
# ---------------------------------------------------------------------------

def _get(name):
    """The model instance (frequency models from the registry, or the Gamma-Gamma spend model)."""
    from .gamma_gamma import GammaGamma  # noqa: PLC0415
    from .registry import get_model  # noqa: PLC0415

    if isinstance(name, (FrequencyModel, SpendModel)):
        return name
    if str(name).lower().replace("-", "_").replace(" ", "_") in ("gamma_gamma", "gg", "gammagamma"):
        return GammaGamma()
    return get_model(name)


def covariate_models() -> tuple[str, ...]:
    """Registry names of the frequency models that declare covariate links (plus ``"gamma_gamma"``)."""
    from .registry import REGISTRY  # noqa: PLC0415

    return tuple(k for k, cls in REGISTRY.items() if cls.covariate_links) + ("gamma_gamma",)


def _processes(model) -> tuple[str, ...]:
    return tuple(model.covariate_links)


# ---------------------------------------------------------------------------
# per-customer parameters
# ---------------------------------------------------------------------------

def per_customer_theta(model, theta0, coefficients: dict, Z: dict) -> tuple:
    """``theta_i`` of every row: ``theta_0j exp(sign_j gamma_p' z_i)`` for the linked parameters.

    Parameters
    ----------
    model : FrequencyModel or SpendModel
    theta0 : sequence
        Base parameters (values at ``z = 0``) in ``param_names`` order.
    coefficients : dict
        process -> 1-D array of coefficients (same order as the columns of ``Z[process]``).
    Z : dict
        process -> (n, k) array of covariates.

    Returns
    -------
    tuple
        ``param_names`` order; linked parameters are (n,) arrays, the others the scalars of ``theta0``.
    """
    names = list(model.param_names)
    log_f = {}
    for proc, links in model.covariate_links.items():
        if proc not in Z or Z[proc] is None or Z[proc].shape[1] == 0:
            continue
        eta = Z[proc] @ np.asarray(coefficients[proc], dtype=float)
        for param, sign in links:
            log_f[param] = log_f.get(param, 0.0) + sign * eta
    out = []
    for j, k in enumerate(names):
        v = float(theta0[j])
        out.append(v * np.exp(log_f[k]) if k in log_f else v)
    return tuple(out)


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------

def _covariate_matrix(Z, index, process) -> tuple[np.ndarray, list[str]]:
    """A numeric (n, k) matrix of ``Z`` aligned to ``index``; errors name the column, the rule and examples."""
    if Z is None:
        return None, []
    if isinstance(Z, pd.Series):
        Z = Z.to_frame()
    if not isinstance(Z, pd.DataFrame):
        raise TypeError(f"Z_{process} must be a DataFrame indexed by customer id, got {type(Z).__name__}")
    if Z.shape[1] == 0:
        return None, []
    if Z.columns.duplicated().any():
        raise ValueError(f"Z_{process}: duplicated column(s) {list(Z.columns[Z.columns.duplicated()])}")
    if index is not None:
        missing = index.difference(Z.index)
        if len(missing):
            raise ValueError(f"Z_{process}: {len(missing)} customer(s) of the summary have no covariate row "
                             f"(e.g. {list(missing[:5])})")
        if Z.index.duplicated().any():
            dup = Z.index[Z.index.duplicated()].unique()
            raise ValueError(f"Z_{process}: {len(dup)} customer id(s) appear more than once (e.g. {list(dup[:5])})")
        Z = Z.loc[index]
    cols = [str(c) for c in Z.columns]
    for c, orig in zip(cols, Z.columns):
        v = Z[orig]
        if not (pd.api.types.is_numeric_dtype(v) or pd.api.types.is_bool_dtype(v)):
            raise ValueError(f"Z_{process}: column {c!r} is not numeric (dtype {v.dtype}); make dummies first "
                             f"(e.g. values {list(pd.unique(v)[:5])})")
        a = v.to_numpy(dtype=float)
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"Z_{process}: column {c!r} has {int(bad.sum())} missing/non-finite value(s) "
                             f"(e.g. customers {list(Z.index[bad][:5])})")
        if len(a) > 1 and np.all(a == a[0]):
            raise ValueError(f"Z_{process}: column {c!r} is constant ({a[0]:g} for all {len(a)} customers); "
                             "its coefficient is not identified (the base parameter plays its role)")
    return Z.to_numpy(dtype=float), cols


@dataclass
class _Layout:
    """The free parameter vector ``phi = (log theta_0 free, gamma free)`` and how it maps to the model."""

    model: object
    base_free: list            # names of the base parameters that are estimated
    fixed: dict                # base parameters held fixed
    keys: list                 # (process, covariate) of every coefficient, in order
    free_of_key: np.ndarray    # index into the free coefficients of each key
    n_gamma_free: int
    cov_names: dict            # process -> covariate names

    @property
    def n_base(self):
        return len(self.base_free)

    def theta0(self, phi):
        names = list(self.model.param_names)
        th = np.array([self.fixed.get(k, np.nan) for k in names])
        for i, k in enumerate(self.base_free):
            th[names.index(k)] = np.exp(phi[i])
        return th

    def gammas(self, phi):
        """process -> coefficient vector (in ``cov_names[process]`` order)."""
        full = np.asarray(phi[self.n_base:], dtype=float)[self.free_of_key]
        out, i = {}, 0
        for proc, cols in self.cov_names.items():
            out[proc] = full[i:i + len(cols)]
            i += len(cols)
        return out

    def free_names(self):
        first = {}
        for key, f in zip(self.keys, self.free_of_key):
            first.setdefault(int(f), key)
        return list(self.base_free) + [f"{first[f][0]}.{first[f][1]}" for f in range(self.n_gamma_free)]


def _layout(model, cov_names: dict, constrain_equal, fixed) -> _Layout:
    keys = [(p, c) for p, cols in cov_names.items() for c in cols]
    constrain_equal = tuple(constrain_equal or ())
    for c in constrain_equal:
        where = [p for p, cols in cov_names.items() if c in cols]
        if len(where) < 2:
            raise ValueError(f"constrain_equal: covariate {c!r} must be in the covariates of two processes "
                             f"(it is in {where or 'none'}; purchase: {cov_names.get('purchase', [])}, "
                             f"attrition: {cov_names.get('attrition', [])})")
    free_of_key, seen, n = [], {}, 0
    for p, c in keys:
        if c in constrain_equal:
            if c not in seen:
                seen[c] = n
                n += 1
            free_of_key.append(seen[c])
        else:
            free_of_key.append(n)
            n += 1
    names = list(model.param_names)
    fixed = dict(fixed or {})
    base_free = [k for k in names if k not in fixed]
    return _Layout(model, base_free, fixed, keys, np.array(free_of_key, dtype=int), n, cov_names)


# ---------------------------------------------------------------------------
# the weighted likelihood and its gradient
# ---------------------------------------------------------------------------

class _Objective:
    """``phi -> (sum_i w_i LL_i, dLL/dphi)`` on the weighted unique rows (module docstring)."""

    def __init__(self, model, layout: _Layout, data: tuple, Z: dict, w, spend: bool):
        self.model, self.layout, self.spend = model, layout, spend
        self.data = tuple(np.asarray(v, dtype=float) for v in data)
        self.Z = {p: z for p, z in Z.items() if z is not None}
        self.w = np.asarray(w, dtype=float)
        self.N = float(self.w.sum())
        names = list(model.param_names)
        self.j_of = {k: names.index(k) for k in names}
        allZ = np.column_stack([self.Z[p] for p in layout.cov_names]) if self.Z else np.zeros((len(self.w), 0))
        (*gcols,), ginv, _ = unique_rows(*allZ.T) if allZ.shape[1] else ([], np.zeros(len(self.w), int), None)
        self.n_groups = len(gcols[0]) if gcols else 1
        self.grouped = self.n_groups <= MAX_GROUPS or not model.theta_broadcasts
        if self.grouped:
            self.ginv = ginv
            self.groups = [np.flatnonzero(ginv == g) for g in range(self.n_groups)]
            self.Zg = {p: np.stack([z[rows[0]] for rows in self.groups]) for p, z in self.Z.items()}
            self.objs = [self._group_objective(rows) for rows in self.groups]

    def _group_objective(self, rows):
        if self.spend:
            from .gamma_gamma import _GammaGammaObjective  # noqa: PLC0415

            x, m_x = (v[rows] for v in self.data)
            o = _GammaGammaObjective(x, m_x, self.w[rows])
            return lambda th: o(th)[:2]
        x, t_x, T = (v[rows] for v in self.data)
        return self.model.objective(x, t_x, T, self.w[rows])

    def _group_numeric(self, g, th):
        """LL of group g and d/d log theta by central differences (when the fast path does not apply)."""
        rows = self.groups[g]
        args = tuple(v[rows] for v in self.data)
        w = self.w[rows]

        def f(t):
            with np.errstate(all="ignore"):
                return float(np.sum(w * self.model.log_likelihood(tuple(t), *args)))

        ll = f(th)
        D = np.zeros(len(th))
        for j, k in enumerate(self.model.param_names):
            if k in self.layout.fixed:
                continue
            up, dn = th.copy(), th.copy()
            up[j] *= np.exp(_H_ROW)
            dn[j] *= np.exp(-_H_ROW)
            D[j] = (f(up) - f(dn)) / (2 * _H_ROW)
        return ll, D

    def _chain(self, D_base, D_param_by_z):
        """Gradient w.r.t. phi from d/d log theta_0 (summed) and per-process sums ``sum D_j z``."""
        lay = self.layout
        g_base = np.array([D_base[self.j_of[k]] for k in lay.base_free])
        g_full = []
        for proc, cols in lay.cov_names.items():
            acc = np.zeros(len(cols))
            for param, sign in self.model.covariate_links[proc]:
                acc += sign * D_param_by_z[proc][self.j_of[param]]
            g_full.append(acc)
        g_full = np.concatenate(g_full) if g_full else np.zeros(0)
        g_gam = np.bincount(lay.free_of_key, weights=g_full, minlength=lay.n_gamma_free)
        return np.concatenate([g_base, g_gam])

    def __call__(self, phi):
        lay = self.layout
        th0 = lay.theta0(phi)
        gam = lay.gammas(phi)
        if self.grouped:
            TH = self._group_thetas(phi)
            ll = 0.0
            D = np.zeros_like(TH)
            for g in range(self.n_groups):
                llg, D[g] = self._group_D(g, TH[g])
                ll += llg
            self._last_D = (np.asarray(phi, dtype=float).tobytes(), D)    # reused by a forward-difference Hessian
            return ll, np.einsum("gp,gpk->k", D, self._A())
        thr = list(per_customer_theta(self.model, th0, gam, self.Z))
        rows_grad = getattr(self.model, "log_likelihood_grad_rows", None)
        if rows_grad is not None:       # row path with the model's analytic per-row gradient
            with np.errstate(all="ignore"):
                llr, G = rows_grad(tuple(thr), *self.data)
            if np.all(np.isfinite(llr)) and np.all(np.isfinite(G)):
                wG = self.w[:, None] * G
                return float(self.w @ llr), self._chain(wG.sum(axis=0), {p: wG.T @ z for p, z in self.Z.items()})
        # row path: per-row derivatives by central differences in log theta_ij
        with np.errstate(all="ignore"):
            llr = self.model.log_likelihood(tuple(thr), *self.data)
        ll = float(self.w @ llr)
        D_base = np.zeros(len(thr))
        D_z = {p: np.zeros((len(thr), z.shape[1])) for p, z in self.Z.items()}
        linked = {param for links in self.model.covariate_links.values() for param, _ in links}
        for j, k in enumerate(self.model.param_names):
            if k in lay.fixed and k not in linked:
                continue
            up, dn = list(thr), list(thr)
            up[j] = thr[j] * np.exp(_H_ROW)
            dn[j] = thr[j] * np.exp(-_H_ROW)
            with np.errstate(all="ignore"):
                d = (self.model.log_likelihood(tuple(up), *self.data)
                     - self.model.log_likelihood(tuple(dn), *self.data)) / (2 * _H_ROW)
            wd = self.w * d
            D_base[j] = wd.sum()
            for p, z in self.Z.items():
                D_z[p][j] = wd @ z
        return ll, self._chain(D_base, D_z)

    def _A(self):
        """(G, P, k) maps: d log theta_g / d phi for every group (constant: the link is log-linear in phi)."""
        if getattr(self, "_A_cache", None) is not None:
            return self._A_cache
        lay, P = self.layout, len(self.model.param_names)
        A = np.zeros((self.n_groups, P, len(lay.base_free) + lay.n_gamma_free))
        for i, k in enumerate(lay.base_free):
            A[:, self.j_of[k], i] = 1.0
        col = 0
        for proc, cols in lay.cov_names.items():
            for kk in range(len(cols)):
                f = lay.free_of_key[col]
                for param, sign in self.model.covariate_links[proc]:
                    A[:, self.j_of[param], lay.n_base + f] += sign * self.Zg[proc][:, kk]
                col += 1
        self._A_cache = A
        return A

    def _group_D(self, g, th):
        """``(LL_g, d LL_g / d log theta_g)`` of one group at scalar parameters ``th``."""
        obj = self.objs[g]
        out = None
        if obj is not None:
            with np.errstate(all="ignore"):
                out = obj(tuple(th))
        if out is not None and np.isfinite(out[0]) and np.all(np.isfinite(out[1])):
            return float(out[0]), np.asarray(out[1], dtype=float) * th
        return self._group_numeric(g, th)

    def _group_thetas(self, phi):
        lay = self.layout
        th0, gam = lay.theta0(phi), lay.gammas(phi)
        thg = per_customer_theta(self.model, th0, gam, self.Zg) if self.Zg else th0
        return np.column_stack([np.broadcast_to(np.asarray(v, dtype=float), (self.n_groups,)) for v in thg])

    def hessian(self, phi, h=None, central=True):
        """Hessian of the log-likelihood in phi: ``sum_g A_g' H_g A_g``.

        ``log theta_g = A_g phi`` is linear in phi, so only the groups' Hessians ``H_g``
        in ``log theta_g`` are needed: central differences of each group's analytic
        gradient, two evaluations per model parameter (not per coefficient), step
        ``h = 1e-3`` (error of order ``h^2``).  A smaller step lets the gradient's rounding
        through: at ``a, b ~ 1e4`` its ``gammaln`` terms cancel to about 1e-9, and on the
        apparel fit held at the edge the standard errors differed between an AVX-512 and an
        AVX2 run by 1e-4 at ``h = 1e-5``, 1.5e-5 at 1e-4 and 6e-7 at 1e-3 (the step moved
        them by 8e-6 from 1e-4 to 1e-3).  Or forward differences with ``h = 1e-5`` (one
        evaluation per parameter, error ``h``: the optimiser's Newton steps).  Falls back to
        differences of the full gradient on the row path.
        """
        if h is None:
            h = 1e-3 if central else 1e-5
        if not self.grouped:
            return _grad_hessian(lambda ph: np.asarray(self(ph)[1], dtype=float), phi, h=h)
        TH = self._group_thetas(phi)
        A = self._A()
        P = TH.shape[1]
        active = [j for j in range(P) if np.any(A[:, j, :] != 0)]
        H = np.zeros((A.shape[2], A.shape[2]))
        last = getattr(self, "_last_D", None)
        D_at = last[1] if last is not None and last[0] == np.asarray(phi, dtype=float).tobytes() else None
        for g in range(self.n_groups):
            Hg = np.zeros((P, P))
            if central:
                for j in active:
                    up, dn = TH[g].copy(), TH[g].copy()
                    up[j] *= np.exp(h)
                    dn[j] *= np.exp(-h)
                    Hg[j] = (self._group_D(g, up)[1] - self._group_D(g, dn)[1]) / (2 * h)
            else:     # forward differences: one evaluation per parameter (error O(h) ~ 1e-5 relative)
                D0 = D_at[g] if D_at is not None else self._group_D(g, TH[g])[1]
                for j in active:
                    up = TH[g].copy()
                    up[j] *= np.exp(h)
                    Hg[j] = (self._group_D(g, up)[1] - D0) / h
            Hg = 0.5 * (Hg + Hg.T)
            H += A[g].T @ Hg @ A[g]
        return H

    def rows(self, phi):
        """Per-row log-likelihood at phi (unweighted), once per group with scalar parameters when grouped."""
        lay = self.layout
        th0, gam = lay.theta0(phi), lay.gammas(phi)
        return covariate_log_likelihood(self.model, th0, gam, *self.data, Z=self.Z)


def covariate_log_likelihood(model, theta0, coefficients: dict, *data, Z: dict) -> np.ndarray:
    """Per-row log-likelihood with covariates: the model's ``log_likelihood`` at ``theta_i``.

    Evaluated once per distinct covariate vector with scalar parameters (the
    model's own code path, so with all coefficients 0 the values are the
    no-covariate ones bit for bit); ``data`` is ``(x, t_x, T)`` or, for
    Gamma-Gamma, ``(x, m_x)``.

    Parameters
    ----------
    model : str or model instance
    theta0 : sequence
        Base parameters in ``param_names`` order.
    coefficients : dict
        process -> coefficient vector (columns of ``Z[process]``).
    Z : dict
        process -> (n, k) covariates.
    """
    model = _get(model)
    data = tuple(np.asarray(v, dtype=float).ravel() for v in data)
    Z = {p: np.asarray(z, dtype=float).reshape(len(data[0]), -1) for p, z in Z.items() if z is not None}
    if not Z:
        return np.asarray(model.log_likelihood(tuple(float(v) for v in theta0), *data), dtype=float)
    allZ = np.column_stack(list(Z.values()))
    _, ginv, _ = unique_rows(*allZ.T)
    out = np.empty(len(data[0]))
    for g in range(int(ginv.max()) + 1 if len(ginv) else 0):
        rows = np.flatnonzero(ginv == g)
        th = per_customer_theta(model, theta0, coefficients, {p: z[rows[:1]] for p, z in Z.items()})
        th = tuple(float(np.asarray(v).ravel()[0]) for v in th)
        with np.errstate(all="ignore"):
            out[rows] = model.log_likelihood(th, *(v[rows] for v in data))
    return out


# ---------------------------------------------------------------------------
# the optimiser
# ---------------------------------------------------------------------------

def _positive_definite(H) -> bool:
    try:
        np.linalg.cholesky(0.5 * (H + H.T))
    except np.linalg.LinAlgError:
        return False
    return True


def _optimise(total_nll, total_grad, total_hess, phi0, N, label, n_base):
    """L-BFGS-B on the mean negative log-likelihood, then Newton steps with the structured Hessian.

    Returns ``(phi, converged, message, H)`` with ``H`` the Hessian (central differences) of the total
    negative log-likelihood at ``phi`` (None if not computed there).  Raises :class:`ModelFitError` as
    :func:`helpers.models.fit._minimise` does.
    """
    from scipy import optimize  # noqa: PLC0415

    from .fit import _LOG_BOUND, _no_worse  # noqa: PLC0415

    def fun(phi):
        v = total_nll(phi) / N
        return v if np.isfinite(v) else 1e100

    def jac(phi):
        g = total_grad(phi) / N
        return g if np.all(np.isfinite(g)) else np.zeros_like(g)

    phi0 = np.asarray(phi0, float)
    bounds = [(-_LOG_BOUND - 5, _LOG_BOUND + 5)] * len(phi0)
    with np.errstate(all="ignore"):
        # precondition with the Hessian at the start (the no-covariate optimum, coefficients 0): in
        # u = L' (phi - phi0), H0 = L L', the problem is close to the identity quadratic and L-BFGS
        # needs a few evaluations instead of dozens
        L = None
        g0 = jac(phi0)                     # first: the Hessian below reuses the groups' gradients here
        try:
            H0 = total_hess(phi0) / N
            if np.all(np.isfinite(H0)):
                L = np.linalg.cholesky(0.5 * (H0 + H0.T))
        except np.linalg.LinAlgError:
            L = None
        if L is not None:
            # first a Newton step with that Hessian (L-BFGS's first trial step has unit length in u, several
            # times too long here: extreme parameters where the likelihood's fast path does not apply)
            step = np.linalg.solve(L.T, np.linalg.solve(L, g0))
            f0, t = fun(phi0), 1.0
            while t > 1e-3 and not fun(phi0 - t * step) < f0:
                t *= 0.5
            if t > 1e-3:
                phi0 = phi0 - t * step

            # scaled so that L-BFGS's first trial step (unit length) is the Newton step with H0
            c = 1.0 / max(float(np.linalg.norm(np.linalg.solve(L, jac(phi0)))), 1e-12)

            def to_phi(u):
                return phi0 + np.linalg.solve(L.T, u / c)

            res = optimize.minimize(lambda u: fun(to_phi(u)), np.zeros(len(phi0)),
                                    jac=lambda u: np.linalg.solve(L, jac(to_phi(u))) / c, method="L-BFGS-B",
                                    options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-10})
            phi = to_phi(res.x)
            if not np.all(np.abs(phi) < _LOG_BOUND + 5):
                L = None
        if L is None:
            res = optimize.minimize(fun, phi0, jac=jac, method="L-BFGS-B", bounds=bounds,
                                    options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9})
            phi = res.x
        H, H_at = None, None
        central = False
        for _ in range(8):
            g = total_grad(phi)
            if not np.all(np.isfinite(g)) or np.max(np.abs(g)) / N < 1e-9:
                break
            H, H_at = total_hess(phi, central=central), phi.copy()
            try:
                step = np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                break
            if not np.all(np.isfinite(step)) or np.max(np.abs(step)) > 1.0:
                break
            # a step is taken when the objective is no worse within its rounding noise and the gradient
            # smaller (near the optimum the decrease falls below that noise: fit._no_worse)
            f0, t, g_mean = fun(phi), 1.0, g / N
            while t > 1e-3 and not _no_worse(fun(phi - t * step), f0, lambda c=phi - t * step: jac(c), g_mean):
                t *= 0.5
            if t < 1.0 and not central:
                # the full step failed: the forward-difference Hessian is too rough here (a ridge nearby);
                # the following steps use central differences
                central = True
                continue
            if t < 1.0 and np.max(np.abs(step)) < _ROOT_STEP and _positive_definite(H) \
                    and np.max(np.abs(jac(phi - step))) < np.max(np.abs(g_mean)):
                # a short Newton step that shrinks the gradient, at a minimum (H positive definite), is taken
                # even where the objective cannot tell: near a ridge its rounding noise (gammaln of large
                # a, b) exceeds the step's decrease
                t = 1.0
            if t <= 1e-3:
                break
            phi = phi - t * step
        final, grad = fun(phi), jac(phi)
    if not np.isfinite(final) or final >= 1e99 or not np.all(np.isfinite(phi)):
        raise ModelFitError(f"{label}: the log-likelihood is not finite at the optimiser's end point. {ADVICE}")
    if np.any(np.abs(phi[:n_base]) >= _LOG_BOUND) or np.any(np.abs(phi[n_base:]) >= _LOG_BOUND):
        exc = ModelFitError(f"{label} did not converge: a parameter ran off to 0 or infinity (log-parameters and "
                            f"coefficients {np.round(phi, 3).tolist()}); the data do not identify the model. "
                            f"Try penalizer=... on the coefficients. {ADVICE}")
        # the end point too: where the likelihood rises along a ridge, whether the optimiser stops short of the
        # bound or reaches it depends on the machine's rounding; either way the parameter is beyond the edge
        exc.phi = phi
        raise exc
    converged = bool(np.max(np.abs(grad)) < 1e-5)
    if not converged:
        exc = ModelFitError(f"{label} did not converge ({res.message}; max |mean gradient| "
                            f"{np.max(np.abs(grad)):.2g}); try penalizer=... on the coefficients. {ADVICE}")
        exc.phi = phi                    # the end point (:func:`_optimise_within_edge` goes on from it)
        raise exc
    # the polish's last Hessian is reused for the standard errors only if it was computed at the end point
    # by central differences (a Hessian 1e-4 away is off by about 1e-4 relative, and where it was computed
    # depends on the optimiser's path, so on the machine's rounding)
    if H_at is None or not central or not np.array_equal(H_at, phi):
        H = None
    return phi, converged, str(res.message), H


def _optimise_within_edge(total_nll, total_grad, total_hess, phi0, N, label, n_base, log_start):
    """:func:`_optimise`, with the parameters that run off held at the edge of the parameter space.

    A parameter is at the edge when a base parameter's log is more than ``_EDGE_LOG`` from the
    no-covariate fit's (``log_start``) or a coefficient's ``|gamma|`` exceeds ``_EDGE_GAMMA``.  There
    the likelihood still rises along a ridge (e.g. BG/NBD's ``a, b -> infinity`` with ``a / (a + b)``
    fixed) and the optimiser's end point is arbitrary: it depends on the last bits of the
    arithmetic, so on the machine.  The parameter furthest beyond the edge is held on it
    and the others are fitted again, until none is beyond: the maximum on that boundary, the same
    on any machine.  One at a time, since two parameters running off together along a ridge keep
    their ratio only if one of them is free; the free ones start again from ``phi0`` (from the
    end point, a held parameter's ridge partners would start far out).

    Returns ``(phi, converged, message, H, held)``: ``H`` the Hessian of the free parameters (or
    None), ``held`` index -> value of the parameters held.
    """
    held: dict[int, float] = {}

    def beyond(phi):
        over = []
        for i in range(len(phi)):
            if i not in held:
                excess = (abs(phi[i] - log_start[i]) - _EDGE_LOG) if i < n_base else (abs(phi[i]) - _EDGE_GAMMA)
                if excess > 0:
                    over.append((excess, i))
        return over

    try:
        phi, converged, message, H = _optimise(total_nll, total_grad, total_hess, phi0, N, label, n_base)
    except ModelFitError as exc:
        # on a ridge the free optimiser may stop short of its gradient criterion: beyond the edge, go on
        phi = getattr(exc, "phi", None)
        if phi is None or not beyond(phi):
            raise
    k = len(phi)
    for _ in range(k - 1):
        over = beyond(phi)
        if not over:
            break
        _, i = max(over)
        held[i] = (log_start[i] + np.sign(phi[i] - log_start[i]) * _EDGE_LOG if i < n_base
                   else np.sign(phi[i]) * _EDGE_GAMMA)
        free = np.array([j for j in range(k) if j not in held], dtype=int)
        full = np.asarray(phi0, dtype=float).copy()      # the others from the start: their ridge partners moved
        for j, v in held.items():
            full[j] = v

        def expand(u, full=full, free=free):
            p = full.copy()
            p[free] = u
            return p

        sub, converged, message, Hs = _optimise(
            lambda u, e=expand: total_nll(e(u)), lambda u, e=expand, f=free: total_grad(e(u))[f],
            lambda u, central=False, e=expand, f=free: total_hess(e(u), central=central)[np.ix_(f, f)],
            full[free], N, label, int(np.sum(free < n_base)))
        phi, H = expand(sub), Hs
    return phi, converged, message, H, held


# ---------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------

@dataclass
class CovariateFit:
    """A model fitted with static covariates (its contract: ``docs/model_interface.md``, "Covariates").

    Attributes
    ----------
    name, label : str
        Registry name and display name of the base model.
    dynamic : bool
        False (static covariates).
    params : dict
        Base parameters in literature order, the values at ``z = 0`` (``alpha_0``, ``beta_0``, ...).
    coefficients : dict
        process -> covariate -> gamma (every process of the model, empty when it has none).
    se, ci95 : dict
        Keyed ``"r"``, ``"alpha"``, ... and ``"purchase.<cov>"``, ``"attrition.<cov>"``,
        ``"spend.<cov>"``; ``ci95`` maps to ``(lower, upper)`` at 95% (module docstring).
    cov : DataFrame
        Covariance of the estimates (base parameters on the natural scale), keys as ``se``.
    log_likelihood : float
        Unpenalised log-likelihood at the estimates.
    aic, bic : float
        ``-2 LL + 2k`` and ``-2 LL + k log n``, ``k`` the number of estimated parameters.
    n_customers : int
    converged : bool
    penalizer : float
    constraints : tuple of str
        Covariates constrained equal across the purchase and attrition processes.
    time_unit : str or None
    message : str
        The optimiser's message, parameters held fixed, the number of covariate groups.
    n_unique, n_groups : int
        Weighted rows the fit ran on (unique ``(x, t_x, T, z)``) and distinct covariate vectors.
    nocov : FittedModel or None
        The model without covariates on the same customers, fitted without standard errors (None until
        :meth:`no_covariate_fit` or :meth:`lr_test` needs it when the start came from a subsample).
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
    penalizer: float = 0.0
    constraints: tuple = ()
    time_unit: str | None = None
    dynamic: bool = False
    message: str = ""
    n_unique: int = 0
    n_groups: int = 0
    nocov: object = field(default=None, repr=False)
    _phi: np.ndarray = field(default=None, repr=False)
    _cov_phi: np.ndarray = field(default=None, repr=False)
    _layout: _Layout = field(default=None, repr=False)
    _data: tuple = field(default=None, repr=False)

    def no_covariate_fit(self):
        """The same model without covariates on the same customers (fitted when first needed)."""
        if self.nocov is None and self._data is not None:
            from .fit import fit_model  # noqa: PLC0415
            from .gamma_gamma import fit_gamma_gamma  # noqa: PLC0415

            d = self._data
            self.nocov = (fit_gamma_gamma(x=d[0], m_x=d[1], warn=False) if len(d) == 2
                          else fit_model(self.name, x=d[0], t_x=d[1], T=d[2], time_unit=self.time_unit, _se=False))
        return self.nocov

    # -- model access -------------------------------------------------------

    @property
    def model(self):
        """The base model instance."""
        return _get(self.name)

    @property
    def theta(self) -> tuple:
        """Base parameters in ``param_names`` order."""
        return tuple(float(self.params[k]) for k in self.model.param_names)

    @property
    def n_params(self) -> int:
        return len(self._phi)

    def _gammas(self) -> dict:
        return {p: np.array(list(c.values()), dtype=float) for p, c in self.coefficients.items() if c}

    def _Z(self, n, Z_purchase=None, Z_attrition=None, Z_spend=None, index=None) -> dict:
        given = {"purchase": Z_purchase, "attrition": Z_attrition, "spend": Z_spend}
        out = {}
        for proc, cov in self.coefficients.items():
            if not cov:
                continue
            z = given.get(proc)
            if z is None:
                raise ValueError(f"{self.label} was fitted with {proc} covariates {list(cov)}: pass Z_{proc}")
            if isinstance(z, pd.DataFrame):
                missing = [c for c in cov if c not in z.columns]
                if missing:
                    raise ValueError(f"Z_{proc} lacks the fitted covariate column(s) {missing}")
                if index is not None:          # aligned with the summary's customers
                    lost = index.difference(z.index)
                    if len(lost):
                        raise ValueError(f"Z_{proc}: {len(lost)} customer(s) of the summary have no covariate "
                                         f"row (e.g. {list(lost[:5])})")
                    z = z.loc[index]
                z = z[list(cov)].to_numpy(dtype=float)
            z = np.asarray(z, dtype=float).reshape(n, -1)
            if z.shape[1] != len(cov):
                raise ValueError(f"Z_{proc} has {z.shape[1]} columns, the fit has {len(cov)} ({list(cov)})")
            out[proc] = z
        return out

    def theta_i(self, n, Z_purchase=None, Z_attrition=None, Z_spend=None) -> tuple:
        """Per-customer parameters (``per_customer_theta``) for covariates given as frames or arrays."""
        return per_customer_theta(self.model, self.theta, self._gammas(),
                                  self._Z(n, Z_purchase, Z_attrition, Z_spend))

    def _per_group(self, fn, n, Zd, row_fn=None):
        """``fn(theta_g, rows)`` once per distinct covariate vector, results placed by rows.

        With more than ``MAX_GROUPS`` distinct vectors and a model whose methods broadcast per-row
        parameters, ``row_fn(theta_rows)`` evaluates all customers at once instead.
        """
        if not Zd:
            return fn(self.theta, np.arange(n))
        allZ = np.column_stack(list(Zd.values()))
        _, ginv, _ = unique_rows(*allZ.T)
        if row_fn is not None and self.model.theta_broadcasts and len(ginv) and int(ginv.max()) + 1 > MAX_GROUPS:
            return np.asarray(row_fn(per_customer_theta(self.model, self.theta, self._gammas(), Zd)), dtype=float)
        out = None
        for g in range(int(ginv.max()) + 1):
            rows = np.flatnonzero(ginv == g)
            th = per_customer_theta(self.model, self.theta, self._gammas(), {p: z[rows[:1]] for p, z in Zd.items()})
            th = tuple(float(np.asarray(v).ravel()[0]) for v in th)
            val = np.asarray(fn(th, rows), dtype=float)
            if out is None:
                out = np.empty((n,) + val.shape[1:])
            out[rows] = val
        return out

    # -- predictions --------------------------------------------------------

    def _xtT(self, x, t_x, T):
        if isinstance(x, pd.DataFrame) and t_x is None and T is None:
            return _frequency_arrays(x, None, None, None)
        return tuple(np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))

    def expected_purchases(self, t, x, t_x=None, T=None, Z_purchase=None, Z_attrition=None) -> np.ndarray:
        """E[X(T, T+t] | x, t_x, T, z_i]: the model's ``expected_purchases`` at the customer's ``theta_i``.

        ``t`` a scalar (returns ``(n,)``) or a 1-D grid (returns ``(n, len(t))``).
        """
        index = x.index if isinstance(x, pd.DataFrame) else None
        x, t_x, T = self._xtT(x, t_x, T)
        m = self.model
        Zd = self._Z(len(x), Z_purchase, Z_attrition, index=index)
        t_arr = np.asarray(t, dtype=float)

        def fn(th, rows):
            with np.errstate(all="ignore"):
                if t_arr.ndim == 0:
                    G, inv, h = m.expected_purchases_parts(th, [float(t_arr)], x[rows], t_x[rows], T[rows])
                    return G[inv, 0] * h
                G, inv, h = m.expected_purchases_parts(th, t_arr, x[rows], t_x[rows], T[rows])
                return G[inv] * h[:, None]

        def row_fn(th):
            with np.errstate(all="ignore"):
                if t_arr.ndim == 0:
                    return m.expected_purchases(th, float(t_arr), x, t_x, T)
                th2 = tuple(np.asarray(v)[:, None] if np.ndim(v) else v for v in th)
                return m.expected_purchases(th2, t_arr[None, :], x[:, None], t_x[:, None], T[:, None])

        return self._per_group(fn, len(x), Zd, row_fn)

    def p_alive(self, x, t_x=None, T=None, Z_purchase=None, Z_attrition=None) -> np.ndarray:
        """P(alive at T | x, t_x, T, z_i): the model's ``p_alive`` at the customer's ``theta_i``."""
        index = x.index if isinstance(x, pd.DataFrame) else None
        x, t_x, T = self._xtT(x, t_x, T)
        m = self.model
        Zd = self._Z(len(x), Z_purchase, Z_attrition, index=index)

        def fn(th, rows):
            with np.errstate(all="ignore"):
                return m.p_alive(th, x[rows], t_x[rows], T[rows])

        def row_fn(th):
            with np.errstate(all="ignore"):
                return m.p_alive(th, x, t_x, T)

        return self._per_group(fn, len(x), Zd, row_fn)

    def expected_spend(self, x, m_x=None, Z_spend=None) -> np.ndarray:
        """Gamma-Gamma: E[mean spend | x, m_x, z_i] (FHL 2005b eq. 5 at ``gamma_i``)."""
        index = None
        if isinstance(x, pd.DataFrame) and m_x is None:
            index, x, m_x = x.index, x["x"], x["m_x"]
        x, m_x = (np.asarray(v, dtype=float).ravel() for v in (x, m_x))
        Zd = self._Z(len(x), Z_spend=Z_spend, index=index)
        return self._per_group(lambda th, rows: self.model.expected_spend(th, x[rows], m_x[rows]), len(x), Zd,
                               lambda th: self.model.expected_spend(th, x, m_x))

    # -- inference ----------------------------------------------------------

    def lr_test(self, nocov_fit=None) -> dict:
        """Likelihood-ratio test of the covariates: ``statistic = 2 (LL_cov - LL_nocov)``.

        Against the same model without covariates on the same customers
        (``nocov_fit``, a :class:`~helpers.models.FittedModel`; default
        :meth:`no_covariate_fit`).  ``df`` = the number of estimated coefficients
        (a constrained pair counts once); ``p_value`` from the chi-square
        distribution (the nested hypothesis all gamma = 0).
        """
        nocov = self.no_covariate_fit() if nocov_fit is None else nocov_fit
        if nocov is None:
            raise ValueError("no no-covariate fit to test against: pass nocov_fit")
        if int(nocov.n_customers) != int(self.n_customers):
            raise ValueError(f"the no-covariate fit has {nocov.n_customers} customers, this fit "
                             f"{self.n_customers}: the likelihoods are not comparable")
        stat = 2.0 * (float(self.log_likelihood) - float(nocov.log_likelihood))
        df = int(self._layout.n_gamma_free)
        return {"statistic": stat, "df": df, "p_value": float(stats.chi2.sf(max(stat, 0.0), df))}

    def multipliers(self, level: float = 0.95) -> pd.DataFrame:
        """Multiplier of each process's quantity per unit of each covariate, with intervals.

        For covariate ``k`` of process ``p``: ``Q(theta_0 with the linked parameters
        times exp(sign gamma_pk)) / Q(theta_0)`` with ``Q`` the model's
        :meth:`~FrequencyModel.covariate_quantity` (described in the ``quantity``
        column):

        * purchase (every frequency model): the mean purchase rate ``E[lambda] = r / alpha``;
          ``alpha_i = alpha_0 exp(-gamma z)`` gives the multiplier ``exp(gamma)``.
        * attrition, Pareto/NBD: the lifetime ``tau`` with ``P(tau > t) = (beta / (beta + t))^s``
          is ``beta`` times a variable free of ``beta``, so its median ``beta (2^(1/s) - 1)``,
          every other quantile and its mean ``beta / (s - 1)`` (where finite, ``s > 1``)
          have the multiplier ``exp(-gamma)`` (``beta_i = beta_0 exp(-gamma z)``).
        * attrition, GGompertz/NBD: the median lifetime ``log(1 + beta (2^(1/s) - 1)) / b``
          (its ratio depends on the base parameters; ``exp(-gamma)`` in the limit ``b -> 0``).
        * attrition, BG/NBD and MBG/NBD: ``a`` and ``b`` scale together, so the mean
          drop-out probability ``a / (a + b)`` does not move; the quantity is the median
          number of drop-out chances a customer survives, ``m_50`` with
          ``B(a, b + m) / B(a, b) = 1/2`` (the chances are the repeat purchases, and for
          MBG/NBD also the first purchase; the mean ``E[1/p]`` is infinite for ``a <= 1``).
        * spend, Gamma-Gamma: the mean spend ``p gamma / (q - 1)``, multiplier ``exp(gamma)``.

        The interval is
        ``exp(log m +- z se(log m))``, ``se(log m)`` by the delta method over all
        estimated parameters (exactly ``exp(+-gamma +- z se)`` for single-parameter
        exponential links).

        Returns
        -------
        DataFrame with columns process, covariate, gamma, se, quantity, multiplier, lower, upper.
        """
        z = float(stats.norm.ppf(0.5 + level / 2.0))
        m, lay = self.model, self._layout
        rows = []
        phi = self._phi
        for proc, cov in self.coefficients.items():
            for k, (cname, g) in enumerate(cov.items()):
                def log_mult(ph, proc=proc, k=k):
                    th0 = lay.theta0(ph)
                    gam = lay.gammas(ph)
                    zv = {p: np.zeros((1, len(v))) for p, v in gam.items()}
                    zv[proc][0, k] = 1.0
                    th1 = per_customer_theta(m, th0, gam, zv)
                    th1 = tuple(float(np.asarray(v).ravel()[0]) for v in th1)
                    with np.errstate(all="ignore"):
                        return float(np.log(m.covariate_quantity(th1, proc)) - np.log(m.covariate_quantity(th0, proc)))
                try:
                    lm = log_mult(phi)
                except NotImplementedError:
                    lm = np.nan
                if not np.isfinite(lm):
                    lm = np.nan
                se_lm = np.nan
                if np.isfinite(lm) and self._cov_phi is not None:
                    h = 1e-6
                    grad = np.empty(len(phi))
                    for i in range(len(phi)):
                        e = np.zeros(len(phi))
                        e[i] = h
                        grad[i] = (log_mult(phi + e) - log_mult(phi - e)) / (2 * h)
                    se_lm = float(np.sqrt(max(grad @ self._cov_phi @ grad, 0.0)))
                key = f"{proc}.{cname}"
                rows.append({"process": proc, "covariate": cname, "gamma": g, "se": self.se.get(key, np.nan),
                             "quantity": m.covariate_quantities.get(proc, ""), "multiplier": np.exp(lm),
                             "lower": np.exp(lm - z * se_lm), "upper": np.exp(lm + z * se_lm)})
        return pd.DataFrame(rows, columns=["process", "covariate", "gamma", "se", "quantity", "multiplier",
                                           "lower", "upper"])

    def params_table(self) -> pd.DataFrame:
        """Estimates, standard errors and 95% intervals of the base parameters and coefficients."""
        est = dict(self.params)
        for p, c in self.coefficients.items():
            est.update({f"{p}.{k}": v for k, v in c.items()})
        out = pd.DataFrame({"estimate": pd.Series(est), "se": pd.Series(self.se)})
        out["lower95"] = [self.ci95[k][0] for k in out.index]
        out["upper95"] = [self.ci95[k][1] for k in out.index]
        out.index.name = "parameter"
        return out

    def to_results(self) -> dict:
        """``{"params", "coefficients", "se", "log_likelihood", "aic", "bic", "n_customers"}`` (results.json)."""
        return {"params": {k: float(v) for k, v in self.params.items()},
                "coefficients": {p: {k: float(v) for k, v in c.items()} for p, c in self.coefficients.items()},
                "se": {k: float(v) for k, v in self.se.items()},
                "log_likelihood": float(self.log_likelihood), "aic": float(self.aic), "bic": float(self.bic),
                "n_customers": int(self.n_customers)}

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        cs = "; ".join(f"{p}: " + ", ".join(f"{k}={v:.3g}" for k, v in c.items()) for p, c in self.coefficients.items()
                       if c)
        return f"<CovariateFit {self.label}: {ps}; {cs}; LL={self.log_likelihood:.2f}, n={self.n_customers}>"


# ---------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------

def fit_covariate_model(
    name,
    summary: pd.DataFrame,
    Z_purchase: pd.DataFrame | None = None,
    Z_attrition: pd.DataFrame | None = None,
    *,
    Z_spend: pd.DataFrame | None = None,
    constrain_equal=(),
    penalizer: float = 0.0,
    time_unit: str | None = None,
    initial_coefficients: dict | None = None,
    fixed: dict | None = None,
    se: bool = True,
    nocov_fit=None,
) -> CovariateFit:
    """Fit a model with static covariates by maximum likelihood (module docstring for the equations).

    Parameters
    ----------
    name : str
        Registry name or alias of a frequency model with covariate links
        (:func:`covariate_models`), or ``"gamma_gamma"``.
    summary : DataFrame
        Indexed by customer id; ``x, t_x, T`` (frequency models) or ``x, m_x``
        (Gamma-Gamma: the repeat buyers with ``m_x > 0`` are used).
    Z_purchase, Z_attrition, Z_spend : DataFrame, optional
        Numeric covariates (dummies already made) indexed by customer id, one
        row per summary customer (extra rows are ignored).  A process without
        a frame has no covariates (CLVTools: covariates on one process only).
    constrain_equal : sequence of str
        Covariates with one coefficient for both purchase and attrition.
    penalizer : float
        L2 penalty on the coefficients: ``penalizer * sum(gamma^2)`` added to the
        mean negative log-likelihood.
    time_unit : str, optional
    initial_coefficients : dict, optional
        process -> covariate -> starting value (default 0).
    fixed : dict, optional
        Base parameters held at given values (e.g. GGompertz/NBD's ``b`` in the
        Pareto/NBD limit, which is chosen automatically when the no-covariate
        fit reports it).
    se : bool
        Compute standard errors and intervals.
    nocov_fit : FittedModel or GammaGammaFit, optional
        The same model without covariates on the same customers: the start and the default of
        :meth:`CovariateFit.lr_test`.  Default: fitted here (above ``START_SAMPLE`` customers the
        start comes from a fit on a random subsample and ``lr_test`` fits the full one when first asked).

    Returns
    -------
    CovariateFit

    Raises
    ------
    ValueError
        Unknown or covariate-free model, covariates for a process the model
        does not have, malformed covariates (the message names the column, the
        rule, the count and examples).
    ModelFitError
        The optimisation fails or does not converge.
    """
    from .fit import fit_model  # noqa: PLC0415
    from .gamma_gamma import fit_gamma_gamma  # noqa: PLC0415

    model = _get(name)
    spend = isinstance(model, SpendModel)
    if not model.covariate_links:
        raise ValueError(f"{model.label} has no covariate parameterisation; models with covariates: "
                         f"{list(covariate_models())}")
    if penalizer < 0:
        raise ValueError("penalizer must be >= 0")
    if not isinstance(summary, pd.DataFrame):
        raise TypeError("summary must be a DataFrame indexed by customer id")
    given = {"purchase": Z_purchase, "attrition": Z_attrition, "spend": Z_spend}
    for proc, z in given.items():
        if z is not None and proc not in model.covariate_links:
            raise ValueError(f"{model.label} has no {proc!r} process for covariates; its processes: "
                             f"{list(model.covariate_links)}")
    if spend:
        for c in ("x", "m_x"):
            if c not in summary.columns:
                raise ValueError(f"summary is missing column {c!r}; Gamma-Gamma needs x and m_x")
        keep = (summary["x"].to_numpy(dtype=float) > 0) & (summary["m_x"].to_numpy(dtype=float) > 0)
        summary = summary.loc[keep]
        data = (summary["x"].to_numpy(dtype=float), summary["m_x"].to_numpy(dtype=float))
    else:
        data = _frequency_arrays(summary, None, None, None)
    Zs, cov_names = {}, {}
    for proc in model.covariate_links:
        z, cols = _covariate_matrix(given.get(proc), summary.index, proc)
        if z is not None:
            Zs[proc], cov_names[proc] = z, cols
    if not Zs:
        raise ValueError("no covariates given (Z_purchase, Z_attrition / Z_spend are all None or empty); "
                         "use helpers.models.fit_model for the model without covariates")
    n = len(data[0])

    # the no-covariate fit: the start (and what lr_test compares with). Above START_SAMPLE customers the
    # start comes from a fit on a random subsample (the preconditioned optimiser needs a good start, not
    # the exact no-covariate optimum); lr_test then fits the full no-covariate model when first asked.
    if nocov_fit is not None:
        nocov, start = nocov_fit, nocov_fit
    else:
        use = np.arange(n)
        if n > START_SAMPLE:
            use = np.sort(np.random.default_rng(0).choice(n, START_SAMPLE, replace=False))
        start = (fit_gamma_gamma(x=data[0][use], m_x=data[1][use], warn=False, _se=False) if spend
                 else fit_model(model.name, x=data[0][use], t_x=data[1][use], T=data[2][use], time_unit=time_unit,
                                _se=False))
        nocov = start if n <= START_SAMPLE else None
    fixed = dict(fixed or {})
    note = ""
    auto = {k: v for k, v in (model.covariate_fixed(start) if not spend else {}).items() if k not in fixed}
    if auto:
        fixed.update(auto)
        note = ", ".join(f"{k} held at {v:.3g}" for k, v in auto.items()) + \
            " as in the no-covariate fit (the Pareto/NBD limit: the likelihood is flat along b -> 0)"
    lay = _layout(model, cov_names, constrain_equal, fixed)

    # weighted unique rows of (data, z)
    allZ = np.column_stack([Zs[p] for p in cov_names])
    if spend:
        xs, ws, Zu = data, np.ones(n), Zs
    else:
        # the covariate vector's group first (its distinct columns), then unique (x, t_x, T, group) rows
        distinct = [j for j in range(allZ.shape[1])
                    if not any(np.array_equal(allZ[:, j], allZ[:, i]) for i in range(j))]
        _, gid, _ = unique_rows(*allZ[:, distinct].T)
        (*cols,), inv, cnt = unique_rows(*data, gid)
        first = np.zeros(len(cnt), dtype=np.int64)
        first[inv[::-1]] = np.arange(n)[::-1]                 # a customer of each unique row
        xs = tuple(cols[:3])
        ws = cnt.astype(float)
        Zu = {p: Zs[p][first] for p in cov_names}
    obj = _Objective(model, lay, xs, Zu, ws, spend)
    N = obj.N

    phi0 = np.concatenate([np.log([float(start.params[k]) for k in lay.base_free]), np.zeros(lay.n_gamma_free)])
    if initial_coefficients:
        names_free = lay.free_names()
        for proc, d in initial_coefficients.items():
            for c, v in d.items():
                key = f"{proc}.{c}"
                if key not in names_free:
                    # a constrained covariate is named by its first process
                    alt = [k for k in names_free if k.endswith(f".{c}")]
                    if not alt:
                        raise ValueError(f"initial_coefficients: {key} is not a fitted coefficient ({names_free})")
                    key = alt[0]
                phi0[names_free.index(key)] = float(v)
    nb = lay.n_base

    cache: dict = {}

    def value_grad(phi):
        k = phi.tobytes()
        if cache.get("k") != k:
            cache["k"], cache["v"] = k, obj(phi)
        return cache["v"]

    def total_nll(phi):
        ll = value_grad(phi)[0]
        g = phi[nb:]
        return -ll + (penalizer * N * float(g @ g) if penalizer else 0.0)

    def total_grad(phi):
        gr = -np.asarray(value_grad(phi)[1], dtype=float)
        if penalizer:
            gr = gr.copy()
            gr[nb:] += 2.0 * penalizer * N * phi[nb:]
        return gr

    def total_hess(phi, central=False):
        H = -obj.hessian(phi, central=central)
        if penalizer:
            H = H.copy()
            H[nb:, nb:] += 2.0 * penalizer * N * np.eye(len(phi) - nb)
        return H

    label = model.label + " with covariates"
    log_start = np.log([float(start.params[k]) for k in lay.base_free])
    phi, converged, message, H, held = _optimise_within_edge(total_nll, total_grad, total_hess, phi0, N, label,
                                                             nb, log_start)
    ll = float(value_grad(phi)[0])
    k_free = len(phi)
    free_idx = np.array([i for i in range(k_free) if i not in held], dtype=int)

    # covariance in phi (conditional on the parameters held at the edge: zero rows), then mapped to the keys
    cov_phi = np.zeros((k_free, k_free))
    if se:
        if H is None:
            H = total_hess(phi, central=True)[np.ix_(free_idx, free_idx)]
        cov_phi[np.ix_(free_idx, free_idx)] = _invert_hessian(
            H, label, "weakly identified parameters or collinear covariates", stacklevel=2)
    else:
        cov_phi[:] = np.nan
    if held:
        # a maximum at the edge of the parameter space (the likelihood still rising as a parameter runs off,
        # e.g. BG/NBD's a and b -> infinity for one covariate group: no heterogeneity in its drop-out)
        names_free = lay.free_names()
        shown = [f"{names_free[i]} = {np.exp(v) if i < nb else v:.4g}" for i, v in held.items()]
        edge_note = (f"at the edge of the parameter space: {', '.join(shown)} held there (the likelihood keeps "
                     "rising as they run off; no standard errors for them, the others' are conditional on "
                     "them); try penalizer=... or fewer covariates")
        warnings.warn(f"{label}: {edge_note}", RuntimeWarning, stacklevel=2)
        message = f"{message}; {edge_note}"
    th0 = lay.theta0(phi)
    names = list(model.param_names)
    keys = names + [f"{p}.{c}" for p, c in lay.keys]
    # J maps phi to the reported values: base d theta / d log theta = theta; fixed parameters: zero rows
    J = np.zeros((len(keys), k_free))
    for i, kname in enumerate(names):
        if kname in lay.base_free:
            J[i, lay.base_free.index(kname)] = th0[i]
    for i, f in enumerate(lay.free_of_key):
        J[len(names) + i, nb + f] = 1.0
    cov = J @ cov_phi @ J.T
    for i, kname in enumerate(names):
        if kname in lay.fixed or (kname in lay.base_free and lay.base_free.index(kname) in held):
            cov[i, :] = cov[:, i] = np.nan
    for i, f in enumerate(lay.free_of_key):
        if nb + f in held:
            cov[len(names) + i, :] = cov[:, len(names) + i] = np.nan
    with np.errstate(invalid="ignore"):
        se_v = np.sqrt(np.diag(cov))
    gam = lay.gammas(phi)
    coefficients = {p: {} for p in model.covariate_links}
    for p, cols in cov_names.items():
        coefficients[p] = {c: float(v) for c, v in zip(cols, gam[p])}
    params = {k: float(v) for k, v in zip(names, th0)}
    se_d = {k: float(v) for k, v in zip(keys, se_v)}
    ci = {}
    for i, kname in enumerate(keys):
        if i < len(names):
            sl = se_v[i] / th0[i]
            ci[kname] = (float(np.exp(np.log(th0[i]) - _Z95 * sl)), float(np.exp(np.log(th0[i]) + _Z95 * sl)))
        else:
            p, c = lay.keys[i - len(names)]
            g = coefficients[p][c]
            ci[kname] = (g - _Z95 * se_v[i], g + _Z95 * se_v[i])
    n_customers = int(round(N))
    msg = message if not note else f"{message}; {note}"
    if obj.grouped:
        msg += f"; {obj.n_groups} covariate group(s)"
    return CovariateFit(
        name=model.name, label=model.label, params=params, coefficients=coefficients, se=se_d, ci95=ci,
        cov=pd.DataFrame(cov, index=keys, columns=keys), log_likelihood=ll, aic=-2 * ll + 2 * k_free,
        bic=-2 * ll + k_free * np.log(N), n_customers=n_customers, converged=converged, penalizer=float(penalizer),
        constraints=tuple(constrain_equal or ()), time_unit=time_unit, message=msg, n_unique=len(ws),
        n_groups=obj.n_groups, nocov=nocov, _phi=phi, _cov_phi=cov_phi, _layout=lay, _data=data)


# ---------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------

def simulate_covariate_summary(name, theta0, coefficients: dict, Z: dict, T, rng, t_star: float = 0.0) -> pd.DataFrame:
    """Customers of a frequency model with static covariates: ``x, t_x, T`` (and ``x_star``).

    Customer ``i`` follows the model's generative process
    (:meth:`FrequencyModel.simulate_summary`) at ``theta_i`` (:func:`per_customer_theta`);
    the customers are simulated once per distinct covariate vector, so use
    covariates with few distinct values (e.g. dummies).

    Parameters
    ----------
    name : str or FrequencyModel
    theta0 : sequence
        Base parameters (``param_names`` order).
    coefficients : dict
        process -> coefficient vector.
    Z : dict
        process -> (n, k) covariates.
    T : array_like
        Ages, one per customer.
    rng : numpy.random.Generator or int
    """
    model = _get(name)
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    T = np.asarray(T, dtype=float).ravel()
    Z = {p: np.asarray(z, dtype=float).reshape(len(T), -1) for p, z in Z.items()}
    allZ = np.column_stack(list(Z.values()))
    _, ginv, _ = unique_rows(*allZ.T)
    cols = ["x", "t_x", "T"] + (["x_star"] if t_star > 0 else [])
    out = np.empty((len(T), len(cols)))
    for g in range(int(ginv.max()) + 1):
        rows = np.flatnonzero(ginv == g)
        th = per_customer_theta(model, theta0, coefficients, {p: z[rows[:1]] for p, z in Z.items()})
        th = tuple(float(np.asarray(v).ravel()[0]) for v in th)
        out[rows] = model.simulate_summary(th, T[rows], rng, t_star)[cols].to_numpy()
    return pd.DataFrame(out, columns=cols)
