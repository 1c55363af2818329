r"""Seeded instance generators: small random, edge-case and ill-conditioned subproblems.

An instance is described by a :class:`Spec` (subproblem kind, activation, loss, map label,
variant, seed) and built by its kind's generator (:mod:`.registry`) from a NumPy generator seeded
by ``spec.seed``. Sizes stay tiny (at most 6 samples, 5 units, images 8x8x2) so that CVXPY solves
each in well under a second. The maps are the ``examples(role, width_in, width_out)`` of the
registered map classes (:func:`example_map`); activations the registered ones with their example
parameters; targets come from the loss (``example_targets``).

Variants (:data:`VARIANTS`):

* ``random``;
* edge cases: ``one-sample`` (m = 1), ``one-unit`` (hidden width / channels 1), ``all-negative``
  (all pre-activations negative), ``tiny-lambda`` (1e-3) and ``huge-lambda`` (1e3) for the
  divergence weights (the loss weight ``coef`` of an output W-step), ``zero-input`` (the data
  fixed inside the subproblem is 0), and for W-steps ``rho=0``, ``gamma=0``;
* ill-conditioned, for kinds with input features (W-steps, the lower bound): ``scale=1e-3``,
  ``scale=1e-1``, ``scale=1e2`` and ``scale=1e4`` multiply the features ``X`` by ``s`` and divide
  the weights that multiply them (``W0``) by ``s``, so pre-activations keep their size while the
  data term's curvature in the weights grows by ``s^2``; a W-step's ridge and proximal weights
  grow by ``s^2`` too (the data term keeps its ratio to them in ``W``; the bias, not rescaled, is
  held ``s^2`` times more or less tightly, which is where the conditioning changes); for W-steps
  ``small-rho`` (:math:`\rho = 10^{-5}`, :math:`\gamma = 0`: strongly convex only through a tiny
  ridge) and the grid :data:`W_ILL_GRID` ``s=<scale>,rho=<rho>`` (scales 1e-3..1e4, ``rho`` from
  1e-4 up, **not** scaled, ``gamma = 0``): there the weights' curvature ``~ s^2`` meets a fixed
  ridge, so :math:`L/\mu` reaches ``~1e12`` (the output W-step of issue 13, point 11, had
  features ~2e4 and ``rho = 0.1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..activations import example_activation
from ..backend import to_numpy
from ..errors import InputError, UnknownNameError
from ..losses import get_loss
from ..maps import Dense, get_map_class, map_kinds
from .bound import lower_bound_problem
from .lnn import LNNSimplexCE, LNNW, LNNX
from .wsteps import WHidden, WLast
from .xsteps import XHidden, XLast

__all__ = ["Spec", "Instance", "VARIANTS", "EDGE_VARIANTS", "W_VARIANTS", "ILL_CONDITIONED", "W_ILL_CONDITIONED",
           "W_ILL_GRID", "example_map",
           "map_labels", "build_x_hidden", "build_x_last", "build_w_step", "build_lnn_x", "build_simplex",
           "build_lower_bound"]

#: Edge variants of every kind.
EDGE_VARIANTS = ("one-sample", "one-unit", "all-negative", "tiny-lambda", "huge-lambda", "zero-input")
#: Extra edge variants of W-steps (they have a ridge/proximal term).
W_VARIANTS = ("rho=0", "gamma=0")
#: Ill-conditioned variants: feature scales 1e-3..1e4 for kinds with input features (a W-step's
#: ridge and proximal weights scaled with them); for W-steps also ``small-rho`` and the grid
#: :data:`W_ILL_GRID` of feature scales x fixed small ridges.
ILL_CONDITIONED = ("scale=1e-3", "scale=1e-1", "scale=1e2", "scale=1e4")
#: ``(feature scale, rho)`` of the W-step variants ``s=<scale>,rho=<rho>``: features times ``s``,
#: start weights over ``s``, ``rho`` as given (not scaled), ``gamma = 0``.
W_ILL_GRID = (("1e-3", "1e-4"), ("1e-3", "1e-1"), ("1e-1", "1e-4"), ("1e2", "1e-4"), ("1e2", "1e-1"),
              ("1e4", "1e-4"), ("1e4", "1e-1"), ("1", "1e-4"))
W_ILL_CONDITIONED = ("small-rho",) + tuple(f"s={a},rho={r}" for a, r in W_ILL_GRID)
VARIANTS = ("random",) + EDGE_VARIANTS + W_VARIANTS + ILL_CONDITIONED + W_ILL_CONDITIONED
SMALL_RHO = 1e-5


@dataclass(frozen=True)
class Spec:
    """One instance to build: what, with which activation/loss/map, which variant, which seed."""

    subproblem: str
    activation: str | None
    loss: str | None
    map: str
    variant: str
    seed: int

    def label(self) -> str:
        parts = [self.subproblem, self.activation or "-", self.loss or "-", self.map, self.variant]
        return "/".join(parts) + f"#{self.seed}"


@dataclass
class Instance:
    """A built instance: ``problem`` (the subproblem object; for the lower bound its inner
    :class:`~.xsteps.XLast`), a readable ``shape``, ``act`` (the activation of the case, None
    when the kind has none) and, for the lower bound, the keyword
    arguments of :func:`~.bound.lower_bound` and the network loss ``p``."""

    spec: Spec
    problem: Any
    shape: str
    act: Any = None
    bound_args: dict | None = None
    p: float = math.nan


# ---------------------------------------------------------------------------------------------
# maps and shared draws
# ---------------------------------------------------------------------------------------------
def map_labels(role: str) -> tuple[str, ...]:
    """Labels of the registered map classes' ``examples(role, ...)``, in registration order."""
    out: list[str] = []
    for kind in map_kinds():
        for label in get_map_class(kind).examples(role, 2, 2):
            if label not in out:
                out.append(label)
    return tuple(out)


