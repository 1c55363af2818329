"""The dense map ``A(X; W) = X W``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from ..backend import get_namespace, to_numpy
from ..errors import InputError
from .base import (_MAX_EXACT_GRAM, FixedInput, LinearMap, _finish_init, _init_array, _max_eigvalsh,
                   _positive_int, _rng, _shape_tuple, power_iteration)



@dataclass(frozen=True)
class Dense(LinearMap):
    """Dense layer ``A(X; W) = X W``, ``U = X W + 1 b^T``.

    Parameters
    ----------
    n_in, n_out : int
        ``X`` is ``(m, n_in)``, ``W`` is ``(n_in, n_out)``, ``b`` is ``(n_out,)``.

    Adjoints: ``A_X^T G = G W^T``; ``A_W^T G = X^T G``, ``db = G^T 1``.
    """

    n_in: int  # type: ignore[misc]
    n_out: int  # type: ignore[misc]
    in_shape: tuple[int, ...] = field(init=False, repr=False, compare=False)
    out_shape: tuple[int, ...] = field(init=False, repr=False, compare=False)

    name: ClassVar[str] = "dense"
    has_weights: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_in", _positive_int(self.n_in, "n_in"))
        object.__setattr__(self, "n_out", _positive_int(self.n_out, "n_out"))
        object.__setattr__(self, "in_shape", (self.n_in,))
        object.__setattr__(self, "out_shape", (self.n_out,))

    @classmethod
    def from_in_shape(cls, in_shape: Any, n_out: int) -> "Dense":
        shape = _shape_tuple(in_shape, "in_shape")
        if len(shape) != 1:
            raise InputError(f"dense layer needs a flat input, got in_shape {shape}; "
                             "put a 'flatten' map before it")
        return cls(shape[0], n_out)

    @classmethod
    def examples(cls, role: str, width_in: int, width_out: int) -> dict[str, LinearMap]:
        if role == "adjoint":
            return {"dense 4->3": cls(4, 3)}
        return {"dense": cls(width_in, width_out)}

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.n_in, self.n_out)

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return (self.n_out,)

    def _forward(self, X: Any, W: Any, xp: Any) -> Any:
        return X @ W

    def _adjoint_input(self, G: Any, W: Any, xp: Any) -> Any:
        return G @ W.T

    def _adjoint_weights(self, G: Any, X: Any, xp: Any) -> tuple[Any, Any]:
        return X.T @ G, xp.sum(G, axis=0)

    def fixed_input(self, X: Any) -> "DenseFixedInput":
        """The W-step operator of the batch ``X`` (:class:`DenseFixedInput`)."""
        return DenseFixedInput(self, X)

    def lipschitz_input(self, W: Any = None, **kwargs: Any) -> float:
        """``||W||_2^2 = lambda_max(W^T W)``, exact (eigenvalue of the smaller Gram matrix).

        Returned with a relative margin of 1e-9 upward so rounding cannot put it below.
        """
        W = self._check_W(W)
        xp, _ = get_namespace(W)
        gram = W.T @ W if W.shape[1] <= W.shape[0] else W @ W.T
        if gram.shape[0] <= _MAX_EXACT_GRAM:
            return _max_eigvalsh(gram, xp)
        x0 = xp.asarray(_rng(kwargs.get("rng", 0)).standard_normal((4, W.shape[0])), dtype=W.dtype)
        return 1.01 * power_iteration(lambda x: (x @ W) @ W.T, x0)

    def lipschitz_weights(self, X: Any, *, include_bias: bool = True) -> float:
        """``||[X 1]||_2^2`` (``include_bias``) or ``||X||_2^2``: the squared spectral
        norm of ``(W, b) -> X W + 1 b^T`` (resp. ``W -> X W``), exact up to 1e-9 relative."""
        X = self._check_input(X)
        xp, _ = get_namespace(X)
        if include_bias:
            X = xp.concatenate([X, xp.ones((X.shape[0], 1), dtype=X.dtype)], axis=1)
        gram = X.T @ X if X.shape[1] <= X.shape[0] else X @ X.T
        if gram.shape[0] <= _MAX_EXACT_GRAM:
            return _max_eigvalsh(gram, xp)
        x0 = xp.asarray(np.random.default_rng(0).standard_normal((4, X.shape[1])), dtype=X.dtype)
        return 1.01 * power_iteration(lambda v: (v @ X.T) @ X, x0)

    def init_weights(self, rng: Any = None, scheme: str | None = None, dtype: Any = np.float64,
                     *, std: float | None = None, bias: float = 0.1, xp: Any = None) -> tuple[Any, Any]:
        """Random ``(W, b)``: ``W`` by ``scheme`` (default ``'xavier'``: Glorot uniform,
        ``U(-a, a)`` with ``a = sqrt(6 / (n_in + n_out))``; ``'normal'``: ``N(0, std^2)``;
        ``'truncated_normal'``: ``N(0, std^2)`` cut at two std; std defaults to 0.1),
        ``b`` constant ``bias`` (0.1 in the original code). Arrays of ``xp`` (default NumPy)."""
        W = _init_array(_rng(rng), self.weight_shape, scheme or "xavier", self.n_in, self.n_out, std)
        return _finish_init(W, self.n_out, bias, dtype, xp)

    def input_matrix(self, W: Any = None, m: int = 1) -> sp.csr_matrix:
        """``M = I_m kron W^T`` so that ``vec(X W) = M vec(X)`` (C-order)."""
        m = _positive_int(m, "m")
        W = np.asarray(to_numpy(self._check_W(W)), dtype=np.float64)
        return sp.kron(sp.identity(m, format="csr"), sp.csr_matrix(W.T), format="csr")

    def weight_matrix(self, X: Any) -> sp.csr_matrix:
        """``K = X kron I_{n_out}`` so that ``vec(X W) = K vec(W)`` (C-order)."""
        X = np.asarray(to_numpy(self._check_input(X)), dtype=np.float64)
        return sp.kron(sp.csr_matrix(X), sp.identity(self.n_out, format="csr"), format="csr")

    def bias_matrix(self, m: int) -> sp.csr_matrix:
        """``S = 1_m kron I_{n_out}``."""
        m = _positive_int(m, "m")
        return sp.kron(sp.csr_matrix(np.ones((m, 1))), sp.identity(self.n_out, format="csr"),
                       format="csr")

    def cvxpy_apply_input(self, Xvar: Any, W: Any = None, b: Any = None) -> Any:
        """CVXPY expression ``Xvar @ W + 1 b^T`` of shape ``(m, n_out)``."""
        m = self._cvx_batch(Xvar, self.n_in, "Xvar")
        W = np.asarray(to_numpy(self._check_W(W)), dtype=np.float64)
        expr = Xvar @ W
        bias = self._bias_constant(b, m)
        return expr if bias is None else expr + bias

    def cvxpy_apply_weights(self, X: Any, Wvar: Any, bvar: Any = None) -> Any:
        """CVXPY expression ``X @ Wvar + 1 bvar^T`` of shape ``(m, n_out)``."""
        import cvxpy as cp

        X = np.asarray(to_numpy(self._check_input(X)), dtype=np.float64)
        if tuple(Wvar.shape) != self.weight_shape:
            raise InputError(f"Wvar of {self._label()} must have shape {self.weight_shape}, "
                             f"got {tuple(Wvar.shape)}")
        expr = X @ Wvar
        if bvar is not None:
            expr = expr + np.ones((X.shape[0], 1)) @ cp.reshape(bvar, (1, self.n_out), order="C")
        return expr


class DenseFixedInput(FixedInput):
    """``(W, b) -> X W + 1 b^T`` of a fixed ``X``: ``X`` is the feature matrix; the adjoint is
    ``(X^T G, G^T 1)``."""

    def apply(self, W: Any, b: Any = None) -> Any:
        U = self.X @ W
        return U if b is None else U + b

    def adjoint(self, G: Any) -> tuple[Any, Any]:
        return self.X.T @ G, self.xp.sum(G, axis=0)

    def features(self) -> Any:
        return self.X
