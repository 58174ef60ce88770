"""Run a configuration unattended: pre-flight -> shared stage -> papermill notebooks -> HTML reports.

``clv-lab run CONFIG [--output-dir DIR]``

1. **pre-flight** (:mod:`helpers.preflight`), before any kernel starts: the
   configuration schema, the notebooks and their parameters, the data
   (validated once with the configured engine), the calibration end.  A
   failure prints one message and exits with :data:`EXIT_CONFIG` (2) or
   :data:`EXIT_DATA` (3); nothing is written and ``latest`` is untouched.
2. **stage** (:mod:`helpers.stage`): summaries, model fits, holdout
   comparison, the chosen model and the valuation, computed once and written
   to ``<run>/stage/``; a failure exits with :data:`EXIT_STAGE` (4).
3. **notebooks**, each on the ``clv-lab`` kernel with ``stage_dir`` (and
   ``config``) passed when it declares them; a failing notebook or a cell
   that exceeds ``cell_timeout_s`` exits with :data:`EXIT_NOTEBOOK` (1),
   naming the notebook, the cell, the line that raised and the error.

Each run is an immutable record::

    reports/<config>/<timestamp>/
        status                        running -> ok | failed (written atomically: a
                                      folder still "running" with no live run was killed)
        run.json                      config, parameters, data SHA-256, package
                                      versions, code version, the model and how
                                      it was chosen, start/end, per-step times,
                                      per-notebook status
        index.html                    links to the reports, the customer equity
                                      (one figure: model, horizon) and headline numbers
        stage/                        the shared analysis stage (Parquet + stage.json)
        <notebook-stem>/<stem>.ipynb  the executed notebook
        <notebook-stem>/<stem>.html   the report, code hidden, self-contained
        <notebook-stem>/results.json  the notebook's headline numbers
    reports/<config>/latest -> <timestamp>   (only when the stage and every notebook succeeded)

A failing notebook (or a cell that exceeds ``cell_timeout_s``) makes the
command exit non-zero and name the notebook, the cell and the error; the
failed run stays under its timestamp and ``latest`` is left untouched.  A full
output disk ends the run with one line saying so; ``latest`` only ever moves
forward, to a newer complete run, also when runs of one configuration overlap.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import asyncio
import gc
import json
import os
import platform
import re
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any


def _import_jsonschema_without_iri_formats() -> None:
    """Import jsonschema (which nbformat and papermill import) without its optional ``rfc3987_syntax``.

    jsonschema's format checker imports ``rfc3987_syntax`` when it is installed (it comes with
    Jupyter's ``jsonschema[format-nongpl]``) for its "iri" and "iri-reference" formats, and that
    module builds its grammars at import: 1.65 of the 1.87 s ``import jsonschema`` took here, in the
    runner before the pre-flight and again in every notebook worker.  No notebook schema uses those
    formats, and nbformat validates without a format checker.  So the module is hidden while jsonschema
    is first imported, and unhidden right after; a later ``import rfc3987_syntax`` works as usual.  In
    a process that imported this module first, jsonschema's format checker does not check the two
    IRI formats.
    """
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        return
    sys.modules["rfc3987_syntax"] = None       # None: the import raises ImportError, which jsonschema skips
    try:
        import jsonschema  # noqa: F401, PLC0415
    finally:
        if sys.modules.get("rfc3987_syntax", False) is None:
            del sys.modules["rfc3987_syntax"]


_import_jsonschema_without_iri_formats()

import nbformat  # noqa: E402  (after jsonschema, above)
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from traitlets import default

from . import __version__
from .config import Config, ConfigError
from .data import DataValidationError
from .preflight import (
    EXIT_CONFIG, EXIT_DATA, EXIT_NOTEBOOK, EXIT_OK, EXIT_STAGE, Preflight, notebook_parameters, preflight,
)
from .provenance import code_version
from .compare import add_compare_parser, run_compare
from .dashboard import index_for_run_dir, inject_css
from .report import extract_results, prepare_report, to_jsonable

__all__ = ["run_config", "main", "KERNEL_NAME", "render_html", "package_versions", "create_run_dir",
           "update_latest", "EXIT_OK", "EXIT_NOTEBOOK", "EXIT_CONFIG", "EXIT_DATA", "EXIT_STAGE"]

KERNEL_NAME = "clv-lab"

PACKAGES = [
    "clv-lab", "lifetimes", "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn",
    "duckdb", "pyarrow", "papermill", "nbconvert", "nbformat", "ipykernel", "autograd", "pydantic",
]


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the results (plus Python)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------

_REMOTE_TAG = re.compile(
    r"<script[^>]*\ssrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>|<link[^>]*\shref=[\"']https?://[^\"']*[\"'][^>]*/?>",
    re.IGNORECASE,
)
# inline scripts that would load code from the internet (nbconvert's lab template imports
# mermaid.js from a CDN when a notebook has diagrams)
_REMOTE_INLINE_SCRIPT = re.compile(r"<script[^>]*>(?:(?!</script>).)*?https?://(?:(?!</script>).)*?</script>",
                                   re.IGNORECASE | re.DOTALL)


def _provenance_markdown(provenance: dict[str, Any], parameters: dict[str, Any],
                         declared: dict[str, Any] | None = None) -> str:
    rows = ["### Parameters and provenance", "", "| | |", "|---|---|"]
    for k, v in provenance.items():
        rows.append(f"| {k} | `{v}` |")
    rows += ["", "| parameter | value | set by | meaning |", "|---|---|---|---|"]
    names = list(declared) if declared else list(parameters)
    for k in names:
        info = (declared or {}).get(k, {})
        if k in parameters:
            value, source = repr(parameters[k]), "run configuration"
        else:
            value, source = str(info.get("default", "")), "notebook default"
        help_text = str(info.get("help", "")).replace("|", "\\|")
        rows.append(f"| `{k}` | `{value}` | {source} | {help_text} |")
    return "\n".join(rows)


def render_html(nb, provenance: dict[str, Any], parameters: dict[str, Any],
                declared: dict[str, Any] | None = None) -> str:
    """Render an executed notebook as a self-contained HTML report.

    Code is hidden, images are embedded (they are base64 in the notebook),
    any script or stylesheet that would be fetched from the internet is
    removed, progress lines are dropped, the notebook's answer block comes first,
    a print stylesheet fits tables to A4/Letter, and a parameters-and-provenance
    table is placed at the end: provenance, then every parameter the notebook
    declares (``declared``, from ``papermill.inspect_notebook``) with its
    effective value, whether the configuration or the notebook's default set
    it, and its documentation.
    """
    from nbconvert import HTMLExporter  # noqa: PLC0415  (heavy import)

    nb = prepare_report(nb, appendix_markdown=_provenance_markdown(provenance, parameters, declared))
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    return inject_css(_REMOTE_INLINE_SCRIPT.sub("", _REMOTE_TAG.sub("", body)))


# ---------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_FRAME = re.compile(r"(?:Cell In\s*\[\d*\],\s*line (\d+)|Input In\s*\[\d*\],\s*in <cell line: (\d+)>)")
_FILE_FRAME = re.compile(r"^File\s+(.+?):(\d+)(?:,| in )", re.MULTILINE)


def _raising_line(traceback: list[str] | str | None, source: str) -> tuple[int | None, str, str]:
    """From an IPython traceback: (line in the cell, its text, where it raised if outside the cell).

    The first ``Cell In[n], line k`` frame is the failing cell itself; ``k``
    is the line of that cell that raised (or called what raised).  The last
    ``File path:line`` frame, when there is one after it, is where the
    exception was raised (e.g. inside ``helpers``).
    """
    if not traceback:
        return None, "", ""
    text = _ANSI.sub("", "\n".join(traceback) if isinstance(traceback, list) else str(traceback))
    m = _CELL_FRAME.search(text)
    if not m:
        return None, "", ""
    line = int(m.group(1) or m.group(2))
    lines = source.splitlines()
    code = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    inner = list(_FILE_FRAME.finditer(text[m.end():]))
    where = ""
    if inner:
        path, lineno = inner[-1].group(1), inner[-1].group(2)
        parts = Path(path).parts
        where = f"{'/'.join(parts[-2:]) if len(parts) >= 2 else path}:{lineno}"
    return line, code, where


class QuietKernelManager(AsyncKernelManager):
    """The kernel manager of unattended runs: encrypted transport, no stray SIGINT at shutdown.

    * ``transport_encryption = "auto"``: jupyter_client provisions CurveZMQ keys when the kernelspec
      declares ``supported_encryption: ["curve"]`` (the clv-lab kernelspec written by ipykernel 7
      does), so the kernel does not warn "Kernel is running over TCP without encryption".
    * ``shutdown_kernel`` interrupts the kernel (SIGINT) before it requests the shutdown.  papermill's
      last message is a ``kernel_info_request`` whose reply it waits for; a SIGINT that lands after
      the reply but before the kernel has left that handler is logged as "[IPKernelApp] ERROR |
      KeyboardInterrupt caught in kernel.".  The interrupt is therefore sent
      :attr:`interrupt_grace_s` seconds late when shutting down.  It is still sent: it is what stops
      a cell that exceeded ``cell_timeout_s``.  (``_async_interrupt_kernel`` is jupyter_client 8's.)
    """

    #: Seconds an idle kernel gets to leave its last handler before the shutdown's SIGINT.
    interrupt_grace_s = 0.25

    @default("transport_encryption")
    def _transport_encryption_default(self) -> str:
        return "auto"

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            await asyncio.sleep(self.interrupt_grace_s)
        await super()._async_interrupt_kernel()

    interrupt_kernel = _async_interrupt_kernel


#: papermill engine name of :func:`_saving_engine`.
ENGINE_NAME = "clv-lab"
_ENGINE = None     # the engine class, once registered in this process


def _saving_engine():
    """papermill's nbclient engine, writing the output notebook less often (registered as :data:`ENGINE_NAME`).

    papermill writes the whole output notebook (its figures included) at the start and the end of
    every cell: about 60 writes per report (on CDNOW, medians of five interleaved runs, the six
    reports' kernel time went 39.3 -> 37.2 s and the run 27.6 -> 26.0 s without them).  This engine
    writes it when the notebook ends, however it ends (papermill's ``notebook_complete`` runs in a
    ``finally``: a failed or timed-out cell is in the file, with its status), and meanwhile at most
    every ``autosave_cell_every`` seconds (papermill's default, 30 s), so a long run can still be
    watched.  Built on first use: papermill is a heavy import.
    """
    global _ENGINE
    if _ENGINE is not None:
        return _ENGINE
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines  # noqa: PLC0415

    class _Manager(NotebookExecutionManager):
        final = False

        def save(self, **kwargs):
            if self.final or (self.now() - self.last_save_time).total_seconds() >= self.autosave_cell_every:
                super().save(**kwargs)

        def notebook_complete(self, **kwargs):
            self.final = True
            super().notebook_complete(**kwargs)

    class _Engine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                             autosave_cell_every=30, **kwargs):
            nb_man = _Manager(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                              autosave_cell_every=autosave_cell_every)
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

    papermill_engines.register(ENGINE_NAME, _Engine)
    _ENGINE = _Engine
    return _Engine


# ---------------------------------------------------------------------------
# Warm kernels: started while the stage computes
# ---------------------------------------------------------------------------

#: Niceness added to a notebook worker when it warms its kernel (see :func:`warm_kernel`).
WARM_NICENESS = 5

#: Kernels a worker process started in advance, by (kernel name, working directory).
_WARM: dict[tuple[str, str], Any] = {}


def notebook_imports(paths) -> list[str]:
    """The modules the notebooks' code cells import (``import a.b``, ``from a import b``: ``a`` and, when
    ``a.b`` is a module, ``a.b``), in first-seen order: what a warm kernel imports in advance."""
    import ast  # noqa: PLC0415

    out: dict[str, None] = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    out.update(dict.fromkeys(a.name for a in node.names))
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    out[node.module] = None
                    out.update(dict.fromkeys(f"{node.module}.{a.name}" for a in node.names))
    return list(out)


def warm_kernel(kernel_name: str, cwd: str, modules: list[str]) -> float:
    """Start a kernel in ``cwd`` and import ``modules`` in it (silently: no execution count, no output),
    for the next notebook this worker process runs; returns the seconds it took.

    Runs in a notebook worker while the shared stage computes, so that kernel start-up and the imports of
    pandas, matplotlib, seaborn, scipy and the helpers (several seconds per kernel) overlap with the stage
    instead of adding to each notebook.  Also imports papermill and nbconvert in the worker.  A module that
    cannot be imported is skipped (the notebook then reports its own error).
    """
    import atexit  # noqa: PLC0415

    from nbclient import NotebookClient  # noqa: PLC0415
    import papermill  # noqa: F401, PLC0415
    from nbconvert import HTMLExporter  # noqa: F401, PLC0415

    t0 = time.perf_counter()
    key = (kernel_name, str(cwd))
    if key in _WARM:
        return 0.0
    # below the stage's priority (the kernel inherits it): the warm-up takes the cores the stage leaves idle
    # instead of slowing it down; the notebooks that follow all run at this one priority
    with contextlib.suppress(OSError):
        os.nice(WARM_NICENESS)
    client = NotebookClient(nbformat.v4.new_notebook(), kernel_name=kernel_name,
                            kernel_manager_class=QuietKernelManager, startup_timeout=120, timeout=600)
    client.km = client.create_kernel_manager()
    code = ("import importlib as _clv_il\n"
            f"for _clv_m in {tuple(modules)!r}:\n"
            "    try:\n        _clv_il.import_module(_clv_m)\n    except Exception:\n        pass\n"
            "del _clv_il, _clv_m")
    try:
        client.start_new_kernel(cwd=str(cwd))
        client.start_new_kernel_client()
        client.wait_for_reply(client.kc.execute(code, silent=True, store_history=False))
        client.kc.stop_channels()
    except BaseException:
        from jupyter_core.utils import run_sync  # noqa: PLC0415

        if client.km.has_kernel:
            run_sync(client.km.shutdown_kernel)(now=True)
        raise
    if not _WARM:
        atexit.register(_shutdown_warm)
    _WARM[key] = client.km
    return time.perf_counter() - t0


#: Seconds a notebook worker has, after SIGTERM, to shut its kernels down before it exits (:func:`_worker_init`).
_TERM_GRACE_S = 5.0

#: The environment variables that size the thread pools of the numerical libraries a kernel loads
#: (OpenBLAS, OpenMP, MKL, BLIS, Apple's Accelerate, numexpr).
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def kernel_threads(jobs: int, cpus: int | None = None) -> int:
    """Threads of each kernel's numerical libraries when ``jobs`` notebooks run at once: the cores divided
    among them (at least one).

    By default OpenBLAS starts one thread per core in every process, and its idle threads spin: two
    kernels on two cores then run four BLAS threads that take turns.  On the CDNOW collection the
    setup cells of 03 and 04, run side by side, took 3.6-3.9 and 4.4-4.8 s with the default and
    2.7-2.8 and 3.7 s with one thread each (alone, 2.7 and 3.7 s either way).
    """
    return max(1, (cpus if cpus is not None else os.cpu_count() or 1) // max(1, int(jobs)))


def cap_threads(threads: int, environ=None) -> dict[str, str]:
    """Set each of :data:`THREAD_ENV` to ``threads`` in ``environ`` (default ``os.environ``) where it is not
    set already (the user's own setting wins); returns the variables as they then are."""
    env = os.environ if environ is None else environ
    for name in THREAD_ENV:
        env.setdefault(name, str(int(threads)))
    return {name: env[name] for name in THREAD_ENV}


def _worker_init(runner_pid: int, thread_env: dict[str, str] | None = None) -> None:
    """Initializer of the notebook workers: a worker ends with the runner, and shuts its kernels down;
    ``thread_env`` (the runner's :func:`cap_threads`) goes into the worker's environment, which the kernels
    it starts inherit.

    A worker holds kernels (its warm kernel, the running notebook's).  Without this, a runner
    that is killed (a scheduler's timeout, SIGKILL, a lost terminal) leaves its workers idle
    with their kernels, each holding memory, until someone finds them.  On Linux the worker asks
    the kernel for SIGTERM when the runner dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a
    thread watches the runner's pid.  In a worker SIGTERM raises ``SystemExit``, so that the
    kernels are shut down on the way out (papermill's and nbclient's cleanup, :func:`_shutdown_warm`),
    and the worker exits :data:`_TERM_GRACE_S` seconds later whatever it is doing.
    """
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    if thread_env:
        os.environ.update(thread_env)

    def terminate(signum, frame):
        # SystemExit unwinds papermill and nbclient, which shut their kernels down; the pool's worker loop
        # catches it as a task's error and would wait for the next task, so the process ends a few seconds
        # later in any case
        threading.Timer(_TERM_GRACE_S, os._exit, args=(128 + signum,)).start()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes  # noqa: PLC0415

            armed = ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM)) == 0   # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if not armed:
        def watch():
            while os.getppid() == runner_pid:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="clv-lab-runner-watch", daemon=True).start()
    if os.getppid() != runner_pid:          # the runner died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _shutdown_warm() -> None:
    from jupyter_core.utils import run_sync  # noqa: PLC0415

    while _WARM:
        _, km = _WARM.popitem()
        try:
            run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - the kernel is gone already
            pass


