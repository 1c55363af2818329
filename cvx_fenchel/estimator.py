"""scikit-learn style estimator of a Fenchel lifted network trained by BCD.

:class:`FenchelClassifier` builds its :class:`~cvx_fenchel.config.TrainConfig` from its parameters
(the ``settings`` preset plus every parameter given), then trains with
:class:`~cvx_fenchel.trainer.BCDTrainer` behind ``fit`` / ``partial_fit`` / ``predict`` /
``predict_proba`` / ``decision_function`` / ``score`` (the common model interface of the
package). Its defaults are the config of the README's main command (``cvx-fenchel train``).

It follows scikit-learn's estimator conventions without depending on scikit-learn: parameters
stored as given (``get_params``/``set_params``, so ``clone``, pipelines and grid searches work),
``classes_`` and ``n_features_in_`` learnt by ``fit``, scikit-learn's tags and errors
(``NotFittedError``, ``DataConversionWarning``) when scikit-learn is installed. It passes
``sklearn.utils.estimator_checks.check_estimator`` (``tests/test_sklearn.py`` lists the checks
that do not apply, each with its reason).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import warnings
from typing import Any

import numpy as np

from .backend import check_array, check_int, get_backend, to_numpy
from .bcd import predict_lifted
from .checkpoint import FORMER_DEFAULTS, CheckpointError, check_resumable, has_checkpoint
from .config import TrainConfig, preset
from .datasets import one_hot
from .errors import InputError
from .history import History
from .losses import softmax
from .network import Network
from .trainer import BCDTrainer

__all__ = ["CONFIG_PARAMS", "DEFAULT_HIDDEN", "FenchelClassifier"]

#: The estimator parameters that are :class:`~cvx_fenchel.config.TrainConfig` fields.
CONFIG_PARAMS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                      if f.name not in ("preset", "overrides", "in_channels"))
#: Hidden widths of the network inferred from the data when neither ``arch`` nor ``hidden`` is given.
DEFAULT_HIDDEN = (300,)


@functools.cache
def _not_fitted_error() -> type:
    """An :class:`InputError` that is also scikit-learn's ``NotFittedError`` when scikit-learn is
    installed (else an ``AttributeError``, so ``hasattr(clf, "weights_")`` is False)."""
    try:
        from sklearn.exceptions import NotFittedError as base
    except ImportError:
        base = AttributeError
    return type("NotFittedError", (InputError, base), {"__module__": __name__})


def _data_conversion_warning() -> type:
    try:
        from sklearn.exceptions import DataConversionWarning
    except ImportError:
        return UserWarning
    return DataConversionWarning


def _as_array(X: Any, name: str) -> np.ndarray:
    """``X`` as a NumPy array; sparse, complex and raw-pixel inputs refused with how to fix."""
    if X is None:
        raise InputError(f"{name} is None; expected an array")
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix: sparse input is not supported; pass "
                        f"{name}.toarray()")
    raw = np.asarray(to_numpy(X))
    if raw.dtype.kind == "c":
        raise InputError(f"Complex data not supported: {name} has dtype {raw.dtype}")
    if raw.dtype.kind == "O":
        raw = raw.astype(np.float64)  # a TypeError names what is not a number
    if raw.dtype.kind == "u" and raw.size and int(raw.max()) > 1:
        # raw images 0..255 train badly (0.52 instead of 0.92 on MNIST) and silently
        raise InputError(f"{name} holds integer pixel values up to {int(raw.max())} (raw images, "
                         f"dtype {raw.dtype}); scale them to [0, 1] first, e.g. {name} / 255.0, or "
                         "load them with load_mnist(normalize=True) / load_cifar10(normalize=True)")
    if raw.ndim < 2:
        raise InputError(f"{name} must be 2-D (m, n_features) (or images), got shape {raw.shape}. "
                         f"Reshape your data either using {name}.reshape(-1, 1) if it has a single "
                         f"feature or {name}.reshape(1, -1) if it contains a single sample")
    if raw.shape[0] < 1:
        raise InputError(f"{name} must be a non-empty batch (m, ...), got shape {raw.shape} "
                         "(0 samples)")
    return raw


def _labels(y: Any, m: int, name: str = "y") -> np.ndarray:
    """``y`` as a 1-D array of ``m`` class labels (ints, strings, ...); continuous targets refused."""
    if y is None:
        raise InputError(f"FenchelClassifier requires y to be passed, but the target {name} is None")
    y = np.asarray(to_numpy(y))
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please change "
                      "the shape of y to (n_samples,), for example using ravel().",
                      _data_conversion_warning(), stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise InputError(f"{name} should be a 1d array of class labels, got shape {y.shape}")
    if y.shape[0] != m:
        raise InputError(f"{name} must have shape ({m},) (one label per sample of X), got {y.shape}")
    if y.dtype.kind == "c":
        raise InputError(f"Complex data not supported: {name} has dtype {y.dtype}")
    if y.dtype.kind in "fO":
        try:
            v = y.astype(np.float64)
        except (TypeError, ValueError):
            v = None  # strings or other objects: labels as they are
        if v is not None:
            if not np.all(np.isfinite(v)):
                raise InputError(f"{name} contains NaN or inf")
            if not np.all(v == np.round(v)):
                raise InputError(f"Unknown label type: continuous ({name} holds non-integer values; "
                                 "FenchelClassifier needs class labels)")
            y = v.astype(np.int64)
    return y


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
    arch : None (default), "a-b-...-k", "lenet5" or ``(input_shape, layers)``
        None: a dense network ``n_features-<hidden>-n_classes`` with the widths learnt from the
        data (``784-300-10`` on MNIST, so the original preset applies). A given ``arch`` fixes
        the input and output widths: ``y`` then holds integer labels ``0..k-1``.
    hidden : None, int or tuple of int
        Hidden widths of the inferred network (default ``(300,)``); only with ``arch=None``.
    loss, lam, rho, gamma, coef, epochs, batch_size, algorithm, K, w_first, w_step,
    optimizer, lr, tol_x, tol_w, max_iter_x, max_iter_w, dtype, backend, seed, predict_rule
        The :class:`~cvx_fenchel.config.TrainConfig` fields (see there). ``None`` (the default
        of each) takes the preset's value; a value given for a field the preset fixes overrides
        it and is listed in ``config_.overrides`` and the history's ``config``.
        ``batch_size=None`` is 500, or all the samples when there are fewer and the preset is
        not ``original`` (whose output-layer ``gamma = 100 * batch_size`` is tuned for batches
        of 500: there, and for a ``batch_size`` given, more than the data is an error).
    verbose : bool
        tqdm progress bar (its label says where a resumed run continues).
    checkpoint_dir : path or None
        Checkpoint at every epoch's end (and every ``checkpoint_every`` batches) there; ``fit``
        resumes from it when it holds a checkpoint of the same config (``epochs`` may grow; any
        other differing field is refused, naming it).
    checkpoint_every : int or None
        With ``checkpoint_dir``: also checkpoint after every that many batches.

    With every default, the config equals ``preset("auto")``, the config of ``cvx-fenchel
    train``: 784-300-10 with the original settings, 1 epoch of batches of 500, float32.

    Inputs: ``X`` of shape ``(m, n_features)`` for dense nets (images ``(m, H, W[, C])`` are
    flattened); ``(m, H, W, C)``, ``(m, H, W)`` or ``(m, H*W*C)`` for LeNet-5, 28x28 MNIST
    images zero-padded to 32x32. Values are used as given: scale pixels to [0, 1] first (e.g.
    ``load_mnist(normalize=True)``); unsigned-integer arrays with values above 1 (raw images)
    are refused. ``y``: class labels (any sortable values; with a given ``arch``, integers
    ``0..k-1``).

    Attributes
    ----------
    config_ (TrainConfig), network_, trainer_, history_ (History), weights_ (list of (W, b)
    NumPy pairs), classes_ (the labels, in output order), n_classes_, n_features_in_,
    resumed_from_ ((epoch, batch) of the checkpoint ``fit`` resumed from, or None)
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
                 checkpoint_dir: str | None = None, checkpoint_every: int | None = None,
                 hidden: Any = None):
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
        self.hidden = hidden

    # ---- parameters ---------------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in ("settings",) + CONFIG_PARAMS
                + ("verbose", "checkpoint_dir", "checkpoint_every", "hidden")}

    def set_params(self, **params: Any) -> FenchelClassifier:
        for k, v in params.items():
            if k not in self.get_params():
                raise InputError(f"unknown parameter {k!r} of FenchelClassifier")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        """``FenchelClassifier(...)`` with the parameters that differ from their defaults."""
        defaults = {k: v.default for k, v in inspect.signature(type(self)).parameters.items()}
        given = [f"{k}={v!r}" for k, v in self.get_params().items()
                 if not (v is defaults.get(k) or (isinstance(v, (str, bool)) and v == defaults.get(k)))]
        return f"{type(self).__name__}({', '.join(given)})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (called by scikit-learn only): a classifier of 2-D dense arrays."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags())

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "trainer_")

    def _hidden(self) -> tuple[int, ...]:
        h = DEFAULT_HIDDEN if self.hidden is None else self.hidden
        h = (h,) if isinstance(h, (int, np.integer)) else h
        try:
            return tuple(check_int(w, f"hidden[{i}]", 1) for i, w in enumerate(h))
        except TypeError:
            raise InputError(f"hidden must be an int or a tuple of ints, got {self.hidden!r}") from None

    def make_config(self, in_channels: int = 1, n_features: int | None = None,
                    n_classes: int | None = None, n_samples: int | None = None) -> TrainConfig:
        """The :class:`~cvx_fenchel.config.TrainConfig` of the current parameters (checked), for
        data of ``n_features`` features, ``n_classes`` classes and ``n_samples`` samples when
        given (they set the inferred architecture and the default batch size)."""
        given = {k: getattr(self, k) for k in CONFIG_PARAMS if getattr(self, k) is not None}
        if self.arch is not None and self.hidden is not None:
            raise InputError("give arch or hidden, not both (hidden sets the inner widths of the "
                             "network inferred from the data)")
        if self.arch is None and (n_features is not None or self.hidden is not None):
            widths = (784 if n_features is None else n_features, *self._hidden(),
                      10 if n_classes is None else n_classes)
            given["arch"] = "-".join(map(str, widths))
        if in_channels != 1:
            given["in_channels"] = in_channels
        config = TrainConfig(**given) if self.settings is None else preset(self.settings, **given)
        if (self.batch_size is None and n_samples is not None and config.algorithm == "batched"
                and config.batch_size > n_samples and config.preset != "original"):
            given["batch_size"] = n_samples  # small data: one batch of everything
            config = TrainConfig(**given) if self.settings is None else preset(self.settings, **given)
        return config

    # ---- data ---------------------------------------------------------------------------------
    def _prepare_X(self, X: Any, net: Network, name: str = "X", raw: np.ndarray | None = None
                   ) -> np.ndarray:
        raw = _as_array(X, name) if raw is None else raw
        X = check_array(raw, name, dtype=net.dtype)
        ishape = net.input_shape
        if len(ishape) == 3:
            H, W, C = ishape
            if X.ndim == 2 and X.shape[1] == 784 and (H, W, C) == (32, 32, 1):
                X = X.reshape(-1, 28, 28)
            if X.ndim == 3 and C == 1:
                X = X[..., None]
            if X.ndim == 4 and X.shape[1:3] == (28, 28) and (H, W) == (32, 32):
                X = np.pad(X, ((0, 0), (2, 2), (2, 2), (0, 0)))
        elif len(ishape) == 1:
            if X.ndim > 2:
                X = X.reshape(X.shape[0], -1)  # images into a dense network
            if X.shape[1] != ishape[0]:
                raise InputError(f"{name} has {X.shape[1]} features, but FenchelClassifier is "
                                 f"expecting {ishape[0]} features as input ({name} has shape "
                                 f"{tuple(raw.shape)})")
        return net.check_input(X, name)

    def _encode(self, y: np.ndarray, name: str = "y") -> np.ndarray:
        """Labels to output indices ``0..n_classes_-1``."""
        if self._fixed_outputs:
            if y.dtype.kind not in "iub":
                raise InputError(f"{name} must hold integer labels 0..{self.n_classes_ - 1} (arch "
                                 f"{self.arch!r} fixes the outputs), got dtype {y.dtype}")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes_):
                raise InputError(f"{name} has labels outside the classes 0..{self.n_classes_ - 1} "
                                 f"(got values in [{int(y.min())}, {int(y.max())}])")
            return y.astype(np.int64)
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        bad = self.classes_[idx] != y
        if np.any(bad):
            raise InputError(f"{name} has labels not seen by fit (classes_ = {self.classes_.tolist()}): "
                             f"{np.unique(y[bad]).tolist()[:5]}")
        return idx.astype(np.int64)

    def _classes(self, y: np.ndarray, classes: Any = None) -> np.ndarray:
        try:
            found = np.unique(y if classes is None else np.asarray(classes))
        except TypeError:
            raise InputError("Unknown label type: y mixes labels of different types") from None
        if classes is not None and not np.all(np.isin(y, found)):
            raise InputError(f"y has labels outside classes={found.tolist()}")
        if len(found) < 2:
            raise InputError(f"FenchelClassifier needs at least 2 classes in y, got {len(found)} "
                             f"class ({found.tolist()})")
        return found

    # ---- training -----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, X_test: Any = None, y_test: Any = None,
            epochs: int | None = None, classes: Any = None) -> FenchelClassifier:
        """Train from scratch (or resume from ``checkpoint_dir`` when it holds a checkpoint of the
        same config); ``epochs`` overrides the config's; ``classes``: all the labels, when ``y``
        may miss some (``arch=None``). Returns ``self``."""
        raw = _as_array(X, "X")
        y = _labels(y, raw.shape[0])
        shape = raw.shape
        n_features = math.prod(shape[1:])
        if n_features < 1:
            raise InputError(f"X has 0 feature(s) (shape={shape}) while a minimum of 1 is required.")
        in_channels = 3 if len(shape) == 4 and shape[-1] == 3 or (len(shape) == 2 and shape[1] == 3072) else 1
        self._fixed_outputs = self.arch is not None
        if self._fixed_outputs:
            classes_ = None
            config = self.make_config(in_channels, n_samples=shape[0])
        else:
            classes_ = self._classes(y, classes)
            config = self.make_config(in_channels, n_features, len(classes_), n_samples=shape[0])
        total = config.epochs if epochs is None else check_int(epochs, "epochs", 0)
        net = config.network()
        self.n_classes_ = net.n_outputs
        self.classes_ = np.arange(self.n_classes_) if classes_ is None else classes_
        xp = get_backend(config.backend)
        X = self._prepare_X(X, net, raw=raw)
        y = self._encode(y)
        if config.algorithm == "batched" and config.batch_size > X.shape[0]:
            raise InputError(f"batch_size {config.batch_size} is larger than the {X.shape[0]} training "
                             f"samples; use batch_size <= {X.shape[0]} (or algorithm='full' for one "
                             "batch of all samples)")
        X_test, y_test = self._test_set(X_test, y_test, net)
        trainer = None
        self.resumed_from_ = None
        if has_checkpoint(self.checkpoint_dir):
            # the run must continue with the settings it started with (epochs may grow)
            check_resumable(self.checkpoint_dir, config, explicit=[k for k in FORMER_DEFAULTS
                                                                    if getattr(self, k, None) is not None])
            trainer = BCDTrainer.load(self.checkpoint_dir, xp=xp)
            if trainer.network.to_dict() != net.to_dict():
                raise CheckpointError(f"checkpoint in {self.checkpoint_dir} is for a different "
                                      "network; use another checkpoint_dir")
            self.resumed_from_ = (trainer.epoch, trainer.batch)
            trainer.history.meta.setdefault("resumed_at", []).append(
                {"epoch": trainer.epoch, "batch": trainer.batch})
        if trainer is None:
            trainer = BCDTrainer(net, config, xp=xp)
        self.config_, self.network_, self.trainer_ = trainer.config, net, trainer
        self.n_features_in_ = int(math.prod(net.input_shape)) if len(net.input_shape) > 1 \
            else n_features
        self._run(X, y, X_test, y_test, total)
        return self

    def _test_set(self, X_test: Any, y_test: Any, net: Network) -> tuple:
        if (X_test is None) != (y_test is None):
            raise InputError("give both X_test and y_test, or neither")
        if X_test is None:
            return None, None
        X_test = self._prepare_X(X_test, net, "X_test")
        return X_test, self._encode(_labels(y_test, X_test.shape[0], "y_test"), "y_test")

    def partial_fit(self, X: Any, y: Any, classes: Any = None, *, X_test: Any = None,
                    y_test: Any = None, epochs: int = 1) -> FenchelClassifier:
        """Train ``epochs`` more epochs (default 1) on ``(X, y)``, continuing from the current weights
        (a first call behaves as ``fit(X, y, epochs=epochs, classes=classes)``)."""
        epochs = check_int(epochs, "epochs", 0)
        if not hasattr(self, "trainer_"):
            return self.fit(X, y, X_test=X_test, y_test=y_test, epochs=epochs, classes=classes)
        if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise InputError(f"classes={np.unique(classes).tolist()} differ from those of the first "
                             f"fit ({self.classes_.tolist()})")
        net = self.network_
        X = self._prepare_X(X, net)
        y = self._encode(_labels(y, X.shape[0]))
        X_test, y_test = self._test_set(X_test, y_test, net)
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
            raise _not_fitted_error()("This FenchelClassifier instance is not fitted yet; call fit "
                                      "first")

    @property
    def weights_(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Weights as NumPy ``(W, b)`` pairs (dense ``(n_in, n_out)``, conv ``(kh, kw, c_in, c_out)``)."""
        self._check_fitted()
        return [(to_numpy(W), to_numpy(b)) for W, b in self.trainer_.weights]

    def _outputs(self, X: Any) -> np.ndarray:
        self._check_fitted()
        net, xp = self.network_, self.trainer_.xp
        X = xp.asarray(self._prepare_X(X, net))
        return to_numpy(net.forward(X, self.trainer_.weights))

    def decision_function(self, X: Any) -> np.ndarray:
        """Feed-forward network outputs ``(m, n_classes)``; for two classes scikit-learn's
        ``(m,)`` score ``O[:, 1] - O[:, 0]`` (positive: ``classes_[1]``)."""
        O = self._outputs(X)
        return O[:, 1] - O[:, 0] if O.shape[1] == 2 else O

    def predict(self, X: Any) -> np.ndarray:
        """Labels (from ``classes_``) by the feed-forward rule (arg-max output) or the lifted rule
        (``predict_rule``)."""
        self._check_fitted()
        if self.config_.predict_rule == "lifted":
            net, xp = self.network_, self.trainer_.xp
            idx = to_numpy(predict_lifted(net, self.trainer_.weights, xp.asarray(self._prepare_X(X, net))))
        else:
            idx = self._outputs(X).argmax(axis=1)
        return self.classes_[np.asarray(idx, dtype=np.int64)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the feed-forward outputs, columns in ``classes_`` order (for an MSE-trained
        network a normalised score)."""
        return softmax(self._outputs(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba` (log-softmax of the outputs, computed stably)."""
        O = self._outputs(X)
        O = O - O.max(axis=1, keepdims=True)
        return O - np.log(np.exp(O).sum(axis=1, keepdims=True))

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)``."""
        pred = self.predict(X)
        y = _labels(y, pred.shape[0])
        return float(np.mean(pred == y))
