"""The ``adaptloop`` command line: parsing and wiring only (logic lives in the packages)::

    adaptloop run [EXPERIMENT.toml] [--out DIR [--force]] [--seed N] [--no-report] [--format F]
                  [--engine local|ray [--address ADDR] [--cpus N]] [--threads N] [--mlflow]
    adaptloop report RESULTS_DIR [--out FILE.html]
    adaptloop list [NAME]
    adaptloop serve [--experiment FILE.toml | --checkpoint FILE] [--db PATH] [--host] [--port] ...
    adaptloop checkpoint export --db PATH [--version N] --out FILE

``adaptloop COMMAND --help`` says more; :func:`main` is the console entry point.
"""

from __future__ import annotations

import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from adaptloop.results import Table as ResultTable

app = typer.Typer(
    help="Keep models accurate while their data keeps changing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts say "[serve]": square brackets are text, not markup
)
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

EXTRAS = {
    "torch": "torch",
    "ncps": "torch",
    "ray": "distributed",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "httptools": "serve",
    "uvloop": "serve",
    "mlflow": "mlflow",
    "psycopg": "postgres",
}
"""The extra that installs each optional top-level module."""


def _flag(parameter: str) -> str:
    """The option that sets a library parameter: ``micro_batch`` -> ``--micro-batch``.

    >>> _flag("token_file")
    '--token-file'
    """
    return "--" + parameter.replace("_", "-")


def _fail(message: str) -> typer.Exit:
    """Print ``message`` as one error line (its text as it is: no markup) and exit with 2."""
    errors.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    return typer.Exit(code=2)


def missing_extra(error: ImportError) -> str:
    """One line naming the extra that installs the module ``error`` misses (its own message
    when it names one already, or when no extra installs the module).

    >>> missing_extra(ModuleNotFoundError("No module named 'ray'", name="ray"))
    "needs the 'distributed' extra (No module named 'ray'): pip install 'adaptloop[distributed]'"
    """
    message = str(error)
    extra = EXTRAS.get((getattr(error, "name", None) or "").split(".")[0])
    if extra is None or "adaptloop[" in message:
        return message
    return f"needs the {extra!r} extra ({message}): pip install 'adaptloop[{extra}]'"


def _threads(threads: int | None) -> None:
    """Cap the math libraries' threads before they start: ``threads``, else what the
    environment says, else the cores this process may use, at most 4 (the learners' batches
    are small; more threads than that only contend, above all on a shared machine)."""
    if threads is None and "OMP_NUM_THREADS" in os.environ:
        return
    if threads is None:
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 4
        threads = max(1, min(4, available))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    if "torch" in sys.modules:  # already started: tell it directly
        sys.modules["torch"].set_num_threads(threads)


