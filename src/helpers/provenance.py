"""Which code produced a result: package version, git commit and a hash of the package's own source.

The commit is looked up in the folder of the ``helpers`` package itself, so it
is known wherever the configuration lives; ``-dirty`` marks uncommitted changes
to that folder.  The source hash identifies the code even outside a git
checkout (an installed wheel) or with uncommitted edits; the stage cache is
keyed by it.
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path

from . import __version__

__all__ = ["PACKAGE_DIR", "git_commit", "source_sha256", "code_version"]

#: The folder of the ``helpers`` package (``src/helpers`` in a checkout).
PACKAGE_DIR = Path(__file__).resolve().parent


def git_commit(path: str | Path = PACKAGE_DIR) -> str | None:
    """``HEAD`` of the git checkout that holds ``path`` (+ ``-dirty`` when files under ``path`` changed).

    ``None`` when ``path`` is not inside a git checkout or git is missing.
    """
    path = Path(path)
    try:
        res = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=False)
        commit = res.stdout.strip()
        if res.returncode != 0 or not commit:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@lru_cache(maxsize=1)
def source_sha256() -> str:
    """SHA-256 over the package's Python files (relative path and content, in sorted order)."""
    h = hashlib.sha256()
    for f in sorted(PACKAGE_DIR.rglob("*.py")):
        if "__pycache__" in f.parts:
            continue
        h.update(f.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def code_version() -> dict[str, str | None]:
    """``{"clv_lab": version, "git_commit": commit or None, "source_sha256": hash, "source": folder}``."""
    return {"clv_lab": __version__, "git_commit": git_commit(PACKAGE_DIR),
            "source_sha256": source_sha256(), "source": str(PACKAGE_DIR)}
