"""The command's options (poolbench.sweep.options): each argparse type refuses a bad value with its exact
message, a refused value reaches the user as that message alone, and the POOLBENCH settings supply the
defaults; bad input through the command is refused before any row is written or any process started."""

from __future__ import annotations

import os
from argparse import ArgumentTypeError

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from poolbench.conf import DEFAULTS
from poolbench.management.commands.poolbench import Command
from poolbench.models import Sweep
from poolbench.sweep import options
from poolbench.sweep.options import OPTIONS
from tests.conftest import assert_refused, descendants, run_manage


def argument_type(flag: str):
    return next(option.type for option in OPTIONS if option.flag == flag)


@pytest.mark.parametrize(
    ("flag", "text", "message"),
    [
        ("--sizes", "5,x", "--sizes '5,x': 'x' is not a whole number; use positive integers, e.g. 5,10"),
        ("--workers", "1,1", "--workers '1,1': worker count 1 is repeated; list each worker count once (use --repeat)"),
        ("--users", "²", "--users '²' is not a whole number; give a positive integer"),
        ("--users", "9" * 30, f"--users '{'9' * 30}' is larger than 100000"),
        ("--pool-min", "-1", "--pool-min '-1' is not a whole number; give a non-negative integer"),
        ("--expect-workers", "0", "--expect-workers '0' must be 1 or more"),
        ("--spawn-rate", "x", "--spawn-rate 'x' is not a number"),
        ("--spawn-rate", "inf", "--spawn-rate 'inf' is not a finite number"),
        ("--query-delay-ms", "-1", "--query-delay-ms '-1' must be 0 or more"),
        ("--tolerance", "100", "--tolerance '100' must be below 100 (percent of the best throughput)"),
        ("--fail-under-rps", "x", "--fail-under-rps 'x' is not a number; give req/s, e.g. --fail-under-rps 500"),
        ("--max-p99-ms", "nan", "--max-p99-ms 'nan' must be a positive number; give milliseconds, e.g. --max-p99-ms 250"),
        ("--max-failure-rate", "101", "--max-failure-rate '101' is a percent of requests; give 0 to 100"),
        ("--locust-processes", "-2", "--locust-processes '-2' is not a whole number; give a positive integer"),
        ("--locust-processes", "257", "--locust-processes '257' is larger than 256"),
        ("--master-bind", "[::1]x", "--master-bind '[::1]x' is not HOST[:PORT]; e.g. --master-bind 0.0.0.0:5557"),
        ("--master-bind", ":0", "--master-bind ':0': port '0' is not a port number 1-65535; e.g. --master-bind 0.0.0.0:5557"),
        ("--duration", "1ms", "--duration '1ms' is too short; it must be at least 1s"),
        ("--workers-timeout", "x", "--workers-timeout 'x' is not a duration; use seconds like 10, 10s, 500ms or 2m"),
        ("--path", "/a/:12345678901", "--path '/a/:12345678901': weight '12345678901' is not a whole number; put a positive integer after the last colon, e.g. --path /books/:3"),
        ("--bind", "192.0.2.1", "--bind '192.0.2.1': cannot listen on this address (Cannot assign requested address); use 127.0.0.1 (the default) or an address of this machine"),
        ("--locustfile", "/no/such.py", "--locustfile /no/such.py: no such file; give the path of a Locust scenario (.py)"),
        ("--json", "/no/such/dir/x.json", "--json /no/such/dir/x.json: directory /no/such/dir does not exist; create it or write elsewhere"),
    ],
)  # fmt: skip
def test_a_type_refuses_a_bad_value_with_its_message(flag, text, message):
    with pytest.raises(ArgumentTypeError) as info:
        argument_type(flag)(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("flag", "text", "value"),
    [
        ("--sizes", " AUTO ", options.AUTO),
        ("--sizes", "10,5", [10, 5]),
        ("--threads", "+8", [8]),
        ("--users", " 12 ", 12),
        ("--spawn-rate", "0", 0.0),
        ("--warmup", "0", 0.0),
        ("--duration", "1m", 60.0),
        ("--locust-processes", "-1", os.cpu_count() or 1),
        ("--master-bind", "[::1]:6000", ("::1", 6000)),
        ("--master-bind", "0.0.0.0", ("0.0.0.0", 5557)),
        ("--path", "/books/:3", ("/books/", 3)),
        ("--bind", "localhost", "127.0.0.1"),
    ],
)
def test_a_type_returns_the_value(flag, text, value):
    assert argument_type(flag)(text) == value


def test_the_defaults_live_in_the_settings():
    for option in OPTIONS:
        assert option.setting is None or option.setting in DEFAULTS, option.flag
    parser = Command().create_parser("manage.py", "poolbench")
    parsed = vars(parser.parse_args([]))
    assert all(parsed[option.dest] is None for option in OPTIONS if option.flag != "--database")
    assert DEFAULTS["CONN_MAX_AGE"] == 600


