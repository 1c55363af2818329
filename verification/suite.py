r"""The verification suite: every BCD subproblem's fast path against its CVXPY twin.

For every subproblem kind of the registry (:mod:`cvx_fenchel.subproblems.registry`) x
activation x loss x linear map it applies to (the kind queries the activation, loss and map
registries: nothing here lists them) the suite draws random, edge-case and ill-conditioned
instances (the kind's seeded generator, :mod:`cvx_fenchel.subproblems.instances`), solves each

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

An activation without a CVXPY form (``has_cvxpy = False``: softplus, whose potential
involves the dilogarithm) is verified by the residual plus a perturbation test: for random directions
``D`` and steps ``t`` in 1e-1..1e-4 the feasible points ``P(x + t D)`` (``P``
the projection on the domain) never have a smaller objective than ``x``
beyond ``1e-9 max(1, |f|)`` (solver ``"perturbation"``).

Variants: ``random``; edge cases ``one-sample`` (m = 1), ``one-unit`` (hidden
width / channels 1), ``all-negative`` (all pre-activations negative),
``tiny-lambda`` (1e-3) and ``huge-lambda`` (1e3) for the subproblem's divergence
weights (the loss weight ``coef`` for the output W-step), ``rho=0`` and
``gamma=0`` (W-steps), ``zero-input`` (the data fixed inside the subproblem is
0); ill-conditioned ``scale=1e-3`` and ``scale=1e4`` (data scaled) and
``small-rho`` (W-steps, rho = 1e-5, gamma = 0). See
:mod:`cvx_fenchel.subproblems.instances`.

Besides the subproblems the suite checks (:mod:`verification.checks`) every registered
activation's argmin property and every registered map's adjoints against its explicit
matrices.
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

from cvx_fenchel.backend import to_numpy
from cvx_fenchel.cvx import solve
from cvx_fenchel.errors import SolverError
from cvx_fenchel.machine import cpu_info, versions
from cvx_fenchel.subproblems import get_kind, kind_names, kinds
from cvx_fenchel.subproblems.instances import ILL_CONDITIONED, W_ILL_CONDITIONED, W_ILL_GRID, Instance, Spec

from .checks import activation_checks, map_checks
from .kkt import KKT_TOL, kkt_residuals

__all__ = ["SOLVERS", "GAP_TOL", "RES_TOL", "FAST_TOL", "KKT_TOL", "ILL_GAP_TOL", "Spec", "Record", "make_specs", "build_instance",
           "run_case", "activation_checks", "map_checks", "run_suite", "instance_verdicts", "subproblem_ids",
           "kkt_summary"]

#: CVXPY solvers compared, with their relative-objective-gap tolerances.
SOLVERS = ("ECOS", "SCS", "CLARABEL")
GAP_TOL = {"ECOS": 1e-6, "CLARABEL": 1e-6, "SCS": 1e-4}
#: Tolerance of the fast path's optimality residual (float64).
RES_TOL = 1e-6
#: Gap tolerance tier of the ill-conditioned grid variants ``s=<scale>,rho=<rho>``
#: (:data:`~cvx_fenchel.subproblems.instances.W_ILL_GRID`, L/mu up to ~1e12): the fast path's excess
#: over a solver may reach this (comparisons between GAP_TOL and it pass with status
#: ``ok (ill-conditioned tier)``, counted and listed in the report).
ILL_GAP_TOL = 1e-4
#: Tolerance handed to ``solve_fast``.
FAST_TOL = 1e-10
FAST_MAX_ITER = 100_000
#: Slack of the perturbation test, relative to max(1, |f|).
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


W_ILL_GRID_VARIANTS = frozenset(f"s={a},rho={r}" for a, r in W_ILL_GRID)


def subproblem_ids() -> tuple[str, ...]:
    """Subproblem ids in report order: the registry's kinds."""
    return kind_names()



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
    kkt: dict | None = None
    kkt_cvx: dict | None = None
    kkt_tol: float | None = None
    solved_but_wrong: bool = False
    cvx_status: str | None = None
    cvx_solved_but_wrong: bool = False
    extra: dict = field(default_factory=dict)
    status: str = "ok"
    message: str = ""
    passed: bool = False




