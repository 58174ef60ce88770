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
