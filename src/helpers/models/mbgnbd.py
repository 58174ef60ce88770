"""MBG/NBD: Batislam, Denizel & Filiztekin (2007), "Empirical validation and comparison
of models for customer base analysis", *International Journal of Research in
Marketing* 24(3), 201-209.

As BG/NBD (:mod:`.bgnbd`), but a customer may also drop out at time zero, right
after the first purchase: ``J``, the repeat purchases before drop-out, is
geometric on 0, 1, ...  Conditional expectation as in Wagner & Hoppe (2008).
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, gammaln, hyp2f1

from .base import _log_hyp2f1_safe, _per_x, _x_groups
from .bgnbd import _BGFamily, _nbd_and_cdf_before

__all__ = ["MBGNBD"]


def _ll_mbgnbd(theta, x, t_x, T):
    """MBG/NBD individual log-likelihood, Batislam et al. (2007), eq. (A.4)."""
    r, alpha, a, b = theta
    # once per distinct x when the beta-function parameters are scalars (not per-customer a_i, b_i)
    grp = _x_groups(x) if np.ndim(r) == 0 and np.ndim(a) == 0 and np.ndim(b) == 0 else None
    common = _per_x(lambda v: gammaln(r + v) - gammaln(r) - betaln(a, b), x, grp) + r * np.log(alpha)
    term1 = _per_x(lambda v: betaln(a, b + v + 1.0), x, grp) - (r + x) * np.log(alpha + T)
    term2 = _per_x(lambda v: betaln(a + 1.0, b + v), x, grp) - (r + x) * np.log(alpha + t_x)
    return common + np.logaddexp(term1, term2)


class MBGNBD(_BGFamily):
    """MBG/NBD of Batislam et al. (2007); parameters ``r, alpha, a, b`` as BG/NBD."""

    name = "mbgnbd"
    label = "MBG/NBD"
    reference = ("Batislam, Denizel & Filiztekin (2007), Empirical validation and comparison of models for "
                 "customer base analysis, International Journal of Research in Marketing 24(3), 201-209")
    _k = 1

    def log_likelihood(self, theta, x, t_x, T):
        """Individual log-likelihood, Batislam et al. (2007) eq. (A.4)."""
        return _ll_mbgnbd(theta, x, t_x, T)

    def p_alive(self, theta, x, t_x, T):
        """P(alive | x, t_x, T), Batislam et al. (2007), appendix eq. (5)."""
        r, alpha, a, b = theta
        log_odds = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return 1.0 / (1.0 + np.exp(log_odds))

    def _G(self, theta, t, x, T):
        """The part of Batislam et al. (2007) appendix eq. (6) (Wagner & Hoppe 2008) in ``(x, T, t)``."""
        r, alpha, a, b = theta
        log_h = _log_hyp2f1_safe(r + x, b + x + 1.0, a + b + x, t / (alpha + T + t))
        return (a + b + x) / (a - 1.0) * -np.expm1(log_h + (r + x) * np.log((alpha + T) / (alpha + T + t)))

    def _h(self, theta, x, t_x, T):
        """The per-customer part of eq. (6): ``1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))`` = P(alive)."""
        r, alpha, a, b = theta
        return 1.0 / (1.0 + (a / (b + x)) * np.exp((r + x) * np.log((alpha + T) / (alpha + t_x))))

    def expected_purchases_new(self, theta, t):
        """Unconditional E[X(t)] of the MBG/NBD (Batislam et al. 2007): ``b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))]``."""
        r, alpha, a, b = theta
        t = np.asarray(t, dtype=float)
        return b / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r * hyp2f1(r, b + 1.0, a + b, t / (alpha + t)))

    def count_pmf(self, theta, t, n):
        """P(X(t) = n): the MBG/NBD analogue of FHL (2005a) eq. (8), drop-out possible at time 0.

        ``P(X(t)=n) = B(a, b+n+1)/B(a, b) NBD(n; t) + B(a+1, b+n)/B(a, b) [1 - sum_{j<n} NBD(j; t)]``.
        """
        r, alpha, a, b = theta
        nbd_n, cum_before, n = _nbd_and_cdf_before(r, alpha, t, n)
        first = np.exp(betaln(a, b + n + 1.0) - betaln(a, b)) * nbd_n
        second = np.exp(betaln(a + 1.0, b + n) - betaln(a, b)) * (1.0 - cum_before)
        return first + second
