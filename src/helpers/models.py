"""Probability models of purchase counts and spend: fit, predict, compare.

Frequency models (customers who make repeat purchases at random while
"alive" and drop out unobserved), each summarised by ``x`` (repeat purchase
occasions), ``t_x`` (recency) and ``T`` (age), see :mod:`helpers.summary`:

``"bgnbd"``
    BG/NBD, Fader, Hardie & Lee (2005), "Counting your customers the easy
    way: an alternative to the Pareto/NBD model", *Marketing Science* 24(2),
    275-284.  Parameters ``r, alpha`` (gamma heterogeneity of the purchase
    rate) and ``a, b`` (beta heterogeneity of the drop-out probability).
``"mbgnbd"``
    MBG/NBD, Batislam, Denizel & Filiztekin (2007), "Empirical validation and
    comparison of models for customer base analysis", *International Journal
    of Research in Marketing* 24(3), 201-209.  As BG/NBD, but a customer may
    also drop out at time zero, right after the first purchase.
``"pareto_nbd"``
    Pareto/NBD, Schmittlein, Morrison & Colombo (1987), "Counting your
    customers: who are they and what will they do next?", *Management Science*
    33(1), 1-24; likelihood as in Fader & Hardie (2005), "A note on deriving
    the Pareto/NBD model and related expressions" (brucehardie.com note 009).
    Parameters ``r, alpha`` (purchase rate) and ``s, beta`` (exponential
    lifetime rate heterogeneity).

Spend model: Gamma-Gamma, Fader, Hardie & Lee (2005), "RFM and CLV: using
iso-value curves for customer base analysis", *Journal of Marketing Research*
42(4), 415-430 (and Fader & Hardie note 025).  Parameters ``p, q, gamma``.

Engine
------
All log-likelihoods are implemented here, vectorised with numpy/scipy
(``gammaln``, ``betaln``, ``logaddexp``), as the *full* log-likelihood of the
papers (so BG/NBD on the CDNOW sample gives -9582.4 and Pareto/NBD -9595.0).
Estimates maximise it over the log-parameters with scipy's L-BFGS-B (analytic
gradients for BG/NBD and MBG/NBD; for Pareto/NBD an exact gradient from a
hypergeometric-series form of the likelihood, see ``_pnbd_ll_grad``, with the
hyp2f1 likelihood and central differences as fallback) followed by a few
Newton steps, fitting on the unique ``(x, t_x, T)`` rows with customer counts
as weights (identical estimates, much faster).  For speed the (M)BG/NBD
likelihood is evaluated in a rearranged but equal form in which only one term
per customer is computed per evaluation (``_BGFamilyObjective``), and the
Gamma-Gamma likelihood as six row sums that depend on gamma alone, with an
analytic Hessian and trust-region Newton steps (``_GammaGammaObjective``).  The penalizer follows lifetimes' convention: the
objective is the *mean* negative log-likelihood plus ``penalizer * sum(theta**2)``
where the time-scale parameters (``alpha``, ``beta``) are expressed in units of
the longest customer age (max ``T`` = 1).  Standard errors come from the
Hessian of the total negative log-likelihood in the log-parameters (analytic
for Gamma-Gamma, central differences of the analytic gradient otherwise), mapped to the natural scale by the delta method
(``se(theta) = theta * se(log theta)``); 95% intervals are
``exp(log theta +- 1.96 se(log theta))`` so they stay positive.

lifetimes (0.11.3) is used only as a reference in the tests; its own objective
is normalised, its Pareto/NBD fitter starts from unseeded random values and
its ``variance_matrix_`` is not a proper covariance, hence the own engine.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import betaln, gammaln, hyp2f1, polygamma, psi, xlogy

__all__ = [
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
]

#: Parameter names (literature order) of each frequency model.
MODELS: dict[str, tuple[str, ...]] = {
    "bgnbd": ("r", "alpha", "a", "b"),
    "mbgnbd": ("r", "alpha", "a", "b"),
    "pareto_nbd": ("r", "alpha", "s", "beta"),
}
_TIME_SCALE = {"bgnbd": ("alpha",), "mbgnbd": ("alpha",), "pareto_nbd": ("alpha", "beta")}
_LABELS = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD",
           "gamma_gamma": "Gamma-Gamma"}
_HESSIAN_REUSE = 1e-6  # reuse the polish's Hessian for standard errors within this distance (log scale)
_LOG_BOUND = 25.0  # |log theta| beyond this = parameter ran off to 0 or infinity
_Z95 = 1.959963984540054

ADVICE = (
    "Things to try: a penalizer such as penalizer=0.001; a different time unit "
    "(e.g. weeks instead of days, so that alpha is not tiny or huge); check the "
    "summary for customers with T == 0 (first purchase on the last day), t_x > T, "
    "or a sample with (almost) no repeat purchases."
)

GG_ADVICE = (
    "Things to try: a penalizer such as penalizer=0.001; check that m_x is the mean spend per "
    "repeat purchase (not a total) and that spend varies across customers; with q <= 1 the "
    "population mean spend is infinite."
)


class ModelFitError(RuntimeError):
    """A model could not be fitted (failed or non-converged optimisation)."""


class IndependenceWarning(UserWarning):
    """Spend and purchase frequency look correlated (Gamma-Gamma assumes not)."""


# ---------------------------------------------------------------------------
# unique-row helpers (shared with value.py)
# ---------------------------------------------------------------------------

def unique_rows(*arrays) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Unique rows of several equal-length 1-D arrays.

    Returns
    -------
    columns : list of ndarray
        The unique values of each input array (one entry per unique row).
    inverse : ndarray of int
        ``columns[k][inverse]`` reproduces ``arrays[k]``.
    counts : ndarray of int
        How many input rows each unique row stands for.
    """
    cols = [np.asarray(a, dtype=float).ravel() for a in arrays]
    n = len(cols[0])
    if any(len(c) != n for c in cols):
        raise ValueError(f"arrays must have equal length, got {[len(c) for c in cols]}")
    if n == 0:
        return [c.copy() for c in cols], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # rank each column's values (hashing, not sorting, n values), then combine the ranks into
    # one integer key whose order is the lexicographic order of the rows
    key = np.zeros(n, dtype=np.int64)
    card = 1
    for c in cols:
        codes, values = pd.factorize(c, sort=True, use_na_sentinel=False)
        if card * len(values) >= 2**62:                  # re-rank the key so far to keep it small
            key, kept = pd.factorize(key, sort=True)
            key, card = key.astype(np.int64), len(kept)
        key = key * len(values) + codes
        card *= len(values)
    # sort the keys with the row number packed into the low bits (a plain sort, much faster
    # than argsort); ties keep row order, so each group's first row is its first occurrence
    bits = max(int(n - 1).bit_length(), 1)
    if card < 2 ** (63 - bits):
        packed = np.sort((key << bits) | np.arange(n, dtype=np.int64))
        order = packed & ((1 << bits) - 1)
        skey = packed >> bits
    else:
        order = np.argsort(key, kind="stable")
        skey = key[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(skey[1:], skey[:-1], out=new[1:])
    gid = np.cumsum(new) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = gid
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    first = order[starts]
    return [c[first] for c in cols], inverse, counts


def unique_apply(func: Callable[..., np.ndarray], *arrays) -> np.ndarray:
    """Evaluate ``func`` once per unique row of ``arrays`` and broadcast back.

    ``func(*unique_columns)`` must return an array whose first axis runs over
    the unique rows (extra trailing axes, e.g. months, are kept).
    """
    cols, inverse, _ = unique_rows(*arrays)
    out = np.asarray(func(*cols))
    return out[inverse]


# ---------------------------------------------------------------------------
# log-likelihoods (per customer), natural parameter scale
# ---------------------------------------------------------------------------

def _x_groups(x):
    """Distinct values of x and the index mapping them back (cheap when x is sorted,
    as the unique rows the fitters use are)."""
    x = np.asarray(x)
    if x.ndim != 1 or x.size < 64:
        return None
    d = np.diff(x)
    if np.all(d >= 0):
        starts = np.concatenate([[0], np.flatnonzero(d) + 1])
        inv = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(x))))
        return x[starts], inv
    xs, inv = np.unique(x, return_inverse=True)
    return xs, inv


