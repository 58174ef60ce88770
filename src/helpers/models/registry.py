"""The registry of frequency models: the only place where model names are spelled.

``REGISTRY`` maps each registry name (the key used in ``results.json``) to its
class; :func:`get_model` also accepts the label (``"BG/NBD"``) and the aliases
below, ignoring case, ``/``, ``-`` and ``_``.  Adding a model = one module with a
:class:`~helpers.models.base.FrequencyModel` subclass + one line here.
"""

from __future__ import annotations

from .base import FrequencyModel
from .bgbb import BGBB
from .bgnbd import BGNBD
from .cnbd_k import BGCNBDK, MBGCNBDK
from .ggompertz_nbd import GGompertzNBD
from .mbgnbd import MBGNBD
from .pareto_nbd import ParetoNBD

__all__ = ["REGISTRY", "get_model", "registered_models", "fit_bgnbd", "fit_mbgnbd", "fit_pareto_nbd"]

#: Registry name -> model class (one line per model).
REGISTRY: dict[str, type[FrequencyModel]] = {
    "bgnbd": BGNBD,
    "mbgnbd": MBGNBD,
    "pareto_nbd": ParetoNBD,
    "ggompertz_nbd": GGompertzNBD,
    "bgcnbd_k": BGCNBDK,
    "mbgcnbd_k": MBGCNBDK,
    "bgbb": BGBB,
}

#: Extra spellings accepted by :func:`get_model` (besides each name and label).
ALIASES: dict[str, str] = {
    "pnbd": "pareto_nbd",
}

_INSTANCES: dict[str, FrequencyModel] = {}


def _key(name) -> str:
    return str(name).lower().replace("/", "").replace("-", "").replace("_", "").replace(" ", "")


def _lookup() -> dict[str, str]:
    out = {}
    for name, cls in REGISTRY.items():
        out[_key(name)] = name
        if cls.label:
            out[_key(cls.label)] = name
    for alias, name in ALIASES.items():
        out[_key(alias)] = name
    return out


def registered_models() -> tuple[str, ...]:
    """Registry names of all frequency models, in registration order."""
    return tuple(REGISTRY)


def get_model(name) -> FrequencyModel:
    """The model registered as ``name`` (or one of its aliases), as a (shared, stateless) instance.

    A :class:`~helpers.models.base.FrequencyModel` instance is returned as is.

    Raises
    ------
    ValueError
        Unknown name; the message lists the registered ones.
    """
    if isinstance(name, FrequencyModel):
        return name
    key = _lookup().get(_key(name))
    if key is None:
        raise ValueError(f"model must be one of {sorted(REGISTRY)}, got {name!r}")
    if key not in _INSTANCES:
        _INSTANCES[key] = REGISTRY[key]()
    return _INSTANCES[key]


def fit_bgnbd(summary=None, **kwargs):
    """Fit BG/NBD (FHL 2005a); see :func:`helpers.models.fit_model`."""
    from .fit import fit_model  # noqa: PLC0415

    return fit_model("bgnbd", summary, **kwargs)


def fit_mbgnbd(summary=None, **kwargs):
    """Fit MBG/NBD (Batislam et al. 2007); see :func:`helpers.models.fit_model`."""
    from .fit import fit_model  # noqa: PLC0415

    return fit_model("mbgnbd", summary, **kwargs)


def fit_pareto_nbd(summary=None, **kwargs):
    """Fit Pareto/NBD (SMC 1987; Fader & Hardie 2005 note); see :func:`helpers.models.fit_model`."""
    from .fit import fit_model  # noqa: PLC0415

    return fit_model("pareto_nbd", summary, **kwargs)
