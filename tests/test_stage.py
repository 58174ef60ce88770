"""The shared analysis stage (helpers.stage): published numbers, notebook 02's choice, logs without
amounts, the files it writes and the cache key.

References: Fader, Hardie & Lee (2005a), "Counting your customers the easy way" (BG/NBD on the CDNOW
sample: r=0.243, alpha=4.414, a=0.793, b=2.426, LL=-9582.4; 1,882 holdout repeat transactions);
Fader & Hardie's Pareto/NBD estimates on the same sample (r=0.553, alpha=10.578, s=0.606, beta=11.669,
LL=-9595.0); Fader, Hardie & Lee (2005b), "RFM and CLV" (Gamma-Gamma on 946 repeat buyers: p=6.25,
q=3.74, gamma=15.44).  Holdout predictions are recomputed with lifetimes 0.11.3 (the oracle), on
lifetimes' own calibration/holdout summary.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
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


def test_configured_candidate_models_are_the_only_ones_fitted(tmp_path, paper):
    s = compute_stage(write_config(tmp_path, "two", body="models: [bgnbd, mbgnbd]\n"))
    assert list(s.fits_cal) == list(s.fits_full) == ["bgnbd", "mbgnbd"]
    assert s.model_name in ("bgnbd", "mbgnbd") and s.chosen_by == "auto"   # the rule picks among the candidates
    assert set(s.comparison.index) == {"bgnbd", "mbgnbd", "baseline"}
    for name in ("pareto_nbd", "ggompertz_nbd"):
        assert "not among the configuration's models" in s.skipped[name]
    for name in ("bgnbd", "mbgnbd"):   # the same fits as when every model is fitted
        np.testing.assert_allclose(s.fits_cal[name].params.to_numpy(), paper.fits_cal[name].params.to_numpy(),
                                   rtol=1e-12)
    assert stage_key(load_config(write_config(tmp_path, "two"))) != s.key


@pytest.mark.parametrize("body, message", [
    ("models: [bgnbd, nbd_lognormal]\n", "unknown model(s) 'nbd_lognormal'"),
    ("models: []\n", "at least one model is needed"),
    ("models: [bgnbd, bgnbd]\n", "a model is listed twice"),
    ("model: pareto_nbd\nmodels: [bgnbd]\n", "model 'pareto_nbd' is not among models ['bgnbd']"),
])
def test_candidate_models_are_checked(tmp_path, body, message):
    from helpers.config import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, "bad", body=body))
    assert message in str(err.value)


def test_duckdb_engine_gives_the_same_stage(tmp_path, paper, monkeypatch):
    """The DuckDB stage groups the log by customer and day once: its summaries and every aggregate come from
    that one table (closed when the stage is done), and equal the pandas stage's."""
    from helpers import aggregates_log
    from helpers.preflight import preflight

    built = []

    class Counted(aggregates_log.CustomerDays):
        def __init__(self, *a, **k):
            built.append(self)
            super().__init__(*a, **k)

    monkeypatch.setattr(aggregates_log, "CustomerDays", Counted)
    from helpers import stage as stage_module

    real_fit_all, open_at_fits = stage_module._fit_all, []

    def fit_all(*a, **k):       # the aggregates come before the fits: the table is closed by then
        try:
            built[-1].con.execute("SELECT 1")
            open_at_fits.append(True)
        except Exception:  # noqa: BLE001 - closed
            open_at_fits.append(False)
        return real_fit_all(*a, **k)

    monkeypatch.setattr(stage_module, "_fit_all", fit_all)
    path = write_config(tmp_path, "duck", extra_data="  engine: duckdb\n")
    s = compute_stage(path)
    assert len(built) == 1      # the validation's counts and the whole stage on one table
    assert open_at_fits == [False, False] and list(s.timings)[:3] == ["validation", "summaries", "aggregates"]
    with pytest.raises(Exception, match="closed"):
        built[0].con.execute("SELECT 1")
    # the runner's way: the pre-flight keeps its table, the stage takes it over and closes it
    pf = preflight(path, keep_days=True)
    assert len(built) == 2 and pf.data.days is built[1]
    again = compute_stage(pf.cfg, pf)
    assert len(built) == 2 and pf.data.days is None
    with pytest.raises(Exception, match="closed"):
        built[1].con.execute("SELECT 1")
    pd.testing.assert_frame_equal(again.full, s.full)
    pd.testing.assert_frame_equal(again.quality, s.quality)
    # a pre-flight on its own leaves no table open
    alone = preflight(path)
    assert len(built) == 3 and alone.data.days is None
    with pytest.raises(Exception, match="closed"):
        built[2].con.execute("SELECT 1")
    assert s.engine == "duckdb"
    for name in ("cal", "full"):     # the pandas stage adds the statistics some models read from the log
        got, ref = getattr(s, name), getattr(paper, name)
        assert set(got.columns) >= {"x", "t_x", "T", "m_x", "first_purchase"} and set(got.columns) <= set(ref.columns)
        pd.testing.assert_frame_equal(got, ref[got.columns], check_exact=False, rtol=1e-12, obj=name)
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
        "comparison.parquet", "valuation.parquet", "aggregates"}
    assert {p.name for p in (tmp_path / "stage" / "aggregates").iterdir()} == {
        f"{name}.parquet" for name in paper.aggregates}
    back = Stage.load(tmp_path / "stage")
    for name in ("quality", "cal", "full", "predictions", "comparison", "valuation"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(paper, name), check_exact=True)
    # the customer ids are written once: CDNOW's customers all arrived in the calibration period, so the full
    # summary, the predictions and the valuation borrow the calibration summary's index on load
    shared = json.loads((tmp_path / "stage" / "stage.json").read_text())["shared_index"]
    assert paper.full.index.equals(paper.cal.index)
    assert shared == {"full": "cal", "predictions": "cal", "valuation": "cal"}
    assert back.valuation.index is back.cal.index and back.full.index is back.cal.index
    assert "customer_id" not in pq.read_schema(tmp_path / "stage" / "valuation.parquet").names
    assert "customer_id" in pq.read_schema(tmp_path / "stage" / "cal.parquet").names
    assert list(back.aggregates) == list(paper.aggregates)
    for name, frame in paper.aggregates.items():   # the tables and their attrs (periods, units) survive
        pd.testing.assert_frame_equal(back.aggregates[name], frame, check_exact=True)
        assert back.aggregates[name].attrs == frame.attrs, name
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


