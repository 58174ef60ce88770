"""Gamma-Gamma spend model: Fader, Hardie & Lee (2005b), "RFM and CLV: using iso-value
curves for customer base analysis", *Journal of Marketing Research* 42(4), 415-430
(and Fader & Hardie note 025).

Each transaction's value is ``z ~ Gamma(p, nu)`` with a customer-level
``nu ~ Gamma(q, gamma)``; parameters ``p, q, gamma``.  The fit maximises the
likelihood as six row sums that depend on gamma alone, with an analytic Hessian
and trust-region Newton steps (:class:`_GammaGammaObjective`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import gammaln, polygamma, psi

from . import base as _base
from .base import GG_ADVICE, IndependenceWarning, ModelFitError, SpendModel, _dot
from .fit import _cov_from_hessian, _minimise, _no_se, _once_per_point, _ParamsMixin

__all__ = ["GammaGamma", "GammaGammaFit", "fit_gamma_gamma"]


def _ll_gamma_gamma(theta, x, m_x):
    """Gamma-Gamma log-likelihood of the mean spend m_x of x transactions.

    Fader, Hardie & Lee (2005b, JMR), eq. (3) integrated over nu (note 025, eq. 1a).
    """
    p, q, gamma = theta
    px = p * x
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(gamma)
            + (px - 1.0) * np.log(m_x) + px * np.log(x) - (px + q) * np.log(x * m_x + gamma))


class _GammaGammaObjective:
    """Weighted Gamma-Gamma log-likelihood and its exact gradient, summed over customers.

    The same value as ``sum(w * _ll_gamma_gamma(theta, x, m_x))`` (FHL 2005b, eq. 3
    integrated over nu), rearranged as

        LL = sum_x W_x [ln G(px+q) - ln G(px) + px ln x] - N ln G(q) + N q ln(gamma)
             + sum_i w_i (p x_i - 1) ln m_i - sum_i w_i (p x_i + q) ln(x_i m_i + gamma),

    so that the gamma functions are evaluated once per distinct x and each row
    costs one logarithm (and one division for the gradient) per evaluation.
    """

    def __init__(self, x, m_x, w):
        x, m_x, w = (np.asarray(v, dtype=float).ravel() for v in (x, m_x, w))
        ix, self.xs = pd.factorize(x, sort=True)
        self.Wx = np.bincount(ix, weights=w, minlength=len(self.xs))
        self.N = float(w.sum())
        lm = np.log(m_x)
        self.S_lm = _dot(w, lm)                          # sum w ln m
        self.S_xlm = _dot(w * x, lm)                     # sum w x ln m
        self.w, self.wx, self.xm = w, w * x, x * m_x
        self._buf = None

    def __call__(self, theta) -> tuple[float, np.ndarray, np.ndarray]:
        """``(LL, gradient, Hessian)`` w.r.t. the natural parameters ``(p, q, gamma)``.

        Everything that involves the rows depends on gamma alone: six weighted
        sums of ``ln(x m + gamma)``, ``1 / (x m + gamma)`` and its square.
        """
        p, q, gamma = theta
        xs, Wx, N = self.xs, self.Wx, self.N
        m = len(self.xm)
        if self._buf is None:
            self._buf = [np.empty(min(m, _base._CHUNK)) for _ in range(2)]
        S = np.zeros(6)            # sum w L, w x L, w R, w x R, w R^2, w x R^2
        chunk = _base._CHUNK
        for lo in range(0, m, chunk):
            hi = min(lo + chunk, m)
            L, R = (buf[:hi - lo] for buf in self._buf)
            np.add(self.xm[lo:hi], gamma, out=L)
            np.divide(1.0, L, out=R)                     # R = 1 / (x m + gamma)
            np.log(L, out=L)                             # L = ln(x m + gamma)
            w, wx = self.w[lo:hi], self.wx[lo:hi]
            S[0] += _dot(w, L)
            S[1] += _dot(wx, L)
            S[2] += _dot(w, R)
            S[3] += _dot(wx, R)
            np.multiply(R, R, out=L)
            S[4] += _dot(w, L)
            S[5] += _dot(wx, L)
        S_wL, S_wxL, S_wR, S_wxR, S_wR2, S_wxR2 = S
        pxs = p * xs
        ll = (_dot(Wx, gammaln(pxs + q) - gammaln(pxs) + pxs * np.log(xs)) - N * gammaln(q)
              + N * q * np.log(gamma) + p * self.S_xlm - self.S_lm - p * S_wxL - q * S_wL)
        psi_pxq = psi(pxs + q)
        grad = np.array([
            _dot(Wx, xs * (psi_pxq - psi(pxs) + np.log(xs))) + self.S_xlm - S_wxL,
            _dot(Wx, psi_pxq) - N * psi(q) + N * np.log(gamma) - S_wL,
            N * q / gamma - p * S_wxR - q * S_wR,
        ])
        tri_pxq, tri_px = polygamma(1, pxs + q), polygamma(1, pxs)
        H_pq = _dot(Wx, xs * tri_pxq)
        H_pg = -S_wxR
        H_qg = N / gamma - S_wR
        hess = np.array([
            [_dot(Wx, xs * xs * (tri_pxq - tri_px)), H_pq, H_pg],
            [H_pq, _dot(Wx, tri_pxq) - N * polygamma(1, q), H_qg],
            [H_pg, H_qg, -N * q / gamma ** 2 + p * S_wxR2 + q * S_wR2],
        ])
        return float(ll), grad, hess


class GammaGamma(SpendModel):
    """The Gamma-Gamma spend model of FHL (2005b): ``z ~ Gamma(p, nu)``, ``nu ~ Gamma(q, gamma)``."""

    name = "gamma_gamma"
    label = "Gamma-Gamma"
    reference = ("Fader, Hardie & Lee (2005), RFM and CLV: using iso-value curves for customer base analysis, "
                 "Journal of Marketing Research 42(4), 415-430")
    param_names = ("p", "q", "gamma")
    #: static covariates on the scale of the spend heterogeneity: gamma_i = gamma_0 exp(gamma_spend' z_i),
    #: so the mean spend p gamma_i / (q - 1) (FHL 2005b) is multiplied by exp(gamma_spend' z_i)
    covariate_links = {"spend": (("gamma", 1),)}
    covariate_quantities = {"spend": "mean spend per transaction E[z] = p gamma / (q - 1)"}

    def covariate_quantity(self, theta, process):
        """The population mean spend ``p gamma / (q - 1)`` (FHL 2005b), or ``gamma`` itself for ``q <= 1``
        (the ratio is the same: the mean is proportional to gamma)."""
        p, q, gamma = (float(v) for v in theta)
        if process == "spend":
            return p * gamma / (q - 1.0) if q > 1.0 else gamma
        return super().covariate_quantity(theta, process)

    def log_likelihood(self, theta, x, m_x):
        """FHL (2005b) eq. (3) integrated over nu (note 025, eq. 1a)."""
        return _ll_gamma_gamma(theta, x, m_x)

    def population_mean_spend(self, theta) -> float:
        """Mean spend per transaction in the population, E[z] = p gamma / (q - 1) (infinite for q <= 1)."""
        p, q, gamma = (float(v) for v in theta)
        if q <= 1:
            return float("inf")
        return p * gamma / (q - 1.0)

    def expected_spend(self, theta, x, m_x):
        """Conditional expected mean spend E[M | x, m_x], FHL (2005b) eq. (5).

        A weighted average of the population mean ``p gamma / (q - 1)`` and the
        customer's observed mean ``m_x``, weight ``p x / (p x + q - 1)`` on
        ``m_x``; for ``x == 0`` it is the population mean.
        """
        p, q, gamma = theta
        x = np.asarray(x, dtype=float)
        m_x = np.asarray(m_x, dtype=float)
        w = p * x / (p * x + q - 1.0)
        return (1.0 - w) * self.population_mean_spend(theta) + w * np.where(x > 0, m_x, 0.0)

    def draw_latent(self, theta, n_customers, rng) -> dict[str, np.ndarray]:
        """The customers' scale ``nu ~ Gamma(q, rate gamma)`` (FHL 2005b, section "Adding monetary value")."""
        p, q, gamma = theta
        return {"nu": rng.gamma(q, 1.0 / gamma, size=int(n_customers))}

    def draw_amounts(self, theta, nu, customer, rng) -> np.ndarray:
        """Transaction values ``z ~ Gamma(p, rate nu_i)`` for transactions of customers ``customer`` (indices into nu)."""
        p, q, gamma = theta
        return rng.gamma(p, 1.0, size=len(customer)) / np.asarray(nu)[customer]

    def theta_of(self, params) -> tuple:
        """``theta`` from a Series/mapping with ``p, q, gamma`` or a sequence in that order."""
        if isinstance(params, (pd.Series, dict)):
            return tuple(float(params[k]) for k in self.param_names)
        th = tuple(float(v) for v in params)
        if len(th) != 3:
            raise ValueError(f"Gamma-Gamma has parameters p, q, gamma; got {len(th)} values")
        return th


