"""Tests for helpers.aggregates_revenue (the revenue report's compact tables) and the aggregate path of
helpers.revenue.

* engine equality: pandas = DuckDB = Spark for every table, on CDNOW, on CDNOW without amounts and on a
  simulated multi-cohort log (counts exactly, sums to 1e-9 relative);
* the aggregate path equals the transaction-based analyses as they were computed before the aggregates
  existed (a reference implementation kept below: merges on the per-customer-period table, scipy's
  one-sample t-test on the per-customer differences, a pivot of the orders' log values);
* the MixedLM order sample on a log with more customers than the cap.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import pyspark  # noqa: F401  a missing pyspark must fail the run, not skip it
from scipy import stats

from helpers import aggregates, aggregates_revenue as ar, revenue
from helpers.config import load_config, load_data
from helpers.data import load_transactions
from helpers.summary import purchase_days

CONFIGS = ("cdnow", "cdnow-no-amounts", "simulated-retailer")


def _cfg(root, name):
    return load_config(root / "configs" / f"{name}.yaml")


@pytest.fixture(scope="module")
def logs(root):
    """Validated pandas log per configuration (the pandas engine's input)."""
    return {name: load_data(_cfg(root, name)).transactions for name in CONFIGS}


@pytest.fixture(scope="module")
def pandas_tables(logs):
    return {name: ar.compute_pandas(tx) for name, tx in logs.items()}


@pytest.fixture(scope="module")
def duckdb_tables(root):
    out = {}
    for name in CONFIGS:
        cfg = _cfg(root, name)
        out[name] = ar.compute_duckdb(cfg.data["path"], **ar._options(cfg, ar.compute_duckdb))
    return out


def assert_same_tables(got: dict, ref: dict) -> None:
    assert sorted(got) == sorted(ref)
    for name in ref:
        g, r = got[name], ref[name]
        assert list(g.columns) == list(r.columns), name
        assert list(g.dtypes) == list(r.dtypes), name
        pd.testing.assert_frame_equal(g, r, check_exact=False, rtol=1e-9, atol=0, obj=name)
        for col in r.columns:                       # counts (and keys) exactly
            if not pd.api.types.is_float_dtype(r[col]):
                assert (g[col].to_numpy() == r[col].to_numpy()).all(), (name, col)
        assert g.attrs == r.attrs, name


def test_registered_producer():
    assert "aggregates_revenue" in aggregates.PRODUCERS


@pytest.mark.parametrize("name", CONFIGS)
def test_duckdb_equals_pandas(name, pandas_tables, duckdb_tables):
    assert_same_tables(duckdb_tables[name], pandas_tables[name])


def test_duckdb_per_customer_table_in_several_passes_equals_one_pass(root, pandas_tables, monkeypatch):
    """Above PER_CUSTOMER_PASS customers the order table is built in passes over a hash of the id
    (top-n states do not spill); the tables are the same (CDNOW's 23,570 customers in 5 passes)."""
    cfg = _cfg(root, "cdnow")
    monkeypatch.setattr(ar, "PER_CUSTOMER_PASS", 5_000)
    assert_same_tables(ar.compute_duckdb(cfg.data["path"], **ar._options(cfg, ar.compute_duckdb)),
                       pandas_tables["cdnow"])


def test_spark_equals_pandas(root, spark, pandas_tables):
    for name in CONFIGS:
        cfg = _cfg(root, name)
        got = ar.compute_spark(cfg.data["path"], spark=spark, **ar._options(cfg, ar.compute_spark))
        assert_same_tables(got, pandas_tables[name])


def test_tables_are_compact(pandas_tables, logs):
    t = pandas_tables["simulated-retailer"]
    info = t["info"].iloc[0]
    months = info["p1_M"] - info["p0_M"] + 1
    assert len(t["periods"]) == months + (info["p1_Q"] - info["p0_Q"] + 1)
    assert len(t["cohorts"]) <= months * (months + 1)              # (cohort, age) pairs, not customers
    assert t["profile"]["order_number"].max() <= ar.PROFILE_MAX_ORDER and len(t["profile"]) <= 4 * 12
    assert len(t["repeat"]) == len(t["info"]) == 1
    assert info["n_customers"] == logs["simulated-retailer"]["customer_id"].nunique()


def test_policies_and_ids_like_the_pandas_engine(tmp_path):
    """Returns set aside, duplicates dropped, rows after the end excluded, ids stripped: as load_transactions."""
    csv = tmp_path / "log.csv"
    csv.write_text("customer_id,date,amount\n"
                   "a,2021-01-05,10\na,2021-01-05,10\na ,2021-02-07,-3\na,2021-03-01,7\n"
                   "b,2021-01-20,5\nb,2021-01-20,5\nb,2021-04-02,0\nc,2021-02-11,2\nc,2021-02-11,2.5\n"
                   " c,2021-05-02,4\nd,2021-03-03,1\nd,2021-08-01,9\n")
    opts = dict(date_format="%Y-%m-%d", negative_amounts="returns", duplicates="drop", observation_end="2021-06-30")
    ref = ar.compute_pandas(load_transactions(csv, **opts).transactions)
    got = ar.compute_duckdb(csv, **opts)
    assert_same_tables(got, ref)
    assert ref["info"]["n_customers"].iloc[0] == 4                # "a " and " c" are customers "a" and "c"
    assert ref["repeat"]["n_nonpositive_orders"].iloc[0] == 1     # b's zero order
    # a's purchase days 2021-01-05 (10, the duplicate dropped) and 2021-03-01 (7, resurrected: the
    # return of February is set aside); b's January 5 (its duplicate dropped)
    m = ref["periods"].query("grain == 'M'").set_index("p")
    jan, mar = pd.Period("2021-01", "M").ordinal, pd.Period("2021-03", "M").ordinal
    assert m.loc[jan, "revenue"] == 15.0 and m.loc[mar, "resurrected_revenue"] == 7.0


# ---------------------------------------------------------------------------
# reference: the transaction-based analyses as computed before the aggregates
# ---------------------------------------------------------------------------

def _values(cp, measure):
    return np.ones(len(cp)) if measure == "customers" else cp[measure].to_numpy(dtype=float)


def ref_bridge(tx, period, measure):
    """Merge each customer-period with the customer's previous period (outer join)."""
    cp = revenue.customer_periods(tx, period, revenue=(measure == "revenue"))
    p0, p1 = cp.attrs["p0"], cp.attrs["p1"]
    base = pd.DataFrame({"customer_id": cp["customer_id"], "p": cp["p"], "value": _values(cp, measure),
                         "first_p": cp["first_p"]})
    prev = base[["customer_id", "p", "value"]].rename(columns={"value": "prev_value"})
    prev["p"] += 1
    prev = prev.loc[prev["p"] <= p1]
    m = base.merge(prev, on=["customer_id", "p"], how="outer", indicator=True)
    cur, retained, churned = (m["_merge"] != "right_only"), (m["_merge"] == "both"), (m["_merge"] == "right_only")
    new = cur & ~retained & (m["p"] == m["first_p"])
    resurrected = cur & ~retained & (m["p"] != m["first_p"])
    val, prev_val = m["value"].fillna(0.0), m["prev_value"].fillna(0.0)
    diff = np.where(retained, val - prev_val, 0.0)
    parts = pd.DataFrame({"p": m["p"], measure: np.where(cur, val, 0.0), "new": np.where(new, val, 0.0),
                          "expansion": np.maximum(diff, 0.0), "contraction": np.minimum(diff, 0.0),
                          "resurrected": np.where(resurrected, val, 0.0), "churned": np.where(churned, -prev_val, 0.0),
                          "n_new": new.astype(int), "n_retained": retained.astype(int),
                          "n_resurrected": resurrected.astype(int), "n_churned": churned.astype(int)})
    out = parts.groupby("p").sum().reindex(np.arange(p0, p1 + 1), fill_value=0)
    out.index = pd.PeriodIndex.from_ordinals(out.index, freq=period)
    return out


def ref_cohorts(tx, period, value):
    cp = revenue.customer_periods(tx, period, revenue=(value == "revenue"))
    p0, p1 = cp.attrs["p0"], cp.attrs["p1"]
    d = pd.DataFrame({"first_p": cp["first_p"], "age": cp["p"] - cp["first_p"], "v": _values(cp, value)})
    n = p1 - p0 + 1
    tab = d.groupby(["first_p", "age"])["v"].sum().unstack("age").reindex(
        index=np.arange(p0, p1 + 1), columns=np.arange(n)).fillna(0).astype(float)
    return tab.mask(np.arange(p0, p1 + 1)[:, None] + np.arange(n)[None, :] > p1)


def ref_orders(tx):
    """Positive orders of customers with a positive first order; exclusions; pooled contrast."""
    daily = purchase_days(tx)
    positive = daily["amount"].to_numpy() > 0
    bad = daily.loc[daily["is_first"].to_numpy() & ~positive, "customer_id"].unique()
    d = daily.loc[positive & ~daily["customer_id"].isin(bad)].copy()
    d["repeat"] = (~d["is_first"]).astype(float)
    d["log_value"] = np.log(d["amount"].to_numpy())
    rep = d["repeat"].to_numpy() > 0
    pooled = np.expm1(d["log_value"][rep].mean() - d["log_value"][~rep].mean())
    n_rep = d.groupby("customer_id")["repeat"].transform("sum").to_numpy()
    all_ = d["customer_id"].nunique()
    d = d.loc[n_rep > 0].reset_index(drop=True)
    return d, {"n_nonpositive_orders": int((~positive).sum()), "n_customers_bad_first": len(bad),
               "n_customers_no_repeat": all_ - d["customer_id"].nunique(), "pooled_effect": float(pooled)}


def ref_paired(tx):
    d, info = ref_orders(tx)
    rep = d["repeat"].to_numpy() > 0
    first = pd.Series(d["log_value"].to_numpy()[~rep], index=d["customer_id"].to_numpy()[~rep])
    rep_mean = d.loc[rep].groupby("customer_id")["log_value"].mean()
    diffs = (rep_mean - first.reindex(rep_mean.index)).to_numpy()
    tt = stats.ttest_1samp(diffs, 0.0)
    ci = tt.confidence_interval(0.95)
    return {"effect": np.expm1(diffs.mean()), "ci_low": np.expm1(ci.low), "ci_high": np.expm1(ci.high),
            "p_value": tt.pvalue, "n_customers": len(diffs), "n_orders": len(d), **info}


def ref_profile(tx, max_order_number):
    daily = purchase_days(tx)
    k = daily.groupby("customer_id").cumcount() + 1
    n = k.groupby(daily["customer_id"]).transform("max")
    group = pd.cut(n, [0, 1, 2, 4, np.inf], labels=list(ar.PROFILE_GROUPS))
    keep = (daily["amount"] > 0) & (k <= max_order_number)
    f = pd.DataFrame({"k": k[keep], "g": group[keep], "lv": np.log(daily.loc[keep, "amount"])})
    return np.exp(f.pivot_table(index="k", columns="g", values="lv", aggfunc="mean", observed=True))


@pytest.mark.parametrize("name", CONFIGS)
def test_aggregate_path_equals_the_transaction_analyses(name, logs, duckdb_tables):
    tx = logs[name]
    tables = {f"aggregates_revenue.{k}": v for k, v in duckdb_tables[name].items()}   # as in stage.aggregates
    has_amounts = "amount" in tx.columns
    measure = "revenue" if has_amounts else "purchases"
    for period in ("M", "Q"):
        for m in (measure, "customers"):
            got, ref = revenue.growth_accounting(tables, period, m), ref_bridge(tx, period, m)
            pd.testing.assert_frame_equal(got[ref.columns].astype(float), ref.astype(float), check_exact=False,
                                          rtol=1e-9, atol=1e-9, check_names=False)
            assert got.index.equals(ref.index)
        for value in ("customers", measure):
            got, ref = revenue.cohort_table(tables, period, value), ref_cohorts(tx, period, value)
            np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-9)
        share = revenue.returning_revenue_share(tables, period, measure=measure)
        b = ref_bridge(tx, period, measure)
        np.testing.assert_allclose(share.table[f"returning_{measure}"], b[measure] - b["new"], rtol=1e-9, atol=1e-9)
    dyn = revenue.revenue_dynamics(tables)
    assert dyn.n_customers == tx["customer_id"].nunique() and dyn.n_days == tx["date"].dt.normalize().nunique()
    assert dyn.period == revenue.resolve_period("auto", tx)
    if not has_amounts:
        assert dyn.repeat_effect is None and "no amounts" in revenue.repeat_effect_unavailable(tables)
        return
    ref = ref_paired(tx)
    got = revenue.order_value_repeat_effect(tables, method="paired")
    for key, value in ref.items():
        assert getattr(got, key) == pytest.approx(value, rel=1e-9, abs=1e-12), key
    prof = revenue.order_value_profile(tables, max_order_number=6)
    np.testing.assert_allclose(prof.to_numpy(), ref_profile(tx, 6).to_numpy(), rtol=1e-9)
    assert list(prof.columns) == list(ref_profile(tx, 6).columns)
    with pytest.raises(ValueError, match="up to 12"):
        revenue.order_value_profile(tables, max_order_number=13)


