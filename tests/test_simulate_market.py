"""Tests of helpers.simulate.write_simulated_log and helpers.simulate.simulate_market."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.config import ensure_data, load_config, load_data
from helpers.data import load_transactions
from helpers.revenue import growth_accounting, repeat_share_revenue_regression, returning_revenue_share
from helpers.simulate import simulate_market, write_simulated_log

RETAILER = dict(
    n_customers=3_000, r=0.6, alpha=4.0, a=0.8, b=4.0, p=6.0, q=4.0, gamma=20.0,
    start="2021-01-01", acquisition_days=1094, observation_days=1095, seed=2024,
)


@pytest.fixture(scope="module")
def retailer_csv(tmp_path_factory):
    return write_simulated_log(tmp_path_factory.mktemp("sim") / "deep" / "dir" / "retailer.csv", **RETAILER)


# ---------------------------------------------------------------------------
# write_simulated_log
# ---------------------------------------------------------------------------

def test_log_file_format(retailer_csv):
    assert retailer_csv.exists()  # parent folders created
    raw = pd.read_csv(retailer_csv, dtype=str)
    assert list(raw.columns) == ["customer_id", "date", "amount"]
    assert raw["date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()  # day resolution
    assert raw["amount"].str.fullmatch(r"\d+\.\d{2}").all()  # cents
    assert raw["customer_id"].str.fullmatch(r"\d{9}").all()
    assert raw["customer_id"].nunique() == RETAILER["n_customers"]
    dates = pd.to_datetime(raw["date"])
    assert dates.is_monotonic_increasing
    assert dates.min() == pd.Timestamp("2021-01-01")
    assert dates.max() <= pd.Timestamp("2023-12-31")  # inside [start, start + observation_days)
    assert (raw["amount"].astype(float) >= 0.01).all()
    assert not any(p.name.endswith(".tmp") for p in retailer_csv.parent.iterdir())


def test_writers_at_once_each_write_their_own_temporary_file(tmp_path, retailer_csv):
    """Two writers of the same log at once (two runs generating the default data, or test workers) each
    write a temporary file of their own and rename it: the log is whole, and nothing is left behind.
    With one shared temporary name the second rename found no file (seen with two pytest workers)."""
    import threading

    target = tmp_path / "same.csv"
    start = threading.Barrier(3)
    errors = []

    def write():
        start.wait()
        try:
            write_simulated_log(target, **RETAILER, show_progress=False)
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() == retailer_csv.read_bytes()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_deterministic_from_seed(tmp_path, retailer_csv):
    again = write_simulated_log(tmp_path / "again.csv", **RETAILER)
    assert again.read_bytes() == retailer_csv.read_bytes()
    other = write_simulated_log(tmp_path / "other.csv", **{**RETAILER, "seed": 1})
    assert other.read_bytes() != retailer_csv.read_bytes()


def test_round_trip_through_loader(tmp_path, retailer_csv):
    data = load_transactions(retailer_csv, date_format="%Y-%m-%d", observation_end="2023-12-31")
    tx = data.transactions
    assert data.counts["rows_read"] == len(tx)
    assert data.counts.get("rows_after_observation_end", 0) == 0
    assert tx["customer_id"].nunique() == RETAILER["n_customers"]
    assert (tx["date"] == tx["date"].dt.normalize()).all()
    np.testing.assert_array_equal(tx["amount"].to_numpy(), np.round(tx["amount"].to_numpy(), 2))

    # Parquet by suffix: same content, real datetime column
    pq = write_simulated_log(tmp_path / "retailer.parquet", **RETAILER)
    raw = pd.read_parquet(pq)
    assert pd.api.types.is_datetime64_any_dtype(raw["date"])
    tx_pq = load_transactions(pq, observation_end="2023-12-31").transactions
    pd.testing.assert_frame_equal(tx_pq.reset_index(drop=True), tx.reset_index(drop=True))


def test_multi_cohort_acquisition_spread(retailer_csv):
    tx = load_transactions(retailer_csv, date_format="%Y-%m-%d").transactions
    first = tx.groupby("customer_id")["date"].min().dt.to_period("M").value_counts().sort_index()
    assert len(first) == 36  # new customers in every month of the three years
    expected = RETAILER["n_customers"] / 36
    assert first.min() > 0.6 * expected and first.max() < 1.4 * expected
    # every bridge component is exercised
    ga = growth_accounting(tx, "M").iloc[2:]  # resurrection needs a gap: possible from month 3
    for col in ["new", "expansion", "resurrected"]:
        assert (ga[col] > 0).all(), col
    for col in ["contraction", "churned"]:
        assert (ga[col] < 0).all(), col


def test_write_log_errors(tmp_path):
    with pytest.raises(ValueError, match="acquisition_days"):
        write_simulated_log(tmp_path / "x.csv", **{**RETAILER, "acquisition_days": 2000})
    with pytest.raises(TypeError):
        write_simulated_log(tmp_path / "x.csv", **{**RETAILER, "unknown": 1})
    assert not (tmp_path / "x.csv").exists()


def test_config_generates_data(tmp_path):
    cfg_path = tmp_path / "cfgs" / "sim.yaml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(
        "name: sim\n"
        "data:\n"
        "  path: ../gen/sim.csv\n"
        "  columns: {customer_id: customer_id, date: date, amount: amount}\n"
        "  date_format: \"%Y-%m-%d\"\n"
        "  observation_end: \"2021-06-30\"\n"
        "notebooks: []\n"
        "simulate: {n_customers: 200, r: 0.6, alpha: 4.0, a: 0.8, b: 4.0, p: 6.0, q: 4.0, gamma: 20.0,\n"
        "           start: \"2021-01-01\", acquisition_days: 150, observation_days: 181, seed: 3}\n"
    )
    cfg = load_config(cfg_path)
    assert not cfg.data_path.exists()
    path = ensure_data(cfg)
    assert path.exists() and path == tmp_path / "gen" / "sim.csv"
    content = path.read_bytes()
    data = load_data(cfg)
    assert data.transactions["customer_id"].nunique() == 200
    path.unlink()
    ensure_data(cfg)
    assert path.read_bytes() == content  # regenerated identically


def test_shipped_simulated_retailer_config():
    from helpers.config import PROJECT_ROOT

    cfg = load_config(PROJECT_ROOT / "configs" / "simulated-retailer.yaml")
    sim = cfg.simulate
    assert sim["acquisition_days"] >= 3 * 365 - 5 and sim["acquisition_days"] < sim["observation_days"]
    assert pd.Timestamp(cfg.data["observation_end"]) == (
        pd.Timestamp(sim["start"]) + pd.Timedelta(days=sim["observation_days"] - 1))
    cal = pd.Timestamp(cfg.parameters["calibration_end"])
    frac = (cal - pd.Timestamp(sim["start"])).days / sim["observation_days"]
    assert 0.6 < frac < 0.8
    assert cfg.data_path.name == "simulated-retailer.csv" and cfg.data_path.parent.name == "generated"


# ---------------------------------------------------------------------------
# simulate_market
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def market():
    return simulate_market(120, seed=5)


def test_market_shape_and_determinism(market):
    assert len(market) == 120 and market.index.name == "firm"
    for col in ["revenue", "repeat_share", "new_revenue", "returning_revenue", "n_customers",
                "new_per_month", "mean_dropout", "a", "b", "r", "alpha", "p", "q", "gamma", "seed"]:
        assert col in market.columns, col
    assert (market["revenue"] > 0).all()
    assert market["repeat_share"].between(0, 1).all()
    np.testing.assert_allclose(market["a"] / (market["a"] + market["b"]), market["mean_dropout"])
    np.testing.assert_allclose(market["new_revenue"] + market["returning_revenue"], market["revenue"])
    s = market.attrs["settings"]
    assert s["n_firms"] == 120 and s["start"] == "2021-01-01" and s["end"] == "2023-12-31"
    again = simulate_market(120, seed=5)
    pd.testing.assert_frame_equal(market, again)
    assert not simulate_market(120, seed=6)["revenue"].equals(market["revenue"])
    # firm draws do not depend on how many firms follow: the first firm's parameters differ
    # only through its own seed stream, which is spawned from the market seed
    assert market["seed"].nunique() == 120


def test_market_ranges(market):
    assert market["mean_dropout"].between(0.2, 0.95).all()
    assert market["new_per_month"].between(25, 250).all()
    np.testing.assert_array_equal(market["n_customers"], np.round(market["new_per_month"] * 36))
    # the default market spans the claim's range of repeat shares
    assert market["repeat_share"].min() < 0.10 and market["repeat_share"].max() > 0.40


def test_better_retention_higher_repeat_share(market):
    rho = market["repeat_share"].corr(market["mean_dropout"], method="spearman")
    assert rho < -0.8
    good = market["mean_dropout"] < market["mean_dropout"].quantile(0.25)
    bad = market["mean_dropout"] > market["mean_dropout"].quantile(0.75)
    assert market.loc[good, "repeat_share"].min() > market.loc[bad, "repeat_share"].max()
    # revenue per acquired customer rises with retention
    per_customer = market["revenue"] / market["n_customers"]
    assert per_customer.corr(market["mean_dropout"], method="spearman") < -0.8


def test_more_acquisition_more_revenue(market):
    # with retention held fixed, revenue scales with acquisition
    a = simulate_market(3, seed=1, mean_dropout=(0.5, 0.5), new_per_month=(100, 100))
    b = simulate_market(3, seed=1, mean_dropout=(0.5, 0.5), new_per_month=(400, 400))
    ratio = b["revenue"].sum() / a["revenue"].sum()
    assert 3.5 < ratio < 4.5
    assert abs(b["repeat_share"].mean() - a["repeat_share"].mean()) < 0.05
    assert market["revenue"].corr(market["new_per_month"], method="spearman") > 0.3


def test_correlation_changes_cross_firm_slope():
    neg = repeat_share_revenue_regression(simulate_market(150, seed=9, correlation=-0.6))
    pos = repeat_share_revenue_regression(simulate_market(150, seed=9, correlation=0.6))
    assert pos.slope > neg.slope


def test_repeat_share_matches_revenue_module():
    firms = simulate_market(4, seed=3, measure_months=None, new_per_month=(40, 60))
    firms12 = simulate_market(4, seed=3, measure_months=12, new_per_month=(40, 60))
    from helpers.simulate import simulate_bgnbd

    for k in range(4):
        f = firms.iloc[k]
        sim = simulate_bgnbd(int(f["n_customers"]), f["r"], f["alpha"], f["a"], f["b"], p=f["p"], q=f["q"],
                             gamma=f["gamma"], start="2021-01-01", observation_days=1095,
                             acquisition_days=1095 - 1e-6, seed=int(f["seed"]), resolution="day",
                             model="mbgnbd")
        share = returning_revenue_share(sim.transactions, period="M")
        assert f["repeat_share"] == pytest.approx(share.overall, rel=1e-9)
        assert f["revenue"] == pytest.approx(sim.transactions["amount"].sum(), rel=1e-9)
        last = share.table.iloc[-12:]
        assert firms12.iloc[k]["revenue"] == pytest.approx(last["revenue"].sum(), rel=1e-9)
        assert firms12.iloc[k]["repeat_share"] == pytest.approx(
            last["returning_revenue"].sum() / last["revenue"].sum(), rel=1e-9)


def test_market_errors():
    with pytest.raises(ValueError, match="n_firms"):
        simulate_market(0)
    with pytest.raises(ValueError, match="measure_months"):
        simulate_market(3, months=12, measure_months=13)
    with pytest.raises(ValueError, match="mean_dropout"):
        simulate_market(3, mean_dropout=(0.5, 1.0))
    with pytest.raises(ValueError, match="correlation"):
        simulate_market(3, correlation=1.0)
    with pytest.raises(ValueError, match="model"):
        simulate_market(3, model="pareto")