def _per_x(f, x, groups):
    """Evaluate f(x) once per distinct x value."""
    if groups is None:
        return f(x)
    xs, inv = groups
    return f(xs)[inv]


def _ll_bgnbd(theta, x, t_x, T):
    """BG/NBD individual log-likelihood, Fader, Hardie & Lee (2005a), eq. (6)."""
    r, alpha, a, b = theta
    grp = _x_groups(x)
    common = _per_x(lambda v: gammaln(r + v) - gammaln(r) - betaln(a, b), x, grp) + r * np.log(alpha)
    term1 = _per_x(lambda v: betaln(a, b + v), x, grp) - (r + x) * np.log(alpha + T)
    pos = x > 0
    # keep b + x - 1 > 0 where the term is unused
    b2 = _per_x(lambda v: betaln(a + 1.0, b + np.where(v > 0, v, 1.0) - 1.0), x, grp)
    term2 = np.where(pos, b2 - (r + x) * np.log(alpha + t_x), -np.inf)
    return common + np.logaddexp(term1, term2)


def _ll_mbgnbd(theta, x, t_x, T):
    """MBG/NBD individual log-likelihood, Batislam et al. (2007), eq. (A.4)."""
    r, alpha, a, b = theta
    grp = _x_groups(x)
    common = _per_x(lambda v: gammaln(r + v) - gammaln(r) - betaln(a, b), x, grp) + r * np.log(alpha)
    term1 = _per_x(lambda v: betaln(a, b + v + 1.0), x, grp) - (r + x) * np.log(alpha + T)
    term2 = _per_x(lambda v: betaln(a + 1.0, b + v), x, grp) - (r + x) * np.log(alpha + t_x)
    return common + np.logaddexp(term1, term2)


def _pnbd_log_A0(theta, x, t_x, T):
    """log A_0 of the Pareto/NBD likelihood, Fader & Hardie (2005) note 009, eqs. (19)-(20)."""
    r, alpha, s, beta = theta
    rsx = r + s + x
    if alpha >= beta:
        big, small, second = alpha, beta, s + 1.0
    else:
        big, small, second = beta, alpha, r + x
    d = big - small
    log_f1 = np.log(hyp2f1(rsx, second, rsx + 1.0, d / (big + t_x))) - rsx * np.log(big + t_x)
    log_f2 = np.log(hyp2f1(rsx, second, rsx + 1.0, d / (big + T))) - rsx * np.log(big + T)
    # A_0 = f1 - f2 >= 0 (f1 >= f2 since t_x <= T); log of a difference, stably
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = log_f2 - log_f1
        out = log_f1 + np.log1p(-np.exp(np.minimum(diff, 0.0)))
    return np.where(diff >= 0, -np.inf, out)


def _ll_pareto_nbd(theta, x, t_x, T):
    """Pareto/NBD individual log-likelihood, Fader & Hardie (2005) note 009, eq. (18)."""
    r, alpha, s, beta = theta
    A1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    log_A0 = _pnbd_log_A0(theta, x, t_x, T)
    A2 = np.logaddexp(-(r + x) * np.log(alpha + T) - s * np.log(beta + T),
                      np.log(s) - np.log(r + s + x) + log_A0)
    return A1 + A2


# ---------------------------------------------------------------------------
# Pareto/NBD: log-likelihood and analytic gradient by a hypergeometric series
# ---------------------------------------------------------------------------
#
# With a = r + x, b = s + 1 and A = a + b - 1 = r + s + x, the A_0 part of the
# likelihood is an integral over the unobserved death time tau (note 009):
#
#     s / A * A_0 = s * (J(t_x) - J(T)),   J(u) = int_u^inf (alpha+tau)^-a (beta+tau)^-b dtau.
#
# Let m = min(alpha, beta), M = max(alpha, beta), e_m / e_M the exponent (a or b)
# attached to m / M and z = (M - m) / (M + u) in [0, 1).  Expanding the integrand
# in powers of (M - m) / (M + tau) and applying Euler's transformation,
#
#     J(u) = (M+u)^-e_M (m+u)^(1-e_m) / A * H,   H = sum_n (e_M)_n / (A+1)_n z^n,
#
# (J(u) = F(u)/A with F the 2F1 term of eqs. (19)-(20)).  The coefficient ratio
# (e_M+n)/(A+1+n) is < 1, so the terms are below z^n; H and its derivatives in
# z, e_M and A are power series whose coefficients depend on x only and whose
# argument depends on u only.  They are evaluated once per distinct x and u and
# combined per distinct (x, u) pair (u = t_x or T), which gives the
# log-likelihood and its exact gradient in a few vectorised array operations.
# When z gets close to 1 (alpha and beta far apart relative to the time scale)
# the series would need too many terms and the hyp2f1 likelihood with a
# numerical gradient is used instead.

_PNBD_SERIES_MAX_TERMS = 1000
_PNBD_SERIES_TOL = 1e-17


class _PnbdIndex:
    """Distinct x, distinct u (t_x and T values) and distinct (x, u) pairs of fixed rows."""

    def __init__(self, x, t_x, T):
        x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
        n = len(x)
        self.n = n
        self.xs, x_inv = np.unique(x, return_inverse=True)
        self.us, u_inv = np.unique(np.concatenate([t_x, T]), return_inverse=True)
        n_u = len(self.us)
        key = np.concatenate([x_inv, x_inv]).astype(np.int64) * n_u + u_inv
        pairs, p_inv = np.unique(key, return_inverse=True)
        self.p_x = pairs // n_u                 # index into xs of each pair
        self.p_u = pairs % n_u                  # index into us of each pair
        self.i_tx = p_inv[:n]                   # pair of (x, t_x) per row
        self.i_T = p_inv[n:]                    # pair of (x, T) per row
        self.iu_T = self.p_u[self.i_T]          # distinct u of each row's T
        self.x_inv = x_inv
        self.x = x
        self.T = T
        # evaluate the series on the full (u, x) table (one matrix product) when it is small
        self.table = len(self.xs) * n_u <= 8 * len(pairs)


def _pnbd_series_terms(z_max):
    """Number of series terms for a truncation error below _PNBD_SERIES_TOL (None if too many)."""
    if z_max <= 0.0:
        return 2
    if not z_max < 1.0:
        return None
    n = math.log(_PNBD_SERIES_TOL * (1.0 - z_max)) / math.log(z_max)
    if not math.isfinite(n) or n > _PNBD_SERIES_MAX_TERMS:
        return None
    return int(math.ceil(n)) + 2


_BLAS_CHUNK = 150_000   # multiply-adds per matrix product: stays below OpenBLAS' threading threshold


