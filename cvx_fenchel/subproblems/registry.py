r"""The registry of subproblem kinds: what each is, what it applies to, how it is built and solved.

Each :class:`SubproblemKind` declares in one place

* its problem class (whose ``cvxpy_problem()`` is the CVXPY builder and ``solve_fast()`` the
  fast path) and the names of its fast solvers (for W-steps the strategies of :mod:`.strategies`);
* its seeded instance generator (:mod:`.instances`) and the variants it supports (random, edge
  cases, ill-conditioned);
* which activations, losses and linear maps it applies to, by querying their registries at call
  time (:func:`~cvx_fenchel.activations.activation_names`, :func:`~cvx_fenchel.losses.loss_names`,
  the ``examples(role, ...)`` of :func:`~cvx_fenchel.maps.map_kinds`): a newly registered
  activation, loss or map is covered with no edit here or in ``verification/``.

A *family* registered with ``per_loss=True`` (``X-last``, ``W-last``) stands for one kind per
registered loss, named ``<family>-<tag>`` (``X-last-ce``, ``X-last-mse``; :func:`~.xsteps.loss_tag`).

API: :func:`register_kind`, :func:`unregister_kind`, :func:`get_kind`, :func:`kinds`,
:func:`kind_names`; a kind's :meth:`~SubproblemKind.activations`, :meth:`~SubproblemKind.losses`,
:meth:`~SubproblemKind.maps`, :meth:`~SubproblemKind.variants`,
:meth:`~SubproblemKind.build_instance`, :meth:`~SubproblemKind.solve_fast`,
:meth:`~SubproblemKind.solve_cvxpy`, :meth:`~SubproblemKind.cvxpy_problem`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..activations import activation_names
from ..errors import InputError, UnknownNameError
from ..losses import loss_names
from ..registry import Registry
from . import bound
from .benchmark import SPEED_CASES
from .instances import (EDGE_VARIANTS, ILL_CONDITIONED, W_ILL_CONDITIONED, W_VARIANTS, Instance, Spec,
                        build_lnn_x, build_lower_bound, build_simplex, build_w_step, build_x_hidden, build_x_last,
                        example_map, map_labels)
from .lnn import LNNSimplexCE, LNNW, LNNX
from .strategies import STRATEGIES
from .wsteps import WHidden, WLast
from .xsteps import XHidden, XLast, loss_tag

__all__ = ["SubproblemKind", "BoundKind", "KINDS", "register_kind", "unregister_kind", "get_kind", "kinds",
           "kind_names"]

_W_SOLVERS = tuple(n for n in STRATEGIES if n != "gradient-step")


@dataclass(frozen=True)
class SubproblemKind:
    """One kind of subproblem (see the module docstring).

    Attributes
    ----------
    name : id in reports (``X-hidden``; for a ``per_loss`` family its prefix, ``X-last``)
    formula : what is minimised
    problem : the class (``cvxpy_problem``, ``solve_cvxpy``, ``solve_fast``, ``objective``, ``residual``)
    fast_solvers : names of the fast solvers ``solve_fast`` chooses among
    build : ``build(spec, xp, dtype) -> Instance``, the seeded generator
    uses_activation : cases for every registered activation (else none)
    loss : the one loss of the kind (``per_loss`` families: set per expanded kind)
    per_loss : a family expanded into one kind per registered loss
    all_losses : one kind whose cases cover every registered loss (the lower bound)
    map_role : ``"hidden"`` / ``"last"``: the maps' ``examples`` role; None: no linear map
    flat_maps_only : only maps with a flat per-sample input (the lower bound's output layer)
    w_step : has a ridge/proximal term (variants ``rho=0``, ``gamma=0``, ``small-rho``)
    features : has input features (variants ``scale=1e-3``, ``scale=1e4``)
    """

    name: str
    formula: str
    problem: Any
    fast_solvers: tuple[str, ...]
    build: Callable[..., Instance]
    uses_activation: bool = False
    loss: str | None = None
    per_loss: bool = False
    all_losses: bool = False
    map_role: str | None = None
    flat_maps_only: bool = False
    w_step: bool = False
    features: bool = False

    # what the kind applies to (queried from the registries at call time) -------------------------
    def activations(self) -> tuple[str | None, ...]:
        """Registered activation names (``(None,)`` for kinds without an activation)."""
        return activation_names() if self.uses_activation else (None,)

    def losses(self) -> tuple[str | None, ...]:
        """Registered loss names the kind's cases cover (``(None,)`` for kinds without a loss)."""
        return loss_names() if self.all_losses else (self.loss,)

    def maps(self) -> tuple[str, ...]:
        """Labels of the registered maps' ``examples(map_role, ...)`` (``("none",)`` without a map)."""
        if self.map_role is None:
            return ("none",)
        labels = map_labels(self.map_role)
        if self.flat_maps_only:
            labels = tuple(lb for lb in labels if len(example_map(lb, self.map_role, 2, 2).in_shape) == 1)
        return labels

    def variants(self) -> tuple[str, ...]:
        """Edge and ill-conditioned variants besides ``random``."""
        extra = W_VARIANTS if self.w_step else ()
        ill = (ILL_CONDITIONED if self.features else ()) + (W_ILL_CONDITIONED if self.w_step else ())
        return EDGE_VARIANTS + extra + ill

    def speed_case(self) -> Callable | None:
        """Builder ``(seed, m, hidden) -> (problem, settings)`` of the kind's MNIST-scale instance at
        the original code's settings (:mod:`.benchmark`), or None."""
        return SPEED_CASES.get(self.name)

    # building and solving ------------------------------------------------------------------------
    def build_instance(self, spec: Spec, xp=np, dtype=np.float64) -> Instance:
        """The instance of ``spec`` (seeded by ``spec.seed``) on the array module ``xp``."""
        if spec.subproblem != self.name:
            raise InputError(f"spec of {spec.subproblem!r} given to the {self.name!r} kind")
        if spec.variant != "random" and spec.variant not in self.variants():
            raise InputError(f"{self.name}: variant {spec.variant!r} does not apply; choose 'random' or one of "
                             f"{self.variants()}")
        if self.uses_activation and spec.activation is None:
            raise InputError(f"{self.name}: the spec needs an activation (one of {self.activations()})")
        return self.build(spec, xp=xp, dtype=dtype)

    def solve_fast(self, inst: Instance, *, tol: float, max_iter: int) -> tuple[Any, int | None, bool | None, dict]:
        """``(x, n_iter, converged, extra)`` of the fast path (no warnings; ``extra["fast_method"]``
        names the solver or strategy used)."""
        r = inst.problem.solve_fast(tol=tol, max_iter=max_iter, warn=False)
        return r.x, int(r.n_iter), bool(r.converged), {"fast_method": getattr(r, "method", "")}

    def solve_cvxpy(self, inst: Instance, solver: str, **kwargs) -> tuple[Any, float, dict]:
        """``(x, objective, extra)`` of the library's CVXPY solve (``kwargs`` to ``solve_cvxpy``)."""
        x, res = inst.problem.solve_cvxpy(solver, **kwargs)
        return x, float(res.objective), ({"solver_messages": res.messages} if res.messages else {})

    def cvxpy_problem(self, inst: Instance):
        """``(problem, variables)``: the CVXPY declaration of the instance."""
        return inst.problem.cvxpy_problem()


@dataclass(frozen=True)
class BoundKind(SubproblemKind):
    """The lower bound: solved through :func:`~.bound.lower_bound` (fast and CVXPY), which also
    returns the network loss ``p`` for the check :math:`G \\le p`."""

    def solve_fast(self, inst, *, tol, max_iter):
        out = bound.lower_bound(**inst.bound_args, method="fast", tol=tol, max_iter=max_iter)
        return out.X1, None, bool(out.converged), {"G_fast": float(out.G), "p": float(out.p), "fast_method": "fista"}

    def solve_cvxpy(self, inst, solver, **kwargs):
        if kwargs:  # the same declaration (its XLast) with the caller's settings
            x, res = inst.problem.solve_cvxpy(solver, **kwargs)
            extra = {"p_cvx": float(inst.p)}
            if res.messages:
                extra["solver_messages"] = res.messages
            return x, float(res.objective), extra
        out = bound.lower_bound(**inst.bound_args, method="cvxpy", solver=solver)
        return out.X1, float(out.G), {"p_cvx": float(out.p)}


#: The registered kinds and ``per_loss`` families, in registration order.
KINDS: Registry[SubproblemKind] = Registry("subproblem kind")


def register_kind(kind: SubproblemKind) -> SubproblemKind:
    """Register a kind (or a ``per_loss`` family) under its name; returns it."""
    if not isinstance(kind, SubproblemKind) or not kind.name:
        raise InputError(f"register_kind needs a SubproblemKind with a name, got {kind!r}")
    return KINDS.register(kind.name, kind)


def unregister_kind(name: str) -> None:
    """Remove a registered kind or family (for tests that register a toy one)."""
    KINDS.unregister(name)


def kinds() -> tuple[SubproblemKind, ...]:
    """Every kind, ``per_loss`` families expanded over the registered losses, in registration order."""
    out = []
    for fam in KINDS.values():
        if fam.per_loss:
            out += [dataclasses.replace(fam, name=f"{fam.name}-{loss_tag(lo)}", loss=lo, per_loss=False)
                    for lo in loss_names()]
        else:
            out.append(fam)
    return tuple(out)


def kind_names() -> tuple[str, ...]:
    """Names of :func:`kinds`, in report order."""
    return tuple(k.name for k in kinds())


def get_kind(name: str) -> SubproblemKind:
    """The kind called ``name`` (``X-last-ce``, ``lower-bound``, ...)."""
    for k in kinds():
        if k.name == name:
            return k
    raise UnknownNameError(f"unknown subproblem kind {name!r}; known: {kind_names()}")


_B = r"\sum B"
register_kind(SubproblemKind(
    "X-hidden", rf"min_Z c lam_l {_B}_l(X_next, A(Z) + b) + lam_prev {_B}_prev(Z, U_prev), Z in dom F_prev",
    XHidden, ("fista",), build_x_hidden, uses_activation=True, map_role="hidden"))
register_kind(SubproblemKind(
    "X-last", rf"min_Z c Loss(Y, A(Z) + b) + lam_prev {_B}_prev(Z, U_prev), Z in dom F_prev",
    XLast, ("newton", "fista"), build_x_last, uses_activation=True, per_loss=True, map_role="last"))
register_kind(SubproblemKind(
    "W-hidden", rf"min_(W,b) lam {_B}(X_next, A(X; W) + b) + rho ||(W,b)||^2 + gamma ||(W,b) - (W0,b0)||^2",
    WHidden, _W_SOLVERS, build_w_step, uses_activation=True, map_role="hidden", w_step=True, features=True))
register_kind(SubproblemKind(
    "W-last", "min_(W,b) c Loss(Y, A(X; W) + b) + rho ||(W,b)||^2 + gamma ||(W,b) - (W0,b0)||^2",
    WLast, _W_SOLVERS, build_w_step, per_loss=True, map_role="last", w_step=True, features=True))
register_kind(SubproblemKind(
    "LNN-X", "min_(Z >= 0) lam ||A(Z) + b - X_next||^2 + lam_prev ||Z - U_prev||^2",
    LNNX, ("dual-newton", "fista"), build_lnn_x, map_role="hidden"))
register_kind(SubproblemKind(
    "LNN-W", "min_(W,b) lam ||A(X; W) + b - X_next||^2 + rho ||(W,b)||^2 + gamma ||(W,b) - (W0,b0)||^2",
    LNNW, _W_SOLVERS, build_w_step, map_role="hidden", w_step=True, features=True))
register_kind(SubproblemKind(
    "LNN-simplex-CE", "min_(Z rows on the simplex) -Tr Y^T log Z + lam ||Z - X0||^2",
    LNNSimplexCE, ("bisection",), build_simplex, loss="cross_entropy"))
register_kind(BoundKind(
    "lower-bound", rf"G_W(lam) = min_(X1 in dom F) Loss(Y, A1(X1) + b1) + lam {_B}(X1, A0(X) + b0) <= p(W)",
    bound.lower_bound, ("fista",), build_lower_bound, uses_activation=True, all_losses=True, map_role="last",
    flat_maps_only=True, features=True))
