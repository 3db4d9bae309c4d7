"""``manage.py poolbench``: sweep pool sizes under real load and say which to use."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from poolbench import backends
from poolbench.backends import POOLED_MODES
from poolbench.conf import default_workers, get_config
from poolbench.results import export
from poolbench.results.analysis import Gates
from poolbench.results.summary import gate_breaches
from poolbench.results.tables import full_report, trials_table
from poolbench.sweep import children
from poolbench.sweep.load import DEFAULT_LOCUSTFILE, DEFAULT_MASTER_PORT, LoadSettings
from poolbench.sweep.plan import (
    MAX_THREADS,
    MAX_WORKERS,
    PlanError,
    build_plan,
    parse_duration,
    parse_int_list,
    parse_modes,
    parse_paths,
    parse_sizes,
)
from poolbench.sweep.run import SweepError, SweepOptions, run_sweep
from poolbench.sweep.site import SiteError, find_login_user, trial_overrides
from poolbench.sweep.targets import TargetError, redact, resolve


class Command(BaseCommand):
    help = (
        "Measure throughput, latency and failures of this site under a real Locust load for each "
        "database connection pool size, store the results, and recommend a size."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sizes",
            help="Pool sizes to sweep, comma-separated (default from POOLBENCH['SIZES']), or 'auto' to search "
            "from the formula's size for the smallest size on the plateau.",
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="The alias to benchmark (default: default)."
        )
        parser.add_argument(
            "--embedded", action="store_true", help="Benchmark an embedded PostgreSQL (pgserver)."
        )
        parser.add_argument(
            "--mode", default=None, help="Modes, comma-separated: pool, queuepool, persistent, none."
        )
        parser.add_argument("--workers", help="gunicorn worker processes per trial.")
        parser.add_argument("--threads", help="Threads per gunicorn worker.")
        parser.add_argument("--users", help="Concurrent Locust users.")
        parser.add_argument("--spawn-rate", help="Users started per second (0 = all at once).")
        parser.add_argument("--duration", help="Measured seconds per trial, e.g. 10, 10s, 1m.")
        parser.add_argument(
            "--warmup", help="Seconds of load before measuring, excluded from the statistics."
        )
        parser.add_argument("--pool-min", help="Connections the native pool keeps open (min_size).")
        parser.add_argument("--pool-timeout", help="Seconds a request may wait for a pooled connection.")
        parser.add_argument("--max-overflow", default="0", help="QueuePool connections beyond the size.")
        parser.add_argument("--conn-max-age", default="600", help="CONN_MAX_AGE for --mode persistent.")
        parser.add_argument(
            "--query-delay-ms", default="0", help="Hold the probe's connection N ms in the query."
        )
        parser.add_argument(
            "--path",
            action="append",
            dest="paths",
            metavar="/PAGE/[:WEIGHT]",
            help="A page of your site to load instead of poolbench's probe; repeat it for several pages, "
            "with an optional weight: --path /books/:3 --path /about/.",
        )
        parser.add_argument(
            "--locustfile",
            help="Your own Locust scenario (the trial's host is passed in; --path and --login-user reach it "
            "as POOLBENCH_PATHS and POOLBENCH_COOKIE).",
        )
        parser.add_argument(
            "--login-user",
            metavar="USERNAME",
            help="Load the pages logged in as this existing user (a session is created in the site's "
            "session store for the sweep; no password is needed).",
        )
        parser.add_argument("--repeat", default="1", help="Run each configuration N times, interleaved.")
        parser.add_argument(
            "--allow-over-max", action="store_true", help="Run sizes over max_connections anyway (recorded)."
        )
        parser.add_argument("--bind", help="Address the trial server listens on (default 127.0.0.1).")
        parser.add_argument("--report", metavar="FILE", help="Write a self-contained HTML report.")
        parser.add_argument("--json", metavar="FILE", help="Also write the trials as JSON to FILE.")
        parser.add_argument(
            "--tolerance",
            default="5",
            help="Percent of the best throughput a recommended size may lose (default 5).",
        )
        parser.add_argument(
            "--db-cores", help="CPU cores of the database host, for the formula (default: found out)."
        )
        parser.add_argument(
            "--spindles",
            default="0",
            help="Effective spindles for the formula (default 0: a cached data set).",
        )
        parser.add_argument("--fail-under-rps", help="Exit non-zero if the recommended size did fewer req/s.")
        parser.add_argument(
            "--max-failure-rate", help="Exit non-zero if more than this percent of requests failed."
        )
        parser.add_argument(
            "--max-p99-ms", help="Exit non-zero if the recommended size's p99 was above this."
        )
        parser.add_argument(
            "--locust-processes",
            help="Locust load processes on this machine (Locust --processes; -1 = one per core).",
        )
        parser.add_argument(
            "--expect-workers",
            help="Run Locust as a master and wait for N workers started elsewhere (see --master-bind).",
        )
        parser.add_argument(
            "--master-bind", help="HOST[:PORT] the Locust master listens on (default *:5557)."
        )
        parser.add_argument(
            "--workers-timeout", help="Seconds to wait for --expect-workers before giving up (default 60)."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        outputs = _output_files(opts)
        options = self.build_options(opts)
        self.verbosity = opts["verbosity"]
        if options.bind not in ("127.0.0.1", "::1", "localhost"):
            self.report(
                "warning",
                f"The trial servers will listen on {options.bind}: other machines may reach the probe "
                "(the statistics endpoint still needs this run's token).",
            )
        # SIGTERM (kill, systemd, CI) and SIGHUP (closed terminal) stop the sweep the way Ctrl-C does;
        # after the first, further signals are ignored until the cleanup is done.
        children.reset_interrupted()
        previous = {sig: signal.signal(sig, children.on_stop_signal) for sig in children.STOP_SIGNALS}
        try:
            sweep = run_sweep(options, self.report)
        except (SweepError, TargetError) as exc:
            self._print_partial(getattr(exc, "sweep", None), options, outputs)
            raise CommandError(redact(str(exc))) from exc
        except KeyboardInterrupt as exc:
            with children.shielded(reraise=False):
                children.stop_all()
                sweep = getattr(exc, "sweep", None)
                self._print_partial(sweep, options, outputs)
            if sweep is None:
                raise CommandError("Interrupted before the sweep began: nothing was stored.") from None
            raise CommandError(
                f"Interrupted: sweep #{sweep.pk} is marked interrupted; its finished trials are kept."
            ) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        trials = list(sweep.trials.all())
        self.stdout.write("")
        self.stdout.write(f"Sweep #{sweep.pk} on {options.target.description}")
        for line in full_report(sweep, trials):
            self.stdout.write(line)
        for fmt, path in outputs.items():
            export.write(path, export.render(export.load_trials_of([sweep]), fmt))
            self.stdout.write(f"Wrote the {fmt.upper()} report of sweep #{sweep.pk} to {path}")
        if sweep.status == sweep.Status.FAILED:
            raise CommandError(f"Every trial of sweep #{sweep.pk} failed; see the errors above.")
        size, breaches = gate_breaches(sweep)
        if breaches:
            raise CommandError(
                f"Gate failed for sweep #{sweep.pk} at pool size {size}: " + "; ".join(breaches)
            )

    def _print_partial(self, sweep: Any, options: SweepOptions, outputs: dict[str, Path]) -> None:
        """What a sweep that stopped early had measured (table, --report/--json), so that a Ctrl-C
        never hides it."""
        if sweep is None:
            return
        trials = list(sweep.trials.all())
        if trials and self.verbosity >= 1:
            self.stdout.write("")
            self.stdout.write(f"Sweep #{sweep.pk} on {options.target.description} ({sweep.status})")
            self.stdout.write(trials_table(trials))
        for fmt, path in outputs.items():
            try:
                export.write(path, export.render(export.load_trials_of([sweep]), fmt))
            except Exception as exc:  # the reason the sweep stopped matters more
                self.stderr.write(f"Could not write the {fmt.upper()} report to {path}: {exc}")
            else:
                self.stdout.write(
                    f"Wrote the {fmt.upper()} report of sweep #{sweep.pk} ({sweep.status}) to {path}"
                )

    def report(self, level: str, message: str) -> None:
        message = redact(message)
        if level == "detail":
            if self.verbosity >= 2:
                self.stdout.write(message)
        elif level == "warning":
            self.stderr.write(self.style.WARNING(message))
        elif level == "success":
            if self.verbosity >= 1:
                self.stdout.write(self.style.SUCCESS(message))
        elif self.verbosity >= 1:
            self.stdout.write(message)

    def build_options(self, opts: dict[str, Any]) -> SweepOptions:
        """Validate every argument; nothing is started and nothing written here."""
        config = get_config()
        auto = str(opts["sizes"]).strip().lower() == "auto"
        try:
            if auto:
                sizes = [1]  # a placeholder: the search picks the sizes (runner.search)
            else:
                sizes = parse_sizes(opts["sizes"]) if opts["sizes"] is not None else list(config["SIZES"])
            default_w = config["WORKERS"] if config["WORKERS"] is not None else default_workers()
            workers = _ints(opts["workers"], default_w, "--workers", MAX_WORKERS, "worker count")
            threads = _ints(opts["threads"], config["THREADS"], "--threads", MAX_THREADS, "thread count")
            users = _one_int(opts["users"], config["USERS"], "--users", 100_000)
            duration = parse_duration(opts["duration"] or config["DURATION"], "--duration", minimum=1)
            warmup = parse_duration(
                opts["warmup"] if opts["warmup"] is not None else config["WARMUP"],
                "--warmup",
                allow_zero=True,
            )
            pool_timeout = parse_duration(opts["pool_timeout"] or config["POOL_TIMEOUT"], "--pool-timeout")
            spawn_rate = _number(opts["spawn_rate"], config["SPAWN_RATE"], "--spawn-rate", allow_zero=True)
            delay = _number(opts["query_delay_ms"], 0, "--query-delay-ms", allow_zero=True)
            pool_min = _one_int(opts["pool_min"], config["POOL_MIN"], "--pool-min", 10_000, allow_zero=True)
            overflow = _one_int(opts["max_overflow"], 0, "--max-overflow", 10_000, allow_zero=True)
            conn_max_age = _one_int(opts["conn_max_age"], 600, "--conn-max-age", 10**9)
            repeat = _one_int(opts["repeat"], 1, "--repeat", 100)
            paths = parse_paths(opts.get("paths"))
            bind = _check_bind(opts["bind"] or config["BIND"])
            tolerance = _number(opts["tolerance"], 5, "--tolerance", allow_zero=True)
            if tolerance >= 100:
                raise PlanError(
                    f"--tolerance {opts['tolerance']!r} must be below 100 (percent of the best throughput)"
                )
            db_cores = _one_int(opts["db_cores"], None, "--db-cores", 10_000)
            spindles = _one_int(opts["spindles"], 0, "--spindles", 10_000, allow_zero=True)
            gates = Gates(
                fail_under_rps=_gate(
                    opts["fail_under_rps"], "--fail-under-rps", "req/s, e.g. --fail-under-rps 500"
                ),
                max_failure_rate=_gate(
                    opts["max_failure_rate"], "--max-failure-rate", "percent, e.g. 0.5", zero=True
                ),
                max_p99_ms=_gate(opts["max_p99_ms"], "--max-p99-ms", "milliseconds, e.g. --max-p99-ms 250"),
            )
            if gates.max_failure_rate is not None and gates.max_failure_rate > 100:
                raise PlanError(
                    f"--max-failure-rate {opts['max_failure_rate']!r} is a percent of requests; give 0 to 100"
                )
            processes = _processes(opts.get("locust_processes"), config["LOCUST_PROCESSES"])
            expect_workers = _one_int(opts.get("expect_workers"), 0, "--expect-workers", 1_000)
            workers_timeout = parse_duration(
                opts.get("workers_timeout") or config["WORKERS_TIMEOUT"], "--workers-timeout", minimum=1
            )
            master_host, master_port = parse_master_bind(opts.get("master_bind"))
            if expect_workers and opts.get("locust_processes") is not None and processes != 1:
                raise PlanError(
                    "--locust-processes cannot be combined with --expect-workers; run several workers "
                    "(or `locust --worker --processes N`) on the load machines instead"
                )
            if opts.get("master_bind") and not expect_workers:
                raise PlanError(
                    "--master-bind needs --expect-workers N (the number of Locust workers to wait for)"
                )
            if expect_workers:
                processes = 1
        except PlanError as exc:
            raise CommandError(str(exc)) from exc
        locustfile = Path(opts["locustfile"] or config["LOCUSTFILE"] or DEFAULT_LOCUSTFILE).resolve()
        if not locustfile.is_file():
            raise CommandError(
                f"--locustfile {locustfile}: no such file; give the path of a Locust scenario (.py)"
            )
        embedded = bool(opts["embedded"] or config["EMBEDDED"])
        try:
            target = resolve(opts["database"], embedded=embedded)
            modes = parse_modes(opts["mode"] or backends.default_mode(target.vendor), target.vendor)
            if delay and target.vendor not in ("postgresql", "mysql"):
                raise PlanError(f"--query-delay-ms is not supported on {target.vendor}")
            if auto and (len(modes) > 1 or len(workers) > 1 or len(threads) > 1):
                raise PlanError(
                    "--sizes auto searches one configuration; give a single --mode, --workers and --threads"
                )
            if auto and modes[0] not in POOLED_MODES:
                raise PlanError(f"--sizes auto needs a pooled --mode (pool or queuepool), not {modes[0]}")
            plan = build_plan(
                sizes=sizes, modes=modes, workers=workers, threads=threads, repeat=repeat, pool_min=pool_min,
                max_overflow=overflow, pool_timeout=pool_timeout, conn_max_age=conn_max_age,
            )  # fmt: skip
            missing = backends.missing_pool_package(target.vendor, modes) if not target.embedded else None
            if missing:
                raise PlanError(missing)
        except (PlanError, TargetError) as exc:
            raise CommandError(str(exc)) from exc
        login_user = None
        if opts.get("login_user") is not None:
            try:
                login_user = find_login_user(opts["login_user"])
            except SiteError as exc:
                raise CommandError(str(exc)) from exc
        load = LoadSettings(
            users=users, spawn_rate=spawn_rate, duration=duration, warmup=warmup, locustfile=locustfile, paths=paths,
            processes=processes, expect_workers=expect_workers, master_bind=master_host, master_port=master_port,
            workers_timeout=workers_timeout,
        )  # fmt: skip
        return SweepOptions(
            plan=plan,
            target=target,
            load=load,
            command=_command_line(),
            query_delay_ms=delay,
            bind=bind,
            start_timeout=float(config["SERVER_START_TIMEOUT"]),
            migrate=bool(config["MIGRATE"]),
            embedded_max_connections=int(config["EMBEDDED_MAX_CONNECTIONS"]),
            reserve=int(config["RESERVE_CONNECTIONS"]),
            allow_over_max=opts["allow_over_max"],
            settings_module=os.environ.get("DJANGO_SETTINGS_MODULE", ""),
            login_user=login_user,
            overrides=trial_overrides(),
            tolerance=tolerance / 100.0,
            db_cores=db_cores,
            spindles=spindles,
            auto=auto,
            gates=gates,
            fork_server=bool(config["FORK_SERVER"]),
        )


def _output_files(opts: dict[str, Any]) -> dict[str, Path]:
    """--report and --json, checked before anything starts: a long sweep must not end in a write error."""
    outputs = {}
    try:
        if opts.get("report"):
            outputs["html"] = export.check_output_path(opts["report"], "--report")
        if opts.get("json"):
            outputs["json"] = export.check_output_path(opts["json"], "--json")
    except export.ExportError as exc:
        raise CommandError(str(exc)) from exc
    if len(outputs) == 2 and outputs["html"].resolve() == outputs["json"].resolve():
        raise CommandError("--report and --json name the same file; give each its own path")
    return outputs


def _command_line() -> str:
    return redact(" ".join(shlex.quote(a) for a in ["manage.py", *sys.argv[1:]])) if sys.argv else ""


def _check_bind(address: str) -> str:
    """The trial servers bind here: refuse an address this machine cannot listen on, now."""
    if address == "localhost":
        address = "127.0.0.1"
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlanError(
            f"--bind {address!r}: cannot listen on this address ({reason}); "
            "use 127.0.0.1 (the default) or an address of this machine"
        ) from None
    return address


def _ints(value: Any, default: Any, option: str, maximum: int, what: str) -> list[int]:
    if value is None:
        return [int(v) for v in default] if isinstance(default, (list, tuple)) else [int(default)]
    return parse_int_list(str(value), option, maximum=maximum, what=what)


def _one_int(value: Any, default: Any, option: str, maximum: int, *, allow_zero: bool = False) -> Any:
    if value is None:
        return default
    text = str(value).strip()
    if not re.fullmatch(r"\+?[0-9]+", text):  # ASCII digits only: int() takes any script's
        raise PlanError(
            f"{option} {value!r} is not a whole number; give a {'non-negative' if allow_zero else 'positive'} integer"
        )
    number = int(text) if len(text) <= 20 else maximum + 1  # int() refuses over 4300 digits
    if number < (0 if allow_zero else 1):
        raise PlanError(f"{option} {value!r} must be {'0 or more' if allow_zero else '1 or more'}")
    if number > maximum:
        raise PlanError(f"{option} {value!r} is larger than {maximum}")
    return number


def _gate(value: Any, option: str, unit: str, *, zero: bool = False) -> float | None:
    if value is None:
        return None
    try:
        number = float(str(value))
    except ValueError:
        raise PlanError(f"{option} {value!r} is not a number; give {unit}") from None
    if (
        number != number
        or number in (float("inf"), float("-inf"))
        or number < 0
        or (number == 0 and not zero)
    ):
        raise PlanError(
            f"{option} {value!r} must be a {'non-negative' if zero else 'positive'} number; give {unit}"
        )
    return number


def _processes(value: Any, default: Any) -> int:
    if value is not None and str(value).strip() == "-1":
        return os.cpu_count() or 1
    return int(_one_int(value, default, "--locust-processes", 256))


def parse_master_bind(value: str | None) -> tuple[str, int]:
    """'HOST[:PORT]', '[::1]:5557' or ':5557' -> (host, port); the defaults are Locust's (*, 5557)."""
    if value is None:
        return "*", DEFAULT_MASTER_PORT
    text = str(value).strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            raise PlanError(f"--master-bind {value!r} is not HOST[:PORT]; e.g. --master-bind 0.0.0.0:5557")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    host = host or "*"
    if not port_text:
        return host, DEFAULT_MASTER_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise PlanError(
            f"--master-bind {value!r}: port {port_text!r} is not a port number 1-65535; e.g. --master-bind 0.0.0.0:5557"
        )
    return host, int(port_text)


def _number(value: Any, default: Any, option: str, *, allow_zero: bool = False) -> float:
    if value is None:
        return float(default)
    try:
        number = float(str(value))
    except ValueError:
        raise PlanError(f"{option} {value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise PlanError(f"{option} {value!r} is not a finite number")
    if number < 0 or (number == 0 and not allow_zero):
        raise PlanError(f"{option} {value!r} must be {'0 or more' if allow_zero else 'more than 0'}")
    return number
