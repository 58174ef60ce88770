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
