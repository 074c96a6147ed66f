"""``python -m alrao_cli`` runs the command line."""

from alrao_cli.cli.app import main

main()
