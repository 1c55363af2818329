"""Array backend: namespaces, device choice, dtype policy, validation messages, GPU parity."""

import numpy as np
import pytest
import scipy

from cvx_fenchel import backend
from cvx_fenchel.backend import (asarray, check_array, check_scalar, cupy_available, get_backend, get_namespace,
                                 resolve_dtype)
from cvx_fenchel.errors import BackendError, InputError

gpu = pytest.mark.skipif(not cupy_available(), reason=f"no CUDA device: {backend.cupy_status()}")


def test_numpy_namespace_and_scalars_skipped():
    xp, xsp = get_namespace(np.ones(3), None, 2.0)
    assert xp is np and xsp is scipy


def test_get_backend_names():
    assert get_backend("numpy") is np
    assert get_backend("auto") is (np if not cupy_available() else __import__("cupy"))
    with pytest.raises(InputError, match="unknown backend 'torch'"):
        get_backend("torch")
    if not cupy_available():
        with pytest.raises(BackendError, match="cupy"):
            get_backend("cupy")


def test_dtype_policy():
    assert asarray(np.arange(3)).dtype == np.float64
    assert asarray(np.ones(2, np.float32)).dtype == np.float32
    assert asarray(np.ones(2, np.float32), dtype="float64").dtype == np.float64
    with pytest.raises(InputError, match="float32 or float64"):
        resolve_dtype("float16")
    with pytest.raises(InputError, match="complex"):
        asarray(np.ones(2, complex), name="X")
    with pytest.raises(InputError, match="X has dtype <U1"):
        asarray(np.array(["a"]), name="X")


def test_check_array_messages():
    with pytest.raises(InputError, match=r"W must have shape \(3, \*\), got \(2, 2\)"):
        check_array(np.ones((2, 2)), "W", shape=(3, None))
    with pytest.raises(InputError, match="Y must have 2 dimension"):
        check_array(np.ones(3), "Y", ndim=2)
    with pytest.raises(InputError, match="X contains NaN or inf"):
        check_array(np.array([1.0, np.inf]), "X")
    with pytest.raises(InputError, match="lam must be >= 0"):
        check_scalar(-1, "lam")
    with pytest.raises(InputError, match="rho must be a real number"):
        check_scalar("a", "rho")


@gpu
@pytest.mark.gpu
def test_cupy_fast_path_matches_numpy():
    import cupy

    from cvx_fenchel.subproblems import XHidden
    rng = np.random.default_rng(0)
    args = (np.maximum(rng.normal(size=(40, 6)), 0), rng.normal(size=(40, 8)), rng.normal(size=(8, 6)),
            rng.normal(size=6))
    cpu = XHidden(*args).solve_fast(tol=1e-10)
    gpu_res = XHidden(*[cupy.asarray(a) for a in args]).solve_fast(tol=1e-10)
    assert isinstance(gpu_res.x, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(gpu_res.x), cpu.x, atol=1e-8)
    assert get_namespace(gpu_res.x)[0] is cupy
    with pytest.raises(InputError, match="mixed"):
        get_namespace(np.ones(2), cupy.ones(2))


def test_check_finite_names_the_first_bad_array_after_one_read():
    from cvx_fenchel.backend import check_finite
    from cvx_fenchel.bench.syncs import counting, instrument
    good, bad = np.ones(3), np.array([1.0, np.nan])
    check_finite({"a": good, "b": None, "c": np.ones(0)})
    with pytest.raises(InputError, match="^b contains NaN or inf$"):
        check_finite({"a": good, "b": bad, "c": np.array([np.inf])})
    with counting() as c:
        check_finite({"a": instrument(good), "b": instrument(good)})
    assert c.total == 1
