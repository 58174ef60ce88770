"""The shared analysis stage (helpers.stage): published numbers, notebook 02's choice, logs without
amounts, the files it writes and the cache key.

References: Fader, Hardie & Lee (2005a), "Counting your customers the easy way" (BG/NBD on the CDNOW
sample: r=0.243, alpha=4.414, a=0.793, b=2.426, LL=-9582.4; 1,882 holdout repeat transactions);
Fader & Hardie's Pareto/NBD estimates on the same sample (r=0.553, alpha=10.578, s=0.606, beta=11.669,
LL=-9595.0); Fader, Hardie & Lee (2005b), "RFM and CLV" (Gamma-Gamma on 946 repeat buyers: p=6.25,
q=3.74, gamma=15.44).  Holdout predictions are recomputed with lifetimes 0.11.3 (the oracle), on
lifetimes' own calibration/holdout summary.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.config import load_config
from helpers.models import FittedModel, GammaGammaFit
from helpers.stage import Stage, compute_stage, get_stage, stage_key

ROOT = Path(__file__).resolve().parents[1]
LIFETIMES = {"bgnbd": "BetaGeoFitter", "mbgnbd": "ModifiedBetaGeoFitter", "pareto_nbd": "ParetoNBDFitter"}


def write_config(tmp_path: Path, name: str, data: str = "cdnow_sample.csv", extra_data: str = "",
                 amount: str | None = "amount", body: str = "") -> Path:
    cols = f"{{customer_id: customer_id, date: date, amount: {amount}}}" if amount else \
        "{customer_id: customer_id, date: date}"
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(
        f"name: {name}\n"
        f"data:\n  path: {ROOT / 'data' / data}\n  columns: {cols}\n  date_format: '%Y%m%d'\n"
        f"  observation_end: '1998-06-30'\n{extra_data}"
        "parameters: {time_unit: W, calibration_end: '1997-09-30'}\n"
        f"{body}"
        f"notebooks:\n  - path: {ROOT / 'notebooks' / '02-clv-models.ipynb'}\n"
    )
    return cfg


def lifetimes_split(csv: str) -> pd.DataFrame:
    """lifetimes' own calibration/holdout summary (purchases per day, time in weeks)."""
    from lifetimes.utils import calibration_and_holdout_data

    raw = pd.read_csv(ROOT / "data" / csv, dtype={"customer_id": str})
    raw["date"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    return calibration_and_holdout_data(raw, "customer_id", "date", calibration_period_end="1997-09-30",
                                        observation_period_end="1998-06-30", freq="D", freq_multiplier=7)


def lifetimes_prediction(model: str, params: dict, split: pd.DataFrame, t: float) -> np.ndarray:
    import lifetimes

    fitter = getattr(lifetimes, LIFETIMES[model])()
    fitter.params_ = pd.Series(params)
    return np.asarray(fitter.conditional_expected_number_of_purchases_up_to_time(
        t, split["frequency_cal"], split["recency_cal"], split["T_cal"]), float)


@pytest.fixture(scope="module")
def paper():
    return compute_stage(ROOT / "configs" / "cdnow-paper.yaml")


@pytest.fixture(scope="module")
def master():
    return compute_stage(ROOT / "configs" / "cdnow.yaml")


@pytest.fixture(scope="module")
def paper_no_amounts(tmp_path_factory):
    return compute_stage(write_config(tmp_path_factory.mktemp("noamt"), "paper-no-amounts", amount=None))


# --- published numbers (cdnow-paper) -----------------------------------------------------

def test_paper_bgnbd_pareto_and_gamma_gamma_published(paper):
    bg = paper.fits_cal["bgnbd"]
    assert {k: round(v, 3) for k, v in bg.params.items()} == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert round(bg.log_likelihood, 1) == -9582.4
    pn = paper.fits_cal["pareto_nbd"]
    for k, v in {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}.items():
        assert pn.params[k] == pytest.approx(v, abs=0.005), k
    assert round(pn.log_likelihood, 1) == -9595.0
    assert paper.spend_cal.n_customers == 946
    assert {k: round(v, 2) for k, v in paper.spend_cal.params.items()} == {"p": 6.25, "q": 3.74, "gamma": 15.44}
    assert paper.facts["holdout_repeat_purchase_days"] == 1882
    assert paper.facts["calibration_repeat_purchase_days"] == 2457
    assert paper.comparison.loc["bgnbd", "actual_total"] == 1882


def test_paper_holdout_mae_equals_the_published_pareto_nbd_through_lifetimes(paper):
    """The MAE of the stage's comparison = the MAE of the published Pareto/NBD estimates, predicted by
    lifetimes on its own summary (equal up to the rounding of the published parameters)."""
    split = lifetimes_split("cdnow_sample.csv")
    published = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    pred = lifetimes_prediction("pareto_nbd", published, split, 39.0)
    mae = float(np.mean(np.abs(pred - split["frequency_holdout"].to_numpy())))
    assert paper.comparison.loc["pareto_nbd", "mae"] == pytest.approx(mae, rel=5e-4)
    # the naive baseline x / T * t_star, written out here
    x, T = split["frequency_cal"].to_numpy(), split["T_cal"].to_numpy()
    naive = np.where(T > 0, x / np.where(T > 0, T, 1) * 39.0, 0.0)
    base = float(np.mean(np.abs(naive - split["frequency_holdout"].to_numpy())))
    assert paper.comparison.loc["baseline", "mae"] == pytest.approx(base, rel=1e-12)


# --- notebook 02's choice on the CDNOW master log ---------------------------------------

def test_master_recommends_pareto_nbd_by_the_holdout_rule(master):
    """Notebook 02's rule (lowest customer-level holdout MAE; models within 1% tie, ties go to the
    smallest total error), applied here to lifetimes' predictions, picks Pareto/NBD, and the stage's
    MAE and totals equal lifetimes'."""
    split = lifetimes_split("cdnow_master.csv").reindex(master.cal.index)
    actual = split["frequency_holdout"].to_numpy()
    mae, err = {}, {}
    for name in ("bgnbd", "mbgnbd", "pareto_nbd"):
        pred = lifetimes_prediction(name, dict(master.fits_cal[name].params), split, 39.0)
        mae[name] = float(np.mean(np.abs(pred - actual)))
        err[name] = 100 * (pred.sum() / actual.sum() - 1)
        assert master.comparison.loc[name, "mae"] == pytest.approx(mae[name], rel=1e-9), name
        assert master.comparison.loc[name, "total_error_pct"] == pytest.approx(err[name], rel=1e-9), name
    best = min(mae.values())
    tied = [n for n in mae if mae[n] <= best * 1.01]
    assert min(tied, key=lambda n: abs(err[n])) == "pareto_nbd"
    assert master.model_name == "pareto_nbd" and master.chosen_by == "auto" and master.auto_choice == "pareto_nbd"
    assert "Pareto/NBD" in master.choice_reason and "within 1%" in master.choice_reason
    assert master.model is master.fits_full["pareto_nbd"]


def test_master_bgnbd_estimates_equal_lifetimes(master):
    from lifetimes import BetaGeoFitter

    split = lifetimes_split("cdnow_master.csv")
    ref = BetaGeoFitter().fit(split["frequency_cal"], split["recency_cal"], split["T_cal"])
    np.testing.assert_allclose(master.fits_cal["bgnbd"].params[["r", "alpha", "a", "b"]].to_numpy(),
                               ref.params_[["r", "alpha", "a", "b"]].to_numpy(), rtol=1e-4)


def test_valuation_of_the_chosen_model(master):
    """expected purchases and P(alive) equal lifetimes' for the chosen (full-period) fit; discounted
    purchases are the month-by-month increments of E[X(t)] discounted at d; CLV (FHL 2005b) is
    margin x E[M | x, m_x] x discounted purchases; equity is their sum."""
    from lifetimes import ParetoNBDFitter

    v, full, model = master.valuation, master.full, master.model
    lt = ParetoNBDFitter()
    lt.params_ = model.params.copy()
    weeks = 12 * 365.25 / 12 / 7
    ref = lt.conditional_expected_number_of_purchases_up_to_time(weeks, full["x"], full["t_x"], full["T"])
    np.testing.assert_allclose(v["expected_purchases"], ref, rtol=1e-8)
    alive = lt.conditional_probability_alive(full["x"], full["t_x"], full["T"])
    np.testing.assert_allclose(v["p_alive"], alive, rtol=1e-8)
    some = full.iloc[:200]
    months = np.arange(13) * 365.25 / 12 / 7
    E = np.column_stack([model.expected_purchases(t, some) if t > 0 else np.zeros(len(some)) for t in months])
    disc = (np.diff(E, axis=1) / 1.01 ** np.arange(1, 13)).sum(axis=1)
    np.testing.assert_allclose(v["discounted_purchases"].iloc[:200], disc, rtol=1e-9)
    np.testing.assert_allclose(v["clv"], 0.3 * v["expected_spend"] * v["discounted_purchases"], rtol=1e-12)
    assert master.equity == pytest.approx(v["clv"].sum(), rel=1e-12)
    assert master.units == "USD" and master.value_basis == "spend model" and master.has_amounts
    assert "242,307" in master.equity_sentence() and "Pareto/NBD" in master.equity_sentence()


# --- a log without amounts --------------------------------------------------------------

def test_without_amounts_frequency_results_equal_and_values_in_purchases(paper, paper_no_amounts):
    s = paper_no_amounts
    assert not s.has_amounts and s.spend_cal is None and s.spend_full is None
    assert "m_x" not in s.cal.columns and "m_x" not in s.full.columns
    assert s.model_name == paper.model_name and s.choice_reason == paper.choice_reason
    for name in paper.fits_cal:
        for a, b in ((s.fits_cal[name], paper.fits_cal[name]), (s.fits_full[name], paper.fits_full[name])):
            np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-12)
            assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-12)
    pd.testing.assert_frame_equal(s.comparison, paper.comparison)
    pd.testing.assert_frame_equal(s.predictions, paper.predictions)
    for col in ("expected_purchases", "discounted_purchases", "p_alive"):
        pd.testing.assert_series_equal(s.valuation[col], paper.valuation[col])
    assert s.units == "purchases" and s.value_basis == "purchases" and "expected_spend" not in s.valuation
    pd.testing.assert_series_equal(s.valuation["clv"], s.valuation["discounted_purchases"], check_names=False)
    assert s.equity == pytest.approx(s.valuation["discounted_purchases"].sum(), rel=1e-12)
    assert "purchases" in s.equity_sentence() and "no amounts" in s.equity_sentence()
    assert s.provenance_results()["valuation"]["units"] == "purchases"


