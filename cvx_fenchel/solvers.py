r"""Fast solvers shared by the subproblems: accelerated proximal gradient, ridge, simplex bisection.

Every solver is batched array code through the inputs' namespace ``xp`` (NumPy
or CuPy), in float32 or float64, and returns a :class:`FastResult`.

Optimality measure (scale-free): for a composite problem
:math:`\min_x f(x) + g(x)` with :math:`\nabla f` :math:`L`-Lipschitz, the
proximal-gradient map :math:`T(x) = \mathrm{prox}_{g/L}(x - \nabla f(x)/L)`
has the minimisers as fixed points; we report

.. math::  r(x) = \frac{\|x - T(x)\|}{\max(1, \|x\|)},

which does not change when the objective is multiplied by a constant and is
relative to the size of ``x``. Solvers stop when :math:`r \le` ``tol`` and
report ``converged=False`` with a :class:`~cvx_fenchel.errors.ConvergenceWarning`
when the iteration cap comes first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .backend import get_namespace
from .errors import ConvergenceWarning, InputError

Tree = tuple  # a tuple of arrays: (Z,) for X-steps, (W, b) for W-steps


@dataclass
class FastResult:
    r"""Result of a fast-path solve.

    Attributes
    ----------
    x : array or tuple of arrays
        The minimiser (``Z`` for X-steps, ``(W, b)`` for W-steps).
    objective : float
        Objective value at ``x`` (array code, the same function CVXPY declares).
    n_iter : int
        Iterations taken (0 for closed forms).
    converged : bool
        Whether the optimality residual reached the tolerance and, where a certificate exists
        (``gap_bound``), the certified suboptimality did too: never just "the iterates stopped
        moving".
    residual : float
        Scale-free optimality residual at ``x`` (see module docstring).
    seconds : float
        Wall time of the solve.
    method : str
        Which path or strategy produced it (e.g. ``fista``, ``sample-space``, ``closed-form``).
    gap_bound : float
        A certified upper bound on the relative suboptimality
        :math:`(f(x) - f^*) / \max(1, |f(x)|)` where the solver has one (W-steps with
        :math:`\rho + \gamma > 0`: :math:`\|\nabla f(x)\|^2 / (2\mu)`, :math:`\mu = 2(\rho+\gamma)`);
        ``nan`` where it has none.
    note : str
        Why ``converged`` is False (or which certificate backs a True), in words.
    """

    x: Any
    objective: float
    n_iter: int
    converged: bool
    residual: float
    seconds: float = 0.0
    method: str = ""
    gap_bound: float = math.nan
    note: str = ""


def default_tol(dtype: Any) -> float:
    """1e-9 in float64, 1e-5 in float32 (about 100 eps of float32)."""
    return 1e-9 if np.dtype(dtype) == np.float64 else 1e-5


def _norm(tree: Tree, xp) -> float:
    return math.sqrt(sum(float(xp.vdot(a.ravel(), a.ravel()).real) for a in tree if a is not None))


def _diff_norm(a: Tree, b: Tree, xp) -> float:
    return math.sqrt(sum(float(xp.sum((u - v) ** 2)) for u, v in zip(a, b) if u is not None))


def prox_grad_residual(x: Tree, grad: Tree, prox: Callable[[Tree, float], Tree], L: float) -> float:
    """:math:`\\|x - T(x)\\| / \\max(1, \\|x\\|)` with :math:`T(x) = \\mathrm{prox}_{g/L}(x - \\nabla f(x)/L)`."""
    xp, _ = get_namespace(*[a for a in x if a is not None])
    y = tuple(None if a is None else a - g / L for a, g in zip(x, grad))
    tx = prox(y, 1.0 / L)
    return _diff_norm(x, tx, xp) / max(1.0, _norm(x, xp))


def fista(grad_f: Callable[[Tree], Tree], prox: Callable[[Tree, float], Tree], x0: Tree, L: float, *,
          tol: float, max_iter: int, restart: bool = True, name: str = "problem",
          warn: bool = True) -> tuple[Tree, int, bool, float]:
    r"""Accelerated proximal gradient (FISTA) with gradient-based adaptive restart.

    Minimises :math:`f(x) + g(x)` for convex :math:`f` with :math:`L`-Lipschitz
    gradient and convex :math:`g` with an easy proximal map
    (:math:`\mathrm{prox}(v, s) = \arg\min_x s\,g(x) + \tfrac12\|x - v\|^2`).
    Beck and Teboulle (2009); restart of O'Donoghue and Candes (2015): the
    momentum is reset whenever :math:`\langle y - x_{k+1}, x_{k+1} - x_k\rangle > 0`.

    Returns
    -------
    (x, n_iter, converged, residual)
    """
    if not (L > 0 and math.isfinite(L)):
        raise InputError(f"{name}: Lipschitz constant must be positive and finite, got {L}")
    xs = [a for a in x0 if a is not None]
    xp, _ = get_namespace(*xs)
    step = 1.0 / L
    x = x0
    y = x0
    t = 1.0
    residual = math.inf
    for k in range(1, max_iter + 1):
        g = grad_f(y)
        x_new = prox(tuple(None if a is None else a - step * d for a, d in zip(y, g)), step)
        # the differences y - x_new and x_new - x are formed once and shared by the stopping test,
        # the restart test and the extrapolation (same values as forming them in each)
        dy = tuple(None if a is None else a - b for a, b in zip(y, x_new))
        r_y = math.sqrt(sum(float(xp.sum(e * e)) for e in dy if e is not None)) / max(1.0, _norm(x_new, xp))
        if r_y <= tol:
            residual = prox_grad_residual(x_new, grad_f(x_new), prox, L)
            if residual <= tol:
                return x_new, k, True, residual
        dx = tuple(None if a is None else a - b for a, b in zip(x_new, x))
        if restart and sum(float(xp.sum(e * f)) for e, f in zip(dy, dx) if e is not None) > 0:
            t = 1.0
            y = x_new
        else:
            t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
            beta = (t - 1) / t_new
            y = tuple(None if a is None else a + beta * e for a, e in zip(x_new, dx))
            t = t_new
        x = x_new
    residual = prox_grad_residual(x, grad_f(x), prox, L)
    converged = residual <= tol
    if not converged and warn:
        warnings.warn(f"{name}: FISTA stopped at the iteration cap ({max_iter}) with residual "
                      f"{residual:.3g} > tol {tol:.3g}", ConvergenceWarning, stacklevel=3)
    return x, max_iter, converged, residual


def fista_metric(grad_f: Callable[[Tree], Tree], solve_P: Callable[[Tree], Tree], x0: Tree, *,
                 tol: float, max_iter: int, restart: bool = True,
                 norm_x: Callable[[Tree], float] | None = None,
                 lipschitz: float | None = None) -> tuple[Tree, int, bool]:
    r"""Accelerated gradient in the metric of a fixed matrix :math:`P \succeq \nabla^2 f`.

    For smooth convex :math:`f` whose Hessian is bounded by :math:`P` everywhere,
    :math:`q_y(x) = f(y) + \langle\nabla f(y), x - y\rangle + \tfrac12\|x - y\|_P^2` majorises
    :math:`f`, and its minimiser :math:`y - P^{-1}\nabla f(y)` is the step: FISTA with
    Lipschitz constant 1 in the :math:`P`-norm (majorise-minimise with momentum and gradient
    restart). Unconstrained. ``solve_P(g)`` returns :math:`P^{-1} g` for a gradient tree.

    Stops when the step :math:`\|P^{-1}\nabla f(y)\| \le` ``tol`` :math:`\max(1, \|x\|)`.
    Because :math:`\|P\| \le L` (the Euclidean Lipschitz constant used by the residual of
    :func:`prox_grad_residual`), :math:`\|\nabla f\|/L \le \|P^{-1}\nabla f\|`, so the caller's
    residual check at the returned point is implied up to the change between ``y`` and ``x``;
    callers report that residual. ``norm_x`` (default: the Euclidean norm of the tree) measures
    ``||x||`` in that test, for callers that iterate on coordinates of an affine parametrisation
    ``x = x_bar + Psi c`` with orthonormal ``Psi`` (steps keep their norm; points do not).

    With ``lipschitz`` (the Euclidean :math:`L`), it also stops at ``y`` when
    :math:`\|\nabla f(y)\|/L \le` ``tol`` :math:`\max(1, \|y\|)`, the callers' residual test
    itself: when ``P`` is nearly singular (``rho = gamma = 0`` and rank-deficient features) the
    step test alone can fail for ever, since :math:`P^{-1}` blows rounding errors in the null
    space of the data up into steps along directions the objective does not see.

    Returns
    -------
    (x, n_iter, step_converged)
    """
    xs = [a for a in x0 if a is not None]
    xp, _ = get_namespace(*xs)
    x = y = x0
    t = 1.0
    for k in range(1, max_iter + 1):
        g = grad_f(y)
        if lipschitz is not None and \
                _norm(g, xp) / lipschitz <= tol * max(1.0, _norm(y, xp) if norm_x is None else norm_x(y)):
            return y, k, True
        d = solve_P(g)
        x_new = tuple(a - e for a, e in zip(y, d))
        if _norm(d, xp) <= tol * max(1.0, _norm(x_new, xp) if norm_x is None else norm_x(x_new)):
            return x_new, k, True
        if restart and sum(float(xp.sum((a - b) * (b - c))) for a, b, c in zip(y, x_new, x)) > 0:
            t = 1.0
            y = x_new
        else:
            t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
            beta = (t - 1) / t_new
            y = tuple(a + beta * (a - b) for a, b in zip(x_new, x))
            t = t_new
        x = x_new
    return x, max_iter, False


def cholesky(G: Any) -> Any:
    r"""Lower Cholesky factor :math:`L` of a symmetric positive definite ``G`` (:math:`G = LL^\top`).

    NumPy and CuPy alike: raises :class:`numpy.linalg.LinAlgError` when ``G`` is not numerically
    positive definite (CuPy's ``cholesky`` returns NaN there instead of raising).
    """
    xp, _ = get_namespace(G)
    L = xp.linalg.cholesky(G)
    if not bool(xp.all(xp.isfinite(xp.diagonal(L)))):
        raise np.linalg.LinAlgError("matrix is not numerically positive definite")
    return L


def cholesky_solve(L: Any, R: Any) -> Any:
    """Solve ``(L L^T) X = R`` given the lower Cholesky factor ``L`` (n, n) and ``R`` (n, k).

    Two triangular solves (``scipy.linalg.solve_triangular`` or its ``cupyx`` twin: cupyx.scipy
    has no ``cho_solve``); on NumPy/OpenBLAS also faster than LAPACK's ``potrs`` for the W-step
    preconditioner's shapes (785 x 300).
    """
    _, xsp = get_namespace(L, R)
    Y = xsp.linalg.solve_triangular(L, R, lower=True, check_finite=False)
    return xsp.linalg.solve_triangular(L, Y, lower=True, trans=1, check_finite=False)


def ridge_solve(A: Any, T: Any, *, scale: float, reg: Any, reg0: Any = None, theta0: Any = None) -> Any:
    r"""Closed-form ridge with a proximal term, by Cholesky.

    Solves :math:`\min_\theta \tfrac{s}{2}\|A\theta - T\|_F^2 + \sum_i d_i\|\theta_i\|^2
    + \sum_i e_i \|\theta_i - \theta^0_i\|^2` (rows :math:`\theta_i` of :math:`\theta`),
    i.e. :math:`(sA^\top A + 2\,\mathrm{diag}(d + e))\theta = sA^\top T + 2\,\mathrm{diag}(e)\theta^0`.

    Parameters
    ----------
    A : (m, p) design matrix (for a dense layer: ``[X, 1]``)
    T : (m, k) targets
    scale : float ``s > 0``
    reg : (p,) ridge weights ``d`` (>= 0)
    reg0, theta0 : (p,) proximal weights ``e`` and (p, k) centre, optional

    Falls back to a least-squares solve when the system is singular
    (``d + e`` zero and ``A`` rank deficient).
    """
    xp, xsp = get_namespace(A, T)
    H = scale * (A.T @ A)
    rhs = scale * (A.T @ T)
    diag = reg if reg0 is None else reg + reg0
    H = H + 2 * xp.diag(xp.asarray(diag, dtype=A.dtype))
    if reg0 is not None and theta0 is not None:
        rhs = rhs + 2 * xp.asarray(reg0, dtype=A.dtype)[:, None] * theta0
    try:
        theta = cholesky_solve(cholesky(H), rhs)
        if bool(xp.all(xp.isfinite(theta))):
            return theta
    except np.linalg.LinAlgError:
        pass
    return xp.linalg.lstsq(H, rhs, rcond=None)[0]


def simplex_ce_prox(Y: Any, X0: Any, lam: float, *, n_iter: int = 200) -> tuple[Any, int]:
    r"""Row-wise :math:`\min_{z \in \Delta} -\sum_k y_k \log z_k + \lambda \|z - x^0\|^2` by bisection.

    Stationarity with multiplier :math:`\nu` of :math:`\mathbf 1^\top z = 1` gives
    :math:`2\lambda z_k^2 + (\nu - 2\lambda x^0_k) z_k - y_k = 0`, so
    :math:`z_k(\nu) = \big(b_k + \sqrt{b_k^2 + 8\lambda y_k}\big) / (4\lambda)` with
    :math:`b_k = 2\lambda x^0_k - \nu` (which is :math:`\max(b_k, 0)/(2\lambda)` where
    :math:`y_k = 0`): decreasing in :math:`\nu`. With :math:`s = \sum_k y_k`, the sum is
    :math:`\le 1` at :math:`\nu = \max_k 2\lambda x^0_k + s` and :math:`\ge 1` at
    :math:`\nu = \min_k 2\lambda x^0_k - 2\lambda`; bisection on :math:`\nu` (techreport,
    Appendix A) runs on all rows at once.

    Returns
    -------
    (Z, n_iter) with Z of the shape of Y, rows on the simplex.
    """
    xp, _ = get_namespace(Y, X0)
    twolam = 2.0 * lam
    s = Y.sum(axis=1, keepdims=True)
    hi = (twolam * X0).max(axis=1, keepdims=True) + xp.maximum(s, 1e-300)
    lo = (twolam * X0).min(axis=1, keepdims=True) - twolam

    def z_of(nu):
        b = twolam * X0 - nu
        # for b < 0 the root is 2y/(-b + sqrt(...)): no cancellation
        root = xp.sqrt(b * b + 4 * twolam * Y)
        return xp.where(b >= 0, (b + root) / (2 * twolam), 2 * Y / xp.maximum(root - b, 1e-300))

    it = 0
    for it in range(1, n_iter + 1):
        mid = 0.5 * (lo + hi)
        over = z_of(mid).sum(axis=1, keepdims=True) > 1
        lo = xp.where(over, mid, lo)
        hi = xp.where(over, hi, mid)
        if bool(xp.all(hi - lo <= 4 * np.finfo(Y.dtype).eps * (1 + xp.abs(hi)))):
            break
    Z = z_of(0.5 * (lo + hi))
    return Z / Z.sum(axis=1, keepdims=True), it
