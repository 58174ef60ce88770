"""Every validation rule of helpers.data.load_transactions, on hand-made logs and on CDNOW."""

import numpy as np
import pandas as pd
import pytest

from helpers.data import DataValidationError, file_sha256, load_transactions


def write(tmp_path, text, name="log.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = "customer_id,date,amount\nA,2020-01-01,10\nA,2020-01-05,5\nB,2020-01-02,7.5\n"


def test_good_log_round_trip(tmp_path):
    d = load_transactions(write(tmp_path, GOOD))
    assert list(d.transactions.columns) == ["customer_id", "date", "amount"]
    assert d.transactions["amount"].tolist() == [10.0, 5.0, 7.5]
    assert d.n_customers == 2
    assert d.first_date == pd.Timestamp("2020-01-01")
    q = d.quality.set_index("check")
    assert q.loc["rows read", "rows"] == 3 and q.loc["rows used", "rows"] == 3
    assert q.loc["date range", "action"] == "2020-01-01 to 2020-01-05"
    assert d.sha256 == file_sha256(tmp_path / "log.csv")


def test_missing_column_names_the_column(tmp_path):
    p = write(tmp_path, "cust,date,amount\nA,2020-01-01,1\n")
    with pytest.raises(DataValidationError, match="column 'customer_id': required column missing") as e:
        load_transactions(p)
    assert "cust" in str(e.value)  # lists what is present


def test_custom_column_names_and_date_format(tmp_path):
    p = write(tmp_path, "cid;when;value\n".replace(";", ",") + "7,20200101,3\n7,20200301,4\n")
    d = load_transactions(p, customer_id="cid", date="when", amount="value", date_format="%Y%m%d")
    assert d.transactions["date"].tolist() == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-03-01")]
    assert d.transactions["customer_id"].iloc[0] == "7"


def test_log_without_amount(tmp_path):
    d = load_transactions(write(tmp_path, "customer_id,date\nA,2020-01-01\nA,2020-02-01\n"), amount=None)
    assert "amount" not in d.transactions.columns and not d.has_amount


def test_empty_log(tmp_path):
    with pytest.raises(DataValidationError, match="empty"):
        load_transactions(write(tmp_path, "customer_id,date,amount\n"))


def test_unparseable_dates_show_examples(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\nA,2020-01-01,1\nB,not a date,2\nC,2020-13-45,3\n")
    with pytest.raises(DataValidationError) as e:
        load_transactions(p, date_format="%Y-%m-%d")
    err = e.value
    assert err.column == "date" and err.n_rows == 2
    assert "not a date" in str(err) and "2020-13-45" in str(err)
    assert list(err.examples.index) == [1, 2]


def test_null_ids(tmp_path):
    with pytest.raises(DataValidationError, match="customer id must not be null") as e:
        load_transactions(write(tmp_path, "customer_id,date,amount\n,2020-01-01,1\nA,2020-01-02,1\n"))
    assert e.value.column == "customer_id" and e.value.n_rows == 1


def test_null_dates(tmp_path):
    with pytest.raises(DataValidationError, match="date must not be null") as e:
        load_transactions(write(tmp_path, "customer_id,date,amount\nA,,1\nA,2020-01-02,1\n"))
    assert e.value.column == "date"


def test_non_numeric_amounts(tmp_path):
    with pytest.raises(DataValidationError, match="amount must be numeric") as e:
        load_transactions(write(tmp_path, "customer_id,date,amount\nA,2020-01-01,ten\nA,2020-01-02,1\n"))
    assert e.value.n_rows == 1 and "ten" in str(e.value)


def test_nan_amounts(tmp_path):
    with pytest.raises(DataValidationError, match="amount must not be missing") as e:
        load_transactions(write(tmp_path, "customer_id,date,amount\nA,2020-01-01,\nA,2020-01-02,1\n"))
    assert e.value.column == "amount"


def test_nan_amounts_in_dataframe():
    df = pd.DataFrame({"customer_id": ["A", "B"], "date": pd.to_datetime(["2020-01-01"] * 2),
                       "amount": [1.0, np.nan]})
    with pytest.raises(DataValidationError, match="must not be missing"):
        load_transactions(df)


def test_negative_amounts_rejected_by_default(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\nA,2020-01-01,10\nA,2020-01-03,-4\n")
    with pytest.raises(DataValidationError, match="amount must not be negative") as e:
        load_transactions(p)
    assert "returns" in str(e.value)  # says how to accept them


def test_negative_amounts_as_returns(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\nA,2020-01-01,10\nA,2020-01-03,-4\nB,2020-01-02,3\n")
    d = load_transactions(p, negative_amounts="returns")
    assert len(d.transactions) == 2 and (d.transactions["amount"] > 0).all()
    assert d.returns["amount"].tolist() == [-4.0]
    assert d.counts["returns"] == 1
    assert d.quality.set_index("check").loc["negative amounts (returns)", "rows"] == 1


def test_zero_amounts_kept_and_counted(tmp_path):
    d = load_transactions(write(tmp_path, "customer_id,date,amount\nA,2020-01-01,0\nA,2020-01-03,4\n"))
    assert len(d.transactions) == 2 and d.counts["zero_amount_rows"] == 1


@pytest.mark.parametrize("policy,expected_rows", [("keep", 3), ("drop", 2)])
def test_duplicates_policy(tmp_path, policy, expected_rows):
    p = write(tmp_path, "customer_id,date,amount\nA,2020-01-01,1\nA,2020-01-01,1\nB,2020-01-01,1\n")
    d = load_transactions(p, duplicates=policy)
    assert len(d.transactions) == expected_rows and d.counts["duplicate_rows"] == 1


def test_duplicates_error(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\nA,2020-01-01,1\nA,2020-01-01,1\n")
    with pytest.raises(DataValidationError, match="duplicate"):
        load_transactions(p, duplicates="error")


def test_after_observation_end_excluded_and_counted(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\nA,2020-01-01,1\nA,2020-01-31,1\nA,2020-02-01,1\n")
    d = load_transactions(p, observation_end="2020-01-31")
    assert len(d.transactions) == 2 and d.counts["after_observation_end"] == 1
    with pytest.raises(DataValidationError, match="after the observation end") as e:
        load_transactions(p, observation_end="2020-01-31", after_observation_end="error")
    assert e.value.n_rows == 1


def test_everything_excluded_is_an_error(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\nA,2021-01-01,1\n")
    with pytest.raises(DataValidationError, match="no transactions left"):
        load_transactions(p, observation_end="2020-01-01")


def test_unknown_policy_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="duplicates must be one of"):
        load_transactions(write(tmp_path, GOOD), duplicates="maybe")


def test_parquet_and_directory(tmp_path):
    df = pd.DataFrame({"customer_id": ["A", "B", "A"],
                       "date": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-02-01"]),
                       "amount": [1.0, 2.0, 3.0]})
    (tmp_path / "parts").mkdir()
    df.iloc[:2].to_parquet(tmp_path / "parts" / "a.parquet")
    df.iloc[2:].to_parquet(tmp_path / "parts" / "b.parquet")
    d = load_transactions(tmp_path / "parts")
    pd.testing.assert_frame_equal(d.transactions, df)
    d2 = load_transactions(str(tmp_path / "parts" / "*.parquet"))
    assert d2.sha256 == d.sha256


def test_cdnow_master_counts(cdnow_master):
    """The real quirks of the CDNOW master log are counted, not hidden."""
    c = cdnow_master.counts
    assert c["rows_read"] == 69_659
    assert c["customers"] == 23_570
    assert c["duplicate_rows"] == 255
    assert c["zero_amount_rows"] == 80
    assert c["rows_used"] == 69_659  # default policy keeps duplicates
    assert cdnow_master.first_date == pd.Timestamp("1997-01-01")
    assert cdnow_master.last_date == pd.Timestamp("1998-06-30")


def test_cdnow_sample(cdnow_sample):
    assert cdnow_sample.n_customers == 2_357
    assert len(cdnow_sample.transactions) == 6_919
