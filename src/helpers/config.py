"""Run configurations: which data, how to read it, which model, how to value, which notebooks.

A configuration is a YAML file (see ``configs/cdnow.yaml``) checked against a
typed schema (pydantic): an unknown key, a wrong type or a value that is not
allowed raises one :class:`ConfigError` that names the key and says what is
allowed.  Every path in it is relative to the file's own folder.  Notebooks
load their configuration with :func:`load_config` and their data with
:func:`load_data`, so the same notebook runs on CDNOW, on a simulated retailer
or on your own log.

Sections
--------
``data``
    the log: ``path``, ``columns`` (``customer_id``, ``date`` and, optionally,
    ``amount``: omitted or ``null`` means the log has no amounts), the
    validation policies and ``engine`` (pandas, duckdb, spark); optionally
    ``covariates`` (:class:`CovariatesSpec`): a static table (one row per
    customer) and/or a dynamic one (one row per customer per period), which
    columns go to which process, the categorical columns and their reference
    levels (loaded and validated by :mod:`helpers.covariates_data`).
``parameters``
    notebook parameters shared by every notebook that declares them
    (``time_unit``, ``calibration_end``, ...); the shared analysis stage
    (:mod:`helpers.stage`) reads ``time_unit``, ``calibration_end``,
    ``penalizer`` and ``corr_threshold`` from here.
``model``
    ``auto`` (the holdout rule :func:`helpers.validation.recommend_model`) or
    the name of a frequency model.
``valuation``
    ``horizon_months``, ``monthly_discount_rate``, ``margin``, ``currency``
    and, for a log without amounts, ``value_per_purchase`` (money per purchase).
``notebooks``
    the notebooks to run, each with its own ``parameters``.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .data import POLICIES, TransactionData, load_transactions

__all__ = [
    "Config",
    "ConfigError",
    "ConfigSchema",
    "DataSpec",
    "CovariatesSpec",
    "CovariateTable",
    "DynamicCovariateTable",
    "Categorical",
    "Valuation",
    "SharedParameters",
    "ENGINES",
    "load_config",
    "load_data",
    "ensure_data",
    "load_options",
    "PROJECT_ROOT",
]

#: The project folder (``src/helpers/config.py`` -> project root).
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Summary engines a configuration may choose (``data.engine``).
ENGINES = ("pandas", "duckdb", "spark")


class ConfigError(ValueError):
    """A configuration is malformed.

    Attributes
    ----------
    key : str
        The (first) offending key, dotted (``data.columns.amount``,
        ``notebooks[1].parameters.scale``).
    problems : list of (key, message)
        Every problem found, each naming what is allowed.
    """

    def __init__(self, message: str, key: str = "", problems: list[tuple[str, str]] | None = None):
        self.key = key
        self.problems = problems or ([(key, message)] if key else [])
        super().__init__(message)


# ---------------------------------------------------------------------------
# the schema
# ---------------------------------------------------------------------------

def _iso_date(v: Any) -> Any:
    """A calendar day as ``YYYY-MM-DD`` (YAML may give a date object, a string or a timestamp)."""
    if v is None:
        return v
    if isinstance(v, (_dt.date, _dt.datetime, pd.Timestamp)):
        return pd.Timestamp(v).date().isoformat()
    if isinstance(v, str):
        try:
            ts = pd.Timestamp(v)
        except (ValueError, TypeError):
            raise ValueError(f"not a date: {v!r}; allowed: a date such as '2024-06-30'") from None
        if pd.isna(ts):
            raise ValueError(f"not a date: {v!r}; allowed: a date such as '2024-06-30'")
        return ts.date().isoformat()
    raise ValueError(f"not a date: {v!r}; allowed: a date such as '2024-06-30'")


IsoDate = Annotated[str, BeforeValidator(_iso_date)]


def _plain(v: Any) -> Any:
    """Dates in free-form parameters become ISO strings (papermill passes literals)."""
    if isinstance(v, (_dt.date, _dt.datetime)):
        return _iso_date(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Columns(_Section):
    """Column names in the log; ``amount`` omitted or null: the log has no amounts."""

    customer_id: str = "customer_id"
    date: str = "date"
    amount: str | None = None


class CovariateTable(_Section):
    """``data.covariates.static``: a table with one row per customer (a path, or this mapping).

    ``customer_id`` is the table's id column (default: the log's,
    ``data.columns.customer_id``); every other column listed under a process
    is a covariate.
    """

    path: str
    customer_id: str | None = None
    encoding: str = "utf-8"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v):
        return {"path": v} if isinstance(v, str) else v


class DynamicCovariateTable(CovariateTable):
    """``data.covariates.dynamic``: one row per customer per period, ``date`` the period's start day.

    ``period`` is the length of a period (``W`` a week, ``D`` a day, ``M`` a
    calendar month); the periods of every customer must cover the
    observation window without gaps.
    """

    date: str = "date"
    date_format: str | None = None
    period: Literal["D", "W", "M"] = "W"


class Categorical(_Section):
    """One categorical covariate: its reference level (None: the most frequent level, stated in the report)."""

    reference: str | int | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_value(cls, v):
        return {"reference": v} if isinstance(v, (str, int)) and not isinstance(v, bool) else (
            {} if v is None else v)


class CovariatesSpec(_Section):
    """The ``data.covariates`` section: covariate tables and which columns go to which process.

    ``purchase``, ``attrition`` (the frequency models' two processes) and
    ``spend`` (the Gamma-Gamma scale) list column names of the tables; a
    column of the static table is a static covariate, one found only in the
    dynamic table a time-varying one (used by the time-varying Pareto/NBD).
    ``categorical`` names the columns that are categories, each with its
    reference level; they enter the models as dummies named
    ``<column>[<level>]`` (every level but the reference).
    ``constrain_equal`` lists covariates whose coefficient is the same in
    the purchase and the attrition process; ``penalizer`` is an L2 penalty on
    the coefficients.  ``unknown_customers``: covariate rows for customers
    that are not in the log are excluded and counted (``exclude``, default)
    or are an error.
    """

    static: CovariateTable | None = None
    dynamic: DynamicCovariateTable | None = None
    purchase: list[str] = []
    attrition: list[str] = []
    spend: list[str] = []
    constrain_equal: list[str] = []
    penalizer: float = Field(0.0, ge=0)
    categorical: dict[str, Categorical] = {}
    unknown_customers: Literal["exclude", "error"] = "exclude"

    @model_validator(mode="before")
    @classmethod
    def _lenient_numbers(cls, v):
        if isinstance(v, dict) and isinstance(v.get("penalizer"), int) and not isinstance(v.get("penalizer"), bool):
            v = {**v, "penalizer": float(v["penalizer"])}
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.static is None and self.dynamic is None:
            raise ValueError("names no covariate table; allowed: static (one row per customer) and/or dynamic "
                             "(one row per customer per period)")
        listed = [*self.purchase, *self.attrition, *self.spend]
        if not listed:
            raise ValueError("assigns no covariate to a process; allowed: column names under purchase, "
                             "attrition and/or spend")
        for key in ("purchase", "attrition", "spend", "constrain_equal"):
            values = getattr(self, key)
            dup = sorted({c for c in values if values.count(c) > 1})
            if dup:
                raise ValueError(f"{key} lists {dup[0]!r} twice; allowed: each column once")
        both = set(self.purchase) & set(self.attrition)
        bad = [c for c in self.constrain_equal if c not in both]
        if bad:
            raise ValueError(f"constrain_equal names {bad[0]!r}, which is not under both purchase and attrition; "
                             f"allowed: {', '.join(sorted(both)) or '(no column is under both)'}")
        unused = [c for c in self.categorical if c not in listed]
        if unused:
            raise ValueError(f"categorical names {unused[0]!r}, which no process uses; allowed: "
                             f"{', '.join(dict.fromkeys(listed))}")
        return self


class DataSpec(_Section):
    """The ``data`` section: where the log is, how to read it, the validation policies."""

    path: str
    columns: Columns = Columns()
    date_format: str | None = None
    observation_end: IsoDate | None = None
    negative_amounts: Literal[POLICIES["negative_amounts"]] = "error"  # type: ignore[valid-type]
    duplicates: Literal[POLICIES["duplicates"]] = "keep"  # type: ignore[valid-type]
    after_observation_end: Literal[POLICIES["after_observation_end"]] = "exclude"  # type: ignore[valid-type]
    show_customer_ids: bool = False
    description: str = ""
    engine: Literal[ENGINES] = "pandas"  # type: ignore[valid-type]
    # data rules (helpers.data): text encoding, plausible amounts and dates, a minimum base
    encoding: str = "utf-8"
    max_abs_amount: float = Field(1e9, gt=0)
    min_date: IsoDate = "1970-01-01"
    max_date: IsoDate | None = None          # None: today
    implausible_dates: Literal["error", "exclude"] = "error"
    min_customers: int = Field(10, ge=1)
    # a discrete-time log (BG/BB): one transaction opportunity per period of this length
    opportunity_period: Literal["Y", "Q", "M", "W"] | None = None
    # covariates: static and time-varying customer attributes (helpers.covariates_data)
    covariates: CovariatesSpec | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown text encoding {v!r}; allowed: a Python codec name such as "
                             "'utf-8', 'latin-1' or 'cp1252'") from None
        return v

    @model_validator(mode="after")
    def _date_window(self):
        end = self.max_date or _dt.date.today().isoformat()
        if self.min_date >= end:
            raise ValueError(f"min_date {self.min_date} must be before max_date {end}")
        return self


class SharedParameters(BaseModel):
    """The ``parameters`` section: passed to every notebook that declares them.

    The stage reads the four typed ones; any other key is a notebook
    parameter (checked against the notebooks' parameters cells before a run).
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    time_unit: Literal["D", "W", "M"] = "W"
    calibration_end: IsoDate | None = None
    penalizer: float = Field(0.0, ge=0)
    corr_threshold: float = Field(0.3, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, v):
        return _plain(v) if isinstance(v, dict) else v


class Valuation(_Section):
    """The ``valuation`` section: how every notebook values customers."""

    horizon_months: int = Field(12, ge=1, le=1200)
    monthly_discount_rate: float = Field(0.01, ge=0, lt=1)
    margin: float = Field(0.3, gt=0, le=1)
    currency: str = Field("USD", min_length=1)
    value_per_purchase: float | None = Field(None, gt=0)


class NotebookEntry(_Section):
    path: str
    parameters: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v):
        if isinstance(v, str):
            return {"path": v}
        if isinstance(v, dict) and isinstance(v.get("parameters"), dict):
            return {**v, "parameters": _plain(v["parameters"])}
        return v


class ConfigSchema(_Section):
    """The whole configuration file."""

    name: str | None = None
    description: str = ""
    data: DataSpec
    parameters: SharedParameters = SharedParameters()
    model: str = "auto"
    models: list[str] | None = None
    valuation: Valuation = Valuation()
    notebooks: list[NotebookEntry] = []
    cell_timeout_s: int = Field(600, gt=0)
    simulate: dict[str, Any] | None = None

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v == "auto":
            return v
        from .stage import frequency_model_names  # noqa: PLC0415  (models are imported only when named)

        names = frequency_model_names()
        if v not in names:
            raise ValueError(f"unknown model {v!r}; allowed: 'auto' or one of {', '.join(map(repr, names))}")
        return v

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        from .stage import frequency_model_names  # noqa: PLC0415

        names = frequency_model_names()
        unknown = [m for m in v if m not in names]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(map(repr, names))}")
        if not v:
            raise ValueError("at least one model is needed; omit the key to fit every registered model")
        if len(set(v)) != len(v):
            raise ValueError(f"a model is listed twice: {v}")
        return v

    @model_validator(mode="after")
    def _configured_model_among_the_candidates(self):
        if self.models is not None and self.model != "auto" and self.model not in self.models:
            raise ValueError(f"model {self.model!r} is not among models {self.models}; allowed: add it to models, "
                             "or model: auto")
        return self

    @model_validator(mode="after")
    def _value_per_purchase_only_without_amounts(self):
        if self.valuation.value_per_purchase is not None and self.data.columns.amount is not None:
            raise ValueError(
                "valuation.value_per_purchase is for logs without amounts, but data.columns.amount maps "
                f"{self.data.columns.amount!r}; allowed: drop value_per_purchase, or set columns.amount: null")
        return self


