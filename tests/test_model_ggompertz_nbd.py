"""GGompertz/NBD (Bemmaor & Glady 2012): published numbers, the flat ridge, and the model against itself.

Published numbers
-----------------
CDNOW 1/10 sample, 39-week calibration to 1997-09-30, weeks, purchases per day (FHL 2005a split):

* Bemmaor & Glady (2012, Table 2): r = 0.553, alpha = 10.578, b = 0.0002, s = 0.603, beta = 0.0026,
  LL = -9594.98;
* CLVTools' own estimate (tests/testthat/test_correctness_ggomnbd.R): r = 0.55313, alpha = 10.5758,
  b = 0.0000011, s = 0.60682, beta = 0.000013, LL = -9594.9762;
* CLVTools 0.12.1 run on the same split (CLVTools 0.12.1 reference estimates, clvtools_reference.json, copied here
  with full precision): r = 0.553620040646963, alpha = 10.5800155067052, b = 1.18310604367786e-05,
  s = 0.603769172714267, beta = 0.000137079413475417, LL = -9594.97635145665; its Pareto/NBD SEs
  r 0.0476622, alpha 0.842975, s 0.187446.

CLVTools' apparel retailer (data/apparel, estimation split 104 weeks, weeks): CLVTools 0.12.1 GGompertz/NBD
r = 1.44992606213583, alpha = 48.6608009281425, b = 7.05391402875488e-06, s = 0.560978441870471,
beta = 0.000330459057542674, LL = -5848.09811756 (Pareto/NBD LL -5848.09782696242).

What the data identify (measured below with the profile likelihood in b)
------------------------------------------------------------------------
On both data sets the likelihood is largest in the Pareto/NBD limit b -> 0 along beta = b * beta', with
beta' the Pareto/NBD beta (CDNOW 11.669, apparel 46.88); the profile log-likelihood falls linearly from
there (CDNOW: slope -7.24 per unit of b, i.e. 0.0073 at b = 0.001).  Hence, on CDNOW:

* the maximum log-likelihood, -9594.97618, is identified exactly (= Pareto/NBD's);
* r and alpha are identified to their standard errors (0.048, 0.84); along the ridge, within 0.01 of the
  maximum (b <= 0.0014), they move by less than 1e-4 and 1e-5;
* s moves along the ridge from 0.606 (b -> 0) to 0.589 (b = 0.0014); beta / b from 11.67 to 11.30;
* b is only bounded: within 0.01 of the maximum b <= 0.0014; one-sided 95% bound b < 0.091 (quadratic
  profile; the profile itself crosses near 0.10);
* beta is not identified on its own (beta ~ 11.5 b on the ridge).

The published estimates are points of that ridge: at b = 0.000224 (the b in the paper's rounding interval
[0.00015, 0.00025) where the profile beta is 0.0026), the profile estimates round to all of the paper's
values; CLVTools' full-precision estimates lie within 0.0002 of the maximum.  The tolerances below are
those of the set of parameters within 0.01 of the maximum log-likelihood: the ridge range plus
sqrt(2 * 0.01) standard errors.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import gammaln

from helpers.models import fit_model, get_model, log_likelihood

M = get_model("ggompertz_nbd")
PNBD = get_model("pareto_nbd")
Z = 4.0                                            # Monte-Carlo tolerance in standard errors
DELTA = 0.01                                       # the log-likelihood tolerance of the task
WIDTH = np.sqrt(2 * DELTA)                         # standard errors spanned within DELTA of the maximum

CLVTOOLS_CDNOW = {"r": 0.553620040646963, "alpha": 10.5800155067052, "b": 1.18310604367786e-05,
                  "s": 0.603769172714267, "beta": 0.000137079413475417}
CLVTOOLS_CDNOW_LL = -9594.97635145665
CLVTOOLS_TEST = {"r": 0.55313, "alpha": 10.5758, "b": 0.0000011, "s": 0.60682, "beta": 0.000013}
CLVTOOLS_TEST_LL = -9594.9762
PAPER = {"r": 0.553, "alpha": 10.578, "b": 0.0002, "s": 0.603, "beta": 0.0026}
PAPER_LL = -9594.98
CLVTOOLS_APPAREL = {"r": 1.44992606213583, "alpha": 48.6608009281425, "b": 7.05391402875488e-06,
                    "s": 0.560978441870471, "beta": 0.000330459057542674}
CLVTOOLS_APPAREL_LL = -5848.09811756
BTYDPLUS = (0.85, 4.45, 0.12, 0.75, 9.55)          # BTYDplus' ggnbd example (T.cal = 32): a clear Gompertz b


def _arrays(summary):
    return tuple(summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))


def _theta(d):
    return tuple(float(d[k]) for k in M.param_names)


@pytest.fixture(scope="module")
def cdnow(paper_split):
    return _arrays(paper_split)


@pytest.fixture(scope="module")
def apparel(root):
    from helpers.data import load_transactions
    from helpers.summary import calibration_holdout

    log = load_transactions(root / "data" / "apparel" / "apparel_transactions.csv", customer_id="Id", date="Date",
                            amount="Price", date_format="%Y-%m-%d")
    return calibration_holdout(log.transactions, "2006-12-31", "2010-12-20", time_unit="W")


@pytest.fixture(scope="module")
def cdnow_fit(cdnow):
    return M.fit(*cdnow)


@pytest.fixture(scope="module")
def simulated():
    """3,000 customers of BTYDplus' example (b = 0.12 per week), 32 weeks: b clearly identified."""
    return _arrays(M.simulate_summary(BTYDPLUS, np.full(3000, 32.0), np.random.default_rng(7)))


