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


# --- revenue dynamics (05): acquisition window, band test, largest part, amounts, claimed value ---------------

def test_single_acquisition_window_both_sides():
    # CDNOW: new customers in Jan-Mar 1997 only, 18 months of log
    closed = claims.single_acquisition_window(3, 18, 3, "1997-01", "1997-03")
    assert closed.holds is True and "closed group" in closed.text and "3 of 18 months" in closed.text
    # a retailer acquiring every month for 36 months
    going = claims.single_acquisition_window(36, 36, 36, "2021-01", "2023-12")
    assert going.holds is False and "closed group" not in going.text and "100%" in going.text
    # the threshold: a window of exactly half the log is not "early"
    assert claims.single_acquisition_window(9, 18, 9, "a", "b").holds is False
    assert claims.single_acquisition_window(8, 18, 8, "a", "b").holds is True
    one = claims.single_acquisition_window(1, 1, 1, "2021-03", "2021-03", period_name="quarter")
    assert one.holds is None and "one quarter" in one.text


def test_band_test_applies_follows_the_window():
    closed = claims.single_acquisition_window(3, 18, 3, "1997-01", "1997-03")
    no = claims.band_test_applies(closed, measure="purchases")
    assert no.holds is False and "no test" in no.text and "after 1997-03" in no.text
    assert "all purchases come" in no.text
    assert "all revenue comes" in claims.band_test_applies(closed).text
    yes = claims.band_test_applies(claims.single_acquisition_window(36, 36, 36, "2021-01", "2023-12"))
    assert yes.holds is True and "no test" not in yes.text
    assert claims.band_test_applies(claims.single_acquisition_window(1, 1, 1, "x", "x")).holds is None


def test_largest_part_three_ways():
    leak = claims.largest_part({"churn": 900.0, "contraction": 100.0}, "leak")
    assert leak.holds is True and leak.text.startswith("The larger leak is churn") and "90%" in leak.text
    other = claims.largest_part({"churn": 100.0, "contraction": 900.0}, "leak")
    assert other.holds is True and other.text.startswith("The larger leak is contraction")
    gains = claims.largest_part({"new": 5.0, "more": 3.0, "back": 2.0}, "source of gains")
    assert gains.text.startswith("The largest source of gains is new") and "ahead of more" in gains.text
    tie = claims.largest_part({"churn": 50.0, "contraction": 50.0}, "leak")
    assert tie.holds is False and "No single leak" in tie.text
    assert claims.largest_part({"churn": 0.0, "contraction": 0.0}, "leak").holds is None
    assert claims.largest_part({"churn": math.nan, "contraction": 1.0}, "leak").holds is None


def test_needs_amounts_both_sides():
    yes = claims.needs_amounts(True, "The order value test")
    no = claims.needs_amounts(False, "The order value test")
    assert yes.holds is True and "uses the log's amounts" in yes.text
    assert no.holds is False and "needs amounts" in no.text and "not run" in no.text
    instead = claims.needs_amounts(False, "The revenue share", instead="the share of purchases stands in")
    assert "share of purchases stands in" in instead.text and "not run" not in instead.text


def test_estimate_matches_claim_three_ways():
    inside = claims.estimate_matches_claim(0.60, 0.45, 0.80, 0.47, "The implied difference")
    assert inside.holds is True and "consistent with the claimed +47%" in inside.text
    above = claims.estimate_matches_claim(0.90, 0.70, 1.10, 0.47, "The implied difference")
    assert above.holds is False and "above" in above.text
    below = claims.estimate_matches_claim(0.20, 0.10, 0.30, 0.47, "The implied difference")
    assert below.holds is False and "below" in below.text
    assert claims.estimate_matches_claim(0.5, 0.47, 0.6, 0.47, "x").holds is True     # the interval's edge
    assert claims.estimate_matches_claim(math.nan, 0.1, 0.3, 0.47, "x").holds is None


def test_retention_cheaper_both_sides():
    yes = claims.retention_cheaper(2.5, 0.2, 0.5, "USD", "USD")
    assert yes.holds is True and "a factor of 2.5" in yes.text and "Retention creates" in yes.text
    no = claims.retention_cheaper(0.4, 1.25, 0.5, "USD", "discounted purchase")
    assert no.holds is False and no.text.startswith("Acquisition creates") and "2.5 times" in no.text
    assert claims.retention_cheaper(1.0, 0.5, 0.5, "USD", "USD").holds is False
    assert claims.retention_cheaper(0.0, math.inf, 0.5, "USD", "USD").holds is False
    assert claims.retention_cheaper(math.nan, math.inf, math.inf, "USD", "USD").holds is None


def test_acquisition_pays_both_sides():
    assert claims.acquisition_pays(41.9, 20.0, "USD", 24).holds is True
    no = claims.acquisition_pays(15.0, 20.0, "USD", 24)
    assert no.holds is False and "destroys value" in no.text and "15.00 USD" in no.text
    assert claims.acquisition_pays(20.0, 20.0, "USD", 24).holds is False
    assert claims.acquisition_pays(math.nan, 20.0, "USD", 24).holds is None


def test_pays_back_within_both_sides():
    assert claims.pays_back_within(7.25, 24, "the acquisition cost").holds is True
    assert claims.pays_back_within(24.0, 24, "x").holds is True
    late = claims.pays_back_within(30.0, 24, "the programme")
    assert late.holds is False and late.text.startswith("The programme does not pay back")
    assert claims.pays_back_within(math.inf, 24, "x").holds is False
    assert claims.pays_back_within(math.nan, 24, "x").holds is None


