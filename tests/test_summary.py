"""Summaries equal lifetimes' own functions and the published CDNOW counts."""

import numpy as np
import pandas as pd
import pytest
from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data

from helpers.data import DataValidationError
from helpers.summary import (
    calibration_holdout,
    first_purchase_cohorts,
    interpurchase_days,
    purchases_per_customer,
    repeat_transactions_by_period,
    rfm_summary,
)


def test_published_repeat_transaction_counts(paper_split):
    """Fader, Hardie & Lee (2005): 2,457 repeat transactions in weeks 1-39, 1,882 in weeks 40-78."""
    assert len(paper_split) == 2_357
    assert paper_split["x"].sum() == 2_457
    assert paper_split["x_star"].sum() == 1_882
    assert (paper_split["t_star"] == 39).all()


def test_weekly_tracking_matches_published_totals(cdnow_sample):
    weekly = repeat_transactions_by_period(cdnow_sample.transactions, "1997-01-01", "1998-06-30", 7)
    assert len(weekly) == 78
    assert weekly["repeat"].iloc[:39].sum() == 2_457
    assert weekly["repeat"].iloc[39:].sum() == 1_882
    assert weekly["cumulative"].iloc[-1] == 2_457 + 1_882


@pytest.mark.parametrize("time_unit,multiplier", [("D", 1), ("W", 7)])
def test_rfm_equals_lifetimes_on_cdnow_master(cdnow_master, time_unit, multiplier):
    tx = cdnow_master.transactions
    ours = rfm_summary(tx, observation_end="1998-06-30", time_unit=time_unit)
    ref = summary_data_from_transaction_data(
        tx, "customer_id", "date", monetary_value_col="amount", observation_period_end="1998-06-30",
        freq="D", freq_multiplier=multiplier,
    ).loc[ours.index]
    np.testing.assert_array_equal(ours["x"].to_numpy(), ref["frequency"].to_numpy())
    np.testing.assert_array_equal(ours["t_x"].to_numpy(), ref["recency"].to_numpy())
    np.testing.assert_array_equal(ours["T"].to_numpy(), ref["T"].to_numpy())
    np.testing.assert_allclose(ours["m_x"].to_numpy(), ref["monetary_value"].to_numpy(), rtol=1e-9, atol=0)


def test_calibration_holdout_equals_lifetimes(cdnow_sample, paper_split):
    ref = calibration_and_holdout_data(
        cdnow_sample.transactions, "customer_id", "date", calibration_period_end="1997-09-30",
        observation_period_end="1998-06-30", freq="D", freq_multiplier=7, monetary_value_col="amount",
    ).loc[paper_split.index]
    for ours, theirs in [("x", "frequency_cal"), ("t_x", "recency_cal"), ("T", "T_cal"),
                         ("x_star", "frequency_holdout"), ("t_star", "duration_holdout")]:
        np.testing.assert_array_equal(paper_split[ours].to_numpy(), ref[theirs].to_numpy(), err_msg=ours)
    np.testing.assert_allclose(paper_split["m_x"], ref["monetary_value_cal"], rtol=1e-9, atol=0)


def test_holdout_spend_is_per_purchase_day(cdnow_sample, paper_split):
    """m_x_star is the mean spend per holdout purchase day, so x_star * m_x_star = holdout spend."""
    tx = cdnow_sample.transactions
    hold = tx[(tx["date"] > "1997-09-30") & (tx["date"] <= "1998-06-30")]
    spend = hold.groupby("customer_id")["amount"].sum().reindex(paper_split.index, fill_value=0)
    np.testing.assert_allclose(paper_split["holdout_spend"], spend, rtol=1e-12)
    np.testing.assert_allclose(paper_split["x_star"] * paper_split["m_x_star"], spend, rtol=1e-9, atol=1e-9)


def test_same_day_purchases_count_once():
    tx = pd.DataFrame({
        "customer_id": ["A", "A", "A", "A", "B"],
        "date": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-08", "2020-01-08 15:00", "2020-01-02"], format="ISO8601"),
        "amount": [1.0, 2.0, 4.0, 6.0, 5.0],
    })
    s = rfm_summary(tx, observation_end="2020-01-15", time_unit="W")
    assert s.loc["A", "x"] == 1 and s.loc["A", "t_x"] == 1.0 and s.loc["A", "T"] == 2.0
    assert s.loc["A", "m_x"] == 10.0  # the repeat day's total, first day excluded
    assert s.loc["B", "x"] == 0 and s.loc["B", "m_x"] == 0.0 and s.loc["B", "T"] == 13 / 7
    assert s.loc["A", "total_spend"] == 13.0


