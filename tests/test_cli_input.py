"""Bad input on the command line: one line naming the flag, exit code 2, nothing trained."""

import re
import subprocess
import sys

import pytest

from kldiv.cli import MAX_SEEDS, parse_seeds
from kldiv.engine import runner


@pytest.fixture
def nothing_compiled(monkeypatch):
    """Refused up front: compiling a training program fails the test."""

    def fail(*args, **kwargs):
        raise AssertionError("a training program was compiled")

    monkeypatch.setattr(runner, "_program", fail)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        # 0. values, choices and flags (never abbreviated: a prefix would silently run another
        #    experiment)
        (
            ["run", "--epochs", "0"],
            r"^kldiv run: error: --epochs: expected an integer >= 1, got 0$",
        ),
        (["run", "--epochs", "x"], r"--epochs: expected an integer, got 'x'"),
        (
            ["run", "--learning-rate", "abc"],
            r"--learning-rate: expected a number, got 'abc'",
        ),
        (
            ["run", "--momentum", "2"],
            r"^kldiv run: error: --momentum: expected a number in \[0, 1\], got 2\.0$",
        ),
        (
            ["run", "--loss", "nope"],
            r"^kldiv run: error: --loss: expected one of 'ce', .*; got 'nope'$",
        ),
        (["run", "--seeds", "5-2"], r"--seeds: expected a count N, a range A-B"),
        (["run", "--hidden", "50,x"], r"--hidden: expected comma-separated layer widths"),
        (["run", "--seed", "1", "--seeds", "3"], r"not allowed with argument"),
        (["run", "--bogus"], r"unrecognized arguments: --bogus"),
        (["run", "--optimizer", "lion"], r"--optimizer: invalid choice: 'lion'"),
        (
            ["run", "--optimizer", "adam", "--momentum", "0.5"],
            r"^kldiv run: error: --momentum: not a hyperparameter of adam",
        ),
        (
            ["run", "--weight-decay", "0.1"],
            r"^kldiv run: error: --weight-decay: not a hyperparameter of sgd",
        ),
        (
            ["run", "--optimizer", "adam", "--b1", "1"],
            r"^kldiv run: error: --b1: expected a number in \[0, 1\)",
        ),
        (
            ["run", "--learning-rate", "1e-50"],
            r"^kldiv run: error: --learning-rate: expected a number float32 can hold",
        ),
        (
            ["run", "--data-seed", "4294967296"],
            r"^kldiv run: error: --data-seed: expected an integer in \[0, 4294967295\]",
        ),
        # flags are never abbreviated: a prefix would silently run another experiment
        (["compare", "--epochs", "5", "--seed", "3"], r"unrecognized arguments: --seed 3"),
        (["run", "--data-s", "5"], r"unrecognized arguments: --data-s 5"),
        (["run", "--e", "3"], r"unrecognized arguments: --e 3"),
        (["run", "--learning", "0.1"], r"unrecognized arguments: --learning 0\.1"),
        (
            ["compare", "--losses", "kl"],
            r"^kldiv compare: error: --losses: expected at least two different losses",
        ),
        (["compare", "--losses", "kl,kld"], r"--losses: expected at least two different losses"),
        (["compare", "--losses", "kl,nope"], r"^kldiv compare: error: --losses: expected one of"),
        (["fly"], r"invalid choice: 'fly'"),
        # 1. seed counts are bounded before any range is built; empty loss names are named
        (["run", "--seeds", "4294967296"], r"--seeds: expected .* 1 to 1,000,000 distinct seeds"),
        (["run", "--seeds", "0-99999999999999"], r"--seeds: expected .* 1 to 1,000,000"),
        (["run", "--seeds", "1000001"], r"--seeds: expected .*, got '1000001'$"),
        (["compare", "--losses", ""], r"--losses: expected comma-separated loss names"),
        (["compare", "--losses", ","], r"--losses: expected comma-separated loss names"),
        (["compare", "--losses", "kl,"], r"--losses: expected comma-separated loss names"),
        # 2. single seeds name their own flag
        (["run", "--seed", "4294967296"], r"--seed: expected an integer in \[0, 4294967295\]"),
        (["run", "--seed", "-1"], r"--seed: expected an integer in \[0, 4294967295\], got '-1'$"),
        (
            ["run", "--data-seed", "4294967296"],
            r"--data-seed: expected an integer in \[0, 4294967295",
        ),
        (["run", "--data-seed", "-1"], r"--data-seed: expected an integer in \[0, 4294967295\]"),
        # 3. a value starting with '-' that is a number belongs to the flag before it
        (
            ["run", "--learning-rate", "-inf"],
            r"--learning-rate: expected a number in \(0, inf\), got -inf$",
        ),
        (
            ["run", "--learning-rate", "-nan"],
            r"--learning-rate: expected a number in \(0, inf\), got nan$",
        ),
        (["run", "--learning-rate", "-1e-3"], r"--learning-rate: expected .*, got -0\.001$"),
        (
            ["run", "--momentum", "-1e-3"],
            r"--momentum: expected a number in \[0, 1\], got -0\.001$",
        ),
        (
            ["run", "--learning-rate", "inf"],
            r"--learning-rate: expected a number in \(0, inf\), got inf$",
        ),
        (
            ["run", "--learning-rate", "nan"],
            r"--learning-rate: expected a number in \(0, inf\), got nan",
        ),
        (
            ["run", "--learning-rate", "1e39"],
            r"--learning-rate: expected a number float32 can hold",
        ),
        (
            ["run", "--learning-rate", "1e-50"],
            r"--learning-rate: expected a number float32 can hold",
        ),
        # 4. float32 would round onto a boundary the value is not on
        (
            ["run", "--momentum", "0.99999999999"],
            r"--momentum: expected a number in \[0, 1\], got 0\.99999999999, which float32 "
            r"rounds to 1\.0$",
        ),
        (
            ["run", "--optimizer", "adam", "--b1", "0.99999999999"],
            r"--b1: expected a number in \[0, 1\), got 0\.99999999999, which float32 rounds to 1\.0$",
        ),
        # 5. reverse KL cannot train on one-hot labels, whatever the learning rate
        (
            ["run", "--loss", "reverse_kl"],
            r"^kldiv run: error: --loss: reverse_kl is infinite where a target probability is 0 "
            r"\(one-hot labels\); it trains only on targets with full support, such as soft labels$",
        ),
        (["compare", "--losses", "kl,reverse_kl"], r"^kldiv compare: error: --loss: reverse_kl is"),
        # 6. trainings that cannot fit in any machine's memory
        (
            ["run", "--hidden", "1000000000"],
            r"^kldiv run: error: --hidden: expected a training that fits",
        ),
        (
            ["run", "--seeds", "2", "--epochs", "1000000000"],
            r"--epochs: expected a training that fits",
        ),
        (
            ["run", "--seeds", "1000000", "--epochs", "1000"],
            r"--seeds: expected a training that fits",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_flag_exit_2(
    tmp_path, cli, nothing_compiled, args, pattern
):
    code, out, err = cli([*args, "--no-plot", "--out", str(tmp_path)])
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and "Warning" not in err
    assert re.search(pattern, err.rstrip("\n")), err
    assert re.match(r"kldiv( run| compare)?: error: ", err), err
    assert not list(tmp_path.iterdir()) and out == ""


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--hidden", "10000000"], "--hidden"),
        (["--batch-size", "100000000"], "--batch-size"),
        (["--hidden", "100000000"], "--hidden"),
        (["--seeds", "2", "--epochs", "1000000000"], "--epochs"),
    ],
)
def test_trainings_bigger_than_memory_are_refused_at_once(
    tmp_path, cli, monkeypatch, nothing_compiled, args, flag
):
    # the reproductions (bad_alloc, RESOURCE_EXHAUSTED, MemoryError) at widths and batches 100x
    # smaller were one seed padded to 25 runs; on a machine with 8 GB free
    monkeypatch.setattr(runner, "available_memory", lambda: 8 * 10**9)
    code, _, err = cli(["run", *args, "--no-plot", "--out", str(tmp_path)])
    assert code == 2, err
    assert re.fullmatch(
        rf"kldiv run: error: {flag}: expected a training that fits in the 8\.0 GB of memory "
        r"available, got one that needs about [\d.]+ [GT]B \(mostly [a-z ]+: [\d.]+ [GMT]B\)\n",
        err,
    ), err
    assert not list(tmp_path.iterdir())


