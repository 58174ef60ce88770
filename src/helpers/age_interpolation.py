"""Functions of ``(x, T)`` interpolated in the age ``T``, per purchase count ``x``: Chebyshev pieces.

A base with continuous or day-resolved ages has hundreds of distinct ages ``T``
per purchase count ``x`` (a multi-cohort base: every acquisition day is an
age), so everything evaluated per distinct ``(x, T)`` is evaluated hundreds of
times per ``x``.  What the BTYD models predict for a customer alive at ``T``
depends on ``(x, T)`` only and is analytic in ``T`` for ``T > 0``: BG/NBD and
MBG/NBD through the gamma posterior of the purchase rate, ``Gamma(r + x, alpha
+ T)`` (Fader, Hardie & Lee 2005, eq. 10 and its conditional expectation), and
Pareto/NBD through ``alpha + T`` and ``beta + T`` (Schmittlein, Morrison &
Colombo 1987), singular only where these vanish, at ``T < 0``.  Such a function
is replaced on each piece of ages by its interpolant on Chebyshev points, and
checked against the direct evaluation at a few ages.

The ages ``T > 0`` are split into geometric pieces ``[lo, hi]`` (``hi / lo <=
T_RATIO``; shared by every ``x``).  On a piece with more than ``T_POINTS``
distinct ages of an ``x``, ``F(x, T) ~ sum_j L_j(T) F(x, T_j)`` (``T_j`` the
piece's ``T_POINTS`` Chebyshev points, ``L_j`` the Lagrange basis).  With the
half-width ``w`` at most half the centre ``c`` and no singularity at ``T > 0``
the interpolant converges like ``rho^-n``, ``rho = c / w + sqrt((c / w)^2 - 1)
>= 3.73`` (Trefethen, *Approximation Theory and Approximation Practice*, thm
8.2): ``3.73^-32 ~ 5e-19``, below double rounding.  The Lebesgue constant of
32 Chebyshev points is below 3, so the interpolation adds no error of note.

Users: :mod:`helpers.economics` (the retention lever: totals with weights
aggregated on the nodes, and per-customer expectations) and
:mod:`helpers.segments` (the monthly expectations behind net CLV, for the real
base and for the holdout interval's look-alike bases).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .models.base import unique_rows

#: Chebyshev points per piece of ages, and the largest ratio of a piece's ends.
T_POINTS, T_RATIO = 32, 3.0
#: Largest relative error at the check rows for which the interpolated values are used.
T_RTOL = 1e-12
#: Check rows per checked piece.
T_CHECK = 6


def chebyshev_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """First-kind Chebyshev points ``cos((k + 1/2) pi / n)`` on (-1, 1) and their barycentric weights."""
    angle = np.pi * (np.arange(n) + 0.5) / n
    return np.cos(angle), (-1.0) ** np.arange(n) * np.sin(angle)


def lagrange(u, points, weights) -> np.ndarray:
    """Lagrange basis polynomials of ``points`` at ``u``, ``(len(u), len(points))`` (barycentric formula)."""
    d = np.asarray(u, dtype=float)[:, None] - points[None, :]
    exact = d == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        q = weights[None, :] / d
        L = q / q.sum(axis=1, keepdims=True)
    hit = exact.any(axis=1)
    L[hit] = exact[hit].astype(float)
    return L


def age_pieces(x, T):
    """The interpolation pieces of distinct rows ``(x, T)``: ``(keep, groups)``.

    ``keep`` marks the rows left as they are; each group is ``(x, nodes, rows,
    L)``: an ``x``, its piece's Chebyshev nodes in ``T``, the indices of its
    rows (distinct ages) and their Lagrange weights, ``(len(rows), len(nodes))``.
    """
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    keep = np.ones(len(x), dtype=bool)
    pos = T > 0
    if not pos.any():
        return keep, []
    lo, hi = float(T[pos].min()), float(T[pos].max())
    n_pieces = max(1, int(np.ceil(np.log(hi / lo) / np.log(T_RATIO) - 1e-12))) if hi > lo else 1
    edges = lo * np.exp(np.linspace(0.0, np.log(hi / lo), n_pieces + 1)) if hi > lo else np.array([lo, hi])
    edges[0], edges[-1] = lo, hi
    piece = np.where(pos, np.clip(np.searchsorted(edges, T, side="right") - 1, 0, n_pieces - 1), -1)
    # groups of rows with the same (x, piece) and more distinct ages than nodes
    (gx, gp), ginv, gcount = unique_rows(x, piece)
    big = (gcount > T_POINTS) & (gp >= 0)
    if not big.any():
        return keep, []
    points, bary = chebyshev_points(T_POINTS)
    centre, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * (edges[1:] - edges[:-1])
    keep = ~big[ginv]
    order = np.argsort(ginv, kind="stable")
    starts = np.concatenate([[0], np.cumsum(gcount)])
    groups = []
    for g in np.flatnonzero(big):
        rows = order[starts[g]:starts[g + 1]]
        q = int(gp[g])
        groups.append((float(gx[g]), centre[q] + half[q] * points, rows,
                       lagrange((T[rows] - centre[q]) / half[q], points, bary)))
    return keep, groups


def check_rows(groups):
    """The checked groups (the smallest and the largest interpolated ``x``) with ``T_CHECK`` of their rows each."""
    chosen = [groups[0]] + ([groups[-1]] if groups[-1][0] != groups[0][0] else [])
    return [(*g, np.unique(np.linspace(0, len(g[2]) - 1, T_CHECK).round().astype(int))) for g in chosen]


def close(interp, direct, rtol: float | None = None) -> bool:
    """Every row of ``interp`` within ``rtol`` (default ``T_RTOL``) of ``direct``, relative to the row's largest
    absolute value."""
    interp, direct = np.atleast_2d(interp), np.atleast_2d(direct)
    scale = np.max(np.abs(direct), axis=1, keepdims=True)
    return bool(np.all(np.abs(interp - direct) <= (T_RTOL if rtol is None else rtol) * scale))


def interpolated_in_age(f: Callable[[np.ndarray, np.ndarray], tuple], x, T, rtol: float | None = None) -> tuple | None:
    """``f`` at every distinct row ``(x, T)``, interpolated in ``T`` where an ``x`` has many ages.

    Parameters
    ----------
    f : callable
        ``f(x, T)`` -> a tuple of arrays whose first axis runs over the rows
        (``(len(x),)`` or ``(len(x), k)``); analytic in ``T > 0`` for each ``x``
        (module docstring).
    x, T : array_like
        Distinct rows.
    rtol : float, optional
        Tolerance of the check (default ``T_RTOL``): a function evaluated
        through special functions with their own rounding (the hypergeometric
        survival of BG/NBD, about 1e-12) needs a looser one.

    Returns
    -------
    tuple of ndarray or None
        ``f``'s arrays for every row: ``f`` is evaluated at the kept rows and at
        the pieces' nodes, interpolated to the other ages, and checked against
        the direct evaluation at the rows of :func:`check_rows`; if any is off
        by more than ``rtol`` (relative to its row's largest value), ``f`` of
        every row.  None when no piece has more ages than nodes (nothing to
        gain: the caller evaluates ``f`` as it would have).
    """
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    keep, groups = age_pieces(x, T)
    if not groups:
        return None
    nk = int(keep.sum())
    on = f(np.concatenate([x[keep]] + [np.full(len(g[1]), g[0]) for g in groups]),
           np.concatenate([T[keep]] + [g[1] for g in groups]))
    out = []
    for a in on:
        a = np.asarray(a, dtype=float)
        full = np.empty((len(x),) + a.shape[1:])
        full[keep] = a[:nk]
        off = nk
        for _, nodes, rows, L in groups:
            full[rows] = np.tensordot(L, a[off:off + len(nodes)], axes=1)
            off += len(nodes)
        out.append(full)
    chk = np.concatenate([rows[pick] for _, _, rows, _, pick in check_rows(groups)])
    direct = f(x[chk], T[chk])
    if not all(close(a[chk].reshape(len(chk), -1), np.asarray(d, dtype=float).reshape(len(chk), -1), rtol)
               for a, d in zip(out, direct)):
        return tuple(np.asarray(a, dtype=float) for a in f(x, T))
    return tuple(out)
