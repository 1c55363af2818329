"""Markdown summary of a verification run (the JSON result of :func:`verification.suite.run_suite`)."""

from __future__ import annotations

import statistics
from collections import defaultdict

from .speed import speed_markdown
from .suite import SOLVERS, subproblem_ids

__all__ = ["markdown"]

_COLS = SOLVERS + ("perturbation",)


def _no_cvxpy() -> list[str]:
    """Registered activations without a CVXPY form (verified by the perturbation test)."""
    from cvx_fenchel.activations import activation_names, example_activation
    return [a for a in activation_names() if not example_activation(a).has_cvxpy]


def _e(v, spec=".1e"):
    return "-" if v is None else format(v, spec)


def markdown(result: dict, max_failures: int = 40) -> str:
    """The report: verdict, tolerances, counts per subproblem x solver, worst gaps and residuals,
    coverage, CVXPY retries, failures, activation and map checks, the speed row."""
    meta, summ, recs = result["meta"], result["summary"], result["records"]
    order = list(subproblem_ids())
    order += sorted({r["subproblem"] for r in recs} - set(order))
    ok = summ["passed"]
    L = ["# cvx_fenchel verification report", "",
         f"**Result: {'PASSED' if ok else 'FAILED'}** -- {summ['instances']} instances "
         f"({len(summ.get('failed_instances', []))} failed), {summ['records']} comparisons, "
         f"{summ['failed_records']} failed; {summ.get('solver_failures', 0)} CVXPY solves returned no optimal "
         f"status (listed below; not fast-path failures); {len(result['activation_checks'])} activation "
         f"and {len(result['map_checks'])} map checks, {summ['failed_checks']} failed. KKT residuals: "
         f"{len(summ.get('fast_solved_but_wrong', []))} fast results solved but wrong (failures), "
         f"{len(summ.get('cvx_optimal_but_inaccurate', []))} CVXPY results optimal but inaccurate (flagged, "
         "not failures).", "",
         f"* Command: `{meta['command']}`",
         f"* Date: {meta['date']}; wall time {summ['seconds']:.0f} s",
         f"* Mode: {'quick' if meta['quick'] else 'full'}; seed {meta['seed']}; fast-path backend "
         f"{meta['backend']}, {meta['dtype']}",
         f"* Machine: {meta.get('cpu_model')}, {meta.get('logical_cpus')} logical CPU(s); {meta['platform']}",
         "* Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
         "## What is compared", "",
         "Every subproblem instance is solved by the fast path (`solve_fast(tol=1e-10)`) and by CVXPY "
         "with ECOS, SCS and Clarabel (all three support the zero, non-negative, second-order and "
         "exponential cones these declarations use).", "",
         f"* **Relative objective gap** = |f_fast - f_cvx| / max(1, |f_cvx|) (reported). The test is "
         f"one-sided: the fast path's excess (f_fast - f_cvx) / max(1, |f_cvx|) must be <= "
         f"{meta['gap_tol']['ECOS']:g} against ECOS and Clarabel, <= {meta['gap_tol']['SCS']:g} against SCS. "
         "The fast point is feasible (finite objective, in the domain by construction), so a solver value "
         "above it is that solver's inaccuracy (status `ok (solver less accurate)`, counted below). The "
         "ill-conditioned grid variants `s=<scale>,rho=<rho>` (features times 1e-3..1e4 with a fixed ridge "
         f"rho >= 1e-4, L/mu up to ~1e12) have the tier {meta.get('ill_conditioned_gap_tol', 1e-4):g}: comparisons "
         "passing only by it have status `ok (ill-conditioned tier)` and are listed below.",
         "* **Instances** pass when none of their comparisons fails, except comparisons where a CVXPY "
         "solver returned no optimal status at all (solver failures, listed separately: they say nothing "
         "about the fast path), and at least one comparison passed.",
         f"* **Fast-path residual** = ||x - T(x)|| / max(1, ||x||) (T: the proximal-gradient map; for "
         f"LNN-simplex-CE the KKT residual), recomputed from the returned point; must be <= "
         f"{meta['residual_tol']:g} (float64).",
         f"* **KKT residuals** of every fast and every CVXPY solution, in float64 at the returned point from the "
         "subproblem's own array code (`verification/kkt.py`): *stationarity* in objective units relative to "
         "max(1, |f|) (W-steps: 1/2 g^T P^+ g with P = L_data J^T J + 2(rho+gamma) I, J the map's explicit "
         "weight and bias matrices; X-steps: L/2 ||Z - T(Z)||^2, T the proximal-gradient step; both certified "
         "lower bounds on the relative suboptimality; LNN-simplex-CE: the Lagrangian duality gap, an upper "
         "bound), *primal feasibility* (domain or simplex violation relative to max(1, max|x|)) and "
         "*complementarity* (bounded domains: sum of multiplier x slack, multipliers read off the gradient, "
         "relative to max(1, |f|)); `kkt` = the largest. **Solved but wrong**: a fast result with "
         f"converged=True and kkt > {_tier(meta)} fails its instance; a CVXPY result with status `optimal` and "
         "kkt above that solver's gap tolerance is flagged and counted (its comparison still decides as above: "
         "the fast path is not excused by a flagged solver, nor failed by one).",
         "* **Distance between minimisers** = max abs difference (informational only: minimisers can be "
         "non-unique, and conic solvers are less accurate in x than in the objective).",
         f"* **Activations without a CVXPY form** ({', '.join(_no_cvxpy()) or 'none registered'}; softplus's "
         "potential involves the dilogarithm): their cases are verified by "
         "the residual plus a perturbation test (column `perturbation`): 32 random feasible points P(x + tD), "
         f"t = 1e-1..1e-4, never lower the objective by more than {meta['perturbation_slack']:g} max(1, |f|); "
         "the recorded gap is that relative decrease (0 when none).",
         f"* **lower-bound**: `lower_bound(method='fast')` vs `lower_bound(method='cvxpy', solver=...)`, plus "
         f"G <= p (the network loss at the weights) to {meta['bound_slack']:g} relative for the fast bound "
         f"and to the solver's gap tolerance for CVXPY's.",
         "* CVXPY runs first with the library's tolerance ladder (SCS: the library's eps 1e-9 but at most "
         "20,000 iterations instead of 200,000, since SCS is compared at 1e-4 and stalled solves took "
         "minutes); where that ends without `optimal` (or with a "
         "non-finite objective value) the suite retries the same declaration with looser settings, the last "
         "accepting `optimal_inaccurate`; the gap tolerance is unchanged (retries are listed below).", ""]

    # counts per subproblem x solver
    by = defaultdict(list)
    for r in recs:
        by[(r["subproblem"], r["solver"])].append(r)
    L += ["## Results per subproblem and solver", "",
          "Cells: passed / total comparisons (worst relative objective gap).", "",
          "| subproblem | instances | " + " | ".join(_COLS) + " | worst residual | max x-dist | median fast s "
          "| median CVXPY s |", "|---|---" + "|---" * len(_COLS) + "|---|---|---|---|"]
    inst_of = defaultdict(set)
    for r in recs:
        inst_of[r["subproblem"]].add(r["id"])
    for sub in order:
        rs = [r for r in recs if r["subproblem"] == sub]
        if not rs:
            continue
        cells = []
        for col in _COLS:
            c = by.get((sub, col), [])
            if not c:
                cells.append("-")
                continue
            gaps = [r["rel_gap"] for r in c if r["rel_gap"] is not None]
            cells.append(f"{sum(r['passed'] for r in c)}/{len(c)} ({_e(max(gaps) if gaps else None)})")
        res = [r["residual"] for r in rs if r["residual"] is not None]
        xd = [r["x_dist"] for r in rs if r["x_dist"] is not None and r["x_dist"] == r["x_dist"]]
        fs = [r["fast_seconds"] for r in rs if r["fast_seconds"] is not None]
        cs = [r["cvx_seconds"] for r in rs if r["cvx_seconds"] is not None and r["solver"] != "perturbation"]
        L.append(f"| {sub} | {len(inst_of[sub])} | " + " | ".join(cells) +
                 f" | {_e(max(res) if res else None)} | {_e(max(xd) if xd else None)} | "
                 f"{_e(statistics.median(fs) if fs else None, '.3f')} | "
                 f"{_e(statistics.median(cs) if cs else None, '.3f')} |")
    tot = [sum(r["passed"] for r in recs if r["solver"] == c) for c in _COLS]
    n = [sum(r["solver"] == c for r in recs) for c in _COLS]
    L += ["| **all** | " + str(summ["instances"]) + " | " + " | ".join(f"{a}/{b}" for a, b in zip(tot, n))
          + " | | | | |", ""]

    L += _kkt_section(recs, order, summ, meta)

    # coverage
    L += ["## Coverage", "", "| subproblem | activations | losses | maps | variants |", "|---|---|---|---|---|"]
    for sub in order:
        rs = [r for r in recs if r["subproblem"] == sub]
        if not rs:
            continue

        def uniq(key):
            return ", ".join(sorted({str(r[key]) for r in rs if r[key] is not None})) or "-"
        L.append(f"| {sub} | {uniq('activation')} | {uniq('loss')} | {uniq('map')} | {uniq('variant')} |")
    L += ["", "Shapes are tiny (at most 6 samples, 5 units, 8x8x2 images) so that CVXPY is exact and fast; "
          "variants: `random`, `one-sample`, `one-unit`, `all-negative` (all pre-activations negative), "
          "`tiny-lambda` (1e-3), `huge-lambda` (1e3), `rho=0`, `gamma=0`, `zero-input`; ill-conditioned "
          "`scale=1e-3`, `scale=1e-1`, `scale=1e2`, `scale=1e4` (features scaled, a W-step's ridge with them), "
          "`small-rho` (rho = 1e-5, gamma = 0) and the W-step grid `s=<scale>,rho=<rho>` (features scaled "
          "1e-3..1e4, rho from 1e-4 up, not scaled, gamma = 0). Activations, "
          "losses and maps are those registered (cvx_fenchel.subproblems.registry).", ""]

    # retries
    retries = [r for r in recs if r["extra"].get("library_status")]
    L += ["## CVXPY retries with looser settings", ""]
    if retries:
        cnt = defaultdict(int)
        for r in retries:
            cnt[(r["solver"], r["extra"]["library_status"], r["extra"].get("cvx_status", "-"))] += 1
        L += [f"{len(retries)} of {sum(r['solver'] in SOLVERS for r in recs)} CVXPY solves needed a retry:", "",
              "| solver | status with the library ladder | final status | count |", "|---|---|---|---|"]
        L += [f"| {s} | {a} | {b} | {c} |" for (s, a, b), c in sorted(cnt.items())]
        L.append("")
    else:
        L += ["None.", ""]

    tier = [r for r in recs if r["status"] == "ok (ill-conditioned tier)"]
    L += ["## Passed by the ill-conditioned tier", ""]
    if tier:
        L += [f"{len(tier)} comparisons where the fast path lies above the solver by more than the solver's "
              f"tolerance but within the ill-conditioned tier {meta.get('ill_conditioned_gap_tol', 1e-4):g}:", "",
              "| case | solver | fast - solver (relative) | fast converged | fast residual | fast kkt |",
              "|---|---|---|---|---|---|"]
        L += [f"| {r['id']} | {r['solver']} | {_e(r['fast_excess'])} | {r['fast_converged']} | {_e(r['residual'])} | "
              f"{_e(_k(r.get('kkt')))} |" for r in tier]
        L.append("")
    else:
        L += ["None.", ""]

    less = [r for r in recs if r["status"] == "ok (solver less accurate)"]
    L += ["## Solver less accurate than the fast path", ""]
    if less:
        L += [f"{len(less)} comparisons where the solver's objective lies above the fast path's by more "
              "than its tolerance (the fast path is lower, so these pass):", "",
              "| case | solver | fast - solver (relative) | fast residual |", "|---|---|---|---|"]
        L += [f"| {r['id']} | {r['solver']} | {_e(r['fast_excess'])} | {_e(r['residual'])} |" for r in less]
        L.append("")
    else:
        L += ["None.", ""]

    sfail = [r for r in recs if r.get("solver_failed")]
    L += ["## CVXPY solver failures", ""]
    if sfail:
        cnt = defaultdict(int)
        for r in sfail:
            cnt[(r["solver"], r["subproblem"], r["activation"], r["map"], r["status"])] += 1
        L += [f"{len(sfail)} CVXPY solves returned no optimal status even with the looser retries; every "
              "one of these instances was verified by another solver (else it would be a failed instance):",
              "", "| solver | subproblem | activation | map | status | count |", "|---|---|---|---|---|---|"]
        L += [f"| {a} | {b} | {c} | {d} | {e} | {n} |" for (a, b, c, d, e), n in sorted(
            cnt.items(), key=lambda kv: tuple(str(x) for x in kv[0]))]
        L.append("")
    else:
        L += ["None.", ""]

    noisy = [r for r in recs if (r.get("extra") or {}).get("solver_messages")]
    L += ["## What the CVXPY solvers printed", ""]
    if noisy:
        L += [f"{len(noisy)} comparisons' CVXPY solves printed messages from the solver's native code "
              "(captured, not shown in the terminal; all in `verification.json`, "
              "`extra.solver_messages`). The first ones:", "",
              "| case | solver | message |", "|---|---|---|"]
        L += [f"| {r['id']} | {r['solver']} | "
              f"{' / '.join(r['extra']['solver_messages'].splitlines()).replace('|', '/')[:160]} |"
              for r in noisy[:10]]
        L.append("")
    else:
        L += ["Nothing.", ""]

    # failures
    fails = [r for r in recs if not r["passed"] and not r.get("solver_failed")]
    L += ["## Failures", ""]
    if fails:
        L += ["| case | solver | status | gap | residual | message |", "|---|---|---|---|---|---|"]
        for r in fails[:max_failures]:
            msg = r["message"].replace("|", "/")[:200]
            L.append(f"| {r['id']} | {r['solver']} | {r['status']} | {_e(r['rel_gap'])} | {_e(r['residual'])} "
                     f"| {msg} |")
        if len(fails) > max_failures:
            L.append(f"| ... {len(fails) - max_failures} more in verification.json | | | | | |")
        L.append("")
    else:
        L += ["None.", ""]

    # activation checks
    L += ["## Activations: argmin property", "",
          "CVXPY solves min_v sum_i B(v_i, u_i) over dom F for 40 values of u; the minimiser must equal "
          "phi(u) (max abs error below) and the optimal value 0. In array code (row `array`): "
          "B(phi(u), u) <= 1e-12, B >= -1e-12 on random v, B(phi(u) +- 1e-3, u) > 0.", "",
          "| activation | solver | max abs(argmin - phi(u)) | optimal value | passed |", "|---|---|---|---|---|"]
    for c in result["activation_checks"]:
        if c["solver"] == "array":
            L.append(f"| {c['activation']} | array | B(phi(u),u) max {_e(c.get('max_B_at_phi'))} | min B on "
                     f"random v {_e(c.get('min_B_random'))} | {'yes' if c['passed'] else 'NO'} |")
        else:
            L.append(f"| {c['activation']} | {c['solver']} | {_e(c.get('max_abs_argmin_minus_phi'))} "
                     f"(tol {_e(c.get('tol_x'))}) | {_e(c.get('optimal_value'))} | "
                     f"{'yes' if c['passed'] else 'NO: ' + c.get('message', '')} |")
    L += ["", "## Linear maps: adjoints against explicit matrices", "",
          "With M = input_matrix(W, m), K = weight_matrix(X), S = bias_matrix(m): vec A(X;W) = M vec X, "
          "A_X^T G = M^T vec G, A(X;W) + b = K vec W + S b, dW = K^T vec G, db = S^T vec G, and "
          "<A X, G> = <X, A^T G>; worst relative error, tolerance 1e-12.", "",
          "| map | worst relative error | passed |", "|---|---|---|"]
    for c in result["map_checks"]:
        L.append(f"| {c['map']} | {_e(c.get('max_error'))} | {'yes' if c['passed'] else 'NO: ' + c.get('message', '')} |")
    L += ["", speed_markdown(result.get("speed"))]
    L += _kkt_per_case(recs, order)
    return "\n".join(L) + "\n"


