"""Tests of helpers.models against published CDNOW results (FHL 2005a/b, Fader-Hardie notes)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from helpers.models import (
    IndependenceWarning,
    ModelFitError,
    compare_models,
    fit_gamma_gamma,
    fit_model,
    log_likelihood,
    unique_apply,
    unique_rows,
)


@pytest.fixture(scope="module")
def cdnow(paper_split):
    return paper_split


@pytest.fixture(scope="module")
def bg(cdnow):
    return fit_model("bgnbd", cdnow, time_unit="W")


@pytest.fixture(scope="module")
def pnbd(cdnow):
    return fit_model("pareto_nbd", cdnow, time_unit="W")


def test_cdnow_sample_shape(cdnow):
    assert len(cdnow) == 2357
    assert cdnow["T"].max() == pytest.approx(38.857, abs=1e-3)


def test_bgnbd_reproduces_fhl2005(bg):
    # FHL (2005a), section 5: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for k, v in published.items():
        assert round(bg.params[k], 3) == pytest.approx(v, abs=5e-4), k
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert bg.converged
    assert bg.n_customers == 2357
    assert bg.n_unique < 2357
    assert bg.aic == pytest.approx(-2 * bg.log_likelihood + 8)
    assert bg.bic == pytest.approx(-2 * bg.log_likelihood + 4 * np.log(2357))


def test_bgnbd_conditional_expectation_published(bg):
    # FHL (2005a), section 5: E[X(39) | x=2, t_x=30.43, T=38.86] = 1.226
    assert round(float(bg.expected_purchases(39, 2, 30.43, 38.86)), 3) == pytest.approx(1.226, abs=1e-9)


@pytest.mark.parametrize("theta", [(0.5, 5.0, 0.3, 0.5), (0.24, 4.4, 0.79, 2.43)])
@pytest.mark.parametrize("T", [1.0, 5.0, 30.0])
def test_bgnbd_conditional_expectation_of_a_zero_repeat_customer_by_integration(theta, T):
    """x = 0: the customer is alive at T (BG/NBD drop-out follows a repeat purchase), lambda | data ~
    Gamma(r, alpha + T), p ~ Beta(a, b), and E[X(t) | lambda, p] = (1 - exp(-lambda p t)) / p, so
    E[X(t) | 0, 0, T] = E_p[(1 - (1 + p t / (alpha + T))^-r) / p], integrated numerically here.  With
    a + b < 1 (first theta) the 2F1 of FHL (2005a) eq. (10) is negative for small T: the closed form
    must still hold (it used to return NaN there, as lifetimes does)."""
    from scipy import integrate, stats

    from helpers.models import get_model

    r, alpha, a, b = theta
    t = 10.0
    integrand = lambda p: (-np.expm1(-r * np.log1p(p * t / (alpha + T))) / p) * stats.beta.pdf(p, a, b)  # noqa: E731
    pieces = [(0.0, 1e-8), (1e-8, 1e-4), (1e-4, 0.01), (0.01, 0.5), (0.5, 1.0)]
    expected = sum(integrate.quad(integrand, lo, hi, limit=400, epsabs=1e-12)[0] for lo, hi in pieces)
    got = get_model("bgnbd").expected_purchases(theta, t, np.array([0.0]), np.array([0.0]), np.array([T]))
    assert np.all(np.isfinite(got))
    assert float(got[0]) == pytest.approx(expected, rel=1e-5)


def test_pareto_nbd_reproduces_published(pnbd):
    # Fader & Hardie (2005) Pareto/NBD note / FHL (2005a): r=0.553, alpha=10.578, s=0.606, beta=11.669, LL=-9595.0
    # published to 3 decimals: the estimates must round to them (|difference| <= 5e-4; it is <= 3.2e-4)
    published = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    for k, v in published.items():
        assert pnbd.params[k] == pytest.approx(v, abs=5e-4), k
    assert pnbd.log_likelihood == pytest.approx(-9595.0, abs=0.1)


def test_gamma_gamma_reproduces_fhl2005b(cdnow):
    # FHL (2005b, JMR): p = 6.25, q = 3.74, gamma = 15.44 on the 946 repeat buyers
    g = fit_gamma_gamma(cdnow)
    assert g.n_customers == 946
    assert g.n_excluded_nonpositive == 0
    for k, v in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert round(g.params[k], 2) == pytest.approx(v, abs=1e-9), k
    # FHL (2005b) report a correlation of 0.11 between frequency and spend
    assert g.frequency_spend_corr == pytest.approx(0.11, abs=0.01)
    assert g.population_mean_spend() == pytest.approx(6.25 * 15.44 / 2.74, rel=5e-3)
    # x == 0 -> population mean; large x -> close to m_x
    assert g.expected_spend(0, 0.0) == pytest.approx(g.population_mean_spend())
    assert g.expected_spend(1000, 50.0) == pytest.approx(50.0, rel=0.01)


def test_params_table_carries_lifetimes_errors_and_log_scale_intervals(bg):
    """Reference: lifetimes 0.11.3's BG/NBD standard errors on CDNOW (issue 17, 6 decimals); the intervals
    are exp(log theta +- 1.96 se / theta).  (Every model's errors, covariances and intervals are checked
    against lifetimes, CLVTools and a numerical Hessian in test_standard_errors.py.)"""
    lifetimes_se = pd.Series({"r": 0.012557, "alpha": 0.378224, "a": 0.185734, "b": 0.705414})
    tab = bg.params_table()
    assert list(tab.columns) == ["estimate", "se", "lower95", "upper95"]
    np.testing.assert_allclose(tab["se"], lifetimes_se, atol=5e-7)
    half_width_log = 1.959963984540054 * lifetimes_se / tab["estimate"]
    np.testing.assert_allclose(tab["lower95"], tab["estimate"] * np.exp(-half_width_log), rtol=1e-4)
    np.testing.assert_allclose(tab["upper95"], tab["estimate"] * np.exp(half_width_log), rtol=1e-4)


def test_unique_rows_fit_equals_full_fit(cdnow, bg):
    # fitting on every customer (duplicated rows, weights 1) == fitting on unique rows with counts
    x, t_x, T = (cdnow[c].to_numpy() for c in ("x", "t_x", "T"))
    (xu, txu, Tu), inv, counts = unique_rows(x, t_x, T)
    assert counts.sum() == len(x)
    np.testing.assert_array_equal(xu[inv], x)
    f_w = fit_model("bgnbd", x=xu, t_x=txu, T=Tu, weights=counts)
    np.testing.assert_allclose(f_w.params.to_numpy(), bg.params.to_numpy(), rtol=1e-6)
    assert f_w.log_likelihood == pytest.approx(bg.log_likelihood, abs=1e-6)
    # and the LL function itself agrees row-wise vs weighted
    assert log_likelihood("bgnbd", bg.params, xu, txu, Tu, counts) == pytest.approx(
        log_likelihood("bgnbd", bg.params, x, t_x, T), rel=1e-12)


def test_same_estimates_as_lifetimes(cdnow, bg):
    from lifetimes import BetaGeoFitter

    lf = BetaGeoFitter().fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    np.testing.assert_allclose(bg.params.to_numpy(), lf.params_[["r", "alpha", "a", "b"]].to_numpy(), rtol=1e-3)


def test_predictions_match_lifetimes(cdnow, bg, pnbd):
    from lifetimes import BetaGeoFitter, ParetoNBDFitter

    for fit, cls in ((bg, BetaGeoFitter), (pnbd, ParetoNBDFitter)):
        lf = cls()
        lf.params_ = fit.params.copy()
        args = (cdnow["x"].to_numpy(), cdnow["t_x"].to_numpy(), cdnow["T"].to_numpy())
        np.testing.assert_allclose(fit.expected_purchases(10.0, *args),
                                   lf.conditional_expected_number_of_purchases_up_to_time(10.0, *args), rtol=1e-9)
        np.testing.assert_allclose(fit.p_alive(*args), lf.conditional_probability_alive(*args), rtol=1e-9)
        np.testing.assert_allclose(fit.expected_purchases_new([1.0, 39.0]),
                                   lf.expected_number_of_purchases_up_to_time(np.array([1.0, 39.0])), rtol=1e-9)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd", "pareto_nbd"])
def test_count_distribution_is_a_distribution(cdnow, model):
    f = fit_model(model, cdnow)
    n = np.arange(2000.0)
    for t in (5.0, 39.0):
        P = f.probability_of_n_purchases(t, n)
        assert P.sum() == pytest.approx(1.0, abs=1e-9)
        assert (n * P).sum() == pytest.approx(float(f.expected_purchases_new(t)), rel=1e-8)
    dist = f.expected_count_distribution(cdnow["T"], max_x=7)
    assert list(dist.index) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert dist["expected"].sum() == pytest.approx(len(cdnow))
    assert (dist["expected"] > 0).all()
    Tu, n_T = np.unique(cdnow["T"].to_numpy(), return_counts=True)
    if model != "pareto_nbd":
        # reference: lifetimes 0.11.3's P(X(t) = x) (FHL 2005a eq. 8; Batislam et al. 2007), summed over ages
        import lifetimes

        lf = getattr(lifetimes, {"bgnbd": "BetaGeoFitter", "mbgnbd": "ModifiedBetaGeoFitter"}[model])()
        lf.params_ = f.params.copy()
        P_lf = np.array([[lf.probability_of_n_purchases_up_to_time(t, k) for k in range(7)] for t in Tu])
        np.testing.assert_allclose(dist["expected"].to_numpy()[:7], n_T @ P_lf, rtol=1e-12)
    # the calibration histogram is fitted well (FHL 2005a, Figure 2): 1411 customers with x = 0, within two
    # binomial standard deviations sqrt(sum_i p_i (1 - p_i)) (about 24 customers) of the model's count
    p0 = f.probability_of_n_purchases(Tu, 0.0)
    sd = np.sqrt(np.sum(n_T * p0 * (1 - p0)))
    assert abs(dist.loc["0", "expected"] - (cdnow["x"] == 0).sum()) < 2 * sd


def test_bgnbd_pmf_equation_8_against_lifetimes(bg):
    from lifetimes import BetaGeoFitter

    lf = BetaGeoFitter()
    lf.params_ = bg.params.copy()
    for k in range(6):
        assert bg.probability_of_n_purchases(20.0, k) == pytest.approx(
            lf.probability_of_n_purchases_up_to_time(20.0, k), rel=1e-10)


def test_compare_models(cdnow, bg, pnbd):
    tab = compare_models([bg, pnbd])
    assert list(tab.index) == ["BG/NBD", "Pareto/NBD"]
    assert tab.loc["BG/NBD", "n_params"] == 4
    assert tab.loc["BG/NBD", "log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    # same n and k: delta BIC = 2 (LL_BG - LL_PNBD); from the published LLs (-9582.4, -9595.0, each
    # rounded to 0.1) 25.2 +- 0.2, BG/NBD preferred
    assert tab.loc["BG/NBD", "delta_bic"] == 0.0
    assert tab.loc["Pareto/NBD", "delta_bic"] == pytest.approx(2 * (9595.0 - 9582.4), abs=0.2)
    assert tab.loc["Pareto/NBD", "bic"] == pytest.approx(-2 * pnbd.log_likelihood + 4 * np.log(2357))


def test_no_repeat_purchases_raises_model_fit_error():
    s = pd.DataFrame({"x": np.zeros(50), "t_x": np.zeros(50), "T": np.linspace(1, 30, 50)})
    for model in ("bgnbd", "pareto_nbd", "mbgnbd"):
        with pytest.raises(ModelFitError, match="penalizer") as err:
            fit_model(model, s)
        assert isinstance(err.value, RuntimeError)
        assert "time unit" in str(err.value) and "T == 0" in str(err.value)


def test_bad_inputs_give_clear_errors(cdnow):
    with pytest.raises(ValueError, match="model must be one of"):
        fit_model("nbd", cdnow)
    with pytest.raises(ValueError, match="missing column"):
        fit_model("bgnbd", cdnow.drop(columns="t_x"))
    bad = cdnow[["x", "t_x", "T"]].copy()
    bad.iloc[0, 1] = bad.iloc[0, 2] + 1
    with pytest.raises(ValueError, match="t_x"):
        fit_model("bgnbd", bad)
    bad = cdnow[["x", "t_x", "T"]].copy()
    bad.iloc[0, 0] = -1
    with pytest.raises(ValueError, match="x must be >= 0"):
        fit_model("bgnbd", bad)
    with pytest.raises(ValueError, match="missing column"):
        fit_gamma_gamma(cdnow.drop(columns="m_x"))


def test_gamma_gamma_correlation_warning_and_exclusions():
    rng = np.random.default_rng(3)
    n = 600
    x = rng.integers(1, 15, size=n).astype(float)
    nu_corr = rng.gamma(4.0, 1 / 15.0, size=n) / x       # spend per transaction grows with frequency
    m_x = rng.gamma(6.0 * x, 1.0 / (nu_corr * x))
    s = pd.DataFrame({"x": x, "m_x": m_x})
    with pytest.warns(IndependenceWarning, match="corr"):
        g = fit_gamma_gamma(s)
    assert g.frequency_spend_corr > 0.3
    # independent data: no warning; non-positive spend of repeat buyers excluded and counted
    nu = rng.gamma(4.0, 1 / 15.0, size=n)                 # Gamma-Gamma with p=6, q=4, gamma=15
    m_ind = rng.gamma(6.0 * x, 1.0 / (nu * x))
    s2 = pd.DataFrame({"x": np.concatenate([x, [2, 3, 0, 0]]), "m_x": np.concatenate([m_ind, [0.0, -5.0, 0.0, 0.0]])})
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndependenceWarning)
        g2 = fit_gamma_gamma(s2)
    assert g2.n_excluded_nonpositive == 2
    assert g2.n_customers == n
    with pytest.raises(ModelFitError):
        fit_gamma_gamma(pd.DataFrame({"x": [0.0, 0.0, 1.0], "m_x": [0.0, 0.0, 5.0]}))


def test_unique_apply_broadcasts():
    a = np.array([1, 2, 1, 2, 3.0])
    b = np.array([0, 0, 0, 1, 0.0])
    calls = []

    def f(u, v):
        calls.append(len(u))
        return np.column_stack([u + v, u * 10])

    out = unique_apply(f, a, b)
    assert calls == [4]
    np.testing.assert_array_equal(out[:, 0], a + b)
    np.testing.assert_array_equal(out[:, 1], a * 10)


def test_penalizer_shrinks(cdnow, bg):
    """Reference: lifetimes 0.11.3 BetaGeoFitter(penalizer_coef=0.1), whose optimiser allows ~1e-6
    (0.001 and 0.01 and the other models: test_standard_errors.py)."""
    from lifetimes import BetaGeoFitter

    f = fit_model("bgnbd", cdnow, penalizer=0.1)
    assert f.penalizer == 0.1
    lf = BetaGeoFitter(penalizer_coef=0.1).fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    np.testing.assert_allclose(f.params.to_numpy(), lf.params_[["r", "alpha", "a", "b"]].to_numpy(), rtol=1e-5)
    # the drop-out parameters shrink towards 0 (a: 0.79 -> 0.13, b: 2.43 -> 0.27) and the fit worsens
    assert f.params["a"] < 0.2 * bg.params["a"] and f.params["b"] < 0.2 * bg.params["b"]
    assert f.log_likelihood < bg.log_likelihood


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_analytic_gradient_matches_finite_differences(cdnow, model):
    from helpers.models import _LL, _BGFamilyObjective, _num_grad

    (x, t_x, T), _, counts = unique_rows(cdnow["x"], cdnow["t_x"], cdnow["T"])
    w = counts.astype(float)
    theta = np.array([0.3, 4.0, 0.8, 2.4])
    ll, g = _BGFamilyObjective(x, t_x, T, w, modified=model == "mbgnbd")(theta)
    # the rearranged objective equals the paper's likelihood summed over customers ...
    np.testing.assert_allclose(ll, np.sum(w * _LL[model](theta, x, t_x, T)), rtol=1e-13)
    # ... and its gradient equals central differences of that likelihood
    g_num = _num_grad(lambda ph: np.sum(w * _LL[model](np.exp(ph), x, t_x, T)), np.log(theta), 1e-6)
    np.testing.assert_allclose(g * theta, g_num, rtol=1e-6, atol=1e-4)
    # the grouped (per distinct x) log-likelihood equals the row-by-row one
    ll_rows = np.array([_LL[model](theta, x[i:i + 1], t_x[i:i + 1], T[i:i + 1])[0] for i in range(0, len(x), 97)])
    np.testing.assert_allclose(_LL[model](theta, x, t_x, T)[::97], ll_rows, rtol=1e-12)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_objective_stable_when_exp_would_overflow(model, monkeypatch):
    """Heavy buyers who stopped long ago: D_i >> 700, e^D overflows; the stable branch takes over."""
    import helpers.models as M

    x = np.array([0.0, 1.0, 400.0, 350.0, 3.0])
    t_x = np.array([0.0, 5.0, 0.02, 0.05, 40.0])
    T = np.array([50.0, 60.0, 100.0, 100.0, 60.0])
    w = np.array([3.0, 2.0, 1.0, 1.0, 4.0])
    theta = np.array([0.5, 0.01, 0.8, 2.4])
    obj = M._BGFamilyObjective(x, t_x, T, w, modified=model == "mbgnbd")
    ll, g = obj(theta)
    assert np.isfinite(ll) and np.all(np.isfinite(g))
    np.testing.assert_allclose(ll, np.sum(w * M._LL[model](theta, x, t_x, T)), rtol=1e-12)
    g_num = M._num_grad(lambda ph: np.sum(w * M._LL[model](np.exp(ph), x, t_x, T)), np.log(theta), 1e-6)
    np.testing.assert_allclose(g * theta, g_num, rtol=1e-5, atol=1e-4)
    # chunking does not change the sums
    monkeypatch.setattr(M, "_CHUNK", 2)
    ll2, g2 = M._BGFamilyObjective(x, t_x, T, w, modified=model == "mbgnbd")(theta)
    np.testing.assert_allclose([ll2, *g2], [ll, *g], rtol=1e-13)


# ---------------------------------------------------------------------------
# Pareto/NBD: series log-likelihood with analytic gradient (fast path) vs hyp2f1 (reference)
# ---------------------------------------------------------------------------

def _slow_pnbd_reference(x, t_x, T, w, penalizer=0.0):
    """The plain hyp2f1 log-likelihood maximised without any gradient code (numerical differences only)."""
    from helpers.models import _ll_pareto_nbd, _minimise

    n = w.sum()
    scale = np.array([1.0, T.max(), 1.0, T.max()])

    def mean_nll(phi):
        th = np.exp(phi)
        with np.errstate(all="ignore"):
            v = -np.sum(w * _ll_pareto_nbd(th, x, t_x, T)) / n
        return v + penalizer * np.sum((th / scale) ** 2)

    phi, _, _ = _minimise(mean_nll, np.log([1.0, T.max(), 1.0, T.max()]), "reference")
    return np.exp(phi)


@pytest.mark.parametrize("table", [True, False])
def test_pareto_nbd_series_ll_and_gradient(cdnow, table, monkeypatch):
    import helpers.models as M
    from helpers.models import _ll_pareto_nbd, _num_grad, _pnbd_ll_grad, _PnbdIndex

    (x, t_x, T), _, w = unique_rows(cdnow["x"], cdnow["t_x"], cdnow["T"])
    idx = _PnbdIndex(x, t_x, T)
    idx.table = table
    # alpha < beta, alpha > beta, alpha == beta, far apart, large r (big x terms)
    for theta in ([0.553, 10.578, 0.606, 11.669], [0.6, 13.6, 0.31, 6.1], [1.0, 38.9, 1.0, 38.9],
                  [0.3, 2.0, 1.5, 40.0], [2.0, 50.0, 0.2, 3.0], [5.0, 1.0, 0.05, 0.5]):
        theta = np.array(theta)
        ll, g = _pnbd_ll_grad(theta, idx)
        np.testing.assert_allclose(ll, _ll_pareto_nbd(theta, x, t_x, T), rtol=1e-12, atol=1e-12)
        g_num = _num_grad(lambda ph: w @ _ll_pareto_nbd(np.exp(ph), x, t_x, T), np.log(theta), 1e-6)
        np.testing.assert_allclose(w @ g, g_num, rtol=1e-6, atol=1e-4)
        # the weighted sums the fitter uses equal the sums of the per-row values, in blocks too
        for chunk in (65536, 97):
            monkeypatch.setattr(M, "_CHUNK", chunk)
            ll_sum, g_sum = M._pnbd_ll_grad_sum(theta, idx, w.astype(float))
            np.testing.assert_allclose(ll_sum, w @ ll, rtol=1e-12)
            np.testing.assert_allclose(g_sum, w @ g, rtol=1e-9, atol=1e-7)
    # alpha and beta so far apart that the series would need too many terms for every u (hyp2f1 for all
    # pairs), or for the small u only (series and hyp2f1 side by side): the same values and gradient
    for theta in ([0.5, 1e-3, 0.5, 1e3], [0.9, 7.4, 0.9, 900.0], [0.7, 400.0, 1.3, 2.0]):
        theta = np.array(theta)
        ll, g = _pnbd_ll_grad(theta, idx)
        np.testing.assert_allclose(ll, _ll_pareto_nbd(theta, x, t_x, T), rtol=1e-10, atol=1e-10)
        g_num = _num_grad(lambda ph: w @ _ll_pareto_nbd(np.exp(ph), x, t_x, T), np.log(theta), 1e-6)
        np.testing.assert_allclose(w @ g, g_num, rtol=1e-6, atol=1e-4)
    from helpers.models.pareto_nbd import _pnbd_series_far as far
    assert far(np.array([0.999]))[0] and not far(np.array([0.5]))[0]


def test_pareto_nbd_fast_fit_equals_slow_reference(cdnow, pnbd):
    from scipy import optimize

    from helpers.models import _ll_pareto_nbd

    (x, t_x, T), _, w = unique_rows(cdnow["x"], cdnow["t_x"], cdnow["T"])
    ref = _slow_pnbd_reference(x, t_x, T, w.astype(float))
    np.testing.assert_allclose(pnbd.params.to_numpy(), ref, rtol=1e-6)
    ll_ref = float(w @ _ll_pareto_nbd(ref, x, t_x, T))
    assert pnbd.log_likelihood == pytest.approx(ll_ref, abs=1e-6)
    assert pnbd.log_likelihood >= ll_ref - 1e-9
    # an independent, derivative-free optimiser agrees as well
    nm = optimize.minimize(lambda ph: -w @ _ll_pareto_nbd(np.exp(ph), x, t_x, T), np.log([0.5, 10.0, 0.5, 10.0]),
                           method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 20000})
    np.testing.assert_allclose(pnbd.params.to_numpy(), np.exp(nm.x), rtol=1e-5)
    assert pnbd.log_likelihood == pytest.approx(-nm.fun, abs=1e-6)
    # standard errors from the analytic gradient agree with the delta method on a numerical (Richardson)
    # Hessian of the plain hyp2f1 likelihood at the reference optimum
    from test_standard_errors import delta_method

    _, se_ref, _, _ = delta_method(ref, lambda ph: float(w @ _ll_pareto_nbd(np.exp(ph), x, t_x, T)))
    np.testing.assert_allclose(pnbd.se.to_numpy(), se_ref, rtol=1e-6)


def test_pareto_nbd_warm_start_weights_and_penalizer_match_reference(cdnow, pnbd):
    (x, t_x, T), _, w = unique_rows(cdnow["x"], cdnow["t_x"], cdnow["T"])
    wb = np.random.default_rng(7).multinomial(int(w.sum()), w / w.sum()).astype(float)
    ref = _slow_pnbd_reference(x, t_x, T, wb)
    cold = fit_model("pareto_nbd", x=x, t_x=t_x, T=T, weights=wb)
    warm = fit_model("pareto_nbd", x=x, t_x=t_x, T=T, weights=wb, initial_params=pnbd.params, _se=False,
                     _rows_unique=True)
    for f in (cold, warm):
        np.testing.assert_allclose(f.params.to_numpy(), ref, rtol=1e-6)
    assert warm.log_likelihood == pytest.approx(cold.log_likelihood, abs=1e-6)
    pen = fit_model("pareto_nbd", cdnow, penalizer=0.01)
    np.testing.assert_allclose(pen.params.to_numpy(), _slow_pnbd_reference(x, t_x, T, w.astype(float), 0.01),
                               rtol=1e-6)


def test_pareto_nbd_falls_back_without_series(cdnow, pnbd, monkeypatch):
    # no series terms allowed: every (x, u) pair takes H from hyp2f1, whose parameter derivatives are
    # central differences (about 1e-9 relative in the gradient, from hyp2f1's own rounding); the flat
    # beta direction (se/beta ~ 0.5) turns that into ~1e-6 relative on beta, hence rtol 2e-6 here
    import helpers.models as hm

    monkeypatch.setattr(hm, "_PNBD_SERIES_MAX_TERMS", 0)
    f = fit_model("pareto_nbd", cdnow)
    np.testing.assert_allclose(f.params.to_numpy(), pnbd.params.to_numpy(), rtol=2e-6)
    assert f.log_likelihood == pytest.approx(pnbd.log_likelihood, abs=1e-6)
    # the fallback's Hessian is second differences (h = 1e-4) of a sum near -9595: rounding alone allows
    # 2.2e-16 * 9595 / h**2 ~ 2e-4 on Hessian entries of order 3.5 (beta), i.e. ~3e-5 on the errors
    np.testing.assert_allclose(f.se.to_numpy(), pnbd.se.to_numpy(), rtol=1e-4)


def test_gamma_gamma_objective_matches_likelihood_and_differences(cdnow):
    from helpers.models import _GammaGammaObjective, _ll_gamma_gamma, _num_grad

    rep = cdnow[cdnow["x"] > 0]
    x, m = rep["x"].to_numpy(float), rep["m_x"].to_numpy(float)
    w = np.random.default_rng(3).integers(1, 4, len(x)).astype(float)
    theta = np.array([6.0, 3.5, 15.0])
    objective = _GammaGammaObjective(x, m, w)
    ll, g, H = objective(theta)
    np.testing.assert_allclose(ll, np.sum(w * _ll_gamma_gamma(theta, x, m)), rtol=1e-13)
    g_num = _num_grad(lambda ph: np.sum(w * _ll_gamma_gamma(np.exp(ph), x, m)), np.log(theta), 1e-6)
    np.testing.assert_allclose(g * theta, g_num, rtol=1e-6, atol=1e-4)
    # the analytic Hessian (natural parameters) equals differences of the analytic gradient
    h = 1e-6 * theta
    H_num = np.column_stack([(objective(theta + np.eye(3)[j] * h[j])[1] - objective(theta - np.eye(3)[j] * h[j])[1])
                             / (2 * h[j]) for j in range(3)])
    np.testing.assert_allclose(H, H_num, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(H, H.T)


def test_binned_start_reaches_the_optimum_of_the_rows(monkeypatch):
    """On many unique rows the fitter starts from a fit on time-binned rows (helpers.models.fit._binned_start);
    the optimum is the rows' own: the same as the plain fit's from the default start, to 1e-7 relative
    (a multi-cohort summary of 60,000 simulated customers, ages spread over two years at day resolution)."""
    import helpers.models.fit as F
    from helpers.models import get_model

    rng = np.random.default_rng(11)
    T = rng.integers(365, 3 * 365, 60_000) / 7.0
    s = get_model("pareto_nbd").simulate_summary((0.9, 7.0, 0.9, 45.0), T, rng)
    s["t_x"] = np.where(s["x"] > 0, np.maximum(np.round(s["t_x"] * 7), 1) / 7, 0.0)
    (x, t_x, T), _, w = unique_rows(s["x"], s["t_x"], s["T"])
    assert len(x) >= get_model("pareto_nbd").binned_start[0]
    used = []
    orig = F._binned_start

    def spy(*a, **k):
        out = orig(*a, **k)
        used.append(out is not None)
        return out

    monkeypatch.setattr(F, "_binned_start", spy)
    for name in ("pareto_nbd", "bgnbd"):
        m = get_model(name)
        binned = F.fit(m, x, t_x, T, w.astype(float))
        plain = F.fit(m, x, t_x, T, w.astype(float), binned_start=False)
        assert used.pop() is True
        np.testing.assert_allclose(binned.params, plain.params, rtol=1e-7)
        assert binned.log_likelihood == pytest.approx(plain.log_likelihood, rel=1e-12)
        np.testing.assert_allclose(binned.se, plain.se, rtol=1e-4)
