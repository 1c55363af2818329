r"""The training loop of Algorithms 1 and 2 (Gu et al., 2020): batching, records, checkpoints,
progress.

The mathematics of one batch is in :mod:`cvx_fenchel.bcd` (:func:`~cvx_fenchel.bcd.bcd_pass`);
this module drives it over epochs. Its settings come from one
:class:`~cvx_fenchel.config.TrainConfig`.

* **Algorithm 2** (``algorithm="batched"``): epoch ``e`` visits the samples in the order of
  ``numpy.random.default_rng([seed, e]).permutation(n)`` (so a resumed run sees the same
  batches), in batches of ``batch_size``; each batch starts with ``X`` = its feed-forward values
  and ``W^0`` = the previous batch's weights, then ``K`` sweeps.
* **Algorithm 1** (``algorithm="full"``): one batch = the whole training set; ``X`` initialised
  once by feed-forward and then kept; every epoch is one call of ``bcd_pass`` (``K`` sweeps)
  with ``W^0`` = the weights at its start (with ``gamma = 0`` it plays no role).

Each batch appends a record to the :class:`~cvx_fenchel.history.History` (``relaxed_objective``
after the pass, ``network_loss``, ``batch_accuracy_before`` (the batch's accuracy at the weights
before its update: an honest running estimate) and ``batch_accuracy_after`` (at the weights just
fitted to it: optimistic),
``time_x``, ``time_w``, ``time``, ``n_capped`` = steps stopped by their iteration cap, and
``w_methods`` = the W-step strategy of each layer, ``steps`` = one record per X- or W-step with
its ``block`` (``"X1"``, ``"W0"``, ...), ``seconds``, inner iterations ``n_iter`` and cap
``max_iter``, see :func:`~cvx_fenchel.bcd.bcd_pass`); each epoch a summary with
``train_accuracy`` (on the training set at the epoch-end weights; a fixed sample of
``train_eval_size`` when larger, ``train_accuracy_samples``), ``test_accuracy`` and, for one
hidden layer, the certificate ``G_W(lam) <= p(W)`` on the epoch's last batch
(``lower_bound``, ``lower_bound_p``). Capped steps are reported once per epoch as a
:class:`~cvx_fenchel.errors.ConvergenceWarning`. Checkpoints: :mod:`cvx_fenchel.checkpoint`.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import bcd
from .backend import check_int, get_backend
from .bcd import TrainState, lower_bound, lower_bound_curve, predict_lifted
from .checkpoint import STATE_FILE, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .errors import ConvergenceWarning, CvxFenchelError, InputError
from .history import History
from .network import Network

__all__ = ["STATE_FILE", "BCDTrainer", "lower_bound", "lower_bound_curve", "predict_lifted"]


class BCDTrainer:
    """Trains a :class:`~cvx_fenchel.network.Network` by BCD (see the module docstring).

    Parameters
    ----------
    network : Network
    config : TrainConfig (default ``TrainConfig()``); its ``loss`` and ``dtype`` are set to the
        network's. ``**settings`` replace config fields (``BCDTrainer(net, K=2, seed=1)``).
    weights : list of (W, b) or None (random: :meth:`Network.init_weights` drawn from
        ``numpy.random.default_rng(config.seed)``)
    xp : array module (numpy or cupy) holding all arrays during training

    Attributes
    ----------
    state : :class:`~cvx_fenchel.bcd.TrainState` (weights, lifted X of the current batch,
        targets, proximal centres, epoch/batch position, RNG state, Adam moments)
    history : History
    """

    def __init__(self, network: Network, config: TrainConfig | None = None, *,
                 weights: Sequence | None = None, xp: Any = np, **settings: Any):
        if not isinstance(network, Network):
            raise InputError(f"network must be a cvx_fenchel.network.Network, got {type(network).__name__}")
        if config is not None and not isinstance(config, TrainConfig):
            raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
        config = (config or TrainConfig()).replace(**settings, loss=network.loss,
                                                   dtype=network.dtype.name)
        self.network, self.config, self.xp = network, config, xp
        rng = np.random.default_rng(config.seed)
        weights = network.init_weights(rng, xp) if weights is None else network.check_weights(weights, xp)
        self.state = TrainState(list(weights), rng_state=rng.bit_generator.state)
        self.history = History(meta={"model": "fenchel", "network": network.to_dict(),
                                     "config": config.to_dict()})

    # ---- the state ----------------------------------------------------------------------------
    @property
    def weights(self) -> list:
        return self.state.weights

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def batch(self) -> int:
        return self.state.batch

    def init_batch(self, X0: Any, Y: Any) -> None:
        """Load a batch: ``X_1..X_L`` by feed-forward, ``W^0`` = the current weights."""
        st = self.state
        st.Xs, st.Y = bcd.feed_forward(self.network, st.weights, X0, Y, self.xp)
        st.W0 = list(st.weights)

    def relaxed_objective(self, *, parts: bool = False) -> Any:
        """``J(W, X)`` of the current batch (proximal terms relative to ``W^0``)."""
        st = self.state
        if st.Xs is None or st.Xs[0] is None:
            raise InputError("no batch loaded; call init_batch(X0, Y) first")
        return self.network.relaxed_objective(st.Xs, st.Y, st.weights, st.W0, parts=parts)

    def _pass(self, y: Any, t0: float, fed_forward: bool = False) -> dict:
        st = self.state
        before = None
        if y is not None:  # the batch's accuracy before its update: an honest running estimate
            # after init_batch the X are the feed-forward values: only the output layer is left
            O = self.network.pre_activation(self.network.L, st.Xs[-1], st.weights) if fed_forward \
                else self.network.forward(st.Xs[0], st.weights)
            # (a device value, read with the batch record: one host read for both)
            before = self.xp.mean((self.xp.argmax(O, axis=1) == y).astype(self.xp.float64))
        res = bcd.bcd_pass(self.network, self.config, st.weights, st.Xs, st.Y, st.W0, st.adam)
        st.weights, st.Xs, st.adam = res.weights, res.Xs, res.adam
        rec = bcd.batch_record(self.network, st.weights, st.Xs, st.Y, st.W0, y, before=before)
        return {**rec, "time_x": res.stats["time_x"], "time_w": res.stats["time_w"],
                "time": time.perf_counter() - t0, "n_capped": res.stats["n_capped"],
                "w_methods": res.stats["w_methods"], "steps": res.stats["steps"]}

    def train_batch(self, X0: Any, Y: Any, y: Any = None) -> dict:
        """Algorithm 2 on one batch: :meth:`init_batch` then ``K`` sweeps; returns its record."""
        t0 = time.perf_counter()
        self.init_batch(X0, Y)
        return self._pass(y, t0, fed_forward=True)

    def full_sweep(self, X: Any, Y: Any, y: Any = None) -> dict:
        """Algorithm 1: ``X`` from feed-forward on the first call (or as checkpointed), then
        ``K`` sweeps with ``W^0`` = the current weights; returns the record."""
        t0 = time.perf_counter()
        st = self.state
        if st.Xs is None or st.Xs[0] is None or st.Xs[0].shape[0] != X.shape[0]:
            kept = st.Xs
            st.Xs, st.Y = bcd.feed_forward(self.network, st.weights, X, Y, self.xp)
            if kept is not None and kept[0] is None and all(
                    a.shape == b.shape for a, b in zip(kept[1:], st.Xs[1:])):
                st.Xs = [st.Xs[0]] + list(kept[1:])  # resumed Algorithm 1: X as checkpointed
        st.W0 = list(st.weights)
        return self._pass(y, t0)

    def epoch_order(self, epoch: int, n: int) -> np.ndarray:
        """Sample order of ``epoch``: ``default_rng([seed, epoch]).permutation(n)``."""
        return np.random.default_rng([self.config.seed, int(epoch)]).permutation(n)

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self, X: Any, Y: Any, y: Any = None, *, epochs: int | None = None, X_test: Any = None,
            y_test: Any = None, checkpoint_dir: str | os.PathLike | None = None,
            checkpoint_every: int = 0, verbose: bool = False,
            callback: Callable[[BCDTrainer, dict], None] | None = None) -> History:
        """Train until ``epochs`` epochs (default ``config.epochs``) are done in total, continuing
        from :attr:`epoch`/:attr:`batch`.

        ``X`` ``(n, *input_shape)`` inputs, ``Y`` ``(n, n_outputs)`` targets, ``y`` ``(n,)`` int
        labels (for accuracies; may be None); ``X_test, y_test`` scored at the end of every
        epoch (feed-forward rule); ``checkpoint_dir``: checkpoint at every epoch's end and, with
        ``checkpoint_every = k > 0``, after every ``k`` batches; ``verbose``: tqdm progress bar;
        ``callback(trainer, batch_record)`` after every batch. With a stop rule active
        (:func:`cvx_fenchel.history.stopping`) training ends at the first epoch boundary where
        it holds (``epochs`` is then the maximum). Returns :attr:`history`.
        """
        net, xp, cfg, st = self.network, self.xp, self.config, self.state
        epochs = cfg.epochs if epochs is None else check_int(epochs, "epochs", 0)
        checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 0)
        X = net.check_input(X, "X", xp=xp)
        Y = xp.asarray(Y, dtype=net.dtype)
        n = X.shape[0]
        if Y.shape != (n, net.n_outputs):
            raise InputError(f"Y must have shape ({n}, {net.n_outputs}), got {tuple(Y.shape)}")
        y_dev = None if y is None else xp.asarray(y)
        if (X_test is None) != (y_test is None):
            raise InputError("give both X_test and y_test, or neither")
        if X_test is not None:
            X_test, y_test = net.check_input(X_test, "X_test", xp=xp), xp.asarray(y_test)
        batch_size = n if cfg.algorithm == "full" else cfg.batch_size
        n_batches = -(-n // batch_size)
        was_n = self.history.meta.get("n_train")
        if st.batch > 0 and was_n is not None and int(was_n) != n:
            raise InputError(f"the run stopped after batch {st.batch} of epoch {st.epoch + 1} on "
                             f"{was_n} training samples; continue it on the same data (got {n})")
        self.history.meta.update({"batch_size": batch_size, "n_train": int(n), "epochs": epochs})
        bar = None
        if verbose:
            from tqdm.auto import tqdm
            desc = f"fenchel (from epoch {st.epoch + 1}, batch {st.batch + 1})" if st.epoch or st.batch \
                else "fenchel"
            bar = tqdm(total=max(max(epochs - st.epoch, 0) * n_batches - st.batch, 0), unit="batch",
                       desc=desc, leave=True)
        try:
            # the active stop rule (history.stopping) is read at every epoch boundary, also the
            # first: a resumed run that had converged does not train on
            while st.epoch < epochs and not (st.batch == 0 and self.history.stop_reason()):
                order = self.epoch_order(st.epoch, n)
                while st.batch < n_batches:
                    if cfg.algorithm == "full":
                        rec = self.full_sweep(X, Y, y_dev)
                    else:
                        ii = xp.asarray(order[st.batch * batch_size:(st.batch + 1) * batch_size])
                        rec = self.train_batch(X[ii], Y[ii], None if y_dev is None else y_dev[ii])
                    rec = {"epoch": st.epoch + 1, "batch": st.batch + 1, **rec}
                    self.history.log_batch(**rec)
                    st.batch += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(J=f"{rec['relaxed_objective']:.4g}",
                                        batch_acc_before=f"{rec.get('batch_accuracy_before', float('nan')):.3f}")
                    if checkpoint_dir is not None and checkpoint_every and \
                            st.batch % checkpoint_every == 0 and st.batch < n_batches:
                        self.save(checkpoint_dir)
                    if callback is not None:
                        callback(self, rec)
                self._end_epoch(X_test, y_test, X, y_dev)
                if checkpoint_dir is not None:
                    self.save(checkpoint_dir)
        finally:
            if bar is not None:
                bar.close()
        return self.history

    #: Training sets up to this size are scored whole at each epoch's end; larger ones on a fixed
    #: random sample of this size (``train_accuracy_samples`` says which).
    train_eval_size: int = 20_000

    def _end_epoch(self, X_test: Any, y_test: Any, X: Any = None, y: Any = None) -> None:
        st = self.state
        recs = [r for r in self.history.batches if r.get("epoch") == st.epoch + 1]

        def mean(key):
            vals = [r[key] for r in recs if r.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        rec = {"epoch": st.epoch + 1, **{k: mean(k) for k in ("relaxed_objective", "network_loss",
                                                               "batch_accuracy_before")},
               **{k: float(sum(r.get(k, 0.0) for r in recs)) for k in ("time", "time_x", "time_w")},
               "n_capped": int(sum(r.get("n_capped", 0) for r in recs))}
        if X is not None and y is not None:
            # accuracy on the training set at the epoch-end weights (a fixed sample when large)
            n = X.shape[0]
            if n > self.train_eval_size:
                idx = np.random.default_rng([self.config.seed, 12345]).choice(n, self.train_eval_size,
                                                                              replace=False)
                ii = self.xp.asarray(np.sort(idx))
                X, y = X[ii], y[ii]
            rec["train_accuracy"] = self.network.accuracy(X, y, st.weights)
            rec["train_accuracy_samples"] = int(X.shape[0])
        if X_test is not None:
            rec["test_accuracy"] = self.network.accuracy(X_test, y_test, st.weights)
        if self.network.L == 1 and st.Xs is not None:
            # certificate G_W(lam) <= p(W) on the epoch's last batch at the epoch-end weights
            try:
                lb = lower_bound(self.network, st.weights, st.Xs[0], st.Y, tol=1e-6, max_iter=500)
                rec.update(lower_bound=float(lb.G), lower_bound_p=float(lb.p))
            except CvxFenchelError as exc:  # a certificate must never stop training
                warnings.warn(f"epoch {st.epoch + 1}: lower bound not computed ({exc})",
                              ConvergenceWarning, stacklevel=3)
        self.history.log_epoch(**rec)
        if rec["n_capped"]:
            warnings.warn(f"epoch {st.epoch + 1}: {rec['n_capped']} fast-solver step(s) stopped at "
                          f"their iteration cap (max_iter_x={self.config.max_iter_x}, max_iter_w="
                          f"{self.config.max_iter_w}) before tol", ConvergenceWarning, stacklevel=3)
        st.epoch += 1
        st.batch = 0

    # ---- pickling (the array module travels by name) -----------------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["xp"] = "cupy" if self.xp.__name__.split(".")[0] == "cupy" else "numpy"
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({**state, "xp": get_backend(state["xp"])})

    # ---- checkpoints --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> None:
        """Checkpoint into ``directory`` (:func:`cvx_fenchel.checkpoint.save_checkpoint`)."""
        save_checkpoint(directory, self.network, self.config, self.state, self.history)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, xp: Any = np,
             network: Network | None = None) -> BCDTrainer:
        """Rebuild a trainer from :meth:`save`'s files; training continues where it stopped."""
        net, config, state, history = load_checkpoint(directory, xp=xp, network=network)
        tr = cls(net, config, weights=state.weights, xp=xp)
        tr.state, tr.history = state, history
        return tr
