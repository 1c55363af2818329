r"""The lifted neural network of Askari, Negiar, Sambharya and El Ghaoui (2018; tech report 2021).

Reference: ``papers/lifted_neural_networks_techreport2021.md``, model (5) (MSE), model (11)
with the output variable of (15) (cross-entropy), block-coordinate descent of its Section 6
and the simplex step of its Appendix A. Samples are in rows here (the report puts them in
columns): layer ``l`` maps ``X_l`` (m, n_l) to ``X_l W_l + 1 b_l^T`` (m, n_{l+1}).

The lifted training problem, ``L`` hidden layers, ``X_0 = X`` (m, n_0), one-hot ``Y`` (m, K):

.. math::

    J = \sum_{l=0}^{L-1} \lambda_l \|X_{l+1} - X_l W_l - 1 b_l^\top\|_F^2
        + \lambda_L \|T - X_L W_L - 1 b_L^\top\|_F^2 + \ell(Y, T)
        + \sum_{l=0}^{L} \rho_l (\|W_l\|_F^2 + \|b_l\|^2),
    \qquad X_l \ge 0 \;(l = 1..L),

* ``loss="mse"``: ``T = Y`` fixed and ``\ell = 0`` (model (5) with the squared loss
  weighted by ``lambda_L``: ``lambda_L ||Y - X_L W_L - b_L||^2``);
* ``loss="cross_entropy"``: ``T = X_{L+1}`` is a variable with rows on the probability
  simplex and ``\ell(Y, T) = -\mathrm{Tr}\, Y^\top \log T`` (model (11) as solved in
  Section 6, eq. (15)).

The ridge term includes the biases because the library's ridge step
(:class:`cvx_fenchel.subproblems.LNNW`) does; the report penalises ``W`` only, a difference of
``rho ||b||^2`` against sums over all samples (negligible for ``rho = 1e-3``).

One BCD sweep updates, each block by its exact minimiser with the others fixed:

1. ``X_l`` for ``l = 1, ..., L`` (forward), the non-negative least squares
   :math:`\min_{Z \ge 0} \lambda_l \|Z W_l + b_l - X_{l+1}\|^2 + \lambda_{l-1}\|Z - (X_{l-1}W_{l-1} + b_{l-1})\|^2`
   (:class:`~cvx_fenchel.subproblems.LNNX` from the current value: Newton's method on each row's
   dual when ``X_{l+1}`` has at most 32 units, as the last hidden layer before the 10 classes
   (:mod:`cvx_fenchel.subproblems.lnn_dual`), else FISTA; ``X_{L+1}`` is ``T``);
2. cross-entropy only: ``X_{L+1} = argmin_{Z in simplex} -Tr Y^T log Z + lambda_L ||Z - X_L W_L - b_L||^2``
   (:class:`~cvx_fenchel.subproblems.LNNSimplexCE`, bisection on the dual variable);
3. ``(W_l, b_l)`` for ``l = 0, ..., L``: ridge regressions
   :math:`\min \lambda_l \|[X_l\ 1]\theta - X_{l+1}\|^2 + \rho_l\|\theta\|^2 (+ \gamma\|\theta - \theta^0\|^2)`,
   closed form :math:`(\lambda_l A^\top A + (\rho_l + \gamma) I)\theta = \lambda_l A^\top X_{l+1} + \gamma\theta^0`
   by Cholesky (the same problem as :class:`~cvx_fenchel.subproblems.LNNW`; the Gram matrix
   of the fixed input layer is computed once).

Each step minimises ``J`` over its block, so ``J`` never increases; an X-step whose
(iterative) solution would raise its block objective (possible only at the solver's
rounding level, or when ``x_max_iter`` cuts it short) is rejected and the old block kept.

Initialisation: Gaussian weights ``N(0, 1/n_in)``, zero biases, ``X_l`` the feed-forward
ReLU values of these weights, and (cross-entropy) ``X_{L+1}`` the exact simplex step.

Prediction: the feed-forward ReLU network of the trained weights (the report's choice,
"applying the standard feedforward rule ... is often enough"). For one hidden layer and MSE
the lifted rule (12) gives the same labels: with the output free the output term vanishes and
the remaining problem ``min_{x_1 >= 0} ||x_1 - (x W_0 + b_0)||^2`` is solved by the ReLU.

Mini-batches (``batch_size`` not None): each batch gets its own ``X`` variables initialised
by the feed-forward pass of the current weights, ``n_iter`` sweeps are run on the batch's
lifted objective plus the proximal term ``gamma ||(W, b) - (W, b)_{previous batch}||^2``
(the batched model of the Fenchel paper, Algorithm 2, applied to the 2018 penalties).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..backend import check_int, check_scalar, get_namespace, to_numpy
from ..errors import InputError, UnknownNameError
from ..history import History
from ..losses import softmax
from ..solvers import cholesky, cholesky_solve
from ..subproblems import LNNSimplexCE, LNNX
from .admm import _FullBatchMSEClassifier, _accuracy

__all__ = ["LNNClassifier", "lifted_init_weights", "lnn_objective", "lnn_x_step", "lnn_output_step",
           "lnn_w_step", "lnn_gram", "feed_forward"]

LOSSES = ("mse", "cross_entropy")


# ----------------------------------------------------------------------------------------
# the pieces (each a function of arrays, NumPy or CuPy)
# ----------------------------------------------------------------------------------------

def feed_forward(X: Any, Ws: list, bs: list) -> tuple[list, Any]:
    """Feed-forward ReLU pass: hidden ``[X_1, ..., X_L]`` (``X_{l+1} = relu(X_l W_l + b_l)``)
    and the output ``X_L W_L + b_L`` (m, K)."""
    xp, _ = get_namespace(X)
    H, hidden = X, []
    for l, (W, b) in enumerate(zip(Ws, bs)):
        H = H @ W + b
        if l < len(Ws) - 1:
            H = xp.maximum(H, 0)
            hidden.append(H)
    return hidden, H


def lnn_objective(X: Any, Y: Any, Ws: list, bs: list, Xs: list, lam: list, rho: list,
                  loss: str, T: Any = None, Us: list | None = None) -> dict:
    r"""The lifted objective ``J`` of the module docstring and its parts.

    Parameters
    ----------
    X : (m, n_0) inputs; Y : (m, K) one-hot targets
    Ws, bs : L+1 weights (n_l, n_{l+1}) and biases (n_{l+1},)
    Xs : hidden ``[X_1, ..., X_L]`` (each >= 0)
    lam, rho : L+1 non-negative weights each
    loss : "mse" or "cross_entropy"
    T : (m, K) output variable (rows on the simplex), cross-entropy only
    Us : optional pre-computed ``[X_l W_l + b_l]`` (l = 0..L)

    Returns
    -------
    dict with ``objective`` (J), ``loss`` (``-Tr Y^T log T``; 0 for MSE), ``penalty``
    (the sum of ``lambda_l`` terms), ``ridge``.
    """
    xp, xsp = get_namespace(X, Y)
    ins = [X, *Xs]
    if Us is None:
        Us = [ins[l] @ Ws[l] + bs[l] for l in range(len(Ws))]
    targets = [*Xs, Y if loss == "mse" else T]
    pen = sum(lam[l] * float(xp.sum((targets[l] - Us[l]) ** 2)) for l in range(len(Ws)))
    ridge = sum(rho[l] * float(xp.sum(Ws[l] ** 2) + xp.sum(bs[l] ** 2)) for l in range(len(Ws)))
    data = 0.0 if loss == "mse" else -float(xp.sum(xsp.special.xlogy(Y, T)))
    return {"objective": data + pen + ridge, "loss": data, "penalty": pen, "ridge": ridge}


def lnn_x_step(X_next: Any, U_prev: Any, W: Any, b: Any, X_old: Any, lam: float, lam_prev: float, *,
               tol: float | None = None, max_iter: int | None = None) -> tuple[Any, dict]:
    r"""Hidden X-step (exact up to ``tol``):
    :math:`\arg\min_{Z \ge 0} \lambda \|Z W + b - X_{next}\|^2 + \lambda_{prev}\|Z - U_{prev}\|^2`.

    FISTA (:class:`~cvx_fenchel.subproblems.LNNX`) warm-started at ``X_old``; the old value is
    kept when the new one does not lower the block objective.

    Parameters
    ----------
    X_next : (m, n_out); U_prev : (m, n); W : (n, n_out); b : (n_out,); X_old : (m, n) >= 0

    Returns
    -------
    (Z (m, n), info dict with ``n_iter``, ``residual``, ``accepted``, ``objective``)
    """
    sub = LNNX(X_next, U_prev, W, b, lam=lam, lam_prev=lam_prev, dtype=X_old.dtype)
    r = sub.solve_fast(x0=X_old, tol=tol, max_iter=max_iter, warn=False)
    old = sub.objective(X_old)
    accepted = r.objective <= old
    return (r.x if accepted else X_old), {"n_iter": r.n_iter, "residual": r.residual,
                                           "accepted": bool(accepted),
                                           "objective": r.objective if accepted else old}


def lnn_output_step(Y: Any, U_last: Any, lam: float) -> Any:
    r"""Cross-entropy output step
    :math:`\arg\min_{Z \ge 0, Z 1 = 1} -\mathrm{Tr}\,Y^\top \log Z + \lambda \|Z - U_L\|^2`
    (:class:`~cvx_fenchel.subproblems.LNNSimplexCE`), ``U_L = X_L W_L + b_L`` (m, K)."""
    return LNNSimplexCE(Y, U_last, lam=lam, dtype=U_last.dtype).solve_fast().x


def lnn_gram(X: Any) -> Any:
    """``[X 1]^T [X 1]`` ((n+1, n+1)), the Gram matrix of a dense layer's ridge step."""
    xp, _ = get_namespace(X)
    A = xp.concatenate([X, xp.ones((X.shape[0], 1), dtype=X.dtype)], axis=1)
    return A.T @ A


