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
    tx = pd.DataFrame({"customer_id": ["a", "a", "b", "c"],
                       "date": pd.to_datetime(["2020-01-05", "2020-03-01", "2019-12-01", "2020-01-31"])})
    m = holdout_active_months(tx, "2019-12-31", "2020-06-30", pd.Index(["a", "b", "c", "d"]), days_per_month=30)
    assert m["a"] == pytest.approx(61 / 30) and m["b"] == 0 and m["c"] == pytest.approx(31 / 30) and m["d"] == 0
    ret = pd.DataFrame({"customer_id": ["a", "a", "a", "b"], "amount": [-1.0, -2.0, -3.0, -4.0],
                        "date": pd.to_datetime(["2020-01-05", "2020-01-05", "2020-02-01", "2019-11-01"])})
    r = return_counts(ret, pd.Index(["a", "b", "c"]), start="2019-12-31")
    assert r.tolist() == [2.0, 0.0, 0.0]  # same-day returns are one returned order
    assert return_counts(ret.iloc[0:0], pd.Index(["a"])).tolist() == [0.0]


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
    for k in (0, 1, 7, 100, 250, 469, 470, 480, 500, 600):
        ref = pd.Series(v).sort_values(ascending=False, kind="mergesort").index[:k].to_numpy()
        assert set(_top_k(v, k)) == set(ref), k
