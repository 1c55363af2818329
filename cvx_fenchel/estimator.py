"""scikit-learn style estimator of a Fenchel lifted network trained by BCD.

:class:`FenchelClassifier` builds its :class:`~cvx_fenchel.config.TrainConfig` from its parameters
(the ``settings`` preset plus every parameter given), then trains with
:class:`~cvx_fenchel.trainer.BCDTrainer` behind ``fit`` / ``partial_fit`` / ``predict`` /
``predict_proba`` / ``score`` (the common model interface of the package). Its defaults are the
config of the README's main command (``cvx-fenchel train``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .backend import check_array, check_int, get_backend, to_numpy
from .bcd import predict_lifted
from .checkpoint import CheckpointError, check_resumable, has_checkpoint
from .config import TrainConfig, preset
from .datasets import one_hot
from .errors import InputError
from .history import History
from .losses import softmax
from .network import Network
from .trainer import BCDTrainer

__all__ = ["CONFIG_PARAMS", "FenchelClassifier"]

#: The estimator parameters that are :class:`~cvx_fenchel.config.TrainConfig` fields.
CONFIG_PARAMS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                      if f.name not in ("preset", "overrides", "in_channels"))


class FenchelClassifier:
    """Fenchel lifted network classifier (Gu, Askari and El Ghaoui, 2020).

    Minimises the relaxed objective ``J`` of :mod:`cvx_fenchel.network` by block-coordinate
    descent (:mod:`cvx_fenchel.bcd`, :mod:`cvx_fenchel.trainer`), then predicts by the
    feed-forward rule (or the lifted rule with ``predict_rule="lifted"``).

    Parameters
    ----------
    settings : "auto" (default), "original", "plain" or None
        The :func:`~cvx_fenchel.config.preset` the config starts from: "original" = the
        original code's per-layer values for 784-300-10 and lenet5; "plain" = the scalar
        ``lam``, ``rho``, ``gamma``, ``coef`` on every layer; "auto" = "original" where it exists
        for ``arch``, else "plain"; None = plain ``TrainConfig`` defaults.
    arch, loss, lam, rho, gamma, coef, epochs, batch_size, algorithm, K, w_first, w_step,
    optimizer, lr, tol_x, tol_w, max_iter_x, max_iter_w, dtype, backend, seed, predict_rule
        The :class:`~cvx_fenchel.config.TrainConfig` fields (see there). ``None`` (the default
        of each) takes the preset's value; a value given for a field the preset fixes overrides
        it and is listed in ``config_.overrides`` and the history's ``config``.
    verbose : tqdm progress; checkpoint_dir : save (and resume from) checkpoints there

    With every default, the config equals ``preset("auto")``, the config of ``cvx-fenchel
    train``: 784-300-10 with the original settings, 1 epoch of batches of 500, float32.

    Inputs: ``X`` of shape ``(m, n_features)`` for dense nets (images ``(m, H, W)`` are
    flattened); ``(m, H, W, C)``, ``(m, H, W)`` or ``(m, H*W*C)`` for LeNet-5, 28x28 MNIST
    images zero-padded to 32x32. Pixels are used as given (scale them to [0, 1] first, e.g.
    ``load_mnist(normalize=True)``). ``y``: integer labels ``0..n_classes-1``.

    Attributes
    ----------
    config_ (TrainConfig), network_, trainer_, history_ (History), weights_ (list of (W, b)
    NumPy pairs), n_classes_, classes_, n_features_in_
    """

    def __init__(self, settings: str | None = "auto", arch: Any = None, loss: str | None = None,
                 lam: Any = None, rho: Any = None, gamma: Any = None, coef: Any = None,
                 epochs: int | None = None, batch_size: int | None = None,
                 algorithm: str | None = None, K: int | None = None, w_first: bool | None = None,
                 w_step: str | None = None, optimizer: str | None = None, lr: float | None = None,
                 tol_x: float | None = None, tol_w: float | None = None,
                 max_iter_x: int | None = None, max_iter_w: int | None = None,
                 dtype: str | None = None, backend: str | None = None, seed: int | None = None,
                 predict_rule: str | None = None, verbose: bool = False,
                 checkpoint_dir: str | None = None, checkpoint_every: int | None = None):
        self.settings = settings
        self.arch = arch
        self.loss = loss
        self.lam = lam
        self.rho = rho
        self.gamma = gamma
        self.coef = coef
        self.epochs = epochs
        self.batch_size = batch_size
        self.algorithm = algorithm
        self.K = K
        self.w_first = w_first
        self.w_step = w_step
        self.optimizer = optimizer
        self.lr = lr
        self.tol_x = tol_x
        self.tol_w = tol_w
        self.max_iter_x = max_iter_x
        self.max_iter_w = max_iter_w
        self.dtype = dtype
        self.backend = backend
        self.seed = seed
        self.predict_rule = predict_rule
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every

    # ---- parameters ---------------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in ("settings",) + CONFIG_PARAMS + ("verbose", "checkpoint_dir",
                                                                      "checkpoint_every")}

    def set_params(self, **params: Any) -> FenchelClassifier:
        for k, v in params.items():
            if k not in self.get_params():
                raise InputError(f"unknown parameter {k!r} of FenchelClassifier")
            setattr(self, k, v)
        return self

    def make_config(self, in_channels: int = 1) -> TrainConfig:
        """The :class:`~cvx_fenchel.config.TrainConfig` of the current parameters (checked)."""
        given = {k: getattr(self, k) for k in CONFIG_PARAMS if getattr(self, k) is not None}
        if in_channels != 1:
            given["in_channels"] = in_channels
        if self.settings is None:
            return TrainConfig(**given)
        return preset(self.settings, **given)

    # ---- data ---------------------------------------------------------------------------------
    def _prepare_X(self, X: Any, net: Network, name: str = "X") -> np.ndarray:
        raw = np.asarray(to_numpy(X))
        if raw.dtype.kind in "iu" and raw.size and int(raw.max()) > 1:
            # uint8 images 0..255 train badly (0.52 instead of 0.92 on MNIST) and silently
            raise InputError(f"{name} holds integer pixel values up to {int(raw.max())} (raw images); "
                             f"scale them to [0, 1] first, e.g. {name} / 255.0, or load them with "
                             "load_mnist(normalize=True) / load_cifar10(normalize=True)")
        X = check_array(raw, name, dtype=net.dtype)
        if X.ndim < 2 or X.shape[0] < 1:
            raise InputError(f"{name} must be a non-empty batch (m, ...), got shape {tuple(X.shape)}")
        ishape = net.input_shape
        if len(ishape) == 3:
            H, W, C = ishape
            if X.ndim == 2 and X.shape[1] == 784 and (H, W, C) == (32, 32, 1):
                X = X.reshape(-1, 28, 28)
            if X.ndim == 3 and C == 1:
                X = X[..., None]
            if X.ndim == 4 and X.shape[1:3] == (28, 28) and (H, W) == (32, 32):
                X = np.pad(X, ((0, 0), (2, 2), (2, 2), (0, 0)))
        elif X.ndim > 2 and math.prod(X.shape[1:]) == math.prod(ishape):
            X = X.reshape(X.shape[0], -1)  # images into a dense network
        return net.check_input(X, name)

    def _prepare_y(self, y: Any, m: int, n_classes: int, name: str = "y") -> np.ndarray:
        y = np.asarray(to_numpy(y))
        if y.ndim != 1 or y.shape[0] != m:
            raise InputError(f"{name} must have shape ({m},), got {tuple(y.shape)}")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise InputError(f"{name} must hold integer labels (no NaN or fractions)")
            y = y.astype(np.int64)
        if y.dtype.kind not in "iu":
            raise InputError(f"{name} must hold integer labels, got dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise InputError(f"{name} has labels outside the classes 0..{n_classes - 1} "
                             f"(got values in [{int(y.min())}, {int(y.max())}])")
        return y.astype(np.int64)

    # ---- training -----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, X_test: Any = None, y_test: Any = None,
            epochs: int | None = None) -> FenchelClassifier:
        """Train from scratch (or resume from ``checkpoint_dir`` when it holds a checkpoint of the
        same network); ``epochs`` overrides the config's. Returns ``self``."""
        shape = np.shape(X)
        in_channels = 3 if len(shape) == 4 and shape[-1] == 3 or (len(shape) == 2 and shape[1] == 3072) else 1
        config = self.make_config(in_channels)
        total = config.epochs if epochs is None else check_int(epochs, "epochs", 0)
        net = config.network()
        xp = get_backend(config.backend)
        X = self._prepare_X(X, net)
        y = self._prepare_y(y, X.shape[0], net.n_outputs)
        if config.algorithm == "batched" and config.batch_size > X.shape[0]:
            raise InputError(f"batch_size {config.batch_size} is larger than the {X.shape[0]} training "
                             f"samples; use batch_size <= {X.shape[0]} (or algorithm='full' for one "
                             "batch of all samples)")
        if (X_test is None) != (y_test is None):
            raise InputError("give both X_test and y_test, or neither")
        if X_test is not None:
            X_test = self._prepare_X(X_test, net, "X_test")
            y_test = self._prepare_y(y_test, X_test.shape[0], net.n_outputs, "y_test")
        trainer = None
        self.resumed_from_ = None
        if has_checkpoint(self.checkpoint_dir):
            # the run must continue with the settings it started with (epochs may grow)
            check_resumable(self.checkpoint_dir, config)
            trainer = BCDTrainer.load(self.checkpoint_dir, xp=xp)
            if trainer.network.to_dict() != net.to_dict():
                raise CheckpointError(f"checkpoint in {self.checkpoint_dir} is for a different "
                                      "network; use another checkpoint_dir")
            self.resumed_from_ = (trainer.epoch, trainer.batch)
            trainer.history.meta.setdefault("resumed_at", []).append(
                {"epoch": trainer.epoch, "batch": trainer.batch})
            if self.verbose:
                print(f"resuming from {self.checkpoint_dir}: epoch {trainer.epoch + 1}, batch "
                      f"{trainer.batch + 1}", flush=True)
        if trainer is None:
            trainer = BCDTrainer(net, config, xp=xp)
        self.config_, self.network_, self.trainer_ = trainer.config, net, trainer
        self.n_classes_ = net.n_outputs
        self.classes_ = np.arange(self.n_classes_)
        self.n_features_in_ = int(math.prod(net.input_shape))
        self._run(X, y, X_test, y_test, total)
        return self

    def partial_fit(self, X: Any, y: Any, *, X_test: Any = None, y_test: Any = None,
                    epochs: int = 1) -> FenchelClassifier:
        """Train ``epochs`` more epochs (default 1) on ``(X, y)``, continuing from the current weights
        (a first call behaves as ``fit(X, y, epochs=epochs)``)."""
        epochs = check_int(epochs, "epochs", 0)
        if not hasattr(self, "trainer_"):
            return self.fit(X, y, X_test=X_test, y_test=y_test, epochs=epochs)
        net = self.network_
        X = self._prepare_X(X, net)
        y = self._prepare_y(y, X.shape[0], net.n_outputs)
        if X_test is not None:
            X_test = self._prepare_X(X_test, net, "X_test")
            y_test = self._prepare_y(y_test, X_test.shape[0], net.n_outputs, "y_test")
        self._run(X, y, X_test, y_test, self.trainer_.epoch + epochs)
        return self

    def _run(self, X, y, X_test, y_test, total_epochs: int) -> None:
        tr, net = self.trainer_, self.network_
        tr.history.meta.update({"model": "fenchel", "config": tr.config.to_dict(),
                                "backend": tr.xp.__name__})
        tr.fit(X, one_hot(y, net.n_outputs, dtype=net.dtype), y, epochs=total_epochs,
               X_test=X_test, y_test=y_test, checkpoint_dir=self.checkpoint_dir,
               checkpoint_every=self.checkpoint_every or 0, verbose=bool(self.verbose))
        self.history_: History = tr.history

    # ---- prediction ---------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "trainer_"):
            raise InputError("FenchelClassifier is not fitted; call fit first")

    @property
    def weights_(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Weights as NumPy ``(W, b)`` pairs (dense ``(n_in, n_out)``, conv ``(kh, kw, c_in, c_out)``)."""
        self._check_fitted()
        return [(to_numpy(W), to_numpy(b)) for W, b in self.trainer_.weights]

    def decision_function(self, X: Any) -> np.ndarray:
        """Feed-forward network outputs ``(m, n_classes)``."""
        self._check_fitted()
        net, xp = self.network_, self.trainer_.xp
        X = xp.asarray(self._prepare_X(X, net))
        return to_numpy(net.forward(X, self.trainer_.weights))

    def predict(self, X: Any) -> np.ndarray:
        """Labels by the feed-forward rule (arg-max output) or the lifted rule (``predict_rule``)."""
        self._check_fitted()
        if self.config_.predict_rule == "lifted":
            net, xp = self.network_, self.trainer_.xp
            return predict_lifted(net, self.trainer_.weights, xp.asarray(self._prepare_X(X, net)))
        return self.decision_function(X).argmax(axis=1).astype(np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the feed-forward outputs (for an MSE-trained network a normalised score)."""
        return softmax(self.decision_function(X))

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)``."""
        pred = self.predict(X)
        y = self._prepare_y(y, pred.shape[0], self.n_classes_)
        return float(np.mean(pred == y))