def _build(*args: str):
    cmd = Command()
    return cmd.build_options(vars(cmd.create_parser("manage.py", "poolbench").parse_args(list(args))))


def test_a_setting_supplies_an_option_not_given():
    built = _build("--sizes", "2", "--mode", "persistent,pool")
    assert [s.conn_max_age for s in built.plan.specs] == [600, None]
    assert built.tolerance == 0.05 and built.load.users == DEFAULTS["USERS"]
    with override_settings(POOLBENCH={"CONN_MAX_AGE": 30, "REPEAT": 2, "TOLERANCE": 10, "THREADS": [4, 8]}):
        built = _build("--sizes", "2", "--mode", "persistent")
        # Each pass in its own random order (sweep/plan.py): compare the passes as sets.
        assert sorted((s.repeat, s.conn_max_age, s.threads) for s in built.plan.specs) == [
            (1, 30, 4), (1, 30, 8), (2, 30, 4), (2, 30, 8),
        ]  # fmt: skip
        assert built.tolerance == 0.10
        assert (
            _build("--sizes", "2", "--mode", "persistent", "--conn-max-age", "7").plan.specs[0].conn_max_age
            == 7
        )


def test_a_bad_setting_is_refused_as_the_option_would_be():
    with override_settings(POOLBENCH={"DURATION": 0}), pytest.raises(CommandError) as info:
        _build("--sizes", "2")
    assert str(info.value) == "--duration 0 is too short; it must be at least 1s"


def test_a_refused_value_is_a_command_error_with_its_own_message():
    parser = Command().create_parser("", "poolbench")
    with pytest.raises(CommandError) as info:
        parser.parse_args(["--repeat", "0"])
    assert str(info.value) == "--repeat '0' must be 1 or more"
    # argparse's own errors stay Django's.
    with pytest.raises(CommandError) as info:
        parser.parse_args(["--repeat"])
    assert str(info.value) == "Error: argument --repeat: expected one argument"


def test_a_refused_value_on_the_command_line_is_a_command_error(tmp_path):
    result = run_manage("poolbench", "--sizes", "5,abc", env={"TMPDIR": str(tmp_path)}, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "CommandError: --sizes '5,abc': 'abc' is not a whole number; use positive integers, e.g. 5,10"
    ]
    result = run_manage("poolbench", "--sizes", env={"TMPDIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[-1]
        == "manage.py poolbench: error: argument --sizes: expected one argument"
    )


# Bad input through the command: a CommandError that names the problem and the fix, and no row
# written, no process started.


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--sizes", "5,abc"],
            "--sizes '5,abc': 'abc' is not a whole number; use positive integers, e.g. 5,10",
        ),
        (
            ["--sizes", ""],
            "--sizes is empty; give a comma-separated list of positive integers, e.g. --sizes 5,10",
        ),
        (["--sizes", "5,5"], "--sizes '5,5': size 5 is repeated; list each size once (use --repeat)"),
        (["--sizes", "0"], "--sizes '0': size 0 is not positive; every size must be 1 or more"),
        (
            ["--database", "nope"],
            "unknown database alias 'nope'; use one of: default, lite, mysql, unreachable (see DATABASES)",
        ),
        (
            ["--locustfile", "/no/such/file.py"],
            "--locustfile /no/such/file.py: no such file; give the path of a Locust scenario (.py)",
        ),
        (
            ["--duration", "soon"],
            "--duration 'soon' is not a duration; use seconds like 10, 10s, 500ms or 2m",
        ),
        (
            ["--mode", "pool", "--database", "mysql"],
            "--mode pool is not available on mysql; use --mode queuepool (SQLAlchemy QueuePool)",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_runs(args, message):
    assert_refused(args, message)


@pytest.mark.django_db
def test_sqlite_alias_has_no_pool():
    with pytest.raises(CommandError) as info:
        call_command("poolbench", "--sizes", "2", "--database", "lite")
    assert str(info.value).startswith(
        "database 'lite' uses django.db.backends.sqlite3 (SQLite), which has no connection pool to size; "
    )
    assert "--embedded" in str(info.value)


@pytest.mark.django_db
def test_unreachable_database_is_named():
    before = descendants()
    with pytest.raises(CommandError) as info:
        call_command("poolbench", "--sizes", "2", "--database", "unreachable")
    assert str(info.value).startswith(
        "cannot connect to the database of alias 'unreachable' (postgresql://root@127.0.0.1:1/test): "
    )
    assert str(info.value).endswith("Start the server or fix DATABASES / DATABASE_URL.")
    assert not Sweep.objects.exists()
    assert descendants() <= before
