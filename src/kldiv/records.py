"""Run records: the directories a command leaves behind, written atomically, and read back.

A run directory (`kldiv run`) holds
  config.json        the experiment (data, training, seeds), the command, the data files read
                     (path, size, sha256, rows per split), the training path
  environment.json   Python, platform, package versions, JAX devices
  history.json/.csv  per-epoch values of the objective's history keys (Keras' names)
  metrics.json       final metrics per seed, their means over healthy runs, diverged runs
  model.safetensors  the weights (a leading run axis when several seeds ran); as metadata the
                     experiment and what predicting needs (`model_record`: network, input and
                     class names, standardization, seeds), read back by `load_model`
  plot.png           loss (top) and accuracy (bottom), train and test
A comparison directory (`kldiv compare`, `kldiv stats`) holds config.json, environment.json,
stats.json, a history and metrics per arm (compare), the figures and report.html.

Every directory is assembled in a hidden staging directory beside its final place and renamed into
place only when every file is written, so an interrupted or failed save leaves no partial directory
and never overwrites an earlier run. Models are safetensors (no pickle). Nothing here computes
statistics or draws: callers pass what to write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from kldiv.data import LoadedData, Standardizer
from kldiv.engine.run import Run
from kldiv.engine.runner import TrainResult
from kldiv.experiment import Experiment
from kldiv.model import MLP, Params

PACKAGES = ("kldiv", "jax", "jaxlib", "optax", "numpy", "scipy", "matplotlib", "safetensors")


# --------------------------------------------------------------------------------------------------
# Files and directories


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes | str | Iterable[str]) -> None:
    """Write `data` (bytes, text, or text in pieces) to `path` through a temporary file and a
    rename; refuses to replace a file."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: expected a new file, but it already exists")
    pieces = [data] if isinstance(data, (bytes, str)) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in pieces:
                f.write(piece.encode() if isinstance(piece, str) else piece)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's private 0600 -> the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """`obj` as indented JSON, atomically."""
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=False, allow_nan=False) + "\n")


