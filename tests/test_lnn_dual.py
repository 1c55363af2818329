"""The dual Newton method of the 2018 lifted network's X-step (``cvx_fenchel.subproblems.lnn_dual``):
the duality-gap identity its certificate rests on, its bound against FISTA's residual computed
independently, agreement with FISTA and CVXPY, the KKT conditions, warm start at the solution,
the hand-over to FISTA, the iteration cap, row blocks driven with summed reads, and the errors of
a method that does not apply. Also: FISTA forming its step in the gradient it owns gives the
same iterates bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import drive_row_blocks

from cvx_fenchel.errors import ConvergenceWarning, InputError
from cvx_fenchel.maps import Conv2D
from cvx_fenchel.solvers import drive
from cvx_fenchel.subproblems import LNNX
from cvx_fenchel.subproblems import lnn_dual


def _lnnx(seed, m=9, n=12, k=4, lam=1.7, lam_prev=0.8, scale=1.5, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X_next = rng.normal(size=(m, k)) * scale
    U = rng.normal(size=(m, n)) * scale
    W, b = rng.normal(size=(n, k)) * scale, rng.normal(size=k)
    return LNNX(*(a.astype(dtype) for a in (X_next, U, W, b)), lam=lam, lam_prev=lam_prev)


def _kkt(prob, Z):
    """Largest violation of ``min P(Z), Z >= 0`` (``g >= 0`` where ``Z = 0``, ``g = 0`` where
    ``Z > 0``), ``g`` the gradient of ``P`` written out here, scaled by FISTA's step
    ``s = 1 / (L + 2 lam_prev)`` over ``max(1, ||Z||)`` (the units of the certified residual)."""
    g = 2 * prob.lam * (Z @ prob.W + prob.b - prob.X_next) @ prob.W.T + 2 * prob.lam_prev * (Z - prob.U_prev)
    s = 1.0 / (prob.lipschitz + 2 * prob.lam_prev)
    return max(float(np.max(-Z, initial=0.0)), s * float(np.max(np.abs(g[Z > 0]), initial=0.0)),
               s * float(np.max(-g[Z == 0], initial=0.0))) / max(1.0, float(np.linalg.norm(Z)))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 10), k=st.integers(1, 6),
       lam=st.floats(0.01, 50.0), lam_prev=st.floats(0.01, 50.0))
def test_the_duality_gap_is_lam_times_the_squared_dual_gradient(seed, n, k, lam, lam_prev):
    """For any multiplier ``nu`` and ``z = max(u - W nu/(2 lam_p), 0)``:
    ``P(z) - g(nu) = lam ||W^T z - t - nu/(2 lam)||^2``, with ``P`` and ``g`` written out in full
    (``g`` with its constant ``lam_p ||u||^2``), and ``g(nu) <= P(z')`` at any feasible ``z'``."""
    rng = np.random.default_rng(seed)
    m = 5
    W, U, t = rng.normal(size=(n, k)) * 2, rng.normal(size=(m, n)) * 2, rng.normal(size=(m, k))
    nu = rng.normal(size=(m, k)) * 3
    Z, g = lnn_dual._at(nu, W, U, t, lam, lam_prev, np)
    g = g + lam_prev * np.sum(U * U, axis=1)
    P = lam * np.sum((Z @ W - t) ** 2, axis=1) + lam_prev * np.sum((Z - U) ** 2, axis=1)
    grad = Z @ W - t - nu / (2 * lam)
    np.testing.assert_allclose(P - g, lam * np.sum(grad ** 2, axis=1), rtol=1e-9, atol=1e-9 * (1 + float(np.abs(P).max())))
    Zf = np.abs(rng.normal(size=(m, n)))
    assert np.all(g <= lam * np.sum((Zf @ W - t) ** 2, axis=1) + lam_prev * np.sum((Zf - U) ** 2, axis=1) + 1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 12), n=st.integers(1, 12), k=st.integers(1, 6),
       lam=st.floats(0.05, 20.0), lam_prev=st.floats(0.05, 20.0), scale=st.floats(0.1, 4.0))
def test_dual_newton_meets_kkt_agrees_with_fista_and_its_bound_holds(seed, m, n, k, lam, lam_prev, scale):
    """Converged, the KKT conditions hold to the tolerance, the solution is FISTA's, and the
    reported residual (the bound from the duality gap) is at least FISTA's residual at the same
    point, computed by FISTA's own code."""
    prob = _lnnx(seed, m=m, n=n, k=k, lam=lam, lam_prev=lam_prev, scale=scale)
    r = prob.solve_fast(tol=1e-10, max_iter=500, method="dual-newton")
    assert r.method.startswith("dual-newton") and r.converged and r.residual <= 1e-10
    assert prob.residual(r.x) <= r.residual * (1 + 1e-6) + 1e-15
    assert _kkt(prob, r.x) <= 1e-9
    f = prob.solve_fast(tol=1e-11, max_iter=200_000, method="fista", warn=False)
    np.testing.assert_allclose(r.x, f.x, atol=1e-7 * max(1.0, float(np.abs(f.x).max())))
    assert r.objective == pytest.approx(f.objective, rel=1e-9, abs=1e-12)


def test_dual_newton_agrees_with_cvxpy():
    prob = _lnnx(3, m=20, n=15, k=5)
    r = prob.solve_fast(tol=1e-10, method="dual-newton")
    Zc, res = prob.solve_cvxpy("CLARABEL")
    assert r.objective <= float(res.objective) + 1e-7 * max(1.0, abs(float(res.objective)))
    np.testing.assert_allclose(r.x, Zc, atol=1e-5)


def test_auto_picks_dual_newton_for_narrow_next_layers_and_fista_elsewhere():
    assert _lnnx(1, k=lnn_dual.DUAL_MAX_K).solve_fast(tol=1e-9).method == "dual-newton"
    assert _lnnx(1, k=lnn_dual.DUAL_MAX_K + 1, n=5).solve_fast(tol=1e-9).method == "fista"
    wide = _lnnx(1, k=lnn_dual.DUAL_MAX_K + 1, n=5)
    assert wide.solve_fast(tol=1e-9, method="dual-newton").method == "dual-newton"  # asked: it applies


def test_a_method_that_does_not_apply_is_refused_by_name():
    rng = np.random.default_rng(0)
    conv = Conv2D((6, 6, 1), 2, kernel=3)
    prob = LNNX(rng.normal(size=(3, 4, 4, 2)), rng.normal(size=(3, 6, 6, 1)), rng.normal(size=(3, 3, 1, 2)),
                rng.normal(size=2), linear_map=conv)
    with pytest.raises(InputError, match="method='dual-newton' needs a dense next layer"):
        prob.solve_fast(method="dual-newton")
    assert prob.solve_fast(tol=1e-8).method == "fista"
    with pytest.raises(InputError, match="method must be one of"):
        _lnnx(0).solve_fast(method="newton")


def test_a_start_at_the_solution_is_certified_without_an_iteration():
    prob = _lnnx(4, m=30, n=20, k=6)
    r = prob.solve_fast(tol=1e-12, method="fista", max_iter=100_000, warn=False)
    again = prob.solve_fast(x0=r.x, tol=1e-8, method="dual-newton")
    assert again.converged and again.n_iter == 0 and np.array_equal(again.x, np.maximum(again.x, 0))


def test_a_dual_newton_that_cannot_move_hands_over_to_fista(monkeypatch):
    prob = _lnnx(5, m=20, n=10, k=3)
    monkeypatch.setattr(lnn_dual, "_line_search",
                        lambda nu, Z, g, d, slope, alpha, *a: (nu, Z, g, alpha, np.zeros((), dtype=int)))
    r = prob.solve_fast(tol=1e-9, max_iter=100_000, warn=False, method="dual-newton")
    assert r.method == "dual-newton+fista" and r.converged and prob.residual(r.x) <= 1e-9


def test_the_iteration_cap_is_reported_not_converged():
    prob = _lnnx(1, m=50, n=30, k=5, scale=3.0)
    with pytest.warns(ConvergenceWarning, match="dual Newton stopped at the iteration cap"):
        r = prob.solve_fast(tol=1e-14, max_iter=1, method="dual-newton")
    assert not r.converged and r.n_iter == 1 and r.residual > 1e-14


def test_row_blocks_driven_with_summed_reads_take_the_same_iterates():
    prob = _lnnx(2, m=40, n=12, k=4, scale=2.0)
    whole = prob.solve_fast(tol=1e-10, method="dual-newton")
    halves = [LNNX(prob.X_next[s], prob.U_prev[s], prob.W, prob.b, lam=prob.lam, lam_prev=prob.lam_prev)
              for s in (slice(0, 17), slice(17, 40))]
    gens = [h.solve_fast_steps(tol=1e-10, method="dual-newton") for h in halves]
    done = drive_row_blocks(gens)
    assert done[0].n_iter == done[1].n_iter == whole.n_iter
    np.testing.assert_allclose(np.vstack([d.x for d in done]), whole.x, rtol=1e-12, atol=1e-12)


def test_dual_newton_in_float32_reaches_the_float32_tolerance():
    prob = _lnnx(6, m=200, n=60, k=10, dtype=np.float32)
    r = prob.solve_fast(tol=1e-5)
    assert r.method.startswith("dual-newton") and r.converged and r.x.dtype == np.float32
    assert prob.residual(r.x) <= 1e-5


def test_fista_forming_its_step_in_the_owned_gradient_gives_the_same_iterates():
    """``owned_grad=True`` (in-place step and extrapolation) against the allocating form: equal
    bit for bit after every number of iterations tried."""
    from cvx_fenchel.solvers import fista_steps
    prob = _lnnx(7, m=25, n=14, k=40)
    Z0 = prob.start()
    for iters in (1, 2, 7, 30):
        a = drive(fista_steps(prob._grad, prob._prox, (Z0,), prob.lipschitz, tol=0.0, max_iter=iters,
                              warn=False, owned_grad=True))
        b = drive(fista_steps(prob._grad, prob._prox, (Z0,), prob.lipschitz, tol=0.0, max_iter=iters,
                              warn=False, owned_grad=False))
        assert np.array_equal(a[0][0], b[0][0])
    assert np.array_equal(Z0, prob.start())  # the start is not written to
