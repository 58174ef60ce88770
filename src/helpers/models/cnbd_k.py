"""BG/CNBD-k and MBG/CNBD-k: the BG/NBD and MBG/NBD with Erlang-k inter-purchase times.

Reutterer, Platzer & Schröder (2021), "Leveraging purchase regularity for
predicting customer behavior the easy way", *International Journal of
Research in Marketing* 38(1), 194-215 (the models of BTYDplus'
``bgcnbd.*``/``mbgcnbd.*``); the regularity statistic ``litt`` and the idea of
timing regularity come from Platzer & Reutterer (2016), "Ticking away the
moments: timing regularity helps to better predict customer activity",
*Marketing Science* 35(5), 779-799 (whose own model is the Pareto/GGG).

The generative process (time in the model's unit, first purchase at 0):

* customer ``i`` has a rate ``lambda ~ Gamma(shape r, rate alpha)``; while alive,
  the gaps between purchases (from the first purchase on) are Erlang-k,
  ``Gamma(shape k, rate lambda)``: every k-th event of a Poisson process of
  rate ``lambda`` is a purchase (mean gap ``k / lambda``);
* after each repeat purchase the customer drops out with probability
  ``p ~ Beta(a, b)`` (BG/CNBD-k); MBG/CNBD-k also has a drop-out chance right
  after the first purchase, at time 0;
* ``k`` (an integer >= 1, a structural parameter) is common to all customers.
  With ``k = 1`` the models are BG/NBD (Fader, Hardie & Lee 2005a) and
  MBG/NBD (Batislam, Denizel & Filiztekin 2007), and every function here
  equals theirs.

Parameters ``theta = (k, r, alpha, a, b)`` (:attr:`param_names`); ``k`` is in
``integer_params``: :meth:`_CNBDk.fit` profiles the likelihood over
``k = 1..k_max`` (default 10) and fits ``r, alpha, a, b`` for each ``k``.

On many rows (from 40,000 unique rows and 40,000 customers) the profile first runs on a
random subsample of min(50,000, N/4) customers (each kept independently: Poisson thinning
of the row weights, fixed seed); each k then starts on all rows from its subsample fit
and takes Newton steps with that fit's Hessian.  :meth:`_CNBDk.fit` (not
:meth:`_CNBDk.profile_k`) fits on all rows only the k whose log-likelihood, estimated
from the subsample (its standard error from the Poisson variance of the thinned sum),
is within 8 standard errors of the best k's (:meth:`_CNBDk._screen`); the message lists
the others with the estimated gap.  The chosen k is fitted and polished on all rows as
without the subsample, so its estimates and standard errors are the data's.

The extra statistic ``litt``
----------------------------
With Erlang-k gaps the likelihood of the purchase times depends, beyond
``x, t_x, T``, on ``litt = sum_j ln(gap_j)``, the sum of the logarithms of the
customer's ``x`` inter-purchase times in the calibration period (the first gap
runs from the first purchase; ``litt = 0`` for ``x = 0``, ``ln t_x`` for
``x = 1``), in the same time unit as ``t_x`` and ``T`` and with purchases
counted per day like the summary (:func:`litt_from_transactions` computes it
from a transaction log).  A caller adds it as column ``litt`` of the summary:
``helpers.models.fit_model(name, summary)`` passes it on (the model lists it in
``summary_columns``), as does ``model.fit(x, t_x, T, litt=summary["litt"])``;
``log_likelihood(theta, x, t_x, T, litt=...)`` takes it per row.

``litt`` enters the log-likelihood only as ``(k - 1) litt - x ln (k-1)!``, free
of ``r, alpha, a, b``: the estimates for a given ``k`` do not depend on it,
only the choice of ``k`` does.  Without ``litt`` the models use the likelihood
of the summary ``(x, t_x, T)`` alone, in which ``t_x``, a sum of ``x``
Erlang-k gaps, is ``Gamma(kx, lambda)`` (no ``litt``); it is reported shifted
by the same data constant as the Poisson models' (see
:meth:`_CNBDk.log_likelihood`), so that it equals the BG/NBD likelihood at
``k = 1`` and stays comparable with the Poisson-based models.  Both choose
``k`` by likelihood; with ``litt`` the choice is sharper.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.special import betainc, betaln, gammaln, psi

from .base import FrequencyModel, ModelFitError, _dot, _split, unique_rows
from .bgnbd import BGNBD
from .mbgnbd import MBGNBD

__all__ = ["BGCNBDK", "MBGCNBDK", "litt_from_transactions"]

#: Default upper end of the profile over k (BTYDplus searches 1..12).
K_MAX = 10
#: Flat work-array size (elements) of one block of the phase sums.
_BLOCK = 1 << 20
#: Rows per chunk of the objective (ten work arrays of 16,384 doubles stay in the cache).
_CHUNK = 16384
#: The profile over k on many rows starts each k from its fit on a random subsample of about
#: min(_SUB_CUSTOMERS, customers / _SUB_RATIO) customers (Poisson thinning of the row weights, seed
#: _SUB_SEED) when there are at least _SUB_ROWS unique rows and that size is at least _SUB_MIN
_SUB_CUSTOMERS = 50_000
_SUB_RATIO = 4
_SUB_MIN = 10_000
_SUB_ROWS = 40_000
_SUB_SEED = 20210101
#: fit() (not profile_k) fits on all rows only the k whose log-likelihood, estimated from the subsample,
#: is within _SCREEN_Z of its standard errors (plus the subsample fits' optimism) of the best k's
_SCREEN_Z = 8.0
#: Newton steps with the subsample's Hessian end a k's fit at this max |mean gradient| (log parameters);
#: the chosen k then gets the generic fitter's full polish (1e-10) and its own Hessian.
_PROFILE_GTOL = 1e-8
#: The models at k = 1 (their closed forms are used there).
_K1 = {0: BGNBD(), 1: MBGNBD()}
_REFERENCE = ("Reutterer, Platzer & Schröder (2021), Leveraging purchase regularity for predicting customer "
              "behavior the easy way, International Journal of Research in Marketing 38(1), 194-215; "
              "regularity statistic litt: Platzer & Reutterer (2016), Ticking away the moments: timing "
              "regularity helps to better predict customer activity, Marketing Science 35(5), 779-799")


# ---------------------------------------------------------------------------
# litt from a transaction log
# ---------------------------------------------------------------------------

def litt_from_transactions(transactions: pd.DataFrame, calibration_end=None, time_unit: str = "W") -> pd.Series:
    """Sum of the log inter-purchase times per customer, ``litt``, from a transaction log.

    Purchases are counted per day, as in :mod:`helpers.summary` (same-day
    purchases are one purchase occasion); the gaps between consecutive
    purchase days (the first from the first purchase day) are measured in
    ``time_unit``, as ``t_x`` and ``T`` of
    :func:`helpers.summary.calibration_holdout` / :func:`~helpers.summary.rfm_summary`,
    and only purchase days up to ``calibration_end`` count.  ``litt`` is
    ``sum_j ln(gap_j)`` over a customer's ``x`` repeat purchase days: 0 for
    ``x = 0``, ``ln t_x`` for ``x = 1``.

    Parameters
    ----------
    transactions : DataFrame
        Clean purchases with ``customer_id`` and ``date`` (as from
        :func:`helpers.data.load_transactions`).
    calibration_end : date, optional
        Last day (inclusive) of the period the summary describes; default all.
    time_unit : {"D", "W", "M"}
        The summary's time unit.

    Returns
    -------
    Series ``litt`` indexed by ``customer_id`` (every customer with a purchase
    day up to ``calibration_end``); add it as column ``litt`` of the summary,
    e.g. ``summary["litt"] = litt_from_transactions(log, end, "W").reindex(summary.index)``.
    """
    from ..summary import days_per_unit, purchase_days  # noqa: PLC0415  (models do not need summary otherwise)

    unit_days = days_per_unit(time_unit)
    daily = purchase_days(transactions[["customer_id", "date"]])
    if calibration_end is not None:
        daily = daily.loc[daily["day"] <= pd.Timestamp(calibration_end).normalize()]
    cust = daily["customer_id"].to_numpy()
    days = daily["day"].to_numpy()
    repeat = np.zeros(len(cust), dtype=bool)
    repeat[1:] = cust[1:] == cust[:-1]                      # sorted by customer and day
    gaps = (days[1:] - days[:-1])[repeat[1:]] / np.timedelta64(1, "D") / unit_days
    codes, ids = pd.factorize(cust, sort=False)
    litt = np.bincount(codes[1:][repeat[1:]], weights=np.log(gaps), minlength=len(ids))
    return pd.Series(litt, index=pd.Index(ids, name="customer_id"), name="litt")


def _check_litt(x, t_x, litt):
    """litt consistent with x and t_x: 0 for x = 0, ln t_x for x = 1, <= x ln(t_x / x) (AM-GM) for x >= 2."""
    bad_msgs = []
    finite = np.isfinite(litt)
    checks = [
        (~finite, "must be finite (no NaN: pass litt for every customer or for none)"),
        (finite & (x == 0) & (np.abs(litt) > 1e-9), "must be 0 for customers with x == 0"),
        (finite & (x == 1) & (np.abs(litt - np.log(np.where(x == 1, t_x, 1.0))) > 1e-6),
         "must equal ln(t_x) for customers with x == 1 (is it in the summary's time unit, "
         "with purchases counted per day?)"),
        (finite & (x >= 2) & (litt > x * np.log(np.where(x >= 2, t_x, 1.0) / np.maximum(x, 1.0)) + 1e-9),
         "cannot exceed x ln(t_x / x) (the log of the mean gap, x times); is it in the summary's time unit?"),
    ]
    for bad, rule in checks:
        if bad.any():
            ex = pd.DataFrame({"x": x[bad], "t_x": t_x[bad], "litt": litt[bad]}).head(5)
            bad_msgs.append(f"column 'litt': {rule} ({int(bad.sum()):,} row(s)); examples:\n{ex.to_string()}")
    if bad_msgs:
        raise ValueError("\n".join(bad_msgs) + "\nCompute litt with helpers.models.cnbd_k.litt_from_transactions.")


# ---------------------------------------------------------------------------
# the mathematics (k, m, theta4 = (r, alpha, a, b); m = 1 for the MBG variant)
# ---------------------------------------------------------------------------

def _k_of(theta) -> int:
    k = float(theta[0])
    if not (k >= 1 and k == int(k)):
        raise ValueError(f"k must be an integer >= 1, got {theta[0]!r}")
    return int(k)


def _phase_terms(k, s, z):
    """``e_j = (s)_j z^j / j!`` for j = 0..k-1, on a new last axis.

    Given ``lambda``, the number ``J`` of Poisson events (purchase phases) in
    ``(t_x, T]`` of an alive customer is ``< k``; with ``lambda`` integrated
    against its posterior ``Gamma(s, alpha + t_x)``, ``P(J = j) ∝ e_j`` with
    ``s = r + kx`` and ``z = (T - t_x) / (alpha + T)``.
    """
    s, z = np.broadcast_arrays(np.asarray(s, dtype=float), np.asarray(z, dtype=float))
    out = np.empty(s.shape + (k,))
    out[..., 0] = 1.0
    for j in range(1, k):
        out[..., j] = out[..., j - 1] * (s + j - 1.0) * z / j
    return out


def _log_S2(k, s, z):
    """``ln sum_{j<k} (s)_j z^j / j!``: the log-probability-ratio of no purchase in ``(t_x, T]`` (0 for k = 1)."""
    if k == 1:
        return np.zeros(np.broadcast(np.asarray(s), np.asarray(z)).shape)
    return np.log(_phase_terms(k, s, z).sum(axis=-1))


def _ll_rest(k, m, th4, x, t_x, T):
    """The part of the log-likelihood common to the litt and the summary forms (see ``log_likelihood``)."""
    r, alpha, a, b = th4
    s = r + k * x
    z = (T - t_x) / (alpha + T)
    base = gammaln(s) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    alive = betaln(a, b + x + m) - s * np.log(alpha + T) + _log_S2(k, s, z)
    has_drop = x + m > 0
    bd = np.where(has_drop, b + x + m - 1.0, 1.0)
    drop = np.where(has_drop, betaln(a + 1.0, bd) - s * np.log(alpha + t_x), -np.inf)
    return base + np.logaddexp(alive, drop)


def _k_term(k, x, t_x, litt=None):
    """The part in k alone: ``(k-1) litt - x ln (k-1)!``, or without litt ``(k-1) x ln t_x - ln G(kx) + ln G(x)``."""
    if litt is not None:
        return (k - 1) * np.asarray(litt, dtype=float) - x * gammaln(k)
    pos = x > 0
    xp = np.where(pos, x, 1.0)
    tp = np.where(pos, t_x, 1.0)
    return np.where(pos, (k - 1) * xp * np.log(tp) - gammaln(k * xp) + gammaln(xp), 0.0)


def _rows_sorted_unique(x, t_x, T) -> bool:
    """Whether the rows ``(x, t_x, T)`` are strictly increasing in lexicographic order (so unique)."""
    if len(x) < 2:
        return True
    dx, dt, dT = np.diff(x), np.diff(t_x), np.diff(T)
    return bool(np.all((dx > 0) | ((dx == 0) & ((dt > 0) | ((dt == 0) & (dT > 0))))))


def _sub_size(n_customers: float) -> float:
    """The expected size of the profile's subsample: ``min(_SUB_CUSTOMERS, n_customers / _SUB_RATIO)``."""
    return min(float(_SUB_CUSTOMERS), n_customers / _SUB_RATIO)


