"""Linear maps of the layers: dense, 2-D convolution, 2x2 average pooling, flatten.

Every layer of a (Fenchel) lifted network computes a pre-activation
``U = A(X; W) + b``, linear in the input ``X`` for fixed weights and linear in
the weights ``W`` for a fixed input. The BCD subproblems need, besides the
forward map, its two adjoints::

    <A(X; W), G> = <X, A_X^T(G; W)> = <W, A_W^T(G; X)>

(Frobenius inner products over the whole batch), so that for a loss
``f(A(X; W) + b)`` the gradients are ``grad_X = A_X^T(grad_U; W)``,
``grad_W = A_W^T(grad_U; X)`` and ``grad_b = sum of grad_U over samples (and
positions)``.

Conventions
-----------
* Samples along the first axis. Dense input ``(m, n_in)``, output ``(m, n_out)``.
  Images are NHWC ``(m, H, W, C)`` (channels last), so a convolution is a
  matrix product on patches.
* Weights are a pair ``(W, b)``: Dense ``W (n_in, n_out)``, ``b (n_out,)``;
  Conv2D ``W (kh, kw, c_in, c_out)``, ``b (c_out,)`` broadcast over positions.
  AvgPool2D and Flatten have no weights (``has_weights = False``; pass
  ``W=None, b=None``).
* Convolution means cross-correlation, as in TensorFlow and the original code:
  ``Y[n, p, q, o] = sum_{i, j, c} X[n, p + i, q + j, c] W[i, j, c, o] + b[o]``.
* One source for NumPy and CuPy: arrays go through ``xp`` from
  :func:`cvx_fenchel.backend.get_namespace`. No Python loop runs over samples,
  pixels or kernel offsets: a convolution is a GEMM on patches, its input adjoint
  one GEMM (with a banded kernel matrix, or on patches) plus a loop-free col2im,
  and patch matrices are built in chunks of samples when they would be large.
* A subproblem binds its fixed side once: :meth:`LinearMap.fixed_input` (W-steps:
  pooled input, patch matrix, Gram matrix and norm kept) and
  :meth:`LinearMap.fixed_weights` (X-steps: banded kernel and norm kept).
* For CVXPY on tiny inputs every map builds itself as an explicit
  ``scipy.sparse`` matrix acting on C-order (row-major) vectorisations of the
  whole batch: ``vec(A(X; W)) = input_matrix(W, m) @ vec(X)
  = weight_matrix(X) @ vec(W)``.

Registry
--------
Each map kind is one :class:`LinearMap` subclass registered with :func:`register_map`
(``dense``, ``conv2d``, ``avgpool2d``, ``flatten``); :func:`make_map` builds one from its kind
and the per-sample input shape, as network layers do. Every registered class declares small
``examples(role, width_in, width_out)``, from which the subproblem registry builds verification
instances and the adjoint checks, so a new map is verified with no edit in ``verification/``.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError, UnknownNameError
from ..registry import Registry
from .base import FixedInput, FixedWeights, LinearMap, power_iteration
from .chain import Chain, Flatten
from .conv import AvgPool2D, Conv2D
from .dense import Dense

__all__ = ["LinearMap", "FixedInput", "FixedWeights", "Dense", "Conv2D", "AvgPool2D", "Flatten", "Chain", "MAPS", "make_map",
           "make_chain", "power_iteration", "register_map", "unregister_map", "map_kinds",
           "get_map_class"]

#: Registered map kinds, kind -> class, in registration order.
MAPS: Registry[type[LinearMap]] = Registry("layer map")


def register_map(cls: type[LinearMap], *, kind: str | None = None,
                 aliases: tuple[str, ...] = ()) -> type[LinearMap]:
    """Register a :class:`LinearMap` subclass as ``kind`` (default: its ``name``).

    The class needs ``from_in_shape(in_shape, **params)`` (used by :func:`make_map` and network
    layers) and ``examples(role, width_in, width_out)`` (used by verification). Returns the class.
    """
    if not (isinstance(cls, type) and issubclass(cls, LinearMap)):
        raise InputError(f"register_map needs a LinearMap subclass, got {cls!r}")
    if not hasattr(cls, "from_in_shape"):
        raise InputError(f"register_map: {cls.__name__} has no classmethod from_in_shape(in_shape, **params)")
    return MAPS.register(kind or cls.name, cls, aliases)


def unregister_map(kind: str) -> None:
    """Remove a registered map kind and its aliases (for tests that register a toy one)."""
    MAPS.unregister(kind)


def map_kinds() -> tuple[str, ...]:
    """Registered map kinds, in registration order."""
    return MAPS.names()


def get_map_class(kind: str) -> type[LinearMap]:
    """The class registered as ``kind`` (or one of its aliases)."""
    return MAPS[kind]


def make_map(spec: Any, in_shape: Any, **params: Any) -> LinearMap:
    """Build a map from its kind (or a spec dict) and the per-sample input shape.

    Parameters
    ----------
    spec : str or dict
        A registered kind (``'dense'``, ``'conv2d'``, ``'avgpool2d'``, ``'flatten'``, or an
        alias such as ``'conv'``, ``'pool'``), or a dict ``{'type': kind, **params}``.
    in_shape : tuple of int
        Per-sample input shape (``(n_in,)`` for dense, ``(H, W, C)`` for images).
    **params
        The map's parameters: dense ``n_out``; conv2d ``c_out``, ``kernel``,
        ``padding``; avgpool2d ``size``; flatten none.

    Examples
    --------
    >>> make_map('conv2d', (32, 32, 1), c_out=6).out_shape
    (28, 28, 6)
    >>> make_map({'type': 'avgpool2d', 'size': 2}, (28, 28, 6)).out_shape
    (14, 14, 6)
    """
    if isinstance(spec, dict):
        params = {**{k: v for k, v in spec.items() if k not in ("type", "name")}, **params}
        spec = spec.get("type", spec.get("name"))
    if not isinstance(spec, str):
        raise UnknownNameError(f"unknown layer map {spec!r}; choose one of {sorted(MAPS)}")
    cls = get_map_class(spec)
    try:
        return cls.from_in_shape(in_shape, **params)  # type: ignore[attr-defined]
    except TypeError as exc:
        raise InputError(f"bad parameters for layer map {spec!r}: {exc}") from None


def make_chain(specs: Any, in_shape: Any) -> Chain:
    """Build a :class:`Chain` from a list of specs (as for :func:`make_map`), feeding
    each map's ``out_shape`` to the next.

    Examples
    --------
    >>> make_chain(['avgpool2d', {'type': 'conv2d', 'c_out': 16}], (28, 28, 6)).out_shape
    (10, 10, 16)
    """
    maps = []
    shape = in_shape
    for spec in specs:
        maps.append(make_map(spec, shape))
        shape = maps[-1].out_shape
    return Chain(maps)


register_map(Dense)
register_map(Conv2D, aliases=("conv",))
register_map(AvgPool2D, aliases=("avgpool", "pool"))
register_map(Flatten)