# --- every registered model that applies (issue #12) ----------------------------------------

def test_every_registered_model_is_fitted_or_its_error_or_reason_recorded(paper):
    from helpers.models import get_model, registered_models

    for name in registered_models():
        continuous = not get_model(name).discrete
        if continuous:
            assert name in paper.fits_cal or name in paper.fit_errors["cal"], name
            assert name in paper.model_summaries and paper.model_summaries[name] == "continuous"
        else:  # a discrete-time model on a continuous log does not apply, and says why
            assert name not in paper.fits_cal and "opportunity_period" in paper.skipped[name]
    # on CDNOW every continuous model fits both periods and is compared on the holdout
    assert set(paper.fits_cal) == set(paper.fits_full) == {n for n in registered_models() if not get_model(n).discrete}
    assert list(paper.comparison.index) == [*paper.fits_cal, "baseline"]
    assert set(paper.predictions.columns) == {"actual", *paper.fits_cal, "baseline"}


def test_a_model_that_fails_to_fit_is_recorded_and_the_stage_goes_on(tmp_path, monkeypatch, paper):
    from helpers.models import ModelFitError, get_model

    def broken(*args, **kwargs):
        raise ModelFitError("MBG/NBD: no convergence (a test breaks it)")

    monkeypatch.setattr(get_model("mbgnbd"), "fit", broken)
    s = compute_stage(write_config(tmp_path, "broken"))
    assert s.fit_errors["cal"]["mbgnbd"] == "ModelFitError: MBG/NBD: no convergence (a test breaks it)"
    assert "mbgnbd" not in s.fits_cal and "mbgnbd" not in s.comparison.index and "mbgnbd" not in s.predictions
    assert s.model_name == paper.model_name == "pareto_nbd"
    pd.testing.assert_frame_equal(s.comparison, paper.comparison.drop(index="mbgnbd"))