def example_map(label: str, role: str, width_in: int, width_out: int):
    """The map labelled ``label`` among the registered classes' ``examples(role, width_in, width_out)``."""
    for kind in map_kinds():
        ex = get_map_class(kind).examples(role, width_in, width_out)
        if label in ex:
            return ex[label]
    raise UnknownNameError(f"no registered map class has a {role!r} example labelled {label!r}; "
                           f"known: {map_labels(role)}")


def _shape_str(**parts) -> str:
    return ", ".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in parts.items())


def _scale(variant: str) -> float:
    if variant.startswith("scale="):
        return float(variant.split("=", 1)[1])
    if variant.startswith("s="):
        return float(variant.split(",")[0].split("=", 1)[1])
    return 1.0


def _grid_rho(variant: str) -> float | None:
    """``rho`` of a :data:`W_ILL_GRID` variant ``s=<scale>,rho=<rho>`` (None for other variants)."""
    return float(variant.split("rho=", 1)[1]) if variant.startswith("s=") else None


def _lam(variant: str, rng: np.random.Generator) -> float:
    if variant == "tiny-lambda":
        return 1e-3
    if variant == "huge-lambda":
        return 1e3
    return float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))


class _Draw:
    """The draws every generator starts with, in one order (so a spec always gives the same data)."""

    def __init__(self, spec: Spec, role: str | None, xp, dtype):
        if spec.variant not in VARIANTS:
            raise InputError(f"unknown instance variant {spec.variant!r}; choose one of {VARIANTS}")
        self.spec, self.v, self.xp, self.dtype = spec, spec.variant, xp, dtype
        self.rng = rng = np.random.default_rng(spec.seed)
        image = role is not None and len(example_map(spec.map, role, 2, 2).in_shape) > 1
        v = self.v
        self.m = 1 if v == "one-sample" else int(rng.integers(2, 5 if image else 7))
        self.w_in = 1 if v == "one-unit" else int(rng.integers(2, 6))
        self.w_out = 1 if v == "one-unit" else int(rng.integers(2, 6))
        self.k = 3  # classes of the output layer
        self.lam = _lam(v, rng)
        self.rho = 0.0 if v in ("rho=0",) else (SMALL_RHO if v == "small-rho" else float(rng.uniform(0.05, 0.5)))
        self.gamma = 0.0 if v in ("gamma=0", "small-rho") else float(rng.uniform(0.05, 0.5))
        self.scale = _scale(v)
        grid_rho = _grid_rho(v)
        self.ridge_scales = grid_rho is None  # grid variants: rho fixed, not scaled with the features
        if grid_rho is not None:
            self.rho, self.gamma = grid_rho, 0.0
        self.act = None if spec.activation is None else example_activation(spec.activation)

    def A(self, a):
        return None if a is None else self.xp.asarray(np.asarray(a, dtype=np.float64), dtype=self.dtype)

    def targets(self, n_out: int) -> np.ndarray:
        return get_loss(self.spec.loss).example_targets(self.rng, self.m, n_out)

    def pre(self, shape) -> np.ndarray:
        """Pre-activations of a previous layer: negative for 'all-negative', 0 for 'zero-input'."""
        if self.v == "zero-input":
            return np.zeros(shape)
        z = self.rng.standard_normal(shape)
        return -(np.abs(z) + 0.5) if self.v == "all-negative" else 2.0 * z

    def weights(self, mp, gain: float = 1.0):
        W = self.rng.standard_normal(mp.weight_shape) / math.sqrt(np.prod(mp.weight_shape[:-1])) * gain
        return W, self.rng.standard_normal(mp.bias_shape) * 0.5


