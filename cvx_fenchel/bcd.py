r"""One block-coordinate-descent pass of Algorithms 1 and 2 (Gu et al., 2020), as functions.

The objective of a batch ``(X_0, Y)`` is the relaxed objective ``J(W, X)`` of
:mod:`cvx_fenchel.network`:

.. math::

    J = \mathcal L(Y, A_L(X_L; W_L) + b_L) + \sum_{l<L} \lambda_l \sum B_l(X_{l+1}, A_l(X_l; W_l) + b_l)
        + \sum_l \rho_l\|(W_l, b_l)\|^2 + \gamma_l \|(W_l, b_l) - (W_l^0, b_l^0)\|^2 .

One *sweep* runs

1. the X-steps from the last hidden layer back to the first (:func:`x_step`): ``X_L`` by
   :class:`~cvx_fenchel.subproblems.XLast` (``coef_L * Loss + lam_{L-1} B_{L-1}``), then
   ``X_l`` for ``l = L-1, ..., 1`` by :class:`~cvx_fenchel.subproblems.XHidden`
   (``coef_l lam_l B_l + lam_{l-1} B_{l-1}``);
2. the W-steps for every layer, ``l = L, ..., 0`` (:func:`w_step`):
   :class:`~cvx_fenchel.subproblems.WLast` (``Loss``, ``coef = 1``) and
   :class:`~cvx_fenchel.subproblems.WHidden` (``lam_l B_l``), each with its ``rho_l``,
   ``gamma_l`` and proximal centre ``W^0``

(``w_first`` swaps the two halves); :func:`bcd_pass` runs ``K`` sweeps on one batch. With every
``coef = 1`` each step minimises ``J`` over its block, so exact steps never increase ``J``;
``coef != 1`` (the original code's ``lbd_coef``) reweights the X-steps only.

W-steps either solve their subproblem by its fast path (``w_step="solve"``, warm-started at the
current weights; the :class:`~cvx_fenchel.solvers.FastResult` names the strategy that ran:
closed-form, sample-space, gram or fista) or take one step along the subproblem's gradient
``problem.grad(W, b)`` (``w_step="gradient"``): ``x - lr g`` (``optimizer="sgd"``) or Adam
(:func:`adam_step`, the paper's CIFAR-10 setting).

These functions never modify their array arguments: they return new lists (and the solvers new
arrays), so a caller (the loop in :mod:`cvx_fenchel.trainer`) owns the state.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import subproblems as sub
from .backend import check_finite, check_int, check_scalar, get_namespace, to_numpy
from .config import TrainConfig
from .errors import InputError
from .network import Network
from .solvers import read

__all__ = ["TrainState", "AdamMoments", "PassResult", "WStepOutcome", "adam_step", "x_problem",
           "w_problem", "x_step", "w_step", "w_update", "w_steps_serial", "bcd_pass", "batch_record",
           "feed_forward", "predict_lifted", "lower_bound", "lower_bound_curve"]


# --------------------------------------------------------------------------------------------
# state

@dataclass(frozen=True)
class AdamMoments:
    """Adam state of one layer's ``(W, b)``: step count ``t`` and the moment pairs ``m``, ``v``."""

    t: int
    m: tuple
    v: tuple


@dataclass
class TrainState:
    """Everything a training run needs to continue exactly where it stopped.

    ``weights``: ``[(W_l, b_l)]``; ``Xs``: lifted variables ``[X_0, ..., X_L]`` of the current
    batch (Algorithm 1 keeps them across sweeps); ``Y``: its targets; ``W0``: proximal centres
    (weights at the start of the batch or sweep); ``epoch``, ``batch``: position of the next
    batch; ``rng_state``: the bit-generator state of the run's ``numpy.random.Generator``;
    ``adam``: per-layer :class:`AdamMoments` (``w_step="gradient"`` with Adam).
    """

    weights: list
    Xs: list | None = None
    Y: Any = None
    W0: list | None = None
    epoch: int = 0
    batch: int = 0
    rng_state: dict | None = None
    adam: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PassResult:
    """What :func:`bcd_pass` returns: the new ``weights``, ``Xs`` and ``adam`` moments, and
    ``stats`` (``time_x``, ``time_w`` seconds, ``n_capped`` steps stopped by their iteration cap,
    ``w_methods``: per layer, the W-step strategy of the last sweep; ``steps``: one record per
    step with its seconds and inner iterations, see :func:`bcd_pass`)."""

    weights: list
    Xs: list
    adam: dict
    stats: dict