def _power_series(z, C):
    """``sum_n z**n C[n]`` for a vector z of arguments in [0, 1) and coefficients C of shape (N, q).

    Rows are processed in chunks, each with as many terms as its largest z
    needs (small products also keep BLAS single-threaded, which is faster for
    these sizes on a busy machine).
    """
    N, q = C.shape
    out = np.empty((len(z), q))
    order = None
    if len(z) > 1 and np.any(np.diff(z) > 0):      # process in order of decreasing z
        order = np.argsort(-z, kind="stable")
        z = z[order]
    k = np.arange(N, dtype=float)
    i = 0
    while i < len(z):
        n_c = min(N, _pnbd_series_terms(float(z[i])) or N)
        rows = max(1, _BLAS_CHUNK // (q * n_c))
        zc = z[i:i + rows]
        np.matmul(zc[:, None] ** k[:n_c], C[:n_c], out=out[i:i + rows])
        i += rows
    if order is not None:
        res = np.empty_like(out)
        res[order] = out
        return res
    return out


def _pnbd_log_J(theta, idx):
    """log J(u) and its derivatives w.r.t. (r, alpha, s, beta) for the distinct (x, u) pairs.

    Returns ``(logJ, dlogJ)`` with shapes ``(P,)`` and ``(P, 4)``, or None when the
    series would need more than ``_PNBD_SERIES_MAX_TERMS`` terms.
    """
    r, alpha, s, beta = theta
    xs, us = idx.xs, idx.us
    a = r + xs                                  # exponent of (alpha + tau), per distinct x
    A = r + s + xs
    b = np.full_like(xs, s + 1.0)               # exponent of (beta + tau)
    alpha_small = alpha < beta
    if alpha_small:
        m, M, e_m, e_M = alpha, beta, a, b
    else:
        m, M, e_m, e_M = beta, alpha, b, a
    z = (M - m) / (M + us)                      # per distinct u, in [0, 1)
    N = _pnbd_series_terms(float(z.max()) if len(z) else 0.0)
    if N is None or not np.all(np.isfinite(z)):
        return None
    k = np.arange(N, dtype=float)
    # coefficients c_n = (e_M)_n / (A+1)_n, n = 0..N (one extra for the z-derivative)
    ratio = (e_M[:, None] + k) / (A[:, None] + 1.0 + k)              # (n_x, N): c_{n+1}/c_n
    c = np.concatenate([np.ones((len(xs), 1)), np.cumprod(ratio, axis=1)], axis=1)
    sig_e = np.concatenate([np.zeros((len(xs), 1)), np.cumsum(1.0 / (e_M[:, None] + k), axis=1)], axis=1)
    sig_A = np.concatenate([np.zeros((len(xs), 1)), np.cumsum(1.0 / (A[:, None] + 1.0 + k), axis=1)], axis=1)
    cN = c[:, :N]
    K = np.stack([cN,                                   # H
                  c[:, 1:] * (k + 1.0),                 # dH/dz
                  cN * sig_e[:, :N],                    # dH/de_M
                  cN * sig_A[:, :N]])                   # -dH/dA
    p_x, p_u = idx.p_x, idx.p_u
    if idx.table:       # all (u, x) combinations at once, then pick the pairs
        tab = _power_series(z, K.transpose(2, 0, 1).reshape(N, -1))          # (n_u, 4 n_x)
        Hs = tab.reshape(len(us), 4, len(xs))[p_u, :, p_x].T                  # (4, P)
    else:               # pair by pair: powers of z per distinct u, coefficients per distinct x
        Zp = (z[:, None] ** k)[p_u]                                       # (P, N)
        Hs = np.stack([np.einsum("pn,pn->p", Zp, K[j][p_x]) for j in range(4)])
    H, H_z, H_e, H_Aneg = Hs
    u = us[p_u]
    lm, lM = np.log(m + u), np.log(M + u)
    eMp, emp, Ap = e_M[p_x], e_m[p_x], A[p_x]
    logJ = -eMp * lM + (1.0 - emp) * lm - np.log(Ap) + np.log(H)
    gz = H_z / H
    d_M = -eMp / (M + u) + gz * (m + u) / (M + u) ** 2
    d_m = (1.0 - emp) / (m + u) - gz / (M + u)
    d_eM = -lM + H_e / H
    d_em = -lm
    d_A = -1.0 / Ap - H_Aneg / H
    if alpha_small:     # e_m = a (r), e_M = b (s)
        d = np.column_stack([d_em + d_A, d_m, d_eM + d_A, d_M])
    else:               # e_m = b (s), e_M = a (r)
        d = np.column_stack([d_eM + d_A, d_M, d_em + d_A, d_m])
    return logJ, d


def _pnbd_ll_grad(theta, idx):
    """Pareto/NBD log-likelihood per row and its gradient w.r.t. the log-parameters.

    Same value as :func:`_ll_pareto_nbd` (note 009, eq. 18) on the rows of
    ``idx`` (a :class:`_PnbdIndex`); returns ``(ll, grad)`` with shapes ``(n,)``
    and ``(n, 4)``, or None when the series is not applicable.
    """
    r, alpha, s, beta = theta
    out = _pnbd_log_J(theta, idx)
    if out is None:
        return None
    logJ, dJ = out
    x, T = idx.x, idx.T
    lJ_t, lJ_T = logJ[idx.i_tx], logJ[idx.i_T]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.exp(np.minimum(lJ_T - lJ_t, 0.0))                   # J(T) / J(t_x) <= 1
        alive = rho < 1.0                                             # t_x < T: A_0 > 0
        one_m = np.where(alive, 1.0 - rho, 1.0)
        L2 = np.where(alive, np.log(s) + lJ_t + np.log1p(-rho), -np.inf)
        dlogD = (dJ[idx.i_tx] - rho[:, None] * dJ[idx.i_T]) / one_m[:, None]
    laT, lbT = np.log(alpha + T), np.log(beta + T)
    L1 = -(r + x) * laT - s * lbT
    G = gammaln(r + idx.xs) - gammaln(r)
    ll2 = np.logaddexp(L1, L2)
    ll = G[idx.x_inv] + r * np.log(alpha) + s * np.log(beta) + ll2
    w1 = np.exp(L1 - ll2)
    w2 = np.where(alive, np.exp(L2 - ll2), 0.0)[:, None]
    dlogD = np.where(alive[:, None], dlogD, 0.0)
    psi_rx = psi(r + idx.xs)[idx.x_inv]
    g_r = psi_rx - psi(r) + np.log(alpha) - w1 * laT + w2[:, 0] * dlogD[:, 0]
    g_alpha = r / alpha - w1 * (r + x) / (alpha + T) + w2[:, 0] * dlogD[:, 1]
    g_s = np.log(beta) - w1 * lbT + w2[:, 0] * (1.0 / s + dlogD[:, 2])
    g_beta = s / beta - w1 * s / (beta + T) + w2[:, 0] * dlogD[:, 3]
    grad = np.column_stack([g_r * r, g_alpha * alpha, g_s * s, g_beta * beta])
    return ll, grad



def _pnbd_ll_grad_sum(theta, idx, w):
    """Weighted sums of :func:`_pnbd_ll_grad`: ``(sum_i w_i ll_i, sum_i w_i grad_i)``.

    The same quantities, computed without per-row gradient matrices: with
    ``d = L2 - L1`` the mixture weights are ``w1 = 1 / (1 + e^d)``, ``w2 = e^d / (1 + e^d)``
    and ``ll2 = L1 + ln(1 + e^d)`` (one exp and one log per row), and the ``J``
    derivative terms are summed per distinct (x, u) pair (``bincount``) before they
    meet the pair derivatives ``dJ``.  Rows are processed in blocks of ``_CHUNK``.
    Returns None when the series is not applicable (then the caller falls back).
    """
    r, alpha, s, beta = theta
    out = _pnbd_log_J(theta, idx)
    if out is None:
        return None
    logJ, dJ = out
    w = np.asarray(w, dtype=float)
    la_u, lb_u = np.log(alpha + idx.us), np.log(beta + idx.us)
    ia_u, ib_u = 1.0 / (alpha + idx.us), 1.0 / (beta + idx.us)
    log_s = np.log(s)
    P = len(logJ)
    B_t = np.zeros(P)                                           # sum of w q per (x, t_x) pair
    B_T = np.zeros(P)                                           # sum of w q rho per (x, T) pair
    S = np.zeros(6)     # sum w ll2, w w1 laT, w w1 lbT, w w1 (r+x)/(alpha+T), w w1 / (beta+T), w w2
    n = len(idx.x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for lo in range(0, n, _CHUNK):
            sl = slice(lo, min(lo + _CHUNK, n))
            i_t, i_T, iu = idx.i_tx[sl], idx.i_T[sl], idx.iu_T[sl]
            wc, xc = w[sl], idx.x[sl]
            lJt = logJ[i_t]
            rho = np.exp(np.minimum(logJ[i_T] - lJt, 0.0))      # J(T) / J(t_x) <= 1
            one_m = 1.0 - rho
            laT, lbT = la_u[iu], lb_u[iu]
            rx = r + xc
            L1 = -rx * laT - s * lbT
            d = log_s + lJt + np.log(one_m) - L1                # L2 - L1 (-inf when t_x = T)
            if d.max() < 700.0:
                u = np.exp(d)
                opu = 1.0 + u
                ll2 = L1 + np.log(opu)
                w1 = 1.0 / opu
            else:
                ll2 = np.logaddexp(L1, L1 + d)
                w1 = np.exp(L1 - ll2)
            w2 = 1.0 - w1
            q = np.divide(w2, one_m, out=np.zeros_like(w2), where=one_m > 0) * wc
            ww1 = wc * w1
            S += [_dot(wc, ll2), _dot(ww1, laT), _dot(ww1, lbT), _dot(ww1 * rx, ia_u[iu]),
                  _dot(ww1, ib_u[iu]), _dot(wc, w2)]
            B_t += np.bincount(i_t, weights=q, minlength=P)
            B_T += np.bincount(i_T, weights=q * rho, minlength=P)
    N = float(w.sum())
    Wx = np.bincount(idx.x_inv, weights=w, minlength=len(idx.xs))      # customers per distinct x
    dlogD = np.einsum("p,pk->k", B_t, dJ) - np.einsum("p,pk->k", B_T, dJ)   # sum w w2 dlogD
    ll = _dot(Wx, gammaln(r + idx.xs) - gammaln(r)) + N * (r * np.log(alpha) + s * np.log(beta)) + S[0]
    g_r = _dot(Wx, psi(r + idx.xs)) - N * psi(r) + N * np.log(alpha) - S[1] + dlogD[0]
    g_alpha = N * r / alpha - S[3] + dlogD[1]
    g_s = N * np.log(beta) - S[2] + S[5] / s + dlogD[2]
    g_beta = N * s / beta - s * S[4] + dlogD[3]
    return float(ll), np.array([g_r * r, g_alpha * alpha, g_s * s, g_beta * beta])


def _ll_gamma_gamma(theta, x, m_x):
    """Gamma-Gamma log-likelihood of the mean spend m_x of x transactions.

    Fader, Hardie & Lee (2005b, JMR), eq. (3) integrated over nu (note 025, eq. 1a).
    """
    p, q, gamma = theta
    px = p * x
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(gamma)
            + (px - 1.0) * np.log(m_x) + px * np.log(x) - (px + q) * np.log(x * m_x + gamma))


_CHUNK = 65536   # rows per block in _BGFamilyObjective: small work arrays, reused (no page faults)


def _dot(u, v) -> float:
    """Inner product of two 1-D arrays without BLAS (multithreaded BLAS is slower at these sizes)."""
    return float(np.einsum("i,i->", u, v))


class _BGFamilyObjective:
    """Weighted (M)BG/NBD log-likelihood and its exact gradient, summed over customers.

    The same value as ``sum(w * _ll_bgnbd(theta, x, t_x, T))`` (Fader, Hardie & Lee
    2005a, eq. 6) or ``_ll_mbgnbd`` (Batislam et al. 2007, eq. A.4), rearranged so
    that little is computed per customer.  Since
    ``B(a+1, b+x-1+k) / B(a, b+x+k) = a / (b+x-1+k)``,

        LL_i = A(x_i) + r ln(alpha) - (r + x_i) ln(alpha + T_i) + delta_i ln(1 + exp(D_i)),
        A(x) = ln G(r+x) - ln G(r) + ln B(a, b+x+k) - ln B(a, b),
        D_i  = ln a - ln(b + x_i - 1 + k) + (r + x_i) [ln(alpha + T_i) - ln(alpha + t_x_i)],

    with k = 0, delta_i = 1{x_i > 0} for BG/NBD and k = 1, delta_i = 1 for MBG/NBD.
    Terms in x alone are evaluated once per distinct x, terms in T alone once per
    distinct T (weighted sums per T), logarithms once per distinct t_x and T; only
    D_i and its logistic weight are computed per row, for the rows with delta_i = 1.

    The gradient w.r.t. (r, alpha, a, b) uses psi (digamma) differences per distinct
    x and sigma(D_i) = 1 / (1 + exp(-D_i)) per row.
    """

    def __init__(self, x, t_x, T, w, modified: bool):
        x, t_x, T, w = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T, w))
        self.k = 1.0 if modified else 0.0
        self.N = float(w.sum())
        ix, self.xs = pd.factorize(x, sort=True)
        self.Wx = np.bincount(ix, weights=w, minlength=len(self.xs))
        iT, self.Ts = pd.factorize(T, sort=True)
        self.W_T = np.bincount(iT, weights=w, minlength=len(self.Ts))
        self.WX_T = np.bincount(iT, weights=w * x, minlength=len(self.Ts))
        pos = np.ones(len(x), dtype=bool) if modified else x > 0
        it, self.txs = pd.factorize(t_x[pos], sort=True)
        self.p_x, self.p_w = x[pos], w[pos]
        self.p_ix, self.p_iT, self.p_it = ix[pos], iT[pos], it
        self.xs_pos = self.xs if modified else np.where(self.xs > 0, self.xs, 1.0)
        self._buf = None

    def _buffers(self, size):
        if self._buf is None or len(self._buf[0]) < size:
            self._buf = [np.empty(size) for _ in range(5)]
        return self._buf

    def __call__(self, theta) -> tuple[float, np.ndarray]:
        """``(LL, dLL/d(r, alpha, a, b))`` at natural parameters ``theta``."""
        r, alpha, a, b = theta
        k, xs = self.k, self.xs
        lT = np.log(alpha + self.Ts)                     # per distinct T
        lt = np.log(alpha + self.txs)                    # per distinct t_x (rows with delta = 1)
        inv_T = 1.0 / (alpha + self.Ts)
        inv_t = 1.0 / (alpha + self.txs)
        A = gammaln(r + xs) - gammaln(r) + betaln(a, b + xs + k) - betaln(a, b)
        c = np.log(a) - np.log(b + self.xs_pos - 1.0 + k)
        # rows with delta = 1, in cache-sized chunks with preallocated buffers
        sp_sum = wsdl_sum = wsa_sum = 0.0
        S_x = np.zeros(len(xs))                          # sum of w sigma(D) per distinct x
        m = len(self.p_x)
        for lo in range(0, m, _CHUNK):
            hi = min(lo + _CHUNK, m)
            n_c = hi - lo
            rx, dl, D, u, tmp = (buf[:n_c] for buf in self._buffers(min(m, _CHUNK)))
            iT, it, ix, w = self.p_iT[lo:hi], self.p_it[lo:hi], self.p_ix[lo:hi], self.p_w[lo:hi]
            np.add(self.p_x[lo:hi], r, out=rx)
            np.take(lT, iT, out=dl)
            np.subtract(dl, np.take(lt, it, out=tmp), out=dl)
            np.take(c, ix, out=D)
            np.add(D, np.multiply(rx, dl, out=tmp), out=D)        # D_i
            if D.max() < 700.0:                                  # e^D finite: one exp, one log
                np.exp(D, out=u)
                np.add(u, 1.0, out=tmp)
                np.divide(u, tmp, out=u)                         # sigma(D)
                np.log(tmp, out=D)                               # ln(1 + e^D)
            else:
                e = np.exp(-np.abs(D))
                u[:] = np.where(D >= 0.0, 1.0, e) / (1.0 + e)
                D[:] = np.maximum(D, 0.0) + np.log1p(e)
            sp_sum += _dot(w, D)
            np.multiply(u, w, out=u)                             # w sigma(D)
            wsdl_sum += _dot(u, dl)
            S_x += np.bincount(ix, weights=u, minlength=len(xs))
            np.take(inv_T, iT, out=D)
            np.subtract(D, np.take(inv_t, it, out=tmp), out=D)
            wsa_sum += _dot(np.multiply(u, rx, out=tmp), D)
        rW = r * self.W_T + self.WX_T                    # sum of w (r + x) per distinct T
        ll = _dot(self.Wx, A) + self.N * r * np.log(alpha) - _dot(rW, lT) + sp_sum
        g_r = _dot(self.Wx, psi(r + xs) - psi(r)) + self.N * np.log(alpha) - _dot(self.W_T, lT) + wsdl_sum
        g_alpha = self.N * r / alpha - _dot(rW, inv_T) + wsa_sum
        psi_abx = psi(a + b + xs + k)
        g_a = _dot(self.Wx, psi(a + b) - psi_abx) + S_x.sum() / a
        g_b = (_dot(self.Wx, psi(b + xs + k) - psi_abx - psi(b) + psi(a + b))
               - _dot(S_x, 1.0 / (b + self.xs_pos - 1.0 + k)))
        return float(ll), np.array([g_r, g_alpha, g_a, g_b])


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
            self._buf = [np.empty(min(m, _CHUNK)) for _ in range(2)]
        S = np.zeros(6)            # sum w L, w x L, w R, w x R, w R^2, w x R^2
        for lo in range(0, m, _CHUNK):
            hi = min(lo + _CHUNK, m)
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


