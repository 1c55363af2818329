"""The verification suite's cases on a Dask cluster (``--workers N`` / ``--scheduler ADDRESS``).

The cases are independent, so they fan out as tasks; everything else about a run (the plan, the
activation and map checks, the speed row, the summary, the report) is :func:`~verification.suite.run_suite`'s,
unchanged: :class:`FanOut` is handed to it as ``run_cases`` and returns the records in the plan's order.

* **What travels.** A task carries :class:`~cvx_fenchel.subproblems.instances.Spec` s (subproblem
  kind, activation, loss, map, variant, seed: a few strings and an int) and returns
  :class:`~verification.suite.Record` s. The worker rebuilds each instance from its Spec through the
  registry (:func:`~verification.suite.run_case` -> ``build_instance``, the kind's seeded generator)
  and solves it there; CVXPY problems are never pickled (they are not meant to cross processes).
* **Batches.** One solve takes milliseconds to a second, a task's round trip a few milliseconds, so
  a task runs :data:`DEFAULT_BATCH` (20) cases: ``ceil(n / batch)`` tasks, task ``t`` holding cases
  ``t, t + T, t + 2T, ...`` (strided: the plan lists a kind's cases together, and kinds differ in cost
  by 10x, so striding gives tasks of similar length and no slow tail of one kind's cases).
* **Same report.** Each case is seeded by its Spec alone and run under the same one-BLAS-thread
  limit as a serial run, so the records equal a serial run's case for case, timings aside
  (``tests/test_fanout.py`` checks every field).
* **Lost workers and retries.** A task whose worker dies is rescheduled by the Dask scheduler (up to
  ``distributed.scheduler.allowed-failures`` times, default 3); one that raises is re-run up to
  :data:`RETRIES` times (Dask ``retries=``). A scheduler plugin (:func:`_attempt_counter`) counts
  every dispatch of this run's tasks and why a task left ``processing`` without finishing; the
  summary's ``distributed`` entry and the report's "Distributed run" section give the counts.
* **Progress.** A tqdm bar on a terminal, else one line per finished task, as tasks complete.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from typing import Callable, Sequence

from cvx_fenchel.subproblems.instances import Spec

from .suite import SOLVERS, Record, _one_blas_thread, run_case, run_suite

__all__ = ["DEFAULT_BATCH", "RETRIES", "plan_batches", "run_batch", "FanOut", "run_suite_distributed",
           "distributed_markdown"]

#: Cases per task: tens of solves, enough to amortise a task's overhead, few enough to balance.
DEFAULT_BATCH = 20
#: Dask ``retries=`` of a task that raises (a lost worker is the scheduler's allowed-failures).
RETRIES = 2


def plan_batches(n: int, batch_size: int = DEFAULT_BATCH) -> list[list[int]]:
    """Strided batches of ``range(n)``: ``T = ceil(n / batch_size)`` lists, list ``t`` holding
    ``t, t + T, ...``; every index once, each list at most ``batch_size`` long."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_tasks = math.ceil(n / batch_size)
    return [list(range(t, n, n_tasks)) for t in range(n_tasks)]


def _test_hooks(hooks: dict | None) -> None:
    """Test hooks (tests/test_fanout.py): ``{"exit_once": path}`` makes the first task to get here
    kill its worker process (``os._exit``), ``{"raise_once": path}`` makes it raise; ``path`` is a
    marker file created atomically, so each happens once per run across processes."""
    for what in ("exit_once", "raise_once"):
        path = (hooks or {}).get(what)
        if path is None:
            continue
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        if what == "exit_once":
            os._exit(1)
        raise RuntimeError(f"test hook: {what} ({path})")


def run_batch(specs: Sequence[Spec], solvers: Sequence[str] = SOLVERS, backend: str = "numpy",
              _hooks: dict | None = None) -> list[list[Record]]:
    """One task: :func:`~verification.suite.run_case` on each Spec (rebuilt here from the registry),
    under the serial run's one-BLAS-thread limit; one list of Records per Spec, in order."""
    _test_hooks(_hooks)
    from cvx_fenchel.backend import get_backend
    xp = get_backend(backend)
    with _one_blas_thread():
        return [run_case(s, solvers=tuple(solvers), xp=xp) for s in specs]


