"""Cost model and segment rules of helpers.segments on hand-made cases."""

import numpy as np
import pandas as pd
import pytest

from helpers.segments import (
    SEGMENT_ORDER,
    CostModel,
    assign_segments,
    capture_curve,
    discount_factors,
    expected_cost_to_serve,
    realised_net_value,
    rfm_score,
    segment_profile,
    spend_uplift_potential,
    top_share_captured,
)


def test_discount_factors():
    np.testing.assert_allclose(discount_factors(3, 0.1), [1 / 1.1, 1 / 1.21, 1 / 1.331])
    np.testing.assert_array_equal(discount_factors(2, 0.0), [1.0, 1.0])
    with pytest.raises(ValueError):
        discount_factors(0, 0.01)


def test_cost_to_serve_by_hand():
    # one customer: 1 order per month for 2 months, alive with prob 1 then 0.5, no discounting
    orders = np.array([[1.0, 1.0]])
    alive = np.array([[1.0, 0.5]])
    c = CostModel(cost_per_order=2.0, cost_per_active_month=10.0, cost_per_return=4.0)
    cost = expected_cost_to_serve(orders, alive, c, 0.0, return_rate=0.5)
    # orders: 2 * (2 + 0.5*4) = 8; months: 1.5 * 10 = 15
    np.testing.assert_allclose(cost, [23.0])
    disc = expected_cost_to_serve(orders, alive, c, 0.1, return_rate=0.5, extra_cost=1.0)
    expected = (1 / 1.1) * (4 + 10) + (1 / 1.21) * (4 + 5) + 1.0
    np.testing.assert_allclose(disc, [expected])


def test_cost_model_rejects_negative_costs():
    with pytest.raises(ValueError, match="cost_per_order"):
        CostModel(cost_per_order=-1)


def test_cost_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        expected_cost_to_serve(np.ones((2, 3)), np.ones((2, 2)), CostModel(), 0.0)