_LL = {"bgnbd": _ll_bgnbd, "mbgnbd": _ll_mbgnbd, "pareto_nbd": _ll_pareto_nbd}


def log_likelihood(model: str, params, x, t_x, T, weights=None) -> float:
    """Full log-likelihood (summed over customers) of a frequency model.

    Parameters
    ----------
    model : {"bgnbd", "mbgnbd", "pareto_nbd"}
    params : sequence or Series
        Parameters in literature order (see :data:`MODELS`).
    x, t_x, T : array_like
    weights : array_like, optional
        Number of customers per row (default 1).
    """
    model = _check_model(model)
    theta = _theta(model, params)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    with np.errstate(all="ignore"):
        return float(np.sum(w * _LL[model](theta, x, t_x, T)))


def _theta(model, params):
    if isinstance(params, pd.Series):
        return tuple(float(params[k]) for k in MODELS[model])
    return tuple(float(v) for v in params)


def _check_model(model: str) -> str:
    key = str(model).lower().replace("/", "").replace("-", "").replace("_", "")
    aliases = {"bgnbd": "bgnbd", "mbgnbd": "mbgnbd", "paretonbd": "pareto_nbd", "pnbd": "pareto_nbd"}
    if key not in aliases:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    return aliases[key]


# ---------------------------------------------------------------------------
# predictions
# ---------------------------------------------------------------------------