# ---------------------------------------------------------------------------
# error messages: the key and what is allowed
# ---------------------------------------------------------------------------

_SECTIONS: dict[tuple, type[BaseModel]] = {
    (): ConfigSchema, ("data",): DataSpec, ("data", "columns"): Columns,
    ("data", "covariates"): CovariatesSpec, ("data", "covariates", "static"): CovariateTable,
    ("data", "covariates", "dynamic"): DynamicCovariateTable,
    ("data", "covariates", "categorical", "*"): Categorical,
    ("valuation",): Valuation, ("notebooks", "*"): NotebookEntry,
}


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(err: dict) -> tuple[str, str]:
    loc = tuple(err["loc"])
    key = _dotted(loc) or "(top level)"
    kind = err["type"]
    given = err.get("input")
    if kind == "extra_forbidden":
        parent = tuple("*" if isinstance(p, int) else p for p in loc[:-1])
        if parent[:3] == ("data", "covariates", "categorical") and len(parent) == 4:
            parent = parent[:3] + ("*",)
        section = _SECTIONS.get(parent)
        allowed = ", ".join(section.model_fields) if section else "see the documentation"
        return key, f"unknown key; allowed keys here: {allowed}"
    if kind == "missing":
        return key, "required key missing"
    if kind == "literal_error":
        return key, f"got {given!r}; allowed: {err['ctx']['expected']}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        return key, msg[len("Value error, "):]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return key, f"{msg} (got {given!r} of type {type(given).__name__})"
    return key, f"{msg} (got {given!r})"


