import dataclasses
import json

import pytest

from kldiv.checks import ConfigError, ConfigTypeError
from kldiv.config import BlobsConfig, Distillation, TrainConfig, to_dict
from kldiv.data import DataConfig
from kldiv.experiment import Experiment
from kldiv.optimizers import SGD, Adam, AdamW, RMSProp


def test_defaults_are_the_tutorial():
    c = TrainConfig()
    assert (c.hidden, c.activation, c.hidden_init, c.output_init) == (
        (50,),
        "relu",
        "he_uniform",
        "glorot_uniform",
    )
    assert (c.epochs, c.batch_size, c.shuffle) == (100, 32, True)
    assert c.optimizer == SGD(0.01, 0.9)
    assert type(c.optimizer) is SGD and (c.optimizer.learning_rate, c.optimizer.momentum) == (
        0.01,
        0.9,
    )
    assert c.loss == "kl"  # the tutorial's 'kullback_leibler_divergence', stored canonically
    b = BlobsConfig()
    assert (b.n_samples, b.centers, b.n_features, b.cluster_std, b.random_state, b.n_train) == (
        1000,
        3,
        2,
        2.0,
        2,
        500,
    )
    assert b.center_box == (-10.0, 10.0)


@pytest.mark.parametrize("alias", ["kld", "KLD", "kl_divergence", "kullback_leibler_divergence"])
def test_loss_aliases_are_stored_canonically_so_equal_configs_are_equal(alias):
    c = TrainConfig(loss=alias)
    assert c.loss == "kl"
    assert c == TrainConfig(loss="kl") and hash(c) == hash(TrainConfig(loss="kl"))
    assert TrainConfig(loss="categorical_crossentropy") == TrainConfig(loss="ce")
    assert TrainConfig(loss="ce") != TrainConfig(loss="kl")


def test_configs_are_frozen_and_hashable():
    c = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.epochs = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.optimizer.learning_rate = 1.0  # type: ignore[misc]
    assert hash(c) == hash(TrainConfig())
    assert c.replace(epochs=3).epochs == 3 and c.epochs == 100
    assert hash(c.replace(optimizer=Adam())) == hash(TrainConfig(optimizer=Adam()))
    assert c.replace(optimizer=Adam()) != c
    assert {c, TrainConfig(), c.replace(epochs=3)} == {c, c.replace(epochs=3)}


def test_replace_validates():
    with pytest.raises(ConfigError, match=r"^epochs: expected an integer >= 1, got 0$"):
        TrainConfig().replace(epochs=0)


def _escaped(message: str) -> str:
    for c in "()[]+.":
        message = message.replace(c, "\\" + c)
    return message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs: expected an integer >= 1, got 0"),
        ("batch_size", -1, "batch_size: expected an integer >= 1, got -1"),
        ("loss", "nope", "loss: expected one of 'ce', 'js', 'keras_kl', 'kl', 'reverse_kl' or"),
        ("activation", "gelu", "activation: expected one of 'relu', 'tanh', 'sigmoid', got 'gelu'"),
        ("hidden_init", "normal", "hidden_init: expected one of 'he_uniform', "),
        ("output_init", "zeros", "output_init: expected one of 'he_uniform', "),
        ("hidden", (50, 0), "hidden: expected an integer >= 1, got 0"),
    ],
)
def test_bad_values_name_the_field_the_expectation_and_the_value(field, value, message):
    with pytest.raises(ConfigError, match=r"^" + _escaped(message)) as info:
        TrainConfig(**{field: value})
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 1.5, "epochs: expected an integer >= 1, got 1.5"),
        ("epochs", True, "epochs: expected an integer >= 1, got True"),
        ("hidden", [50], "hidden: expected a tuple of layer widths, got [50]"),
        ("shuffle", 1, "shuffle: expected True or False, got 1"),
        ("optimizer", "sgd", "optimizer: expected a kldiv.optimizers config, got 'sgd'"),
        ("loss", 3, "loss: expected a string, got int"),
    ],
)
def test_bad_types_raise_config_type_error(field, value, message):
    with pytest.raises(ConfigTypeError, match=r"^" + _escaped(message) + "$") as info:
        TrainConfig(**{field: value})
    assert info.value.field == field
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_config_errors_are_value_errors_with_a_field():
    assert issubclass(ConfigError, ValueError) and not issubclass(ConfigError, TypeError)
    assert issubclass(ConfigTypeError, ConfigError) and issubclass(ConfigTypeError, TypeError)
    err = ConfigError("momentum", "expected less")
    assert err.field == "momentum" and str(err) == "momentum: expected less"


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"n_samples": 100, "n_train": 100}, "n_train", "expected fewer than n_samples=100 rows"),
        ({"n_samples": 1}, "n_samples", "expected an integer >= 2, got 1"),
        ({"centers": 1}, "centers", "expected an integer >= 2, got 1"),
        ({"cluster_std": 0.0}, "cluster_std", "expected a number in (0, inf), got 0.0"),
        ({"cluster_std": 1e39}, "cluster_std", "expected a number float32 can hold"),
        ({"random_state": -1}, "random_state", "expected an integer in [0, 4294967295], got -1"),
        ({"random_state": 2**32}, "random_state", "expected an integer in [0, 4294967295]"),
        ({"center_box": (1.0, 1.0)}, "center_box", "expected (low, high) with low < high"),
        ({"center_box": [0.0, 1.0]}, "center_box", "expected (low, high), got [0.0, 1.0]"),
    ],
)
def test_blobs_config_rejects_bad_values_naming_the_field(kwargs, field, message):
    with pytest.raises(ConfigError, match=r"^" + _escaped(f"{field}: {message}")) as info:
        BlobsConfig(**kwargs)
    assert info.value.field == field


