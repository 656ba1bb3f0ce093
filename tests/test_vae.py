"""The VAE: its objective against float64 NumPy/SciPy formulas, its schedules and reductions, the
importance-weighted bound, activity statistics, seeds alone and in a batch, and saved models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from kldiv.checks import ConfigError
from kldiv.config import TrainConfig, VAEConfig
from kldiv.data import Dataset
from kldiv.engine import train
from kldiv.engine.run import Run
from kldiv.model import VAE
from kldiv.objectives import VariationalBound
from kldiv.optimizers import Adam
from kldiv.vae import (
    Scaling,
    importance_weighted_bound,
    latent_summary,
    posterior_mean_variance,
)

P, LATENT = 6, 3


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    x = (rng.random((9, P)) > 0.5).astype(np.float32)
    return x


def _model_and_params(decoder="bernoulli"):
    model = VAE(P, (5,), LATENT, P if decoder == "bernoulli" else 2 * P)
    params = model.init(jax.random.key(1))
    # non-zero biases so that every code path sees general values
    params = tuple(
        (w, b + 0.1 * jax.random.normal(jax.random.key(i), b.shape))
        for i, (w, b) in enumerate(params)
    )
    return model, params


def _oracle(model, params, x, key, decoder="bernoulli"):
    """Float64 R, KL_j from the model's own encoder and decoder outputs and the same ε."""
    mean, log_var = (np.asarray(a, np.float64) for a in model.encode(params, jnp.asarray(x)))
    eps = np.asarray(jax.random.normal(key, mean.shape, jnp.float32), np.float64)
    z = mean + np.exp(0.5 * log_var) * eps
    out = np.asarray(model.decode(params, jnp.asarray(z, jnp.float32)), np.float64)
    if decoder == "bernoulli":
        # -log Bernoulli(x; sigmoid(o)) = -(x log σ(o) + (1 - x) log σ(-o))
        nll = -(x * special.log_expit(out) + (1 - x) * special.log_expit(-out))
    else:
        nll = -stats.norm.logpdf(x, out[:, :P], np.exp(0.5 * out[:, P:]))
    kl = 0.5 * (np.exp(log_var) + mean**2 - 1 - log_var)
    return nll.sum(axis=1), kl


