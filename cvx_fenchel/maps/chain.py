"""Flatten, and chains of weightless maps around one weighted map."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from ..backend import get_namespace, to_numpy
from ..errors import InputError
from .base import _POWER_DEFAULTS, FixedInput, FixedWeights, LinearMap, _SizesFromShapes, _shape_tuple
from .conv import Conv2D
from .dense import Dense


@dataclass(frozen=True)
class Flatten(_SizesFromShapes, LinearMap):
    """Flatten each sample in C order: ``(m, *in_shape) -> (m, prod(in_shape))``.

    An isometry: the adjoint is the inverse reshape and ``||A||_2^2 = 1``.
    """

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...] = field(init=False, repr=False, compare=False)

    name: ClassVar[str] = "flatten"
    has_weights: ClassVar[bool] = False

    def __post_init__(self) -> None:
        shape = _shape_tuple(self.in_shape, "in_shape of flatten")
        object.__setattr__(self, "in_shape", shape)
        object.__setattr__(self, "out_shape", (math.prod(shape),))

    @classmethod
    def from_in_shape(cls, in_shape: Any) -> "Flatten":
        return cls(in_shape)

    @classmethod
    def examples(cls, role: str, width_in: int, width_out: int) -> dict[str, LinearMap]:
        c_in = min(width_in, 2)
        if role == "adjoint":
            return {"flatten 3x3x2": cls((3, 3, 2)),
                    "flatten+dense": Chain([cls((3, 3, 2)), Dense(18, 3)])}
        return {"flatten+dense": Chain([cls((3, 3, c_in)), Dense(9 * c_in, width_out)])}

    def _forward(self, X: Any, W: Any, xp: Any) -> Any:
        return X.reshape(X.shape[0], -1)

    def _adjoint_input(self, G: Any, W: Any, xp: Any) -> Any:
        return G.reshape((G.shape[0],) + self.in_shape)

    def lipschitz_input(self, W: Any = None, **kwargs: Any) -> float:
        """Exactly 1 (an isometry)."""
        self._check_W(W)
        return 1.0


# --------------------------------------------------------------------------------------------
# Chain: weightless maps around at most one weighted map (e.g. LeNet's "avg-pool then conv")

class Chain(LinearMap):
    """Composition ``A = A_k o ... o A_1`` of maps, at most one of which has weights.

    Written ``A(X; W) = post(A_w(pre(X); W))`` with ``pre``/``post`` the
    weightless maps before/after the weighted one ``A_w``; the bias is added at
    the end (``b`` is ``A_w``'s bias, so ``post`` must keep it meaningful: it is
    broadcast over ``out_shape`` only when ``post`` is empty or the Flatten of a
    per-channel bias, see :meth:`apply`). Adjoints compose in reverse:
    ``A_X^T G = pre^T(A_w,X^T(post^T G))`` and
    ``A_W^T G = A_w,W^T(post^T G; pre(X))``.

    Parameters
    ----------
    maps : sequence of LinearMap whose shapes line up (``out_shape`` of one is
        ``in_shape`` of the next).
    """

    name: ClassVar[str] = "chain"

    def __init__(self, maps: Any):
        maps = tuple(maps)
        if not maps or not all(isinstance(a, LinearMap) for a in maps):
            raise InputError("Chain needs a non-empty sequence of LinearMap objects")
        for a, c in zip(maps[:-1], maps[1:]):
            if a.out_shape != c.in_shape:
                raise InputError(f"Chain: out_shape {a.out_shape} of {a!r} does not match "
                                 f"in_shape {c.in_shape} of {c!r}")
        weighted = [i for i, a in enumerate(maps) if a.has_weights]
        if len(weighted) > 1:
            raise InputError("Chain allows at most one map with weights")
        self.maps = maps
        self._iw = weighted[0] if weighted else None
        self.in_shape = maps[0].in_shape
        self.out_shape = maps[-1].out_shape
        self.n_in = math.prod(self.in_shape)
        self.n_out = math.prod(self.out_shape)
        if self._iw is not None:
            post = maps[self._iw + 1:]
            if post and not (len(post) == 1 and isinstance(post[0], Flatten)
                             and isinstance(maps[self._iw], Conv2D)):
                raise InputError("Chain: after the weighted map only a Flatten of a Conv2D "
                                 "output is allowed (the bias must stay a per-unit bias)")

    def __repr__(self) -> str:
        return "Chain(" + ", ".join(repr(a) for a in self.maps) + ")"

    @property
    def has_weights(self) -> bool:  # type: ignore[override]
        return self._iw is not None

    @property
    def weighted(self) -> LinearMap | None:
        """The map carrying the weights (None if none does)."""
        return None if self._iw is None else self.maps[self._iw]

    @property
    def weight_shape(self) -> tuple[int, ...] | None:
        return None if self._iw is None else self.maps[self._iw].weight_shape

    @property
    def bias_shape(self) -> tuple[int, ...] | None:
        return None if self._iw is None else self.maps[self._iw].bias_shape

    def _split(self) -> tuple[tuple[LinearMap, ...], LinearMap | None, tuple[LinearMap, ...]]:
        if self._iw is None:
            return self.maps, None, ()
        return self.maps[:self._iw], self.maps[self._iw], self.maps[self._iw + 1:]

    def apply(self, X: Any, W: Any = None, b: Any = None) -> Any:
        """``post(A_w(pre(X); W) + b)`` (the bias enters before the trailing Flatten)."""
        X = self._check_input(X)
        W = self._check_W(W)
        b = self._check_b(b)
        xp, _ = get_namespace(X, W, b)
        pre, mid, post = self._split()
        for a in pre:
            X = a._forward(X, None, xp)
        if mid is not None:
            X = mid._forward(X, W, xp)
            if b is not None:
                X = X + b
        for a in post:
            X = a._forward(X, None, xp)
        return X

    def _forward(self, X: Any, W: Any, xp: Any) -> Any:
        for a in self.maps:
            X = a._forward(X, W if a.has_weights else None, xp)
        return X

    def _adjoint_input(self, G: Any, W: Any, xp: Any) -> Any:
        for a in reversed(self.maps):
            G = a._adjoint_input(G, W if a.has_weights else None, xp)
        return G

    def _adjoint_weights(self, G: Any, X: Any, xp: Any) -> tuple[Any, Any]:
        pre, mid, post = self._split()
        for a in pre:
            X = a._forward(X, None, xp)
        for a in reversed(post):
            G = a._adjoint_input(G, None, xp)
        return mid._adjoint_weights(G, X, xp)  # type: ignore[union-attr]

    def fixed_input(self, X: Any) -> "ChainFixedInput":
        """The W-step operator of the batch ``X`` (:class:`ChainFixedInput`: ``pre(X)`` once)."""
        if self._iw is None:
            raise InputError(f"{self._label()} has no weights, so no W-step operator")
        return ChainFixedInput(self, X)

    def fixed_weights(self, W: Any = None, b: Any = None) -> "ChainFixedWeights":
        """The X-step operator of ``(W, b)`` (:class:`ChainFixedWeights`)."""
        return ChainFixedWeights(self, W, b)

    def lipschitz_input(self, W: Any = None, *, n_iter: int = 100, n_starts: int = 4,
                        safety: float = 1.01, rng: Any = 0, tol: float = 1e-7) -> float:
        """Estimate of ``||X -> A(X; W)||_2^2``: batched power iteration on ``A^T A``
        (see :func:`power_iteration`) times ``safety``; exact (product of exact
        norms) when no map has weights, since pooling and flattening have
        orthogonal rows of equal norm."""
        W = self._check_W(W)
        if self._iw is None:
            return math.prod(a.lipschitz_input() for a in self.maps)
        return self._power_norm_sq(W, n_iter=n_iter, n_starts=n_starts, tol=tol, rng=rng, safety=safety)

    def lipschitz_weights(self, X: Any, *, include_bias: bool = True) -> float:
        """The weighted map's :meth:`lipschitz_weights` at ``pre(X)`` (the trailing
        Flatten, if any, is an isometry), so exact up to 1e-9 relative; 0 without weights."""
        X = self._check_input(X)
        if self._iw is None:
            return 0.0
        xp, _ = get_namespace(X)
        pre, mid, _ = self._split()
        for a in pre:
            X = a._forward(X, None, xp)
        return mid.lipschitz_weights(X, include_bias=include_bias)  # type: ignore[union-attr]

    def init_weights(self, rng: Any = None, scheme: str | None = None, dtype: Any = np.float64,
                     *, std: float | None = None, bias: float = 0.1, xp: Any = None) -> tuple[Any, Any]:
        """The weighted map's :meth:`init_weights` (``(None, None)`` without weights)."""
        if self._iw is None:
            return None, None
        return self.maps[self._iw].init_weights(rng, scheme, dtype, std=std, bias=bias, xp=xp)

    def weight_matrix(self, X: Any) -> sp.csr_matrix:
        """``K = (I_m kron Post_1) K_w(pre(X))``; the trailing Flatten is the identity on
        C-order vectors, so ``K = K_w(pre(X))``."""
        X = self._check_input(X)
        if self._iw is None:
            raise InputError(f"{self._label()} has no weights, so no weight matrix")
        pre, mid, _ = self._split()
        xp, _ = get_namespace(X)
        for a in pre:
            X = a._forward(X, None, xp)
        return mid.weight_matrix(X)  # type: ignore[union-attr]

    def bias_matrix(self, m: int) -> sp.csr_matrix:
        """The weighted map's bias matrix (the trailing Flatten does not change C-order vectors)."""
        if self._iw is None:
            raise InputError(f"{self._label()} has no bias, so no bias matrix")
        return self.maps[self._iw].bias_matrix(m)

    def _bias_constant(self, b: Any, m: int) -> np.ndarray | None:
        if b is None:
            return None
        b = np.asarray(to_numpy(self._check_b(b)), dtype=np.float64)
        mid_shape = self.maps[self._iw].out_shape  # type: ignore[index]
        return np.broadcast_to(b, (m,) + mid_shape).reshape(m, self.n_out)

    def cvxpy_apply_weights(self, X: Any, Wvar: Any, bvar: Any = None) -> Any:
        """As :meth:`LinearMap.cvxpy_apply_weights` (a Dense weighted map takes the
        general sparse-matrix route here)."""
        return LinearMap.cvxpy_apply_weights(self, X, Wvar, bvar)


