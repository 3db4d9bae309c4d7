"""One trial, phase by phase: a fresh trial server with this trial's pool, a Locust load against it,
what the database and the CPU saw meanwhile, and the trial's row (saved whatever happens).

The sweep loop (:func:`poolbench.sweep.run.run_trial`) calls the phases of :class:`TrialRun` in order:
``begin``, ``start_sampling``, ``start_locust``, ``start_server``, ``run_load``, ``stop_sampling``,
``collect``, then ``finish`` in every case; ``failed`` records why a trial did not get to the end.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from django.utils import timezone

from poolbench import backends
from poolbench.measure import timeline
from poolbench.measure.samplers import DatabaseConnections, ProcessCPU, Sampler
from poolbench.models import Sweep, Trial
from poolbench.results.rate import rate_line
from poolbench.results.record import record_measurements, record_partial
from poolbench.sweep import children, watchdog
from poolbench.sweep.base import SweepError, SweepOptions, SweepRun
from poolbench.sweep.cancel import cancel_statements
from poolbench.sweep.load import LoadError, LoadSettings, StartedLoad, WorkersMissing, start_load, wait_load
from poolbench.sweep.plan import TrialSpec
from poolbench.sweep.server import ServerError, TrialServer
from poolbench.sweep.targets import redact
from poolbench.sweep.unwritable import save_results
from poolbench.wire import MEASURE_MARK, PREFIX

INTERRUPTED_TRIAL = "interrupted ({signal})"  # "{signal}": see children.stop_reason()


class TrialRun:
    """One trial of a running sweep. ``load`` is the Locust started ahead for it, if any: it already
    has the trial's state directory."""

    def __init__(self, run: SweepRun, spec: TrialSpec, load: StartedLoad | None = None):
        assert run.sweep is not None
        self.run = run
        self.spec = spec
        self.options: SweepOptions = run.options
        self.app_name = application_name(run.sweep, spec)
        self.config = trial_config(spec, self.options, run.token, self.app_name)
        self.row = new_row(run, spec, self.config)
        self.where = f"[{spec.index}/{run.total}] {spec.label}, {spec.workers}x{spec.threads} threads"
        self.load = load
        self.state_dir = load.directory if load else watchdog.private_dir("poolbench-trial-")
        self.server = TrialServer(
            config=self.config,
            workers=spec.workers,
            threads=spec.threads,
            state_dir=self.state_dir,
            bind=self.options.bind,
            start_timeout=self.options.start_timeout,
            forkserver=run.forkserver,
        )
        self.db_sampler: DatabaseConnections | None = None
        self.cpu: ProcessCPU | None = None
        self._sampling: list[Sampler] = []  # started and not stopped yet
        self.output: dict[str, Any] | None = None  # what Locust measured
        self.measured = False  # every figure is in the row
        self.t0 = time.monotonic()
        self.t_load = self.t0

    def begin(self) -> None:
        """Save the row at once (status running): ``finish`` saves it again whatever happens, so that a
        Ctrl-C at any point leaves a finished row."""
        with children.shielded():
            save_results(self.row)
        if self.run.first_started is None:
            self.run.first_started = self.t0

    def start_sampling(self) -> None:
        """Sample the database's connections from before the server starts: on MySQL/MariaDB the
        connections already open then are the ones that are not the trial's."""
        target = self.options.target
        self.db_sampler = DatabaseConnections(
            target.harness_connection,
            target.vendor,
            application_name=self.app_name,
            database=str(target.database.get("NAME") or ""),
            user=str(target.database.get("USER") or ""),
            embedded=target.embedded,
        )
        self._sampling.append(self.db_sampler)
        self.db_sampler.start(wait_setup=True)

    def start_locust(self) -> None:
        """Locust takes a second to import: it starts now (unless it was started ahead, while the
        previous trial was collected) and waits for the go-ahead while the server starts."""
        self.t_load = time.monotonic()
        if self.load is None:
            self.load = start_load(self.options.load, self.state_dir)

    def start_server(self) -> None:
        """Start the trial server and check the site's pages once; the CPU of every party is sampled
        from then on."""
        report, load = self.run.report, self.options.load
        report("info", f"{self.where}: starting server...")
        self.server.start()
        self.row.overhead["server_start_s"] = round(self.server.started_in, 3)
        offered = (
            f"{load.users} users"
            if not self.spec.rate
            else (f"{self.spec.rate:g} req/s {load.arrivals} arrivals ({load.users} users provisioned)")
        )
        report(
            "info",
            f"{self.where}: server up on {self.server.url} in {self.server.started_in:.1f}s; "
            f"{offered} for {load.duration:g}s (+{load.warmup:g}s warm-up)...",
        )
        for problem in check_pages(self.server, load):
            self.row.notes.append(problem)
            if self.spec.index == 1:
                report("warning", f"{self.where}: {problem}")
        self.cpu = ProcessCPU(self._cpu_roots, measuring=(self.state_dir / MEASURE_MARK).exists)
        self._sampling.append(self.cpu)
        self.cpu.start()

    def _cpu_roots(self) -> dict[str, list[int]]:
        # Read by the CPU sampler's thread at each sample: the database's processes may change.
        return {
            "server": [self.server.proc.pid] if self.server.proc else [],
            "load": [self.load.proc.pid] if self.load else [],
            "database": list(self.db_sampler.db_pids) if self.db_sampler else [],
        }

    def run_load(self) -> None:
        """Release Locust against the server: the warm-up, then the measured window."""
        assert self.load is not None
        report, load = self.run.report, self.options.load
        go = time.time()
        self.load.release(load_host(self.server), rate=self.spec.rate)
        output = wait_load(
            load,
            self.load,
            on_tick=lambda elapsed, planned: report(
                "detail", f"{self.where}: load running, {elapsed:.0f}s of {planned:.0f}s"
            ),
            on_measuring=lambda: report("detail", f"{self.where}: warm-up over, measuring..."),
        )
        self.output = output
        overhead = self.row.overhead
        if output.get("test_start"):
            # Locust's own share: from the go-ahead to its first user, from the window's end to its results.
            overhead["locust_start_s"] = round(max(0.0, output["test_start"] - go), 3)
            overhead["locust_stop_s"] = round(max(0.0, time.time() - output["measure_end"]), 3)
        in_phase = time.monotonic() - self.t_load  # from Locust's start to its results
        outside = in_phase - overhead.get("server_start_s", 0) - load.duration - load.warmup
        overhead["load_outside_window_s"] = round(max(0.0, outside), 3)

    def stop_sampling(self) -> None:
        """Stop each sampler still running (each is stopped once)."""
        while self._sampling:
            self._sampling.pop(0).stop()

    def collect(self) -> None:
        """Put what Locust, the server's pools, the database and the CPU sampler saw into the row."""
        assert self.output is not None
        t_stats = time.monotonic()
        record_measurements(
            self.row, self.spec, self.output, self.server, self.db_sampler, self.cpu, self.options
        )
        db = self.db_sampler
        self.row.timeline = timeline.build(self.output, db.times if db else [], db.values if db else [])
        self.row.overhead["stats_s"] = round(time.monotonic() - t_stats, 3)
        self.measured = True
        if (self.row.requests or 0) <= (self.row.failures or 0):
            # Nothing succeeded: no throughput was measured, whatever Locust counted (issue 16).
            self.row.status = Trial.Status.ERROR
            self.row.error_text = (
                f"no request succeeded ({self.row.requests} requests, {self.row.failures} failures): "
                "the trial measured nothing and counts toward no recommendation"
            )
            self.run.report("warning", f"{self.where}: failed: {self.row.error_text}")
        else:
            self.row.status = Trial.Status.OK

    def failed(self, exc: BaseException) -> bool:
        """Record why the trial did not get to the end; True if the sweep goes on with the next trial
        (a server or a load that failed), False if ``exc`` is to go on up. Missing Locust workers
        stop the sweep (SweepError): no other trial could run either."""
        row = self.row
        if isinstance(exc, KeyboardInterrupt):
            with children.shielded(reraise=False):
                self._interrupted(getattr(exc, "partial", None))
            return False
        row.status = Trial.Status.ERROR
        if isinstance(exc, WorkersMissing):
            row.error_text = redact(f"{exc}\n\n{exc.log}".strip())
            raise SweepError(str(exc)) from exc
        if isinstance(exc, (ServerError, LoadError)):
            log = getattr(exc, "log", "") or self.server.log_tail()
            row.error_text = redact(f"{exc}\n\n{log}".strip())
            self.run.report("warning", f"{self.where}: failed: {redact(str(exc))}")
            return True
        # Anything else still leaves a finished row behind it (then stops the sweep).
        row.error_text = redact(f"{type(exc).__name__}: {exc}\n\n{self.server.log_tail()}".strip())
        return False

    def _interrupted(self, partial: dict[str, Any] | None) -> None:
        if self.measured:
            self.row.notes.append("the sweep was interrupted just after this trial was measured")
            return
        self.row.status = Trial.Status.INTERRUPTED
        self.row.error_text = INTERRUPTED_TRIAL.format(signal=children.stop_reason())
        self.stop_sampling()
        record_partial(self.row, self.spec, partial, self.server, self.db_sampler, self.cpu, self.options)

    def finish(self) -> None:
        """In every case: stop what still runs (samplers, Locust, the server), save the row, and remove
        the trial's state directory. A Ctrl-C meanwhile waits until it is done."""
        # The clean-up never depends on the save: the state directory holds trial.json (with the
        # password) and goes first; a save that fails raises ResultsUnwritable after it (issue 16).
        with children.shielded():
            try:
                self.stop_sampling()
                if self.load is not None:
                    self.load.stop()
                t_stop = time.monotonic()
                self.server.stop()
                self.row.overhead["server_stop_s"] = round(time.monotonic() - t_stop, 3)
            finally:
                try:
                    cancel_statements(self.options.target, self.app_name, self.db_sampler)
                finally:
                    watchdog.remove_dir(self.state_dir)
            self.row.overhead["trial_total_s"] = round(time.monotonic() - self.t0, 3)
            self.row.finished_at = timezone.now()
            self.run.rows.append(self.row)
            self.run.done += 1
            save_results(self.row)

    def report_outcome(self) -> None:
        """A measured trial's figures in one line, and its site pages' when there are several or failures."""
        row, report = self.row, self.run.report
        if row.status != Trial.Status.OK:
            return
        peak = row.db_stats.get("peak_connections")
        mean = row.db_stats.get("mean_connections")
        report(
            "success" if not row.failures else "warning",
            f"{self.where}: {row.rps:.0f} req/s, p95 {_ms(row.latency_p95_ms)}, p99 {_ms(row.latency_p99_ms)}, "
            f"{row.failures} failures ({row.failure_pct:.1f}%)"
            + (f", DB connections peak {peak} / mean {mean:g}" if peak is not None else "")
            + time_left(self.run),
        )
        if row.target_rate is not None:
            report("success" if row.slo_passed else "warning", f"{self.where}: {rate_line(row)}")
        site_pages = [e for e in row.endpoints if not str(e.get("name", "")).startswith(PREFIX)]
        if len(site_pages) > 1 or row.failures:
            for e in site_pages:
                level = "warning" if e.get("failures") else "detail"
                report(
                    level,
                    f"{self.where}:   {e['method']} {e['name']}: {e['requests']} requests, {e['failures']} failures",
                )


