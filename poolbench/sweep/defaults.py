"""The trial server's concurrency when --workers/--threads are not given: what the site states for its
own gunicorn (``GUNICORN_CMD_ARGS``, a ``gunicorn.conf.py``, ``WEB_CONCURRENCY``), else poolbench's
measured default. Read with gunicorn's own configuration code, the way gunicorn itself would read it.

Precedence, as gunicorn applies it: ``GUNICORN_CMD_ARGS`` over the config file over ``WEB_CONCURRENCY``
(which is only gunicorn's default for ``workers``). The config file is the one ``GUNICORN_CMD_ARGS``
names with ``--config``/``-c``, else ``gunicorn.conf.py`` in the current directory (gunicorn's own
default) or in the project's ``BASE_DIR``. Explicit --workers/--threads and the POOLBENCH settings
``WORKERS``/``THREADS`` always win.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poolbench.sweep.plan import MAX_THREADS, MAX_WORKERS, PlanError

CONFIG_FILE = "gunicorn.conf.py"
# Measured on a 2-core machine (FACTS.md, 2026-12-01, grid --workers 1,2 --threads 8,32,64 --sizes 16):
# 2x32 gave the most (2,437 req/s; 1x32 1,480, 2x8 2,211, 2x64 2,014). One gthread worker runs at about
# one core (the GIL), so one worker per core, at most MAX_DEFAULT_WORKERS: more than measured, and every
# worker opens its own pool (4 x 200 connections already fills most servers' max_connections).
MAX_DEFAULT_WORKERS = 4
DEFAULT_THREADS = 32


@dataclass(frozen=True)
class ServerDefaults:
    """Workers and threads for the trials, and where each came from, in words for the opening lines."""

    workers: list[int]
    threads: list[int]
    workers_from: str
    threads_from: str

    @property
    def text(self) -> str:
        w, t = ",".join(map(str, self.workers)), ",".join(map(str, self.threads))
        if self.workers_from == self.threads_from:
            return f"workers {w} x threads {t} from {self.workers_from}"
        return f"workers {w} from {self.workers_from} x threads {t} from {self.threads_from}"


def measured_workers() -> int:
    """One gthread worker per core, at least 1, at most MAX_DEFAULT_WORKERS."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def server_defaults(
    workers: list[int] | None,
    threads: list[int] | None,
    *,
    given: tuple[str, str] = ("--workers", "--threads"),
    environ: dict[str, str] | None = None,
    base_dir: Path | None = None,
    cwd: Path | None = None,
) -> ServerDefaults:
    """``workers``/``threads`` as given (None: not given, then the site's or the measured default).
    ``given`` names where the given ones came from (an option, or a POOLBENCH setting)."""
    env = dict(os.environ if environ is None else environ)
    stated = site_concurrency(env, base_dir, Path.cwd() if cwd is None else cwd)
    measured = "poolbench's measured default (one worker per core, 32 threads)"
    w_from, t_from = given
    if workers is None:
        found = stated.get("workers")
        workers, w_from = ([found[0]], found[1]) if found else ([measured_workers()], measured)
    if threads is None:
        found = stated.get("threads")
        threads, t_from = ([found[0]], found[1]) if found else ([DEFAULT_THREADS], measured)
    return ServerDefaults(workers, threads, w_from, t_from)


def site_concurrency(env: dict[str, str], base_dir: Path | None, cwd: Path) -> dict[str, tuple[int, str]]:
    """What the site states: {"workers"/"threads": (value, where it says so)}."""
    from gunicorn.config import Config

    stated: dict[str, tuple[int, str]] = {}
    if env.get("WEB_CONCURRENCY", "").strip():
        stated["workers"] = (
            _bounded(env["WEB_CONCURRENCY"], "workers", "WEB_CONCURRENCY"),
            "WEB_CONCURRENCY",
        )
    cfg = Config()
    parser = cfg.parser()
    try:
        cli = parser.parse_args(_cmd_args(env))
    except SystemExit:
        raise PlanError(
            f"GUNICORN_CMD_ARGS={env.get('GUNICORN_CMD_ARGS')!r} is not a gunicorn command line (see the "
            "message above); fix it, or pass --workers and --threads"
        ) from None
    path = config_file(cli.config, base_dir, cwd)
    if path is not None:
        for name, value in read_config_file(path).items():
            if name in ("workers", "threads"):
                stated[name] = (_bounded(value, name, f"{path.name} ({path})"), path.name)
    for name in ("workers", "threads"):
        if getattr(cli, name, None) is not None:
            stated[name] = (_bounded(getattr(cli, name), name, "GUNICORN_CMD_ARGS"), "GUNICORN_CMD_ARGS")
    return stated


def _cmd_args(env: dict[str, str]) -> list[str]:
    import shlex

    return shlex.split(env.get("GUNICORN_CMD_ARGS", ""))


def config_file(named: str | None, base_dir: Path | None, cwd: Path) -> Path | None:
    """The gunicorn config file gunicorn would read: --config from GUNICORN_CMD_ARGS, else
    gunicorn.conf.py in the current directory, else in BASE_DIR."""
    if named:
        if named.startswith("python:"):
            return None  # a module on sys.path: gunicorn imports it; poolbench does not guess
        path = Path(named.removeprefix("file:"))
        path = path if path.is_absolute() else cwd / path
        if not path.is_file():
            raise PlanError(
                f"GUNICORN_CMD_ARGS names the config file {path}, which does not exist; fix the path, or "
                "pass --workers and --threads"
            )
        return path
    for folder in (cwd, base_dir):
        if folder is not None and (Path(folder) / CONFIG_FILE).is_file():
            return Path(folder) / CONFIG_FILE
    return None


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings of a gunicorn config file, read by gunicorn's own loader (it runs the file as
    Python, as gunicorn does); only the names gunicorn knows, with gunicorn's validation."""
    from gunicorn.app.base import Application

    class _Reader(Application):
        def load_config(self) -> None:  # gunicorn calls it from __init__
            pass

        def init(self, parser: Any, opts: Any, args: Any) -> None:
            return None

        def load(self) -> None:
            return None

    reader = _Reader()
    try:
        namespace = reader.get_config_from_filename(str(path))
    except SystemExit:  # gunicorn's loader prints the traceback and exits
        raise PlanError(
            f"{path} could not be read as a gunicorn config file (its traceback is above); fix it, or "
            "pass --workers and --threads"
        ) from None
    finally:
        sys.modules.pop("__config__", None)
    out: dict[str, Any] = {}
    for name, value in namespace.items():
        if name in reader.cfg.settings:
            try:
                reader.cfg.set(name, value)
            except Exception as exc:
                raise PlanError(f"{path}: {name} = {value!r} is not valid for gunicorn ({exc})") from None
            out[name] = reader.cfg.settings[name].get()
    return out


def _bounded(value: Any, name: str, where: str) -> int:
    maximum = MAX_WORKERS if name == "workers" else MAX_THREADS
    try:
        number = int(str(value).strip())
    except ValueError:
        raise PlanError(
            f"{where} gives {name} {value!r}, not a whole number; fix it, or pass --{name}"
        ) from None
    if not 1 <= number <= maximum:
        raise PlanError(f"{where} gives {name} {number}: poolbench runs 1 to {maximum}; pass --{name}")
    return number
