"""The verification suite itself: the quick run passes and is well-formed, and it *can* fail.

The quick run (about a minute on 2 cores) is executed once per module through the command-line
entry point; the other tests run single cases with deliberately broken fast paths, adjoints or
activations and assert that the suite flags them.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from cvx_fenchel import subproblems as sp
from cvx_fenchel.activations import activation_names
from cvx_fenchel.backend import cupy_available
from cvx_fenchel.solvers import FastResult
from cvx_fenchel.subproblems import bound
from verification import cli
from verification.suite import (GAP_TOL, RES_TOL, SOLVERS, Spec, activation_checks, map_checks, run_case,
                                run_suite, subproblem_ids)

REQUIRED = {"subproblem", "activation", "loss", "map", "shape", "solver", "rel_gap", "x_dist", "residual",
            "fast_seconds", "cvx_seconds", "passed", "status", "variant", "seed"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    code = cli.main(["--quick", "--seed", "0", "--out", str(out)])
    with open(out / "verification.json") as fh:
        data = json.load(fh)
    report = (out / "REPORT.md").read_text()
    return code, data, report


def test_quick_run_passes_and_is_complete(quick_run):
    code, data, report = quick_run
    assert code == 0, [r for r in data["records"] if not r["passed"]][:5]
    assert data["summary"]["passed"] is True
    recs = data["records"]
    assert {r["subproblem"] for r in recs} == set(subproblem_ids())
    assert data["summary"]["failed_instances"] == []
    for r in recs:
        assert REQUIRED <= set(r), set(REQUIRED) - set(r)
        assert r["residual"] <= RES_TOL
        # a CVXPY solver may return no optimal status (ECOS, mostly at scale=1e4): counted, and the
        # instance is then verified by the other solvers
        assert r["passed"] is True or r["solver_failed"]
        if r["passed"] and r["solver"] in SOLVERS:
            assert r["fast_excess"] <= GAP_TOL[r["solver"]]
    assert sum(r["solver_failed"] for r in recs) <= 0.05 * len(recs)
    # the ill-conditioned variants are part of the run
    assert {"scale=1e-3", "scale=1e4", "small-rho"} <= {r["variant"] for r in recs}
    # every solver compared, every activation covered (softplus through the perturbation test)
    assert {r["solver"] for r in recs} == set(SOLVERS) | {"perturbation"}
    assert {r["activation"] for r in recs if r["activation"]} == set(activation_names())
    assert all(r["solver"] == "perturbation" for r in recs if r["activation"] == "softplus")
    assert {"dense", "conv", "pool+conv", "flatten+dense", "conv+flatten", "none"} <= {r["map"] for r in recs}
    assert {"cross_entropy", "mse"} <= {r["loss"] for r in recs if r["subproblem"] == "lower-bound"}
    meta = data["meta"]
    assert meta["backend"] == "numpy" and meta["dtype"] == "float64" and meta["seed"] == 0
    assert {"numpy", "scipy", "cvxpy"} <= set(meta["versions"])
    assert data["activation_checks"] and all(c["passed"] for c in data["activation_checks"])
    assert data["map_checks"] and all(c["passed"] for c in data["map_checks"])
    assert data["speed"] is None  # quick mode has no speed row
    assert "PASSED" in report and "| X-hidden |" in report and "|f_fast - f_cvx| / max(1, |f_cvx|)" in report


def test_lower_bound_records_check_g_le_p(quick_run):
    _, data, _ = quick_run
    lb = [r for r in data["records"] if r["subproblem"] == "lower-bound"]
    assert lb
    for r in lb:
        assert r["extra"]["G_le_p"] is True
        assert r["extra"]["G_fast"] <= r["extra"]["p"] + 1e-9 * max(1.0, abs(r["extra"]["p"]))


def _perturbed(method, scale=1e-2):
    """A solve_fast that returns the true minimiser moved by ``scale`` (and lies about it)."""
    def wrong(self, *args, **kwargs):
        r = method(self, *args, **kwargs)
        if isinstance(r.x, tuple):
            x = tuple(a + scale for a in r.x)
        else:
            x = r.x + scale  # stays in the domain for ReLU / softplus (Z >= 0)
        return FastResult(x, r.objective, r.n_iter, True, r.residual, r.seconds)
    return wrong


@pytest.mark.parametrize("spec, cls", [
    (Spec("W-last-ce", None, "cross_entropy", "dense", "random", 11), sp.WLast),
    (Spec("X-hidden", "relu", None, "conv", "random", 12), sp.XHidden),
    (Spec("LNN-W", None, None, "dense", "random", 13), sp.LNNW),
])
def test_wrong_fast_result_is_flagged(monkeypatch, spec, cls):
    good = run_case(spec, solvers=("CLARABEL",))
    assert all(r.passed for r in good)
    monkeypatch.setattr(cls, "solve_fast", _perturbed(cls.solve_fast))
    bad = run_case(spec, solvers=("CLARABEL",))
    assert bad and not any(r.passed for r in bad)
    assert all(r.rel_gap > GAP_TOL["CLARABEL"] and r.residual > RES_TOL for r in bad)


def test_wrong_softplus_result_is_flagged(monkeypatch):
    spec = Spec("X-last-mse", "softplus", "mse", "dense", "random", 14)
    assert all(r.passed for r in run_case(spec))
    monkeypatch.setattr(sp.XLast, "solve_fast", _perturbed(sp.XLast.solve_fast, 0.05))
    (rec,) = run_case(spec)
    assert rec.solver == "perturbation" and not rec.passed
    assert rec.rel_gap > 0 and rec.residual > RES_TOL


def test_lower_bound_above_p_is_flagged(monkeypatch):
    spec = Spec("lower-bound", "relu", "cross_entropy", "dense", "random", 15)
    real = bound.lower_bound

    def lying(*args, **kwargs):
        out = real(*args, **kwargs)
        return dataclasses.replace(out, G=out.p + 1.0, gap=-1.0)

    monkeypatch.setattr(bound, "lower_bound", lying)
    recs = run_case(spec, solvers=("CLARABEL",))
    assert recs and not any(r.passed for r in recs)
    assert any("exceeds p" in r.message for r in recs)


def test_solver_error_is_a_failed_record_not_a_crash(monkeypatch):
    from cvx_fenchel.errors import SolverError

    def broken(*args, **kwargs):
        raise SolverError("forced failure", status="infeasible")

    monkeypatch.setattr("verification.suite.solve", broken)
    monkeypatch.setattr(sp.LNNX, "solve_cvxpy", lambda self, solver="CLARABEL", **kw: broken())
    (rec,) = run_case(Spec("LNN-X", None, None, "dense", "random", 16), solvers=("ECOS",))
    assert not rec.passed and rec.status == "infeasible" and "forced failure" in rec.message


def test_map_checks_catch_a_wrong_adjoint(monkeypatch):
    from cvx_fenchel.maps import Dense
    assert all(c["passed"] for c in map_checks())
    monkeypatch.setattr(Dense, "_adjoint_input", lambda self, G, W, xp: 1.001 * (G @ W.T))
    bad = {c["map"]: c for c in map_checks()}
    assert not bad["dense 4->3"]["passed"] and not bad["flatten+dense"]["passed"]
    assert bad["conv+flatten"]["passed"]


def test_activation_checks_catch_a_wrong_activation(monkeypatch):
    from cvx_fenchel.activations import Tanh
    monkeypatch.setattr(Tanh, "forward", lambda self, u: np.tanh(np.asarray(u)) * 0.999)
    res = [c for c in activation_checks(solvers=("CLARABEL",)) if c["activation"] == "tanh"]
    assert res and not any(c["passed"] for c in res)


def test_run_suite_restricts_and_summarises():
    specs = [Spec("LNN-simplex-CE", None, "cross_entropy", "none", "random", 17)]
    res = run_suite(specs=specs, with_checks=False, with_speed=False, solvers=("CLARABEL", "SCS"))
    assert res["summary"]["instances"] == 1 and res["summary"]["records"] == 2
    assert res["summary"]["passed"] is True
    assert all(math.isfinite(r["rel_gap"]) for r in res["records"])


@pytest.mark.skipif(cupy_available(), reason="a GPU is available: the cupy backend is exercised instead")
def test_cupy_backend_without_gpu_exits_cleanly(tmp_path, capsys):
    code = cli.main(["--quick", "--backend", "cupy", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "--backend cupy" in err and "GPU" in err and "Traceback" not in err
    assert not (tmp_path / "verification.json").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_backend_cases_pass():
    import cupy
    specs = [Spec("X-hidden", "sigmoid", None, "dense", "random", 18),
             Spec("W-hidden", "relu", None, "conv", "random", 19),
             Spec("LNN-simplex-CE", None, "cross_entropy", "none", "random", 20)]
    res = run_suite(specs=specs, backend="cupy", with_checks=False, with_speed=False, solvers=("CLARABEL",))
    assert res["summary"]["passed"] and res["meta"]["backend"] == "cupy"
    assert cupy.cuda.runtime.getDeviceCount() >= 1


def test_solver_failure_alone_does_not_fail_an_instance_but_is_counted():
    from verification.suite import instance_verdicts
    ok = dict(passed=True, solver_failed=False)
    solver_down = dict(passed=False, solver_failed=True)
    fast_wrong = dict(passed=False, solver_failed=False)
    recs = [dict(id="a", **ok), dict(id="a", **solver_down),      # ECOS failed, Clarabel agreed
            dict(id="b", **solver_down), dict(id="b", **solver_down),  # nobody verified b
            dict(id="c", **ok), dict(id="c", **fast_wrong)]       # one solver disagrees
    assert instance_verdicts(recs) == {"a": True, "b": False, "c": False}


def test_gap_is_one_sided_fast_below_solver_passes(monkeypatch):
    """A solver whose value lies above the (feasible) fast point's is less accurate, not a failure;
    a fast point above the solver's value by more than the tolerance fails."""
    spec = Spec("LNN-W", None, None, "dense", "random", 13)
    real = sp.LNNW.solve_cvxpy

    def high(self, solver="CLARABEL", **kw):
        x, res = real(self, solver, **kw)
        res.objective = res.objective * (1 + 1e-3) + 1e-3
        return x, res

    def low(self, solver="CLARABEL", **kw):
        x, res = real(self, solver, **kw)
        res.objective = res.objective * (1 - 1e-3) - 1e-3
        return x, res

    monkeypatch.setattr(sp.LNNW, "solve_cvxpy", high)
    (rec,) = run_case(spec, solvers=("CLARABEL",))
    assert rec.passed and rec.status == "ok (solver less accurate)" and rec.fast_excess < 0
    assert rec.rel_gap > GAP_TOL["CLARABEL"]
    monkeypatch.setattr(sp.LNNW, "solve_cvxpy", low)
    (rec,) = run_case(spec, solvers=("CLARABEL",))
    assert not rec.passed and rec.fast_excess > GAP_TOL["CLARABEL"]


