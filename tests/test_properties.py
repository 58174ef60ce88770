"""Property-based tests of the data path (hypothesis, fixed seed).

* random valid logs (unicode ids, random dates and amounts, duplicates, same-day purchases):
  the summary invariants hold (0 <= t_x <= T, x = purchase days - 1, calibration + holdout =
  full period) and the pandas, DuckDB and Spark summaries are equal;
* random corruptions of a valid log: every engine raises DataValidationError (the same rule in
  pandas and DuckDB), never another exception type.

The expected values are computed here from the raw rows with plain Python (sets of days per
customer), not by the code under test.
"""

import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.data import ID_WHITESPACE, MISSING_TOKENS, DataValidationError, load_transactions
from helpers.summary import calibration_holdout, rfm_summary
from helpers.summary_duckdb import calibration_holdout_duckdb, rfm_summary_duckdb, validate_duckdb

PROPS = settings(derandomize=True, deadline=None, max_examples=100,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SPARK_PROPS = settings(PROPS, max_examples=12)

START = pd.Timestamp("2015-01-01")
EXACT = ["x", "t_x", "T", "first_purchase", "x_star", "t_star"]


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

def _valid_id(text: str) -> bool:
    core = text.strip(ID_WHITESPACE)
    return bool(core) and core.lower() not in MISSING_TOKENS and core == text


ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=6).filter(_valid_id)


@st.composite
def valid_logs(draw, min_customers=1):
    """A clean log as a DataFrame (customer_id str, date datetime64, amount float), shuffled."""
    customers = draw(st.lists(ids, min_size=min_customers, max_size=10, unique=True))
    # a small pool of days makes same-day purchases and shared days likely
    pool = draw(st.lists(st.integers(0, 500), min_size=1, max_size=12, unique=True))
    rows = []
    for c in customers:
        n = draw(st.integers(1, 6))
        for _ in range(n):
            day = draw(st.sampled_from(pool))
            seconds = draw(st.integers(0, 86_399))
            amount = draw(st.integers(0, 1_000_000)) / 100
            rows.append((c, START + pd.Timedelta(days=day, seconds=seconds), amount))
    dup = draw(st.lists(st.integers(0, len(rows) - 1), max_size=3))
    rows += [rows[i] for i in dup]                       # exact duplicates
    order = draw(st.permutations(range(len(rows))))
    rows = [rows[i] for i in order]
    return pd.DataFrame({"customer_id": [r[0] for r in rows],
                         "date": pd.to_datetime([r[1] for r in rows]).astype("datetime64[ns]"),
                         "amount": [r[2] for r in rows]})


def expected_days(log: pd.DataFrame, upto=None) -> dict[str, list[pd.Timestamp]]:
    days: dict[str, set] = {}
    for c, d in zip(log["customer_id"], log["date"]):
        d = pd.Timestamp(d).normalize()
        if upto is None or d <= upto:
            days.setdefault(c, set()).add(d)
    return {c: sorted(v) for c, v in days.items()}


