r"""The block-coordinate-descent subproblems, each written twice.

Every subproblem is one class that holds its data and pairs

* ``objective(x)``: the objective in array code (NumPy or CuPy),
* ``solve_fast(x0=None, tol=None, max_iter=None)``: the hand-written fast path
  (accelerated proximal gradient with restart, or a closed form, or bisection),
  returning a :class:`~cvx_fenchel.solvers.FastResult` with the minimiser,
  iterations and a scale-free optimality residual,
* ``cvxpy_problem()`` / ``solve_cvxpy(solver)``: the same problem declared in
  CVXPY from the same data (exact, for small instances).

Notation (samples in rows): layer ``l`` has a linear map ``A_l`` (dense,
convolution, possibly preceded by pooling/flatten), weights ``(W_l, b_l)``,
pre-activation ``U_l = A_l(X_l; W_l) + b_l`` and activation ``phi_l`` with
Fenchel-Young divergence ``B_l`` (:mod:`cvx_fenchel.activations`). Losses are
summed over the batch: ``mse(Y, O) = 1/2 ||O - Y||_F^2`` and
``cross_entropy(Y, O) = sum_i logsumexp(O_i) - <Y_i, O_i>``.

=================  ==========================================================================
class (``name``)   problem
=================  ==========================================================================
XHidden            :math:`\min_{Z \in \mathrm{dom} F_{l-1}} c\lambda_l \sum B_l(X_{l+1}, A_l(Z) + b_l) + \lambda_{l-1} \sum B_{l-1}(Z, U_{l-1})`
XLast              :math:`\min_{Z \in \mathrm{dom} F_{L-1}} c\,\mathrm{Loss}(Y, A_L(Z) + b_L) + \lambda_{L-1} \sum B_{L-1}(Z, U_{L-1})`
WHidden            :math:`\min_{W,b} \lambda \sum B(X_{l+1}, A(X_l; W) + b) + \rho\|(W,b)\|^2 + \gamma\|(W,b) - (W^0,b^0)\|^2`
WLast              :math:`\min_{W,b} c\,\mathrm{Loss}(Y, A(X_L; W) + b) + \rho\|(W,b)\|^2 + \gamma\|(W,b) - (W^0,b^0)\|^2`
LNNX               :math:`\min_{Z \ge 0} \lambda_l \|A_l(Z) + b_l - X_{l+1}\|^2 + \lambda_{l-1}\|Z - U_{l-1}\|^2` (2018 model)
LNNW               :math:`\min_{W,b} \lambda \|A(X; W) + b - X_{l+1}\|^2 + \rho\|(W,b)\|^2 + \gamma\|(W,b)-(W^0,b^0)\|^2`
LNNSimplexCE       :math:`\min_{Z \in \Delta^m} -\mathrm{Tr}\,Y^\top \log Z + \lambda \|Z - X^0\|^2` (rows on the simplex)
=================  ==========================================================================

``c`` is the original code's ``lbd_coef`` (an extra weight on the next layer's
term inside an X-step). :func:`lower_bound` evaluates the Lagrange lower bound
:math:`G_W(\lambda) = \min_X J(W, X; \lambda) \le p(W)` for one hidden layer.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import ClassVar

import numpy as np

from .activations import Activation, get_activation
from .backend import check_array, check_scalar, get_namespace, to_numpy
from .cvx import CvxpyResult, solve
from .errors import ConvergenceWarning, InputError, UnknownNameError
from .maps import Chain, Conv2D, Dense, Flatten, LinearMap
from .solvers import (FastResult, cholesky, cholesky_solve, default_tol, fista, fista_metric,
                      prox_grad_residual, ridge_solve, simplex_ce_prox)

__all__ = ["XHidden", "XLast", "WHidden", "WLast", "LNNX", "LNNW", "LNNSimplexCE", "lower_bound",
           "loss_value", "loss_grad", "LOSSES", "SUBPROBLEMS"]

LOSSES = ("mse", "cross_entropy")


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------
def _check_loss(loss: str) -> str:
    key = {"ce": "cross_entropy", "crossentropy": "cross_entropy"}.get(str(loss).lower(), str(loss).lower())
    if key not in LOSSES:
        raise UnknownNameError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    return key


def _logsumexp(O, xp):
    mx = O.max(axis=1, keepdims=True)
    return (mx + xp.log(xp.exp(O - mx).sum(axis=1, keepdims=True)))[:, 0]


def softmax(O):
    """Row-wise softmax, stable."""
    xp, _ = get_namespace(O)
    E = xp.exp(O - O.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def loss_value(loss: str, Y, O) -> float:
    """``mse``: :math:`\\tfrac12\\|O - Y\\|_F^2`; ``cross_entropy``: :math:`\\sum_i \\mathrm{lse}(O_i) - \\langle Y_i, O_i\\rangle`."""
    xp, _ = get_namespace(Y, O)
    if _check_loss(loss) == "mse":
        return 0.5 * float(xp.sum((O - Y) ** 2))
    return float(xp.sum(_logsumexp(O, xp)) - xp.sum(Y * O))


def loss_grad(loss: str, Y, O):
    """Gradient in ``O``: ``O - Y`` (mse) or ``softmax(O) - Y`` (cross-entropy)."""
    return O - Y if _check_loss(loss) == "mse" else softmax(O) - Y


def _loss_lipschitz(loss: str) -> float:
    # the softmax cross-entropy Hessian diag(p) - pp^T has eigenvalues <= 1/2
    return 1.0 if loss == "mse" else 0.5


def _cvxpy_loss(loss: str, Y: np.ndarray, O):
    import cvxpy as cp
    if loss == "mse":
        return 0.5 * cp.sum_squares(O - Y)
    return cp.sum(cp.log_sum_exp(O, axis=1)) - cp.sum(cp.multiply(Y, O))


# ---------------------------------------------------------------------------------------------
# terms: a smooth "data" term of the pre-activation U, and a "previous layer" term of Z
# ---------------------------------------------------------------------------------------------
class _DivergenceTerm:
    """weight * sum B(V, U): smooth in U with gradient weight*(phi(U) - V)."""

    def __init__(self, act: Activation, V, weight: float):
        self.act, self.V, self.weight = act, V, weight
        self.lipschitz = weight * act.lipschitz

    def value(self, U) -> float:
        xp, _ = get_namespace(U)
        return self.weight * float(xp.sum(self.act.divergence(self.V, U))) if self.weight else 0.0

    def grad(self, U):
        return self.weight * (self.act.forward(U) - self.V)

    def cvxpy(self, U):
        V = np.asarray(to_numpy(self.V), dtype=float).reshape(U.shape)
        return self.weight * self.act.cvxpy_divergence(V, U)


class _LossTerm:
    """weight * Loss(Y, U)."""

    def __init__(self, loss: str, Y, weight: float):
        self.loss, self.Y, self.weight = loss, Y, weight
        self.lipschitz = weight * _loss_lipschitz(loss)

    def value(self, U) -> float:
        return self.weight * loss_value(self.loss, self.Y, U)

    def grad(self, U):
        return self.weight * loss_grad(self.loss, self.Y, U)

    def cvxpy(self, U):
        return self.weight * _cvxpy_loss(self.loss, np.asarray(to_numpy(self.Y), dtype=float), U)


class _QuadTerm:
    """weight * ||U - T||^2 (the 2018 lifted network's penalty)."""

    def __init__(self, T, weight: float):
        self.T, self.weight = T, weight
        self.lipschitz = 2 * weight

    def value(self, U) -> float:
        xp, _ = get_namespace(U)
        return self.weight * float(xp.sum((U - self.T) ** 2))

    def grad(self, U):
        return 2 * self.weight * (U - self.T)

    def cvxpy(self, U):
        import cvxpy as cp
        T = np.asarray(to_numpy(self.T), dtype=float).reshape(U.shape)
        return self.weight * cp.sum_squares(U - T)


class _PrevDivergence:
    """weight * sum B_prev(Z, U_prev), Z in dom F_prev: the non-smooth part of an X-step."""

    def __init__(self, act: Activation, U_prev, weight: float):
        self.act, self.U, self.weight = act, U_prev, weight

    def value(self, Z) -> float:
        xp, _ = get_namespace(Z)
        return self.weight * float(xp.sum(self.act.divergence(Z, self.U))) if self.weight else (
            0.0 if bool(xp.all(self.act.in_domain(Z))) else math.inf)

    def prox(self, V, s):
        # argmin_Z s*w*(F(Z) - <U, Z>) + 1/2||Z - V||^2 = prox_{s w F}(V + s w U)
        if self.weight == 0:
            return self.act.project(V)
        return self.act.prox_F(V + (s * self.weight) * self.U, s * self.weight)

    def start(self):
        return self.act.forward(self.U)

    def cvxpy(self, Z):
        U = np.asarray(to_numpy(self.U), dtype=float).reshape(Z.shape)
        return self.weight * self.act.cvxpy_divergence(Z, U), self.act.cvxpy_domain(Z)


class _PrevQuadNonneg:
    """weight * ||Z - U_prev||^2 with Z >= 0 (the 2018 lifted network)."""

    def __init__(self, U_prev, weight: float):
        self.U, self.weight = U_prev, weight

    def value(self, Z) -> float:
        xp, _ = get_namespace(Z)
        if bool(xp.any(Z < 0)):
            return math.inf
        return self.weight * float(xp.sum((Z - self.U) ** 2))

    def prox(self, V, s):
        xp, _ = get_namespace(V)
        a = 2 * s * self.weight
        return xp.maximum((V + a * self.U) / (1 + a), 0)

    def start(self):
        xp, _ = get_namespace(self.U)
        return xp.maximum(self.U, 0)

    def cvxpy(self, Z):
        import cvxpy as cp
        U = np.asarray(to_numpy(self.U), dtype=float).reshape(Z.shape)
        return self.weight * cp.sum_squares(Z - U), [Z >= 0]


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------
def _common(arrays: dict, dtype=None):
    """Check the arrays (finite, real) and convert them to one namespace and dtype."""
    present = {k: v for k, v in arrays.items() if v is not None}
    xp, _ = get_namespace(*present.values())
    if dtype is None:
        dts = [np.dtype(getattr(v, "dtype", np.float64)) for v in present.values()]
        dtype = np.float32 if all(d == np.float32 for d in dts if d.kind == "f") and any(
            d.kind == "f" for d in dts) else np.float64
    out = {k: (None if v is None else check_array(v, k, xp=xp, dtype=dtype)) for k, v in arrays.items()}
    return xp, np.dtype(dtype), out


def _default_map(W, name: str) -> LinearMap:
    if W is None or getattr(W, "ndim", 0) != 2:
        raise InputError(f"{name}: give linear_map= for weights of shape {getattr(W, 'shape', None)} "
                         "(a dense default needs a 2-D W)")
    return Dense(int(W.shape[0]), int(W.shape[1]))


def _check_shape(a, shape, what: str, problem: str):
    if tuple(a.shape) != tuple(shape):
        raise InputError(f"{problem}: {what} must have shape {tuple(shape)}, got {tuple(a.shape)}")


def _check_domain(act: Activation, V, what: str, problem: str):
    xp, _ = get_namespace(V)
    if not bool(xp.all(act.in_domain(V))):
        raise InputError(f"{problem}: {what} has entries outside the domain [{act.lower}, {act.upper}] "
                         f"of the {act.name} divergence")
    if act.name == "softplus" and bool(xp.any(V == 0)):
        pass  # F(0) = 0 is finite; B(0, u) = F*(u)


def _check_targets(loss: str, Y, problem: str):
    xp, _ = get_namespace(Y)
    if loss == "cross_entropy":
        if bool(xp.any(Y < 0)) or not bool(xp.all(xp.abs(Y.sum(axis=1) - 1) <= 1e-6)):
            raise InputError(f"{problem}: cross-entropy targets Y must be rows on the simplex (one-hot labels)")


def _flat(a):
    return a.reshape(a.shape[0], -1)


def _solver_tol(tol, dtype):
    return default_tol(dtype) if tol is None else check_scalar(tol, "tol", low=0.0, low_inclusive=False)


# ---------------------------------------------------------------------------------------------
# X-steps
# ---------------------------------------------------------------------------------------------
class _XStep:
    """min_Z data(A(Z; W) + b) + prev(Z): FISTA with the prox of ``prev``."""

    name: ClassVar[str] = ""
    default_max_iter: ClassVar[int] = 20000

    def _setup(self, linear_map, W, b, U_prev):
        self.map = linear_map if linear_map is not None else _default_map(W, self.name)
        if not isinstance(self.map, LinearMap) and not hasattr(self.map, "apply"):
            raise InputError(f"{self.name}: linear_map must be a cvx_fenchel.maps map")
        m = U_prev.shape[0]
        if m < 1:
            raise InputError(f"{self.name}: U_prev has no samples")
        _check_shape(U_prev, (m,) + tuple(self.map.in_shape), "U_prev (pre-activation of the previous layer)",
                     self.name)
        if W is not None:
            _check_shape(W, self.map.weight_shape, "W", self.name)
        if b is not None:
            _check_shape(b, self.map.bias_shape, "b", self.name)
        self.W, self.b, self.m = W, b, m
        self._L = None

    # the composite pieces -------------------------------------------------------------------
    def _U(self, Z):
        return self.map.apply(Z, self.W, self.b)

    def _grad(self, x):
        return (self.map.adjoint_input(self.data.grad(self._U(x[0])), self.W),)

    def _prox(self, x, s):
        return (self.prev.prox(x[0], s),)

    @property
    def lipschitz(self) -> float:
        """Lipschitz constant of the smooth part's gradient: L_data * ||A||^2."""
        if self._L is None:
            L = self.data.lipschitz * float(self.map.lipschitz_input(self.W)) if self.data.lipschitz else 0.0
            self._L = L if L > 0 else 1.0
        return self._L

    # public API -------------------------------------------------------------------------------
    def objective(self, Z) -> float:
        """Objective value at ``Z`` (``inf`` outside the domain)."""
        xp, _ = get_namespace(Z)
        Z = xp.asarray(Z, dtype=self.dtype)
        return self.data.value(self._U(Z)) + self.prev.value(Z)

    def residual(self, Z) -> float:
        """Scale-free optimality residual ||Z - T(Z)|| / max(1, ||Z||) (T: prox-gradient step)."""
        xp, _ = get_namespace(Z)
        x = (xp.asarray(Z, dtype=self.dtype),)
        return prox_grad_residual(x, self._grad(x), self._prox, self.lipschitz)

    def start(self):
        """Default warm start: the feed-forward value (``phi_prev(U_prev)``)."""
        return self.prev.start()

    def solve_fast(self, x0=None, *, tol: float | None = None, max_iter: int | None = None,
                   warn: bool = True) -> FastResult:
        """Accelerated proximal gradient (FISTA with restart) from ``x0`` (default :meth:`start`)."""
        t0 = time.perf_counter()
        tol = _solver_tol(tol, self.dtype)
        max_iter = self.default_max_iter if max_iter is None else int(max_iter)
        if x0 is None:
            Z0 = self.start()
        else:
            Z0 = check_array(x0, f"x0 of {self.name}", shape=(self.m,) + tuple(self.map.in_shape),
                             xp=self.xp, dtype=self.dtype)
            Z0 = self.prev.prox(Z0, 0.0) if isinstance(self.prev, _PrevQuadNonneg) else self.prev.act.project(Z0) \
                if hasattr(self.prev, "act") else Z0
        x, n, conv, res = fista(self._grad, self._prox, (Z0,), self.lipschitz, tol=tol, max_iter=max_iter,
                                name=self.name, warn=warn)
        return FastResult(x[0], self.objective(x[0]), n, conv, res, time.perf_counter() - t0)

    def cvxpy_problem(self):
        """``(problem, Z)``: the CVXPY declaration, ``Z`` a ``Variable((m, n_in))`` (C-order flattened samples)."""
        import cvxpy as cp
        Z = cp.Variable((self.m, int(np.prod(self.map.in_shape))), name="Z")
        W = None if self.W is None else to_numpy(self.W)
        b = None if self.b is None else to_numpy(self.b)
        U = self.map.cvxpy_apply_input(Z, W, b)
        prev_obj, cons = self.prev.cvxpy(Z)
        return cp.Problem(cp.Minimize(self.data.cvxpy(U) + prev_obj), cons), Z

    def solve_cvxpy(self, solver: str = "CLARABEL", **kwargs) -> tuple[np.ndarray, CvxpyResult]:
        """Solve the CVXPY declaration; returns ``(Z, result)``; SolverError unless optimal."""
        prob, Z = self.cvxpy_problem()
        res = solve(prob, solver, name=self.name, **kwargs)
        return Z.value.reshape((self.m,) + tuple(self.map.in_shape)), res


class XHidden(_XStep):
    r"""X-step of a hidden layer ``0 < l < L``.

    .. math::
        \min_{Z \in \mathrm{dom} F_{l-1}}\; c\,\lambda_l \sum B_l\big(X_{l+1}, A_l(Z; W_l) + b_l\big)
        + \lambda_{l-1} \sum B_{l-1}(Z, U_{l-1})

    The first term is smooth in ``Z`` (gradient
    :math:`c\lambda_l A_l^\top(\phi_l(A_l Z + b_l) - X_{l+1})`, Lipschitz
    :math:`c\lambda_l \sup\phi_l' \|A_l\|^2`); the second is handled by its
    proximal map (:meth:`Activation.prox_F`). Separable over samples.

    Parameters
    ----------
    X_next : (m, *out_shape) the next layer's variable ``X_{l+1}`` (in dom F_l)
    U_prev : (m, *in_shape) ``U_{l-1} = A_{l-1}(X_{l-1}) + b_{l-1}``
    W, b : weights of layer ``l`` (``linear_map`` defaults to dense for a 2-D ``W``)
    activation, activation_prev : ``phi_l`` and ``phi_{l-1}`` (names or instances)
    lam, lam_prev, coef : :math:`\lambda_l, \lambda_{l-1} \ge 0` and ``lbd_coef`` :math:`c \ge 0`
    """

    name = "X-hidden"

    def __init__(self, X_next, U_prev, W, b=None, activation="relu", activation_prev="relu", *,
                 lam: float = 1.0, lam_prev: float = 1.0, coef: float = 1.0,
                 linear_map: LinearMap | None = None, dtype=None):
        act, act_prev = get_activation(activation), get_activation(activation_prev)
        lam = check_scalar(lam, "lam")
        lam_prev = check_scalar(lam_prev, "lam_prev")
        coef = check_scalar(coef, "coef")
        self.xp, self.dtype, d = _common({"X_next": X_next, "U_prev": U_prev, "W": W, "b": b}, dtype)
        self._setup(linear_map, d["W"], d["b"], d["U_prev"])
        _check_shape(d["X_next"], (self.m,) + tuple(self.map.out_shape), "X_next", self.name)
        _check_domain(act, d["X_next"], "X_next", self.name)
        self.X_next, self.U_prev = d["X_next"], d["U_prev"]
        self.activation, self.activation_prev = act, act_prev
        self.lam, self.lam_prev, self.coef = lam, lam_prev, coef
        self.data = _DivergenceTerm(act, self.X_next, coef * lam)
        self.prev = _PrevDivergence(act_prev, self.U_prev, lam_prev)


class XLast(_XStep):
    r"""X-step of the last hidden layer ``X_L`` (also the lower bound's inner problem).

    .. math::
        \min_{Z \in \mathrm{dom} F_{L-1}}\; c\,\mathrm{Loss}\big(Y, A_L(Z; W_L) + b_L\big)
        + \lambda_{L-1} \sum B_{L-1}(Z, U_{L-1})

    ``loss`` is ``"cross_entropy"`` (``Y`` one-hot rows) or ``"mse"``.
    """

    name = "X-last"

    def __init__(self, Y, U_prev, W, b=None, activation_prev="relu", *, loss: str = "cross_entropy",
                 lam_prev: float = 1.0, coef: float = 1.0, linear_map: LinearMap | None = None, dtype=None):
        self.loss = _check_loss(loss)
        self.name = f"X-last-{'ce' if self.loss == 'cross_entropy' else 'mse'}"
        act_prev = get_activation(activation_prev)
        lam_prev = check_scalar(lam_prev, "lam_prev")
        coef = check_scalar(coef, "coef")
        self.xp, self.dtype, d = _common({"Y": Y, "U_prev": U_prev, "W": W, "b": b}, dtype)
        self._setup(linear_map, d["W"], d["b"], d["U_prev"])
        _check_shape(d["Y"], (self.m,) + tuple(self.map.out_shape), "Y", self.name)
        _check_targets(self.loss, d["Y"], self.name)
        self.Y, self.U_prev, self.activation_prev = d["Y"], d["U_prev"], act_prev
        self.lam_prev, self.coef = lam_prev, coef
        self.data = _LossTerm(self.loss, self.Y, coef)
        self.prev = _PrevDivergence(act_prev, self.U_prev, lam_prev)


class LNNX(_XStep):
    r"""X-step of the 2018 lifted network: non-negative least squares.

    .. math::
        \min_{Z \ge 0}\; \lambda_l \|A_l(Z; W_l) + b_l - X_{l+1}\|_F^2 + \lambda_{l-1}\|Z - U_{l-1}\|_F^2

    (for the last hidden layer with MSE loss, ``X_next`` is ``Y``). Projected
    accelerated gradient; strongly convex when :math:`\lambda_{l-1} > 0`.
    """

    name = "LNN-X"

    def __init__(self, X_next, U_prev, W, b=None, *, lam: float = 1.0, lam_prev: float = 1.0,
                 linear_map: LinearMap | None = None, dtype=None):
        lam = check_scalar(lam, "lam")
        lam_prev = check_scalar(lam_prev, "lam_prev")
        self.xp, self.dtype, d = _common({"X_next": X_next, "U_prev": U_prev, "W": W, "b": b}, dtype)
        self._setup(linear_map, d["W"], d["b"], d["U_prev"])
        _check_shape(d["X_next"], (self.m,) + tuple(self.map.out_shape), "X_next", self.name)
        self.X_next, self.U_prev, self.lam, self.lam_prev = d["X_next"], d["U_prev"], lam, lam_prev
        self.data = _QuadTerm(self.X_next, lam)
        self.prev = _PrevQuadNonneg(self.U_prev, lam_prev)

    @property
    def lipschitz(self) -> float:
        # the quadratic prev term is in the prox, so only the data term counts
        return super().lipschitz


# ---------------------------------------------------------------------------------------------
# W-steps
# ---------------------------------------------------------------------------------------------
def _feature_matrix(linear_map, X):
    """``F`` with ``U[..., c] = F @ W.reshape(-1, c_out)[:, c] + b_c`` up to a row permutation, for
    Dense and Conv2D maps and Chains of weightless maps, one of them, then Flatten; else None."""
    xp, _ = get_namespace(X)
    m = X.shape[0]
    if isinstance(linear_map, Chain):
        pre, mid, post = linear_map._split()
        if mid is None or not all(isinstance(a, Flatten) for a in post):
            return None
        for a in pre:
            X = a._forward(X, None, xp)
        linear_map = mid
    if isinstance(linear_map, Dense):
        return X.reshape(m, -1)
    if isinstance(linear_map, Conv2D):
        return linear_map.patch_matrix(X)
    return None


class _WStep:
    r"""min_{W,b} data(A(X; W) + b) + rho(||W||^2 + ||b||^2) + gamma(||W - W0||^2 + ||b - b0||^2)."""

    name: ClassVar[str] = ""
    default_max_iter: ClassVar[int] = 20000

    def _setup(self, linear_map, X, W_shape, rho, gamma, W0, b0, target=None):
        if linear_map is None and W_shape is None and W0 is None and X.ndim == 2 and \
                target is not None and target.ndim == 2:
            W_shape = (X.shape[1], target.shape[1])  # dense map inferred from the data
        if linear_map is None:
            if W_shape is None and W0 is None:
                raise InputError(f"{self.name}: give linear_map=, W_shape= or W0= to fix the weight shape")
            shape = tuple(W_shape) if W_shape is not None else tuple(W0.shape)
            if len(shape) != 2:
                raise InputError(f"{self.name}: a dense default map needs a 2-D weight shape, got {shape}")
            linear_map = Dense(int(shape[0]), int(shape[1]))
        self.map = linear_map
        self.m = X.shape[0]
        if self.m < 1:
            raise InputError(f"{self.name}: X has no samples")
        _check_shape(X, (self.m,) + tuple(self.map.in_shape), "X", self.name)
        self.rho = check_scalar(rho, "rho")
        self.gamma = check_scalar(gamma, "gamma")
        xp = self.xp
        if W0 is None:
            W0 = xp.zeros(self.map.weight_shape, dtype=self.dtype)
        if b0 is None:
            b0 = xp.zeros(self.map.bias_shape, dtype=self.dtype)
        _check_shape(W0, self.map.weight_shape, "W0", self.name)
        _check_shape(b0, self.map.bias_shape, "b0", self.name)
        self.X, self.W0, self.b0 = X, W0, b0
        self._L = None
        self._P = None
        self._S = None

    def _U(self, x):
        return self.map.apply(self.X, x[0], x[1])

    def _grad(self, x):
        W, b = x
        dW, db = self.map.adjoint_weights(self.data.grad(self._U(x)), self.X)
        r, g = self.rho, self.gamma
        return (dW + 2 * r * W + 2 * g * (W - self.W0), db + 2 * r * b + 2 * g * (b - self.b0))

    @staticmethod
    def _prox(x, s):
        return x

    @property
    def lipschitz(self) -> float:
        if self._L is None:
            L = self.data.lipschitz * float(self.map.lipschitz_weights(self.X, include_bias=True))
            self._L = max(L + 2 * (self.rho + self.gamma), 1e-12)
        return self._L

    def _ridge(self, W, b) -> float:
        xp = self.xp
        out = 0.0
        if self.rho:
            out += self.rho * float(xp.sum(W * W) + xp.sum(b * b))
        if self.gamma:
            out += self.gamma * float(xp.sum((W - self.W0) ** 2) + xp.sum((b - self.b0) ** 2))
        return out

    def _check_x(self, x, what="x"):
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise InputError(f"{self.name}: {what} must be a pair (W, b)")
        W = check_array(x[0], f"W of {self.name}", shape=self.map.weight_shape, xp=self.xp, dtype=self.dtype)
        b = check_array(x[1], f"b of {self.name}", shape=self.map.bias_shape, xp=self.xp, dtype=self.dtype)
        return W, b

    # public API -------------------------------------------------------------------------------
    def objective(self, x) -> float:
        """Objective at ``x = (W, b)``."""
        W, b = self._check_x(x)
        return self.data.value(self._U((W, b))) + self._ridge(W, b)

    def residual(self, x) -> float:
        """Scale-free optimality residual ``||x - T(x)|| / max(1, ||x||)`` (``T``: a gradient step 1/L)."""
        x = self._check_x(x)
        return prox_grad_residual(x, self._grad(x), self._prox, self.lipschitz)

    def start(self):
        """Default warm start: ``(W0, b0)``."""
        return (self.W0, self.b0)

    def _closed_form(self):
        return None

    #: largest per-channel weight dimension (inputs + bias) for the Gram preconditioner
    max_precond_dim: ClassVar[int] = 2048

    def _preconditioner(self):
        r"""``solve_P`` for :func:`~cvx_fenchel.solvers.fista_metric`, or None.

        Every output channel ``c`` of a dense or convolutional map is ``U[..., c] = F W[:, c] + b_c``
        with one feature matrix ``F`` (``X`` for dense, the im2col patches for conv, after any
        weightless maps before the weighted one), so the data term's Hessian in ``(W, b)`` is
        bounded by ``L_data [F 1]^T [F 1]`` for every channel (``L_data = lam sup phi'`` or the
        loss's curvature bound) and the ridge/proximal terms add ``2(rho + gamma) I``:
        :math:`P = L_\text{data} [F\,1]^\top [F\,1] + 2(\rho + \gamma) I`, factored once by Cholesky.
        """
        if self._P is None:
            self._P = False
            F = _feature_matrix(self.map, self.X)
            if F is not None and F.shape[1] + 1 <= self.max_precond_dim and self.data.lipschitz > 0:
                xp, _ = get_namespace(F)
                A = xp.concatenate([F, xp.ones((F.shape[0], 1), dtype=F.dtype)], axis=1)
                P = self.data.lipschitz * (A.T @ A)
                n = P.shape[0]
                # tiny jitter keeps P definite when rho = gamma = 0 and A is rank deficient (a
                # larger P is still a majoriser)
                jitter = 2 * (self.rho + self.gamma) + 1e-12 * float(xp.max(xp.diagonal(P)) + 1.0)
                P = P + jitter * xp.eye(n, dtype=P.dtype)
                try:
                    Lp = cholesky(P)
                except np.linalg.LinAlgError:  # numerically indefinite: keep plain FISTA
                    return None
                c_out = self.map.weight_shape[-1]
                wshape = self.map.weight_shape

                def solve_P(g):
                    gW, gb = g
                    G = xp.concatenate([gW.reshape(-1, c_out), gb.reshape(1, c_out)], axis=0)
                    D = cholesky_solve(Lp, G)
                    return (D[:-1].reshape(wshape), D[-1].reshape(gb.shape))

                self._P = solve_P
        return self._P or None

    def _sample_space(self):
        r"""The W-step in sample space (dense maps with fewer samples than weights per unit), or None.

        With :math:`\Phi = [F\,1]` (``m x (n+1)``, ``m <= n+1``), :math:`c = \rho + \gamma > 0` and
        :math:`\bar\theta = (\gamma/c)\,\theta^0`, the objective is
        :math:`\mathrm{data}(\Phi\theta) + c\|\theta - \bar\theta\|^2` + const. Its minimiser lies in
        :math:`\bar\theta + \mathrm{range}(\Phi^\top)` (stationarity:
        :math:`\theta - \bar\theta = -\Phi^\top \nabla\mathrm{data}/(2c)`), and the component of a
        start outside it only adds to the ridge term, so it is dropped. With the eigendecomposition
        :math:`\Phi\Phi^\top = Q\Lambda Q^\top` (``m x m``, float64; eigenvalues below
        ``1e-13 max(Lambda)`` dropped), :math:`\Psi = \Phi^\top Q\Lambda^{-1/2}` is an orthonormal basis of
        that range and :math:`\theta = \bar\theta + \Psi C`:

        .. math::
            U = \Phi\bar\theta + Q\Lambda^{1/2} C, \qquad
            \nabla_C = \Lambda^{1/2} Q^\top \nabla\mathrm{data}(U) + 2cC, \qquad
            P_C = L_\text{data}\Lambda + 2c\,I \text{ (diagonal)}.

        :math:`P_C` is the Gram preconditioner of :meth:`_preconditioner` in these coordinates, so
        the iterates are the same as there (from the first step on), at the cost of two ``m x m``
        by ``m x k`` products a step instead of two ``m x (n+1)`` products and two triangular
        solves of order ``n+1``.
        """
        if self._S is None:
            self._S = False
            c = self.rho + self.gamma
            mid = self.map._split()[1] if isinstance(self.map, Chain) else self.map
            F = _feature_matrix(self.map, self.X) if isinstance(mid, Dense) else None
            if F is not None and c > 0 and F.shape[0] <= F.shape[1] + 1 and self.data.lipschitz > 0 \
                    and tuple(self.map.out_shape) == (self.map.weight_shape[-1],):
                xp = self.xp
                Phi = xp.concatenate([F, xp.ones((F.shape[0], 1), dtype=F.dtype)], axis=1).astype(xp.float64)
                lam, Q = xp.linalg.eigh(Phi @ Phi.T)
                keep = lam > 1e-13 * max(float(lam[-1]), 1.0)
                lam, Q = lam[keep], Q[:, keep]
                k = self.map.weight_shape[-1]
                theta_bar = (self.gamma / c) * xp.concatenate(
                    [self.W0.reshape(-1, k), self.b0.reshape(1, k)], axis=0).astype(xp.float64)
                sq = xp.sqrt(lam)
                if self._L is None:  # ||[X 1]||^2 = max(Lambda): no second eigenvalue solve for the residual
                    self._L = max(self.data.lipschitz * float(lam[-1]) + 2 * c, 1e-12)
                # float64 for the change of coordinates at both ends, the working dtype inside
                self._S = {"Phi": Phi, "Q64": Q, "sq64": sq, "theta_bar": theta_bar, "c": c, "k": k,
                           "Q": Q.astype(self.dtype, copy=False), "sq": sq.astype(self.dtype, copy=False),
                           "metric": (self.data.lipschitz * lam + 2 * c).astype(self.dtype)[:, None],
                           "U_bar": (Phi @ theta_bar).astype(self.dtype, copy=False),
                           "psi_bar": ((Q.T @ (Phi @ theta_bar)) / sq[:, None]).astype(self.dtype, copy=False),
                           "bar_sq": float(xp.sum(theta_bar * theta_bar))}
        return self._S or None

    def _solve_sample_space(self, S, x0, tol, max_iter):
        xp = self.xp
        k = S["k"]
        theta0 = xp.concatenate([x0[0].reshape(-1, k), x0[1].reshape(1, k)], axis=0).astype(xp.float64)
        C0 = ((S["Q64"].T @ (S["Phi"] @ (theta0 - S["theta_bar"]))) / S["sq64"][:, None]).astype(self.dtype)
        Q, sq, metric, U_bar, c2 = S["Q"], S["sq"][:, None], S["metric"], S["U_bar"], 2 * S["c"]
        psi_bar = S["psi_bar"]

        def grad(t):
            C = t[0]
            R = self.data.grad(U_bar + Q @ (sq * C))
            return (sq * (Q.T @ R) + c2 * C,)

        def norm_x(t):  # ||theta_bar + Psi C||
            C = t[0]
            return math.sqrt(max(S["bar_sq"] + 2 * float(xp.sum(psi_bar * C)) + float(xp.sum(C * C)), 0.0))

        (C,), n, _ = fista_metric(grad, lambda g: (g[0] / metric,), (C0,), tol=tol, max_iter=max_iter,
                                  norm_x=norm_x)
        theta = S["theta_bar"] + S["Phi"].T @ (S["Q64"] @ (C.astype(xp.float64) / S["sq64"][:, None]))
        theta = theta.astype(self.dtype)
        return (theta[:-1].reshape(self.map.weight_shape), theta[-1].reshape(self.map.bias_shape)), n

    def _path(self, precondition: bool = True, sample_space: bool = True) -> str:
        if self._closed_form_available():
            return "closed-form"
        if precondition and sample_space and self._sample_space() is not None:
            return "sample-space"
        return "gram" if precondition and self._preconditioner() is not None else "fista"

    @property
    def fast_method(self) -> str:
        """Which path :meth:`solve_fast` takes: ``closed-form``, ``sample-space``, ``gram`` or ``fista``."""
        return self._path()

    def _closed_form_available(self) -> bool:
        return False

    def solve_fast(self, x0=None, *, tol: float | None = None, max_iter: int | None = None,
                   warn: bool = True, precondition: bool = True, sample_space: bool = True) -> FastResult:
        """Closed form where one exists (dense ridge by Cholesky); else accelerated
        majorise-minimise steps in the metric of the Gram preconditioner
        (:func:`~cvx_fenchel.solvers.fista_metric`): in sample space (:meth:`_sample_space`) for
        dense maps with at most as many samples as weights per unit and ``rho + gamma > 0``
        (unless ``sample_space=False``), else in weight space for dense and convolutional maps
        (:meth:`_preconditioner`); else (or with ``precondition=False``) FISTA with restart. The
        reported residual is always the Euclidean scale-free one (:meth:`residual`)."""
        t0 = time.perf_counter()
        tol = _solver_tol(tol, self.dtype)
        path = self._path(precondition, sample_space)
        if path == "closed-form":
            closed = self._closed_form()
            res = self.residual(closed)
            return FastResult(closed, self.objective(closed), 0, res <= max(tol, 1e3 * np.finfo(self.dtype).eps),
                              res, time.perf_counter() - t0)
        max_iter = self.default_max_iter if max_iter is None else int(max_iter)
        x0 = self.start() if x0 is None else self._check_x(x0, "x0")
        if path != "fista":
            if path == "sample-space":
                x, n = self._solve_sample_space(self._sample_space(), x0, tol, max_iter)
            else:  # rho = gamma = 0: P is definite only through its jitter; stop on the residual too
                x, n, _ = fista_metric(self._grad, self._preconditioner(), tuple(x0), tol=tol, max_iter=max_iter,
                                       lipschitz=self.lipschitz if self.rho + self.gamma == 0 else None)
            res = self.residual(x)
            conv = res <= tol
            if not conv and warn:
                warnings.warn(f"{self.name}: preconditioned steps stopped at the iteration cap "
                              f"({max_iter}) with residual {res:.3g} > tol {tol:.3g}",
                              ConvergenceWarning, stacklevel=2)
            return FastResult(x, self.objective(x), n, conv, res, time.perf_counter() - t0)
        x, n, conv, res = fista(self._grad, self._prox, tuple(x0), self.lipschitz, tol=tol, max_iter=max_iter,
                                name=self.name, warn=warn)
        return FastResult(x, self.objective(x), n, conv, res, time.perf_counter() - t0)

    def gradient_step(self, x, lr: float | None = None):
        """One gradient step ``x - lr * grad`` (default ``lr = 1/L``): the paper's CIFAR-10 W-step."""
        x = self._check_x(x)
        lr = 1.0 / self.lipschitz if lr is None else check_scalar(lr, "lr", low=0.0, low_inclusive=False)
        g = self._grad(x)
        return tuple(a - lr * d for a, d in zip(x, g))

    def grad(self, x):
        """Gradient of the objective at ``x = (W, b)``."""
        return self._grad(self._check_x(x))

    def cvxpy_problem(self):
        """``(problem, (W, b))``: the CVXPY declaration with variables of the weight and bias shapes
        (a convolution's ``W`` as a ``(kh*kw*c_in, c_out)`` matrix, same C-order entries)."""
        import cvxpy as cp
        ws = tuple(self.map.weight_shape)
        shape2 = ws if len(ws) <= 2 else (int(np.prod(ws[:-1])), ws[-1])
        W = cp.Variable(shape2, name="W")
        b = cp.Variable(tuple(self.map.bias_shape), name="b")
        U = self.map.cvxpy_apply_weights(to_numpy(self.X), W, b)
        obj = self.data.cvxpy(U)
        W0 = np.asarray(to_numpy(self.W0), dtype=float).reshape(shape2)
        b0 = np.asarray(to_numpy(self.b0), dtype=float)
        if self.rho:
            obj = obj + self.rho * (cp.sum_squares(W) + cp.sum_squares(b))
        if self.gamma:
            obj = obj + self.gamma * (cp.sum_squares(W - W0) + cp.sum_squares(b - b0))
        return cp.Problem(cp.Minimize(obj)), (W, b)

    def solve_cvxpy(self, solver: str = "CLARABEL", **kwargs):
        """Solve the CVXPY declaration; returns ``((W, b), result)``; SolverError unless optimal."""
        prob, (W, b) = self.cvxpy_problem()
        res = solve(prob, solver, name=self.name, **kwargs)
        return (W.value.reshape(self.map.weight_shape), np.asarray(b.value).reshape(self.map.bias_shape)), res


class WHidden(_WStep):
    r"""W-step of a hidden layer.

    .. math::
        \min_{W, b}\; \lambda \sum B\big(X_{l+1}, A(X_l; W) + b\big) + \rho(\|W\|^2 + \|b\|^2)
        + \gamma(\|W - W^0\|^2 + \|b - b^0\|^2)

    Smooth (``F*`` is differentiable for every activation here) and strongly
    convex when :math:`\rho + \gamma > 0`. Its Hessian in each output channel's
    ``(w_c, b_c)`` is at most :math:`P = \lambda \sup\phi' [F\,1]^\top[F\,1] + 2(\rho+\gamma) I`
    (``F``: the inputs of a dense map, the im2col patches of a convolution), so
    :meth:`solve_fast` takes accelerated steps :math:`y - P^{-1}\nabla f(y)` (one Cholesky
    of ``P`` per subproblem); plain FISTA (Lipschitz constant
    :math:`\lambda \sup\phi' \|[A_X, 1]\|^2 + 2(\rho + \gamma)`) otherwise.
    """

    name = "W-hidden"

    def __init__(self, X, X_next, activation="relu", *, lam: float = 1.0, rho: float = 0.0, gamma: float = 0.0,
                 W0=None, b0=None, W_shape=None, linear_map: LinearMap | None = None, dtype=None):
        act = get_activation(activation)
        lam = check_scalar(lam, "lam")
        self.xp, self.dtype, d = _common({"X": X, "X_next": X_next, "W0": W0, "b0": b0}, dtype)
        self._setup(linear_map, d["X"], W_shape, rho, gamma, d["W0"], d["b0"], d["X_next"])
        _check_shape(d["X_next"], (self.m,) + tuple(self.map.out_shape), "X_next", self.name)
        _check_domain(act, d["X_next"], "X_next", self.name)
        self.X_next, self.activation, self.lam = d["X_next"], act, lam
        self.data = _DivergenceTerm(act, self.X_next, lam)


class WLast(_WStep):
    r"""W-step of the output layer.

    .. math::
        \min_{W, b}\; c\,\mathrm{Loss}\big(Y, A(X_L; W) + b\big) + \rho(\|W\|^2 + \|b\|^2)
        + \gamma(\|W - W^0\|^2 + \|b - b^0\|^2)

    MSE with a dense map is ridge regression with a proximal term, solved in
    closed form by Cholesky; cross-entropy (multinomial logistic regression) by
    FISTA with restart.
    """

    name = "W-last"

    def __init__(self, X, Y, *, loss: str = "cross_entropy", coef: float = 1.0, rho: float = 0.0,
                 gamma: float = 0.0, W0=None, b0=None, W_shape=None, linear_map: LinearMap | None = None,
                 dtype=None):
        self.loss = _check_loss(loss)
        self.name = f"W-last-{'ce' if self.loss == 'cross_entropy' else 'mse'}"
        self.coef = check_scalar(coef, "coef")
        self.xp, self.dtype, d = _common({"X": X, "Y": Y, "W0": W0, "b0": b0}, dtype)
        self._setup(linear_map, d["X"], W_shape, rho, gamma, d["W0"], d["b0"], d["Y"])
        _check_shape(d["Y"], (self.m,) + tuple(self.map.out_shape), "Y", self.name)
        _check_targets(self.loss, d["Y"], self.name)
        self.Y = d["Y"]
        self.data = _LossTerm(self.loss, self.Y, self.coef)

    def _closed_form_available(self) -> bool:
        return self.loss == "mse" and isinstance(self.map, Dense)

    def _closed_form(self):
        if not self._closed_form_available():
            return None
        return _dense_ridge(self, self.Y, scale=self.coef)


class LNNW(_WStep):
    r"""W-step of the 2018 lifted network: ridge regression (closed form for dense maps).

    .. math::
        \min_{W, b}\; \lambda \|A(X; W) + b - X_{l+1}\|_F^2 + \rho(\|W\|^2 + \|b\|^2)
        + \gamma(\|W - W^0\|^2 + \|b - b^0\|^2)
    """

    name = "LNN-W"

    def __init__(self, X, X_next, *, lam: float = 1.0, rho: float = 0.0, gamma: float = 0.0, W0=None, b0=None,
                 W_shape=None, linear_map: LinearMap | None = None, dtype=None):
        lam = check_scalar(lam, "lam")
        self.xp, self.dtype, d = _common({"X": X, "X_next": X_next, "W0": W0, "b0": b0}, dtype)
        self._setup(linear_map, d["X"], W_shape, rho, gamma, d["W0"], d["b0"], d["X_next"])
        _check_shape(d["X_next"], (self.m,) + tuple(self.map.out_shape), "X_next", self.name)
        self.X_next, self.lam = d["X_next"], lam
        self.data = _QuadTerm(self.X_next, lam)

    def _closed_form_available(self) -> bool:
        return isinstance(self.map, Dense)

    def _closed_form(self):
        if not self._closed_form_available():
            return None
        return _dense_ridge(self, self.X_next, scale=2 * self.lam)


def _dense_ridge(step: _WStep, T, *, scale: float):
    """(W, b) minimising scale/2 ||[X 1] theta - T||^2 + rho||theta||^2 + gamma||theta - theta0||^2."""
    xp = step.xp
    X = _flat(step.X)
    A = xp.concatenate([X, xp.ones((X.shape[0], 1), dtype=X.dtype)], axis=1)
    p = A.shape[1]
    theta0 = xp.concatenate([step.W0, step.b0[None, :]], axis=0)
    reg = xp.full((p,), step.rho, dtype=X.dtype)
    reg0 = xp.full((p,), step.gamma, dtype=X.dtype)
    theta = ridge_solve(A, T, scale=scale, reg=reg, reg0=reg0, theta0=theta0)
    return theta[:-1], theta[-1]


# ---------------------------------------------------------------------------------------------
# the 2018 model's output step
# ---------------------------------------------------------------------------------------------
class LNNSimplexCE:
    r"""Output step of the 2018 lifted network with cross-entropy (techreport, Appendix A).

    .. math::
        \min_{Z:\; Z \ge 0,\; Z\mathbf 1 = \mathbf 1}\; -\mathrm{Tr}\, Y^\top \log Z + \lambda \|Z - X^0\|_F^2

    with ``X0 = A(X_L; W_L) + b_L`` fixed; separable over samples, each solved by
    bisection on the multiplier of :math:`\mathbf 1^\top z = 1`
    (:func:`cvx_fenchel.solvers.simplex_ce_prox`).
    """

    name = "LNN-simplex-CE"

    def __init__(self, Y, X0, *, lam: float = 1.0, dtype=None):
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        self.xp, self.dtype, d = _common({"Y": Y, "X0": X0}, dtype)
        self.Y, self.X0 = d["Y"], d["X0"]
        if self.Y.ndim != 2:
            raise InputError(f"{self.name}: Y must be 2-D (m, classes), got shape {tuple(self.Y.shape)}")
        _check_shape(self.X0, self.Y.shape, "X0", self.name)
        if bool(self.xp.any(self.Y < 0)):
            raise InputError(f"{self.name}: Y must be non-negative")
        self.m = self.Y.shape[0]

    def objective(self, Z) -> float:
        xp = self.xp
        Z = xp.asarray(Z, dtype=self.dtype)
        if bool(xp.any(Z < 0)):
            return math.inf
        from .backend import get_namespace as _g
        _, xsp = _g(Z)
        return float(-xp.sum(xsp.special.xlogy(self.Y, Z)) + self.lam * xp.sum((Z - self.X0) ** 2))

    def residual(self, Z) -> float:
        r"""KKT residual: with :math:`g = -Y/Z + 2\lambda(Z - X^0)`, the multiplier
        :math:`\nu_i = -\mathrm{mean}_{k: Z_{ik} > 0} g_{ik}` and the violation of
        :math:`g + \nu = 0` on the support, :math:`g + \nu \ge 0` off it, plus
        :math:`|Z\mathbf 1 - \mathbf 1|`, relative to :math:`\max(1, \|g\|)`."""
        xp = self.xp
        Z = xp.asarray(Z, dtype=self.dtype)
        pos = Z > 1e-12
        safe = xp.where(pos, Z, 1.0)
        g = xp.where(pos, -self.Y / safe, 0.0) + 2 * self.lam * (Z - self.X0)
        nu = -(g * pos).sum(axis=1, keepdims=True) / xp.maximum(pos.sum(axis=1, keepdims=True), 1)
        viol = xp.where(pos, g + nu, xp.minimum(g + nu, 0))
        num = math.sqrt(float(xp.sum(viol ** 2))) + float(xp.abs(Z.sum(axis=1) - 1).max())
        return num / max(1.0, math.sqrt(float(xp.sum(g ** 2))))

    def solve_fast(self, x0=None, *, tol: float | None = None, max_iter: int | None = None,
                   warn: bool = True) -> FastResult:
        """Bisection on the dual variable, all samples at once (``x0`` is ignored: no warm start needed)."""
        t0 = time.perf_counter()
        tol = _solver_tol(tol, self.dtype)
        Z, n = simplex_ce_prox(self.Y, self.X0, self.lam, n_iter=200 if max_iter is None else int(max_iter))
        res = self.residual(Z)
        return FastResult(Z, self.objective(Z), n, res <= max(tol, 1e-7), res, time.perf_counter() - t0)

    def cvxpy_problem(self):
        import cvxpy as cp
        Z = cp.Variable(tuple(self.Y.shape), name="Z")
        Y = np.asarray(to_numpy(self.Y), dtype=float)
        X0 = np.asarray(to_numpy(self.X0), dtype=float)
        support = Y > 0
        obj = -cp.sum(cp.multiply(Y[support], cp.log(Z[support]))) if support.any() else 0
        obj = obj + self.lam * cp.sum_squares(Z - X0)
        return cp.Problem(cp.Minimize(obj), [Z >= 0, cp.sum(Z, axis=1) == 1]), Z

    def solve_cvxpy(self, solver: str = "CLARABEL", **kwargs):
        prob, Z = self.cvxpy_problem()
        res = solve(prob, solver, name=self.name, **kwargs)
        return Z.value, res


# ---------------------------------------------------------------------------------------------
# the Lagrange lower bound
# ---------------------------------------------------------------------------------------------
def lower_bound(X, Y, W0, b0, W1, b1, activation="relu", *, lam: float = 1.0, loss: str = "cross_entropy",
                method: str = "fast", solver: str = "CLARABEL", tol: float | None = None,
                max_iter: int | None = None) -> dict:
    r"""Lagrange lower bound :math:`G_W(\lambda) \le p(W)` for one hidden layer at fixed weights.

    With :math:`U_0 = X W_0 + b_0`:

    .. math::
        G_W(\lambda) = \min_{X_1 \in \mathrm{dom} F}\; \mathrm{Loss}(Y, X_1 W_1 + b_1) + \lambda \sum B(X_1, U_0)
        \;\le\; p(W) = \mathrm{Loss}\big(Y, \phi(U_0) W_1 + b_1\big),

    since ``B >= 0`` and ``B(phi(U_0), U_0) = 0`` (take :math:`X_1 = \phi(U_0)`).
    :math:`G_W` is nondecreasing in :math:`\lambda` and tends to :math:`p(W)`.

    Returns a dict with ``G`` (the bound), ``p`` (the network loss), ``gap = p - G``
    (>= 0 up to solver accuracy), ``X1`` (the minimiser) and ``method``.
    """
    xp, dtype, d = _common({"X": X, "Y": Y, "W0": W0, "b0": b0, "W1": W1, "b1": b1})
    act = get_activation(activation)
    U0 = d["X"] @ d["W0"] + (0 if d["b0"] is None else d["b0"])
    sub = XLast(d["Y"], U0, d["W1"], d["b1"], act, loss=loss, lam_prev=lam, coef=1.0)
    p = loss_value(sub.loss, sub.Y, act.forward(U0) @ d["W1"] + (0 if d["b1"] is None else d["b1"]))
    if method == "fast":
        r = sub.solve_fast(tol=tol, max_iter=max_iter)
        G, X1 = r.objective, r.x
    elif method == "cvxpy":
        X1, res = sub.solve_cvxpy(solver)
        G = res.objective
    else:
        raise UnknownNameError(f"unknown lower-bound method {method!r}; choose 'fast' or 'cvxpy'")
    return {"G": G, "p": p, "gap": p - G, "X1": X1, "method": method, "lam": lam}


SUBPROBLEMS = {cls.name: cls for cls in (XHidden, WHidden, LNNX, LNNW, LNNSimplexCE)}
SUBPROBLEMS.update({"X-last-ce": XLast, "X-last-mse": XLast, "W-last-ce": WLast, "W-last-mse": WLast})
