"""JAX's Threefry-2x32 hash lowered for CPU without a loop: the same bits, a program that compiles
faster.

Every `jax.random` call on a default (threefry) key hashes with the `threefry2x32` primitive. On
CPU, JAX lowers it as a 5-iteration while loop over the 20 rounds, which keeps huge programs small
but costs XLA:CPU a loop with its own kernels and loop-carried copies at every call site (about 15
kernels each). Unrolled, the 20 rounds are a chain of elementwise integer operations that fuse into
the kernel consuming them. Measured on the tutorial's lanes programs: the init program compiles in
0.25 s instead of 0.45 s.

JAX has this unrolled form only as a private function of its own, so it is written out here from
the Threefry specification (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011:
Threefry-2x32 with 20 rounds, the rotation constants and key schedule below). It is integer
arithmetic, so the bits are those of JAX's loop exactly: tests/test_threefry.py checks the
specification's known answers and JAX's own lowering, through `jax.random`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def hash_2x32(key1: Any, key2: Any, x1: Any, x2: Any) -> tuple[Any, Any]:
    """Threefry-2x32 with 20 rounds: the key (key1, key2) applied to the counter words (x1, x2).

    All uint32 JAX or NumPy arrays, broadcast together; returns the two output words. Rounds of 4
    alternate the two rotation sets; after round group g (1..5) the key schedule adds ks[g % 3]
    and ks[(g + 1) % 3] + g, with ks = (key1, key2, key1 ^ key2 ^ 0x1BD11BDA).

    Written with augmented assignments: JAX rebinds, NumPy updates the two fresh working arrays in
    place, which makes the host's hash (`kldiv.engine.host_init`) about 4x faster.
    """
    ks = (key1, key2, key1 ^ key2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    if isinstance(x1, np.ndarray):  # the working arrays, each at the broadcast shape
        x1, x2 = (np.array(a) for a in np.broadcast_arrays(x1, x2))
    for group in range(1, 6):
        for r in _ROTATIONS[(group - 1) % 2]:
            x1 += x2
            high = x2 << np.uint32(r)
            x2 >>= np.uint32(32 - r)
            x2 |= high  # x2 rotated left by r
            x2 ^= x1
        x1 += ks[group % 3]
        x2 += ks[(group + 1) % 3]
        x2 += np.uint32(group)
    return x1, x2


def lower_unrolled_on_cpu() -> None:
    """Make this process lower `threefry2x32` on CPU with `hash_2x32` instead of JAX's loop.

    Process-wide and idempotent; it changes how programs compile, never their results. Programs
    traced and lowered before the call keep JAX's loop.
    """
    from jax.extend.random import threefry2x32_p
    from jax.interpreters import mlir

    def lower(*args: jax.Array) -> tuple[jax.Array, jax.Array]:
        return hash_2x32(*(jnp.asarray(a, jnp.uint32) for a in args))

    mlir.register_lowering(
        threefry2x32_p, mlir.lower_fun(lower, multiple_results=True), platform="cpu"
    )
