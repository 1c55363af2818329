r"""The verification suite: every BCD subproblem's fast path against its CVXPY twin.

For every subproblem x activation x loss x linear map (where they apply) the
suite draws random and edge-case instances, solves each

* with the fast path (``solve_fast(tol=1e-10)``, NumPy or CuPy), and
* with CVXPY under ECOS, SCS and Clarabel (all three handle the zero,
  non-negative, second-order and exponential cones these declarations use),

and records one :class:`Record` per (instance, solver):

* relative objective gap :math:`|f_\text{fast} - f_\text{cvx}| / \max(1, |f_\text{cvx}|)`
  (both objectives evaluated at the returned points; the fast one by the
  subproblem's array ``objective``, the CVXPY one is the solver's optimal value);
* distance between minimisers :math:`\max_i |x_\text{fast} - x_\text{cvx}|_i`
  (informational: minimisers can be non-unique and conic solvers are less
  accurate in ``x`` than in the objective);
* the fast path's scale-free optimality residual :math:`\|x - T(x)\| / \max(1, \|x\|)`
  (``T`` the proximal-gradient map, recomputed here by ``residual(x)``, not
  taken from the solver's report);
* both wall times, and ``passed``.

A comparison passes when the fast path's objective exceeds the solver's by at
most :data:`GAP_TOL` of that solver, relative (1e-6 for ECOS and Clarabel, 1e-4
for SCS; ``fast_excess``), and the residual is at most :data:`RES_TOL` (1e-6,
float64). The test is one-sided because the fast point is feasible: a solver
value *above* it is that solver's inaccuracy (such comparisons pass with status
``"ok (solver less accurate)"``; ``rel_gap`` keeps the absolute difference). An
instance passes when none of its comparisons fails, except those where a CVXPY
solver returned no optimal status at all (``solver_failed``: counted and listed
in the report, since that says something about the solver and not about the
fast path), and at least one comparison passed. CVXPY first runs with the library's tolerance ladder
(:data:`cvx_fenchel.cvx.LADDERS`; for SCS the library's eps 1e-9 with at most
20,000 iterations, :data:`PRIMARY`); when that ends without status ``optimal``
(or with a non-finite objective value) the suite retries the same declaration
with the looser :data:`FALLBACK` settings, the last accepting
``optimal_inaccurate``. Every retry is recorded in the record's ``extra`` and
counted in the report; the gap tolerance is never loosened, so a retry can only
make a case harder to pass. If no attempt succeeds the case fails with the
solver's status.

Softplus has no CVXPY form (its potential involves the dilogarithm). Its cases
are verified by the residual plus a perturbation test: for random directions
``D`` and steps ``t`` in 1e-1..1e-4 the feasible points ``P(x + t D)`` (``P``
the projection on the domain) never have a smaller objective than ``x``
beyond ``1e-9 max(1, |f|)`` (solver ``"perturbation"``).

Edge cases (``variant``): ``random``, ``one-sample`` (m = 1), ``one-unit``
(hidden width / channels 1), ``all-negative`` (all pre-activations negative),
``tiny-lambda`` (1e-3) and ``huge-lambda`` (1e3) for the subproblem's
divergence weights (the loss weight ``coef`` for the output W-step),
``rho=0`` and ``gamma=0`` (W-steps), ``zero-input`` (the data fixed inside the
subproblem is 0).

Besides the subproblems the suite checks

* each activation's argmin property: CVXPY's :math:`\arg\min_v \sum B(v, u)`
  equals :math:`\phi(u)` (and :math:`B(\phi(u), u) = 0`, :math:`B \ge 0`);
* each linear map's forward map and both adjoints against its explicit sparse
  matrices ``input_matrix``, ``weight_matrix`` and ``bias_matrix``.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cvx_fenchel.activations import get_activation
from cvx_fenchel.backend import to_numpy
from cvx_fenchel.cvx import solve
from cvx_fenchel.errors import SolverError
from cvx_fenchel.maps import AvgPool2D, Chain, Conv2D, Dense, Flatten
from cvx_fenchel import subproblems as sp

__all__ = ["SUBPROBLEMS", "ACTIVATIONS", "SOLVERS", "GAP_TOL", "RES_TOL", "FAST_TOL", "Spec", "Record",
           "make_specs", "build_instance", "run_case", "activation_checks", "map_checks", "run_suite",
           "versions", "cpu_info"]

#: Subproblem ids, in report order.
SUBPROBLEMS = ("X-hidden", "X-last-ce", "X-last-mse", "W-hidden", "W-last-ce", "W-last-mse",
               "LNN-X", "LNN-W", "LNN-simplex-CE", "lower-bound")
#: Activations (leaky ReLU with slope 0.1).
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "hardtanh", "softplus", "identity")
ACT_PARAMS = {"leaky_relu": {"slope": 0.1}}
#: CVXPY solvers compared, with their relative-objective-gap tolerances.
SOLVERS = ("ECOS", "SCS", "CLARABEL")
GAP_TOL = {"ECOS": 1e-6, "CLARABEL": 1e-6, "SCS": 1e-4}
#: Tolerance of the fast path's optimality residual (float64).
RES_TOL = 1e-6
#: Tolerance handed to ``solve_fast``.
FAST_TOL = 1e-10
FAST_MAX_ITER = 100_000
#: Tolerance of the activation argmin check (max abs) for ECOS and Clarabel.
ARGMIN_TOL_X = 3e-5
#: Slack of the softplus perturbation test, relative to max(1, |f|).
PERTURB_SLACK = 1e-9
#: Slack of the lower-bound check G <= p, relative to max(1, |p|).
BOUND_SLACK = 1e-9

#: Looser CVXPY settings tried when the library's tolerance ladder ends without 'optimal'.
FALLBACK = {
    "ECOS": [dict(abstol=1e-7, reltol=1e-7, feastol=1e-7, max_iters=500),
             dict(abstol=1e-6, reltol=1e-6, feastol=1e-6, max_iters=500)],
    "CLARABEL": [dict(tol_gap_abs=1e-7, tol_gap_rel=1e-7, tol_feas=1e-7, max_iter=500),
                 dict(tol_gap_abs=1e-6, tol_gap_rel=1e-6, tol_feas=1e-6, max_iter=500)],
    "SCS": [dict(eps_abs=1e-7, eps_rel=1e-7, max_iters=20_000)],
}
#: First settings per solver where they differ from the library ladder. SCS is compared at 1e-4
#: only, and the library's 200,000-iteration cap made single stalled SCS solves take minutes;
#: the suite gives SCS the library's tolerance (1e-9) with a 20,000-iteration cap.
PRIMARY = {"SCS": {"settings": dict(eps_abs=1e-9, eps_rel=1e-9, max_iters=20_000)}}

#: Maps each subproblem is verified with.
MAPS_OF = {
    "X-hidden": ("dense", "conv", "pool+conv"),
    "W-hidden": ("dense", "conv", "pool+conv", "flatten+dense"),
    "X-last-ce": ("dense", "flatten+dense", "conv+flatten"),
    "X-last-mse": ("dense", "flatten+dense", "conv+flatten"),
    "W-last-ce": ("dense", "flatten+dense", "conv+flatten"),
    "W-last-mse": ("dense", "flatten+dense", "conv+flatten"),
    "LNN-X": ("dense", "conv", "pool+conv"),
    "LNN-W": ("dense", "conv", "pool+conv"),
    "LNN-simplex-CE": ("none",),
    "lower-bound": ("dense",),
}
_HAS_ACT = {"X-hidden", "X-last-ce", "X-last-mse", "W-hidden", "lower-bound"}
_LOSS_OF = {"X-last-ce": "cross_entropy", "X-last-mse": "mse", "W-last-ce": "cross_entropy",
            "W-last-mse": "mse", "LNN-simplex-CE": "cross_entropy"}
_BASE_VARIANTS = ("one-sample", "one-unit", "all-negative", "tiny-lambda", "huge-lambda", "zero-input")
_W_STEPS = {"W-hidden", "W-last-ce", "W-last-mse", "LNN-W"}


def variants_of(subproblem: str) -> tuple[str, ...]:
    """Edge-case variants that apply to ``subproblem`` (besides ``random``)."""
    extra = ("rho=0", "gamma=0") if subproblem in _W_STEPS else ()
    return _BASE_VARIANTS + extra


@dataclass(frozen=True)
class Spec:
    """One instance to build: what, with which activation/loss/map, which edge case, which seed."""

    subproblem: str
    activation: str | None
    loss: str | None
    map: str
    variant: str
    seed: int

    def label(self) -> str:
        parts = [self.subproblem, self.activation or "-", self.loss or "-", self.map, self.variant]
        return "/".join(parts) + f"#{self.seed}"


@dataclass
class Record:
    """One (instance, solver) comparison; see the module docstring for the fields' meaning."""

    id: str
    subproblem: str
    activation: str | None
    loss: str | None
    map: str
    variant: str
    shape: str
    solver: str
    seed: int
    objective_fast: float | None = None
    objective_cvx: float | None = None
    rel_gap: float | None = None
    x_dist: float | None = None
    residual: float | None = None
    fast_seconds: float | None = None
    cvx_seconds: float | None = None
    fast_iters: int | None = None
    fast_converged: bool | None = None
    gap_tol: float | None = None
    fast_excess: float | None = None
    solver_failed: bool = False
    extra: dict = field(default_factory=dict)
    status: str = "ok"
    message: str = ""
    passed: bool = False


