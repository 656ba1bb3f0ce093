"""Process-level setup for training: XLA CPU devices and the persistent compilation cache.

The CLI, a notebook and a worker process (a Ray task) all call `configure` before their first JAX
computation; nothing else in kldiv changes process state.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from kldiv.checks import ConfigError

_DEVICE_FLAG = "--xla_force_host_platform_device_count"
_executables: Path | None = None


def default_cache_dir() -> str:
    """$KLDIV_CACHE_DIR if set (empty disables the cache), else ~/.cache/kldiv/xla."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kldiv" / "xla"
    return os.environ.get("KLDIV_CACHE_DIR", str(default))


def usable_cores() -> int:
    """CPU cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def configure(*, cpu_devices: int | None = None, cache_dir: str | None = None) -> None:
    """Set up this process for training.

    cpu_devices: XLA CPU devices to create (default: one per usable core, so many-seed runs train a
      chunk on each core at once; a Ray task with one CPU passes 1). XLA reads the flag when its CPU
      backend starts, so this must run before the first JAX computation; a device count already in
      $XLA_FLAGS is left as it is.
    cache_dir: where compiled programs persist across processes (default `default_cache_dir()`;
      "" disables), so a repeated command skips compilation. A directory that cannot be created or
      written disables the cache, with one line on stderr. Its `executables` folder keeps the
      training programs themselves (`executable_cache_dir`).

    It also has JAX lower its random-bits hash without a loop on CPU (`kldiv.threefry`): the same
    bits, programs that compile faster.

    Raises:
      ConfigError (a ValueError) naming XLA_FLAGS or JAX_PLATFORMS: $XLA_FLAGS holds a token that
        is not an `--xla_...` flag or a device count below 1, or $JAX_PLATFORMS names a backend
        this machine does not have.
    """
    flags = check_xla_flags(os.environ.get("XLA_FLAGS", ""))
    if _DEVICE_FLAG not in flags:
        count = usable_cores() if cpu_devices is None else cpu_devices
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"cpu_devices: expected an integer >= 1, got {cpu_devices!r}")
        os.environ["XLA_FLAGS"] = " ".join([*flags.split(), f"{_DEVICE_FLAG}={count}"])
    check_platforms()
    from kldiv.threefry import lower_unrolled_on_cpu

    lower_unrolled_on_cpu()
    global _executables
    _executables = None
    cache = default_cache_dir() if cache_dir is None else cache_dir
    if cache:
        problem = _unusable(cache)
        if problem is not None:
            print(f"kldiv: warning: compilation cache disabled: {cache} {problem}", file=sys.stderr)
            return
        import jax

        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        _executables = Path(cache) / "executables"


def executable_cache_dir() -> Path | None:
    """Where compiled training programs persist (`kldiv.engine.executables`): the `executables`
    folder of the compilation cache `configure` set up; None before `configure`, or with the cache
    disabled."""
    return _executables


def check_xla_flags(flags: str) -> str:
    """`flags` ($XLA_FLAGS) if every token is an `--xla_...` flag and any device count is >= 1.

    XLA reads a value that does not start with "--" as the name of a flag file and aborts the
    process when it cannot open it; kldiv adds its device flag to the variable, so it accepts only
    flags written inline.
    """
    for token in flags.split():
        if not token.startswith("--xla_"):
            raise ConfigError(
                "XLA_FLAGS",
                f"expected space-separated --xla_... flags, got {token!r} in {flags!r}",
            )
        name, _, value = token.partition("=")
        if name == _DEVICE_FLAG and not (value.isdigit() and int(value) >= 1):
            raise ConfigError("XLA_FLAGS", f"expected {_DEVICE_FLAG}=N with N >= 1, got {token!r}")
    return flags


def check_platforms() -> None:
    """Start JAX's backends, so that $JAX_PLATFORMS naming one this machine lacks (cuda without a
    GPU) fails here in one line rather than as a traceback at the first computation."""
    import jax

    try:
        jax.devices()
    except (RuntimeError, AssertionError) as err:
        platforms = os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms or ""
        detail = str(err).split(" (set JAX_PLATFORMS")[0].strip() or "JAX could not start it"
        raise ConfigError(
            "JAX_PLATFORMS",
            f"expected a backend this machine has, such as 'cpu', got {platforms!r}: no such "
            f"backend ({detail})",
        ) from None


def _unusable(cache: str) -> str | None:
    """Why `cache` cannot hold the compilation cache, or None if it can."""
    try:
        Path(cache).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache):
            pass
    except OSError as err:
        return f"is not a writable directory ({err.strerror or err})"
    return None
