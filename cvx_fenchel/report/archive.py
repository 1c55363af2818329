"""A small archive of the reproduction runs that can be committed: the results, and what an
unfinished run needs to resume in the next session (issue 15: long runs continue across
sessions; every session starts from a clean checkout, and ``runs/`` is not in git). Resumable
runs are those that checkpoint: the Fenchel model and the torch baselines SGD and Adam
(:data:`cvx_fenchel.experiments.RESUMABLE`); their checkpoints share one format
(:mod:`cvx_fenchel.checkpoint`), so they are archived alike.

:func:`archive` mirrors the run folders of one or more roots (what ``cvx-fenchel reproduce``
writes, ``<figure>-<tag>/``, and what ``python -m cvx_fenchel.table1`` writes, ``table1-<tag>/``;
other folders are left out) into ``DEST/<folder>/``:

* a figure folder: ``results.json`` and ``results.md``; per model ``<model>/history.json`` with
  its per-batch records dropped (meta and epoch records kept; the meta says how many records
  and how many seconds of batch time were dropped: ``batch_records_dropped``,
  ``batch_seconds_dropped``, cumulative over archives; a run that has not finished leaves a
  history marked ``partial``, written at each of its epoch ends:
  :func:`cvx_fenchel.history.progress`); for a run that has not finished (a checkpoint ahead of
  the history, or a partial history or none: a Fenchel, SGD or Adam run stopped by a kill or the
  end of a session), ``<model>/checkpoints/run.json``, a slim ``state.json`` and the one
  ``weights-<epoch>-<batch>.npz`` the state names. The slim state drops the batch records of the
  finished epochs; it keeps those of the epoch in progress (the Fenchel epoch's summary is their
  mean, so a resumed run's epoch records equal an uninterrupted run's; a torch run keeps its
  epoch's sums in the state itself) without their list-valued fields (``steps``, ``w_methods``:
  ``batch_fields_dropped``). An unfinished run whose checkpoint is over :data:`MAX_FILE_BYTES`
  (Algorithm 1's holds every lifted ``X``: 72 MB for full MNIST; Adam on 784-300-10: 2.9 MB)
  cannot be carried: its history so far is archived instead as ``<model>/history.json`` marked
  ``partial`` (:func:`partial_history`), with ``run.json``, and the manifest records the dropped
  checkpoint (``checkpoint_dropped``): the report shows the measured part, and the run starts
  again in a later session;
* a Table 1 folder: ``results.json``, ``lambda.json``, ``table.md``;
* ``DEST/<folder>/archive.json``: where it came from and, per model, the newest modification
  time of its source files (``updated``, seconds since the epoch; git keeps no file times, so
  :func:`cvx_fenchel.report.build_report` reads this to decide which copy of a run is newer)
  and how far it got (``progress``: epochs done, batches of the next).

No PNGs (the report draws its own plots). Nothing is written unless every file is at most
:data:`MAX_FILE_BYTES` (else :class:`ArchiveError` naming the file; checkpoints over it are
replaced as above, so this is a results file; LeNet-5 with Adam's moments, about 0.75 MB, is
carried). Re-archiving a folder replaces its mirror (files the new archive does not produce
are deleted), and archiving the same runs twice writes the same bytes. It refuses to replace an archived model by less of it (fewer epochs,
e.g. a session that forgot to restore the archive and started the run again) or to drop a model
or result file the archive holds but the runs lack; the error names it and the way out.

Restoring for ``--resume``: ``cp -r DEST/. runs/reproduce/`` puts each archived checkpoint
where ``cvx-fenchel reproduce ... --resume`` looks for it (:func:`cvx_fenchel.trainer.BCDTrainer.fit`
and :meth:`~cvx_fenchel.baselines.torch_nets.TorchNetClassifier.fit` continue from the slim
history).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..history import atomic_write_bytes
from .paper import TARGETS

__all__ = ["ARCHIVE_FILE", "MAX_FILE_BYTES", "ArchiveError", "archive", "archivable_folders",
           "partial_history", "slim_history", "slim_state"]

#: The manifest of an archived folder.
ARCHIVE_FILE = "archive.json"
#: No archived file may be larger (the repository takes no run outputs over 1 MB).
MAX_FILE_BYTES = 1_000_000
#: Files of a figure folder and of a Table 1 folder that are archived as they are.
FIGURE_FILES = ("results.json", "results.md")
TABLE1_FILES = ("results.json", "lambda.json", "table.md")


class ArchiveError(InputError):
    """The runs cannot be archived as asked (a file over the limit, a conflict, a regression)."""


def _dump(doc) -> bytes:
    return json.dumps(doc, indent=1).encode()


def slim_history(doc: dict, *, keep_after_epoch: int | None = None) -> dict:
    """``doc`` (a :class:`~cvx_fenchel.history.History` dict) without its per-batch records.

    ``keep_after_epoch = e``: keep the records of epochs ``> e`` (the epoch in progress of a
    checkpoint after ``e`` epochs), without their list- or dict-valued fields. The meta counts
    what was dropped, adding to the counts of an earlier archive: ``batch_records_dropped``,
    ``batch_seconds_dropped`` (the sum of their ``time``) and ``batch_fields_dropped``."""
    meta = dict(doc.get("meta") or {})
    batches = [b for b in (doc.get("batches") or []) if isinstance(b, dict)]
    keep = keep_after_epoch
    dropped = [b for b in batches if keep is None or int(b.get("epoch") or 0) <= keep]
    kept = [b for b in batches if keep is not None and int(b.get("epoch") or 0) > keep]
    fields = sorted({k for b in kept for k, v in b.items() if isinstance(v, (list, dict))}
                    | set(meta.get("batch_fields_dropped") or []))
    meta["batch_records_dropped"] = int(meta.get("batch_records_dropped") or 0) + len(dropped)
    meta["batch_seconds_dropped"] = float(meta.get("batch_seconds_dropped") or 0.0) + float(
        sum(b.get("time") or 0.0 for b in dropped))
    if fields:
        meta["batch_fields_dropped"] = fields
    return {"meta": meta,
            "batches": [{k: v for k, v in b.items() if not isinstance(v, (list, dict))} for b in kept],
            "epochs": list(doc.get("epochs") or [])}


def slim_state(doc: dict) -> dict:
    """A checkpoint's ``state.json`` document with :func:`slim_history` of its history (the
    records of the epoch in progress kept: the trainer averages them into that epoch's
    summary)."""
    return {**doc, "history": slim_history(doc.get("history") or {},
                                           keep_after_epoch=int(doc["epoch"]))}


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _epochs_done(hist: dict | None) -> int:
    return sum(1 for r in (hist or {}).get("epochs") or [] if isinstance(r, dict) and r.get("epoch") != 0)


def _newest(paths: Iterable[Path]) -> float | None:
    times = [p.stat().st_mtime for p in paths if p.is_file()]
    return max(times) if times else None


def archivable_folders(root: str | Path) -> list[Path]:
    """The folders of ``root`` that :func:`archive` mirrors: ``<target>-<tag>`` with target one of
    the report's (fig1..fig4, table1), in name order."""
    root = Path(root)
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name.partition("-")[0] in TARGETS and p.name.partition("-")[2])


