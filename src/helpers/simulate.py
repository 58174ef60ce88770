"""Simulate transaction logs from the BG/NBD + Gamma-Gamma generative process.

The process is exactly the one of Fader, Hardie & Lee (2005a, "Counting your
customers the easy way", Marketing Science 24(2)), section 3, in continuous
time, with Gamma-Gamma spend (Fader, Hardie & Lee 2005b, JMR 42):

* each customer makes a first purchase at time 0 (their acquisition time);
* while active, transactions arrive as a Poisson process with rate
  ``lambda ~ Gamma(shape r, rate alpha)`` per time unit;
* after every *repeat* transaction the customer becomes inactive with
  probability ``p_drop ~ Beta(a, b)``.  The BG/NBD likelihood (FHL 2005a,
  eq. 3) has ``x = 0`` customers alive with certainty until the first
  repeat purchase (likelihood ``exp(-lambda T)``), so there is no drop-out
  chance right after the first purchase; that variant is the MBG/NBD
  (Batislam et al. 2007), available as ``model="mbgnbd"``;
* each transaction's value is ``z ~ Gamma(shape p, rate nu)`` with a
  customer-level ``nu ~ Gamma(shape q, rate gamma)``.

The purchase process is the model's own (``draw_latent`` and ``draw_purchases``
of :class:`helpers.models.bgnbd.BGNBD` / :class:`helpers.models.mbgnbd.MBGNBD`),
run in its two stages with the acquisition dates drawn in between, and the
spend process that of :class:`helpers.models.gamma_gamma.GammaGamma`.
Vectorisation: the number of repeat transactions before drop-out is
``J ~ Geometric(p_drop)`` (support 1, 2, ...; MBG/NBD: 0, 1, ...), independent of the arrival
process, and the number of Poisson arrivals in the observation window of
length ``T`` is ``N ~ Poisson(lambda T)``; the observed repeat count is
``x = min(J, N)``.  Given ``N = n`` the arrival times are the order statistics
of ``n`` uniforms on ``(0, T)``, generated for all customers at once as
normalised segment-wise cumulative sums of exponentials; the first ``x`` are
kept.  No Python loop runs per customer (10**6 customers take a few seconds).

Day counting bias
-----------------
The models are continuous-time, but :mod:`helpers.summary` counts purchases
per *day* and measures time in whole days.  At the CDNOW parameters (BG/NBD
``r=0.243, alpha=4.414, a=0.793, b=2.426`` per week, acquisition over 12
weeks, 39-week calibration window), fitting per-day summaries of simulated
logs (``resolution="day"`` + :func:`helpers.summary.rfm_summary`) biases the
estimates.  Measured with 1,000,000 simulated customers (seed 0,
``acquisition_days=84, observation_days=273``), relative to the true values:
``alpha`` **+6.0%**, ``r`` +2.4%, ``a`` -1.3%, ``b`` +0.4% (relative standard
errors 0.4%, 0.25%, 1.1%, 1.5%); relative to the fit on the exact
continuous-time summary of the same customers, ``alpha`` +6.4%.  The exact
continuous summary (:meth:`SimulationResult.summary`) recovers the truth within
about one standard error (alpha -0.4%, r -0.01%, a +0.8%, b +1.2%).  Both
day-level effects contribute: same-day purchases of the most frequent buyers
are merged into one purchase occasion, and ``t_x`` and ``T`` are measured in
whole days.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .models import GammaGamma, get_model
from .progress import polled, progress

__all__ = ["SimulationResult", "simulate_bgnbd", "write_parquet_chunks", "write_simulated_log", "simulate_market",
           "simulate_with_covariates", "write_simulated_covariate_log"]

_CSV_BLOCK_ROWS = 250_000      # rows per block of a simulated CSV log (write_simulated_log)


def _bg_family(model):
    """The registered model ``model`` if its parameters are ``r, alpha, a, b`` (the ones these simulators take)."""
    try:
        m = get_model(model)
    except ValueError as exc:
        raise ValueError(f"model: {exc}") from None
    if tuple(m.param_names) != ("r", "alpha", "a", "b"):
        raise ValueError(f"model must be one with parameters r, alpha, a, b (BG/NBD, MBG/NBD), got {model!r} "
                         f"with {list(m.param_names)}")
    return m


@dataclass
class SimulationResult:
    """A simulated transaction log with the truth behind it.

    Attributes
    ----------
    transactions : DataFrame
        ``customer_id`` (str), ``date`` (datetime64) and, when spend
        parameters were given, ``amount`` (float); first purchases included.
    params : dict
        The true parameters and simulation settings.
    customers : DataFrame
        Per customer (index ``customer_id``): ``lam``, ``p_drop``, ``nu``
        (NaN without spend), ``J`` (repeat transactions before drop-out,
        ignoring the window), ``acquisition_day`` (first purchase, days after
        ``start``), and the exact continuous-time summary ``x, t_x, T`` in
        time units (``T`` = time from first purchase to the end of the
        observation window) plus ``m_x`` (mean spend of repeat transactions).
    """

    transactions: pd.DataFrame
    params: dict
    customers: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """Exact continuous-time summary ``x, t_x, T[, m_x]`` (no same-day merging)."""
        cols = ["x", "t_x", "T"] + (["m_x"] if "m_x" in self.customers.columns else [])
        return self.customers[cols].copy()


def _log_rows(x, times, acq, time_unit_days, start_ts, resolution):
    """The log rows of simulated purchases, in customer order: each customer's first purchase (time 0)
    then the repeats (``times``, concatenated in customer order), no sort needed.

    Returns ``(customer index of each row, is-first-purchase mask, dates)``.
    """
    n = len(x)
    rows = x + 1
    row_off = np.cumsum(rows) - rows
    n_rows = int(rows.sum())
    cust_idx = np.repeat(np.arange(n), rows)
    is_first = np.zeros(n_rows, dtype=bool)
    is_first[row_off] = True
    t_all = np.zeros(n_rows)
    t_all[~is_first] = times
    days = acq[cust_idx] + t_all * time_unit_days
    dates = np.datetime64(start_ts.value, "ns") + (days * 86_400e9).astype("int64").view("timedelta64[ns]")
    if resolution == "day":
        dates = dates.astype("datetime64[D]").astype("datetime64[ns]")
    return cust_idx, is_first, dates


def _id_strings(n, id_prefix="", id_offset=0):
    """Customer ids ``f"{id_prefix}{k:09d}"`` for k = id_offset .. id_offset + n - 1 (wider when needed)."""
    width = max(9, len(str(id_offset + n)))
    return np.array([f"{id_prefix}{k:0{width}d}" for k in range(id_offset, id_offset + n)], dtype=object)


def simulate_bgnbd(
    n_customers: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    p: float | None = None,
    q: float | None = None,
    gamma: float | None = None,
    start: str | pd.Timestamp = "2020-01-01",
    observation_days: float = 546.0,
    time_unit_days: float = 7.0,
    acquisition_days: float = 0.0,
    seed: int | None = 0,
    resolution: str = "continuous",
    model: str = "bgnbd",
    id_prefix: str = "",
    id_offset: int = 0,
) -> SimulationResult:
    """Simulate a BG/NBD (+ Gamma-Gamma) transaction log.

    Parameters
    ----------
    n_customers : int
    r, alpha : float
        Purchase-rate heterogeneity, ``lambda ~ Gamma(r, rate alpha)`` per time unit.
    a, b : float
        Drop-out heterogeneity, ``p_drop ~ Beta(a, b)``.
    p, q, gamma : float, optional
        Gamma-Gamma spend parameters; all three or none (then no ``amount``).
    start : date
        Day 0 of the simulation.
    observation_days : float
        Length of the observation window in days, from ``start`` (default
        546 = 78 weeks, CDNOW's span).
    time_unit_days : float
        Days per model time unit (7 = parameters per week).
    acquisition_days : float
        0: every customer makes the first purchase at ``start``.  > 0: first
        purchases uniform (continuous) over ``[0, acquisition_days)`` days,
        i.e. several cohorts.
    seed : int, optional
        Seed of ``numpy.random.default_rng``.
    resolution : {"continuous", "day"}
        "continuous" keeps full timestamps (sub-day time, nanoseconds);
        "day" floors dates to midnight, so that counting per day (as
        :mod:`helpers.summary` does) merges same-day purchases.
    model : {"bgnbd", "mbgnbd"}
        "bgnbd" (default): the first drop-out chance comes after the first
        *repeat* transaction, as implied by the BG/NBD likelihood (FHL 2005a,
        eq. 3: a customer with x = 0 is certainly alive at time 0 and has
        likelihood exp(-lambda T)).  "mbgnbd": a drop-out chance also follows
        the first purchase (Batislam et al. 2007).
    id_prefix : str
        Prefix of the customer ids (``f"{id_prefix}{k:09d}"``).
    id_offset : int
        First customer number (for chunked generation).

    Returns
    -------
    SimulationResult
    """
    if int(n_customers) != n_customers or n_customers < 1:
        raise ValueError("n_customers must be a positive integer")
    for name, v in (("r", r), ("alpha", alpha), ("a", a), ("b", b), ("time_unit_days", time_unit_days),
                    ("observation_days", observation_days)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    spend = [v is not None for v in (p, q, gamma)]
    if any(spend) and not all(spend):
        raise ValueError("give all of p, q, gamma (spend) or none")
    if all(spend) and not all(np.isfinite(v) and v > 0 for v in (p, q, gamma)):
        raise ValueError("p, q, gamma must be positive")
    if not 0 <= acquisition_days < observation_days:
        raise ValueError("acquisition_days must be >= 0 and smaller than observation_days")
    process = _bg_family(model)
    if resolution not in ("continuous", "day"):
        raise ValueError(f"resolution must be 'continuous' or 'day', got {resolution!r}")
    n = int(n_customers)
    start_ts = pd.Timestamp(start)
    d = _simulate_bg_arrays(process, n, (r, alpha, a, b), (p, q, gamma) if all(spend) else None,
                            observation_days, time_unit_days, acquisition_days, seed, start_ts, resolution)
    id_strings = _id_strings(n, id_prefix, id_offset)
    tx = pd.DataFrame({"customer_id": id_strings[d["cust_idx"]], "date": d["dates"]})
    customers = pd.DataFrame({**d["latent"], "acquisition_day": d["acq"], "x": d["x"].astype(float),
                              "t_x": d["t_x"], "T": d["T"]},
                             index=pd.Index(id_strings, name="customer_id"))
    params = {"r": r, "alpha": alpha, "a": a, "b": b, "time_unit_days": time_unit_days,
              "observation_days": observation_days, "acquisition_days": acquisition_days,
              "start": str(start_ts.date()), "seed": seed, "resolution": resolution, "n_customers": n}
    if all(spend):
        tx["amount"] = d["amount"]
        customers["nu"] = d["nu"]
        customers["m_x"] = d["m_x"]
        params.update({"p": p, "q": q, "gamma": gamma})
    return SimulationResult(transactions=tx, params=params, customers=customers)


def _simulate_bg_arrays(process, n, theta, spend_theta, observation_days, time_unit_days, acquisition_days, seed,
                        start_ts, resolution) -> dict:
    """The arrays of :func:`simulate_bgnbd` (checked arguments), without ids or frames.

    One random stream (``numpy.random.default_rng(seed)``), drawn in this order:
    the model's latent traits, the acquisition days, the purchases, then (with
    ``spend_theta``) the spend traits and the amounts.  Returns a dict with
    ``latent``, ``acq``, ``T``, ``x``, ``t_x``, ``cust_idx`` / ``is_first``
    (per log row, customer order, first purchase first) and ``dates``, and with
    spend ``nu``, ``amount`` (per row) and ``m_x``.
    """
    rng = np.random.default_rng(seed)
    # the model's generative process in its two stages, with the acquisition dates drawn in between
    latent = process.draw_latent(theta, n, rng)                  # lam, p_drop, J
    acq = rng.uniform(0.0, acquisition_days, size=n) if acquisition_days > 0 else np.zeros(n)
    T = (observation_days - acq) / time_unit_days                 # window per customer, time units
    x, times = process.draw_purchases(theta, latent, T, rng)      # repeats in (0, T], sorted per customer
    has = x > 0
    last = np.cumsum(x) - 1
    t_x = np.zeros(n)
    t_x[has] = times[last[has]]
    cust_idx, is_first, dates = _log_rows(x, times, acq, time_unit_days, start_ts, resolution)
    out = {"latent": latent, "acq": acq, "T": T, "x": x, "t_x": t_x, "cust_idx": cust_idx, "is_first": is_first,
           "dates": dates}
    if spend_theta is not None:
        spend_process = GammaGamma()
        nu = spend_process.draw_latent(spend_theta, n, rng)["nu"]
        z = spend_process.draw_amounts(spend_theta, nu, cust_idx, rng)
        repeat_sum = np.bincount(cust_idx[~is_first], weights=z[~is_first], minlength=n)
        out.update(nu=nu, amount=z, m_x=np.divide(repeat_sum, x, out=np.zeros(n), where=x > 0))
    return out


def write_parquet_chunks(
    path: str | Path,
    n_customers: int,
    chunk_customers: int = 1_000_000,
    seed: int = 0,
    show_progress: bool = True,
    **kwargs,
) -> list[Path]:
    """Write a large simulated log as Parquet files, one chunk of customers at a time.

    Each chunk is simulated with its own seed derived from ``seed`` (via
    ``numpy.random.SeedSequence``) and distinct customer ids, written to
    ``path/part-00000.parquet`` etc. with pyarrow, and released before the next.

    Parameters
    ----------
    path : directory (created if needed)
    n_customers, chunk_customers : int
    seed : int
    show_progress : bool
        Show "simulated log chunks: k/n" while writing, when there is more than
        one chunk (in a notebook: one line updated in place; in a terminal: a
        progress bar; otherwise nothing).  The files are the same either way.
    **kwargs
        Passed to :func:`simulate_bgnbd` (``r, alpha, a, b``, spend, window...).

    Returns
    -------
    list of written file paths.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(f"write_parquet_chunks needs a working pyarrow installation ({exc})") from None

    if chunk_customers < 1 or n_customers < 1:
        raise ValueError("n_customers and chunk_customers must be positive")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    n_chunks = int(np.ceil(n_customers / chunk_customers))
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    files = []
    for k in progress(range(n_chunks), n_chunks, "simulated log chunks", enabled=show_progress and n_chunks > 1):
        n_k = min(chunk_customers, n_customers - k * chunk_customers)
        sim = simulate_bgnbd(n_k, seed=int(seeds[k].generate_state(1)[0]), id_offset=k * chunk_customers,
                             **kwargs)
        f = out / f"part-{k:05d}.parquet"
        pq.write_table(pa.Table.from_pandas(sim.transactions, preserve_index=False), f)
        files.append(f)
        del sim
    return files


