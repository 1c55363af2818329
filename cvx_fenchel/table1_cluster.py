"""Table 1 (:mod:`cvx_fenchel.table1`) on a Dask cluster: ``python -m cvx_fenchel.table1 ...
--workers N | --scheduler ADDRESS``, or ``table1.run(..., client=client)``.

Every cell is a task of :func:`cvx_fenchel.sweeps.run_tasks` (:func:`cell_task`, named by its
import path, its arguments the cell, the settings and the folders), writing its row also to
``OUT/cells/<cell>/row.json`` (:func:`cell_folder`); the lambda search, when one runs, is a task
too (:func:`lambda_task`, ``OUT/lambda-search/lambda.json``). An NN[Lifted] cell depends on its
lifted model's cell (it reads the weights file that cell writes), and with a search every
lifted-model and NN[Lifted] cell depends on the search; the random-initialisation cells run
meanwhile. :func:`run_distributed` writes each row to ``results.json``/``table.md`` as its cell
finishes (so ``--resume`` after a kill skips it) and, at the end, folds the rows in the order the
serial loop of :func:`cvx_fenchel.table1.run` gives, so the files equal a serial run's, timings
aside. A cell whose worker died runs again elsewhere from its beginning (cells keep no checkpoint;
a finished cell's ``row.json`` is reused). ``OUT`` and ``--data-dir`` must be on a file system
every worker sees at the same path; workers are given them as absolute paths.

Split from :mod:`cvx_fenchel.table1` (which imports this module only when given a client); the
two are siblings of one layer of the import contract.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from .history import atomic_write_bytes
from .table1 import (LAMBDA_GRID, RANDOM, Settings, _command, _data, _done, _key, _run_cell, _write,
                     choose_lambda)

__all__ = ["cell_folder", "cell_task", "lambda_task", "run_distributed"]

_DATA: dict = {}


def _worker_data(data_dir: str | None, n_train: int | None, pixels: str = "unit") -> tuple:
    """:func:`_data`, kept for the next task of the same data in this (worker) process."""
    if (data_dir, n_train, pixels) not in _DATA:
        _DATA.clear()
        _DATA[(data_dir, n_train, pixels)] = _data(data_dir, n_train, pixels)
    return _DATA[(data_dir, n_train, pixels)]


def cell_folder(out: Path, cell: tuple) -> Path:
    """``OUT/cells/<arch>-lr<lr>-<init>-seed<k>``: a cell's task folder (its ``row.json``)."""
    arch, lr, init, seed = cell
    return Path(out) / "cells" / f"{arch}-lr{'-' if lr is None else repr(lr)}-{init}-seed{seed}"


def cell_task(*, cell: list, settings: dict, data_dir: str | None, out: str,
              resume: bool = False, deps: dict | None = None) -> dict:
    """One cell as a task of :func:`cvx_fenchel.sweeps.run_tasks`: :func:`_run_cell` on the data
    loaded here, its row also written to ``row.json`` in :func:`cell_folder`. ``deps["lambda"]``
    (the search's result), when given, sets lambda. With ``resume`` (a re-run after a lost worker)
    a ``row.json`` of the same settings (and, for the lifted model, its weights file) is returned
    as it is; otherwise the cell runs from its beginning. Returns the row (without ``command``)."""
    st = Settings(**settings)
    if deps and "lambda" in deps:
        st = Settings(**{**settings, "lam": deps["lambda"]["lam"]})
    c = (cell[0], cell[1], cell[2], int(cell[3]))
    out_p = Path(out)
    rec = cell_folder(out_p, c) / "row.json"
    if resume and rec.is_file():
        row = json.loads(rec.read_text())
        if _done([row], c, st, out_p):
            return row
    row = _run_cell(c, st, _worker_data(data_dir, st.n_train, st.pixels), out_p)
    atomic_write_bytes(rec, json.dumps(row, indent=1).encode())
    return row


