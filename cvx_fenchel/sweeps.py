"""Independent training runs fanned out as Dask tasks (``reproduce TARGET --workers N | --scheduler ADDRESS``).

A reproduction is many runs that share nothing but their inputs: the models of a figure, the seeds
and cells of Table 1. :func:`run_tasks` runs a list of :class:`Task` s -- each a function named by
its import path, its keyword arguments and the folder it writes -- either one after the other in
this process (``client=None``: a plain loop) or as one Dask task each on ``client`` (a
:class:`dask.distributed.Client`, e.g. from :func:`cvx_fenchel.distributed.cluster_client`), and
returns their results **in the order of the list**, whatever order they finished in, so that a
caller builds the same results table either way.

* **What travels.** A task is its function's path (``"package.module:function"``), its keyword
  arguments (strings, numbers, paths: picklable and small) and its folder. Workers import the
  function; no model, data set or solver object crosses processes. On an existing cluster the
  workers need this package installed and the folders on a file system they all see.
* **Resuming elsewhere.** Every task writes its run into its own folder. Before the function runs,
  the worker records the attempt in ``<folder>/sweep-task.json`` (the sweep's id, one entry per
  attempt: host, pid, start time, whether it resumed). When Dask runs a task again -- its worker
  died (the scheduler reschedules it, up to ``distributed.scheduler.allowed-failures`` times,
  default 3) or it raised (re-run up to ``retries`` times) -- the next attempt finds an earlier
  attempt of the *same sweep* in that file and calls the function with ``resume=True``, so a
  function that checkpoints into its folder (the Fenchel trainer does, every epoch) continues
  where the lost attempt stopped instead of starting from zero. The functions must honour this
  contract: called with ``resume=True`` they continue from what their folder holds (or return at
  once when it holds a finished run); with ``resume=False`` they start afresh. A marker from an
  earlier sweep does not make a task resume (a new sweep over an old folder starts afresh, like a
  serial run, unless the caller passes ``resume=True``).
* **Dependencies.** ``Task.depends`` names earlier tasks whose results this one needs (an
  NN[Lifted] cell of Table 1 starts from its lifted model's weights). Dask starts it only when
  those have finished, and it receives their results as ``deps={key: result}``.
* **Progress.** One line per finished task (elapsed time, count, key, and the attempt number when
  it was retried), as tasks complete.
* **Failures.** With a client, a task that still fails after its retries does not stop the others
  (hours of independent runs are not thrown away for one bad cell); when every task has settled,
  :class:`SweepError` names each failed task and its error and holds the results of the rest.
  Without a client the first exception propagates, as in a plain loop.

This module imports only :mod:`cvx_fenchel.errors`, :mod:`cvx_fenchel.history` and
:mod:`cvx_fenchel.distributed` (Dask lazily), so every layer above may use it.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CvxFenchelError, InputError
from .history import atomic_write_bytes

__all__ = ["MARKER", "RETRIES", "Task", "SweepError", "run_tasks", "execute", "read_marker"]

#: The file in a task's folder recording its attempts (see the module docstring).
MARKER = "sweep-task.json"
#: Dask ``retries=`` of a task that raises (a task whose worker dies is rescheduled by the scheduler).
RETRIES = 2
#: Keyword arguments that :func:`execute` passes itself; a task's own kwargs may not use them.
_RESERVED = ("resume", "deps")


@dataclass(frozen=True)
class Task:
    """One independent run: ``func(**kwargs, resume=..., [deps=...])`` writing into ``folder``.

    ``key`` names the task (unique within a sweep; in progress lines and errors), ``func`` is
    ``"package.module:function"`` (importable on every worker), ``kwargs`` its keyword arguments
    (picklable), ``folder`` the folder it writes (the function gets it through its own kwargs; the
    sweep keeps its attempt record there), ``depends`` the keys of earlier tasks whose results it
    receives as ``deps={key: result}``.
    """

    key: str
    func: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    folder: str | os.PathLike = "."
    depends: tuple[str, ...] = ()


class SweepError(CvxFenchelError, RuntimeError):
    """Some tasks of a distributed sweep failed after their retries.

    ``errors`` maps each failed key to its one-line error; ``results`` holds every task's result in
    the input order (``None`` for a failed task and for a task that depended on one)."""

    def __init__(self, errors: dict[str, str], results: list):
        self.errors, self.results = dict(errors), list(results)
        lines = "; ".join(f"{k}: {e}" for k, e in self.errors.items())
        super().__init__(f"{len(self.errors)} of {len(self.results)} task(s) failed: {lines}")


def _resolve(path: str) -> Callable:
    """The function named ``"package.module:function"`` (InputError when it is not one)."""
    mod, sep, qual = str(path).partition(":")
    if not sep or not mod or not qual:
        raise InputError(f"task function {path!r}: expected 'package.module:function'")
    try:
        obj: Any = importlib.import_module(mod)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"task function {path!r} is not importable here ({exc})") from None
    if not callable(obj):
        raise InputError(f"task function {path!r} is not callable")
    return obj


def _check(tasks: Sequence[Task]) -> None:
    """Every task well formed before any runs: unique keys and folders, each dependency an earlier
    task, the function importable, no reserved keyword."""
    seen: set[str] = set()
    folders: dict[str, str] = {}
    for i, t in enumerate(tasks):
        if not isinstance(t, Task):
            raise InputError(f"task {i} is a {type(t).__name__}, not a sweeps.Task")
        if not isinstance(t.key, str) or not t.key:
            raise InputError(f"task {i}: key must be a non-empty string, got {t.key!r}")
        if t.key in seen:
            raise InputError(f"task key {t.key!r} appears twice")
        folder = os.path.abspath(os.fspath(t.folder))
        if folder in folders:
            raise InputError(f"tasks {folders[folder]!r} and {t.key!r} share the folder {folder}: "
                             "each run needs its own (its checkpoints and attempt record live there)")
        bad = [d for d in t.depends if d not in seen]
        if bad:
            raise InputError(f"task {t.key!r} depends on {bad}, which are not earlier tasks of the sweep")
        clash = [k for k in _RESERVED if k in t.kwargs]
        if clash:
            raise InputError(f"task {t.key!r}: kwargs {clash} are reserved (the sweep passes them)")
        _resolve(t.func)
        seen.add(t.key)
        folders[folder] = t.key


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The attempt record ``<folder>/sweep-task.json`` (None when absent or unreadable)."""
    try:
        rec = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def execute(task: Task, sweep: str, resume: bool = False, deps: Mapping[str, Any] | None = None) -> dict:
    """Run one task (on a worker, or here for a serial sweep) and record the attempt.

    ``resume`` is passed to the function as given, or True when ``<folder>/sweep-task.json``
    already records an attempt of this sweep (``sweep`` is the sweep's id): this is a re-run after
    a lost worker or an exception. ``deps`` maps each of ``task.depends`` to *its* :func:`execute`
    return (on a cluster, Dask passes the finished dependencies' values); the function gets their
    ``result`` s. Returns ``{"result", "attempts", "resumed", "worker"}``."""
    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    rec = read_marker(folder)
    earlier = list(rec.get("attempts", [])) if rec and rec.get("sweep") == sweep else []
    again = bool(resume or earlier)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    attempt = {"attempt": len(earlier) + 1, "worker": worker, "started": time.time(), "resume": again}
    record = {"sweep": sweep, "key": task.key, "func": task.func, "attempts": earlier + [attempt],
              "finished": False}
    atomic_write_bytes(folder / MARKER, json.dumps(record, indent=1).encode())
    kw = dict(task.kwargs, resume=again)
    if task.depends:
        kw["deps"] = {k: (deps or {})[k]["result"] for k in task.depends}
    result = _resolve(task.func)(**kw)
    attempt["seconds"] = time.time() - attempt["started"]
    record["finished"] = True
    atomic_write_bytes(folder / MARKER, json.dumps(record, indent=1).encode())
    return {"result": result, "attempts": len(earlier) + 1, "resumed": again, "worker": worker}


