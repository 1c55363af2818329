r"""Activations as Fenchel-Young divergences.

For a strictly increasing continuous activation :math:`\phi` let
:math:`F(v) = \int \phi^{-1}` (the *potential*, on the closure of
:math:`\phi`'s range) and :math:`F^*(u) = \int \phi` its convex conjugate.
The Fenchel-Young inequality gives the divergence

.. math::

    B(v, u) = F(v) + F^*(u) - u v \;\ge\; 0, \qquad
    B(v, u) = 0 \iff v = \phi(u),

so :math:`\phi(u) = \arg\min_v B(v, u)` (Theorem 1 of Gu, Askari and El
Ghaoui, 2020). ``B`` is convex in ``v`` for fixed ``u`` (``F`` is convex) and
in ``u`` for fixed ``v`` (``F*`` is convex), but not jointly.

Every activation here provides, elementwise and on NumPy or CuPy arrays:

* ``forward(u)`` = :math:`\phi(u)`, ``derivative(u)`` = :math:`\phi'(u)`;
* ``F(v)`` (``+inf`` outside the domain), ``Fstar(u)``;
* ``divergence(v, u)`` = :math:`B(v, u)`, evaluated in a cancellation-free form
  (a sum of non-negative terms, or a Bernoulli KL divergence) so that it is
  non-negative to rounding for ``|u|`` up to 30 and beyond;
* ``grad_v(v, u)`` = :math:`F'(v) - u` and ``grad_u(v, u)`` = :math:`\phi(u) - v`;
* ``prox_F(x, t)`` = :math:`\arg\min_z t F(z) + \tfrac12 (z - x)^2` (which the
  fast path uses for the non-smooth part of the X-steps) and ``project(v)``;
* ``cvxpy_F(v)``, ``cvxpy_Fstar(u)``, ``cvxpy_domain(v)`` and
  ``cvxpy_divergence(v, u)`` (DCP in whichever argument is a CVXPY variable).

Softplus has no closed-form ``F`` or ``F*``:
:math:`F^*(u) = \int_{-\infty}^u \log(1 + e^s)\,ds = -\mathrm{Li}_2(-e^u)`
(the dilogarithm) is computed from ``scipy.special.spence`` to about 1e-14,
and :math:`F(v) = v s - F^*(s)` with :math:`s = \phi^{-1}(v) = \log(e^v - 1)`.
It has **no CVXPY declaration** (the dilogarithm is not DCP-representable);
its subproblems are verified by optimality conditions instead.

The two older lifted penalties the baselines need are here too:
:class:`LiftedPenalty` (Askari et al. 2018: :math:`\|v - u\|^2`, :math:`v \ge 0`)
and :class:`TaylorPenalty` (Taylor et al. 2016: :math:`\|v - \mathrm{relu}(u)\|^2`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from .backend import check_scalar, get_namespace, to_numpy
from .errors import CvxFenchelError, InputError, UnknownNameError

__all__ = ["Activation", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "HardTanh", "Softplus", "Identity",
           "LiftedPenalty", "TaylorPenalty", "NoCvxpyFormError", "get_activation", "ACTIVATIONS"]


class NoCvxpyFormError(CvxFenchelError, NotImplementedError):
    """The activation's divergence has no DCP declaration in CVXPY (softplus)."""


def _xp(*arrays):
    xp, xsp = get_namespace(*arrays)
    return xp, xsp


def _as(xp, a, like=None):
    """Array of ``xp`` with a float dtype (the dtype of ``like`` if given)."""
    dtype = getattr(like, "dtype", None)
    a = xp.asarray(a) if dtype is None else xp.asarray(a, dtype=dtype)
    if a.dtype.kind != "f":
        a = a.astype(xp.float64)
    return a


def _softplus(xp, u):
    """log(1 + e^u), stable for all u."""
    return xp.logaddexp(0.0, u)


def _bernoulli_kl(xp, xsp, p, s):
    r"""KL(Bern(p) || Bern(sigmoid(s))) = p log(p/sigma(s)) + (1-p) log((1-p)/(1-sigma(s))).

    Uses log sigma(s) = -softplus(-s), log(1 - sigma(s)) = -softplus(s); 0 log 0 = 0.
    ``inf`` where p is outside [0, 1].
    """
    out = (xsp.special.xlogy(p, p) + p * _softplus(xp, -s)
           + xsp.special.xlogy(1 - p, 1 - p) + (1 - p) * _softplus(xp, s))
    return xp.where((p < 0) | (p > 1), xp.inf, out)


