r"""Block-coordinate descent for Fenchel lifted networks (Algorithms 1 and 2 of Gu et al., 2020).

The objective of a batch ``(X_0, Y)`` is the relaxed objective ``J(W, X)`` of
:mod:`cvx_fenchel.network`:

.. math::

    J = \mathcal L(Y, A_L(X_L; W_L) + b_L) + \sum_{l<L} \lambda_l \sum B_l(X_{l+1}, A_l(X_l; W_l) + b_l)
        + \sum_l \rho_l\|(W_l, b_l)\|^2 + \gamma_l \|(W_l, b_l) - (W_l^0, b_l^0)\|^2 .

One BCD *sweep* (:meth:`BCDTrainer.sweep`) runs

1. the X-steps from the last hidden layer back to the first: ``X_L`` by
   :class:`~cvx_fenchel.subproblems.XLast` (``coef_L * Loss + lam_{L-1} B_{L-1}``), then
   ``X_l`` for ``l = L-1, ..., 1`` by :class:`~cvx_fenchel.subproblems.XHidden`
   (``coef_l lam_l B_l + lam_{l-1} B_{l-1}``);
2. the W-steps for every layer: :class:`~cvx_fenchel.subproblems.WLast` (``Loss`` with
   ``coef = 1``) and :class:`~cvx_fenchel.subproblems.WHidden` (``lam_l B_l``), each with its
   ``rho_l`` and ``gamma_l`` and the proximal centre ``W^0``

(``w_first=True`` swaps the two halves). With every ``coef = 1`` each step minimises ``J`` over
its block, so exact steps never increase ``J`` (tested); ``coef != 1`` (the original code's
``lbd_coef``) reweights the X-steps only.

* **Algorithm 1** (``algorithm="full"``): one batch = the whole training set; ``X`` initialised
  once by the feed-forward rule, then sweeps. ``W^0`` is the weights at the start of each sweep
  (with the default ``gamma = 0`` it plays no role).
* **Algorithm 2** (``algorithm="batched"``): for each batch, ``W^0`` = the previous batch's
  weights, ``X`` re-initialised by feed-forward of the batch, then ``K`` sweeps.

``w_step="solve"`` solves each W-subproblem by its fast path (warm-started at the current
weights); ``w_step="gradient"`` takes one step on each W-subproblem objective instead: plain
gradient (``optimizer="sgd"``) or Adam (``optimizer="adam"``, lr 1e-3, the paper's CIFAR-10
setting).

Fast solvers run to ``tol_x`` / ``tol_w`` (the scale-free residual of
:mod:`cvx_fenchel.solvers`) or ``max_iter_x`` / ``max_iter_w`` iterations; how many steps hit
the cap is recorded per batch (``n_capped``) and reported once per epoch as a
:class:`~cvx_fenchel.errors.ConvergenceWarning`.

Prediction (:func:`predict_lifted`), the lower-bound certificate (:func:`lower_bound`,
:func:`lower_bound_curve`) and checkpoints (:meth:`BCDTrainer.save`, :meth:`BCDTrainer.load`)
are here too.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .backend import check_scalar, get_namespace, to_numpy
from .errors import ConvergenceWarning, CvxFenchelError, InputError, UnknownNameError
from .history import History, atomic_write_bytes
from .network import Network, loss_gradient, loss_per_sample
from . import subproblems as sub

__all__ = ["BCDTrainer", "Adam", "predict_lifted", "lower_bound", "lower_bound_curve",
           "ALGORITHMS", "W_STEPS", "OPTIMIZERS"]

ALGORITHMS = ("batched", "full")
W_STEPS = ("solve", "gradient")
OPTIMIZERS = ("adam", "sgd")
CHECKPOINT_WEIGHTS = "weights.npz"
CHECKPOINT_STATE = "state.json"


def _int(v: Any, name: str, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < low:
        raise InputError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


# --------------------------------------------------------------------------------------------
# Adam on (W, b) pairs

class Adam:
    """Adam (Kingma and Ba, 2015) on a list of ``(W, b)`` pairs, state kept per layer.

    ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``x <- x - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``, ``t`` counted per layer.
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr = check_scalar(lr, "lr", low=0.0, low_inclusive=False)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.state: dict[int, dict] = {}

    def step(self, l: int, x: tuple, g: tuple) -> tuple:
        xp, _ = get_namespace(*x)
        st = self.state.get(l)
        if st is None:
            st = {"t": 0, "m": [xp.zeros_like(a) for a in x], "v": [xp.zeros_like(a) for a in x]}
            self.state[l] = st
        st["t"] += 1
        t = st["t"]
        out = []
        for i, (a, d) in enumerate(zip(x, g)):
            st["m"][i] = self.beta1 * st["m"][i] + (1 - self.beta1) * d
            st["v"][i] = self.beta2 * st["v"][i] + (1 - self.beta2) * d * d
            mh = st["m"][i] / (1 - self.beta1 ** t)
            vh = st["v"][i] / (1 - self.beta2 ** t)
            out.append(a - self.lr * mh / (xp.sqrt(vh) + self.eps))
        return tuple(out)

    def arrays(self) -> dict:
        """Moment arrays as NumPy, keyed ``adam_{m|v}_{layer}_{0|1}`` (for the checkpoint npz)."""
        out = {}
        for l, st in self.state.items():
            for key in ("m", "v"):
                for i, a in enumerate(st[key]):
                    out[f"adam_{key}_{l}_{i}"] = to_numpy(a)
        return out

    def meta(self) -> dict:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "t": {str(l): st["t"] for l, st in self.state.items()}}

    def restore(self, meta: dict, arrays: Any, xp: Any) -> None:
        self.state = {}
        for l, t in meta.get("t", {}).items():
            l = int(l)
            self.state[l] = {"t": int(t),
                             "m": [xp.asarray(arrays[f"adam_m_{l}_{i}"]) for i in range(2)],
                             "v": [xp.asarray(arrays[f"adam_v_{l}_{i}"]) for i in range(2)]}