def release_freed_memory() -> None:
    """Collect garbage and hand the heap memory this process has freed back to the operating system.

    Freeing a frame does not shrink the process: glibc's allocator keeps freed heap pages (and,
    after a large array has been freed, puts arrays of up to 32 MB on the heap rather than in
    their own mappings), and Arrow's allocator keeps its own pool.  The runner calls this once its
    copy of the stage is deleted, before the kernels start: on the 1e6-customer collection the
    runner went from 0.62 to 0.38 GB resident.  ``malloc_trim`` exists only in glibc; elsewhere
    only the collection and Arrow's release run.
    """
    gc.collect()
    with contextlib.suppress(Exception):
        from .data import release_arrow_memory  # noqa: PLC0415

        release_arrow_memory()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes  # noqa: PLC0415

            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _failed_cell(nb_path: Path) -> tuple[int | None, str, list[str] | None]:
    """Find the cell that failed (or timed out) in a papermill output notebook.

    Returns its 1-based position in the *source* notebook (cells papermill
    injected are not counted), its source and the traceback of its error
    output (None when it has none, e.g. a timeout).
    """
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except (OSError, ValueError):
        return None, "", None
    injected = {"injected-parameters", "papermill-error-cell-tag"}
    own = [c for c in nb.cells if not injected & set(c.get("metadata", {}).get("tags", []))]
    candidates = [
        lambda c: c.get("metadata", {}).get("papermill", {}).get("exception"),
        lambda c: any(o.get("output_type") == "error" for o in c.get("outputs", [])),
        lambda c: c.get("metadata", {}).get("papermill", {}).get("status") in ("running", "pending"),
    ]
    for is_failed in candidates:
        for i, cell in enumerate(own, 1):
            if cell.cell_type == "code" and is_failed(cell):
                tb = next((o.get("traceback") for o in cell.get("outputs", []) if o.get("output_type") == "error"),
                          None)
                return i, cell.get("source", ""), tb
    return None, "", None


