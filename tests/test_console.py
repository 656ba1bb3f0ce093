"""Console: output that cannot be shown never fails a command; plain progress at a steady pace."""

import io

import pytest

from kldiv.console import Console, ascii_fallback, format_duration


class BrokenPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_stops_writing_without_raising():
    console = Console(stream=BrokenPipe())
    console.result("Train: 0.822, Test: 0.822")  # no exception
    assert console.broken
    console.info("run saved to x")  # and no further attempt
    with console.progress("training") as progress:
        progress(1, 2)


def test_a_closed_stream_is_not_an_error():
    stream = io.StringIO()
    stream.close()
    console = Console(stream=stream)
    console.result("x")
    assert console.broken


def test_an_ascii_stream_gets_an_ascii_fallback():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    Console(stream=stream).result("Train: 0.8 ± 0.1, KL(y‖q) − Σ ☃")
    stream.flush()
    assert raw.getvalue() == b"Train: 0.8 +- 0.1, KL(y||q) - sum ?\n"
    assert ascii_fallback("±", "utf-8") == "±"


def test_plain_progress_prints_at_a_steady_interval_with_time_left():
    now = [0.0]
    out = io.StringIO()
    console = Console(stream=out, progress_interval=10.0, clock=lambda: now[0])
    with console.progress("training") as progress:
        for done in range(1, 101):  # one unit per second
            now[0] = float(done)
            progress(done, 100)
    lines = out.getvalue().splitlines()
    # the first tick, then one line per 10 s, and a last one when the work is done, so a log
    # never ends looking stopped part-way
    assert lines[0] == "training: 1% done"
    assert lines[1] == "training: 11% done, about 1 min 29 s left"
    assert len(lines) == 11
    assert lines[-2].startswith("training: 91% done, about 9 s left")
    assert lines[-1] == "training: 100% done"


def test_plain_progress_interrupted_part_way_does_not_claim_100():
    out = io.StringIO()
    console = Console(stream=out, progress_interval=10.0, clock=lambda: 0.0)
    with pytest.raises(KeyboardInterrupt), console.progress("training") as progress:
        progress(1, 100)
        raise KeyboardInterrupt
    assert out.getvalue() == "training: 1% done\n"


def test_quiet_progress_is_silent():
    out = io.StringIO()
    with Console(stream=out, quiet=True, progress_interval=0.0).progress("x") as progress:
        progress(1, 2)
        progress(2, 2)
    assert out.getvalue() == ""


def test_durations():
    assert format_duration(4.4) == "4 s"
    assert format_duration(200) == "3 min 20 s"
    assert format_duration(7500) == "2 h 05 min"
