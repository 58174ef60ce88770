"""Progress of long steps (bootstraps, simulations, big summaries), in notebooks and terminals.

In a Jupyter kernel the progress is one line of text updated in place
(``update_display``), "progress · bootstrap resamples: 50/50" when done; it
carries no timings, and ``notebooks/sanitize.cfg`` masks the counter for nbval
(which does not replay display updates).  In a terminal it is a
``tqdm`` bar on stderr.  Elsewhere (logs, pipes) it is silent.

Two kinds of steps:

* loops with a known number of items: :func:`progress` wraps the iterable and
  counts ("progress · simulated log chunks: 3/10");
* single long calls that report a percentage while they run (a DuckDB query,
  a Spark job): :class:`polled` (or :func:`poll` for one call) runs the call in
  a worker thread and polls its percentage from the calling thread every
  :data:`POLL_INTERVAL_S` seconds ("progress · log summary (DuckDB): 37%",
  "…: running" while the percentage is unknown, "…: done" at the end).  By
  default nothing is shown unless the step runs longer than
  :data:`SHOW_AFTER_S` seconds, so quick steps leave no output behind.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["progress", "polled", "poll", "SHOW_AFTER_S", "POLL_INTERVAL_S"]

T = TypeVar("T")
R = TypeVar("R")

#: A polled step (:class:`polled`) shows nothing unless it runs longer than this (seconds).
SHOW_AFTER_S = 2.0
#: How often a polled step's percentage is read while it runs (seconds).
POLL_INTERVAL_S = 0.25


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _in_terminal() -> bool:
    return sys.stderr.isatty()


def _channel() -> str | None:
    """Where progress goes: "kernel", "terminal" or None (silent)."""
    if _in_kernel():
        return "kernel"
    if _in_terminal():
        return "terminal"
    return None


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
    if _in_terminal():
        from tqdm import tqdm  # noqa: PLC0415

        yield from tqdm(iterable, total=total, desc=desc, leave=False)
        return
    yield from iterable


class _Line:
    """One percentage line: a display updated in place (kernel) or a tqdm bar (terminal)."""

    _BAR = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}"
    _RUNNING = "{desc}: running {elapsed}"

    def __init__(self, desc: str, channel: str, elapsed: float = 0.0):
        self.desc = desc
        self.channel = channel
        self.shown: int | None = None     # percentage on display; -1: running (unknown)
        if channel == "kernel":
            from IPython.display import display  # noqa: PLC0415

            self.handle = display({"text/plain": self._text(-1)}, raw=True, display_id=True)
        else:
            from tqdm import tqdm  # noqa: PLC0415

            # delay > 0: nothing printed before the clock is set to count from the start of the step
            self.bar = tqdm(total=100, desc=desc, leave=False, bar_format=self._RUNNING, delay=1e-9)
            self.bar.start_t -= elapsed
        self.shown = -1

    def _text(self, pct: int) -> str:
        state = "running" if pct < 0 else f"{pct}%"
        return f"progress · {self.desc}: {state}"

    def show(self, pct: float | None):
        value = -1 if pct is None or pct < 0 else int(min(pct, 100.0))
        if self.channel == "kernel":
            if value != self.shown:
                self.handle.update({"text/plain": self._text(value)}, raw=True)
        else:
            self.bar.bar_format = self._RUNNING if value < 0 else self._BAR
            self.bar.n = max(value, 0)
            self.bar.refresh()                     # also when unchanged: the elapsed time moves on
        self.shown = value

    def close(self, ok: bool):
        if self.channel == "kernel":
            if ok:
                self.handle.update({"text/plain": f"progress · {self.desc}: done"}, raw=True)
        else:
            self.bar.close()                       # leave=False: the bar disappears


class polled:  # noqa: N801 - used like a function: ``with polled(...) as step``
    """Percentage progress of a step made of one or more long calls.

    ``with polled("log summary (DuckDB)") as step: result = step.run(fn, percent, cancel)``
    runs ``fn()`` in a worker thread and returns its result (or raises its
    exception, the same object); meanwhile the calling thread reads
    ``percent()`` every :data:`POLL_INTERVAL_S` seconds and shows it.  A
    :class:`KeyboardInterrupt` in the calling thread calls ``cancel()`` (e.g. a
    DuckDB connection's ``interrupt``), waits for the worker to stop and is
    re-raised.  Several ``run`` calls of one step share one line.

    Parameters
    ----------
    desc : str
        What is running ("log summary (DuckDB)").
    enabled : bool or None
        None (default): shown in a notebook or terminal once the step has run
        for :data:`SHOW_AFTER_S` seconds (quick steps show nothing).  True:
        shown from the start of the step (notebook or terminal).  False: never;
        the calls then run directly in the calling thread.
    """

    def __init__(self, desc: str, enabled: bool | None = None):
        self.desc = desc
        self.channel = _channel() if enabled is not False else None
        self.delay = 0.0 if enabled else SHOW_AFTER_S
        self.start = time.monotonic()
        self.line: _Line | None = None
        self.broken = False                # the display failed: the step goes on without it

    def __enter__(self) -> polled:
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(ok=exc_type is None)
        return False

    def close(self, ok: bool = True):
        line, self.line = self.line, None
        if line is not None:
            try:
                line.close(ok)
            except Exception:  # noqa: BLE001 - progress never breaks the step
                pass

    def _tick(self, percent: Callable[[], float | None] | None):
        if self.broken:
            return
        if self.line is None and time.monotonic() - self.start < self.delay:
            return
        pct = None
        if percent is not None:
            try:
                pct = percent()
            except Exception:  # noqa: BLE001 - a progress reading never breaks the step
                pct = None
        try:
            if self.line is None:
                self.line = _Line(self.desc, self.channel, time.monotonic() - self.start)
            self.line.show(pct)
        except Exception:  # noqa: BLE001 - nor does a display that fails: the step goes on without it
            self.broken = True
            self.close(ok=False)

    def run(self, fn: Callable[[], R], percent: Callable[[], float | None] | None = None,
            cancel: Callable[[], object] | None = None, thread: type[threading.Thread] = threading.Thread) -> R:
        """``fn()``, run in a worker thread (``thread``) while its progress is shown.

        ``percent()`` returns the progress in percent, or None or a negative
        number when unknown.  Without a channel (disabled, or neither a notebook
        nor a terminal) ``fn()`` runs directly in the calling thread.
        """
        if self.channel is None:
            return fn()
        done = threading.Event()
        box: dict = {}

        def work():
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                box["error"] = exc
            finally:
                done.set()

        worker = thread(target=work, name=f"clv-lab: {self.desc}", daemon=True)
        worker.start()
        try:
            self._tick(percent)
            while not done.wait(POLL_INTERVAL_S):
                self._tick(percent)
        except BaseException:  # KeyboardInterrupt (or another async exception) in the calling thread
            self._stop(done, cancel)
            raise
        worker.join()
        if "error" in box:
            error = box.pop("error")
            raise error
        return box["value"]

    @staticmethod
    def _stop(done: threading.Event, cancel):
        """Cancel the worker's call and wait for it (the caller may close what it uses)."""
        while True:
            if cancel is not None:
                try:
                    cancel()
                except Exception:  # noqa: BLE001 - best effort
                    pass
            try:
                done.wait()
                return
            except KeyboardInterrupt:  # interrupted again while waiting: cancel again
                continue


def poll(run: Callable[[], R], percent: Callable[[], float | None] | None, desc: str,
         enabled: bool | None = None, cancel: Callable[[], object] | None = None) -> R:
    """``run()`` with its percentage shown while it runs: one call of :class:`polled`.

    Example: ``poll(lambda: con.sql(q).arrow(), con.query_progress, "log summary (DuckDB)",
    cancel=con.interrupt)``.
    """
    with polled(desc, enabled) as step:
        return step.run(run, percent, cancel)
