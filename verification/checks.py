"""Checks of the building blocks, over their registries: every activation's argmin property and
every linear map's adjoints against its explicit matrices."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from cvx_fenchel.activations import activation_names, example_activation
from cvx_fenchel.backend import to_numpy
from cvx_fenchel.maps import get_map_class, map_kinds

__all__ = ["activation_checks", "map_checks", "map_zoo", "ARGMIN_TOL_X"]

#: Tolerance of the activation argmin check (max abs) for ECOS and Clarabel.
ARGMIN_TOL_X = 3e-5


def activation_checks(solvers=("ECOS", "SCS", "CLARABEL"), seed: int = 0, xp=np) -> list[dict]:
    r"""Argmin property of every registered activation (with its example parameters).

    With CVXPY: :math:`v^* = \arg\min_{v \in \mathrm{dom} F} \sum_i B(v_i, u_i)` for 40 values
    ``u`` (random in [-6, 6] plus 0, +-1, +-3) must equal :math:`\phi(u)` to :data:`ARGMIN_TOL_X`
    = 3e-5 (max abs; 1e-4 for SCS) with optimal value 0 to 1e-7 (1e-5 SCS). Where ``B`` is
    quadratic in ``v`` (ReLU, leaky ReLU, hard tanh, identity) a minimiser is only accurate to the
    square root of the absolute objective accuracy, :math:`\sqrt{2 \cdot 40 \cdot 10^{-11}}
    \approx 3\cdot 10^{-5}` at the solvers' tightest settings, hence that tolerance. For every activation, in array code:
    :math:`B(\phi(u), u) \le 10^{-12}` and :math:`B(v, u) \ge -10^{-12}` on random ``v`` in the domain,
    and :math:`B(\phi(u) \pm \delta, u) > 0` where the perturbed point is in the domain.
    """
    import cvxpy as cp
    from cvx_fenchel.cvx import solve

    rng = np.random.default_rng(seed)
    u = np.concatenate([rng.uniform(-6, 6, 35), [0.0, 1.0, -1.0, 3.0, -3.0]])
    out = []
    for name in activation_names():
        act = example_activation(name)
        U = xp.asarray(u)
        phi = act.forward(U)
        b0 = float(xp.max(xp.abs(act.divergence(phi, U))))
        lo = -5.0 if math.isinf(act.lower) else act.lower
        hi = 5.0 if math.isinf(act.upper) else act.upper
        V = xp.asarray(rng.uniform(lo, hi, (200, u.size)))
        bmin = float(xp.min(act.divergence(V, U[None, :])))
        delta = 1e-3
        moved = []
        for sgn in (1.0, -1.0):
            P = phi + sgn * delta
            inside = to_numpy(act.in_domain(P)).astype(bool)
            val = to_numpy(act.divergence(P, U))
            moved.append(bool(np.all(val[inside] > 0)))
        t0 = time.perf_counter()
        ok = b0 <= 1e-12 and bmin >= -1e-12 and all(moved)
        rec = {"check": "activation-argmin", "activation": name, "solver": "array",
               "max_B_at_phi": b0, "min_B_random": bmin, "B_positive_off_phi": all(moved), "passed": ok,
               "seconds": time.perf_counter() - t0}
        out.append(rec)
        if not act.has_cvxpy:
            continue
        for solver in solvers:
            t0 = time.perf_counter()
            v = cp.Variable(u.size)
            prob = cp.Problem(cp.Minimize(act.cvxpy_divergence(v, u)), act.cvxpy_domain(v))
            tol_x, tol_f = (1e-4, 1e-5) if solver == "SCS" else (ARGMIN_TOL_X, 1e-7)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = solve(prob, solver, name=f"argmin {name}")
                err = float(np.max(np.abs(v.value - to_numpy(phi))))
                val = float(r.objective)
                ok = err <= tol_x and abs(val) <= tol_f
                out.append({"check": "activation-argmin", "activation": name, "solver": solver,
                            "max_abs_argmin_minus_phi": err, "optimal_value": val, "tol_x": tol_x,
                            "tol_value": tol_f, "passed": ok, "seconds": time.perf_counter() - t0})
            except Exception as exc:  # noqa: BLE001
                out.append({"check": "activation-argmin", "activation": name, "solver": solver, "passed": False,
                            "message": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0})
    return out


def map_zoo() -> dict:
    """Every registered map class's ``examples`` for the roles ``adjoint``, ``hidden`` and ``last``
    (widths 4 -> 3), by label (the first of equal labels)."""
    out: dict = {}
    for kind in map_kinds():
        cls = get_map_class(kind)
        for role in ("adjoint", "hidden", "last"):
            for label, mp in cls.examples(role, 4, 3).items():
                out.setdefault(label, mp)
    return out


def map_checks(seed: int = 0, xp=np) -> list[dict]:
    r"""Adjoint identities of every registered linear map (:func:`map_zoo`) against its explicit matrices.

    With ``M = input_matrix(W, m)``, ``K = weight_matrix(X)``, ``S = bias_matrix(m)``
    (C-order vectorisations, float64): ``vec A(X; W) = M vec X = K vec W``,
    ``vec A_X^T(G) = M^T vec G``, ``vec dW = K^T vec G``, ``db = S^T vec G``,
    ``vec(A(X;W) + b) = K vec W + S b``, and the inner-product identity
    :math:`\langle A(X), G\rangle = \langle X, A^\top G\rangle`, each to 1e-12 relative.
    """
    rng = np.random.default_rng(seed)
    out = []
    m = 3
    for label, mp in map_zoo().items():
        t0 = time.perf_counter()
        X = rng.standard_normal((m,) + mp.in_shape)
        G = rng.standard_normal((m,) + mp.out_shape)
        W = b = None
        if mp.has_weights:
            W = rng.standard_normal(mp.weight_shape)
            b = rng.standard_normal(mp.bias_shape)
        Xd, Gd, Wd, bd = (None if a is None else xp.asarray(a) for a in (X, G, W, b))
        errs = {}

        def rel(a, ref):
            a = np.asarray(to_numpy(a), dtype=float).ravel()
            ref = np.asarray(ref, dtype=float).ravel()
            return float(np.max(np.abs(a - ref)) / max(1.0, float(np.max(np.abs(ref)))))

        try:
            M = mp.input_matrix(W, m)
            errs["forward_vs_input_matrix"] = rel(mp.apply(Xd, Wd), M @ X.ravel())
            errs["adjoint_input_vs_transpose"] = rel(mp.adjoint_input(Gd, Wd), M.T @ G.ravel())
            lhs = float(np.vdot(to_numpy(mp.apply(Xd, Wd)), G))
            rhs = float(np.vdot(X, to_numpy(mp.adjoint_input(Gd, Wd))))
            errs["inner_product_identity_input"] = abs(lhs - rhs) / max(1.0, abs(lhs))
            if mp.has_weights:
                K = mp.weight_matrix(X)
                S = mp.bias_matrix(m)
                errs["forward_vs_weight_matrix"] = rel(mp.apply(Xd, Wd, bd), K @ W.ravel() + S @ b.ravel())
                dW, db = mp.adjoint_weights(Gd, Xd)
                errs["adjoint_weights_vs_transpose"] = rel(dW, K.T @ G.ravel())
                errs["adjoint_bias_vs_transpose"] = rel(db, S.T @ G.ravel())
                lhs = float(np.vdot(to_numpy(mp.apply(Xd, Wd)), G))
                rhs = float(np.vdot(W, to_numpy(dW)))
                errs["inner_product_identity_weights"] = abs(lhs - rhs) / max(1.0, abs(lhs))
            worst = max(errs.values())
            out.append({"check": "map-adjoint", "map": label, "errors": errs, "max_error": worst,
                        "passed": worst <= 1e-12, "seconds": time.perf_counter() - t0})
        except Exception as exc:  # noqa: BLE001
            out.append({"check": "map-adjoint", "map": label, "errors": errs, "passed": False,
                        "message": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0})
    return out
