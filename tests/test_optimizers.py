"""Optimizer configs against independent oracles: Keras' SGD formula and Adam's in NumPy, and Optax's
own `adam`, `adamw` and `rmsprop` called directly with the same numbers."""

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kldiv.checks import ConfigError, ConfigTypeError
from kldiv.optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, RMSProp, optimizer_from_dict

STEPS = 5
SHAPES = ((3, 4), (4,), (4, 2), (2,))


def optax_bias_correction():
    """Optax's Adam bias correction computes `decay ** count` with a float32 decay and an int32
    count (optax/tree_utils/_tree_math.py, `tree_bias_correction`), which JAX's strict dtype
    promotion (tests/conftest.py) rejects with a TypePromotionError. kldiv's transformations trace
    under the standard rules themselves; Optax called directly as an oracle needs them here."""
    return jax.numpy_dtype_promotion("standard")


def random_tree(rng, scale=1.0):
    return tuple(jnp.asarray(scale * rng.normal(size=s), jnp.float32) for s in SHAPES)


def run_steps(transformation, params, grads):
    """Apply `transformation` for len(grads) steps, compiled as in training; the weights after each
    step. (Eagerly, `b ** count` with a concrete count becomes repeated multiplication, not pow.)"""
    state = transformation.init(params)
    update = jax.jit(transformation.update)
    trajectory = []
    for g in grads:
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(params)
    return trajectory


def problem(seed, grad_scale=1.0):
    rng = np.random.default_rng(seed)
    params = random_tree(rng)
    grads = [random_tree(rng, grad_scale) for _ in range(STEPS)]
    return params, grads


@pytest.mark.parametrize(("lr", "momentum"), [(0.01, 0.9), (0.3, 0.5), (0.05, 0.0), (0.1, 1.0)])
def test_sgd_is_keras_momentum_form(lr, momentum):
    params, grads = problem(0)
    got = run_steps(SGD(lr, momentum).transformation(), params, grads)
    # Keras SGD: v <- momentum * v - lr * g; w <- w + v, in float32
    w = [np.asarray(p) for p in params]
    v = [np.zeros_like(p) for p in w]
    m32, lr32 = np.float32(momentum), np.float32(lr)
    for g, after in zip(grads, got, strict=True):
        v = [m32 * vi - lr32 * np.asarray(gi) for vi, gi in zip(v, g, strict=True)]
        w = [wi + vi for wi, vi in zip(w, v, strict=True)]
        for expected, actual in zip(w, after, strict=True):
            assert actual.dtype == np.float32
            np.testing.assert_array_max_ulp(np.asarray(actual), expected, maxulp=1)


def test_sgd_learning_rate_sits_inside_the_velocity():
    # Keras' form differs from optax.sgd (lr outside the trace) once the learning rate changes:
    # the velocity accumulated under the old rate keeps its size.
    params, grads = problem(1)
    opt = SGD(0.1, 0.9)
    t = opt.transformation()
    state = t.init(params)
    _, state = t.update(grads[0], state, params)
    state.hyperparams["learning_rate"] = jnp.float32(0.001)
    updates, _ = t.update(grads[1], state, params)
    expected = 0.9 * (-0.1 * np.asarray(grads[0][0])) - 0.001 * np.asarray(grads[1][0])
    np.testing.assert_allclose(updates[0], expected, rtol=1e-6, atol=1e-7)


def numpy_adam(params, grads, lr, b1, b2, eps, weight_decay=0.0):
    """Adam in float64: bias-corrected moments, eps outside the square root; AdamW's decoupled
    decay adds lr * weight_decay * w."""
    w = [np.asarray(p, np.float64) for p in params]
    m = [np.zeros_like(p) for p in w]
    v = [np.zeros_like(p) for p in w]
    out = []
    for t, g in enumerate(grads, start=1):
        g = [np.asarray(gi, np.float64) for gi in g]
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g, strict=True)]
        v = [b2 * vi + (1 - b2) * gi**2 for vi, gi in zip(v, g, strict=True)]
        w = [
            wi - lr * ((mi / (1 - b1**t)) / (np.sqrt(vi / (1 - b2**t)) + eps) + weight_decay * wi)
            for wi, mi, vi in zip(w, m, v, strict=True)
        ]
        out.append(w)
    return out


def test_adam_matches_the_formula_with_eps_outside_the_root_and_bias_correction():
    # Small gradients and a large eps: eps inside the root, or no bias correction, would be far off.
    params, grads = problem(2, grad_scale=1e-3)
    opt = Adam(learning_rate=0.01, b1=0.8, b2=0.95, eps=1e-3)
    got = run_steps(opt.transformation(), params, grads)
    expected = numpy_adam(params, grads, 0.01, 0.8, 0.95, 1e-3)
    for e, a in zip(expected, got, strict=True):
        for ei, ai in zip(e, a, strict=True):
            np.testing.assert_allclose(ai, ei, rtol=1e-6, atol=1e-7)
    # the oracle discriminates: without bias correction the first step is ~1/0.2 smaller in m
    assert not np.allclose(numpy_adam(params, grads[:1], 0.01, 0.8, 0.95, 1e-3)[0][0], params[0])


