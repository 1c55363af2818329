r"""Table 1 of the lifted-networks report (Askari, Negiar, Sambharya, El Ghaoui; UCB/EECS-2021-218).

``python -m cvx_fenchel.table1 --data-dir DIR --out OUT [--seeds 0 1 ...] [--resume]`` trains the
grid of the report's Table 1 on MNIST and writes, as each cell finishes,

* ``OUT/results.json`` -- ``{"settings", "lambda", "data_dir", "machine", "commit", "rows"}`` (the
  last run's data, machine and commit); one row per cell ``{arch, lr, init, seed, test_accuracy,
  train_accuracy, seconds, command, config, commit, machine, ...}`` (``init`` is ``"lnn"`` for the
  lifted model itself, whose ``lr`` is null);
* ``OUT/table.md`` -- :func:`table` of the rows: mean +- 2 std over seeds per
  (architecture, learning rate, column), the report's number beside each;
* ``OUT/lifted/<arch>-seed<k>.npz`` -- the trained lifted model's weights, the starting point of
  NN[Lifted] (run output, never committed);
* ``OUT/lambda.json`` -- with ``--choose-lambda``: the search's grid, scores and choice.

The grid: architectures (hidden widths) 300, 300-100, 500-150, 500-200-100, 400-200-100-50
(input 784, output 10); learning rates 1e-5 and 1e-6; columns ``lnn`` (the lifted model,
"Our Model", independent of the learning rate, so one cell per architecture and seed serves both
halves of the table), ``normal``, ``xavier``, ``var_scale``, ``lifted`` (NN[x]); seeds 0-4.

Settings, read from the report (section 7.1 and Table 1's caption) -- and where it is silent,
what is done here and why:

* Data: the official 60,000/10,000 split; pixels scaled to [0, 1] (``X / 255``), nothing else
  (the report says nothing; [0, 1] is what TensorFlow's MNIST reader of the time returned).
* Standard networks: ReLU hidden layers, softmax cross-entropy, "trained for 17 epochs using
  mini-batch gradient descent" with a constant learning rate (1e-5 or 1e-6), batch 100 (the
  caption of Fig. 1). Plain SGD, no momentum. **Loss reduction: sum over the batch.** The
  report does not say; its learning rates decide it. Measured on full MNIST (NN[Xavier] 300,
  lr 1e-5, seed 0, 17 epochs; the report 0.923): the batch *mean* reaches 0.190 test accuracy;
  the batch sum (the mean at a 100x larger rate; the TF code of the sister paper sums its
  cross-entropy, ``reference/original_settings.md``) 0.893. Two variants overshoot: the sum at
  lr 1e-4 gives 0.941, the sum on raw 0..255 pixels at lr 1e-5 gives 0.941 (``table1`` keeps the
  report's rates and [0, 1] pixels; ``--pixels raw --out OUT/table1-raw-pixels`` runs the grid on
  0..255 pixels as a gap study, read by ``cvx-fenchel report`` as a variant). ``rho = 1e-3`` "held constant throughout all training
  procedures", so the networks minimise ``sum_batch CE + rho sum_l ||W_l||_F^2`` (weights only;
  ``weight_decay = 2 rho`` in :class:`~cvx_fenchel.baselines.TorchNetClassifier`). float32.
* Initialisations (caption): Normal ``N(0, sigma^2 = 0.1)``; Xavier (Glorot uniform, TF's
  default); variance scaling ``N(0, 2 / fan_in)`` (TF's ``variance_scaling_initializer``
  defaults); biases 0.1 -- except Lifted, whose weights *and* biases are the trained lifted
  model's (:func:`cvx_fenchel.baselines.torch_nets.init_weights`).
* Lifted model: model (11) with the simplex output step (15) / Appendix A, trained by the
  block-coordinate descent of section 6 on the full training set (full batch;
  :class:`~cvx_fenchel.baselines.LNNClassifier`, ``loss="cross_entropy"``), ``rho = 1e-3``, one
  ``lambda`` for every layer (the report's rescaling argument), float64. Its accuracy is the
  feed-forward rule of the trained weights (the report: "applying the standard feedforward rule
  ... is often enough"). **Sweeps: 20** (the report gives no count; on the embedded subset,
  architecture 300, the test accuracy is flat from sweep 3-5 on for lambda = 0.1 and 1 (0.85)
  and reaches the same 0.85 at sweep 17 for lambda = 10; 20 is past that at a bearable cost).
  Its initial weights come from its seed (``N(0, 1/n_in)``, zero biases). It is trained on all
  training rows (the validation rows of the lambda search included).
* ``lambda``: the report "selected [it] using Bayesian Optimization" and gives no value. Here:
  ``--lam`` fixes it; ``--choose-lambda`` runs :func:`choose_lambda`, a grid search over
  lambda in {0.01, 0.1, 1, 10, 100} of the lifted model 300 (20 sweeps) trained on 10,000 rows
  and scored on 10,000 other rows held out from the *training* set (never the test set); the
  choice serves every architecture. It is recorded in ``OUT/lambda.json`` and reused by
  ``--resume``; with neither flag, an existing ``lambda.json`` is used, else ``lambda = 1``
  (stated in the table as "default, not searched"). The search runs just before the first
  lifted-model cell, so the random-initialisation cells (independent of lambda) come first.
* Spread: "mean +- 2 std over 5 runs" with ``std = numpy.std`` (``ddof = 0``; the report does not
  say which, and numpy's default is what an analysis script of the time most likely used).
* Seeds: seed ``k`` seeds the initial weights and the batch order of every network of run ``k``,
  and the lifted model's initial weights; NN[Lifted] of seed ``k`` starts from lifted model ``k``.
* Reported per cell: test accuracy on the 10,000 test images and train accuracy on all training
  rows, both of the final weights (argmax of the network output); seconds of the whole cell.
  ``--n-train N`` (first N training rows) and small ``--epochs``/``--sweeps`` exist for smoke
  tests only.

A network whose training diverges (NaN loss: e.g. raw pixels at lr 1e-5) is a result, not an
error: listed under ``"diverged"`` in ``results.json``, no row; ``--resume`` does not retry it.
Resuming: every row records its ``config`` (the settings that decide its number); ``--resume``
skips a cell whose row exists with the same config (and, for the lifted model, whose weights
file still exists). A killed cell starts again from its beginning (no checkpoint inside a cell:
a network takes minutes, a lifted model 5-40 minutes on one core by ``--dry-run``'s estimate).
Without ``--resume`` the selected cells run again and replace their rows; other rows are kept.

On a Dask cluster (``--workers N``: a local cluster; ``--scheduler ADDRESS``: a running one;
:mod:`cvx_fenchel.distributed`) every cell, and the lambda search, is a task
(:mod:`cvx_fenchel.table1_cluster`); NN[Lifted] waits for its lifted model, the lifted cells for
the search. The rows equal a serial run's, in the same order; ``OUT`` (and ``--data-dir``) must
be on a file system every worker sees.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .baselines.lnn import LNNClassifier
from .baselines.torch_nets import TorchNetClassifier
from .datasets import load_mnist
from .errors import CvxFenchelError, InputError, UnknownNameError
from .history import atomic_write_bytes
from .machine import run_place

__all__ = ["ARCHS", "INITS", "LRS", "PAPER", "Settings", "cells", "choose_lambda", "run",
           "table", "main"]

#: The report's architectures: name -> hidden widths (input 784, output 10).
ARCHS = {"300": (300,), "300-100": (300, 100), "500-150": (500, 150),
         "500-200-100": (500, 200, 100), "400-200-100-50": (400, 200, 100, 50)}
LRS = (1e-5, 1e-6)
#: Columns: the lifted model itself ("lnn") and the standard networks' initialisations.
INITS = ("lnn", "normal", "xavier", "var_scale", "lifted")
RANDOM = ("normal", "xavier", "var_scale")
COLUMN_NAMES = {"lnn": "lifted model", "normal": "NN[Normal]", "xavier": "NN[Xavier]",
                "var_scale": "NN[var-scale]", "lifted": "NN[Lifted]"}
LAMBDA_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
DEFAULT_LAM = 1.0

_P = {  # (mean, 2 std) per arch: columns lnn, normal, xavier, var_scale, lifted
    1e-5: {"300": "898 5 915 4 923 5 924 3 962 3", "300-100": "875 5 919 3 932 3 931 3 969 4",
           "500-150": "865 5 927 3 936 4 935 5 970 5",
           "500-200-100": "853 3 927 1 939 5 935 3 958 8",
           "400-200-100-50": "770 15 919 5 938 3 936 6 919 30"},
    1e-6: {"300": "898 5 800 11 836 8 844 11 875 22", "300-100": "875 5 792 13 838 7 842 9 899 21",
           "500-150": "865 5 824 7 850 4 858 2 890 18",
           "500-200-100": "853 3 821 17 857 7 848 11 926 53",
           "400-200-100-50": "770 15 751 45 838 17 815 20 959 3"},
}
#: The report's Table 1, ``PAPER[(arch, lr, init)] = (mean, 2 std)`` (reference/paper_results.md).
PAPER = {(a, lr, init): (int(v[2 * i]) / 1000, int(v[2 * i + 1]) / 1000)
         for lr, rows in _P.items() for a, s in rows.items() for v in [s.split()]
         for i, init in enumerate(INITS)}


@dataclass(frozen=True)
class Settings:
    """Everything that decides a cell's number besides (arch, lr, init, seed)."""

    epochs: int = 17            # standard networks (report: 17)
    batch_size: int = 100       # report: 100
    reduction: str = "sum"      # see the module docstring
    rho: float = 1e-3           # report: 1e-3, all layers, all models
    nn_dtype: str = "float32"
    sweeps: int = 20            # lifted model BCD sweeps (report: silent)
    lam: float = DEFAULT_LAM
    data: str = "subset"        # "full" (official files) or "subset" (embedded)
    n_train: int | None = None  # first n_train training rows only (smoke tests); None = all
    pixels: str = "unit"        # "unit" (X / 255, the default) or "raw" (0..255: a gap study)

    def _pixels(self) -> dict:  # recorded only when not the default (older rows stay comparable)
        return {} if self.pixels == "unit" else {"pixels": self.pixels}

    def nn_config(self) -> dict:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "reduction": self.reduction,
                "rho": self.rho, "dtype": self.nn_dtype, "optimizer": "sgd", "data": self.data,
                "n_train": self.n_train, **self._pixels()}

    def lnn_config(self) -> dict:
        return {"sweeps": self.sweeps, "lam": self.lam, "rho": self.rho, "data": self.data,
                "n_train": self.n_train, **self._pixels()}

    def config(self, init: str) -> dict:
        """The row ``config`` of a cell of column ``init`` (NN[Lifted] depends on both), as JSON
        reads it back (lists, not tuples), so it compares equal to a row's recorded one."""
        cfg = self.lnn_config() if init == "lnn" else self.nn_config()
        if init == "lifted":
            cfg = {**cfg, "lifted": self.lnn_config()}
        return json.loads(json.dumps(cfg))


