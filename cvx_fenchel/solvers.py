r"""Fast solvers shared by the subproblems: accelerated proximal gradient, ridge, simplex bisection.

Every solver is batched array code through the inputs' namespace ``xp`` (NumPy
or CuPy), in float32 or float64, and returns a :class:`FastResult`.

Optimality measure (scale-free): for a composite problem
:math:`\min_x f(x) + g(x)` with :math:`\nabla f` :math:`L`-Lipschitz, the
proximal-gradient map :math:`T(x) = \mathrm{prox}_{g/L}(x - \nabla f(x)/L)`
has the minimisers as fixed points; we report

.. math::  r(x) = \frac{\|x - T(x)\|}{\max(1, \|x\|)},

which does not change when the objective is multiplied by a constant and is
relative to the size of ``x``. Solvers stop when :math:`r \le` ``tol`` and
report ``converged=False`` with a :class:`~cvx_fenchel.errors.ConvergenceWarning`
when the iteration cap comes first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .backend import block_dot, check_interval, get_namespace, to_numpy
from .errors import ConvergenceWarning, InputError

Tree = tuple  # a tuple of arrays: (Z,) for X-steps, (W, b) for W-steps


@dataclass
class FastResult:
    r"""Result of a fast-path solve.

    Attributes
    ----------
    x : array or tuple of arrays
        The minimiser (``Z`` for X-steps, ``(W, b)`` for W-steps).
    objective : float
        Objective value at ``x`` (array code, the same function CVXPY declares). A solver whose
        stopping test does not need it may pass a zero-argument callable instead: it is then
        evaluated on the first read (and kept), so a caller that never reads it, such as the
        trainer's X-steps, pays neither the evaluation nor its host read.
    n_iter : int
        Iterations taken (0 for closed forms).
    converged : bool
        Whether the optimality residual reached the tolerance and, where a certificate exists
        (``gap_bound``), the certified suboptimality did too: never just "the iterates stopped
        moving".
    residual : float
        Scale-free optimality residual at ``x`` (see module docstring).
    seconds : float
        Wall time of the solve.
    method : str
        Which path or strategy produced it (e.g. ``fista``, ``sample-space``, ``closed-form``).
    gap_bound : float
        A certified upper bound on the relative suboptimality
        :math:`(f(x) - f^*) / \max(1, |f(x)|)` where the solver has one (W-steps with
        :math:`\rho + \gamma > 0`: :math:`\|\nabla f(x)\|^2 / (2\mu)`, :math:`\mu = 2(\rho+\gamma)`);
        ``nan`` where it has none.
    note : str
        Why ``converged`` is False (or which certificate backs a True), in words.
    """

    x: Any
    objective: float
    n_iter: int
    converged: bool
    residual: float
    seconds: float = 0.0
    method: str = ""
    gap_bound: float = math.nan
    note: str = ""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name == "objective" and callable(value):  # deferred: evaluate once, on first read
            value = float(value())
            object.__setattr__(self, "objective", value)
        return value


def default_tol(dtype: Any) -> float:
    """1e-9 in float64, 1e-5 in float32 (about 100 eps of float32)."""
    return 1e-9 if np.dtype(dtype) == np.float64 else 1e-5


def _vdot(u: Any, v: Any, xp) -> Any:
    """``sum(u * v)`` as a 0-d array in one ``einsum`` pass (no ``u * v`` temporary: 2.5x faster
    than ``sum(u * v)`` on NumPy; relative error 2e-7 against float64 for 2.4M float32 entries)."""
    return xp.einsum("i,i->", u.reshape(-1), v.reshape(-1))


def _sq(tree: Tree, xp) -> Any:
    """``||tree||^2`` as a 0-d array of the namespace (no host read)."""
    return sum(_vdot(a, a, xp) for a in tree if a is not None)


def _dot(a: Tree, b: Tree, xp) -> Any:
    """``<a, b>`` of two trees as a 0-d array of the namespace (no host read)."""
    return sum(_vdot(u, v, xp) for u, v in zip(a, b) if u is not None)


def read(*values: Any) -> tuple[float, ...]:
    """Host floats of 0-d arrays (or Python numbers) in **one** read: on NumPy each is converted
    directly; on a device namespace the values are stacked and copied once (one host
    synchronisation, however many values)."""
    arrs = [v for v in values if not isinstance(v, (int, float))]
    if not arrs:
        return tuple(float(v) for v in values)
    xp, _ = get_namespace(*arrs)
    if xp is np:
        return tuple(float(v) for v in values)
    host = to_numpy(xp.stack([xp.asarray(v, dtype=xp.float64).reshape(()) for v in arrs]))
    it = iter(host.tolist())
    return tuple(float(v) if isinstance(v, (int, float)) else next(it) for v in values)


def _norm(tree: Tree, xp) -> float:
    return math.sqrt(read(_sq(tree, xp))[0])


def prox_grad_residual(x: Tree, grad: Tree, prox: Callable[[Tree, float], Tree], L: float) -> float:
    """:math:`\\|x - T(x)\\| / \\max(1, \\|x\\|)` with :math:`T(x) = \\mathrm{prox}_{g/L}(x - \\nabla f(x)/L)`
    (one host read)."""
    return drive(prox_grad_residual_steps(x, grad, prox, L))


def prox_grad_residual_steps(x: Tree, grad: Tree, prox: Callable[[Tree, float], Tree], L: float):
    """:func:`prox_grad_residual` as a generator of its two squared norms (see :func:`drive`)."""
    xp, _ = get_namespace(*[a for a in x if a is not None])
    y = tuple(None if a is None else a - g / L for a, g in zip(x, grad))
    tx = prox(y, 1.0 / L)
    d2, x2 = yield (_sq(tuple(None if a is None else a - b for a, b in zip(x, tx)), xp), _sq(x, xp))
    return math.sqrt(max(d2, 0.0)) / max(1.0, math.sqrt(max(x2, 0.0)))


def drive(steps: Any, reduce: Callable[[tuple], tuple] | None = None) -> Any:
    r"""Run a solver written as a generator of the scalars it reads (``fista_steps``,
    ``prox_grad_residual_steps``, :meth:`XStep.solve_fast_steps`) and return what it returns.

    Such a generator yields a tuple of 0-d arrays (sums over the entries of its iterate: squared
    norms, inner products) whenever it needs their host values, and is sent back a tuple of floats.
    ``reduce`` turns the yielded tuple into those floats; the default is :func:`read` (one host
    read), which is exactly the single-process solver. A data-parallel caller whose iterate is
    split by rows across processes runs one generator per row block in lockstep and sends each the
    sums over all blocks (:mod:`cvx_fenchel.dataparallel`), so every stopping and restart decision,
    and so every iterate, is the one the whole-batch solver would take."""
    reduce = reduce or (lambda request: read(*request))
    try:
        request = next(steps)
        while True:
            request = steps.send(reduce(request))
    except StopIteration as stop:
        return stop.value


class _Momentum:
    r"""FISTA's momentum :math:`\beta_k = (t_k - 1)/t_{k+1}` with the gradient restart of
    O'Donoghue and Candes (2015) (:math:`\beta = 0`, :math:`t = 1` when the restart inner product
    is positive). On NumPy the test is read on the host; on a device namespace ``t`` and ``beta``
    stay 0-d device arrays and the restart is an ``xp.where`` (no host synchronisation)."""

    def __init__(self, xp, dtype, restart: bool):
        self.xp, self.dtype, self.restart, self.host = xp, dtype, restart, xp is np
        self.t = 1.0 if self.host else xp.asarray(1.0, dtype=xp.float64)

    def beta(self, dot: Any) -> Any:
        """The extrapolation weight for this step, given the restart inner product ``dot``."""
        xp, t = self.xp, self.t
        if self.host:
            if self.restart and float(dot) > 0:
                self.t = 1.0
                return 0.0
            t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
            self.t = t_new
            return (t - 1) / t_new
        t_new = 0.5 * (1 + xp.sqrt(1 + 4 * t * t))
        beta = (t - 1) / t_new
        if self.restart:
            rs = dot > 0
            beta, t_new = xp.where(rs, 0.0, beta), xp.where(rs, 1.0, t_new)
        self.t = t_new
        return beta.astype(self.dtype)


def fista(grad_f: Callable[[Tree], Tree], prox: Callable[[Tree, float], Tree], x0: Tree, L: float, *,
          tol: float, max_iter: int, restart: bool = True, name: str = "problem",
          warn: bool = True) -> tuple[Tree, int, bool, float]:
    r"""Accelerated proximal gradient (FISTA) with gradient-based adaptive restart.

    Minimises :math:`f(x) + g(x)` for convex :math:`f` with :math:`L`-Lipschitz
    gradient and convex :math:`g` with an easy proximal map
    (:math:`\mathrm{prox}(v, s) = \arg\min_x s\,g(x) + \tfrac12\|x - v\|^2`).
    Beck and Teboulle (2009); restart of O'Donoghue and Candes (2015): the
    momentum is reset whenever :math:`\langle y - x_{k+1}, x_{k+1} - x_k\rangle > 0`.

    Stopping: the step residual :math:`\|y - x_{k+1}\|/\max(1, \|x_{k+1}\|) \le` ``tol`` is read
    every :func:`~cvx_fenchel.backend.check_interval` iterations (every iteration on NumPy), and
    then confirmed by the residual :func:`prox_grad_residual` at :math:`x_{k+1}` itself.
    The iteration is :func:`fista_steps` run by :func:`drive`.

    Returns
    -------
    (x, n_iter, converged, residual)
    """
    return drive(fista_steps(grad_f, prox, x0, L, tol=tol, max_iter=max_iter, restart=restart, name=name,
                             warn=warn))


def _axpy_into(e: Any, beta: Any, a: Any) -> Any:
    """``a + beta * e`` into ``e`` (the caller's own): the same value bit for bit, no temporary."""
    e *= beta
    e += a
    return e


def _step_into(y: Tree, g: Tree, step: float, owned: bool) -> Tree:
    """``y - step * g``, into ``g`` when the caller owns it (the same value bit for bit)."""
    if not owned:
        return tuple(None if a is None else a - step * d for a, d in zip(y, g))
    for a, d in zip(y, g):
        if a is not None:
            d *= step
            get_namespace(d)[0].subtract(a, d, out=d)
    return tuple(None if a is None else d for a, d in zip(y, g))


def fista_steps(grad_f: Callable[[Tree], Tree], prox: Callable[[Tree, float], Tree], x0: Tree, L: float, *,
                tol: float, max_iter: int, restart: bool = True, name: str = "problem", warn: bool = True,
                owned_grad: bool = False):
    """:func:`fista` as a generator of the scalars it reads (see :func:`drive`): per tested
    iteration ``(||y - x_new||^2, ||x_new||^2)`` and, where the restart is decided on the host
    (NumPy), the restart inner product with them; then the two squared norms of
    :func:`prox_grad_residual`. Returns ``(x, n_iter, converged, residual)``.

    ``owned_grad``: ``grad_f`` returns new arrays that nothing else holds (an X-step's gradient),
    so the step ``y - g/L`` is formed in them (no temporary the size of the iterate)."""
    if not (L > 0 and math.isfinite(L)):
        raise InputError(f"{name}: Lipschitz constant must be positive and finite, got {L}")
    xs = [a for a in x0 if a is not None]
    xp, _ = get_namespace(*xs)
    every = check_interval(xp)
    mom = _Momentum(xp, xs[0].dtype, restart)
    step = 1.0 / L
    x = y = x0
    for k in range(1, max_iter + 1):
        g = grad_f(y)
        x_new = prox(_step_into(y, g, step, owned_grad), step)
        # y - x_new and x_new - x, formed once for the stopping test, the restart test and the step
        dy = tuple(None if a is None else a - b for a, b in zip(y, x_new))
        dx = tuple(None if a is None else a - b for a, b in zip(x_new, x))
        dot = _dot(dy, dx, xp) if restart else None
        host_dot = restart and mom.host  # the restart test is read on the host: with the others
        if k % every == 0:
            if host_dot:
                dy2, xn2, dot = yield (_sq(dy, xp), _sq(x_new, xp), dot)
            else:
                dy2, xn2 = yield (_sq(dy, xp), _sq(x_new, xp))
            if math.sqrt(max(dy2, 0.0)) <= tol * max(1.0, math.sqrt(max(xn2, 0.0))):
                residual = yield from prox_grad_residual_steps(x_new, grad_f(x_new), prox, L)
                if residual <= tol:
                    return x_new, k, True, residual
        elif host_dot:
            (dot,) = yield (dot,)
        beta = mom.beta(dot)
        y = tuple(None if a is None else _axpy_into(e, beta, a) for a, e in zip(x_new, dx))  # x_new + beta dx
        x = x_new
    residual = yield from prox_grad_residual_steps(x, grad_f(x), prox, L)
    converged = residual <= tol
    if not converged and warn:
        warnings.warn(f"{name}: FISTA stopped at the iteration cap ({max_iter}) with residual "
                      f"{residual:.3g} > tol {tol:.3g}", ConvergenceWarning, stacklevel=5)
    return x, max_iter, converged, residual


def fista_metric(grad_f: Callable[[Tree], Tree], solve_P: Callable[[Tree], Tree], x0: Tree, *,
                 tol: float, max_iter: int, restart: bool = True,
                 norm_sq_x: Callable[[Tree], Any] | None = None,
                 lipschitz: float | None = None) -> tuple[Tree, int, bool]:
    r"""Accelerated gradient in the metric of a fixed matrix :math:`P \succeq \nabla^2 f`.

    For smooth convex :math:`f` whose Hessian is bounded by :math:`P` everywhere,
    :math:`q_y(x) = f(y) + \langle\nabla f(y), x - y\rangle + \tfrac12\|x - y\|_P^2` majorises
    :math:`f`, and its minimiser :math:`y - P^{-1}\nabla f(y)` is the step: FISTA with
    Lipschitz constant 1 in the :math:`P`-norm (majorise-minimise with momentum and gradient
    restart). Unconstrained. ``solve_P(g)`` returns :math:`P^{-1} g` for a gradient tree.

    Stops when the step :math:`\|P^{-1}\nabla f(y)\| \le` ``tol`` :math:`\max(1, \|x\|)`.
    Because :math:`\|P\| \le L` (the Euclidean Lipschitz constant used by the residual of
    :func:`prox_grad_residual`), :math:`\|\nabla f\|/L \le \|P^{-1}\nabla f\|`, so the caller's
    residual check at the returned point is implied up to the change between ``y`` and ``x``;
    callers report that residual. ``norm_sq_x`` (default: the squared Euclidean norm of the tree,
    as a 0-d array) measures ``||x||^2`` in that test, for callers that iterate on coordinates of
    an affine parametrisation ``x = x_bar + Psi c`` with orthonormal ``Psi`` (steps keep their
    norm; points do not).

    With ``lipschitz`` (the Euclidean :math:`L`), it also stops at ``y`` when
    :math:`\|\nabla f(y)\|/L \le` ``tol`` :math:`\max(1, \|y\|)`, the callers' residual test
    itself: when ``P`` is nearly singular (``rho = gamma = 0`` and rank-deficient features) the
    step test alone can fail for ever, since :math:`P^{-1}` blows rounding errors in the null
    space of the data up into steps along directions the objective does not see.

    The tests are read every :func:`~cvx_fenchel.backend.check_interval` iterations (every
    iteration on NumPy; one host read for all of them); restarts are decided on the device.

    Returns
    -------
    (x, n_iter, step_converged)
    """
    xs = [a for a in x0 if a is not None]
    xp, _ = get_namespace(*xs)
    every = check_interval(xp)
    nsq = norm_sq_x or (lambda v: _sq(v, xp))
    mom = _Momentum(xp, xs[0].dtype, restart)
    x = y = x0
    for k in range(1, max_iter + 1):
        g = grad_f(y)
        d = solve_P(g)
        x_new = tuple(a - e for a, e in zip(y, d))
        if k % every == 0:
            if lipschitz is not None:
                g2, y2, d2, xn2 = read(_sq(g, xp), nsq(y), _sq(d, xp), nsq(x_new))
                if math.sqrt(max(g2, 0.0)) / lipschitz <= tol * max(1.0, math.sqrt(max(y2, 0.0))):
                    return y, k, True
            else:
                d2, xn2 = read(_sq(d, xp), nsq(x_new))
            if math.sqrt(max(d2, 0.0)) <= tol * max(1.0, math.sqrt(max(xn2, 0.0))):
                return x_new, k, True
        dx = tuple(a - b for a, b in zip(x_new, x))
        beta = mom.beta(_dot(d, dx, xp) if restart else None)
        y = tuple(a + beta * e for a, e in zip(x_new, dx))
        x = x_new
    return x, max_iter, False


def _blocks(a: Any, k: int) -> Any:
    """Sums of ``a`` over all entries of each of ``k`` blocks: the last axis (an output channel)
    when ``k > 1`` (a flattened NHWC array keeps the channel fastest, so ``reshape(-1, k)`` groups
    it), everything when ``k == 1``."""
    return a.reshape(-1, k).sum(axis=0)


def _tree_blocks(a: Tree, b: Tree, k: int) -> Any:
    """Per-block inner products of two trees (:func:`~cvx_fenchel.backend.block_dot`)."""
    return sum(block_dot(u, v, k) for u, v in zip(a, b))


def _select(mask: Any, a: Any, b: Any, k: int, on_host: bool) -> Any:
    """Block ``j`` of ``a`` where ``mask[j]``, else of ``b``. On the host the all-or-nothing
    cases (nearly every call) return an input as it is: a blockwise ``where`` costs ten
    elementwise passes on NumPy (branch mispredictions on the interleaved channels)."""
    if on_host:
        if not mask.any():
            return b
        if mask.all():
            return a
    xp, _ = get_namespace(a, b)
    return xp.where(mask, a.reshape(-1, k), b.reshape(-1, k)).reshape(a.shape)


def _scale(a: Any, t: Any, k: int) -> Any:
    """``a`` with block ``j`` multiplied by ``t[j]``."""
    return (a.reshape(-1, k) * t).reshape(a.shape)


#: :func:`pcg_metric` gives up after this many iterations without a fall of ``||g||^2`` below
#: ``PCG_STALL_FALL`` times its best value (the gradient's rounding floor; see its docstring)
PCG_STALL_ITERS = 500
PCG_STALL_FALL = 0.99


def pcg_metric(grad_at: Callable[[Tree, Any], Tree], image: Callable[[Tree], Any],
               solve_P: Callable[[Tree], Tree], dPd: Callable[[Tree, Any], Any], data: Any,
               x0: Tree, U0: Any, *, k: int, curvature: float, tol: float, max_iter: int,
               lipschitz: float, norm_sq_x: Callable[[Tree], Any] | None = None,
               value_at: Callable[[Tree, Any], Any] | None = None) -> tuple[Tree, int, bool]:
    r"""Preconditioned nonlinear conjugate gradient with an exact line search per block.

    Minimises :math:`f(x) = \mathrm{data}(U(x)) + R(x)` where :math:`U` is affine
    (:math:`U(x + td) = U(x) + t\,\mathrm{image}(d)`), ``data`` is a term of :mod:`.terms` (``grad``,
    ``curv_dir``, ``value_elems``) and :math:`R` is quadratic with Hessian ``curvature`` :math:`I`
    (a W-step's ridge); ``grad_at(x, G)`` is :math:`\nabla f(x)` given :math:`G = \nabla\mathrm{data}(U(x))`.
    When ``data`` is a sum over the output channels' entries (``k`` channels, each depending on its
    own weights only: a W-step of a divergence term), :math:`f` is a sum of ``k`` independent
    problems and every scalar below (step, :math:`\beta`, restart) is taken per channel; otherwise
    ``k = 1``.

    With the preconditioned gradient :math:`z = P^{-1}g` (``P`` majorises the Hessian, as in
    :func:`fista_metric`), directions are :math:`d = -z + \beta d_-` with Polak-Ribiere+
    :math:`\beta = \max(0, \langle z, g - g_-\rangle / \langle z_-, g_-\rangle)` (``d = -z`` where
    that is not a descent direction), and the step approximately minimises
    :math:`\varphi(t) = f(x + td)`: from the majorise-minimise step
    :math:`t_0 = -\langle g, d\rangle / d^\top P d` (which lowers :math:`f` at least as much as a
    step of :func:`fista_metric` would), one Newton step on
    :math:`\varphi'(t) = \langle\nabla\mathrm{data}(U + tW_d) - \nabla\mathrm{data}(U), W_d\rangle +
    \langle g, d\rangle + t\,\mathrm{curvature}\|d\|^2` (with :math:`\varphi''` from
    ``data.curv_dir``), kept where it is positive and lowers :math:`\varphi` below
    :math:`\varphi(t_0)` (on the MNIST hidden W-step a second Newton step changes nothing; keeping
    the Newton step only where :math:`\varphi'` keeps its sign, which needs no values, rejects too
    many good steps: 9e-5 against 2e-8 relative gap after 30 iterations).
    Each iteration is one ``image``, one gradient from the updated ``U`` and one ``solve_P``;
    all of it stays on the device (no host read) except the stopping test, read every
    :func:`~cvx_fenchel.backend.check_interval` iterations. The per-block sums are single
    ``einsum`` passes (:func:`~cvx_fenchel.backend.block_dot`); where the data term offers them,
    ``curv_blocks(U, D, k)`` gives :math:`\varphi''`'s data part and ``value_diff_blocks(U1, U0, k)``
    the change of the data term between the two trial points from entrywise differences (a
    Fenchel-Young divergence: :math:`F^*(u_1) - F^*(u_0) - v(u_1 - u_0)`), else ``curv_dir`` and
    two ``value_elems`` are summed.

    Stops at ``x`` as soon as the caller's convergence certificate holds: the residual
    :math:`\|\nabla f(x)\| / L \le` ``tol`` :math:`\max(1, \|x\|)` (``L = lipschitz``) and, when
    ``curvature > 0`` (then :math:`f` is ``curvature``-strongly convex), with ``value_at(x, U)``
    giving :math:`f(x)`, the suboptimality bound
    :math:`\|\nabla f(x)\|^2 / (2\,\mathrm{curvature}) \le` ``tol`` :math:`\max(1, |f(x)|)`.

    Stops with ``step_converged=False`` after :data:`PCG_STALL_ITERS` iterations in which
    :math:`\|\nabla f\|^2` did not fall below :data:`PCG_STALL_FALL` times its best value so far:
    there the gradient has reached its rounding floor (e.g. a ridge of 1e-4 against features scaled
    by 1e2, where :math:`\|g\|^2/(2\rho)` cannot drop below the tolerance in the working
    precision) and further iterations change nothing; without this test such a solve ran to
    ``max_iter`` (100,000 iterations, 16 s on the CPU, minutes on a GPU). The trainer's caps
    (30/50) are far below the window, so it never acts there.

    Returns
    -------
    (x, n_iter, step_converged)
    """
    xs = [a for a in x0 if a is not None]
    xp, _ = get_namespace(*xs)
    dt = xs[0].dtype
    every = check_interval(xp)
    nsq = norm_sq_x or (lambda v: _sq(v, xp))
    tiny = float(np.finfo(dt).tiny)
    x, U = x0, U0
    gU = data.grad(U)
    g = grad_at(x, gU)
    z = solve_P(g)
    d = tuple(-e for e in z)
    first = True
    cert = curvature > 0 and value_at is not None
    on_host = xp is np
    # f only falls (monotone line searches), so |f(x)| <= f_start when f >= 0 (a divergence or a
    # loss plus a ridge): on the host the objective is evaluated only once the bound with f_start
    # holds (a necessary condition); on a device it is read with the other scalars
    f_start = read(value_at(x, U))[0] if cert and on_host else math.inf
    if hasattr(data, "curv_blocks"):
        def curv_blocks(Ut, Wd):
            return data.curv_blocks(Ut, Wd, k)
    else:
        def curv_blocks(Ut, Wd):
            return _blocks(data.curv_dir(Ut, Wd), k)

    def value_diff(U1t, U0t):  # the data term at U1t minus at U0t, per block
        v = data.value_diff_blocks(U1t, U0t, k) if hasattr(data, "value_diff_blocks") else None
        return v if v is not None else _blocks(data.value_elems(U1t), k) - _blocks(data.value_elems(U0t), k)
    best_g2, best_it = math.inf, 0  # the stall test: the last 1% fall of ||g||^2
    for it in range(1, max_iter + 1):
        if it % every == 0:  # (every iteration on NumPy, the start included)
            fx = value_at(x, U) if cert and not on_host else 0.0
            g2, x2, fx = read(_sq(g, xp), nsq(x), fx)
            g2 = max(g2, 0.0)
            if g2 < PCG_STALL_FALL * best_g2:
                best_g2, best_it = g2, it
            elif it - best_it >= PCG_STALL_ITERS:  # at the gradient's rounding floor: give up
                return x, it - 1, False
            if math.sqrt(g2) / lipschitz <= tol * max(1.0, math.sqrt(max(x2, 0.0))):
                gap = g2 / (2.0 * curvature) if cert else 0.0
                # on the host, f(x) is read only when the bound could hold (f_start >= f >= 0)
                if cert and on_host and (f_start < 0 or gap <= tol * max(1.0, f_start)):
                    fx = read(value_at(x, U))[0]
                if gap <= tol * max(1.0, abs(fx)):
                    return x, it - 1, True
        gd = _tree_blocks(g, d, k)
        if not first:  # not a descent direction (an inexact line search): steepest descent there
            bad = gd >= 0
            if not on_host or bool(bad.any()):
                d = tuple(_select(bad, -e, a, k, on_host) for a, e in zip(d, z))
                gd = _tree_blocks(g, d, k)
        Wd = image(d)
        dd = _tree_blocks(d, d, k)
        t0 = (-gd / xp.maximum(dPd(d, Wd), tiny)).astype(dt)
        slope = gd - block_dot(gU, Wd, k)  # <grad R(x), d> per block
        U0t = U + _scale(Wd, t0, k)
        G0 = data.grad(U0t)
        d1 = block_dot(G0 - gU, Wd, k) + gd + curvature * t0 * dd  # phi'(t0)
        d2 = curv_blocks(U0t, Wd) + curvature * dd
        t1 = (t0 - d1 / xp.maximum(d2, tiny)).astype(dt)
        U1t = U + _scale(Wd, t1, k)
        # phi(t1) - phi(t0) per block: the data term's change plus the ridge's (its slope and curvature)
        dphi = value_diff(U1t, U0t) + (t1 - t0) * slope + 0.5 * curvature * (t1 * t1 - t0 * t0) * dd
        keep = (dphi <= 0) & (t1 > 0)
        t = xp.where(keep, t1, t0).astype(dt)
        x = tuple(a + _scale(e, t, k) for a, e in zip(x, d))
        U = _select(keep, U1t, U0t, k, on_host)
        # the data gradient at U: G0 where t0 was kept, else computed once (not at U1t and then selected)
        gU = G0 if U is U0t else data.grad(U)
        g_new = grad_at(x, gU)
        z_new = solve_P(g_new)
        zg = _tree_blocks(z, g, k)
        beta = _tree_blocks(z_new, tuple(a - b for a, b in zip(g_new, g)), k) / xp.maximum(zg, tiny)
        beta = xp.maximum(beta, 0).astype(dt)
        d = tuple(-a + _scale(e, beta, k) for a, e in zip(z_new, d))
        g, z, first = g_new, z_new, False
    return x, max_iter, False


def cholesky(G: Any) -> Any:
    r"""Lower Cholesky factor :math:`L` of a symmetric positive definite ``G`` (:math:`G = LL^\top`).

    NumPy and CuPy alike: raises :class:`numpy.linalg.LinAlgError` when ``G`` is not numerically
    positive definite (CuPy's ``cholesky`` returns NaN there instead of raising).
    """
    xp, _ = get_namespace(G)
    L = xp.linalg.cholesky(G)
    if not bool(xp.all(xp.isfinite(xp.diagonal(L)))):
        raise np.linalg.LinAlgError("matrix is not numerically positive definite")
    return L


def cholesky_solve(L: Any, R: Any) -> Any:
    """Solve ``(L L^T) X = R`` given the lower Cholesky factor ``L`` (n, n) and ``R`` (n, k).

    Two triangular solves (``scipy.linalg.solve_triangular`` or its ``cupyx`` twin: cupyx.scipy
    has no ``cho_solve``); on NumPy/OpenBLAS also faster than LAPACK's ``potrs`` for the W-step
    preconditioner's shapes (785 x 300).
    """
    _, xsp = get_namespace(L, R)
    Y = xsp.linalg.solve_triangular(L, R, lower=True, check_finite=False)
    return xsp.linalg.solve_triangular(L, Y, lower=True, trans=1, check_finite=False)


def ridge_solve(A: Any, T: Any, *, scale: float, reg: Any, reg0: Any = None, theta0: Any = None) -> Any:
    r"""Closed-form ridge with a proximal term, by Cholesky.

    Solves :math:`\min_\theta \tfrac{s}{2}\|A\theta - T\|_F^2 + \sum_i d_i\|\theta_i\|^2
    + \sum_i e_i \|\theta_i - \theta^0_i\|^2` (rows :math:`\theta_i` of :math:`\theta`),
    i.e. :math:`(sA^\top A + 2\,\mathrm{diag}(d + e))\theta = sA^\top T + 2\,\mathrm{diag}(e)\theta^0`.

    Parameters
    ----------
    A : (m, p) design matrix (for a dense layer: ``[X, 1]``)
    T : (m, k) targets
    scale : float ``s > 0``
    reg : (p,) ridge weights ``d`` (>= 0)
    reg0, theta0 : (p,) proximal weights ``e`` and (p, k) centre, optional

    Falls back to a least-squares solve when the system is singular
    (``d + e`` zero and ``A`` rank deficient).
    """
    return ridge_solve_normal(A.T @ A, A.T @ T, scale=scale, reg=reg, reg0=reg0, theta0=theta0)


def ridge_solve_normal(AtA: Any, AtT: Any, *, scale: float, reg: Any, reg0: Any = None,
                       theta0: Any = None) -> Any:
    """:func:`ridge_solve` given ``A^T A`` (p, p) and ``A^T T`` (p, k) instead of ``A`` and ``T``
    (sums over the rows of ``A``: a data-parallel caller adds them over shards)."""
    xp, _ = get_namespace(AtA, AtT)
    H = scale * AtA
    rhs = scale * AtT
    diag = reg if reg0 is None else reg + reg0
    H = H + 2 * xp.diag(xp.asarray(diag, dtype=AtA.dtype))
    if reg0 is not None and theta0 is not None:
        rhs = rhs + 2 * xp.asarray(reg0, dtype=AtA.dtype)[:, None] * theta0
    try:
        theta = cholesky_solve(cholesky(H), rhs)
        if bool(xp.all(xp.isfinite(theta))):
            return theta
    except np.linalg.LinAlgError:
        pass
    return xp.linalg.lstsq(H, rhs, rcond=None)[0]
