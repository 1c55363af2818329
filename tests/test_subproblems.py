"""Each subproblem's fast path against its CVXPY twin, optimality conditions, closed forms, errors."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvx_fenchel.activations import activation_names, example_activation
from cvx_fenchel.errors import ConvergenceWarning, InputError, SolverError, UnknownNameError
from cvx_fenchel.maps import AvgPool2D, Chain, Conv2D
from cvx_fenchel.subproblems import Gram, LNNW, LNNX, LNNSimplexCE, WHidden, WLast, XHidden, XLast, lower_bound

ACTS = sorted(activation_names())


def act_of(name):
    return example_activation(name)


def rel_gap(a, b):
    return abs(a - b) / max(1.0, abs(b))


def onehot(rng, m, k):
    return np.eye(k)[rng.integers(0, k, m)]


def never_improved_by_perturbation(sub, x, rng, project, n=30, scale=1e-4):
    """Random feasible perturbations of an optimal point never lower the objective."""
    base = sub.objective(x)
    for _ in range(n):
        if isinstance(x, tuple):
            y = tuple(a + scale * rng.normal(size=a.shape) for a in x)
        else:
            y = project(x + scale * rng.normal(size=x.shape))
        assert sub.objective(y) >= base - 1e-10 * max(1, abs(base))


@pytest.mark.parametrize("name", ACTS)
def test_x_hidden_matches_cvxpy(name):
    rng = np.random.default_rng(0)
    act = act_of(name)
    m, n0, n1 = 5, 4, 3
    sub = XHidden(act.forward(rng.normal(size=(m, n1))), rng.normal(size=(m, n0)), rng.normal(size=(n0, n1)),
                  rng.normal(size=n1), act, act, lam=1.3, lam_prev=0.7, coef=2.0)
    r = sub.solve_fast(tol=1e-10)
    assert r.converged and r.residual <= 1e-10
    assert r.objective >= -1e-12  # a sum of divergences
    if act.has_cvxpy:
        Z, c = sub.solve_cvxpy("CLARABEL")
        assert rel_gap(r.objective, c.objective) <= 1e-6
        assert np.abs(Z - r.x).max() <= 1e-4
    never_improved_by_perturbation(sub, r.x, rng, act.project)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("name", ACTS)
def test_x_last_matches_cvxpy(name, loss):
    rng = np.random.default_rng(1)
    act = act_of(name)
    m, n0, k = 6, 4, 3
    sub = XLast(onehot(rng, m, k), rng.normal(size=(m, n0)), rng.normal(size=(n0, k)), rng.normal(size=k), act,
                loss=loss, lam_prev=0.5, coef=3.0)
    r = sub.solve_fast(tol=1e-10)
    assert r.converged
    if act.has_cvxpy:
        _, c = sub.solve_cvxpy("ECOS")
        assert rel_gap(r.objective, c.objective) <= 1e-6
    never_improved_by_perturbation(sub, r.x, rng, act.project)


@pytest.mark.parametrize("name", ACTS)
def test_w_hidden_matches_cvxpy_and_gradient(name):
    rng = np.random.default_rng(2)
    act = act_of(name)
    m, n0, n1 = 6, 4, 3
    sub = WHidden(rng.random((m, n0)), act.forward(rng.normal(size=(m, n1))), act, lam=1.5, rho=0.1, gamma=0.3,
                  W0=rng.normal(size=(n0, n1)), b0=rng.normal(size=n1))
    r = sub.solve_fast(tol=1e-10)
    assert r.converged
    # stationarity: the gradient vanishes at the minimiser (unconstrained, smooth)
    gW, gb = sub.grad(r.x)
    assert max(np.abs(gW).max(), np.abs(gb).max()) <= 1e-7
    if act.has_cvxpy:
        _, c = sub.solve_cvxpy("SCS")
        assert rel_gap(r.objective, c.objective) <= 1e-4
    # the gradient is the derivative of the objective (central differences)
    W, b = rng.normal(size=(n0, n1)), rng.normal(size=n1)
    dW = rng.normal(size=(n0, n1))
    h = 1e-6
    fd = (sub.objective((W + h * dW, b)) - sub.objective((W - h * dW, b))) / (2 * h)
    assert fd == pytest.approx(float(np.sum(sub.grad((W, b))[0] * dW)), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_w_last_matches_cvxpy(loss):
    rng = np.random.default_rng(3)
    m, n, k = 8, 4, 3
    sub = WLast(rng.random((m, n)), onehot(rng, m, k), loss=loss, coef=2.0, rho=0.1, gamma=0.2,
                W0=rng.normal(size=(n, k)), b0=rng.normal(size=k))
    r = sub.solve_fast(tol=1e-10)
    assert r.converged
    (W, b), c = sub.solve_cvxpy("CLARABEL")
    assert rel_gap(r.objective, c.objective) <= 1e-6
    assert np.abs(W - r.x[0]).max() <= 1e-5
    if loss == "mse":
        assert r.n_iter == 0  # closed form by Cholesky


def test_w_last_mse_closed_form_is_ridge():
    """With gamma = 0 the W-last-mse step is textbook ridge: (A^T A + 2 rho/c I) theta = A^T Y."""
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(20, 5)), rng.normal(size=(20, 2))
    rho, c = 0.3, 1.5
    (W, b) = WLast(X, Y, loss="mse", coef=c, rho=rho).solve_fast().x
    A = np.hstack([X, np.ones((20, 1))])
    theta = np.linalg.solve(A.T @ A + 2 * rho / c * np.eye(6), A.T @ Y)
    np.testing.assert_allclose(np.vstack([W, b]), theta, atol=1e-10)


def test_lnn_steps_match_cvxpy():
    rng = np.random.default_rng(5)
    m, n0, n1, k = 6, 5, 4, 3
    sub = LNNX(rng.normal(size=(m, n1)), rng.normal(size=(m, n0)), rng.normal(size=(n0, n1)), rng.normal(size=n1),
               lam=1.2, lam_prev=0.4)
    r = sub.solve_fast(tol=1e-10)
    assert r.converged and (r.x >= 0).all()
    _, c = sub.solve_cvxpy("CLARABEL")
    assert rel_gap(r.objective, c.objective) <= 1e-6
    sub = LNNW(rng.random((m, n0)), rng.normal(size=(m, n1)), lam=1.2, rho=0.1)
    r = sub.solve_fast()
    (W, _), c = sub.solve_cvxpy("CLARABEL")
    assert rel_gap(r.objective, c.objective) <= 1e-6 and np.abs(W - r.x[0]).max() <= 1e-6
    sub = LNNSimplexCE(onehot(rng, m, k), rng.normal(size=(m, k)), lam=0.8)
    r = sub.solve_fast()
    assert np.allclose(r.x.sum(axis=1), 1) and (r.x >= 0).all() and r.residual <= 1e-9
    Z, c = sub.solve_cvxpy("CLARABEL")
    assert rel_gap(r.objective, c.objective) <= 1e-6


@settings(max_examples=30, deadline=None)
@given(lam=st.floats(1e-3, 1e3), seed=st.integers(0, 10_000))
def test_simplex_bisection_kkt(lam, seed):
    """Bisection returns the simplex point satisfying the KKT conditions, any lambda."""
    rng = np.random.default_rng(seed)
    Y = onehot(rng, 7, 4)
    X0 = rng.normal(scale=3, size=(7, 4))
    r = LNNSimplexCE(Y, X0, lam=lam).solve_fast()
    assert np.allclose(r.x.sum(axis=1), 1, atol=1e-12) and (r.x >= 0).all()
    assert r.residual <= 1e-8


@pytest.mark.parametrize("name", ["relu", "sigmoid"])
def test_conv_and_pool_maps(name):
    rng = np.random.default_rng(6)
    act = act_of(name)
    conv = Conv2D(in_shape=(5, 5, 2), c_out=2, kernel=(3, 3))
    chain = Chain([AvgPool2D(in_shape=(6, 6, 2), size=2), Conv2D(in_shape=(3, 3, 2), c_out=2, kernel=(2, 2))])
    for lmap in (conv, chain):
        m = 2
        W = rng.normal(size=lmap.weight_shape)
        b = rng.normal(size=lmap.bias_shape)
        U_prev = rng.normal(size=(m,) + tuple(lmap.in_shape))
        X_next = act.forward(rng.normal(size=(m,) + tuple(lmap.out_shape)))
        sub = XHidden(X_next, U_prev, W, b, act, act, linear_map=lmap)
        r = sub.solve_fast(tol=1e-10)
        _, c = sub.solve_cvxpy("CLARABEL")
        assert rel_gap(r.objective, c.objective) <= 1e-6
        X = act.forward(U_prev)
        wsub = WHidden(X, X_next, act, rho=0.1, gamma=0.2, W0=W, b0=b, linear_map=lmap)
        r = wsub.solve_fast(tol=1e-10)
        _, c = wsub.solve_cvxpy("CLARABEL")
        assert rel_gap(r.objective, c.objective) <= 1e-6


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_preconditioned_w_steps_majorise_and_match_plain_fista_and_cvxpy(name):
    """The Gram preconditioner P = L_data [F 1]^T [F 1] + 2(rho + gamma) I bounds the Hessian, so a
    plain step y - P^{-1} grad never increases the objective; the accelerated steps reach the same
    minimiser as FISTA (and CVXPY) in far fewer iterations on an ill-conditioned instance
    (non-negative features with a large common mean, like ReLU outputs)."""
    from cvx_fenchel.maps import Dense, Flatten
    rng = np.random.default_rng(11)
    act = act_of(name)
    maps = [Dense(8, 5), Conv2D(in_shape=(5, 5, 2), c_out=3, kernel=(3, 3)),
            Chain([AvgPool2D(in_shape=(6, 6, 2), size=2), Conv2D(in_shape=(3, 3, 2), c_out=2, kernel=(2, 2))]),
            Chain([Conv2D(in_shape=(4, 4, 1), c_out=2, kernel=(2, 2)), Flatten(in_shape=(3, 3, 2))])]
    for lmap in maps:
        m = 6
        X = 3.0 + rng.random((m,) + tuple(lmap.in_shape))  # large mean: badly conditioned
        W0 = 0.1 * rng.normal(size=lmap.weight_shape)
        b0 = 0.1 * rng.normal(size=lmap.bias_shape)
        X_next = act.forward(rng.normal(size=(m,) + tuple(lmap.out_shape)))
        sub = WHidden(X, X_next, act, lam=2.0, rho=0.0, gamma=0.05, W0=W0, b0=b0, linear_map=lmap)
        state = sub.strategy_state(Gram())
        assert state is not None, lmap
        solve_P = state.solve_P
        y = (W0 + rng.normal(size=W0.shape), b0)
        for _ in range(5):
            g = sub.grad(y)
            d = solve_P(g)
            y_new = (y[0] - d[0], y[1] - d[1])
            assert sub.objective(y_new) <= sub.objective(y) + 1e-12 * abs(sub.objective(y))
            y = y_new
        fast = sub.solve_fast(tol=1e-10, max_iter=100_000)
        plain = sub.solve_fast(tol=1e-10, max_iter=100_000, precondition=False)
        assert fast.converged and plain.converged
        assert rel_gap(fast.objective, plain.objective) <= 1e-9
        assert fast.n_iter < plain.n_iter
        if name != "softplus":
            _, c = sub.solve_cvxpy("CLARABEL")
            assert rel_gap(fast.objective, c.objective) <= 1e-6


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_lower_bound_certificate(loss):
    """G_W(lambda) <= p(W), by the fast path and by CVXPY, nondecreasing in lambda, tight as lambda grows."""
    rng = np.random.default_rng(7)
    m, n0, n1, k = 6, 4, 3, 3
    data = dict(X=rng.random((m, n0)), Y=onehot(rng, m, k), W0=rng.normal(size=(n0, n1)), b0=rng.normal(size=n1),
                W1=rng.normal(size=(n1, k)), b1=rng.normal(size=k))
    Gs = []
    for lam in (0.01, 0.1, 1.0, 10.0, 1000.0):
        fast = lower_bound(**data, lam=lam, loss=loss, tol=1e-11, max_iter=100000)
        exact = lower_bound(**data, lam=lam, loss=loss, method="cvxpy")
        assert fast.G <= fast.p + 1e-9 and fast.gap == pytest.approx(fast.p - fast.G)
        assert rel_gap(fast.G, exact.G) <= 1e-6
        Gs.append(fast.G)
    assert all(b >= a - 1e-9 for a, b in zip(Gs, Gs[1:]))
    assert Gs[-1] == pytest.approx(fast.p, rel=1e-2)


def test_float32_follows_inputs():
    rng = np.random.default_rng(9)
    f32 = np.float32
    sub = XHidden(np.maximum(rng.normal(size=(50, 8)), 0).astype(f32), rng.normal(size=(50, 10)).astype(f32),
                  rng.normal(size=(10, 8)).astype(f32), rng.normal(size=8).astype(f32))
    r = sub.solve_fast()
    assert r.x.dtype == np.float32 and r.converged and r.residual <= 1e-5


def test_iteration_cap_reports_nonconvergence():
    rng = np.random.default_rng(10)
    sub = XLast(onehot(rng, 20, 3), rng.normal(size=(20, 6)), rng.normal(size=(6, 3)), lam_prev=1e-3)
    with pytest.warns(ConvergenceWarning, match="iteration cap"):
        r = sub.solve_fast(tol=1e-14, max_iter=3)
    assert not r.converged and r.n_iter == 3 and r.residual > 1e-14


def test_bad_inputs_are_named():
    rng = np.random.default_rng(11)
    W, U = rng.normal(size=(4, 3)), rng.normal(size=(5, 4))
    X_next = np.abs(rng.normal(size=(5, 3)))
    with pytest.raises(InputError, match="lam must be >= 0"):
        XHidden(X_next, U, W, lam=-1)
    with pytest.raises(InputError, match="gamma must be >= 0"):
        WHidden(U, X_next, gamma=-0.1)
    with pytest.raises(InputError, match="rho must be >= 0"):
        WLast(U, onehot(rng, 5, 3), rho=-1)
    with pytest.raises(InputError, match="X_next must have shape"):
        XHidden(X_next[:, :2], U, W)
    with pytest.raises(InputError, match="NaN"):
        XHidden(X_next, np.full((5, 4), np.nan), W)
    with pytest.raises(InputError, match="outside the domain"):
        XHidden(-X_next - 1, U, W)
    with pytest.raises(InputError, match="simplex"):
        XLast(rng.normal(size=(5, 3)), U, W)
    with pytest.raises(UnknownNameError, match="unknown loss"):
        XLast(onehot(rng, 5, 3), U, W, loss="hinge")
    with pytest.raises(UnknownNameError, match="unknown activation"):
        XHidden(X_next, U, W, activation="swish")
    with pytest.raises(InputError, match="dtype"):
        XHidden(X_next, U.astype(complex), W)


def test_cvxpy_status_other_than_optimal_raises():
    """A solve stopped by its iteration limit, or an infeasible declaration, is a SolverError naming the status."""
    import cvxpy as cp

    from cvx_fenchel.cvx import solve

    rng = np.random.default_rng(12)
    sub = WLast(rng.random((8, 4)), onehot(rng, 8, 3), loss="cross_entropy", rho=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SolverError, match="status") as info:
            sub.solve_cvxpy("CLARABEL", settings=dict(max_iter=1))
    assert info.value.status != "optimal"
    x = cp.Variable(2)
    with pytest.raises(SolverError, match="'infeasible'"):
        solve(cp.Problem(cp.Minimize(cp.sum(x)), [x >= 1, x <= 0]), "ECOS")
    with pytest.raises(UnknownNameError, match="unknown CVXPY solver"):
        solve(cp.Problem(cp.Minimize(cp.sum(x)), [x >= 1]), "GUROBIX")


# ---------------------------------------------------------------------------------------
# Cholesky helpers shared by the W-step preconditioner, ridge_solve and the baselines
# ---------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), k=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_cholesky_solve_solves_spd_systems(n, k, seed):
    from cvx_fenchel.solvers import cholesky, cholesky_solve
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n + 2, n))
    G = A.T @ A + 1e-3 * np.eye(n)
    R = rng.standard_normal((n, k))
    L = cholesky(G)
    np.testing.assert_allclose(L @ L.T, G, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(G @ cholesky_solve(L, R), R, rtol=1e-8, atol=1e-8)


def test_cholesky_names_an_indefinite_matrix_and_ridge_solve_falls_back_to_least_squares():
    from cvx_fenchel.solvers import cholesky, ridge_solve
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))
    # rank-deficient A with no ridge: the minimum-norm least-squares solution still solves the
    # normal equations
    A = np.array([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0]])
    T = np.array([[1.0], [2.0], [3.0]])
    theta = ridge_solve(A, T, scale=1.0, reg=np.zeros(2))
    np.testing.assert_allclose(A.T @ (A @ theta - T), 0.0, atol=1e-10)


def test_array_code_uses_only_linalg_functions_that_cupyx_scipy_has():
    """cupyx.scipy.linalg lacks cho_factor/cho_solve (and most of scipy.linalg): the fast path must
    stay on functions both backends have, or the CuPy run silently takes a fallback."""
    import re
    from pathlib import Path
    cupyx_linalg = {"solve_triangular", "lu_factor", "lu_solve", "lu", "block_diag", "expm",
                    "tril", "triu", "khatri_rao", "kron"}
    root = Path(__file__).resolve().parents[1] / "cvx_fenchel"
    used = set()
    for path in root.rglob("*.py"):
        used |= set(re.findall(r"xsp\.linalg\.(\w+)", path.read_text()))
    assert used, "the pattern should find the fast path's triangular solves"
    assert used <= cupyx_linalg, f"not in cupyx.scipy.linalg: {sorted(used - cupyx_linalg)}"


# ---------------------------------------------------------------------------------------------
# W-steps in sample space (dense maps, m <= n + 1, rho + gamma > 0)
# ---------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 9), n=st.integers(1, 10), name=st.sampled_from(ACTS), rho=st.sampled_from([0.0, 0.3]),
       gamma=st.sampled_from([0.0, 0.05, 2.0]), x0_off=st.booleans(), rank=st.sampled_from(["full", "dup", "zero"]),
       seed=st.integers(0, 2**16))
def test_sample_space_w_step_matches_weight_space(m, n, name, rho, gamma, x0_off, rank, seed):
    """The sample-space iteration (theta = theta_bar + Psi C, Psi an orthonormal basis of range [X 1]^T)
    reaches the weight-space Gram-preconditioned minimiser: same objective, same (W, b), optimality
    residual below tol, also from a start outside theta_bar + range [X 1]^T and for rank-deficient
    Gram matrices (duplicated samples, all-zero inputs)."""
    rng = np.random.default_rng(seed)
    act = act_of(name)
    X = rng.random((m, n)) * 3.0
    if rank == "dup" and m > 1:
        X[-1] = X[0]
    if rank == "zero":
        X[:] = 0.0
    k = 3
    W0, b0 = rng.normal(size=(n, k)), rng.normal(size=k)
    X_next = act.forward(rng.normal(size=(m, k)))
    sub = WHidden(X, X_next, act, lam=1.5, rho=rho, gamma=gamma, W0=W0, b0=b0)
    ss = m <= n + 1 and rho + gamma > 0
    assert sub.fast_method == ("sample-space" if ss else "gram")
    x0 = (W0 + rng.normal(size=W0.shape), b0 - 1.0) if x0_off else None
    a = sub.solve_fast(x0, tol=1e-11, max_iter=200_000)
    b = sub.solve_fast(x0, tol=1e-11, max_iter=200_000, sample_space=False)
    assert a.converged and b.converged and a.residual <= 1e-11
    assert rel_gap(a.objective, b.objective) <= 1e-10
    scale = max(1.0, float(np.abs(b.x[0]).max()))
    assert np.abs(a.x[0] - b.x[0]).max() <= 1e-6 * scale and np.abs(a.x[1] - b.x[1]).max() <= 1e-6 * scale


def test_sample_space_w_step_same_iterates_and_against_cvxpy():
    """From theta_bar (rho = 0: the start W0) the two parametrisations take the same steps with
    the same inner iteration (FISTA or PCG): equal iteration counts at every tolerance; the
    minimiser matches CVXPY; float32 inputs stay float32 and still meet a float32 tolerance."""
    rng = np.random.default_rng(3)
    m, n, k = 5, 12, 4
    X = rng.random((m, n))
    W0, b0 = 0.3 * rng.normal(size=(n, k)), 0.1 * np.ones(k)
    X_next = np.maximum(X @ W0 + b0 + 0.3 * rng.normal(size=(m, k)), 0.0)
    sub = WHidden(X, X_next, "relu", rho=0.0, gamma=0.5, W0=W0, b0=b0)
    from cvx_fenchel.subproblems.strategies import Gram, SampleSpace
    for inner in ("fista", "pcg"):
        for tol in (1e-4, 1e-7, 1e-10):
            a = sub.solve_fast(tol=tol, strategy=SampleSpace(inner=inner))
            b = sub.solve_fast(tol=tol, strategy=Gram(inner=inner))
            assert a.n_iter == b.n_iter
            assert rel_gap(a.objective, b.objective) <= 1e-12
    _, c = sub.solve_cvxpy("CLARABEL")
    assert rel_gap(a.objective, c.objective) <= 1e-6
    sub32 = WHidden(X.astype(np.float32), X_next.astype(np.float32), "relu", rho=0.0, gamma=0.5,
                    W0=W0.astype(np.float32), b0=b0.astype(np.float32))
    r32 = sub32.solve_fast()
    assert r32.x[0].dtype == np.float32 and r32.x[1].dtype == np.float32 and r32.converged
    assert rel_gap(r32.objective, c.objective) <= 1e-5


def test_fast_method_names_the_path():
    rng = np.random.default_rng(0)
    X, V = rng.random((4, 6)), np.maximum(rng.normal(size=(4, 2)), 0)
    assert WHidden(X, V, "relu", gamma=1.0, W_shape=(6, 2)).fast_method == "sample-space"
    assert WHidden(X, V, "relu", W_shape=(6, 2)).fast_method == "gram"  # rho = gamma = 0
    assert WHidden(np.vstack([X] * 3), np.vstack([V] * 3), "relu", gamma=1.0,
                   W_shape=(6, 2)).fast_method == "gram"  # more samples than weights per unit
    assert WLast(X, rng.normal(size=(4, 2)), loss="mse", W_shape=(6, 2)).fast_method == "closed-form"
    assert WLast(X, onehot(rng, 4, 2), loss="cross_entropy", gamma=1.0, W_shape=(6, 2)).fast_method \
        == "sample-space"
    conv = Conv2D(in_shape=(4, 4, 1), c_out=2, kernel=(2, 2))
    assert WHidden(rng.random((2, 4, 4, 1)), np.maximum(rng.normal(size=(2, 3, 3, 2)), 0), "relu", gamma=1.0,
                   linear_map=conv).fast_method == "gram"


def test_gram_w_step_without_ridge_stops_on_rank_deficient_features():
    """rho = gamma = 0 and duplicated samples: P = L [X 1]^T [X 1] + jitter I is nearly singular and
    P^{-1} blows rounding errors up along directions the objective does not see; the step test
    alone then never held (the solve ran to its cap). The residual test stops it."""
    rng = np.random.default_rng(27174)
    act = act_of("leaky_relu")
    X = np.repeat(rng.random((1, 1)) * 3.0, 2, axis=0)
    sub = WHidden(X, act.forward(rng.normal(size=(2, 3))), act, lam=1.5, W0=rng.normal(size=(1, 3)),
                  b0=rng.normal(size=3))
    assert sub.fast_method == "gram"
    r = sub.solve_fast(tol=1e-11, max_iter=5000)
    assert r.converged and r.residual <= 1e-11 and r.n_iter < 1000
    _, c = sub.solve_cvxpy("CLARABEL")
    assert rel_gap(r.objective, c.objective) <= 1e-6


def test_lower_bound_with_maps_and_warm_start():
    """maps=(map0, map1) puts the bound on a convolutional network: G <= p, equal to CVXPY's G; a
    warm start x0 other than the feed-forward value reaches the same G; the result is frozen."""
    import dataclasses

    from cvx_fenchel.maps import Flatten
    rng = np.random.default_rng(13)
    map0 = Conv2D(in_shape=(5, 5, 1), c_out=2, kernel=(2, 2))
    map1 = Chain([Conv2D(in_shape=(4, 4, 2), c_out=1, kernel=(3, 3)), Flatten(in_shape=(2, 2, 1))])
    m = 3
    data = dict(X=rng.random((m, 5, 5, 1)), Y=onehot(rng, m, 4), W0=rng.normal(size=map0.weight_shape),
                b0=rng.normal(size=2), W1=rng.normal(size=map1.weight_shape), b1=rng.normal(size=1))
    fast = lower_bound(**data, activation="sigmoid", lam=0.5, maps=(map0, map1), tol=1e-11, max_iter=100_000)
    exact = lower_bound(**data, activation="sigmoid", lam=0.5, maps=(map0, map1), method="cvxpy")
    assert fast.converged and fast.G <= fast.p + 1e-9 and rel_gap(fast.G, exact.G) <= 1e-6
    assert fast.X1.shape == (m, 4, 4, 2) and fast.lam == 0.5 and fast.method == "fast"
    warm = lower_bound(**data, activation="sigmoid", lam=0.5, maps=(map0, map1), x0=np.full((m, 4, 4, 2), 0.5),
                       tol=1e-11, max_iter=100_000)
    assert rel_gap(warm.G, fast.G) <= 1e-9
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.G = 0.0
    with pytest.raises(InputError, match="maps must be a pair"):
        lower_bound(**data, maps=(map0,))
    with pytest.raises(UnknownNameError, match="lower-bound method"):
        lower_bound(**data, maps=(map0, map1), method="newton")
