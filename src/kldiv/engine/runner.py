"""How many runs execute: chunks of runs on devices, in rounds, with progress and per-run divergence.

One compiled call trains one chunk of runs on each device for a block of epochs, the devices
concurrently; the runs of a chunk are either vmapped (the generic path, `kldiv.engine.run`) or laid
out with the run axis last (`kldiv.engine.lanes`, for the configurations it supports on CPU).
A seed's result never depends on the other seeds requested:
  * generic: batched kernels choose their order of operations by shape, so every chunk of an
    objective has the same size (its `generic_chunk` runs, the last one padded; one run for a
    classifier);
  * lanes: nothing mixes runs, and every chunk is a power of two from MIN_LANES to LANES_CHUNK
    runs (the last chunk padded); see MIN_LANES.
A run whose history, final metrics or weights become non-finite is recorded as diverged (with the
epoch); the other runs finish.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from kldiv import runtime
from kldiv.checks import ConfigError
from kldiv.config import TrainConfig
from kldiv.data import Dataset
from kldiv.engine import executables, host_init, lanes
from kldiv.engine.run import Run, State, evaluate_final_train, init, train_epochs
from kldiv.evaluation import logits_ahead, shared_metrics
from kldiv.model import Params
from kldiv.objectives import FULL_SUPPORT_LOSSES, GENERIC_CHUNK, final_keys, history_keys

ProgressFn = Callable[[int, int], None]

LANES_CHUNK = 64
# XLA:CPU drops an axis of length 1 and vectorises another one instead, which on AVX-512 changes
# the last bit of some results: a chunk of one run is padded to two. From two runs up, a run's bits
# do not depend on the chunk (tests/test_lanes.py natively, tests/test_runner.py also under AVX2,
# AVX and SSE4.2), and a lone seed trains 3x faster in a chunk of 2 than of 16 (the tutorial: 45
# against 140 ms).
MIN_LANES = 2
PATHS = ("auto", "lanes", "generic")


@dataclass(frozen=True)
class TrainResult:
    """Outcome of `train` for S runs (numpy arrays, run axis first).

    seeds (S,) int64; params: the model pytree with a leading (S,) axis; history: the objective's
    history keys (`loss`, `accuracy`, `val_loss`, `val_accuracy`) -> (S, epochs); final: `train_*`
    and `test_*` of each metric -> (S,), the final weights on the training and test sets (counts
    such as accuracy as exact float64 k / n, the rest float32), and of the metrics every loss
    shares (`kldiv.evaluation`: log loss, Brier, ECE, and for soft targets the excess loss;
    float64, against the unsmoothed targets);
    hyperparameters: the optimizer's numbers -> (S,) float32, as each run used them; diverged (S,)
    int64: the first epoch (from 1) after which a run's history, final metrics or weights held a
    non-finite value, 0 for runs that never did; path: 'lanes' or 'generic'; chunk: runs per
    compiled chunk.
    """

    seeds: np.ndarray
    params: Params
    history: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    hyperparameters: dict[str, np.ndarray]
    diverged: np.ndarray
    path: str
    chunk: int

    def run(self, i: int) -> TrainResult:
        """The i-th run alone, keeping a run axis of length 1."""
        pick = slice(i, i + 1)
        return TrainResult(
            self.seeds[pick],
            jax.tree.map(lambda a: a[pick], self.params),
            {k: v[pick] for k, v in self.history.items()},
            {k: v[pick] for k, v in self.final.items()},
            {k: v[pick] for k, v in self.hyperparameters.items()},
            self.diverged[pick],
            self.path,
            self.chunk,
        )

    @property
    def healthy(self) -> np.ndarray:
        """(S,) bool: the runs that did not diverge."""
        return self.diverged == 0


# Per-chunk programs (traced inside `_program`, which compiles them once for a set of devices).
# An epochs program also evaluates the training set with the weights it ends with, so the last call
# gives the final metrics (the test set's are the last validation row) without a program of its own.
def _generic_init(seeds: jax.Array, hyper: dict[str, jax.Array], *, run: Run) -> State:
    return jax.vmap(functools.partial(init, run))(seeds, hyper)


def _generic_epochs(
    state: State, data: Dataset, *, run: Run, n_epochs: int
) -> tuple[State, dict[str, jax.Array], dict[str, jax.Array]]:
    epochs = functools.partial(train_epochs, run, data=data, n_epochs=n_epochs)
    state, history = jax.vmap(epochs)(state)
    on_train = jax.vmap(lambda s: evaluate_final_train(run, s, data))(state)
    return state, history, on_train


def _lanes_init(seeds: jax.Array, hyper: dict[str, jax.Array], *, run: Run) -> State:
    state = _generic_init(seeds, hyper, run=run)
    return state._replace(
        params=lanes.to_runs_last(state.params), opt_state=lanes.to_runs_last(state.opt_state)
    )


def _lanes_epochs(
    state: State, data: Dataset, *, run: Run, n_epochs: int
) -> tuple[State, dict[str, jax.Array], dict[str, jax.Array]]:
    state, history = lanes.train_epochs(run, state, data, n_epochs)
    on_train = lanes.evaluate(run, state.params, data.x_train, data.y_train)
    return state, history, on_train  # history (epochs, keys, runs): `_history_on_host` splits it


_PROGRAMS = {
    "generic": {"init": _generic_init, "epochs": _generic_epochs},
    "lanes": {"init": _lanes_init, "epochs": _lanes_epochs},
}


def _split(devices: tuple) -> jax.sharding.NamedSharding:
    """The placement of a program's chunked arguments and results: the leading axis over `devices`."""
    mesh = jax.sharding.Mesh(np.array(devices), ("chunk",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("chunk"))


@functools.lru_cache(maxsize=64)
def _program(path: str, kind: str, devices: tuple, run: Run, chunk: int, **static: int) -> Callable:
    """One chunk's `kind` program compiled once for `devices`, each running one chunk of `chunk`
    runs (and kept on disk where `kldiv.runtime.configure` set up a cache:
    `kldiv.engine.executables`).

    Called as program(chunked, whole) with two tuples of arguments: every leaf of `chunked` carries
    a leading (devices,) axis split over the devices; `whole` (the data, if any) is replicated.
    """
    fn = functools.partial(_PROGRAMS[path][kind], run=run, **static)
    split, replicated = _split(devices), jax.sharding.PartitionSpec()

    def per_device(chunked: tuple, whole: tuple) -> Any:
        mine = jax.tree.map(lambda a: a[0], chunked)  # this device's chunk
        return jax.tree.map(lambda a: a[None], fn(*mine, *whole))

    spread = jax.shard_map(
        per_device,
        mesh=split.mesh,
        in_specs=(split.spec, replicated),
        out_specs=split.spec,
        check_vma=False,  # per-device programs: no collectives
    )
    options = lanes.compiler_options(chunk) if path == "lanes" else None
    jitted = jax.jit(spread, compiler_options=options)
    name = f"{path} {kind} {sorted(static.items())} {run!r} {options}"
    return executables.cached(jitted, name, devices, runtime.executable_cache_dir())


def _host_state(path: str, run: Run, devices: tuple, inits: tuple) -> State | None:
    """A lanes round's initial state computed on the host (`host_init`), placed where the init
    program would have put it; None where the init program has to compute it."""
    if path != "lanes":
        return None
    state = host_init.initial_state(run, *inits)
    return None if state is None else jax.device_put(state, _split(devices))


def _initial_state(path: str, run: Run, devices: tuple, inits: tuple) -> State:
    """A round's initial state from its seeds and optimizer numbers, each (devices, chunk)."""
    state = _host_state(path, run, devices, inits)
    if state is None:
        state = _program(path, "init", devices, run, inits[0].shape[1])(inits, ())
    return state


def _compile_ahead(
    init_program: Any,
    epochs_program: Any,
    inits: tuple,
    state: State | None,
    data: Dataset,
    devices: tuple,
    then: Callable[[], None] | None = None,
) -> threading.Thread | None:
    """On a first run (the first epochs program not stored), trace and lower that program and
    compile it on another thread, then run `then` there (the shared metrics' program); the call
    of the epochs program waits for that compile (`executables.Cached.ahead`). Returns the thread
    (`train` joins it before returning), or None when there is nothing to do. A program that
    fails there is left to its call, which compiles it again.

    state: the first round's initial state where the host computed it (`_host_state`), else
    None: the init program computes it. Then a stored init program marks a warm run (known
    without tracing anything), and on a first run the epochs program is lowered from the shapes
    the init program will return, before that program is even traced: the epochs program is the
    longer compile, and XLA spreads one compile over both cores. The thread is not a daemon: a
    process that ends meanwhile still stores what it compiled."""
    programs = (epochs_program,) if state is not None else (init_program, epochs_program)
    if not all(isinstance(p, executables.Cached) for p in programs):
        return None
    if state is None:
        if init_program.stored(inits, ()):
            return None
        state = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=_split(devices)),
            jax.eval_shape(init_program.jitted, inits, ()),
        )
    try:
        finish = epochs_program.ahead((state,), (data,))
    except Exception:  # the call lowers and compiles instead
        return None
    if finish is None:  # stored: a warm run
        return None
    steps = [step for step in (finish, then) if step is not None]

    def compile_ahead() -> None:
        for step in steps:
            try:
                step()
            except Exception:  # the call compiles instead
                pass

    thread = threading.Thread(target=compile_ahead, name="kldiv-compile-ahead")
    thread.start()
    return thread


