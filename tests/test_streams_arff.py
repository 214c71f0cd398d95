"""ARFF file streams (kind = "arff"): the same samples as the CSV reader gives for the same
data, nominal attributes as categories in declared order, errors naming the line."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from adaptloop.config import load_experiment, run_experiment
from adaptloop.streams import registry

ROWS = [(0.5, "red", "UP"), (1.5, "green", "DOWN"), (2.5, "?", "UP"), (3.5, "dark blue", "UP")]


def arff(rows=ROWS, header_extra=""):
    lines = [
        "% generated for the tests",
        "@RELATION toy",
        "@ATTRIBUTE x NUMERIC",
        "@ATTRIBUTE colour {'dark blue', green, red}",
        f"{header_extra}@ATTRIBUTE class {{UP, DOWN}}",
        "@DATA",
    ]
    for x, colour, label in rows:
        colour = f"'{colour}'" if " " in colour else colour
        lines.append(f"{x}, {colour}, {label}")
    return "\n".join(lines) + "\n"


def csv(rows=ROWS):
    return "x,colour,class\n" + "".join(f"{x},{'' if c == '?' else c},{y}\n" for x, c, y in rows)


def test_arff_gives_the_samples_the_csv_reader_gives(tmp_path):
    (tmp_path / "toy.arff").write_text(arff())
    (tmp_path / "toy.csv").write_text(csv())
    categories = {"colour": ["dark blue", "green", "red"]}
    a = registry.create("arff", path=str(tmp_path / "toy.arff"), chunk_rows=3)
    c = registry.create("csv", path=str(tmp_path / "toy.csv"), target="class",
                        classes=["UP", "DOWN"], categories=categories)  # fmt: skip
    assert a.info.classes == ("UP", "DOWN")  # declared order, as MOA codes them
    assert a.info.feature_names == c.info.feature_names and a.info.n_samples == 4
    assert a.categories == c.categories
    (Xa, ya), (Xc, yc) = next(a.iter_batches(4)), next(c.iter_batches(4))
    np.testing.assert_array_equal(Xa, Xc)
    np.testing.assert_array_equal(ya, yc)
    assert Xa[:, 1].tolist() == [3, 2, 0, 1]  # declared values 1..k, missing 0


def test_gzip_target_and_regression(tmp_path):
    path = tmp_path / "toy.arff.gz"
    path.write_bytes(gzip.compress(arff().encode()))
    stream = registry.create("arff", path=str(path), target="x")
    assert stream.info.task == "regression" and stream.info.feature_names == ("colour", "class")
    assert next(stream.iter_batches(8))[1].tolist() == [0.5, 1.5, 2.5, 3.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (arff(header_extra="@ATTRIBUTE when DATE\n"), "toy.arff:5: attribute 'when' has type"),
        (arff() + "{0 1, 2 UP}\n", "toy.arff:11: sparse ARFF rows are not supported"),
        (arff() + "1.0, red\n", "toy.arff:11: 2 values, expected 3"),
        ("@relation r\n", "no @data line"),
        (arff(rows=[(0.5, "red", "UP"), ("?", "red", "DOWN")]), "missing, NaN or infinite"),
    ],
)
def test_bad_files_are_refused_naming_the_line(tmp_path, text, message):
    path = tmp_path / "toy.arff"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        stream = registry.create("arff", path=str(path))
        for _ in stream.iter_batches(8):
            pass


def test_an_experiment_reads_an_arff_file_beside_it(tmp_path, monkeypatch):
    rows = [(float(i % 7), ("red", "green")[i % 2], ("UP", "DOWN")[i % 3 == 0]) for i in range(300)]
    (tmp_path / "data.arff").write_text(arff(rows))
    (tmp_path / "exp.toml").write_text(
        '[stream]\nkind = "arff"\npath = "data.arff"\nbatch_size = 50\n'
        '[learners.lr]\nkind = "logistic"\n'
    )
    monkeypatch.chdir(tmp_path.parent)  # the path is relative to the file, not to here
    result = run_experiment(load_experiment(tmp_path / "exp.toml"))
    assert result.summary["lr"]["n_samples"] == 300


ELEC2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "elec2.csv.gz"


@pytest.mark.skipif(not ELEC2.exists(), reason="../shared/data/elec2.csv.gz is not there")
def test_elec2_as_moa_arff_matches_the_csv_loader(tmp_path):
    """Elec2 written as MOA's elecNormNew.arff (day nominal 1-7, class {UP, DOWN})."""
    import pandas as pd

    frame = pd.read_csv(ELEC2)
    header = ["@relation elecNormNew"]
    for column in frame.columns[:-1]:
        kind = "{1,2,3,4,5,6,7}" if column == "day" else "numeric"
        header.append(f"@attribute {column} {kind}")
    header += ["@attribute class {UP,DOWN}", "@data"]
    body = frame.to_csv(header=False, index=False, float_format="%.6f")
    (tmp_path / "elec.arff").write_text("\n".join(header) + "\n" + body)
    ours = registry.create("arff", path=str(tmp_path / "elec.arff"))
    loader = registry.create("elec2", path=str(ELEC2))
    assert ours.info.n_samples == loader.info.n_samples == 45_312
    (Xa, ya), (Xc, yc) = next(ours.iter_batches(50_000)), next(loader.iter_batches(50_000))
    day = ours.info.feature_names.index("day")
    np.testing.assert_array_equal(Xa[:, day], Xc[:, day])  # code k is day k
    np.testing.assert_allclose(Xa, Xc, atol=1e-6)
    labels = np.array(ours.info.classes)[ya] == np.array(loader.info.classes)[yc]
    assert labels.all()


def test_an_arff_stream_declares_its_known_drifts(tmp_path):
    path = tmp_path / "two.arff"
    rows = "\n".join(f"{i % 7},{'a' if i < 50 else 'b'}" for i in range(100))
    path.write_text(f"@relation two\n@attribute x numeric\n@attribute y {{a, b}}\n@data\n{rows}\n")
    stream = registry.create("arff", path=str(path), drifts=[{"at": 50, "width": 1}])
    assert [(d.position, d.width) for d in stream.info.drifts] == [(50, 1)]