# ---------------------------------------------------------------------------------------------
# generators, one per family of kinds
# ---------------------------------------------------------------------------------------------
def _x_step(spec: Spec, role: str, xp, dtype):
    """Draws of an X-step: the map (``hidden``: ``w_in -> w_out``; ``last``: ``w_in -> k`` classes),
    weights of fan-in scale (twice that for ``last``) and previous pre-activations ``U_prev``."""
    d = _Draw(spec, role, xp, dtype)
    mp = example_map(spec.map, role, d.w_in, d.w_out if role == "hidden" else d.k)
    W, b = d.weights(mp, 1.0 if role == "hidden" else 2.0)
    return d, mp, W, b, d.pre((d.m,) + mp.in_shape)


def build_x_hidden(spec: Spec, xp=np, dtype=np.float64) -> Instance:
    """X-hidden: ``X_next = phi(pre)``, ``U_prev = pre``, ``W`` of fan-in scale."""
    d, mp, W, b, U_prev = _x_step(spec, "hidden", xp, dtype)
    X_next = to_numpy(d.act.forward(d.pre((d.m,) + mp.out_shape)))
    sub = XHidden(d.A(X_next), d.A(U_prev), d.A(W), d.A(b), d.act, d.act, lam=d.lam, lam_prev=d.lam,
                  coef=float(d.rng.uniform(0.5, 2.0)), linear_map=mp, dtype=dtype)
    return Instance(spec, sub, _shape_str(m=d.m, Z=mp.in_shape, X_next=mp.out_shape), d.act)


def build_lnn_x(spec: Spec, xp=np, dtype=np.float64) -> Instance:
    """LNN-X: Gaussian ``X_next``, ``U_prev = pre``; projection on ``Z >= 0``."""
    d, mp, W, b, U_prev = _x_step(spec, "hidden", xp, dtype)
    X_next = d.rng.standard_normal((d.m,) + mp.out_shape)
    lam_prev = _lam(d.v, d.rng) if d.v in ("tiny-lambda", "huge-lambda") else float(d.rng.uniform(0.3, 3.0))
    sub = LNNX(d.A(X_next), d.A(U_prev), d.A(W), d.A(b), lam=d.lam, lam_prev=lam_prev, linear_map=mp,
               dtype=dtype)
    return Instance(spec, sub, _shape_str(m=d.m, Z=mp.in_shape, X_next=mp.out_shape))


def build_x_last(spec: Spec, xp=np, dtype=np.float64) -> Instance:
    """X-last-*: targets from the loss, ``U_prev = pre``, ``W`` twice the fan-in scale."""
    d, mp, W, b, U_prev = _x_step(spec, "last", xp, dtype)
    Y = d.targets(mp.n_out)
    sub = XLast(d.A(Y), d.A(U_prev), d.A(W), d.A(b), d.act, loss=spec.loss, lam_prev=d.lam,
                coef=float(d.rng.uniform(0.5, 3.0)), linear_map=mp, dtype=dtype)
    return Instance(spec, sub, _shape_str(m=d.m, Z=mp.in_shape, Y=mp.out_shape), d.act)


