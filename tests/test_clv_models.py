"""Notebook 02's evidence (helpers.clv_models) on a continuous and a discrete-time log.

Oracles: lifetimes 0.11.3's BG/BB (``BetaGeoBetaBinomFitter``) for the discrete-time expectations and
P(alive); the donations log's yearly counts (data/README.md: 5,558, 4,740, 4,101, 3,638, 3,415 and 3,163
donations in 1996-2001 by the 11,104 donors of 1995); the CDNOW sample's published calibration counts
(Fader, Hardie & Lee 2005: 1,411 customers without a repeat purchase among 2,357).
"""

from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from helpers import clv_models
from helpers.config import load_config, load_data
from helpers.diagnostics import RANKING_METRICS
from helpers.stage import compute_stage

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper():
    return compute_stage(ROOT / "configs" / "cdnow-paper.yaml")


@pytest.fixture(scope="module")
def donations():
    """Donations with BG/BB and BG/NBD (one continuous model stands for all; the others are slow here)."""
    import helpers.stage as hs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hs, "frequency_model_names", lambda: ("bgnbd", "bgbb"))
        stage = compute_stage(ROOT / "configs" / "donations.yaml")
    return stage, load_data(load_config(ROOT / "configs" / "donations.yaml")).transactions


def _bgbb_oracle(params):
    from lifetimes import BetaGeoBetaBinomFitter

    lt = BetaGeoBetaBinomFitter()
    lt.params_ = pd.Series(dict(params))
    return lt


def test_model_status_covers_every_registered_model(paper):
    from helpers.models import registered_models

    status = clv_models.model_status(paper)
    assert list(status.index) == list(registered_models())
    assert status.loc["bgbb", "status"] == "does not apply" and "opportunity_period" in status.loc["bgbb", "detail"]
    assert (status.drop(index="bgbb")["status"] == "fitted").all()
    assert status.loc["bgcnbd_k", "detail"].startswith("k = 1 chosen by the likelihood with litt")
    n = len(registered_models())
    assert clv_models.coverage_sentence(paper) == (f"{n - 1} of the {n} registered models were fitted and compared; "
                                                   "BG/BB does not apply to this log.")


def test_fit_tables_and_calibration_counts(paper):
    params, stats = clv_models.fit_tables(paper)
    assert params.loc[("BG/NBD", "r"), "estimate"] == pytest.approx(0.243, abs=5e-4)
    k_row = params.loc[("BG/CNBD-k", "k")]
    assert k_row["estimate"] == 1 and np.isnan(k_row["se"]) and k_row["note"].startswith("integer parameter")
    assert (stats["delta_bic"] >= 0).all() and (stats.groupby("summary")["delta_bic"].min() == 0).all()
    cal = clv_models.calibration_fit(paper)
    assert cal.loc["0", "actual"] == 1411 and cal["actual"].sum() == 2357
    assert list(cal.columns) == ["actual", *[f.label for f in paper.fits_cal.values()]]


def test_results_carry_the_issue_12_keys(paper):
    fits = clv_models.fit_results(paper)
    for name, f in paper.fits_cal.items():
        assert set(fits[name]) >= {"params", "se", "log_likelihood"}
        assert fits[name]["log_likelihood"] == f.log_likelihood
    assert fits["bgcnbd_k"]["params"]["k"] == 1 and fits["mbgcnbd_k"]["params"]["k"] == 1
    hold = clv_models.holdout_results(paper)
    assert set(hold["mae"]) == {*paper.fits_cal, "baseline"}
    assert hold["mae"]["pareto_nbd"] == paper.comparison.loc["pareto_nbd", "mae"]
    for name in (*paper.fits_cal, "baseline"):
        assert set(hold["ranking"][name]) == set(RANKING_METRICS)


def test_discrete_tracking_counts_and_bgbb_expectations(donations):
    """Actual: the log's donations per year after 1995; expected (BG/BB, everyone first in 1995): 11,104 times
    lifetimes' E[X(k)] for a new donor after k opportunities."""
    stage, tx = donations
    track = clv_models.tracking(stage)
    assert track["unit"] == "year" and track["split"] == 3.0
    assert track["actual"]["repeat"].tolist() == [5558, 4740, 4101, 3638, 3415, 3163]
    lt = _bgbb_oracle(stage.fits_cal["bgbb"].params)
    zero = np.zeros(1)
    new = [float(np.asarray(lt.conditional_expected_number_of_purchases_up_to_time(k, zero, zero, zero))[0])
           for k in range(1, 7)]
    np.testing.assert_allclose(track["expected"]["BG/BB"]["cumulative"], 11104 * np.array(new), rtol=1e-9)
    # the continuous model: its unconditional expectation from each first purchase day to the year's end
    bg = stage.fits_cal["bgnbd"]
    first = stage.cal["first_purchase"]
    end_1996 = (pd.Timestamp("1997-01-01") - first).dt.days.to_numpy() / 7.0
    assert track["expected"]["BG/NBD"]["cumulative"].iloc[0] == pytest.approx(
        float(np.sum(bg.expected_purchases_new(end_1996))), rel=1e-10)


