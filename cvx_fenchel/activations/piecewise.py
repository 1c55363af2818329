"""Piecewise-linear activations: ReLU, leaky ReLU, hard tanh, identity (closed-form prox)."""

from __future__ import annotations


import numpy as np

from ..backend import block_dot, check_scalar
from .base import Activation, _as, _xp

__all__ = ["ReLU", "LeakyReLU", "HardTanh", "Identity"]


class ReLU(Activation):
    r"""ReLU :math:`\phi(u) = \max(u, 0)`.

    :math:`F(v) = v^2/2` on :math:`v \ge 0`, :math:`F^*(u) = \max(u,0)^2/2`,
    :math:`B(v,u) = \tfrac12 (v - u_+)^2 + v\,u_-` (with :math:`u_- = \max(-u, 0)`).
    The original code's penalty :math:`v^2 - 2uv + \max(u,0)^2` is :math:`2B`.
    """

    name = "relu"
    lower = 0.0

    def forward(self, u):
        xp, _ = _xp(u)
        return xp.maximum(_as(xp, u), 0)

    def derivative(self, u):
        xp, _ = _xp(u)
        u = _as(xp, u)
        return (u > 0).astype(u.dtype)

    def inverse(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        return xp.where(v < 0, xp.nan, v)

    def F(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        return xp.where(v >= 0, 0.5 * v * v, xp.inf)

    def Fstar(self, u):
        xp, _ = _xp(u)
        up = xp.maximum(_as(xp, u), 0)
        return 0.5 * up * up

    def divergence(self, v, u):
        xp, _ = _xp(v, u)
        v, u = _as(xp, v), _as(xp, u)
        up, um = xp.maximum(u, 0), xp.maximum(-u, 0)
        return xp.where(v >= 0, 0.5 * (v - up) ** 2 + v * um, xp.inf)

    def prox_F(self, x, t):
        xp, _ = _xp(x, t)
        return xp.maximum(_as(xp, x), 0) / (1 + t)

    def fstar_diff_blocks(self, u1, u0, k: int):
        r""":math:`\tfrac12(u_{1+}^2 - u_{0+}^2) = \tfrac12(u_{1+} - u_{0+})(u_{1+} + u_{0+})` summed per block."""
        xp, _ = _xp(u1, u0)
        p1, p0 = xp.maximum(u1, 0), xp.maximum(u0, 0)
        return 0.5 * block_dot(p1 - p0, p1 + p0, k)

    def cvxpy_F(self, v):
        import cvxpy as cp
        return 0.5 * cp.square(v)

    def cvxpy_Fstar(self, u):
        import cvxpy as cp
        return 0.5 * cp.square(cp.pos(u))

    def _cvxpy_divergence_in_v(self, v, u):
        import cvxpy as cp
        # B = (v - u_+)^2 / 2 + v u_-  (v >= 0 from cvxpy_domain)
        return 0.5 * cp.sum_squares(v - np.maximum(u, 0)) + cp.sum(cp.multiply(np.maximum(-u, 0), v))


class LeakyReLU(Activation):
    r"""Leaky ReLU :math:`\phi(u) = \max(u, a u)` with slope :math:`a \in (0, 1)`.

    :math:`F(v) = v^2/2` for :math:`v \ge 0` and :math:`v^2/(2a)` for :math:`v < 0`;
    :math:`F^*(u) = u_+^2/2 + a u_-^2/2`;
    :math:`B = \tfrac12 (v_+ - u_+)^2 + \tfrac1{2a}(v_- - a u_-)^2 + u_+ v_- + u_- v_+`.
    """

    name = "leaky_relu"
    example_params = {"slope": 0.1}

    def __init__(self, slope: float = 0.01):
        self.slope = check_scalar(slope, "leaky_relu slope", low=0.0, high=1.0,
                                  low_inclusive=False, high_inclusive=False)

    def params(self) -> dict:
        return {"slope": self.slope}

    def forward(self, u):
        xp, _ = _xp(u)
        u = _as(xp, u)
        return xp.where(u >= 0, u, self.slope * u)

    def derivative(self, u):
        xp, _ = _xp(u)
        u = _as(xp, u)
        return xp.where(u > 0, 1.0, self.slope).astype(u.dtype)

    def inverse(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        return xp.where(v >= 0, v, v / self.slope)

    def F(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        return xp.where(v >= 0, 0.5 * v * v, 0.5 * v * v / self.slope)

    def Fstar(self, u):
        xp, _ = _xp(u)
        u = _as(xp, u)
        return xp.where(u >= 0, 0.5 * u * u, 0.5 * self.slope * u * u)

    def divergence(self, v, u):
        xp, _ = _xp(v, u)
        v, u = _as(xp, v), _as(xp, u)
        a = self.slope
        vp, vm = xp.maximum(v, 0), xp.maximum(-v, 0)
        up, um = xp.maximum(u, 0), xp.maximum(-u, 0)
        return 0.5 * (vp - up) ** 2 + (vm - a * um) ** 2 / (2 * a) + up * vm + um * vp

    def prox_F(self, x, t):
        xp, _ = _xp(x, t)
        x = _as(xp, x)
        return xp.where(x >= 0, x / (1 + t), x * self.slope / (self.slope + t))

    def cvxpy_F(self, v):
        import cvxpy as cp
        return 0.5 * cp.square(cp.pos(v)) + cp.square(cp.neg(v)) / (2 * self.slope)

    def cvxpy_Fstar(self, u):
        import cvxpy as cp
        return 0.5 * cp.square(cp.pos(u)) + 0.5 * self.slope * cp.square(cp.neg(u))


class HardTanh(Activation):
    r"""Hard tanh :math:`\phi(u) = \mathrm{clip}(u, -1, 1)`.

    :math:`F(v) = v^2/2` on :math:`[-1, 1]`; :math:`F^*` is the Huber function
    (:math:`u^2/2` for :math:`|u| \le 1`, else :math:`|u| - 1/2`);
    :math:`B = \tfrac12 (v - \mathrm{clip}(u))^2 + (|u| - 1)_+ (1 - v\,\mathrm{sign}\,u)`.
    """

    name = "hardtanh"
    lower, upper = -1.0, 1.0

    def forward(self, u):
        xp, _ = _xp(u)
        return xp.clip(_as(xp, u), -1.0, 1.0)

    def derivative(self, u):
        xp, _ = _xp(u)
        u = _as(xp, u)
        return (xp.abs(u) < 1).astype(u.dtype)

    def inverse(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        return xp.where(xp.abs(v) > 1, xp.nan, v)

    def F(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        return xp.where(xp.abs(v) <= 1, 0.5 * v * v, xp.inf)

    def Fstar(self, u):
        xp, _ = _xp(u)
        u = _as(xp, u)
        a = xp.abs(u)
        return xp.where(a <= 1, 0.5 * u * u, a - 0.5)

    def divergence(self, v, u):
        xp, _ = _xp(v, u)
        v, u = _as(xp, v), _as(xp, u)
        c = xp.clip(u, -1.0, 1.0)
        out = 0.5 * (v - c) ** 2 + xp.maximum(xp.abs(u) - 1, 0) * (1 - v * xp.sign(u))
        return xp.where(xp.abs(v) <= 1, out, xp.inf)

    def prox_F(self, x, t):
        xp, _ = _xp(x, t)
        return xp.clip(_as(xp, x) / (1 + t), -1.0, 1.0)

    def cvxpy_F(self, v):
        import cvxpy as cp
        return 0.5 * cp.square(v)

    def cvxpy_Fstar(self, u):
        import cvxpy as cp
        return 0.5 * cp.huber(u, 1.0)

    def _cvxpy_divergence_in_v(self, v, u):
        import cvxpy as cp
        # B = (v - clip(u))^2 / 2 + (|u| - 1)_+ (1 - v sign u)  (|v| <= 1 from cvxpy_domain)
        excess = np.maximum(np.abs(u) - 1, 0)
        return (0.5 * cp.sum_squares(v - np.clip(u, -1, 1)) + float(np.sum(excess))
                - cp.sum(cp.multiply(excess * np.sign(u), v)))


class Identity(Activation):
    r"""Identity (linear layer): :math:`F(v) = v^2/2`, :math:`F^* = u^2/2`, :math:`B = (v - u)^2/2`."""

    name = "identity"

    def forward(self, u):
        xp, _ = _xp(u)
        return _as(xp, u) * 1

    def derivative(self, u):
        xp, _ = _xp(u)
        return xp.ones_like(_as(xp, u))

    def inverse(self, v):
        return self.forward(v)

    def F(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        return 0.5 * v * v

    Fstar = F

    def divergence(self, v, u):
        xp, _ = _xp(v, u)
        return 0.5 * (_as(xp, v) - _as(xp, u)) ** 2

    def prox_F(self, x, t):
        xp, _ = _xp(x, t)
        return _as(xp, x) / (1 + t)

    def cvxpy_F(self, v):
        import cvxpy as cp
        return 0.5 * cp.square(v)

    cvxpy_Fstar = cvxpy_F

    def _cvxpy_divergence_in_v(self, v, u):
        import cvxpy as cp
        return 0.5 * cp.sum_squares(v - u)
