r"""The Lagrange lower bound of a one-hidden-layer network at fixed weights.

With :math:`U_0 = A_0(X; W_0) + b_0`:

.. math::
    G_W(\lambda) = \min_{X_1 \in \mathrm{dom} F}\; \mathcal L\big(Y, A_1(X_1; W_1) + b_1\big)
    + \lambda \sum B(X_1, U_0) \;\le\; p(W) = \mathcal L\big(Y, A_1(\phi(U_0); W_1) + b_1\big),

since ``B >= 0`` and ``B(phi(U_0), U_0) = 0`` (take :math:`X_1 = \phi(U_0)`). :math:`G_W` is
nondecreasing in :math:`\lambda` and tends to :math:`p(W)`. The inner problem is the
:class:`~.xsteps.XLast` X-step with ``coef = 1``; this is the one implementation (the trainer's
per-epoch certificate calls it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..activations import get_activation
from ..backend import check_scalar
from ..errors import InputError, UnknownNameError
from ..losses import get_loss
from .common import common_arrays, default_map
from .xsteps import XLast

__all__ = ["LowerBound", "lower_bound", "lower_bound_problem"]


@dataclass(frozen=True)
class LowerBound:
    """A certificate :math:`G \\le p`: ``G`` the bound, ``p`` the network loss at the weights,
    ``gap = p - G`` (>= 0 up to solver accuracy), ``lam``, ``method`` (``"fast"`` or ``"cvxpy"``),
    ``converged`` (the fast path's verdict; True for an optimal CVXPY solve) and ``X1`` (the
    minimiser)."""

    G: float
    p: float
    gap: float
    lam: float
    method: str
    converged: bool
    X1: Any = None


def lower_bound_problem(X, Y, W0, b0, W1, b1, activation="relu", *, lam: float = 1.0, loss="cross_entropy",
                        maps=None, dtype=None):
    """``(sub, p, act)``: the inner :class:`~.xsteps.XLast` problem of :func:`lower_bound`, the
    network loss ``p`` and the activation."""
    lam = check_scalar(lam, "lam")
    xp, dtype, d = common_arrays({"X": X, "Y": Y, "W0": W0, "b0": b0, "W1": W1, "b1": b1}, dtype)
    act = get_activation(activation)
    loss = get_loss(loss)
    if maps is None:
        maps = (default_map(d["W0"], "lower_bound W0"), default_map(d["W1"], "lower_bound W1"))
    if not isinstance(maps, (tuple, list)) or len(maps) != 2:
        raise InputError(f"lower_bound: maps must be a pair (map0, map1), got {maps!r}")
    map0, map1 = maps
    U0 = map0.apply(d["X"], d["W0"], d["b0"])
    sub = XLast(d["Y"], U0, d["W1"], d["b1"], act, loss=loss, lam_prev=lam, coef=1.0, linear_map=map1,
                dtype=dtype)
    p = loss.value(sub.Y, map1.apply(act.forward(U0), sub.W, sub.b))
    return sub, float(p), act


def lower_bound(X, Y, W0, b0, W1, b1, activation="relu", *, lam: float = 1.0, loss="cross_entropy",
                maps=None, x0=None, method: str = "fast", solver: str = "auto", tol: float | None = None,
                max_iter: int | None = None) -> LowerBound:
    r""":math:`G_W(\lambda) \le p(W)` of the module docstring, as a :class:`LowerBound`.

    Parameters
    ----------
    X, Y : inputs ``(m, *in_shape)`` and targets ``(m, k)``
    W0, b0, W1, b1 : the weights of the hidden and the output layer (``b`` may be None)
    activation, loss : the hidden activation :math:`\phi` and the loss (names or instances)
    lam : :math:`\lambda \ge 0`
    maps : ``(map0, map1)`` linear maps of the two layers (default: dense for 2-D weights)
    x0 : warm start of the fast path (default the feed-forward value :math:`\phi(U_0)`, where the
        objective is ``p``, so the value found never exceeds ``p``)
    method : ``"fast"`` (FISTA, :meth:`XLast.solve_fast`, no warning at its iteration cap: read
        ``converged``) or ``"cvxpy"`` (exact on small instances, ``solver``: ``"auto"`` tries
        Clarabel, ECOS and SCS in turn, :func:`cvx_fenchel.cvx.solve`)
    """
    if method not in ("fast", "cvxpy"):
        raise UnknownNameError(f"unknown lower-bound method {method!r}; choose 'fast' or 'cvxpy'")
    sub, p, _ = lower_bound_problem(X, Y, W0, b0, W1, b1, activation, lam=lam, loss=loss, maps=maps)
    if method == "fast":
        r = sub.solve_fast(x0, tol=tol, max_iter=max_iter, warn=False)
        G, X1, conv = r.objective, r.x, r.converged
    else:
        X1, res = sub.solve_cvxpy(solver)
        G, conv = res.objective, True
    G = float(G)
    return LowerBound(G=G, p=p, gap=p - G, lam=sub.lam_prev, method=method, converged=bool(conv), X1=X1)
