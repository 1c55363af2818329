r"""The pieces subproblem objectives are made of.

A subproblem is :math:`\min_x \mathrm{data}(U(x)) + \mathrm{prev}(x)` (X-steps) or
:math:`\min_{W,b} \mathrm{data}(A(X; W) + b) + R(W, b)` (W-steps, ``R`` a
:class:`~cvx_fenchel.ridge.Ridge`). A *data term* is smooth in the pre-activation ``U``
(``value``, ``grad``, ``lipschitz`` = Lipschitz constant of ``grad``, ``cvxpy``); a *previous
layer term* of an X-step is the non-smooth part in ``Z`` (``value`` with ``inf`` outside its
domain, ``prox``, ``start``, and a CVXPY ``(expression, constraints)`` pair).

=====================  ===================================================  ======================
term                   value                                                gradient / prox
=====================  ===================================================  ======================
``DivergenceTerm``     :math:`w \sum B(V, U)`                               :math:`w(\phi(U) - V)`
``LossTerm``           :math:`w\,\mathcal L(Y, U)`                          :math:`w \nabla\mathcal L`
``QuadTerm``           :math:`w \|U - T\|^2`                                :math:`2w(U - T)`
``PrevDivergence``     :math:`w \sum B(Z, U^-)`, ``Z`` in dom F             :math:`\mathrm{prox}_{swF}(V + swU^-)`
``PrevQuadNonneg``     :math:`w \|Z - U^-\|^2`, ``Z >= 0``                  :math:`\max((V + 2swU^-)/(1 + 2sw), 0)`
=====================  ===================================================  ======================
"""

from __future__ import annotations

import math

import numpy as np

from ..activations import Activation
from ..backend import block_dot, get_namespace, to_numpy
from ..losses import Loss

__all__ = ["DivergenceTerm", "LossTerm", "QuadTerm", "PrevDivergence", "PrevQuadNonneg"]


def _host(a, shape) -> np.ndarray:
    """A float64 NumPy copy of the array ``a`` with the shape of a CVXPY expression."""
    return np.asarray(to_numpy(a), dtype=float).reshape(shape)


class DivergenceTerm:
    r""":math:`w \sum B(V, U)`: smooth in ``U`` with gradient :math:`w(\phi(U) - V)`, Lipschitz
    :math:`w \sup \phi'`."""

    def __init__(self, act: Activation, V, weight: float):
        self.act, self.V, self.weight = act, V, weight
        self.lipschitz = weight * act.lipschitz

    def value(self, U, *, array: bool = False):
        xp, _ = get_namespace(U)
        v = self.weight * xp.sum(self.act.divergence(self.V, U)) if self.weight else xp.zeros(())
        return v if array else float(v)

    def grad(self, U):
        return self.weight * (self.act.forward(U) - self.V)

    #: the term is a sum over entries of ``U`` (an output channel's entries depend on its weights only)
    separable = True

    def value_elems(self, U):
        """The term's summands (entrywise): their sum over a block is the term on that block."""
        return self.weight * self.act.divergence(self.V, U)

    def curv_dir(self, U, D):
        """Entrywise :math:`w\\phi'(U) D^2`: summed over a block of entries, the second derivative of
        the term along ``D`` on that block."""
        return self.weight * self.act.derivative(U) * D * D

    def curv_blocks(self, U, D, k: int):
        """:meth:`curv_dir` summed over each of ``k`` blocks (:func:`~cvx_fenchel.backend.block_dot`)."""
        return self.weight * block_dot(self.act.derivative(U) * D, D, k)

    def value_diff_blocks(self, U1, U0, k: int):
        r"""Per-block sums of the term at ``U1`` minus at ``U0``, from
        :math:`B(V, U) = F(V) + F^*(U) - UV`: :math:`w(F^*(U_1) - F^*(U_0) - V(U_1 - U_0))` with
        entrywise differences (no cancellation between two large sums; ``V`` in the domain of
        ``F``, as every iterate is); None where the activation has no such form
        (:meth:`Activation.fstar_diff_blocks`)."""
        f = self.act.fstar_diff_blocks(U1, U0, k)
        if f is None:
            return None
        return self.weight * (f - block_dot(self.V, U1 - U0, k))

    def cvxpy(self, U):
        return self.weight * self.act.cvxpy_divergence(_host(self.V, U.shape), U)


class LossTerm:
    r""":math:`w\,\mathcal L(Y, U)` for a :class:`~cvx_fenchel.losses.Loss`; Lipschitz
    :math:`w` times the loss's curvature bound."""

    def __init__(self, loss: Loss, Y, weight: float):
        self.loss, self.Y, self.weight = loss, Y, weight
        self.lipschitz = weight * loss.lipschitz

    def value(self, U, *, array: bool = False):
        return self.weight * self.loss.value(self.Y, U, array=array)

    def grad(self, U):
        return self.weight * self.loss.grad(self.Y, U)

    #: a row of ``U`` couples its entries (softmax): no per-channel blocks
    separable = False

    def value_elems(self, U):
        """Per-sample values (their sum is the term)."""
        return self.weight * self.loss.per_sample(self.Y, U)

    def curv_dir(self, U, D):
        """Per-sample second derivative along ``D`` (None when the loss does not give it)."""
        c = self.loss.curv_dir(self.Y, U, D)
        return None if c is None else self.weight * c

    def cvxpy(self, U):
        return self.weight * self.loss.cvxpy(np.asarray(to_numpy(self.Y), dtype=float), U)