def _tier(meta: dict) -> str:
    tol = meta.get("kkt_tol") or {}
    return f"{tol.get(meta.get('dtype', 'float64'), 1e-6):g}"


def _k(d: dict | None, key: str = "kkt") -> float | None:
    return None if not d else d.get(key)


def _worst(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def _kkt_section(recs: list[dict], order: list[str], summ: dict, meta: dict) -> list[str]:
    """KKT residuals per subproblem (worst fast components, worst CVXPY kkt per solver) and the
    solved-but-wrong lists in both directions."""
    L = ["## KKT residuals: optimality, not only agreement", "",
         f"Worst KKT residuals per subproblem (definitions above; fast tier {_tier(meta)}, CVXPY tier its gap "
         "tolerance). `flagged`: fast results solved but wrong / CVXPY results optimal but inaccurate.", "",
         "| subproblem | fast stationarity | fast feasibility | fast complementarity | "
         + " | ".join(f"{s} kkt" for s in SOLVERS) + " | flagged fast / CVXPY |",
         "|---|---|---|---|" + "---|" * len(SOLVERS) + "---|"]
    for sub in order:
        rs = [r for r in recs if r["subproblem"] == sub]
        if not rs:
            continue
        first = {r["id"]: r for r in rs}.values()
        cells = [_e(_worst(_k(r["kkt"], c) for r in first))
                 for c in ("stationarity", "primal_feasibility", "complementarity")]
        cells += [_e(_worst(_k(r.get("kkt_cvx")) for r in rs if r["solver"] == sv)) for sv in SOLVERS]
        n_fast = len({r["id"] for r in rs if r.get("solved_but_wrong")})
        n_cvx = sum(bool(r.get("cvx_solved_but_wrong")) for r in rs)
        L.append(f"| {sub} | " + " | ".join(cells) + f" | {n_fast} / {n_cvx} |")
    fast = [r for r in recs if r.get("solved_but_wrong")]
    seen = set()
    L += ["", "### Fast results solved but wrong (converged=True, KKT residual above the tier: failures)", ""]
    rows = []
    for r in fast:
        if r["id"] in seen:
            continue
        seen.add(r["id"])
        k = r["kkt"]
        rows.append(f"| {r['id']} | {_e(k['kkt'])} | {_e(k['stationarity'])} | {_e(k['primal_feasibility'])} | "
                    f"{_e(k['complementarity'])} |")
    L += (["| case | kkt | stationarity | feasibility | complementarity |", "|---|---|---|---|---|"] + rows
          if rows else ["None."])
    cvx = [r for r in recs if r.get("cvx_solved_but_wrong")]
    L += ["", "### CVXPY results optimal but inaccurate (status optimal, KKT residual above the solver's tier: "
          "flagged, not failures)", ""]
    if cvx:
        cnt = defaultdict(int)
        for r in cvx:
            cnt[(r["solver"], r["subproblem"], r["variant"])] += 1
        L += [f"{len(cvx)} CVXPY solutions:", "", "| solver | subproblem | variant | count |", "|---|---|---|---|"]
        L += [f"| {a} | {b} | {c} | {n} |" for (a, b, c), n in sorted(cnt.items())]
        L += ["", "| case | solver | kkt | stationarity | feasibility | complementarity | gap vs fast |",
              "|---|---|---|---|---|---|---|"]
        for r in cvx[:40]:
            k = r["kkt_cvx"]
            L.append(f"| {r['id']} | {r['solver']} | {_e(k['kkt'])} | {_e(k['stationarity'])} | "
                     f"{_e(k['primal_feasibility'])} | {_e(k['complementarity'])} | {_e(r['fast_excess'])} |")
        if len(cvx) > 40:
            L.append(f"| ... {len(cvx) - 40} more in verification.json | | | | | | |")
    else:
        L += ["None."]
    return L + [""]


def _kkt_per_case(recs: list[dict], order: list[str]) -> list[str]:
    """One row per instance: the fast result's KKT residuals and each CVXPY solution's kkt
    (``!`` marks a flag), folded in a details block."""
    by: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        by[r["id"]].append(r)
    rank = {s: i for i, s in enumerate(order)}
    ids = sorted(by, key=lambda i: (rank.get(by[i][0]["subproblem"], len(rank)), by[i][0]["seed"]))
    L = ["## KKT residuals per case", "",
         f"<details><summary>{len(ids)} instances: fast converged, fast KKT residuals (stationarity / "
         "feasibility / complementarity), each CVXPY solution's kkt; `!` marks solved but wrong</summary>", "",
         "| case | conv | stationarity | feasibility | complementarity | " + " | ".join(SOLVERS) + " |",
         "|---|---|---|---|---|" + "---|" * len(SOLVERS)]
    for i in ids:
        rs = by[i]
        k = rs[0].get("kkt") or {}
        bang = "!" if rs[0].get("solved_but_wrong") else ""
        conv = {True: "yes", False: "no", None: "-"}[rs[0].get("fast_converged")]
        cells = []
        for sv in SOLVERS:
            c = [r for r in rs if r["solver"] == sv]
            cells.append("-" if not c or not c[0].get("kkt_cvx") else
                         _e(c[0]["kkt_cvx"]["kkt"]) + ("!" if c[0].get("cvx_solved_but_wrong") else ""))
        L.append(f"| {i} | {conv} | {_e(k.get('stationarity'))}{bang} | {_e(k.get('primal_feasibility'))} | "
                 f"{_e(k.get('complementarity'))} | " + " | ".join(cells) + " |")
    return L + ["", "</details>", ""]
