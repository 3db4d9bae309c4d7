"""The command's options: one table of arguments, argparse ``type=`` callables that refuse a bad value
with a message naming the fix, and :func:`build_options`, the one place the cross-option rules live.

Every ``type=`` raises :class:`argparse.ArgumentTypeError`; :class:`OptionsParser` turns it into a
``CommandError`` carrying the same message, from ``call_command`` and from ``manage.py`` alike.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import shlex
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from poolbench import backends
from poolbench.backends import POOLED_MODES
from poolbench.conf import get_config
from poolbench.results import export
from poolbench.results.analysis import Gates
from poolbench.sweep import rate_options
from poolbench.sweep.defaults import server_defaults
from poolbench.sweep.load import DEFAULT_LOCUSTFILE, DEFAULT_MASTER_PORT, LoadSettings
from poolbench.sweep.plan import (
    MAX_THREADS,
    MAX_WORKERS,
    PlanError,
    build_plan,
    parse_duration,
    parse_failure_rate,
    parse_gate,
    parse_int_list,
    parse_master_bind,
    parse_modes,
    parse_number,
    parse_path,
    parse_processes,
    parse_sizes,
    parse_tolerance,
    parse_whole_number,
    unique_paths,
)
from poolbench.sweep.probes import check_probe_options, parse_probe_ms
from poolbench.sweep.rate_options import parse_arrivals, parse_headroom, parse_rate
from poolbench.sweep.run import SweepOptions
from poolbench.sweep.site import SiteError, find_login_user, trial_overrides
from poolbench.sweep.targets import Target, TargetError, redact, resolve
from poolbench.sweep.validate import check_before_start

MAX_SEED = 2**32 - 1
AUTO = "auto"  # --sizes auto: the search picks the sizes (poolbench.sweep.run)
ArgumentType = Callable[[Any], Any]


def typed(parse: Callable[..., Any], *args: Any, **kwargs: Any) -> ArgumentType:
    """An argparse ``type=``: ``parse(text, *args, **kwargs)``, its PlanError made argparse's error."""

    def convert(text: Any) -> Any:
        try:
            return parse(text, *args, **kwargs)
        except (PlanError, export.ExportError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = convert.__qualname__ = parse.__name__
    return convert


# A statement held longer than this outlives any trial worth running (and the command, see issue 16).
MAX_QUERY_DELAY_MS = 60_000


def parse_query_delay(text: str) -> float:
    """--query-delay-ms: 0 to MAX_QUERY_DELAY_MS milliseconds."""
    delay = parse_number(text, "--query-delay-ms", allow_zero=True)
    if delay > MAX_QUERY_DELAY_MS:
        raise PlanError(
            f"--query-delay-ms {text!r} is more than {MAX_QUERY_DELAY_MS} (one minute per query); "
            "give at most --query-delay-ms 60000"
        )
    return delay


def _sizes(text: str) -> list[int] | str:
    return AUTO if text.strip().lower() == AUTO else parse_sizes(text)


def bind_address(address: str) -> str:
    """The trial servers bind here: refuse an address this machine cannot listen on, now."""
    if address == "localhost":
        address = "127.0.0.1"
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise argparse.ArgumentTypeError(
            f"--bind {address!r}: cannot listen on this address ({reason}); "
            "use 127.0.0.1 (the default) or an address of this machine"
        ) from None
    return address


def bind_warning(address: str) -> str:
    """What to tell the user about ``--bind address`` ('' for a loopback one: 127.0.0.0/8, ::1)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        ip = None
    if address == "localhost" or (ip is not None and ip.is_loopback):
        return ""
    everywhere = address in ("", "*") or (ip is not None and ip.is_unspecified)
    where = "on every network this machine is on" if everywhere else f"to the network of {address}"
    return (
        f"The trial servers will listen on {address or '*'}: the whole site, not only the probe, is served "
        f"{where} while the sweep runs (the statistics endpoint still needs this run's token)."
    )


def locustfile(value: Any) -> Path:
    found = Path(value).resolve()
    if not found.is_file():
        raise argparse.ArgumentTypeError(
            f"--locustfile {found}: no such file; give the path of a Locust scenario (.py)"
        )
    return found


@dataclass(frozen=True)
class Option:
    """One argument of ``manage.py poolbench``; ``setting`` names the POOLBENCH key of its default."""

    flag: str
    help: str
    type: ArgumentType | None = None
    setting: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more add_argument() keywords

    @property
    def dest(self) -> str:
        return self.extra.get("dest") or self.flag[2:].replace("-", "_")


def _flag(flag: str, help: str, setting: str | None = None) -> Option:
    return Option(flag, help, setting=setting, extra={"action": "store_true"})


OPTIONS: tuple[Option, ...] = (
    Option("--sizes", "Pool sizes to sweep, comma-separated (default from POOLBENCH['SIZES']), or 'auto' to "
           "search from the formula's size for the smallest size on the plateau.", typed(_sizes), "SIZES"),
    Option("--database", "The alias to benchmark (default: default).", extra={"default": DEFAULT_DB_ALIAS}),
    _flag("--embedded", "Benchmark an embedded PostgreSQL (pgserver).", "EMBEDDED"),
    Option("--mode", "Modes, comma-separated: pool, queuepool, persistent, none."),
    Option("--workers", "gunicorn worker processes per trial.",
           typed(parse_int_list, "--workers", maximum=MAX_WORKERS, what="worker count"), "WORKERS"),
    Option("--threads", "Threads per gunicorn worker.",
           typed(parse_int_list, "--threads", maximum=MAX_THREADS, what="thread count"), "THREADS"),
    Option("--users", "Concurrent Locust users.", typed(parse_whole_number, "--users", maximum=100_000), "USERS"),
    Option("--spawn-rate", "Users started per second (0 = all at once).",
           typed(parse_number, "--spawn-rate", allow_zero=True), "SPAWN_RATE"),
    Option("--duration", "Measured seconds per trial, e.g. 10, 10s, 1m.",
           typed(parse_duration, "--duration", minimum=1), "DURATION"),
    Option("--warmup", "Seconds of load before measuring, excluded from the statistics.",
           typed(parse_duration, "--warmup", allow_zero=True), "WARMUP"),
    Option("--pool-min", "Connections the native pool keeps open (min_size).",
           typed(parse_whole_number, "--pool-min", maximum=10_000, allow_zero=True), "POOL_MIN"),
    Option("--pool-timeout", "Seconds a request may wait for a pooled connection.",
           typed(parse_duration, "--pool-timeout"), "POOL_TIMEOUT"),
    Option("--max-overflow", "QueuePool connections beyond the size.",
           typed(parse_whole_number, "--max-overflow", maximum=10_000, allow_zero=True), "MAX_OVERFLOW"),
    Option("--conn-max-age", "CONN_MAX_AGE for --mode persistent.",
           typed(parse_whole_number, "--conn-max-age", maximum=10**9), "CONN_MAX_AGE"),
    Option("--query-delay-ms", "Hold the probe's connection N ms in the query.",
           typed(parse_query_delay), "QUERY_DELAY_MS"),
    Option("--probe-cpu-ms", "Make each probe request also run N ms of Python CPU (a CPU-bound app).",
           typed(parse_probe_ms, "--probe-cpu-ms"), "PROBE_CPU_MS"),
    Option("--probe-db-ms", "Make the probe's query keep the database's CPU busy about N ms (database-bound).",
           typed(parse_probe_ms, "--probe-db-ms"), "PROBE_DB_MS"),
    Option("--path", "A page of your site to load instead of poolbench's probe; repeat it for several pages, "
           "with an optional weight: --path /books/:3 --path /about/.", typed(parse_path),
           extra={"action": "append", "dest": "paths", "metavar": "/PAGE/[:WEIGHT]"}),
    Option("--locustfile", "Your own Locust scenario (the trial's host is passed in; --path and --login-user "
           "reach it as POOLBENCH_PATHS and POOLBENCH_COOKIE).", locustfile, "LOCUSTFILE"),
    Option("--login-user", "Load the pages logged in as this existing user (a session is created in the site's "
           "session store for the sweep; no password is needed).", extra={"metavar": "USERNAME"}),
    Option("--repeat", "Run each configuration N times, interleaved: every pass in a fresh random order.",
           typed(parse_whole_number, "--repeat", maximum=100), "REPEAT"),
    Option("--seed", "Seed of the trials' random order (default: a new one, recorded on the sweep); the "
           "seed of an earlier sweep replays its order.",
           typed(parse_whole_number, "--seed", maximum=MAX_SEED, allow_zero=True)),
    _flag("--allow-over-max", "Run sizes over max_connections anyway (recorded)."),
    Option("--bind", "Address the trial server listens on (default 127.0.0.1).", bind_address, "BIND"),
    Option("--report", "Write a self-contained HTML report.", typed(export.check_output_path, "--report"),
           extra={"metavar": "FILE"}),
    Option("--json", "Also write the trials as JSON to FILE.", typed(export.check_output_path, "--json"),
           extra={"metavar": "FILE"}),
    _flag("--overwrite", "Let --report/--json replace an existing file that poolbench did not write."),
    Option("--tolerance", "Percent of the best throughput a recommended size may lose (default 5).",
           typed(parse_tolerance), "TOLERANCE"),
    Option("--db-cores", "CPU cores of the database host, for the formula (default: found out).",
           typed(parse_whole_number, "--db-cores", maximum=10_000)),
    Option("--spindles", "Effective spindles for the formula (default 0: a cached data set).",
           typed(parse_whole_number, "--spindles", maximum=10_000, allow_zero=True), "SPINDLES"),
    Option("--fail-under-rps", "Exit non-zero if the recommended size did fewer req/s.",
           typed(parse_gate, "--fail-under-rps", "req/s, e.g. --fail-under-rps 500")),
    Option("--max-failure-rate", "Exit non-zero if more than this percent of requests failed.",
           typed(parse_failure_rate)),
    Option("--max-p99-ms", "Exit non-zero if the recommended size's p99 was above this.",
           typed(parse_gate, "--max-p99-ms", "milliseconds, e.g. --max-p99-ms 250")),
    Option("--locust-processes", "Locust load processes on this machine (Locust --processes; -1 = one per core).",
           typed(parse_processes), "LOCUST_PROCESSES"),
    Option("--expect-workers", "Run Locust as a master and wait for N workers started elsewhere (see "
           "--master-bind).", typed(parse_whole_number, "--expect-workers", maximum=1_000)),
    Option("--master-bind", "HOST[:PORT] the Locust master listens on (default *:5557).",
           typed(parse_master_bind)),
    Option("--workers-timeout", "Seconds to wait for --expect-workers before giving up (default 60).",
           typed(parse_duration, "--workers-timeout", minimum=1), "WORKERS_TIMEOUT"),
    # Open-model load and targets (sweep/rate_options.py, docs/rate-and-capacity.md).
    Option("--rate", "Open model: send R requests/s whatever the server does (latency from each request's "
           "intended send time); --users is then the provisioned pool of Locust users.", typed(parse_rate)),
    Option("--arrivals", "With --rate: poisson (default) or constant spacing of the arrivals.",
           typed(parse_arrivals)),
    Option("--slo", "Latency and error targets each trial must meet, e.g. \"p99<250ms,p95<100ms,errors<0.1%%\".",
           typed(rate_options.targets("--slo"))),
    Option("--headroom", "With --rate: the recommended size must meet every --slo target at rate x this "
           "(default 1.2).", typed(parse_headroom)),
    _flag("--find-capacity", "For each size, search the highest arrival rate that meets every --slo target "
          "(about six short trials per size)."),
    Option("--gate", "Exit non-zero if the recommended size missed any of these targets (the --slo syntax).",
           typed(rate_options.targets("--gate"))),
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # default=None throughout: "not given", so that the POOLBENCH setting (conf.DEFAULTS) supplies it.
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"default": None, "help": option.help, **option.extra}
        if option.type is not None:
            kwargs["type"] = option.type
        parser.add_argument(option.flag, **kwargs)


class OptionsParser(CommandParser):
    """Django's parser, except that a value refused by its ``type=`` fails the way every other bad
    argument does: ``CommandError(<the type's own message>)``, exit status 1 on the command line, instead
    of argparse's "argument --x: ..." (and its usage text with exit status 2)."""

    def error(self, message: str) -> NoReturn:
        failed = sys.exc_info()[1]  # argparse reports from inside its `except ArgumentError`
        refused = failed.__context__ if isinstance(failed, argparse.ArgumentError) else None
        if not isinstance(refused, argparse.ArgumentTypeError):
            super().error(message)
        if self.called_from_command_line:
            self.exit(1, f"CommandError: {refused}\n")  # as Django prints one raised by handle()
        raise CommandError(str(refused))


def with_defaults(opts: Mapping[str, Any]) -> dict[str, Any]:
    """The options with every one not given taken from its POOLBENCH setting, checked as the option is
    (a text given as a keyword of call_command(), which argparse leaves as it is, too)."""
    config = get_config()
    values = dict(opts)
    for option in OPTIONS:
        value = values.get(option.dest)
        if value is None and option.setting is not None:
            value = config[option.setting]
            if isinstance(value, (list, tuple)):  # SIZES, WORKERS and THREADS may be lists
                value = ",".join(map(str, value))
        elif not isinstance(value, str):
            continue
        values[option.dest] = option.type(value) if option.type and value is not None else value
    # Not given and no POOLBENCH setting: what the site states for its gunicorn, else the measured default.
    given = tuple(
        f"--{name}" if opts.get(name) is not None else f"POOLBENCH['{name.upper()}']"
        for name in ("workers", "threads")
    )
    from django.conf import settings

    server = server_defaults(
        values["workers"], values["threads"], given=given, base_dir=getattr(settings, "BASE_DIR", None)
    )
    values["workers"], values["threads"], values["server_source"] = (
        server.workers,
        server.threads,
        server.text,
    )
    values["expect_workers"] = values["expect_workers"] or 0
    if values.get("find_capacity") and opts.get("repeat") is None:
        values["repeat"] = 1  # the search runs one trial per rate it tries: REPEAT is for the other sweeps
    if values["seed"] is None and (values["repeat"] or 1) > 1:
        values["seed"] = secrets.randbelow(MAX_SEED + 1)  # a fresh order, recorded to replay it
    return values


def build_options(opts: Mapping[str, Any]) -> SweepOptions:
    """Every option checked, alone and together, before anything is started or written."""
    try:
        values = with_defaults(opts)
        target = resolve(values["database"], embedded=bool(values["embedded"]))
        modes = parse_modes(values["mode"] or backends.default_mode(target.vendor), target.vendor)
        check_together(opts, values, target, modes)
        values["provisioned_users"] = rate_options.provisioned_users(opts, values)
        check_before_start(values, target)  # sweep/validate.py: Locust loads the scenario, and more
        auto = values["sizes"] == AUTO
        plan = build_plan(
            sizes=[1] if auto else values["sizes"],  # a placeholder for auto: the search picks the sizes
            modes=modes, workers=values["workers"], threads=values["threads"], repeat=values["repeat"],
            pool_min=values["pool_min"], max_overflow=values["max_overflow"],
            pool_timeout=values["pool_timeout"], conn_max_age=values["conn_max_age"], seed=values["seed"],
        )  # fmt: skip
        login = find_login_user(values["login_user"]) if values.get("login_user") is not None else None
    except (argparse.ArgumentTypeError, PlanError, TargetError, SiteError, export.ExportError) as exc:
        raise CommandError(str(exc)) from exc
    return _sweep_options(values, plan=plan, target=target, login_user=login, auto=auto)


def check_together(
    given: Mapping[str, Any], values: dict[str, Any], target: Target, modes: list[str]
) -> None:
    """The rules that join two options, or an option and the database: PlanError for the first broken."""
    report, data = values.get("report"), values.get("json")
    if report and data and Path(report).resolve() == Path(data).resolve():
        raise PlanError("--report and --json name the same file; give each its own path")
    for flag, path in (("--report", report), ("--json", data)):
        if path:  # again, now that --overwrite is known (and for a Path given to call_command())
            export.check_output_path(path, flag, overwrite=bool(values.get("overwrite")))
    unique_paths(values.get("paths"))
    expect_workers = values["expect_workers"]
    if expect_workers and given.get("locust_processes") is not None and values["locust_processes"] != 1:
        raise PlanError(
            "--locust-processes cannot be combined with --expect-workers; run several workers "
            "(or `locust --worker --processes N`) on the load machines instead"
        )
    if values.get("master_bind") and not expect_workers:
        raise PlanError("--master-bind needs --expect-workers N (the number of Locust workers to wait for)")
    if values["query_delay_ms"] and target.vendor not in ("postgresql", "mysql"):
        raise PlanError(f"--query-delay-ms is not supported on {target.vendor}")
    check_probe_options(values, target.vendor)
    if values["sizes"] == AUTO:
        if len(modes) > 1 or len(values["workers"]) > 1 or len(values["threads"]) > 1:
            raise PlanError(
                "--sizes auto searches one configuration; give a single --mode, --workers and --threads"
            )
        if modes[0] not in POOLED_MODES:
            raise PlanError(f"--sizes auto needs a pooled --mode (pool or queuepool), not {modes[0]}")
    own_locustfile = bool(values.get("locustfile")) and values["locustfile"] != DEFAULT_LOCUSTFILE.resolve()
    rate_options.check_rate(given, values, auto=values["sizes"] == AUTO, own_locustfile=own_locustfile)
    missing = backends.missing_pool_package(target.vendor, modes) if not target.embedded else None
    if missing:
        raise PlanError(missing)


def _sweep_options(values: dict[str, Any], **checked: Any) -> SweepOptions:
    config = get_config()
    expect_workers = values["expect_workers"]
    host, port = values.get("master_bind") or ("*", DEFAULT_MASTER_PORT)
    load = LoadSettings(
        users=values["provisioned_users"], spawn_rate=values["spawn_rate"], duration=values["duration"],
        warmup=values["warmup"], locustfile=values["locustfile"] or DEFAULT_LOCUSTFILE.resolve(),
        paths=values["paths"] or [], processes=1 if expect_workers else values["locust_processes"],
        expect_workers=expect_workers, master_bind=host, master_port=port,
        workers_timeout=values["workers_timeout"], arrivals=values["arrivals"] or "poisson",
    )  # fmt: skip
    gates = Gates(
        fail_under_rps=values["fail_under_rps"],
        max_failure_rate=values["max_failure_rate"],
        max_p99_ms=values["max_p99_ms"],
        slo=values["gate"] or [],
    )
    return SweepOptions(
        **checked,
        load=load,
        command=command_line(),
        query_delay_ms=values["query_delay_ms"],
        probe_cpu_ms=values["probe_cpu_ms"],
        probe_db_ms=values["probe_db_ms"],
        bind=values["bind"],
        start_timeout=float(config["SERVER_START_TIMEOUT"]),
        migrate=bool(config["MIGRATE"]),
        embedded_max_connections=int(config["EMBEDDED_MAX_CONNECTIONS"]),
        reserve=int(config["RESERVE_CONNECTIONS"]),
        allow_over_max=bool(values["allow_over_max"]),
        settings_module=os.environ.get("DJANGO_SETTINGS_MODULE", ""),
        overrides=trial_overrides(),
        tolerance=values["tolerance"] / 100.0,
        db_cores=values["db_cores"],
        spindles=values["spindles"],
        gates=gates,
        fork_server=bool(config["FORK_SERVER"]),
        rate=values["rate"],
        slo=values["slo"] or [],
        headroom=values["headroom"] or rate_options.DEFAULT_HEADROOM,
        find_capacity=bool(values["find_capacity"]),
        seed=values["seed"],
        server_source=values["server_source"],
    )


def report_files(opts: Mapping[str, Any]) -> dict[str, Path]:
    """The files --report and --json write, by format (checked by their types and build_options())."""
    return {fmt: opts[name] for fmt, name in (("html", "report"), ("json", "json")) if opts.get(name)}


def command_line() -> str:
    """The command line as it is stored on the sweep, passwords redacted."""
    return redact(" ".join(shlex.quote(a) for a in ["manage.py", *sys.argv[1:]])) if sys.argv else ""
