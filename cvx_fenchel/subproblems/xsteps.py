r"""X-steps: the lifted variable of one layer, all samples at once.

.. math::
    \min_{Z}\; \mathrm{data}\big(A(Z; W) + b\big) + \mathrm{prev}(Z)

with a smooth data term of the next layer's pre-activation (a divergence, a loss, or the 2018
model's quadratic; :mod:`.terms`) and a previous-layer term with an easy proximal map. Solved by
FISTA with restart (:func:`~cvx_fenchel.solvers.fista`), step :math:`1/L`,
:math:`L = L_\text{data}\|A\|^2`; separable over samples.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

import numpy as np

from ..activations import get_activation
from ..backend import check_array, check_scalar, get_namespace, to_numpy
from ..cvx import CvxpyResult, solve
from ..errors import InputError
from ..losses import get_loss
from ..maps import LinearMap
from ..solvers import FastResult, drive, fista_steps, prox_grad_residual, read
from .common import check_domain, check_shape, common_arrays, default_map, inputs_trusted, result, solver_tol
from .terms import DivergenceTerm, LossTerm, PrevDivergence

__all__ = ["XStep", "XHidden", "XLast", "loss_tag"]


def loss_tag(loss) -> str:
    """Short name of a loss in subproblem ids (``X-last-ce``, ``W-last-mse``): its ``short`` tag,
    else its name."""
    loss = get_loss(loss)
    return loss.short or loss.name


class _DuckOperator:
    """The X-step operator of a map object that is not a :class:`LinearMap` (only ``apply``,
    ``adjoint_input``, ``lipschitz_input``)."""

    def __init__(self, lmap, W, b):
        self.map, self.W, self.b, self._lip = lmap, W, b, None

    def apply(self, Z):
        return self.map.apply(Z, self.W, self.b)

    def adjoint(self, G):
        return self.map.adjoint_input(G, self.W)

    def lipschitz(self) -> float:
        if self._lip is None:
            self._lip = float(self.map.lipschitz_input(self.W))
        return self._lip


class XStep:
    """``min_Z data(A(Z; W) + b) + prev(Z)``: FISTA with the prox of ``prev``. Subclasses set
    ``data`` and ``prev`` (:mod:`.terms`) after :meth:`_setup`."""

    name: ClassVar[str] = ""
    default_max_iter: ClassVar[int] = 20000

    def _setup(self, linear_map, W, b, U_prev):
        self.map = linear_map if linear_map is not None else default_map(W, self.name)
        if not isinstance(self.map, LinearMap) and not hasattr(self.map, "apply"):
            raise InputError(f"{self.name}: linear_map must be a cvx_fenchel.maps map")
        m = U_prev.shape[0]
        if m < 1:
            raise InputError(f"{self.name}: U_prev has no samples")
        check_shape(U_prev, (m,) + tuple(self.map.in_shape), "U_prev (pre-activation of the previous layer)",
                    self.name)
        if W is not None:
            check_shape(W, self.map.weight_shape, "W", self.name)
        if b is not None:
            check_shape(b, self.map.bias_shape, "b", self.name)
        self.W, self.b, self.m = W, b, m
        self._L = None
        self._op = None

    # the composite pieces -------------------------------------------------------------------
    @property
    def op(self):
        """The operator ``Z -> A(Z; W) + b`` of this problem's fixed weights
        (:meth:`LinearMap.fixed_weights`, built on first use): what depends on ``W`` alone (a
        convolution's banded kernel matrix, the norm) is computed once per subproblem."""
        if self._op is None:
            self._op = self.map.fixed_weights(self.W, self.b) if hasattr(self.map, "fixed_weights") \
                else _DuckOperator(self.map, self.W, self.b)
        return self._op

    def _U(self, Z):
        return self.op.apply(Z)

    def _grad(self, x):
        return (self.op.adjoint(self.data.grad(self._U(x[0]))),)

    def _prox(self, x, s):
        return (self.prev.prox(x[0], s),)

    @property
    def lipschitz(self) -> float:
        """Lipschitz constant of the smooth part's gradient: :math:`L_\\text{data} \\|A\\|^2`
        (1 when it is 0, so that the step is defined)."""
        if self._L is None:
            L = self.data.lipschitz * float(self.op.lipschitz()) if self.data.lipschitz else 0.0
            self._L = L if L > 0 else 1.0
        return self._L

    # public API -------------------------------------------------------------------------------
    #: Entries of ``Z`` at most this far outside the domain, relative to ``max(1, max|Z|)``, are
    #: rounding (a conic solver returns e.g. -1e-12 for a ReLU layer's ``Z >= 0``): clipped
    #: onto the domain before evaluating. Farther out is an error, not a silent ``inf``.
    domain_tol: ClassVar[float] = 1e-9

    def objective(self, Z) -> float:
        """Objective value at ``Z``. Entries outside the domain by at most :attr:`domain_tol`
        (relative) are clipped onto it first; a larger violation raises :class:`InputError`
        naming its size."""
        xp, _ = get_namespace(Z)
        Z = xp.asarray(Z, dtype=self.dtype)
        lo, hi = self.prev.bounds()
        # the domain violation, the scale and the value at the projected point in one host read
        zero = xp.zeros((), dtype=Z.dtype)
        below = xp.max(lo - Z) if not math.isinf(lo) else zero
        above = xp.max(Z - hi) if not math.isinf(hi) else zero
        Zp = self.prev.project(Z)  # = Z inside the domain
        value = self.data.value(self._U(Zp), array=True) + self.prev.value(Zp, array=True)
        below, above, zmax, value = read(below, above, xp.max(xp.abs(Z)), value)
        worst, scale = max(below, above, 0.0), max(1.0, zmax)
        if worst > self.domain_tol * scale:
            raise InputError(f"{self.name}: Z is outside the domain [{lo}, {hi}] by {worst:.3g} "
                             f"(more than the rounding tolerance {self.domain_tol:g} x {scale:.3g})")
        return value

    def grad(self, Z):
        """Gradient of the objective at ``Z`` in the interior of the domain:
        :math:`A^\\top \\nabla\\mathrm{data}(A(Z) + b) + \\nabla\\mathrm{prev}(Z)` (what a
        general-purpose bound-constrained solver such as L-BFGS-B needs, with :meth:`bounds`)."""
        xp, _ = get_namespace(Z)
        Z = xp.asarray(Z, dtype=self.dtype)
        return self._grad((Z,))[0] + self.prev.grad(Z)

    def bounds(self) -> tuple[float, float]:
        """Entrywise bounds ``(lower, upper)`` of ``Z`` (the previous term's domain)."""
        return self.prev.bounds()

    def residual(self, Z) -> float:
        """Scale-free optimality residual ``||Z - T(Z)|| / max(1, ||Z||)`` (``T``: a prox-gradient step)."""
        xp, _ = get_namespace(Z)
        x = (xp.asarray(Z, dtype=self.dtype),)
        return prox_grad_residual(x, self._grad(x), self._prox, self.lipschitz)

    def start(self):
        """Default warm start: the feed-forward value (``phi_prev(U_prev)``)."""
        return self.prev.start()

    def solve_fast(self, x0=None, *, tol: float | None = None, max_iter: int | None = None,
                   warn: bool = True, **options) -> FastResult:
        """Accelerated proximal gradient (FISTA with restart) from ``x0`` (default :meth:`start`;
        projected on the domain), ``method="fista"`` (``options``: see the subclass's
        :meth:`solve_fast_steps`)."""
        return drive(self.solve_fast_steps(x0, tol=tol, max_iter=max_iter, warn=warn, **options))

    def _start_point(self, x0):
        """``x0`` checked and projected on the domain (default :meth:`start`)."""
        if x0 is None:
            return self.start()
        return self.prev.project(check_array(x0, f"x0 of {self.name}", finite=not inputs_trusted(),
                                             shape=(self.m,) + tuple(self.map.in_shape),
                                             xp=self.xp, dtype=self.dtype))

    def solve_fast_steps(self, x0=None, *, tol: float | None = None, max_iter: int | None = None,
                         warn: bool = True, **options):
        """:meth:`solve_fast` as a generator of the scalars its solver reads
        (:func:`~cvx_fenchel.solvers.fista_steps`, run by :func:`~cvx_fenchel.solvers.drive`): the
        problem is separable over samples but the stopping and restart tests are sums over
        all of them, so a data-parallel caller sends back the sums over every row block. Returns
        the :class:`FastResult` (its ``objective`` is this problem's own, evaluated when first
        read: the stopping test does not need it). ``options`` go to
        :meth:`_inner_steps` (a subclass's choice of solver)."""
        t0 = time.perf_counter()
        tol = solver_tol(tol, self.dtype)
        max_iter = self.default_max_iter if max_iter is None else int(max_iter)
        Z, n, conv, res, how = yield from self._inner_steps(self._start_point(x0), tol, max_iter, warn,
                                                            **options)
        return result(Z, lambda: self.objective(Z), n, conv, res, time.perf_counter() - t0, how)

    def _inner_steps(self, Z0, tol: float, max_iter: int, warn: bool):
        """The solver from the feasible ``Z0``, as a generator; returns ``(Z, n_iter, converged,
        residual, method)``. Here FISTA with restart."""
        # the gradient is the adjoint of a fresh array: FISTA may form its step in it (not so
        # through a user's duck-typed map, whose adjoint could hand back an array it keeps)
        x, n, conv, res = yield from fista_steps(self._grad, self._prox, (Z0,), self.lipschitz, tol=tol,
                                                 max_iter=max_iter, name=self.name, warn=warn,
                                                 owned_grad=not isinstance(self.op, _DuckOperator))
        return x[0], n, conv, res, "fista"

    def cvxpy_problem(self):
        """``(problem, Z)``: the CVXPY declaration, ``Z`` a ``Variable((m, n_in))`` (C-order flattened samples)."""
        import cvxpy as cp
        Z = cp.Variable((self.m, int(np.prod(self.map.in_shape))), name="Z")
        W = None if self.W is None else to_numpy(self.W)
        b = None if self.b is None else to_numpy(self.b)
        U = self.map.cvxpy_apply_input(Z, W, b)
        prev_obj, cons = self.prev.cvxpy(Z)
        return cp.Problem(cp.Minimize(self.data.cvxpy(U) + prev_obj), cons), Z

    def solve_cvxpy(self, solver: str = "CLARABEL", **kwargs) -> tuple[np.ndarray, CvxpyResult]:
        """Solve the CVXPY declaration; returns ``(Z, result)``; SolverError unless optimal."""
        prob, Z = self.cvxpy_problem()
        res = solve(prob, solver, name=self.name, **kwargs)
        return Z.value.reshape((self.m,) + tuple(self.map.in_shape)), res


class XHidden(XStep):
    r"""X-step of a hidden layer ``0 < l < L``.

    .. math::
        \min_{Z \in \mathrm{dom} F_{l-1}}\; c\,\lambda_l \sum B_l\big(X_{l+1}, A_l(Z; W_l) + b_l\big)
        + \lambda_{l-1} \sum B_{l-1}(Z, U_{l-1})

    The first term is smooth in ``Z`` (gradient
    :math:`c\lambda_l A_l^\top(\phi_l(A_l Z + b_l) - X_{l+1})`, Lipschitz
    :math:`c\lambda_l \sup\phi_l' \|A_l\|^2`); the second is handled by its
    proximal map (:meth:`Activation.prox_F`). Separable over samples.

    Parameters
    ----------
    X_next : (m, *out_shape) the next layer's variable ``X_{l+1}`` (in dom F_l)
    U_prev : (m, *in_shape) ``U_{l-1} = A_{l-1}(X_{l-1}) + b_{l-1}``
    W, b : weights of layer ``l`` (``linear_map`` defaults to dense for a 2-D ``W``)
    activation, activation_prev : ``phi_l`` and ``phi_{l-1}`` (names or instances)
    lam, lam_prev, coef : :math:`\lambda_l, \lambda_{l-1} \ge 0` and ``lbd_coef`` :math:`c \ge 0`
    """

    name = "X-hidden"

    def __init__(self, X_next, U_prev, W, b=None, activation="relu", activation_prev="relu", *,
                 lam: float = 1.0, lam_prev: float = 1.0, coef: float = 1.0,
                 linear_map: LinearMap | None = None, dtype=None):
        act, act_prev = get_activation(activation), get_activation(activation_prev)
        lam = check_scalar(lam, "lam")
        lam_prev = check_scalar(lam_prev, "lam_prev")
        coef = check_scalar(coef, "coef")
        self.xp, self.dtype, d = common_arrays({"X_next": X_next, "U_prev": U_prev, "W": W, "b": b}, dtype)
        self._setup(linear_map, d["W"], d["b"], d["U_prev"])
        check_shape(d["X_next"], (self.m,) + tuple(self.map.out_shape), "X_next", self.name)
        check_domain(act, d["X_next"], "X_next", self.name)
        self.X_next, self.U_prev = d["X_next"], d["U_prev"]
        self.activation, self.activation_prev = act, act_prev
        self.lam, self.lam_prev, self.coef = lam, lam_prev, coef
        self.data = DivergenceTerm(act, self.X_next, coef * lam)
        self.prev = PrevDivergence(act_prev, self.U_prev, lam_prev)


class XLast(XStep):
    r"""X-step of the last hidden layer ``X_L`` (also the lower bound's inner problem).

    .. math::
        \min_{Z \in \mathrm{dom} F_{L-1}}\; c\,\mathcal L\big(Y, A_L(Z; W_L) + b_L\big)
        + \lambda_{L-1} \sum B_{L-1}(Z, U_{L-1})

    ``loss``: a registered loss (:func:`cvx_fenchel.losses.get_loss`), e.g. ``"cross_entropy"``
    (``Y`` one-hot rows) or ``"mse"``; ``name`` is ``X-last-<tag>`` (:func:`loss_tag`).
    """

    name = "X-last"

    def __init__(self, Y, U_prev, W, b=None, activation_prev="relu", *, loss="cross_entropy",
                 lam_prev: float = 1.0, coef: float = 1.0, linear_map: LinearMap | None = None, dtype=None):
        self.loss_fn = get_loss(loss)
        self.loss = self.loss_fn.name
        self.name = f"X-last-{loss_tag(self.loss_fn)}"
        act_prev = get_activation(activation_prev)
        lam_prev = check_scalar(lam_prev, "lam_prev")
        coef = check_scalar(coef, "coef")
        self.xp, self.dtype, d = common_arrays({"Y": Y, "U_prev": U_prev, "W": W, "b": b}, dtype)
        self._setup(linear_map, d["W"], d["b"], d["U_prev"])
        check_shape(d["Y"], (self.m,) + tuple(self.map.out_shape), "Y", self.name)
        if not inputs_trusted():
            self.loss_fn.check_targets(d["Y"], f"{self.name}: Y")
        self.Y, self.U_prev, self.activation_prev = d["Y"], d["U_prev"], act_prev
        self.lam_prev, self.coef = lam_prev, coef
        self.data = LossTerm(self.loss_fn, self.Y, coef)
        self.prev = PrevDivergence(act_prev, self.U_prev, lam_prev)

    #: what ``method="auto"`` picks: Newton where it applies (:func:`.newton.newton_applies`)
    METHODS: ClassVar[tuple[str, ...]] = ("auto", "newton", "fista")

    def _inner_steps(self, Z0, tol: float, max_iter: int, warn: bool, method: str = "auto"):
        """``method`` (``solve_fast(method=...)``): ``"newton"``, the projected Newton method of
        :mod:`.newton` (cross-entropy over a dense layer, ReLU below: ``method="newton"`` in the
        result, ``"newton+fista"`` if it handed over to FISTA), ``"fista"``, or ``"auto"`` (Newton
        where it applies, else FISTA). Both stop on the same certified prox-gradient residual."""
        from .newton import ce_relu_newton_steps, newton_applies
        if method not in self.METHODS:
            raise InputError(f"{self.name}: method must be one of {self.METHODS}, got {method!r}")
        use = newton_applies(self)
        if method == "newton" and not use:
            raise InputError(f"{self.name}: method='newton' needs the cross-entropy loss, a dense "
                             "last layer and a ReLU previous layer with lam_prev > 0; use 'fista'")
        if method == "fista" or not use:
            return (yield from super()._inner_steps(Z0, tol, max_iter, warn))
        return (yield from ce_relu_newton_steps(self, Z0, tol=tol, max_iter=max_iter, warn=warn))
