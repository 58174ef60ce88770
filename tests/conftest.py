from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cdnow_sample():
    """The CDNOW 1/10 sample, validated, as in Fader, Hardie & Lee (2005)."""
    from helpers.data import load_transactions

    return load_transactions(DATA / "cdnow_sample.csv", date_format="%Y%m%d", observation_end="1998-06-30")


@pytest.fixture(scope="session")
def cdnow_master():
    from helpers.data import load_transactions

    return load_transactions(DATA / "cdnow_master.csv", date_format="%Y%m%d")


@pytest.fixture(scope="session")
def paper_split(cdnow_sample):
    """Calibration (weeks 1-39) / holdout (weeks 40-78) summary of the sample, in weeks."""
    from helpers.summary import calibration_holdout

    return calibration_holdout(cdnow_sample.transactions, "1997-09-30", "1998-06-30", time_unit="W")


@pytest.fixture(scope="module")
def spark():
    """A local Spark session (one JVM per test module), stopped together with its JVM afterwards."""
    from pyspark import SparkContext  # a missing pyspark must fail the run, not skip it

    from helpers.summary_spark import get_spark

    session = get_spark(app_name="clv-lab-tests", master="local[2]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    gateway = SparkContext._gateway
    session.stop()
    # stopping the session leaves the JVM running until Python exits: end it now
    # (the JVM started for this module quits when its stdin closes)
    proc = getattr(gateway, "proc", None)
    if gateway is not None:
        gateway.shutdown()
        SparkContext._gateway = SparkContext._jvm = None
    if proc is not None:
        proc.stdin.close()
        proc.wait(timeout=60)


@pytest.fixture
def shown_progress(monkeypatch, capsys):
    """A terminal as helpers.progress sees it, every polled step shown at once; returns stderr so far."""
    import helpers.progress as hp

    monkeypatch.setattr(hp, "_in_kernel", lambda: False)
    monkeypatch.setattr(hp, "_in_terminal", lambda: True)
    monkeypatch.setattr(hp, "SHOW_AFTER_S", 0.0)
    monkeypatch.setattr(hp, "POLL_INTERVAL_S", 0.005)
    return lambda: capsys.readouterr().err


# Modules that take minutes (whole report collections, Spark sessions) go to the workers first (with
# --no-loadscope-reorder in addopts: xdist would otherwise order modules by their number of tests), so that
# pytest-xdist (--dist loadscope: a module stays on one worker) does not start one of them last while the
# other worker idles: longest jobs first.  The order within each module is kept.
SLOW_MODULES_FIRST = ("test_collection_engines.py", "test_collection.py", "test_paper_run.py",
                      "test_aggregates_revenue.py", "test_aggregates_log.py", "test_summary_spark.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
