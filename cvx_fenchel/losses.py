r"""Losses of the output layer, in one place: value, gradient, curvature, CVXPY form.

The output layer's scores ``O = A_L(X_L; W_L) + b_L`` (``m x k``, samples in rows) are scored
against targets ``Y`` by a loss **summed over the batch**:

=================  ======================================================================  ===========
name               :math:`\mathcal L(Y, O)`                                                gradient
=================  ======================================================================  ===========
``mse``            :math:`\tfrac12 \|O - Y\|_F^2`                                          :math:`O - Y`
``cross_entropy``  :math:`\sum_i \mathrm{lse}(O_i) - \langle Y_i, O_i\rangle`              :math:`\mathrm{softmax}(O) - Y`
=================  ======================================================================  ===========

with :math:`\mathrm{lse}(o) = \log\sum_k e^{o_k}` (computed as :math:`\max o + \log\sum e^{o -
\max o}`, which never overflows). Argument order is always ``(Y, O)``.

Every user of a loss (network, trainer, subproblems, baselines, estimator) goes through
:func:`get_loss`; a new loss is one :class:`Loss` subclass and one :func:`register_loss` call,
after which the subproblem registry builds its verification cases (``example_targets``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import get_namespace
from .errors import InputError
from .registry import Registry

__all__ = ["Loss", "MSE", "CrossEntropy", "MSE_LOSS", "CROSS_ENTROPY", "logsumexp", "softmax",
           "register_loss", "unregister_loss", "get_loss", "loss_names", "LOSSES"]


def logsumexp(O: Any, axis: int = -1) -> Any:
    r""":math:`\log\sum_k e^{O_k}` along ``axis``, as :math:`\max O + \log\sum e^{O - \max O}`
    (no overflow for large scores, no ``-inf`` unless every entry is ``-inf``)."""
    xp, _ = get_namespace(O)
    mx = xp.max(O, axis=axis, keepdims=True)
    mx = xp.where(xp.isfinite(mx), mx, 0)
    out = mx + xp.log(xp.sum(xp.exp(O - mx), axis=axis, keepdims=True))
    return xp.squeeze(out, axis=axis)


def softmax(O: Any, axis: int = -1) -> Any:
    r""":math:`\mathrm{softmax}(O)_k = e^{O_k - \mathrm{lse}(O)}` along ``axis`` (rows by default)."""
    xp, _ = get_namespace(O)
    E = xp.exp(O - xp.max(O, axis=axis, keepdims=True))
    return E / xp.sum(E, axis=axis, keepdims=True)


class Loss:
    """Base class of a loss summed over the batch (see the module docstring).

    Subclasses set ``name`` (and optionally ``short``, its tag in subproblem ids), ``lipschitz``
    (a bound on the Hessian of one sample's loss in ``O``:
    the gradient's Lipschitz constant, used for step sizes and the Gram preconditioner) and
    ``quadratic`` (the loss is a quadratic in ``O``, so a dense output W-step is a ridge closed
    form), and implement :meth:`per_sample`, :meth:`grad`, :meth:`cvxpy`.
    """

    name: str = ""
    #: Short tag in subproblem ids (``X-last-ce``); empty: the name.
    short: str = ""
    aliases: tuple[str, ...] = ()
    lipschitz: float = 1.0
    quadratic: bool = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def per_sample(self, Y: Any, O: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def value(self, Y: Any, O: Any, *, array: bool = False) -> Any:
        """:math:`\\mathcal L(Y, O)`, summed over the batch (a 0-d array of the namespace with
        ``array=True``: no host read)."""
        xp, _ = get_namespace(Y, O)
        v = xp.sum(self.per_sample(Y, O))
        return v if array else float(v)

    def grad(self, Y: Any, O: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def curv_dir(self, Y: Any, O: Any, D: Any) -> Any:
        """Per-sample second derivative :math:`\\tfrac{d^2}{dt^2}\\mathcal L(Y_i, O_i + tD_i)` at
        ``t = 0`` (shape ``(m,)``), or None when the loss does not give it (then the line-search
        solver :func:`~cvx_fenchel.solvers.pcg_metric` does not apply)."""
        return None

    def cvxpy(self, Y: np.ndarray, O: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_targets(self, Y: Any, where: str = "Y") -> None:
        """Raise :class:`InputError` when ``Y`` cannot be this loss's targets (default: any)."""

    def example_targets(self, rng: np.random.Generator, m: int, k: int) -> np.ndarray:
        """Seeded targets ``(m, k)`` for instance generators (default: standard normal)."""
        return rng.standard_normal((m, k))


class MSE(Loss):
    r"""Squared error :math:`\mathcal L(Y, O) = \tfrac12\|O - Y\|_F^2`, gradient :math:`O - Y`,
    Hessian the identity (``lipschitz = 1``)."""

    name = "mse"
    aliases = ("squared_error", "l2")
    lipschitz = 1.0
    quadratic = True

    def per_sample(self, Y: Any, O: Any) -> Any:
        xp, _ = get_namespace(Y, O)
        return 0.5 * xp.sum((O - Y) ** 2, axis=1)

    def grad(self, Y: Any, O: Any) -> Any:
        return O - Y

    def curv_dir(self, Y: Any, O: Any, D: Any) -> Any:
        xp, _ = get_namespace(D)
        return xp.sum(D * D, axis=1)

    def cvxpy(self, Y: np.ndarray, O: Any) -> Any:
        import cvxpy as cp
        return 0.5 * cp.sum_squares(O - Y)


class CrossEntropy(Loss):
    r"""Softmax cross-entropy :math:`\mathcal L(Y, O) = \sum_i \mathrm{lse}(O_i) - \langle Y_i,
    O_i\rangle` with rows of ``Y`` on the simplex (one-hot labels); gradient
    :math:`\mathrm{softmax}(O) - Y`. The Hessian of one row, :math:`\mathrm{diag}(p) - pp^\top`,
    has eigenvalues at most :math:`1/2` (``lipschitz = 0.5``)."""

    name = "cross_entropy"
    short = "ce"
    aliases = ("ce", "crossentropy", "cross-entropy")
    lipschitz = 0.5
    quadratic = False

    def per_sample(self, Y: Any, O: Any) -> Any:
        xp, _ = get_namespace(Y, O)
        return logsumexp(O, axis=1) - xp.sum(Y * O, axis=1)

    def grad(self, Y: Any, O: Any) -> Any:
        return softmax(O, axis=1) - Y

    def curv_dir(self, Y: Any, O: Any, D: Any) -> Any:
        """:math:`D_i^\\top(\\mathrm{diag}(p_i) - p_ip_i^\\top)D_i = \\sum_k p_k d_k^2 - (\\sum_k p_k d_k)^2`."""
        xp, _ = get_namespace(D)
        P = softmax(O, axis=1)
        pd = xp.sum(P * D, axis=1)
        return xp.maximum(xp.sum(P * D * D, axis=1) - pd * pd, 0)

    def cvxpy(self, Y: np.ndarray, O: Any) -> Any:
        import cvxpy as cp
        return cp.sum(cp.log_sum_exp(O, axis=1)) - cp.sum(cp.multiply(Y, O))

    def check_targets(self, Y: Any, where: str = "Y") -> None:
        xp, _ = get_namespace(Y)
        if Y.ndim != 2 or bool(xp.any(Y < 0) | xp.any(xp.abs(Y.sum(axis=1) - 1) > 1e-6)):  # one read
            raise InputError(f"{where}: cross-entropy targets Y must be rows on the simplex "
                             "(one-hot labels)")

    def example_targets(self, rng: np.random.Generator, m: int, k: int) -> np.ndarray:
        return np.eye(k)[rng.integers(0, k, m)]


MSE_LOSS = MSE()
CROSS_ENTROPY = CrossEntropy()

#: Registered losses, name -> instance, in registration order.
LOSSES: Registry[Loss] = Registry("loss", same=lambda a, b: type(a) is type(b))


def register_loss(loss: Loss) -> Loss:
    """Register a :class:`Loss` instance under its ``name`` and ``aliases``; returns it."""
    if not isinstance(loss, Loss) or not loss.name:
        raise InputError(f"register_loss needs a Loss instance with a name, got {loss!r}")
    return LOSSES.register(loss.name, loss, tuple(loss.aliases))


def unregister_loss(name: str) -> None:
    """Remove a registered loss (for tests that register a toy one)."""
    LOSSES.unregister(name)


def get_loss(loss: Any) -> Loss:
    """The registered :class:`Loss` named ``loss`` (or ``loss`` itself if it is one).

    >>> get_loss("ce").name
    'cross_entropy'
    """
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str):
        raise InputError(f"loss must be a name or a Loss, got {loss!r}")
    return LOSSES[loss]


def loss_names() -> tuple[str, ...]:
    """Names of the registered losses, in registration order."""
    return LOSSES.names()


register_loss(MSE_LOSS)
register_loss(CROSS_ENTROPY)
