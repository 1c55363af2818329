"""Build the teaching notebooks: each ``NN_name.py`` (jupytext percent format, the source under
review) becomes the executed ``NN_name.ipynb`` beside it (outputs and figures kept), and
optionally an HTML page per notebook.

    python notebooks/build.py                    # every notebook: .py -> executed .ipynb
    python notebooks/build.py 03_block_coordinate_descent   # one notebook (name with or without .py)
    python notebooks/build.py --html /tmp/nbhtml # also write HTML pages (nbconvert) into a folder
    python notebooks/build.py --html /tmp/nbhtml --no-execute   # HTML of the committed .ipynb

Needs the ``notebooks`` extra (``pip install ".[notebooks]"``). The tests
(``tests/test_notebooks.py``) use :func:`read_source`, :func:`source_cells` and :func:`execute`
from here, so a failure names the notebook and the cell.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: jupytext pairing of every notebook of the series.
FORMATS = "ipynb,py:percent"
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def notebooks() -> list[Path]:
    """The series in order: ``notebooks/NN_*.py``."""
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


class NotebookCellError(AssertionError):
    """A cell of a notebook raised: the message names the notebook, the cell and its first line."""


def read_source(py: Path):
    """The notebook of a percent-format source (jupytext), paired and with the python3 kernel."""
    import jupytext
    nb = jupytext.read(py)
    nb.metadata.setdefault("jupytext", {})["formats"] = FORMATS
    nb.metadata["kernelspec"] = dict(KERNEL)
    return nb


def source_cells(nb) -> list[tuple[str, str]]:
    """``(cell_type, source)`` of every cell, trailing whitespace of each cell dropped: what the
    pairing of a ``.py`` and its ``.ipynb`` must agree on."""
    return [(c.cell_type, c.source.rstrip()) for c in nb.cells]


def _first_line(src: str) -> str:
    lines = [ln for ln in src.splitlines() if ln.strip()]
    return lines[0][:70] if lines else ""


#: Environment of the kernels that execute the notebooks: one BLAS thread. The notebooks' matrices
#: are small; on a busy 2-core machine multi-threaded OpenBLAS spent most of its time waiting
#: (notebook 4's training: 30-69 s with the default threads, 3.9 s with one, and about 4.5 s
#: either way on an idle machine).
KERNEL_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def _environment(env: dict):
    """``os.environ`` updated by ``env`` inside the block (a kernel started there inherits it)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(nb, name: str, *, cwd: Path = HERE, timeout: int = 300, env: dict | None = None):
    """Execute ``nb`` in a fresh python3 kernel, cell by cell (nbclient); returns it with outputs.
    The kernel's environment adds ``env`` (default :data:`KERNEL_ENV`). Raises
    :class:`NotebookCellError` naming ``name``, the cell number and its first line."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    with _environment(KERNEL_ENV if env is None else env), client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, i)
            except CellExecutionError as exc:
                trace = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))   # no terminal colours in logs
                raise NotebookCellError(
                    f"{name}: cell {i} ({_first_line(cell.source)!r}) raised "
                    f"{exc.ename}: {exc.evalue}\n{trace}") from None
    return nb


def build(py: Path, *, run: bool = True) -> tuple[Path, float]:
    """``py`` -> ``py.with_suffix('.ipynb')`` (executed unless ``run`` is False); returns the path
    and the execution seconds."""
    import nbformat
    nb = read_source(py)
    t0 = time.perf_counter()
    if run:
        try:
            execute(nb, py.name, cwd=py.parent)
        except NotebookCellError:
            import tempfile
            partial = Path(tempfile.gettempdir()) / f"{py.stem}.partial.ipynb"
            nbformat.write(nb, partial)
            print(f"{py.name} failed; the notebook as far as it ran: {partial}", file=sys.stderr)
            raise
    seconds = time.perf_counter() - t0
    out = py.with_suffix(".ipynb")
    nbformat.write(nb, out)
    return out, seconds


def html(ipynb: Path, folder: Path) -> Path:
    """One HTML page (nbconvert, outputs and embedded figures) of an executed notebook."""
    import nbformat
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(ipynb, as_version=4))
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / ipynb.with_suffix(".html").name
    out.write_text(body, encoding="utf-8")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="notebooks to build (default: all, in order)")
    ap.add_argument("--html", type=Path, help="also write one HTML page per notebook into this folder")
    ap.add_argument("--no-execute", action="store_true", help="do not (re)build the .ipynb from the .py")
    args = ap.parse_args(argv)
    chosen = notebooks()
    if args.names:
        want = {n.removesuffix(".py").removesuffix(".ipynb") for n in args.names}
        chosen = [p for p in chosen if p.stem in want]
        missing = want - {p.stem for p in chosen}
        if missing:
            print(f"no such notebook: {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    for py in chosen:
        ipynb = py.with_suffix(".ipynb")
        if not args.no_execute:
            ipynb, seconds = build(py)
            print(f"{ipynb.name}: executed in {seconds:.1f} s")
        if args.html:
            print(f"  html: {html(ipynb, args.html)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
