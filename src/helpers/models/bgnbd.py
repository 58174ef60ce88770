"""BG/NBD: Fader, Hardie & Lee (2005a), "Counting your customers the easy way: an
alternative to the Pareto/NBD model", *Marketing Science* 24(2), 275-284.

While alive, a customer buys at Poisson rate ``lambda ~ Gamma(r, alpha)``; after
each *repeat* purchase they drop out with probability ``p ~ Beta(a, b)``.  The
module also holds what the BG family (BG/NBD and MBG/NBD, :mod:`.mbgnbd`)
shares: the rearranged weighted likelihood with its exact gradient
(:class:`_BGFamilyObjective`), the factorised conditional expectation, the
generative process, and the exact retention lever of :mod:`helpers.economics`
(:meth:`_BGFamily.lever_expectations`, for both models).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.linalg import eigh_tridiagonal
from scipy.special import betaln, gammaln, hyp2f1, psi

from . import base as _base
from .base import (
    FrequencyModel,
    _dot,
    _first_arrivals,
    _log_hyp2f1_safe,
    _log_nbd_pmf,
    _per_x,
    _split,
    _x_groups,
    unique_rows,
)

__all__ = ["BGNBD"]


def _ll_bgnbd(theta, x, t_x, T):
    """BG/NBD individual log-likelihood, Fader, Hardie & Lee (2005a), eq. (6)."""
    r, alpha, a, b = theta
    # once per distinct x when the beta-function parameters are scalars (not per-customer a_i, b_i)
    grp = _x_groups(x) if np.ndim(r) == 0 and np.ndim(a) == 0 and np.ndim(b) == 0 else None
    common = _per_x(lambda v: gammaln(r + v) - gammaln(r) - betaln(a, b), x, grp) + r * np.log(alpha)
    term1 = _per_x(lambda v: betaln(a, b + v), x, grp) - (r + x) * np.log(alpha + T)
    pos = x > 0
    # keep b + x - 1 > 0 where the term is unused
    b2 = _per_x(lambda v: betaln(a + 1.0, b + np.where(v > 0, v, 1.0) - 1.0), x, grp)
    term2 = np.where(pos, b2 - (r + x) * np.log(alpha + t_x), -np.inf)
    return common + np.logaddexp(term1, term2)


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
        chunk = _base._CHUNK
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
        for lo in range(0, m, chunk):
            hi = min(lo + chunk, m)
            n_c = hi - lo
            rx, dl, D, u, tmp = (buf[:n_c] for buf in self._buffers(min(m, chunk)))
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


class _BGFamily(FrequencyModel):
    """What BG/NBD and MBG/NBD share: parameters, objective, factorised expectation, simulation, survival.

    ``_k`` is 0 for BG/NBD (no drop-out chance at the first purchase) and 1 for
    MBG/NBD (a drop-out chance right after the first purchase too).
    Subclasses give the closed forms ``_G`` and ``_h`` of the conditional
    expectation ``E[X(t) | x, t_x, T] = G(x, T, t) h(x, t_x, T)``.
    """

    param_names = ("r", "alpha", "a", "b")
    time_scale_params = ("alpha",)
    survival_depends_on_t_x = False
    _k = 0
    #: CLVTools' static covariates (Fader & Hardie 2007, note 019; Bachmann, Meierer & Naef 2021):
    #: alpha_i = alpha_0 exp(-gamma_purchase' z_i); a_i = a_0 exp(gamma_attrition' z_i) and
    #: b_i = b_0 exp(gamma_attrition' z_i) (one coefficient scales a and b together)
    covariate_links = {"purchase": (("alpha", -1),), "attrition": (("a", 1), ("b", 1))}
    covariate_quantities = {
        "purchase": "mean purchase rate E[lambda] = r / alpha",
        "attrition": "median number of drop-out chances survived (the repeat purchases before drop-out; MBG/NBD: "
                     "counting the chance at the first purchase), m with B(a, b + m) / B(a, b) = 1/2; a and b "
                     "scale together, so the mean drop-out probability a / (a + b) does not change",
    }

    def covariate_quantity(self, theta, process):
        """``r / alpha`` (purchase), or the median number of drop-out chances survived (attrition).

        After each drop-out chance (each repeat purchase, FHL 2005a; and the first
        purchase, MBG/NBD) a customer stays with probability ``1 - p``, so the
        probability of surviving ``m`` chances is ``E[(1 - p)^m] = B(a, b + m) / B(a, b)``
        for ``p ~ Beta(a, b)``, decreasing from 1 (``m = 0``) to 0; its median ``m_50``
        (real ``m``, by root finding) is finite for all ``a, b`` (the mean
        ``E[1/p] = (a + b - 1) / (a - 1)`` is infinite for ``a <= 1``).
        """
        r, alpha, a, b = (float(v) for v in theta)
        if process == "purchase":
            return r / alpha
        if process == "attrition":
            from scipy.optimize import brentq  # noqa: PLC0415

            def f(log_m):
                return betaln(a, b + np.exp(log_m)) - betaln(a, b) - np.log(0.5)

            lo, hi = -50.0, 1.0
            while f(hi) > 0 and hi < 700:
                hi += 5.0
            return float(np.exp(brentq(f, lo, hi, xtol=1e-14, rtol=1e-14))) if f(lo) > 0 else 0.0
        return super().covariate_quantity(theta, process)

    def objective(self, x, t_x, T, w):
        """The rearranged likelihood and exact gradient, :class:`_BGFamilyObjective`."""
        return _BGFamilyObjective(x, t_x, T, w, modified=bool(self._k))

    def log_likelihood_grad_rows(self, theta, x, t_x, T):
        """Per-row log-likelihood and its gradient w.r.t. ``log(r, alpha, a, b)``; parameters may be per-row arrays.

        The rearrangement of :class:`_BGFamilyObjective` (FHL 2005a eq. 6; Batislam et al. 2007 eq. A.4),
        row by row: ``LL = A(x) + r ln alpha - (r+x) ln(alpha+T) + delta ln(1 + e^D)`` with
        ``A(x) = ln G(r+x) - ln G(r) + ln B(a, b+x+k) - ln B(a, b)`` and
        ``D = ln a - ln(b+x-1+k) + (r+x) [ln(alpha+T) - ln(alpha+t_x)]``; with ``sigma = 1 / (1 + e^-D)``:

        * ``dLL/dr = psi(r+x) - psi(r) + ln alpha - ln(alpha+T) + delta sigma [ln(alpha+T) - ln(alpha+t_x)]``
        * ``dLL/dalpha = r/alpha - (r+x)/(alpha+T) + delta sigma (r+x) [1/(alpha+T) - 1/(alpha+t_x)]``
        * ``dLL/da = psi(a+b) - psi(a+b+x+k) + delta sigma / a``
        * ``dLL/db = psi(b+x+k) - psi(a+b+x+k) - psi(b) + psi(a+b) - delta sigma / (b+x-1+k)``

        Used by the covariate likelihood (:mod:`helpers.models.covariates`) when every customer has
        its own ``alpha_i, a_i, b_i``.  Returns ``(ll, g)`` with ``g`` of shape ``(n, 4)``.
        """
        r, alpha, a, b = (np.asarray(v, dtype=float) for v in theta)
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        k = float(self._k)
        delta = np.ones_like(x) if self._k else (x > 0).astype(float)
        xp = x if self._k else np.where(x > 0, x, 1.0)
        lT, lt = np.log(alpha + T), np.log(alpha + t_x)
        rx = r + x
        D = np.log(a) - np.log(b + xp - 1.0 + k) + rx * (lT - lt)
        sp = np.logaddexp(0.0, D)                                 # ln(1 + e^D)
        sig = delta * np.exp(D - sp)
        ll = (gammaln(rx) - gammaln(r) + betaln(a, b + x + k) - betaln(a, b) + r * np.log(alpha) - rx * lT
              + delta * sp)
        psi_abx = psi(a + b + x + k)
        g_r = psi(rx) - psi(r) + np.log(alpha) - lT + sig * (lT - lt)
        g_alpha = r / alpha - rx / (alpha + T) + sig * rx * (1.0 / (alpha + T) - 1.0 / (alpha + t_x))
        g_a = psi(a + b) - psi_abx + sig / a
        g_b = psi(b + x + k) - psi_abx - psi(b) + psi(a + b) - sig / (b + xp - 1.0 + k)
        g = np.column_stack([np.broadcast_to(v, ll.shape) for v in (g_r * r, g_alpha * alpha, g_a * a, g_b * b)])
        return ll, g

    def _G(self, theta, t, x, T):  # pragma: no cover - abstract in the family
        raise NotImplementedError

    def _h(self, theta, x, t_x, T):  # pragma: no cover
        raise NotImplementedError

    def expected_purchases(self, theta, t, x, t_x, T):
        """E[X(t) | x, t_x, T] = G(x, T, t) h(x, t_x, T) (see ``_G`` and ``_h`` for the equations)."""
        return self._G(theta, t, x, T) * self._h(theta, x, t_x, T)

    def expected_purchases_parts(self, theta, t_grid, x, t_x, T):
        """The factors of :meth:`expected_purchases`: ``G`` once per distinct ``(x, T)``, ``h`` per customer.

        A month grid for a million customers costs a few thousand 2F1
        evaluations per month instead of a million.
        """
        return self._parts_from_G(theta, t_grid, x, t_x, T, self._h(theta, x, t_x, T))

    def survival_given_alive(self, theta, t, x, t_x, T):
        """P(still alive at T + t | alive at T, x, T); does not depend on ``t_x``.

        An alive customer with rate ``lambda`` and drop-out probability ``p``
        drops out after each of the ``N(t) ~ Poisson(lambda t)`` purchases with
        probability ``p``, so survival over ``t`` is ``E[(1-p)^N(t)] = exp(-lambda p t)``.
        Given the data and being alive at ``T`` the likelihood is
        ``lambda^x e^{-lambda T} (1-p)^(x+k)`` (``k`` = 1 for MBG/NBD, whose
        first purchase is also followed by a drop-out chance), so
        ``lambda ~ Gamma(r + x, alpha + T)`` and ``p ~ Beta(a, b + x + k)``,
        independent (FHL 2005a, section 4; Batislam et al. 2007).  Integrating
        ``lambda`` gives ``(1 + p t / (alpha + T))^-(r+x)`` and the Beta integral
        a Gauss hypergeometric function::

            S(t) = 2F1(r+x, a; a+b'; -z),  z = t / (alpha + T),  b' = b + x + k
                 = (1 - w)^a 2F1(a, a+b'-(r+x); a+b'; w),  w = t / (alpha + T + t)   (Pfaff)

        The Pfaff form keeps the series parameters small.
        """
        r, alpha, a, b = theta
        t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
        b_post = b + x + float(self._k)                          # p | alive ~ Beta(a, b_post)
        w = t / (alpha + T + t)
        log_s = a * np.log1p(-w) + _log_hyp2f1_safe(a, a + b_post - (r + x), a + b_post, w)
        return np.where(t > 0, np.exp(log_s), 1.0)

    # -- generative process -------------------------------------------------

    def draw_latent(self, theta, n_customers, rng):
        """``lambda ~ Gamma(r, rate alpha)``, ``p ~ Beta(a, b)`` and ``J``, the repeat purchases before drop-out.

        ``J ~ Geometric(p)`` on 1, 2, ... for BG/NBD (the first drop-out chance
        follows the first *repeat* purchase, as the likelihood eq. 3 of FHL 2005a
        implies: a customer with x = 0 is alive until then); ``J - 1`` on 0, 1, ...
        for MBG/NBD (Batislam et al. 2007: a chance right after the first purchase).
        """
        r, alpha, a, b = theta
        n = int(n_customers)
        lam = rng.gamma(r, 1.0 / alpha, size=n)                  # per time unit
        p_drop = np.clip(rng.beta(a, b, size=n), 1e-300, 1.0)
        J = rng.geometric(p_drop) - self._k
        return {"lam": lam, "p_drop": p_drop, "J": J}

    def draw_purchases(self, theta, latent, horizon, rng):
        """``x = min(J, N)`` with ``N ~ Poisson(lambda T)`` arrivals in ``(0, T]``, and their times.

        ``J`` is independent of the arrivals, so the purchases are the first
        ``x`` of the ``N`` Poisson arrival times (:func:`~helpers.models.base._first_arrivals`).
        """
        T = np.asarray(horizon, dtype=float)
        N = rng.poisson(latent["lam"] * T)
        x = np.minimum(latent["J"], N).astype(np.int64)
        return x, _first_arrivals(rng, x, N, T)

    def simulate_purchase_times(self, theta, n_customers, horizon, rng):
        """Repeat-purchase times of ``n_customers`` new customers in (0, horizon] (see :meth:`draw_latent`)."""
        latent = self.draw_latent(theta, n_customers, rng)
        T = np.broadcast_to(np.asarray(horizon, dtype=float), (int(n_customers),))
        return _split(*self.draw_purchases(theta, latent, T, rng))

    # -- the retention lever (helpers.economics) -----------------------------

    def lever_expectations(self, theta, t, s, c, x=None, t_x=None, T=None, n_nodes=64, period=1.0):
        """E[X] and P(alive) ``t`` ahead when each drop-out probability ``p`` becomes ``q = clip(s p + c, 0, 1)``.

        Exact (see :mod:`helpers.economics`): given ``(lambda, q)`` and alive,
        the purchases in the next ``t`` are ``min(J, N)`` with ``J ~
        Geometric(q)`` and ``N ~ Poisson(lambda t)``, so ``E[X(t)] = (1 -
        exp(-lambda q t)) / q`` and ``P(alive at t) = exp(-lambda q t)`` (FHL
        2005a, section 4); ``lambda ~ Gamma(R, A)`` is integrated in closed form
        and ``p ~ Beta(a, B)`` by Gauss-Jacobi quadrature (:func:`_lever_mixture`).

        New customer (``x`` None), from the first purchase at time 0:
        ``R, A, B = r, alpha, b``; returns ``(len(t),)`` arrays.  MBG/NBD
        (Batislam et al. 2007) gives a new customer a drop-out chance right
        after the first purchase, at time 0: a programme that runs from
        acquisition lowers that chance too, so a new customer is alive after
        it with probability ``1 - q`` and both expectations carry the factor
        ``1 - q`` inside the Beta integral (with ``s, c = 1, 0``: Batislam et
        al.'s unconditional E[X(t)]).

        Existing customers: the posterior given alive at ``T``, ``lambda ~
        Gamma(r + x, alpha + T)`` and ``p ~ Beta(a, b + x + k)`` (``k`` = 1 for
        MBG/NBD, whose time-0 drop-out chance is in the past; the programme acts
        on future drop-out chances only), times P(alive); ``(n, len(t))`` arrays.
        With ``s, c = 1, 0`` this is FHL (2005a) eq. (9) and (10) (MBG/NBD: the
        unconditional expectation and appendix eq. 6 of Batislam et al. 2007).
        ``period`` is not used: the BG drop-out chances come with purchases.
        """
        r, alpha, a, b = theta
        if x is None:
            EX, S = _lever_mixture([r], [alpha], [b], t, a, s, c, n_nodes, first_chance=bool(self._k))
            return EX[0], S[0]
        x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
        pa = self.p_alive(theta, x, t_x, T)
        # the integral depends on (x, T) only: evaluate once per distinct pair
        (xu, Tu), inv, _ = unique_rows(x, T)
        EX, S = _lever_mixture(r + xu, alpha + Tu, b + xu + float(self._k), t, a, s, c, n_nodes)
        return pa[:, None] * EX[inv], pa[:, None] * S[inv]

    def lever_totals(self, theta, t, s, c, x, t_x, T, spend_weight, count_weight, n_nodes=64, period=1.0,
                     p_alive=None):
        """Weighted totals of :meth:`lever_expectations` over a base: ``(sum_i w_i E_i[X(t)], sum_i n_i P_i(alive at t))``.

        ``spend_weight`` (e.g. expected spend x customers per row) weights the
        purchases, ``count_weight`` (customers per row) the alive counts; the
        quadrature runs once per distinct ``(x, T)``.
        ``p_alive``: the rows' P(alive), when the caller has it already.
        """
        r, alpha, a, b = theta
        x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
        pa = self.p_alive(theta, x, t_x, T) if p_alive is None else np.asarray(p_alive, dtype=float)
        (xu, Tu), inv, _ = unique_rows(x, T)
        EX, S = _lever_mixture(r + xu, alpha + Tu, b + xu + float(self._k), t, a, s, c, n_nodes)
        ws = np.bincount(inv, weights=pa * spend_weight, minlength=len(xu))
        wc = np.bincount(inv, weights=pa * count_weight, minlength=len(xu))
        return ws @ EX, wc @ S

    def lever_continuation(self, theta, latent, t, s, c, rng, x=None, T=None, period=1.0):
        """Simulated purchases in the next ``t`` of simulated customers, without and with the lever.

        ``latent`` holds the traits of :meth:`draw_latent` (``lam``, ``p_drop``,
        ``J``).  Existing customers (``x``: their purchases up to their ages
        ``T``, from :meth:`draw_purchases` on the same ``latent``): alive when
        ``x < J``; from now on an alive customer's purchases are
        Poisson(``lambda t``) (memoryless) and the ``G``-th of them, ``G ~
        Geometric(p)`` on 1, 2, ... (memoryless too), ends the relationship, so
        the count is ``min(G, N)`` (FHL 2005a, section 3); under the lever ``p``
        becomes ``q = clip(s p + c, 0, 1)``.  New customers (``x`` None), from
        the first purchase on: ``min(G - k, N)``, the MBG/NBD time-0 drop-out
        (``k`` = 1) drawn with ``q`` under the lever as well.  Common random
        numbers: the same Poisson count and the same uniform drive both
        geometric draws.  Dead customers make none.  Returns ``(base, lever)``.
        """
        lam, p_drop = (np.asarray(latent[k], dtype=float) for k in ("lam", "p_drop"))
        N = rng.poisson(lam * t).astype(float)
        U = rng.uniform(size=len(lam))
        U = np.where(U <= 0, np.finfo(float).tiny, U)
        q = np.clip(s * p_drop + c, 0.0, 1.0)
        if x is None:
            k = float(self._k)
            return (np.minimum(_geometric(U, p_drop) - k, N), np.minimum(_geometric(U, q) - k, N))
        alive = np.asarray(x, dtype=float) < np.asarray(latent["J"], dtype=float)
        base = np.minimum(_geometric(U, p_drop), N)
        lever = np.minimum(_geometric(U, q), N)
        return np.where(alive, base, 0.0), np.where(alive, lever, 0.0)


class BGNBD(_BGFamily):
    """BG/NBD of Fader, Hardie & Lee (2005a); parameters ``r, alpha`` (gamma purchase rate), ``a, b`` (beta drop-out)."""

    name = "bgnbd"
    label = "BG/NBD"
    reference = ("Fader, Hardie & Lee (2005), Counting your customers the easy way: an alternative to the "
                 "Pareto/NBD model, Marketing Science 24(2), 275-284")
    _k = 0

    def log_likelihood(self, theta, x, t_x, T):
        """Individual log-likelihood, FHL (2005a) eq. (6)."""
        return _ll_bgnbd(theta, x, t_x, T)

    def p_alive(self, theta, x, t_x, T):
        """P(alive | x, t_x, T), FHL (2005a) eq. (13); 1 for x == 0."""
        r, alpha, a, b = theta
        x = np.asarray(x, dtype=float)
        xb = np.maximum(x, 1.0)
        log_odds = np.log(a) - np.log(b + xb - 1.0) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return np.where(x == 0, 1.0, 1.0 / (1.0 + np.exp(log_odds)))

    def _G(self, theta, t, x, T):
        """The part of FHL (2005a) eq. (10) in ``(x, T, t)``: the hypergeometric numerator."""
        r, alpha, a, b = theta
        z = t / (alpha + T + t)
        log_ratio = (r + x) * np.log((alpha + T) / (alpha + T + t))
        with np.errstate(all="ignore"):
            # the logarithmic form (exact near t = 0, survives overflow); with x = 0 and a + b < 1
            # the third 2F1 parameter is negative and the series can sum to a negative number,
            # where the formula still holds (checked against the integral over p in
            # tests/test_models.py) but its logarithm does not exist: there the direct product
            G = -np.expm1(_log_hyp2f1_safe(r + x, b + x, a + b + x - 1.0, z) + log_ratio)
            bad = ~np.isfinite(G)
            if bad.any():            # the direct product, evaluated only there (a 2F1 costs microseconds)
                G = np.array(G, dtype=float, copy=True)
                xb, zb, lb = (np.broadcast_to(v, G.shape)[bad] for v in (x, z, log_ratio))
                G[bad] = 1.0 - hyp2f1(r + xb, b + xb, a + b + xb - 1.0, zb) * np.exp(lb)
        return (a + b + x - 1.0) / (a - 1.0) * G

    def _h(self, theta, x, t_x, T):
        """The per-customer part of FHL (2005a) eq. (10): ``1 / (1 + delta a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))``."""
        r, alpha, a, b = theta
        x = np.asarray(x, dtype=float)
        xb = np.maximum(x, 1.0)
        return 1.0 / (1.0 + (x > 0) * (a / (b + xb - 1.0)) * np.exp((r + x) * np.log((alpha + T) / (alpha + t_x))))

    def expected_purchases_new(self, theta, t):
        """Unconditional E[X(t)], FHL (2005a) eq. (9)."""
        r, alpha, a, b = theta
        t = np.asarray(t, dtype=float)
        return (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r
                                            * hyp2f1(r, b, a + b - 1.0, t / (alpha + t)))

    def count_pmf(self, theta, t, n):
        """P(X(t) = n), FHL (2005a) eq. (8)."""
        r, alpha, a, b = theta
        nbd_n, cum_before, n = _nbd_and_cdf_before(r, alpha, t, n)
        first = np.exp(betaln(a, b + n) - betaln(a, b)) * nbd_n
        nb = np.maximum(n, 1.0)
        second = np.where(n > 0, np.exp(betaln(a + 1.0, b + nb - 1.0) - betaln(a, b)) * (1.0 - cum_before), 0.0)
        return first + second

def _geometric(U, p):
    """Inverse-CDF geometric draws on 1, 2, ... (inf for p = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        J = np.ceil(np.log(U) / np.log1p(-p))
    J = np.where(p <= 0, np.inf, J)
    return np.maximum(J, 1.0)


def _nbd_and_cdf_before(r, alpha, t, n):
    """NBD pmf at n and its cumulative sum over j < n (broadcast t, n): the pieces of FHL (2005a) eq. (8)."""
    t = np.asarray(t, dtype=float)
    n = np.asarray(n, dtype=float)
    t_b, n_b = np.broadcast_arrays(t, n)
    nmax = int(np.max(n_b)) if n_b.size else 0
    j = np.arange(nmax + 1, dtype=float)
    pmf_j = np.exp(_log_nbd_pmf(j, r, alpha, t_b[..., None]))          # shape + (nmax+1,)
    cum = np.concatenate([np.zeros(pmf_j.shape[:-1] + (1,)), np.cumsum(pmf_j, axis=-1)], axis=-1)
    cum_before = np.take_along_axis(cum, n_b.astype(int)[..., None], axis=-1)[..., 0]
    return np.exp(_log_nbd_pmf(n_b, r, alpha, t_b)), cum_before, n_b


# ---------------------------------------------------------------------------
# quadrature over the Beta drop-out distribution (the retention lever)
# ---------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _gauss_jacobi(n: int, al: float, be: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes on [-1, 1] and *normalised* weights (sum 1) for weight (1-x)^al (1+x)^be.

    Golub-Welsch on the monic Jacobi recurrence, so the weights do not overflow
    for large exponents (scipy's roots_jacobi overflows beyond ~1000).
    """
    k = np.arange(n, dtype=float)
    s = 2 * k + al + be
    with np.errstate(all="ignore"):
        d = (be ** 2 - al ** 2) / (s * (s + 2))
    d[0] = (be - al) / (al + be + 2)
    kk = np.arange(1, n, dtype=float)
    s = 2 * kk + al + be
    with np.errstate(all="ignore"):
        e2 = 4 * kk * (kk + al) * (kk + be) * (kk + al + be) / (s ** 2 * (s + 1) * (s - 1))
    if n > 1:
        e2[0] = 4 * (1 + al) * (1 + be) / ((2 + al + be) ** 2 * (3 + al + be))
    x, V = eigh_tridiagonal(d, np.sqrt(e2))
    return x, V[0] ** 2


@lru_cache(maxsize=16384)
def _beta_nodes(a: float, B: float, s: float, c: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``g(p_k)`` and probabilities ``W_k`` with ``sum W_k h(g(p_k)) ~= E[h(g(p))]``, p ~ Beta(a, B).

    The unit interval is split at the kinks of ``g(p) = clip(s p + c, 0, 1)``;
    on a segment touching 0 (1) the factor ``p^(a-1)`` (``(1-p)^(B-1)``) is the
    Jacobi weight, the rest of the density is evaluated at the nodes.
    """
    cuts = [0.0, 1.0]
    if s != 0:
        for v in (-c / s, (1.0 - c) / s):
            if 0.0 < v < 1.0:
                cuts.append(v)
    cuts = sorted(set(cuts))
    if len(cuts) > 2 and (B - 1.0) * -np.log1p(-cuts[1]) > 100.0:
        # the density falls steeply before the first kink (large B): resolve its bulk and tail first
        from scipy.stats import beta as _beta  # noqa: PLC0415

        extra = [float(v) for v in _beta.ppf([0.9, 0.999, 0.99999, 1 - 1e-9, 1 - 1e-14], a, B) if 0.0 < v < cuts[1]]
        cuts = sorted(set(cuts + extra))
    qs, ws = [], []
    lognorm = betaln(a, B)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        al = B - 1.0 if hi == 1.0 else 0.0     # exponent at the right end, (1-x)^al
        be = a - 1.0 if lo == 0.0 else 0.0     # exponent at the left end, (1+x)^be
        x, w = _gauss_jacobi(n, al, be)
        half = (hi - lo) / 2.0
        p = lo + half * (1.0 + x)
        one_minus = (1.0 - hi) + half * (1.0 - x)
        # integral of the Jacobi weight over [-1, 1]
        log_mu = (al + be + 1.0) * np.log(2.0) + betaln(al + 1.0, be + 1.0)
        log_rest = ((a - 1.0) * np.log(p) + (B - 1.0) * np.log(one_minus) - lognorm
                    - al * np.log1p(-x) - be * np.log1p(x))
        ws.append(w * np.exp(log_mu + log_rest + np.log(half)))
        qs.append(np.clip(s * p + c, 0.0, 1.0))
    return np.concatenate(qs), np.concatenate(ws)


def _lever_mixture(R, A, B, t, a, s, c, n_nodes=64, first_chance=False):
    """E[X(t)] and P(alive at t) of customers alive at time 0, (n_rows, n_t) arrays.

    Row ``i`` has ``lambda ~ Gamma(R_i, A_i)`` and ``p ~ Beta(a, B_i)``; the lever
    maps p to ``q = clip(s p + c, 0, 1)``; ``E[X(t) | q] = (1 - (A / (A + q t))^R) / q``
    (``R t / A`` for q = 0) and ``P(alive at t | q) = (A / (A + q t))^R``.
    ``first_chance``: a drop-out chance ``q`` at time 0 comes first (the MBG/NBD
    new customer), so both are multiplied by ``1 - q`` inside the integral.
    """
    R, A, B = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (R, A, B))
    t = np.atleast_1d(np.asarray(t, dtype=float))
    EX = np.empty((len(R), len(t)))
    S = np.empty((len(R), len(t)))
    for Bu in np.unique(B):
        rows = np.flatnonzero(B == Bu)
        q, W = _beta_nodes(float(a), float(Bu), float(s), float(c), int(n_nodes))
        if first_chance:
            W = W * (1.0 - q)
        Rr, Ar = R[rows, None, None], A[rows, None, None]
        qt = q[None, None, :] * t[None, :, None]                 # (1, n_t, n_nodes)
        logS = -Rr * np.log1p(qt / Ar)                           # log P(alive | q)
        with np.errstate(divide="ignore", invalid="ignore"):
            ex = np.where(q > 0, -np.expm1(logS) / np.where(q > 0, q, 1.0), Rr * t[None, :, None] / Ar)
        EX[rows] = ex @ W
        S[rows] = np.exp(logS) @ W
    return EX, S