@app.command()
def run(
    experiment: Annotated[
        Path | None,
        typer.Argument(help="Experiment TOML file; without one, the built-in default runs."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Results folder (default: results/<name>-<timestamp>)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Override the experiment's seed.")
    ] = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip the HTML report and figures.")
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="'local' or 'ray': the parts of an experiment (learners, seeds, task sequences, "
            "grid cells) as Ray tasks; a federated experiment's clients as Ray actors.",
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="On Ray: a cluster to join (default: Ray started here)."),
    ] = None,
    cpus: Annotated[
        int | None,
        typer.Option("--cpus", min=1, help="On Ray started here: its CPUs (default: all)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Write into --out even if it holds files other than a run's results."
        ),
    ] = False,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="Tables: rich (terminal), plain, markdown; auto: rich in a terminal, else plain.",
        ),
    ] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="Threads of torch and numpy (default: $OMP_NUM_THREADS, else up to 4).",
        ),
    ] = None,
    mlflow: Annotated[
        bool,
        typer.Option(
            "--mlflow",
            help="Also log the run to MLflow ($MLFLOW_TRACKING_URI, else MLflow's default; "
            "needs the [mlflow] extra).",
        ),
    ] = False,
) -> None:
    """Run an experiment; write its results folder and report.

    Without EXPERIMENT the built-in one runs (a SEA stream with two drifts, four learners).
    A [grid] in the file runs every combination of its values; --engine ray runs the
    experiment's parts as Ray tasks (the same numbers).
    """
    _threads(threads)
    from adaptloop.config import (
        ContinualExperiment,
        ExperimentError,
        FederatedExperiment,
        GraphExperiment,
        load_experiment,
        run_experiment,
        with_engine,
        with_seed,
    )
    from adaptloop.results import ResultsError, prepare_folder, write_results

    if format not in TABLE_FORMATS:
        raise _fail(f"--format: must be one of {', '.join(TABLE_FORMATS)}, got {format!r}")
    if mlflow:
        try:
            import mlflow as _  # noqa: F401 - fail before the run, not after it
        except ImportError as error:
            raise _fail(f"--mlflow {missing_extra(error)}") from None

    try:
        spec = load_experiment(experiment)
        if seed is not None:
            spec = with_seed(spec, seed)
        if engine not in (None, "local", "ray"):
            raise ValueError(f"--engine: must be 'local' or 'ray', got {engine!r}")
        chosen = engine or ("ray" if address or cpus else None)
        if isinstance(spec, FederatedExperiment) and chosen is not None:
            spec = with_engine(spec, chosen, address, cpus)
        elif chosen == "local" and (address or cpus):
            raise ValueError("--address and --cpus apply to --engine ray")
        engine = chosen or "local"
    except (ExperimentError, ValueError) as error:
        raise _fail(str(error)) from None
    # a grid, or Ray, runs the experiment as its parts: the progress counts them
    in_parts = not isinstance(spec, FederatedExperiment) and (engine == "ray" or bool(spec.grid))
    out = out or Path("results") / f"{spec.name}-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        prepare_folder(out, force=force, dry_run=True)  # refuse before the run, not after it
    except ResultsError as error:
        raise _fail(f"--out: {error}") from None
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "runs"
            if in_parts
            else "iterations"
            if isinstance(spec, ContinualExperiment)
            else "time units"
            if isinstance(spec, FederatedExperiment)
            else "snapshots"
            if isinstance(spec, GraphExperiment)
            else "samples"
        ),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task_id = None
    seeds = getattr(spec, "seeds", [spec.seed])
    estimate = Estimate()

    def on_start(info, total):  # built: the experiment's errors are all out
        nonlocal task_id
        seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
        grid = " x ".join(f"{k} ({len(v)})" for k, v in spec.grid.items())
        parts = f"; {total} runs{' on Ray' if engine == 'ray' else ''}" if in_parts else ""
        console.print(
            Text.assemble(
                (spec.name, "bold"),
                f": {len(spec.learners)} learners, {seed_text}",
                f", grid {grid}" if grid else "",
                parts,
            )
        )
        task_id = progress.add_task(escape(f"{info.name}"), total=total)
        estimate.start(total)

    def on_batch(done: int) -> None:
        progress.update(task_id, completed=done)
        line = estimate.update(done)
        if line is not None:
            console.print(line)

    started = time.perf_counter()
    try:
        with progress:
            result = run_experiment(
                spec, on_start, on_batch, engine=engine, address=address, cpus=cpus
            )
    except ImportError as error:
        raise _fail(missing_extra(error)) from None
    except (ValueError, FileNotFoundError) as error:
        raise _fail(str(error)) from None
    elapsed = time.perf_counter() - started

    meta = {"experiment_name": spec.name, "seed": spec.seed, "wall_seconds": elapsed}
    try:
        folder = write_results(result, prepare_folder(out, force=force), spec.source, **meta)
    except ResultsError as error:
        raise _fail(f"--out: {error}") from None
    print_tables([t for t in result.tables() if t.terminal_title is not None], format)
    console.print(Text.assemble("results: ", (str(folder), "bold"), f" ({elapsed:.1f} s)"))
    if not no_report:
        _write_report(folder)
    if mlflow:
        from adaptloop.results.tracking import log_run

        run_id = log_run(folder)
        console.print(f"mlflow: run {run_id}")


