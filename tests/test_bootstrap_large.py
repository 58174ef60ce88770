"""Tests of helpers.value.bootstrap on large bases (issue #15): the rescaled m-out-of-n replicates, the sampled
equity of a replicate, and the per-customer intervals evaluated on demand."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.models import fit_gamma_gamma, fit_model
from helpers.simulate import simulate_bgnbd
from helpers.value import BootstrapResult, bootstrap, clv

N_CUSTOMERS, B = 12_000, 150
KW = dict(model="bgnbd", n_boot=B, horizon_months=12, show_progress=False)


@pytest.fixture(scope="module")
def base():
    """12,000 customers simulated from BG/NBD + Gamma-Gamma (the FHL CDNOW estimates), acquired over 12 weeks."""
    return simulate_bgnbd(N_CUSTOMERS, 0.243, 4.414, 0.793, 2.426, p=6.25, q=3.74, gamma=15.44,
                          observation_days=273, acquisition_days=84, seed=11).summary()


@pytest.fixture(scope="module")
def pair(base):
    """The bootstrap of all 12,000 customers, and the large-base form (resamples of 3,000, rescaled)."""
    f, g = fit_model("bgnbd", base), fit_gamma_gamma(base, warn=False)
    exact = bootstrap(base, seed=1, fit=f, spend_fit=g, resample_above=None, **KW)
    large = bootstrap(base, seed=2, fit=f, spend_fit=g, resample_above=5_000, resample_size=3_000, **KW)
    return exact, large


def _sd_band(a, b, k=4.0):
    """k Monte-Carlo SE of the log ratio of two independent bootstrap SDs (per column):
    sqrt((kurtosis - 1) / (4 B)) each (the SE of a log SD), combined."""
    def var(d):
        return (stats.kurtosis(d, axis=0, fisher=False) - 1.0) / (4 * len(d))
    return k * np.sqrt(var(a) + var(b))


def test_large_base_bootstrap_equals_the_bootstrap_in_distribution(pair):
    """The rescaled resamples of 3,000 customers have the spread and centre of the resamples of all 12,000:
    every parameter's and the equity's SD within 4 Monte-Carlo SE (log ratio), and the means within 4 SE of
    their difference.  Without the sqrt(m/n) rescaling the SDs would be twice as large (log ratio 0.69 against
    a band of about 0.3), so the test fails if the rescaling is wrong."""
    exact, large = pair
    assert exact.n_failed == large.n_failed == 0
    assert (exact.n_customers, exact.resample_size) == (12_000, 12_000)      # what the reports say (02)
    assert (large.n_customers, large.resample_size) == (12_000, 3_000)
    D1, D2 = exact.param_draws.to_numpy(), large.param_draws.to_numpy()
    log_ratio = np.log(D2.std(axis=0, ddof=1) / D1.std(axis=0, ddof=1))
    assert (np.abs(log_ratio) < _sd_band(D1, D2)).all(), (log_ratio, _sd_band(D1, D2))
    se_diff = np.sqrt(D1.var(axis=0, ddof=1) / len(D1) + D2.var(axis=0, ddof=1) / len(D2))
    assert (np.abs(D2.mean(axis=0) - D1.mean(axis=0)) < 4 * se_diff).all()
    e1, e2 = exact.equity_draws, large.equity_draws
    assert abs(np.log(e2.std(ddof=1) / e1.std(ddof=1))) < _sd_band(e1[:, None], e2[:, None])[0]
    assert abs(e2.mean() - e1.mean()) < 4 * np.sqrt(e1.var(ddof=1) / B + e2.var(ddof=1) / B)
    # the same point estimate, and intervals whose ends agree to their Monte-Carlo error (4 SE of the SD)
    assert large.equity["estimate"] == exact.equity["estimate"]
    width1, width2 = (b.equity["upper"] - b.equity["lower"] for b in (exact, large))
    assert abs(np.log(width2 / width1)) < 0.5, (width1, width2)


def test_large_base_equity_of_a_replicate_is_the_exact_equity(base, pair):
    """A large-base replicate's equity (full-data equity + a GREG estimate of the change from a sample of about
    1,000 of the 12,000 distinct (x, T): here every customer is its own) equals the equity of all 12,000
    customers under its parameters (helpers.value.clv) to 15% of the replicates' SD: an error that adds at
    most 2% to their variance (the percentile ends of 150 replicates have a Monte-Carlo SE of about 0.15 SD).
    A Horvitz-Thompson estimate without the sample-size weights would be off by the sampling fraction, a
    wrong sign of the change by twice the SD."""
    _, large = pair
    D = large.param_draws.to_numpy()
    f, g = fit_model("bgnbd", base), fit_gamma_gamma(base, warn=False)
    names = list(f.params.index)
    exact = np.array([clv(dataclasses.replace(f, params=pd.Series(d[:4], index=names)),
                          dataclasses.replace(g, params=pd.Series(d[4:], index=["p", "q", "gamma"])),
                          base).sum() for d in D[:40]])
    err = large.equity_draws[:40] - exact
    sd = large.equity_draws.std(ddof=1)
    assert np.max(np.abs(err)) < 0.15 * sd, (np.max(np.abs(err)), sd)
    # (not the full-data equity: the replicates move it by about one SD)
    assert np.max(np.abs(exact - large.equity["estimate"])) > 0.5 * sd


@pytest.mark.parametrize("which", [0, 1])
def test_customer_intervals_on_demand_are_the_replicates_percentiles(base, pair, which):
    """customer_clv (a few customers) and clv (all, in blocks) give the 5th/95th percentiles of each customer's
    CLV under the replicates' parameters, computed here with helpers.value.clv."""
    boot = pair[which]
    ids = list(base.sort_values("x").index[[0, 1, 5000, 11_000, 11_999]]) + [base.index[7]]
    part = boot.customer_clv(ids)
    assert list(part.index) == ids and list(part.columns) == ["clv", "lower", "upper"]
    f, g = fit_model("bgnbd", base), fit_gamma_gamma(base, warn=False)
    names = list(f.params.index)
    C = np.array([clv(dataclasses.replace(f, params=pd.Series(d[:4], index=names)),
                      dataclasses.replace(g, params=pd.Series(d[4:], index=["p", "q", "gamma"])),
                      base.loc[ids]).to_numpy() for d in boot.param_draws.to_numpy()])
    np.testing.assert_allclose(part["lower"], np.quantile(C, 0.05, axis=0), rtol=1e-9)
    np.testing.assert_allclose(part["upper"], np.quantile(C, 0.95, axis=0), rtol=1e-9)
    np.testing.assert_allclose(part["clv"], clv(f, g, base.loc[ids]), rtol=1e-6)
    with pytest.raises(KeyError, match="not in the bootstrap"):
        boot.customer_clv(["no such customer"])
    if which == 1:     # all customers, in blocks: the same numbers
        pd.testing.assert_frame_equal(boot.clv.loc[ids], part)
        assert (boot.clv.index == base.index).all()


