"""Tests of cvx_fenchel.datasets: MNIST IDX parsing and checksums, the embedded subset,
download from a loopback HTTP server, the CIFAR-10 pickle layout, and the small helpers.

Full MNIST comes from the shared data directory beside the checkout
(``../shared/data/mnist``); tests that need it are skipped when it is absent.
Network tests only ever talk to a server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import pickle
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvx_fenchel import datasets as ds
from cvx_fenchel.errors import DatasetError, InputError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_DIR = SHARED_DATA / "mnist"
CIFAR_SCRIPT = SHARED_DATA / "cifar10" / "to_canonical.py"

needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / (n + ".gz")).is_file() for n, _, _ in ds.MNIST_FILES.values()),
    reason=f"full MNIST not found at {MNIST_DIR} (the shared data directory beside the checkout)")

# Official class counts (also in the MNIST documentation).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
NAMES = [n for n, _, _ in ds.MNIST_FILES.values()]


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_full():
    """Full MNIST from the shared gz files, loaded once with MD5 verification."""
    if not MNIST_DIR.is_dir():
        pytest.skip(f"full MNIST not found at {MNIST_DIR}")
    return ds.load_mnist(MNIST_DIR)


@pytest.fixture(scope="module")
def mnist_raw():
    """Uncompressed bytes of the four official files, keyed by name."""
    if not MNIST_DIR.is_dir():
        pytest.skip(f"full MNIST not found at {MNIST_DIR}")
    return {n: gzip.decompress((MNIST_DIR / (n + ".gz")).read_bytes()) for n in NAMES}


def _dir_with(tmp_path: Path, replace: dict[str, bytes | None]) -> Path:
    """A MNIST dir: symlinks to the shared .gz files, except names in ``replace``
    (written uncompressed from the bytes given, or left out when None)."""
    d = tmp_path / "mnist"
    d.mkdir()
    for n in NAMES:
        if n in replace:
            if replace[n] is not None:
                (d / n).write_bytes(replace[n])
        else:
            (d / (n + ".gz")).symlink_to(MNIST_DIR / (n + ".gz"))
    return d


# ---------------------------------------------------------------------------
# Full MNIST
# ---------------------------------------------------------------------------

@needs_mnist
def test_full_mnist_shapes_dtypes_and_official_counts(mnist_full):
    X_train, y_train, X_test, y_test = mnist_full
    assert X_train.shape == (60000, 28, 28) and X_train.dtype == np.uint8
    assert X_test.shape == (10000, 28, 28) and X_test.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.int64
    assert y_test.shape == (10000,) and y_test.dtype == np.int64
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_COUNTS
    # the arrays are exactly the IDX payloads whose MD5 is the official one
    assert hashlib.md5(X_test.tobytes()).hexdigest() == hashlib.md5(
        gzip.decompress((MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())[16:]).hexdigest()


@needs_mnist
def test_normalize_and_flatten(mnist_full):
    X_test = mnist_full[2]
    Xf = ds.load_mnist(MNIST_DIR, normalize=True, flatten=True, verify=False)[2]
    assert Xf.shape == (10000, 784) and Xf.dtype == np.float64
    assert Xf.min() == 0.0 and Xf.max() == 1.0
    np.testing.assert_array_equal(Xf * 255.0, X_test.reshape(10000, 784).astype(np.float64))


@needs_mnist
def test_uncompressed_files_give_same_arrays(tmp_path, mnist_full, mnist_raw):
    d = tmp_path / "plain"
    d.mkdir()
    for n in NAMES:
        (d / n).write_bytes(mnist_raw[n])
    got = ds.load_mnist(d)
    for a, b in zip(got, mnist_full):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


# ---------------------------------------------------------------------------
# Bad directories
# ---------------------------------------------------------------------------

def test_missing_directory(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as err:
        ds.load_mnist(tmp_path / "nope")
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "ossci-datasets" in msg and "download_mnist" in msg


@needs_mnist
@pytest.mark.parametrize("name", NAMES)
def test_missing_file_is_named(tmp_path, name):
    d = _dir_with(tmp_path, {name: None})
    with pytest.raises(DatasetError) as err:
        ds.load_mnist(d, verify=False)
    msg = str(err.value)
    assert name in msg and "missing" in msg
    assert ds.MNIST_MIRRORS[0] + name + ".gz" in msg and "download_mnist" in msg


@needs_mnist
def test_truncated_file(tmp_path, mnist_raw):
    name = "train-labels-idx1-ubyte"
    d = _dir_with(tmp_path, {name: mnist_raw[name][:-100]})
    with pytest.raises(DatasetError, match="truncated") as err:
        ds.load_mnist(d)
    assert name in str(err.value) and "59900" in str(err.value)


@needs_mnist
def test_truncated_gzip(tmp_path):
    name = "t10k-labels-idx1-ubyte"
    d = _dir_with(tmp_path, {name: None})
    (d / (name + ".gz")).write_bytes((MNIST_DIR / (name + ".gz")).read_bytes()[:1000])
    with pytest.raises(DatasetError, match=name):
        ds.load_mnist(d)


@needs_mnist
@pytest.mark.parametrize("magic", [b"\x00\x00\x08\x01", b"\x00\x00\x0d\x03", b"\x01\x00\x08\x03"])
def test_wrong_magic(tmp_path, mnist_raw, magic):
    name = "t10k-images-idx3-ubyte"  # labels magic, float dtype, nonzero leading bytes
    d = _dir_with(tmp_path, {name: magic + mnist_raw[name][4:]})
    with pytest.raises(DatasetError, match="magic") as err:
        ds.load_mnist(d)
    assert name in str(err.value) and "0x00000803" in str(err.value)


@needs_mnist
def test_wrong_dimensions(tmp_path, mnist_raw):
    name = "t10k-images-idx3-ubyte"
    raw = bytearray(mnist_raw[name])
    raw[8:12] = (14).to_bytes(4, "big")  # rows 14 instead of 28
    d = _dir_with(tmp_path, {name: bytes(raw)})
    with pytest.raises(DatasetError, match=r"dimensions \(10000, 14, 28\)"):
        ds.load_mnist(d)


@needs_mnist
def test_md5_mismatch_and_verify_false(tmp_path, mnist_raw, mnist_full):
    name = "t10k-images-idx3-ubyte"
    raw = bytearray(mnist_raw[name])
    raw[16 + 5 * 784 + 300] ^= 0xFF  # one pixel of image 5: header and size stay valid
    d = _dir_with(tmp_path, {name: bytes(raw)})
    with pytest.raises(DatasetError, match="MD5") as err:
        ds.load_mnist(d)
    assert name in str(err.value) and ds.MNIST_FILES["test_images"][1] in str(err.value)
    # without verification the modified file loads, differing in exactly that pixel
    X_test = ds.load_mnist(d, verify=False)[2]
    diff = np.argwhere(X_test != mnist_full[2])
    assert diff.tolist() == [[5, 300 // 28, 300 % 28]]


@needs_mnist
def test_label_out_of_range(tmp_path, mnist_raw):
    name = "t10k-labels-idx1-ubyte"
    raw = bytearray(mnist_raw[name])
    raw[8] = 10
    d = _dir_with(tmp_path, {name: bytes(raw)})
    with pytest.raises(DatasetError, match="0..9"):
        ds.load_mnist(d, verify=False)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1))
def test_idx_round_trip(shape, seed):
    """Parsing header + payload written by the IDX rules returns the payload."""
    shape = tuple(shape)
    data = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, len(shape)]) + b"".join(s.to_bytes(4, "big") for s in shape)
    got = ds.mnist._parse_idx(raw + data.tobytes(), "x", shape)
    np.testing.assert_array_equal(got, data)
    with pytest.raises(DatasetError, match="longer"):
        ds.mnist._parse_idx(raw + data.tobytes() + b"\x00", "x", shape)


# ---------------------------------------------------------------------------
# Embedded subset
# ---------------------------------------------------------------------------

def test_subset_loads_without_directory_or_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("load_mnist() must not open a socket")
    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    X_train, y_train, X_test, y_test = ds.load_mnist()
    info = ds.mnist_subset_info()
    assert info["n_train"] == 10 * info["n_train_per_class"] == 10000
    assert info["n_test"] == 10 * info["n_test_per_class"] == 2000
    assert X_train.shape == (10000, 28, 28) and X_test.shape == (2000, 28, 28)
    assert X_train.dtype == X_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    # stratified: exactly n_per_class of each class
    assert np.bincount(y_train, minlength=10).tolist() == [1000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [200] * 10
    assert info["seed"] == 0 and info["builder"] == "cvx_fenchel.datasets.build_mnist_subset"
    assert info["source_md5"] == [m for _, m, _ in ds.MNIST_FILES.values()]
    assert ds.MNIST_SUBSET_PATH.stat().st_size < 4 * 2**20
    Xn, _, _, _ = ds.load_mnist(normalize=True, flatten=True)
    np.testing.assert_array_equal(Xn * 255.0, X_train.reshape(10000, 784))


@needs_mnist
def test_subset_rows_are_official_rows(mnist_full):
    """Row i of the subset is row indices[i] of the official split (train from train, test from test)."""
    X_train, y_train, X_test, y_test = ds.load_mnist()
    info = ds.mnist_subset_info()
    for X, y, idx, (Xf, yf), n in ((X_train, y_train, info["train_indices"], mnist_full[:2], 60000),
                                   (X_test, y_test, info["test_indices"], mnist_full[2:], 10000)):
        assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < n  # distinct, sorted
        np.testing.assert_array_equal(X, Xf[idx])
        np.testing.assert_array_equal(y, yf[idx])


@needs_mnist
def test_build_subset_is_reproducible(tmp_path):
    out = tmp_path / "sub.npz"
    rep = ds.build_mnist_subset(MNIST_DIR, out, n_train_per_class=1000, n_test_per_class=200, seed=0)
    assert rep["n_train"] == 10000 and rep["n_test"] == 2000
    with np.load(out) as new, np.load(ds.MNIST_SUBSET_PATH) as shipped:
        assert sorted(new.files) == sorted(shipped.files)
        for k in new.files:
            np.testing.assert_array_equal(new[k], shipped[k])
    small = ds.build_mnist_subset(MNIST_DIR, tmp_path / "s.npz", n_train_per_class=3,
                                  n_test_per_class=2, seed=1)
    with np.load(tmp_path / "s.npz") as z:
        assert np.bincount(z["y_train"], minlength=10).tolist() == [3] * 10
        assert np.bincount(z["y_test"], minlength=10).tolist() == [2] * 10
    assert small["n_train"] == 30
    with pytest.raises(InputError, match="n_test_per_class"):
        ds.build_mnist_subset(MNIST_DIR, tmp_path / "t.npz", n_test_per_class=893)


# ---------------------------------------------------------------------------
# Download from a loopback server
# ---------------------------------------------------------------------------

class _Server:
    """http.server on 127.0.0.1:0 in a thread, serving ``root`` and recording request paths."""

    def __init__(self, root: Path):
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture()
def served(tmp_path):
    """A temporary copy of the shared MNIST files under <root>/mnist/, and the root."""
    if not MNIST_DIR.is_dir():
        pytest.skip(f"full MNIST not found at {MNIST_DIR}")
    root = tmp_path / "www"
    shutil.copytree(MNIST_DIR, root / "mnist")
    for f in (root / "mnist").iterdir():
        f.chmod(0o644)
    return root


def test_download_verifies_and_skips_valid_files(served, tmp_path, mnist_full):
    target = tmp_path / "dl"
    with _Server(served) as srv:
        assert ds.download_mnist(target, base_url=srv.url, timeout=10) == target
        assert sorted(srv.requests) == sorted(f"/mnist/{n}.gz" for n in NAMES)
        for a, b in zip(ds.load_mnist(target), mnist_full):
            np.testing.assert_array_equal(a, b)
        ds.download_mnist(target, base_url=srv.url.rstrip("/"), timeout=10)
        assert len(srv.requests) == 4  # second call: every file already valid, nothing fetched
    assert not [p for p in target.iterdir() if p.name.startswith(".tmp-")]


def test_download_replaces_invalid_local_copy(served, tmp_path):
    target = tmp_path / "dl"
    target.mkdir()
    bad = target / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"garbage")  # an uncompressed copy would shadow the .gz in load_mnist
    with _Server(served) as srv:
        ds.download_mnist(target, base_url=srv.url, timeout=10)
        assert "/mnist/t10k-labels-idx1-ubyte.gz" in srv.requests
    assert not bad.exists()
    assert np.bincount(ds.load_mnist(target)[3]).tolist() == TEST_COUNTS


def test_download_corrupt_file_raises_and_writes_nothing(served, tmp_path):
    name = "t10k-labels-idx1-ubyte"
    gz = served / "mnist" / (name + ".gz")
    raw = bytearray(gzip.decompress(gz.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # a valid-looking but wrong label
    gz.write_bytes(gzip.compress(bytes(raw)))
    target = tmp_path / "dl"
    with _Server(served) as srv, pytest.raises(DatasetError, match="MD5") as err:
        ds.download_mnist(target, base_url=srv.url, timeout=10)
    assert name in str(err.value) and srv.url + name + ".gz" in str(err.value)
    assert not (target / (name + ".gz")).exists() and not (target / name).exists()
    assert sorted(p.name for p in target.iterdir()) == sorted(n + ".gz" for n in NAMES[:3])


def test_download_not_gzip(served, tmp_path):
    (served / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"<html>not found</html>")
    with _Server(served) as srv, pytest.raises(DatasetError, match="not a valid gzip"):
        ds.download_mnist(tmp_path / "dl", base_url=srv.url, timeout=10)
    assert list((tmp_path / "dl").iterdir()) == []


def test_download_http_404_names_url(served, tmp_path):
    (served / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    with _Server(served) as srv, pytest.raises(DatasetError, match="404") as err:
        ds.download_mnist(tmp_path / "dl", base_url=srv.url, timeout=10)
    assert srv.url + "train-labels-idx1-ubyte.gz" in str(err.value)


def test_download_connection_refused_names_url(tmp_path):
    with socket.socket() as s:  # find a free loopback port, then close it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mnist/"
    with pytest.raises(DatasetError) as err:
        ds.download_mnist(tmp_path / "dl", base_url=url, timeout=5)
    assert url + "train-images-idx3-ubyte.gz" in str(err.value)
    with pytest.raises(InputError, match="timeout"):
        ds.download_mnist(tmp_path / "dl", base_url=url, timeout=0)


# ---------------------------------------------------------------------------
# CIFAR-10 (tiny fake directory in the official pickle layout)
# ---------------------------------------------------------------------------

def _write_cifar(root: Path, sizes=(3, 4, 2, 5, 3, 6), protocol=2, rename_numpy_core=False):
    """Write cifar-10-batches-py/ like the official archive (see shared to_canonical.py).

    Returns the (n, 3072) rows and labels written, train batches then test batch.
    ``rename_numpy_core`` rewrites the pickles' numpy._core globals to numpy.core, as
    in the official Python-2-era files.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    written = []

    def dump(obj, path):
        blob = pickle.dumps(obj, protocol=protocol)
        if rename_numpy_core:
            blob = blob.replace(b"numpy._core.", b"numpy.core.")
        path.write_bytes(blob)

    for name, n in zip(names, sizes):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n)
        dump({b"batch_label": name.encode(), b"labels": [int(v) for v in labels], b"data": data,
              b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}, folder / name)
        written.append((data, labels))
    dump({b"label_names": [c.encode() for c in ds.CIFAR10_CLASSES],
          b"num_cases_per_batch": 10000, b"num_vis": 3072}, folder / "batches.meta")
    return folder, written


