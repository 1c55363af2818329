r"""Projected Newton for the last-layer X-step with a softmax cross-entropy and a ReLU layer below.

With a dense last layer (``O = Z W + b``, ``W`` of shape ``(n, k)``), a ReLU previous layer and
the cross-entropy, each row ``z`` of :class:`~.xsteps.XLast` solves

.. math::
    \min_{z \ge 0}\; f(z) = c\,\big(\mathrm{lse}(W^\top z + b) - y^\top(W^\top z + b)\big)
    + \lambda\big(\tfrac12\|z\|^2 - u^\top z\big) + \text{const},

since :math:`B_\text{ReLU}(z, u) = \tfrac12 z^2 - zu + \tfrac12 u_+^2` on :math:`z \ge 0`. The
problem is :math:`\lambda`-strongly convex with gradient
:math:`g = c W (p - y) + \lambda (z - u)` (:math:`p` the softmax of the row's scores) and Hessian

.. math::
    H = \lambda I + c\,W S W^\top, \qquad S = \mathrm{diag}(p) - pp^\top,

a multiple of the identity plus a rank-``k`` term (``k`` = 10 classes against ``n`` = 84 to 300
hidden units). Bertsekas' projected Newton method (1982) takes, per row, the
:math:`\varepsilon`-active set :math:`A = \{j : z_j \le \varepsilon,\ g_j > 0\}` (with
:math:`\varepsilon = \min(10^{-3}, \|z - (z - sg)_+\|)`, ``s`` below), the Newton direction on
the free set :math:`F` and the scaled gradient :math:`-g_A/\lambda` on ``A``; by Woodbury on the free block,

.. math::
    H_{FF}^{-1} r = \tfrac1\lambda\big(r - W_F\,(\lambda I_k + c\,S G)^{-1} c\,S\,W_F^\top r\big),
    \qquad G = W_F^\top W_F = \textstyle\sum_{j \in F} w_j w_j^\top,

one ``k x k`` solve per row (``G`` for every row at once by one GEMM of the free masks with the
``n x k^2`` table of :math:`w_j w_j^\top`). The step :math:`z(\alpha) = (z + \alpha d)_+` is
backtracked per row (:math:`\alpha = 1, \tfrac12, \dots`) until Bertsekas' Armijo condition
:math:`f(z) - f(z(\alpha)) \ge \sigma\big(-\alpha\sum_F g_j d_j + \sum_A g_j (z_j - z_j(\alpha))\big)`
holds, two step sizes per iteration (a row that fails both stays and resumes from the smaller
one in the next iteration), so the search reads nothing on the host; value changes are computed
from differences (``lse`` in float64, the quadratic as :math:`\Delta^\top(z - u + \Delta/2)`),
so the test stays meaningful in float32 near the optimum.

Stopping: the **same certified residual as FISTA's** (:func:`~cvx_fenchel.solvers.prox_grad_residual`
of the X-step's prox-gradient map, step :math:`1/L`: for the ReLU term it is
:math:`\|\min(z, s g)\|` with :math:`s = (1/L)/(1 + \lambda/L)`, one pass), read once per
iteration (one host synchronisation) together with the numbers of rows that moved and that are still searching;
``converged`` means that residual reached ``tol``. An iteration in which no row moved and none
is still searching (line searches lost in rounding) hands over to FISTA from the current point
for the iterations left. The rows are independent: the only sums read are over all rows, so a
data-parallel caller (:func:`~cvx_fenchel.solvers.drive` with sums over row blocks) takes the
same decisions on every block.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..backend import get_namespace
from ..errors import ConvergenceWarning
from ..losses import logsumexp
from ..solvers import _sq, fista_steps

__all__ = ["newton_applies", "ce_relu_newton_steps", "direction", "prox_grad_step_relu"]

#: Armijo constant, the step sizes tried per iteration and per row (each half the one before),
#: and the smallest step size a row keeps searching at.
SIGMA, TRIALS, ALPHA_FLOOR = 1e-4, 2, 2.0 ** -30
#: Upper bound of the epsilon of the epsilon-active set.
EPS_ACTIVE = 1e-3


def newton_applies(prob) -> bool:
    """Whether an :class:`~.xsteps.XLast` has the structure the projected Newton method uses:
    cross-entropy loss, ReLU previous layer with ``lam_prev > 0``, a dense map (``Z W + b``)."""
    from ..maps.dense import Dense
    return (prob.loss == "cross_entropy" and prob.activation_prev.name == "relu"
            and prob.lam_prev > 0 and prob.coef >= 0 and isinstance(prob.map, Dense)
            and prob.W is not None and getattr(prob.W, "ndim", 0) == 2)


def _rowdot(A, B, xp):
    """Per-row inner products ``sum_j A_ij B_ij`` in one pass, no temporary."""
    return xp.einsum("ij,ij->i", A, B)


def ce_relu_newton_steps(prob, Z0, *, tol: float, max_iter: int, warn: bool):
    """The projected Newton solve of ``prob`` (an :class:`~.xsteps.XLast` for which
    :func:`newton_applies`) from ``Z0`` (feasible), as a generator of the sums it reads (see
    :func:`~cvx_fenchel.solvers.drive`). Returns ``(Z, n_iter, converged, residual, method)``
    with ``method`` ``"newton"`` or ``"newton+fista"`` (handed over to FISTA)."""
    xp, _ = get_namespace(Z0)
    W, Y, U = prob.W, prob.Y, prob.U_prev
    c, lam = float(prob.coef), float(prob.lam_prev)
    n, k = W.shape
    L = prob.lipschitz
    f64 = xp.float64
    # w_j w_j^T for every input unit j, flattened: G of every row = free mask @ this table
    pairs = (W[:, :, None] * W[:, None, :]).reshape(n, k * k)
    Z, O = Z0, prob._U(Z0)  # the scores Z W + b; the line searches update them
    alpha0 = xp.ones(Z0.shape[0], dtype=f64)
    UU = _rowdot(U, U, xp).astype(f64)  # for the rounding level of the line searches
    for it in range(1, max_iter + 1):
        lse = logsumexp(O.astype(f64), axis=1)
        P = xp.exp(O.astype(f64) - lse[:, None]).astype(Z.dtype)
        g_data = (c * (P - Y)) @ W.T
        ZU = Z - U
        g = g_data + lam * ZU
        R = prox_grad_step_relu(Z, g, L, lam, xp)
        if it > 1:  # the certified residual (FISTA's), read with the last line search's counts
            d2, z2, moved, searching = yield (_sq((R,), xp), _sq((Z,), xp), n_moved, n_searching)
            residual = math.sqrt(max(d2, 0.0)) / max(1.0, math.sqrt(max(z2, 0.0)))
            if residual <= tol:
                return Z, it - 1, True, residual, "newton"
            if moved == 0 and searching == 0:  # no row moved or can (rounding): FISTA goes on
                return (yield from _fista_rest(prob, Z, it - 1, max_iter, tol, warn))
        # epsilon-active set per row: eps = min(||Z - (Z - s g)_+||, 1e-3) (Bertsekas, scaling s)
        eps = xp.minimum(xp.sqrt(_rowdot(R, R, xp)), EPS_ACTIVE)[:, None]
        Fm = (~((Z <= eps) & (g > 0))).astype(Z.dtype)
        gF = g * Fm
        d = direction(g, gF, Fm, P, W, pairs, c, lam, xp)
        Z, O, n_moved, n_searching, alpha0 = _line_search(Z, d, g - gF, gF, ZU, UU, O, lse, W, Y, c, lam,
                                                          alpha0, xp)
    R = prox_grad_step_relu(Z, prob.grad(Z), L, lam, xp)
    d2, z2, *_ = yield (_sq((R,), xp), _sq((Z,), xp), n_moved, n_searching)
    residual = math.sqrt(max(d2, 0.0)) / max(1.0, math.sqrt(max(z2, 0.0)))
    if residual > tol and warn:
        warnings.warn(f"{prob.name}: projected Newton stopped at the iteration cap ({max_iter}) "
                      f"with residual {residual:.3g} > tol {tol:.3g}", ConvergenceWarning, stacklevel=5)
    return Z, max_iter, residual <= tol, residual, "newton"


def prox_grad_step_relu(Z, g, L: float, lam: float, xp):
    r""":math:`Z - T(Z)` for FISTA's prox-gradient step :math:`T` of this X-step (step ``1/L`` on
    the loss, prox of :math:`\lambda(\tfrac12 z^2 - uz)` on :math:`z \ge 0`), from the full
    gradient ``g``: :math:`T(Z) = ((1 + \lambda/L) Z - g/L)_+ / (1 + \lambda/L) = (Z - s g)_+`
    with :math:`s = (1/L)/(1 + \lambda/L)`, so :math:`Z - T(Z) = \min(Z, s g)` on ``Z >= 0``
    (one pass instead of the prox's six)."""
    return xp.minimum(Z, ((1.0 / L) / (1.0 + lam / L)) * g)


def direction(g, gF, Fm, P, W, pairs, c: float, lam: float, xp):
    r"""The projected Newton direction of every row: :math:`d_F = -H_{FF}^{-1} g_F` on the free
    set (``Fm`` = 1) by Woodbury (module docstring), :math:`d_A = -g_A/\lambda` on the active one.
    ``gF = g * Fm``; ``P``: the rows' softmax; ``pairs``: the ``n x k^2`` table of
    :math:`w_j w_j^\top`."""
    k = W.shape[1]
    G = (Fm @ pairs).reshape(-1, k, k)  # W_F^T W_F of every row
    SG = P[:, :, None] * (G - xp.einsum("mi,mij->mj", P, G)[:, None, :])
    v = gF @ W
    Sv = P * (v - xp.sum(P * v, axis=1, keepdims=True))
    t = xp.linalg.solve(lam * xp.eye(k, dtype=W.dtype) + c * SG, (c * Sv)[:, :, None])[:, :, 0]
    return (Fm * (t @ W.T) - g) / lam


def _line_search(Z, d, gA, gF, ZU, UU, O, lse, W, Y, c, lam, alpha0, xp):
    r"""Per-row backtracking along the projection arc ``(Z + alpha d)_+``, at most :data:`TRIALS`
    step sizes per call from the row's ``alpha0`` (1, or where the row's last search failed, its
    last step size halved), with **no host read**. Returns ``(new Z, its scores Z W + b, rows
    moved, rows still searching (both 0-d arrays), alpha0 for the next call)``. ``gF``, ``gA``:
    ``g`` on the free and on the active set (0 elsewhere), ``ZU = Z - U``, ``UU``: the rows'
    squared norms of ``u``.

    The value change is
    :math:`c(\mathrm{lse}(O + DW) - \mathrm{lse}(O) - y^\top DW) + \lambda D^\top(Z - U + D/2)`
    with ``D = Z(alpha) - Z``; Armijo asks it to be at most
    :math:`-\sigma(-\alpha g_F^\top d + g_A^\top(Z - Z(\alpha)))` where
    :math:`g_A^\top(Z - Z(\alpha)) = -g_A^\top D`. Where that predicted decrease is
    below the rounding level of the row's value (float64 sums of float ``eps``-rounded terms), the
    step is taken unless it raises the value beyond that level. Rows whose step leaves them in
    place need no search; a row that fails every trial stays where it is and resumes from the
    smaller step next time (its direction is recomputed at the same point, so it is the same).
    On NumPy the second trial runs on the rows still searching only; on a device every row is
    evaluated (masks): the same decisions either way."""
    f64 = xp.float64
    m = Z.shape[0]
    host = xp is np
    gd_free = _rowdot(gF, d, xp).astype(f64)  # sum over F of g_j d_j (< 0)
    ydot0 = _rowdot(Y, O, xp).astype(f64)
    # |z.z| + |z.(z - u)| <= 2.5 z.z + 0.5 u.u bounds the size of the quadratic's terms
    quad = 2.5 * _rowdot(Z, Z, xp).astype(f64) + 0.5 * UU
    noise = (16 * float(xp.finfo(Z.dtype).eps)) * (c * (xp.abs(lse) + xp.abs(ydot0)) + lam * quad)
    moved = xp.zeros(m, dtype=bool)
    out, O_out = Z, O
    rows = None  # host: the rows still searching (None: all)
    pending = None
    for trial in range(TRIALS):
        if rows is None:
            z, dd, o, ga, zu, l0, gdf, yy, nz, a = Z, d, O, gA, ZU, lse, gd_free, Y, noise, alpha0
        else:
            if rows.size == 0:
                break
            z, dd, o, ga, zu = Z[rows], d[rows], O[rows], gA[rows], ZU[rows]
            l0, gdf, yy, nz, a = lse[rows], gd_free[rows], Y[rows], noise[rows], alpha0[rows]
        a = a * 0.5 ** trial
        Za = xp.maximum(z + a[:, None].astype(Z.dtype) * dd, 0)
        D = Za - z
        DD = _rowdot(D, D, xp)
        if trial == 0:  # rows the step leaves in place: nothing to search
            pending = DD > 0
        DW = D @ W
        dce = logsumexp((o + DW).astype(f64), axis=1) - l0 - _rowdot(yy, DW, xp).astype(f64)
        dquad = (_rowdot(D, zu, xp) + 0.5 * DD).astype(f64)
        change = c * dce + lam * dquad  # f(z(alpha)) - f(z)
        want = SIGMA * (-a * gdf - _rowdot(ga, D, xp).astype(f64))
        ok = (change <= -want) | ((want <= nz) & (change <= nz))
        if host:
            if trial == 0:
                ok &= pending
                out = xp.where(ok[:, None], Za, Z)
                O_out = xp.where(ok[:, None], o + DW, O)
                moved |= ok
                rows = np.flatnonzero(pending & ~ok)
                continue
            idx = rows[ok]
            out[idx] = Za[ok]
            O_out[idx] = o[ok] + DW[ok]
            moved[idx] = True
            rows = rows[~ok]
        else:
            ok = ok & pending & ~moved
            out = xp.where(ok[:, None], Za, out)
            O_out = xp.where(ok[:, None], o + DW, O_out)
            moved = moved | ok
    searching = pending & ~moved
    # the next call: 1 where the row moved or had nothing to search, else its last step halved
    alpha_next = xp.where(searching, alpha0 * 0.5 ** TRIALS, 1.0)
    searching = searching & (alpha_next >= ALPHA_FLOOR)
    return out, O_out, xp.sum(moved.astype(f64)), xp.sum(searching.astype(f64)), alpha_next


def _fista_rest(prob, Z, used: int, max_iter: int, tol: float, warn: bool, method: str = "newton"):
    """FISTA from ``Z`` for the iterations a Newton method left; the result names ``method+fista``."""
    x, n, conv, res = yield from fista_steps(prob._grad, prob._prox, (Z,), prob.lipschitz, tol=tol,
                                             max_iter=max(max_iter - used, 1), name=prob.name,
                                             warn=warn)
    return x[0], used + n, conv, res, f"{method}+fista"
