"""Independent runs fanned out as Dask tasks (``cvx_fenchel.sweeps``).

The tasks are toy resumable runs (:func:`toy`): ``steps`` deterministic steps, a checkpoint
(``state.json``) and a line in ``steps.log`` after each, so a run's result is a fixed function of
its arguments and the log shows every step each attempt executed. On a LocalCluster of 2
single-threaded worker processes:

* results come back in the input order although the tasks finish in another, and equal a plain
  serial loop's;
* a task whose worker is SIGKILLed after 3 of its 6 steps is run again with ``resume=True`` and
  continues at step 3: its log holds each step exactly once (it did not restart from zero), its
  attempt record two attempts by two processes, and its result equals the serial one; a task that
  raises once is re-run the same way;
* a task depending on others starts only after they finished and receives their results;
* a task failing after its retries does not stop the others; SweepError names it and its
  dependent, and holds the others' results.

Then the real sweeps on the same cluster: ``table1.run(client=...)`` on 3 cells (xavier, the lifted
model and NN[Lifted] depending on it) gives the serial rows (timings aside) and the same
``table.md``; ``reproduce`` (slow: fig2-gaps, two 1-epoch SGD runs) gives the serial results table;
(slow) a Fenchel run whose worker is SIGKILLed after its first mid-epoch checkpoint resumes on
another worker and its row equals an uninterrupted serial run's; without Dask the cluster flags
fail with one line naming the extra before any work.

The default (not slow) tests take about 25-50 s here at load 7-10 on 2 cores (cluster start and
the workers' first torch import included); the toy tests alone about 15 s.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import zlib
from pathlib import Path

import pytest

from cvx_fenchel.errors import InputError
from cvx_fenchel.sweeps import MARKER, SweepError, Task, read_marker, run_tasks

pytestmark = pytest.mark.timeout(300)  # a wedged cluster fails the test instead of hanging CI

TOY = f"{__name__}:toy"


def _once(path: str | None) -> bool:
    """True the first time any process asks for ``path`` (created atomically), False after."""
    if path is None:
        return False
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def toy(*, name: str, steps: int, out: str, resume: bool, sleep: float = 0.0,
        kill_after: int | None = None, raise_after: int | None = None, once: str | None = None,
        always_raise: bool = False, deps: dict | None = None) -> dict:
    """A resumable toy run: ``acc`` goes through ``steps`` deterministic updates, checkpointed in
    ``out/state.json`` after each; ``resume=True`` continues from the checkpoint. Test hooks: after
    ``kill_after`` steps the process SIGKILLs itself, after ``raise_after`` it raises (each once per
    ``once`` marker file); ``always_raise`` raises at the start."""
    folder = Path(out)
    state_p, log_p = folder / "state.json", folder / "steps.log"
    with open(folder / "times.log", "a") as f:
        f.write(f"start {time.time()!r} {os.getpid()}\n")
    if always_raise:
        raise ValueError(f"{name} always fails")
    if resume and state_p.exists():
        state = json.loads(state_p.read_text())
    else:
        state = {"step": 0, "acc": zlib.crc32(name.encode()) % 1000003}
        log_p.write_text("")
    while state["step"] < steps:
        k = state["step"]
        time.sleep(sleep)
        state = {"step": k + 1, "acc": (state["acc"] * 31 + k + 7) % 1000003}
        with open(log_p, "a") as f:
            f.write(f"{k}\n")
        tmp = folder / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, state_p)
        if kill_after == k + 1 and _once(once):
            os.kill(os.getpid(), signal.SIGKILL)
        if raise_after == k + 1 and _once(once):
            raise RuntimeError(f"test hook: {name} raises once after step {k + 1}")
    with open(folder / "times.log", "a") as f:
        f.write(f"end {time.time()!r} {os.getpid()}\n")
    return {"name": name, "acc": state["acc"],
            "from_deps": sorted((k, v["acc"]) for k, v in (deps or {}).items())}


def _tasks(root: Path, specs: list[tuple[str, dict, tuple]]) -> list[Task]:
    return [Task(name, TOY, {"name": name, "out": str(root / name), **kw}, root / name, deps)
            for name, kw, deps in specs]


def _serial_loop(root: Path, specs) -> list[dict]:
    """What a plain loop calling each run once, from scratch, returns (hooks and sleeps off)."""
    out, results = [], {}
    for name, kw, deps in specs:
        (root / name).mkdir(parents=True)
        kw = {k: v for k, v in kw.items() if k in ("steps",)}
        r = toy(name=name, out=str(root / name), resume=False, deps={d: results[d] for d in deps},
                **kw)
        results[name] = r
        out.append(r)
    return out


def _log(root: Path, name: str) -> list[int]:
    return [int(x) for x in (root / name / "steps.log").read_text().split()]


def _times(root: Path, name: str) -> list[tuple[str, float, int]]:
    return [(w, float(t), int(p)) for w, t, p in
            (line.split() for line in (root / name / "times.log").read_text().splitlines())]


# ------------------------------------------------------------------------------ without Dask

def test_serial_sweep_equals_plain_loop_and_records_one_attempt(tmp_path):
    specs = [("a", {"steps": 3}, ()), ("b", {"steps": 4}, ()), ("c", {"steps": 2}, ("a", "b"))]
    lines, seen = [], []
    got = run_tasks(_tasks(tmp_path / "sweep", specs), None, log=lines.append,
                    progress=lambda d, n, k, info: seen.append((d, n, k, info["attempts"], info["result"])))
    assert got == _serial_loop(tmp_path / "loop", specs)
    assert got[2]["from_deps"] == [("a", got[0]["acc"]), ("b", got[1]["acc"])]
    assert seen == [(1, 3, "a", 1, got[0]), (2, 3, "b", 1, got[1]), (3, 3, "c", 1, got[2])]
    assert len(lines) == 3 and lines[-1].endswith("3/3 done: c")
    rec = read_marker(tmp_path / "sweep" / "a")
    assert rec["finished"] is True and len(rec["attempts"]) == 1 and rec["attempts"][0]["resume"] is False


def test_marker_of_an_earlier_sweep_does_not_resume_but_resume_flag_does(tmp_path):
    specs = [("a", {"steps": 3}, ())]
    first = run_tasks(_tasks(tmp_path, specs), None, log=lambda s: None)
    assert _log(tmp_path, "a") == [0, 1, 2]
    again = run_tasks(_tasks(tmp_path, specs), None, log=lambda s: None)  # a new sweep: afresh
    assert again == first and _log(tmp_path, "a") == [0, 1, 2]
    assert read_marker(tmp_path / "a")["attempts"][0]["resume"] is False
    resumed = run_tasks(_tasks(tmp_path, specs), None, resume=True, log=lambda s: None)
    assert resumed == first and _log(tmp_path, "a") == [0, 1, 2]  # finished: nothing redone
    assert read_marker(tmp_path / "a")["attempts"][0]["resume"] is True


@pytest.mark.parametrize("tasks, match", [
    (lambda r: [Task("a", TOY, {}, r / "a"), Task("a", TOY, {}, r / "b")], "appears twice"),
    (lambda r: [Task("a", TOY, {}, r / "a", ("b",)), Task("b", TOY, {}, r / "b")], "not earlier tasks"),
    (lambda r: [Task("a", TOY, {}, r / "x"), Task("b", TOY, {}, r / "x")], "share the folder"),
    (lambda r: [Task("a", "cvx_fenchel.sweeps:no_such_function", {}, r / "a")], "not importable"),
    (lambda r: [Task("a", "no_colon_here", {}, r / "a")], "package.module:function"),
    (lambda r: [Task("a", TOY, {"resume": True}, r / "a")], "reserved"),
    (lambda r: [("a", TOY)], "not a sweeps.Task"),
])
def test_bad_tasks_rejected_before_any_run(tmp_path, tasks, match):
    with pytest.raises(InputError, match=match):
        run_tasks(tasks(tmp_path), None, log=lambda s: None)
    assert list(tmp_path.iterdir()) == []  # nothing ran, no folder made


# ------------------------------------------------------------------------------ on a LocalCluster

@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


def test_results_in_input_order_equal_serial_loop(client, tmp_path):
    # the first task is the slowest, so it finishes last: completion order != input order
    specs = [("slow", {"steps": 3, "sleep": 0.8}, ()), ("f1", {"steps": 2}, ()),
             ("f2", {"steps": 5}, ()), ("f3", {"steps": 1}, ())]
    order: list[str] = []
    stats: dict = {}
    got = run_tasks(_tasks(tmp_path / "sweep", specs), client, log=lambda s: None, stats=stats,
                    progress=lambda d, n, k, info: order.append(k))
    assert sorted(order) == sorted(k for k, _, _ in specs)
    assert got == _serial_loop(tmp_path / "loop", specs)  # input order, whatever finished first
    assert stats["tasks"] == 4 and stats["retried"] == {} and stats["failed"] == {}
    # (which worker ran what, and the completion order, depend on the machine's load: a loaded
    # CI machine may finish the slow task early or hand every task to one worker, so neither is
    # asserted; the tasks ran on the cluster's workers)
    pids = set(client.run(os.getpid).values())  # a marker names its worker as host:pid
    ran = {read_marker(tmp_path / "sweep" / k)["attempts"][0]["worker"] for k, _, _ in specs}
    assert {int(w.rsplit(":", 1)[1]) for w in ran} <= pids


def test_killed_worker_and_raising_task_resume_from_their_folders(client, tmp_path):
    root = tmp_path / "sweep"
    specs = [("victim", {"steps": 6, "sleep": 0.2, "kill_after": 3, "once": str(tmp_path / "kill")}, ()),
             ("raiser", {"steps": 5, "sleep": 0.1, "raise_after": 2, "once": str(tmp_path / "raise")}, ()),
             ("bystander", {"steps": 4, "sleep": 0.1}, ())]
    stats: dict = {}
    lines: list[str] = []
    got = run_tasks(_tasks(root, specs), client, log=lines.append, stats=stats)
    assert (tmp_path / "kill").exists() and (tmp_path / "raise").exists()  # both hooks fired
    assert got == _serial_loop(tmp_path / "loop", specs)
    # each step ran exactly once: the second attempt continued at the checkpoint, not at step 0
    assert _log(root, "victim") == [0, 1, 2, 3, 4, 5]
    assert _log(root, "raiser") == [0, 1, 2, 3, 4]
    victim = read_marker(root / "victim")
    assert victim["finished"] and [a["resume"] for a in victim["attempts"]] == [False, True]
    starts = [p for w, _, p in _times(root, "victim") if w == "start"]
    assert len(starts) == 2 and starts[0] != starts[1]  # the first process died; another resumed
    raiser = read_marker(root / "raiser")
    assert [a["resume"] for a in raiser["attempts"]] == [False, True]
    assert stats["retried"] == {"victim": 2, "raiser": 2}
    assert any("victim (attempt 2, resumed from its folder)" in s for s in lines)


def test_dependencies_start_after_their_inputs_and_receive_their_results(client, tmp_path):
    root = tmp_path / "sweep"
    specs = [("a", {"steps": 3, "sleep": 0.3}, ()), ("b", {"steps": 2, "sleep": 0.1}, ()),
             ("c", {"steps": 2}, ("a", "b")), ("d", {"steps": 1}, ("c",))]
    got = run_tasks(_tasks(root, specs), client, log=lambda s: None)
    assert got == _serial_loop(tmp_path / "loop", specs)
    assert got[2]["from_deps"] == [("a", got[0]["acc"]), ("b", got[1]["acc"])]
    assert got[3]["from_deps"] == [("c", got[2]["acc"])]
    end = {k: max(t for w, t, _ in _times(root, k) if w == "end") for k in "abc"}
    start = {k: min(t for w, t, _ in _times(root, k) if w == "start") for k in "cd"}
    assert start["c"] >= max(end["a"], end["b"]) and start["d"] >= end["c"]


def test_failed_task_does_not_stop_the_others(client, tmp_path):
    root = tmp_path / "sweep"
    specs = [("bad", {"steps": 1, "always_raise": True}, ()), ("good", {"steps": 3}, ()),
             ("child", {"steps": 1}, ("bad",))]
    with pytest.raises(SweepError) as err:
        run_tasks(_tasks(root, specs), client, retries=1, log=lambda s: None)
    e = err.value
    assert set(e.errors) == {"bad", "child"}
    assert e.errors["bad"] == "ValueError: bad always fails"
    assert e.errors["child"] == "not run: it depends on failed task(s) ['bad']"
    assert e.results[0] is None and e.results[2] is None
    assert e.results[1] == _serial_loop(tmp_path / "loop", specs[1:2])[0]
    assert len(read_marker(root / "bad")["attempts"]) == 2  # retries=1: ran twice
    assert not (root / "child" / MARKER).exists()
    assert str(e).startswith("2 of 3 task(s) failed: ")


# ------------------------------------------------------------------------------ reproduce on Dask

_TIMINGS = ("seconds", "seconds_per_epoch", "machine")


def _comparable(result: dict, root: Path) -> dict:
    """A results.json without what may differ between two runs of the same table: the timings and
    machine of each row, the command line that made it, and the output folder's name."""
    def strip(v):
        if isinstance(v, str):
            return v.replace(str(root), "OUT")
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    out = {k: strip(v) for k, v in result.items() if k not in ("command", "runs")}
    out["runs"] = [strip({k: v for k, v in r.items() if k not in _TIMINGS}) for r in result["runs"]]
    return out


