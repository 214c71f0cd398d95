"""Reports: figures are real PNGs with content, the HTML is self-contained, bad folders fail
with one line and exit code 2, ``run`` writes the report unless ``--no-report``."""

import base64
import io
import json
from html.parser import HTMLParser

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.config import parse_experiment, run_experiment
from adaptloop.report import build_report, load_results
from adaptloop.report.data import MAX_POINTS, ReportError, downsample_minmax
from adaptloop.report.figures import OKABE_ITO, gap_markers, task_accuracy_figure
from adaptloop.report.html import package_versions
from adaptloop.report.synthetic import write_continual_folder, write_prequential_folder
from adaptloop.results import write_results

runner = CliRunner()

SMALL = """
name = "small_report"
seed = 2

[stream]
kind = "sea"
n = 4_000
concepts = [0, 3]
drifts = [{ at = 2_000, width = 1 }]
batch_size = 100

[learners.static]
kind = "static"
base = { kind = "logistic" }
n_train = 500

[learners.adwin]
kind = "drift_reset"
base = { kind = "logistic" }
detector = "adwin"

[evaluation]
window = 400
after = 400
"""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real (small) prequential run's results folder."""
    spec = parse_experiment(SMALL)
    folder = tmp_path_factory.mktemp("run")
    write_results(run_experiment(spec), folder, spec.source, experiment_name=spec.name, seed=2)
    return folder


@pytest.fixture(scope="module")
def real_report(real_run):
    return build_report(real_run)


def pixels(path):
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def assert_drawn(rgb):
    """Not blank: enough non-white pixels and many distinct colours."""
    non_white = (rgb < 245).any(axis=2).mean()
    assert non_white > 0.03, f"only {non_white:.1%} of the pixels are drawn"
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 30


def has_colour(rgb, hex_colour, at_least=50):
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).sum(axis=2) <= 12).sum()) >= at_least


# -- figures ---------------------------------------------------------------------------------
def test_prequential_figures_are_pngs_of_the_declared_size_with_content(real_report):
    names = [f.name for f in real_report.figures]
    assert names == ["stream", "drifts", "metrics", "throughput"]
    for figure in real_report.figures:
        rgb = pixels(figure.path)
        assert rgb.shape[:2] == (figure.height, figure.width)
        assert figure.width == 1200 and 250 <= figure.height <= 2000
        assert_drawn(rgb)


def test_each_learner_is_drawn_in_its_own_palette_colour(real_report):
    stream = pixels(real_report.figures[0].path)
    for colour in OKABE_ITO[:2]:  # two learners
        assert has_colour(stream, colour)
    assert not has_colour(stream, OKABE_ITO[3])  # no third learner


def test_other_metrics_get_one_panel_each(real_run):
    results = load_results(real_run)
    assert results.metric == "accuracy"
    assert list(results.metric_curves) == ["accuracy", "log_loss", "roc_auc"]
    assert results.metric_curves["accuracy"] is results.curves


def test_stream_without_drifts_has_no_drift_figure(tmp_path):
    folder = write_prequential_folder(tmp_path / "r", records_per_learner=80, drifts=())
    report = build_report(folder)
    assert [f.name for f in report.figures] == ["stream", "throughput"]
    assert "no known drifts" in report.html.read_text()


def test_continual_figures_show_every_task(tmp_path):
    folder = write_continual_folder(tmp_path / "c", n_tasks=3, iterations_per_task=200)
    report = build_report(folder)
    assert [f.name for f in report.figures] == ["tasks", "final", "time"]
    for figure in report.figures:
        rgb = pixels(figure.path)
        assert rgb.shape[:2] == (figure.height, figure.width)
        assert_drawn(rgb)
    tasks = pixels(report.figures[0].path)
    for colour in OKABE_ITO[:3]:  # one colour per task
        assert has_colour(tasks, colour)


@pytest.mark.parametrize("names", [False, True])
def test_continual_records_with_task_indices_or_names(tmp_path, names):
    folder = write_continual_folder(
        tmp_path / "c", n_tasks=3, iterations_per_task=100, task_names_in_records=names
    )
    results = load_results(folder)
    assert results.tasks == ["T1", "T2", "T3"]
    assert results.boundaries == [0, 100, 200]
    assert sorted(results.curves) == [
        (learner, t) for learner in ("naive", "replay") for t in range(3)
    ]
    x, _ = results.curves[("replay", 2)]
    assert x.min() >= 200  # a task is evaluated from its own training on
    gaps = gap_markers(results.sequences[0], "replay")
    assert [g["task"] for g in gaps] == [1, 2]  # task 0's gap when each later task starts
    assert all(g["before"] - g["minimum"] == pytest.approx(g["drop"]) for g in gaps)