def _config_error(path: Path, exc: ValidationError) -> ConfigError:
    problems = [_problem(e) for e in exc.errors(include_url=False)]
    if len(problems) == 1:
        key, msg = problems[0]
        text = f"{path}: {key}: {msg}"
    else:
        text = f"{path}: {len(problems)} configuration errors:\n" + "\n".join(f"  {k}: {m}" for k, m in problems)
    return ConfigError(text, key=problems[0][0], problems=problems)


# ---------------------------------------------------------------------------
# the parsed configuration
# ---------------------------------------------------------------------------

@dataclass
class NotebookSpec:
    path: Path
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass
class Config:
    """A parsed run configuration (paths resolved to absolute).

    Attributes
    ----------
    name, path, description
    data : dict
        The ``data`` section with every key (defaults filled in), ``path``
        absolute, ``columns["amount"]`` None for a log without amounts and
        ``max_date`` resolved (default: today).
    parameters : dict
        The shared notebook parameters as written in the file (defaults are
        *not* added: a notebook's own default applies to what the file omits).
    notebooks : list of NotebookSpec
    model : str
        ``"auto"`` or a frequency model name.
    models : tuple of str or None
        The frequency models the stage fits and compares (``models:``); None:
        every registered model that applies to the log.
    valuation : Valuation
        ``horizon_months``, ``monthly_discount_rate``, ``margin``,
        ``currency``, ``value_per_purchase`` (attributes).
    settings : SharedParameters
        The shared parameters with defaults (``time_unit``, ``calibration_end``,
        ``penalizer``, ``corr_threshold``): what the stage uses.
    spec : ConfigSchema
        The validated file.
    raw : dict
        The YAML as read.
    """

    name: str
    path: Path
    data: dict[str, Any]
    parameters: dict[str, Any]
    notebooks: list[NotebookSpec]
    cell_timeout_s: int = 600
    description: str = ""
    simulate: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    model: str = "auto"
    models: tuple[str, ...] | None = None
    valuation: Valuation = field(default_factory=Valuation)
    settings: SharedParameters = field(default_factory=SharedParameters)
    spec: ConfigSchema | None = None

    @property
    def data_path(self) -> Path:
        return Path(self.data["path"])

    @property
    def show_customer_ids(self) -> bool:
        return bool(self.data.get("show_customer_ids", False))

    @property
    def has_amounts(self) -> bool:
        """Whether the configuration maps an amount column."""
        return self.data["columns"].get("amount") is not None

    @property
    def has_covariates(self) -> bool:
        """Whether the configuration names covariate tables (``data.covariates``)."""
        return self.data.get("covariates") is not None

    @property
    def data_keys_set(self) -> set[str]:
        """The ``data`` keys the file sets explicitly."""
        return set(self.spec.data.model_fields_set) if self.spec is not None else set(self.data)


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base / q).resolve()