@pytest.fixture(scope="module")
def simulated_fit(simulated):
    return M.fit(*simulated)


def _ll_by_quad(theta, x, t_x, T):
    """The likelihood of Bemmaor & Glady (2012) by adaptive quadrature in tau, one customer at a time."""
    r, alpha, b, s, beta = theta
    out = []
    for xi, ti, Ti in zip(x, t_x, T):
        p = r + xi

        def log_g(tau):
            return (-p * np.log(alpha + tau) + np.log(b * s) + s * np.log(beta) + b * tau
                    - (s + 1) * np.log(beta + np.expm1(b * tau)))

        c = log_g(ti)
        edges = ti + (Ti - ti) * np.concatenate([[0.0], np.geomspace(1e-9, 1.0, 40)])
        I = sum(integrate.quad(lambda u: np.exp(log_g(u) - c), lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0]
                for lo, hi in zip(edges[:-1], edges[1:])) if Ti > ti else 0.0
        alive = -p * np.log(alpha + Ti) + s * np.log(beta) - s * np.log(beta + np.expm1(b * Ti))
        dead = np.log(I) + c if I > 0 else -np.inf
        out.append(gammaln(p) - gammaln(r) + r * np.log(alpha) + np.logaddexp(alive, dead))
    return np.array(out)


# ---------------------------------------------------------------------------
# data and likelihood against the published numbers
# ---------------------------------------------------------------------------

def test_apparel_split_is_clvtools(apparel):
    """CLVTools' split of its apparel data: 600 customers, 104 weeks, 1,317 repeat purchase days in the holdout
    (clvtools_reference.json: sum_actual_x), and the Pareto/NBD log-likelihood at CLVTools' estimates."""
    assert len(apparel) == 600 and apparel["T"].max() == 104.0
    assert apparel["x_star"].sum() == 1317
    ll = log_likelihood("pareto_nbd", [1.44897679032081, 48.6360844824863, 0.561259809015836, 46.8843634793603],
                        *_arrays(apparel))
    assert ll == pytest.approx(-5848.09782696242, abs=1e-6)


def test_log_likelihood_reproduces_clvtools_at_its_estimates(cdnow, apparel):
    """At CLVTools' full-precision estimates our likelihood gives CLVTools' log-likelihoods (its GSL
    integration has relative tolerance 1e-8 per customer): an independent check of the whole likelihood."""
    assert M.log_likelihood(_theta(CLVTOOLS_CDNOW), *cdnow).sum() == pytest.approx(CLVTOOLS_CDNOW_LL, abs=1e-5)
    assert M.log_likelihood(_theta(CLVTOOLS_APPAREL), *_arrays(apparel)).sum() == pytest.approx(
        CLVTOOLS_APPAREL_LL, abs=1e-5)


