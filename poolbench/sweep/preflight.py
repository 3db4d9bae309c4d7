"""Everything that must hold before a sweep writes its first row or starts its first child: the
results database (reachable, migrated, writable), the target (reachable, big enough) and the probe."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from poolbench.models import Probe, Sweep, Trial
from poolbench.sweep.base import Reporter, SweepError, SweepOptions, quiet
from poolbench.sweep.targets import connection_failure, describe, probe_ready, redact, start_embedded


def prepare(options: SweepOptions, report: Reporter = quiet) -> dict[str, Any]:
    """Everything that must hold before the first row is written and the first load starts; returns
    what the checks found that the sweep records (``over_max_connections`` under --allow-over-max).

    The checks that can refuse the sweep (tables, connection, max_connections) come before anything
    is written or started: the embedded server is checked against the max_connections it will be
    given, before it starts.
    """
    missing_tables = _check_results_database(options)
    target = options.target
    if target.embedded:
        found = preflight(options, report, limit=options.embedded_max_connections)
    else:
        target.inspect()
        found = preflight(options, report)
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
    if options.uses_probe:
        _ensure_probe_table(options, report)
        ensure_probe_row(target.migrate_alias, report)
    if options.probe_db_ms:
        found["probe_db"] = calibrate_db_probe(options, report)
    return found


def calibrate_db_probe(options: SweepOptions, report: Reporter = quiet) -> dict[str, Any]:
    """--probe-db-ms: how much work makes the probe's query take that long here (sweep/probes.py)."""
    from poolbench.sweep import probes

    target = options.target
    found = probes.calibrate(target.harness_connection(), target.vendor, options.probe_db_ms)
    options.probe_db_work = found["units"]
    report(
        "info",
        f"--probe-db-ms {options.probe_db_ms:g}: {found['sql']} took {found['measured_ms']:.1f} ms "
        f"alone on the database ({found['measured_by']}); each probe request runs it.",
    )
    return found


def _check_results_database(options: SweepOptions) -> bool:
    """Refuse an unreachable results database, or one without poolbench's tables unless --migrate;
    whether the tables are missing (and so are to be created)."""
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
    return missing_tables


def _ensure_probe_table(options: SweepOptions, report: Reporter) -> None:
    target = options.target
    if target.embedded or probe_ready(target.migrate_alias):
        return
    if not options.migrate:
        raise SweepError(
            f"the probe table is missing from database '{target.alias}'; "
            f"run `python manage.py migrate poolbench --database {target.alias}` first"
        )
    report("info", f"Creating the probe table in '{target.alias}' (migrate poolbench).")
    call_command("migrate", "poolbench", database=target.migrate_alias, verbosity=0)
    connections[target.migrate_alias].close()


def ensure_probe_row(alias: str, report: Reporter = quiet) -> None:
    """The probe reads the table's one row: an emptied table (a test flush, a cleanup) would make each
    request read nothing, so put its row back."""
    try:
        if not Probe.objects.using(alias).exists():
            Probe.objects.using(alias).create(testcol="test")
            report("info", f"The probe table in '{alias}' was empty; its one row was put back.")
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


def preflight(options: SweepOptions, report: Reporter = quiet, limit: int | None = None) -> dict[str, Any]:
    """Refuse configurations that cannot fit in the server's max_connections (unless allowed); under
    --allow-over-max, return ``{"over_max_connections": ...}`` for the sweep to record.

    A configuration may open workers x (pool size + overflow) connections when pooled, workers x
    threads when not; ``reserve`` connections stay free for admin tools and poolbench's own.
    """
    limit = limit or options.target.max_connections
    if not limit:
        return {}
    budget = limit - options.reserve
    if options.auto:
        # The search never goes above what fits; it only has to start below it.
        workers = options.plan.specs[0].workers
        if budget < workers and not options.allow_over_max:
            raise SweepError(
                f"--sizes auto: {workers} worker(s) need at least {workers} connections, but the server allows "
                f"max_connections={limit} and {options.reserve} are kept in reserve; use fewer --workers"
            )
        return {}
    over = [s for s in options.plan.specs if s.max_db_connections > budget]
    if not over:
        return {}
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
    if not options.allow_over_max:
        raise SweepError(
            f"{detail}. Use smaller --sizes, --max-overflow or --workers, raise max_connections on the server, "
            "or pass --allow-over-max to run it anyway (recorded on the sweep and its trials)"
        )
    report("warning", f"Running anyway (--allow-over-max): {detail}.")
    over_max = {
        "trials": [s.index for s in over],
        "max_connections": limit,
        "reserve": options.reserve,
        "largest": worst.max_db_connections,
    }
    return {"over_max_connections": over_max}