def make_values(n=100, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.Index([f"c{i}" for i in range(n)])
    net = pd.Series(rng.normal(50, 60, n), index=idx)
    potential = net + rng.exponential(30, n)
    return net, potential


def test_every_customer_exactly_one_segment_and_thresholds():
    net, potential = make_values()
    seg = assign_segments(net, potential, mvc_share=0.2, mgc_share=0.3)
    assert seg.notna().all() and len(seg) == len(net)
    assert set(seg.unique()) <= set(SEGMENT_ORDER)
    # BZ exactly the negative customers
    assert (seg == "BZ").sum() == (net < 0).sum()
    assert ((seg == "BZ") == (net < 0)).all()
    # MVC: 20 customers, and every MVC is worth at least as much as every non-MVC non-BZ
    mvc = seg == "MVC"
    assert mvc.sum() == 20
    assert net[mvc].min() >= net[(~mvc) & (net >= 0)].max()
    # MGC: 30 customers with the largest gaps among the rest
    mgc = seg == "MGC"
    assert mgc.sum() == 30
    gap = potential - net
    rest = seg.isin(["MGC", "Maintain"])
    assert gap[mgc].min() >= gap[rest & ~mgc].max()


def test_customer_with_costs_above_margin_is_bz():
    net = pd.Series({"a": 100.0, "b": -0.01, "c": 5.0})
    seg = assign_segments(net, net + 1, mvc_share=1 / 3, mgc_share=1 / 3)
    assert seg["b"] == "BZ" and seg["a"] == "MVC" and seg["c"] == "MGC"


def test_mvc_excludes_bz_even_when_share_is_large():
    net = pd.Series([-5.0, -1.0, 3.0, 4.0], index=list("abcd"))
    seg = assign_segments(net, net, mvc_share=0.75, mgc_share=0.0)
    assert list(seg) == ["BZ", "BZ", "MVC", "MVC"]


def test_no_growth_gap_means_no_mgc():
    net, _ = make_values()
    seg = assign_segments(net, net.copy(), mvc_share=0.1, mgc_share=0.5)
    assert (seg == "MGC").sum() == 0


def test_invalid_shares():
    net, pot = make_values()
    with pytest.raises(ValueError):
        assign_segments(net, pot, mvc_share=0.7, mgc_share=0.5)


def test_spend_uplift_potential_is_peer_quantile():
    idx = pd.Index(list("abcdefgh"))
    freq = pd.Series([1, 1, 1, 1, 9, 9, 9, 9], index=idx)
    spend = pd.Series([10, 20, 30, 40, 100, 100, 100, 200.0], index=idx)
    pot = spend_uplift_potential(freq, spend, quantile=0.75, n_groups=2)
    q_low = np.quantile([10, 20, 30, 40], 0.75)
    assert pot["a"] == q_low and pot["d"] == 40  # never below own spend
    assert pot["e"] == np.quantile([100, 100, 100, 200], 0.75) and pot["h"] == 200


def test_rfm_score_range_and_order():
    idx = pd.RangeIndex(10)
    rec = pd.Series(np.arange(10, 0, -1), index=idx)  # customer 9 bought most recently
    freq = pd.Series(np.arange(10), index=idx)
    mon = pd.Series(np.arange(10), index=idx)
    s = rfm_score(rec, freq, mon)
    assert s.tolist() == [3, 3, 6, 6, 9, 9, 12, 12, 15, 15]  # quintiles of 10 customers: pairs


def test_capture_curve_and_top_share():
    score = pd.Series([4, 3, 2, 1.0], index=list("abcd"))
    value = pd.Series([50, 30, 20, 0.0], index=list("abcd"))
    cc = capture_curve(score, value, points=5)
    np.testing.assert_allclose(cc["share_value"], [0, 0.5, 0.8, 1.0, 1.0])
    assert top_share_captured(score, value, 0.25) == 0.5
    # ranking by the wrong score captures less
    assert top_share_captured(-score, value, 0.5) == pytest.approx(0.2)


def test_realised_net_value():
    c = CostModel(cost_per_order=2, cost_per_active_month=1, cost_per_return=3)
    v = realised_net_value(pd.Series([100.0]), pd.Series([4.0]), pd.Series([6.0]), 0.3, c, pd.Series([1.0]))
    assert v.iloc[0] == pytest.approx(30 - 8 - 6 - 3)


def test_segment_profile_shares_sum_to_one():
    net, pot = make_values()
    t = pd.DataFrame({"net_clv": net, "segment": assign_segments(net, pot), "x": 1.0})
    prof = segment_profile(t, means=("x",))
    assert prof["customers"].sum() == 100
    assert prof["share_customers"].sum() == pytest.approx(1)
    assert prof["share_equity"].sum() == pytest.approx(1)
    assert prof.loc["BZ", "share_equity"] < 0


# ---------------------------------------------------------------------------
# values, segment table, sensitivity, holdout helpers
# ---------------------------------------------------------------------------

from helpers.segments import (  # noqa: E402
    customer_values,
    holdout_active_months,
    read_customer_costs,
    return_counts,
    segment_customers,
    segment_sensitivity,
    segment_validation,
    value_and_segment,
)


def test_spend_uplift_keeps_equal_frequencies_together():
    # 6 one-time buyers and 4 repeat buyers: the one-time buyers form one group of their own
    idx = pd.Index(list("abcdefghij"))
    freq = pd.Series([0, 0, 0, 0, 0, 0, 3, 3, 5, 5], index=idx)
    spend = pd.Series([35.0] * 6 + [10, 20, 30, 40], index=idx)
    pot = spend_uplift_potential(freq, spend, quantile=0.75, n_groups=5)
    assert (pot[:6] == 35.0).all()  # identical peers: no uplift
    assert pot["g"] > spend["g"]


def test_extra_cost_per_active_month():
    orders = np.array([[1.0, 1.0], [0.0, 0.0]])
    alive = np.array([[1.0, 0.5], [1.0, 1.0]])
    c = CostModel(cost_per_order=2.0, cost_per_active_month=10.0)
    cost = expected_cost_to_serve(orders, alive, c, 0.0, extra_cost_per_active_month=np.array([1.0, 0.0]))
    np.testing.assert_allclose(cost, [4 + 1.5 * 11, 20.0])


def test_customer_values_by_hand():
    # 2 customers, 2 months, no discounting
    P = pd.DataFrame([[1.0, 1.0], [0.1, 0.1]], index=["a", "b"])
    A = pd.DataFrame([[1.0, 1.0], [1.0, 1.0]], index=["a", "b"])
    c = CostModel(cost_per_order=3.0, cost_per_active_month=0.5)
    v = customer_values(P, A, [40.0, 30.0], 0.3, 0.0, c, potential_spend=[50.0, 30.0])
    # a: margin 0.3*40*2 = 24, cost 3*2 + 0.5*2 = 7 -> 17; potential 0.3*50*2 - 7 = 23
    assert v.loc["a", "gross_margin"] == pytest.approx(24.0)
    assert v.loc["a", "cost_to_serve"] == pytest.approx(7.0)
    assert v.loc["a", "net_clv"] == pytest.approx(17.0)
    assert v.loc["a", "growth_gap"] == pytest.approx(6.0)
    # b: 0.3*30*0.2 = 1.8 - (0.6 + 1.0) = 0.2
    assert v.loc["b", "net_clv"] == pytest.approx(0.2)
    assert v.loc["b", "growth_gap"] == 0
    assert list(v.index) == ["a", "b"]
    with pytest.raises(ValueError, match="margin"):
        customer_values(P, A, [40.0, 30.0], 0.0, 0.0, c)
    with pytest.raises(ValueError, match="one value per customer"):
        customer_values(P, A, [40.0], 0.3, 0.0, c)


def test_value_and_segment_bz_flips_with_monthly_cost():
    P = pd.DataFrame([[1.0], [0.1], [0.1]], index=list("abc"))
    A = pd.DataFrame([[1.0], [1.0], [1.0]], index=list("abc"))
    spend = np.array([40.0, 30.0, 30.0])
    cheap = value_and_segment(P, A, spend, spend, 0.3, 0.0, CostModel(3.0, 0.5), 1 / 3, 0.0)
    dear = value_and_segment(P, A, spend, spend, 0.3, 0.0, CostModel(3.0, 1.0), 1 / 3, 0.0)
    assert cheap["segment"].tolist() == ["MVC", "Maintain", "Maintain"]   # 0.9 - 0.3 - 0.5 = +0.1
    assert dear["segment"].tolist() == ["MVC", "BZ", "BZ"]                # 0.9 - 0.3 - 1.0 = -0.4


def test_segment_sensitivity_grid():
    P = pd.DataFrame([[1.0], [0.1], [0.1], [0.5]], index=list("abcd"))
    A = pd.DataFrame(1.0, index=P.index, columns=P.columns)
    spend = pd.Series([40.0, 30.0, 30.0, 10.0], index=P.index)
    base = dict(margin=0.3, monthly_discount_rate=0.0, cost_per_order=3.0, cost_per_active_month=0.5,
                cost_per_return=0.0, mvc_share=0.25, mgc_share=0.25)
    t = segment_sensitivity(P, A, spend, spend * 2, base, {"cost_per_active_month": [0.5, 1.0], "mvc_share": [0.5]})
    assert t.loc[("cost_per_active_month", 0.5), "BZ"] == 1   # d: 1.5 - 1.5 - 0.5 < 0
    assert t.loc[("cost_per_active_month", 1.0), "BZ"] == 3   # b, c: -0.4; d: 1.5 - 1.5 - 1.0 < 0
    assert t.loc[("mvc_share", 0.5), "MVC"] == 2
    assert (t[SEGMENT_ORDER].sum(axis=1) == 4).all()
    with pytest.raises(ValueError, match="unknown setting"):
        segment_sensitivity(P, A, spend, spend, base, {"nope": [1]})


def test_holdout_active_months_and_returns():
    from helpers.aggregates_log import holdout_last_days, return_windows

    tx = pd.DataFrame({"customer_id": ["a", "a", "b", "c", "a"],
                       "date": pd.to_datetime(["2020-01-05", "2020-03-01", "2019-12-01", "2020-01-31", "2019-12-20"])})
    last = holdout_last_days(tx, "2019-12-31", "2020-06-30")    # c first bought after the calibration end
    m = holdout_active_months(last, "2019-12-31", pd.Index(["a", "b", "c", "d"]), days_per_month=30)
    assert m["a"] == pytest.approx(61 / 30) and m["b"] == 0 and m["c"] == 0 and m["d"] == 0
    ret = pd.DataFrame({"customer_id": ["a", "a", "a", "b"], "amount": [-1.0, -2.0, -3.0, -4.0],
                        "date": pd.to_datetime(["2020-01-05", "2020-01-05", "2020-02-01", "2019-11-01"])})
    windows = return_windows(ret, "2019-12-31", "2020-06-30")
    r = return_counts(windows, pd.Index(["a", "b", "c"]), "holdout")
    assert r.tolist() == [2.0, 0.0, 0.0]  # same-day returns are one returned order
    assert return_counts(windows, pd.Index(["a", "b"]), "calibration").tolist() == [0.0, 1.0]
    assert return_counts(return_windows(ret.iloc[0:0], "2019-12-31", "2020-06-30"), pd.Index(["a"])).tolist() == [0.0]


def test_read_customer_costs(tmp_path):
    f = tmp_path / "costs.csv"
    pd.DataFrame({"customer_id": ["001", "002", "001"], "cost_per_month": [1.0, 2.0, 0.5]}).to_csv(f, index=False)
    s = read_customer_costs(str(f), pd.Index(["001", "003"]))
    assert s.tolist() == [1.5, 0.0]
    pd.DataFrame({"customer_id": ["001"], "cost_per_month": [-1.0]}).to_csv(f, index=False)
    with pytest.raises(ValueError, match=">= 0"):
        read_customer_costs(str(f), pd.Index(["001"]))


def test_segment_validation_table():
    seg = pd.Series(["MVC", "BZ", "MVC", "Maintain"], index=list("abcd"))
    forecast = pd.Series([10.0, -1.0, 5.0, 1.0], index=seg.index)
    real = pd.Series([12.0, -2.0, 4.0, 2.0], index=seg.index)
    t = segment_validation(seg, forecast, {"realised": real})
    assert list(t.index) == SEGMENT_ORDER
    assert t.loc["MVC", "realised"] == 16 and t.loc["MVC", "realised_share"] == pytest.approx(1.0)
    assert t.loc["BZ", "realised_per_customer"] == -2 and t.loc["MGC", "customers"] == 0


def test_segment_customers_end_to_end():
    from helpers.models import fit_gamma_gamma, fit_model
    from helpers.simulate import simulate_bgnbd

    sim = simulate_bgnbd(3000, r=0.243, alpha=4.414, a=0.793, b=2.426, p=6.25, q=3.74, gamma=15.44,
                         observation_days=273, acquisition_days=84, seed=1)
    s = sim.summary()
    s = s[(s["x"] == 0) | (s["m_x"] > 0)]
    f = fit_model("bgnbd", s, time_unit="W")
    g = fit_gamma_gamma(s, warn=False)
    t, P, A = segment_customers(f, g, s, 12, 0.3, 0.01, CostModel(3.0, 0.25), 0.2, 0.2, time_unit="W")
    assert len(t) == len(s) and t["segment"].notna().all()
    assert (t["segment"] == "MVC").sum() == round(0.2 * len(s))
    assert ((t["segment"] == "BZ") == (t["net_clv"] < 0)).all()
    np.testing.assert_allclose(t["expected_purchases"], f.expected_purchases(12 * 365.25 / 12 / 7, s), rtol=1e-9)
    # net CLV + cost to serve is the CLV of helpers.value.clv at the same settings
    from helpers.value import clv
    np.testing.assert_allclose(t["gross_margin"], clv(f, g, s, 12, 0.01, margin=0.3, time_unit="W"), rtol=1e-9)
    assert P.shape == A.shape == (len(s), 12)


def test_top_k_equals_stable_descending_sort():
    """The partition-based selection picks the same customers as a stable descending sort."""
    from helpers.segments import _top_k

    rng = np.random.default_rng(7)
    v = rng.integers(0, 20, 500).astype(float)          # many ties
    v[rng.choice(500, 30, replace=False)] = np.nan
    v[:3] = np.inf
    no_nan = np.where(np.isnan(v), -np.inf, v)          # without NaN (the usual case, no positions array)
    for values in (v, no_nan):
        for k in (0, 1, 7, 100, 250, 469, 470, 480, 500, 600):
            ref = pd.Series(values).sort_values(ascending=False, kind="mergesort").index[:k].to_numpy()
            assert set(_top_k(values, k)) == set(ref), k


# ---------------------------------------------------------------------------
# logs without amounts, the holdout forecast and its interval, the CRM export
# ---------------------------------------------------------------------------

import warnings  # noqa: E402

from helpers import claims, summary  # noqa: E402
from helpers.models import fit_gamma_gamma, fit_model  # noqa: E402
from helpers.segments import (  # noqa: E402
    capture_difference,
    ensemble_interval,
    export_segment_table,
    holdout_forecast,
    holdout_interval,
    realised_holdout_value,
    segment_results,
    value_basis,
)
from helpers.simulate import simulate_bgnbd  # noqa: E402

CDNOW = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)          # FHL (2005a) BG/NBD estimates (weeks)
CDNOW_GG = dict(p=6.25, q=3.74, gamma=15.44)                  # FHL (2005b) Gamma-Gamma estimates
COSTS = CostModel(cost_per_order=3.0, cost_per_active_month=0.25)


