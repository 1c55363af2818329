"""Standard networks trained by back-propagation (SGD or Adam) in PyTorch: the baselines.

These are the "neural network (SGD)" and "Adam" curves of the Fenchel lifted
network paper (Gu, Askari, El Ghaoui, AISTATS 2020, Figs. 1-4) and the
``NN[Normal]``, ``NN[Xavier]``, ``NN[var-scale]`` and ``NN[Lifted]`` columns of
Table 1 of the lifted neural network report (Askari et al. 2018/2021).

Networks (ReLU everywhere except the last, linear, layer):

* dense ``"784-300-10"``, ``"784-300-100-10"``, ...:
  ``X_{l+1} = relu(X_l W_l + b_l)``, output ``Z = X_{L-1} W_{L-1} + b_{L-1}``;
* ``"lenet5"`` (LeNet-5 with average pooling on 32x32 inputs, as in the Fenchel
  paper and its code): conv 6@5x5 valid, ReLU, avg-pool 2, conv 16@5x5 valid,
  ReLU, avg-pool 2, flatten in (h, w, c) order (NHWC), dense 120 ReLU, dense 84
  ReLU, dense 10. MNIST images (28x28, or flat 784) are zero-padded to 32x32 with
  one channel; CIFAR-10 images are (m, 32, 32, 3) NHWC (or flat 3072).

Weights use the package convention (``ESTIMATOR.md``): dense ``W`` has shape
``(n_in, n_out)`` and ``out = X @ W + b``; conv ``W`` has shape
``(kh, kw, c_in, c_out)`` on NHWC images,
``out[n, i, j, o] = b[o] + sum_{p, q, c} X[n, i + p, j + q, c] W[p, q, c, o]``
(cross-correlation, stride 1, no padding, as in TensorFlow and PyTorch).

Losses (averaged over the batch ``B`` of size ``m``; ``reduction="sum"`` drops the ``1/m``):

* ``"cross_entropy"``: ``(1/m) sum_i [logsumexp(z_i) - z_{i, y_i}]``;
* ``"mse"``: ``(1/m) sum_i ||z_i - e_{y_i}||_2^2`` against one-hot targets (summed over classes).

``weight_decay`` adds ``(weight_decay / 2) sum_l ||W_l||_F^2`` (weights only, not
biases) to the loss, i.e. ``weight_decay * W_l`` to each weight gradient.

PyTorch is an optional dependency (the ``baselines`` extra). This module imports
without it; constructing :class:`TorchNetClassifier` raises :class:`ImportError`
saying how to install it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..backend import check_array, check_int, check_scalar
from ..errors import BackendError, InputError, UnknownNameError
from ..history import History
from ..losses import softmax
from .torch_arch import (DEFAULT_BIAS, LENET5, NORMAL_VARIANCE, RANDOM_INITS,  # noqa: F401
                         init_weights, layer_shapes, parse_arch)

__all__ = ["TorchNetClassifier", "init_weights", "layer_shapes", "parse_arch",
           "INIT_SCHEMES", "LOSSES", "OPTIMIZERS", "DEFAULT_LR", "TORCH_INSTALL_HINT"]

TORCH_INSTALL_HINT = ("install the 'baselines' extra: pip install 'cvx-fenchel[baselines]' "
                      "(torch==2.13.0)")

#: Default learning rates when ``lr=None``: plain SGD 0.01 (constant; the TF/Keras default),
#: Adam 0.001 (Kingma and Ba's default).
DEFAULT_LR = {"sgd": 0.01, "adam": 0.001}
OPTIMIZERS = tuple(DEFAULT_LR)
LOSSES = ("cross_entropy", "mse")
INIT_SCHEMES = RANDOM_INITS + ("lifted", "given")
_EVAL_CHUNK = 4096


def _require_torch():
    """Import and return ``torch``, or raise ImportError naming the extra to install."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
        raise ImportError(TORCH_INSTALL_HINT) from exc
    return torch


# --------------------------------------------------------------------------- the estimator


