"""Progress reporting never changes what is iterated or computed, and is silent outside kernels and terminals."""

import threading

import nbformat
import pytest
from nbclient import NotebookClient

import helpers.progress as hp
from helpers.progress import poll, polled, progress


def test_progress_yields_everything_silently_when_not_interactive(capsys):
    assert list(progress(range(7), 7, "items")) == list(range(7))
    assert list(progress(iter("abc"), 3, "letters", enabled=False)) == ["a", "b", "c"]
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_in_a_kernel_ends_on_a_deterministic_line():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from helpers.progress import progress\nitems = list(progress(range(45), 45, 'resamples'))\nlen(items)")]
    NotebookClient(nb, kernel_name="clv-lab", timeout=120).execute()
    outputs = nb.cells[0].outputs
    shown = [o["data"]["text/plain"] for o in outputs if o.get("output_type") == "display_data"]
    assert shown == ["progress · resamples: 45/45"]  # updated in place, final state only, no timings
    assert outputs[-1]["data"]["text/plain"] == "45"


# ---------------------------------------------------------------------------
# polled (percentage) progress of long calls: DuckDB queries, Spark jobs
# ---------------------------------------------------------------------------


class _Terminal:
    def __init__(self, capsys):
        self.capsys = capsys
        self.err = ""

    def getvalue(self) -> str:
        """Everything written to stderr so far (the bars)."""
        self.err += self.capsys.readouterr().err
        return self.err


@pytest.fixture
def terminal(monkeypatch, capsys):
    """A terminal as helpers.progress sees it (stderr a tty, no kernel); the bars go to captured stderr."""
    monkeypatch.setattr(hp, "_in_kernel", lambda: False)
    monkeypatch.setattr(hp, "_in_terminal", lambda: True)
    return _Terminal(capsys)


class _Handle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, data, raw=False):
        assert raw
        self.shown.append(data["text/plain"])


@pytest.fixture
def kernel(monkeypatch):
    """A Jupyter kernel as helpers.progress sees it: the texts shown on one display, in order."""
    import IPython.display

    shown: list[str] = []

    def display(data, raw=False, display_id=False):
        assert raw and display_id
        shown.append(data["text/plain"])
        return _Handle(shown)

    monkeypatch.setattr(hp, "_in_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", display)
    return shown


@pytest.fixture
def quick_polls(monkeypatch):
    """Show at once and poll often (no waiting in the tests)."""
    monkeypatch.setattr(hp, "SHOW_AFTER_S", 0.0)
    monkeypatch.setattr(hp, "POLL_INTERVAL_S", 0.005)


def _stepped(readings):
    """A call that ends only after the calling thread has read all ``readings`` (deterministic)."""
    calls = []
    release = threading.Event()
    threads = []

    def percent():
        calls.append(1)
        if len(calls) >= len(readings):
            release.set()
        return readings[min(len(calls), len(readings)) - 1]

    def fn():
        threads.append(threading.current_thread())
        assert release.wait(timeout=120), "the calling thread never polled"
        return "result"

    return fn, percent, threads


def test_polled_in_a_kernel_updates_one_line_and_ends_done(kernel):
    fn, percent, threads = _stepped([None, 10.0, 55.4, 55.9, -1.0])
    assert poll(fn, percent, "slow step", enabled=True) == "result"
    assert threads[0] is not threading.main_thread()            # the call ran in a worker thread
    # in order, without repeats: unknown -> "running"; the end -> "done"
    distinct = [t for i, t in enumerate(kernel) if i == 0 or t != kernel[i - 1]]
    assert distinct == ["progress · slow step: running", "progress · slow step: 10%",
                        "progress · slow step: 55%", "progress · slow step: running",
                        "progress · slow step: done"]


def test_polled_in_a_terminal_shows_a_bar_on_stderr(terminal):
    fn, percent, _ = _stepped([None, 25.0, 80.0])
    assert poll(fn, percent, "slow step", enabled=True) == "result"
    out = terminal.getvalue()
    assert "slow step: running" in out and "slow step:  25%|" in out and "slow step:  80%|" in out


@pytest.mark.parametrize("where", ["kernel", "terminal"])
def test_polled_shows_nothing_when_disabled_or_quick(where, request, monkeypatch):
    shown = request.getfixturevalue(where)
    called_in = []

    def fn():
        called_in.append(threading.current_thread())
        return 7

    assert poll(fn, lambda: 50.0, "never", enabled=False) == 7
    assert called_in[-1] is threading.main_thread()              # disabled: no worker thread at all
    monkeypatch.setattr(hp, "SHOW_AFTER_S", 3600.0)              # steps far shorter than the threshold
    assert poll(fn, lambda: 50.0, "quick") == 7
    with polled("quick, several calls") as step:
        assert [step.run(fn, lambda: 50.0) for _ in range(3)] == [7, 7, 7]
    assert called_in[-1] is not threading.main_thread()          # ran in a worker, but showed nothing
    assert (shown if where == "kernel" else shown.getvalue()) in ([], "")


