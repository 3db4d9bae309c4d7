"""Plan -> trials -> rows. Each trial runs in a fresh server process and is saved the moment it ends."""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils import timezone

from poolbench import __version__, backends
from poolbench.measure.samplers import DatabaseConnections, ProcessCPU
from poolbench.models import Probe, Sweep, Trial
from poolbench.results import analysis
from poolbench.results.record import record_measurements, record_partial
from poolbench.results.summary import finish_sweep, summarize, sweep_formula
from poolbench.sweep import children
from poolbench.sweep.forkserver import ForkServer, ForkServerError
from poolbench.sweep.load import (
    DEFAULT_LOCUSTFILE,
    LoadError,
    LoadSettings,
    WorkersMissing,
    run_load,
    start_load,
    worker_command,
)
from poolbench.sweep.plan import MAX_SIZE, Plan, TrialSpec
from poolbench.sweep.server import ServerError, TrialServer, base_env
from poolbench.sweep.site import LoginSession, create_login_session
from poolbench.sweep.targets import (
    Target,
    TargetError,
    connection_failure,
    describe,
    probe_ready,
    redact,
    start_embedded,
)
from poolbench.wire import MEASURE_MARK, PREFIX

Reporter = Callable[[str, str], None]  # (level, message); level: info | detail | warning | success


# --sizes auto measures at most this many sizes (each --repeat times).
AUTO_MAX_SIZES = 8


class SweepError(RuntimeError):
    """The sweep cannot start or go on; the message names the fix."""


@dataclass
class SweepOptions:
    plan: Plan
    target: Target
    load: LoadSettings
    command: str = ""
    query_delay_ms: float = 0.0
    bind: str = "127.0.0.1"
    start_timeout: float = 30.0
    migrate: bool = False
    embedded_max_connections: int = 1000
    reserve: int = 5
    allow_over_max: bool = False
    tolerance: float = 0.05
    settings_module: str = ""
    login_user: Any = None  # the user object for --login-user, checked by the command
    overrides: dict[str, str] = field(default_factory=dict)  # site.trial_overrides(): {name: why}
    # The formula's starting point: the database host's cores (None = found out, see formula_cores())
    # and its effective spindles.
    db_cores: int | None = None
    spindles: int = 0
    # --sizes auto: search for the smallest size on the plateau instead of sweeping plan.sizes.
    auto: bool = False
    auto_max_sizes: int = AUTO_MAX_SIZES
    gates: analysis.Gates = field(default_factory=analysis.Gates)
    fork_server: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    forkserver: Any = field(default=None, repr=False)  # the running ForkServer, during run_sweep()
    pending_load: Any = field(default=None, repr=False)  # Locust started ahead for the next trial

    @property
    def uses_probe(self) -> bool:
        return not self.load.paths and self.load.locustfile == DEFAULT_LOCUSTFILE


def _quiet(level: str, message: str) -> None:
    pass


def prepare(options: SweepOptions, report: Reporter = _quiet) -> None:
    """Everything that must hold before the first row is written and the first load starts.

    The checks that can refuse the sweep (tables, connection, max_connections) come before anything
    is written or started: the embedded server is checked against the max_connections it will be
    given, before it starts.
    """
    results_db = connections[DEFAULT_DB_ALIAS]
    what = f"the results database '{DEFAULT_DB_ALIAS}' ({describe(results_db.settings_dict)})"
    try:
        results_db.ensure_connection()
        tables = results_db.introspection.table_names()
    except Exception as exc:
        raise SweepError(redact(connection_failure(results_db, exc, what))) from exc
    missing_tables = Sweep._meta.db_table not in tables or Trial._meta.db_table not in tables
    if missing_tables and not options.migrate:
        raise SweepError(
            f"poolbench's tables are missing from the results database '{DEFAULT_DB_ALIAS}'; "
            f"run `python manage.py migrate` first"
        )
    target = options.target
    if target.embedded:
        preflight(options, report, limit=options.embedded_max_connections)
    else:
        target.inspect()
        preflight(options, report)
    if missing_tables:
        report("info", f"Creating poolbench's tables in the results database '{DEFAULT_DB_ALIAS}' (migrate).")
        try:
            call_command("migrate", database=DEFAULT_DB_ALIAS, verbosity=0)
        except DatabaseError as exc:
            raise SweepError(_unwritable(exc)) from exc
    check_results_writable()
    if target.embedded:
        report("info", "Starting an embedded PostgreSQL (pgserver) as the benchmark target...")
        start_embedded(target, max_connections=options.embedded_max_connections)
        call_command("migrate", "poolbench", database=target.migrate_alias, verbosity=0)
        connections[target.migrate_alias].close()
        target.inspect()
    if options.uses_probe and not target.embedded and not probe_ready(target.migrate_alias):
        if not options.migrate:
            raise SweepError(
                f"the probe table is missing from database '{target.alias}'; "
                f"run `python manage.py migrate poolbench --database {target.alias}` first"
            )
        report("info", f"Creating the probe table in '{target.alias}' (migrate poolbench).")
        call_command("migrate", "poolbench", database=target.migrate_alias, verbosity=0)
        connections[target.migrate_alias].close()
    if options.uses_probe:
        ensure_probe_row(target.migrate_alias, options.query_delay_ms, report)


