r"""``bench mlp`` and ``bench lenet5``: the Fenchel trainer and the Adam baseline timed in one run.

Fenchel: a :class:`~cvx_fenchel.trainer.BCDTrainer` built from the ``original`` preset of the
architecture (Fig. 2 / Fig. 3 settings: batch 500, float32, caps 50 X / 30 W, tol 1e-4), the
training samples in the order of epoch 1; batch 0 is a warm-up (timed, reported apart), batches
``1..N`` are timed by the trainer's own record (``train_batch``: feed-forward, the BCD pass, the
batch record). Every step's seconds and inner iterations come from the batch records
(:func:`cvx_fenchel.bcd.bcd_pass`, ``steps``).

Adam: :class:`~cvx_fenchel.baselines.torch_nets.TorchNetClassifier` (torch, same architecture,
float32, Adam lr 1e-3, torch CPU for the NumPy backend, CUDA for CuPy) at the paper's batch size
(100) and at Fenchel's (500); each fits ``warm-up + N`` batches of one epoch and the per-batch
``time`` records after the warm-up are used (they include the loss and accuracy read-back).

FLOPs (nominal, per inner iteration of a step on layer ``l``): one forward of the layer's map and
one adjoint, as GEMMs: with ``P`` outputs per sample (``prod(out_shape)``) and ``K`` weights per
output (``prod(weight_shape[:-1])``, the fan-in), forward ``2 m P K + m P`` (bias), adjoint
``2 m P K`` (+ ``m P`` for the bias gradient of a W-step). Elementwise work, the per-step set-up
(Gram matrices, factorisations) and weightless maps (pooling) are not counted, so achieved GFLOP/s
= nominal FLOPs / step seconds measures how far a step is from "two GEMMs per iteration".
The float32 GEMM peak is the best of a few ``n x n`` matmuls timed in the same run.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

import numpy as np

from ..backend import check_scalar, get_backend, to_numpy
from ..config import TrainConfig, describe, preset
from ..errors import InputError, UnknownNameError
from ..trainer import BCDTrainer
from .syncs import counting, instrument, sync_numpy

__all__ = ["WORKLOADS", "ARCHS", "DEFAULT_BATCHES", "ADAM_BATCH_SIZES", "gemm_peak",
           "step_iteration_flops", "count_batch_syncs", "bench_fenchel", "bench_adam",
           "time_to_accuracy", "load_bench_data"]

WORKLOADS = ("mlp", "lenet5", "steps")
ARCHS = {"mlp": "784-300-10", "lenet5": "lenet5"}
#: Timed batches when ``--batches`` is not given (``bench mlp`` well under a minute on 2 cores).
DEFAULT_BATCHES = {"mlp": 20, "lenet5": 3}
#: Adam batch sizes: the paper's (100) and the Fenchel trainer's (500).
ADAM_BATCH_SIZES = (100, 500)
ADAM_TIMED_BATCHES = 50
ADAM_WARMUP = 3


# --------------------------------------------------------------------------------------------
# machine peak and FLOP model

def gemm_peak(xp: Any = np, n: int = 2048, repeats: int = 5) -> dict:
    """Best-of-``repeats`` float32 ``n x n`` matmul: ``{"n", "dtype", "seconds", "gflops"}``."""
    rng = np.random.default_rng(0)
    A = xp.asarray(rng.standard_normal((n, n)), dtype=xp.float32)
    B = xp.asarray(rng.standard_normal((n, n)), dtype=xp.float32)
    sync = _synchronizer(xp)
    A @ B
    sync()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        A @ B
        sync()
        best = min(best, time.perf_counter() - t0)
    return {"n": n, "dtype": "float32", "repeats": repeats, "seconds": best,
            "gflops": 2.0 * n ** 3 / best / 1e9}


def _synchronizer(xp: Any) -> Callable[[], None]:
    if xp is np:
        return lambda: None
    return lambda: xp.cuda.Stream.null.synchronize()


def step_iteration_flops(layer: Any, m: int, kind: str) -> int:
    """Nominal FLOPs of one inner iteration of the ``kind`` (``"x"`` or ``"w"``) step on the lifted
    ``layer`` with ``m`` samples (module docstring): ``4 m P K + m P`` (X), ``4 m P K + 2 m P`` (W)."""
    if kind not in ("x", "w"):
        raise InputError(f"kind must be 'x' or 'w', got {kind!r}")
    P = math.prod(layer.out_shape)
    K = math.prod(layer.weight_shape[:-1])
    return 4 * m * P * K + (2 if kind == "w" else 1) * m * P


# --------------------------------------------------------------------------------------------
# data

def load_bench_data(arch: str, data_dir: str | None) -> dict:
    """MNIST in [0, 1], float32: flat rows for dense archs, ``(m, 32, 32, 1)`` (zero-padded) for
    LeNet-5; one-hot ``Y`` and labels ``y`` for train and test."""
    from ..datasets import load_mnist
    from ..network import is_lenet5
    conv = is_lenet5(arch)
    Xtr, ytr, Xte, yte = load_mnist(data_dir, normalize=True, flatten=not conv)
    prep = (lambda X: np.pad(X.reshape(-1, 28, 28, 1), ((0, 0), (2, 2), (2, 2), (0, 0)))) if conv \
        else (lambda X: X)
    Xtr, Xte = (np.ascontiguousarray(prep(X), dtype=np.float32) for X in (Xtr, Xte))
    eye = np.eye(10, dtype=np.float32)
    return {"X": Xtr, "Y": eye[ytr], "y": ytr.astype(np.int64), "X_test": Xte, "y_test": yte.astype(np.int64),
            "source": data_dir or "embedded MNIST subset", "n_train": len(Xtr), "n_test": len(Xte)}


# --------------------------------------------------------------------------------------------
# host synchronisations

def count_batch_syncs(config: TrainConfig, weights: list, X0: np.ndarray, Y: np.ndarray,
                      y: np.ndarray | None = None) -> dict:
    """Host synchronisations of one ``train_batch`` from ``weights`` on ``(X0, Y, y)``, counted on
    the CPU with the instrumented namespace (:mod:`cvx_fenchel.bench.syncs`); the iterates are
    those of the NumPy run. Returns :meth:`SyncCounter.summary` plus the batch's relaxed
    objective (to tie the count to the batch it was made on)."""
    net = config.network()
    host = [(np.asarray(to_numpy(W)), np.asarray(to_numpy(b))) for W, b in weights]
    tr = BCDTrainer(net, config.replace(backend="numpy"), weights=instrument(host), xp=sync_numpy)
    args = [instrument(np.asarray(to_numpy(a))) for a in (X0, Y)]
    yy = None if y is None else instrument(np.asarray(to_numpy(y)))
    with counting() as c:
        rec = tr.train_batch(*args, yy)
    return {**c.summary(), "relaxed_objective": float(rec["relaxed_objective"])}


# --------------------------------------------------------------------------------------------
# Fenchel

def _block_table(records: list, network: Any, m: int) -> dict:
    """Per block (``X2``, ``W0``, ...): seconds per batch, inner iterations (mean, max, fraction
    at the cap), method, nominal FLOPs per iteration and achieved GFLOP/s."""
    blocks: dict[str, dict] = {}
    for rec in records:
        for st in rec.get("steps", []):
            b = blocks.setdefault(st["block"], {"kind": st["kind"], "layer": st["layer"], "seconds": [],
                                                "n_iter": [], "max_iter": st.get("max_iter"),
                                                "methods": set()})
            b["seconds"].append(st["seconds"])
            if st.get("n_iter") is not None:
                b["n_iter"].append(st["n_iter"])
            if st.get("method"):
                b["methods"].add(st["method"])
    n = max(len(records), 1)
    out = {}
    for name, b in blocks.items():
        its, cap = b["n_iter"], b["max_iter"]
        fl = step_iteration_flops(network.layers[b["layer"]], m, b["kind"])
        total_flops = fl * sum(its)
        sec = sum(b["seconds"])
        out[name] = {"kind": b["kind"], "layer": b["layer"], "seconds_per_batch": sec / n,
                     "n_iter_mean": float(np.mean(its)) if its else None,
                     "n_iter_max": int(max(its)) if its else None, "max_iter": cap,
                     "at_cap_fraction": (sum(i >= cap for i in its) / len(its)) if its and cap else None,
                     "methods": sorted(b["methods"]), "flops_per_iter": fl,
                     "gflops": total_flops / sec / 1e9 if sec > 0 else None}
    return out


def bench_fenchel(config: TrainConfig, data: dict, batches: int, *, xp: Any = np,
                  count_syncs: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Time ``train_batch`` of a trainer built from ``config`` on batches ``1..batches`` of epoch 1
    after the warm-up batch 0; count the host synchronisations of batch 1 (from the same weights,
    so on the same iterates). Returns the ``fenchel`` part of the bench JSON."""
    say = log or (lambda s: None)
    bs = config.batch_size
    n = data["X"].shape[0]
    if (batches + 1) * bs > n:
        raise InputError(f"{batches} timed batches + 1 warm-up of {bs} need {(batches + 1) * bs} "
                         f"training samples; the data have {n}")
    net = config.network()
    tr = BCDTrainer(net, config, xp=xp)
    order = tr.epoch_order(0, n)
    X, Y, y = (xp.asarray(data[k]) for k in ("X", "Y", "y"))
    idx = [order[k * bs:(k + 1) * bs] for k in range(batches + 1)]

    def batch(k):
        ii = xp.asarray(idx[k])
        return tr.train_batch(X[ii], Y[ii], y[ii])

    say(f"fenchel: warm-up batch (batch {bs})")
    warm = batch(0)
    weights_before = [(to_numpy(W).copy(), to_numpy(b).copy()) for W, b in tr.weights]
    recs = []
    for k in range(1, batches + 1):
        recs.append(batch(k))
        say(f"fenchel: batch {k}/{batches}: {recs[-1]['time']:.3f} s")
    times = [r["time"] for r in recs]
    per_batch = float(np.mean(times))
    n_batches = -(-n // bs)
    tx, tw = (float(np.mean([r[k] for r in recs])) for k in ("time_x", "time_w"))
    blocks = _block_table(recs, net, bs)
    w_flops = sum(b["flops_per_iter"] * (b["n_iter_mean"] or 0) for b in blocks.values() if b["kind"] == "w")
    out = {"arch": config.arch if isinstance(config.arch, str) else "custom", "batch_size": bs,
           "dtype": config.dtype, "settings": describe(config), "config": config.to_dict(),
           "warmup_seconds": warm["time"], "timed_batches": batches, "batch_seconds": times,
           "seconds_per_batch": per_batch, "seconds_per_batch_min": float(min(times)),
           "batches_per_epoch": n_batches, "seconds_per_epoch_extrapolated": per_batch * n_batches,
           "split_seconds_per_batch": {"X-steps": tx, "W-steps": tw,
                                       "other (feed-forward, batch record)": per_batch - tx - tw},
           "blocks": blocks, "w_steps_gflops": w_flops / tw / 1e9 if tw > 0 else None,
           "relaxed_objective_batch1": float(recs[0]["relaxed_objective"])}
    if count_syncs:
        say("fenchel: counting host synchronisations of timed batch 1")
        k = 1
        ii = idx[k]
        out["host_syncs"] = count_batch_syncs(config, weights_before, data["X"][ii], data["Y"][ii],
                                              data["y"][ii])
        out["host_syncs_per_batch"] = out["host_syncs"]["total"]
    return out


# --------------------------------------------------------------------------------------------
# Adam

def _adam_model(arch: str, batch_size: int, device: str, seed: int, epochs: int = 1, **kw: Any):
    try:
        from ..baselines.torch_nets import TorchNetClassifier
    except ImportError as exc:  # pragma: no cover - torch is an optional extra
        raise UnknownNameError(f"bench needs PyTorch for the Adam baseline (pip install "
                               f"'cvx-fenchel[baselines]'): {exc}") from None
    return TorchNetClassifier(arch=arch, optimizer="adam", epochs=epochs, batch_size=batch_size,
                              seed=seed, device=device, dtype="float32", **kw)


def bench_adam(arch: str, data: dict, batch_size: int, *, batches: int = ADAM_TIMED_BATCHES,
               device: str = "cpu", seed: int = 0, warmup: int = ADAM_WARMUP) -> dict:
    """Seconds per Adam batch: one epoch's fit over ``warmup + batches`` batches, the records
    after the warm-up averaged (fewer if the data are short)."""
    n = data["X"].shape[0]
    total = min(warmup + batches, n // batch_size)
    if total <= warmup:
        raise InputError(f"Adam batch {batch_size}: {n} samples give {n // batch_size} batches, "
                         f"fewer than warm-up {warmup} + 1")
    clf = _adam_model(arch, batch_size, device, seed)
    m = total * batch_size
    clf.fit(data["X"][:m], data["y"][:m])
    times = [r["time"] for r in clf.history_.batches[warmup:]]
    per_batch = float(np.mean(times))
    n_batches = -(-n // batch_size)
    import torch
    return {"batch_size": batch_size, "device": device, "timed_batches": len(times),
            "warmup_batches": warmup, "seconds_per_batch": per_batch,
            "seconds_per_batch_min": float(min(times)), "batches_per_epoch": n_batches,
            "seconds_per_epoch_extrapolated": per_batch * n_batches,
            "torch_threads": torch.get_num_threads(), "lr": 1e-3}


# --------------------------------------------------------------------------------------------
# time to accuracy

def time_to_accuracy(config: TrainConfig, data: dict, target: float, *, xp: Any = np,
                     max_epochs: int = 5, device: str = "cpu", adam_batch_size: int = 100,
                     seed: int = 0, log: Callable[[str], None] | None = None) -> dict:
    """Train Fenchel (batches of ``config.batch_size``) and Adam (``adam_batch_size``) from scratch
    until the test accuracy (feed-forward, whole test set) reaches ``target``, evaluating every
    ``config.batch_size`` training samples (evaluation not timed); at most ``max_epochs`` epochs.
    Returns the training seconds to the target (None if not reached), samples seen, the
    accuracy reached, and the ratio Fenchel/Adam."""
    say = log or (lambda s: None)
    if not 0 < target <= 1:
        raise InputError(f"--to-accuracy must be in (0, 1], got {target}")
    net = config.network()
    tr = BCDTrainer(net, config, xp=xp)
    X, Y, y = (xp.asarray(data[k]) for k in ("X", "Y", "y"))
    Xt, yt = xp.asarray(data["X_test"]), xp.asarray(data["y_test"])
    n, bs = X.shape[0], config.batch_size
    fen = {"seconds": None, "samples": None, "accuracy": None, "epochs_max": max_epochs}
    elapsed, seen, best = 0.0, 0, 0.0
    for epoch in range(max_epochs):
        order = tr.epoch_order(epoch, n)
        for k in range(-(-n // bs)):
            ii = xp.asarray(order[k * bs:(k + 1) * bs])
            rec = tr.train_batch(X[ii], Y[ii], y[ii])
            elapsed += rec["time"]
            seen += int(ii.shape[0])
            acc = net.accuracy(Xt, yt, tr.weights)
            best = max(best, acc)
            if acc >= target:
                fen.update(seconds=elapsed, samples=seen, accuracy=acc)
                break
        else:
            continue
        break
    fen.update(best_accuracy=best, trained_seconds=elapsed)
    say(f"to-accuracy: fenchel {'reached' if fen['seconds'] is not None else 'did not reach'} "
        f"{target} ({elapsed:.1f} s)")
    arch = config.arch
    clf = _adam_model(arch, adam_batch_size, device, seed, epochs=max_epochs,
                      eval_every=max(1, bs // adam_batch_size))
    clf.fit(data["X"], data["y"], X_test=data["X_test"], y_test=data["y_test"])
    adam = {"seconds": None, "samples": None, "accuracy": None, "batch_size": adam_batch_size,
            "epochs_max": max_epochs}
    accs = [r for r in clf.history_.batches if r.get("test_accuracy") is not None and r["batch"] > 0]
    for r in accs:
        if r["test_accuracy"] >= target:
            adam.update(seconds=r["elapsed"], samples=r["batch"] * adam_batch_size,
                        accuracy=r["test_accuracy"])
            break
    adam["best_accuracy"] = max((r["test_accuracy"] for r in accs), default=None)
    say(f"to-accuracy: adam {'reached' if adam['seconds'] is not None else 'did not reach'} {target}")
    ratio = fen["seconds"] / adam["seconds"] if fen["seconds"] is not None and adam["seconds"] else None
    return {"target": target, "evaluated_every_samples": bs, "fenchel": fen, "adam": adam,
            "ratio_fenchel_over_adam": ratio}


def resolve_backend(backend: str) -> tuple[Any, str]:
    """``(xp, torch device)`` of ``--backend``: NumPy with torch CPU, CuPy with torch CUDA."""
    if backend not in ("numpy", "cupy"):
        raise UnknownNameError(f"unknown backend {backend!r}; choose one of ('numpy', 'cupy')")
    return get_backend(backend), "cpu" if backend == "numpy" else "cuda"


def fenchel_bench_config(workload: str, *, arch: str | None = None, batch_size: int | None = None,
                         seed: int = 0, backend: str = "numpy", tol: float | None = None) -> TrainConfig:
    """The preset config of a workload (``original`` for 784-300-10 and LeNet-5; ``auto`` picks
    ``plain`` for another ``arch``, a test's small network); ``tol``: the X- and W-step
    tolerance instead of the preset's (``--tol``: the iteration-economy setting)."""
    arch = arch or ARCHS[workload]
    kw = {} if batch_size is None else {"batch_size": batch_size}
    if tol is not None:
        kw.update(tol_x=check_scalar(tol, "tol", low=0.0, low_inclusive=False), tol_w=tol)
    return preset("auto", arch=arch, seed=seed, backend=backend, dtype="float32", **kw)


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None