def lnn_w_step(X: Any, T: Any, lam: float, rho: float, *, gamma: float = 0.0, W0: Any = None,
               b0: Any = None, gram: Any = None) -> tuple[Any, Any]:
    r"""Ridge W-step :math:`\arg\min_{W,b} \lambda\|XW + 1b^\top - T\|^2 + \rho(\|W\|^2 + \|b\|^2)
    + \gamma(\|W - W^0\|^2 + \|b - b^0\|^2)`.

    With :math:`A = [X\ 1]`, :math:`\theta = [W; b^\top]`: solves
    :math:`(\lambda A^\top A + (\rho + \gamma) I)\theta = \lambda A^\top T + \gamma\theta^0`
    by Cholesky (the closed form of :class:`~cvx_fenchel.subproblems.LNNW`).

    Parameters
    ----------
    X : (m, n); T : (m, k); lam > 0; rho, gamma >= 0 with ``rho + gamma > 0`` or ``A`` of
    full column rank; W0 (n, k), b0 (k,) for ``gamma > 0``; gram : optional :func:`lnn_gram` of X

    Returns
    -------
    (W (n, k), b (k,))
    """
    xp, _ = get_namespace(X, T)
    if gram is None:
        gram = lnn_gram(X)
    rhs = xp.concatenate([X.T @ T, T.sum(axis=0, keepdims=True)], axis=0) * lam
    if gamma:
        rhs = rhs + gamma * xp.concatenate([W0, b0[None, :]], axis=0)
    H = lam * gram + (rho + gamma) * xp.eye(gram.shape[0], dtype=gram.dtype)
    try:
        theta = cholesky_solve(cholesky(H), rhs)
        if not bool(xp.all(xp.isfinite(theta))):
            raise np.linalg.LinAlgError("non-finite Cholesky solve")
    except np.linalg.LinAlgError:  # singular (rho + gamma = 0, rank-deficient X)
        theta = xp.linalg.lstsq(H, rhs, rcond=None)[0]
    return theta[:-1], theta[-1]


