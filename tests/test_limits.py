"""Limits the library checks itself: float32 rounding onto a boundary, targets a loss cannot train
on, and the memory a training needs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kldiv.checks import ConfigError
from kldiv.config import BlobsConfig, TrainConfig
from kldiv.data import blobs_dataset
from kldiv.engine import train
from kldiv.engine.runner import check_memory, estimate_bytes
from kldiv.losses import get_loss, loss_names
from kldiv.objectives import FULL_SUPPORT_LOSSES, Classifier
from kldiv.optimizers import SGD, Adam


@pytest.fixture(scope="module")
def data():
    return blobs_dataset()


def test_values_float32_rounds_onto_a_boundary_are_refused_in_every_config():
    with pytest.raises(
        ConfigError, match=r"momentum: .*got 0\.99999999999, which float32 rounds to 1\.0$"
    ):
        SGD(momentum=0.99999999999)
    with pytest.raises(
        ConfigError, match=r"b2: expected a number in \[0, 1\), got .* rounds to 1\.0"
    ):
        Adam(b2=1 - 1e-9)
    # on the boundary itself, or rounding to a float32 strictly inside: accepted
    assert SGD(momentum=1.0).momentum == 1.0
    assert SGD(momentum=0.9999999).momentum == 0.9999999  # float32 0.99999988
    assert BlobsConfig(cluster_std=0.1).cluster_std == 0.1


def test_full_support_losses_are_exactly_those_infinite_on_one_hot_targets():
    logits = jnp.zeros((1, 3), jnp.float32)
    one_hot = jnp.asarray([[0.0, 1.0, 0.0]], jnp.float32)
    infinite = {
        name for name in loss_names() if not jnp.isfinite(get_loss(name)(logits, one_hot))[0]
    }
    assert infinite == FULL_SUPPORT_LOSSES == {"reverse_kl"}


def test_reverse_kl_refuses_one_hot_targets_and_trains_on_soft_ones(data):
    with pytest.raises(
        ConfigError, match=r"^loss: reverse_kl is infinite where a target probability is 0"
    ):
        Classifier("reverse_kl").check_targets(data.y_train)
    Classifier("kl").check_targets(data.y_train)
    config = TrainConfig(loss="reverse_kl", epochs=2, hidden=(8,))
    with pytest.raises(ConfigError, match=r"^loss: reverse_kl"):
        train(config, data, [0])
    soft = [0.9 * y + np.float32(0.1 / 3) for y in (data.y_train, data.y_val)]
    result = train(config, data._replace(y_train=soft[0], y_val=soft[1]), [0])
    assert result.healthy.all()


@pytest.mark.parametrize("path", ["lanes", "generic"])
def test_the_estimate_covers_the_arrays_a_training_returns(data, path):
    config = TrainConfig(epochs=6, hidden=(16, 8), optimizer=Adam())
    seeds = list(range(5))
    n_devices = len(jax.local_devices())
    parts = estimate_bytes(config, data, len(seeds), n_devices, path)
    assert set(parts) == {"weights", "activations", "history", "batches"}
    result = train(config, data, seeds, path=path)
    history = sum(v.nbytes for v in result.history.values())
    params = sum(leaf.nbytes for leaf in jax.tree.leaves(result.params))
    padded = -(-len(seeds) // result.chunk) * result.chunk  # runs computed, padding included
    assert history * padded / len(seeds) <= parts["history"] <= 4 * history * padded / len(seeds)
    # weights of every run trained at once, with Adam's two moments
    per_run = params / len(seeds)
    assert (
        3 * per_run * padded
        <= parts["weights"]
        <= 10 * per_run * max(padded, n_devices * result.chunk)
    )
    # activations: every unit of every row of the largest evaluated set, for each run at once
    units = 2 + 16 + 8 + 3
    assert parts["activations"] >= padded * 500 * units * 4


def test_check_memory_names_the_flag_most_responsible(data):
    small = TrainConfig(epochs=2, hidden=(8,))
    check_memory(small, data, 1, 2)  # fits anywhere
    cases = [
        (small.replace(hidden=(10_000_000,)), 1, "hidden"),
        (small.replace(batch_size=100_000_000, hidden=(50,)), 1, "batch_size"),
        (small.replace(epochs=10**9), 2, "epochs"),
        (small.replace(epochs=1000), 10**6, "seeds"),
    ]
    for config, n_runs, field in cases:
        with pytest.raises(
            ConfigError, match=r"expected a training that fits in the 8\.0 GB"
        ) as info:
            check_memory(config, data, n_runs, 2, available=8 * 10**9)
        assert info.value.field == field
    with pytest.raises(ConfigError, match="needs about"):
        check_memory(small, data, 1, 2, available=1000)
