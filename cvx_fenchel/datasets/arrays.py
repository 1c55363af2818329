"""Small array helpers of the data pipeline: padding, one-hot targets, batch indices, input
standardisation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backend import get_namespace
from ..errors import InputError

__all__ = ["pad_to_32", "one_hot", "train_batches", "standardize"]

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def pad_to_32(images: Any) -> Any:
    """Zero-pad 28x28 images to 32x32 (two pixels on every side), as LeNet-5 expects.

    ``out[..., 2:30, 2:30] = images`` and ``out`` is zero elsewhere.

    Parameters
    ----------
    images : (..., 28, 28) array (NumPy or CuPy, any dtype), e.g. ``(n, 28, 28)``
        or ``(n, 1, 28, 28)``. Flattened ``(n, 784)`` input is reshaped to
        ``(n, 28, 28)`` first.

    Returns
    -------
    (..., 32, 32) array, same namespace and dtype (``(n, 32, 32)`` for flat input).
    """
    xp, _ = get_namespace(images)
    if not hasattr(images, "shape"):
        images = xp.asarray(images)
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(images.shape[0], 28, 28)
    if images.ndim < 2 or tuple(images.shape[-2:]) != (28, 28):
        raise InputError(f"images must have shape (..., 28, 28) or (n, 784), got {tuple(images.shape)}")
    width = [(0, 0)] * (images.ndim - 2) + [(2, 2), (2, 2)]
    return xp.pad(images, width, mode="constant")


def one_hot(y: Any, n_classes: int = 10, dtype: Any = np.float64) -> Any:
    """One-hot label matrix, samples in rows: ``Y[i, k] = 1 if y[i] == k else 0``.

    Parameters
    ----------
    y : (n,) integer array (NumPy or CuPy) with values in ``0..n_classes-1``
    n_classes : int >= 1
    dtype : output dtype (default float64)

    Returns
    -------
    (n, n_classes) array of ``dtype`` in ``y``'s namespace; each row sums to 1.
    """
    if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 1:
        raise InputError(f"n_classes must be a positive integer, got {n_classes!r}")
    n_classes = int(n_classes)
    xp, _ = get_namespace(y)
    y = xp.asarray(y)
    if y.ndim != 1:
        raise InputError(f"y must be 1-D, got shape {tuple(y.shape)}")
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and y.size and bool(xp.all(y == xp.round(y))):
            y = y.astype(np.int64)
        elif y.size:
            raise InputError(f"y must hold integer labels, got dtype {y.dtype}")
        else:
            y = y.astype(np.int64)
    if y.size and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise InputError(f"y must lie in 0..{n_classes - 1}, got values in "
                         f"[{int(y.min())}, {int(y.max())}]")
    return (y[:, None] == xp.arange(n_classes)[None, :]).astype(dtype)


def train_batches(n: int, batch_size: int, rng: Any = None, *, drop_last: bool = False
                  ) -> Iterator[np.ndarray]:
    """Yield index arrays of one shuffled epoch: a random permutation of ``0..n-1`` cut in batches.

    Parameters
    ----------
    n : int >= 1, number of samples
    batch_size : int >= 1
    rng : numpy Generator, int seed or None (``np.random.default_rng(rng)``); None means no shuffle
    drop_last : bool
        Drop the final batch when it is shorter than ``batch_size``.

    Yields
    ------
    (b,) int64 NumPy arrays; together they partition ``0..n-1`` (minus the
    dropped tail), ``b = batch_size`` except perhaps the last.
    """
    for arg, val in (("n", n), ("batch_size", batch_size)):
        if isinstance(val, bool) or int(val) != val or val < 1:
            raise InputError(f"{arg} must be a positive integer, got {val!r}")
    n, batch_size = int(n), int(batch_size)
    order = np.arange(n) if rng is None else np.random.default_rng(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def standardize(X_train: Any, X_test: Any) -> tuple[Any, Any]:
    r"""Inputs standardised per channel with the *training* set's statistics:
    :math:`x \mapsto (x - \mu_c) / \sigma_c`, :math:`\mu_c`, :math:`\sigma_c` the mean and standard
    deviation (``ddof = 0``) of channel ``c`` over every training sample and pixel.

    The channel is the last axis of ``(n, H, W, C)`` images (CIFAR-10's RGB); any other shape (a
    grayscale image, a flat vector) is one channel: one mean and one deviation over all entries.
    The test set gets the same affine map (its own statistics are never used).

    Returns ``(X_train, X_test)`` standardised, in their dtype. A channel whose training values
    are all equal (deviation 0) is refused by name.
    """
    xp, _ = get_namespace(X_train, X_test)
    if tuple(X_train.shape[1:]) != tuple(X_test.shape[1:]):
        raise InputError(f"training and test samples differ in shape: {tuple(X_train.shape[1:])} "
                         f"vs {tuple(X_test.shape[1:])}")
    axes = tuple(range(X_train.ndim - 1)) if X_train.ndim == 4 else None
    mu, sd = xp.mean(X_train, axis=axes), xp.std(X_train, axis=axes)
    flat = np.atleast_1d(np.asarray(sd, dtype=np.float64))
    if not np.all(flat > 0):
        raise InputError(f"cannot standardise: channel(s) {np.flatnonzero(~(flat > 0)).tolist()} "
                         "of the training inputs are constant (standard deviation 0)")
    return ((X_train - mu) / sd).astype(X_train.dtype), ((X_test - mu) / sd).astype(X_test.dtype)
