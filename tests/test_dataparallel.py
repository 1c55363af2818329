"""Data-parallel Algorithm 1 and layer-parallel W-steps (issue 16 points 3-4).

The facts checked: the sweeps of :func:`cvx_fenchel.dataparallel.fit_full_batch_parallel` on a
2-process LocalCluster give the iterates (weights, every X_l) and the history of the
single-process ``BCDTrainer(algorithm="full")`` to 1e-10 relative (float64); the X-step is one
FISTA run over all samples, so row blocks driven in lockstep with the summed scalars reproduce it
exactly while a block solved alone does not; the layers' W-steps run concurrently give the serial
loop's results bit for bit; bad arguments are refused before any work.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest

from cvx_fenchel import bcd
from cvx_fenchel.config import TrainConfig
from cvx_fenchel.errors import InputError
from cvx_fenchel.network import Layer, Network
from cvx_fenchel.solvers import read
from cvx_fenchel.trainer import BCDTrainer

RTOL = 1e-10
pytestmark = pytest.mark.filterwarnings("ignore::cvx_fenchel.errors.ConvergenceWarning")


def _problem(widths=(8,), loss="cross_entropy", rho=0.0, n=200, seed=0):
    """200 samples of 20 features labelled by a noisy linear teacher; a 20-widths-3 MLP."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 20))
    y = np.argmax(X @ rng.standard_normal((20, 3)) + 0.5 * rng.standard_normal((n, 3)), axis=1)
    net = Network((20,), [Layer("dense", n_out=w) for w in widths] + [Layer("dense", n_out=3, activation=None)],
                  loss=loss, rho=rho, dtype="float64")
    return net, X, np.eye(3)[y], y


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))


def _assert_same_run(ref: BCDTrainer, par, net: Network) -> None:
    """Weights, lifted variables and history records of two runs agree to RTOL (relative); the
    solvers' decisions (iterations, strategies, convergence) are identical."""
    for (W, b), (W2, b2) in zip(ref.weights, par.weights):
        assert _rel(W, W2) <= RTOL and _rel(b, b2) <= RTOL
    Xs = par.gather_Xs()
    for l in range(1, net.L + 1):
        assert _rel(ref.state.Xs[l], Xs[l]) <= RTOL, l
    assert len(ref.history.batches) == len(par.history.batches)
    for r1, r2 in zip(ref.history.batches, par.history.batches):
        assert sorted(r1) == sorted(r2)
        for k in ("relaxed_objective", "network_loss", "batch_accuracy_before", "batch_accuracy_after"):
            if k in r1:
                assert math.isclose(r1[k], r2[k], rel_tol=RTOL), k
        assert r1["w_methods"] == r2["w_methods"] and r1["n_capped"] == r2["n_capped"]
        keep = ("block", "n_iter", "max_iter", "converged", "method")
        assert [{k: s.get(k) for k in keep} for s in r1["steps"]] == [{k: s.get(k) for k in keep} for s in r2["steps"]]
    for e1, e2 in zip(ref.history.epochs, par.history.epochs):
        for k in ("relaxed_objective", "network_loss", "train_accuracy", "lower_bound", "lower_bound_p"):
            if k in e1:
                assert math.isclose(e1[k], e2[k], rel_tol=RTOL), k


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("dask.distributed", reason='needs the extra: pip install ".[distributed]"')
    from dask.distributed import Client, LocalCluster
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_data_parallel_algorithm1_equals_the_single_process_trainer(client):
    """20-8-3 MLP, cross-entropy, 200 samples in 2 shards on 2 worker processes, 3 sweeps."""
    from cvx_fenchel.dataparallel import fit_full_batch_parallel
    net, X, Y, y = _problem()
    cfg = TrainConfig(epochs=3, algorithm="full", dtype="float64", backend="numpy")
    ref = BCDTrainer(net, cfg)
    ref.fit(X, Y, y)
    par = fit_full_batch_parallel(net, X, Y, client, 2, cfg, y=y)
    try:
        _assert_same_run(ref, par, net)
        assert par.pool.workers[0] != par.pool.workers[1]  # one shard per worker process
        assert par.history.meta["data_parallel"] == {"n_shards": 2}
    finally:
        par.close()