def _simulated_holdout(n, seed, amounts=True):
    """A simulated CDNOW-like log (day resolution) -> calibration/holdout summary, its BG/NBD and Gamma-Gamma fits."""
    sim = simulate_bgnbd(n, **CDNOW, **(CDNOW_GG if amounts else {}), observation_days=546, acquisition_days=84,
                         seed=seed, resolution="day", start="2020-01-01")
    cal = summary.calibration_holdout(sim.transactions, "2020-09-30", "2021-06-29", time_unit="W")
    f = fit_model("bgnbd", cal, time_unit="W")
    g = None
    if amounts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = fit_gamma_gamma(cal, warn=False)
    return cal, f, g


def _holdout_pits(n_logs=24, n=1500, n_sim=40, max_customers=None):
    """Position of each segment's realised holdout value within its simulated forecast distribution (PIT)."""
    rows = []
    for seed in range(n_logs):
        cal, f, g = _simulated_holdout(n, 100 + seed)
        months = float(cal["t_star"].iloc[0]) * 7 / (365.25 / 12)
        rules = dict(horizon_months=round(months), margin=0.3, monthly_discount_rate=0.01, costs=COSTS,
                     time_unit="W")
        seg = segment_customers(f, g, cal, **rules)[0]["segment"]
        fc = holdout_forecast(f, g, cal, months, 0.3, COSTS)
        realised = realised_holdout_value(cal, months, 0.3, COSTS, "spend model").groupby(seg, observed=False).sum()
        hi = holdout_interval(f, g, cal, seg, fc, rules, months, n_sim=n_sim, seed=seed, max_customers=max_customers)
        for s in SEGMENT_ORDER:
            d = hi.draws[s].dropna().to_numpy()
            if np.isfinite(hi.table.loc[s, "lower"]):
                rows.append({"segment": s, "realised": realised[s], "forecast": hi.table.loc[s, "forecast"],
                             "draws": d})
    return rows


def _coverage(rows, level, widen=1.0):
    """Share of realised values inside the central ``level`` of the draws (spread around the forecast x ``widen``)."""
    inside = []
    for r in rows:
        lo, hi = ensemble_interval(r["forecast"] + widen * (r["draws"] - r["forecast"]), level)
        inside.append(lo <= r["realised"] <= hi)
    return float(np.mean(inside))


@pytest.fixture(scope="module")
def holdout_pits():
    return _holdout_pits()


def _assert_calibrated(rows):
    """90% and 50% coverage within their bands, and sharply so: intervals twice as wide, or 40% as wide, fail."""
    assert len(rows) >= 80 and {r["segment"] for r in rows} == set(SEGMENT_ORDER)
    assert 0.80 <= _coverage(rows, 0.9) <= 0.97
    assert 0.35 <= _coverage(rows, 0.5) <= 0.65
    assert _coverage(rows, 0.5, widen=2.0) > 0.65
    assert _coverage(rows, 0.9, widen=0.4) < 0.80


def test_holdout_interval_coverage_on_simulated_logs(holdout_pits):
    """On logs simulated from BG/NBD + Gamma-Gamma (the fitted model is the true one) each segment's realised
    holdout value lies within its 90% forecast interval about 90% of the time and within its 50% interval about
    half the time: the intervals are neither too narrow nor too wide."""
    _assert_calibrated(holdout_pits)


