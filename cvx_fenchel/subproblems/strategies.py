r"""W-step strategies: how a W-subproblem is solved, as small objects behind one interface.

A W-step (:mod:`.wsteps`) minimises

.. math::
    f(W, b) = \mathrm{data}\big(A(X; W) + b\big) + R(W, b), \qquad
    R = \rho\|(W, b)\|^2 + \gamma\|(W, b) - (W^0, b^0)\|^2 \;(\text{a } :class:`~cvx_fenchel.ridge.Ridge`).

Every strategy has a ``name`` (recorded as :attr:`FastResult.method`), ``applies(problem)`` and
``solve(problem, x0, *, tol, max_iter, warn) -> FastResult``; strategies with precomputed state
build it once by ``prepare(problem)`` (an immutable :class:`SampleSpaceState` or
:class:`GramState`, cached on the problem by :meth:`WStep.strategy_state`).

==================  ==========================================================================
strategy            idea
==================  ==========================================================================
``closed-form``     a quadratic data term with a dense map: ridge regression by Cholesky
``sample-space``    dense maps, ``m <= n+1``, :math:`\rho+\gamma > 0`: Gram-metric steps in the
                    ``m``-dimensional coordinates :math:`\theta = \bar\theta + \Psi C`
``gram``            dense/conv maps: accelerated steps :math:`y - P^{-1}\nabla f(y)`,
                    :math:`P = L_\text{data}[F\,1]^\top[F\,1] + 2(\rho+\gamma)I`
``fista``           FISTA with restart, step :math:`1/L`
``gradient-step``   one step :math:`x - \eta\nabla f(x)` (default :math:`\eta = 1/L`)
==================  ==========================================================================

:func:`select_strategy` picks the first that applies in the order closed form, sample space,
Gram, FISTA (the single gradient step is only taken when asked for).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from ..backend import block_dot, check_scalar, get_namespace
from ..errors import ConvergenceWarning, InputError, UnknownNameError
from ..maps import Chain, Dense
from ..losses import Loss
from ..solvers import FastResult, cholesky, cholesky_solve, fista, fista_metric, pcg_metric, read
from .common import result

__all__ = ["Strategy", "ClosedForm", "SampleSpace", "Gram", "Fista", "GradientStep", "SampleSpaceState",
           "GramState", "STRATEGIES", "select_strategy", "get_strategy", "feature_matrix"]


def feature_matrix(linear_map, X):
    """``F`` with ``U[..., c] = F @ W.reshape(-1, c_out)[:, c] + b_c`` up to a row permutation, for
    Dense and Conv2D maps and Chains of weightless maps, one of them, then Flatten; else None
    (:meth:`~cvx_fenchel.maps.FixedInput.features` of ``linear_map.fixed_input(X)``; a W-step
    keeps that operator, see :attr:`WStep.op`)."""
    if not getattr(linear_map, "has_weights", False):
        return None
    return linear_map.fixed_input(X).features()


def _with_ones(F, xp):
    return xp.concatenate([F, xp.ones((F.shape[0], 1), dtype=F.dtype)], axis=1)


def _warn_cap(problem, max_iter, res, tol, warn):
    if warn:
        import warnings
        warnings.warn(f"{problem.name}: preconditioned steps stopped at the iteration cap ({max_iter}) with "
                      f"residual {res:.3g} > tol {tol:.3g}", ConvergenceWarning, stacklevel=5)


@dataclass(frozen=True)
class Strategy:
    """Base class: ``applies(problem)``, ``solve(problem, x0, *, tol, max_iter, warn)``."""

    name: ClassVar[str] = ""

    def applies(self, problem) -> bool:
        return True

    def prepare(self, problem):
        """Precomputed state (immutable) or None when the strategy does not apply."""
        return None

    def solve(self, problem, x0, *, tol: float, max_iter: int, warn: bool = True) -> FastResult:
        raise NotImplementedError  # pragma: no cover - abstract

    def _finish(self, problem, x, n, tol, max_iter, warn, t0) -> FastResult:
        """Result at ``x`` with the Euclidean residual (:meth:`WStep.residual`) deciding convergence
        (the residual and the objective in one host read)."""
        res, obj = finish_values(problem, x)
        conv = res <= tol
        if not conv:
            _warn_cap(problem, max_iter, res, tol, warn)
        return result(x, obj, n, conv, res, time.perf_counter() - t0, self.name)


def line_search_applies(data) -> bool:
    """Whether the data term gives what :func:`~cvx_fenchel.solvers.pcg_metric` needs (entrywise
    or per-sample values and directional curvature)."""
    if not hasattr(data, "curv_dir") or not hasattr(data, "value_elems"):
        return False
    loss = getattr(data, "loss", None)
    return loss is None or type(loss).curv_dir is not Loss.curv_dir


def _blocks_of(problem) -> int:
    """Independent blocks of a W-step: its output channels when the data term is a sum over
    entries (a divergence), else 1 (the softmax couples a row's outputs)."""
    return int(problem.map.weight_shape[-1]) if problem.data.separable else 1


def finish_values(problem, x) -> tuple[float, float]:
    """``(residual, objective)`` of a W-step at ``x = (W, b)`` (as :meth:`WStep.residual` and
    :meth:`WStep.objective`, without their argument checks) in one host read."""
    xp = problem.xp
    W, b = x
    L = problem.lipschitz
    g = problem._grad(x)
    d2 = sum(xp.sum((e / L) ** 2) for e in g)  # a W-step has no prox term: x - T(x) = grad / L
    x2 = xp.sum(W * W) + xp.sum(b * b)
    obj = problem._data_value(x, array=True) + problem.ridge.value(W, b, array=True)
    d2, x2, obj = read(d2, x2, obj)
    return math.sqrt(max(d2, 0.0)) / max(1.0, math.sqrt(max(x2, 0.0))), obj


@dataclass(frozen=True)
class ClosedForm(Strategy):
    r"""Ridge regression with a proximal term, by Cholesky: for a dense map and a quadratic data term
    :math:`\tfrac s2\|[X\,1]\theta - T\|^2`, :math:`(s\Phi^\top\Phi + 2(\rho+\gamma)I)\theta
    = s\Phi^\top T + 2\gamma\theta^0` (:meth:`WStep.closed_form`)."""

    name: ClassVar[str] = "closed-form"

    def applies(self, problem) -> bool:
        return problem.closed_form_available()

    def solve(self, problem, x0, *, tol, max_iter, warn=True) -> FastResult:
        t0 = time.perf_counter()
        x = problem.closed_form()
        res, obj = finish_values(problem, x)
        conv = res <= max(tol, 1e3 * np.finfo(problem.dtype).eps)
        return result(x, obj, 0, conv, res, time.perf_counter() - t0, self.name)


@dataclass(frozen=True, eq=False)
class GramState:
    r"""Lower Cholesky factor of :math:`P = L_\text{data}[F\,1]^\top[F\,1] + (2(\rho+\gamma) + \epsilon)I`
    (``epsilon`` = 1e-12 max diag, keeps ``P`` definite when :math:`\rho = \gamma = 0`) and, when
    the ridge makes ``P`` well conditioned, ``inv`` :math:`= P^{-1}` (computed in float64 by LU,
    symmetrised, stored in the working dtype): each step is then one
    GEMM instead of two triangular solves (those run 3-15x slower for LeNet-5's shapes on 2 cores)."""

    chol: Any
    weight_shape: tuple
    inv: Any = None
    #: the multiple of the identity in ``P`` (a 0-d array): :math:`2(\rho+\gamma) + \epsilon`
    jitter: Any = 0.0

    def solve_P(self, g):
        """:math:`P^{-1} g` for a gradient pair ``g = (gW, gb)``, one solve for all output channels."""
        xp, _ = get_namespace(g[0])
        gW, gb = g
        c_out = self.weight_shape[-1]
        G = xp.concatenate([gW.reshape(-1, c_out), gb.reshape(1, c_out)], axis=0)
        D = cholesky_solve(self.chol, G) if self.inv is None else self.inv @ G
        return (D[:-1].reshape(self.weight_shape), D[-1].reshape(gb.shape))


@dataclass(frozen=True)
class Gram(Strategy):
    r"""Accelerated majorise-minimise steps in the metric of the Gram preconditioner.

    Every output channel ``c`` of a dense or convolutional map is ``U[..., c] = F W[:, c] + b_c``
    with one feature matrix ``F`` (``X`` for dense, the im2col patches for conv, after any
    weightless maps before the weighted one), so the data term's Hessian in ``(W, b)`` is bounded by
    :math:`L_\text{data}[F\,1]^\top[F\,1]` for every channel and the ridge adds
    :math:`2(\rho+\gamma)I`: :math:`P` (:class:`GramState`) majorises the Hessian and the steps are
    :math:`y - P^{-1}\nabla f(y)` (:func:`~cvx_fenchel.solvers.fista_metric`). With
    :math:`\rho = \gamma = 0` ``P`` is definite only through its jitter, so the iteration also stops
    on the Euclidean residual. Applies when ``F`` exists with at most ``max_dim`` columns (+ bias)."""

    name: ClassVar[str] = "gram"
    max_dim: int = 2048
    #: the iteration: ``"fista"`` (:func:`~cvx_fenchel.solvers.fista_metric`, the default) or
    #: ``"pcg"`` (:func:`~cvx_fenchel.solvers.pcg_metric`: conjugate directions and a line search per
    #: output channel, where the data term gives its curvature and :math:`\rho + \gamma > 0`; it
    #: stops on the certificate of :meth:`WStep._certify`). Not the default here: on LeNet-5's
    #: convolutional W-steps (``U`` of 2.35M entries at batch 500) its line search's entrywise
    #: work costs more than the products it saves, and with LeNet's gamma = 1e-4 the certificate
    #: it stops on is out of reach (the first layer ran 30 iterations instead of FISTA's 8: 17x
    #: the time on one BLAS thread).
    inner: str = "fista"
    #: ``P^{-1}`` is applied as a matrix when ``cond(P) <= 1 + L_data ||[F 1]||^2 / (2(rho+gamma))``
    #: is at most this (then it changes the steps by rounding only), else by triangular solves.
    max_cond_inverse: float = 1e12

    def applies(self, problem) -> bool:
        return problem.strategy_state(self) is not None

    def prepare(self, problem):
        F = problem.op.features()
        if F is None or F.shape[1] + 1 > self.max_dim or problem.data.lipschitz <= 0:
            return None
        xp = problem.xp  # (F's namespace; F itself is only asked for its shape here)
        P = problem.data.lipschitz * problem.op.gram()  # [F 1]^T [F 1], kept for the norm
        jitter = problem.ridge.curvature + 1e-12 * (xp.max(xp.diagonal(P)) + 1.0)  # on the device
        P = P + jitter.astype(P.dtype) * xp.eye(P.shape[0], dtype=P.dtype)
        try:
            chol = cholesky(P)
        except np.linalg.LinAlgError:  # numerically indefinite: not this strategy
            return None
        inv = None
        curv = problem.ridge.curvature
        if curv > 0 and float(problem.op.lipschitz()) * problem.data.lipschitz / curv <= self.max_cond_inverse:
            # LAPACK's LU inverse: as accurate here (cond(P) <= max_cond_inverse) and 2-4x faster
            # than two triangular solves against the identity for these orders (300-800)
            P64 = P.astype(xp.float64)
            inv = xp.linalg.inv(P64)
            inv = (0.5 * (inv + inv.T)).astype(P.dtype)
        return GramState(chol, tuple(problem.map.weight_shape), inv, jitter)

    def solve(self, problem, x0, *, tol, max_iter, warn=True) -> FastResult:
        t0 = time.perf_counter()
        S = problem.strategy_state(self)
        lip = problem.lipschitz if problem.ridge.curvature == 0 else None
        if self.inner == "pcg" and problem.ridge.curvature > 0 and line_search_applies(problem.data):
            # (without a ridge P is definite only through its jitter and f is flat along the null
            # space of the features: a line search does not bound steps there, so FISTA it is)
            op, data, ridge, k = problem.op, problem.data, problem.ridge, _blocks_of(problem)
            L_data = data.lipschitz

            def grad_at(x, G):
                dW, db = op.adjoint(G)
                return ridge.add_grad(dW, db, *x)

            def dPd(d, Wd):  # d^T P d per block: L_data ||[F 1] d||^2 + jitter ||d||^2
                return L_data * block_dot(Wd, Wd, k) + S.jitter * sum(block_dot(a, a, k) for a in d)

            def value_at(x, U):
                return data.value(U, array=True) + ridge.value(*x, array=True)

            x, n, _ = pcg_metric(grad_at, lambda d: op.apply(*d), S.solve_P, dPd, data, tuple(x0),
                                 op.apply(*x0), k=k, curvature=ridge.curvature, tol=tol, max_iter=max_iter,
                                 lipschitz=problem.lipschitz, value_at=value_at)
        else:
            x, n, _ = fista_metric(problem._grad, S.solve_P, tuple(x0), tol=tol, max_iter=max_iter, lipschitz=lip)
        return self._finish(problem, x, n, tol, max_iter, warn, t0)


@dataclass(frozen=True, eq=False)
class SampleSpaceState:
    r"""The change of coordinates :math:`\theta = \bar\theta + \Psi C`, :math:`\Psi = \Phi^\top Q\Lambda^{-1/2}`
    (see :class:`SampleSpace`): float64 ``Phi``, ``Q64``, ``sq64`` (:math:`\Lambda^{1/2}`) and
    ``theta_bar`` for both ends; in the working dtype ``Qs`` :math:`= Q\Lambda^{1/2}` (so that
    ``U = U_bar + Qs C`` and the data part of the gradient is ``Qs^T G``: one GEMM each, no
    elementwise scaling per iteration), the diagonal ``metric``
    :math:`L_\text{data}\Lambda + 2c`, ``U_bar`` :math:`= \Phi\bar\theta`, ``psi_bar``
    :math:`= \Psi^\top\bar\theta`; ``bar_sq`` :math:`= \|\bar\theta\|^2`; ``c`` :math:`= \rho+\gamma`;
    ``k`` output units; ``lipschitz`` :math:`= L_\text{data}\max\Lambda + 2c`."""

    Phi: Any
    Q64: Any
    sq64: Any
    theta_bar: Any
    Qs: Any
    metric: Any
    U_bar: Any
    psi_bar: Any
    bar_sq: float
    c: float
    k: int
    lipschitz: float


@dataclass(frozen=True)
class SampleSpace(Strategy):
    r"""The W-step in sample space (dense maps with fewer samples than weights per unit).

    With :math:`\Phi = [F\,1]` (``m x (n+1)``, ``m <= n+1``), :math:`c = \rho + \gamma > 0` and
    :math:`\bar\theta` the centre of the ridge term (:meth:`Ridge.center`), the objective is
    :math:`\mathrm{data}(\Phi\theta) + c\|\theta - \bar\theta\|^2` + const. Its minimiser lies in
    :math:`\bar\theta + \mathrm{range}(\Phi^\top)` (stationarity:
    :math:`\theta - \bar\theta = -\Phi^\top \nabla\mathrm{data}/(2c)`), and the component of a
    start outside it only adds to the ridge term, so it is dropped. With the eigendecomposition
    :math:`\Phi\Phi^\top = Q\Lambda Q^\top` (``m x m``, float64; eigenvalues below
    ``1e-13 max(Lambda)`` dropped), :math:`\Psi = \Phi^\top Q\Lambda^{-1/2}` is an orthonormal basis of
    that range and :math:`\theta = \bar\theta + \Psi C`:

    .. math::
        U = \Phi\bar\theta + Q\Lambda^{1/2} C, \qquad
        \nabla_C = \Lambda^{1/2} Q^\top \nabla\mathrm{data}(U) + 2cC, \qquad
        P_C = L_\text{data}\Lambda + 2c\,I \text{ (diagonal)}.

    :math:`P_C` is the Gram preconditioner of :class:`Gram` in these coordinates, so the iterates
    are the same as there (from the first step on), at the cost of two ``m x m`` by ``m x k``
    products a step instead of two ``m x (n+1)`` products and two triangular solves of order ``n+1``.
    """

    name: ClassVar[str] = "sample-space"
    #: ``"pcg"`` (the default) or ``"fista"``, as for :class:`Gram`. On the MNIST hidden W-step
    #: (784-300-10, batch 500) PCG reaches the certificate (``converged=True``, relative gap 1.4e-6)
    #: in about 21 iterations where FISTA's 30-iteration cap leaves 8.4e-6 uncertified.
    inner: str = "pcg"

    def applies(self, problem) -> bool:
        return problem.strategy_state(self) is not None

    def prepare(self, problem):
        c = problem.ridge.rho + problem.ridge.gamma
        mp = problem.map
        mid = mp._split()[1] if isinstance(mp, Chain) else mp
        F = problem.op.features() if isinstance(mid, Dense) else None
        if F is None or c <= 0 or F.shape[0] > F.shape[1] + 1 or problem.data.lipschitz <= 0 \
                or tuple(mp.out_shape) != (mp.weight_shape[-1],):
            return None
        xp, dt, L_data = problem.xp, problem.dtype, problem.data.lipschitz
        Phi = _with_ones(F, xp).astype(xp.float64)
        lam, Q = xp.linalg.eigh(Phi @ Phi.T)
        k = mp.weight_shape[-1]
        W0, b0 = problem.ridge.W0, problem.ridge.b0
        Wc, bc = replace(problem.ridge, W0=W0.astype(xp.float64), b0=b0.astype(xp.float64)).center()
        theta_bar = xp.zeros((Phi.shape[1], k)) if Wc is None else \
            xp.concatenate([Wc.reshape(-1, k), bc.reshape(1, k)], axis=0)
        lam_max, bar_sq = read(lam[-1], xp.sum(theta_bar * theta_bar))  # one host read
        keep = lam > 1e-13 * max(lam_max, 1.0)  # (a boolean mask: indexing by it stays on the device)
        lam, Q = lam[keep], Q[:, keep]
        sq = xp.sqrt(lam)
        U_bar = Phi @ theta_bar
        # float64 for the change of coordinates at both ends, the working dtype inside
        return SampleSpaceState(
            Phi=Phi, Q64=Q, sq64=sq, theta_bar=theta_bar, Qs=(Q * sq).astype(dt, copy=False),
            metric=(L_data * lam + 2 * c).astype(dt)[:, None], U_bar=U_bar.astype(dt, copy=False),
            psi_bar=((Q.T @ U_bar) / sq[:, None]).astype(dt, copy=False),
            bar_sq=bar_sq, c=c, k=k, lipschitz=max(L_data * lam_max + 2 * c, 1e-12))

    def solve(self, problem, x0, *, tol, max_iter, warn=True) -> FastResult:
        t0 = time.perf_counter()
        S = problem.strategy_state(self)
        xp, k = problem.xp, S.k
        if problem.ridge.rho == 0 and x0[0] is problem.ridge.W0 and x0[1] is problem.ridge.b0:
            # started at the ridge centre (the trainer's warm start with rho = 0): C0 = 0 exactly
            C0 = xp.zeros((S.Q64.shape[1], k), dtype=problem.dtype)
        else:
            theta0 = xp.concatenate([x0[0].reshape(-1, k), x0[1].reshape(1, k)], axis=0).astype(xp.float64)
            C0 = ((S.Q64.T @ (S.Phi @ (theta0 - S.theta_bar))) / S.sq64[:, None]).astype(problem.dtype)
        Qs, metric, U_bar, c2, psi_bar = S.Qs, S.metric, S.U_bar, 2 * S.c, S.psi_bar
        data = problem.data

        def grad(t):
            C = t[0]
            R = data.grad(U_bar + Qs @ C)
            return (Qs.T @ R + c2 * C,)

        def norm_sq_x(t):  # ||theta_bar + Psi C||^2, a 0-d array (no host read)
            C = t[0]
            return S.bar_sq + 2 * xp.sum(psi_bar * C) + xp.sum(C * C)

        if self.inner == "pcg" and line_search_applies(data):
            kb = _blocks_of(problem)

            def grad_at(t, G):
                return (Qs.T @ G + c2 * t[0],)

            def image(d):
                return Qs @ d[0]

            r_bar = problem.ridge.value(*problem.ridge.center(), array=True) \
                if problem.ridge.center()[0] is not None else 0.0  # R at the centre: R = r_bar + c ||C||^2

            def value_at(t, U):
                return data.value(U, array=True) + S.c * xp.sum(t[0] * t[0]) + r_bar

            (C,), n, _ = pcg_metric(grad_at, image, lambda g: (g[0] / metric,),
                                    lambda d, Wd: block_dot(metric * d[0], d[0], kb), data, (C0,),
                                    U_bar + image((C0,)), k=kb, curvature=c2, tol=tol, max_iter=max_iter,
                                    lipschitz=problem.lipschitz, norm_sq_x=norm_sq_x, value_at=value_at)
        else:
            (C,), n, _ = fista_metric(grad, lambda g: (g[0] / metric,), (C0,), tol=tol, max_iter=max_iter,
                                      norm_sq_x=norm_sq_x)
        theta = S.theta_bar + S.Phi.T @ (S.Q64 @ (C.astype(xp.float64) / S.sq64[:, None]))
        theta = theta.astype(problem.dtype)
        x = (theta[:-1].reshape(problem.map.weight_shape), theta[-1].reshape(problem.map.bias_shape))
        return self._finish(problem, x, n, tol, max_iter, warn, t0)


@dataclass(frozen=True)
class Fista(Strategy):
    """FISTA with restart (:func:`~cvx_fenchel.solvers.fista`), step ``1/L`` with
    :math:`L = L_\\text{data}\\|[A_X, 1]\\|^2 + 2(\\rho+\\gamma)`; applies to every W-step."""

    name: ClassVar[str] = "fista"

    def solve(self, problem, x0, *, tol, max_iter, warn=True) -> FastResult:
        t0 = time.perf_counter()
        x, n, conv, res = fista(problem._grad, problem._prox, tuple(x0), problem.lipschitz, tol=tol,
                                max_iter=max_iter, name=problem.name, warn=warn)
        return result(x, problem.objective(x), n, conv, res, time.perf_counter() - t0, self.name)


@dataclass(frozen=True)
class GradientStep(Strategy):
    """One gradient step :math:`x_0 - \\eta\\nabla f(x_0)` (default :math:`\\eta = 1/L`): the paper's
    CIFAR-10 W-step. ``converged`` says whether the residual at the new point is below ``tol``."""

    name: ClassVar[str] = "gradient-step"
    lr: float | None = None

    def __post_init__(self):
        if self.lr is not None:
            object.__setattr__(self, "lr", check_scalar(self.lr, "lr", low=0.0, low_inclusive=False))

    def solve(self, problem, x0, *, tol, max_iter, warn=True) -> FastResult:
        t0 = time.perf_counter()
        lr = 1.0 / problem.lipschitz if self.lr is None else self.lr
        x = tuple(a - lr * d for a, d in zip(x0, problem._grad(tuple(x0))))
        res, obj = finish_values(problem, x)
        return result(x, obj, 1, res <= tol, res, time.perf_counter() - t0, self.name)


#: The strategies by name, in selection order (the gradient step is never selected automatically).
STRATEGIES = {s.name: s for s in (ClosedForm(), SampleSpace(), Gram(), Fista(), GradientStep())}


def get_strategy(strategy) -> Strategy:
    """A :class:`Strategy` from a name in :data:`STRATEGIES` (or the strategy itself)."""
    if isinstance(strategy, Strategy):
        return strategy
    if isinstance(strategy, str) and strategy in STRATEGIES:
        return STRATEGIES[strategy]
    raise UnknownNameError(f"unknown W-step strategy {strategy!r}; choose one of {tuple(STRATEGIES)}")


def select_strategy(problem, *, precondition: bool = True, sample_space: bool = True) -> Strategy:
    """The first strategy that applies to ``problem``, in the order closed form, sample space
    (unless ``sample_space=False``), Gram (unless ``precondition=False``, which also excludes the
    sample space), FISTA."""
    order = [STRATEGIES["closed-form"]]
    if precondition:
        order += [STRATEGIES["sample-space"]] if sample_space else []
        order += [STRATEGIES["gram"]]
    for s in order:
        if s.applies(problem):
            return s
    return STRATEGIES["fista"]


def check_applies(strategy: Strategy, problem) -> Strategy:
    if not strategy.applies(problem):
        raise InputError(f"{problem.name}: strategy={strategy.name!r} does not apply to this problem "
                         f"(map {type(problem.map).__name__}, rho + gamma = {problem.ridge.rho + problem.ridge.gamma:g})")
    return strategy
