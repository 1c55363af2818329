"""cvx_fenchel: Fenchel lifted networks and lifted neural networks.

Training a feed-forward network is relaxed by Lagrange duality: each
activation ``X_{l+1} = phi(X_l W_l + b_l)`` becomes a Fenchel-Young divergence
penalty ``lambda_l B_l(X_{l+1}, X_l W_l + b_l)``, which is zero exactly on the
network's constraint set and non-negative elsewhere, so the relaxed optimum is
a lower bound of the training problem. Block-coordinate descent then alternates
small convex problems: each declared in CVXPY and solved by a NumPy/CuPy fast
path (see ``cvx_fenchel.subproblems``).

Layers of the package, each importing only those below it (checked by the import
contract in ``pyproject.toml``): errors, backend -> history, machine -> activations,
maps, losses, ridge, solvers, cvx, datasets -> subproblems -> network -> config ->
bcd -> checkpoint -> trainer -> estimator, baselines -> experiments -> reproduce -> cli.

The public names below are imported on first use, so ``import cvx_fenchel`` stays cheap:

>>> from cvx_fenchel import FenchelClassifier, TrainConfig, load_mnist  # doctest: +SKIP
"""

from importlib import import_module

from .errors import (
    BackendError,
    ConvergenceWarning,
    CvxFenchelError,
    DatasetError,
    InputError,
    SolverError,
    UnknownNameError,
)

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported lazily by :func:`__getattr__`).
_LAZY = {
    "FenchelClassifier": "estimator", "TrainConfig": "config", "preset": "config",
    "Network": "network", "Layer": "network", "make_network": "network",
    "BCDTrainer": "trainer", "bcd_pass": "bcd", "predict_lifted": "bcd", "lower_bound": "bcd",
    "load_mnist": "datasets", "load_cifar10": "datasets", "History": "history",
    "get_activation": "activations", "get_loss": "losses", "make_map": "maps",
    "train": "experiments", "CheckpointError": "checkpoint",
}

__all__ = ["__version__", "BackendError", "ConvergenceWarning", "CvxFenchelError",  # noqa: PLE0604
           "DatasetError", "InputError", "SolverError", "UnknownNameError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cvx_fenchel' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