def test_ranking_metrics_equal_helpers_diagnostics_on_the_predictions(paper):
    from scipy.stats import spearmanr

    from helpers import diagnostics

    actual = paper.predictions["actual"]
    for name in [*paper.fits_cal, "baseline"]:
        pred = paper.predictions[name]
        row = paper.comparison.loc[name]
        assert row["spearman"] == diagnostics.spearman(actual, pred), name
        assert row["top_decile_capture"] == diagnostics.top_capture(actual, pred, 0.1), name
        assert row["gini"] == diagnostics.gini(actual, pred), name
        # and Spearman as scipy computes it (average ranks for ties)
        assert row["spearman"] == pytest.approx(spearmanr(actual, pred).statistic, rel=1e-10), name
    # the models rank CDNOW's customers better than the naive baseline by Gini
    assert (paper.comparison.loc[list(paper.fits_cal), "gini"] > paper.comparison.loc["baseline", "gini"] - 0.01).all()


def _simulated_log(path: Path, name: str, theta: tuple, n: int = 4000, seed: int = 1, weeks: int = 78,
                   acquisition_days: int = 84) -> pd.Timestamp:
    """A transaction log from ``name``'s own generative process: first purchases uniform over the first
    ``acquisition_days`` days of 2020, repeat purchases at the model's times (weeks), dated to the day."""
    from helpers.models import get_model

    rng = np.random.default_rng(seed)
    first = rng.integers(0, acquisition_days, n)
    horizon = (weeks * 7 - first) / 7.0
    times = get_model(name).simulate_purchase_times(theta, n, float(horizon.max()), rng)
    start = pd.Timestamp("2020-01-01")
    ids, days = [], []
    for i, (f, ts) in enumerate(zip(first, times)):
        ts = np.asarray(ts, dtype=float)
        d = np.concatenate([[f], f + np.floor(ts[ts <= horizon[i]] * 7).astype(int)])
        ids += [f"{i:05d}"] * len(d)
        days.append(d)
    dates = start + pd.to_timedelta(np.concatenate(days), unit="D")
    pd.DataFrame({"customer_id": ids, "date": dates.strftime("%Y-%m-%d")}).to_csv(path, index=False)
    return start + pd.Timedelta(days=weeks * 7 - 1)


def test_auto_chooses_the_generating_model_on_a_simulated_pareto_nbd_log(tmp_path):
    """Customers of a Pareto/NBD process (r=0.8, alpha=6, s=1, beta=20, weeks) drop out at any time, also
    before a repeat purchase, which the BG models cannot express: the holdout rule picks Pareto/NBD out of every
    fitted model.  Only GGompertz/NBD, which contains Pareto/NBD (b -> 0), comes within the rule's 1% tie band,
    and the tie goes to Pareto/NBD."""
    end = _simulated_log(tmp_path / "pnbd.csv", "pareto_nbd", (0.8, 6.0, 1.0, 20.0))
    cfg = tmp_path / "pnbd.yaml"
    cfg.write_text(f"name: pnbd\ndata:\n  path: {tmp_path / 'pnbd.csv'}\n  columns: {{customer_id: customer_id, date: date}}\n"
                   f"  date_format: '%Y-%m-%d'\n  observation_end: '{end.date()}'\n"
                   "parameters: {time_unit: W, calibration_end: '2020-09-29'}\n")
    s = compute_stage(cfg)
    assert s.model_name == s.auto_choice == "pareto_nbd" and s.chosen_by == "auto"
    mae = s.comparison.drop(index="baseline")["mae"]
    assert (mae.drop(["pareto_nbd", "ggompertz_nbd"]) > 1.01 * mae["pareto_nbd"]).all()
    assert mae["ggompertz_nbd"] <= 1.01 * mae["pareto_nbd"]
    assert s.comparison.loc["bgnbd", "mae"] > s.comparison.loc["pareto_nbd", "mae"]


