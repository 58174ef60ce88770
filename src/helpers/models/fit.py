"""Maximum-likelihood fitting of any registered model, and the fitted-model object.

The optimiser (shared by the frequency models and Gamma-Gamma): the mean
negative log-likelihood over the log-parameters, minimised with scipy's
L-BFGS-B (or trust-region Newton when an analytic Hessian is available),
followed by a few Newton steps.  The penalizer follows lifetimes' convention:
the objective is the *mean* negative log-likelihood plus
``penalizer * sum(theta**2)`` where the time-scale parameters
(``FrequencyModel.time_scale_params``) are expressed in units of the longest
customer age (max ``T`` = 1).  The same convention holds for every model
here; lifetimes' ``ParetoNBDFitter`` alone adds its penalty to the *total*
negative log-likelihood, so a given penalizer shrinks its Pareto/NBD about
n times less than ours (n customers).  Standard errors come from the Hessian of the
total negative log-likelihood in the log-parameters (central differences of
the analytic gradient when the model has one, of the likelihood otherwise),
mapped to the natural scale by the delta method
(``se(theta) = theta * se(log theta)``); 95% intervals are
``exp(log theta +- 1.96 se(log theta))`` so they stay positive.

On many unique rows (the model's ``binned_start``, 40,000 by default) :func:`fit` starts from
the optimum on rows with ``t_x`` and ``T`` rounded to a grid (:func:`_binned_start`), refined
on the rows by Newton steps with that fit's Hessian; the optimiser then converges on the rows
themselves, so the estimates are those of the data (the binned rows only choose the start).

:func:`fit` is the generic fitter behind :meth:`FrequencyModel.fit`;
:func:`fit_model` is the public entry point (input checks, unique rows).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from scipy import optimize

from .base import ADVICE, FrequencyModel, ModelFitError, _frequency_arrays, unique_rows

__all__ = ["FittedModel", "fit", "fit_model", "log_likelihood", "compare_models"]

_HESSIAN_REUSE = 1e-6  # reuse the polish's Hessian for standard errors within this distance (log scale)
_LOG_BOUND = 25.0  # |log theta| beyond this = parameter ran off to 0 or infinity
_Z95 = 1.959963984540054


# ---------------------------------------------------------------------------
# numerical derivatives
# ---------------------------------------------------------------------------

def _num_grad(f, phi, h=1e-5):
    g = np.empty_like(phi)
    for i in range(len(phi)):
        e = np.zeros_like(phi)
        e[i] = h
        g[i] = (f(phi + e) - f(phi - e)) / (2 * h)
    return g


def _num_hessian(f, phi, h=1e-4):
    k = len(phi)
    H = np.empty((k, k))
    f0 = f(phi)
    E = np.eye(k) * h
    for i in range(k):
        H[i, i] = (f(phi + E[i]) - 2 * f0 + f(phi - E[i])) / h ** 2
        for j in range(i + 1, k):
            H[i, j] = H[j, i] = (f(phi + E[i] + E[j]) - f(phi + E[i] - E[j])
                                 - f(phi - E[i] + E[j]) + f(phi - E[i] - E[j])) / (4 * h ** 2)
    return H


def _grad_hessian(grad, phi, h=1e-5):
    """Hessian as central differences of an analytic gradient (symmetrised)."""
    k = len(phi)
    H = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        H[i] = (grad(phi + e) - grad(phi - e)) / (2 * h)
    return 0.5 * (H + H.T)


def _once_per_point(f: Callable[[np.ndarray], object]) -> Callable[[np.ndarray], object]:
    """``f(phi)``, evaluated once per point: the optimiser asks for the value, the gradient
    (and the Hessian) at the same parameters, which ``f`` computes together."""
    last: dict = {}

    def at(phi):
        key = np.asarray(phi, dtype=float).tobytes()
        if last.get("key") != key:
            last["key"], last["val"] = key, f(phi)
        return last["val"]

    return at


# ---------------------------------------------------------------------------
# the optimiser
# ---------------------------------------------------------------------------

def _no_worse(f_new, f_old, g_new, g_old) -> bool:
    """Whether a step to a point with objective ``f_new`` is accepted from one with ``f_old``.

    Near an optimum the decrease of a Newton step (``g' H^-1 g / 2``) falls below the
    rounding noise of the objective (a sum over many rows); there a step is accepted when
    the objective is equal within that noise (``64 eps max(|f|, 1)``) and the gradient
    (``g_new``, a callable evaluated only then) is not larger.
    """
    if f_new <= f_old:
        return True
    tol = 64.0 * np.finfo(float).eps * max(abs(f_old), 1.0)
    if not f_new <= f_old + tol:
        return False
    g = g_new()
    return bool(np.all(np.isfinite(g)) and np.max(np.abs(g)) <= np.max(np.abs(g_old)))


class _Stopped(ModelFitError):
    """The optimiser was stopped by the caller's ``stop`` predicate at ``phi`` (log parameters)."""

    def __init__(self, message, phi):
        super().__init__(message)
        self.phi = phi


def _minimise(mean_obj, phi0, label, advice=ADVICE, mean_grad=None, hessian_out: dict | None = None,
              mean_hess=None, stop=None):
    """Minimise a mean negative log-likelihood over log-parameters; raise ModelFitError on failure.

    With an analytic ``mean_hess`` the optimiser is Newton's method in a trust region
    (scipy's ``trust-exact``), otherwise L-BFGS-B; both are followed by a few Newton steps.
    If ``hessian_out`` is a dict, the last Hessian of the Newton polish is stored in it
    (``"H"``, of the mean objective) with the point it was computed at (``"phi"``).
    """
    bounds = [(-_LOG_BOUND - 5, _LOG_BOUND + 5)] * len(phi0)

    def fun(phi):
        v = mean_obj(phi)
        return v if np.isfinite(v) else 1e100

    if mean_grad is not None:
        def jac(phi):
            g = mean_grad(phi)
            return g if np.all(np.isfinite(g)) else _num_grad(fun, phi)

        def hess(phi):
            if mean_hess is not None:
                H = mean_hess(phi)
                if np.all(np.isfinite(H)):
                    return H
            return _grad_hessian(jac, phi)
    else:
        def jac(phi):
            return _num_grad(fun, phi)

        def hess(phi):
            return _num_hessian(fun, phi, h=1e-4)

    callback = stopped = None
    if stop is not None:
        predicate, reason = stop
        stopped = []

        def callback(xk):
            if predicate(np.exp(xk)):
                stopped.append(np.array(xk, dtype=float))
                raise StopIteration

    try:
        with np.errstate(all="ignore"):
            if mean_hess is not None and mean_grad is not None:
                res = optimize.minimize(fun, np.asarray(phi0, float), jac=jac, hess=hess, method="trust-exact",
                                        options={"maxiter": 500, "gtol": 1e-9}, callback=callback)
            else:
                res = optimize.minimize(fun, np.asarray(phi0, float), jac=jac, method="L-BFGS-B", bounds=bounds,
                                        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9}, callback=callback)
            if stopped:
                raise _Stopped(f"{label}: {reason}", stopped[0])
            phi = res.x
            # a few Newton steps polish the optimum (L-BFGS-B stops on tiny relative decrease)
            for _ in range(3):
                g = jac(phi)
                if np.max(np.abs(g)) < 1e-10:
                    break
                H = hess(phi)
                if hessian_out is not None:
                    hessian_out.update(H=H, phi=phi.copy())
                try:
                    step = np.linalg.solve(H, g)
                except np.linalg.LinAlgError:
                    break
                if not np.all(np.isfinite(step)) or np.max(np.abs(step)) > 1.0:
                    break
                cand = phi - step
                if _no_worse(fun(cand), fun(phi), lambda: jac(cand), g):
                    phi = cand
                else:
                    break
            final = fun(phi)
            grad = jac(phi)
    except (FloatingPointError, ValueError, ZeroDivisionError, OverflowError) as exc:  # pragma: no cover
        raise ModelFitError(f"{label}: the optimiser failed ({type(exc).__name__}: {exc}). {advice}") from None
    if not np.isfinite(final) or final >= 1e99 or not np.all(np.isfinite(phi)):
        raise ModelFitError(f"{label}: the log-likelihood is not finite at the optimiser's end point. {advice}")
    if np.any(np.abs(phi) >= _LOG_BOUND):
        names = ", ".join(f"{v:.3g}" for v in np.exp(phi))
        raise ModelFitError(
            f"{label} did not converge: a parameter ran off to 0 or infinity (estimates {names}); "
            f"the data do not identify the model. {advice}")
    converged = bool(res.success) or np.max(np.abs(grad)) < 1e-5
    if not converged:
        raise ModelFitError(f"{label} did not converge ({res.message}; max |gradient| "
                            f"{np.max(np.abs(grad)):.2g}). {advice}")
    return phi, converged, str(res.message)


