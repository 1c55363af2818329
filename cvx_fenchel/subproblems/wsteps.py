r"""W-steps: the weights of one layer.

.. math::
    \min_{W,b}\; \mathrm{data}\big(A(X; W) + b\big) + \rho(\|W\|^2 + \|b\|^2) + \gamma(\|W - W^0\|^2 + \|b - b^0\|^2)

The ridge/proximal part is one :class:`~cvx_fenchel.ridge.Ridge` (value, gradient, centre, CVXPY
form); how the problem is solved is a strategy object (:mod:`.strategies`) chosen by
:func:`~.strategies.select_strategy` or passed as ``solve_fast(strategy=...)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from typing import ClassVar

import numpy as np

from ..activations import get_activation
from ..backend import check_array, check_finite, check_scalar, to_numpy
from ..cvx import solve
from ..errors import ConvergenceWarning, InputError
from ..losses import get_loss
from ..maps import Dense, LinearMap
from ..ridge import Ridge
from ..solvers import (FastResult, cholesky, cholesky_solve, default_tol, fista_metric, prox_grad_residual, read,
                       ridge_solve_normal)
from .common import check_domain, check_shape, common_arrays, inputs_trusted, result, solver_tol
from .strategies import STRATEGIES, GradientStep, Strategy, check_applies, get_strategy, select_strategy
from .terms import DivergenceTerm, LossTerm
from .xsteps import loss_tag

__all__ = ["WStep", "WHidden", "WLast"]


class WStep:
    r"""``min_{W,b} data(A(X; W) + b) + R(W, b)``; subclasses set ``data`` (:mod:`.terms`) after
    :meth:`_setup`, and may offer a closed form (:meth:`closed_form_available`, :meth:`closed_form`)."""

    name: ClassVar[str] = ""
    default_max_iter: ClassVar[int] = 20000

    def _setup(self, linear_map, X, W_shape, rho, gamma, W0, b0, target=None):
        if linear_map is None and W_shape is None and W0 is None and X.ndim == 2 and \
                target is not None and target.ndim == 2:
            W_shape = (X.shape[1], target.shape[1])  # dense map inferred from the data
        if linear_map is None:
            if W_shape is None and W0 is None:
                raise InputError(f"{self.name}: give linear_map=, W_shape= or W0= to fix the weight shape")
            shape = tuple(W_shape) if W_shape is not None else tuple(W0.shape)
            if len(shape) != 2:
                raise InputError(f"{self.name}: a dense default map needs a 2-D weight shape, got {shape}")
            linear_map = Dense(int(shape[0]), int(shape[1]))
        self.map = linear_map
        self.m = X.shape[0]
        if self.m < 1:
            raise InputError(f"{self.name}: X has no samples")
        check_shape(X, (self.m,) + tuple(self.map.in_shape), "X", self.name)
        rho, gamma = check_scalar(rho, "rho"), check_scalar(gamma, "gamma")
        if W0 is None:
            W0 = self.xp.zeros(self.map.weight_shape, dtype=self.dtype)
        if b0 is None:
            b0 = self.xp.zeros(self.map.bias_shape, dtype=self.dtype)
        check_shape(W0, self.map.weight_shape, "W0", self.name)
        check_shape(b0, self.map.bias_shape, "b0", self.name)
        self.X = X
        self.ridge = Ridge(rho, gamma, W0, b0)
        self._L = None
        self._op = None
        self._states: dict = {}

    # the ridge term's parameters, by their usual names
    rho = property(lambda self: self.ridge.rho, doc="ridge weight :math:`\\rho`")
    gamma = property(lambda self: self.ridge.gamma, doc="proximal weight :math:`\\gamma`")
    W0 = property(lambda self: self.ridge.W0, doc="proximal centre :math:`W^0`")
    b0 = property(lambda self: self.ridge.b0, doc="proximal centre :math:`b^0`")

    @property
    def op(self):
        """The operator ``(W, b) -> A(X; W) + b`` of this problem's fixed ``X``
        (:meth:`LinearMap.fixed_input`, built on first use): what depends on ``X`` alone (pooled
        input, patch matrix, Gram matrix, norm) is computed once per subproblem, not per iteration.
        Like :attr:`lipschitz` and the strategy states it belongs to this subproblem's ``X``, which
        is fixed at construction (build a new subproblem for new data)."""
        if self._op is None:
            self._op = self.map.fixed_input(self.X)
        return self._op

    def _U(self, x):
        return self.op.apply(x[0], x[1])

    def _data_value(self, x, *, array: bool = False):
        """``data(A(X; W) + b)`` at ``x = (W, b)`` (a 0-d array with ``array=True``): with
        :meth:`_grad`, all that depends on the samples (a data-parallel twin sums it over shards)."""
        return self.data.value(self._U(x), array=array)

    def _grad(self, x):
        W, b = x
        dW, db = self.op.adjoint(self.data.grad(self._U(x)))
        return self.ridge.add_grad(dW, db, W, b)

    @staticmethod
    def _prox(x, s):
        return x

    @property
    def lipschitz(self) -> float:
        r""":math:`L_\text{data}\|[A_X, 1]\|^2 + 2(\rho + \gamma)` (from the sample-space eigenvalues
        when that strategy was prepared first, else from the Gram matrix :attr:`op` keeps for the
        Gram strategy, else by the map's own formula; once per subproblem)."""
        if self._L is None:
            L = self.data.lipschitz * float(self.op.lipschitz(include_bias=True))
            self._L = max(L + self.ridge.curvature, 1e-12)
        return self._L

    def _check_x(self, x, what="x"):
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise InputError(f"{self.name}: {what} must be a pair (W, b)")
        W = check_array(x[0], f"W of {self.name}", shape=self.map.weight_shape, xp=self.xp, dtype=self.dtype,
                        finite=False)
        b = check_array(x[1], f"b of {self.name}", shape=self.map.bias_shape, xp=self.xp, dtype=self.dtype,
                        finite=False)
        if not inputs_trusted():
            check_finite({f"W of {self.name}": W, f"b of {self.name}": b})
        return W, b

    # public API -------------------------------------------------------------------------------
    def objective(self, x) -> float:
        """Objective at ``x = (W, b)``."""
        W, b = self._check_x(x)
        return self._data_value((W, b)) + self.ridge.value(W, b)

    def grad(self, x):
        r"""Gradient at ``x = (W, b)``: :math:`(A_X^\top \nabla\mathrm{data}, \mathbf 1^\top\nabla\mathrm{data}) + \nabla R`."""
        return self._grad(self._check_x(x))

    def residual(self, x) -> float:
        """Scale-free optimality residual ``||x - T(x)|| / max(1, ||x||)`` (``T``: a gradient step 1/L)."""
        x = self._check_x(x)
        return prox_grad_residual(x, self._grad(x), self._prox, self.lipschitz)

    def start(self):
        """Default warm start: ``(W0, b0)``."""
        return (self.W0, self.b0)

    def closed_form_available(self) -> bool:
        """Whether :meth:`closed_form` applies (a quadratic data term and a dense map)."""
        return False

    def closed_form(self):  # pragma: no cover - only called when closed_form_available()
        raise InputError(f"{self.name}: no closed form for this problem")

    def _dense_ridge(self, T, *, scale: float):
        r"""``(W, b)`` minimising :math:`\tfrac s2\|[X\,1]\theta - T\|^2 + R(\theta)` (:func:`ridge_solve`)."""
        X = self.X.reshape(self.X.shape[0], -1)
        A = self.xp.concatenate([X, self.xp.ones((X.shape[0], 1), dtype=X.dtype)], axis=1)
        return self._ridge_from_normal(A.T @ A, A.T @ T, scale=scale)

    def _ridge_from_normal(self, AtA, AtT, *, scale: float):
        """:meth:`_dense_ridge` from ``A^T A`` and ``A^T T`` (``A = [X 1]``): sums over samples, so
        a data-parallel twin adds them over shards (:func:`~cvx_fenchel.solvers.ridge_solve_normal`)."""
        xp = self.xp
        p = AtA.shape[0]
        theta0 = xp.concatenate([self.W0, self.b0[None, :]], axis=0)
        theta = ridge_solve_normal(AtA, AtT, scale=scale, reg=xp.full((p,), self.rho, dtype=AtA.dtype),
                                   reg0=xp.full((p,), self.gamma, dtype=AtA.dtype), theta0=theta0)
        return theta[:-1], theta[-1]

    def strategy_state(self, strategy: Strategy):
        """The immutable precomputed state of ``strategy`` for this problem (built once by
        ``strategy.prepare``; None when the strategy does not apply)."""
        if strategy not in self._states:  # strategies are frozen dataclasses: equal ones share a state
            state = strategy.prepare(self)
            if self._L is None and getattr(state, "lipschitz", None) is not None:
                self._L = state.lipschitz  # ||[X 1]||^2 = max eigenvalue: no second eigenvalue solve
            self._states[strategy] = state
        return self._states[strategy]

    @property
    def fast_method(self) -> str:
        """Name of the strategy :meth:`solve_fast` selects: ``closed-form``, ``sample-space``, ``gram``
        or ``fista``."""
        return select_strategy(self).name

    def solve_fast(self, x0=None, *, tol: float | None = None, max_iter: int | None = None, warn: bool = True,
                   strategy=None, precondition: bool = True, sample_space: bool = True) -> FastResult:
        """Solve by ``strategy`` (a :class:`~.strategies.Strategy` or its name), default
        :func:`~.strategies.select_strategy` (``precondition=False`` / ``sample_space=False`` leave the
        Gram-metric / sample-space strategies out): closed form where one exists, else Gram-metric
        steps in sample space or in weight space, else FISTA. From ``x0`` (default :meth:`start`);
        ``FastResult.method`` names the strategy. The reported residual is always the Euclidean
        scale-free one (:meth:`residual`); ``converged`` is backed as :meth:`_certify` says (without a
        ridge, a float32 solve whose residual test passed is refined in float64 first)."""
        t0 = time.perf_counter()
        tol = solver_tol(tol, self.dtype)
        chosen = strategy is not None
        if chosen:
            strategy = check_applies(get_strategy(strategy), self)
        else:
            strategy = select_strategy(self, precondition=precondition, sample_space=sample_space)
        max_iter = self.default_max_iter if max_iter is None else int(max_iter)
        x0 = self.start() if x0 is None else self._check_x(x0, "x0")
        r = strategy.solve(self, x0, tol=tol, max_iter=max_iter, warn=warn)
        if strategy.name != "gradient-step":
            if self.ridge.curvature <= 0:
                again = strategy if chosen else functools.partial(select_strategy, precondition=precondition,
                                                                  sample_space=sample_space)
                r = self._certify_unregularised(r, tol, again, max_iter)
                if warn and not r.converged and r.note.startswith("no certificate"):
                    warnings.warn(f"{self.name}: {r.note}", ConvergenceWarning, stacklevel=2)
            else:
                r = self._certify(r, tol)
                if warn and not r.converged and r.note.startswith("certified gap"):
                    warnings.warn(f"{self.name}: the residual met tol but {r.note}", ConvergenceWarning,
                                  stacklevel=2)
        return dataclasses.replace(r, seconds=time.perf_counter() - t0)

    def _certify(self, r: FastResult, tol: float) -> FastResult:
        r"""Back ``converged`` by a certified bound. The objective is :math:`\mu`-strongly convex with
        :math:`\mu = 2(\rho+\gamma)` (the data term is convex), so
        :math:`f(x) - f^* \le \|\nabla f(x)\|^2 / (2\mu)`: ``converged`` needs this bound, relative
        to :math:`\max(1, |f(x)|)`, to be at most ``tol`` besides the residual test. A small
        residual alone is not enough when :math:`L/\mu` is large (ill-conditioned features).
        Without a ridge (:math:`\mu = 0`) see :meth:`_certify_unregularised`."""
        mu = self.ridge.curvature
        if mu <= 0:  # pragma: no cover - solve_fast routes mu = 0 to _certify_unregularised
            return r
        # the residual is ||g|| / L / max(1, ||x||) (a plain gradient step): no second gradient
        xp = self.xp
        x_norm = math.sqrt(read(sum(xp.vdot(a.ravel(), a.ravel()) for a in r.x))[0])  # one host read
        g_norm = float(r.residual) * self.lipschitz * max(1.0, x_norm)
        gap = g_norm * g_norm / (2.0 * mu) / max(1.0, abs(float(r.objective)))
        ok = bool(r.converged and gap <= tol)
        note = "" if ok else (f"certified gap bound {gap:.3g} > tol {tol:.3g} (||grad f||^2 / (2 mu), "
                              f"mu = 2(rho + gamma) = {mu:.3g})" if r.converged else r.note)
        return dataclasses.replace(r, converged=ok, gap_bound=gap, note=note)

    def _certify_unregularised(self, r: FastResult, tol: float, strategy, max_iter: int) -> FastResult:
        r"""``converged`` without a ridge (:math:`\rho = \gamma = 0`: no strong convexity, no upper
        bound on the gap from the gradient).

        The Euclidean residual :math:`\|\nabla f\|/(L\max(1,\|x\|))` is then a weak test: with
        ill-conditioned features or data (ReLU units switched off, features scaled by 1e4) it
        passes far from the optimum (float32 W-steps stopped with objectives 2e-2 relative, and
        22 absolute at :math:`\lambda = 10^3`, above the optimum). So

        * a float32 (any non-float64) result whose residual test passed is refined in float64 from
          that point, to ``min(tol, 1e-9)``, then rounded to the working dtype: the float32-achievable
          accuracy; ``method`` gets ``+float64``. ``strategy`` is the caller's strategy when it
          applies to the float64 twin, else a function choosing one (:func:`select_strategy` with
          the caller's options: in float64 the Gram factorisation succeeds where float32's failed);
        * ``converged`` also needs :meth:`gap_lower_bound` (float64) at most that tolerance: one
          majorise-minimise step in the Gram metric would lower the objective by more otherwise,
          so the point is provably not optimal to that tolerance.

        Passing both is a KKT test (no certified upper bound exists without strong convexity;
        ``gap_bound`` stays nan); ``note`` says which test failed, or what backs the result."""
        if not r.converged:
            return r
        twin = self.astype(np.float64)
        x, n, method, conv, tol64, res64 = r.x, r.n_iter, r.method, True, tol, r.residual
        if twin is not self:
            tol64 = min(tol, default_tol(np.float64))
            x0 = tuple(a.astype(twin.dtype) for a in r.x)
            ss = None if isinstance(strategy, Strategy) else twin._refine_in_sample_space(x0, tol64, max_iter)
            if ss is not None:
                x, n64 = ss
                res64 = twin.residual(x)
                conv, n, method = res64 <= tol64, n + n64, f"{method}+sample-space[float64]"
            else:
                s = strategy if isinstance(strategy, Strategy) and strategy.applies(twin) else \
                    (strategy(twin) if not isinstance(strategy, Strategy) else select_strategy(twin))
                r64 = s.solve(twin, x0, tol=tol64, max_iter=max_iter, warn=False)
                x, conv, n, method = r64.x, bool(r64.converged), n + r64.n_iter, f"{method}+{s.name}[float64]"
                res64 = r64.residual
        lb = twin.gap_lower_bound(x)
        ok = conv and lb <= tol64
        if ok:
            note = (f"rho + gamma = 0: KKT test only (residual <= {tol64:.3g} and Gram-metric gap lower bound "
                    f"{lb:.3g} <= {tol64:.3g}{', in float64' if twin is not self else ''}; no certified gap bound)")
        elif not conv:
            note = (f"no certificate: rho + gamma = 0 and the float64 refinement of the {self.dtype.name} result "
                    f"ended with residual {res64:.3g} > tol {tol64:.3g} (iteration cap {max_iter})")
        else:
            note = (f"no certificate: rho + gamma = 0 and a Gram-metric step would lower the objective by at least "
                    f"{lb:.3g} (relative) > tol {tol64:.3g}: stopped early on the Euclidean residual")
        if twin is not self:
            x = tuple(a.astype(self.dtype) for a in x)
            return dataclasses.replace(result(x, self.objective(x), n, ok, self.residual(x), 0.0, method), note=note)
        return dataclasses.replace(r, converged=ok, note=note)

    def _refine_in_sample_space(self, x0, tol: float, max_iter: int):
        r"""``(x, n_iter)`` of Gram-metric steps from ``x0`` in sample space without a ridge, or None
        where that does not apply (not a dense map with fewer samples than weights per unit + 1).

        With :math:`\Phi = [F\,1]` (``m x (n+1)``), :math:`\Phi\Phi^\top = Q\Lambda Q^\top` (eigenvalues
        below ``1e-13 max`` dropped) and :math:`\Psi = \Phi^\top Q\Lambda^{-1/2}`, the steps
        :math:`-P^+\nabla f` of the Gram metric (:math:`P = L_\text{data}\Phi^\top\Phi`) keep
        :math:`\theta = \theta_0 + \Psi C`, where :math:`U = \Phi\theta_0 + Q\Lambda^{1/2}C`,
        :math:`\nabla_C = \Lambda^{1/2}Q^\top\nabla\mathrm{data}(U)` and the metric is
        :math:`L_\text{data}\Lambda` (diagonal): the iterates of the Gram strategy at the cost of
        ``m x m`` products (for a 784-300 layer at batch 100 the float64 refinement took 45 s by
        triangular solves of order 785). The sample-space strategy needs a ridge for its fixed centre;
        here the start is the centre. Called on the float64 twin."""
        mp = self.map
        F = self.op.features() if isinstance(mp, Dense) or (hasattr(mp, "_split") and isinstance(
            mp._split()[1], Dense)) else None
        k = mp.weight_shape[-1]
        if F is None or F.shape[0] > F.shape[1] + 1 or self.data.lipschitz <= 0 or tuple(mp.out_shape) != (k,):
            return None
        xp = self.xp
        Phi = xp.concatenate([F, xp.ones((F.shape[0], 1), dtype=F.dtype)], axis=1)
        lam, Q = xp.linalg.eigh(Phi @ Phi.T)
        keep = lam > 1e-13 * max(float(lam[-1]), 1.0)
        lam, Q = lam[keep], Q[:, keep]
        sq = xp.sqrt(lam)[:, None]
        metric = self.data.lipschitz * lam[:, None]
        theta0 = xp.concatenate([x0[0].reshape(-1, k), x0[1].reshape(1, k)], axis=0)
        U0 = Phi @ theta0
        psi0 = (Q.T @ U0) / sq  # Psi^T theta0
        sq0 = xp.sum(theta0 * theta0)
        data = self.data

        def grad(t):
            return (sq * (Q.T @ data.grad(U0 + Q @ (sq * t[0]))),)

        def norm_sq_x(t):  # ||theta0 + Psi C||^2 (Psi orthonormal)
            return sq0 + 2 * xp.sum(psi0 * t[0]) + xp.sum(t[0] * t[0])

        (C,), n, _ = fista_metric(grad, lambda g: (g[0] / metric,), (xp.zeros_like(psi0),), tol=tol,
                                  max_iter=max_iter, norm_sq_x=norm_sq_x)
        theta = theta0 + Phi.T @ (Q @ (C / sq))
        return (theta[:-1].reshape(mp.weight_shape), theta[-1].reshape(mp.bias_shape)), n

    def astype(self, dtype) -> WStep:
        """The same problem with its arrays in ``dtype`` (``self`` when already so; a new problem
        otherwise, e.g. the float64 twin of a float32 W-step)."""
        if np.dtype(dtype) == self.dtype:
            return self
        return self._rebuild(np.dtype(dtype))

    def _rebuild(self, dtype):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def gap_lower_bound(self, x) -> float:
        r"""A lower bound on the relative suboptimality :math:`(f(x) - f^*)/\max(1, |f(x)|)`, in float64.

        :math:`P = L_\text{data}[F\,1]^\top[F\,1] + 2(\rho+\gamma)I` (per output channel; ``F``
        the features of a dense or convolutional map, :meth:`~cvx_fenchel.maps.FixedInput.gram`)
        majorises the Hessian, so the step :math:`x - P^{-1}g` lowers :math:`f` by at least
        :math:`\tfrac12 g^\top P^{-1} g` (``g`` the gradient): :math:`f(x) - f^*` is at least that.
        It is invariant to rescaling the features (the metric follows them), unlike
        :math:`\|g\|/L`. Maps without features (or with more than ``Gram.max_dim`` of them) use
        :math:`P = LI`: :math:`\|g\|^2/(2L)`. :math:`P` gets the jitter
        :math:`10^{-12}\max\mathrm{diag}` (without a ridge ``g`` lies in its range, up to rounding)."""
        p = self.astype(np.float64)
        x = p._check_x(x)
        g = p._grad(x)
        f = p.objective(x)
        xp = p.xp
        F = p.op.features()
        if F is None or F.shape[1] + 1 > STRATEGIES["gram"].max_dim or p.data.lipschitz <= 0:
            dec = 0.5 * sum(float(xp.vdot(a.ravel(), a.ravel())) for a in g) / p.lipschitz
        else:
            k = p.map.weight_shape[-1]
            G = xp.concatenate([g[0].reshape(-1, k), g[1].reshape(1, k)], axis=0)
            P = p.data.lipschitz * p.op.gram()
            jitter = p.ridge.curvature + 1e-12 * float(xp.max(xp.diagonal(P)) + 1.0)
            try:
                D = cholesky_solve(cholesky(P + jitter * xp.eye(P.shape[0], dtype=P.dtype)), G)
                dec = 0.5 * float(xp.sum(G * D))
            except np.linalg.LinAlgError:  # not numerically definite: the Euclidean metric
                dec = 0.5 * float(xp.sum(G * G)) / p.lipschitz
        return max(dec, 0.0) / max(1.0, abs(f))

    def gradient_step(self, x, lr: float | None = None):
        """One gradient step ``x - lr * grad`` (default ``lr = 1/L``): :class:`~.strategies.GradientStep`."""
        return self.solve_fast(x, strategy=GradientStep(lr), warn=False).x

    def cvxpy_problem(self):
        """``(problem, (W, b))``: the CVXPY declaration with variables of the weight and bias shapes
        (a convolution's ``W`` as a ``(kh*kw*c_in, c_out)`` matrix, same C-order entries)."""
        import cvxpy as cp
        ws = tuple(self.map.weight_shape)
        shape2 = ws if len(ws) <= 2 else (int(np.prod(ws[:-1])), ws[-1])
        W = cp.Variable(shape2, name="W")
        b = cp.Variable(tuple(self.map.bias_shape), name="b")
        U = self.map.cvxpy_apply_weights(to_numpy(self.X), W, b)
        return cp.Problem(cp.Minimize(self.data.cvxpy(U) + self.ridge.cvxpy(W, b))), (W, b)

    def solve_cvxpy(self, solver: str = "CLARABEL", **kwargs):
        """Solve the CVXPY declaration; returns ``((W, b), result)``; SolverError unless optimal."""
        prob, (W, b) = self.cvxpy_problem()
        res = solve(prob, solver, name=self.name, **kwargs)
        return (W.value.reshape(self.map.weight_shape), np.asarray(b.value).reshape(self.map.bias_shape)), res


class WHidden(WStep):
    r"""W-step of a hidden layer.

    .. math::
        \min_{W, b}\; \lambda \sum B\big(X_{l+1}, A(X_l; W) + b\big) + \rho(\|W\|^2 + \|b\|^2)
        + \gamma(\|W - W^0\|^2 + \|b - b^0\|^2)

    Smooth (``F*`` is differentiable for every activation here) and strongly
    convex when :math:`\rho + \gamma > 0`. Its Hessian in each output channel's
    ``(w_c, b_c)`` is at most :math:`P = \lambda \sup\phi' [F\,1]^\top[F\,1] + 2(\rho+\gamma) I`
    (``F``: the inputs of a dense map, the im2col patches of a convolution), so
    :meth:`solve_fast` takes accelerated steps :math:`y - P^{-1}\nabla f(y)` (in sample space
    when there are fewer samples than weights per unit); plain FISTA (Lipschitz constant
    :math:`\lambda \sup\phi' \|[A_X, 1]\|^2 + 2(\rho + \gamma)`) otherwise.
    """

    name = "W-hidden"

    def __init__(self, X, X_next, activation="relu", *, lam: float = 1.0, rho: float = 0.0, gamma: float = 0.0,
                 W0=None, b0=None, W_shape=None, linear_map: LinearMap | None = None, dtype=None):
        act = get_activation(activation)
        lam = check_scalar(lam, "lam")
        self.xp, self.dtype, d = common_arrays({"X": X, "X_next": X_next, "W0": W0, "b0": b0}, dtype)
        self._setup(linear_map, d["X"], W_shape, rho, gamma, d["W0"], d["b0"], d["X_next"])
        check_shape(d["X_next"], (self.m,) + tuple(self.map.out_shape), "X_next", self.name)
        check_domain(act, d["X_next"], "X_next", self.name)
        self.X_next, self.activation, self.lam = d["X_next"], act, lam
        self.data = DivergenceTerm(act, self.X_next, lam)

    def _rebuild(self, dtype):
        return WHidden(self.X, self.X_next, self.activation, lam=self.lam, rho=self.rho, gamma=self.gamma,
                       W0=self.W0, b0=self.b0, linear_map=self.map, dtype=dtype)


class WLast(WStep):
    r"""W-step of the output layer.

    .. math::
        \min_{W, b}\; c\,\mathcal L\big(Y, A(X_L; W) + b\big) + \rho(\|W\|^2 + \|b\|^2)
        + \gamma(\|W - W^0\|^2 + \|b - b^0\|^2)

    A quadratic loss (MSE) with a dense map is ridge regression with a proximal term, solved in
    closed form by Cholesky; otherwise (cross-entropy: multinomial logistic regression) the
    strategies of :class:`WHidden`. ``name`` is ``W-last-<tag>`` (:func:`~.xsteps.loss_tag`).
    """

    name = "W-last"

    def __init__(self, X, Y, *, loss="cross_entropy", coef: float = 1.0, rho: float = 0.0,
                 gamma: float = 0.0, W0=None, b0=None, W_shape=None, linear_map: LinearMap | None = None,
                 dtype=None):
        self.loss_fn = get_loss(loss)
        self.loss = self.loss_fn.name
        self.name = f"W-last-{loss_tag(self.loss_fn)}"
        self.coef = check_scalar(coef, "coef")
        self.xp, self.dtype, d = common_arrays({"X": X, "Y": Y, "W0": W0, "b0": b0}, dtype)
        self._setup(linear_map, d["X"], W_shape, rho, gamma, d["W0"], d["b0"], d["Y"])
        check_shape(d["Y"], (self.m,) + tuple(self.map.out_shape), "Y", self.name)
        if not inputs_trusted():
            self.loss_fn.check_targets(d["Y"], f"{self.name}: Y")
        self.Y = d["Y"]
        self.data = LossTerm(self.loss_fn, self.Y, self.coef)

    def _rebuild(self, dtype):
        return WLast(self.X, self.Y, loss=self.loss_fn, coef=self.coef, rho=self.rho, gamma=self.gamma,
                     W0=self.W0, b0=self.b0, linear_map=self.map, dtype=dtype)

    def closed_form_available(self) -> bool:
        return bool(self.loss_fn.quadratic) and isinstance(self.map, Dense)

    def closed_form(self):
        r"""For :math:`\tfrac12\|O - Y\|^2`: ridge regression with scale ``coef`` and targets ``Y``."""
        return self._dense_ridge(self.Y, scale=self.coef)
