"""TrainConfig and its presets: the original settings, overrides, validation, round trips."""

import dataclasses
import json

import pytest

from cvx_fenchel.config import TrainConfig, describe, preset
from cvx_fenchel.errors import InputError, UnknownNameError


def test_original_preset_is_the_original_codes_settings_and_the_main_commands_run():
    """784-300-10: lam 2 (original lambda 1 on 2B), hidden gamma = rhod 10, output gamma =
    rhod 100 times the batch (mean vs summed CE), coef = lbd_coef 10 on the loss, rho 0, K 1,
    X-steps first; run settings of the main command: 1 epoch, batch 500, float32, caps 50/30,
    tolerances 1e-4 (the iteration-economy setting; 1e-5 before, checkpoint.FORMER_DEFAULTS)."""
    c = preset("original")
    assert (c.arch, c.loss, c.lam, c.rho, c.gamma, c.coef, c.K, c.w_first) == \
        ("784-300-10", "cross_entropy", 2.0, 0.0, (10.0, 50000.0), (1.0, 10.0), 1, False)
    assert (c.epochs, c.batch_size, c.dtype, c.max_iter_x, c.max_iter_w, c.tol_x, c.tol_w) == \
        (1, 500, "float32", 50, 30, 1e-4, 1e-4)
    assert (c.algorithm, c.w_step, c.seed, c.predict_rule, c.overrides) == \
        ("batched", "solve", 0, "feedforward", ())
    net = c.network()
    assert [(d["lam"], d["rho"], d["gamma"], d["coef"]) for d in net.describe()] == \
        [(2.0, 0.0, 10.0, 1.0), (2.0, 0.0, 50000.0, 10.0)]
    assert net.dtype.name == "float32"
    lenet = preset("original", arch="lenet5", batch_size=100)
    assert lenet.gamma == (1e-4, 0.01, 1.0, 1.0, 1000.0) and lenet.coef == (1.0, 1.0, 5.0, 1.0, 5.0)
    assert [ly.gamma for ly in lenet.network().layers] == [1e-4, 0.01, 1.0, 1.0, 1000.0]
    assert preset("auto") == c and preset() == c
    assert preset("auto", arch="784-100-10").preset == "plain"


def test_given_values_override_the_preset_and_are_recorded():
    c = preset("original", lam=1.0, gamma=0.5, batch_size=200, epochs=3)
    assert (c.lam, c.gamma, c.batch_size, c.epochs) == (1.0, 0.5, 200, 3)
    assert c.overrides == ("gamma", "lam")  # run settings are not preset values
    line = describe(c)
    assert "gamma=0.5 overrides preset original (gamma=(10, 20000))" in line
    assert "lam=1 overrides preset original (lam=2)" in line
    # a value equal to the preset's is no override
    assert preset("original", lam=2.0, K=1).overrides == ()
    # the plain preset fixes nothing
    p = preset("plain", lam=0.5)
    assert p.lam == 0.5 and p.overrides == () and p.preset == "plain"
    assert preset("none") == preset("plain")


@pytest.mark.parametrize("field, value, err, needle", [
    ("epochs", 0, InputError, "epochs must be an integer >= 1"),
    ("batch_size", 2.5, InputError, "batch_size must be an integer"),
    ("K", True, InputError, "K must be an integer"),
    ("lam", 0.0, InputError, "lam must be > 0"),
    ("gamma", (1.0, -2.0), InputError, r"gamma\[1\] must be >= 0"),
    ("lr", 0.0, InputError, "lr must be > 0"),
    ("tol_x", 0.0, InputError, "tol_x must be > 0"),
    ("max_iter_w", 0, InputError, "max_iter_w must be an integer >= 1"),
    ("algorithm", "minibatch", UnknownNameError, "unknown algorithm"),
    ("w_step", "newton", UnknownNameError, "unknown w_step"),
    ("optimizer", "rmsprop", UnknownNameError, "unknown optimizer"),
    ("dtype", "float16", UnknownNameError, "unknown dtype"),
    ("backend", "jax", UnknownNameError, "unknown backend"),
    ("loss", "hinge", UnknownNameError, "unknown loss"),
    ("arch", "lenet7", UnknownNameError, "unknown architecture"),
    ("w_first", "yes", InputError, "w_first must be True or False"),
])
def test_every_field_is_checked_when_the_config_is_made(field, value, err, needle):
    with pytest.raises(err, match=needle):
        TrainConfig(**{field: value})
    with pytest.raises(err, match=needle):
        preset("original", **{field: value})


