"""The DuckDB engine gives the pandas engine's summaries and validation, out of core."""

import numpy as np
import pandas as pd
import pytest

from helpers.data import DataValidationError, load_transactions
from helpers.simulate import write_parquet_chunks
from helpers.summary import calibration_holdout, rfm_summary
from helpers.summary_duckdb import calibration_holdout_duckdb, rfm_summary_duckdb, validate_duckdb

EXACT = ["x", "t_x", "T", "first_purchase", "x_star", "t_star"]


def assert_same(ours: pd.DataFrame, ref: pd.DataFrame):
    """Same index (name, dtype, order), columns, dtypes; counts and times exact, spend to 1e-9."""
    assert ours.index.name == ref.index.name == "customer_id"
    assert ours.index.dtype == ref.index.dtype
    pd.testing.assert_index_equal(ours.index, ref.index)
    assert list(ours.columns) == list(ref.columns)
    assert ours.dtypes.to_dict() == ref.dtypes.to_dict()
    for c in ref.columns:
        if c in EXACT:
            np.testing.assert_array_equal(ours[c].to_numpy(), ref[c].to_numpy(), err_msg=c)
        else:
            np.testing.assert_allclose(ours[c].to_numpy(), ref[c].to_numpy(), rtol=1e-9, atol=0, err_msg=c)


@pytest.mark.parametrize("method", ["lists", "daily"])
@pytest.mark.parametrize("time_unit", ["D", "W"])
def test_rfm_equals_pandas_engine_on_cdnow_master(root, cdnow_master, time_unit, method):
    ref = rfm_summary(cdnow_master.transactions, observation_end="1998-06-30", time_unit=time_unit)
    ours = rfm_summary_duckdb(root / "data" / "cdnow_master.csv", observation_end="1998-06-30",
                              time_unit=time_unit, date_format="%Y%m%d", method=method)
    assert len(ours) == 23_570
    assert_same(ours, ref)


def test_rfm_default_observation_end_is_last_purchase_day(root, cdnow_master):
    ref = rfm_summary(cdnow_master.transactions, time_unit="M")
    ours = rfm_summary_duckdb(root / "data" / "cdnow_master.csv", time_unit="M", date_format="%Y%m%d")
    assert_same(ours, ref)


def test_calibration_holdout_on_cdnow_sample(root, paper_split):
    ours = calibration_holdout_duckdb(root / "data" / "cdnow_sample.csv", "1997-09-30", "1998-06-30",
                                      time_unit="W", date_format="%Y%m%d")
    assert len(ours) == 2_357
    assert ours["x"].sum() == 2_457
    assert ours["x_star"].sum() == 1_882
    assert (ours["t_star"] == 39).all()
    assert_same(ours, paper_split)


def test_calibration_end_outside_the_data_is_an_error(root):
    with pytest.raises(DataValidationError, match="calibration end"):
        calibration_holdout_duckdb(root / "data" / "cdnow_sample.csv", "1999-01-01", "1998-06-30",
                                   date_format="%Y%m%d")


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    """A simulated log in three Parquet files, sub-day timestamps, some same-day purchases."""
    out = tmp_path_factory.mktemp("log")
    write_parquet_chunks(out, 3_000, chunk_customers=1_000, seed=7, r=2.0, alpha=3.0, a=0.5, b=4.0,
                         p=6.0, q=4.0, gamma=20.0, observation_days=200, acquisition_days=60)
    return out


def test_parquet_directory_glob_and_dataframe(parquet_dir):
    assert len(list(parquet_dir.glob("*.parquet"))) == 3
    td = load_transactions(parquet_dir)
    assert td.transactions["date"].dt.hour.nunique() > 1        # timestamps within the day
    for end in (None, "2020-06-01"):
        ref = rfm_summary(td.transactions, observation_end=end, time_unit="W")
        assert (ref["x"] > 0).mean() > 0.5
        for source in (parquet_dir, str(parquet_dir / "part-*.parquet"), td.transactions):
            for method in ("lists", "daily"):
                assert_same(rfm_summary_duckdb(source, observation_end=end, method=method), ref)
    ref = calibration_holdout(td.transactions, "2020-04-01", "2020-07-01", time_unit="D")
    assert_same(calibration_holdout_duckdb(parquet_dir, "2020-04-01", "2020-07-01", time_unit="D"), ref)