def test_discrete_calibration_fit_and_alive_matrix(donations):
    stage, _ = donations
    cal = clv_models.calibration_fit(stage)
    counts = stage.cal_discrete["x"].value_counts()
    assert cal.loc["0", "actual"] == counts[0] and cal.loc["3", "actual"] == counts[3] and cal.loc["4", "actual"] == 0
    assert (cal >= 0).all().all()
    m = clv_models.alive_matrix(stage, "p_alive")
    lt = _bgbb_oracle(stage.model.params)
    for x, t_x in ((0, 0), (2, 4), (6, 6), (1, 5)):
        ref = float(np.asarray(lt.conditional_probability_alive(0, np.array([x]), np.array([t_x]), np.array([6])))[0])
        assert m.loc[x, t_x] == pytest.approx(ref, rel=1e-9), (x, t_x)
    assert np.isnan(m.loc[3, 2]) and np.isnan(m.loc[0, 3])       # x > t_x, or x = 0 with a recency: impossible
    e = clv_models.alive_matrix(stage, "expected")             # default: the 12-month horizon = 1 opportunity
    ref = float(np.asarray(lt.conditional_expected_number_of_purchases_up_to_time(
        1, np.array([2]), np.array([4]), np.array([6])))[0])
    assert e.loc[2, 4] == pytest.approx(ref, rel=1e-9)


def test_discrete_histories_end_at_the_customers_p_alive(donations):
    from helpers.report import pseudonymise

    from helpers.aggregates_log import customer_days

    stage, _ = donations
    picks = clv_models.example_customers(stage, 3)
    days = customer_days(ROOT / "configs" / "donations.yaml", picks, stage=stage)
    # the stage fetched every pick for up to MAX_EXAMPLES examples, and holds what the engine gives
    held = stage.aggregates["aggregates_log.examples"]
    for n in range(1, 9):
        assert set(clv_models.example_customers(stage, n)) <= set(held.attrs["ids"])
    pd.testing.assert_frame_equal(days, customer_days(ROOT / "configs" / "donations.yaml", picks))
    hist = clv_models.example_histories(stage, days, picks)
    assert len(hist["histories"]) == 3 and hist["label"] == "BG/BB"
    full_d = stage.full_discrete
    for label, h in hist["histories"].items():
        cid = next(c for c in full_d.index if label.startswith(pseudonymise([c])[0]))
        row = full_d.loc[[cid]]
        assert h["p_alive"].iloc[-1] == pytest.approx(float(stage.model.p_alive(row)[0]), rel=1e-12)
        assert h["date"].iloc[-1] == pd.Timestamp("2001-12-31") and h["p_alive"].iloc[0] == 1.0


def test_committed_notebook_records_the_stage_equity_and_the_issue_12_keys():
    from helpers.report import extract_results

    res = extract_results(nbformat.read(ROOT / "notebooks" / "02-clv-models.ipynb", as_version=4))
    stage = compute_stage(ROOT / "configs" / "cdnow.yaml")
    assert res["customer_equity"]["estimate"] == pytest.approx(stage.equity, rel=1e-9)
    assert res["customer_equity"]["lower"] <= res["customer_equity"]["estimate"] <= res["customer_equity"]["upper"]
    assert res["model"]["name"] == stage.model_name and res["valuation"]["horizon_months"] == stage.horizon_months
    assert set(res["models"]) == set(stage.fits_cal) and set(res["holdout"]["mae"]) == {*stage.fits_cal, "baseline"}
    assert set(res["holdout"]["ranking"]["baseline"]) == set(RANKING_METRICS)
    assert res["models"]["bgcnbd_k"]["params"]["k"] == 1
    assert 3 <= len(res["headlines"]) <= 8


def test_continuous_tracking_from_the_stage_aggregates_matches_the_published_totals(paper):
    """FHL (2005): the sample's 2,357 customers made 2,457 repeat purchases in weeks 1-39 and 1,882 in 40-78."""
    track = clv_models.tracking(paper)
    actual = track["actual"]
    assert len(actual) == 78 and track["split"] == 39.0 and track["dropped_days"] == 0
    assert actual["repeat"].iloc[:39].sum() == 2_457 and actual["repeat"].iloc[39:].sum() == 1_882
    assert set(track["expected"]) == {f.label for f in paper.fits_cal.values()}


def test_the_report_says_when_the_bootstrap_resampled_fewer_customers():
    from types import SimpleNamespace

    assert clv_models.bootstrap_method_note(SimpleNamespace(n_customers=23_570, resample_size=23_570)) == ""
    assert clv_models.bootstrap_method_note(SimpleNamespace()) == ""        # a result without the attributes
    note = clv_models.bootstrap_method_note(SimpleNamespace(n_customers=1_000_000, resample_size=20_000))
    assert "1,000,000 customers" in note and "20,000 customers" in note and "m-out-of-n" in note
