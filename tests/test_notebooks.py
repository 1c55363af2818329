"""The teaching notebooks run top to bottom (their cells assert the facts they show)."""

import runpy
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path))
    runpy.run_path(str(path), run_name="__main__")
    assert list(tmp_path.glob("*.png")), "the notebook should write its figures"
