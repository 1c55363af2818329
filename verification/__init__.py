"""Verification harness of cvx_fenchel: fast paths against CVXPY, activation and map identities,
and the MNIST-scale speed comparison.

``python -m verification [--quick] [--seed N] [--backend numpy|cupy] [--out DIR]`` (also
``cvx-fenchel verify ...``) writes ``DIR/verification.json`` and ``DIR/REPORT.md`` and exits
non-zero when any case fails. See :mod:`verification.suite` for what is checked and the
tolerances, :mod:`verification.speed` for the speed row.
"""

from .suite import GAP_TOL, RES_TOL, SOLVERS, run_suite, subproblem_ids

__all__ = ["run_suite", "main", "subproblem_ids", "SOLVERS", "GAP_TOL", "RES_TOL"]


def main(argv=None) -> int:
    """Entry point; see :func:`verification.cli.main`."""
    from .cli import main as _main
    return _main(argv)
