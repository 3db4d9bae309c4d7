# ruff: noqa: E501  (a table of exact messages: one row per line reads best)
"""Bad input (issue 8): every invalid argument is refused with a message naming the problem and
the fix, before any row is written or any process started; the parsers never fail otherwise.

To cover a new option, add a row to BAD_ARGUMENTS (or BAD_ENVIRONMENT for the demo project's
environment variables).
"""

from __future__ import annotations

import math
import socket
import sqlite3
from argparse import ArgumentTypeError

import pytest
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolbench.sweep.options import OPTIONS
from poolbench.sweep.plan import MAX_SIZE, PlanError, parse_duration, parse_sizes
from tests.conftest import ROOT, assert_refused, run_manage

USE_DURATION = "use seconds like 10, 10s, 500ms or 2m"

BAD_ARGUMENTS = [
    # sizes
    (["--sizes", "5,,10"], "--sizes '5,,10' has an empty item; separate sizes with single commas, e.g. --sizes 5,10"),
    (["--sizes", "-5"], "--sizes '-5': '-5' is not a whole number; use positive integers, e.g. 5,10"),
    (["--sizes", "٣"], "--sizes '٣': '٣' is not a whole number; use positive integers, e.g. 5,10"),
    (["--sizes", "20000"], "--sizes '20000': size 20000 is larger than 10000; use 10000 or less"),
    (["--sizes", "9" * 5000], f"--sizes '{'9' * 5000}': size 10001 is larger than 10000; use 10000 or less"),
    # modes
    (["--mode", "turbo"], "--mode: unknown mode 'turbo'; choose from pool, queuepool, persistent, none"),
    (["--mode", "pool,pool"], "--mode: 'pool' is repeated; list each mode once"),
    ([ "--mode", ","], "--mode is empty; choose from pool, queuepool, persistent, none"),
    (["--mode", "pool", "--database", "mysql"], "--mode pool is not available on mysql; use --mode queuepool (SQLAlchemy QueuePool)"),
    # server
    (["--workers", "0"], "--workers '0': worker count 0 is not positive; every worker count must be 1 or more"),
    (["--workers", "65"], "--workers '65': worker count 65 is larger than 64; use 64 or less"),
    (["--threads", "2000"], "--threads '2000': thread count 2000 is larger than 1000; use 1000 or less"),
    (["--bind", "192.0.2.1"], "--bind '192.0.2.1': cannot listen on this address (Cannot assign requested address); use 127.0.0.1 (the default) or an address of this machine"),
    # load
    (["--users", "0"], "--users '0' must be 1 or more"),
    (["--users", "lots"], "--users 'lots' is not a whole number; give a positive integer"),
    (["--users", "100001"], "--users '100001' is larger than 100000"),
    (["--spawn-rate", "-1"], "--spawn-rate '-1' must be 0 or more"),
    (["--spawn-rate", "nan"], "--spawn-rate 'nan' is not a finite number"),
    (["--locustfile", "tests"], "--locustfile {root}/tests: no such file; give the path of a Locust scenario (.py)"),
    # paths (pages of the site) and the user they are loaded as
    (["--path", "books"], "--path 'books' must start with a single / (a path on your site, not a URL; poolbench adds the trial server's host), e.g. --path /books/"),
    (["--path", "//evil.example/x"], "--path '//evil.example/x' must start with a single / (a path on your site, not a URL; poolbench adds the trial server's host), e.g. --path /books/"),
    (["--path", "/a/:0"], "--path '/a/:0': weight 0 is not positive; use 1 or more, e.g. --path /books/:3"),
    (["--path", "/a/", "--path", "/a/"], "--path /a/ is given twice; give each path once, with a weight for a larger share, e.g. --path /a/:3"),
    (["--login-user", "nobody-i8"], "--login-user nobody-i8: no such user (auth.User.username) in the site's database; give an existing username or create one with `python manage.py createsuperuser`"),
    # report files
    (["--report", "/no/such/dir/r.html"], "--report /no/such/dir/r.html: directory /no/such/dir does not exist; create it or write elsewhere"),
    (["--report", "same.out", "--json", "same.out"], "--report and --json name the same file; give each its own path"),
    # durations
    (["--duration", "0"], "--duration '0' is too short; it must be at least 1s"),
    (["--duration", "2d"], f"--duration '2d' is not a duration; {USE_DURATION}"),
    (["--duration", "25h"], "--duration '25h' is longer than a day; use a shorter duration"),
    (["--warmup", "-1"], f"--warmup '-1' is not a duration; {USE_DURATION}"),
    (["--pool-timeout", "0"], "--pool-timeout '0' is too short; it must be more than 0"),
    # pool
    (["--pool-min", "8", "--sizes", "4,16"], "--pool-min 8 is larger than size(s) 4; use a --pool-min no larger than the smallest size"),
    (["--max-overflow", "-1"], "--max-overflow '-1' is not a whole number; give a non-negative integer"),
    (["--conn-max-age", "0"], "--conn-max-age '0' must be 1 or more"),
    (["--repeat", "101"], "--repeat '101' is larger than 100"),
    (["--query-delay-ms", "-5"], "--query-delay-ms '-5' must be 0 or more"),
    # aliases
    (["--database", "nope"], "unknown database alias 'nope'; use one of: default, lite, mysql, unreachable (see DATABASES)"),
    (["--database", "lite"], "database 'lite' uses django.db.backends.sqlite3 (SQLite), which has no connection pool to size; benchmark a PostgreSQL or MySQL/MariaDB alias (--database, or DATABASE_URL=postgres://... in the demo project), or use --embedded to benchmark an embedded PostgreSQL"),
    # issue 16 item 10: found by loading, binding or writing, still before any row or process
    (["--locustfile", "{tmp}/syntax.py"], "--locustfile {tmp}/syntax.py: Locust cannot load it: SyntaxError: expected ':'; fix the scenario (`locust -f {tmp}/syntax.py --list` shows the whole error)"),
    (["--locustfile", "{tmp}/nouser.py"], "--locustfile {tmp}/nouser.py: defines no User class; define one that subclasses locust's HttpUser or FastHttpUser, with at least one @task"),
    (["--locustfile", "{tmp}/raises.py"], "--locustfile {tmp}/raises.py: Locust cannot load it: RuntimeError: boom at import; fix the scenario (`locust -f {tmp}/raises.py --list` shows the whole error)"),
    (["--locustfile", "{tmp}/a,b/good.py"], "--locustfile {tmp}/a,b/good.py: the path contains a comma, which Locust reads as a list of files (-f a.py,b.py); rename the file or its directory, or give a path without a comma"),
    (["--report", "/proc/report.html"], "--report /proc/report.html: cannot create a file in /proc (No such file or directory); choose a directory you can write, e.g. --report ./report.html"),
    (["--json", "/sys/kernel/x.json"], "--json /sys/kernel/x.json: cannot create a file in /sys/kernel (Permission denied); choose a directory you can write, e.g. --json ./x.json"),
    (["--embedded", "--login-user", "alice"], "--login-user alice cannot be used with the embedded PostgreSQL: the site's users, sessions (django_session) and pages are in its own database, not in the embedded one; benchmark the site's database instead (--database ALIAS, or DATABASE_URL in the demo project)"),
    (["--expect-workers", "1", "--master-bind", "127.0.0.1:{busy_port}"], "--master-bind 127.0.0.1:{busy_port}: port {busy_port} is in use; stop what uses it or choose another port for Locust's master, e.g. --master-bind 127.0.0.1:{busy_port_10}"),
    # found after connecting, still before any row or process
    (["--sizes", "200", "--workers", "1"], "pool 200 may open 200 connections (workers x (pool size + overflow) = 1 x (200 + 0)), but the server's max_connections is {max_connections} and 5 are kept in reserve ({usable} usable). Use smaller --sizes, --max-overflow or --workers, raise max_connections on the server, or pass --allow-over-max to run it anyway (recorded on the sweep and its trials)"),
]  # fmt: skip


