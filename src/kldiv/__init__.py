"""kldiv: exact Kullback-Leibler divergence losses in JAX, and the classic KL-loss tutorial as one program.

`import kldiv` loads the loss library only; training, statistics, plotting and the CLI are imported from
their own modules (`kldiv.engine`, `kldiv.stats`, ...) so the package stays light to import.
"""

from kldiv import losses

__all__ = ["__version__", "losses"]
__version__ = "0.1.0"