# ------------------------------------------------------------------------------- the grid


def _names(values: Any, known: tuple, what: str) -> list[str]:
    vals = [str(v) for v in (values if values is not None else known)]
    bad = [v for v in vals if v not in known]
    if bad or not vals:
        raise UnknownNameError(f"unknown {what} {bad or vals}; choose from {list(known)}")
    return list(dict.fromkeys(vals))


def _check_selection(seeds: Any, archs: Any, inits: Any, lrs: Any) -> tuple:
    archs = _names(archs, tuple(ARCHS), "architecture(s)")
    inits = _names(inits, INITS, "init(s)")
    seeds = list(range(5)) if seeds is None else list(seeds)
    if not seeds or any(isinstance(s, bool) or int(s) != s or int(s) < 0 for s in seeds):
        raise InputError(f"seeds must be non-negative integers, got {seeds}")
    lrs = list(LRS) if lrs is None else [float(x) for x in lrs]
    if not lrs or any(not np.isfinite(x) or x <= 0 for x in lrs):
        raise InputError(f"learning rates must be positive, got {lrs}")
    return [int(s) for s in seeds], archs, inits, lrs


def cells(seeds: Any = None, archs: Any = None, inits: Any = None, lrs: Any = None) -> list[tuple]:
    """The ``(arch, lr, init, seed)`` cells to run, in run order (``lr`` None for ``lnn``).

    First the random-initialisation networks (minutes each, independent of lambda) of every
    seed and architecture, then per seed and architecture the lifted model and its NN[Lifted]
    networks. Asking for ``lifted`` adds the ``lnn`` cell it starts from. Unknown names raise
    :class:`UnknownNameError`.
    """
    seeds, archs, inits, lrs = _check_selection(seeds, archs, inits, lrs)
    out = [(a, lr, i, s) for s in seeds for a in archs for lr in lrs for i in RANDOM if i in inits]
    for s in seeds:
        for a in archs:
            if "lnn" in inits or "lifted" in inits:
                out.append((a, None, "lnn", s))
            out += [(a, lr, "lifted", s) for lr in lrs if "lifted" in inits]
    return out