# ---------------------------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------------------------
def make_specs(quick: bool, seed: int, n_random: int = 3) -> list[Spec]:
    """The instances of a run, from the registry of subproblem kinds.

    Full: every kind x activation x loss x map it applies to, with ``n_random`` random instances
    and every edge variant; the ill-conditioned variants for every activation on the kind's first
    map and for the first activation on its other maps. Quick: every kind x activation on the
    first map (random), each further map once (first activation), and each variant once (first
    activation and map).
    """
    specs: list[Spec] = []
    k = 0

    def add(sub, act, loss, m, variant):
        nonlocal k
        specs.append(Spec(sub, act, loss, m, variant, seed * 100_003 + k))
        k += 1

    ill = set(ILL_CONDITIONED + W_ILL_CONDITIONED)
    for kind in kinds():
        acts, maps, losses = kind.activations(), kind.maps(), kind.losses()
        variants = kind.variants()
        for loss in losses:
            if quick:
                for act in acts:
                    add(kind.name, act, loss, maps[0], "random")
                for m in maps[1:]:
                    add(kind.name, acts[0], loss, m, "random")
                if loss == losses[0]:
                    for v in variants:
                        add(kind.name, acts[0], loss, maps[0], v)
                continue
            for act in acts:
                for m in maps:
                    for _ in range(n_random):
                        add(kind.name, act, loss, m, "random")
                    for v in variants:
                        if v not in ill or m == maps[0] or act == acts[0]:
                            add(kind.name, act, loss, m, v)
    return specs


def build_instance(spec: Spec, xp=np, dtype=np.float64) -> Instance:
    """The instance of ``spec``, built by its kind's seeded generator on the array module ``xp``."""
    return get_kind(spec.subproblem).build_instance(spec, xp=xp, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# one case
# ---------------------------------------------------------------------------------------------
def _fast(inst: Instance):
    """``(x, seconds, n_iter, converged, extra)`` of the kind's fast path."""
    t0 = time.perf_counter()
    x, n_iter, conv, extra = get_kind(inst.spec.subproblem).solve_fast(inst, tol=FAST_TOL, max_iter=FAST_MAX_ITER)
    return x, time.perf_counter() - t0, n_iter, conv, extra


def _cvx(inst: Instance, solver: str):
    """``(x, objective, seconds, extra)`` of CVXPY with ``solver``.

    First the library's own call (the kind's ``solve_cvxpy``, which walks
    :data:`cvx_fenchel.cvx.LADDERS`, with :data:`PRIMARY` settings where given). If that ends with a
    status other than optimal or with a non-finite objective, the same declaration is solved again
    with the looser settings of :data:`FALLBACK` (recorded in ``extra``), the last of them accepting
    the status ``optimal_inaccurate`` (recorded as ``extra["cvx_status"]``); a looser CVXPY solve
    can only make the objective comparison harder to pass, which still applies unchanged. Raises
    SolverError when none of these ends optimal (or optimal_inaccurate at the last step)."""
    kind = get_kind(inst.spec.subproblem)
    t0 = time.perf_counter()
    try:
        x, f, extra = kind.solve_cvxpy(inst, solver, **PRIMARY.get(solver, {}))
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
        prob, var = kind.cvxpy_problem(inst)
        try:
            res = solve(prob, solver, settings=settings, accept_inaccurate=inaccurate_ok, name=kind.name)
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
                 **({"solver_messages": res.messages} if res.messages else {}),
                 "library_message": first}
        if note:
            extra["note"] = note
        if inst.bound_args is not None:
            extra["p_cvx"] = float(inst.p)
        return x, f, time.perf_counter() - t0, extra
    raise SolverError(f"{first}; fallback settings: {last or 'none optimal'}", status=first_status)