def _invert_hessian(H, label: str, why: str = "weakly identified parameters", stacklevel: int = 3) -> np.ndarray:
    """The covariance matrix ``H^-1`` of the estimates (``H`` the Hessian of the negative log-likelihood
    at the optimum), or a NaN matrix with a warning when ``H`` is singular or not positive definite."""
    try:
        cov = np.linalg.inv(H)
        ok = np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0)
    except np.linalg.LinAlgError:
        ok = False
    if not ok:
        warnings.warn(f"{label}: the Hessian at the optimum is singular or not positive definite; "
                      f"standard errors are NaN ({why}).", RuntimeWarning, stacklevel=stacklevel + 1)
        cov = np.full(np.shape(H), np.nan)
    return cov


def _cov_from_hessian(total_obj, phi, names, label, total_grad=None, H=None):
    if H is None:
        H = _grad_hessian(total_grad, phi) if total_grad is not None else _num_hessian(total_obj, phi, h=1e-4)
    theta = np.exp(phi)
    cov_log = _invert_hessian(H, label)
    se_log = np.sqrt(np.diag(cov_log))
    cov = cov_log * np.outer(theta, theta)
    se = pd.Series(theta * se_log, index=names)
    ci = pd.DataFrame({"lower": np.exp(phi - _Z95 * se_log), "upper": np.exp(phi + _Z95 * se_log)}, index=names)
    return se, ci, pd.DataFrame(cov, index=names, columns=names)


