"""BG/BB (Fader, Hardie & Shang 2010) on the donations data, against the paper, lifetimes and its own simulator.

Published numbers: FHS (2010) estimate alpha = 1.204, beta = 0.750, gamma = 0.657,
delta = 2.783 on the 1995 cohort (11,104 donors, n = 6 yearly opportunities), and
their Table 6 gives P(alive in 2002) = 0.11, 0.59, 0.93 for (x, t_x) = (0, 0),
(2, 4), (6, 6).  lifetimes 0.11.3's ``BetaGeoBetaBinomFitter`` is the oracle for
the likelihood, P(alive), the conditional expectation and the count distribution.
"""

from __future__ import annotations

import hashlib
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoBetaBinomFitter
from lifetimes.datasets import load_donations
from scipy.special import betaln

from helpers.config import load_config, load_data
from helpers.data import DataValidationError
from helpers.models import fit_model, get_model
from helpers.models.bgbb import BGBB
from helpers.summary_discrete import discrete_summary

ROOT = Path(__file__).resolve().parents[1]
DONATIONS_SHA256 = "82c25f26a201ff047e1cd5fe3d7967a45db92a025ecedee72ff8940e50104544"
FHS_PARAMS = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
FHS_THETA = tuple(FHS_PARAMS.values())
TABLE6 = {(0, 0): 0.11, (2, 4): 0.59, (6, 6): 0.93}       # P(alive in 2002), n = 6
MODEL = get_model("bgbb")


@pytest.fixture(scope="module")
def donations():
    d = pd.read_csv(ROOT / "data" / "donations.csv")
    return tuple(d[c].to_numpy(float) for c in ("frequency", "recency", "periods", "weights"))


@pytest.fixture(scope="module")
def fitted(donations):
    x, t_x, n, w = donations
    return MODEL.fit(x, t_x, n, w, time_unit="Y")


@pytest.fixture(scope="module")
def oracle():
    d = pd.read_csv(ROOT / "data" / "donations.csv")
    return BetaGeoBetaBinomFitter().fit(d["frequency"], d["recency"], d["periods"], weights=d["weights"])


# --- the model and its data ---------------------------------------------------

def test_registered_as_discrete_bgbb():
    assert isinstance(MODEL, BGBB) and get_model("BG/BB") is MODEL
    assert MODEL.name == "bgbb" and MODEL.discrete is True
    assert MODEL.param_names == ("alpha", "beta", "gamma", "delta")


def test_donations_csv_is_the_lifetimes_file():
    repo = (ROOT / "data" / "donations.csv").read_bytes()
    wheel = load_donations()   # the wheel's file, parsed: same table
    assert hashlib.sha256(repo).hexdigest() == DONATIONS_SHA256
    pd.testing.assert_frame_equal(pd.read_csv(ROOT / "data" / "donations.csv"), wheel)
    assert wheel["weights"].sum() == 11_104 and (wheel["periods"] == 6).all()


# --- published numbers --------------------------------------------------------

def test_fhs2010_parameter_estimates(fitted):
    got = fitted.params[list(FHS_PARAMS)].to_numpy()
    # published to 3 decimals; the estimates round to them
    assert np.round(got, 3).tolist() == list(FHS_PARAMS.values()), got
    assert fitted.converged and fitted.n_customers == 11_104 and fitted.n_params == 4


def test_fit_model_by_name_on_a_summary(donations, fitted):
    x, t_x, n, w = donations
    summary = pd.DataFrame({"x": x, "t_x": t_x, "T": n})
    again = fit_model("BG/BB", summary, weights=w, time_unit="Y")
    assert again.name == "bgbb" and again.label == "BG/BB"
    np.testing.assert_allclose(again.params.to_numpy(), fitted.params.to_numpy(), rtol=1e-8)


def test_fhs2010_table6_p_alive_in_2002(fitted):
    x = np.array([k[0] for k in TABLE6], float)
    t_x = np.array([k[1] for k in TABLE6], float)
    n = np.full(3, 6.0)
    # "alive in 2002" = alive at the next opportunity n + 1: P(alive at n) * survival of one period
    nxt = fitted.p_alive_future(1.0, x, t_x, n)
    assert np.round(nxt, 2).tolist() == list(TABLE6.values()), nxt
    # P(alive at n) itself is another quantity (1 for t_x = n): it does not give Table 6
    at_n = fitted.p_alive(x, t_x, n)
    assert np.round(at_n, 2).tolist() == [0.12, 0.63, 1.0]
    assert np.round(at_n, 2).tolist() != list(TABLE6.values())


