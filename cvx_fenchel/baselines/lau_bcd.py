"""Lau et al. (2018) / Zeng et al. (2019): proximal block coordinate descent for ReLU networks.

References: T. T.-K. Lau, J. Zeng, B. Wu, Y. Yao, "A proximal block coordinate descent
algorithm for deep neural network training", ICLR 2018 workshop; J. Zeng, T. T.-K. Lau,
S. Lin, Y. Yao, "Global convergence of block coordinate descent in deep learning",
ICML 2019 (Algorithm 1, the "three-splitting" formulation used by the public code
deeplearning-math/bcd_dnn that the Fenchel lifted network paper ran for its Fig. 1).

The problem (samples in rows here; the papers put samples in columns). Variables: weights
``W_i`` (n_{i-1} x n_i), biases ``b_i`` (n_i), pre-activations ``U_i`` and activations ``V_i``
(m x n_i), ``V_0 = X``; ``N`` weight layers, ReLU ``sigma`` on the hidden ones, identity on
the output. The objective, with ``P_i = V_{i-1} W_i + 1 b_i^T``:

    F = 1/2 ||V_N - Y||^2 + gamma/2 ||V_N - U_N||^2
        + sum_{i<N} gamma/2 ||V_i - relu(U_i)||^2 + sum_{i<=N} rho/2 ||U_i - P_i||^2        (2)

(Frobenius norms, one-hot ``Y``, no regularisers ``r_i, s_i``.) One sweep updates the
blocks backward over layers, each block by an exact (proximal) minimisation of ``F``:

    V_N <- argmin_V F + alpha/2 ||V - V_N^old||^2 = (Y + gamma U_N + alpha V_N^old) / (1 + gamma + alpha)
    U_N <- argmin_U F                            = (gamma V_N + rho P_N) / (gamma + rho)
    for i = N, N-1, ..., 1:
        if i < N:
            V_i <- argmin_V F  = (rho (U_{i+1} - 1 b_{i+1}^T) W_{i+1}^T + gamma relu(U_i))
                                 (rho W_{i+1} W_{i+1}^T + gamma I)^{-1}
            U_i <- argmin_U F + alpha/2 ||U - U_i^old||^2     (ReLU prox, closed form by cases)
        W_i <- argmin_W F + alpha/2 ||W - W_i^old||^2
             : (rho V_{i-1}^T V_{i-1} + alpha I) W = rho V_{i-1}^T (U_i - 1 b_i^T) + alpha W_i^old
        b_i <- argmin_b F + alpha/2 ||b - b_i^old||^2
             = (alpha b_i^old + rho sum_rows(U_i - V_{i-1} W_i)) / (rho m + alpha)

(the order and the placement of the proximal terms follow the public code: no proximal term
on ``U_N`` and on the hidden ``V_i``, whose blocks are strongly convex already). Each update
minimises ``F`` plus a non-negative term that vanishes at the old value, so ``F`` never
increases (checked in the tests).

The ReLU prox: with ``c = rho + alpha`` and ``q = (rho P_i + alpha U_i^old) / c``, the U-step is
elementwise ``argmin_u gamma (v - relu(u))^2 + c (u - q)^2``, solved exactly by comparing the
branch ``u >= 0`` (minimiser ``max((gamma v + c q)/(gamma + c), 0)``) with the branch ``u <= 0``
(minimiser ``min(q, 0)``): :func:`cvx_fenchel.baselines.admm.relu_least_squares_step`.

Defaults are the public code's: ``gamma = rho = 1``, ``alpha = 0.01``, initial weights
``0.01 N(0, 1)``, biases ``0.1``, ``U, V`` from a feed-forward pass, 50 iterations.
Prediction uses the feed-forward network; ``predict_proba`` is the softmax of its outputs
(a normalised score; the model is trained by MSE).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..backend import check_int, check_scalar, get_namespace
from ..solvers import cholesky, cholesky_solve
from .admm import (_add_diag, _FullBatchMSEClassifier, _init_weights,
                   relu_least_squares_step, spd_solve)

__all__ = ["LauBCDClassifier", "bcd_output_v_step", "bcd_output_u_step", "bcd_hidden_v_step",
           "bcd_hidden_u_step", "bcd_weight_step", "bcd_weight_factor", "bcd_bias_step",
           "bcd_objective"]


def bcd_output_v_step(Y: Any, U_last: Any, V_old: Any, gamma: float, alpha: float) -> Any:
    """``V_N = argmin_V 1/2||V - Y||^2 + gamma/2||V - U_N||^2 + alpha/2||V - V_old||^2``.

    Closed form ``(Y + gamma U_N + alpha V_old) / (1 + gamma + alpha)``; all arrays (m, K).
    """
    return (Y + gamma * U_last + alpha * V_old) / (1.0 + gamma + alpha)


def bcd_output_u_step(V_last: Any, P_last: Any, gamma: float, rho: float) -> Any:
    """``U_N = argmin_U gamma/2||V_N - U||^2 + rho/2||U - P_N||^2 = (gamma V_N + rho P_N)/(gamma + rho)``.

    ``P_N = V_{N-1} W_N + 1 b_N^T``; arrays (m, K).
    """
    return (gamma * V_last + rho * P_last) / (gamma + rho)


def bcd_hidden_v_step(U: Any, U_next: Any, W_next: Any, b_next: Any, gamma: float,
                      rho: float) -> Any:
    """Hidden activation step (no proximal term):

    ``V_i = argmin_V gamma/2||V - relu(U_i)||^2 + rho/2||U_{i+1} - V W_{i+1} - 1 b_{i+1}^T||^2``
    ``    = (rho (U_{i+1} - 1 b^T) W^T + gamma relu(U_i)) (rho W W^T + gamma I)^{-1}``.

    Parameters
    ----------
    U : (m, n_i); U_next : (m, n_{i+1}); W_next : (n_i, n_{i+1}); b_next : (n_{i+1},)
    gamma : float > 0; rho : float >= 0

    Returns
    -------
    V : (m, n_i)
    """
    xp, _ = get_namespace(U, U_next, W_next, b_next)
    G = _add_diag(rho * (W_next @ W_next.T), gamma)
    R = rho * ((U_next - b_next) @ W_next.T) + gamma * xp.maximum(U, 0)
    return spd_solve(G, R.T).T


def bcd_hidden_u_step(V: Any, P: Any, U_old: Any, gamma: float, rho: float, alpha: float) -> Any:
    """Proximal ReLU step, elementwise and exact:

    ``U_i = argmin_U gamma/2||V_i - relu(U)||^2 + rho/2||U - P_i||^2 + alpha/2||U - U_old||^2``

    with ``P_i = V_{i-1} W_i + 1 b_i^T``; equals
    ``relu_least_squares_step(V, (rho P + alpha U_old)/(rho + alpha), gamma, rho + alpha)``.
    """
    c = rho + alpha
    return relu_least_squares_step(V, (rho * P + alpha * U_old) / c, gamma, c)


def bcd_weight_factor(V_prev: Any, rho: float, alpha: float) -> Any:
    """Lower Cholesky factor of ``rho V^T V + alpha I`` (cached for the fixed input layer)."""
    return cholesky(_add_diag(rho * (V_prev.T @ V_prev), alpha))


def bcd_weight_step(V_prev: Any, U: Any, W_old: Any, b: Any, rho: float, alpha: float, *,
                    chol: Any = None) -> Any:
    """``W_i = argmin_W rho/2||U_i - V_{i-1} W - 1 b^T||^2 + alpha/2||W - W_old||^2``.

    Solves ``(rho V^T V + alpha I) W = rho V^T (U - 1 b^T) + alpha W_old`` by Cholesky.

    Parameters
    ----------
    V_prev : (m, n_in); U : (m, n_out); W_old : (n_in, n_out); b : (n_out,)
    rho >= 0, alpha > 0; chol : optional factor from :func:`bcd_weight_factor`

    Returns
    -------
    W : (n_in, n_out)
    """
    if chol is None:
        chol = bcd_weight_factor(V_prev, rho, alpha)
    return cholesky_solve(chol, rho * (V_prev.T @ (U - b)) + alpha * W_old)


def bcd_bias_step(U: Any, VW: Any, b_old: Any, rho: float, alpha: float) -> Any:
    """``b_i = argmin_b rho/2||U_i - V_{i-1} W_i - 1 b^T||^2 + alpha/2||b - b_old||^2``.

    ``VW = V_{i-1} W_i`` (m, n_out); closed form ``(alpha b_old + rho sum_rows(U - VW)) / (rho m + alpha)``.
    """
    return (alpha * b_old + rho * (U - VW).sum(axis=0)) / (rho * U.shape[0] + alpha)


def bcd_objective(Y: Any, Ws: list, bs: list, Vs: list, Us: list, gamma: float, rho: float,
                  Ps: list | None = None) -> dict:
    """Objective (2) and its parts.

    Parameters
    ----------
    Y : (m, K); Ws, bs : N weights (n_{i-1}, n_i) and biases (n_i,);
    Vs : ``[X, V_1, ..., V_N]``; Us : ``[U_1, ..., U_N]``;
    Ps : optional ``[V_{i-1} W_i + b_i]`` already computed

    Returns
    -------
    dict with ``objective``, ``loss`` (``1/2||V_N - Y||^2``), ``residual_out``
    (``||V_N - U_N||``), ``residual_relu`` (``sqrt(sum_{i<N} ||V_i - relu(U_i)||^2)``),
    ``residual_linear`` (``sqrt(sum_i ||U_i - P_i||^2)``).
    """
    xp, _ = get_namespace(Y, *Ws, *Us)
    N = len(Ws)
    if Ps is None:
        Ps = [Vs[i] @ Ws[i] + bs[i] for i in range(N)]
    loss = 0.5 * float(((Vs[-1] - Y) ** 2).sum())
    r_out = float(((Vs[-1] - Us[-1]) ** 2).sum())
    r_relu = sum(float(((Vs[i + 1] - xp.maximum(Us[i], 0)) ** 2).sum()) for i in range(N - 1))
    r_lin = sum(float(((Us[i] - Ps[i]) ** 2).sum()) for i in range(N))
    obj = loss + 0.5 * gamma * (r_out + r_relu) + 0.5 * rho * r_lin
    return {"objective": obj, "loss": loss, "residual_out": r_out ** 0.5,
            "residual_relu": r_relu ** 0.5, "residual_linear": r_lin ** 0.5}


class LauBCDClassifier(_FullBatchMSEClassifier):
    """Proximal BCD (Lau et al. 2018; Zeng et al. 2019) for a ReLU network with MSE loss.

    Minimises objective (2) of the module docstring by backward sweeps of exact
    (proximal) block updates; the objective is non-increasing over sweeps.

    Parameters
    ----------
    hidden : tuple of int, hidden widths (784-300-10: ``(300,)``)
    gamma : float > 0, weight of ``||V_i - relu(U_i)||^2`` and ``||V_N - U_N||^2``
    rho : float > 0, weight of ``||U_i - V_{i-1} W_i - b_i||^2``
    alpha : float > 0, proximal weight (on V_N, U_i hidden, W_i, b_i)
    n_iter : int >= 0, sweeps
    init_scale : float, std of the Gaussian initial weights (code: 0.01)
    bias_init : float, initial biases (code: 0.1)
    seed, backend ("auto" | "numpy" | "cupy"), dtype ("float64" | "float32"), verbose,
    n_classes (None: ``max(y) + 1``)

    Attributes
    ----------
    weights_ : list of ``(W (n_in, n_out), b (n_out,))`` NumPy pairs
    history_ : History; per sweep ``objective`` (2), ``loss``, ``residual_out``,
        ``residual_relu``, ``residual_linear``, ``network_mse``, ``train_accuracy``,
        ``test_accuracy``, ``time`` (cumulative s), ``time_step``
    """

    _model_name = "lau_bcd"

    def __init__(self, hidden: tuple = (300,), gamma: float = 1.0, rho: float = 1.0,
                 alpha: float = 1e-2, n_iter: int = 50, init_scale: float = 0.01,
                 bias_init: float = 0.1, seed: int = 0, backend: str = "auto",
                 dtype: str = "float64", verbose: bool = False, n_classes: int | None = None):
        self.hidden = hidden
        self.gamma = gamma
        self.rho = rho
        self.alpha = alpha
        self.n_iter = n_iter
        self.init_scale = init_scale
        self.bias_init = bias_init
        self.seed = seed
        self.backend = backend
        self.dtype = dtype
        self.verbose = verbose
        self.n_classes = n_classes

    def _hyper(self) -> dict:
        return {"hidden": list(self.hidden_), "gamma": self.gamma, "rho": self.rho,
                "alpha": self.alpha, "init_scale": self.init_scale, "bias_init": self.bias_init,
                "seed": self.seed, "dtype": str(self.dtype), "bias": True}

    def _validate_hyper(self) -> None:
        check_scalar(self.gamma, "gamma", low=0.0, low_inclusive=False)
        check_scalar(self.rho, "rho", low=0.0, low_inclusive=False)
        check_scalar(self.alpha, "alpha", low=0.0, low_inclusive=False)
        check_scalar(self.init_scale, "init_scale", low=0.0, low_inclusive=False)
        check_scalar(self.bias_init, "bias_init", low=None)
        check_int(self.seed, "seed", 0)

    def _fit(self, X, Y, y, X_test, y_test, n_iter, xp):
        gamma, rho, alpha = float(self.gamma), float(self.rho), float(self.alpha)
        rng = np.random.default_rng(self.seed)
        sizes = [X.shape[1], *self.hidden_, Y.shape[1]]
        N = len(sizes) - 1
        Ws = _init_weights(sizes, self.init_scale, rng, xp, X.dtype)
        bs = [xp.full((k,), float(self.bias_init), dtype=X.dtype) for k in sizes[1:]]
        Vs, Us, Ps = [X], [], []
        for i in range(N):
            Ps.append(Vs[i] @ Ws[i] + bs[i])
            Us.append(Ps[i])
            Vs.append(xp.maximum(Us[i], 0) if i < N - 1 else Us[i])
        chol0 = bcd_weight_factor(X, rho, alpha)  # the input layer's matrix never changes
        t_total = 0.0
        for it in self._progress(n_iter):
            t0 = time.perf_counter()
            # Ps[i] holds V_{i-1} W_i + b_i of the current (old) values here.
            Vs[N] = bcd_output_v_step(Y, Us[N - 1], Vs[N], gamma, alpha)
            Us[N - 1] = bcd_output_u_step(Vs[N], Ps[N - 1], gamma, rho)
            for i in range(N - 1, -1, -1):  # python index of layer i + 1
                if i < N - 1:
                    Vs[i + 1] = bcd_hidden_v_step(Us[i], Us[i + 1], Ws[i + 1], bs[i + 1],
                                                  gamma, rho)
                    Us[i] = bcd_hidden_u_step(Vs[i + 1], Ps[i], Us[i], gamma, rho, alpha)
                Ws[i] = bcd_weight_step(Vs[i], Us[i], Ws[i], bs[i], rho, alpha,
                                        chol=chol0 if i == 0 else None)
                VW = Vs[i] @ Ws[i]
                bs[i] = bcd_bias_step(Us[i], VW, bs[i], rho, alpha)
                if i == 0:
                    Ps[0] = VW + bs[0]  # X never changes: this stays valid
            for i in range(1, N):  # V_{i-1} changed after W_i, b_i: recompute
                Ps[i] = Vs[i] @ Ws[i] + bs[i]
            parts = bcd_objective(Y, Ws, bs, Vs, Us, gamma, rho, Ps=Ps)
            t_step = time.perf_counter() - t0
            H = Ps[0]  # feed-forward network, reusing X W_1 + b_1
            for i in range(1, N):
                H = xp.maximum(H, 0) @ Ws[i] + bs[i]
            t_total = self._log_iteration(
                it, t0, t_total, t_step, parts, H, Y, y, X_test, y_test, list(zip(Ws, bs)),
                f"BCD produced a non-finite objective at sweep {it + 1}")
            if self.history_.stop_reason():  # the active stop rule (history.stopping)
                break
        self._state = {"W": Ws, "b": bs, "V": Vs[1:], "U": Us}
        return list(zip(Ws, bs))
