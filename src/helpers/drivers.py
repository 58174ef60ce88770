"""What drives purchasing and attrition: the covariate analysis behind notebook 06-drivers (issue #13).

From the run's stage (:mod:`helpers.stage`: the summaries, the fitted models,
the holdout predictions, the valuation) and the configuration's covariate
tables (:mod:`helpers.covariates_data`, validated in the pre-flight),
:func:`analyse` fits every registered model that the stage fitted and that
has a covariate parameterisation (:func:`helpers.models.covariates.fit_covariate_model`)
on the calibration period and on the full period, and optionally the
Pareto/NBD with time-varying covariates
(:func:`helpers.models.pareto_nbd_dynamic.fit_pareto_nbd_dynamic`) on the
calibration period.  The tables:

* :func:`coefficient_table`: each coefficient as a multiplier of the mean
  purchase rate and of the mean lifetime (or the model's attrition quantity)
  per unit of the covariate, with its 95% interval (the fit's ``multipliers``);
* :func:`lr_table`: the likelihood-ratio test of the covariates against the
  same model without them, fitted on the same calibration customers;
* :func:`holdout_table`: the holdout forecast with and without covariates on
  the stage's calibration customers, customer-level MAE
  (:func:`helpers.validation.holdout_comparison`) and the ranking metrics
  (:func:`helpers.diagnostics.ranking_table`);
* :func:`clv_by_group`: CLV per customer by covariate group, under the stage's
  valuation (the chosen model without covariates) and under the full-period
  covariate fit, both valued by :func:`helpers.value.clv` with the stage's
  valuation settings and value basis.

The sentences that close the report come from :mod:`helpers.claims`
(:func:`~helpers.claims.multiplier_effect`, :func:`~helpers.claims.covariates_improve_fit`,
:func:`~helpers.claims.holdout_gain`, :func:`~helpers.claims.value_differs_by_group`,
:func:`~helpers.claims.covariates_configured`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Drivers", "analyse", "coefficient_table", "lr_table", "holdout_table", "clv_by_group",
           "covariate_clv", "results", "quantity_label", "strongest", "group_means", "group_ratios", "truth_table",
           "DYNAMIC"]

#: Results key of the Pareto/NBD with time-varying covariates.
DYNAMIC = "pareto_nbd_dynamic"


@dataclass
class Drivers:
    """The covariate analysis of one run (see :func:`analyse`).

    Attributes
    ----------
    covariates : CovariateData or None
        None when the configuration names no covariates.
    fits_cal, fits_full : dict
        Model name -> CovariateFit on the stage's calibration / full-period summary.
    nocov_cal : dict
        Model name -> the same model without covariates on the same calibration customers (the fit the
        covariate fit started from; its log-likelihood is the LR test's null).
    dynamic_fit : DynamicCovariateFit or None
        The time-varying Pareto/NBD (calibration period), when asked for and the configuration has
        time-varying covariates.
    dynamic_note : str
        Why there is no time-varying fit, or how long it took.
    errors : dict
        Model name -> why its covariate fit failed (the analysis goes on without it).
    skipped : dict
        Stage models without a covariate parameterisation -> why they are not here.
    main : str or None
        The model the headlines report: Pareto/NBD when it was fitted (CLVTools' parameterisation, whose
        coefficients multiply the mean purchase rate and the mean lifetime), else the stage's chosen
        model, else the first fitted one.
    predictions : DataFrame
        Holdout purchases per calibration customer: ``actual``, ``baseline``, each model without covariates
        (the stage's) and ``<model>+covariates``.
    seconds : dict
        Seconds per fit.
    spend_fit : CovariateFit or None
        Gamma-Gamma with the spend covariates on the full period (with amounts and spend covariates).
    spend_note : str
        Why there is no spend fit when spend covariates are configured.
    """

    covariates: Any
    fits_cal: dict = field(default_factory=dict)
    fits_full: dict = field(default_factory=dict)
    nocov_cal: dict = field(default_factory=dict)
    dynamic_fit: Any = None
    dynamic_note: str = ""
    errors: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    main: str | None = None
    predictions: pd.DataFrame | None = None
    seconds: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    spend_fit: Any = None
    spend_note: str = ""

    @property
    def has_covariates(self) -> bool:
        return self.covariates is not None

    @property
    def main_fit(self):
        return self.fits_cal.get(self.main) if self.main else None


def quantity_label(model_name: str, process: str, params: dict | None = None) -> str:
    """Short name of what a coefficient multiplies: ``"mean purchase rate"``, ``"mean lifetime"``, ...

    Pareto/NBD (also with time-varying covariates): the lifetime distribution scales with ``beta``, so the
    multiplier applies to every quantile and to the mean where it is finite (``s > 1``); with ``s <= 1``
    (``params``) the mean lifetime is infinite and the label is the median lifetime.
    """
    from .models.covariates import _get  # noqa: PLC0415

    if model_name in (DYNAMIC, "pareto_nbd") and process == "attrition":
        finite = params is not None and float(params.get("s", 0.0)) > 1.0
        return "mean lifetime" if finite else "median lifetime"
    if model_name == DYNAMIC:
        return "mean purchase rate"
    text = _get(model_name).covariate_quantities.get(process, process)
    return text.split(" E[")[0].split(" (")[0].split(",")[0]


def _fit_quietly(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def analyse(stage, cfg, covariates=None, models: list[str] | None = None, fit_dynamic: bool = False,
            transactions: pd.DataFrame | None = None) -> Drivers:
    """Fit the covariate models of a run and predict its holdout.

    Parameters
    ----------
    stage : Stage
        The run's stage (:func:`helpers.stage.get_stage`).
    cfg : Config
        The configuration (its ``data.covariates``).
    covariates : CovariateData, optional
        Already loaded covariates; default: loaded and validated here
        (:func:`helpers.covariates_data.covariates_for_config`, the rules of the pre-flight) for the
        stage's customers.
    models : list of str, optional
        Models to fit with covariates; default every model the stage fitted on the calibration period that
        has a covariate parameterisation (:func:`helpers.models.covariates.covariate_models`).
    fit_dynamic : bool
        Also fit the Pareto/NBD with time-varying covariates (when the configuration has a dynamic table),
        started from the static Pareto/NBD fit.
    transactions : DataFrame, optional
        The validated log (needed for the time-varying model; loaded when omitted).

    Returns
    -------
    Drivers
        Without covariates in the configuration: ``covariates`` None and nothing fitted.
    """
    from .covariates_data import covariates_for_config  # noqa: PLC0415
    from .models.covariates import covariate_models, fit_covariate_model  # noqa: PLC0415

    if not cfg.has_covariates:
        return Drivers(covariates=None)
    cv = covariates if covariates is not None else covariates_for_config(
        cfg, stage.full["first_purchase"], stage.observation_end)
    out = Drivers(covariates=cv, labels=dict(stage.labels))
    capable = set(covariate_models())
    names = models if models is not None else [n for n in stage.fits_cal if n in capable]
    out.skipped = {n: "no covariate parameterisation is implemented for this model" for n in stage.fits_cal
                   if n not in capable}
    cal, full = stage.cal, stage.full
    if not (cv.processes.get("purchase") or cv.processes.get("attrition")):
        out.errors = {n: "no static covariate acts on the purchase or attrition process" for n in names}
        names = []
    for name in names:
        t0 = time.perf_counter()
        try:
            kw = dict(constrain_equal=[c for c in cv.constrain_equal], penalizer=cv.penalizer,
                      time_unit=stage.time_unit)
            fit = _fit_quietly(fit_covariate_model, name, cal, cv.Z("purchase", cal.index),
                               cv.Z("attrition", cal.index), **kw)
            out.fits_cal[name] = fit
            out.nocov_cal[name] = fit.nocov
            out.fits_full[name] = _fit_quietly(fit_covariate_model, name, full, cv.Z("purchase", full.index),
                                               cv.Z("attrition", full.index), **kw)
        except Exception as e:  # noqa: BLE001  (a model that fails is reported; the others go on)
            out.errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0].split('. ')[0]}"
            out.fits_cal.pop(name, None)
        out.seconds[name] = round(time.perf_counter() - t0, 2)
        out.labels.setdefault(name, stage.labels.get(name, name))
    fitted = list(out.fits_cal)
    # the headline model: Pareto/NBD (CLVTools' parameterisation; its coefficients multiply the mean purchase
    # rate and the mean lifetime), else the run's model, else the first fitted
    if "pareto_nbd" in out.fits_cal:
        out.main = "pareto_nbd"
    elif stage.model_name in out.fits_cal:
        out.main = stage.model_name
    elif fitted:
        out.main = fitted[0]
    # the spend model with covariates (the Gamma-Gamma scale), when the log has amounts
    if cv.processes.get("spend") and stage.has_amounts:
        t0 = time.perf_counter()
        try:
            out.spend_fit = _fit_quietly(fit_covariate_model, "gamma_gamma", full, Z_spend=cv.Z("spend", full.index),
                                         penalizer=cv.penalizer)
        except Exception as e:  # noqa: BLE001
            out.errors["gamma_gamma"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        out.seconds["gamma_gamma"] = round(time.perf_counter() - t0, 2)
        out.labels["gamma_gamma"] = "Gamma-Gamma"
    elif cv.processes.get("spend"):
        out.spend_note = "the log has no amounts (no amount column is mapped), so there is no spend to model"
    # holdout predictions of the calibration fits, on the stage's calibration customers
    pred = stage.predictions.copy()
    t_star = float(cal["t_star"].iloc[0])
    for name, fit in out.fits_cal.items():
        with np.errstate(all="ignore"):
            p = fit.expected_purchases(t_star, cal.reindex(pred.index), Z_purchase=cv.Z("purchase", pred.index),
                                       Z_attrition=cv.Z("attrition", pred.index))
        pred[f"{name}+covariates"] = np.asarray(p, float)
    if fit_dynamic:
        _dynamic(out, stage, cfg, cv, transactions, pred)
    elif cv.dynamic is not None:
        out.dynamic_note = "the time-varying Pareto/NBD was not fitted in this run (notebook parameter fit_dynamic: false)"
    else:
        out.dynamic_note = "the configuration has no time-varying covariates (no data.covariates.dynamic table)"
    out.predictions = pred
    return out


def _dynamic(out: Drivers, stage, cfg, cv, transactions, pred) -> None:
    """Fit the time-varying Pareto/NBD on the calibration period and predict the holdout (sets ``dynamic_*``)."""
    from .config import load_data  # noqa: PLC0415
    from .models.pareto_nbd_dynamic import fit_pareto_nbd_dynamic, prepare_dynamic_data  # noqa: PLC0415

    if cv.dynamic is None:
        out.dynamic_note = "the configuration has no time-varying covariates (no data.covariates.dynamic table)"
        return
    procs = {p: cv.dynamic_processes.get(p, []) for p in ("purchase", "attrition")}
    if not (procs["purchase"] or procs["attrition"]):
        out.dynamic_note = "no covariate acts on the purchase or attrition process of the time-varying model"
        return
    tx = transactions if transactions is not None else load_data(cfg).transactions
    t0 = time.perf_counter()
    try:
        table = cv.dynamic.rename(columns={"period_start": "Cov.Date"})
        data = prepare_dynamic_data(tx, table, stage.calibration_end, purchase_covariates=procs["purchase"],
                                    attrition_covariates=procs["attrition"], time_unit=stage.time_unit,
                                    holdout_end=stage.observation_end)
        # start from the static Pareto/NBD fit where there is one (CLVTools' vignette start otherwise)
        init = None
        static = out.fits_cal.get("pareto_nbd")
        if static is not None:
            init = dict(static.params)
            for p in ("purchase", "attrition"):
                init[p] = {c: static.coefficients.get(p, {}).get(c, 0.0) for c in procs[p]}
        fit = _fit_quietly(fit_pareto_nbd_dynamic, data=data, initial=init, constrain_equal=cv.constrain_equal,
                           penalizer=cv.penalizer)
        t_star = float(stage.cal["t_star"].iloc[0])
        p = pd.Series(np.asarray(fit.expected_purchases(t_star, data), float), index=data.customers)
        pred[f"{DYNAMIC}+covariates"] = p.reindex(pred.index).to_numpy()
        out.dynamic_fit = fit
        out.labels[DYNAMIC] = fit.label if hasattr(fit, "label") else "Pareto/NBD, time-varying covariates"
        secs = time.perf_counter() - t0
        out.seconds[DYNAMIC] = round(secs, 2)
        out.dynamic_note = "fitted on the calibration period"
        bound = list((getattr(fit, "extra", {}) or {}).get("at_bound", []))
        if bound:
            out.dynamic_note += (f"; {', '.join(bound)} stopped on the bound |gamma| <= "
                                 f"{(fit.extra or {}).get('gamma_bound', 10):g}: the likelihood keeps rising as "
                                 f"{'it grows' if len(bound) == 1 else 'they grow'} in size (no finite maximum), so "
                                 f"{'it has' if len(bound) == 1 else 'they have'} no standard error")
    except Exception as e:  # noqa: BLE001
        out.errors[DYNAMIC] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        out.dynamic_note = f"the time-varying Pareto/NBD could not be fitted ({out.errors[DYNAMIC]})"


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------

def _all_fits(d: Drivers) -> dict:
    fits = dict(d.fits_cal)
    if d.dynamic_fit is not None:
        fits[DYNAMIC] = d.dynamic_fit
    return fits


def coefficient_table(d: Drivers, name: str, level: float = 0.95) -> pd.DataFrame:
    """One row per (process, covariate) of model ``name`` (``"gamma_gamma"``: the spend fit): the coefficient,
    its standard error and p-value (Wald), what it multiplies and the multiplier per unit of the covariate with
    its ``level`` interval (undefined, NaN, where the quantity is infinite)."""
    fit = d.spend_fit if name == "gamma_gamma" else _all_fits(d)[name]
    m = fit.multipliers(level=level).copy()
    m["quantity"] = [quantity_label(name, p, fit.params) for p in m["process"]]
    # a multiplier of an infinite quantity (BG/NBD's purchase occasions with a <= 1) is undefined, not 0 or inf
    bad = ~(np.isfinite(m["multiplier"].to_numpy(float)) & (m["multiplier"].to_numpy(float) > 0))
    m.loc[bad, ["multiplier", "lower", "upper"]] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = m["gamma"].to_numpy(float) / m["se"].to_numpy(float)
    m["p_value"] = 2 * stats.norm.sf(np.abs(zval))
    cols = ["process", "covariate", "gamma", "se", "p_value", "quantity", "multiplier", "lower", "upper"]
    return m[cols].reset_index(drop=True)


def lr_table(d: Drivers) -> pd.DataFrame:
    """Per model: log-likelihood without and with covariates (same calibration customers), the LR statistic,
    its degrees of freedom and p-value (chi-square), AIC of both."""
    rows = []
    for name, fit in _all_fits(d).items():
        if name == DYNAMIC:
            nocov = d.nocov_cal.get("pareto_nbd")
            if nocov is None:
                continue
        else:
            nocov = d.nocov_cal[name]
        test = fit.lr_test(nocov)
        k0 = len(nocov.params)
        rows.append({"model": name, "label": d.labels.get(name, name),
                     "log_likelihood_without": float(nocov.log_likelihood),
                     "log_likelihood_with": float(fit.log_likelihood), "statistic": test["statistic"],
                     "df": int(test["df"]), "p_value": test["p_value"],
                     "aic_without": -2 * float(nocov.log_likelihood) + 2 * k0, "aic_with": float(fit.aic)})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def holdout_table(d: Drivers) -> pd.DataFrame:
    """The holdout forecast of each model without and with covariates (and the naive baseline): totals,
    customer-level MAE and RMSE (:func:`helpers.validation.holdout_comparison`) and the ranking metrics
    (:func:`helpers.diagnostics.ranking_table`), on the stage's calibration customers."""
    from . import diagnostics, validation  # noqa: PLC0415

    pred = d.predictions
    fits = {}
    for name, fit in _all_fits(d).items():
        base = "pareto_nbd" if name == DYNAMIC else name
        if base in pred.columns and base in d.nocov_cal:
            fits[base] = d.nocov_cal[base]
        fits[f"{name}+covariates"] = fit
    cols = [c for c in fits if c in pred.columns]
    sub = pred[["actual", *cols, "baseline"]]
    table = validation.holdout_comparison({c: fits[c] for c in cols}, sub)
    table = table.join(diagnostics.ranking_table(sub["actual"], sub[[*cols, "baseline"]]))
    table.insert(0, "label", [("naive baseline" if c == "baseline" else d.labels.get(DYNAMIC, c)
                               if c.startswith(DYNAMIC) else
                               f"{d.labels.get(c.split('+')[0], c)}" + (" with covariates" if "+" in c else ""))
                              for c in table.index])
    return table


def _value_fn(stage):
    """The stage's spend basis: (spend fit, margin) as :func:`helpers.stage._value` values customers."""
    from . import value  # noqa: PLC0415

    v = stage.valuation_settings
    if stage.value_basis == "spend model":
        return stage.spend_full, stage.margin
    if stage.value_basis == "value per purchase":
        return value.ConstantSpend(float(v["value_per_purchase"])), stage.margin
    return value.ConstantSpend(1.0), 1.0


@dataclass
class _GroupModel:
    """A frequency model at one covariate group's parameters, in the form :func:`helpers.value.clv` takes."""

    model: Any
    theta: tuple
    time_unit: str | None


def covariate_clv(d: Drivers, stage, name: str | None = None) -> pd.Series:
    """CLV per customer under the full-period covariate fit of ``name`` (default the main model): each
    covariate group valued by :func:`helpers.value.clv` at its parameters ``theta_0 exp(sign gamma' z)``
    (:func:`helpers.models.covariates.per_customer_theta`), with the stage's valuation settings and spend."""
    from . import value  # noqa: PLC0415
    from .models.covariates import per_customer_theta  # noqa: PLC0415

    name = name or d.main
    fit = d.fits_full[name]
    full = stage.full
    spend, margin = _value_fn(stage)
    summary = full if "m_x" in full.columns else full.assign(m_x=0.0)
    Zd = {p: d.covariates.Z(p, full.index) for p in ("purchase", "attrition") if fit.coefficients.get(p)}
    Zd = {p: z[list(fit.coefficients[p])].to_numpy(float) for p, z in Zd.items() if z is not None}
    gam = {p: np.array(list(fit.coefficients[p].values()), float) for p in Zd}
    allZ = np.column_stack(list(Zd.values())) if Zd else np.zeros((len(full), 0))
    _, group = np.unique(allZ, axis=0, return_inverse=True)
    group = group.ravel()
    out = pd.Series(np.nan, index=full.index, name="clv")
    for g in range(int(group.max()) + 1 if len(group) else 0):
        rows = np.flatnonzero(group == g)
        th = per_customer_theta(fit.model, fit.theta, gam, {p: z[rows[:1]] for p, z in Zd.items()})
        th = tuple(float(np.asarray(v).ravel()[0]) for v in th)
        gm = _GroupModel(fit.model, th, stage.time_unit)
        with np.errstate(all="ignore"):
            out.iloc[rows] = value.clv(gm, spend, summary.iloc[rows], horizon_months=stage.horizon_months,
                                       monthly_discount_rate=stage.monthly_discount_rate, margin=margin,
                                       time_unit=stage.time_unit).to_numpy()
    return out


def clv_by_group(d: Drivers, stage, max_levels: int = 10) -> pd.DataFrame:
    """Customers, mean CLV and share of the equity by covariate group (each static covariate's levels;
    a numeric covariate with more than ``max_levels`` values in quartiles), under the stage's valuation
    (the chosen model without covariates) and under the main model's full-period covariate fit."""
    from . import report  # noqa: PLC0415

    groups = d.covariates.groups()
    if groups.empty:
        return pd.DataFrame()
    base = stage.valuation["clv"].reindex(groups.index)
    with_cov = covariate_clv(d, stage) if d.main in d.fits_full else None
    rows = []
    for col in groups.columns:
        g = groups[col]
        if col not in d.covariates.references and g.nunique() > max_levels:
            g = pd.qcut(g.astype(float), 4, duplicates="drop").astype(str)
        for level in sorted(g.unique(), key=lambda v: (isinstance(v, str), v)):
            mask = (g == level).to_numpy()
            shown = level if isinstance(level, str) else report.fmt_number(level)
            row = {"covariate": col, "group": shown, "customers": int(mask.sum()),
                   "share_customers": float(mask.mean()), "mean_clv": float(base[mask].mean()),
                   "share_equity": float(base[mask].sum() / base.sum()) if base.sum() else np.nan}
            if with_cov is not None:
                wc = with_cov.reindex(groups.index)
                row["mean_clv_covariates"] = float(wc[mask].mean())
                row["share_equity_covariates"] = float(wc[mask].sum() / wc.sum()) if wc.sum() else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------

def results(d: Drivers, stage) -> dict:
    """The drivers results: ``models.<model>`` (each fit's ``to_results()``: params, coefficients.purchase,
    coefficients.attrition, se, log_likelihood, aic, bic, n_customers), ``lr_test.<model>`` (statistic, df,
    p_value), ``holdout.<column>`` (mae, total_error_pct and the ranking metrics), the reference levels, the
    errors and the time-varying note."""
    if not d.has_covariates:
        return {"covariates": {"configured": False}}
    models = {}
    for name, fit in _all_fits(d).items():
        r = fit.to_results()
        r["coefficients"] = {p: r["coefficients"].get(p, {}) for p in ("purchase", "attrition")}
        r["label"] = d.labels.get(name, name)
        r["full_period"] = d.fits_full[name].to_results() if name in d.fits_full else None
        models[name] = r
    lr = lr_table(d)
    ho = holdout_table(d) if d.fits_cal or d.dynamic_fit is not None else pd.DataFrame()
    cv = d.covariates
    return {
        "covariates": {"configured": True, "static": list(cv.static.columns) if cv.static is not None else [],
                       "time_varying": cv.time_varying, "processes": cv.processes,
                       "references": {c: {"reference": i["reference"], "chosen": i["chosen"]}
                                      for c, i in cv.references.items()},
                       "sources": cv.sources, "sha256": cv.sha256},
        "main_model": d.main,
        "models": models,
        "lr_test": {n: {"statistic": float(r["statistic"]), "df": int(r["df"]), "p_value": float(r["p_value"])}
                    for n, r in lr.iterrows()},
        "holdout": {n: {k: r[k] for k in ("mae", "rmse", "total_error_pct", "spearman", "top_decile_capture",
                                           "gini")} for n, r in ho.iterrows()},
        "spend_model": d.spend_fit.to_results() if d.spend_fit is not None else {"note": d.spend_note},
        "errors": d.errors, "skipped": d.skipped, "dynamic_note": d.dynamic_note,
    }


def strongest(table: pd.DataFrame, process: str):
    """The row of ``table`` (:func:`coefficient_table`) with the largest effect on ``process``: the largest
    ``|log multiplier|`` among defined multipliers; None when there is none."""
    t = table[(table["process"] == process)].copy()
    t = t[np.isfinite(t["multiplier"].to_numpy(float)) & (t["multiplier"] > 0)]
    if t.empty:
        return None
    return t.loc[t.index[np.abs(np.log(t["multiplier"].to_numpy(float))).argmax()]]


def group_means(table: pd.DataFrame, covariate: str, column: str = "mean_clv") -> dict:
    """``{group: mean CLV}`` of one covariate in :func:`clv_by_group`'s table."""
    t = table[table["covariate"] == covariate]
    return dict(zip(t["group"], t[column]))


def group_ratios(table: pd.DataFrame, column: str = "mean_clv") -> dict:
    """Covariate -> highest over lowest group mean of ``column`` in :func:`clv_by_group`'s table (NaN when the
    lowest is not positive)."""
    out = {}
    for cov, t in table.groupby("covariate", sort=False):
        lo, hi = float(t[column].min()), float(t[column].max())
        out[cov] = hi / lo if lo > 0 else float("nan")
    return out


def truth_table(d: Drivers, simulate: dict | None) -> pd.DataFrame | None:
    """For a configuration simulated with known coefficients (a ``simulate`` section with ``model`` and
    ``gammas``, :func:`helpers.simulate.simulate_with_covariates`): the true coefficients against the estimates
    of that model's full-period covariate fit, with ``z = (estimate - truth) / se``; None otherwise."""
    if not simulate or "gammas" not in simulate or simulate.get("model") not in d.fits_full:
        return None
    fit = d.fits_full[simulate["model"]]
    rows = []
    for proc, truth in simulate["gammas"].items():
        for cov, g in truth.items():
            est = fit.coefficients.get(proc, {}).get(cov, np.nan)
            se = fit.se.get(f"{proc}.{cov}", np.nan)
            rows.append({"process": proc, "covariate": cov, "truth": float(g), "estimate": est, "se": se,
                         "z": (est - float(g)) / se if se and np.isfinite(se) else np.nan})
    return pd.DataFrame(rows)