def test_log_without_amounts(parquet_dir):
    td = load_transactions(parquet_dir, amount=None)
    ref = rfm_summary(td.transactions, time_unit="W")
    ours = rfm_summary_duckdb(parquet_dir, time_unit="W", amount=None)
    assert list(ours.columns) == ["x", "t_x", "T", "first_purchase"]
    assert_same(ours, ref)
    ref = calibration_holdout(td.transactions, "2020-04-01", time_unit="W")
    assert_same(calibration_holdout_duckdb(parquet_dir, "2020-04-01", time_unit="W", amount=None), ref)


def test_long_customer_histories_and_custom_columns():
    """Lists longer than the pairwise limit, same-day repeats, ids with spaces, other column names."""
    rng = np.random.default_rng(3)
    n = 20_000
    ids = rng.choice([" a", "b ", "c", "d", "e1", "e2"], size=n, p=[0.5, 0.3, 0.1, 0.05, 0.03, 0.02])
    days = rng.integers(0, 400, size=n)
    df = pd.DataFrame({"cust": ids, "when": pd.Timestamp("2021-01-01") + pd.to_timedelta(days, unit="D"),
                       "value": rng.gamma(2.0, 10.0, size=n)})
    td = load_transactions(df, customer_id="cust", date="when", amount="value")
    ref = rfm_summary(td.transactions, time_unit="D")
    for method in ("lists", "daily"):
        ours = rfm_summary_duckdb(df, customer_id="cust", date="when", amount="value", time_unit="D",
                                  method=method)
        assert_same(ours, ref)
    assert list(ref.index) == ["a", "b", "c", "d", "e1", "e2"]


def _bad_logs():
    good = {"customer_id": ["1", "2", "2", "3", "3", "3", "4"],
            "date": ["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-03", "2020-01-03", "2020-02-01",
                     "2020-01-04"],
            "amount": ["10", "5", "0", "7.5", "7.5", "3", "2"]}
    return good


@pytest.mark.parametrize("column,index,value,match", [
    ("customer_id", 2, None, "customer id must not be null"),
    ("customer_id", 3, "  ", "customer id must not be null"),
    ("date", 1, None, "date must not be null"),
    ("date", 4, "2020-13-45", "date must parse"),
    ("amount", 5, None, "amount must not be missing"),
    ("amount", 0, "ten", "amount must be numeric"),
    ("amount", 6, "inf", "amount must be finite"),
    ("amount", 3, "-4", "amount must not be negative"),
])
def test_fatal_rules_raise_like_load_transactions(tmp_path, column, index, value, match):
    log = pd.DataFrame(_bad_logs())
    log.loc[index, column] = value
    path = tmp_path / "bad.csv"
    log.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=match) as ref:
        load_transactions(path, date_format="%Y-%m-%d")
    for call in (
        lambda: validate_duckdb(path, date_format="%Y-%m-%d"),
        lambda: rfm_summary_duckdb(path, date_format="%Y-%m-%d"),
        lambda: calibration_holdout_duckdb(path, "2020-01-03", date_format="%Y-%m-%d"),
    ):
        with pytest.raises(DataValidationError, match=match) as ours:
            call()
        assert ours.value.n_rows == ref.value.n_rows == 1
        assert ours.value.column == ref.value.column
        assert list(ours.value.examples.index) == list(ref.value.examples.index) == [index]


def test_examples_are_at_most_five_rows_with_row_numbers_over_files(tmp_path):
    log = pd.DataFrame({"customer_id": [f"c{i}" for i in range(20)],
                        "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(20), unit="D"),
                        "amount": np.r_[np.ones(12), -np.ones(8)]})
    log.iloc[:10].to_parquet(tmp_path / "a.parquet")
    log.iloc[10:].to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataValidationError, match="must not be negative") as ref:
        load_transactions(tmp_path)
    with pytest.raises(DataValidationError, match="must not be negative") as ours:
        validate_duckdb(tmp_path)
    assert ours.value.n_rows == ref.value.n_rows == 8
    assert list(ours.value.examples.index) == list(ref.value.examples.index) == [12, 13, 14, 15, 16]


