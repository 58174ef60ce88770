"""Tests of helpers.simulate: the exact BG/NBD + Gamma-Gamma generative process."""

import numpy as np
import pandas as pd
import pytest

from helpers.models import _uncond_expected, fit_gamma_gamma, fit_model
from helpers.simulate import simulate_bgnbd, write_parquet_chunks
from helpers.summary import rfm_summary

CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def cohort():
    # one cohort, all first purchases on day 0, 39-week window
    return simulate_bgnbd(200_000, **CDNOW, **SPEND, observation_days=273, seed=11)


def test_log_format_and_reproducibility():
    s1 = simulate_bgnbd(500, **CDNOW, **SPEND, seed=5)
    s2 = simulate_bgnbd(500, **CDNOW, **SPEND, seed=5)
    pd.testing.assert_frame_equal(s1.transactions, s2.transactions)
    tx = s1.transactions
    assert list(tx.columns) == ["customer_id", "date", "amount"]
    assert tx["customer_id"].map(type).eq(str).all()
    assert pd.api.types.is_datetime64_any_dtype(tx["date"])
    assert (tx["amount"] > 0).all()
    assert tx["customer_id"].nunique() == 500
    assert s1.params["r"] == CDNOW["r"] and s1.params["seed"] == 5
    # every customer's first purchase is at the start (acquisition_days=0)
    assert (tx.groupby("customer_id")["date"].min() == pd.Timestamp("2020-01-01")).all()
    no_spend = simulate_bgnbd(100, **CDNOW, seed=1)
    assert "amount" not in no_spend.transactions.columns
    assert not simulate_bgnbd(500, **CDNOW, seed=6).transactions.equals(no_spend.transactions)


def test_exact_summary_matches_log(cohort):
    tx = cohort.transactions
    g = tx.groupby("customer_id")["date"]
    x = g.size() - 1
    t_x = (g.max() - g.min()) / pd.Timedelta(days=7)
    summ = cohort.summary()
    np.testing.assert_array_equal(summ["x"].to_numpy(), x.reindex(summ.index).to_numpy())
    np.testing.assert_allclose(summ["t_x"].to_numpy(), t_x.reindex(summ.index).to_numpy(), atol=1e-9)
    assert (summ["t_x"] <= summ["T"]).all()
    assert np.allclose(summ["T"], 39.0)
    # customers never exceed their drop-out budget J
    assert (summ["x"] <= cohort.customers["J"]).all()


def test_mean_repeat_purchases_matches_closed_form(cohort):
    # E[X(T)] of FHL (2005a) eq. (9) vs the Monte-Carlo mean
    x = cohort.customers["x"].to_numpy()
    expected = float(_uncond_expected("bgnbd", tuple(CDNOW.values()), 39.0))
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert abs(x.mean() - expected) < 4 * se


def test_mbgnbd_variant_matches_its_closed_form():
    s = simulate_bgnbd(200_000, **CDNOW, observation_days=273, seed=12, model="mbgnbd")
    x = s.customers["x"].to_numpy()
    expected = float(_uncond_expected("mbgnbd", tuple(CDNOW.values()), 39.0))
    assert abs(x.mean() - expected) < 4 * x.std(ddof=1) / np.sqrt(len(x))
    # drop-out right after the first purchase is possible: J == 0 occurs
    assert (s.customers["J"] == 0).any()


def test_spend_mean_matches_gamma_gamma(cohort):
    # E[z] = E[p / nu] = p * gamma / (q - 1); first purchases are one iid draw per customer
    tx = cohort.transactions
    first = tx.groupby("customer_id", sort=False)["amount"].first().to_numpy()
    expected = SPEND["p"] * SPEND["gamma"] / (SPEND["q"] - 1)
    assert abs(first.mean() - expected) < 4 * first.std(ddof=1) / np.sqrt(len(first))
    # and the customer-level nu ~ Gamma(q, rate gamma): E[1/nu] = gamma / (q - 1)
    inv_nu = 1 / cohort.customers["nu"].to_numpy()
    assert abs(inv_nu.mean() - SPEND["gamma"] / (SPEND["q"] - 1)) < 4 * inv_nu.std() / np.sqrt(len(inv_nu))


def test_parameter_recovery_continuous_time():
    # multi-cohort design of the CDNOW calibration period: 12 weeks of acquisition, 39 weeks
    sim = simulate_bgnbd(100_000, **CDNOW, **SPEND, acquisition_days=84, observation_days=273, seed=2024)
    summ = sim.summary()
    f = fit_model("bgnbd", summ)
    for k, v in CDNOW.items():
        assert abs(f.params[k] - v) < 3 * f.se[k], (k, f.params[k], f.se[k])
    g = fit_gamma_gamma(summ)
    for k, v in SPEND.items():
        assert abs(g.params[k] - v) < 3 * g.se[k], (k, g.params[k], g.se[k])


