"""The plot functions draw what the data say: bars, lines, labels, limits, legends; ax= is honoured.

Synthetic inputs with known content, the Agg backend, no image comparison.
"""

import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402

from helpers import plots, plots_economics, plots_revenue, plots_segments  # noqa: E402

# Okabe & Ito (2008), "Color Universal Design": the published colour-blind-safe set
OKABE_ITO = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}


@pytest.fixture(autouse=True)
def theme():
    plots.style()
    yield
    plt.close("all")


def legend_texts(ax):
    leg = ax.get_legend()
    assert leg is not None, "no legend"
    return [t.get_text() for t in leg.get_texts()]


def legend_is_outside(ax) -> bool:
    fig = ax.figure
    fig.canvas.draw()
    leg = ax.get_legend().get_window_extent()
    box = ax.get_window_extent()
    return leg.x0 >= box.x1 - 1 or leg.y1 <= box.y0 + 1 or leg.x1 <= box.x0 + 1 or leg.y0 >= box.y1 - 1


def _lab(color) -> np.ndarray:
    """CIELAB (D65) of an sRGB colour (IEC 61966-2-1 and CIE 1976 formulas)."""
    rgb = np.asarray(mcolors.to_rgb(color))
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ lin / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


#: CIE76 colour difference above which two line colours count as clearly distinguishable
#: (the issue's near-identical blues #1b6ca8 / #00798c are 28.5 apart)
DISTINCT = 40.0


def colour_difference(a, b) -> float:
    return float(np.linalg.norm(_lab(a) - _lab(b)))


def test_colour_difference_reference_values():
    assert colour_difference("#ffffff", "#000000") == pytest.approx(100.0, abs=0.01)  # L* 100 vs 0
    assert colour_difference("#1b6ca8", "#00798c") < DISTINCT  # the two blues of the old 03/05 figures


# ---------------------------------------------------------------------------
# synthetic inputs
# ---------------------------------------------------------------------------

def bridge_table(n=6):
    idx = pd.period_range("2020-01", periods=n, freq="M", name="period")
    rng = np.random.default_rng(1)
    t = pd.DataFrame({
        "new": rng.uniform(50, 100, n), "expansion": rng.uniform(10, 30, n),
        "resurrected": rng.uniform(5, 20, n), "contraction": -rng.uniform(5, 25, n),
        "churned": -rng.uniform(20, 60, n)}, index=idx)
    t.iloc[0] = [1000.0, 0, 0, 0, 0]
    t["change"] = t[["new", "expansion", "resurrected", "contraction", "churned"]].sum(axis=1)
    t.iloc[0, t.columns.get_loc("change")] = np.nan
    t["revenue"] = 1000.0 + t["change"].fillna(0).cumsum()
    return t


def cohort_matrix(age0=100.0):
    # 4 cohorts x ages 0..5; age 0 far above the rest (first order), later ages 1..10; one empty cohort
    vals = np.array([[age0, 10, 8, 6, 4, 2],
                     [age0, 9, 7, 5, 3, np.nan],
                     [age0, 8, 6, 4, np.nan, np.nan],
                     [0.0, np.nan, np.nan, np.nan, np.nan, np.nan]])
    m = pd.DataFrame(vals, index=pd.period_range("2020-01", periods=4, freq="M"), columns=range(6))
    m.attrs["period"] = "M"
    return m


def tracking_frames():
    weeks = np.arange(1.0, 21.0)
    actual = pd.DataFrame({"period": weeks, "repeat": 10 + np.sin(weeks), "cumulative": np.cumsum(10 + np.sin(weeks))})
    models = {name: pd.DataFrame({"period": weeks, "repeat": np.full(20, k), "cumulative": np.cumsum(np.full(20, k))})
              for name, k in [("BG/NBD", 10.0), ("Pareto/NBD", 11.0)]}
    return actual, models


def equity_grid():
    rows = []
    for pop in ("base", "new"):
        for mode in ("dropout", "retention"):
            for d in (0.05, 0.1, 0.2):
                rows.append({"population": pop, "mode": mode, "delta": d,
                             "change_pct": 100 * d * (2 if mode == "retention" else 1) * (1.5 if pop == "new" else 1)})
    return pd.DataFrame(rows)