def test_parse_seeds_counts_before_building():
    assert len(parse_seeds(str(MAX_SEEDS))) == MAX_SEEDS
    assert parse_seeds("4294967294-4294967295") == (4294967294, 4294967295)
    for text in (str(MAX_SEEDS + 1), f"0-{MAX_SEEDS}", "0-4294967296", "-1", "0", "3-2", ""):
        with pytest.raises(Exception, match=r"expected a count N"):
            parse_seeds(text)


def test_numbers_after_flags_are_values_and_do_not_touch_other_tokens(tmp_path, cli):
    # a plain value after a value-taking flag, a negative number after a flag that takes none
    code, _, err = cli(["run", "--quiet", "-1", "--out", str(tmp_path)])
    assert code == 2 and "unrecognized arguments: -1" in err


def test_help_states_the_seed_bound():
    result = subprocess.run(
        [sys.executable, "-m", "kldiv", "run", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "at most 1,000,000 seeds" in " ".join(result.stdout.split())


def test_version_and_no_command():
    from kldiv import __version__

    version = subprocess.run(
        [sys.executable, "-m", "kldiv", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout == f"kldiv {__version__}\n"
    bare = subprocess.run([sys.executable, "-m", "kldiv"], capture_output=True, text=True)
    assert bare.returncode == 2 and bare.stdout == ""
    assert bare.stderr.count("\n") == 1 and "kldiv --help" in bare.stderr, bare.stderr
