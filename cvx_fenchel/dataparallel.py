r"""Algorithm 1 (full-batch BCD) data-parallel on a Dask cluster, and the W-steps of all layers at once.

**Data-parallel Algorithm 1** (:func:`fit_full_batch_parallel`). The samples are split into
``P`` contiguous row blocks ("shards"); each lives in a Dask actor (:class:`_Shard`) pinned to a
worker, which keeps its rows of every lifted variable ``X_1..X_L`` for the whole run. The
objective is a sum over samples plus weight terms, so

* an **X-step** is separable over samples and runs where its rows live (no ``X`` moves). It is
  still one FISTA run over the whole batch: its stopping and restart tests are sums over all
  samples. Each shard runs the single-process solver
  (:meth:`~cvx_fenchel.subproblems.XStep.solve_fast_steps`, a generator of the scalars it reads)
  and the driver sends every shard the *sums* of those scalars over shards (2-3 floats per
  iteration), so all shards take the whole-batch solver's decisions in lockstep;
* a **W-step** runs the single-process W-step code (:func:`cvx_fenchel.bcd.w_update`: strategy
  selection, the Gram-metric FISTA, closed form, certificates) on the driver, on a twin of the
  subproblem (:class:`ShardedWStep`) whose sample sums come from the shards: the Gram matrix
  ``[F 1]^T [F 1]`` (once per W-step), the data gradient ``A_X^T grad data`` and the data value
  at each point the solver asks for, ``A^T A`` and ``A^T Y`` for the closed form. The ridge and
  proximal terms are added on the driver.

The iterates are those of :class:`~cvx_fenchel.trainer.BCDTrainer` with ``algorithm="full"`` up
to the order of floating-point summation (tests/test_dataparallel.py: 1e-10 relative in float64;
with ``rho = gamma = 0`` and rank-deficient features, such as MNIST's always-zero pixels, the
weight components no objective term sees can differ more, see ``docs/scaling.md``).
What is not data-parallel here: the sample-space W-step strategy (it needs the ``m x m`` kernel of
all samples; refused up front when a dense layer has ``n <= n_in + 1`` samples), maps other than
dense ones, CuPy on the workers, and the epoch-end evaluation (training accuracy and, for one
hidden layer, the lower-bound certificate), which runs on the driver's full copy of ``X``.

**Layer-parallel W-steps** (:func:`w_steps_concurrent`): given the ``X`` the W-steps of the layers
are independent problems; they run in threads (NumPy's BLAS releases the GIL) or as Dask tasks,
with results equal to the serial loop's (:func:`cvx_fenchel.bcd.w_steps_serial`).

Dask is an optional extra (``pip install ".[distributed]"``); without it these functions raise a
one-line :class:`~cvx_fenchel.errors.InputError` naming it. The cost model: ``docs/scaling.md``.
"""

from __future__ import annotations

import contextvars
import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from . import bcd
from . import subproblems as sub
from .backend import check_int
from .config import TrainConfig
from .errors import InputError
from .distributed import EXTRA_INSTALL, require_dask as _require_dask
from .maps import Dense
from .maps.base import _MAX_EXACT_GRAM, _max_eigvalsh  # the single-process Lipschitz rule, reused
from .network import Network
from .ridge import Ridge
from .solvers import FastResult, read
from .subproblems.wsteps import WStep
from .trainer import BCDTrainer

__all__ = ["fit_full_batch_parallel", "DataParallelTrainer", "ShardPool", "ShardedWStep",
           "w_steps_concurrent", "require_dask", "EXTRA_INSTALL"]

def require_dask() -> None:
    """Raise a one-line :class:`InputError` naming the extra unless ``dask.distributed`` imports."""
    _require_dask("data-parallel training needs")


# --------------------------------------------------------------------------------------------
# the shard: one Dask actor per row block

