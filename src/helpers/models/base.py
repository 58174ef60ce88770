"""The frequency-model base class and the helpers every model shares.

:class:`FrequencyModel` declares what a model of repeat purchases provides
(see ``docs/model_interface.md``): the paper's log-likelihood (and optionally a
fast weighted objective with its exact gradient), P(alive), conditional and
unconditional expected purchases, the count distribution of a new customer,
the probability of staying alive, and its generative process.  Everything is
a method of a stateless instance that takes the parameters ``theta`` (a tuple
in ``param_names`` order, natural scale), so a fitted model is just a name and
a parameter vector (:class:`helpers.models.fit.FittedModel`).

Shared helpers: unique rows (:func:`unique_rows`, :func:`unique_apply`),
evaluation once per distinct ``x`` (``_x_groups``, ``_per_x``), a log 2F1 that
survives overflow (``_log_hyp2f1_safe``), the NBD pmf (``_log_nbd_pmf``) and
the checks of ``x, t_x, T`` arrays (``_frequency_arrays``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import numpy as np
import pandas as pd
from scipy.special import gammaln, hyp2f1, xlogy

__all__ = ["ModelFitError", "IndependenceWarning", "FrequencyModel", "unique_rows", "unique_apply"]

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

#: Rows per block in the row loops of the fast objectives: small work arrays, reused (no page faults).
_CHUNK = 65536


class ModelFitError(RuntimeError):
    """A model could not be fitted (failed or non-converged optimisation)."""


class IndependenceWarning(UserWarning):
    """Spend and purchase frequency look correlated (Gamma-Gamma assumes not)."""


# ---------------------------------------------------------------------------
# unique-row helpers
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


def _dot(u, v) -> float:
    """Inner product of two 1-D arrays without BLAS (multithreaded BLAS is slower at these sizes)."""
    return float(np.einsum("i,i->", u, v))


# ---------------------------------------------------------------------------
# special functions shared by several models
# ---------------------------------------------------------------------------

def _log_hyp2f1_safe(a, b, c, z):
    """log 2F1(a,b;c;z), falling back to Euler's transformation when 2F1 overflows.

    Euler: 2F1(a, b; c; z) = (1 - z)^(c-a-b) 2F1(c-a, c-b; c; z) (Abramowitz & Stegun 15.3.3).
    """
    with np.errstate(all="ignore"):
        val = np.log(hyp2f1(a, b, c, z))
        bad = ~np.isfinite(val)
        if not bad.any():
            return val
        a, b, c, z = (np.broadcast_to(v, np.shape(val))[bad] for v in (a, b, c, z))
        alt = np.log(hyp2f1(c - a, c - b, c, z)) + (c - a - b) * np.log1p(-z)
        if np.ndim(val) == 0:
            return alt[()] if np.ndim(alt) == 0 else alt.reshape(())
        val = np.array(val, dtype=float, copy=True)
        val[bad] = alt
    return val


def _log_nbd_pmf(n, r, alpha, t):
    """log P(N(t)=n) for the NBD (Poisson counts with a gamma(r, alpha) rate), FHL (2005a), section 3."""
    return (gammaln(r + n) - gammaln(r) - gammaln(n + 1.0) + r * np.log(alpha / (alpha + t))
            + xlogy(n, t / (alpha + t)))


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
# the base class
# ---------------------------------------------------------------------------

class FrequencyModel(ABC):
    """A probability model of repeat purchases, summarised per customer by ``(x, t_x, T)``.

    ``x`` repeat purchase occasions after a first purchase at time 0, ``t_x`` the
    time of the last one (0 if ``x == 0``), ``T`` the customer's age at the end
    of the data, all in the model's time unit.  Subclasses set the class
    attributes and implement the abstract methods; everything else (fitting,
    the factorised expectation, the simulated summary) has a generic default.
    Instances hold no parameters: every method takes ``theta``, a tuple of
    floats in :attr:`param_names` order on the natural scale, and numpy arrays
    that broadcast.

    Class attributes
    ----------------
    name : str
        Registry key (``helpers.models.registry``).
    label : str
        Display name, e.g. ``"BG/NBD"``.
    reference : str
        The paper the model and its formulas come from.
    param_names : tuple of str
        Literature names in literature order.
    time_scale_params : tuple of str
        Parameters measured in the time unit (scaled by max T in the penalty).
    integer_params : tuple of str
        Structural integer parameters that the generic fitter does not optimise.
    discrete : bool
        True for discrete-time models (``x`` transactions in ``T`` opportunities).
    survival_depends_on_t_x : bool
        Whether :meth:`survival_given_alive` depends on ``t_x``.  False lets
        callers evaluate it once per distinct ``(x, T)`` (``t_x`` is then ignored).
    covariate_links : dict
        Static covariates (:mod:`helpers.models.covariates`): process
        (``"purchase"``, ``"attrition"``) -> the parameters its covariates scale,
        as ``(parameter, sign)`` pairs: ``theta_i = theta_0 exp(sign * gamma' z_i)``.
        Empty: the model takes no covariates.
    covariate_quantities : dict
        Process -> a description of the quantity whose ratio
        :meth:`covariate_quantity` returns (the "multiplier" of a covariate).
    theta_broadcasts : bool
        Whether :meth:`log_likelihood` accepts per-row arrays for the linked
        parameters (else the covariate likelihood is evaluated once per
        covariate group with scalar parameters).
    """

    name: str = ""
    label: str = ""
    reference: str = ""
    param_names: tuple[str, ...] = ()
    time_scale_params: tuple[str, ...] = ()
    integer_params: tuple[str, ...] = ()
    discrete: bool = False
    #: ``(rows, levels)``: the generic fitter starts from a fit on rows with ``t_x``, ``T`` rounded to
    #: ``max(T) / levels`` when there are at least ``rows`` unique rows (``helpers.models.fit._binned_start``)
    binned_start: tuple[int, int] = (40_000, 64)
    survival_depends_on_t_x: bool = True
    covariate_links: dict[str, tuple[tuple[str, int], ...]] = {}
    covariate_quantities: dict[str, str] = {}
    theta_broadcasts: bool = True

    def covariate_fixed(self, nocov_fit) -> dict:
        """Base parameters the covariate fit holds fixed, given the model's no-covariate fit (default none).

        E.g. GGompertz/NBD's ``b`` when the no-covariate fit is the Pareto/NBD limit ``b -> 0``.
        """
        return {}

    def covariate_quantity(self, theta, process: str) -> float:
        """The quantity of ``process`` whose ratio between two covariate values is the covariate's multiplier.

        E.g. the mean purchase rate ``r / alpha``; see :attr:`covariate_quantities`.
        Default: not defined (the multiplier is reported as NaN).
        """
        raise NotImplementedError(f"{self.label}: no covariate quantity for process {process!r}")

    # -- likelihood ---------------------------------------------------------

    @abstractmethod
    def log_likelihood(self, theta, x, t_x, T) -> np.ndarray:
        """Per-row full log-likelihood of the paper."""

    def objective(self, x, t_x, T, w) -> Callable | None:
        """Optional fast path for the fitter on weighted (unique) rows.

        Returns a callable ``theta -> (sum_i w_i LL_i, gradient w.r.t. theta)``;
        the callable may return None at parameters where the fast path does not
        apply (the fitter then uses :meth:`log_likelihood` there).  Default None:
        :meth:`log_likelihood` with central-difference gradients.
        """
        return None

    def initial(self, x, t_x, T, w) -> np.ndarray:
        """Natural-scale starting values (all of ``param_names``): 1, or max T for time-scale parameters."""
        t_scale = max(float(np.max(T)), 1e-12)
        return np.array([t_scale if k in self.time_scale_params else 1.0 for k in self.param_names])

    # -- predictions --------------------------------------------------------

    @abstractmethod
    def p_alive(self, theta, x, t_x, T) -> np.ndarray:
        """P(alive at T | x, t_x, T)."""

    @abstractmethod
    def expected_purchases(self, theta, t, x, t_x, T) -> np.ndarray:
        """E[X(T, T+t] | x, t_x, T]: expected repeat purchases in the next ``t``."""

    def expected_purchases_parts(self, theta, t_grid, x, t_x, T):
        """E[X(T, T+t] | x, t_x, T] for 1-D customer arrays and a time grid as ``G[inv] * h[:, None]``.

        Default: :meth:`expected_purchases` once per unique ``(x, t_x, T)`` row
        (``inv`` maps customers to rows, ``h = 1``).  Models whose expectation
        factorises into a part in ``(x, T, t)`` and a part per customer override it.

        Returns
        -------
        G : ndarray (n_rows, len(t_grid)); inv : ndarray of int (n,); h : ndarray (n,)
        """
        t_grid = np.asarray(t_grid, dtype=float)
        (xs, txs, Ts), inv, _ = unique_rows(x, t_x, T)
        G = self.expected_purchases(theta, t_grid[None, :], xs[:, None], txs[:, None], Ts[:, None])
        G = np.broadcast_to(G, (len(xs), len(t_grid)))
        return G, inv, np.ones(len(inv))

    def _parts_from_G(self, theta, t_grid, x, t_x, T, h):
        """:meth:`expected_purchases_parts` of a model whose expectation is ``G(x, T, t) h(x, t_x, T)``:
        its ``_G`` once per distinct ``(x, T)`` on the grid, and the per-customer factor ``h``."""
        t_grid = np.asarray(t_grid, dtype=float)
        (xs, Ts), inv, _ = unique_rows(x, T)
        return self._G(theta, t_grid[None, :], xs[:, None], Ts[:, None]), inv, h

    @abstractmethod
    def expected_purchases_new(self, theta, t) -> np.ndarray:
        """Unconditional E[X(t)] for a customer who made the first purchase at time 0."""

    @abstractmethod
    def count_pmf(self, theta, t, n) -> np.ndarray:
        """P(X(t) = n) for a customer who made the first purchase at time 0."""

    @abstractmethod
    def survival_given_alive(self, theta, t, x, t_x, T) -> np.ndarray:
        """P(alive at T + t | alive at T, x, t_x, T); 1 at t = 0, non-increasing in t."""

    def p_alive_future(self, theta, t, x, t_x, T) -> np.ndarray:
        """P(alive at T + t | x, t_x, T) = P(alive at T | data) * P(survive (T, T+t] | alive at T, data).

        1-D customer arrays and a scalar or 1-D ``t``; returns ``(n,)`` or
        ``(n, len(t))``.  The survival factor is evaluated once per unique
        ``(x, T)`` (or ``(x, t_x, T)`` when :attr:`survival_depends_on_t_x`).
        """
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        t_arr = np.asarray(t, dtype=float)
        grid = np.atleast_1d(t_arr)
        pa = np.asarray(self.p_alive(theta, x, t_x, T), dtype=float)
        with np.errstate(all="ignore"):
            if self.survival_depends_on_t_x:
                surv = unique_apply(lambda xu, txu, Tu: self.survival_given_alive(
                    theta, grid[None, :], xu[:, None], txu[:, None], Tu[:, None]), x.ravel(), t_x.ravel(), T.ravel())
            else:
                surv = unique_apply(lambda xu, Tu: self.survival_given_alive(
                    theta, grid[None, :], xu[:, None], np.zeros((len(xu), 1)), Tu[:, None]), x.ravel(), T.ravel())
        surv = np.broadcast_to(surv, (x.size, len(grid)))
        out = pa.reshape(-1, 1) * surv
        return out[:, 0] if t_arr.ndim == 0 else out

    # -- generative process -------------------------------------------------

    @abstractmethod
    def simulate_purchase_times(self, theta, n_customers, horizon, rng) -> list[np.ndarray]:
        """The generative process: per customer, the sorted repeat-purchase times in (0, horizon].

        A first purchase at time 0 is implied.  ``horizon`` is a float or one
        value per customer.  Discrete-time models return the opportunities
        ``1..horizon`` with a transaction.
        """

    def draw_latent(self, theta, n_customers, rng) -> dict[str, np.ndarray]:
        """Optional first stage of the generative process: the customers' latent traits.

        Default: none (``{}``).  Models that split their process into
        :meth:`draw_latent` and :meth:`draw_purchases` let a simulator draw
        something in between (e.g. acquisition dates) with a fixed random stream
        and keep the traits (``lam``, ``p_drop``, ...) as columns.
        """
        return {}

    def draw_purchases(self, theta, latent, horizon, rng) -> tuple[np.ndarray, np.ndarray]:
        """Second stage: repeat purchases in ``(0, horizon_i]`` of the customers in ``latent``.

        ``horizon`` is one value per customer.  Returns ``(counts, times)``:
        ``counts[i]`` purchases of customer ``i`` and their times concatenated
        in customer order (sorted within customer).  Default: one call of
        :meth:`simulate_purchase_times` up to the largest horizon, each
        customer's times cut at its own horizon (the process does not depend on
        where it is observed).
        """
        horizon = np.asarray(horizon, dtype=float).ravel()
        n = len(horizon)
        lists = self.simulate_purchase_times(theta, n, float(horizon.max()) if n else 0.0, rng)
        kept = [np.asarray(v, dtype=float)[np.asarray(v) <= h] for v, h in zip(lists, horizon)]
        counts = np.array([len(v) for v in kept], dtype=np.int64)
        times = np.concatenate(kept) if n and counts.sum() else np.zeros(0)
        return counts, times

    def simulate_summary(self, theta, T, rng, t_star: float = 0.0) -> pd.DataFrame:
        """Simulated customers summarised as ``x, t_x, T`` (and ``x_star`` when ``t_star > 0``).

        Customer ``i`` has age ``T[i]`` (first purchase at 0); ``x_star`` counts
        its repeat purchases in ``(T_i, T_i + t_star]``.

        Parameters
        ----------
        theta : tuple
        T : float or array_like
            Ages (one per customer).
        rng : numpy.random.Generator or int
        t_star : float
            Holdout length after each customer's ``T``.
        """
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        T = np.atleast_1d(np.asarray(T, dtype=float)).ravel()
        n = len(T)
        latent = self.draw_latent(theta, n, rng)
        counts, times = self.draw_purchases(theta, latent, T + float(t_star), rng)
        cust = np.repeat(np.arange(n), counts)
        calib = times <= T[cust]
        x = np.bincount(cust[calib], minlength=n).astype(float)
        t_x = np.zeros(n)
        np.maximum.at(t_x, cust[calib], times[calib])
        out = pd.DataFrame({"x": x, "t_x": t_x, "T": T, **self._summary_columns(times[calib], cust[calib], n)})
        if t_star > 0:
            out["x_star"] = np.bincount(cust[~calib], minlength=n).astype(float)
        return out

    def _summary_columns(self, times, cust, n) -> dict:
        """Columns a model adds to :meth:`simulate_summary` from the calibration purchases (``times``, in
        customer order and in time order within a customer; ``cust`` their customer's index); none here."""
        return {}

    # -- fitting ------------------------------------------------------------

    def fit(self, x, t_x, T, w=None, penalizer: float = 0.0, initial_params=None, time_unit: str | None = None,
            se: bool = True):
        """Maximum-likelihood fit on (weighted) rows; default: the generic fitter of :mod:`helpers.models.fit`."""
        from .fit import fit as _fit  # noqa: PLC0415  (fit imports this module)

        return _fit(self, x, t_x, T, w, penalizer=penalizer, initial_params=initial_params, time_unit=time_unit,
                    se=se)

    # -- helpers ------------------------------------------------------------

    def theta_of(self, params) -> tuple:
        """``theta`` from a Series/mapping with the parameter names, or a sequence in literature order."""
        if isinstance(params, (pd.Series, dict)):
            missing = [k for k in self.param_names if k not in params]
            if missing:
                raise ValueError(f"{self.label}: parameters {missing} missing; expected {list(self.param_names)}")
            return tuple(float(params[k]) for k in self.param_names)
        th = tuple(float(v) for v in params)
        if len(th) != len(self.param_names):
            raise ValueError(f"{self.label} has {len(self.param_names)} parameters {list(self.param_names)}, "
                             f"got {len(th)} values")
        return th

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}: {', '.join(self.param_names)}>"