# --- lifetimes as the oracle --------------------------------------------------

def test_estimates_equal_lifetimes(fitted, oracle):
    np.testing.assert_allclose(fitted.params[list(FHS_PARAMS)].to_numpy(), oracle.params_.to_numpy(), rtol=1e-5)
    # lifetimes minimises the mean negative log-likelihood over the 11,104 donors
    assert fitted.log_likelihood == pytest.approx(-oracle._negative_log_likelihood_ * 11_104, abs=1e-4)


def test_predictions_equal_lifetimes_at_its_parameters(donations, oracle):
    x, t_x, n, w = donations
    th = tuple(oracle.params_.to_numpy())
    # the likelihood (lifetimes adds 1e-15 inside its sum: relative effect < 1e-10 here)
    np.testing.assert_allclose(MODEL.log_likelihood(th, x, t_x, n),
                               BetaGeoBetaBinomFitter._loglikelihood(th, x, t_x, n), rtol=1e-10)
    # P(alive at n + m) for m = 0, 1, 5
    np.testing.assert_allclose(MODEL.p_alive(th, x, t_x, n),
                               oracle.conditional_probability_alive(0, x, t_x, n), rtol=1e-9)
    np.testing.assert_allclose(MODEL.p_alive_future(th, np.array([1.0, 5.0]), x, t_x, n),
                               np.column_stack([oracle.conditional_probability_alive(m, x, t_x, n) for m in (1, 5)]),
                               rtol=1e-9)
    # conditional expectations over the next 1, 2, 5, 10 opportunities (FHS eq. 13)
    for t in (1, 2, 5, 10):
        np.testing.assert_allclose(
            MODEL.expected_purchases(th, t, x, t_x, n),
            oracle.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, n), rtol=1e-9)
    # the factorised form gives the same
    G, inv, h = MODEL.expected_purchases_parts(th, [1.0, 5.0], x, t_x, n)
    np.testing.assert_allclose(G[inv] * h[:, None],
                               MODEL.expected_purchases(th, np.array([1.0, 5.0]), x[:, None], t_x[:, None],
                                                        n[:, None]), rtol=1e-12)
    # the count distribution over 6 opportunities (FHS eq. 7; lifetimes returns N * P(X(6) = x))
    expected_counts = oracle.expected_number_of_transactions_in_first_n_periods(6)["model"]
    np.testing.assert_allclose(MODEL.count_pmf(th, 6, expected_counts.index.to_numpy(float)),
                               expected_counts.to_numpy() / w.sum(), rtol=1e-9)


def test_standard_errors_match_an_independent_numerical_hessian(donations, fitted, oracle):
    """Observed information from central differences of lifetimes' log-likelihood (natural scale)."""
    x, t_x, n, w = donations
    th = fitted.params[list(FHS_PARAMS)].to_numpy()

    def total_ll(v):
        return float(np.sum(w * BetaGeoBetaBinomFitter._loglikelihood(tuple(v), x, t_x, n)))

    h = 1e-4 * th
    k = len(th)
    H = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            H[i, j] = (total_ll(th + ei + ej) - total_ll(th + ei - ej) - total_ll(th - ei + ej)
                       + total_ll(th - ei - ej)) / (4 * h[i] * h[j])
    se = np.sqrt(np.diag(np.linalg.inv(-H)))
    np.testing.assert_allclose(fitted.se[list(FHS_PARAMS)].to_numpy(), se, rtol=2e-3)
    np.testing.assert_allclose(fitted.se[list(FHS_PARAMS)].to_numpy(), oracle.standard_errors_.to_numpy(),
                               rtol=2e-3)


# --- internal consistency of the formulas -----------------------------------------

@pytest.mark.parametrize("n", [1, 3, 6])
def test_likelihood_times_patterns_is_the_joint_distribution(n):
    """sum over (x, t_x) of C(t_x-1, x-1) L(x, t_x, n) = 1, and summed over t_x it is P(X(n) = x) (eq. 7)."""
    rows = [(0, 0)] + [(x, tx) for tx in range(1, n + 1) for x in range(1, tx + 1)]
    x, t_x = (np.array(v, float) for v in zip(*rows))
    patterns = np.array([1 if a == 0 else comb(int(b) - 1, int(a) - 1) for a, b in rows], float)
    joint = patterns * np.exp(MODEL.log_likelihood(FHS_THETA, x, t_x, float(n)))
    assert joint.sum() == pytest.approx(1.0, abs=1e-12)
    by_x = pd.Series(joint).groupby(x).sum()
    np.testing.assert_allclose(by_x.to_numpy(), MODEL.count_pmf(FHS_THETA, n, by_x.index.to_numpy()), rtol=1e-12)