class _Shard:
    """Rows ``rows`` of the training set and of every lifted variable, on one worker.

    Methods are called by :class:`ShardPool` only (Dask runs an actor's methods one at a time, in
    call order). X-steps: :meth:`x_begin` starts the single-process solver as a generator on the
    shard's rows and returns the partial sums it first asks for; :meth:`x_send` sends back the
    totals over all shards. W-steps: :meth:`w_begin` builds the layer's W-subproblem on the
    shard's rows, whose partial sums the other ``w_*`` methods return."""

    def __init__(self, network: dict, config: TrainConfig, X0: Any, Y: Any, y: Any = None):
        self.network = Network.from_dict(network)
        self.config = config
        self.X0, self.Y0, self.y = X0, Y, y
        self.Xs: list | None = None
        self.Y = None
        self._gen = None
        self._l = None
        self._w: dict = {}

    # ---- state --------------------------------------------------------------------------
    def feed_forward(self, weights: list) -> int:
        """``X_1..X_L`` of the shard's rows at the feed-forward point (inputs checked)."""
        self.Xs, self.Y = bcd.feed_forward(self.network, weights, self.X0, self.Y0, np)
        return int(self.X0.shape[0])

    def get_X(self, l: int) -> Any:
        return self.Xs[l]

    # ---- X-steps ------------------------------------------------------------------------
    def x_begin(self, weights: list, l: int) -> tuple:
        with sub.trusted_inputs():  # the shard's arrays were checked by feed_forward
            prob = bcd.x_problem(self.network, weights, self.Xs, self.Y, l)
            self._gen = prob.solve_fast_steps(self.Xs[l], tol=self.config.tol_x,
                                              max_iter=self.config.max_iter_x, warn=False)
        self._l = l
        return self._advance(None)

    def x_send(self, totals: tuple) -> tuple:
        return self._advance(totals)

    def _advance(self, totals: tuple | None) -> tuple:
        """``("sums", partial sums)`` the solver asks for next, or ``("done", (objective of the
        shard's rows, n_iter, converged, residual, method))`` with the shard's new ``X_l`` kept."""
        try:
            with sub.trusted_inputs():
                request = next(self._gen) if totals is None else self._gen.send(totals)
            return "sums", read(*request)
        except StopIteration as stop:
            res = stop.value
            Xs = list(self.Xs)
            Xs[self._l] = res.x
            self.Xs, self._gen = Xs, None
            return "done", (float(res.objective), int(res.n_iter), bool(res.converged),
                            float(res.residual), res.method)

    # ---- W-steps ------------------------------------------------------------------------
    def w_begin(self, l: int, dtype: str) -> dict:
        with sub.trusted_inputs():
            prob = bcd.w_problem(self.network, self.Xs, self.Y, None, l).astype(dtype)
        self._w[(l, dtype)] = prob
        F = prob.op.features()
        return {"name": prob.name, "m": int(prob.m), "lipschitz": float(prob.data.lipschitz),
                "separable": bool(prob.data.separable), "closed_form": bool(prob.closed_form_available()),
                "coef": float(getattr(prob, "coef", 1.0)), "n_features": None if F is None else int(F.shape[1]),
                "feature_rows": None if F is None else int(F.shape[0])}

    def w_gram(self, key: tuple) -> Any:
        return self._w[key].op.gram()

    def w_grad(self, key: tuple, W: Any, b: Any) -> tuple:
        prob = self._w[key]
        return prob.op.adjoint(prob.data.grad(prob._U((W, b))))

    def w_value(self, key: tuple, W: Any, b: Any) -> float:
        return read(self._w[key]._data_value((W, b), array=True))[0]

    def w_normal(self, key: tuple) -> tuple:
        prob = self._w[key]
        X = prob.X.reshape(prob.X.shape[0], -1)
        A = np.concatenate([X, np.ones((X.shape[0], 1), dtype=X.dtype)], axis=1)
        return A.T @ A, A.T @ prob.Y

    def w_end(self, l: int) -> None:
        for key in [k for k in self._w if k[0] == l]:
            del self._w[key]

    # ---- records ------------------------------------------------------------------------
    def correct(self, weights: list) -> int:
        """Samples of the shard the network classifies right at ``weights`` (feed-forward rule)."""
        O = self.network.forward(self.X0, weights)
        return int(np.sum(np.argmax(O, axis=1) == self.y))

    def record(self, weights: list) -> tuple:
        """``(loss + lam-weighted divergences over the shard's rows, network loss, correct)``."""
        parts = self.network.relaxed_objective(self.Xs, self.Y, weights, None, parts=True)
        O = self.network.forward(self.X0, weights)
        loss = self.network.loss_fn.value(self.Y, O)
        correct = -1 if self.y is None else int(np.sum(np.argmax(O, axis=1) == self.y))
        return parts["loss"] + math.fsum(parts["divergences"]), float(loss), correct


