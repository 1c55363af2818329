"""scikit-learn style estimator of a Fenchel lifted network trained by BCD.

:class:`FenchelClassifier` wraps :class:`~cvx_fenchel.network.Network` and
:class:`~cvx_fenchel.trainer.BCDTrainer` behind ``fit`` / ``partial_fit`` / ``predict`` /
``predict_proba`` / ``score`` (the common model interface of the package).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .backend import check_array, get_backend, to_numpy
from .datasets import one_hot
from .errors import InputError, UnknownNameError
from .history import History
from .network import LOSSES, Network, original_settings, preset, softmax
from .trainer import ALGORITHMS, BCDTrainer, predict_lifted

__all__ = ["FenchelClassifier"]


def _int(v: Any, name: str, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < low:
        raise InputError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


class FenchelClassifier:
    """Fenchel lifted network classifier (Gu, Askari and El Ghaoui, 2020).

    Minimises the relaxed objective ``J`` of :mod:`cvx_fenchel.network` by block-coordinate
    descent (:mod:`cvx_fenchel.trainer`), then predicts by the feed-forward rule (or the lifted
    rule with ``predict_rule="lifted"``).

    Parameters
    ----------
    arch : str or (input_shape, layers)
        ``"784-300-10"`` (any dense ``"a-b-...-k"``), ``"lenet5"``, or a pair
        ``(input_shape, [layer specs])`` for a custom network.
    loss : "cross_entropy" or "mse"
    lam, rho, gamma, coef : model-wide defaults of the per-layer hyper-parameters
        (``lam`` on our ``B`` = half of the original code's ``2B``: original ``lambda = 1`` is
        ``lam = 2``)
    settings : None or "original"
        "original": the original code's per-layer values for ``arch`` (784-300-10 or lenet5 on
        MNIST, :func:`~cvx_fenchel.network.original_settings` with ``batch_size``); overrides
        ``lam``, ``gamma``, ``coef``, ``rho`` and ``K`` (``loss`` stays as given).
    epochs, batch_size : training length and batch size of Algorithm 2
    algorithm : "batched" (Algorithm 2) or "full" (Algorithm 1, one sweep per epoch)
    K : alternations per batch; w_first : W-steps first; w_step : "solve" or "gradient"
    optimizer, lr : for ``w_step="gradient"`` ("adam" or "sgd")
    tol_x, tol_w, max_iter_x, max_iter_w : fast-solver tolerances and iteration caps
    backend : "auto", "numpy" or "cupy"; dtype : "float32" or "float64"
    seed : int; verbose : tqdm progress; checkpoint_dir : save (and resume from) checkpoints there
    predict_rule : "feedforward" (default) or "lifted" (:func:`~cvx_fenchel.trainer.predict_lifted`)

    Inputs: ``X`` of shape ``(m, n_features)`` for dense nets; ``(m, H, W, C)``, ``(m, H, W)``
    or ``(m, H*W*C)`` for LeNet-5; 28x28 MNIST images are zero-padded to 32x32 for "lenet5".
    ``y``: integer labels ``0..n_classes-1`` with ``n_classes`` the network's output width.

    Attributes
    ----------
    network_, trainer_, history_ (History), weights_ (list of (W, b) NumPy pairs),
    n_classes_, classes_, n_features_in_
    """

    def __init__(self, arch: Any = "784-300-10", loss: str = "cross_entropy", lam: float = 1.0,
                 rho: float = 0.0, gamma: float = 0.0, coef: float = 1.0, settings: str | None = None,
                 epochs: int = 10, batch_size: int = 500, algorithm: str = "batched", K: int = 1,
                 w_first: bool = False, w_step: str = "solve", optimizer: str = "adam",
                 lr: float = 1e-3, tol_x: float | None = 1e-5, tol_w: float | None = 1e-5,
                 max_iter_x: int | None = 100, max_iter_w: int | None = 100,
                 backend: str = "auto", dtype: str = "float64", seed: int = 0,
                 verbose: bool = False, checkpoint_dir: str | None = None,
                 predict_rule: str = "feedforward"):
        self.arch = arch
        self.loss = loss
        self.lam = lam
        self.rho = rho
        self.gamma = gamma
        self.coef = coef
        self.settings = settings
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
        self.backend = backend
        self.dtype = dtype
        self.seed = seed
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.predict_rule = predict_rule

    # ---- parameters ---------------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in (
            "arch", "loss", "lam", "rho", "gamma", "coef", "settings", "epochs", "batch_size",
            "algorithm", "K", "w_first", "w_step", "optimizer", "lr", "tol_x", "tol_w",
            "max_iter_x", "max_iter_w", "backend", "dtype", "seed", "verbose", "checkpoint_dir",
            "predict_rule")}

    def set_params(self, **params: Any) -> "FenchelClassifier":
        for k, v in params.items():
            if k not in self.get_params():
                raise InputError(f"unknown parameter {k!r} of FenchelClassifier")
            setattr(self, k, v)
        return self

    def _build_network(self, in_channels: int = 1) -> tuple[Network, int]:
        """(network, K) from arch/settings; validates every hyper-parameter."""
        if self.loss not in LOSSES:
            raise UnknownNameError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.algorithm not in ALGORITHMS:
            raise UnknownNameError(f"unknown algorithm {self.algorithm!r}; choose one of {ALGORITHMS}")
        if self.predict_rule not in ("feedforward", "lifted"):
            raise UnknownNameError(f"unknown predict_rule {self.predict_rule!r}; choose 'feedforward' "
                                   "or 'lifted'")
        if str(self.dtype) not in ("float32", "float64"):
            raise InputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        _int(self.epochs, "epochs", 0)
        _int(self.batch_size, "batch_size", 1)
        _int(self.seed, "seed", 0)
        K = _int(self.K, "K", 1)
        if self.settings is not None:
            if self.settings != "original":
                raise UnknownNameError(f"unknown settings {self.settings!r}; use None or 'original'")
            if not isinstance(self.arch, str):
                raise InputError("settings='original' needs arch '784-300-10' or 'lenet5'")
            name = "mnist-lenet5" if self.arch.lower().replace("-", "") in ("lenet5", "lenet") \
                else f"mnist-{self.arch}"
            s = original_settings(name, batch_size=_int(self.batch_size, "batch_size", 1))
            ishape = s["input_shape"] if len(s["input_shape"]) == 1 else (32, 32, in_channels)
            # the original code's per-layer values; the loss stays the user's choice (the
            # original MNIST runs are cross-entropy, Fig. 1 uses the same network with MSE)
            net = Network(ishape, s["layers"], loss=self.loss, lam=s["lam"], rho=s["rho"],
                          dtype=self.dtype)
            return net, int(s["K"])
        if isinstance(self.arch, str):
            shape, layers = preset(self.arch, in_channels=in_channels)
        else:
            try:
                shape, layers = self.arch
            except (TypeError, ValueError):
                raise InputError("arch must be a name ('784-300-10', 'lenet5') or a pair "
                                 "(input_shape, layers)") from None
        net = Network(shape, layers, loss=self.loss, lam=self.lam, rho=self.rho, gamma=self.gamma,
                      coef=self.coef, dtype=self.dtype)
        return net, K

    # ---- data ---------------------------------------------------------------------------------
    def _prepare_X(self, X: Any, net: Network, name: str = "X") -> np.ndarray:
        X = check_array(to_numpy(X), name, dtype=net.dtype)
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
        X = net.check_input(X, name)
        return X

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

    def _targets(self, y: np.ndarray, net: Network) -> np.ndarray:
        return one_hot(y, net.n_outputs, dtype=net.dtype)

    # ---- training -----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, X_test: Any = None, y_test: Any = None,
            epochs: int | None = None) -> "FenchelClassifier":
        """Train from scratch (or resume from ``checkpoint_dir`` when it holds a checkpoint of the
        same network); ``epochs`` overrides the parameter. Returns ``self``."""
        shape = np.shape(X)
        in_channels = 3 if len(shape) == 4 and shape[-1] == 3 or (len(shape) == 2 and shape[1] == 3072) else 1
        net, K = self._build_network(in_channels)
        xp = get_backend(self.backend)
        X = self._prepare_X(X, net)
        y = self._prepare_y(y, X.shape[0], net.n_outputs)
        if (X_test is None) != (y_test is None):
            raise InputError("give both X_test and y_test, or neither")
        if X_test is not None:
            X_test = self._prepare_X(X_test, net, "X_test")
            y_test = self._prepare_y(y_test, X_test.shape[0], net.n_outputs, "y_test")
        trainer = None
        if self.checkpoint_dir is not None:
            from pathlib import Path
            if (Path(self.checkpoint_dir) / "state.json").is_file():
                trainer = BCDTrainer.load(self.checkpoint_dir, xp=xp)
                if trainer.network.to_dict() != net.to_dict():
                    raise InputError(f"checkpoint in {self.checkpoint_dir} is for a different network; "
                                     "use another checkpoint_dir")
        if trainer is None:
            trainer = BCDTrainer(net, seed=self.seed, xp=xp, algorithm=self.algorithm, K=K,
                                 w_first=self.w_first, w_step=self.w_step, optimizer=self.optimizer,
                                 lr=self.lr, tol_x=self.tol_x, tol_w=self.tol_w,
                                 max_iter_x=self.max_iter_x, max_iter_w=self.max_iter_w)
        self.network_, self.trainer_ = net, trainer
        self.n_classes_ = net.n_outputs
        self.classes_ = np.arange(self.n_classes_)
        self.n_features_in_ = int(math.prod(net.input_shape))
        self._run(X, y, X_test, y_test, self.epochs if epochs is None else epochs)
        return self

    def partial_fit(self, X: Any, y: Any, *, X_test: Any = None, y_test: Any = None,
                    epochs: int = 1) -> "FenchelClassifier":
        """Train ``epochs`` more epochs (default 1) on ``(X, y)``, continuing from the current weights
        (a first call behaves as ``fit(X, y, epochs=epochs)``)."""
        if not hasattr(self, "trainer_"):
            return self.fit(X, y, X_test=X_test, y_test=y_test, epochs=epochs)
        net = self.network_
        X = self._prepare_X(X, net)
        y = self._prepare_y(y, X.shape[0], net.n_outputs)
        if X_test is not None:
            X_test = self._prepare_X(X_test, net, "X_test")
            y_test = self._prepare_y(y_test, X_test.shape[0], net.n_outputs, "y_test")
        self._run(X, y, X_test, y_test, self.trainer_.epoch + _int(epochs, "epochs", 0))
        return self

    def _run(self, X, y, X_test, y_test, total_epochs: int) -> None:
        tr, net = self.trainer_, self.network_
        _int(total_epochs, "epochs", 0)
        tr.history.meta.update({"model": "fenchel", "params": {
            k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
            for k, v in self.get_params().items()}, "backend": tr.xp.__name__})
        tr.fit(X, self._targets(y, net), y, epochs=total_epochs, batch_size=self.batch_size,
               X_test=X_test, y_test=y_test, checkpoint_dir=self.checkpoint_dir,
               verbose=bool(self.verbose))
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
        if self.predict_rule == "lifted":
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