def _model_files(mdir: Path, rel: str) -> tuple[dict, dict]:
    """``({relative path: bytes}, manifest entry)`` of model folder ``mdir``."""
    files: dict[str, bytes] = {}
    hist = read_json(mdir / "history.json")
    if hist is not None:
        files[f"{rel}/history.json"] = _dump(slim_history(hist))
    ck = mdir / "checkpoints"
    state = read_json(ck / "state.json")
    done = _epochs_done(hist)
    progress = [done, 0]
    ahead, dropped = False, None
    partial = bool(((hist or {}).get("meta") or {}).get("partial"))  # written as it ran (history.progress)
    if state is not None and {"epoch", "batch", "npz"} <= set(state):
        pos = [int(state["epoch"]), int(state["batch"])]
        ahead = hist is None or partial or pos > [done, 0]
        if ahead:  # a run that has not finished: what --resume needs
            npz = ck / str(state["npz"])
            if not npz.is_file():
                raise ArchiveError(f"{ck / 'state.json'} names {npz.name}, which is missing: the "
                                   "checkpoint cannot be archived (resume or rerun that run first)")
            if (ck / "run.json").is_file():
                files[f"{rel}/checkpoints/run.json"] = (ck / "run.json").read_bytes()
            size = npz.stat().st_size
            if size > MAX_FILE_BYTES:  # cannot be carried: keep the measured part of the run
                files[f"{rel}/history.json"] = _dump(partial_history(state, size))
                dropped = {"npz": npz.name, "bytes": size}
            else:
                files[f"{rel}/checkpoints/state.json"] = _dump(slim_state(state))
                files[f"{rel}/checkpoints/{npz.name}"] = npz.read_bytes()
            progress = max(progress, pos)
    status = "finished" if hist is not None and not (ahead or partial) else "partial" if files else "started"
    src = [mdir / "history.json", ck / "state.json", ck / "run.json"]
    if ahead:
        src.append(ck / str(state["npz"]))
    entry = {"status": status, "progress": progress, "updated": _newest(src)}
    if ahead and dropped:
        entry["checkpoint_dropped"] = dropped
    return files, entry


