"""P(alive) in the future and month-by-month expectations (helpers.value.p_alive_future, monthly_expectations).

Checked three ways: consistency (t = 0 is P(alive), rows of monthly purchases
sum to E[X(t_H)], unique-row evaluation equals per-customer evaluation),
the closed form against Gauss-Jacobi quadrature of the Beta integral, and
against simulated customers whose true alive status is known.
"""

import numpy as np
import pandas as pd
import pytest
from scipy.special import roots_jacobi

from helpers.models import MODELS, FittedModel
from helpers.simulate import simulate_bgnbd
from helpers.value import DAYS_PER_MONTH, monthly_expectations, p_alive_future

CDNOW = {
    "bgnbd": dict(r=0.243, alpha=4.414, a=0.793, b=2.426),
    "mbgnbd": dict(r=0.243, alpha=4.414, a=0.793, b=2.426),
    "pareto_nbd": dict(r=0.553, alpha=10.578, s=0.606, beta=11.669),
}


def model(name, params=None, time_unit="W"):
    """A FittedModel with given (true) parameters."""
    params = CDNOW[name] if params is None else params
    names = list(MODELS[name])
    nan = pd.Series(np.nan, index=names)
    return FittedModel(name=name, params=pd.Series([params[k] for k in names], index=names), se=nan,
                       ci95=pd.DataFrame({"lower": nan, "upper": nan}), cov=pd.DataFrame(np.nan, names, names),
                       log_likelihood=np.nan, aic=np.nan, bic=np.nan, n_customers=0, n_unique=0,
                       converged=True, time_unit=time_unit)


def small_summary():
    return pd.DataFrame({"x": [0, 0, 1, 2, 2, 5, 5, 12, 1, 0],
                         "t_x": [0, 0, 3.0, 20.0, 38.0, 30.0, 30.0, 36.5, 3.0, 0],
                         "T": [39.0, 20.0, 39.0, 39.0, 39.0, 39.0, 39.0, 39.0, 39.0, 39.0]},
                        index=[f"c{i}" for i in range(10)])


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd", "pareto_nbd"])
def test_t0_is_p_alive_and_survival_decreases(name):
    m, s = model(name), small_summary()
    np.testing.assert_allclose(p_alive_future(m, 0.0, s), m.p_alive(s), rtol=1e-12)
    grid = np.array([0.0, 1.0, 5.0, 20.0, 100.0, 1000.0])
    P = p_alive_future(m, grid, s)
    assert P.shape == (len(s), len(grid))
    np.testing.assert_allclose(P[:, 0], m.p_alive(s), rtol=1e-12)
    assert np.all(np.diff(P, axis=1) <= 1e-15) and np.all(P >= 0) and np.all(np.isfinite(P))
    # identical customers (rows c5, c6 and c2, c8) get identical answers
    np.testing.assert_array_equal(P[5], P[6])
    np.testing.assert_array_equal(P[2], P[8])


