"""Covariate tables (helpers.covariates_data): every validation rule, with its message naming the column,
the rule, the count and example rows; dummies with the stated reference level; the configuration schema."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.config import ConfigError, load_config
from helpers.covariates_data import load_covariates
from helpers.data import DataValidationError

ROOT = Path(__file__).resolve().parents[1]
APPAREL = ROOT / "data" / "apparel"

# six customers, first purchases in the first two weeks of 2020, observed to 2020-02-29
FIRST = pd.Series(pd.to_datetime(["2020-01-01", "2020-01-03", "2020-01-05", "2020-01-08", "2020-01-10",
                                  "2020-01-12"]), index=[f"c{i}" for i in range(1, 7)])
END = "2020-02-29"


def static_csv(tmp_path, text: str, name: str = "static.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = "cid,gender,channel,age\n" + "\n".join(
    f"c{i},{g},{ch},{a}" for i, (g, ch, a) in enumerate(
        [(0, "web", 31), (1, "store", 45), (1, "web", 22), (0, "store", 60), (1, "web", 38), (0, "app", 27)], 1)) + "\n"


def spec(path, **kw):
    out = {"static": {"path": str(path), "customer_id": "cid"}, "purchase": ["gender", "channel"],
           "attrition": ["age"], "categorical": {"channel": {"reference": "store"}}}
    out.update(kw)
    return out


def fails(spec_, check, first=FIRST):
    with pytest.raises(DataValidationError) as e:
        load_covariates(spec_, first, END)
    assert e.value.check == check, str(e.value)
    return e.value


def test_good_table_gives_aligned_frames_and_dummies(tmp_path):
    cv = load_covariates(spec(static_csv(tmp_path, GOOD)), FIRST, END)
    assert list(cv.static.index) == list(FIRST.index)
    # reference 'store': dummies for the other levels, in sorted order
    assert cv.processes == {"purchase": ["gender", "channel[app]", "channel[web]"], "attrition": ["age"]}
    assert cv.references["channel"]["reference"] == "store" and cv.references["channel"]["chosen"] == "configured"
    np.testing.assert_array_equal(cv.static["channel[web]"], [1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(cv.static["channel[app]"], [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(cv.static["age"], [31, 45, 22, 60, 38, 27])
    Z = cv.Z("purchase", FIRST.index[::-1])
    assert list(Z.index) == list(FIRST.index[::-1]) and Z.loc["c6", "channel[app]"] == 1
    assert cv.Z("spend") is None


def test_default_reference_is_the_most_frequent_level_and_says_so(tmp_path):
    cv = load_covariates(spec(static_csv(tmp_path, GOOD), categorical={"channel": None}), FIRST, END)
    info = cv.references["channel"]
    assert info["reference"] == "web" and info["chosen"] == "most frequent"      # web 3, store 2, app 1
    assert info["counts"] == {"app": 1, "store": 2, "web": 3}
    assert cv.processes["purchase"] == ["gender", "channel[app]", "channel[store]"]


def test_reference_level_that_does_not_exist(tmp_path):
    e = fails(spec(static_csv(tmp_path, GOOD), categorical={"channel": {"reference": "phone"}}), "cov_reference")
    assert e.column == "channel" and "'phone' is not a level" in str(e) and "'app', 'store', 'web'" in str(e)


def test_missing_column(tmp_path):
    e = fails(spec(static_csv(tmp_path, GOOD), attrition=["income"]), "cov_missing_column")
    assert e.column == "income" and "static covariate table 'static.csv'" in str(e)
    assert "columns present: ['cid', 'gender', 'channel', 'age']" in str(e)


def test_customers_of_the_log_without_covariates(tmp_path):
    text = "\n".join(line for line in GOOD.splitlines() if not line.startswith(("c2,", "c5,"))) + "\n"
    e = fails(spec(static_csv(tmp_path, text)), "cov_missing_customers")
    assert e.column == "cid" and e.n_rows == 2
    msg = str(e)
    assert "every customer of the log needs covariates" in msg and "(2 customers affected)" in msg
    assert "c2" in msg and "c5" in msg


def test_rows_for_unknown_customers_excluded_and_counted_or_an_error(tmp_path):
    path = static_csv(tmp_path, GOOD + "x9,1,web,50\nx8,0,app,41\n")
    cv = load_covariates(spec(path), FIRST, END)
    row = cv.quality[cv.quality["check"].str.contains("not in the log")].iloc[0]
    assert row["rows"] == 2 and row["action"] == "excluded"
    assert list(cv.static.index) == list(FIRST.index)
    e = fails(spec(path, unknown_customers="error"), "cov_unknown_customers")
    assert e.n_rows == 2 and "x9" in str(e) and "x8" in str(e) and "unknown_customers: error" in str(e)


def test_unknown_customers_do_not_count_for_the_constant_rule(tmp_path):
    # age varies only because of a customer who is not in the log
    text = "cid,gender,channel,age\n" + "".join(f"c{i},{i % 2},web,40\n" for i in range(1, 7)) + "zz,1,web,99\n"
    e = fails(spec(static_csv(tmp_path, text), categorical={}, purchase=["gender"]), "cov_constant")
    assert e.column == "age" and "(40 for every customer of the log)" in str(e) and e.n_rows == 6


def test_duplicate_customer_rows(tmp_path):
    e = fails(spec(static_csv(tmp_path, GOOD + "c3,0,web,23\n")), "cov_duplicate_customer")
    assert e.column == "cid" and e.n_rows == 1 and "one row per customer" in str(e)
    assert "c3" in str(e) and "(1 customer affected)" in str(e)


@pytest.mark.parametrize("token", ["", "NA", "null", " nan "])
def test_missing_values(tmp_path, token):
    text = GOOD.replace("c4,0,store,60", f"c4,0,store,{token}")
    e = fails(spec(static_csv(tmp_path, text)), "cov_nan")
    assert e.column == "age" and e.n_rows == 1 and "must not be missing" in str(e)
    assert e.examples["cid"].tolist() == ["c4"]


def test_missing_level_of_a_categorical(tmp_path):
    e = fails(spec(static_csv(tmp_path, GOOD.replace("c2,1,store", "c2,1,"))), "cov_nan")
    assert e.column == "channel" and e.examples["cid"].tolist() == ["c2"]


def test_non_numeric_value_in_a_numeric_column(tmp_path):
    text = GOOD.replace("c1,0,web,31", "c1,0,web,thirty").replace("c6,0,app,27", "c6,0,app,27y")
    e = fails(spec(static_csv(tmp_path, text)), "cov_non_numeric")
    assert e.column == "age" and e.n_rows == 2 and "must be numeric" in str(e) and "categorical" in str(e)
    assert e.examples["age"].tolist() == ["thirty", "27y"]


def test_text_column_not_declared_categorical(tmp_path):
    e = fails(spec(static_csv(tmp_path, GOOD), categorical={}), "cov_non_numeric")
    assert e.column == "channel" and e.n_rows == 6


def test_infinite_value(tmp_path):
    e = fails(spec(static_csv(tmp_path, GOOD.replace("c5,1,web,38", "c5,1,web,inf"))), "cov_inf")
    assert e.column == "age" and e.n_rows == 1


def test_constant_column(tmp_path):
    text = GOOD.replace(",store,", ",web,").replace(",app,", ",web,")
    e = fails(spec(static_csv(tmp_path, text), categorical={"channel": None}), "cov_constant")
    assert e.column == "channel" and "('web' for every customer of the log)" in str(e)
    assert "cannot be estimated" in str(e) and e.n_rows == 6


def test_null_id(tmp_path):
    e = fails(spec(static_csv(tmp_path, GOOD + ",1,web,40\n")), "cov_null_id")
    assert e.column == "cid" and e.n_rows == 1


def test_missing_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_covariates(spec(tmp_path / "nope.csv"), FIRST, END)
    assert e.value.key == "data.covariates.static.path"


# ---------------------------------------------------------------------------
# dynamic tables
# ---------------------------------------------------------------------------

def weekly(tmp_path, rows=None, drop=(), start="2019-12-29", end="2020-02-23", name="dyn.csv") -> Path:
    """Weeks starting on Sundays from 2019-12-29 (the week of the first purchase) to the week of END."""
    weeks = pd.date_range(start, end, freq="7D")
    lines = ["cid,week,promo"]
    for c in FIRST.index:
        for k, w in enumerate(weeks):
            if (c, k) not in drop:
                lines.append(f"{c},{w.date()},{(k + int(c[1])) % 3 == 0:d}")
    lines += rows or []
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def dspec(tmp_path, dyn, **kw):
    out = spec(static_csv(tmp_path, GOOD), purchase=["gender", "promo"], attrition=["promo"], categorical={})
    out["dynamic"] = {"path": str(dyn), "customer_id": "cid", "date": "week", "period": "W"}
    out.update(kw)
    return out


def test_dynamic_table_good(tmp_path):
    cv = load_covariates(dspec(tmp_path, weekly(tmp_path)), FIRST, END)
    assert cv.time_varying == ["promo"]
    assert cv.processes == {"purchase": ["gender"]}           # static models: the static columns only
    assert cv.dynamic_processes == {"purchase": ["gender", "promo"], "attrition": ["promo"]}
    assert len(cv.dynamic) == 6 * 9 and list(cv.dynamic["customer_id"].unique()) == list(FIRST.index)
    # static covariates repeated over the periods
    assert (cv.dynamic.loc[cv.dynamic["customer_id"] == "c2", "gender"] == 1).all()


def test_dynamic_gap(tmp_path):
    e = fails(dspec(tmp_path, weekly(tmp_path, drop={("c3", 4), ("c3", 5), ("c6", 2)})), "cov_gap")
    assert e.column == "week" and e.n_rows == 2 and "without gaps" in str(e)
    assert list(e.examples.index) == ["c3", "c6"] and e.examples.loc["c3", "periods present"] == 7


def test_dynamic_periods_start_after_the_first_purchase(tmp_path):
    # c1 bought on 2020-01-01 (week of 2019-12-29), but its periods start a week later
    e = fails(dspec(tmp_path, weekly(tmp_path, drop={("c1", 0)})), "cov_late_start")
    assert e.n_rows == 1 and list(e.examples.index) == ["c1"] and "first purchase" in str(e)


def test_dynamic_periods_end_before_the_observation_end(tmp_path):
    e = fails(dspec(tmp_path, weekly(tmp_path, drop={(c, 8) for c in FIRST.index})), "cov_early_end")
    assert e.n_rows == 6 and "2020-02-29" in str(e) and "(6 customers affected)" in str(e)


def test_dynamic_date_between_grid_points(tmp_path):
    e = fails(dspec(tmp_path, weekly(tmp_path, rows=["c2,2020-01-08,1"])), "cov_off_grid")
    assert e.n_rows == 1 and "weeks (7 days) from 2019-12-29" in str(e) and "2020-01-08" in str(e)


def test_dynamic_duplicate_period(tmp_path):
    e = fails(dspec(tmp_path, weekly(tmp_path, rows=["c2,2020-01-05,1"])), "cov_duplicate_period")
    assert e.n_rows == 2 and e.column == "week"


def test_dynamic_bad_date(tmp_path):
    e = fails(dspec(tmp_path, weekly(tmp_path, rows=["c2,05/01/2020,1"])), "cov_bad_date")
    assert e.n_rows == 1 and "05/01/2020" in str(e)


@pytest.mark.parametrize("value,check", [("yes", "cov_non_numeric"), ("NA", "cov_nan")])
def test_dynamic_non_numeric_and_missing(tmp_path, value, check):
    path = weekly(tmp_path)
    lines = path.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("c4,2020-01-12,"))
    lines[i] = f"c4,2020-01-12,{value}"
    # a row of a customer who is not in the log is excluded before the value rules
    path.write_text("\n".join(lines + ["zz,2020-01-05,maybe"]) + "\n")
    e = fails(dspec(tmp_path, path), check)
    assert e.column == "promo" and e.n_rows == 1 and e.examples["cid"].tolist() == ["c4"]


# ---------------------------------------------------------------------------
# the configuration and the apparel files
# ---------------------------------------------------------------------------

def write_cfg(tmp_path, covariates: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(f"data:\n  path: {APPAREL / 'apparel_transactions.csv'}\n  covariates:\n{covariates}notebooks: []\n")
    return p


@pytest.mark.parametrize("covariates,key,words", [
    ("    static: s.csv\n    purchase: [a]\n    bogus: 1\n", "data.covariates.bogus", "allowed keys here: static"),
    ("    static: {path: s.csv, idcol: Id}\n    purchase: [a]\n", "data.covariates.static.idcol",
     "allowed keys here: path, customer_id"),
    ("    static: s.csv\n    purchase: [a]\n    categorical: {a: {ref: x}}\n",
     "data.covariates.categorical.a.ref", "allowed keys here: reference"),
    ("    purchase: [a]\n", "data.covariates", "names no covariate table"),
    ("    static: s.csv\n", "data.covariates", "assigns no covariate to a process"),
    ("    static: s.csv\n    purchase: [a]\n    constrain_equal: [a]\n", "data.covariates",
     "not under both purchase and attrition"),
    ("    static: s.csv\n    purchase: [a]\n    categorical: {b: store}\n", "data.covariates",
     "which no process uses"),
    ("    static: s.csv\n    purchase: [a]\n    penalizer: -1\n", "data.covariates.penalizer", "greater than or equal"),
    ("    static: s.csv\n    purchase: [a]\n    unknown_customers: drop\n", "data.covariates.unknown_customers",
     "'exclude' or 'error'"),
    ("    dynamic: {path: d.csv, period: Q}\n    purchase: [a]\n", "data.covariates.dynamic.period", "'D', 'W' or 'M'"),
])
def test_schema_errors_name_the_key(tmp_path, covariates, key, words):
    with pytest.raises(ConfigError) as e:
        load_config(write_cfg(tmp_path, covariates))
    assert e.value.key == key, str(e.value)
    assert words in str(e.value)


def test_schema_accepts_short_forms(tmp_path):
    cfg = load_config(write_cfg(tmp_path, "    static: s.csv\n    purchase: [a, b]\n    attrition: [a]\n"
                                          "    constrain_equal: [a]\n    categorical: {b: store}\n    penalizer: 1\n"))
    cov = cfg.data["covariates"]
    assert cov["static"]["path"] == str(tmp_path / "s.csv")        # relative to the configuration file
    assert cov["categorical"] == {"b": {"reference": "store"}} and cov["penalizer"] == 1.0
    assert cfg.has_covariates


def test_apparel_configuration_loads_the_shipped_files():
    """configs/apparel-covariates.yaml on the copies in data/apparel: CLVTools' apparelStaticCov
    (Gender 296 of 600 customers = 1, Channel 228 = 1) and apparelDynCov (313 weeks per customer)."""
    from helpers.config import load_data

    cfg = load_config(ROOT / "configs" / "apparel-covariates.yaml")
    tx = load_data(cfg).transactions
    cv = load_covariates(cfg.data["covariates"], tx.groupby("customer_id")["date"].min(), "2010-12-20",
                         default_id="Id")
    assert cv.static.shape == (600, 2)
    assert cv.static["Gender"].sum() == 296 and cv.static["Channel"].sum() == 228
    assert cv.time_varying == ["High.Season"] and len(cv.dynamic) == 600 * 313
    assert cv.processes["purchase"] == ["Gender", "Channel"]
