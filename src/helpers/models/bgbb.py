"""BG/BB: the beta-geometric/beta-Bernoulli model for discrete-time logs.

Fader, Hardie & Shang (2010), "Customer-base analysis in a discrete-time
noncontractual setting", *Marketing Science* 29(6), 1086-1108 (FHS below).

A customer makes a first transaction at opportunity 0 and then, at each
transaction opportunity ``t = 1, 2, ...`` (a year, an appeal, a week):

1. a customer alive at ``t - 1`` becomes inactive at the start of ``t`` with
   probability ``theta`` (so ``P(alive at t) = (1 - theta)^t``; death is never
   observed);
2. a customer alive at ``t`` transacts with probability ``p`` (at most one
   transaction per opportunity);
3. ``p ~ Beta(alpha, beta)`` and ``theta ~ Beta(gamma, delta)``, independent
   across customers and of each other.

A customer's history over ``n`` opportunities is summarised by ``x`` (the
number of opportunities 1..n with a transaction), ``t_x`` (the last of them,
0 if ``x == 0``) and ``n``, called ``T`` in the common interface
(:class:`helpers.models.base.FrequencyModel`); all are whole numbers with
``0 <= x <= t_x <= n``.  :func:`helpers.summary_discrete.discrete_summary`
builds them from a dated log.

Two building blocks give every formula below.  For ``m`` opportunities with
``x`` transactions in a given pattern,

* ``log_alive(x, m)  = log[B(alpha+x, beta+m-x)/B(alpha, beta) * B(gamma, delta+m)/B(gamma, delta)]``
  is the log-probability of that pattern with the customer alive at ``m``;
* ``log_death(x, m)  = log[B(alpha+x, beta+m-x)/B(alpha, beta) * B(gamma+1, delta+m)/B(gamma, delta)]``
  is the log-probability of that pattern, alive at ``m`` and inactive from ``m + 1`` on.

The likelihood (FHS eq. 5) is ``alive(x, n) + sum_{i=0}^{n-t_x-1} death(x, t_x+i)``
and the count distribution (FHS eq. 7) is
``C(n, x) alive(x, n) + sum_{i=x}^{n-1} C(i, x) death(x, i)``.  Given alive
at ``n``, the posteriors of ``p`` and ``theta`` are independent,
``Beta(alpha+x, beta+n-x)`` and ``Beta(gamma, delta+n)``: P(alive) is
``alive(x, n) / L`` (FHS eq. 11 without its extra period), survival is
``B(gamma, delta+n+t)/B(gamma, delta+n)``, and the conditional expectation
(FHS eq. 13) is ``P(alive) * (alpha+x)/(alpha+beta+n) * S(n, t)`` with
``S(n, t)`` the expected number of the next ``t`` opportunities at which the
customer is alive (:func:`_alive_opportunities`); ``S(0, t)`` gives the
unconditional expectation (FHS eq. 8).

FHS's Table 6 "P(alive in 2002)" is the probability of being alive at
opportunity ``n + 1`` (the next appeal), i.e. :meth:`BGBB.p_alive` times
:meth:`BGBB.survival_given_alive` at ``t = 1`` (``FittedModel.p_alive_future(1, ...)``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, digamma, gammaln

from .base import FrequencyModel, unique_rows

__all__ = ["BGBB"]

#: Cells (customers x opportunities) per block when simulating.
_SIM_BLOCK = 1 << 22


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

def _whole(name, v):
    v = np.asarray(v, dtype=float)
    bad = ~np.isfinite(v) | (v < 0) | (np.round(v) != v)
    if bad.any():
        ex = ", ".join(f"{e:g}" for e in np.unique(v[bad])[:5])
        raise ValueError(f"BG/BB counts whole transaction opportunities: {name} must be whole numbers >= 0; "
                         f"{int(bad.sum())} value(s) are not (e.g. {ex})")
    return v


def _opportunities(name, t):
    """The number of whole opportunities in a time span ``t >= 0``: opportunity ``k`` happens at time ``k``,
    so ``(n, n + t]`` holds ``floor(t)`` of them (a span of 2.5 periods holds 2)."""
    t = np.asarray(t, dtype=float)
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        ex = ", ".join(f"{e:g}" for e in np.unique(t[bad])[:5])
        raise ValueError(f"BG/BB: {name} must be finite and >= 0; {int(bad.sum())} value(s) are not (e.g. {ex})")
    return np.floor(t + 1e-9)


def _check_history(x, t_x, T):
    """Whole numbers with 0 <= x <= t_x <= T and t_x == 0 when x == 0 (ValueError naming the rule)."""
    x, t_x, T = (_whole(k, v) for k, v in (("x", x), ("t_x", t_x), ("T", T)))
    x, t_x, T = np.broadcast_arrays(x, t_x, T)
    for rule, bad in (
        ("x <= t_x (x transactions need at least x opportunities up to the last one)", x > t_x),
        ("t_x <= T (the last transaction lies within the T observed opportunities)", t_x > T),
        ("t_x == 0 when x == 0 (no repeat transaction, no recency)", (x == 0) & (t_x > 0)),
    ):
        if bad.any():
            ex = "; ".join(f"(x={a:g}, t_x={b:g}, T={c:g})" for a, b, c in
                           zip(x[bad][:3], t_x[bad][:3], T[bad][:3]))
            raise ValueError(f"BG/BB needs {rule}: {int(bad.sum())} row(s) violate it, e.g. {ex}")
    return x, t_x, T


# ---------------------------------------------------------------------------
# the two building blocks and the likelihood (FHS eq. 5)
# ---------------------------------------------------------------------------

def _log_beta_ratio(a, b, u, v, grad):
    """``log B(a+u, b+v) - log B(a, b)`` and, if ``grad``, its derivatives in ``a`` and ``b``."""
    val = betaln(a + u, b + v) - betaln(a, b)
    if not grad:
        return val, None
    psi_all = digamma(a + b + u + v)
    psi_ab = digamma(a + b)
    return val, (digamma(a + u) - psi_all - digamma(a) + psi_ab, digamma(b + v) - psi_all - digamma(b) + psi_ab)


def _log_block(theta, x, m, dead, grad=False):
    """``log_alive(x, m)`` (``dead=False``) or ``log_death(x, m)`` (``dead=True``), see the module docstring.

    Returns the value and, if ``grad``, its gradient w.r.t. (alpha, beta, gamma, delta) in a last axis.
    """
    alpha, beta, gamma, delta = theta
    # B(gamma+1, delta+m)/B(gamma, delta) = ratio with u = 1 (theta once), v = m ((1 - theta)^m)
    pv, pg = _log_beta_ratio(alpha, beta, x, m - x, grad)
    dv, dg = _log_beta_ratio(gamma, delta, 1.0 if dead else 0.0, m, grad)
    val = pv + dv
    if not grad:
        return val, None
    return val, np.stack(np.broadcast_arrays(pg[0], pg[1], dg[0], dg[1]), axis=-1)


def _log_likelihood(theta, x, t_x, n, grad=False):
    """Per-row log of FHS (2010) eq. (5) and, if ``grad``, its gradient (last axis: the four parameters).

    ``L = alive(x, n) + sum_{i=0}^{n-t_x-1} death(x, t_x + i)``: alive through all ``n``
    opportunities, or inactive from opportunity ``t_x + i + 1`` on (the last transaction at ``t_x``).
    The sum is accumulated in log space, one ``i`` at a time over all rows.
    """
    x, t_x, n = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, n)))
    m, g = _log_block(theta, x, n, dead=False, grad=grad)
    s = np.ones_like(m)
    gap = n - t_x
    for i in range(int(gap.max()) if gap.size else 0):
        live = gap > i
        term, tg = _log_block(theta, x, t_x + i, dead=True, grad=grad)
        term = np.where(live, term, -np.inf)
        m_new = np.maximum(m, term)
        c_old, c_new = np.exp(m - m_new), np.exp(term - m_new)
        s = s * c_old + c_new
        if grad:
            g = g * c_old[..., None] + tg * c_new[..., None]
        m = m_new
    ll = m + np.log(s)
    return ll, (g / s[..., None] if grad else None)


def _alive_opportunities(gamma, delta, n, t):
    """Expected number of the next ``t`` opportunities at which a customer alive at ``n`` is alive.

    ``S(n, t) = sum_{k=1}^{t} B(gamma, delta+n+k) / B(gamma, delta+n)
    = sum_{k=1}^{t} prod_{j=0}^{k-1} (delta+n+j) / (gamma+delta+n+j)``,
    the sum inside FHS eqs. (8) and (13).  FHS telescope it to
    ``(delta+n)/(gamma-1) [1 - G(delta+n+t+1) G(gamma+delta+n) / (G(delta+n+1) G(gamma+delta+n+t))]``
    (G the gamma function), which cancels catastrophically as gamma -> 1 (a relative error
    of 2.5e-7 at gamma = 1 - 2e-4, delta + n = 150, and 0/0 at gamma = 1); the sum of positive
    terms is exact to rounding (2e-14) for every gamma, at ``t`` (whole, small in discrete
    time) multiplications.
    """
    n, t = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(t, dtype=float))
    dn = delta + n
    total = np.zeros(n.shape)
    surv = np.ones(n.shape)
    for k in range(int(t.max()) if t.size else 0):
        surv = surv * (dn + k) / (gamma + dn + k)          # P(alive at n + k + 1 | alive at n)
        total = total + np.where(t > k, surv, 0.0)
    return total


def _log_survival(gamma, delta, n, t):
    """``log P(alive at n + t | alive at n) = log B(gamma, delta+n+t) - log B(gamma, delta+n)``."""
    return betaln(gamma, delta + n + t) - betaln(gamma, delta + n)


def _log_comb(n, k):
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------

class BGBB(FrequencyModel):
    """BG/BB (Fader, Hardie & Shang 2010): beta-Bernoulli transactions, beta-geometric drop-out.

    Discrete time: ``x`` transactions in ``T = n`` opportunities after the first,
    the last at opportunity ``t_x`` (whole numbers, checked).  ``t`` in the methods
    below is a time span after ``n`` in periods; opportunity ``k`` happens at time
    ``k``, so ``(n, n + t]`` holds ``floor(t)`` opportunities (as in the simulator,
    whose transaction times are the opportunity indices).  See the module docstring
    for the process and the two building blocks every formula is made of.
    """

    name = "bgbb"
    label = "BG/BB"
    reference = ("Fader, P. S., Hardie, B. G. S. & Shang, J. (2010). Customer-base analysis in a "
                 "discrete-time noncontractual setting. Marketing Science 29(6), 1086-1108.")
    param_names = ("alpha", "beta", "gamma", "delta")
    time_scale_params = ()
    discrete = True
    survival_depends_on_t_x = False

    # -- likelihood ---------------------------------------------------------

    def log_likelihood(self, theta, x, t_x, T) -> np.ndarray:
        """Per-row log-likelihood, FHS (2010) eq. (5).

        As in the paper (and lifetimes' ``BetaGeoBetaBinomFitter``), the likelihood of
        one transaction pattern: the joint probability of ``(x, t_x)`` is this times
        the number of patterns, ``C(t_x - 1, x - 1)`` for ``x > 0``, a constant that does
        not change the estimates.
        """
        x, t_x, T = _check_history(x, t_x, T)
        return _log_likelihood(theta, x, t_x, T)[0]

    def objective(self, x, t_x, T, w):
        """``theta -> (sum_i w_i LL_i, exact gradient)`` on weighted rows (FHS eq. 5 and its derivatives)."""
        x, t_x, T = _check_history(x, t_x, T)
        w = np.asarray(w, dtype=float)

        def value_and_gradient(theta):
            ll, g = _log_likelihood(theta, x, t_x, T, grad=True)
            return float(w @ ll), w @ g

        return value_and_gradient

    def fit(self, x, t_x, T, w=None, penalizer: float = 0.0, initial_params=None, time_unit: str | None = None,
            se: bool = True):
        """Maximum likelihood (the generic fitter) after checking the discrete-time rules on ``x, t_x, T``."""
        _check_history(x, t_x, T)
        return super().fit(x, t_x, T, w, penalizer=penalizer, initial_params=initial_params,
                           time_unit=time_unit, se=se)

    # -- predictions --------------------------------------------------------

    def p_alive(self, theta, x, t_x, T) -> np.ndarray:
        """P(alive at opportunity n | x, t_x, n) = alive(x, n) / L(x, t_x, n).

        FHS (2010) eq. (11) is the probability of being alive at ``n + 1``; that is
        this times :meth:`survival_given_alive` at ``t = 1``.
        """
        x, t_x, T = _check_history(x, t_x, T)
        log_alive, _ = _log_block(theta, x, T, dead=False)
        return np.exp(log_alive - _log_likelihood(theta, x, t_x, T)[0])

    def survival_given_alive(self, theta, t, x, t_x, T) -> np.ndarray:
        """P(alive at n + t | alive at n) = B(gamma, delta+n+t) / B(gamma, delta+n).

        Given alive at ``n`` the drop-out probability is ``Beta(gamma, delta+n)`` whatever
        ``x`` and ``t_x`` (the ratio in FHS eq. 11, for ``t`` opportunities instead of one).
        """
        gamma, delta = theta[2], theta[3]
        t, T = _opportunities("t", t), _whole("T", T)
        shape = np.broadcast_shapes(np.shape(t), np.shape(x), np.shape(t_x), np.shape(T))
        return np.broadcast_to(np.exp(_log_survival(gamma, delta, T, t)), shape)

    def expected_purchases(self, theta, t, x, t_x, T) -> np.ndarray:
        """E[X(n, n+t) | x, t_x, n], FHS (2010) eq. (13), transactions in the next ``t`` opportunities.

        Written as ``P(alive at n) * E[p | alive, x, n] * S(n, t)`` with
        ``E[p | alive, x, n] = (alpha+x)/(alpha+beta+n)`` and ``S`` from :func:`_alive_opportunities`.
        """
        alpha, beta, gamma, delta = theta
        t = _opportunities("t", t)
        pa = self.p_alive(theta, x, t_x, T)
        x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
        return pa * (alpha + x) / (alpha + beta + T) * _alive_opportunities(gamma, delta, T, t)

    def expected_purchases_parts(self, theta, t_grid, x, t_x, T):
        """FHS eq. (13) factorised: ``G = (alpha+x)/(alpha+beta+n) * S(n, t)`` per distinct ``(x, n)``, ``h = P(alive)``."""
        alpha, beta, gamma, delta = theta
        t_grid = _opportunities("t", np.atleast_1d(np.asarray(t_grid, dtype=float)))
        x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
        h = self.p_alive(theta, x, t_x, T)
        (xs, Ts), inv, _ = unique_rows(x, T)
        G = ((alpha + xs) / (alpha + beta + Ts))[:, None] * _alive_opportunities(gamma, delta, Ts[:, None],
                                                                                t_grid[None, :])
        return G, inv, h

    def expected_purchases_new(self, theta, t) -> np.ndarray:
        """E[X(t)] over the first ``t`` opportunities, FHS (2010) eq. (8): ``alpha/(alpha+beta) * S(0, t)``."""
        alpha, beta, gamma, delta = theta
        t = _opportunities("t", t)
        return alpha / (alpha + beta) * _alive_opportunities(gamma, delta, 0.0, t)

    def count_pmf(self, theta, t, n) -> np.ndarray:
        """P(X(t) = n) for ``t`` opportunities after the first transaction, FHS (2010) eq. (7).

        ``C(t, n) alive(n, t) + sum_{i=n}^{t-1} C(i, n) death(n, i)``; 0 for ``n > t``.
        """
        t, n = np.broadcast_arrays(_opportunities("t", t), _whole("n", n))
        ok = n <= t
        nn = np.where(ok, n, 0.0)
        tt = np.where(ok, t, 0.0)
        out = np.exp(_log_comb(tt, nn) + _log_block(theta, nn, tt, dead=False)[0])
        for i in range(int(tt.max()) if tt.size else 0):
            use = (i >= nn) & (i < tt)
            if use.any():
                ii = np.where(use, float(i), nn)
                term = np.exp(_log_comb(ii, nn) + _log_block(theta, nn, ii, dead=True)[0])
                out = out + np.where(use, term, 0.0)
        return np.where(ok, out, 0.0)

    # -- generative process -------------------------------------------------

    def draw_latent(self, theta, n_customers, rng) -> dict[str, np.ndarray]:
        """Each customer's latent traits (FHS section 2): ``p ~ Beta(alpha, beta)`` (transaction probability),
        ``theta ~ Beta(gamma, delta)`` (drop-out probability) and ``life``, the number of opportunities
        after the first at which the customer is alive.

        ``life = floor(log U / log(1 - theta))`` with ``U`` uniform on (0, 1], so that
        ``P(life >= t) = (1 - theta)^t`` (inactive from the start of opportunity ``life + 1``).
        """
        alpha, beta, gamma, delta = theta
        p = rng.beta(alpha, beta, n_customers)
        drop = rng.beta(gamma, delta, n_customers)
        with np.errstate(divide="ignore", invalid="ignore"):
            life = np.floor(np.log1p(-rng.random(n_customers)) / np.log1p(-drop))
        life = np.where(np.isnan(life), 0.0, life)            # theta == 1 with U == 1: 0 / -inf
        return {"p": p, "theta": drop, "life": life}

    def draw_purchases(self, theta, latent, horizon, rng) -> tuple[np.ndarray, np.ndarray]:
        """Transactions at opportunities ``1..floor(horizon_i)`` of the customers in ``latent``.

        At each opportunity ``1..life`` a customer transacts with probability ``p``.
        Returns ``(counts, times)`` (times: opportunity indices, customer by customer, increasing).
        """
        p = np.asarray(latent["p"], dtype=float)
        n = len(p)
        H = _opportunities("horizon", np.broadcast_to(np.asarray(horizon, dtype=float), (n,)))
        span = np.minimum(np.asarray(latent["life"], dtype=float), H).astype(np.int64)
        counts = np.zeros(n, dtype=np.int64)
        times = []
        width = int(span.max()) if n else 0
        if width > 0:
            step = max(1, _SIM_BLOCK // width)
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                w = int(span[lo:hi].max())
                if w == 0:
                    continue
                cols = np.arange(1, w + 1)
                hit = (rng.random((hi - lo, w)) < p[lo:hi, None]) & (cols[None, :] <= span[lo:hi, None])
                rows, c = np.nonzero(hit)
                counts[lo:hi] = np.bincount(rows, minlength=hi - lo)
                times.append(cols[c].astype(float))
        return counts, (np.concatenate(times) if times else np.zeros(0))

    def simulate_purchase_times(self, theta, n_customers, horizon, rng) -> list[np.ndarray]:
        """The generative process (FHS section 2): per customer, the opportunities in ``1..horizon`` with a
        transaction (a first transaction at opportunity 0 is implied)."""
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        latent = self.draw_latent(theta, n_customers, rng)
        counts, times = self.draw_purchases(theta, latent, horizon, rng)
        return np.split(times, np.cumsum(counts)[:-1]) if n_customers else []
