"""The fast path on CuPy against the same code on NumPy (issue 12, point 6).

Every test here is marked ``gpu`` and skipped cleanly without CuPy and a CUDA device (CI has
none; the GPU kit, ``python -m cvx_fenchel.bench.kit --backend cupy``, runs them on a lent
device). The NumPy side runs with the device's stopping-test interval
(:data:`cvx_fenchel.backend.DEVICE_CHECK_INTERVAL`) so both take the same iterations; the
remaining differences are the summation orders of cuBLAS and OpenBLAS.
"""

from __future__ import annotations

import numpy as np
import pytest

from cvx_fenchel import backend
from cvx_fenchel.backend import cupy_available, to_numpy

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cupy_available(), reason=f"no CUDA device: {backend.cupy_status()}")]


@pytest.fixture
def cp():
    import cupy
    return cupy


@pytest.fixture
def device_interval(monkeypatch):
    """NumPy reads its stopping tests every DEVICE_CHECK_INTERVAL iterations, as CuPy does."""
    import cvx_fenchel.solvers as solvers
    monkeypatch.setattr(solvers, "check_interval", lambda xp: backend.DEVICE_CHECK_INTERVAL)


def rel(a, b) -> float:
    a, b = np.asarray(to_numpy(a), dtype=float), np.asarray(to_numpy(b), dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _hidden_wstep_args(rng, m=60, n=100, k=12, dtype=np.float32):
    X = rng.random((m, n)).astype(dtype)
    X_next = np.maximum(rng.normal(size=(m, k)), 0).astype(dtype)
    W0 = (0.1 * rng.normal(size=(n, k))).astype(dtype)
    b0 = (0.1 * rng.normal(size=k)).astype(dtype)
    return X, X_next, W0, b0


def test_float32_sample_space_wstep_on_cupy(cp, device_interval):
    from cvx_fenchel.subproblems import WHidden
    rng = np.random.default_rng(0)
    X, X_next, W0, b0 = _hidden_wstep_args(rng)
    kw = {"lam": 2.0, "gamma": 10.0}
    cpu = WHidden(X, X_next, "relu", W0=W0, b0=b0, **kw)
    gpu = WHidden(*(cp.asarray(a) for a in (X, X_next)), "relu", W0=cp.asarray(W0), b0=cp.asarray(b0), **kw)
    assert cpu.fast_method == gpu.fast_method == "sample-space"
    rc = cpu.solve_fast(tol=1e-5, max_iter=30, warn=False)
    rg = gpu.solve_fast(tol=1e-5, max_iter=30, warn=False)
    assert isinstance(rg.x[0], cp.ndarray) and rg.x[0].dtype == cp.float32
    assert rg.method == "sample-space"
    assert abs(rg.objective - rc.objective) <= 1e-4 * abs(rc.objective)
    assert rel(rg.x[0], rc.x[0]) <= 1e-3
    assert rg.n_iter == rc.n_iter


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_xlast_steps_on_cupy(cp, device_interval, loss):
    from cvx_fenchel.subproblems import XLast
    rng = np.random.default_rng(1)
    m, n, k = 40, 16, 5
    Y = np.eye(k)[rng.integers(0, k, m)]
    U_prev, W, b = rng.normal(size=(m, n)), rng.normal(size=(n, k)), rng.normal(size=k)
    cpu = XLast(Y, U_prev, W, b, loss=loss, coef=3.0).solve_fast(tol=1e-10)
    gpu = XLast(*(cp.asarray(a) for a in (Y, U_prev, W, b)), loss=loss, coef=3.0).solve_fast(tol=1e-10)
    assert gpu.converged and cpu.converged
    assert rel(gpu.x, cpu.x) <= 1e-8
    assert abs(gpu.objective - cpu.objective) <= 1e-9 * max(1.0, abs(cpu.objective))


def test_one_trainer_batch_on_cupy(cp, device_interval):
    from cvx_fenchel.bench.workloads import load_bench_data
    from cvx_fenchel.config import preset
    from cvx_fenchel.trainer import BCDTrainer
    data = load_bench_data("784-300-10", None)  # the embedded subset
    cfg = preset("plain", arch="784-32-10", lam=1.0, gamma=1.0, batch_size=100, dtype="float64")
    X, Y, y = (data[k][:100] for k in ("X", "Y", "y"))
    cpu = BCDTrainer(cfg.network(), cfg.replace(backend="numpy"))
    gpu = BCDTrainer(cfg.network(), cfg.replace(backend="cupy"), xp=cp)
    rc = cpu.train_batch(X.astype(np.float64), Y.astype(np.float64), y)
    rg = gpu.train_batch(*(cp.asarray(a) for a in (X.astype(np.float64), Y.astype(np.float64), y)))
    assert abs(rg["relaxed_objective"] - rc["relaxed_objective"]) <= 1e-7 * abs(rc["relaxed_objective"])
    for (Wc, bc), (Wg, bg) in zip(cpu.weights, gpu.weights):
        assert isinstance(Wg, cp.ndarray)
        assert rel(Wg, Wc) <= 1e-6 and rel(bg, bc) <= 1e-6


def test_lifted_network_2018_steps_on_cupy(cp, device_interval):
    from cvx_fenchel.subproblems import LNNW, LNNX, LNNSimplexCE
    rng = np.random.default_rng(2)
    m, n, k = 30, 10, 6
    X_next, U_prev = np.maximum(rng.normal(size=(m, k)), 0), rng.normal(size=(m, n))
    W, b = rng.normal(size=(n, k)), rng.normal(size=k)
    cx = LNNX(X_next, U_prev, W, b, lam=1.0, lam_prev=2.0).solve_fast(tol=1e-10)
    gx = LNNX(*(cp.asarray(a) for a in (X_next, U_prev, W, b)), lam=1.0, lam_prev=2.0).solve_fast(tol=1e-10)
    assert rel(gx.x, cx.x) <= 1e-8
    X = np.maximum(rng.normal(size=(m, n)), 0)
    cw = LNNW(X, X_next, lam=1.0, rho=0.1).solve_fast()
    gw = LNNW(cp.asarray(X), cp.asarray(X_next), lam=1.0, rho=0.1).solve_fast()
    assert rel(gw.x[0], cw.x[0]) <= 1e-8
    Y = np.eye(k)[rng.integers(0, k, m)]
    X0 = rng.random((m, k))
    cs = LNNSimplexCE(Y, X0, lam=0.5).solve_fast()
    gs = LNNSimplexCE(cp.asarray(Y), cp.asarray(X0), lam=0.5).solve_fast()
    assert rel(gs.x, cs.x) <= 1e-10


def test_failed_cholesky_raises_on_cupy(cp):
    from cvx_fenchel.solvers import cholesky
    with pytest.raises(np.linalg.LinAlgError):
        cholesky(cp.asarray([[1.0, 2.0], [2.0, 1.0]]))
