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
    "single_acquisition_window",
    "band_test_applies",
    "largest_part",
    "needs_amounts",
    "estimate_matches_claim",


    "retention_cheaper",
    "acquisition_pays",
    "pays_back_within",
    "price_cut_recoverable",
    "lever_choice_robust",
    "agrees_with_simulation",


    "holds_out_of_sample",
    "ranking_beats_all",


    "covariates_configured",
    "multiplier_effect",
    "covariates_improve_fit",
    "holdout_gain",
    "value_differs_by_group",
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


def single_acquisition_window(window_periods: int, n_periods: int, periods_with_new: int, first: str, last: str,
                              period_name: str = "month", max_share: float = 0.5) -> Claim:
    """Is the log a closed cohort: were all customers acquired in an early window covering less than
    ``max_share`` of the log's periods?

    ``window_periods`` counts the periods from the log's first period to the
    last one with a new customer (``first`` to ``last``); ``periods_with_new``
    the periods in it with any new customer.  None when the log has one
    period (there is no "after" the window).
    """
    ev = {"window_periods": window_periods, "n_periods": n_periods, "periods_with_new": periods_with_new,
          "first": first, "last": last, "max_share": max_share}
    if _missing(window_periods, n_periods) or n_periods < 2:
        return Claim("single_acquisition_window", None,
                     f"The log spans one {period_name}, so there is no acquisition pattern to describe.", ev)
    span = f"{first} to {last}" if first != last else first
    if window_periods / n_periods < max_share:
        text = (f"New customers arrived only in {span} ({periods_with_new} of {n_periods} {period_name}s): the "
                f"log follows a closed group of customers acquired in one window, so after {last} the bridge has "
                f"no new component and what it shows is the ageing of that group, not the path of a business "
                f"that keeps acquiring.")
        return Claim("single_acquisition_window", True, text, ev)
    text = (f"New customers arrived in {periods_with_new} of {n_periods} {period_name}s, from {span}: acquisition "
            f"is not confined to an early window (it spans {window_periods / n_periods:.0%} of the log), so new "
            f"customers feed the bridge alongside the existing ones.")
    return Claim("single_acquisition_window", False, text, ev)


def band_test_applies(window: Claim, measure: str = "revenue",
                      claim: str = "the claim about stable companies") -> Claim:
    """Can a returning-customer share measured on this log test a claim about stable companies?

    Not on a closed cohort (``window`` from :func:`single_acquisition_window`
    holds): after acquisition stops, everything comes from returning
    customers by construction.  None when ``window`` cannot tell.
    """
    ev = {"single_acquisition_window": window.holds}
    if window.holds is None:
        return Claim("band_test_applies", None,
                     f"With a single period there is no returning share to hold against {claim}.", ev)
    if window.holds:
        last = window.evidence.get("last", "the acquisition window")
        verb = "come" if measure.endswith("s") else "comes"
        return Claim("band_test_applies", False,
                     f"This is no test of {claim}: after {last} nobody new arrives, so all {measure} {verb} from "
                     f"returning customers by construction; a closed cohort is not a stable company.", ev)
    return Claim("band_test_applies", True,
                 f"Acquisition continues through the log, so the share can be held against {claim}, though where "
                 f"a firm sits also depends on how often customers buy within a period and how fast it acquires.",
                 ev)


def largest_part(parts: dict[str, float], what: str, fmt: str = "{:,.0f}") -> Claim:
    """Which part of a total is the largest (and is it strictly larger than the runner-up)?

    ``parts`` maps a name to a non-negative amount (e.g. gains by source,
    leaks by kind); ``what`` names one part in the sentence ("source of
    gains", "leak").  Holds when one part is strictly the largest; False on
    a tie at the top; None when every part is zero (nothing to compare).
    """
    ev = {"parts": dict(parts)}
    vals = {k: float(v) for k, v in parts.items()}
    if not vals or any(_missing(v) for v in vals.values()):
        return Claim("largest_part", None, f"The {what}s cannot be compared on these data.", ev)
    total = sum(vals.values())
    if total <= 0:
        return Claim("largest_part", None, f"There is no {what} to compare: every part is zero.", ev)
    ranked = sorted(vals.items(), key=lambda kv: -kv[1])
    (top, v1), rest = ranked[0], ranked[1:]
    word = "larger" if len(vals) == 2 else "largest"
    if rest and math.isclose(v1, rest[0][1], rel_tol=1e-9, abs_tol=0.0):
        return Claim("largest_part", False,
                     f"No single {what} dominates: {top} and {rest[0][0]} are equal ({fmt.format(v1)} each).", ev)
    text = f"The {word} {what} is {top}: {fmt.format(v1)} ({v1 / total:.0%} of {fmt.format(total)})"
    if rest:
        text += f", ahead of {rest[0][0]} ({fmt.format(rest[0][1])})"
    return Claim("largest_part", True, text + ".", ev)