def ensure_probe_row(alias: str, delay_ms: float, report: Reporter = _quiet) -> None:
    """The probe's delay runs once per row (pg_sleep/SLEEP in the select list): an emptied table (a test
    flush, a cleanup) would silently measure no delay at all, so put its one row back."""
    try:
        rows = Probe.objects.using(alias).count()
        if rows == 0:
            Probe.objects.using(alias).create(testcol="test")
            report("info", f"The probe table in '{alias}' was empty; its one row was put back.")
        elif rows > 1 and delay_ms:
            report(
                "warning",
                f"The probe table in '{alias}' has {rows} rows: --query-delay-ms applies once per row, so each "
                f"request holds its connection {rows} x {delay_ms:g} ms.",
            )
    finally:
        connections[alias].close()


def _unwritable(exc: BaseException) -> str:
    db = connections[DEFAULT_DB_ALIAS]
    return (
        f"cannot write results to the database '{DEFAULT_DB_ALIAS}' ({describe(db.settings_dict)}): "
        f"{redact(' '.join(str(exc).split()))}. Give its user INSERT and UPDATE rights on poolbench's tables "
        f"(or make the SQLite file writable), or point DATABASES['{DEFAULT_DB_ALIAS}'] at a database "
        "you can write"
    )


def check_results_writable() -> None:
    """Fail before any server or load starts if the results cannot be stored.

    Zero-row INSERT ... SELECT and UPDATE statements need the same rights (and, in SQLite, a
    writable file) as real ones, and use no sequence value; they are rolled back anyway. Every
    column is named: MySQL's strict mode refuses a column list that leaves one without a default.
    """
    db = connections[DEFAULT_DB_ALIAS]
    qn = db.ops.quote_name
    try:
        with transaction.atomic(using=DEFAULT_DB_ALIAS), db.cursor() as cur:
            for model in (Sweep, Trial):
                table, pk = qn(model._meta.db_table), qn(model._meta.pk.column)
                columns = ", ".join(qn(f.column) for f in model._meta.concrete_fields)
                cur.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} WHERE 1 = 0")
                cur.execute(f"UPDATE {table} SET {pk} = {pk} WHERE 1 = 0")
            transaction.set_rollback(True, using=DEFAULT_DB_ALIAS)
    except DatabaseError as exc:
        raise SweepError(_unwritable(exc)) from exc