def _find(config: str | Path) -> Path:
    p = Path(config)
    if not p.suffix and not p.exists():
        p = PROJECT_ROOT / "configs" / f"{config}.yaml"
    if not p.exists():
        raise ConfigError(f"configuration file not found: {config}", key="(file)")
    return p.resolve()


def load_config(config: str | Path) -> Config:
    """Read and check a YAML run configuration.

    Parameters
    ----------
    config : str or Path
        A path to a YAML file, or the bare name of a file in the project's
        ``configs/`` folder (``"cdnow"`` -> ``configs/cdnow.yaml``).

    Raises
    ------
    ConfigError
        The file is missing or not YAML, or breaks the schema: unknown keys,
        wrong types, values that are not allowed (one error naming every
        offending key and what is allowed).
    """
    p = _find(config)
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}", key="(file)") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: top level must be a mapping of keys (name, data, notebooks, ...)",
                          key="(top level)")
    try:
        spec = ConfigSchema.model_validate(raw)
    except ValidationError as e:
        raise _config_error(p, e) from None
    base = p.parent
    data = spec.data.model_dump()
    data["path"] = str(_resolve(base, spec.data.path))
    data["max_date"] = spec.data.max_date or _dt.date.today().isoformat()
    for kind in ("static", "dynamic"):
        if data.get("covariates") and data["covariates"].get(kind):
            data["covariates"][kind]["path"] = str(_resolve(base, data["covariates"][kind]["path"]))
    notebooks = [NotebookSpec(_resolve(base, nb.path), dict(nb.parameters)) for nb in spec.notebooks]
    return Config(
        name=str(spec.name or p.stem),
        path=p,
        data=data,
        parameters=spec.parameters.model_dump(exclude_unset=True),
        notebooks=notebooks,
        cell_timeout_s=spec.cell_timeout_s,
        description=spec.description,
        simulate=spec.simulate,
        raw=raw,
        model=spec.model,
        models=tuple(spec.models) if spec.models is not None else None,
        valuation=spec.valuation,
        settings=spec.parameters,
        spec=spec,
    )