def test_quality_table_equals_load_transactions(tmp_path):
    log = pd.DataFrame(_bad_logs())
    log.loc[len(log)] = ["5", "2020-03-01", "-2"]            # a return
    log.loc[len(log)] = ["6", "2020-04-01", "4"]             # after the observation end
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    for dup in ("keep", "drop"):
        kw = dict(date_format="%Y-%m-%d", observation_end="2020-03-15", negative_amounts="returns",
                  duplicates=dup)
        ref = load_transactions(path, **kw)
        q = validate_duckdb(path, **kw)
        pd.testing.assert_frame_equal(q, ref.quality)
        assert q.attrs["counts"] == ref.counts
        ours = rfm_summary_duckdb(path, observation_end="2020-03-15", time_unit="D", date_format="%Y-%m-%d",
                                  negative_amounts="returns", duplicates=dup)
        assert_same(ours, rfm_summary(ref.transactions, observation_end="2020-03-15", time_unit="D"))
    with pytest.raises(DataValidationError, match="duplicate rows are not allowed") as e:
        validate_duckdb(path, date_format="%Y-%m-%d", duplicates="error", negative_amounts="returns")
    assert e.value.n_rows == 1 and list(e.value.examples.index) == [3, 4]
    with pytest.raises(DataValidationError, match="after the observation end"):
        validate_duckdb(path, date_format="%Y-%m-%d", observation_end="2020-03-15",
                        negative_amounts="returns", after_observation_end="error")


def test_missing_column_and_empty_log(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"customer_id": ["1"], "when": ["2020-01-01"]}).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="required column missing"):
        rfm_summary_duckdb(path)
    empty = tmp_path / "e.csv"
    empty.write_text("customer_id,date,amount\n")
    with pytest.raises(DataValidationError, match="empty"):
        validate_duckdb(empty)
    with pytest.raises(DataValidationError, match="empty"):
        rfm_summary_duckdb(empty)


def _several_rows_a_day():
    """Customers with several rows on their first day, on a later day only, or on their only day."""
    rows = [("a", "2021-01-01 09:00", 10.0), ("a", "2021-01-01 12:00", 20.0), ("a", "2021-01-01 18:00", 30.0),
            ("a", "2021-01-05", 7.0), ("a", "2021-01-09", 1.0), ("a", "2021-01-09", 2.0),
            ("b", "2021-01-02", 5.0), ("b", "2021-01-03", 4.0), ("b", "2021-01-03", 6.0),
            ("c", "2021-01-04", 3.0), ("c", "2021-01-04", 3.0),
            ("d", "2021-01-02", 8.0), ("d", "2021-01-02", 1.0), ("d", "2021-01-20", 2.5)]
    return pd.DataFrame({"customer_id": [r[0] for r in rows], "date": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
                         "amount": [r[2] for r in rows]})


def test_repeat_spend_with_several_rows_on_the_first_day(tmp_path):
    """m_x leaves out the whole first day, also when it has several rows (summed by a second query)."""
    log = _several_rows_a_day()
    log.iloc[:7].to_parquet(tmp_path / "a.parquet")
    log.iloc[7:].to_parquet(tmp_path / "b.parquet")
    td = load_transactions(log)
    ref = rfm_summary(td.transactions, time_unit="D")
    np.testing.assert_allclose(ref["m_x"], [5.0, 10.0, 0.0, 2.5])       # (7 + 1 + 2) / 2, (4 + 6) / 1, -, 2.5
    for source in (log, tmp_path):
        for method in ("lists", "daily"):
            assert_same(rfm_summary_duckdb(source, time_unit="D", method=method), ref)
    for end in ("2021-01-05", "2021-01-02"):
        ref = calibration_holdout(td.transactions, end, time_unit="D")
        assert_same(calibration_holdout_duckdb(tmp_path, end, time_unit="D"), ref)


