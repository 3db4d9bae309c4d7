"""Plan -> trials -> rows: the sweep loop. Each trial runs in a fresh server process (sweep/trial.py)
and is saved the moment it ends; the checks before the first one are in sweep/preflight.py, the
``--sizes auto`` search in sweep/search.py."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.utils import timezone

from poolbench import __version__
from poolbench.models import Sweep, Trial
from poolbench.results import stale
from poolbench.results.summary import finish_sweep, summarize
from poolbench.sweep import children
from poolbench.sweep.base import (
    AUTO_MAX_SIZES,
    Reporter,
    SweepError,
    SweepOptions,
    SweepRun,
    quiet,
    save_anyway,
)
from poolbench.sweep.capacity import capacity_specs
from poolbench.sweep.forkserver import ForkServer, ForkServerError
from poolbench.sweep.load import start_load, worker_command
from poolbench.sweep.plan import TrialSpec
from poolbench.sweep.preflight import check_results_writable, ensure_probe_row, preflight, prepare
from poolbench.sweep.rate import rate_specs
from poolbench.sweep.search import auto_max_size, auto_specs, planned_seconds, planned_trials
from poolbench.sweep.server import fork_server_env
from poolbench.sweep.site import LoginSession, create_login_session
from poolbench.sweep.targets import TargetError, redact
from poolbench.sweep.trial import INTERRUPTED_TRIAL, TrialRun, application_name, load_host, trial_config

# Names of the sweep's API that moved to the modules above, still importable from here.
__all__ = [
    "AUTO_MAX_SIZES",
    "INTERRUPTED_SWEEP",
    "INTERRUPTED_TRIAL",
    "Reporter",
    "SweepError",
    "SweepOptions",
    "SweepRun",
    "application_name",
    "auto_max_size",
    "check_results_writable",
    "ensure_probe_row",
    "load_host",
    "preflight",
    "prepare",
    "run_sweep",
    "run_trial",
    "site_changes",
    "trial_config",
]

# "{signal}": the signal received, see children.stop_reason().
INTERRUPTED_SWEEP = "interrupted ({signal}); finished trials are kept"


def run_sweep(options: SweepOptions, report: Reporter = quiet) -> Sweep:
    """Run every trial of the plan; return the finished Sweep. Children are always stopped.

    On Ctrl-C/SIGTERM the finished trials are kept, the running one and the sweep are stored as
    interrupted and ``KeyboardInterrupt`` is re-raised with the sweep as its ``sweep`` attribute;
    on a :class:`SweepError`/:class:`TargetError` after the sweep began, the sweep is stored as
    error and the exception carries it the same way.
    """
    run = SweepRun(options, report, total=planned_trials(options))
    session: LoginSession | None = None
    try:
        run.extra = prepare(options, report)
        if options.login_user is not None:
            # Shielded: a Ctrl-C between the save and the assignment would leave a session nobody deletes.
            with children.shielded():
                session = create_login_session(options.login_user, planned_seconds(options))
            options.load.cookie = session.cookie
        with children.shielded():
            for pk in stale.mark_abandoned():
                report(
                    "warning", f"Sweep #{pk} was left running by a command that is gone: marked abandoned."
                )
            run.sweep = create_sweep(options, run.extra)
        announce(run, session)
        if options.fork_server:
            run.forkserver = start_fork_server(options, report)
        for spec in trial_specs(run):
            run_trial(run, spec)
        with children.shielded():
            finish_sweep(run.sweep, options)
        return run.sweep
    except KeyboardInterrupt as exc:
        reason = INTERRUPTED_SWEEP.format(signal=children.stop_reason())
        _stopped(run, exc, Sweep.Status.INTERRUPTED, reason)
        raise
    except Exception as exc:
        _stopped(run, exc, Sweep.Status.ERROR, str(exc))
        raise
    finally:
        # A second Ctrl-C here is held until every child is stopped and the embedded database is down.
        with children.shielded(reraise=False):
            stop_children(run)
            if session is not None:
                session.delete()
                options.load.cookie = ""
            options.target.close()


def trial_specs(run: SweepRun) -> Iterator[TrialSpec]:
    """The trials to run: the plan's, the --sizes auto search's, or the open model's (--rate,
    --find-capacity: sweep/rate.py, sweep/capacity.py), each yielded once the one before is saved."""
    options = run.options
    if options.find_capacity:
        return capacity_specs(run, lambda spec: _check_target(run, spec))
    if options.rate:
        return rate_specs(run, lambda spec: _check_target(run, spec))
    return auto_specs(run) if options.auto else planned_specs(run)


def planned_specs(run: SweepRun) -> Iterator[TrialSpec]:
    """The plan's trials in order; before each but the first, the target must still answer."""
    for n, spec in enumerate(run.options.plan.specs):
        if n:
            _check_target(run, spec)
        yield spec


def run_trial(run: SweepRun, spec: TrialSpec) -> Trial:
    """One trial, phase by phase (sweep/trial.py); its row is saved whatever happens. Returns the row.

    The next trial's Locust is started as soon as this one's load is over: it imports while this
    trial's figures are collected, when nothing is measured.
    """
    trial = TrialRun(run, spec, run.take_pending_load())
    try:
        trial.begin()
        trial.start_sampling()
        trial.start_locust()
        trial.start_server()
        trial.run_load()
        # The load is over: a Ctrl-C now waits until this trial's figures are in.
        with children.shielded():
            trial.stop_sampling()
            if spec.index < run.total:
                start_next_locust(run)
            trial.collect()
    except BaseException as exc:
        if not trial.failed(exc):
            raise
    finally:
        trial.finish()
    trial.report_outcome()
    return trial.row


