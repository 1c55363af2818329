"""``cvx-fenchel report``: one generated paper-vs-ours report (issue 15, point 6).

Every number the two papers report (``../shared/reference/paper_results.md``, encoded as data
in :mod:`.paper`: Fig. 1-4 of Gu, Askari and El Ghaoui 2020 and every cell of Table 1 of Askari
et al.'s lifted-networks report) is matched with the runs in one folder ``RUNS`` (what
``cvx-fenchel reproduce`` writes). :func:`build_report` writes ``OUT/REPRODUCTION.json`` (per
paper number: ours, the difference in percentage points, status ``done`` / ``partial`` /
``started`` / ``not run`` with its reason, epochs and stop reason, wall time, data, seed,
machine, commit, command; the gap-study variants), ``OUT/REPRODUCTION.md`` (the same as tables,
headed by the command that generated it and when) and ``OUT/reproduction-<figure>.png`` (test
accuracy per epoch of every model, the paper's values marked; :mod:`.render`). Facts a run did
not record read "not recorded"; nothing is invented.

``RUNS`` may be several folders, plus the committed archive of earlier sessions' runs
(:mod:`.archive`, ``cvx-fenchel report --archive DIR``): a folder name found in several is read
model by model (Table 1: folder by folder), the newest copy winning (a live copy: its files'
modification time; an archived one: its source's, recorded in ``archive.json``), a tie going to
the live copy. What is read:

* ``RUNS/<figure>-full/`` (``--subset``: also ``<figure>-subset``), figure in fig1..fig4:
  ``results.json`` (``{"runs": [{"model", "command", "epochs", "test_accuracy",
  "test_accuracy_per_epoch", "seconds", "seed", "backend", optional "stop_reason", "machine",
  "commit"/"source_commit", "max_epochs", "base_model"/"paper_model"}], "data_dir", "seed",
  "command"}``) and every model folder: ``<model>/history.json`` (meta ``options``,
  ``command``, ``train_seconds``, ``data_dir``, ``dataset``, optional ``stop_reason``,
  ``machine``, ``source_commit``, ``partial``), else the checkpoint
  ``<model>/checkpoints/state.json`` (the history so far; ``run.json`` beside it: the options,
  so the planned epochs and the command). A model with no ``history.json``, or whose checkpoint
  is ahead of it, is *partial*; a model folder with neither is *started* (baselines write
  nothing before they finish).
* ``RUNS/<figure>-<anything else>/`` (``fig3-gaps-full``, ...): the same layout; each model there
  is a *variant* row beside its figure, compared with the paper number of its base model (the
  row's ``paper_model``/``base_model``, else its history's ``model``, else the longest paper
  label it starts with). Folders ending in ``subset`` are read only with ``--subset``.
* ``RUNS/table1-full/results.json`` (variants: ``table1-<x>/results.json``): ``{"rows": [{"arch",
  "lr", "init", "seed", "test_accuracy"}], optional "lambda", "lambda_note", "command",
  "machine", "commit", "data_dir"}`` (``"runs"`` is read for ``"rows"``). ``arch``: hidden layers
  ``"300-100"`` (or ``"784-300-100-10"``); ``init``: ``lifted-model`` (the lifted model itself;
  ``lr`` null fills both learning rates), ``normal``, ``xavier``, ``var-scale`` or ``lifted`` (a
  standard network initialised by the lifted model); ``lnn``, ``NN[Xavier]``, ``var_scale``,
  ``lifted model`` are understood. ``lambda``: a number or ``{"lam", "source"}`` (what
  :mod:`cvx_fenchel.table1` writes). A cell is the mean +- 2 std (``ddof=0``, as
  :mod:`cvx_fenchel.table1`'s own table) over seeds; fewer than the paper's 5 seeds is partial.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..errors import InputError
from ..history import History, atomic_write_bytes
from .archive import ARCHIVE_FILE, read_json as _json
from .paper import (FIGURE_NUMBERS, PAPER, PAPER_SOURCE, TABLE1_ARCHS, TABLE1_LRS, TABLE1_SEEDS,
                    TARGETS, PaperNumber)
from .render import markdown, plot

__all__ = ["PAPER", "PAPER_SOURCE", "TABLE1_ARCHS", "TARGETS", "PaperNumber", "build_report",
           "markdown", "plot", "read_folder", "table1_cells"]


# --------------------------------------------------------------------------------------------
# reading the runs

def _first(*values):
    return next((v for v in values if v is not None), None)


def _planned(options) -> int | None:
    e = (options or {}).get("epochs") if isinstance(options, dict) else None
    return e if isinstance(e, int) else None


def _model_run(folder: Path, label: str, row: dict | None, top: dict) -> dict:
    """Everything known about model ``label`` of a figure folder: its ``results.json`` row,
    ``history.json`` and checkpoint (see the module docstring); ``status`` done/partial/started."""
    mdir = folder / label
    hist = None
    if (mdir / "history.json").is_file():
        try:
            hist = History.load(mdir / "history.json")
        except (OSError, ValueError):
            hist = None
    meta = hist.meta if hist else {}
    ckdir = Path(_first((meta.get("options") or {}).get("checkpoint_dir"), mdir / "checkpoints"))
    state, runj = _json(ckdir / "state.json"), _json(ckdir / "run.json")
    planned = _first(_planned((runj or {}).get("options")), (row or {}).get("max_epochs"),
                     _planned(meta.get("options")))
    done_hist = len(hist.epochs) if hist else 0
    ck_epochs = int(state.get("epoch", 0)) if state else 0
    partial = ((hist is None and (row is None or state is not None)) or bool(meta.get("partial"))
               or meta.get("finished") is False
               or ck_epochs > done_hist
               or (runj is not None and _planned(meta.get("options")) not in (None, planned)))
    if partial and state is not None and ck_epochs >= done_hist:
        hist = History.from_dict(state.get("history") or {})  # the history so far
        meta = {**(hist.meta or {}), **meta}
    row = row if (row is not None and not partial) else None
    accs = [a for a in (hist.series("test_accuracy") if hist else []) if a is not None]
    curve = row.get("test_accuracy_per_epoch") if row and row.get("test_accuracy_per_epoch") else accs
    ours = _first(row.get("test_accuracy") if row else None, accs[-1] if accs else None)
    epochs = _first(row.get("epochs") if row else None, len(hist.epochs) if hist else None)
    if partial and state is not None:
        epochs = max(ck_epochs, len(hist.epochs) if hist else 0)
    seconds = _first(row.get("seconds") if row else None, meta.get("train_seconds"))
    if seconds is None and hist is not None and (hist.batches or meta.get("batch_seconds_dropped")):
        # the batch times so far, with those of records an archive dropped (.archive)
        seconds = float(sum(b.get("time") or 0.0 for b in hist.batches)) + float(
            meta.get("batch_seconds_dropped") or 0.0)
    data_dir = _first(meta.get("data_dir"), (row or {}).get("data_dir"), top.get("data_dir"),
                      (runj or {}).get("data_dir"))
    dataset = _first(meta.get("dataset"), (runj or {}).get("dataset"))
    stop = _first((row or {}).get("stop_reason"), meta.get("stop_reason"))
    if stop is None:
        stop = (f"running or killed: {epochs or 0} epochs done" + (f" of {planned}" if planned else "")
                + (f" (+{state['batch']} batches)" if state and state.get("batch") else "")
                if partial else f"ran the {planned} epochs asked for" if planned and epochs == planned
                else "not recorded")
    ropts = (runj or {}).get("options") or {}
    command = _first((row or {}).get("command"), meta.get("command"))
    if command is None and runj is not None:  # a run with a checkpoint folder: its options
        from ..experiments import command_line
        command = command_line(runj.get("model", label), ropts, dataset=runj.get("dataset", "mnist"),
                               data_dir=runj.get("data_dir"), out=str(mdir))
    if isinstance(command, list):
        command = "cvx-fenchel " + shlex.join(command)
    status = "done" if not partial else "partial" if hist is not None else "started"
    commit = _first(*((d or {}).get(k) for d in (row, meta, top) for k in ("commit", "source_commit")))
    if isinstance(commit, dict):
        commit = commit.get("commit")
    dirty = _first((row or {}).get("dirty_cvx_fenchel"), meta.get("dirty_cvx_fenchel"),
                   top.get("dirty_cvx_fenchel"))
    updated = max((f.stat().st_mtime for f in mdir.rglob("*") if f.is_file()), default=None)
    return {
        "model": label, "status": status, "test_accuracy": ours, "test_accuracy_per_epoch": curve,
        "epochs": epochs, "epochs_planned": planned, "stop_reason": stop, "seconds": seconds,
        "seconds_per_epoch": seconds / epochs if seconds is not None and epochs else None,
        "data_dir": data_dir, "dataset": dataset,  # data_recorded False: nothing names the data
        "data_recorded": bool(hist is not None or row is not None or runj is not None or top),
        "seed": _first((row or {}).get("seed"), (meta.get("options") or {}).get("seed"),
                       ropts.get("seed"), top.get("seed")),
        "backend": _first((row or {}).get("backend"), (meta.get("options") or {}).get("backend"),
                          ropts.get("backend")),
        "machine": _first((row or {}).get("machine"), meta.get("machine"), top.get("machine")),
        "commit": (commit + ("+modified" if dirty else "")) if commit else None,
        "command": command, "base_model": _first((row or {}).get("paper_model"),
                                                 (row or {}).get("base_model"), meta.get("model")),
        "folder": str(mdir), "updated_ts": updated,
        "updated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(updated)) if updated else None}


def _stamp(run: dict, ts) -> None:
    if isinstance(ts, (int, float)):
        run["updated_ts"] = float(ts)
        run["updated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def read_folder(folder: str | Path, *, archived: bool = False) -> dict:
    """The runs of one figure folder: ``{"folder", "command", "runs": {label: model run}}`` with
    the models of its ``results.json`` and every model sub-folder (in that order).

    ``archived``: the folder is a copy written by :func:`.archive.archive`; a run's time
    (``updated``, ``updated_ts``) is then its source's, from ``archive.json`` (git keeps no file
    times)."""
    folder = Path(folder)
    top = _json(folder / "results.json") or {}
    rows = {r["model"]: r for r in top.get("runs", []) if isinstance(r, dict) and "model" in r}
    labels = list(rows) + sorted(p.name for p in folder.iterdir() if p.is_dir()
                                 and not p.name.startswith(".") and p.name not in rows)
    runs = {lab: _model_run(folder, lab, rows.get(lab), top) for lab in labels}
    if archived:
        models = (_json(folder / ARCHIVE_FILE) or {}).get("models") or {}
        for lab, run in runs.items():
            _stamp(run, (models.get(lab) or {}).get("updated"))
    return {"folder": str(folder), "command": top.get("command"), "runs": runs}


def _read_union(folders: list[tuple[Path, bool]]) -> dict | None:
    """:func:`read_folder` of the copies ``[(folder, archived)]`` of one run folder found in
    several roots, merged per model: the newest copy of each model wins (``updated_ts``; a tie:
    the earlier root, so a live run beats its archived copy)."""
    if not folders:
        return None
    got = [read_folder(f, archived=a) for f, a in folders]
    runs: dict = {}
    for g in got:
        for label, run in g["runs"].items():
            was = runs.get(label)
            if was is None or (run.get("updated_ts") or 0.0) > (was.get("updated_ts") or 0.0):
                runs[label] = run
    command = next((g["command"] for g in got if g["command"]), None)
    return {"folder": got[0]["folder"], "command": command, "runs": runs}


def _norm_arch(arch) -> str:
    parts = [p for p in re.split(r"[-x, ]+", str(arch).strip()) if p]
    if len(parts) > 2 and parts[0] == "784" and parts[-1] == "10":
        parts = parts[1:-1]
    return "-".join(parts)


_INITS = {"lifted-model": "lifted-model", "lifted-network": "lifted-model", "lnn": "lifted-model",
          "normal": "normal", "xavier": "xavier", "glorot": "xavier", "var-scale": "var-scale",
          "variance-scaling": "var-scale", "varscale": "var-scale", "lifted": "lifted",
          "nn-lifted": "lifted", "lifted-init": "lifted"}


def _norm_init(row: dict) -> str | None:
    """Table 1 column of a row: its ``init`` (else ``model``), spelling variants understood."""
    raw = str(_first(row.get("init"), row.get("model"), "")).lower().strip()
    return _INITS.get(re.sub(r"[_ ]", "-", re.sub(r"^nn\[(.*)\]$", r"\1", raw)))


def table1_cells(results: dict) -> dict:
    """``{(lr, arch, column): {"values", "seeds", "mean", "two_std", "n"}}`` of a Table 1
    ``results.json`` (see the module docstring); rows it cannot place are listed under the key
    ``"unplaced"``."""
    rows = results.get("rows", results.get("runs", []))
    cells: dict = {}
    unplaced = []
    for r in rows if isinstance(rows, list) else []:
        col, acc = (_norm_init(r), r.get("test_accuracy")) if isinstance(r, dict) else (None, None)
        arch = _norm_arch(r.get("arch", "")) if isinstance(r, dict) else ""
        lrs = TABLE1_LRS if (col == "lifted-model" and r.get("lr") is None) else (r.get("lr"),) \
            if isinstance(r, dict) else ()
        lrs = [lr for lr in (_match_lr(x) for x in lrs) if lr is not None]
        if col is None or arch not in TABLE1_ARCHS or not lrs or not isinstance(acc, (int, float)):
            unplaced.append(r)
            continue
        for lr in lrs:
            c = cells.setdefault((lr, arch, col), {"values": [], "seeds": []})
            c["values"].append(acc)
            c["seeds"].append(r.get("seed"))
    for c in cells.values():
        v, n = c["values"], len(c["values"])
        c["n"], c["mean"] = n, sum(v) / n
        c["two_std"] = 2 * math.sqrt(sum((x - c["mean"]) ** 2 for x in v) / n)  # ddof 0
    if unplaced:
        cells["unplaced"] = unplaced
    return cells


def _match_lr(lr) -> float | None:
    try:
        return next((x for x in TABLE1_LRS if math.isclose(float(lr), x, rel_tol=1e-9)), None)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# matching runs with the paper

def _pp(ours, paper) -> float | None:
    return None if ours is None else round(100.0 * (ours - paper), 6)


def _entry(p: PaperNumber, run: dict | None, reason: str) -> dict:
    if run is not None and run["status"] == "started":
        reason = "started, no epoch recorded yet (running or killed; baselines write history.json "\
                 "only when they finish)"
    ours = run["test_accuracy"] if run else None
    return {"key": p.key, **asdict(p), "status": run["status"] if run else "not run", "ours": ours,
            "diff_pp": _pp(ours, p.paper), "reason": None if ours is not None else reason, "run": run}


def _base(label: str, run: dict, target: str) -> str | None:
    names = [m for m, _, _ in FIGURE_NUMBERS[target]]
    if run.get("base_model") in names:
        return run["base_model"]
    starts = [m for m in names if label == m or label.startswith(m + "-") or label.startswith(m + "_")]
    return max(starts, key=len) if starts else None


def _folders(roots: list[tuple[Path, bool]], include_subset: bool) -> tuple[dict, list]:
    """``{target: {"main": copies, "subset": copies, "variants": [copies]}}`` and the folders
    that belong to no target; ``copies``: ``[(folder, archived)]``, one per root holding a folder
    of that name, in the order of ``roots`` (``[]``: none)."""
    found: dict = {t: {"main": [], "subset": [], "variants": {}} for t in TARGETS}
    ignored = []
    for root, archived in roots:
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            target, _, rest = d.name.partition("-")
            if target not in TARGETS or not rest:
                ignored.append(d.name if len(roots) == 1 else str(d))
            elif rest == "full":
                found[target]["main"].append((d, archived))
            elif rest == "subset":
                found[target]["subset"].append((d, archived))
            elif rest.endswith("subset") and not include_subset:
                ignored.append(d.name if len(roots) == 1 else str(d))
            else:
                found[target]["variants"].setdefault(d.name, []).append((d, archived))
    for t in found.values():
        t["variants"] = [t["variants"][k] for k in sorted(t["variants"])]
    return found, ignored


def _figure_section(target: str, where: dict, include_subset: bool, runs_dir: str) -> dict:
    copies = where["main"] or (where["subset"] if include_subset else [])
    main = copies[0][0] if copies else None
    extra = list(where["variants"]) + ([where["subset"]] if include_subset and where["subset"]
                                       and where["main"] else [])
    got = _read_union(copies)
    entries = []
    for p in (q for q in PAPER if q.target == target):
        run = got["runs"].get(p.model) if got else None
        if got is None:
            reason = f"no folder {target}-full in {runs_dir}" + (
                f" ({target}-subset exists: pass --subset to show it)" if where["subset"] else "")
        else:
            reason = f"{main.name} holds no run of {p.model}"
        entries.append(_entry(p, run, reason))
    variants = []
    for folder_copies in extra:
        folder = folder_copies[0][0]
        v = _read_union(folder_copies)
        for label, run in v["runs"].items():
            base = _base(label, run, target)
            p = next((q for q in PAPER if q.target == target and q.model == base), None)
            variants.append({"target": target, "folder": folder.name, "variant": label,
                             "of": base, "paper": p.paper if p else None,
                             "ours": run["test_accuracy"],
                             "diff_pp": _pp(run["test_accuracy"], p.paper) if p else None,
                             "status": run["status"], "run": run})
    return {"target": target, "title": TARGETS[target][0], "folder": main.name if main else None,
            "command": got["command"] if got else None, "numbers": entries, "variants": variants}


def _newest_table1(copies: list[tuple[Path, bool]]) -> Path | None:
    """The copy of a Table 1 folder whose ``results.json`` is newest (an archived copy: its
    source's time, from ``archive.json``); a tie: the earlier root."""
    best, when = None, None
    for folder, archived in copies:
        if not (folder / "results.json").is_file():
            continue
        ts = (_json(folder / ARCHIVE_FILE) or {}).get("updated") if archived else None
        ts = ts if isinstance(ts, (int, float)) else (folder / "results.json").stat().st_mtime
        if best is None or ts > when:
            best, when = folder, ts
    return best if best is not None else (copies[0][0] if copies else None)


def _table1_section(where: dict, include_subset: bool, runs_dir: str) -> dict:
    main = _newest_table1(where["main"] or (where["subset"] if include_subset else []))
    doc = _json(main / "results.json") if main else None
    cells = table1_cells(doc) if doc else {}
    entries = []
    for p in (q for q in PAPER if q.target == "table1"):
        c = cells.get((p.lr, p.arch, p.model))
        e = {"key": p.key, **asdict(p)}
        if c is None:
            e.update({"status": "not run", "ours": None, "diff_pp": None, "reason": (
                f"no table1-full/results.json in {runs_dir}" if doc is None
                else f"{main.name}/results.json has no row for this cell")})
        else:
            e.update({"status": "done" if c["n"] >= TABLE1_SEEDS else "partial", "ours": c["mean"],
                      "ours_two_std": c["two_std"], "n_seeds": c["n"], "seeds": c["seeds"],
                      "diff_pp": _pp(c["mean"], p.paper), "values": c["values"],
                      "reason": None if c["n"] >= TABLE1_SEEDS else
                      f"{c['n']} of the paper's {TABLE1_SEEDS} seeds"})
        entries.append(e)
    variants = []
    for folder in (_newest_table1(c) for c in where["variants"]):
        vdoc = _json(folder / "results.json") or {}
        for (lr, arch, col), c in ((k, c) for k, c in table1_cells(vdoc).items() if k != "unplaced"):
            p = next(q for q in PAPER if q.key == f"table1/lr={lr:g}/{arch}/{col}")
            variants.append({"target": "table1", "folder": folder.name, "variant": p.key, "of": p.key,
                             "paper": p.paper, "ours": c["mean"], "ours_two_std": c["two_std"],
                             "n_seeds": c["n"], "diff_pp": _pp(c["mean"], p.paper),
                             "status": "done" if c["n"] >= TABLE1_SEEDS else "partial",
                             "command": vdoc.get("command")})
    info = {k: (doc or {}).get(k) for k in ("command", "lambda", "lambda_note", "machine", "commit",
                                              "data_dir")}
    chosen = _json(main / "lambda.json") if main else None  # the search's choice, written before
    if isinstance(chosen, dict) and "lam" in chosen:     # results.json's next rewrite
        info["lambda"] = {"lam": chosen["lam"], "source": "lambda.json (validation search)"}
    rows = (doc or {}).get("rows", (doc or {}).get("runs"))
    info["seconds"] = sum(r.get("seconds") or 0.0 for r in rows if isinstance(r, dict)) \
        if isinstance(rows, list) else None
    for key in ("commit", "machine"):  # each cell records its own (cells run over several sessions)
        info[f"row_{key}s"] = [r.get(key) for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    return {"target": "table1", "title": TARGETS["table1"][0], "folder": main.name if main else None,
            **info, "numbers": entries, "variants": variants,
            "unplaced_rows": len(cells.get("unplaced", []))}


# --------------------------------------------------------------------------------------------
# the report

def gap_studies(out_dir: str | Path, target: str) -> list[dict]:
    """The gap studies of ``target`` kept beside the report: every ``gaps/<target>-*/README.md``
    under ``out_dir`` (a probe's script, command and raw output live in its folder), as
    ``{"path": path relative to out_dir, "title": its first line without the leading '#'}``, by
    folder name."""
    out = []
    for readme in sorted(Path(out_dir).glob(f"gaps/{target}-*/README.md")):
        first = readme.read_text(errors="replace").strip().splitlines()[:1]
        title = first[0].lstrip("#").strip() if first else readme.parent.name
        out.append({"path": readme.relative_to(out_dir).as_posix(), "title": title})
    return out


def build_report(runs_dir: str | Path | Sequence[str | Path], out_dir: str | Path, *,
                 include_subset: bool = False, command: str | None = None, plots: bool = True,
                 archived: str | Path | None = None) -> dict:
    """Read every run folder of ``runs_dir``, write ``REPRODUCTION.json``, ``REPRODUCTION.md``
    and one ``reproduction-<figure>.png`` per figure into ``out_dir``; return the report dict.
    Each section lists the gap studies documented under ``out_dir/gaps/`` (:func:`gap_studies`).

    ``runs_dir``: one folder or several (their union: a folder name found in several, e.g.
    ``fig3-full``, is read model by model, the newest copy of each model winning, a tie going to
    the earlier folder); ``archived``: the folder :func:`.archive.archive` writes (committed
    copies of earlier sessions' runs), read last, its runs dated by their sources' times.
    ``include_subset``: also read the ``*-subset`` folders (a subset run fills a paper row only
    where no full-data run exists, and its data is named). ``command``: the command line shown
    at the top of the Markdown (default: the equivalent ``cvx-fenchel report`` call)."""
    dirs = [Path(runs_dir)] if isinstance(runs_dir, (str, os.PathLike)) else [Path(d) for d in runs_dir]
    out_dir = Path(out_dir)
    if not dirs:
        raise InputError("no --runs folder given")
    for d in dirs:
        if not d.is_dir():
            raise InputError(f"--runs {d} is not a folder (it should hold the folders "
                             "cvx-fenchel reproduce writes, e.g. fig2-full/)")
    roots = [(d, False) for d in dirs]
    if archived is not None:
        if Path(archived).exists() and not Path(archived).is_dir():
            raise InputError(f"--archive {archived} exists and is not a folder")
        if Path(archived).is_dir():
            roots.append((Path(archived), True))
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a folder")
    from ..bench.run import git_commit
    where = ", ".join(str(d) for d, _ in roots)
    found, ignored = _folders(roots, include_subset)
    sections = [_figure_section(t, found[t], include_subset, where) for t in FIGURE_NUMBERS]
    sections.append(_table1_section(found["table1"], include_subset, where))
    for s in sections:
        s["studies"] = gap_studies(out_dir, s["target"])
    g = git_commit()
    report = {
        "generated": {"command": command or "cvx-fenchel report " + shlex.join(
            [a for d in dirs for a in ("--runs", str(d))] + ["--out", str(out_dir)]
            + (["--archive", str(archived)] if archived is not None else [])
            + (["--subset"] if include_subset else [])),
                      "utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "commit": g.get("commit"), "dirty_cvx_fenchel": g.get("dirty_cvx_fenchel"),
                      "runs_dir": where, "include_subset": include_subset,
                      "paper_source": PAPER_SOURCE},
        "sections": sections, "ignored_folders": ignored}
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        for s in sections[:-1]:
            s["plot"] = f"reproduction-{s['target']}.png"
            plot(s, out_dir / s["plot"])
    atomic_write_bytes(out_dir / "REPRODUCTION.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(out_dir / "REPRODUCTION.md", markdown(report).encode())
    return report