def _perturb(inst: Instance, x, rng: np.random.Generator, t: float):
    """A feasible point near ``x``: ``P(x + t ||x|| D)`` with ``D`` Gaussian of unit norm (``P`` the
    problem's projection on its domain where it has one)."""
    xp = inst.problem.xp
    if isinstance(x, tuple):
        parts = []
        for a in x:
            d = rng.standard_normal(a.shape)
            parts.append(a + xp.asarray(t * d / np.linalg.norm(d) * max(1.0, float(xp.linalg.norm(a)))))
        return tuple(parts)
    d = rng.standard_normal(x.shape)
    y = x + xp.asarray(t * d / np.linalg.norm(d) * max(1.0, float(xp.linalg.norm(x))), dtype=x.dtype)
    prev = getattr(inst.problem, "prev", None)
    return y if prev is None else prev.project(y)


def _flat(x) -> np.ndarray:
    if isinstance(x, (tuple, list)):
        return np.concatenate([np.asarray(to_numpy(a), dtype=float).ravel() for a in x])
    return np.asarray(to_numpy(x), dtype=float).ravel()


def _gap_tol(spec: Spec, solver: str) -> float:
    """The gap tolerance of a comparison: the solver's, or the ill-conditioned tier for the grid variants."""
    return max(GAP_TOL[solver], ILL_GAP_TOL) if spec.variant in W_ILL_GRID_VARIANTS else GAP_TOL[solver]


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def _kkt(inst: Instance, x) -> tuple[dict | None, str]:
    """``(KKT residuals as a dict, "")`` of ``x`` (:mod:`verification.kkt`), or ``(None, message)``
    when they cannot be computed (a failure of the fast path's record, a note on a CVXPY one)."""
    try:
        return kkt_residuals(inst.problem, x).as_dict(), ""
    except Exception as exc:  # noqa: BLE001 - reported, never a crash
        return None, f"KKT residuals not computed: {type(exc).__name__}: {exc}"