def sensitivity_table():
    rows = []
    for p, values in {"margin": [0.2, 0.3, 0.4], "mvc_share": [0.1, 0.2]}.items():
        for v in values:
            rows.append({"parameter": p, "value": v, "MVC": 100, "MGC": 80, "Maintain": 500 - 100 * v, "BZ": 300})
    return pd.DataFrame(rows).set_index(["parameter", "value"])


def calls():
    """(function, args, kwargs) for every plot function (the figure-level ones last)."""
    actual, models = tracking_frames()
    cash = pd.DataFrame({"cumulative": np.linspace(5, 60, 13), "margin": np.full(13, 5.0)}, index=range(13))
    front = pd.DataFrame({"acquisition_cost": np.linspace(0, 100, 11), "retention_cost": np.linspace(0, 2, 11)})
    sens = pd.DataFrame({"metric_low": [0.5, 0.9], "metric_high": [2.0, 1.2], "metric_base": [1.1, 1.1],
                         "low": [0.1, 1.0], "high": [0.5, 3.0]}, index=["margin", "cost"])
    pay = pd.DataFrame({"cumulative_gain": np.linspace(0, 90, 13), "cumulative_cost": np.linspace(0, 60, 13)})
    firms = pd.DataFrame({"repeat_share": np.linspace(0.05, 0.6, 30), "revenue": np.exp(np.linspace(10, 12, 30)),
                          "mean_dropout": np.linspace(0.1, 0.5, 30)})
    share_tab = pd.DataFrame({"returning_share": [0.0, 0.2, 0.3, 0.35, 0.5],
                              "in_band": [False, False, True, True, False]},
                             index=pd.period_range("2020-01", periods=5, freq="M"))
    curve = pd.DataFrame({"share_customers": np.linspace(0, 1, 11), "share_value": np.sqrt(np.linspace(0, 1, 11))})
    profile = pd.DataFrame({"1 order": [20.0, np.nan, np.nan], "2 orders": [21.0, 22.0, np.nan],
                            "5+ orders": [25.0, 26.0, 27.0]}, index=pd.Index([1, 2, 3], name="order_number"))
    profile.columns.name = "customers"
    shares = pd.DataFrame({"share of customers": [0.2, 0.2, 0.4, 0.2], "share of value": [0.7, 0.2, 0.2, -0.1]},
                          index=["MVC", "MGC", "Maintain", "BZ"])
    return [
        (plots.bar_distribution, (pd.DataFrame({"customers": [5, 3, 1]}, index=[1, 2, 3]), "customers", "x", "y", "t"), {}),
        (plots.histogram, (pd.Series(np.arange(100.0)), 10, "days", "t"), {"marks": {"median": 49.5}}),
        (plots.cohort_bars, (pd.DataFrame({"new_customers": [10, 20]}, index=["2020-01", "2020-02"]),), {}),
        (plots.grouped_bars, (pd.DataFrame({"actual": [5, 3], "BG/NBD": [4, 3.5]}, index=[0, 1]), "x", "y", "t"), {}),
        (plots.lines_by_class, (pd.DataFrame({"actual": [1, 2, 3], "BG/NBD": [1.1, 2.1, 2.9]}), "x", "y", "t"), {}),
        (plots.heatmap, (pd.DataFrame(np.arange(12.0).reshape(3, 4)), "t", "P(alive)"), {}),
        (plots.p_alive_histories, ({"A": pd.DataFrame({"date": pd.date_range("2020-01-01", periods=5),
                                                       "p_alive": [1, 0.9, 1, 0.8, 0.7]})},
                                   {"A": pd.Series(pd.to_datetime(["2020-01-03"]))}, "t"), {}),
        (plots.value_distribution, (pd.Series(np.exp(np.linspace(0, 5, 200))), "CLV", "t"), {"currency": "USD"}),
        (plots.concentration, ({"by CLV": curve}, "t"), {}),
        (plots_economics.payback_curve, (cash, 30.0, 4.5, (50.0, 70.0)), {"currency": "USD"}),
        (plots_economics.equity_gain_by_delta, (equity_grid(),), {}),
        (plots_economics.frontier, (front, 40.0, 0.8), {"currency": "USD"}),
        (plots_economics.programme_payback, (pay, 6.0), {"currency": "USD"}),
        (plots_economics.tornado, (sens, "advantage"), {}),
        (plots_revenue.bridge_bars, (bridge_table(),), {"currency": "USD"}),
        (plots_revenue.bridge_waterfall, (bridge_table(),), {"currency": "USD"}),
        (plots_revenue.cohort_heatmap, (cohort_matrix(), "t", "revenue per customer"), {"currency": "USD"}),
        (plots_revenue.returning_share, (share_tab,), {}),
        (plots_revenue.order_value_by_number, (profile,), {"currency": "USD"}),
        (plots_revenue.market_scatter, (firms, 3.0, 10.0), {}),
        (plots_segments.segment_overview, (shares, "t"), {}),
        (plots_segments.capture_curves, ({"net CLV": curve, "perfect hindsight": curve}, "t"), {}),
        (plots_segments.money_at_stake, (pd.Series([1000.0, -200.0], index=["MVC: keep", "BZ: cut"]), "t"),
         {"currency": "USD"}),
        (plots.tracking, (actual, models), {"split": 10.0}),
        (plots_segments.sensitivity, (sensitivity_table(), {"margin": 0.3}), {}),
        (plots_segments.holdout_intervals,
         (pd.DataFrame({"forecast": [100.0, 20.0], "lower": [80.0, 10.0], "upper": [120.0, 30.0],
                        "realised": [95.0, 35.0]}, index=["MVC", "BZ"]), "USD"), {}),
    ]


