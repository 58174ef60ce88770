"""The shared analysis stage of a run: one model of the customer base that every notebook reads.

A run computes the stage once, with the configured engine, and writes it into
``<run>/stage/`` (Parquet tables + ``stage.json``); every notebook reads it
back with :func:`get_stage`, so all reports rest on the same summaries, fits,
chosen model and customer values.  A notebook opened on its own in JupyterLab
gets the same stage from a cache keyed by configuration, data SHA-256 and code
version (``reports/.cache/stage/<key>/``), computed on first use.

What the stage holds (see :class:`Stage`):

* the data-quality table and facts of the validated log;
* the calibration/holdout summary (``cal``) and the full-period summary (``full``);
  on a discrete-time log (``data.opportunity_period`` set) also their
  discrete-time versions (``cal_discrete``, ``full_discrete``,
  :func:`helpers.summary_discrete.discrete_calibration_holdout`);
* a calibration fit of every registered frequency model that applies to the
  log (:func:`applicable_models`): the continuous-time models on the
  continuous summary, the discrete-time models (BG/BB) on the discrete one; a
  model that fails to fit is recorded with its error (``fit_errors``), one that
  does not apply with the reason (``skipped``).  Statistics a model declares in
  ``summary_columns`` beyond ``x, t_x, T`` (``litt`` of the CNBD-k models) are
  computed once here from the log (pandas engine; otherwise the model is fitted
  on ``x, t_x, T`` alone and ``fit_notes`` says so);
* their holdout predictions and the comparison table
  (:func:`helpers.validation.holdout_comparison` plus the ranking metrics of
  :mod:`helpers.diagnostics`, for every model and the naive baseline).  On a
  discrete-time log every model predicts the same quantity, the transactions
  in the holdout opportunities (at most one per opportunity): BG/BB from the
  discrete summary, the continuous models as expected purchase days in the
  holdout's length of time;
* the chosen model: configured (``model: <name>``) or chosen by the holdout
  rule over every fitted model (``model: auto``,
  :func:`helpers.validation.recommend_model`), with the reason;
* a full-period fit of every model; the Gamma-Gamma spend model (calibration
  and full period) when the log has amounts;
* the valuation of every customer with the chosen model's full-period fit and
  the ``valuation`` settings: expected purchases over the horizon, P(alive),
  CLV (in money with amounts or ``value_per_purchase``, else in discounted
  purchases) and the customer equity.

Usage in a notebook::

    from helpers.stage import get_stage
    stage = get_stage(config, stage_dir)   # stage_dir: "" unless the runner passes it
    stage.model.params, stage.equity, stage.units, stage.valuation["clv"]
    boot = stage.bootstrap(n_boot=50, seed=42)   # the equity's interval; boot.equity["estimate"] == stage.equity
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import aggregates, aggregates_log
from .config import PROJECT_ROOT, Config, ConfigError, ensure_data, load_config
from .data import TransactionData, file_sha256, release_arrow_memory
from .provenance import code_version, source_sha256

__all__ = [
    "Stage",
    "StageError",
    "compute_stage",
    "get_stage",
    "stage_inputs",
    "stage_key",
    "frequency_model_names",
    "applicable_models",
    "default_cache_dir",
    "STAGE_FORMAT",
]

#: Version of the on-disk layout of a stage folder.
STAGE_FORMAT = 4

#: Registry entries that are spend models, not frequency models.
SPEND_MODELS = ("gamma_gamma",)

#: The tables of a stage folder (``<name>.parquet``), by attribute name.
TABLES = ("quality", "cal", "full", "predictions", "comparison", "valuation")
#: Tables only a discrete-time log has (None otherwise; no file).
OPTIONAL_TABLES = ("cal_discrete", "full_discrete")

#: Per-customer statistics beyond ``x, t_x, T`` that a model may declare in ``summary_columns``, and the
#: function (module, name) that computes each from a transaction log: ``f(transactions, end, time_unit)``.
STATISTICS = {"litt": ("helpers.models.cnbd_k", "litt_from_transactions")}


class StageError(RuntimeError):
    """The shared analysis stage could not be computed (e.g. the chosen model did not fit)."""


def frequency_model_names() -> tuple[str, ...]:
    """Names of the frequency models: ``helpers.models.registered_models`` if it exists, else ``MODELS``."""
    from . import models  # noqa: PLC0415  (heavy import, only when needed)

    reg = getattr(models, "registered_models", None)
    if reg is None:
        names = list(models.MODELS)
    else:
        found = reg() if callable(reg) else reg
        names = [getattr(n, "name", n) for n in (found.keys() if isinstance(found, dict) else found)]
    return tuple(str(n) for n in names if n not in SPEND_MODELS)


def applicable_models(discrete_period: str | None, engine: str = "pandas",
                      names: tuple[str, ...] | None = None,
                      candidates: tuple[str, ...] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Which registered frequency models the stage fits on a log, and on which summary.

    Continuous-time models apply to every log (on a discrete-time log they
    are fitted on its continuous summary, purchases counted per day);
    discrete-time models (``FrequencyModel.discrete``, BG/BB) apply only to a
    log declared discrete-time (``data.opportunity_period``), whose discrete
    summary the stage builds from the log in memory (pandas engine).

    ``candidates`` (the configuration's ``models:``) restricts the fits to
    the listed models; the others are skipped with that reason.

    Returns
    -------
    (applies, skipped)
        ``{name: "continuous" | "discrete"}`` (the summary each model is fitted
        on) and ``{name: reason}`` for the models that do not apply.
    """
    from .models import get_model  # noqa: PLC0415

    applies, skipped = {}, {}
    for name in names if names is not None else frequency_model_names():
        if candidates is not None and name not in candidates:
            skipped[name] = f"not among the configuration's models ({', '.join(candidates)})"
        elif not getattr(get_model(name), "discrete", False):
            applies[name] = "continuous"
        elif discrete_period is None:
            skipped[name] = ("a discrete-time model (x transactions in T transaction opportunities); the log is "
                             "not declared discrete-time (the configuration sets no data.opportunity_period)")
        elif engine != "pandas":
            skipped[name] = (f"a discrete-time model: its summary is built from the log in memory, which the "
                             f"{engine} engine does not keep (use engine: pandas)")
        else:
            applies[name] = "discrete"
    return applies, skipped


