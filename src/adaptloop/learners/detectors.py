"""Drift detectors by name: River's detectors, registered so experiments can name them.

The detectors are River's own (``river.drift`` and ``river.drift.binary``); this module only
names them and builds them from a name, a ``{"kind": name, ...params}`` dict or an instance.
Detectors in ``binary_detectors()`` expect 0/1 inputs (a classifier's mistakes); the others
take any real value (an error, a loss).

>>> from adaptloop.learners.detectors import detectors, make_detector
>>> "adwin" in detectors
True
>>> det = make_detector({"kind": "page_hinkley", "threshold": 20.0})
>>> type(det).__name__, det.threshold
('PageHinkley', 20.0)
>>> for x in [0.0] * 100 + [5.0] * 20:
...     det.update(x)
...     if det.drift_detected:
...         break
>>> det.drift_detected
True
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
from river.base import BinaryDriftDetector
from river.base.drift_detector import _BaseDriftDetector

from adaptloop.learners import detector_kernels as kernels
from adaptloop.registry import Registry

__all__ = [
    "CompiledDetector",
    "DetectorSpec",
    "compile_detector",
    "detector_class",
    "detectors",
    "first_alarm",
    "is_binary_detector",
    "make_detector",
]

detectors = Registry("detector")
"""Drift detectors by name (River classes); build one with :func:`make_detector`."""

# imported on first use: ``river.drift`` imports ``river.datasets``, which pulls in scikit-learn
# and scipy.stats: ~5 s of start-up on these machines for every process that never detects
# a drift (the CLI, the service, each Ray client)
for _name, _target in {
    "adwin": "river.drift:ADWIN",
    "page_hinkley": "river.drift:PageHinkley",
    "kswin": "river.drift:KSWIN",
    "ddm": "river.drift.binary:DDM",
    "eddm": "river.drift.binary:EDDM",
    "hddm_a": "river.drift.binary:HDDMA",
    "hddm_w": "river.drift.binary:HDDMW",
    "fhddm": "river.drift.binary:FHDDM",
}.items():
    detectors.register_lazy(_name, _target)

DetectorSpec = str | dict[str, Any] | _BaseDriftDetector
"""What :func:`make_detector` accepts: a name, a ``{"kind": name, ...}`` dict or an instance."""


def make_detector(
    spec: DetectorSpec, seed: int | None = None, params: dict[str, Any] | None = None
) -> _BaseDriftDetector:
    """Build a fresh (state-free) River drift detector from ``spec``.

    ``spec`` is a registered name (``"adwin"``), a dict ``{"kind": name, **params}`` or a
    River detector instance, which is cloned (same parameters, fresh state) so that two users
    never share state. ``params`` are extra constructor arguments (they override those of the
    dict or instance). ``seed`` is passed to detectors that take one (KSWIN) unless the spec
    sets it. Unknown names and parameters raise ``ValueError`` naming the known ones.

    >>> make_detector("adwin", params={"delta": 0.01}).delta
    0.01
    >>> make_detector("kswin", seed=3).seed
    3
    >>> make_detector("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown detector 'nope'; known: adwin, ddm, eddm, ..., kswin, page_hinkley
    """
    extra = dict(params or {})
    if isinstance(spec, _BaseDriftDetector):
        takes_seed = "seed" in _init_params(type(spec)) and "seed" not in extra
        if seed is not None and takes_seed and getattr(spec, "seed", None) is None:
            extra["seed"] = seed
        return spec.clone(extra) if extra else spec.clone()
    if isinstance(spec, type) and issubclass(spec, _BaseDriftDetector):
        return _build(spec, extra, seed)
    if isinstance(spec, str):
        return _build_named(spec, extra, seed)
    if isinstance(spec, dict):
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if not isinstance(kind, str):
            known = ", ".join(detectors.names())
            raise ValueError(
                f"detector dict needs a 'kind' naming a detector ({known}), got {kind!r}"
            )
        return _build_named(kind, {**spec, **extra}, seed)
    raise ValueError(
        "detector must be a name, a {'kind': name, ...} dict or a River drift detector, "
        f"got {type(spec).__name__}"
    )


def is_binary_detector(detector: object) -> bool:
    """Whether ``detector`` expects 0/1 inputs (River's ``BinaryDriftDetector``).

    >>> is_binary_detector(make_detector("ddm")), is_binary_detector(make_detector("adwin"))
    (True, False)
    """
    if isinstance(detector, CompiledDetector):
        return detector.binary
    return isinstance(detector, BinaryDriftDetector)


class CompiledDetector:
    """A River ADWIN, DDM or Page-Hinkley detector run by the compiled kernels of
    :mod:`adaptloop.learners.detector_kernels`: the same alarms on the same inputs, at a
    fraction of the cost per sample, and usable inside compiled loops (``state``).

    It reads like the River detector it replaces: its parameters as attributes, ``update``,
    ``drift_detected``, ``clone``; ADWIN adds ``width`` and ``n_detections``, DDM
    ``warning_detected``.

    >>> det = compile_detector(make_detector("page_hinkley", params={"threshold": 5.0}))
    >>> det.threshold, first_alarm(det, [0.0] * 50 + [3.0] * 10)
    (5.0, 51)
    """

    def __init__(self, prototype: _BaseDriftDetector) -> None:
        self.prototype = prototype.clone()
        self.kind = _COMPILED[type(prototype)]
        self.params = {name: getattr(prototype, name) for name in kernels.PARAMETERS[self.kind]}
        vars(self).update(self.params)
        self.binary = isinstance(prototype, BinaryDriftDetector)
        self.state = kernels.new_state(self.kind, self.params)

    def clone(self) -> CompiledDetector:
        """The same detector, fresh."""
        return CompiledDetector(self.prototype)

    def update(self, x: float) -> None:
        kernels.update(*self.state, float(x))

    @property
    def drift_detected(self) -> bool:
        return kernels.drift_flag(self.state[1])

    @property
    def warning_detected(self) -> bool:
        return kernels.warning_flag(self.state[1])

    @property
    def width(self) -> float:
        return kernels.adwin_width(self.state[0])

    @property
    def n_detections(self) -> int:
        return kernels.n_detections(self.state[1])

    def __repr__(self) -> str:
        return f"Compiled{self.prototype!r}"

    def state_dict(self) -> dict[str, Any]:
        """The detector as plain values and arrays (no pickle): which River detector, its
        parameters and the kernel's state; :meth:`from_state_dict` rebuilds it.

        >>> det = compile_detector(make_detector("adwin"))
        >>> for x in [0.0] * 40 + [1.0] * 40:
        ...     det.update(x)
        >>> again = CompiledDetector.from_state_dict(det.state_dict())
        >>> again.width == det.width, sorted(det.state_dict())
        (True, ['detector', 'params', 'state'])
        """
        return {
            "detector": type(self.prototype).__name__,
            "params": dict(self.params),
            "state": [a.copy() for a in self.state],
        }

    @classmethod
    def from_state_dict(cls, saved: dict[str, Any]) -> CompiledDetector:
        """The detector :meth:`state_dict` describes; only the detectors that compile (River's
        ADWIN, DDM, Page-Hinkley) are built, a wrong name or array is a ``ValueError``."""
        if not isinstance(saved, dict) or set(saved) != {"detector", "params", "state"}:
            raise ValueError("a compiled detector's state needs keys detector, params, state")
        compile_detector(make_detector("adwin"))  # fills the table of compiled classes
        by_name = {c.__name__: c for c in _COMPILED}
        river_class = by_name.get(saved["detector"])
        if river_class is None:
            raise ValueError(
                f"detector {saved['detector']!r} does not compile; one of {sorted(by_name)}"
            )
        detector = cls(river_class(**saved["params"]))
        arrays = tuple(np.asarray(a) for a in saved["state"])
        fresh = detector.state
        if len(arrays) != len(fresh) or any(
            a.shape != b.shape or a.dtype != b.dtype for a, b in zip(arrays, fresh, strict=True)
        ):
            raise ValueError(f"{saved['detector']} state arrays do not fit its parameters")
        detector.state = tuple(a.copy() for a in arrays)
        return detector

    def __getstate__(self) -> dict[str, Any]:  # plain values: equal detectors pickle equally
        return {"detector": type(self.prototype), "params": self.params, "state": self.state}

    def __setstate__(self, saved: dict[str, Any]) -> None:
        self.__init__(saved["detector"](**saved["params"]))  # type: ignore[misc]
        self.state = saved["state"]


_COMPILED: dict[type, int] = {}


def compile_detector(detector: _BaseDriftDetector) -> _BaseDriftDetector | CompiledDetector:
    """``detector`` as a :class:`CompiledDetector` when it is River's ADWIN, DDM or
    Page-Hinkley (exactly, not a subclass), else unchanged.

    >>> type(compile_detector(make_detector("adwin"))).__name__
    'CompiledDetector'
    >>> type(compile_detector(make_detector("kswin"))).__name__
    'KSWIN'
    """
    if not _COMPILED:
        from river.drift import ADWIN, PageHinkley
        from river.drift.binary import DDM

        _COMPILED.update(
            {ADWIN: kernels.ADWIN, DDM: kernels.DDM, PageHinkley: kernels.PAGE_HINKLEY}
        )
    if type(detector) in _COMPILED:
        return CompiledDetector(detector)
    return detector


def detector_class(detector: _BaseDriftDetector | CompiledDetector) -> type:
    """The River class of ``detector`` (a compiled one's too).

    >>> detector_class(compile_detector(make_detector("ddm"))).__name__
    'DDM'
    """
    return type(detector.prototype) if isinstance(detector, CompiledDetector) else type(detector)


def first_alarm(
    detector: _BaseDriftDetector | CompiledDetector, errors: Sequence[float]
) -> int | None:
    """Feed ``errors`` to ``detector`` in order up to its first alarm; that alarm's index, or
    ``None`` (a compiled detector runs the whole loop compiled)."""
    if isinstance(detector, CompiledDetector):
        index = int(kernels.first_alarm(*detector.state, np.asarray(errors, dtype=np.float64)))
        return None if index < 0 else index
    for index, error in enumerate(errors):
        detector.update(error)
        if detector.drift_detected:
            return index
    return None


def _init_params(cls: type) -> list[str]:
    return [p for p in inspect.signature(cls).parameters if p != "self"]


def _build_named(name: str, params: dict[str, Any], seed: int | None) -> _BaseDriftDetector:
    if seed is not None and "seed" in detectors.parameter_names(name):
        params.setdefault("seed", seed)
    return detectors.create(name, **params)


def _build(cls: type, params: dict[str, Any], seed: int | None) -> _BaseDriftDetector:
    if seed is not None and "seed" in _init_params(cls):
        params.setdefault("seed", seed)
    try:
        return cls(**params)
    except TypeError as error:
        raise ValueError(f"cannot build {cls.__name__} with {params}: {error}") from None