def test_holdout_interval_table_and_forecast_by_hand():
    cal, f, g = _simulated_holdout(800, 7)
    months = float(cal["t_star"].iloc[0]) * 7 / (365.25 / 12)
    fc = holdout_forecast(f, g, cal, months, 0.3, COSTS)
    # forecast = (margin E[M] - c_order) E[X(t_star)] - c_month * months
    E = f.expected_purchases(float(cal["t_star"].iloc[0]), cal)
    np.testing.assert_allclose(fc["forecast"], (0.3 * g.expected_spend(cal) - 3.0) * E - 0.25 * months, rtol=1e-12)
    real = realised_holdout_value(cal, months, 0.3, COSTS, "spend model")
    np.testing.assert_allclose(real, 0.3 * cal["holdout_spend"] - 3.0 * cal["x_star"] - 0.25 * months)
    rules = dict(horizon_months=round(months), margin=0.3, monthly_discount_rate=0.01, costs=COSTS, time_unit="W")
    seg = segment_customers(f, g, cal, **rules)[0]["segment"]
    hi = holdout_interval(f, g, cal, seg, fc, rules, months, n_sim=20, seed=1)
    t = hi.table
    assert list(t.index) == SEGMENT_ORDER and hi.parameter_uncertainty and hi.n_failed == 0
    ok = t["customers"] > 0
    assert (t.loc[ok, "lower"] < t.loc[ok, "forecast"]).all() and (t.loc[ok, "forecast"] < t.loc[ok, "upper"]).all()
    np.testing.assert_allclose(t["forecast"], fc["forecast"].groupby(seg, observed=False).sum().to_numpy())
    assert hi.draws.shape == (20, 4)
    # the same seed gives the same interval; without parameter draws it is narrower for the largest segment
    again = holdout_interval(f, g, cal, seg, fc, rules, months, n_sim=20, seed=1)
    pd.testing.assert_frame_equal(again.table, t)
    fixed = holdout_interval(f, g, cal, seg, fc, rules, months, n_sim=20, seed=1, parameter_uncertainty=False)
    assert not fixed.parameter_uncertainty
    width = (t["upper"] - t["lower"])["MVC"]
    assert (fixed.table["upper"] - fixed.table["lower"])["MVC"] < width
    refit = holdout_interval(f, g, cal, seg, fc, rules, months, n_sim=8, seed=1, parameter_uncertainty="refit")
    assert refit.parameter_uncertainty and refit.table["replicates"].max() == 8
    with pytest.raises(ValueError, match="parameter_uncertainty"):
        holdout_interval(f, g, cal, seg, fc, rules, months, n_sim=8, parameter_uncertainty="bayes")


def test_apparel_like_holdout_does_not_print_holds():
    """A segment whose realised value is far below its interval (MVC forecast 6,699, realised 4,683) fails the claim."""
    c = claims.holds_out_of_sample({"MVC": (4683.0, 6300.0, 7100.0)}, unit="USD")
    assert c.holds is False and "does not hold out of sample" in c.text


def test_segments_without_amounts_in_purchases():
    """No amounts: values in (discounted) purchases, no costs, no growth gap (no MGC), nobody below zero."""
    cal, f, g = _simulated_holdout(1500, 3, amounts=False)
    assert g is None and "m_x" not in cal.columns and value_basis(None) == "purchases"
    t, P, A = segment_customers(f, None, cal, 9, 0.3, 0.01, CostModel(), 0.2, 0.2, time_unit="W")
    assert set(t["segment"].unique()) == {"MVC", "Maintain"}
    assert (t["segment"] == "MVC").sum() == round(0.2 * len(cal))
    np.testing.assert_allclose(t["gross_margin"], t["net_clv"])
    from helpers.value import clv_kernel
    np.testing.assert_allclose(t["net_clv"], clv_kernel(P.to_numpy(), 0.01))   # margin 1, one purchase each
    with pytest.raises(ValueError, match="cannot be charged"):
        segment_customers(f, None, cal, 9, 0.3, 0.01, COSTS, time_unit="W")
    # a value per purchase: money again, costs apply, still no growth gap
    tv = segment_customers(f, None, cal, 9, 0.3, 0.01, COSTS, time_unit="W", value_per_purchase=35.0)[0]
    np.testing.assert_allclose(tv["gross_margin"], 0.3 * 35.0 * t["gross_margin"], rtol=1e-12)
    assert (tv["segment"] == "MGC").sum() == 0 and (tv["segment"] == "BZ").sum() > 0
    # holdout: forecast, realised and the interval in purchases
    months = float(cal["t_star"].iloc[0]) * 7 / (365.25 / 12)
    fc = holdout_forecast(f, None, cal, months, 0.3, CostModel())
    np.testing.assert_allclose(fc["forecast"], f.expected_purchases(float(cal["t_star"].iloc[0]), cal))
    real = realised_holdout_value(cal, months, 0.3, CostModel(), "purchases")
    assert (real == cal["x_star"]).all()
    rules = dict(horizon_months=9, margin=0.3, monthly_discount_rate=0.01, costs=CostModel(), time_unit="W")
    hi = holdout_interval(f, None, cal, t["segment"], fc, rules, months, n_sim=20, seed=0)
    assert np.isnan(hi.table.loc["MGC", "lower"]) and np.isfinite(hi.table.loc["MVC", "lower"])
    np.testing.assert_allclose(hi.table["lower"].dropna(), hi.table["lower_purchases"].dropna())


def _scored_base(rng, n):
    """``n`` customers' holdout values and two rankings of them by noisy scores: ``(good, worse, value)``, the
    scores the values plus normal noise of standard deviation 5 and 15."""
    value = pd.Series(rng.gamma(0.5, 10, n), index=pd.RangeIndex(n))
    return value + rng.normal(0, 5, n), value + rng.normal(0, 15, n), value


def test_capture_difference_se_is_the_spread_of_resampled_differences():
    n = 4000
    good, worse, value = _scored_base(np.random.default_rng(0), n)
    d = capture_difference(good, worse, value, 0.2, n_boot=300, seed=1)
    assert d["estimate"] == pytest.approx(top_share_captured(good, value) - top_share_captured(worse, value))
    assert d["estimate"] > 3 * d["se"] > 0
    # an independent check of the SE: the spread of the difference over fresh samples of customers
    diffs = []
    for k in range(60):
        a, b, v = _scored_base(np.random.default_rng(100 + k), n)
        diffs.append(top_share_captured(a, v) - top_share_captured(b, v))
    assert d["se"] == pytest.approx(np.std(diffs, ddof=1), rel=0.35)
    # a ranking against itself: no difference
    assert capture_difference(good, good, value, 0.2, n_boot=50)["se"] == 0


def test_export_segment_table_for_the_crm(tmp_path):
    cal, f, g = _simulated_holdout(600, 5)
    t = segment_customers(f, g, cal, 12, 0.3, 0.01, COSTS, time_unit="W")[0]
    t["recency_days"] = t["recency"] * 7
    paths = export_segment_table(t, tmp_path / "04", "bgnbd", 12, "USD")
    table = pd.read_parquet(paths[0])
    csv = pd.read_csv(paths[1], dtype={"customer_id": str})
    assert len(table) == len(csv) == len(cal)
    assert list(csv["customer_id"]) == list(cal.index.astype(str))                  # raw ids, for the CRM
    # the CSV holds the Parquet's values: floats to the last digit, empty fields for missing values
    exact = pd.read_csv(paths[1], dtype={"customer_id": str}, float_precision="round_trip")
    pd.testing.assert_frame_equal(exact.set_index("customer_id"), table.assign(
        segment=table["segment"].astype(str)).rename_axis("customer_id"), check_exact=True, check_dtype=False)
    assert set(table["segment"]) <= set(SEGMENT_ORDER) and (table["model"] == "bgnbd").all()
    assert sorted(table["rank_net_clv"]) == list(range(1, len(cal) + 1))
    assert table.loc[table["rank_net_clv"] == 1, "net_clv"].iloc[0] == table["net_clv"].max()
    with pytest.raises(ValueError, match="segment"):
        export_segment_table(t.drop(columns="segment"), tmp_path, "bgnbd", 12, "USD")