def _first_arrivals(rng, x, N, T):
    """Times of the first ``x[i]`` of ``N[i]`` Poisson arrivals on ``(0, T[i])``, concatenated per customer.

    Given ``N = n`` arrivals on ``(0, T)`` their times are the order statistics of
    ``n`` uniforms, ``S_k / S_{n+1}`` (k = 1..n) with ``S`` the cumulative sums of
    ``n + 1`` Exp(1) draws; only the first ``x`` are drawn explicitly, the rest
    sum to ``S_{n+1} - S_x ~ Gamma(n + 1 - x)``.  No Python loop per customer.
    Draws ``sum(x)`` exponentials, then one gamma per customer.
    """
    x = np.asarray(x, dtype=np.int64)
    n = len(x)
    n_rep = int(x.sum())
    offsets = np.cumsum(x) - x                                    # start of each customer's arrivals
    cust_rep = np.repeat(np.arange(n), x)
    cs = np.cumsum(rng.exponential(1.0, size=n_rep))
    last = offsets + x - 1
    has = x > 0
    seg_before = np.zeros(n)
    seg_before[has] = np.where(offsets[has] > 0, cs[np.maximum(offsets[has] - 1, 0)], 0.0)
    S = cs - seg_before[cust_rep]                                 # within-customer partial sums S_k
    S_x = np.zeros(n)
    S_x[has] = S[last[has]]
    S_total = S_x + rng.gamma(np.asarray(N, dtype=float) - x + 1.0)   # S_{n+1}
    return S / S_total[cust_rep] * np.asarray(T, dtype=float)[cust_rep]   # sorted within customer


