"""The :class:`Activation` base class (see :mod:`cvx_fenchel.activations` for the mathematics)
and the batched safeguarded Newton solver behind smooth activations' ``prox_F``."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ..backend import get_namespace, to_numpy
from ..errors import CvxFenchelError, InputError

__all__ = ["Activation", "NoCvxpyFormError"]


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
    #: Parameters of the instance that verification and tests build (``example_activation``).
    example_params: ClassVar[dict] = {}

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

    def fstar_diff_blocks(self, u1, u0, k: int):
        """Per-block sums (:func:`~cvx_fenchel.backend.block_dot` layout, ``k`` blocks) of
        :math:`F^*(u_1) - F^*(u_0)` from entrywise differences, or None where the activation has no
        form cheaper than two divergences (then :func:`~cvx_fenchel.solvers.pcg_metric`'s line search
        evaluates :math:`B` at both points)."""
        return None

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