def test_without_amounts_a_value_per_purchase_gives_money(tmp_path, paper_no_amounts):
    cfg = write_config(tmp_path, "vpp", amount=None,
                       body="valuation: {value_per_purchase: 25.0, margin: 0.4, currency: EUR}\n")
    s = compute_stage(cfg)
    assert s.units == "EUR" and s.value_basis == "value per purchase"
    np.testing.assert_allclose(s.valuation["clv"], 0.4 * 25.0 * paper_no_amounts.valuation["discounted_purchases"],
                               rtol=1e-12)


# --- the configured model, another engine -------------------------------------------------

def test_configured_model_is_used_and_the_rule_is_reported(tmp_path, paper):
    s = compute_stage(write_config(tmp_path, "bg", body="model: bgnbd\n"))
    assert s.model_name == "bgnbd" and s.chosen_by == "configured" and s.auto_choice == "pareto_nbd"
    assert "configured" in s.choice_reason and "would choose Pareto/NBD" in s.choice_reason
    assert s.model is s.fits_full["bgnbd"]
    assert s.provenance_results()["model"] == {
        "name": "bgnbd", "label": "BG/NBD", "chosen_by": "configured",
        "params": {k: pytest.approx(v, rel=1e-9) for k, v in paper.fits_full["bgnbd"].params.items()}}
    assert s.equity != pytest.approx(paper.equity, rel=1e-3)  # valued with BG/NBD, not Pareto/NBD