# ---------------------------------------------------------------------------------------------
# instances
# ---------------------------------------------------------------------------------------------
def make_specs(quick: bool, seed: int, n_random: int = 3) -> list[Spec]:
    """The instances of a run.

    Full: every subproblem x activation x loss x map with ``n_random`` random
    instances and every edge variant (over 1,000 instances). Quick: every
    subproblem x activation on the dense map (random), each further map once
    (ReLU), and each edge variant once (ReLU, dense).
    """
    specs: list[Spec] = []
    k = 0

    def add(sub, act, loss, m, variant):
        nonlocal k
        specs.append(Spec(sub, act, loss, m, variant, seed * 100_003 + k))
        k += 1

    for sub in SUBPROBLEMS:
        acts = ACTIVATIONS if sub in _HAS_ACT else (None,)
        maps = MAPS_OF[sub]
        losses = ("cross_entropy", "mse") if sub == "lower-bound" else (_LOSS_OF.get(sub),)
        for loss in losses:
            if quick:
                for act in acts:
                    add(sub, act, loss, maps[0], "random")
                first = "relu" if sub in _HAS_ACT else None
                for m in maps[1:]:
                    add(sub, first, loss, m, "random")
                if loss == losses[0]:
                    for v in variants_of(sub):
                        add(sub, first, loss, maps[0], v)
                continue
            for act in acts:
                for m in maps:
                    for _ in range(n_random):
                        add(sub, act, loss, m, "random")
                    for v in variants_of(sub):
                        add(sub, act, loss, m, v)
    return specs