def test_mixedlm_on_cdnow_uses_every_customer(logs, duckdb_tables, monkeypatch):
    tx = logs["cdnow"]
    tables = duckdb_tables["cdnow"]
    assert not tables["repeat_orders"].attrs["sampled"]
    d, _ = ref_orders(tx)
    want = d[["customer_id", "log_value", "repeat"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(tables["repeat_orders"], want, check_exact=False, rtol=1e-12)
    # one MixedLM fit (about 30 s on CDNOW): the frame it is given is every customer's orders, and the
    # effect reports that fit's estimate (the fit itself is checked against a direct one in the capped test)
    fitted = []
    fit = revenue._fit_mixedlm

    def spy(frame, *args, **kwargs):
        fitted.append((frame.copy(), fit(frame, *args, **kwargs)))
        return fitted[-1][1]

    monkeypatch.setattr(revenue, "_fit_mixedlm", spy)
    got = revenue.order_value_repeat_effect(tables, method="mixedlm")
    assert len(fitted) == 1
    frame, direct = fitted[0]
    pd.testing.assert_frame_equal(frame[["customer_id", "log_value", "repeat"]].reset_index(drop=True), want,
                                  check_exact=False, rtol=1e-12)
    assert got.beta == direct[0] and got.se == direct[1]
    assert not got.sampled and got.n_customers == d["customer_id"].nunique()


def test_mixedlm_sample_when_more_customers_than_the_cap(tmp_path, spark):
    from helpers.simulate import write_simulated_log

    path = write_simulated_log(tmp_path / "sim.csv", n_customers=600, r=2.0, alpha=4.0, a=0.5, b=6.0, p=6.0, q=4.0,
                               gamma=20.0, acquisition_days=180, observation_days=365, seed=7, show_progress=False)
    tx = load_transactions(path, date_format="%Y-%m-%d").transactions
    cap = 40
    ref = ar.compute_pandas(tx, cap=cap)
    eligible = ref["repeat"]["n_customers"].iloc[0]
    assert eligible > cap
    d, _ = ref_orders(tx)
    digests = sorted((hashlib.md5(c.encode()).hexdigest(), c) for c in d["customer_id"].unique())
    chosen = sorted(c for _, c in digests[:cap])
    sample = ref["repeat_orders"]
    assert sample.attrs == {"sampled": True, "cap": cap, "n_customers_eligible": int(eligible)}
    assert sorted(sample["customer_id"].unique()) == chosen
    expected = d.loc[d["customer_id"].isin(chosen), ["customer_id", "log_value", "repeat"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(sample, expected, check_exact=False, rtol=1e-12)
    # every engine draws the same sample
    assert_same_tables(ar.compute_duckdb(path, date_format="%Y-%m-%d", cap=cap), ref)
    assert_same_tables(ar.compute_spark(path, date_format="%Y-%m-%d", cap=cap, spark=spark), ref)
    effect = revenue.order_value_repeat_effect(ref, method="mixedlm")
    beta, se, _, _ = revenue._fit_mixedlm(expected)
    assert effect.sampled and effect.n_customers == cap and effect.n_customers_eligible == eligible
    assert effect.beta == pytest.approx(beta, rel=1e-9) and effect.se == pytest.approx(se, rel=1e-9)
    assert f"a sample of {cap} of the {eligible} customers" in effect.statement
    # the paired test uses every customer, also with a capped sample
    paired = revenue.order_value_repeat_effect(ref, method="paired")
    assert not paired.sampled and paired.n_customers == eligible
