"""Tests of the PyTorch baselines (cvx_fenchel.baselines.torch_nets).

Each test checks a mathematical fact: one optimiser step equals the update computed
by hand from the analytic gradient in NumPy, exported weights reproduce the network
when the forward pass is recomputed in NumPy (dense and LeNet-5 with naive loops),
initial weights have their documented variances, and training solves an easy problem.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from cvx_fenchel.baselines import torch_nets as tn  # noqa: E402
from cvx_fenchel.baselines.torch_nets import (TorchNetClassifier, init_weights,  # noqa: E402
                                              layer_shapes, parse_arch)
from cvx_fenchel.errors import InputError, UnknownNameError  # noqa: E402


# ----------------------------------------------------------------------------- helpers


def relu(a):
    return np.maximum(a, 0.0)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dense_forward(weights, X):
    h = X
    for l, (W, b) in enumerate(weights):
        h = h @ W + b
        if l < len(weights) - 1:
            h = relu(h)
    return h


def grads_one_hidden(X, y, weights, loss, weight_decay=0.0):
    """Hand-derived gradients of (1/m) sum_i loss_i + wd/2 sum ||W||^2 for a 1-hidden-layer net.

    A = X W0 + b0, H = relu(A), Z = H W1 + b1;
    CE: dL/dZ = (softmax(Z) - Y) / m;  MSE ((1/m) sum ||Z - Y||^2): dL/dZ = 2 (Z - Y) / m;
    dW1 = H^T G, db1 = 1^T G, dA = (G W1^T) * [A > 0], dW0 = X^T dA, db0 = 1^T dA.
    """
    (W0, b0), (W1, b1) = weights
    m = X.shape[0]
    A = X @ W0 + b0
    H = relu(A)
    Z = H @ W1 + b1
    Y = np.eye(W1.shape[1])[y]
    G = (softmax(Z) - Y) / m if loss == "cross_entropy" else 2.0 * (Z - Y) / m
    dA = (G @ W1.T) * (A > 0)
    return [(X.T @ dA + weight_decay * W0, dA.sum(0)), (H.T @ G + weight_decay * W1, G.sum(0))]


def tiny_problem(seed=0, m=7, n0=5, n1=4, n2=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n0))
    y = rng.integers(0, n2, size=m)
    w = [(rng.normal(size=(n0, n1)), rng.normal(size=n1)),
         (rng.normal(size=(n1, n2)), rng.normal(size=n2))]
    return X, y, w, f"{n0}-{n1}-{n2}"


def blobs(m, n, k, seed, sep=3.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, n)) * sep
    y = np.arange(m) % k
    return rng.normal(size=(m, n)) + centres[y], y


def conv_nhwc_naive(X, W, b):
    """out[n,i,j,o] = b[o] + sum_{p,q,c} X[n,i+p,j+q,c] W[p,q,c,o] (valid), by explicit loops."""
    m, H, Wd, _ = X.shape
    kh, kw, _, co = W.shape
    out = np.empty((m, H - kh + 1, Wd - kw + 1, co))
    for n in range(m):
        for i in range(H - kh + 1):
            for j in range(Wd - kw + 1):
                patch = X[n, i:i + kh, j:j + kw, :]
                for o in range(co):
                    out[n, i, j, o] = b[o] + np.sum(patch * W[:, :, :, o])
    return out


def avgpool2_naive(X):
    m, H, Wd, C = X.shape
    out = np.empty((m, H // 2, Wd // 2, C))
    for i in range(H // 2):
        for j in range(Wd // 2):
            out[:, i, j, :] = X[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2, :].mean(axis=(1, 2))
    return out


def lenet_forward_naive(weights, X):
    h = X
    for W, b in weights[:2]:
        h = avgpool2_naive(relu(conv_nhwc_naive(h, W, b)))
    h = h.reshape(h.shape[0], -1)  # NHWC flatten: (h, w, c) order
    return dense_forward(weights[2:], h)


# ----------------------------------------------------------------------------- optimiser steps


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_one_sgd_step_equals_hand_gradient(loss, weight_decay):
    X, y, w, arch = tiny_problem()
    lr = 0.37
    model = TorchNetClassifier(arch, optimizer="sgd", lr=lr, epochs=1, batch_size=X.shape[0],
                               loss=loss, init="given", init_weights=w, dtype="float64",
                               weight_decay=weight_decay)
    model.fit(X, y)
    g = grads_one_hidden(X, y, w, loss, weight_decay)
    for (W, b), (W0, b0), (gW, gb) in zip(model.weights_, w, g):
        np.testing.assert_allclose(W, W0 - lr * gW, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b, b0 - lr * gb, rtol=1e-12, atol=1e-12)
    # the logged batch loss is the loss at the initial weights
    Z = dense_forward(w, X)
    if loss == "cross_entropy":
        L = np.mean(np.log(np.exp(Z).sum(1)) - Z[np.arange(len(y)), y])
    else:
        L = np.mean(np.sum((Z - np.eye(3)[y]) ** 2, axis=1))
    L += 0.5 * weight_decay * sum(np.sum(W ** 2) for W, _ in w)
    assert model.history_.batches[0]["loss"] == pytest.approx(L, rel=1e-12)


def test_two_momentum_steps_equal_hand_recursion():
    """SGD with momentum mu: v1 = g(t0), t1 = t0 - lr v1; v2 = mu v1 + g(t1), t2 = t1 - lr v2."""
    X, y, w, arch = tiny_problem(seed=3)
    lr, mu = 0.2, 0.9
    model = TorchNetClassifier(arch, optimizer="sgd", lr=lr, momentum=mu, epochs=2,
                               batch_size=X.shape[0], init="given", init_weights=w, dtype="float64")
    model.fit(X, y)
    g1 = grads_one_hidden(X, y, w, "cross_entropy")
    t1 = [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(w, g1)]
    g2 = grads_one_hidden(X, y, t1, "cross_entropy")
    t2 = [(W - lr * (mu * g1W + g2W), b - lr * (mu * g1b + g2b))
          for (W, b), (g1W, g1b), (g2W, g2b) in zip(t1, g1, g2)]
    for (W, b), (Wh, bh) in zip(model.weights_, t2):
        np.testing.assert_allclose(W, Wh, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, bh, rtol=1e-10, atol=1e-12)


def test_first_adam_step_is_lr_times_normalised_gradient():
    """Adam's first step with bias correction: m_hat = g, v_hat = g^2.

    So t1 = t0 - lr g / (|g| + eps).
    """
    X, y, w, arch = tiny_problem(seed=5)
    lr = 0.01
    model = TorchNetClassifier(arch, optimizer="adam", lr=lr, epochs=1, batch_size=X.shape[0],
                               init="given", init_weights=w, dtype="float64")
    model.fit(X, y)
    g = grads_one_hidden(X, y, w, "cross_entropy")
    for (W, b), (W0, b0), (gW, gb) in zip(model.weights_, w, g):
        np.testing.assert_allclose(W, W0 - lr * gW / (np.abs(gW) + 1e-8), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(b, b0 - lr * gb / (np.abs(gb) + 1e-8), rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------------------------- forward passes


@settings(max_examples=10, deadline=None)
@given(widths=st.lists(st.integers(1, 6), min_size=1, max_size=3), m=st.integers(1, 9),
       seed=st.integers(0, 2**16))
def test_weights_reproduce_predict_proba_dense(widths, m, seed):
    arch = "-".join(map(str, [4, *widths, 3]))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 4))
    y = rng.integers(0, 3, size=m)
    model = TorchNetClassifier(arch, optimizer="adam", epochs=2, batch_size=4, init="var_scale",
                               seed=seed, dtype="float64").fit(X, y)
    Z = dense_forward(model.weights_, X)
    np.testing.assert_allclose(model.decision_function(X), Z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X), softmax(Z), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(model.predict(X), Z.argmax(1))


@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (2, 784), (2, 32, 32, 3)])
def test_weights_reproduce_predict_proba_lenet5(shape):
    rng = np.random.default_rng(1)
    X = rng.random(shape)
    y = np.array([3, 7])
    model = TorchNetClassifier("lenet5", optimizer="adam", epochs=1, batch_size=2, init="xavier",
                               dtype="float64").fit(X, y)
    weights = model.weights_
    channels = shape[-1] if len(shape) == 4 else 1
    assert [W.shape for W, _ in weights] == layer_shapes("lenet5", channels)
    imgs = X.reshape(2, 28, 28, 1) if len(shape) == 2 else X
    if imgs.shape[1] == 28:
        imgs = np.pad(imgs, ((0, 0), (2, 2), (2, 2), (0, 0)))
    Z = lenet_forward_naive(weights, imgs)
    np.testing.assert_allclose(model.decision_function(X), Z, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X), softmax(Z), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- initialisation


def test_given_weights_round_trip_before_training():
    rng = np.random.default_rng(2)
    w = [(rng.normal(size=(a, b)), rng.normal(size=b)) for a, b in [(6, 5), (5, 4), (4, 3)]]
    X, y = rng.normal(size=(10, 6)), rng.integers(0, 3, 10)
    model = TorchNetClassifier("6-5-4-3", init="lifted", init_weights=w, epochs=0,
                               dtype="float64").fit(X, y)
    for (W, b), (W0, b0) in zip(model.weights_, w):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)
    # float32 keeps them to float32 rounding; (1, n) biases are accepted too
    w32 = [(W, b[None, :]) for W, b in w]
    model = TorchNetClassifier("6-5-4-3", init="given", init_weights=w32, epochs=0).fit(X, y)
    for (W, b), (W0, b0) in zip(model.weights_, w):
        assert W.dtype == np.float32
        np.testing.assert_allclose(W, W0, rtol=1e-7)
        np.testing.assert_allclose(b, b0, rtol=1e-7)


@pytest.mark.parametrize("scheme", ["normal", "xavier", "var_scale"])
@pytest.mark.parametrize("shape", [(400, 300), (5, 5, 16, 32)])
def test_init_variances(scheme, shape):
    (W, b), = init_weights([shape], scheme, np.random.default_rng(0))
    fan_in = int(np.prod(shape[:-1]))
    fan_out = shape[-1] * (shape[0] * shape[1] if len(shape) == 4 else 1)
    var = {"normal": 0.1, "xavier": 2.0 / (fan_in + fan_out), "var_scale": 2.0 / fan_in}[scheme]
    n = W.size
    assert W.shape == shape and b.shape == (shape[-1],)
    np.testing.assert_array_equal(b, 0.1)
    assert abs(W.mean()) < 5 * np.sqrt(var / n)
    # standard error of a sample variance is var * sqrt(2/n) at most (normal), 5 sigma
    assert W.var() == pytest.approx(var, rel=5 * np.sqrt(2.0 / n))
    if scheme == "xavier":
        assert np.abs(W).max() <= np.sqrt(6.0 / (fan_in + fan_out))


def test_classifier_random_init_and_determinism():
    X, y = blobs(60, 30, 3, seed=4)
    m0 = TorchNetClassifier("30-200-3", init="normal", epochs=0, seed=7).fit(X, y)
    W = m0.weights_[0][0]
    assert W.var() == pytest.approx(0.1, rel=0.05)
    np.testing.assert_array_equal(m0.weights_[0][1], np.float32(0.1))
    a = TorchNetClassifier("30-8-3", optimizer="adam", epochs=2, batch_size=16, seed=11).fit(X, y)
    b = TorchNetClassifier("30-8-3", optimizer="adam", epochs=2, batch_size=16, seed=11).fit(X, y)
    c = TorchNetClassifier("30-8-3", optimizer="adam", epochs=2, batch_size=16, seed=12).fit(X, y)
    for (Wa, ba), (Wb, bb) in zip(a.weights_, b.weights_):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    assert not np.array_equal(a.weights_[0][0], c.weights_[0][0])


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("optimizer,loss,lr", [("adam", "cross_entropy", None),
                                               ("sgd", "cross_entropy", 0.1),
                                               ("sgd", "mse", 0.05)])
def test_fit_easy_problem_and_history(optimizer, loss, lr):
    X, y = blobs(900, 10, 4, seed=0)
    X, y, Xt, yt = X[:600], y[:600], X[600:], y[600:]
    model = TorchNetClassifier("10-32-4", optimizer=optimizer, loss=loss, lr=lr, epochs=8,
                               batch_size=50, seed=0, eval_every=6)
    model.fit(X, y, X_test=Xt, y_test=yt)
    assert model.score(Xt, yt) >= 0.95
    h = model.history_
    assert len(h.epochs) == 8 and len([r for r in h.batches if r["batch"] > 0]) == 8 * 12
    assert h.epochs[-1]["test_accuracy"] == pytest.approx(model.score(Xt, yt))
    assert h.epochs[-1]["loss"] < h.epochs[0]["loss"]
    # epoch loss = sample-weighted mean of its batch losses; epoch train accuracy likewise
    b1 = [r for r in h.batches if r["epoch"] == 1 and r["batch"] > 0]
    assert h.epochs[0]["loss"] == pytest.approx(np.mean([r["loss"] for r in b1]), rel=1e-9)
    acc1 = np.mean([r["train_accuracy"] for r in b1])
    assert h.epochs[0]["train_accuracy"] == pytest.approx(acc1)
    assert sum("test_accuracy" in r for r in h.batches) == 8 * 12 // 6 + 1
    assert h.meta["model"] == "TorchNetClassifier" and h.meta["lr_used"] == model.lr_
    assert model.lr_ == (tn.DEFAULT_LR[optimizer] if lr is None else lr)
    np.testing.assert_array_equal(model.classes_, np.arange(4))
    assert model.n_classes_ == 4


def test_epochs_argument_overrides_and_partial_batches():
    X, y = blobs(23, 3, 2, seed=1)
    model = TorchNetClassifier("3-4-2", epochs=5, batch_size=10).fit(X, y, epochs=2)
    assert len(model.history_.epochs) == 2 and len(model.history_.batches) == 2 * 3


# ----------------------------------------------------------------------------- errors


def test_parse_arch():
    assert parse_arch("784-300-100-10") == ("dense", [784, 300, 100, 10])
    assert parse_arch([5, 3]) == ("dense", [5, 3])
    assert parse_arch("LeNet5") == ("lenet5", None)
    with pytest.raises(UnknownNameError, match="arch"):
        parse_arch("resnet")
    with pytest.raises(InputError, match="arch"):
        parse_arch("784")
    with pytest.raises(InputError, match="arch"):
        parse_arch("784-0-10")


@pytest.mark.parametrize("kwargs,err,msg", [
    ({"optimizer": "rmsprop"}, UnknownNameError, "optimizer"),
    ({"loss": "hinge"}, UnknownNameError, "loss"),
    ({"init": "orthogonal"}, UnknownNameError, "init"),
    ({"arch": "vgg"}, UnknownNameError, "arch"),
    ({"lr": -1.0}, InputError, "lr"),
    ({"epochs": 1.5}, InputError, "epochs"),
    ({"batch_size": 0}, InputError, "batch_size"),
    ({"momentum": 1.0}, InputError, "momentum"),
    ({"optimizer": "adam", "momentum": 0.9}, InputError, "momentum"),
    ({"weight_decay": -0.1}, InputError, "weight_decay"),
    ({"init": "given"}, InputError, "init_weights"),
    ({"init_weights": [(np.zeros((3, 4)), np.zeros(4))]}, InputError, "init_weights"),
    ({"dtype": "float16"}, InputError, "dtype"),
    ({"device": "nonsense"}, InputError, "device"),
])
def test_bad_hyper_parameters(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        TorchNetClassifier(**{"arch": "3-4-2", **kwargs})


def test_bad_data():
    X, y = blobs(10, 3, 2, seed=0)
    model = TorchNetClassifier("3-4-2", epochs=1)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(InputError, match="X contains NaN"):
        model.fit(Xn, y)
    with pytest.raises(InputError, match="3"):
        model.fit(X[:, :2], y)
    with pytest.raises(InputError, match="y"):
        model.fit(X, y[:-1])
    with pytest.raises(InputError, match="labels outside"):
        model.fit(X, y + 5)
    with pytest.raises(InputError, match="integer"):
        model.fit(X, y + 0.5)
    with pytest.raises(InputError, match="not fitted"):
        model.predict(X)
    with pytest.raises(InputError, match="X_test"):
        model.fit(X, y, X_test=X)
    with pytest.raises(InputError, match=r"init_weights\[0\]\[0\]"):
        TorchNetClassifier("3-4-2", init="given",
                           init_weights=[(np.zeros((3, 5)), np.zeros(5)),
                                         (np.zeros((4, 2)), np.zeros(2))]).fit(X, y)
    img = np.zeros((2, 28, 28, 1))
    lenet = TorchNetClassifier("lenet5", epochs=0).fit(img, np.array([0, 1]))
    with pytest.raises(InputError, match="channel"):
        lenet.predict(np.zeros((2, 32, 32, 3)))
    with pytest.raises(InputError, match="LeNet-5"):
        lenet.predict(np.zeros((2, 30, 30, 1)))


def test_module_imports_without_torch_and_class_says_how_to_install():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import cvx_fenchel.baselines.torch_nets as t\n"
            "try:\n    t.TorchNetClassifier()\nexcept ImportError as e:\n    print('MSG', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "MSG " + tn.TORCH_INSTALL_HINT in out.stdout
    assert "pip install 'cvx-fenchel[baselines]'" in tn.TORCH_INSTALL_HINT