def _say(log: Callable[[str], None] | None) -> Callable[[str], None]:
    return log if log is not None else (lambda line: print(line, file=sys.stderr, flush=True))


def run_tasks(tasks: Sequence[Task], client=None, *, resume: bool = False, retries: int = RETRIES,
              log: Callable[[str], None] | None = None,
              progress: Callable[[int, int, str, dict], None] | None = None,
              stats: dict | None = None) -> list:
    """Run ``tasks`` and return their results in the order of ``tasks``.

    ``client=None``: one after the other in this process (a plain loop; the first exception
    propagates). A :class:`dask.distributed.Client`: one Dask task each, submitted in list order
    (Dask's priority: earlier first), dependencies passed as futures so the scheduler orders them;
    a task that raises is re-run up to ``retries`` times and one whose worker dies is rescheduled,
    either way with ``resume=True`` (see the module docstring). ``resume=True`` resumes every
    task from its folder (``--resume`` of a killed sweep). ``log`` gets one line per finished task
    (default: stderr); ``progress(done, total, key, info)`` is called as each finishes
    (``info``: its result, attempts, resumed, worker; e.g. to write a row as soon as it exists). ``stats``, if given, is filled with the sweep's id,
    cluster, task count, seconds and the retried tasks' attempt counts. Raises
    :class:`SweepError` (after every task settled) when tasks failed on the cluster."""
    tasks = list(tasks)
    _check(tasks)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InputError(f"retries must be a non-negative integer, got {retries!r}")
    say = _say(log)
    sweep = uuid.uuid4().hex[:12]
    n = len(tasks)
    t0 = time.perf_counter()
    infos: list[dict | None] = [None] * n

    def finished(i: int, done: int, info: dict) -> None:
        infos[i] = info
        extra = f" (attempt {info['attempts']}, resumed from its folder)" if info["attempts"] > 1 else ""
        say(f"[{time.perf_counter() - t0:7.0f} s] {done}/{n} done: {tasks[i].key}{extra}")
        if progress is not None:
            progress(done, n, tasks[i].key, dict(info))

    errors: dict[str, str] = {}
    if client is None:
        ran: dict[str, dict] = {}
        for i, t in enumerate(tasks):
            ran[t.key] = execute(t, sweep, resume, {k: ran[k] for k in t.depends})
            finished(i, i + 1, ran[t.key])
        cluster = "this process (serial)"
    else:
        from dask.distributed import as_completed

        from .distributed import describe_client

        cluster = describe_client(client)
        say(f"sweep {sweep}: {n} task(s) on {cluster}")
        futures: dict[str, Any] = {}
        index = {}
        for i, t in enumerate(tasks):
            key = f"sweep-{sweep}-{i}"
            futures[t.key] = client.submit(execute, t, sweep, resume,
                                           {k: futures[k] for k in t.depends},
                                           key=key, retries=retries, pure=False)
            index[key] = i
        pending = as_completed(list(futures.values()))
        futures.clear()  # the scheduler keeps a dependency for its dependents; nothing else is held here
        done = 0
        try:
            for fut in pending:
                i = index[fut.key]
                done += 1
                if fut.status == "finished":
                    finished(i, done, fut.result())
                elif fut.status == "cancelled":
                    why = errors[tasks[i].key] = "cancelled"
                    say(f"[{time.perf_counter() - t0:7.0f} s] {done}/{n} CANCELLED: {tasks[i].key}")
                else:
                    exc = fut.exception()
                    why = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    if type(exc).__name__ == "KilledWorker":
                        why = ("its worker died each time it ran it (Dask KilledWorker; "
                               "distributed.scheduler.allowed-failures)")
                    errors[tasks[i].key] = why
                    say(f"[{time.perf_counter() - t0:7.0f} s] {done}/{n} FAILED: {tasks[i].key}: {why}")
                fut.release()  # a result read is not kept on a worker (a later lost worker costs nothing)
        finally:
            pending.clear()
        for t in tasks:  # a dependent of a failed task fails with its error: say so instead
            bad = [d for d in t.depends if d in errors]
            if t.key in errors and bad:
                errors[t.key] = f"not run: it depends on failed task(s) {bad}"
    out = [None if info is None else info["result"] for info in infos]
    if stats is not None:
        stats.clear()
        stats.update(sweep=sweep, cluster=cluster, tasks=n, retries=retries,
                     seconds=time.perf_counter() - t0, failed=dict(errors),
                     retried={tasks[i].key: info["attempts"] for i, info in enumerate(infos)
                              if info is not None and info["attempts"] > 1})
    if errors:
        raise SweepError(errors, out)
    return out
