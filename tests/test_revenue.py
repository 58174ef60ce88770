"""Tests for helpers.revenue: growth accounting, cohorts, returning share, repeat effect."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from helpers.revenue import (
    BRIDGE_COMPONENTS,
    bridge_identity_error,
    cohort_table,
    growth_accounting,
    order_value_repeat_effect,
    repeat_share_revenue_regression,
    retention_rates,
    returning_revenue_share,
)

# ---------------------------------------------------------------------------
# fixtures / generators
# ---------------------------------------------------------------------------


def _log(rows):
    """Transaction frame from (customer_id, 'YYYY-MM-DD', amount) tuples."""
    df = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    df["date"] = pd.to_datetime(df["date"])
    df["amount"] = df["amount"].astype(float)
    return df


@pytest.fixture
def tiny():
    """Hand-made log (2021) with known classes per month.

    A: Jan 10, Feb 15 (expansion +5), Mar 12 (contraction -3), churns Apr,
       resurrected Jun 7.
    B: new Feb 20, retained Mar 20 (no change), churns Apr.
    C: new Mar 5 + 6 (two days), Apr 4 (contraction -7), churns May.
    D: new Jan 3, churns Feb, resurrected Jun 1.
    May has no transactions at all.
    """
    return _log(
        [
            ("A", "2021-01-05", 10), ("A", "2021-02-10", 15), ("A", "2021-03-03", 12),
            ("A", "2021-06-20", 7),
            ("B", "2021-02-01", 20), ("B", "2021-03-28", 20),
            ("C", "2021-03-05", 5), ("C", "2021-03-20", 6), ("C", "2021-04-30", 4),
            ("D", "2021-01-31", 3), ("D", "2021-06-01", 1),
        ]
    )


def random_log(seed: int, n_customers: int = 400) -> pd.DataFrame:
    """Random log over two years with bursts, long gaps, zero amounts and two empty months."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2020-01-01")
    first = rng.integers(0, 730, n_customers)
    n_tx = rng.geometric(0.25, n_customers)
    cust = np.repeat(np.arange(n_customers), n_tx)
    # gaps: mostly short, sometimes several months (-> churn and resurrection)
    gaps = np.where(rng.random(len(cust)) < 0.3, rng.integers(60, 300, len(cust)),
                    rng.integers(0, 45, len(cust)))
    starts = np.r_[0, np.cumsum(n_tx)[:-1]]
    gaps[starts] = 0
    offs = pd.Series(gaps).groupby(cust).cumsum().to_numpy()
    days = first[cust] + offs
    keep = days < 730
    amount = np.round(rng.lognormal(3.0, 1.0, len(cust)), 2)
    amount[rng.random(len(cust)) < 0.03] = 0.0
    df = pd.DataFrame(
        {
            "customer_id": np.char.add("c", cust.astype(str))[keep],
            "date": start + pd.to_timedelta(days[keep], unit="D"),
            "amount": amount[keep],
        }
    )
    # two empty months in the middle: nobody buys in it
    empty = (df["date"].dt.year == 2020) & df["date"].dt.month.isin([9, 10])
    return df.loc[~empty].sample(frac=1.0, random_state=seed).reset_index(drop=True)


def reference_bridge(df: pd.DataFrame, period: str) -> pd.DataFrame:
    """Independent dense implementation (customers x periods, loop over periods)."""
    per = df["date"].dt.to_period(period)
    allp = pd.period_range(per.min(), per.max(), freq=period)
    R = df.assign(per=per).pivot_table(index="customer_id", columns="per", values="amount",
                                       aggfunc="sum").reindex(columns=allp)
    A = R.notna().to_numpy()
    R = R.fillna(0.0).to_numpy()
    first = A.argmax(axis=1)
    rows = []
    for t in range(len(allp)):
        new = A[:, t] & (first == t)
        if t == 0:
            rows.append(dict(revenue=R[:, 0].sum(), new=R[new, 0].sum(), expansion=0.0,
                             contraction=0.0, resurrected=0.0, churned=0.0, n_new=new.sum(),
                             n_retained=0, n_resurrected=0, n_churned=0))
            continue
        ret = A[:, t] & A[:, t - 1]
        res = A[:, t] & ~A[:, t - 1] & (first < t)
        chu = A[:, t - 1] & ~A[:, t]
        d = R[ret, t] - R[ret, t - 1]
        rows.append(dict(revenue=R[:, t].sum(), new=R[new, t].sum(), expansion=d[d > 0].sum(),
                         contraction=d[d < 0].sum(), resurrected=R[res, t].sum(),
                         churned=-R[chu, t - 1].sum(), n_new=new.sum(), n_retained=ret.sum(),
                         n_resurrected=res.sum(), n_churned=chu.sum()))
    return pd.DataFrame(rows, index=allp)


