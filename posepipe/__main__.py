"""`python -m posepipe` runs the CLI."""

from posepipe.cli import main

main()
