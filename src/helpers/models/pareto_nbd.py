"""Pareto/NBD: Schmittlein, Morrison & Colombo (1987), "Counting your customers: who are
they and what will they do next?", *Management Science* 33(1), 1-24; likelihood as in
Fader & Hardie (2005), "A note on deriving the Pareto/NBD model and related
expressions" (brucehardie.com note 009).

While alive a customer buys at Poisson rate ``lambda ~ Gamma(r, alpha)``; the
lifetime is exponential with rate ``mu ~ Gamma(s, beta)``.  The fitter's fast
path is an exact hypergeometric-series form of the likelihood with its
analytic gradient (``_pnbd_ll_grad_sum``), evaluated per distinct ``x`` and
distinct ``t_x``/``T``; where the series would need too many terms the hyp2f1
likelihood with central differences is used instead.  The module also holds the
exact retention lever of :mod:`helpers.economics` for a drop-out *rate*
(:meth:`ParetoNBD.lever_expectations`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammainc, gammaincc, gammaln, hyp2f1, psi

from . import base as _base
from .base import FrequencyModel, _dot, _first_arrivals, _log_nbd_pmf, _split, unique_apply, unique_rows

__all__ = ["ParetoNBD"]


def _pnbd_log_A0(theta, x, t_x, T):
    """log A_0 of the Pareto/NBD likelihood, Fader & Hardie (2005) note 009, eqs. (19)-(20)."""
    r, alpha, s, beta = theta
    rsx = r + s + x
    if np.ndim(alpha) == 0 and np.ndim(beta) == 0:
        if alpha >= beta:
            big, small, second = alpha, beta, s + 1.0
        else:
            big, small, second = beta, alpha, r + x
    else:       # per-customer alpha_i, beta_i (covariates): the same choice row by row
        a_big = np.asarray(alpha) >= np.asarray(beta)
        big, small = np.maximum(alpha, beta), np.minimum(alpha, beta)
        second = np.where(a_big, s + 1.0, r + x)
    d = big - small
    log_f1 = np.log(hyp2f1(rsx, second, rsx + 1.0, d / (big + t_x))) - rsx * np.log(big + t_x)
    log_f2 = np.log(hyp2f1(rsx, second, rsx + 1.0, d / (big + T))) - rsx * np.log(big + T)
    # A_0 = f1 - f2 >= 0 (f1 >= f2 since t_x <= T); log of a difference, stably
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = log_f2 - log_f1
        out = log_f1 + np.log1p(-np.exp(np.minimum(diff, 0.0)))
    return np.where(diff >= 0, -np.inf, out)


def _pnbd_log_J_rows(a, b, alpha, beta, lo, hi):
    """``log int_lo^hi (alpha+tau)^-a (beta+tau)^-b dtau`` row by row (``-inf`` where ``lo == hi``).

    ``int_u^inf = (M+u)^-(a+b-1) / (a+b-1) 2F1(a+b-1, e_m; a+b; (M-m)/(M+u))`` with ``M, m`` the larger
    and smaller of ``alpha, beta`` and ``e_m`` the exponent of the smaller (Fader & Hardie note 009,
    eqs. 19-20, where ``a = r+x``, ``b = s+1``); the difference of the two tails, stably.
    """
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    a_big = alpha >= beta
    M, m = np.maximum(alpha, beta), np.minimum(alpha, beta)
    e_m = np.where(a_big, b, a)
    c = a + b - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lo = _base._log_hyp2f1_safe(c, e_m, c + 1.0, (M - m) / (M + lo)) - c * np.log(M + lo) - np.log(c)
        log_hi = _base._log_hyp2f1_safe(c, e_m, c + 1.0, (M - m) / (M + hi)) - c * np.log(M + hi) - np.log(c)
        diff = log_hi - log_lo
        out = log_lo + np.log1p(-np.exp(np.minimum(diff, 0.0)))
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
_TABLE_CELLS = 1_500_000    # (distinct u) x (distinct x) table entries (x 4 series, about 50 MB) always tabulated
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
        # evaluate the series on the full (u, x) table (matrix products) when it is not much larger than
        # the pairs, or small in itself: a product over the table costs far less per entry than the
        # gathers of the pair-by-pair path (a multi-cohort log: 2e4 customers, 0.67 s -> 0.2 s per evaluation)
        cells = len(self.xs) * n_u
        self.table = cells <= 8 * len(pairs) or cells <= _TABLE_CELLS
        self._w_cache: tuple | None = None

    def _weights(self, w):
        """Customers per (x, T) pair and per distinct x for the row weights ``w`` (cached for the last ``w``)."""
        c = self._w_cache
        if c is None or c[0] is not w:
            c = self._w_cache = (w, np.bincount(self.i_T, weights=w, minlength=len(self.p_x)),
                                 np.bincount(self.x_inv, weights=w, minlength=len(self.xs)))
        return c

    def pair_weight_T(self, w):
        """``sum w`` per distinct (x, u) pair over the rows whose (x, T) it is."""
        return self._weights(w)[1]

    def x_weight(self, w):
        """``sum w`` per distinct x."""
        return self._weights(w)[2]


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


def _pnbd_series_far(z):
    """The arguments ``z`` (array) whose series would need more than ``_PNBD_SERIES_MAX_TERMS`` terms."""
    z = np.asarray(z, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.log(_PNBD_SERIES_TOL * (1.0 - z)) / np.log(z)
    return (z > 0.0) & ~(n <= _PNBD_SERIES_MAX_TERMS)


def _pnbd_H_hyp2f1(e_M, A, z):
    """``H = 2F1(e_M, 1; A + 1; z)`` of the series form and the derivatives the series gives.

    Returns ``(H, dH/dz, dH/de_M, -dH/dA)`` (stacked, shape ``(4, n)``), the
    same quantities :func:`_pnbd_log_J` sums as power series (``H`` is the
    series ``sum_n (e_M)_n / (A+1)_n z^n``).  For ``z`` near 1, where the
    series converges slowly: ``dH/dz = e_M / (A + 1) 2F1(e_M + 1, 2; A + 2; z)``
    (A&S 15.2.1) and the parameter derivatives by central differences of
    hyp2f1 (relative step 1e-5: about 1e-10 relative error, far below what the
    optimiser and the Hessian of the standard errors resolve).
    """
    H = hyp2f1(e_M, 1.0, A + 1.0, z)
    H_z = e_M / (A + 1.0) * hyp2f1(e_M + 1.0, 2.0, A + 2.0, z)
    he = 1e-5 * np.maximum(e_M, 1.0)
    hA = 1e-5 * np.maximum(A + 1.0, 1.0)
    H_e = (hyp2f1(e_M + he, 1.0, A + 1.0, z) - hyp2f1(e_M - he, 1.0, A + 1.0, z)) / (2.0 * he)
    H_Aneg = -(hyp2f1(e_M, 1.0, A + 1.0 + hA, z) - hyp2f1(e_M, 1.0, A + 1.0 - hA, z)) / (2.0 * hA)
    return np.stack([H, H_z, H_e, H_Aneg])


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

    Returns ``(logJ, dlogJ)`` with shapes ``(P,)`` and ``(P, 4)`` (None only at
    non-finite parameters).  Pairs whose ``z`` would need more than
    ``_PNBD_SERIES_MAX_TERMS`` series terms get ``H`` and its derivatives from
    hyp2f1 (:func:`_pnbd_H_hyp2f1`): far-apart ``alpha`` and ``beta`` at small
    ``u`` (the line search of a fit on a log acquired over years visits them)
    no longer send the whole likelihood to the per-row hyp2f1 fallback.
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
    if not np.all(np.isfinite(z)):
        return None
    # the series for the u whose z needs at most _PNBD_SERIES_MAX_TERMS terms, hyp2f1 for the others
    far = _pnbd_series_far(z)
    N = _pnbd_series_terms(float(z[~far].max()) if np.any(~far) else 0.0)
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
    if np.any(far):     # pairs whose u is too close to z = 1 for the series: the hyp2f1 form
        on = far[p_u]
        Hs[:, on] = _pnbd_H_hyp2f1(e_M[p_x[on]], A[p_x[on]], z[p_u[on]])
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

    The same quantities, computed without per-row gradient matrices.  Everything
    except the mixture of the two likelihood terms depends on a row through its
    ``(x, t_x)`` and ``(x, T)`` pairs only: with ``L1 = -(r+x) ln(alpha+T) - s ln(beta+T)``
    and ``L2 = ln s + ln(J(t_x) - J(T))`` (note 009, eq. 18),

        e^(L2 - L1) = u = E_T (e^delta - 1),   E_T = s J(T) e^-L1,   delta = ln J(t_x) - ln J(T) >= 0,

    with ``E_T`` per ``(x, T)`` pair (a moderate number: ``J(T) ~ e^L1 / (r+s+x)``).  Per
    row this leaves ``u``, ``ln(1 + u)`` (``ll2 = L1 + ln(1 + u)``) and the weight
    ``w1 = 1 / (1 + u)`` of the first term; the sums of ``w w1`` per ``(x, T)`` pair and of
    ``q = w w2 / (1 - J(T)/J(t_x)) = w E_T e^delta w1`` per ``(x, t_x)`` pair (``bincount``)
    meet the per-pair terms and the pair derivatives ``dJ`` afterwards.  Rows whose
    ``delta`` is too large for ``e^delta`` take the log form.  Rows are processed in blocks
    of ``base._CHUNK``.  Returns None when the series is not applicable (then the caller
    falls back).
    """
    r, alpha, s, beta = theta
    out = _pnbd_log_J(theta, idx)
    if out is None:
        return None
    logJ, dJ = out
    w = np.asarray(w, dtype=float)
    p_x, p_u = idx.p_x, idx.p_u
    rx_p = r + idx.xs[p_x]                                      # r + x per pair
    la_p, lb_p = np.log(alpha + idx.us)[p_u], np.log(beta + idx.us)[p_u]
    L1_p = -rx_p * la_p - s * lb_p                              # L1 of each pair taken as (x, T)
    log_s = np.log(s)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logE_p = log_s + logJ - L1_p
        E_p = np.exp(logE_p)
    P = len(logJ)
    A_T = np.zeros(P)                                           # sum of w w1 per (x, T) pair
    B_t = np.zeros(P)                                           # sum of w q per (x, t_x) pair
    S_log = 0.0                                                 # sum of w ln(1 + u)
    n = len(idx.x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        chunk = _base._CHUNK
        for lo in range(0, n, chunk):
            sl = slice(lo, min(lo + chunk, n))
            i_t, i_T = idx.i_tx[sl], idx.i_T[sl]
            wc = w[sl]
            delta = np.maximum(logJ[i_t] - logJ[i_T], 0.0)       # ln J(t_x) - ln J(T) >= 0
            E = E_p[i_T]
            em = np.expm1(delta)
            u = E * em                                          # e^(L2 - L1)
            w1 = 1.0 / (1.0 + u)
            lp = np.log1p(u)
            q = wc * (E * (em + 1.0)) * w1
            big = ~np.isfinite(lp) | ~np.isfinite(q)
            if big.any():                                       # e^delta overflows: the log form
                lu = logE_p[i_T[big]] + delta[big] + np.log1p(-np.exp(-delta[big]))
                sp = np.logaddexp(0.0, lu)
                lp[big] = sp
                w1[big] = np.exp(-sp)
                q[big] = wc[big] * np.exp(logE_p[i_T[big]] + delta[big] - sp)
            ww1 = wc * w1
            S_log += _dot(wc, lp)
            A_T += np.bincount(i_T, weights=ww1, minlength=P)
            B_t += np.bincount(i_t, weights=q, minlength=P)
    B_T = E_p * A_T                                             # sum of w q J(T)/J(t_x) per (x, T) pair
    B_T[A_T == 0] = 0.0
    N = float(w.sum())
    W_T = idx.pair_weight_T(w)                                  # customers per (x, T) pair
    Wx = idx.x_weight(w)                                        # customers per distinct x
    ia_p, ib_p = 1.0 / (alpha + idx.us[p_u]), 1.0 / (beta + idx.us[p_u])
    dlogD = np.einsum("p,pk->k", B_t, dJ) - np.einsum("p,pk->k", B_T, dJ)   # sum w w2 dlogD
    S_w1 = float(A_T.sum())
    ll = (_dot(Wx, gammaln(r + idx.xs) - gammaln(r)) + N * (r * np.log(alpha) + s * np.log(beta))
          + _dot(W_T, L1_p) + S_log)
    g_r = _dot(Wx, psi(r + idx.xs)) - N * psi(r) + N * np.log(alpha) - _dot(A_T, la_p) + dlogD[0]
    g_alpha = N * r / alpha - _dot(A_T, rx_p * ia_p) + dlogD[1]
    g_s = N * np.log(beta) - _dot(A_T, lb_p) + (N - S_w1) / s + dlogD[2]
    g_beta = N * s / beta - s * _dot(A_T, ib_p) + dlogD[3]
    return float(ll), np.array([g_r * r, g_alpha * alpha, g_s * s, g_beta * beta])


class ParetoNBD(FrequencyModel):
    """Pareto/NBD of Schmittlein, Morrison & Colombo (1987); ``r, alpha`` (purchase rate), ``s, beta`` (lifetime rate)."""

    name = "pareto_nbd"
    label = "Pareto/NBD"
    reference = ("Schmittlein, Morrison & Colombo (1987), Counting your customers: who are they and what will "
                 "they do next?, Management Science 33(1), 1-24; Fader & Hardie (2005), note 009")
    param_names = ("r", "alpha", "s", "beta")
    time_scale_params = ("alpha", "beta")
    survival_depends_on_t_x = False
    #: CLVTools' static covariates (Bachmann, Meierer & Naef 2021; Fader & Hardie 2007, note 019):
    #: alpha_i = alpha_0 exp(-gamma_purchase' z_i), beta_i = beta_0 exp(-gamma_attrition' z_i)
    covariate_links = {"purchase": (("alpha", -1),), "attrition": (("beta", -1),)}
    covariate_quantities = {
        "purchase": "mean purchase rate E[lambda] = r / alpha",
        "attrition": "median lifetime beta (2^(1/s) - 1) (the lifetime scales with beta: every quantile, and "
                     "the mean beta / (s - 1) where finite, has the same multiplier)",
    }

    def covariate_quantity(self, theta, process):
        """``r / alpha`` (purchase) or the median lifetime ``beta (2^(1/s) - 1)`` (attrition).

        ``P(tau > t) = (beta / (beta + t))^s`` (SMC 1987): the lifetime is ``beta`` times a
        variable free of ``beta``, so the ratio of the medians is that of every quantile and
        of the mean ``beta / (s - 1)`` (finite for ``s > 1``).
        """
        r, alpha, s, beta = (float(v) for v in theta)
        if process == "purchase":
            return r / alpha
        if process == "attrition":
            return beta * np.expm1(np.log(2.0) / s)
        return super().covariate_quantity(theta, process)

    def log_likelihood(self, theta, x, t_x, T):
        """Individual log-likelihood, Fader & Hardie (2005) note 009, eq. (18)."""
        return _ll_pareto_nbd(theta, x, t_x, T)

    def log_likelihood_grad_rows(self, theta, x, t_x, T, h=1e-5):
        """Per-row log-likelihood and its gradient w.r.t. ``log(r, alpha, s, beta)``; alpha, beta may be per-row arrays.

        Note 009 eq. (18) as ``LL = ln G(r+x) - ln G(r) + r ln alpha + s ln beta + ln(e^{L1} + e^{L2})``,
        ``L1 = -(r+x) ln(alpha+T) - s ln(beta+T)`` and ``L2 = ln s + ln J(r+x, s+1)`` with
        ``J(a, b) = int_{t_x}^T (alpha+tau)^-a (beta+tau)^-b dtau`` (:func:`_pnbd_log_J_rows`, the 2F1 of
        eqs. 19-20).  Differentiating under the integral,

        * ``dLL/dln alpha = r - (r+x) [alpha/(alpha+T) e^{L1} + alpha s J(r+x+1, s+1)] / e^{LL2}``
        * ``dLL/dln beta  = s - [s beta/(beta+T) e^{L1} + (s+1) beta s J(r+x, s+2)] / e^{LL2}``

        (``LL2 = ln(e^{L1} + e^{L2})``), analytic; the derivatives in ``ln r`` and ``ln s`` (shared
        scalars, whose derivatives involve integrals of logarithms) by central differences with step ``h``.
        Used by the covariate likelihood (:mod:`helpers.models.covariates`) when every customer has its
        own ``alpha_i, beta_i``.  Returns ``(ll, g)`` with ``g`` of shape ``(n, 4)``.
        """
        r, alpha, s, beta = theta
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
        a, b = r + x, s + 1.0
        L1 = -a * np.log(alpha + T) - s * np.log(beta + T)
        L2 = np.log(s) + _pnbd_log_J_rows(a, b, alpha, beta, t_x, T)
        ll2 = np.logaddexp(L1, L2)
        ll = gammaln(a) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + ll2
        w1 = np.exp(L1 - ll2)
        with np.errstate(divide="ignore", invalid="ignore"):
            Ja = np.exp(np.log(s) + _pnbd_log_J_rows(a + 1.0, b, alpha, beta, t_x, T) - ll2)
            Jb = np.exp(np.log(s) + _pnbd_log_J_rows(a, b + 1.0, alpha, beta, t_x, T) - ll2)
        g_alpha = r - a * (w1 * alpha / (alpha + T) + alpha * Ja)
        g_beta = s - (w1 * s * beta / (beta + T) + b * beta * Jb)
        e = np.exp(h)
        g_r = (_ll_pareto_nbd((r * e, alpha, s, beta), x, t_x, T)
               - _ll_pareto_nbd((r / e, alpha, s, beta), x, t_x, T)) / (2 * h)
        g_s = (_ll_pareto_nbd((r, alpha, s * e, beta), x, t_x, T)
               - _ll_pareto_nbd((r, alpha, s / e, beta), x, t_x, T)) / (2 * h)
        g = np.column_stack([np.broadcast_to(v, ll.shape) for v in (g_r, g_alpha, g_s, g_beta)])
        return ll, g

    def objective(self, x, t_x, T, w):
        """Log-likelihood and exact gradient from the hypergeometric series (:func:`_pnbd_ll_grad_sum`).

        Returns None only at non-finite parameters (the fitter then uses the hyp2f1 likelihood).
        """
        # (bootstrap rows may repeat (x, t_x, T) with different spend: merge them here)
        (xs, txs, Ts), rinv, _ = unique_rows(x, t_x, T)
        ws = np.bincount(rinv, weights=np.asarray(w, dtype=float), minlength=len(xs))
        idx = _PnbdIndex(xs, txs, Ts)

        def value_grad(theta):
            out = _pnbd_ll_grad_sum(np.asarray(theta, dtype=float), idx, ws)
            if out is None:
                return None
            ll, g_log = out
            return ll, g_log / np.asarray(theta, dtype=float)     # d/d theta from d/d log theta

        return value_grad

    def _p_alive_rows(self, theta, x, t_x, T):
        """P(alive | x, t_x, T), Fader & Hardie note 009 eqs. (36)-(37); SMC (1987) eq. (11)."""
        r, alpha, s, beta = theta
        log_A0 = _pnbd_log_A0(theta, x, t_x, T)
        log_odds = (np.log(s) - np.log(r + s + x) + (r + x) * np.log(alpha + T)
                    + s * np.log(beta + T) + log_A0)
        return 1.0 / (1.0 + np.exp(log_odds))

    def p_alive(self, theta, x, t_x, T):
        """P(alive | x, t_x, T), Fader & Hardie note 009 eqs. (36)-(37); SMC (1987) eq. (11).

        A 2F1 per row: 1-D customer arrays are evaluated once per unique ``(x, t_x, T)``.
        """
        x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, T)))
        if x.ndim == 1 and all(np.ndim(v) == 0 for v in theta):    # (per-row parameters: row by row)
            return unique_apply(lambda a, b, c: self._p_alive_rows(theta, a, b, c), x, t_x, T)
        return self._p_alive_rows(theta, x, t_x, T)

    def _G(self, theta, t, x, T):
        """SMC (1987) eq. (22), note 009 eq. (41) without P(alive): ``(r+x)(beta+T)/(alpha+T) (1 - ((beta+T)/(beta+T+t))^(s-1)) / (s-1)``."""
        r, alpha, s, beta = theta
        if np.isclose(s, 1.0):
            rate_term = np.log((beta + T + t) / (beta + T))
        else:
            rate_term = -np.expm1((s - 1.0) * np.log((beta + T) / (beta + T + t))) / (s - 1.0)
        return (r + x) * (beta + T) / (alpha + T) * rate_term

    def expected_purchases(self, theta, t, x, t_x, T):
        """E[X(t) | x, t_x, T] = G(x, T, t) P(alive | x, t_x, T), SMC (1987) eq. (22); note 009 eq. (41)."""
        return self._G(theta, t, x, T) * self._p_alive_rows(theta, x, t_x, T)

    def expected_purchases_parts(self, theta, t_grid, x, t_x, T):
        """The factors of :meth:`expected_purchases`: ``G`` per distinct ``(x, T)``, ``h`` = P(alive) per customer."""
        return self._parts_from_G(theta, t_grid, x, t_x, T, self.p_alive(theta, x, t_x, T))

    def expected_purchases_new(self, theta, t):
        """Unconditional E[X(t)], SMC (1987) eq. (17); note 009 eq. (27)."""
        r, alpha, s, beta = theta
        t = np.asarray(t, dtype=float)
        if np.isclose(s, 1.0):
            return r * beta / alpha * np.log1p(t / beta)
        return r * beta / (alpha * (s - 1.0)) * (1.0 - (beta / (beta + t)) ** (s - 1.0))

    def count_pmf(self, theta, t, n):
        """P(X(t) = n) = NBD(n; t) P(tau > t) + int_0^t NBD(n; u) f_tau(u) du (SMC 1987, section 3).

        ``tau ~ Pareto II(s, beta)`` (gamma-mixed exponential lifetime); the
        integral by 64-point Gauss-Legendre quadrature after ``u = t v^2``,
        which resolves the mass near 0.
        """
        r, alpha, s, beta = theta
        t = np.asarray(t, dtype=float)
        n = np.asarray(n, dtype=float)
        nodes, wts = np.polynomial.legendre.leggauss(64)
        t_b, n_b = np.broadcast_arrays(t, n)
        v = 0.5 * (nodes + 1.0)
        wv = 0.5 * wts
        u = t_b[..., None] * v ** 2
        du = t_b[..., None] * 2.0 * v * wv
        f_tau = s / beta * (beta / (beta + u)) ** (s + 1.0)
        integral = np.sum(np.exp(_log_nbd_pmf(n_b[..., None], r, alpha, u)) * f_tau * du, axis=-1)
        return np.exp(_log_nbd_pmf(n_b, r, alpha, t_b)) * (beta / (beta + t_b)) ** s + integral

    def survival_given_alive(self, theta, t, x, t_x, T):
        """P(alive at T + t | alive at T) = ((beta + T) / (beta + T + t))^s.

        The lifetime is exponential with rate ``mu``; given alive at ``T`` the
        posterior of ``mu`` is ``Gamma(s, beta + T)`` (the purchases carry no
        information on ``mu`` beyond survival to ``T``, SMC 1987), so
        ``S(t) = E[e^{-mu t}] = ((beta + T) / (beta + T + t))^s``; independent of ``x`` and ``t_x``.
        """
        r, alpha, s, beta = theta
        t, T = np.asarray(t, dtype=float), np.asarray(T, dtype=float)
        return np.broadcast_to(((beta + T) / (beta + T + t)) ** s, np.broadcast_shapes(t.shape, T.shape,
                                                                                        np.shape(x)))

    # -- generative process -------------------------------------------------

    def draw_latent(self, theta, n_customers, rng):
        """``lambda ~ Gamma(r, rate alpha)``, ``mu ~ Gamma(s, rate beta)`` and the lifetime ``tau ~ Exp(mu)`` (SMC 1987)."""
        r, alpha, s, beta = theta
        n = int(n_customers)
        lam = rng.gamma(r, 1.0 / alpha, size=n)
        mu = rng.gamma(s, 1.0 / beta, size=n)
        with np.errstate(divide="ignore"):
            tau = rng.exponential(1.0, size=n) / mu
        return {"lam": lam, "mu": mu, "tau": tau}

    def draw_purchases(self, theta, latent, horizon, rng):
        """Poisson(lambda) purchases while alive: ``N ~ Poisson(lambda min(tau, T))`` arrivals on ``(0, min(tau, T))``."""
        active = np.minimum(latent["tau"], np.asarray(horizon, dtype=float))
        N = rng.poisson(latent["lam"] * active).astype(np.int64)
        return N, _first_arrivals(rng, N, N, active)

    def simulate_purchase_times(self, theta, n_customers, horizon, rng):
        """Repeat-purchase times of ``n_customers`` new customers in (0, horizon] (see :meth:`draw_latent`)."""
        latent = self.draw_latent(theta, n_customers, rng)
        T = np.broadcast_to(np.asarray(horizon, dtype=float), (int(n_customers),))
        return _split(*self.draw_purchases(theta, latent, T, rng))

    # -- the retention lever (helpers.economics) -----------------------------

    def lever_expectations(self, theta, t, s, c, x=None, t_x=None, T=None, n_nodes=64, period=1.0):
        """E[X] and P(alive) ``t`` ahead when a programme lowers each customer's drop-out rate ``mu``.

        The Pareto/NBD drop-out is a rate (exponential lifetime, ``mu ~
        Gamma(s, beta)``), not a chance per purchase, so the lever ``(s, c)``
        of :func:`helpers.economics.dropout_map` acts on it as follows:

        * ``c == 0`` (drop-out form): the rate is scaled, ``mu' = s_l mu``
          (``s_l = 1 - delta``): a relative cut of the hazard, the same at
          every moment.  For ``mu ~ Gamma(S, B)`` this is ``mu' ~ Gamma(S, B /
          s_l)``.
        * ``s + c == 1`` (retention form, ``s_l = 1 + delta``): the
          probability of surviving one ``period`` (model time units; economics
          passes one month), ``exp(-mu period)``, is multiplied by ``s_l`` and
          capped at 1: ``mu' = max(0, mu - h)``, ``h = ln(s_l) / period``, an
          absolute cut of the hazard (customers with ``mu <= h`` stop dropping
          out).  It depends on the period; a rate has no retention probability
          without one.

        Given ``(lambda, mu')`` and alive, ``P(alive at t) = exp(-mu' t)`` and
        ``E[X(t)] = lambda (1 - exp(-mu' t)) / mu'`` (SMC 1987, section 2);
        ``lambda`` and ``mu`` are independent (prior and posterior given alive),
        so with ``lambda ~ Gamma(R, A)``, ``mu ~ Gamma(S, B)``::

            S(t) = E[exp(-mu' t)],   E[X(t)] = R / A * int_0^t S(u) du

        Drop-out form: ``S(t) = (B' / (B' + t))^S`` and ``int_0^t S = B' / (S - 1)
        (1 - (B' / (B' + t))^(S-1))`` with ``B' = B / s_l`` (SMC 1987 eq. 17
        with ``beta`` replaced; ``R t / A`` for ``s_l = 0``).  Retention form:
        ``S(t) = P(mu <= h) + exp(h t) (B / (B + t))^S Q(S, (B + t) h)``
        (``Q`` the regularised upper incomplete gamma function), integrated over
        ``u`` by Gauss-Legendre quadrature (``n_nodes`` per step of ``t``).  Both
        depend on a customer through ``B`` only, so they are evaluated once per
        distinct ``B`` (age); with many distinct ages (a simulated base with
        continuous ``T``) by Chebyshev interpolation in ``B``, checked against the
        direct evaluation (:func:`_rate_lever_survival_interpolated`).

        New customer (``x`` None): ``R, A, B = r, alpha, beta``, alive at time 0;
        returns ``(len(t),)`` arrays.  Existing customers: the posterior given
        alive at ``T`` is ``lambda ~ Gamma(r + x, alpha + T)`` and ``mu ~
        Gamma(s, beta + T)`` (so with the drop-out form the survival becomes
        ``((beta + T) / (beta + T + s_l t))^s``), times P(alive); ``(n,
        len(t))`` arrays.  With ``s, c = 1, 0``: SMC (1987) eq. (17) and (22),
        and :meth:`survival_given_alive`.
        """
        r, alpha, s_, beta = theta
        if x is None:
            EX, S = _rate_lever([r], [alpha], [beta], s_, t, s, c, period, n_nodes)
            return EX[0], S[0]
        x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
        pa = self.p_alive(theta, x, t_x, T)
        (xu, Tu), inv, _ = unique_rows(x, T)
        EX, S = _rate_lever(r + xu, alpha + Tu, beta + Tu, s_, t, s, c, period, n_nodes)
        return pa[:, None] * EX[inv], pa[:, None] * S[inv]

    def lever_totals(self, theta, t, s, c, x, t_x, T, spend_weight, count_weight, n_nodes=64, period=1.0,
                     p_alive=None):
        """Weighted totals of :meth:`lever_expectations` over a base: ``(sum_i w_i E_i[X(t)], sum_i n_i P_i(alive at t))``.

        ``spend_weight`` weights the purchases, ``count_weight`` (customers per
        row) the alive counts; the lever is evaluated once per distinct ``(x, T)``.
        ``p_alive``: the rows' P(alive), when the caller has it already.
        """
        r, alpha, s_, beta = theta
        x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
        pa = self.p_alive(theta, x, t_x, T) if p_alive is None else np.asarray(p_alive, dtype=float)
        (xu, Tu), inv, _ = unique_rows(x, T)
        EX, S = _rate_lever(r + xu, alpha + Tu, beta + Tu, s_, t, s, c, period, n_nodes)
        ws = np.bincount(inv, weights=pa * spend_weight, minlength=len(xu))
        wc = np.bincount(inv, weights=pa * count_weight, minlength=len(xu))
        return ws @ EX, wc @ S

    def lever_continuation(self, theta, latent, t, s, c, rng, x=None, T=None, period=1.0):
        """Simulated purchases in the next ``t`` of simulated customers, without and with the lever.

        ``latent`` holds the traits of :meth:`draw_latent` (``lam``, ``mu``,
        ``tau``).  Existing customers (their ages ``T``; ``x`` is not needed):
        alive when ``tau > T``, with remaining lifetime ``tau - T``; new
        customers (``x`` None): remaining lifetime ``tau`` from time 0.  The
        remaining lifetime times ``mu`` is Exp(1) (memoryless), and the lever
        replaces ``mu`` by ``mu'`` (see :meth:`lever_expectations`), so on common
        random numbers the lifetime under the lever is ``(tau - T) mu / mu'``
        (infinite for ``mu' = 0``).  Purchases are one Poisson(``lambda``)
        process: ``N ~ Poisson(lambda L)`` on the longer active span ``L`` of the
        two, and the count on the shorter span ``l`` is ``Binomial(N, l / L)``.
        Dead customers make none.  Returns ``(base, lever)``.
        """
        lam, mu, tau = (np.asarray(latent[k], dtype=float) for k in ("lam", "mu", "tau"))
        start = np.zeros(len(lam)) if x is None else np.asarray(T, dtype=float)
        alive = tau > start
        rem = np.where(alive, tau - start, 0.0)
        mu_l = _lever_rate(mu, s, c, period)
        with np.errstate(divide="ignore", invalid="ignore"):
            rem_l = np.where(mu_l > 0, rem * mu / np.where(mu_l > 0, mu_l, 1.0), np.inf)
        rem_l = np.where(alive, rem_l, 0.0)
        span_b, span_l = np.minimum(rem, t), np.minimum(rem_l, t)
        long, short = np.maximum(span_b, span_l), np.minimum(span_b, span_l)
        N = rng.poisson(lam * long)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(long > 0, short / np.where(long > 0, long, 1.0), 0.0)
        n_short = rng.binomial(N, np.clip(frac, 0.0, 1.0))
        base = np.where(span_b >= span_l, N, n_short).astype(float)
        lever = np.where(span_l >= span_b, N, n_short).astype(float)
        return base, lever