# ------------------------------------------------------------------------------- training


PIXELS = ("unit", "raw")  #: ``--pixels``: the inputs as the report's networks may have seen them


def _data(data_dir: str | None, n_train: int | None, pixels: str = "unit") -> tuple:
    """Training and test rows; pixels in [0, 1] (``"unit"``) or the file's 0..255 (``"raw"``)."""
    if pixels not in PIXELS:
        raise InputError(f"pixels must be one of {PIXELS}, got {pixels!r}")
    Xtr, ytr, Xte, yte = load_mnist(data_dir, normalize=pixels == "unit", flatten=True)
    Xtr, Xte = (np.asarray(X, dtype=np.float64) for X in (Xtr, Xte)) if pixels == "raw" else (Xtr, Xte)
    if n_train is not None:
        Xtr, ytr = Xtr[:n_train], ytr[:n_train]
    return Xtr, ytr, Xte, yte


def lifted_model(arch: str, seed: int, st: Settings, X: np.ndarray, y: np.ndarray,
                 n_iter: int | None = None, lam: float | None = None) -> LNNClassifier:
    """The report's lifted model (cross-entropy, simplex output step), fitted by full-batch BCD."""
    return LNNClassifier(hidden=ARCHS[arch], loss="cross_entropy",
                         lam=st.lam if lam is None else lam, rho=st.rho,
                         n_iter=st.sweeps if n_iter is None else n_iter, seed=seed,
                         backend="numpy").fit(X, y)


