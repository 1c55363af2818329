"""Array backend: one fast-path source for NumPy (CPU) and CuPy (GPU).

Algorithm code never imports CuPy. It calls :func:`get_namespace` on its
inputs and does all array work through the returned ``xp`` (``numpy`` or
``cupy``) and ``xsp`` (``scipy`` or ``cupyx.scipy``) modules, the pattern of
POT's ``get_backend`` and scikit-learn's ``get_namespace``.

Why not return ``array_api_compat.array_namespace`` directly: its namespaces
deliberately stop at the array-API standard, and the fast path needs
``linalg.cholesky``, triangular solves, ``logaddexp`` and friends that NumPy
and CuPy both have under the same names. We use array-api-compat for the part
it does well (recognising a CuPy array without importing CuPy) and return the
real ``numpy``/``cupy`` modules.

Dtype policy: float64 for verification (the default), float32 allowed in
training. Integer and boolean inputs are converted to the working float dtype;
complex and object inputs are rejected.
"""

from __future__ import annotations

import functools
import importlib
import sys
from types import ModuleType
from typing import Any

import numpy as np
import scipy
from array_api_compat import is_cupy_array

from .errors import BackendError, InputError

BACKENDS = ("auto", "numpy", "cupy")
FLOAT_DTYPES = ("float32", "float64")


