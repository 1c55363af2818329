r"""MNIST-scale instances at the original code's settings, for speed comparisons.

500 samples of the shipped MNIST subset (pixels in [0, 1]); a 784-300-10 network with ReLU and
softmax cross-entropy, Xavier weights and biases 0.1 as the original code initialises them:

* **X-last-ce**: :math:`\min_{Z \ge 0} 10\,\mathrm{CE}(Y, Z W_1 + b_1) + \sum B(Z, X W_0 + b_0)`
  (``Z``: 500 x 300 = 150,000 variables; lam = 1, coef = ``lbd_coef`` = 10);
* **W-hidden**: :math:`\min_{W, b} \sum B(X_1, X W + b) + 10\,\|(W, b) - (W_0, b_0)\|^2`
  (784 x 300 + 300 = 235,500 variables; lam = 1, rho = 0, gamma = 10), with
  ``X_1 = relu(X W_0 + b_0 + 0.3 N)`` (a perturbed feed-forward value).

:data:`SPEED_CASES` maps a kind's id to its builder (``SubproblemKind.speed_case``); the
verification's speed rows iterate the kinds that have one.
"""

from __future__ import annotations

import numpy as np

from ..maps import Dense
from .wsteps import WHidden
from .xsteps import XLast

__all__ = ["ORIGINAL", "SPEED_CASES", "mnist_data", "mnist_x_last", "mnist_w_hidden"]

#: The original code's network: activation and loss.
ORIGINAL = {"activation": "relu", "loss": "cross_entropy"}


def mnist_data(seed: int = 0, m: int = 500, hidden: int = 300) -> dict:
    """``X`` (m, 784), one-hot ``Y``, Xavier ``(W0, b0)``, ``(W1, b1)`` and a description ``info``."""
    from ..datasets import load_mnist
    Xtr, ytr, _, _ = load_mnist(normalize=True, flatten=True)
    rng = np.random.default_rng(seed)
    idx = rng.choice(Xtr.shape[0], m, replace=False)
    X = np.ascontiguousarray(Xtr[idx], dtype=np.float64)
    Y = np.eye(10)[ytr[idx]]
    W0, b0 = Dense(X.shape[1], hidden).init_weights(rng, "xavier")
    W1, b1 = Dense(hidden, 10).init_weights(rng, "xavier")
    info = {"samples": m, "inputs": X.shape[1], "hidden": hidden, "classes": 10,
            "data": "cvx_fenchel.datasets.load_mnist() subset, 500 random training images, pixels / 255",
            "init": "Xavier (Glorot uniform) weights, biases 0.1", **ORIGINAL}
    return {"X": X, "Y": Y, "W0": W0, "b0": b0, "W1": W1, "b1": b1, "rng": rng, "info": info}


def mnist_x_last(seed: int = 0, m: int = 500, hidden: int = 300):
    """``(XLast, settings)``: lam = 1, coef = 10, from the feed-forward pre-activation."""
    d = mnist_data(seed, m, hidden)
    U0 = d["X"] @ d["W0"] + d["b0"]
    sub = XLast(d["Y"], U0, d["W1"], d["b1"], ORIGINAL["activation"], loss=ORIGINAL["loss"], lam_prev=1.0,
                coef=10.0)
    return sub, {"lam": 1.0, "coef (lbd_coef)": 10.0, **d["info"]}


def mnist_w_hidden(seed: int = 0, m: int = 500, hidden: int = 300):
    """``(WHidden, settings)``: lam = 1, rho = 0, gamma = 10, target a perturbed feed-forward value."""
    d = mnist_data(seed, m, hidden)
    U0 = d["X"] @ d["W0"] + d["b0"]
    mnist_rng = d["rng"]
    X1 = np.maximum(U0 + 0.3 * mnist_rng.standard_normal(U0.shape), 0.0)
    sub = WHidden(d["X"], X1, ORIGINAL["activation"], lam=1.0, rho=0.0, gamma=10.0, W0=d["W0"], b0=d["b0"])
    return sub, {"lam": 1.0, "rho": 0.0, "gamma": 10.0, **d["info"]}


#: Kind id -> builder ``(seed, m, hidden) -> (problem, settings)`` of its MNIST-scale instance.
SPEED_CASES = {"X-last-ce": mnist_x_last, "W-hidden": mnist_w_hidden}
