"""Progress of long steps (bootstraps, simulations, big summaries), in notebooks and terminals.

In a Jupyter kernel the progress is one line of text updated in place
(``update_display``), "progress · bootstrap resamples: 50/50" when done; it
carries no timings, and ``notebooks/sanitize.cfg`` masks the counter for nbval
(which does not replay display updates).  In a terminal it is a
``tqdm`` bar on stderr.  Elsewhere (logs, pipes) it is silent.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress"]

T = TypeVar("T")


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress(iterable: Iterable[T], total: int, desc: str, enabled: bool = True) -> Iterator[T]:
    """Yield from ``iterable`` while showing ``desc: i/total``.

    Parameters
    ----------
    iterable : iterable
    total : int
        Number of items expected.
    desc : str
        What is being counted ("bootstrap resamples").
    enabled : bool
        False: no output at all.
    """
    if not enabled:
        yield from iterable
        return
    if _in_kernel():
        from IPython.display import display  # noqa: PLC0415

        step = max(1, total // 20)
        handle = display({"text/plain": f"progress · {desc}: 0/{total}"}, raw=True, display_id=True)
        i = 0
        for i, item in enumerate(iterable, 1):
            yield item
            if i % step == 0 or i == total:
                handle.update({"text/plain": f"progress · {desc}: {i}/{total}"}, raw=True)
        if i != total:
            handle.update({"text/plain": f"progress · {desc}: {i}/{total}"}, raw=True)
        return
    if sys.stderr.isatty():
        from tqdm import tqdm  # noqa: PLC0415

        yield from tqdm(iterable, total=total, desc=desc, leave=False)
        return
    yield from iterable