def test_calibration_end_outside_range_is_an_error(cdnow_sample):
    tx = cdnow_sample.transactions
    for bad in ["1996-12-31", "1998-06-30", "1999-01-01"]:
        with pytest.raises(DataValidationError, match="calibration end"):
            calibration_holdout(tx, bad, "1998-06-30")


def test_unknown_time_unit(cdnow_sample):
    with pytest.raises(ValueError, match="time_unit"):
        rfm_summary(cdnow_sample.transactions, time_unit="fortnight")


def test_overview_tables(cdnow_sample):
    tx = cdnow_sample.transactions
    dist = purchases_per_customer(tx, max_count=5)
    assert dist["customers"].sum() == 2_357
    assert dist.index[-1] == "5+"
    s = rfm_summary(tx)
    assert dist.loc["1", "customers"] == (s["x"] == 0).sum()
    gaps = interpurchase_days(tx)
    assert len(gaps) == s["x"].sum() and (gaps > 0).all()
    cohorts = first_purchase_cohorts(tx, "M")
    assert cohorts["new_customers"].sum() == 2_357
    assert [str(p) for p in cohorts.index] == ["1997-01", "1997-02", "1997-03"]


def test_purchase_day_distribution_from_a_summary(cdnow_sample):
    """The distribution from a summary's x + 1 equals the one counted from the log, row for row."""
    from helpers.summary import purchase_day_distribution

    tx = cdnow_sample.transactions
    from_log = purchases_per_customer(tx, max_count=4)
    from_summary = purchase_day_distribution(rfm_summary(tx)["x"] + 1, max_count=4)
    pd.testing.assert_frame_equal(from_log, from_summary)
    assert list(from_summary.index) == ["1", "2", "3", "4+"]
    # four customers with 1, 1, 3 and 7 purchase days: pooled at 3+
    small = purchase_day_distribution(pd.Series([1, 1, 3, 7]), max_count=3)
    assert small["customers"].tolist() == [2, 0, 2]
    assert small["share"].tolist() == [0.5, 0.0, 0.5]
    # against counting text labels (the earlier implementation, written out here), on a heavy tail
    n = pd.Series(np.random.default_rng(1).geometric(0.3, 5000).astype(float), name="x")
    label = n.clip(upper=6).astype(int).astype(str).where(n < 6, "6+")
    ref = label.value_counts().reindex([*map(str, range(1, 6)), "6+"], fill_value=0)
    got = purchase_day_distribution(n, max_count=6)
    assert got["customers"].tolist() == ref.tolist() and got.index.name == "purchase_days"
    with pytest.raises(ValueError, match="1 are not"):         # nothing dropped silently
        purchase_day_distribution(pd.Series([1.0, np.nan, 2.0]))


def test_period_names():
    from helpers.summary import period_name

    assert [period_name(u) for u in ("D", "W", "M", "Q")] == ["day", "week", "month", "quarter"]
    with pytest.raises(ValueError, match="fortnight"):
        period_name("fortnight")


def test_discrete_calibration_holdout_counts_opportunities_after_the_calibration_end():
    """Counted by hand: yearly opportunities, calibration to 2020, holdout 2021-2022."""
    from helpers.summary_discrete import discrete_calibration_holdout

    log = pd.DataFrame({"customer_id": ["A", "A", "A", "A", "B", "B", "C"],
                        "date": pd.to_datetime(["2019-03-01", "2020-05-05", "2020-07-07", "2022-01-01",
                                                "2020-02-02", "2021-06-01", "2021-03-03"])})
    s = discrete_calibration_holdout(log, "Y", "2020-12-31", "2022-12-31")
    assert list(s.index) == ["A", "B"]                       # C arrived after the calibration end
    assert s[["x", "t_x", "T", "x_star", "t_star"]].to_dict("index") == {
        "A": {"x": 1, "t_x": 1, "T": 1, "x_star": 1, "t_star": 2},   # 2020 (twice = once); 2022
        "B": {"x": 0, "t_x": 0, "T": 0, "x_star": 1, "t_star": 2},   # first in 2020; 2021
    }
    with pytest.raises(ValueError, match="last day of its period"):
        discrete_calibration_holdout(log, "Y", "2020-06-30", "2022-12-31")
    with pytest.raises(ValueError, match="no holdout opportunity"):
        discrete_calibration_holdout(log, "Y", "2022-12-31", "2022-12-31")