def test_several_files_are_one_scan_when_their_schemas_agree(tmp_path):
    """Files with one schema are read by one scan (a UNION of per-file scans doubles the peak
    memory); files that differ are still combined by column name, as load_transactions does."""
    from helpers.summary_duckdb import _Source, connect

    log = _several_rows_a_day()
    aware = log.assign(date=log["date"].dt.tz_localize("Europe/Berlin"))
    dirs = {name: tmp_path / name for name in ("same", "mixed", "csv")}
    for d in dirs.values():
        d.mkdir()
    aware.iloc[:5].to_parquet(dirs["same"] / "1.parquet")
    aware.iloc[5:].to_parquet(dirs["same"] / "2.parquet")
    aware.iloc[:5].to_parquet(dirs["mixed"] / "1.parquet")
    aware.iloc[5:][["amount", "date", "customer_id"]].to_parquet(dirs["mixed"] / "2.parquet")  # other order
    text = log.assign(date=log["date"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    text.iloc[:5].to_csv(dirs["csv"] / "1.csv", index=False)
    text.iloc[5:][["amount", "customer_id", "date"]].to_csv(dirs["csv"] / "2.csv", index=False)
    con = connect()
    try:
        for name, one_scan in (("same", True), ("mixed", False), ("csv", True)):
            d = dirs[name]
            assert ("UNION" not in _Source(con, d, "customer_id", "date", "amount").sql) == one_scan, name
            kw = {"date_format": "%Y-%m-%d %H:%M:%S"} if name == "csv" else {}
            ref = rfm_summary(load_transactions(d, **kw).transactions, time_unit="D")
            assert_same(rfm_summary_duckdb(d, time_unit="D", con=con, **kw), ref)
        con.execute("SELECT 1").fetchall()          # a connection passed in is left open
    finally:
        con.close()



@pytest.mark.parametrize("key", [None, "hash(customer_id, date, amount) % 5", "1"])
def test_duplicate_count_is_exact_also_when_hashes_collide(key):
    """The hash only picks the rows to compare: with a key that collides for most distinct rows
    (or for all: "1"), the count is still rows minus distinct rows."""
    from helpers.summary_duckdb import _duplicates_sql, connect

    rng = np.random.default_rng(7)
    n = 2_000
    log = pd.DataFrame({"customer_id": rng.integers(0, 300, n).astype(str),
                        "date": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 40, n), unit="D"),
                        "amount": rng.integers(1, 4, n).astype(float)})
    exact = len(log) - len(log.drop_duplicates())
    assert exact > 50                              # the log has duplicates, and distinct rows per hash
    con = connect()
    try:
        con.register("log", log)
        got = con.execute(_duplicates_sql("log", "customer_id, date, amount", key=key)).fetchone()[0]
        none = con.execute(_duplicates_sql("(SELECT DISTINCT * FROM log)", "customer_id, date, amount",
                                           key=key)).fetchone()[0]
    finally:
        con.close()
    assert (got, none) == (exact, 0)


def test_validation_of_several_files_counts_duplicates_across_them_in_one_scan(tmp_path):
    """Validation numbers rows per file for its examples, but counts (duplicates too) on one scan
    of all files; a row repeated in another file is a duplicate, as in load_transactions."""
    from helpers.summary_duckdb import _Source, connect

    log = _several_rows_a_day()
    log.iloc[:8].to_parquet(tmp_path / "1.parquet", index=False)
    pd.concat([log.iloc[8:], log.iloc[[0, 6]]]).to_parquet(tmp_path / "2.parquet", index=False)  # 2 rows again
    con = connect()
    try:
        src = _Source(con, tmp_path, "customer_id", "date", "amount", numbered=True)
        assert "UNION" in src.sql and "UNION" not in src.plain and "__row" not in src.plain
    finally:
        con.close()
    for dup in ("keep", "drop"):
        ref = load_transactions(tmp_path, duplicates=dup)
        q = validate_duckdb(tmp_path, duplicates=dup)
        assert q.attrs["counts"] == ref.counts and ref.counts["duplicate_rows"] == 3   # c's day twice, + 2
        pd.testing.assert_frame_equal(q, ref.quality)
    with pytest.raises(DataValidationError, match="duplicate rows are not allowed") as e:
        validate_duckdb(tmp_path, duplicates="error")
    assert list(e.value.examples.index) == [0, 6, 9, 10, 14]