def test_polled_is_silent_outside_kernels_and_terminals(capsys):
    assert poll(lambda: 3, lambda: 50.0, "piped", enabled=True) == 3
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


class _Boom(Exception):
    pass


def test_exceptions_of_the_call_propagate_unchanged(kernel, quick_polls):
    from helpers.data import DataValidationError

    for error in (_Boom("from the worker"), DataValidationError("amount", "amount must be finite", 3)):
        def fail(error=error):
            raise error

        with pytest.raises(type(error)) as caught:
            poll(fail, lambda: 10.0, "failing step")
        assert caught.value is error
    assert "progress · failing step: done" not in kernel         # a failed step does not end "done"


def test_duckdb_query_errors_propagate_unchanged(terminal, quick_polls):
    import duckdb

    con = duckdb.connect()
    with pytest.raises(duckdb.Error) as direct:
        con.execute("SELECT no_such_column FROM range(3)")
    with pytest.raises(duckdb.Error) as polled_error:
        poll(lambda: con.execute("SELECT no_such_column FROM range(3)").fetchall(), con.query_progress,
             "query", cancel=con.interrupt)
    assert type(polled_error.value) is type(direct.value)
    assert str(polled_error.value) == str(direct.value)


def test_slow_duckdb_query_shows_its_percentage_and_ctrl_c_interrupts_it(terminal, quick_polls):
    """A long DuckDB query reports percentages; Ctrl-C in the calling thread interrupts it."""
    from helpers.summary_duckdb import connect

    con = connect(threads=1)
    seen = []

    def percent():
        seen.append(con.query_progress())
        if seen[-1] > 0:
            raise KeyboardInterrupt                                # Ctrl-C once a percentage was shown
        return seen[-1]

    interrupted = []
    original = con.interrupt

    def interrupt():
        interrupted.append(True)
        original()

    # takes hours unless interrupted
    query = "SELECT count(DISTINCT range % 1000003) FROM range(100000000000)"
    with pytest.raises(KeyboardInterrupt):
        poll(lambda: con.execute(query).fetchall(), percent, "slow query", cancel=interrupt)
    assert interrupted and max(seen) > 0
    assert con.execute("SELECT 42").fetchall() == [(42,)]         # the connection is usable again
    assert "slow query:" in terminal.getvalue()
    con.close()


def test_duckdb_summary_in_a_kernel_shows_a_line_only_for_long_steps(root):
    """On a real kernel (DuckDB reports no percentage there without ipywidgets): nothing for a quick
    summary by default; with the threshold at 0 one line that ends "done"."""
    nb = nbformat.v4.new_notebook()
    csv = str(root / "data" / "cdnow_sample.csv")
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import helpers.progress as hp\nfrom helpers.summary_duckdb import rfm_summary_duckdb\n"
            f"quick = rfm_summary_duckdb({csv!r}, date_format='%Y%m%d')\nlen(quick)"),
        nbformat.v4.new_code_cell(
            f"hp.SHOW_AFTER_S = 0.0\nslow = rfm_summary_duckdb({csv!r}, date_format='%Y%m%d')\n"
            "slow.equals(quick)"),
    ]
    NotebookClient(nb, kernel_name="clv-lab", timeout=300).execute()
    first, second = nb.cells[0].outputs, nb.cells[1].outputs
    assert [o["output_type"] for o in first] == ["execute_result"]
    assert [o["data"]["text/plain"] for o in second if o.get("output_type") == "display_data"] == [
        "progress · log summary (DuckDB): done"]
    assert second[-1]["data"]["text/plain"] == "True"


def test_spark_summary_with_progress_equals_without(terminal, quick_polls, root, monkeypatch, spark):
    """Spark actions polled through statusTracker give the same summary."""
    monkeypatch.setattr(hp, "POLL_INTERVAL_S", 0.05)
    import pandas as pd

    from helpers.summary_spark import calibration_holdout_spark, rfm_summary_spark

    csv = root / "data" / "cdnow_sample.csv"
    kw = dict(date_format="%Y%m%d", spark=spark)
    on = rfm_summary_spark(csv, "1998-06-30", **kw, progress=True)
    assert "log summary (Spark):" in terminal.getvalue()
    pd.testing.assert_frame_equal(on, rfm_summary_spark(csv, "1998-06-30", **kw, progress=False))
    pd.testing.assert_frame_equal(calibration_holdout_spark(csv, "1997-09-30", "1998-06-30", **kw),
                                  calibration_holdout_spark(csv, "1997-09-30", "1998-06-30", **kw,
                                                            progress=False))
    assert "calibration/holdout summary (Spark):" in terminal.getvalue()
