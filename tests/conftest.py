"""Test configuration: JAX's strict promotion rules, so silent dtype or rank promotion fails."""

import os
import tempfile

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# The CLI persists compiled programs; tests use a private cache, never the user's.
os.environ.setdefault("KLDIV_CACHE_DIR", tempfile.mkdtemp(prefix="kldiv-test-cache-"))
