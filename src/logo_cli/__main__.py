"""`python -m logo_cli ...` runs the `logo` command."""

from logo_cli.cli import main

main()