def _per_layer(value: Any, n: int, name: str, positive: bool) -> list[float]:
    """A scalar or a sequence of ``n`` values, validated."""
    vals = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * n
    if len(vals) != n:
        raise InputError(f"{name} must be a scalar or have one value per weight layer ({n}), "
                         f"got {len(vals)}")
    return [check_scalar(v, name, low=0.0, low_inclusive=not positive) for v in vals]


# ----------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------

class LNNClassifier(_FullBatchMSEClassifier):
    """The 2018 lifted neural network trained by block-coordinate descent.

    Parameters
    ----------
    hidden : tuple of int, hidden widths (784-300-10: ``(300,)``)
    loss : "cross_entropy" (model (11), simplex output variable) or "mse" (model (5))
    lam : float > 0 or a sequence of L+1 values, ``lambda_l`` of weight layer ``l``
        (the last one weighs the output term)
    rho : float >= 0 or L+1 values, ridge weight of ``(W_l, b_l)``
    n_iter : int >= 0, BCD sweeps (full batch), or sweeps per batch (mini-batch)
    batch_size : int or None (None: full batch, the report's algorithm)
    epochs : int >= 1, passes over the data in mini-batch mode (ignored for full batch,
        where ``fit(epochs=)`` overrides ``n_iter`` like the other full-batch baselines)
    gamma : float >= 0, mini-batch proximal weight to the previous batch's weights
    init_scale : float or None, std of the Gaussian initial weights (None: ``1/sqrt(n_in)``)
    seed : int; backend : "auto" | "numpy" | "cupy"; dtype : "float64" | "float32"
    verbose : bool, tqdm bar over sweeps (full batch) or batches
    x_tol : float or None, tolerance of the X-steps' FISTA residual (None: 1e-9 in float64,
        1e-5 in float32)
    x_max_iter : int, iteration cap of each X-step (a capped step still lowers ``J``)
    n_classes : int or None (None: ``max(y) + 1``)

    Attributes
    ----------
    weights_ : list of ``(W (n_in, n_out), b (n_out,))`` NumPy pairs (feed-forward network)
    history_ : History; full batch: epoch 0 is the initial point, then one epoch (and one batch)
        record per sweep with ``objective`` (J), ``loss``, ``penalty``, ``ridge``,
        ``train_accuracy``, ``test_accuracy`` (feed-forward rule), ``x_iters`` (FISTA
        iterations of the sweep's X-steps), ``x_residual`` (largest), ``time`` (cumulative
        training seconds), ``time_step``; mini-batch: per batch ``objective`` before/after,
        per epoch accuracies and time
    n_classes_, classes_, n_iter_
    """

    _model_name = "lifted_nn_2018"

    def __init__(self, hidden: tuple = (300,), loss: str = "cross_entropy", lam: Any = 1.0,
                 rho: Any = 1e-3, n_iter: int = 30, batch_size: int | None = None, epochs: int = 1,
                 gamma: float = 0.0, init_scale: float | None = None, seed: int = 0,
                 backend: str = "auto", dtype: str = "float64", verbose: bool = False,
                 x_tol: float | None = None, x_max_iter: int = 2000, n_classes: int | None = None):
        self.hidden = hidden
        self.loss = loss
        self.lam = lam
        self.rho = rho
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.epochs = epochs
        self.gamma = gamma
        self.init_scale = init_scale
        self.seed = seed
        self.backend = backend
        self.dtype = dtype
        self.verbose = verbose
        self.x_tol = x_tol
        self.x_max_iter = x_max_iter
        self.n_classes = n_classes

    # -- hyper-parameters -----------------------------------------------------------------
    def _validate_hyper(self) -> None:
        if self.loss not in LOSSES:
            raise UnknownNameError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        check_int(self.n_iter, "n_iter", 0)
        if self.batch_size is not None:
            check_int(self.batch_size, "batch_size", 1)
        check_int(self.epochs, "epochs", 1)
        check_scalar(self.gamma, "gamma", low=0.0)
        if self.init_scale is not None:
            check_scalar(self.init_scale, "init_scale", low=0.0, low_inclusive=False)
        check_int(self.seed, "seed", 0)
        if self.x_tol is not None:
            check_scalar(self.x_tol, "x_tol", low=0.0, low_inclusive=False)
        check_int(self.x_max_iter, "x_max_iter", 1)
        if not isinstance(self.verbose, (bool, np.bool_)):
            raise InputError(f"verbose must be a bool, got {self.verbose!r}")

    def _hyper(self) -> dict:
        return {"hidden": list(self.hidden_), "loss": self.loss, "lam": self.lam_, "rho": self.rho_,
                "batch_size": self.batch_size, "epochs": self.epochs, "gamma": self.gamma,
                "init_scale": self.init_scale, "seed": self.seed, "dtype": str(self.dtype),
                "x_tol": self.x_tol, "x_max_iter": self.x_max_iter, "bias": True}

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, X_test: Any = None, y_test: Any = None,
            epochs: int | None = None) -> "LNNClassifier":
        """Train by BCD on ``(X, y)``.

        Parameters
        ----------
        X : (m, n_features) float array; y : (m,) integer labels in ``0..K-1``
        X_test, y_test : optional test data, scored after every sweep (full batch) or epoch
        epochs : full batch: number of sweeps (overrides ``n_iter``); mini-batch: passes (the
            maximum when a stop rule is active, :func:`cvx_fenchel.history.stopping`)

        Returns
        -------
        self
        """
        self._validate_hyper()
        X, Y, y_dev, X_test, y_test, xp = self._prepare(X, y, X_test, y_test)
        n_layers = len(self.hidden_) + 1
        self.lam_ = _per_layer(self.lam, n_layers, "lam", positive=True)
        self.rho_ = _per_layer(self.rho, n_layers, "rho", positive=False)
        full = self.batch_size is None
        if full:
            n_iter = self.n_iter if epochs is None else check_int(epochs, "epochs", 0)
            n_epochs = 1
        else:
            n_iter = self.n_iter
            n_epochs = self.epochs if epochs is None else check_int(epochs, "epochs", 1)
        self.history_ = History(meta={"model": self._model_name, **self._hyper(),
                                      "n_train": int(X.shape[0]), "n_iter": n_iter,
                                      "n_epochs": n_epochs, "backend": xp.__name__})
        rng = np.random.default_rng(self.seed)
        sizes = [X.shape[1], *self.hidden_, Y.shape[1]]
        Ws, bs = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            s = 1.0 / np.sqrt(n_in) if self.init_scale is None else float(self.init_scale)
            Ws.append(xp.asarray((s * rng.standard_normal((n_in, n_out))).astype(X.dtype)))
            bs.append(xp.zeros((n_out,), dtype=X.dtype))
        self._params = list(zip(Ws, bs))
        if full:
            self._fit_full(X, Y, y_dev, X_test, y_test, n_iter, Ws, bs, xp)
        else:
            self._fit_batches(X, Y, y_dev, X_test, y_test, n_iter, n_epochs, Ws, bs, xp, rng)
        self._params = list(zip(Ws, bs))
        self.weights_ = [(to_numpy(W).copy(), to_numpy(b).copy()) for W, b in self._params]
        self.n_iter_ = n_iter
        return self

    def _init_state(self, X, Y, Ws, bs) -> dict:
        Xs, _ = feed_forward(X, Ws, bs)
        st = {"X": X, "Y": Y, "Xs": Xs, "T": None, "gram0": lnn_gram(X), "U0": None}
        if self.loss == "cross_entropy":
            st["T"] = lnn_output_step(Y, Xs[-1] @ Ws[-1] + bs[-1], self.lam_[-1])
        return st

    def _sweep(self, st: dict, Ws: list, bs: list, W0s: list | None) -> dict:
        """One BCD sweep in place; returns the objective parts and X-step statistics."""
        X, Y, Xs = st["X"], st["Y"], st["Xs"]
        lam, rho, L = self.lam_, self.rho_, len(Xs)
        tol = None if self.x_tol is None else float(self.x_tol)
        x_iters, x_res, rejected = 0, 0.0, 0
        # X W_0 + b_0 is cached from the last sweep's W-step ((W_0, b_0) have not changed since)
        U_prev = st["U0"] if st.get("U0") is not None else X @ Ws[0] + bs[0]
        for l in range(1, L + 1):  # X_l, python Xs[l - 1]
            nxt = Xs[l] if l < L else (Y if self.loss == "mse" else st["T"])
            Xs[l - 1], info = lnn_x_step(nxt, U_prev, Ws[l], bs[l], Xs[l - 1], lam[l], lam[l - 1],
                                         tol=tol, max_iter=int(self.x_max_iter))
            x_iters += info["n_iter"]
            x_res = max(x_res, info["residual"])
            rejected += not info["accepted"]
            U_prev = Xs[l - 1] @ Ws[l] + bs[l]
        if self.loss == "cross_entropy":
            st["T"] = lnn_output_step(Y, U_prev, lam[L])
        ins = [X, *Xs]
        targets = [*Xs, Y if self.loss == "mse" else st["T"]]
        g = float(self.gamma) if W0s is not None else 0.0
        for l in range(L + 1):
            Ws[l], bs[l] = lnn_w_step(ins[l], targets[l], lam[l], rho[l], gamma=g,
                                      W0=None if not g else W0s[l][0], b0=None if not g else W0s[l][1],
                                      gram=st["gram0"] if l == 0 else None)
        Us = [ins[l] @ Ws[l] + bs[l] for l in range(L + 1)]
        parts = lnn_objective(X, Y, Ws, bs, Xs, lam, rho, self.loss, T=st["T"], Us=Us)
        if W0s is not None and g:
            parts["proximal"] = g * sum(float(((W - W0) ** 2).sum() + ((b - b0) ** 2).sum())
                                        for W, b, (W0, b0) in zip(Ws, bs, W0s))
        parts.update(x_iters=x_iters, x_residual=x_res, x_rejected=rejected)
        st["U0"] = Us[0]
        return parts

    def _ff_accuracy(self, X, y, Ws, bs, U0=None) -> float:
        xp, _ = get_namespace(X)
        H = X @ Ws[0] + bs[0] if U0 is None else U0
        for W, b in zip(Ws[1:], bs[1:]):
            H = xp.maximum(H, 0) @ W + b
        return _accuracy(H, y)

    def _fit_full(self, X, Y, y, X_test, y_test, n_iter, Ws, bs, xp) -> None:
        t0 = time.perf_counter()
        st = self._init_state(X, Y, Ws, bs)
        parts = lnn_objective(X, Y, Ws, bs, st["Xs"], self.lam_, self.rho_, self.loss, T=st["T"])
        t_total = time.perf_counter() - t0
        rec = dict(parts, train_accuracy=self._ff_accuracy(X, y, Ws, bs))
        if X_test is not None:
            rec["test_accuracy"] = self._ff_accuracy(X_test, y_test, Ws, bs)
        self.history_.log_epoch(epoch=0, time=t_total, time_step=t_total, **rec)
        for it in self._progress(n_iter):
            t0 = time.perf_counter()
            parts = self._sweep(st, Ws, bs, None)
            t_step = time.perf_counter() - t0
            if not np.isfinite(parts["objective"]):
                raise FloatingPointError(f"BCD produced a non-finite objective at sweep {it + 1}")
            rec = dict(parts, train_accuracy=self._ff_accuracy(X, y, Ws, bs, U0=st["U0"]))
            if X_test is not None:
                rec["test_accuracy"] = self._ff_accuracy(X_test, y_test, Ws, bs)
            t_total += t_step
            self.history_.log_batch(epoch=it + 1, batch=0, loss=parts["objective"],
                                    train_accuracy=rec["train_accuracy"], time=t_total)
            self.history_.log_epoch(epoch=it + 1, time=t_total, time_step=t_step, **rec)
            if self.history_.stop_reason():  # the active stop rule (history.stopping)
                break
        self._state = st

    def _fit_batches(self, X, Y, y, X_test, y_test, n_iter, n_epochs, Ws, bs, xp, rng) -> None:
        m, bsz = X.shape[0], int(self.batch_size)
        n_batches = -(-m // bsz)
        t_total, step = 0.0, 0
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm
            bar = tqdm(total=n_epochs * n_batches, desc=self._model_name, unit="batch")
        for ep in range(n_epochs):
            perm = xp.asarray(rng.permutation(m))
            t_ep = 0.0
            for k in range(n_batches):
                t0 = time.perf_counter()
                idx = perm[k * bsz:(k + 1) * bsz]
                Xb, Yb = X[idx], Y[idx]
                W0s = [(W.copy(), b.copy()) for W, b in zip(Ws, bs)]
                st = self._init_state(Xb, Yb, Ws, bs)
                start = lnn_objective(Xb, Yb, Ws, bs, st["Xs"], self.lam_, self.rho_, self.loss,
                                      T=st["T"])["objective"]
                parts = {"objective": start, "x_iters": 0}
                for _ in range(n_iter):
                    parts = self._sweep(st, Ws, bs, W0s)
                dt = time.perf_counter() - t0
                t_ep += dt
                t_total += dt
                step += 1
                self.history_.log_batch(epoch=ep + 1, batch=step, loss=parts["objective"],
                                        objective_start=start, proximal=parts.get("proximal", 0.0),
                                        x_iters=parts["x_iters"],
                                        train_accuracy=self._ff_accuracy(Xb, y[idx], Ws, bs),
                                        time=dt, elapsed=t_total)
                if bar is not None:
                    bar.update(1)
            rec = {"train_accuracy": self._ff_accuracy(X, y, Ws, bs)}
            if X_test is not None:
                rec["test_accuracy"] = self._ff_accuracy(X_test, y_test, Ws, bs)
            self.history_.log_epoch(epoch=ep + 1, time=t_ep, elapsed=t_total, **rec)
            if self.history_.stop_reason():  # the active stop rule (history.stopping)
                break
        if bar is not None:
            bar.close()

    # -- prediction ---------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the feed-forward outputs (the model's probabilities for cross-entropy,
        a normalised score for MSE)."""
        return to_numpy(softmax(self.decision_function(X)))


def lifted_init_weights(X: Any, y: Any, hidden: tuple = (300,), **kwargs: Any
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Weights of a trained 2018 lifted network, to initialise a standard network ("NN[Lifted]").

    ``kwargs`` go to :class:`LNNClassifier` (``loss``, ``lam``, ``rho``, ``n_iter``, ...).
    Returns ``[(W (n_in, n_out), b (n_out,)), ...]`` NumPy pairs, ready for
    ``TorchNetClassifier(arch=..., init="lifted", init_weights=...)``.
    """
    return LNNClassifier(hidden=hidden, **kwargs).fit(X, y).weights_