# ---------------------------------------------------------------------------
# the retention lever on a drop-out rate
# ---------------------------------------------------------------------------

def _lever_form(s, c):
    """``("scale", s)`` for the drop-out form (``c == 0``), ``("shift", s)`` for the retention form (``s + c == 1``)."""
    s, c = float(s), float(c)
    if c == 0.0:
        if s < 0:
            raise ValueError(f"the drop-out rate cannot be scaled by a negative factor ({s})")
        return "scale", s
    if abs(s + c - 1.0) <= 1e-12:
        if s <= 0:
            raise ValueError(f"a retention factor must be > 0, got {s}")
        return "shift", s
    raise ValueError(f"a drop-out rate lever is either a scale (c = 0) or a retention factor (s + c = 1); "
                     f"got s={s}, c={c}")


def _lever_rate(mu, s, c, period):
    """The drop-out rate under the lever (see :meth:`ParetoNBD.lever_expectations`)."""
    form, f = _lever_form(s, c)
    if form == "scale":
        return f * np.asarray(mu, dtype=float)
    return np.maximum(np.asarray(mu, dtype=float) - np.log(f) / float(period), 0.0)


def _rate_lever(R, A, B, S, t, s, c, period, n_nodes=64):
    """E[X(t)] and P(alive at t) of customers alive at time 0 with ``lambda ~ Gamma(R, A)``, ``mu ~ Gamma(S, B)``.

    ``(n_rows, n_t)`` arrays; see :meth:`ParetoNBD.lever_expectations` for the formulas.
    The survival and its integral depend on a row through ``B`` only (``E[X(t)]``
    is ``R / A`` times the integral), so they are evaluated once per distinct
    ``B`` (an existing customer's ``beta + T``: one per distinct age, not per
    distinct ``(x, T)``) and broadcast.
    """
    R, A, B = (np.atleast_1d(np.asarray(v, dtype=float))[:, None] for v in (R, A, B))
    R, A, B = np.broadcast_arrays(R, A, B)
    t = np.atleast_1d(np.asarray(t, dtype=float))
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    form, f = _lever_form(s, c)
    rate = R / A
    if form == "scale" and f == 0.0:                             # nobody drops out
        return rate * t[None, :], np.ones((len(B), len(t)))
    Bu, inv = np.unique(B[:, 0], return_inverse=True)
    if form == "shift" and len(Bu) > max(_INTERP_MIN_B, 2 * _CHEB_POINTS * _n_pieces(Bu[0], Bu[-1])):
        life, surv = _rate_lever_survival_interpolated(Bu, S, t, f, period, n_nodes)
    else:
        life, surv = _rate_lever_survival(Bu[:, None], S, t, form, f, period, n_nodes)
    return rate * life[inv], surv[inv]