def _max_connections() -> int:
    with connections["default"].cursor() as cur:
        cur.execute("SHOW max_connections")
        return int(cur.fetchone()[0])


# Scenarios Locust cannot use (issue 16 item 10), written for each test: a file with a syntax error
# would not pass the linter in the repository.
BAD_SCENARIOS = {
    "syntax.py": "from locust import HttpUser\nclass U(HttpUser)\n    pass\n",
    "nouser.py": "x = 1\n",
    "raises.py": "raise RuntimeError('boom at import')\n",
    "a,b/good.py": "from locust import HttpUser, task\nclass U(HttpUser):\n    @task\n    def t(self):\n        pass\n",
}


def write_scenarios(directory) -> None:
    for name, text in BAD_SCENARIOS.items():
        (directory / name).parent.mkdir(exist_ok=True)
        (directory / name).write_text(text)


# transaction=True: the checks after connecting close the harness's connections, as they do in real use.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("args", "message"), BAD_ARGUMENTS, ids=[" ".join(a)[:40] for a, _ in BAD_ARGUMENTS])
def test_bad_argument_is_refused_before_anything_runs(args, message, tmp_path):
    assert len(BAD_ARGUMENTS) >= 20
    limit = _max_connections()
    write_scenarios(tmp_path)
    with socket.socket() as busy:  # a port something else listens on
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        values = dict(
            max_connections=limit,
            usable=limit - 5,
            root=ROOT,
            tmp=tmp_path,
            busy_port=port,
            busy_port_10=port + 10,
        )
        assert_refused([a.format(**values) for a in args], message.format(**values))