MULTI_PANEL = {plots.tracking: 2, plots_segments.sensitivity: 2, plots_segments.holdout_intervals: 2}
CALLS = calls()


def test_every_public_plot_function_takes_ax_none():
    funcs = [getattr(m, n) for m in (plots, plots_economics, plots_revenue, plots_segments) for n in m.__all__
             if inspect.isfunction(getattr(m, n)) and n != "style"]
    assert len(funcs) == len(CALLS)  # every figure function is exercised below
    for f in funcs:
        p = inspect.signature(f).parameters.get("ax")
        assert p is not None and p.default is None, f"{f.__name__} has no ax=None"


@pytest.mark.parametrize("func,args,kwargs", CALLS, ids=[c[0].__name__ for c in CALLS])
def test_returns_its_axes_and_honours_ax(func, args, kwargs):
    own = func(*args, **kwargs)
    n = MULTI_PANEL.get(func)
    if n:
        assert isinstance(own, np.ndarray) and len(own) == n and all(isinstance(a, Axes) for a in own)
        fig, given = plt.subplots(1, n)
        got = func(*args, **kwargs, ax=given)
        assert list(got) == list(given)
    else:
        assert isinstance(own, Axes)
        fig, given = plt.subplots()
        assert func(*args, **kwargs, ax=given) is given
        assert given.has_data() or given.collections or given.patches
    assert len(fig.axes) >= (n or 1)


def test_style_is_colour_blind_safe_and_legible():
    rc = matplotlib.rcParams
    cycle = [mcolors.to_hex(c["color"]).upper() for c in rc["axes.prop_cycle"]]
    assert set(cycle) <= OKABE_ITO and len(cycle) >= 6
    assert rc["legend.fontsize"] >= 10 and rc["xtick.labelsize"] >= 10 and rc["ytick.labelsize"] >= 10
    assert set(map(str.upper, plots.PALETTE)) <= OKABE_ITO


def test_bar_distribution_one_bar_per_row_with_its_value():
    table = pd.DataFrame({"customers": [50, 30, 20, 5]}, index=[1, 2, 3, "4+"])
    ax = plots.bar_distribution(table, "customers", "purchase days", "customers", "t")
    heights = [p.get_height() for p in ax.containers[0]]
    assert heights == [50, 30, 20, 5]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4+"]
    assert ax.get_xlabel() == "purchase days" and ax.get_ylabel() == "customers"


def test_histogram_counts_every_value_and_labels_marks():
    values = pd.Series(np.r_[np.zeros(30), np.full(70, 9.0)])
    ax = plots.histogram(values, 3, "days between purchases", "t", marks={"median": 9.0, "mean": 6.3}, unit="days")
    assert sum(p.get_height() for p in ax.patches) == 100
    assert legend_texts(ax) == ["median: 9 days", "mean: 6.3 days"]
    assert ax.get_xlabel() == "days between purchases (days)"