def _fold(parts: Sequence) -> Any:
    """The sum of the shards' arrays, in shard order (the same on every run)."""
    return functools.reduce(lambda a, b: a + b, parts)


# --------------------------------------------------------------------------------------------
# the driver's view of the shards

class ShardPool:
    """``n_shards`` :class:`_Shard` actors over the workers of ``client`` (round robin over the
    workers sorted by address), each with its contiguous block of rows of ``X``, ``Y`` (and labels
    ``y``). :meth:`x_step` and :meth:`w_step` have the signatures of
    :func:`cvx_fenchel.bcd.x_step` and :func:`cvx_fenchel.bcd.w_step` (their ``Xs``/``Y`` are not
    read: the shards hold them), for :func:`cvx_fenchel.bcd.bcd_pass`. ``reductions`` counts the
    rounds of calls to all shards (each a synchronisation)."""

    def __init__(self, client: Any, network: Network, config: TrainConfig, X: Any, Y: Any, y: Any,
                 n_shards: int):
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise InputError("the Dask cluster has no workers")
        self.client, self.network, self.n = client, network, int(X.shape[0])
        self.blocks = np.array_split(np.arange(self.n), n_shards)
        self.workers = [workers[i % len(workers)] for i in range(n_shards)]
        self.reductions = 0
        self._futures, self.actors = [], []
        for rows, w in zip(self.blocks, self.workers):
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            data = client.scatter([X[lo:hi], Y[lo:hi]], workers=[w])
            fut = client.submit(_Shard, network.to_dict(), config, *data, None if y is None else y[lo:hi],
                                actor=True, workers=[w], pure=False)
            self._futures.append(fut)
        self.actors = [f.result() for f in self._futures]

    def call(self, method: str, *args: Any) -> list:
        """``method(*args)`` on every shard at once; the replies in shard order (one round)."""
        self.reductions += 1
        futures = [getattr(a, method)(*args) for a in self.actors]
        return [f.result() for f in futures]

    def close(self) -> None:
        self.actors = []
        self.client.cancel(self._futures)
        self._futures = []

    # ---- the steps ----------------------------------------------------------------------
    def x_step(self, network: Network, config: TrainConfig, weights: Sequence, Xs: Sequence, Y: Any,
               l: int) -> tuple:
        """The ``X_l`` step on every shard in lockstep: returns ``(Xs, FastResult)`` (``x`` None:
        the new rows stay on the shards; ``objective`` summed over them)."""
        t0 = time.perf_counter()
        weights = list(weights)
        replies = self.call("x_begin", weights, l)
        while True:
            kinds = {r[0] for r in replies}
            if kinds == {"done"}:
                break
            if kinds != {"sums"} or len({len(r[1]) for r in replies}) != 1:
                raise RuntimeError(f"X{l} step: the shards left lockstep ({[r[0] for r in replies]})")
            totals = tuple(math.fsum(r[1][i] for r in replies) for i in range(len(replies[0][1])))
            replies = self.call("x_send", totals)
        outs = [r[1] for r in replies]
        if len({o[1:] for o in outs}) != 1:  # n_iter, converged, residual, method: global decisions
            raise RuntimeError(f"X{l} step: the shards ended differently: {outs}")
        _, n, conv, res, method = outs[0]
        return Xs, FastResult(None, math.fsum(o[0] for o in outs), n, conv, res,
                              time.perf_counter() - t0, method=method)

    def w_step(self, network: Network, config: TrainConfig, weights: Sequence, Xs: Sequence, Y: Any,
               W0: Sequence | None, l: int, adam: dict | None = None) -> bcd.WStepOutcome:
        """The layer-``l`` W-step: :func:`cvx_fenchel.bcd.w_update` on a :class:`ShardedWStep`."""
        c0, d0 = W0[l] if W0 is not None else (None, None)
        prob = ShardedWStep(self, l, c0, d0, network.dtype)
        try:
            return bcd.w_update(prob, config, weights, l, adam)
        finally:
            self.call("w_end", l)

    def gather_X(self, l: int) -> np.ndarray:
        """``X_l`` of all samples (copied from the shards, in row order)."""
        return np.concatenate(self.call("get_X", l), axis=0)


