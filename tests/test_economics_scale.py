"""Tests of the fast form of the retention lever on a large base (helpers.economics).

A base with many distinct ages per ``x`` (several cohorts, continuous or daily
ages) is evaluated on Chebyshev nodes in ``T`` with aggregated weights
(``_lever_rows``, ``_lever_totals``).  Each fast result is compared with the
direct form: the per-customer expectations of the model's
``lever_expectations`` (through :func:`expected_purchases_lever` and
:func:`alive_probability_lever`), summed with the customers' weights.  The
tolerance, 1e-11 relative, is the sum's rounding (thousands of positive terms
added in another order, ~1e-14) with room; the interpolation error bound is
~1e-18 and the runtime check rejects errors above 1e-12, so a wrong node,
weight or piece fails by orders of magnitude.
"""

import numpy as np
import pandas as pd
import pytest

from helpers import age_interpolation as ai
from helpers import economics as ec
from helpers.models import fit_bgnbd, fit_gamma_gamma, get_model
from helpers.summary import rfm_summary

LEVER_THETA = {"bgnbd": (0.243, 4.414, 0.793, 2.426), "mbgnbd": (0.243, 4.414, 0.793, 2.426),
               "pareto_nbd": (0.553, 10.578, 0.606, 11.669)}
WEEKS_PER_MONTH = 365.25 / 12 / 7