def assert_same(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    pd.testing.assert_index_equal(ours.index, ref.index, exact=True)
    assert list(ours.columns) == list(ref.columns)
    for c in ref.columns:
        if c in EXACT:
            np.testing.assert_array_equal(ours[c].to_numpy(), ref[c].to_numpy(), err_msg=c)
        else:
            np.testing.assert_allclose(ours[c].to_numpy(), ref[c].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=c)


# ---------------------------------------------------------------------------
# valid logs: invariants and engine equality
# ---------------------------------------------------------------------------

@PROPS
@given(log=valid_logs(), extra_days=st.integers(0, 30), cut=st.floats(0, 1))
def test_summary_invariants_and_duckdb_equality(log, extra_days, cut):
    td = load_transactions(log)
    tx = td.transactions
    assert td.counts["rows_read"] == len(log) == td.counts["rows_used"]
    last = tx["date"].max().normalize()
    obs_end = last + pd.Timedelta(days=extra_days)
    full = rfm_summary(tx, observation_end=obs_end, time_unit="D")
    days = expected_days(log)
    assert sorted(full.index) == sorted(days) and list(full.index) == sorted(full.index)
    assert td.counts["customers"] == len(days)
    assert td.counts["repeat_buyers"] == sum(len(v) > 1 for v in days.values())
    assert td.counts["purchase_dates"] == len(set().union(*map(set, days.values())))
    for c, ds in days.items():
        row = full.loc[c]
        assert row["x"] == len(ds) - 1
        assert row["t_x"] == (ds[-1] - ds[0]).days and row["T"] == (obs_end - ds[0]).days
    assert ((0 <= full["t_x"]) & (full["t_x"] <= full["T"])).all()
    assert (full["m_x"] >= 0).all() and (full.loc[full["x"] == 0, "m_x"] == 0).all()
    np.testing.assert_allclose(full["total_spend"].sum(), log["amount"].sum(), rtol=1e-9, atol=1e-6)

    assert_same(rfm_summary_duckdb(log, observation_end=obs_end, time_unit="D"), full)

    first = tx["date"].min().normalize()
    span = (obs_end - first).days
    if span >= 1:
        cal_end = first + pd.Timedelta(days=int(cut * (span - 1)))
        cal = calibration_holdout(tx, cal_end, obs_end, time_unit="D")
        in_cal = expected_days(log, upto=cal_end)
        assert sorted(cal.index) == sorted(in_cal)
        assert ((0 <= cal["t_x"]) & (cal["t_x"] <= cal["T"])).all()
        # calibration + holdout = full period, customer by customer
        np.testing.assert_array_equal((cal["x"] + cal["x_star"]).to_numpy(), full.loc[cal.index, "x"].to_numpy())
        np.testing.assert_allclose((cal["total_spend"] + cal["holdout_spend"]).to_numpy(),
                                   full.loc[cal.index, "total_spend"].to_numpy(), rtol=1e-9, atol=1e-6)
        assert (cal["t_star"] == (obs_end - cal_end).days).all()
        assert_same(calibration_holdout_duckdb(log, cal_end, obs_end, time_unit="D"), cal)


@SPARK_PROPS
@given(log=valid_logs(), weekly=st.booleans())
def test_spark_summary_equals_pandas(spark, log, weekly):
    from helpers.summary_spark import calibration_holdout_spark, rfm_summary_spark

    unit = "W" if weekly else "D"
    tx = load_transactions(log).transactions
    ref = rfm_summary(tx, time_unit=unit)
    assert_same(rfm_summary_spark(log, time_unit=unit, spark=spark, progress=False), ref)
    first, last = tx["date"].min().normalize(), tx["date"].max().normalize()
    if last > first:
        cal_end = first + (last - first) / 2
        assert_same(calibration_holdout_spark(log, cal_end.normalize(), time_unit=unit, spark=spark, progress=False),
                    calibration_holdout(tx, cal_end.normalize(), time_unit=unit))


# ---------------------------------------------------------------------------
# corruptions
# ---------------------------------------------------------------------------

def _case(draw, token: str) -> str:
    token = "".join(ch.upper() if draw(st.booleans()) else ch for ch in token)
    return draw(st.sampled_from(["", " ", "\t"])) + token + draw(st.sampled_from(["", " ", "  "]))


@st.composite
def corrupted_csv(draw, spark_safe=False):
    """The CSV bytes of a valid log with one corruption that breaks a rule, and the corruption's name."""
    log = draw(valid_logs())
    text = log.assign(date=log["date"].dt.strftime("%Y-%m-%d")).to_csv(index=False, lineterminator="\n")
    lines = text.splitlines()
    header, body = lines[0], lines[1:]
    i = draw(st.integers(0, len(body) - 1))
    line = body[i]
    cid, date, amount = line.rsplit(",", 2)
    kinds = ["id token", "date token", "bad date", "old date", "future date", "amount token", "amount text",
             "amount inf", "amount huge", "amount negative", "bad utf-8", "nul byte", "truncated", "binary",
             "renamed column", "header only", "empty file"]
    if not spark_safe:
        kinds.append("extra field")
    kind = draw(st.sampled_from(kinds))
    raw = None
    if kind == "id token":
        body[i] = f"{_case(draw, draw(st.sampled_from(MISSING_TOKENS)))},{date},{amount}"
    elif kind == "date token":
        body[i] = f"{cid},{_case(draw, draw(st.sampled_from(MISSING_TOKENS)))},{amount}"
    elif kind == "bad date":
        body[i] = f"{cid},{draw(st.sampled_from(['2020-13-45', '2020-02-30', 'yesterday', '20200101x']))},{amount}"
    elif kind == "old date":
        body[i] = f"{cid},{draw(st.sampled_from(['1800-01-01', '1969-12-31', '1900-06-15']))},{amount}"
    elif kind == "future date":
        body[i] = f"{cid},{draw(st.sampled_from(['2999-01-01', '2200-12-31']))},{amount}"
    elif kind == "amount token":
        body[i] = f"{cid},{date},{_case(draw, draw(st.sampled_from(MISSING_TOKENS)))}"
    elif kind == "amount text":
        body[i] = f"{cid},{date},{draw(st.sampled_from(['ten', '1,000', '$5', '12..5', '1_000', '0x1F']))}"
        if "," in body[i].rsplit(",", 2)[0] or body[i].count(",") > line.count(","):
            body[i] = f'{cid},{date},"1,000"'                         # a thousands separator, quoted
    elif kind == "amount inf":
        body[i] = f"{cid},{date},{draw(st.sampled_from(['inf', '-inf', 'Infinity', '1e400']))}"
    elif kind == "amount huge":
        body[i] = f"{cid},{date},{draw(st.sampled_from(['1e308', '-5e12', '1000000000.01']))}"
    elif kind == "amount negative":
        body[i] = f"{cid},{date},-{draw(st.integers(1, 999))}.5"
    elif kind == "extra field":
        body[i] = f"{line},{draw(st.sampled_from(['x', '1', '2020-01-01']))}"
    elif kind == "renamed column":
        header = header.replace(draw(st.sampled_from(["customer_id", "date", "amount"])), "something_else", 1)
    elif kind == "header only":
        body = []
    text = "\n".join([header] + body) + "\n"
    data = text.encode("utf-8")
    if kind == "bad utf-8":
        at = len(header) + 1 + draw(st.integers(0, max(0, len(data) - len(header) - 2)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\xe9"])) + data[at:]
    elif kind == "nul byte":
        at = len(header) + 1 + draw(st.integers(0, max(0, len(data) - len(header) - 2)))
        data = data[:at] + b"\x00" + data[at:]
    elif kind == "truncated":
        # cut the last line inside its date field: the date and the amount are gone
        lines_b = data.rstrip(b"\n").split(b"\n")
        last = lines_b[-1]
        cut = last.rindex(b",", 0, last.rindex(b",")) + 1 + draw(st.integers(0, 4))
        data = b"\n".join(lines_b[:-1] + [last[:cut]])
    elif kind == "binary":
        raw = draw(st.binary(min_size=1, max_size=200))
        data = b"PAR1" + raw + b"\x00" + raw
    elif kind == "empty file":
        data = b""
    return data, kind


def _errors(path: Path):
    """The DataValidationError of the pandas loader and of DuckDB's validation and summary."""
    errs = []
    for call in (lambda: load_transactions(path, date_format="%Y-%m-%d"),
                 lambda: validate_duckdb(path, date_format="%Y-%m-%d", progress=False),
                 lambda: rfm_summary_duckdb(path, date_format="%Y-%m-%d", progress=False)):
        with pytest.raises(DataValidationError) as e:
            call()
        errs.append(e.value)
    return errs


@PROPS
@given(case=corrupted_csv())
def test_corruptions_raise_data_validation_errors_only(case):
    data, kind = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "log.csv"
        path.write_bytes(data)
        pandas_err, duck_val, duck_sum = _errors(path)
    assert pandas_err.check == duck_val.check == duck_sum.check, (kind, str(pandas_err), str(duck_val), str(duck_sum))
    assert str(pandas_err).splitlines()[0] == str(duck_val).splitlines()[0] or pandas_err.check.startswith("file_"), kind
    assert pandas_err.n_rows == duck_val.n_rows or pandas_err.check.startswith("file_"), kind


@SPARK_PROPS
@given(case=corrupted_csv(spark_safe=True))
def test_corruptions_raise_data_validation_errors_on_spark(spark, case):
    from helpers.summary_spark import validate_spark

    data, kind = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "log.csv"
        path.write_bytes(data)
        with pytest.raises(DataValidationError) as ref:
            load_transactions(path, date_format="%Y-%m-%d")
        with pytest.raises(DataValidationError) as ours:
            validate_spark(path, date_format="%Y-%m-%d", spark=spark, progress=False)
    assert ours.value.check == ref.value.check, (kind, str(ref.value), str(ours.value))


def test_the_corruption_strategy_is_not_vacuous():
    """Each kind of corruption turns a valid log into one the loader rejects (sanity of the generator)."""
    log = pd.DataFrame({"customer_id": ["a", "b"], "date": pd.to_datetime(["2020-01-01", "2020-02-01"]),
                        "amount": [1.0, 2.0]})
    buf = io.StringIO()
    log.assign(date=log["date"].dt.strftime("%Y-%m-%d")).to_csv(buf, index=False)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "log.csv"
        path.write_text(buf.getvalue())
        assert load_transactions(path, date_format="%Y-%m-%d").counts["rows_used"] == 2   # valid as written