def test_segment_results_leave_out_undefined_numbers():
    prof = pd.DataFrame({"customers": [2, 0, 1, 1], "share_customers": [0.5, 0, 0.25, 0.25],
                         "share_equity": [0.9, 0.0, 0.2, -0.1], "net_clv_total": [9.0, 0.0, 2.0, -1.0]},
                        index=SEGMENT_ORDER)
    val = pd.DataFrame({"customers": [2, 0, 1, 1], "forecast": [5.0, 0.0, 1.0, -1.0],
                        "lower": [4.0, np.nan, 0.5, -2.0], "upper": [6.0, np.nan, 1.5, 0.0],
                        "realised": [5.5, 0.0, 1.2, -0.5]}, index=SEGMENT_ORDER)
    r = segment_results(prof, val, pd.Series({"MVC": 9.0, "MGC": 0.0, "Maintain": 2.0, "BZ": 1.0}))
    assert set(r) == set(SEGMENT_ORDER)
    assert "holdout_lower" not in r["MGC"] and r["MVC"]["holdout_lower"] == 4.0
    assert r["MVC"]["customers"] == 2 and isinstance(r["MVC"]["customers"], int)
    assert r["MVC"]["holdout_value"] == 5.5 and r["BZ"]["share_equity"] == -0.1


def test_ensemble_interval_holds_a_new_draw_with_the_level():
    """Independent check of the finite-ensemble correction: over many ensembles of m draws, a new draw from the
    same distribution lies inside the interval with probability `level` (plain quantiles would give less)."""
    rng = np.random.default_rng(3)
    for m, level in ((20, 0.9), (40, 0.5), (200, 0.9)):
        inside = []
        for _ in range(4000):
            d = rng.gamma(2.0, 1.0, m + 1)
            lo, hi = ensemble_interval(d[:m], level)
            inside.append(lo <= d[m] <= hi)
        assert np.mean(inside) == pytest.approx(level, abs=0.02), (m, level)
    d = rng.normal(size=20)
    plain = np.quantile(d, [0.05, 0.95])
    lo, hi = ensemble_interval(d, 0.9)
    assert lo < plain[0] and hi > plain[1]
    assert np.isnan(ensemble_interval([1.0], 0.9)[0])


def test_holdout_intervals_plot_draws_what_the_table_says():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers.plots_segments import holdout_intervals

    t = pd.DataFrame({"customers": [3, 0, 5, 2], "forecast": [100.0, 0.0, -10.0, -2.0],
                      "lower": [90.0, np.nan, -15.0, np.nan], "upper": [110.0, np.nan, -5.0, np.nan],
                      "realised": [120.0, 0.0, -12.0, 1.0]}, index=SEGMENT_ORDER)
    axes = holdout_intervals(t, "USD", 0.9)
    assert [a.get_yticklabels()[0].get_text() for a in axes] == ["MVC", "Maintain", "BZ"]   # MGC has no customers
    lines = {a.get_yticklabels()[0].get_text(): {ln.get_label(): ln.get_xdata() for ln in a.get_lines()} for a in axes}
    assert list(lines["MVC"]["90% forecast interval"]) == [90.0, 110.0] and list(lines["MVC"]["realised"]) == [120.0]
    assert "90% forecast interval" not in lines["BZ"] and list(lines["BZ"]["forecast"]) == [-2.0]
    assert "USD" in axes[-1].get_xlabel()
    plt.close("all")


def _uplift_by_pandas(frequency, spend, quantile, n_groups):
    """Reference: the peer groups by pandas.qcut and the group quantiles by a pandas groupby."""
    f = pd.Series(np.asarray(frequency, float), index=spend.index)
    if f.nunique() <= 1 or n_groups == 1:
        groups = pd.Series(0, index=f.index)
    else:
        groups = pd.qcut(f, q=min(n_groups, len(f)), labels=False, duplicates="drop")
    return np.maximum(spend, spend.groupby(groups).transform(lambda s: s.quantile(quantile)))


@pytest.mark.parametrize("n_groups", [1, 2, 5, 9])
def test_spend_uplift_potential_matches_pandas_qcut_groups(cdnow_sample, n_groups):
    """The numpy peer groups and quantiles equal pandas.qcut + groupby quantile, on CDNOW's repeat counts (most
    customers bought once: tied edges) and on a continuous frequency."""
    from helpers.summary import rfm_summary

    s = rfm_summary(cdnow_sample.transactions, time_unit="W")
    spend = pd.Series(np.where(s["x"] > 0, s["m_x"], s["m_x"].mean()), index=s.index, name="spend")
    for freq in (s["x"], pd.Series(np.random.default_rng(0).gamma(0.5, 2.0, len(s)), index=s.index)):
        for q in (0.5, 0.75):
            got = spend_uplift_potential(freq, spend, quantile=q, n_groups=n_groups)
            pd.testing.assert_series_equal(got, _uplift_by_pandas(freq, spend, q, n_groups), rtol=0, atol=0)


def test_spend_uplift_potential_missing_values_as_pandas():
    """Missing frequencies get no group and missing spends are left out of the group quantile, as in pandas."""
    freq = pd.Series([0, 0, 1, 2, np.nan, 3, 5, 1, 0, 2], dtype=float)
    spend = pd.Series([10, np.nan, 30, 25, 40, 20, 60, 35, 15, 5], dtype=float, name="spend")
    pd.testing.assert_series_equal(spend_uplift_potential(freq, spend, 0.75, 3), _uplift_by_pandas(freq, spend, 0.75, 3))


def test_capture_difference_counts_are_the_multinomial_bootstrap():
    """The per-replicate counts drawn as n uniform picks give the SE of the multinomial-matrix bootstrap
    (the earlier implementation, written out here) in distribution: both SEs of 400 replicates agree to their
    sampling error (about 3.5% each)."""
    n = 3000
    good, worse, value = _scored_base(np.random.default_rng(3), n)
    v, k = value.to_numpy(), 0.2 * n
    W = np.random.default_rng(11).multinomial(n, np.full(n, 1.0 / n), size=400).astype(float)
    caps = []
    for s in (good, worse):
        order = np.argsort(-s.to_numpy(), kind="stable")
        Wo = W[:, order]
        caps.append((Wo * v[order] * (np.cumsum(Wo, axis=1) <= k)).sum(axis=1) / (W @ v))
    se_matrix = np.std(caps[0] - caps[1], ddof=1)
    d = capture_difference(good, worse, value, 0.2, n_boot=400, seed=12)
    assert d["se"] == pytest.approx(se_matrix, rel=0.15)
    assert d == capture_difference(good, worse, value, 0.2, n_boot=400, seed=12)


@pytest.fixture(scope="module")
def holdout_pits_subsampled():
    return _holdout_pits(max_customers=400)


