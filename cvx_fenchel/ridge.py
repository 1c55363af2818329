r"""The ridge and proximal term of a W-step, written once.

Every W-subproblem (and the relaxed objective ``J``) carries, per layer,

.. math::
    R(W, b) = \rho\,(\|W\|^2 + \|b\|^2) + \gamma\,(\|W - W^0\|^2 + \|b - b^0\|^2)

(``rho`` ridge, ``gamma`` proximal weight to the previous batch's weights ``W^0``). With
:math:`c = \rho + \gamma`:

* gradient :math:`\nabla R = 2\rho\,x + 2\gamma\,(x - x^0) = 2c\,x - 2\gamma\,x^0`,
  Lipschitz constant (``curvature``) :math:`2c`;
* :math:`R(x) = c\|x - \bar x\|^2 + \text{const}` with centre :math:`\bar x = (\gamma / c)\,x^0`
  (the minimiser of ``R``);
* proximal map :math:`\mathrm{prox}_{sR}(v) = \arg\min_x sR(x) + \tfrac12\|x - v\|^2
  = (v + 2s\gamma\,x^0) / (1 + 2sc)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import check_scalar, get_namespace, to_numpy

__all__ = ["Ridge"]


@dataclass(frozen=True)
class Ridge:
    """``R(W, b)`` of the module docstring; ``W0``/``b0`` ``None`` mean zeros."""

    rho: float = 0.0
    gamma: float = 0.0
    W0: Any = None
    b0: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rho", check_scalar(self.rho, "rho"))
        object.__setattr__(self, "gamma", check_scalar(self.gamma, "gamma"))

    @property
    def curvature(self) -> float:
        """Lipschitz constant of :math:`\\nabla R`: :math:`2(\\rho + \\gamma)`."""
        return 2.0 * (self.rho + self.gamma)

    def value(self, W: Any, b: Any, *, array: bool = False) -> Any:
        """:math:`R(W, b)` (a 0-d array of the namespace with ``array=True``: no host read)."""
        xp, _ = get_namespace(W)
        out = xp.zeros((), dtype=xp.float64)
        if self.rho:
            out = out + self.rho * (xp.sum(W * W) + xp.sum(b * b))
        if self.gamma:
            W0, b0 = self.W0, self.b0
            dW = W if W0 is None else W - W0
            db = b if b0 is None else b - b0
            out = out + self.gamma * (xp.sum(dW * dW) + xp.sum(db * db))
        return out if array else float(out)

    def grad(self, W: Any, b: Any) -> tuple[Any, Any]:
        """:math:`(\\nabla_W R, \\nabla_b R) = 2\\rho (W, b) + 2\\gamma ((W, b) - (W^0, b^0))`."""
        xp, _ = get_namespace(W)
        return self.add_grad(xp.zeros_like(W), xp.zeros_like(b), W, b)

    def add_grad(self, dW: Any, db: Any, W: Any, b: Any) -> tuple[Any, Any]:
        """``(dW, db) + grad R(W, b)`` (the data term's gradient plus this term's)."""
        r, g = self.rho, self.gamma
        if r:
            dW, db = dW + 2 * r * W, db + 2 * r * b
        if g:
            dW = dW + 2 * g * (W if self.W0 is None else W - self.W0)
            db = db + 2 * g * (b if self.b0 is None else b - self.b0)
        return dW, db

    def center(self) -> tuple[Any, Any]:
        """:math:`\\bar x = \\gamma/(\\rho+\\gamma)\\, (W^0, b^0)`, the minimiser of ``R``
        (``(None, None)`` when it is zero)."""
        c = self.rho + self.gamma
        if not self.gamma or c == 0 or self.W0 is None:
            return None, None
        t = self.gamma / c
        return t * self.W0, (None if self.b0 is None else t * self.b0)

    def prox(self, W: Any, b: Any, s: float) -> tuple[Any, Any]:
        """:math:`\\arg\\min_x sR(x) + \\tfrac12\\|x - (W, b)\\|^2 = ((W, b) + 2s\\gamma (W^0, b^0)) /
        (1 + 2s(\\rho+\\gamma))`."""
        d = 1.0 + 2.0 * s * (self.rho + self.gamma)
        a = 2.0 * s * self.gamma
        W = W if self.W0 is None or not a else W + a * self.W0
        b = b if self.b0 is None or not a else b + a * self.b0
        return W / d, b / d

    def cvxpy(self, W: Any, b: Any) -> Any:
        """The same term as a CVXPY expression of variables ``W`` (any shape with the same C-order
        entries as ``W0``, e.g. a convolution kernel as a matrix) and ``b``."""
        import cvxpy as cp
        obj = 0
        if self.rho:
            obj = obj + self.rho * (cp.sum_squares(W) + cp.sum_squares(b))
        if self.gamma:
            W0 = np.zeros(W.shape) if self.W0 is None else \
                np.asarray(to_numpy(self.W0), dtype=float).reshape(W.shape)
            b0 = np.zeros(b.shape) if self.b0 is None else \
                np.asarray(to_numpy(self.b0), dtype=float).reshape(b.shape)
            obj = obj + self.gamma * (cp.sum_squares(W - W0) + cp.sum_squares(b - b0))
        return obj
