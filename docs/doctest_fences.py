"""A griffe extension for the API reference: docstrings are reStructuredText with ``>>>``
examples (run as doctests); mkdocstrings renders Markdown. This fences each example as
``pycon`` code and turns ````literal```` into ```literal```, so examples show as code and
their output is never read as Markdown links."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:[a-z]+:)*[a-z]+:`~?(?:[^`<]*<)?([^`>]+)>?`")


def markdown(text: str) -> str:
    """A docstring's text with its doctest examples fenced and its rST roles as code."""
    out: list[str] = []
    fence = None  # the indentation of the open ``pycon`` fence, None outside an example
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith(">>>"):
            fence = line[: len(line) - len(line.lstrip())]
            out.append(f"{fence}```pycon")
        elif fence is not None and not stripped:
            out.append(f"{fence}```")
            fence = None
        if fence is not None:
            out.append(line)
            continue
        if line.rstrip().endswith("::"):  # an rST literal block follows: Markdown's is indented
            line = line.rstrip()[:-1]
        line = _ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", line)
        out.append(re.sub(r"``([^`]+)``", r"`\1`", line))
    if fence is not None:
        out.append(f"{fence}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Rewrite every docstring as :func:`markdown` says."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
