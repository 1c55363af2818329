"""The verification suite fanned out on Dask (``verification.fanout``, ``cvx_fenchel.distributed``).

On a LocalCluster of 2 single-threaded worker processes, on the quick plan restricted to three cheap
kinds (33 cases, every activation of the hidden X-step, softplus's perturbation record included): the records equal a serial run's field for field except the two
timings; a worker killed mid-run and a task raising once are re-run, the records still equal the
serial ones, and the summary counts exactly those re-runs. Without Dask the flags fail with one line
naming the extra, before any work. About 20 s on 2 idle cores (cluster start included).
"""

from __future__ import annotations

import math
import sys

import pytest

from cvx_fenchel.distributed import EXTRA_INSTALL, add_cluster_arguments, check_cluster_args
from cvx_fenchel.errors import InputError
from verification.fanout import distributed_markdown, plan_batches, run_suite_distributed
from verification.suite import make_specs, run_suite

pytestmark = pytest.mark.timeout(300)  # a wedged cluster fails the test instead of hanging CI

KINDS = ("X-hidden", "LNN-X", "LNN-simplex-CE")
TIMINGS = ("fast_seconds", "cvx_seconds")


def _same(a, b) -> bool:
    """Exact equality, NaN equal to NaN (``x_dist`` can be NaN in both runs)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _assert_records_equal(serial: list[dict], dist: list[dict]):
    assert len(dist) == len(serial)
    for s, d in zip(serial, dist):
        for k in s:
            if k not in TIMINGS:
                assert _same(s[k], d[k]), f"{s['id']} / {s['solver']}: {k} differs: {s[k]!r} vs {d[k]!r}"
        assert d.keys() == s.keys()


def _our_plugins(dask_scheduler=None):
    """(run on the scheduler) Names of the fan-out's counting plugins still registered."""
    return sorted(n for n in dask_scheduler.plugins if n.startswith("verify-batch-"))


@pytest.fixture(scope="module")
def specs():
    out = [s for s in make_specs(True, 0) if s.subproblem in KINDS]
    assert {s.subproblem for s in out} == set(KINDS)
    return out


@pytest.fixture(scope="module")
def serial(specs):
    return run_suite(specs=specs, with_checks=False, with_speed=False)


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


