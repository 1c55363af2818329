r"""One training configuration: :class:`TrainConfig` and its named presets.

Every setting of a Fenchel training run lives in one frozen :class:`TrainConfig`; the command line
(``cvx-fenchel train``), :class:`~cvx_fenchel.estimator.FenchelClassifier`, the trainer
(:class:`~cvx_fenchel.trainer.BCDTrainer`) and ``cvx-fenchel reproduce`` all build from one.
Its field defaults are the run settings of the README's main command (1 epoch of batches of 500,
float32, fast solvers to ``1e-5`` or 50 X / 30 W iterations); the *model* hyper-parameters come
from a preset:

``original``
    The authors' original code (``reference/original_settings.md``) in our scaling, for
    ``784-300-10`` (Fig. 2) and ``lenet5`` (Fig. 3). Conversions (each step has the original
    code's minimiser):

    * ``lam = 2 * lambda_orig`` because the original penalty is ``2B`` (ReLU);
    * ``coef = lbd_coef`` (weight of the next term in an X-step; with the loss for ``X_L``);
    * hidden ``gamma = rhod``;
    * output ``gamma = rhod * batch_size``: the original last-layer W-step minimises the *mean*
      cross-entropy ``+ rhod ||W - W0||^2 = (1/m)[sum CE + m rhod ||W - W0||^2]`` while ours
      sums the loss (so the output ``gamma`` follows ``batch_size``);
    * ``rho = 0``; ``K = 1`` alternation per batch, X-steps first.

    784-300-10: ``lam 2``, ``gamma = (10, 100 m)``, ``coef = (1, 10)``.
    LeNet-5: ``lam 2``, ``gamma = (1e-4, 0.01, 1, 1, 10 m)``, ``coef = (1, 1, 5, 1, 5)``.

``plain``
    Fixes nothing: every layer takes the scalar ``lam``, ``rho``, ``gamma``, ``coef`` (defaults
    1, 0, 0, 1); any architecture.

:func:`preset` with ``name="auto"`` picks ``original`` where it exists for the architecture and
``plain`` otherwise. A value given to :func:`preset` for a field the preset fixes **overrides**
it; the config records which (``overrides``) and :func:`describe` prints them, so a front end can
show that a preset value was replaced (never silently dropped).

Per-layer values: ``lam``, ``rho``, ``gamma``, ``coef`` are a scalar (the network-wide default)
or a tuple with one entry per *weighted* layer (``None`` entries keep the layer spec's own value);
see :mod:`cvx_fenchel.network` for their meaning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import check_int, check_scalar
from .errors import InputError, UnknownNameError
from .losses import get_loss
from .network import HYPER_PARAMETERS, Layer, Network, architecture, is_lenet5

__all__ = ["TrainConfig", "preset", "PRESETS", "preset_names", "describe", "ALGORITHMS", "W_STEPS",
           "OPTIMIZERS", "PREDICT_RULES", "BACKENDS", "DTYPES", "ORIGINAL_ARCHS"]

ALGORITHMS = ("batched", "full")
W_STEPS = ("solve", "gradient")
OPTIMIZERS = ("adam", "sgd")
PREDICT_RULES = ("feedforward", "lifted")
BACKENDS = ("auto", "numpy", "cupy")
DTYPES = ("float32", "float64")
#: Architectures the ``original`` preset has settings for.
ORIGINAL_ARCHS = ("784-300-10", "lenet5")


def _choice(value: Any, name: str, choices: tuple) -> str:
    if value not in choices:
        raise UnknownNameError(f"unknown {name} {value!r}; choose one of {choices}")
    return value


def _per_layer(value: Any, name: str, positive: bool = False) -> float | tuple:
    """A scalar >= 0 (> 0 with ``positive``: ``lam``, whose divergence term would vanish at 0),
    or a tuple of such scalars / None (one per weighted layer)."""
    kw = {"low": 0.0, "low_inclusive": not positive}
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputError(f"{name} must be a number or a non-empty tuple (one per weighted layer)")
        return tuple(None if v is None else check_scalar(v, f"{name}[{i}]", **kw) for i, v in enumerate(value))
    return check_scalar(value, name, **kw)


def _opt(value: Any, check: Any, *args: Any) -> Any:
    return None if value is None else check(value, *args)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a Fenchel training run (see the module docstring for the presets).

    Model
        ``arch``: ``"784-300-10"`` (any dense ``"a-b-...-k"``), ``"lenet5"``, or a pair
        ``(input_shape, layers)`` of :class:`~cvx_fenchel.network.Layer` specs;
        ``in_channels`` (LeNet-5 inputs); ``loss`` (a registered loss name);
        ``lam``, ``rho``, ``gamma``, ``coef``: scalar or one value per weighted layer.
    Training
        ``epochs``, ``batch_size`` (Algorithm 2; Algorithm 1 uses the whole set),
        ``algorithm`` ("batched" = Algorithm 2, "full" = Algorithm 1), ``K`` sweeps per batch,
        ``w_first`` (W-steps before X-steps), ``w_step`` ("solve" the W-subproblems, or one
        "gradient" step on them with ``optimizer`` "adam"/"sgd" and step size ``lr``: scalar or
        one value per weighted layer, :meth:`lr_of`),
        ``tol_x``/``tol_w`` (scale-free residual tolerances, default 1e-4: the iteration-economy
        setting measured in docs/results/bench/README.md, 1e-5 before; None: the solver default) and
        ``max_iter_x``/``max_iter_w`` (iteration caps; None: the solver default).
    Arrays
        ``dtype`` ("float32" or "float64"), ``backend`` ("auto", "numpy", "cupy"), ``seed``
        (initial weights and batch order).
    Prediction
        ``predict_rule``: "feedforward" or "lifted" (minimise ``J`` over a test batch's ``X``).
    Provenance
        ``preset``: the preset it was built from (None: none); ``overrides``: names of fields
        given explicitly that replaced a value the preset fixes.

    Every field is checked when the config is made (:class:`~cvx_fenchel.errors.InputError` or
    :class:`~cvx_fenchel.errors.UnknownNameError` naming the field).
    """

    arch: Any = "784-300-10"
    in_channels: int = 1
    loss: str = "cross_entropy"
    lam: Any = 1.0
    rho: Any = 0.0
    gamma: Any = 0.0
    coef: Any = 1.0
    epochs: int = 1
    batch_size: int = 500
    algorithm: str = "batched"
    K: int = 1
    w_first: bool = False
    w_step: str = "solve"
    optimizer: str = "adam"
    lr: float = 1e-3
    tol_x: float | None = 1e-4
    tol_w: float | None = 1e-4
    max_iter_x: int | None = 50
    max_iter_w: int | None = 30
    dtype: str = "float32"
    backend: str = "auto"
    seed: int = 0
    predict_rule: str = "feedforward"
    preset: str | None = None
    overrides: tuple = ()

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        arch = self.arch
        if isinstance(arch, str):
            architecture(arch)  # unknown names fail here
        else:
            try:
                shape, layers = arch
                layers = tuple(layers)
            except (TypeError, ValueError):
                raise InputError("arch must be a name ('784-300-10', 'lenet5') or a pair "
                                 "(input_shape, layers)") from None
            set_("arch", (tuple(shape) if isinstance(shape, (list, tuple)) else shape, layers))
        set_("in_channels", check_int(self.in_channels, "in_channels", 1))
        set_("loss", get_loss(self.loss).name)
        for k in HYPER_PARAMETERS:
            set_(k, _per_layer(getattr(self, k), k, positive=(k == "lam")))
        for k, low in (("epochs", 1), ("batch_size", 1), ("K", 1), ("seed", 0)):
            set_(k, check_int(getattr(self, k), k, low))
        for k in ("max_iter_x", "max_iter_w"):
            set_(k, _opt(getattr(self, k), check_int, k, 1))
        for k in ("tol_x", "tol_w"):
            v = getattr(self, k)
            if v is not None:
                set_(k, check_scalar(v, k, low=0.0, low_inclusive=False))
        if isinstance(self.lr, (list, tuple)) and any(v is None for v in self.lr):
            raise InputError("lr must be a number or one number per weighted layer (no None)")
        set_("lr", _per_layer(self.lr, "lr", positive=True))
        if not isinstance(self.w_first, (bool, np.bool_)):
            raise InputError(f"w_first must be True or False, got {self.w_first!r}")
        set_("w_first", bool(self.w_first))
        _choice(self.algorithm, "algorithm", ALGORITHMS)
        _choice(self.w_step, "w_step", W_STEPS)
        _choice(self.optimizer, "optimizer", OPTIMIZERS)
        _choice(self.predict_rule, "predict_rule", PREDICT_RULES)
        _choice(self.backend, "backend", BACKENDS)
        set_("dtype", _choice(np.dtype(self.dtype).name if _is_dtype(self.dtype) else self.dtype,
                              "dtype", DTYPES))
        if self.preset is not None and self.preset not in PRESETS:
            raise UnknownNameError(f"unknown preset {self.preset!r}; choose one of {preset_names()}")
        set_("overrides", tuple(self.overrides))

    # ---- derived ------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes`` (checked like the constructor). Provenance is kept: use
        :func:`preset` to apply a preset's rules (e.g. the output ``gamma`` of ``original``
        follows ``batch_size`` there, not here)."""
        bad = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if bad:
            raise InputError(f"unknown TrainConfig field(s) {bad}")
        return dataclasses.replace(self, **changes)

    def lr_of(self, l: int) -> float:
        """The gradient W-step's step size for weighted layer ``l`` (``lr`` is one number for
        every layer, or one per weighted layer)."""
        return self.lr[l] if isinstance(self.lr, tuple) else self.lr

    def layers(self) -> tuple[tuple[int, ...], list[Layer]]:
        """``(input_shape, layers)`` with the per-layer tuples applied to the weighted specs."""
        if isinstance(self.arch, str):
            shape, layers = architecture(self.arch, in_channels=self.in_channels)
        else:
            shape, layers = self.arch
        layers = [ly if isinstance(ly, Layer) else Layer.from_dict(ly, f"layer {i}")
                  for i, ly in enumerate(layers)]
        weighted = [i for i, ly in enumerate(layers) if ly.has_weights]
        if isinstance(self.lr, tuple) and len(self.lr) != len(weighted):
            raise InputError(f"lr has {len(self.lr)} entries but the network has {len(weighted)} "
                             "weighted layers")
        for k in HYPER_PARAMETERS:
            v = getattr(self, k)
            if not isinstance(v, tuple):
                continue
            if len(v) != len(weighted):
                raise InputError(f"{k} has {len(v)} entries but the network has {len(weighted)} "
                                 "weighted layers")
            for i, val in zip(weighted, v):
                if val is not None:
                    layers[i] = layers[i].replace(**{k: val})
        return shape, layers

    def network(self) -> Network:
        """The :class:`~cvx_fenchel.network.Network` this config trains."""
        shape, layers = self.layers()
        scal = {k: (getattr(self, k) if not isinstance(getattr(self, k), tuple) else default)
                for k, default in zip(HYPER_PARAMETERS, (1.0, 0.0, 0.0, 1.0))}
        return Network(shape, layers, loss=self.loss, dtype=self.dtype, **scal)

    def to_dict(self) -> dict:
        """JSON-safe dict (a custom ``arch`` as ``[input_shape, [layer dicts]]``)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not isinstance(self.arch, str):
            shape, layers = self.arch
            d["arch"] = [list(shape) if isinstance(shape, tuple) else shape,
                         [ly.to_dict() if isinstance(ly, Layer) else dict(ly) for ly in layers]]
        for k in HYPER_PARAMETERS + ("overrides",):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        d = dict(d)
        bad = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if bad:
            raise InputError(f"unknown TrainConfig field(s) {bad}")
        if "arch" in d and not isinstance(d["arch"], str):
            shape, layers = d["arch"]
            d["arch"] = (tuple(shape) if isinstance(shape, list) else shape,
                         tuple(Layer.from_dict(ly, f"layer {i}") for i, ly in enumerate(layers)))
        for k in HYPER_PARAMETERS + ("lr", "overrides"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)


