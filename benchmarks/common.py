"""Shared set-up of the benchmark scripts: the demo project, a throw-away results database, and a target.

By default the target is an embedded PostgreSQL (pgserver) that the sweep starts and stops itself, so a
fresh clone with the venv needs nothing else. ``--database-url postgres://...`` benchmarks a server instead.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def scratch_dir() -> Path:
    """A private temporary directory for a benchmark's results database, removed when the script exits
    (each run left one behind in $TMPDIR before)."""
    scratch = Path(tempfile.mkdtemp(prefix="poolbench-bench-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def setup_django(database_url: str | None) -> Path:
    """Configure the demo project with a results database of its own; return the scratch directory."""
    scratch = scratch_dir()
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    # SQLite results; the target is embedded unless a server URL is given (then results go there too).
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{scratch / 'results.sqlite3'}"
    os.environ["POOLBENCH_EMBEDDED"] = "0" if database_url else "1"
    import django

    django.setup()
    return scratch


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--database-url", help="Benchmark this server instead of an embedded PostgreSQL.")
    return p


def build_options(args: list[str]) -> Any:
    """SweepOptions exactly as `manage.py poolbench <args>` would build them (same defaults, same checks)."""
    from poolbench.management.commands.poolbench import Command

    cmd = Command()
    opts = vars(cmd.create_parser("manage.py", "poolbench").parse_args(args))
    return cmd.build_options(opts)


def machine() -> str:
    import psutil

    freq = psutil.cpu_freq()
    load = os.getloadavg()
    return (
        f"{platform.node()}: {os.cpu_count()} cores"
        + (f" @ {freq.max or freq.current:.0f} MHz" if freq else "")
        + f", {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, {platform.platform()}, "
        f"Python {platform.python_version()}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