def test_quadrature_against_adaptive_quadrature(cdnow):
    """Per-customer log-likelihood against scipy's adaptive quad in tau, on CDNOW rows and on hard rows
    (heavy buyers, a Gompertz b of 2 per week with an interior mode, beta' << alpha, x up to 150)."""
    x, t_x, T = cdnow
    idx = np.r_[0:40, np.argsort(-x)[:10]]
    rows = (x[idx], t_x[idx], T[idx])
    hard = (np.array([0.0, 1.0, 20.0, 150.0, 60.0, 5.0]), np.array([0.0, 0.3, 10.0, 70.0, 1.0, 99.0]),
            np.array([39.0, 2.0, 39.0, 100.0, 104.0, 100.0]))
    for theta, (xx, tt, TT) in [((0.5533, 10.578, 2.6e-8, 0.6062, 3.0e-7), rows),
                                (BTYDPLUS, rows),
                                ((1.3, 0.09, 2.0, 3.6, 36.0), hard),
                                ((0.6, 80.0, 0.3, 0.4, 0.002), hard)]:
        np.testing.assert_allclose(M.log_likelihood(theta, xx, tt, TT), _ll_by_quad(theta, xx, tt, TT),
                                   rtol=0, atol=1e-10)


def test_fit_cdnow_reproduces_the_published_log_likelihood(cdnow_fit):
    """LL -9594.98 (paper) and -9594.9762 (CLVTools) to the task's 0.01; our maximum is the supremum
    (the Pareto/NBD limit), at least CLVTools' -9594.97635."""
    f = cdnow_fit
    assert f.converged and f.n_customers == 2357
    assert abs(f.log_likelihood - PAPER_LL) < DELTA
    assert abs(f.log_likelihood - CLVTOOLS_TEST_LL) < DELTA
    assert f.log_likelihood >= CLVTOOLS_CDNOW_LL - 1e-6
    # the limit b -> 0 is reported, with beta / b the Pareto/NBD beta of FHL (2005a): 11.669
    assert f.params["b"] * 38.857142857142854 == pytest.approx(1e-6)
    assert f.params["beta"] / f.params["b"] == pytest.approx(11.669, abs=0.001)
    assert "Pareto/NBD limit" in f.message


def test_fit_cdnow_parameters_within_the_ridge_precision(cdnow, cdnow_fit):
    """Each published estimate, within its printed rounding, is inside the set of parameters within 0.01
    of our maximum: r, alpha, s within the ridge range plus sqrt(2 * 0.01) standard errors, b below the
    0.01-bound of the profile likelihood (0.0014), beta / b in the ridge range."""
    f = cdnow_fit
    ridge = {"r": 1e-4, "alpha": 1e-5, "s": 0.018}             # movement along the ridge for b <= 0.0014
    for pub, digits in ((PAPER, {"r": 3, "alpha": 3, "s": 3}), (CLVTOOLS_TEST, {"r": 5, "alpha": 4, "s": 5}),
                        (CLVTOOLS_CDNOW, {"r": 15, "alpha": 13, "s": 15})):
        for k in ("r", "alpha", "s"):
            tol = ridge[k] + WIDTH * f.se[k] + 0.5 * 10.0 ** -digits[k]
            assert abs(f.params[k] - pub[k]) < tol, (k, f.params[k], pub[k], tol)
        assert pub["b"] < 0.0014
    # beta / b: the ridge spans [11.30, 11.67], plus the statistical width of the Pareto/NBD beta (its
    # standard error); the published ratios with their rounding intervals must overlap that range
    se_bp = fit_model("pareto_nbd", x=cdnow[0], t_x=cdnow[1], T=cdnow[2]).se["beta"]
    for b, beta, hb, hbeta in ((0.0002, 0.0026, 5e-5, 5e-5), (0.0000011, 0.000013, 5e-8, 5e-7),
                               (CLVTOOLS_CDNOW["b"], CLVTOOLS_CDNOW["beta"], 0, 0)):
        lo, hi = (beta - hbeta) / (b + hb), (beta + hbeta) / (b - hb)
        assert lo <= 11.67 + WIDTH * se_bp and hi >= 11.30 - WIDTH * se_bp, (lo, hi)


