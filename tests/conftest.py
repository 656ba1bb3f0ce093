"""Test configuration: the runtime the CLI sets up (two CPU devices, a private compilation cache)
and JAX's strict promotion rules (silent dtype or rank promotion fails)."""

import os
import tempfile

from kldiv.runtime import configure

# The CLI persists compiled programs; tests use a private cache, never the user's.
os.environ.setdefault("KLDIV_CACHE_DIR", tempfile.mkdtemp(prefix="kldiv-test-cache-"))
# Two XLA CPU devices, as `kldiv` gives a 2-core machine, so the tests cover runs spread over
# devices; set before JAX starts its backend, and fixed, so no test depends on the order of others.
configure(cpu_devices=2)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def cli(capsys):
    """`cli(args)` runs `kldiv ARGS` in-process and returns (exit code, stdout, stderr)."""
    from kldiv.cli import main

    def run(args):
        code = main(args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    """Runs the test in float32 and, with x64 enabled, in float64."""
    if request.param is np.float64:
        with jax.enable_x64(True):
            yield request.param
    else:
        yield request.param