def test_day_counting_biases_alpha_upwards():
    # counting per day (resolution "day" + rfm_summary) vs the exact continuous summary
    sim = simulate_bgnbd(100_000, **CDNOW, acquisition_days=84, observation_days=273, seed=7,
                         resolution="day")
    assert (sim.transactions["date"] == sim.transactions["date"].dt.normalize()).all()
    daily = rfm_summary(sim.transactions, "2020-09-29", time_unit="W")
    assert len(daily) == 100_000
    assert (daily["x"].to_numpy() <= sim.customers["x"].reindex(daily.index).to_numpy()).all()
    f_day = fit_model("bgnbd", daily)
    assert f_day.params["alpha"] / CDNOW["alpha"] - 1 > 0.02     # measured: about +6% (see module docstring)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_customers"):
        simulate_bgnbd(0, **CDNOW)
    with pytest.raises(ValueError, match="alpha"):
        simulate_bgnbd(10, r=0.2, alpha=-1, a=1, b=1)
    with pytest.raises(ValueError, match="p, q, gamma"):
        simulate_bgnbd(10, **CDNOW, p=1.0)
    with pytest.raises(ValueError, match="resolution"):
        simulate_bgnbd(10, **CDNOW, resolution="hour")
    with pytest.raises(ValueError, match="acquisition_days"):
        simulate_bgnbd(10, **CDNOW, acquisition_days=600, observation_days=546)


def test_write_parquet_chunks(tmp_path):
    files = write_parquet_chunks(tmp_path / "log", 2_500, chunk_customers=1_000, seed=3, **CDNOW, **SPEND)
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    assert df["customer_id"].nunique() == 2_500
    assert pd.api.types.is_datetime64_any_dtype(df["date"])


# ---------------------------------------------------------------------------
# progress never changes what is simulated
# ---------------------------------------------------------------------------

def test_parquet_chunks_are_the_same_with_progress(tmp_path, shown_progress):
    kw = dict(chunk_customers=1_000, seed=3, **CDNOW, **SPEND)
    on = write_parquet_chunks(tmp_path / "on", 2_500, **kw)
    assert "simulated log chunks" in shown_progress()
    off = write_parquet_chunks(tmp_path / "off", 2_500, show_progress=False, **kw)
    assert shown_progress() == ""
    assert [f.name for f in on] == [f.name for f in off]
    for a, b in zip(on, off):
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    write_parquet_chunks(tmp_path / "one", 500, **kw)              # one chunk: nothing to count
    assert shown_progress() == ""


def test_market_is_the_same_with_progress(shown_progress):
    from helpers.simulate import simulate_market

    kw = dict(n_firms=4, months=12, measure_months=6, new_per_month=(20, 40), seed=8)
    on = simulate_market(**kw)
    assert "simulated firms" in shown_progress()
    off = simulate_market(**kw, show_progress=False)
    assert shown_progress() == ""
    pd.testing.assert_frame_equal(on, off)
    assert on.attrs == off.attrs


def test_simulated_log_is_the_same_with_progress_and_in_blocks(tmp_path, shown_progress, monkeypatch):
    """CSV logs are written in blocks of rows (progress, Ctrl-C): the same bytes as one to_csv call."""
    import helpers.simulate as sim
    from helpers.simulate import write_simulated_log

    kw = dict(n_customers=600, **CDNOW, **SPEND, acquisition_days=100, observation_days=400, seed=4)
    monkeypatch.setattr(sim, "_CSV_BLOCK_ROWS", 97)               # many blocks, the last one short
    on = write_simulated_log(tmp_path / "on.csv", **kw, show_progress=True)
    assert "simulated log:" in shown_progress()
    off = write_simulated_log(tmp_path / "off.csv", **kw, show_progress=False)
    assert shown_progress() == ""
    # the log as one to_csv call would write it
    tx = simulate_bgnbd(kw["n_customers"], **CDNOW, **SPEND, start="2021-01-01", acquisition_days=100,
                        observation_days=400, seed=4, resolution="day").transactions
    tx["amount"] = np.maximum(np.round(tx["amount"].to_numpy(), 2), 0.01)
    tx = tx.sort_values(["date", "customer_id"], kind="mergesort").reset_index(drop=True)
    assert len(tx) > 5 * 97
    one = tx.assign(date=tx["date"].dt.strftime("%Y-%m-%d")).to_csv(index=False, float_format="%.2f",
                                                                     lineterminator="\n")
    assert on.read_bytes() == off.read_bytes() == one.encode()
    pq_on = write_simulated_log(tmp_path / "on.parquet", **kw, show_progress=True)
    pq_off = write_simulated_log(tmp_path / "off.parquet", **kw, show_progress=False)
    assert pq_on.read_bytes() == pq_off.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["off.csv", "off.parquet", "on.csv", "on.parquet"]
