"""``python -m beyond_backprop``: the ``bbp`` command line."""

from beyond_backprop.cli.app import main

main()