_GG = GammaGamma()


@dataclass
class GammaGammaFit(_ParamsMixin):
    """A fitted Gamma-Gamma spend model (FHL 2005b, JMR 42).

    Attributes
    ----------
    params : Series
        ``p, q, gamma``: transaction value z ~ Gamma(p, nu), nu ~ Gamma(q, gamma).
    se, ci95, cov, log_likelihood, aic, bic, converged
        As for :class:`~helpers.models.FittedModel`.
    n_customers : int
        Repeat buyers used (x > 0 and m_x > 0).
    n_excluded_nonpositive : int
        Repeat buyers excluded because ``m_x <= 0``.
    frequency_spend_corr : float
        Pearson correlation of ``x`` and ``m_x`` among the customers used.
    corr_threshold : float
        Threshold above which :class:`IndependenceWarning` was issued.
    """

    n_excluded_nonpositive: int = 0
    frequency_spend_corr: float = float("nan")
    corr_threshold: float = 0.3
    penalizer: float = 0.0

    @property
    def model(self) -> GammaGamma:
        return _GG

    @property
    def label(self) -> str:
        return _GG.label

    @property
    def theta(self) -> tuple:
        return tuple(float(self.params[k]) for k in _GG.param_names)

    def population_mean_spend(self) -> float:
        """Mean spend per transaction in the population, E[z] = p gamma / (q - 1) (needs q > 1)."""
        return _GG.population_mean_spend(self.theta)

    def expected_spend(self, x, m_x=None) -> np.ndarray:
        """Conditional expected mean spend E[M | x, m_x], FHL (2005b) eq. (5).

        ``x`` may be a summary DataFrame with columns ``x`` and ``m_x``; see
        :meth:`GammaGamma.expected_spend`.
        """
        if isinstance(x, pd.DataFrame) and m_x is None:
            x, m_x = x["x"], x["m_x"]
        return _GG.expected_spend(self.theta, x, m_x)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"<GammaGammaFit: {ps}; n={self.n_customers}, corr(x, m_x)={self.frequency_spend_corr:.3f}>"


