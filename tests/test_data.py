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


# ---------------------------------------------------------------------------
# hardening (issue 16): one test per rule and policy
# ---------------------------------------------------------------------------

from helpers.data import check_modelable, validation_kwargs  # noqa: E402


@pytest.mark.parametrize("token", ["NA", "na", "N/A", "null", "NULL", "None", "NaN", " na ", "\tNone"])
def test_missing_tokens_in_ids_are_null_ids(tmp_path, token):
    p = write(tmp_path, f"customer_id,date,amount\nA,2020-01-01,1\n{token},2020-01-02,2\nB,2020-01-03,3\n")
    with pytest.raises(DataValidationError, match="customer id must not be null") as e:
        load_transactions(p)
    assert e.value.check == "null_id" and e.value.n_rows == 1 and list(e.value.examples.index) == [1]
    assert "NA, N/A, null, None, NaN" in str(e.value)


def test_whitespace_only_id_is_a_null_id(tmp_path):
    with pytest.raises(DataValidationError, match="customer id must not be null") as e:
        load_transactions(write(tmp_path, "customer_id,date,amount\n   ,2020-01-02,2\nB,2020-01-03,3\n"))
    assert e.value.n_rows == 1


def test_ids_that_merely_contain_a_token_are_ids(tmp_path):
    d = load_transactions(write(tmp_path, "customer_id,date,amount\nNAT,2020-01-01,1\nnone1,2020-01-02,2\n"))
    assert sorted(d.transactions["customer_id"]) == ["NAT", "none1"]


@pytest.mark.parametrize("token", ["NA", "n/a", "Null", "none", "nan", "  "])
def test_missing_tokens_in_dates_are_null_dates(tmp_path, token):
    p = write(tmp_path, f"customer_id,date,amount\nA,2020-01-01,1\nA,{token},2\n")
    with pytest.raises(DataValidationError, match="date must not be null") as e:
        load_transactions(p, date_format="%Y-%m-%d")
    assert e.value.check == "null_date" and e.value.column == "date" and e.value.n_rows == 1


