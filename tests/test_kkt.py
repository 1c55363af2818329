"""Issue 13, point 13: KKT residuals in verification, and "solved but wrong" in both directions.

For every subproblem family the KKT residuals (verification.kkt) are ~0 at a CVXPY optimum and
clearly non-zero at a perturbed point; they bound the suboptimality as documented (stationarity of
W- and X-steps from below, the simplex step's duality gap from above) and are scale-free; a fast
result that claims convergence at a wrong point fails its instance, and a CVXPY result with status
optimal at a wrong point is flagged and counted but does not fail it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cvx_fenchel import subproblems as sp
from cvx_fenchel.solvers import FastResult
from cvx_fenchel.subproblems.instances import Spec
from cvx_fenchel.subproblems.registry import SubproblemKind
from verification.kkt import KKT_TOL, kkt_residuals
from verification.report import markdown
from verification.suite import build_instance, kkt_summary, run_case, run_suite

#: One case per family (and the constraint kinds inside the X-step family).
CASES = [
    Spec("W-hidden", "relu", None, "dense", "random", 1),
    Spec("W-hidden", "tanh", None, "conv", "random", 2),
    Spec("W-last-ce", None, "cross_entropy", "conv+flatten", "random", 3),
    Spec("W-last-mse", None, "mse", "dense", "random", 4),
    Spec("LNN-W", None, None, "pool+conv", "random", 5),
    Spec("X-hidden", "relu", None, "conv", "random", 6),      # Z >= 0, finite multipliers
    Spec("X-hidden", "sigmoid", None, "dense", "random", 7),  # barrier-like potential on [0, 1]
    Spec("X-hidden", "hardtanh", None, "dense", "random", 8),  # a box with both bounds
    Spec("X-last-ce", "leaky_relu", "cross_entropy", "dense", "random", 9),  # unconstrained
    Spec("LNN-X", None, None, "dense", "random", 10),
    Spec("LNN-simplex-CE", None, "cross_entropy", "none", "random", 11),
    Spec("lower-bound", "relu", "mse", "dense", "random", 12),
]


def _perturb(problem, x, t, seed=0):
    """``x`` moved by ``t`` (relative to max(1, ||x||)) in a random direction, kept feasible."""
    rng = np.random.default_rng(seed)
    if isinstance(x, tuple):
        return tuple(a + t * max(1.0, float(np.linalg.norm(a))) * rng.standard_normal(a.shape) / np.sqrt(a.size)
                     for a in x)
    y = x + t * max(1.0, float(np.linalg.norm(x))) * rng.standard_normal(x.shape) / np.sqrt(x.size)
    if isinstance(problem, sp.LNNSimplexCE):
        y = np.maximum(y, 1e-3)
        return y / y.sum(axis=1, keepdims=True)
    return problem.prev.project(y)


@pytest.fixture(scope="module", params=CASES, ids=lambda s: s.label())
def solved(request):
    inst = build_instance(request.param)
    x, res = inst.problem.solve_cvxpy("CLARABEL")
    return inst, x, float(res.objective)


def test_kkt_is_zero_at_the_cvxpy_optimum(solved):
    inst, x, _ = solved
    k = kkt_residuals(inst.problem, x)
    assert k.kkt <= 1e-6, k
    assert k.primal_feasibility <= 1e-8
    fast = inst.problem.solve_fast(tol=1e-10, warn=False)
    assert kkt_residuals(inst.problem, fast.x).kkt <= 1e-7


def test_kkt_is_clearly_nonzero_at_a_perturbed_point(solved):
    inst, x, _ = solved
    k0 = kkt_residuals(inst.problem, x)
    k = kkt_residuals(inst.problem, _perturb(inst.problem, x, 0.05))
    assert k.kkt > 1e-4 and k.kkt > 1e3 * k0.kkt, (k0, k)


def test_stationarity_bounds_the_suboptimality(solved):
    """W- and X-steps: a certified lower bound on (f(x) - f*) / max(1, |f(x)|); the simplex step's
    duality gap an upper bound."""
    inst, x, f_star = solved
    for t in (1e-3, 1e-2, 1e-1):
        y = _perturb(inst.problem, x, t, seed=int(t * 1e4))
        k = kkt_residuals(inst.problem, y)
        sub = (k.objective - f_star) / max(1.0, abs(k.objective))
        slack = 1e-7  # Clarabel's accuracy in f*
        if k.bound == "lower":
            assert k.stationarity <= sub + slack, (t, k, sub)
        else:
            assert k.stationarity >= sub - slack, (t, k, sub)
        assert k.stationarity > 0


def test_primal_infeasibility_is_reported():
    inst = build_instance(CASES[5])  # X-hidden, ReLU: Z >= 0
    Z = inst.problem.solve_fast(tol=1e-10, warn=False).x.copy()
    Z.flat[0] = -0.1
    k = kkt_residuals(inst.problem, Z)
    assert k.primal_feasibility >= 0.1 / max(1.0, float(np.max(np.abs(Z)))) * 0.999
    inst = build_instance(CASES[10])  # simplex rows
    Z = inst.problem.solve_fast().x.copy()
    Z[0] *= 1.01
    assert kkt_residuals(inst.problem, Z).primal_feasibility > 1e-3


def test_w_step_stationarity_is_scale_free():
    """Features times s (weights over s, rho = gamma = 0: the same problem in other units) and the
    objective times c leave the W-step's stationarity unchanged; ||g|| / L does not."""
    p = build_instance(CASES[0]).problem
    base = sp.WHidden(p.X, p.X_next, "relu", lam=p.lam, W0=p.W0, b0=p.b0, linear_map=p.map)
    x = _perturb(base, base.solve_fast(tol=1e-12, warn=False).x, 0.1)
    ref = kkt_residuals(base, x).stationarity
    s = 1e3
    scaled = sp.WHidden(p.X * s, p.X_next, "relu", lam=p.lam, linear_map=p.map)
    assert kkt_residuals(scaled, (x[0] / s, x[1])).stationarity == pytest.approx(ref, rel=1e-6)
    assert scaled.residual((x[0] / s, x[1])) < 1e-2 * base.residual(x)  # the Euclidean residual is not
    heavy = sp.WHidden(p.X, p.X_next, "relu", lam=10 * p.lam, linear_map=p.map)
    if abs(base.objective(x)) >= 1:
        assert kkt_residuals(heavy, x).stationarity == pytest.approx(ref, rel=1e-9)