def _k_term_parts(x, t_x, w):
    """What ``sum(w * _k_term(k, x, t_x))`` (no litt) needs for any k: the distinct ``x > 0`` with their weights
    and ``sum w x ln t_x`` over ``x > 0``."""
    pos = x > 0
    xs, ix = np.unique(x[pos], return_inverse=True)
    return xs, np.bincount(ix, weights=w[pos], minlength=len(xs)), _dot(w[pos] * x[pos], np.log(t_x[pos]))


def _k_term_sum(k, parts):
    """``sum(w * _k_term(k, x, t_x))`` without litt from :func:`_k_term_parts`:
    ``(k-1) sum w x ln t_x - sum_x W_x [ln G(kx) - ln G(x)]``."""
    xs, Wx, wxlt = parts
    return (k - 1) * wxlt - _dot(Wx, gammaln(k * xs) - gammaln(xs))


def _p_alive(k, m, th4, x, t_x, T):
    r, alpha, a, b = th4
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    s = r + k * x
    has_drop = x + m > 0
    bd = np.where(has_drop, b + x + m - 1.0, 1.0)
    log_odds = (np.log(a) - np.log(bd) + s * (np.log(alpha + T) - np.log(alpha + t_x))
                - _log_S2(k, s, (T - t_x) / (alpha + T)))
    return np.where(has_drop, 1.0 / (1.0 + np.exp(log_odds)), 1.0)