class Activation:
    """Base class: an activation with its Fenchel-Young divergence.

    Subclasses set ``name``, the domain ``[lower, upper]`` of ``v`` (closure of
    the activation's range), ``lipschitz`` (sup of :math:`\\phi'`, the
    Lipschitz constant of :math:`\\nabla F^*`), and implement the methods.
    """

    name: ClassVar[str] = ""
    lower: ClassVar[float] = -math.inf
    upper: ClassVar[float] = math.inf
    lipschitz: ClassVar[float] = 1.0
    has_cvxpy: ClassVar[bool] = True
    #: True when ``v`` may sit on the domain boundary with a finite F (sigmoid, tanh, relu, ...).
    closed_domain: ClassVar[bool] = True

    # ---- identity -----------------------------------------------------------
    def params(self) -> dict:
        return {}

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({p})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params() == other.params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.params().items()))))

    def to_dict(self) -> dict:
        return {"name": self.name, **self.params()}

    # ---- arrays -------------------------------------------------------------
    def __call__(self, u):
        return self.forward(u)

    def forward(self, u):  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative(self, u):  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, v):
        """:math:`\\phi^{-1}(v) = F'(v)` on the interior of the domain (``-inf``/``+inf`` at open ends)."""
        raise NotImplementedError  # pragma: no cover

    def F(self, v):  # pragma: no cover - abstract
        raise NotImplementedError

    def Fstar(self, u):  # pragma: no cover - abstract
        raise NotImplementedError

    def divergence(self, v, u):
        """Elementwise :math:`B(v, u) = F(v) + F^*(u) - uv` (``inf`` where ``v`` is outside the domain)."""
        xp, _ = _xp(v, u)
        return self.F(v) + self.Fstar(u) - _as(xp, u) * _as(xp, v)

    def grad_v(self, v, u):
        """:math:`\\partial B / \\partial v = F'(v) - u` (interior of the domain)."""
        return self.inverse(v) - u

    def grad_u(self, v, u):
        """:math:`\\partial B / \\partial u = \\phi(u) - v`."""
        return self.forward(u) - v

    def in_domain(self, v):
        """Boolean array: ``v`` lies in the (closed) domain of ``F``."""
        xp, _ = _xp(v)
        v = _as(xp, v)
        return (v >= self.lower) & (v <= self.upper)

    def project(self, v):
        """Euclidean projection onto the closed domain ``[lower, upper]``."""
        xp, _ = _xp(v)
        v = _as(xp, v)
        lo = None if math.isinf(self.lower) else self.lower
        hi = None if math.isinf(self.upper) else self.upper
        if lo is None and hi is None:
            return v
        return xp.clip(v, lo, hi)

    def prox_F(self, x, t):
        r""":math:`\mathrm{prox}_{tF}(x) = \arg\min_z t F(z) + \tfrac12 (z - x)^2`, elementwise, ``t > 0``.

        For smooth invertible :math:`\phi` the minimiser is :math:`z = \phi(s)`
        where :math:`t s + \phi(s) = x` (since :math:`F'(\phi(s)) = s`); the
        scalar equation is increasing in ``s`` and solved by safeguarded Newton
        inside a bracket, batched. Piecewise-linear activations use closed forms.
        """
        xp, _ = _xp(x, t)
        x = _as(xp, x)
        t = _as(xp, t, like=x)
        lo, hi = self._prox_bracket(xp, x, t)
        s = _safeguarded_newton(xp, lambda s: t * s + self.forward(s) - x,
                                lambda s: t + self.derivative(s), lo, hi)
        return self.forward(s)

    def _prox_bracket(self, xp, x, t):  # pragma: no cover - abstract for smooth ones
        raise NotImplementedError

    # ---- CVXPY ---------------------------------------------------------------
    def cvxpy_F(self, v):  # pragma: no cover - abstract
        """Elementwise CVXPY expression of ``F`` (convex); domain constraints in :meth:`cvxpy_domain`."""
        raise NotImplementedError

    def cvxpy_Fstar(self, u):  # pragma: no cover - abstract
        """Elementwise CVXPY expression of ``F*`` (convex)."""
        raise NotImplementedError

    def cvxpy_domain(self, v) -> list:
        """CVXPY constraints keeping ``v`` in the domain of ``F``."""
        cons = []
        if not math.isinf(self.lower):
            cons.append(v >= self.lower)
        if not math.isinf(self.upper):
            cons.append(v <= self.upper)
        return cons

    def cvxpy_divergence(self, v, u):
        r"""Scalar CVXPY expression :math:`\sum_{ij} B(v_{ij}, u_{ij})`.

        Exactly one of ``v``, ``u`` may be a CVXPY expression; the other must be
        a constant (NumPy array), because :math:`uv` makes ``B`` non-convex
        jointly. The constant side enters as its numeric value. Add
        :meth:`cvxpy_domain` constraints when ``v`` is the variable.
        """
        import cvxpy as cp

        v_const = not isinstance(v, cp.Expression)
        u_const = not isinstance(u, cp.Expression)
        if not (v_const or u_const):
            raise InputError("cvxpy_divergence: B(v, u) is not jointly convex; one of v, u must be a constant")
        if v_const and u_const:
            return float(np.sum(to_numpy(self.divergence(np.asarray(v, float), np.asarray(u, float)))))
        if v_const:
            v = np.asarray(v, dtype=float)
            return float(np.sum(self.F(v))) + cp.sum(self.cvxpy_Fstar(u)) - cp.sum(cp.multiply(v, u))
        return self._cvxpy_divergence_in_v(v, np.asarray(u, dtype=float))

    def _cvxpy_divergence_in_v(self, v, u):
        """sum B(v, u) for a CVXPY ``v`` and constant ``u``; overridden by quadratic potentials
        with a completed-square form whose optimum value is 0 and well conditioned (ECOS's SOC
        form of ``F(v) - uv`` stalls at about 1e-4 in ``v`` otherwise)."""
        import cvxpy as cp
        return cp.sum(self.cvxpy_F(v)) + float(np.sum(self.Fstar(u))) - cp.sum(cp.multiply(u, v))


