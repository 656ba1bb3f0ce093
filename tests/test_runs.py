import json
import os

import jax
import numpy as np
import pytest

from kldiv.model import init_mlp
from kldiv.runs import RunDir, environment, load_params, save_params, write_atomic, write_json


def test_write_atomic_never_replaces_a_file(tmp_path):
    path = tmp_path / "a.txt"
    write_atomic(path, "one")
    with pytest.raises(FileExistsError, match=r"a\.txt: expected a new file"):
        write_atomic(path, "two")
    assert path.read_text() == "one"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]  # no temporary file left behind


def test_run_dirs_never_collide(tmp_path):
    paths = []
    for _ in range(3):
        with RunDir(tmp_path, "run") as run:
            write_json(run.staging / "x.json", {"a": 1})
        paths.append(run.path)
    assert len(set(paths)) == 3
    assert all(json.loads((p / "x.json").read_text()) == {"a": 1} for p in paths)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failed_run_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), RunDir(tmp_path, "run") as run:
        write_json(run.staging / "x.json", {"a": 1})
        raise RuntimeError("boom")
    assert run.path is None
    assert list(tmp_path.iterdir()) == []


def test_params_round_trip_through_safetensors_without_pickle(tmp_path):
    params = init_mlp(jax.random.key(0), (2, 50, 3), "he_uniform", "glorot_uniform")
    path = tmp_path / "model.safetensors"
    save_params(path, params, {"note": "x"})
    assert path.read_bytes()[8:9] == b"{"  # safetensors: 8-byte length, then a JSON header
    loaded = load_params(path)
    for (w, b), (w0, b0) in zip(loaded, params, strict=True):
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(b, b0)


def test_environment_names_versions_and_devices():
    env = environment()
    assert env["packages"]["jax"] == jax.__version__
    assert env["devices"] and env["python"].count(".") == 2
    json.dumps(env)


def test_files_and_run_dirs_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with RunDir(tmp_path, "run") as run:
            write_json(run.staging / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert run.path is not None
    assert run.path.stat().st_mode & 0o777 == 0o755
    assert (run.path / "x.json").stat().st_mode & 0o777 == 0o644