def choose_path(path: str, config: TrainConfig, data: Dataset) -> str:
    """For 'auto': 'lanes' where it supports `config` on `data` and an example costs at most
    `lanes.AUTO_MAX_MULTIPLY_ADDS` multiply-adds, else 'generic'. A function of the config and the
    data's shapes only, never of the number of seeds, so a seed takes one path alone or in a batch.

    Raises:
      ValueError: `path` is not one of PATHS, or 'lanes' was asked for what it does not support.
    """
    if path not in PATHS:
        raise ValueError(f"path: expected one of {', '.join(map(repr, PATHS))}, got {path!r}")
    if path == "generic":
        return path
    reason = lanes.unsupported(config, data)
    if path == "lanes":
        if reason is not None:
            raise ValueError(f"path: 'lanes' does not support {reason}")
        return path
    small = lanes.multiply_adds(config, data) <= lanes.AUTO_MAX_MULTIPLY_ADDS
    return "lanes" if reason is None and small else "generic"


def chunk_size(path: str, n_runs: int, n_devices: int, generic: int = GENERIC_CHUNK) -> int:
    """Runs per compiled chunk for `n_runs` runs over `n_devices` devices (`generic`: the
    objective's chunk on the generic path)."""
    if path == "generic":
        return generic
    per_device = -(-n_runs // n_devices)
    return max(MIN_LANES, min(LANES_CHUNK, 1 << max(0, per_device - 1).bit_length()))


def _check_seeds(seeds: Sequence[int]) -> np.ndarray:
    array = np.asarray(seeds)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"seeds: expected a non-empty sequence of integers, got {seeds!r}")
    if array.min() < 0 or array.max() > np.iinfo(np.uint32).max:
        raise ValueError(f"seeds: expected integers in [0, 2**32), got {seeds!r}")
    return array.astype(np.uint32)