# ---------------------------------------------------------------------------
# a transaction log on disk (simulated retailer) and a market of firms
# ---------------------------------------------------------------------------

def _private_tmp(target: Path) -> Path:
    """The temporary file a writer of ``target`` writes before renaming it onto ``target``: one per process
    and thread, so that two writers of the same log at once never share it (the rename is atomic)."""
    return target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def write_simulated_log(
    path: str | Path,
    n_customers: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    p: float,
    q: float,
    gamma: float,
    start: str | pd.Timestamp = "2021-01-01",
    acquisition_days: float = 0.0,
    observation_days: float = 546.0,
    seed: int = 0,
    time_unit_days: float = 7.0,
    model: str = "bgnbd",
    id_prefix: str = "",
    show_progress: bool | None = None,
) -> Path:
    """Write a simulated BG/NBD + Gamma-Gamma transaction log to a file.

    The log looks like a real one: one row per transaction with
    ``customer_id`` (zero-padded text), ``date`` (day resolution, ISO
    ``YYYY-MM-DD`` in CSV, ``datetime64`` in Parquet) and ``amount`` (rounded
    to cents, at least 0.01), sorted by date and customer.  It is a
    deterministic function of the arguments (same seed, same file content),
    which is what lets a configuration's ``simulate:`` section stand in for a
    data file (:func:`helpers.config.ensure_data` calls this with the
    section's keys).

    Parameters
    ----------
    path : str or Path
        Output file; ``.parquet``/``.pq`` writes Parquet, anything else CSV.
        Parent folders are created.  The file is written to a temporary name
        and renamed, so an interrupted run never leaves a partial log behind.
    n_customers, r, alpha, a, b, p, q, gamma, start, acquisition_days,
    observation_days, seed, time_unit_days, model, id_prefix
        As in :func:`simulate_bgnbd` (``r``/``alpha`` per time unit of
        ``time_unit_days`` days; spend parameters are required here).
        Every date lies in ``[start, start + observation_days)``.
    show_progress : bool or None
        Progress of the step, in a notebook or a terminal ("simulated log:
        running", the share of rows written while a CSV file is written,
        "done"): None (default) only when writing takes longer than 2 s (about
        100,000 customers and more), True always, False never.  The file is the
        same either way.

    Returns
    -------
    Path
        The written file.
    """
    out = Path(path)
    stop = threading.Event()                      # set on Ctrl-C while the log is written in a worker thread
    written = {"rows": 0, "of": 0}

    def checkpoint():
        if stop.is_set():
            raise KeyboardInterrupt

    def write():
        sim = simulate_bgnbd(
            n_customers, r, alpha, a, b, p=p, q=q, gamma=gamma, start=start,
            observation_days=observation_days, time_unit_days=time_unit_days,
            acquisition_days=acquisition_days, seed=seed, resolution="day", model=model,
            id_prefix=id_prefix,
        )
        checkpoint()
        tx = sim.transactions
        del sim
        tx["amount"] = np.maximum(np.round(tx["amount"].to_numpy(), 2), 0.01)
        tx = tx.sort_values(["date", "customer_id"], kind="mergesort").reset_index(drop=True)
        checkpoint()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = _private_tmp(out)
        try:
            if out.suffix.lower() in {".parquet", ".pq"}:
                tx.to_parquet(tmp, index=False)
            else:
                # in blocks of rows (the same bytes as one to_csv call): progress, and Ctrl-C between blocks
                written["of"] = len(tx)
                with open(tmp, "w", encoding="utf-8", newline="") as fh:
                    for lo in range(0, max(len(tx), 1), _CSV_BLOCK_ROWS):
                        checkpoint()
                        block = tx.iloc[lo:lo + _CSV_BLOCK_ROWS]
                        block = block.assign(date=block["date"].dt.strftime("%Y-%m-%d"))
                        block.to_csv(fh, index=False, header=lo == 0, float_format="%.2f", lineterminator="\n")
                        written["rows"] = lo + len(block)
            tmp.replace(out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def percent():
        # known while the CSV rows are written (most of the time of a large CSV log)
        return 100.0 * written["rows"] / written["of"] if written["of"] else None

    with polled("simulated log", show_progress) as step:
        step.run(write, percent, cancel=stop.set)
    return out


def simulate_market(
    n_firms: int = 200,
    months: int = 36,
    measure_months: int | None = 12,
    new_per_month: tuple[float, float] = (25.0, 250.0),
    mean_dropout: tuple[float, float] = (0.2, 0.95),
    dropout_concentration: float = 5.0,
    correlation: float = 0.0,
    r: float = 0.6,
    alpha: float = 10.0,
    p: float = 6.0,
    q: float = 4.0,
    gamma: float = 20.0,
    start: str | pd.Timestamp = "2021-01-01",
    time_unit_days: float = 7.0,
    model: str = "mbgnbd",
    seed: int = 0,
    show_progress: bool = True,
) -> pd.DataFrame:
    """A market of simulated firms that differ in retention and acquisition.

    Every firm sells to its own customers under the same BG/NBD purchase
    process (``r``, ``alpha``) and Gamma-Gamma spend (``p``, ``q``,
    ``gamma``) over the same window of ``months`` calendar months from
    ``start``, acquiring customers uniformly over the whole window.  Firms
    differ in two things only:

    * **retention**: the drop-out probability after each purchase is
      ``Beta(a, b)`` with mean ``m = a / (a + b)`` and
      ``a + b = dropout_concentration``; ``m`` is drawn per firm
      log-uniformly on ``mean_dropout`` (low ``m`` = good retention).  The
      default ``model="mbgnbd"`` (MBG/NBD) also gives a drop-out chance right
      after the first purchase, so ``m`` is close to the share of customers
      who never come back; under ``model="bgnbd"`` every customer makes at
      least one repeat purchase if it lives long enough, which keeps repeat
      shares high whatever the drop-out;
    * **acquisition**: new customers per month, drawn per firm
      log-uniformly on ``new_per_month`` (the firm's customer count is
      ``round(new_per_month * months)``).

    The two draws come from a Gaussian copula with correlation
    ``correlation`` between *retention quality* (``-log m``) and ``log``
    acquisition (0 = independent; negative = firms that acquire more retain
    worse).  Each firm is simulated with :func:`simulate_bgnbd` (``model``, day
    resolution) from its own seed spawned from ``seed``, so the market is a
    deterministic function of the arguments.

    Revenue and repeat share are measured over the last ``measure_months``
    calendar months of the window (``None``: the whole window), after the
    firm has been acquiring for a while.  ``repeat_share`` is the share of
    that revenue from *returning* customers with the definition of
    :func:`helpers.revenue.returning_revenue_share` (default
    ``definition="period"``, ``period="M"``): revenue of a customer in a
    month after its acquisition month; i.e. the revenue-weighted share over
    the measured months.

    ``show_progress`` shows "simulated firms: k/n_firms" while the firms are
    simulated (more than one firm; in a notebook one line updated in place, in
    a terminal a progress bar, otherwise nothing); the market is the same
    either way.

    Returns
    -------
    DataFrame
        One row per firm (index ``firm``, 0..n_firms-1) with ``revenue``,
        ``repeat_share``, ``new_revenue``, ``returning_revenue``,
        ``n_customers``, ``new_per_month``, ``mean_dropout``, ``a``, ``b``,
        the common ``r``, ``alpha``, ``p``, ``q``, ``gamma`` and the firm's
        ``seed``.  ``attrs["settings"]`` records the market settings.
    """
    if int(n_firms) != n_firms or n_firms < 1:
        raise ValueError(f"n_firms must be a positive integer, got {n_firms!r}")
    if int(months) != months or months < 1:
        raise ValueError(f"months must be a positive integer, got {months!r}")
    if measure_months is not None and not (1 <= int(measure_months) <= months):
        raise ValueError(f"measure_months must be None or in 1..months ({months}), got {measure_months!r}")
    lo_n, hi_n = (float(v) for v in new_per_month)
    lo_m, hi_m = (float(v) for v in mean_dropout)
    if not (0 < lo_n <= hi_n):
        raise ValueError(f"new_per_month must be (low, high) with 0 < low <= high, got {new_per_month!r}")
    if not (0 < lo_m <= hi_m < 1):
        raise ValueError(f"mean_dropout must be (low, high) with 0 < low <= high < 1, got {mean_dropout!r}")
    if not (np.isfinite(dropout_concentration) and dropout_concentration > 0):
        raise ValueError(f"dropout_concentration must be positive, got {dropout_concentration!r}")
    if not (-1 < correlation < 1):
        raise ValueError(f"correlation must lie in (-1, 1), got {correlation!r}")
    process = _bg_family(model)
    for name, v in (("r", r), ("alpha", alpha), ("time_unit_days", time_unit_days)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    if not all(np.isfinite(v) and v > 0 for v in (p, q, gamma)):
        raise ValueError("p, q, gamma must be positive")
    from scipy import stats  # noqa: PLC0415

    n_firms, months = int(n_firms), int(months)
    start_ts = pd.Timestamp(start).normalize()
    end_ts = start_ts + pd.DateOffset(months=months)
    observation_days = float((end_ts - start_ts).days)
    # acquisition over the whole window (simulate_bgnbd needs it strictly shorter)
    acquisition_days = observation_days - 1e-6

    ss = np.random.SeedSequence(seed)
    draw_seq, *firm_seqs = ss.spawn(n_firms + 1)
    rng = np.random.default_rng(draw_seq)
    z = rng.standard_normal((n_firms, 2))
    z[:, 1] = correlation * z[:, 0] + np.sqrt(1 - correlation**2) * z[:, 1]
    u = stats.norm.cdf(z)
    # retention quality u[:, 0] high -> low mean drop-out
    m = np.exp(np.log(hi_m) + u[:, 0] * (np.log(lo_m) - np.log(hi_m)))
    npm = np.exp(np.log(lo_n) + u[:, 1] * (np.log(hi_n) - np.log(lo_n)))
    a_f = m * dropout_concentration
    b_f = (1 - m) * dropout_concentration
    n_cust = np.maximum(np.round(npm * months).astype(np.int64), 1)
    firm_seeds = np.array([int(s.generate_state(1)[0]) for s in firm_seqs], dtype=np.int64)

    start_month = start_ts.to_datetime64().astype("datetime64[M]").astype(np.int64)
    first_measured = months - (months if measure_months is None else int(measure_months))
    revenue = np.zeros(n_firms)
    new_rev = np.zeros(n_firms)
    for k in progress(range(n_firms), n_firms, "simulated firms", enabled=show_progress and n_firms > 1):
        # the arrays of simulate_bgnbd (the same stream from the same seed), without its ids and frames
        sim = _simulate_bg_arrays(process, int(n_cust[k]), (r, alpha, float(a_f[k]), float(b_f[k])), (p, q, gamma),
                                  observation_days, time_unit_days, acquisition_days, int(firm_seeds[k]), start_ts,
                                  "day")
        month = sim["dates"].astype("datetime64[M]").astype(np.int64) - start_month
        amount = sim["amount"]
        # rows are in customer order with each customer's first purchase first
        first_month = month[sim["is_first"]][sim["cust_idx"]]
        measured = month >= first_measured
        revenue[k] = amount[measured].sum()
        new_rev[k] = amount[measured & (month == first_month)].sum()

    firms = pd.DataFrame(
        {
            "revenue": revenue,
            "repeat_share": np.divide(revenue - new_rev, revenue, out=np.full(n_firms, np.nan),
                                      where=revenue > 0),
            "new_revenue": new_rev,
            "returning_revenue": revenue - new_rev,
            "n_customers": n_cust,
            "new_per_month": npm,
            "mean_dropout": m,
            "a": a_f,
            "b": b_f,
            "r": float(r), "alpha": float(alpha), "p": float(p), "q": float(q), "gamma": float(gamma),
            "seed": firm_seeds,
        },
        index=pd.RangeIndex(n_firms, name="firm"),
    )
    firms.attrs["settings"] = {
        "n_firms": n_firms, "months": months, "measure_months": measure_months,
        "new_per_month": (lo_n, hi_n), "mean_dropout": (lo_m, hi_m),
        "dropout_concentration": float(dropout_concentration), "correlation": float(correlation),
        "start": str(start_ts.date()), "end": str((end_ts - pd.Timedelta(days=1)).date()),
        "time_unit_days": float(time_unit_days), "model": model, "seed": seed,
    }
    return firms


# ---------------------------------------------------------------------------
# a log with static covariates and known coefficients (issue 13)
# ---------------------------------------------------------------------------

def simulate_with_covariates(
    n_customers: int,
    model: str,
    params: dict,
    covariates: dict,
    gammas: dict,
    p: float | None = None,
    q: float | None = None,
    gamma: float | None = None,
    start: str | pd.Timestamp = "2021-01-01",
    acquisition_days: float = 0.0,
    observation_days: float = 546.0,
    time_unit_days: float = 7.0,
    seed: int = 0,
    resolution: str = "day",
    id_prefix: str = "",
) -> SimulationResult:
    """Simulate a log whose customers' parameters depend on categorical covariates with known coefficients.

    Each customer draws a level of every covariate (``covariates``: column ->
    ``{"levels": [...], "p": [...], "reference": level}``, the reference
    default the first level); the dummies (``column[level]`` for every level
    but the reference, :func:`helpers.covariates_data.dummy_name`) enter the
    model's covariate parameterisation with the coefficients ``gammas``
    (process -> dummy -> gamma): ``theta_i = theta_0 exp(sign gamma' z_i)`` as
    declared by the model's ``covariate_links``
    (:func:`helpers.models.covariates.per_customer_theta`; Pareto/NBD:
    ``alpha_i = alpha_0 exp(-gamma_purchase' z_i)``, ``beta_i = beta_0
    exp(-gamma_attrition' z_i)``).  Customers of one covariate group then
    follow the model's own generative process (``draw_latent``,
    ``draw_purchases``) at the group's parameters; the acquisition days are
    uniform on ``[0, acquisition_days)`` and the spend (with ``p, q, gamma``)
    is Gamma-Gamma without covariates, as in :func:`simulate_bgnbd`.  A
    deterministic function of the arguments.

    Returns
    -------
    SimulationResult
        ``customers`` holds each customer's covariate levels, the true
        per-customer parameters (``theta_<name>``) and the exact summary.
    """
    from .covariates_data import dummy_name  # noqa: PLC0415
    from .models.covariates import per_customer_theta  # noqa: PLC0415

    m = get_model(model)
    names = list(m.param_names)
    theta0 = tuple(float(params[k]) for k in names)
    n = int(n_customers)
    if n < 1:
        raise ValueError("n_customers must be a positive integer")
    if not 0 <= acquisition_days < observation_days:
        raise ValueError("acquisition_days must be >= 0 and smaller than observation_days")
    rng = np.random.default_rng(seed)
    levels, dummies = {}, {}
    for col, spec in covariates.items():
        lv = [str(v) for v in spec["levels"]]
        probs = np.asarray(spec.get("p", np.full(len(lv), 1.0 / len(lv))), dtype=float)
        if len(probs) != len(lv) or not np.isclose(probs.sum(), 1.0) or (probs < 0).any():
            raise ValueError(f"covariates.{col}.p must be {len(lv)} probabilities summing to 1")
        ref = str(spec.get("reference", lv[0]))
        if ref not in lv:
            raise ValueError(f"covariates.{col}.reference {ref!r} is not one of its levels {lv}")
        levels[col] = np.asarray(lv, dtype=object)[rng.choice(len(lv), size=n, p=probs)]
        for v in lv:
            if v != ref:
                dummies[dummy_name(col, v)] = (levels[col] == v).astype(float)
    coefs, Z = {}, {}
    for proc, g in gammas.items():
        if proc not in m.covariate_links:
            raise ValueError(f"{m.label} has no {proc!r} process; its processes: {list(m.covariate_links)}")
        unknown = [k for k in g if k not in dummies]
        if unknown:
            raise ValueError(f"gammas.{proc} names {unknown[0]!r}, not a dummy of the covariates ({list(dummies)})")
        if g:
            coefs[proc] = np.array([float(v) for v in g.values()])
            Z[proc] = np.column_stack([dummies[k] for k in g])
    theta_i = per_customer_theta(m, theta0, coefs, Z)
    theta_i = {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)) for k, v in zip(names, theta_i)}
    acq = rng.uniform(0.0, acquisition_days, size=n) if acquisition_days > 0 else np.zeros(n)
    T = (observation_days - acq) / time_unit_days
    # customers in groups of equal parameters, each group from the model's own process
    keys = np.column_stack([theta_i[k] for k in names])
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    x = np.zeros(n, dtype=np.int64)
    t_x = np.zeros(n)
    per_customer_times: list = [None] * n
    for g in range(int(group.max()) + 1):
        rows = np.flatnonzero(group == g)
        th = tuple(float(theta_i[k][rows[0]]) for k in names)
        latent = m.draw_latent(th, len(rows), rng)
        counts, times = m.draw_purchases(th, latent, T[rows], rng)
        x[rows] = counts
        split = np.split(np.asarray(times, dtype=float), np.cumsum(counts)[:-1]) if len(rows) else []
        for i, ts in zip(rows, split):
            per_customer_times[i] = ts
            if len(ts):
                t_x[i] = ts[-1]
    times = np.concatenate([per_customer_times[i] for i in range(n)]) if n else np.zeros(0)
    start_ts = pd.Timestamp(start)
    cust_idx, is_first, dates = _log_rows(x, times, acq, time_unit_days, start_ts, resolution)
    id_strings = _id_strings(n, id_prefix)
    tx = pd.DataFrame({"customer_id": id_strings[cust_idx], "date": dates})
    customers = pd.DataFrame({**levels, **{f"theta_{k}": v for k, v in theta_i.items()}, "acquisition_day": acq,
                              "x": x.astype(float), "t_x": t_x, "T": T},
                             index=pd.Index(id_strings, name="customer_id"))
    out_params = {**{k: float(params[k]) for k in names}, "model": model, "gammas": gammas,
                  "covariates": covariates, "time_unit_days": time_unit_days, "observation_days": observation_days,
                  "acquisition_days": acquisition_days, "start": str(start_ts.date()), "seed": seed,
                  "resolution": resolution, "n_customers": n}
    if p is not None:
        spend_process = GammaGamma()
        nu = spend_process.draw_latent((p, q, gamma), n, rng)["nu"]
        z = spend_process.draw_amounts((p, q, gamma), nu, cust_idx, rng)
        tx["amount"] = z
        repeat_sum = np.bincount(cust_idx[~is_first], weights=z[~is_first], minlength=n)
        customers["nu"] = nu
        customers["m_x"] = np.divide(repeat_sum, x, out=np.zeros(n), where=x > 0)
        out_params.update({"p": p, "q": q, "gamma": gamma})
    return SimulationResult(transactions=tx, params=out_params, customers=customers)