def network(arch: str, lr: float, init: str, seed: int, st: Settings,
            init_weights: list | None = None) -> TorchNetClassifier:
    """The standard network of a cell (not fitted): plain SGD, summed cross-entropy + rho||W||^2."""
    return TorchNetClassifier(f"784-{arch}-10", optimizer="sgd", lr=lr, epochs=st.epochs,
                              batch_size=st.batch_size, loss="cross_entropy", init=init,
                              weight_decay=2 * st.rho, seed=seed, init_weights=init_weights,
                              dtype=st.nn_dtype, reduction=st.reduction)


def lifted_path(out: Path, arch: str, seed: int) -> Path:
    return Path(out) / "lifted" / f"{arch}-seed{seed}.npz"


def save_lifted(path: Path, weights: list, config: dict) -> None:
    buf = io.BytesIO()
    arrays = {f"{k}{l}": a for l, (W, b) in enumerate(weights) for k, a in (("W", W), ("b", b))}
    np.savez(buf, config=np.array(json.dumps(config, sort_keys=True)), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_lifted(path: Path, config: dict | None = None) -> list | None:
    """The weights saved by :func:`save_lifted`; None when missing or made with another config."""
    if not Path(path).is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if config is not None and json.loads(str(z["config"])) != json.loads(json.dumps(config)):
            return None
        n = sum(k.startswith("W") for k in z.files)
        return [(z[f"W{l}"].copy(), z[f"b{l}"].copy()) for l in range(n)]


def _accuracy(model: Any, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(X) == y))


def _run_cell(cell: tuple, st: Settings, data: tuple, out: Path) -> dict:
    arch, lr, init, seed = cell
    Xtr, ytr, Xte, yte = data
    t0 = time.perf_counter()
    if init == "lnn":
        model = lifted_model(arch, seed, st, Xtr, ytr)
        save_lifted(lifted_path(out, arch, seed), model.weights_, st.lnn_config())
        extra = {"lam": st.lam, "sweeps": st.sweeps}
    else:
        w = None
        if init == "lifted":
            w = load_lifted(lifted_path(out, arch, seed), st.lnn_config())
            if w is None:
                raise InputError(f"no lifted weights for arch {arch} seed {seed} in {out}/lifted "
                                 "(the lnn cell runs first)")
        model = network(arch, lr, init, seed, st, w).fit(Xtr, ytr)
        extra = {"epochs": st.epochs} | ({"lam": st.lam} if init == "lifted" else {})
    return {"arch": arch, "lr": lr, "init": init, "seed": seed, "test_accuracy": _accuracy(model, Xte, yte),
            "train_accuracy": _accuracy(model, Xtr, ytr), "seconds": time.perf_counter() - t0, **extra,
            "config": st.config(init), "n_train": int(Xtr.shape[0]), "n_test": int(Xte.shape[0]),
            **run_place()}


# ------------------------------------------------------------------------------- lambda