def test_the_paper_is_a_point_of_the_ridge(cdnow, cdnow_fit):
    """The profile likelihood at b = 0.000224 (inside the paper's rounding interval of b = 0.0002, where the
    profile beta is 0.0026) reproduces every number of Bemmaor & Glady's Table 2 to its printed digits,
    0.0016 below our maximum."""
    g = M.fit(*cdnow, b=0.000224)
    assert round(g.params["r"], 3) == PAPER["r"] and round(g.params["alpha"], 3) == PAPER["alpha"]
    assert round(g.params["b"], 4) == PAPER["b"] and round(g.params["s"], 3) == PAPER["s"]
    assert round(g.params["beta"], 4) == PAPER["beta"] and round(g.log_likelihood, 2) == PAPER_LL
    assert 0 < cdnow_fit.log_likelihood - g.log_likelihood < 0.002
    assert np.isnan(g.se["b"]) and np.isfinite(g.se["r"])


def test_profile_likelihood_measures_the_ridge(cdnow, cdnow_fit):
    """The profile log-likelihood in b falls from the limit linearly (slope -7.24 = the reported score),
    stays within 0.01 of the maximum up to b = 0.0014 (r, alpha almost fixed, s and beta/b drifting), its
    curvature at b = 0 is the reported 1 / se(b)^2, and it crosses the one-sided 95% likelihood-ratio level
    1.353 a little above the reported bound (0.091, that of the quadratic profile: the profile bends less
    further out)."""
    f = cdnow_fit
    prof = {b: M.fit(*cdnow, b=b, se=False) for b in (0.001, 0.0014, 0.002, 0.05, 0.1)}
    drop = {b: f.log_likelihood - g.log_likelihood for b, g in prof.items()}
    assert 0 < drop[0.001] < drop[0.0014] < drop[0.002] < drop[0.05] < drop[0.1]
    assert drop[0.0014] == pytest.approx(DELTA, abs=0.0005)
    assert drop[0.001] / 0.001 == pytest.approx(7.24, rel=0.02)            # the slope at b = 0
    assert "slope dLL/db = -7.2" in f.message
    g = prof[0.0014]
    assert abs(g.params["r"] - f.params["r"]) < 1e-4 and abs(g.params["alpha"] - f.params["alpha"]) < 1e-5
    assert f.params["s"] - g.params["s"] == pytest.approx(0.0176, abs=0.001)
    assert g.params["beta"] / g.params["b"] == pytest.approx(11.30, abs=0.01)
    # se(b) against the profile itself: c b - d b^2 / 2 + e b^3 through four profile points near 0 gives d = 1 / se^2
    bs = np.array([0.001, 0.002, 0.004, 0.008])
    ll = np.array([-drop[0.001], -drop[0.002]] + [-(f.log_likelihood - M.fit(*cdnow, b=b, se=False).log_likelihood)
                                                   for b in bs[2:]])
    c, d, _ = np.linalg.lstsq(np.c_[bs, -bs ** 2 / 2, bs ** 3], ll, rcond=None)[0]
    assert c == pytest.approx(-7.24, rel=0.005)
    assert f.se["b"] == pytest.approx(d ** -0.5, rel=0.002)
    # the reported bound (quadratic profile) against the profile itself: 1.353 is crossed within 15% above it
    bound = f.ci95.loc["b", "upper"]
    at = {k: f.log_likelihood - M.fit(*cdnow, b=k * bound, se=False).log_likelihood for k in (1.0, 1.15)}
    assert drop[0.05] < at[1.0] < 1.353 < at[1.15]
    assert f.ci95.loc["b", "lower"] == 0.0