def write_simulated_covariate_log(path: str | Path, covariates_path: str | Path, **kwargs) -> tuple[Path, Path]:
    """Write :func:`simulate_with_covariates` as a CSV log and a CSV static covariate table.

    The log as :func:`write_simulated_log` writes it (``customer_id``,
    ``date`` as ``YYYY-MM-DD``, ``amount`` rounded to cents, at least 0.01,
    sorted by date and customer); the table has one row per customer:
    ``customer_id`` and the covariate levels.  Deterministic (same arguments,
    same bytes), written to temporary names and renamed.  ``kwargs``: the
    arguments of :func:`simulate_with_covariates` (a configuration's
    ``simulate:`` section).
    """
    kwargs.pop("show_progress", None)
    sim = simulate_with_covariates(resolution="day", **kwargs)
    tx = sim.transactions
    if "amount" in tx.columns:
        tx["amount"] = np.maximum(np.round(tx["amount"].to_numpy(), 2), 0.01)
    tx = tx.sort_values(["date", "customer_id"], kind="mergesort").reset_index(drop=True)
    tx = tx.assign(date=tx["date"].dt.strftime("%Y-%m-%d"))
    table = sim.customers[list(kwargs["covariates"])].reset_index()
    out = []
    for frame, target in ((tx, Path(path)), (table, Path(covariates_path))):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _private_tmp(target)
        frame.to_csv(tmp, index=False, float_format="%.2f", lineterminator="\n")
        tmp.replace(target)
        out.append(target)
    return out[0], out[1]