class _FeatureShape:
    """Stands for the feature matrix ``F`` (all shards' rows) where the W-step code only asks for
    its shape (strategy applicability); any other use fails loudly."""

    def __init__(self, rows: int, cols: int):
        self.shape = (rows, cols)


class _ShardedOp:
    """The W-step operator's sample sums over shards: :meth:`gram` (cached) and the
    Lipschitz constant from it (the single-process rule for ``[F 1]`` of order up to 4096)."""

    def __init__(self, pool: ShardPool, key: tuple, shape: tuple | None):
        self.pool, self.key, self._shape, self._gram = pool, key, shape, None

    def features(self):
        return None if self._shape is None else _FeatureShape(*self._shape)

    def gram(self):
        if self._shape is None:
            return None
        if self._gram is None:
            self._gram = _fold(self.pool.call("w_gram", self.key))
        return self._gram

    def lipschitz(self, include_bias: bool = True) -> float:
        G = self.gram()
        if G is None or G.shape[0] > _MAX_EXACT_GRAM:
            raise InputError(f"data-parallel W-step: no Gram matrix of order <= {_MAX_EXACT_GRAM} for the "
                             f"Lipschitz constant of this layer's map")
        d = G.shape[0] - 1
        return _max_eigvalsh(G if include_bias else G[:d, :d], np)


class _ShardedData:
    """What the W-step code reads of a data term besides its values and gradients."""

    def __init__(self, lipschitz: float, separable: bool):
        self.lipschitz, self.separable = lipschitz, separable


