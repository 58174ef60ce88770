"""Tests of helpers.value: CLV (vs lifetimes), bootstrap, P(alive) history, tracking."""

import numpy as np
import pandas as pd
import pytest

from helpers.models import _cond_expected, fit_gamma_gamma, fit_model
from helpers.summary import repeat_transactions_by_period
from helpers.value import (
    DAYS_PER_MONTH,
    bootstrap,
    clv,
    customer_equity,
    expected_tracking,
    holdout_errors,
    lifetimes_days_per_month,
    naive_baseline_holdout,
    p_alive_history,
)


@pytest.fixture(scope="module")
def data(cdnow_sample, paper_split):
    return cdnow_sample.transactions, paper_split


@pytest.fixture(scope="module")
def fits(data):
    _, ch = data
    return fit_model("bgnbd", ch, time_unit="W"), fit_gamma_gamma(ch)


def _lifetimes_pair(f, g, cls_name="BetaGeoFitter"):
    import lifetimes

    lf = getattr(lifetimes, cls_name)()
    lf.params_ = f.params.copy()
    lf.predict = lf.conditional_expected_number_of_purchases_up_to_time
    lg = lifetimes.GammaGammaFitter()
    lg.params_ = g.params.rename({"gamma": "v"})
    return lf, lg


@pytest.mark.parametrize("freq", ["W", "D"])
def test_clv_equals_lifetimes_with_matching_assumptions(data, fits, freq):
    """lifetimes' customer_lifetime_value steps 4.345 time units per month for freq="W" and
    30 for freq="D" (a daily model with 30-day months).  With the same month length our CLV is
    identical."""
    _, ch = data
    f, g = fits
    lf, lg = _lifetimes_pair(f, g)
    ref = lg.customer_lifetime_value(lf, ch["x"], ch["t_x"], ch["T"], ch["m_x"], time=12,
                                     discount_rate=0.01, freq=freq)
    if freq == "W":
        ours = clv(f, g, ch, horizon_months=12, monthly_discount_rate=0.01, time_unit="W",
                   days_per_month=lifetimes_days_per_month("W"))
    else:
        # lifetimes' default freq="D" reads the model's time axis as days with 30-day months;
        # reproduce it by declaring a daily model and days_per_month=30
        f_daily = fit_model("bgnbd", ch, time_unit="D")
        lf, lg = _lifetimes_pair(f_daily, g)
        ref = lg.customer_lifetime_value(lf, ch["x"], ch["t_x"], ch["T"], ch["m_x"], time=12,
                                         discount_rate=0.01, freq="D")
        ours = clv(f_daily, g, ch, time_unit="D", days_per_month=30)
        assert lifetimes_days_per_month("D") == 30
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-9)
    assert (ours.index == ch.index).all()


def test_clv_equals_lifetimes_pareto(data):
    _, ch = data
    f = fit_model("pareto_nbd", ch, time_unit="W")
    g = fit_gamma_gamma(ch)
    lf, lg = _lifetimes_pair(f, g, "ParetoNBDFitter")
    ref = lg.customer_lifetime_value(lf, ch["x"], ch["t_x"], ch["T"], ch["m_x"], time=6,
                                     discount_rate=0.02, freq="W")
    ours = clv(f, g, ch, horizon_months=6, monthly_discount_rate=0.02, time_unit="W",
               days_per_month=4.345 * 7)
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-9)


def test_clv_month_is_explicit_in_model_units(data, fits):
    # undiscounted CLV telescopes to margin * E[spend] * E[X(t_H)], t_H = 12 months in weeks
    _, ch = data
    f, g = fits
    c0 = clv(f, g, ch, horizon_months=12, monthly_discount_rate=0.0, margin=0.3, time_unit="W")
    t_H = 12 * DAYS_PER_MONTH / 7
    assert t_H == pytest.approx(365.25 / 7)
    expected = 0.3 * g.expected_spend(ch["x"], ch["m_x"]) * f.expected_purchases(t_H, ch)
    np.testing.assert_allclose(c0.to_numpy(), expected, rtol=1e-10)
    # discounting lowers value; longer horizons raise it
    c1 = clv(f, g, ch, horizon_months=12, monthly_discount_rate=0.01, time_unit="W")
    c2 = clv(f, g, ch, horizon_months=24, monthly_discount_rate=0.01, time_unit="W")
    assert (c1.to_numpy() < c0.to_numpy() / 0.3).all() and (c2.to_numpy() > c1.to_numpy()).all()
    assert customer_equity(c1) == pytest.approx(c1.sum())


def test_clv_unique_rows_equal_per_customer_loop(data, fits):
    _, ch = data
    f, g = fits
    sub = ch.iloc[:40]
    c = clv(f, g, sub, horizon_months=3, monthly_discount_rate=0.01, time_unit="W")
    step = DAYS_PER_MONTH / 7
    for cid, row in sub.iterrows():
        e = [0.0] + [float(_cond_expected("bgnbd", f.theta, m * step, row.x, row.t_x, row["T"])) for m in (1, 2, 3)]
        spend = float(g.expected_spend(row.x, row.m_x))
        val = sum(spend * (e[m] - e[m - 1]) / 1.01 ** m for m in (1, 2, 3))
        assert c[cid] == pytest.approx(val, rel=1e-12)