def _safeguarded_newton(xp, h, dh, lo, hi, *, tol=None, max_iter=200):
    """Solve the increasing scalar equation h(s) = 0 elementwise inside the bracket [lo, hi].

    Vectorised ``rtsafe`` (Numerical Recipes 9.4): the bracket shrinks with the sign of h
    at each iterate; a Newton step is taken only when it lands inside the bracket and
    at least halves the step before the last one, otherwise the bracket is bisected.
    So the bracket at least halves every two iterations (Newton alone can cycle on
    tanh-like equations ``t s + phi(s) = x`` with small ``t``). Stops when every step is
    below ``tol * (1 + |s|)``.
    """
    dtype = lo.dtype
    if tol is None:
        tol = 1e-15 if dtype == np.float64 else 1e-7
    s = 0.5 * (lo + hi)
    dx = hi - lo
    dxold = dx
    for _ in range(max_iter):
        val = h(s)
        d = dh(s)
        lo = xp.where(val < 0, s, lo)
        hi = xp.where(val > 0, s, hi)
        s_newton = s - val / d
        bis = ~((s_newton > lo) & (s_newton < hi)) | (xp.abs(2 * val) > xp.abs(dxold * d))
        s_new = xp.where(bis, 0.5 * (lo + hi), s_newton)
        s_new = xp.where(val == 0, s, s_new)
        dxold = dx
        dx = xp.abs(s_new - s)
        s = s_new
        if bool(xp.all(dx <= tol * (1 + xp.abs(s)))):
            break
    return s


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


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (ReLU, LeakyReLU, Sigmoid, Tanh, HardTanh, Softplus, Identity)
}
_ALIASES = {"hard_tanh": "hardtanh", "leakyrelu": "leaky_relu", "leaky-relu": "leaky_relu",
            "linear": "identity", "logistic": "sigmoid"}


def get_activation(spec: Any = "relu", **params: Any) -> Activation:
    """Return an :class:`Activation` from a name, a dict ``{"name": ..., **params}`` or an instance.

    >>> get_activation("leaky_relu", slope=0.1)
    LeakyReLU(slope=0.1)
    """
    if isinstance(spec, Activation):
        if params:
            raise InputError("parameters given together with an Activation instance")
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        params = {**{k: v for k, v in spec.items() if k != "name"}, **params}
        spec = spec.get("name")
    if not isinstance(spec, str):
        raise InputError(f"activation must be a name, a dict or an Activation, got {spec!r}")
    key = _ALIASES.get(spec.lower(), spec.lower())
    if key not in ACTIVATIONS:
        raise UnknownNameError(f"unknown activation {spec!r}; known: {sorted(ACTIVATIONS)}")
    cls = ACTIVATIONS[key]
    try:
        return cls(**params)
    except TypeError:
        raise InputError(f"activation {key!r} does not take parameters {sorted(params)}") from None


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