def test_fit_apparel_reproduces_clvtools(apparel):
    """CLVTools' GGompertz/NBD on its apparel data: LL -5848.09812 to 0.01 (ours is the Pareto/NBD
    limit, -5848.09783, the larger); r, alpha, s within the ridge precision, CLVTools' b below the 0.01-bound
    of the profile (0.00025), beta / b = 46.85 against our 46.88 (the Pareto/NBD beta)."""
    f = M.fit(*_arrays(apparel))
    assert f.converged and abs(f.log_likelihood - CLVTOOLS_APPAREL_LL) < DELTA
    assert f.log_likelihood >= CLVTOOLS_APPAREL_LL and f.log_likelihood == pytest.approx(-5848.09782696242, abs=1e-5)
    for k in ("r", "alpha", "s"):
        assert abs(f.params[k] - CLVTOOLS_APPAREL[k]) < WIDTH * f.se[k], k
    assert CLVTOOLS_APPAREL["b"] < 0.00025
    g = M.fit(*_arrays(apparel), b=0.00025, se=False)
    assert f.log_likelihood - g.log_likelihood == pytest.approx(DELTA, abs=0.0005)
    ratio = CLVTOOLS_APPAREL["beta"] / CLVTOOLS_APPAREL["b"]
    assert f.params["beta"] / f.params["b"] == pytest.approx(ratio, rel=0.002)
    # the SEs of r, alpha, s are CLVTools' (Hessian at its point, 1.2e-4 below our maximum)
    for k, se in (("r", 0.243687495193635), ("alpha", 7.4958227105465), ("s", 0.271189154865812)):
        assert f.se[k] == pytest.approx(se, rel=0.01), k


def test_nested_pareto_nbd_limit(cdnow, cdnow_fit):
    """As b -> 0 with beta = b beta', the log-likelihood tends to helpers.models' Pareto/NBD at
    (r, alpha, s, beta'), linearly in b (slope dLL/db), and so do P(alive) and the expectations."""
    x, t_x, T = cdnow
    r, alpha, _, s, _ = cdnow_fit.theta
    bp = cdnow_fit.params["beta"] / cdnow_fit.params["b"]
    ll_p = log_likelihood("pareto_nbd", (r, alpha, s, bp), x, t_x, T)
    diff = {b: M.log_likelihood((r, alpha, b, s, b * bp), x, t_x, T).sum() - ll_p for b in (1e-9, 1e-7, 1e-6)}
    assert abs(diff[1e-9]) < 1e-7
    # linear approach: the slope at b -> 0 (the curvature at fixed beta' is about -1.7e4, 0.1% at b = 1e-6)
    assert diff[1e-6] / 1e-6 == pytest.approx(diff[1e-7] / 1e-7, rel=0.005)
    assert diff[1e-7] / 1e-7 == pytest.approx(-7.24, rel=0.02)
    th, thp = (r, alpha, 1e-9, s, 1e-9 * bp), (r, alpha, s, bp)
    np.testing.assert_allclose(M.p_alive(th, x, t_x, T), PNBD.p_alive(thp, x, t_x, T), rtol=1e-6)
    np.testing.assert_allclose(M.expected_purchases(th, 39.0, x, t_x, T),
                               PNBD.expected_purchases(thp, 39.0, x, t_x, T), rtol=1e-6)
    np.testing.assert_allclose(M.count_pmf(th, 39.0, np.arange(10.0)), PNBD.count_pmf(thp, 39.0, np.arange(10.0)),
                               rtol=1e-6)


# ---------------------------------------------------------------------------
# standard errors and the gradient
# ---------------------------------------------------------------------------

def _hessian_of_values(f, phi, h=1e-3):
    """Second differences of the function values (no gradient): an independent numerical Hessian."""
    k = len(phi)
    H = np.empty((k, k))
    E = np.eye(k) * h
    f0 = f(phi)
    for i in range(k):
        H[i, i] = (f(phi + E[i]) - 2 * f0 + f(phi - E[i])) / h ** 2
        for j in range(i):
            H[i, j] = H[j, i] = (f(phi + E[i] + E[j]) - f(phi + E[i] - E[j]) - f(phi - E[i] + E[j])
                                 + f(phi - E[i] - E[j])) / (4 * h * h)
    return H