@pytest.mark.parametrize("value", [1e-50, 1e39, -1e39, float("inf"), float("nan")])
def test_learning_rates_float32_cannot_hold_are_rejected(value):
    # float32 would train with 0 or inf; the config refuses the value up front
    with pytest.raises(ConfigError, match=r"^learning_rate: ") as info:
        TrainConfig(optimizer=SGD(learning_rate=value))
    assert info.value.field == "learning_rate"


def test_learning_rates_float32_holds_are_accepted():
    for value in (1.2e-38, 1e-10, 1.0, 3.4e38):
        assert SGD(learning_rate=value).learning_rate == value


def test_to_dict_is_json_ready():
    d = to_dict(TrainConfig())
    assert d == {
        "loss": "kl",
        "hidden": [50],
        "activation": "relu",
        "hidden_init": "he_uniform",
        "output_init": "glorot_uniform",
        "epochs": 100,
        "batch_size": 32,
        "shuffle": True,
        "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
        "label_smoothing": 0.0,
        "distillation": None,
        "vae": None,
    }
    assert json.loads(json.dumps(d)) == d
    assert to_dict(BlobsConfig())["center_box"] == [-10.0, 10.0]


def _through_json(d):
    return json.loads(json.dumps(d))


def test_blobs_config_round_trips_through_json():
    for c in (
        BlobsConfig(),
        BlobsConfig(n_samples=60, centers=4, center_box=(-3.0, 2.5), n_train=7),
    ):
        back = BlobsConfig.from_dict(_through_json(to_dict(c)))
        assert back == c and hash(back) == hash(c)
        assert isinstance(back.center_box, tuple)


@pytest.mark.parametrize(
    "optimizer",
    [
        SGD(),
        SGD(learning_rate=0.5, momentum=0.0),
        Adam(learning_rate=0.003, b1=0.8, b2=0.99, eps=1e-7),
        AdamW(weight_decay=0.0),
        AdamW(learning_rate=0.02, weight_decay=0.3),
        RMSProp(decay=0.5, eps=1e-6),
    ],
)
def test_train_config_round_trips_through_json_with_each_optimizer(optimizer):
    c = TrainConfig(
        loss="reverse_kl", hidden=(8, 4), activation="tanh", epochs=3, optimizer=optimizer
    )
    back = TrainConfig.from_dict(_through_json(to_dict(c)))
    assert back == c and hash(back) == hash(c)
    assert type(back.optimizer) is type(optimizer)
    assert isinstance(back.hidden, tuple)


def test_experiment_round_trips_through_json():
    e = Experiment(
        data=DataConfig("digits", seed=7, test_frac=0.3, standardize=True),
        train=TrainConfig(loss="js", hidden=(16,), optimizer=RMSProp(learning_rate=0.01)),
        seeds=(5, 1, 9),
    )
    back = Experiment.from_dict(_through_json(e.to_dict()))
    assert back == e and back.seeds == (5, 1, 9)
    assert Experiment.from_dict(_through_json(Experiment().to_dict())) == Experiment()


def test_from_dict_fills_missing_fields_with_defaults():
    assert TrainConfig.from_dict({"epochs": 3}) == TrainConfig(epochs=3)
    assert BlobsConfig.from_dict({}) == BlobsConfig()
    assert Experiment.from_dict({}) == Experiment()


@pytest.mark.parametrize(
    ("build", "field", "unknown"),
    [
        (
            lambda: TrainConfig.from_dict({"epochs": 3, "learning_rate": 0.1}),
            "train",
            "learning_rate",
        ),
        (lambda: BlobsConfig.from_dict({"seed": 1}), "data", "seed"),
        (lambda: Experiment.from_dict({"train": {"epoch": 3}}), "train", "epoch"),
        (lambda: Experiment.from_dict({"data": {"n_test": 3}}), "data", "n_test"),
    ],
)
def test_from_dict_rejects_unknown_fields(build, field, unknown):
    with pytest.raises(
        ConfigError, match=rf"^{field}: expected fields among .*got '{unknown}'$"
    ) as info:
        build()
    assert info.value.field == field


