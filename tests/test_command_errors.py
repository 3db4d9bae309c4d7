"""Bad input: a CommandError that names the problem and the fix, and no row written, no process started."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from poolbench.models import Sweep

from .conftest import assert_refused, descendants

pytestmark = pytest.mark.django_db


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


def test_sqlite_alias_has_no_pool():
    with pytest.raises(CommandError) as info:
        call_command("poolbench", "--sizes", "2", "--database", "lite")
    assert str(info.value).startswith(
        "database 'lite' uses django.db.backends.sqlite3 (SQLite), which has no connection pool to size; "
    )
    assert "--embedded" in str(info.value)


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