def _xlast_relu_ce(sub):
    r"""Independent formula: ``f(z), grad`` of :math:`c\,\mathrm{CE}(Y, ZW + b) + \lambda \sum (Z^2/2 +
    \max(U,0)^2/2 - UZ)` (ReLU, Z >= 0)."""
    Y, U, W, b = sub.Y, sub.U_prev, sub.W, sub.b
    c, lam = sub.coef, sub.lam_prev
    const = 0.5 * lam * float(np.sum(np.maximum(U, 0.0) ** 2))

    def fun(z):
        Z = z.reshape(U.shape)
        O = Z @ W + b
        mx = O.max(axis=1, keepdims=True)
        E = np.exp(O - mx)
        s = E.sum(axis=1, keepdims=True)
        f = c * ((mx[:, 0] + np.log(s[:, 0])).sum() - np.sum(Y * O)) + lam * (0.5 * np.sum(Z * Z) - np.sum(U * Z))
        return float(f + const), (c * (E / s - Y) @ W.T + lam * (Z - U)).ravel()
    return fun


def _whidden_relu(sub):
    r"""Independent formula: ``f(theta), grad`` of :math:`\lambda \sum (X_1^2/2 + \max(U,0)^2/2 - U X_1)
    + \rho\|\theta\|^2 + \gamma\|\theta - \theta_0\|^2`, ``U = XW + b`` (ReLU)."""
    X, V, W0, b0 = sub.X, sub.X_next, sub.W0, sub.b0
    lam, rho, gamma = sub.lam, sub.rho, sub.gamma
    n, k = W0.shape

    def fun(theta):
        W, b = theta[: n * k].reshape(n, k), theta[n * k:]
        U = X @ W + b
        P = np.maximum(U, 0.0)
        f = lam * (0.5 * np.sum(P * P) - np.sum(U * V) + 0.5 * np.sum(V * V))
        f += rho * (np.sum(W * W) + np.sum(b * b)) + gamma * (np.sum((W - W0) ** 2) + np.sum((b - b0) ** 2))
        R = lam * (P - V)
        gW = X.T @ R + 2 * rho * W + 2 * gamma * (W - W0)
        gb = R.sum(axis=0) + 2 * rho * b + 2 * gamma * (b - b0)
        return float(f), np.concatenate([gW.ravel(), gb])
    return fun


