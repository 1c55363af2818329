"""Exceptions and warnings raised by cvx_fenchel.

Every error names what was wrong (the argument, the expected shape or range,
the CVXPY status) so that bad input never turns into a silent wrong answer or
a stack trace from deep inside a solver.
"""

from __future__ import annotations


class CvxFenchelError(Exception):
    """Base class of every error raised on purpose by cvx_fenchel."""


class InputError(CvxFenchelError, ValueError):
    """An argument has the wrong shape, dtype, value range, or holds NaN/inf."""


class UnknownNameError(InputError, KeyError):
    """An unknown activation, loss, layer, backend, model or solver name.

    Subclasses :class:`KeyError` too, but prints its message like a ValueError.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SolverError(CvxFenchelError, RuntimeError):
    """A solver did not return an optimal solution (for CVXPY: status not 'optimal')."""

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.status = status


class BackendError(CvxFenchelError, RuntimeError):
    """The requested array backend (for example CuPy) is not available."""


class DatasetError(CvxFenchelError, OSError):
    """A data file is missing, truncated or fails its checksum."""


class ConvergenceWarning(UserWarning):
    """An iterative fast-path solver stopped at its iteration cap before its tolerance."""
