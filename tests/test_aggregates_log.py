"""The log aggregates of notebooks 01, 02 and 04 (helpers.aggregates_log): pandas = DuckDB = Spark, and the
roll-ups equal the same quantities counted directly from the log (written out here, independently of
helpers.summary: per-customer purchase days by drop_duplicates, gaps by differences, cohorts by first dates).

Published check: the CDNOW sample's weekly repeat purchase days (Fader, Hardie & Lee 2005: 2,457 in weeks
1-39 and 1,882 in weeks 40-78) from the ``days`` table.
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from helpers import aggregates_log, segments, summary
from helpers.aggregates import PRODUCERS, AggregateContext
from helpers.config import ensure_data, load_config, load_data, load_options

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("cdnow.yaml", "cdnow-no-amounts.yaml", "simulated-retailer.yaml")
TABLES = ("days", "gaps", "holdout_last", "returns", "opportunities", "examples")


def _ctx(cfg, engine, td=None):
    s = cfg.settings
    tx = td.transactions if td is not None else None
    obs = cfg.data.get("observation_end") or load_data(cfg).transactions["date"].max()
    # example customers: a few of the log's ids (one of them bought once) and one the log does not hold
    ids = (tuple(td.transactions["customer_id"].drop_duplicates().sample(6, random_state=3)) + ("no-such-id",)
           if td is not None else ())
    return AggregateContext(example_ids=ids, cfg=cfg, engine=engine, transactions=tx if engine == "pandas" else None,
                            returns=td.returns if engine == "pandas" else None,
                            calibration_end=pd.Timestamp(s.calibration_end),
                            observation_end=pd.Timestamp(obs).normalize(), time_unit=s.time_unit,
                            has_amounts=td.has_amount, customers_cal=pd.Index([]))


@pytest.fixture(scope="module")
def logs():
    out = {}
    for name in CONFIGS:
        cfg = load_config(ROOT / "configs" / name)
        ensure_data(cfg)
        td = load_data(cfg)
        out[name] = (cfg, td, aggregates_log.compute(_ctx(cfg, "pandas", td)))
    return out


def assert_tables_equal(a: dict, b: dict):
    assert set(a) == set(b) == set(TABLES)
    for name in TABLES:
        x, y = a[name], b[name]
        assert list(x.columns) == list(y.columns), name
        for col in x.columns:
            if pd.api.types.is_float_dtype(x[col]):
                np.testing.assert_allclose(y[col].to_numpy(), x[col].to_numpy(), rtol=1e-9, atol=0, err_msg=name)
            else:
                pd.testing.assert_series_equal(y[col], x[col], check_exact=True, obj=f"{name}.{col}")
        pd.testing.assert_index_equal(y.index, x.index, exact=True, obj=name)


def test_producer_is_registered():
    assert "aggregates_log" in PRODUCERS


@pytest.mark.parametrize("name", CONFIGS)
def test_duckdb_equals_pandas(logs, name):
    cfg, td, ref = logs[name]
    assert_tables_equal(ref, aggregates_log.compute(_ctx(cfg, "duckdb", td)))


@pytest.mark.parametrize("name", ["cdnow.yaml", "cdnow-no-amounts.yaml"])
def test_stage_producers_share_one_customer_day_table_in_duckdb(logs, name, monkeypatch):
    """compute_all builds the customer-day table once (one scan of the log) for both DuckDB producers
    and the example customers; every table equals the pandas engine's, and the table is dropped after."""
    from helpers import aggregates

    cfg, td, _ = logs[name]
    built = []
    real = aggregates_log.CustomerDays

    class Counted(real):
        def __init__(self, *a, **k):
            built.append(self)
            super().__init__(*a, **k)

    monkeypatch.setattr(aggregates_log, "CustomerDays", Counted)
    ref = aggregates.compute_all(_ctx(cfg, "pandas", td))
    ctx = _ctx(cfg, "duckdb", td)
    got = aggregates.compute_all(ctx)
    assert len(built) == 1 and ctx.duckdb_days is None
    with pytest.raises(Exception, match="closed"):
        built[0].con.execute("SELECT 1")
    assert sorted(got) == sorted(ref)
    assert_tables_equal({t: ref[f"aggregates_log.{t}"] for t in TABLES}, {t: got[f"aggregates_log.{t}"] for t in TABLES})
    for t in [k for k in ref if k.startswith("aggregates_revenue.")]:
        pd.testing.assert_frame_equal(got[t], ref[t], check_exact=False, rtol=1e-9, atol=0, obj=t)
    assert got["aggregates_log.examples"]["customer_id"].nunique() == 6      # the unknown id has no days