def _no_se(names):
    nan = np.full(len(names), np.nan)
    return (pd.Series(nan, index=names), pd.DataFrame({"lower": nan, "upper": nan}, index=names),
            pd.DataFrame(np.full((len(names), len(names)), np.nan), index=names, columns=names))


# ---------------------------------------------------------------------------
# fitted objects
# ---------------------------------------------------------------------------

@dataclass
class _ParamsMixin:
    """What every fitted model reports (see :class:`FittedModel` for the meaning of each field)."""

    name: str
    params: pd.Series
    se: pd.Series
    ci95: pd.DataFrame
    cov: pd.DataFrame
    log_likelihood: float
    aic: float
    bic: float
    n_customers: int
    n_unique: int
    converged: bool

    def params_table(self) -> pd.DataFrame:
        """Estimates with standard errors and 95% intervals (log-scale delta method)."""
        out = pd.DataFrame({"estimate": self.params, "se": self.se})
        out["lower95"] = self.ci95["lower"]
        out["upper95"] = self.ci95["upper"]
        out.index.name = "parameter"
        return out

    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def label(self) -> str:
        from .registry import get_model  # noqa: PLC0415  (the registry imports the model modules)

        try:
            return get_model(self.name).label
        except ValueError:
            return self.name


@dataclass
class FittedModel(_ParamsMixin):
    """A fitted frequency model: a registered model and its estimates.

    Every prediction delegates to :attr:`model` (the registered
    :class:`~helpers.models.base.FrequencyModel`) at :attr:`theta`.

    Attributes
    ----------
    name : str
        Registry key of the model (e.g. ``"bgnbd"``, ``"pareto_nbd"``).
    params : Series
        Estimates with literature names (``r, alpha, a, b`` or ``r, alpha, s, beta``, ...).
    se : Series
        Standard errors (inverse Hessian of the negative log-likelihood, delta
        method from the log scale); NaN for structural integer parameters.
    ci95 : DataFrame
        ``lower``/``upper`` 95% intervals, ``exp(log theta +- 1.96 se_log)``.
    cov : DataFrame
        Covariance matrix of the estimates (natural scale).
    log_likelihood : float
        Full log-likelihood of the paper's equation, summed over customers.
    aic, bic : float
        ``-2 LL + 2k`` and ``-2 LL + k log(n_customers)``.
    n_customers : int
        Number of customers (sum of the weights).
    n_unique : int
        Number of rows the fit ran on: unique ``(x, t_x, T)`` rows for the
        frequency models, repeat buyers with positive spend for Gamma-Gamma.
    converged : bool
    penalizer : float
    time_unit : str or None
        Unit of ``t_x``/``T`` if known (informational).
    """

    penalizer: float = 0.0
    time_unit: str | None = None
    message: str = ""

    @property
    def model(self) -> FrequencyModel:
        """The registered model (``helpers.models.get_model(name)``); its parameters are :attr:`theta`."""
        from .registry import get_model  # noqa: PLC0415

        return get_model(self.name)

    @property
    def theta(self) -> tuple:
        return tuple(float(self.params[k]) for k in self.model.param_names)

    def _args(self, x, t_x, T):
        if isinstance(x, pd.DataFrame) and t_x is None and T is None:
            return _frequency_arrays(x, None, None, None)
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        return x, t_x, T

    def expected_purchases(self, t, x, t_x=None, T=None) -> np.ndarray:
        """Conditional expectation E[X(t) | x, t_x, T] of repeat purchases in (T, T+t].

        See the model's ``expected_purchases`` for the equation.  ``x`` may be a
        summary DataFrame (then ``t_x`` and ``T`` are taken from it).  For a
        scalar ``t`` and customer arrays the factorised form
        (``expected_purchases_parts``) is used.
        """
        x, t_x, T = self._args(x, t_x, T)
        m, th = self.model, self.theta
        with np.errstate(all="ignore"):
            if np.ndim(t) == 0 and np.ndim(x) == 1:
                G, inv, h = m.expected_purchases_parts(th, [float(t)], x, t_x, T)
                return G[inv, 0] * h
            return m.expected_purchases(th, np.asarray(t, float), x, t_x, T)

    def p_alive(self, x, t_x=None, T=None) -> np.ndarray:
        """P(alive | x, t_x, T) (see the model's ``p_alive`` for the equation)."""
        x, t_x, T = self._args(x, t_x, T)
        with np.errstate(all="ignore"):
            return self.model.p_alive(self.theta, x, t_x, T)

    def p_alive_future(self, t, x, t_x=None, T=None) -> np.ndarray:
        """P(alive at T + t | x, t_x, T) = P(alive | data) * P(survive (T, T+t] | alive at T, data).

        ``t`` a scalar or 1-D array of times after ``T`` (model time unit);
        returns ``(n,)`` or ``(n, len(t))``.  See the model's ``survival_given_alive``.
        """
        x, t_x, T = self._args(x, t_x, T)
        t_arr = np.asarray(t, dtype=float)
        if np.any(t_arr < 0) or not np.all(np.isfinite(t_arr)):
            raise ValueError("t must be finite and >= 0")
        if t_arr.ndim > 1:
            raise ValueError("t must be a scalar or a 1-D array")
        x, t_x, T = (np.atleast_1d(v).ravel() for v in np.broadcast_arrays(x, t_x, T))
        return self.model.p_alive_future(self.theta, t_arr, x, t_x, T)

    def expected_purchases_new(self, t) -> np.ndarray:
        """Unconditional E[X(t)] for a customer who made the first purchase at time 0."""
        with np.errstate(all="ignore"):
            return self.model.expected_purchases_new(self.theta, np.asarray(t, dtype=float))

    def probability_of_n_purchases(self, t, n) -> np.ndarray:
        """P(X(t) = n) for a new customer (the model's ``count_pmf``)."""
        with np.errstate(all="ignore"):
            return self.model.count_pmf(self.theta, t, n)

    def expected_count_distribution(self, T, max_x: int = 7) -> pd.DataFrame:
        """Expected number of customers with 0, 1, ..., ``max_x``+ repeat purchases.

        Sums ``P(X(T_i) = x)`` over customers (each with its own age ``T_i``),
        the model side of the calibration-fit histogram (FHL 2005a, Figure 2).
        The last class ``"max_x+"`` collects ``x >= max_x``.

        Returns
        -------
        DataFrame indexed by class label (``"0"``, ..., ``"7+"``) with column ``expected``.
        """
        T = np.asarray(T, dtype=float).ravel()
        if max_x < 1:
            raise ValueError("max_x must be >= 1")
        Tu, counts = np.unique(T, return_counts=True)
        n = np.arange(max_x, dtype=float)
        with np.errstate(all="ignore"):
            P = self.model.count_pmf(self.theta, Tu[:, None], n[None, :])   # (n_T, max_x)
        expected = (counts[:, None] * P).sum(axis=0)
        tail = len(T) - expected.sum()
        labels = [str(i) for i in range(max_x)] + [f"{max_x}+"]
        return pd.DataFrame({"expected": np.append(expected, tail)}, index=pd.Index(labels, name="x"))

    def simulate_summary(self, T, seed=0, t_star: float = 0.0) -> pd.DataFrame:
        """Customers simulated from the fitted model with ages ``T`` (see ``FrequencyModel.simulate_summary``)."""
        return self.model.simulate_summary(self.theta, T, np.random.default_rng(seed), t_star)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"<FittedModel {self.label}: {ps}; LL={self.log_likelihood:.1f}, n={self.n_customers}>"


