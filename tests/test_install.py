"""What `pip install kldiv` pulls: the installed distributions' own metadata walked from kldiv's
requirements, so a heavy optional package (Ray, pyarrow, MLflow) reached through any dependency
of the base install is caught, not only one listed in pyproject.toml; and the command line imports
none of them until a command needs one."""

import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

OPTIONAL = {
    "ray": {"ray"},
    "parquet": {"pyarrow"},
    "mlflow": {"mlflow-skinny", "sqlalchemy", "alembic"},
}
HEAVY = {"ray", "pyarrow", "mlflow", "mlflow-skinny", "sqlalchemy", "alembic"}


def closure(extras: tuple[str, ...] = ()) -> set[str]:
    """Canonical names of every distribution `pip install kldiv[extras]` installs (kldiv
    excluded), following the requirements that apply on this interpreter."""
    seen: set[str] = set()
    visited: set[tuple[str, tuple[str, ...]]] = set()
    todo = [(canonicalize_name("kldiv"), extras)]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in visited:
            continue
        visited.add((name, wanted))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # an extra not installed here: its name is enough
            requires = []
        for text in requires:
            req = Requirement(text)
            applies = req.marker is None or any(
                req.marker.evaluate({"extra": e}) for e in ("", *wanted)
            )
            dep = canonicalize_name(req.name)
            if not applies or dep == "kldiv":
                continue
            seen.add(dep)
            todo.append((dep, tuple(sorted(req.extras))))
    return seen


def test_the_base_install_pulls_no_optional_extra():
    assert closure() & HEAVY == set()


def test_each_extra_pulls_its_packages():
    for extra, packages in OPTIONAL.items():
        assert packages <= closure((extra,)), extra


def test_the_command_line_loads_no_extra_until_an_export_asks_for_it():
    code = (
        "import sys; from kldiv.cli.main import build_parser; build_parser();"
        "import kldiv.cli.export, kldiv.sweep.export, kldiv.sweep.tracking;"
        "print([m for m in ('pyarrow', 'mlflow', 'sqlalchemy', 'ray') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
