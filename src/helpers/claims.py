"""Named predicates behind every closing sentence of the reports.

A sentence in a report is a claim about the results.  Each function here
decides one claim from numbers that the notebook computed, with its threshold
in the signature, and returns a :class:`Claim`: whether it holds (``None``
when the data cannot answer), the sentence to print (true in every branch) and
the evidence it rests on.  The unit tests exercise every predicate on both
sides of its threshold, so a report cannot print a sentence that its numbers
contradict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Claim",
    "one_time_majority",
    "time_unit_resolves",
    "forecasts_total",
    "ranks_better_than_baseline",
    "within_interval",
    "ranking_beats",
    "spend_independent",
    "in_band",
    "effect_direction",
    "holds_out_of_sample",
    "ranking_beats_all",
]


@dataclass(frozen=True)
class Claim:
    """The verdict of one named predicate.

    Attributes
    ----------
    name : str
        The predicate (function) name.
    holds : bool or None
        ``None`` when the data cannot answer (a missing or undefined number).
    text : str
        A sentence that is true of the numbers in every case.
    evidence : dict
        The numbers and thresholds the verdict rests on (for results.json).
    """

    name: str
    holds: bool | None
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:  # the sentence, for f-strings in notebooks
        return self.text


def _missing(*values) -> bool:
    return any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values)


def one_time_majority(one_time_share: float, threshold: float = 0.5) -> Claim:
    """Do most customers buy on one day only (share of one-time buyers above ``threshold``)?"""
    ev = {"one_time_share": one_time_share, "threshold": threshold}
    if _missing(one_time_share):
        return Claim("one_time_majority", None, "There are no customers to count.", ev)
    if one_time_share > threshold:
        text = (f"{one_time_share:.0%} of customers bought on one day only: most of the base is either gone or "
                f"buys rarely, which is why a model must separate *inactive* from *slow* customers.")
        return Claim("one_time_majority", True, text, ev)
    text = (f"{one_time_share:.0%} of customers bought on one day only, so most customers ({1 - one_time_share:.0%}) "
            f"came back at least once; a model still has to tell inactive from slow customers among them.")
    return Claim("one_time_majority", False, text, ev)


def time_unit_resolves(median_gap_days: float, unit_days: float, unit_name: str, min_ratio: float = 2.0) -> Claim:
    """Is the model's time unit fine enough: the median gap between purchases at least ``min_ratio`` units?

    Purchases are counted per day, so with a unit of one day or less there is
    no finer unit to recommend: the sentence then says so.
    """
    ev = {"median_gap_days": median_gap_days, "unit_days": unit_days, "min_ratio": min_ratio}
    if _missing(median_gap_days):
        return Claim("time_unit_resolves", None,
                     "No customer bought on two different days, so the time between purchases is unknown.", ev)
    ratio = median_gap_days / unit_days
    if ratio >= min_ratio:
        in_units = f" ({ratio:.1f} {unit_name}s)" if unit_days != 1.0 else ""
        text = (f"The median gap between purchases is {median_gap_days:.0f} days{in_units}: "
                f"the {unit_name} as time unit resolves the purchase process.")
        return Claim("time_unit_resolves", True, text, ev)
    if unit_days <= 1.0:
        text = (f"The median gap between purchases is {median_gap_days:g} day{'' if median_gap_days == 1 else 's'}, "
                f"less than {min_ratio:g} {unit_name}s; purchases are counted per day, so no finer time unit is "
                f"available: many customers buy again within days.")
        return Claim("time_unit_resolves", False, text, ev)
    text = (f"The median gap between purchases is {median_gap_days:.0f} days, less than {min_ratio:g} "
            f"{unit_name}s: a finer time unit would resolve the purchase process better.")
    return Claim("time_unit_resolves", False, text, ev)


def forecasts_total(total_error_pct: float, tolerance_pct: float = 5.0) -> Claim:
    """Does the forecast of total holdout purchases miss by at most ``tolerance_pct`` percent?"""
    ev = {"total_error_pct": total_error_pct, "tolerance_pct": tolerance_pct}
    if _missing(total_error_pct):
        return Claim("forecasts_total", None, "The holdout has no purchases to compare the forecast with.", ev)
    if abs(total_error_pct) <= tolerance_pct:
        return Claim("forecasts_total", True,
                     f"The model forecasts total holdout purchases within {tolerance_pct:g}% "
                     f"({total_error_pct:+.1f}%).", ev)
    way = "under" if total_error_pct < 0 else "over"
    eq = "understated" if total_error_pct < 0 else "overstated"
    return Claim("forecasts_total", False,
                 f"The model {way}-forecasts total holdout purchases by {abs(total_error_pct):.0f}%; if that bias "
                 f"carries over, customer equity is {eq} by a similar share.", ev)


def ranks_better_than_baseline(model: float, baseline: float, metric: str = "top-decile capture",
                               min_gain: float = 0.01) -> Claim:
    """Does the model rank customers better than the naive baseline on a ranking ``metric``?

    Holds when the model's metric exceeds the baseline's by at least ``min_gain``
    (absolute; the metrics of :mod:`helpers.diagnostics` are on a 0-1 scale).
    """
    ev = {"metric": metric, "model": model, "baseline": baseline, "min_gain": min_gain}
    if _missing(model, baseline):
        return Claim("ranks_better_than_baseline", None,
                     f"The {metric} is undefined here (no holdout purchases), so the ranking cannot be judged.", ev)
    if model >= baseline + min_gain:
        return Claim("ranks_better_than_baseline", True,
                     f"The model ranks customers better than the naive baseline ({metric} {model:.2f} vs "
                     f"{baseline:.2f}).", ev)
    if model > baseline - min_gain:
        return Claim("ranks_better_than_baseline", False,
                     f"The model ranks customers no better than the naive baseline ({metric} {model:.2f} vs "
                     f"{baseline:.2f}).", ev)
    return Claim("ranks_better_than_baseline", False,
                 f"The naive baseline ranks customers better than the model ({metric} {baseline:.2f} vs "
                 f"{model:.2f}).", ev)


def within_interval(realised: float, lower: float, upper: float, what: str = "the realised value") -> Claim:
    """Does a realised value lie within a forecast interval ``[lower, upper]``?"""
    ev = {"realised": realised, "lower": lower, "upper": upper}
    if _missing(realised, lower, upper):
        return Claim("within_interval", None, f"There is no interval to check {what} against.", ev)
    if lower <= realised <= upper:
        return Claim("within_interval", True,
                     f"{what[0].upper() + what[1:]} ({realised:,.0f}) lies within the forecast interval "
                     f"({lower:,.0f} to {upper:,.0f}).", ev)
    side = "below" if realised < lower else "above"
    return Claim("within_interval", False,
                 f"{what[0].upper() + what[1:]} ({realised:,.0f}) lies {side} the forecast interval "
                 f"({lower:,.0f} to {upper:,.0f}).", ev)


def ranking_beats(score: float, alternative: float, score_name: str, alternative_name: str,
                  tolerance: float = 0.005) -> Claim:
    """Does ranking by ``score_name`` capture more than ranking by ``alternative_name`` (by > ``tolerance``)?"""
    ev = {score_name: score, alternative_name: alternative, "tolerance": tolerance}
    if _missing(score, alternative):
        return Claim("ranking_beats", None, f"{score_name} and {alternative_name} cannot be compared here.", ev)
    if score > alternative + tolerance:
        return Claim("ranking_beats", True,
                     f"Ranking by {score_name} captures more than ranking by {alternative_name} "
                     f"({score:.1%} vs {alternative:.1%}).", ev)
    if score >= alternative - tolerance:
        return Claim("ranking_beats", False,
                     f"Ranking by {score_name} captures about as much as ranking by {alternative_name} "
                     f"({score:.1%} vs {alternative:.1%}).", ev)
    return Claim("ranking_beats", False,
                 f"Ranking by {alternative_name} captures more than ranking by {score_name} "
                 f"({alternative:.1%} vs {score:.1%}).", ev)


def spend_independent(corr: float, threshold: float = 0.3) -> Claim:
    """Is the Gamma-Gamma independence assumption acceptable: |corr(frequency, spend)| at most ``threshold``?"""
    ev = {"corr": corr, "threshold": threshold}
    if _missing(corr):
        return Claim("spend_independent", None,
                     "The correlation of frequency and spend is undefined (too few repeat buyers).", ev)
    if abs(corr) <= threshold:
        return Claim("spend_independent", True,
                     f"Spend per purchase and frequency correlate at {corr:.2f} among repeat buyers, within the "
                     f"{threshold:g} threshold: the Gamma-Gamma independence assumption is acceptable here.", ev)
    return Claim("spend_independent", False,
                 f"Spend per purchase and frequency correlate at {corr:.2f} among repeat buyers, beyond the "
                 f"{threshold:g} threshold: the Gamma-Gamma independence assumption is questionable here.", ev)


def in_band(value: float, low: float, high: float, what: str, fmt: str = "{:.0%}") -> Claim:
    """Does ``value`` fall inside the claimed band ``[low, high]``?"""
    ev = {"value": value, "low": low, "high": high}
    v, lo, hi = (fmt.format(z) if not _missing(z) else "n/a" for z in (value, low, high))
    if _missing(value):
        return Claim("in_band", None, f"{what} cannot be measured on these data.", ev)
    if low <= value <= high:
        return Claim("in_band", True, f"{what} ({v}) falls inside the claimed {lo} to {hi}.", ev)
    side = "below" if value < low else "above"
    return Claim("in_band", False, f"{what} ({v}) falls {side} the claimed {lo} to {hi}.", ev)


def effect_direction(estimate: float, ci_low: float, ci_high: float, what: str, fmt: str = "{:+.1%}") -> Claim:
    """Is an effect positive (interval above 0), negative (below 0), or not distinguishable from 0?

    ``holds`` is True for a positive effect, False for a negative one and None
    when the interval covers zero (the data cannot tell the sign).
    """
    ev = {"estimate": estimate, "ci_low": ci_low, "ci_high": ci_high}
    if _missing(estimate, ci_low, ci_high):
        return Claim("effect_direction", None, f"{what} cannot be estimated on these data.", ev)
    span = f"{fmt.format(estimate)}, interval {fmt.format(ci_low)} to {fmt.format(ci_high)}"
    if ci_low > 0:
        return Claim("effect_direction", True, f"{what} is positive ({span}).", ev)
    if ci_high < 0:
        return Claim("effect_direction", False, f"{what} is negative ({span}).", ev)
    return Claim("effect_direction", None, f"{what} is not distinguishable from zero ({span}).", ev)


def holds_out_of_sample(checks: dict, level: float = 0.9, unit: str = "") -> Claim:
    """Does every group's realised holdout value lie within its forecast interval?

    ``checks`` maps a group (segment) name to ``(realised, lower, upper)``; each
    is decided by :func:`within_interval`.  Holds when every group with an
    interval is inside it; ``None`` when no group has one.  The sentence names
    every group outside its interval, with the side.
    """
    verdicts = {name: within_interval(*v, what=f"the realised holdout value of {name}") for name, v in checks.items()}
    ev = {"level": level, "unit": unit, "groups": {k: c.evidence | {"holds": c.holds} for k, c in verdicts.items()}}
    judged = {k: c for k, c in verdicts.items() if c.holds is not None}
    u = f" {unit}" if unit else ""
    if not judged:
        return Claim("holds_out_of_sample", None,
                     "No segment has a forecast interval, so the holdout cannot test the segmentation.", ev)

    def span(c: Claim) -> str:
        e = c.evidence
        return f"realised {e['realised']:,.0f}{u}, interval {e['lower']:,.0f} to {e['upper']:,.0f}"

    if all(c.holds for c in judged.values()):
        inside = "; ".join(f"{k} {span(c)}" for k, c in judged.items())
        return Claim("holds_out_of_sample", True,
                     f"The segmentation holds out of sample: every segment's realised holdout value lies within its "
                     f"{level:.0%} forecast interval ({inside}).", ev)
    out = {k: c for k, c in judged.items() if not c.holds}
    outside = "; ".join(f"{k} {'below' if c.evidence['realised'] < c.evidence['lower'] else 'above'} it "
                        f"({span(c)})" for k, c in out.items())
    inside = [k for k, c in judged.items() if c.holds]
    rest = f"; within it: {', '.join(inside)}" if inside else ""
    return Claim("holds_out_of_sample", False,
                 f"The segmentation does not hold out of sample: the realised holdout value of {len(out)} of "
                 f"{len(judged)} segments lies outside its {level:.0%} forecast interval, {outside}{rest}.", ev)


def ranking_beats_all(score: float, alternatives: dict, score_name: str, tolerance: float | dict = 0.005) -> Claim:
    """Does ranking by ``score_name`` capture more than every alternative ranking (each by :func:`ranking_beats`)?

    Only then is the model's gain said to be in the order within the group of
    customers that every ranking puts first.  ``tolerance`` is one margin or one
    per alternative (e.g. twice the bootstrap SE of each difference,
    :func:`helpers.segments.capture_difference`).
    """
    tol = tolerance if isinstance(tolerance, dict) else {k: tolerance for k in alternatives}
    verdicts = {name: ranking_beats(score, v, score_name, name, tol[name]) for name, v in alternatives.items()}
    ev = {score_name: score, **{k: v for k, v in alternatives.items()}, "tolerance": tol}
    if not verdicts or any(c.holds is None for c in verdicts.values()):
        return Claim("ranking_beats_all", None, f"The rankings by {score_name} and the alternatives cannot be "
                                                f"compared here.", ev)
    if all(c.holds for c in verdicts.values()):
        others = " and ".join(f"{k} ({v:.1%})" for k, v in alternatives.items())
        return Claim("ranking_beats_all", True,
                     f"Ranking by {score_name} ({score:.1%}) captures more than ranking by {others}: the usual "
                     f"rankings also put frequent, recent customers first, and the model's gain is in the order "
                     f"within that group.", ev)
    return Claim("ranking_beats_all", False, " ".join(c.text for c in verdicts.values())
                 + f" So ranking by {score_name} does not beat every usual ranking here.", ev)