def _map(kind: str, role: str, width_in: int, width_out: int):
    """The linear map of a case.

    role 'hidden': dense ``width_in -> width_out``; conv ``(5,5,c_in) -> (3,3,c_out)``
    with a 3x3 kernel; pool+conv ``(8,8,c_in)`` -avgpool-> ``(4,4,c_in)`` -conv3x3->
    ``(2,2,c_out)``; flatten+dense ``(3,3,c_in) -> width_out``.
    role 'last' (outputs are class scores, ``width_out`` classes): dense, flatten+dense,
    conv+flatten ``(4,4,c_in)`` -conv3x3, 1 channel-> ``(2,2,1)`` -> 4 scores.
    For images ``c_in = width_in`` and ``c_out = width_out`` (capped at 2).
    """
    c_in, c_out = min(width_in, 2), min(width_out, 2)
    if kind == "dense":
        return Dense(width_in, width_out)
    if kind == "conv":
        return Conv2D((5, 5, c_in), c_out, (3, 3))
    if kind == "pool+conv":
        return Chain([AvgPool2D((8, 8, c_in), 2), Conv2D((4, 4, c_in), c_out, (3, 3))])
    if kind == "flatten+dense":
        return Chain([Flatten((3, 3, c_in)), Dense(9 * c_in, width_out)])
    if kind == "conv+flatten":
        return Chain([Conv2D((4, 4, c_in), 1, (3, 3)), Flatten((2, 2, 1))])
    raise ValueError(f"unknown map kind {kind!r}")


def _shape_str(**parts) -> str:
    return ", ".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in parts.items())


class Instance:
    """A built instance: the subproblem object and uniform accessors used by :func:`run_case`."""

    def __init__(self, spec: Spec, sub, shape: str, kind: str, act=None, lb_args: dict | None = None):
        self.spec, self.sub, self.shape, self.kind, self.act = spec, sub, shape, kind, act
        self.lb_args = lb_args
        self.lb_p = math.nan

    # uniform accessors -------------------------------------------------------------------------
    def fast(self):
        """``(x, seconds, n_iter, converged, extra)`` of the fast path."""
        t0 = time.perf_counter()
        if self.kind == "LB":
            out = sp.lower_bound(**self.lb_args, method="fast", tol=FAST_TOL, max_iter=FAST_MAX_ITER)
            sec = time.perf_counter() - t0
            self.lb_p = float(out.p)
            return out.X1, sec, None, None, {"G_fast": float(out.G), "p": float(out.p)}
        r = self.sub.solve_fast(tol=FAST_TOL, max_iter=FAST_MAX_ITER, warn=False)
        sec = time.perf_counter() - t0
        return r.x, sec, int(r.n_iter), bool(r.converged), {}

    def cvx(self, solver: str):
        """``(x, objective, seconds, extra)`` of CVXPY with ``solver``.

        First the library's own call (``solve_cvxpy`` / ``lower_bound(method="cvxpy")``, which
        walks :data:`cvx_fenchel.cvx.LADDERS`). If that ends with a status other than optimal or
        with a non-finite objective, the same declaration is solved again with the looser
        settings of :data:`FALLBACK` (recorded in ``extra``), the last of them accepting the status
        ``optimal_inaccurate`` (recorded as ``extra["cvx_status"]``); a looser CVXPY solve can only
        make the objective comparison harder to pass, which still applies unchanged. Raises
        SolverError when none of these ends optimal (or optimal_inaccurate at the last step)."""
        t0 = time.perf_counter()
        try:
            if self.kind == "LB" and solver not in PRIMARY:
                out = sp.lower_bound(**self.lb_args, method="cvxpy", solver=solver)
                x, f, extra = out.X1, float(out.G), {"p_cvx": float(out.p)}
            elif self.kind == "LB":  # same declaration as lower_bound's (its XLast), with PRIMARY settings
                x, res = self.sub.solve_cvxpy(solver, **PRIMARY[solver])
                f, extra = float(res.objective), {"p_cvx": float(self.lb_p)}
            else:
                x, res = self.sub.solve_cvxpy(solver, **PRIMARY.get(solver, {}))
                f, extra = float(res.objective), {}
            if math.isfinite(f):
                extra["cvx_settings"] = "library ladder"
                return x, f, time.perf_counter() - t0, extra
            first = f"{solver} returned a non-finite objective value {f}"
            first_status = "nonfinite_objective"
        except SolverError as exc:
            first, first_status = str(exc), str(getattr(exc, "status", "solver_error"))
        last = ""
        attempts = [(st, False) for st in FALLBACK[solver]] + [(FALLBACK[solver][-1], True)]
        for settings, inaccurate_ok in attempts:
            prob, var = self.sub.cvxpy_problem()
            try:
                res = solve(prob, solver, settings=settings, accept_inaccurate=inaccurate_ok,
                            name=self.spec.subproblem)
            except SolverError as exc:
                last = str(exc)
                continue
            f = float(res.objective)
            note = ""
            if not math.isfinite(f):  # the point is marginally outside an entr/log domain
                f = float(prob.solution.opt_val)
                note = "objective value from the solver (problem.value was not finite)"
            if not math.isfinite(f):
                last = f"{solver} returned a non-finite objective value"
                continue
            x = tuple(v.value for v in var) if isinstance(var, tuple) else var.value
            extra = {"cvx_settings": settings, "cvx_status": res.status, "library_status": first_status,
                     "library_message": first}
            if note:
                extra["note"] = note
            if self.kind == "LB":
                extra["p_cvx"] = float(self.lb_p)
            return x, f, time.perf_counter() - t0, extra
        raise SolverError(f"{first}; fallback settings: {last or 'none optimal'}", status=first_status)

    def objective(self, x) -> float:
        return float(self.sub.objective(x))

    def residual(self, x) -> float:
        return float(self.sub.residual(x))

    def perturb(self, x, rng: np.random.Generator, t: float):
        """A feasible point near ``x``: ``P(x + t ||x|| D)`` with ``D`` Gaussian of unit norm."""
        xp = self.sub.xp
        if isinstance(x, tuple):
            parts = []
            for a in x:
                d = rng.standard_normal(a.shape)
                parts.append(a + xp.asarray(t * d / np.linalg.norm(d) * max(1.0, float(xp.linalg.norm(a)))))
            return tuple(parts)
        d = rng.standard_normal(x.shape)
        y = x + xp.asarray(t * d / np.linalg.norm(d) * max(1.0, float(xp.linalg.norm(x))), dtype=x.dtype)
        return self.act.project(y) if self.act is not None else y


