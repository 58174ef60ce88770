"""The Spark engine gives exactly the default (pandas) engine's summaries.

Runs Spark in local mode (one JVM for the module).  pyspark is imported at the
top on purpose: without it this module fails to import and the run fails --
the Spark engine is never silently skipped.
"""

import numpy as np
import pandas as pd
import pytest
import pyspark  # noqa: F401  a missing pyspark must fail the run, not skip it

from helpers.data import DataValidationError
from helpers.summary import calibration_holdout, rfm_summary
from helpers.summary_spark import (
    calibration_holdout_spark,
    rfm_summary_spark,
    strftime_to_spark,
)

MONEY = ["m_x", "total_spend", "m_x_star", "holdout_spend"]


def assert_same_summary(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Same index, columns and dtypes; counts and times exact; money to 1e-9 relative."""
    pd.testing.assert_index_equal(got.index, ref.index, exact=True)
    assert got.index.name == "customer_id"
    assert got.index.is_monotonic_increasing
    assert list(got.columns) == list(ref.columns)
    pd.testing.assert_series_equal(got.dtypes, ref.dtypes)
    for col in ref.columns:
        if col in MONEY:
            np.testing.assert_allclose(got[col].to_numpy(), ref[col].to_numpy(), rtol=1e-9, atol=0, err_msg=col)
        else:
            np.testing.assert_array_equal(got[col].to_numpy(), ref[col].to_numpy(), err_msg=col)


def test_rfm_equals_pandas_engine_on_cdnow_master(spark, cdnow_master, root):
    """CSV read by Spark as text: 5-digit ids keep their leading zeros, dates parse with %Y%m%d."""
    ref = rfm_summary(cdnow_master.transactions, observation_end="1998-06-30", time_unit="W")
    got = rfm_summary_spark(root / "data" / "cdnow_master.csv", observation_end="1998-06-30", time_unit="W",
                            date_format="%Y%m%d", spark=spark)
    assert len(got) == 23_570 and got.index[0] == "00001"
    assert_same_summary(got, ref)
    assert (got.loc[got["x"] == 0, "m_x"] == 0).all()


@pytest.fixture(scope="module")
def sample_sources(spark, cdnow_sample, tmp_path_factory, root):
    """The CDNOW sample as CSV, as a pandas frame, as pandas-written and as Spark-written Parquet."""
    tx = cdnow_sample.transactions
    pandas_dir = tmp_path_factory.mktemp("pandas_parquet")
    half = len(tx) // 2  # two parts, nanosecond timestamps (pandas' default)
    tx.iloc[:half].to_parquet(pandas_dir / "part-0.parquet", index=False)
    tx.iloc[half:].to_parquet(pandas_dir / "part-1.parquet", index=False)
    spark_dir = tmp_path_factory.mktemp("spark_parquet") / "transactions"
    # naive datetimes become instants at UTC (the session time zone): a data lake's TIMESTAMP column
    spark.createDataFrame(tx).repartition(3).write.parquet(str(spark_dir))
    return {
        "csv": root / "data" / "cdnow_sample.csv",
        "pandas": tx,
        "parquet_pandas": pandas_dir,
        "parquet_spark": spark_dir,
    }


@pytest.mark.parametrize("kind", ["csv", "pandas", "parquet_pandas", "parquet_spark"])
def test_calibration_holdout_equals_pandas_engine(spark, sample_sources, paper_split, kind):
    got = calibration_holdout_spark(sample_sources[kind], "1997-09-30", "1998-06-30", time_unit="W",
                                    date_format="%Y%m%d" if kind == "csv" else None, spark=spark)
    assert len(got) == 2_357
    assert got["x"].sum() == 2_457  # Fader, Hardie & Lee (2005)
    assert got["x_star"].sum() == 1_882
    assert (got["t_star"] == 39).all()
    assert_same_summary(got, paper_split)


def test_days_do_not_shift_with_the_session_time_zone(spark, sample_sources, paper_split):
    """Midnight UTC is the previous evening in Los Angeles: no day may move."""
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    try:
        for kind in ["csv", "parquet_spark"]:
            got = calibration_holdout_spark(sample_sources[kind], "1997-09-30", "1998-06-30",
                                            date_format="%Y%m%d" if kind == "csv" else None, spark=spark)
            assert_same_summary(got, paper_split)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_calibration_end_outside_the_data_range(spark, sample_sources):
    tx = sample_sources["pandas"]
    for cal_end in ["1996-12-31", "1998-06-30"]:
        with pytest.raises(DataValidationError, match="calibration end") as pandas_err:
            calibration_holdout(tx, cal_end, "1998-06-30")
        with pytest.raises(DataValidationError, match="calibration end") as spark_err:
            calibration_holdout_spark(sample_sources["csv"], cal_end, "1998-06-30", date_format="%Y%m%d",
                                      spark=spark)
        assert str(spark_err.value) == str(pandas_err.value)


def test_same_day_purchases_count_once_and_single_buyers_have_zero_spend(spark):
    tx = pd.DataFrame({
        "customer_id": ["A", "A", "A", "A", "B", "C", "C"],
        "date": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-08", "2020-01-08 15:00", "2020-01-02",
                                "1969-12-31 23:00", "2020-01-01 23:59:59"], format="ISO8601"),
        "amount": [1.0, 2.0, 4.0, 6.0, 5.0, 1.0, 2.0],
    })
    # a purchase before 1970 (days before the epoch floor correctly): widen the plausible window
    got = rfm_summary_spark(tx, observation_end="2020-01-15", time_unit="W", spark=spark, min_date="1969-01-01")
    assert_same_summary(got, rfm_summary(tx, observation_end="2020-01-15", time_unit="W"))
    assert got.loc["A", "x"] == 1 and got.loc["A", "m_x"] == 10.0 and got.loc["A", "total_spend"] == 13.0
    assert got.loc["B", "x"] == 0 and got.loc["B", "m_x"] == 0.0 and got.loc["B", "T"] == 13 / 7
    # a log without amounts: frequency columns only
    got = rfm_summary_spark(tx.drop(columns="amount"), observation_end="2020-01-15", time_unit="D",
                            amount=None, spark=spark, min_date="1969-01-01")
    assert_same_summary(got, rfm_summary(tx.drop(columns="amount"), observation_end="2020-01-15", time_unit="D"))


def test_invalid_rows_raise_like_the_loader(spark):
    tx = pd.DataFrame({"customer_id": ["A", "B"], "date": ["20200101", "2020-13-45"], "amount": ["1.5", "2"]})
    with pytest.raises(DataValidationError, match="date must parse") as err:
        rfm_summary_spark(tx, date_format="%Y%m%d", spark=spark)
    assert err.value.n_rows == 1 and err.value.examples["date"].tolist() == ["2020-13-45"]


def test_strftime_translation():
    assert strftime_to_spark("%Y%m%d") == "yyyyMMdd"
    assert strftime_to_spark("%d/%m/%Y %H:%M") == "d/M/yyyy H:m"
    assert strftime_to_spark("%Y-%m-%dT%H:%M:%S") == "yyyy-M-d'T'H:m:s"
    with pytest.raises(ValueError, match="two-digit year"):
        strftime_to_spark("%d.%m.%y")


# ---------------------------------------------------------------------------
# hardening (issue 16): the rules of helpers.data, as the pandas loader applies them
# ---------------------------------------------------------------------------

GOOD_ROWS = [("1", "2020-01-01", "10"), ("2", "2020-01-02", "5"), ("2", "2020-01-05", "0"), ("3", "2020-01-03", "7.5"),
             ("3", "2020-02-01", "3"), ("4", "2020-01-04", "2")]


@pytest.mark.parametrize("index,column,value,check", [
    (0, 0, "NA", "null_id"), (1, 0, " none ", "null_id"), (2, 1, "null", "null_date"), (3, 1, "  ", "null_date"),
    (4, 2, "N/A", "nan_amount"), (5, 2, "1e308", "large_amount"), (1, 1, "1800-01-01", "implausible_date"),
    (2, 1, "2999-01-01", "implausible_date"), (3, 2, "1e400", "inf_amount"), (0, 2, "1_000", "non_numeric"),
])
def test_hardening_rules_raise_like_the_loader(spark, tmp_path, index, column, value, check):
    from helpers.data import load_transactions
    from helpers.summary_spark import validate_spark

    rows = [list(r) for r in GOOD_ROWS]
    rows[index][column] = value
    path = tmp_path / "bad.csv"
    path.write_text("customer_id,date,amount\n" + "".join(",".join(r) + "\n" for r in rows))
    with pytest.raises(DataValidationError) as ref:
        load_transactions(path, date_format="%Y-%m-%d")
    assert ref.value.check == check
    for call in (lambda: validate_spark(path, date_format="%Y-%m-%d", spark=spark),
                 lambda: rfm_summary_spark(path, date_format="%Y-%m-%d", spark=spark)):
        with pytest.raises(DataValidationError) as ours:
            call()
        assert ours.value.check == check and ours.value.n_rows == 1
        assert str(ours.value).splitlines()[0] == str(ref.value).splitlines()[0]


def test_quality_table_and_policies_equal_the_loader(spark, tmp_path):
    from helpers.data import check_modelable, load_transactions
    from helpers.summary_spark import validate_spark

    rows = GOOD_ROWS + [("3", "2020-01-03", "7.5"), ("5", "2020-03-01", "-2"), ("6", "2020-04-01", "4"),
                        ("7", "1800-01-01", "2"), ("8", "2999-01-01", "1")]
    path = tmp_path / "log.csv"
    path.write_text("customer_id,date,amount\n" + "".join(",".join(r) + "\n" for r in rows))
    for dup in ("keep", "drop"):
        kw = dict(date_format="%Y-%m-%d", observation_end="2020-03-15", negative_amounts="returns", duplicates=dup,
                  implausible_dates="exclude")
        ref = load_transactions(path, **kw)
        q = validate_spark(path, spark=spark, **kw)
        pd.testing.assert_frame_equal(q, ref.quality)
        assert q.attrs["counts"] == ref.counts
        assert ref.counts["implausible_dates"] == 2
        got = rfm_summary_spark(path, observation_end="2020-03-15", time_unit="D", spark=spark,
                                **{k: v for k, v in kw.items() if k != "observation_end"})
        assert_same_summary(got, rfm_summary(ref.transactions, observation_end="2020-03-15", time_unit="D"))
    with pytest.raises(DataValidationError, match="too small for the models"):
        check_modelable(q.attrs["counts"])                       # 5 customers < 10


def test_encoding_and_binary_files_on_spark(spark, tmp_path):
    from helpers.data import load_transactions

    latin = tmp_path / "latin.csv"
    latin.write_bytes("customer_id,date,amount\nJosé,2020-01-01,1\nB,2020-01-02,2\nJosé,2020-01-09,3\n"
                      .encode("latin-1"))
    with pytest.raises(DataValidationError) as ref:
        load_transactions(latin)
    with pytest.raises(DataValidationError) as ours:
        rfm_summary_spark(latin, spark=spark)
    assert ours.value.check == "file_encoding" and str(ours.value) == str(ref.value)
    got = rfm_summary_spark(latin, spark=spark, encoding="latin-1", time_unit="D")
    assert_same_summary(got, rfm_summary(load_transactions(latin, encoding="latin-1").transactions, time_unit="D"))
    assert "José" in got.index
    binary = tmp_path / "log.csv"
    pd.DataFrame({"customer_id": ["a"], "date": ["2020-01-01"], "amount": [1.0]}).to_parquet(binary)
    with pytest.raises(DataValidationError, match="is binary"):
        rfm_summary_spark(binary, spark=spark)