# --- a discrete-time log (donations, BG/BB) -------------------------------------------------

@pytest.fixture(scope="module")
def donations():
    """The donations stage with BG/BB and one continuous model (BG/NBD): the comparison logic is the same
    for every continuous model, and Pareto/NBD's full-period fit on these yearly data is slow."""
    import helpers.stage as hs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hs, "frequency_model_names", lambda: ("bgnbd", "bgbb"))
        return compute_stage(ROOT / "configs" / "donations.yaml")


def test_discrete_log_fits_bgbb_on_the_discrete_summary_with_the_published_estimates(donations):
    """Full period 1996-2001 = Fader, Hardie & Shang (2010): alpha 1.204, beta 0.750, gamma 0.657, delta 2.783."""
    s = donations
    assert s.discrete_period == "Y" and s.model_summaries == {"bgnbd": "continuous", "bgbb": "discrete"}
    assert {k: round(v, 2) for k, v in s.fits_full["bgbb"].params.items()} == {
        "alpha": 1.20, "beta": 0.75, "gamma": 0.66, "delta": 2.78}
    assert s.fits_full["bgbb"].time_unit == "Y" and s.fits_full["bgnbd"].time_unit == "W"
    assert (s.full_discrete["T"] == 6).all() and (s.cal_discrete["T"] == 3).all()
    assert s.summary_of("bgbb", "cal") is s.cal_discrete and s.summary_of("bgnbd", "cal") is s.cal


def test_discrete_log_compares_every_model_on_transactions_in_the_holdout_opportunities(donations):
    """Actual = donations in 1999-2001 (3,638 + 3,415 + 3,163 in the log); BG/BB's prediction is lifetimes'
    E[X(3)] at the stage's estimates; BG/NBD's is its expectation over the holdout's length in weeks."""
    from lifetimes import BetaGeoBetaBinomFitter

    s = donations
    cal_d, p = s.cal_discrete, s.predictions
    assert (cal_d["t_star"] == 3).all() and int(p["actual"].sum()) == 3638 + 3415 + 3163
    assert s.facts["holdout_transactions_discrete"] == 10216 and s.facts["holdout_opportunities"] == 3
    lt = BetaGeoBetaBinomFitter()
    lt.params_ = s.fits_cal["bgbb"].params.copy()
    ref = lt.conditional_expected_number_of_purchases_up_to_time(3, cal_d["x"], cal_d["t_x"], cal_d["T"])
    np.testing.assert_allclose(p["bgbb"], np.asarray(ref, float), rtol=1e-9)
    weeks = float(s.cal["t_star"].iloc[0])
    assert weeks == pytest.approx((pd.Timestamp("2001-12-31") - pd.Timestamp("1998-12-31")).days / 7)
    np.testing.assert_allclose(p["bgnbd"], s.fits_cal["bgnbd"].expected_purchases(weeks, s.cal.reindex(p.index)))
    np.testing.assert_allclose(p["baseline"], cal_d["x"] / 3 * 3)          # naive x / n * n*, in opportunities
    assert list(s.comparison["summary"]) == ["continuous", "discrete", "discrete"]
    assert "opportunit" in s.holdout_basis
    # the holdout rule over both kinds: BG/BB, which knows there is at most one donation a year
    assert s.model_name == "bgbb" and s.chosen_by == "auto"
    assert s.comparison.loc["bgbb", "mae"] < s.comparison.loc["bgnbd", "mae"]