def test_adamw_matches_the_formula():
    params, grads = problem(3, grad_scale=1e-2)
    opt = AdamW(learning_rate=0.02, b1=0.9, b2=0.99, eps=1e-4, weight_decay=0.5)
    got = run_steps(opt.transformation(), params, grads)
    expected = numpy_adam(params, grads, 0.02, 0.9, 0.99, 1e-4, weight_decay=0.5)
    for e, a in zip(expected, got, strict=True):
        for ei, ai in zip(e, a, strict=True):
            np.testing.assert_allclose(ai, ei, rtol=1e-6, atol=1e-7)


def f32(x):
    # The optimizer's numbers live in its state as float32; the oracle gets the same float32
    # numbers (a Python float would make Optax fold e.g. 1 - b1 in float64 first: a few ulp apart).
    return jnp.float32(x)


def adam_oracle(o):
    return optax.adam(f32(o.learning_rate), b1=f32(o.b1), b2=f32(o.b2), eps=f32(o.eps))


def adamw_oracle(o):
    return optax.adamw(
        f32(o.learning_rate),
        b1=f32(o.b1),
        b2=f32(o.b2),
        eps=f32(o.eps),
        weight_decay=f32(o.weight_decay),
    )


def rmsprop_oracle(o):
    return optax.rmsprop(f32(o.learning_rate), decay=f32(o.decay), eps=f32(o.eps))


ORACLES = [
    (Adam(), adam_oracle),
    (Adam(0.05, 0.7, 0.9, 1e-3), adam_oracle),
    (AdamW(), adamw_oracle),
    (AdamW(0.05, 0.7, 0.9, 1e-3, 0.2), adamw_oracle),
    (RMSProp(), rmsprop_oracle),
    (RMSProp(0.05, 0.5, 1e-3), rmsprop_oracle),
]


@pytest.mark.parametrize(("opt", "oracle"), ORACLES, ids=lambda o: getattr(o, "name", ""))
def test_optax_optimizers_match_optax_called_directly(opt, oracle):
    params, grads = problem(4, grad_scale=1e-2)
    promotion = (
        optax_bias_correction() if opt.name in ("adam", "adamw") else contextlib.nullcontext()
    )
    with promotion:
        got = run_steps(opt.transformation(), params, grads)
        expected = run_steps(oracle(opt), params, grads)
    for e, a in zip(expected, got, strict=True):
        for ei, ai in zip(e, a, strict=True):
            assert ai.dtype == np.float32
            if opt.name in ("adam", "adamw"):
                # bias corrections multiplied by 1 / (1 - b^t) rather than divided: a rounding apart
                np.testing.assert_allclose(ai, ei, rtol=1e-6, atol=1e-7)
            else:
                np.testing.assert_array_equal(ai, ei)
    moved = [float(jnp.max(jnp.abs(a - p))) for a, p in zip(got[-1], params, strict=True)]
    assert min(moved) > 0


def test_rmsprop_adds_eps_inside_the_root():
    # optax.rmsprop's default (eps_in_sqrt=True): w <- w - lr * g / sqrt(nu + eps)
    params, grads = problem(5, grad_scale=1e-3)
    lr, decay, eps = 0.01, 0.5, 1e-4
    (got,) = run_steps(RMSProp(lr, decay, eps).transformation(), params, grads[:1])
    g = np.asarray(grads[0][0], np.float64)
    nu = (1 - decay) * g**2
    expected = np.asarray(params[0], np.float64) - lr * g / np.sqrt(nu + eps)
    np.testing.assert_allclose(got[0], expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "opt",
    [SGD(0.01, 0.9), Adam(), AdamW(weight_decay=0.1), RMSProp()],
    ids=lambda o: o.name,
)
def test_transformation_values_override_the_fields(opt):
    params, grads = problem(6)
    changed = opt.replace(learning_rate=0.123)
    got = run_steps(opt.transformation(learning_rate=0.123), params, grads)
    expected = run_steps(changed.transformation(), params, grads)
    state = opt.transformation(learning_rate=jnp.float32(0.123)).init(params)
    assert float(state.hyperparams["learning_rate"]) == np.float32(0.123)
    for e, a in zip(expected, got, strict=True):
        for ei, ai in zip(e, a, strict=True):
            np.testing.assert_array_equal(ai, ei)
    assert opt.learning_rate != 0.123  # the config itself is unchanged


