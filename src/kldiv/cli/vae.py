"""`kldiv vae`: a variational autoencoder on the data (default: the digits, binarised), one seed
or many in one compiled program; reports the -ELBO, its reconstruction and KL terms, the KL per
latent dimension, active dimensions and collapsed runs, and the KL weight the loss's reductions
imply (the effective beta).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from kldiv.cli import guard, options

TRAVERSE_STEPS = 9
REDUCED = {"sum": "summed", "mean": "averaged"}
# Folded into the seed for the figure's draws from the prior, apart from training's keys.
PRIOR_SAMPLES_STREAM = 0x5A3


def _parse_binarize(text: str) -> float | str:
    return text if text in ("none", "auto") else options.parse_float(text)


def binarize_threshold(value: float | str, decoder: str) -> float | None:
    """--binarize: a threshold, "none", or "auto" (0.5 for a Bernoulli decoder, none for a
    Gaussian one)."""
    if value == "auto":
        return 0.5 if decoder == "bernoulli" else None
    return None if value == "none" else float(value)


def add_parser(sub: Any) -> None:
    from kldiv.config import DECODERS, REDUCTIONS, VAEConfig
    from kldiv.optimizers import Adam

    v = VAEConfig()
    p = sub.add_parser(
        "vae",
        help="train a variational autoencoder and report its ELBO, KL per latent dimension and "
        "collapse",
        description="Train a VAE (encoder and decoder MLPs, a diagonal Gaussian posterior, the "
        "reparameterisation trick with per-step keys) on the data's features scaled to [0, 1] "
        "by the training rows' range. Per example the loss is R + w * K, R the reconstruction's "
        "negative log-likelihood summed over the values, K the KL of the posterior from N(0, I) "
        "summed over the latent dimensions, w = --beta (ramped from 0 over --warmup epochs). "
        "Reports test -ELBO = R + K in nats, the KL per dimension, active dimensions, collapsed "
        "runs and an importance-weighted bound; writes a run directory (history, metrics, "
        "model, figures).",
    )
    options.add_seed_options(
        p, "training seed: init, shuffles and latent samples (default 0), in [0, 2**32)"
    )
    g = p.add_argument_group("the VAE")
    g.add_argument(
        "--latent", type=options.parse_int, default=v.latent, help=f"latent dims ({v.latent})"
    )
    g.add_argument(
        "--beta",
        type=options.parse_float,
        default=v.beta,
        help=f"KL weight ({v.beta:g}: the ELBO; above 1 a beta-VAE)",
    )
    g.add_argument(
        "--warmup",
        type=options.parse_int,
        default=v.warmup,
        help="epochs over which the KL weight rises linearly from 0 to --beta (0: none)",
    )
    g.add_argument(
        "--free-bits",
        type=options.parse_float,
        default=v.free_bits,
        help="nats per latent dimension and example below which its KL is not pushed down (0)",
    )
    g.add_argument(
        "--decoder",
        choices=DECODERS,
        default=v.decoder,
        help="bernoulli (values in [0, 1]) or gaussian (a mean and a variance per value)",
    )
    g.add_argument(
        "--binarize",
        type=_parse_binarize,
        default="auto",
        help="threshold on the scaled values: 1 at or above, 0 below; none; or auto (0.5 for "
        "the bernoulli decoder, none for the gaussian)",
    )
    for term, what in (("reconstruction", "values"), ("kl", "latent dimensions")):
        g.add_argument(
            f"--{term}",
            choices=REDUCTIONS,
            default="sum",
            help=f"reduce the {term} over the {what}: sum (the ELBO) or mean, to reproduce a "
            "loss that averages it (the effective beta shows what that does)",
        )
    g.add_argument(
        "--iwae",
        type=options.parse_int,
        default=100,
        help="samples of the importance-weighted bound on the test set (100; 0: skip)",
    )
    options.add_data_options(p)
    options.add_training_options(
        p,
        defaults={"hidden": (128,), "epochs": 300, "batch_size": 64, "optimizer": Adam()},
        label_smoothing=False,
    )
    options.add_output_options(p)
    p.set_defaults(data="digits")


def _experiment(args: argparse.Namespace) -> Any:
    from kldiv.config import TrainConfig, VAEConfig
    from kldiv.experiment import Experiment

    vae = VAEConfig(
        latent=args.latent,
        beta=args.beta,
        warmup=args.warmup,
        free_bits=args.free_bits,
        decoder=args.decoder,
        reconstruction=args.reconstruction,
        kl=args.kl,
    )
    train = TrainConfig(
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=options.optimizer(args),
        vae=vae,
    )
    return Experiment(data=options.data_config(args), train=train, seeds=options.seeds_of(args))


def header_line(exp: Any, model: Any, scaling: Any) -> str:
    """The network, the data and the loss with its effective beta."""
    vae = exp.train.vae
    p = model.n_inputs
    enc = "-".join(map(str, model.encoder.sizes[:-1]))
    dec = "-".join(map(str, model.decoder.sizes[1:]))
    values = (
        f"{p} binarised values" if scaling.binarize is not None else f"{p} values scaled to [0, 1]"
    )
    schedule = (f", warm-up over {vae.warmup} epochs" if vae.warmup else "") + (
        f", free bits {vae.free_bits:g} nats" if vae.free_bits else ""
    )
    return (
        f"VAE {enc}-({vae.latent})-{dec}, {vae.decoder} decoder on {values}; loss: "
        f"reconstruction {REDUCED[vae.reconstruction]} + {vae.beta:g} x KL "
        f"{REDUCED[vae.kl]}{schedule}: effective beta {vae.effective_beta(p):g}"
    )


def _mean_sd(values: np.ndarray) -> str:
    values = np.asarray(values, np.float64)
    if values.size == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def summary_lines(
    final: dict[str, np.ndarray], summary: Any, iwae: np.ndarray | None, latent: int
) -> list[str]:
    """Test -ELBO = reconstruction + KL, the bound, the KL per dimension, active dimensions and
    collapsed runs (means ± SD over the given runs)."""
    from kldiv.vae import ACTIVE_THRESHOLD

    n = summary.kl.shape[0]
    over = "" if n == 1 else f" (mean ± SD over {n} runs)"
    lines = [
        f"Test -ELBO: {_mean_sd(final['test_neg_elbo'])} nats (reconstruction "
        f"{_mean_sd(final['test_reconstruction'])} + KL {_mean_sd(final['test_kl'])}){over}"
    ]
    if iwae is not None:
        lines.append(f"Test importance-weighted bound: {_mean_sd(iwae)} nats")
    ordered = np.sort(summary.kl, axis=1)[:, ::-1].mean(axis=0)
    sorted_note = "" if n == 1 else ", largest first in each run, mean over runs"
    lines.append(f"KL per dimension (nats{sorted_note}): " + " ".join(f"{k:.2f}" for k in ordered))
    by_kl, by_var = summary.active_by_kl, summary.active_by_variance

    def count(a: np.ndarray) -> str:
        return f"{int(a[0])}" if n == 1 else f"median {np.median(a):g} (range {a.min()}-{a.max()})"

    lines.append(
        f"Active dimensions of {latent}: {count(by_kl)} by KL > {ACTIVE_THRESHOLD:g} nats, "
        f"{count(by_var)} by variance of the posterior mean > {ACTIVE_THRESHOLD:g}"
    )
    lines.append(f"Collapsed runs (no active dimension): {int(summary.collapsed.sum())} of {n}")
    return lines


def seeds_table(
    seeds: np.ndarray, final: dict[str, np.ndarray], summary: Any, iwae: np.ndarray | None
) -> Any:
    """Per seed: the test -ELBO, its terms, the bound, active dimensions and collapse."""
    from kldiv.report import Table

    rows = []
    for i, seed in enumerate(seeds):
        rows.append(
            (
                str(int(seed)),
                *(f"{final[f'test_{m}'][i]:.3f}" for m in ("neg_elbo", "reconstruction", "kl")),
                "" if iwae is None else f"{iwae[i]:.3f}",
                str(int(summary.active_by_kl[i])),
                str(int(summary.active_by_variance[i])),
                "yes" if summary.collapsed[i] else "no",
            )
        )
    columns = ("seed", "-ELBO", "reconstruction", "KL", "bound", "active (KL)", "active (var)")
    return Table(
        "Test set, nats per example",
        (*columns, "collapsed"),
        tuple(rows),
        notes=("bound: the importance-weighted bound on -log p(x)",),
        label_columns=1,
    )


def _figures(result: Any, run: Any, data: Any, title: str, healthy: np.ndarray) -> dict:
    """PNG bytes by file name: curves.png, and images.png for square images (first healthy run)."""
    import jax
    import jax.numpy as jnp

    from kldiv.plot import figure_png
    from kldiv.vae_plot import curves_figure, image_side, images_figure

    history = {k: v[healthy] for k, v in result.history.items()}
    i = int(np.flatnonzero(healthy)[0])
    seed = int(result.seeds[i])
    curves = curves_figure(history, run.objective.latent, title, 0, seed)
    pngs = {"curves.png": figure_png(curves)}
    side = image_side(run.model.n_inputs)
    if side is None or run.objective.decoder != "bernoulli":
        return pngs
    params = jax.tree.map(lambda a: jnp.asarray(a[i]), result.params)
    model, latent = run.model, run.objective.latent

    def decoded(z: Any) -> np.ndarray:
        return np.asarray(jax.nn.sigmoid(model.decode(params, jnp.asarray(z, jnp.float32))))

    originals = data.x_val[:12]
    mean, _ = model.encode(params, jnp.asarray(originals))
    key = jax.random.fold_in(jax.random.key(seed), PRIOR_SAMPLES_STREAM)
    samples = decoded(jax.random.normal(key, (12, latent)))
    kl = np.asarray([result.final[f"test_kl_{j}"][i] for j in range(latent)])
    traversed = tuple(int(j) for j in np.argsort(-kl)[: min(3, latent)])
    steps = np.linspace(-3.0, 3.0, TRAVERSE_STEPS)
    traversal = np.stack([decoded(np.outer(steps, np.eye(latent)[j])) for j in traversed])
    fig = images_figure(
        originals,
        decoded(mean),
        samples,
        traversal,
        traversed,
        side,
        f"{title}, seed {int(result.seeds[i])}",
    )
    return pngs | {"images.png": figure_png(fig)}


def command(args: argparse.Namespace, console: Any) -> int:
    import jax

    from kldiv import experiment as ex
    from kldiv.checks import ConfigError
    from kldiv.cli.run import divergence_line
    from kldiv.engine import train
    from kldiv.engine.run import Run
    from kldiv.records import save_run
    from kldiv.report import html_report
    from kldiv.vae import importance_weighted_bound, latent_summary, prepare, vae_record

    exp = _experiment(args)
    if args.iwae < 0:
        raise ConfigError("iwae", f"expected a number of samples >= 0, got {args.iwae}")
    loaded = ex.load(exp)
    dataset, scaling = prepare(loaded, binarize_threshold(args.binarize, args.decoder))
    run = Run.for_data(exp.train, dataset)
    header = header_line(exp, run.model, scaling)
    guard.prepare_out(args.out)
    seeds = exp.seeds
    with console.progress(f"training {len(seeds)} VAE(s)") as progress:
        result = train(
            exp.train,
            dataset,
            seeds,
            epoch_chunk=None if len(seeds) > 1 else 30,
            on_progress=guard.checking(progress),
        )
    healthy = result.healthy
    if not healthy.any():
        raise guard.RunFailed(
            "training diverged in every run (non-finite loss or weights); try a smaller "
            "learning rate"
        )
    pick = {k: v[healthy] for k, v in result.final.items()}
    params = jax.tree.map(lambda a: a[healthy], result.params)
    summary = latent_summary(run.model, params, pick, dataset.x_val)
    iwae = None
    if args.iwae:
        iwae = importance_weighted_bound(
            run.model,
            run.objective,
            params,
            result.seeds[healthy],
            dataset.x_val,
            dataset.y_val,
            args.iwae,
        )
    title = f"VAE, latent {exp.train.vae.latent}, beta {exp.train.vae.beta:g}"
    pngs = {} if args.no_plot else _figures(result, run, dataset, title, healthy)
    beta_eff = exp.train.vae.effective_beta(run.model.n_inputs)
    latent_json = {
        "seeds": [int(s) for s in result.seeds[healthy]],
        "kl_per_dimension": summary.kl.tolist(),
        "active_by_kl": summary.active_by_kl.tolist(),
        "active_by_variance": summary.active_by_variance.tolist(),
        "collapsed": summary.collapsed.tolist(),
        "importance_weighted_bound": None if iwae is None else iwae.tolist(),
        "importance_samples": args.iwae,
        "effective_beta": beta_eff,
    }
    lines = [header, *summary_lines(pick, summary, iwae, exp.train.vae.latent)]
    page = html_report(
        title=title,
        command=guard.command_line(),
        config=exp.to_dict(),
        figures={name.removesuffix(".png"): png for name, png in pngs.items()},
        summary="\n\n".join(lines),
        tables=[seeds_table(result.seeds[healthy], pick, summary, iwae)],
    )
    files = pngs | {
        "latent.json": (json.dumps(latent_json, indent=2) + "\n").encode(),
        "report.html": page.encode(),
    }
    path = guard.save(
        args.out,
        save_run,
        exp,
        result,
        data=loaded,
        command=guard.command_line(),
        extra={"scaling": scaling.to_dict()},
        model=vae_record(run.model, run.objective, scaling, loaded, seeds),
        files=files,
        kind="vae",
    )
    if not healthy.all():
        guard.stderr(f"kldiv vae: warning: {divergence_line(result)}")
    vae = exp.train.vae
    if beta_eff != vae.beta:
        guard.stderr(
            f"kldiv vae: warning: with the reconstruction {REDUCED[vae.reconstruction]} and the "
            f"KL {REDUCED[vae.kl]}, the KL weighs {beta_eff:g} times the reconstruction, not "
            f"{vae.beta:g} (the effective beta)"
        )
    if summary.collapsed.any():
        guard.stderr(
            f"kldiv vae: warning: {int(summary.collapsed.sum())} of {summary.collapsed.size} "
            "runs collapsed: no latent dimension carries information, the decoder ignores the code"
        )
    for line in lines:
        console.result(line)
    console.info(f"run saved to {path}")
    return 0