class TorchNetClassifier:
    """A standard ReLU network (dense or LeNet-5) trained by mini-batch SGD or Adam.

    Training minimises, over the weights ``theta = (W_l, b_l)``, the mini-batch loss
    ``(1/m) sum_{i in B} loss(f_theta(x_i), y_i) + (weight_decay / 2) sum_l ||W_l||_F^2``
    by ``torch.optim.SGD`` (``theta <- theta - lr * (momentum buffer of) grad``) or
    ``torch.optim.Adam`` with constant learning rate, for ``epochs`` passes over the
    data in freshly shuffled batches (the last batch of an epoch may be smaller).

    Parameters
    ----------
    arch : str or list of int
        ``"784-300-10"`` style widths (dense ReLU network) or ``"lenet5"``.
    optimizer : {"sgd", "adam"}
    lr : float or None
        Learning rate; None gives :data:`DEFAULT_LR` (SGD 0.01, Adam 0.001).
    epochs : int
    batch_size : int
    loss : {"cross_entropy", "mse"}
        See the module docstring; MSE sums over classes; ``reduction``: "mean"/"sum" over batch.
    init : {"normal", "xavier", "var_scale", "lifted", "given"}
        Random schemes of :func:`init_weights` (biases 0.1); "lifted"/"given" copy
        ``init_weights`` (weights and biases), e.g. a trained lifted network's.
    weight_decay : float >= 0
        Ridge weight on the W's (not the biases).
    momentum : float in [0, 1)
        SGD momentum (ignored by Adam, which must keep it 0).
    seed : int
        Seeds the initialisation and the batch shuffling (NumPy generator), so runs
        are reproducible on one machine and thread count.
    device : str
        A torch device ("cpu", "cuda", "cuda:0"); data move to it once per fit.
    verbose : bool
        tqdm progress bar over the batches of each epoch.
    init_weights : list of (W, b) NumPy pairs or None
        Shapes as :func:`layer_shapes` gives (package convention).
    dtype : {"float32", "float64"}
        Working precision (float64 for verification).
    eval_every : int or None
        With test data, also log ``test_accuracy`` in the batch record every
        ``eval_every`` batches (and before the first), for per-batch curves.
    checkpoint_dir : path or None
        Checkpoint at every epoch's end (and every ``checkpoint_every`` batches) there
        (:mod:`~cvx_fenchel.baselines.torch_checkpoint`); ``fit`` resumes from it when it holds
        a checkpoint of the same hyper-parameters (``epochs`` may grow, ``device`` change; any
        other difference is a ``CheckpointError`` naming it), giving the records of an
        uninterrupted run. Neither is a hyper-parameter (not in :meth:`get_params`).

    Attributes (after fit)
    ----------------------
    history_ : History
        Per batch: epoch, batch (global index from 1), loss (batch loss incl. the
        ridge term, before the step), train_accuracy (on the batch, before the step),
        time (seconds of this step), elapsed (seconds since fit started, training
        only). Per epoch: epoch, loss (mean batch loss), train_accuracy (over the
        epoch's batches, as trained), test_accuracy (if test data), time (training
        seconds of this epoch), eval_time, elapsed.
    n_classes_, classes_ : int, ndarray
        Number of outputs and ``arange(n_classes_)``.
    n_features_in_ : int
    in_channels_ : int (LeNet-5 only; 1 for MNIST, 3 for CIFAR-10)
    lr_ : float, the learning rate used
    weights_ : list of (W, b) NumPy pairs (property)
    """

    def __init__(self, arch: Any = "784-300-10", optimizer: str = "sgd", lr: float | None = None,
                 epochs: int = 10, batch_size: int = 100, loss: str = "cross_entropy",
                 init: str = "xavier", weight_decay: float = 0.0, momentum: float = 0.0,
                 seed: int = 0, device: str = "cpu", verbose: bool = False,
                 init_weights: Any = None, dtype: str = "float32", eval_every: int | None = None,
                 reduction: str = "mean", checkpoint_dir: Any = None,
                 checkpoint_every: int | None = None):
        _require_torch()
        self.arch = arch
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.loss = loss
        self.init = init
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.seed = seed
        self.device = device
        self.verbose = verbose
        self.init_weights = init_weights
        self.dtype, self.eval_every, self.reduction = dtype, eval_every, reduction
        self.checkpoint_dir, self.checkpoint_every = checkpoint_dir, checkpoint_every
        self._validate_params()

    # ---------------------------------------------------------------- parameters

    def get_params(self) -> dict:
        """The hyper-parameters as passed to ``__init__`` (init_weights summarised by shapes)."""
        iw = self.init_weights
        return {"arch": self.arch, "optimizer": self.optimizer, "lr": self.lr,
                "epochs": self.epochs, "batch_size": self.batch_size, "loss": self.loss,
                "init": self.init, "weight_decay": self.weight_decay, "momentum": self.momentum,
                "seed": self.seed, "device": self.device, "dtype": self.dtype,
                "eval_every": self.eval_every, "reduction": self.reduction,
                "init_weights": None if iw is None else
                [[list(np.shape(W)), list(np.shape(b))] for W, b in iw]}

    def _validate_params(self) -> None:
        torch = _require_torch()
        self._kind, self._sizes = parse_arch(self.arch)
        if self.optimizer not in OPTIMIZERS:
            raise UnknownNameError(f"unknown optimizer {self.optimizer!r}; expected {OPTIMIZERS}")
        if self.reduction not in ("mean", "sum"):
            raise UnknownNameError(f"unknown reduction {self.reduction!r}; expected mean/sum")
        if self.loss not in LOSSES:
            raise UnknownNameError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        if self.init not in INIT_SCHEMES:
            raise UnknownNameError(f"unknown init {self.init!r}; expected one of {INIT_SCHEMES}")
        if self.init in ("lifted", "given") and self.init_weights is None:
            raise InputError(f"init={self.init!r} needs init_weights=[(W, b), ...]")
        if self.init not in ("lifted", "given") and self.init_weights is not None:
            raise InputError(f"init_weights given but init={self.init!r}; use init='given' "
                             "(or 'lifted') to start from them")
        if self.lr is not None:
            check_scalar(self.lr, "lr", low=0.0, low_inclusive=False)
        check_int(self.epochs, "epochs", low=0)
        check_int(self.batch_size, "batch_size", low=1)
        check_int(self.seed, "seed", low=0)
        if self.eval_every is not None:
            check_int(self.eval_every, "eval_every", low=1)
        check_scalar(self.weight_decay, "weight_decay", low=0.0)
        check_scalar(self.momentum, "momentum", low=0.0, high=1.0, high_inclusive=False)
        if self.optimizer == "adam" and self.momentum != 0:
            raise InputError("momentum applies to optimizer='sgd' only; Adam has its own betas")
        if str(self.dtype) not in ("float32", "float64"):
            raise InputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise InputError(f"device {self.device!r} is not a torch device: {exc}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"device {self.device!r} asked for but torch sees no CUDA device "
                               f"(torch {torch.__version__})")

    # ---------------------------------------------------------------- data handling

    def _prepare_X(self, X: Any, name: str = "X", fitting: bool = False) -> np.ndarray:
        """Validate X and return a C-contiguous array: (m, n_0) dense or (m, 32, 32, C) LeNet."""
        X = check_array(X, name, ndim=(2, 3, 4), dtype=str(self.dtype))
        m = X.shape[0]
        if m == 0:
            raise InputError(f"{name} has no samples")
        if self._kind == "dense":
            Xf = X.reshape(m, -1)
            if Xf.shape[1] != self._sizes[0]:
                raise InputError(f"{name} has {Xf.shape[1]} features per sample but arch "
                                 f"{self.arch!r} expects {self._sizes[0]}")
            return np.ascontiguousarray(Xf)
        # LeNet-5: NHWC images of side 28 (zero-padded) or 32
        if X.ndim == 2:
            flat = {784: (28, 28, 1), 1024: (32, 32, 1), 3072: (32, 32, 3)}
            if X.shape[1] not in flat:
                raise InputError(f"{name} of shape {X.shape}: flat LeNet-5 inputs must have 784 "
                                 "(28x28), 1024 (32x32x1) or 3072 (32x32x3 NHWC) features")
            X = X.reshape((m,) + flat[X.shape[1]])
        elif X.ndim == 3:
            X = X[..., None]
        if X.shape[1] != X.shape[2] or X.shape[1] not in (28, 32) or X.shape[3] not in (1, 3):
            raise InputError(f"{name} of shape {X.shape}: LeNet-5 takes (m, 28|32, 28|32, 1|3) "
                             "NHWC images")
        if X.shape[1] == 28:
            X = np.pad(X, ((0, 0), (2, 2), (2, 2), (0, 0)))
        C = X.shape[3]
        if not fitting and C != self.in_channels_:
            raise InputError(f"{name} has {C} channel(s) but the network was fitted with "
                             f"{self.in_channels_}")
        return np.ascontiguousarray(X)

    def _prepare_y(self, y: Any, m: int, name: str = "y") -> np.ndarray:
        ya = np.asarray(y)
        if ya.ndim != 1 or ya.shape[0] != m:
            raise InputError(f"{name} must have shape ({m},) matching the samples, got {ya.shape}")
        if ya.dtype.kind == "f":
            if not np.all(np.isfinite(ya)) or np.any(ya != np.round(ya)):
                raise InputError(f"{name} must hold integer class labels")
        elif ya.dtype.kind not in "iub":
            raise InputError(f"{name} must hold integer class labels, got dtype {ya.dtype}")
        ya = ya.astype(np.int64)
        K = self._n_outputs()
        if ya.size and (ya.min() < 0 or ya.max() >= K):
            raise InputError(f"{name} holds labels outside 0..{K - 1} (min {ya.min()}, "
                             f"max {ya.max()})")
        return ya

    def _n_outputs(self) -> int:
        return 10 if self._kind == LENET5 else self._sizes[-1]

    # ---------------------------------------------------------------- network

    def _initial_weights(self, in_channels: int) -> list[tuple[np.ndarray, np.ndarray]]:
        shapes = layer_shapes(self.arch, in_channels, self._n_outputs())
        if self.init in RANDOM_INITS:
            return init_weights(shapes, self.init, np.random.default_rng(self.seed))
        given = self.init_weights
        if not isinstance(given, (list, tuple)) or len(given) != len(shapes):
            raise InputError(f"init_weights must be a list of {len(shapes)} (W, b) pairs for arch "
                             f"{self.arch!r}, got {type(given).__name__} of length "
                             f"{len(given) if hasattr(given, '__len__') else '?'}")
        out = []
        for l, (pair, shape) in enumerate(zip(given, shapes)):
            try:
                W, b = pair
            except (TypeError, ValueError):
                raise InputError(f"init_weights[{l}] must be a (W, b) pair") from None
            W = check_array(W, f"init_weights[{l}][0] (W)", shape=shape, dtype="float64")
            b = check_array(np.reshape(np.asarray(b), -1) if np.size(b) == shape[-1] else b,
                            f"init_weights[{l}][1] (b)", shape=(shape[-1],), dtype="float64")
            out.append((W.copy(), b.copy()))
        return out

    def _forward(self, x):
        """Network output z (pre-softmax) for a torch batch x ((m, n_0) or NHWC (m, 32, 32, C))."""
        torch = _require_torch()
        F = torch.nn.functional
        params = self._params
        if self._kind == "dense":
            h = x
            for l, (W, b) in enumerate(params):
                h = torch.addmm(b, h, W)
                if l < len(params) - 1:
                    h = torch.relu(h)
            return h
        h = x.permute(0, 3, 1, 2)  # NHWC -> NCHW
        for W, b in params[:2]:  # conv (kh, kw, c_in, c_out) -> torch (c_out, c_in, kh, kw)
            h = F.avg_pool2d(torch.relu(F.conv2d(h, W.permute(3, 2, 0, 1), b)), 2)
        h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # flatten in (h, w, c) order
        for l, (W, b) in enumerate(params[2:]):
            h = torch.addmm(b, h, W)
            if l < 2:
                h = torch.relu(h)
        return h

    def _loss(self, z, yb):
        torch = _require_torch()
        F = torch.nn.functional
        if self.loss == "cross_entropy":
            val = F.cross_entropy(z, yb, reduction=self.reduction)
        else:
            target = F.one_hot(yb, z.shape[1]).to(z.dtype)
            val = getattr(((z - target) ** 2).sum(dim=1), self.reduction)()  # .mean() or .sum()
        if self.weight_decay:
            val = val + 0.5 * float(self.weight_decay) * sum((W * W).sum() for W, _ in self._params)
        return val

    def _make_optimizer(self):
        torch = _require_torch()
        leaves = [t for pair in self._params for t in pair]
        if self.optimizer == "sgd":
            return torch.optim.SGD(leaves, lr=self.lr_, momentum=float(self.momentum))
        return torch.optim.Adam(leaves, lr=self.lr_)

    # ---------------------------------------------------------------- public API

    def fit(self, X: Any, y: Any, *, X_test: Any = None, y_test: Any = None,
            epochs: int | None = None) -> "TorchNetClassifier":
        """Train from the initial weights on (X, y); test accuracy per epoch if test data given.

        Parameters
        ----------
        X : (m, n_0) float array (dense; images flattened), or for LeNet-5 NHWC images
            (m, 28|32, 28|32, 1|3), (m, 28, 28) or flat (m, 784|1024|3072).
        y : (m,) int labels in 0..n_classes-1
        X_test, y_test : optional held-out data (both or neither)
        epochs : overrides ``self.epochs`` for this call (the maximum when a stop rule is
            active, :func:`cvx_fenchel.history.stopping`)
        """
        torch = _require_torch()
        self._validate_params()
        n_epochs = self.epochs if epochs is None else check_int(epochs, "epochs", low=0)
        Xn = self._prepare_X(X, "X", fitting=True)
        m = Xn.shape[0]
        yn = self._prepare_y(y, m, "y")
        self.in_channels_ = int(Xn.shape[3]) if self._kind == LENET5 else None
        self.n_features_in_ = int(np.prod(np.shape(X)[1:]))
        if (X_test is None) != (y_test is None):
            raise InputError("give both X_test and y_test, or neither")
        if X_test is not None:
            Xt = self._prepare_X(X_test, "X_test")
            yt = self._prepare_y(y_test, Xt.shape[0], "y_test")
        self.n_classes_ = self._n_outputs()
        self.classes_ = np.arange(self.n_classes_)
        self.lr_ = float(DEFAULT_LR[self.optimizer] if self.lr is None else self.lr)

        dev = torch.device(self.device)
        tdtype = torch.float64 if str(self.dtype) == "float64" else torch.float32
        self._params = [(torch.tensor(W, dtype=tdtype, device=dev, requires_grad=True),
                         torch.tensor(b, dtype=tdtype, device=dev, requires_grad=True))
                        for W, b in self._initial_weights(self.in_channels_ or 1)]
        opt = self._make_optimizer()
        Xd = torch.from_numpy(Xn).to(dev)
        yd = torch.from_numpy(yn).to(dev)
        if X_test is not None:
            Xtd, ytd = torch.from_numpy(Xt).to(dev), torch.from_numpy(yt).to(dev)

        rng = np.random.default_rng([int(self.seed), 1])  # stream apart from the init's
        hist = History(meta={"model": "TorchNetClassifier", **self.get_params(),
                             "lr_used": self.lr_, "n_train": m,
                             "n_test": None if X_test is None else int(Xt.shape[0]),
                             "torch_version": torch.__version__,
                             "torch_threads": torch.get_num_threads()})
        bs = int(self.batch_size)
        n_batches = -(-m // bs)
        elapsed, step, done, skip, sums = 0.0, 0, 0, 0, (0.0, 0.0, 0)
        ckdir, every = self.checkpoint_dir, check_int(self.checkpoint_every or 0, "checkpoint_every", 0)
        from ..checkpoint import has_checkpoint  # here: the module imports without torch or cvxpy
        from . import torch_checkpoint
        self.resumed_from_ = None
        if has_checkpoint(ckdir):  # continue the run there (torch_checkpoint.load checks it)
            got = torch_checkpoint.load(ckdir, self, opt, m)
            hist, elapsed, step, sums = got.history, got.elapsed, got.step, got.sums
            done, skip, self.resumed_from_ = got.epoch, got.batch, (got.epoch, got.batch)
            rng.bit_generator.state = got.rng_state
            hist.meta.setdefault("resumed_at", []).append({"epoch": done, "batch": skip})
            hist.meta["epochs"] = n_epochs
        self.history_ = hist
        if X_test is not None and self.eval_every and self.resumed_from_ is None:
            hist.log_batch(epoch=0, batch=0, test_accuracy=self._accuracy(Xtd, ytd), elapsed=0.0)
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm
            bar = tqdm(total=n_epochs * n_batches, initial=min(done * n_batches + skip, n_epochs * n_batches),
                       desc="SGD" if self.optimizer == "sgd" else "Adam",
                       unit="batch")

        def save(epoch_done: int, batch_done: int, rng_state: dict, sums: tuple) -> None:
            torch_checkpoint.save(ckdir, self, opt, epoch=epoch_done, batch=batch_done, step=step,
                                  elapsed=elapsed, sums=sums, rng_state=rng_state, n_train=m,
                                  history=hist)

        # a resumed run that had stopped by the rule at its checkpoint trains no further
        first = n_epochs + 1 if skip == 0 and done and hist.stop_reason() else done + 1
        try:
            for epoch in range(first, n_epochs + 1):
                rng_before = rng.bit_generator.state  # where a mid-epoch checkpoint redraws perm
                perm = torch.from_numpy(rng.permutation(m)).to(dev)
                t_epoch, loss_sum, correct = sums if epoch == done + 1 else (0.0, 0.0, 0)
                for k in range(skip if epoch == done + 1 else 0, n_batches):
                    t0 = time.perf_counter()
                    idx = perm[k * bs:(k + 1) * bs]
                    xb, yb = Xd[idx], yd[idx]
                    opt.zero_grad(set_to_none=True)
                    z = self._forward(xb)
                    loss = self._loss(z, yb)
                    loss.backward()
                    opt.step()
                    loss_v = float(loss.detach())
                    n_right = int((z.detach().argmax(dim=1) == yb).sum())
                    dt = time.perf_counter() - t0
                    step += 1
                    t_epoch += dt
                    elapsed += dt
                    loss_sum += loss_v * len(idx)
                    correct += n_right
                    rec = dict(epoch=epoch, batch=step, loss=loss_v,
                               train_accuracy=n_right / len(idx), time=dt, elapsed=elapsed)
                    if X_test is not None and self.eval_every and step % int(self.eval_every) == 0:
                        rec["test_accuracy"] = self._accuracy(Xtd, ytd)
                    hist.log_batch(**rec)
                    if not math.isfinite(loss_v):
                        raise InputError(f"training diverged (loss {loss_v}) at epoch {epoch}, "
                                         f"batch {step}; lower lr (now {self.lr_})")
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(epoch=epoch, loss=f"{loss_v:.4f}")
                    if ckdir is not None and every and (k + 1) % every == 0 and k + 1 < n_batches:
                        save(epoch - 1, k + 1, rng_before, (t_epoch, loss_sum, correct))
                erec = dict(epoch=epoch, loss=loss_sum / m, train_accuracy=correct / m,
                            time=t_epoch)
                t0 = time.perf_counter()
                if X_test is not None:
                    erec["test_accuracy"] = self._accuracy(Xtd, ytd)
                erec["eval_time"] = time.perf_counter() - t0
                erec["elapsed"] = elapsed
                hist.log_epoch(**erec)
                if bar is not None and "test_accuracy" in erec:
                    bar.set_postfix(epoch=epoch, test_acc=f"{erec['test_accuracy']:.4f}")
                if ckdir is not None:
                    save(epoch, 0, rng.bit_generator.state, (0.0, 0.0, 0))
                if hist.stop_reason():  # the active stop rule (history.stopping)
                    break
        finally:
            if bar is not None:
                bar.close()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "_params"):
            raise InputError("this TorchNetClassifier is not fitted yet; call fit(X, y) first")

    def _scores(self, Xd):
        torch = _require_torch()
        with torch.no_grad():
            return torch.cat([self._forward(Xd[i:i + _EVAL_CHUNK])
                              for i in range(0, Xd.shape[0], _EVAL_CHUNK)])

    def _accuracy(self, Xd, yd) -> float:
        return float((self._scores(Xd).argmax(dim=1) == yd).double().mean())

    def _to_device(self, X, name):
        torch = _require_torch()
        return torch.from_numpy(self._prepare_X(X, name)).to(torch.device(self.device))

    def decision_function(self, X: Any) -> np.ndarray:
        """Network outputs ``z = f(X)`` (pre-softmax scores), shape (m, n_classes_)."""
        self._check_fitted()
        return self._scores(self._to_device(X, "X")).cpu().numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """``softmax(f(X))`` row-wise, shape (m, n_classes_).

        For ``loss="cross_entropy"`` these are the model's class probabilities; for
        ``loss="mse"`` they are a normalised score (the argmax is the prediction).
        """
        return softmax(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels ``argmax_k f(X)_k``, shape (m,), int64."""
        self._check_fitted()
        return self._scores(self._to_device(X, "X")).argmax(dim=1).cpu().numpy().astype(np.int64)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of :meth:`predict` on (X, y)."""
        pred = self.predict(X)
        return float(np.mean(pred == self._prepare_y(y, pred.shape[0], "y")))

    @property
    def weights_(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Current weights as NumPy copies in the package convention (see module docstring)."""
        self._check_fitted()
        return [(W.detach().cpu().numpy().copy(), b.detach().cpu().numpy().copy())
                for W, b in self._params]
