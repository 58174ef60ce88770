"""Run configurations: which data, how to read it, which notebooks, which parameters.

A configuration is a YAML file (see ``configs/cdnow.yaml``).  Every path in it
is relative to the file's own folder.  Notebooks load their configuration with
:func:`load_config` and their data with :func:`load_data`, so the same
notebook runs on CDNOW, on a simulated retailer or on your own log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data import TransactionData, load_transactions, validation_kwargs

__all__ = ["Config", "ConfigError", "load_config", "load_data", "PROJECT_ROOT"]

#: The project folder (``src/helpers/config.py`` -> project root).
PROJECT_ROOT = Path(__file__).resolve().parents[2]

_DATA_KEYS = {
    "path", "columns", "date_format", "observation_end", "negative_amounts",
    "duplicates", "after_observation_end", "show_customer_ids", "description", "engine",
    # plausibility rules (helpers.data): encoding: str = "utf-8", max_abs_amount: float = 1e9,
    # min_date: date = "1970-01-01", max_date: date = today, implausible_dates: error | exclude,
    # min_customers: int = 10
    "encoding", "max_abs_amount", "min_date", "max_date", "implausible_dates", "min_customers",
}
_TOP_KEYS = {"name", "description", "data", "parameters", "notebooks", "cell_timeout_s", "simulate"}


class ConfigError(ValueError):
    """A configuration file is malformed."""


@dataclass
class NotebookSpec:
    path: Path
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass
class Config:
    """A parsed run configuration (paths resolved to absolute)."""

    name: str
    path: Path
    data: dict[str, Any]
    parameters: dict[str, Any]
    notebooks: list[NotebookSpec]
    cell_timeout_s: int = 600
    description: str = ""
    simulate: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def data_path(self) -> Path:
        return Path(self.data["path"])

    @property
    def show_customer_ids(self) -> bool:
        return bool(self.data.get("show_customer_ids", False))


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base / q).resolve()


def load_config(config: str | Path) -> Config:
    """Read and check a YAML run configuration.

    Parameters
    ----------
    config : str or Path
        A path to a YAML file, or the bare name of a file in the project's
        ``configs/`` folder (``"cdnow"`` -> ``configs/cdnow.yaml``).
    """
    p = Path(config)
    if not p.suffix and not p.exists():
        p = PROJECT_ROOT / "configs" / f"{config}.yaml"
    if not p.exists():
        raise ConfigError(f"configuration file not found: {config}")
    p = p.resolve()
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: top level must be a mapping")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{p}: unknown top-level keys {sorted(unknown)}; allowed {sorted(_TOP_KEYS)}")
    base = p.parent
    data = dict(raw.get("data") or {})
    if "path" not in data:
        raise ConfigError(f"{p}: data.path is required")
    unknown = set(data) - _DATA_KEYS
    if unknown:
        raise ConfigError(f"{p}: unknown keys in data: {sorted(unknown)}; allowed {sorted(_DATA_KEYS)}")
    data["path"] = str(_resolve(base, data["path"]))
    cols = {"customer_id": "customer_id", "date": "date", "amount": "amount"}
    cols.update(data.get("columns") or {})
    data["columns"] = cols
    notebooks = []
    for i, nb in enumerate(raw.get("notebooks") or []):
        if isinstance(nb, str):
            nb = {"path": nb}
        if "path" not in nb:
            raise ConfigError(f"{p}: notebooks[{i}] needs a path")
        notebooks.append(NotebookSpec(_resolve(base, nb["path"]), dict(nb.get("parameters") or {})))
    return Config(
        name=str(raw.get("name") or p.stem),
        path=p,
        data=data,
        parameters=dict(raw.get("parameters") or {}),
        notebooks=notebooks,
        cell_timeout_s=int(raw.get("cell_timeout_s", 600)),
        description=str(raw.get("description", "")),
        simulate=raw.get("simulate"),
        raw=raw,
    )


def ensure_data(cfg: Config) -> Path:
    """Make sure the configured data file exists; generate it if the config says how.

    A configuration may carry a ``simulate`` section (used by the simulated
    retailer): the log is then generated deterministically from its seed the
    first time it is needed, and cached at ``data.path``.
    """
    path = cfg.data_path
    if path.exists() or cfg.simulate is None:
        return path
    from .simulate import write_simulated_log  # noqa: PLC0415  (optional dependency direction)

    write_simulated_log(path, **cfg.simulate)
    return path


def load_data(cfg: Config | str | Path) -> TransactionData:
    """Load and validate the transaction log a configuration names."""
    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    ensure_data(cfg)
    return load_transactions(cfg.data["path"], **validation_kwargs(cfg.data))