def simulated_base(name, n=20_000, seed=11):
    """Customers of several cohorts: ages continuous on (2, 160) weeks (two interpolation pieces), a quarter on a
    daily grid (repeated ages), a few acquired on the last day (T = 0, evaluated directly)."""
    m, theta = get_model(name), LEVER_THETA[name]
    rng = np.random.default_rng(seed)
    T = rng.uniform(2.0, 160.0, size=n)
    T[: n // 4] = np.round(T[: n // 4] * 7) / 7
    T[:5] = 0.0
    latent = m.draw_latent(theta, n, rng)
    counts, times = m.draw_purchases(theta, latent, T, rng)
    t_x = np.zeros(n)
    np.maximum.at(t_x, np.repeat(np.arange(n), counts), times)
    return m, theta, counts.astype(float), t_x, T


def direct_totals(model, t, delta, mode, x, t_x, T, spend):
    """Sum over customers of spend x E[X(t)] and of P(alive at t), from the per-customer expectations."""
    kw = dict(delta=delta, mode=mode, x=x, t_x=t_x, T=T, n_nodes=32, time_unit="W")
    E = ec.expected_purchases_lever(model, t, **kw)
    S = ec.alive_probability_lever(model, t, **kw)
    return spend @ E, np.ones(len(x)) @ S


def test_lagrange_basis_reproduces_polynomials_and_its_nodes():
    points, bary = ai.chebyshev_points(ai.T_POINTS)
    u = np.concatenate([np.linspace(-1, 1, 57), points[[0, 7, 31]]])
    L = ai.lagrange(u, points, bary)
    np.testing.assert_allclose(L.sum(axis=1), 1.0, rtol=0, atol=1e-13)
    for deg in (1, 5, 17, ai.T_POINTS - 1):
        p = np.polynomial.chebyshev.Chebyshev(np.random.default_rng(deg).normal(size=deg + 1))
        np.testing.assert_allclose(L @ p(points), p(u), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(L[-3:], np.eye(ai.T_POINTS)[[0, 7, 31]])     # exactly at the nodes


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd", "pareto_nbd"])
@pytest.mark.parametrize("delta, mode", [(0.0, "dropout"), (0.2, "dropout"), (0.05, "retention"), (1.0, "dropout")])
def test_fast_lever_totals_equal_the_per_customer_sums(name, delta, mode):
    m, theta, x, t_x, T = simulated_base(name)
    spend = np.random.default_rng(5).gamma(4.0, 10.0, size=len(x))
    t = ec.month_grid(24, "W")
    pa = m.p_alive(theta, x, t_x, T)
    (xk, Tk), inv, _ = ec.unique_rows(x, T)
    spk = np.bincount(inv, weights=pa * spend, minlength=len(xk))
    ck = np.bincount(inv, weights=pa, minlength=len(xk))
    fast, checks = ec._lever_rows(xk, Tk, spk, ck)
    assert len(fast[0]) < len(xk) / 4 and checks              # the base was compressed, and is checked
    rows = ec._BaseRows(direct=(xk, Tk, spk, ck), fast=fast, checks=checks, n=len(x))
    sl, c = ec.dropout_map(delta, mode)
    E, S = ec._lever_totals(m, theta, t, sl, c, rows, 32, WEEKS_PER_MONTH)
    on_nodes = m.lever_totals(theta, t, sl, c, fast[0], fast[1], fast[1], fast[2], fast[3], 32,
                              period=WEEKS_PER_MONTH, p_alive=np.ones(len(fast[0])))
    np.testing.assert_array_equal(E, on_nodes[0])            # the check passed: the interpolated rows were used
    E_ref, S_ref = direct_totals((m, theta), t, delta, mode, x, t_x, T, spend)
    np.testing.assert_allclose(E, E_ref, rtol=1e-11, atol=1e-11 * E_ref[-1])
    np.testing.assert_allclose(S, S_ref, rtol=1e-11)


@pytest.mark.parametrize("name", ["bgnbd", "pareto_nbd"])
def test_retention_effect_on_a_large_base_equals_the_direct_form(name):
    """The public path (retention_effect with a constant value per purchase) on the simulated base."""
    m, theta, x, t_x, T = simulated_base(name, n=12_000, seed=2)
    base = pd.DataFrame({"x": x, "t_x": t_x, "T": T})
    eff = ec.retention_effect((m, theta), 2.5, base, delta=0.1, mode="retention", margin=0.3,
                              monthly_discount_rate=0.01, horizon_months=18, time_unit="W")
    t = ec.month_grid(18, "W")
    disc = ec.discount_factors(18, 0.01)
    for delta, equity in ((0.0, eff.equity_base), (0.1, eff.equity_lever)):
        E, S = direct_totals((m, theta), t, delta, "retention", x, t_x, T, np.full(len(x), 2.5))
        assert equity == pytest.approx(0.3 * np.diff(E) @ disc, rel=1e-11)
    assert eff.monthly["alive_lever"].iloc[-1] == pytest.approx(S[-1], rel=1e-11)


def test_cdnow_effect_with_gamma_gamma_equals_the_direct_form(cdnow_sample):
    """CDNOW (ages on a daily grid over 12 weeks: the low x have more distinct ages than nodes) with the
    customers' conditional expected spend: the fast population gives the per-customer result."""
    s = rfm_summary(cdnow_sample.transactions, time_unit="W")
    f, g = fit_bgnbd(s, time_unit="W"), fit_gamma_gamma(s, warn=False)
    rows = ec._population(f, g, s, 24, "W", ec.DAYS_PER_MONTH).rows
    assert len(rows.fast[0]) < len(rows.direct[0]) and rows.checks     # interpolated on CDNOW too
    eff = ec.retention_effect(f, g, s, delta=0.05, mode="retention", horizon_months=24, time_unit="W")
    x, t_x, T = (s[c].to_numpy(float) for c in ("x", "t_x", "T"))
    spend = np.asarray(g.expected_spend(x, s["m_x"].to_numpy(float)), dtype=float)
    t, disc = ec.month_grid(24, "W"), ec.discount_factors(24, 0.01)
    for delta, equity in ((0.0, eff.equity_base), (0.05, eff.equity_lever)):
        E, _ = direct_totals(f, t, delta, "retention", x, t_x, T, spend)
        assert equity == pytest.approx(0.3 * np.diff(E) @ disc, rel=1e-11)


def test_a_failed_check_falls_back_to_the_direct_evaluation(monkeypatch):
    """With 4 nodes the interpolant is visibly wrong; the check catches it and every (x, T) is evaluated."""
    m, theta, x, t_x, T = simulated_base("bgnbd", n=6000)
    pa = m.p_alive(theta, x, t_x, T)
    (xk, Tk), inv, _ = ec.unique_rows(x, T)
    w = np.bincount(inv, weights=pa, minlength=len(xk))
    monkeypatch.setattr(ai, "T_POINTS", 4)
    fast, checks = ec._lever_rows(xk, Tk, w, w)
    rows = ec._BaseRows(direct=(xk, Tk, w, w), fast=fast, checks=checks, n=len(x))
    t, (s, c) = ec.month_grid(24, "W"), ec.dropout_map(0.1, "dropout")
    one = np.ones(len(fast[0]))
    bad = m.lever_totals(theta, t, s, c, fast[0], fast[1], fast[1], fast[2], fast[3], 32, p_alive=one)
    direct = m.lever_totals(theta, t, s, c, xk, Tk, Tk, w, w, 32, p_alive=np.ones(len(xk)))
    assert np.max(np.abs(bad[0] - direct[0]) / direct[0][-1]) > 1e-8       # a bad interpolant to catch
    got = ec._lever_totals(m, theta, t, s, c, rows, 32, 1.0)
    np.testing.assert_array_equal(got[0], direct[0])
    np.testing.assert_array_equal(got[1], direct[1])


def test_populations_at_two_horizons_share_the_base_rows():
    m, theta, x, t_x, T = simulated_base("bgnbd", n=4000)
    base = pd.DataFrame({"x": x, "t_x": t_x, "T": T})
    short = ec._population((m, theta), 1.0, base, 6, "W", ec.DAYS_PER_MONTH)
    long = ec._population((m, theta), 1.0, base.copy(), 24, "W", ec.DAYS_PER_MONTH)
    assert short is not long and short.rows is long.rows
    for key in ((0.0, "dropout"), (0.1, "retention")):
        np.testing.assert_allclose(short.totals(*key)[0], long.totals(*key)[0][:7], rtol=1e-13)


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd", "pareto_nbd"])
def test_per_customer_expectations_interpolated_in_age_equal_the_direct_ones(name, monkeypatch):
    """The simulation check's per-customer expectations (continuous ages): interpolated equals direct, and a
    forced check failure gives the direct values."""
    m, theta, x, t_x, T = simulated_base(name, n=8000, seed=7)
    t = np.array([4.3, 52.0])
    verdicts = []
    close = ai.close
    monkeypatch.setattr(ai, "close", lambda *a: verdicts.append(close(*a)) or verdicts[-1])
    for delta, mode in ((0.0, "dropout"), (0.1, "dropout"), (0.05, "retention")):
        sl, c = ec.dropout_map(delta, mode)
        fast = ec._lever_expectations_rows(m, theta, t, sl, c, x, t_x, T, period=WEEKS_PER_MONTH)
        ref = m.lever_expectations(theta, t, sl, c, x, t_x, T, 64, period=WEEKS_PER_MONTH)
        for a, b in zip(fast, ref):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    assert verdicts and all(verdicts)                     # the interpolated values were the ones compared
    monkeypatch.setattr(ai, "T_POINTS", 4)
    forced = ec._lever_expectations_rows(m, theta, t, sl, c, x, t_x, T, period=WEEKS_PER_MONTH)
    for a, b in zip(forced, ref):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_lever_simulation_check_on_continuous_ages_is_unchanged():
    """The check's analytic side, now interpolated in the continuous ages, equals the per-row formula's mean."""
    m, theta = get_model("bgnbd"), LEVER_THETA["bgnbd"]
    out = ec.lever_simulation_check((m, theta), 0.1, "dropout", t=52.0, n_customers=20_000, ages=(5.0, 150.0))
    rng = np.random.default_rng(0)                      # the check's own draws, repeated
    latent = m.draw_latent(theta, 20_000, rng)
    T = rng.uniform(5.0, 150.0, size=20_000)
    counts, times = m.draw_purchases(theta, latent, T, rng)
    t_x = np.zeros(len(T))
    np.maximum.at(t_x, np.repeat(np.arange(len(T)), counts), times)
    E0, E1 = (ec.expected_purchases_lever((m, theta), [52.0], d, "dropout", counts.astype(float), t_x, T)[:, 0]
              for d in (0.0, 0.1))
    assert out["analytic_change"] == pytest.approx(np.mean(E1 - E0), rel=1e-11)
    assert out["analytic_base"] == pytest.approx(np.mean(E0), rel=1e-12)


def test_population_cache_tells_bases_apart():
    m, theta, x, t_x, T = simulated_base("bgnbd", n=3000)
    base = pd.DataFrame({"x": x, "t_x": t_x, "T": T})
    pop = ec._population((m, theta), 1.0, base, 12, "W", ec.DAYS_PER_MONTH)
    assert ec._population((m, theta), 1.0, base.copy(), 12, "W", ec.DAYS_PER_MONTH) is pop
    changed = base.copy()
    changed.iloc[17, 2] += 1.0 / 7                     # one customer a day older
    other = ec._population((m, theta), 1.0, changed, 12, "W", ec.DAYS_PER_MONTH)
    assert other is not pop and other.rows is not pop.rows