class QuadTerm:
    r""":math:`w \|U - T\|_F^2` (the 2018 lifted network's penalty); Lipschitz :math:`2w`."""

    def __init__(self, T, weight: float):
        self.T, self.weight = T, weight
        self.lipschitz = 2 * weight

    def value(self, U, *, array: bool = False):
        xp, _ = get_namespace(U)
        v = self.weight * xp.sum((U - self.T) ** 2)
        return v if array else float(v)

    def grad(self, U):
        return 2 * self.weight * (U - self.T)

    separable = True

    def curv_dir(self, U, D):
        return 2 * self.weight * D * D

    def value_elems(self, U):
        return self.weight * (U - self.T) ** 2

    def cvxpy(self, U):
        import cvxpy as cp
        return self.weight * cp.sum_squares(U - _host(self.T, U.shape))


class PrevDivergence:
    r""":math:`w \sum B_\text{prev}(Z, U^-)` over :math:`Z \in \mathrm{dom} F_\text{prev}`: the
    non-smooth part of an X-step. Its prox,
    :math:`\arg\min_Z s w (F(Z) - \langle U^-, Z\rangle) + \tfrac12\|Z - V\|^2
    = \mathrm{prox}_{swF}(V + swU^-)`, is the projection on the domain when :math:`w = 0`."""

    def __init__(self, act: Activation, U_prev, weight: float):
        self.act, self.U, self.weight = act, U_prev, weight
        self._shift = (None, None)  # (s, s w U^-): FISTA calls prox with one step size throughout

    def value(self, Z, *, array: bool = False):
        """The term at ``Z`` (``inf`` outside the domain); a 0-d array with ``array=True``."""
        xp, _ = get_namespace(Z)
        if self.weight:
            v = self.weight * xp.sum(self.act.divergence(Z, self.U))
        else:
            v = xp.where(xp.all(self.act.in_domain(Z)), 0.0, math.inf)
        return v if array else float(v)

    def prox(self, V, s):
        if self.weight == 0:
            return self.act.project(V)
        if self._shift[0] != s:  # s w U^- once per step size, not once per iteration
            self._shift = (s, (s * self.weight) * self.U)
        return self.act.prox_F(V + self._shift[1], s * self.weight)

    def project(self, Z):
        """The nearest point of the domain (a warm start made feasible)."""
        return self.act.project(Z)

    def grad(self, Z):
        """:math:`w(F'(Z) - U^-) = w(\\phi^{-1}(Z) - U^-)` (interior of the domain)."""
        xp, _ = get_namespace(Z)
        return self.weight * (self.act.inverse(Z) - self.U) if self.weight else xp.zeros_like(Z)

    def bounds(self) -> tuple[float, float]:
        """Entrywise domain ``(lower, upper)`` of ``Z``."""
        return self.act.lower, self.act.upper

    def start(self):
        """:math:`\\phi_\\text{prev}(U^-)`, the feed-forward value (where the term is 0)."""
        return self.act.forward(self.U)

    def cvxpy(self, Z):
        return self.weight * self.act.cvxpy_divergence(Z, _host(self.U, Z.shape)), self.act.cvxpy_domain(Z)


class PrevQuadNonneg:
    r""":math:`w \|Z - U^-\|_F^2` with :math:`Z \ge 0` (the 2018 lifted network); prox
    :math:`\max((V + 2swU^-)/(1 + 2sw), 0)`."""

    def __init__(self, U_prev, weight: float):
        self.U, self.weight = U_prev, weight

    def value(self, Z, *, array: bool = False):
        """The term at ``Z`` (``inf`` where an entry is negative); a 0-d array with ``array=True``."""
        xp, _ = get_namespace(Z)
        v = xp.where(xp.any(Z < 0), math.inf, self.weight * xp.sum((Z - self.U) ** 2))
        return v if array else float(v)

    def prox(self, V, s):
        xp, _ = get_namespace(V)
        a = 2 * s * self.weight
        out = a * self.U  # max((V + a U)/(1 + a), 0) in one array, the same value bit for bit
        out += V
        out /= 1 + a
        return xp.maximum(out, 0, out=out)

    def project(self, Z):
        return self.prox(Z, 0.0)

    def grad(self, Z):
        return 2 * self.weight * (Z - self.U)

    def bounds(self) -> tuple[float, float]:
        return 0.0, math.inf

    def start(self):
        xp, _ = get_namespace(self.U)
        return xp.maximum(self.U, 0)

    def cvxpy(self, Z):
        import cvxpy as cp
        return self.weight * cp.sum_squares(Z - _host(self.U, Z.shape)), [Z >= 0]