def build_w_step(spec: Spec, xp=np, dtype=np.float64) -> Instance:
    """W-hidden, W-last-*, LNN-W: inputs ``X`` (uniform in [0, 1] for W-hidden, like activations;
    Gaussian otherwise; times the feature scale), start ``(W0, b0)`` of fan-in scale; the target is
    ``phi`` of a perturbed ``A(X; W0) + b0`` (W-hidden), Gaussian (LNN-W) or the loss's (W-last)."""
    s = spec.subproblem
    role = "hidden" if s in ("W-hidden", "LNN-W") else "last"
    d = _Draw(spec, role, xp, dtype)
    rng, v, m = d.rng, d.v, d.m
    mp = example_map(spec.map, role, d.w_in, d.w_out if role == "hidden" else d.k)
    if v == "zero-input":
        X = np.zeros((m,) + mp.in_shape)
    elif s == "W-hidden" or v == "all-negative":
        X = rng.uniform(0.0, 1.0, (m,) + mp.in_shape)  # activations of a previous layer
    else:
        X = rng.standard_normal((m,) + mp.in_shape)
    W0, b0 = d.weights(mp)
    if v == "all-negative":  # all pre-activations X W0 + b0 negative (X >= 0)
        W0, b0 = -np.abs(W0), -np.ones(mp.bias_shape)
    # feature scale s: X s, W0 / s, rho and gamma s^2 (the data term's curvature in W keeps its
    # ratio to the ridge's; the bias, not rescaled, is held s^2 times more tightly)
    s2 = d.scale ** 2 if d.ridge_scales else 1.0
    X, W0 = d.scale * X, W0 / d.scale
    kw = dict(rho=s2 * d.rho, gamma=s2 * d.gamma, W0=d.A(W0), b0=d.A(b0), linear_map=mp, dtype=dtype)
    if s == "W-hidden":
        U = to_numpy(mp.apply(X, W0, b0)) + (0.0 if v == "all-negative" else 0.5 * rng.standard_normal(
            (m,) + mp.out_shape))
        X_next = to_numpy(d.act.forward(U if v != "all-negative" else np.minimum(U, -1e-3)))
        sub = WHidden(d.A(X), d.A(X_next), d.act, lam=d.lam, **kw)
    elif s == "LNN-W":
        sub = LNNW(d.A(X), d.A(rng.standard_normal((m,) + mp.out_shape)), lam=d.lam, **kw)
    else:
        sub = WLast(d.A(X), d.A(d.targets(mp.n_out)), loss=spec.loss, coef=d.lam, **kw)
    return Instance(spec, sub, _shape_str(m=m, X=mp.in_shape, W=mp.weight_shape, out=mp.out_shape), d.act)


def build_simplex(spec: Spec, xp=np, dtype=np.float64) -> Instance:
    """LNN-simplex-CE: targets from the loss, ``X0 = pre``."""
    d = _Draw(spec, None, xp, dtype)
    kk = 1 if d.v == "one-unit" else int(d.rng.integers(2, 6))
    Y = d.targets(kk)
    X0 = d.pre((d.m, kk))
    sub = LNNSimplexCE(d.A(Y), d.A(X0), lam=d.lam, dtype=dtype)
    return Instance(spec, sub, _shape_str(m=d.m, Z=(kk,)))


def build_lower_bound(spec: Spec, xp=np, dtype=np.float64) -> Instance:
    """lower-bound: inputs in [0, 1] (features times ``s``, hidden weights over ``s``), a dense hidden layer into the map
    ``spec.map`` (a ``last`` example with flat input), targets from the loss."""
    d = _Draw(spec, "last", xp, dtype)
    rng, v, m, k = d.rng, d.v, d.m, d.k
    n0 = int(rng.integers(2, 6))
    map1 = example_map(spec.map, "last", d.w_in, k)
    if len(map1.in_shape) != 1:
        raise InputError(f"lower-bound: map {spec.map!r} must take flat inputs")
    n1 = map1.in_shape[0]
    map0 = Dense(n0, n1)
    X = np.zeros((m, n0)) if v == "zero-input" else rng.uniform(0.0, 1.0, (m, n0))
    W0 = rng.standard_normal((n0, n1)) / math.sqrt(n0) * 2.0
    b0 = rng.standard_normal(n1) * 0.5
    if v == "all-negative":
        W0, b0 = -np.abs(W0), -np.ones(n1)
    X, W0 = d.scale * X, W0 / d.scale  # feature scale: the same pre-activations in other units
    W1 = rng.standard_normal(map1.weight_shape) / math.sqrt(n1) * 2.0
    b1 = rng.standard_normal(map1.bias_shape) * 0.5
    Y = d.targets(map1.n_out)
    args = dict(X=d.A(X), Y=d.A(Y), W0=d.A(W0), b0=d.A(b0), W1=d.A(W1), b1=d.A(b1), activation=d.act, lam=d.lam,
                loss=spec.loss, maps=(map0, map1))
    sub, p, _ = lower_bound_problem(**args, dtype=dtype)
    return Instance(spec, sub, _shape_str(m=m, X=(n0,), X1=(n1,), Y=(map1.n_out,)), d.act, bound_args=args, p=p)