def test_standard_errors_match_an_independent_hessian(simulated, simulated_fit):
    """A free fit (b = 0.12 data): the fitter's standard errors (its Hessian of the analytic gradient in
    (r, alpha, b, s, beta/b), mapped) equal those from second differences of the summed log-likelihood in
    log (r, alpha, b, s, beta)."""
    f = simulated_fit
    assert f.converged and "limit" not in f.message
    x, t_x, T = simulated
    phi = np.log(np.array(f.theta))
    H = _hessian_of_values(lambda ph: M.log_likelihood(tuple(np.exp(ph)), x, t_x, T).sum(), phi)
    se = np.exp(phi) * np.sqrt(np.diag(np.linalg.inv(-H)))
    np.testing.assert_allclose(f.se.to_numpy(), se, rtol=2e-3)
    # and the fit recovers the truth
    for k, v in zip(M.param_names, BTYDPLUS):
        assert abs(f.params[k] - v) < Z * f.se[k], k


def test_standard_errors_in_the_pareto_nbd_limit(cdnow, cdnow_fit):
    """CDNOW (b at the limit): the SEs of r, alpha, s are those of an independent Hessian of the
    log-likelihood at fixed b, and CLVTools' Pareto/NBD SEs (0.0477, 0.843, 0.187); se(b) is the profile
    curvature at b = 0: against a quadratic through three profile points (b = 0.002, 0.005, 0.01) to 10%."""
    f = cdnow_fit
    x, t_x, T = cdnow
    th = np.array(f.theta)
    free = [0, 1, 3, 4]

    def ll(ph):
        t = th.copy()
        t[free] = np.exp(ph)
        return M.log_likelihood(tuple(t), x, t_x, T).sum()

    H = _hessian_of_values(ll, np.log(th[free]))
    se = th[free] * np.sqrt(np.diag(np.linalg.inv(-H)))
    np.testing.assert_allclose(f.se.iloc[[0, 1, 3]].to_numpy(), se[:3], rtol=2e-3)
    for k, v in (("r", 0.0476622366129244), ("alpha", 0.842975078646919), ("s", 0.18744639321098)):
        assert f.se[k] == pytest.approx(v, rel=0.005), k
    bs = np.array([0.002, 0.005, 0.01])
    drops = np.array([f.log_likelihood - M.fit(x, t_x, T, b=b, se=False).log_likelihood for b in bs])
    c, d = np.linalg.lstsq(np.column_stack([bs, bs ** 2 / 2]), drops, rcond=None)[0]   # drop = c b + d b^2 / 2
    assert c == pytest.approx(7.24, rel=0.02)
    assert f.se["b"] == pytest.approx(1 / np.sqrt(d), rel=0.1)


def test_gradient_matches_central_differences(cdnow, simulated):
    """The objective's analytic gradient (under the integral sign, same nodes) against central differences
    of the summed log-likelihood, at ordinary and at extreme parameters (b = 2 with an interior mode of the
    lifetime, beta' << alpha, x up to 150)."""
    hard = (np.array([0.0, 1.0, 20.0, 150.0, 60.0, 5.0]), np.array([0.0, 0.3, 10.0, 70.0, 1.0, 99.0]),
            np.array([39.0, 2.0, 39.0, 100.0, 104.0, 100.0]))
    for theta, data in [((0.55, 10.6, 0.05, 0.6, 0.5), cdnow), (BTYDPLUS, simulated),
                        ((1.3, 0.09, 2.0, 3.6, 36.0), hard), ((0.6, 80.0, 0.3, 0.4, 0.002), hard)]:
        x, t_x, T = data
        ll, g = M.objective(x, t_x, T, np.ones_like(x))(theta)
        th = np.array(theta)
        assert ll == pytest.approx(M.log_likelihood(theta, x, t_x, T).sum(), rel=1e-12)

        def f(ph):
            return M.log_likelihood(tuple(np.exp(ph)), x, t_x, T).sum()

        h = 1e-6
        num = np.array([(f(np.log(th) + h * e) - f(np.log(th) - h * e)) / (2 * h) for e in np.eye(5)])
        np.testing.assert_allclose(g * th, num, rtol=1e-5, atol=1e-4 * max(1.0, np.sqrt(len(x))))