def test_a_result_without_customer_draws_says_so():
    b = BootstrapResult(params=pd.DataFrame(), equity=pd.Series(dtype=float))
    with pytest.raises(ValueError, match="no per-customer CLV"):
        _ = b.clv
    given = BootstrapResult(params=pd.DataFrame(), equity=pd.Series(dtype=float), clv=pd.DataFrame({"clv": [1.0]}))
    assert given.clv["clv"].iloc[0] == 1.0


def test_resample_size_is_checked(base):
    with pytest.raises(ValueError, match="resample_size"):
        bootstrap(base, n_boot=1, resample_above=10, resample_size=1, show_progress=False)


def test_large_base_without_amounts_values_purchases(base):
    """Without a spend model (value_per_purchase) the large-base replicates resample the frequency model alone,
    and a replicate's sampled equity equals the exact discounted purchases under its parameters (15% of the SD,
    as with spend)."""
    f = fit_model("bgnbd", base)
    b = bootstrap(base.drop(columns="m_x"), fit=f, seed=3, resample_above=5_000, resample_size=3_000,
                  value_per_purchase=2.0, margin=0.5, **{**KW, "n_boot": 20})
    assert b.param_draws.shape == (20, 4)
    from helpers.value import ConstantSpend

    exact = np.array([clv(dataclasses.replace(f, params=pd.Series(d, index=f.params.index)), ConstantSpend(2.0),
                          base, margin=0.5).sum() for d in b.param_draws.to_numpy()])
    assert b.equity["estimate"] == pytest.approx(clv(f, ConstantSpend(2.0), base, margin=0.5).sum(), rel=1e-9)
    assert np.max(np.abs(b.equity_draws - exact)) < 0.15 * b.equity_draws.std(ddof=1)