def test_count_pmf_sums_to_one_and_gives_the_unconditional_mean():
    for t in range(0, 13):
        k = np.arange(t + 2, dtype=float)
        p = MODEL.count_pmf(FHS_THETA, t, k)
        assert p[-1] == 0.0 and p.sum() == pytest.approx(1.0, abs=1e-12)
        assert (k * p).sum() == pytest.approx(float(MODEL.expected_purchases_new(FHS_THETA, t)), rel=1e-12)


@pytest.mark.parametrize("gamma", [0.657, 1.0, 1.0 + 1e-9, 1.0 - 1e-6, 1.0 + 5e-5, 1.0 - 2e-4, 2.5])
def test_expectations_equal_the_direct_sums(gamma):
    """E[X(t)] and E[X(n, n+t) | data] against the sums over future opportunities (gamma = 1 is a limit)."""
    a, b, g, d = 1.204, 0.750, gamma, 2.783
    th = (a, b, g, d)
    t = np.arange(0, 11, dtype=float)
    surv_new = np.array([sum(np.exp(betaln(g, d + k) - betaln(g, d)) for k in range(1, int(s) + 1)) for s in t])
    np.testing.assert_allclose(MODEL.expected_purchases_new(th, t), a / (a + b) * surv_new, rtol=1e-12, atol=1e-15)
    x, t_x, n = 2.0, 4.0, 6.0
    surv = np.array([sum(np.exp(betaln(g, d + n + k) - betaln(g, d + n)) for k in range(1, int(s) + 1)) for s in t])
    want = MODEL.p_alive(th, x, t_x, n) * (a + x) / (a + b + n) * surv
    np.testing.assert_allclose(MODEL.expected_purchases(th, t, x, t_x, n), want, rtol=1e-12, atol=1e-15)


def test_input_rules_are_enforced():
    with pytest.raises(ValueError, match="x <= t_x"):
        MODEL.log_likelihood(FHS_THETA, np.array([3.0]), np.array([2.0]), np.array([6.0]))
    with pytest.raises(ValueError, match="whole numbers"):
        MODEL.p_alive(FHS_THETA, np.array([1.0]), np.array([2.5]), np.array([6.0]))
    with pytest.raises(ValueError, match="t_x == 0 when x == 0"):
        MODEL.fit(np.array([0.0, 1.0]), np.array([2.0, 1.0]), np.array([6.0, 6.0]))
    with pytest.raises(ValueError, match="t must be finite and >= 0"):
        MODEL.expected_purchases(FHS_THETA, -1.0, 1.0, 1.0, 6.0)


def test_a_time_span_holds_its_whole_opportunities():
    """Opportunity k happens at time k: (n, n + 2.5] holds opportunities n + 1 and n + 2, as in the simulator."""
    x, t_x, n = np.array([0.0, 2.0, 6.0]), np.array([0.0, 4.0, 6.0]), np.full(3, 6.0)
    for frac, whole in ((0.5, 0.0), (2.5, 2.0), (2.999, 2.0), (3.0, 3.0)):
        np.testing.assert_array_equal(MODEL.expected_purchases(FHS_THETA, frac, x, t_x, n),
                                      MODEL.expected_purchases(FHS_THETA, whole, x, t_x, n))
        np.testing.assert_array_equal(MODEL.survival_given_alive(FHS_THETA, frac, x, t_x, n),
                                      MODEL.survival_given_alive(FHS_THETA, whole, x, t_x, n))
        assert MODEL.expected_purchases_new(FHS_THETA, frac) == MODEL.expected_purchases_new(FHS_THETA, whole)
        np.testing.assert_array_equal(MODEL.count_pmf(FHS_THETA, frac, np.arange(4.0)),
                                      MODEL.count_pmf(FHS_THETA, whole, np.arange(4.0)))
    assert MODEL.expected_purchases_new(FHS_THETA, 0.99) == 0.0
    times = MODEL.simulate_purchase_times(FHS_THETA, 500, 2.5, np.random.default_rng(0))
    assert np.concatenate(times).max() == 2.0


