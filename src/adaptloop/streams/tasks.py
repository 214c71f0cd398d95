"""Task sequences for continual learning: Split-, Permuted- and Rotated-Digits, and MNIST.

A :class:`TaskSequence` is an ordered tuple of :class:`TaskData` -- each task with its own train
and test arrays (features float32 in [0, 1], labels int64 codes shared by all tasks) -- plus the
scenario: ``"class"`` (class-incremental: one head, no task identity), ``"task"``
(task-incremental: the task is known at test time, the prediction is restricted to its
``classes`` and task-conditioned learners are asked with the task) or
``"domain"`` (domain-incremental: every task has all classes, the input distribution changes).

Sequences are built by name from :data:`registry` (its own small registry, kept apart from the
stream registry because a task sequence is not a stream of batches): ``split_digits``,
``permuted_digits``, ``rotated_digits`` use scikit-learn's bundled 8x8 digits (1,797 images,
offline), as do ``recurring_split_digits`` (tasks that come back, SCoLe) and
``federated_split_digits`` (a server's base classes, then each client's); ``split_mnist``,
``permuted_mnist``, ``rotated_mnist`` read MNIST from a local file (:func:`load_mnist`: a
Keras-style ``.npz`` or a folder of IDX files) and never download.

>>> seq = registry.create("split_digits", seed=0)
>>> len(seq), seq.scenario, seq.n_classes, seq.tasks[1].classes
(5, 'class', 10, (2, 3))
>>> sorted(set(seq.tasks[1].y_train.tolist()))
[2, 3]
>>> registry.create("rotated_digits").task_names
['rot0', 'rot80', 'rot160']
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from adaptloop.registry import Registry
from adaptloop.streams.base import StreamInfo

Scenario = Literal["class", "task", "domain"]

registry = Registry("task sequence")
"""Task-sequence factories by name (``adaptloop list`` shows them)."""

__all__ = [
    "Scenario",
    "TaskData",
    "TaskSequence",
    "load_digits_arrays",
    "load_mnist",
    "permuted",
    "recurring",
    "registry",
    "rotated",
    "split",
]


@dataclass(frozen=True)
class TaskData:
    """One task: a name, train and test arrays, and the label codes it contains."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[int, ...]


@dataclass(frozen=True)
class TaskSequence:
    """Tasks in training order, with the scenario and the label space they share.

    >>> X = np.eye(4, dtype=np.float32)
    >>> y = np.array([0, 1, 2, 3])
    >>> seq = split(X, y, X, y, [[0, 1], [2, 3]], name="toy")
    >>> seq.task_names, seq.n_features, seq.info.n_classes
    (['0-1', '2-3'], 4, 4)
    """

    name: str
    tasks: tuple[TaskData, ...]
    n_classes: int
    scenario: Scenario

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("a task sequence needs at least one task")
        if self.scenario not in ("class", "task", "domain"):
            raise ValueError(f"scenario must be class, task or domain, got {self.scenario!r}")

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[TaskData]:
        return iter(self.tasks)

    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]

    @property
    def n_features(self) -> int:
        return int(self.tasks[0].X_train.shape[1])

    @property
    def info(self) -> StreamInfo:
        """Stream-like metadata (features, classes), as learners are built from."""
        return StreamInfo(
            name=self.name,
            feature_names=tuple(f"x{i}" for i in range(self.n_features)),
            task="multiclass" if self.n_classes > 2 else "binary",
            classes=tuple(str(c) for c in range(self.n_classes)),
            n_samples=sum(len(t.y_train) for t in self.tasks),
        )

    def to_dict(self) -> dict:
        """JSON-ready metadata: name, scenario, and per task its name, classes and sizes."""
        return {
            "name": self.name,
            "scenario": self.scenario,
            "n_classes": self.n_classes,
            "tasks": [
                {
                    "name": t.name,
                    "classes": list(t.classes),
                    "n_train": len(t.y_train),
                    "n_test": len(t.y_test),
                }
                for t in self.tasks
            ],
        }


