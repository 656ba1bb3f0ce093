"""Compiled training programs kept on disk, so a repeated command skips tracing, lowering and
compiling: `cached(jitted, name, devices)` wraps a jitted program; its first call with a given
argument signature loads the executable this machine compiled earlier, or compiles and stores it.
`Cached.ahead` prepares a program ahead of its call from the shapes of its arguments, so that a
first run compiles it while it traces and compiles another.

JAX's persistent compilation cache (`kldiv.runtime.configure`) saves only XLA's compile: every
process still traces the Python program and lowers it to StableHLO to compute that cache's key,
about 1 s of a warm `kldiv run` (measured, `benchmarks/bench_peers.py`). Here the key is computed
without tracing, from everything that can change the executable:

  * the program: its name (path, kind, static sizes) and `repr` of the `Run` it computes;
  * the arguments: tree structure, shapes, dtypes and placement;
  * the code: kldiv's version and a hash of every source file of the package, the versions of
    Python, JAX and jaxlib, and every JAX config value (x64, PRNG implementation, promotion...);
  * the machine: the backend's platform and version, the execution devices and how many devices
    the process has, the CPU's model and feature flags (an executable built for AVX-512 must never
    load on a CPU without it), and $XLA_FLAGS.

Safety. `jax.experimental.serialize_executable` stores the executable with pickle (its argument
and result trees, and the executable itself through pickle's persistent ids), and unpickling
runs code. An entry is therefore loaded only from kldiv's own cache directory (created 0700),
only when that directory and the entry belong to this user and neither is writable by group or
others, only under the name the tool gave it (the SHA-256 of its key), and only when the SHA-256
of its payload, stored beside it, matches. User data never goes through pickle: the cache holds
compiled programs only, and training arrays are passed at call time. Any problem — no entry, a
corrupt or truncated one, one this JAX cannot load, one whose first call fails — falls back to
compiling, silently, and the fresh executable replaces the entry (written atomically: temporary
file, then rename).

What is stored is always a fresh compile: on XLA:CPU (jaxlib 0.10.2) an executable that JAX
itself loaded from its persistent cache serialises without some of its kernels, and the copy
fails at its first call ("Function wrapped_broadcast not found"). So a miss compiles with JAX's
persistent cache switched off while it runs (a process-wide setting: other compiles at that
time skip it too), and the first call of every loaded executable waits for its results,
so a bad entry is caught there and replaced.

A loaded executable is the one a compile made, so results are bit-identical to compiling
(tests/test_executables.py).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import platform
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax

import kldiv

FORMAT = 1
_MAGIC = b"kldiv-executable-1\n"
_DIGEST = 32  # bytes of SHA-256


@functools.cache
def _source_hash() -> str:
    """SHA-256 over the path and content of every Python file of the kldiv package."""
    root = Path(kldiv.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def _cpu() -> str:
    """The CPU's model and feature flags (Linux: /proc/cpuinfo's first processor)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f.read().split("\n\n")[0].splitlines() if ":" in line]
        fields = dict(line.split(":", 1) for line in lines)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        return " ".join(fields.get(k, "") for k in ("vendor_id", "model name", "flags", "Features"))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _environment() -> list[str]:
    """What can change a compiled program besides the program and its arguments."""
    import jaxlib

    backend = jax.local_devices()[0].client
    return [
        f"format {FORMAT}",
        f"kldiv {kldiv.__version__} {_source_hash()}",
        f"python {sys.version}",
        f"jax {jax.__version__} jaxlib {jaxlib.__version__}",
        f"backend {backend.platform} {backend.platform_version}",
        f"devices {jax.device_count()} {jax.local_device_count()}",
        f"cpu {_cpu()} {platform.machine()}",
        f"XLA_FLAGS {os.environ.get('XLA_FLAGS', '')}",
        *(f"{k} {v!r}" for k, v in sorted(jax.config.values.items()) if k not in _WHERE_CACHED),
    ]