def test_duckdb_engine_gives_the_same_stage(tmp_path, paper):
    s = compute_stage(write_config(tmp_path, "duck", extra_data="  engine: duckdb\n"))
    assert s.engine == "duckdb"
    assert s.model_name == paper.model_name
    for name in paper.fits_cal:
        np.testing.assert_allclose(s.fits_cal[name].params.to_numpy(), paper.fits_cal[name].params.to_numpy(),
                                   rtol=1e-7)
    assert s.equity == pytest.approx(paper.equity, rel=1e-7)
    assert s.quality.loc[s.quality["check"] == "customers", "rows"].iloc[0] == 2357


# --- files and cache --------------------------------------------------------------------

def test_save_load_round_trip(tmp_path, paper):
    paper.save(tmp_path / "stage")
    assert {p.name for p in (tmp_path / "stage").iterdir()} == {
        "stage.json", "quality.parquet", "cal.parquet", "full.parquet", "predictions.parquet",
        "comparison.parquet", "valuation.parquet"}
    back = Stage.load(tmp_path / "stage")
    for name in ("quality", "cal", "full", "predictions", "comparison", "valuation"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(paper, name), check_exact=True)
    for fits in ("fits_cal", "fits_full"):
        assert list(getattr(back, fits)) == list(getattr(paper, fits))
        for name, f in getattr(paper, fits).items():
            g = getattr(back, fits)[name]
            assert isinstance(g, FittedModel)
            pd.testing.assert_series_equal(g.params, f.params, check_exact=True)
            pd.testing.assert_series_equal(g.se, f.se, check_exact=True)
            pd.testing.assert_frame_equal(g.ci95, f.ci95, check_exact=True)
            pd.testing.assert_frame_equal(g.cov, f.cov, check_exact=True)
            for attr in ("name", "log_likelihood", "aic", "bic", "n_customers", "n_unique", "converged",
                         "penalizer", "time_unit"):
                assert getattr(g, attr) == getattr(f, attr), (name, attr)
    for spend in ("spend_cal", "spend_full"):
        g, f = getattr(back, spend), getattr(paper, spend)
        assert isinstance(g, GammaGammaFit)
        pd.testing.assert_series_equal(g.params, f.params, check_exact=True)
        assert g.frequency_spend_corr == f.frequency_spend_corr and g.n_customers == f.n_customers
    for attr in ("config_name", "key", "inputs", "data_sha256", "code_version", "engine", "time_unit",
                 "calibration_end", "observation_end", "has_amounts", "facts", "fit_errors", "model_name",
                 "chosen_by", "choice_reason", "auto_choice", "spend_warnings", "valuation_settings", "equity",
                 "units", "value_basis", "timings"):
        assert getattr(back, attr) == getattr(paper, attr), attr
    # the rebuilt model predicts exactly as the original
    np.testing.assert_array_equal(back.model.expected_purchases(10.0, back.full),
                                  paper.model.expected_purchases(10.0, paper.full))


