"""Ranking metrics against values computed independently (scipy, hand calculation)."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from helpers import diagnostics


def test_spearman_equals_scipy_with_ties():
    rng = np.random.default_rng(1)
    a = rng.poisson(1.0, 500).astype(float)
    p = a + rng.normal(0, 1.0, 500)
    p[:50] = 0.3                                     # ties in the prediction too
    assert diagnostics.spearman(a, p) == pytest.approx(spearmanr(a, p).statistic, abs=1e-12)


def test_top_capture_by_hand():
    actual = np.array([5.0, 0, 0, 3, 0, 0, 0, 0, 0, 2])
    predicted = np.arange(10, 0, -1, dtype=float)    # customer 0 ranked first
    # top 10% = customer 0 -> 5 of 10 purchases
    assert diagnostics.top_capture(actual, predicted, 0.1) == pytest.approx(0.5)
    # top 40%: customers 0..3 -> 8 of 10
    assert diagnostics.top_capture(actual, predicted, 0.4) == pytest.approx(0.8)


def test_top_capture_ties_do_not_depend_on_row_order():
    actual = np.array([4.0, 0.0, 0.0, 0.0])
    predicted = np.ones(4)                            # all tied: the top 25% gets a quarter on average
    assert diagnostics.top_capture(actual, predicted, 0.25) == pytest.approx(0.25)
    assert diagnostics.top_capture(actual[::-1], predicted, 0.25) == pytest.approx(0.25)


def test_gini_perfect_random_and_reversed():
    rng = np.random.default_rng(2)
    a = rng.poisson(2.0, 2000).astype(float)
    assert diagnostics.gini(a, a) == pytest.approx(1.0)
    assert diagnostics.gini(a, -a) < -0.5
    noise = rng.uniform(size=a.size)
    assert abs(diagnostics.gini(a, noise)) < 0.06     # random order: 0 up to sampling noise (~1/sqrt(n))


def test_undefined_without_holdout_purchases():
    z = np.zeros(5)
    assert np.isnan(diagnostics.top_capture(z, np.arange(5.0)))
    assert np.isnan(diagnostics.gini(z, np.arange(5.0)))
    assert np.isnan(diagnostics.spearman(z, np.arange(5.0)))


def test_ranking_table_model_beats_noise(paper_split):
    from helpers.models import fit_model
    from helpers.value import naive_baseline_holdout

    fit = fit_model("bgnbd", paper_split)
    t_star = float(paper_split["t_star"].iloc[0])
    preds = {"bgnbd": fit.expected_purchases(t_star, paper_split),
             "baseline": naive_baseline_holdout(paper_split).to_numpy(),
             "noise": np.random.default_rng(0).uniform(size=len(paper_split))}
    import pandas as pd
    table = diagnostics.ranking_table(paper_split["x_star"], pd.DataFrame(preds, index=paper_split.index))
    assert list(table.columns) == list(diagnostics.RANKING_METRICS)
    assert table.loc["bgnbd", "top_decile_capture"] > table.loc["noise", "top_decile_capture"] + 0.2
    assert table.loc["bgnbd", "gini"] > 0.3 and abs(table.loc["noise", "gini"]) < 0.1


def test_ranking_table_equals_the_metrics_column_by_column():
    """The table sorts each prediction once (ranks and capture curve from one sort): the same numbers as
    ``spearman`` (scipy's average ranks), ``top_capture`` and ``gini``, with ties and a constant column."""
    import pandas as pd

    rng = np.random.default_rng(3)
    a = rng.poisson(0.7, 3000).astype(float)
    preds = pd.DataFrame({"model": a * rng.uniform(0.5, 2.0, a.size) + rng.gamma(1.0, 0.3, a.size),
                          "rounded": np.round(a + rng.normal(0, 1, a.size), 0),      # heavy ties
                          "constant": np.ones(a.size)})
    table = diagnostics.ranking_table(a, preds, share=0.2)
    for name in preds:
        p = preds[name].to_numpy()
        assert table.loc[name, "top_decile_capture"] == diagnostics.top_capture(a, p, 0.2)
        assert table.loc[name, "gini"] == diagnostics.gini(a, p)
        if name == "constant":
            assert np.isnan(table.loc[name, "spearman"]) and np.isnan(diagnostics.spearman(a, p))
        else:
            assert table.loc[name, "spearman"] == pytest.approx(spearmanr(a, p).statistic, abs=1e-12)
            assert table.loc[name, "spearman"] == diagnostics.spearman(a, p)
    none = diagnostics.ranking_table(np.zeros(4), pd.DataFrame({"m": np.arange(4.0)}))
    assert none.isna().all().all()
