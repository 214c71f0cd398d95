"""``python -m adaptloop`` is the ``adaptloop`` command."""

from adaptloop.cli import main

main()
