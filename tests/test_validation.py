"""Model validation helpers and value-concentration measures."""

import numpy as np
import pandas as pd
import pytest

from helpers import concentration, validation
from helpers.models import fit_model


@pytest.fixture(scope="module")
def fits(paper_split):
    return {name: fit_model(name, paper_split, time_unit="W") for name in ("bgnbd", "pareto_nbd")}


def test_calibration_fit_counts_every_customer(fits, paper_split):
    table = validation.calibration_fit(fits, paper_split, max_x=7)
    assert table["actual"].sum() == len(paper_split)
    for name in fits:  # expected counts of a proper distribution add up to the customers
        assert table[name].sum() == pytest.approx(len(paper_split), rel=1e-6)
    assert table.loc["0", "actual"] == (paper_split["x"] == 0).sum()


def test_holdout_predictions_and_comparison(fits, paper_split):
    pred = validation.holdout_predictions(fits, paper_split)
    assert pred["actual"].sum() == 1882
    # FHL (2005) worked example: E[X(39) | x=2, t_x=30.43, T=38.86] = 1.226 under BG/NBD
    assert fits["bgnbd"].expected_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)
    comp = validation.holdout_comparison(fits, pred)
    assert set(comp.index) == {"bgnbd", "pareto_nbd", "baseline"}
    assert (comp["actual_total"] == 1882).all()
    np.testing.assert_allclose(comp.loc["bgnbd", "predicted_total"], pred["bgnbd"].sum())
    assert comp.loc["bgnbd", "mae"] < comp.loc["baseline", "mae"]  # the model beats the naive rate


def test_conditional_expectations_group_means(fits, paper_split):
    pred = validation.holdout_predictions(fits, paper_split)
    cond = validation.conditional_expectations(pred, paper_split["x"], max_x=3)
    assert list(cond.index) == ["0", "1", "2", "3+"]
    assert cond["customers"].sum() == len(paper_split)
    zero = paper_split["x"] == 0
    assert cond.loc["0", "actual"] == pytest.approx(paper_split.loc[zero, "x_star"].mean())


def test_recommend_model_rules():
    comp = pd.DataFrame({"mae": [1.0, 1.005, 1.2, 2.0], "bic": [10, 20, 5, np.nan],
                         "total_error_pct": [-15.0, 3.0, 1.0, 40.0]},
                        index=["A", "B", "C", "baseline"])
    choice, reason = validation.recommend_model(comp, tolerance=0.01)
    assert choice == "B" and "misses total holdout purchases by the least" in reason  # tie broken by total error
    choice, _ = validation.recommend_model(comp, tolerance=0.0)
    assert choice == "A"


def test_frequency_recency_matrix(fits):
    m = validation.frequency_recency_matrix(fits["bgnbd"], 38.86, max_x=5, n_recency=4)
    assert m.shape == (6, 4) and m.iloc[0, 1:].isna().all()
    # more recent purchase -> more likely alive, for a repeat buyer
    assert (np.diff(m.loc[3].to_numpy()) > 0).all()
    assert ((m.iloc[1:] > 0) & (m.iloc[1:] <= 1)).all().all()


def test_parameter_recovery_table(fits):
    f = fits["bgnbd"]
    truth = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "unused": 1}
    t = validation.parameter_recovery(f, truth)
    assert list(t.index) == ["r", "alpha", "a", "b"]
    assert (t["z"].abs() < 0.1).all()  # the published values are the estimates
    with pytest.raises(ValueError):
        validation.parameter_recovery(f, {"zzz": 1})


def test_concentration_measures():
    v = pd.Series([50.0, 30, 10, 5, 5], index=list("abcde"))
    assert concentration.top_share(v, 0.2) == pytest.approx(0.5)
    assert concentration.top_share(v, 0.4) == pytest.approx(0.8)
    shares = concentration.top_shares(v, (0.2, 0.4))
    assert list(shares.index) == ["top 20%", "top 40%"]
    curve = concentration.concentration_curve(v, points=6)
    np.testing.assert_allclose(curve["share_value"], [0, 0.5, 0.8, 0.9, 0.95, 1.0])
    assert concentration.gini(pd.Series([1.0, 1, 1, 1])) == pytest.approx(0)
    assert concentration.gini(pd.Series([0.0, 0, 0, 4])) == pytest.approx(0.75)
    past = pd.Series([1.0, 50, 10, 5, 5], index=list("abcde"))
    assert concentration.top_overlap(v, past, 0.4) == pytest.approx(0.5)
    # ranking by the wrong score captures less of the value
    assert concentration.top_share(v, 0.2, score=past) == pytest.approx(0.3)


def test_recommend_model_says_when_the_choice_is_worse_than_the_baseline():
    comp = pd.DataFrame({"mae": [1.10, 1.20, 1.00], "total_error_pct": [-5.0, 3.0, 40.0]},
                        index=["bgnbd", "pareto_nbd", "baseline"])
    _, reason = validation.recommend_model(comp)
    assert "its MAE (1.100) is 10% above the naive baseline's (1.000)" in reason


def test_value_and_score_gives_the_numbers_of_the_functions_it_replaces():
    """One sort per ranking: the shares, curves and overlap equal top_share, concentration_curve and
    top_overlap called one by one (ties and NaN scores), aligned or by labels (a shuffled score)."""
    rng = np.random.default_rng(3)
    n = 2000
    idx = pd.Index([f"c{i}" for i in rng.permutation(n)])
    value = pd.Series(np.round(rng.gamma(0.5, 10.0, n), 1), index=idx)       # ties
    score = pd.Series(rng.integers(0, 8, n).astype(float), index=idx)
    score[rng.random(n) < 0.03] = np.nan
    for sc in (score, score.sample(frac=1.0, random_state=2)):
        got = concentration.value_and_score(value, sc, shares=(0.01, 0.1, 0.5), overlap_share=0.2, points=51)
        for s in (0.01, 0.1, 0.5):
            assert got["shares"].loc[f"top {s:.0%}", "value"] == concentration.top_share(value, s)
            assert got["shares"].loc[f"top {s:.0%}", "score"] == concentration.top_share(value, s, score=sc)
        pd.testing.assert_frame_equal(got["curves"]["value"], concentration.concentration_curve(value, points=51))
        pd.testing.assert_frame_equal(got["curves"]["score"],
                                      concentration.concentration_curve(value, score=sc, points=51))
        assert got["overlap"] == concentration.top_overlap(value, sc, 0.2)
    assert np.isnan(concentration.value_and_score(value, score, overlap_share=0.0)["overlap"])
    with pytest.raises(ValueError, match="share"):
        concentration.value_and_score(value, score, shares=(1.5,))
