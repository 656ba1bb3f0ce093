"""Optimizers: frozen configs whose numbers become an Optax `GradientTransformation`.

Each optimizer is a frozen dataclass whose fields are all numeric hyperparameters with their
defaults; `transformation()` builds the Optax transformation through `optax.inject_hyperparams`, so
every hyperparameter lives in the optimizer state as an array. A batch of runs can therefore carry
one value per run (a grid of learning rates in one compiled program): `transformation(**values)`
with traced values inside the per-run init, the same transformation for the update.

To add an optimizer: a dataclass here with its fields, `name` and `_factory`, and an entry in
`OPTIMIZERS`. The run-axis-last accelerator (`kldiv.engine.lanes`) lists the optimizers it supports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from kldiv.checks import ConfigError, check_real


@dataclass(frozen=True)
class Optimizer:
    """Base of the optimizer configs: validation, hyperparameters, the Optax transformation."""

    name: ClassVar[str]
    # field -> (low, high, open_low, open_high): the interval every value must lie in
    _ranges: ClassVar[dict[str, tuple[float, float, bool, bool]]]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            low, high, open_low, open_high = self._ranges[f.name]
            value = getattr(self, f.name)
            check_real(f.name, value, low, high, open_low=open_low, open_high=open_high)

    @property
    def hyperparameters(self) -> dict[str, float]:
        """The numeric hyperparameters by field name (all of them ride along as traced values)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Optimizer:
        """A copy with `changes` applied (and validated)."""
        unknown = sorted(set(changes) - set(self.hyperparameters))
        if unknown:
            raise ConfigError(
                unknown[0],
                f"not a hyperparameter of {self.name} (it has {', '.join(self.hyperparameters)})",
            )
        return dataclasses.replace(self, **changes)

    def transformation(self, **values: Any) -> Any:
        """`optax.inject_hyperparams` of this optimizer; `values` override fields (traced arrays
        allowed, e.g. one run's learning rate inside a vmapped init)."""
        import optax  # lazily: configs are built where JAX is not loaded (CLI parsing)

        tx = optax.inject_hyperparams(self._factory())(**(self.hyperparameters | values))
        return _standard_promotion(tx)

    def _factory(self) -> Callable[..., Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.hyperparameters}


def _standard_promotion(tx: Any) -> Any:
    """`tx` traced under JAX's standard dtype promotion, whatever the caller's setting.

    Optax's Adam computes `b1 ** count` with an int32 count; once `b1` is an injected float32
    array, strict promotion (which our tests and careful users turn on) refuses that expression.
    """
    import jax
    import optax

    def init(params: Any) -> Any:
        with jax.numpy_dtype_promotion("standard"):
            return tx.init(params)

    def update(updates: Any, state: Any, params: Any = None) -> Any:
        with jax.numpy_dtype_promotion("standard"):
            return tx.update(updates, state, params)

    return optax.GradientTransformation(init, update)


_POSITIVE = (0.0, float("inf"), True, False)
_NON_NEGATIVE = (0.0, float("inf"), False, False)
_UNIT = (0.0, 1.0, False, False)  # momentum 1 is legal (no damping), if unwise
_DECAY = (0.0, 1.0, False, True)  # 1 would make Adam's bias correction divide by 0


