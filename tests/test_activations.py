"""Fenchel-Young facts about every activation: B >= 0, B(phi(u), u) = 0, Theorem 1 by CVXPY,
CVXPY expressions equal the array code, gradients against finite differences, prox optimality."""

import math

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from cvx_fenchel.activations import (ACTIVATIONS, LiftedPenalty, NoCvxpyFormError, TaylorPenalty,
                                     get_activation)
from cvx_fenchel.cvx import solve
from cvx_fenchel.errors import InputError, UnknownNameError

NAMES = sorted(ACTIVATIONS)
CVX_NAMES = [n for n in NAMES if ACTIVATIONS[n].has_cvxpy]


def make(name):
    return get_activation(name, slope=0.1) if name == "leaky_relu" else get_activation(name)


wide = st.floats(min_value=-30, max_value=30, allow_nan=False)
arrays = st.lists(wide, min_size=1, max_size=40).map(np.array)


def domain_points(act, u):
    """Points of the domain: random, boundaries, and phi(u)."""
    rng = np.random.default_rng(len(u))
    lo = -40 if math.isinf(act.lower) else act.lower
    hi = 40 if math.isinf(act.upper) else act.upper
    v = rng.uniform(lo, hi, size=u.shape)
    v[: len(v) // 3] = act.lower if not math.isinf(act.lower) else v[: len(v) // 3]
    return v


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None)
@given(u=arrays)
def test_fenchel_young_nonnegative_and_zero_on_graph(name, u):
    act = make(name)
    v = domain_points(act, u)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        B = act.divergence(v, u)
        B_graph = act.divergence(act.forward(u), u)
    assert np.all(np.isfinite(B)) and np.all(np.isfinite(B_graph))
    assert B.min() >= -1e-12 * (1 + np.abs(u).max() ** 2)
    assert np.abs(B_graph).max() <= 1e-12 * (1 + np.abs(u).max() ** 2)