class Estimate:
    """One line with the expected run time, printed once a long run has shown its pace (over
    ``after`` seconds of progress, when it will take over a minute); a run's progress bar shows
    the rest. The pace is measured from the first progress report on, so start-up (imports,
    compiling, a first slow step) is not extrapolated over the whole run.

    >>> estimate = Estimate(after=0.0, longer_than=0.0)
    >>> estimate.start(1_000)
    >>> estimate.update(10) is None  # the pace is measured from here
    True
    >>> estimate.update(20)  # doctest: +ELLIPSIS
    'expected run time: about ... s (2% done)'
    >>> estimate.update(30) is None  # said once
    True
    """

    def __init__(self, after: float = 5.0, longer_than: float = 60.0) -> None:
        self.after, self.longer_than = after, longer_than
        self.total: int | None = None
        self.started = 0.0
        self.first: tuple[float, int] | None = None
        self.said = False

    def start(self, total: int | None) -> None:
        self.total, self.started, self.first = total, time.perf_counter(), None

    def update(self, done: int) -> str | None:
        """The estimate, once, when it is due; else None."""
        now = time.perf_counter()
        if self.said or not self.total or done <= 0:
            return None
        if self.first is None:
            self.first = (now, done)
            return None
        since, done_then = self.first
        if now - since < self.after or done <= done_then:
            return None
        self.said = True
        expected = now - self.started + (now - since) / (done - done_then) * (self.total - done)
        if expected < self.longer_than:
            return None
        return f"expected run time: about {_duration(expected)} ({done / self.total:.0%} done)"


def _duration(seconds: float) -> str:
    """``95`` -> ``'2 min'``, ``4000`` -> ``'1 h 7 min'``.

    >>> _duration(95), _duration(4000), _duration(30)
    ('2 min', '1 h 7 min', '30 s')
    """
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


TABLE_FORMATS = ("auto", "rich", "plain", "markdown")
"""The ways ``adaptloop run --format`` prints tables."""


def print_tables(tables: list[ResultTable], format: str = "auto") -> None:
    """Print a run's summary tables: Rich tables in a terminal (as wide as they need: a number
    is never cut), plain or Markdown text otherwise (pipes, CI logs, notebooks)."""
    if format == "auto":
        format = "rich" if console.is_terminal else "plain"
    for table in tables:
        table = table.for_terminal()
        if format == "rich":
            rendered = rich_table(table)
            width = Measurement.get(console, console.options.update_width(10_000), rendered)
            console.print(rendered, width=max(console.width, width.maximum))
        else:
            print(table.to_text(format), end="\n\n")


MARKS = {"best": "bold", "never": "bold dark_orange"}
"""Terminal styles of marked cells (see :class:`adaptloop.results.Cell`)."""


def rich_table(table: ResultTable) -> Table:
    """A result's summary table (:mod:`adaptloop.results.tables`) as a Rich table; every text
    as it is (a name in square brackets stays).

    >>> from adaptloop.results import Column, Table as T
    >>> out = rich_table(T("t", [Column.label("[x]")], [["[y]"]], terminal_title="[z] summary"))
    >>> str(out.title), str(out.columns[0].header)
    ('[z] summary', '[x]')
    """
    out = Table(
        title=Text(table.terminal_title or ""),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for i, column in enumerate(table.columns):
        out.add_column(
            Text(column.name),
            justify="right" if column.numeric else "left",
            no_wrap=True,
            style="bold" if i == 0 else None,
        )
    for row in table.rows:
        out.add_row(*(Text(cell.text, style=MARKS.get(cell.mark, "")) for cell in row))
    return out


def _write_report(results_dir: Path, out: Path | None = None) -> None:
    from adaptloop.report import ReportError, build_report

    try:
        written = build_report(results_dir, out)
    except ReportError as error:
        raise _fail(str(error)) from None
    console.print(
        Text.assemble("report: ", (str(written.html), "bold"), f" ({len(written.figures)} figures)")
    )


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="Results folder written by `run`.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="HTML file (default: RESULTS_DIR/report.html)."),
    ] = None,
) -> None:
    """Write the HTML report of a results folder.

    Figures (PNG) and one self-contained page, from the folder alone.
    """
    _write_report(results_dir, out)


REGISTRIES = (
    ("adaptloop.streams", "registry"),
    ("adaptloop.streams.tasks", "registry"),
    ("adaptloop.learners", "registry"),
    ("adaptloop.features", "registry"),
    ("adaptloop.learners.continual", "plugins"),
    ("adaptloop.learners.detectors", "detectors"),
    ("adaptloop.distributed.rules", "registry"),
)
"""Where ``adaptloop list`` finds the registries (module, attribute), in the order it shows them."""


def _registries() -> list:
    import importlib

    return [getattr(importlib.import_module(m), attribute) for m, attribute in REGISTRIES]