class ChainFixedInput(FixedInput):
    """A chain's W-step operator: the weightless maps before the weighted one are applied to
    ``X`` once (LeNet-5: the 2x2 average pooling of the fixed input), then the weighted map's
    own operator (e.g. its patch matrix) is bound to the result; the maps after it (a Flatten)
    reshape."""

    def __init__(self, chain: Chain, X: Any):
        super().__init__(chain, X)
        pre, mid, post = chain._split()
        Z = self.X
        for a in pre:
            Z = a._forward(Z, None, self.xp)
        self.inner = mid.fixed_input(Z)  # type: ignore[union-attr]
        self._post = post

    def apply(self, W: Any, b: Any = None) -> Any:
        U = self.inner.apply(W, b)
        for a in self._post:
            U = a._forward(U, None, self.xp)
        return U

    def adjoint(self, G: Any) -> tuple[Any, Any]:
        for a in reversed(self._post):
            G = a._adjoint_input(G, None, self.xp)
        return self.inner.adjoint(G)

    def features(self) -> Any:
        if not all(isinstance(a, Flatten) for a in self._post):
            return None
        return self.inner.features()

    def gram(self) -> Any:
        return self.inner.gram() if self.features() is not None else None

    def kernel(self) -> Any:
        return self.inner.kernel() if self.features() is not None else None

    def lipschitz(self, include_bias: bool = True) -> float:
        return self.inner.lipschitz(include_bias)