# -- building sequences from arrays -------------------------------------------------------------
def split(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    groups: Sequence[Sequence[int]],
    scenario: Scenario = "class",
    name: str = "split",
) -> TaskSequence:
    """One task per group of classes (class- or task-incremental); labels keep their codes."""
    if scenario not in ("class", "task"):
        raise ValueError(f"a split sequence is class- or task-incremental, got {scenario!r}")
    flat = [int(c) for g in groups for c in g]
    if not groups or any(len(g) == 0 for g in groups) or len(set(flat)) != len(flat):
        raise ValueError(f"groups must be non-empty, disjoint lists of classes, got {groups!r}")
    tasks = []
    for group in groups:
        train, test = np.isin(y_train, group), np.isin(y_test, group)
        tasks.append(
            TaskData(
                "-".join(str(c) for c in group),
                X_train[train],
                y_train[train],
                X_test[test],
                y_test[test],
                tuple(int(c) for c in group),
            )
        )
    n_classes = max(int(y_train.max()), int(y_test.max()), max(flat)) + 1
    return TaskSequence(name, tuple(tasks), n_classes, scenario)


def _domain_sequence(
    name, X_train, y_train, X_test, y_test, transforms, scenario: Scenario = "domain"
) -> TaskSequence:
    if scenario not in ("domain", "task"):
        raise ValueError(f"scenario must be 'domain' or 'task', got {scenario!r}")
    classes = tuple(int(c) for c in np.unique(y_train))
    tasks = tuple(
        TaskData(task_name, f(X_train), y_train, f(X_test), y_test, classes)
        for task_name, f in transforms
    )
    return TaskSequence(name, tasks, int(max(y_train.max(), y_test.max())) + 1, scenario)


def permuted(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    n_tasks: int = 3,
    seed: int = 0,
    name: str = "permuted",
    scenario: Scenario = "domain",
) -> TaskSequence:
    """Domain-incremental: task 0 is the original input, task ``k`` a fixed seeded permutation
    of the features (Goodfellow et al. 2013, Permuted MNIST). ``scenario = "task"``: the same
    tasks, the task's identity known at test time (van de Ven et al.'s task-incremental
    Permuted MNIST; every task holds all classes)."""
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    rng = np.random.default_rng(seed)
    d = X_train.shape[1]
    perms = [np.arange(d)] + [rng.permutation(d) for _ in range(n_tasks - 1)]
    transforms = [(f"perm{k}", lambda X, p=p: X[:, p]) for k, p in enumerate(perms)]
    return _domain_sequence(name, X_train, y_train, X_test, y_test, transforms, scenario)


def rotated(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    angles: Sequence[float] = (0.0, 80.0, 160.0),
    side: int = 8,
    name: str = "rotated",
) -> TaskSequence:
    """Domain-incremental: one task per angle, every (square ``side`` x ``side``) image rotated
    by it (bilinear, same size, zero fill: ``scipy.ndimage.rotate``)."""
    from scipy import ndimage

    if not angles:
        raise ValueError("angles must list at least one rotation")

    def rotate(X: np.ndarray, angle: float) -> np.ndarray:
        images = X.reshape(-1, side, side)
        out = ndimage.rotate(images, angle, axes=(1, 2), reshape=False, order=1)
        return np.clip(out, 0.0, 1.0).reshape(len(X), -1).astype(np.float32)

    transforms = [(f"rot{a:g}", lambda X, a=a: rotate(X, a)) for a in angles]
    return _domain_sequence(name, X_train, y_train, X_test, y_test, transforms)


# -- data -----------------------------------------------------------------------------------
def load_digits_arrays(
    test_size: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], split stratified and seeded.

    >>> X_train, y_train, X_test, y_test = load_digits_arrays()
    >>> X_train.shape, X_test.shape, X_train.dtype, float(X_train.max())
    ((1257, 64), (540, 64), dtype('float32'), 1.0)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    return X_train, y_train, X_test, y_test


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, file holds {array.size} values")
    return array.reshape(shape)


_IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def load_mnist(
    path: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST from a local file: ``X_train, y_train, X_test, y_test`` (X float32 in [0, 1],
    flattened 28x28; y int64). Never downloads.

    ``path`` is a ``.npz`` with arrays ``x_train, y_train, x_test, y_test`` (Keras'
    ``mnist.npz``), or a folder holding the four IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
    each optionally ``.gz``).

    >>> load_mnist("/nowhere/mnist.npz")
    Traceback (most recent call last):
    ...
    FileNotFoundError: MNIST file not found: /nowhere/mnist.npz
    """
    path = Path(path)
    if path.is_dir():
        arrays = {}
        for key, stem in _IDX_NAMES.items():
            found = [p for p in (path / stem, path / f"{stem}.gz") if p.is_file()]
            if not found:
                raise FileNotFoundError(f"MNIST IDX file not found: {path / stem}[.gz]")
            arrays[key] = _read_idx(found[0])
    elif path.is_file():
        with np.load(path) as npz:
            missing = sorted(set(_IDX_NAMES) - set(npz.files))
            if missing:
                raise ValueError(f"{path} lacks array(s) {missing}")
            arrays = {key: npz[key] for key in _IDX_NAMES}
    else:
        raise FileNotFoundError(f"MNIST file not found: {path}")
    out = []
    for split_name in ("train", "test"):
        X, y = arrays[f"x_{split_name}"], arrays[f"y_{split_name}"]
        if X.ndim < 2 or len(X) != len(y):
            raise ValueError(f"{path}: x_{split_name} {X.shape} does not match y {y.shape}")
        out += [(X.reshape(len(X), -1) / 255.0).astype(np.float32), y.astype(np.int64)]
    return out[0], out[1], out[2], out[3]


PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
"""Split-MNIST's five tasks of two classes, in order."""


# -- registered sequences -----------------------------------------------------------------------
@registry.register("split_digits")
def split_digits(scenario: Scenario = "class", seed: int = 0) -> TaskSequence:
    """Split-Digits: sklearn's 8x8 digits as 5 tasks of 2 classes (0-1, 2-3, ..., 8-9).

    ``scenario``: ``"class"`` (class-incremental) or ``"task"`` (task-incremental);
    ``seed`` draws the stratified 70/30 train/test split.
    """
    data = load_digits_arrays(seed=seed)
    return split(*data, PAIRS, scenario=scenario, name=f"split_digits_{scenario}")


@registry.register("permuted_digits")
def permuted_digits(
    n_tasks: int = 3, seed: int = 0, scenario: Literal["domain", "task"] = "domain"
) -> TaskSequence:
    """Permuted-Digits: the 8x8 digits, pixels permuted by a fixed seeded permutation per task.

    ``scenario``: ``"domain"`` (no task identity) or ``"task"`` (the task is known at test
    time; named ``permuted_digits_task``).

    >>> registry.create("permuted_digits", n_tasks=2, scenario="task").name
    'permuted_digits_task'
    """
    name = "permuted_digits" if scenario == "domain" else f"permuted_digits_{scenario}"
    return permuted(
        *load_digits_arrays(seed=seed), n_tasks=n_tasks, seed=seed, name=name, scenario=scenario
    )


@registry.register("rotated_digits")
def rotated_digits(angles: tuple[float, ...] = (0.0, 80.0, 160.0), seed: int = 0) -> TaskSequence:
    """Rotated-Digits: the 8x8 digits rotated by each angle in turn (as Rotated-MNIST 0/80/160)."""
    return rotated(*load_digits_arrays(seed=seed), angles=angles, side=8, name="rotated_digits")


@registry.register("split_mnist")
def split_mnist(path: str, scenario: Scenario = "class") -> TaskSequence:
    """Split-MNIST from a local file (see :func:`load_mnist`): 5 tasks of 2 digits."""
    return split(*load_mnist(path), PAIRS, scenario=scenario, name=f"split_mnist_{scenario}")


@registry.register("permuted_mnist")
def permuted_mnist(path: str, n_tasks: int = 3, seed: int = 0) -> TaskSequence:
    """Permuted-MNIST from a local file: a fixed seeded pixel permutation per task."""
    return permuted(*load_mnist(path), n_tasks=n_tasks, seed=seed, name="permuted_mnist")


@registry.register("rotated_mnist")
def rotated_mnist(path: str, angles: tuple[float, ...] = (0.0, 80.0, 160.0)) -> TaskSequence:
    """Rotated-MNIST from a local file: all digits rotated by each angle in turn."""
    return rotated(*load_mnist(path), angles=angles, side=28, name="rotated_mnist")