# ---------------------------------------------------------------------------
# progress: the queries polled from a worker thread give the same results
# ---------------------------------------------------------------------------

def test_summaries_with_progress_equal_summaries_without(root, parquet_dir, shown_progress):
    csv = root / "data" / "cdnow_sample.csv"
    frame = pd.concat([pd.read_parquet(f) for f in sorted(parquet_dir.glob("*.parquet"))], ignore_index=True)
    for progress in (None, True):
        for source in (parquet_dir, frame):                     # files, and a DataFrame scanned from a thread
            for method in ("lists", "daily"):
                kw = dict(observation_end="2020-06-01", method=method)
                pd.testing.assert_frame_equal(rfm_summary_duckdb(source, **kw, progress=progress),
                                              rfm_summary_duckdb(source, **kw, progress=False))
        pd.testing.assert_frame_equal(
            calibration_holdout_duckdb(csv, "1997-09-30", "1998-06-30", date_format="%Y%m%d", progress=progress),
            calibration_holdout_duckdb(csv, "1997-09-30", "1998-06-30", date_format="%Y%m%d", progress=False))
        kw = dict(date_format="%Y%m%d", duplicates="drop", observation_end="1998-03-31")
        on, off = validate_duckdb(csv, **kw, progress=progress), validate_duckdb(csv, **kw, progress=False)
        pd.testing.assert_frame_equal(on, off)
        assert on.attrs == off.attrs
    err = shown_progress()
    for desc in ("log summary (DuckDB)", "calibration/holdout summary (DuckDB)", "log validation (DuckDB)"):
        assert f"{desc}:" in err


def test_validation_errors_with_progress_are_those_without(tmp_path, shown_progress):
    log = pd.DataFrame(_bad_logs())
    log.loc[5, "amount"] = None
    log.loc[len(log)] = ["5", "2020-03-01", "-2"]
    path = tmp_path / "bad.csv"
    log.to_csv(path, index=False)
    for call in (validate_duckdb, rfm_summary_duckdb,
                 lambda p, **kw: calibration_holdout_duckdb(p, "2020-01-03", **kw)):
        errors = []
        for progress in (False, True):
            with pytest.raises(DataValidationError) as e:
                call(path, date_format="%Y-%m-%d", progress=progress)
            errors.append(e.value)
        off, on = errors
        assert str(on) == str(off) and on.n_rows == off.n_rows == 1 and on.column == off.column == "amount"
        pd.testing.assert_frame_equal(on.examples, off.examples)
    assert "(DuckDB):" in shown_progress()


# ---------------------------------------------------------------------------
# hardening (issue 16): the rules of helpers.data, as the pandas loader applies them
# ---------------------------------------------------------------------------

HARD = [
    ("id token", "customer_id", 2, "NA", "null_id"),
    ("id token spaced", "customer_id", 0, " null ", "null_id"),
    ("date token", "date", 1, "N/A", "null_date"),
    ("date whitespace", "date", 4, "   ", "null_date"),
    ("amount token", "amount", 5, "None", "nan_amount"),
    ("amount huge", "amount", 6, "1e308", "large_amount"),
    ("amount huge negative", "amount", 6, "-5e12", "large_amount"),
    ("date old", "date", 3, "1800-01-01", "implausible_date"),
    ("date future", "date", 3, "2999-01-01", "implausible_date"),
    ("amount overflow", "amount", 6, "1e400", "inf_amount"),
    ("amount underscore", "amount", 0, "1_000", "non_numeric"),
]


