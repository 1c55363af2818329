"""Argument checks shared by the subproblem classes (errors name the argument and the subproblem)."""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

import numpy as np

from ..activations import Activation
from ..backend import check_array, check_finite, check_scalar, get_namespace
from ..errors import InputError
from ..maps import Dense, LinearMap
from ..solvers import FastResult, default_tol

__all__ = ["trusted_inputs", "inputs_trusted", "common_arrays", "default_map", "check_shape", "check_domain", "solver_tol", "result"]


_TRUSTED = contextvars.ContextVar("cvx_fenchel_trusted_inputs", default=False)


@contextlib.contextmanager
def trusted_inputs():
    """Inside this block, subproblems skip the value checks of their arguments that need a host
    read (finiteness, the divergence's domain, a loss's targets, a start's finiteness); shapes,
    dtypes and parameters are still checked. For the BCD loop (:func:`cvx_fenchel.bcd.bcd_pass`),
    which builds every subproblem from arrays it produced itself: it checks a batch's inputs once
    (:func:`cvx_fenchel.bcd.feed_forward`) and every batch's relaxed objective (a NaN or inf raises
    there), so on a GPU the per-step checks would only cost synchronisations."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def inputs_trusted() -> bool:
    """Whether the caller is inside :func:`trusted_inputs`."""
    return _TRUSTED.get()


def common_arrays(arrays: dict, dtype=None):
    """``(xp, dtype, checked)``: the arrays checked (finite, real) and converted to one namespace
    and dtype (float32 when every floating input is float32, else float64, unless ``dtype``)."""
    present = {k: v for k, v in arrays.items() if v is not None}
    xp, _ = get_namespace(*present.values())
    if dtype is None:
        dts = [np.dtype(getattr(v, "dtype", np.float64)) for v in present.values()]
        floats = [d for d in dts if d.kind == "f"]
        dtype = np.float32 if floats and all(d == np.float32 for d in floats) else np.float64
    out = {k: (None if v is None else check_array(v, k, xp=xp, dtype=dtype, finite=False))
           for k, v in arrays.items()}
    if not inputs_trusted():
        check_finite(out)  # one host read for all of them
    return xp, np.dtype(dtype), out


def default_map(W, name: str) -> LinearMap:
    """The dense map of a 2-D ``W`` (``(n_in, n_out)``); InputError otherwise."""
    if W is None or getattr(W, "ndim", 0) != 2:
        raise InputError(f"{name}: give linear_map= for weights of shape {getattr(W, 'shape', None)} "
                         "(a dense default needs a 2-D W)")
    return Dense(int(W.shape[0]), int(W.shape[1]))


def check_shape(a, shape, what: str, problem: str) -> None:
    if tuple(a.shape) != tuple(shape):
        raise InputError(f"{problem}: {what} must have shape {tuple(shape)}, got {tuple(a.shape)}")


def check_domain(act: Activation, V, what: str, problem: str) -> None:
    """InputError unless every entry of ``V`` is in ``dom F`` of ``act``."""
    xp, _ = get_namespace(V)
    if not inputs_trusted() and not bool(xp.all(act.in_domain(V))):
        raise InputError(f"{problem}: {what} has entries outside the domain [{act.lower}, {act.upper}] "
                         f"of the {act.name} divergence")


def solver_tol(tol, dtype) -> float:
    """``tol`` checked (> 0), or the dtype's default (1e-9 float64, 1e-5 float32)."""
    return default_tol(dtype) if tol is None else check_scalar(tol, "tol", low=0.0, low_inclusive=False)


def result(x, objective: Any, n_iter: int, converged: bool, residual: float, seconds: float,
           method: str) -> FastResult:
    """A :class:`~cvx_fenchel.solvers.FastResult` naming the ``method`` that produced it
    (``objective``: the value, or a zero-argument callable evaluated when first read)."""
    return FastResult(x, objective, int(n_iter), bool(converged), residual, seconds, method=method)
