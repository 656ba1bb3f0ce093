"""Test configuration: JAX's strict promotion rules, so silent dtype or rank promotion fails loudly."""

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