def simulate_orders(seed: int, n_customers: int, effect: float, sigma_u=0.8, sigma_e=0.5,
                    mu=3.0, link=None) -> pd.DataFrame:
    """Customers with lognormal random intercepts; repeat orders x (1 + effect) in expectation of logs.

    log(order value) = mu + u_i + log(1 + effect) * repeat + e, on distinct purchase days.
    ``link=None``: order counts independent of u (about a third never repeat);
    ``link=c``: 1 + Poisson(1.2 exp(c u)) orders, so big spenders also order more often.
    """
    rng = np.random.default_rng(seed)
    if link is None:
        n_orders = 1 + np.where(rng.random(n_customers) < 0.33, 0, rng.poisson(2.0, n_customers) + 1)
        u = None
    else:
        u = rng.normal(0.0, sigma_u, n_customers)
        n_orders = 1 + rng.poisson(1.2 * np.exp(link * u))
    cust = np.repeat(np.arange(n_customers), n_orders)
    starts = np.r_[0, np.cumsum(n_orders)[:-1]]
    repeat = np.ones(len(cust), dtype=bool)
    repeat[starts] = False
    if u is None:
        u = rng.normal(0.0, sigma_u, n_customers)
    logv = mu + u[cust] + np.log1p(effect) * repeat + rng.normal(0.0, sigma_e, len(cust))
    gaps = rng.integers(1, 60, len(cust))
    gaps[starts] = rng.integers(0, 365, n_customers)
    days = pd.Series(gaps).groupby(cust).cumsum().to_numpy()
    return pd.DataFrame(
        {
            "customer_id": np.char.add("s", cust.astype(str)),
            "date": pd.Timestamp("2019-01-01") + pd.to_timedelta(days, unit="D"),
            "amount": np.exp(logv),
        }
    )


# ---------------------------------------------------------------------------
# growth accounting
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("period", ["M", "Q"])
def test_bridge_identity_random_logs(seed, period):
    df = random_log(seed)
    ga = growth_accounting(df, period)
    # identity for every period after the first
    parts = ga[list(BRIDGE_COMPONENTS)].sum(axis=1)
    err = (ga["change"] - parts).iloc[1:].abs()
    assert err.notna().all()
    assert (err < 1e-9).all()
    assert bridge_identity_error(ga) < 1e-9
    # churn and resurrection actually happen in these logs
    assert ga["n_churned"].sum() > 0 and ga["n_resurrected"].sum() > 0
    # full period range, including the empty month
    assert ga.index.is_monotonic_increasing and ga.index.freqstr.startswith(period)
    assert len(ga) == len(pd.period_range(df["date"].min(), df["date"].max(), freq=period))
    if period == "M":   # two empty months: everyone active in August churns in September
        sep, octo = ga.loc[pd.Period("2020-09", "M")], ga.loc[pd.Period("2020-10", "M")]
        assert sep["revenue"] == 0 and octo["revenue"] == 0 and octo["n_churned"] == 0
        assert sep["n_churned"] == ga.loc[pd.Period("2020-08", "M"), "n_active"]
        assert ga.loc[pd.Period("2020-11", "M"), "n_retained"] == 0
    # revenue total and each column against an independent dense implementation
    assert ga["revenue"].sum() == pytest.approx(df["amount"].sum(), rel=1e-12)
    ref = reference_bridge(df, period)
    for c in ref.columns:
        np.testing.assert_allclose(ga[c].to_numpy(dtype=float), ref[c].to_numpy(dtype=float),
                                   rtol=1e-12, atol=1e-9, err_msg=c)
    # signs
    assert (ga["expansion"] >= 0).all() and (ga["contraction"] <= 0).all() and (ga["churned"] <= 0).all()
    assert (ga["n_active"] == ga["n_new"] + ga["n_retained"] + ga["n_resurrected"]).all()


def test_bridge_identity_error_detects_a_broken_table(tiny):
    ga = growth_accounting(tiny)
    assert bridge_identity_error(ga) < 1e-12
    broken = ga.copy()
    broken.iloc[3, broken.columns.get_loc("expansion")] += 1.5
    assert bridge_identity_error(broken) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="churned"):
        bridge_identity_error(ga.drop(columns="churned"))


def test_growth_accounting_hand_made_months(tiny):
    ga = growth_accounting(tiny, "M")
    months = [str(p) for p in ga.index]
    assert months == ["2021-01", "2021-02", "2021-03", "2021-04", "2021-05", "2021-06"]
    expected = pd.DataFrame(
        {
            #             Jan   Feb   Mar   Apr   May  Jun
            "revenue":     [13,   35,   43,    4,    0,   8],
            "new":         [13,   20,   11,    0,    0,   0],
            "expansion":   [0,     5,    0,    0,    0,   0],
            "contraction": [0,     0,   -3,   -7,    0,   0],
            "resurrected": [0,     0,    0,    0,    0,   8],
            "churned":     [0,    -3,    0,  -32,   -4,   0],
            "n_new":       [2,     1,    1,    0,    0,   0],
            "n_retained":  [0,     1,    2,    1,    0,   0],
            "n_resurrected": [0,   0,    0,    0,    0,   2],
            "n_churned":   [0,     1,    0,    2,    1,   0],
            "n_active":    [2,     2,    3,    1,    0,   2],
        },
        index=ga.index,
    )
    pd.testing.assert_frame_equal(ga[expected.columns].astype(float), expected.astype(float))
    assert np.isnan(ga["change"].iloc[0])
    np.testing.assert_allclose(ga["change"].iloc[1:], [22, 8, -39, -4, 8])
    qr = ga["quick_ratio"].to_numpy()
    assert np.isnan(qr[0])                       # no previous period
    np.testing.assert_allclose(qr[1:5], [25 / 3, 11 / 3, 0.0, 0.0])
    assert np.isposinf(qr[5])                    # gains, no losses