# The same checks from the command line (exit status 1, one line, no results written, nothing left in
# TMPDIR); --settings only takes effect there.
BAD_COMMAND_LINES = [
    (
        ["--settings", "nosuch.settings"],
        "Error: --settings nosuch.settings: no such module (No module named 'nosuch'); give the dotted path of a settings module as Python imports it, e.g. --settings project.settings",
    ),
    (
        ["--locustfile", "{tmp}/syntax.py"],
        "CommandError: --locustfile {tmp}/syntax.py: Locust cannot load it: SyntaxError: expected ':'; fix the scenario (`locust -f {tmp}/syntax.py --list` shows the whole error)",
    ),
    (
        ["--login-user", "alice"],
        "CommandError: --login-user alice cannot be used with the embedded PostgreSQL: the site's users, sessions (django_session) and pages are in its own database, not in the embedded one; benchmark the site's database instead (--database ALIAS, or DATABASE_URL in the demo project)",
    ),
    (
        ["--report", "/proc/report.html"],
        "CommandError: --report /proc/report.html: cannot create a file in /proc (No such file or directory); choose a directory you can write, e.g. --report ./report.html",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_COMMAND_LINES, ids=[a[1] for a, _ in BAD_COMMAND_LINES])
def test_bad_command_line_is_refused_before_anything_runs(args, message, tmp_path):
    scenarios, temp = tmp_path / "scenarios", tmp_path / "temp"
    scenarios.mkdir()
    temp.mkdir()
    write_scenarios(scenarios)
    results = tmp_path / "results.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{results}", "TMPDIR": str(temp)}
    result = run_manage(
        "poolbench", "--sizes", "2", *[a.format(tmp=scenarios) for a in args], env=env, timeout=120
    )
    assert (result.returncode, result.stderr.strip().splitlines()) == (1, [message.format(tmp=scenarios)])
    assert list(temp.iterdir()) == []  # no state directory, no embedded database
    if results.exists():  # the demo creates the tables on first use; a refused sweep writes no row
        with sqlite3.connect(results) as db:
            # The file may exist without tables (opened before the check refused): then no row either.
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "poolbench_sweep" in tables:
                assert db.execute("SELECT count(*) FROM poolbench_sweep").fetchone() == (0,)


@pytest.mark.django_db
def test_settings_other_than_the_loaded_ones_are_refused():
    """--settings that did not take effect (call_command(), or a manage.py that loads the settings
    before Django reads --settings): the command and the trial servers would run different settings."""
    from django.conf import settings

    assert_refused(
        ["--settings", "nosuch.settings"],
        f"--settings nosuch.settings: no such module; give the dotted path of your settings module as Python imports it, e.g. --settings {settings.SETTINGS_MODULE}",
    )
    assert_refused(
        ["--settings", "project.settings"],
        f"--settings project.settings: this command already runs with the settings {settings.SETTINGS_MODULE} (loaded before --settings was read), and the trial servers would load project.settings; run `DJANGO_SETTINGS_MODULE=project.settings python manage.py poolbench ...` instead",
    )


