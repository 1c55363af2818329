r"""Feed-forward networks seen as lifted networks: layer specs, grouping, architectures, relaxed objective.

A network is declared as a list of :class:`Layer` specs, each naming a registered
:mod:`cvx_fenchel.maps` kind and its parameters (``Layer("dense", n_out=300, lam=2.0)``,
``Layer("conv2d", c_out=6, kernel=5)``, ``Layer("avgpool2d", size=2)``, ``Layer("flatten")``).
Weightless maps (pooling, flatten) are grouped into the next weighted map, so that lifted layer
``l`` is

.. math::

    X_l \;\longmapsto\; U_l = A_l(X_l; W_l) + b_l \;\longmapsto\; X_{l+1} = \phi_l(U_l),
    \qquad l = 0, \dots, L,

with ``X_0`` the data, ``A_l`` a :mod:`cvx_fenchel.maps` map (a ``maps.Chain`` of e.g.
``[AvgPool2D, Conv2D]`` when pooling precedes the weighted map) and no activation on the output
layer ``L``: its pre-activation ``O = U_L`` is scored by a loss of :mod:`cvx_fenchel.losses`,
summed over the batch (``mse``: :math:`\tfrac12 \|Y - O\|_F^2`; ``cross_entropy``:
:math:`\sum_i [\operatorname{lse}(O_i) - \langle Y_i, O_i\rangle]`).

Relaxed objective
-----------------
For weights ``W = (W_l, b_l)`` and lifted variables ``X = (X_1, ..., X_L)`` (each in the domain
of ``F_{l-1}``, e.g. ``X_l >= 0`` after a ReLU) the batch objective minimised by block-coordinate
descent is

.. math::

    J(W, X) = \mathcal L(Y, A_L(X_L; W_L) + b_L)
      + \sum_{l<L} \lambda_l \sum B_l(X_{l+1}, A_l(X_l; W_l) + b_l)
      + \sum_{l\le L} \rho_l (\|W_l\|^2 + \|b_l\|^2) + \gamma_l (\|W_l - W_l^0\|^2 + \|b_l - b_l^0\|^2),

``B_l`` the Fenchel-Young divergence of ``phi_l`` (:mod:`cvx_fenchel.activations`). ``W^0`` are
the previous batch's weights (``gamma = 0``: Algorithm 1). At ``X`` = feed-forward values every
``B_l`` vanishes, so ``min_X J <= p(W) + ridge/proximal terms`` where
``p(W) = L(Y, f_W(X_0))`` is the network loss (:meth:`Network.network_loss`).

Per-layer hyper-parameters
--------------------------
Each weighted spec carries ``lam`` (``lambda_l``, weight of its divergence ``B_l``; unused on the
output layer), ``rho`` (ridge), ``gamma`` (proximal weight to the previous batch) and ``coef``
(the original code's ``lbd_coef``: an extra factor on *this* layer's term inside the X-step of its
input ``X_l``, i.e. the X_l step minimises ``coef_l * lam_l * B_l(X_{l+1}, A_l(Z)) +
lam_{l-1} B_{l-1}(Z, U_{l-1})``, or ``coef_L * Loss + ...`` for ``l = L``; it never enters ``J`` or
the W-steps, so ``coef != 1`` makes the X-steps heuristic and BCD need not decrease ``J``).
``None`` takes the model-wide default of :class:`Network`.

**Scaling versus the original code.** Our ``B`` is half the original penalty
``v^2 - 2uv + max(u,0)^2 = 2B`` (ReLU), so the original ``lambda = 1`` on ``2B`` is ``lam = 2``
here; an original X_1-step ``10*CE + 1*(2B)`` is ``coef = 10, lam = 2``. The original last-layer
W-step averages the cross-entropy over the batch (``reduce_mean``) while its X-step sums it; with
our summed loss the same minimiser needs ``gamma_L = gamma_orig * batch_size``
(see the ``original`` preset of :mod:`cvx_fenchel.config`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import maps as _maps
from .activations import Activation, get_activation
from .backend import check_array, check_scalar, get_namespace, resolve_dtype
from .errors import InputError, UnknownNameError
from .losses import Loss, get_loss
from .ridge import Ridge

__all__ = ["Layer", "LiftedLayer", "Network", "dense_layers", "lenet5_layers", "architecture",
           "make_network", "is_lenet5", "HYPER_PARAMETERS"]

#: Per-layer hyper-parameters a weighted :class:`Layer` carries (``None``: the network default).
HYPER_PARAMETERS = ("lam", "rho", "gamma", "coef")
_OUTPUT_ACTIVATIONS = (None, "identity", "linear", "none")
_UNSET = object()


# --------------------------------------------------------------------------------------------
# layer specs

def _freeze(v: Any) -> Any:
    return tuple(_freeze(x) for x in v) if isinstance(v, (list, tuple)) else v


@dataclass(frozen=True, init=False, repr=False)
class Layer:
    """One layer of a network: a registered :mod:`cvx_fenchel.maps` kind, its map parameters,
    and (weighted kinds) the activation and per-layer hyper-parameters.

    ``Layer("dense", n_out=300)`` is ``U = X W + b`` then ReLU; ``Layer("dense", n_out=10,
    activation=None)`` an output layer; ``Layer("conv2d", c_out=6, kernel=5, padding="valid")``
    a convolution (NHWC, stride 1); ``Layer("avgpool2d", size=2)`` and ``Layer("flatten")`` are
    weightless and are grouped into the next weighted layer. Map parameters go to
    :func:`cvx_fenchel.maps.make_map` (checked when the network is built, where the input shape is
    known).

    ``activation``: name of a registered activation (default ``"relu"`` for weighted kinds; a
    weightless kind takes none). ``lam``, ``rho``, ``gamma``, ``coef``: per-layer
    hyper-parameters (module docstring); ``None`` uses the :class:`Network` default. ``init``:
    weight scheme of the map's ``init_weights`` (dense default Xavier/Glorot uniform, conv a
    truncated normal with std 0.1, biases 0.1, as the original code).

    ``to_dict()`` gives the checkpoint form ``{"type": "dense", "n_out": 300, "activation":
    "relu", "lam": ..., ...}``; :meth:`from_dict` (and :class:`Network`) accept it back.
    """

    kind: str
    params: tuple
    activation: str | None
    lam: float | None
    rho: float | None
    gamma: float | None
    coef: float | None
    init: str | None

    def __init__(self, kind: str, *, activation: Any = _UNSET, lam: float | None = None,
                 rho: float | None = None, gamma: float | None = None, coef: float | None = None,
                 init: str | None = None, **params: Any):
        if not isinstance(kind, str):
            raise UnknownNameError(f"layer kind must be a registered map kind ({_maps.map_kinds()}), "
                                   f"got {kind!r}")
        cls = _maps.get_map_class(kind)
        weighted = bool(cls.has_weights)
        if not weighted:
            given = {k: v for k, v in dict(lam=lam, rho=rho, gamma=gamma, coef=coef, init=init).items()
                     if v is not None}
            if activation not in (_UNSET, None) or given:
                bad = (["activation"] if activation not in (_UNSET, None) else []) + sorted(given)
                raise InputError(f"layer kind {cls.name!r} has no weights; {', '.join(bad)} belong(s) "
                                 "to the weighted layer after it")
            activation = None
        elif activation is _UNSET:
            activation = "relu"
        for name, v in (("lam", lam), ("rho", rho), ("gamma", gamma), ("coef", coef)):
            if v is not None:
                check_scalar(v, f"{name} of Layer({cls.name!r})")
        object.__setattr__(self, "kind", cls.name)
        object.__setattr__(self, "params", tuple(sorted((k, _freeze(v)) for k, v in params.items())))
        object.__setattr__(self, "activation", activation)
        for name, v in (("lam", lam), ("rho", rho), ("gamma", gamma), ("coef", coef), ("init", init)):
            object.__setattr__(self, name, v)

    @property
    def has_weights(self) -> bool:
        return bool(_maps.get_map_class(self.kind).has_weights)

    def param(self, name: str, default: Any = None) -> Any:
        """A map parameter (``layer.param("n_out")``)."""
        return dict(self.params).get(name, default)

    def make_map(self, in_shape: tuple[int, ...]) -> _maps.LinearMap:
        """The :mod:`cvx_fenchel.maps` map of this layer on per-sample inputs ``in_shape``."""
        return _maps.make_map(self.kind, in_shape, **dict(self.params))

    def replace(self, **changes: Any) -> "Layer":
        """A copy with some fields (hyper-parameters, activation or map parameters) changed."""
        d = self.to_dict()
        d.pop("type")
        d.update(changes)
        return Layer(self.kind, **d)

    def to_dict(self) -> dict:
        """JSON-safe form ``{"type": kind, **map params, activation, lam, rho, gamma, coef, init}``
        (weightless kinds: ``type`` and map parameters only)."""
        d = {"type": self.kind}
        d.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.params})
        if self.has_weights:
            d.update(activation=self.activation, lam=self.lam, rho=self.rho, gamma=self.gamma,
                     coef=self.coef, init=self.init)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "layer") -> "Layer":
        """Inverse of :meth:`to_dict` (``"type"`` or ``"kind"`` names the map kind)."""
        if not isinstance(d, dict):
            raise InputError(f"{where}: a layer dict must be a dict, got {d!r}")
        d = dict(d)
        kind = d.pop("type", d.pop("kind", None))
        if not isinstance(kind, str):
            raise UnknownNameError(f"{where}: unknown layer type {kind!r}; choose one of "
                                   f"{_maps.map_kinds()}")
        try:
            return cls(kind, **d)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{where}: unknown layer type {kind!r} ({exc})") from None
        except InputError as exc:
            raise InputError(f"{where} ({kind}): {exc}") from None

    def __repr__(self) -> str:
        items = [repr(self.kind)] + [f"{k}={v!r}" for k, v in self.params]
        if self.has_weights:
            if self.activation != "relu":
                items.append(f"activation={self.activation!r}")
            items += [f"{k}={getattr(self, k)!r}" for k in HYPER_PARAMETERS + ("init",)
                      if getattr(self, k) is not None]
        return f"Layer({', '.join(items)})"


def _as_layer(layer: Any, i: int) -> Layer:
    if isinstance(layer, Layer):
        return layer
    if isinstance(layer, dict):
        return Layer.from_dict(layer, f"layer {i}")
    raise InputError(f"layer {i}: expected a Layer or a dict {{'type': kind, ...}}, got {layer!r}")


def _compose(parts: list[_maps.LinearMap]) -> _maps.LinearMap:
    """One map, or a :class:`cvx_fenchel.maps.Chain` of weightless maps then the weighted one."""
    return parts[0] if len(parts) == 1 else _maps.Chain(parts)


# --------------------------------------------------------------------------------------------
# lifted layers and the network

@dataclass
class LiftedLayer:
    """Lifted layer ``l``: ``U_l = A_l(X_l; W_l) + b_l``, ``X_{l+1} = phi_l(U_l)``.

    ``activation`` is None on the output layer. ``specs`` are the :class:`Layer` specs grouped
    into it (weightless ones first, the weighted one last).
    """

    index: int
    linear_map: _maps.LinearMap
    activation: Activation | None
    lam: float
    rho: float
    gamma: float
    coef: float
    specs: tuple = field(default_factory=tuple)
    init: str | None = None

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.linear_map.in_shape)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.linear_map.out_shape)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return tuple(self.linear_map.weight_shape)

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return tuple(self.linear_map.bias_shape)


class Network:
    """A feed-forward network in lifted form (see the module docstring for ``J`` and the scaling).

    Parameters
    ----------
    input_shape : int or tuple
        Per-sample input shape: ``(n,)`` for dense networks, ``(H, W, C)`` for images (NHWC).
    layers : list of :class:`Layer` specs (or their dicts ``{"type": "dense", "n_out": 10, ...}``).
        The last weighted layer is the output layer and must have ``activation=None``;
        weightless layers must be followed by a weighted one.
    loss : name of a registered loss (:func:`cvx_fenchel.losses.get_loss`: "cross_entropy",
        "mse") or a :class:`~cvx_fenchel.losses.Loss`
    lam, rho, gamma, coef : float
        Model-wide defaults of the per-layer hyper-parameters (``lam = 1`` on our ``B`` is the
        original code's ``lambda = 0.5``; see the module docstring).
    dtype : float32 or float64 (weights and all arrays of training)

    Raises
    ------
    InputError, UnknownNameError
        Inconsistent shapes (e.g. a kernel larger than its input, a dense layer after images with
        no flatten), unknown layer types, activations or loss, negative hyper-parameters.
    """

    def __init__(self, input_shape: Any, layers: Sequence[Any], loss: str = "cross_entropy",
                 lam: float = 1.0, rho: float = 0.0, gamma: float = 0.0, coef: float = 1.0,
                 dtype: Any = np.float64):
        if isinstance(input_shape, (int, np.integer)):
            input_shape = (int(input_shape),)
        try:
            input_shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            raise InputError(f"input_shape must be a tuple of positive integers, got {input_shape!r}") from None
        if not input_shape or any(s < 1 for s in input_shape):
            raise InputError(f"input_shape must be a tuple of positive integers, got {input_shape!r}")
        self.loss_fn: Loss = get_loss(loss)
        self.input_shape = input_shape
        self.loss = self.loss_fn.name
        self.lam = check_scalar(lam, "lam")
        self.rho = check_scalar(rho, "rho")
        self.gamma = check_scalar(gamma, "gamma")
        self.coef = check_scalar(coef, "coef")
        self.dtype = resolve_dtype(dtype)
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise InputError(f"layers must be a list of layer specs, got {layers!r}")
        self.specs = tuple(_as_layer(s, i) for i, s in enumerate(layers))
        if not self.specs:
            raise InputError("layers must not be empty")
        self.layers: list[LiftedLayer] = self._build()

    # ---- construction -----------------------------------------------------------------------
    def _build(self) -> list[LiftedLayer]:
        weighted = [i for i, s in enumerate(self.specs) if s.has_weights]
        if not weighted:
            raise InputError("the network has no weighted layer (e.g. dense or conv2d)")
        if weighted[-1] != len(self.specs) - 1:
            raise InputError(f"layer {weighted[-1] + 1}: weightless layers "
                             f"({', '.join(s.kind for s in self.specs[weighted[-1] + 1:])}) "
                             "must be followed by a weighted layer (the output layer has weights)")
        out: list[LiftedLayer] = []
        shape = self.input_shape
        pending: list[_maps.LinearMap] = []
        pending_specs: list[Any] = []
        for i, spec in enumerate(self.specs):
            try:
                m = spec.make_map(shape)
            except InputError as exc:
                raise InputError(f"layer {i} ({spec.kind}) on input shape {shape}: {exc}") from None
            pending.append(m)
            pending_specs.append(spec)
            shape = tuple(m.out_shape)
            if not spec.has_weights:
                continue
            is_out = i == weighted[-1]
            act_name = spec.activation
            if is_out:
                if act_name is not None and str(act_name).lower() not in _OUTPUT_ACTIVATIONS:
                    raise InputError(f"layer {i}: the output layer must be linear (activation=None), "
                                     f"got activation={act_name!r}; the loss "
                                     f"{self.loss!r} acts on its output")
                act = None
            else:
                if act_name is None:
                    raise InputError(f"layer {i}: hidden layers need an activation (e.g. 'relu'); "
                                     "use 'identity' for a linear hidden layer")
                act = get_activation(act_name)
            hp = [getattr(self, k) if getattr(spec, k) is None else float(getattr(spec, k))
                  for k in HYPER_PARAMETERS]  # (Layer checked its own values)
            out.append(LiftedLayer(len(out), _compose(pending), act, *hp, tuple(pending_specs),
                                   spec.init))
            pending, pending_specs = [], []
        if len(out[-1].out_shape) != 1:
            raise InputError(f"the output layer must produce (m, n_outputs) scores, got per-sample "
                             f"shape {out[-1].out_shape}; add Layer('flatten') before the last "
                             "dense layer")
        return out

    @property
    def L(self) -> int:
        """Index of the output layer (number of hidden lifted layers)."""
        return len(self.layers) - 1

    @property
    def n_outputs(self) -> int:
        return int(math.prod(self.layers[-1].out_shape))

    def describe(self) -> list[dict]:
        """One dict per lifted layer: maps, shapes, activation and hyper-parameters."""
        return [{"index": ly.index, "map": repr(ly.linear_map), "in_shape": list(ly.in_shape),
                 "out_shape": list(ly.out_shape),
                 "activation": None if ly.activation is None else ly.activation.name,
                 "lam": ly.lam, "rho": ly.rho, "gamma": ly.gamma, "coef": ly.coef}
                for ly in self.layers]

    def to_dict(self) -> dict:
        """JSON-safe description from which :meth:`from_dict` rebuilds the network."""
        return {"input_shape": list(self.input_shape), "layers": [s.to_dict() for s in self.specs],
                "loss": self.loss, "lam": self.lam, "rho": self.rho, "gamma": self.gamma,
                "coef": self.coef, "dtype": self.dtype.name}

    @classmethod
    def from_dict(cls, d: dict) -> "Network":
        """Inverse of :meth:`to_dict` (also reads the checkpoints of earlier versions)."""
        try:
            return cls(tuple(d["input_shape"]), list(d["layers"]), loss=d["loss"], lam=d["lam"],
                       rho=d["rho"], gamma=d["gamma"], coef=d["coef"], dtype=d.get("dtype", "float64"))
        except (KeyError, TypeError) as exc:
            raise InputError(f"not a network description ({type(exc).__name__}: {exc})") from None

    def __repr__(self) -> str:
        return (f"Network(input_shape={self.input_shape}, lifted layers={len(self.layers)}, "
                f"loss={self.loss!r})")

    # ---- weights ----------------------------------------------------------------------------
    def init_weights(self, seed: Any = 0, xp: Any = np) -> list[tuple[Any, Any]]:
        """Random weights as the original code: Xavier (Glorot uniform) for dense layers,
        truncated normal std 0.1 for conv layers, biases 0.1; drawn layer by layer from
        ``numpy.random.default_rng(seed)`` (or the Generator given), then moved to ``xp``."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        ws = []
        for ly in self.layers:
            W, b = ly.linear_map.init_weights(rng, ly.init, self.dtype)
            ws.append((xp.asarray(W, dtype=self.dtype), xp.asarray(b, dtype=self.dtype)))
        return ws

    def check_weights(self, weights: Any, xp: Any = None) -> list[tuple[Any, Any]]:
        """Validate a list of ``(W, b)`` pairs against the layer shapes; returns arrays of ``xp``."""
        if not isinstance(weights, (list, tuple)) or len(weights) != len(self.layers):
            raise InputError(f"weights must be a list of {len(self.layers)} (W, b) pairs")
        out = []
        for ly, pair in zip(self.layers, weights):
            try:
                W, b = pair
            except (TypeError, ValueError):
                raise InputError(f"weights[{ly.index}] must be a pair (W, b)") from None
            W = check_array(W, f"W of layer {ly.index}", shape=ly.weight_shape, xp=xp, dtype=self.dtype)
            b = check_array(b, f"b of layer {ly.index}", shape=ly.bias_shape, xp=xp, dtype=self.dtype)
            out.append((W, b))
        return out

    # ---- feed-forward -----------------------------------------------------------------------
    def check_input(self, X: Any, name: str = "X", xp: Any = None, finite: bool = True) -> Any:
        """Validate a batch ``(m, *input_shape)`` (flat ``(m, prod)`` accepted and reshaped;
        ``finite=False``: the caller checks for NaN/inf itself)."""
        X = check_array(X, name, xp=xp, dtype=self.dtype, finite=finite)
        if X.ndim >= 1 and tuple(X.shape[1:]) != self.input_shape:
            if X.ndim == 2 and X.shape[1] == math.prod(self.input_shape):
                X = X.reshape((X.shape[0],) + self.input_shape)
            else:
                raise InputError(f"{name} must have shape (m, {', '.join(map(str, self.input_shape))}), "
                                 f"got {tuple(X.shape)}")
        if X.ndim == 0 or X.shape[0] < 1:
            raise InputError(f"{name} must hold at least one sample, got shape {tuple(X.shape)}")
        return X

    def pre_activation(self, l: int, X_l: Any, weights: Sequence) -> Any:
        """``U_l = A_l(X_l; W_l) + b_l``."""
        W, b = weights[l]
        return self.layers[l].linear_map.apply(X_l, W, b)

    def forward(self, X0: Any, weights: Sequence, *, return_all: bool = False) -> Any:
        """Feed-forward rule: ``X_{l+1} = phi_l(A_l(X_l; W_l) + b_l)``, output ``O = U_L``.

        Returns ``O`` of shape ``(m, n_outputs)``, or with ``return_all`` the pair
        ``([X_0, ..., X_L], O)``.
        """
        Xs = [X0]
        for ly in self.layers[:-1]:
            Xs.append(ly.activation.forward(self.pre_activation(ly.index, Xs[-1], weights)))
        O = self.pre_activation(self.L, Xs[-1], weights)
        return (Xs, O) if return_all else O

    def network_loss(self, X0: Any, Y: Any, weights: Sequence) -> float:
        """``p(W) = L(Y, f_W(X_0))``, summed over the batch (no ridge/proximal terms)."""
        return self.loss_fn.value(Y, self.forward(X0, weights))

    def accuracy(self, X0: Any, y: Any, weights: Sequence) -> float:
        """Fraction of samples whose arg-max output equals the label ``y`` (int array)."""
        xp, _ = get_namespace(X0)
        O = self.forward(X0, weights)
        return float(xp.mean((xp.argmax(O, axis=1) == y).astype(xp.float64)))

    # ---- relaxed objective ------------------------------------------------------------------
    def divergence_terms(self, Xs: Sequence, weights: Sequence, *, array: bool = False) -> list:
        """``[sum B_l(X_{l+1}, A_l(X_l; W_l) + b_l) for l < L]`` (without ``lam``; 0-d arrays with
        ``array=True``)."""
        xp, _ = get_namespace(Xs[0])
        out = [xp.sum(ly.activation.divergence(Xs[ly.index + 1],
                                               self.pre_activation(ly.index, Xs[ly.index], weights)))
               for ly in self.layers[:-1]]
        return out if array else [float(v) for v in out]

    def regularization(self, weights: Sequence, W0: Sequence | None = None, *, array: bool = False) -> Any:
        """``sum_l rho_l(||W_l||^2 + ||b_l||^2) + gamma_l(||W_l - W0_l||^2 + ||b_l - b0_l||^2)``
        (a 0-d array with ``array=True``)."""
        total = 0.0
        for ly, (W, b) in zip(self.layers, weights):
            c0, d0 = W0[ly.index] if W0 is not None else (None, None)
            total = total + Ridge(ly.rho, ly.gamma if W0 is not None else 0.0, c0, d0).value(W, b, array=True)
        return total if array else float(total)

    def relaxed_objective(self, Xs: Sequence, Y: Any, weights: Sequence,
                          W0: Sequence | None = None, *, parts: bool = False, array: bool = False) -> Any:
        """``J(W, X)`` of the module docstring for ``Xs = [X_0, ..., X_L]``.

        With ``parts=True`` returns a dict ``{"loss", "divergences" (list, times lam),
        "regularization", "total"}``; with ``array=True`` the total as a 0-d array (no host read).
        ``W0=None`` drops the proximal terms.
        """
        O = self.pre_activation(self.L, Xs[self.L], weights)
        lo = self.loss_fn.value(Y, O, array=True)
        divs = [ly.lam * d for ly, d in zip(self.layers, self.divergence_terms(Xs, weights, array=True))]
        reg = self.regularization(weights, W0, array=True)
        total = lo + sum(divs) + reg
        if parts:
            return {"loss": float(lo), "divergences": [float(d) for d in divs], "regularization": float(reg),
                    "total": float(total)}
        return total if array else float(total)

    def relaxed_objective_per_sample(self, Xs: Sequence, Y: Any, weights: Sequence) -> Any:
        """The sample-separable part of ``J`` per sample: ``L(Y_i, O_i) + sum_l lam_l B_l(...)_i``
        (array ``(m,)``; the weight terms do not depend on ``X``)."""
        xp, _ = get_namespace(Xs[0])
        O = self.pre_activation(self.L, Xs[self.L], weights)
        val = self.loss_fn.per_sample(Y, O)
        for ly in self.layers[:-1]:
            D = ly.activation.divergence(Xs[ly.index + 1], self.pre_activation(ly.index, Xs[ly.index], weights))
            val = val + ly.lam * xp.sum(D.reshape(D.shape[0], -1), axis=1)
        return val



# --------------------------------------------------------------------------------------------
# named architectures

_DENSE_RE = re.compile(r"^\s*\d+(\s*-\s*\d+)+\s*$")


def dense_layers(arch: str, activation: str = "relu") -> tuple[tuple[int, ...], list[Layer]]:
    """``"784-300-10"`` -> ``((784,), [Layer("dense", n_out=300), Layer("dense", n_out=10,
    activation=None)])``."""
    if not isinstance(arch, str) or not _DENSE_RE.match(arch):
        raise UnknownNameError(f"unknown architecture {arch!r}; use 'lenet5' or dense widths like "
                               "'784-300-10'")
    sizes = [int(s) for s in arch.replace(" ", "").split("-")]
    if any(s < 1 for s in sizes):
        raise InputError(f"architecture {arch!r}: widths must be positive")
    layers = [Layer("dense", n_out=n, activation=activation) for n in sizes[1:-1]]
    return (sizes[0],), layers + [Layer("dense", n_out=sizes[-1], activation=None)]


def lenet5_layers(n_classes: int = 10, in_channels: int = 1) -> tuple[tuple[int, ...], list[Layer]]:
    """LeNet-5 of the paper on 32x32 inputs: conv 6@5x5 relu, avgpool 2, conv 16@5x5 relu,
    avgpool 2, flatten, dense 120 relu, dense 84 relu, dense ``n_classes`` (output).
    Lifted layers: ``[conv6], [pool, conv16], [pool, flatten, dense120], [dense84], [dense10]``."""
    return (32, 32, int(in_channels)), [
        Layer("conv2d", c_out=6, kernel=5), Layer("avgpool2d", size=2),
        Layer("conv2d", c_out=16, kernel=5), Layer("avgpool2d", size=2), Layer("flatten"),
        Layer("dense", n_out=120), Layer("dense", n_out=84),
        Layer("dense", n_out=int(n_classes), activation=None)]


def is_lenet5(arch: Any) -> bool:
    """Whether ``arch`` names LeNet-5 (``"lenet5"``, ``"lenet-5"``, ``"lenet"``)."""
    return isinstance(arch, str) and arch.lower().replace("-", "") in ("lenet5", "lenet")


def architecture(arch: str, *, in_channels: int = 1) -> tuple[tuple[int, ...], list[Layer]]:
    """``(input_shape, layers)`` of a named architecture: ``'lenet5'`` or ``'a-b-...-k'`` (dense)."""
    return lenet5_layers(10, in_channels) if is_lenet5(arch) else dense_layers(arch)


def make_network(arch: str = "784-300-10", *, in_channels: int = 1, **kwargs: Any) -> Network:
    """``Network(*architecture(arch), **kwargs)``."""
    shape, layers = architecture(arch, in_channels=in_channels)
    return Network(shape, layers, **kwargs)
