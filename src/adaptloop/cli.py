"""The ``adaptloop`` command line: parsing and wiring only (logic lives in the packages).

adaptloop run [EXPERIMENT.toml] [--out DIR] [--seed N] [--no-report] [--engine local|ray]
adaptloop report RESULTS_DIR [--out FILE.html]
adaptloop list
adaptloop serve [--experiment FILE.toml | --checkpoint FILE] [--db PATH] [--host] [--port] ...
adaptloop checkpoint export --db PATH [--version N] --out FILE
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
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
)
console = Console()
errors = Console(stderr=True)


def _flag(parameter: str) -> str:
    """The option that sets a library parameter: ``micro_batch`` -> ``--micro-batch``.

    >>> _flag("token_file")
    '--token-file'
    """
    return "--" + parameter.replace("_", "-")


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


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
        typer.Option("--engine", help="Federated experiments: 'local' (simulated) or 'ray'."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Federated on Ray: a cluster address (default: local)."),
    ] = None,
) -> None:
    """Run an experiment prequentially and write its results folder."""
    from adaptloop.config import (
        ContinualExperiment,
        ExperimentError,
        FederatedExperiment,
        load_experiment,
        run_experiment,
        with_engine,
        with_seed,
    )

    try:
        spec = load_experiment(experiment)
        if seed is not None:
            spec = with_seed(spec, seed)
        if engine is not None or address is not None:
            if not isinstance(spec, FederatedExperiment):
                raise ExperimentError("--engine and --address apply to federated experiments")
            spec = with_engine(spec, engine or ("ray" if address else spec.engine.kind), address)
    except (ExperimentError, ValueError) as error:
        raise _fail(str(error)) from None
    out = out or Path("results") / f"{spec.name}-{datetime.now():%Y%m%d-%H%M%S}"
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "iterations"
            if isinstance(spec, ContinualExperiment)
            else "time units"
            if isinstance(spec, FederatedExperiment)
            else "samples"
        ),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task_id = None

    def on_start(info, total):  # built: the experiment's errors are all out
        nonlocal task_id
        console.print(f"[bold]{spec.name}[/]: {len(spec.learners)} learners, seed {spec.seed}")
        task_id = progress.add_task(f"{info.name}", total=total)

    started = time.perf_counter()
    try:
        with progress:
            result = run_experiment(
                spec,
                on_start=on_start,
                on_batch=lambda position: progress.update(task_id, completed=position),
            )
    except (ValueError, FileNotFoundError, ImportError) as error:
        raise _fail(str(error)) from None
    elapsed = time.perf_counter() - started
    from adaptloop.results import write_results

    meta = {"experiment_name": spec.name, "seed": spec.seed, "wall_seconds": elapsed}
    folder = write_results(result, out, spec.source, **meta)
    for table in result.tables():
        if table.terminal_title is not None:
            console.print(rich_table(table.for_terminal()))
    console.print(f"results: [bold]{folder}[/] ({elapsed:.1f} s)")
    if not no_report:
        _write_report(folder)


MARKS = {"best": "bold", "never": "bold dark_orange"}
"""Terminal styles of marked cells (see :class:`adaptloop.results.Cell`)."""


def rich_table(table: ResultTable) -> Table:
    """A result's summary table (:mod:`adaptloop.results.tables`) as a Rich table."""
    out = Table(
        title=table.terminal_title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for i, column in enumerate(table.columns):
        out.add_column(
            column.name,
            justify="right" if column.numeric else "left",
            no_wrap=not column.numeric,
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
    console.print(f"report: [bold]{written.html}[/] ({len(written.figures)} figures)")


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="Results folder written by `run`.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="HTML file (default: RESULTS_DIR/report.html)."),
    ] = None,
) -> None:
    """Write figures (PNG) and one self-contained HTML report from a results folder."""
    _write_report(results_dir, out)


@app.command("list")
def list_components() -> None:
    """Show the available streams, learners, continual plugins, drift detectors and rules, with
    each parameter's declared type and default."""
    from adaptloop.distributed import registry as rule_registry
    from adaptloop.features import registry as encoder_registry
    from adaptloop.learners import registry as learner_registry
    from adaptloop.learners.continual import plugins
    from adaptloop.learners.detectors import detectors
    from adaptloop.parameters import describe_annotation, parameter_hints
    from adaptloop.streams import registry as stream_registry
    from adaptloop.streams.tasks import registry as task_registry

    registries = (
        stream_registry,
        task_registry,
        learner_registry,
        encoder_registry,
        plugins,
        detectors,
        rule_registry,
    )
    for registry in registries:
        table = Table(title=f"{registry.kind}s", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("parameters: type = default")
        table.add_column("description")
        for name in registry.names():
            hints = parameter_hints(registry.get(name))
            params = []
            for p in registry.parameters(name):
                declared = describe_annotation(hints.get(p.name, p.annotation))
                text = f"{p.name}: {declared}" if declared else p.name
                params.append(text if p.required else f"{text} = {p.default!r}")
            table.add_row(name, ", ".join(params), registry.describe(name))
        console.print(table)


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
            help="Start a new --db from a checkpoint file (instead of --experiment). "
            "A pickle: use only files you trust.",
        ),
    ] = None,
    learner: Annotated[
        str | None, typer.Option("--learner", help="Learner of the experiment (default: first).")
    ] = None,
    db: Annotated[
        Path, typer.Option("--db", help="SQLite database: predictions, feedback, checkpoints.")
    ] = Path("adaptloop.db"),
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
    """Serve predictions, take delayed feedback and adapt online (needs the [serve] extra)."""
    try:
        import uvicorn

        from adaptloop.serve.app import create_app
        from adaptloop.serve.auth import check_bind, load_token
        from adaptloop.serve.errors import ServiceError
        from adaptloop.serve.service import Service, ServiceConfig
    except ImportError as error:
        raise _fail(f"adaptloop serve needs the [serve] extra: {error}") from None
    try:
        token = load_token(token_file)
        check_bind(host, token)
        config = ServiceConfig(micro_batch=micro_batch, gate_window=gate_window, max_nfr=max_nfr)
        service = Service.open(db, experiment, learner, config, checkpoint=checkpoint)
    except ServiceError as error:
        raise _fail(error.format(_flag)) from None
    except ValueError as error:  # an experiment file that cannot be run
        raise _fail(str(error)) from None
    console.print(
        f"serving [bold]{service.spec.learner}[/] of {service.spec.experiment.name} "
        f"from {db} on http://{host}:{port} (writes {'need a token' if token else 'open'})"
    )
    uvicorn.run(create_app(service, token=token), host=host, port=port, log_level="warning")


checkpoint_app = typer.Typer(
    help="Checkpoint files: one served model, to start `serve --checkpoint` from.",
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
) -> None:
    """Write the served model of --db (or of --version) to a checkpoint file. It holds a
    pickle: share it only with people who trust you, load only files you trust."""
    from adaptloop.serve.checkpoint import export_from_db, write_checkpoint
    from adaptloop.serve.errors import ServiceError

    try:
        exported = export_from_db(db, version)
        written = write_checkpoint(out, exported)
    except ServiceError as error:
        raise _fail(error.format(_flag)) from None
    except OSError as error:
        raise _fail(f"--out: {out}: {error.strerror or error}") from None
    header = exported.header
    console.print(
        f"checkpoint: [bold]{written}[/] (learner {header['learner']} of "
        f"{header['experiment_name']}, model version {header['model_version']}, "
        f"sha256 {header['sha256'][:12]})",
        highlight=False,
    )


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