class RunDir:
    """A new run directory, assembled in a hidden staging directory and renamed into place on success.

    Use as a context manager: write files under `run.staging`; when the block ends without an
    exception the directory becomes `root/<timestamp>-<name>` (with `-1`, `-2`, ... if that name is
    taken) and `run.path` holds it. On any exception (Ctrl-C and signals turned into exceptions
    included), also one raised while the directory is being renamed into place, the staging
    directory is removed and nothing is left under `root`.

    The staging directory is `root/.<name>-<pid>-<random>.partial`, named after the process that
    writes it: entering a RunDir removes the staging directories of processes that no longer exist
    (killed with SIGKILL, say), never those of a live process, so concurrent runs into one `root`
    work. A process id reused by an unrelated live process keeps its stale directory (harmless).
    """

    def __init__(self, root: Path, name: str) -> None:
        self.root = Path(root)
        self.name = name
        self.staging = Path()
        self.path: Path | None = None

    def __enter__(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(self.root)
        self.staging = self.root / f".{self.name}-{os.getpid()}-{os.urandom(4).hex()}.partial"
        try:
            self.staging.mkdir(mode=0o700)
        except BaseException:
            shutil.rmtree(self.staging, ignore_errors=True)
            raise
        return self

    def __exit__(self, exc_type: type | None, *_: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        final: Path | None = None
        moved = False
        try:
            for k in range(1000):
                name = self.root / (f"{stamp}-{self.name}" + (f"-{k}" if k else ""))
                try:
                    name.mkdir()  # claims the name; fails if any earlier run holds it
                except FileExistsError:
                    continue
                final = name
                os.chmod(self.staging, 0o777 & ~_umask())  # private 0700 -> the usual mode
                os.replace(self.staging, final)  # rename onto the empty directory just claimed
                moved = True
                self.path = final
                return
            raise FileExistsError(f"could not find a free run directory name under {self.root}")
        except BaseException:
            # interrupted or failed while moving into place: leave nothing, not even a name
            self.path = None
            if final is not None and (moved or not self.staging.exists()):
                shutil.rmtree(final, ignore_errors=True)  # renamed already: take it back
            elif final is not None:
                with contextlib.suppress(OSError):
                    final.rmdir()
            shutil.rmtree(self.staging, ignore_errors=True)
            raise


_STAGING = re.compile(r"^\.(run|compare|stats|sweep|summary|distill)-(\d+)-[0-9a-f]+\.partial$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or a number that is not ours to judge
    return True


def remove_stale_staging(root: Path) -> list[Path]:
    """Remove the staging directories under `root` whose process no longer exists; return them."""
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _STAGING.match(entry.name)
        if match and not _alive(int(match.group(2))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def environment() -> dict[str, Any]:
    """Python, platform, package versions and JAX devices, for the run record."""
    import jax

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "argv": sys.argv,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------------------
# Weights


def params_tensors(params: Params) -> dict[str, np.ndarray]:
    """Flat safetensors names: `layers.{i}.kernel` (.., fan_in, fan_out) and `layers.{i}.bias`."""
    tensors = {}
    for i, (w, b) in enumerate(params):
        tensors[f"layers.{i}.kernel"] = np.ascontiguousarray(w, np.float32)
        tensors[f"layers.{i}.bias"] = np.ascontiguousarray(b, np.float32)
    return tensors


def save_params(path: Path, params: Params, metadata_: Mapping[str, str] | None = None) -> None:
    """Save a model (or a stack of models with a leading run axis) as safetensors, atomically."""
    from safetensors.numpy import save

    write_atomic(path, save(params_tensors(params), metadata=dict(metadata_ or {})))


def load_params(path: Path) -> Params:
    """Inverse of `save_params`: a tuple of (kernel, bias) numpy arrays."""
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    n = len(tensors) // 2
    try:
        return tuple((tensors[f"layers.{i}.kernel"], tensors[f"layers.{i}.bias"]) for i in range(n))
    except KeyError as err:
        raise ValueError(f"{path}: expected kldiv layer tensors, missing {err}") from None


# --------------------------------------------------------------------------------------------------
# Histories: Keras' key names, JSON and CSV


def _as_runs(history: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every key as a (runs, epochs) float64 array."""
    return {k: np.atleast_2d(np.asarray(v, np.float64)) for k, v in history.items()}


def history_json(history: Mapping[str, np.ndarray], seeds: Sequence[int]) -> str:
    """JSON text: {"seeds": [...], "epochs": E, "loss": [...] or [[...], ...], ...}.

    With one seed each key holds a flat list (exactly Keras' `History.history`); with several, one list
    per seed in the order of `seeds`. Non-finite values become null. The text is what
    `json.dumps(doc, indent=1)` gives; `history_json_parts` yields it a run at a time.
    """
    return "".join(history_json_parts(history, seeds))


def _json_list(values: list[Any], depth: int) -> str:
    """json.dumps(values, indent=1) for a flat list of numbers and None, as it reads `depth` levels
    into the document: json writes floats with float.__repr__ and None as null, so the list's own
    repr (C speed; floats never contain "None") gives the items."""
    if not values:
        return "[]"
    pad = "\n" + " " * (depth + 1)
    items = repr(values)[1:-1].replace(", ", "," + pad).replace("None", "null")
    return "[" + pad + items + "\n" + " " * depth + "]"


def _json_row(row: np.ndarray) -> list[float | None]:
    values = row.tolist()  # float64 -> the same Python floats as float(v), at C speed
    return values if np.isfinite(row).all() else [_finite_or_none(v) for v in values]


def history_json_parts(history: Mapping[str, np.ndarray], seeds: Sequence[int]) -> Iterator[str]:
    """`history_json`'s text in pieces of one run: 10,000 seeds x 100 epochs are never held as
    4 million Python floats at once (that took 0.6 GB and 7 s), nor as one 90 MB string."""
    runs = _as_runs(history)
    single = len(seeds) == 1
    epochs = next(iter(runs.values())).shape[1]
    yield "{\n" + f' "seeds": {_json_list([int(s) for s in seeds], 1)},\n "epochs": {epochs}'
    for key, values in runs.items():
        yield f",\n {json.dumps(key)}: "
        if single:
            yield _json_list(_json_row(values[0]), 1)
            continue
        for i, row in enumerate(values):
            yield ("[\n  " if i == 0 else ",\n  ") + _json_list(_json_row(row), 2)
        yield "\n ]"
    yield "\n}\n"


def history_csv(history: Mapping[str, np.ndarray], seeds: Sequence[int]) -> str:
    """CSV text with header `seed,epoch,<history keys>`, one row per run and epoch (from 0);
    values as float.__repr__ writes them (nan and inf included)."""
    return "".join(history_csv_parts(history, seeds))


def history_csv_parts(history: Mapping[str, np.ndarray], seeds: Sequence[int]) -> Iterator[str]:
    """`history_csv`'s text in pieces of one run."""
    runs = _as_runs(history)
    keys = list(runs)
    yield ",".join(("seed", "epoch", *keys)) + "\n"
    for r, seed in enumerate(seeds):
        rows = np.stack([runs[k][r] for k in keys], axis=1).tolist()  # (epochs, keys)
        # a list's repr writes its floats with float.__repr__, at C speed
        yield "".join(
            f"{int(seed)},{e},{repr(row)[1:-1].replace(', ', ',')}\n" for e, row in enumerate(rows)
        )


def load_history_json(text: str) -> tuple[dict[str, np.ndarray], list[int]]:
    """Inverse of `history_json`: arrays shaped (runs, epochs) and the seeds."""
    doc = json.loads(text)
    seeds = [int(s) for s in doc["seeds"]]
    history = {}
    for key, values in doc.items():
        if key in ("seeds", "epochs"):
            continue
        history[key] = np.array(values, dtype=np.float64).reshape(len(seeds), -1)  # null -> nan
    return history, seeds


# --------------------------------------------------------------------------------------------------
# Run and comparison directories


def _record(
    experiment: Experiment, command: str, result: TrainResult, data: LoadedData
) -> dict[str, Any]:
    # The generic path's bits depend on its chunk size, the lanes path's on nothing else.
    training = {"path": result.path, "chunk": result.chunk}
    return {
        "command": command,
        **experiment.to_dict(),
        "data_files": data.fingerprint,
        "training": training,
    }


def model_record(experiment: Experiment, data: LoadedData) -> dict[str, Any]:
    """Everything `kldiv predict` needs besides the weights: the network, the input columns, the
    classes, the standardization, the seeds (one per run axis entry)."""
    model = Run.of(experiment.train, len(data.feature_names), data.n_classes).model
    return {
        "sizes": list(model.sizes),
        "activation": model.activation,
        "hidden_init": model.hidden_init,
        "output_init": model.output_init,
        "feature_names": list(data.feature_names),
        "class_names": list(data.class_names),
        "standardizer": None if data.standardizer is None else data.standardizer.to_dict(),
        "seeds": list(experiment.seeds),
    }


def metrics_record(result: TrainResult) -> dict[str, Any]:
    """Final metrics per seed, their means over the healthy runs, and the diverged runs."""
    healthy = result.healthy
    return {
        "seeds": [int(s) for s in result.seeds],
        **{k: [_finite_or_none(v) for v in values] for k, values in result.final.items()},
        "mean": {
            k: float(np.mean(v[healthy], dtype=np.float64)) if healthy.any() else None
            for k, v in result.final.items()
        },
        "diverged": [
            {"seed": int(s), "epoch": int(e)}
            for s, e in zip(result.seeds, result.diverged, strict=True)
            if e
        ],
    }


def _finite_or_none(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def save_run(
    root: Path,
    experiment: Experiment,
    result: TrainResult,
    *,
    data: LoadedData,
    command: str,
    figure_png: bytes | Callable[[], bytes] | None = None,
    extra: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    kind: str = "run",
) -> Path:
    """Write a new run directory `{kind}-...` under `root` and return its path (`data`: what it
    trained on, for the data fingerprint and the model's input and class names; `figure_png`: the
    PNG's bytes, or a function giving them, called once the other files are written, so a figure
    drawn by another process overlaps the writing; `extra`: more of
    config.json, such as a distilled student's teacher; `model`: the `kldiv_model` record, default
    `model_record`'s classifier; `files`: more files by name, such as figures)."""
    single = result.seeds.size == 1
    seeds = [int(s) for s in result.seeds]
    params = tuple((w[0], b[0]) for w, b in result.params) if single else result.params
    record = model_record(experiment, data) if model is None else dict(model)
    with RunDir(root, kind) as run:
        d = run.staging
        write_json(
            d / "config.json", _record(experiment, command, result, data) | dict(extra or {})
        )
        write_json(d / "environment.json", environment())
        write_atomic(d / "history.json", history_json_parts(result.history, seeds))
        write_atomic(d / "history.csv", history_csv_parts(result.history, seeds))
        write_json(d / "metrics.json", metrics_record(result))
        save_params(
            d / "model.safetensors",
            params,
            {
                "kldiv_config": json.dumps(experiment.to_dict()),
                "kldiv_model": json.dumps(record),
                "run_axis": str(not single),
            },
        )
        if figure_png is not None:
            write_atomic(d / "plot.png", figure_png() if callable(figure_png) else figure_png)
        for name, content in (files or {}).items():
            write_atomic(d / name, content)
    assert run.path is not None
    return run.path


def save_comparison(
    root: Path,
    record: Mapping[str, Any],
    results: Mapping[str, TrainResult],
    *,
    stats: Mapping[str, Any],
    figures: Mapping[str, bytes],
    report_html: str,
    kind: str = "compare",
) -> Path:
    """Write a new comparison directory under `root` and return its path.

    record: config.json's content; results: arm name -> its runs (none for `kldiv stats`, whose
    per-seed values come from a file); stats: stats.json's content; figures: name -> PNG bytes;
    report_html: the page; kind: the directory name's suffix, "compare" or "stats".
    """
    with RunDir(root, kind) as run:
        d = run.staging
        write_json(d / "config.json", dict(record))
        write_json(d / "environment.json", environment())
        write_json(d / "stats.json", dict(stats))
        for name, r in results.items():
            seeds = [int(s) for s in r.seeds]
            write_atomic(d / f"history-{name}.json", history_json_parts(r.history, seeds))
            write_json(d / f"metrics-{name}.json", metrics_record(r))
        for name, png in figures.items():
            write_atomic(d / f"{name}.png", png)
        write_atomic(d / "report.html", report_html)
    assert run.path is not None
    return run.path


def comparison_record(
    experiment: Experiment,
    command: str,
    results: Mapping[str, TrainResult],
    data: LoadedData,
    **extra: Any,
) -> dict[str, Any]:
    """config.json of a comparison: the experiment, the command, the data files, the training
    path, `extra`."""
    return _record(experiment, command, next(iter(results.values())), data) | extra


@dataclass(frozen=True, eq=False)
class SavedModel:
    """A trained model read back from a run directory (`load_model`).

    model: the network; params: its weights with a leading run axis, one entry per seed of
    `seeds`; feature_names: the input columns, in order; class_names: the classes, in the order of
    the output; standardizer: applied to inputs before the network, or None.
    """

    model: MLP
    params: Params
    seeds: tuple[int, ...]
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    standardizer: Standardizer | None

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(runs, rows, classes) float64 class probabilities of every run for raw inputs x (rows,
        features): `kldiv.evaluation.probabilities`, the function training reported them with."""
        from kldiv.evaluation import probabilities

        inputs = x if self.standardizer is None else self.standardizer.apply(x)
        return probabilities(self.model, self.params, inputs)


def model_kind(path: Path) -> str:
    """ "classifier" or "vae": what the model of a run directory is.

    Raises:
      ValueError: `path` holds no kldiv model (the message names the file).
    """
    meta = _model_metadata(Path(path) / "model.safetensors")
    try:
        record = json.loads(meta.get("kldiv_model", "{}"))
    except ValueError:
        return "classifier"  # load_model names what is wrong with it
    return "vae" if isinstance(record, dict) and record.get("kind") == "vae" else "classifier"


class _NotAClassifier(Exception):
    pass


def load_model(path: Path) -> SavedModel:
    """The model of a run directory written by `save_run` (safetensors, no pickle).

    Raises:
      ValueError: `path` holds no kldiv model, or one saved without what predicting needs (runs
        saved before kldiv recorded feature and class names); the message names the file.
    """
    model_file = Path(path) / "model.safetensors"
    meta = _model_metadata(model_file)
    if "kldiv_model" not in meta:
        raise ValueError(
            f"{model_file}: expected a model saved with its input and class names (kldiv_model), "
            "found a run saved by an older kldiv; train it again to predict with it"
        )
    try:
        record = json.loads(meta["kldiv_model"])
        if record.get("kind") == "vae":
            raise _NotAClassifier
        model = MLP(
            tuple(record["sizes"]),
            record["activation"],
            record["hidden_init"],
            record["output_init"],
        )
        standardizer = record["standardizer"]
        saved = SavedModel(
            model=model,
            params=_with_run_axis(load_params(model_file), meta),
            seeds=tuple(int(s) for s in record["seeds"]),
            feature_names=tuple(record["feature_names"]),
            class_names=tuple(record["class_names"]),
            standardizer=None if standardizer is None else Standardizer.from_dict(standardizer),
        )
    except _NotAClassifier:
        raise ValueError(
            f"{model_file}: expected a classifier, got a VAE (kldiv.vae.load_vae encodes and "
            "decodes with it)"
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # and JSONDecodeError
        raise ValueError(
            f"{model_file}: expected a kldiv_model record, got one that fails ({err})"
        ) from None
    problem = _model_problem(saved)
    if problem:
        raise ValueError(f"{model_file}: the kldiv_model record does not hold together: {problem}")
    return saved


def _model_problem(saved: SavedModel) -> str | None:
    """Why a model read back cannot be used (a record edited by hand), or None."""
    from kldiv.model import ACTIVATION_FNS, INIT_LIMITS

    m = saved.model
    if m.activation not in ACTIVATION_FNS:
        return f"unknown activation {m.activation!r}"
    if m.hidden_init not in INIT_LIMITS or m.output_init not in INIT_LIMITS:
        return f"unknown initializer {m.hidden_init!r} or {m.output_init!r}"
    shapes = [(int(w.shape[-2]), int(w.shape[-1])) for w, _ in saved.params]
    if shapes != list(itertools.pairwise(m.sizes)):
        return f"weights of shapes {shapes} for layer sizes {list(m.sizes)}"
    if len(saved.seeds) != saved.params[0][0].shape[0]:
        return f"{len(saved.seeds)} seeds for {saved.params[0][0].shape[0]} sets of weights"
    if len(saved.feature_names) != m.sizes[0]:
        return f"{len(saved.feature_names)} feature names for {m.sizes[0]} inputs"
    if len(saved.class_names) != m.sizes[-1]:
        return f"{len(saved.class_names)} class names for {m.sizes[-1]} outputs"
    if saved.standardizer is not None and saved.standardizer.n_features != m.sizes[0]:
        return f"a standardization of {saved.standardizer.n_features} features for {m.sizes[0]}"
    return None


def _model_metadata(model_file: Path) -> dict[str, str]:
    if not model_file.is_file():
        found = "a directory" if model_file.is_dir() else "nothing"
        raise ValueError(f"{model_file}: expected a kldiv run's model file, found {found}")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(model_file), framework="numpy") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(
            f"{model_file}: expected a safetensors file, got one that fails ({err})"
        ) from None
    if "kldiv_config" not in meta:
        raise ValueError(f"{model_file}: expected kldiv metadata (kldiv_config), found none")
    return meta


def _with_run_axis(params: Params, meta: Mapping[str, str]) -> Params:
    if meta.get("run_axis") != "True":
        params = tuple((w[None], b[None]) for w, b in params)
    return params


def load_run(path: Path) -> tuple[Experiment, Params]:
    """The experiment and weights of a run directory written by `save_run`.

    The weights always carry a leading run axis, one entry per seed of `experiment.seeds`.

    Raises:
      ValueError: `path` is not a kldiv run directory (the message names the file).
    """
    model_file = Path(path) / "model.safetensors"
    meta = _model_metadata(model_file)
    experiment = Experiment.from_dict(json.loads(meta["kldiv_config"]))
    return experiment, _with_run_axis(load_params(model_file), meta)