def ensure_data(cfg: Config) -> Path:
    """Make sure the configured data file exists; generate it if the config says how.

    A configuration may carry a ``simulate`` section (used by the simulated
    retailer): the log is then generated deterministically from its seed the
    first time it is needed, and cached at ``data.path``.  A ``simulate``
    section with ``covariates`` (and ``model``, ``params``, ``gammas``) also
    writes the static covariate table at ``data.covariates.static``
    (:func:`helpers.simulate.write_simulated_covariate_log`).
    """
    path = cfg.data_path
    if cfg.simulate is not None and "covariates" in cfg.simulate:
        # a simulated log with a static covariate table (helpers.simulate.simulate_with_covariates)
        table = Path(((cfg.data.get("covariates") or {}).get("static") or {}).get("path", ""))
        if not table.name:
            raise ConfigError(f"{cfg.path}: simulate.covariates: the simulated covariate table needs "
                              "data.covariates.static (its path)", key="data.covariates.static")
        if not (path.exists() and table.exists()):
            from .simulate import write_simulated_covariate_log  # noqa: PLC0415

            write_simulated_covariate_log(path, table, **cfg.simulate)
        return path
    if path.exists() or cfg.simulate is None:
        return path
    from .simulate import write_simulated_log  # noqa: PLC0415  (optional dependency direction)

    write_simulated_log(path, **cfg.simulate)
    return path


#: ``data`` keys that are validation rules of the readers (helpers.data and the engines).
RULE_KEYS = ("encoding", "max_abs_amount", "min_date", "max_date", "implausible_dates")
# (data.min_customers is not a reader option: the pre-flight applies it with helpers.data.check_modelable)


def load_options(cfg: Config, reader=None) -> dict[str, Any]:
    """Keyword arguments of a log reader (:func:`helpers.data.load_transactions` by default).

    The column mapping and the validation policies of ``cfg.data``; the rule
    keys of :data:`RULE_KEYS` are passed when ``reader`` accepts them.  A rule
    key the file sets to a non-default value that ``reader`` does not accept
    raises :class:`ConfigError` rather than being ignored.
    """
    reader = reader or load_transactions
    d = cfg.data
    cols = d["columns"]
    opts: dict[str, Any] = dict(
        customer_id=cols["customer_id"], date=cols["date"], amount=cols.get("amount"),
        date_format=d.get("date_format"), observation_end=d.get("observation_end"),
        negative_amounts=d.get("negative_amounts", "error"), duplicates=d.get("duplicates", "keep"),
        after_observation_end=d.get("after_observation_end", "exclude"),
    )
    accepted = inspect.signature(reader).parameters
    defaults = DataSpec.model_fields
    for key in RULE_KEYS:
        if key in accepted:
            opts[key] = d[key]
        elif key in cfg.data_keys_set and d[key] != defaults[key].default:
            name = f"{reader.__module__}.{reader.__qualname__}"
            raise ConfigError(f"{cfg.path}: data.{key}: {d[key]!r} is not supported by {name} (engine "
                              f"{d.get('engine', 'pandas')!r}); allowed: the default "
                              f"{defaults[key].default!r}, or another engine", key=f"data.{key}")
    return opts


def load_data(cfg: Config | str | Path) -> TransactionData:
    """Load and validate the transaction log a configuration names."""
    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    ensure_data(cfg)
    return load_transactions(cfg.data["path"], **load_options(cfg))