def test_growth_accounting_hand_made_quarters(tiny):
    ga = growth_accounting(tiny, "Q")
    assert [str(p) for p in ga.index] == ["2021Q1", "2021Q2"]
    q2 = ga.iloc[1]
    assert q2["revenue"] == 12 and q2["new"] == 0 and q2["resurrected"] == 0
    assert q2["contraction"] == -39          # A 37->7, C 11->4, D 3->1
    assert q2["churned"] == -40              # B
    assert q2["change"] == -79
    assert (q2["n_retained"], q2["n_churned"]) == (3, 1)
    assert ga.iloc[0]["new"] == 91 and ga.iloc[0]["n_new"] == 4


def test_growth_accounting_single_period_and_same_day():
    df = _log([("a", "2021-01-01", 1), ("a", "2021-01-01", 2), ("b", "2021-01-20", 0)])
    ga = growth_accounting(df)
    assert len(ga) == 1 and ga["new"].iloc[0] == 3 and ga["n_new"].iloc[0] == 2
    assert bridge_identity_error(ga) == 0.0


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.drop(columns="amount"), "amount"),
        (lambda d: d.assign(amount=-d["amount"]), "amount"),
        (lambda d: d.assign(amount=d["amount"].astype(str)), "amount"),
        (lambda d: d.assign(date=d["date"].astype(str)), "date"),
        (lambda d: d.iloc[0:0], "empty"),
    ],
)
def test_growth_accounting_bad_input(tiny, mutate, match):
    with pytest.raises(ValueError, match=match):
        growth_accounting(mutate(tiny))


def test_bad_period(tiny):
    for f in (growth_accounting, cohort_table, returning_revenue_share):
        with pytest.raises(ValueError, match="period"):
            f(tiny, period="W")


# ---------------------------------------------------------------------------
# cohorts
# ---------------------------------------------------------------------------


def test_cohort_table_hand_made(tiny):
    ct = cohort_table(tiny, "M", "customers")
    assert [str(p) for p in ct.index] == ["2021-01", "2021-02", "2021-03", "2021-04", "2021-05", "2021-06"]
    assert list(ct.columns) == list(range(6))
    nan = np.nan
    expected = np.array(
        [
            [2, 1, 1, 0, 0, 2],           # Jan: A, D; A in Feb, Mar; both in Jun
            [1, 1, 0, 0, 0, nan],         # Feb: B
            [1, 1, 0, 0, nan, nan],       # Mar: C
            [0, 0, 0, nan, nan, nan],
            [0, 0, nan, nan, nan, nan],
            [0, nan, nan, nan, nan, nan],
        ]
    )
    np.testing.assert_array_equal(ct.to_numpy(), expected)
    rv = cohort_table(tiny, "M", "revenue")
    np.testing.assert_allclose(rv.iloc[0].to_numpy(), [13, 15, 12, 0, 0, 8])
    np.testing.assert_allclose(rv.iloc[2, :2].to_numpy(), [11, 4])

    rr = retention_rates(ct)
    np.testing.assert_allclose(rr.iloc[0].to_numpy(), [1, 0.5, 0.5, 0, 0, 1])
    assert rr.iloc[3].isna().all()            # empty cohort
    with pytest.raises(ValueError, match="customers"):
        retention_rates(rv)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("period", ["M", "Q"])
def test_cohort_period0_equals_new_customers(seed, period):
    df = random_log(seed)
    ct = cohort_table(df, period)
    ga = growth_accounting(df, period)
    assert ct.index.equals(ga.index.rename("cohort"))
    np.testing.assert_array_equal(ct[0].to_numpy(), ga["n_new"].to_numpy())
    # each calendar period's active customers = sum over cohorts of the diagonal
    p0 = ct.index[0].ordinal
    active = np.zeros(len(ga))
    for k in ct.columns:
        col = ct[k].to_numpy()
        ok = ~np.isnan(col)
        idx = np.arange(len(ct))[ok] + k
        np.add.at(active, idx, col[ok])
    np.testing.assert_array_equal(active, ga["n_active"].to_numpy())
    assert p0 == ga.index[0].ordinal
    rv = cohort_table(df, period, "revenue")
    assert np.nansum(rv.to_numpy()) == pytest.approx(df["amount"].sum(), rel=1e-12)
    np.testing.assert_allclose(rv[0].to_numpy(), ga["new"].to_numpy(), rtol=1e-12)


def test_cohort_bad_value(tiny):
    with pytest.raises(ValueError, match="value"):
        cohort_table(tiny, value="orders")


# ---------------------------------------------------------------------------
# returning revenue share
# ---------------------------------------------------------------------------


def test_returning_share_hand_made(tiny):
    rs = returning_revenue_share(tiny, "M", band=(0.40, 0.75))
    t = rs.table
    np.testing.assert_allclose(t["returning_revenue"].to_numpy(), [0, 15, 32, 4, 0, 8])
    share = t["returning_share"].to_numpy()
    np.testing.assert_allclose(share[[0, 1, 2, 3, 5]], [0, 15 / 35, 32 / 43, 1, 1])
    assert np.isnan(share[4])                                  # May: no revenue
    assert t["in_band"].tolist() == [False, True, True, False, False, False]
    assert rs.n_periods == 5 and rs.n_in_band == 2
    assert rs.mean == pytest.approx(np.mean([0, 15 / 35, 32 / 43, 1, 1]))
    assert (rs.min, rs.max) == (0.0, 1.0)
    assert rs.overall == pytest.approx((15 + 32 + 4 + 8) / (13 + 35 + 43 + 4 + 8))
    # consistent with growth accounting: returning = revenue - new
    ga = growth_accounting(tiny)
    np.testing.assert_allclose(t["returning_revenue"], ga["revenue"] - ga["new"])

    # alternative definition: C's second day in March (6) also counts as returning
    rd = returning_revenue_share(tiny, "M", definition="purchase_day")
    np.testing.assert_allclose(rd.table["returning_revenue"].to_numpy(), [0, 15, 38, 4, 0, 8])

    with pytest.raises(ValueError, match="band"):
        returning_revenue_share(tiny, band=(25, 40))
    with pytest.raises(ValueError, match="definition"):
        returning_revenue_share(tiny, definition="order")


