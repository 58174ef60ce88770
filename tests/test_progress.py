"""Progress reporting never changes what is iterated, and is silent outside kernels and terminals."""

import nbformat
from nbclient import NotebookClient

from helpers.progress import progress


def test_progress_yields_everything_silently_when_not_interactive(capsys):
    assert list(progress(range(7), 7, "items")) == list(range(7))
    assert list(progress(iter("abc"), 3, "letters", enabled=False)) == ["a", "b", "c"]
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_in_a_kernel_ends_on_a_deterministic_line():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from helpers.progress import progress\nitems = list(progress(range(45), 45, 'resamples'))\nlen(items)")]
    NotebookClient(nb, kernel_name="clv-lab", timeout=120).execute()
    outputs = nb.cells[0].outputs
    shown = [o["data"]["text/plain"] for o in outputs if o.get("output_type") == "display_data"]
    assert shown == ["progress · resamples: 45/45"]  # updated in place, final state only, no timings
    assert outputs[-1]["data"]["text/plain"] == "45"