def _is_dtype(v: Any) -> bool:
    try:
        return isinstance(v, (type, np.dtype)) and np.dtype(v).kind == "f"
    except TypeError:
        return False


# --------------------------------------------------------------------------------------------
# presets: name -> function(config with the user's values) -> the fields the preset fixes

def _original(cfg: TrainConfig) -> dict:
    m = cfg.batch_size
    if not isinstance(cfg.arch, str) or not (cfg.arch.replace(" ", "") == "784-300-10"
                                             or is_lenet5(cfg.arch)):
        raise InputError(f"the 'original' preset has settings for arch {ORIGINAL_ARCHS} only, got "
                         f"arch={cfg.arch!r}; use preset 'plain' (or 'auto') for other networks")
    fixed = {"lam": 2.0, "rho": 0.0, "K": 1, "w_first": False}
    if is_lenet5(cfg.arch):
        return {**fixed, "gamma": (1e-4, 0.01, 1.0, 1.0, 10.0 * m), "coef": (1.0, 1.0, 5.0, 1.0, 5.0)}
    return {**fixed, "gamma": (10.0, 100.0 * m), "coef": (1.0, 10.0)}


def _plain(cfg: TrainConfig) -> dict:
    return {}


#: Preset name -> function of the user's config returning the fields the preset fixes.
PRESETS = {"original": _original, "plain": _plain}
_ALIASES = {"none": "plain"}


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS) + ("auto",)


