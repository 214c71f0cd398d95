"""What a run produces and how it is shown: the record schema, metric metadata as objects, the
:class:`Result` protocol, the results folder and the summary tables that the CLI and the report
share.

This package computes no experiment and imports nothing from :mod:`adaptloop.evaluation`
(evaluation builds results; reports read them).

>>> get_metric("accuracy").bigger_is_better, format_number(1234567)
(True, '1,234,567')
"""

from adaptloop.results.folder import (
    OUTPUTS,
    RESULT_FILES,
    ResultsError,
    json_safe,
    prepare_folder,
    read_summary,
    run_metadata,
    summary_rows,
    write_results,
)
from adaptloop.results.metrics import (
    METRICS,
    Metric,
    check_metrics,
    default_metrics,
    get_metric,
    register_metric,
)
from adaptloop.results.result import Result
from adaptloop.results.schema import CONTINUAL_RECORD_COLUMNS, PREQUENTIAL_RECORD_COLUMNS
from adaptloop.results.tables import (
    Cell,
    Column,
    Table,
    continual_tables,
    format_number,
    prequential_tables,
    short_number,
)

__all__ = [
    "CONTINUAL_RECORD_COLUMNS",
    "METRICS",
    "PREQUENTIAL_RECORD_COLUMNS",
    "OUTPUTS",
    "RESULT_FILES",
    "Cell",
    "Column",
    "Metric",
    "Result",
    "ResultsError",
    "Table",
    "check_metrics",
    "continual_tables",
    "format_number",
    "get_metric",
    "json_safe",
    "default_metrics",
    "prepare_folder",
    "prequential_tables",
    "read_summary",
    "register_metric",
    "run_metadata",
    "short_number",
    "summary_rows",
    "write_results",
]