def _attempt_counter(prefix: str):
    """``(plugin, fetch)``: a scheduler plugin counting, for keys starting with ``prefix``, the
    dispatches (transitions into ``processing``) and each exit from ``processing`` other than to
    ``memory``, with its cause read off the scheduler's task state: ``"lost worker"`` (the task's
    ``suspicious`` count grew: its worker died while holding it), ``"raised"`` (its ``retries``
    budget shrank: it raised and Dask re-runs it) or ``"other"`` (e.g. cancelled), and the state it
    went to. ``fetch(dask_scheduler, name)`` (for ``run_on_scheduler``) returns the counts and removes
    the plugin. Defined in a function so that both pickle by value: the scheduler needs only Dask,
    not this package."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class AttemptCounter(SchedulerPlugin):
        def __init__(self):
            self.scheduler = None
            self.dispatches: dict = {}
            self.exits: dict = {}
            self._at_dispatch: dict = {}

        async def start(self, scheduler):
            self.scheduler = scheduler

        def transition(self, key, start, finish, *args, **kwargs):
            if not (isinstance(key, str) and key.startswith(prefix)):
                return
            ts = self.scheduler.tasks.get(key) if self.scheduler is not None else None
            if finish == "processing":
                self.dispatches[key] = self.dispatches.get(key, 0) + 1
                if ts is not None:
                    self._at_dispatch[key] = (ts.suspicious, ts.retries)
            elif start == "processing" and finish != "memory":
                cause = "other"
                seen = self._at_dispatch.get(key)
                if ts is not None and seen is not None:
                    cause = ("lost worker" if ts.suspicious > seen[0] else
                             "raised" if ts.retries < seen[1] else "other")
                self.exits.setdefault(key, []).append([cause, finish])

    def fetch(dask_scheduler=None, name=None):
        plugin = dask_scheduler.plugins.get(name)
        if plugin is None:
            return None
        dask_scheduler.remove_plugin(name=name)
        return {"dispatches": dict(plugin.dispatches), "exits": {k: list(v) for k, v in plugin.exits.items()}}

    return AttemptCounter(), fetch


def _task_no(item) -> int:
    """Sort key of ``(task key, value)`` pairs: the task's number (``verify-batch-<hex>-<t>``)."""
    return int(item[0].rsplit("-", 1)[1])