def test_missing_tokens_in_amounts_are_missing_amounts(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\nA,2020-01-01,NA\nA,2020-01-02,null\nB,2020-01-02,3\n")
    with pytest.raises(DataValidationError, match="amount must not be missing") as e:
        load_transactions(p)
    assert e.value.n_rows == 2


def test_non_utf8_file_names_file_offset_encoding_and_key(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("customer_id,date,amount\nJosé,2020-01-01,1\nB,2020-01-02,2\n".encode("latin-1"))
    with pytest.raises(DataValidationError) as e:
        load_transactions(p)
    msg = str(e.value)
    assert e.value.check == "file_encoding" and e.value.n_rows is None
    assert "latin.csv" in msg and "'utf-8'" in msg and "data.encoding" in msg
    assert "byte offset 27" in msg and "0xe9" in msg            # 'customer_id,date,amount\nJos' is 27 bytes
    d = load_transactions(p, encoding="latin-1")                 # what the message says to set
    assert "José" in set(d.transactions["customer_id"])


def test_offset_of_a_bad_byte_beyond_the_first_block(tmp_path):
    from helpers.data import check_text_file

    p = tmp_path / "big.csv"
    head = b"customer_id,date,amount\n" + b"A,2020-01-01,1\n" * 100_000        # 1.5 MB: several blocks
    p.write_bytes(head + b"B\xff,2020-01-02,2\n")
    with pytest.raises(DataValidationError, match=f"byte offset {len(head) + 1:,}"):
        check_text_file(p)


def test_binary_file_is_named_as_binary(tmp_path):
    p = tmp_path / "log.csv"
    pd.DataFrame({"customer_id": ["a"], "date": ["2020-01-01"], "amount": [1.0]}).to_parquet(p)  # Parquet bytes
    with pytest.raises(DataValidationError, match="is binary, not a CSV text file") as e:
        load_transactions(p)
    assert e.value.check == "file_binary" and "log.csv" in str(e.value)
    q = tmp_path / "nul.csv"
    q.write_bytes(b"customer_id,date,amount\nA,2020-01-01,1\x00\n")
    with pytest.raises(DataValidationError, match="NUL byte at byte offset 38"):
        load_transactions(q)


def test_unreadable_parquet_file(tmp_path):
    p = tmp_path / "log.parquet"
    p.write_text("customer_id,date,amount\nA,2020-01-01,1\n")
    with pytest.raises(DataValidationError, match="not a readable Parquet file") as e:
        load_transactions(p)
    assert e.value.check == "file_parquet"


def test_line_with_more_fields_than_the_header(tmp_path):
    for text in ("customer_id,date,amount\nA,2020-01-01,1,9\nB,2020-01-02,2\n",
                 "customer_id,date,amount\nA,2020-01-01,1\nB,2020-01-02,2,9\n"):
        with pytest.raises(DataValidationError, match="not a well-formed CSV file") as e:
            load_transactions(write(tmp_path, text))
        assert e.value.check == "file_csv"


def test_empty_file(tmp_path):
    with pytest.raises(DataValidationError, match="no header line"):
        load_transactions(write(tmp_path, ""))


@pytest.mark.parametrize("value", ["1e308", "-1e308", "1000000000.5", "-2e9"])
def test_implausibly_large_amounts_rejected(tmp_path, value):
    p = write(tmp_path, f"customer_id,date,amount\nA,2020-01-01,1\nA,2020-01-02,{value}\n")
    with pytest.raises(DataValidationError, match="must not exceed 1e\\+09 in absolute value") as e:
        load_transactions(p, negative_amounts="returns")
    assert e.value.check == "large_amount" and e.value.column == "amount" and e.value.n_rows == 1
    assert list(e.value.examples.index) == [1] and "data.max_abs_amount" in str(e.value)


def test_amount_bound_is_configurable(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\nA,2020-01-01,150\nA,2020-01-02,50\n")
    assert load_transactions(p).counts["rows_used"] == 2
    with pytest.raises(DataValidationError, match="must not exceed 100 in absolute value"):
        load_transactions(p, max_abs_amount=100)
    with pytest.raises(ValueError, match="max_abs_amount"):
        load_transactions(p, max_abs_amount=float("inf"))


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])
def test_non_finite_amounts_rejected(tmp_path, value):
    p = write(tmp_path, f"customer_id,date,amount\nA,2020-01-01,1\nA,2020-01-02,{value}\n")
    with pytest.raises(DataValidationError, match="amount must be finite") as e:
        load_transactions(p, negative_amounts="returns")
    assert e.value.n_rows == 1


@pytest.mark.parametrize("when", ["1800-01-01", "1969-12-31", "2999-01-01", "1500-06-01"])
def test_dates_outside_the_window_are_an_error_by_default(tmp_path, when):
    p = write(tmp_path, f"customer_id,date,amount\nA,2020-01-01,1\nB,{when},2\nC,2020-01-03,3\n")
    with pytest.raises(DataValidationError, match="plausible window 1970-01-01 to") as e:
        load_transactions(p, date_format="%Y-%m-%d")
    assert e.value.check == "implausible_date" and e.value.column == "date" and e.value.n_rows == 1
    assert list(e.value.examples.index) == [1] and "implausible_dates: exclude" in str(e.value)


def test_future_date_beyond_today(tmp_path):
    tomorrow = (pd.Timestamp.today().normalize() + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    p = write(tmp_path, f"customer_id,date,amount\nA,2020-01-01,1\nA,{tomorrow},2\n")
    with pytest.raises(DataValidationError, match="plausible window"):
        load_transactions(p)
    assert load_transactions(p, max_date="2100-01-01").counts["rows_used"] == 2


def test_dates_outside_the_window_excluded_and_counted(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\nA,2020-01-01,1\nB,1800-01-01,2\nC,2999-01-01,3\nA,2020-02-01,4\n")
    d = load_transactions(p, implausible_dates="exclude", date_format="%Y-%m-%d")
    assert d.counts["implausible_dates"] == 2 and d.counts["rows_used"] == 2
    q = d.quality.set_index("check")
    row = [c for c in q.index if c.startswith("dates outside 1970-01-01 to ")]
    assert len(row) == 1 and q.loc[row[0], "rows"] == 2 and q.loc[row[0], "action"] == "excluded"
    assert q.loc["date range", "action"] == "2020-01-01 to 2020-02-01"
    d = load_transactions(p, implausible_dates="exclude", min_date="1700-01-01", max_date="3000-01-01"
                          if False else "2262-01-01", date_format="%Y-%m-%d")
    assert d.counts["implausible_dates"] == 1                     # 2999 is still outside


def test_unknown_implausible_dates_policy(tmp_path):
    with pytest.raises(ValueError, match="implausible_dates must be one of"):
        load_transactions(write(tmp_path, GOOD), implausible_dates="maybe")


def _counts(customers=20, repeat_buyers=5, purchase_dates=30, rows_used=100):
    return {"customers": customers, "repeat_buyers": repeat_buyers, "purchase_dates": purchase_dates,
            "rows_used": rows_used}


def test_check_modelable_passes_a_modelable_log(cdnow_sample):
    from lifetimes.utils import summary_data_from_transaction_data

    check_modelable(cdnow_sample.counts)
    ref = summary_data_from_transaction_data(cdnow_sample.transactions, "customer_id", "date", freq="D")
    assert cdnow_sample.counts["repeat_buyers"] == int((ref["frequency"] > 0).sum())
    assert cdnow_sample.counts["purchase_dates"] == cdnow_sample.transactions["date"].nunique()
    check_modelable(_counts(customers=10))


@pytest.mark.parametrize("facts,needle", [
    (_counts(customers=9), "9 customers, fewer than data.min_customers = 10"),
    (_counts(purchase_dates=1, repeat_buyers=0), "all purchases fall on a single day"),
    (_counts(repeat_buyers=0), "no repeat buyers"),
])
def test_check_modelable_names_what_is_missing(facts, needle):
    with pytest.raises(DataValidationError, match="too small for the models") as e:
        check_modelable(facts)
    assert needle in str(e.value) and e.value.check == "too_small"
    assert "at least 10 customers" in str(e.value) and "repeat" in str(e.value)


def test_check_modelable_on_real_logs(tmp_path):
    one_day = "customer_id,date,amount\n" + "".join(f"c{i},2020-01-01,{i + 1}\n" for i in range(12))
    with pytest.raises(DataValidationError, match="single day"):
        check_modelable(load_transactions(write(tmp_path, one_day)).counts)
    single = "customer_id,date,amount\nA,2020-01-01,1\nA,2020-02-01,2\n"
    with pytest.raises(DataValidationError, match="1 customer, fewer than data.min_customers = 10"):
        check_modelable(load_transactions(write(tmp_path, single)).counts)
    check_modelable(load_transactions(write(tmp_path, single)).counts, min_customers=1)


def test_validation_kwargs_reads_the_new_keys():
    kw = validation_kwargs({"columns": {"amount": None}, "encoding": "latin-1", "max_abs_amount": 5e3,
                            "min_date": "1990-01-01", "max_date": "2030-01-01", "implausible_dates": "exclude"})
    assert kw["amount"] is None and kw["encoding"] == "latin-1" and kw["max_abs_amount"] == 5e3
    assert kw["min_date"] == "1990-01-01" and kw["max_date"] == "2030-01-01" and kw["implausible_dates"] == "exclude"
    d = validation_kwargs({})
    assert (d["encoding"], d["max_abs_amount"], d["min_date"], d["max_date"], d["implausible_dates"]) == \
        ("utf-8", 1e9, "1970-01-01", None, "error")


def test_new_config_keys_pass_through_load_data(tmp_path):
    from helpers.config import load_config, load_data

    log = tmp_path / "log.csv"
    log.write_bytes("customer_id,date,amount\nJosé,1960-01-01,1\nB,2020-01-02,2\n".encode("latin-1"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\ndata:\n  path: {log}\n  encoding: latin-1\n  implausible_dates: exclude\n"
                   "  min_date: '1970-01-01'\n  max_abs_amount: 10\n  min_customers: 1\nnotebooks: []\n")
    d = load_data(load_config(cfg))
    assert d.counts["implausible_dates"] == 1 and d.counts["rows_used"] == 1


@pytest.mark.parametrize("value,check", [("1e400", "inf_amount"), ("-1e400", "inf_amount"), ("9" * 400, "inf_amount"),
                                         ("1_000", "non_numeric"), ("0x10", "non_numeric"), ("1,000", "non_numeric")])
def test_amount_text_is_a_number_only_when_it_looks_like_one(tmp_path, value, check):
    p = write(tmp_path, f'customer_id,date,amount\nA,2020-01-01,1\nA,2020-01-02,"{value}"\n')
    with pytest.raises(DataValidationError) as e:
        load_transactions(p)
    assert e.value.check == check and e.value.n_rows == 1
