"""Reliability, class 4 (data files and labels): corrupt, truncated, empty or mislabelled files and
bad labels get a ValueError/TypeError that names the file or argument and what is wrong."""
from __future__ import annotations

import gzip
import pickle
import struct

import jax
import numpy as np
import pytest

from ntknotes.data import encode_targets, normalize_inputs
from ntknotes.data.core import check_labels
from ntknotes.data.files import load_cifar10, load_mnist, read_cifar10_batch, read_idx, write_idx


def _mnist_dir(path, labels_train=None):
    rng = np.random.default_rng(0)
    write_idx(path / "train-images-idx3-ubyte", rng.integers(0, 256, (6, 28, 28), dtype=np.uint8))
    ltr = np.arange(6, dtype=np.uint8) if labels_train is None else labels_train
    write_idx(path / "train-labels-idx1-ubyte", ltr)
    write_idx(path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (3, 28, 28), dtype=np.uint8))
    write_idx(path / "t10k-labels-idx1-ubyte", np.arange(3, dtype=np.uint8))


def test_idx_empty_file(tmp_path):
    (tmp_path / "e").write_bytes(b"")
    with pytest.raises(ValueError, match=r"e is empty"):
        read_idx(tmp_path / "e")


def test_idx_truncated_payload_and_header(tmp_path):
    write_idx(tmp_path / "a", np.zeros((4, 5), np.uint8))
    raw = (tmp_path / "a").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match=r"short: header says shape \(4, 5\).*truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="longer than its header"):
        read_idx(tmp_path / "long")
    (tmp_path / "head").write_bytes(raw[:6])
    with pytest.raises(ValueError, match="announces 2 dimensions"):
        read_idx(tmp_path / "head")


def test_idx_gz_that_is_not_gzip_and_truncated_gzip(tmp_path):
    write_idx(tmp_path / "plain", np.zeros(10, np.uint8))
    (tmp_path / "fake.gz").write_bytes((tmp_path / "plain").read_bytes())
    with pytest.raises(ValueError, match="fake.gz is named .gz but is not a gzip file"):
        read_idx(tmp_path / "fake.gz")
    write_idx(tmp_path / "real.gz", np.zeros(5000, np.uint8))
    data = (tmp_path / "real.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.gz is a truncated or corrupt gzip"):
        read_idx(tmp_path / "cut.gz")


def test_idx_float_payload_with_nan(tmp_path):
    values = np.array([1.0, np.nan, 2.0], dtype=">f8")
    (tmp_path / "f").write_bytes(bytes([0, 0, 0x0E, 1]) + struct.pack(">i", 3) + values.tobytes())
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        read_idx(tmp_path / "f")


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        read_idx(tmp_path / "nothing")


def test_mnist_labels_outside_the_class_range(tmp_path):
    _mnist_dir(tmp_path, labels_train=np.array([0, 1, 2, 12, 4, 5], np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte must lie in \[0, 10\).*12 at index 3"):
        load_mnist(tmp_path, 2, 2, key=jax.random.PRNGKey(0))


def _cifar_batch(path, data, labels):
    with open(path, "wb") as fh:
        pickle.dump({b"data": data, b"labels": labels}, fh)


def test_cifar_truncated_empty_and_foreign(tmp_path):
    data = np.zeros((2, 3072), np.uint8)
    _cifar_batch(tmp_path / "ok", data, [0, 1])
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "cut").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="cut is not a readable CIFAR-10 python batch"):
        read_cifar10_batch(tmp_path / "cut")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="empty is empty"):
        read_cifar10_batch(tmp_path / "empty")
    (tmp_path / "text").write_text("hello, world\n")
    with pytest.raises(ValueError, match="text is not a readable CIFAR-10"):
        read_cifar10_batch(tmp_path / "text")
    with gzip.open(tmp_path / "zipped", "wb") as fh:  # a gzip file without the .gz name
        fh.write(raw)
    with pytest.raises(ValueError, match="zipped is not a readable CIFAR-10"):
        read_cifar10_batch(tmp_path / "zipped")


def test_cifar_bad_labels_and_pixels(tmp_path):
    _cifar_batch(tmp_path / "neg", np.zeros((2, 3072), np.uint8), [0, -1])
    with pytest.raises(ValueError, match=r"labels of .*neg must lie in \[0, 10\).*-1 at index 1"):
        read_cifar10_batch(tmp_path / "neg")
    px = np.zeros((2, 3072))
    px[1, 7] = np.nan
    _cifar_batch(tmp_path / "nan", px, [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        read_cifar10_batch(tmp_path / "nan")
    _cifar_batch(tmp_path / "big", np.full((2, 3072), 300, np.int64), [0, 1])
    with pytest.raises(ValueError, match="0..255"):
        read_cifar10_batch(tmp_path / "big")


def test_cifar_loader_names_the_bad_batch(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    _cifar_batch(root / "data_batch_1", np.zeros((3, 3072), np.uint8), [0, 1, 2])
    _cifar_batch(root / "test_batch", np.zeros((3, 3072), np.uint8), [0, 1, 2])
    (root / "data_batch_2").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="data_batch_2 is not a readable"):
        load_cifar10(tmp_path, 2, 2, key=jax.random.PRNGKey(0))


@pytest.mark.parametrize(
    "labels, err, match",
    [
        ([0, 1, -1], ValueError, r"-1 at index 2"),
        ([0, 3], ValueError, r"\[0, 3\)"),
        ([0.0, 1.5], TypeError, "integer"),
        (["a", "b"], TypeError, "integer"),
        ([], ValueError, "empty"),
        ([[0, 1]], ValueError, "1-D"),
    ],
)
def test_encode_targets_checks_labels(labels, err, match):
    with pytest.raises(err, match=match):
        encode_targets(np.asarray(labels), 3, "onehot")


def test_pm1_refuses_labels_other_than_0_and_1():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        encode_targets(np.array([0, 1, 5]), 2, "pm1")
    np.testing.assert_array_equal(encode_targets(np.array([0, 1]), 2, "pm1")[:, 0], [-1.0, 1.0])


def test_integer_valued_float_labels_are_accepted():
    np.testing.assert_array_equal(check_labels(np.array([0.0, 2.0]), 3), [0, 2])


def test_normalize_inputs_refuses_nan_and_empty():
    x = np.ones((3, 2))
    bad = x.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="x_train contains 1 NaN"):
        normalize_inputs(bad, x, "sphere")
    with pytest.raises(ValueError, match="x_test must be a non-empty"):
        normalize_inputs(x, np.ones((0, 2)), "none")