@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
def test_metrics_match_float64_formulas(batch, decoder):
    model, params = _model_and_params(decoder)
    key = jax.random.key(7)
    objective = VariationalBound(VAEConfig(LATENT, decoder=decoder))
    got = objective(model, params, jnp.asarray(batch), jnp.asarray(batch), key, None)
    rec, kl = _oracle(model, params, batch, key, decoder)
    np.testing.assert_allclose(got["reconstruction"], rec, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(got["kl"], kl.sum(axis=1), rtol=2e-5, atol=1e-6)
    for j in range(LATENT):
        np.testing.assert_allclose(got[f"kl_{j}"], kl[:, j], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(got["neg_elbo"], rec + kl.sum(axis=1), rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(got["loss"], got["neg_elbo"], rtol=1e-6)


def test_reductions_free_bits_and_warmup_give_the_stated_loss(batch):
    model, params = _model_and_params()
    key = jax.random.key(3)
    rec, kl = _oracle(model, params, batch, key)
    x = jnp.asarray(batch)
    cases = [
        (dict(reconstruction="mean"), rec / P + kl.sum(1)),
        (dict(kl="mean"), rec + kl.sum(1) / LATENT),
        (dict(reconstruction="mean", kl="mean", beta=2.0), rec / P + 2.0 * kl.sum(1) / LATENT),
        (dict(free_bits=0.3), rec + np.maximum(0.3, kl).sum(1)),
        (dict(beta=4.0), rec + 4.0 * kl.sum(1)),
    ]
    for fields, expected in cases:
        got = VariationalBound(VAEConfig(LATENT, **fields))(model, params, x, x, key, None)["loss"]
        np.testing.assert_allclose(got, expected, rtol=2e-5, err_msg=str(fields))
        # the reductions' effect is the effective beta: R + beta_eff K, up to a constant factor
        config = VAEConfig(latent=LATENT, **{k: v for k, v in fields.items() if k != "free_bits"})
        if "free_bits" not in fields:
            scale = P if config.reconstruction == "mean" else 1
            np.testing.assert_allclose(
                scale * np.asarray(got), rec + config.effective_beta(P) * kl.sum(1), rtol=2e-5
            )
    warm = VariationalBound(VAEConfig(LATENT, beta=2.0, warmup=4))
    for epoch, weight in ((0, 0.0), (1, 0.5), (2, 1.0), (4, 2.0), (9, 2.0)):
        got = warm(model, params, x, x, key, jnp.int32(epoch))["loss"]
        np.testing.assert_allclose(got, rec + weight * kl.sum(1), rtol=2e-5)
    np.testing.assert_allclose(warm(model, params, x, x, key, None)["loss"], rec + 2 * kl.sum(1))


def test_free_bits_stop_the_gradient_of_dimensions_below_the_floor(batch):
    model, params = _model_and_params()
    x = jnp.asarray(batch)
    key = jax.random.key(3)
    _, kl = _oracle(model, params, batch, key)
    floor = float(kl.max()) + 1.0  # above every dimension's KL: the KL term is constant
    with_floor = VariationalBound(VAEConfig(LATENT, free_bits=floor))
    rec_only = VariationalBound(VAEConfig(LATENT, beta=1e-30))

    def grad(objective):
        return jax.grad(lambda p: objective(model, p, x, x, key, None)["loss"].sum())(params)

    for a, b in zip(
        jax.tree.leaves(grad(with_floor)), jax.tree.leaves(grad(rec_only)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_bernoulli_targets_outside_the_unit_interval_are_refused():
    with pytest.raises(ConfigError, match=r"^decoder: expected targets in \[0, 1\]"):
        VariationalBound(VAEConfig(2)).check_targets(np.array([[0.0, 1.5]]))
    VariationalBound(VAEConfig(2, decoder="gaussian")).check_targets(np.array([[0.0, 1.5]]))


def test_config_is_validated():
    for field, value in (("latent", 0), ("beta", 0.0), ("warmup", -1), ("free_bits", -0.1)):
        with pytest.raises(ConfigError, match=rf"^{field}: "):
            VAEConfig(**{field: value})
    with pytest.raises(ConfigError, match=r"^decoder: "):
        VAEConfig(decoder="poisson")
    with pytest.raises(ConfigError, match=r"^label_smoothing: "):
        TrainConfig(vae=VAEConfig(), label_smoothing=0.1)
    config = TrainConfig(vae=VAEConfig(latent=3, warmup=5))
    assert TrainConfig.from_dict(_json(config)) == config


def _json(config):
    import json

    from kldiv.config import to_dict

    return json.loads(json.dumps(to_dict(config)))


def test_scaling_maps_the_training_range_and_binarises():
    x = np.array([[0.0, 4.0], [8.0, 16.0]])
    s = Scaling.fit(x, None)
    np.testing.assert_array_equal(s.apply(x), [[0, 0.25], [0.5, 1]])
    np.testing.assert_array_equal(s.apply(np.array([[-3.0, 20.0]])), [[0, 1]])
    np.testing.assert_array_equal(Scaling.fit(x, 0.5).apply(x), [[0, 0], [1, 1]])
    with pytest.raises(ConfigError, match=r"^binarize: "):
        Scaling.fit(x, 1.5)
    assert Scaling.from_dict(Scaling.fit(x, 0.5).to_dict()) == Scaling.fit(x, 0.5)


def _data(rows=40, seed=0):
    rng = np.random.default_rng(seed)
    # two prototypes with flipped pixels: a latent code helps
    proto = rng.random((2, P)) > 0.5
    pick = rng.integers(0, 2, rows)
    x = (proto[pick] ^ (rng.random((rows, P)) < 0.1)).astype(np.float32)
    return Dataset(x[:30], x[:30], x[30:], x[30:])


CONFIG = TrainConfig(
    hidden=(8,), epochs=3, batch_size=8, optimizer=Adam(learning_rate=0.01), vae=VAEConfig(2)
)


def test_a_seed_gives_the_same_bits_alone_and_in_a_batch():
    data = _data()
    alone = train(CONFIG, data, [5])
    # seed 5 in the second chunk (VariationalBound.generic_chunk = 5), at another position
    batch = train(CONFIG, data, [3, 4, 0, 1, 2, 6, 7, 5])
    assert alone.path == batch.path == "generic" and batch.chunk == 5
    for k, v in alone.history.items():
        np.testing.assert_array_equal(v[0], batch.history[k][7], err_msg=k)
    for k, v in alone.final.items():
        np.testing.assert_array_equal(v[0], batch.final[k][7], err_msg=k)
    assert set(alone.final) == {
        f"{s}_{m}" for s in ("train", "test") for m in Run.for_data(CONFIG, data).metric_names
    }
    # different seeds sample different codes
    assert not np.array_equal(batch.final["test_neg_elbo"][0], batch.final["test_neg_elbo"][1])


def test_importance_weighted_bound_with_one_sample_is_the_elbo_estimate_and_tightens():
    data = _data()
    result = train(CONFIG, data, [0])
    run = Run.for_data(CONFIG, data)
    params = result.params
    one = importance_weighted_bound(
        run.model, run.objective, params, result.seeds, data.x_val, data.y_val, 1
    )
    # oracle: -log w for the same ε (the stream the bound documents), averaged over rows
    p0 = jax.tree.map(lambda a: a[0], params)
    key = jax.random.fold_in(jax.random.key(0), 0x1A7E)
    mean, log_var = (np.asarray(a, np.float64) for a in run.model.encode(p0, data.x_val))
    eps = np.asarray(jax.random.normal(key, (1, *mean.shape), jnp.float32), np.float64)[0]
    z = mean + np.exp(0.5 * log_var) * eps
    out = np.asarray(run.model.decode(p0, jnp.asarray(z, jnp.float32)), np.float64)
    y = data.y_val
    log_lik = (y * special.log_expit(out) + (1 - y) * special.log_expit(-out)).sum(1)
    log_p = stats.norm.logpdf(z).sum(1)
    log_q = stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(1)
    np.testing.assert_allclose(one, [-np.mean(log_lik + log_p - log_q)], rtol=1e-4)
    many = importance_weighted_bound(
        run.model, run.objective, params, result.seeds, data.x_val, data.y_val, 2000
    )
    # the bound tightens towards -log p(y), below the -ELBO (its exact KL, many-sample mean)
    assert many[0] < result.final["test_neg_elbo"][0] + 0.05
    assert many[0] > 0


def test_activity_statistics_match_numpy():
    data = _data()
    result = train(CONFIG, data, [0, 1])
    run = Run.for_data(CONFIG, data)
    var = posterior_mean_variance(run.model, result.params, data.x_val)
    for r in range(2):
        p = jax.tree.map(lambda a, r=r: a[r], result.params)
        mean = np.asarray(run.model.encode(p, data.x_val)[0], np.float64)
        np.testing.assert_allclose(var[r], mean.var(axis=0), rtol=1e-4)
    s = latent_summary(run.model, result.params, result.final, data.x_val)
    kl = np.stack([result.final[f"test_kl_{j}"] for j in range(2)], axis=1)
    np.testing.assert_array_equal(s.kl, kl)
    np.testing.assert_array_equal(s.active_by_kl, (kl > 0.01).sum(1))
    np.testing.assert_array_equal(s.collapsed, (kl <= 0.01).all(1))


def test_averaged_reconstruction_collapses_the_posterior_as_its_effective_beta_predicts():
    # 64 Bernoulli values averaged, KL summed: effective beta 64; the summed ELBO keeps its code
    rng = np.random.default_rng(1)
    proto = rng.random((4, 64)) > 0.5
    pick = rng.integers(0, 4, 400)
    x = (proto[pick] ^ (rng.random((400, 64)) < 0.05)).astype(np.float32)
    data = Dataset(x[:300], x[:300], x[300:], x[300:])
    config = TrainConfig(
        hidden=(32,), epochs=20, batch_size=32, optimizer=Adam(), vae=VAEConfig(latent=2)
    )
    right = train(config, data, [0])
    wrong_vae = config.vae.replace(reconstruction="mean")
    assert wrong_vae.effective_beta(64) == 64
    wrong = train(config.replace(vae=wrong_vae), data, [0])
    assert right.final["test_kl"][0] > 1.0
    # on its way to collapse (20 epochs of 10 steps): under 5% of the ELBO's KL in every dimension
    assert wrong.final["test_kl"][0] < 0.05 * right.final["test_kl"][0]
    run = Run.for_data(config, data)
    summary = latent_summary(run.model, right.params, right.final, data.x_val)
    assert summary.active_by_kl[0] == 2 and not summary.collapsed[0]
    # the collapsed model spends its nats on reconstruction: a worse bound
    assert wrong.final["test_neg_elbo"][0] > right.final["test_neg_elbo"][0]