def test_returning_share_default_band_inclusive():
    # month 2: returning 30 of 100 -> inside 25-40 %; month 3: 40 of 100 -> edge, inside
    df = _log([("a", "2021-01-02", 10), ("a", "2021-02-02", 30), ("b", "2021-02-03", 70),
               ("a", "2021-03-01", 40), ("c", "2021-03-09", 60)])
    rs = returning_revenue_share(df)
    assert rs.table["in_band"].tolist() == [False, True, True]
    assert rs.band == (0.25, 0.40)


# ---------------------------------------------------------------------------
# repeat-order effect
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_effect():
    return simulate_orders(seed=101, n_customers=1000, effect=0.20)


@pytest.fixture(scope="module")
def sim_null():
    return simulate_orders(seed=202, n_customers=1000, effect=0.0)


@pytest.mark.parametrize("method", ["mixedlm", "paired"])
def test_repeat_effect_recovers_known_effect(sim_effect, method):
    r = order_value_repeat_effect(sim_effect, method=method)
    assert r.method == method
    assert r.ci_low < 0.20 < r.ci_high
    assert r.ci_low > 0
    assert r.supported and r.p_value < 0.05
    assert r.ci_low < r.effect < r.ci_high
    # only customers with repeats are used; orders = their purchase days
    n_orders = sim_effect.groupby("customer_id").size()
    assert r.n_customers == int((n_orders > 1).sum())
    assert r.n_orders == int(n_orders[n_orders > 1].sum())
    assert r.n_customers_no_repeat == int((n_orders == 1).sum())
    assert "supports the claim" in r.statement


@pytest.mark.parametrize("method", ["mixedlm", "paired"])
def test_repeat_effect_null(sim_null, method):
    r = order_value_repeat_effect(sim_null, method=method)
    assert r.p_value > 0.01
    assert r.ci_low < 0 < r.ci_high
    assert not r.supported


def test_within_customer_estimates_when_big_spenders_order_more():
    # spend level u drives the number of orders: the naive pooled contrast of
    # repeat vs first orders is badly biased; the within-customer estimators are not
    df = simulate_orders(seed=404, n_customers=1000, effect=0.20, link=0.8)
    paired = order_value_repeat_effect(df, "paired")
    plain = order_value_repeat_effect(df, "mixedlm")
    mund = order_value_repeat_effect(df, "mixedlm", mundlak=True)
    assert paired.pooled_effect > 0.5
    assert paired.ci_low < 0.20 < paired.ci_high
    assert mund.ci_low < 0.20 < mund.ci_high and mund.method == "mixedlm+mundlak"
    # the Mundlak term makes MixedLM's repeat coefficient the within estimate
    assert mund.beta == pytest.approx(paired.beta, abs=0.75 * paired.se)
    # the plain random intercept absorbs most, not all, of the between-customer
    # difference (its known bias here is about +0.05 across seeds 400-409)
    assert abs(plain.effect - 0.20) < 0.25 * abs(plain.pooled_effect - 0.20)


def test_paired_ci_coverage():
    # calibration of the paired CI over many small replicates (expected 95 %)
    covered = 0
    reps = 40
    for seed in range(reps):
        r = order_value_repeat_effect(simulate_orders(1000 + seed, 200, 0.20), method="paired")
        covered += r.ci_low < 0.20 < r.ci_high
    assert covered >= 34          # P(<= 33 of 40 | 95 %) < 0.5 %


def test_methods_agree_and_negative_effect_is_not_supported():
    df = simulate_orders(seed=303, n_customers=500, effect=-0.25)
    a = order_value_repeat_effect(df, "paired")
    b = order_value_repeat_effect(df, "mixedlm")
    assert a.effect < 0 and b.effect < 0 and not a.supported and not b.supported
    assert abs(a.effect - b.effect) < 0.05
    assert "contradicts" in a.statement


def test_repeat_effect_nonpositive_orders_and_same_day():
    rows = [
        # a: two purchases on the first day (one order of 30), repeat of 40
        ("a", "2021-01-01", 10), ("a", "2021-01-01", 20), ("a", "2021-02-01", 40),
        # b: zero-value repeat day excluded; positive repeat kept
        ("b", "2021-01-03", 10), ("b", "2021-01-10", 0), ("b", "2021-03-01", 12),
        # c: zero-value first day -> customer excluded (first order stays day 1)
        ("c", "2021-01-05", 0), ("c", "2021-01-20", 8), ("c", "2021-02-20", 9),
        # d: only a zero-value repeat -> no usable repeat
        ("d", "2021-01-07", 5), ("d", "2021-01-09", 0),
        # e, f: ordinary
        ("e", "2021-01-02", 5), ("e", "2021-01-04", 6), ("e", "2021-05-04", 4),
        ("f", "2021-01-02", 7), ("f", "2021-01-30", 7),
    ]
    r = order_value_repeat_effect(_log(rows), "paired")
    assert r.n_nonpositive_orders == 3
    assert r.n_customers_bad_first == 1
    assert r.n_customers == 4                    # a, b, e, f
    assert r.n_customers_no_repeat == 1          # d
    assert r.n_orders == 2 + 2 + 3 + 2
    diffs = [np.log(40) - np.log(30), np.log(12) - np.log(10),
             np.mean(np.log([6, 4])) - np.log(5), 0.0]
    assert r.beta == pytest.approx(np.mean(diffs))
    assert r.effect == pytest.approx(np.expm1(np.mean(diffs)))