# ---------------------------------------------------------------------------
# the generic fitter
# ---------------------------------------------------------------------------

_BINNED_GAIN = 2.0          # a binned start when binning divides the number of rows by at least this
_REFINE_MAX_STEPS = 25
_REFINE_GTOL = 1e-10        # max |mean gradient| at which _refine stops (the Newton polish's criterion)


def _finite(v: float) -> float:
    return v if np.isfinite(v) else np.inf


def _binned_rows(x, t_x, T, w, levels):
    """The rows with ``t_x`` and ``T`` rounded to multiples of ``q = max(T) / levels``, merged.

    ``x`` is kept; ``T >= q``; for ``x > 0``, ``q / 2 <= t_x <= T`` (``t_x = 0`` for ``x = 0``).
    Returns ``(x, t_x, T, w)`` of the distinct binned rows.
    """
    q = float(np.max(T)) / levels
    Tb = np.maximum(np.round(T / q), 1.0) * q
    txb = np.where(x > 0, np.minimum(np.maximum(np.round(t_x / q), 0.5) * q, Tb), 0.0)
    (xb, txb, Tb), inv, _ = unique_rows(x, txb, Tb)
    return xb, txb, Tb, np.bincount(inv, weights=w, minlength=len(xb))


def _refine(fun, jac, phi, H, gtol=_REFINE_GTOL, max_steps=_REFINE_MAX_STEPS):
    """Newton steps with a fixed Hessian ``H`` (of a nearby problem) from ``phi``: one evaluation per step.

    Each step ``-H^-1 g`` is halved (at most twice) until the objective does not increase;
    the steps stop when ``max |g| < gtol``, when no such step decreases the objective, or
    when a step does not halve the gradient (``H`` too far from the problem's Hessian: the
    caller's optimiser does the rest).  Returns the best point reached.
    """
    try:
        C = np.linalg.cholesky(0.5 * (H + H.T))
    except np.linalg.LinAlgError:
        return phi
    f, g = fun(phi), jac(phi)
    for _ in range(max_steps):
        if not np.all(np.isfinite(g)) or np.max(np.abs(g)) < gtol:
            break
        step = np.linalg.solve(C.T, np.linalg.solve(C, g))
        if not np.all(np.isfinite(step)):
            break
        t = 1.0
        while True:
            cand = phi - t * step
            fc = fun(cand)
            if _no_worse(fc, f, lambda: jac(cand), g):
                break
            t *= 0.5
            if t < 0.2:             # H is not this problem's Hessian: leave the rest to the optimiser
                return phi
        gc = jac(cand)
        if not np.all(np.isfinite(gc)):
            break
        slow = np.max(np.abs(gc)) > 0.5 * np.max(np.abs(g))
        phi, f, g = cand, fc, gc
        if slow:
            break
    return phi


