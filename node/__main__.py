"""``python -m node`` runs the CLI."""

from node.cli.main import main

main()
