"""Where a sweep's tasks run: `local` (this process, its XLA devices) or `ray` (Ray core tasks).

Both take the task payloads and the data as plain values, and hand every finished task's result
to `on_result` in the driver, which stores it; workers never write the store. The order results
arrive in does not change any number (a run's result does not depend on its task's other runs).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from kldiv.checks import ConfigError

BACKENDS = ("local", "ray")
ResultFn = Callable[[dict[str, Any]], None]
ProgressFn = Callable[[int, int], None]

# What a worker process sets before it imports JAX: no GPU memory grabbed up front (several
# workers share a GPU), XLA's CPU thread pool off (one worker per CPU Ray gives it), one CPU
# device per worker.
WORKER_ENV = {
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false --xla_force_host_platform_device_count=1",
    "OMP_NUM_THREADS": "1",
}
MAX_RETRIES = 2


class TaskFailed(RuntimeError):
    """A task raised, or its worker died more often than the retries allow. Every task that had
    finished when the failure arrived is stored (handed to `on_result`) first; the tasks still
    running are cancelled. The message names the failed task's configurations and seeds and
    the reason, on one line."""


LOCAL_RAY_CPUS = 2


def run_local(
    payloads: Sequence[Mapping[str, Any]],
    data: Mapping[str, np.ndarray],
    on_result: ResultFn,
    on_progress: ProgressFn | None = None,
) -> None:
    """Run every task in this process, one after the other, each on all local devices.

    on_progress(runs done, runs total) ticks inside tasks too (per compiled block of epochs).

    Raises:
      TaskFailed: a task raised (not a user's ConfigError, which propagates as it is); the tasks
        before it are stored.
    """
    from kldiv.sweep import task

    total = sum(_n_runs(p) for p in payloads)
    before = 0
    for p in payloads:
        n = _n_runs(p)

        def tick(done: int, of: int, before: int = before, n: int = n) -> None:
            if on_progress is not None:
                on_progress(before + (n * done) // max(of, 1), total)

        try:
            result = task.run_task(p, data, on_progress=tick)
        except ConfigError:
            raise
        except Exception as err:  # a defect: one line, and what finished stays stored
            raise TaskFailed(
                f"a task failed ({describe(p)}): {type(err).__name__}: {err}"
            ) from None
        on_result(result)
        before += n
        if on_progress is not None:
            on_progress(before, total)


def _n_runs(payload: Mapping[str, Any]) -> int:
    return sum(len(piece["seeds"]) for piece in payload["pieces"])


def _worker(task: Mapping[str, Any], data: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A Ray task: set the worker's JAX environment before JAX loads, then run the task."""
    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    from kldiv.runtime import configure

    configure(cpu_devices=1)
    from kldiv.sweep.task import run_task

    return run_task(task, data)


def ray_address(address: str | None) -> str | None:
    """--address, else $RAY_ADDRESS, else None (a local instance is started)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def run_ray(
    payloads: Sequence[Mapping[str, Any]],
    data: Mapping[str, np.ndarray],
    on_result: ResultFn,
    on_progress: ProgressFn | None = None,
    *,
    address: str | None = None,
    max_retries: int = MAX_RETRIES,
    check: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Submit every task as a Ray task (1 CPU each, retried `max_retries` times if its worker
    dies) to the cluster at `address` / $RAY_ADDRESS, or to a local instance with
    LOCAL_RAY_CPUS CPUs started for the sweep (and shut down after it); store results as they
    arrive. `check` runs between waits (a pending signal stops the sweep). Returns
    {"address", "started_local", "init_seconds"}.

    Raises ConfigError("backend", ...): Ray is not installed (it is the optional extra
    `kldiv[ray]`); ConfigError("address", ...): the cluster cannot be reached;
    ConfigError("max_retries", ...): max_retries < 0 (Ray would retry forever); TaskFailed: a task
    raised, or its worker died on every attempt (the tasks finished by then are stored).
    """
    import time
    import warnings

    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError("max_retries", f"expected an integer >= 0, got {max_retries!r}")

    try:
        import ray
    except ImportError:
        raise ConfigError(
            "backend", "expected Ray to be installed for 'ray': pip install 'kldiv[ray]'"
        ) from None
    address = ray_address(address)
    start = time.perf_counter()
    env = {"env_vars": dict(WORKER_ENV)}
    try:
        with warnings.catch_warnings():
            # ray.init starts its processes by fork + exec, which is safe after JAX's threads
            # started; JAX warns about any fork
            warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
            if address is None:
                ray.init(
                    num_cpus=LOCAL_RAY_CPUS,
                    include_dashboard=False,
                    runtime_env=env,
                    logging_level="ERROR",
                    log_to_driver=False,
                )
            else:
                ray.init(
                    address=address, runtime_env=env, logging_level="ERROR", log_to_driver=False
                )
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(
            "address", f"expected a reachable Ray cluster, got {address!r} ({err})"
        ) from None
    info = {
        "address": address,
        "started_local": address is None,
        "init_seconds": time.perf_counter() - start,
    }
    try:
        remote = ray.remote(num_cpus=1, max_retries=max_retries)(_worker)
        data_ref = ray.put(dict(data))
        total = sum(_n_runs(p) for p in payloads)
        pending = {remote.remote(p, data_ref): _n_runs(p) for p in payloads}
        done = 0
        if on_progress is not None:
            on_progress(0, total)
        payload_of = {ref: p for ref, p in zip(pending, payloads, strict=True)}
        failed: tuple[Any, Exception] | None = None
        while pending and failed is None:
            first, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if check is not None:
                check()
            if not first:
                continue
            # every task finished by now: a failure among them loses none of the others
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            for ref in ready:
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:
                    pending.pop(ref)
                    failed = failed or (ref, err)
                    continue
                on_result(result)
                done += pending.pop(ref)
                if on_progress is not None:
                    on_progress(done, total)
        if failed is not None:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            ref, err = failed
            raise TaskFailed(
                f"a Ray task failed ({describe(payload_of[ref])}): {_reason(err, max_retries)}"
            ) from None
    finally:
        ray.shutdown()
    return info


def describe(payload: Mapping[str, Any]) -> str:
    """A task's configurations and seeds, short: 'loss=kl,learning_rate=0.1: seeds 0-24' or
    '3 configurations (loss=kl, ...): seeds 0, 5'."""
    names = [p["config"] for p in payload["pieces"]]
    seeds = sorted({int(s) for p in payload["pieces"] for s in p["seeds"]})
    contiguous = seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2
    shown = f"{seeds[0]}-{seeds[-1]}" if contiguous else ", ".join(map(str, seeds))
    what = names[0] if len(names) == 1 else f"{len(names)} configurations ({names[0]}, ...)"
    return f"{what}: seeds {shown}"


def _reason(err: Exception, max_retries: int) -> str:
    """The last line of a Ray error (the task's own exception, or the worker's death)."""
    import ray

    text = str(err).strip()
    last = text.splitlines()[-1] if text else repr(err)
    if isinstance(err, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        return f"its worker died on every attempt ({1 + max_retries}): {last}"
    return last
