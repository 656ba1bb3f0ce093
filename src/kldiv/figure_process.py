"""The history figure drawn by a helper process that starts before training, so importing
matplotlib (and SciPy for a multi-seed band) happens on another core while this one trains.

Measured on a warm `kldiv run`: matplotlib's import is ~0.35 s and cannot overlap the training in
a thread (the training holds the GIL most of the time), while a process imports it beside the
training. The helper is this module run as `python -m kldiv.figure_process`: it imports neither
JAX nor the training code, reads one history (an .npz on stdin: NumPy arrays and the title, no
pickle), writes the PNG that `kldiv.plot` draws for it (byte for byte what drawing it here gives)
to stdout, and exits; on end of input without a history it exits at once. Anything that goes
wrong in the helper — it cannot start, fails, or returns something other than a PNG — makes
`FigureProcess.png` draw the figure in this process instead.

`start_early` starts the helper at the very beginning of a command, before it imports JAX, so
its imports are done by the time the training ends (started just before training, the helper
was still importing when a warm run's training ended: measured 0.28-0.36 s of waiting for the
figure, against 0.11-0.18 s of drawing); `take` hands that helper to the command.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

_PNG = b"\x89PNG\r\n\x1a\n"
_TITLE = "__title__"


def draw(history: Mapping[str, Any], title: str) -> bytes:
    """The history figure (`kldiv.plot.history_figure`) as PNG bytes, drawn in this process."""
    from kldiv.plot import figure_png, history_figure

    return figure_png(history_figure(history, title=title))


class FigureProcess:
    """A helper process, started now, that will draw one history figure (see the module)."""

    def __init__(self, *, band: bool = False) -> None:
        """band: the figure will be of several seeds (the helper also imports SciPy early)."""
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "kldiv.figure_process", *(["--band"] if band else [])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self._proc = None
        self._history: Mapping[str, Any] = {}
        self._title = ""

    def send(self, history: Mapping[str, Any], title: str) -> None:
        """Hand the helper the figure to draw and return at once (`png()` collects it): the
        history ("loss", "val_loss", "accuracy", "val_accuracy" -> (epochs,) or (seeds, epochs))
        and the title."""
        self._history, self._title = history, title
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        buf = io.BytesIO()
        np.savez(buf, **{_TITLE: np.array(title)}, **{k: np.asarray(v) for k, v in history.items()})
        try:
            proc.stdin.write(buf.getvalue())
            proc.stdin.close()
        except OSError:
            self._proc = None
            _stop(proc)

    def png(self) -> bytes:
        """The figure handed over by `send`, as PNG bytes: from the helper, else drawn here."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.stdout is not None:
            try:
                with proc.stdout:
                    out = proc.stdout.read()
                proc.wait()
            except OSError:
                out = b""
                _stop(proc)
            if proc.returncode == 0 and out.startswith(_PNG):
                return out
        return draw(self._history, self._title)

    def close(self) -> None:
        """Stop the helper if `png` was never called (it would exit at end of input anyway)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc)

    def __enter__(self) -> FigureProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_early: FigureProcess | None = None


def start_early(*, band: bool = False) -> None:
    """Start a helper now for a later `take` (a no-op if one is waiting already)."""
    global _early
    if _early is None:
        _early = FigureProcess(band=band)


def take(*, band: bool = False) -> FigureProcess:
    """The helper `start_early` started, else a new one. `band` only decides what a new helper
    imports early; either helper draws any figure."""
    global _early
    figure, _early = _early, None
    return FigureProcess(band=band) if figure is None else figure


def discard_early() -> None:
    """Stop a helper `start_early` started that no command took."""
    global _early
    figure, _early = _early, None
    if figure is not None:
        figure.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()
    proc.kill()
    proc.wait()


def _main() -> int:
    """The helper: import the figure code, then draw the history read from stdin."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401  (the imports this process exists to do early)

    if "--band" in sys.argv[1:]:
        import scipy.special  # noqa: F401  (the mean's interval band: kldiv.intervals)

    # fonts, text layout, Agg and the PNG writer load at a figure's first drawing: do it now,
    # while the command trains, not after
    draw({k: np.zeros(2, np.float32) for k in ("loss", "accuracy", "val_loss", "val_accuracy")}, "")
    data = sys.stdin.buffer.read()
    if not data:
        return 0
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        history = {k: arrays[k] for k in arrays.files if k != _TITLE}
        title = str(arrays[_TITLE])
    sys.stdout.buffer.write(draw(history, title))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    # one figure, then exit: no cyclic garbage worth collecting, and matplotlib's import and
    # drawing allocate enough objects for the collector to scan them several times over
    gc.disable()
    code = _main()
    sys.stdout.flush()
    # at once: `FigureProcess.png` waits for this process to end, and the interpreter's teardown
    # (matplotlib's and NumPy's modules) took 0.05-0.09 s
    os._exit(code)
