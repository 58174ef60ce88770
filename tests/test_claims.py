"""Every predicate behind a closing sentence, on both sides of its threshold."""

import math

import pytest

from helpers import claims


def test_one_time_majority_both_sides():
    yes = claims.one_time_majority(0.51)
    no = claims.one_time_majority(0.29)
    assert yes.holds is True and "most of the base" in yes.text
    assert no.holds is False and "most of the base" not in no.text and "71%" in no.text
    assert claims.one_time_majority(0.5).holds is False          # the threshold itself: not "most"
    assert claims.one_time_majority(float("nan")).holds is None


def test_time_unit_resolves_both_sides():
    assert claims.time_unit_resolves(14.0, 7.0, "week").holds is True
    c = claims.time_unit_resolves(10.0, 7.0, "week")
    assert c.holds is False and "finer time unit" in c.text
    assert claims.time_unit_resolves(float("nan"), 7.0, "week").holds is None


@pytest.mark.parametrize("err,holds,word", [(4.9, True, "within"), (-5.0, True, "within"),
                                            (-5.1, False, "under-forecasts"), (12.0, False, "over-forecasts")])
def test_forecasts_total_threshold(err, holds, word):
    c = claims.forecasts_total(err, tolerance_pct=5.0)
    assert c.holds is holds and word in c.text


def test_forecasts_total_direction_of_equity_bias():
    assert "understated" in claims.forecasts_total(-14.0).text
    assert "overstated" in claims.forecasts_total(14.0).text


def test_ranks_better_than_baseline_three_ways():
    better = claims.ranks_better_than_baseline(0.55, 0.50)
    same = claims.ranks_better_than_baseline(0.505, 0.50)
    worse = claims.ranks_better_than_baseline(0.45, 0.50)
    assert better.holds is True and "better than the naive" in better.text
    assert same.holds is False and "no better" in same.text
    assert worse.holds is False and "baseline ranks customers better" in worse.text
    assert claims.ranks_better_than_baseline(math.nan, 0.5).holds is None


def test_within_interval_both_sides():
    assert claims.within_interval(5000, 4000, 6000).holds is True
    below = claims.within_interval(4683, 5900, 7500, "the MVC holdout value")
    assert below.holds is False and "below" in below.text and below.text.startswith("The MVC")
    assert claims.within_interval(8000, 4000, 6000).holds is False
    assert claims.within_interval(1.0, math.nan, 2.0).holds is None


def test_ranking_beats_three_ways():
    # CDNOW: RFM 94.6% vs net CLV 92.7% -> the claim that net CLV wins must not be made
    c = claims.ranking_beats(0.927, 0.946, "net CLV", "RFM score")
    assert c.holds is False and c.text.startswith("Ranking by RFM score captures more")
    assert claims.ranking_beats(0.95, 0.92, "net CLV", "RFM score").holds is True
    tie = claims.ranking_beats(0.930, 0.928, "net CLV", "RFM score")
    assert tie.holds is False and "about as much" in tie.text


def test_spend_independent_both_sides():
    assert claims.spend_independent(0.11).holds is True
    assert claims.spend_independent(-0.31).holds is False
    assert claims.spend_independent(0.31).holds is False
    assert claims.spend_independent(math.nan).holds is None


def test_in_band_both_sides():
    assert claims.in_band(0.30, 0.25, 0.40, "The returning-customer revenue share").holds is True
    c = claims.in_band(0.86, 0.25, 0.40, "The returning-customer revenue share")
    assert c.holds is False and "above" in c.text and "86%" in c.text
    assert "below" in claims.in_band(0.1, 0.25, 0.40, "x").text
    assert claims.in_band(math.nan, 0.25, 0.4, "x").holds is None


def test_effect_direction_three_ways():
    assert claims.effect_direction(0.05, 0.01, 0.09, "The repeat-order effect").holds is True
    neg = claims.effect_direction(-0.015, -0.028, -0.002, "The repeat-order effect")
    assert neg.holds is False and "negative" in neg.text
    zero = claims.effect_direction(0.01, -0.01, 0.03, "The repeat-order effect")
    assert zero.holds is None and "not distinguishable" in zero.text