def default_cache_dir() -> Path:
    """``$CLV_LAB_STAGE_CACHE`` if set, else the project's ``reports/.cache/stage``."""
    env = os.environ.get("CLV_LAB_STAGE_CACHE")
    return Path(env) if env else PROJECT_ROOT / "reports" / ".cache" / "stage"


# ---------------------------------------------------------------------------
# JSON for fitted models (their dataclass fields)
# ---------------------------------------------------------------------------

def _encode(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        cls = type(v)
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _encode(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}}
    if isinstance(v, pd.Series):
        return {"__series__": {"index": [_encode(i) for i in v.index], "values": [_encode(x) for x in v.tolist()],
                               "name": _encode(v.name), "index_name": v.index.name}}
    if isinstance(v, pd.DataFrame):
        return {"__frame__": {"index": [_encode(i) for i in v.index], "columns": [_encode(c) for c in v.columns],
                              "data": [[_encode(x) for x in row] for row in v.itertuples(index=False, name=None)],
                              "index_name": v.index.name, "columns_name": v.columns.name}}
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        x = float(v)
        return x if math.isfinite(x) else {"__float__": repr(x)}
    if isinstance(v, pd.Timestamp):
        return {"__timestamp__": v.isoformat()}
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "__float__" in v:
        return float(v["__float__"])
    if "__timestamp__" in v:
        return pd.Timestamp(v["__timestamp__"])
    if "__series__" in v:
        s = v["__series__"]
        out = pd.Series([_decode(x) for x in s["values"]], index=[_decode(i) for i in s["index"]],
                        name=_decode(s["name"]))
        out.index.name = s["index_name"]
        return out
    if "__frame__" in v:
        f = v["__frame__"]
        out = pd.DataFrame([[_decode(x) for x in row] for row in f["data"]],
                           index=[_decode(i) for i in f["index"]], columns=[_decode(c) for c in f["columns"]])
        out.index.name, out.columns.name = f["index_name"], f["columns_name"]
        return out
    if "__dataclass__" in v:
        module, qualname = v["__dataclass__"].split(":")
        try:
            cls = getattr(importlib.import_module(module), qualname)
        except (ImportError, AttributeError):   # the class moved (e.g. models became a package)
            from . import models  # noqa: PLC0415

            cls = getattr(models, qualname.split(".")[-1])
        return cls(**{k: _decode(x) for k, x in v["fields"].items()})
    return {k: _decode(x) for k, x in v.items()}


# ---------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------