# --------------------------------------------------------------------------------------------
# the trainer

class BCDTrainer:
    """BCD trainer of a :class:`~cvx_fenchel.network.Network` (see the module docstring).

    Parameters
    ----------
    network : Network
    weights : list of (W, b) or None (random, :meth:`Network.init_weights` with ``seed``)
    seed : int, seeds the initial weights and the batch order (epoch ``e`` uses the permutation
        of ``numpy.random.default_rng([seed, e])``, so a resumed run sees the same batches)
    xp : array module (numpy or cupy) holding all arrays during training
    algorithm : "batched" (Algorithm 2) or "full" (Algorithm 1)
    K : alternations (sweeps) per batch
    w_first : W-steps before X-steps in each sweep
    w_step : "solve" or "gradient"; optimizer : "adam" or "sgd" and lr for "gradient"
    tol_x, tol_w : residual tolerances of the fast solvers (None: the solver default, 1e-9 in
        float64); max_iter_x, max_iter_w : iteration caps (None: the solver default)

    Attributes
    ----------
    weights : list of (W, b) arrays of ``xp``
    Xs : ``[X_0, ..., X_L]`` of the current batch; Y : its targets (one-hot for cross-entropy)
    W0 : proximal centres (weights at the start of the batch / sweep)
    history : History
    epoch, batch : position of the next batch (for resuming)
    """

    def __init__(self, network: Network, weights: Sequence | None = None, *, seed: int = 0,
                 xp: Any = np, algorithm: str = "batched", K: int = 1, w_first: bool = False,
                 w_step: str = "solve", optimizer: str = "adam", lr: float = 1e-3,
                 tol_x: float | None = 1e-6, tol_w: float | None = 1e-6,
                 max_iter_x: int | None = 200, max_iter_w: int | None = 200):
        if not isinstance(network, Network):
            raise InputError(f"network must be a cvx_fenchel.network.Network, got {type(network).__name__}")
        if algorithm not in ALGORITHMS:
            raise UnknownNameError(f"unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}")
        if w_step not in W_STEPS:
            raise UnknownNameError(f"unknown w_step {w_step!r}; choose one of {W_STEPS}")
        if optimizer not in OPTIMIZERS:
            raise UnknownNameError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
        self.network = network
        self.xp = xp
        self.seed = _int(seed, "seed", 0)
        self.algorithm = algorithm
        self.K = _int(K, "K", 1)
        self.w_first = bool(w_first)
        self.w_step_kind = w_step
        self.optimizer = optimizer
        self.lr = check_scalar(lr, "lr", low=0.0, low_inclusive=False)
        self.tol_x = None if tol_x is None else check_scalar(tol_x, "tol_x", low=0.0, low_inclusive=False)
        self.tol_w = None if tol_w is None else check_scalar(tol_w, "tol_w", low=0.0, low_inclusive=False)
        self.max_iter_x = None if max_iter_x is None else _int(max_iter_x, "max_iter_x", 1)
        self.max_iter_w = None if max_iter_w is None else _int(max_iter_w, "max_iter_w", 1)
        self.rng = np.random.default_rng(self.seed)
        if weights is None:
            self.weights = network.init_weights(self.rng, xp)
        else:
            self.weights = network.check_weights(weights, xp)
        self.adam = Adam(lr) if (w_step == "gradient" and optimizer == "adam") else None
        self.W0: list | None = None
        self.Xs: list | None = None
        self.Y = None
        self.history = History(meta={"model": "fenchel", "network": network.to_dict(),
                                     "trainer": self.settings()})
        self.epoch = 0
        self.batch = 0
        self.n_capped = 0
        self._timers = {"x": 0.0, "w": 0.0}

    def settings(self) -> dict:
        return {"seed": self.seed, "algorithm": self.algorithm, "K": self.K, "w_first": self.w_first,
                "w_step": self.w_step_kind, "optimizer": self.optimizer, "lr": self.lr,
                "tol_x": self.tol_x, "tol_w": self.tol_w, "max_iter_x": self.max_iter_x,
                "max_iter_w": self.max_iter_w}

    # ---- one batch ----------------------------------------------------------------------------
    def init_batch(self, X0: Any, Y: Any) -> None:
        """Load a batch: ``X_1..X_L`` by feed-forward, ``W^0`` = the current weights."""
        net, xp = self.network, self.xp
        X0 = net.check_input(X0, "X", xp=xp)
        Y = xp.asarray(Y, dtype=net.dtype)
        if Y.shape != (X0.shape[0], net.n_outputs):
            raise InputError(f"Y must have shape ({X0.shape[0]}, {net.n_outputs}), got {tuple(Y.shape)}")
        self.Xs, _ = net.forward(X0, self.weights, return_all=True)
        self.Y = Y
        self.W0 = [(W.copy(), b.copy()) for W, b in self.weights]

    def _need_batch(self) -> None:
        if self.Xs is None:
            raise InputError("no batch loaded; call init_batch(X0, Y) first")

    def x_problem(self, l: int, coef: float | None = None):
        """The X-step subproblem of ``X_l`` (``1 <= l <= L``) at the current state."""
        self._need_batch()
        net = self.network
        L = net.L
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 1 <= l <= L:
            raise InputError(f"x_step index must be in 1..{L}, got {l!r}")
        prev = net.layers[l - 1]
        U_prev = net.pre_activation(l - 1, self.Xs[l - 1], self.weights)
        layer = net.layers[l]
        W, b = self.weights[l]
        c = layer.coef if coef is None else coef
        if l == L:
            return sub.XLast(self.Y, U_prev, W, b, prev.activation, loss=net.loss, lam_prev=prev.lam,
                             coef=c, linear_map=layer.linear_map)
        return sub.XHidden(self.Xs[l + 1], U_prev, W, b, layer.activation, prev.activation,
                           lam=layer.lam, lam_prev=prev.lam, coef=c, linear_map=layer.linear_map)

    def w_problem(self, l: int):
        """The W-step subproblem of layer ``l`` (``0 <= l <= L``) at the current state."""
        self._need_batch()
        net = self.network
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 0 <= l <= net.L:
            raise InputError(f"w_step index must be in 0..{net.L}, got {l!r}")
        layer = net.layers[l]
        W0, b0 = self.W0[l] if self.W0 is not None else (None, None)
        if l == net.L:
            return sub.WLast(self.Xs[l], self.Y, loss=net.loss, coef=1.0, rho=layer.rho,
                             gamma=layer.gamma, W0=W0, b0=b0, linear_map=layer.linear_map)
        return sub.WHidden(self.Xs[l], self.Xs[l + 1], layer.activation, lam=layer.lam,
                           rho=layer.rho, gamma=layer.gamma, W0=W0, b0=b0,
                           linear_map=layer.linear_map)

    def x_step(self, l: int, *, tol: float | None = None, max_iter: int | None = None):
        """Solve the X_l step (warm start at the current ``X_l``); returns the FastResult."""
        t0 = time.perf_counter()
        prob = self.x_problem(l)
        res = prob.solve_fast(self.Xs[l], tol=self.tol_x if tol is None else tol,
                              max_iter=self.max_iter_x if max_iter is None else max_iter, warn=False)
        self.Xs[l] = res.x
        self.n_capped += 0 if res.converged else 1
        self._timers["x"] += time.perf_counter() - t0
        return res

    def w_gradient(self, l: int) -> tuple:
        """Gradient of layer ``l``'s W-subproblem objective at the current weights:
        ``A_W^T(G; X_l) + 2 rho (W, b) + 2 gamma ((W, b) - (W0, b0))`` with
        ``G = lam_l (phi_l(U_l) - X_{l+1})`` (hidden) or ``grad_O Loss(Y, O)`` (output)."""
        self._need_batch()
        net = self.network
        layer = net.layers[l]
        W, b = self.weights[l]
        U = net.pre_activation(l, self.Xs[l], self.weights)
        if l == net.L:
            G = loss_gradient(self.Y, U, net.loss)
        else:
            G = layer.lam * (layer.activation.forward(U) - self.Xs[l + 1])
        dW, db = layer.linear_map.adjoint_weights(G, self.Xs[l])
        if layer.rho:
            dW, db = dW + 2 * layer.rho * W, db + 2 * layer.rho * b
        if layer.gamma and self.W0 is not None:
            W0, b0 = self.W0[l]
            dW, db = dW + 2 * layer.gamma * (W - W0), db + 2 * layer.gamma * (b - b0)
        return dW, db

    def w_step(self, l: int, *, tol: float | None = None, max_iter: int | None = None):
        """Update ``(W_l, b_l)``: solve its subproblem (``w_step="solve"``, returns the FastResult)
        or take one gradient/Adam step (``"gradient"``, returns None)."""
        t0 = time.perf_counter()
        res = None
        if self.w_step_kind == "solve":
            prob = self.w_problem(l)
            res = prob.solve_fast(self.weights[l], tol=self.tol_w if tol is None else tol,
                                  max_iter=self.max_iter_w if max_iter is None else max_iter, warn=False)
            self.weights[l] = (res.x[0], res.x[1])
            self.n_capped += 0 if res.converged else 1
        else:
            g = self.w_gradient(l)
            if self.adam is not None:
                self.weights[l] = self.adam.step(l, self.weights[l], g)
            else:
                W, b = self.weights[l]
                self.weights[l] = (W - self.lr * g[0], b - self.lr * g[1])
        self._timers["w"] += time.perf_counter() - t0
        return res

    def x_steps(self) -> None:
        for l in range(self.network.L, 0, -1):
            self.x_step(l)

    def w_steps(self) -> None:
        for l in range(self.network.L, -1, -1):
            self.w_step(l)

    def sweep(self) -> None:
        """One alternation: X-steps (``X_L`` .. ``X_1``) then W-steps (all layers), or the reverse
        with ``w_first``."""
        self._need_batch()
        if self.w_first:
            self.w_steps()
            self.x_steps()
        else:
            self.x_steps()
            self.w_steps()

    def relaxed_objective(self, *, parts: bool = False) -> Any:
        """``J(W, X)`` of the current batch (proximal terms relative to ``W^0``)."""
        self._need_batch()
        return self.network.relaxed_objective(self.Xs, self.Y, self.weights, self.W0, parts=parts)

    def train_batch(self, X0: Any, Y: Any, y: Any = None) -> dict:
        """Algorithm 2 on one batch: :meth:`init_batch` then ``K`` sweeps. Returns the batch record
        (``relaxed_objective`` after the sweeps, ``network_loss`` and ``train_accuracy`` of the
        updated weights on the batch, ``time_x``, ``time_w``, ``time``, ``n_capped``)."""
        t0 = time.perf_counter()
        self._timers = {"x": 0.0, "w": 0.0}
        self.n_capped = 0
        self.init_batch(X0, Y)
        for _ in range(self.K):
            self.sweep()
        return self._record(y, time.perf_counter() - t0)

    def _record(self, y: Any, seconds: float) -> dict:
        xp, net = self.xp, self.network
        J = self.relaxed_objective()
        O = net.forward(self.Xs[0], self.weights)
        rec = {"relaxed_objective": J, "network_loss": float(xp.sum(loss_per_sample(self.Y, O, net.loss))),
               "time_x": self._timers["x"], "time_w": self._timers["w"], "time": seconds,
            "n_capped": self.n_capped}
        if y is not None:
            rec["train_accuracy"] = float(xp.mean((xp.argmax(O, axis=1) == y).astype(xp.float64)))
        if not math.isfinite(J):
            raise FloatingPointError(f"relaxed objective became {J} (epoch {self.epoch + 1}, batch "
                                     f"{self.batch + 1}); lower lam/coef or raise gamma")
        return rec

    # ---- epochs -------------------------------------------------------------------------------
    def epoch_order(self, epoch: int, n: int) -> np.ndarray:
        """Sample order of ``epoch``: ``default_rng([seed, epoch]).permutation(n)``."""
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def fit(self, X: Any, Y: Any, y: Any = None, *, epochs: int = 1, batch_size: int = 500,
            X_test: Any = None, y_test: Any = None, checkpoint_dir: str | os.PathLike | None = None,
            checkpoint_every: int = 0, verbose: bool = False,
            callback: Callable[["BCDTrainer", dict], None] | None = None) -> History:
        """Train until ``epochs`` epochs are done in total (continues from :attr:`epoch`/:attr:`batch`).

        Parameters
        ----------
        X : (n, *input_shape) training inputs; Y : (n, n_outputs) targets; y : (n,) int labels
            (for accuracies; may be None)
        epochs : total number of epochs (a resumed trainer runs only the remaining ones)
        batch_size : batch size of Algorithm 2 (ignored by Algorithm 1, where one epoch = one sweep
            over the full set)
        X_test, y_test : test data, scored at the end of every epoch (feed-forward rule)
        checkpoint_dir : save a checkpoint there at the end of every epoch and, with
            ``checkpoint_every = k > 0``, after every ``k`` batches
        verbose : tqdm progress bar over the batches
        callback : called as ``callback(trainer, batch_record)`` after every batch

        Returns
        -------
        History (also :attr:`history`)
        """
        net, xp = self.network, self.xp
        epochs = _int(epochs, "epochs", 0)
        batch_size = _int(batch_size, "batch_size", 1)
        X = net.check_input(X, "X", xp=xp)
        Y = xp.asarray(Y, dtype=net.dtype)
        n = X.shape[0]
        if Y.shape != (n, net.n_outputs):
            raise InputError(f"Y must have shape ({n}, {net.n_outputs}), got {tuple(Y.shape)}")
        y_dev = None if y is None else xp.asarray(y)
        if X_test is not None:
            X_test = net.check_input(X_test, "X_test", xp=xp)
            y_test = xp.asarray(y_test)
        if self.algorithm == "full":
            batch_size = n
        n_batches = -(-n // batch_size)
        self.history.meta.update({"batch_size": batch_size, "n_train": int(n), "epochs": epochs})
        bar = None
        if verbose:
            from tqdm.auto import tqdm
            bar = tqdm(total=max(epochs - self.epoch, 0) * n_batches - self.batch, unit="batch",
                       desc="fenchel", leave=True)
        try:
            while self.epoch < epochs:
                order = self.epoch_order(self.epoch, n)
                ep_start = time.perf_counter()
                while self.batch < n_batches:
                    idx = order[self.batch * batch_size:(self.batch + 1) * batch_size]
                    if self.algorithm == "full":
                        rec = self._full_sweep(X, Y, y_dev)
                    else:
                        ii = xp.asarray(idx)
                        rec = self.train_batch(X[ii], Y[ii], None if y_dev is None else y_dev[ii])
                    rec = {"epoch": self.epoch + 1, "batch": self.batch + 1, **rec}
                    self.history.log_batch(**rec)
                    self.batch += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(J=f"{rec['relaxed_objective']:.4g}",
                                        acc=f"{rec.get('train_accuracy', float('nan')):.3f}")
                    if checkpoint_dir is not None and checkpoint_every and self.batch % checkpoint_every == 0 \
                            and self.batch < n_batches:
                        self.save(checkpoint_dir)
                    if callback is not None:
                        callback(self, rec)
                self._end_epoch(X_test, y_test, time.perf_counter() - ep_start)
                if checkpoint_dir is not None:
                    self.save(checkpoint_dir)
        finally:
            if bar is not None:
                bar.close()
        return self.history

    def _full_sweep(self, X: Any, Y: Any, y: Any) -> dict:
        """Algorithm 1: X from feed-forward once (first call), then one sweep per call."""
        t0 = time.perf_counter()
        self._timers = {"x": 0.0, "w": 0.0}
        self.n_capped = 0
        if self.Xs is None or self.Xs[0].shape[0] != X.shape[0]:
            self.init_batch(X, Y)
            pending = getattr(self, "_pending_X", None)
            if pending is not None and all(a.shape == b.shape for a, b in zip(pending, self.Xs[1:])):
                self.Xs = [self.Xs[0]] + list(pending)  # resumed Algorithm 1: X as checkpointed
            self._pending_X = None
        self.W0 = [(W.copy(), b.copy()) for W, b in self.weights]
        for _ in range(self.K):
            self.sweep()
        return self._record(y, time.perf_counter() - t0)

    def _end_epoch(self, X_test: Any, y_test: Any, seconds: float) -> None:
        recs = [r for r in self.history.batches if r.get("epoch") == self.epoch + 1]

        def mean(key):
            vals = [r[key] for r in recs if r.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        rec = {"epoch": self.epoch + 1, "relaxed_objective": mean("relaxed_objective"),
               "network_loss": mean("network_loss"), "train_accuracy": mean("train_accuracy"),
               "time": float(sum(r.get("time", 0.0) for r in recs)),
               "time_x": float(sum(r.get("time_x", 0.0) for r in recs)),
               "time_w": float(sum(r.get("time_w", 0.0) for r in recs)),
               "n_capped": int(sum(r.get("n_capped", 0) for r in recs))}
        if X_test is not None:
            rec["test_accuracy"] = self.network.accuracy(X_test, y_test, self.weights)
        if self.network.L == 1 and self.Xs is not None:
            # certificate G_W(lam) <= p(W) on the epoch's last batch at the epoch-end weights
            try:
                lb = lower_bound(self.network, self.weights, self.Xs[0], self.Y, tol=1e-6, max_iter=500)
                rec.update(lower_bound=lb["G"], lower_bound_p=lb["p"])
            except CvxFenchelError as exc:  # a certificate must never stop training
                warnings.warn(f"epoch {self.epoch + 1}: lower bound not computed ({exc})",
                              ConvergenceWarning, stacklevel=3)
        self.history.log_epoch(**rec)
        if rec["n_capped"]:
            warnings.warn(f"epoch {self.epoch + 1}: {rec['n_capped']} fast-solver step(s) stopped at "
                          f"their iteration cap (max_iter_x={self.max_iter_x}, max_iter_w="
                          f"{self.max_iter_w}) before tol", ConvergenceWarning, stacklevel=3)
        self.epoch += 1
        self.batch = 0

    # ---- checkpoints --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> None:
        """Write ``weights.npz`` (weights, Adam moments, Algorithm 1's X) and ``state.json``
        (network, settings, RNG state, epoch/batch position, Adam meta, history), each atomically;
        the JSON is written last and names the npz it belongs to."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for l, (W, b) in enumerate(self.weights):
            arrays[f"W_{l}"] = to_numpy(W)
            arrays[f"b_{l}"] = to_numpy(b)
        if self.adam is not None:
            arrays.update(self.adam.arrays())
        if self.algorithm == "full" and self.Xs is not None:
            for l, Xl in enumerate(self.Xs[1:], start=1):
                arrays[f"X_{l}"] = to_numpy(Xl)
        import io
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        tag = f"{self.epoch}-{self.batch}"
        npz_name = f"weights-{tag}.npz"
        atomic_write_bytes(d / npz_name, buf.getvalue())
        state = {"format": 1, "npz": npz_name, "network": self.network.to_dict(),
                 "settings": self.settings(), "epoch": self.epoch, "batch": self.batch,
                 "rng_state": self.rng.bit_generator.state,
                 "adam": None if self.adam is None else self.adam.meta(),
                 "history": self.history.to_dict()}
        atomic_write_bytes(d / CHECKPOINT_STATE, json.dumps(state, default=_json_default).encode())
        for old in d.glob("weights-*.npz"):  # keep only the npz the state points at
            if old.name != npz_name:
                try:
                    old.unlink()
                except OSError:
                    pass

    @classmethod
    def load(cls, directory: str | os.PathLike, *, xp: Any = np,
             network: Network | None = None) -> "BCDTrainer":
        """Rebuild a trainer from :meth:`save`'s files; training continues where it stopped."""
        d = Path(directory)
        try:
            state = json.loads((d / CHECKPOINT_STATE).read_text())
            arrays = np.load(d / state["npz"], allow_pickle=False)
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"no readable checkpoint in {d} ({type(exc).__name__}: {exc})") from None
        net = network if network is not None else Network.from_dict(state["network"])
        weights = [(arrays[f"W_{l}"], arrays[f"b_{l}"]) for l in range(len(net.layers))]
        tr = cls(net, weights, xp=xp, **state["settings"])
        tr.rng.bit_generator.state = state["rng_state"]
        tr.epoch, tr.batch = int(state["epoch"]), int(state["batch"])
        if tr.adam is not None and state.get("adam"):
            tr.adam.restore(state["adam"], arrays, xp)
        if tr.algorithm == "full" and "X_1" in arrays:
            tr._pending_X = [xp.asarray(arrays[f"X_{l}"]) for l in range(1, len(net.layers))]
        tr.history = History.from_dict(state["history"])
        return tr


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# --------------------------------------------------------------------------------------------
# prediction

def predict_lifted(network: Network, weights: Sequence, X0: Any, *, n_sweeps: int = 10,
                   tol: float | None = 1e-8, max_iter: int | None = 2000,
                   return_objective: bool = False) -> Any:
    r"""Lifted prediction rule (eq. 12 of the paper): minimise the relaxed objective of a test
    batch over the hidden ``X`` and the label ``y``, weights fixed,

    .. math::
        \hat y = \arg\min_{y, X}\; \mathcal L(y, A_L(X_L) + b_L) + \sum_{l<L} \lambda_l B_l(X_{l+1}, A_l(X_l) + b_l).

    * ``mse``: the minimum over ``y`` is ``y = O`` (loss 0) and then ``X`` = feed-forward values
      make every ``B_l`` vanish, so the lifted rule *is* the feed-forward rule (returned directly).
    * ``cross_entropy``: for fixed ``O`` the minimum over ``y`` in the simplex is at a vertex
      ``e_k``, so ``min_{y,X} = min_k min_X J_k(X)`` with ``Y = e_k``. For each class ``k`` the
      ``X`` are minimised by BCD over the X-steps (``coef = 1``; ``n_sweeps`` sweeps from the
      feed-forward point; one sweep is exact for one hidden layer) and the per-sample values
      ``J_k`` compared: ``y_hat = argmin_k J_k``. Costs ``n_classes`` X-minimisations.

    Returns the labels ``(m,)`` (NumPy int64), and with ``return_objective`` also the
    ``(m, n_classes)`` array of ``J_k`` per sample (cross-entropy only; None for mse).
    """
    xp, _ = get_namespace(weights[0][0])
    X0 = network.check_input(X0, "X", xp=xp)
    Xs, O = network.forward(X0, weights, return_all=True)
    if network.loss == "mse":
        pred = to_numpy(xp.argmax(O, axis=1)).astype(np.int64)
        return (pred, None) if return_objective else pred
    m, K = O.shape
    values = xp.empty((m, K), dtype=O.dtype)
    tr = BCDTrainer(network, weights, xp=xp, tol_x=tol, max_iter_x=max_iter)
    sweeps = 1 if network.L == 1 else _int(n_sweeps, "n_sweeps", 1)
    for k in range(K):
        Y = xp.zeros((m, K), dtype=O.dtype)
        Y[:, k] = 1
        tr.Xs, tr.Y, tr.W0 = [x.copy() for x in Xs], Y, None
        for _ in range(sweeps):
            for l in range(network.L, 0, -1):
                prob = tr.x_problem(l, coef=1.0)
                tr.Xs[l] = prob.solve_fast(tr.Xs[l], tol=tol, max_iter=max_iter, warn=False).x
        values[:, k] = network.relaxed_objective_per_sample(tr.Xs, Y, weights)
    pred = to_numpy(xp.argmin(values, axis=1)).astype(np.int64)
    return (pred, to_numpy(values)) if return_objective else pred


# --------------------------------------------------------------------------------------------
# lower-bound certificate (one hidden layer)

def lower_bound(network: Network, weights: Sequence, X0: Any, Y: Any, lam: float | None = None, *,
                method: str = "fast", solver: str = "CLARABEL", tol: float | None = None,
                max_iter: int | None = None) -> dict:
    r"""Certificate ``G_W(lam) <= p(W)`` at the current weights, one hidden layer (``L = 1``).

    .. math::
        G_W(\lambda) = \min_{X_1 \in \mathrm{dom} F_0} \mathcal L(Y, A_1(X_1; W_1) + b_1)
            + \lambda \sum B_0(X_1, A_0(X_0; W_0) + b_0) \;\le\; p(W) = \mathcal L(Y, f_W(X_0)),

    the :class:`~cvx_fenchel.subproblems.XLast` problem with ``coef = 1`` (the X-step of ``J``
    without ridge/proximal terms), solved by its fast path warm-started at the feed-forward
    ``X_1`` (so the value found never exceeds ``p``) or by CVXPY (``method="cvxpy"``, small
    instances). ``lam`` defaults to the network's ``lam_0``.

    Returns a dict ``{"G", "p", "gap", "lam", "method", "converged"}``.
    """
    if network.L != 1:
        raise InputError(f"the lower-bound certificate is for one hidden layer; this network has "
                         f"{network.L} hidden lifted layers")
    xp, _ = get_namespace(weights[0][0])
    X0 = network.check_input(X0, "X", xp=xp)
    Y = xp.asarray(Y, dtype=network.dtype)
    lam = network.layers[0].lam if lam is None else check_scalar(lam, "lam")
    U0 = network.pre_activation(0, X0, weights)
    W1, b1 = weights[1]
    prob = sub.XLast(Y, U0, W1, b1, network.layers[0].activation, loss=network.loss, lam_prev=lam,
                     coef=1.0, linear_map=network.layers[1].linear_map)
    p = network.network_loss(X0, Y, weights)
    if method == "fast":
        r = prob.solve_fast(network.layers[0].activation.forward(U0), tol=tol, max_iter=max_iter, warn=False)
        G, conv = r.objective, r.converged
    elif method == "cvxpy":
        _, res = prob.solve_cvxpy(solver)
        G, conv = res.objective, True
    else:
        raise UnknownNameError(f"unknown method {method!r}; choose 'fast' or 'cvxpy'")
    return {"G": float(G), "p": float(p), "gap": float(p - G), "lam": lam, "method": method,
            "converged": bool(conv)}


def lower_bound_curve(network: Network, weights: Sequence, X0: Any, Y: Any, lams: Sequence[float],
                      **kwargs: Any) -> list[dict]:
    """:func:`lower_bound` over a grid of ``lam`` values (``G_W`` is nondecreasing in ``lam``
    because ``B >= 0``, and tends to ``p(W)``)."""
    return [lower_bound(network, weights, X0, Y, lam, **kwargs) for lam in lams]
