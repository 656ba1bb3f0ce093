"""Dispatch: parse argv, run one command, turn every failure into one line and an exit code."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from kldiv.checks import ConfigError
from kldiv.cli import (
    compare,
    distill,
    export,
    guard,
    options,
    predict,
    run,
    stats,
    sweep,
    vae,
)

EPILOG = "Run 'kldiv COMMAND --help' for a command's options."

# name -> module with `add_parser(subparsers)` and `command(args, console) -> exit code`, and
# optionally `early(argv)`, called with the command's arguments before anything is parsed
COMMANDS = {
    "run": run,
    "compare": compare,
    "distill": distill,
    "vae": vae,
    "predict": predict,
    "stats": stats,
    "sweep": sweep,
    "export": export,
}


def build_parser() -> options.Parser:
    from kldiv import __version__

    parser = options.Parser(
        prog="kldiv",
        description="Exact KL-divergence losses and the classic KL-loss tutorial experiment.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"kldiv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=options.Parser)
    sub.required = True
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def _with_command(message: str, argv: Sequence[str]) -> str:
    """argparse reports unknown arguments from the top-level parser ('kldiv: error: unrecognized
    arguments: ...'); name the command they were given to, as every other error does."""
    command = next((a for a in argv if a in COMMANDS), None)
    prefix = "kldiv: error: "
    if command is None or not message.startswith(prefix):
        return message
    return f"kldiv {command}: error: " + message.removeprefix(prefix)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    guard.reopen_closed_std_streams()
    argv = list(sys.argv[1:] if argv is None else argv)
    early = getattr(COMMANDS.get(argv[0]) if argv else None, "early", None)
    if early is not None:
        early(argv[1:])
    try:
        return _main(argv)
    finally:
        from kldiv.figure_process import discard_early

        discard_early()


def _main(argv: list[str]) -> int:
    from kldiv.console import Console

    with guard.signal_handlers():
        prog = "kldiv"
        try:
            args = build_parser().parse_args(argv)
            _modules_loaded()
            prog = f"kldiv {args.command}"
            empty = guard.empty_path_flag(argv)
            if empty:
                directory = empty == "--out" and args.command not in ("predict", "export")
                what = "a directory" if directory else "a file"
                raise options.UsageError(f"{prog}: error: {empty}: expected {what}, got ''")
            console = Console(quiet=getattr(args, "quiet", False))
            from kldiv.runtime import configure

            configure()
            code = COMMANDS[args.command].command(args, console)
            guard.check_interrupted()  # a signal whose exception was swallowed still interrupts
            return code
        except options.UsageError as err:
            guard.stderr(_with_command(str(err), argv))
            return 2
        except ConfigError as err:
            message = options.flags_in(str(err).removeprefix(f"{err.field}: "))
            guard.stderr(f"{prog}: error: {options.flag_of(err.field)}: {message}")
            return 2
        except guard.OutError as err:
            guard.stderr(f"{prog}: error: {err}")
            return 2
        except KeyboardInterrupt as err:
            signum = err.signum if isinstance(err, guard.Interrupted) else signal.SIGINT
            name = signal.Signals(signum).name
            if guard.resumable:
                where, how = guard.resumable[0]
                done = f"the finished work is kept in {where}; resume with: {how}"
            elif guard.saved:
                done = f"the results were saved to {guard.saved[0]}"
            else:
                done = "nothing was saved"
            guard.stderr(f"{prog}: interrupted by {name}; {done}")
            return 128 + signum
        except (guard.RunFailed, OSError) as err:
            guard.stderr(f"{prog}: error: {err}")
            return 1


def _modules_loaded() -> None:
    """Once the command's modules are imported (building the parser imports them): if the cyclic
    garbage collector is off, as `console_main` leaves it, freeze every object that exists, so
    that no collection scans them again, and turn the collector on. A no-op otherwise."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def console_main() -> NoReturn:
    """Console-script entry: run, flush, and exit at once (skipping slow interpreter teardown).

    The cyclic garbage collector is off while the command's modules load: importing JAX and its
    dependencies allocates objects by the hundred thousand, all of them long-lived, and CPython's
    collector scanned them again and again: 90-120 ms of collections in a `kldiv run`, 50-65 ms
    of it two full ones, against 12-27 ms since. `_modules_loaded` then freezes them out of its
    reach and turns it back on, so the cyclic garbage of long commands is still collected."""
    gc.disable()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(code)