# --------------------------------------------------------------------------------------------
# Adam

def adam_step(x: tuple, g: tuple, moments: AdamMoments | None, *, lr: float, beta1: float = 0.9,
              beta2: float = 0.999, eps: float = 1e-8) -> tuple[tuple, AdamMoments]:
    r"""One Adam step (Kingma and Ba, 2015) on the arrays ``x`` with gradients ``g``:
    :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`, :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`,
    :math:`x \leftarrow x - \mathrm{lr}\, \hat m / (\sqrt{\hat v} + \epsilon)` with
    :math:`\hat m = m / (1-\beta_1^t)`, :math:`\hat v = v / (1-\beta_2^t)`. ``moments=None``
    starts at ``t = 0`` and zero moments. Returns ``(new x, new moments)``."""
    xp, _ = get_namespace(*x)
    if moments is None:
        moments = AdamMoments(0, tuple(xp.zeros_like(a) for a in x), tuple(xp.zeros_like(a) for a in x))
    t = moments.t + 1
    m = tuple(beta1 * mi + (1 - beta1) * d for mi, d in zip(moments.m, g))
    v = tuple(beta2 * vi + (1 - beta2) * d * d for vi, d in zip(moments.v, g))
    new = tuple(a - lr * (mi / (1 - beta1 ** t)) / (xp.sqrt(vi / (1 - beta2 ** t)) + eps)
                for a, mi, vi in zip(x, m, v))
    return new, AdamMoments(t, m, v)


# --------------------------------------------------------------------------------------------
# the subproblems of one state

def feed_forward(network: Network, weights: Sequence, X0: Any, Y: Any, xp: Any) -> tuple[list, Any]:
    """``([X_0, ..., X_L], Y)`` of a batch at the feed-forward point (inputs checked)."""
    X0 = network.check_input(X0, "X", xp=xp, finite=False)
    Y = xp.asarray(Y, dtype=network.dtype)
    if Y.shape != (X0.shape[0], network.n_outputs):
        raise InputError(f"Y must have shape ({X0.shape[0]}, {network.n_outputs}), got {tuple(Y.shape)}")
    # the batch's values once (the steps of bcd_pass then skip their own checks): X and Y finite
    # in one host read, then the loss's targets
    check_finite({"X": X0, "Y": Y})
    network.loss_fn.check_targets(Y, "Y")
    Xs, _ = network.forward(X0, weights, return_all=True)
    return Xs, Y


def _layer_index(l: Any, low: int, high: int, what: str) -> int:
    if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not low <= l <= high:
        raise InputError(f"{what} index must be in {low}..{high}, got {l!r}")
    return int(l)


def x_problem(network: Network, weights: Sequence, Xs: Sequence, Y: Any, l: int,
              coef: float | None = None):
    """The X-step subproblem of ``X_l`` (``1 <= l <= L``); ``coef`` replaces the layer's."""
    L = network.L
    l = _layer_index(l, 1, L, "x_step")
    prev, layer = network.layers[l - 1], network.layers[l]
    U_prev = network.pre_activation(l - 1, Xs[l - 1], weights)
    W, b = weights[l]
    c = layer.coef if coef is None else coef
    if l == L:
        return sub.XLast(Y, U_prev, W, b, prev.activation, loss=network.loss, lam_prev=prev.lam,
                         coef=c, linear_map=layer.linear_map)
    return sub.XHidden(Xs[l + 1], U_prev, W, b, layer.activation, prev.activation, lam=layer.lam,
                       lam_prev=prev.lam, coef=c, linear_map=layer.linear_map)