class ShardedWStep(WStep):
    """The W-subproblem of layer ``l`` over all shards' rows, for the single-process W-step code:
    :meth:`_grad` and :meth:`_data_value` sum the shards' data gradients and values (one round of
    calls each) and add the ridge on the driver; :attr:`op` sums the Gram matrix; the closed form
    sums ``A^T A`` and ``A^T Y``. Proximal centre ``(W0, b0)`` (None: zeros), working ``dtype``."""

    def __init__(self, pool: ShardPool, l: int, W0: Any, b0: Any, dtype: Any):
        self.pool, self.l = pool, l
        self.xp, self.dtype = np, np.dtype(dtype)
        key = (l, self.dtype.name)
        infos = pool.call("w_begin", l, self.dtype.name)
        info = infos[0]
        layer = pool.network.layers[l]
        self.name, self.map, self.m = info["name"], layer.linear_map, sum(i["m"] for i in infos)
        W0 = np.zeros(self.map.weight_shape, self.dtype) if W0 is None else np.asarray(W0, self.dtype)
        b0 = np.zeros(self.map.bias_shape, self.dtype) if b0 is None else np.asarray(b0, self.dtype)
        self.ridge = Ridge(layer.rho, layer.gamma, W0, b0)
        self._L, self._states, self._key = None, {}, key
        shape = None if info["n_features"] is None else (sum(i["feature_rows"] for i in infos), info["n_features"])
        self._op = _ShardedOp(pool, key, shape)
        self.data = _ShardedData(info["lipschitz"], info["separable"])
        self._closed, self.coef = info["closed_form"], info["coef"]

    def _grad(self, x):
        W, b = x
        parts = self.pool.call("w_grad", self._key, W, b)
        return self.ridge.add_grad(_fold([p[0] for p in parts]), _fold([p[1] for p in parts]), W, b)

    def _data_value(self, x, *, array: bool = False):
        v = math.fsum(self.pool.call("w_value", self._key, x[0], x[1]))
        return np.asarray(v) if array else v

    def closed_form_available(self) -> bool:
        return self._closed

    def closed_form(self):
        parts = self.pool.call("w_normal", self._key)
        return self._ridge_from_normal(_fold([p[0] for p in parts]), _fold([p[1] for p in parts]),
                                       scale=self.coef)

    def _rebuild(self, dtype):
        return ShardedWStep(self.pool, self.l, self.W0, self.b0, dtype)

    def cvxpy_problem(self):
        raise InputError(f"{self.name}: a data-parallel W-step has no CVXPY form (its rows are on the shards)")


# --------------------------------------------------------------------------------------------
# Algorithm 1 on the shards

