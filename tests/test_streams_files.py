"""File streams (CSV, gzip CSV, Parquet) and the real drift datasets in ../shared/data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adaptloop.streams import CSVStream, ParquetStream, elec2, registry, rialto

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ELEC2 = DATA / "elec2.csv.gz"
RIALTO = DATA / "rialto.csv.gz"

COLOURS = ["red", "green", "blue"]


def collect(stream, batch_size=256):
    Xs, ys = zip(*stream.iter_batches(batch_size), strict=True)
    return np.concatenate(Xs), np.concatenate(ys)


def rows(n=300, seed=0):
    """A small table: two numeric features, one categorical, a string label."""
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(size=n), 4)
    b = rng.integers(0, 100, n)
    colour = [COLOURS[i] for i in rng.integers(0, 3, n)]
    label = np.where(a > 0, "UP", "DOWN")
    return {"a": a.tolist(), "b": b.tolist(), "colour": colour, "label": label.tolist()}


def write_csv(path: Path, table: dict, compress: bool = False) -> Path:
    names = list(table)
    lines = [",".join(names)]
    for i in range(len(table[names[0]])):
        lines.append(",".join("" if table[c][i] is None else str(table[c][i]) for c in names))
    text = "\n".join(lines) + "\n"
    if compress:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def table():
    return rows()


@pytest.fixture
def csv_path(tmp_path, table):
    return write_csv(tmp_path / "data.csv", table)


# -- CSV machinery -------------------------------------------------------------------------------


def test_csv_features_labels_and_info(csv_path, table):
    stream = CSVStream(csv_path, target="label")
    info = stream.info
    assert info.name == "data" and info.task == "binary" and info.drifts == ()
    assert info.classes == ("DOWN", "UP") and info.n_samples == 300
    assert info.feature_names == ("a", "b", "colour")
    assert stream.categories == {"colour": ("blue", "green", "red")}
    X, y = collect(stream)
    assert X.dtype == np.float32 and y.dtype == np.int64 and X.shape == (300, 3)
    np.testing.assert_allclose(X[:, 0], np.float32(table["a"]))
    np.testing.assert_array_equal(X[:, 1], table["b"])
    expected_codes = [("blue", "green", "red").index(c) + 1 for c in table["colour"]]
    np.testing.assert_array_equal(X[:, 2], expected_codes)
    np.testing.assert_array_equal(y, [int(v == "UP") for v in table["label"]])


def test_gzip_csv_and_parquet_give_the_same_data(tmp_path, table, csv_path):
    plain = collect(CSVStream(csv_path, target="label"))
    gz = collect(CSVStream(write_csv(tmp_path / "data.csv.gz", table, True), target="label"))
    pq.write_table(pa.table(table), tmp_path / "data.parquet", row_group_size=64)
    parquet = ParquetStream(tmp_path / "data.parquet", target="label", chunk_rows=50)
    assert parquet.info.classes == ("DOWN", "UP") and parquet.info.n_samples == 300
    for X, y in (gz, collect(parquet)):
        np.testing.assert_array_equal(X, plain[0])
        np.testing.assert_array_equal(y, plain[1])


def test_small_chunks_batch_sizes_and_repeated_iteration_agree(tmp_path):
    table = rows(n=2_000, seed=1)
    path = write_csv(tmp_path / "big.csv.gz", table, compress=True)
    stream = CSVStream(path, target="label", block_size=4_096)  # many chunks
    X_ref, y_ref = collect(CSVStream(path, target="label"), 256)  # one chunk
    for batch_size in (1, 7, 256, 5_000):
        X, y = collect(stream, batch_size)
        np.testing.assert_array_equal(X, X_ref)
        np.testing.assert_array_equal(y, y_ref)
    sizes = [len(y) for _, y in stream.iter_batches(7)]
    assert set(sizes[:-1]) == {7} and sum(sizes) == 2_000


def test_vocabulary_grows_in_order_of_appearance_and_missing_is_code_zero(tmp_path):
    n = 400
    table = {
        "x": list(range(n)),
        "city": ["a" if i % 2 else "b" for i in range(200)] + ["c"] * 100 + ["b", None] * 50,
        "y": [str(i % 3) for i in range(n)],
    }
    path = write_csv(tmp_path / "cities.csv", table)
    stream = CSVStream(path, target="y", block_size=256)  # first chunk: only "a"/"b"
    assert stream.categories == {"city": ("a", "b")}
    X1, _ = collect(stream, 13)
    assert stream.categories == {"city": ("a", "b", "c")}
    X2, _ = collect(stream, 256)
    np.testing.assert_array_equal(X1, X2)
    codes = X1[:, 1]
    np.testing.assert_array_equal(codes[:200], [1 if i % 2 else 2 for i in range(200)])
    assert (codes[200:300] == 3).all()  # "c" arrives later and gets the next code
    np.testing.assert_array_equal(codes[300:], [2, 0] * 50)  # None -> 0, and only None
    report = stream.summary()["categories"]["city"]
    assert report == {"known": 2, "new": 1, "new_rows": 100, "overflow_rows": 0, "missing_rows": 50}
    assert stream.info.task == "multiclass" and stream.info.classes == ("0", "1", "2")
    assert stream.info.categorical == ("city",)


def test_given_categories_come_first_and_later_values_grow(csv_path, table):
    stream = CSVStream(
        csv_path, target="label", categories={"colour": ["red", "green"]}, drop=["b"]
    )
    assert stream.info.feature_names == ("a", "colour")
    X, _ = collect(stream)
    expected = [{"red": 1, "green": 2}.get(c, 3) for c in table["colour"]]
    np.testing.assert_array_equal(X[:, 1], expected)
    assert stream.categories == {"colour": ("red", "green", "blue")}


def recommendation_log(path: Path, n: int = 60_000) -> Path:
    """A time-ordered log whose users and items keep arriving: user ``u<i>`` first appears at
    row ``3 i`` (so most users start after the first megabyte), items at a slower pace."""
    rng = np.random.default_rng(3)
    t = np.arange(n)
    user = np.where(rng.random(n) < 0.5, t // 3, rng.integers(0, np.maximum(t // 3, 1)))
    item = rng.integers(0, 1 + t // 200)
    lines = ["time,user,item,price,click"]
    lines += [
        f"{i},u{u},i{it},{p:.3f},{c}"
        for i, u, it, p, c in zip(t, user, item, rng.random(n), rng.integers(0, 2, n), strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ids_arriving_after_the_first_megabyte_are_not_lost(tmp_path):
    """The issue's defect: the vocabulary was the first megabyte's, every later id code 0."""
    path = recommendation_log(tmp_path / "log.csv")
    assert path.stat().st_size > 1 << 20
    stream = CSVStream(path, target="click", categorical=["user", "item"], drop=["time"])
    X, _ = collect(stream, 1_000)
    users, items = X[:, 0], X[:, 1]
    assert (users > 0).all() and (items > 0).all()  # no id mapped to "unknown"
    text = path.read_text().splitlines()[1:]
    truth = [line.split(",")[1] for line in text]
    assert len(set(truth)) == len(np.unique(users))  # one code per distinct user, both ways
    pairs = set(zip(truth, users.tolist(), strict=True))
    assert len(pairs) == len(set(truth))
    report = stream.summary()["categories"]
    assert report["user"]["known"] + report["user"]["new"] == len(set(truth))
    assert report["user"]["new"] > 0 and report["user"]["new_rows"] > 0.1 * len(truth)
    assert report["user"]["overflow_rows"] == report["user"]["missing_rows"] == 0
    assert stream.info.categorical == ("user", "item")  # price stays numeric


def test_a_cap_hashes_the_overflow_and_counts_it(tmp_path):
    path = recommendation_log(tmp_path / "log.csv", n=3_000)
    stream = CSVStream(
        path,
        target="click",
        categorical=["user"],
        drop=["time", "item"],
        max_categories=100,
        hash_buckets=16,
        block_size=4_096,
    )
    X, _ = collect(stream, 500)
    users = X[:, 0]
    assert users.min() >= 1 and users.max() <= 100 + 16
    report = stream.summary()["categories"]["user"]
    assert report["known"] + report["new"] == 100
    assert report["overflow_rows"] == int((users > 100).sum()) > 0
    X2, _ = collect(stream, 7)  # the same codes on every pass
    np.testing.assert_array_equal(X, X2)


def test_declared_drifts_reach_the_info(csv_path):
    stream = CSVStream(csv_path, target="label", drifts=[{"at": 100, "width": 20}])
    assert [(d.position, d.width) for d in stream.info.drifts] == [(100, 20)]
    with pytest.raises(ValueError, match="beyond the stream length n=300"):
        CSVStream(csv_path, target="label", drifts=[{"at": 300}])


def test_numeric_column_can_be_declared_categorical(csv_path, table):
    stream = CSVStream(csv_path, target="label", categorical=["b"], drop=["colour"])
    vocab = stream.categories["b"]
    X, _ = collect(stream)
    np.testing.assert_array_equal(X[:, 1], [vocab.index(str(v)) + 1 for v in table["b"]])


def test_label_not_in_classes_is_refused_naming_value_and_row(tmp_path, table):
    table["label"][123] = "SIDEWAYS"
    path = write_csv(tmp_path / "bad.csv", table)
    with pytest.raises(ValueError, match=r"'SIDEWAYS' at row 123"):
        CSVStream(path, target="label", classes=["DOWN", "UP"])
    with pytest.raises(ValueError, match="3 classes"):
        CSVStream(path, target="label", task="binary")
    assert CSVStream(path, target="label").info.classes == ("DOWN", "SIDEWAYS", "UP")


def test_missing_label_is_refused_naming_the_row(tmp_path, table):
    table["label"][7] = None
    path = write_csv(tmp_path / "nolabel.csv", table)
    with pytest.raises(ValueError, match=r"missing label.*row 7"):
        CSVStream(path, target="label")


def test_nan_in_a_feature_is_refused_naming_column_and_row(tmp_path, table):
    table["a"][250] = "NaN"
    table["b"][40] = None
    stream = CSVStream(write_csv(tmp_path / "nan.csv", table), target="label", drop=["b"])
    with pytest.raises(ValueError, match=r"column 'a'.*row 250"):
        collect(stream)
    stream = CSVStream(tmp_path / "nan.csv", target="label", drop=["a"])
    with pytest.raises(ValueError, match=r"column 'b'.*row 40"):
        collect(stream)


def test_missing_file_and_missing_columns(tmp_path, csv_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        CSVStream(tmp_path / "nowhere.csv", target="label")
    with pytest.raises(FileNotFoundError, match="nowhere.parquet"):
        ParquetStream(tmp_path / "nowhere.parquet", target="label")
    with pytest.raises(ValueError, match=r"'klass' not found.*\['a', 'b', 'colour', 'label'\]"):
        CSVStream(csv_path, target="klass")
    with pytest.raises(ValueError, match=r"categorical.*\['size'\]"):
        CSVStream(csv_path, target="label", categorical=["size"])
    with pytest.raises(ValueError, match=r"drop.*\['zzz'\]"):
        CSVStream(csv_path, target="label", drop=["zzz"])
    with pytest.raises(ValueError, match="task"):
        CSVStream(csv_path, target="label", task="ranking")


def test_numeric_targets_need_an_explicit_task_for_regression(tmp_path):
    rng = np.random.default_rng(0)
    table = {"x": rng.normal(size=200).round(3).tolist(), "y": rng.normal(size=200).tolist()}
    path = write_csv(tmp_path / "reg.csv", table)
    with pytest.raises(ValueError, match="task='regression'"):
        CSVStream(path, target="y")
    stream = CSVStream(path, target="y", task="regression")
    assert stream.info.task == "regression" and stream.info.classes is None
    X, y = collect(stream, 64)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, np.float32(table["y"]))
    with pytest.raises(ValueError, match="classes"):
        CSVStream(path, target="y", task="regression", classes=["0", "1"])


def test_numeric_class_labels_sort_numerically(tmp_path):
    table = {"x": list(range(30)), "y": [str(v) for v in [10, 2, 1] * 10]}
    stream = CSVStream(write_csv(tmp_path / "num.csv", table), target="y")
    assert stream.info.classes == ("1", "2", "10")
    _, y = collect(stream)
    np.testing.assert_array_equal(y, [2, 1, 0] * 10)


def test_parquet_with_dictionary_column_and_integer_labels(tmp_path):
    colours = pa.array(["red", "blue", "red", "green"] * 25).dictionary_encode()
    table = pa.table({"v": np.arange(100.0), "colour": colours, "y": [0, 1, 1, 0] * 25})
    pq.write_table(table, tmp_path / "t.parquet")
    stream = ParquetStream(tmp_path / "t.parquet", target="y", categories={"colour": ["red"]})
    assert stream.info.classes == ("0", "1") and stream.info.feature_names == ("v", "colour")
    X, y = collect(stream, 9)
    np.testing.assert_array_equal(X[:, 1], [1, 2, 1, 3] * 25)  # given first, then grown
    np.testing.assert_array_equal(y, [0, 1, 1, 0] * 25)


def test_registry_builds_file_streams(csv_path, tmp_path, table):
    pq.write_table(pa.table(table), tmp_path / "data.parquet")
    for name, path in (("csv", csv_path), ("parquet", tmp_path / "data.parquet")):
        assert name in registry and registry.describe(name)
        stream = registry.create(name, path=str(path), target="label", drop=["b"])
        assert stream.info.feature_names == ("a", "colour")
    for name in ("elec2", "rialto"):
        assert name in registry and registry.parameter_names(name) == ["path", "drifts"]


# -- real datasets ---------------------------------------------------------------------------------


@pytest.mark.skipif(not ELEC2.exists(), reason=f"{ELEC2} not present")
def test_elec2_rows_features_and_class_balance():
    stream = elec2(ELEC2)
    info = stream.info
    assert info.n_samples == 45_312 and info.n_features == 8 and info.drifts == ()
    assert info.feature_names == (
        "date", "day", "period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"
    )  # fmt: skip
    assert info.classes == ("DOWN", "UP") and info.task == "binary"
    n, counts, day = 0, np.zeros(2, dtype=np.int64), set()
    for X, y in stream.iter_batches(4_096):  # one batch at a time, never the whole file
        assert X.dtype == np.float32 and X.shape[1] == 8
        n += len(y)
        counts += np.bincount(y, minlength=2)
        day.update(np.unique(X[:, 1]).tolist())
    assert n == 45_312
    assert counts.tolist() == [26_075, 19_237]  # DOWN, UP
    assert day == set(range(1, 8))


@pytest.mark.skipif(not RIALTO.exists(), reason=f"{RIALTO} not present")
def test_rialto_rows_features_and_class_balance():
    stream = rialto(RIALTO)
    info = stream.info
    assert info.n_samples == 82_250 and info.n_features == 27 and info.drifts == ()
    assert info.feature_names == tuple(f"att{i}" for i in range(1, 28))
    assert info.classes == tuple(str(c) for c in range(10)) and info.task == "multiclass"
    n, counts = 0, np.zeros(10, dtype=np.int64)
    for X, y in stream.iter_batches(8_192):
        assert X.shape[1] == 27 and np.isfinite(X).all()
        n += len(y)
        counts += np.bincount(y, minlength=10)
    assert n == 82_250 and counts.tolist() == [8_225] * 10


@pytest.mark.skipif(not ELEC2.exists(), reason=f"{ELEC2} not present")
def test_default_paths_resolve_from_the_repository_root(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    if not Path("../shared/data/elec2.csv.gz").exists():
        pytest.skip("repository is not next to shared/data")
    assert registry.create("elec2").info.n_samples == 45_312


def test_text_in_a_numeric_column_after_the_first_chunk_is_refused(tmp_path):
    table = {"x": [str(i) for i in range(300)], "y": ["a", "b"] * 150}
    table["x"][290] = "oops"
    stream = CSVStream(write_csv(tmp_path / "late.csv", table), target="y", block_size=512)
    assert stream.categories == {}
    with pytest.raises(ValueError, match=r"late\.csv.*oops"):
        collect(stream)
