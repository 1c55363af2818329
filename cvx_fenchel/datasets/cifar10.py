"""CIFAR-10 from the official python layout (``cifar-10-batches-py/``), read by a restricted
unpickler (see :mod:`cvx_fenchel.datasets`)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError

__all__ = ["CIFAR10_CLASSES", "load_cifar10"]

# ---------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------

#: Class names of CIFAR-10, in label order.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_TRAIN = tuple(f"data_batch_{k}" for k in range(1, 6))

# The official batches are Python-2 pickles of dicts holding a NumPy array; only the
# globals needed to rebuild arrays are allowed, so a hostile file cannot run code.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as used by protocol-2 pickles of ``bytes`` written by Python 3 (latin1 only)."""
    if encoding != "latin1" or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"codecs.encode with encoding {encoding!r} is not allowed")
    return obj.encode("latin1", errors)


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("_codecs", "encode"), ("codecs", "encode")):
            return _latin1_encode
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


def _cifar_pickle(folder: Path, name: str) -> dict:
    path = folder / name
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 file {name} missing from {folder}; download and unpack "
                           f"the official python archive {_CIFAR_URL} (it unpacks to "
                           f"{_CIFAR_DIR}/ with data_batch_1..5, test_batch, batches.meta)")
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as exc:
        raise DatasetError(f"CIFAR-10 file {path} is not a readable batch pickle "
                           f"({type(exc).__name__}: {exc}); re-download {_CIFAR_URL}") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"CIFAR-10 file {path} holds a {type(obj).__name__}, expected a dict")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_batch(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch as NHWC uint8 images and int64 labels (rows are 1024 R, 1024 G, 1024 B values)."""
    batch = _cifar_pickle(folder, name)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DatasetError(f"CIFAR-10 file {folder / name} lacks 'data' (array) or 'labels'")
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"CIFAR-10 file {folder / name}: data must be uint8 of shape (n, 3072), "
                           f"got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu" or (
            labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise DatasetError(f"CIFAR-10 file {folder / name}: labels must be {data.shape[0]} "
                           f"integers in 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)


def load_cifar10(data_dir: str | os.PathLike, *, normalize: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load CIFAR-10 from the official python layout as ``(X_train, y_train, X_test, y_test)``.

    Parameters
    ----------
    data_dir : path
        The folder ``cifar-10-batches-py/`` (what ``cifar-10-python.tar.gz``
        unpacks to) or its parent. It must hold ``data_batch_1`` ..
        ``data_batch_5``, ``test_batch`` and ``batches.meta``: pickled dicts
        with ``data`` (uint8, one row per image: 1024 red, then 1024 green,
        then 1024 blue values, each plane row-major 32x32) and ``labels``.
        Only the globals needed to rebuild NumPy arrays may appear in the
        pickles; anything else is refused.
    normalize : bool
        False (default): ``uint8`` pixels. True: ``float64`` ``X / 255`` in ``[0, 1]``.

    Returns
    -------
    X_train : (50000, 32, 32, 3) uint8, NHWC (channels last, RGB):
        ``X[i, h, w, c] = data[i, c * 1024 + h * 32 + w]``
    y_train : (50000,) int64 in 0..9 (class names: :data:`CIFAR10_CLASSES`)
    X_test : (10000, 32, 32, 3) uint8
    y_test : (10000,) int64
        Batches are concatenated in file order; their sizes are not enforced.

    Raises
    ------
    DatasetError
        Missing folder or file (named, with the official download URL), an
        unreadable pickle, or arrays of the wrong shape/dtype/range.
    """
    root = Path(data_dir).expanduser()
    folder = root / _CIFAR_DIR if (root / _CIFAR_DIR).is_dir() else root
    if not folder.is_dir():
        raise DatasetError(f"CIFAR-10 directory {root} does not exist; download and unpack "
                           f"{_CIFAR_URL} and pass the {_CIFAR_DIR}/ folder or its parent")
    meta = _cifar_pickle(folder, "batches.meta")
    names = meta.get("label_names")
    if names is not None and len(names) != 10:
        raise DatasetError(f"CIFAR-10 file {folder / 'batches.meta'} lists {len(names)} "
                           f"classes, expected 10")
    train = [_cifar_batch(folder, n) for n in _CIFAR_TRAIN]
    X_test, y_test = _cifar_batch(folder, "test_batch")
    X_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    if normalize:
        X_train, X_test = X_train.astype(np.float64) / 255.0, X_test.astype(np.float64) / 255.0
    else:
        X_test = np.ascontiguousarray(X_test)
    return X_train, y_train, X_test, y_test
