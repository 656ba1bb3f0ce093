"""Process-level setup for training: XLA CPU devices and the persistent compilation cache.

The CLI, a notebook and a worker process (a Ray task) all call `configure` before their first JAX
computation; nothing else in kldiv changes process state.
"""

from __future__ import annotations

import os
from pathlib import Path

_DEVICE_FLAG = "--xla_force_host_platform_device_count"


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
      "" disables), so a repeated command skips compilation.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _DEVICE_FLAG not in flags:
        count = usable_cores() if cpu_devices is None else cpu_devices
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"cpu_devices: expected an integer >= 1, got {cpu_devices!r}")
        os.environ["XLA_FLAGS"] = f"{flags} {_DEVICE_FLAG}={count}".strip()
    cache = default_cache_dir() if cache_dir is None else cache_dir
    if cache:
        import jax

        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