@functools.lru_cache(maxsize=1)
def _cupy_status() -> tuple[bool, str]:
    """(usable, reason): whether CuPy imports and sees at least one CUDA device."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:  # ImportError, or a broken CUDA install
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"CuPy is installed but finds no CUDA device ({type(exc).__name__}: {exc})"
    if n < 1:
        return False, "CuPy is installed but finds no CUDA device"
    return True, f"CuPy {cupy.__version__} with {n} CUDA device(s)"


def cupy_available() -> bool:
    """True when CuPy imports and sees a CUDA device."""
    return _cupy_status()[0]


def cupy_status() -> str:
    """A one-line description of whether and why CuPy can (not) be used."""
    return _cupy_status()[1]


def get_backend(name: str = "auto") -> ModuleType:
    """Return the array module for a backend name.

    Parameters
    ----------
    name : {"auto", "numpy", "cupy"}
        ``"auto"`` picks CuPy when it sees a GPU and NumPy otherwise;
        ``"cupy"`` raises :class:`BackendError` when no GPU is usable.
    """
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if name == "numpy":
        return np
    ok, reason = _cupy_status()
    if name == "cupy" and not ok:
        raise BackendError(f"backend 'cupy' requested but unavailable: {reason}")
    if ok:
        return importlib.import_module("cupy")
    return np


def get_namespace(*arrays: Any) -> tuple[ModuleType, ModuleType]:
    """Return ``(xp, xsp)`` for the arrays given: ``(numpy, scipy)`` or ``(cupy, cupyx.scipy)``.

    Scalars and ``None`` are skipped. Mixing NumPy and CuPy arrays raises
    :class:`InputError` (device movement belongs at the edges, not inside a solver).
    """
    kinds = set()
    for a in arrays:
        if a is None or isinstance(a, (int, float, bool, np.generic)):
            continue
        kinds.add("cupy" if is_cupy_array(a) else "numpy")
    if len(kinds) > 1:
        raise InputError("arrays live on different backends (NumPy and CuPy mixed); "
                         "move them with cvx_fenchel.backend.asarray(..., xp) first")
    if kinds == {"cupy"}:
        cupy = sys.modules["cupy"]
        cupyx_scipy = importlib.import_module("cupyx.scipy")
        importlib.import_module("cupyx.scipy.linalg")
        importlib.import_module("cupyx.scipy.special")
        return cupy, cupyx_scipy
    importlib.import_module("scipy.linalg")
    importlib.import_module("scipy.special")
    return np, scipy


def is_numpy(xp: ModuleType) -> bool:
    return xp is np


#: Iterations between two host reads of an iterative solver's stopping test on a device
#: namespace (:func:`check_interval`).
DEVICE_CHECK_INTERVAL = 8


def check_interval(xp: ModuleType) -> int:
    """How often (in iterations) an iterative fast solver reads its stopping test back to the host:
    every iteration on NumPy (a host array: the read is free), every
    :data:`DEVICE_CHECK_INTERVAL` iterations on any other namespace (CuPy, where each read is a
    host synchronisation, and the instrumented namespace of :mod:`cvx_fenchel.bench.syncs` that
    counts them on the CPU). Between reads, restarts and momentum are decided on the device; at
    most ``interval - 1`` iterations are taken past the first one that meets the test."""
    return 1 if xp is np else DEVICE_CHECK_INTERVAL


def block_dot(a: Any, b: Any, k: int) -> Any:
    """Per-block inner products ``sum(a * b)`` over each of ``k`` blocks: the last axis (an output
    channel) when ``k > 1`` (``reshape(-1, k)`` groups a flattened NHWC array by channel), all
    entries when ``k == 1``; shape ``(k,)``. One ``einsum`` pass (no ``a * b`` temporary: about
    half the time of ``(a * b).reshape(-1, k).sum(0)`` on NumPy), the same sums up to rounding."""
    xp, _ = get_namespace(a, b)
    return xp.einsum("ij,ij->j", a.reshape(-1, k), b.reshape(-1, k))


def to_numpy(a: Any) -> Any:
    """Copy a CuPy array to the host; NumPy arrays and scalars pass through."""
    if is_cupy_array(a):
        return a.get()
    return a


def resolve_dtype(dtype: Any, *, name: str = "dtype") -> np.dtype:
    """Validate a working float dtype: only float32 and float64 are allowed."""
    dt = np.dtype(dtype)
    if dt.name not in FLOAT_DTYPES:
        raise InputError(f"{name} must be float32 or float64, got {dt.name}")
    return dt


def asarray(a: Any, xp: ModuleType | None = None, dtype: Any = None, *, name: str = "array") -> Any:
    """Convert to an array of ``xp`` (default: the input's own) with a float dtype.

    Integer/bool inputs become ``dtype`` (default float64); float inputs keep
    their precision unless ``dtype`` is given; complex, object and string
    inputs raise :class:`InputError`.
    """
    if xp is None:
        xp = get_namespace(a)[0] if (is_cupy_array(a) or isinstance(a, np.ndarray)) else np
    src_dtype = getattr(a, "dtype", None)
    if src_dtype is None:
        try:
            src_dtype = np.asarray(a).dtype
        except Exception as exc:
            raise InputError(f"{name} is not array-like: {exc}") from None
    src_dtype = np.dtype(src_dtype)
    if src_dtype.kind in "cOSUVMm":
        raise InputError(f"{name} has dtype {src_dtype}; expected a real numeric array")
    if dtype is None:
        dtype = src_dtype if src_dtype.kind == "f" and src_dtype.name in FLOAT_DTYPES else np.float64
    dtype = resolve_dtype(dtype, name=f"dtype of {name}")
    if xp is np:
        return np.asarray(to_numpy(a), dtype=dtype)
    return xp.asarray(a, dtype=dtype)


def check_array(a: Any, name: str, *, ndim: int | tuple[int, ...] | None = None,
                shape: tuple[int | None, ...] | None = None, xp: ModuleType | None = None,
                dtype: Any = None, finite: bool = True) -> Any:
    """Validate and convert an array argument; errors name the argument.

    Parameters
    ----------
    a : array-like
    name : str
        Used in error messages.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    shape : tuple, optional
        Expected shape, ``None`` entries are free.
    finite : bool
        Reject NaN and inf (default True).
    """
    if a is None:
        raise InputError(f"{name} is None; expected an array")
    arr = asarray(a, xp, dtype, name=name)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise InputError(f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                             f"got shape {tuple(arr.shape)}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, arr.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise InputError(f"{name} must have shape {want}, got {tuple(arr.shape)}")
    if finite and arr.size:
        xpm = get_namespace(arr)[0]
        if not bool(xpm.isfinite(arr).all()):
            raise InputError(f"{name} contains NaN or inf")
    return arr


def check_finite(named: dict) -> None:
    """Raise :class:`InputError` naming the first array of ``{name: array}`` holding NaN or inf,
    after **one** host read for all of them (empty arrays and None are skipped)."""
    given = [(k, a) for k, a in named.items() if a is not None and a.size]
    if not given:
        return
    xp = get_namespace(*(a for _, a in given))[0]
    if not bool(xp.all(xp.stack([xp.all(xp.isfinite(a)) for _, a in given]))):
        bad = next(k for k, a in given if not bool(xp.all(xp.isfinite(a))))
        raise InputError(f"{bad} contains NaN or inf")


def check_scalar(value: Any, name: str, *, low: float | None = 0.0, high: float | None = None,
                 low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Validate a real scalar hyper-parameter (lambda, rho, gamma, ...) and return it as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a real number, got {value!r}") from None
    if not np.isfinite(v):
        raise InputError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise InputError(f"{name} must be {op} {low}, got {v}")
    if high is not None and (v > high or (v == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise InputError(f"{name} must be {op} {high}, got {v}")
    return v


def check_int(value: Any, name: str, low: int | None = 0, high: int | None = None) -> int:
    """Validate an integer argument (epochs, batch size, seed, iteration caps, ...): a Python or
    NumPy integer (not a bool, not a float) in ``[low, high]``; returns it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise InputError(f"{name} must be an integer >= {low}, got {v}")
    if high is not None and v > high:
        raise InputError(f"{name} must be an integer <= {high}, got {v}")
    return v