def _nhwc_by_formula(rows):
    """X[i, h, w, c] = rows[i, c*1024 + h*32 + w], by explicit index arithmetic."""
    i, h, w, c = np.ix_(np.arange(rows.shape[0]), np.arange(32), np.arange(32), np.arange(3))
    return rows[i, c * 1024 + h * 32 + w]


@pytest.mark.parametrize("protocol,rename", [(2, True), (2, False), (4, False), (5, False)])
def test_cifar10_layout(tmp_path, protocol, rename):
    folder, written = _write_cifar(tmp_path, protocol=protocol, rename_numpy_core=rename)
    for where in (tmp_path, folder):  # parent or the folder itself
        X_train, y_train, X_test, y_test = ds.load_cifar10(where)
        rows_train = np.concatenate([d for d, _ in written[:5]])
        assert X_train.shape == (17, 32, 32, 3) and X_train.dtype == np.uint8
        assert X_test.shape == (6, 32, 32, 3) and y_test.dtype == y_train.dtype == np.int64
        np.testing.assert_array_equal(X_train, _nhwc_by_formula(rows_train))
        np.testing.assert_array_equal(X_test, _nhwc_by_formula(written[5][0]))
        np.testing.assert_array_equal(y_train, np.concatenate([y for _, y in written[:5]]))
        np.testing.assert_array_equal(y_test, written[5][1])
    Xn = ds.load_cifar10(folder, normalize=True)[0]
    assert Xn.dtype == np.float64 and 0.0 <= Xn.min() and Xn.max() <= 1.0
    np.testing.assert_array_equal(Xn * 255.0, X_train.astype(np.float64))


