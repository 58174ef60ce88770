"""nbval: the numbers a notebook records as JSON are compared to 5 significant digits.

nbval compares every output of a re-executed notebook with the committed one, exactly, after
the regular-expression sanitisers of ``sanitize.cfg`` (which see only text).  The JSON records
(``results.json``'s payload, the headlines) carry numbers to 10 significant digits, and the
last of those digits depend on the machine: vectorised ``exp``/``log`` and BLAS kernels round
differently on other CPUs (AVX2 against AVX-512), and finite-difference standard errors
amplify that (seen: a BG/NBD standard error 0.04634113564 against 0.04634108753, 1.04e-6
relative, between an AVX2 and an AVX-512 machine).  So before nbval compares a JSON output, each number of the re-executed output
that equals the committed one to ``REL_TOL`` (relative; ``ABS_TOL`` absolute near zero) is
replaced by the committed number; any larger difference, any other value, key or text is
compared exactly and reported by nbval as usual.

Text and HTML outputs show numbers rounded (4 significant digits), and a number within about
1e-6 of a rounding boundary flips its last digit between CPUs (seen: 0.7333 against 0.7334).
So a number of a re-executed text output that differs from the committed one at the same place
by one unit of its last digit, written with the same decimals, takes the committed one
(``snap_text``): the text around the numbers, the count of numbers and any larger difference
are compared exactly.  The JSON record of the same cell still holds the unrounded number.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import pytest
from nbformat import NotebookNode

REL_TOL = 1e-5
ABS_TOL = 1e-12
#: A number in text: digits with thousands separators, an optional decimal part.
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def snap(test, ref):
    """``test`` with every number that is within the tolerance of ``ref``'s at the same place replaced by ``ref``'s."""
    if isinstance(test, bool) or isinstance(ref, bool):
        return test
    if isinstance(test, (int, float)) and isinstance(ref, (int, float)):
        return ref if math.isclose(test, ref, rel_tol=REL_TOL, abs_tol=ABS_TOL) else test
    if isinstance(test, dict) and isinstance(ref, dict):
        return {k: snap(v, ref[k]) if k in ref else v for k, v in test.items()}
    if isinstance(test, list) and isinstance(ref, list) and len(test) == len(ref):
        return [snap(t, r) for t, r in zip(test, ref)]
    return test


def _last_digit_apart(a: str, b: str) -> bool:
    """Two rendered numbers with the same decimals that differ by one unit of the last digit."""
    da, db = a.partition(".")[2], b.partition(".")[2]
    if len(da) != len(db):
        return False
    ia, ib = int(a.replace(",", "").replace(".", "")), int(b.replace(",", "").replace(".", ""))
    return abs(ia - ib) == 1


def snap_text(test: str, ref: str) -> str:
    """``test`` with each number one unit of its last digit from ``ref``'s at the same place replaced by
    ``ref``'s, when the text between the numbers is the same; otherwise ``test`` unchanged."""
    if test == ref:
        return test
    t_parts, r_parts = NUMBER.split(test), NUMBER.split(ref)
    t_nums, r_nums = NUMBER.findall(test), NUMBER.findall(ref)
    if t_parts != r_parts or len(t_nums) != len(r_nums):
        return test
    nums = [r if t == r or _last_digit_apart(t, r) else t for t, r in zip(t_nums, r_nums)]
    out = [t_parts[0]]
    for num, part in zip(nums, t_parts[1:]):
        out += [num, part]
    return "".join(out)


def _is_json(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def _is_text(mime: str) -> bool:
    return mime in ("text/plain", "text/html", "text/markdown")


def snap_outputs(test_outputs, ref_outputs):
    """The re-executed outputs with their JSON numbers snapped to the committed ones (matched as nbval
    matches outputs: the k-th output of a MIME type against the k-th of the same type)."""
    refs = defaultdict(list)
    for out in ref_outputs:
        for mime, value in (out.get("data") or {}).items():
            if _is_json(mime) or _is_text(mime):
                refs[mime].append(value)
    seen: dict[str, int] = defaultdict(int)
    snapped = []
    for out in test_outputs:
        data = out.get("data")
        if data:
            new = dict(data)
            for mime, value in data.items():
                if _is_json(mime) or _is_text(mime):
                    k = seen[mime]
                    seen[mime] += 1
                    if k < len(refs[mime]):
                        r = refs[mime][k]
                        new[mime] = (snap(value, r) if _is_json(mime) else
                                     snap_text(value, r) if isinstance(value, str) and isinstance(r, str) else value)
            out = NotebookNode({**out, "data": NotebookNode(new)})   # nbval reads attributes
        snapped.append(out)
    return snapped


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if not config.getoption("nbval", default=False):
        return
    from nbval.plugin import IPyNbCell  # noqa: PLC0415  (only with --nbval)

    if getattr(IPyNbCell.compare_outputs, "_clv_lab_snaps", False):
        return
    compare = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        return compare(self, snap_outputs(test, ref), ref, skip_compare)

    compare_outputs._clv_lab_snaps = True
    IPyNbCell.compare_outputs = compare_outputs
