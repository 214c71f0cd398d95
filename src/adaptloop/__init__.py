"""adaptloop: keep deployed models accurate while their data keeps changing.

The loop: data arrives, the model predicts, the truth arrives, the model is scored, the model
adapts. ``adaptloop.streams`` provides data, ``adaptloop.learners`` what adapts and
``adaptloop.evaluation`` measures it.

>>> import adaptloop
>>> isinstance(adaptloop.__version__, str)
True
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("adaptloop")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