def _execute_notebook(spec, cfg: Config, nb_dir: Path, kernel_name: str, provenance: dict[str, Any],
                      params: dict[str, Any], declared: dict[str, Any]) -> dict[str, Any]:
    """Run one notebook with papermill and render its outputs; never raises.

    Runs in a worker process when notebooks execute in parallel, so it takes
    and returns plain data.  ``params`` and ``declared`` come from pre-flight.
    Returns the notebook's entry of ``run.json``.
    """
    import papermill as pm  # noqa: PLC0415

    _saving_engine()
    nb_dir.mkdir(exist_ok=True)
    out_nb = nb_dir / f"{spec.name}.ipynb"
    entry: dict[str, Any] = {"name": spec.name, "path": str(spec.path), "status": "running",
                             "parameters": params, "duration_s": 0.0}
    t0 = time.perf_counter()
    km = _WARM.pop((kernel_name, str(spec.path.parent)), None)
    entry["warm_kernel"] = km is not None
    try:
        pm.execute_notebook(
            str(spec.path), str(out_nb), parameters=params, kernel_name=kernel_name,
            cwd=str(spec.path.parent), progress_bar=False, log_output=False,
            execution_timeout=cfg.cell_timeout_s, engine_name=ENGINE_NAME,
            kernel_manager_class=QuietKernelManager, **({"km": km} if km is not None else {}),
        )
        entry["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - every failure is recorded, then reported
        entry["status"] = "failed"
        cell, source, tb = _failed_cell(out_nb)
        ename = getattr(e, "ename", type(e).__name__)
        evalue = getattr(e, "evalue", str(e).strip().splitlines()[-1] if str(e).strip() else "")
        timeout = "Timeout" in type(e).__name__ or "timed out" in str(e)
        if timeout:
            ename, evalue = "CellTimeoutError", f"cell exceeded cell_timeout_s={cfg.cell_timeout_s}"
        line, code, where = _raising_line(getattr(e, "traceback", None) or tb, source)
        entry["failed_cell"] = cell
        entry["failed_line"] = line
        entry["failed_cell_source"] = code  # the line that raised (empty when unknown, e.g. a timeout)
        entry["raised_at"] = where
        at = f"cell {cell}" + (f", line {line}" if line else "")
        entry["error"] = f"{at}: {ename}: {evalue}" + (f" (raised at {where})" if where and not timeout else "")
        if is_disk_full(e):
            _mark_disk_full(entry, e)
    finally:
        if km is not None:  # papermill shuts down only the kernels it started
            from jupyter_core.utils import run_sync  # noqa: PLC0415

            try:
                run_sync(km.shutdown_kernel)()
            except Exception:  # noqa: BLE001 - a kernel that died with its notebook
                pass
    entry["duration_s"] = round(time.perf_counter() - t0, 3)
    t1 = time.perf_counter()
    _write_outputs(entry, spec, out_nb, nb_dir, provenance, declared)
    entry["render_s"] = round(time.perf_counter() - t1, 3)
    return entry


# ---------------------------------------------------------------------------
# Faults: a full disk, the run folder's status, the `latest` link
# ---------------------------------------------------------------------------

#: The one line a run prints when the output disk fills up.
DISK_FULL = "the output disk is full (no space left on device)"


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether an exception (or one it was raised from) is "no space left on device" / "quota exceeded"."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _mark_disk_full(entry: dict[str, Any], exc: BaseException) -> None:
    entry["status"] = "failed"
    entry["disk_full"] = True
    entry["error"] = f"{DISK_FULL}: {exc}".strip()


def _write_outputs(entry, spec, out_nb: Path, nb_dir: Path, provenance, declared) -> None:
    """results.json and the HTML report of an executed notebook; never raises.

    A notebook that cannot be read back (cut short by a full disk) or written out fails its entry
    with one message instead of crashing the worker.
    """
    if not out_nb.exists() or entry.get("disk_full"):
        return
    try:
        nb = nbformat.read(out_nb, as_version=4)
        results = extract_results(nb)
        entry["results"] = results
        (nb_dir / "results.json").write_text(json.dumps(results, indent=2))
        prov = {**provenance, "notebook": spec.path.name, "status": entry["status"]}
        (nb_dir / f"{spec.name}.html").write_text(render_html(nb, prov, entry["parameters"], declared))
    except Exception as e:  # noqa: BLE001 - recorded in the entry
        if is_disk_full(e):
            _mark_disk_full(entry, e)
        else:
            entry["status"] = "failed"
            entry.setdefault("failed_cell", None)
            entry["error"] = f"cell None: the executed notebook could not be read or rendered: {type(e).__name__}: {e}"


def write_status(run_dir: Path, status: str) -> None:
    """Write the run folder's ``status`` file (``running``, ``ok`` or ``failed``) atomically."""
    tmp = run_dir / f".status-{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(status + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, run_dir / "status")


def read_status(run_dir: Path) -> str | None:
    """The status a run folder states (``None`` without a status file)."""
    try:
        return (Path(run_dir) / "status").read_text().strip() or None
    except OSError:
        return None


def update_latest(base: Path, stamp: str) -> bool:
    """Point ``base/latest`` at the run ``stamp`` unless it already points at a newer run.

    Run folders are named by their start time, so "newer" is a comparison of names.  A lock on
    the folder ``base`` makes the check and the (atomic) replacement one step when runs of the
    same configuration finish at the same time.  Returns whether ``latest`` moved.
    """
    latest = base / "latest"
    lock = os.open(base, os.O_RDONLY)            # the lock is on the configuration's folder itself
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = os.readlink(latest) if latest.is_symlink() else None
            if current is not None and (base / current).is_dir() and current > stamp:
                return False
            tmp = base / f".latest-{stamp}"
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(stamp, target_is_directory=True)
            os.replace(tmp, latest)
            return True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)