def _check_data(data: Dataset, config: TrainConfig) -> Dataset:
    for name, array in data._asdict().items():
        if np.ndim(array) != 2:
            raise ValueError(f"data.{name}: expected a 2-D array, got shape {np.shape(array)}")
    for x_or_y, what in (("x", "features"), ("y", "classes")):
        train, val = getattr(data, f"{x_or_y}_train"), getattr(data, f"{x_or_y}_val")
        if train.shape[1] != val.shape[1]:
            raise ValueError(
                f"data.{x_or_y}_val: expected {train.shape[1]} {what} like {x_or_y}_train, "
                f"got {val.shape[1]}"
            )
    return Dataset(*(np.asarray(a, np.float32) for a in data))


def smooth(targets: np.ndarray, eps: float) -> np.ndarray:
    """(1 - eps)·y + eps/K for (rows, K) float32 targets (unchanged at eps = 0)."""
    if eps == 0:
        return targets
    k = targets.shape[1]
    return ((1.0 - eps) * targets.astype(np.float64) + eps / k).astype(np.float32)


def training_data(data: Dataset, config: TrainConfig) -> Dataset:
    """What the runs train and validate on: the training targets label-smoothed
    (`config.label_smoothing`), the validation targets too for a loss that is infinite at zero
    targets, and checked by the objective (e.g. reverse KL on one-hot labels: infinite everywhere).
    """
    eps = config.label_smoothing
    objective = Run.for_data(config, data).objective
    full_support = config.loss in FULL_SUPPORT_LOSSES
    data = data._replace(
        y_train=smooth(data.y_train, eps), y_val=smooth(data.y_val, eps if full_support else 0.0)
    )
    for targets in (data.y_train, data.y_val):
        objective.check_targets(targets)
    return data