@app.command("list")
def list_components(
    name: Annotated[
        str | None,
        typer.Argument(help="A component: show its parameters and its whole description."),
    ] = None,
) -> None:
    """List the components, or show one.

    The streams, task sequences, learners, continual plugins, drift detectors and
    aggregation rules, one line each; with NAME, one component's parameters and description."""
    registries = _registries()
    if name is None:
        width = max(len(n) for r in registries for n in r.names())
        for registry in registries:
            console.print(Text(f"{registry.kind}s", style="bold"))
            for component in registry.names():
                line = f"  {component:<{width}}  {registry.describe(component)}"
                console.print(Text(line), soft_wrap=True)
        console.print("adaptloop list NAME: a component's parameters and description")
        return
    found = [r for r in registries if name in r]
    if not found:
        from adaptloop.validation import did_you_mean

        known = sorted({n for r in registries for n in r.names()})
        raise _fail(f"no component called {name!r}{did_you_mean(name, known)}")
    for registry in found:
        _show_component(registry, name)


def _show_component(registry, name: str) -> None:
    from adaptloop.parameters import describe_annotation, parameter_hints
    from adaptloop.registry import plain_text

    try:
        factory = registry.get(name)
    except ImportError as error:
        raise _fail(f"{registry.kind} {name!r} {missing_extra(error)}") from None
    hints = parameter_hints(factory)
    console.print(Text.assemble((name, "bold"), f" ({registry.kind})"))
    console.print()
    parameters = registry.parameters(name)
    for p in parameters:
        declared = describe_annotation(hints.get(p.name, p.annotation))
        text = f"  {p.name}: {declared}" if declared else f"  {p.name}"
        console.print(Text(text if p.required else f"{text} = {p.default!r}"))
    if not parameters:
        console.print("  (no parameters)")
    console.print()
    console.print(Text(reflow(plain_text(registry.doc(name)))))


def reflow(text: str) -> str:
    r"""Join the hard-wrapped lines of each paragraph, so the terminal wraps them at its width;
    list items and indented lines keep their own lines.

    >>> reflow("One\ntwo.\n\n- a\n- b\n  c")
    'One two.\n\n- a\n- b\n  c'
    """
    paragraphs = []
    for paragraph in text.split("\n\n"):
        lines = paragraph.splitlines()
        structured = any(re.match(r"\s|[-*] |\d+\. ", line) for line in lines)
        paragraphs.append(paragraph if structured else " ".join(lines))
    return "\n\n".join(paragraphs)