@dataclass(repr=False)
class Stage:
    """The shared analysis stage of a run (see the module docstring).

    Attributes
    ----------
    config_name : str
    key : str
        Cache key: configuration inputs, data SHA-256 and code version.
    inputs : dict
        What the stage was computed from (:func:`stage_inputs`).
    data_sha256 : str
    code_version : dict
        ``clv_lab``, ``git_commit``, ``source_sha256``.
    engine : str
        ``pandas``, ``duckdb`` or ``spark``.
    time_unit : str
        Unit of ``t_x``, ``T`` and every fit (``"D"``, ``"W"``, ``"M"``).
    calibration_end, observation_end : Timestamp
    has_amounts : bool
        Whether the log has amounts (then spend fits exist and values are money).
    quality : DataFrame
        The data-quality table (``check``, ``rows``, ``action``).
    facts : dict
        Headline counts: customers, purchase days, repeat purchase days,
        one-time buyers, dates, calibration and holdout counts, revenue (with amounts).
    cal : DataFrame
        Calibration summary with holdout columns (``x, t_x, T[, m_x], x_star, t_star, ...``).
    full : DataFrame
        Full-period summary (``x, t_x, T[, m_x, total_spend], first_purchase``).
    fits_cal, fits_full : dict of str -> FittedModel
        Every applicable frequency model fitted on the calibration period / the full period.
    fit_errors : dict
        ``{"cal": {name: message}, "full": {name: message}}`` for models that failed to fit
        (or whose holdout predictions were not finite).
    predictions : DataFrame
        Holdout purchases per calibration customer: ``actual``, one column per model, ``baseline``
        (discrete-time log: transactions in the holdout opportunities, see :attr:`holdout_basis`).
    comparison : DataFrame
        :func:`helpers.validation.holdout_comparison` with the ranking metrics of
        :func:`helpers.diagnostics.ranking_table` (``spearman``, ``top_decile_capture``, ``gini``),
        indexed by model name (and ``baseline``), with ``label`` and ``summary`` columns
        (``continuous``/``discrete``: the summary the model was fitted on; log-likelihoods and BIC
        compare only within one summary).
    model_name : str
        The chosen model.
    chosen_by : str
        ``"auto"`` (the holdout rule) or ``"configured"``.
    choice_reason : str
        Why: the holdout rule's sentence, or the configuration (with what the rule would choose).
    auto_choice : str
        What the holdout rule chooses (equals ``model_name`` when ``chosen_by == "auto"``).
    spend_cal, spend_full : GammaGammaFit or None
        Gamma-Gamma on the calibration / full period (None without amounts).
    spend_warnings : list of str
        Independence warnings of the calibration spend fit.
    valuation_settings : dict
        ``horizon_months``, ``monthly_discount_rate``, ``margin``, ``currency``, ``value_per_purchase``.
    valuation : DataFrame
        Per customer (index as ``full``): ``expected_purchases`` (over the horizon),
        ``discounted_purchases``, ``p_alive``, ``expected_spend`` (with amounts: the
        Gamma-Gamma E[M | x, m_x]) and ``clv`` in :attr:`units`.
    equity : float
        Customer equity: the sum of ``valuation["clv"]``, in :attr:`units`.
    units : str
        The currency (``"USD"``) when values are money, else ``"purchases"``.
    value_basis : str
        ``"spend model"``, ``"value per purchase"`` or ``"purchases"``.
    timings : dict
        Seconds per step.
    discrete_period : str or None
        ``data.opportunity_period`` of a discrete-time log (e.g. ``"Y"``), else None.
    cal_discrete, full_discrete : DataFrame or None
        Discrete-time summaries (``x, t_x, T`` in opportunities; ``cal_discrete`` with
        ``x_star``, ``t_star``), indexed like ``cal`` / ``full``; None on a continuous log.
    model_summaries : dict
        Model name -> ``"continuous"`` or ``"discrete"``: the summary it was fitted on.
    skipped : dict
        Registered models that do not apply to this log -> the reason.
    fit_notes : dict
        Model name -> how it was fitted when that differs from the rest (e.g. without ``litt``).
    holdout_basis : str
        What ``predictions["actual"]`` counts.
    aggregates : dict of str -> DataFrame
        The compact per-day, per-period and per-cohort tables of the log
        (:mod:`helpers.aggregates`), computed by the configured engine, named
        ``<producer>.<table>``; the notebooks read the log only through them.
    """

    config_name: str
    key: str
    inputs: dict
    data_sha256: str
    code_version: dict
    engine: str
    time_unit: str
    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp
    has_amounts: bool
    quality: pd.DataFrame
    facts: dict
    cal: pd.DataFrame
    full: pd.DataFrame
    fits_cal: dict
    fits_full: dict
    fit_errors: dict
    predictions: pd.DataFrame
    comparison: pd.DataFrame
    model_name: str
    chosen_by: str
    choice_reason: str
    auto_choice: str
    spend_cal: Any
    spend_full: Any
    spend_warnings: list
    valuation_settings: dict
    valuation: pd.DataFrame
    equity: float
    units: str
    value_basis: str
    timings: dict = field(default_factory=dict)
    discrete_period: str | None = None
    cal_discrete: pd.DataFrame | None = None
    full_discrete: pd.DataFrame | None = None
    model_summaries: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    fit_notes: dict = field(default_factory=dict)
    holdout_basis: str = "repeat purchase days in the holdout period"
    aggregates: dict = field(default_factory=dict)

    # --- convenient views ----------------------------------------------------
    @property
    def model(self):
        """Full-period fit of the chosen model (the one that values customers)."""
        return self.fits_full[self.model_name]

    @property
    def model_cal(self):
        """Calibration fit of the chosen model (the one validated on the holdout)."""
        return self.fits_cal[self.model_name]

    @property
    def model_label(self) -> str:
        return self.model.label

    @property
    def model_names(self) -> list[str]:
        """Models fitted on the calibration period, in registry order."""
        return list(self.fits_cal)

    @property
    def labels(self) -> dict[str, str]:
        """Model name -> display label (``"pareto_nbd"`` -> ``"Pareto/NBD"``)."""
        return {name: f.label for name, f in {**self.fits_full, **self.fits_cal}.items()}

    def summary_of(self, name: str, period: str = "full") -> pd.DataFrame:
        """The summary model ``name`` was fitted on: ``period="full"`` or ``"cal"``
        (the discrete-time one for a discrete-time model)."""
        if period not in ("full", "cal"):
            raise ValueError(f"period must be 'full' or 'cal', got {period!r}")
        discrete = self.model_summaries.get(name) == "discrete"
        return getattr(self, f"{period}_discrete" if discrete else period)

    @property
    def model_time_unit(self) -> str:
        """Time unit of the chosen model: the configured one, or the opportunity period of a discrete-time model."""
        return self.model.time_unit or self.time_unit

    def bootstrap(self, n_boot: int = 200, seed: int = 0, level: float = 0.90, show_progress: bool = False):
        """Bootstrap interval of the customer equity (and per-customer CLV) under the chosen model.

        :func:`helpers.value.bootstrap` on the chosen model's full-period
        summary, starting from the stage's own fits (the chosen model's and the
        Gamma-Gamma spend fit), with the stage's valuation settings and value
        basis, so that ``result.equity["estimate"]`` equals :attr:`equity` (up
        to the order of summation) and the interval is around it.
        """
        from . import value  # noqa: PLC0415

        model = self.model
        summary, kw = self._valuation_summary(self.model_name)
        if self.value_basis == "spend model":
            kw.update(spend_fit=self.spend_full, margin=self.margin)
        elif self.value_basis == "value per purchase":
            kw.update(value_per_purchase=float(self.valuation_settings["value_per_purchase"]), margin=self.margin)
        else:
            kw.update(value_per_purchase=1.0, margin=1.0)
        return value.bootstrap(summary, n_boot=n_boot, seed=seed, horizon_months=self.horizon_months,
                               monthly_discount_rate=self.monthly_discount_rate, time_unit=self.model_time_unit,
                               level=level, penalizer=model.penalizer, show_progress=show_progress, fit=model, **kw)

    def _valuation_summary(self, name: str) -> tuple[pd.DataFrame, dict]:
        """The full-period summary that values customers under ``name`` (with ``m_x`` and, for a
        discrete-time model, the spend model's count ``x_days``) and the matching ``spend_x``."""
        summary = self.summary_of(name, "full")
        if summary is self.full:
            return self.full, {}
        out = summary[["x", "t_x", "T"]].reindex(self.full.index)
        out["x_days"] = self.full["x"]
        if "m_x" in self.full.columns:
            out["m_x"] = self.full["m_x"]
        return out, {"spend_x": "x_days"}

    @property
    def horizon_months(self) -> int:
        return int(self.valuation_settings["horizon_months"])

    @property
    def margin(self) -> float:
        return float(self.valuation_settings["margin"])

    @property
    def monthly_discount_rate(self) -> float:
        return float(self.valuation_settings["monthly_discount_rate"])

    @property
    def currency(self) -> str:
        return str(self.valuation_settings["currency"])

    @property
    def in_money(self) -> bool:
        """Whether ``clv`` and ``equity`` are money (amounts or a value per purchase)."""
        return self.value_basis != "purchases"

    def quality_table(self) -> pd.DataFrame:
        """The data-quality table formatted for a report (as :meth:`helpers.data.TransactionData.quality_table`)."""
        return TransactionData.quality_table(self)

    def __repr__(self) -> str:
        return (f"<Stage {self.config_name!r}: {self.facts.get('customers', len(self.full)):,} customers, "
                f"{self.model_label} ({self.chosen_by}), {self.equity_sentence()}; key {self.key}>")

    def equity_sentence(self) -> str:
        """One line: the customer equity with its model, horizon and settings."""
        h, d = self.horizon_months, self.monthly_discount_rate
        if self.value_basis == "purchases":
            return (f"customer equity {self.equity:,.0f} purchases (expected repeat purchases over {h} months, "
                    f"discounted at {d:.1%} per month; the log has no amounts) under {self.model_label}")
        basis = ("Gamma-Gamma spend" if self.value_basis == "spend model"
                 else f"{self.valuation_settings['value_per_purchase']:,.2f} {self.currency} per purchase")
        return (f"customer equity {self.equity:,.0f} {self.units} over {h} months under {self.model_label} "
                f"(margin {self.margin:.0%}, {d:.1%} per month discount, {basis})")

    def provenance_results(self) -> dict[str, Any]:
        """What every ``results.json`` records about the stage: ``model.name``, ``model.params``,
        ``valuation.horizon_months`` (and how the model was chosen, the units)."""
        from .report import to_jsonable  # noqa: PLC0415

        return to_jsonable({
            "model": {"name": self.model_name, "label": self.model_label, "chosen_by": self.chosen_by,
                      "params": dict(self.model.params)},
            "valuation": {"horizon_months": self.horizon_months, "monthly_discount_rate": self.monthly_discount_rate,
                          "margin": self.margin, "units": self.units, "value_basis": self.value_basis},
        })

    # --- files -----------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the stage into ``folder``: one Parquet file per table and ``stage.json``
        (written last, so its presence marks a complete stage)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tables = [name for name in (*TABLES, *OPTIONAL_TABLES) if getattr(self, name) is not None]
        shared: dict[str, str] = {}   # table -> the earlier table whose index it has (written once)
        for i, name in enumerate(tables):
            frame = getattr(self, name)
            ref = next((r for r in tables[:i] if r not in shared and _same_index(getattr(self, r), frame)), None)
            if ref is None:
                frame.to_parquet(folder / f"{name}.parquet")
            else:
                shared[name] = ref
                frame.to_parquet(folder / f"{name}.parquet", index=False)
        (folder / "aggregates").mkdir(exist_ok=True)
        for name, frame in self.aggregates.items():
            bare = frame.copy(deep=False)
            bare.attrs = {}  # pandas would write the attrs into the file as JSON (no Timestamps); stage.json has them
            bare.to_parquet(folder / "aggregates" / f"{name}.parquet")
        meta = {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name not in (*TABLES, *OPTIONAL_TABLES, "aggregates")}
        meta["aggregates"] = {name: {"file": f"aggregates/{name}.parquet", "attrs": _encode(dict(frame.attrs))}
                              for name, frame in self.aggregates.items()}
        meta["format"] = STAGE_FORMAT
        meta["tables"] = {name: f"{name}.parquet" for name in tables}
        meta["shared_index"] = shared
        tmp = folder / f".stage.json.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, folder / "stage.json")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Stage":
        """Read a stage written by :meth:`save` (fitted models rebuilt from their fields).

        The tables and the aggregates are read when first used, not here: a notebook holds only the
        tables it reads.  At 1e7 customers reading every per-customer table took 34 s and 5 GB in each
        of the six kernels (16.6 s of it turning the calibration summary's customer ids into Python
        strings), also in the reports that use none of them.
        """
        folder = Path(folder)
        path = folder / "stage.json"
        if not path.exists():
            raise FileNotFoundError(f"no stage in {folder} (stage.json missing)")
        meta = json.loads(path.read_text())
        if meta.get("format") != STAGE_FORMAT:
            raise ValueError(f"{path}: stage format {meta.get('format')!r}, this code reads {STAGE_FORMAT}")
        values = {f.name: _decode(meta[f.name]) for f in dataclasses.fields(cls)
                  if f.name not in TABLES + OPTIONAL_TABLES}
        shared = meta.get("shared_index") or {}
        deferred = {}
        for name in (*TABLES, *OPTIONAL_TABLES):
            if name not in TABLES and name not in meta.get("tables", {}):
                values[name] = None
                continue
            # written without its index: the one of an earlier table (one copy of the ids)
            deferred[name] = (folder / f"{name}.parquet", shared.get(name))
            values[name] = None
        values["aggregates"] = LazyTables({name: (lambda spec=spec: _read_aggregate(folder, spec))
                                           for name, spec in (meta.get("aggregates") or {}).items()})
        stage = cls(**values)
        for name in deferred:
            del stage.__dict__[name]
        stage.__dict__["_deferred"] = deferred
        return stage

    def column(self, table: str, column: str) -> np.ndarray:
        """One column of a per-customer table as an array, in the table's row order.

        From a loaded stage whose table has not been read yet only that column is read from its
        Parquet file, without the table and its customer ids: at 1e7 customers notebook 01's
        ``stage.full["x"]`` read ``full`` and the calibration summary whose ids it shares (2.3 GB
        kept, 4.7 GB at the peak) for an array of 80 MB.  Otherwise the table's own column.
        """
        deferred = self.__dict__.get("_deferred") or {}
        if table in self.__dict__ or table not in deferred:
            return getattr(self, table)[column].to_numpy()
        import pyarrow.parquet as pq  # noqa: PLC0415

        values = pq.read_table(self._deferred_file(table), columns=[column]).column(0).to_numpy()
        release_arrow_memory()
        return values

    def __getattr__(self, name: str):
        # reached only when the instance has no such attribute: a table that :meth:`load` deferred
        deferred = self.__dict__.get("_deferred") or {}
        if name not in deferred:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        index_of = deferred[name][1]
        frame = read_parquet(self._deferred_file(name))
        if index_of is not None:
            frame.index = self._index_of(index_of)
        elif f"_index:{name}" in self.__dict__:
            frame.index = self.__dict__[f"_index:{name}"]       # the ids already read for a table sharing them
        self.__dict__[name] = frame      # found there from now on; ``_deferred`` is never changed (copies share it)
        return frame

    def _deferred_file(self, name: str) -> Path:
        """The Parquet file of a table :meth:`load` deferred; an error that says so if it has gone."""
        file = self.__dict__["_deferred"][name][0]
        if not file.exists():
            raise FileNotFoundError(f"{file}: the stage folder changed after it was read (its tables are read when "
                                    f"first used); read the stage again (get_stage)")
        return file

    def _index_of(self, name: str) -> pd.Index:
        """The customer ids of table ``name``, shared by the tables saved without theirs: the table's own index
        once it is read, otherwise its index column alone (kept, and given to the table when it is read).
        Reading ``full`` (or the valuation) then costs its own columns and the ids, not also the calibration
        summary's ten columns (0.8 GB at 1e7 customers)."""
        if name in self.__dict__:
            return self.__dict__[name].index
        key = f"_index:{name}"
        if key not in self.__dict__:
            self.__dict__[key] = read_parquet(self._deferred_file(name), columns=[]).index
        return self.__dict__[key]


