"""Static covariates in the model layer (helpers.models.covariates, issue #13).

Reference numbers
-----------------
CLVTools 0.12.1 (R 4.2.2) on its apparel data (``data/apparel``: ``data(apparelTrans)`` and
``data(apparelStaticCov)``), ``clvdata(apparelTrans, date.format = "ymd", time.unit = "week",
estimation.split = 104, name.price = "Price")`` (calibration to 2006-12-31, weeks, same-day
transactions aggregated), ``SetStaticCovariates(clv.apparel, data.cov.life = apparelStaticCov,
data.cov.trans = apparelStaticCov, names.cov.life = c("Gender", "Channel"), names.cov.trans =
c("Gender", "Channel"))``, then ``pnbd(clv.static, start.params.model = c(r = 1, alpha = 2, s = 1,
beta = 2), start.params.life = c(Gender = 0.6, Channel = 0.4), start.params.trans = c(Gender = 0.6,
Channel = 0.4))`` (the vignette's start values).  CLVTools' parameterisation: alpha_i = alpha exp(-gamma_trans' z_i),
beta_i = beta exp(-gamma_life' z_i); its "life" coefficients are our "attrition", its "trans" our "purchase".
No-covariate BG/NBD on the same split: ``bgnbd(clv.apparel)``.  All copied from
``../shared/reference-data/clvtools_reference.json`` with full precision.

Tolerances: log-likelihood to 0.01; every estimate within 0.01 of its CLVTools standard error;
standard errors within 2% (CLVTools takes them from optimx's numerical Hessian).
"""

import numpy as np
import pandas as pd
import pytest

from helpers.models import fit_model, get_model
from helpers.models.covariates import (
    CovariateFit,
    covariate_log_likelihood,
    covariate_models,
    fit_covariate_model,
    per_customer_theta,
)

CLVTOOLS_PNBD_STATIC = {
    "r": 1.83866343276246, "alpha": 92.9435163749164, "s": 0.591286227257815, "beta": 49.5055246956844,
    "attrition.Gender": -0.642791131150047, "attrition.Channel": 0.790170012590769,
    "purchase.Gender": 0.285976022887768, "purchase.Channel": 0.623941394498527,
}
CLVTOOLS_PNBD_STATIC_SE = {
    "r": 0.345683024830567, "alpha": 16.9749359077314, "s": 0.260285890521737, "beta": 36.1449075959041,
    "attrition.Gender": 0.295567302982642, "attrition.Channel": 0.305844812632821,
    "purchase.Gender": 0.104141583730723, "purchase.Channel": 0.104946743854994,
}
CLVTOOLS_PNBD_STATIC_LL = -5821.06269235832
CLVTOOLS_PNBD_LL = -5848.09782696242
CLVTOOLS_BGNBD = {"r": 0.607310809723814, "alpha": 20.9567292732294, "a": 1.27554339491974, "b": 8.86081589931546}
CLVTOOLS_BGNBD_SE = {"r": 0.0541729343331125, "alpha": 2.57197096514676, "a": 1.02749017906357,
                     "b": 8.27076405035506}
CLVTOOLS_BGNBD_LL = -5857.01974890827
SE_RTOL = 0.02

FREQ_MODELS = ("pareto_nbd", "bgnbd", "mbgnbd", "ggompertz_nbd")


@pytest.fixture(scope="module")
def apparel(root):
    from helpers.data import load_transactions
    from helpers.summary import calibration_holdout

    log = load_transactions(root / "data" / "apparel" / "apparel_transactions.csv", customer_id="Id", date="Date",
                            amount="Price", date_format="%Y-%m-%d")
    cal = calibration_holdout(log.transactions, "2006-12-31", "2010-12-20", time_unit="W")
    Z = pd.read_csv(root / "data" / "apparel" / "apparel_static_covariates.csv")
    Z.index = Z.pop("Id").astype(str)
    return cal, Z.loc[cal.index, ["Gender", "Channel"]]


@pytest.fixture(scope="module")
def apparel_pnbd(apparel):
    cal, Z = apparel
    return fit_covariate_model("pareto_nbd", cal, Z, Z, time_unit="W")


def _estimates(fit):
    est = dict(fit.params)
    for p, c in fit.coefficients.items():
        est.update({f"{p}.{k}": v for k, v in c.items()})
    return est


# ---------------------------------------------------------------------------
# CLVTools on apparel
# ---------------------------------------------------------------------------

def test_apparel_pareto_nbd_static_covariates_reproduce_clvtools(apparel_pnbd):
    f = apparel_pnbd
    assert isinstance(f, CovariateFit) and f.name == "pareto_nbd" and not f.dynamic
    assert f.log_likelihood == pytest.approx(CLVTOOLS_PNBD_STATIC_LL, abs=0.01)
    est = _estimates(f)
    for k, ref in CLVTOOLS_PNBD_STATIC.items():
        assert abs(est[k] - ref) < 0.01 * CLVTOOLS_PNBD_STATIC_SE[k], (k, est[k], ref)
        assert f.se[k] == pytest.approx(CLVTOOLS_PNBD_STATIC_SE[k], rel=SE_RTOL), k
    assert list(f.params) == ["r", "alpha", "s", "beta"]
    assert list(f.se) == list(f.cov.index)
    assert f.n_customers == 600 and f.converged