# --- Monte Carlo: the model's own generative process ------------------------------

@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(20100601)
    N, n, n_star = 200_000, 6, 5
    latent = MODEL.draw_latent(FHS_THETA, N, rng)
    counts, times = MODEL.draw_purchases(FHS_THETA, latent, np.full(N, float(n + n_star)), rng)
    cust = np.repeat(np.arange(N), counts)
    cal = times <= n
    x = np.bincount(cust[cal], minlength=N).astype(float)
    t_x = np.zeros(N)
    np.maximum.at(t_x, cust[cal], times[cal])
    x_star = np.bincount(cust[~cal], minlength=N).astype(float)
    return pd.DataFrame({"x": x, "t_x": t_x, "T": float(n), "x_star": x_star, "life": latent["life"]})


def test_simulated_counts_follow_the_pmf_and_mean(simulated):
    N = len(simulated)
    p = MODEL.count_pmf(FHS_THETA, 6, np.arange(7.0))
    freq = np.bincount(simulated["x"].astype(int), minlength=7) / N
    z = (freq - p) / np.sqrt(p * (1 - p) / N)
    assert np.max(np.abs(z)) < 4.5, z
    mean, sd = simulated["x"].mean(), simulated["x"].std()
    assert abs(mean - MODEL.expected_purchases_new(FHS_THETA, 6)) < 4.5 * sd / np.sqrt(N)


def test_simulated_p_alive_survival_and_conditional_expectations(simulated):
    s = simulated.assign(alive=simulated["life"] >= 6, alive_next=simulated["life"] >= 7)
    g = s.groupby(["x", "t_x"]).agg(N=("alive", "size"), alive=("alive", "mean"), alive_next=("alive_next", "mean"),
                                    x_star=("x_star", "mean"), sd=("x_star", "std")).reset_index()
    g = g[g["N"] >= 1000]
    assert len(g) >= 18
    x, t_x, n = g["x"].to_numpy(), g["t_x"].to_numpy(), np.full(len(g), 6.0)
    pa = MODEL.p_alive(FHS_THETA, x, t_x, n)
    pa_next = MODEL.p_alive_future(FHS_THETA, 1.0, x, t_x, n)
    e5 = MODEL.expected_purchases(FHS_THETA, 5.0, x, t_x, n)
    N = g["N"].to_numpy()
    inner = (pa > 0) & (pa < 1)       # t_x = n: alive for sure, simulated and modelled alike
    assert (g["alive"].to_numpy()[~inner] == 1.0).all() and np.allclose(pa[~inner], 1.0)
    z_alive = (g["alive"].to_numpy() - pa)[inner] / np.sqrt(pa * (1 - pa) / N)[inner]
    z_next = (g["alive_next"].to_numpy() - pa_next) / np.sqrt(pa_next * (1 - pa_next) / N)
    z_e = (g["x_star"].to_numpy() - e5) / (g["sd"].to_numpy() / np.sqrt(N))
    assert np.max(np.abs(z_alive)) < 4.5, z_alive
    assert np.max(np.abs(z_next)) < 4.5, z_next
    assert np.max(np.abs(z_e)) < 4.5, z_e
    # survival given alive at n = 6 (the same for every history)
    alive = s.loc[s["alive"], "life"].to_numpy()
    for t in (1, 3, 5):
        q = float(MODEL.survival_given_alive(FHS_THETA, float(t), 0.0, 0.0, 6.0))
        assert abs((alive >= 6 + t).mean() - q) < 4.5 * np.sqrt(q * (1 - q) / len(alive))


def test_simulate_purchase_times_and_summary_are_opportunities():
    times = MODEL.simulate_purchase_times(FHS_THETA, 2000, 8.0, np.random.default_rng(1))
    assert len(times) == 2000
    flat = np.concatenate(times)
    assert np.all(flat == np.round(flat)) and flat.min() >= 1 and flat.max() <= 8
    assert all(np.all(np.diff(v) > 0) for v in times)
    summ = MODEL.simulate_summary(FHS_THETA, np.full(2000, 6.0), np.random.default_rng(2), t_star=3.0)
    assert set(summ.columns) >= {"x", "t_x", "T", "x_star"}
    assert (summ["x"] <= summ["t_x"]).all() and (summ["t_x"] <= 6).all() and (summ["x_star"] <= 3).all()
    MODEL.log_likelihood(FHS_THETA, summ["x"], summ["t_x"], summ["T"])   # valid discrete histories