@pytest.mark.parametrize("name, extra", [("bgnbd", 0.0), ("mbgnbd", 1.0)])
def test_closed_form_matches_gauss_jacobi(name, extra):
    """S(t) = E_p[(1 + p t/(alpha+T))^-(r+x)], p ~ Beta(a, b + x [+1]), by quadrature."""
    m, s = model(name), small_summary()
    r, alpha, a, b = m.theta
    for t in (0.5, 4.35, 52.0, 400.0):
        P = p_alive_future(m, t, s)
        for i, (x, T) in enumerate(zip(s["x"], s["T"])):
            # Beta(a, b') on [0,1] -> Jacobi weight (1-u)^(b'-1) (1+u)^(a-1) on [-1,1]
            u, w = roots_jacobi(80, b + x + extra - 1.0, a - 1.0)
            p = (u + 1.0) / 2.0
            surv = np.sum(w * (1.0 + p * t / (alpha + T)) ** (-(r + x))) / np.sum(w)
            assert P[i] == pytest.approx(m.p_alive(s)[i] * surv, rel=1e-10)


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd"])
def test_bg_family_against_simulation(name):
    """Predicted number alive t weeks after the window equals the simulated count within MC error."""
    sim = simulate_bgnbd(60_000, **CDNOW[name], observation_days=273, acquisition_days=84, seed=11, model=name)
    c = sim.customers
    m = model(name)
    rng = np.random.default_rng(12)
    t = 13.0
    # memoryless: from T on, an alive customer's purchases are Poisson(lam t); the J-th repeat purchase ends it
    alive_T = c["x"].to_numpy() < c["J"].to_numpy()
    more = rng.poisson(c["lam"].to_numpy() * t)
    alive_Tt = alive_T & (c["x"].to_numpy() + more < c["J"].to_numpy())
    P = p_alive_future(m, np.array([0.0, t]), sim.summary())
    for k, truth in enumerate([alive_T, alive_Tt]):
        p = P[:, k]
        sd = np.sqrt(np.sum(p * (1 - p)))
        assert abs(truth.sum() - p.sum()) < 4 * sd, (k, truth.sum(), p.sum(), sd)
        # also within frequency classes
        for lo, hi in [(0, 0), (1, 1), (2, 3), (4, 1000)]:
            g = (c["x"] >= lo).to_numpy() & (c["x"] <= hi).to_numpy()
            sd_g = np.sqrt(np.sum(p[g] * (1 - p[g])))
            assert abs(truth[g].sum() - p[g].sum()) < 4 * sd_g + 1, (k, lo, truth[g].sum(), p[g].sum())


def test_pareto_nbd_against_simulation():
    r, alpha, s, beta = (CDNOW["pareto_nbd"][k] for k in ("r", "alpha", "s", "beta"))
    rng = np.random.default_rng(3)
    n, T, t = 60_000, 39.0, 13.0
    lam = rng.gamma(r, 1 / alpha, n)
    mu = rng.gamma(s, 1 / beta, n)
    tau = rng.exponential(1 / mu)
    active = np.minimum(tau, T)
    x = rng.poisson(lam * active)
    # last of x uniform arrival times on (0, active)
    t_x = np.where(x > 0, active * rng.uniform(size=n) ** (1 / np.maximum(x, 1)), 0.0)
    summ = pd.DataFrame({"x": x.astype(float), "t_x": t_x, "T": T})
    P = p_alive_future(model("pareto_nbd"), np.array([0.0, t]), summ)
    for k, truth in enumerate([tau > T, tau > T + t]):
        p = P[:, k]
        sd = np.sqrt(np.sum(p * (1 - p)))
        assert abs(truth.sum() - p.sum()) < 4 * sd, (k, truth.sum(), p.sum(), sd)


def test_pareto_nbd_rate_identity():
    """Pareto/NBD: d/dt E[X(t) | data] = E[lambda | alive] * P(alive at T+t) (lambda, mu independent)."""
    m, s = model("pareto_nbd"), small_summary()
    r, alpha, _, _ = m.theta
    h = 1e-4
    for t in (1.0, 10.0, 50.0):
        deriv = (m.expected_purchases(t + h, s) - m.expected_purchases(t - h, s)) / (2 * h)
        rate = (r + s["x"].to_numpy()) / (alpha + s["T"].to_numpy())
        np.testing.assert_allclose(deriv, rate * p_alive_future(m, t, s), rtol=1e-6)


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd", "pareto_nbd"])
def test_monthly_expectations_consistency(name):
    m, s = model(name), small_summary()
    H = 12
    purch, alive = monthly_expectations(m, s, horizon_months=H, time_unit="W")
    assert purch.shape == alive.shape == (len(s), H)
    assert purch.index.equals(s.index) and list(purch.columns) == list(range(1, H + 1))
    t_H = H * DAYS_PER_MONTH / 7
    np.testing.assert_allclose(purch.sum(axis=1), m.expected_purchases(t_H, s), rtol=1e-9)
    assert (purch.to_numpy() >= 0).all()
    start = monthly_expectations(m, s, H, "W", alive="start")[1]
    end = monthly_expectations(m, s, H, "W", alive="end")[1]
    np.testing.assert_allclose(start[1], m.p_alive(s), rtol=1e-12)
    np.testing.assert_allclose(end[H], p_alive_future(m, t_H, s), rtol=1e-12)
    # the month's mean lies between its start and end values
    assert (alive.to_numpy() <= start.to_numpy() + 1e-12).all()
    assert (alive.to_numpy() >= end.to_numpy() - 1e-12).all()
    # unique-row evaluation equals evaluating every customer on its own
    for i in range(len(s)):
        one = monthly_expectations(m, s.iloc[[i]], H, "W")
        np.testing.assert_allclose(one[0].to_numpy()[0], purch.to_numpy()[i], rtol=1e-12)
        np.testing.assert_allclose(one[1].to_numpy()[0], alive.to_numpy()[i], rtol=1e-12)


