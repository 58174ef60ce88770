"""nbval: the numbers a notebook records as JSON are compared to 6 significant digits.

nbval compares every output of a re-executed notebook with the committed one, exactly, after
the regular-expression sanitisers of ``sanitize.cfg`` (which see only text).  The JSON records
(``results.json``'s payload, the headlines) carry numbers to 10 significant digits, and the
last of those digits depend on the machine: vectorised ``exp``/``log`` and BLAS kernels round
differently on other CPUs (AVX2 against AVX-512), and finite-difference standard errors
amplify that.  So before nbval compares a JSON output, each number of the re-executed output
that equals the committed one to ``REL_TOL`` (relative; ``ABS_TOL`` absolute near zero) is
replaced by the committed number; any larger difference, any other value, key or text is
compared exactly and reported by nbval as usual.  Text and HTML outputs (4 significant
digits) are compared exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from nbformat import NotebookNode

REL_TOL = 1e-6
ABS_TOL = 1e-12


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


def _is_json(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def snap_outputs(test_outputs, ref_outputs):
    """The re-executed outputs with their JSON numbers snapped to the committed ones (matched as nbval
    matches outputs: the k-th output of a MIME type against the k-th of the same type)."""
    refs = defaultdict(list)
    for out in ref_outputs:
        for mime, value in (out.get("data") or {}).items():
            if _is_json(mime):
                refs[mime].append(value)
    seen: dict[str, int] = defaultdict(int)
    snapped = []
    for out in test_outputs:
        data = out.get("data")
        if data:
            new = dict(data)
            for mime, value in data.items():
                if _is_json(mime):
                    k = seen[mime]
                    seen[mime] += 1
                    if k < len(refs[mime]):
                        new[mime] = snap(value, refs[mime][k])
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
