"""Network: Layer specs on the maps registry, grouping into lifted layers, validation,
initialisation, relaxed objective, the original preset's scaling."""

import math

import numpy as np
import pytest

from cvx_fenchel import maps
from cvx_fenchel.errors import InputError, UnknownNameError
from cvx_fenchel.config import preset
from cvx_fenchel.losses import get_loss
from cvx_fenchel.network import Layer, Network, architecture, make_network
from cvx_fenchel.subproblems import XLast


def Dense(n_out, activation="relu", **kw):
    return Layer("dense", n_out=n_out, activation=activation, **kw)


def test_lenet5_groups_weightless_maps_into_next_weighted_layer():
    net = make_network("lenet5")
    assert len(net.layers) == 5 and net.L == 4
    assert [ly.in_shape for ly in net.layers] == [(32, 32, 1), (28, 28, 6), (10, 10, 16), (120,), (84,)]
    assert [ly.out_shape for ly in net.layers] == [(28, 28, 6), (10, 10, 16), (120,), (84,), (10,)]
    assert isinstance(net.layers[1].linear_map, maps.Chain)
    assert isinstance(net.layers[2].linear_map, maps.Chain)
    assert net.layers[-1].activation is None
    assert all(ly.activation.name == "relu" for ly in net.layers[:-1])
    # the chained map equals applying pool then conv
    rng = np.random.default_rng(0)
    w = net.init_weights(0)
    X1 = rng.random((2, 28, 28, 6))
    pooled = maps.AvgPool2D((28, 28, 6)).apply(X1)
    direct = maps.Conv2D((14, 14, 6), 16).apply(pooled, *w[1])
    np.testing.assert_allclose(net.pre_activation(1, X1, w), direct, rtol=1e-12, atol=1e-12)


def test_dense_architecture_and_roundtrip():
    shape, layers = architecture("784-300-10")
    assert shape == (784,) and [ly.param("n_out") for ly in layers] == [300, 10]
    net = Network(shape, layers, lam=0.5, gamma=2.0)
    again = Network.from_dict(net.to_dict())
    assert again.to_dict() == net.to_dict()
    assert [ly.lam for ly in again.layers] == [0.5, 0.5] and again.layers[1].gamma == 2.0