_USE_URL = "use postgres://USER@HOST:5432/NAME, mysql://USER@HOST:3306/NAME or sqlite:///PATH"

BAD_ENVIRONMENT = [
    ({"DATABASE_URL": "bogus://x"}, f"Error: DATABASE_URL has an unknown scheme 'bogus'; {_USE_URL}"),
    ({"DATABASE_URL": "localhost:5432"}, f"Error: DATABASE_URL is not a database URL; {_USE_URL}"),
    (
        {"DATABASE_URL": "postgres://root:hunter2-i8@127.0.0.1:1/test"},
        "CommandError: cannot connect to the results database 'default' (postgresql://root@127.0.0.1:1/test): "
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused Is the server '
        "running on that host and accepting TCP/IP connections?. Start the server or fix DATABASES / DATABASE_URL",
    ),
]


@pytest.mark.parametrize(
    ("env", "message"), BAD_ENVIRONMENT, ids=[e["DATABASE_URL"][:20] for e, _ in BAD_ENVIRONMENT]
)
def test_bad_database_url_in_the_demo_project(env, message, tmp_path):
    result = run_manage("poolbench", "--sizes", "2", env={**env, "TMPDIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [message]
    assert "hunter2" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


# Property-based: the parsers return a valid value or raise PlanError (the argparse types: ArgumentTypeError),
# nothing else, ever.


def argument_type(flag: str):
    """The argparse ``type=`` of ``flag``, as the command declares it."""
    return next(option.type for option in OPTIONS if option.flag == flag)


_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}
_spaces = st.sampled_from(["", " ", "  ", "\t"])


@given(st.lists(st.integers(1, MAX_SIZE), min_size=1, max_size=12, unique=True), _spaces, _spaces)
def test_sizes_round_trip(sizes, before, after):
    text = ",".join(f"{before}{s}{after}" for s in sizes)
    assert parse_sizes(text) == sizes


@given(st.text(max_size=40))
@settings(max_examples=400)
def test_sizes_valid_or_plan_error(text):
    try:
        sizes = parse_sizes(text)
    except PlanError as exc:
        assert str(exc).startswith("--sizes ")
        return
    assert sizes and len(set(sizes)) == len(sizes)
    assert all(isinstance(s, int) and 1 <= s <= MAX_SIZE for s in sizes)
    assert parse_sizes(",".join(map(str, sizes))) == sizes


@given(
    st.integers(0, 200_000),
    st.one_of(st.just(""), st.integers(0, 999).map(lambda f: f".{f:03d}")),
    st.sampled_from(sorted(_UNITS)),
    _spaces,
)
def test_duration_round_trip(whole, fraction, unit, space):
    text = f"{whole}{fraction}{space}{unit}"
    expected = float(f"{whole}{fraction}") * _UNITS[unit]
    if 0 < expected <= 24 * 3600:
        assert math.isclose(parse_duration(text, "--duration"), expected, rel_tol=1e-12)
    else:
        with pytest.raises(PlanError):
            parse_duration(text, "--duration")


@given(
    st.one_of(st.text(max_size=30), st.from_regex(r"\A\s*-?[0-9٠-٩]{0,400}(\.[0-9]*)?\s*(ms|s|m|h|d)?\s*\Z"))
)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_duration_valid_or_plan_error(text):
    try:
        seconds = parse_duration(text, "--duration", minimum=1)
    except PlanError as exc:
        assert str(exc).startswith("--duration ")
        return
    assert isinstance(seconds, float) and 1 <= seconds <= 24 * 3600


@given(st.one_of(st.text(max_size=30), st.from_regex(r"\A\+?[0-9²٣]{1,60}\Z")))
@settings(max_examples=300)
def test_whole_number_options_valid_or_plan_error(text):
    try:
        value = argument_type("--users")(text)
    except ArgumentTypeError as exc:
        assert str(exc).startswith("--users ")
    else:
        assert isinstance(value, int) and 1 <= value <= 100_000
    try:
        rate = argument_type("--spawn-rate")(text)
    except ArgumentTypeError as exc:
        assert str(exc).startswith("--spawn-rate ")
    else:
        assert math.isfinite(rate) and rate >= 0
