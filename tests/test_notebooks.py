"""House rules for the notebooks: documented parameters, no definitions, lifetimes only via helpers."""

import ast
import re
from pathlib import Path

import nbformat
import papermill as pm
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
PARAM_LINE = re.compile(r"^(\w+): (int|float|str|bool|list|dict) = (.+?)  # \S.*$")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_is_typed_commented_literals(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    names = []
    for line in cells[0].source.splitlines():
        if not line.strip():
            continue
        m = PARAM_LINE.match(line)
        assert m, f"not a typed, commented literal: {line!r}"
        ast.literal_eval(m.group(3))  # a literal, not an expression
        names.append(m.group(1))
    documented = pm.inspect_notebook(str(path))
    assert list(documented) == names
    for name, info in documented.items():
        assert info["help"], f"{name} has no help text for papermill --help-notebook"
    assert "config" in names, "every notebook reads its data through a configuration"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_definitions_and_no_direct_lifetimes(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert nb.metadata["kernelspec"]["name"] == "clv-lab"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), \
                f"definition in a notebook cell: {cell.source[:80]!r}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(m.split(".")[0] == "lifetimes" for m in mods), "lifetimes only through helpers"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_outputs_and_results(path):
    """Notebooks are committed executed, and record machine-readable headline results."""
    from helpers.report import extract_results

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "commit notebooks executed (make notebooks)"
    assert extract_results(nb), "the notebook records its headline numbers with report.record_results"


JARGON = re.compile(r"\bseed[ -]?(\d{3}|essays?)\b", re.I)
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_jargon_in_headings_and_no_link_outside_the_repository(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.lstrip().startswith("#"):
                assert not JARGON.search(line), f"internal jargon in a heading: {line!r}"
        assert "../shared" not in cell.source, "a link outside the repository"
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        assert "../shared" not in text and not JARGON.search(text), doc.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_carry_no_path_of_this_clone(path):
    """A committed output naming this clone's folder (an absolute path to a data or covariate file) differs
    on every other clone, and nbval there fails: results record paths relative to the project."""
    text = path.read_text()
    assert str(ROOT) not in text, [line.strip()[:160] for line in text.splitlines() if str(ROOT) in line][:3]