def test_objective_from_tail_integrals_equals_the_direct_rows(cdnow, simulated):
    """The fit's objective (tail integrals per distinct (x, u) pair, summed from the right, rows by lookup) against
    the direct quadrature over [t_x, T] of each row (the likelihood's own evaluation, with its gradient under the
    integral sign), on CDNOW, the BTYDplus sample and a multi-cohort base (ages over two years, t_x at day
    resolution, repeated rows with weights), at ordinary and extreme parameters (the Pareto/NBD limit, b = 2 with an
    interior mode, s = 0.05).  Both are sums of the same integrals to the quadrature's 1e-13, so the value must
    agree to 1e-12 relative and each gradient component to 1e-9 relative (a pair or piece wrongly
    assigned moves them by far more)."""
    from helpers.models.ggompertz_nbd import _ll_rows

    rng = np.random.default_rng(3)
    T = rng.integers(365, 3 * 365, 4000) / 7.0
    s = M.simulate_summary(BTYDPLUS, T, rng)
    cohorts = (s["x"].to_numpy(float), np.where(s["x"] > 0, np.maximum(np.round(s["t_x"] * 7), 1) / 7, 0.0),
               s["T"].to_numpy(float))
    w_c = rng.integers(1, 4, len(T)).astype(float)
    for data, w in [(cohorts, w_c), (cdnow, None), (simulated, None)]:
        x, t_x, T = data
        w = np.ones_like(x) if w is None else w
        obj = M.objective(x, t_x, T, w)
        for theta in [BTYDPLUS, (0.553, 10.58, 2.6e-8, 0.606, 2.6e-8 * 11.67), (1.3, 0.09, 2.0, 3.6, 36.0),
                      (0.6, 80.0, 0.3, 0.05, 0.002), (3.0, 0.1, 0.5, 0.05, 1e-4)]:
            ll, g = obj(theta)
            with np.errstate(all="ignore"):
                ll_rows, _, _, g_rows = _ll_rows(theta, x, t_x, T, grad=True)
            assert ll == pytest.approx(float(w @ ll_rows), rel=1e-12)
            np.testing.assert_allclose(g, g_rows @ w, rtol=1e-9)


# ---------------------------------------------------------------------------
# P(alive), expectations, count distribution and survival against the simulator (b = 0.12)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def paths():
    """40,000 BTYDplus customers: latent lifetimes, calibration (32 weeks) and holdout (32 weeks) counts."""
    n, T, t_star = 40_000, 32.0, 32.0
    rng = np.random.default_rng(11)
    latent = M.draw_latent(BTYDPLUS, n, rng)
    counts, times = M.draw_purchases(BTYDPLUS, latent, np.full(n, T + t_star), rng)
    cust = np.repeat(np.arange(n), counts)
    cal = times <= T
    x = np.bincount(cust[cal], minlength=n).astype(float)
    t_x = np.zeros(n)
    np.maximum.at(t_x, cust[cal], times[cal])
    x_star = np.bincount(cust[~cal], minlength=n).astype(float)
    return {"x": x, "t_x": t_x, "T": np.full(n, T), "x_star": x_star, "tau": latent["tau"], "t_star": t_star}


def _groups(x):
    return [(x >= lo) & (x <= hi) for lo, hi in ((0, np.inf), (0, 0), (1, 1), (2, 3), (4, 7), (8, np.inf))]


def test_gompertz_lifetimes_of_the_simulator():
    """draw_latent's lifetimes follow the gamma/Gompertz S(t) = (beta / (beta + e^{bt} - 1))^s."""
    tau = M.draw_latent(BTYDPLUS, 200_000, np.random.default_rng(12))["tau"]
    r, alpha, b, s, beta = BTYDPLUS
    assert stats.kstest(tau, lambda t: 1 - (beta / (beta + np.expm1(b * t))) ** s).pvalue > 1e-4