def w_problem(network: Network, Xs: Sequence, Y: Any, W0: Sequence | None, l: int):
    """The W-step subproblem of layer ``l`` (``0 <= l <= L``), proximal centre ``W0[l]``."""
    l = _layer_index(l, 0, network.L, "w_step")
    layer = network.layers[l]
    c0, d0 = W0[l] if W0 is not None else (None, None)
    if l == network.L:
        return sub.WLast(Xs[l], Y, loss=network.loss, coef=1.0, rho=layer.rho, gamma=layer.gamma,
                         W0=c0, b0=d0, linear_map=layer.linear_map)
    return sub.WHidden(Xs[l], Xs[l + 1], layer.activation, lam=layer.lam, rho=layer.rho,
                       gamma=layer.gamma, W0=c0, b0=d0, linear_map=layer.linear_map)


def x_step(network: Network, config: TrainConfig, weights: Sequence, Xs: Sequence, Y: Any, l: int):
    """Solve the ``X_l`` step warm-started at ``Xs[l]``; returns ``(new Xs, FastResult)``."""
    res = x_problem(network, weights, Xs, Y, l).solve_fast(
        Xs[l], tol=config.tol_x, max_iter=config.max_iter_x, warn=False)
    new = list(Xs)
    new[l] = res.x
    return new, res


class WStepOutcome(tuple):
    """What :func:`w_step` returns: the 4-tuple ``(weights, adam, method, converged)`` (so it
    unpacks as before), with the inner iteration count as the attribute ``n_iter`` (0 for
    gradient steps and closed forms)."""

    n_iter: int

    def __new__(cls, weights: list, adam: dict, method: str, converged: bool, n_iter: int = 0):
        out = super().__new__(cls, (weights, adam, method, converged))
        out.n_iter = int(n_iter)
        return out


def w_step(network: Network, config: TrainConfig, weights: Sequence, Xs: Sequence, Y: Any,
           W0: Sequence | None, l: int, adam: dict | None = None) -> WStepOutcome:
    """Update ``(W_l, b_l)``: solve the subproblem (``w_step="solve"``) or one sgd/Adam step along
    ``problem.grad`` (``"gradient"``). Returns ``(new weights, new adam dict, method, converged)``
    with ``method`` the strategy that ran (``"sgd"``/``"adam"`` for gradient steps), as a
    :class:`WStepOutcome` (``.n_iter``: inner iterations)."""
    return w_update(w_problem(network, Xs, Y, W0, l), config, weights, l, adam)


def w_update(prob: Any, config: TrainConfig, weights: Sequence, l: int, adam: dict | None = None) -> WStepOutcome:
    """:func:`w_step` given the layer's W-step subproblem ``prob`` (a
    :class:`~cvx_fenchel.subproblems.WStep`, or a data-parallel twin of one that sums its data
    terms over shards, :mod:`cvx_fenchel.dataparallel`)."""
    new = list(weights)
    adam = dict(adam or {})
    if config.w_step == "solve":
        res = prob.solve_fast(weights[l], tol=config.tol_w, max_iter=config.max_iter_w, warn=False)
        new[l] = (res.x[0], res.x[1])
        return WStepOutcome(new, adam, getattr(res, "method", "") or "solve", bool(res.converged),
                            res.n_iter)
    g = prob.grad(weights[l])
    if config.optimizer == "adam":
        new[l], adam[l] = adam_step(tuple(weights[l]), tuple(g), adam.get(l), lr=config.lr_of(l))
    else:
        W, b = weights[l]
        lr = config.lr_of(l)
        new[l] = (W - lr * g[0], b - lr * g[1])
    return WStepOutcome(new, adam, config.optimizer, True, 1)