def test_repeat_effect_bad_input(tiny):
    with pytest.raises(ValueError, match="method"):
        order_value_repeat_effect(tiny, method="ols")
    with pytest.raises(ValueError, match="mundlak"):
        order_value_repeat_effect(tiny, method="paired", mundlak=True)
    with pytest.raises(ValueError, match="at least 3 customers"):
        order_value_repeat_effect(_log([("a", "2021-01-01", 1), ("a", "2021-02-01", 2)]))
    with pytest.raises(ValueError, match="customer_id"):
        order_value_repeat_effect(tiny.drop(columns="customer_id"))


# ---------------------------------------------------------------------------
# cross-firm regression
# ---------------------------------------------------------------------------


def _firms(seed, slope, n=400):
    rng = np.random.default_rng(seed)
    share = rng.uniform(0.05, 0.6, n)
    return pd.DataFrame({"repeat_share": share,
                         "revenue": np.exp(12.0 + slope * share + rng.normal(0, 0.3, n))})


def test_regression_recovers_slope():
    true = np.log(1.47) / 0.30                   # exactly the claimed +47 % between 10 % and 40 %
    r = repeat_share_revenue_regression(_firms(7, true))
    assert r.slope_ci_low < true < r.slope_ci_high
    assert r.ci_low < 0.47 < r.ci_high and r.claim_in_ci
    assert r.implied_difference == pytest.approx(np.expm1(r.slope * 0.30))
    assert r.p_value < 1e-6 and r.n_firms == 400

    r0 = repeat_share_revenue_regression(_firms(8, 0.0), cov_type="HC1")
    assert r0.slope_ci_low < 0 < r0.slope_ci_high
    assert not r0.claim_in_ci


def test_regression_bad_input():
    f = _firms(1, 1.0, 20)
    with pytest.raises(ValueError, match="repeat_share"):
        repeat_share_revenue_regression(f.assign(repeat_share=f["repeat_share"] * 100))
    with pytest.raises(ValueError, match="revenue"):
        repeat_share_revenue_regression(f.assign(revenue=0.0))
    with pytest.raises(ValueError, match="revenue"):
        repeat_share_revenue_regression(f.drop(columns="revenue"))
    with pytest.raises(ValueError, match="constant"):
        repeat_share_revenue_regression(f.assign(repeat_share=0.3))


def test_strategic_functions_map_components_by_name():
    """Each seed-000 row carries the sum of its own bridge column (a regression: rows were once misaligned)."""
    from helpers.revenue import strategic_functions

    rng = np.random.default_rng(11)
    n = 300
    tx = pd.DataFrame({
        "customer_id": rng.integers(0, 120, n).astype(str),
        "date": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
        "amount": rng.gamma(2.0, 20.0, n),
    })
    bridge = growth_accounting(tx, period="M")
    table = strategic_functions(bridge)
    assert list(table.index) == ["new", "expansion", "resurrected", "contraction", "churned"]
    for comp in table.index:
        assert table.loc[comp, "sum over periods"] == pytest.approx(bridge[comp].iloc[1:].sum())
    assert table.loc[["new", "expansion", "resurrected"], "share of gains or losses"].sum() == pytest.approx(1)
    assert table.loc[["contraction", "churned"], "share of gains or losses"].sum() == pytest.approx(1)
    assert (table.loc[["contraction", "churned"], "sum over periods"] <= 0).all()
    assert table.loc["resurrected", "sum over periods"] >= 0


# ---------------------------------------------------------------------------
# any log (issue #11): one bridge for any additive measure, logs without amounts,
# logs within one day or with a single customer
# ---------------------------------------------------------------------------

from helpers import claims  # noqa: E402
from helpers.revenue import (  # noqa: E402
    customer_periods,
    market_illustration,
    resolve_period,
    retention_by_age,
    revenue_dynamics,
    strategic_functions,
)


def _purchase_day_log(df: pd.DataFrame) -> pd.DataFrame:
    """One row per customer and purchase day with amount 1: the reference bridge of this log *is* the
    purchases bridge (an independent route: the dense reference implementation, fed unit amounts)."""
    days = df.assign(date=df["date"].dt.normalize()).drop_duplicates(["customer_id", "date"])
    return days.assign(amount=1.0)[["customer_id", "date", "amount"]]


def _customer_period_log(df: pd.DataFrame, period: str) -> pd.DataFrame:
    """One row per customer and active period with amount 1: its reference bridge is the active-customer bridge."""
    per = df["date"].dt.to_period(period)
    one = df.assign(per=per).drop_duplicates(["customer_id", "per"])
    return one.assign(amount=1.0)[["customer_id", "date", "amount"]]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("period", ["M", "Q"])
