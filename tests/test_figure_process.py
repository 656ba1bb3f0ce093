"""The figure helper process: the PNG it returns is the one drawn in-process, byte for byte, and
any failure of the helper falls back to drawing in-process."""

import subprocess
import sys

import numpy as np
import pytest

from kldiv import figure_process
from kldiv.figure_process import FigureProcess, draw

_PNG = b"\x89PNG\r\n\x1a\n"


def _history(seeds):
    rng = np.random.default_rng(0)
    keys = ("loss", "val_loss", "accuracy", "val_accuracy")
    return {k: rng.random((seeds, 12)).astype(np.float32) for k in keys}


@pytest.mark.parametrize("seeds", [1, 3])
def test_the_helper_draws_the_in_process_figure_byte_for_byte(seeds):
    history = _history(seeds)
    with FigureProcess(band=seeds > 1) as figure:
        figure.send(history, "kl, 3 seeds")
        png = figure.png()
    assert png.startswith(_PNG) and png == draw(history, "kl, 3 seeds")


def test_send_returns_at_once_and_png_collects_the_figure_later():
    history = _history(2)
    with FigureProcess(band=True) as figure:
        figure.send(history, "kl, 2 seeds")
        png = figure.png()
    assert png == draw(history, "kl, 2 seeds")


def test_a_helper_that_fails_falls_back_to_drawing_here(monkeypatch):
    history = _history(1)
    real_popen = subprocess.Popen

    def failing(argv, **kwargs):  # a helper that exits at once with an error
        return real_popen([sys.executable, "-c", "import sys; sys.exit(3)"], **kwargs)

    monkeypatch.setattr(figure_process.subprocess, "Popen", failing)
    figure = FigureProcess()
    figure.send(history, "kl, 1 seed")
    assert figure.png() == draw(history, "kl, 1 seed")


def test_a_helper_that_cannot_start_falls_back_to_drawing_here(monkeypatch):
    def cannot(argv, **kwargs):
        raise OSError("no such interpreter")

    monkeypatch.setattr(figure_process.subprocess, "Popen", cannot)
    history = _history(1)
    figure = FigureProcess()
    figure.send(history, "t")
    assert figure.png() == draw(history, "t")


def test_the_helper_imports_neither_jax_nor_the_training_code():
    check = "import sys, kldiv.figure_process; print('jax' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_an_unused_helper_is_stopped():
    figure = FigureProcess()
    proc = figure._proc
    figure.close()
    assert proc is not None and proc.returncode is not None


def test_take_hands_over_the_helper_started_early_and_discard_stops_an_untaken_one():
    figure_process.start_early(band=False)
    early = figure_process._early
    figure_process.start_early(band=True)  # one waiting helper at most
    assert figure_process._early is early
    taken = figure_process.take(band=True)
    assert taken is early and figure_process._early is None
    history = _history(3)  # a band figure from a helper started without SciPy: same bytes
    taken.send(history, "kl, 3 seeds")
    assert taken.png() == draw(history, "kl, 3 seeds")

    figure_process.start_early()
    proc = figure_process._early._proc
    figure_process.discard_early()
    assert figure_process._early is None and proc.returncode is not None


def _early_starts(monkeypatch, argv):
    """main(argv)'s exit code and the arguments of each start_early call it made."""
    from kldiv.cli.main import main

    calls = []
    monkeypatch.setattr(figure_process, "start_early", lambda **kw: calls.append(kw))
    try:
        code = main(argv)
    except SystemExit as exit:  # --help
        code = exit.code
    return code, calls


@pytest.mark.parametrize(
    "argv, band",
    [
        (["run", "--epochs", "0"], False),  # a usage error: the helper is started, then stopped
        (["run", "--seeds", "3", "--epochs", "0"], True),
        (["run", "--seeds=0-2", "--epochs", "0"], True),
    ],
)
def test_kldiv_run_starts_the_helper_before_parsing(monkeypatch, argv, band):
    code, calls = _early_starts(monkeypatch, argv)
    assert code == 2 and calls == [{"band": band}]
    assert figure_process._early is None


@pytest.mark.parametrize(
    "argv", [["run", "--no-plot", "--epochs", "0"], ["run", "--help"], ["stats", "--help"]]
)
def test_no_helper_without_a_figure_to_draw(monkeypatch, argv, capsys):
    code, calls = _early_starts(monkeypatch, argv)
    assert code in (0, 2) and calls == []
