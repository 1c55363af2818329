"""The :class:`LinearMap` interface and the helpers every map shares (see :mod:`cvx_fenchel.maps`)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from ..backend import check_array, get_namespace, resolve_dtype, to_numpy
from ..errors import InputError, UnknownNameError

# Dense Gram matrices up to this order are eigen-decomposed exactly.
_MAX_EXACT_GRAM = 4096
# Relative margin added to exact eigenvalues so that rounding cannot make them fall below.
_EXACT_MARGIN = 1e-9
# Power-iteration settings of the maps' ``lipschitz_input`` defaults (Conv2D, Chain), which the
# X-step operators (FixedWeights) reuse.
_POWER_DEFAULTS = {"n_iter": 100, "n_starts": 4, "safety": 1.01, "rng": 0, "tol": 1e-7}


# --------------------------------------------------------------------------------------------
# helpers

def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or int(v) < 1:
        raise InputError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _shape_tuple(shape: Any, name: str, ndim: int | None = None) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise InputError(f"{name} must be a tuple of positive integers, got {shape!r}") from None
    if ndim is not None and len(shape) != ndim:
        raise InputError(f"{name} must have {ndim} entries, got {shape!r}")
    if len(shape) == 0:
        raise InputError(f"{name} must not be empty")
    return tuple(_positive_int(s, name) for s in shape)


def _max_eigvalsh(G: Any, xp: Any) -> float:
    """Largest eigenvalue of a symmetric PSD matrix, with a tiny relative margin upward."""
    lam = float(xp.linalg.eigvalsh(G)[-1])
    return max(lam, 0.0) * (1.0 + _EXACT_MARGIN)


#: Iterations between two reads of the power iteration's stopping test on a device namespace
#: (on NumPy: every 10; the read is free there).
_POWER_DEVICE_CHECK_EVERY = 50


def power_iteration(op: Any, x0: Any, *, n_iter: int = 300, tol: float = 1e-9,
                    check_every: int | None = None) -> float:
    """Largest eigenvalue of a PSD operator ``B`` that acts slice-wise on a batch.

    ``B`` maps arrays of shape ``(k, ...)`` to the same shape and must act on
    each slice ``x[s]`` independently (true for ``A^T A`` of every map here:
    they are block diagonal over samples). The ``k`` slices of ``x0`` are ``k``
    independent random starts, iterated together in one batched call::

        x <- B x / ||B x||    (per slice)

    Each ``||B x_s||`` with ``||x_s|| = 1`` is a lower bound of
    ``lambda_max(B)``; the largest over slices and iterations is returned.
    Stops after ``n_iter`` iterations or when the estimate changes by less than
    ``tol`` (relative) over ``check_every`` iterations (checked only then, to
    keep device synchronisation rare on a GPU: default 10 on NumPy,
    ``_POWER_DEVICE_CHECK_EVERY`` on a device).

    Returns
    -------
    float
        A lower estimate of ``lambda_max(B)``; callers multiply by a safety factor.
    """
    xp, _ = get_namespace(x0)
    if check_every is None:
        check_every = 10 if xp is np else _POWER_DEVICE_CHECK_EVERY
    axes = tuple(range(1, x0.ndim))
    shape1 = (x0.shape[0],) + (1,) * (x0.ndim - 1)

    def _norms(a: Any) -> Any:
        return xp.sqrt(xp.sum(a * a, axis=axes))

    x = x0 / xp.maximum(_norms(x0), xp.finfo(x0.dtype).tiny).reshape(shape1)
    best = xp.zeros((), dtype=x0.dtype)
    last = -1.0
    for it in range(1, n_iter + 1):
        y = op(x)
        nrm = _norms(y)
        best = xp.maximum(best, xp.max(nrm))
        x = y / xp.maximum(nrm, xp.finfo(x0.dtype).tiny).reshape(shape1)
        if it % check_every == 0:
            cur = float(best)
            if cur == 0.0 or abs(cur - last) <= tol * cur or it == n_iter:
                return cur
            last = cur
    return float(best)


def _rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise InputError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


# --------------------------------------------------------------------------------------------
# convolution kernels (valid cross-correlation, NHWC, stride 1), shared by Conv2D


class LinearMap:
    """Common interface of the layer maps ``U = A(X; W) + b`` (see the module docstring).

    Subclasses set ``in_shape``/``out_shape`` (per-sample shapes), ``name`` (the
    registry key) and ``has_weights``, and implement ``_forward``,
    ``_adjoint_input`` and (with weights) ``_adjoint_weights``,
    ``weight_shape``, ``lipschitz_weights``, ``weight_matrix``.
    """

    name: ClassVar[str] = "linear"
    has_weights: ClassVar[bool] = False
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    # ---- sizes and validation -------------------------------------------------------------
    # ``n_in = prod(in_shape)`` and ``n_out = prod(out_shape)``: fields of Dense,
    # properties (from _SizesFromShapes) of the other maps.
    n_in: int
    n_out: int

    @property
    def weight_shape(self) -> tuple[int, ...] | None:
        """Shape of ``W`` (None without weights)."""
        return None

    @property
    def bias_shape(self) -> tuple[int, ...] | None:
        """Shape of ``b`` (None without weights)."""
        return None

    def _label(self) -> str:
        return repr(self)

    def _power_norm_sq(self, W: Any, *, n_iter: int, n_starts: int, tol: float, rng: Any,
                       safety: float, op: Any = None) -> float:
        r"""``safety`` times the power-iteration estimate of :math:`\|A_W\|_2^2` (the largest
        eigenvalue of :math:`A^\top A` in ``X``) from ``n_starts`` Gaussian starts (through the
        bound operator ``op``'s ``forward``/``adjoint`` when given, e.g. an X-step's)."""
        xp, _ = get_namespace(W)
        x0 = xp.asarray(_rng(rng).standard_normal((n_starts,) + self.in_shape), dtype=W.dtype)
        if op is None:
            def AtA(x: Any) -> Any:
                return self._adjoint_input(self._forward(x, W, xp), W, xp)
        else:
            def AtA(x: Any) -> Any:
                return op.adjoint(op.forward(x))
        return float(safety) * power_iteration(AtA, x0, n_iter=n_iter, tol=tol)

    @classmethod
    def examples(cls, role: str, width_in: int, width_out: int) -> dict[str, "LinearMap"]:
        """Small maps of this kind that verification builds instances on, by ``role``:
        ``"hidden"`` (maps a hidden layer's subproblems run on), ``"last"`` (output flat class
        scores), ``"adjoint"`` (extra maps for the adjoint identities). Images stay <= 8x8x2 so
        that CVXPY solves each instance in well under a second. A registered map kind with no
        examples at all is reported by the registry tests (it would ship unverified)."""
        return {}

    def _check_input(self, X: Any, name: str = "X") -> Any:
        return check_array(X, f"{name} of {self._label()}", shape=(None,) + self.in_shape,
                           finite=False)

    def _check_output(self, G: Any, name: str = "G") -> Any:
        return check_array(G, f"{name} of {self._label()}", shape=(None,) + self.out_shape,
                           finite=False)

    def _check_W(self, W: Any) -> Any:
        if not self.has_weights:
            if W is not None:
                raise InputError(f"{self._label()} has no weights; pass W=None")
            return None
        return check_array(W, f"W of {self._label()}", shape=self.weight_shape, finite=False)

    def _check_b(self, b: Any) -> Any:
        if b is None:
            return None
        if not self.has_weights:
            raise InputError(f"{self._label()} has no bias; pass b=None")
        return check_array(b, f"b of {self._label()}", shape=self.bias_shape, finite=False)

    # ---- array maps -------------------------------------------------------------------------
    def apply(self, X: Any, W: Any = None, b: Any = None) -> Any:
        """Forward map ``A(X; W) + b`` (bias broadcast over samples and positions).

        Parameters
        ----------
        X : array (m, *in_shape)
        W : array weight_shape, or None for maps without weights
        b : array bias_shape or None (no bias)

        Returns
        -------
        array (m, *out_shape)
        """
        X = self._check_input(X)
        W = self._check_W(W)
        b = self._check_b(b)
        xp, _ = get_namespace(X, W, b)
        Y = self._forward(X, W, xp)
        if b is not None:
            Y = Y + b
        return Y

    def adjoint_input(self, G: Any, W: Any = None) -> Any:
        """Adjoint of ``X -> A(X; W)`` (no bias) applied to ``G``: ``A_X^T G``.

        Characterised by ``<A(X; W), G> = <X, A_X^T G>`` for all ``X``.

        Parameters
        ----------
        G : array (m, *out_shape)
        W : array weight_shape, or None for maps without weights

        Returns
        -------
        array (m, *in_shape)
        """
        G = self._check_output(G)
        W = self._check_W(W)
        xp, _ = get_namespace(G, W)
        return self._adjoint_input(G, W, xp)

    def adjoint_weights(self, G: Any, X: Any) -> tuple[Any, Any]:
        """Adjoint of ``(W, b) -> A(X; W) + b`` applied to ``G``.

        ``<A(X; W) + b, G> = <W, dW> + <b, db>``, so for a loss ``f(A(X; W) + b)``
        with ``G = grad f`` the pair ``(dW, db)`` is the gradient in ``(W, b)``.
        ``db`` sums ``G`` over samples (and positions).

        Parameters
        ----------
        G : array (m, *out_shape)
        X : array (m, *in_shape)

        Returns
        -------
        (dW, db) : arrays of ``weight_shape`` and ``bias_shape``; ``(None, None)``
            for maps without weights.
        """
        G = self._check_output(G)
        X = self._check_input(X)
        if G.shape[0] != X.shape[0]:
            raise InputError(f"G and X of {self._label()} must have the same number of samples, "
                             f"got {G.shape[0]} and {X.shape[0]}")
        if not self.has_weights:
            return None, None
        xp, _ = get_namespace(G, X)
        return self._adjoint_weights(G, X, xp)

    # ---- Lipschitz constants ----------------------------------------------------------------
    def lipschitz_input(self, W: Any = None, **kwargs: Any) -> float:
        """Upper bound ``L >= ||X -> A(X; W)||_2^2`` (spectral norm squared).

        The map acts on each sample alone (block diagonal over samples), so its
        norm does not depend on the batch size. ``L * L_f`` is the Lipschitz
        constant of ``X -> grad_X f(A(X; W) + b)`` when ``grad f`` is
        ``L_f``-Lipschitz. See each subclass for exact or estimated.
        """
        raise NotImplementedError

    def operator_norm_sq(self, W: Any = None, **kwargs: Any) -> float:
        """Alias of :meth:`lipschitz_input`."""
        return self.lipschitz_input(W, **kwargs)

    def lipschitz_weights(self, X: Any, *, include_bias: bool = True) -> float:
        """Bound of ``||(W, b) -> A(X; W) + 1 b^T||_2^2`` for the batch ``X``.

        Without weights this is 0.
        """
        self._check_input(X)
        return 0.0

    # ---- initialisation ---------------------------------------------------------------------
    def init_weights(self, rng: Any = None, scheme: str | None = None, dtype: Any = np.float64,
                     *, std: float | None = None, bias: float = 0.1, xp: Any = None) -> tuple[Any, Any]:
        """Random weights ``(W, b)``; ``(None, None)`` without weights."""
        return None, None

    # ---- explicit matrices and CVXPY --------------------------------------------------------
    def _single_input_matrix(self, W: Any) -> np.ndarray:
        """Dense ``(n_out, n_in)`` matrix of one sample, by applying the map to the identity."""
        W = None if W is None else np.asarray(to_numpy(W), dtype=np.float64)
        E = np.eye(self.n_in).reshape((self.n_in,) + self.in_shape)
        Y = self._forward(E, W, np)
        return np.asarray(Y).reshape(self.n_in, self.n_out).T

    def input_matrix(self, W: Any = None, m: int = 1) -> sp.csr_matrix:
        """Sparse ``M`` with ``vec(apply(X, W)) = M @ vec(X)`` (C-order, no bias).

        ``M = I_m kron M_1`` where ``M_1`` (``n_out x n_in``) is the one-sample
        matrix, built by applying the map to the identity batch (exact).

        Returns
        -------
        scipy.sparse.csr_matrix of shape (m * n_out, m * n_in)
        """
        m = _positive_int(m, "m")
        W = self._check_W(W)
        M1 = sp.csr_matrix(self._single_input_matrix(W))
        M1.eliminate_zeros()
        return sp.kron(sp.identity(m, format="csr"), M1, format="csr")

    def weight_matrix(self, X: Any) -> sp.csr_matrix:
        """Sparse ``K`` with ``vec(apply(X, W)) = K @ vec(W)`` (C-order, no bias)."""
        raise InputError(f"{self._label()} has no weights, so no weight matrix")

    def bias_matrix(self, m: int) -> sp.csr_matrix:
        """Sparse ``S`` with ``vec(1 b^T broadcast) = S @ b``: shape ``(m * n_out, len(b))``."""
        raise InputError(f"{self._label()} has no bias, so no bias matrix")

    def _bias_constant(self, b: Any, m: int) -> np.ndarray | None:
        if b is None:
            return None
        b = np.asarray(to_numpy(self._check_b(b)), dtype=np.float64)
        return np.broadcast_to(b, (m,) + self.out_shape).reshape(m, self.n_out)

    def cvxpy_apply_input(self, Xvar: Any, W: Any = None, b: Any = None) -> Any:
        """CVXPY expression of ``A(X; W) + b`` affine in the CVXPY expression ``Xvar``.

        Parameters
        ----------
        Xvar : CVXPY expression with ``m * n_in`` entries and first axis ``m``
            (usually a ``Variable((m, n_in))`` holding C-order flattened samples).
        W, b : fixed arrays (b may be None).

        Returns
        -------
        CVXPY expression of shape ``(m, n_out)`` whose row ``s`` is the C-order
        flattening of ``apply(X, W, b)[s]``.
        """
        import cvxpy as cp

        m = self._cvx_batch(Xvar, self.n_in, "Xvar")
        M = self.input_matrix(W, m)
        expr = cp.reshape(M @ cp.vec(Xvar, order="C"), (m, self.n_out), order="C")
        bias = self._bias_constant(b, m)
        return expr if bias is None else expr + bias

    def cvxpy_apply_weights(self, X: Any, Wvar: Any, bvar: Any = None) -> Any:
        """CVXPY expression of ``A(X; W) + b`` affine in CVXPY ``(Wvar, bvar)``, ``X`` fixed.

        ``Wvar`` may have any shape whose C-order vectorisation matches that of
        ``W`` (for example ``weight_shape``, or ``(kh*kw*c_in, c_out)`` for a
        convolution); ``bvar`` has shape ``bias_shape`` or is None.

        Returns
        -------
        CVXPY expression of shape ``(m, n_out)`` (rows: C-order flattened outputs).
        """
        import cvxpy as cp

        X = self._check_input(X)
        m = X.shape[0]
        n_w = math.prod(self.weight_shape or (0,))
        if int(np.prod(Wvar.shape)) != n_w:
            raise InputError(f"Wvar of {self._label()} must have {n_w} entries "
                             f"(shape {self.weight_shape}), got shape {Wvar.shape}")
        K = self.weight_matrix(X)
        vec = K @ cp.vec(Wvar, order="C")
        if bvar is not None:
            vec = vec + self.bias_matrix(m) @ cp.vec(bvar, order="C")
        return cp.reshape(vec, (m, self.n_out), order="C")

    def _cvx_batch(self, Xvar: Any, n: int, name: str) -> int:
        shape = tuple(Xvar.shape)
        if len(shape) < 1 or shape[0] < 1 or int(np.prod(shape)) != shape[0] * n:
            raise InputError(f"{name} of {self._label()} must have shape (m, {n}) "
                             f"(C-order flattened samples), got {shape}")
        return int(shape[0])

    # ---- operators of one subproblem ------------------------------------------------------------
    def fixed_input(self, X: Any) -> "FixedInput":
        """The W-step operator ``(W, b) -> A(X; W) + b`` of the fixed batch ``X``, with what
        depends on ``X`` alone (pooled input, patch matrix, Gram matrix, norm) computed once
        (see :class:`FixedInput`; maps with weights specialise it)."""
        if not self.has_weights:
            raise InputError(f"{self._label()} has no weights, so no W-step operator")
        return FixedInput(self, X)

    def fixed_weights(self, W: Any = None, b: Any = None) -> "FixedWeights":
        """The X-step operator ``Z -> A(Z; W) + b`` of fixed weights, with what depends on
        ``(W, b)`` alone (reshaped or banded kernels, the norm) computed once (see
        :class:`FixedWeights`)."""
        return FixedWeights(self, W, b)

    # ---- to be provided by subclasses -------------------------------------------------------
    def _forward(self, X: Any, W: Any, xp: Any) -> Any:
        raise NotImplementedError

    def _adjoint_input(self, G: Any, W: Any, xp: Any) -> Any:
        raise NotImplementedError

    def _adjoint_weights(self, G: Any, X: Any, xp: Any) -> tuple[Any, Any]:
        raise NotImplementedError


def _init_array(rng: np.random.Generator, shape: tuple[int, ...], scheme: str, fan_in: int,
                fan_out: int, std: float | None) -> np.ndarray:
    if scheme == "xavier":
        # Glorot uniform (TensorFlow's xavier_initializer default): U(-a, a), a = sqrt(6/(fan_in+fan_out)).
        a = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape)
    if scheme == "normal":
        s = 0.1 if std is None else std
        return s * rng.standard_normal(shape)
    if scheme == "truncated_normal":
        # TensorFlow's truncated_normal: N(0, std^2) redrawn outside two standard deviations.
        from scipy.stats import truncnorm

        s = 0.1 if std is None else std
        return s * truncnorm.rvs(-2.0, 2.0, size=shape, random_state=rng)
    raise UnknownNameError(f"unknown weight initialisation scheme {scheme!r}; choose one of "
                           "'xavier', 'normal', 'truncated_normal'")


def _finish_init(W: np.ndarray, n_bias: int, bias: float, dtype: Any, xp: Any) -> tuple[Any, Any]:
    dt = resolve_dtype(dtype)
    bias = float(bias)
    if not math.isfinite(bias):
        raise InputError(f"bias must be finite, got {bias!r}")
    xp = np if xp is None else xp
    return xp.asarray(W, dtype=dt), xp.full((n_bias,), bias, dtype=dt)


class _SizesFromShapes:
    @property
    def n_in(self) -> int:
        """Number of input entries per sample, ``prod(in_shape)``."""
        return math.prod(self.in_shape)  # type: ignore[attr-defined]

    @property
    def n_out(self) -> int:
        """Number of output entries per sample, ``prod(out_shape)``."""
        return math.prod(self.out_shape)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# operators of one subproblem: the fixed side of ``A(X; W)`` bound once


class FixedInput:
    r"""``(W, b) -> A(X; W) + b`` for one fixed batch ``X``: the operator of a W-step.

    A W-step evaluates the map and its weight adjoint at the same ``X`` in every iteration, so
    everything that depends on ``X`` alone is computed here once (and only when first asked
    for): a Conv2D keeps its patch matrix ``P`` (each iteration is then ``U = P W + b``,
    ``dW = P^T G``), a Chain its pre-processed input (e.g. the pooled batch), and
    :meth:`gram`, :meth:`lipschitz` are cached. ``apply``/``adjoint`` do not re-check shapes
    (the subproblem checks its inputs once). This generic version delegates to the map.

    Attributes: ``map``, ``X`` (checked), ``xp``, ``m`` (samples).
    """

    def __init__(self, lmap: "LinearMap", X: Any):
        self.map = lmap
        self.X = lmap._check_input(X)
        self.xp, _ = get_namespace(self.X)
        self.m = self.X.shape[0]
        self._gram: Any = None
        self._kernel: Any = None
        self._lip: dict = {}

    def apply(self, W: Any, b: Any = None) -> Any:
        """``A(X; W) + b``."""
        return self.map.apply(self.X, W, b)

    def adjoint(self, G: Any) -> tuple[Any, Any]:
        """``(A_W^T G, db)``: the gradient in ``(W, b)`` of ``<A(X; W) + b, G>``."""
        return self.map._adjoint_weights(G, self.X, self.xp)

    def features(self) -> Any:
        """``F`` with ``U[..., c] = F @ W.reshape(-1, c_out)[:, c] + b_c`` up to a row order
        (inputs of a dense map, patches of a convolution), or None when the map is not of
        that form."""
        return None

    def gram(self) -> Any:
        """``[F 1]^T [F 1]`` (cached), assembled from ``F^T F``, ``F^T 1`` and the row count;
        None without :meth:`features`."""
        if self._gram is None:
            F = self.features()
            if F is None:
                return None
            xp = self.xp
            d = F.shape[1]
            G = xp.empty((d + 1, d + 1), dtype=F.dtype)
            G[:d, :d] = F.T @ F
            colsum = xp.sum(F, axis=0)
            G[:d, d] = colsum
            G[d, :d] = colsum
            G[d, d] = F.shape[0]
            self._gram = G
        return self._gram

    def kernel(self) -> Any:
        """``[F 1][F 1]^T = F F^T + 1`` (``m x m``, cached; the sample-space twin of :meth:`gram`,
        with the same non-zero eigenvalues); None without :meth:`features`."""
        if self._kernel is None:
            F = self.features()
            if F is None:
                return None
            self._kernel = F @ F.T + 1
        return self._kernel

    def lipschitz(self, include_bias: bool = True) -> float:
        """``||(W, b) -> A(X; W) + b||_2^2`` (``include_bias``) or ``||W -> A(X; W)||_2^2``, as
        :meth:`LinearMap.lipschitz_weights`; cached, and taken from :meth:`kernel` or :meth:`gram`
        when one was already computed (no second Gram matrix or patch matrix)."""
        key = bool(include_bias)
        if key not in self._lip:
            G = self._gram
            if key and self._kernel is not None and (G is None or self._kernel.shape[0] < G.shape[0]):
                self._lip[key] = _max_eigvalsh(self._kernel, self.xp)
            elif G is not None and G.shape[0] <= _MAX_EXACT_GRAM:
                d = G.shape[0] - 1
                self._lip[key] = _max_eigvalsh(G if key else G[:d, :d], self.xp)
            else:
                self._lip[key] = self._lipschitz(key)
        return self._lip[key]

    def _lipschitz(self, include_bias: bool) -> float:
        return float(self.map.lipschitz_weights(self.X, include_bias=include_bias))


class FixedWeights:
    r"""``Z -> A(Z; W) + b`` for fixed ``(W, b)``: the operator of an X-step.

    Computed once: whatever the map derives from ``W`` alone (a Conv2D's banded kernel matrix
    for its input adjoint, reshaped kernels) and :meth:`lipschitz` (one power iteration or
    eigenvalue solve per operator, however often it is asked for). This generic version
    delegates to the map.
    """

    def __init__(self, lmap: "LinearMap", W: Any = None, b: Any = None):
        self.map = lmap
        self.W = lmap._check_W(W)
        self.b = lmap._check_b(b)
        self._lip: float | None = None

    def apply(self, Z: Any) -> Any:
        """``A(Z; W) + b``."""
        return self.map.apply(Z, self.W, self.b)

    def forward(self, Z: Any) -> Any:
        """``A(Z; W)`` (no bias)."""
        xp, _ = get_namespace(Z)
        return self.map._forward(Z, self.W, xp)

    def adjoint(self, G: Any) -> Any:
        """``A_Z^T G``."""
        xp, _ = get_namespace(G)
        return self.map._adjoint_input(G, self.W, xp)

    def lipschitz(self) -> float:
        """``||Z -> A(Z; W)||_2^2`` as :meth:`LinearMap.lipschitz_input` gives it, computed once
        per operator (a map estimated by power iteration runs it through this operator, so a
        convolution reuses its banded kernel)."""
        if self._lip is None:
            self._lip = float(self._lipschitz())
        return self._lip

    def _lipschitz(self) -> float:
        return self.map.lipschitz_input(self.W)
