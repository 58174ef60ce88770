"""Choose where per-customer summaries are computed: pandas, DuckDB or Spark.

A configuration selects the engine with ``data.engine``:

``pandas`` (default)
    the validated log is loaded into memory (:func:`helpers.config.load_data`)
    and summarised by :mod:`helpers.summary`; fine up to tens of millions of rows.
``duckdb``
    the log (CSV or Parquet, a file, directory or glob) is aggregated by DuckDB
    out of core (:mod:`helpers.summary_duckdb`); only the compact summary comes
    back into pandas.  For logs of 1e8 rows on one machine.
``spark``
    the log is aggregated by Apache Spark (:mod:`helpers.summary_spark`),
    locally or on a cluster (``CLV_LAB_SPARK_MASTER``); only the summary comes
    back to the driver.  For logs that outgrow one machine.

All three produce the same summary (tests compare them on CDNOW), with the
validation policies of the configuration applied.  Model fitting, valuation
and segmentation then run on the summary, whatever engine made it.
"""

from __future__ import annotations

import pandas as pd

from .config import ENGINES, Config, ensure_data, load_config, load_data, load_options
from .data import DEFAULT_MIN_CUSTOMERS, check_modelable, validation_kwargs
from .summary import calibration_holdout, rfm_summary

__all__ = ["ENGINES", "engine_of", "summarise", "engine_module", "validate"]


def engine_of(cfg: Config) -> str:
    """The configured summary engine (``data.engine``, default ``"pandas"``)."""
    engine = str(cfg.data.get("engine", "pandas")).lower()
    if engine not in ENGINES:
        raise ValueError(f"{cfg.path}: data.engine must be one of {ENGINES}, got {engine!r}")
    return engine


def engine_module(engine: str):
    """The module of an out-of-core engine (imported on first use)."""
    if engine == "duckdb":
        from . import summary_duckdb  # noqa: PLC0415 - optional engine
        return summary_duckdb
    if engine == "spark":
        from . import summary_spark  # noqa: PLC0415 - optional engine (needs pyspark and Java)
        return summary_spark
    raise ValueError(f"engine {engine!r} has no separate module; allowed: 'duckdb' or 'spark'")


def summarise(
    cfg: Config | str,
    calibration_end: str | None = None,
    time_unit: str = "W",
    engine: str | None = None,
    transactions: pd.DataFrame | None = None,
    validate: bool = True,
) -> pd.DataFrame:
    """Per-customer summary of a configuration's log with the configured engine.

    Parameters
    ----------
    cfg : Config or path
    calibration_end : date, optional
        With a calibration end: :func:`helpers.summary.calibration_holdout`
        (calibration summary plus holdout columns); without:
        :func:`helpers.summary.rfm_summary` over the whole observation period.
    time_unit : {"D", "W", "M"}
    engine : {"pandas", "duckdb", "spark"}, optional
        Overrides ``data.engine``.
    transactions : DataFrame, optional
        Already validated transactions (pandas engine only; avoids a reload).
    validate : bool
        DuckDB engine: run the validation rules in SQL first
        (:func:`helpers.summary_duckdb.validate_duckdb`), so a broken log fails
        with the same message as with the pandas engine.

    Returns
    -------
    DataFrame indexed by ``customer_id`` (see :mod:`helpers.summary`).
    """
    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    engine = engine or engine_of(cfg)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    d = cfg.data
    observation_end = d.get("observation_end")
    if engine == "pandas":
        tx = transactions if transactions is not None else load_data(cfg).transactions
        if observation_end is None:
            observation_end = tx["date"].max()
        if calibration_end is None:
            return rfm_summary(tx, observation_end=observation_end, time_unit=time_unit)
        return calibration_holdout(tx, calibration_end, observation_end, time_unit=time_unit)

    ensure_data(cfg)
    eng = engine_module(engine)
    if engine == "duckdb":
        rfm, cal = eng.rfm_summary_duckdb, eng.calibration_holdout_duckdb
        if validate:
            eng.validate_duckdb(d["path"], **load_options(cfg, eng.validate_duckdb))
    else:
        rfm, cal = eng.rfm_summary_spark, eng.calibration_holdout_spark
    reader = rfm if calibration_end is None else cal
    common = load_options(cfg, reader)
    common.pop("observation_end")
    if engine == "duckdb":
        common.pop("after_observation_end")  # DuckDB's summaries exclude late rows; validate_duckdb applies the policy
    if calibration_end is None:
        return rfm(d["path"], observation_end=observation_end, time_unit=time_unit, **common)
    return cal(d["path"], calibration_end, observation_end=observation_end, time_unit=time_unit, **common)


def validate(cfg: Config | str, engine: str | None = None, modelable: bool = True) -> pd.DataFrame:
    """Validate a configuration's log once with the configured engine; optionally check it is modelable.

    Parameters
    ----------
    cfg : Config or path
    engine : {"pandas", "duckdb", "spark"}, optional
        Overrides ``data.engine``.
    modelable : bool
        Also run :func:`helpers.data.check_modelable` with ``data.min_customers``
        (default 10): a log too small for the models fails here, before any model.

    Returns
    -------
    DataFrame
        The data-quality table (the same for every engine); ``attrs["counts"]``
        holds the counts by name.

    Raises
    ------
    DataValidationError
        The first rule the log breaks (column, rule, row count, up to five
        example rows), or ``too_small``.
    """
    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    engine = engine or engine_of(cfg)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    d = cfg.data
    if engine == "pandas":
        td = load_data(cfg)
        quality = td.quality.copy()
        quality.attrs["counts"] = dict(td.counts)
    else:
        ensure_data(cfg)
        if engine == "duckdb":
            from .summary_duckdb import validate_duckdb as run  # noqa: PLC0415 - optional engine
        else:
            from .summary_spark import validate_spark as run  # noqa: PLC0415 - optional engine
        quality = run(d["path"], **validation_kwargs(d))
    if modelable:
        check_modelable(quality.attrs["counts"], min_customers=int(d.get("min_customers", DEFAULT_MIN_CUSTOMERS)))
    return quality