def test_holdout_interval_with_smaller_look_alike_bases_keeps_its_coverage(holdout_pits_subsampled):
    """Look-alike bases of 400 of the 1,500 customers, their holdout noise rescaled to 1,500 (max_customers):
    the same coverage as the full simulation (and as sharp: twice or 0.4 times as wide fail)."""
    _assert_calibrated(holdout_pits_subsampled)


def test_holdout_interval_max_customers():
    """A base within max_customers is simulated whole (the same draws as max_customers=None); above it the
    replicates simulate max_customers customers and the interval stays around the same forecast with a
    width of the full simulation's order (not the sqrt(n/m) times wider interval of a small base unscaled)."""
    cal, f, g = _simulated_holdout(3000, 7)
    months = float(cal["t_star"].iloc[0]) * 7 / (365.25 / 12)
    rules = dict(horizon_months=round(months), margin=0.3, monthly_discount_rate=0.01, costs=COSTS, time_unit="W")
    seg = segment_customers(f, g, cal, **rules)[0]["segment"]
    fc = holdout_forecast(f, g, cal, months, 0.3, COSTS)
    kw = dict(n_sim=60, seed=2)
    whole = holdout_interval(f, g, cal, seg, fc, rules, months, max_customers=None, **kw)
    pd.testing.assert_frame_equal(holdout_interval(f, g, cal, seg, fc, rules, months, max_customers=3000, **kw).table,
                                  whole.table)
    sub = holdout_interval(f, g, cal, seg, fc, rules, months, max_customers=750, **kw)
    pd.testing.assert_series_equal(sub.table["forecast"], whole.table["forecast"])
    width = lambda t: (t["upper_purchases"] - t["lower_purchases"]).to_numpy()  # noqa: E731
    ratio = width(sub.table) / width(whole.table)
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio      # unscaled it would be about sqrt(3000/750) = 2
    with pytest.raises(ValueError, match="max_customers"):
        holdout_interval(f, g, cal, seg, fc, rules, months, max_customers=1, **kw)


def test_concentration_rankings_by_position_equal_the_label_sort():
    """helpers.concentration ranks aligned Series by position (no label look-ups): the same order as
    sort_values(ascending=False, kind="mergesort") on the labels, ties in index order and NaN last."""
    from helpers import concentration

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 400
        idx = pd.Index([f"c{i}" for i in rng.permutation(n)])
        score = pd.Series(rng.integers(0, 5, n).astype(float), index=idx)
        score[rng.random(n) < 0.05] = np.nan
        value = pd.Series(rng.random(n), index=idx)
        by_label = value.reindex(score.sort_values(ascending=False, kind="mergesort").index).to_numpy()
        np.testing.assert_array_equal(concentration._ranked(score, value), by_label)
        top_a = score.sort_values(ascending=False, kind="mergesort").index[:40]
        top_b = value.sort_values(ascending=False, kind="mergesort").index[:40]
        assert concentration.top_overlap(score, value, 0.1) == len(top_a.intersection(top_b)) / 40
        shuffled = value.sample(frac=1.0, random_state=1)           # not aligned: the label path
        assert concentration.top_share(shuffled, 0.2, score=score) == pytest.approx(
            concentration.top_share(value, 0.2, score=score))