def test_plan_batches_strided_cover_every_case_once():
    for n, b in ((0, 20), (1, 20), (48, 10), (1535, 20), (7, 3)):
        batches = plan_batches(n, b)
        flat = sorted(i for t in batches for i in t)
        assert flat == list(range(n))
        assert all(1 <= len(t) <= b for t in batches)
        assert len(batches) == -(-n // b)
        assert all(t == list(range(batches.index(t), n, len(batches))) for t in batches)


def test_records_equal_serial_case_for_case(client, specs, serial):
    seen = []
    dist = run_suite_distributed(client, specs=specs, with_checks=False, with_speed=False, batch_size=10,
                                 bar=True, progress=lambda i, n, spec: seen.append((i, n)))
    # one progress call per finished task, in cases done so far (tasks of 9 or 8 cases)
    assert [n for _, n in seen] == [33] * 4 and seen[-1][0] == 33
    assert all(b[0] - a[0] in (8, 9) for a, b in zip([(0, 33)] + seen, seen))
    assert len(specs) == 33 and any(r["solver"] == "perturbation" for r in serial["records"])
    _assert_records_equal(serial["records"], dist["records"])
    d = dist["summary"].pop("distributed")
    assert d["tasks"] == 4 and d["batch_size"] == 10 and d["retries_counted"]
    assert d["retried_tasks"] == 0 and d["extra_dispatches"] == 0
    s_sum, d_sum = dict(serial["summary"]), dict(dist["summary"])
    s_sum.pop("seconds"), d_sum.pop("seconds")
    assert d_sum == s_sum
    assert client.run_on_scheduler(_our_plugins) == []  # the counting plugin was removed


def test_lost_worker_and_raising_task_are_retried_and_counted(client, specs, serial, tmp_path):
    hooks = {"exit_once": str(tmp_path / "exit"), "raise_once": str(tmp_path / "raise")}
    dist = run_suite_distributed(client, specs=specs, with_checks=False, with_speed=False, batch_size=6,
                                 bar=False, _hooks=hooks)
    assert (tmp_path / "exit").exists() and (tmp_path / "raise").exists()  # both hooks fired
    _assert_records_equal(serial["records"], dist["records"])
    d = dist["summary"]["distributed"]
    assert d["tasks"] == 6 and d["retries_counted"]  # > 2 x 2 threads: queued as root tasks
    # one worker died holding one task; one task raised once: two extra dispatches in all
    assert d["lost_worker_reschedules"] == 1
    assert d["exception_retries"] == 1
    assert d["extra_dispatches"] == 2
    assert d["retried_tasks"] == len(d["retried"]) and d["retried_tasks"] in (1, 2)
    assert sum(n - 1 for n in d["retried"].values()) == 2
    md = distributed_markdown(dist)
    assert f"**Tasks retried: {d['retried_tasks']}** (1 rescheduled after a lost worker, 1 re-run after an " \
           "exception; 2 extra dispatches)" in md


def _no_dask(monkeypatch):
    for mod in ("dask.distributed", "distributed"):
        monkeypatch.setitem(sys.modules, mod, None)  # `import dask.distributed` now raises ImportError


def test_missing_dask_is_one_line_naming_the_extra_before_any_work(monkeypatch, tmp_path, capsys):
    import verification.cli as vcli
    import verification.suite as vsuite
    from cvx_fenchel import cli

    _no_dask(monkeypatch)

    def no_work(*a, **k):
        raise AssertionError("work started before the missing Dask was reported")

    monkeypatch.setattr(vsuite, "run_suite", no_work)
    monkeypatch.setattr(vsuite, "make_specs", no_work)
    with pytest.raises(InputError) as exc:
        import argparse
        p = argparse.ArgumentParser()
        add_cluster_arguments(p)
        check_cluster_args(p.parse_args(["--workers", "2"]))
    assert EXTRA_INSTALL in str(exc.value) and "\n" not in str(exc.value)

    for run, argv, prefix in ((vcli.main, ["--quick", "--workers", "2"], "error: "),
                              (cli.main, ["verify", "--quick", "--scheduler", "tcp://127.0.0.1:1"],
                               "cvx-fenchel: error: ")):
        out = tmp_path / "out"
        assert run(argv + ["--out", str(out)]) == 2
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(prefix) and 'pip install ".[distributed]"' in lines[0]
        assert not out.exists()


def test_cluster_flags_are_exclusive_and_checked(tmp_path):
    import argparse
    p = argparse.ArgumentParser()
    add_cluster_arguments(p)
    with pytest.raises(SystemExit):
        p.parse_args(["--workers", "2", "--scheduler", "tcp://h:1"])
    with pytest.raises(SystemExit):
        p.parse_args(["--workers", "0"])
    a = p.parse_args([])
    assert a.workers is None and a.scheduler is None
    check_cluster_args(a)  # neither flag: nothing to check, Dask not needed
    pytest.importorskip("dask.distributed")
    with pytest.raises(InputError, match="neither a scheduler address"):
        check_cluster_args(p.parse_args(["--scheduler", str(tmp_path / "no-such-scheduler.json")]))
    check_cluster_args(p.parse_args(["--scheduler", "tcp://10.0.0.1:8786"]))
    check_cluster_args(p.parse_args(["--scheduler", "node17:8786"]))


def test_cvx_fenchel_verify_passes_the_cluster_flags_on(monkeypatch):
    pytest.importorskip("dask.distributed")
    import verification.cli

    from cvx_fenchel import cli
    seen = {}
    monkeypatch.setattr(verification.cli, "main", lambda argv: seen.setdefault("argv", argv) and 0)
    assert cli.main(["verify", "--quick", "--workers", "3", "--batch-size", "7"]) == 0
    assert seen.pop("argv") == ["--quick", "--workers", "3", "--batch-size", "7"]
    assert cli.main(["verify", "--scheduler", "tcp://10.0.0.1:8786"]) == 0
    assert seen.pop("argv") == ["--scheduler", "tcp://10.0.0.1:8786"]


def test_a_task_failing_for_good_raises_and_leaves_the_cluster_clean(client, specs):
    from verification.fanout import FanOut

    fan = FanOut(client, batch_size=10, retries=1, bar=False, log=lambda line: None)
    with pytest.raises(InputError, match="no-such-backend"):  # raised on every attempt (retries=1: twice)
        fan(specs[:4], backend="no-such-backend")
    assert client.run_on_scheduler(_our_plugins) == []