def _cap(config_cap: int | None, problem_cls: Any) -> int | None:
    """The iteration cap a step ran under: the config's, else the problem class's default."""
    return config_cap if config_cap is not None else getattr(problem_cls, "default_max_iter", None)


def w_steps_serial(network: Network, config: TrainConfig, weights: Sequence, Xs: Sequence, Y: Any,
                   W0: Sequence | None, adam: dict | None = None, *, step: Any = None) -> tuple:
    """The W-steps of every layer, ``l = L, ..., 0``, one after the other (``step``: a function
    with the signature of :func:`w_step`, the default). Returns ``(weights, adam, outcomes)`` with
    ``outcomes`` a list of ``(l, WStepOutcome, seconds)`` in the order run. Given the ``X`` the
    layers' W-steps are independent (each reads ``weights[l]`` and ``adam[l]`` only), which
    :func:`cvx_fenchel.dataparallel.w_steps_concurrent` uses."""
    step = w_step if step is None else step
    weights, adam, outcomes = list(weights), dict(adam or {}), []
    for l in range(network.L, -1, -1):
        t1 = time.perf_counter()
        out = step(network, config, weights, Xs, Y, W0, l, adam)
        weights, adam = out[0], out[1]
        outcomes.append((l, out, time.perf_counter() - t1))
    return weights, adam, outcomes


def bcd_pass(network: Network, config: TrainConfig, weights: Sequence, Xs: Sequence, Y: Any,
             W0: Sequence | None, adam: dict | None = None, *, x_step_fn: Any = None,
             w_steps_fn: Any = None) -> PassResult:
    """``config.K`` sweeps (X-steps ``X_L..X_1`` then W-steps ``W_L..W_0``, or the reverse with
    ``w_first``) on one batch: ``Xs = [X_0, ..., X_L]`` (``X_0`` the data), targets ``Y``,
    proximal centres ``W0``. The arguments are not modified; see :class:`PassResult`.

    ``stats["steps"]`` holds one record per step in the order run: ``block`` (``"X2"``,
    ``"W0"``, ...), ``kind`` (``"x"``/``"w"``), ``layer``, ``seconds``, ``n_iter`` (inner
    iterations; None if the solver does not say), ``max_iter`` (the cap it ran under),
    ``converged``, ``method`` (W-steps).

    ``x_step_fn`` (signature of :func:`x_step`) and ``w_steps_fn`` (signature of
    :func:`w_steps_serial`, the default) replace how the steps run, not what they compute: the
    data-parallel and layer-parallel versions of :mod:`cvx_fenchel.dataparallel` (whose ``Xs``
    may then be handles to row blocks held elsewhere)."""
    x_step_fn = x_step if x_step_fn is None else x_step_fn
    w_steps_fn = w_steps_serial if w_steps_fn is None else w_steps_fn
    weights, Xs, adam = list(weights), list(Xs), dict(adam or {})
    stats = {"time_x": 0.0, "time_w": 0.0, "n_capped": 0, "w_methods": [""] * len(network.layers),
             "steps": []}
    caps = {"x": (config.max_iter_x, {network.L: sub.XLast}), "w": (config.max_iter_w, {
        network.L: sub.WLast})}

    def record(kind: str, l: int, seconds: float, n_iter: Any, converged: bool, method: str = "") -> None:
        cap, last = caps[kind]
        default = last.get(l, sub.XHidden if kind == "x" else sub.WHidden)
        stats["steps"].append({"block": f"{kind.upper()}{l}", "kind": kind, "layer": l,
                               "seconds": seconds, "n_iter": None if n_iter is None else int(n_iter),
                               "max_iter": _cap(cap, default), "converged": bool(converged),
                               **({"method": method} if kind == "w" else {})})

    def xs():
        nonlocal Xs
        t0 = time.perf_counter()
        for l in range(network.L, 0, -1):
            t1 = time.perf_counter()
            Xs, res = x_step_fn(network, config, weights, Xs, Y, l)
            record("x", l, time.perf_counter() - t1, getattr(res, "n_iter", None), res.converged)
            stats["n_capped"] += 0 if res.converged else 1
        stats["time_x"] += time.perf_counter() - t0

    def ws():
        nonlocal weights, adam
        t0 = time.perf_counter()
        weights, adam, outcomes = w_steps_fn(network, config, weights, Xs, Y, W0, adam)
        for l, out, seconds in outcomes:
            _, _, method, conv = out
            record("w", l, seconds, getattr(out, "n_iter", None), conv, method)
            stats["w_methods"][l] = method
            stats["n_capped"] += 0 if conv else 1
        stats["time_w"] += time.perf_counter() - t0

    with sub.trusted_inputs():  # every array below was checked by feed_forward or made by a step
        for _ in range(config.K):
            for half in ((ws, xs) if config.w_first else (xs, ws)):
                half()
    return PassResult(weights, Xs, adam, stats)


