"""The BCD loop's trusted inputs (issue 12, point 5): subproblems built by ``bcd_pass`` skip the
value checks that need a host read; the loop checks a batch's values once instead."""

from __future__ import annotations

import numpy as np
import pytest

from cvx_fenchel.config import preset
from cvx_fenchel.errors import InputError
from cvx_fenchel.subproblems import WHidden, WLast, XLast, inputs_trusted, trusted_inputs
from cvx_fenchel.trainer import BCDTrainer


def test_trusted_inputs_skip_value_checks_only_inside_the_block():
    rng = np.random.default_rng(0)
    X, V = rng.random((6, 4)), np.maximum(rng.normal(size=(6, 3)), 0)
    V_bad = V.copy()
    V_bad[0, 0] = -1.0  # outside the ReLU divergence's domain
    with pytest.raises(InputError, match="outside the domain"):
        WHidden(X, V_bad, "relu", gamma=1.0, W_shape=(4, 3))
    Y_bad = np.full((6, 3), 0.5)  # rows not on the simplex
    with pytest.raises(InputError, match="cross-entropy targets"):
        WLast(X, Y_bad, gamma=1.0, W_shape=(4, 3))
    assert not inputs_trusted()
    with trusted_inputs():
        assert inputs_trusted()
        WHidden(X, V_bad, "relu", gamma=1.0, W_shape=(4, 3))
        WLast(X, Y_bad, gamma=1.0, W_shape=(4, 3))
        XLast(Y_bad, X, rng.normal(size=(4, 3)))
        with pytest.raises(InputError, match="shape"):  # shapes are still checked
            WHidden(X, V[:5], "relu", gamma=1.0, W_shape=(4, 3))
    assert not inputs_trusted()


@pytest.mark.parametrize("where", ["X", "Y"])
def test_the_loop_checks_a_batch_once(where):
    cfg = preset("plain", arch="8-5-3", lam=1.0, gamma=1.0, batch_size=10, dtype="float64")
    rng = np.random.default_rng(1)
    X, Y = rng.random((10, 8)), np.eye(3)[rng.integers(0, 3, 10)]
    (X if where == "X" else Y)[2, 1] = np.nan
    tr = BCDTrainer(cfg.network(), cfg)
    with pytest.raises(InputError, match=f"^{where} contains NaN or inf"):
        tr.train_batch(X, Y)
    Y_bad = np.full((10, 3), 0.5)
    with pytest.raises(InputError, match="cross-entropy targets"):
        tr.train_batch(rng.random((10, 8)), Y_bad)
