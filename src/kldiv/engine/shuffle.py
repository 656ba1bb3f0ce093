"""Each epoch's row order: a uniform random permutation from one key, for one run or many at once.

`epoch_order` is one run's order; `epoch_orders` gives the same permutations for S runs with the
run axis last, sorted by a bitonic network that is elementwise across runs (`sort_lanes`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Above this many rows the random high bits of a tagged word get too few (see `epoch_order`).
MAX_TAGGED_ROWS = 1 << 16
# `sort_lanes` uses the bitonic network from this many columns, XLA:CPU's comparison sort below.
# Measured, 100 sorts of (512, S) in one program: S = 16: comparison 19 ms, network 89 ms;
# S = 32: 39 and 168 ms; S = 64: 82 and 24 ms (the network's gather-and-select vectorises at 64).
BITONIC_MIN_COLUMNS = 64


def _tag_bits(n: int) -> int:
    """Low bits that hold a row index in [0, n)."""
    return max(1, (n - 1).bit_length())


def _tagged_words(key: jax.Array, n: int) -> jax.Array:
    """(n,) uint32 random words with the row index in their low `_tag_bits(n)` bits."""
    mask = jnp.uint32((1 << _tag_bits(n)) - 1)
    words = jax.random.bits(key, (n,), jnp.uint32)
    return (words & ~mask) | jnp.arange(n, dtype=jnp.uint32)


def epoch_order(key: jax.Array, n: int, shuffle: bool) -> jax.Array:
    """(n,) int32 row order for one epoch: a uniform random permutation, or 0..n-1 without shuffle.

    Random 32-bit words get the row index in their low ceil(log2 n) bits and go through one
    single-operand sort (several times cheaper on XLA:CPU than `jax.random.permutation`'s key-value
    sort); the low bits of the sorted words are the permutation. The keys are distinct, so the result
    is exact, and rows whose random high bits tie keep their index order (probability ~ n^2 / 2^33
    per epoch at n = 500). Above 2**16 rows the high bits get too few, and the key-value sort is used.
    """
    if not shuffle:
        return jnp.arange(n, dtype=jnp.int32)
    if n > MAX_TAGGED_ROWS:
        return jax.random.permutation(key, n).astype(jnp.int32)
    mask = jnp.uint32((1 << _tag_bits(n)) - 1)
    return (jax.lax.sort(_tagged_words(key, n)) & mask).astype(jnp.int32)


def epoch_orders(keys: jax.Array, n: int, shuffle: bool) -> jax.Array:
    """(n, S) int32: `epoch_order(keys[s], n, shuffle)` for each of the S keys, run axis last.

    The same permutations, sorted by `sort_lanes`: a bitonic network of elementwise min/max
    across the runs for 64 runs or more, where one comparison sort per run would cost XLA:CPU about
    20 ns per element, and that comparison sort below. The words are distinct, so every sort gives
    the same result.
    """
    if not shuffle or n > MAX_TAGGED_ROWS:
        return jax.vmap(lambda k: epoch_order(k, n, shuffle), out_axes=1)(keys)
    words = jax.vmap(lambda k: _tagged_words(k, n), out_axes=1)(keys)  # (n, S)
    size = 1 << _tag_bits(n)
    # Padding words sort last: all ones, whose low bits (size - 1 >= n) name no real row.
    words = jnp.pad(words, ((0, size - n), (0, 0)), constant_values=jnp.uint32(0xFFFFFFFF))
    mask = jnp.uint32(size - 1)
    return (sort_lanes(words)[:n] & mask).astype(jnp.int32)


def sort_lanes(a: jax.Array) -> jax.Array:
    """Sort (2**m, S) along axis 0, every column on its own: for S >= BITONIC_MIN_COLUMNS a
    bitonic network of min/max stages, else `jax.lax.sort` (the faster one there, see above).

    Stage (k, j), for k = 2, 4, ..., 2**m and j = k/2, ..., 1, compares rows i and i ^ j; the pair
    is put in ascending order where bit k of i is 0, else descending. Each stage is elementwise
    across the S columns; the m (m + 1) / 2 stages run in a loop, so the program stays small.
    """
    if a.shape[1] < BITONIC_MIN_COLUMNS:
        return jax.lax.sort(a, dimension=0)
    size = a.shape[0]
    stages = [(1 << p, 1 << q) for p in range(1, size.bit_length()) for q in range(p - 1, -1, -1)]
    ks, js = (jnp.array(column, jnp.int32) for column in zip(*stages, strict=True))
    rows = jnp.arange(size, dtype=jnp.int32)

    def stage(t: jax.Array, a: jax.Array) -> jax.Array:
        partner = a[rows ^ js[t]]
        keep_min = ((rows & ks[t]) == 0) == ((rows & js[t]) == 0)  # (size,)
        low, high = jnp.minimum(a, partner), jnp.maximum(a, partner)
        return jnp.where(keep_min[:, None], low, high)

    return jax.lax.fori_loop(0, len(stages), stage, a)