def batch_record(network: Network, weights: Sequence, Xs: Sequence, Y: Any, W0: Sequence | None,
                 y: Any = None, before: Any = None) -> dict:
    """``relaxed_objective`` ``J(W, X)`` (proximal terms relative to ``W0``), ``network_loss``
    ``p(W)`` and, with labels ``y``, ``batch_accuracy_after``: the accuracy on the batch the
    weights were just fitted to (optimistic: not an estimate of the training-set accuracy, which
    the trainer records per epoch); ``before`` (a 0-d array: the accuracy before the update) is
    read with the rest as ``batch_accuracy_before``. Raises FloatingPointError when ``J`` is not finite (lower
    ``lam``/``coef`` or raise ``gamma``)."""
    xp, _ = get_namespace(Xs[0])
    J = network.relaxed_objective(Xs, Y, weights, W0, array=True)
    O = network.forward(Xs[0], weights)
    acc = xp.mean((xp.argmax(O, axis=1) == y).astype(xp.float64)) if y is not None else 0.0
    J, loss, acc, acc0 = read(J, network.loss_fn.value(Y, O, array=True), acc,
                              0.0 if before is None else before)  # one host read
    rec = {"relaxed_objective": J, "network_loss": loss}
    if before is not None:
        rec["batch_accuracy_before"] = acc0
    if y is not None:
        rec["batch_accuracy_after"] = acc
    if not math.isfinite(J):
        raise FloatingPointError(f"relaxed objective became {J}; lower lam/coef or raise gamma")
    return rec


# --------------------------------------------------------------------------------------------
# lifted prediction and the lower-bound certificate

