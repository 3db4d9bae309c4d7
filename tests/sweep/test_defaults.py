"""The trial server's workers x threads when --workers/--threads are not given (sweep/defaults.py):
what the site states for its gunicorn (a gunicorn.conf.py in the project or BASE_DIR,
GUNICORN_CMD_ARGS, WEB_CONCURRENCY), read by gunicorn's own loader, else the measured default;
explicit options and POOLBENCH settings always win. Also the default repeat count and trial length."""

from __future__ import annotations

import os

import pytest
from django.core.management import CommandError
from django.test import override_settings

from poolbench.conf import DEFAULTS
from poolbench.management.commands.poolbench import Command
from poolbench.sweep.defaults import DEFAULT_THREADS, MAX_DEFAULT_WORKERS

# POOLBENCH without the suite's pins of REPEAT and WORKERS (tests/settings.py): the shipped defaults.
SHIPPED = {"MIGRATE": False, "EMBEDDED": False}
MEASURED = "poolbench's measured default (one worker per core, 32 threads)"


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A project directory as the current directory, with no gunicorn settings in the environment."""
    for name in ("WEB_CONCURRENCY", "GUNICORN_CMD_ARGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with override_settings(POOLBENCH=SHIPPED, BASE_DIR=tmp_path / "elsewhere"):
        yield tmp_path


def build(*args: str):
    cmd = Command()
    return cmd.build_options(
        vars(cmd.create_parser("manage.py", "poolbench").parse_args(["--sizes", "2", *args]))
    )


def server(built) -> set[tuple[int, int]]:
    return {(s.workers, s.threads) for s in built.plan.specs}


def test_nothing_stated_gives_the_measured_default(site):
    built = build()
    workers = max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))
    assert server(built) == {(workers, DEFAULT_THREADS)}
    assert built.server_source == f"workers {workers} x threads 32 from {MEASURED}"


def test_a_gunicorn_conf_py_in_the_project_directory_is_read_by_gunicorns_loader(site):
    # Python, as gunicorn runs it: computed values and settings poolbench does not use are fine.
    (site / "gunicorn.conf.py").write_text(
        "import os\nworkers = int(os.environ.get('SHOP_WORKERS', '1')) + 2\nthreads = 4 * 2\nbind = '0.0.0.0:80'\n"
    )
    built = build()
    assert server(built) == {(3, 8)}
    assert built.server_source == "workers 3 x threads 8 from gunicorn.conf.py"


def test_a_gunicorn_conf_py_in_base_dir_counts_too(site, tmp_path):
    base = tmp_path / "project"
    base.mkdir()
    (base / "gunicorn.conf.py").write_text("workers = 4\n")
    with override_settings(BASE_DIR=base):
        built = build()
    assert server(built) == {(4, DEFAULT_THREADS)}
    assert built.server_source == f"workers 4 from gunicorn.conf.py x threads 32 from {MEASURED}"


def test_web_concurrency_then_gunicorn_cmd_args_as_gunicorn_orders_them(site, monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert server(build()) == {(3, DEFAULT_THREADS)}
    assert build().server_source.startswith("workers 3 from WEB_CONCURRENCY x threads 32 from ")
    (site / "gunicorn.conf.py").write_text("workers = 2\nthreads = 6\n")
    assert server(build()) == {(2, 6)}  # the file over WEB_CONCURRENCY (gunicorn's default only)
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--bind 127.0.0.1:9 -w 5 --threads=12")
    built = build()
    assert server(built) == {(5, 12)}  # the command line over the file
    assert built.server_source == "workers 5 x threads 12 from GUNICORN_CMD_ARGS"


def test_gunicorn_cmd_args_may_name_the_config_file(site, monkeypatch):
    (site / "deploy").mkdir()
    (site / "deploy" / "prod.py").write_text("workers = 6\nthreads = 2\n")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "-c deploy/prod.py")
    assert server(build()) == {(6, 2)}
    assert build().server_source == "workers 6 x threads 2 from prod.py"


def test_explicit_options_and_settings_win(site, monkeypatch):
    (site / "gunicorn.conf.py").write_text("workers = 3\nthreads = 8\n")
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    built = build("--workers", "1", "--threads", "16")
    assert server(built) == {(1, 16)}
    assert built.server_source == "workers 1 from --workers x threads 16 from --threads"
    built = build("--threads", "16")
    assert server(built) == {(3, 16)}
    assert built.server_source == "workers 3 from gunicorn.conf.py x threads 16 from --threads"
    with override_settings(POOLBENCH={**SHIPPED, "WORKERS": 2}):
        assert (
            build().server_source == "workers 2 from POOLBENCH['WORKERS'] x threads 8 from gunicorn.conf.py"
        )


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            {"WEB_CONCURRENCY": "lots"},
            "WEB_CONCURRENCY gives workers 'lots', not a whole number; fix it, or pass --workers",
        ),
        (
            {"WEB_CONCURRENCY": "500"},
            "WEB_CONCURRENCY gives workers 500: poolbench runs 1 to 64; pass --workers",
        ),
        (
            {"GUNICORN_CMD_ARGS": "-c missing.py"},
            "GUNICORN_CMD_ARGS names the config file {site}/missing.py, which does not exist; fix the path, "
            "or pass --workers and --threads",
        ),
        (
            {"file": "workers = (\n"},
            "{site}/gunicorn.conf.py could not be read as a gunicorn config file (its traceback is above); "
            "fix it, or pass --workers and --threads",
        ),
        (
            {"file": "threads = 0\n"},
            "gunicorn.conf.py ({site}/gunicorn.conf.py) gives threads 0: poolbench runs 1 to 1000; pass --threads",
        ),
    ],
)
def test_a_bad_site_setting_is_refused_naming_it_and_the_fix(site, monkeypatch, capsys, setup, message):
    for name, value in setup.items():
        if name == "file":
            (site / "gunicorn.conf.py").write_text(value)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(CommandError) as info:
        build()
    assert str(info.value) == message.format(site=site)


def test_the_default_sweep_runs_five_interleaved_passes_of_five_seconds(site):
    assert (DEFAULTS["REPEAT"], DEFAULTS["DURATION"], DEFAULTS["WARMUP"]) == (5, 5.0, 2.0)
    built = build("--sizes", "5,10,16,200")
    assert len(built.plan.specs) == 20 and built.load.duration == 5.0 and built.load.warmup == 2.0
    assert [sorted(s.size for s in built.plan.specs if s.repeat == p) for p in range(1, 6)] == [
        [5, 10, 16, 200]
    ] * 5
    assert built.seed is not None