class DataParallelTrainer(BCDTrainer):
    """:class:`~cvx_fenchel.trainer.BCDTrainer` with ``algorithm="full"`` whose sweeps run on
    ``n_shards`` row blocks of the training set held by the workers of ``client`` (module
    docstring). :meth:`fit` and :attr:`history` are the base class's: the same records. The
    lifted variables stay on the shards (``state.Xs`` holds ``X_0`` only); :meth:`gather_Xs`
    copies them back. Checkpoints are not written by this trainer (``checkpoint_dir`` is refused)."""

    def __init__(self, network: Network, client: Any, n_shards: int, config: TrainConfig | None = None, *,
                 weights: Sequence | None = None, w_layers_concurrent: bool = False, **settings: Any):
        require_dask()
        if not (hasattr(client, "submit") and hasattr(client, "scheduler_info")):
            raise InputError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
        super().__init__(network, config, weights=weights, xp=np, **{**settings, "algorithm": "full"})
        self.n_shards = check_int(n_shards, "n_shards", 1)
        if self.config.backend == "cupy":
            raise InputError("data-parallel training runs NumPy on the workers; use backend='numpy' or 'auto'")
        for ly in network.layers:
            if not isinstance(ly.linear_map, Dense):
                raise InputError(f"data-parallel training supports dense layers only; layer {ly.index} "
                                 f"has map {type(ly.linear_map).__name__}")
        self.client, self.pool = client, None
        self.w_layers_concurrent = bool(w_layers_concurrent)
        self.history.meta["data_parallel"] = {"n_shards": self.n_shards}

    def _check_data(self, n: int) -> None:
        if self.n_shards > n:
            raise InputError(f"n_shards = {self.n_shards} is more than the {n} training samples")
        for ly in self.network.layers:
            n_in = int(np.prod(ly.linear_map.in_shape))
            if n <= n_in + 1:
                raise InputError(f"layer {ly.index} has {n_in} inputs and the training set {n} samples: the "
                                 f"single-process W-step runs in sample space there (an n x n kernel), which "
                                 f"is not data-parallel; use more than {n_in + 1} samples")

    def fit(self, X: Any, Y: Any, y: Any = None, **kwargs: Any):
        if kwargs.get("checkpoint_dir") is not None:
            raise InputError("DataParallelTrainer does not write checkpoints (the X stay on the shards)")
        self._check_data(int(np.shape(X)[0]))
        return super().fit(X, Y, y, **kwargs)

    def full_sweep(self, X: Any, Y: Any, y: Any = None) -> dict:
        """One epoch of Algorithm 1 on the shards (:meth:`BCDTrainer.full_sweep`'s record)."""
        t0 = time.perf_counter()
        st, net = self.state, self.network
        if self.pool is None or self.pool.n != X.shape[0]:
            self._check_data(int(X.shape[0]))
            if self.pool is not None:
                self.pool.close()
            self.pool = ShardPool(self.client, net, self.config, X, Y, None if y is None else np.asarray(y),
                                  self.n_shards)
            self.pool.call("feed_forward", list(st.weights))
            st.Xs, st.Y = [X] + [None] * net.L, Y  # (the driver's copy: epoch-end evaluation)
        st.W0 = list(st.weights)
        pool, n = self.pool, self.pool.n
        before = None if y is None else sum(pool.call("correct", list(st.weights))) / n
        w_steps = functools.partial(w_steps_concurrent if self.w_layers_concurrent else bcd.w_steps_serial,
                                    step=pool.w_step)
        res = bcd.bcd_pass(net, self.config, st.weights, st.Xs, st.Y, st.W0, st.adam,
                           x_step_fn=pool.x_step, w_steps_fn=w_steps)
        st.weights, st.adam = res.weights, res.adam
        parts = pool.call("record", list(st.weights))
        J = math.fsum(p[0] for p in parts) + float(net.regularization(st.weights, st.W0))
        rec = {"relaxed_objective": J, "network_loss": math.fsum(p[1] for p in parts)}
        if before is not None:
            rec["batch_accuracy_before"] = before
            rec["batch_accuracy_after"] = sum(p[2] for p in parts) / n
        if not math.isfinite(J):
            raise FloatingPointError(f"relaxed objective became {J}; lower lam/coef or raise gamma")
        return {**rec, "time_x": res.stats["time_x"], "time_w": res.stats["time_w"],
                "time": time.perf_counter() - t0, "n_capped": res.stats["n_capped"],
                "w_methods": res.stats["w_methods"], "steps": res.stats["steps"]}

    def gather_Xs(self) -> list:
        """``[X_0, ..., X_L]`` of all samples (``X_1..X_L`` copied from the shards)."""
        if self.pool is None:
            raise InputError("no sweep has run yet")
        return [self.state.Xs[0]] + [self.pool.gather_X(l) for l in range(1, self.network.L + 1)]

    def save(self, directory: Any) -> None:
        raise InputError("DataParallelTrainer does not write checkpoints (the X stay on the shards)")

    def close(self) -> None:
        """Release the shards' actors (their workers drop the rows)."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def fit_full_batch_parallel(network: Network, X: Any, Y: Any, client: Any, n_shards: int,
                            config: TrainConfig | None = None, *, y: Any = None, epochs: int | None = None,
                            X_test: Any = None, y_test: Any = None, weights: Sequence | None = None,
                            w_layers_concurrent: bool = False, verbose: bool = False,
                            **settings: Any) -> DataParallelTrainer:
    """Algorithm 1 (full-batch BCD, ``algorithm="full"``) with the samples split over ``n_shards``
    Dask actors of ``client`` (a :class:`dask.distributed.Client`: a ``LocalCluster``'s or one
    connected to a running scheduler). Arguments as :class:`~cvx_fenchel.trainer.BCDTrainer` and
    its :meth:`~cvx_fenchel.trainer.BCDTrainer.fit`; ``w_layers_concurrent`` also runs the layers'
    W-steps at once (:func:`w_steps_concurrent`). Returns the trainer after training:
    ``.history`` is what ``BCDTrainer(...).fit`` returns, ``.weights`` the weights,
    ``.gather_Xs()`` the lifted variables; ``.close()`` releases the shards."""
    tr = DataParallelTrainer(network, client, n_shards, config, weights=weights,
                             w_layers_concurrent=w_layers_concurrent, **settings)
    tr.fit(X, Y, y, epochs=epochs, X_test=X_test, y_test=y_test, verbose=verbose)
    return tr


# --------------------------------------------------------------------------------------------
# layer-parallel W-steps

def _w_step_task(network: Network, config: TrainConfig, weights: list, Xs: list, Y: Any, W0: Any, l: int,
                 adam: dict | None) -> tuple:
    """One layer's W-step on a Dask worker: ``(l, (W, b), adam moments or None, method, converged,
    n_iter, seconds)``."""
    t1 = time.perf_counter()
    with sub.trusted_inputs():  # the caller's arrays, checked where they were made
        out = bcd.w_step(network, config, weights, Xs, Y, W0, l, adam)
    return l, out[0][l], out[1].get(l), out[2], out[3], out.n_iter, time.perf_counter() - t1


def w_steps_concurrent(network: Network, config: TrainConfig, weights: Sequence, Xs: Sequence, Y: Any,
                       W0: Sequence | None, adam: dict | None = None, *, step: Any = None,
                       max_workers: int | None = None, client: Any = None) -> tuple:
    """The W-steps of all layers at once; the result of :func:`cvx_fenchel.bcd.w_steps_serial`
    (``(weights, adam, [(l, WStepOutcome, seconds)])`` in the order ``l = L..0``).

    Given the ``X``, layer ``l``'s W-step reads ``X_l``, ``X_{l+1}`` (or ``Y``), ``W0[l]``,
    ``weights[l]`` and ``adam[l]`` only, so the layers are independent problems. Without
    ``client`` they run in ``max_workers`` threads (default one per layer; each thread runs under
    a copy of the caller's context, so :func:`~cvx_fenchel.subproblems.trusted_inputs` carries
    over) with ``step`` (default :func:`~cvx_fenchel.bcd.w_step`; :meth:`ShardPool.w_step` for
    data-parallel W-steps). With ``client`` each layer is a Dask task on the plain
    :func:`~cvx_fenchel.bcd.w_step` (``step`` must be None): its ``X_l``, ``X_{l+1}`` are
    scattered to the cluster first."""
    layers = list(range(network.L, -1, -1))
    new_w, new_adam = list(weights), dict(adam or {})
    results = []
    if client is not None:
        require_dask()
        if step is not None:
            raise InputError("w_steps_concurrent: step= is for threads; Dask tasks run bcd.w_step")
        scattered = client.scatter([Xs[l] for l in range(len(Xs))] + [Y])
        futures = []
        for l in layers:
            Xl = [None] * len(Xs)
            Xl[l] = scattered[l]
            if l < network.L:
                Xl[l + 1] = scattered[l + 1]
            futures.append(client.submit(_w_step_task, network, config, list(weights), Xl, scattered[-1], W0,
                                         l, adam, pure=False))
        for l, Wb, moments, method, conv, n_iter, seconds in client.gather(futures):
            w = list(weights)
            w[l] = tuple(Wb)
            a = dict(adam or {})
            if moments is not None:
                a[l] = moments
            results.append((l, bcd.WStepOutcome(w, a, method, conv, n_iter), seconds))
    else:
        step = bcd.w_step if step is None else step

        def run(l: int) -> tuple:
            t1 = time.perf_counter()
            out = step(network, config, weights, Xs, Y, W0, l, adam)
            return l, out, time.perf_counter() - t1

        n = len(layers) if max_workers is None else check_int(max_workers, "max_workers", 1)
        with ThreadPoolExecutor(max_workers=n) as ex:
            futures = [ex.submit(contextvars.copy_context().run, run, l) for l in layers]
            results = [f.result() for f in futures]
    for l, out, _ in results:
        new_w[l] = out[0][l]
        if l in out[1]:
            new_adam[l] = out[1][l]
    return new_w, new_adam, results