def test_discrete_model_values_whole_opportunities_at_their_month(donations):
    """12 months = one yearly opportunity: expected purchases = lifetimes' E[X(1)] and the value is that
    purchase discounted over 12 months (no amounts: in purchases)."""
    from lifetimes import BetaGeoBetaBinomFitter

    s = donations
    full_d = s.full_discrete.reindex(s.full.index)
    lt = BetaGeoBetaBinomFitter()
    lt.params_ = s.model.params.copy()
    e1 = np.asarray(lt.conditional_expected_number_of_purchases_up_to_time(1, full_d["x"], full_d["t_x"],
                                                                           full_d["T"]), float)
    np.testing.assert_allclose(s.valuation["expected_purchases"], e1, rtol=1e-9)
    np.testing.assert_allclose(s.valuation["discounted_purchases"], e1 / 1.01 ** 12, rtol=1e-9)
    assert s.units == "purchases" and s.equity == pytest.approx(float((e1 / 1.01 ** 12).sum()), rel=1e-9)
    boot = s.bootstrap(n_boot=4, seed=3)
    assert boot.equity["estimate"] == pytest.approx(s.equity, rel=1e-9)
    assert list(boot.params.index.get_level_values("model").unique()) == ["BG/BB"]


def test_a_loaded_stage_reads_a_table_only_when_it_is_used(tmp_path, paper, monkeypatch):
    """A notebook that reads no per-customer table does not pay for one (at 1e7 customers 34 s and 5 GB)."""
    paper.save(tmp_path / "stage")
    read = []
    real = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda path, *a, **k: read.append(
        Path(path).name + ("[ids]" if k.get("columns") == [] else "")) or real(path, *a, **k))
    back = Stage.load(tmp_path / "stage")
    assert read == [] and back.model_name == paper.model_name and back.equity == paper.equity
    name = next(iter(paper.aggregates))
    pd.testing.assert_frame_equal(back.aggregates[name], paper.aggregates[name], check_exact=True)
    assert read == [f"{name}.parquet"]
    # the valuation is stored without its index: using it reads the ids of the calibration summary, whose ids
    # it shares, and not the summary's columns; the summary, read later, gets those same ids
    pd.testing.assert_frame_equal(back.valuation, paper.valuation, check_exact=True)
    assert read[1:] == ["valuation.parquet", "cal.parquet[ids]"]
    pd.testing.assert_frame_equal(back.cal, paper.cal, check_exact=True)
    assert read[3:] == ["cal.parquet"] and back.valuation.index is back.cal.index
    back.valuation, back.aggregates[name], back.cal             # read once, then kept
    assert len(read) == 4
    twin = copy.copy(back)                                       # a copy reads what it has not got on its own
    pd.testing.assert_frame_equal(twin.full, paper.full, check_exact=True)
    pd.testing.assert_frame_equal(back.full, paper.full, check_exact=True)
    assert read[4:] == ["full.parquet", "full.parquet"] and back.full.index is back.cal.index
    fresh = Stage.load(tmp_path / "stage")                       # full alone: the ids, not the summary's columns
    pd.testing.assert_frame_equal(fresh.full, paper.full, check_exact=True)
    assert read[6:] == ["full.parquet", "cal.parquet[ids]"] and fresh.full.index is fresh.valuation.index
    assert back.cal_discrete is None and back.full_discrete is None   # a continuous log has none: no file
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        back.nonsense
    (tmp_path / "stage" / "predictions.parquet").unlink()   # a table not yet read, gone: said so, by name
    with pytest.raises(FileNotFoundError, match="predictions.parquet: the stage folder changed"):
        back.predictions