def preflight(options: SweepOptions, report: Reporter = _quiet, limit: int | None = None) -> None:
    """Refuse configurations that cannot fit in the server's max_connections (unless allowed).

    A configuration may open workers x (pool size + overflow) connections when pooled, workers x
    threads when not; ``reserve`` connections stay free for admin tools and poolbench's own.
    """
    limit = limit or options.target.max_connections
    if not limit:
        return
    budget = limit - options.reserve
    if options.auto:
        # The search never goes above what fits; it only has to start below it.
        workers = options.plan.specs[0].workers
        if budget < workers and not options.allow_over_max:
            raise SweepError(
                f"--sizes auto: {workers} worker(s) need at least {workers} connections, but the server allows "
                f"max_connections={limit} and {options.reserve} are kept in reserve; use fewer --workers"
            )
        return
    over = [s for s in options.plan.specs if s.max_db_connections > budget]
    if not over:
        return
    worst = max(over, key=lambda s: s.max_db_connections)
    if worst.pooled:
        formula = (
            f"workers x (pool size + overflow) = {worst.workers} x ({worst.size} + {worst.max_overflow})"
        )
    else:
        formula = f"workers x threads = {worst.workers} x {worst.threads}"
    detail = (
        f"{worst.label} may open {worst.max_db_connections} connections ({formula}), "
        f"but the server's max_connections is {limit} and {options.reserve} are kept in reserve "
        f"({budget} usable)"
    )
    if options.allow_over_max:
        report("warning", f"Running anyway (--allow-over-max): {detail}.")
        options.extra["over_max_connections"] = {
            "trials": [s.index for s in over],
            "max_connections": limit,
            "reserve": options.reserve,
            "largest": worst.max_db_connections,
        }
        return
    raise SweepError(
        f"{detail}. Use smaller --sizes, --max-overflow or --workers, raise max_connections on the server, "
        "or pass --allow-over-max to run it anyway (recorded on the sweep and its trials)"
    )


def host_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "poolbench": __version__,
    }


def create_sweep(options: SweepOptions) -> Sweep:
    target = options.target
    load = options.load.as_dict()
    return Sweep.objects.create(
        started_at=timezone.now(),
        command=options.command,
        alias=target.alias,
        vendor=target.vendor,
        target=target.url,
        embedded=target.embedded,
        db_version=target.version[:100],
        db_max_connections=target.max_connections,
        sizes=options.plan.sizes,
        server={
            "workers": sorted({s.workers for s in options.plan.specs}),
            "threads": sorted({s.threads for s in options.plan.specs}),
            "worker_class": "gthread",
            "bind": options.bind,
        },
        load=load,
        options={
            "modes": sorted({s.mode for s in options.plan.specs}),
            "query_delay_ms": options.query_delay_ms,
            "repeat": max(s.repeat for s in options.plan.specs),
            "pool_timeout": options.plan.specs[0].pool_timeout,
            "tolerance": options.tolerance,
            "login_user": options.login_user.get_username() if options.login_user is not None else None,
            "trial_server_changes": site_changes(options),
            "allow_over_max": options.allow_over_max,
            "spindles": options.spindles,
            "db_cores": options.db_cores,
            "auto": options.auto,
            **options.extra,
        },
        host=host_info(),
    )


def run_sweep(options: SweepOptions, report: Reporter = _quiet) -> Sweep:
    """Run every trial of the plan; return the finished Sweep. Children are always stopped.

    On Ctrl-C/SIGTERM the finished trials are kept, the running one and the sweep are stored as
    interrupted and ``KeyboardInterrupt`` is re-raised with the sweep as its ``sweep`` attribute;
    on a :class:`SweepError`/:class:`TargetError` after the sweep began, the sweep is stored as
    error and the exception carries it the same way.
    """
    sweep = None
    session: LoginSession | None = None
    try:
        prepare(options, report)
        if options.login_user is not None:
            session = create_login_session(options.login_user)
            options.load.cookie = session.cookie
        with children.shielded():
            sweep = create_sweep(options)
        planned = (
            f"--sizes auto, at most {options.auto_max_sizes} sizes"
            if options.auto
            else f"{len(options.plan.specs)} trial(s)"
        )
        report("info", f"Sweep #{sweep.pk}: {planned} against {options.target.description}")
        if session is not None:
            report(
                "info",
                f"Logged in as {session.user}: a session in the site's store, removed after the sweep.",
            )
        for change in site_changes(options):
            report("info", f"In the trial server only: {change}.")
        if options.load.expect_workers:
            report("info", waiting_for_workers(options))
        if options.fork_server:
            options.forkserver = start_fork_server(options, report)
        token = secrets.token_urlsafe(32)
        if options.auto:
            search(sweep, options, token, report)
        else:
            total = len(options.plan.specs)
            for n, spec in enumerate(options.plan.specs):
                if n:
                    _check_target(sweep, spec, options, total)
                run_trial(sweep, spec, options, token, report, total)
        with children.shielded():
            finish_sweep(sweep, options)
        return sweep
    except KeyboardInterrupt as exc:
        with children.shielded(reraise=False):
            if sweep is not None:
                _stop_sweep(sweep, options, Sweep.Status.INTERRUPTED, INTERRUPTED_SWEEP)
            exc.sweep = sweep  # type: ignore[attr-defined]
        raise
    except Exception as exc:
        with children.shielded(reraise=False):
            if sweep is not None:
                _stop_sweep(sweep, options, Sweep.Status.ERROR, str(exc))
            exc.sweep = sweep  # type: ignore[attr-defined]
        raise
    finally:
        # A second Ctrl-C here is held until every child is stopped and the embedded database is down.
        with children.shielded(reraise=False):
            if options.forkserver is not None:
                options.forkserver.stop()
                options.forkserver = None
            if options.pending_load is not None:
                children.stop(options.pending_load.proc, grace=1.0)
                shutil.rmtree(options.pending_load.directory, ignore_errors=True)
                options.pending_load = None
            children.stop_all()
            if session is not None:
                session.delete()
                options.load.cookie = ""
            options.target.close()


