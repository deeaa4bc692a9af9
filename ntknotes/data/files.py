"""MNIST (idx files) and CIFAR-10 (python pickle batches) from a local directory.

Nothing is downloaded unless a caller passes ``download=True`` (and the machine has network
access); the loaders otherwise read the standard files the datasets are distributed as:

* MNIST: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (each optionally gzipped, ``.gz``), in ``data_dir``;
* CIFAR-10: ``data_batch_1`` … ``data_batch_5`` and ``test_batch`` (pickled dicts with ``b"data"``,
  uint8 rows of 3072 = 3 × 32 × 32 values, channels first, and ``b"labels"``), in ``data_dir`` or
  in ``data_dir/cifar-10-batches-py`` (the layout of the official archive).
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile
import urllib.request
import zlib
from pathlib import Path
from typing import Optional, Union

import jax
import numpy as np

from .._checks import check_key, check_positive_int
from .core import Dataset, check_labels, encode_targets, normalize_inputs

__all__ = ["read_idx", "write_idx", "load_mnist", "read_cifar10_batch", "load_cifar10"]

PathLike = Union[str, "os.PathLike[str]"]
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path, what: str) -> bytes:
    """The bytes of ``path``, gunzipped when its name ends in ``.gz``; a ValueError naming the file
    when it is missing, empty, not gzip despite its name, or a truncated gzip stream."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except gzip.BadGzipFile as err:
        raise ValueError(f"{path} is named .gz but is not a gzip file ({err})") from err
    except (EOFError, zlib.error) as err:
        raise ValueError(f"{path} is a truncated or corrupt gzip file ({err})") from err
    if not raw:
        raise ValueError(f"{path} is empty; expected {what} data")
    return raw