def test_clv_checks_units_and_columns(data, fits):
    _, ch = data
    f, g = fits
    with pytest.raises(ValueError, match="time unit"):
        clv(f, g, ch, time_unit="D")
    with pytest.raises(ValueError, match="m_x"):
        clv(f, g, ch.drop(columns="m_x"))
    with pytest.raises(ValueError, match="horizon_months"):
        clv(f, g, ch, horizon_months=0)


def test_bootstrap_intervals(data):
    _, ch = data
    b1 = bootstrap(ch, model="bgnbd", n_boot=25, seed=4)
    b2 = bootstrap(ch, model="bgnbd", n_boot=25, seed=4)
    pd.testing.assert_frame_equal(b1.params, b2.params)
    assert b1.n_boot == 25 and b1.n_failed == 0 and b1.level == 0.90
    assert b1.param_draws.shape == (25, 7)
    p = b1.params
    assert (p["lower"] <= p["estimate"]).all() and (p["estimate"] <= p["upper"]).all()
    # bootstrap spread comparable with the Hessian standard errors (r: 0.0126)
    assert p.loc[("BG/NBD", "r"), "se"] == pytest.approx(0.0126, rel=0.5)
    eq = b1.equity
    assert eq["lower"] < eq["estimate"] < eq["upper"]
    f = fit_model("bgnbd", ch, time_unit="W")
    assert eq["estimate"] == pytest.approx(customer_equity(clv(f, fit_gamma_gamma(ch), ch)), rel=1e-6)
    assert list(b1.clv.columns) == ["clv", "lower", "upper"] and (b1.clv.index == ch.index).all()
    assert (b1.clv["lower"] <= b1.clv["upper"]).all()
    assert not bootstrap(ch, n_boot=5, seed=5).params.equals(bootstrap(ch, n_boot=5, seed=6).params)


def test_p_alive_history(fits):
    f, _ = fits
    dates = ["1997-01-05", "1997-02-10", "1997-02-10", "1997-05-01"]
    h = p_alive_history(f, dates, end="1997-09-30", time_unit="W", step_days=7)
    assert list(h.columns) == ["date", "p_alive", "x", "t_x", "T"]
    assert h["date"].is_monotonic_increasing
    assert h["date"].iloc[0] == pd.Timestamp("1997-01-05") and h["date"].iloc[-1] == pd.Timestamp("1997-09-30")
    # BG/NBD: certainly alive before the first repeat purchase
    assert (h.loc[h["x"] == 0, "p_alive"] == 1.0).all()
    assert h["x"].max() == 2                    # two repeat purchase days (same-day purchases count once)
    last = h.iloc[-1]
    assert last["p_alive"] == pytest.approx(float(f.p_alive(2, last["t_x"], last["T"])))
    assert last["t_x"] == pytest.approx((pd.Timestamp("1997-05-01") - pd.Timestamp("1997-01-05")).days / 7)
    # P(alive) decays between purchases
    after = h[h["date"] > pd.Timestamp("1997-05-01")]["p_alive"].to_numpy()
    assert (np.diff(after) < 0).all()


def test_expected_tracking(data, fits):
    tx, ch = data
    f, _ = fits
    tr = expected_tracking(f, ch["first_purchase"], start="1997-01-01", n_periods=78, period_days=7, time_unit="W")
    assert len(tr) == 78
    assert tr["expected_cumulative"].is_monotonic_increasing
    # a single cohort reduces to n * E[X(t)]
    one = expected_tracking(f, [pd.Timestamp("1997-01-01")] * 10, n_periods=5)
    np.testing.assert_allclose(one["expected_cumulative"], 10 * f.expected_purchases_new(np.arange(1, 6.0)))
    # FHL (2005a) Figure 3: the model tracks the actual cumulative repeat purchases closely
    actual = repeat_transactions_by_period(tx, start="1997-01-01", end="1998-06-30")
    assert tr["expected_cumulative"].iloc[-1] == pytest.approx(actual["cumulative"].iloc[-1], rel=0.06)


def test_naive_baseline_and_errors(data, fits):
    _, ch = data
    f, _ = fits
    naive = naive_baseline_holdout(ch)
    assert naive.iloc[0] == pytest.approx(ch["x"].iloc[0] / ch["T"].iloc[0] * ch["t_star"].iloc[0])
    e_model = holdout_errors(ch["x_star"], f.expected_purchases(ch["t_star"].iloc[0], ch))
    e_naive = holdout_errors(ch["x_star"], naive)
    assert set(e_model) == {"mae", "rmse", "bias", "n"}
    assert e_model["rmse"] < e_naive["rmse"]     # the model beats the naive forecast
    assert holdout_errors([1, 2], [2, 2]) == {"mae": 0.5, "rmse": np.sqrt(0.5), "bias": 0.5, "n": 2}