def test_float32_problems_are_checked_in_float64():
    p = build_instance(CASES[0]).problem
    p32 = sp.WHidden(p.X.astype(np.float32), p.X_next.astype(np.float32), "relu", lam=p.lam, rho=p.rho,
                     gamma=p.gamma, W0=p.W0.astype(np.float32), b0=p.b0.astype(np.float32), linear_map=p.map)
    x = p.solve_fast(tol=1e-12, warn=False).x
    assert kkt_residuals(p32, x).kkt <= 1e-9  # float32 data, float64 arithmetic at the float64 optimum


def _lying(method, scale=1e-2, converged=True):
    """A solve_fast returning the minimiser moved by ``scale`` and claiming ``converged``."""
    def wrong(self, *args, **kwargs):
        r = method(self, *args, **kwargs)
        x = tuple(a + scale for a in r.x) if isinstance(r.x, tuple) else r.x + scale
        return FastResult(x, r.objective, r.n_iter, converged, r.residual, r.seconds)
    return wrong


@pytest.mark.parametrize("spec, cls", [
    (CASES[0], sp.WHidden),
    (CASES[5], sp.XHidden),
    (CASES[9], sp.LNNX),
])
def test_fast_result_falsely_claiming_convergence_is_solved_but_wrong(monkeypatch, spec, cls):
    good = run_case(spec, solvers=("CLARABEL",))
    assert all(r.passed and not r.solved_but_wrong for r in good)
    assert good[0].kkt["kkt"] <= KKT_TOL["float64"]
    monkeypatch.setattr(cls, "solve_fast", _lying(cls.solve_fast))
    bad = run_case(spec, solvers=("CLARABEL",))
    assert bad and all(r.solved_but_wrong and not r.passed for r in bad)
    assert all("solved but wrong" in r.message for r in bad)
    assert bad[0].kkt["kkt"] > KKT_TOL["float64"]


def test_honest_non_convergence_is_not_solved_but_wrong(monkeypatch):
    spec = CASES[5]
    monkeypatch.setattr(sp.XHidden, "solve_fast", _lying(sp.XStep.solve_fast, converged=False))
    recs = run_case(spec, solvers=("CLARABEL",))
    assert recs and not any(r.solved_but_wrong for r in recs)
    assert not any(r.passed for r in recs)  # still wrong: the gap test fails it


def test_cvxpy_optimal_but_inaccurate_is_flagged_not_failed(monkeypatch):
    spec = CASES[3]  # W-last-mse
    real = SubproblemKind.solve_cvxpy

    def inaccurate(self, inst, solver, **kwargs):
        x, f, extra = real(self, inst, solver, **kwargs)
        return tuple(a + 0.05 for a in x), f, extra  # status optimal, the same value, a wrong point

    monkeypatch.setattr(SubproblemKind, "solve_cvxpy", inaccurate)
    recs = run_case(spec, solvers=("CLARABEL", "ECOS"))
    assert recs and all(r.cvx_solved_but_wrong and r.passed and r.cvx_status == "optimal" for r in recs)
    assert all(r.kkt_cvx["kkt"] > 1e-4 for r in recs)
    summ = kkt_summary([dataclasses.asdict(r) for r in recs])
    assert len(summ["cvx_optimal_but_inaccurate"]) == 2 and summ["fast_solved_but_wrong"] == []


def test_report_shows_kkt_per_case_and_counts(monkeypatch):
    monkeypatch.setattr(sp.LNNX, "solve_fast", _lying(sp.XStep.solve_fast))
    specs = [CASES[9], CASES[10]]
    result = run_suite(specs=specs, solvers=("CLARABEL",), with_checks=False, with_speed=False)
    s = result["summary"]
    assert s["passed"] is False and s["fast_solved_but_wrong"] == [CASES[9].label()]
    assert all(r["kkt"] is not None and "stationarity" in r["kkt"] for r in result["records"])
    md = markdown(result)
    assert "1 fast results solved but wrong" in md
    assert "## KKT residuals per case" in md and CASES[10].label() in md
    assert f"| {CASES[9].label()} | yes |" in md  # the per-case row of the lying fast result