def test_apparel_contract_fields(apparel_pnbd):
    f = apparel_pnbd
    res = f.to_results()
    assert set(res) == {"params", "coefficients", "se", "log_likelihood", "aic", "bic", "n_customers"}
    assert set(res["coefficients"]) == {"purchase", "attrition"}
    assert set(res["coefficients"]["purchase"]) == {"Gender", "Channel"}
    k = 8
    assert f.aic == pytest.approx(-2 * f.log_likelihood + 2 * k)
    assert f.bic == pytest.approx(-2 * f.log_likelihood + k * np.log(600))
    # 95% intervals: log scale for base parameters, symmetric for coefficients
    lo, hi = f.ci95["alpha"]
    sl = f.se["alpha"] / f.params["alpha"]
    assert lo == pytest.approx(f.params["alpha"] * np.exp(-1.959963984540054 * sl))
    assert hi == pytest.approx(f.params["alpha"] * np.exp(1.959963984540054 * sl))
    g, s = f.coefficients["purchase"]["Channel"], f.se["purchase.Channel"]
    assert f.ci95["purchase.Channel"] == pytest.approx((g - 1.959963984540054 * s, g + 1.959963984540054 * s))


def test_apparel_lr_test_against_the_no_covariate_fit(apparel, apparel_pnbd):
    cal, _ = apparel
    nocov = fit_model("pareto_nbd", cal)
    assert nocov.log_likelihood == pytest.approx(CLVTOOLS_PNBD_LL, abs=0.01)
    out = apparel_pnbd.lr_test(nocov)
    assert out["statistic"] == pytest.approx(2 * (apparel_pnbd.log_likelihood - nocov.log_likelihood))
    # CLVTools' two log-likelihoods give the same statistic
    assert out["statistic"] == pytest.approx(2 * (CLVTOOLS_PNBD_STATIC_LL - CLVTOOLS_PNBD_LL), abs=0.02)
    assert out["df"] == 4
    from scipy import stats

    assert out["p_value"] == pytest.approx(stats.chi2.sf(out["statistic"], 4))


def test_apparel_multipliers_pareto_nbd(apparel_pnbd):
    f = apparel_pnbd
    m = f.multipliers().set_index(["process", "covariate"])
    for cov in ("Gender", "Channel"):
        g, s = f.coefficients["purchase"][cov], f.se[f"purchase.{cov}"]
        row = m.loc[("purchase", cov)]
        # mean purchase rate r / alpha_i: alpha_i = alpha_0 exp(-gamma z) -> multiplier exp(gamma)
        assert row["multiplier"] == pytest.approx(np.exp(g), rel=1e-9)
        assert row["lower"] == pytest.approx(np.exp(g - 1.959963984540054 * s), rel=1e-5)
        assert row["upper"] == pytest.approx(np.exp(g + 1.959963984540054 * s), rel=1e-5)
        g, s = f.coefficients["attrition"][cov], f.se[f"attrition.{cov}"]
        row = m.loc[("attrition", cov)]
        # lifetime scales with beta_i = beta_0 exp(-gamma z): multiplier exp(-gamma)
        assert row["multiplier"] == pytest.approx(np.exp(-g), rel=1e-9)
        assert row["upper"] == pytest.approx(np.exp(-g + 1.959963984540054 * s), rel=1e-5)


def test_apparel_bgnbd_no_covariates_reproduces_clvtools(apparel):
    cal, _ = apparel
    f = fit_model("bgnbd", cal)
    assert f.log_likelihood == pytest.approx(CLVTOOLS_BGNBD_LL, abs=0.01)
    for k, ref in CLVTOOLS_BGNBD.items():
        assert abs(f.params[k] - ref) < 0.01 * CLVTOOLS_BGNBD_SE[k], k
        assert f.se[k] == pytest.approx(CLVTOOLS_BGNBD_SE[k], rel=SE_RTOL), k


# ---------------------------------------------------------------------------
# gammas at zero: the model's own likelihood, row by row
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", FREQ_MODELS)
def test_zero_coefficients_give_the_no_covariate_likelihood_exactly(apparel, name):
    cal, Z = apparel
    m = get_model(name)
    theta = {"pareto_nbd": (1.45, 48.6, 0.56, 46.9), "bgnbd": (0.61, 20.96, 1.28, 8.86),
             "mbgnbd": (0.61, 20.96, 1.28, 8.86), "ggompertz_nbd": (1.45, 48.7, 0.02, 0.56, 0.9)}[name]
    x, t_x, T = (cal[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    z = Z.to_numpy(dtype=float)
    zero = {p: np.zeros(2) for p in m.covariate_links}
    ll_cov = covariate_log_likelihood(m, theta, zero, x, t_x, T, Z={p: z for p in m.covariate_links})
    ll = m.log_likelihood(theta, x, t_x, T)
    assert np.array_equal(ll_cov, ll)
    # and per-customer parameters at zero are the base ones
    th = per_customer_theta(m, theta, zero, {p: z for p in m.covariate_links})
    for v, v0 in zip(th, theta):
        assert np.all(np.asarray(v) == v0)


def test_zero_coefficients_gamma_gamma_exactly():
    gg = get_model_gg()
    rng = np.random.default_rng(3)
    x = rng.integers(1, 8, 500).astype(float)
    m_x = rng.gamma(3.0, 10.0, 500)
    z = rng.integers(0, 2, (500, 2)).astype(float)
    theta = (3.1, 5.65, 56.5)
    assert np.array_equal(covariate_log_likelihood(gg, theta, {"spend": np.zeros(2)}, x, m_x, Z={"spend": z}),
                          gg.log_likelihood(theta, x, m_x))


def get_model_gg():
    from helpers.models.gamma_gamma import GammaGamma

    return GammaGamma()


def test_every_covariate_model_is_listed():
    assert set(covariate_models()) == {"pareto_nbd", "bgnbd", "mbgnbd", "ggompertz_nbd", "gamma_gamma"}