# -- recurring tasks (SCoLe) --------------------------------------------------------------------
def recurring(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    groups: Sequence[Sequence[int]],
    name: str = "recurring",
) -> TaskSequence:
    """Class-incremental tasks that may come back: one task per group, groups may repeat or
    overlap (task ``k`` is named ``"k:classes"``). The long-sequence scenario of Lesort, Ostapenko,
    Rodriguez, Misra, Arefin, Charlin and Rish, "Challenging Common Assumptions about
    Catastrophic Forgetting and Knowledge Accumulation" (CoLLAs 2023, section 3, SCoLe).

    >>> X = np.eye(4, dtype=np.float32)
    >>> seq = recurring(X, np.arange(4), X, np.arange(4), [[0, 1], [2, 3], [0, 1]])
    >>> seq.task_names, seq.scenario
    (['0:0-1', '1:2-3', '2:0-1'], 'class')
    """
    if not groups:
        raise ValueError("groups must list at least one group of classes")
    tasks = []
    for k, group in enumerate(groups):
        (task,) = split(X_train, y_train, X_test, y_test, [group]).tasks
        tasks.append(
            TaskData(
                f"{k}:{task.name}",
                task.X_train,
                task.y_train,
                task.X_test,
                task.y_test,
                task.classes,
            )
        )
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    return TaskSequence(name, tuple(tasks), n_classes, "class")


@registry.register("recurring_split_digits")
def recurring_split_digits(
    n_tasks: int = 20, classes_per_task: int = 2, sampling: str = "cycle", seed: int = 0
) -> TaskSequence:
    """Recurring Split-Digits (SCoLe, see :func:`recurring`): ``n_tasks`` tasks of
    ``classes_per_task`` digits. ``sampling = "cycle"`` repeats Split-Digits' 5 pairs in order
    (``classes_per_task`` must be 2); ``"random"`` draws each task's classes uniformly without
    replacement (SCoLe's sampling), seeded by ``seed``, which also draws the train/test split.

    >>> seq = recurring_split_digits(n_tasks=7)
    >>> seq.task_names[4:]
    ['4:8-9', '5:0-1', '6:2-3']
    >>> [t.classes for t in recurring_split_digits(3, 3, "random", seed=1).tasks]
    [(3, 4, 7), (1, 7, 9), (2, 3, 6)]
    """
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    if not 1 <= classes_per_task <= 10:
        raise ValueError(f"classes_per_task must be in [1, 10], got {classes_per_task}")
    if sampling == "cycle":
        if classes_per_task != 2:
            raise ValueError("sampling 'cycle' repeats the 5 pairs: classes_per_task must be 2")
        groups = [PAIRS[k % len(PAIRS)] for k in range(n_tasks)]
    elif sampling == "random":
        rng = np.random.default_rng(seed)
        groups = [sorted(rng.choice(10, classes_per_task, replace=False)) for _ in range(n_tasks)]
    else:
        raise ValueError(f"sampling must be 'cycle' or 'random', got {sampling!r}")
    return recurring(
        *load_digits_arrays(seed=seed), groups, name=f"recurring_split_digits_{sampling}"
    )


# -- federated class-incremental (federated reconnaissance) ---------------------------------------
@registry.register("federated_split_digits")
def federated_split_digits(base_classes: int = 5, clients: int = 3, seed: int = 0) -> TaskSequence:
    """A federated class-incremental split of the 8x8 digits (Hendryx et al. 2021, federated
    reconnaissance): task 0 (``"server:..."``) holds the ``base_classes`` first digits the server
    learns; tasks ``1..clients`` (``"client<k>:..."``) split the other digits in order between
    the clients, each learning its own apart. Class-incremental; ``seed`` draws the 70/30 split.
    :func:`~adaptloop.learners.continual.federated_reconnaissance` merges what the clients learned.

    >>> seq = federated_split_digits()
    >>> seq.task_names, seq.scenario
    (['server:0-1-2-3-4', 'client0:5-6', 'client1:7-8', 'client2:9'], 'class')
    """
    if not 1 <= base_classes <= 9:
        raise ValueError(f"base_classes must be in [1, 9], got {base_classes}")
    if not 1 <= clients <= 10 - base_classes:
        raise ValueError(f"clients must be in [1, {10 - base_classes}], got {clients}")
    rest = np.array_split(np.arange(base_classes, 10), clients)
    groups = [list(range(base_classes)), *[part.tolist() for part in rest]]
    sequence = split(*load_digits_arrays(seed=seed), groups, name="federated_split_digits")
    owners = ["server"] + [f"client{k}" for k in range(clients)]
    tasks = tuple(
        TaskData(f"{who}:{t.name}", t.X_train, t.y_train, t.X_test, t.y_test, t.classes)
        for who, t in zip(owners, sequence.tasks, strict=True)
    )
    return TaskSequence(sequence.name, tasks, sequence.n_classes, "class")
