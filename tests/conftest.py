"""Shared test helpers: a module-scoped LocalCluster fixture and the kill of a child process at a
known point (for the resume-after-SIGKILL tests)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def dask_client():
    """A LocalCluster of 2 single-threaded worker processes with one task in flight per worker
    (instead of Dask's 1.1 x threads), so that a killed worker holds only the task it was running
    and retry counts are exact. Skips without Dask."""
    pytest.importorskip("dask.distributed")
    import dask

    from cvx_fenchel.distributed import cluster_client
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        with cluster_client(workers=2, dashboard_address=":0") as c:
            yield c


def sigkill_when(child: subprocess.Popen, ready: Path, *, timeout: float, what: str) -> None:
    """SIGKILL ``child`` as soon as the file ``ready`` exists (the child writes it at the point to
    be interrupted); fail if the child exits first or ``ready`` does not appear within ``timeout``
    seconds (``what`` names the point in the message)."""
    try:
        t0 = time.monotonic()
        while not ready.exists():
            assert child.poll() is None, child.communicate()[0].decode()
            assert time.monotonic() - t0 < timeout, f"the child never reached {what}"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def ctrl_c_after_batch(monkeypatch, when):
    """Make every history raise KeyboardInterrupt (a Ctrl-C) right after it records a batch record
    ``rec`` with ``when(rec)`` true; returns the function that undoes it."""
    from cvx_fenchel.history import History
    log_batch = History.log_batch

    def interrupt(self, **rec):
        log_batch(self, **rec)
        if when(rec):
            raise KeyboardInterrupt

    monkeypatch.setattr(History, "log_batch", interrupt)
    return lambda: monkeypatch.setattr(History, "log_batch", log_batch)


def ctrl_c_after_fenchel_batch(monkeypatch, epoch: int, batch: int):
    """:func:`ctrl_c_after_batch` right after the Fenchel trainer records batch ``batch`` of epoch
    ``epoch`` (records with a relaxed objective: baselines' batch records pass)."""
    return ctrl_c_after_batch(monkeypatch, lambda rec: "relaxed_objective" in rec
                              and (rec["epoch"], rec["batch"]) == (epoch, batch))


def unfinished(path) -> bool:
    """``path`` (a run's ``history.json``) is not a finished run's: absent (stopped in its first
    epoch) or marked partial (the epochs so far, written as it ran: ``history.progress``)."""
    import json
    from pathlib import Path
    path = Path(path)
    return not path.exists() or json.loads(path.read_text())["meta"].get("partial") is True


#: fields of history and results records that hold wall times (they differ between equal runs)
TIMES = {"time", "time_x", "time_w", "seconds"}


def untimed(x):
    """``x`` (nested dicts and lists) without its :data:`TIMES` fields."""
    if isinstance(x, dict):
        return {k: untimed(v) for k, v in x.items() if k not in TIMES}
    if isinstance(x, list):
        return [untimed(v) for v in x]
    return x


# kept self-contained (its source is pasted into the child scripts of the kill-and-resume tests)
def small(dataset, data_dir, arch, standardize=False):
    """``experiments.load_data`` for the tests: a slice of the shipped subset, pooled to 14x14 for
    the 196-16-10 network; 1,000 train / 100 test flat images for 784-300-10."""
    from cvx_fenchel.datasets import load_mnist
    X, y, Xt, yt = load_mnist(normalize=True)
    if arch.startswith("784"):
        return X[:1000].reshape(1000, -1), y[:1000], Xt[:100].reshape(100, -1), yt[:100]

    def pool(A):
        return A.reshape(len(A), 14, 2, 14, 2).mean(axis=(2, 4)).reshape(len(A), -1)

    return pool(X[:1200]), y[:1200], pool(Xt[:300]), yt[:300]


def drive_row_blocks(gens: list) -> list:
    """Run solver generators of row blocks in lockstep, sending each the sums over all blocks of
    what they yield (the data-parallel protocol of :func:`cvx_fenchel.solvers.drive`); returns
    their results in order."""
    reqs = [next(g) for g in gens]
    done = [None] * len(gens)
    while any(d is None for d in done):
        totals = tuple(float(sum(float(r[i]) for r in reqs)) for i in range(len(reqs[0])))
        for j, g in enumerate(gens):
            try:
                reqs[j] = g.send(totals)
            except StopIteration as stop:
                done[j] = stop.value
    return done
