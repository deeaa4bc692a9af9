"""MNIST idx and CIFAR-10 pickle loaders on tiny files written here, and the paper preset's code
path on synthetic CIFAR-10 files."""
import dataclasses
import pickle

import jax
import numpy as np
import pytest

import ntknotes  # noqa: F401
from ntknotes.data import load_cifar10, load_mnist, read_idx, write_idx


def _write_mnist(d, rng, gz):
    sfx = ".gz" if gz else ""
    xtr = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    ltr = (np.arange(12) % 10).astype(np.uint8)
    xte = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    lte = (np.arange(6) % 10).astype(np.uint8)
    write_idx(d / f"train-images-idx3-ubyte{sfx}", xtr)
    write_idx(d / f"train-labels-idx1-ubyte{sfx}", ltr)
    write_idx(d / f"t10k-images-idx3-ubyte{sfx}", xte)
    write_idx(d / f"t10k-labels-idx1-ubyte{sfx}", lte)
    return xtr, ltr, xte, lte


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_roundtrip(tmp_path, gz):
    xtr, ltr, xte, lte = _write_mnist(tmp_path, np.random.default_rng(0), gz)
    np.testing.assert_array_equal(read_idx(tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))), xtr)
    # the idx header: magic 0x00000803 then the dimensions, big-endian
    raw = (tmp_path / "t10k-labels-idx1-ubyte").read_bytes() if not gz else None
    if raw is not None:
        assert raw[:8] == bytes([0, 0, 8, 1, 0, 0, 0, 6])
    ds = load_mnist(tmp_path, 12, 6, key=jax.random.PRNGKey(0), normalize="none")
    assert ds.x_train.shape == (12, 784) and ds.image_shape == (28, 28, 1)
    # every training image is one of the written ones, with its own label, scaled to [0, 1]
    flat = xtr.reshape(12, -1) / 255.0
    for row, lab in zip(ds.x_train, ds.labels_train):
        i = int(np.argmin(np.abs(flat - row).sum(1)))
        np.testing.assert_allclose(flat[i], row)
        assert ltr[i] == lab
    np.testing.assert_array_equal(np.sort(ds.labels_test), np.sort(lte))
    assert ds.y_train.shape == (12, 10)


def _write_cifar(root, rng, n_per_batch=4, n_batches=2):
    root.mkdir(parents=True, exist_ok=True)
    images = []
    for b in range(n_batches + 1):
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, size=n_per_batch))
        name = "test_batch" if b == n_batches else f"data_batch_{b + 1}"
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, fh)
        images.append((data, labels))
    return images


def test_cifar_layout_and_channels(tmp_path):
    batches = _write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(1))
    ds = load_cifar10(tmp_path, 8, 4, key=jax.random.PRNGKey(0), normalize="none")
    assert ds.image_shape == (32, 32, 3) and ds.x_train.shape == (8, 3072)
    # a training image, channels first in the file, must come back channels last
    data = np.concatenate([b[0] for b in batches[:2]])
    img = ds.images("train")[0] * 255.0
    i = int(np.argmin(np.abs(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1) - img).sum((1, 2, 3))))
    np.testing.assert_allclose(data[i].reshape(3, 32, 32)[1], img[:, :, 1])  # green plane
    assert ds.labels_test.shape == (4,)


def test_missing_files_and_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist(tmp_path, 2, 2, key=jax.random.PRNGKey(0))
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_cifar10(tmp_path, 2, 2, key=jax.random.PRNGKey(0))
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="idx"):
        read_idx(tmp_path / "junk")
    with pytest.raises(TypeError):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.float32))
    _write_mnist(tmp_path, np.random.default_rng(0), False)
    with pytest.raises(ValueError, match="asked for"):
        load_mnist(tmp_path, 100, 2, key=jax.random.PRNGKey(0))


def test_paper_preset_runs_on_synthetic_cifar(tmp_path):
    """The ``paper`` preset's code path (CIFAR-10 files, 32×32×3, depths from the seed's table) at a tiny size."""
    from ntknotes.experiments import in_practice as ip

    _write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(2), n_per_batch=6)
    paper = ip.PRESETS["paper"]
    cfg = dataclasses.replace(paper, data_dir=str(tmp_path), cnn_train=8, cnn_test=4, cnn_depths=(3, 4),
                              cnn_channels=4, cnn_epochs=2, cnn_batch=4)
    assert paper.cnn_depths == (3, 4, 6, 11, 21) and paper.dataset == "cifar10"
    tab = ip.cnn_table(cfg, key=jax.random.PRNGKey(0))
    assert tab.dataset == "CIFAR-10" and list(tab.depths) == [3, 4]
    for name in ("cnn_v", "cntk_v", "cnn_gap", "cntk_gap"):
        acc = getattr(tab, name)
        assert acc.shape == (2,) and np.all((0 <= acc) & (acc <= 1))


