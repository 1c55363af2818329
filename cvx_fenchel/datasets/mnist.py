"""MNIST: the official IDX files (headers parsed, MD5 sums checked), the embedded stratified
subset, and the download from an official mirror (see :mod:`cvx_fenchel.datasets`)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, InputError
from ..history import atomic_write_bytes

__all__ = ["MNIST_FILES", "MNIST_MIRRORS", "MNIST_SUBSET_PATH", "load_mnist", "download_mnist",
           "build_mnist_subset", "mnist_subset_info"]

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
MNIST_SUBSET_PATH = Path(__file__).resolve().parents[1] / "data" / "mnist_subset.npz"

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