# Optimizer state arrays per weight (Adam's two moments, SGD's momentum trace, RMSProp's average).
_STATE_SLOTS = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 1}
# What the memory a training needs is made of, and the flag that most drives each part.
_PARTS = {
    "weights": "weights and optimizer state",
    "activations": "activations",
    "history": "history",
    "batches": "batch tables",
}
# The process itself (Python, NumPy, JAX and XLA's runtime, compiled programs), measured ~0.4 GB.
_BASELINE_BYTES = 400 * 2**20


def estimate_bytes(
    config: TrainConfig, data: Dataset, n_runs: int, n_devices: int, path: str = "auto"
) -> dict[str, int]:
    """Memory (bytes) that training `n_runs` runs of `config` on `data` over `n_devices` devices
    needs at its peak, by part: "weights" (weights, gradients, updates and optimizer state of the
    runs trained at once), "activations" (a step's or an evaluation's activations and their
    gradients for those runs), "history" (runs x epochs x history keys, float32, on the device and
    in the host's copies), "batches" (an epoch's gathered batch tables per run, and the data).

    An estimate (float32 arrays, a few copies where XLA and the runner make them), measured within
    ~20% of the peak resident memory beyond the process's own for hidden widths 2,000 to 20,000 and
    batch sizes to 100,000. Plus the process's baseline, ~0.4 GB, not included.
    """
    path = choose_path(path, config, data)
    run = Run.for_data(config, data)
    chunk = chunk_size(path, n_runs, n_devices, run.objective.generic_chunk)
    n_chunks = -(-n_runs // chunk)
    per_round = min(n_devices, n_chunks) * chunk  # runs trained at once
    padded = -(-n_chunks // min(n_devices, n_chunks)) * per_round
    widths = run.model.sizes
    n_params = sum(a * b + b for a, b in itertools.pairwise(widths))
    slots = _STATE_SLOTS.get(config.optimizer.name, 2)
    n_train, n_val = data.x_train.shape[0], data.x_val.shape[0]
    steps = -(-n_train // config.batch_size)
    rows = max(config.batch_size, n_train, n_val)  # evaluations take a whole set at once
    n_keys = 2 * len(run.metric_names)
    f32 = 4
    data_bytes = sum(np.asarray(a).size for a in data) * f32
    return {
        # params, gradients, updates and the state on the devices; params and a copy on the host
        "weights": per_round * n_params * f32 * (3 + slots) + n_runs * n_params * f32 * 2,
        # pre-activations, activations and their gradients for every unit
        "activations": per_round * rows * sum(widths) * f32 * 3,
        # the device's (runs, epochs) output, the host's blocks and their concatenation
        "history": padded * config.epochs * n_keys * f32 * 3,
        # x and y rows gathered in the epoch's order, and their weights, twice (gather, reshape)
        "batches": per_round
        * steps
        * config.batch_size
        * (data.n_features + data.y_train.shape[1] + 1)
        * f32
        * 2
        + n_devices * data_bytes,
    }


def available_memory() -> int:
    """Bytes this process can still allocate: the kernel's MemAvailable (or free pages), and at
    most what the cgroup's memory.max leaves."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 2**63 - 1  # unknown: do not refuse
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(0, available)


def check_memory(
    config: TrainConfig,
    data: Dataset,
    n_runs: int,
    n_devices: int,
    path: str = "auto",
    *,
    available: int | None = None,
) -> None:
    """Refuse a training whose `estimate_bytes` exceed the memory available (default
    `available_memory()`), before anything is compiled or allocated.

    Raises:
      ConfigError naming the field most responsible: "hidden", "batch_size", "epochs" or "seeds".
    """
    parts = estimate_bytes(config, data, n_runs, n_devices, path)
    total = sum(parts.values()) + _BASELINE_BYTES
    available = available_memory() if available is None else available
    if total <= available:
        return
    worst = max(parts, key=parts.__getitem__)
    n_rows = max(data.x_train.shape[0], data.x_val.shape[0])
    field = {
        "weights": "hidden",
        "activations": "batch_size"
        if config.batch_size > max(n_rows, *config.hidden)
        else "hidden",
        "history": "epochs" if config.epochs >= n_runs else "seeds",
        "batches": "batch_size",
    }[worst]
    raise ConfigError(
        field,
        f"expected a training that fits in the {_size(available)} of memory available, got one "
        f"that needs about {_size(total)} (mostly {_PARTS[worst]}: {_size(parts[worst])})",
    )


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def check(
    config: TrainConfig,
    data: Dataset,
    seeds: Sequence[int],
    *,
    hyperparameters: Mapping[str, Sequence[float]] | None = None,
    devices: Sequence[Any] | None = None,
    path: str = "auto",
) -> None:
    """Everything `train` checks before it compiles (seeds, data and targets, per-run values, path,
    memory), without training: raises what `train` would."""
    _prepare(config, data, seeds, hyperparameters, devices, path)


def _prepare(
    config: TrainConfig,
    data: Dataset,
    seeds: Sequence[int],
    hyperparameters: Mapping[str, Sequence[float]] | None,
    devices: Sequence[Any] | None,
    path: str,
) -> tuple[np.ndarray, Dataset, dict[str, np.ndarray], str, tuple]:
    seed_array = _check_seeds(seeds)
    data = _check_data(data, config)
    trained_on = training_data(data, config)
    hyper = _per_run_hyperparameters(config, hyperparameters, seed_array.size)
    path = choose_path(path, config, data)
    all_devices = tuple(jax.local_devices() if devices is None else devices)
    check_memory(config, data, seed_array.size, len(all_devices), path)
    return seed_array, data, trained_on, hyper, path, all_devices


def _per_run_hyperparameters(
    config: TrainConfig, values: Mapping[str, Sequence[float]] | None, n_runs: int
) -> dict[str, np.ndarray]:
    """Every optimizer hyperparameter as (n_runs,) float32: `values` where given, else the config's."""
    defaults = config.optimizer.hyperparameters
    values = dict(values or {})
    out = {}
    for name, default in defaults.items():
        given = values.pop(name, None)
        array = np.full(n_runs, default) if given is None else np.asarray(given, np.float64)
        if array.shape != (n_runs,):
            raise ValueError(f"{name}: expected {n_runs} values (one per seed), got {array.shape}")
        for v in np.unique(array):  # validated like the config field
            config.optimizer.replace(**{name: float(v)})
        out[name] = array.astype(np.float32)
    if values:
        name = sorted(values)[0]
        config.optimizer.replace(**{name: 0.0})  # raises: not a hyperparameter of this optimizer
    return out


def _first_bad_epoch(history: dict[str, np.ndarray]) -> np.ndarray:
    """(runs,) the first epoch (from 1) with a non-finite history value, 0 where there is none."""
    bad = np.zeros_like(next(iter(history.values())), dtype=bool)
    for values in history.values():
        bad |= ~np.isfinite(values)
    return np.where(bad.any(axis=1), bad.argmax(axis=1) + 1, 0)


def train(
    config: TrainConfig,
    data: Dataset,
    seeds: Sequence[int],
    *,
    hyperparameters: Mapping[str, Sequence[float]] | None = None,
    epoch_chunk: int | None = None,
    on_progress: ProgressFn | None = None,
    devices: Sequence[Any] | None = None,
    path: str = "auto",
) -> TrainResult:
    """Train one run per seed and return weights, history, final metrics and divergence.

    Args:
      config: model, objective and training (static: changing it recompiles).
      data: training and validation arrays, shared by every run.
      seeds: one integer per run in [0, 2**32); seed s derives the initial weights, every epoch's
        shuffle and every step's noise, so the same seed always gives the same run.
      hyperparameters: optional per-run values of the optimizer's numbers, name -> one value per
        seed (default: the config's); traced, so a grid of them reuses one compiled program.
      epoch_chunk: epochs per compiled call; smaller values give `on_progress` more ticks and stop
        sooner when every run has diverged, without changing any result.
      on_progress: called as on_progress(units_done, units_total) after each call, where a unit is
        one epoch of one chunk of runs.
      devices: the devices to spread chunks over (default `jax.local_devices()`; see
        `kldiv.runtime.configure` for one CPU device per core).
      path: 'auto' (`choose_path`: the lanes accelerator for the small networks it supports,
        else generic), 'lanes' (raises where unsupported) or 'generic'. The two agree to float32
        rounding, not bitwise.

    Raises (before anything is compiled; `check` raises the same without training):
      ValueError: bad seeds, data shapes, per-run values or path.
      ConfigError: the loss cannot train on these targets ("loss"; see
        `kldiv.objectives.Classifier.check_targets`), or the training needs more memory than is
        available ("hidden", "batch_size", "epochs" or "seeds"; see `check_memory`).
    """
    seed_array, data, trained_on, hyper, path, all_devices = _prepare(
        config, data, seeds, hyperparameters, devices, path
    )
    n_runs = seed_array.size
    run = Run.for_data(config, data)
    block = config.epochs if epoch_chunk is None else max(1, min(epoch_chunk, config.epochs))
    chunk = chunk_size(path, n_runs, len(all_devices), run.objective.generic_chunk)
    n_chunks = -(-n_runs // chunk)
    devices = all_devices[: min(len(all_devices), n_chunks)]
    per_round = len(devices) * chunk
    n_rounds = -(-n_chunks // len(devices))
    pad = n_rounds * per_round - n_runs

    def rounds(a: np.ndarray) -> np.ndarray:
        # (rounds, devices, chunk): padding repeats the last run; its results are dropped
        return np.concatenate([a, np.repeat(a[-1:], pad)]).reshape(n_rounds, len(devices), chunk)

    all_seeds, all_hyper = rounds(seed_array), {k: rounds(v) for k, v in hyper.items()}
    inits = [(all_seeds[r], {k: v[r] for k, v in all_hyper.items()}) for r in range(n_rounds)]
    sets = {"train": (data.x_train, data.y_train), "test": (data.x_val, data.y_val)}
    first = _host_state(path, run, devices, inits[0])
    ahead = _compile_ahead(
        _program(path, "init", devices, run, chunk),
        _program(path, "epochs", devices, run, chunk, n_epochs=block),
        inits[0],
        first,
        trained_on,
        devices,
        then=functools.partial(logits_ahead, run.model, n_runs, [x for x, _ in sets.values()])
        if run.objective.classifies
        else None,
    )
    progress = _Progress(on_progress, n_chunks * config.epochs)
    outs = []
    for r in range(n_rounds):
        n_real = min(per_round, n_runs - r * per_round)
        outs.append(
            _train_round(
                path,
                run,
                devices,
                first
                if r == 0 and first is not None
                else _initial_state(path, run, devices, inits[r]),
                trained_on,
                config.epochs,
                block,
                n_real,
                lambda epochs, n_real=n_real: progress.add(epochs * -(-n_real // chunk)),
            )
        )
    keep = slice(0, n_runs)
    params = jax.tree.map(lambda *a: np.concatenate(a)[keep], *(o[0] for o in outs))
    history, final = (
        {k: np.concatenate([o[i][k] for o in outs])[keep] for k in outs[0][i]} for i in (1, 2)
    )
    diverged = _diverged(history, final, params, config.epochs)
    if run.objective.classifies:
        truth = run.objective.evaluation_targets
        final |= shared_metrics(run.model, params, {k: (x, truth(y)) for k, (x, y) in sets.items()})
    if ahead is not None:
        ahead.join()  # done by now but for storing: the cache is complete when `train` returns
    return TrainResult(
        seeds=seed_array.astype(np.int64),
        params=params,
        history=history,
        final=final,
        hyperparameters=hyper,
        diverged=diverged,
        path=path,
        chunk=chunk,
    )


class _Progress:
    """Counts units (one epoch of one chunk of runs) and reports them to `on_progress`."""

    def __init__(self, on_progress: ProgressFn | None, total: int) -> None:
        self.on_progress, self.total, self.done = on_progress, total, 0

    def add(self, units: int) -> None:
        self.done += units
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)


def _train_round(
    path: str,
    run: Run,
    devices: tuple,
    state: State,
    data: Dataset,
    epochs: int,
    block: int,
    n_real: int,
    progress: Callable[[int], None],
) -> tuple[Params, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One chunk of runs per device, `block` epochs per compiled call; stops early once every one
    of the round's `n_real` real runs has diverged (the rest of the history is NaN).

    state: the round's initial state (`_initial_state`). Returns the round's params (runs, ...),
    history (runs, epochs) and final metrics (runs,), runs in order.
    """
    per_round = state.epoch.size
    blocks: list[dict[str, np.ndarray]] = []
    done = 0
    while done < epochs:
        n_epochs = min(block, epochs - done)
        program = _program(
            path, "epochs", devices, run, per_round // len(devices), n_epochs=n_epochs
        )
        state, history, on_train = program((state,), (data,))
        blocks.append(_history_on_host(path, run, jax.device_get(history), per_round))
        done += n_epochs
        if done < epochs and _first_bad_epoch(blocks[-1])[:n_real].all():
            rest = epochs - done
            blocks.append({k: np.full((per_round, rest), np.nan) for k in blocks[-1]})
            n_epochs, done = n_epochs + rest, epochs
        progress(n_epochs)
    params = jax.device_get(state.params)
    if path == "lanes":  # (devices, ..., chunk) -> (devices, chunk, ...)
        params = jax.tree.map(lambda a: np.moveaxis(a, -1, 1), params)
    params = jax.tree.map(lambda a: a.reshape(per_round, *a.shape[2:]), params)
    keys = history_keys(run.metric_names)
    history = {k: np.concatenate([b[k] for b in blocks], axis=1) for k in keys}
    on_train = {k: np.reshape(v, -1) for k, v in jax.device_get(on_train).items()}
    n_train, n_val = data.x_train.shape[0], data.x_val.shape[0]
    for m in run.objective.count_metrics:
        history[m] = _exact_fraction(history[m], n_train)
        history[f"val_{m}"] = _exact_fraction(history[f"val_{m}"], n_val)
        on_train[m] = _exact_fraction(on_train[m], n_train)
    final = {f"train_{m}": on_train[m] for m in run.metric_names}
    final |= {f"test_{m}": history[f"val_{m}"][:, -1] for m in run.metric_names}
    return params, history, {k: final[k] for k in final_keys(run.metric_names)}


def _history_on_host(path: str, run: Run, history: Any, per_round: int) -> dict[str, np.ndarray]:
    """A program's history as history key -> (runs, epochs): the generic program's is already a
    dict of (devices, chunk, epochs); the lanes program's is one run-last (devices, epochs, keys,
    chunk) array."""
    if path == "lanes":
        keys = history_keys(run.metric_names)
        history = {k: np.swapaxes(history[:, :, i, :], 1, 2) for i, k in enumerate(keys)}
    return {k: v.reshape(per_round, -1) for k, v in history.items()}


def _exact_fraction(mean: np.ndarray, n: int) -> np.ndarray:
    """A float32 mean of 0/1 values over n rows as the exact float64 k / n (NaN stays NaN).

    The program sums the 0/1 values exactly (float32 holds integers below 2**24) and divides by n
    in float32, which rounds: 1/500 becomes 0.00199997 or 0.00200003 by position, and statistics
    over seeds would see that noise. k = round(mean * n) is exact for n below 2**23.
    """
    return np.round(np.asarray(mean, np.float64) * n) / n


def _diverged(
    history: dict[str, np.ndarray], final: dict[str, np.ndarray], params: Params, epochs: int
) -> np.ndarray:
    """(runs,) first epoch with a non-finite history value; `epochs` where only the final metrics
    or weights are non-finite (the last update broke them); 0 for healthy runs."""
    first = _first_bad_epoch(history)
    broken = np.zeros(first.shape, bool)
    for values in final.values():
        broken |= ~np.isfinite(values)
    for leaf in jax.tree.leaves(params):
        broken |= ~np.isfinite(leaf.reshape(leaf.shape[0], -1)).all(axis=1)
    return np.where((first == 0) & broken, epochs, first).astype(np.int64)