def test_tracking_lines_legend_and_calibration_end():
    actual, models = tracking_frames()
    axes = plots.tracking(actual, models, split=10.0, unit="week")
    for a in axes:
        labels = [ln.get_label() for ln in a.get_lines()]
        assert labels == ["actual", "BG/NBD", "Pareto/NBD", "calibration end (week 10)"]
        vline = a.get_lines()[-1]
        assert list(vline.get_xdata()) == [10.0, 10.0]
        assert any(t.get_text() == "calibration end" for t in a.texts)
    assert np.allclose(axes[0].get_lines()[0].get_ydata(), actual["repeat"])
    assert np.allclose(axes[1].get_lines()[2].get_ydata(), models["Pareto/NBD"]["cumulative"])
    assert axes[0].get_legend() is None
    assert legend_texts(axes[1]) == ["actual", "BG/NBD", "Pareto/NBD", "calibration end (week 10)"]
    assert legend_is_outside(axes[1])  # not on the data


def test_grouped_bars_one_bar_per_cell_actual_in_black():
    table = pd.DataFrame({"actual": [100, 40, 10], "BG/NBD": [95, 45, 12], "Pareto/NBD": [98, 41, 11]})
    ax = plots.grouped_bars(table, "x", "customers", "t")
    assert len(ax.containers) == 3 and all(len(c) == 3 for c in ax.containers)
    assert [p.get_height() for p in ax.containers[1]] == [95, 45, 12]
    assert mcolors.to_hex(ax.containers[0][0].get_facecolor()) == "#000000"
    assert legend_texts(ax) == ["actual", "BG/NBD", "Pareto/NBD"]
    assert legend_is_outside(ax)