@pytest.mark.parametrize("make, match", [
    (lambda: Network((4,), [Dense(3), {"type": "maxpool"}]), "unknown layer type"),
    (lambda: Layer("dense", n_out=3, size=2).make_map((4,)), "bad parameters"),
    (lambda: Layer("avgpool2d", size=2, activation="relu"), "has no weights"),
    (lambda: Network((4,), [Dense(3, "swish"), Dense(2, None)]), "unknown activation"),
    (lambda: Network((4,), [Dense(3), Dense(2)]), "output layer must be linear"),
    (lambda: Network((4,), [Dense(3), Dense(2, None), Layer("flatten")]), "followed by a weighted"),
    (lambda: Network((8, 8, 1), [Layer("conv2d", c_out=2, kernel=3), Dense(2, None)]), "flat input"),
    (lambda: Network((4, 4, 1), [Layer("conv2d", c_out=2, kernel=5), Layer("flatten"), Dense(2, None)]),
     "larger than the input"),
    (lambda: Network((6, 6, 1), [Layer("avgpool2d", size=4), Layer("flatten"), Dense(2, None)]),
     "divisible"),
    (lambda: Network((4,), [Dense(3, lam=-1.0), Dense(2, None)]), "lam of Layer"),
    (lambda: Network((4,), [Dense(2, None)], loss="hinge"), "unknown loss"),
    (lambda: Network((4,), []), "must not be empty"),
    (lambda: Network((4,), [Layer("flatten")]), "no weighted layer"),
    (lambda: make_network("lenet7"), "unknown architecture"),
    (lambda: preset("original", arch="784-100-10"), "'original' preset has settings for arch"),
    (lambda: preset("cifar-vgg"), "unknown preset"),
])
def test_invalid_architectures_fail_before_training(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_unknown_names_are_unknown_name_errors():
    with pytest.raises(UnknownNameError):
        Network((4,), [Dense(3, "swish"), Dense(2, None)])


def test_initialisation_as_original_code():
    net = make_network("lenet5")
    w = net.init_weights(1)
    for ly, (W, b) in zip(net.layers, w):
        assert W.shape == ly.weight_shape and np.all(b == 0.1)
        if len(W.shape) == 4:  # truncated normal, std 0.1, cut at 2 std
            assert np.max(np.abs(W)) <= 0.2 + 1e-12
        else:  # Glorot uniform
            n_in, n_out = W.shape
            assert np.max(np.abs(W)) <= math.sqrt(6 / (n_in + n_out))
    w2 = net.init_weights(1)
    assert all(np.array_equal(a, c) for (a, _), (c, _) in zip(w, w2))


def _small_net(loss="cross_entropy", **kw):
    return Network((5,), [Dense(4, lam=0.7), Dense(3, "sigmoid", lam=1.3), Dense(3, None)], loss=loss, **kw)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_relaxed_objective_equals_network_loss_at_feed_forward(loss):
    net = _small_net(loss, rho=0.1, gamma=0.2)
    w = net.init_weights(3)
    rng = np.random.default_rng(0)
    X0 = rng.standard_normal((7, 5))
    Y = np.eye(3)[rng.integers(0, 3, 7)]
    Xs, O = net.forward(X0, w, return_all=True)
    parts = net.relaxed_objective(Xs, Y, w, parts=True)
    assert all(abs(d) < 1e-12 for d in parts["divergences"])
    assert parts["loss"] == pytest.approx(net.network_loss(X0, Y, w), rel=1e-13)
    reg = sum(0.1 * (np.sum(W**2) + np.sum(b**2)) for W, b in w)
    assert parts["regularization"] == pytest.approx(reg, rel=1e-12)
    # any other X in the domain costs at least the divergences' zero: J - loss term >= 0
    Xs2 = [Xs[0], Xs[1] + rng.random(Xs[1].shape), np.clip(Xs[2] + 0.1 * rng.standard_normal(Xs[2].shape), 0, 1)]
    assert all(d >= 0 for d in net.relaxed_objective(Xs2, Y, w, parts=True)["divergences"])
    per = net.relaxed_objective_per_sample(Xs2, Y, w)
    assert per.sum() + reg == pytest.approx(net.relaxed_objective(Xs2, Y, w), rel=1e-12)


def test_layer_is_one_vocabulary_over_the_maps_registry():
    """A Layer names a registered map kind (aliases resolved), builds it through maps.make_map,
    and its dict is the checkpoint form of earlier versions."""
    ly = Layer("conv", c_out=6, kernel=[5, 5], lam=2.0)
    assert ly.kind == "conv2d" and ly.param("kernel") == (5, 5) and ly.activation == "relu"
    m = ly.make_map((32, 32, 1))
    assert isinstance(m, maps.Conv2D) and m.out_shape == (28, 28, 6)
    assert Layer("pool", size=2).kind == "avgpool2d" and not Layer("flatten").has_weights
    d = Dense(300, lam=2.0, gamma=10.0).to_dict()
    assert d == {"type": "dense", "n_out": 300, "activation": "relu", "lam": 2.0, "rho": None,
                 "gamma": 10.0, "coef": None, "init": None}
    assert Layer.from_dict(d) == Dense(300, lam=2.0, gamma=10.0)
    assert Layer("avgpool2d", size=2).to_dict() == {"type": "avgpool2d", "size": 2}
    # a network of old-style dicts (as in checkpoints of the previous version) equals one of Layers
    old = [{"type": "dense", "n_out": 4, "activation": "relu", "lam": 0.5, "rho": None, "gamma": None,
            "coef": None, "init": None}, {"type": "dense", "n_out": 3, "activation": None}]
    a, b = Network((5,), old), Network((5,), [Dense(4, lam=0.5), Dense(3, None)])
    assert a.to_dict() == b.to_dict()
    # a map kind registered at run time is a layer kind with no edit here
    assert set(maps.map_kinds()) >= {"dense", "conv2d", "avgpool2d", "flatten"}


def test_network_losses_are_the_losses_module():
    net = _small_net("mse")
    assert net.loss_fn is get_loss("mse") and _small_net("ce").loss == "cross_entropy"


def test_original_settings_scaling_reproduces_original_x_objective():
    """The original X_1 step minimises 10*CE(Y, X1 W1 + b1) + (v^2 - 2uv + max(u,0)^2) summed;
    with lam = 2 on our B and coef = 10 the XLast objective is the same function."""
    net = preset("original", batch_size=500).network()
    l0, l1 = net.layers
    assert (l0.lam, l0.gamma, l1.gamma, l1.coef) == (2.0, 10.0, 100.0 * 500, 10.0)
    rng = np.random.default_rng(0)
    small = Network((20,), [Dense(6, lam=2.0), Dense(3, None, coef=10.0)])
    w = small.init_weights(0)
    X0 = rng.random((5, 20))
    Y = np.eye(3)[rng.integers(0, 3, 5)]
    U0 = small.pre_activation(0, X0, w)
    Z = rng.random((5, 6))
    O = Z @ w[1][0] + w[1][1]
    neo = np.sum(Z**2 - 2 * U0 * Z + np.maximum(U0, 0) ** 2)
    original = 10 * get_loss("cross_entropy").value(Y, O) + 1.0 * neo
    prob = XLast(Y, U0, *w[1], "relu", loss="cross_entropy", lam_prev=2.0, coef=10.0)
    assert prob.objective(Z) == pytest.approx(original, rel=1e-12)
    net5 = preset("original", arch="lenet5").network()
    assert [ly.gamma for ly in net5.layers] == [1e-4, 0.01, 1.0, 1.0, 5000.0]
    assert [ly.coef for ly in net5.layers[1:]] == [1.0, 5.0, 1.0, 5.0]
    assert all(ly.lam == 2.0 for ly in net5.layers[:-1])


def test_check_input_and_weights():
    net = _small_net()
    with pytest.raises(InputError, match="shape"):
        net.check_input(np.zeros((3, 4)))
    with pytest.raises(InputError, match="NaN"):
        net.check_input(np.full((3, 5), np.nan))
    with pytest.raises(InputError, match="W of layer 1"):
        net.check_weights([(np.zeros((5, 4)), np.zeros(4)), (np.zeros((3, 3)), np.zeros(3)),
                           (np.zeros((3, 3)), np.zeros(3))])