class FanOut:
    """``run_cases`` for :func:`~verification.suite.run_suite`: the cases as batched tasks on ``client``.

    After a call, :attr:`stats` holds the run's ``distributed`` summary: cluster, tasks, batch size,
    ``retried_tasks`` (tasks dispatched more than once), ``lost_worker_reschedules`` and
    ``exception_retries`` (how the extra dispatches came about), ``retried`` (key -> dispatches), or
    ``retries_counted: False`` with the reason when the scheduler refused the counting plugin.
    """

    def __init__(self, client, *, batch_size: int = DEFAULT_BATCH, retries: int = RETRIES,
                 bar: bool | None = None, log: Callable[[str], None] | None = None,
                 _hooks: dict | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.client, self.batch_size, self.retries = client, int(batch_size), int(retries)
        self.bar = sys.stderr.isatty() if bar is None else bool(bar)
        self.log = log if log is not None else (lambda line: print(line, file=sys.stderr, flush=True))
        self._hooks = _hooks
        self.stats: dict = {}

    def __call__(self, specs: Sequence[Spec], *, solvers: Sequence[str] = SOLVERS, backend: str = "numpy",
                 progress: Callable[[int, int, Spec], None] | None = None) -> list[Record]:
        from dask.distributed import as_completed

        from cvx_fenchel.distributed import describe_client

        specs = list(specs)
        batches = plan_batches(len(specs), self.batch_size)
        prefix = f"verify-batch-{uuid.uuid4().hex[:8]}-"
        name = prefix + "attempts"
        plugin, fetch = _attempt_counter(prefix)
        counting = ""
        try:
            self.client.register_plugin(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - the run goes on; the report says it was not counted
            counting = f"{type(exc).__name__}: {exc}".splitlines()[0]
        self.stats = {"cluster": describe_client(self.client), "tasks": len(batches),
                      "batch_size": self.batch_size, "strided": True, "retries": self.retries}
        t0 = time.perf_counter()
        # One call for all tasks, so that the scheduler sees them as one group of root tasks and queues
        # them (a worker holds only what it runs, plus Dask's worker-saturation margin).
        futures = self.client.map(run_batch, [[specs[i] for i in b] for b in batches],
                                  key=[f"{prefix}{t}" for t in range(len(batches))], retries=self.retries,
                                  pure=False, solvers=tuple(solvers), backend=backend, _hooks=self._hooks)
        task_of = {f.key: t for t, f in enumerate(futures)}
        # Each result is released once read: a worker lost later then costs nothing (a finished task
        # still held on it would be recomputed).
        pending = as_completed(futures, with_results=True)
        del futures
        results: list[list[Record] | None] = [None] * len(specs)
        bar = None
        if self.bar:
            try:
                from tqdm import tqdm
                bar = tqdm(total=len(specs), unit="case", desc="verify (Dask)", file=sys.stderr)
            except ImportError:
                bar = None
        done_cases = 0
        counts = None
        try:
            for n_done, (fut, recs) in enumerate(pending, start=1):
                fut.release()
                b = batches[task_of[fut.key]]
                for i, r in zip(b, recs):
                    results[i] = r
                done_cases += len(b)
                if bar is not None:
                    bar.update(len(b))
                else:
                    self.log(f"[{time.perf_counter() - t0:6.0f} s] task {n_done}/{len(batches)} done: "
                             f"{done_cases}/{len(specs)} cases")
                if progress is not None:
                    progress(done_cases, len(specs), specs[b[-1]])
            if not counting:
                try:
                    counts = self.client.run_on_scheduler(fetch, name=name)
                except Exception as exc:  # noqa: BLE001
                    counting = f"{type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            pending.clear()  # after an error: the remaining tasks are no longer wanted
            if bar is not None:
                bar.close()
            if counts is None and not counting:  # an error ended the run: leave no plugin on the cluster
                try:
                    self.client.unregister_scheduler_plugin(name)
                except Exception:  # noqa: BLE001 - best effort; the error that ended the run matters
                    pass
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # as_completed yields every future or raises: this would be a bug here
            raise RuntimeError(f"{len(missing)} cases came back without records (first: {specs[missing[0]].label()})")
        self.stats["seconds_cases"] = time.perf_counter() - t0
        if counts is None:
            self.stats.update(retries_counted=False,
                              retries_not_counted_because=counting or "the counting plugin was not found")
        else:
            extra = {k: n for k, n in counts["dispatches"].items() if n > 1}
            causes = [c for v in counts["exits"].values() for c, _ in v]
            self.stats.update(retries_counted=True, retried_tasks=len(extra),
                              extra_dispatches=sum(n - 1 for n in extra.values()),
                              lost_worker_reschedules=causes.count("lost worker"),
                              exception_retries=causes.count("raised"),
                              other_exits=causes.count("other"),
                              retried={k[len(prefix):]: n for k, n in sorted(extra.items(), key=_task_no)},
                              left_processing={k[len(prefix):]: v
                                               for k, v in sorted(counts["exits"].items(), key=_task_no)})
            if extra:
                self.log(f"Dask: {len(extra)} task(s) dispatched more than once ({self.stats['lost_worker_reschedules']} "
                         f"rescheduled after a lost worker, {self.stats['exception_retries']} retried after "
                         "an exception); their records are from the attempt that finished")
        return [r for rs in results for r in rs]


def run_suite_distributed(client, *, batch_size: int = DEFAULT_BATCH, retries: int = RETRIES,
                          bar: bool | None = None, log: Callable[[str], None] | None = None,
                          _hooks: dict | None = None, **suite_kwargs) -> dict:
    """:func:`~verification.suite.run_suite` (same keyword arguments) with the cases fanned out on
    ``client``; the result is a serial run's plus ``summary["distributed"]`` (:attr:`FanOut.stats`)."""
    fan = FanOut(client, batch_size=batch_size, retries=retries, bar=bar, log=log, _hooks=_hooks)
    result = run_suite(run_cases=fan, **suite_kwargs)
    result["summary"]["distributed"] = fan.stats
    return result


def distributed_markdown(result: dict) -> str:
    """The report's "Distributed run" section ("" for a serial run)."""
    d = result.get("summary", {}).get("distributed")
    if not d:
        return ""
    L = ["", "## Distributed run", "",
         f"* Cluster: {d['cluster']}",
         f"* Tasks: {d['tasks']} (up to {d['batch_size']} cases each, strided over the plan); the records "
         "are gathered in the plan's order and equal a serial run's, timings aside",
         f"* Retries: a task that raises is re-run up to {d['retries']} times; one whose worker dies is "
         "rescheduled by the scheduler (allowed-failures)"]
    if d.get("retries_counted"):
        why = d.get("left_processing", {})
        L.append(f"* **Tasks retried: {d['retried_tasks']}** ({d['lost_worker_reschedules']} rescheduled after a "
                 f"lost worker, {d['exception_retries']} re-run after an exception; {d['extra_dispatches']} "
                 "extra dispatches)" + ("" if not d["retried"] else ": " + "; ".join(
                     f"task {k} sent {n} times ({', '.join(c for c, _ in why.get(k, []))})"
                     for k, n in d["retried"].items())))
        if d.get("other_exits"):
            L.append(f"* Tasks taken back for another reason (e.g. cancelled): {d['other_exits']}")
    else:
        L.append(f"* Tasks retried: not counted ({d.get('retries_not_counted_because')})")
    return "\n".join(L) + "\n"