def start_fork_server(options: SweepOptions, report: Reporter = _quiet) -> ForkServer | None:
    """Start the fork server for the trial servers; without it each trial starts a new interpreter."""
    settings_module = options.settings_module or os.environ.get("DJANGO_SETTINGS_MODULE", "")
    log = Path(tempfile.gettempdir()) / f"poolbench-forkserver-{os.getpid()}.log"
    server = ForkServer(base_env(settings_module), log)
    try:
        server.start(timeout=options.start_timeout)
    except ForkServerError as exc:
        server.stop()
        report("warning", f"Starting each trial server on its own (the fork server failed: {exc}).")
        return None
    return server


def waiting_for_workers(options: SweepOptions) -> str:
    load = options.load
    where = f"{load.master_bind}:{load.master_port}"
    return (
        f"Each trial's Locust master listens on {where} and waits up to {load.workers_timeout:g}s for "
        f"{load.expect_workers} worker(s). A worker serves one trial and exits, so run it in a loop on each "
        f"load machine:\n  while :; do {worker_command(load)}; sleep 0.5; done"
    )


def load_host(server: TrialServer) -> str:
    """The URL the load generators use; a wildcard bind is reached through this machine's name."""
    if server.bind in ("0.0.0.0", "::", ""):
        return f"http://{socket.gethostname()}:{server.port}"
    return server.url


INTERRUPTED_SWEEP = "interrupted (Ctrl-C or SIGTERM); finished trials are kept"
INTERRUPTED_TRIAL = "interrupted (Ctrl-C or SIGTERM)"


def _check_target(sweep: Sweep, spec: TrialSpec, options: SweepOptions, total: int) -> None:
    """Between trials: stop the sweep with a clear message if the database went away."""
    try:
        options.target.check_alive()
    except TargetError as exc:
        done = sweep.trials.count()
        raise TargetError(
            f"{exc}. The sweep stopped before trial {spec.index} of {total}; its {done} finished "
            f"trial(s) are kept in sweep #{sweep.pk}. Start the database and run the sweep again"
        ) from exc


def _stop_sweep(sweep: Sweep, options: SweepOptions, status: str, message: str) -> None:
    sweep.status = status
    sweep.message = redact(" ".join(message.split()))[:2000]
    sweep.finished_at = timezone.now()
    try:
        summarize(sweep, options)
    except Exception:  # the status matters more than the summary
        pass
    save_anyway(sweep)


def save_anyway(obj: Any) -> None:
    """Save ``obj``; if the results connection was broken (e.g. a query cut short), reconnect once."""
    try:
        obj.save()
    except Exception:
        connections[DEFAULT_DB_ALIAS].close()
        obj.save()


def site_changes(options: SweepOptions) -> list[str]:
    """What the trial server changes in the site's settings (never in its files), in words."""
    changes = list(options.overrides.values())
    age = options.target.database.get("CONN_MAX_AGE", 0)
    if age != 0 and any(s.pooled for s in options.plan.specs):  # None means "for ever"
        changes.insert(
            0,
            f"CONN_MAX_AGE={age} of alias '{options.target.alias}' is set to 0 in the pooled trials "
            "(a pool cannot be combined with persistent connections)",
        )
    return changes