# The optional tables' defaults (None) live in the generated __init__; without the class attributes
# a deferred optional table reaches Stage.__getattr__ instead of the class's None.
for _name in OPTIONAL_TABLES:
    delattr(Stage, _name)
del _name


class LazyTables(Mapping):
    """A read-only mapping of names to tables, each read by its loader when first looked up (then kept)."""

    def __init__(self, loaders: dict):
        self._loaders = dict(loaders)
        self._tables: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            self._tables[name] = self._loaders[name]()
        return self._tables[name]

    def read(self, name: str) -> pd.DataFrame:
        """The table without keeping it (unless it was kept already): for a large table a report uses once.
        At 1e7 customers ``aggregates_log.holdout_last`` holds 4.5e6 ids, about 0.4 GB as Python strings,
        which notebook 04 kept to its end."""
        return self._tables[name] if name in self._tables else self._loaders[name]()

    def __iter__(self):
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __repr__(self) -> str:
        return f"LazyTables({list(self._loaders)}, read: {list(self._tables)})"


def read_parquet(file, **kwargs) -> pd.DataFrame:
    """``pandas.read_parquet``, then :func:`release_arrow_memory`: how the stage's tables are read."""
    frame = pd.read_parquet(file, **kwargs)
    release_arrow_memory()
    return frame