def _log_hyp2f1_safe(a, b, c, z):
    """log 2F1(a,b;c;z), falling back to Euler's transformation when 2F1 overflows."""
    with np.errstate(all="ignore"):
        val = np.log(hyp2f1(a, b, c, z))
        alt = np.log(hyp2f1(c - a, c - b, c, z)) + (c - a - b) * np.log1p(-z)
    return np.where(np.isfinite(val), val, alt)


def _p_alive(model, theta, x, t_x, T):
    if model == "bgnbd":
        # FHL (2005a) eq. (13); 1 for x == 0
        r, alpha, a, b = theta
        xb = np.maximum(x, 1.0)
        log_odds = np.log(a) - np.log(b + xb - 1.0) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return np.where(x == 0, 1.0, 1.0 / (1.0 + np.exp(log_odds)))
    if model == "mbgnbd":
        # Batislam et al. (2007), appendix eq. (5)
        r, alpha, a, b = theta
        log_odds = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return 1.0 / (1.0 + np.exp(log_odds))
    # Pareto/NBD, Fader & Hardie note 009 eq. (36)-(37); SMC (1987) eq. (11)
    r, alpha, s, beta = theta
    log_A0 = _pnbd_log_A0(theta, x, t_x, T)
    log_odds = (np.log(s) - np.log(r + s + x) + (r + x) * np.log(alpha + T)
                + s * np.log(beta + T) + log_A0)
    return 1.0 / (1.0 + np.exp(log_odds))


def _cond_expected_G(model, theta, t, x, T):
    """The part of E[X(t) | x, t_x, T] in ``(x, T, t)`` only (broadcasting); see :func:`_cond_expected`."""
    if model == "bgnbd":
        # FHL (2005a) eq. (10), numerator
        r, alpha, a, b = theta
        log_h = _log_hyp2f1_safe(r + x, b + x, a + b + x - 1.0, t / (alpha + T + t))
        return (a + b + x - 1.0) / (a - 1.0) * -np.expm1(log_h + (r + x) * np.log((alpha + T) / (alpha + T + t)))
    if model == "mbgnbd":
        # Batislam et al. (2007), appendix eq. (6) (Wagner & Hoppe 2008), numerator
        r, alpha, a, b = theta
        log_h = _log_hyp2f1_safe(r + x, b + x + 1.0, a + b + x, t / (alpha + T + t))
        return (a + b + x) / (a - 1.0) * -np.expm1(log_h + (r + x) * np.log((alpha + T) / (alpha + T + t)))
    # Pareto/NBD: SMC (1987) eq. (22); Fader & Hardie note 009 eq. (41), without P(alive)
    r, alpha, s, beta = theta
    if np.isclose(s, 1.0):
        rate_term = np.log((beta + T + t) / (beta + T))
    else:
        rate_term = -np.expm1((s - 1.0) * np.log((beta + T) / (beta + T + t))) / (s - 1.0)
    return (r + x) * (beta + T) / (alpha + T) * rate_term


