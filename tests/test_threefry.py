"""kldiv.threefry: the unrolled hash against the specification's known answers, a NumPy
implementation, and JAX's own lowering (in a process that never registers ours)."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kldiv.threefry import hash_2x32, lower_unrolled_on_cpu

# Random123's known-answer vectors for Threefry-2x32, 20 rounds: (key, counter) -> output.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


def _numpy_threefry(key, x):
    """Threefry-2x32-20 written from the specification, in uint64 arithmetic masked to 32 bits."""
    mask = 0xFFFFFFFF
    rotations = [13, 15, 26, 6, 17, 29, 16, 24]
    ks = [int(key[0]), int(key[1]), int(key[0]) ^ int(key[1]) ^ 0x1BD11BDA]
    x0, x1 = (int(x[0]) + ks[0]) & mask, (int(x[1]) + ks[1]) & mask
    for i in range(20):
        r = rotations[i % 8]
        x0 = (x0 + x1) & mask
        x1 = ((x1 << r) | (x1 >> (32 - r))) & mask
        x1 ^= x0
        if i % 4 == 3:
            g = i // 4 + 1
            x0 = (x0 + ks[g % 3]) & mask
            x1 = (x1 + ks[(g + 1) % 3] + g) & mask
    return x0, x1


@pytest.mark.parametrize(("key", "counter", "want"), KNOWN_ANSWERS)
def test_known_answers(key, counter, want):
    u = [jnp.uint32(v) for v in (*key, *counter)]
    got = jax.jit(hash_2x32)(*u)
    assert tuple(int(v) for v in got) == want
    assert _numpy_threefry(key, counter) == want


def test_matches_numpy_on_random_words_with_broadcasting():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**32, size=(2,), dtype=np.uint64).astype(np.uint32)
    x = rng.integers(0, 2**32, size=(2, 300), dtype=np.uint64).astype(np.uint32)
    y0, y1 = jax.jit(hash_2x32)(jnp.uint32(keys[0]), jnp.uint32(keys[1]), x[0], x[1])
    want = np.array([_numpy_threefry(keys, x[:, i]) for i in range(x.shape[1])], np.uint32)
    np.testing.assert_array_equal(np.stack([y0, y1], 1), want)


_JAX_RANDOM = """
import json, sys
import jax, jax.numpy as jnp
if sys.argv[1] == "unrolled":
    from kldiv.threefry import lower_unrolled_on_cpu
    lower_unrolled_on_cpu()

@jax.jit
def draws(seed):
    key = jax.random.key(seed)
    a, b = jax.random.split(key)
    return (
        jax.random.bits(jax.random.fold_in(a, 7), (5, 3)),
        jax.random.normal(b, (4,)).view(jnp.uint32),
        jax.random.permutation(a, 9),
        jax.random.key_data(jax.random.split(b, 3)),
    )

text = draws.lower(jnp.uint32(2024)).as_text()
print(json.dumps({
    "draws": [x.tolist() for x in draws(jnp.uint32(2024))],
    "loops": text.count("stablehlo.while"),
}))
"""


def _draws(lowering):
    out = subprocess.run(
        [sys.executable, "-c", _JAX_RANDOM, lowering],
        capture_output=True,
        text=True,
        check=True,
        env={"JAX_PLATFORMS": "cpu", "PATH": ""},
    )
    return json.loads(out.stdout)


def test_jax_random_gives_the_same_bits_with_either_lowering():
    jax_loop, unrolled = _draws("jax"), _draws("unrolled")
    assert unrolled["draws"] == jax_loop["draws"]
    assert jax_loop["loops"] > 0  # JAX's own CPU lowering is a loop ...
    assert unrolled["loops"] == 0  # ... and this one is not


def test_registering_twice_is_harmless():
    lower_unrolled_on_cpu()
    lower_unrolled_on_cpu()
    assert jax.random.bits(jax.random.key(3), (2,)).shape == (2,)


def test_numpy_words_hash_like_jax_and_are_left_unchanged():
    """The host's hash (`kldiv.engine.host_init`) updates its working arrays in place: the
    caller's arrays must come back untouched, and the words must be JAX's."""
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 2**32, size=(4, 1), dtype=np.uint64).astype(np.uint32)
    x = rng.integers(0, 2**32, size=(2, 1, 50), dtype=np.uint64).astype(np.uint32)
    before = (keys.copy(), x.copy())
    y0, y1 = hash_2x32(keys, keys[::-1], x[0], x[1])  # (4, 1) keys against (1, 50) counters
    j0, j1 = jax.jit(hash_2x32)(keys, keys[::-1], x[0], x[1])
    assert y0.shape == y1.shape == (4, 50) and y0.dtype == np.uint32
    np.testing.assert_array_equal(y0, j0)
    np.testing.assert_array_equal(y1, j1)
    np.testing.assert_array_equal(keys, before[0])
    np.testing.assert_array_equal(x, before[1])