def preset(name: str = "auto", **fields: Any) -> TrainConfig:
    """The :class:`TrainConfig` of preset ``name`` with ``fields`` given by the user.

    ``name``: ``"original"``, ``"plain"`` (alias ``"none"``), or ``"auto"`` (``original`` for the
    architectures it covers, else ``plain``). The preset's fixed values are computed from the
    user's ``arch``, ``in_channels`` and ``batch_size`` (e.g. ``original``'s output ``gamma =
    100 * batch_size``); a field given in ``fields`` that the preset fixes *overrides* it and is
    listed in the result's ``overrides`` when its value differs.

    >>> preset("original", lam=1.0).overrides
    ('lam',)
    """
    if not isinstance(name, str):
        raise UnknownNameError(f"unknown preset {name!r}; choose one of {preset_names()}")
    key = _ALIASES.get(name.lower(), name.lower())
    base = TrainConfig(**{k: v for k, v in fields.items() if k not in ("preset", "overrides")})
    if key == "auto":
        key = "original" if isinstance(base.arch, str) and (
            base.arch.replace(" ", "") == "784-300-10" or is_lenet5(base.arch)) else "plain"
    if key not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}; choose one of {preset_names()}")
    fixed = PRESETS[key](base)
    given = {k: getattr(base, k) for k in fields if k in fixed}  # normalised by TrainConfig
    overrides = tuple(sorted(k for k, v in given.items() if v != fixed[k]))
    return base.replace(**{**fixed, **given}, preset=key, overrides=overrides)


