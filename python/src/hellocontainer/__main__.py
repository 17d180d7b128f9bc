"""`python -m hellocontainer`: the same command line as the console script."""

from .cli import run_and_exit

run_and_exit()
