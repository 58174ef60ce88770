"""Conformance tests of every registered frequency model (helpers.models.registry.REGISTRY).

Each test is parametrised over ``registered_models()``, so a model added to the
registry is checked automatically.  The parameters ("truth") of each model are
its own maximum-likelihood estimates on the CDNOW calibration sample (FHL 2005a:
2,357 customers, 39 weeks, weekly time unit; discrete-time models get the same
customers summarised per weekly opportunity), so every model is tested at
realistic values without a hand-written table.  Nothing here is a number the
code printed: every check is an identity between the model's own methods, or
its closed forms against Monte Carlo of its own generative process
(``simulate_purchase_times`` via ``simulate_summary``), with tolerances of
four Monte-Carlo standard errors (two-sided 4-sigma: a correct model fails
with probability about 6e-5 per comparison; the seeds are fixed).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import gammaln

from helpers.models import FittedModel, fit_model, get_model, registered_models
from helpers.models.fit import _num_grad

MODELS = registered_models()
Z = 4.0                      # tolerance in Monte-Carlo standard errors (see module docstring)


# ---------------------------------------------------------------------------
# data and parameters
# ---------------------------------------------------------------------------

def _weekly_opportunities(transactions, calibration_end):
    """x, t_x, T per customer in weekly opportunities: week k = days since first purchase // 7, k = 1..T."""
    tx = transactions[transactions["date"] <= pd.Timestamp(calibration_end)]
    first = tx.groupby("customer_id")["date"].transform("min")
    week = ((tx["date"] - first).dt.days // 7).to_numpy()
    df = pd.DataFrame({"customer_id": tx["customer_id"].to_numpy(), "week": week})
    ends = (pd.Timestamp(calibration_end) - tx.groupby("customer_id")["date"].min()).dt.days // 7
    rep = df[df["week"] >= 1].drop_duplicates()
    g = rep.groupby("customer_id")["week"]
    out = pd.DataFrame({"T": ends.astype(float)})
    out["x"] = g.size().reindex(out.index, fill_value=0).astype(float)
    out["t_x"] = g.max().reindex(out.index, fill_value=0).astype(float)
    return out[["x", "t_x", "T"]]


@pytest.fixture(scope="module")
def data(cdnow_sample, paper_split):
    return {False: paper_split[["x", "t_x", "T"]].copy(),
            True: _weekly_opportunities(cdnow_sample.transactions, "1997-09-30")}


@pytest.fixture(scope="module")
def fitted(data):
    cache = {}

    def get(name) -> FittedModel:
        if name not in cache:
            m = get_model(name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                cache[name] = fit_model(name, data[m.discrete], time_unit="W")
        return cache[name]

    return get


def _ages(data, model, n):
    """n customer ages drawn from the CDNOW ages (integers for discrete models)."""
    T = data[model.discrete]["T"].to_numpy()
    return np.random.default_rng(0).choice(T, size=n)


# ---------------------------------------------------------------------------
# the registry and the class attributes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_registry_entry_is_consistent(name, fitted):
    m = get_model(name)
    assert m.name == name
    assert get_model(m.label) is m and get_model(name.upper()) is m
    assert m.label and m.reference and len(m.param_names) == len(set(m.param_names)) >= 1
    assert set(m.time_scale_params) <= set(m.param_names)
    assert set(m.integer_params) <= set(m.param_names)
    f = fitted(name)
    assert f.name == name and f.converged and f.model is m
    assert list(f.params.index) == list(m.param_names)
    assert np.isfinite(f.log_likelihood)


# ---------------------------------------------------------------------------
# the likelihood: against the count distribution, and its gradient
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_likelihood_integrates_to_the_count_distribution(name, fitted):
    """The likelihood of (x, t_x, T) is the density of the x repeat-purchase times (FHL 2005a eq. 6 and
    its analogues): integrating out the x - 1 interior times, P(X(T) = x) = int_0^T t^(x-1)/(x-1)! L(x, t, T) dt
    (x >= 1; discrete time: sum over t_x of C(t_x - 1, x - 1) L), and P(X(T) = 0) = L(0, 0, T).
    This ties log_likelihood to count_pmf, which the next test ties to the simulator."""
    m, th = get_model(name), fitted(name).theta
    T = 39.0 if not m.discrete else 38.0
    for x in range(0, 6):
        want = float(m.count_pmf(th, T, x))
        if x == 0:
            got = float(np.exp(m.log_likelihood(th, np.array([0.0]), np.array([0.0]), np.array([T]))[0]))
        elif m.discrete:
            tx = np.arange(x, int(T) + 1, dtype=float)
            log_c = gammaln(tx) - gammaln(x) - gammaln(tx - x + 1.0)
            ll = m.log_likelihood(th, np.full_like(tx, x), tx, np.full_like(tx, T))
            got = float(np.sum(np.exp(log_c + ll)))
        else:
            def f(t):
                ll = m.log_likelihood(th, np.array([float(x)]), np.array([t]), np.array([T]))[0]
                return np.exp((x - 1) * np.log(t) - gammaln(x) + ll)
            got = integrate.quad(f, 0.0, T, epsabs=0.0, epsrel=1e-11, limit=200)[0]
        assert got == pytest.approx(want, rel=1e-7), (x, got, want)


@pytest.mark.parametrize("name", MODELS)
def test_count_pmf_against_simulation(name, fitted, data):
    """count_pmf is a distribution with mean expected_purchases_new, and matches simulated new customers
    (Pearson chi-square over the classes 0..7, 8+ below its 0.9999 quantile)."""
    m, th = get_model(name), fitted(name).theta
    t = 39.0 if not m.discrete else 38.0
    n = np.arange(3000.0)
    P = m.count_pmf(th, t, n)
    assert np.all(P >= -1e-15) and P.sum() == pytest.approx(1.0, abs=1e-8)
    assert float(n @ P) == pytest.approx(float(m.expected_purchases_new(th, t)), rel=1e-7)
    sim = m.simulate_summary(th, np.full(20_000, t), np.random.default_rng(1))
    k = np.minimum(sim["x"].to_numpy().astype(int), 8)
    observed = np.bincount(k, minlength=9)
    expected = len(k) * np.append(P[:8], 1.0 - P[:8].sum())
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    assert chi2 < stats.chi2.ppf(0.9999, df=8), (observed, expected.round(1))


@pytest.mark.parametrize("name", MODELS)
def test_gradient_matches_finite_differences(name, fitted, data):
    """The fast objective (if any) equals the summed log-likelihood, and its analytic gradient equals central
    differences of it; in any case the gradient vanishes at the maximum-likelihood estimate."""
    m, f = get_model(name), fitted(name)
    s = data[m.discrete]
    x, t_x, T = (s[c].to_numpy(float) for c in ("x", "t_x", "T"))
    w = np.ones_like(x)
    th = np.array(f.theta)
    free = [i for i, k in enumerate(m.param_names) if k not in m.integer_params]

    def total_ll(phi_free):
        t = th.copy()
        t[free] = np.exp(phi_free)
        return float(np.sum(w * m.log_likelihood(tuple(t), x, t_x, T)))

    phi = np.log(th[free])
    g_num = _num_grad(total_ll, phi, 1e-6)                        # d LL / d log theta
    # first-order condition at the MLE: |gradient| small against the Hessian scale (n customers)
    assert np.max(np.abs(g_num)) < 1e-3 * len(x) ** 0.5, g_num
    obj = m.objective(x, t_x, T, w)
    if obj is not None:
        for scale in (1.0, 1.3, 0.7):                             # at the MLE and away from it
            t = th.copy()
            t[free] = th[free] * scale
            out = obj(tuple(t))
            assert out is not None
            ll, g = out
            assert ll == pytest.approx(float(np.sum(w * m.log_likelihood(tuple(t), x, t_x, T))), rel=1e-10)
            g_fd = _num_grad(total_ll, np.log(t[free]), 1e-6)
            np.testing.assert_allclose(np.asarray(g)[free] * t[free], g_fd, rtol=1e-5, atol=1e-3)


# ---------------------------------------------------------------------------
# P(alive) and survival
# ---------------------------------------------------------------------------

def _histories(m):
    """A grid of histories including the edges: x = 0, t_x = T, large x with early t_x, small and large T."""
    T = np.array([1.0, 10.0, 39.0, 100.0])
    xs = np.array([0.0, 1.0, 2.0, 5.0, 20.0, 60.0])
    frac = np.array([0.01, 0.5, 1.0])
    X, TT, F = np.meshgrid(xs, T, frac, indexing="ij")
    X, TT, F = X.ravel(), TT.ravel(), F.ravel()
    tx = np.where(X > 0, F * TT, 0.0)
    if m.discrete:
        TT = np.round(TT)
        X = np.minimum(X, TT)
        tx = np.where(X > 0, np.maximum(np.round(tx), X), 0.0)
    return X, tx, TT


@pytest.mark.parametrize("name", MODELS)
def test_p_alive_and_survival_are_probabilities(name, fitted):
    m, th = get_model(name), fitted(name).theta
    x, t_x, T = _histories(m)
    pa = m.p_alive(th, x, t_x, T)
    assert pa.shape == x.shape and np.all(np.isfinite(pa)) and np.all((pa >= 0) & (pa <= 1))
    t = np.array([0.0, 0.5, 1.0, 5.0, 26.0, 104.0, 1000.0])
    S = m.survival_given_alive(th, t[None, :], x[:, None], t_x[:, None], T[:, None])
    S = np.broadcast_to(S, (len(x), len(t)))
    assert np.all(np.isfinite(S)) and np.all((S >= 0) & (S <= 1 + 1e-12))
    np.testing.assert_allclose(S[:, 0], 1.0, rtol=0, atol=1e-12)
    assert np.all(np.diff(S, axis=1) <= 1e-12), "survival must not increase with t"
    F = m.p_alive_future(th, t, x, t_x, T)
    np.testing.assert_allclose(F[:, 0], pa, rtol=1e-12)
    np.testing.assert_allclose(F, pa[:, None] * S, rtol=1e-12)


# ---------------------------------------------------------------------------
# expectations against the model's own simulator
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_unconditional_expectation_against_simulation(name, fitted):
    m, th = get_model(name), fitted(name).theta
    ts = [13.0, 39.0, 78.0]
    for k, t in enumerate(ts):
        x = m.simulate_summary(th, np.full(20_000, t), np.random.default_rng(10 + k))["x"].to_numpy()
        se = x.std(ddof=1) / np.sqrt(len(x))
        assert abs(x.mean() - float(m.expected_purchases_new(th, t))) < Z * se, (t, x.mean(), se)


@pytest.mark.parametrize("name", MODELS)
def test_conditional_expectation_against_simulation(name, fitted, data):
    """Simulated customers with CDNOW ages and a 39-week holdout: E[x_star | x, t_x, T] from the model
    against the simulated x_star, overall and by calibration frequency (FHL 2005a, Figure 4).  With 100,000
    customers one standard error of the overall mean is about 1% of the mean holdout count, so a bias of
    about 4% fails."""
    m, th = get_model(name), fitted(name).theta
    T = _ages(data, m, 100_000)
    t_star = 39.0
    s = m.simulate_summary(th, T, np.random.default_rng(2), t_star=t_star)
    x, t_x, TT, x_star = (s[c].to_numpy() for c in ("x", "t_x", "T", "x_star"))
    E = m.expected_purchases(th, t_star, x, t_x, TT)
    G, inv, h = m.expected_purchases_parts(th, [t_star], x, t_x, TT)
    np.testing.assert_allclose(G[inv, 0] * h, E, rtol=1e-10)        # the factorised form is the same
    resid = x_star - E
    for lo, hi in [(0, np.inf), (0, 0), (1, 1), (2, 3), (4, 7), (8, np.inf)]:
        g = (x >= lo) & (x <= hi)
        se = resid[g].std(ddof=1) / np.sqrt(g.sum())
        assert abs(resid[g].mean()) < Z * se, (lo, hi, resid[g].mean(), se, g.sum())


@pytest.mark.parametrize("name", MODELS)
def test_p_alive_future_bounds_later_purchases(name, fitted, data):
    """Only customers alive at T + t buy after T + t: P(a purchase in (T + t, T + t + u] | data) <=
    P(alive at T + t | data).  Checked on simulated customers by calibration frequency: the number who buy
    in that window must not exceed the expected number alive by more than 4 standard errors.  The window
    (u = 2000 time units) is long enough that an alive repeat buyer of the BG family buys again in it almost
    surely, so there the bound is nearly tight and an underestimated P(alive) fails."""
    m, th = get_model(name), fitted(name).theta
    T = _ages(data, m, 60_000)
    u = 2000.0
    rng = np.random.default_rng(4)
    counts, times = m.draw_purchases(th, m.draw_latent(th, len(T), rng), T + 13.0 + u, rng)
    cust = np.repeat(np.arange(len(T)), counts)
    calib = times <= T[cust]
    x = np.bincount(cust[calib], minlength=len(T)).astype(float)
    t_x = np.zeros(len(T))
    np.maximum.at(t_x, cust[calib], times[calib])
    for t in (0.0, 13.0):
        later = np.bincount(cust[times > T[cust] + t], minlength=len(T)) > 0
        P = m.p_alive_future(th, t, x, t_x, T)
        for lo, hi in [(0, 0), (1, 2), (3, np.inf)]:
            g = (x >= lo) & (x <= hi)
            se = np.sqrt(np.sum(P[g] * (1 - P[g]))) + 1.0
            assert later[g].sum() <= P[g].sum() + Z * se, (t, lo, hi, later[g].sum(), P[g].sum())


@pytest.mark.parametrize("name", MODELS)
def test_p_alive_future_is_the_expected_later_p_alive(name, fitted, data):
    """Tower property: P(alive at T + t | history at T) = E[P(alive at T + t | history at T + t) | history at T].

    On simulated customers (histories at T and, from the same paths, at T + t), the per-customer difference
    p_alive(history at T + t) - p_alive_future(t; history at T) has mean 0, overall and by calibration
    frequency (4 standard errors of the mean): survival_given_alive and p_alive against the simulator,
    two-sided."""
    m, th = get_model(name), fitted(name).theta
    T = _ages(data, m, 30_000)
    rng = np.random.default_rng(5)
    for t in (4.0, 26.0):
        counts, times = m.draw_purchases(th, m.draw_latent(th, len(T), rng), T + t, rng)
        cust = np.repeat(np.arange(len(T)), counts)

        def history(end):
            keep = times <= end[cust]
            x = np.bincount(cust[keep], minlength=len(T)).astype(float)
            t_x = np.zeros(len(T))
            np.maximum.at(t_x, cust[keep], times[keep])
            return x, t_x

        x, t_x = history(T)
        x2, t_x2 = history(T + t)
        d = m.p_alive(th, x2, t_x2, T + t) - m.p_alive_future(th, t, x, t_x, T)
        for lo, hi in [(0, np.inf), (0, 0), (1, 2), (3, np.inf)]:
            g = (x >= lo) & (x <= hi)
            se = d[g].std(ddof=1) / np.sqrt(g.sum())
            assert abs(d[g].mean()) < Z * se, (t, lo, hi, d[g].mean(), se)


# ---------------------------------------------------------------------------
# parameter recovery
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_parameter_recovery(name, fitted, data):
    """Fitting a summary simulated at the truth recovers it within 4 standard errors."""
    m, truth = get_model(name), fitted(name)
    T = _ages(data, m, 20_000)
    s = m.simulate_summary(truth.theta, T, np.random.default_rng(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = fit_model(name, s)
    for k in m.param_names:
        if k in m.integer_params:
            assert f.params[k] == truth.params[k], k
        else:
            z = (f.params[k] - truth.params[k]) / f.se[k]
            assert abs(z) < Z, (k, f.params[k], truth.params[k], f.se[k])