def time_left(run: SweepRun) -> str:
    """'; about 1m20s left': the mean wall time of the trials so far times the trials still to run."""
    if run.first_started is None or not run.done or run.done >= run.total:
        return ""
    seconds = (time.monotonic() - run.first_started) / run.done * (run.total - run.done)
    shown = f"{seconds:.0f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"; about {shown} left" + (" at most" if run.options.auto else "")


def new_row(run: SweepRun, spec: TrialSpec, config: dict[str, Any]) -> Trial:
    """The trial's row as it starts (status running), with the notes known before it runs."""
    options = run.options
    trial = Trial(
        sweep=run.sweep,
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
        target_rate=spec.rate,
    )
    age = options.target.database.get("CONN_MAX_AGE", 0)
    if options.target.alias and age != 0 and spec.pooled:
        trial.notes.append(
            f"CONN_MAX_AGE={age} in the site's settings was set to 0 "
            "for this pooled trial (Django's pool does not support persistent connections)."
        )
    trial.notes.extend(f"In the trial server only: {why}." for why in options.overrides.values())
    over_max = run.extra.get("over_max_connections") or {}
    if spec.index in over_max.get("trials", []):
        trial.notes.append(
            f"ran over the server's max_connections (--allow-over-max): may open {spec.max_db_connections} "
            f"connections, max_connections is {over_max['max_connections']} "
            f"with {over_max['reserve']} in reserve"
        )
    trial.pool_stats = {"settings": trial_settings(config["database"])}
    return trial


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
    """What the trial server reads at start (wire.CONFIG_ENV): its DATABASES entry, mode and token."""
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
        "probe_cpu_ms": options.probe_cpu_ms,
        "probe_db_work": options.probe_db_work,
        "overrides": sorted(options.overrides),
    }


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


def load_host(server: TrialServer) -> str:
    """The URL the load generators use; a wildcard bind is reached through this machine's name."""
    if server.bind in ("0.0.0.0", "::", ""):
        return f"http://{socket.gethostname()}:{server.port}"
    return server.url


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