def test_cache_key_changes_with_config_data_and_code(tmp_path, monkeypatch):
    import helpers.stage as hs

    log = tmp_path / "log.csv"
    log.write_bytes((ROOT / "data" / "cdnow_sample.csv").read_bytes())
    base = write_config(tmp_path, "k", data=str(log))
    key = stage_key(load_config(base))
    assert stage_key(load_config(base)) == key
    # what does not reach the stage does not change the key
    other_nb = tmp_path / "k2.yaml"
    other_nb.write_text(base.read_text().replace("name: k", "name: k2\ndescription: another text")
                        + "cell_timeout_s: 30\n")
    assert stage_key(load_config(other_nb)) == key
    # the configuration
    horizon = tmp_path / "k3.yaml"
    horizon.write_text(base.read_text() + "valuation: {horizon_months: 24}\n")
    assert stage_key(load_config(horizon)) != key
    model = tmp_path / "k4.yaml"
    model.write_text(base.read_text() + "model: mbgnbd\n")
    assert stage_key(load_config(model)) != key
    # the data (one more transaction)
    with open(log, "a") as fh:
        fh.write("0001,4,19980601,1,10.00\n")
    assert stage_key(load_config(base)) != key
    changed_data = stage_key(load_config(base))
    # the code
    monkeypatch.setattr(hs, "source_sha256", lambda: "0" * 64)
    assert stage_key(load_config(base)) != changed_data


def test_get_stage_computes_once_then_reuses_the_cache(tmp_path, monkeypatch, paper):
    import helpers.stage as hs

    calls = []
    real = hs.compute_stage
    monkeypatch.setattr(hs, "compute_stage", lambda cfg, *a, **k: calls.append(1) or real(cfg, *a, **k))
    cfg = ROOT / "configs" / "cdnow-paper.yaml"
    cache = tmp_path / "cache"
    first = get_stage(cfg, cache_dir=cache)
    second = get_stage(cfg, cache_dir=cache)
    assert len(calls) == 1
    assert [p.name for p in cache.iterdir()] == [first.key]
    assert second.equity == first.equity == pytest.approx(paper.equity, rel=1e-12)
    pd.testing.assert_frame_equal(second.valuation, first.valuation)
    # a stage folder given by the runner is read as is
    paper.save(tmp_path / "run-stage")
    given = get_stage(cfg, stage_dir=str(tmp_path / "run-stage"))
    assert len(calls) == 1 and given.key == paper.key
