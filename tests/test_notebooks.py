"""The teaching notebooks (``notebooks/NN_*.py``, jupytext percent format, paired with executed
``.ipynb`` files): the series is complete and indexed, each pair is in sync, each committed
notebook holds the outputs of one top-to-bottom run, and each source executes in a fresh Jupyter
kernel (nbclient) with its exercises' assertions passing. A failure names the notebook and the
cell."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

# the GPU image has no Jupyter stack: ``pytest -m gpu`` must still collect this module
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"

_spec = importlib.util.spec_from_file_location("notebooks_build", NB_DIR / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

SOURCES = build.notebooks()
IDS = [p.stem for p in SOURCES]


def test_the_series_is_complete_indexed_and_linked_from_readme():
    assert len(SOURCES) >= 6, f"expected six notebooks or more, found {IDS}"
    assert [int(p.name[:2]) for p in SOURCES] == list(range(1, len(SOURCES) + 1)), IDS
    index = (NB_DIR / "README.md").read_text()
    readme = (ROOT / "README.md").read_text()
    learn = readme.split("## Learn", 1)[1].split("\n## ", 1)[0] if "## Learn" in readme else ""
    assert learn, "README.md needs a '## Learn' section"
    for text, where in ((index, "notebooks/README.md"), (learn, "README's Learn section")):
        positions = [text.find(f"{p.stem}.ipynb") for p in SOURCES]
        assert all(i >= 0 for i in positions), f"{where} must link every notebook: {IDS}"
        assert positions == sorted(positions), f"{where} must list the notebooks in order"
    for p in SOURCES:
        assert p.with_suffix(".ipynb").exists(), f"{p.name} has no executed {p.stem}.ipynb beside it"


@pytest.mark.parametrize("py", SOURCES, ids=IDS)
def test_pair_is_in_sync(py):
    """The .py re-read by jupytext has the same cells (type and source) as the committed .ipynb."""
    src = build.source_cells(build.read_source(py))
    nb = build.source_cells(nbformat.read(py.with_suffix(".ipynb"), as_version=4))
    for i, (a, b) in enumerate(zip(src, nb)):
        assert a == b, (f"{py.stem}: cell {i} differs between {py.name} and {py.stem}.ipynb; rebuild with "
                        f"`python notebooks/build.py {py.stem}`\n.py:   {a[1][:200]!r}\n.ipynb: {b[1][:200]!r}")
    assert len(src) == len(nb), f"{py.stem}: {len(src)} cells in the .py, {len(nb)} in the .ipynb"
    assert nbformat.read(py.with_suffix(".ipynb"), as_version=4).metadata["jupytext"]["formats"] == build.FORMATS


@pytest.mark.parametrize("py", SOURCES, ids=IDS)
def test_committed_notebook_holds_one_clean_run(py):
    """Every code cell of the .ipynb was executed, in order, in one run, without an error; its
    figures are embedded; every figure-making cell is followed by a markdown cell (what to see)."""
    nb = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
    counts, images = [], 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"{py.stem}: cell {i} was not executed"
        counts.append(cell.execution_count)
        for out in cell.outputs:
            assert out.output_type != "error", f"{py.stem}: cell {i} holds an error: {out.get('evalue')}"
            if "image/png" in out.get("data", {}):
                images += 1
                nxt = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
                assert nxt is not None and nxt.cell_type == "markdown" and "What to see" in nxt.source, \
                    f"{py.stem}: the figure of cell {i} needs a markdown cell saying what to see after it"
    assert counts == list(range(1, len(counts) + 1)), f"{py.stem}: not one top-to-bottom run: {counts}"
    assert images >= 1, f"{py.stem}: no figure in the committed notebook"


@pytest.mark.parametrize("py", SOURCES, ids=IDS)
def test_figures_have_labelled_axes(py):
    """Each plotting axis in the source gets an x and a y label (counted per notebook)."""
    text = py.read_text()
    n_x = len(re.findall(r"set_xlabel\(", text))
    n_y = len(re.findall(r"set_ylabel\(", text))
    assert n_x >= 1 and n_y >= 1, f"{py.stem}: figures need labelled axes"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("py", SOURCES, ids=IDS)
def test_notebook_executes(py, tmp_path, monkeypatch):
    """The source runs top to bottom in a fresh python3 kernel (its assertions and the exercises'
    solutions included); an error names the notebook and the cell."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))   # kernel connection files
    build.execute(build.read_source(py), py.name, cwd=NB_DIR)


@pytest.mark.parametrize("py", SOURCES, ids=IDS)
def test_each_notebook_ends_with_checked_exercises(py):
    """An 'Exercises' section with 2-3 numbered exercises, then 'Solutions' whose code asserts."""
    text = py.read_text()
    assert "## Exercises" in text and "## Solutions" in text, f"{py.stem}: needs Exercises and Solutions"
    exercises = text.split("## Exercises", 1)[1].split("## Solutions", 1)[0]
    n = len(re.findall(r"^# \d\. ", exercises, flags=re.M))
    assert 2 <= n <= 3, f"{py.stem}: {n} exercises"
    solutions = text.split("## Solutions", 1)[1]
    assert solutions.count("assert ") >= n, f"{py.stem}: every exercise's solution should assert"


def test_a_failing_cell_is_named(tmp_path, monkeypatch):
    """execute() names the notebook, the cell index and the cell's first line when a cell raises."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"),
                                         nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("assert x == 2, 'x is not 2'")])
    with pytest.raises(build.NotebookCellError, match=r"toy\.py: cell 2 \(.assert x == 2.*\) raised AssertionError: x is not 2"):
        build.execute(nb, "toy.py", cwd=tmp_path)
