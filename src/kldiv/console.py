"""What the CLI shows while it works: a rich progress bar on a terminal, plain lines otherwise.

Rich is imported only when a terminal is attached, so piped and quiet runs do not pay for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

ProgressFn = Callable[[int, int], None]


class Console:
    """Writes results and progress to `stream`; `quiet` keeps only `result` lines."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stream = sys.stdout if stream is None else stream
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def result(self, text: str) -> None:
        """A line that is the command's answer: always shown."""
        print(text, file=self.stream, flush=True)

    def info(self, text: str) -> None:
        """A line of context (paths, notes): hidden by --quiet."""
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    @contextmanager
    def progress(self, description: str) -> Iterator[ProgressFn]:
        """Yield an `on_progress(done, total)` callback that draws a bar or prints ~10 plain lines."""
        if self.quiet:
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
            shown = [0]

            def plain(done: int, total: int) -> None:
                tenth = done * 10 // max(total, 1)
                if tenth > shown[0] or done == total:
                    shown[0] = tenth
                    print(f"{description}: {100 * done // total}%", file=self.stream, flush=True)

            yield plain
