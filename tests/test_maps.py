"""Tests of cvx_fenchel.maps: adjoint identities, explicit matrices, references, norms, CVXPY."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvx_fenchel.maps.conv as maps_mod
from cvx_fenchel.backend import cupy_available, get_backend, to_numpy
from cvx_fenchel.errors import InputError, UnknownNameError
from cvx_fenchel.maps import (MAPS, AvgPool2D, Chain, Conv2D, Dense, Flatten, make_chain,
                               make_map)

RTOL = 1e-10
SETTINGS = settings(max_examples=30, deadline=None)


# ---------------------------------------------------------------------------------------------
# strategies and helpers

@st.composite
def small_maps(draw):
    """A small map of any kind plus a batch size and a seed."""
    kind = draw(st.sampled_from(["dense", "conv_valid", "conv_same", "avgpool", "flatten",
                                 "chain"]))
    if kind == "dense":
        lmap = Dense(draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    elif kind.startswith("conv"):
        H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
        kh, kw = draw(st.integers(1, H)), draw(st.integers(1, W))
        lmap = Conv2D((H, W, draw(st.integers(1, 3))), draw(st.integers(1, 3)), (kh, kw),
                      padding="valid" if kind == "conv_valid" else "same")
    elif kind == "avgpool":
        s = draw(st.integers(1, 3))
        lmap = AvgPool2D((s * draw(st.integers(1, 3)), s * draw(st.integers(1, 3)),
                          draw(st.integers(1, 3))), size=s)
    elif kind == "flatten":
        lmap = Flatten(tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))))
    else:
        shape = (2 * draw(st.integers(1, 3)), 2 * draw(st.integers(1, 3)), draw(st.integers(1, 2)))
        k = draw(st.integers(1, min(shape[:2]) // 2))
        variants = [["avgpool2d", {"type": "conv2d", "c_out": 2, "kernel": k}],
                    ["avgpool2d", {"type": "conv2d", "c_out": 2, "kernel": k}, "flatten"],
                    ["avgpool2d", "flatten", {"type": "dense", "n_out": 3}],
                    ["avgpool2d", "flatten"]]
        lmap = make_chain(draw(st.sampled_from(variants)), shape)
    return lmap, draw(st.integers(1, 3)), draw(st.integers(0, 2**31 - 1))


def random_point(lmap, m, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m,) + lmap.in_shape)
    G = rng.standard_normal((m,) + lmap.out_shape)
    if lmap.has_weights:
        W = rng.standard_normal(lmap.weight_shape)
        b = rng.standard_normal(lmap.bias_shape)
    else:
        W = b = None
    return X, W, b, G


def close(a, b, rtol=RTOL, atol=1e-12):
    return np.allclose(a, b, rtol=rtol, atol=atol)


def naive_conv(X, W, padding="valid"):
    """Reference cross-correlation with explicit loops (tiny sizes only); TF 'same' padding."""
    kh, kw, ci, co = W.shape
    if padding == "same":
        t, le = (kh - 1) // 2, (kw - 1) // 2
        X = np.pad(X, ((0, 0), (t, kh - 1 - t), (le, kw - 1 - le), (0, 0)))
    m, H, Wd, _ = X.shape
    Y = np.zeros((m, H - kh + 1, Wd - kw + 1, co))
    for n in range(m):
        for p in range(H - kh + 1):
            for q in range(Wd - kw + 1):
                for o in range(co):
                    Y[n, p, q, o] = sum(X[n, p + i, q + j, c] * W[i, j, c, o]
                                        for i in range(kh) for j in range(kw) for c in range(ci))
    return Y


# ---------------------------------------------------------------------------------------------
# adjoint identities and explicit matrices

@SETTINGS
@given(small_maps())
def test_adjoint_identities(case):
    """<A(X;W), G> = <X, A_X^T G> = <W, A_W^T G>, and <1 b^T, G> = <b, db>."""
    lmap, m, seed = case
    X, W, b, G = random_point(lmap, m, seed)
    AX = lmap.apply(X, W)
    assert AX.shape == (m,) + lmap.out_shape
    lhs = np.vdot(AX, G)
    adj_x = lmap.adjoint_input(G, W)
    assert adj_x.shape == X.shape
    assert math.isclose(lhs, np.vdot(X, adj_x), rel_tol=1e-10, abs_tol=1e-10)
    dW, db = lmap.adjoint_weights(G, X)
    if lmap.has_weights:
        assert dW.shape == lmap.weight_shape and db.shape == lmap.bias_shape
        assert math.isclose(lhs, np.vdot(W, dW), rel_tol=1e-10, abs_tol=1e-10)
        bias_part = lmap.apply(X, W, b) - AX
        mid_shape = (lmap.weighted if isinstance(lmap, Chain) else lmap).out_shape
        assert close(bias_part, np.broadcast_to(b, (m,) + mid_shape).reshape(AX.shape))
        assert math.isclose(np.vdot(bias_part, G), np.vdot(b, db), rel_tol=1e-10, abs_tol=1e-10)
    else:
        assert dW is None and db is None


@SETTINGS
@given(small_maps())
def test_explicit_matrices_match_maps_and_adjoints(case):
    """vec(A(X;W)) = M vec(X) = K vec(W); M^T vec(G) = A_X^T G; K^T vec(G) = A_W^T G."""
    lmap, m, seed = case
    X, W, b, G = random_point(lmap, m, seed)
    AX = lmap.apply(X, W)
    M = lmap.input_matrix(W, m)
    assert M.shape == (m * lmap.n_out, m * lmap.n_in)
    assert close(M @ X.ravel(), AX.ravel())
    assert close(M.T @ G.ravel(), lmap.adjoint_input(G, W).ravel())
    if lmap.has_weights:
        K = lmap.weight_matrix(X)
        S = lmap.bias_matrix(m)
        assert K.shape == (m * lmap.n_out, W.size) and S.shape == (m * lmap.n_out, b.size)
        assert close(K @ W.ravel() + S @ b, lmap.apply(X, W, b).ravel())
        dW, db = lmap.adjoint_weights(G, X)
        assert close(K.T @ G.ravel(), dW.ravel())
        assert close(S.T @ G.ravel(), db)
    else:
        with pytest.raises(InputError, match="no weights"):
            lmap.weight_matrix(X)


# ---------------------------------------------------------------------------------------------
# references

@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("shape,kernel,c_out", [((5, 6, 2), (3, 2), 3), ((4, 4, 1), (4, 4), 2),
                                                ((6, 5, 3), (1, 1), 2), ((5, 5, 2), (2, 3), 1)])
def test_conv_against_naive_loops(shape, kernel, c_out, padding):
    rng = np.random.default_rng(1)
    conv = Conv2D(shape, c_out, kernel, padding=padding)
    X = rng.standard_normal((3,) + shape)
    W = rng.standard_normal(conv.weight_shape)
    b = rng.standard_normal(c_out)
    ref = naive_conv(X, W, padding) + b
    assert conv.out_shape == ref.shape[1:]
    assert close(conv.apply(X, W, b), ref)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
       ci=st.integers(1, 3), co=st.integers(1, 4), padding=st.sampled_from(["valid", "same"]),
       seed=st.integers(0, 2**16))
def test_x_step_operator_forward_by_banded_matrix_against_naive_loops(h, w, kh, kw, ci, co, padding, seed):
    """The X-step operator's forward map by the banded kernel matrix (``_conv_valid_toeplitz``,
    issue 12) is the convolution: against the naive loops and the im2col path, and its adjoint
    satisfies <A z, g> = <z, A^T g>."""
    from cvx_fenchel.maps.conv import _use_toeplitz
    if padding == "valid" and (kh > h or kw > w):
        return
    rng = np.random.default_rng(seed)
    conv = Conv2D((h, w, ci), co, (kh, kw), padding=padding)
    W, b = rng.standard_normal(conv.weight_shape), rng.standard_normal(co)
    op = conv.fixed_weights(W, b)
    Z = rng.standard_normal((2, h, w, ci))
    U = op.apply(Z)
    assert close(U, naive_conv(Z, W, padding) + b) and close(U, conv.apply(Z, W, b))
    assert (op._T is not None) == _use_toeplitz(kw, op._hw[1])
    G = rng.standard_normal(U.shape)
    assert abs(np.vdot(op.forward(Z), G) - np.vdot(Z, op.adjoint(G))) <= 1e-10 * max(1.0, np.abs(G).sum())


@pytest.mark.parametrize("mode", ["valid", "same"])
def test_conv_single_channel_against_scipy_correlate(mode):
    from scipy.signal import correlate

    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 11))
    w = rng.standard_normal((5, 3))  # odd kernel: scipy's 'same' centring equals TF's
    conv = Conv2D((9, 11, 1), 1, (5, 3), padding=mode)
    Y = conv.apply(x[None, :, :, None], w[:, :, None, None])
    assert close(Y[0, :, :, 0], correlate(x, w, mode=mode))


def test_avgpool_against_strided_sum_and_flatten_against_reshape():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 6, 8, 3))
    pool = AvgPool2D((6, 8, 3), size=2)
    ref = (X[:, 0::2, 0::2] + X[:, 1::2, 0::2] + X[:, 0::2, 1::2] + X[:, 1::2, 1::2]) / 4
    assert close(pool.apply(X), ref)
    pool3 = AvgPool2D((6, 6, 3), size=3)
    Y = pool3.apply(X[:, :, :6])
    assert close(Y[1, 1, 0, 2], X[1, 3:6, 0:3, 2].mean())
    G = rng.standard_normal((4, 3, 4, 3))
    assert close(pool.adjoint_input(G), np.repeat(np.repeat(G, 2, axis=1), 2, axis=2) / 4)
    flat = Flatten((6, 8, 3))
    assert close(flat.apply(X), X.reshape(4, -1))
    assert close(flat.adjoint_input(X.reshape(4, -1)), X)


def test_chain_equals_composition():
    rng = np.random.default_rng(8)
    pool, conv = AvgPool2D((8, 8, 2)), Conv2D((4, 4, 2), 3, (3, 3))
    chain = Chain([pool, conv, Flatten(conv.out_shape)])
    X = rng.standard_normal((3, 8, 8, 2))
    W, b = conv.init_weights(0)
    G = rng.standard_normal((3, 12))
    assert close(chain.apply(X, W, b), conv.apply(pool.apply(X), W, b).reshape(3, -1))
    G4 = G.reshape((3,) + conv.out_shape)
    assert close(chain.adjoint_input(G, W), pool.adjoint_input(conv.adjoint_input(G4, W)))
    dW, db = chain.adjoint_weights(G, X)
    rW, rb = conv.adjoint_weights(G4, pool.apply(X))
    assert close(dW, rW) and close(db, rb)
    assert chain.weighted is conv and chain.weight_shape == conv.weight_shape
    with pytest.raises(InputError, match="does not match"):
        Chain([conv, pool])
    with pytest.raises(InputError, match="at most one"):
        Chain([Dense(3, 3), Dense(3, 3)])
    assert Chain([pool, Flatten(pool.out_shape)]).lipschitz_input() == 0.25


def test_dense_formulas():
    rng = np.random.default_rng(4)
    X, W, b, G = (rng.standard_normal(s) for s in [(7, 5), (5, 3), (3,), (7, 3)])
    d = Dense(5, 3)
    assert close(d.apply(X, W, b), X @ W + b)
    assert close(d.adjoint_input(G, W), G @ W.T)
    dW, db = d.adjoint_weights(G, X)
    assert close(dW, X.T @ G) and close(db, G.sum(0))


def test_conv_chunked_patches_equal_unchunked(monkeypatch):
    rng = np.random.default_rng(5)
    conv = Conv2D((7, 7, 2), 3, (3, 3))
    X = rng.standard_normal((9, 7, 7, 2))
    W = rng.standard_normal(conv.weight_shape)
    G = rng.standard_normal((9,) + conv.out_shape)
    ref = (conv.apply(X, W), conv.adjoint_weights(G, X)[0], conv.lipschitz_weights(X))
    monkeypatch.setattr(maps_mod, "_MAX_PATCH_ENTRIES", 1000)  # forces chunks of 2 samples
    assert len(maps_mod._sample_chunks(9, 25 * 18)) > 1
    got = (conv.apply(X, W), conv.adjoint_weights(G, X)[0], conv.lipschitz_weights(X))
    assert close(got[0], ref[0]) and close(got[1], ref[1])
    assert math.isclose(got[2], ref[2], rel_tol=1e-10)


def test_lenet_shapes_and_float32():
    shapes = [(32, 32, 1)]
    specs = [("conv2d", {"c_out": 6}), ("avgpool2d", {}), ("conv2d", {"c_out": 16}),
             ("avgpool2d", {}), ("flatten", {}), ("dense", {"n_out": 120})]
    for name, params in specs:
        shapes.append(make_map(name, shapes[-1], **params).out_shape)
    assert shapes == [(32, 32, 1), (28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (400,),
                      (120,)]
    conv = make_map({"type": "conv2d", "c_out": 6, "kernel": 5}, (32, 32, 1))
    W, b = conv.init_weights(0, dtype=np.float32)
    X = np.random.default_rng(0).standard_normal((2, 32, 32, 1)).astype(np.float32)
    Y = conv.apply(X, W, b)
    assert Y.dtype == np.float32
    assert close(Y, naive_conv(X.astype(float), W.astype(float)) + b, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# operator norms

@SETTINGS
@given(small_maps())
def test_lipschitz_bounds_against_explicit_norms(case):
    """true ||A_X||^2 <= lipschitz_input <= 1.05 true; same for (W, b) -> A(X;W) + b."""
    lmap, m, seed = case
    X, W, b, G = random_point(lmap, m, seed)
    true_x = np.linalg.norm(lmap.input_matrix(W, 1).toarray(), 2) ** 2
    est_x = lmap.lipschitz_input(W)
    assert true_x <= est_x <= 1.05 * true_x + 1e-12
    assert math.isclose(lmap.operator_norm_sq(W), est_x, rel_tol=1e-12)
    if lmap.has_weights:
        K = lmap.weight_matrix(X).toarray()
        KS = np.hstack([K, lmap.bias_matrix(m).toarray()])
        for include_bias, mat in [(True, KS), (False, K)]:
            true_w = np.linalg.norm(mat, 2) ** 2
            est_w = lmap.lipschitz_weights(X, include_bias=include_bias)
            assert true_w * (1 - 1e-12) <= est_w <= 1.05 * true_w + 1e-12
    else:
        assert lmap.lipschitz_weights(X) == 0.0


def test_conv_lipschitz_input_lenet_size():
    """On LeNet's second conv (14x14x6 -> 10x10x16), the default power-iteration
    estimate (times 1.01) bounds the exact squared norm (Lanczos on the explicit
    Gram matrix) and is within 1.5 % of it."""
    from scipy.sparse.linalg import eigsh

    conv = Conv2D((14, 14, 6), 16, (5, 5))
    W, _ = conv.init_weights(0)
    M = conv.input_matrix(W, 1)
    true = eigsh((M.T @ M).tocsc(), k=1, which="LA", tol=1e-12, return_eigenvectors=False)[0]
    est = conv.lipschitz_input(W)
    assert true <= est <= 1.015 * true


def test_pool_and_flatten_norms_exact():
    assert AvgPool2D((4, 4, 2), 2).lipschitz_input() == 0.25
    assert AvgPool2D((6, 6, 1), 3).lipschitz_input() == pytest.approx(1 / 9)
    assert Flatten((2, 3)).lipschitz_input() == 1.0


# ---------------------------------------------------------------------------------------------
# CVXPY

@settings(max_examples=15, deadline=None)
@given(small_maps())
def test_cvxpy_expressions_equal_apply(case):
    import cvxpy as cp

    lmap, m, seed = case
    X, W, b, G = random_point(lmap, m, seed)
    want = lmap.apply(X, W, b).reshape(m, -1)
    Xvar = cp.Variable((m, lmap.n_in))
    Xvar.value = X.reshape(m, -1)
    expr = lmap.cvxpy_apply_input(Xvar, W, b)
    assert expr.shape == (m, lmap.n_out)
    assert close(expr.value, want)
    if lmap.has_weights:
        # 2-D variables (CVXPY canonicalises N-D expressions on a slower backend)
        Wvar = cp.Variable((math.prod(lmap.weight_shape[:-1]), lmap.weight_shape[-1]))
        bvar = cp.Variable(lmap.bias_shape)
        Wvar.value = W.reshape(Wvar.shape)
        bvar.value = b
        expr_w = lmap.cvxpy_apply_weights(X, Wvar, bvar)
        assert expr_w.shape == (m, lmap.n_out)
        assert close(expr_w.value, want)


def test_cvxpy_least_squares_recovers_conv_weights():
    """Solving min ||A(X; W) + b - Y||^2 in CVXPY recovers the (W, b) that made Y."""
    import cvxpy as cp

    rng = np.random.default_rng(6)
    conv = Conv2D((5, 5, 2), 2, (3, 3))
    X = rng.standard_normal((3, 5, 5, 2))
    W = rng.standard_normal(conv.weight_shape)
    b = rng.standard_normal(2)
    Y = conv.apply(X, W, b).reshape(3, -1)
    Wvar, bvar = cp.Variable((18, 2)), cp.Variable(2)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(conv.cvxpy_apply_weights(X, Wvar, bvar) - Y)))
    prob.solve(solver=cp.CLARABEL)
    assert prob.status == cp.OPTIMAL
    assert np.allclose(Wvar.value.reshape(W.shape), W, atol=1e-5) and np.allclose(bvar.value, b, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# validation and construction

def test_bad_shapes_raise_input_error():
    rng = np.random.default_rng(7)
    conv = Conv2D((6, 6, 2), 3, (3, 3))
    X = rng.standard_normal((2, 6, 6, 2))
    W = rng.standard_normal(conv.weight_shape)
    with pytest.raises(InputError, match=r"X of Conv2D.*\(\*, 6, 6, 2\)"):
        conv.apply(rng.standard_normal((2, 6, 6, 1)), W)
    with pytest.raises(InputError, match="W of Conv2D"):
        conv.apply(X, W[:2])
    with pytest.raises(InputError, match="b of Conv2D"):
        conv.apply(X, W, np.zeros(2))
    with pytest.raises(InputError, match="G of Conv2D"):
        conv.adjoint_input(np.zeros((2, 6, 6, 3)), W)
    with pytest.raises(InputError, match="same number of samples"):
        conv.adjoint_weights(np.zeros((3,) + conv.out_shape), X)
    with pytest.raises(InputError, match="X of Dense"):
        Dense(4, 2).apply(np.zeros((3, 5)), np.zeros((4, 2)))
    with pytest.raises(InputError, match="no weights"):
        Flatten((2, 2)).apply(np.zeros((1, 2, 2)), np.zeros(3))
    with pytest.raises(InputError, match="divisible"):
        AvgPool2D((5, 4, 1), 2)
    with pytest.raises(InputError, match="larger than the input"):
        Conv2D((3, 3, 1), 2, (4, 4))
    with pytest.raises(InputError, match="padding"):
        Conv2D((3, 3, 1), 2, (2, 2), padding="full")
    with pytest.raises(InputError, match="positive integer"):
        Dense(0, 3)
    with pytest.raises(InputError, match="flatten"):
        make_map("dense", (4, 4, 1), n_out=3)
    with pytest.raises(InputError, match="bad parameters"):
        make_map("flatten", (4,), n_out=3)


def test_unknown_map_name():
    with pytest.raises(UnknownNameError, match="unknown layer map 'maxpool'"):
        make_map("maxpool", (4, 4, 1))
    assert set(MAPS) == {"dense", "conv2d", "avgpool2d", "flatten"}
    with pytest.raises(UnknownNameError, match="scheme"):
        Dense(3, 2).init_weights(0, "he")


def test_init_weights_schemes():
    d = Dense(300, 100)
    W, b = d.init_weights(0)
    limit = math.sqrt(6 / 400)
    assert W.shape == (300, 100) and np.all(np.abs(W) <= limit)
    assert abs(W.var() - limit ** 2 / 3) < 0.05 * limit ** 2 / 3  # variance of U(-a, a)
    assert np.all(b == 0.1) and b.shape == (100,)
    conv = Conv2D((32, 32, 1), 6)
    Wc, bc = conv.init_weights(1, bias=0.0)
    assert Wc.shape == (5, 5, 1, 6) and np.all(np.abs(Wc) <= 0.2) and np.all(bc == 0.0)
    Wn, _ = d.init_weights(2, "normal", std=0.5, dtype=np.float32)
    assert Wn.dtype == np.float32 and abs(Wn.std() - 0.5) < 0.02
    W_again, _ = d.init_weights(0)
    assert np.array_equal(W, W_again)  # seeded


# ---------------------------------------------------------------------------------------------
# GPU: CuPy results equal NumPy's

gpu = pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA device is not available")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("lmap", [Dense(7, 5), Conv2D((9, 8, 3), 4, (3, 3)),
                                  Conv2D((9, 8, 3), 4, (3, 2), padding="same"),
                                  AvgPool2D((8, 6, 3), 2), Flatten((3, 4, 2)),
                                  Chain([AvgPool2D((8, 8, 3), 2), Conv2D((4, 4, 3), 2, (3, 3)),
                                         Flatten((2, 2, 2))])])
def test_cupy_equals_numpy(lmap):
    cp_ = get_backend("cupy")
    X, W, b, G = random_point(lmap, 4, 11)
    dev = [None if a is None else cp_.asarray(a) for a in (X, W, b, G)]
    assert close(to_numpy(lmap.apply(dev[0], dev[1], dev[2])), lmap.apply(X, W, b))
    assert close(to_numpy(lmap.adjoint_input(dev[3], dev[1])), lmap.adjoint_input(G, W))
    if lmap.has_weights:
        dW, db = lmap.adjoint_weights(dev[3], dev[0])
        rW, rb = lmap.adjoint_weights(G, X)
        assert close(to_numpy(dW), rW) and close(to_numpy(db), rb)
        assert math.isclose(lmap.lipschitz_weights(dev[0]), lmap.lipschitz_weights(X),
                            rel_tol=1e-8)
    assert math.isclose(lmap.lipschitz_input(dev[1]), lmap.lipschitz_input(W), rel_tol=1e-6)