@pytest.mark.parametrize("name,column,index,value,check", HARD, ids=[h[0] for h in HARD])
def test_hardening_rules_raise_like_load_transactions(tmp_path, name, column, index, value, check):
    log = pd.DataFrame(_bad_logs())
    log.loc[index, column] = value
    path = tmp_path / "bad.csv"
    log.to_csv(path, index=False)
    with pytest.raises(DataValidationError) as ref:
        load_transactions(path, date_format="%Y-%m-%d")
    assert ref.value.check == check
    for call in (
        lambda: validate_duckdb(path, date_format="%Y-%m-%d"),
        lambda: rfm_summary_duckdb(path, date_format="%Y-%m-%d"),
        lambda: rfm_summary_duckdb(path, date_format="%Y-%m-%d", method="daily"),
        lambda: calibration_holdout_duckdb(path, "2020-01-03", date_format="%Y-%m-%d"),
    ):
        with pytest.raises(DataValidationError) as ours:
            call()
        assert ours.value.check == check
        assert str(ours.value) == str(ref.value)


def test_bad_rows_after_the_observation_end_are_still_found(tmp_path):
    """A broken row the observation end would exclude still fails, in the summaries too."""
    log = pd.DataFrame(_bad_logs())
    log.loc[len(log)] = ["9", "2020-05-01", "inf"]
    path = tmp_path / "late.csv"
    log.to_csv(path, index=False)
    kw = dict(date_format="%Y-%m-%d", observation_end="2020-03-01")
    with pytest.raises(DataValidationError, match="finite"):
        load_transactions(path, **kw)
    with pytest.raises(DataValidationError, match="finite"):
        rfm_summary_duckdb(path, **kw)


def test_implausible_dates_excluded_and_counted_like_pandas(tmp_path):
    log = pd.DataFrame(_bad_logs())
    log.loc[len(log)] = ["7", "1800-01-01", "2"]
    log.loc[len(log)] = ["2", "2999-01-01", "3"]
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    kw = dict(date_format="%Y-%m-%d", implausible_dates="exclude", observation_end="2020-03-01")
    ref = load_transactions(path, **kw)
    q = validate_duckdb(path, **kw)
    pd.testing.assert_frame_equal(q, ref.quality)
    assert q.attrs["counts"] == ref.counts and ref.counts["implausible_dates"] == 2
    assert_same(rfm_summary_duckdb(path, time_unit="D", **kw),
                rfm_summary(ref.transactions, observation_end="2020-03-01", time_unit="D"))
    assert_same(calibration_holdout_duckdb(path, "2020-01-03", "2020-03-01", time_unit="D",
                                           date_format="%Y-%m-%d", implausible_dates="exclude"),
                calibration_holdout(ref.transactions, "2020-01-03", "2020-03-01", time_unit="D"))


