"""environment.yml (conda users) and pyproject.toml (pip) declare the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"python-duckdb": "duckdb"}
# conda can install non-Python requirements that pip users get from the machine
CONDA_ONLY = {"python", "pip", "openjdk"}


def split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    name, spec = m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")
    return CONDA_TO_PYPI.get(name, name), ",".join(sorted(spec.split(","))) if spec else ""


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = dict(split(r) for r in py["dependencies"] + py["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip_section = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section += dep.get("pip", [])
            continue
        name, spec = split(dep)
        if name not in CONDA_ONLY:
            conda[name] = spec
    assert conda == pip_deps
    assert "-e ." in pip_section
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])
    assert "conda-forge" in env["channels"]
    assert py["requires-python"].startswith(">=3.11")


def test_lock_file_satisfies_pyproject():
    """requirements.lock (the exact versions CI installs) lies inside pyproject's bounds."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, ver = line.split("==")
            locked[name.lower().replace("_", "-")] = Version(ver.strip())
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in map(Requirement, py["dependencies"] + py["optional-dependencies"]["dev"]):
        name = req.name.lower().replace("_", "-")
        assert name in locked, f"{name} missing from requirements.lock"
        assert req.specifier.contains(locked[name]), f"{name}=={locked[name]} outside {req.specifier}"