def predict_lifted(network: Network, weights: Sequence, X0: Any, *, n_sweeps: int = 10,
                   tol: float | None = 1e-8, max_iter: int | None = 2000,
                   return_objective: bool = False) -> Any:
    r"""Lifted prediction rule (eq. 12 of the paper): minimise the relaxed objective of a test
    batch over the hidden ``X`` and the label ``y``, weights fixed,

    .. math::
        \hat y = \arg\min_{y, X}\; \mathcal L(y, A_L(X_L) + b_L) + \sum_{l<L} \lambda_l B_l(X_{l+1}, A_l(X_l) + b_l).

    * ``mse``: the minimum over ``y`` is ``y = O`` (loss 0) and then ``X`` = feed-forward values
      make every ``B_l`` vanish, so the lifted rule *is* the feed-forward rule (returned directly).
    * ``cross_entropy``: for fixed ``O`` the minimum over ``y`` in the simplex is at a vertex
      ``e_k``, so ``min_{y,X} = min_k min_X J_k(X)`` with ``Y = e_k``. For each class ``k`` the
      ``X`` are minimised by BCD over the X-steps (``coef = 1``; ``n_sweeps`` sweeps from the
      feed-forward point; one sweep is exact for one hidden layer) and the per-sample values
      ``J_k`` compared: ``y_hat = argmin_k J_k``. Costs ``n_classes`` X-minimisations.

    Returns the labels ``(m,)`` (NumPy int64), and with ``return_objective`` also the
    ``(m, n_classes)`` array of ``J_k`` per sample (cross-entropy only; None for mse).
    """
    xp, _ = get_namespace(weights[0][0])
    sweeps = 1 if network.L == 1 else check_int(n_sweeps, "n_sweeps", 1)
    X0 = network.check_input(X0, "X", xp=xp)
    Xs, O = network.forward(X0, weights, return_all=True)
    if network.loss == "mse":
        pred = to_numpy(xp.argmax(O, axis=1)).astype(np.int64)
        return (pred, None) if return_objective else pred
    m, k = O.shape
    values = xp.empty((m, k), dtype=O.dtype)
    for c in range(k):
        Y = xp.zeros((m, k), dtype=O.dtype)
        Y[:, c] = 1
        Z = list(Xs)
        for _ in range(sweeps):
            for l in range(network.L, 0, -1):
                Z[l] = x_problem(network, weights, Z, Y, l, coef=1.0).solve_fast(
                    Z[l], tol=tol, max_iter=max_iter, warn=False).x
        values[:, c] = network.relaxed_objective_per_sample(Z, Y, weights)
    pred = to_numpy(xp.argmin(values, axis=1)).astype(np.int64)
    return (pred, to_numpy(values)) if return_objective else pred


def lower_bound(network: Network, weights: Sequence, X0: Any, Y: Any, lam: float | None = None, *,
                method: str = "fast", solver: str = "auto", tol: float | None = None,
                max_iter: int | None = None):
    r"""Certificate ``G_W(lam) <= p(W)`` at the current weights, one hidden layer (``L = 1``):

    .. math::
        G_W(\lambda) = \min_{X_1 \in \mathrm{dom} F_0} \mathcal L(Y, A_1(X_1; W_1) + b_1)
            + \lambda \sum B_0(X_1, A_0(X_0; W_0) + b_0) \;\le\; p(W) = \mathcal L(Y, f_W(X_0)),

    computed by :func:`cvx_fenchel.subproblems.lower_bound` on the network's maps, warm-started
    at the feed-forward ``X_1`` (so the value found never exceeds ``p``), or by CVXPY
    (``method="cvxpy"``, small instances). ``lam`` defaults to the network's ``lam_0``.
    Returns the :class:`~cvx_fenchel.subproblems.LowerBound` (``G, p, gap, lam, method,
    converged, X1``).
    """
    if network.L != 1:
        raise InputError(f"the lower-bound certificate is for one hidden layer; this network has "
                         f"{network.L} hidden lifted layers")
    xp, _ = get_namespace(weights[0][0])
    X0 = network.check_input(X0, "X", xp=xp)
    Y = xp.asarray(Y, dtype=network.dtype)
    hidden, out = network.layers
    lam = hidden.lam if lam is None else check_scalar(lam, "lam")
    (W0, b0), (W1, b1) = weights
    x0 = hidden.activation.forward(network.pre_activation(0, X0, weights))
    return sub.lower_bound(X0, Y, W0, b0, W1, b1, hidden.activation, lam=lam, loss=network.loss,
                           maps=(hidden.linear_map, out.linear_map), x0=x0, method=method,
                           solver=solver, tol=tol, max_iter=max_iter)


def lower_bound_curve(network: Network, weights: Sequence, X0: Any, Y: Any, lams: Sequence[float],
                      **kwargs: Any) -> list:
    """:func:`lower_bound` over a grid of ``lam`` values (``G_W`` is nondecreasing in ``lam``
    because ``B >= 0``, and tends to ``p(W)``)."""
    return [lower_bound(network, weights, X0, Y, lam, **kwargs) for lam in lams]
