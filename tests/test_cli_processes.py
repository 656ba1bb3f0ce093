"""`python -m kldiv` as real processes: signals, closed or broken output, concurrent runs."""

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}
KLDIV = [sys.executable, "-m", "kldiv"]


def start(args, **kwargs):
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([*KLDIV, *args], env=ENV, **kwargs)


def wait_for_progress(proc, timeout=120.0):
    """Read the child's stdout until its first progress line (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    seen = b""
    while b"% done" not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no progress line within {timeout} s: {seen!r}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"the process ended before its progress started: {seen!r}"
            seen += chunk
    return seen


def everything_in(path):
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


@pytest.mark.parametrize(
    ("signum", "code", "tries"),
    [(signal.SIGINT, 130, 5), (signal.SIGTERM, 143, 1), (signal.SIGHUP, 129, 1)],
)
def test_a_signal_during_training_exits_128_plus_n_and_saves_nothing(tmp_path, signum, code, tries):
    # Several tries at different moments: the interrupt may land anywhere, also inside JAX's
    # garbage-collection callback, which swallows the exception; it must stop the run every time.
    for k in range(tries):
        out = tmp_path / f"out{k}"
        proc = start(["run", "--seeds", "2000", "--out", str(out)])
        try:
            wait_for_progress(proc)
            time.sleep(0.05 * k)
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
            proc.wait()
        name = signal.Signals(signum).name
        assert proc.returncode == code, err
        assert err.decode() == f"kldiv run: interrupted by {name}; nothing was saved\n"
        assert everything_in(out) == []


def test_a_closed_pipe_costs_neither_the_run_nor_a_traceback(tmp_path):
    read, write = os.pipe()
    os.close(read)  # as `| head -0`: every write to stdout fails with EPIPE
    try:
        proc = start(["run", "--epochs", "5", "--seeds", "3", "--out", str(tmp_path)], stdout=write)
    finally:
        os.close(write)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert err == b""  # no traceback, no 'Exception ignored'
    (run,) = tmp_path.iterdir()
    assert (run / "metrics.json").is_file()


def test_an_ascii_terminal_gets_ascii(tmp_path):
    env = {**ENV, "PYTHONIOENCODING": "ascii"}
    args = ["run", "--epochs", "5", "--seeds", "3", "--out", str(tmp_path)]
    result = subprocess.run([*KLDIV, *args], env=env, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert b"(mean +- std over 3 seeds)" in result.stdout
    assert len(list(tmp_path.iterdir())) == 1


def test_a_closed_stdout_still_saves_and_exits_0(tmp_path):
    args = ["run", "--epochs", "5", "--out", str(tmp_path)]
    script = 'exec "$@" >&-'
    result = subprocess.run(
        ["sh", "-c", script, "sh", *KLDIV, *args], env=ENV, capture_output=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    (run,) = tmp_path.iterdir()
    assert (run / "model.safetensors").is_file()


def test_concurrent_runs_into_one_out_all_succeed(tmp_path):
    procs = [
        start(["run", "--epochs", "3", "--seeds", str(n), "--no-plot", "--out", str(tmp_path)])
        for n in (1, 2, 3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    names = everything_in(tmp_path)
    assert len(names) == 3 and not [n for n in names if n.startswith(".")]


def test_out_is_checked_before_training(tmp_path):
    start_time = time.monotonic()
    result = subprocess.run(
        [*KLDIV, "run", "--seeds", "2000", "--out", "/proc/x"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "kldiv run: error: --out: expected a writable directory, got '/proc/x' ("
    )
    assert result.stdout == ""  # not a single progress line: nothing trained
    assert time.monotonic() - start_time < 30
