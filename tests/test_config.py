import pytest

from kldiv.config import BlobsConfig, TrainConfig, to_dict


def test_defaults_are_the_tutorial():
    c = TrainConfig()
    assert (c.hidden, c.activation, c.hidden_init, c.output_init) == (
        (50,),
        "relu",
        "he_uniform",
        "glorot_uniform",
    )
    assert (c.epochs, c.batch_size, c.learning_rate, c.momentum, c.shuffle) == (
        100,
        32,
        0.01,
        0.9,
        True,
    )
    assert c.loss == "kullback_leibler_divergence"
    b = BlobsConfig()
    assert (b.n_samples, b.centers, b.n_features, b.cluster_std, b.random_state, b.n_train) == (
        1000,
        3,
        2,
        2.0,
        2,
        500,
    )


def test_configs_are_frozen_and_hashable():
    c = TrainConfig()
    with pytest.raises(AttributeError):
        c.epochs = 3  # type: ignore[misc]
    assert hash(c) == hash(TrainConfig())
    assert c.replace(epochs=3).epochs == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs: expected an integer >= 1, got 0"),
        ("batch_size", -1, "batch_size: expected an integer >= 1, got -1"),
        ("learning_rate", 0.0, "learning_rate: expected a number in (0.0, inf], got 0.0"),
        ("momentum", 1.5, "momentum: expected a number in [0.0, 1.0], got 1.5"),
        ("loss", "nope", "loss: expected one of"),
        ("activation", "gelu", "activation: expected one of 'relu', 'tanh', 'sigmoid'; got 'gelu'"),
        ("hidden", (50, 0), "hidden: expected an integer >= 1, got 0"),
    ],
)
def test_bad_values_name_the_field_the_expectation_and_the_value(field, value, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        TrainConfig(**{field: value})


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match=r"epochs: expected an integer >= 1, got 1\.5"):
        TrainConfig(epochs=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hidden: expected a tuple"):
        TrainConfig(hidden=[50])  # type: ignore[arg-type]


def test_blobs_config_rejects_a_split_without_test_rows():
    with pytest.raises(
        ValueError, match="n_train: expected fewer than n_samples=100 rows, got 100"
    ):
        BlobsConfig(n_samples=100, n_train=100)


def test_to_dict_is_json_ready():
    d = to_dict(TrainConfig())
    assert d["hidden"] == [50] and d["loss"] == "kullback_leibler_divergence"