def test_duckdb_tables_with_progress_equal_tables_without(logs, shown_progress):
    """``progress`` of tables_duckdb reaches the customer-day step it runs under; the tables do not change."""
    cfg, _, _ = logs["cdnow.yaml"]
    opts = load_options(cfg, aggregates_log.tables_duckdb)
    cal = cfg.settings.calibration_end
    off = aggregates_log.tables_duckdb(cfg.data["path"], cal, **opts, progress=False)
    assert "log customer days (DuckDB):" not in shown_progress()
    on = aggregates_log.tables_duckdb(cfg.data["path"], cal, **opts, progress=True)
    assert "log customer days (DuckDB):" in shown_progress()
    assert sorted(on) == sorted(off)
    for name in off:
        pd.testing.assert_frame_equal(on[name], off[name], rtol=1e-12, obj=name)   # sums in another order


def test_spark_equals_pandas(logs, spark):
    for name in CONFIGS:
        cfg, td, ref = logs[name]
        assert_tables_equal(ref, aggregates_log.compute(_ctx(cfg, "spark", td)))


# ---------------------------------------------------------------------------
# the roll-ups against the log counted directly
# ---------------------------------------------------------------------------

def _direct_days(tx):
    """One row per customer and purchase day, with the customer's first day (straight from the log)."""
    d = pd.DataFrame({"customer_id": tx["customer_id"], "day": tx["date"].dt.normalize()}).drop_duplicates()
    d["first"] = d.groupby("customer_id")["day"].transform("min")
    return d.sort_values(["customer_id", "day"])


