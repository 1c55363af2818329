r"""Activations as Fenchel-Young divergences.

For a strictly increasing continuous activation :math:`\phi` let
:math:`F(v) = \int \phi^{-1}` (the *potential*, on the closure of
:math:`\phi`'s range) and :math:`F^*(u) = \int \phi` its convex conjugate.
The Fenchel-Young inequality gives the divergence

.. math::

    B(v, u) = F(v) + F^*(u) - u v \;\ge\; 0, \qquad
    B(v, u) = 0 \iff v = \phi(u),

so :math:`\phi(u) = \arg\min_v B(v, u)` (Theorem 1 of Gu, Askari and El
Ghaoui, 2020). ``B`` is convex in ``v`` for fixed ``u`` (``F`` is convex) and
in ``u`` for fixed ``v`` (``F*`` is convex), but not jointly.

Every activation here provides, elementwise and on NumPy or CuPy arrays:

* ``forward(u)`` = :math:`\phi(u)`, ``derivative(u)`` = :math:`\phi'(u)`;
* ``F(v)`` (``+inf`` outside the domain), ``Fstar(u)``;
* ``divergence(v, u)`` = :math:`B(v, u)`, evaluated in a cancellation-free form
  (a sum of non-negative terms, or a Bernoulli KL divergence) so that it is
  non-negative to rounding for ``|u|`` up to 30 and beyond;
* ``grad_v(v, u)`` = :math:`F'(v) - u` and ``grad_u(v, u)`` = :math:`\phi(u) - v`;
* ``prox_F(x, t)`` = :math:`\arg\min_z t F(z) + \tfrac12 (z - x)^2` (which the
  fast path uses for the non-smooth part of the X-steps) and ``project(v)``;
* ``cvxpy_F(v)``, ``cvxpy_Fstar(u)``, ``cvxpy_domain(v)`` and
  ``cvxpy_divergence(v, u)`` (DCP in whichever argument is a CVXPY variable).

Softplus has no closed-form ``F`` or ``F*``:
:math:`F^*(u) = \int_{-\infty}^u \log(1 + e^s)\,ds = -\mathrm{Li}_2(-e^u)`
(the dilogarithm) is computed from ``scipy.special.spence`` to about 1e-14,
and :math:`F(v) = v s - F^*(s)` with :math:`s = \phi^{-1}(v) = \log(e^v - 1)`.
It has **no CVXPY declaration** (the dilogarithm is not DCP-representable);
its subproblems are verified by optimality conditions instead.

Registry: an activation is one :class:`Activation` subclass registered with
:func:`register_activation` (usable as a class decorator). Registered
activations are found by :func:`get_activation` and :func:`activation_names`,
and the subproblem registry builds verification instances for every one of
them (with the class's ``example_params``), so a new activation is verified
with no other edit.

The two older lifted penalties the baselines need are here too:
:class:`LiftedPenalty` (Askari et al. 2018: :math:`\|v - u\|^2`, :math:`v \ge 0`)
and :class:`TaylorPenalty` (Taylor et al. 2016: :math:`\|v - \mathrm{relu}(u)\|^2`).
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..registry import Registry
from .base import Activation, NoCvxpyFormError
from .penalties import LiftedPenalty, TaylorPenalty
from .piecewise import HardTanh, Identity, LeakyReLU, ReLU
from .smooth import Sigmoid, Softplus, Tanh

__all__ = ["Activation", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "HardTanh", "Softplus", "Identity",
           "LiftedPenalty", "TaylorPenalty", "NoCvxpyFormError", "get_activation", "register_activation",
           "unregister_activation", "activation_names", "example_activation", "ACTIVATIONS"]

#: Registered activations, name -> class, in registration order.
ACTIVATIONS: Registry[type[Activation]] = Registry("activation")


def register_activation(cls: type[Activation] | None = None, *, aliases: tuple[str, ...] = ()):
    """Register an :class:`Activation` subclass under its ``name`` (and ``aliases``).

    Usable as ``register_activation(MyAct)`` or as a decorator ``@register_activation`` /
    ``@register_activation(aliases=("my-act",))``. The class needs a non-empty ``name``; its
    ``example_params`` are the parameters verification instances use. Returns the class.
    """
    def add(c: type[Activation]) -> type[Activation]:
        if not (isinstance(c, type) and issubclass(c, Activation)) or not c.name:
            raise InputError(f"register_activation needs an Activation subclass with a name, got {c!r}")
        return ACTIVATIONS.register(c.name, c, aliases)
    return add if cls is None else add(cls)


def unregister_activation(name: str) -> None:
    """Remove a registered activation and its aliases (for tests that register a toy one)."""
    ACTIVATIONS.unregister(name)


def activation_names() -> tuple[str, ...]:
    """Names of the registered activations, in registration order."""
    return ACTIVATIONS.names()


def get_activation(spec: Any = "relu", **params: Any) -> Activation:
    """Return an :class:`Activation` from a name, a dict ``{"name": ..., **params}`` or an instance.

    >>> get_activation("leaky_relu", slope=0.1)
    LeakyReLU(slope=0.1)
    """
    if isinstance(spec, Activation):
        if params:
            raise InputError("parameters given together with an Activation instance")
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        params = {**{k: v for k, v in spec.items() if k != "name"}, **params}
        spec = spec.get("name")
    if not isinstance(spec, str):
        raise InputError(f"activation must be a name, a dict or an Activation, got {spec!r}")
    key = ACTIVATIONS.key(spec)
    cls = ACTIVATIONS[key]
    try:
        return cls(**params)
    except TypeError:
        raise InputError(f"activation {key!r} does not take parameters {sorted(params)}") from None


def example_activation(name: str) -> Activation:
    """The registered activation ``name`` with its class's ``example_params`` (what verification
    instances and tests use, e.g. leaky ReLU with slope 0.1)."""
    cls = ACTIVATIONS[name]
    return cls(**dict(cls.example_params))


register_activation(ReLU)
register_activation(LeakyReLU, aliases=("leakyrelu", "leaky-relu"))
register_activation(Sigmoid, aliases=("logistic",))
register_activation(Tanh)
register_activation(HardTanh, aliases=("hard_tanh",))
register_activation(Softplus)
register_activation(Identity, aliases=("linear",))