def test_a_table_read_for_one_use_is_not_kept(tmp_path, paper, monkeypatch):
    """``stage.aggregates.read`` gives the table without keeping it (notebook 04's holdout_last, 0.4 GB of ids
    at 1e7 customers); one already kept is given as it is; the release of Arrow's pool follows every read."""
    import pyarrow

    from helpers import stage as stage_module

    paper.save(tmp_path / "stage")
    read, released = [], []
    real = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda path, *a, **k: read.append(Path(path).name) or real(path, *a, **k))
    pool = pyarrow.default_memory_pool()
    monkeypatch.setattr(stage_module, "release_arrow_memory", lambda: released.append(len(read)) or
                        pool.release_unused())
    back = Stage.load(tmp_path / "stage")
    name = "aggregates_log.holdout_last"
    first, second = back.aggregates.read(name), back.aggregates.read(name)
    pd.testing.assert_frame_equal(first, paper.aggregates[name], check_exact=True)
    assert first is not second and read == [f"{name}.parquet"] * 2 and released == [1, 2]
    kept = back.aggregates[name]
    assert back.aggregates.read(name) is kept and len(read) == 3
    back.cal
    assert read[-1] == "cal.parquet" and released[-1] == 4


def test_one_column_of_a_table_is_read_without_the_table(tmp_path, paper, monkeypatch):
    """``Stage.column`` reads one column of a deferred table from its file, without the table or the ids it
    shares (notebook 01 at 1e7 customers: 80 MB instead of 2.3 GB); from a table already read, its column."""
    import pyarrow.parquet as pq

    paper.save(tmp_path / "stage")
    frames, columns = [], []
    real_pd, real_pq = pd.read_parquet, pq.read_table
    monkeypatch.setattr(pd, "read_parquet", lambda path, *a, **k: frames.append(Path(path).name) or
                        real_pd(path, *a, **k))
    monkeypatch.setattr(pq, "read_table", lambda path, *a, **k: (k.get("columns") and columns.append(
        (Path(path).name, k["columns"]))) or real_pq(path, *a, **k))          # pandas passes a file, no columns
    back = Stage.load(tmp_path / "stage")
    for table, col in (("full", "x"), ("cal", "x_star"), ("valuation", "clv")):
        got = back.column(table, col)
        np.testing.assert_array_equal(got, getattr(paper, table)[col].to_numpy())
        assert got.dtype == getattr(paper, table)[col].dtype
    assert frames == [] and columns == [("full.parquet", ["x"]), ("cal.parquet", ["x_star"]),
                                        ("valuation.parquet", ["clv"])]
    full = back.full                                              # read now: its own column from here on
    assert back.column("full", "x") is not None and frames == ["full.parquet", "cal.parquet"]
    np.testing.assert_array_equal(back.column("full", "x"), full["x"].to_numpy())
    assert len(columns) == 3
    np.testing.assert_array_equal(paper.column("full", "T"), paper.full["T"].to_numpy())   # a computed stage
    with pytest.raises(KeyError):
        back.column("full", "nonsense")


def test_discrete_stage_round_trip(tmp_path, donations):
    donations.save(tmp_path / "d")
    back = Stage.load(tmp_path / "d")
    for name in ("cal_discrete", "full_discrete", "predictions", "comparison", "valuation"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(donations, name), check_exact=True)
    assert back.model_summaries == donations.model_summaries and back.discrete_period == "Y"
    np.testing.assert_array_equal(back.model.p_alive(back.full_discrete), donations.model.p_alive(donations.full_discrete))


# --- the bootstrap around the stage's equity ---------------------------------------------------

def test_bootstrap_estimate_equals_the_stage_equity(paper, paper_no_amounts):
    boot = paper.bootstrap(n_boot=5, seed=1)
    assert boot.equity["estimate"] == pytest.approx(paper.equity, rel=1e-10)
    np.testing.assert_allclose(boot.clv["clv"], paper.valuation["clv"], rtol=1e-10)
    assert boot.model == paper.model_name and set(boot.params.index.get_level_values("model")) == {
        paper.model_label, "Gamma-Gamma"}
    # without amounts: discounted purchases, only the frequency model is resampled
    b2 = paper_no_amounts.bootstrap(n_boot=5, seed=1)
    assert b2.equity["estimate"] == pytest.approx(paper_no_amounts.equity, rel=1e-10)
    assert set(b2.params.index.get_level_values("model")) == {paper_no_amounts.model_label}
    np.testing.assert_allclose(b2.clv["clv"], paper_no_amounts.valuation["discounted_purchases"], rtol=1e-10)


