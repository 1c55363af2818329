"""Taylor et al. (2016): training a ReLU network by ADMM / Bregman iteration, no gradients.

Reference: G. Taylor, R. Burmeister, Z. Xu, B. Singh, A. Patel, T. Goldstein,
"Training neural networks without gradients: a scalable ADMM approach", ICML 2016.
A comparator of the Fenchel lifted network (Gu, Askari, El Ghaoui 2020, Fig. 1).

The problem (samples in rows here; the paper puts samples in columns). A network
with ``L`` weight layers and no biases, ``a_0 = X`` (m x n_0), pre-activations
``z_l`` (m x n_l), activations ``a_l = h(z_l) = max(z_l, 0)`` for ``l < L`` and
output ``z_L``, is trained by minimising over ``W_l, a_l, z_l``

    J = ||z_L - Y||^2 + <z_L, lambda> + beta ||z_L - a_{L-1} W_L||^2
        + sum_{l<L} ( gamma ||a_l - h(z_l)||^2 + beta ||z_l - a_{l-1} W_l||^2 )        (1)

(Frobenius norms, MSE loss ``l(z, Y) = ||z - Y||^2`` on one-hot targets). Only the
output constraint ``z_L = a_{L-1} W_L`` carries a Lagrange multiplier ``lambda``
(m x n_L); the hidden constraints are handled by quadratic penalties. As in the
paper (their eq. 4), ``lambda`` enters through the Bregman term ``<z_L, lambda>``,
so the W- and a-steps do not see it. One iteration (the paper's Algorithm 1):

    for l = 1 .. L-1:
        W_l <- argmin_W ||z_l - a_{l-1} W||^2 (+ tiny ridge)              (weight step)
        a_l <- argmin_a beta ||z_{l+1} - a W_{l+1}||^2 + gamma ||a - h(z_l)||^2
             = (beta z_{l+1} W_{l+1}^T + gamma h(z_l)) (beta W_{l+1} W_{l+1}^T + gamma I)^{-1}
        z_l <- argmin_z gamma ||a_l - h(z)||^2 + beta ||z - a_{l-1} W_l||^2  (elementwise, 2 branches)
    W_L <- argmin_W ||z_L - a_{L-1} W||^2
    z_L <- argmin_z ||z - Y||^2 + <z, lambda> + beta ||z - a_{L-1} W_L||^2
         = (Y + beta a_{L-1} W_L - lambda / 2) / (1 + beta)
    lambda <- lambda + beta (z_L - a_{L-1} W_L)        (skipped in the warm-up iterations)

The first ``n_warmup`` iterations skip the multiplier update ("warm start", as in the
paper). The weight step is the paper's pseudo-inverse ``W_l = a_{l-1}^+ z_l`` computed as a
ridge-regularised normal-equations solve ``(A^T A + r I) W = A^T Z`` by Cholesky, with
``r = ridge * trace(A^T A) / n`` (a relative ridge: MNIST has all-zero pixel columns, so
``A^T A`` is singular and the plain normal equations have no unique solution; ``ridge -> 0``
gives the pseudo-inverse solution).

Biases: the paper has none, and neither does this implementation (``weights_`` reports
zero biases). Multiplier step: the paper's ``beta`` (with the quadratic penalty
``beta ||.||^2`` the textbook augmented-Lagrangian step would be ``2 beta``; any positive
step keeps the fixed points, where ``lambda = 2 (Y - z_L)``).

Differences from the public code the Fenchel paper ran (PotatoThanh/ADMM-NeuralNetworks):
its default beta = gamma = 5, 10 warm-up + 100 iterations, are our defaults; its z-step
discarded the results of ``tf.where`` and its multiplier step replaced ``lambda`` by
``beta (z_L - a_{L-1} W_L)`` instead of accumulating; we follow the paper.

Prediction uses the feed-forward network ``h(... h(X W_1) ...) W_L``;
``predict_proba`` is the softmax of its outputs (an MSE model has no calibrated
probabilities; this is a normalised score).

This module also holds helpers shared with :mod:`cvx_fenchel.baselines.lau_bcd`: input
validation, the Cholesky solves, the two-branch ReLU least-squares step and the common
estimator base class.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import numpy as np

from ..backend import check_array, check_int, check_scalar, get_backend, get_namespace, to_numpy
from ..errors import InputError
from ..solvers import cholesky, cholesky_solve
from ..history import History
from ..losses import softmax

__all__ = ["TaylorADMMClassifier", "admm_weight_step", "admm_activation_step",
           "relu_least_squares_step", "admm_last_z_step", "admm_multiplier_step",
           "admm_objective", "spd_solve", "cholesky_solve"]


# ----------------------------------------------------------------------------------------
# linear algebra shared by both baselines
# ----------------------------------------------------------------------------------------

def spd_solve(G: Any, R: Any) -> Any:
    """Solve ``G X = R`` for a symmetric positive definite ``G`` (n, n), ``R`` (n, k), by Cholesky."""
    return cholesky_solve(cholesky(G), R)


def _relative_ridge(G: Any, ridge: float) -> float:
    """``ridge * trace(G) / n`` (``ridge`` alone when ``G`` has zero trace)."""
    scale = float(G.trace()) / G.shape[0]
    return ridge * (scale if scale > 0 else 1.0)


def _add_diag(G: Any, value: float) -> Any:
    xp, _ = get_namespace(G)
    return G + value * xp.eye(G.shape[0], dtype=G.dtype)


# ----------------------------------------------------------------------------------------
# the ADMM steps (each the exact minimiser of its block of (1))
# ----------------------------------------------------------------------------------------

def admm_weight_step(A: Any, Z: Any, ridge: float = 1e-6, *, chol: Any = None) -> Any:
    """Weight step: ``W = argmin_W ||Z - A W||_F^2 + r ||W||_F^2`` with ``r = ridge * tr(A^T A)/n``.

    Solves ``(A^T A + r I) W = A^T Z`` by Cholesky; ``ridge -> 0`` tends to the paper's
    pseudo-inverse solution ``W = A^+ Z``.

    Parameters
    ----------
    A : (m, n_in) activations of the previous layer ``a_{l-1}``
    Z : (m, n_out) pre-activations ``z_l``
    ridge : float >= 0, relative ridge
    chol : optional lower Cholesky factor of ``A^T A + r I`` (cached when ``A`` is fixed,
        e.g. the input layer)

    Returns
    -------
    W : (n_in, n_out)
    """
    if chol is None:
        chol = weight_step_factor(A, ridge)
    return cholesky_solve(chol, A.T @ Z)


def weight_step_factor(A: Any, ridge: float) -> Any:
    """Lower Cholesky factor of ``A^T A + ridge * tr(A^T A)/n * I`` (see :func:`admm_weight_step`)."""
    G = A.T @ A
    return cholesky(_add_diag(G, _relative_ridge(G, ridge)))


def admm_activation_step(Z_next: Any, W_next: Any, Z: Any, beta: float, gamma: float) -> Any:
    """Activation step: ``a = argmin_a beta ||Z_next - a W_next||^2 + gamma ||a - relu(Z)||^2``.

    Closed form (samples in rows): ``a (beta W W^T + gamma I) = beta Z_next W^T + gamma relu(Z)``,
    solved by Cholesky of the (n_l x n_l) matrix.

    Parameters
    ----------
    Z_next : (m, n_{l+1}) next layer's pre-activations ``z_{l+1}``
    W_next : (n_l, n_{l+1}) next layer's weights ``W_{l+1}``
    Z : (m, n_l) this layer's pre-activations ``z_l``
    beta, gamma : float > 0

    Returns
    -------
    a : (m, n_l)
    """
    xp, _ = get_namespace(Z_next, W_next, Z)
    G = _add_diag(beta * (W_next @ W_next.T), gamma)
    R = beta * (Z_next @ W_next.T) + gamma * xp.maximum(Z, 0)
    return spd_solve(G, R.T).T


def relu_least_squares_step(V: Any, Q: Any, gamma: float, c: float) -> Any:
    """Elementwise ``u = argmin_u gamma (v - relu(u))^2 + c (u - q)^2`` (exact, two branches).

    On ``u >= 0`` the objective is ``gamma (v - u)^2 + c (u - q)^2``, minimised at
    ``u1 = max((gamma v + c q) / (gamma + c), 0)``; on ``u <= 0`` it is
    ``gamma v^2 + c (u - q)^2``, minimised at ``u2 = min(q, 0)``. The better of the two is
    taken elementwise (ties go to ``u1``). This is Taylor et al.'s z-step for ReLU
    (``v = a_l``, ``q = a_{l-1} W_l``, ``c = beta``) and, after completing the square,
    Zeng/Lau et al.'s proximal ReLU step.

    Parameters
    ----------
    V, Q : arrays of one shape (targets of the activation and of the pre-activation)
    gamma : float >= 0, c : float > 0

    Returns
    -------
    U : array of the same shape
    """
    xp, _ = get_namespace(V, Q)
    u1 = xp.maximum((gamma * V + c * Q) / (gamma + c), 0)
    u2 = xp.minimum(Q, 0)
    f1 = gamma * (V - u1) ** 2 + c * (u1 - Q) ** 2
    f2 = gamma * V ** 2 + c * (u2 - Q) ** 2
    return xp.where(f1 <= f2, u1, u2)


def admm_last_z_step(Y: Any, M: Any, lam: Any, beta: float) -> Any:
    """Output step: ``z_L = argmin_z ||z - Y||^2 + <z, lambda> + beta ||z - M||^2``.

    ``M = a_{L-1} W_L``; closed form ``z_L = (Y + beta M - lambda / 2) / (1 + beta)``.
    """
    return (Y + beta * M - 0.5 * lam) / (1.0 + beta)


def admm_multiplier_step(lam: Any, Z_last: Any, M: Any, beta: float) -> Any:
    """Multiplier (Bregman) step ``lambda + beta (z_L - a_{L-1} W_L)``."""
    return lam + beta * (Z_last - M)


def admm_objective(Y: Any, Ws: list, As: list, Zs: list, lam: Any, beta: float, gamma: float,
                   Ms: list | None = None) -> dict:
    """Objective (1) and its parts.

    Parameters
    ----------
    Y : (m, K) one-hot targets
    Ws : list of L weights, ``Ws[l]`` (n_l, n_{l+1})
    As : list of L activations ``[X, a_1, ..., a_{L-1}]``
    Zs : list of L pre-activations ``[z_1, ..., z_L]``
    lam : (m, K) multiplier
    Ms : optional precomputed products ``As[l] @ Ws[l]``

    Returns
    -------
    dict with ``objective``, ``loss`` (``||z_L - Y||^2``), ``residual_last``
    (``||z_L - a_{L-1} W_L||``), ``residual_linear`` (hidden ``sqrt(sum ||z_l - a_{l-1} W_l||^2)``),
    ``residual_relu`` (``sqrt(sum ||a_l - relu(z_l)||^2)``).
    """
    xp, _ = get_namespace(Y, lam, *Ws, *As, *Zs)
    if Ms is None:
        Ms = [A @ W for A, W in zip(As, Ws)]
    L = len(Ws)
    loss = float(((Zs[-1] - Y) ** 2).sum())
    r_last = float(((Zs[-1] - Ms[-1]) ** 2).sum())
    r_lin = sum(float(((Zs[i] - Ms[i]) ** 2).sum()) for i in range(L - 1))
    r_relu = sum(float(((As[i + 1] - xp.maximum(Zs[i], 0)) ** 2).sum()) for i in range(L - 1))
    obj = loss + float((Zs[-1] * lam).sum()) + beta * (r_last + r_lin) + gamma * r_relu
    return {"objective": obj, "loss": loss, "residual_last": r_last ** 0.5,
            "residual_linear": r_lin ** 0.5, "residual_relu": r_relu ** 0.5}


# ----------------------------------------------------------------------------------------
# estimator plumbing shared with lau_bcd
# ----------------------------------------------------------------------------------------

def _check_hidden(hidden: Any) -> tuple[int, ...]:
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        hidden = tuple(hidden)
    except TypeError:
        raise InputError(f"hidden must be a tuple of positive integers, got {hidden!r}") from None
    if not hidden:
        raise InputError("hidden must name at least one hidden layer, got ()")
    for h in hidden:
        check_int(h, "every entry of hidden", 1)
    return tuple(int(h) for h in hidden)


def _check_labels(y: Any, name: str, m: int, n_classes: int | None) -> np.ndarray:
    """Integer labels on the host, shape (m,), in ``0..n_classes-1`` (when given)."""
    if y is None:
        raise InputError(f"{name} is None; expected integer labels")
    y = np.asarray(to_numpy(y))
    if y.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {y.shape}")
    if y.shape[0] != m:
        raise InputError(f"{name} has {y.shape[0]} labels but X has {m} rows")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise InputError(f"{name} contains NaN or inf")
        if not np.all(y == np.round(y)):
            raise InputError(f"{name} must hold integer labels, got non-integer floats")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise InputError(f"{name} must hold integer labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise InputError(f"{name} must lie in 0..K-1, got a negative label {int(y.min())}")
    if n_classes is not None and y.size and y.max() >= n_classes:
        raise InputError(f"{name} must lie in 0..{n_classes - 1}, got label {int(y.max())}")
    return y


def _one_hot(y: np.ndarray, K: int, xp: ModuleType, dtype: Any) -> Any:
    Y = np.zeros((y.shape[0], K), dtype=dtype)
    Y[np.arange(y.shape[0]), y] = 1
    return xp.asarray(Y)


def _accuracy(scores: Any, y: Any) -> float:
    return float((scores.argmax(axis=1) == y).mean())


class _FullBatchMSEClassifier:
    """Common parts of the full-batch MSE baselines: validation, prediction, scoring.

    Subclasses implement ``_fit(X, Y, y, X_test, y_test, n_iter, xp)`` returning the device
    parameter list ``[(W, b), ...]`` (``b`` may be ``None``) and filling ``self.history_``.
    """

    _model_name = "base"

    def _hyper(self) -> dict:
        raise NotImplementedError

    def _validate_hyper(self) -> None:
        raise NotImplementedError

    def _prepare(self, X: Any, y: Any, X_test: Any, y_test: Any) -> tuple:
        self._validate_hyper()
        self.hidden_ = _check_hidden(self.hidden)
        xp = get_backend(self.backend)
        dtype = np.dtype(self.dtype)
        if dtype.name not in ("float32", "float64"):
            raise InputError(f"dtype must be float32 or float64, got {self.dtype!r}")
        X = check_array(X, "X", ndim=2, xp=xp, dtype=dtype)
        m, n = X.shape
        if m < 1 or n < 1:
            raise InputError(f"X must be non-empty, got shape {tuple(X.shape)}")
        n_classes = getattr(self, "n_classes", None)
        if n_classes is not None:
            n_classes = check_int(n_classes, "n_classes", 2)
        y = _check_labels(y, "y", m, n_classes)
        K = n_classes if n_classes is not None else max(int(y.max()) + 1, 2)
        if (X_test is None) != (y_test is None):
            raise InputError("give both X_test and y_test, or neither")
        if X_test is not None:
            X_test = check_array(X_test, "X_test", ndim=2, shape=(None, n), xp=xp, dtype=dtype)
            y_test = xp.asarray(_check_labels(y_test, "y_test", X_test.shape[0], K))
        self.n_classes_ = K
        self.classes_ = np.arange(K)
        self.n_features_in_ = n
        self._xp = xp
        Y = _one_hot(y, K, xp, dtype)
        return X, Y, xp.asarray(y), X_test, y_test, xp

    def fit(self, X: Any, y: Any, *, X_test: Any = None, y_test: Any = None,
            epochs: int | None = None) -> "_FullBatchMSEClassifier":
        """Train on ``(X, y)`` full batch; ``epochs`` (iterations) overrides ``n_iter``.

        Parameters
        ----------
        X : (m, n_features) float array; y : (m,) integer labels in ``0..K-1``
        X_test, y_test : optional test data, scored after every iteration
        epochs : optional number of full-batch iterations (default ``self.n_iter``); the maximum
            when a stop rule is active (:func:`cvx_fenchel.history.stopping`)

        Returns
        -------
        self
        """
        X, Y, y_dev, X_test, y_test, xp = self._prepare(X, y, X_test, y_test)
        n_iter = self.n_iter if epochs is None else epochs
        n_iter = check_int(n_iter, "epochs" if epochs is not None else "n_iter", 0)
        self.history_ = History(meta={"model": self._model_name, **self._hyper(),
                                      "n_train": int(X.shape[0]), "n_iter": n_iter,
                                      "backend": xp.__name__})
        params = self._fit(X, Y, y_dev, X_test, y_test, n_iter, xp)
        self._params = params
        self.weights_ = [(to_numpy(W), to_numpy(b) if b is not None
                          else np.zeros(W.shape[1], dtype=W.dtype)) for W, b in params]
        self.n_iter_ = n_iter
        return self

    # -- prediction --------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "_params"):
            raise InputError(f"{type(self).__name__} is not fitted; call fit first")

    @staticmethod
    def _forward(X: Any, params: list) -> Any:
        """Feed-forward network ``relu(... relu(X W_1 + b_1) ...) W_L + b_L`` (no activation last)."""
        xp, _ = get_namespace(X)
        H = X
        for i, (W, b) in enumerate(params):
            H = H @ W
            if b is not None:
                H = H + b
            if i < len(params) - 1:
                H = xp.maximum(H, 0)
        return H

    def decision_function(self, X: Any) -> Any:
        """Network outputs ``(m, n_classes)`` (NumPy) of the feed-forward network."""
        self._check_fitted()
        X = check_array(X, "X", ndim=2, shape=(None, self.n_features_in_), xp=self._xp,
                        dtype=np.dtype(self.dtype))
        return to_numpy(self._forward(X, self._params))

    def predict(self, X: Any) -> np.ndarray:
        """Integer labels: the arg-max of the network outputs."""
        return self.decision_function(X).argmax(axis=1).astype(np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the network outputs (a normalised score; the model is trained by MSE)."""
        return to_numpy(softmax(self.decision_function(X)))

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)``."""
        pred = self.predict(X)
        y = _check_labels(y, "y", pred.shape[0], self.n_classes_)
        return float((pred == y).mean())

    def _log_iteration(self, it: int, t0: float, t_total: float, t_step: float, parts: dict, H: Any,
                       Y: Any, y: Any, X_test: Any, y_test: Any, params: list, diverged: str,
                       **epoch_extra: Any) -> float:
        """Record iteration ``it`` (0-based): network MSE and accuracies of the feed-forward scores
        ``H`` and of ``params`` on the test set; raise FloatingPointError(``diverged``) on a
        non-finite objective. Returns the cumulative time including this evaluation."""
        rec = dict(parts, network_mse=float(((H - Y) ** 2).sum()) / Y.shape[0],
                   train_accuracy=_accuracy(H, y))
        if X_test is not None:
            rec["test_accuracy"] = _accuracy(self._forward(X_test, params), y_test)
        t_total += time.perf_counter() - t0
        if not np.isfinite(parts["objective"]):
            raise FloatingPointError(diverged)
        self.history_.log_batch(epoch=it + 1, batch=0, loss=parts["objective"],
                                network_loss=rec["network_mse"],
                                train_accuracy=rec["train_accuracy"], time=t_total)
        self.history_.log_epoch(epoch=it + 1, **epoch_extra, time=t_total, time_step=t_step, **rec)
        return t_total

    # -- progress -----------------------------------------------------------------------
    def _progress(self, n_iter: int):
        if not self.verbose:
            return range(n_iter)
        from tqdm.auto import tqdm
        return tqdm(range(n_iter), desc=self._model_name, unit="it")


def _init_weights(sizes: list, scale: Any, rng: np.random.Generator, xp: ModuleType,
                  dtype: Any) -> list:
    """Gaussian weights ``N(0, s^2)``; ``scale=None`` gives ``s = 1/sqrt(n_in)``."""
    Ws = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        s = 1.0 / np.sqrt(n_in) if scale is None else float(scale)
        Ws.append(xp.asarray((s * rng.standard_normal((n_in, n_out))).astype(dtype)))
    return Ws


# ----------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------

class TaylorADMMClassifier(_FullBatchMSEClassifier):
    """Taylor et al. (2016) ADMM training of a bias-free ReLU network with MSE loss.

    Minimises objective (1) of the module docstring by the iteration described there
    (weight least squares, activation least squares, two-branch ReLU z-step, output z-step
    with the multiplier, Bregman multiplier update after ``n_warmup`` warm-up iterations).

    Parameters
    ----------
    hidden : tuple of int, hidden layer widths (784-300-10: ``(300,)``)
    beta : float > 0, penalty on ``||z_l - a_{l-1} W_l||^2`` (all layers) and multiplier step
    gamma : float > 0, penalty on ``||a_l - relu(z_l)||^2``
    n_iter : int >= 0, iterations (full-batch sweeps), warm-up included
    n_warmup : int >= 0, first iterations without multiplier update
    ridge : float >= 0, relative ridge of the weight least squares (see :func:`admm_weight_step`)
    init_scale : float or None, std of the Gaussian initial weights (None: ``1/sqrt(n_in)``);
        ``z`` and ``a`` start at the feed-forward values of these weights, ``lambda = 0``
    seed : int; backend : "auto" | "numpy" | "cupy"; dtype : "float64" | "float32"
    verbose : bool, tqdm progress bar
    n_classes : int or None (None: ``max(y) + 1``)

    Attributes
    ----------
    weights_ : list of ``(W (n_in, n_out), b zeros (n_out,))`` NumPy pairs
    history_ : History; one epoch record per iteration with ``objective`` (1), ``loss``,
        ``residual_last``, ``residual_linear``, ``residual_relu``, ``network_mse`` (mean over
        samples of the feed-forward squared error), ``train_accuracy``, ``test_accuracy``,
        ``time`` (cumulative s), ``time_step`` (s of this iteration's updates)
    n_classes_, classes_, n_iter_
    """

    _model_name = "taylor_admm"

    def __init__(self, hidden: tuple = (300,), beta: float = 5.0, gamma: float = 5.0,
                 n_iter: int = 110, n_warmup: int = 10, ridge: float = 1e-6,
                 init_scale: float | None = None, seed: int = 0, backend: str = "auto",
                 dtype: str = "float64", verbose: bool = False, n_classes: int | None = None):
        self.hidden = hidden
        self.beta = beta
        self.gamma = gamma
        self.n_iter = n_iter
        self.n_warmup = n_warmup
        self.ridge = ridge
        self.init_scale = init_scale
        self.seed = seed
        self.backend = backend
        self.dtype = dtype
        self.verbose = verbose
        self.n_classes = n_classes

    def _hyper(self) -> dict:
        return {"hidden": list(self.hidden_), "beta": self.beta, "gamma": self.gamma,
                "n_warmup": self.n_warmup, "ridge": self.ridge, "init_scale": self.init_scale,
                "seed": self.seed, "dtype": str(self.dtype), "bias": False}

    def _validate_hyper(self) -> None:
        check_scalar(self.beta, "beta", low=0.0, low_inclusive=False)
        check_scalar(self.gamma, "gamma", low=0.0, low_inclusive=False)
        check_scalar(self.ridge, "ridge", low=0.0)
        if self.init_scale is not None:
            check_scalar(self.init_scale, "init_scale", low=0.0, low_inclusive=False)
        check_int(self.n_warmup, "n_warmup", 0)
        check_int(self.seed, "seed", 0)

    def _fit(self, X, Y, y, X_test, y_test, n_iter, xp):
        beta, gamma, ridge = float(self.beta), float(self.gamma), float(self.ridge)
        rng = np.random.default_rng(self.seed)
        sizes = [X.shape[1], *self.hidden_, Y.shape[1]]
        L = len(sizes) - 1
        Ws = _init_weights(sizes, self.init_scale, rng, xp, X.dtype)
        # feed-forward start: As = [X, a_1, ..., a_{L-1}], Zs = [z_1, ..., z_L]
        As, Zs = [X], []
        for i in range(L):
            Zs.append(As[i] @ Ws[i])
            if i < L - 1:
                As.append(xp.maximum(Zs[i], 0))
        lam = xp.zeros_like(Y)
        chol0 = weight_step_factor(X, ridge)  # the input layer's Gram matrix never changes
        Ms = [None] * L
        t_total = 0.0
        for it in self._progress(n_iter):
            t0 = time.perf_counter()
            for i in range(L - 1):  # hidden layers l = i + 1
                Ws[i] = admm_weight_step(As[i], Zs[i], ridge, chol=chol0 if i == 0 else None)
                As[i + 1] = admm_activation_step(Zs[i + 1], Ws[i + 1], Zs[i], beta, gamma)
                Ms[i] = As[i] @ Ws[i]
                Zs[i] = relu_least_squares_step(As[i + 1], Ms[i], gamma, beta)
            Ws[-1] = admm_weight_step(As[-1], Zs[-1], ridge, chol=chol0 if L == 1 else None)
            Ms[-1] = As[-1] @ Ws[-1]
            Zs[-1] = admm_last_z_step(Y, Ms[-1], lam, beta)
            if it >= self.n_warmup:
                lam = admm_multiplier_step(lam, Zs[-1], Ms[-1], beta)
            parts = admm_objective(Y, Ws, As, Zs, lam, beta, gamma, Ms=Ms)
            t_step = time.perf_counter() - t0
            # feed-forward network of the current weights (reuses X W_1 = Ms[0])
            H = Ms[0]
            for i in range(1, L):
                H = xp.maximum(H, 0) @ Ws[i]
            t_total = self._log_iteration(
                it, t0, t_total, t_step, parts, H, Y, y, X_test, y_test, [(W, None) for W in Ws],
                f"ADMM diverged at iteration {it + 1} (objective {parts['objective']}); lower beta "
                "or gamma", multiplier_updated=it >= self.n_warmup)
            if self.history_.stop_reason():  # the active stop rule (history.stopping)
                break
        self._state = {"W": Ws, "a": As[1:], "z": Zs, "lambda": lam}
        return [(W, None) for W in Ws]