def _lam(variant: str, rng: np.random.Generator) -> float:
    if variant == "tiny-lambda":
        return 1e-3
    if variant == "huge-lambda":
        return 1e3
    return float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))


def build_instance(spec: Spec, xp=np, dtype=np.float64) -> Instance:
    """Draw the data of ``spec`` (NumPy generator seeded by ``spec.seed``) and build the subproblem
    on the array module ``xp``. Sizes stay tiny (m <= 6 samples, <= 5 units, images <= 8x8x2) so
    that CVXPY solves each in well under a second."""
    rng = np.random.default_rng(spec.seed)
    v = spec.variant
    s = spec.subproblem

    def A(a):
        return None if a is None else xp.asarray(np.asarray(a, dtype=np.float64), dtype=dtype)

    act = None
    if spec.activation is not None:
        act = get_activation(spec.activation, **ACT_PARAMS.get(spec.activation, {}))
    image = spec.map not in ("dense", "none")
    m = 1 if v == "one-sample" else int(rng.integers(2, 5 if image else 7))
    w_in = 1 if v == "one-unit" else int(rng.integers(2, 6))
    w_out = 1 if v == "one-unit" else int(rng.integers(2, 6))
    k = 3  # classes of the output layer
    lam = _lam(v, rng)
    rho = 0.0 if v == "rho=0" else float(rng.uniform(0.05, 0.5))
    gamma = 0.0 if v == "gamma=0" else float(rng.uniform(0.05, 0.5))

    def targets(n_out):
        if spec.loss == "cross_entropy":
            return np.eye(n_out)[rng.integers(0, n_out, m)]
        return rng.standard_normal((m, n_out))

    def pre(shape):
        """Pre-activations of a previous layer: negative for 'all-negative', 0 for 'zero-input'."""
        if v == "zero-input":
            return np.zeros(shape)
        z = rng.standard_normal(shape)
        return -(np.abs(z) + 0.5) if v == "all-negative" else 2.0 * z

    if s in ("X-hidden", "LNN-X"):
        mp = _map(spec.map, "hidden", w_in, w_out)
        W = rng.standard_normal(mp.weight_shape) / math.sqrt(np.prod(mp.weight_shape[:-1]))
        b = rng.standard_normal(mp.bias_shape) * 0.5
        U_prev = pre((m,) + mp.in_shape)
        if s == "X-hidden":
            X_next = to_numpy(act.forward(pre((m,) + mp.out_shape)))
            sub = sp.XHidden(A(X_next), A(U_prev), A(W), A(b), act, act, lam=lam, lam_prev=lam,
                             coef=float(rng.uniform(0.5, 2.0)), linear_map=mp, dtype=dtype)
            return Instance(spec, sub, _shape_str(m=m, Z=mp.in_shape, X_next=mp.out_shape), "X", act)
        X_next = rng.standard_normal((m,) + mp.out_shape)
        sub = sp.LNNX(A(X_next), A(U_prev), A(W), A(b), lam=lam, lam_prev=_lam(v, rng) if v in (
            "tiny-lambda", "huge-lambda") else float(rng.uniform(0.3, 3.0)), linear_map=mp, dtype=dtype)
        return Instance(spec, sub, _shape_str(m=m, Z=mp.in_shape, X_next=mp.out_shape), "X",
                        get_activation("relu"))

    if s in ("X-last-ce", "X-last-mse"):
        mp = _map(spec.map, "last", w_in, k)
        W = rng.standard_normal(mp.weight_shape) / math.sqrt(np.prod(mp.weight_shape[:-1])) * 2.0
        b = rng.standard_normal(mp.bias_shape) * 0.5
        U_prev = pre((m,) + mp.in_shape)
        Y = targets(mp.n_out)
        sub = sp.XLast(A(Y), A(U_prev), A(W), A(b), act, loss=spec.loss, lam_prev=lam,
                       coef=float(rng.uniform(0.5, 3.0)), linear_map=mp, dtype=dtype)
        return Instance(spec, sub, _shape_str(m=m, Z=mp.in_shape, Y=mp.out_shape), "X", act)

    if s in ("W-hidden", "W-last-ce", "W-last-mse", "LNN-W"):
        role = "hidden" if s in ("W-hidden", "LNN-W") else "last"
        mp = _map(spec.map, role, w_in, w_out if role == "hidden" else k)
        if v == "zero-input":
            X = np.zeros((m,) + mp.in_shape)
        elif s == "W-hidden" or v == "all-negative":
            X = rng.uniform(0.0, 1.0, (m,) + mp.in_shape)  # activations of a previous layer
        else:
            X = rng.standard_normal((m,) + mp.in_shape)
        fan = float(np.prod(mp.weight_shape[:-1]))
        W0 = rng.standard_normal(mp.weight_shape) / math.sqrt(fan)
        b0 = rng.standard_normal(mp.bias_shape) * 0.5
        if v == "all-negative":  # all pre-activations X W0 + b0 negative (X >= 0)
            W0, b0 = -np.abs(W0), -np.ones(mp.bias_shape)
        shape = _shape_str(m=m, X=mp.in_shape, W=mp.weight_shape, out=mp.out_shape)
        if s == "W-hidden":
            U = to_numpy(mp.apply(X, W0, b0)) + (0.0 if v == "all-negative" else 0.5 * rng.standard_normal(
                (m,) + mp.out_shape))
            X_next = to_numpy(act.forward(U if v != "all-negative" else np.minimum(U, -1e-3)))
            sub = sp.WHidden(A(X), A(X_next), act, lam=lam, rho=rho, gamma=gamma, W0=A(W0), b0=A(b0),
                             linear_map=mp, dtype=dtype)
        elif s == "LNN-W":
            X_next = rng.standard_normal((m,) + mp.out_shape)
            sub = sp.LNNW(A(X), A(X_next), lam=lam, rho=rho, gamma=gamma, W0=A(W0), b0=A(b0),
                          linear_map=mp, dtype=dtype)
        else:
            Y = targets(mp.n_out)
            sub = sp.WLast(A(X), A(Y), loss=spec.loss, coef=lam, rho=rho, gamma=gamma, W0=A(W0), b0=A(b0),
                           linear_map=mp, dtype=dtype)
        return Instance(spec, sub, shape, "W")

    if s == "LNN-simplex-CE":
        kk = 1 if v == "one-unit" else int(rng.integers(2, 6))
        Y = np.eye(kk)[rng.integers(0, kk, m)]
        X0 = pre((m, kk))
        sub = sp.LNNSimplexCE(A(Y), A(X0), lam=lam, dtype=dtype)
        return Instance(spec, sub, _shape_str(m=m, Z=(kk,)), "S")

    if s == "lower-bound":
        n0 = int(rng.integers(2, 6))
        n1 = w_in
        loss = spec.loss
        X = np.zeros((m, n0)) if v == "zero-input" else rng.uniform(0.0, 1.0, (m, n0))
        W0 = rng.standard_normal((n0, n1)) / math.sqrt(n0) * 2.0
        b0 = rng.standard_normal(n1) * 0.5
        if v == "all-negative":
            W0, b0 = -np.abs(W0), -np.ones(n1)
        W1 = rng.standard_normal((n1, k)) / math.sqrt(n1) * 2.0
        b1 = rng.standard_normal(k) * 0.5
        Y = targets(k)
        args = dict(X=A(X), Y=A(Y), W0=A(W0), b0=A(b0), W1=A(W1), b1=A(b1), activation=act, lam=lam, loss=loss)
        U0 = A(X) @ A(W0) + A(b0)
        sub = sp.XLast(A(Y), U0, A(W1), A(b1), act, loss=loss, lam_prev=lam, coef=1.0, dtype=dtype)
        return Instance(spec, sub, _shape_str(m=m, X=(n0,), X1=(n1,), Y=(k,)), "LB", act, lb_args=args)

    raise ValueError(f"unknown subproblem {s!r}")


