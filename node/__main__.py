"""``python -m node`` runs the CLI."""

from node.cli import main

main()