def test_per_layer_tuples_must_match_the_weighted_layers():
    with pytest.raises(InputError, match="gamma has 3 entries but the network has 2 weighted layers"):
        TrainConfig(gamma=(1.0, 2.0, 3.0)).network()
    net = TrainConfig(arch="6-5-4-3", lam=(0.5, None, None), rho=0.1, dtype="float64").network()
    assert [ly.lam for ly in net.layers] == [0.5, 1.0, 1.0] and {ly.rho for ly in net.layers} == {0.1}


def test_lr_per_weighted_layer():
    """``lr``: one step size, or one per weighted layer (checked against the network, each > 0,
    no None), read by ``lr_of``; it survives the JSON round trip of a checkpoint."""
    c = TrainConfig(arch="lenet5", w_step="gradient", lr=[3e-3, 3e-3, 1e-3, 1e-3, 1e-3])
    assert c.lr == (3e-3, 3e-3, 1e-3, 1e-3, 1e-3) and [c.lr_of(l) for l in (0, 1, 4)] == [3e-3, 3e-3, 1e-3]
    assert len(c.network().layers) == 5 and TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert TrainConfig(lr=0.5).lr_of(1) == 0.5
    with pytest.raises(InputError, match="lr has 3 entries but the network has 2 weighted layers"):
        TrainConfig(lr=(1e-3, 1e-3, 1e-3)).network()
    with pytest.raises(InputError, match=r"lr\[1\] must be > 0"):
        TrainConfig(lr=(1e-3, 0.0))
    with pytest.raises(InputError, match="no None"):
        TrainConfig(lr=(1e-3, None))
    assert "adam lr (0.003, 0.003, 0.001, 0.001, 0.001)" in describe(c)


def test_round_trips_and_replace():
    from cvx_fenchel.network import Layer
    for c in (preset("original", lam=1.0), preset("original", arch="lenet5"),
              TrainConfig(arch=((6,), [Layer("dense", n_out=4), Layer("dense", n_out=3, activation=None)]),
                          gamma=(0.0, 1.0))):
        assert TrainConfig.from_dict(c.to_dict()) == c
    c = TrainConfig()
    assert c.replace(K=3).K == 3 and dataclasses.replace(c) == c
    with pytest.raises(InputError, match="unknown TrainConfig field"):
        c.replace(kk=3)
    with pytest.raises(InputError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"lamda": 1.0})
    with pytest.raises(UnknownNameError, match="unknown preset"):
        preset("paper")


def test_public_api_is_exported_lazily_without_cycles():
    """``import cvx_fenchel`` loads none of the heavy modules; each public name resolves to the
    object of its module."""
    import subprocess
    import sys
    code = ("import sys, cvx_fenchel as c; assert not any(m in sys.modules for m in "
            "('cvx_fenchel.estimator', 'cvx_fenchel.trainer', 'cvx_fenchel.subproblems', 'cvxpy')), "
            "sorted(m for m in sys.modules if m.startswith('cvx_fenchel'))")
    subprocess.run([sys.executable, "-c", code], check=True)
    import cvx_fenchel
    from cvx_fenchel.config import TrainConfig as T
    from cvx_fenchel.estimator import FenchelClassifier as F
    assert cvx_fenchel.TrainConfig is T and cvx_fenchel.FenchelClassifier is F
    for name in cvx_fenchel.__all__:
        assert getattr(cvx_fenchel, name) is not None
    with pytest.raises(AttributeError):
        cvx_fenchel.no_such_name  # noqa: B018
