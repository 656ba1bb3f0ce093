"""Test configuration: two CPU devices and JAX's strict promotion rules (silent dtype or rank promotion fails)."""

import os
import tempfile

# Two XLA CPU devices, as `kldiv` gives a 2-core machine, so the tests cover runs spread over
# devices; set before JAX starts its backend, and fixed, so no test depends on the order of others.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# The CLI persists compiled programs; tests use a private cache, never the user's.
os.environ.setdefault("KLDIV_CACHE_DIR", tempfile.mkdtemp(prefix="kldiv-test-cache-"))
