"""The ``adaptloop`` command line: parsing and wiring only (logic lives in the packages).

adaptloop run [EXPERIMENT.toml] [--out DIR] [--seed N] [--no-report] [--engine local|ray]
adaptloop report RESULTS_DIR [--out FILE.html]
adaptloop list
adaptloop serve [--experiment FILE.toml | --checkpoint FILE] [--db PATH] [--host] [--port] ...
adaptloop checkpoint export --db PATH [--version N] --out FILE
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

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
    from adaptloop.distributed.experiment import FederatedExperiment, with_engine
    from adaptloop.experiment import (
        ContinualExperiment,
        ExperimentError,
        load_experiment,
        run_experiment,
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
    console.print(f"[bold]{spec.name}[/]: {len(spec.learners)} learners, seed {spec.seed}")
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

    def on_start(info, total):
        nonlocal task_id
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
    from adaptloop.evaluation.continual import ContinualSuite, write_continual_results
    from adaptloop.evaluation.results import write_results

    meta = {"experiment_name": spec.name, "seed": spec.seed, "wall_seconds": elapsed}
    if isinstance(result, ContinualSuite):
        if len(result.seeds) > 1:  # the seeds are in summary.json's "seeds"
            del meta["seed"]
        folder = write_continual_results(result, out, spec.source, **meta)
        for sequence in result.runs:
            console.print(continual_table(result, sequence))
    else:
        if isinstance(spec, FederatedExperiment):
            meta.update(result.summary_extra())
        folder = write_results(result, out, spec.source, **meta)
        console.print(summary_table(result))
        if isinstance(spec, FederatedExperiment):
            console.print(federated_table(result))
        if result.drifts:
            console.print(drift_table(result))
    console.print(f"results: [bold]{folder}[/] ({elapsed:.1f} s)")
    if not no_report:
        _write_report(folder)


def _fmt(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _rate(per_second: float) -> str:
    """Samples per second, short: 950k, 1.99M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if per_second >= scale:
            return f"{per_second / scale:.3g}{suffix}"
    return f"{per_second:.3g}"


def summary_table(result) -> Table:
    """Final metrics per learner: each metric over the whole stream, the first one also over
    the last window, then throughput and drift alarms."""
    primary = result.metrics[0]
    table = Table(
        title=f"{result.info.name}: prequential summary",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("learner", style="bold", no_wrap=True)
    for metric in result.metrics:
        table.add_column(metric, justify="right")
    table.add_column(f"{primary}\nlast {result.window:,}", justify="right")
    table.add_column("samples/s", justify="right")
    table.add_column("alarms", justify="right")
    for name, summary in result.summary.items():
        table.add_row(
            name,
            *(_fmt(summary.get(metric)) for metric in result.metrics),
            _fmt(summary.get(f"{primary}_window")),
            _rate(summary["samples_per_second"]),
            str(len(summary["alarms"])),
        )
    return table


def drift_table(result) -> Table:
    """Before / after / recovery per known drift and learner."""
    metric = result.drifts[0]["metric"]
    table = Table(
        title=f"around each known drift ({metric})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    after = f"first {result.drifts[0]['after_samples']:,} after"
    for column in ("learner", "drift at", "before", after, "drop", "recovery\n(samples)"):
        left = column == "learner"
        table.add_column(column, justify="left" if left else "right", no_wrap=left)
    for seg in result.drifts:
        recovery = "never" if seg["recovery"] is None else f"{seg['recovery']:,}"
        table.add_row(
            seg["learner"],
            f"{seg['position']:,}",
            _fmt(seg["before"]),
            _fmt(seg["after"]),
            _fmt(seg["drop"]),
            recovery,
        )
    return table


def federated_table(result) -> Table:
    """Per aggregation rule: time to the target (simulated and wall-clock), accuracy at the end
    and just after each drift, updates, server steps, failures."""
    fed = result.federated
    target = fed["target"]
    table = Table(
        title=f"{fed['clients']} clients on the {fed['engine']} engine"
        + (f", target accuracy {target}" if target is not None else ""),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    columns = [
        "rule",
        "time to\ntarget",
        "wall s to\ntarget",
        "final\naccuracy",
        "after\ndrift",
        "updates",
        "server\nsteps",
        "failures",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "rule" else "right", no_wrap=True)
    for name, rule in fed["rules"].items():
        after = ", ".join(_fmt(a, 3) for a in rule["accuracy_after_drift"]) or "-"
        table.add_row(
            name,
            _fmt(rule["time_to_target"], 1),
            _fmt(rule["wall_to_target"], 2),
            _fmt(result.summary[name]["accuracy_final"]),
            after,
            str(rule["updates"]),
            str(rule["server_steps"]),
            str(rule["failures"]),
        )
    return table


def continual_table(suite, sequence: str) -> Table:
    """Continual metrics per learner on one sequence: final average, min-ACC, WC-ACC, windowed
    forgetting and the largest drop of task 0 just after a task switch (the stability gap);
    mean +- std over the seeds when there are several."""
    first = next(iter(suite.runs[sequence].values()))
    n_seeds = len(suite.runs[sequence])
    windows = [str(w) for w in first.windows]
    seeds = f", {n_seeds} seeds: mean ± std" if n_seeds > 1 else ""
    table = Table(
        title=f"{sequence}: continual evaluation (every {first.eval_every} it.{seeds})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    columns = ["learner", "avg acc", "min-ACC", "WC-ACC", *(f"WF{w}" for w in windows)]
    for column in [*columns, "task-0 gap\n(max drop)", "train s", "eval s"]:
        left = column == "learner"
        table.add_column(column, justify="left" if left else "right", no_wrap=left)

    def cell(mean: object, std: object) -> str:
        if n_seeds == 1 or mean is None:
            return _fmt(mean)
        return f"{_fmt(mean, 3)}±{_fmt(std, 3)}"

    for name, s in suite.summary(sequence).items():
        std = s["std"]
        table.add_row(
            name,
            *(cell(s[k], std[k]) for k in ("avg_acc", "min_acc", "wc_acc")),
            *(cell(s["wf"][w], std["wf"][w]) for w in windows),
            cell(s["max_gap"], std["max_gap"]),
            f"{s['train_seconds']:.1f}",
            f"{s['eval_seconds']:.1f}",
        )
    return table


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
    """Show the available streams, learners, drift detectors and aggregation rules."""
    from adaptloop.distributed import registry as rule_registry
    from adaptloop.learners import registry as learner_registry
    from adaptloop.learners.detectors import detectors
    from adaptloop.streams import registry as stream_registry
    from adaptloop.streams.tasks import registry as task_registry

    for registry in (stream_registry, task_registry, learner_registry, detectors, rule_registry):
        table = Table(title=f"{registry.kind}s", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("parameters (default)")
        table.add_column("description")
        for name in registry.names():
            params = ", ".join(
                p.name if p.required else f"{p.name}={p.default!r}"
                for p in registry.parameters(name)
            )
            table.add_row(name, params, registry.describe(name))
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