def test_bridge_identity_any_measure(seed, period):
    df = random_log(seed)
    rev = growth_accounting(df, period, measure="revenue")
    # the revenue bridge is the one it always was: the default call and the dense reference
    pd.testing.assert_frame_equal(rev, growth_accounting(df, period))
    ref = reference_bridge(df, period)
    for c in ref.columns:
        np.testing.assert_allclose(rev[c].to_numpy(dtype=float), ref[c].to_numpy(dtype=float),
                                   rtol=1e-12, atol=1e-9, err_msg=c)
    for measure, unit_log in (("purchases", _purchase_day_log(df)), ("customers", _customer_period_log(df, period))):
        ga = growth_accounting(df, period, measure=measure)
        assert ga.attrs["measure"] == measure and measure in ga.columns and "revenue" not in ga.columns
        assert bridge_identity_error(ga) < 1e-9
        parts = ga[list(BRIDGE_COMPONENTS)].sum(axis=1).iloc[1:]
        np.testing.assert_allclose(parts, ga[measure].diff().iloc[1:], atol=1e-9)
        ref = reference_bridge(unit_log, period).rename(columns={"revenue": measure})
        for c in ref.columns:
            np.testing.assert_allclose(ga[c].to_numpy(dtype=float), ref[c].to_numpy(dtype=float),
                                       rtol=1e-12, atol=1e-9, err_msg=f"{measure}: {c}")
        # the customer classes do not depend on the measure
        for c in ("n_new", "n_retained", "n_resurrected", "n_churned", "n_active"):
            np.testing.assert_array_equal(ga[c].to_numpy(), rev[c].to_numpy())
        # purchases are purchase days
        if measure == "purchases":
            assert ga["purchases"].sum() == len(_purchase_day_log(df))
    cust = growth_accounting(df, period, measure="customers")
    np.testing.assert_array_equal(cust["customers"].to_numpy(), cust["n_active"].to_numpy())
    assert (cust["expansion"] == 0).all() and (cust["contraction"] == 0).all()
    np.testing.assert_array_equal(cust["churned"].to_numpy(), -cust["n_churned"].to_numpy())
    # the identity check sees a break in a purchases bridge too
    broken = growth_accounting(df, period, measure="purchases")
    broken.iloc[1, broken.columns.get_loc("new")] += 2.0
    assert bridge_identity_error(broken) == pytest.approx(2.0)


def test_purchases_bridge_hand_made(tiny):
    """tiny in purchase days per month: Jan A, D; Feb A, B; Mar A, B and C twice; Apr C; May -; Jun A, D."""
    ga = growth_accounting(tiny, "M", measure="purchases")
    expected = pd.DataFrame(
        {
            #             Jan Feb Mar Apr May Jun
            "purchases":   [2,  2,  4,  1,  0,  2],
            "new":         [2,  1,  2,  0,  0,  0],
            "expansion":   [0,  0,  0,  0,  0,  0],
            "contraction": [0,  0,  0, -1,  0,  0],      # C: 2 days in March, 1 in April
            "resurrected": [0,  0,  0,  0,  0,  2],
            "churned":     [0, -1,  0, -2, -1,  0],
        },
        index=ga.index,
    )
    pd.testing.assert_frame_equal(ga[expected.columns].astype(float), expected.astype(float))
    cust = growth_accounting(tiny, "M", measure="customers")
    np.testing.assert_array_equal(cust["customers"].to_numpy(), [2, 2, 3, 1, 0, 2])
    np.testing.assert_array_equal(cust["churned"].to_numpy(), [0, -1, 0, -2, -1, 0])
    # the same bridge without the amount column
    pd.testing.assert_frame_equal(growth_accounting(tiny.drop(columns="amount"), "M", measure="purchases"), ga)
    with pytest.raises(ValueError, match="measure"):
        growth_accounting(tiny, measure="orders")


def test_no_amount_paths(tiny):
    no_amt = tiny.drop(columns="amount")
    with pytest.raises(ValueError, match="amount"):
        growth_accounting(no_amt)                                   # revenue needs amounts
    cp = customer_periods(no_amt)
    assert "revenue" not in cp.columns and cp["purchases"].sum() == 11      # 11 rows on 11 distinct days
    ct = cohort_table(no_amt, "M", "purchases")
    np.testing.assert_array_equal(ct.iloc[0].to_numpy(), [2, 1, 1, 0, 0, 2])   # A, D
    np.testing.assert_array_equal(ct.iloc[2, :2].to_numpy(), [2, 1])          # C
    np.testing.assert_array_equal(cohort_table(no_amt, "M", "customers").to_numpy(),
                                  cohort_table(tiny, "M", "customers").to_numpy())
    rs = returning_revenue_share(no_amt, "M", measure="purchases")
    assert rs.measure == "purchases" and "returning_purchases" in rs.table.columns
    share = rs.table["returning_share"].to_numpy()
    np.testing.assert_allclose(share[[0, 1, 2, 3, 5]], [0, 1 / 2, 2 / 4, 1, 1])
    assert np.isnan(share[4])
    np.testing.assert_allclose(rs.table["returning_purchases"],
                               growth_accounting(no_amt, measure="purchases").eval("purchases - new"))
    rd = returning_revenue_share(no_amt, "M", measure="purchases", definition="purchase_day")
    np.testing.assert_allclose(rd.table["returning_purchases"].to_numpy(), [0, 1, 3, 1, 0, 2])  # C's 2nd day

    dyn = revenue_dynamics(no_amt, period="M", recent_months=3)
    assert dyn.measure == "purchases" and not dyn.has_amounts
    assert dyn.repeat_effect is None and dyn.order_profile is None and "no amounts" in dyn.repeat_effect_reason
    pd.testing.assert_frame_equal(dyn.bridge, ga_p := growth_accounting(no_amt, "M", measure="purchases"))
    assert dyn.identity_error == 0.0 and dyn.limits == []
    assert dyn.recent_periods == 3 and dyn.recent_share == pytest.approx(np.mean([1.0, 1.0]))  # Apr, Jun (May: none)
    assert dyn.totals()["gains"] == ga_p[["new", "expansion", "resurrected"]].iloc[1:].to_numpy().sum()
    assert dyn.value_per_customer.attrs["value"] == "purchases_per_customer"

    with_amt = revenue_dynamics(tiny, period="M")
    assert with_amt.measure == "revenue" and with_amt.repeat_effect_reason == ""   # A, B, C, D all repeat
    assert with_amt.repeat_effect.n_customers == 4
    pd.testing.assert_frame_equal(with_amt.bridge, growth_accounting(tiny, "M"))
    assert with_amt.order_profile is not None