def describe(config: TrainConfig) -> str:
    """One line for a run's header: preset, model hyper-parameters, run settings, and what
    overrode the preset (``"lam=1.0 overrides preset original (lam=2.0)"``)."""
    def fmt(v: Any) -> str:
        if isinstance(v, tuple):
            return "(" + ", ".join(fmt(x) for x in v) + ")"
        return f"{v:g}" if isinstance(v, float) else str(v)

    hp = ", ".join(f"{k} {fmt(getattr(config, k))}" for k in HYPER_PARAMETERS)
    w = config.w_step if config.w_step == "solve" else f"{config.optimizer} lr {fmt(config.lr)}"
    line = (f"settings: preset {config.preset or 'none'}; {hp}; K {config.K}"
            f"{', W-steps first' if config.w_first else ''}; {config.algorithm}, epochs "
            f"{config.epochs}, batch {config.batch_size}, W-steps {w}, caps "
            f"{config.max_iter_x} X / {config.max_iter_w} W, tol {fmt(config.tol_x)}/"
            f"{fmt(config.tol_w)}, {config.dtype}, seed {config.seed}")
    if config.overrides:
        ref = preset(config.preset, **{k: getattr(config, k) for k in ("arch", "in_channels",
                                                                       "batch_size")})
        line += "; " + "; ".join(f"{k}={fmt(getattr(config, k))} overrides preset {config.preset} "
                                 f"({k}={fmt(getattr(ref, k))})" for k in config.overrides)
    return line