def _binned_start(objectives, mean_nll, mean_grad, phi0, x, t_x, T, w, n_customers, label, rows_levels,
                  stop=None):
    """A start for the fit on many unique rows: the optimum on time-binned rows, refined on the rows.

    With ``rows_levels = (rows, levels)`` (the model's ``binned_start``): when
    ``len(x) >= rows`` and :func:`_binned_rows` divides the rows by at least
    ``_BINNED_GAIN``, the model is fitted from ``phi0`` on the binned rows (the same
    customers, ``t_x`` and ``T`` rounded to ``max(T) / levels``: an optimum close to the
    data's), then :func:`_refine` takes Newton steps on the real rows with the binned
    fit's Hessian (a few likelihood evaluations instead of dozens).  The caller's
    optimiser then starts there, so the optimum is the data's own (the binned rows only
    choose the start).  Returns None when not applicable or when the binned fit fails
    (the caller then starts from ``phi0``); when ``stop`` ended the binned fit, the point
    where it stopped (the caller's fit, with the same ``stop``, continues from there).
    """
    rows, levels = rows_levels
    if len(x) < rows:
        return None
    xb, txb, Tb, wb = _binned_rows(x, t_x, T, w, levels)
    if len(xb) * _BINNED_GAIN > len(x):
        return None
    _, nll_b, grad_b = objectives(xb, txb, Tb, wb)
    if grad_b is None:
        return None
    polish: dict = {}
    try:
        phi_b, _, _ = _minimise(lambda p: nll_b(p) / n_customers, phi0, label,
                                mean_grad=lambda p: grad_b(p) / n_customers, hessian_out=polish, stop=stop)
    except _Stopped as exc:
        return exc.phi
    except ModelFitError:
        return None
    if "H" in polish and np.max(np.abs(polish["phi"] - phi_b)) < 1e-3:
        H = polish["H"]
    else:
        with np.errstate(all="ignore"):
            H = _grad_hessian(lambda p: grad_b(p) / n_customers, phi_b)
    if not np.all(np.isfinite(H)):
        return phi_b

    with np.errstate(all="ignore"):
        return _refine(lambda p: _finite(mean_nll(p)), mean_grad, phi_b, H)