@pytest.mark.parametrize(
    "opt", [SGD(0.01, 0.9), Adam(), AdamW(weight_decay=0.1), RMSProp()], ids=lambda o: o.name
)
def test_per_run_hyperparameters_under_vmap_equal_separate_runs(opt):
    rates = np.array([0.001, 0.01, 0.1], np.float32)
    rng = np.random.default_rng(7)
    params = tuple(jnp.asarray(rng.normal(size=(3, *s)), jnp.float32) for s in SHAPES)
    grads = [
        tuple(jnp.asarray(rng.normal(size=(3, *s)), jnp.float32) for s in SHAPES) for _ in range(3)
    ]

    def init(lr, p):
        return opt.transformation(learning_rate=lr).init(p)

    state = jax.vmap(init)(jnp.asarray(rates), params)
    batched = params
    update = jax.jit(jax.vmap(opt.transformation().update))
    for g in grads:
        updates, state = update(g, state, batched)
        batched = optax.apply_updates(batched, updates)
    for r, lr in enumerate(rates):
        alone = run_steps(
            opt.replace(learning_rate=float(lr)).transformation(),
            tuple(p[r] for p in params),
            [tuple(gi[r] for gi in g) for g in grads],
        )[-1]
        for a, b in zip(alone, batched, strict=True):
            np.testing.assert_array_equal(b[r], a)
    # the runs really differ: each used its own rate
    assert not np.allclose(batched[0][0], batched[0][2])


@pytest.mark.parametrize("cls", list(OPTIMIZERS.values()), ids=lambda c: c.name)
def test_every_hyperparameter_rides_in_the_state_as_float32(cls):
    opt = cls()
    state = opt.transformation().init((jnp.zeros((2,), jnp.float32),))
    for name, value in opt.hyperparameters.items():
        assert state.hyperparams[name].dtype == jnp.float32
        assert float(state.hyperparams[name]) == np.float32(value)


def test_replace_with_a_name_that_is_not_a_hyperparameter_raises_naming_it():
    with pytest.raises(
        ConfigError, match=r"^momentum: not a hyperparameter of adam \(it has "
    ) as info:
        Adam().replace(momentum=0.5)
    assert info.value.field == "momentum"
    with pytest.raises(ConfigError, match=r"^b1: not a hyperparameter of sgd") as info:
        SGD().replace(b1=0.5, learning_rate=0.1)
    assert info.value.field == "b1"
    assert SGD().replace(learning_rate=0.5) == SGD(0.5, 0.9)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: SGD(learning_rate=0.0), "learning_rate"),
        (lambda: SGD(learning_rate=-0.1), "learning_rate"),
        (lambda: SGD(momentum=-0.1), "momentum"),
        (lambda: SGD(momentum=1.5), "momentum"),
        (lambda: Adam(b1=1.0), "b1"),
        (lambda: Adam(b2=1.0), "b2"),
        (lambda: Adam(b1=-0.5), "b1"),
        (lambda: Adam(eps=0.0), "eps"),
        (lambda: AdamW(weight_decay=-1e-4), "weight_decay"),
        (lambda: RMSProp(decay=1.0), "decay"),
        (lambda: Adam(learning_rate=1e-50), "learning_rate"),
        (lambda: Adam(eps=1e39), "eps"),
        (lambda: SGD().replace(momentum=2.0), "momentum"),
    ],
)
def test_out_of_range_values_are_rejected_naming_the_field(build, field):
    with pytest.raises(ConfigError, match=rf"^{field}: expected a number") as info:
        build()
    assert info.value.field == field


def test_edges_that_are_legal():
    assert SGD(momentum=1.0).momentum == 1.0  # no damping: unwise, legal
    assert SGD(momentum=0.0).momentum == 0.0
    assert Adam(b1=0.0, b2=0.0).b1 == 0.0
    assert AdamW(weight_decay=0.0).weight_decay == 0.0


def test_non_numbers_raise_config_type_error():
    for value in ("0.1", None, True):
        with pytest.raises(ConfigTypeError, match=r"^learning_rate: expected a number") as info:
            SGD(learning_rate=value)  # type: ignore[arg-type]
        assert info.value.field == "learning_rate"


@pytest.mark.parametrize(
    "opt",
    [
        SGD(),
        SGD(0.5, 1.0),
        Adam(),
        Adam(0.002, 0.5, 0.9, 1e-6),
        AdamW(),
        AdamW(weight_decay=0.0),
        RMSProp(),
        RMSProp(0.1, 0.5, 1e-5),
    ],
    ids=lambda o: o.name,
)
def test_to_dict_round_trips(opt):
    d = opt.to_dict()
    assert d["name"] == opt.name and set(d) == {"name", *(f.name for f in dataclasses.fields(opt))}
    back = optimizer_from_dict(d)
    assert back == opt and type(back) is type(opt) and hash(back) == hash(opt)


def test_registry_and_frozen_configs():
    assert list(OPTIMIZERS) == ["sgd", "adam", "adamw", "rmsprop"]
    assert all(issubclass(c, Optimizer) and OPTIMIZERS[c.name] is c for c in OPTIMIZERS.values())
    assert SGD() != Adam() and SGD(0.01, 0.9) == SGD()
    with pytest.raises(dataclasses.FrozenInstanceError):
        SGD().learning_rate = 1.0  # type: ignore[misc]