def test_monthly_mean_alive_is_the_integral():
    """The 'mean' P(alive) of month 1 equals a fine trapezoid integral of P(alive at T+s)."""
    m, s = model("bgnbd"), small_summary()
    L = DAYS_PER_MONTH / 7
    grid = np.linspace(0, L, 2001)
    fine = p_alive_future(m, grid, s)
    integral = np.trapezoid(fine, grid, axis=1) / L
    np.testing.assert_allclose(monthly_expectations(m, s, 1, "W")[1][1], integral, rtol=1e-6)


def test_monthly_expectations_checks_time_unit_and_options():
    m, s = model("bgnbd", time_unit="W"), small_summary()
    with pytest.raises(ValueError, match="time unit"):
        monthly_expectations(m, s, 12, time_unit="D")
    with pytest.raises(ValueError, match="alive"):
        monthly_expectations(m, s, 12, "W", alive="middle")
    with pytest.raises(ValueError):
        p_alive_future(m, -1.0, s)
    # days: a daily model with alpha scaled by 7 gives the same months
    pd_ = dict(CDNOW["bgnbd"], alpha=CDNOW["bgnbd"]["alpha"] * 7)
    d = s.assign(t_x=s["t_x"] * 7, T=s["T"] * 7)
    pw, aw = monthly_expectations(m, s, 6, "W")
    pdd, ad = monthly_expectations(model("bgnbd", pd_, "D"), d, 6, "D")
    np.testing.assert_allclose(pw.to_numpy(), pdd.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(aw.to_numpy(), ad.to_numpy(), rtol=1e-9)



def test_monthly_expectations_options_reach_the_result():
    """Mutation survivors: days_per_month, the model's own time unit, the alive frame's index, one node,
    and a 2-D t for p_alive_future."""
    m, s = model("bgnbd", time_unit="W"), small_summary()
    p30, a30 = monthly_expectations(m, s, 3, "W", days_per_month=30.0)
    np.testing.assert_allclose(p30.sum(axis=1), m.expected_purchases(3 * 30.0 / 7, s), rtol=1e-9)
    assert a30.index.equals(s.index) and list(a30.columns) == [1, 2, 3] and a30.columns.name == "month"
    pn, an = monthly_expectations(m, s, 3, time_unit=None)
    pw, aw = monthly_expectations(m, s, 3, "W")
    pd.testing.assert_frame_equal(pn, pw)
    pd.testing.assert_frame_equal(an, aw)
    one = monthly_expectations(m, s, 3, "W", nodes=1)[1]
    np.testing.assert_allclose(one.to_numpy(), aw.to_numpy(), rtol=0.05)
    with pytest.raises(ValueError, match="nodes"):
        monthly_expectations(m, s, 3, "W", nodes=0)
    with pytest.raises(ValueError, match="1-D"):
        p_alive_future(m, np.ones((2, 2)), s)