# JAX settings of where and whether compiled programs are cached, not of what they compute:
# `compile_fresh` switches the cache off for its compile, and a key computed meanwhile on another
# thread must still be the program's.
_WHERE_CACHED = frozenset(
    k
    for k in jax.config.values
    if k.startswith(("jax_compilation_cache", "jax_persistent_cache"))
    or k == "jax_enable_compilation_cache"
)


def _signature(args: tuple) -> str:
    """Tree structure, shapes, dtypes and placement of a call's arguments (arrays, or
    `jax.ShapeDtypeStruct`s standing for committed arrays, for `Cached.prepare`)."""
    leaves, tree = jax.tree.flatten(args)

    def leaf(a: Any) -> str:
        committed = isinstance(a, jax.ShapeDtypeStruct) or (
            isinstance(a, jax.Array) and a.committed
        )
        return (
            f"{a.shape} {a.dtype} {_placement(a.sharding, len(a.shape)) if committed else 'host'}"
        )

    return "\n".join([str(tree), *map(leaf, leaves)])


def _placement(sharding: Any, ndim: int) -> str:
    """Where an array's pieces live, in a canonical form: the same for the partition specs
    P('chunk') and P('chunk', None), or P() and P('chunk') on one device, which JAX gives
    interchangeably to the same placement."""
    devices = sorted(d.id for d in sharding.device_set)
    try:
        return f"{sharding._to_xla_hlo_sharding(ndim)} on {devices}"
    except Exception:  # a sharding without an HLO form: its repr
        return f"{sharding!r} on {devices}"


def usable_directory(directory: Path) -> bool:
    """Whether `directory` may hold executables: it exists (created 0700 if missing), is a real
    directory owned by this user, and neither group nor others can write to it."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _private(directory.lstat(), directory=True)
    except OSError:
        return False


def _private(st: os.stat_result, *, directory: bool) -> bool:
    kind = stat.S_ISDIR if directory else stat.S_ISREG
    owner = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return kind(st.st_mode) and owner and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def load(path: Path, devices: Sequence[Any]) -> Any | None:
    """The executable stored at `path` loaded onto `devices`, or None where there is none or it
    cannot be trusted or loaded (see the module docstring)."""
    try:
        with open(path, "rb") as f:
            if not _private(os.fstat(f.fileno()), directory=False):
                return None
            blob = f.read()
        header = len(_MAGIC) + _DIGEST
        if not blob.startswith(_MAGIC) or len(blob) <= header:
            return None
        payload = blob[header:]
        if hashlib.sha256(payload).digest() != blob[len(_MAGIC) : header]:
            return None
        from jax.experimental.serialize_executable import deserialize_and_load

        serialized, in_tree, out_tree = pickle.loads(payload)
        return deserialize_and_load(serialized, in_tree, out_tree, execution_devices=devices)
    except Exception:  # any failure to load means: compile instead
        return None


def serialized(compiled: Any) -> bytes | None:
    """The cache entry for `compiled` (magic, SHA-256 of the payload, payload), or None where it
    cannot be serialised. It must be taken before the executable first runs: XLA:CPU (jaxlib
    0.10.2) resolves a sort's comparator at the sort's first execution and cannot serialise the
    executable after that ("`LessThan` is not serializable")."""
    try:
        from jax.experimental.serialize_executable import serialize

        payload = pickle.dumps(serialize(compiled), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # a program that cannot be stored is only compiled again
        return None
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def write(path: Path, entry: bytes | None) -> None:
    """Write `entry` to `path` atomically; None, or a write that fails, leaves no entry (the next
    process compiles again)."""
    if entry is None:
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".bin")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(entry)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except Exception:  # a cache that cannot be written is only slower
        return


_switch = threading.Lock()
_fresh_compiles = 0  # compiles now inside _without_persistent_cache, on any thread
_enabled_before = False


@contextlib.contextmanager
def _without_persistent_cache() -> Iterator[None]:
    """JAX's persistent compilation cache off (neither read nor written) inside the block; the
    setting is process-wide, so it is switched off by the first of concurrent blocks and back by
    the last."""
    from jax.experimental.compilation_cache.compilation_cache import reset_cache

    global _fresh_compiles, _enabled_before
    with _switch:
        if _fresh_compiles == 0:
            _enabled_before = jax.config.jax_enable_compilation_cache
            jax.config.update("jax_enable_compilation_cache", False)
            reset_cache()  # JAX decides once per process whether its cache is used
        _fresh_compiles += 1
    try:
        yield
    finally:
        with _switch:
            _fresh_compiles -= 1
            if _fresh_compiles == 0:
                jax.config.update("jax_enable_compilation_cache", _enabled_before)
                reset_cache()


def compile_fresh(lowered: Any) -> Any:
    """A lowered program compiled by XLA, never taken from JAX's cache."""
    with _without_persistent_cache():
        return lowered.compile()


