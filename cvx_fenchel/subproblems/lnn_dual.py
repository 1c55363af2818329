r"""Dual Newton for the 2018 lifted network's X-step when the next layer is narrow.

Each row ``z`` (``n`` units) of :class:`~.lnn.LNNX` with a dense next layer ``W`` (``n x k``)
solves, with ``t`` the row of ``X_next - b`` and ``u`` the row of ``U_prev``,

.. math::
    P^\star = \min_{z \ge 0}\; P(z) = \lambda\|W^\top z - t\|^2 + \lambda_p\|z - u\|^2 .

Splitting ``r = W^T z`` with a multiplier :math:`\nu \in \mathbb R^k` gives the dual function
(both inner minima in closed form, :math:`z(\nu) = \max(u - W\nu/(2\lambda_p), 0)`)

.. math::
    g(\nu) = \lambda_p\big(\|u\|^2 - \|z(\nu)\|^2\big) - \nu^\top t - \frac{\|\nu\|^2}{4\lambda},
    \qquad \nabla g(\nu) = W^\top z(\nu) - t - \frac{\nu}{2\lambda},

concave, :math:`1/(2\lambda)`-strongly, piecewise quadratic, of dimension ``k`` (10 classes
against 50 to 300 hidden units in Table 1). Its generalised negative Hessian on the support
:math:`S = \{j : z_j(\nu) > 0\}` is

.. math::
    H = \frac{1}{2\lambda_p} W_S^\top W_S + \frac{1}{2\lambda} I_k ,

one ``k x k`` system per row (``W_S^T W_S`` for every row at once by one GEMM of the support
masks with the ``n x k(k+1)/2`` table of the products :math:`w_{ja} w_{jb}`, ``a <= b``).
Newton's ascent direction :math:`d = H^{-1}\nabla g` is backtracked per row
(:math:`\alpha = 1, \tfrac12, \dots`, Armijo :math:`g(\nu + \alpha d) \ge g(\nu) + \sigma\alpha
\nabla g^\top d`, two step sizes per iteration; a row that fails both resumes from the smaller
one halved), so the search reads nothing on the host.

**Certificate.** For ``z = z(nu)`` the duality gap is exactly

.. math::
    P(z) - g(\nu) = \lambda \|\nabla g(\nu)\|^2

(expand :math:`z^\top(z - u) = -z^\top W\nu / (2\lambda_p)`), computed from the ``k`` entries
of the gradient, not as a difference of large numbers. ``P`` is :math:`2\lambda_p`-strongly
convex, so :math:`\|z - z^\star\|^2 \le \lambda\|\nabla g\|^2/\lambda_p` (summed over rows), and
FISTA's prox-gradient map ``T`` (:func:`~cvx_fenchel.solvers.prox_grad_residual`) is
non-expansive with fixed point ``z*``, so FISTA's residual is bounded by

.. math::
    \frac{\|Z - T(Z)\|}{\max(1, \|Z\|)} \le \frac{2\sqrt{\lambda \sum_i \|\nabla g(\nu_i)\|^2/\lambda_p}}{\max(1, \|Z\|)} .

The solve stops when this bound reaches ``tol`` (``converged`` is that promise; the bound is the
``residual`` reported). The iteration runs in float64 whatever the working dtype (in float32 the
gradient's rounding alone would keep the bound near 1e-5); the iterate returned is cast to the
working dtype, and the bound adds ``2 ||Z - Z_cast||`` (``T`` non-expansive), so it holds for the
returned array. An iteration in which no row moved, or ``STALL`` iterations without a 10% fall
of the bound (rounding), hand over to FISTA from the current point for the iterations left. The only sums read are over all rows (one
host read per iteration), so a data-parallel caller (:func:`~cvx_fenchel.solvers.drive` with
sums over row blocks) takes the same decisions on every block.

Warm start: the multiplier of the start ``Z0``, :math:`\nu_0 = 2\lambda(Z_0 W - t)` (the
optimality condition of ``r``), so a start at the solution is certified in one pass.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..backend import get_namespace
from ..errors import ConvergenceWarning
from ..solvers import _vdot
from .newton import _fista_rest, _rowdot

__all__ = ["dual_applies", "lnn_dual_newton_steps", "DUAL_MAX_K"]

#: ``method="auto"`` takes the dual Newton method when the next layer has at most this many units.
DUAL_MAX_K = 32
#: Armijo constant, step sizes tried per iteration and row, smallest step size a row searches at.
SIGMA, TRIALS, ALPHA_FLOOR = 1e-4, 2, 2.0 ** -30
#: Iterations without a 10% fall of the bound after which the solve hands over to FISTA.
STALL = 10


def dual_applies(prob, max_k: int | None = DUAL_MAX_K) -> bool:
    """Whether an :class:`~.lnn.LNNX` has the structure of this module: a dense next layer
    (``Z W + b``, ``W`` 2-D, at most ``max_k`` output units unless ``max_k`` is None) and
    ``lam, lam_prev > 0``."""
    from ..maps.dense import Dense
    W = prob.W
    return (isinstance(prob.map, Dense) and W is not None and getattr(W, "ndim", 0) == 2
            and prob.lam > 0 and prob.lam_prev > 0 and (max_k is None or W.shape[1] <= max_k))


def lnn_dual_newton_steps(prob, Z0, *, tol: float, max_iter: int, warn: bool):
    """The dual Newton solve of ``prob`` (an :class:`~.lnn.LNNX` for which :func:`dual_applies`)
    from ``Z0`` (feasible), as a generator of the sums it reads (see
    :func:`~cvx_fenchel.solvers.drive`). Returns ``(Z, n_iter, converged, residual, method)``
    with ``method`` ``"dual-newton"`` or ``"dual-newton+fista"`` (handed over to FISTA)."""
    xp, _ = get_namespace(Z0)
    dt, f64 = Z0.dtype, xp.float64
    W, U = prob.W.astype(f64, copy=False), prob.U_prev.astype(f64, copy=False)  # float64 inside
    lam, lp = float(prob.lam), float(prob.lam_prev)
    m = Z0.shape[0]
    n, k = W.shape
    t = (prob.X_next if prob.b is None else prob.X_next - prob.b).astype(f64, copy=False)
    iu, ju = (xp.asarray(a) for a in np.triu_indices(k))
    pairs = W[:, iu] * W[:, ju]  # (n, k(k+1)/2): row j holds w_ja w_jb, a <= b
    eye = xp.eye(k, dtype=f64) / (2 * lam)
    nu = 2 * lam * (Z0.astype(f64) @ W - t)  # the multiplier of the start
    Z, g = _at(nu, W, U, t, lam, lp, xp)
    alpha = xp.ones(m, dtype=f64)
    n_moved, best, since = m, math.inf, 0
    for it in range(1, max_iter + 2):
        grad = Z @ W - t - nu / (2 * lam)
        Zw = Z.astype(dt, copy=False)  # the iterate in the working dtype: the bound covers its rounding
        cast2 = 0.0 if dt == f64 else _vdot(Z - Zw, Z - Zw, xp)
        gap2, z2, moved, cast2 = yield (lam * _vdot(grad, grad, xp), _vdot(Z, Z, xp), n_moved, cast2)
        bound = (2 * math.sqrt(max(gap2, 0.0) / lp) + 2 * math.sqrt(max(cast2, 0.0))) \
            / max(1.0, math.sqrt(max(z2, 0.0)))
        if bound <= tol:
            return Zw, it - 1, True, bound, "dual-newton"
        if it > max_iter:
            break
        best, since = (bound, 0) if bound < 0.9 * best else (best, since + 1)
        if it > 1 and (moved == 0 or since >= STALL):  # rounding: FISTA goes on from here
            return (yield from _fista_rest(prob, Zw, it - 1, max_iter, tol, warn, "dual-newton"))
        Ht = ((Z > 0).astype(f64) @ pairs) / (2 * lp)
        H = xp.zeros((m, k, k), dtype=f64)
        H[:, iu, ju] = Ht
        H[:, ju, iu] = Ht
        H += eye
        d = xp.linalg.solve(H, grad[:, :, None])[:, :, 0]
        slope = _rowdot(grad, d, xp)
        nu, Z, g, alpha, n_moved = _line_search(nu, Z, g, d, slope, alpha, W, U, t, lam, lp, xp)
    if warn:
        warnings.warn(f"{prob.name}: dual Newton stopped at the iteration cap ({max_iter}) with "
                      f"residual bound {bound:.3g} > tol {tol:.3g}", ConvergenceWarning, stacklevel=5)
    return Zw, max_iter, False, bound, "dual-newton"


def _at(nu, W, U, t, lam: float, lp: float, xp):
    """``z(nu)`` and the dual value per row, up to the constant ``lam_p ||u||^2`` (two passes
    over ``(m, n)`` besides the GEMM: the scaling is on the small factor)."""
    Z = nu @ (W.T / (-2 * lp))
    Z += U
    Z = xp.maximum(Z, 0, out=Z)
    g = -lp * _rowdot(Z, Z, xp) - _rowdot(nu, t, xp) - _rowdot(nu, nu, xp) / (4 * lam)
    return Z, g


def _line_search(nu, Z, g, d, slope, alpha, W, U, t, lam, lp, xp):
    """Per-row backtracking from each row's ``alpha``: ``TRIALS`` halvings, the first step size
    that passes Armijo's test is taken. Returns the new ``(nu, Z, g, alpha, rows moved)``:
    a row that moved starts its next search at 1, one that did not at its last trial halved."""
    a = alpha
    done = xp.zeros(nu.shape[0], dtype=bool)
    for _ in range(TRIALS):
        cand = nu + a[:, None] * d
        Zc, gc = _at(cand, W, U, t, lam, lp, xp)
        ok = ~done & (gc >= g + SIGMA * a * slope) & (slope > 0)
        nu = xp.where(ok[:, None], cand, nu)
        Z = xp.where(ok[:, None], Zc, Z)
        g = xp.where(ok, gc, g)
        done |= ok
        a = xp.where(done, a, a / 2)
    searching = ~done & (a >= ALPHA_FLOOR) & (slope > 0)
    alpha = xp.where(done, 1.0, xp.maximum(a, ALPHA_FLOOR)).astype(alpha.dtype)
    return nu, Z, g, alpha, xp.sum(done) + xp.sum(searching)