def test_lines_by_class_actual_solid_black_models_dashed():
    table = pd.DataFrame({"actual": [0.1, 0.5, 1.2], "BG/NBD": [0.2, 0.6, 1.0]}, index=["0", "1", "2+"])
    ax = plots.lines_by_class(table, "x", "y", "t")
    actual, model = ax.get_lines()
    assert mcolors.to_hex(actual.get_color()) == "#000000" and actual.get_linestyle() == "-"
    assert model.get_linestyle() == "--"
    assert np.allclose(model.get_ydata(), [0.2, 0.6, 1.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2+"]


def test_heatmap_draws_the_matrix_with_x0_at_the_bottom():
    m = pd.DataFrame(np.arange(12.0).reshape(3, 4), index=pd.Index([0, 1, 2], name="x"),
                     columns=pd.Index([0, 10, 20, 30], name="t_x"))
    ax = plots.heatmap(m, "t", "P(alive)")
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    assert np.allclose(np.asarray(mesh.get_array()).reshape(3, 4), m.to_numpy())
    bottom, top = ax.get_ylim()
    assert bottom < top  # row x = 0 at the bottom
    assert mesh.colorbar.ax.get_ylabel() == "P(alive)"
    assert ax.get_xlabel() == "recency t_x" and ax.get_ylabel() == "frequency x"


def test_p_alive_histories_readable_legend_one_entry_per_customer():
    dates = pd.date_range("2020-01-01", periods=30)
    hist = {f"C-{i} (x={i})": pd.DataFrame({"date": dates, "p_alive": np.linspace(1, 0.2 * i, 30)}) for i in range(1, 5)}
    buys = {k: pd.Series(dates[[0, 10]]) for k in hist}
    ax = plots.p_alive_histories(hist, buys, "t")
    assert legend_texts(ax) == list(hist)
    assert min(t.get_fontsize() for t in ax.get_legend().get_texts()) >= 10
    assert legend_is_outside(ax)
    assert ax.get_ylim() == (0, 1.05)
    assert len(ax.get_lines()) == 8  # a line and the purchase dots per customer


def test_value_distribution_log_axis_currency_and_hidden_count():
    values = pd.Series(np.r_[np.zeros(10), np.exp(np.linspace(0, 6, 190))])
    ax = plots.value_distribution(values, "CLV", "Distribution of CLV", bins=20, currency="USD")
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "CLV (USD)"
    shown = sum(p.get_height() for p in ax.patches)
    floor = max(np.quantile(values, 0.01), 1e-2)
    assert shown == int((values > floor).sum())
    assert f"{int((values <= floor).sum()):,} customers" in ax.get_title()


def test_concentration_limits_and_lines():
    curve = pd.DataFrame({"share_customers": [0, 0.5, 1.0], "share_value": [0, 0.9, 1.0]})
    ax = plots.concentration({"ranked by CLV": curve, "ranked by past spend": curve}, "t")
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1.02)
    assert legend_texts(ax) == ["equal value", "ranked by CLV", "ranked by past spend"]
    assert ax.get_xticklabels()[-1].get_text().endswith("%")


# --- retention vs acquisition ------------------------------------------------

def test_equity_gain_four_distinguishable_lines():
    ax = plots_economics.equity_gain_by_delta(equity_grid())
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert len(lines) == 4
    cols = [ln.get_color() for ln in lines]
    assert min(colour_difference(a, b) for i, a in enumerate(cols) for b in cols[i + 1:]) > DISTINCT
    labels = [ln.get_label() for ln in lines]
    assert sorted(labels) == sorted(["drop-out cut, existing base", "retention increase, existing base",
                                     "drop-out cut, new customer", "retention increase, new customer"])
    base = [ln for ln in lines if "existing base" in ln.get_label()]
    new = [ln for ln in lines if "new customer" in ln.get_label()]
    assert all(ln.get_linestyle() == "-" for ln in base) and all(ln.get_linestyle() != "-" for ln in new)
    assert np.allclose(sorted(lines[0].get_ydata()), sorted(equity_grid().query(
        "population == 'base' and mode == 'dropout'")["change_pct"]))
    assert "claim: +25 to 95% profit" in legend_texts(ax)


def test_payback_curve_currency_cost_line_interval():
    cash = pd.DataFrame({"cumulative": np.linspace(5, 60, 13)}, index=range(13))
    ax = plots_economics.payback_curve(cash, 30.0, 4.5, (50.0, 70.0), currency="USD")
    assert ax.get_ylabel() == "value of a new customer (USD)"
    assert "acquisition cost 30.00 USD" in legend_texts(ax)
    assert "payback 4.5 months" in legend_texts(ax)
    assert ax.get_ylim()[0] == 0


def test_frontier_and_programme_payback_label_money_axes():
    front = pd.DataFrame({"acquisition_cost": np.linspace(0, 100, 11), "retention_cost": np.linspace(0, 2, 11)})
    ax = plots_economics.frontier(front, 40.0, 0.8, currency="EUR")
    assert ax.get_xlabel().endswith("(EUR)") and ax.get_ylabel().endswith("(EUR)")
    star = [ln for ln in ax.get_lines() if ln.get_marker() == "*"][0]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (40.0, 0.8)
    pay = pd.DataFrame({"cumulative_gain": np.linspace(0, 90, 13), "cumulative_cost": np.linspace(0, 60, 13)})
    ax = plots_economics.programme_payback(pay, 6.0, currency="EUR")
    assert ax.get_ylabel() == "discounted value (EUR)"
    assert legend_texts(ax) == ["cumulative equity gain", "cumulative programme cost", "payback 6.0 months"]


def test_tornado_two_bars_per_assumption():
    sens = pd.DataFrame({"metric_low": [0.5, 0.9, 1.0], "metric_high": [2.0, 1.2, 1.1], "metric_base": [1.1] * 3,
                         "low": [0.1, 1.0, 2], "high": [0.5, 3.0, 4]}, index=["margin", "cost", "rate"])
    ax = plots_economics.tornado(sens, "advantage")
    assert len(ax.patches) == 6
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rate", "cost", "margin"]  # largest at the top
    assert ax.get_xscale() == "log"


# --- revenue dynamics ---------------------------------------------------------

def test_bridge_bars_headroom_legend_off_the_data_and_currency():
    t = bridge_table(8)
    ax = plots_revenue.bridge_bars(t, currency="USD")
    assert len(ax.containers) == 5 and all(len(c) == 7 for c in ax.containers)  # first period left out
    gains = t.iloc[1:][["new", "expansion", "resurrected"]].sum(axis=1)
    losses = t.iloc[1:][["contraction", "churned"]].sum(axis=1)
    span = gains.max() - losses.min()
    lo, hi = ax.get_ylim()
    assert hi >= gains.max() + 0.9 * plots_revenue.HEADROOM * span  # bars do not touch the frame
    assert lo <= losses.min() - 0.9 * plots_revenue.HEADROOM * span
    assert legend_texts(ax) == ["new", "expansion", "resurrected", "contraction", "churned", "net change"]
    assert legend_is_outside(ax)
    assert ax.get_ylabel() == "revenue change (USD)"
    dots = ax.get_lines()[0]
    assert np.allclose(dots.get_ydata(), t["change"].iloc[1:])


def test_bridge_waterfall_labels_the_summed_components():
    t = bridge_table(6)
    ax = plots_revenue.bridge_waterfall(t, currency="USD")
    assert len(ax.patches) == 7
    texts = [a.get_text() for a in ax.texts]
    assert texts[0] == f"{t['revenue'].iloc[0]:,.0f}" and texts[-1] == f"{t['revenue'].iloc[-1]:,.0f}"
    assert texts[1] == f"+{t['new'].iloc[1:].sum():,.0f}"
    assert texts[5] == f"-{-t['churned'].iloc[1:].sum():,.0f}"
    assert ax.get_ylabel() == "revenue per period (USD)"


def test_cohort_heatmap_scale_not_saturated_by_age_0():
    m = cohort_matrix(age0=100.0)
    ax = plots_revenue.cohort_heatmap(m, "t", "revenue per acquired customer", currency="USD")
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    assert mesh.norm.vmax == 10.0  # the largest value at ages 1+, not age 0's 100
    assert np.asarray(mesh.get_array()).reshape(-1, 6).shape[0] == 3  # the cohort without customers dropped
    label = mesh.colorbar.ax.get_xlabel()
    assert "revenue per acquired customer (USD)" in label
    assert "scale set by ages 1+" in label and "3 cells above 10.00 USD" in label
    assert mesh.colorbar.extend == "max"
    assert ax.get_xlabel() == "periods since acquisition (M)"


def test_cohort_heatmap_percent_with_given_vmax():
    retention = pd.DataFrame([[1.0, 0.40, 0.25, 0.20], [1.0, 0.30, 0.20, np.nan], [1.0, 0.35, np.nan, np.nan]],
                             index=pd.period_range("2020-01", periods=3, freq="M"), columns=range(4))
    ax = plots_revenue.cohort_heatmap(retention, "t", "share active", percent=True, vmax=0.3)
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    assert mesh.norm.vmax == 0.3
    ax.figure.canvas.draw()
    ticks = [t.get_text() for t in mesh.colorbar.ax.get_xticklabels() if t.get_text()]
    assert ticks and all(t.endswith("%") for t in ticks)
    # three ages 0 (100%) and 40%, 35% are above 30%; 30% itself is not
    assert "5 cells above 30% in the top colour" in mesh.colorbar.ax.get_xlabel()
    assert int(np.isnan(np.asarray(mesh.get_array().filled(np.nan), dtype=float)).sum()) == 3  # unobserved: blank


def test_order_value_groups_distinguishable():
    profile = pd.DataFrame({"1 order": [20.0, np.nan, np.nan, np.nan, np.nan],
                            "2 orders": [21.0, 22.0, np.nan, np.nan, np.nan],
                            "3-4 orders": [23.0, 23.5, 24.0, 24.2, np.nan],
                            "5+ orders": [25.0, 26.0, 27.0, 27.5, 28.0]}, index=pd.Index(range(1, 6)))
    profile.columns.name = "customers"
    ax = plots_revenue.order_value_by_number(profile, currency="USD")
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == list(profile.columns)
    cols = [ln.get_color() for ln in lines]
    assert colour_difference(cols[0], cols[-1]) > DISTINCT  # "1 order" vs "5+ orders"
    assert min(colour_difference(a, b) for i, a in enumerate(cols) for b in cols[i + 1:]) > DISTINCT
    assert len({ln.get_marker() for ln in lines}) == 4
    assert ax.get_legend().get_title().get_text() == "customers"
    assert ax.get_ylabel() == "geometric mean order value (USD)"


def test_returning_share_band_and_in_band_points():
    tab = pd.DataFrame({"returning_share": [0.0, 0.2, 0.3, 0.35, 0.5], "in_band": [False, False, True, True, False]},
                       index=pd.period_range("2020-01", periods=5, freq="M"))
    ax = plots_revenue.returning_share(tab, band=(0.25, 0.40))
    in_band = [ln for ln in ax.get_lines() if ln.get_label() == "in band"][0]
    assert np.allclose(in_band.get_ydata(), [0.3, 0.35])
    assert ax.get_ylim() == (0, 1.05)
    assert "claimed band 25% to 40%" in legend_texts(ax)


def test_market_scatter_points_fit_and_colour_bar():
    firms = pd.DataFrame({"repeat_share": np.linspace(0.05, 0.6, 30), "revenue": np.exp(np.linspace(10, 12, 30)),
                          "mean_dropout": np.linspace(0.1, 0.5, 30)})
    ax = plots_revenue.market_scatter(firms, 3.0, 10.0, currency="USD")
    assert len(ax.collections[0].get_offsets()) == 30
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "revenue, log scale (USD)"
    assert len(ax.figure.axes) == 2  # the colour bar
    fit = [ln for ln in ax.get_lines() if ln.get_label() == "OLS fit of log revenue"][0]
    assert np.isclose(fit.get_ydata()[0], np.exp(10.0 + 3.0 * 0.05))


# --- segments -----------------------------------------------------------------

def test_segment_overview_bars_coloured_by_segment_and_labelled():
    shares = pd.DataFrame({"share of customers": [0.2, 0.2, 0.4, 0.2], "share of value": [0.7, 0.2, 0.2, -0.1]},
                          index=["BZ", "MVC", "MGC", "Maintain"])  # any order in, segment order out
    ax = plots_segments.segment_overview(shares, "t")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["MVC", "MGC", "Maintain", "BZ"]
    assert len(ax.containers) == 2 and all(len(c) == 4 for c in ax.containers)
    mvc_bar = ax.containers[1][0]
    assert mvc_bar.get_height() == pytest.approx(0.2)
    assert mcolors.to_hex(mvc_bar.get_facecolor()) == plots_segments.SEGMENT_COLORS["MVC"].lower()
    labels = [t.get_text() for t in ax.texts]
    assert "-10%" in labels and "40%" in labels
    assert legend_texts(ax) == ["share of customers", "share of value"]
    assert legend_is_outside(ax)


def test_capture_curves_ceiling_dashed():
    curve = pd.DataFrame({"share_customers": [0, 0.2, 1.0], "share_value": [0, 0.6, 1.0]})
    ax = plots_segments.capture_curves({"net CLV": curve, "perfect hindsight": curve}, "t", mark=0.2)
    by_label = {ln.get_label(): ln for ln in ax.get_lines()}
    assert by_label["perfect hindsight"].get_linestyle() == "--"
    assert by_label["net CLV"].get_linestyle() == "-"
    assert legend_texts(ax) == ["net CLV", "perfect hindsight", "random order"]


def test_sensitivity_one_panel_per_setting():
    axes = plots_segments.sensitivity(sensitivity_table(), {"margin": 0.3}, labels={"margin": "gross margin"})
    assert len(axes) == 2
    assert axes[0].get_xlabel() == "gross margin" and axes[1].get_xlabel() == "mvc_share"
    shares = [ln for ln in axes[0].get_lines() if ln.get_label() == "Maintain"][0]
    totals = np.array([100 + 80 + 300 + 500 - 100 * v for v in (0.2, 0.3, 0.4)])
    assert np.allclose(shares.get_ydata(), (500 - 100 * np.array([0.2, 0.3, 0.4])) / totals)
    legends = [a.get_legend() for a in axes if a.get_legend() is not None]
    assert len(legends) == 1 and [t.get_text() for t in legends[0].get_texts()] == ["MVC", "MGC", "Maintain", "BZ"]


def test_money_at_stake_bars_labels_currency():
    amounts = pd.Series([125000.0, 8000.0, -2500.0], index=["MVC: retain", "MGC: up-sell", "BZ: cut cost"])
    ax = plots_segments.money_at_stake(amounts, "t", currency="USD")
    widths = [p.get_width() for c in ax.containers for p in c]
    assert widths == [125000.0, 8000.0, -2500.0]
    assert [t.get_text() for t in ax.texts] == ["125,000 USD", "8,000 USD", "-2,500 USD"]
    assert ax.get_xlabel() == "money at stake (USD)"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(amounts.index)


def test_histogram_of_a_value_count_draws_the_expanded_bars():
    """A value count with weights gives the bars of the expanded values (the same bin edges and heights)."""
    values = np.array([1, 1, 1, 4, 9, 9, 30])
    uniq, counts = np.unique(values, return_counts=True)
    full = plots.histogram(values, bins=5, xlabel="days", title="t")
    weighted = plots.histogram(uniq, bins=5, xlabel="days", title="t", weights=counts)
    bars = [[(p.get_x(), p.get_height()) for p in ax.patches] for ax in (full, weighted)]
    assert bars[0] == bars[1] and [h for _, h in bars[0]] == [4.0, 2.0, 0.0, 0.0, 1.0]
    plt.close("all")
