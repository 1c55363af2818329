"""Solving CVXPY declarations: solver settings and status checks shared by every subproblem.

``solve(problem, solver)`` runs one of the conic solvers the verification
suite compares (ECOS, SCS, Clarabel) with tight tolerances and raises
:class:`~cvx_fenchel.errors.SolverError` when the status is anything but
``optimal``: a CVXPY twin never hands back an unverified number.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import cvxpy as cp

from .errors import SolverError, UnknownNameError

SOLVERS = ("ECOS", "SCS", "CLARABEL")



def _ecos(tol):
    return dict(abstol=tol, reltol=tol, feastol=tol, max_iters=500)


def _clarabel(tol):
    return dict(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, max_iter=500)


#: Tolerance ladders, tightest first. Solver defaults stop at about 1e-8 relative gap, which
#: leaves minimisers of flat (quadratic) problems only 1e-4 accurate; the tightest settings
#: sometimes end 'optimal_inaccurate' (ECOS on exponential cones, Clarabel below 1e-11).
#: :func:`solve` walks down the ladder and returns the tightest solve certified 'optimal'.
LADDERS = {
    "ECOS": [_ecos(1e-12), _ecos(1e-10), _ecos(1e-9), _ecos(1e-8)],
    "CLARABEL": [_clarabel(1e-11), _clarabel(1e-10), _clarabel(1e-9), _clarabel(1e-8)],
    "SCS": [dict(eps_abs=1e-9, eps_rel=1e-9, max_iters=200_000)],
}
TIGHT = {k: v[0] for k, v in LADDERS.items()}


@dataclass
class CvxpyResult:
    """Outcome of a CVXPY solve: optimal value, solver, status, wall time (seconds) and what the
    solver's native code printed (``messages``; e.g. SCS's residual warnings), captured instead of
    leaking into the terminal."""

    objective: float
    solver: str
    status: str
    seconds: float
    messages: str = ""


@contextmanager
def captured_native_output():
    """Capture what C extensions print to the process's stdout/stderr (file descriptors 1 and 2),
    which Python's ``sys.stdout`` redirection cannot see. Yields a list that holds the captured
    text (one string) after the block."""
    out: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):
            pass
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no real file descriptors (embedded interpreters): nothing to capture
        yield out
        return
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield out
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace").strip())


def installed_solvers() -> list[str]:
    """The solvers of :data:`SOLVERS` that this CVXPY installation has."""
    have = set(cp.installed_solvers())
    return [s for s in SOLVERS if s in have]


def supports_exp_cone(solver: str) -> bool:
    """ECOS, SCS and Clarabel all handle the exponential cone (entr, logistic, log_sum_exp)."""
    return solver in SOLVERS


#: The order ``solver="auto"`` tries (each with its tolerance ladder).
AUTO_ORDER = ("CLARABEL", "ECOS", "SCS")


def _solve_auto(problem: cp.Problem, *, settings: dict | None, accept_inaccurate: bool,
                name: str) -> CvxpyResult:
    """Clarabel, then ECOS, then SCS (each with its ladder): the first that ends ``optimal``.
    The result names the solver that succeeded and, in ``messages``, the ones that did not."""
    tried = []
    for key in AUTO_ORDER:
        if key not in cp.installed_solvers():
            continue
        try:
            res = solve(problem, key, settings=None if settings is None else settings.get(key),
                        accept_inaccurate=accept_inaccurate, name=name)
        except SolverError as exc:
            tried.append(f"{key}: {exc.status}")
            continue
        if tried:
            res.messages = "\n".join([f"solver='auto': {'; '.join(tried)}; then {key} optimal"]
                                     + ([res.messages] if res.messages else []))
        return res
    raise SolverError(f"{name}: no CVXPY solver reached status 'optimal' (tried {'; '.join(tried)})",
                      status="all_failed")


def solve(problem: cp.Problem, solver: str = "CLARABEL", *, settings: dict | None = None,
          accept_inaccurate: bool = False, name: str = "problem") -> CvxpyResult:
    """Solve ``problem`` with ``solver`` and check the status.

    ``solver="auto"`` tries Clarabel, ECOS and SCS in turn (:data:`AUTO_ORDER`) and returns the
    first optimal solve (``CvxpyResult.solver`` says which; ``settings`` is then a dict per
    solver name); only when none succeeds is it an error, listing each solver's status.

    Raises
    ------
    UnknownNameError
        ``solver`` is not one of ECOS, SCS, CLARABEL, auto (or not installed).
    SolverError
        Status other than ``optimal`` (``optimal_inaccurate`` too, unless
        ``accept_inaccurate``), or the solver itself failed.
    """
    if str(solver).lower() == "auto":
        return _solve_auto(problem, settings=settings, accept_inaccurate=accept_inaccurate, name=name)
    key = str(solver).upper()
    if key not in SOLVERS:
        raise UnknownNameError(f"unknown CVXPY solver {solver!r}; choose one of {SOLVERS} or 'auto'")
    if key not in cp.installed_solvers():
        raise UnknownNameError(f"CVXPY solver {key} is not installed (pip install {key.lower()})")
    if not problem.is_dcp():
        raise SolverError(f"{name}: the CVXPY declaration is not DCP", status="not_dcp")
    ladder = LADDERS[key] if settings is None else [dict(settings)]
    ok = {cp.OPTIMAL} | ({cp.OPTIMAL_INACCURATE} if accept_inaccurate else set())
    t0 = time.perf_counter()
    status, error = None, None
    messages: list[str] = []
    for kwargs in ladder:
        try:
            with warnings.catch_warnings(), captured_native_output() as printed:
                # the status is checked below, not left to a warning
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                problem.solve(solver=key, **kwargs)
        except cp.error.SolverError as exc:
            status, error = "solver_error", str(exc)
            continue
        finally:
            messages += [m for m in printed if m]
        status = problem.status
        if status in ok:
            return CvxpyResult(float(problem.value), key, status, time.perf_counter() - t0,
                               "\n".join(messages))
        if status in (cp.INFEASIBLE, cp.UNBOUNDED, cp.INFEASIBLE_INACCURATE, cp.UNBOUNDED_INACCURATE):
            break
    detail = f" ({error})" if status == "solver_error" else ""
    said = f"; {key} printed: {' | '.join(messages)[:300]}" if messages else ""
    raise SolverError(f"{name}: {key} returned status {status!r}, not 'optimal'{detail}{said}", status=status)
