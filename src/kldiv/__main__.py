"""`python -m kldiv` is the `kldiv` command."""

from kldiv.cli import console_main

if __name__ == "__main__":
    console_main()