# ---------------------------------------------------------------------------------------------
# one case
# ---------------------------------------------------------------------------------------------
def _flat(x) -> np.ndarray:
    if isinstance(x, (tuple, list)):
        return np.concatenate([np.asarray(to_numpy(a), dtype=float).ravel() for a in x])
    return np.asarray(to_numpy(x), dtype=float).ravel()


def _has_cvxpy(spec: Spec) -> bool:
    if spec.activation is None:
        return True
    return get_activation(spec.activation, **ACT_PARAMS.get(spec.activation, {})).has_cvxpy


def run_case(spec: Spec, *, solvers=SOLVERS, xp=np, dtype=np.float64, rng_perturb: int = 0) -> list[Record]:
    """Build ``spec``, solve it by the fast path and by each CVXPY solver; one Record per solver
    (or one ``"perturbation"`` Record for softplus). Never raises: errors become failed Records."""
    base = dict(id=spec.label(), subproblem=spec.subproblem, activation=spec.activation, loss=spec.loss,
                map=spec.map, variant=spec.variant, seed=spec.seed)
    try:
        inst = build_instance(spec, xp=xp, dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, fsec, n_iter, conv, fextra = inst.fast()
        f_fast = inst.objective(x)
        res = inst.residual(x)
    except Exception as exc:  # noqa: BLE001 - a broken case is a failed record, not a crash
        return [Record(**base, shape="?", solver="fast", status="error",
                       message=f"{type(exc).__name__}: {exc}", passed=False)]
    common = dict(base, shape=inst.shape, objective_fast=f_fast, residual=res, fast_seconds=fsec,
                  fast_iters=n_iter, fast_converged=conv)
    res_ok = bool(math.isfinite(res) and res <= RES_TOL)
    bound_msgs = []
    if inst.kind == "LB":
        G, p = fextra["G_fast"], fextra["p"]
        fextra["G_matches_objective"] = abs(G - f_fast) <= 1e-9 * max(1.0, abs(f_fast))
        fextra["G_le_p"] = G <= p + BOUND_SLACK * max(1.0, abs(p))
        if not fextra["G_matches_objective"]:
            bound_msgs.append(f"lower_bound G={G:.12g} differs from the objective at X1 {f_fast:.12g}")
        if not fextra["G_le_p"]:
            bound_msgs.append(f"lower bound G={G:.12g} exceeds p={p:.12g}")
    out = []
    if not _has_cvxpy(spec):
        rng = np.random.default_rng(spec.seed + 7 + rng_perturb)
        t0 = time.perf_counter()
        worst = math.inf
        n_trials = 0
        try:
            for t in (1e-1, 1e-2, 1e-3, 1e-4):
                for _ in range(8):
                    worst = min(worst, inst.objective(inst.perturb(x, rng, t)))
                    n_trials += 1
            err = ""
        except Exception as exc:  # noqa: BLE001
            err = f"{type(exc).__name__}: {exc}"
        psec = time.perf_counter() - t0
        gap = max(0.0, f_fast - worst) / max(1.0, abs(f_fast)) if math.isfinite(worst) else math.inf
        ok = res_ok and not err and gap <= PERTURB_SLACK and not bound_msgs and math.isfinite(f_fast)
        msgs = [m for m in (err, "" if res_ok else f"residual {res:.3g} > {RES_TOL:g}",
                            "" if gap <= PERTURB_SLACK else f"a feasible perturbation lowers the objective "
                                                            f"by {gap:.3g} (relative)") if m] + bound_msgs
        out.append(Record(**common, solver="perturbation", objective_cvx=worst if math.isfinite(worst) else None,
                          rel_gap=gap, cvx_seconds=psec, gap_tol=PERTURB_SLACK,
                          extra={**fextra, "n_perturbations": n_trials},
                          status="ok" if ok else ("error" if err else "failed"), message="; ".join(msgs),
                          passed=ok))
        return out
    for solver in solvers:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xc, f_cvx, csec, cextra = inst.cvx(solver)
        except SolverError as exc:
            out.append(Record(**common, solver=solver, gap_tol=GAP_TOL[solver], extra=dict(fextra),
                              status=str(getattr(exc, "status", "solver_error")), message=str(exc),
                              solver_failed=True, passed=False))
            continue
        except Exception as exc:  # noqa: BLE001
            out.append(Record(**common, solver=solver, gap_tol=GAP_TOL[solver], extra=dict(fextra),
                              status="error", message=f"{type(exc).__name__}: {exc}", passed=False))
            continue
        gap = abs(f_fast - f_cvx) / max(1.0, abs(f_cvx))
        excess = (f_fast - f_cvx) / max(1.0, abs(f_cvx))  # > 0: the fast path is worse
        try:
            dist = float(np.max(np.abs(_flat(x) - _flat(xc))))
        except Exception:  # noqa: BLE001 - shapes differ: report, the gap decides
            dist = math.nan
        extra = dict(fextra, **cextra)
        msgs = list(bound_msgs)
        if inst.kind == "LB":
            pc = cextra["p_cvx"]
            extra["G_cvx_le_p"] = f_cvx <= pc + GAP_TOL[solver] * max(1.0, abs(pc))
            if not extra["G_cvx_le_p"]:
                msgs.append(f"CVXPY bound G={f_cvx:.12g} exceeds p={pc:.12g}")
        # One-sided: the fast point is feasible (finite objective, in dom F by construction), so a
        # solver value above it by more than the tolerance is the solver's inaccuracy, not ours.
        gap_ok = bool(math.isfinite(gap) and math.isfinite(f_fast) and excess <= GAP_TOL[solver])
        if not gap_ok:
            msgs.append(f"fast path above {solver} by {excess:.3g} (relative) > {GAP_TOL[solver]:g}")
        if not res_ok:
            msgs.append(f"residual {res:.3g} > {RES_TOL:g}")
        ok = gap_ok and res_ok and not msgs
        status = "ok" if ok and gap <= GAP_TOL[solver] else ("ok (solver less accurate)" if ok else "failed")
        out.append(Record(**common, solver=solver, objective_cvx=f_cvx, rel_gap=gap, x_dist=dist,
                          cvx_seconds=csec, gap_tol=GAP_TOL[solver], fast_excess=excess, extra=extra,
                          status=status, message="; ".join(msgs), passed=ok))
    return out


def instance_verdicts(recs: list[dict]) -> dict[str, bool]:
    """Instance id -> passed: no comparison failed except by a CVXPY solver that returned no optimal
    status (``solver_failed``; counted and listed separately), and at least one comparison passed."""
    by: dict[str, list[dict]] = {}
    for r in recs:
        by.setdefault(r["id"], []).append(r)
    return {i: (not any(not r["passed"] and not r["solver_failed"] for r in rs)
                and any(r["passed"] for r in rs)) for i, rs in by.items()}


# ---------------------------------------------------------------------------------------------
# activations and maps
# ---------------------------------------------------------------------------------------------
def activation_checks(solvers=SOLVERS, seed: int = 0, xp=np) -> list[dict]:
    r"""Argmin property of every activation.

    With CVXPY: :math:`v^* = \arg\min_{v \in \mathrm{dom} F} \sum_i B(v_i, u_i)` for 40 values
    ``u`` (random in [-6, 6] plus 0, +-1, +-3) must equal :math:`\phi(u)` to :data:`ARGMIN_TOL_X`
    = 3e-5 (max abs; 1e-4 for SCS) with optimal value 0 to 1e-7 (1e-5 SCS). Where ``B`` is
    quadratic in ``v`` (ReLU, leaky ReLU, hard tanh, identity) a minimiser is only accurate to the
    square root of the absolute objective accuracy, :math:`\sqrt{2 \cdot 40 \cdot 10^{-11}}
    \approx 3\cdot 10^{-5}` at the solvers' tightest settings, hence that tolerance. For every activation, in array code:
    :math:`B(\phi(u), u) \le 10^{-12}` and :math:`B(v, u) \ge -10^{-12}` on random ``v`` in the domain,
    and :math:`B(\phi(u) \pm \delta, u) > 0` where the perturbed point is in the domain.
    """
    import cvxpy as cp
    from cvx_fenchel.cvx import solve

    rng = np.random.default_rng(seed)
    u = np.concatenate([rng.uniform(-6, 6, 35), [0.0, 1.0, -1.0, 3.0, -3.0]])
    out = []
    for name in ACTIVATIONS:
        act = get_activation(name, **ACT_PARAMS.get(name, {}))
        U = xp.asarray(u)
        phi = act.forward(U)
        b0 = float(xp.max(xp.abs(act.divergence(phi, U))))
        lo = -5.0 if math.isinf(act.lower) else act.lower
        hi = 5.0 if math.isinf(act.upper) else act.upper
        V = xp.asarray(rng.uniform(lo, hi, (200, u.size)))
        bmin = float(xp.min(act.divergence(V, U[None, :])))
        delta = 1e-3
        moved = []
        for sgn in (1.0, -1.0):
            P = phi + sgn * delta
            inside = to_numpy(act.in_domain(P)).astype(bool)
            val = to_numpy(act.divergence(P, U))
            moved.append(bool(np.all(val[inside] > 0)))
        t0 = time.perf_counter()
        ok = b0 <= 1e-12 and bmin >= -1e-12 and all(moved)
        rec = {"check": "activation-argmin", "activation": name, "solver": "array",
               "max_B_at_phi": b0, "min_B_random": bmin, "B_positive_off_phi": all(moved), "passed": ok,
               "seconds": time.perf_counter() - t0}
        out.append(rec)
        if not act.has_cvxpy:
            continue
        for solver in solvers:
            t0 = time.perf_counter()
            v = cp.Variable(u.size)
            prob = cp.Problem(cp.Minimize(act.cvxpy_divergence(v, u)), act.cvxpy_domain(v))
            tol_x, tol_f = (1e-4, 1e-5) if solver == "SCS" else (ARGMIN_TOL_X, 1e-7)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = solve(prob, solver, name=f"argmin {name}")
                err = float(np.max(np.abs(v.value - to_numpy(phi))))
                val = float(r.objective)
                ok = err <= tol_x and abs(val) <= tol_f
                out.append({"check": "activation-argmin", "activation": name, "solver": solver,
                            "max_abs_argmin_minus_phi": err, "optimal_value": val, "tol_x": tol_x,
                            "tol_value": tol_f, "passed": ok, "seconds": time.perf_counter() - t0})
            except Exception as exc:  # noqa: BLE001
                out.append({"check": "activation-argmin", "activation": name, "solver": solver, "passed": False,
                            "message": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0})
    return out


def _map_zoo():
    return {
        "dense 4->3": Dense(4, 3),
        "conv 5x5x2 k3 ->2 (valid)": Conv2D((5, 5, 2), 2, (3, 3)),
        "conv 5x5x2 k3 ->2 (same)": Conv2D((5, 5, 2), 2, (3, 3), "same"),
        "conv 6x5x1 k(2,3) ->3": Conv2D((6, 5, 1), 3, (2, 3)),
        "avgpool 4x4x2 s2": AvgPool2D((4, 4, 2), 2),
        "flatten 3x3x2": Flatten((3, 3, 2)),
        "pool+conv": Chain([AvgPool2D((8, 8, 1), 2), Conv2D((4, 4, 1), 2, (3, 3))]),
        "conv+flatten": Chain([Conv2D((4, 4, 2), 1, (3, 3)), Flatten((2, 2, 1))]),
        "flatten+dense": Chain([Flatten((3, 3, 2)), Dense(18, 3)]),
    }


def map_checks(seed: int = 0, xp=np) -> list[dict]:
    r"""Adjoint identities of every linear map against its explicit matrices.

    With ``M = input_matrix(W, m)``, ``K = weight_matrix(X)``, ``S = bias_matrix(m)``
    (C-order vectorisations, float64): ``vec A(X; W) = M vec X = K vec W``,
    ``vec A_X^T(G) = M^T vec G``, ``vec dW = K^T vec G``, ``db = S^T vec G``,
    ``vec(A(X;W) + b) = K vec W + S b``, and the inner-product identity
    :math:`\langle A(X), G\rangle = \langle X, A^\top G\rangle`, each to 1e-12 relative.
    """
    rng = np.random.default_rng(seed)
    out = []
    m = 3
    for label, mp in _map_zoo().items():
        t0 = time.perf_counter()
        X = rng.standard_normal((m,) + mp.in_shape)
        G = rng.standard_normal((m,) + mp.out_shape)
        W = b = None
        if mp.has_weights:
            W = rng.standard_normal(mp.weight_shape)
            b = rng.standard_normal(mp.bias_shape)
        Xd, Gd, Wd, bd = (None if a is None else xp.asarray(a) for a in (X, G, W, b))
        errs = {}

        def rel(a, ref):
            a = np.asarray(to_numpy(a), dtype=float).ravel()
            ref = np.asarray(ref, dtype=float).ravel()
            return float(np.max(np.abs(a - ref)) / max(1.0, float(np.max(np.abs(ref)))))

        try:
            M = mp.input_matrix(W, m)
            errs["forward_vs_input_matrix"] = rel(mp.apply(Xd, Wd), M @ X.ravel())
            errs["adjoint_input_vs_transpose"] = rel(mp.adjoint_input(Gd, Wd), M.T @ G.ravel())
            lhs = float(np.vdot(to_numpy(mp.apply(Xd, Wd)), G))
            rhs = float(np.vdot(X, to_numpy(mp.adjoint_input(Gd, Wd))))
            errs["inner_product_identity_input"] = abs(lhs - rhs) / max(1.0, abs(lhs))
            if mp.has_weights:
                K = mp.weight_matrix(X)
                S = mp.bias_matrix(m)
                errs["forward_vs_weight_matrix"] = rel(mp.apply(Xd, Wd, bd), K @ W.ravel() + S @ b.ravel())
                dW, db = mp.adjoint_weights(Gd, Xd)
                errs["adjoint_weights_vs_transpose"] = rel(dW, K.T @ G.ravel())
                errs["adjoint_bias_vs_transpose"] = rel(db, S.T @ G.ravel())
                lhs = float(np.vdot(to_numpy(mp.apply(Xd, Wd)), G))
                rhs = float(np.vdot(W, to_numpy(dW)))
                errs["inner_product_identity_weights"] = abs(lhs - rhs) / max(1.0, abs(lhs))
            worst = max(errs.values())
            out.append({"check": "map-adjoint", "map": label, "errors": errs, "max_error": worst,
                        "passed": worst <= 1e-12, "seconds": time.perf_counter() - t0})
        except Exception as exc:  # noqa: BLE001
            out.append({"check": "map-adjoint", "map": label, "errors": errs, "passed": False,
                        "message": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0})
    return out


# ---------------------------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------------------------
def versions() -> dict:
    """Versions of Python and of the packages the suite exercises."""
    from importlib import metadata
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "cvxpy", "ecos", "scs", "clarabel", "cvx-fenchel", "cupy", "cupy-cuda12x",
                "cupy-cuda13x"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu_info() -> dict:
    """CPU model (``/proc/cpuinfo``), logical CPUs usable by this process, BLAS threads if known."""
    import os
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    info = {"cpu_model": model, "logical_cpus": n}
    try:
        from threadpoolctl import threadpool_info
        info["blas_threads"] = max((p.get("num_threads", 0) for p in threadpool_info()), default=None)
    except Exception:  # noqa: BLE001 - optional
        pass
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            info[var] = os.environ[var]
    return info


def run_suite(*, quick: bool = False, seed: int = 0, backend: str = "numpy", subproblems=None,
              solvers=SOLVERS, with_checks: bool = True, with_speed: bool | None = None,
              progress: Callable[[int, int, Spec], None] | None = None, specs: list[Spec] | None = None,
              command: str = "") -> dict:
    """Run the verification and return the JSON-able result.

    Parameters
    ----------
    quick : bool
        The reduced set of :func:`make_specs` (about a minute on 2 cores).
    seed : int
        Base seed: instance ``k`` is drawn from ``seed * 100003 + k``.
    backend : {"numpy", "cupy"}
        Array module of the fast path (CVXPY always runs on the host).
        ``"cupy"`` raises :class:`~cvx_fenchel.errors.BackendError` without a GPU.
    subproblems : iterable of str or None
        Restrict to these subproblem ids (default: all of :data:`SUBPROBLEMS`).
    with_speed : bool or None
        Run the MNIST-scale speed comparison (:mod:`verification.speed`); default: not in quick mode.

    Returns
    -------
    dict with ``meta``, ``records`` (list of :class:`Record` as dicts), ``activation_checks``,
    ``map_checks``, ``speed`` (or None) and ``summary`` (counts, failures, ``passed``).
    """
    from cvx_fenchel.backend import get_backend

    xp = get_backend(backend)
    t_start = time.perf_counter()
    if specs is None:
        specs = make_specs(quick, seed)
    if subproblems is not None:
        keep = set(subproblems)
        specs = [s for s in specs if s.subproblem in keep]
    records: list[Record] = []
    for i, spec in enumerate(specs):
        records.extend(run_case(spec, solvers=solvers, xp=xp))
        if progress is not None:
            progress(i + 1, len(specs), spec)
    act = activation_checks(solvers, seed, xp=xp) if with_checks else []
    maps = map_checks(seed, xp=xp) if with_checks else []
    speed = None
    if with_speed if with_speed is not None else not quick:
        from .speed import run_speed
        speed = run_speed(seed=seed)
    recs = [dataclasses.asdict(r) for r in records]
    verdicts = instance_verdicts(recs)
    failed_instances = sorted(i for i, ok in verdicts.items() if not ok)
    n_fail = sum(not r["passed"] and not r["solver_failed"] for r in recs)
    n_solver_failed = sum(bool(r["solver_failed"]) for r in recs)
    n_check_fail = sum(not c["passed"] for c in act + maps)
    speed_ok = True if speed is None else bool(speed.get("correct", True))
    summary = {
        "instances": len(specs),
        "records": len(recs),
        "failed_records": n_fail,
        "solver_failures": n_solver_failed,
        "failed_instances": failed_instances,
        "failed_checks": n_check_fail,
        "speed_objectives_match": speed_ok,
        "passed": not failed_instances and n_check_fail == 0 and speed_ok,
        "seconds": time.perf_counter() - t_start,
    }
    meta = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": quick, "seed": seed, "backend": backend, "dtype": "float64",
        "fast_tol": FAST_TOL, "fast_max_iter": FAST_MAX_ITER, "gap_tol": GAP_TOL, "residual_tol": RES_TOL,
        "perturbation_slack": PERTURB_SLACK, "bound_slack": BOUND_SLACK,
        "solvers": list(solvers), "versions": versions(), "platform": platform.platform(), **cpu_info(),
        "rel_gap_definition": "|f_fast - f_cvx| / max(1, |f_cvx|)",
        "fast_excess_definition": "(f_fast - f_cvx) / max(1, |f_cvx|); a comparison passes when it is "
                                  "<= gap_tol and the residual <= residual_tol",
        "instance_rule": "an instance passes when no comparison fails except by a CVXPY solver "
                         "returning no optimal status, and at least one comparison passes",
        "x_dist_definition": "max abs difference between the minimisers (informational)",
    }
    return {"meta": meta, "summary": summary, "records": recs, "activation_checks": act, "map_checks": maps,
            "speed": speed}