def test_price_cut_recoverable_both_sides():
    ok = claims.price_cut_recoverable(0.05, 0.24, 0.3)
    assert ok.holds is True and "24% drop-out cut" in ok.text
    assert claims.price_cut_recoverable(0.2, math.nan, 0.3).holds is False
    whole = claims.price_cut_recoverable(0.3, math.nan, 0.3)
    assert whole.holds is False and "whole 30% margin" in whole.text


def test_lever_choice_robust_both_sides():
    assert claims.lever_choice_robust([], 7).holds is True
    flip = claims.lever_choice_robust(["retention_cost"], 7)
    assert flip.holds is False and "retention_cost" in flip.text


def test_agrees_with_simulation_at_the_threshold():
    assert claims.agrees_with_simulation(1.2).holds is True
    assert claims.agrees_with_simulation(4.0).holds is True
    bad = claims.agrees_with_simulation(4.01)
    assert bad.holds is False and "suspect" in bad.text
    assert claims.agrees_with_simulation(math.nan).holds is None


def test_recommend_model_prefers_the_simpler_of_two_nested_models_at_their_limit():
    """GGompertz/NBD at b -> 0 is Pareto/NBD: equal holdout errors up to optimiser noise."""
    import pandas as pd

    from helpers.validation import recommend_model

    comp = pd.DataFrame({"mae": [0.8187, 0.793766, 0.793766, 1.038],
                         "total_error_pct": [-14.28, -12.857202, -12.857199, 47.4],
                         "n_params": [4, 4, 5, float("nan")]},
                        index=["bgnbd", "pareto_nbd", "ggompertz_nbd", "baseline"])
    assert recommend_model(comp)[0] == "pareto_nbd"
    # a real difference in the total error still decides
    comp.loc["ggompertz_nbd", "total_error_pct"] = -11.0
    assert recommend_model(comp)[0] == "ggompertz_nbd"


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


# --- covariates (notebook 06-drivers) -------------------------------------------

def test_covariates_configured_both_sides():
    yes = claims.covariates_configured(True, "configs/apparel-covariates.yaml")
    no = claims.covariates_configured(False, "this configuration")
    assert yes.holds is True and "has no covariates" not in yes.text
    assert no.holds is False and no.text.startswith("This configuration has no covariates")


def test_multiplier_effect_both_sides_of_one():
    # CLVTools apparel, Pareto/NBD: Channel multiplies the purchase rate by exp(0.6239) = 1.866, 95% 1.52-2.29
    up = claims.multiplier_effect(1.866, 1.519, 2.292, "Channel", "mean purchase rate")
    assert up.holds is True and "Channel raises the mean purchase rate" in up.text and "1.87 per unit" in up.text
    down = claims.multiplier_effect(0.454, 0.249, 0.827, "Channel", "mean lifetime")
    assert down.holds is True and "lowers the mean lifetime" in down.text
    flat = claims.multiplier_effect(1.46, 0.94, 2.26, "Gender", "mean lifetime")
    assert flat.holds is False and "distinguish from none" in flat.text
    # at the boundary: an interval touching 1 does not exclude it
    assert claims.multiplier_effect(1.2, 1.0, 1.4, "x", "rate").holds is False
    assert claims.multiplier_effect(1.2, 1.0001, 1.4, "x", "rate").holds is True
    assert claims.multiplier_effect(math.nan, math.nan, math.nan, "x", "mean lifetime").holds is None
    assert claims.multiplier_effect(0.0, math.nan, math.nan, "x", "occasions").holds is None


def test_covariates_improve_fit_both_sides():
    # CLVTools apparel: LL -5821.063 with covariates vs -5848.098 without, 4 coefficients -> LR 54.07, p 5e-11
    yes = claims.covariates_improve_fit(5.1e-11, 54.07, 4, "Pareto/NBD")
    assert yes.holds is True and "improve the fit of Pareto/NBD" in yes.text and "p < 0.0001" in yes.text
    no = claims.covariates_improve_fit(0.0501, 9.47, 4, "Pareto/NBD")
    assert no.holds is False and "do not improve" in no.text and "p = 0.05" in no.text
    assert claims.covariates_improve_fit(0.0499, 9.49, 4, "Pareto/NBD").holds is True
    assert claims.covariates_improve_fit(math.nan, math.nan, 4, "Pareto/NBD").holds is None


def test_holdout_gain_three_ways():
    better = claims.holdout_gain(2.007, 2.040, "Pareto/NBD")        # -1.6%
    assert better.holds is True and "improve" in better.text and "-1.6%" in better.text
    same = claims.holdout_gain(2.030, 2.040, "Pareto/NBD")          # -0.5%
    assert same.holds is False and "about as good" in same.text
    worse = claims.holdout_gain(2.100, 2.040, "Pareto/NBD")         # +2.9%
    assert worse.holds is False and "worse" in worse.text
    assert claims.holdout_gain(1.0, 0.0, "Pareto/NBD").holds is None


def test_value_differs_by_group_both_sides():
    yes = claims.value_differs_by_group({"0": 3.09, "1": 6.09}, "Gender", "USD")
    assert yes.holds is True and "Gender = 1: 6.09 USD" in yes.text and "1.97 times" in yes.text
    no = claims.value_differs_by_group({"0": 4.13, "1": 5.0}, "Channel", "USD")    # 1.21 times
    assert no.holds is False and "differs little" in no.text
    assert claims.value_differs_by_group({"0": 4.0, "1": 5.0}, "Channel", "USD").holds is True   # exactly 1.25
    assert claims.value_differs_by_group({"0": 4.0}, "Channel", "USD").holds is None
    assert claims.value_differs_by_group({"0": 0.0, "1": 5.0}, "Channel", "USD").holds is None