def needs_amounts(has_amounts: bool, what: str, instead: str = "") -> Claim:
    """Does an analysis that needs amounts run: does the log have amounts?

    ``instead`` says what stands in without amounts; empty: the analysis is not run.
    """
    ev = {"has_amounts": bool(has_amounts)}
    if has_amounts:
        return Claim("needs_amounts", True, f"{what} uses the log's amounts.", ev)
    tail = f"; {instead}" if instead else ", so it is not run"
    return Claim("needs_amounts", False,
                 f"{what} needs amounts, and this log has none (no amount column is mapped){tail}.", ev)


def estimate_matches_claim(estimate: float, ci_low: float, ci_high: float, claimed: float, what: str,
                           fmt: str = "{:+.0%}") -> Claim:
    """Does a claimed value lie inside an estimate's 95% interval ``[ci_low, ci_high]``?"""
    ev = {"estimate": estimate, "ci_low": ci_low, "ci_high": ci_high, "claimed": claimed}
    if _missing(estimate, ci_low, ci_high, claimed):
        return Claim("estimate_matches_claim", None, f"{what} cannot be estimated on these data.", ev)
    span = f"{fmt.format(estimate)}, 95% interval {fmt.format(ci_low)} to {fmt.format(ci_high)}"
    if ci_low <= claimed <= ci_high:
        return Claim("estimate_matches_claim", True,
                     f"{what} ({span}) is consistent with the claimed {fmt.format(claimed)}.", ev)
    side = "below" if ci_high < claimed else "above"
    return Claim("estimate_matches_claim", False,
                 f"{what} ({span}) lies {side} the claimed {fmt.format(claimed)}.", ev)


def _num(v: float, unit: str) -> str:
    """A number with its unit: money ``1,234.50 USD`` or a count of purchases ``12.3 purchases``."""
    return f"{v:,.2f} {unit}" if abs(v) < 1e6 else f"{v:,.0f} {unit}"


def retention_cheaper(advantage: float, retention_cost_per_equity: float, acquisition_cost_per_equity: float,
                      currency: str, equity_unit: str, threshold: float = 1.0) -> Claim:
    """Does a retention programme create customer equity more cheaply than acquisition?

    ``advantage`` = acquisition cost per unit of equity / retention cost per
    unit of equity (:func:`helpers.economics.cost_per_equity`); holds when it
    exceeds ``threshold`` (1: equally efficient).  Costs are in ``currency``
    per ``equity_unit`` (e.g. ``"USD"`` of equity, or ``"discounted purchase"``).
    """
    ev = {"advantage": advantage, "retention": retention_cost_per_equity,
          "acquisition": acquisition_cost_per_equity, "threshold": threshold}
    if _missing(advantage) or (math.isinf(retention_cost_per_equity) and math.isinf(acquisition_cost_per_equity)):
        return Claim("retention_cheaper", None, "Neither lever creates customer equity here, so they cannot be "
                     "compared.", ev)
    per = (f"{retention_cost_per_equity:.3g} {currency} per {equity_unit} of equity by retention against "
           f"{acquisition_cost_per_equity:.3g} by acquisition")
    if math.isinf(retention_cost_per_equity):
        return Claim("retention_cheaper", False, "The retention programme creates no customer equity here, so "
                     "acquisition is the cheaper lever.", ev)
    if advantage > threshold:
        return Claim("retention_cheaper", True, f"Retention creates customer equity more cheaply than acquisition "
                     f"({per}: a factor of {advantage:.3g}).", ev)
    if advantage == threshold:
        return Claim("retention_cheaper", False, f"Retention and acquisition create customer equity at the same "
                     f"cost ({per}).", ev)
    return Claim("retention_cheaper", False, f"Acquisition creates customer equity more cheaply than retention "
                 f"({per}: retention costs {1 / advantage:.3g} times as much).", ev)


def acquisition_pays(new_customer_value: float, acquisition_cost: float, currency: str, horizon_months: int) -> Claim:
    """Is a new customer worth more than the cost of acquiring one (value over the horizon above the cost)?"""
    ev = {"new_customer_value": new_customer_value, "acquisition_cost": acquisition_cost,
          "horizon_months": horizon_months}
    if _missing(new_customer_value, acquisition_cost):
        return Claim("acquisition_pays", None, "The value of a new customer cannot be measured in money here.", ev)
    worth = (f"A new customer is worth {_num(new_customer_value, currency)} of discounted gross margin over "
             f"{horizon_months} months")
    if new_customer_value > acquisition_cost:
        return Claim("acquisition_pays", True, f"{worth}, more than the acquisition cost of "
                     f"{_num(acquisition_cost, currency)}: acquiring customers at that cost creates value.", ev)
    return Claim("acquisition_pays", False, f"{worth}, no more than the acquisition cost of "
                 f"{_num(acquisition_cost, currency)}: acquiring customers at that cost destroys value over the "
                 f"horizon.", ev)