class ChainFixedWeights(FixedWeights):
    """A chain's X-step operator: the weighted map's own operator (e.g. a convolution's banded
    kernel), composed with the weightless maps around it."""

    def __init__(self, chain: Chain, W: Any = None, b: Any = None):
        super().__init__(chain, W, b)
        self._pre, mid, self._post = chain._split()
        self.inner = None if mid is None else mid.fixed_weights(self.W, self.b)

    def _through(self, Z: Any, bias: bool) -> Any:
        xp, _ = get_namespace(Z)
        for a in self._pre:
            Z = a._forward(Z, None, xp)
        U = self.inner.apply(Z) if bias else self.inner.forward(Z)  # type: ignore[union-attr]
        for a in self._post:
            U = a._forward(U, None, xp)
        return U

    def apply(self, Z: Any) -> Any:
        return self.map.apply(Z) if self.inner is None else self._through(Z, True)

    def forward(self, Z: Any) -> Any:
        return super().forward(Z) if self.inner is None else self._through(Z, False)

    def _lipschitz(self) -> float:
        if self.inner is None:
            return self.map.lipschitz_input()
        return self.map._power_norm_sq(self.W, op=self, **_POWER_DEFAULTS)

    def adjoint(self, G: Any) -> Any:
        if self.inner is None:
            return super().adjoint(G)
        xp, _ = get_namespace(G)
        for a in reversed(self._post):
            G = a._adjoint_input(G, None, xp)
        G = self.inner.adjoint(G)
        for a in reversed(self._pre):
            G = a._adjoint_input(G, None, xp)
        return G