def _same_index(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two tables have the same index (values, order, names and dtype): the later one is then saved
    without it.  Per-customer tables share the 1e6-1e7 customer ids, whose conversion to Python strings
    dominates reading a large stage."""
    return (len(a) == len(b) and len(a) > 0 and a.index.names == b.index.names and a.index.dtype == b.index.dtype
            and (a.index is b.index or a.index.equals(b.index)))


def _read_aggregate(folder: Path, spec: dict) -> pd.DataFrame:
    """One table of ``stage.aggregates`` as :meth:`Stage.save` wrote it (the Parquet file and its attrs)."""
    frame = read_parquet(folder / spec["file"])
    frame.attrs = dict(_decode(spec.get("attrs") or {}))
    return frame


# ---------------------------------------------------------------------------
# computing it
# ---------------------------------------------------------------------------

def stage_inputs(cfg: Config) -> dict[str, Any]:
    """The configuration's inputs to the stage (part of the cache key and recorded in ``stage.json``).

    The data spec without ``path`` (the data SHA-256 identifies the content),
    ``description``, ``show_customer_ids`` and ``covariates`` (the stage does not use them) (``max_date`` as ``"today"`` when
    the file does not set it); the shared parameters the stage reads;
    ``model``; ``valuation``.
    """
    s = cfg.settings
    # covariates (data.covariates) are not inputs of the stage: the drivers report (helpers.drivers) reads them
    data = {k: v for k, v in cfg.data.items() if k not in ("path", "description", "show_customer_ids", "covariates")}
    if "max_date" not in cfg.data_keys_set:
        data["max_date"] = "today"  # the default moves daily; the data SHA-256 pins what it admits
    return {
        "data": data,
        "time_unit": s.time_unit, "calibration_end": s.calibration_end,
        "penalizer": float(s.penalizer), "corr_threshold": float(s.corr_threshold),
        "model": cfg.model, "models": list(cfg.models) if cfg.models is not None else None,
        "valuation": cfg.valuation.model_dump(),
    }


def stage_key(cfg: Config, data_sha256: str | None = None) -> str:
    """Cache key: SHA-256 of (stage inputs, data SHA-256, source SHA-256 of the package), 20 hex digits."""
    if data_sha256 is None:
        ensure_data(cfg)
        data_sha256 = file_sha256(cfg.data_path)
    payload = {"format": STAGE_FORMAT, "inputs": stage_inputs(cfg), "data_sha256": data_sha256,
               "code": source_sha256()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _facts(check, cal: pd.DataFrame, full: pd.DataFrame, time_unit: str, cal_end) -> dict[str, Any]:
    x = full["x"]
    facts = {
        "engine": check.engine,
        "customers": int(len(full)),
        "purchase_days": int(len(full) + x.sum()),
        "repeat_purchase_days": int(x.sum()),
        "one_time_buyers": int((x == 0).sum()),
        "one_time_buyer_share": float((x == 0).mean()),
        "first_date": check.first_day.date().isoformat(),
        "last_date": check.last_day.date().isoformat(),
        "observation_end": check.observation_end.date().isoformat(),
        "calibration_end": pd.Timestamp(cal_end).date().isoformat(),
        "time_unit": time_unit,
        "calibration_customers": int(len(cal)),
        "calibration_repeat_purchase_days": int(cal["x"].sum()),
        "holdout_repeat_purchase_days": int(cal["x_star"].sum()),
        "holdout_length": float(cal["t_star"].iloc[0]),
        "has_amounts": bool(check.has_amounts),
    }
    for k in ("rows_read", "rows_used", "duplicate_rows", "after_observation_end", "returns", "zero_amount_rows"):
        if k in check.counts:
            facts[k] = int(check.counts[k])
    if "total_spend" in full.columns:
        facts["revenue"] = float(full["total_spend"].sum())
    return facts


def _fit_all(names, summaries: dict, penalizer, time_units: dict) -> tuple[dict, dict]:
    """Fit every model of ``names`` ({name: summary key}) on ``summaries[key]``; errors recorded, never raised."""
    from .models import fit_model  # noqa: PLC0415

    fits, errors = {}, {}
    for name, which in names.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                # fit_model passes the statistics a model declares in summary_columns (litt) when present
                fits[name] = fit_model(name, summaries[which], penalizer=penalizer, time_unit=time_units[which])
        except Exception as e:  # noqa: BLE001  (a model that fails is recorded; the run goes on)
            errors[name] = f"{type(e).__name__}: {e}"
    return fits, errors


def _statistics(names, tx, ends: dict, time_unit: str, engine: str) -> tuple[dict, dict]:
    """The extra per-customer statistics the models declare, from the log: ({key: {column: Series}}, notes)."""
    from .models import get_model  # noqa: PLC0415

    wanted: dict[str, list[str]] = {}
    for name in names:
        for col in getattr(get_model(name), "summary_columns", ()):
            wanted.setdefault(col, []).append(name)
    out: dict = {key: {} for key in ends}
    notes: dict[str, str] = {}
    for col, users in wanted.items():
        if col not in STATISTICS:
            why = f"the stage does not know how to compute {col!r} from the log"
        elif tx is None:
            why = (f"{col} (a per-customer statistic of the purchase times) is computed from the log in memory, "
                   f"which the {engine} engine does not keep")
        else:
            module, func = STATISTICS[col]
            compute = getattr(importlib.import_module(module), func)
            for key, end in ends.items():
                out[key][col] = compute(tx, end, time_unit)
            continue
        for name in users:
            notes[name] = f"fitted on x, t_x, T alone: {why}"
    return out, notes


def _predictions(fits: dict, summaries: dict, which: dict, actual_from: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Holdout predictions of every fit on its own calibration summary, on the customers of ``actual_from``
    (``actual`` = its ``x_star``, ``baseline`` = its naive forecast); models with non-finite predictions are
    returned as errors."""
    from .value import naive_baseline_holdout  # noqa: PLC0415

    out = pd.DataFrame({"actual": actual_from["x_star"].to_numpy(float)}, index=actual_from.index)
    errors = {}
    for name, fit in fits.items():
        summary = summaries[which[name]]
        if not summary.index.equals(actual_from.index):        # the same object: True at once
            summary = summary.reindex(actual_from.index)      # a copy of the summary: only where the rows differ
        t_star = float(summary["t_star"].iloc[0])
        with np.errstate(all="ignore"):
            pred = np.asarray(fit.expected_purchases(t_star, summary), dtype=float)
        if not np.all(np.isfinite(pred)):
            errors[name] = (f"holdout predictions not finite for {int((~np.isfinite(pred)).sum()):,} customer(s); "
                            "the model is left out of the comparison")
            continue
        out[name] = pred
    out["baseline"] = naive_baseline_holdout(actual_from).to_numpy()
    return out, errors


def _choose(cfg: Config, fits_cal: dict, fits_full: dict, comparison: pd.DataFrame) -> tuple[str, str, str, str]:
    """(model name, chosen_by, reason, auto choice): the holdout rule over every model fitted on both periods."""
    from .validation import recommend_model  # noqa: PLC0415

    labels = {name: f.label for name, f in fits_cal.items()}
    candidates = [n for n in comparison.index if n == "baseline" or (n in fits_cal and n in fits_full)]
    if len(candidates) < 2:
        raise StageError("no frequency model could be fitted on both the calibration and the full period")
    by_label = comparison.loc[candidates].drop(columns=["label", "summary"], errors="ignore").rename(index=labels)
    auto_label, auto_reason = recommend_model(by_label)
    auto = next(name for name, label in labels.items() if label == auto_label)
    left_out = [labels[n] for n in comparison.index if n != "baseline" and n not in candidates]
    if left_out:
        auto_reason = (auto_reason[:-1] + f" ({', '.join(left_out)} could not be fitted on the full period and "
                       "cannot be chosen).")
    if cfg.model == "auto":
        return auto, "auto", auto_reason, auto
    name = cfg.model
    if name not in fits_cal:
        raise StageError(f"the configured model {name!r} could not be fitted on the calibration period")
    label = labels[name]
    if name == auto:
        reason = f"{label} is the configured model (model: {name}); the holdout rule chooses it too: {auto_reason}"
    else:
        reason = (f"{label} is the configured model (model: {name}); the holdout rule would choose "
                  f"{auto_label}: {auto_reason}")
    return name, "configured", reason, auto


def _discrete_summaries(cfg: Config, tx: pd.DataFrame, period: str, cal_end, obs_end) -> tuple[pd.DataFrame, ...]:
    from .summary_discrete import discrete_calibration_holdout, discrete_summary  # noqa: PLC0415

    try:
        cal_d = discrete_calibration_holdout(tx, period, cal_end, obs_end)
        full_d = discrete_summary(tx, period=period, end=obs_end)
    except ValueError as e:
        raise ConfigError(f"{cfg.path}: data.opportunity_period {period!r}: {e}", key="data.opportunity_period") from None
    return cal_d, full_d


def compute_stage(cfg: Config | str | Path, checked=None, progress: bool = False) -> Stage:
    """Compute the shared analysis stage of a configuration.

    Parameters
    ----------
    cfg : Config or path
    checked : Preflight or DataCheck, optional
        The validated data from :func:`helpers.preflight.preflight` (so the
        log is not validated twice); validated here when omitted.
    progress : bool
        Print one line per step.

    Raises
    ------
    ConfigError
        ``parameters.calibration_end`` missing or outside the data; on a
        discrete-time log, a calibration or observation end that is not the
        last day of an opportunity period.
    DataValidationError
        The data break a validation rule (when not pre-checked).
    StageError
        No frequency model, or not the configured one, could be fitted.
    """
    from .preflight import DataCheck, Preflight, check_calibration, validate_data  # noqa: PLC0415

    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def step(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = round(now - t, 3)
        t = now
        if progress:
            print(f"  stage: {name} in {timings[name]:.1f} s", flush=True)

    check = checked.data if isinstance(checked, Preflight) else checked
    if check is None:
        check = validate_data(cfg, keep_days=True)     # DuckDB: its customer-day table serves the stage
        try:
            check_calibration(cfg, check)
        except BaseException:
            check.close()
            raise
        step("validation")
    elif not isinstance(check, DataCheck):
        raise TypeError("checked must be a Preflight or a DataCheck")
    if cfg.settings.calibration_end is None:
        raise ConfigError(f"{cfg.path}: parameters.calibration_end: required key missing", key="parameters.calibration_end")

    # summaries, with the configured engine; DuckDB: from the log's customer-day table, which the
    # aggregates read too, so the stage scans and groups the log once
    # (the pre-flight's table when it kept one: the same rows, grouped once)
    tx = check.data.transactions if check.engine == "pandas" else None
    days = check.take_days()
    if days is None and check.engine == "duckdb":
        days = aggregates.customer_days(cfg, check.observation_end)
    try:
        return _compute(cfg, check, tx, days, step, timings)
    finally:
        if days is not None:
            days.close()


def _compute(cfg: Config, check, tx, days, step, timings) -> Stage:
    """:func:`compute_stage` after the validation: summaries, fits, choice, valuation, aggregates."""
    from . import diagnostics, validation  # noqa: PLC0415
    from .engines import summarise  # noqa: PLC0415
    from .models import IndependenceWarning, fit_gamma_gamma  # noqa: PLC0415

    s = cfg.settings
    time_unit, cal_end, penalizer = s.time_unit, s.calibration_end, float(s.penalizer)
    period = cfg.data.get("opportunity_period")
    if tx is not None:
        cal = summarise(cfg, cal_end, time_unit=time_unit, transactions=tx)
        full = summarise(cfg, time_unit=time_unit, transactions=tx)
    elif days is not None:
        cal, full = days.summaries(cal_end, check.observation_end, time_unit)
    else:
        cal = summarise(cfg, cal_end, time_unit=time_unit, engine=check.engine, validate=False)
        full = summarise(cfg, time_unit=time_unit, engine=check.engine, validate=False)
    applies, skipped = applicable_models(period, check.engine, candidates=cfg.models)
    cal_d = full_d = None
    if "discrete" in applies.values():
        cal_d, full_d = _discrete_summaries(cfg, tx, period, cal_end, check.observation_end)
    continuous = [n for n, w in applies.items() if w == "continuous"]
    stats, fit_notes = _statistics(continuous, tx, {"cal": cal_end, "full": check.observation_end}, time_unit,
                                   check.engine)
    for key, frame in (("cal", cal), ("full", full)):
        for col, values in stats[key].items():
            frame[col] = values.reindex(frame.index).fillna(0.0).to_numpy(float)
    step("summaries")

    def log_aggregates(example_summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
        return aggregates.compute_all(aggregates.AggregateContext(
            cfg=cfg, engine=check.engine, transactions=tx,
            returns=check.data.returns if check.data is not None else None,
            calibration_end=pd.Timestamp(cal_end), observation_end=check.observation_end, time_unit=time_unit,
            has_amounts=bool(check.has_amounts), customers_cal=cal.index,
            example_ids=tuple(aggregates_log.example_pool(example_summary)), duckdb_days=days))

    # Without discrete-time summaries the aggregates need no fit (the example customers come from the
    # full-period summary, whichever model is chosen): computed now, and the DuckDB customer-day table
    # (3.5 GB resident at 1e8 rows) is closed before the fits instead of held through them and the valuation
    early_aggregates = None
    if cal_d is None:
        early_aggregates = log_aggregates(full)
        if days is not None:
            days.close()
        step("aggregates")

    # frequency models: calibration fits, holdout comparison, choice
    summaries_cal = {"continuous": cal, "discrete": cal_d}
    units = {"continuous": time_unit, "discrete": period}
    fits_cal, errors_cal = _fit_all(applies, summaries_cal, penalizer, units)
    if not fits_cal:
        raise StageError("no frequency model could be fitted on the calibration period: "
                         + "; ".join(f"{k}: {v}" for k, v in errors_cal.items()))
    actual_from = cal_d if cal_d is not None else cal
    predictions, bad = _predictions(fits_cal, summaries_cal, applies, actual_from)
    for name, why in bad.items():
        errors_cal[name] = why
        del fits_cal[name]
    if not fits_cal:
        raise StageError("no frequency model gave finite holdout predictions: "
                         + "; ".join(f"{k}: {v}" for k, v in errors_cal.items()))
    comparison = validation.holdout_comparison(fits_cal, predictions)
    ranking = diagnostics.ranking_table(predictions["actual"], predictions[[*fits_cal, "baseline"]])
    comparison = comparison.join(ranking)
    comparison.insert(0, "label", [fits_cal[n].label if n in fits_cal else "naive baseline"
                                   for n in comparison.index])
    comparison.insert(1, "summary", [applies[n] if n in fits_cal else ("discrete" if cal_d is not None
                                                                       else "continuous")
                                     for n in comparison.index])
    step("calibration fits and holdout comparison")
    fits_full, errors_full = _fit_all({n: applies[n] for n in fits_cal},
                                      {"continuous": full, "discrete": full_d}, penalizer, units)
    model_name, chosen_by, reason, auto = _choose(cfg, fits_cal, fits_full, comparison)
    if model_name not in fits_full:
        raise StageError(f"the chosen model {model_name!r} could not be fitted on the full period: "
                         f"{errors_full.get(model_name)}")
    step("full-period fits")

    # spend model (only with amounts)
    spend_cal = spend_full = None
    spend_warnings: list[str] = []
    if check.has_amounts:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", IndependenceWarning)
            spend_cal = fit_gamma_gamma(cal, corr_threshold=s.corr_threshold)
        spend_warnings = [str(w.message) for w in caught if issubclass(w.category, IndependenceWarning)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IndependenceWarning)
            spend_full = fit_gamma_gamma(full, corr_threshold=s.corr_threshold)
        step("spend fits")

    stage = Stage(
        config_name=cfg.name, key=stage_key(cfg, check.sha256), inputs=stage_inputs(cfg),
        data_sha256=check.sha256, code_version=code_version(), engine=check.engine, time_unit=time_unit,
        calibration_end=pd.Timestamp(cal_end), observation_end=check.observation_end,
        has_amounts=bool(check.has_amounts), quality=check.quality.reset_index(drop=True),
        facts=_facts(check, cal, full, time_unit, cal_end), cal=cal, full=full,
        fits_cal=fits_cal, fits_full=fits_full, fit_errors={"cal": errors_cal, "full": errors_full},
        predictions=predictions, comparison=comparison, model_name=model_name, chosen_by=chosen_by,
        choice_reason=reason, auto_choice=auto, spend_cal=spend_cal, spend_full=spend_full,
        spend_warnings=spend_warnings, valuation_settings=cfg.valuation.model_dump(), valuation=pd.DataFrame(),
        equity=float("nan"), units="", value_basis="", timings=timings, discrete_period=period,
        cal_discrete=cal_d, full_discrete=full_d, model_summaries=dict(applies), skipped=skipped,
        fit_notes=fit_notes,
        holdout_basis=("transactions in the holdout opportunities (at most one per "
                       f"{_period_word(period)})" if cal_d is not None else "repeat purchase days in the holdout period"),
    )
    if cal_d is not None:
        stage.facts.update(_discrete_facts(cal_d, full_d, period))
    _value(stage, cfg)
    step("valuation")
    if early_aggregates is not None:
        stage.aggregates = early_aggregates
    else:
        stage.aggregates = log_aggregates(stage.summary_of(model_name, "full"))
        step("aggregates")
    return stage


def _period_word(period: str | None) -> str:
    from .summary import period_name  # noqa: PLC0415

    return period_name(period) if period else ""


def _discrete_facts(cal_d: pd.DataFrame, full_d: pd.DataFrame, period: str) -> dict[str, Any]:
    return {
        "opportunity_period": period,
        "calibration_opportunities_max": int(cal_d["T"].max()),
        "holdout_opportunities": int(cal_d["t_star"].iloc[0]),
        "calibration_transactions_discrete": int(cal_d["x"].sum()),
        "holdout_transactions_discrete": int(cal_d["x_star"].sum()),
        "repeat_transactions_discrete": int(full_d["x"].sum()),
    }


def _value(stage: Stage, cfg: Config) -> None:
    """Value every customer with the chosen model's full-period fit (sets ``valuation``, ``equity``,
    ``units``, ``value_basis``)."""
    from . import value  # noqa: PLC0415

    v = cfg.valuation
    model = stage.model
    unit = stage.model_time_unit
    summary, kw = stage._valuation_summary(stage.model_name)
    horizon = value.month_grid(v.horizon_months, unit)[-1]
    kw.update(horizon_months=v.horizon_months, monthly_discount_rate=v.monthly_discount_rate, time_unit=unit)
    no_spend = summary if "m_x" in summary.columns else summary.assign(m_x=0.0)
    out = pd.DataFrame(index=stage.full.index)
    with np.errstate(all="ignore"):
        out["expected_purchases"] = np.asarray(model.expected_purchases(horizon, summary), float)
        out["discounted_purchases"] = value.clv(model, value.ConstantSpend(1.0), no_spend, margin=1.0,
                                                **kw).to_numpy()
        out["p_alive"] = np.asarray(model.p_alive(summary), float)
        if stage.has_amounts:
            out["expected_spend"] = stage.spend_full.expected_spend(stage.full)
            out["clv"] = value.clv(model, stage.spend_full, summary, margin=v.margin, **kw).to_numpy()
            units, basis = v.currency, "spend model"
        elif v.value_per_purchase is not None:
            out["clv"] = value.clv(model, value.ConstantSpend(v.value_per_purchase), no_spend, margin=v.margin,
                                   **kw).to_numpy()
            units, basis = v.currency, "value per purchase"
        else:
            out["clv"] = out["discounted_purchases"]
            units, basis = "purchases", "purchases"
    stage.valuation, stage.units, stage.value_basis = out, units, basis
    stage.equity = value.customer_equity(out["clv"])


def get_stage(config: Config | str | Path, stage_dir: str | Path = "", cache_dir: str | Path | None = None,
              refresh: bool = False) -> Stage:
    """The stage of a configuration, for a notebook.

    Parameters
    ----------
    config : Config or path
    stage_dir : str or Path
        A stage folder (the runner passes ``<run>/stage``): read it.  Empty:
        reuse the cache entry for (configuration, data SHA-256, code version)
        under ``cache_dir``, or compute the stage and cache it.
    cache_dir : path, optional
        Default :func:`default_cache_dir` (the project's ``reports/.cache/stage``).
    refresh : bool
        Recompute even when a cache entry exists.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    if stage_dir:
        stage = Stage.load(stage_dir)
        if stage.inputs != json.loads(json.dumps(stage_inputs(cfg), default=str)):
            warnings.warn(f"the stage in {stage_dir} was computed from other settings than {cfg.path.name}'s "
                          "(data rules, parameters, model or valuation differ)", RuntimeWarning, stacklevel=2)
        return stage
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    key = stage_key(cfg)
    folder = root / key
    if not refresh and (folder / "stage.json").exists():
        try:
            return Stage.load(folder)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # an unreadable entry (older format, partial copy): compute it again
    stage = compute_stage(cfg)
    tmp = root / f".{key}.{uuid.uuid4().hex}"
    stage.save(tmp)
    try:
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except OSError:  # another process wrote the same entry at the same time: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    return stage
