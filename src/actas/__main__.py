"""``python -m actas``: the same as the ``actas`` command."""

from actas.cli.main import main

main()