def notebook_order(base: Path, names: list[str]) -> tuple[list[int], str]:
    """The order in which the notebooks ``names`` are started, and where it came from.

    Longest first, by the durations of the configuration's last good run (``base/latest/run.json``):
    with fewer workers than notebooks, the longest one started last would otherwise run alone at
    the end (longest-processing-time-first scheduling; Graham 1969 bounds it within 4/3 of the best).
    Notebooks the last run did not have go first, in configuration order.  Without a last good run,
    the configuration's order.
    """
    try:
        last = json.loads((base / "latest" / "run.json").read_text())
        took = {k: float(v) for k, v in last["timings"]["notebooks"].items()}
        stamp = os.readlink(base / "latest")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return list(range(len(names))), "configuration"
    order = sorted(range(len(names)), key=lambda i: (names[i] in took, -took.get(names[i], 0.0), i))
    return order, f"longest first, by the last good run ({stamp})"


def default_jobs() -> int:
    """Notebooks run in parallel: one per core, at most 2 by default (each starts its own kernel)."""
    return max(1, min(2, os.cpu_count() or 1))


# ---------------------------------------------------------------------------
# The run folder and the `latest` link
# ---------------------------------------------------------------------------

def create_run_dir(base: Path, stamp: str) -> Path:
    """Create ``<base>/<stamp>/`` (the run's immutable folder); fails if it exists."""
    run_dir = base / stamp
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def _run_record(cfg: Config, pf: Preflight, kernel_name: str, jobs: int, started: datetime) -> dict[str, Any]:
    code = code_version()
    return {
        "status": "running",
        "config": {"name": cfg.name, "path": str(cfg.path), "description": cfg.description, "content": cfg.raw},
        "data_path": str(cfg.data_path),
        "data_sha256": pf.data.sha256,
        "engine": pf.data.engine,
        "packages": package_versions(),
        "clv_lab_version": __version__,
        "git_commit": code["git_commit"],
        "code_version": code,
        "kernel": kernel_name,
        "jobs": jobs,
        "started": started.isoformat(),
        "timings": {"preflight_s": round(pf.seconds, 3), "stage_s": None, "notebooks": {}},
        "stage": {"status": "pending"},
        "notebooks": [{"name": s.name, "path": str(s.path), "status": "pending", "duration_s": 0.0}
                      for s in cfg.notebooks],
    }


