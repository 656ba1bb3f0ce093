"""The `kldiv` command: argv in, one library call, files and lines out, an exit code.

Every error a user can cause (a bad flag value, an unknown loss, a bad data file, a diverging run)
ends as one line on stderr and a non-zero exit code: 2 for bad input (an --out that cannot be
written included, also when that is found only at save time), 1 for a failed run, 128+n for signal
n (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). Defaults and ranges come from the config dataclasses; the
CLI restates none of them. No flag is ever abbreviated.

One module per command (`run`, `compare`, ...), each with `add_parser(subparsers)` and
`command(args, console) -> exit code`; `options` holds the flags commands share and turns them
into configs; `guard` holds what keeps finished work safe (signals, --out, save-then-print);
`main` dispatches.
"""

from kldiv.cli.main import console_main, main
from kldiv.cli.options import MAX_SEEDS, flag_of, parse_seeds

__all__ = ["MAX_SEEDS", "console_main", "flag_of", "main", "parse_seeds"]