def test_retention_by_age_hand_made(tiny):
    counts = cohort_table(tiny, "M", "customers")
    table = retention_by_age(counts, cohort_table(tiny, "M", "purchases"))
    assert list(table.index) == [1, 2, 3]                  # ages 6, 12, 24 are never observed in six months
    np.testing.assert_array_equal(table["cohorts"], [3, 3, 3])        # Jan, Feb, Mar (Apr-Jun acquire nobody)
    np.testing.assert_array_equal(table["customers"], [4, 4, 4])
    np.testing.assert_allclose(table["retention"], [3 / 4, 1 / 4, 0])  # A, B, C back after one month; A after two
    np.testing.assert_allclose(table["purchases_per_customer"], [3 / 4, 1 / 4, 0])
    assert retention_by_age(counts, ages=(7,)).empty


def test_one_day_log_gives_sentences_not_errors():
    df = _log([("a", "2021-03-05", 1), ("b", "2021-03-05", 2), ("c", "2021-03-05", 3), ("a", "2021-03-05", 4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # no division-by-zero warnings either
        dyn = revenue_dynamics(df)
        dyn_q = revenue_dynamics(df.drop(columns="amount"), period="Q")
    for d in (dyn, dyn_q):
        assert d.n_periods == 1 and d.n_days == 1 and len(d.bridge) == 1 and d.identity_error == 0.0
        assert any("falls on one day (2021-03-05)" in s for s in d.limits)
        assert d.recent_periods == 0 and np.isnan(d.recent_share)
        assert d.functions["share of gains or losses"].isna().all()
        assert d.retention_summary.empty and np.isnan(d.retention_at(1))
        assert d.repeat_effect is None
        assert (d.window.first, d.window.last, d.window.window_periods) == (d.window.first, d.window.first, 1)
        assert claims.single_acquisition_window(d.window.window_periods, d.n_periods, d.window.periods_with_new,
                                                d.window.first, d.window.last).holds is None
        assert claims.in_band(d.recent_share, 0.25, 0.40, "The share").holds is None
        assert claims.largest_part({"churn": -d.totals()["churned"],
                                    "contraction": -d.totals()["contraction"]}, "leak").holds is None
    assert "only 0 customers" in dyn.repeat_effect_reason
    assert any("not run" in s for s in dyn.limits)
    assert not any("order value" in s for s in dyn_q.limits)          # without amounts: said elsewhere
    # a log within one month (several days) says "one month"
    month = revenue_dynamics(_log([("a", "2021-03-05", 1), ("b", "2021-03-09", 2)]))
    assert any("falls in one month (2021-03)" in s for s in month.limits)


def test_single_customer_log():
    df = _log([("a", "2021-01-05", 1), ("a", "2021-02-07", 2), ("a", "2021-02-09", 3), ("a", "2021-05-01", 4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dyn = revenue_dynamics(df)
    assert dyn.n_customers == 1 and dyn.n_periods == 5
    assert any("single customer" in s for s in dyn.limits)
    assert "only 1 customer bought" in dyn.repeat_effect_reason
    assert dyn.identity_error < 1e-12
    np.testing.assert_allclose(dyn.bridge["revenue"].to_numpy(), [1, 5, 0, 0, 4])
    assert dyn.totals()["resurrected"] == 4 and dyn.totals()["churned"] == -5
    assert dyn.window.periods_with_new == 1 and dyn.window.last == "2021-01"
    # the returning share: 100% in each later month with purchases
    np.testing.assert_allclose(dyn.returning.table["returning_share"].dropna().to_numpy(), [0, 1, 1])


def test_resolve_period():
    short = _log([("a", "2020-01-01", 1), ("b", "2023-12-31", 1)])    # 48 months
    long = _log([("a", "2020-01-01", 1), ("b", "2024-01-01", 1)])     # 49 months
    assert resolve_period("auto", short) == "M" and resolve_period("auto", long) == "Q"
    assert resolve_period("Q", short) == "Q"
    with pytest.raises(ValueError, match="period"):
        resolve_period("W", short)
    assert revenue_dynamics(long).period == "Q"


def test_strategic_functions_on_a_purchases_bridge(tiny):
    table = strategic_functions(growth_accounting(tiny, measure="purchases"))
    assert table.attrs["measure"] == "purchases"
    # after January: gains new 1 + 2, resurrected 2; losses churned 1 + 2 + 1, contraction 1
    np.testing.assert_allclose(table["sum over periods"], [3, 0, 2, -1, -4])
    np.testing.assert_allclose(table["share of gains or losses"], [3 / 5, 0, 2 / 5, 1 / 5, 4 / 5])
    assert "seed" not in " ".join(table.columns)


def test_market_illustration_wires_the_regression():
    from helpers.simulate import simulate_market

    mi = market_illustration(n_firms=30, months=18, measure_months=6, correlations=(0.5, 0.0), seed=5)
    assert mi.main_correlation == 0.0 and mi.benchmark == pytest.approx(0.9 / 0.6 - 1)
    firms = simulate_market(30, months=18, measure_months=6, correlation=0.0, seed=5, show_progress=False)
    pd.testing.assert_frame_equal(mi.firms, firms)
    direct = repeat_share_revenue_regression(firms, cov_type="HC1")
    assert mi.fit.slope == pytest.approx(direct.slope, rel=1e-12)
    local = firms.loc[firms["repeat_share"].between(0.05, 0.50)]
    assert mi.local_fit.n_firms == len(local)
    table = mi.sensitivity()
    assert list(table.index) == [0.5, 0.0] and table.loc[0.0, "slope"] == pytest.approx(direct.slope, rel=1e-12)


def test_headline_numbers_in_percent_or_a_reason(tiny):
    dyn = revenue_dynamics(tiny, period="M")
    h = dyn.headline()
    # after January: gains new 20 + 11, expansion 5, resurrected 8 (44); losses churned 3 + 32 + 4, contraction 10
    assert h["gains_from_new_customers_pct"] == round(100 * 31 / 44, 1)
    assert h["losses_from_churn_pct"] == round(100 * 39 / 49, 1)
    assert (h["periods"], h["acquisition_periods"]) == (6, 3)
    assert h["retention_after_1_period_pct"] == 75.0
    assert isinstance(h["repeat_order_effect_pct"], float)
    one_day = revenue_dynamics(_log([("a", "2021-03-05", 1), ("b", "2021-03-05", 2)]).drop(columns="amount"))
    h1 = one_day.headline()
    assert h1["gains_from_new_customers_pct"].startswith("n/a: ") and h1["returning_share_recent_pct"].startswith("n/a")
    assert h1["repeat_order_effect_pct"] == "n/a: no amounts" and h1["periods"] == 1
    assert not any(v is None or (isinstance(v, float) and np.isnan(v)) for v in h1.values())


# ---------------------------------------------------------------------------
# the figures of issue #14's defects (they draw what the data say)
# ---------------------------------------------------------------------------

def test_revenue_figures_fit_their_data(tiny):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    from helpers import plots_revenue

    ga = growth_accounting(tiny, "M")
    ax = plots_revenue.bridge_bars(ga, ylabel="change in revenue (USD)")
    fig = ax.figure
    t = ga.iloc[1:]
    top = (t[["new", "expansion", "resurrected"]].sum(axis=1)).max()
    bottom = (t[["contraction", "churned"]].sum(axis=1)).min()
    lo, hi = ax.get_ylim()
    assert hi > top and lo < bottom                                   # no bar reaches the frame
    assert len(ax.patches) == 5 * len(t)                              # five components per period
    legend = ax.get_legend()
    fig.canvas.draw()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # the legend sits outside the data
    assert ax.get_ylabel() == "change in revenue (USD)"
    plt.close(fig)

    # one period: an empty frame that says so, no error
    one = growth_accounting(_log([("a", "2021-03-05", 1), ("b", "2021-03-06", 2)]), "M", measure="purchases")
    ax = plots_revenue.bridge_bars(one)
    assert "one period only" in " ".join(x.get_text() for x in ax.texts)
    plt.close(ax.figure)
    plt.close(plots_revenue.bridge_waterfall(one).figure)

    # the value heatmap's scale ends at the largest value from age 1 on, not at age 0
    counts = cohort_table(tiny, "M", "customers")
    per_customer = cohort_table(tiny, "M", "revenue").div(counts[0].where(counts[0] > 0), axis=0)
    per_customer[0] *= 5                      # the acquisition period far above the later ones, as in CDNOW
    per_customer.attrs = {"period": "M"}
    fig = plots_revenue.cohort_heatmap(per_customer, "value", "revenue per customer").figure
    im = fig.axes[0].collections[0] if not fig.axes[0].images else fig.axes[0].images[0]
    later = per_customer.loc[counts[0] > 0, 1:].to_numpy(dtype=float)
    assert im.norm.vmax == pytest.approx(np.nanmax(later)) and im.norm.vmax < per_customer[0].max()
    assert "above" in fig.axes[1].get_xlabel() and "ages 1+" in fig.axes[1].get_xlabel()
    plt.close(fig)

    # order-value groups in clearly different colours (the first and the fourth line once were near-identical)
    profile = pd.DataFrame({"1 order": [20.0, np.nan], "2 orders": [21.0, 22.0], "3-4 orders": [23.0, 24.0],
                            "5+ orders": [25.0, 26.0]}, index=[1, 2])
    fig = plots_revenue.order_value_by_number(profile).figure
    rgb = np.array([mcolors.to_rgb(line.get_color()) for line in fig.axes[0].lines])
    gaps = [np.abs(rgb[i] - rgb[j]).sum() for i in range(len(rgb)) for j in range(i + 1, len(rgb))]
    # every pair distinguishable by colour or marker; "1 order" and "5+ orders" (once near-identical) by colour
    assert len(rgb) == 4 and min(gaps) > 0.3 and np.abs(rgb[0] - rgb[3]).sum() > 0.5
    assert len({line.get_marker() for line in fig.axes[0].lines}) == 4
    plt.close(fig)
