"""Run directories: one new directory per run, filled atomically, never overwriting an earlier run.

A run is assembled in a hidden temporary directory beside its final place and renamed into place only
when every file is written, so an interrupted or failed run leaves no partial directory behind. Models
are saved as safetensors (no pickle).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from kldiv.model import Params

PACKAGES = ("kldiv", "jax", "jaxlib", "optax", "numpy", "scipy", "matplotlib", "safetensors")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` through a temporary file and a rename; refuses to replace a file."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: expected a new file, but it already exists")
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
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
    taken) and `run.path` holds it. On an exception (Ctrl-C included) the staging directory is removed.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.root = Path(root)
        self.name = name
        self.staging = Path()
        self.path: Path | None = None

    def __enter__(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging = Path(
            tempfile.mkdtemp(dir=self.root, prefix=f".{self.name}-", suffix=".partial")
        )
        return self

    def __exit__(self, exc_type: type | None, *_: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for k in range(1000):
            final = self.root / (f"{stamp}-{self.name}" + (f"-{k}" if k else ""))
            try:
                final.mkdir()  # claims the name; fails if any earlier run holds it
            except FileExistsError:
                continue
            os.chmod(self.staging, 0o777 & ~_umask())  # mkdtemp's private 0700 -> usual mode
            os.replace(self.staging, final)  # rename onto the empty directory just claimed
            self.path = final
            return
        shutil.rmtree(self.staging, ignore_errors=True)
        raise FileExistsError(f"out: could not find a free run directory name under {self.root}")


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
