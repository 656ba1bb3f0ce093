"""`kldiv vae` through the CLI: the report, the run directory and its model read back, the
effective beta of deliberately wrong reductions, and bad input as one line with nothing written."""

import json

import jax
import numpy as np
import pytest

from kldiv.records import load_model
from kldiv.vae import load_vae

FAST = ["--epochs", "3", "--hidden", "16", "--latent", "2", "--iwae", "20"]


def _only_dir(root):
    (path,) = root.iterdir()
    return path


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    from kldiv.cli import main

    root = tmp_path_factory.mktemp("vae")
    assert main(["vae", *FAST, "--seeds", "3", "--out", str(root), "--quiet"]) == 0
    return _only_dir(root)


def test_report_names_the_bound_its_terms_and_the_latent_code(cli, tmp_path):
    code, out, err = cli(["vae", *FAST, "--seed", "4", "--quiet", "--out", str(tmp_path)])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("VAE 64-16-(2)-16-64, bernoulli decoder on 64 binarised values")
    assert lines[0].endswith("effective beta 1")
    assert lines[1].startswith("Test -ELBO: ") and "(reconstruction " in lines[1]
    assert lines[2].startswith("Test importance-weighted bound: ")
    assert lines[3].startswith("KL per dimension (nats): ")
    assert lines[4].startswith("Active dimensions of 2: ")
    assert lines[5].startswith("Collapsed runs (no active dimension): ") and "of 1" in lines[5]
    path = _only_dir(tmp_path)
    metrics = json.loads((path / "metrics.json").read_text())
    neg_elbo = metrics["test_neg_elbo"][0]
    assert f"{neg_elbo:.2f}" in lines[1]
    # the printed terms add up: -ELBO = reconstruction + KL, and KL = sum of its dimensions
    np.testing.assert_allclose(
        neg_elbo, metrics["test_reconstruction"][0] + metrics["test_kl"][0], rtol=1e-5
    )
    np.testing.assert_allclose(
        metrics["test_kl"][0], metrics["test_kl_0"][0] + metrics["test_kl_1"][0], rtol=1e-5
    )
    names = {p.name for p in path.iterdir()}
    assert {"curves.png", "images.png", "latent.json", "model.safetensors", "report.html"} <= names
    page = (path / "report.html").read_text()
    assert lines[1] in page and "Per seed" in page and "data:image/png;base64," in page
    assert path.name.endswith("-vae")


def test_saved_model_encodes_and_decodes_as_trained(vae_dir):
    from kldiv.data import DataConfig, load_data
    from kldiv.vae import prepare

    saved = load_vae(vae_dir)
    assert saved.seeds == (0, 1, 2) and saved.model.latent == 2
    loaded = load_data(DataConfig("digits"))
    raw = loaded.dataset.x_val[:5]
    mean, log_var = saved.encode(raw)
    assert mean.shape == log_var.shape == (3, 5, 2)
    data, _ = prepare(loaded, 0.5)
    expected = saved.model.encode(jax.tree.map(lambda a: a[1], saved.params), data.x_val[:5])
    np.testing.assert_allclose(mean[1], expected[0], rtol=1e-5, atol=1e-6)
    probs = saved.decode(mean[0])
    assert probs.shape == (3, 5, 64) and (probs >= 0).all() and (probs <= 1).all()
    latent = json.loads((vae_dir / "latent.json").read_text())
    assert latent["seeds"] == [0, 1, 2] and len(latent["importance_weighted_bound"]) == 3
    with pytest.raises(ValueError, match="expected a classifier, got a VAE"):
        load_model(vae_dir)


def test_predict_encodes_with_one_seed(cli, vae_dir, tmp_path):
    import csv

    from kldiv.data.digits import FEATURE_NAMES, load_digits

    x = load_digits()[0][:7]
    data = tmp_path / "rows.csv"
    lines = [",".join(FEATURE_NAMES)] + [",".join(str(int(v)) for v in row) for row in x]
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "z.csv"
    args = ["predict", "--run", str(vae_dir), "--data", str(data)]
    code, _, err = cli([*args, "--seed", "2", "--out", str(out), "--quiet"])
    assert code == 0, err
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["z_mean_0", "z_mean_1", "z_log_variance_0", "z_log_variance_1"]
    values = np.array(rows[1:], dtype=np.float64)
    mean, log_var = load_vae(vae_dir).encode(x)
    np.testing.assert_array_equal(values, np.concatenate([mean[2], log_var[2]], axis=1))
    code, out_text, err = cli([*args, "--ensemble"])
    assert code == 2 and out_text == "" and err.count("\n") == 1
    assert "--ensemble: expected --seed S for a VAE" in err


def test_averaged_reconstruction_states_its_effective_beta(cli, tmp_path):
    code, out, err = cli(
        ["vae", *FAST, "--reconstruction", "mean", "--no-plot", "--quiet", "--out", str(tmp_path)]
    )
    assert code == 0
    assert "effective beta 64" in out.splitlines()[0]
    assert "the KL weighs 64 times the reconstruction, not 1" in err


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--latent", "0"], "--latent"),
        (["--beta", "0"], "--beta"),
        (["--free-bits", "-1"], "--free-bits"),
        (["--warmup", "-2"], "--warmup"),
        (["--binarize", "1.5"], "--binarize"),
        (["--iwae", "-1"], "--iwae"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, args, flag):
    code, out, err = cli(["vae", *FAST, *args, "--out", str(tmp_path / "runs")])
    assert out == ""
    assert code == 2, err
    assert err.count("\n") == 1 and flag in err, err
    assert not (tmp_path / "runs").exists()


def test_gaussian_decoder_on_real_values(cli, tmp_path):
    code, out, err = cli(["vae", *FAST, "--decoder", "gaussian", "--out", str(tmp_path)])
    assert code == 0, err
    assert "gaussian decoder on 64 values scaled to [0, 1]" in out
    path = _only_dir(tmp_path)
    assert (path / "curves.png").exists() and not (path / "images.png").exists()
    saved = load_vae(path)
    assert saved.model.n_outputs == 128 and saved.decoder == "gaussian"
    assert saved.decode(np.zeros((2, 2))).shape == (1, 2, 64)