# --- discrete summaries of dated logs ---------------------------------------------

def _log(rows):
    return pd.DataFrame({"customer_id": [r[0] for r in rows], "date": pd.to_datetime([r[1] for r in rows])})


def test_discrete_summary_counts_one_transaction_per_period():
    log = _log([
        ("a", "1995-03-01"), ("a", "1995-11-01"),                       # second one in the first period
        ("a", "1997-05-05"), ("a", "1997-06-06"), ("a", "1999-12-31"),  # two in 1997 count once
        ("b", "1995-01-01"), ("b", "2002-01-01"),                       # after the end: ignored
        ("c", "1996-12-31"),                                            # acquired in 1996
        ("d", "1994-06-01"), ("d", "2001-01-01"),                       # acquired before the cohort start
    ])
    s = discrete_summary(log, period="Y", end="2001-12-31")
    assert s.loc["a", ["x", "t_x", "T"]].tolist() == [2, 4, 6]
    assert s.loc["b", ["x", "t_x", "T"]].tolist() == [0, 0, 6]
    assert s.loc["c", ["x", "t_x", "T"]].tolist() == [0, 0, 5]
    assert s.loc["d", ["x", "t_x", "T"]].tolist() == [1, 7, 7]
    assert str(s.loc["c", "first_period"]) == "1996"
    cohort = discrete_summary(log, period="Y", start="1995-01-01", end="2001-12-31")
    assert cohort.index.tolist() == ["a", "b", "c"]
    q = discrete_summary(log, period="Q", end="1997-06-30")
    assert q.loc["a", ["x", "t_x", "T"]].tolist() == [2, 9, 9]        # 1995Q4 and 1997Q2 after 1995Q1
    # default end: the end of the last transaction's period (2002)
    assert discrete_summary(log, period="Y").loc["b", ["x", "t_x", "T"]].tolist() == [1, 7, 7]


def test_discrete_summary_errors_name_the_rule():
    log = _log([("a", "1995-03-01"), ("a", "1996-03-01")])
    with pytest.raises(ValueError, match="not the last day of its period .*2001-12-31"):
        discrete_summary(log, period="Y", end="2001-06-30")
    with pytest.raises(ValueError, match="period alias"):
        discrete_summary(log, period="fortnight", end="2001-12-31")
    bad = pd.DataFrame({"customer_id": ["a", "b"], "date": ["1995-03-01", "not a date"]})
    with pytest.raises(DataValidationError, match="date.*1 row"):
        discrete_summary(bad, period="Y", end="2001-12-31")
    with pytest.raises(DataValidationError, match="customer_id"):
        discrete_summary(log.rename(columns={"customer_id": "id"}), period="Y")


def test_donations_log_reproduces_the_donations_summary():
    cfg = load_config(ROOT / "configs" / "donations.yaml")
    data = load_data(cfg)
    assert len(data.transactions) == 35_719 and data.n_customers == 11_104
    s = discrete_summary(data.transactions, period=cfg.data["opportunity_period"],
                         end=cfg.data["observation_end"])  # 1996-2001, as in the paper
    assert (s["first_period"].astype(str) == "1995").all()
    got = s.groupby(["x", "t_x", "T"]).size().reset_index()
    got.columns = ["frequency", "recency", "periods", "weights"]
    want = pd.read_csv(ROOT / "data" / "donations.csv")
    pd.testing.assert_frame_equal(got.astype("int64"), want.astype("int64"))


def test_donations_log_follows_its_documented_construction():
    """Each (x, t_x) group cycles through the C(t_x - 1, x - 1) patterns in lexicographic order."""
    log = pd.read_csv(ROOT / "data" / "donations_log.csv", dtype={"customer_id": str})
    years = (pd.to_datetime(log["date"]).dt.year - 1995).groupby(log["customer_id"]).apply(tuple)
    summary = pd.read_csv(ROOT / "data" / "donations.csv")
    k = 0
    for x, t_x, _, w in summary.itertuples(index=False):
        patterns = [c + (t_x,) for c in combinations(range(1, t_x), x - 1)] if x > 0 else [()]
        for j in (0, w - 1):          # the first and last donor of each group
            assert years[f"{k + j + 1:05d}"] == (0,) + patterns[j % len(patterns)]
        k += w