def lambda_task(*, settings: dict, data_dir: str | None, folder: str, resume: bool = False) -> dict:
    """:func:`choose_lambda` as a task (grid :data:`LAMBDA_GRID`), its result also written to
    ``folder/lambda.json`` and, with ``resume``, read back from there."""
    rec = Path(folder) / "lambda.json"
    if resume and rec.is_file():
        return json.loads(rec.read_text())
    X, y = _worker_data(data_dir, settings.get("n_train"), settings.get("pixels", "unit"))[:2]
    info = choose_lambda(X, y, Settings(**settings), grid=LAMBDA_GRID)
    atomic_write_bytes(rec, json.dumps(info, indent=1).encode())
    return info


def run_distributed(client, todo: list, st: Settings, search: bool, results: dict, out: Path,
                     data_dir: str | None, resume: bool) -> dict:
    """The cells of ``todo`` (and the lambda search when ``search``) as tasks on ``client``.

    Rows are written as cells finish; at the end the rows are folded in ``todo`` order exactly
    as the serial loop does (a row replaces the earlier one of its cell and goes last; with a
    search and ``resume``, a lifted cell found done under the chosen lambda keeps its old row),
    so ``results.json`` and ``table.md`` equal a serial run's, timings aside."""
    from .sweeps import Task, run_tasks

    # workers get absolute folders (a running cluster's workers start elsewhere); the rows'
    # commands keep the paths as given, as a serial run's do
    wout = Path(os.path.abspath(out))
    wdata = None if data_dir is None else os.path.abspath(os.path.expanduser(data_dir))
    before = list(results["rows"])
    names = {c: f"{c[0]} lr={c[1] if c[1] is not None else '-'} {c[2]} seed {c[3]}" for c in todo}
    tasks = []
    if search:
        print(f"choosing lambda on a validation split of the training set, grid {LAMBDA_GRID} "
              "(a task; the random-initialisation cells run meanwhile)", flush=True)
        tasks.append(Task("lambda", "cvx_fenchel.table1_cluster:lambda_task",
                          {"settings": asdict(st), "data_dir": wdata,
                           "folder": str(wout / "lambda-search")}, wout / "lambda-search"))
    for c in todo:
        deps = ("lambda",) if search and c[2] not in RANDOM else ()
        lnn = (c[0], None, "lnn", c[3])
        if c[2] == "lifted" and lnn in names:
            deps += (names[lnn],)
        tasks.append(Task(names[c], "cvx_fenchel.table1_cluster:cell_task",
                          {"cell": list(c), "settings": asdict(st), "data_dir": wdata,
                           "out": str(wout)}, cell_folder(wout, c), deps))
    cell_of = {names[c]: c for c in todo}
    state = {"st": st, "n": 0}
    t_start = time.perf_counter()

    def finished(done: int, total: int, key: str, info: dict) -> None:
        if key == "lambda":
            lam_info = info["result"]
            atomic_write_bytes(out / "lambda.json", json.dumps(lam_info, indent=1).encode())
            state["st"] = Settings(**{**asdict(st), "lam": lam_info["lam"]})
            results.update(settings=asdict(state["st"]), **{"lambda": lam_info})
            print(f"lambda = {lam_info['lam']:g}", flush=True)
            _write(out, results)
            return
        c, row = cell_of[key], info["result"]
        row["command"] = _command(c, state["st"], data_dir, out)
        results["rows"] = [r for r in results["rows"] if _key(r) != c] + [row]
        _write(out, results)
        state["n"] += 1
        print(f"[{state['n']}/{len(todo)}] {key}: test {row['test_accuracy']:.4f} "
              f"train {row['train_accuracy']:.4f} ({row['seconds']:.0f} s; "
              f"{(time.perf_counter() - t_start) / 60:.1f} min in all)", flush=True)

    def log(line: str) -> None:  # a first-attempt "done" line: finished() prints the row instead
        if " done: " not in line or "(attempt " in line:
            print(line, flush=True)

    rows_out = run_tasks(tasks, client, resume=resume, progress=finished, log=log)
    by_key = dict(zip((t.key for t in tasks), rows_out))
    final = state["st"]
    rows = before
    for c in todo:  # the serial loop's fold, in its order
        if search and resume and c[2] not in RANDOM and _done(before, c, final, out):
            continue
        rows = [r for r in rows if _key(r) != c] + [by_key[names[c]]]
    results["rows"] = rows
    _write(out, results)
    return results