def partial_history(state: dict, npz_bytes: int) -> dict:
    """The history so far of an unfinished run whose checkpoint (``npz_bytes``, over
    :data:`MAX_FILE_BYTES`: e.g. Algorithm 1's, which holds every lifted ``X``) cannot be archived:
    :func:`slim_history` of the checkpoint's history, its meta marked ``partial`` with a
    ``stop_reason`` saying so. The report shows it as a partial result; ``reproduce --resume``
    does not take it for a finished run (the run starts again)."""
    epoch, batch = int(state.get("epoch") or 0), int(state.get("batch") or 0)
    h = slim_history(state.get("history") or {})
    where = f"{epoch} epochs" + (f" + {batch} batches" if batch else "")
    h["meta"] = {**h["meta"], "partial": True, "finished": False,
                 "stop_reason": f"stopped after {where}: its checkpoint ({npz_bytes / 1e6:.1f} MB) is over "
                                f"the archive's {MAX_FILE_BYTES / 1e6:.0f} MB limit, so the run starts "
                                "again in a later session"}
    return h


def _folder_files(folder: Path) -> tuple[dict, dict]:
    """``({relative path: bytes}, manifest)`` of one run folder (see the module docstring)."""
    name = folder.name
    table1 = name.partition("-")[0] == "table1"
    files: dict[str, bytes] = {}
    for f in TABLE1_FILES if table1 else FIGURE_FILES:
        if (folder / f).is_file():
            files[f"{name}/{f}"] = (folder / f).read_bytes()
    models = {}
    if not table1:
        for mdir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            got, entry = _model_files(mdir, f"{name}/{mdir.name}")
            files.update(got)
            models[mdir.name] = entry
    manifest = {"source": str(folder), "files": sorted(files),
                "updated": _newest(folder / f for f in (TABLE1_FILES if table1 else FIGURE_FILES)),
                "models": models}
    if table1:
        res = read_json(folder / "results.json") or {}
        rows = res.get("rows", res.get("runs"))
        manifest["rows"] = len(rows) if isinstance(rows, list) else 0
    files[f"{name}/{ARCHIVE_FILE}"] = _dump(manifest)
    return files, manifest


def _where(progress) -> str:
    e, b = progress
    return f"{e} epochs" + (f" + {b} batches" if b else "")