@pytest.mark.parametrize("missing", ["data_batch_3", "test_batch", "batches.meta"])
def test_cifar10_missing_file(tmp_path, missing):
    folder, _ = _write_cifar(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(DatasetError, match=missing) as err:
        ds.load_cifar10(tmp_path)
    assert "cifar-10-python.tar.gz" in str(err.value)


def test_cifar10_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ds.load_cifar10(tmp_path / "nope")
    folder, _ = _write_cifar(tmp_path)
    # a pickle that would run code is refused, not executed
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').close()",)

    (folder / "data_batch_2").write_bytes(pickle.dumps(
        {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": Evil()}, protocol=4))
    with pytest.raises(DatasetError, match="builtins.exec is not allowed"):
        ds.load_cifar10(folder)
    assert not marker.exists()
    (folder / "data_batch_2").write_bytes(pickle.dumps(
        {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(DatasetError, match=r"\(n, 3072\)"):
        ds.load_cifar10(folder)
    (folder / "data_batch_2").write_bytes(pickle.dumps(
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, protocol=2))
    with pytest.raises(DatasetError, match="0..9"):
        ds.load_cifar10(folder)


@pytest.mark.slow
def test_cifar10_shared_copy(tmp_path):
    """Full run: rebuild the canonical layout from the shared JPEG copy and load it."""
    pytest.importorskip("PIL", reason="to_canonical.py needs Pillow")
    if not CIFAR_SCRIPT.is_file():
        pytest.skip(f"{CIFAR_SCRIPT} not found")
    subprocess.run([sys.executable, str(CIFAR_SCRIPT), str(tmp_path)], check=True,
                   capture_output=True, timeout=600)
    X_train, y_train, X_test, y_test = ds.load_cifar10(tmp_path)
    assert X_train.shape == (50000, 32, 32, 3) and X_test.shape == (10000, 32, 32, 3)
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 4), seed=st.integers(0, 2**32 - 1), channel=st.booleans())
def test_pad_to_32(n, seed, channel):
    shape = (n, 1, 28, 28) if channel else (n, 28, 28)
    x = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    p = ds.pad_to_32(x)
    assert p.shape == shape[:-2] + (32, 32) and p.dtype == x.dtype
    np.testing.assert_array_equal(p[..., 2:30, 2:30], x)
    assert p.astype(np.int64).sum() == x.astype(np.int64).sum()  # the border is zero
    if not channel:  # flat (n, 784) input is read as (n, 28, 28)
        np.testing.assert_array_equal(ds.pad_to_32(x.reshape(n, 784)), p)


def test_pad_to_32_rejects_other_sizes():
    with pytest.raises(InputError, match=r"\(\.\.\., 28, 28\)"):
        ds.pad_to_32(np.zeros((2, 32, 32)))


@settings(max_examples=30, deadline=None)
@given(y=st.lists(st.integers(0, 9), max_size=50), k=st.integers(10, 12))
def test_one_hot(y, k):
    y = np.array(y, dtype=np.int64)
    Y = ds.one_hot(y, k)
    assert Y.shape == (y.size, k) and Y.dtype == np.float64
    np.testing.assert_array_equal(Y @ np.arange(k), y)  # Y e = y for e = (0, ..., k-1)
    np.testing.assert_array_equal(Y.sum(axis=1), np.ones(y.size))
    np.testing.assert_array_equal(Y, np.eye(k)[y])


def test_one_hot_rejects_bad_labels():
    with pytest.raises(InputError, match=r"0\.\.9"):
        ds.one_hot(np.array([0, 10]), 10)
    with pytest.raises(InputError, match=r"0\.\.2"):
        ds.one_hot(np.array([-1, 0]), 3)
    with pytest.raises(InputError, match="1-D"):
        ds.one_hot(np.zeros((2, 2), int))
    with pytest.raises(InputError, match="integer labels"):
        ds.one_hot(np.array([0.5]))
    with pytest.raises(InputError, match="n_classes"):
        ds.one_hot(np.array([0]), 0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), b=st.integers(1, 20), seed=st.integers(0, 100), drop=st.booleans())
def test_train_batches_partition(n, b, seed, drop):
    batches = list(ds.train_batches(n, b, seed, drop_last=drop))
    kept = n - n % b if drop else n
    assert all(len(idx) == b for idx in batches[:-1])
    allidx = np.concatenate(batches) if batches else np.zeros(0, int)
    assert allidx.size == kept and np.unique(allidx).size == kept and allidx.max(initial=-1) < n
    again = list(ds.train_batches(n, b, np.random.default_rng(seed), drop_last=drop))
    assert all(np.array_equal(u, v) for u, v in zip(batches, again))  # same seed, same epoch
    np.testing.assert_array_equal(np.concatenate(list(ds.train_batches(n, b))), np.arange(n))
    with pytest.raises(InputError, match="batch_size"):
        next(ds.train_batches(n, 0))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), images=st.booleans(), n=st.integers(2, 6))
def test_standardize(seed, images, n):
    rng = np.random.default_rng(seed)
    shape = (n, 4, 4, 3) if images else (n, 7)
    scale = np.array([1.0, 10.0, 0.1]) if images else 3.0
    Xtr = rng.uniform(-1, 2, size=shape) * scale + 5.0
    Xte = rng.uniform(-1, 2, size=(3,) + shape[1:]) * scale + 5.0
    Str, Ste = ds.standardize(Xtr, Xte)
    axes = (0, 1, 2) if images else None  # per RGB channel; one channel for a flat vector
    np.testing.assert_allclose(Str.mean(axis=axes), 0.0, atol=1e-12)
    np.testing.assert_allclose(Str.std(axis=axes), 1.0, rtol=1e-12)
    # the test set gets the training set's affine map: x = mu + sigma * s on both
    mu, sd = Xtr.mean(axis=axes), Xtr.std(axis=axes)
    np.testing.assert_allclose(mu + sd * Ste, Xte, rtol=1e-12)
    assert Str.dtype == Xtr.dtype and Ste.shape == Xte.shape


def test_standardize_refuses_constant_channels_and_shape_mismatch():
    X = np.ones((4, 2, 2, 3))
    X[..., 0] = np.arange(16).reshape(4, 2, 2)
    with pytest.raises(InputError, match=r"channel\(s\) \[1, 2\].*constant"):
        ds.standardize(X, X)
    with pytest.raises(InputError, match="differ in shape"):
        ds.standardize(np.zeros((2, 3)), np.zeros((2, 4)))
