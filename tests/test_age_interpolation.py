"""helpers.age_interpolation: functions of (x, T) interpolated in the age T on Chebyshev pieces.

Independent references: closed-form functions with the singularity structure of the models' posteriors
(analytic for T > 0, a pole at T = -alpha), evaluated directly at every row.
"""

import numpy as np
import pytest

from helpers import age_interpolation as ai
from helpers.models.base import unique_rows


def rows(n=20_000, seed=3):
    """Distinct (x, T) of a multi-cohort base: day-resolved ages over three years, purchase counts 0..15."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(1.5, n).clip(0, 15).astype(float)
    T = rng.integers(0, 1096, n) / 7.0                       # ages in weeks, T = 0 included
    (xk, Tk), _, _ = unique_rows(x, T)
    return xk, Tk


def posterior_like(x, T, r=0.7, alpha=2.5):
    """(r + x) / (alpha + T) per row and its 1 - ((alpha + T) / (alpha + T + t))^(r + x) over four horizons t:
    the gamma posterior's mean rate and the probability of a purchase within t (a pole and a branch point at
    T = -alpha < 0)."""
    t = np.array([4.3, 13.0, 26.0, 52.0])
    a = (alpha + T)[:, None]
    return (r + x) / (alpha + T), 1.0 - (a / (a + t)) ** (r + x)[:, None]


def test_interpolated_equals_the_direct_evaluation_with_far_fewer_evaluations():
    x, T = rows()
    seen = []

    def f(xr, Tr):
        seen.append(len(xr))
        return posterior_like(xr, Tr)

    got = ai.interpolated_in_age(f, x, T)
    want = posterior_like(x, T)
    assert got is not None and len(got) == 2
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=0)
    # one call on the kept rows and the nodes, one on the check rows; together far fewer than the rows
    assert len(seen) == 2 and sum(seen) < len(x) / 4, (seen, len(x))


def test_a_function_that_is_not_smooth_in_age_fails_the_check_and_is_evaluated_directly():
    x, T = rows()

    def kinked(xr, Tr):
        return (np.abs(Tr - 80.3) * (1.0 + xr),)

    got = ai.interpolated_in_age(kinked, x, T)
    np.testing.assert_array_equal(got[0], kinked(x, T)[0])           # exactly the direct values


def test_few_ages_per_count_are_left_to_the_caller():
    x = np.repeat(np.arange(5.0), 10)
    T = np.tile(np.linspace(1.0, 100.0, 10), 5)                      # 10 ages per x, fewer than the nodes
    assert ai.interpolated_in_age(posterior_like, x, T) is None


@pytest.mark.parametrize("rtol", [1e-12, 1e-9])
def test_the_check_uses_the_callers_tolerance(rtol, monkeypatch):
    """A function with rounding noise of 1e-11 (as a special function evaluated in floating point): rejected
    at 1e-12, accepted at 1e-9, where it equals the direct values to that tolerance."""
    x, T = rows(5_000)
    noise = np.random.default_rng(0)

    def noisy(xr, Tr):
        m = posterior_like(xr, Tr)[0]
        return (m * (1.0 + 1e-11 * noise.standard_normal(len(m))),)

    calls, close = [], ai.close
    monkeypatch.setattr(ai, "close", lambda *a: calls.append(close(*a)) or calls[-1])
    got = ai.interpolated_in_age(noisy, x, T, rtol=rtol)
    assert calls == [rtol == 1e-9]
    np.testing.assert_allclose(got[0], posterior_like(x, T)[0], rtol=max(rtol, 1e-10))