def test_speed_rows_come_from_the_registry_and_lbfgsb_sees_the_subproblems():
    """The speed rows are the registry's kinds with an MNIST-scale case; the objective and gradient
    L-BFGS-B minimises (the subproblem's own, flattened) equal independent formulas written out
    for ReLU (small sizes), and the bounds are the X-step's domain."""
    from verification.speed import build_speed_instance, lbfgsb_problem, speed_kinds
    assert [k.name for k in speed_kinds()] == ["X-last-ce", "W-hidden"]
    rng = np.random.default_rng(0)
    for name, indep in (("X-last-ce", _xlast_relu_ce), ("W-hidden", _whidden_relu)):
        sub, settings = build_speed_instance(name, seed=1, m=30, hidden=12)
        assert settings["activation"] == "relu" and settings["samples"] == 30
        fun, x0, bounds = lbfgsb_problem(sub)
        assert (bounds is None) == (name == "W-hidden") and (bounds is None or bounds[0] == (0.0, None))
        x = np.abs(x0 + 0.05 * rng.standard_normal(x0.size))
        f, g = fun(x)
        f_ind, g_ind = indep(sub)(x)
        assert f == pytest.approx(f_ind, rel=1e-12)
        np.testing.assert_allclose(g, g_ind, rtol=1e-10, atol=1e-10)


def test_speed_run_small_is_well_formed():
    """run_speed end to end on a small instance (no CVXPY): rows per registry kind, checks pass,
    and the Markdown section names each row's settings."""
    from verification.speed import run_speed, speed_markdown
    res = run_speed(seed=0, with_cvxpy=False, m=20, hidden=8)
    assert [r["subproblem"] for r in res["rows"]] == ["X-last-ce", "W-hidden"] and res["correct"]
    for r in res["rows"]:
        assert r["objective_check_rel"] <= 1e-12 and r["gradient_check_rel"] <= 1e-5 and r["fast_matches"]
    md = speed_markdown(res)
    assert "X-last-ce: lam = 1, coef (lbd_coef) = 10" in md and "W-hidden: lam = 1, rho = 0, gamma = 10" in md