def fit(model: FrequencyModel, x, t_x, T, w=None, penalizer: float = 0.0, initial_params=None,
        time_unit: str | None = None, se: bool = True, fixed: dict | None = None,
        binned_start: bool | None = None, hessian: np.ndarray | None = None,
        hessian_out: dict | None = None, stop: tuple | None = None, gtol: float | None = None) -> FittedModel:
    """Maximum-likelihood fit of ``model`` on weighted rows ``(x, t_x, T)``.

    Maximises the sum of ``w * model.log_likelihood`` (or the model's fast
    :meth:`~FrequencyModel.objective`) over the logarithms of the free
    parameters; see the module docstring for the penalizer and the standard
    errors.  Inputs are assumed valid (see :func:`fit_model`); rows may repeat.

    Parameters
    ----------
    model : FrequencyModel
    x, t_x, T, w : array_like
        Rows and the customers each stands for (default 1).
    penalizer : float
    initial_params : Series or sequence, optional
        Starting values, natural scale (all parameters, or the free ones).
    time_unit : str, optional
    se : bool
        Compute standard errors (False in bootstrap refits).
    fixed : dict, optional
        Parameters held at given values (required for ``model.integer_params``,
        e.g. ``{"k": 2}``); they are reported with NaN standard errors.
    binned_start : bool, optional
        Start from a fit on time-binned rows (:func:`_binned_start`) when that
        shrinks the rows enough.  Default (None): when no ``initial_params`` are
        given; True: also from given ``initial_params`` (they then start the binned fit).
    hessian : ndarray, optional
        The Hessian of the mean negative log-likelihood in the log free parameters of
        a nearby problem (e.g. the same model at the previous ``k`` of a profile): the
        fit first takes Newton steps with it from the start (:func:`_refine`).
    hessian_out : dict, optional
        Receives ``"H"`` (such a Hessian at the optimum, when one was computed) and ``"phi"``.
    stop : (callable, str), optional
        ``(predicate, reason)``: the optimiser stops (:class:`ModelFitError` with ``reason``)
        after an iteration whose free parameters (natural scale) satisfy ``predicate``.
    gtol : float, optional
        With ``hessian``: Newton steps (:func:`_refine`) until the largest absolute mean
        gradient (log parameters) is below ``gtol``; when they get there the fit ends at that
        point (no L-BFGS-B, no polish); otherwise the optimiser continues as without it.
    """
    label = model.label
    names = list(model.param_names)
    fixed = {k: float(v) for k, v in (fixed or {}).items()}
    unknown = [k for k in fixed if k not in names]
    if unknown:
        raise ValueError(f"{label}: fixed parameter(s) {unknown} are not among {names}")
    missing = [k for k in model.integer_params if k not in fixed]
    if missing:
        raise ValueError(f"{label}: the integer parameter(s) {missing} must be given in fixed= "
                         "(the model's own fit chooses them)")
    free = [k for k in names if k not in fixed]
    free_idx = np.array([names.index(k) for k in free], dtype=int)
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float).ravel()
    keep = w > 0
    if not keep.all():
        x, t_x, T, w = x[keep], t_x[keep], T[keep], w[keep]
    n_customers = float(w.sum())
    if n_customers <= 0:
        raise ValueError("no customers with positive weight")
    if not (x > 0).any():
        raise ModelFitError(f"{label}: no customer has a repeat purchase (all x == 0); the purchase "
                            f"and drop-out processes cannot be separated. {ADVICE}")
    if np.all(T <= 0):
        raise ModelFitError(f"{label}: every customer has T == 0. {ADVICE}")

    base = np.array([fixed.get(k, np.nan) for k in names])

    def full(theta_free):
        th = base.copy()
        th[free_idx] = theta_free
        return tuple(th)

    llf = model.log_likelihood
    t_scale = max(float(T.max()), 1e-12)
    scale_vec = np.array([t_scale if k in model.time_scale_params else 1.0 for k in free])

    def objectives(x, t_x, T, w):
        """``(series, total_nll, total_grad)`` of the rows (``series`` and ``total_grad`` None without a fast path)."""
        objective = model.objective(x, t_x, T, w)
        series = None
        if objective is not None:
            @_once_per_point
            def series(phi):
                theta = np.exp(phi)
                with np.errstate(all="ignore"):
                    out = objective(full(theta))
                if out is None:
                    return None
                ll, g = float(out[0]), np.asarray(out[1], dtype=float)[free_idx] * theta   # d/d log theta
                return (ll, g) if np.isfinite(ll) and np.all(np.isfinite(g)) else None

        def total_nll(phi):
            theta = np.exp(phi)
            out = series(phi) if series is not None else None
            if out is not None:
                ll = out[0]
            else:
                with np.errstate(all="ignore"):
                    ll = np.sum(w * llf(full(theta), x, t_x, T))
            pen = penalizer * np.sum((theta / scale_vec) ** 2) * n_customers if penalizer else 0.0
            return -ll + pen

        total_grad = None
        if series is not None:
            def total_grad(phi):
                out = series(phi)
                if out is None:      # fast path not applicable here: _minimise falls back to differences
                    return np.full(len(phi), np.nan)
                theta = np.exp(phi)
                g = -out[1]
                if penalizer:
                    g = g + 2.0 * penalizer * (theta / scale_vec) ** 2 * n_customers
                return g

        return series, total_nll, total_grad

    series, total_nll, total_grad = objectives(x, t_x, T, w)

    def mean_nll(phi):
        return total_nll(phi) / n_customers

    mean_grad = None
    if total_grad is not None:
        def mean_grad(phi):
            return total_grad(phi) / n_customers

    def start():
        th0 = np.asarray(model.initial(x, t_x, T, w), dtype=float)
        return np.log(th0[free_idx] if len(th0) == len(names) else th0)

    if initial_params is not None:
        if isinstance(initial_params, (pd.Series, dict)):
            th0 = np.array([float(initial_params[k]) for k in free])
        else:
            th0 = np.asarray([float(v) for v in initial_params])
            th0 = th0[free_idx] if len(th0) == len(names) else th0
        with np.errstate(divide="ignore", invalid="ignore"):
            phi0 = np.log(th0)
        if len(phi0) != len(free) or not np.all(np.isfinite(phi0)):
            raise ValueError("initial_params must be positive")
    else:
        phi0 = start()
    if binned_start is None:
        binned_start = initial_params is None
    phi_binned = None
    if binned_start and mean_grad is not None and not model.discrete:
        phi_binned = _binned_start(objectives, mean_nll, mean_grad, phi0, x, t_x, T, w, n_customers, label,
                                   model.binned_start, stop=stop)
    if hessian is not None and mean_grad is not None and phi_binned is None:
        H0 = np.asarray(hessian, dtype=float)
        if H0.shape == (len(phi0), len(phi0)) and np.all(np.isfinite(H0)):
            with np.errstate(all="ignore"):
                phi_binned = _refine(lambda p: _finite(mean_nll(p)), mean_grad, phi0, H0,
                                     gtol=_REFINE_GTOL if gtol is None else gtol)
    polish: dict = {}
    g_ref = mean_grad(phi_binned) if gtol is not None and phi_binned is not None and mean_grad is not None else None
    if g_ref is not None and np.all(np.isfinite(g_ref)) and np.max(np.abs(g_ref)) < gtol \
            and np.isfinite(mean_nll(phi_binned)):
        phi, converged = phi_binned, True
        message = f"Newton steps with a given Hessian: max |mean gradient| {np.max(np.abs(g_ref)):.1e} < {gtol:g}"
    else:
        phi = None
    try:
        if phi is None:
            phi, converged, message = _minimise(mean_nll, phi0 if phi_binned is None else phi_binned, label,
                                                mean_grad=mean_grad, hessian_out=polish, stop=stop)
    except _Stopped:
        raise
    except ModelFitError:
        retry = start()
        if (initial_params is None and phi_binned is None) or (
                phi_binned is None and np.array_equal(retry, phi0)):
            raise                   # (the retry would repeat the same run)
        polish.clear()
        phi, converged, message = _minimise(mean_nll, retry, label, mean_grad=mean_grad, hessian_out=polish,
                                            stop=stop)

    theta = np.exp(phi)
    params = pd.Series(full(theta), index=names, name=label)
    out = series(phi) if series is not None else None
    ll = out[0] if out is not None else float(np.sum(w * llf(full(theta), x, t_x, T)))
    if se:
        if series is not None and series(phi) is None:
            total_grad = None        # no analytic gradient here: Hessian of the log-likelihood itself
        H = None
        if total_grad is not None and "H" in polish and np.max(np.abs(polish["phi"] - phi)) < _HESSIAN_REUSE:
            H = polish["H"] * n_customers     # the Newton polish's Hessian, at (almost) this point
        if H is None and total_grad is not None:
            H = _grad_hessian(total_grad, phi)
        if hessian_out is not None and H is not None:
            hessian_out.update(H=H / n_customers, phi=phi.copy())
        se_, ci, cov = _cov_from_hessian(total_nll, phi, free, label, total_grad, H)
        if fixed:
            se_, ci, cov = se_.reindex(names), ci.reindex(names), cov.reindex(index=names, columns=names)
    else:
        se_, ci, cov = _no_se(names)
        if hessian_out is not None and "H" in polish:
            hessian_out.update(H=polish["H"], phi=polish["phi"])
    k = len(names)
    return FittedModel(
        name=model.name, params=params, se=se_, ci95=ci, cov=cov, log_likelihood=ll,
        aic=-2 * ll + 2 * k, bic=-2 * ll + k * np.log(n_customers),
        n_customers=int(round(n_customers)), n_unique=len(x), converged=converged,
        penalizer=float(penalizer), time_unit=time_unit, message=message,
    )


