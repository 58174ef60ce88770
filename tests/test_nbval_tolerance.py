"""notebooks/conftest.py: nbval compares the numbers of JSON outputs to 5 significant digits and rendered numbers
to one unit of their last digit, all else exactly."""

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
    test = {"a": 0.2516239591, "b": [1.000004, 2.0], "c": {"d": 190777.1587, "e": 1e-13}}
    assert tol.snap(test, ref) == ref


@pytest.mark.parametrize("test, ref", [
    ({"a": 0.02487}, {"a": 0.02484}),                 # 1.2e-3 apart: a real difference
    ({"a": 1.00002}, {"a": 1.0}),                     # just outside 1e-5
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


@pytest.mark.parametrize("test, ref", [
    ("<td>0.7334</td><td>-5,848.05</td>", "<td>0.7333</td><td>-5,848.05</td>"),   # a last digit flipped
    ("mean 1,234 days", "mean 1,235 days"),
    ("p = 0.100", "p = 0.099"),                                                  # 100 and 99 thousandths
])
def test_a_rendered_number_one_unit_of_its_last_digit_away_takes_the_committed_one(test, ref):
    assert tol.snap_text(test, ref) == ref


@pytest.mark.parametrize("test, ref", [
    ("<td>0.7335</td>", "<td>0.7333</td>"),           # two units: a real difference
    ("<td>0.733</td>", "<td>0.7333</td>"),            # other decimals
    ("<td>0.7334</td> BG/NBD", "<td>0.7333</td> MBG/NBD"),   # the text around differs
    ("1.0000000001", "1.0"),
    ("0.7334 and 2", "0.7333"),                       # another count of numbers
])
def test_other_text_differences_are_left_for_nbval(test, ref):
    assert tol.snap_text(test, ref) == test


def test_text_outputs_are_snapped_number_by_number():
    ref = [NotebookNode(output_type="display_data", data=NotebookNode({"text/html": "<td>0.7333</td><td>12</td>"}))]
    test = [NotebookNode(output_type="display_data", data=NotebookNode({"text/html": "<td>0.7334</td><td>14</td>"}))]
    assert tol.snap_outputs(test, ref)[0].data["text/html"] == "<td>0.7333</td><td>14</td>"
