"""The older lifted penalties the baselines need: Askari et al. (2018) and Taylor et al. (2016)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import _as, _xp

__all__ = ["LiftedPenalty", "TaylorPenalty"]


class LiftedPenalty:
    r"""The 2018 lifted network's penalty :math:`P(v, u) = \|v - u\|_2^2` with :math:`v \ge 0`.

    Its minimiser over :math:`v \ge 0` is :math:`\mathrm{relu}(u)`; it is jointly
    convex in :math:`(v, u)` (a square of an affine map) on :math:`v \ge 0`.
    """

    name = "lifted"

    def value(self, v, u):
        xp, _ = _xp(v, u)
        v, u = _as(xp, v), _as(xp, u)
        return xp.where(v >= 0, (v - u) ** 2, xp.inf)

    def grad_v(self, v, u):
        return 2 * (v - u)

    def grad_u(self, v, u):
        return 2 * (u - v)

    def cvxpy_value(self, v, u):
        import cvxpy as cp
        return cp.sum_squares(v - u)

    def cvxpy_domain(self, v) -> list:
        return [v >= 0]


class TaylorPenalty:
    r"""Taylor et al. (2016) / Carreira-Perpinan and Wang (2014): :math:`P(v, u) = \|v - \mathrm{relu}(u)\|_2^2`.

    Convex in ``v`` for fixed ``u``; **not** convex in ``u`` for fixed ``v``
    (so not biconvex): :meth:`cvxpy_value` accepts a variable ``v`` only.
    """

    name = "taylor"

    def value(self, v, u):
        xp, _ = _xp(v, u)
        return (_as(xp, v) - xp.maximum(_as(xp, u), 0)) ** 2

    def grad_v(self, v, u):
        xp, _ = _xp(v, u)
        return 2 * (v - xp.maximum(u, 0))

    def grad_u(self, v, u):
        xp, _ = _xp(v, u)
        u = _as(xp, u)
        return -2 * (v - xp.maximum(u, 0)) * (u > 0)

    def cvxpy_value(self, v, u):
        import cvxpy as cp
        if isinstance(u, cp.Expression):
            raise InputError("TaylorPenalty is not convex in u: only v may be a CVXPY variable")
        return cp.sum_squares(v - np.maximum(np.asarray(u, float), 0))