def fit_model(
    model: str,
    summary: pd.DataFrame | None = None,
    *,
    x=None,
    t_x=None,
    T=None,
    weights=None,
    penalizer: float = 0.0,
    initial_params=None,
    time_unit: str | None = None,
    _se: bool = True,
    _rows_unique: bool = False,
) -> FittedModel:
    """Fit a registered frequency model by maximum likelihood.

    Parameters
    ----------
    model : str
        A registry name (``helpers.models.registered_models()``) or alias,
        e.g. ``"bgnbd"``, ``"BG/NBD"``, ``"pnbd"``.
    summary : DataFrame, optional
        One row per customer with columns ``x, t_x, T`` (e.g. from
        :func:`helpers.summary.calibration_holdout`).  Alternatively pass
        ``x``, ``t_x``, ``T`` arrays.
    weights : array_like, optional
        Number of customers each row stands for (default 1).  Rows are
        collapsed to unique ``(x, t_x, T)`` in any case.
    penalizer : float
        L2 penalty on the parameters (lifetimes' convention, see module docstring).
    initial_params : sequence or Series, optional
        Starting values in literature order and natural scale.
    time_unit : str, optional
        Unit of ``t_x``/``T``, stored on the result for reference.

    Returns
    -------
    FittedModel

    Raises
    ------
    ValueError
        Unknown model, malformed input (missing columns, negative or
        non-finite values, non-integer ``x``, ``t_x > T``).
    ModelFitError
        The data carry no repeat purchases or the optimisation fails /
        does not converge; the message says what to try.
    """
    from .registry import get_model  # noqa: PLC0415

    m = get_model(model)
    x, t_x, T = _frequency_arrays(summary, x, t_x, T)
    if weights is None:
        w_in = np.ones_like(x)
    else:
        w_in = np.asarray(weights, dtype=float).ravel()
        if len(w_in) != len(x) or (w_in < 0).any() or not np.all(np.isfinite(w_in)):
            raise ValueError("weights must be finite, >= 0 and one per customer")
    if penalizer < 0:
        raise ValueError("penalizer must be >= 0")
    keep = w_in > 0
    if _rows_unique:   # internal (bootstrap): rows already unique and sorted by x
        xu, txu, Tu, wu = x[keep], t_x[keep], T[keep], w_in[keep]
    else:
        (xu, txu, Tu), inv, _ = unique_rows(x[keep], t_x[keep], T[keep])
        wu = np.bincount(inv, weights=w_in[keep], minlength=len(xu))
    if float(wu.sum()) <= 0:
        raise ValueError("no customers with positive weight")
    # extra per-customer statistics a model's likelihood uses when present (e.g. litt of the CNBD-k models),
    # passed as the mean over the customers of each unique row
    extra = {}
    for col in getattr(m, "summary_columns", ()):
        if summary is not None and col in summary.columns:
            v = summary[col].to_numpy(dtype=float).ravel()[keep]
            extra[col] = v if _rows_unique else np.bincount(inv, weights=w_in[keep] * v, minlength=len(xu)) / wu
    return m.fit(xu, txu, Tu, wu, penalizer=penalizer, initial_params=initial_params, time_unit=time_unit, se=_se,
                 **extra)