def _check_regression(name: str, new: dict, dest: Path) -> None:
    """Refuse to replace what ``dest/name`` holds by less of it (see the module docstring)."""
    old = read_json(dest / name / ARCHIVE_FILE)
    if old is None:
        return
    how = (f"restore the archive into the runs first (cp -r {dest}/. runs/reproduce/), or, if the "
           f"archived copy is really obsolete, delete {dest / name}")
    src = new["source"]
    for f in old.get("files") or []:
        base = f.split("/", 1)[1] if "/" in f else f
        if "/" not in base and base != ARCHIVE_FILE and f not in new["files"]:
            raise ArchiveError(f"{dest / f} is archived but {src} has no {base}: {how}")
    for label, entry in (old.get("models") or {}).items():
        now = new["models"].get(label)
        if entry.get("status") == "started":
            continue
        if now is None:
            raise ArchiveError(f"{dest / name / label} is archived but {src} has no {label} "
                               f"folder: {how}")
        if list(now["progress"]) < list(entry.get("progress") or [0, 0]):
            raise ArchiveError(f"{dest / name / label} holds more of that run "
                               f"({_where(entry['progress'])}) than {src}/{label} "
                               f"({_where(now['progress'])}): {how}")


def archive(runs_dir: str | Path | Iterable[str | Path], dest: str | Path) -> dict:
    """Archive every run folder of ``runs_dir`` (one root or several) into ``dest`` (see the
    module docstring); returns ``{"dest", "folders": {name: manifest}, "files": [paths],
    "bytes"}``. Every check (sizes, conflicts, regressions) is made before anything is written."""
    roots = [Path(runs_dir)] if isinstance(runs_dir, (str, os.PathLike)) else [Path(r) for r in runs_dir]
    dest = Path(dest)
    if not roots:
        raise ArchiveError("no runs folder given to archive")
    if dest.exists() and not dest.is_dir():
        raise ArchiveError(f"--archive {dest} exists and is not a folder")
    for r in roots:
        if not r.is_dir():
            raise ArchiveError(f"--runs {r} is not a folder")
        rr, dd = r.resolve(), dest.resolve()
        if rr == dd or dd in rr.parents:
            raise ArchiveError(f"--runs {r} is the archive {dest} or inside it: archive from the "
                               "folders cvx-fenchel reproduce writes")
    where: dict[str, Path] = {}
    for r in roots:
        for folder in archivable_folders(r):
            if folder.resolve() == dest.resolve() or dest.resolve() in folder.resolve().parents:
                continue
            if folder.name in where:
                raise ArchiveError(f"{where[folder.name]} and {folder} would both be archived as "
                                   f"{dest / folder.name}: give only one of their roots (or move one)")
            where[folder.name] = folder
    plan = {name: _folder_files(folder) for name, folder in where.items()}
    big = {f: len(b) for files, _ in plan.values() for f, b in files.items() if len(b) > MAX_FILE_BYTES}
    if big:
        f, n = next(iter(big.items()))
        how = ("; it is an unfinished run's checkpoint: let the run finish, or delete its "
               "checkpoints/ folder to archive without it (the run then starts again)"
               if "/checkpoints/" in f else "")
        raise ArchiveError(f"cannot archive {where[f.split('/')[0]].parent / f}: {n:,} bytes once "
                           f"slimmed, over the {MAX_FILE_BYTES:,}-byte limit of a committed file"
                           + (f" (and {len(big) - 1} more: {sorted(big)[:5]})" if len(big) > 1 else "")
                           + f"; nothing was written{how}")
    for name, (_, manifest) in plan.items():
        _check_regression(name, manifest, dest)
    written = []
    for name, (files, _) in plan.items():
        for rel, data in files.items():
            path = dest / rel
            if not (path.is_file() and path.read_bytes() == data):
                atomic_write_bytes(path, data)
            written.append(rel)
        mirror = dest / name
        for p in sorted(mirror.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            rel = p.relative_to(dest).as_posix()
            if p.is_file() and rel not in files:
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                shutil.rmtree(p)
    return {"dest": str(dest), "folders": {n: m for n, (_, m) in plan.items()},
            "files": sorted(written), "bytes": sum(len(b) for f, _ in plan.values() for b in f.values())}