def test_from_dict_rejects_unknown_optimizer_fields_and_names():
    with pytest.raises(ConfigError, match=r"^momentum: not a hyperparameter of adam") as info:
        TrainConfig.from_dict({"optimizer": {"name": "adam", "momentum": 0.5}})
    assert info.value.field == "momentum"
    with pytest.raises(ConfigError, match=r"^optimizer: expected one of sgd, adam, adamw, rmsprop"):
        TrainConfig.from_dict({"optimizer": {"name": "lion"}})
    with pytest.raises(ConfigError, match=r"^optimizer: expected a mapping with a 'name'"):
        TrainConfig.from_dict({"optimizer": {"learning_rate": 0.1}})
    with pytest.raises(ConfigTypeError, match=r"^train: expected a mapping of fields"):
        TrainConfig.from_dict([("epochs", 3)])  # type: ignore[arg-type]


def test_from_dict_validates_values():
    with pytest.raises(ConfigError, match=r"^learning_rate: expected a number float32 can hold"):
        TrainConfig.from_dict({"optimizer": {"name": "sgd", "learning_rate": 1e-50}})
    with pytest.raises(ConfigError, match=r"^epochs: "):
        Experiment.from_dict({"train": {"epochs": -1}})


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ((), "expected a non-empty tuple"),
        ([0, 1], "expected a non-empty tuple"),
        ((0, -1), "expected a non-empty tuple"),
        ((2**32,), "expected a non-empty tuple"),
        ((True,), "expected a non-empty tuple"),
        ((1, 1), "expected distinct seeds"),
    ],
)
def test_experiment_rejects_bad_seeds(seeds, message):
    with pytest.raises(ConfigError, match=rf"^seeds: {message}") as info:
        Experiment(seeds=seeds)
    assert info.value.field == "seeds"
    assert Experiment(seeds=(0, 2**32 - 1)).seeds == (0, 2**32 - 1)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "0.1", True])
def test_label_smoothing_is_a_share_below_one(value):
    with pytest.raises(ConfigError, match=r"^label_smoothing: expected"):
        TrainConfig(label_smoothing=value)


def test_records_without_label_smoothing_load_with_none():
    d = to_dict(TrainConfig())
    del d["label_smoothing"]
    assert TrainConfig.from_dict(d).label_smoothing == 0.0


def test_distillation_defaults_and_formula():
    d = Distillation()
    assert (d.temperature, d.soft_weight, d.direction, d.beta) == (4.0, 0.9, "forward", None)
    assert d.formula.startswith("0.9 · T² · KL(p_T ‖ q_T) + 0.1 · h · CE(y, q), T = 4")
    jsd = Distillation(direction="jsd", beta=0.25, soft_weight=0.5, temperature=2.0)
    assert "JSD_β(p_T ‖ q_T) / (β(1 − β)), β = 0.25" in jsd.formula


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"temperature": 0.0}, "temperature", r"expected a number in \(0, inf\), got 0.0"),
        ({"temperature": -1.0}, "temperature", r"expected a number in \(0, inf\), got -1.0"),
        ({"temperature": float("inf")}, "temperature", r"expected a number in \(0, inf\)"),
        ({"soft_weight": -0.1}, "soft_weight", r"expected a number in \[0, 1\], got -0.1"),
        ({"soft_weight": 1.5}, "soft_weight", r"expected a number in \[0, 1\], got 1.5"),
        ({"direction": "sideways"}, "direction", r"expected one of 'forward', 'reverse', 'jsd'"),
        ({"direction": "jsd"}, "beta", r"expected a number in \[0, 1\] with direction 'jsd'"),
        ({"direction": "jsd", "beta": 1.5}, "beta", r"expected a number in \[0, 1\], got 1.5"),
        ({"direction": "jsd", "beta": -0.5}, "beta", r"expected a number in \[0, 1\]"),
        ({"beta": 0.5}, "beta", r"expected no beta with direction 'forward'"),
    ],
)
def test_distillation_rejects_bad_values_naming_the_field(kwargs, field, message):
    with pytest.raises(ConfigError, match=message) as info:
        Distillation(**kwargs)
    assert info.value.field == field


def test_distillation_refuses_label_smoothing_and_full_support_hard_losses():
    with pytest.raises(ConfigError, match=r"^label_smoothing: expected 0 with distillation"):
        TrainConfig(label_smoothing=0.1, distillation=Distillation())
    with pytest.raises(ConfigError, match=r"^loss: expected a hard-label loss that is finite"):
        TrainConfig(loss="reverse_kl", distillation=Distillation())
    with pytest.raises(ConfigTypeError, match=r"^distillation: expected a Distillation config"):
        TrainConfig(distillation={"temperature": 2.0})


@pytest.mark.parametrize(
    "distillation",
    [Distillation(), Distillation(2.0, 0.0, "reverse"), Distillation(1.5, 1.0, "jsd", 0.3)],
)
def test_train_config_with_distillation_round_trips_through_json(distillation):
    c = TrainConfig(loss="ce", hidden=(16,), distillation=distillation)
    back = TrainConfig.from_dict(_through_json(to_dict(c)))
    assert back == c and hash(back) == hash(c)
    assert isinstance(back.distillation, Distillation)