def choose_lambda(X: np.ndarray, y: np.ndarray, st: Settings, grid: tuple = LAMBDA_GRID,
                  arch: str = "300", n_search: int = 10_000, seed: int = 0) -> dict:
    """Grid search of ``lambda`` on a validation split of the *training* set (the test set unused).

    A fixed permutation (``default_rng(seed)``) of the ``m`` training rows holds out its first
    ``m // 6`` rows (10,000 of 60,000) for validation; the lifted model of architecture ``arch``
    (seed ``seed``, ``st.sweeps`` sweeps) is trained on the next ``min(n_search, rest)`` rows for
    every ``lambda`` of ``grid``, and the ``lambda`` with the highest validation accuracy
    (feed-forward rule) wins, the smaller on a tie. One ``lambda`` then serves all
    architectures (the report's Bayesian optimisation is replaced by this small search; a
    per-architecture search would cost five times as much).

    Returns a dict ``{"lam", "grid", "val_accuracy", "train_accuracy", "seconds", ...}``.
    """
    grid = tuple(float(g) for g in grid)
    if not grid or any(not np.isfinite(g) or g <= 0 for g in grid):
        raise InputError(f"lambda grid must hold positive numbers, got {grid}")
    m = X.shape[0]
    perm = np.random.default_rng(seed).permutation(m)
    n_val = m // 6
    val, fit = perm[:n_val], perm[n_val:n_val + min(int(n_search), m - n_val)]
    scores, train_acc, secs = {}, {}, {}
    for lam in grid:
        t0 = time.perf_counter()
        model = lifted_model(arch, seed, st, X[fit], y[fit], lam=lam)
        scores[repr(lam)] = _accuracy(model, X[val], y[val])
        train_acc[repr(lam)] = _accuracy(model, X[fit], y[fit])
        secs[repr(lam)] = time.perf_counter() - t0
        print(f"  lambda {lam:g}: validation accuracy {scores[repr(lam)]:.4f} "
              f"({secs[repr(lam)]:.0f} s)", flush=True)
    best = max(grid, key=lambda g: (scores[repr(g)], -g))
    return {"lam": best, "grid": list(grid), "val_accuracy": scores, "train_accuracy": train_acc,
            "seconds": secs, "arch": arch, "seed": seed, "sweeps": st.sweeps, "rho": st.rho,
            "n_val": int(n_val), "n_search_train": int(fit.size), "data": st.data,
            "n_train": st.n_train, "source": "search",
            "rule": "highest validation accuracy of the lifted model (feed-forward rule); "
                    "validation = first m//6 rows of a seeded permutation of the training set"}


# ------------------------------------------------------------------------------- the table


def _fmt(vals: list[float]) -> str:
    v = np.asarray(vals, dtype=float)
    n = "" if v.size == 5 else f" (n={v.size})"
    return f"{v.mean():.4f} ± {2 * v.std():.4f}{n}"


def table(results: list[dict], lam: dict | None = None) -> str:
    """Markdown of the rows in the report's layout: one table per learning rate, rows the
    architectures, columns lifted model / NN[Normal] / NN[Xavier] / NN[var-scale] / NN[Lifted];
    each cell ``mean ± 2 std`` over its seeds (``std`` = ``numpy.std``, ddof 0; ``(n=k)`` when
    not 5 seeds), then ``; paper mean ± 2 std``; ``—`` where nothing ran."""
    groups: dict[tuple, list[float]] = {}
    for r in results:
        for lr in ([r["lr"]] if r["init"] != "lnn" else LRS):
            groups.setdefault((r["arch"], lr, r["init"]), []).append(float(r["test_accuracy"]))
    lrs = sorted({k[1] for k in groups} | set(LRS), reverse=True)
    lam = lam or {}
    how = {"search": "chosen by the grid search of lambda.json on a validation split of the "
                     "training set", "given": "given by --lam"}.get(lam.get("source"),
                                                                     "default, not searched")
    val = lam.get("lam", next((r["lam"] for r in results if "lam" in r), None))
    sweeps = sorted({r["sweeps"] for r in results if "sweeps" in r}) or ["—"]
    epochs = sorted({r["epochs"] for r in results if "epochs" in r}) or ["—"]
    data = sorted({f"{r['n_train']:,}/{r['n_test']:,}" for r in results if "n_train" in r})
    val = "—" if val is None else val
    lines = [f"Table 1 (Askari et al.), MNIST ({', '.join(data) or '—'} train/test rows) test "
             "accuracy: ours mean ± 2 std over seeds (std = numpy.std, ddof 0; n = number of "
             f"seeds when not 5), then the report's. Lifted model: lambda = {val} ({how}), "
             f"rho = 1e-3, full-batch BCD, {'/'.join(map(str, sweeps))} sweeps; networks: "
             f"plain SGD, batch 100, summed cross-entropy + rho ||W||^2, "
             f"{'/'.join(map(str, epochs))} epochs.", ""]
    for lr in lrs:
        lines += [f"Learning rate {lr:g}:", "",
                  "| hidden layers | " + " | ".join(COLUMN_NAMES[i] for i in INITS) + " |",
                  "|---" * (len(INITS) + 1) + "|"]
        for a in ARCHS:
            cellstrs = []
            for i in INITS:
                ours = _fmt(groups[(a, lr, i)]) if (a, lr, i) in groups else "—"
                p = PAPER.get((a, lr, i))
                cellstrs.append(ours + (f"; paper {p[0]:.3f} ± {p[1]:.3f}" if p else ""))
            lines.append(f"| {a} | " + " | ".join(cellstrs) + " |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- the run


def _load_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"rows": []}