@pytest.mark.parametrize("name", CONFIGS)
def test_rollups_equal_the_log(logs, name):
    cfg, td, t = logs[name]
    tx = td.transactions
    days, direct = t["days"], _direct_days(tx)
    cal_end = pd.Timestamp(cfg.settings.calibration_end)
    obs_end = pd.Timestamp(t["days"].attrs["observation_end"])
    # tracking of 01: repeat purchase days per 7-day period from the first purchase day
    start = tx["date"].min().normalize()
    rep = direct[direct["day"] > direct["first"]]
    k = ((rep["day"] - start).dt.days // 7)
    n_periods = int(np.ceil(((obs_end - start).days + 1) / 7))
    ref = k.value_counts().reindex(range(n_periods), fill_value=0).to_numpy()
    got = summary.repeats_by_period(days["repeat_days"], start=start, end=obs_end, period_days=7)
    assert got["repeat"].tolist() == ref.tolist() and got["cumulative"].iloc[-1] == len(rep)
    pd.testing.assert_frame_equal(got, summary.repeat_transactions_by_period(tx, start, obs_end, 7))
    # cohorts (W, M, Q): first purchase days per period, every period from the first to the last
    for period in "WMQ":
        c = summary.cohorts_from_days(days, period)
        firsts = direct.loc[direct["day"] == direct["first"], "day"].dt.to_period(period).value_counts()
        full = pd.period_range(firsts.index.min(), firsts.index.max(), freq=period)
        assert c["new_customers"].tolist() == firsts.reindex(full, fill_value=0).tolist()
        pd.testing.assert_frame_equal(c, summary.first_purchase_cohorts(tx, period))
        if td.has_amount:
            first_rows = tx[tx["date"].dt.normalize() == tx.groupby("customer_id")["date"].transform("min")
                            .dt.normalize()]
            spend = first_rows.groupby(first_rows["date"].dt.to_period(period))["amount"].sum()
            np.testing.assert_allclose(c["first_day_spend"], spend.reindex(full, fill_value=0.0), rtol=1e-9)
    # gaps: differences of consecutive purchase days; statistics as pandas computes them on the expanded gaps
    gaps = direct.groupby("customer_id")["day"].diff().dropna().dt.days.astype(int)
    stats = summary.gap_statistics(t["gaps"])
    assert stats == {"n": len(gaps), "mean": gaps.mean(), "q25": gaps.quantile(0.25), "median": gaps.median(),
                     "q75": gaps.quantile(0.75), "max": float(gaps.max())}
    assert stats["n"] == summary.gap_statistics(summary.gap_counts(tx))["n"]
    # calibration split of the repeat purchase days (01's table)
    cal_cust = direct["first"] <= cal_end
    after = direct["day"] > cal_end
    is_rep = direct["day"] > direct["first"]
    split = aggregates_log.repeat_split(days, cal_end)
    assert split == {"calibration": int((is_rep & ~after).sum()), "holdout": int((is_rep & after & cal_cust).sum()),
                     "later_arrivals": int((is_rep & after & ~cal_cust).sum()), "after": int((is_rep & after).sum())}
    assert days["rows"].sum() == len(tx) and days["new_customers"].sum() == tx["customer_id"].nunique()
    # 04: the last holdout purchase day of each calibration customer
    h = direct[cal_cust & after].groupby("customer_id")["day"].max()
    cust = pd.Index(sorted(set(direct.loc[cal_cust, "customer_id"])))
    m = segments.holdout_active_months(t["holdout_last"], cal_end, cust, days_per_month=30.0)
    np.testing.assert_array_equal(m.to_numpy(), ((h - cal_end).dt.days / 30.0).reindex(cust, fill_value=0.0))


def test_weekly_tracking_of_the_cdnow_sample_matches_the_published_totals(cdnow_sample):
    t = aggregates_log.tables_pandas(cdnow_sample.transactions, None, "1997-09-30", "1998-06-30")
    weekly = summary.repeats_by_period(t["days"]["repeat_days_cal"], "1997-01-01", "1998-06-30", 7)
    assert len(weekly) == 78
    assert weekly["repeat"].iloc[:39].sum() == 2_457 and weekly["repeat"].iloc[39:].sum() == 1_882


def test_gap_statistics_of_a_small_count():
    """Gaps 1, 1, 3, 10: mean 3.75, quartiles at positions 0.75 and 2.25 of the sorted sample."""
    counts = pd.DataFrame({"count": [2, 1, 1]}, index=pd.Index([1, 3, 10], name="days"))
    assert summary.gap_statistics(counts) == {"n": 4, "mean": 3.75, "q25": 1.0, "median": 2.0,
                                              "q75": 3.0 + 0.25 * 7, "max": 10.0}
    assert np.isnan(summary.gap_statistics(counts.iloc[0:0])["median"])


# ---------------------------------------------------------------------------
# returns, duplicates and late rows: the same rows in every engine
# ---------------------------------------------------------------------------

RETURN_ROWS = [
    ("a", "2020-01-02", "5"), ("a", "2020-01-02", "5"), ("a", "2020-01-20", "-5"), ("a", "2020-01-20", "-1"),
    ("a", "2020-02-10", "7"), ("a", "2020-02-12", "-7"), ("b", "2020-01-05", "3"), ("b", "2020-02-01", "4"),
    (" b", "2020-02-20", "2"), ("b", "2020-03-01", "-4"), ("b", "2020-04-02", "-1"), ("c", "2020-02-15", "9"),
    ("c", "2020-02-16", "-9"), ("c", "2020-03-10", "1"), ("d", "2020-01-03", "2"), ("d", "2020-01-03", "2"),
    ("e", "2020-01-09", "-3"),
]


@pytest.mark.parametrize("dup", ["keep", "drop"])
def test_returns_and_policies_in_every_engine(tmp_path, spark, dup):
    from helpers.data import load_transactions

    path = tmp_path / "log.csv"
    path.write_text("customer_id,date,amount\n" + "".join(",".join(r) + "\n" for r in RETURN_ROWS))
    kw = dict(date_format="%Y-%m-%d", negative_amounts="returns", duplicates=dup)
    cal, obs = "2020-01-31", "2020-03-15"
    td = load_transactions(path, observation_end=obs, **kw)
    ref = aggregates_log.tables_pandas(td.transactions, td.returns, cal, obs)
    duck = aggregates_log.tables_duckdb(path, cal, observation_end=obs, **kw)
    spk = aggregates_log.tables_spark(path, cal, observation_end=obs, spark=spark, **kw)
    empty = {"opportunities": aggregates_log._empty_opportunities(), "examples": aggregates_log._days_of_frame(None, [])}
    for got in (duck, spk):
        assert_tables_equal({**ref, **empty}, {**got, **empty})
    # returned orders: return days per window (the 2020-04-02 return is after the observation end)
    r = ref["returns"]
    assert r.to_dict("index") == {"a": {"calibration": 1, "holdout": 1, "full": 2},
                                  "b": {"calibration": 0, "holdout": 1, "full": 1},
                                  "c": {"calibration": 0, "holdout": 1, "full": 1},
                                  "e": {"calibration": 1, "holdout": 0, "full": 1}}
    cust = pd.Index(["a", "b", "c", "d"])
    assert segments.return_counts(r, cust, "calibration").tolist() == [1.0, 0.0, 0.0, 0.0]
    assert segments.return_counts(r, cust, "holdout").tolist() == [1.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="window"):
        segments.return_counts(r, cust, "later")
    # ids stripped (" b" is b), duplicates counted as rows or dropped, the first-day spend with them
    first = ref["days"].loc[pd.Timestamp("2020-01-02")]
    assert first["rows"] == (2 if dup == "keep" else 1) and first["first_day_spend"] == (10.0 if dup == "keep"
                                                                                           else 5.0)
    assert ref["holdout_last"]["last_day"].to_dict() == {"a": pd.Timestamp("2020-02-10"),
                                                         "b": pd.Timestamp("2020-02-20")}


def test_customer_days_by_id_in_every_engine(tmp_path, spark):
    cfg = load_config(ROOT / "configs" / "cdnow.yaml")
    ensure_data(cfg)
    tx = load_data(cfg).transactions
    ids = sorted(tx["customer_id"].drop_duplicates().sample(5, random_state=1))
    ref = (tx.loc[tx["customer_id"].isin(ids), ["customer_id", "date"]].assign(day=lambda f: f["date"].dt.normalize())
           [["customer_id", "day"]].drop_duplicates().sort_values(["customer_id", "day"], ignore_index=True))
    pd.testing.assert_frame_equal(aggregates_log.customer_days(cfg, ids), ref)
    for engine in ("duckdb", "spark"):
        cfg.data["engine"] = engine
        pd.testing.assert_frame_equal(aggregates_log.customer_days(cfg, ids), ref, obj=engine)


def test_customer_days_come_from_the_stage_when_it_holds_them(logs, monkeypatch):
    cfg, td, tables = logs["cdnow.yaml"]
    held = tables["examples"]
    ids = list(held.attrs["ids"])
    assert len(ids) == 7 and set(held["customer_id"]) == set(ids) - {"no-such-id"}
    stage = SimpleNamespace(aggregates={"aggregates_log.examples": held})
    want = aggregates_log.customer_days(cfg, ids[:3])                  # through the engine
    monkeypatch.setattr("helpers.config.load_data", None)             # the stage's table, not the log
    got = aggregates_log.customer_days(cfg, ids[:3], stage=stage)
    pd.testing.assert_frame_equal(got, want)
    assert not got.empty and set(got["customer_id"]) <= set(ids[:3])
    monkeypatch.undo()
    # a customer the stage did not fetch: through the engine again
    other = td.transactions.loc[~td.transactions["customer_id"].isin(ids), "customer_id"].iloc[0]
    both = aggregates_log.customer_days(cfg, [ids[0], other], stage=stage)
    assert set(both["customer_id"]) == {ids[0], other}


def test_the_example_pool_holds_every_pick_up_to_the_most():
    summary = pd.DataFrame({"x": [0, 1, 1, 2, 3, 5, 8, 0, 2, 4] * 5, "t_x": np.arange(50.0)},
                           index=[f"c{i}" for i in range(50)])
    pool = aggregates_log.example_pool(summary)
    for n in range(1, aggregates_log.MAX_EXAMPLES + 1):
        picks = aggregates_log.example_ids(summary, n)
        assert len(picks) == n and set(picks) <= set(pool) and (summary.loc[picks, "x"] > 0).all()
    assert summary.loc[aggregates_log.example_ids(summary, 2), "x"].tolist() == [1, 8]   # the two ends
    assert len(pool) < 36 and aggregates_log.example_ids(summary.assign(x=0), 3) == []


def test_tables_survive_the_stage_files(logs, tmp_path):
    """The stage saves every table as Parquet with its attrs and reads it back unchanged."""
    _, _, t = logs["cdnow.yaml"]
    for name, frame in t.items():
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path)
        back = pd.read_parquet(path)
        pd.testing.assert_frame_equal(back, frame, check_index_type=True, obj=name)
        assert back.attrs == frame.attrs and frame.attrs["calibration_end"] == "1997-09-30"


