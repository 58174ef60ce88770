"""Compact tables of the log, computed once by the configured engine so that no notebook holds the log.

The per-customer summaries (:mod:`helpers.summary` and its DuckDB and Spark
twins) are what the models need; the reports also need per-period views of
the log: repeat purchases per day for the tracking plots, first-purchase
cohorts, the distribution of the days between purchases, the revenue
bridge, cohort retention, first-versus-repeat order values.  Each of them is
small (a row per day, period or cohort), whatever the size of the log, and
each is computed by the same engine that made the summaries (pandas, DuckDB
SQL or Spark DataFrame operations), inside the shared analysis stage
(:mod:`helpers.stage`), and saved with it.  Notebooks read them from
``stage.aggregates``.

A *producer* is a module with a function ``compute(ctx) -> dict[str,
DataFrame]``; its tables are named ``<producer>.<table>``.  Producers are
listed in :data:`PRODUCERS` (adding a family of tables is one module and one
line here).  Engine equality (pandas = DuckDB = Spark) is tested per table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["AggregateContext", "PRODUCERS", "compute_all", "customer_days"]

#: Producer modules (inside ``helpers``), in the order they run.
PRODUCERS: tuple[str, ...] = ("aggregates_log", "aggregates_revenue")


@dataclass
class AggregateContext:
    """What a producer needs to compute its tables.

    Attributes
    ----------
    cfg : Config
        The run's configuration (``cfg.data`` holds the path, the column
        mapping and the validation policies).
    engine : str
        ``"pandas"``, ``"duckdb"`` or ``"spark"``.
    transactions : DataFrame or None
        The validated log (pandas engine only; None otherwise).
    returns : DataFrame or None
        Rows set aside as returns by the validation policy (pandas engine only).
    calibration_end, observation_end : Timestamp
    time_unit : str
        The models' time unit (``"D"``, ``"W"``, ``"M"``).
    has_amounts : bool
    customers_cal : Index
        Customers of the calibration summary (first purchase by the calibration end).
    example_ids : tuple of str
        Customers whose purchase days the stage fetches for the reports' examples
        (:func:`helpers.aggregates_log.example_pool`).
    duckdb_days : CustomerDays or None
        DuckDB engine: the log's customer-day table (:class:`helpers.aggregates_log.CustomerDays`),
        built once by :func:`compute_all` for every producer, so the log is scanned once.
    """

    cfg: Any
    engine: str
    transactions: pd.DataFrame | None
    returns: pd.DataFrame | None
    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp
    time_unit: str
    has_amounts: bool
    customers_cal: pd.Index
    example_ids: tuple = ()
    duckdb_days: Any = None


def customer_days(cfg, observation_end):
    """The log's customer-day table in DuckDB (:class:`helpers.aggregates_log.CustomerDays`) for a configuration."""
    from .aggregates_log import CustomerDays  # noqa: PLC0415
    from .config import ensure_data, load_options  # noqa: PLC0415

    ensure_data(cfg)
    opts = load_options(cfg, CustomerDays)
    opts["observation_end"] = observation_end
    return CustomerDays(cfg.data["path"], **opts)


def compute_all(ctx: AggregateContext) -> dict[str, pd.DataFrame]:
    """Every producer's tables, named ``<producer>.<table>``."""
    out: dict[str, pd.DataFrame] = {}
    built = ctx.engine == "duckdb" and ctx.duckdb_days is None
    if built:
        ctx.duckdb_days = customer_days(ctx.cfg, ctx.observation_end)
    try:
        for name in PRODUCERS:
            module = importlib.import_module(f"{__package__}.{name}")
            for table, frame in module.compute(ctx).items():
                out[f"{name}.{table}"] = frame
    finally:
        if built:
            ctx.duckdb_days.close()
            ctx.duckdb_days = None
    return out