def _write(out: Path, results: dict) -> None:
    atomic_write_bytes(out / "results.json", json.dumps(results, indent=1).encode())
    atomic_write_bytes(out / "table.md", table(results["rows"], results.get("lambda")).encode())


def _key(r: dict) -> tuple:
    return (r["arch"], r["lr"], r["init"], r["seed"])


def _command(cell: tuple, st: Settings, data_dir: str | None, out: Path) -> str:
    arch, lr, init, seed = cell
    argv = [sys.executable, "-m", "cvx_fenchel.table1", "--out", str(out), "--seeds", str(seed),
            "--archs", arch, "--inits", init, "--lam", repr(st.lam), "--epochs", str(st.epochs),
            "--sweeps", str(st.sweeps)]
    argv += (["--lrs", repr(lr)] if lr is not None else [])
    argv += (["--data-dir", str(data_dir)] if data_dir is not None else [])
    argv += (["--n-train", str(st.n_train)] if st.n_train is not None else [])
    return shlex.join(argv)


def _probe(todo: list, st: Settings, data: tuple, search: bool) -> tuple[float, list, float]:
    """Seconds per cell from short timed runs, per architecture: 20 SGD batches (after an
    untimed warm-up fit), and three BCD sweeps on at most 5,000 rows of which the third is
    timed (the X-steps' FISTA iterations grow over the first three sweeps, then stay level),
    each scaled linearly to the cell's rows and epochs/sweeps. Also returns the probes' CPU
    seconds per wall second (below 1 when other jobs share the cores)."""
    Xtr, ytr = data[0], data[1]
    m, per, wall, cpu = Xtr.shape[0], {}, 0.0, 0.0
    one = Settings(**{**asdict(st), "epochs": 1})
    network("300", 1e-5, "xavier", 0, one).fit(Xtr[:200], ytr[:200])  # warm-up (torch start-up)
    for a in dict.fromkeys(c[0] for c in todo) | ({"300": None} if search else {}):
        k = min(m, 20 * st.batch_size)
        t0, c0 = time.perf_counter(), time.process_time()
        network(a, 1e-5, "xavier", 0, one).fit(Xtr[:k], ytr[:k])
        per[(a, "nn")] = (time.perf_counter() - t0) / k * m * st.epochs
        k = min(m, 5000)
        h = lifted_model(a, 0, st, Xtr[:k], ytr[:k], n_iter=3).history_.epochs
        per[(a, "lnn")] = h[-1]["time_step"] * st.sweeps * m / k
        wall, cpu = wall + time.perf_counter() - t0, cpu + time.process_time() - c0
    est = [per[(c[0], "lnn" if c[2] == "lnn" else "nn")] for c in todo]
    n_fit = min(10_000, m - m // 6)
    lam_s = per[("300", "lnn")] * len(LAMBDA_GRID) * n_fit / m if search else 0.0
    return lam_s, est, min(1.0, cpu / wall) if wall > 0 else 1.0


def _done(rows: list[dict], c: tuple, st: Settings, out: Path) -> bool:
    """Whether cell ``c`` has a row of the settings ``st`` (and, for the lifted model, its
    weights file): ``--resume`` skips it."""
    mine = [r for r in rows if _key(r) == c]
    cfg = st.config(c[2])
    ok = bool(mine) and mine[-1].get("config") == cfg
    return ok and (c[2] != "lnn" or lifted_path(out, c[0], c[3]).is_file())


def run(out: str | Path, data_dir: str | None = None, *, seeds: Any = None, archs: Any = None,
        inits: Any = None, lrs: Any = None, resume: bool = False, choose: bool = False,
        lam: float | None = None, dry_run: bool = False, epochs: int = 17, sweeps: int = 20,
        n_train: int | None = None, pixels: str = "unit", client=None) -> dict:
    """Run (or with ``dry_run`` list and time) the selected cells; see the module docstring.

    Every name and number is checked before any data is read or any model trained.
    Returns the ``results.json`` contents (``dry_run``: ``{"cells": [...], "estimate_s": ...}``).
    ``client``: a :class:`dask.distributed.Client`; the cells (and the lambda search) run as its
    tasks (:func:`cvx_fenchel.table1_cluster.run_distributed`), the rows the same as a serial
    run's, in the same order.
    """
    if client is not None and dry_run:
        raise InputError("--dry-run probes the cells here and runs nothing: drop "
                         "--workers/--scheduler (give them to the real run)")
    todo_all = cells(seeds, archs, inits, lrs)
    if lam is not None and choose:
        raise InputError("give --lam or --choose-lambda, not both")
    if lam is not None and not (np.isfinite(lam) and lam > 0):
        raise InputError(f"lambda must be positive, got {lam}")
    for v, name in ((epochs, "epochs"), (sweeps, "sweeps")):
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise InputError(f"{name} must be a non-negative integer, got {v}")
    if n_train is not None and (int(n_train) != n_train or n_train < 100):
        raise InputError(f"n_train must be an integer >= 100, got {n_train}")
    out = Path(out)
    results = _load_results(out / "results.json")
    lam_info = None
    if lam is not None:
        lam_info = {"lam": float(lam), "source": "given"}
    elif (out / "lambda.json").is_file() and (resume or not choose):
        lam_info = json.loads((out / "lambda.json").read_text())
    st = Settings(epochs=int(epochs), sweeps=int(sweeps),
                  data="subset" if data_dir is None else "full",
                  n_train=n_train, lam=lam_info["lam"] if lam_info else DEFAULT_LAM, pixels=pixels)
    search = choose and lam_info is None
    data = _data(data_dir, n_train, pixels)

    def done(c: tuple) -> bool:
        return _done(results["rows"], c, st, out)

    # random-initialisation cells do not depend on lambda: known done before any search
    todo = [c for c in todo_all if not (resume and (c[2] in RANDOM or not search) and done(c))]
    if dry_run:
        lam_s, est, cpu = _probe(todo, st, data, search)
        for c, sec in zip(todo, est):
            print(f"  {c[0]:>15}  lr={c[1] if c[1] is not None else '-':<6}  {c[2]:<9}  seed {c[3]}"
                  f"  ~{sec / 60:.1f} min")
        total = lam_s + sum(est)
        print(f"{len(todo)} of {len(todo_all)} cells to run"
              + (f", lambda search ~{lam_s / 60:.0f} min" if search else "")
              + f"; estimated {total / 3600:.1f} h of wall time at this machine's present load "
              f"({total * cpu / 3600:.1f} h of CPU time: the wall time with a core to itself)",
              flush=True)
        return {"cells": todo, "estimate_s": total, "lambda_search_s": lam_s, "cpu_share": cpu}
    out.mkdir(parents=True, exist_ok=True)
    results = {"settings": asdict(st), "lambda": lam_info or {"lam": st.lam, "source": "default"},
               "data_dir": data_dir, **run_place(), "rows": results["rows"], **({"diverged": results["diverged"]} if results.get("diverged") else {})}
    if client is not None:
        from .table1_cluster import run_distributed
        return run_distributed(client, todo, st, search, results, out, data_dir, resume)
    t_start, n_run = time.perf_counter(), 0
    for c in todo:
        if search and c[2] not in RANDOM:  # first lifted cell: choose lambda now
            print(f"choosing lambda on a validation split of the training set, grid "
                  f"{LAMBDA_GRID}", flush=True)
            lam_info = choose_lambda(data[0], data[1], st, grid=LAMBDA_GRID)
            atomic_write_bytes(out / "lambda.json", json.dumps(lam_info, indent=1).encode())
            st, search = Settings(**{**asdict(st), "lam": lam_info["lam"]}), False
            results.update(settings=asdict(st), **{"lambda": lam_info})
            _write(out, results)  # table.md states the chosen lambda from now on
            print(f"lambda = {st.lam:g}", flush=True)
        if resume and c[2] not in RANDOM and done(c):
            continue
        cfg = st.config(c[2])  # diverged before with these settings: would diverge again
        if resume and any(_key(d) == c and d.get("config") == cfg for d in results.get("diverged", [])):
            continue
        try:
            row = _run_cell(c, st, data, out)
        except InputError as exc:  # a network that diverges is a result of its settings (e.g. raw pixels)
            if not str(exc).startswith("training diverged"):
                raise
            results["diverged"] = [d for d in results.get("diverged", []) if _key(d) != c] + [dict(
                zip(("arch", "lr", "init", "seed"), c), error=str(exc), config=cfg, command=_command(c, st, data_dir, out))]
            _write(out, results)
            print(f"[-/{len(todo)}] {c[0]} lr={c[1]} {c[2]} seed {c[3]}: {exc} (under 'diverged')", flush=True)
            continue
        row["command"] = _command(c, st, data_dir, out)
        results["rows"] = [r for r in results["rows"] if _key(r) != c] + [row]
        _write(out, results)
        n_run += 1
        lr = c[1] if c[1] is not None else "-"
        print(f"[{n_run}/{len(todo)}] {c[0]} lr={lr} {c[2]} seed {c[3]}: "
              f"test {row['test_accuracy']:.4f} train {row['train_accuracy']:.4f} "
              f"({row['seconds']:.0f} s; {(time.perf_counter() - t_start) / 60:.1f} min in all)",
              flush=True)
    if search:  # nothing selected needed lambda, but it was asked for
        lam_info = choose_lambda(data[0], data[1], st, grid=LAMBDA_GRID)
        atomic_write_bytes(out / "lambda.json", json.dumps(lam_info, indent=1).encode())
        results.update(settings=asdict(Settings(**{**asdict(st), "lam": lam_info["lam"]})),
                       **{"lambda": lam_info})
    _write(out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cvx_fenchel.table1",
                                description="Table 1 of the lifted-networks report (see the "
                                            "module docstring for every setting).")
    p.add_argument("--data-dir", default=None, help="official MNIST files (default: the "
                   "embedded subset, a smoke test)")
    p.add_argument("--out", default="runs/table1")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default 0 1 2 3 4")
    p.add_argument("--archs", nargs="+", default=None, help=f"default {' '.join(ARCHS)}")
    p.add_argument("--inits", nargs="+", default=None, help=f"default {' '.join(INITS)}")
    p.add_argument("--lrs", nargs="+", type=float, default=None, help="default 1e-5 1e-6")
    p.add_argument("--lam", type=float, default=None, help="fix lambda (no search)")
    p.add_argument("--choose-lambda", action="store_true",
                   help=f"grid search {LAMBDA_GRID} on a validation split of the training set")
    p.add_argument("--epochs", type=int, default=17, help="standard networks (report: 17)")
    p.add_argument("--sweeps", type=int, default=20, help="lifted model BCD sweeps")
    p.add_argument("--n-train", type=int, default=None, help="use the first N training rows")
    p.add_argument("--pixels", choices=PIXELS, default="unit", help="input scale: 'unit' (X / 255, "
                   "the default) or 'raw' (0..255; a gap study, written to its own --out)")
    p.add_argument("--resume", action="store_true", help="skip cells already in results.json")
    p.add_argument("--dry-run", action="store_true", help="list the cells and estimate the time")
    from .distributed import add_cluster_arguments, check_cluster_args, client_from_args, cluster_requested
    add_cluster_arguments(p)
    a = p.parse_args(argv)
    check_cluster_args(a)  # Dask importable, --scheduler usable: before any work
    kw = dict(seeds=a.seeds, archs=a.archs, inits=a.inits, lrs=a.lrs, resume=a.resume,
              choose=a.choose_lambda, lam=a.lam, dry_run=a.dry_run, epochs=a.epochs,
              sweeps=a.sweeps, n_train=a.n_train, pixels=a.pixels)
    if not cluster_requested(a):
        run(a.out, a.data_dir, **kw)
        return 0
    if a.dry_run:
        raise InputError("--dry-run probes the cells here and runs nothing: drop "
                         "--workers/--scheduler (give them to the real run)")
    cells(a.seeds, a.archs, a.inits, a.lrs)  # names checked before a cluster starts
    with client_from_args(a, log=lambda line: print(line, flush=True)) as client:
        run(a.out, a.data_dir, client=client, **kw)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CvxFenchelError as exc:  # one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
