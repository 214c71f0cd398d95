"""Where data comes from: drifting generators, file readers, real benchmark loaders.

Every stream yields ``(X float32 (n, d), y)`` batches (``y`` int64 class codes, or float32
for regression) and restarts from its first sample on each :meth:`Stream.iter_batches` call.
Streams are registered by name in :data:`registry`: ``sea``, ``hyperplane``, ``rbf``,
``csv``, ``parquet``, ``arff``, ``elec2``, ``rialto``, ``linkload``, ``clicks``,
``edge_events``, ``linkload_graph``, ``covariate_shift``.

>>> from adaptloop.streams import registry
>>> "sea" in registry
True
>>> stream = registry.create("sea", n=1_000, drifts=[{"at": 500, "width": 1}])
>>> sum(len(y) for _, y in stream.iter_batches(256))
1000
"""

from adaptloop.streams.arff import ARFFStream  # noqa: E402,I001 - registers "arff"
from adaptloop.streams.base import ArrayStream, Batch, Drift, Stream, StreamInfo, registry
from adaptloop.streams.batching import rebatch
from adaptloop.streams.clicks import ClickStream, clicks
from adaptloop.streams.covariate import covariate_shift
from adaptloop.streams.drift import (
    CHUNK,
    Concept,
    DriftStream,
    parse_drifts,
    sigmoid,
    switch_probability,
)
from adaptloop.streams.files import CSVStream, ParquetStream, TableStream
from adaptloop.streams.graphs import (
    EdgeEvents,
    EdgeEventStream,
    LinkLoadGraphStream,
    read_edge_list,
)
from adaptloop.streams.linkload import LinkLoadStream, linkload
from adaptloop.streams.real import elec2, rialto
from adaptloop.streams.synthetic import (
    SEA_THRESHOLDS,
    HyperplaneConcept,
    RBFConcept,
    SEAConcept,
    hyperplane,
    rbf,
    sea,
)

__all__ = [
    "ARFFStream",
    "CHUNK",
    "SEA_THRESHOLDS",
    "ArrayStream",
    "Batch",
    "CSVStream",
    "ClickStream",
    "Concept",
    "Drift",
    "DriftStream",
    "HyperplaneConcept",
    "ParquetStream",
    "RBFConcept",
    "SEAConcept",
    "Stream",
    "StreamInfo",
    "TableStream",
    "clicks",
    "covariate_shift",
    "elec2",
    "hyperplane",
    "parse_drifts",
    "rbf",
    "rebatch",
    "registry",
    "rialto",
    "sea",
    "sigmoid",
    "switch_probability",
]
__all__ += ["LinkLoadStream", "linkload"]
__all__ += ["EdgeEventStream", "EdgeEvents", "LinkLoadGraphStream", "read_edge_list"]
