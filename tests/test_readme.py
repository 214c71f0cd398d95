"""The README says what is true: its Python snippet prints what the README shows, its experiment
file and error messages are what adaptloop says, the first run shows what its paragraph claims,
every example's header states its run time and every seed, and the README stays short. Where a
claim is about a long run, the test runs a reduced size and checks the same direction."""

import contextlib
import io
import math
import re
from pathlib import Path

import pytest

from adaptloop.config import ExperimentError, load_experiment, parse_experiment, run_experiment

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
ELEC2 = ROOT.parent / "shared" / "data" / "elec2.csv.gz"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_readme_is_short_and_links_pages_that_exist():
    assert len(README.splitlines()) <= 200
    for target in re.findall(r"\]\(((?:docs/)?[\w/.-]+\.md)(?:#[\w-]+)?\)", README):
        assert (ROOT / target).is_file(), target


def test_the_python_snippet_prints_what_the_readme_shows():
    (snippet,) = blocks("python")
    shown = blocks("text")[0]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "README.md", "exec"), {})
    assert printed.getvalue() == shown


def test_the_experiment_file_runs_and_its_mistakes_read_as_the_readme_says():
    toml = next(b for b in blocks("toml") if 'name = "my_first"' in b)
    experiment = parse_experiment(toml, "my_first.toml")
    assert set(experiment.learners) == {"retrain", "adwin_reset"}
    wrong = toml.replace("window = 2_000", 'window = "2000"')
    with pytest.raises(ExperimentError) as error:
        parse_experiment(wrong, "my_first.toml")
    assert f"error: {error.value}" in README.replace("\n", " ")
    with pytest.raises(ExperimentError, match="did you mean 'every'"):
        parse_experiment(toml.replace("window = 2_000", "window = 2_000\nevry = 500"), "x")


def test_the_first_run_shows_what_the_readme_says():
    """The built-in experiment without its slow Hoeffding tree (the claims are about the
    others): ADWIN misses the first drift and fires at the second, the reset recovers fastest
    at the first, the model trained once never recovers from it."""
    experiment = load_experiment()
    learners = {k: v for k, v in experiment.learners.items() if k != "hoeffding_adaptive_tree"}
    result = run_experiment(experiment.model_copy(update={"learners": learners}))
    assert result.summary["adwin_reset"]["alarms"] == [40_192]
    first = {d["learner"]: d["recovery"] for d in result.drifts if d["position"] == 20_000}
    assert first["static"] is None and first["adwin_reset"] == 504
    assert first["adwin_reset"] < first["window_retrain"]
    assert "at 40,192" in README and "(504 samples" in README


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_states_its_run_time_and_every_seed(path):
    header = path.read_text().split("\nname = ", 1)[0]
    assert re.search(r"# Run time: about [\d.]+ (s|minutes)", header), header
    experiment = load_experiment(path)
    seeds = getattr(experiment, "seeds", [experiment.seed])
    said = re.search(r"; seeds? ([\d, and]+)", header).group(1)
    assert [int(s) for s in re.findall(r"\d+", said)] == seeds


@pytest.mark.skipif(not ELEC2.exists(), reason="../shared/data/elec2.csv.gz is not there")
def test_elec2_claims_on_its_first_15000_samples():
    """examples/elec2.toml: the re-fit is sane (log loss below a coin's), and online learning
    beats it (the header's claim, on a reduced size)."""
    experiment = load_experiment(ROOT / "examples" / "elec2.toml")
    learners = {k: experiment.learners[k] for k in ("logistic", "retrain")}
    stream = experiment.stream.model_copy(update={"max_samples": 15_000})
    reduced = experiment.model_copy(update={"learners": learners, "stream": stream})
    summary = run_experiment(reduced).summary
    assert summary["retrain"]["log_loss"] < math.log(2)
    assert summary["logistic"]["accuracy"] > summary["retrain"]["accuracy"]