def log_likelihood(model: str, params, x, t_x, T, weights=None) -> float:
    """Full log-likelihood (summed over customers) of a registered frequency model.

    Parameters
    ----------
    model : str
        Registry name or alias.
    params : sequence or Series
        Parameters in literature order (see :data:`helpers.models.MODELS`).
    x, t_x, T : array_like
    weights : array_like, optional
        Number of customers per row (default 1).
    """
    from .registry import get_model  # noqa: PLC0415

    m = get_model(model)
    theta = m.theta_of(params)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    with np.errstate(all="ignore"):
        return float(np.sum(w * m.log_likelihood(theta, x, t_x, T)))


def compare_models(fits: Iterable | dict) -> pd.DataFrame:
    """Log-likelihood, number of parameters, AIC and BIC of fitted models.

    Parameters
    ----------
    fits : iterable of fitted models, or dict label -> fitted model

    Returns
    -------
    DataFrame indexed by model label with ``log_likelihood, n_params,
    n_customers, aic, bic`` and ``delta_bic`` (BIC minus the smallest).
    Only models fitted on the same customers are comparable.
    """
    items = fits.items() if isinstance(fits, dict) else [(f.label, f) for f in fits]
    rows = []
    for label, f in items:
        rows.append({"model": label, "log_likelihood": f.log_likelihood, "n_params": f.n_params,
                     "n_customers": f.n_customers, "aic": f.aic, "bic": f.bic})
    if not rows:
        raise ValueError("no fitted models given")
    out = pd.DataFrame(rows).set_index("model")
    if out["n_customers"].nunique() > 1:
        warnings.warn("models were fitted on different numbers of customers; AIC/BIC are not comparable",
                      RuntimeWarning, stacklevel=2)
    out["delta_bic"] = out["bic"] - out["bic"].min()
    return out
