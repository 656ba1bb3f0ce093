"""kldiv: exact Kullback-Leibler divergence losses in JAX, and the classic KL-loss tutorial as one program.

`import kldiv` loads nothing heavy: `kldiv.losses` (and with it JAX) is imported on first use, and
training, statistics, plotting and the CLI from their own modules (`kldiv.engine`, `kldiv.stats`, ...),
so a process that needs none of JAX (the CLI's figure helper, `kldiv.figure_process`) does not pay
for it.
"""

from typing import Any

__all__ = ["__version__", "losses"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "losses":
        import importlib

        return importlib.import_module("kldiv.losses")
    raise AttributeError(f"module 'kldiv' has no attribute {name!r}")
