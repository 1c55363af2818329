"""Architectures and initial weights of the torch baselines
(:class:`~cvx_fenchel.baselines.torch_nets.TorchNetClassifier`), in NumPy only: the names
(``"784-300-10"``, ``"lenet5"``), the weight shapes in the package convention (dense
``(n_in, n_out)``, conv ``(kh, kw, c_in, c_out)``) and the random initialisations of Table 1 of
the lifted-network report. :mod:`~cvx_fenchel.baselines.torch_nets` re-exports them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import check_scalar
from ..errors import InputError, UnknownNameError
from ..network import is_lenet5

__all__ = ["DEFAULT_BIAS", "LENET5", "NORMAL_VARIANCE", "RANDOM_INITS", "init_weights",
           "layer_shapes", "parse_arch"]

#: Random schemes of :func:`init_weights`; "lifted" and "given" take ``init_weights``.
RANDOM_INITS = ("normal", "xavier", "var_scale")
INIT_SCHEMES = RANDOM_INITS + ("lifted", "given")
#: Variance of the "normal" scheme: N(0, sigma^2 = 0.1) as stated under Table 1 of the
#: lifted-network report ("mu = 0 and sigma^2 = 0.1"), so std = sqrt(0.1) ~ 0.316.
NORMAL_VARIANCE = 0.1
DEFAULT_BIAS = 0.1
LENET5 = "lenet5"


# --------------------------------------------------------------------------- architecture


def parse_arch(arch: Any) -> tuple[str, list[int] | None]:
    """Parse an architecture name.

    Parameters
    ----------
    arch : str or sequence of int
        ``"784-300-10"`` style layer widths (input, hidden..., output; at least two
        positive integers), a list/tuple of such widths, or ``"lenet5"``.

    Returns
    -------
    (kind, sizes) : ("dense", [n_0, ..., n_L]) or ("lenet5", None)
    """
    if isinstance(arch, str):
        if is_lenet5(arch.strip().replace("_", "")):
            return LENET5, None
        parts = arch.strip().split("-")
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            raise UnknownNameError(
                f"unknown arch {arch!r}: expected layer widths like '784-300-10' or 'lenet5'"
            ) from None
    elif isinstance(arch, (list, tuple)):
        try:
            sizes = [int(p) for p in arch]
        except (TypeError, ValueError):
            raise InputError(f"arch must be a list of positive integers, got {arch!r}") from None
        if any(int(p) != p for p in arch):
            raise InputError(f"arch must be a list of positive integers, got {arch!r}")
    else:
        raise InputError(f"arch must be a string like '784-300-10' or 'lenet5', got {arch!r}")
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise InputError(f"arch needs at least two positive layer widths, got {arch!r}")
    return "dense", sizes


def layer_shapes(arch: Any, in_channels: int = 1, n_classes: int = 10) -> list[tuple[int, ...]]:
    """Weight shapes of each layer in the package convention.

    Dense: ``(n_l, n_{l+1})``. LeNet-5: ``(5, 5, in_channels, 6)``, ``(5, 5, 6, 16)``,
    ``(400, 120)``, ``(120, 84)``, ``(84, n_classes)``.
    """
    kind, sizes = parse_arch(arch)
    if kind == LENET5:
        return [(5, 5, int(in_channels), 6), (5, 5, 6, 16), (16 * 5 * 5, 120), (120, 84),
                (84, int(n_classes))]
    return [(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]


def _fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out): dense (n_in, n_out); conv (kh*kw*c_in, kh*kw*c_out)."""
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    if len(shape) == 4:
        receptive = int(shape[0]) * int(shape[1])
        return receptive * int(shape[2]), receptive * int(shape[3])
    raise InputError(f"weight shape must have 2 (dense) or 4 (conv) entries, got {tuple(shape)}")


def init_weights(shapes: Sequence[Sequence[int]], scheme: str = "xavier",
                 rng: Any = None, bias: float = DEFAULT_BIAS
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random initial weights ``[(W_l, b_l)]`` (float64 NumPy), biases all equal to ``bias``.

    With ``fan_in``/``fan_out`` as in :func:`_fans` (dense ``n_in``/``n_out``; conv
    ``kh kw c_in``/``kh kw c_out``):

    * ``"normal"``: ``W ~ N(0, 0.1)`` i.e. variance 0.1 (std ~ 0.316), the report's
      NN[Normal] ("mu = 0 and sigma^2 = 0.1");
    * ``"xavier"``: Glorot uniform ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``,
      variance ``2 / (fan_in + fan_out)`` (TensorFlow's ``xavier_initializer`` default);
    * ``"var_scale"``: He/variance scaling, ``W ~ N(0, 2 / fan_in)`` (plain normal; TF1's
      default truncated normal has the same variance up to 0.6%).

    Parameters
    ----------
    shapes : sequence of weight shapes, each ``(n_in, n_out)`` or ``(kh, kw, c_in, c_out)``
    scheme : one of "normal", "xavier", "var_scale"
    rng : numpy Generator, int seed or None
    bias : float, initial value of every bias entry (default 0.1)

    Returns
    -------
    list of (W, b) with ``W.shape == shape`` and ``b.shape == (shape[-1],)``.
    """
    if scheme not in RANDOM_INITS:
        raise UnknownNameError(f"unknown init scheme {scheme!r}; expected one of {RANDOM_INITS} "
                               "(or 'lifted'/'given' with init_weights= in TorchNetClassifier)")
    bias = check_scalar(bias, "bias", low=None)
    rng = np.random.default_rng(rng)
    out = []
    for shape in shapes:
        shape = tuple(int(s) for s in shape)
        if any(s < 1 for s in shape):
            raise InputError(f"weight shape entries must be positive, got {shape}")
        fan_in, fan_out = _fans(shape)
        if scheme == "normal":
            W = rng.normal(0.0, math.sqrt(NORMAL_VARIANCE), size=shape)
        elif scheme == "xavier":
            a = math.sqrt(6.0 / (fan_in + fan_out))
            W = rng.uniform(-a, a, size=shape)
        else:
            W = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
        out.append((W, np.full(shape[-1], bias)))
    return out
