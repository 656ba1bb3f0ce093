"""The process environment, through real `kldiv` processes: bad JAX_PLATFORMS or XLA_FLAGS end in
one line and exit code 2; an unusable compilation cache is disabled with one warning line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kldiv
from kldiv.checks import ConfigError
from kldiv.runtime import check_xla_flags

SRC = str(Path(kldiv.__file__).parents[1])
FAST = ["run", "--epochs", "1", "--no-plot", "--quiet"]


def kldiv_process(args, tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    environ |= {"PYTHONPATH": SRC, "KLDIV_CACHE_DIR": str(tmp_path / "cache")} | env
    return subprocess.run(
        [sys.executable, "-m", "kldiv", *args, "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"JAX_PLATFORMS": "cuda"},
            "kldiv run: error: JAX_PLATFORMS: expected a backend this machine has, such as 'cpu', "
            "got 'cuda': no such backend",
        ),
        (
            {"XLA_FLAGS": "--xla_force_host_platform_device_count=0"},
            "kldiv run: error: XLA_FLAGS: expected --xla_force_host_platform_device_count=N with "
            "N >= 1, got '--xla_force_host_platform_device_count=0'",
        ),
        (
            {"XLA_FLAGS": "garbage"},
            "kldiv run: error: XLA_FLAGS: expected space-separated --xla_... flags, got 'garbage'",
        ),
    ],
)
def test_a_bad_environment_is_one_line_and_exit_code_2(tmp_path, env, message):
    if "JAX_PLATFORMS" in env and "cuda" in _backends():
        pytest.skip("this machine has a GPU")
    result = kldiv_process(FAST, tmp_path, **env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr
    assert result.stdout == "" and not (tmp_path / "runs").exists()


def _backends():
    import jax

    return {d.platform for d in jax.devices()}


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_an_unusable_cache_is_disabled_with_one_warning_line(tmp_path, where):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    cache = blocker if where == "file" else blocker / "xla"
    result = kldiv_process(FAST, tmp_path, KLDIV_CACHE_DIR=str(cache))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Train: ")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"kldiv: warning: compilation cache disabled: {cache} is not")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_an_unwritable_cache_directory_is_disabled_with_one_warning_line(tmp_path):
    cache = tmp_path / "read-only"
    cache.mkdir(mode=0o555)
    result = kldiv_process(FAST, tmp_path, KLDIV_CACHE_DIR=str(cache))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("\n") == 1 and "compilation cache disabled" in result.stderr


def test_user_xla_flags_are_kept_and_the_device_flag_added_after_a_space(tmp_path):
    flags = "--xla_cpu_enable_fast_math=false"
    code = (
        "import os; from kldiv.runtime import configure; configure(cpu_devices=3, cache_dir=''); "
        "print(os.environ['XLA_FLAGS'])"
    )
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environ | {"PYTHONPATH": SRC, "XLA_FLAGS": flags},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [flags, "--xla_force_host_platform_device_count=3"]


@pytest.mark.parametrize(
    "flags",
    [
        "garbage",
        "/path/to/flagfile",
        "--xla_a=1 junk",
        "-xla_a",
        "--xla_force_host_platform_device_count=x",
    ],
)
def test_check_xla_flags_refuses_what_is_not_an_xla_flag(flags):
    with pytest.raises(ConfigError, match=r"^XLA_FLAGS: expected") as info:
        check_xla_flags(flags)
    assert isinstance(info.value, ValueError) and info.value.field == "XLA_FLAGS"


def test_check_xla_flags_accepts_xla_flags():
    for flags in ("", "  ", "--xla_a=1 --xla_force_host_platform_device_count=4"):
        assert check_xla_flags(flags) == flags
