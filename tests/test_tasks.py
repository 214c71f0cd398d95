import gzip

import numpy as np
import pytest

from adaptloop.streams.tasks import (
    load_digits_arrays,
    load_mnist,
    permuted,
    registry,
    rotated,
    split,
)


def test_split_digits_class_and_task_incremental():
    for scenario in ("class", "task"):
        seq = registry.create("split_digits", scenario=scenario, seed=1)
        assert seq.scenario == scenario and len(seq) == 5
        for task, pair in zip(seq, [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)], strict=True):
            assert task.classes == pair
            assert set(task.y_train.tolist()) == set(pair) == set(task.y_test.tolist())
            assert task.X_train.dtype == np.float32 and task.X_train.shape[1] == 64
        total = sum(len(t.y_train) + len(t.y_test) for t in seq)
        assert total == 1797


def test_train_and_test_are_disjoint_and_seeded():
    a, b, c = (load_digits_arrays(seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    train = {row.tobytes() for row in a[0]}
    test_rows = [row.tobytes() for row in a[2]]
    # digits has a handful of duplicate images; the split itself shares no sample
    assert sum(r in train for r in test_rows) < 10


def test_rotated_digits_rotates_each_task():
    seq = registry.create("rotated_digits", angles=(0.0, 90.0))
    assert seq.scenario == "domain" and seq.task_names == ["rot0", "rot90"]
    t0, t1 = seq.tasks
    np.testing.assert_array_equal(t0.y_train, t1.y_train)
    # a 90 degree rotation of an 8x8 image is exact: compare with numpy's rot90
    expected = np.rot90(t0.X_train.reshape(-1, 8, 8), k=1, axes=(1, 2)).reshape(len(t0.X_train), -1)
    np.testing.assert_allclose(t1.X_train, expected, atol=1e-5)
    assert t0.classes == tuple(range(10))


def test_permuted_is_a_fixed_permutation_per_task():
    X = np.arange(12, dtype=np.float32).reshape(3, 4) / 12
    y = np.array([0, 1, 0])
    seq = permuted(X, y, X, y, n_tasks=3, seed=4)
    np.testing.assert_array_equal(seq.tasks[0].X_train, X)
    for task in seq.tasks[1:]:
        np.testing.assert_array_equal(np.sort(task.X_train, axis=1), X)
        np.testing.assert_array_equal(task.X_test, task.X_train)  # same permutation on test
    again = permuted(X, y, X, y, n_tasks=3, seed=4)
    assert all(np.array_equal(a.X_train, b.X_train) for a, b in zip(seq, again, strict=True))


def test_bad_arguments_are_refused():
    X, y = np.eye(4, dtype=np.float32), np.arange(4)
    with pytest.raises(ValueError, match="disjoint"):
        split(X, y, X, y, [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="class- or task"):
        split(X, y, X, y, [[0, 1]], scenario="domain")
    with pytest.raises(ValueError, match="angles"):
        rotated(X, y, X, y, angles=())
    with pytest.raises(ValueError, match="unknown task sequence"):
        registry.create("split_cifar")


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_load_mnist_from_npz_and_idx(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, size=(20, 28, 28)),
        "y_train": np.arange(20) % 10,
        "x_test": rng.integers(0, 256, size=(10, 28, 28)),
        "y_test": np.arange(10),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    folder = tmp_path / "idx"
    folder.mkdir()
    names = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    for key, stem in names.items():
        _write_idx(folder / f"{stem}.gz", arrays[key])
    from_npz, from_idx = load_mnist(tmp_path / "mnist.npz"), load_mnist(folder)
    for a, b in zip(from_npz, from_idx, strict=True):
        np.testing.assert_array_equal(a, b)
    X_train, y_train, X_test, _ = from_npz
    assert X_train.shape == (20, 784) and X_train.dtype == np.float32 and X_train.max() <= 1
    np.testing.assert_allclose(X_test[3], arrays["x_test"][3].ravel() / 255.0, rtol=1e-6)
    seq = registry.create("split_mnist", path=str(tmp_path / "mnist.npz"))
    assert len(seq) == 5 and seq.n_features == 784
    rot = registry.create("rotated_mnist", path=str(folder), angles=(0.0, 80.0))
    assert len(rot) == 2 and rot.tasks[1].X_train.shape == (20, 784)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels"):
        load_mnist(folder)