@dataclass(frozen=True)
class SGD(Optimizer):
    """Stochastic gradient descent with momentum in Keras' form (the tutorial's optimizer):
    v <- momentum * v - learning_rate * g;  w <- w + v.

    As Optax: `chain(scale_by_learning_rate(lr), trace(momentum))`, whose trace is exactly Keras'
    v (`optax.sgd` keeps lr outside the trace, which differs from Keras under a schedule).
    """

    learning_rate: float = 0.01
    momentum: float = 0.9
    name: ClassVar[str] = "sgd"
    _ranges: ClassVar = {"learning_rate": _POSITIVE, "momentum": _UNIT}

    def _factory(self) -> Callable[..., Any]:
        import optax

        def keras_sgd(learning_rate: Any, momentum: Any) -> optax.GradientTransformation:
            return optax.chain(
                optax.scale_by_learning_rate(learning_rate), optax.trace(decay=momentum)
            )

        return keras_sgd


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam as `optax.adam` (bias-corrected moments, eps outside the square root, Optax's
    defaults), with the bias corrections applied as in `_scale_by_adam`."""

    learning_rate: float = 0.001
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    name: ClassVar[str] = "adam"
    _ranges: ClassVar = {"learning_rate": _POSITIVE, "b1": _DECAY, "b2": _DECAY, "eps": _POSITIVE}

    def _factory(self) -> Callable[..., Any]:
        import optax

        def adam(learning_rate: Any, b1: Any, b2: Any, eps: Any) -> optax.GradientTransformation:
            return optax.chain(
                _scale_by_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate)
            )

        return adam


@dataclass(frozen=True)
class AdamW(Optimizer):
    """AdamW as `optax.adamw`: Adam with decoupled weight decay (applied to every parameter),
    with the bias corrections applied as in `_scale_by_adam`."""

    learning_rate: float = 0.001
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-4
    name: ClassVar[str] = "adamw"
    _ranges: ClassVar = {
        "learning_rate": _POSITIVE,
        "b1": _DECAY,
        "b2": _DECAY,
        "eps": _POSITIVE,
        "weight_decay": _NON_NEGATIVE,
    }

    def _factory(self) -> Callable[..., Any]:
        import optax

        def adamw(
            learning_rate: Any, b1: Any, b2: Any, eps: Any, weight_decay: Any
        ) -> optax.GradientTransformation:
            return optax.chain(
                _scale_by_adam(b1, b2, eps),
                optax.add_decayed_weights(weight_decay),
                optax.scale_by_learning_rate(learning_rate),
            )

        return adamw


@dataclass(frozen=True)
class RMSProp(Optimizer):
    """`optax.rmsprop` without momentum: g / sqrt(EMA of g^2 + eps) (Optax's default puts eps
    inside the square root; Keras' RMSprop adds it outside), EMA with `decay`."""

    learning_rate: float = 0.001
    decay: float = 0.9
    eps: float = 1e-8
    name: ClassVar[str] = "rmsprop"
    _ranges: ClassVar = {"learning_rate": _POSITIVE, "decay": _DECAY, "eps": _POSITIVE}

    def _factory(self) -> Callable[..., Any]:
        import optax

        return optax.rmsprop


def _scale_by_adam(b1: Any, b2: Any, eps: Any) -> Any:
    """`optax.scale_by_adam` (no eps_root, no Nesterov), with each bias correction applied as a
    multiplication by 1 / (1 - b^t) instead of a division by 1 - b^t.

    Written here, from Optax's own moment helpers, because of that one change: a division of every
    weight's moment by its run's bias correction is a division by a broadcast per-run scalar, which
    XLA rewrites into a multiplication by its reciprocal in some compiled layouts and not in others
    (it differs between the programs for one and two devices), so a run's last bits would depend
    on the runs it trains with. Written as a multiplication, there is nothing left to rewrite.
    m_hat = m * (1 / (1 - b1^t)), v_hat = v * (1 / (1 - b2^t)), update = m_hat / (sqrt(v_hat) + eps).
    """
    import jax
    import jax.numpy as jnp
    import optax

    def init(params: Any) -> Any:
        zeros = optax.tree.zeros_like(params)
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)

    def update(updates: Any, state: Any, params: Any = None) -> Any:
        del params
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)
        c1 = 1 / (1 - b1**count)
        c2 = 1 / (1 - b2**count)
        updates = jax.tree.map(lambda m, v: (m * c1) / (jnp.sqrt(v * c2) + eps), mu, nu)
        return updates, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


OPTIMIZERS: dict[str, type[Optimizer]] = {o.name: o for o in (SGD, Adam, AdamW, RMSProp)}


def optimizer_from_dict(d: dict[str, Any]) -> Optimizer:
    """Inverse of `Optimizer.to_dict`: {"name": "adam", "learning_rate": 0.001, ...}."""
    if not isinstance(d, dict) or "name" not in d:
        raise ConfigError("optimizer", f"expected a mapping with a 'name', got {d!r}")
    fields = dict(d)
    name = fields.pop("name")
    if name not in OPTIMIZERS:
        raise ConfigError("optimizer", f"expected one of {', '.join(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name]().replace(**fields)
