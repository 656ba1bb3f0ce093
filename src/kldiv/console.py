"""What the CLI shows while it works: a rich progress bar on a terminal, plain lines otherwise.

Rich is imported only when a terminal is attached, so piped and quiet runs do not pay for it.

Output that cannot be shown never fails a command: its results are saved before they are printed,
so a closed pipe (`kldiv run ... | head -1`), a closed stdout (`>&-`) or a terminal whose encoding
cannot show a character ("±" under PYTHONIOENCODING=ascii) only loses or simplifies lines. After a
broken pipe nothing more is written, and stdout is pointed at the null device so the interpreter's
final flush does not complain.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

ProgressFn = Callable[[int, int], None]

# Readable ASCII for the characters kldiv prints, where the stream's encoding lacks them.
_ASCII = {"±": "+-", "−": "-", "·": "*", "Σ": "sum", "‖": "||", "≥": ">=", "≤": "<=", "…": "..."}


def ascii_fallback(text: str, encoding: str) -> str:
    """`text` with the characters `encoding` cannot hold spelt in ASCII (else replaced by '?')."""
    out = []
    for ch in text:
        try:
            ch.encode(encoding)
        except UnicodeEncodeError:
            ch = _ASCII.get(ch, "?")
        except LookupError:  # unknown encoding: plain ASCII is always safe
            ch = ch if ch.isascii() else _ASCII.get(ch, "?")
        out.append(ch)
    return "".join(out)


def silence_stdout() -> None:
    """Point file descriptor 1 at the null device (after a broken pipe), so that the interpreter's
    last flush of sys.stdout neither fails nor prints 'Exception ignored ... BrokenPipeError'."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def format_duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '2 h 05 min'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Console:
    """Writes results and progress to `stream`; `quiet` keeps only `result` lines.

    progress_interval: seconds between plain progress lines when `stream` is not a terminal;
    clock: the time source (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        progress_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = sys.stdout if stream is None else stream
        self.quiet = quiet
        self.progress_interval = progress_interval
        self.clock = clock
        self.broken = self.stream is None  # `>&-`: Python starts with sys.stdout = None
        try:
            self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        except (OSError, ValueError):
            self.tty = False

    def write_line(self, text: str) -> bool:
        """Write `text` and a newline; False (and nothing more is ever written) if the stream is
        gone. Characters the stream's encoding lacks are spelt in ASCII."""
        if self.broken:
            return False
        try:
            try:
                print(text, file=self.stream, flush=True)
            except UnicodeEncodeError:
                encoding = getattr(self.stream, "encoding", None) or "ascii"
                print(ascii_fallback(text, encoding), file=self.stream, flush=True)
        except BrokenPipeError:
            self.broken = True
            if self.stream is sys.stdout:
                silence_stdout()
        except (OSError, ValueError, UnicodeEncodeError):  # closed, full, unwritable
            self.broken = True
        return not self.broken

    def result(self, text: str) -> None:
        """A line that is the command's answer: always shown."""
        self.write_line(text)

    def info(self, text: str) -> None:
        """A line of context (paths, notes): hidden by --quiet."""
        if not self.quiet:
            self.write_line(text)

    @contextmanager
    def progress(self, description: str) -> Iterator[ProgressFn]:
        """Yield an `on_progress(done, total)` callback: a bar on a terminal; otherwise a line at
        the first tick and then one every `progress_interval` seconds, with the percentage done and
        an estimate of the time left; nothing when quiet."""
        if self.quiet or self.broken:
            yield lambda done, total: None
        elif self.tty:
            from rich.console import Console as RichConsole
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

            bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=RichConsole(file=self.stream),
                transient=True,
            )
            task = bar.add_task(description, total=None)
            with bar:
                yield lambda done, total: bar.update(task, completed=done, total=total)
        else:
            state: dict[str, int] = {}
            plain = self._plain_progress(description, state)
            yield plain
            if state and state["done"] >= state["total"] and state["shown"] < state["total"]:
                self.write_line(f"{description}: 100% done")  # a log ends where the work did

    def _plain_progress(self, description: str, state: dict[str, int]) -> ProgressFn:
        first: list[tuple[float, int]] = []  # (time, done) at the first tick
        last_shown = [0.0]

        def plain(done: int, total: int) -> None:
            now = self.clock()
            state.update(done=done, total=total, shown=state.get("shown", -1))
            if first and (now - last_shown[0] < self.progress_interval or done >= total):
                return
            state["shown"] = done
            line = f"{description}: {100 * done // max(total, 1)}% done"
            if first and done > first[0][1]:
                rate = (done - first[0][1]) / max(now - first[0][0], 1e-9)
                line += f", about {format_duration((total - done) / rate)} left"
            if not first:
                first.append((now, done))
            last_shown[0] = now
            self.write_line(line)

        return plain
