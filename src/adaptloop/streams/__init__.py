"""Where data comes from: drifting generators, file readers, real benchmark loaders.

>>> from adaptloop.streams import registry
>>> "sea" in registry
True
"""

from adaptloop.streams.base import ArrayStream, Batch, Drift, Stream, StreamInfo, registry

__all__ = ["ArrayStream", "Batch", "Drift", "Stream", "StreamInfo", "registry"]