# ---------------------------------------------------------------------------
# the fast forms at scale (issue #15): each against the direct form it replaces
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["bgnbd", "pareto_nbd"])
def test_segment_customers_factorised_equals_the_direct_monthly_expectations(paper_split, model):
    """segment_customers evaluates the monthly expectations per distinct (x, T) as P(alive) x a row of (x, T);
    the same frames, sums and segments as monthly_expectations per customer followed by value_and_segment
    (to rounding: the factorisation is exact, rtol 1e-9 allows the reordered floating-point products)."""
    from helpers.value import monthly_expectations

    cal = paper_split
    f = fit_model(model, cal, time_unit="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = fit_gamma_gamma(cal, warn=False)
    rules = dict(horizon_months=12, margin=0.3, monthly_discount_rate=0.01, costs=COSTS, time_unit="W")
    table, P, A = segment_customers(f, g, cal, **rules)
    P0, A0 = monthly_expectations(f, cal, 12, time_unit="W")
    pd.testing.assert_frame_equal(P, P0, rtol=1e-9, atol=1e-13)
    pd.testing.assert_frame_equal(A, A0, rtol=1e-9, atol=1e-13)
    ref = value_and_segment(P0, A0, table["expected_spend"], table["potential_spend"], 0.3, 0.01, COSTS)
    for col in ("expected_purchases", "alive_months", "gross_margin", "cost_to_serve", "net_clv", "growth_gap"):
        np.testing.assert_allclose(table[col], ref[col], rtol=1e-9, atol=1e-10, err_msg=col)
    assert (table["segment"] == ref["segment"]).mean() > 0.999          # only exact near-ties at a cut may swap
    assert table["segment"].value_counts().equals(ref["segment"].value_counts())


@pytest.mark.parametrize("model", ["bgnbd", "pareto_nbd"])
def test_segment_customers_on_many_ages_interpolates_in_age_and_equals_the_direct_form(model, monkeypatch):
    """A multi-cohort base (day-resolved ages over three years): the monthly expectations given alive are
    interpolated in T (helpers.age_interpolation) on far fewer rows than its distinct (x, T), and the frames
    equal monthly_expectations per customer (rtol 1e-9, the factorised form's tolerance)."""
    from helpers import age_interpolation
    from helpers.models import get_model
    from helpers.value import monthly_expectations

    rng = np.random.default_rng(4)
    n = 6000
    T = rng.integers(1, 1096, n) / 7.0
    m = get_model("bgnbd")
    theta = np.array([0.7, 2.5, 0.6, 4.0])
    counts, times = m.draw_purchases(theta, m.draw_latent(theta, n, rng), T, rng)
    t_x = np.zeros(n)
    np.maximum.at(t_x, np.repeat(np.arange(n), counts), times)
    t_x = np.where(counts > 0, np.minimum(np.ceil(t_x * 7) / 7, T), 0.0)
    cal = pd.DataFrame({"x": counts.astype(float), "t_x": t_x, "T": T,
                        "m_x": np.where(counts > 0, rng.gamma(6.0, 5.0, n), 0.0)},
                       index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"))
    f = fit_model(model, cal, time_unit="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = fit_gamma_gamma(cal, warn=False)
    used, interpolate = [], age_interpolation.interpolated_in_age

    def spy(fn, x, T, **kw):
        out = interpolate(fn, x, T, **kw)
        used.append((len(x), out is not None))
        return out

    monkeypatch.setattr(age_interpolation, "interpolated_in_age", spy)
    evaluated, me = [], monthly_expectations

    def counting(fit, rows, *a, **kw):
        evaluated.append(len(rows))
        return me(fit, rows, *a, **kw)

    monkeypatch.setattr("helpers.value.monthly_expectations", counting)
    rules = dict(horizon_months=12, margin=0.3, monthly_discount_rate=0.01, costs=COSTS, time_unit="W")
    table, P, A = segment_customers(f, g, cal, **rules)
    n_rows = len(cal[["x", "T"]].drop_duplicates())
    assert used == [(n_rows, True)]
    assert evaluated[0] < n_rows / 2, (evaluated, n_rows)              # kept rows and nodes, not every age
    P0, A0 = me(f, cal, 12, time_unit="W")
    pd.testing.assert_frame_equal(P, P0, rtol=1e-9, atol=1e-13)
    pd.testing.assert_frame_equal(A, A0, rtol=1e-9, atol=1e-13)


def test_segment_sensitivity_equals_value_and_segment_per_setting():
    """The grid on per-customer discounted sums gives the segment counts and net equity of value_and_segment
    re-run on the monthly frames for every setting (the earlier implementation, written out here)."""
    rng = np.random.default_rng(5)
    n, H = 3000, 12
    idx = pd.RangeIndex(n)
    P = pd.DataFrame(rng.gamma(0.5, 0.2, (n, H)), index=idx)
    A = pd.DataFrame(np.sort(rng.uniform(0.1, 1.0, (n, H)), axis=1)[:, ::-1], index=idx)
    spend = pd.Series(rng.gamma(4.0, 10.0, n), index=idx)
    pot = spend * rng.uniform(1.0, 1.5, n)
    rr = rng.uniform(0, 0.2, n)
    base = dict(margin=0.3, monthly_discount_rate=0.01, cost_per_order=3.0, cost_per_active_month=0.25,
                cost_per_return=5.0, mvc_share=0.2, mgc_share=0.2, return_rate=rr)
    vary = {"cost_per_active_month": [0.0, 0.5, 1.0], "monthly_discount_rate": [0.0, 0.03], "margin": [0.2, 0.5],
            "mvc_share": [0.1, 0.4], "mgc_share": [0.05], "cost_per_return": [0.0, 10.0], "cost_per_order": [1.0, 6.0]}
    t = segment_sensitivity(P, A, spend, pot, base, vary)
    for name, values in vary.items():
        for v in values:
            cfg = dict(base, **{name: v})
            costs = CostModel(cfg["cost_per_order"], cfg["cost_per_active_month"], cfg["cost_per_return"])
            ref = value_and_segment(P, A, spend, pot, cfg["margin"], cfg["monthly_discount_rate"], costs,
                                    cfg["mvc_share"], cfg["mgc_share"], return_rate=rr)
            counts = ref["segment"].value_counts().reindex(SEGMENT_ORDER)
            assert t.loc[(name, v), SEGMENT_ORDER].tolist() == counts.tolist(), (name, v)
            assert t.loc[(name, v), "net_equity"] == pytest.approx(ref["net_clv"].sum(), rel=1e-12)
            assert t.loc[(name, v), "share_BZ"] == counts["BZ"] / n


def test_capture_difference_subsampled_se_is_calibrated():
    """Above max_customers the bootstrap runs on a random sample of m customers and its SE is rescaled by
    sqrt(m / n): it agrees with the spread of the difference over fresh samples of n customers (the independent
    check of the whole-base test; 80 samples, so about 8% sampling error) and with the whole-base bootstrap SE
    (to 20%: the subsample's own sampling error, a few %, plus 5% of each bootstrap); unscaled it would be
    sqrt(5) = 2.2 times too large, which both bounds exclude."""
    n = 20_000
    good, worse, value = _scored_base(np.random.default_rng(0), n)
    sub = capture_difference(good, worse, value, 0.2, n_boot=300, seed=1, max_customers=4000)
    whole = capture_difference(good, worse, value, 0.2, n_boot=300, seed=1, max_customers=None)
    assert sub["estimate"] == whole["estimate"] == pytest.approx(
        top_share_captured(good, value) - top_share_captured(worse, value), abs=1e-15)
    assert sub["se"] == pytest.approx(whole["se"], rel=0.2)
    diffs = []
    for k in range(80):
        a, b, v = _scored_base(np.random.default_rng(200 + k), n)
        diffs.append(top_share_captured(a, v) - top_share_captured(b, v))
    assert sub["se"] == pytest.approx(np.std(diffs, ddof=1), rel=0.3)
    # at or below max_customers nothing is subsampled: the whole-base draws
    assert capture_difference(good, worse, value, 0.2, n_boot=50, seed=3, max_customers=n) == capture_difference(
        good, worse, value, 0.2, n_boot=50, seed=3, max_customers=None)
    with pytest.raises(ValueError, match="max_customers"):
        capture_difference(good, worse, value, max_customers=1)


@pytest.mark.parametrize("amounts", [True, False])
def test_verdict_by_model_equals_each_models_own_segmentation(amounts):
    """verdict_by_model (no month-by-month frames for the other models) against segment_customers run for every
    model and counted by hand, on a simulated base with and without amounts."""
    from helpers.models import fit_gamma_gamma, fit_model
    from helpers.segments import verdict_by_model
    from helpers.simulate import simulate_bgnbd

    sim = simulate_bgnbd(3000, r=0.243, alpha=4.414, a=0.793, b=2.426, p=6.25, q=3.74, gamma=15.44,
                         observation_days=273, acquisition_days=84, seed=3)
    s = sim.summary()
    s = s[(s["x"] == 0) | (s["m_x"] > 0)]
    if not amounts:
        s = s.drop(columns=["m_x"])
    fits = {n: fit_model(n, s, time_unit="W") for n in ("bgnbd", "pareto_nbd", "mbgnbd")}
    g = fit_gamma_gamma(s, warn=False) if amounts else None
    rules = dict(horizon_months=12, margin=0.3 if amounts else 1.0, monthly_discount_rate=0.01,
                 costs=CostModel(3.0, 0.25) if amounts else CostModel(), time_unit="W")
    tables = {n: segment_customers(f, g, s, **rules)[0] for n, f in fits.items()}
    got = verdict_by_model(fits, "pareto_nbd", tables["pareto_nbd"], g, s, **rules)
    assert list(got.index) == list(fits)
    mvc = tables["pareto_nbd"]["segment"] == "MVC"
    for n, t in tables.items():
        assert got.loc[n, "BZ"] == (t["segment"] == "BZ").sum()
        assert got.loc[n, "share BZ"] == pytest.approx((t["segment"] == "BZ").mean(), abs=0)
        assert got.loc[n, "P(alive) of one-time buyers"] == pytest.approx(t.loc[t["x"] == 0, "p_alive"].mean(),
                                                                         rel=1e-12)
        assert got.loc[n, "net equity"] == pytest.approx(t["net_clv"].sum(), rel=1e-12)
        overlap = ((t["segment"] == "MVC") & mvc).sum() / mvc.sum()
        assert got.loc[n, "MVC overlap"] == pytest.approx(overlap, abs=0)
    assert got.loc["pareto_nbd", "MVC overlap"] == 1.0
    assert (got["BZ"] > 0).any() == amounts      # costs only in money
    with pytest.raises(ValueError, match="index"):
        verdict_by_model(fits, "pareto_nbd", tables["pareto_nbd"].iloc[::-1], g, s, **rules)


@pytest.mark.parametrize("model,direct", [("bgnbd", False), ("pareto_nbd", False), ("bgnbd", True)])
def test_segment_customers_without_month_frames_gives_the_same_values_and_sensitivity(paper_split, model, direct,
                                                                                       monkeypatch):
    """``dense=False`` (notebook 04 at scale) gives the same table as the frames' path, and its
    MonthlyExpectations give the discounted sums of the frames at any rate and the same sensitivity grid;
    ``direct``: a model whose survival depends on t_x (as BG/CNBD-k), where the rows are the customers."""
    from helpers.segments import MonthlyExpectations
    from helpers.value import clv_kernel

    cal = paper_split
    f = fit_model(model, cal, time_unit="W")
    if direct:
        monkeypatch.setattr(type(f.model), "survival_depends_on_t_x", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = fit_gamma_gamma(cal, warn=False)
    rules = dict(horizon_months=12, margin=0.3, monthly_discount_rate=0.01, costs=COSTS, time_unit="W")
    table, P, A = segment_customers(f, g, cal, **rules)
    table2, monthly = segment_customers(f, g, cal, **rules, dense=False)
    pd.testing.assert_frame_equal(table2, table, check_exact=True)
    assert isinstance(monthly, MonthlyExpectations) and len(monthly) == len(cal) and monthly.months == 12
    assert (monthly.inv is None) == direct and (len(monthly.purchases) == len(cal)) == direct
    for F, D in zip(monthly.dense(), (P, A)):
        np.testing.assert_allclose(F, D.to_numpy(), rtol=1e-15, atol=0)
    for d in (0.0, 0.01, 0.03):
        for s, D in zip(monthly.discounted(d), (P, A)):
            np.testing.assert_allclose(s, clv_kernel(D.to_numpy(), d), rtol=1e-12, atol=1e-15)
    base = dict(margin=0.3, monthly_discount_rate=0.01, **vars(COSTS), mvc_share=0.2, mgc_share=0.2)
    vary = {"monthly_discount_rate": [0.0, 0.03], "cost_per_active_month": [0.0, 1.0], "mvc_share": [0.1]}
    ref = segment_sensitivity(P, A, table["expected_spend"], table["potential_spend"], base, vary)
    got = segment_sensitivity(monthly, None, table["expected_spend"], table["potential_spend"], base, vary)
    pd.testing.assert_frame_equal(got[SEGMENT_ORDER], ref[SEGMENT_ORDER])
    np.testing.assert_allclose(got["net_equity"], ref["net_equity"], rtol=1e-12)
    with pytest.raises(ValueError, match="must be None"):
        segment_sensitivity(monthly, A, table["expected_spend"], table["potential_spend"], base, vary)
    with pytest.raises(ValueError, match="one value per customer"):
        segment_sensitivity(monthly, None, table["expected_spend"][:5], table["potential_spend"][:5], base, vary)


@pytest.mark.parametrize("amounts", [True, False])
@pytest.mark.parametrize("dense", [True, False])
def test_segment_table_shares_no_memory_with_its_inputs_or_within_itself(paper_split, amounts, dense):
    """The segment table is built without a consolidating copy (one array per column, notebook 04's memory at
    1e7 customers), so it must own every column: writing into it changes neither the summary, nor the month
    expectations the sensitivity grid reuses, nor another column (without amounts the potential spend is the
    spend itself)."""
    cal = paper_split
    f = fit_model("pareto_nbd", cal, time_unit="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = fit_gamma_gamma(cal, warn=False) if amounts else None
    rules = dict(horizon_months=6, margin=0.3 if amounts else 1.0, monthly_discount_rate=0.01,
                 costs=COSTS if amounts else CostModel(), time_unit="W")
    out = segment_customers(f, g, cal, **rules, dense=dense)
    table = out[0]
    held = [cal[c].to_numpy() for c in cal.columns if cal[c].dtype == float]
    if dense:
        held += [F.to_numpy() for F in out[1:]]
    else:
        m = out[1]
        held += [a for a in (m.purchases, m.alive, m.scale) if a is not None]
    cols = [c for c in table.columns if table[c].dtype == float]
    arrays = {c: table[c].to_numpy() for c in cols}
    for c, a in arrays.items():
        assert not any(np.shares_memory(a, h) for h in held), c
        assert not any(np.shares_memory(a, arrays[o]) for o in cols if o != c), c
    before = cal.copy()
    table.loc[:, cols] = -1.0
    pd.testing.assert_frame_equal(cal, before)


def test_customer_values_copies_the_spends_it_is_given():
    """customer_values keeps each column in its own array, so its table never writes through to the caller's
    spends (nor one spend column to the other when no potential is given)."""
    rng = np.random.default_rng(2)
    P, A = rng.gamma(0.5, 0.2, (50, 6)), np.full((50, 6), 0.5)
    spend, pot = rng.gamma(4.0, 10.0, 50), rng.gamma(5.0, 10.0, 50)
    for potential in (pot, None):
        t = customer_values(P, A, spend, 0.3, 0.01, COSTS, potential_spend=potential)
        for c in ("expected_spend", "potential_spend"):
            assert not np.shares_memory(t[c].to_numpy(), spend) and not np.shares_memory(t[c].to_numpy(), pot)
        assert not np.shares_memory(t["expected_spend"].to_numpy(), t["potential_spend"].to_numpy())


@pytest.mark.parametrize("rows", [0, 1, 3000])
def test_export_segment_table_writes_the_files_of_the_pandas_frame(tmp_path, rows):
    """The export is built column by column in Arrow (no copies of the table); its files are those of the
    frame written out by pandas and Arrow's CSV writer (written out here): the same Parquet schema, pandas
    metadata and values (missing values as nulls, ties in net CLV ranked by position) and the same CSV bytes."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from helpers.segments import EXPORT_COLUMNS

    rng = np.random.default_rng(4)
    idx = pd.Index([f"C-{i:05d}" for i in rng.permutation(rows)], name="customer")
    t = pd.DataFrame({c: rng.gamma(2.0, 3.0, rows) for c in EXPORT_COLUMNS if c not in ("segment", "T")},
                     index=idx)
    t["net_clv"] = np.round(t["net_clv"], 0)                            # ties
    t.loc[t.index[:5], "total_spend"] = np.nan
    t["segment"] = pd.Categorical.from_codes(rng.integers(0, 4, rows), categories=SEGMENT_ORDER)
    paths = export_segment_table(t, tmp_path / "new", "pareto_nbd", 6, "EUR")
    cols = [c for c in EXPORT_COLUMNS if c in t.columns]
    ref = t[cols].assign(segment=t["segment"].astype(str), model="pareto_nbd", horizon_months=6, units="EUR")
    ref["rank_net_clv"] = ref["net_clv"].rank(ascending=False, method="first").astype(int)
    ref.index = pd.Index(t.index, name="customer_id")
    ref.to_parquet(tmp_path / "ref.parquet")
    pacsv.write_csv(pa.Table.from_pandas(ref.reset_index(), preserve_index=False), tmp_path / "ref.csv")
    assert pq.read_schema(paths[0]).equals(pq.read_schema(tmp_path / "ref.parquet"), check_metadata=True)
    assert pq.read_table(paths[0]).equals(pq.read_table(tmp_path / "ref.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(paths[0]), ref)
    assert paths[1].read_bytes() == (tmp_path / "ref.csv").read_bytes()