def test_p_alive_against_simulation(paths):
    """P(alive at T | x, t_x, T) against the simulated share with tau > T, by calibration frequency."""
    p = M.p_alive(BTYDPLUS, paths["x"], paths["t_x"], paths["T"])
    alive = (paths["tau"] > paths["T"]).astype(float)
    for g in _groups(paths["x"]):
        se = np.sqrt(np.sum(p[g] * (1 - p[g]))) / g.sum()
        assert abs(alive[g].mean() - p[g].mean()) < Z * se + 1e-12, (g.sum(), alive[g].mean(), p[g].mean())


def test_conditional_expectation_against_simulation(paths):
    """E[X(T, T+t] | x, t_x, T] against the simulated holdout counts, by calibration frequency."""
    E = M.expected_purchases(BTYDPLUS, paths["t_star"], paths["x"], paths["t_x"], paths["T"])
    resid = paths["x_star"] - E
    for g in _groups(paths["x"]):
        se = resid[g].std(ddof=1) / np.sqrt(g.sum())
        assert abs(resid[g].mean()) < Z * se, (g.sum(), resid[g].mean(), se)


def test_survival_given_alive_against_simulation(paths):
    """P(alive at T + t | alive at T) against the simulated lifetimes of those alive at T (it does not
    depend on the purchases: given alive at T the posterior of eta is Gamma(s, beta + e^{bT} - 1))."""
    T = paths["T"][0]
    alive = paths["tau"] > T
    for t in (4.0, 16.0, 52.0):
        S = float(M.survival_given_alive(BTYDPLUS, t, 0.0, 0.0, T))
        share = np.mean(paths["tau"][alive] > T + t)
        assert abs(share - S) < Z * np.sqrt(S * (1 - S) / alive.sum()), (t, share, S)
    # and together with P(alive): the later P(alive) against the simulated lifetimes, heavy buyers
    g = paths["x"] >= 4
    F = M.p_alive_future(BTYDPLUS, 16.0, paths["x"][g], paths["t_x"][g], paths["T"][g])
    later = (paths["tau"][g] > T + 16.0).astype(float)
    assert abs(later.mean() - F.mean()) < Z * np.sqrt(np.sum(F * (1 - F))) / g.sum()


def test_unconditional_expectation_and_count_pmf_against_simulation(paths):
    """E[X(t)] and P(X(t) = n) of a new customer against the simulated calibration counts (t = 32):
    the mean, and a chi-square over the classes 0..9, 10+; the pmf sums to 1 with mean E[X(t)]."""
    x, t = paths["x"], paths["T"][0]
    E = float(M.expected_purchases_new(BTYDPLUS, t))
    assert abs(x.mean() - E) < Z * x.std(ddof=1) / np.sqrt(len(x))
    n = np.arange(400.0)
    P = M.count_pmf(BTYDPLUS, t, n)
    assert P.sum() == pytest.approx(1.0, abs=1e-10) and float(n @ P) == pytest.approx(E, rel=1e-9)
    k = np.minimum(x.astype(int), 10)
    observed = np.bincount(k, minlength=11)
    expected = len(x) * np.append(P[:10], 1 - P[:10].sum())
    assert np.sum((observed - expected) ** 2 / expected) < stats.chi2.ppf(0.9999, df=10)


def test_expected_purchases_parts_and_registry(cdnow_fit, cdnow):
    """The factorised expectation equals the direct one; the registry finds the model by its names; the
    fitted model's predictions go through it (fit_model on a summary gives the same fit)."""
    x, t_x, T = cdnow
    th = cdnow_fit.theta
    G, inv, h = M.expected_purchases_parts(th, [13.0, 39.0], x, t_x, T)
    np.testing.assert_allclose(G[inv] * h[:, None],
                               M.expected_purchases(th, np.array([13.0, 39.0])[None, :], x[:, None],
                                                    t_x[:, None], T[:, None]), rtol=1e-12)
    assert get_model("GGompertz/NBD") is M and get_model("ggompertz_nbd") is M
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = fit_model("ggompertz_nbd", pd.DataFrame({"x": x, "t_x": t_x, "T": T}), time_unit="W")
    assert f.log_likelihood == pytest.approx(cdnow_fit.log_likelihood, abs=1e-6)
    np.testing.assert_allclose(f.p_alive(x, t_x, T), M.p_alive(f.theta, x, t_x, T))