def test_data_parallel_closed_form_two_hidden_layers_ridge_and_concurrent_w_steps(client):
    """MSE output (the closed-form W-step from summed A^T A, A^T Y), two hidden layers (X-hidden
    steps), rho > 0 (certified W-steps), 3 shards on 2 workers, W-steps of the layers at once;
    no labels (no accuracies recorded)."""
    from cvx_fenchel.dataparallel import fit_full_batch_parallel
    net, X, Y, _ = _problem(widths=(8, 6), loss="mse", rho=0.01)
    cfg = TrainConfig(epochs=2, algorithm="full", dtype="float64", backend="numpy")
    ref = BCDTrainer(net, cfg)
    ref.fit(X, Y)
    par = fit_full_batch_parallel(net, X, Y, client, 3, cfg, w_layers_concurrent=True)
    try:
        assert ref.history.batches[0]["w_methods"] == ["gram", "gram", "closed-form"]
        _assert_same_run(ref, par, net)
    finally:
        par.close()


def _lockstep(gens):
    """Drive one solver generator per row block, sending each the sums over all blocks."""
    requests, outs = [next(g) for g in gens], [None] * len(gens)
    while True:
        totals = tuple(math.fsum(read(*r)[i] for r in requests) for i in range(len(requests[0])))
        new = []
        for i, g in enumerate(gens):
            try:
                new.append(g.send(totals))
            except StopIteration as stop:
                outs[i] = stop.value
        if all(o is not None for o in outs):
            return outs
        assert not any(o is not None for o in outs), "the blocks left lockstep"
        requests = new


def test_x_step_in_row_blocks_needs_the_summed_scalars():
    """The X-step is separable over samples, but its FISTA stopping and restart tests are sums over
    all of them: two row blocks driven in lockstep with the summed scalars give the whole-batch
    iterate exactly (the same decisions, so the same arithmetic per row), while a block solved
    alone stops at its own iteration and misses it (here by 2e-8 relative at tol 1e-8)."""
    net, X, Y, _ = _problem()
    X = X.copy()
    X[100:] *= 4.0  # blocks of different difficulty
    cfg = TrainConfig(algorithm="full", dtype="float64", backend="numpy", tol_x=1e-8, max_iter_x=500)
    w = [(W * 1.5, b + 0.1) for W, b in net.init_weights(np.random.default_rng(0))]
    Xs, Yc = bcd.feed_forward(net, w, X, Y, np)
    full, res = bcd.x_step(net, cfg, w, Xs, Yc, 1)
    blocks = [slice(0, 100), slice(100, 200)]
    gens = [bcd.x_problem(net, w, [a[s] for a in Xs], Yc[s], 1).solve_fast_steps(
        Xs[1][s], tol=cfg.tol_x, max_iter=cfg.max_iter_x, warn=False) for s in blocks]
    outs = _lockstep(gens)
    np.testing.assert_array_equal(np.concatenate([o.x for o in outs]), full[1])
    assert {o.n_iter for o in outs} == {res.n_iter} and all(o.converged for o in outs)
    assert math.isclose(outs[0].residual, res.residual, rel_tol=1e-12)
    alone = [bcd.x_step(net, cfg, w, [a[s] for a in Xs], Yc[s], 1) for s in blocks]
    assert {a[1].n_iter for a in alone} != {res.n_iter}
    assert _rel(full[1], np.concatenate([a[0][1] for a in alone])) > 1e-9