@pytest.mark.slow  # 16-30 s at this machine's load (two SGD epochs serially, two on the cluster)
def test_reproduce_on_the_cluster_writes_the_serial_table(client, tmp_path, capsys):
    pytest.importorskip("torch")
    from cvx_fenchel.reproduce import reproduce
    # two SGD runs of 1 epoch on the shipped subset: the cheapest figure with more than one run
    kw = dict(epochs=1, quiet=True)
    serial = reproduce("fig2-gaps", out=str(tmp_path / "s"), **kw)
    dist = reproduce("fig2-gaps", out=str(tmp_path / "d"), client=client, **kw)
    assert [r["model"] for r in dist["runs"]] == ["sgd-lr0.05", "sgd-lr0.1"]
    assert [r["epochs"] for r in dist["runs"]] == [1, 1]
    assert _comparable(dist, tmp_path / "d") == _comparable(serial, tmp_path / "s")
    for r in dist["runs"]:  # the accuracies per epoch, equal to the serial run's exactly
        s = next(x for x in serial["runs"] if x["model"] == r["model"])
        assert r["test_accuracy_per_epoch"] == s["test_accuracy_per_epoch"] and len(s["test_accuracy_per_epoch"]) == 1
    on_disk = json.loads((tmp_path / "d" / "fig2-gaps-subset" / "results.json").read_text())
    assert _comparable(on_disk, tmp_path / "d") == _comparable(dist, tmp_path / "d")
    for m in ("sgd-lr0.05", "sgd-lr0.1"):  # each run was a task with its own attempt record
        rec = read_marker(tmp_path / "d" / "fig2-gaps-subset" / m)
        assert rec["key"] == f"fig2-gaps/{m}" and rec["finished"] and len(rec["attempts"]) == 1
        assert rec["func"] == "cvx_fenchel.reproduce:run_model"
    assert "2/2 done: fig2-gaps/" in capsys.readouterr().out


