"""Loaders for the real concept-drift benchmarks in ``../shared/data/`` (see its README).

Loaders take a path and never download. The default paths are relative to the working
directory (the repository root); neither dataset has known drift positions, but a user may
declare the ones they believe in (``drifts``, as for any file stream).

>>> from pathlib import Path
>>> stream = elec2() if Path(ELEC2_PATH).exists() else None
>>> stream is None or (stream.info.n_samples, stream.info.classes) == (45_312, ("DOWN", "UP"))
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from adaptloop.streams.base import Drift, registry
from adaptloop.streams.files import CSVStream

ELEC2_PATH = "../shared/data/elec2.csv.gz"
RIALTO_PATH = "../shared/data/rialto.csv.gz"


@registry.register("elec2")
def elec2(
    path: str | os.PathLike = ELEC2_PATH, drifts: Sequence[Drift | Mapping[str, int]] = ()
) -> CSVStream:
    """Electricity NSW (Harries 1999; MOA elecNormNew): 45,312 half-hours, 8 features, UP/DOWN.

    Features ``date, day, period, nswprice, nswdemand, vicprice, vicdemand, transfer``
    (normalised to [0, 1], ``day`` 1-7); label ``class`` with code 0 = ``"DOWN"`` and
    code 1 = ``"UP"`` (River's convention, ``class == "UP"`` is positive).

    >>> from pathlib import Path
    >>> stream = elec2() if Path(ELEC2_PATH).exists() else None
    >>> stream is None or stream.info.feature_names[:3] == ("date", "day", "period")
    True
    """
    return CSVStream(path, target="class", classes=["DOWN", "UP"], name="elec2", drifts=drifts)


@registry.register("rialto")
def rialto(
    path: str | os.PathLike = RIALTO_PATH, drifts: Sequence[Drift | Mapping[str, int]] = ()
) -> CSVStream:
    """Rialto bridge time-lapse (Losing et al. 2016): 82,250 images, 27 colour features, 10 classes.

    Features ``att1..att27`` (a normalised 27-bin RGB histogram); label ``class``, the
    building, with classes ``"0"``..``"9"`` (code ``i`` is building ``"i"``).

    >>> from pathlib import Path
    >>> stream = rialto() if Path(RIALTO_PATH).exists() else None
    >>> stream is None or (stream.info.n_features, stream.info.n_classes) == (27, 10)
    True
    """
    classes = [str(c) for c in range(10)]
    return CSVStream(path, target="class", classes=classes, name="rialto", drifts=drifts)