def _stage_record(stage) -> tuple[dict, dict]:
    model = {"name": stage.model_name, "label": stage.model_label, "chosen_by": stage.chosen_by,
             "reason": stage.choice_reason, "auto_choice": stage.auto_choice, "params": dict(stage.model.params),
             "time_unit": stage.time_unit}
    valuation = {**stage.valuation_settings, "customer_equity": stage.equity, "units": stage.units,
                 "value_basis": stage.value_basis, "sentence": stage.equity_sentence()}
    return model, valuation


def run_config(
    config: str | Path,
    output_dir: str | Path = "reports",
    kernel_name: str = KERNEL_NAME,
    progress: bool = True,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Pre-flight, the shared stage, then every notebook of a configuration; write the run record.

    Notebooks are independent of each other, so up to ``jobs`` of them run
    at the same time, each in its own worker process and kernel (default:
    :func:`default_jobs`).  Returns the run record (the content of
    ``run.json``).  Its ``status`` is ``"ok"`` only when the stage and every
    notebook succeeded; only then is ``<output_dir>/<config>/latest`` moved
    to this run.

    Raises
    ------
    ConfigError, DataValidationError
        Pre-flight failed: no folder is created and no kernel started.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: PLC0415
    import multiprocessing  # noqa: PLC0415

    from .stage import compute_stage  # noqa: PLC0415

    pf = preflight(config, keep_days=True)      # the DuckDB customer-day table goes on to the stage
    cfg = pf.cfg
    if progress:
        print(f"pre-flight: ok in {pf.seconds:.1f} s ({len(cfg.notebooks)} notebooks, engine {pf.data.engine}, "
              f"data {pf.data.first_day.date()} to {pf.data.last_day.date()})", flush=True)
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%S%fZ")
    base = Path(output_dir).resolve() / cfg.name
    run_dir = create_run_dir(base, stamp)
    run = _run_record(cfg, pf, kernel_name, jobs, started)
    record_path = run_dir / "run.json"

    def save() -> None:
        record_path.write_text(json.dumps(to_jsonable(run), indent=2, default=str))
        write_status(run_dir, run["status"])

    def finish() -> dict[str, Any]:
        run["finished"] = datetime.now(timezone.utc).isoformat()
        run["duration_s"] = round((datetime.now(timezone.utc) - started).total_seconds(), 3)
        ok = run["stage"].get("status") == "ok" and all(nb["status"] == "ok" for nb in run["notebooks"])
        run["status"] = "ok" if ok else "failed"
        save()
        (run_dir / "index.html").write_text(index_for_run_dir(run_dir))
        if run["status"] == "ok":
            update_latest(base, stamp)
        run["run_dir"] = str(run_dir)
        return run

    save()

    # --- notebook workers: started now, each warms a kernel while the stage computes
    n = len(cfg.notebooks)
    pool = warming = None
    if jobs > 1 and n > 1:
        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked kernel/zmq state
        workers = min(jobs, n)
        run["kernel_thread_env"] = cap_threads(kernel_threads(workers), dict(os.environ))  # what the kernels see
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                   initargs=(os.getpid(), run["kernel_thread_env"]))
        cwds = [str(spec.path.parent) for spec in cfg.notebooks]
        modules = notebook_imports([spec.path for spec in cfg.notebooks])
        warming = [pool.submit(warm_kernel, kernel_name, max(set(cwds), key=cwds.count), modules)
                   for _ in range(workers)]

    # --- the shared analysis stage ------------------------------------------
    stage_dir = run_dir / "stage"
    t0 = time.perf_counter()
    try:
        stage = compute_stage(cfg, pf)
        stage.save(stage_dir)
    except Exception as e:  # noqa: BLE001 - recorded; the notebooks would only repeat the failure
        run["timings"]["stage_s"] = round(time.perf_counter() - t0, 3)
        run["stage"] = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
        for nb in run["notebooks"]:
            nb["status"] = "skipped"
        if progress:
            print(f"stage: FAILED ({type(e).__name__}: {e})", flush=True)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        return finish()
    run["timings"]["stage_s"] = round(time.perf_counter() - t0, 3)
    run["stage"] = {"status": "ok", "dir": str(stage_dir), "key": stage.key, "steps_s": stage.timings}
    run["model"], run["valuation"] = _stage_record(stage)
    if progress:
        print(f"stage: {stage.model_label} ({stage.chosen_by}), {stage.equity_sentence()}, "
              f"in {run['timings']['stage_s']:.1f} s", flush=True)
    save()

    provenance = {
        "configuration": f"{cfg.name} ({cfg.path.name})",
        "run started (UTC)": run["started"],
        "data file": Path(run["data_path"]).name,
        "data SHA-256": pf.data.sha256,
        "code version (git)": run["git_commit"],
        "clv-lab": __version__,
        "model": f"{stage.model_label} ({'holdout rule' if stage.chosen_by == 'auto' else 'configured'})",
        "valuation": stage.equity_sentence(),
        "packages": ", ".join(f"{k} {v}" for k, v in run["packages"].items() if k != "clv-lab"),
    }
    # the notebooks read the saved stage: the runner lets go of its copy (at 1e7 customers its
    # summaries and valuation hold several GB that would otherwise stay resident beside the kernels)
    del stage
    release_freed_memory()

    def done(i: int, entry: dict[str, Any]) -> None:
        run["notebooks"][i] = entry
        run["timings"]["notebooks"][entry["name"]] = entry["duration_s"]
        if progress:
            msg = entry["status"] if entry["status"] == "ok" else f"FAILED ({entry['error']})"
            print(f"[{i + 1}/{n}] {entry['name']}: {msg} in {entry['duration_s']:.1f} s", flush=True)
        save()

    args = []
    for spec in cfg.notebooks:
        declared = pf.declared[spec.name]
        params = notebook_parameters(spec, cfg, declared, {"export_dir": str(run_dir / spec.name),
                                                           "stage_dir": str(stage_dir)})
        args.append((spec, cfg, run_dir / spec.name, kernel_name, provenance, params, declared))
    order, run["notebook_order_from"] = (notebook_order(base, [spec.name for spec in cfg.notebooks])
                                         if pool is not None else (list(range(n)), "configuration (one at a time)"))
    run["notebook_order"] = [cfg.notebooks[i].name for i in order]
    if pool is None:
        for i, a in enumerate(args):
            if progress:
                print(f"[{i + 1}/{n}] {a[0].name} ...", flush=True)
            done(i, _execute_notebook(*a))
    else:
        with pool:
            futures = {}
            for i in order:
                futures[pool.submit(_execute_notebook, *args[i])] = i
            if progress:
                print(f"running {n} notebooks, {min(jobs, n)} at a time ...", flush=True)
            warm = []
            for fut in warming:  # ran before the notebooks (first in the queue)
                try:
                    warm.append(round(fut.result(), 3))
                except Exception as e:  # noqa: BLE001 - the notebook then starts its own kernel
                    warm.append(f"failed: {type(e).__name__}: {e}")
            run["timings"]["warm_kernels_s"] = warm
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    entry = fut.result()
                except Exception as e:  # noqa: BLE001 - a crashed worker fails its notebook, not the run
                    entry = {"name": cfg.notebooks[i].name, "path": str(cfg.notebooks[i].path),
                             "status": "failed", "duration_s": 0.0, "failed_cell": None,
                             "error": f"cell None: worker crashed: {type(e).__name__}: {e}"}
                    if is_disk_full(e):
                        _mark_disk_full(entry, e)
                done(i, entry)
    return finish()