def pays_back_within(payback_months: float, horizon_months: int, what: str) -> Claim:
    """Is a cost earned back within the horizon (``payback_months`` finite and at most ``horizon_months``)?"""
    ev = {"payback_months": payback_months, "horizon_months": horizon_months}
    if payback_months is None or (isinstance(payback_months, float) and math.isnan(payback_months)):
        return Claim("pays_back_within", None, f"The payback of {what} cannot be measured here.", ev)
    if math.isfinite(payback_months) and payback_months <= horizon_months:
        return Claim("pays_back_within", True, f"{what[0].upper() + what[1:]} pays back after "
                     f"{payback_months:.1f} months, within the {horizon_months}-month horizon.", ev)
    return Claim("pays_back_within", False, f"{what[0].upper() + what[1:]} does not pay back within the "
                 f"{horizon_months}-month horizon.", ev)


def price_cut_recoverable(discount: float, required_change: float, margin: float, lever: str = "drop-out cut") -> Claim:
    """Can a retention gain make up for a price cut (a finite required change, :func:`helpers.economics.price_cut_breakeven`)?

    ``required_change`` is the relative lever (e.g. a 0.24 drop-out cut) that
    leaves customer equity unchanged; NaN when no lever within its range does.
    """
    ev = {"discount": discount, "required_change": required_change, "margin": margin}
    if _missing(discount):
        return Claim("price_cut_recoverable", None, "No price cut was evaluated.", ev)
    if discount >= margin:
        return Claim("price_cut_recoverable", False, f"A {discount:.0%} price cut takes the whole {margin:.0%} "
                     f"margin: no retention gain can make up for it.", ev)
    if _missing(required_change) or math.isinf(required_change):
        return Claim("price_cut_recoverable", False, f"No retention gain can make up for a {discount:.0%} price "
                     f"cut within the horizon, not even customers who never drop out.", ev)
    return Claim("price_cut_recoverable", True, f"A {discount:.0%} price cut must buy a {required_change:.0%} "
                 f"{lever} for every customer just to leave customer equity unchanged.", ev)


def lever_choice_robust(flips: list[str] | tuple[str, ...], n_assumptions: int) -> Claim:
    """Does the cheaper lever stay the same when each assumption moves across its range (no ``flips``)?"""
    ev = {"flips": list(flips), "n_assumptions": n_assumptions}
    if not flips:
        return Claim("lever_choice_robust", True, f"None of the {n_assumptions} assumptions, moved one at a time "
                     f"across its range, changes which lever is cheaper.", ev)
    return Claim("lever_choice_robust", False, f"Which lever is cheaper changes within the range of: "
                 f"{', '.join(flips)}; the answer depends on {'this assumption' if len(flips) == 1 else 'these assumptions'}.",
                 ev)


def agrees_with_simulation(max_abs_z: float, threshold: float = 4.0) -> Claim:
    """Does an analytic result agree with a simulation: largest |difference| / Monte-Carlo SE at most ``threshold``?"""
    ev = {"max_abs_z": max_abs_z, "threshold": threshold}
    if _missing(max_abs_z):
        return Claim("agrees_with_simulation", None, "There is no simulation to check against.", ev)
    if max_abs_z <= threshold:
        return Claim("agrees_with_simulation", True, f"The exact lever agrees with a simulation of the model's "
                     f"generative process (largest deviation {max_abs_z:.1f} Monte-Carlo standard errors, "
                     f"threshold {threshold:g}).", ev)
    return Claim("agrees_with_simulation", False, f"The exact lever deviates from a simulation of the model's "
                 f"generative process by {max_abs_z:.1f} Monte-Carlo standard errors (threshold {threshold:g}): "
                 f"its results are suspect.", ev)


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


def covariates_configured(has_covariates: bool, config_name: str = "this configuration") -> Claim:
    """Does the configuration name customer covariates (``data.covariates``)?"""
    ev = {"has_covariates": bool(has_covariates)}
    if has_covariates:
        return Claim("covariates_configured", True, f"{config_name[0].upper() + config_name[1:]} names customer "
                     "covariates (data.covariates), so the models are fitted with them.", ev)
    return Claim("covariates_configured", False,
                 f"{config_name[0].upper() + config_name[1:]} has no covariates (no data.covariates section), so "
                 "there are no customer attributes to relate purchasing and attrition to: this report has nothing "
                 "to estimate. Name a covariate table in the configuration (see the README, section Covariates) "
                 "to run it.", ev)


