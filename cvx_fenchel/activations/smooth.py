"""Smooth activations: sigmoid, tanh, softplus (``prox_F`` by safeguarded Newton)."""

from __future__ import annotations

import math

import numpy as np

from ..backend import to_numpy
from .base import Activation, NoCvxpyFormError, _as, _bernoulli_kl, _softplus, _xp

__all__ = ["Sigmoid", "Tanh", "Softplus"]


class Sigmoid(Activation):
    r"""Logistic sigmoid :math:`\phi(u) = 1/(1 + e^{-u})`.

    :math:`F(v) = v\log v + (1-v)\log(1-v)` on :math:`[0, 1]`,
    :math:`F^*(u) = \log(1 + e^u)`, and :math:`B(v, u)` is the Bernoulli KL
    divergence :math:`\mathrm{KL}(\mathrm{Bern}(v)\,\|\,\mathrm{Bern}(\phi(u)))`.
    """

    name = "sigmoid"
    lower, upper = 0.0, 1.0
    lipschitz = 0.25

    def forward(self, u):
        xp, _ = _xp(u)
        u = _as(xp, u)
        return 0.5 * (1 + xp.tanh(0.5 * u))

    def derivative(self, u):
        s = self.forward(u)
        return s * (1 - s)

    def inverse(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        return xp.log(v) - xp.log1p(-v)

    def F(self, v):
        xp, xsp = _xp(v)
        v = _as(xp, v)
        out = xsp.special.xlogy(v, v) + xsp.special.xlogy(1 - v, 1 - v)
        return xp.where((v < 0) | (v > 1), xp.inf, out)

    def Fstar(self, u):
        xp, _ = _xp(u)
        return _softplus(xp, _as(xp, u))

    def divergence(self, v, u):
        xp, xsp = _xp(v, u)
        return _bernoulli_kl(xp, xsp, _as(xp, v), _as(xp, u))

    def _prox_bracket(self, xp, x, t):
        # t s + sigma(s) = x with sigma in (0, 1)  =>  s in [(x - 1)/t, x/t]
        return (x - 1) / t, x / t

    def cvxpy_F(self, v):
        import cvxpy as cp
        return -cp.entr(v) - cp.entr(1 - v)

    def cvxpy_Fstar(self, u):
        import cvxpy as cp
        return cp.logistic(u)


class Tanh(Activation):
    r"""Hyperbolic tangent.

    :math:`F(v) = \tfrac12[(1+v)\log(1+v) + (1-v)\log(1-v)]` on :math:`[-1, 1]`,
    :math:`F^*(u) = \log\cosh u`. Since :math:`\tanh u = 2\sigma(2u) - 1`,
    :math:`B_{\tanh}(v, u) = B_{\sigma}((1+v)/2,\, 2u)`, a Bernoulli KL divergence.
    """

    name = "tanh"
    lower, upper = -1.0, 1.0

    def forward(self, u):
        xp, _ = _xp(u)
        return xp.tanh(_as(xp, u))

    def derivative(self, u):
        t = self.forward(u)
        return 1 - t * t

    def inverse(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        return 0.5 * (xp.log1p(v) - xp.log1p(-v))

    def F(self, v):
        xp, xsp = _xp(v)
        v = _as(xp, v)
        out = 0.5 * (xsp.special.xlogy(1 + v, 1 + v) + xsp.special.xlogy(1 - v, 1 - v))
        return xp.where((v < -1) | (v > 1), xp.inf, out)

    def Fstar(self, u):
        xp, _ = _xp(u)
        a = xp.abs(_as(xp, u))
        # log cosh u = |u| + log1p(e^{-2|u|}) - log 2, stable for large |u|
        return a + xp.log1p(xp.exp(-2 * a)) - math.log(2.0)

    def divergence(self, v, u):
        xp, xsp = _xp(v, u)
        return _bernoulli_kl(xp, xsp, 0.5 * (1 + _as(xp, v)), 2 * _as(xp, u))

    def _prox_bracket(self, xp, x, t):
        return (x - 1) / t, (x + 1) / t

    def cvxpy_F(self, v):
        import cvxpy as cp
        return -0.5 * (cp.entr(1 + v) + cp.entr(1 - v))

    def cvxpy_Fstar(self, u):
        import cvxpy as cp
        return cp.logistic(2 * u) - u - math.log(2.0)


class Softplus(Activation):
    r"""Softplus :math:`\phi(u) = \log(1 + e^u)`, range :math:`(0, \infty)`.

    No closed forms: :math:`F^*(u) = \int_{-\infty}^u \phi = -\mathrm{Li}_2(-e^u)`
    (dilogarithm; for :math:`u > 0` the inversion formula
    :math:`F^*(u) = \pi^2/6 + u^2/2 - F^*(-u)` avoids overflow) and
    :math:`F(v) = v s - F^*(s)`, :math:`s = \phi^{-1}(v) = \log(e^v - 1)`, with
    :math:`F(0) = 0` by continuity. :math:`B(v,u) = F^*(u) - F^*(s) - v(u - s)`
    (the Bregman divergence of :math:`F^*`). Accurate to about 1e-13 absolute
    for :math:`|u| \le 30` (tested against quadrature to 1e-10).

    **No CVXPY declaration** exists (the dilogarithm is not DCP): the CVXPY
    methods raise :class:`NoCvxpyFormError`; softplus subproblems are verified
    through their optimality conditions.
    """

    name = "softplus"
    lower = 0.0
    has_cvxpy = False

    def forward(self, u):
        xp, _ = _xp(u)
        return _softplus(xp, _as(xp, u))

    def derivative(self, u):
        return Sigmoid().forward(u)

    def inverse(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            # log(e^v - 1) = v + log(1 - e^{-v}), stable for large v; -inf at v = 0
            out = v + xp.log(-xp.expm1(-v))
        return xp.where(v < 0, xp.nan, out)

    def Fstar(self, u):
        xp, xsp = _xp(u)
        u = _as(xp, u)
        a = -xp.abs(u)
        spence = getattr(xsp.special, "spence", None)
        if spence is None:  # cupyx without spence: evaluate this scalar function on the host
            import scipy.special as sps
            base = xp.asarray(-sps.spence(1 + np.exp(to_numpy(a))), dtype=u.dtype)
        else:
            base = -spence(1 + xp.exp(a))  # -Li2(-e^a), a <= 0
        return xp.where(u > 0, math.pi ** 2 / 6 + 0.5 * u * u - base, base)

    def F(self, v):
        xp, _ = _xp(v)
        v = _as(xp, v)
        pos = v > 0
        safe = xp.where(pos, v, 1.0)
        s = self.inverse(safe)
        out = xp.where(pos, safe * s - self.Fstar(s), 0.0)
        return xp.where(v < 0, xp.inf, out)

    def divergence(self, v, u):
        xp, _ = _xp(v, u)
        v, u = _as(xp, v), _as(xp, u)
        pos = v > 0
        safe = xp.where(pos, v, 1.0)
        s = self.inverse(safe)
        out = xp.where(pos, self.Fstar(u) - self.Fstar(s) - safe * (u - s), self.Fstar(u))
        return xp.where(v < 0, xp.inf, out)

    def _prox_bracket(self, xp, x, t):
        # t s + softplus(s) = x; max(s,0) <= softplus(s) <= max(s,0) + log 2, and
        # g(s) = t s + max(s, 0) is increasing piecewise linear with inverse below.
        def ginv(c):
            return xp.where(c >= 0, c / (1 + t), c / t)
        return ginv(x - math.log(2.0)), ginv(x)

    def cvxpy_F(self, v):
        raise NoCvxpyFormError("softplus has no CVXPY declaration: F and F* involve the dilogarithm, "
                               "which is not DCP-representable; verify softplus by optimality conditions")

    cvxpy_Fstar = cvxpy_F

    def cvxpy_domain(self, v) -> list:
        return self.cvxpy_F(v)

    def cvxpy_divergence(self, v, u):
        return self.cvxpy_F(v)