def _split(counts, times) -> list[np.ndarray]:
    """Concatenated per-customer times -> one array per customer."""
    return np.split(np.asarray(times, dtype=float), np.cumsum(counts)[:-1]) if len(counts) else []


class SpendModel(ABC):
    """A model of the spend per transaction, summarised per customer by ``x`` and ``m_x``.

    ``m_x`` is the mean spend of the customer's ``x`` repeat transactions.  As
    :class:`FrequencyModel`, instances are stateless and take ``theta`` in
    ``param_names`` order.
    """

    name: str = ""
    label: str = ""
    reference: str = ""
    param_names: tuple[str, ...] = ()
    covariate_links: dict[str, tuple[tuple[str, int], ...]] = {}
    covariate_quantities: dict[str, str] = {}
    theta_broadcasts: bool = True

    def covariate_quantity(self, theta, process: str) -> float:
        """See :meth:`FrequencyModel.covariate_quantity`."""
        raise NotImplementedError(f"{self.label}: no covariate quantity for process {process!r}")

    @abstractmethod
    def log_likelihood(self, theta, x, m_x) -> np.ndarray:
        """Per-customer log-likelihood of the mean spend ``m_x`` of ``x`` transactions."""

    @abstractmethod
    def expected_spend(self, theta, x, m_x) -> np.ndarray:
        """E[spend per transaction | x, m_x]."""

    @abstractmethod
    def population_mean_spend(self, theta) -> float:
        """E[spend per transaction] of a customer drawn from the population."""