def start_next_locust(run: SweepRun) -> None:
    """The look-ahead: start the next trial's Locust now, in the next trial's own state directory."""
    ahead = Path(tempfile.mkdtemp(prefix="poolbench-trial-"))
    run.pending_load = start_load(run.options.load, ahead)


def stop_children(run: SweepRun) -> None:
    """Stop the fork server, a Locust started ahead for a trial that never ran, and any other child."""
    if run.forkserver is not None:
        run.forkserver.stop()
        run.forkserver = None
    pending = run.take_pending_load()
    if pending is not None:
        pending.stop()
        shutil.rmtree(pending.directory, ignore_errors=True)
    children.stop_all()


def announce(run: SweepRun, session: LoginSession | None) -> None:
    """What the sweep is about to do, before its first trial."""
    options, report = run.options, run.report
    assert run.sweep is not None
    planned = (
        f"--sizes auto, at most {options.auto_max_sizes} sizes"
        if options.auto
        else f"at most {run.total} trial(s)"
        if options.rate or options.find_capacity
        else f"{len(options.plan.specs)} trial(s)"
    )
    report("info", f"Sweep #{run.sweep.pk}: {planned} against {options.target.description}")
    if options.server_source:
        report("info", f"Server: {options.server_source}.")
    if options.seed is not None:
        report("info", f"Each pass in a random order (--seed {options.seed} replays it).")
    if session is not None:
        report(
            "info",
            f"Logged in as {session.user}: a session in the site's store, removed after the sweep.",
        )
    for change in site_changes(options):
        report("info", f"In the trial server only: {change}.")
    if options.load.expect_workers:
        report("info", waiting_for_workers(options))


def _stopped(run: SweepRun, exc: BaseException, status: str, message: str) -> None:
    """The sweep ends early: store it as ``status`` (if it began) and hand it to the caller on ``exc``."""
    with children.shielded(reraise=False):
        if run.sweep is not None:
            _stop_sweep(run.sweep, run.options, status, message)
        exc.sweep = run.sweep  # type: ignore[attr-defined]


def create_sweep(options: SweepOptions, extra: dict[str, Any]) -> Sweep:
    """The sweep's row, status running; ``extra``: what the checks before it found."""
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
            "source": options.server_source,
        },
        load=load,
        options={
            "modes": sorted({s.mode for s in options.plan.specs}),
            "query_delay_ms": options.query_delay_ms,
            "probe_cpu_ms": options.probe_cpu_ms,
            "probe_db_ms": options.probe_db_ms,
            "repeat": max(s.repeat for s in options.plan.specs),
            "pool_timeout": options.plan.specs[0].pool_timeout,
            "tolerance": options.tolerance,
            "login_user": options.login_user.get_username() if options.login_user is not None else None,
            "trial_server_changes": site_changes(options),
            "allow_over_max": options.allow_over_max,
            "spindles": options.spindles,
            "db_cores": options.db_cores,
            "auto": options.auto,
            **open_model_options(options),
            **extra,
        },
        host=host_info(),
        seed=options.seed,
    )


def open_model_options(options: SweepOptions) -> dict[str, Any]:
    """--rate, --arrivals, --headroom, --find-capacity, --slo and --gate as stored on the sweep."""
    if not (options.rate or options.find_capacity or options.slo or options.gates.slo):
        return {}
    return {
        "rate": options.rate,
        "arrivals": options.load.arrivals if options.rate or options.find_capacity else None,
        "headroom": options.headroom if options.rate else None,
        "find_capacity": options.find_capacity,
        "slo": [str(t) for t in options.slo],
        "gate_slo": [str(t) for t in options.gates.slo],
    }


def host_info() -> dict[str, Any]:
    """The machine the sweep ran on (the trial servers and Locust ran here too)."""
    return {
        **stale.process_identity(),  # hostname, pid: a later sweep can tell this one's command died
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "poolbench": __version__,
    }


def start_fork_server(options: SweepOptions, report: Reporter = quiet) -> ForkServer | None:
    """Start the fork server for the trial servers; without it each trial starts a new interpreter."""
    server = ForkServer(fork_server_env())
    try:
        server.start(timeout=options.start_timeout)
    except ForkServerError as exc:
        server.stop()
        report("warning", f"Starting each trial server on its own (the fork server failed: {exc}).")
        return None
    return server


def waiting_for_workers(options: SweepOptions) -> str:
    """How to start the Locust workers of --expect-workers, for the user to read before the first trial."""
    load = options.load
    where = f"{load.master_bind}:{load.master_port}"
    return (
        f"Each trial's Locust master listens on {where} and waits up to {load.workers_timeout:g}s for "
        f"{load.expect_workers} worker(s). A worker serves one trial and exits, so run it in a loop on each "
        f"load machine:\n  while :; do {worker_command(load)}; sleep 0.5; done"
    )


def _check_target(run: SweepRun, spec: TrialSpec) -> None:
    """Between trials: stop the sweep with a clear message if the database went away."""
    assert run.sweep is not None
    try:
        run.options.target.check_alive()
    except TargetError as exc:
        done = run.sweep.trials.count()
        raise TargetError(
            f"{exc}. The sweep stopped before trial {spec.index} of {run.total}; its {done} finished "
            f"trial(s) are kept in sweep #{run.sweep.pk}. Start the database and run the sweep again"
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
