"""Support for the tests that run whole report collections (test_collection*, test_paper_run).

Those tests check that every notebook runs, what the stage fitted, that the reports agree with the
stage and with each other, and how they are formatted.  None of them reads a Monte-Carlo interval's
width, so their runs use fewer bootstrap replicates and simulated bases than a report does
(:data:`QUICK_PARAMETERS`): the same code paths, in about half the time.  The committed notebooks
(nbval) and the tests of the intervals themselves keep the defaults.
"""

from __future__ import annotations

from pathlib import Path

import yaml

#: Per-notebook parameters of the quick runs: the bootstrap and simulation sizes only.
QUICK_PARAMETERS = {
    "02-clv-models": {"n_boot": 12},
    "03-retention-vs-acquisition": {"n_boot": 12, "n_sim": 20_000},
    "04-customer-segments": {"interval_replicates": 40},
    "05-revenue-dynamics": {"n_firms": 60},
}


def quick_notebooks(paths) -> list[dict]:
    """The ``notebooks:`` section for ``paths`` (absolute), each with its quick parameters."""
    out = []
    for p in paths:
        p = Path(p).resolve()
        entry = {"path": str(p)}
        if QUICK_PARAMETERS.get(p.stem):
            entry["parameters"] = dict(QUICK_PARAMETERS[p.stem])
        out.append(entry)
    return out


def quick_config(config: Path, folder: Path, only: tuple[str, ...] | None = None) -> Path:
    """A copy of the product configuration ``config`` in ``folder`` with absolute paths and quick
    notebook parameters; ``only``: keep just these notebooks (by file stem), in this order."""
    config = Path(config).resolve()
    spec = yaml.safe_load(config.read_text())
    base = config.parent

    def absolute(p: str) -> str:
        return str((base / p).resolve()) if not Path(p).is_absolute() else p

    spec["data"]["path"] = absolute(spec["data"]["path"])
    for table in (spec["data"].get("covariates") or {}).values():
        table["path"] = absolute(table["path"])
    paths = [absolute(nb["path"]) for nb in spec["notebooks"]]
    if only is not None:
        by_stem = {Path(p).stem: p for p in paths}
        paths = [by_stem[name] for name in only]
    spec["notebooks"] = quick_notebooks(paths)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / config.name
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    return out