def _simulated_config(tmp_path: Path, name: str, theta: tuple, extra_data: str = "", **kw) -> Path:
    end = _simulated_log(tmp_path / f"{name}.csv", name, theta, **kw)
    cfg = tmp_path / f"{name}{'-' + extra_data.split(':')[-1].strip() if extra_data else ''}.yaml"
    cfg.write_text(f"name: {cfg.stem}\ndata:\n  path: {tmp_path / f'{name}.csv'}\n"
                   "  columns: {customer_id: customer_id, date: date}\n"
                   f"  date_format: '%Y-%m-%d'\n  observation_end: '{end.date()}'\n{extra_data}"
                   "parameters: {time_unit: W, calibration_end: '2020-09-29'}\n")
    return cfg


def _without_pareto_nbd(monkeypatch):
    """Every registered continuous model but Pareto/NBD and GGompertz/NBD, whose fits on very regular purchases
    are slow (Pareto/NBD leaves its fast series path: minutes); the choice logic is the same for every model."""
    import helpers.stage as hs
    from helpers.models import registered_models

    monkeypatch.setattr(hs, "frequency_model_names", lambda: tuple(
        n for n in registered_models() if n not in ("pareto_nbd", "ggompertz_nbd", "bgbb")))


def test_auto_chooses_bgcnbd_k_on_a_simulated_regular_log_with_litt_from_the_log(tmp_path, monkeypatch):
    """Erlang-3 gaps (BG/CNBD-k, k=3, r=2, alpha=4, a=0.5, b=4, weeks): the stage computes litt from the log,
    the CNBD-k fits find k = 3, and the holdout rule picks BG/CNBD-k over BG/NBD and MBG/NBD by more than 10%."""
    from helpers.config import load_data
    from helpers.models.cnbd_k import litt_from_transactions

    _without_pareto_nbd(monkeypatch)
    cfg = _simulated_config(tmp_path, "bgcnbd_k", (3.0, 2.0, 4.0, 0.5, 4.0))
    s = compute_stage(cfg)
    tx = load_data(cfg).transactions
    litt = litt_from_transactions(tx, "2020-09-29", "W").reindex(s.cal.index)
    np.testing.assert_array_equal(s.cal["litt"], litt.to_numpy())
    np.testing.assert_array_equal(s.full["litt"], litt_from_transactions(tx, s.observation_end, "W")
                                  .reindex(s.full.index).to_numpy())
    for name in ("bgcnbd_k", "mbgcnbd_k"):
        f = s.fits_cal[name]
        assert f.params["k"] == 3 and "with litt" in f.message, (name, f.message)
    assert not s.fit_notes
    assert s.model_name == "bgcnbd_k" and s.chosen_by == "auto"
    mae = s.comparison["mae"]
    assert (mae[["bgnbd", "mbgnbd"]] > 1.1 * mae["bgcnbd_k"]).all()
    # the bootstrap holds k at the chosen 3
    boot = s.bootstrap(n_boot=3, seed=0)
    assert (boot.param_draws[("BG/CNBD-k", "k")] == 3).all()
    assert boot.equity["estimate"] == pytest.approx(s.equity, rel=1e-10)


def test_without_the_log_in_memory_cnbd_k_is_fitted_on_x_t_x_T_and_says_so(tmp_path, monkeypatch):
    _without_pareto_nbd(monkeypatch)
    cfg = _simulated_config(tmp_path, "bgcnbd_k", (3.0, 2.0, 4.0, 0.5, 4.0), extra_data="  engine: duckdb\n")
    s = compute_stage(cfg)
    assert "litt" not in s.cal.columns
    for name in ("bgcnbd_k", "mbgcnbd_k"):
        assert name in s.fits_cal and "no litt given" in s.fits_cal[name].message
        assert s.fit_notes[name].startswith("fitted on x, t_x, T alone") and "duckdb" in s.fit_notes[name]