# -- numbers and downsampling ----------------------------------------------------------------
def test_downsampling_keeps_extremes_order_and_gaps():
    rng = np.random.default_rng(0)
    x = np.arange(1_000_000)
    y = rng.normal(size=x.size)
    y[123_456], y[654_321] = -50.0, 60.0
    y[500_000:520_000] = np.nan
    xs, ys = downsample_minmax(x, y, 2_000)
    assert len(xs) <= 2_000
    assert np.all(np.diff(xs) > 0)
    assert {123_456, 654_321} <= set(xs.tolist())
    assert np.isnan(ys).any()  # an all-NaN stretch stays a gap
    small = np.arange(10.0)
    assert downsample_minmax(small, small, 100)[0] is small


def test_curves_are_downsampled_but_tables_use_the_summary(tmp_path):
    folder = write_prequential_folder(tmp_path / "big", records_per_learner=30_000, batch_size=10)
    results = load_results(folder)
    assert results.n_records == 90_000
    assert all(len(x) <= MAX_POINTS for x, _ in results.curves.values())
    summary = json.loads((folder / "summary.json").read_text())
    page = build_report(folder).html.read_text()
    for name, stats in summary["learners"].items():
        assert f"{stats['accuracy']:.4f}" in page, name
    for seg in summary["drifts"]:
        shown = "never" if seg["recovery"] is None else f"{seg['recovery']:,}"
        assert shown in page


def test_recovered_level_is_the_window_metric_of_the_first_recovered_window(real_run):
    results = load_results(real_run)
    summary = results.summary
    records = pq.read_table(real_run / "records.parquet").to_pandas()
    window = summary["window"]
    for seg in summary["drifts"]:
        value = results.recovered.get((seg["learner"], seg["drift"]))
        if seg["recovery"] is None:
            assert value is None
            continue
        mine = records[records.learner == seg["learner"]]
        end = seg["position"] + seg["recovery"] + window
        expected = mine.loc[mine.position >= end, "accuracy_window"].iloc[0]
        assert value == pytest.approx(expected)


# -- HTML ------------------------------------------------------------------------------------
class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.links, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs)
        for key in ("href", "src", "action", "poster"):
            if key in attrs and tag != "img":
                self.links.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_html_is_self_contained_and_every_image_decodes(real_report, real_run):
    page = parse(real_report.html)
    assert "script" not in page.tags and "link" not in page.tags
    assert page.links == []
    assert len(page.images) == len(real_report.figures)
    for attrs, figure in zip(page.images, real_report.figures, strict=True):
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        data = base64.b64decode(attrs["src"][len(prefix) :], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
            assert image.size == (int(attrs["width"]), int(attrs["height"]))
            assert image.size == (figure.width, figure.height)
    raw = real_report.html.read_text()
    assert "url(" not in raw and "@import" not in raw


def test_html_shows_summary_experiment_versions_and_machine(real_report, real_run):
    text = " ".join(parse(real_report.html).text)
    summary = json.loads((real_run / "summary.json").read_text())
    assert "small_report" in text
    assert "At a glance" in text
    for name, stats in summary["learners"].items():
        assert name in text
        assert f"{stats['accuracy']:.4f}" in text
    assert 'detector = "adwin"' in text  # the experiment file
    assert summary["machine"]["platform"] in text
    assert package_versions()["numpy"] in text
    assert summary["adaptloop_version"] in text
    assert "Drift 1 at 2,000" in text


def test_continual_html_has_tables_and_task_names(tmp_path):
    folder = write_continual_folder(tmp_path / "c", n_tasks=3, iterations_per_task=100)
    text = " ".join(parse(build_report(folder).html).text)
    for word in ("min-ACC", "WC-ACC", "WF 10", "T1", "T3", "naive", "replay", "continual"):
        assert word in text


# -- bad input and the command line ----------------------------------------------------------
def one_line_error(args, *needles):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message
    return message


def test_missing_folder(tmp_path):
    one_line_error(["report", str(tmp_path / "absent")], "results folder not found", "absent")


def test_partial_folders_name_what_is_missing(tmp_path):
    folder = write_prequential_folder(tmp_path / "r", records_per_learner=50)
    (folder / "records.parquet").rename(tmp_path / "records.parquet")
    one_line_error(["report", str(folder)], "records.parquet is missing")
    (tmp_path / "records.parquet").rename(folder / "records.parquet")

    summary = json.loads((folder / "summary.json").read_text())
    broken = {k: v for k, v in summary.items() if k != "learners"}
    (folder / "summary.json").write_text(json.dumps(broken))
    one_line_error(["report", str(folder)], "summary.json has no 'learners'")

    (folder / "summary.json").write_text("{not json")
    one_line_error(["report", str(folder)], "summary.json is not valid JSON")

    (folder / "summary.json").unlink()
    one_line_error(["report", str(folder)], "summary.json is missing")


def test_records_missing_a_column_or_a_learner_or_unreadable(tmp_path):
    folder = write_prequential_folder(tmp_path / "r", records_per_learner=50)
    table = pq.read_table(folder / "records.parquet")
    pq.write_table(table.drop(["accuracy_window"]), folder / "records.parquet")
    one_line_error(["report", str(folder)], "no column 'accuracy_window'")

    only_one = table.filter(table.column("learner").to_numpy(zero_copy_only=False) == "static")
    pq.write_table(only_one, folder / "records.parquet")
    one_line_error(["report", str(folder)], "no rows for learner 'window_retrain'")

    (folder / "records.parquet").write_bytes(b"PAR1 truncated")
    one_line_error(["report", str(folder)], "records.parquet cannot be read")
    assert not (folder / "report.html").exists()


def test_continual_folder_with_mismatched_boundaries(tmp_path):
    folder = write_continual_folder(tmp_path / "c", n_tasks=2, iterations_per_task=50)
    summary = json.loads((folder / "summary.json").read_text())
    summary["task_boundaries"] = [0]
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ReportError, match="2 tasks but 1 task_boundaries"):
        load_results(folder)