EXIT_CODES_HELP = f"""exit codes:
  {EXIT_OK}  every notebook succeeded; reports/<config>/latest points at the run
  {EXIT_NOTEBOOK}  a notebook failed or a cell exceeded cell_timeout_s (or an unexpected error);
     the run folder is kept, 'latest' unchanged
  {EXIT_CONFIG}  configuration error (unknown key, wrong type, value not allowed, notebook file
     missing, parameter not declared by the notebook, calibration_end outside the data);
     found before any kernel started, nothing written
  {EXIT_DATA}  the data broke a validation rule (the message names the column, the rule, the row
     count and up to five example rows); nothing written
  {EXIT_STAGE}  the shared analysis stage failed (e.g. no model could be fitted); run folder kept"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clv-lab`` command."""
    parser = argparse.ArgumentParser(prog="clv-lab", description=__doc__.split("\n")[0],
                                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="check a configuration, compute its stage, run its notebooks, write HTML",
                           description="Pre-flight (config, notebooks, data), the shared analysis stage, then "
                                       "every notebook on the clv-lab kernel.",
                           epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p_run.add_argument("config", help="YAML configuration (e.g. configs/cdnow.yaml) or its name")
    p_run.add_argument("--output-dir", default="reports", help="where reports go (default: reports/)")
    p_run.add_argument("--kernel", default=KERNEL_NAME, help=f"Jupyter kernel (default: {KERNEL_NAME})")
    p_run.add_argument("--jobs", type=int, default=None,
                       help=f"notebooks run at the same time (default: {default_jobs()}, one per core, at most 2)")
    p_run.add_argument("--quiet", action="store_true", help="no progress lines")
    add_compare_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "compare":
        return run_compare(args)

    if args.command == "run":
        try:
            run = run_config(args.config, args.output_dir, args.kernel, progress=not args.quiet, jobs=args.jobs)
        except ConfigError as e:
            print(f"clv-lab: configuration error: {e}", file=sys.stderr)
            return EXIT_CONFIG
        except DataValidationError as e:
            print(f"clv-lab: data error: {e}", file=sys.stderr)
            return EXIT_DATA
        except Exception as e:  # noqa: BLE001 - a clean message, not a traceback, for schedulers
            if is_disk_full(e):
                print(f"clv-lab: error: {DISK_FULL} ({getattr(e, 'filename', None) or e}); 'latest' unchanged",
                      file=sys.stderr)
                return EXIT_NOTEBOOK
            print(f"clv-lab: error: {type(e).__name__}: {e}", file=sys.stderr)
            return EXIT_NOTEBOOK
        if run["status"] != "ok":
            if any(nb.get("disk_full") for nb in run["notebooks"]):
                print(f"clv-lab: error: {DISK_FULL}, writing {run['run_dir']}; 'latest' unchanged", file=sys.stderr)
                return EXIT_NOTEBOOK
            if run["stage"].get("status") == "failed":
                print(f"clv-lab: the shared analysis stage failed: {run['stage']['error']}", file=sys.stderr)
                code = EXIT_STAGE
            else:
                for nb in run["notebooks"]:
                    if nb["status"] != "ok":
                        print(
                            f"clv-lab: notebook {nb['name']} failed at {nb['error']}"
                            + (f" [{nb.get('failed_cell_source')}]" if nb.get("failed_cell_source") else ""),
                            file=sys.stderr,
                        )
                code = EXIT_NOTEBOOK
            print(f"clv-lab: run kept for debugging in {run['run_dir']}; 'latest' unchanged", file=sys.stderr)
            return code
        print(f"reports written to {run['run_dir']}")
        print(f"open {Path(run['run_dir']) / 'index.html'}")
        return EXIT_OK
    return EXIT_CONFIG  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
