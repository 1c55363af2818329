r"""The subproblems of the 2018 lifted neural network (quadratic penalties instead of divergences).

=================  ==========================================================================
class              problem
=================  ==========================================================================
LNNX               :math:`\min_{Z \ge 0} \lambda_l \|A_l(Z) + b_l - X_{l+1}\|^2 + \lambda_{l-1}\|Z - U_{l-1}\|^2`
LNNW               :math:`\min_{W,b} \lambda \|A(X; W) + b - X_{l+1}\|^2 + \rho\|(W,b)\|^2 + \gamma\|(W,b)-(W^0,b^0)\|^2`
LNNSimplexCE       :math:`\min_{Z \in \Delta^m} -\mathrm{Tr}\,Y^\top \log Z + \lambda \|Z - X^0\|^2` (rows on the simplex)
=================  ==========================================================================
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numpy as np

from ..backend import check_scalar, get_namespace, to_numpy
from ..cvx import solve
from ..errors import InputError
from ..maps import Dense, LinearMap
from ..solvers import FastResult
from .common import check_shape, common_arrays, result, solver_tol
from .terms import PrevQuadNonneg, QuadTerm
from .wsteps import WStep
from .xsteps import XStep

__all__ = ["LNNX", "LNNW", "LNNSimplexCE", "simplex_ce_prox"]


class LNNX(XStep):
    r"""X-step of the 2018 lifted network: non-negative least squares.

    .. math::
        \min_{Z \ge 0}\; \lambda_l \|A_l(Z; W_l) + b_l - X_{l+1}\|_F^2 + \lambda_{l-1}\|Z - U_{l-1}\|_F^2

    (for the last hidden layer with MSE loss, ``X_next`` is ``Y``). Projected
    accelerated gradient (the quadratic previous-layer term is in the prox, so the step uses the
    data term's Lipschitz constant only); strongly convex when :math:`\lambda_{l-1} > 0`.
    """

    name = "LNN-X"

    def __init__(self, X_next, U_prev, W, b=None, *, lam: float = 1.0, lam_prev: float = 1.0,
                 linear_map: LinearMap | None = None, dtype=None):
        lam = check_scalar(lam, "lam")
        lam_prev = check_scalar(lam_prev, "lam_prev")
        self.xp, self.dtype, d = common_arrays({"X_next": X_next, "U_prev": U_prev, "W": W, "b": b}, dtype)
        self._setup(linear_map, d["W"], d["b"], d["U_prev"])
        check_shape(d["X_next"], (self.m,) + tuple(self.map.out_shape), "X_next", self.name)
        self.X_next, self.U_prev, self.lam, self.lam_prev = d["X_next"], d["U_prev"], lam, lam_prev
        self.data = QuadTerm(self.X_next, lam)
        self.prev = PrevQuadNonneg(self.U_prev, lam_prev)

    #: ``solve_fast(method=...)``; ``"auto"`` picks the dual Newton method where it applies
    METHODS: ClassVar[tuple[str, ...]] = ("auto", "dual-newton", "fista")

    def _inner_steps(self, Z0, tol: float, max_iter: int, warn: bool, method: str = "auto"):
        """``method`` (``solve_fast(method=...)``): ``"dual-newton"``, Newton's method on the
        ``k``-dimensional dual of each row (:mod:`.lnn_dual`: a dense next layer of ``k`` units,
        ``lam, lam_prev > 0``; ``method="dual-newton"`` in the result, ``"dual-newton+fista"`` if
        it handed over to FISTA), ``"fista"``, or ``"auto"`` (the dual Newton method where it
        applies and ``k <= DUAL_MAX_K``, else FISTA). Both stop on a certified bound of FISTA's
        prox-gradient residual (the dual method on a bound from its exact duality gap)."""
        from .lnn_dual import dual_applies, lnn_dual_newton_steps
        if method not in self.METHODS:
            raise InputError(f"{self.name}: method must be one of {self.METHODS}, got {method!r}")
        if method == "dual-newton" and not dual_applies(self, max_k=None):
            raise InputError(f"{self.name}: method='dual-newton' needs a dense next layer (a 2-D W) "
                             "and lam, lam_prev > 0; use 'fista'")
        if method == "fista" or (method == "auto" and not dual_applies(self)):
            return (yield from super()._inner_steps(Z0, tol, max_iter, warn))
        return (yield from lnn_dual_newton_steps(self, Z0, tol=tol, max_iter=max_iter, warn=warn))


class LNNW(WStep):
    r"""W-step of the 2018 lifted network: ridge regression (closed form for dense maps).

    .. math::
        \min_{W, b}\; \lambda \|A(X; W) + b - X_{l+1}\|_F^2 + \rho(\|W\|^2 + \|b\|^2)
        + \gamma(\|W - W^0\|^2 + \|b - b^0\|^2)
    """

    name = "LNN-W"

    def __init__(self, X, X_next, *, lam: float = 1.0, rho: float = 0.0, gamma: float = 0.0, W0=None, b0=None,
                 W_shape=None, linear_map: LinearMap | None = None, dtype=None):
        lam = check_scalar(lam, "lam")
        self.xp, self.dtype, d = common_arrays({"X": X, "X_next": X_next, "W0": W0, "b0": b0}, dtype)
        self._setup(linear_map, d["X"], W_shape, rho, gamma, d["W0"], d["b0"], d["X_next"])
        check_shape(d["X_next"], (self.m,) + tuple(self.map.out_shape), "X_next", self.name)
        self.X_next, self.lam = d["X_next"], lam
        self.data = QuadTerm(self.X_next, lam)

    def _rebuild(self, dtype):
        return LNNW(self.X, self.X_next, lam=self.lam, rho=self.rho, gamma=self.gamma, W0=self.W0, b0=self.b0,
                    linear_map=self.map, dtype=dtype)

    def closed_form_available(self) -> bool:
        return isinstance(self.map, Dense)

    def closed_form(self):
        r""":math:`\lambda\|\cdot\|^2 = \tfrac{2\lambda}{2}\|\cdot\|^2`: ridge regression with scale :math:`2\lambda`."""
        return self._dense_ridge(self.X_next, scale=2 * self.lam)


class LNNSimplexCE:
    r"""Output step of the 2018 lifted network with cross-entropy (techreport, Appendix A).

    .. math::
        \min_{Z:\; Z \ge 0,\; Z\mathbf 1 = \mathbf 1}\; -\mathrm{Tr}\, Y^\top \log Z + \lambda \|Z - X^0\|_F^2

    with ``X0 = A(X_L; W_L) + b_L`` fixed; separable over samples, each solved by
    bisection on the multiplier of :math:`\mathbf 1^\top z = 1`
    (:func:`simplex_ce_prox`).
    """

    name = "LNN-simplex-CE"

    def __init__(self, Y, X0, *, lam: float = 1.0, dtype=None):
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        self.xp, self.dtype, d = common_arrays({"Y": Y, "X0": X0}, dtype)
        self.Y, self.X0 = d["Y"], d["X0"]
        if self.Y.ndim != 2:
            raise InputError(f"{self.name}: Y must be 2-D (m, classes), got shape {tuple(self.Y.shape)}")
        check_shape(self.X0, self.Y.shape, "X0", self.name)
        if bool(self.xp.any(self.Y < 0)):
            raise InputError(f"{self.name}: Y must be non-negative")
        self.m = self.Y.shape[0]

    def start(self):
        """A feasible point: every row uniform on the simplex."""
        return self.xp.full(self.Y.shape, 1.0 / self.Y.shape[1], dtype=self.dtype)

    def objective(self, Z) -> float:
        """:math:`-\\sum Y \\log Z + \\lambda\\|Z - X^0\\|^2` (``inf`` for negative entries; ``0 log 0 = 0``)."""
        xp = self.xp
        Z = xp.asarray(Z, dtype=self.dtype)
        if bool(xp.any(Z < 0)):
            return math.inf
        _, xsp = get_namespace(Z)
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
        """Bisection on the dual variable, all samples at once (``x0`` is ignored: no warm start
        needed), ``method="bisection"``."""
        t0 = time.perf_counter()
        tol = solver_tol(tol, self.dtype)
        Z, n = simplex_ce_prox(self.Y, self.X0, self.lam, n_iter=200 if max_iter is None else int(max_iter))
        res = self.residual(Z)
        return result(Z, self.objective(Z), n, res <= max(tol, 1e-7), res, time.perf_counter() - t0, "bisection")

    def cvxpy_problem(self):
        """``(problem, Z)``: the declaration with ``Z >= 0``, rows summing to 1."""
        import cvxpy as cp
        Z = cp.Variable(tuple(self.Y.shape), name="Z")
        Y = np.asarray(to_numpy(self.Y), dtype=float)
        X0 = np.asarray(to_numpy(self.X0), dtype=float)
        support = Y > 0
        obj = -cp.sum(cp.multiply(Y[support], cp.log(Z[support]))) if support.any() else 0
        obj = obj + self.lam * cp.sum_squares(Z - X0)
        return cp.Problem(cp.Minimize(obj), [Z >= 0, cp.sum(Z, axis=1) == 1]), Z

    def solve_cvxpy(self, solver: str = "CLARABEL", **kwargs):
        """Solve the CVXPY declaration; returns ``(Z, result)``; SolverError unless optimal."""
        prob, Z = self.cvxpy_problem()
        res = solve(prob, solver, name=self.name, **kwargs)
        return Z.value, res


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