def test_reproduce_cluster_flags_without_dask_fail_in_one_line_before_any_work(monkeypatch, tmp_path, capsys):
    from cvx_fenchel import cli
    for mod in ("dask.distributed", "distributed"):
        monkeypatch.setitem(sys.modules, mod, None)  # `import dask.distributed` now raises ImportError
    for flags in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        out = tmp_path / "out"
        assert cli.main(["reproduce", "fig2-gaps", "--epochs", "1", "--out", str(out), *flags]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cvx-fenchel: error: ")
        assert 'pip install ".[distributed]"' in lines[0]
        assert not out.exists()


def test_reproduce_dry_run_with_a_cluster_is_refused(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    from cvx_fenchel import cli
    out = tmp_path / "out"
    assert cli.main(["reproduce", "fig2-gaps", "--dry-run", "--workers", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--dry-run" in err and "--workers/--scheduler" in err and not out.exists()


def test_reproduce_help_has_the_shared_cluster_flags(capsys):
    from cvx_fenchel import cli
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--help"])
    text = capsys.readouterr().out
    assert "--workers N" in text and "--scheduler ADDRESS" in text and ".[distributed]" in text


# ------------------------------------------------------------------------------ Table 1 on Dask

_T1 = dict(seeds=[0], archs=["300"], lrs=[1e-5], inits=["xavier", "lifted"], epochs=1, sweeps=1,
           n_train=600)


def _t1_comparable(res: dict, root: Path) -> dict:
    """results.json of table1 without timings, with the output folder's name replaced."""
    rows = [{k: (v.replace(str(root), "OUT") if k == "command" else v) for k, v in r.items()
             if k != "seconds"} for r in res["rows"]]
    lam = {k: v for k, v in res["lambda"].items() if k != "seconds"}
    return {"settings": res["settings"], "lambda": lam, "rows": rows}


def _t1_run_and_compare(client, tmp_path, **kw):
    from cvx_fenchel import table1, table1_cluster
    serial = table1.run(tmp_path / "s", **_T1, **kw)
    dist = table1.run(tmp_path / "d", client=client, **_T1, **kw)
    assert [(r["arch"], r["lr"], r["init"], r["seed"]) for r in dist["rows"]] == [
        ("300", 1e-5, "xavier", 0), ("300", None, "lnn", 0), ("300", 1e-5, "lifted", 0)]
    assert _t1_comparable(dist, tmp_path / "d") == _t1_comparable(serial, tmp_path / "s")
    on_disk = json.loads((tmp_path / "d" / "results.json").read_text())
    assert _t1_comparable(on_disk, tmp_path / "d") == _t1_comparable(dist, tmp_path / "d")
    # the table has no timings: the same Markdown
    assert (tmp_path / "d" / "table.md").read_text() == (tmp_path / "s" / "table.md").read_text()
    # NN[Lifted] started after its lifted model's task had finished
    lnn = read_marker(table1_cluster.cell_folder(tmp_path / "d", ("300", None, "lnn", 0)))["attempts"][-1]
    lifted = read_marker(table1_cluster.cell_folder(tmp_path / "d", ("300", 1e-5, "lifted", 0)))["attempts"][-1]
    assert lifted["started"] >= lnn["started"] + lnn["seconds"]
    return serial, dist


def test_table1_on_the_cluster_writes_the_serial_rows(client, tmp_path):
    pytest.importorskip("torch")
    _t1_run_and_compare(client, tmp_path, lam=1.0)


@pytest.mark.slow
def test_table1_lambda_search_as_a_task_gives_the_serial_choice(client, tmp_path):
    pytest.importorskip("torch")
    from cvx_fenchel import table1_cluster
    serial, dist = _t1_run_and_compare(client, tmp_path, choose=True)
    assert dist["lambda"]["source"] == "search" and dist["lambda"]["lam"] == serial["lambda"]["lam"]
    assert json.loads((tmp_path / "d" / "lambda.json").read_text())["lam"] == dist["lambda"]["lam"]
    search = read_marker(tmp_path / "d" / "lambda-search")["attempts"][-1]
    lnn = read_marker(table1_cluster.cell_folder(tmp_path / "d", ("300", None, "lnn", 0)))["attempts"][-1]
    assert lnn["started"] >= search["started"] + search["seconds"]


def test_table1_cluster_flags_without_dask_fail_before_any_work(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    from cvx_fenchel import table1
    from cvx_fenchel.distributed import EXTRA_INSTALL
    for mod in ("dask.distributed", "distributed"):
        monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.setattr(table1, "_data", lambda *a: pytest.fail("data loaded before the check"))
    with pytest.raises(InputError) as err:
        table1.main(["--out", str(tmp_path / "t1"), "--workers", "2"])
    assert EXTRA_INSTALL in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "t1").exists()


@pytest.mark.slow  # about 2-3 min here: one Fenchel epoch on the shipped subset serially, then on the cluster
def test_reproduce_fenchel_run_resumes_elsewhere_after_its_worker_is_killed(client, tmp_path):
    """The real trainer: a Fenchel run of fig2 (1 epoch, 20 batches, a checkpoint every 5) is a task;
    once its first checkpoint exists the test SIGKILLs the worker process running it. The scheduler
    re-runs the task elsewhere with resume=True, the trainer continues from the checkpoint, and the
    row equals an uninterrupted serial run's (the serial run limited to one BLAS thread, as the
    workers are)."""
    import threading

    from threadpoolctl import threadpool_limits

    from cvx_fenchel.checkpoint import position, read_state
    from cvx_fenchel.reproduce import reproduce
    kw = dict(models=["fenchel"], epochs=1, checkpoint_every=5, quiet=True, backend="numpy")
    with threadpool_limits(1):
        serial = reproduce("fig2", out=str(tmp_path / "s"), **kw)
    folder = tmp_path / "d" / "fig2-subset" / "fenchel"
    killed: list[tuple[int, tuple]] = []
    stop = threading.Event()

    def kill_after_first_checkpoint():
        while not stop.is_set():
            rec, ck = read_marker(folder), folder / "checkpoints"
            try:
                where = position(read_state(ck))
            except Exception:  # noqa: BLE001 - not written yet
                where = None
            if rec and where is not None and where != (0, 0):
                pid = int(rec["attempts"][-1]["worker"].rsplit(":", 1)[1])
                os.kill(pid, signal.SIGKILL)
                killed.append((pid, where))
                return
            time.sleep(0.1)

    t = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    t.start()
    try:
        dist = reproduce("fig2", out=str(tmp_path / "d"), client=client, **kw)
    finally:
        stop.set()
        t.join()
    assert len(killed) == 1 and killed[0][1][0] == 0 and 5 <= killed[0][1][1] < 20  # killed mid-epoch
    rec = read_marker(folder)
    assert [a["resume"] for a in rec["attempts"]] == [False, True] and rec["finished"]
    assert int(rec["attempts"][0]["worker"].rsplit(":", 1)[1]) == killed[0][0]
    (row,), (ref,) = dist["runs"], serial["runs"]
    assert row["resumed_at"] is not None and ref["resumed_at"] is None  # continued, not restarted
    drop = ("resumed_at",)
    assert _comparable({**dist, "runs": [{k: v for k, v in row.items() if k not in drop}]}, tmp_path / "d") == \
        _comparable({**serial, "runs": [{k: v for k, v in ref.items() if k not in drop}]}, tmp_path / "s")


def test_reproduce_gives_workers_absolute_folders_unless_they_share_our_cwd(monkeypatch, tmp_path):
    from cvx_fenchel.reproduce import _paths_for_workers
    monkeypatch.chdir(tmp_path)

    class FakeClient:  # what client.run(os.getcwd) answers: {worker address: its cwd}
        def __init__(self, cwds):
            self.cwds = cwds

        def run(self, fn):
            assert fn is os.getcwd
            return self.cwds

    kw = {"out": "runs/r", "data_dir": "mnist", "cifar_dir": None, "seed": 0}
    assert _paths_for_workers(FakeClient({"tcp://a": str(tmp_path), "tcp://b": str(tmp_path)}), kw) == kw
    absolute = {**kw, "out": str(tmp_path / "runs" / "r"), "data_dir": str(tmp_path / "mnist")}
    assert _paths_for_workers(FakeClient({"tcp://a": str(tmp_path), "tcp://b": "/elsewhere"}), kw) == absolute
    assert _paths_for_workers(FakeClient({}), kw) == absolute  # no worker yet: those to come may start anywhere
