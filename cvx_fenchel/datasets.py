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
* :func:`pad_to_32`, :func:`one_hot`, :func:`train_batches` -- small helpers.

A missing, truncated or corrupt file raises :class:`~cvx_fenchel.errors.DatasetError`
naming the file and saying where to get it. Arrays leave this module on the
host; moving them to a GPU is the caller's edge step (``backend.asarray``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .backend import get_namespace
from .errors import DatasetError, InputError
from .history import atomic_write_bytes

__all__ = [
    "MNIST_FILES", "MNIST_MIRRORS", "MNIST_SUBSET_PATH", "CIFAR10_CLASSES",
    "load_mnist", "download_mnist", "build_mnist_subset", "mnist_subset_info",
    "load_cifar10", "pad_to_32", "one_hot", "train_batches",
]

# ---------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------

#: Official mirrors. The first is the default ``base_url`` of :func:`download_mnist`;
#: there is no automatic fallback to the second (pass it as ``base_url``).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: role -> (file name without ``.gz``, MD5 of the uncompressed contents, IDX shape).
MNIST_FILES: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "train_images": ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)),
    "train_labels": ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624", (60000,)),
    "test_images": ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea", (10000, 28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637", (10000,)),
}

#: The embedded stratified subset (see :func:`build_mnist_subset`).
MNIST_SUBSET_PATH = Path(__file__).resolve().parent / "data" / "mnist_subset.npz"

_IDX_DTYPES = {0x08: np.dtype(np.uint8)}  # MNIST uses only unsigned bytes
_SUBSET_ARRAYS = ("X_train", "y_train", "X_test", "y_test")


def _where_to_get(name: str) -> str:
    mirrors = " or ".join(m + name + ".gz" for m in MNIST_MIRRORS)
    return (f"download it from an official mirror ({mirrors}), or run "
            f"cvx_fenchel.datasets.download_mnist(data_dir)")


def _parse_idx(raw: bytes, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Parse one IDX buffer: magic ``00 00 <dtype> <ndim>``, ``ndim`` big-endian uint32 dims, data.

    Checks the magic, the number of dimensions and every dimension against
    ``shape``, and that the payload is exactly ``prod(dims)`` bytes long.
    Returns a writeable uint8 copy of shape ``shape``.
    """
    if len(raw) < 4:
        raise DatasetError(f"{name}: file is truncated ({len(raw)} bytes, no IDX header); "
                           + _where_to_get(name))
    zero, code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    want_magic = 0x0800 + len(shape)
    if zero != 0 or code not in _IDX_DTYPES or ndim != len(shape):
        raise DatasetError(
            f"{name}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x{want_magic:08x}: "
            f"unsigned bytes, {len(shape)} dimension(s)); not an MNIST {name} file? "
            + _where_to_get(name))
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{name}: file is truncated inside its IDX header "
                           f"({len(raw)} < {header} bytes); " + _where_to_get(name))
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if dims != shape:
        raise DatasetError(f"{name}: IDX header gives dimensions {dims}, expected {shape}; "
                           + _where_to_get(name))
    n_data = int(np.prod(dims))
    if len(raw) - header != n_data:
        what = "truncated" if len(raw) - header < n_data else "longer than its header says"
        raise DatasetError(f"{name}: file is {what} ({len(raw) - header} data bytes, header "
                           f"promises {n_data}); " + _where_to_get(name))
    return np.frombuffer(raw, dtype=_IDX_DTYPES[code], offset=header).reshape(dims).copy()


def _read_raw(path: Path, name: str) -> bytes:
    """The uncompressed bytes of ``path`` (gunzipped if it ends in ``.gz``)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{name}: cannot read {path} ({type(exc).__name__}: {exc}); "
                           + _where_to_get(name)) from None


def _find_file(data_dir: Path, name: str) -> Path:
    """``data_dir/name`` if present, else ``data_dir/name.gz``; DatasetError if neither."""
    for candidate in (data_dir / name, data_dir / (name + ".gz")):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{name}: missing from {data_dir} (looked for {name} and {name}.gz); "
                       + _where_to_get(name))