def _cond_expected_h(model, theta, x, t_x, T):
    """The per-customer part of E[X(t) | x, t_x, T] (the one with ``t_x``); see :func:`_cond_expected`."""
    if model == "bgnbd":
        r, alpha, a, b = theta
        xb = np.maximum(x, 1.0)
        return 1.0 / (1.0 + (x > 0) * (a / (b + xb - 1.0)) * np.exp((r + x) * np.log((alpha + T) / (alpha + t_x))))
    if model == "mbgnbd":
        r, alpha, a, b = theta
        return 1.0 / (1.0 + (a / (b + x)) * np.exp((r + x) * np.log((alpha + T) / (alpha + t_x))))
    return _p_alive(model, theta, x, t_x, T)


def _cond_expected(model, theta, t, x, t_x, T):
    """E[X(t) | x, t_x, T] = G(x, T, t) h(x, t_x, T) (broadcasting).

    (M)BG/NBD: FHL (2005a) eq. (10) / Batislam et al. (2007) eq. (6), G the hypergeometric
    numerator and ``h = 1 / (1 + delta a/(b+x-1+k) ((alpha+T)/(alpha+t_x))^(r+x))``;
    Pareto/NBD: SMC (1987) eq. (22), ``G = (r+x)(beta+T)/(alpha+T) (...)`` and ``h = P(alive)``.
    """
    return _cond_expected_G(model, theta, t, x, T) * _cond_expected_h(model, theta, x, t_x, T)


def _cond_expected_parts(model, theta, t_grid, x, t_x, T):
    """E[X(t) | x, t_x, T] as ``G[inverse] * h[:, None]`` for 1-D customer arrays and a time grid.

    The factors of :func:`_cond_expected`: ``G`` (shape ``(n_pairs, len(t_grid))``) is
    evaluated once per distinct ``(x, T)`` pair, so a month grid for a million customers
    costs a few thousand 2F1 evaluations per month instead of a million; ``h`` per
    customer (Pareto/NBD: once per unique ``(x, t_x, T)``, P(alive) needs a 2F1).

    Returns
    -------
    G : ndarray, shape (n_pairs, len(t_grid))
    inverse : ndarray of int, shape (n,)
        The pair of each customer.
    h : ndarray, shape (n,)
    """
    t_grid = np.asarray(t_grid, dtype=float)
    (xs, Ts), inv, _ = unique_rows(x, T)
    G = _cond_expected_G(model, theta, t_grid[None, :], xs[:, None], Ts[:, None])
    if model == "pareto_nbd":
        h = unique_apply(lambda a, b, c: _p_alive(model, theta, a, b, c), x, t_x, T)
    else:
        h = _cond_expected_h(model, theta, x, t_x, T)
    return G, inv, h


def _cond_expected_grid(model, theta, t_grid, x, t_x, T):
    """E[X(t) | x, t_x, T] for 1-D customer arrays and a 1-D time grid -> (n, len(t_grid))."""
    G, inv, h = _cond_expected_parts(model, theta, t_grid, x, t_x, T)
    return G[inv] * h[:, None]


def _uncond_expected(model, theta, t):
    t = np.asarray(t, dtype=float)
    if model == "bgnbd":
        # FHL (2005a) eq. (9)
        r, alpha, a, b = theta
        return (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r
                                            * hyp2f1(r, b, a + b - 1.0, t / (alpha + t)))
    if model == "mbgnbd":
        r, alpha, a, b = theta
        return b / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r * hyp2f1(r, b + 1.0, a + b, t / (alpha + t)))
    # Pareto/NBD, SMC (1987) eq. (17); note 009 eq. (27)
    r, alpha, s, beta = theta
    if np.isclose(s, 1.0):
        return r * beta / alpha * np.log1p(t / beta)
    return r * beta / (alpha * (s - 1.0)) * (1.0 - (beta / (beta + t)) ** (s - 1.0))


def _log_nbd_pmf(n, r, alpha, t):
    """log P(N(t)=n) for the NBD (Poisson with gamma(r, alpha) rate)."""
    return (gammaln(r + n) - gammaln(r) - gammaln(n + 1.0) + r * np.log(alpha / (alpha + t))
            + xlogy(n, t / (alpha + t)))


def _count_pmf(model, theta, t, n):
    """P(X(t) = n) for a new customer; t and n broadcast (unique t values x counts)."""
    t = np.asarray(t, dtype=float)
    n = np.asarray(n, dtype=float)
    if model in ("bgnbd", "mbgnbd"):
        r, alpha, a, b = theta
        t_b, n_b = np.broadcast_arrays(t, n)
        nmax = int(np.max(n_b)) if n_b.size else 0
        # cumulative sum_{j<n} of the NBD pmf at t
        j = np.arange(nmax + 1, dtype=float)
        pmf_j = np.exp(_log_nbd_pmf(j, r, alpha, t_b[..., None]))          # shape + (nmax+1,)
        cum = np.concatenate([np.zeros(pmf_j.shape[:-1] + (1,)), np.cumsum(pmf_j, axis=-1)], axis=-1)
        cum_before = np.take_along_axis(cum, n_b.astype(int)[..., None], axis=-1)[..., 0]
        t, n = t_b, n_b
        nbd_n = np.exp(_log_nbd_pmf(n, r, alpha, t))
        if model == "bgnbd":
            # FHL (2005a) eq. (8)
            first = np.exp(betaln(a, b + n) - betaln(a, b)) * nbd_n
            nb = np.maximum(n, 1.0)
            second = np.where(n > 0, np.exp(betaln(a + 1.0, b + nb - 1.0) - betaln(a, b)) * (1.0 - cum_before), 0.0)
        else:
            # MBG/NBD analogue (drop-out possible at time 0)
            first = np.exp(betaln(a, b + n + 1.0) - betaln(a, b)) * nbd_n
            second = np.exp(betaln(a + 1.0, b + n) - betaln(a, b)) * (1.0 - cum_before)
        return first + second
    # Pareto/NBD: P(X(t)=n) = NBD(n; t) P(tau > t) + int_0^t NBD(n; u) f_tau(u) du,
    # tau ~ Pareto II(s, beta) (gamma-mixed exponential lifetime); Gauss-Legendre quadrature.
    r, alpha, s, beta = theta
    nodes, wts = np.polynomial.legendre.leggauss(64)
    t_b, n_b = np.broadcast_arrays(t, n)
    # substitute u = t * v^2 (v in [0,1]) to resolve the mass near 0
    v = 0.5 * (nodes + 1.0)
    wv = 0.5 * wts
    u = t_b[..., None] * v ** 2
    du = t_b[..., None] * 2.0 * v * wv
    f_tau = s / beta * (beta / (beta + u)) ** (s + 1.0)
    integral = np.sum(np.exp(_log_nbd_pmf(n_b[..., None], r, alpha, u)) * f_tau * du, axis=-1)
    return np.exp(_log_nbd_pmf(n_b, r, alpha, t_b)) * (beta / (beta + t_b)) ** s + integral


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------

def _frequency_arrays(summary, x, t_x, T):
    if summary is not None:
        if not isinstance(summary, pd.DataFrame):
            raise TypeError(f"summary must be a DataFrame with columns x, t_x, T, got {type(summary).__name__}")
        missing = [c for c in ("x", "t_x", "T") if c not in summary.columns]
        if missing:
            raise ValueError(f"summary is missing column(s) {missing}; expected x, t_x, T "
                             f"(see helpers.summary.rfm_summary); columns present: {list(summary.columns)}")
        x, t_x, T = summary["x"], summary["t_x"], summary["T"]
    elif x is None or t_x is None or T is None:
        raise ValueError("pass either a summary DataFrame or all of x, t_x, T")
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    _validate_xtT(x, t_x, T)
    return x, t_x, T