def run_case(spec: Spec, *, solvers=SOLVERS, xp=np, dtype=np.float64, rng_perturb: int = 0) -> list[Record]:
    """Build ``spec``, solve it by the fast path and by each CVXPY solver; one Record per solver
    (or one ``"perturbation"`` Record for an activation without a CVXPY form). Never raises: errors become failed Records."""
    base = dict(id=spec.label(), subproblem=spec.subproblem, activation=spec.activation, loss=spec.loss,
                map=spec.map, variant=spec.variant, seed=spec.seed)
    try:
        inst = build_instance(spec, xp=xp, dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, fsec, n_iter, conv, fextra = _fast(inst)
        f_fast = float(inst.problem.objective(x))
        res = float(inst.problem.residual(x))
    except Exception as exc:  # noqa: BLE001 - a broken case is a failed record, not a crash
        return [Record(**base, shape="?", solver="fast", status="error",
                       message=f"{type(exc).__name__}: {exc}", passed=False)]
    kkt_tol = KKT_TOL[np.dtype(dtype).name]
    kf, kkt_msg = _kkt(inst, x)
    sbw = bool(conv) and kf is not None and not kf["kkt"] <= kkt_tol
    common = dict(base, shape=inst.shape, objective_fast=f_fast, residual=res, fast_seconds=fsec,
                  fast_iters=n_iter, fast_converged=conv, kkt=kf, kkt_tol=kkt_tol, solved_but_wrong=sbw)
    res_ok = bool(math.isfinite(res) and res <= RES_TOL)
    bound_msgs = [kkt_msg] if kkt_msg else []
    if sbw:
        bound_msgs.append(f"solved but wrong: converged=True but KKT residual {kf['kkt']:.3g} > {kkt_tol:g} "
                          f"(stationarity {kf['stationarity']:.3g}, feasibility {kf['primal_feasibility']:.3g}, "
                          f"complementarity {_fmt(kf['complementarity'])})")
    if inst.bound_args is not None:
        G, p = fextra["G_fast"], fextra["p"]
        fextra["G_matches_objective"] = abs(G - f_fast) <= 1e-9 * max(1.0, abs(f_fast))
        fextra["G_le_p"] = G <= p + BOUND_SLACK * max(1.0, abs(p))
        if not fextra["G_matches_objective"]:
            bound_msgs.append(f"lower_bound G={G:.12g} differs from the objective at X1 {f_fast:.12g}")
        if not fextra["G_le_p"]:
            bound_msgs.append(f"lower bound G={G:.12g} exceeds p={p:.12g}")
    out = []
    if inst.act is not None and not inst.act.has_cvxpy:
        rng = np.random.default_rng(spec.seed + 7 + rng_perturb)
        t0 = time.perf_counter()
        worst = math.inf
        n_trials = 0
        try:
            for t in (1e-1, 1e-2, 1e-3, 1e-4):
                for _ in range(8):
                    worst = min(worst, float(inst.problem.objective(_perturb(inst, x, rng, t))))
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
                xc, f_cvx, csec, cextra = _cvx(inst, solver)
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
        kc, kc_msg = _kkt(inst, xc)
        cstatus = str(cextra.get("cvx_status", "optimal"))
        cflag = cstatus == "optimal" and kc is not None and not kc["kkt"] <= GAP_TOL[solver]
        if kc_msg:
            extra["kkt_cvx_error"] = kc_msg
        if inst.bound_args is not None:
            pc = cextra["p_cvx"]
            extra["G_cvx_le_p"] = f_cvx <= pc + GAP_TOL[solver] * max(1.0, abs(pc))
            if not extra["G_cvx_le_p"]:
                msgs.append(f"CVXPY bound G={f_cvx:.12g} exceeds p={pc:.12g}")
        # One-sided: the fast point is feasible (finite objective, in dom F by construction), so a
        # solver value above it by more than the tolerance is the solver's inaccuracy, not ours.
        gtol = _gap_tol(spec, solver)
        gap_ok = bool(math.isfinite(gap) and math.isfinite(f_fast) and excess <= gtol)
        if not gap_ok:
            msgs.append(f"fast path above {solver} by {excess:.3g} (relative) > {gtol:g}")
        if not res_ok:
            msgs.append(f"residual {res:.3g} > {RES_TOL:g}")
        ok = gap_ok and res_ok and not msgs
        status = ("ok" if gap <= GAP_TOL[solver] else "ok (ill-conditioned tier)" if excess > GAP_TOL[solver]
                  else "ok (solver less accurate)") if ok else "failed"
        out.append(Record(**common, solver=solver, objective_cvx=f_cvx, rel_gap=gap, x_dist=dist,
                          cvx_seconds=csec, gap_tol=gtol, fast_excess=excess, extra=extra,
                          kkt_cvx=kc, cvx_status=cstatus, cvx_solved_but_wrong=cflag,
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


def kkt_summary(recs: list[dict]) -> dict:
    """Counts of the KKT checks: ``fast_solved_but_wrong`` (instance ids whose fast result claimed
    convergence with KKT residuals above their tier), ``cvx_optimal_but_inaccurate`` (``[id, solver]``
    pairs: CVXPY status optimal, KKT residuals above the solver's tier), ``kkt_not_computed``
    (instance ids)."""
    return {
        "fast_solved_but_wrong": sorted({r["id"] for r in recs if r.get("solved_but_wrong")}),
        "cvx_optimal_but_inaccurate": sorted([r["id"], r["solver"]] for r in recs if r.get("cvx_solved_but_wrong")),
        "kkt_not_computed": sorted({r["id"] for r in recs if r.get("kkt") is None}),
    }


def _one_blas_thread():
    """One BLAS thread for the tiny instances (with threadpoolctl installed; else a no-op): on a busy
    machine, multi-threaded BLAS calls on 20 x 20 matrices spend most of their time waiting for
    threads (a 60-fold slowdown measured on 2 shared cores). The speed rows run outside it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def run_suite(*, quick: bool = False, seed: int = 0, backend: str = "numpy", subproblems=None,
              solvers=SOLVERS, with_checks: bool = True, with_speed: bool | None = None,
              progress: Callable[[int, int, Spec], None] | None = None, specs: list[Spec] | None = None,
              command: str = "", run_cases: Callable[..., list[Record]] | None = None) -> dict:
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
        Restrict to these subproblem ids (default: every kind of the registry).
    with_speed : bool or None
        Run the MNIST-scale speed comparison (:mod:`verification.speed`); default: not in quick mode.
    run_cases : callable or None
        ``run_cases(specs, solvers=..., backend=..., progress=...) -> list[Record]``, the records of
        ``specs`` in their order, computed elsewhere (:mod:`verification.fanout` runs them on a Dask
        cluster); default: :func:`run_case` on each spec here, one after another. Everything else
        (checks, speed row, summary) is the same either way.

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
    with _one_blas_thread():
        if run_cases is not None:
            records = list(run_cases(specs, solvers=solvers, backend=backend, progress=progress))
        else:
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
    ks = kkt_summary(recs)
    summary = {
        "instances": len(specs),
        "records": len(recs),
        "failed_records": n_fail,
        "solver_failures": n_solver_failed,
        "failed_instances": failed_instances,
        "failed_checks": n_check_fail,
        "speed_objectives_match": speed_ok,
        "fast_solved_but_wrong": ks["fast_solved_but_wrong"],
        "cvx_optimal_but_inaccurate": ks["cvx_optimal_but_inaccurate"],
        "kkt_not_computed": ks["kkt_not_computed"],
        "passed": not failed_instances and n_check_fail == 0 and speed_ok,
        "seconds": time.perf_counter() - t_start,
    }
    meta = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": quick, "seed": seed, "backend": backend, "dtype": "float64",
        "fast_tol": FAST_TOL, "fast_max_iter": FAST_MAX_ITER, "gap_tol": GAP_TOL, "residual_tol": RES_TOL,
        "ill_conditioned_gap_tol": ILL_GAP_TOL, "ill_conditioned_variants": sorted(W_ILL_GRID_VARIANTS),
        "perturbation_slack": PERTURB_SLACK, "bound_slack": BOUND_SLACK,
        "solvers": list(solvers), "versions": versions(), "platform": platform.platform(), **cpu_info(),
        "rel_gap_definition": "|f_fast - f_cvx| / max(1, |f_cvx|)",
        "fast_excess_definition": "(f_fast - f_cvx) / max(1, |f_cvx|); a comparison passes when it is "
                                  "<= gap_tol and the residual <= residual_tol",
        "instance_rule": "an instance passes when no comparison fails except by a CVXPY solver "
                         "returning no optimal status, and at least one comparison passes",
        "x_dist_definition": "max abs difference between the minimisers (informational)",
        "kkt_tol": KKT_TOL,
        "kkt_definition": "KKT residuals in float64 at the returned point (verification.kkt): stationarity, "
                          "complementarity in objective units relative to max(1, |f|), primal feasibility "
                          "relative to max(1, max|x|); kkt = the largest. A fast result with converged=True "
                          "and kkt > kkt_tol[dtype] is solved but wrong and fails; a CVXPY result with status "
                          "optimal and kkt > gap_tol[solver] is flagged and counted, not failed",
    }
    return {"meta": meta, "summary": summary, "records": recs, "activation_checks": act, "map_checks": maps,
            "speed": speed}