def test_claim_prints_as_its_sentence():
    c = claims.forecasts_total(1.0)
    assert f"{c}" == c.text


def test_time_unit_resolves_at_the_threshold_and_with_days():
    """The ratio of the median gap to the unit decides: 2 weeks exactly resolves, just below does not;
    with daily units (the finest, purchases are counted per day) no finer unit is recommended."""
    assert claims.time_unit_resolves(14.0, 7.0, "week", min_ratio=2.0).holds is True
    assert claims.time_unit_resolves(13.9, 7.0, "week", min_ratio=2.0).holds is False
    month = claims.time_unit_resolves(34.0, 365.25 / 12, "month")
    assert month.holds is False and "finer time unit would" in month.text
    daily = claims.time_unit_resolves(1.0, 1.0, "day")
    assert daily.holds is False and "no finer time unit" in daily.text and "1 day," in daily.text
    assert "finer time unit would" not in daily.text
    assert claims.time_unit_resolves(3.0, 1.0, "day").holds is True
    assert "(3.0 days)" not in claims.time_unit_resolves(3.0, 1.0, "day").text          # no "34 days (34.0 days)"
    assert "(2.0 weeks)" in claims.time_unit_resolves(14.0, 7.0, "week").text


def test_one_time_majority_threshold_is_configurable():
    """Apparel-like 29% one-time buyers never reads as "most of the base"; a lower threshold can make it hold."""
    assert claims.one_time_majority(0.29).holds is False
    low = claims.one_time_majority(0.29, threshold=0.25)
    assert low.holds is True and "most of the base" in low.text


def test_holds_out_of_sample_both_sides():
    """Apparel-like: MVC forecast interval around 6,699 with 4,683 realised -> the segmentation does not hold."""
    ok = claims.holds_out_of_sample({"MVC": (6500.0, 6100.0, 7300.0), "BZ": (-40.0, -60.0, -20.0)}, unit="USD")
    assert ok.holds is True and ok.text.startswith("The segmentation holds out of sample")
    bad = claims.holds_out_of_sample({"MVC": (4683.0, 6100.0, 7300.0), "BZ": (-40.0, -60.0, -20.0)}, unit="USD")
    assert bad.holds is False and "holds out of sample:" not in bad.text
    assert "MVC below it (realised 4,683 USD, interval 6,100 to 7,300)" in bad.text and "within it: BZ" in bad.text
    assert "1 of 2 segments" in bad.text
    above = claims.holds_out_of_sample({"MGC": (10.0, 1.0, 2.0)})
    assert above.holds is False and "MGC above it" in above.text
    # at the bounds it holds; a group without an interval is not judged
    edge = claims.holds_out_of_sample({"MVC": (6100.0, 6100.0, 7300.0), "MGC": (5.0, math.nan, math.nan)})
    assert edge.holds is True and "MGC" not in edge.text
    assert claims.holds_out_of_sample({"MGC": (5.0, math.nan, math.nan)}).holds is None


def test_ranking_beats_all_both_sides():
    # CDNOW: RFM 94.6% vs net CLV 92.7% -> no "gain in the order within that group"
    c = claims.ranking_beats_all(0.927, {"RFM score": 0.946, "past spend": 0.90}, "net CLV")
    assert c.holds is False and "order within that group" not in c.text
    assert "Ranking by RFM score captures more than ranking by net CLV (94.6% vs 92.7%)" in c.text
    win = claims.ranking_beats_all(0.95, {"RFM score": 0.92, "past spend": 0.90}, "net CLV")
    assert win.holds is True and "order within that group" in win.text
    # beating one but tying the other is not beating all
    assert claims.ranking_beats_all(0.95, {"RFM score": 0.948, "past spend": 0.90}, "net CLV").holds is False
    assert claims.ranking_beats_all(math.nan, {"RFM score": 0.9}, "net CLV").holds is None
    # a margin per alternative: 0.7 points ahead is not enough against a difference with SE 0.5 points
    tol = {"RFM score": 2 * 0.005, "past spend": 0.005}
    noisy = claims.ranking_beats_all(0.929, {"RFM score": 0.922, "past spend": 0.909}, "net CLV", tol)
    assert noisy.holds is False and "about as much as ranking by RFM score" in noisy.text