def test_report_command_writes_html_where_asked(real_run, tmp_path):
    out = tmp_path / "elsewhere" / "page.html"
    result = runner.invoke(app, ["report", str(real_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in (out.parent / "figures").iterdir()) == [
        "drifts.png",
        "metrics.png",
        "stream.png",
        "throughput.png",
    ]


def test_run_writes_the_report_unless_no_report(tmp_path):
    experiment = tmp_path / "exp.toml"
    experiment.write_text(SMALL.replace("n = 4_000", "n = 1_500").replace("2_000", "800"))
    with_report, without = tmp_path / "a", tmp_path / "b"
    assert runner.invoke(app, ["run", str(experiment), "-o", str(with_report)]).exit_code == 0
    result = runner.invoke(app, ["run", str(experiment), "-o", str(without), "--no-report"])
    assert result.exit_code == 0, result.output
    assert (with_report / "report.html").is_file()
    assert (with_report / "figures" / "stream.png").is_file()
    assert not (without / "report.html").exists() and not (without / "figures").exists()
    assert (without / "summary.json").is_file()


def test_report_of_a_real_continual_run(tmp_path):
    from adaptloop.evaluation.continual import continual_evaluation
    from adaptloop.learners.models.majority import MajorityClass
    from adaptloop.streams.tasks import split

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = np.repeat(np.arange(4), 16)
    sequence = split(X, y, X, y, [[0, 1], [2, 3]])
    result = continual_evaluation(sequence, {"majority": MajorityClass(n_classes=4)}, batch_size=4)
    folder = write_results(result, tmp_path / "c", "seed = 0\n", seed=0)
    report = build_report(folder)
    assert [f.name for f in report.figures] == ["tasks", "final", "time"]
    for figure in report.figures:
        assert_drawn(pixels(figure.path))
    text = " ".join(parse(report.html).text)
    summary = json.loads((folder / "summary.json").read_text())
    assert f"{summary['learners']['majority']['avg_acc']:.4f}" in text
    assert "Stability gap of" in text and summary["tasks"][1] in text


def test_missing_experiment_file_is_noted_not_fatal(tmp_path):
    folder = write_prequential_folder(tmp_path / "r", records_per_learner=60)
    (folder / "experiment.toml").unlink()
    report = build_report(folder)
    assert "No experiment.toml in the results folder" in report.html.read_text()


# -- continual runs over several sequences and seeds -----------------------------------------
def _suite(orders, seeds):
    """A real continual run: each named task order of 4 classes with each seed (the seed sets
    the batch order, so a logistic learner's curves differ between seeds)."""
    from adaptloop.evaluation.continual import ContinualSuite, continual_evaluation
    from adaptloop.learners.models.linear import LogisticRegression
    from adaptloop.learners.models.majority import MajorityClass
    from adaptloop.streams.tasks import split

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 16)
    X = (np.eye(4)[y] * 2 + rng.normal(size=(64, 4))).astype(np.float32)
    runs = {}
    for name, groups in orders.items():
        sequence = split(X, y, X, y, groups, name=name)
        runs[name] = {
            seed: continual_evaluation(
                sequence,
                {"logistic": LogisticRegression(n_classes=4, lr=0.5), "majority": MajorityClass(4)},
                batch_size=4,
                windows=(4,),
                seed=seed,
            )
            for seed in seeds
        }
    return ContinualSuite(runs)


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    """Two task orders (A, B), three seeds each."""
    suite = _suite({"A": [[0, 1], [2, 3]], "B": [[2, 3], [0, 1]]}, (0, 1, 2))
    return write_results(suite, tmp_path_factory.mktemp("multi"), "seeds = [0, 1, 2]\n")


@pytest.fixture(scope="module")
def multi_report(multi_run):
    return build_report(multi_run)


def test_every_sequence_is_read_with_the_mean_curve_and_the_band_of_its_seeds(multi_run):
    records = pq.read_table(multi_run / "records.parquet").to_pandas()
    results = load_results(multi_run)
    assert [s.name for s in results.sequences] == ["A", "B"]
    assert [s.tasks for s in results.sequences] == [["0-1", "2-3"], ["2-3", "0-1"]]
    assert [s.n_seeds for s in results.sequences] == [3, 3]
    assert results.n_records == len(records)
    for sequence in results.sequences:
        for (learner, t), (x, y) in sequence.curves.items():
            mine = records[
                (records.sequence == sequence.name)
                & (records.learner == learner)
                & (records.eval_task == t)
            ]
            per_seed = mine.pivot(index="iteration", columns="seed", values="accuracy")
            np.testing.assert_array_equal(x, per_seed.index.to_numpy())
            np.testing.assert_allclose(y, per_seed.mean(axis=1).to_numpy())
            low, high = sequence.bands[(learner, t)]
            np.testing.assert_array_equal(low, per_seed.min(axis=1).to_numpy())
            np.testing.assert_array_equal(high, per_seed.max(axis=1).to_numpy())
    logistic = records[(records.learner == "logistic") & (records.eval_task == 0)]
    assert logistic.groupby("iteration").accuracy.nunique().max() > 1  # the seeds differ


def test_report_of_several_sequences_has_their_figures_and_numbers(multi_run, multi_report):
    summary = json.loads((multi_run / "summary.json").read_text())
    assert [f.name for f in multi_report.figures] == [
        "tasks_A",
        "final_A",
        "tasks_B",
        "final_B",
        "time",
    ]
    for figure in multi_report.figures:
        assert_drawn(pixels(figure.path))
    text = " ".join(parse(multi_report.html).text)
    for name, sequence in summary["sequences"].items():
        assert f"Sequence {name}" in text
        for learner, stats in sequence["learners"].items():
            std = stats["std"]
            for key in ("avg_acc", "min_acc", "wc_acc"):
                assert f"{stats[key]:.4f} ± {std[key]:.4f}" in text, (name, learner, key)
            assert f"{stats['wf']['4']:.4f} ± {std['wf']['4']:.4f}" in text
            finals = [
                run["learners"][learner]["final_task_acc"] for run in sequence["seeds"].values()
            ]
            for t, mean in enumerate(stats["final_task_acc"]):
                spread = np.std([f[t] for f in finals])
                assert f"{mean:.4f} ± {spread:.4f}" in text, (name, learner, t)
            for run in sequence["seeds"].values():  # every seed's own numbers
                assert f"{run['learners'][learner]['min_acc']:.4f}" in text
    assert "mean over the 3 seeds" in text and "lowest to the highest seed" in text


def test_multi_seed_curves_are_shaded_single_seed_curves_are_not(multi_run, tmp_path):
    results = load_results(multi_run)
    for sequence in results.sequences:
        fig = task_accuracy_figure(results, sequence)
        assert all(len(ax.collections) == 2 for ax in fig.axes[:2])  # one band per task
        assert fig.get_suptitle().startswith(f"{sequence.name}: ")
    single = _suite({"A": [[0, 1], [2, 3]]}, (0,))
    folder = write_results(single, tmp_path / "one", "")
    one = load_results(folder)
    assert one.sequences[0].bands == {} and one.sequences[0].n_seeds == 1
    fig = task_accuracy_figure(one)
    assert all(len(ax.collections) == 0 for ax in fig.axes[:2])
    assert fig.get_suptitle() == "accuracy on each task while training on the task sequence"


def test_single_sequence_single_seed_report_is_unchanged(tmp_path):
    folder = write_results(_suite({"A": [[0, 1], [2, 3]]}, (0,)), tmp_path / "c", "")
    report = build_report(folder)
    assert [f.name for f in report.figures] == ["tasks", "final", "time"]
    page = report.html.read_text()
    assert "±" not in page and "Per seed" not in page and "Sequence A" not in page
    assert "<h2>Summary</h2>" in page and "<th>seeds</th>" not in page
    summary = json.loads((folder / "summary.json").read_text())
    stats = summary["learners"]["logistic"]
    assert f"<td>{stats['final_task_acc'][0]:.4f}</td>" in page


def test_one_sequence_over_seeds_shows_mean_and_sd_without_sections(tmp_path):
    folder = write_results(_suite({"A": [[0, 1], [2, 3]]}, (3, 4)), tmp_path / "c", "")
    report = build_report(folder)
    assert [f.name for f in report.figures] == ["tasks", "final", "time"]
    text = " ".join(parse(report.html).text)
    stats = json.loads((folder / "summary.json").read_text())["learners"]["logistic"]
    assert f"{stats['avg_acc']:.4f} ± {stats['std']['avg_acc']:.4f}" in text
    assert "Per seed" in text and "each over 2 seeds (3, 4)" in text
    assert "Sequence A" not in text


# -- one source for the numbers --------------------------------------------------------------
def _marked_gaps(fig, learner):
    """(iteration, accuracy) of the stability-gap markers drawn for ``learner``."""
    return [
        tuple(float(v) for v in (line.get_xdata()[0], line.get_ydata()[0]))
        for ax in fig.axes
        for line in ax.get_lines()
        if (line.get_gid() or "").startswith(f"gap:{learner}:")
    ]


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_figure_and_tables_show_exactly_the_gaps_of_the_summary(tmp_path, seeds):
    folder = write_results(_suite({"A": [[0, 1], [2, 3]]}, seeds), tmp_path / "c", "")
    summary = json.loads((folder / "summary.json").read_text())
    results = load_results(folder)
    fig = task_accuracy_figure(results)
    gap_table = next(t for t in results.tables() if t.title.startswith("Stability gap"))
    shown = [[cell.text for cell in row] for row in gap_table.rows]
    expected_rows = []
    for learner, stats in summary["learners"].items():
        gaps = stats["gaps"]
        assert gaps, learner
        assert _marked_gaps(fig, learner) == [
            pytest.approx((g["iteration"], g["minimum"])) for g in gaps
        ]
        expected_rows += [
            [learner, f"{g['drop']:.4f}", f"{g['minimum']:.4f}", f"{g['before']:.4f}"] for g in gaps
        ]
    assert [[r[0], r[5], r[4], r[3]] for r in shown] == expected_rows
    page = " ".join(parse(build_report(folder).html).text)
    worst = max(summary["learners"]["logistic"]["gaps"], key=lambda g: g["drop"])
    assert f"{worst['before']:.2f} → {worst['minimum']:.2f}" in page


def test_run_prints_the_tables_the_report_shows(real_run):
    """The CLI's tables and the report's come from the same summary and the same code."""
    spec = parse_experiment(SMALL)
    from_run = [t.for_terminal() for t in run_experiment(spec).tables()]
    from_folder = [t.for_terminal() for t in load_results(real_run).tables()]
    assert [t.terminal_title for t in from_run] == [t.terminal_title for t in from_folder]
    assert [[c.name for c in t.columns] for t in from_run] == [
        [c.name for c in t.columns] for t in from_folder
    ]
    drifts = [[cell.text for cell in row] for row in from_folder[-1].rows]
    assert drifts == [[cell.text for cell in row] for row in from_run[-1].rows]
