"""Re-batching: turn chunks of any size into batches of a chosen size, in constant memory.

Generators and file readers produce data in chunks whose size suits them (a fixed number
of samples, a block of bytes); :func:`rebatch` cuts and joins those chunks into the batch
size the caller asked for, so the concatenated data never depends on the batch size.

>>> import numpy as np
>>> chunks = [(np.arange(3), np.arange(3) * 10), (np.arange(3, 5), np.arange(3, 5) * 10)]
>>> [X.tolist() for X, _ in rebatch(iter(chunks), 2)]
[[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from adaptloop.streams.base import check_batch_size


def rebatch(chunks: Iterable[tuple[np.ndarray, ...]], batch_size: int) -> Iterator[tuple]:
    """Yield tuples of arrays with ``batch_size`` rows (the last may be smaller) from ``chunks``.

    Each chunk is a tuple of arrays with the same number of rows (``(X, y)``, or ``(ids,)``);
    the output holds the same rows in the same order. Batches inside one chunk are views of
    it; batches spanning chunks are copies. Only one chunk and one batch are held at a time.

    >>> import numpy as np
    >>> chunks = [(np.arange(4),), (np.arange(4, 6),)]
    >>> [b[0].tolist() for b in rebatch(chunks, 5)]
    [[0, 1, 2, 3, 4], [5]]
    """
    batch_size = check_batch_size(batch_size)
    pending: list[tuple[np.ndarray, ...]] = []
    buffered = 0
    for chunk in chunks:
        n = len(chunk[0])
        start = 0
        if buffered:
            take = min(batch_size - buffered, n)
            pending.append(tuple(a[:take] for a in chunk))
            buffered += take
            start = take
            if buffered < batch_size:
                continue
            yield _join(pending)
            pending, buffered = [], 0
        while n - start >= batch_size:
            yield tuple(a[start : start + batch_size] for a in chunk)
            start += batch_size
        if start < n:
            pending = [tuple(a[start:] for a in chunk)]
            buffered = n - start
    if buffered:
        yield _join(pending)


def _join(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))
