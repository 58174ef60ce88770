"""Pre-flight: everything that can be checked before a kernel starts, checked once.

``clv-lab run`` calls :func:`preflight` before it creates a run folder or
starts a notebook:

1. the configuration schema (:func:`helpers.config.load_config`);
2. the notebooks: every file exists and is a notebook, no two share a name,
   every per-notebook parameter and every shared parameter passed to a
   notebook is declared in its parameters cell with a compatible type
   (``papermill.inspect_notebook``), every shared parameter is used by a
   notebook or by the stage;
3. the data, validated once with the configured engine (pandas:
   :func:`helpers.config.load_data`; DuckDB: ``validate_duckdb``; Spark:
   ``validate_spark``), each giving the same data-quality table;
4. the covariate tables (``data.covariates``), validated against the
   log's customers and observation window (:func:`validate_covariates`,
   :mod:`helpers.covariates_data`);
5. ``calibration_end`` inside the data's date range.

A failure raises :class:`~helpers.config.ConfigError` (exit code
:data:`EXIT_CONFIG`) or :class:`~helpers.data.DataValidationError`
(:data:`EXIT_DATA`) with one message; the validated data is handed to the
stage (:func:`helpers.stage.compute_stage`), so it is not read twice.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Config, ConfigError, ensure_data, load_config, load_data, load_options
from .data import (DEFAULT_MIN_CUSTOMERS, DataValidationError, TransactionData, check_modelable, file_sha256,
                   validation_kwargs)
from .engines import engine_module, engine_of
from .summary import check_calibration_end

__all__ = [
    "EXIT_OK", "EXIT_NOTEBOOK", "EXIT_CONFIG", "EXIT_DATA", "EXIT_STAGE",
    "DataCheck", "Preflight", "preflight", "check_notebooks", "validate_data", "validate_covariates",
    "first_purchases",
    "check_calibration", "notebook_parameters", "STAGE_PARAMETERS",
]

#: Exit codes of ``clv-lab run``.
EXIT_OK = 0
EXIT_NOTEBOOK = 1   # a notebook failed or timed out (the run folder is kept)
EXIT_CONFIG = 2     # the configuration is wrong (schema, notebooks, parameters, calibration_end); nothing ran
EXIT_DATA = 3       # the data broke a validation rule; nothing ran
EXIT_STAGE = 4      # the shared analysis stage failed (e.g. no model could be fitted; the run folder is kept)

#: Shared parameters the stage itself reads (they need no notebook that declares them).
STAGE_PARAMETERS = ("time_unit", "calibration_end", "penalizer", "corr_threshold")

#: Parameters the runner sets itself when a notebook declares them.
RUNNER_PARAMETERS = ("config", "export_dir", "stage_dir")


@dataclass
class DataCheck:
    """The outcome of validating the log once.

    Attributes
    ----------
    engine : str
    sha256 : str
        SHA-256 of the input file(s).
    quality : DataFrame
        The data-quality table (``check``, ``rows``, ``action``).
    first_day, last_day : Timestamp
        First and last purchase day of the rows used.
    observation_end : Timestamp
        The configured observation end, else ``last_day``.
    has_amounts : bool
    data : TransactionData or None
        The validated log (pandas engine).
    days : CustomerDays or None
        DuckDB engine, when kept (``validate_data(keep_days=True)``): the log's customer-day table
        (:class:`helpers.aggregates_log.CustomerDays`), on which the counts of customers were taken;
        :func:`helpers.stage.compute_stage` takes it (:meth:`take_days`) instead of grouping the log
        again, and closes it.
    """

    engine: str
    sha256: str
    quality: pd.DataFrame
    first_day: pd.Timestamp
    last_day: pd.Timestamp
    observation_end: pd.Timestamp
    has_amounts: bool
    data: TransactionData | None = None
    counts: dict = field(default_factory=dict)
    days: Any = field(default=None, repr=False, compare=False)

    def take_days(self):
        """The kept customer-day table (None when there is none); the caller owns it from then on."""
        days, self.days = self.days, None
        return days

    def close(self) -> None:
        """Close the kept customer-day table, if any."""
        days = self.take_days()
        if days is not None:
            days.close()


@dataclass
class Preflight:
    """What pre-flight found: the configuration, each notebook's declared parameters, the validated data."""

    cfg: Config
    declared: dict[str, dict[str, Any]]
    data: DataCheck
    seconds: float = 0.0
    covariates: Any = None   # helpers.covariates_data.CovariateData, when the configuration names covariates