def _load_mnist_file(data_dir: Path, role: str, verify: bool) -> np.ndarray:
    name, md5, shape = MNIST_FILES[role]
    path = _find_file(data_dir, name)
    raw = _read_raw(path, name)
    arr = _parse_idx(raw, name, shape)  # header errors are more telling than an MD5 mismatch
    if verify:
        got = hashlib.md5(raw).hexdigest()
        if got != md5:
            raise DatasetError(f"{name}: MD5 of the uncompressed contents of {path} is {got}, "
                               f"expected {md5} (corrupt or modified file); " + _where_to_get(name))
    return arr


def _check_labels(y: np.ndarray, name: str) -> np.ndarray:
    if y.size and int(y.max()) > 9:
        raise DatasetError(f"{name}: labels must lie in 0..9, found {int(y.max())}")
    return y.astype(np.int64)


def _finish(X: np.ndarray, normalize: bool, flatten: bool) -> np.ndarray:
    if flatten:
        X = X.reshape(X.shape[0], -1)
    if normalize:
        X = X.astype(np.float64) / 255.0
    return X


def load_mnist(data_dir: str | os.PathLike | None = None, *, normalize: bool = False,
               flatten: bool = False, verify: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load MNIST as ``(X_train, y_train, X_test, y_test)``.

    Parameters
    ----------
    data_dir : path or None
        A directory holding the four official IDX files
        ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each either
        uncompressed or gzipped (``.gz``; the uncompressed file wins if both are
        there). ``None`` loads the stratified subset shipped with the package
        (10,000 train = 1,000 per class drawn from the official training split,
        2,000 test = 200 per class from the official test split; see
        :func:`mnist_subset_info`).
    normalize : bool
        False (default): images stay ``uint8`` in ``0..255``. True: ``float64``
        images ``X / 255`` in ``[0, 1]``.
    flatten : bool
        False (default): images of shape ``(n, 28, 28)``. True: ``(n, 784)``,
        row-major pixels (``X.reshape(n, -1)``), samples in rows.
    verify : bool
        Check the MD5 of each file's uncompressed contents against
        :data:`MNIST_FILES` (about 0.1 s for the full set). IDX headers and
        sizes are always checked.

    Returns
    -------
    X_train : (60000, 28, 28) uint8, or as set by ``normalize``/``flatten``
    y_train : (60000,) int64 in 0..9
    X_test : (10000, 28, 28) uint8, ...
    y_test : (10000,) int64 in 0..9
        (10,000 / 2,000 rows for the embedded subset.)

    Raises
    ------
    DatasetError
        The directory or a file is missing, a header is malformed, a file is
        truncated or fails its MD5 check; the message names the file and says
        where to download it (or to call :func:`download_mnist`).
    """
    if data_dir is None:
        X_train, y_train, X_test, y_test = _load_subset(verify)
    else:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise DatasetError(f"MNIST directory {data_dir} does not exist; it must hold "
                               + ", ".join(n + "[.gz]" for n, _, _ in MNIST_FILES.values())
                               + f" (official mirrors: {', '.join(MNIST_MIRRORS)}; or run "
                               "cvx_fenchel.datasets.download_mnist(data_dir)), "
                               "or pass data_dir=None for the embedded subset")
        X_train, y_train, X_test, y_test = (
            _load_mnist_file(data_dir, role, verify) for role in MNIST_FILES)
        y_train = _check_labels(y_train, MNIST_FILES["train_labels"][0])
        y_test = _check_labels(y_test, MNIST_FILES["test_labels"][0])
    return _finish(X_train, normalize, flatten), y_train, _finish(X_test, normalize, flatten), y_test


def _open_subset() -> Any:
    if not MNIST_SUBSET_PATH.is_file():
        raise DatasetError(f"embedded MNIST subset {MNIST_SUBSET_PATH} is missing (broken "
                           "install?); reinstall cvx-fenchel or pass data_dir pointing at the "
                           f"official MNIST files ({', '.join(MNIST_MIRRORS)})")
    try:
        return np.load(MNIST_SUBSET_PATH, allow_pickle=False)
    except Exception as exc:
        raise DatasetError(f"embedded MNIST subset {MNIST_SUBSET_PATH} is unreadable "
                           f"({type(exc).__name__}: {exc})") from None


def _load_subset(verify: bool) -> tuple[np.ndarray, ...]:
    with _open_subset() as z:
        try:
            arrays = [np.asarray(z[k]) for k in _SUBSET_ARRAYS]  # zip CRCs are checked on read
        except Exception as exc:
            raise DatasetError(f"embedded MNIST subset {MNIST_SUBSET_PATH} is corrupt "
                               f"({type(exc).__name__}: {exc})") from None
        n_train, n_test = int(z["n_train_per_class"]) * 10, int(z["n_test_per_class"]) * 10
    X_train, y_train, X_test, y_test = arrays
    if verify and (X_train.shape != (n_train, 28, 28) or X_test.shape != (n_test, 28, 28)
                   or y_train.shape != (n_train,) or y_test.shape != (n_test,)
                   or X_train.dtype != np.uint8 or X_test.dtype != np.uint8):
        raise DatasetError(f"embedded MNIST subset {MNIST_SUBSET_PATH} has unexpected shapes "
                           f"or dtypes; rebuild it with build_mnist_subset")
    name = MNIST_SUBSET_PATH.name
    return X_train, _check_labels(y_train, name), X_test, _check_labels(y_test, name)


def mnist_subset_info() -> dict:
    """How the embedded subset was made (read from the file itself).

    Returns
    -------
    dict with keys ``path``, ``seed``, ``n_train_per_class``,
    ``n_test_per_class``, ``n_train``, ``n_test``, ``source_files`` (official
    names), ``source_md5`` (their uncompressed MD5s), ``builder`` (the function
    that wrote it) and ``train_indices`` / ``test_indices`` (int arrays: row
    ``i`` of the subset is row ``indices[i]`` of the official split).
    """
    with _open_subset() as z:
        info = {
            "path": str(MNIST_SUBSET_PATH),
            "seed": int(z["seed"]),
            "n_train_per_class": int(z["n_train_per_class"]),
            "n_test_per_class": int(z["n_test_per_class"]),
            "source_files": [str(s) for s in z["source_files"]],
            "source_md5": [str(s) for s in z["source_md5"]],
            "builder": str(z["builder"]),
            "train_indices": np.asarray(z["train_indices"], dtype=np.int64),
            "test_indices": np.asarray(z["test_indices"], dtype=np.int64),
        }
    info["n_train"] = 10 * info["n_train_per_class"]
    info["n_test"] = 10 * info["n_test_per_class"]
    return info


def _stratified_indices(y: np.ndarray, n_per_class: int, rng: np.random.Generator,
                        split: str) -> np.ndarray:
    """``n_per_class`` indices of each class 0..9 drawn without replacement, in increasing order."""
    picks = []
    for c in range(10):  # ten classes, not a loop over samples
        pool = np.flatnonzero(y == c)
        if n_per_class > pool.size:
            raise InputError(f"n_{split}_per_class={n_per_class} exceeds the {pool.size} "
                             f"{split} images of class {c}")
        picks.append(rng.choice(pool, size=n_per_class, replace=False))
    return np.sort(np.concatenate(picks))


def build_mnist_subset(src_dir: str | os.PathLike, out_path: str | os.PathLike = MNIST_SUBSET_PATH,
                       n_train_per_class: int = 1000, n_test_per_class: int = 200,
                       seed: int = 0) -> dict:
    """Write the embedded stratified MNIST subset (how ``cvx_fenchel/data/mnist_subset.npz`` was made).

    With ``rng = numpy.random.default_rng(seed)``, for each class ``c = 0..9``
    in turn, ``rng.choice`` draws ``n_train_per_class`` training indices
    without replacement from ``{i : y_train[i] = c}`` of the official training
    split, then (after all ten classes) ``n_test_per_class`` test indices per
    class from the official test split. Indices are kept in increasing order,
    so classes stay interleaved as in the official files. The file is written
    with :func:`numpy.savez_compressed` (images ``uint8``, labels ``uint8``),
    atomically, and records the seed, the counts, the indices and the source
    MD5s. The shipped file was made by::

        build_mnist_subset("../shared/data/mnist", seed=0,
                           n_train_per_class=1000, n_test_per_class=200)

    Parameters
    ----------
    src_dir : path
        Directory with the official MNIST files (verified by MD5).
    out_path : path
        Output ``.npz`` (default: the package's embedded subset).
    n_train_per_class, n_test_per_class : int
        Images per class (at most 5421 / 892, the smallest class sizes).
    seed : int

    Returns
    -------
    dict : ``path``, ``bytes`` (file size), ``seed`` and the counts.
    """
    for arg, val in (("n_train_per_class", n_train_per_class), ("n_test_per_class", n_test_per_class)):
        if int(val) != val or val < 1:
            raise InputError(f"{arg} must be a positive integer, got {val!r}")
    X_train, y_train, X_test, y_test = load_mnist(src_dir, verify=True)
    rng = np.random.default_rng(seed)
    i_train = _stratified_indices(y_train, int(n_train_per_class), rng, "train")
    i_test = _stratified_indices(y_test, int(n_test_per_class), rng, "test")
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        X_train=X_train[i_train], y_train=y_train[i_train].astype(np.uint8),
        X_test=X_test[i_test], y_test=y_test[i_test].astype(np.uint8),
        train_indices=i_train.astype(np.uint16), test_indices=i_test.astype(np.uint16),
        seed=np.int64(seed), n_train_per_class=np.int64(n_train_per_class),
        n_test_per_class=np.int64(n_test_per_class),
        source_files=np.array([n for n, _, _ in MNIST_FILES.values()]),
        source_md5=np.array([m for _, m, _ in MNIST_FILES.values()]),
        builder=np.array("cvx_fenchel.datasets.build_mnist_subset"),
    )
    atomic_write_bytes(out_path, buf.getvalue())
    os.chmod(out_path, 0o644)  # mkstemp creates 0600 files
    return {"path": str(out_path), "bytes": len(buf.getvalue()), "seed": int(seed),
            "n_train": int(i_train.size), "n_test": int(i_test.size)}


def _valid_local_copy(data_dir: Path, name: str, md5: str) -> bool:
    """True if ``name`` or ``name.gz`` in ``data_dir`` has the right uncompressed MD5.

    A present but invalid copy is deleted, so it cannot shadow the new download.
    """
    ok = False
    for path in (data_dir / name, data_dir / (name + ".gz")):
        if not path.is_file():
            continue
        try:
            good = hashlib.md5(_read_raw(path, name)).hexdigest() == md5
        except DatasetError:
            good = False
        if good:
            ok = True
        else:
            path.unlink()
    return ok


def download_mnist(data_dir: str | os.PathLike, *, base_url: str = MNIST_MIRRORS[0],
                   timeout: float = 30) -> Path:
    """Download the four official MNIST files into ``data_dir`` (as ``.gz``) and verify them.

    For each file: skip it if ``name`` or ``name.gz`` is already there with the
    right MD5 of its uncompressed contents (an invalid copy is deleted);
    otherwise fetch ``base_url + name + ".gz"``, gunzip it in memory, check the
    MD5 against :data:`MNIST_FILES`, and only then write it atomically
    (temporary file and rename), so a failed or corrupt download never leaves
    a file behind.

    Parameters
    ----------
    data_dir : path
        Created if missing.
    base_url : str
        Mirror URL ending in ``/`` (one is added if absent); see :data:`MNIST_MIRRORS`.
    timeout : float
        Seconds per network operation (``urllib`` timeout).

    Returns
    -------
    Path : ``data_dir``, ready for :func:`load_mnist`.

    Raises
    ------
    DatasetError
        Network or HTTP error (the message names the URL), a download that is
        not gzip, or an MD5 mismatch (nothing is written).
    """
    if timeout is None or not timeout > 0:
        raise InputError(f"timeout must be a positive number of seconds, got {timeout!r}")
    data_dir = Path(data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not base_url.endswith("/"):
        base_url += "/"
    for name, md5, _ in MNIST_FILES.values():
        if _valid_local_copy(data_dir, name, md5):
            continue
        url = base_url + name + ".gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                payload = resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DatasetError(f"{name}: download from {url} failed ({type(exc).__name__}: "
                               f"{exc}); check the network or try another mirror "
                               f"({', '.join(MNIST_MIRRORS)})") from None
        try:
            raw = gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{name}: the download from {url} is not a valid gzip file "
                               f"({exc}); nothing written") from None
        got = hashlib.md5(raw).hexdigest()
        if got != md5:
            raise DatasetError(f"{name}: the download from {url} has MD5 {got} (uncompressed), "
                               f"expected {md5}; corrupt download, nothing written")
        atomic_write_bytes(data_dir / (name + ".gz"), payload)
        os.chmod(data_dir / (name + ".gz"), 0o644)  # mkstemp creates 0600 files
    return data_dir


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