#: Distinct ``B`` above which the retention form is interpolated in ``B`` (:func:`_rate_lever_survival_interpolated`).
_INTERP_MIN_B = 256
#: Chebyshev points per piece, and the half-width of a piece relative to its centre.
_CHEB_POINTS, _CHEB_HALF = 24, 0.25
#: Largest relative error at the check points for which the interpolant is used.
_INTERP_RTOL = 1e-12


def _n_pieces(lo_b, hi_b):
    """Pieces of :func:`_rate_lever_survival_interpolated` on ``[lo_b, hi_b]`` (``0 < lo_b <= hi_b``)."""
    ratio = (1.0 + _CHEB_HALF) / (1.0 - _CHEB_HALF)
    return max(1, int(np.ceil(np.log(float(hi_b) / float(lo_b)) / np.log(ratio) - 1e-12)))


def _rate_lever_survival_interpolated(Bu, S, t, f, period, n_nodes):
    """:func:`_rate_lever_survival` (retention form) at many distinct sorted ``Bu`` by interpolation in ``B``.

    With the ages continuous (e.g. the simulated customers of
    :func:`helpers.economics.lever_simulation_check`) nearly every row has its own
    ``B`` and the quadrature's ``gammaincc`` calls dominate.  Both outputs are
    analytic in ``B`` for ``B > 0`` (their singularities are at ``B = 0`` and
    ``B = -u <= 0``), so on a piece ``[c - w, c + w]`` with ``w / c <= 1/4``
    Chebyshev interpolation on ``_CHEB_POINTS`` points converges like
    ``rho^-n`` with ``rho = c / w + sqrt((c / w)^2 - 1) >= 7.9`` (Trefethen,
    *Approximation Theory and Approximation Practice*, thm 8.2): below double
    rounding.  The pieces cover ``[min B, max B]`` geometrically.  The
    interpolant is checked against the direct evaluation at 16 of the ``Bu``;
    if any relative error exceeds ``_INTERP_RTOL`` every ``B`` is evaluated directly.
    """
    lo_b, hi_b = float(Bu[0]), float(Bu[-1])
    n_pieces = _n_pieces(lo_b, hi_b)
    edges = lo_b * np.exp(np.linspace(0.0, np.log(hi_b / lo_b), n_pieces + 1))
    edges[-1] = hi_b
    k = np.arange(_CHEB_POINTS)
    cheb = np.cos(np.pi * (k + 0.5) / _CHEB_POINTS)               # first-kind points in (-1, 1)
    centre, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * (edges[1:] - edges[:-1])
    nodes_b = (centre[:, None] + half[:, None] * cheb[None, :]).ravel()
    life_n, surv_n = _rate_lever_survival(nodes_b[:, None], S, t, "shift", f, period, n_nodes)
    # Chebyshev coefficients per piece: c_j = (2 / n) sum_k f(x_k) T_j(x_k), c_0 halved
    Tk = np.cos(np.outer(k, np.pi * (k + 0.5) / _CHEB_POINTS))    # T_j(x_k), (j, k)
    Tk_w = (2.0 / _CHEB_POINTS) * Tk
    Tk_w[0] *= 0.5

    def coefficients(v):
        return np.einsum("jk,pkt->pjt", Tk_w, v.reshape(n_pieces, _CHEB_POINTS, -1))

    coef_life, coef_surv = coefficients(life_n), coefficients(surv_n)
    piece = np.clip(np.searchsorted(edges, Bu, side="right") - 1, 0, n_pieces - 1)

    def evaluate(b, p):
        out_life, out_surv = np.empty((len(b), len(t))), np.empty((len(b), len(t)))
        for q in np.unique(p):
            rows = np.flatnonzero(p == q)
            x = np.clip((b[rows] - centre[q]) / half[q], -1.0, 1.0)
            T = np.empty((len(rows), _CHEB_POINTS))               # T_j(x) by the recurrence
            T[:, 0] = 1.0
            T[:, 1] = x
            for j in range(2, _CHEB_POINTS):
                T[:, j] = 2.0 * x * T[:, j - 1] - T[:, j - 2]
            out_life[rows], out_surv[rows] = T @ coef_life[q], T @ coef_surv[q]
        return out_life, out_surv

    check = np.unique(np.linspace(0, len(Bu) - 1, 16).round().astype(int))
    life_c, surv_c = _rate_lever_survival(Bu[check, None], S, t, "shift", f, period, n_nodes)
    life_i, surv_i = evaluate(Bu[check], piece[check])
    err = max(float(np.max(np.abs(life_i - life_c) / np.maximum(np.abs(life_c), 1e-300))),
              float(np.max(np.abs(surv_i - surv_c) / np.maximum(np.abs(surv_c), 1e-300))))
    if not err <= _INTERP_RTOL:
        return _rate_lever_survival(Bu[:, None], S, t, "shift", f, period, n_nodes)
    return evaluate(Bu, piece)