def test_encoding_and_binary_files(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("customer_id,date,amount\nJosé,2020-01-01,1\nB,2020-01-02,2\n".encode("latin-1"))
    with pytest.raises(DataValidationError, match="not text in encoding 'utf-8'") as ref:
        load_transactions(latin)
    for call in (lambda: validate_duckdb(latin), lambda: rfm_summary_duckdb(latin)):
        with pytest.raises(DataValidationError) as ours:
            call()
        assert str(ours.value) == str(ref.value)
    assert_same(rfm_summary_duckdb(latin, encoding="latin-1"),
                rfm_summary(load_transactions(latin, encoding="latin-1").transactions))
    binary = tmp_path / "log.csv"
    pd.DataFrame({"customer_id": ["a"], "date": ["2020-01-01"], "amount": [1.0]}).to_parquet(binary)
    with pytest.raises(DataValidationError, match="is binary"):
        validate_duckdb(binary)


def test_extra_field_in_a_line(tmp_path):
    for at in ("first", "late"):
        rows = ["A,2020-01-01,1"] * 5000 + ["B,2020-01-02,2"]
        rows[0 if at == "first" else -1] += ",9"
        path = tmp_path / f"{at}.csv"
        path.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n")
        for call in (lambda: load_transactions(path), lambda: validate_duckdb(path), lambda: rfm_summary_duckdb(path)):
            with pytest.raises(DataValidationError, match="not a well-formed CSV file") as e:
                call()
            assert e.value.check == "file_csv"


def test_modelable_facts_equal_the_pandas_engine(root, cdnow_sample):
    q = validate_duckdb(root / "data" / "cdnow_sample.csv", date_format="%Y%m%d", observation_end="1998-06-30")
    for key in ("customers", "repeat_buyers", "purchase_dates"):
        assert q.attrs["counts"][key] == cdnow_sample.counts[key]


@pytest.mark.parametrize("text,check", [
    ("customer_id,date,amount\nA,2020-01-01,1\ncustomer_id,date,amount\nB,2020-01-02,2\n", "bad_date"),  # header again
    ("customer_id,date,amount\nA,2020-01-01,1\nB,2020-01", "bad_date"),                               # cut in a date
    ("customer_id,date,amount\nA,2020-01-01,1\nB,2020-01-02\n", "nan_amount"),                        # short line
    ('customer_id,date,amount\nA,2020-01-01,"1,000.50"\n', "non_numeric"),                            # thousands
    ("customer_id,date,amount,store\nA,2020-01-01,1,x\nB,2020-01-02,2,y\n", None),                    # extra column
    ("customer_id,date,amount\r\nA,2020-01-01,1\r\nB,2020-01-02,2\r\nA,2020-02-02,3\r\n", None),      # CRLF
    ("customer_id,date,amount\nJosé,2020-01-01,1\n北京,2020-01-02,2\nJosé,2020-02-02,3\n", None),     # non-ASCII
])
def test_what_worked_keeps_working_the_same_in_both_engines(tmp_path, text, check):
    path = tmp_path / "log.csv"
    path.write_bytes(text.encode())
    if check is None:
        assert_same(rfm_summary_duckdb(path), rfm_summary(load_transactions(path).transactions))
        return
    with pytest.raises(DataValidationError) as ref:
        load_transactions(path)
    with pytest.raises(DataValidationError) as ours:
        validate_duckdb(path)
    assert ref.value.check == ours.value.check == check and ref.value.n_rows == ours.value.n_rows == 1


def test_customer_counts_from_the_customer_day_table_equal_the_validation_s(tmp_path):
    """The pre-flight counts customers and repeat buyers on the stage's customer-day table
    (``customer_counts``); that gives the quality table of the validation's own per-customer query
    and of ``load_transactions``, on a log whose rows are excluded every way the policies allow."""
    from helpers.aggregates_log import CustomerDays

    log = pd.DataFrame([
        ["1", "2020-01-01", "10"], ["1", "2020-01-01", "5"],        # two rows, one day: no repeat
        ["2", "2020-01-02", "5"], [" 2", "2020-01-09", "3"],        # the same customer once stripped: repeat
        ["3", "2020-01-03", "7.5"], ["3", "2020-01-03", "7.5"],     # an exact duplicate
        ["4", "2020-02-01", "-2"],                                  # only a return: not a customer
        ["5", "2020-04-01", "4"],                                   # only after the observation end
        ["6", "1850-01-01", "3"], ["6", "2020-01-05", "1"],         # an implausible date, excluded
        ["7", "2020-01-06", "0"], ["7", "2020-01-08", "2"],         # a zero amount is a purchase
    ], columns=["customer_id", "date", "amount"])
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    for dup in ("keep", "drop"):
        kw = dict(date_format="%Y-%m-%d", observation_end="2020-03-15", negative_amounts="returns",
                  duplicates=dup, implausible_dates="exclude")
        ref = validate_duckdb(path, **kw)
        with CustomerDays(path, **kw) as days:
            q = validate_duckdb(path, customer_counts=days.customer_counts, **kw)
        pd.testing.assert_frame_equal(q, ref)
        assert q.attrs["counts"] == ref.attrs["counts"] == load_transactions(path, **kw).counts
        assert (q.attrs["counts"]["customers"], q.attrs["counts"]["repeat_buyers"]) == (5, 2)