def auto_max_size(options: SweepOptions, workers: int) -> int:
    limit = options.target.max_connections
    if not limit or options.allow_over_max:
        return MAX_SIZE
    return max(1, min(MAX_SIZE, (limit - options.reserve) // workers))


def search(sweep: Sweep, options: SweepOptions, token: str, report: Reporter) -> None:
    """``--sizes auto``: measure the formula's size, then double, halve or bisect (analysis.next_auto_size)
    until the smallest size on the plateau is found or AUTO_MAX_SIZES sizes are measured."""
    template = options.plan.specs[0]
    start = sweep_formula(options)["per_worker"]
    max_size = auto_max_size(options, template.workers)
    start = min(start, max_size)
    path: list[dict[str, Any]] = []
    tried: set[int] = set()
    index = 0
    repeat = max(s.repeat for s in options.plan.specs)
    cap = options.auto_max_sizes * repeat
    stop = ""
    while True:
        summaries = [
            s
            for s in analysis.by_size(sweep.trials.all())
            if s.config == (template.mode, template.workers, template.threads)
        ]
        size, why = analysis.next_auto_size(
            summaries, start=start, tolerance=options.tolerance, max_size=max_size
        )
        if size is None:
            stop = why
            break
        if size in tried:
            stop = f"size {size} could not be measured (its trials failed to run)"
            break
        if len(tried) >= options.auto_max_sizes:
            stop = f"the cap of {options.auto_max_sizes} sizes was reached"
            break
        tried.add(size)
        report("info", f"--sizes auto: measuring size {size} ({why}).")
        for rep in range(1, repeat + 1):
            index += 1
            spec = replace(template, index=index, size=size, pool_min=_pool_min(template, size), repeat=rep)
            run_trial(sweep, spec, options, token, report, cap)
        measured = {s.size: s for s in analysis.by_size(sweep.trials.all())}.get(size)
        path.append({"size": size, "why": why, "rps": measured.rps if measured else None})
    options.extra["search"] = {"start": start, "max_size": max_size, "path": path, "stopped": stop}
    sweep.options = {**sweep.options, "search": options.extra["search"]}
    sweep.sizes = sorted(tried)
    report("info", f"--sizes auto: stopped after {len(path)} size(s): {stop}.")


def _pool_min(template: TrialSpec, size: int) -> int | None:
    if template.mode != "pool" or template.pool_min is None:
        return template.pool_min
    return min(template.pool_min, size)


def application_name(sweep: Sweep, spec: TrialSpec) -> str:
    """The PostgreSQL application_name of one trial's connections: unique, so that other sweeps on the
    same server are not counted as this trial's."""
    return f"{backends.APPLICATION_NAME}-{sweep.pk}-{spec.index}"


def trial_settings(database: dict[str, Any]) -> dict[str, Any]:
    """The parts of a trial's DATABASES entry that say how it connects (no password, no host)."""
    options = database.get("OPTIONS") or {}
    out: dict[str, Any] = {"engine": database.get("ENGINE"), "conn_max_age": database.get("CONN_MAX_AGE")}
    if "pool" in options:
        out["pool"] = options["pool"]
    if database.get("POOL_OPTIONS"):
        out["pool_options"] = database["POOL_OPTIONS"]
    if "application_name" in options:
        out["application_name"] = options["application_name"]
    return out


def trial_config(spec: TrialSpec, options: SweepOptions, token: str, app_name: str = "") -> dict[str, Any]:
    target = options.target
    return {
        "alias": target.alias,
        "database": backends.trial_database(
            target.database, target.vendor, spec, app_name or backends.APPLICATION_NAME
        ),
        "settings_module": options.settings_module or os.environ.get("DJANGO_SETTINGS_MODULE", ""),
        "mode": spec.mode,
        "token": token,
        "query_delay_ms": options.query_delay_ms,
        "overrides": sorted(options.overrides),
    }


def run_trial(
    sweep: Sweep, spec: TrialSpec, options: SweepOptions, token: str, report: Reporter, total: int
) -> Trial:
    # Saved at once (status running), and saved again in the `finally` below whatever happens, so
    # that a Ctrl-C at any point leaves a finished row.
    trial = Trial(
        sweep=sweep,
        index=spec.index,
        repeat=spec.repeat,
        started_at=timezone.now(),
        mode=spec.mode,
        pool_size=spec.size,
        pool_min=spec.pool_min,
        max_overflow=spec.max_overflow if spec.mode == "queuepool" else None,
        pool_timeout=spec.pool_timeout if spec.pooled else None,
        conn_max_age=spec.conn_max_age,
        workers=spec.workers,
        threads=spec.threads,
        max_db_connections=spec.max_db_connections,
        users=options.load.users,
    )
    if options.target.alias and options.target.database.get("CONN_MAX_AGE", 0) != 0 and spec.pooled:
        trial.notes.append(
            f"CONN_MAX_AGE={options.target.database['CONN_MAX_AGE']} in the site's settings was set to 0 "
            "for this pooled trial (Django's pool does not support persistent connections)."
        )
    trial.notes.extend(f"In the trial server only: {why}." for why in options.overrides.values())
    over_max = options.extra.get("over_max_connections") or {}
    if spec.index in over_max.get("trials", []):
        trial.notes.append(
            f"ran over the server's max_connections (--allow-over-max): may open {spec.max_db_connections} "
            f"connections, max_connections is {over_max['max_connections']} "
            f"with {over_max['reserve']} in reserve"
        )
    app_name = application_name(sweep, spec)
    config = trial_config(spec, options, token, app_name)
    trial.pool_stats = {"settings": trial_settings(config["database"])}
    where = f"[{spec.index}/{total}] {spec.label}, {spec.workers}x{spec.threads} threads"
    # A Locust started ahead for this trial (see below) already has the trial's state directory.
    started, options.pending_load = options.pending_load, None
    if started is not None:
        state_dir = started.directory
    else:
        state_dir = Path(tempfile.mkdtemp(prefix="poolbench-trial-"))
    server = TrialServer(
        config=config,
        workers=spec.workers,
        threads=spec.threads,
        state_dir=state_dir,
        bind=options.bind,
        start_timeout=options.start_timeout,
        forkserver=options.forkserver,
    )
    db_sampler = cpu = None
    go: list[float] = []
    measured_all = False
    t0 = time.monotonic()
    try:
        with children.shielded():
            trial.save()
        # Sampling starts before the server does: on MySQL/MariaDB the connections already open then are
        # the ones that are not the trial's.
        db_sampler = DatabaseConnections(
            options.target.harness_connection,
            options.target.vendor,
            application_name=app_name,
            database=str(options.target.database.get("NAME") or ""),
            user=str(options.target.database.get("USER") or ""),
            embedded=options.target.embedded,
        ).start(wait_setup=True)
        report("info", f"{where}: starting server...")
        server.listen()
        locust_pid: list[int] = []
        mark = state_dir / MEASURE_MARK
        sampler = db_sampler

        def server_ready() -> None:
            # Runs while Locust boots (it waits for the go-ahead): the two start-ups overlap.
            nonlocal cpu
            server.start()
            trial.overhead["server_start_s"] = round(server.started_in, 3)
            report(
                "info",
                f"{where}: server up on {server.url} in {server.started_in:.1f}s; "
                f"{options.load.users} users for {options.load.duration:g}s (+{options.load.warmup:g}s warm-up)...",
            )
            for problem in check_pages(server, options.load):
                trial.notes.append(problem)
                if spec.index == 1:
                    report("warning", f"{where}: {problem}")
            cpu = ProcessCPU(
                lambda: {
                    "server": [server.proc.pid] if server.proc else [],
                    "load": list(locust_pid),
                    "database": list(sampler.db_pids),
                },
                measuring=mark.exists,
            )
            cpu.start()
            go.append(time.time())

        t_load = time.monotonic()
        output = run_load(
            options.load,
            load_host(server),
            state_dir,
            on_tick=lambda elapsed, planned: report(
                "detail", f"{where}: load running, {elapsed:.0f}s of {planned:.0f}s"
            ),
            on_start=lambda pid: locust_pid.append(pid),
            on_measuring=lambda: report("detail", f"{where}: warm-up over, measuring..."),
            ready=server_ready,
            started=started,
        )
        load_s = time.monotonic() - t_load
        if output.get("test_start") and go:
            # Locust's own share: from the go-ahead to its first user, from the window's end to its results.
            trial.overhead["locust_start_s"] = round(max(0.0, output["test_start"] - go[0]), 3)
            trial.overhead["locust_stop_s"] = round(max(0.0, time.time() - output["measure_end"]), 3)
        trial.overhead["load_outside_window_s"] = round(
            max(
                0.0,
                load_s
                - trial.overhead.get("server_start_s", 0)
                - options.load.duration
                - options.load.warmup,
            ),
            3,
        )
        # The load is over: a Ctrl-C now waits until this trial's figures are in.
        with children.shielded():
            for sampler in (db_sampler, cpu):
                if sampler is not None:
                    sampler.stop()
            if spec.index < total:
                # The next trial's Locust imports while this one is wrapped up (nothing is measured now).
                ahead = Path(tempfile.mkdtemp(prefix="poolbench-trial-"))
                options.pending_load = start_load(options.load, ahead)
            t_stats = time.monotonic()
            record_measurements(trial, spec, output, server, db_sampler, cpu, options)
            trial.overhead["stats_s"] = round(time.monotonic() - t_stats, 3)
            trial.status = Trial.Status.OK
            measured_all = True
    except WorkersMissing as exc:
        trial.status = Trial.Status.ERROR
        trial.error_text = redact(f"{exc}\n\n{exc.log}".strip())
        raise SweepError(str(exc)) from exc
    except (ServerError, LoadError) as exc:
        trial.status = Trial.Status.ERROR
        log = getattr(exc, "log", "") or server.log_tail()
        trial.error_text = redact(f"{exc}\n\n{log}".strip())
        report("warning", f"{where}: failed: {redact(str(exc))}")
    except KeyboardInterrupt as exc:
        with children.shielded(reraise=False):
            if measured_all:
                trial.notes.append("the sweep was interrupted just after this trial was measured")
            else:
                trial.status = Trial.Status.INTERRUPTED
                trial.error_text = INTERRUPTED_TRIAL
                record_partial(trial, spec, getattr(exc, "partial", None), server, db_sampler, cpu, options)
        raise
    except Exception as exc:
        # Anything else still leaves a finished row behind it (then stops the sweep).
        trial.status = Trial.Status.ERROR
        trial.error_text = redact(f"{type(exc).__name__}: {exc}\n\n{server.log_tail()}".strip())
        raise
    finally:
        with children.shielded():
            for sampler in (db_sampler, cpu):
                if sampler is not None:
                    sampler.stop()
            t_stop = time.monotonic()
            server.stop()
            trial.overhead["server_stop_s"] = round(time.monotonic() - t_stop, 3)
            trial.overhead["trial_total_s"] = round(time.monotonic() - t0, 3)
            trial.finished_at = timezone.now()
            save_anyway(trial)
            shutil.rmtree(state_dir, ignore_errors=True)
    if trial.status == Trial.Status.OK:
        peak = trial.db_stats.get("peak_connections")
        mean = trial.db_stats.get("mean_connections")
        report(
            "success" if not trial.failures else "warning",
            f"{where}: {trial.rps:.0f} req/s, p95 {_ms(trial.latency_p95_ms)}, p99 {_ms(trial.latency_p99_ms)}, "
            f"{trial.failures} failures ({trial.failure_pct:.1f}%)"
            + (f", DB connections peak {peak} / mean {mean:g}" if peak is not None else ""),
        )
        site_pages = [e for e in trial.endpoints if not str(e.get("name", "")).startswith(PREFIX)]
        if len(site_pages) > 1 or trial.failures:
            for e in site_pages:
                level = "warning" if e.get("failures") else "detail"
                report(
                    level,
                    f"{where}:   {e['method']} {e['name']}: {e['requests']} requests, {e['failures']} failures",
                )
    return trial


def check_pages(server: TrialServer, load: LoadSettings) -> list[str]:
    """One GET of each --path before the load, so a login redirect or an error is named up front."""
    problems = []
    headers = {"Cookie": load.cookie} if load.cookie else {}
    for path, _ in load.paths:
        try:
            status, body, location = server.get(path, headers=headers)
        except OSError as exc:
            problems.append(f"GET {path} before the load failed: {exc}")
            continue
        if 300 <= status < 400:
            hint = " (a login page? use --login-user NAME)" if "login" in location.lower() else ""
            problems.append(
                f"GET {path} answered {status} to {location or '?'}{hint}: the trials measure that redirect, "
                "not the page"
            )
        elif not 200 <= status < 300:
            problems.append(
                f"GET {path} answered {status} before the load: its requests will count as failures"
            )
    return problems


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