def _validate_xtT(x, t_x, T):
    if not (len(x) == len(t_x) == len(T)):
        raise ValueError(f"x, t_x, T must have equal length, got {len(x)}, {len(t_x)}, {len(T)}")
    if len(x) == 0:
        raise ValueError("no customers: x, t_x, T are empty")
    for name, v in (("x", x), ("t_x", t_x), ("T", T)):
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(f"{name} has {bad.sum()} non-finite value(s) (NaN/inf)")
        if (v < 0).any():
            raise ValueError(f"{name} must be >= 0 ({(v < 0).sum()} negative value(s))")
    if (np.round(x) != x).any():
        raise ValueError("x (number of repeat purchases) must be whole numbers")
    bad = t_x > T * (1 + 1e-12) + 1e-12
    if bad.any():
        raise ValueError(f"t_x (recency) must not exceed T (age): {bad.sum()} customer(s) with t_x > T")
    bad = (x > 0) & (t_x <= 0)
    if bad.any():
        raise ValueError(f"{bad.sum()} customer(s) have repeat purchases (x > 0) but t_x == 0")


# ---------------------------------------------------------------------------
# optimisation
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


def _minimise(mean_obj, phi0, label, advice=ADVICE, mean_grad=None, hessian_out: dict | None = None,
              mean_hess=None):
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

    try:
        with np.errstate(all="ignore"):
            if mean_hess is not None and mean_grad is not None:
                res = optimize.minimize(fun, np.asarray(phi0, float), jac=jac, hess=hess, method="trust-exact",
                                        options={"maxiter": 500, "gtol": 1e-9})
            else:
                res = optimize.minimize(fun, np.asarray(phi0, float), jac=jac, method="L-BFGS-B", bounds=bounds,
                                        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9})
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
                if fun(cand) <= fun(phi):
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


def _cov_from_hessian(total_obj, phi, names, label, total_grad=None, H=None):
    if H is None:
        H = _grad_hessian(total_grad, phi) if total_grad is not None else _num_hessian(total_obj, phi, h=1e-4)
    theta = np.exp(phi)
    try:
        cov_log = np.linalg.inv(H)
        ok = np.all(np.isfinite(cov_log)) and np.all(np.diag(cov_log) > 0)
    except np.linalg.LinAlgError:
        ok = False
    if not ok:
        warnings.warn(f"{label}: the Hessian at the optimum is singular or not positive definite; "
                      "standard errors are NaN (weakly identified parameters).", RuntimeWarning, stacklevel=3)
        cov_log = np.full((len(phi), len(phi)), np.nan)
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
        return _LABELS.get(self.name, self.name)


@dataclass
class FittedModel(_ParamsMixin):
    """A fitted frequency model (BG/NBD, MBG/NBD or Pareto/NBD).

    Attributes
    ----------
    name : str
        ``"bgnbd"``, ``"mbgnbd"`` or ``"pareto_nbd"``.
    params : Series
        Estimates with literature names (``r, alpha, a, b`` or ``r, alpha, s, beta``).
    se : Series
        Standard errors (inverse Hessian of the negative log-likelihood, delta
        method from the log scale).
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
    def theta(self) -> tuple:
        return tuple(float(self.params[k]) for k in MODELS[self.name])

    def _args(self, x, t_x, T):
        if isinstance(x, pd.DataFrame) and t_x is None and T is None:
            return _frequency_arrays(x, None, None, None)
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        return x, t_x, T

    def expected_purchases(self, t, x, t_x=None, T=None) -> np.ndarray:
        """Conditional expectation E[X(t) | x, t_x, T] of repeat purchases in (T, T+t].

        BG/NBD: FHL (2005a) eq. (10); MBG/NBD: Batislam et al. (2007);
        Pareto/NBD: SMC (1987) eq. (22).  ``x`` may be a summary DataFrame
        (then ``t_x`` and ``T`` are taken from it).  For a scalar ``t`` the
        hypergeometric part is evaluated once per distinct ``(x, T)``
        (see ``_cond_expected_parts``).
        """
        x, t_x, T = self._args(x, t_x, T)
        th = self.theta
        with np.errstate(all="ignore"):
            if np.ndim(t) == 0 and np.ndim(x) == 1:
                G, inv, h = _cond_expected_parts(self.name, th, [float(t)], x, t_x, T)
                return G[inv, 0] * h
            return _cond_expected(self.name, th, np.asarray(t, float), x, t_x, T)

    def p_alive(self, x, t_x=None, T=None) -> np.ndarray:
        """P(alive | x, t_x, T): FHL (2005a) eq. (13); Batislam et al. (2007); SMC (1987) eq. (11)."""
        x, t_x, T = self._args(x, t_x, T)
        th = self.theta
        with np.errstate(all="ignore"):
            if np.ndim(x) == 1 and self.name == "pareto_nbd":      # 2F1 per row: once per unique row
                return unique_apply(lambda a, b, c: _p_alive(self.name, th, a, b, c), x, t_x, T)
            return _p_alive(self.name, th, x, t_x, T)

    def expected_purchases_new(self, t) -> np.ndarray:
        """Unconditional E[X(t)] for a customer who made the first purchase at time 0.

        BG/NBD: FHL (2005a) eq. (9); Pareto/NBD: SMC (1987) eq. (17).
        """
        with np.errstate(all="ignore"):
            return _uncond_expected(self.name, self.theta, t)

    def probability_of_n_purchases(self, t, n) -> np.ndarray:
        """P(X(t) = n) for a new customer (BG/NBD: FHL 2005a eq. (8))."""
        with np.errstate(all="ignore"):
            return _count_pmf(self.name, self.theta, t, n)

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
            P = _count_pmf(self.name, self.theta, Tu[:, None], n[None, :])   # (n_T, max_x)
        expected = (counts[:, None] * P).sum(axis=0)
        tail = len(T) - expected.sum()
        labels = [str(i) for i in range(max_x)] + [f"{max_x}+"]
        return pd.DataFrame({"expected": np.append(expected, tail)}, index=pd.Index(labels, name="x"))

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"<FittedModel {self.label}: {ps}; LL={self.log_likelihood:.1f}, n={self.n_customers}>"


@dataclass
class GammaGammaFit(_ParamsMixin):
    """A fitted Gamma-Gamma spend model (FHL 2005b, JMR 42).

    Attributes
    ----------
    params : Series
        ``p, q, gamma``: transaction value z ~ Gamma(p, nu), nu ~ Gamma(q, gamma).
    se, ci95, cov, log_likelihood, aic, bic, converged
        As for :class:`FittedModel`.
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
    def theta(self) -> tuple:
        return tuple(float(self.params[k]) for k in ("p", "q", "gamma"))

    def population_mean_spend(self) -> float:
        """Mean spend per transaction in the population, E[z] = p gamma / (q - 1) (needs q > 1)."""
        p, q, gamma = self.theta
        if q <= 1:
            return float("inf")
        return p * gamma / (q - 1.0)

    def expected_spend(self, x, m_x=None) -> np.ndarray:
        """Conditional expected mean spend E[M | x, m_x], FHL (2005b) eq. (5).

        A weighted average of the population mean ``p gamma / (q - 1)`` and the
        customer's observed mean ``m_x``, weight ``p x / (p x + q - 1)`` on
        ``m_x``; for ``x == 0`` it is the population mean.  ``x`` may be a
        summary DataFrame with columns ``x`` and ``m_x``.
        """
        if isinstance(x, pd.DataFrame) and m_x is None:
            x, m_x = x["x"], x["m_x"]
        x = np.asarray(x, dtype=float)
        m_x = np.asarray(m_x, dtype=float)
        p, q, gamma = self.theta
        w = p * x / (p * x + q - 1.0)
        return (1.0 - w) * self.population_mean_spend() + w * np.where(x > 0, m_x, 0.0)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"<GammaGammaFit: {ps}; n={self.n_customers}, corr(x, m_x)={self.frequency_spend_corr:.3f}>"