def multiplier_effect(multiplier: float, lower: float, upper: float, covariate: str, quantity: str,
                      level: float = 0.95) -> Claim:
    """Does a covariate change ``quantity``: does the multiplier's ``level`` interval exclude 1?

    ``holds`` is True when the interval lies above or below 1 (the sentence
    says which way), False when it covers 1 (the data cannot tell the effect
    from none) and None when the multiplier is undefined (e.g. an infinite
    mean lifetime).
    """
    ev = {"multiplier": multiplier, "lower": lower, "upper": upper, "level": level}
    if _missing(multiplier, lower, upper) or not all(math.isfinite(v) and v > 0 for v in (multiplier, lower, upper)):
        return Claim("multiplier_effect", None,
                     f"The effect of {covariate} on the {quantity} is not defined at these estimates (the "
                     "quantity is infinite or its interval cannot be computed).", ev)
    span = f"{multiplier:.3g} per unit, {level:.0%} interval {lower:.3g} to {upper:.3g}"
    if lower > 1:
        return Claim("multiplier_effect", True, f"{covariate} raises the {quantity} ({span}).", ev)
    if upper < 1:
        return Claim("multiplier_effect", True, f"{covariate} lowers the {quantity} ({span}).", ev)
    return Claim("multiplier_effect", False,
                 f"{covariate} has no effect on the {quantity} that these data can distinguish from none ({span}).",
                 ev)


def covariates_improve_fit(p_value: float, statistic: float, df: int, model: str, alpha: float = 0.05) -> Claim:
    """Do the covariates improve the likelihood beyond chance: LR test p-value below ``alpha``?"""
    ev = {"p_value": p_value, "statistic": statistic, "df": df, "alpha": alpha}
    if _missing(p_value, statistic):
        return Claim("covariates_improve_fit", None, f"The likelihood-ratio test of {model} could not be computed.",
                     ev)
    pv = f"p = {p_value:.2g}" if p_value >= 1e-4 else "p < 0.0001"
    test = f"likelihood ratio {statistic:,.1f} on {df} degree{'s' if df != 1 else ''} of freedom, {pv}"
    if p_value < alpha:
        return Claim("covariates_improve_fit", True,
                     f"The covariates improve the fit of {model} by more than chance would ({test}).", ev)
    return Claim("covariates_improve_fit", False,
                 f"The covariates do not improve the fit of {model} by more than chance would ({test}).", ev)


def holdout_gain(mae_with: float, mae_without: float, model: str, min_gain: float = 0.01) -> Claim:
    """Do the covariates improve the holdout forecast: customer-level MAE lower by at least ``min_gain`` (relative)?"""
    ev = {"mae_with": mae_with, "mae_without": mae_without, "min_gain": min_gain}
    if _missing(mae_with, mae_without) or mae_without <= 0:
        return Claim("holdout_gain", None, "The holdout has no purchases to compare the forecasts on.", ev)
    change = mae_with / mae_without - 1
    span = f"MAE {mae_with:.4g} with covariates against {mae_without:.4g} without, {change:+.1%}"
    if change <= -min_gain:
        return Claim("holdout_gain", True,
                     f"The covariates improve {model}'s holdout forecast of individual customers ({span}).", ev)
    if change < min_gain:
        return Claim("holdout_gain", False,
                     f"The covariates leave {model}'s holdout forecast of individual customers about as good as "
                     f"without them ({span}; less than {min_gain:.0%} either way).", ev)
    return Claim("holdout_gain", False,
                 f"The covariates make {model}'s holdout forecast of individual customers worse ({span}).", ev)


def value_differs_by_group(means: dict, covariate: str, unit: str, ratio: float = 1.25) -> Claim:
    """Does the mean CLV differ across the groups of ``covariate``: highest mean at least ``ratio`` times the lowest?"""
    vals = {str(k): float(v) for k, v in means.items()}
    ev = {"means": vals, "ratio": ratio}
    if len(vals) < 2 or any(_missing(v) for v in vals.values()):
        return Claim("value_differs_by_group", None, f"The groups of {covariate} cannot be compared here.", ev)
    hi = max(vals, key=vals.get)
    lo = min(vals, key=vals.get)
    if vals[lo] <= 0:
        return Claim("value_differs_by_group", None,
                     f"The lowest mean CLV by {covariate} is not positive, so the groups are not compared as a ratio.",
                     ev)
    r = vals[hi] / vals[lo]
    ev["observed_ratio"] = r
    span = (f"{covariate} = {hi}: {vals[hi]:,.2f} {unit} per customer against {vals[lo]:,.2f} for "
            f"{covariate} = {lo}, {r:.2f} times")
    if r >= ratio:
        return Claim("value_differs_by_group", True, f"Customer value differs by {covariate} ({span}).", ev)
    return Claim("value_differs_by_group", False,
                 f"Customer value differs little by {covariate} ({span}, less than {ratio:g} times).", ev)