def test_mnist1d_generation():
    from ntknotes.data import make_mnist1d, mnist1d_templates

    t = mnist1d_templates()
    assert t.shape == (10, 12) and np.all(t[:, 0] == 0) and np.allclose(t[:, -1], 0)
    a = make_mnist1d(200, 100, key=jax.random.PRNGKey(0))
    b = make_mnist1d(200, 100, key=jax.random.PRNGKey(0))
    np.testing.assert_array_equal(a.x_train, b.x_train)  # determined by the key
    assert a.x_train.shape == (200, 40) and a.image_shape == (40, 1, 1)
    both = np.concatenate([a.labels_train, a.labels_test])
    assert np.array_equal(np.bincount(both, minlength=10), np.full(10, 30))  # 30 of each class in all
    x = np.concatenate([a.x_train, a.x_test])
    assert abs(x.mean()) < 1e-12 and abs(x.std() - 1) < 1e-12  # the set is standardized as a whole
    # without noise, rescaling, shear or translation, an example is its template stretched to 40
    # points (then the set is standardized as a whole)
    c = make_mnist1d(10, 10, key=jax.random.PRNGKey(1), padding=(0, 0), scale_coeff=0.0, shear_scale=0.0,
                     max_translation=1, corr_noise_scale=0.0, iid_noise_scale=0.0)
    raw = np.stack([np.interp(np.linspace(0, 1, 40), np.linspace(0, 1, 12), t[lab] + 1e-8)
                    for lab in np.concatenate([c.labels_train, c.labels_test])])
    np.testing.assert_allclose(np.concatenate([c.x_train, c.x_test]), (raw - raw.mean()) / raw.std(), atol=1e-12)
    # the classes survive the transformations: a nearest-class-mean rule on the shift-invariant
    # Fourier magnitudes is far above chance (10%; one standard error of chance is 1.7 points)
    d = make_mnist1d(1000, 300, key=jax.random.PRNGKey(0))
    f = lambda x: np.abs(np.fft.rfft(x, axis=1))  # noqa: E731
    tr, te = f(d.x_train), f(d.x_test)
    means = np.stack([tr[d.labels_train == k].mean(0) for k in range(10)])
    acc = np.mean(np.argmin(((te[:, None] - means) ** 2).sum(-1), 1) == d.labels_test)
    assert acc > 0.2, acc
    with pytest.raises(TypeError, match="exactly one"):
        make_mnist1d(10, 10)
    with pytest.raises(TypeError, match="exactly one"):
        make_mnist1d(10, 10, key=jax.random.PRNGKey(0), seed=1)
    with pytest.raises(ValueError, match="padding"):
        make_mnist1d(10, 10, key=jax.random.PRNGKey(0), padding=(5, 2))
    for bad_seed in (-1, 2**32, 1.5, True, "42"):  # NumPy's RandomState takes ints in [0, 2**32)
        with pytest.raises(TypeError, match=r"seed must be an int in \[0, 2\*\*32\)"):
            make_mnist1d(10, 10, seed=bad_seed)
    assert make_mnist1d(10, 10, seed=np.uint32(2**32 - 1)).x_train.shape == (10, 40)


def test_mnist1d_equals_reference_generator():
    """seed=42 with the defaults reproduces the reference implementation's set (the mnist1d package)."""
    from mnist1d.data import get_dataset_args, make_dataset

    from ntknotes.data import make_mnist1d, mnist1d_templates

    ref = make_dataset(get_dataset_args())
    ours = make_mnist1d(seed=42)
    assert ours.x_train.shape == ref["x"].shape == (4000, 40) and ours.x_test.shape == ref["x_test"].shape
    np.testing.assert_allclose(ours.x_train, ref["x"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.x_test, ref["x_test"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.labels_train, ref["y"])
    np.testing.assert_array_equal(ours.labels_test, ref["y_test"])
    np.testing.assert_allclose(mnist1d_templates(), ref["templates"]["x"], atol=1e-15)


def test_pooling_experiment_small():
    """The MNIST-1D pooling experiment at a tiny size: shapes, accuracies in [0, 1], presets."""
    from ntknotes.experiments import in_practice as ip

    cfg = dataclasses.replace(ip.PRESETS["ci"], m1d_train=60, m1d_test=40, m1d_depths=(1, 2))
    r = ip.pooling_experiment(cfg, key=jax.random.PRNGKey(0))
    assert list(r.depths) == [1, 2] and r.examples.shape == (10, 40) and (r.n_train, r.n_test) == (60, 40)
    for acc in (r.fc_ntk, r.cntk_v, r.cntk_gap):
        assert acc.shape == (2,) and np.all((0 <= acc) & (acc <= 1))
    assert r.cntk_gap.mean() > 0.3  # far above chance (10%) even from 60 signals
    paper = ip.PRESETS["paper"]
    assert (paper.m1d_train, paper.m1d_test, paper.m1d_seed) == (4000, 1000, 42)  # the reference split
