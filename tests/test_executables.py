"""Compiled programs kept on disk: a loaded executable gives the bits a compiled one gives, and a
missing, corrupt or untrusted entry falls back to compiling."""

import os
import threading
from pathlib import Path

import jax
import numpy as np
import pytest

from kldiv import evaluation, runtime
from kldiv.config import TrainConfig
from kldiv.data import blobs_dataset
from kldiv.engine import executables, runner, train

SMALL = TrainConfig(epochs=3, hidden=(8,))


@pytest.fixture(scope="module")
def data():
    return blobs_dataset()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private executable cache for the runner, with the in-process program cache emptied
    before and after (so each `train` call goes through the disk cache)."""
    directory = tmp_path / "executables"
    monkeypatch.setattr(runtime, "executable_cache_dir", lambda: directory)
    _clear_programs()
    yield directory
    _clear_programs()


def _clear_programs():
    """Empty the in-process program caches, so the next calls go through the disk cache."""
    runner._program.cache_clear()
    evaluation._logits.cache_clear()


def _fresh_train(*args, **kwargs):
    _clear_programs()
    return train(*args, **kwargs)


def _leaves(result):
    return jax.tree.leaves((result.params, result.history, result.final))


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


def _spy(monkeypatch):
    """Counts of executables loaded from disk and compiled (stored)."""
    counts = {"loaded": 0, "stored": 0}
    load, write = executables.load, executables.write

    def counting_load(path, devices):
        program = load(path, devices)
        counts["loaded"] += program is not None
        return program

    def counting_write(path, entry):
        counts["stored"] += entry is not None
        write(path, entry)

    monkeypatch.setattr(executables, "load", counting_load)
    monkeypatch.setattr(executables, "write", counting_write)
    return counts


@pytest.mark.parametrize("path", ["lanes", "generic"])
def test_a_loaded_executable_gives_the_bits_of_a_compiled_one(data, cache, monkeypatch, path):
    counts = _spy(monkeypatch)
    monkeypatch.setattr(runtime, "executable_cache_dir", lambda: None)
    compiled = _fresh_train(SMALL, data, [0, 7], path=path, epoch_chunk=2)
    assert counts == {"loaded": 0, "stored": 0}

    monkeypatch.setattr(runtime, "executable_cache_dir", lambda: cache)
    stored = _fresh_train(SMALL, data, [0, 7], path=path, epoch_chunk=2)
    assert counts["stored"] >= 2 and counts["loaded"] == 0  # epochs programs, logits, (init)
    entries = sorted(cache.glob("*.bin"))
    assert len(entries) == counts["stored"]

    loaded = _fresh_train(SMALL, data, [0, 7], path=path, epoch_chunk=2)
    assert counts["loaded"] == len(entries) and counts["stored"] == len(entries)
    assert _same(compiled, stored) and _same(compiled, loaded)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:-10] + bytes(10),  # payload changed: digest mismatch
        lambda b: b[:40] + b"not a pickle",
        lambda b: b"",
    ],
    ids=["truncated", "flipped", "garbage", "empty"],
)
def test_a_corrupt_entry_falls_back_to_compiling_and_is_replaced(data, cache, monkeypatch, damage):
    reference = _fresh_train(SMALL, data, [3])
    entries = sorted(cache.glob("*.bin"))
    for entry in entries:
        entry.write_bytes(damage(entry.read_bytes()))
    counts = _spy(monkeypatch)
    again = _fresh_train(SMALL, data, [3])
    assert counts == {"loaded": 0, "stored": len(entries)}
    assert _same(reference, again)
    counts["stored"] = 0
    third = _fresh_train(SMALL, data, [3])  # the replaced entries load
    assert counts == {"loaded": len(entries), "stored": 0} and _same(reference, third)


def test_an_unloadable_payload_with_a_valid_digest_falls_back(data, cache, monkeypatch):
    """A well-formed entry whose executable this JAX cannot load (another version wrote it)."""
    import hashlib
    import pickle

    reference = _fresh_train(SMALL, data, [4])
    payload = pickle.dumps((b"not an executable", None, None))
    for entry in cache.glob("*.bin"):
        entry.write_bytes(executables._MAGIC + hashlib.sha256(payload).digest() + payload)
    assert _same(reference, _fresh_train(SMALL, data, [4]))


def test_the_key_changes_with_what_the_program_computes(data, cache):
    _fresh_train(SMALL, data, [0])
    first = set(cache.glob("*.bin"))
    _fresh_train(SMALL, data, [0])
    assert set(cache.glob("*.bin")) == first  # same program: the same entries
    _fresh_train(TrainConfig(epochs=3, hidden=(9,)), data, [0])
    wider = set(cache.glob("*.bin")) - first
    assert len(wider) == len(first)  # another width: other entries
    _fresh_train(SMALL, data, list(range(40)))  # more runs per chunk: other argument shapes
    assert len(set(cache.glob("*.bin")) - first - wider) >= 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_directory_others_can_write_is_not_used(data, cache, monkeypatch):
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    counts = _spy(monkeypatch)
    _fresh_train(SMALL, data, [0])
    assert counts == {"loaded": 0, "stored": 0} and not list(cache.iterdir())
    assert not executables.usable_directory(cache)
    cache.chmod(0o700)
    assert executables.usable_directory(cache)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_an_entry_others_can_write_is_not_loaded(data, cache, monkeypatch):
    reference = _fresh_train(SMALL, data, [1])
    for entry in cache.glob("*.bin"):
        entry.chmod(0o666)
    counts = _spy(monkeypatch)
    assert _same(reference, _fresh_train(SMALL, data, [1]))
    assert counts["loaded"] == 0 and counts["stored"] >= 1
    assert all(entry.stat().st_mode & 0o077 == 0 for entry in cache.glob("*.bin"))


@pytest.mark.parametrize("path", ["lanes", "generic"])
@pytest.mark.parametrize("n_devices", [1, 2])
def test_a_first_run_compiles_each_program_once_the_first_epochs_ahead(
    data, cache, monkeypatch, path, n_devices
):
    """The first epochs program compiles on another thread from the init program's result
    shapes, then the shared metrics' program; their signatures must be the calls', or the calls
    would compile them a second time."""
    devices = (jax.local_devices() * 2)[:n_devices]
    if len(set(devices)) < n_devices:
        pytest.skip("one CPU device")
    compiles = []
    fresh = executables.compile_fresh

    def counting(lowered):
        compiles.append(threading.current_thread() is threading.main_thread())
        return fresh(lowered)

    monkeypatch.setattr(executables, "compile_fresh", counting)
    seeds = list(range(30))  # two chunks, one per device, on either path
    first = _fresh_train(SMALL, data, seeds, path=path, devices=devices, epoch_chunk=2)
    # on the main thread: the 1-epoch last block, and the generic path's init (the lanes path
    # computes its initial state on the host); ahead, on the other: the 2-epoch program (whose
    # call waits for it) and the shared metrics' logits; nothing twice
    on_main = [True] if path == "lanes" else [True, True]
    assert sorted(compiles) == [False, False, *on_main]
    # a second first-run process would load every program: none was stored under a key that
    # the compile on the other thread changed (it switches JAX's cache off while it runs)
    compiles.clear()
    _fresh_train(SMALL, data, seeds, path=path, devices=devices, epoch_chunk=2)
    assert compiles == []
    monkeypatch.setattr(runtime, "executable_cache_dir", lambda: None)
    assert _same(first, _fresh_train(SMALL, data, seeds, path=path, devices=devices))


def test_the_cache_directory_is_created_private(tmp_path):
    directory = tmp_path / "a" / "executables"
    assert executables.usable_directory(directory)
    assert directory.stat().st_mode & 0o777 == 0o700


def test_no_cache_directory_means_the_jitted_program_itself():
    jitted = jax.jit(lambda x: x + 1)
    assert executables.cached(jitted, "add one", jax.local_devices()[:1], None) is jitted


def test_configure_puts_executables_inside_the_compilation_cache(tmp_path):
    before = runtime.executable_cache_dir()
    try:
        runtime.configure(cache_dir=str(tmp_path))
        assert runtime.executable_cache_dir() == Path(tmp_path) / "executables"
        runtime.configure(cache_dir="")
        assert runtime.executable_cache_dir() is None
    finally:
        runtime.configure(cache_dir="" if before is None else str(before.parent))


def test_a_loaded_executable_that_fails_at_its_first_call_is_replaced(data, cache, monkeypatch):
    reference = _fresh_train(SMALL, data, [2])

    def broken(*args):
        raise RuntimeError("INTERNAL: Error dispatching computation")

    monkeypatch.setattr(executables, "load", lambda path, devices: broken)
    counts = _spy(monkeypatch)  # counts stores; `load` always returns `broken`
    assert _same(reference, _fresh_train(SMALL, data, [2]))
    assert counts["stored"] == len(list(cache.glob("*.bin")))


def test_an_executable_jax_loaded_from_its_own_cache_is_never_what_is_stored(
    data, cache, monkeypatch
):
    """XLA:CPU re-serialises such an executable without some kernels; storing only fresh
    compiles keeps every entry loadable (the warm run below would fail otherwise)."""
    monkeypatch.setattr(runtime, "executable_cache_dir", lambda: None)
    reference = _fresh_train(SMALL, data, [6], path="lanes")  # into JAX's persistent cache
    monkeypatch.setattr(runtime, "executable_cache_dir", lambda: cache)
    _fresh_train(SMALL, data, [6], path="lanes")  # a miss here, a hit in JAX's cache
    assert _same(reference, _fresh_train(SMALL, data, [6], path="lanes"))


def test_the_shared_metrics_program_loads_with_the_bits_it_was_compiled_with(
    data, cache, monkeypatch
):
    monkeypatch.setattr(runtime, "executable_cache_dir", lambda: None)
    result = _fresh_train(SMALL, data, [0, 5])
    model = runner.Run.for_data(SMALL, data).model
    plain = evaluation.log_probabilities(model, result.params, data.x_val)
    monkeypatch.setattr(runtime, "executable_cache_dir", lambda: cache)
    counts = _spy(monkeypatch)
    _clear_programs()
    compiled = evaluation.log_probabilities(model, result.params, data.x_val)
    _clear_programs()
    loaded = evaluation.log_probabilities(model, result.params, data.x_val)
    _clear_programs()
    assert counts == {"loaded": 1, "stored": 1}
    np.testing.assert_array_equal(compiled, loaded)
    np.testing.assert_array_equal(compiled, plain)


def test_a_call_waits_for_a_compile_started_ahead_and_nothing_compiles_twice(cache, monkeypatch):
    counts = _spy(monkeypatch)
    program = executables.cached(jax.jit(lambda x: 2 * x), "double", jax.local_devices()[:1], cache)
    x = np.arange(3, dtype=np.float32)
    finish = program.ahead(x)
    assert finish is not None
    assert program.ahead(x) is None  # already being prepared: one compile per signature
    results = []
    caller = threading.Thread(target=lambda: results.append(np.asarray(program(x))))
    caller.start()  # waits for `finish` (or finds its executable), never compiles itself
    finish()
    caller.join()
    np.testing.assert_array_equal(results[0], 2 * x)
    assert counts == {"loaded": 0, "stored": 1}
    assert program.ahead(x) is None  # compiled and stored


def test_a_program_compiled_ahead_is_stored_though_its_waiting_call_runs_it_at_once(
    cache, monkeypatch
):
    """XLA:CPU cannot serialise an executable once its sort has run, so the entry is taken
    before the waiting call is released."""
    counts = _spy(monkeypatch)
    devices = jax.local_devices()[:1]
    program = executables.cached(jax.jit(jax.numpy.argsort), "argsort", devices, cache)
    x = np.array([3.0, 1.0, 2.0], np.float32)
    finish = program.ahead(x)
    results = []
    caller = threading.Thread(target=lambda: results.append(np.asarray(program(x))))
    caller.start()
    finish()
    caller.join()
    np.testing.assert_array_equal(results[0], [1, 2, 0])
    again = executables.cached(jax.jit(jax.numpy.argsort), "argsort", devices, cache)
    np.testing.assert_array_equal(again(x), [1, 2, 0])
    assert counts == {"loaded": 1, "stored": 1}
