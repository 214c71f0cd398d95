"""Domain errors of the service: a type for each kind of refusal, the field at fault as data.

Every error carries ``field`` (the parameter or request field it concerns: ``"checkpoint"``,
``"learner"``, ``"feedback[2].label"``) and ``detail`` (what is wrong with it). Readers name
fields their own way: :meth:`ServiceError.format` takes a function from a parameter name to
the name its reader knows (the CLI passes one that writes ``--checkpoint``), and ``str()``
uses the names as they are (what Python callers and HTTP clients see). Nothing parses the
message back: the HTTP app maps the *type* to a status, the CLI maps the *field* to a flag.

>>> error = LearnerMismatch("learner", "x.db serves learner 'lr', not 'static'")
>>> str(error)
"learner: x.db serves learner 'lr', not 'static'; start without learner or use a new db"
>>> error.format(lambda name: "--" + name)
"--learner: x.db serves learner 'lr', not 'static'; start without --learner or use a new --db"
>>> isinstance(UnknownVersion("version", "no verified checkpoint of version 9"), LookupError)
True
"""

from __future__ import annotations

from collections.abc import Callable

Namer = Callable[[str], str]
"""How a reader names a parameter (``str`` keeps the name; the CLI writes its flag)."""


class ServiceError(Exception):
    """Base of the service's errors: ``field`` (what it concerns) and ``detail`` (what is
    wrong); ``str()`` is ``"<field>: <detail>"``."""

    def __init__(self, field: str, detail: str) -> None:
        self.field, self.detail = field, detail
        super().__init__(self.format())

    def describe(self, name: Namer = str) -> str:
        """The detail, with the parameters it mentions named by ``name``."""
        return self.detail

    def format(self, name: Namer = str) -> str:
        """``"<field>: <detail>"`` with every parameter named by ``name``."""
        return f"{name(self.field)}: {self.describe(name)}"


class InputError(ServiceError, ValueError):
    """A value refused before anything changed (a record, a label, a setting).

    >>> str(InputError("records[0]", "missing feature(s) 'x1'"))
    "records[0]: missing feature(s) 'x1'"
    """


class ExclusiveOptions(InputError):
    """Two parameters given that exclude each other (``field`` and ``other``).

    >>> str(ExclusiveOptions("checkpoint", "experiment", "it has one"))
    'checkpoint: give experiment or checkpoint, not both (it has one)'
    """

    def __init__(self, field: str, other: str, reason: str) -> None:
        self.other, self.reason = other, reason
        super().__init__(field, reason)

    def describe(self, name: Namer = str) -> str:
        return f"give {name(self.other)} or {name(self.field)}, not both ({self.reason})"


class NotFound(ServiceError, LookupError):
    """Something named that does not exist."""


class UnknownLearner(NotFound):
    """The experiment has no learner of that name."""


class UnknownPrediction(NotFound):
    """Feedback for a prediction id that was never served."""


class UnknownVersion(NotFound):
    """No stored checkpoint of that model version verifies."""


class Conflict(ServiceError):
    """A request that contradicts what is already stored."""


class DuplicateFeedback(Conflict):
    """Feedback for a prediction that already has its label (or twice in one request)."""


class IdempotencyConflict(Conflict):
    """An idempotency key already used for other content."""


class WrongRole(Conflict):
    """An action this process's role does not do (a predictor asked to snapshot or roll
    back: the trainer does); ``field`` is ``"role"``.

    >>> str(WrongRole("role", "a predictor does not roll back: ask the trainer"))
    'role: a predictor does not roll back: ask the trainer'
    """


class DatabaseMismatch(Conflict):
    """A database opened with an experiment, learner or checkpoint other than the one it was
    created with (``field`` names the parameter given); it serves what it was created with."""

    def describe(self, name: Namer = str) -> str:
        return f"{self.detail}; start without {name(self.field)} or use a new {name('db')}"


class ExperimentMismatch(DatabaseMismatch):
    """The database was created with another experiment."""


class LearnerMismatch(DatabaseMismatch):
    """The database (or the checkpoint file) serves another learner."""


class CheckpointMismatch(DatabaseMismatch):
    """The database was not created from this checkpoint file."""


class CheckpointFileError(InputError):
    """A checkpoint file that cannot be used (missing, not a checkpoint, truncated,
    corrupted, or not loadable into its learner); ``field`` is ``"checkpoint"``.

    >>> str(CheckpointFileError("m.ckpt: not an adaptloop checkpoint file"))
    'checkpoint: m.ckpt: not an adaptloop checkpoint file'
    """

    def __init__(self, detail: str, field: str = "checkpoint") -> None:
        super().__init__(field, detail)


class NotStorable(InputError):
    """A learner whose state cannot be written as arrays + JSON (it holds an object, such as
    a pickled River model): it cannot be checkpointed, so it cannot be served; ``field`` is
    ``"learner"``."""

    def __init__(self, detail: str, field: str = "learner") -> None:
        super().__init__(field, detail)


class LegacyDatabase(InputError):
    """A database whose checkpoints are legacy pickles, opened without ``trust_pickle``;
    ``field`` is ``"trust_pickle"``."""

    def __init__(self, detail: str, field: str = "trust_pickle") -> None:
        super().__init__(field, detail)

    def describe(self, name: Namer = str) -> str:
        return (
            f"{self.detail}: loading them could run code; pass {name('trust_pickle')} once "
            f"to convert them (only for a database you wrote yourself), or use a new {name('db')}"
        )


class UnpredictableInput(InputError):
    """Records the served model answers with non-finite values (values far outside what it
    learned); nothing was stored."""


class RateLimited(ServiceError):
    """More predictions per second than the service is configured to take."""


class StoreError(ServiceError, RuntimeError):
    """The database cannot be used (missing, unreadable, not the service's) or the store
    cannot do its work (closed, or a write failed: nothing was acknowledged); ``field`` is
    ``"db"``."""

    def __init__(self, detail: str, field: str = "db") -> None:
        super().__init__(field, detail)


class LeaseLost(StoreError):
    """A trainer's write after another process took over the trainer lease (it had expired):
    nothing was written; ``field`` is ``"lease"``."""