@app.command()
def serve(
    experiment: Annotated[
        Path | None,
        typer.Option("--experiment", help="Experiment TOML (default: the built-in one)."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="Start a new --db from a checkpoint file (instead of --experiment).",
        ),
    ] = None,
    checkpoint_key: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-key",
            help="File holding the HMAC key: exports are signed, only signed checkpoint "
            "files are served (else $ADAPTLOOP_CHECKPOINT_KEY).",
        ),
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="Load legacy pickled checkpoints (files or --db rows; runs their code).",
        ),
    ] = False,
    predict_rate: Annotated[
        float | None,
        typer.Option("--predict-rate", help="Most predicted records per second (429 above)."),
    ] = None,
    learner: Annotated[
        str | None, typer.Option("--learner", help="Learner of the experiment (default: first).")
    ] = None,
    db: Annotated[
        str,
        typer.Option(
            "--db",
            help="SQLite file, or postgresql://... (the [postgres] extra): predictions, "
            "feedback, checkpoints.",
        ),
    ] = "adaptloop.db",
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="all (one process), trainer (adapts, publishes versions; a second one waits "
            "as a standby) or predictor (serves the newest version).",
        ),
    ] = "all",
    engine: Annotated[
        str,
        typer.Option("--engine", help="local (this process) or ray (Ray Serve deployments)."),
    ] = "local",
    replicas: Annotated[
        int, typer.Option("--replicas", help="--engine ray: predictor replicas.")
    ] = 1,
    max_replicas: Annotated[
        int | None,
        typer.Option("--max-replicas", help="--engine ray: autoscale predictors up to this."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="--engine ray: address of an existing Ray cluster."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind.")] = 8000,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="Bearer token for writes (else $ADAPTLOOP_TOKEN)."),
    ] = None,
    micro_batch: Annotated[
        int, typer.Option("--micro-batch", help="Feedback records per adaptation step.")
    ] = 16,
    gate_window: Annotated[
        int, typer.Option("--gate-window", help="Feedback samples per update-gate decision.")
    ] = 64,
    max_nfr: Annotated[
        float, typer.Option("--max-nfr", help="Highest negative flip rate for a promotion.")
    ] = 0.05,
) -> None:
    """Serve a learner over HTTP (the [serve] extra).

    Serve predictions, take delayed feedback and adapt online.
    """
    try:
        from adaptloop.serve import transport
        from adaptloop.serve.app import create_app
        from adaptloop.serve.auth import check_bind, load_token
        from adaptloop.serve.checkpoint import load_key
        from adaptloop.serve.errors import InputError, ServiceError
        from adaptloop.serve.service import Service, ServiceConfig
        from adaptloop.serve.store import redact
    except ImportError as error:
        raise _fail(f"adaptloop serve {missing_extra(error)}") from None
    try:
        token = load_token(token_file)
        check_bind(host, token)
        if predict_rate is not None and not predict_rate > 0:
            raise InputError("predict_rate", f"must be > 0, got {predict_rate}")
        config = ServiceConfig(micro_batch=micro_batch, gate_window=gate_window, max_nfr=max_nfr)
        if engine not in ("local", "ray"):
            raise InputError("engine", f"must be local or ray, got {engine!r}")
        if engine == "ray":
            from adaptloop.serve.rayserve import RayServeOptions, deploy

            options = RayServeOptions(replicas, max_replicas, address, host, port, predict_rate)
            spec = {"experiment": experiment, "learner": learner, "checkpoint": checkpoint}
            console.print(f"deploying a trainer and {replicas} predictor(s) of {redact(db)} on Ray")
            deploy(db, config, token, load_key(checkpoint_key), spec, options)
            return
        service = Service.open(
            db,
            experiment,
            learner,
            config,
            checkpoint=checkpoint,
            checkpoint_key=load_key(checkpoint_key),
            trust_pickle=trust_pickle,
            role=role,
            wait=None if role == "trainer" else 30.0,
        )
    except ImportError as error:
        raise _fail(f"adaptloop serve {missing_extra(error)}") from None
    except ServiceError as error:
        raise _fail(error.format(_flag)) from None
    except ValueError as error:  # an experiment file that cannot be run
        raise _fail(str(error)) from None
    console.print(
        Text.assemble(
            "serving ",
            (service.spec.learner, "bold"),
            f" as {role}" if role != "all" else "",
            f" of {service.spec.experiment.name} from {redact(db)} on http://{host}:{port} "
            f"(writes {'need a token' if token else 'open'})",
        )
    )
    transport.run(create_app(service, token=token, predict_rate=predict_rate), host, port)


checkpoint_app = typer.Typer(
    help="Export checkpoints: one served model, to start `serve --checkpoint` from.",
    short_help="Export checkpoints.",
    no_args_is_help=True,
)
app.add_typer(checkpoint_app, name="checkpoint")


@checkpoint_app.command("export")
def checkpoint_export(
    db: Annotated[Path, typer.Option("--db", help="Database of `adaptloop serve`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint file to write.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Model version (default: the newest).")
    ] = None,
    checkpoint_key: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-key",
            help="File holding the HMAC key to sign with (else $ADAPTLOOP_CHECKPOINT_KEY).",
        ),
    ] = None,
) -> None:
    """Write the served model of --db (or of --version) to a checkpoint file: arrays + JSON,
    signed when a key is given."""
    from adaptloop.serve.checkpoint import export_from_db, load_key, write_checkpoint
    from adaptloop.serve.errors import ServiceError

    try:
        exported = export_from_db(db, version, load_key(checkpoint_key))
        written = write_checkpoint(out, exported)
    except ServiceError as error:
        raise _fail(error.format(_flag)) from None
    except OSError as error:
        raise _fail(f"--out: {out}: {error.strerror or error}") from None
    header = exported.header
    console.print(
        Text.assemble(
            "checkpoint: ",
            (str(written), "bold"),
            f" (learner {header['learner']} of {header['experiment_name']}, model version "
            f"{header['model_version']}, sha256 {header['sha256'][:12]}"
            f"{', signed' if 'hmac_sha256' in header else ''})",
        )
    )


def main() -> None:
    """The ``adaptloop`` command: a missing optional dependency anywhere is one line naming its
    extra, exit code 2."""
    try:
        app()
    except ImportError as error:
        errors.print(Text.assemble(("error: ", "bold red"), missing_extra(error)), soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