def _n_terms(s, q):
    """How far the phase count ``Y ~ NB(s, q)`` (mean ``s q / (1-q)``) must be summed: mean + 10 sd + 40 / -ln q.

    The last term covers the geometric tail ``~ q^y`` (below e^-40 relative).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = s * q / (1.0 - q)
        sd = np.sqrt(s * q) / (1.0 - q)
        geo = 40.0 / -np.log(q)
        n = np.ceil(mu + 10.0 * sd + geo)
    return np.where(q > 0, n, 0.0)


def _phase_sum(k, a, bp, s0, beta, t, kind):
    """``G[i, j] = F(0) + sum_{n>=1} (F(n) - F(n-1)) I_q(nk - j, s0 + j)``, ``q = t / (beta + t)``; 1-D inputs.

    ``I_q(N, s)`` (``betainc``) is ``P(Y >= N)`` for the gamma-mixed Poisson
    count ``Y`` of purchase phases in ``t`` when ``lambda ~ Gamma(s, beta)``; an
    alive customer in phase ``j`` makes its n-th next purchase when
    ``Y >= nk - j``.  ``F`` is a function of the number of next purchases
    with ``p ~ Beta(a, bp)`` integrated out:

    * ``kind="C"``: ``F(n) = sum_{i=1}^{n} E[(1-p)^(i-1)]`` (the expected purchases
      made before drop-out), ``F(n) - F(n-1) = (bp)_(n-1) / (a+bp)_(n-1)``;
    * ``kind="R"``: ``F(n) = E[(1-p)^n] = (bp)_n / (a+bp)_n`` (no drop-out after
      any of them), ``F(n) - F(n-1) = -a/(a+bp+n-1) (bp)_(n-1)/(a+bp)_(n-1)``.

    The sum is truncated where ``P(Y >= nk - j)`` is negligible (:func:`_n_terms`).
    """
    bp, s0, beta, t = (np.asarray(v, dtype=float).ravel() for v in (bp, s0, beta, t))
    P = len(s0)
    G = np.full((P, k), 0.0 if kind == "C" else 1.0)
    q = t / (beta + t)
    M = np.where(t > 0, np.ceil((_n_terms(s0 + k - 1.0, q) + k) / k), 0).astype(np.int64)
    ends = np.cumsum(M)
    start = 0
    while start < P:
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + _BLOCK, side="right")))
        Ms = M[start:stop]
        if Ms.sum() == 0:
            start = stop
            continue
        row = np.repeat(np.arange(stop - start), Ms)
        n = (np.arange(len(row)) - (np.cumsum(Ms) - Ms)[row] + 1).astype(float)
        bpi = bp[start:stop][row]
        c = np.exp(gammaln(bpi + n - 1.0) - gammaln(bpi) - gammaln(a + bpi + n - 1.0) + gammaln(a + bpi))
        dF = c if kind == "C" else -a * c / (a + bpi + n - 1.0)
        si, qi = s0[start:stop][row], q[start:stop][row]
        for j in range(k):
            G[start:stop, j] += np.bincount(row, weights=dF * betainc(n * k - j, si + j, qi),
                                            minlength=stop - start)
        start = stop
    return G


def _phase_expectation(k, m, th4, t, x, t_x, T, kind):
    """``sum_j P(J = j | alive, data) G_j(x, T, t)`` per element of the broadcast inputs.

    ``kind="C"``: E[X(T, T+t] | alive at T, data]; ``kind="R"``: P(alive at T+t | alive at T, data).
    ``G_j`` (:func:`_phase_sum`) is computed once per distinct ``(x, T, t)``, the phase
    weights per element.
    """
    r, alpha, a, b = th4
    t, x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (t, x, t_x, T)))
    shape = x.shape
    t, x, t_x, T = (v.ravel() for v in (t, x, t_x, T))
    (xs, Ts, ts), inv, _ = unique_rows(x, T, t)
    G = _phase_sum(k, a, b + xs + m, r + k * xs, alpha + Ts, ts, kind)
    e = _phase_terms(k, r + k * x, (T - t_x) / (alpha + T))
    val = np.einsum("ij,ij->i", e, G[inv]) / e.sum(axis=-1)
    if kind == "R":                                      # a probability: no rounding past 0 or 1
        val = np.clip(val, 0.0, 1.0)
    return val.reshape(shape)


# ---------------------------------------------------------------------------
# the fast weighted objective
# ---------------------------------------------------------------------------

class _CNBDkObjective:
    """Weighted (M)BG/CNBD-k log-likelihood (summary form) and its exact gradient in ``(k, r, alpha, a, b)``.

    The same value as ``sum(w * log_likelihood(theta, x, t_x, T))`` (no litt), rearranged
    as for BG/NBD (``bgnbd._BGFamilyObjective``): with ``s = r + kx``,
    ``S2 = sum_{j<k} (s)_j z^j / j!``, ``z = (T - t_x)/(alpha + T)``,

        LL_i = A(x) + r ln alpha - s ln(alpha + T) + ln S2 + delta ln(1 + e^D) + c_k(x, t_x),
        A(x) = ln G(s) - ln G(r) + ln B(a, b+x+m) - ln B(a, b),
        D    = ln a - ln(b+x+m-1) + s [ln(alpha+T) - ln(alpha+t_x)] - ln S2,

    ``delta = 1{x + m > 0}``, ``c_k`` the k-term of :func:`_k_term`.  Terms in ``x``
    alone once per distinct ``x``, in ``T`` once per distinct ``T``, logarithms and
    reciprocals of ``alpha + T`` and ``alpha + t_x`` once per distinct value; per row only
    ``z``, ``S2`` with its derivatives (a k-1 step recursion; ``S2 = 1`` where ``t_x = T``)
    and ``D`` with its logistic weight, in cache-sized chunks (``base._CHUNK`` rows) with
    preallocated buffers.  At ``k = 1`` (``S2 = 1``, ``c_1 = 0``) this is the BG/NBD (MBG/NBD)
    likelihood, and :class:`bgnbd._BGFamilyObjective` evaluates it.  The gradient
    entry for ``k`` is 0 (k is not optimised).
    """

    def __init__(self, x, t_x, T, w, m):
        x, t_x, T, w = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T, w))
        self.m = float(m)
        self.N = float(w.sum())
        self.ix, self.xs = pd.factorize(x, sort=True)
        self.Wx = np.bincount(self.ix, weights=w, minlength=len(self.xs))
        self.iT, self.Ts = pd.factorize(T, sort=True)
        self.W_T = np.bincount(self.iT, weights=w, minlength=len(self.Ts))
        self.WX_T = np.bincount(self.iT, weights=w * x, minlength=len(self.Ts))
        self.it, self.txs = pd.factorize(t_x, sort=True)
        self.x, self.t_x, self.T, self.w = x, t_x, T, w
        self.gap = T - t_x
        self.has_drop = (self.xs + m) > 0                      # per distinct x: delta = 1{x + m > 0}
        self.wd = w * self.has_drop[self.ix]                    # w delta per row
        self._kterm: dict[int, float] = {}
        self._kparts = None
        self._k1 = None
        self._buf = None

    def _k_const(self, k):
        if k not in self._kterm:
            if self._kparts is None:
                self._kparts = _k_term_parts(self.x, self.t_x, self.w)
            self._kterm[k] = _k_term_sum(k, self._kparts)
        return self._kterm[k]

    def _buffers(self, size):
        if self._buf is None or len(self._buf[0]) < size:
            self._buf = [np.empty(size) for _ in range(10)]
        return self._buf

    def __call__(self, theta):
        k = _k_of(theta)
        r, alpha, a, b = (float(v) for v in theta[1:])
        if k == 1:                                       # S2 = 1, c_1 = 0: the BG/NBD (MBG/NBD) likelihood
            if self._k1 is None:
                from .bgnbd import _BGFamilyObjective  # noqa: PLC0415

                self._k1 = _BGFamilyObjective(self.x, self.t_x, self.T, self.w, modified=bool(self.m))
            ll, g = self._k1((r, alpha, a, b))
            return float(ll), np.array([0.0, *g])
        m, xs = self.m, self.xs
        lTs = np.log(alpha + self.Ts)
        inv_Ts = 1.0 / (alpha + self.Ts)
        lts = np.log(alpha + self.txs)
        inv_ts = 1.0 / (alpha + self.txs)
        rW = r * self.W_T + k * self.WX_T                # sum of w s per distinct T
        A = gammaln(r + k * xs) - gammaln(r) + betaln(a, b + xs + m) - betaln(a, b)
        ll = _dot(self.Wx, A) + self.N * r * np.log(alpha) - _dot(rW, lTs) + self._k_const(k)
        pab = psi(a + b + xs + m)
        g_r = _dot(self.Wx, psi(r + k * xs) - psi(r)) + self.N * np.log(alpha) - _dot(self.W_T, lTs)
        g_al = self.N * r / alpha - _dot(rW, inv_Ts)
        g_a = _dot(self.Wx, psi(a + b) - pab)
        g_b = _dot(self.Wx, psi(b + xs + m) - pab - psi(b) + psi(a + b))
        bd = np.where(self.has_drop, b + xs + (m - 1.0), 1.0)
        inv_bd = np.where(self.has_drop, 1.0 / bd, 0.0)  # per distinct x
        c = np.log(a / bd)
        S_x = np.zeros(len(xs))                          # sum of w delta sigma(D) per distinct x
        n = len(self.x)
        chunk = _CHUNK
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            nc = hi - lo
            s, z, e, de, tot, dtot, jtot, D, u, tmp = (buf[:nc] for buf in self._buffers(min(n, chunk)))
            ix, iT, it = self.ix[lo:hi], self.iT[lo:hi], self.it[lo:hi]
            w, wd = self.w[lo:hi], self.wd[lo:hi]
            np.multiply(self.x[lo:hi], float(k), out=s)
            s += r                                       # s = r + kx
            ibT = np.take(inv_Ts, iT, out=D)             # 1 / (alpha + T), kept in D until D is formed
            np.multiply(self.gap[lo:hi], ibT, out=z)     # z = (T - t_x) / (alpha + T)
            # e_j = (s)_j z^j / j!, d e_j / dr, and sums of e_j, d e_j / dr, j e_j (alpha enters through z:
            # d e_j / d alpha = -j e_j / (alpha + T)); e_0 = 1
            np.multiply(s, z, out=e)
            de[:] = z
            np.add(e, 1.0, out=tot)
            dtot[:] = z
            jtot[:] = e
            for j in range(2, k):
                np.multiply(z, 1.0 / j, out=u)           # z / j
                np.add(s, j - 1.0, out=tmp)              # s + j - 1
                de *= tmp
                de += e
                de *= u                                  # d e_j / dr = (d e_(j-1)/dr (s+j-1) + e_(j-1)) z / j
                e *= tmp
                e *= u                                   # e_j = e_(j-1) (s+j-1) z / j
                tot += e
                dtot += de
                np.multiply(e, float(j), out=tmp)
                jtot += tmp
            np.divide(1.0, tot, out=u)                   # 1 / S2
            dtot *= u                                    # d ln S2 / dr
            jtot *= u
            jtot *= ibT
            np.negative(jtot, out=jtot)                  # d ln S2 / d alpha
            np.log(tot, out=tot)                         # ln S2
            ll += _dot(w, tot)
            g_r += _dot(w, dtot)
            g_al += _dot(w, jtot)
            # D = c(x) + s [ln(alpha+T) - ln(alpha+t_x)] - ln S2 and its logistic weight
            dl = np.take(lTs, iT, out=z)
            dl -= np.take(lts, it, out=tmp)              # ln(alpha+T) - ln(alpha+t_x), in z
            np.take(c, ix, out=D)
            np.multiply(s, dl, out=tmp)
            D += tmp
            D -= tot
            if D.max() < 700.0:                          # e^D finite: one exp, one log
                np.exp(D, out=u)
                np.add(u, 1.0, out=tmp)
                u /= tmp                                 # sigma(D)
                np.log(tmp, out=D)                       # ln(1 + e^D)
            else:
                ee = np.exp(-np.abs(D))
                u[:] = np.where(D >= 0.0, 1.0, ee) / (1.0 + ee)
                D[:] = np.maximum(D, 0.0) + np.log1p(ee)
            ll += _dot(wd, D)
            u *= wd                                      # w delta sigma(D)
            S_x += np.bincount(ix, weights=u, minlength=len(xs))
            dl -= dtot                                   # dD/dr = dl - d ln S2/dr
            g_r += _dot(u, dl)
            np.take(inv_Ts, iT, out=tmp)
            tmp -= np.take(inv_ts, it, out=D)
            tmp *= s
            tmp -= jtot                                  # dD/dalpha = s [1/(alpha+T) - 1/(alpha+t_x)] - d ln S2/d alpha
            g_al += _dot(u, tmp)
        g_a += S_x.sum() / a
        g_b -= _dot(S_x, inv_bd)
        return float(ll), np.array([0.0, g_r, g_al, g_a, g_b])


# ---------------------------------------------------------------------------
# the models
# ---------------------------------------------------------------------------

class _CNBDk(FrequencyModel):
    """What BG/CNBD-k and MBG/CNBD-k share; ``_m`` = 1 for a drop-out chance at time 0 (MBG)."""

    param_names = ("k", "r", "alpha", "a", "b")
    time_scale_params = ("alpha",)
    integer_params = ("k",)
    #: Optional per-customer statistics beyond x, t_x, T that the likelihood uses when present.
    summary_columns = ("litt",)
    survival_depends_on_t_x = True
    _m = 0

    # -- likelihood ---------------------------------------------------------

    def log_likelihood(self, theta, x, t_x, T, litt=None):
        """Per-row log-likelihood of the (M)BG/CNBD-k (Reutterer, Platzer & Schröder 2021).

        Given ``lambda`` and ``p``, the ``x`` Erlang-k gaps have density
        ``lambda^(kx) e^(-lambda t_x) exp((k-1) litt) / ((k-1)!)^x``; after the last
        purchase the customer either dropped out (probability ``p (1-p)^(x+m-1)``,
        ``x + m >= 1``) or is alive (``(1-p)^(x+m)``) with fewer than ``k`` phases in
        ``(t_x, T]`` (``e^(-lambda (T-t_x)) sum_{j<k} (lambda (T - t_x))^j / j!``).
        Integrating ``lambda ~ Gamma(r, alpha)`` and ``p ~ Beta(a, b)``, with ``s = r + kx``::

            LL = (k-1) litt - x ln (k-1)! + ln G(s) - ln G(r) + r ln alpha - ln B(a, b)
                 + ln[ B(a, b+x+m) (alpha+T)^-s sum_{j<k} (s)_j/j! ((T-t_x)/(alpha+T))^j
                       + 1{x+m>0} B(a+1, b+x+m-1) (alpha+t_x)^-s ]

        (``m = 0`` BG/CNBD-k, ``m = 1`` MBG/CNBD-k; with ``k = 1`` FHL 2005a eq. (6) and
        Batislam et al. 2007 eq. (A.4)).  Without ``litt`` (None) the first two terms
        are replaced by those of the likelihood of ``(x, t_x, T)`` alone, in which
        ``t_x ~ Gamma(kx, lambda)``: ``(kx-1) ln t_x - ln G(kx)``, shifted by the
        Poisson models' ``-(x-1) ln t_x + ln G(x)`` (``x >= 1``) so that
        ``k = 1`` gives the BG/NBD value::

            (k-1) x ln t_x - ln G(kx) + ln G(x)     (0 for x = 0)

        Parameters
        ----------
        theta : (k, r, alpha, a, b)
        x, t_x, T : array_like
        litt : array_like, optional
            Sum of the log inter-purchase times per row (see the module docstring).
        """
        k = _k_of(theta)
        th4 = tuple(float(v) for v in theta[1:])
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        return _ll_rest(k, self._m, th4, x, t_x, T) + _k_term(k, x, t_x, litt)

    def objective(self, x, t_x, T, w):
        """The rearranged weighted likelihood (summary form) with its exact gradient, :class:`_CNBDkObjective`.

        Within :meth:`_profile` the objective of its rows is built once and reused for every k
        (the generic fitter asks for it once per fit).
        """
        cache = getattr(self, "_objective_cache", None)
        key = tuple((np.asarray(v).__array_interface__["data"][0], np.size(v)) for v in (x, t_x, T, w))
        if cache is not None and key in cache:
            return cache[key][1]
        obj = _CNBDkObjective(x, t_x, T, w, self._m)
        if cache is not None:
            cache[key] = ((x, t_x, T, w), obj)
        return obj

    def initial(self, x, t_x, T, w):
        """``(k, r, alpha, a, b) = (1, 1, max T, 1, 1)``; :meth:`fit` starts each k > 1 from the fit at k - 1."""
        return np.array([1.0, 1.0, max(float(np.max(T)), 1e-12), 1.0, 1.0])

    # -- fitting ------------------------------------------------------------

    def fit(self, x, t_x, T, w=None, penalizer: float = 0.0, initial_params=None, time_unit: str | None = None,
            se: bool = True, *, litt=None, k: int | None = None, k_max: int = K_MAX):
        """Maximum likelihood with ``k`` chosen by profiling the likelihood over ``k = 1..k_max``.

        For each ``k`` the generic fitter (:func:`helpers.models.fit.fit`,
        ``fixed={"k": k}``) estimates ``r, alpha, a, b`` (starting from the
        estimates at ``k - 1``, ``alpha`` scaled by ``(k-1)/k``); the ``k`` with
        the largest log-likelihood is kept (ties: the smaller ``k``) and refitted
        with standard errors (``k``'s is NaN).  The profile is in the result's
        ``message``; :meth:`profile_k` returns it as a table.

        Parameters
        ----------
        x, t_x, T, w, penalizer, initial_params, time_unit, se
            As :meth:`FrequencyModel.fit`; ``initial_params`` (all five or
            ``r, alpha, a, b``) start the first ``k`` of the profile.
        litt : array_like, optional
            Per row (the mean over the customers a weighted row stands for),
            see the module docstring; without it ``k`` is chosen by the
            likelihood of ``(x, t_x, T)`` alone.
        k : int, optional
            Fit this ``k`` only (no profile).
        k_max : int
            Upper end of the profile (default :data:`K_MAX` = 10).

        Raises
        ------
        ValueError
            ``litt`` inconsistent with ``x, t_x`` (see :func:`_check_litt`), bad ``k``/``k_max``.
        ModelFitError
            No ``k`` could be fitted.
        """
        return self._cached(lambda: self._fit_profiled(x, t_x, T, w, penalizer, initial_params, time_unit, se, litt,
                                                       k, k_max))

    def _fit_profiled(self, x, t_x, T, w, penalizer, initial_params, time_unit, se, litt, k, k_max):
        prof, fits = self._profile(x, t_x, T, w, penalizer, initial_params, time_unit, litt, k, k_max, screen=True)
        ok = prof["log_likelihood"].notna()
        if not ok.any():
            raise ModelFitError(f"{self.label}: no k in {list(prof.index)} could be fitted: "
                                f"{'; '.join(prof['message'])}")
        best = int(prof.loc[ok, "log_likelihood"].idxmax())
        rows, shift = fits["rows"], fits["shift"]
        res = fits[best]
        if se:                                           # the profile ran without standard errors
            from .fit import fit as _fit  # noqa: PLC0415

            H_best = fits.get("H_sub", {}).get(best)
            res = _fit(self, *rows, penalizer=penalizer, initial_params=res.params, time_unit=time_unit, se=True,
                       fixed={"k": best}, hessian=H_best)
        ll = res.log_likelihood + shift[best]
        n_par = len(self.param_names)
        how = "the likelihood with litt" if fits["with_litt"] else "the likelihood of (x, t_x, T) (no litt given)"
        if k is not None:
            msg = f"k = {best} given; log-likelihood by {how}; {res.message}"
        else:
            scan = ", ".join(f"{kk}: {v:.2f}" for kk, v in prof["log_likelihood"].items() if np.isfinite(v))
            screened = fits.get("screened") or {}
            if screened:
                scan += ("; not fitted on all rows, screened out on a subsample of {:,} customers (estimated "
                         "log-likelihood below the best k's by, with its standard error): ".format(fits["n_sub"])
                         + ", ".join(f"{kk}: {gap:.0f} (se {se:.0f})" for kk, (v, gap, se) in sorted(screened.items())))
            msg = (f"k = {best} chosen by {how} over k = {prof.index.min()}..{prof.index.max()} "
                   f"(log-likelihood by k: {scan}); {res.message}")
        return dataclasses.replace(res, log_likelihood=ll, aic=-2 * ll + 2 * n_par,
                                   bic=-2 * ll + n_par * np.log(res.n_customers), message=msg)

    def profile_k(self, x, t_x, T, w=None, litt=None, k_max: int = K_MAX, penalizer: float = 0.0) -> pd.DataFrame:
        """The profile log-likelihood over ``k = 1..k_max``: one row per k with the estimates.

        Returns
        -------
        DataFrame indexed by ``k`` with ``log_likelihood`` (NaN where the fit
        failed), ``r, alpha, a, b`` and ``message``.
        """
        return self._profile(x, t_x, T, w, penalizer, None, None, litt, None, k_max)[0]

    def _cached(self, run):
        """``run()`` with :meth:`objective` building the objective of given rows once (the cache keeps the rows
        alive, so that its key, their data addresses and sizes, cannot be reused; dropped afterwards)."""
        outer = getattr(self, "_objective_cache", None)
        self._objective_cache = {} if outer is None else outer
        try:
            return run()
        finally:
            self._objective_cache = outer

    def _subsample_starts(self, xu, txu, Tu, wu, penalizer, ks):
        """Per k the estimates and the Hessian (mean objective, log parameters) of the fit on a customer subsample.

        Each customer of a row is kept independently (Poisson thinning of the weights,
        ``w_sub ~ Poisson(w n_sub / N)``, fixed seed) to about ``n_sub``
        customers (:func:`_sub_size`); the profile over ``ks`` on those rows (:meth:`_profile`, with standard
        errors so that every k has its Hessian).  Used only to start the fits on all rows:
        the estimates are those of all rows.  Returns ``({k: (r, alpha, a, b)}, {k: H}, sub)`` with
        ``sub`` the subsample's rows ``(x, t_x, T, w)``, its share ``p`` of the customers and its
        summary-form log-likelihood by k (for :meth:`_screen`).
        """
        import warnings  # noqa: PLC0415

        N = float(wu.sum())
        rng = np.random.default_rng(_SUB_SEED)
        ws = rng.poisson(wu * (_sub_size(N) / N)).astype(float)
        keep = ws > 0
        starts, Hs = {}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prof, fits = self._profile(xu[keep], txu[keep], Tu[keep], ws[keep], penalizer, None, None, None,
                                       ks[0] if len(ks) == 1 else None, max(ks), subsample=False, keep_hessians=True)
        for kk in ks:
            if kk in fits and kk in fits["H_sub"]:
                p = fits[kk].params
                starts[kk] = np.array([p["r"], p["alpha"], p["a"], p["b"]])
                Hs[kk] = fits["H_sub"][kk]
        sub = {"rows": (xu[keep], txu[keep], Tu[keep], ws[keep]), "p": float(ws.sum()) / N,
               "ll": {kk: float(prof.loc[kk, "log_likelihood"]) for kk in starts}}
        return starts, Hs, sub

    def _screen(self, sub, starts, shift):
        """The k that cannot be the best by the subsample's evidence: ``{k: (estimated LL, gap, se)}``.

        With ``p`` the subsample's share of the customers (each kept independently, Poisson thinning),
        the log-likelihood of all rows at k is estimated by ``LL_sub(k) / p + shift(k)`` (the litt
        shift is a constant of all rows, exact).  For each k against the best estimate ``k*``, the
        difference of the summary-form log-likelihoods per row, ``d`` (at the subsample's estimates),
        gives the standard error of the estimated difference, ``sqrt(sum w_sub d^2) / p`` (the Poisson
        variance of a thinned sum).  A k is screened out when its estimate lies more than
        ``_SCREEN_Z`` standard errors plus ``2 n_params / p`` (for the optimism of the subsample
        maxima) below ``k*``'s; the others are fitted on all rows.
        """
        p = sub["p"]
        xs_, txs_, Ts_, ws_ = sub["rows"]
        est = {kk: v / p + shift[kk] for kk, v in sub["ll"].items() if np.isfinite(v)}
        if len(est) < 2:
            return {}
        k_ref = max(est, key=lambda kk: (est[kk], -kk))
        ll_ref = self.log_likelihood((float(k_ref), *starts[k_ref]), xs_, txs_, Ts_)
        out = {}
        for kk, v in est.items():
            if kk == k_ref:
                continue
            d = self.log_likelihood((float(kk), *starts[kk]), xs_, txs_, Ts_) - ll_ref
            se = float(np.sqrt(_dot(ws_, d * d))) / p
            gap = est[k_ref] - v
            if gap > _SCREEN_Z * se + 2.0 * (len(self.param_names) - 1) / p:
                out[kk] = (v, gap, se)
        return out

    def _profile(self, x, t_x, T, w, penalizer, initial_params, time_unit, litt, k, k_max, subsample=True,
                 keep_hessians=False, screen=False):
        """The fits over ``k``: ``(table, fits)`` (see :meth:`profile_k`).

        On many rows (at least :data:`_SUB_ROWS` unique rows and a subsample of at least
        :data:`_SUB_MIN` customers, :func:`_sub_size`) each k starts from its fit on a customer subsample
        (:meth:`_subsample_starts`) and takes Newton steps with that fit's Hessian on all rows
        until max |mean gradient| < :data:`_PROFILE_GTOL` (the log-likelihood is then within
        about ``N gtol^2`` of the k's maximum); the chosen k is polished by :meth:`fit`.
        Otherwise each k starts from the fit at k - 1 (Newton steps with its Hessian).
        ``keep_hessians``: every k's fit computes its Hessian (``fits["H_sub"]``).  ``screen``
        (:meth:`fit`): with a subsample, the k that :meth:`_screen` rules out are not fitted on
        all rows (``fits["screened"]``: their estimated log-likelihood, gap to the best and its se).
        """
        x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
        w = np.ones_like(x) if w is None else np.asarray(w, dtype=float).ravel()
        if k is not None:
            ks = [_k_of((k,))]
        else:
            if int(k_max) != k_max or k_max < 1:
                raise ValueError(f"k_max must be an integer >= 1, got {k_max!r}")
            ks = list(range(1, int(k_max) + 1))
        # one row per distinct (x, t_x, T); litt enters only through its weighted sum
        if _rows_sorted_unique(x, t_x, T):              # (as fit_model passes them)
            xu, txu, Tu, wu = x, t_x, T, w
        else:
            (xu, txu, Tu), inv, _ = unique_rows(x, t_x, T)
            wu = np.bincount(inv, weights=w, minlength=len(xu))
        with_litt = litt is not None
        if with_litt:
            litt = np.asarray(litt, dtype=float).ravel()
            if len(litt) != len(x):
                raise ValueError(f"column 'litt': {len(litt)} values for {len(x)} rows")
            _check_litt(x, t_x, litt)
            keep = w > 0
            litt_sum = _dot(w[keep], litt[keep])
        if initial_params is not None:
            th0 = np.asarray(self.theta_of(initial_params) if isinstance(initial_params, (pd.Series, dict))
                             or len(initial_params) == 5 else [1.0, *initial_params], dtype=float)
            start = th0[1:]
        else:
            start = None
        table, fits, shift = [], {}, {}
        H_prev = None       # the Hessian at the previous k's optimum: Newton steps with it start the next k
        parts = _k_term_parts(xu, txu, wu) if with_litt else None
        for kk in ks:
            # the reported likelihood: the generic fit's (summary form) + (litt form - summary form)
            if with_litt:
                shift[kk] = (kk - 1) * litt_sum - gammaln(kk) * _dot(wu, xu) - _k_term_sum(kk, parts)
            else:
                shift[kk] = 0.0
        sub_starts, sub_H, screened = {}, {}, {}
        if subsample and len(xu) >= _SUB_ROWS and _sub_size(float(wu.sum())) >= _SUB_MIN and initial_params is None:
            sub_starts, sub_H, sub = self._subsample_starts(xu, txu, Tu, wu, penalizer, ks)
            if screen:
                screened = self._screen(sub, sub_starts, shift)
        H_kept = {}
        self._cached(lambda: self._profile_loop([kk for kk in ks if kk not in screened], xu, txu, Tu, wu, shift,
                                                start, penalizer, time_unit, table, fits, H_prev, sub_starts, sub_H,
                                                keep_hessians, H_kept))
        for kk, (v, gap, se) in screened.items():
            table.append({"k": kk, "log_likelihood": np.nan, "r": np.nan, "alpha": np.nan, "a": np.nan, "b": np.nan,
                          "message": f"screened out on the subsample: estimated log-likelihood {v:.0f}, {gap:.0f} "
                                     f"(se {se:.0f}) below the best k's"})
        fits.update(rows=(xu, txu, Tu, wu), shift=shift, with_litt=with_litt, H_sub=sub_H if sub_H else H_kept,
                    screened=screened, n_sub=int(round(float(sub["rows"][3].sum()))) if screened else 0)
        return pd.DataFrame(table).set_index("k").sort_index(), fits

    def _profile_loop(self, ks, xu, txu, Tu, wu, shift, start, penalizer, time_unit, table, fits, H_prev,
                      sub_starts, sub_H, keep_hessians, H_kept):
        from .fit import fit as _fit  # noqa: PLC0415

        for kk in ks:
            h_out: dict = {}
            try:
                if kk in sub_starts:
                    f = _fit(self, xu, txu, Tu, wu, penalizer=penalizer, initial_params=sub_starts[kk],
                             time_unit=time_unit, se=False, fixed={"k": kk}, hessian=sub_H[kk], gtol=_PROFILE_GTOL)
                else:
                    f = _fit(self, xu, txu, Tu, wu, penalizer=penalizer, initial_params=start, time_unit=time_unit,
                             se=keep_hessians, fixed={"k": kk}, hessian=H_prev, hessian_out=h_out)
            except ModelFitError as exc:
                table.append({"k": kk, "log_likelihood": np.nan, "r": np.nan, "alpha": np.nan, "a": np.nan,
                              "b": np.nan, "message": str(exc)})
                continue
            fits[kk] = f
            if "H" in h_out:
                H_prev = h_out["H"]
                if keep_hessians:
                    H_kept[kk] = H_prev
            p = f.params
            table.append({"k": kk, "log_likelihood": f.log_likelihood + shift[kk], "r": p["r"],
                          "alpha": p["alpha"], "a": p["a"], "b": p["b"], "message": f.message})
            start = np.array([p["r"], p["alpha"] * kk / (kk + 1.0), p["a"], p["b"]])

    # -- predictions --------------------------------------------------------

    @property
    def _k1_model(self) -> FrequencyModel:
        """The model this one is at k = 1: BG/NBD or MBG/NBD."""
        return _K1[self._m]

    def p_alive(self, theta, x, t_x, T):
        """P(alive at T | x, t_x, T): the alive share of the likelihood's two terms (see :meth:`log_likelihood`).

        ``1 / (1 + delta a/(b+x+m-1) ((alpha+T)/(alpha+t_x))^(r+kx) / S2)``, ``S2 = sum_{j<k}
        (r+kx)_j/j! ((T-t_x)/(alpha+T))^j``; 1 for BG/CNBD-k with ``x = 0``
        (Reutterer, Platzer & Schröder 2021; with k = 1 FHL 2005a eq. (13)).
        """
        return _p_alive(_k_of(theta), self._m, tuple(float(v) for v in theta[1:]), x, t_x, T)

    def expected_purchases(self, theta, t, x, t_x, T):
        """E[X(T, T+t] | x, t_x, T] = P(alive) E[X | alive, data], exact series (k = 1: the BG/NBD closed form).

        Given alive, the phase ``J < k`` reached since the last purchase has
        ``P(J = j) ∝ (s)_j z^j / j!`` (``s = r + kx``, ``z = (T-t_x)/(alpha+T)``), and
        ``lambda | J = j ~ Gamma(s + j, alpha + T)``, ``p ~ Beta(a, b + x + m)``.  The
        n-th next purchase happens by ``T + t`` if ``Y >= nk - j`` (``Y`` the Poisson
        phase count in ``t``) and the customer survived the ``n - 1`` purchases
        before it, so::

            E[X | alive, data] = sum_j P(J=j) sum_{n>=1} (b')_(n-1)/(a+b')_(n-1) I_q(nk - j, s + j),
            b' = b + x + m,  q = t / (alpha + T + t),

        ``I_q`` the regularized incomplete beta function (:func:`_phase_sum`).  The
        paper approximates this expectation (BTYDplus: BG/NBD-like with scale ``k
        alpha`` and a bias correction); the series is exact.  With k = 1 it is
        FHL (2005a) eq. (10) / Batislam et al. (2007) eq. (6), used directly.
        """
        k = _k_of(theta)
        th4 = tuple(float(v) for v in theta[1:])
        if k == 1:
            return self._k1_model.expected_purchases(th4, t, x, t_x, T)
        return _p_alive(k, self._m, th4, x, t_x, T) * _phase_expectation(k, self._m, th4, t, x, t_x, T, "C")

    def expected_purchases_parts(self, theta, t_grid, x, t_x, T):
        """``E = G[inv] * h``: ``G`` per unique ``(x, t_x, T)`` row, ``h`` = P(alive) per customer.

        ``G`` is the series of :meth:`expected_purchases` given alive, its ``G_j`` once per
        distinct ``(x, T, t)``.

        With k = 1 the BG/NBD factorisation (G per distinct ``(x, T)``).
        """
        k = _k_of(theta)
        th4 = tuple(float(v) for v in theta[1:])
        if k == 1:
            return self._k1_model.expected_purchases_parts(th4, t_grid, x, t_x, T)
        t_grid = np.asarray(t_grid, dtype=float).ravel()
        (xs, txs, Ts), inv, _ = unique_rows(x, t_x, T)
        G = _phase_expectation(k, self._m, th4, t_grid[None, :], xs[:, None], txs[:, None], Ts[:, None], "C")
        return G, inv, _p_alive(k, self._m, th4, np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float))

    def expected_purchases_new(self, theta, t):
        """Unconditional E[X(t)] of a new customer: the conditional series at ``x = t_x = T = 0``.

        ``P(alive at 0) sum_{n>=1} (b')_(n-1)/(a+b')_(n-1) I_q(nk, r)``, ``q = t/(alpha+t)``,
        ``b' = b + m``, ``P(alive at 0) = 1`` (BG) or ``b / (a+b)`` (MBG).  With k = 1:
        FHL (2005a) eq. (9) (``(a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]``).
        """
        k = _k_of(theta)
        th4 = tuple(float(v) for v in theta[1:])
        t = np.asarray(t, dtype=float)
        z = np.zeros(t.shape)
        return _p_alive(k, self._m, th4, z, z, z) * _phase_expectation(k, self._m, th4, t, z, z, z, "C")

    def count_pmf(self, theta, t, n):
        """P(X(t) = n) for a new customer: ``X(t) = min(N(t), J)`` with ``N(t)`` the Erlang-k renewal count.

        ``P(N(t) >= n) = I_q(nk, r)`` (``q = t/(alpha+t)``, ``lambda`` integrated) and
        ``J``, the purchases before drop-out, independent of ``N``, so::

            P(X(t) = n) = [I_q(nk, r) - I_q((n+1)k, r)] B(a, b+n+m)/B(a, b)
                          + I_q(nk, r) 1{n+m>0} B(a+1, b+n+m-1)/B(a, b)

        (``I_q(0, r) = 1``); with k = 1 FHL (2005a) eq. (8).
        """
        k = _k_of(theta)
        r, alpha, a, b = (float(v) for v in theta[1:])
        m = self._m
        t, n = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(n, dtype=float))
        q = t / (alpha + t)
        with np.errstate(all="ignore"):
            ge_n = np.where(n > 0, betainc(np.maximum(n, 1.0) * k, r, q), 1.0)        # P(N(t) >= n)
            ge_n1 = betainc((n + 1.0) * k, r, q)                                      # P(N(t) >= n + 1)
        ge_n = np.where(t > 0, ge_n, (n == 0).astype(float))
        ge_n1 = np.where(t > 0, ge_n1, 0.0)
        more = np.exp(betaln(a, b + n + m) - betaln(a, b))                           # P(J > n)
        has = n + m > 0
        at = np.where(has, np.exp(betaln(a + 1.0, np.where(has, b + n + m - 1.0, 1.0)) - betaln(a, b)), 0.0)
        return (ge_n - ge_n1) * more + ge_n * at

    def survival_given_alive(self, theta, t, x, t_x, T):
        """P(alive at T + t | alive at T, x, t_x, T): no drop-out after any of the next purchases.

        ``sum_j P(J=j) [1 - sum_{n>=1} a/(a+b'+n-1) (b')_(n-1)/(a+b')_(n-1) I_q(nk - j, s + j)]``
        (``E[(1-p)^N]`` with ``N`` the next purchases in ``t``, see
        :meth:`expected_purchases`); depends on ``t_x`` through the phase for k > 1.
        With k = 1 the BG/NBD closed form (``bgnbd._BGFamily.survival_given_alive``).
        """
        k = _k_of(theta)
        th4 = tuple(float(v) for v in theta[1:])
        if k == 1:
            return self._k1_model.survival_given_alive(th4, t, x, t_x, T)
        return _phase_expectation(k, self._m, th4, t, x, t_x, T, "R")

    # -- generative process -------------------------------------------------

    def draw_latent(self, theta, n_customers, rng):
        """``lambda ~ Gamma(r, rate alpha)``, ``p ~ Beta(a, b)`` and ``J``, the repeat purchases before drop-out.

        ``J ~ Geometric(p)`` on 1, 2, ... (BG/CNBD-k: the first drop-out chance follows
        the first repeat purchase) or on 0, 1, ... (MBG/CNBD-k: also at time 0).
        """
        _k_of(theta)
        r, alpha, a, b = (float(v) for v in theta[1:])
        n = int(n_customers)
        lam = rng.gamma(r, 1.0 / alpha, size=n)
        p_drop = np.clip(rng.beta(a, b, size=n), 1e-300, 1.0)
        J = rng.geometric(p_drop) - self._m
        return {"lam": lam, "p_drop": p_drop, "J": J}

    def draw_purchases(self, theta, latent, horizon, rng):
        """Erlang-k purchase times in ``(0, horizon_i]``: every k-th event of a Poisson(lambda) process, at most J.

        The Poisson events in ``(0, h]`` number ``M ~ Poisson(lambda h)`` and sit at
        the order statistics ``h S_l / S_(M+1)`` of cumulative Exp(1) sums; the
        purchases are events ``k, 2k, ...``, ``x = min(floor(M/k), J)`` of them, so
        only ``S_(nk)`` (sums of Gamma(k) draws) and ``S_(M+1) - S_(xk) ~ Gamma(M + 1 - xk)``
        are drawn.  No Python loop per customer.
        """
        k = _k_of(theta)
        h = np.asarray(horizon, dtype=float).ravel()
        n = len(h)
        M = rng.poisson(latent["lam"] * h)
        x = np.minimum(M // k, latent["J"]).astype(np.int64)
        off = np.cumsum(x) - x
        owner = np.repeat(np.arange(n), x)
        cs = np.cumsum(rng.gamma(float(k), 1.0, size=int(x.sum())))
        before = np.zeros(n)
        has = x > 0
        prev = has & (off > 0)
        before[prev] = cs[off[prev] - 1]
        S = cs - before[owner]                             # S_(nk) within customer
        S_last = np.zeros(n)
        S_last[has] = S[off[has] + x[has] - 1]
        S_total = S_last + rng.gamma(M - k * x + 1.0)      # S_(M+1)
        return x, S / S_total[owner] * h[owner]

    def simulate_purchase_times(self, theta, n_customers, horizon, rng):
        """Repeat-purchase times of ``n_customers`` new customers in (0, horizon] (see :meth:`draw_purchases`)."""
        latent = self.draw_latent(theta, n_customers, rng)
        h = np.broadcast_to(np.asarray(horizon, dtype=float), (int(n_customers),))
        return _split(*self.draw_purchases(theta, latent, h, rng))

    def _summary_columns(self, times, cust, n) -> dict:
        """``litt`` of the calibration purchases (in ``(0, T_i]``), the first gap from time 0, for
        :meth:`FrequencyModel.simulate_summary` (``x, t_x, T, litt[, x_star]``)."""
        gaps = np.diff(times, prepend=0.0)
        first = np.ones(len(cust), dtype=bool)
        first[1:] = cust[1:] != cust[:-1]
        gaps[first] = times[first]                         # the first gap runs from the first purchase at 0
        return {"litt": np.bincount(cust, weights=np.log(gaps), minlength=n)}


class BGCNBDK(_CNBDk):
    """BG/CNBD-k (Reutterer, Platzer & Schröder 2021): BG/NBD with Erlang-k gaps; ``k, r, alpha, a, b``."""

    name = "bgcnbd_k"
    label = "BG/CNBD-k"
    reference = _REFERENCE
    _m = 0


class MBGCNBDK(_CNBDk):
    """MBG/CNBD-k (Reutterer, Platzer & Schröder 2021): MBG/NBD with Erlang-k gaps; ``k, r, alpha, a, b``."""

    name = "mbgcnbd_k"
    label = "MBG/CNBD-k"
    reference = _REFERENCE
    _m = 1

