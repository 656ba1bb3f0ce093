"""What keeps a finished run safe: signals, --out, save-then-print, output that cannot fail.

Order of work in every command: --out is checked (created and proven writable) before anything
trains; results are saved before they are printed, so output that cannot be shown (a closed pipe,
an ASCII terminal) never costs the run. SIGINT, SIGTERM and SIGHUP interrupt like Ctrl-C and leave
nothing partial: the handlers record the signal and raise; since JAX can swallow an exception
raised inside one of its callbacks, the recorded signal is also checked after every compiled call
(`checking`) and before saving.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any


class RunFailed(Exception):
    """The command could not produce results (every run diverged); the message says why."""


class OutError(Exception):
    """--out cannot receive the run; the message names --out, what was expected and why."""


class Interrupted(KeyboardInterrupt):
    """A signal that stops the command like Ctrl-C; `signum` is its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
received: list[int] = []  # signals received while a command runs, in order
saved: list[Path] = []  # the directory the command saved, once it is in place
# (where its finished work is kept, the command that continues it), once an interrupted command
# could be continued (a sweep whose directory exists)
resumable: list[tuple[Path, str]] = []


def on_signal(signum: int, _frame: Any) -> None:
    first = not received
    received.append(signum)
    if first:  # once: a second signal must not break the cleanup the first one started
        raise Interrupted(signum)


def check_interrupted() -> None:
    """Raise `Interrupted` if a signal arrived, even if its exception was swallowed (an exception
    raised inside JAX's garbage-collection callback is only printed)."""
    if received:
        raise Interrupted(received[0])


@contextlib.contextmanager
def signal_handlers() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise `Interrupted` while the block runs (main thread only);
    `received`, `saved` and `resumable` start empty."""
    received.clear()
    saved.clear()
    resumable.clear()
    previous = {}
    hook = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupts(hook)
    for signum in SIGNALS:
        # not the main thread: leave the handlers as they are
        with contextlib.suppress(ValueError, OSError):
            # looked up at each signal, so a test can replace `on_signal`
            previous[signum] = signal.signal(signum, lambda n, f: on_signal(n, f))
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _quiet_interrupts(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """An unraisable-exception hook that drops our `Interrupted`: raised inside a callback that
    cannot propagate it (JAX's garbage-collection callback), Python would print its traceback,
    while the recorded signal stops the command anyway (`check_interrupted`)."""

    def quiet(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            hook(unraisable)

    return quiet


def checking(progress: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """`progress`, preceded by a check for a recorded signal (called after every compiled call)."""

    def on_progress(done: int, total: int) -> None:
        check_interrupted()
        progress(done, total)

    return on_progress


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def prepare_out(out: Path) -> None:
    """Create --out if missing and prove it writable (create and remove a probe file).

    Raises:
      OutError: it cannot be created or written; the message gives the OS reason.
    """
    expected = f"--out: expected a writable directory, got {str(out)!r}"
    if out.exists() and not out.is_dir():
        raise OutError(f"{expected} (Not a directory)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".kldiv-probe-")
        try:
            os.close(fd)
        finally:
            os.unlink(probe)
    except OSError as err:
        raise OutError(f"{expected} ({_reason(err)})") from None


def save(out: Path, writer: Callable[..., Path], *args: Any, **kwargs: Any) -> Path:
    """`writer(out, ...)`, after a last check for a signal; a failure to write is an --out error."""
    check_interrupted()
    try:
        path = writer(out, *args, **kwargs)
    except OSError as err:
        raise OutError(f"--out: could not save into {str(out)!r} ({_reason(err)})") from None
    saved.append(path)
    return path


def stderr(line: str) -> None:
    """One line on stderr; a closed or broken stderr loses it, never the exit code."""
    try:
        print(line, file=sys.stderr, flush=True)
    except UnicodeEncodeError:
        from kldiv.console import ascii_fallback

        with contextlib.suppress(OSError, ValueError, AttributeError):
            print(ascii_fallback(line, "ascii"), file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass


def command_line() -> str:
    """The command as typed, for the records."""
    return shlex.join(["kldiv", *sys.argv[1:]])


def empty_path_flag(argv: Sequence[str], flags: Sequence[str] = ("--out",)) -> str | None:
    """The first of `flags` given an empty value (`--out ""`, `--out=`): Path("") would silently
    mean the current directory."""
    for i, arg in enumerate(argv):
        if arg == "--":
            return None
        for flag in flags:
            if arg == f"{flag}=" or (arg == flag and i + 1 < len(argv) and argv[i + 1] == ""):
                return flag
    return None


def reopen_closed_std_streams() -> None:
    """Point a closed file descriptor 0, 1 or 2 (`>&-`) at the null device, so that no file this
    command opens takes its number and receives output meant for the terminal."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            with contextlib.suppress(OSError):
                opened = os.open(os.devnull, os.O_RDWR)
                if opened != fd:
                    os.dup2(opened, fd)
                    os.close(opened)