# ---------------------------------------------------------------------------
# the stage's DuckDB summaries from the customer-day table (one scan of the log)
# ---------------------------------------------------------------------------

def _assert_summaries_equal(got: pd.DataFrame, ref: pd.DataFrame, obj: str):
    pd.testing.assert_index_equal(got.index, ref.index, exact=True, obj=obj)
    assert list(got.columns) == list(ref.columns), obj
    for col in ref.columns:
        if pd.api.types.is_float_dtype(ref[col]):       # spend: day sums added in another order
            np.testing.assert_allclose(got[col].to_numpy(), ref[col].to_numpy(), rtol=1e-10, atol=1e-9,
                                       err_msg=f"{obj}.{col}")
        else:
            pd.testing.assert_series_equal(got[col], ref[col], check_exact=True, obj=f"{obj}.{col}")


@pytest.mark.parametrize("name", CONFIGS)
def test_summaries_from_the_customer_day_table_equal_the_pandas_summaries(logs, name):
    cfg, td, t = logs[name]
    s = cfg.settings
    obs = pd.Timestamp(t["days"].attrs["observation_end"])
    opts = load_options(cfg, aggregates_log.CustomerDays)
    opts["observation_end"] = obs
    with aggregates_log.CustomerDays(cfg.data["path"], **opts) as days:
        cal, full = days.summaries(s.calibration_end, obs, s.time_unit)
    _assert_summaries_equal(cal, summary.calibration_holdout(td.transactions, s.calibration_end, obs, s.time_unit),
                            f"{name} calibration")
    _assert_summaries_equal(full, summary.rfm_summary(td.transactions, obs, s.time_unit), f"{name} full")
    assert cal["x_star"].sum() > 0 and full["x"].sum() > cal["x"].sum()