def read_idx(path: PathLike) -> np.ndarray:
    """Read an idx file (the MNIST format; gzipped if the name ends in ``.gz``) into an array.

    Args:
      path: the file; ``.gz`` names are decompressed.
    Returns:
      The array with the shape and dtype the header gives (uint8 images/labels for MNIST).
    Raises:
      ValueError naming the file if it is empty, not gzip despite a ``.gz`` name, a truncated gzip
      stream, has a bad magic number, a header cut short, a negative dimension, a payload of the
      wrong size (truncated or padded), or NaN/infinite values in a floating-point payload.
    """
    path = Path(path)
    raw = _read_bytes(path, "idx")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: the idx header announces {ndim} dimensions but the file ends after {len(raw)} bytes")
    dims = struct.unpack(">" + "i" * ndim, raw[4 : 4 + 4 * ndim])
    if any(d < 0 for d in dims):
        raise ValueError(f"{path}: the idx header has a negative dimension {dims}")
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    payload = len(raw) - 4 - 4 * ndim
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if payload != expected:
        state = "truncated" if payload < expected else "longer than its header says"
        raise ValueError(
            f"{path}: header says shape {dims} ({expected} bytes of {dtype}) but the file holds {payload} bytes ({state})"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise ValueError(f"{path} holds {int(np.sum(~np.isfinite(data)))} NaN or infinite values")
    return data.reshape(dims)


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file (gzipped if the name ends in ``.gz``); used by tests."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx writes uint8 arrays, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "i" * array.ndim, *array.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())


def _find(data_dir: Path, name: str) -> Optional[Path]:
    for candidate in (data_dir / name, data_dir / (name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        urllib.request.urlretrieve(url, dest)  # noqa: S310 (fixed https URLs)
    except OSError as err:
        raise OSError(f"could not download {url} ({err}); put the files in {dest.parent} by hand") from err


def _subset(n_available: int, n: int, key: jax.Array, what: str) -> np.ndarray:
    if n > n_available:
        raise ValueError(f"asked for {n} {what} points but the files hold {n_available}")
    return np.sort(np.asarray(jax.random.permutation(key, n_available))[:n])


def _finish(x_tr, l_tr, x_te, l_te, targets, normalize, name, image_shape) -> Dataset:
    xtr, xte = normalize_inputs(x_tr.reshape(len(x_tr), -1) / 255.0, x_te.reshape(len(x_te), -1) / 255.0, normalize)
    n_classes = 10
    return Dataset(
        x_train=xtr, y_train=encode_targets(l_tr, n_classes, targets),
        x_test=xte, y_test=encode_targets(l_te, n_classes, targets),
        labels_train=l_tr.astype(np.int64), labels_test=l_te.astype(np.int64),
        name=name, image_shape=image_shape,
    )


def load_mnist(
    data_dir: PathLike,
    n_train: int = 1000,
    n_test: int = 500,
    *,
    key: jax.Array,
    targets: str = "onehot",
    normalize: str = "sphere",
    download: bool = False,
) -> Dataset:
    """Random subsets of MNIST's training and test sets from the idx files in ``data_dir``.

    Args:
      data_dir: directory holding the four idx files (optionally ``.gz``).
      n_train, n_test: subset sizes (drawn from the 60,000 / 10,000 images).
      key: PRNG key for the subsets.
      targets, normalize: see :func:`ntknotes.data.encode_targets` and :func:`ntknotes.data.normalize_inputs`
        (pixels are first scaled to [0, 1]).
      download: fetch missing files (needs network access).
    Returns:
      A :class:`Dataset` with 784-dimensional inputs and ``image_shape=(28, 28, 1)``.
    Raises:
      FileNotFoundError naming the missing file when ``download`` is False.
    """
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    data_dir = Path(data_dir)
    paths = {}
    for part, name in MNIST_FILES.items():
        found = _find(data_dir, name)
        if found is None:
            if not download:
                raise FileNotFoundError(
                    f"MNIST file {name}(.gz) not found in {data_dir}; pass download=True (needs network) or copy it there"
                )
            found = data_dir / (name + ".gz")
            _download(MNIST_URL + name + ".gz", found)
        paths[part] = found
    check_key(key)
    xtr, ltr = read_idx(paths["train_images"]), read_idx(paths["train_labels"])
    xte, lte = read_idx(paths["test_images"]), read_idx(paths["test_labels"])
    if xtr.ndim != 3 or len(xtr) != len(ltr) or xte.ndim != 3 or len(xte) != len(lte):
        raise ValueError(f"MNIST files in {data_dir} have inconsistent shapes: {xtr.shape}, {ltr.shape}, {xte.shape}, {lte.shape}")
    ltr = check_labels(ltr, 10, f"labels in {paths['train_labels']}")
    lte = check_labels(lte, 10, f"labels in {paths['test_labels']}")
    k1, k2 = jax.random.split(key)
    itr, ite = _subset(len(xtr), n_train, k1, "training"), _subset(len(xte), n_test, k2, "test")
    h, w = xtr.shape[1:]
    return _finish(xtr[itr].astype(np.float64), ltr[itr], xte[ite].astype(np.float64), lte[ite],
                   targets, normalize, "MNIST", (h, w, 1))


def read_cifar10_batch(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images (n, 32, 32, 3) uint8 (channels last) and labels (n,)."""
    path = Path(path)
    raw = _read_bytes(path, "CIFAR-10 batch")
    try:
        batch = pickle.loads(raw, encoding="bytes")  # noqa: S301 (a local dataset file the caller chose)
    except Exception as err:  # truncated or foreign files raise many types (EOFError, UnpicklingError, ...)
        raise ValueError(f"{path} is not a readable CIFAR-10 python batch ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (a dict with b'data' and b'labels')")
    data = np.asarray(batch[b"data"])
    if data.dtype != np.uint8:
        if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
            raise ValueError(f"{path}: the pixel data holds NaN or infinite values")
        if data.dtype.kind not in "iuf" or data.size and (data.min() < 0 or data.max() > 255 or np.any(data != np.round(data))):
            raise ValueError(f"{path}: pixels must be integers in 0..255, got dtype {data.dtype}")
        data = data.astype(np.uint8)
    labels = check_labels(np.asarray(batch[b"labels"]), 10, f"labels of {path}")
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{path}: expected data (n, 3072) and n labels, got {data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar10(
    data_dir: PathLike,
    n_train: int = 1000,
    n_test: int = 500,
    *,
    key: jax.Array,
    targets: str = "onehot",
    normalize: str = "sphere",
    download: bool = False,
) -> Dataset:
    """Random subsets of CIFAR-10's training and test batches (python pickle format) in ``data_dir``.

    Args:
      data_dir: directory holding ``data_batch_1..5`` and ``test_batch``, directly or in
        ``cifar-10-batches-py/``.
      n_train, n_test, key, targets, normalize: as in :func:`load_mnist`.
      download: fetch and unpack the official archive when the batches are missing (needs network).
    Returns:
      A :class:`Dataset` with 3072-dimensional inputs (pixels in (H, W, C) order) and
      ``image_shape=(32, 32, 3)``.
    """
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    data_dir = Path(data_dir)
    root = data_dir / "cifar-10-batches-py" if (data_dir / "cifar-10-batches-py").is_dir() else data_dir
    if not (root / "test_batch").exists():
        if not download:
            raise FileNotFoundError(
                f"CIFAR-10 batches (data_batch_1..5, test_batch) not found in {data_dir}; "
                "pass download=True (needs network) or unpack cifar-10-python.tar.gz there"
            )
        archive = data_dir / "cifar-10-python.tar.gz"
        _download(CIFAR10_URL, archive)
        with tarfile.open(archive) as tar:
            tar.extractall(data_dir, filter="data")
        root = data_dir / "cifar-10-batches-py"
    train_files = sorted(root.glob("data_batch_*"))
    if not train_files:
        raise FileNotFoundError(f"no data_batch_* files in {root}")
    check_key(key)
    parts = [read_cifar10_batch(f) for f in train_files]
    xtr = np.concatenate([p[0] for p in parts])
    ltr = np.concatenate([p[1] for p in parts])
    xte, lte = read_cifar10_batch(root / "test_batch")
    k1, k2 = jax.random.split(key)
    itr, ite = _subset(len(xtr), n_train, k1, "training"), _subset(len(xte), n_test, k2, "test")
    return _finish(xtr[itr].astype(np.float64), ltr[itr], xte[ite].astype(np.float64), lte[ite],
                   targets, normalize, "CIFAR-10", (32, 32, 3))