class Cached:
    """A `jax.jit` function whose executables persist in a directory (see `cached`)."""

    def __init__(self, jitted: Any, name: str, devices: Sequence[Any], directory: Path) -> None:
        self.jitted, self.name, self.directory = jitted, name, directory
        self.devices = tuple(devices)
        self.where = ", ".join(f"{d.platform}:{d.id}" for d in self.devices)
        self.compiled: dict[str, Any] = {}
        self._pending: dict[str, threading.Event] = {}  # compiles `ahead` started, by signature

    def _path(self, signature: str) -> Path:
        key = "\n".join([self.name, f"on {self.where}", signature, *_environment()])
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()}.bin"

    def stored(self, *args: Any) -> bool:
        """Whether an executable for `args` is in memory or on disk (a call would not compile)."""
        signature = _signature(args)
        return signature in self.compiled or self._path(signature).exists()

    def ahead(self, *args: Any) -> Callable[[], None] | None:
        """Prepare the executable for `args` (arrays or `jax.ShapeDtypeStruct`s with the
        shardings the call's arrays will have) without calling it: trace and lower it now, on
        this thread, and return the rest (compile, serialise, then write) to run on another thread while
        this one goes on; None when it is stored already. A call with these arguments meanwhile
        waits for that compile rather than compiling too.

        Tracing and lowering are Python, holding the interpreter's lock; XLA's compile releases
        it. Lowering before the other thread starts keeps two threads from taking turns at the
        lock while both trace."""
        signature = _signature(args)
        path = self._path(signature)
        if signature in self.compiled or signature in self._pending or path.exists():
            return None
        lowered = self.jitted.lower(*args)
        done = self._pending[signature] = threading.Event()

        def finish() -> None:
            entry = None
            try:
                program = self.compiled[signature] = compile_fresh(lowered)
                entry = serialized(program)  # before a waiting call can run it
            finally:
                done.set()
                self._pending.pop(signature, None)
            write(path, entry)

        return finish

    def _compile(self, signature: str, path: Path, lowered: Any) -> Any:
        program = self.compiled[signature] = compile_fresh(lowered)
        write(path, serialized(program))
        return program

    def __call__(self, *args: Any) -> Any:
        signature = _signature(args)
        pending = self._pending.get(signature)
        if pending is not None:
            pending.wait()
        program = self.compiled.get(signature)
        if program is None:
            path = self._path(signature)
            program = load(path, self.devices)
            if program is not None:
                try:  # a loaded executable proves itself on its first call
                    result = jax.block_until_ready(program(*args))
                except Exception:  # XLA's runtime errors: compile instead
                    program = None
                else:
                    self.compiled[signature] = program
                    return result
            program = self._compile(signature, path, self.jitted.lower(*args))
        return program(*args)


def cached(jitted: Any, name: str, devices: Sequence[Any], directory: Path | None) -> Any:
    """`jitted` (a `jax.jit` function run on `devices`) as a callable whose compiled executables
    persist in `directory` (None, or a directory `usable_directory` refuses: `jitted` itself,
    nothing stored). `name` identifies the program and everything static it closes over; it is
    part of the key, so it must change whenever the traced program would."""
    if directory is None or not usable_directory(directory):
        return jitted
    return Cached(jitted, name, devices, directory)