# ---------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------

def _initial(model, T):
    t_scale = max(float(np.max(T)), 1e-12)
    if model in ("bgnbd", "mbgnbd"):
        return np.log([1.0, t_scale, 1.0, 1.0])
    return np.log([1.0, t_scale, 1.0, t_scale])


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
    """Fit a frequency model by maximum likelihood.

    Parameters
    ----------
    model : {"bgnbd", "mbgnbd", "pareto_nbd"}
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
        Malformed input (missing columns, negative or non-finite values,
        non-integer ``x``, ``t_x > T``).
    ModelFitError
        The data carry no repeat purchases or the optimisation fails /
        does not converge; the message says what to try.
    """
    model = _check_model(model)
    label = _LABELS[model]
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
    n_customers = float(wu.sum())
    if n_customers <= 0:
        raise ValueError("no customers with positive weight")
    if not (xu > 0).any():
        raise ModelFitError(f"{label}: no customer has a repeat purchase (all x == 0); the purchase "
                            f"and drop-out processes cannot be separated. {ADVICE}")
    if np.all(Tu <= 0):
        raise ModelFitError(f"{label}: every customer has T == 0. {ADVICE}")

    names = MODELS[model]
    llf = _LL[model]
    t_scale = max(float(Tu.max()), 1e-12)
    scale_vec = np.array([t_scale if k in _TIME_SCALE[model] else 1.0 for k in names])

    series = None
    if model in ("bgnbd", "mbgnbd"):
        # log-likelihood and gradient together (one pass over the rows)
        objective = _BGFamilyObjective(xu, txu, Tu, wu, modified=model == "mbgnbd")

        @_once_per_point
        def series(phi):
            theta = np.exp(phi)
            with np.errstate(all="ignore"):
                ll, g = objective(theta)
            out = (ll, g * theta)                        # gradient w.r.t. log-parameters
            return out if np.isfinite(out[0]) and np.all(np.isfinite(out[1])) else None
    elif model == "pareto_nbd":
        # log-likelihood and exact gradient from the hypergeometric series (see _pnbd_ll_grad)
        # (bootstrap rows may repeat (x, t_x, T) with different spend: merge them here)
        (xs_, txs_, Ts_), rinv, _ = unique_rows(xu, txu, Tu)
        ws_ = np.bincount(rinv, weights=wu, minlength=len(xs_))
        pidx = _PnbdIndex(xs_, txs_, Ts_)

        @_once_per_point
        def series(phi):
            with np.errstate(all="ignore"):
                out = _pnbd_ll_grad_sum(np.exp(phi), pidx, ws_)
            if out is not None and not (np.isfinite(out[0]) and np.all(np.isfinite(out[1]))):
                out = None
            return out

    def total_nll(phi):
        theta = np.exp(phi)
        out = series(phi) if series is not None else None
        if out is not None:
            ll = out[0]
        else:
            with np.errstate(all="ignore"):
                ll = np.sum(wu * llf(theta, xu, txu, Tu))
        pen = penalizer * np.sum((theta / scale_vec) ** 2) * n_customers if penalizer else 0.0
        return -ll + pen

    def mean_nll(phi):
        return total_nll(phi) / n_customers

    total_grad = mean_grad = None
    if series is not None:
        def total_grad(phi):
            out = series(phi)
            if out is None:      # series not applicable here: _minimise falls back to differences
                return np.full(len(phi), np.nan)
            theta = np.exp(phi)
            g = -out[1]
            if penalizer:
                g = g + 2.0 * penalizer * (theta / scale_vec) ** 2 * n_customers
            return g

        def mean_grad(phi):
            return total_grad(phi) / n_customers

    if initial_params is not None:
        phi0 = np.log(np.asarray(_theta(model, initial_params), dtype=float))
        if not np.all(np.isfinite(phi0)):
            raise ValueError("initial_params must be positive")
    else:
        phi0 = _initial(model, Tu)
    polish: dict = {}
    try:
        phi, converged, message = _minimise(mean_nll, phi0, label, mean_grad=mean_grad, hessian_out=polish)
    except ModelFitError:
        if initial_params is None:
            raise
        polish.clear()
        phi, converged, message = _minimise(mean_nll, _initial(model, Tu), label, mean_grad=mean_grad,
                                            hessian_out=polish)

    theta = np.exp(phi)
    params = pd.Series(theta, index=list(names), name=label)
    out = series(phi) if series is not None else None
    ll = out[0] if out is not None else float(np.sum(wu * llf(theta, xu, txu, Tu)))
    if _se:
        if series is not None and series(phi) is None:
            total_grad = None        # no analytic gradient here: Hessian of the log-likelihood itself
        H = None
        if total_grad is not None and "H" in polish and np.max(np.abs(polish["phi"] - phi)) < _HESSIAN_REUSE:
            H = polish["H"] * n_customers     # the Newton polish's Hessian, at (almost) this point
        se, ci, cov = _cov_from_hessian(total_nll, phi, list(names), label, total_grad, H)
    else:
        se, ci, cov = _no_se(list(names))
    k = len(names)
    return FittedModel(
        name=model, params=params, se=se, ci95=ci, cov=cov, log_likelihood=ll,
        aic=-2 * ll + 2 * k, bic=-2 * ll + k * np.log(n_customers),
        n_customers=int(round(n_customers)), n_unique=len(xu), converged=converged,
        penalizer=float(penalizer), time_unit=time_unit, message=message,
    )


def fit_bgnbd(summary=None, **kwargs) -> FittedModel:
    """Fit BG/NBD (FHL 2005a); see :func:`fit_model`."""
    return fit_model("bgnbd", summary, **kwargs)


def fit_mbgnbd(summary=None, **kwargs) -> FittedModel:
    """Fit MBG/NBD (Batislam et al. 2007); see :func:`fit_model`."""
    return fit_model("mbgnbd", summary, **kwargs)


def fit_pareto_nbd(summary=None, **kwargs) -> FittedModel:
    """Fit Pareto/NBD (SMC 1987; Fader & Hardie 2005 note); see :func:`fit_model`."""
    return fit_model("pareto_nbd", summary, **kwargs)


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
        name="gamma_gamma", params=pd.Series(theta, index=names, name="Gamma-Gamma"), se=se, ci95=ci, cov=cov,
        log_likelihood=ll, aic=-2 * ll + 6, bic=-2 * ll + 3 * np.log(n), n_customers=int(round(n)),
        n_unique=len(xu), converged=converged, n_excluded_nonpositive=n_excluded,
        frequency_spend_corr=corr, corr_threshold=corr_threshold, penalizer=float(penalizer),
    )


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