@pytest.mark.parametrize("name", NAMES)
def test_divergence_matches_definition(name):
    """The cancellation-free B equals F(v) + F*(u) - uv where the latter is well conditioned."""
    act = make(name)
    rng = np.random.default_rng(1)
    u = rng.uniform(-8, 8, 500)
    v = act.project(rng.uniform(-3, 3, 500))
    if name == "softplus":
        v = np.abs(v) + 1e-3
    np.testing.assert_allclose(act.divergence(v, u), act.F(v) + act.Fstar(u) - u * v, atol=1e-11, rtol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_outside_domain_is_infinite(name):
    act = make(name)
    if math.isinf(act.lower):
        pytest.skip("domain is the whole line")
    v = np.array([act.lower - 0.5])
    assert np.isinf(act.F(v)).all() and np.isinf(act.divergence(v, np.zeros(1))).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_finite_differences(name):
    act = make(name)
    rng = np.random.default_rng(2)
    u = rng.uniform(-4, 4, 200)
    v = act.forward(rng.uniform(-4, 4, 200))  # interior points of the domain
    if name in ("relu", "hardtanh"):  # keep away from kinks of F*
        u = u[np.abs(np.abs(u) - (1 if name == "hardtanh" else 0)) > 1e-3]
        v = v[: len(u)]
        v = np.clip(v, 0.05, None) if name == "relu" else np.clip(v, -0.95, 0.95)
    h = 1e-6
    gv = (act.divergence(v + h, u) - act.divergence(v - h, u)) / (2 * h)
    gu = (act.divergence(v, u + h) - act.divergence(v, u - h)) / (2 * h)
    np.testing.assert_allclose(act.grad_v(v, u), gv, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(act.grad_u(v, u), gu, atol=1e-6, rtol=1e-5)
    du = (act.forward(u + h) - act.forward(u - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(u), du, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None)
@given(x=arrays, t=st.floats(min_value=1e-3, max_value=1e3))
def test_prox_is_the_minimiser(name, x, t):
    """prox_{tF}(x) satisfies t F'(z) + z - x = 0 inside the domain (or is a boundary minimiser)."""
    act = make(name)
    z = act.prox_F(x, t)
    assert np.all(act.in_domain(z)) and np.all(np.isfinite(z))
    def obj(w):
        return t * act.F(w) + 0.5 * (w - x) ** 2
    base = obj(z)
    for d in (1e-5, -1e-5, 1e-3, -1e-3):
        w = act.project(z + d)
        if name == "softplus":
            w = np.maximum(w, 1e-300)
        assert np.all(obj(w) >= base - 1e-9 * (1 + np.abs(base)))


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus"])
def test_prox_on_a_grid_including_newton_cycles(name):
    """prox_{tF}(x) on a 400 x 40 grid of x and t (1e-4..1e3). Plain Newton on t s + phi(s) = x
    cycles for small t (found by the verification suite: tanh, x = -0.7386, t = 0.1705 gave a point
    whose stationarity error was 0.86); the bracketed rtsafe iteration must not."""
    act = make(name)
    x, t = np.meshgrid(np.linspace(-12, 12, 400), np.logspace(-4, 3, 40))
    x, t = x.ravel(), t.ravel()
    x = np.concatenate([x, [-0.7386386088283432]])
    t = np.concatenate([t, [0.17047275928926178]])
    z = act.prox_F(x, t)
    s = act.inverse(z)
    with np.errstate(over="ignore", invalid="ignore"):
        # where phi'(s) is tiny, z is rounded at the edge of the domain and s = inverse(z) is
        # ill-conditioned; there the descent checks below apply
        inner = np.isfinite(s) & (act.derivative(np.where(np.isfinite(s), s, 0.0)) > 1e-6)
    np.testing.assert_allclose((t * s + act.forward(s))[inner], x[inner], atol=1e-9)
    obj = lambda w: t * act.F(w) + 0.5 * (w - x) ** 2  # noqa: E731
    base = obj(z)
    for d in (1e-6, -1e-6, 1e-3, -1e-3, 0.3, -0.3):
        w = act.project(z + d)
        if name == "softplus":
            w = np.maximum(w, 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            assert np.all(obj(w) >= base - 1e-9 * (1 + np.abs(base)))


@pytest.mark.parametrize("solver,tol", [("ECOS", 1e-6), ("CLARABEL", 1e-6), ("SCS", 1e-4)])
@pytest.mark.parametrize("name", CVX_NAMES)
def test_theorem1_argmin_is_activation(name, solver, tol):
    """argmin_v B(v, u) over dom F equals phi(u), by three conic solvers.

    The grid avoids the kinks of piecewise-linear activations (u = 0, u = +-1), where the
    minimiser sits on the domain boundary with zero gradient: strict complementarity fails
    there and interior-point methods only reach sqrt(tolerance); see the test below.
    """
    act = make(name)
    u = np.array([-25.0, -6, -4.5, -3, -2, -1.5, -0.7, -0.3, 0.2, 0.6, 1.5, 2, 3, 4.5, 6, 25])
    v = cp.Variable(u.shape)
    prob = cp.Problem(cp.Minimize(act.cvxpy_divergence(v, u)), act.cvxpy_domain(v))
    solve(prob, solver)
    assert np.abs(v.value - act.forward(u)).max() <= tol


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "hardtanh"])
def test_theorem1_at_kinks(name):
    """At kinks the objective is flat to second order at the minimiser: a gap eps gives a
    minimiser error of about sqrt(eps); we check 1e-4 with Clarabel's 1e-10 gap."""
    act = make(name)
    u = np.array([0.0, 1.0, -1.0])
    v = cp.Variable(u.shape)
    prob = cp.Problem(cp.Minimize(act.cvxpy_divergence(v, u)), act.cvxpy_domain(v))
    solve(prob, "CLARABEL")
    assert np.abs(v.value - act.forward(u)).max() <= 1e-4


@pytest.mark.parametrize("name", CVX_NAMES)
def test_cvxpy_expressions_equal_array_code(name):
    act = make(name)
    rng = np.random.default_rng(3)
    u = rng.uniform(-5, 5, (4, 3))
    v = act.project(rng.uniform(-2, 2, (4, 3)))
    if name in ("sigmoid", "tanh"):
        v = np.clip(v, act.lower + 1e-3, act.upper - 1e-3)
    V, U = cp.Variable(v.shape), cp.Variable(u.shape)
    V.value, U.value = v, u
    np.testing.assert_allclose(act.cvxpy_F(V).value, act.F(v), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(act.cvxpy_Fstar(U).value, act.Fstar(u), rtol=1e-10, atol=1e-12)
    total = act.divergence(v, u).sum()
    assert act.cvxpy_divergence(V, u).value == pytest.approx(total, rel=1e-10, abs=1e-12)
    assert act.cvxpy_divergence(v, U).value == pytest.approx(total, rel=1e-10, abs=1e-12)
    assert act.cvxpy_divergence(V, u).is_dcp() and act.cvxpy_divergence(v, U).is_dcp()
    with pytest.raises(InputError, match="jointly convex"):
        act.cvxpy_divergence(V, U)


def test_softplus_matches_quadrature_and_has_no_cvxpy_form():
    act = get_activation("softplus")
    for u in (-30.0, -4.0, 0.0, 2.5, 30.0):
        q = quad(lambda s: np.logaddexp(0, s), -np.inf, u, epsabs=1e-13, epsrel=1e-13, limit=200)[0]
        assert abs(act.Fstar(np.array(u)) - q) <= 1e-10
    for v in (1e-9, 0.3, 2.0, 25.0):
        q = quad(lambda t: np.log(np.expm1(t)), 0, v, epsabs=1e-13, epsrel=1e-13, limit=200)[0]
        assert abs(act.F(np.array(v)) - q) <= 1e-10
    assert act.F(np.array(0.0)) == 0.0
    with pytest.raises(NoCvxpyFormError, match="no CVXPY declaration"):
        act.cvxpy_divergence(cp.Variable(2), np.zeros(2))


def test_float32_follows_input_dtype():
    for name in NAMES:
        act = make(name)
        u = np.linspace(-3, 3, 7, dtype=np.float32)
        assert act.forward(u).dtype == np.float32
        assert act.divergence(act.forward(u), u).dtype == np.float32


def test_bad_input_errors():
    with pytest.raises(UnknownNameError, match="unknown activation 'swish'"):
        get_activation("swish")
    for bad in (0.0, 1.0, -0.2, 1.5, float("nan")):
        with pytest.raises(InputError, match="slope"):
            get_activation("leaky_relu", slope=bad)
    with pytest.raises(InputError, match="does not take parameters"):
        get_activation("relu", slope=0.1)
    assert get_activation({"name": "leaky_relu", "slope": 0.2}).slope == 0.2


def test_older_penalties():
    rng = np.random.default_rng(4)
    u = rng.normal(size=50)
    lifted, taylor = LiftedPenalty(), TaylorPenalty()
    # argmin over v >= 0 of ||v - u||^2 is relu(u); Taylor's penalty vanishes there too
    v = cp.Variable(50)
    solve(cp.Problem(cp.Minimize(lifted.cvxpy_value(v, u)), lifted.cvxpy_domain(v)), "CLARABEL")
    np.testing.assert_allclose(v.value, np.maximum(u, 0), atol=1e-7)
    assert taylor.value(np.maximum(u, 0), u).max() == 0
    w = rng.uniform(0, 2, 50)
    h = 1e-6
    np.testing.assert_allclose(lifted.grad_v(w, u), (lifted.value(w + h, u) - lifted.value(w - h, u)) / (2 * h),
                               atol=1e-6)
    uu = u[np.abs(u) > 1e-3]
    ww = w[: len(uu)]
    np.testing.assert_allclose(taylor.grad_u(ww, uu), (taylor.value(ww, uu + h) - taylor.value(ww, uu - h)) / (2 * h),
                               atol=1e-5)
    with pytest.raises(InputError, match="not convex in u"):
        taylor.cvxpy_value(np.zeros(3), cp.Variable(3))
