"""The wrappers: learners around a learner (``base``), one level below :class:`Wrapper`.

``WindowRetrain`` (re-fit on a sliding window), ``DriftReset`` (re-fit when a drift detector
fires), ``Static`` (learn the first samples only), ``ErrorMemory`` (correct predictions from
remembered errors, keyed by the base's hidden representation).
"""

from adaptloop.learners.wrappers.base import Wrapper, resolve_learner
from adaptloop.learners.wrappers.drift_reset import DriftReset
from adaptloop.learners.wrappers.error_memory import ErrorMemory
from adaptloop.learners.wrappers.static import Static
from adaptloop.learners.wrappers.window import WindowRetrain

__all__ = ["DriftReset", "ErrorMemory", "Static", "WindowRetrain", "Wrapper", "resolve_learner"]
