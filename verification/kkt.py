r"""KKT residuals of a subproblem's solution, fast or CVXPY: does the point satisfy the optimality
conditions, not only agree with another solver?

In the spirit of CVXPY's own solver tests (``cvxpy.tests.solver_test_helpers``: primal feasibility,
dual domains, complementarity, stationarity of the Lagrangian), but without the solver's duals:
every quantity is computed here in float64 from the subproblem's own array code (its data term's
gradient, its operator and adjoint, its previous-layer term's projection, proximal map and
derivative), at the returned point. One function per subproblem family (:data:`FAMILIES`;
:func:`register_kkt` adds one), each returning a :class:`KKT`.

Scaling: every component except primal feasibility is in **objective units, relative to**
:math:`\max(1, |f(x)|)`, the normalisation of the suite's objective gap, so a KKT residual and a
gap can be held to the same tolerance tier. Dividing the objective by a constant leaves them
unchanged (for :math:`|f| \ge 1`), and so does rescaling the features of a W-step (the metric
follows them).

====================  ===============================================================================
family                components
====================  ===============================================================================
W-steps               ``stationarity`` :math:`\tfrac12 g^\top P^+ g / \max(1,|f|)` with ``g`` the
(``WStep``)           gradient and :math:`P = L_\text{data}J^\top J + 2(\rho+\gamma)I`, ``J = [K S]``
                      the map's explicit weight and bias matrices (``weight_matrix(X)``,
                      ``bias_matrix(m)``): ``P`` majorises the Hessian, so the step :math:`-P^+g`
                      lowers ``f`` by at least this: a certified **lower bound** on the relative
                      suboptimality (exact for the quadratic LNN-W); unconstrained, so primal
                      feasibility 0 and no complementarity.
X-steps               ``stationarity`` :math:`\tfrac L2\|Z - T(Z)\|^2/\max(1,|f|)`,
(``XStep``)           :math:`T(Z) = \mathrm{prox}_{\mathrm{prev}/L}(Z - \nabla\mathrm{data}/L)`: one
                      proximal-gradient step lowers the objective by at least this (Beck and Teboulle
                      2009, Lemma 2.3), again a certified lower bound; it covers stationarity on free
                      coordinates and the sign of the multipliers at active bounds.
                      ``primal_feasibility`` the largest violation of the domain
                      :math:`[\ell, u]` of the previous activation, relative to
                      :math:`\max(1, \|Z\|_\infty)` (the other components are evaluated at the
                      point projected on the domain). ``complementarity`` (domains with a bound
                      that is a constraint, i.e. where the previous term's slope is finite: ReLU,
                      hard tanh, the 2018 model's ``Z >= 0``)
                      :math:`\sum_{i \in A} \mu_i\,|Z_i - \text{bound}_i|` over the active set
                      ``A`` (the entries the step ``T`` puts on such a bound), with the multipliers
                      read off the gradient ``G`` of the whole objective,
                      :math:`\mu = \max(G, 0)` at a lower, :math:`\max(-G, 0)` at an upper bound.
                      (Gradient errors of the entries off the bound are stationarity; summing
                      :math:`\mu \cdot` slack over every entry would be the Frank-Wolfe gap, which is
                      linear in those errors and flags interior-point solutions accurate to 1e-9
                      in ``f``.) Barrier-like potentials
                      (sigmoid, tanh, softplus: infinite slope at the bound) keep the solution
                      inside: no complementarity (their ``G`` is huge for entries that are
                      accurate in absolute terms near the bound, which says nothing about ``f``).
LNN-simplex-CE        ``stationarity``: the Lagrangian duality gap :math:`f(Z) - \sum_i d_i(\nu_i)`,
                      :math:`d_i` the dual function of row ``i`` (closed form per entry) and
                      :math:`\nu_i` (the multiplier of :math:`\mathbf 1^\top z = 1`) maximising it
                      (bisection here, independent of the fast path's): a certified **upper bound**
                      on the suboptimality of the point (projected on the simplex).
                      ``primal_feasibility`` :math:`\max(\max(-Z), \max_i|Z_i\mathbf 1 - 1|)`;
                      ``complementarity`` :math:`\sum |(g + \nu) Z|` (the multipliers of
                      :math:`Z \ge 0` times ``Z``).
====================  ===============================================================================

``kkt`` is the largest component. A fast result that claims convergence with ``kkt`` above its
tier (:data:`KKT_TOL`) is *solved but wrong*; so is a CVXPY result with status ``optimal`` whose
``kkt`` exceeds that solver's gap tier (see :mod:`verification.suite` for the policy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cvx_fenchel.backend import to_numpy
from cvx_fenchel.subproblems import LNNSimplexCE, WStep, XStep

__all__ = ["FAMILIES", "KKT", "KKT_TOL", "kkt_residuals", "register_kkt"]

#: Tier of a fast result's KKT residual, by dtype (float64: the suite's residual and gap tolerance).
KKT_TOL = {"float64": 1e-6, "float32": 1e-3}


@dataclass(frozen=True)
class KKT:
    """KKT residuals at one point (module docstring): ``family``, ``stationarity``,
    ``primal_feasibility``, ``complementarity`` (None where the family has no inequality
    constraints), ``kkt`` (the largest), ``objective`` (float64, at the point projected on the
    domain) and ``bound`` (``"lower"``: stationarity bounds the suboptimality from below;
    ``"upper"``: from above)."""

    family: str
    stationarity: float
    primal_feasibility: float
    complementarity: float | None
    objective: float
    bound: str

    @property
    def kkt(self) -> float:
        vals = [self.stationarity, self.primal_feasibility, self.complementarity or 0.0]
        return math.inf if any(not math.isfinite(v) for v in vals) else max(vals)

    def as_dict(self) -> dict:
        return {**asdict(self), "kkt": self.kkt}


def _f64(a, xp) -> Any:
    return xp.asarray(np.asarray(to_numpy(a), dtype=np.float64))


def _dense(M) -> np.ndarray:
    """A float64 array of a (possibly sparse) matrix."""
    return np.asarray(M.toarray() if hasattr(M, "toarray") else M, dtype=float)


def _norm2(a, xp) -> float:
    return float(xp.sum(a * a))


# ---------------------------------------------------------------------------------------------
# W-steps
# ---------------------------------------------------------------------------------------------
def w_step_kkt(problem: WStep, x) -> KKT:
    """KKT residuals of a W-step at ``x = (W, b)`` (any shapes with the same C-order entries)."""
    p = problem.astype(np.float64)
    mp, xp = p.map, p.xp
    W = _f64(x[0], xp).reshape(mp.weight_shape)
    b = _f64(x[1], xp).reshape(mp.bias_shape)
    f = float(p.objective((W, b)))
    gW, gb = p.grad((W, b))
    g = np.concatenate([np.asarray(to_numpy(gW), dtype=float).ravel(), np.asarray(to_numpy(gb), dtype=float).ravel()])
    X = np.asarray(to_numpy(p.X), dtype=float)
    J = np.concatenate([_dense(mp.weight_matrix(X)), _dense(mp.bias_matrix(X.shape[0]))], axis=1)
    lam, V = np.linalg.eigh(p.data.lipschitz * (J.T @ J))
    lam = lam + p.ridge.curvature
    keep = lam > 1e-12 * max(float(lam[-1]), 1e-300)
    z = V.T @ g
    dec = 0.5 * float(np.sum(z[keep] ** 2 / lam[keep]))
    return KKT("W-step", dec / max(1.0, abs(f)), 0.0, None, f, "lower")


# ---------------------------------------------------------------------------------------------
# X-steps
# ---------------------------------------------------------------------------------------------
def _hard(p, bound: float, Z) -> bool:
    """Whether the finite ``bound`` of the domain is a constraint with a multiplier: the previous
    term's derivative is finite there (ReLU's and hard tanh's quadratic potentials, the 2018 model,
    a zero weight). A barrier-like potential (sigmoid, tanh, softplus: infinite slope at the
    bound) keeps the solution inside, and has no complementarity to check."""
    if math.isinf(bound):
        return False
    with np.errstate(all="ignore"):
        g = p.prev.grad(p.xp.full(Z.shape, bound, dtype=Z.dtype))
    return bool(p.xp.all(p.xp.isfinite(g)))


def x_step_kkt(problem: XStep, x) -> KKT:
    """KKT residuals of an X-step (and the lower bound's inner problem) at ``x = Z``."""
    p = problem
    xp = p.xp
    Z = _f64(x, xp).reshape((p.m,) + tuple(p.map.in_shape))
    lo, hi = p.bounds()
    viol = 0.0
    if not math.isinf(lo):
        viol = max(viol, float(xp.max(lo - Z)))
    if not math.isinf(hi):
        viol = max(viol, float(xp.max(Z - hi)))
    feas = max(viol, 0.0) / max(1.0, float(xp.max(xp.abs(Z))))
    Z = p.prev.project(Z)
    U = p.op.apply(Z)
    f = float(p.data.value(U) + p.prev.value(Z))
    gs = p.op.adjoint(p.data.grad(U))
    L = float(p.lipschitz)
    T = p.prev.prox(Z - gs / L, 1.0 / L)
    stat = 0.5 * L * _norm2(Z - T, xp) / max(1.0, abs(f))
    hard_lo, hard_hi = _hard(p, lo, Z), _hard(p, hi, Z)
    comp = None
    if hard_lo or hard_hi:
        with np.errstate(all="ignore"):
            G = gs + p.prev.grad(Z)
            c = 0.0
            if hard_lo:  # the entries the step puts on the bound: multiplier max(G, 0), slack Z - lo
                c += float(xp.sum(xp.where(T <= lo, xp.maximum(G, 0) * (Z - lo), 0.0)))
            if hard_hi:
                c += float(xp.sum(xp.where(T >= hi, xp.maximum(-G, 0) * (hi - Z), 0.0)))
        comp = c / max(1.0, abs(f))
    return KKT("X-step", stat, feas, comp, f, "lower")


# ---------------------------------------------------------------------------------------------
# the 2018 model's simplex step
# ---------------------------------------------------------------------------------------------
def _simplex_dual(Y, X0, lam: float, nu):
    r"""Per-row dual function :math:`d_i(\nu_i) = \min_{z \ge 0} \sum_k -y_k\log z_k + \lambda(z_k - x^0_k)^2
    + \nu_i(\sum_k z_k - 1)`, entrywise in closed form (a quadratic's positive root for ``y > 0``)."""
    a = nu - 2 * lam * X0
    root = (-a + np.sqrt(a * a + 8 * lam * Y)) / (4 * lam)
    z = np.where(Y > 0, root, np.maximum(X0 - nu / (2 * lam), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ylog = np.where(Y > 0, Y * np.log(np.where(Y > 0, z, 1.0)), 0.0)
    return np.sum(-ylog + lam * (z - X0) ** 2 + nu * z, axis=1) - nu[:, 0]


def _best_multiplier(Y, X0, lam: float, n_iter: int = 200):
    r"""Per row the :math:`\nu` maximising the concave dual :func:`_simplex_dual`: the root of
    :math:`\sum_k z_k(\nu) = 1` (``z`` decreasing in :math:`\nu`), by bisection on a bracket grown
    from :math:`[-1, 1]`. Any :math:`\nu` gives a valid bound; this one makes it the duality gap."""
    def excess(nu):
        a = nu - 2 * lam * X0
        z = np.where(Y > 0, (-a + np.sqrt(a * a + 8 * lam * Y)) / (4 * lam), np.maximum(X0 - nu / (2 * lam), 0.0))
        return z.sum(axis=1, keepdims=True) - 1.0
    m = Y.shape[0]
    lo, hi = -np.ones((m, 1)), np.ones((m, 1))
    for _ in range(200):  # excess(lo) > 0 > excess(hi)
        bad_lo, bad_hi = excess(lo) <= 0, excess(hi) >= 0
        if not (bad_lo.any() or bad_hi.any()):
            break
        lo, hi = np.where(bad_lo, 2 * lo, lo), np.where(bad_hi, 2 * hi, hi)
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        up = excess(mid) > 0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    return 0.5 * (lo + hi)


def simplex_kkt(problem: LNNSimplexCE, x) -> KKT:
    """KKT residuals of LNN-simplex-CE at ``x = Z`` (rows on the simplex)."""
    p = problem
    Y = np.asarray(to_numpy(p.Y), dtype=float)
    X0 = np.asarray(to_numpy(p.X0), dtype=float)
    Z = np.asarray(to_numpy(x), dtype=float).reshape(Y.shape)
    feas = max(float(np.max(-Z)), float(np.max(np.abs(Z.sum(axis=1) - 1))), 0.0) + 0.0  # no -0.0
    Zc = np.maximum(Z, 0.0)
    s = Zc.sum(axis=1, keepdims=True)
    Zc = np.where(s > 0, Zc / np.where(s > 0, s, 1.0), 1.0 / Y.shape[1])
    lam = float(p.lam)
    pos = Zc > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f = float(-np.sum(np.where(Y > 0, Y * np.log(Zc), 0.0)) + lam * np.sum((Zc - X0) ** 2))
    g = np.where(pos, -Y / np.where(pos, Zc, 1.0), 0.0) + 2 * lam * (Zc - X0)  # f finite: Y = 0 off the support
    nu = _best_multiplier(Y, X0, lam)
    gap = f - float(np.sum(_simplex_dual(Y, X0, lam, nu))) if math.isfinite(f) else math.inf
    comp = float(np.sum(np.abs(np.where(pos, (g + nu) * Zc, 0.0))))
    den = max(1.0, abs(f)) if math.isfinite(f) else 1.0
    return KKT("simplex", max(gap, 0.0) / den, feas, comp / den, f, "upper")


#: ``(class, function)`` pairs, the first whose class the problem is an instance of applies.
FAMILIES: list[tuple[type, Callable[[Any, Any], KKT]]] = [
    (LNNSimplexCE, simplex_kkt),
    (WStep, w_step_kkt),
    (XStep, x_step_kkt),
]


def register_kkt(cls: type, fn: Callable[[Any, Any], KKT]) -> None:
    """Register the KKT function of a new subproblem family (checked before the built-in ones)."""
    FAMILIES.insert(0, (cls, fn))


def kkt_residuals(problem, x) -> KKT:
    """The :class:`KKT` residuals of ``problem`` at ``x`` (module docstring); ``TypeError`` for a
    problem of no registered family."""
    for cls, fn in FAMILIES:
        if isinstance(problem, cls):
            return fn(problem, x)
    raise TypeError(f"no KKT residual function for {type(problem).__name__}; register one with register_kkt")
