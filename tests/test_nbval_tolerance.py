"""notebooks/conftest.py: nbval compares the numbers of JSON outputs to 6 significant digits, all else exactly."""

import importlib.util
from pathlib import Path

import pytest
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("nbval_tolerance", ROOT / "notebooks" / "conftest.py")
tol = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tol)


def test_numbers_within_the_tolerance_take_the_committed_value():
    ref = {"a": 0.2516239589, "b": [1.0, 2.0], "c": {"d": 190777.1588, "e": 0.0}}
    test = {"a": 0.2516239591, "b": [1.0000004, 2.0], "c": {"d": 190777.1587, "e": 1e-13}}
    assert tol.snap(test, ref) == ref


@pytest.mark.parametrize("test, ref", [
    ({"a": 0.02487}, {"a": 0.02484}),                 # 1.2e-3 apart: a real difference
    ({"a": 1.000002}, {"a": 1.0}),                    # just outside 1e-6
    ({"a": True}, {"a": 0.9999999999}),               # bools are not numbers here
    ({"a": "0.2516"}, {"a": "0.2517"}),               # text is compared exactly
    ({"a": [1.0, 2.0]}, {"a": [1.0, 2.0, 3.0]}),      # lists of other lengths
    ({"a": 1.0, "new": 2.0}, {"a": 1.0}),             # extra keys are kept (nbval then reports them)
    ({"a": None}, {"a": 0.0}),
])
def test_other_differences_are_left_for_nbval(test, ref):
    out = tol.snap(test, ref)
    assert (out == ref) is False
    assert out == test


def test_outputs_are_matched_per_mime_type_in_order():
    mime = "application/vnd.clv-lab.results+json"
    ref = [NotebookNode(output_type="display_data", data=NotebookNode({mime: {"x": 1.0}, "text/plain": "x 1.0"})),
           NotebookNode(output_type="display_data", data=NotebookNode({mime: {"x": 5.0}}))]
    test = [NotebookNode(output_type="display_data", data=NotebookNode({mime: {"x": 1.0000000001},
                                                                        "text/plain": "x 1.0000000001"})),
            NotebookNode(output_type="display_data", data=NotebookNode({mime: {"x": 5.1}}))]
    out = tol.snap_outputs(test, ref)
    assert out[0].data[mime] == {"x": 1.0} and out[0].data["text/plain"] == "x 1.0000000001"
    assert out[1].data[mime] == {"x": 5.1}
    assert out[0].output_type == "display_data"          # nbval reads the outputs' attributes
    assert test[0].data[mime] == {"x": 1.0000000001}      # the outputs themselves are not modified
