"""`python -m dlmsim`: the same entry point as the `dlmsim` console script."""

from dlmsim.cli import main

main()
