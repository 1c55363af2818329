"""cvx_fenchel: Fenchel lifted networks and lifted neural networks.

Training a feed-forward network is relaxed by Lagrange duality: each
activation ``X_{l+1} = phi(X_l W_l + b_l)`` becomes a Fenchel-Young divergence
penalty ``lambda_l B_l(X_{l+1}, X_l W_l + b_l)``, which is zero exactly on the
network's constraint set and non-negative elsewhere, so the relaxed optimum is
a lower bound of the training problem. Block-coordinate descent then alternates
small convex problems: each declared in CVXPY and solved by a NumPy/CuPy fast
path (see ``cvx_fenchel.subproblems``).

Layers of the package, each importing only those before it:
backend -> activations -> maps -> solvers -> subproblems -> network/trainer
-> baselines -> experiments -> cli.
"""

from .errors import (BackendError, ConvergenceWarning, CvxFenchelError, DatasetError, InputError,
                     SolverError, UnknownNameError)

__version__ = "0.1.0"

__all__ = ["__version__", "BackendError", "ConvergenceWarning", "CvxFenchelError", "DatasetError",
           "InputError", "SolverError", "UnknownNameError"]
