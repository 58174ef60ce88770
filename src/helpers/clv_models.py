"""Notebook 02's evidence: every fitted model against the data, the choice and the valuation, from the stage.

The shared analysis stage (:mod:`helpers.stage`) fits every registered
frequency model that applies to the log, compares them on the holdout and
values the customers with the chosen one.  The functions here turn the stage
(and, where purchase dates are needed, the validated log) into the tables and
figure inputs notebook 02 shows; they fit nothing and compute no model
quantity themselves beyond calling the fitted models.

On a discrete-time log (``data.opportunity_period``) the discrete-time
models (BG/BB) are fitted on the discrete summary (transactions in
opportunities) and the continuous models on the continuous one (purchase
days); everything that compares them uses the discrete counts as the actual
values, because that is what every model predicts there: transactions in
the holdout opportunities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import concentration as _conc
from . import validation, value
from .diagnostics import RANKING_METRICS
from .models import get_model, registered_models
from .summary import days_per_unit, period_name, repeats_by_period

__all__ = [
    "METRIC_LABELS",
    "split_table",
    "coverage_sentence",
    "model_status",
    "fit_tables",
    "truth_check",
    "calibration_fit",
    "tracking",
    "conditional_expectations",
    "comparison",
    "alive_matrix",
    "example_customers",
    "bootstrap_method_note",
    "example_histories",
    "spend_check",
    "value_concentration",
    "top_customers",
    "k_choice",
    "fit_results",
    "holdout_results",
    "spend_results",
]

#: Why a baseline row has no likelihood (for the formatting rules: no raw missing values).
NO_LIKELIHOOD = "not a model (no likelihood)"


#: Display names of the ranking metrics of :mod:`helpers.diagnostics`.
METRIC_LABELS = {"spearman": "Spearman correlation", "top_decile_capture": "top-decile capture", "gini": "Gini"}


def _labels(stage) -> dict[str, str]:
    return stage.labels


def _discrete(stage) -> bool:
    return stage.cal_discrete is not None


def split_table(stage) -> pd.Series:
    """The calibration/holdout split the models are fitted and judged on, as rows of text for a report."""
    f = stage.facts
    unit = period_name(stage.time_unit)
    day = pd.Timedelta(days=1)
    rows = {
        "customers (first purchase in the calibration period)": f"{f['calibration_customers']:,}",
        "calibration period": f"{f['first_date']} to {stage.calibration_end.date()}",
        "holdout period": f"{(stage.calibration_end + day).date()} to {stage.observation_end.date()}",
        "holdout length t_star": f"{f['holdout_length']:.4g} {unit}s",
        "repeat purchase days in the calibration period (sum of x)": f"{f['calibration_repeat_purchase_days']:,}",
        "repeat purchase days in the holdout (sum of x_star)": f"{f['holdout_repeat_purchase_days']:,}",
        "distinct (x, t_x, T) rows the continuous models fit on":
            f"{len(stage.cal[['x', 't_x', 'T']].drop_duplicates()):,}",
    }
    if _discrete(stage):
        opp = period_name(stage.discrete_period)
        rows.update({
            "transaction opportunity": f"one per {opp} (data.opportunity_period {stage.discrete_period})",
            f"calibration opportunities (the {opp}s after the first)": f"up to {f['calibration_opportunities_max']:,}",
            "holdout opportunities": f"{f['holdout_opportunities']:,} {opp}s",
            "transactions in calibration opportunities (sum of x)": f"{f['calibration_transactions_discrete']:,}",
            "transactions in holdout opportunities (sum of x_star)": f"{f['holdout_transactions_discrete']:,}",
        })
    return pd.Series(rows, name="value")


def coverage_sentence(stage) -> str:
    """Which registered models the comparison covers, and why the others are not in it."""
    status = model_status(stage)
    compared = status[status["status"].str.startswith("fitted")]
    out = [f"{len(compared)} of the {len(status)} registered models were fitted and compared"]
    for what in ("does not apply", "failed"):
        rows = status[status["status"] == what]
        if len(rows):
            names = ", ".join(rows["label"])
            out.append(f"{names} {'do' if len(rows) > 1 else 'does'} not apply to this log" if what == "does not apply"
                       else f"{names} failed to fit (the error is in the table of models below)")
    return "; ".join(out) + "."


def model_status(stage) -> pd.DataFrame:
    """One row per registered frequency model: whether the stage fitted it, on which summary, and why not.

    Columns ``label``, ``status`` (``fitted`` / ``failed`` / ``does not apply``), ``summary``, ``detail``
    (the error, the reason it does not apply, or how it was fitted) and ``paper`` (the model's reference).
    """
    rows = []
    for name in registered_models():
        m = get_model(name)
        if name in stage.skipped:
            status, summary, detail = "does not apply", "", stage.skipped[name]
        elif name in stage.fits_cal:
            full_err = stage.fit_errors.get("full", {}).get(name)
            status = "fitted" if full_err is None else "fitted on the calibration period only"
            summary = stage.model_summaries.get(name, "continuous")
            detail = full_err or stage.fit_notes.get(name) or k_choice(stage.fits_cal[name]) or ""
        elif name in stage.fit_errors.get("cal", {}):
            status, summary, detail = "failed", stage.model_summaries.get(name, ""), stage.fit_errors["cal"][name]
        else:
            status, summary, detail = "not registered when the stage was computed", "", ""
        rows.append({"model": name, "label": m.label, "status": status, "summary": summary, "detail": detail,
                     "paper": m.reference or ""})
    return pd.DataFrame(rows).set_index("model")


def k_choice(fit) -> str:
    """For a model with an integer parameter chosen by likelihood (CNBD-k): the first clause of its fit message."""
    if not get_model(fit.name).integer_params:
        return ""
    return str(fit.message).split(";")[0].split(" (log-likelihood by k")[0]


def fit_tables(stage, period: str = "cal") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parameter estimates and fit statistics of every fitted model.

    Returns
    -------
    params : DataFrame
        Index (model label, parameter): ``estimate``, ``se``, ``lower``, ``upper`` (95%, log scale) and
        ``note``: why a standard error is missing (an integer parameter such as ``k`` is chosen by
        likelihood; a singular Hessian means the parameter is weakly identified), else empty.
    stats : DataFrame
        Index model label: ``summary``, ``customers``, ``log_likelihood``, ``n_params``, ``bic``,
        ``delta_bic`` (BIC minus the smallest BIC *among models fitted on the same summary*: likelihoods of
        different summaries are not comparable), ``converged``.
    """
    fits = stage.fits_cal if period == "cal" else stage.fits_full
    parts, rows = {}, []
    for name, f in fits.items():
        t = f.params_table().rename(columns={"lower95": "lower", "upper95": "upper"})
        integer = set(get_model(name).integer_params)
        t["note"] = ["integer parameter, chosen by likelihood: no standard error" if k in integer
                     else "singular Hessian (weakly identified): no standard error" if not np.isfinite(se) else ""
                     for k, se in zip(t.index, t["se"].to_numpy(float))]
        parts[f.label] = t
        rows.append({"model": f.label, "summary": stage.model_summaries.get(name, "continuous"),
                     "customers": int(f.n_customers), "log_likelihood": float(f.log_likelihood),
                     "n_params": int(f.n_params), "bic": float(f.bic), "converged": bool(f.converged)})
    params = pd.concat(parts, names=["model", "parameter"])
    stats = pd.DataFrame(rows).set_index("model")
    stats.insert(stats.columns.get_loc("bic") + 1, "delta_bic",
                 stats["bic"] - stats.groupby("summary")["bic"].transform("min"))
    return params, stats


def truth_check(stage, simulate: dict | None) -> tuple[str, pd.DataFrame] | None:
    """True parameters of a simulated log against the full-period estimates of the model that generated it.

    ``simulate`` is the configuration's ``simulate`` section (its ``model``, default ``"bgnbd"``, and the
    parameter values by their literature names; the Gamma-Gamma ``p, q, gamma`` against the spend fit when
    the log has amounts).  Returns (label, table) with ``true``, ``estimate``, ``se``, ``error_pct``, ``z``
    (:func:`helpers.validation.parameter_recovery`), or None without a ``simulate`` section or when the
    generating model was not fitted.
    """
    if not simulate:
        return None
    name = get_model(simulate.get("model", "bgnbd")).name
    fit = stage.fits_full.get(name)
    if fit is None:
        return None
    # a simulation with covariates (helpers.simulate.simulate_with_covariates) gives its base parameters under
    # ``params``: the values at the reference levels, which the model without covariates does not estimate
    truth = {**simulate, **(simulate.get("params") or {})}
    label = fit.label
    if "gammas" in simulate:
        label += (" at the reference levels of its covariates (each customer's parameters depend on the "
                  "covariates, report 06; a model without covariates estimates a mixture)")
    tables = {fit.label: validation.parameter_recovery(fit, {k: truth[k] for k in fit.params.index if k in truth})}
    if stage.spend_full is not None and all(k in simulate for k in ("p", "q", "gamma")):
        tables["Gamma-Gamma"] = validation.parameter_recovery(stage.spend_full, {k: simulate[k]
                                                                                 for k in ("p", "q", "gamma")})
    return label, pd.concat(tables, names=["model", "parameter"])


def _actual_summary(stage, period: str = "cal") -> pd.DataFrame:
    """The summary whose counts are the actual values of the comparison (discrete on a discrete-time log)."""
    if _discrete(stage):
        return stage.cal_discrete if period == "cal" else stage.full_discrete
    return stage.cal if period == "cal" else stage.full


def calibration_fit(stage, max_x: int = 7) -> pd.DataFrame:
    """Observed and expected numbers of calibration customers with 0, 1, ..., ``max_x``+ repeat purchases.

    Each model's expectation is over its own summary (FHL 2005, Figure 2); the ``actual`` column counts the
    comparison's summary (on a discrete-time log: transactions in opportunities).  Columns are model labels.
    """
    actual_from = _actual_summary(stage)
    out = None
    for which in ("continuous", "discrete"):
        fits = {n: f for n, f in stage.fits_cal.items() if stage.model_summaries.get(n, "continuous") == which}
        if not fits:
            continue
        t = validation.calibration_fit(fits, stage.cal if which == "continuous" else stage.cal_discrete, max_x)
        t = t.drop(columns="actual").rename(columns=_labels(stage))
        out = t if out is None else out.join(t)
    out = out.mask((out < 0) & (out > -1e-9), 0.0)   # 1 - sum of the pmf for the last class: rounding below zero
    act = validation.calibration_fit({}, actual_from, max_x)["actual"]
    out.insert(0, "actual", act)
    return out[["actual", *[stage.fits_cal[n].label for n in stage.fits_cal]]]


def _expected_cumulative(fit, ages: np.ndarray, weights: np.ndarray) -> float:
    """sum_i w_i E[X(age_i)] for a new customer (unconditional), age 0 counting nothing."""
    ages = np.asarray(ages, dtype=float)
    pos = ages > 0
    if not pos.any():
        return 0.0
    return float(np.dot(weights[pos], np.asarray(fit.expected_purchases_new(ages[pos]), dtype=float)))


def tracking(stage) -> dict:
    """Repeat purchases per period of the calibration customers, actual against every model (FHL 2005, Fig. 3).

    Continuous log: repeat purchase days per period of the models' time unit (whole days), from the cohort's
    first purchase to the last whole period before the observation end; expectations sum each customer's
    unconditional ``E[X(t)]`` from the first purchase day (:func:`helpers.value.expected_tracking`).
    Discrete-time log: transactions per opportunity period (one per customer and period, the first period
    not counted); BG/BB's expectation counts whole opportunities since each customer's first period, the
    continuous models' the time since the first purchase day to the period's end.  The actual series are
    roll-ups of the stage's aggregates (``aggregates_log.days``: ``repeat_days_cal`` per day;
    ``aggregates_log.opportunities``), not of the log.

    Returns
    -------
    dict with ``actual`` (``period``, ``repeat``, ``cumulative``, ``period_start``), ``expected``
    (label -> same columns), ``split`` (the calibration end in periods), ``unit`` (the period's name),
    ``dropped_days`` (days of an incomplete last period left out).
    """
    if not _discrete(stage):
        days = stage.aggregates["aggregates_log.days"]
        unit_days = days_per_unit(stage.time_unit)
        period_days = max(1, round(unit_days))
        start = pd.Timestamp(stage.cal["first_purchase"].min()).normalize()
        total_days = (stage.observation_end.normalize() - start).days + 1
        n_periods = max(1, total_days // period_days)
        end = start + pd.Timedelta(days=n_periods * period_days - 1)
        actual = repeats_by_period(days["repeat_days_cal"], start=start, end=end, period_days=period_days)
        expected = {}
        for name, f in stage.fits_cal.items():
            e = value.expected_tracking(f, stage.cal["first_purchase"], start=start, n_periods=n_periods,
                                        period_days=period_days, time_unit=f.time_unit)
            expected[f.label] = e.rename(columns={"expected": "repeat", "expected_cumulative": "cumulative"})
        unit = period_name(stage.time_unit) if period_days == unit_days else f"{period_days}-day period"
        split = ((stage.calibration_end - start).days + 1) / period_days
        return {"actual": actual, "expected": expected, "split": split, "unit": unit,
                "dropped_days": total_days - n_periods * period_days}
    # discrete time: opportunity periods
    freq = stage.discrete_period
    cal_d = stage.cal_discrete
    first = pd.Series(cal_d["first_period"].array.asi8, index=cal_d.index)
    p0, p1 = int(first.min()), pd.Period(stage.observation_end, freq=freq).ordinal
    periods = np.arange(p0 + 1, p1 + 1)
    opp = stage.aggregates["aggregates_log.opportunities"]["transactions"]
    counts = opp.reindex(periods, fill_value=0).to_numpy(np.int64)
    starts = pd.PeriodIndex.from_ordinals(periods, freq=freq).start_time
    actual = pd.DataFrame({"period": np.arange(1, len(periods) + 1), "period_start": starts, "repeat": counts})
    actual["cumulative"] = actual["repeat"].cumsum()
    firsts, n_first = np.unique(first.to_numpy(), return_counts=True)
    first_days = stage.cal.loc[cal_d.index, "first_purchase"]
    fd_unique, fd_counts = np.unique(first_days.to_numpy(), return_counts=True)
    ends = pd.PeriodIndex.from_ordinals(periods, freq=freq).end_time.normalize() + pd.Timedelta(days=1)
    expected = {}
    for name, f in stage.fits_cal.items():
        if stage.model_summaries.get(name) == "discrete":
            cum = [_expected_cumulative(f, (p - firsts).astype(float), n_first) for p in periods]
        else:
            unit = days_per_unit(f.time_unit)
            cum = [_expected_cumulative(f, ((e - fd_unique) / np.timedelta64(1, "D")) / unit, fd_counts)
                   for e in ends.to_numpy()]
        cum = np.asarray(cum)
        expected[f.label] = pd.DataFrame({"period": actual["period"], "repeat": np.diff(np.r_[0.0, cum]),
                                          "cumulative": cum})
    split = float(pd.Period(stage.calibration_end, freq=freq).ordinal - p0)
    return {"actual": actual, "expected": expected, "split": split, "unit": period_name(freq), "dropped_days": 0}


def conditional_expectations(stage, max_x: int = 7) -> pd.DataFrame:
    """Mean holdout purchases by calibration frequency class, actual against every model and the baseline
    (FHL 2005, Figure 4), with the number of customers per class; columns are labels."""
    pred = stage.predictions.rename(columns={**_labels(stage), "baseline": "naive baseline"})
    x = _actual_summary(stage)["x"].reindex(pred.index)
    out = validation.conditional_expectations(pred, x, max_x=max_x)
    return out[out["customers"] > 0]


def comparison(stage) -> pd.DataFrame:
    """The stage's holdout comparison indexed by label: totals, customer-level errors, ranking metrics, fit."""
    c = stage.comparison.copy()
    c.index = pd.Index(c.pop("label"), name="model")
    c["total_error_pct"] = c["total_error_pct"] / 100.0
    c = c.rename(columns={"total_error_pct": "total_error"})
    cols = ["summary", "predicted_total", "actual_total", "total_error", "mae", "rmse", "spearman",
            "top_decile_capture", "gini", "log_likelihood", "bic"]
    if not _discrete(stage):
        cols.remove("summary")
    return c[cols]


def alive_matrix(stage, what: str = "p_alive", max_x: int | None = None, t: float | None = None) -> pd.DataFrame:
    """P(alive) (or expected purchases in the next ``t``, default the valuation horizon) over frequency x
    recency at the largest age, under the chosen model's full-period fit.

    Continuous models: :func:`helpers.validation.frequency_recency_matrix` (20 recency steps, ``x`` up to the
    99th percentile, at most 30).  Discrete-time models: every whole ``(x, t_x)`` with ``x <= t_x <= n``
    (cells that cannot occur are empty).
    """
    model = stage.model
    summary = stage.summary_of(stage.model_name, "full")
    T = float(summary["T"].max())
    if what == "expected" and t is None:
        t = float(value.month_grid(stage.horizon_months, stage.model_time_unit)[-1])
    if max_x is None:
        max_x = int(min(max(summary["x"].quantile(0.99), 1), 30))
    unit = period_name(stage.model_time_unit)
    if stage.model_summaries.get(stage.model_name) != "discrete":
        out = validation.frequency_recency_matrix(model, T, max_x=max_x, what=what, t=t)
        out.columns.name = f"t_x ({unit}s)"
        return out
    n = int(T)
    xs, rs = np.arange(min(max_x, n) + 1), np.arange(n + 1)
    X, R = np.meshgrid(xs, rs, indexing="ij")
    ok = ((X <= R) & ((X > 0) | (R == 0))).ravel()
    vals = np.full(X.size, np.nan)
    xo, ro = X.ravel()[ok].astype(float), R.ravel()[ok].astype(float)
    if what == "p_alive":
        vals[ok] = model.p_alive(xo, ro, np.full_like(xo, n))
    else:
        vals[ok] = model.expected_purchases(float(t if t is not None else n), xo, ro, np.full_like(xo, n))
    return pd.DataFrame(vals.reshape(X.shape), index=pd.Index(xs, name="x"),
                        columns=pd.Index(rs, name=f"t_x (opportunity, {unit}s)"))


def example_customers(stage, n: int = 4) -> list:
    """``n`` repeat buyers spread evenly over the full-period frequency range of the chosen model's summary
    (:func:`helpers.aggregates_log.example_ids`: sorted by ``x`` then ``t_x``; fewer when there are fewer
    repeat buyers).  The stage holds the purchase days of the picks for up to
    :data:`helpers.aggregates_log.MAX_EXAMPLES` customers."""
    from .aggregates_log import example_ids  # noqa: PLC0415

    return example_ids(stage.summary_of(stage.model_name, "full"), n)


def example_histories(stage, days: pd.DataFrame, picks: list, show_raw: bool = False) -> dict:
    """P(alive) over time of the customers ``picks`` (:func:`example_customers`), under the chosen model's
    full-period fit (identifiers pseudonymised unless ``show_raw``).

    Continuous models: :func:`helpers.value.p_alive_history` (weekly grid and purchase days).  Discrete-time
    models: P(alive) at the end of each opportunity period given the history up to it; the purchases are then
    the ends of the periods with a transaction.

    Parameters
    ----------
    days : DataFrame
        ``customer_id`` and ``day``: the purchase days of (at least) the picked customers, fetched by id
        from the stage or through the configured engine (:func:`helpers.aggregates_log.customer_days`).

    Returns
    -------
    dict with ``histories`` (name -> DataFrame with ``date``, ``p_alive``), ``purchases`` (name -> dates) and
    ``label`` (the model's).
    """
    from .report import pseudonymise  # noqa: PLC0415

    summary = stage.summary_of(stage.model_name, "full")
    out = {"histories": {}, "purchases": {}, "label": stage.model.label}
    if not picks:
        return out
    names = dict(zip(picks, picks if show_raw else pseudonymise(picks)))
    sub = days[days["customer_id"].isin(picks)]
    model, discrete = stage.model, stage.model_summaries.get(stage.model_name) == "discrete"
    for cid in picks:
        dates = sub.loc[sub["customer_id"] == cid, "day"]
        label = f"{names[cid]} (x={int(summary.loc[cid, 'x'])})"
        if not discrete:
            h = value.p_alive_history(model, dates, end=stage.observation_end, time_unit=model.time_unit)
        else:
            freq = stage.discrete_period
            p = np.unique(dates.dt.to_period(freq).array.asi8)
            grid = np.arange(p[0], pd.Period(stage.observation_end, freq=freq).ordinal + 1)
            n_opp = (grid - p[0]).astype(float)
            x_so_far = np.searchsorted(p, grid, side="right") - 1.0
            last = p[np.searchsorted(p, grid, side="right") - 1]
            t_x = (last - p[0]).astype(float)
            h = pd.DataFrame({"date": pd.PeriodIndex.from_ordinals(grid, freq=freq).end_time.normalize(),
                              "p_alive": model.p_alive(x_so_far, t_x, n_opp)})
            dates = pd.Series(pd.PeriodIndex.from_ordinals(p, freq=freq).end_time.normalize())  # periods with one
        out["histories"][label] = h
        out["purchases"][label] = dates.dt.normalize().drop_duplicates()
    return out


def bootstrap_method_note(boot) -> str:
    """How the bootstrap resampled, when it did not resample every customer (empty otherwise): the reports
    say when a large base is bootstrapped by smaller rescaled resamples (:func:`helpers.value.bootstrap`)."""
    n, m = getattr(boot, "n_customers", None), getattr(boot, "resample_size", None)
    if not n or not m or m >= n:
        return ""
    return (f"On this base of {n:,} customers each resample drew {m:,} customers (with replacement), and the "
            f"re-fitted parameters' deviations from the estimates were scaled by sqrt({m:,}/{n:,}) to the spread "
            "of a resample of every customer (an m-out-of-n bootstrap); each resample's equity was estimated "
            f"from a fixed sample of about {value._EQUITY_CELLS:,} (x, T) groups of customers, each valued exactly.")


def spend_check(stage) -> dict | None:
    """The Gamma-Gamma model on the calibration period and its holdout check (None without amounts).

    For customers who bought in both periods: the model's E[M | x, m_x] and the naive forecast (their
    calibration average) against what they spent per purchase day in the holdout.

    Returns
    -------
    dict with ``facts`` (Series), ``corr`` (frequency-spend correlation among repeat buyers), ``threshold``,
    ``mae_model``, ``mae_naive``, ``warnings``.
    """
    g = stage.spend_cal
    if g is None:
        return None
    cal = stage.cal
    both = cal[(cal["x"] > 0) & (cal["m_x"] > 0) & (cal["x_star"] > 0)]
    mae_model = value.holdout_errors(both["m_x_star"], g.expected_spend(both["x"], both["m_x"]))["mae"] \
        if len(both) else float("nan")
    mae_naive = value.holdout_errors(both["m_x_star"], both["m_x"])["mae"] if len(both) else float("nan")
    threshold = float(stage.inputs.get("corr_threshold", 0.3))
    facts = pd.Series({
        "repeat buyers used": int(g.n_customers),
        "excluded: average spend not positive": int(g.n_excluded_nonpositive),
        "corr(frequency, average spend)": float(g.frequency_spend_corr),
        "warning threshold": threshold,
        "population mean spend per purchase E[M]": float(g.population_mean_spend()),
        "customers buying in both periods": int(len(both)),
        "holdout MAE of spend per purchase, Gamma-Gamma": mae_model,
        "holdout MAE of spend per purchase, naive": mae_naive,
    }, dtype=object)
    return {"facts": facts, "corr": float(g.frequency_spend_corr), "threshold": threshold,
            "mae_model": mae_model, "mae_naive": mae_naive, "warnings": list(stage.spend_warnings)}


def value_concentration(stage, clv: pd.Series | None = None, top_share: float = 0.1) -> dict:
    """How concentrated the customer value is, and whether ranking by the past picks the same customers.

    The past score is past spend with amounts, else past purchase days (``x + 1``).

    Returns
    -------
    dict with ``shares`` (top 1/10/20% share of the value, ranked by CLV and by the past score),
    ``curves`` (for :func:`helpers.plots.concentration`), ``overlap`` (share of the top ``top_share`` by
    CLV that is also in the top by the past score), ``past`` (the score's name).
    """
    clv = stage.valuation["clv"] if clv is None else clv
    if stage.has_amounts:
        past, past_name = stage.full["total_spend"], "past spend"
    else:
        past, past_name = stage.full["x"] + 1, "past purchase days"
    both = _conc.value_and_score(clv, past, shares=(0.01, 0.1, 0.2), overlap_share=top_share)  # one sort each
    names = {"value": "ranked by CLV", "score": f"ranked by {past_name}"}
    return {"shares": both["shares"].rename(columns=names), "curves": {names[k]: c for k, c in both["curves"].items()},
            "overlap": both["overlap"], "past": past_name}


def top_customers(stage, boot, n: int = 10, show_raw: bool = False) -> pd.DataFrame:
    """The ``n`` most valuable customers: CLV with its bootstrap interval, P(alive) and their history."""
    from .report import display_ids  # noqa: PLC0415

    v = stage.valuation
    # the n largest CLVs first (ties in the summary's order), then their columns: nothing per customer is built
    ids = v["clv"].sort_values(ascending=False, kind="mergesort").index[:n]
    full = stage.full.loc[ids]
    summary = stage.summary_of(stage.model_name, "full").reindex(ids)
    interval = boot.customer_clv(ids)
    unit = period_name(stage.model_time_unit)
    what = "transactions" if stage.model_summaries.get(stage.model_name) == "discrete" else "repeat purchase days"
    cols = {"CLV": v["clv"].loc[ids], "lower": interval["lower"], "upper": interval["upper"],
            "P(alive)": v["p_alive"].loc[ids], f"{what} x": summary["x"], f"recency t_x ({unit}s)": summary["t_x"],
            f"age T ({unit}s)": summary["T"]}
    if stage.has_amounts:
        cols["past spend"] = full["total_spend"]
    return display_ids(pd.DataFrame(cols, index=ids), show_raw=show_raw)


def fit_results(stage, period: str = "cal") -> dict:
    """What ``results.json`` records of every fit: ``{name: {label, summary, params, se, log_likelihood, bic,
    converged, n_customers, time_unit[, k_choice]}}`` (the CNBD-k models report ``k`` among their params)."""
    fits = stage.fits_cal if period == "cal" else stage.fits_full
    out = {}
    for name, f in fits.items():
        out[name] = {"label": f.label, "summary": stage.model_summaries.get(name, "continuous"), "params": f.params,
                     "se": f.se, "log_likelihood": f.log_likelihood, "bic": f.bic, "converged": f.converged,
                     "n_customers": f.n_customers, "time_unit": f.time_unit}
        if k_choice(f):
            out[name]["k_choice"] = k_choice(f)
    return out


def holdout_results(stage) -> dict:
    """The holdout comparison for ``results.json``: ``basis``, ``actual_total`` and, per model and
    ``baseline``, ``predicted_total``, ``total_error_pct``, ``mae``, ``rmse`` and ``ranking.<name>.<metric>``."""
    c = stage.comparison
    per = {col: {n: c.loc[n, col] for n in c.index} for col in ("predicted_total", "total_error_pct", "mae", "rmse")}
    return {"basis": stage.holdout_basis, "actual_total": float(c["actual_total"].iloc[0]), **per,
            "ranking": {n: {m: c.loc[n, m] for m in RANKING_METRICS} for n in c.index}}


def spend_results(stage, spend: dict) -> dict:
    """The Gamma-Gamma fits and checks for ``results.json`` (``spend`` from :func:`spend_check`)."""
    g = stage.spend_cal
    return {"params": g.params, "se": g.se, "frequency_spend_corr": g.frequency_spend_corr,
            "n_used": g.n_customers, "n_excluded_nonpositive": g.n_excluded_nonpositive,
            "holdout_mae": {"gamma_gamma": spend["mae_model"], "naive": spend["mae_naive"]},
            "full_period_params": stage.spend_full.params}