def test_concurrent_w_steps_equal_the_serial_loop_exactly():
    """Threads, one per layer, at a non-trivial point (after one sweep): the same weights bit for
    bit, the same strategies, iterations and convergence flags; also with Adam gradient steps."""
    from cvx_fenchel.dataparallel import w_steps_concurrent
    net, X, Y, _ = _problem(widths=(8, 6))
    for cfg in (TrainConfig(algorithm="full", dtype="float64", backend="numpy"),
                TrainConfig(algorithm="full", dtype="float64", backend="numpy", w_step="gradient")):
        w = net.init_weights(np.random.default_rng(1))
        Xs, Yc = bcd.feed_forward(net, w, X, Y, np)
        res = bcd.bcd_pass(net, cfg, w, Xs, Yc, w)
        args = (net, cfg, res.weights, res.Xs, Yc, w, res.adam)
        w1, a1, o1 = bcd.w_steps_serial(*args)
        w2, a2, o2 = w_steps_concurrent(*args)
        for (W, b), (W2, b2) in zip(w1, w2):
            np.testing.assert_array_equal(W, W2)
            np.testing.assert_array_equal(b, b2)
        assert [(l, tuple(o)[2:], o.n_iter) for l, o, _ in o1] == [(l, tuple(o)[2:], o.n_iter) for l, o, _ in o2]
        assert sorted(a1) == sorted(a2)
        for l in a1:
            for m1, m2 in zip(a1[l].m + a1[l].v, a2[l].m + a2[l].v):
                np.testing.assert_array_equal(m1, m2)
        # and as the W-half of a pass: the records of bcd_pass are the serial ones
        p1 = bcd.bcd_pass(net, cfg, res.weights, res.Xs, Yc, w, res.adam)
        p2 = bcd.bcd_pass(net, cfg, res.weights, res.Xs, Yc, w, res.adam, w_steps_fn=w_steps_concurrent)
        for (W, b), (W2, b2) in zip(p1.weights, p2.weights):
            np.testing.assert_array_equal(W, W2)
        assert [s["block"] for s in p1.stats["steps"]] == [s["block"] for s in p2.stats["steps"]]


def test_concurrent_w_steps_as_dask_tasks_equal_the_serial_loop(client):
    from cvx_fenchel.dataparallel import w_steps_concurrent
    net, X, Y, _ = _problem(widths=(8, 6))
    cfg = TrainConfig(algorithm="full", dtype="float64", backend="numpy")
    w = net.init_weights(np.random.default_rng(1))
    Xs, Yc = bcd.feed_forward(net, w, X, Y, np)
    w1, _, o1 = bcd.w_steps_serial(net, cfg, w, Xs, Yc, w)
    w2, _, o2 = w_steps_concurrent(net, cfg, w, Xs, Yc, w, client=client)
    for (W, b), (W2, b2) in zip(w1, w2):
        assert _rel(W, W2) <= 1e-12 and _rel(b, b2) <= 1e-12
    assert [(l, o.n_iter, o[2]) for l, o, _ in o1] == [(l, o.n_iter, o[2]) for l, o, _ in o2]


class _NoWork:
    """A stand-in client: any use of it is a failure (errors must come before any work)."""

    def submit(self, *a, **k):
        raise AssertionError("work started")

    def scheduler_info(self, *a, **k):
        raise AssertionError("work started")


def test_bad_arguments_are_refused_before_any_work():
    pytest.importorskip("dask.distributed")
    from cvx_fenchel.dataparallel import DataParallelTrainer, fit_full_batch_parallel
    net, X, Y, y = _problem()
    with pytest.raises(InputError, match="dask.distributed.Client"):
        DataParallelTrainer(net, object(), 2)
    with pytest.raises(InputError, match="n_shards"):
        DataParallelTrainer(net, _NoWork(), 0)
    with pytest.raises(InputError, match="more than the 200 training samples"):
        fit_full_batch_parallel(net, X, Y, _NoWork(), 201)
    with pytest.raises(InputError, match="sample space"):  # 20 inputs, 21 samples: the n x n kernel
        fit_full_batch_parallel(net, X[:21], Y[:21], _NoWork(), 2)
    with pytest.raises(InputError, match="checkpoints"):
        DataParallelTrainer(net, _NoWork(), 2).fit(X, Y, checkpoint_dir="/nonexistent")
    with pytest.raises(InputError, match="NumPy on the workers"):
        DataParallelTrainer(net, _NoWork(), 2, backend="cupy")
    conv = Network((8, 8, 1), [Layer("conv2d", c_out=2, kernel=3), Layer("flatten"),
                               Layer("dense", n_out=3, activation=None)])
    with pytest.raises(InputError, match="dense layers only"):
        DataParallelTrainer(conv, _NoWork(), 2)


def test_without_dask_the_error_names_the_extra(monkeypatch):
    from cvx_fenchel import dataparallel
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails
    with pytest.raises(InputError, match=r'pip install "\.\[distributed\]"') as err:
        dataparallel.require_dask()
    assert "\n" not in str(err.value)