def fit_gamma_gamma(
    summary: pd.DataFrame | None = None,
    *,
    x=None,
    m_x=None,
    weights=None,
    corr_threshold: float = 0.3,
    penalizer: float = 0.0,
    initial_params=None,
    warn: bool = True,
    _se: bool = True,
) -> GammaGammaFit:
    """Fit the Gamma-Gamma spend model on repeat buyers (FHL 2005b, JMR 42).

    Uses customers with ``x > 0`` and ``m_x > 0`` (``m_x`` = mean spend per
    repeat purchase occasion, the first purchase excluded).  Repeat buyers with
    ``m_x <= 0`` (zero-amount purchases, or returns netted out) cannot enter
    the gamma likelihood; they are excluded and counted in
    ``n_excluded_nonpositive``.

    The model assumes that a customer's spend per transaction is independent
    of the purchase process (FHL 2005b, section "Adding monetary value": the
    distribution of average transaction value is independent of x and t_x).
    The Pearson correlation of ``x`` and ``m_x`` among the customers used is
    stored as ``frequency_spend_corr``; above ``corr_threshold`` (default 0.3;
    FHL report 0.11 on CDNOW, so 0.3 signals a clear violation rather than
    noise) an :class:`IndependenceWarning` is issued, since CLV = E[count] x
    E[spend] is then biased.

    Parameters
    ----------
    summary : DataFrame, optional
        With columns ``x`` and ``m_x``; or pass ``x`` and ``m_x`` arrays.
    weights : array_like, optional
        Customers per row.
    corr_threshold : float
    penalizer : float
        L2 penalty ``penalizer * sum(theta**2)`` on the mean negative log-likelihood.
    initial_params : sequence, optional
        Starting ``p, q, gamma``.
    warn : bool
        Issue :class:`IndependenceWarning` (set False in bootstrap refits).

    Returns
    -------
    GammaGammaFit

    Raises
    ------
    ValueError
        Missing columns, non-finite values.
    ModelFitError
        Fewer than 2 usable repeat buyers, or the optimisation fails.
    """
    if summary is not None:
        missing = [c for c in ("x", "m_x") if c not in summary.columns]
        if missing:
            raise ValueError(f"summary is missing column(s) {missing}; the Gamma-Gamma model needs x and m_x "
                             "(a transaction log with amounts)")
        x, m_x = summary["x"], summary["m_x"]
    elif x is None or m_x is None:
        raise ValueError("pass either a summary DataFrame or both x and m_x")
    x = np.asarray(x, dtype=float).ravel()
    m_x = np.asarray(m_x, dtype=float).ravel()
    if len(x) != len(m_x):
        raise ValueError("x and m_x must have equal length")
    w_in = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float).ravel()
    if len(w_in) != len(x):
        raise ValueError("weights must be one per customer")
    for name, v in (("x", x), ("m_x", m_x)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} has non-finite values (NaN/inf)")
    repeat = (x > 0) & (w_in > 0)
    nonpos = repeat & (m_x <= 0)
    n_excluded = int(round(w_in[nonpos].sum()))
    use = repeat & (m_x > 0)
    # one row per customer (m_x is continuous: collapsing to unique (x, m_x) rarely pays for itself)
    xu, mu, wu = x[use], m_x[use], w_in[use]
    n = float(wu.sum())
    distinct = len(xu) > 0 and bool(np.any((xu != xu[0]) | (mu != mu[0])))
    if not distinct or n < 2:
        raise ModelFitError(f"Gamma-Gamma: only {int(n)} repeat buyer(s) with positive spend; at least 2 "
                            "distinct ones are needed. Check that the log has amounts and repeat purchases.")
    # weighted Pearson correlation of x and m_x among the customers used
    mx = np.average(xu, weights=wu)
    mm = np.average(mu, weights=wu)
    cxy = np.average((xu - mx) * (mu - mm), weights=wu)
    sx = np.sqrt(np.average((xu - mx) ** 2, weights=wu))
    sm = np.sqrt(np.average((mu - mm) ** 2, weights=wu))
    corr = float(cxy / (sx * sm)) if sx > 0 and sm > 0 else float("nan")
    if warn and np.isfinite(corr) and abs(corr) > corr_threshold:
        warnings.warn(
            f"Gamma-Gamma assumes spend per transaction independent of purchase frequency, but "
            f"corr(x, m_x) = {corr:.3f} exceeds {corr_threshold} among the {int(n)} repeat buyers; "
            "expected spend and CLV may be biased.", IndependenceWarning, stacklevel=2)

    objective = _GammaGammaObjective(xu, mu, wu)

    @_once_per_point
    def value_grad(phi):
        """Total log-likelihood, gradient and Hessian w.r.t. the log-parameters."""
        theta = np.exp(phi)
        with np.errstate(all="ignore"):
            ll, g, H = objective(theta)
        # chain rule for theta = exp(phi)
        return ll, g * theta, H * np.outer(theta, theta) + np.diag(g * theta)

    def total_nll(phi):
        ll = value_grad(phi)[0]
        return -ll + (penalizer * np.sum(np.exp(phi) ** 2) * n if penalizer else 0.0)

    def total_hess(phi):
        H = -value_grad(phi)[2]
        return H + (np.diag(4.0 * penalizer * np.exp(phi) ** 2 * n) if penalizer else 0.0)

    if initial_params is not None:
        phi0 = np.log(np.asarray([float(v) for v in (initial_params if not isinstance(initial_params, pd.Series)
                                                     else initial_params[["p", "q", "gamma"]])]))
    else:
        # moment-style start: p ~ 1..5, q ~ 2-3, gamma matching the mean spend
        mean_spend = float(np.average(mu, weights=wu))
        phi0 = np.log([2.0, 3.0, mean_spend])
    def total_grad(phi):
        g = -value_grad(phi)[1]
        return g + (2.0 * penalizer * np.exp(phi) ** 2 * n if penalizer else 0.0)

    phi, converged, message = _minimise(lambda ph: total_nll(ph) / n, phi0, "Gamma-Gamma", GG_ADVICE,
                                        mean_grad=lambda ph: total_grad(ph) / n,
                                        mean_hess=lambda ph: total_hess(ph) / n)
    theta = np.exp(phi)
    names = ["p", "q", "gamma"]
    ll = value_grad(phi)[0]
    if _se:
        H = total_hess(phi)
        se, ci, cov = _cov_from_hessian(total_nll, phi, names, "Gamma-Gamma", total_grad,
                                        H if np.all(np.isfinite(H)) else None)
    else:
        se, ci, cov = _no_se(names)
    return GammaGammaFit(
        name=_GG.name, params=pd.Series(theta, index=names, name=_GG.label), se=se, ci95=ci, cov=cov,
        log_likelihood=ll, aic=-2 * ll + 6, bic=-2 * ll + 3 * np.log(n), n_customers=int(round(n)),
        n_unique=len(xu), converged=converged, n_excluded_nonpositive=n_excluded,
        frequency_spend_corr=corr, corr_threshold=corr_threshold, penalizer=float(penalizer),
    )
