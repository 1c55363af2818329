"""Data loaders: MNIST (official IDX files or the embedded subset) and CIFAR-10.

Every loader reads a directory the user points at and returns NumPy arrays,
samples in rows, labels as ``int64`` in ``0..9``:

* :func:`load_mnist` -- the four official IDX files (``.gz`` or not), with
  their headers parsed and the MD5 sums of the *uncompressed* contents checked;
  with no directory, a stratified subset shipped inside the package
  (``cvx_fenchel/data/mnist_subset.npz``, made by :func:`build_mnist_subset`,
  described by :func:`mnist_subset_info`), so the main command runs on a fresh
  machine without a download.
* :func:`download_mnist` -- fetch the four files from an official mirror.
* :func:`load_cifar10` -- the official python layout (``cifar-10-batches-py/``).
* :func:`pad_to_32`, :func:`one_hot`, :func:`train_batches`, :func:`standardize` (per-channel
  input standardisation with the training set's statistics) -- small helpers.

A missing, truncated or corrupt file raises :class:`~cvx_fenchel.errors.DatasetError`
naming the file and saying where to get it. Arrays leave this module on the
host; moving them to a GPU is the caller's edge step (``backend.asarray``).
"""

from .arrays import one_hot, pad_to_32, standardize, train_batches
from .cifar10 import CIFAR10_CLASSES, load_cifar10
from .mnist import (MNIST_FILES, MNIST_MIRRORS, MNIST_SUBSET_PATH, build_mnist_subset,
                    download_mnist, load_mnist, mnist_subset_info)

__all__ = [
    "MNIST_FILES", "MNIST_MIRRORS", "MNIST_SUBSET_PATH", "CIFAR10_CLASSES",
    "load_mnist", "download_mnist", "build_mnist_subset", "mnist_subset_info",
    "load_cifar10", "pad_to_32", "one_hot", "train_batches", "standardize",
]
