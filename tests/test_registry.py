"""The registry of subproblem kinds drives verification: a new activation or map registered at run
time is verified with no other edit, and every registered activation, loss and map has cases."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pytest

from cvx_fenchel.activations import (Activation, activation_names, example_activation, register_activation,
                                     unregister_activation)
from cvx_fenchel.errors import InputError, UnknownNameError
from cvx_fenchel.losses import loss_names
from cvx_fenchel.maps import Chain, Dense, LinearMap, get_map_class, map_kinds, register_map, unregister_map
from cvx_fenchel.subproblems import Spec, get_kind, kind_names, kinds
from cvx_fenchel.subproblems.instances import VARIANTS, example_map, map_labels
from verification.checks import map_checks, map_zoo
from verification.suite import make_specs, run_suite


# ---------------------------------------------------------------------------------------------
# a toy activation with closed forms: the clip to [0, 1]
# ---------------------------------------------------------------------------------------------
class Clip01(Activation):
    r"""``phi(u) = clip(u, 0, 1)``: :math:`F(v) = v^2/2` on [0, 1];
    :math:`F^*(u) = 0` (u < 0), :math:`u^2/2` (0 <= u <= 1), :math:`u - 1/2` (u > 1), i.e.
    ``huber(pos(u), 1) / 2``; :math:`\mathrm{prox}_{tF}(x) = \mathrm{clip}(x/(1+t), 0, 1)`;
    :math:`B(v, u) = (v - \mathrm{clip}(u))^2/2 + (-u)_+ v + (u - 1)_+ (1 - v)`."""

    name = "toy_clip01"
    lower, upper = 0.0, 1.0
    lipschitz = 1.0

    def forward(self, u):
        return np.clip(u, 0.0, 1.0)

    def derivative(self, u):
        return ((u > 0) & (u < 1)).astype(float)

    def inverse(self, v):
        return np.where((v < 0) | (v > 1), np.nan, v)

    def F(self, v):
        return np.where((v >= 0) & (v <= 1), 0.5 * v * v, np.inf)

    def Fstar(self, u):
        return np.where(u < 0, 0.0, np.where(u <= 1, 0.5 * u * u, u - 0.5))

    def prox_F(self, x, t):
        return np.clip(x / (1 + t), 0.0, 1.0)

    def cvxpy_F(self, v):
        import cvxpy as cp
        return 0.5 * cp.square(v)

    def cvxpy_Fstar(self, u):
        import cvxpy as cp
        return 0.5 * cp.huber(cp.pos(u), 1.0)

    def _cvxpy_divergence_in_v(self, v, u):
        import cvxpy as cp
        lo, hi = np.maximum(-u, 0), np.maximum(u - 1, 0)
        return (0.5 * cp.sum_squares(v - np.clip(u, 0, 1)) + float(np.sum(hi))
                + cp.sum(cp.multiply(lo - hi, v)))


@pytest.fixture
def toy_activation():
    register_activation(Clip01)
    try:
        yield Clip01.name
    finally:
        unregister_activation(Clip01.name)


def test_toy_activation_closed_forms_are_consistent(toy_activation):
    """B >= 0, B(phi(u), u) = 0, the completed square equals F + F* - uv, prox optimality."""
    act = example_activation(toy_activation)
    rng = np.random.default_rng(0)
    u = rng.uniform(-3, 3, 200)
    v = rng.uniform(0, 1, 200)
    B = act.divergence(v, u)
    assert B.min() >= -1e-14 and np.abs(act.divergence(act.forward(u), u)).max() <= 1e-14
    lo, hi = np.maximum(-u, 0), np.maximum(u - 1, 0)
    np.testing.assert_allclose(B, 0.5 * (v - np.clip(u, 0, 1)) ** 2 + lo * v + hi * (1 - v), atol=1e-13)
    x, t = rng.normal(size=200) * 2, 0.7
    z = act.prox_F(x, t)
    for d in (1e-4, -1e-4):  # t F(z) + (z - x)^2 / 2 is minimal at z over [0, 1]
        zz = np.clip(z + d, 0, 1)
        assert np.all(t * act.F(zz) + 0.5 * (zz - x) ** 2 >= t * act.F(z) + 0.5 * (z - x) ** 2 - 1e-15)


def test_toy_activation_is_verified_by_the_quick_suite_with_no_other_edit(toy_activation):
    subs = ["X-hidden", "W-hidden", "X-last-ce", "lower-bound"]
    assert toy_activation in get_kind("X-hidden").activations()
    res = run_suite(quick=True, subproblems=subs, with_speed=False, solvers=("CLARABEL", "ECOS"))
    recs = [r for r in res["records"] if r["activation"] == toy_activation]
    assert {r["subproblem"] for r in recs} == set(subs)
    assert recs and all(r["passed"] for r in recs), [r for r in recs if not r["passed"]][:3]
    assert {r["solver"] for r in recs} == {"CLARABEL", "ECOS"}  # it has a CVXPY form: compared
    checks = [c for c in res["activation_checks"] if c["activation"] == toy_activation]
    assert {c["solver"] for c in checks} == {"array", "CLARABEL", "ECOS"} and all(c["passed"] for c in checks)
    assert res["summary"]["passed"]
    unregister_activation(toy_activation)
    assert toy_activation not in get_kind("X-hidden").activations()


# ---------------------------------------------------------------------------------------------
# a toy weightless map: reverse the entries of each (flat) sample
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reverse(LinearMap):
    """``A(X)[:, i] = X[:, n-1-i]``: a permutation, so an isometry and self-adjoint."""

    in_shape: tuple
    out_shape: tuple = field(init=False, repr=False, compare=False)

    name: ClassVar[str] = "toy_reverse"
    has_weights: ClassVar[bool] = False

    def __post_init__(self):
        object.__setattr__(self, "in_shape", tuple(self.in_shape))
        object.__setattr__(self, "out_shape", tuple(self.in_shape))

    @property
    def n_in(self) -> int:
        return math.prod(self.in_shape)

    @property
    def n_out(self) -> int:
        return self.n_in

    @classmethod
    def from_in_shape(cls, in_shape: Any) -> "Reverse":
        return cls(in_shape)

    @classmethod
    def examples(cls, role, width_in, width_out):
        if role == "adjoint":
            return {"toy reverse 5": cls((5,))}
        return {"reverse+dense": Chain([cls((width_in,)), Dense(width_in, width_out)])}

    def _forward(self, X, W, xp):
        return X[:, ::-1]

    def _adjoint_input(self, G, W, xp):
        return G[:, ::-1]

    def lipschitz_input(self, W=None, **kwargs) -> float:
        return 1.0


@pytest.fixture
def toy_map():
    register_map(Reverse, kind=Reverse.name)
    try:
        yield Reverse.name
    finally:
        unregister_map(Reverse.name)


def test_toy_map_adjoints_are_checked(toy_map):
    checks = {c["map"]: c for c in map_checks()}
    assert checks["toy reverse 5"]["passed"] and checks["reverse+dense"]["passed"]
    assert "reverse+dense" in map_labels("hidden") and "reverse+dense" in get_kind("W-hidden").maps()
    # a wrong adjoint is caught
    orig = Reverse._adjoint_input
    try:
        Reverse._adjoint_input = lambda self, G, W, xp: G  # type: ignore[method-assign]
        assert not {c["map"]: c for c in map_checks()}["toy reverse 5"]["passed"]
    finally:
        Reverse._adjoint_input = orig  # type: ignore[method-assign]


def test_toy_map_is_verified_by_the_quick_suite_with_no_other_edit(toy_map):
    subs = ["X-hidden", "W-hidden", "W-last-ce", "LNN-W", "lower-bound"]
    res = run_suite(quick=True, subproblems=subs, with_checks=False, with_speed=False, solvers=("CLARABEL",))
    recs = [r for r in res["records"] if r["map"] == "reverse+dense"]
    assert {r["subproblem"] for r in recs} == set(subs)
    assert all(r["passed"] for r in recs) and res["summary"]["passed"]


# ---------------------------------------------------------------------------------------------
# coverage: nothing registered ships unverified
# ---------------------------------------------------------------------------------------------
def _uncovered(specs):
    acts = {s.activation for s in specs}
    losses = {s.loss for s in specs}
    maps = {s.map for s in specs}
    zoo = set(map_zoo())
    missing = [f"activation {a}" for a in activation_names() if a not in acts]
    missing += [f"loss {lo}" for lo in loss_names() if lo not in losses]
    for kind in map_kinds():
        cls = get_map_class(kind)
        used = set(cls.examples("hidden", 2, 2)) | set(cls.examples("last", 2, 2))
        if not used & maps:
            missing.append(f"map {kind} (no subproblem case)")
        if not set(cls.examples("adjoint", 4, 3)) <= zoo or not set(cls.examples("hidden", 4, 3)) <= zoo:
            missing.append(f"map {kind} (no adjoint check)")
    return missing


@pytest.mark.parametrize("quick", [True, False])
def test_every_registered_activation_loss_and_map_has_cases(quick):
    specs = make_specs(quick, seed=0)
    assert _uncovered(specs) == []
    assert {s.subproblem for s in specs} == set(kind_names())
    assert {s.variant for s in specs} == set(VARIANTS)


def test_coverage_check_notices_an_uncovered_activation(toy_activation):
    specs = [s for s in make_specs(True, seed=0) if s.activation != toy_activation]
    assert _uncovered(specs) == [f"activation {toy_activation}"]


def test_full_plan_keeps_at_least_the_old_counts():
    full, quick = make_specs(False, 0), make_specs(True, 0)
    assert len(full) >= 1136 and len(quick) < len(full) // 5
    assert len({s.seed for s in full}) == len(full)  # every instance its own seed


# ---------------------------------------------------------------------------------------------
# the kinds themselves
# ---------------------------------------------------------------------------------------------
def test_kinds_declare_what_they_apply_to():
    ids = kind_names()
    for loss in loss_names():  # one output X- and W-step kind per registered loss
        assert any(k.name.startswith("X-last-") and k.loss == loss for k in kinds())
        assert any(k.name.startswith("W-last-") and k.loss == loss for k in kinds())
    assert {"X-hidden", "W-hidden", "LNN-X", "LNN-W", "LNN-simplex-CE", "lower-bound"} <= set(ids)
    assert get_kind("W-hidden").fast_solvers == ("closed-form", "sample-space", "gram", "fista")
    assert get_kind("LNN-simplex-CE").maps() == ("none",) and get_kind("LNN-X").activations() == (None,)
    assert get_kind("lower-bound").losses() == loss_names()
    assert all(len(example_map(m, "last", 2, 3).in_shape) == 1 for m in get_kind("lower-bound").maps())
    with pytest.raises(UnknownNameError, match="unknown subproblem kind"):
        get_kind("Z-step")


@pytest.mark.parametrize("name", ["X-hidden", "X-last-ce", "W-hidden", "W-last-mse", "LNN-X", "LNN-W",
                                  "LNN-simplex-CE", "lower-bound"])
def test_generators_are_seeded_and_sized_for_cvxpy(name):
    kind = get_kind(name)
    spec = Spec(name, kind.activations()[-1], kind.losses()[-1], kind.maps()[-1], "random", 123)
    a, b = kind.build_instance(spec), kind.build_instance(spec)
    assert a.shape == b.shape and a.problem.objective(a.problem.start()) == b.problem.objective(b.problem.start())
    assert a.problem.m <= 6
    for v in kind.variants():
        inst = kind.build_instance(Spec(name, spec.activation, spec.loss, spec.map, v, 7))
        assert math.isfinite(inst.problem.objective(inst.problem.start()))
    with pytest.raises(InputError, match="variant"):
        kind.build_instance(Spec(name, spec.activation, spec.loss, spec.map, "huge", 1))
    if not kind.w_step:
        with pytest.raises(InputError, match="'rho=0' does not apply"):
            kind.build_instance(Spec(name, spec.activation, spec.loss, spec.map, "rho=0", 1))


def test_a_registered_kind_is_planned_built_and_verified():
    """A kind registered at run time (here a second name for the 2018 model's X-step) gets its
    cases from make_specs and passes run_suite; it leaves with unregister_kind."""
    from cvx_fenchel.subproblems import LNNX, SubproblemKind, register_kind, unregister_kind
    from cvx_fenchel.subproblems.instances import build_lnn_x
    kind = SubproblemKind("toy-nnls", "min_(Z >= 0) lam ||A(Z) + b - X_next||^2 + lam_prev ||Z - U_prev||^2",
                          LNNX, ("fista",), build_lnn_x, map_role="hidden")
    register_kind(kind)
    try:
        specs = [s for s in make_specs(True, seed=0) if s.subproblem == "toy-nnls"]
        assert {s.map for s in specs} == set(map_labels("hidden")) and len(specs) == len(map_labels("hidden")) + 6
        res = run_suite(specs=specs, with_checks=False, with_speed=False, solvers=("CLARABEL",))
        assert res["summary"]["passed"] and res["summary"]["instances"] == len(specs)
        with pytest.raises(InputError, match="already registered"):
            register_kind(dataclasses.replace(kind, formula="other"))
    finally:
        unregister_kind("toy-nnls")
    assert "toy-nnls" not in kind_names()


def test_verification_lists_no_activation_loss_or_map_by_hand():
    """No registered activation, loss, map kind or map example label appears as a string literal in
    verification/ (the suite, checks, report and speed rows take them from the registries)."""
    from pathlib import Path
    names = set(activation_names()) | set(loss_names()) | set(map_kinds())
    names |= set(map_labels("hidden")) | set(map_labels("last")) | set(map_zoo())
    root = Path(__file__).resolve().parents[1] / "verification"
    found = []
    for path in root.glob("*.py"):
        text = path.read_text()
        found += [f"{path.name}: {n!r}" for n in sorted(names) if f'"{n}"' in text or f"'{n}'" in text]
    assert found == []