# ---------------------------------------------------------------------------
# notebooks and their parameters
# ---------------------------------------------------------------------------

def notebook_parameters(spec, cfg: Config, declared: dict[str, Any],
                        runner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters a notebook receives: runner values it declares, shared ones it declares, its own.

    ``runner`` holds ``config``, ``export_dir``, ``stage_dir`` (each passed
    only when the notebook declares it); ``config`` defaults to the
    configuration file.  Per-notebook parameters win over shared ones.
    """
    runner = {"config": str(cfg.path), **(runner or {})}
    params = {k: v for k, v in runner.items() if k in declared}
    params.update({k: v for k, v in cfg.parameters.items() if k in declared})
    params.update(spec.parameters)
    return params


_TYPE_NAMES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list": (list, tuple),
               "dict": (dict,), "tuple": (list, tuple)}


def _compatible(value: Any, type_name: str | None) -> tuple[bool, str]:
    """Whether ``value`` fits a type papermill inferred (``str``, ``float``, ``str | None``, ``Optional[int]``)."""
    if not type_name or type_name == "None":
        return True, "any value"
    name = type_name.strip()
    m = re.fullmatch(r"(?:typing\.)?Optional\[(.+)\]", name)
    parts = [m.group(1), "None"] if m else [p.strip() for p in name.split("|")]
    ok_types: list[type] = []
    allow_none = False
    for part in parts:
        base = part.split("[", 1)[0].strip().lower()
        if base in ("none", "nonetype"):
            allow_none = True
        elif base in ("any", "object"):
            return True, "any value"
        elif base in _TYPE_NAMES:
            ok_types.extend(_TYPE_NAMES[base])
        else:
            return True, "any value"  # a type the check does not know: the notebook decides
    if value is None:
        return allow_none, type_name
    if isinstance(value, bool) and bool not in ok_types:
        return False, type_name  # True is an int to Python, not to a notebook's `n: int` parameter
    return isinstance(value, tuple(ok_types)), type_name


def check_notebooks(cfg: Config) -> dict[str, dict[str, Any]]:
    """Check the notebooks of a configuration; return each one's declared parameters (by notebook name).

    Raises
    ------
    ConfigError
        A notebook file is missing or not a notebook; two notebooks share a
        name (their run folders would collide); a parameter is not declared in
        the notebook's parameters cell or has an incompatible type; a shared
        parameter is used by no notebook and not by the stage.
    """
    import papermill as pm  # noqa: PLC0415  (heavy import)

    if not cfg.notebooks:
        raise ConfigError(f"{cfg.path}: notebooks: the configuration lists no notebooks; allowed: a list of "
                          "notebook paths (relative to the configuration file)", key="notebooks")
    declared_by: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for i, spec in enumerate(cfg.notebooks):
        key = f"notebooks[{i}]"
        if not spec.path.is_file():
            raise ConfigError(f"{cfg.path}: {key}.path: notebook not found: {spec.path}; allowed: an existing "
                              ".ipynb file (paths are relative to the configuration file)", key=f"{key}.path")
        if spec.name in seen:
            raise ConfigError(f"{cfg.path}: {key}.path: a second notebook named {spec.name!r} "
                              f"(also notebooks[{seen[spec.name]}]); allowed: distinct file names, since each "
                              "notebook gets a run folder of its own name", key=f"{key}.path")
        seen[spec.name] = i
        try:
            declared = pm.inspect_notebook(str(spec.path))
        except Exception as e:  # noqa: BLE001 - unreadable notebook: one clear message
            raise ConfigError(f"{cfg.path}: {key}.path: {spec.path.name} is not a readable notebook "
                              f"({type(e).__name__}: {e})", key=f"{key}.path") from None
        declared_by[spec.name] = declared
        unknown = sorted(set(spec.parameters) - set(declared))
        if unknown:
            raise ConfigError(
                f"{cfg.path}: {key}.parameters.{unknown[0]}: not declared in the parameters cell of "
                f"{spec.path.name}; allowed: {', '.join(sorted(declared)) or '(none)'}",
                key=f"{key}.parameters.{unknown[0]}")
        passed = notebook_parameters(spec, cfg, declared, {k: "" for k in RUNNER_PARAMETERS})
        for name, value in passed.items():
            if name in RUNNER_PARAMETERS and name not in spec.parameters:
                continue
            ok, allowed = _compatible(value, declared[name].get("inferred_type_name"))
            if not ok:
                where = f"{key}.parameters.{name}" if name in spec.parameters else f"parameters.{name}"
                raise ConfigError(
                    f"{cfg.path}: {where}: {value!r} ({type(value).__name__}) does not fit the type {allowed} "
                    f"that {spec.path.name} declares for {name!r}; allowed: a {allowed}", key=where)
    used = set(STAGE_PARAMETERS).union(*[set(d) for d in declared_by.values()])
    unused = sorted(set(cfg.parameters) - used)
    if unused:
        raise ConfigError(
            f"{cfg.path}: parameters.{unused[0]}: used by no notebook of this configuration and not by the "
            f"stage; allowed: {', '.join(sorted(used))}", key=f"parameters.{unused[0]}")
    return declared_by


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

def _range_from_quality(quality: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day from the quality table's ``date range`` row (``YYYY-MM-DD to YYYY-MM-DD``)."""
    row = quality.loc[quality["check"] == "date range", "action"]
    first, last = str(row.iloc[0]).split(" to ")
    return pd.Timestamp(first), pd.Timestamp(last)


def validate_data(cfg: Config, keep_days: bool = False) -> DataCheck:
    """Validate the configured log once, with the configured engine.

    With DuckDB the counts of customers and repeat buyers are taken on the log's customer-day
    table (:class:`helpers.aggregates_log.CustomerDays`, built once every rule has passed), the
    table the stage's summaries and aggregates read; ``keep_days`` keeps it open in
    :attr:`DataCheck.days` for :func:`helpers.stage.compute_stage` (on 1e6 customers, 11.8e6 rows:
    the table 3.1 s and the counts on it 0.4 s, where grouping the log by customer took 3.5 s and
    the stage then built the table again).  Otherwise it is closed before this returns.

    Raises
    ------
    ConfigError
        ``data.path`` names nothing (and there is no ``simulate`` section).
    DataValidationError
        A validation rule is broken (column, rule, row count, up to five example rows).
    """
    ensure_data(cfg)
    try:
        sha = file_sha256(cfg.data_path)
    except FileNotFoundError as e:
        raise ConfigError(f"{cfg.path}: data.path: {e}; allowed: a CSV or Parquet file, a directory or a glob "
                          "(relative to the configuration file)", key="data.path") from None
    engine = engine_of(cfg)
    configured_end = cfg.data.get("observation_end")
    data = None
    counts: dict = {}
    built: list = []        # DuckDB: the customer-day table, once the validation has built it
    try:
        if engine == "pandas":
            data = load_data(cfg)
            quality, counts = data.quality, dict(data.counts)
            first, last = data.first_date.normalize(), data.last_date.normalize()
        elif engine == "duckdb":
            from .aggregates import customer_days  # noqa: PLC0415

            eng = engine_module("duckdb")

            def customer_counts():
                # the configured end filters as the validation's does; without one no row lies after the last day
                built.append(customer_days(cfg, pd.Timestamp(configured_end).normalize() if configured_end else None))
                return built[0].customer_counts()

            quality = eng.validate_duckdb(cfg.data["path"], customer_counts=customer_counts,
                                          **load_options(cfg, eng.validate_duckdb))
            counts = dict(quality.attrs.get("counts", {}))
            first, last = _range_from_quality(quality)
        else:  # spark: the same rules and the same data-quality table, on the cluster
            eng = engine_module("spark")
            quality = eng.validate_spark(cfg.data["path"], **validation_kwargs(cfg.data))
            counts = dict(quality.attrs.get("counts", {}))
            first, last = _range_from_quality(quality)
        # a log too small for the models fails here, before any model or kernel (data.min_customers)
        check_modelable(counts, min_customers=int(cfg.data.get("min_customers", DEFAULT_MIN_CUSTOMERS)))
    except BaseException:
        for table in built:
            table.close()
        raise
    days = built[0] if built and keep_days else None
    if built and not keep_days:
        built[0].close()
    obs_end = pd.Timestamp(configured_end).normalize() if configured_end else last
    return DataCheck(engine=engine, sha256=sha, quality=quality, first_day=first, last_day=last,
                     observation_end=obs_end, has_amounts=cfg.has_amounts, data=data, counts=counts, days=days)


def first_purchases(cfg: Config, check: DataCheck) -> pd.Series:
    """Each customer's first purchase day (indexed by customer id), from what the data check holds."""
    if check.data is not None:
        return check.data.transactions.groupby("customer_id", sort=True)["date"].min()
    from .engines import summarise  # noqa: PLC0415

    full = summarise(cfg, time_unit=cfg.settings.time_unit, engine=check.engine, validate=False)
    return full["first_purchase"].sort_index()


def validate_covariates(cfg: Config, check: DataCheck):
    """Validate the covariate tables of ``data.covariates`` against the validated log (None without covariates).

    Raises
    ------
    DataValidationError
        A covariate rule is broken (:mod:`helpers.covariates_data`: column, rule, count, examples).
    ConfigError
        A covariate table's file does not exist.
    """
    if not cfg.has_covariates:
        return None
    from .covariates_data import covariates_for_config  # noqa: PLC0415

    try:
        return covariates_for_config(cfg, first_purchases(cfg, check), check.observation_end)
    except ConfigError as e:
        raise ConfigError(f"{cfg.path}: {e}; allowed: a CSV (also .csv.gz) or Parquet file (relative to the "
                          "configuration file)", key=e.key) from None


def check_calibration(cfg: Config, check: DataCheck) -> None:
    """``calibration_end`` (shared, and any per-notebook one) is set and inside the data's date range.

    Raises
    ------
    ConfigError
        Naming the key; the message states the allowed range.
    """
    cal_end = cfg.settings.calibration_end
    if cal_end is None:
        raise ConfigError(
            f"{cfg.path}: parameters.calibration_end: required key missing (the stage splits the log into a "
            f"calibration and a holdout period to compare the models); allowed: a day from "
            f"{check.first_day.date()} to the day before {check.observation_end.date()}",
            key="parameters.calibration_end")
    keys = [("parameters.calibration_end", cal_end)]
    keys += [(f"notebooks[{i}].parameters.calibration_end", nb.parameters["calibration_end"])
             for i, nb in enumerate(cfg.notebooks) if "calibration_end" in nb.parameters]
    n_rows = int(check.counts.get("rows_used", check.counts.get("customers", 0)))
    for key, value in keys:
        try:
            check_calibration_end(value, check.first_day, check.observation_end, n_rows)
        except (ValueError, TypeError) as e:
            rule = e.rule if isinstance(e, DataValidationError) else f"not a date: {value!r}"
            raise ConfigError(f"{cfg.path}: {key}: {rule}", key=key) from None


def preflight(config: Config | str | Path, keep_days: bool = False) -> Preflight:
    """Every check that needs no kernel, in order: schema, notebooks, data, covariates, calibration end.

    ``keep_days``: keep the DuckDB customer-day table of the validation for the stage
    (:func:`validate_data`); whoever asks for it passes the result to
    :func:`helpers.stage.compute_stage`, which closes it, or calls ``result.data.close()``.

    Returns
    -------
    Preflight
        With the validated data, for :func:`helpers.stage.compute_stage`.

    Raises
    ------
    ConfigError, DataValidationError
        The first problem found, as one message.
    """
    t0 = time.perf_counter()
    cfg = config if isinstance(config, Config) else load_config(config)
    declared = check_notebooks(cfg)
    check = validate_data(cfg, keep_days=keep_days)
    try:
        covariates = validate_covariates(cfg, check)
        check_calibration(cfg, check)
    except BaseException:
        check.close()
        raise
    return Preflight(cfg=cfg, declared=declared, data=check, seconds=time.perf_counter() - t0,
                     covariates=covariates)