def _rate_lever_survival(B, S, t, form, f, period, n_nodes):
    """``(int_0^t S(u) du, S(t))`` for ``mu ~ Gamma(S, B)`` under the lever, ``(len(B), len(t))`` (see :func:`_rate_lever`)."""
    if form == "scale":
        Bp = B / f
        surv = (Bp / (Bp + t[None, :])) ** S
        if np.isclose(S, 1.0):
            life = Bp * np.log1p(t[None, :] / Bp)
        else:
            life = -Bp / (S - 1.0) * np.expm1((S - 1.0) * np.log(Bp / (Bp + t[None, :])))
        return life, surv
    h = np.log(f) / float(period)

    def survival(u):
        """S(u) = P(mu <= h) + exp(h u) (B / (B + u))^S Q(S, (B + u) h), u broadcasting against B."""
        z = np.maximum((B + u) * h, 0.0)
        with np.errstate(divide="ignore"):
            tail = np.exp(h * u + S * np.log(B / (B + u)) + np.log(gammaincc(S, z)))
        return (gammainc(S, B * h) if h > 0 else 0.0) + tail

    # int_0^t S(u) du: Gauss-Legendre on each step between the sorted distinct t
    order = np.argsort(t)
    ts = t[order]
    edges = np.concatenate([[0.0], ts])
    nodes, wts = np.polynomial.legendre.leggauss(int(n_nodes))
    lo, hi = edges[:-1], edges[1:]
    u = (lo[:, None] + (hi - lo)[:, None] * 0.5 * (nodes[None, :] + 1.0))       # (n_t, n_nodes)
    vals = survival(u.reshape(1, -1)).reshape(len(B), len(ts), len(nodes))
    steps = (vals @ (0.5 * wts)) * (hi - lo)[None, :]
    life = np.empty((len(B), len(t)))
    life[:, order] = np.cumsum(steps, axis=1)
    return life, survival(t[None, :])