@pytest.mark.parametrize("dup", ["keep", "drop"])
@pytest.mark.parametrize("unit", ["D", "W"])
def test_summaries_from_the_customer_day_table_under_the_validation_policies(tmp_path, dup, unit):
    """Returns set aside, a padded id (" b" is b), duplicates kept or dropped, a customer who only
    returned (e) and one who arrives after the calibration end: the pandas engine's summaries."""
    from helpers.data import load_transactions

    path = tmp_path / "log.csv"
    path.write_text("customer_id,date,amount\n" + "".join(",".join(r) + "\n" for r in RETURN_ROWS))
    kw = dict(date_format="%Y-%m-%d", negative_amounts="returns", duplicates=dup)
    cal_end, obs = "2020-01-31", pd.Timestamp("2020-03-15")
    tx = load_transactions(path, observation_end=obs, **kw).transactions
    with aggregates_log.CustomerDays(path, observation_end=obs, **kw) as days:
        assert days.trimmed
        cal, full = days.summaries(cal_end, obs, unit)
    ref_cal = summary.calibration_holdout(tx, cal_end, obs, unit)
    _assert_summaries_equal(cal, ref_cal, "calibration")
    _assert_summaries_equal(full, summary.rfm_summary(tx, obs, unit), "full")
    assert list(full.index) == ["a", "b", "c", "d"] and list(cal.index) == ["a", "b", "d"]   # c arrives in February
    assert full.loc["a", "total_spend"] == (17.0 if dup == "keep" else 12.0)
