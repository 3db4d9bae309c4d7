"""When a trial ends, end its statements too (issue 16, item 9).

The trial server is killed rather than shut down, and a database backend in the middle of a statement
(``--query-delay-ms``'s ``pg_sleep``/``SLEEP``, a slow page) does not notice that its client is gone
until the statement ends: it would go on holding a connection slot and a lock or two after the trial,
even after the command. So, after the server is stopped, poolbench ends the trial's own backends:
on PostgreSQL ``pg_terminate_backend`` of those with the trial's ``application_name``; on
MySQL/MariaDB ``KILL QUERY`` of the connections the trial's sampler counts as the trial's (new since
the trial began, to this database, as this user).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

# Seconds to wait for the harness's connection: a database that went away must not hold up the clean-up.
CONNECT_TIMEOUT = 5

PG_TERMINATE = (
    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()"
)
MYSQL_PROCESSES = (
    "SELECT ID, USER, DB, COMMAND FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"
)


def cancel_statements(target: Any, application_name: str, sampler: Any = None) -> list[int]:
    """End the statements the trial's connections still run; the backends/threads ended. Never raises:
    the clean-up after a trial goes on whatever this finds (the reason is logged)."""
    if target.vendor not in ("postgresql", "mysql") or not target.database:
        return []
    before = getattr(sampler, "before_ids", None)
    if target.vendor == "mysql" and before is None:
        return []  # which connections are the trial's is known from the sampler's first look only
    try:
        conn = target.harness_connection()
    except Exception as exc:
        logger.warning("could not end the trial's statements: %s", exc)
        return []
    options = dict(conn.settings_dict.get("OPTIONS") or {})
    options.setdefault("connect_timeout", CONNECT_TIMEOUT)
    conn.settings_dict["OPTIONS"] = options
    try:
        with conn.cursor() as cur:
            if target.vendor == "postgresql":
                cur.execute(PG_TERMINATE, [application_name])
                return [int(row[0]) for row in cur.fetchall() if row[1]]
            return _kill_mysql_queries(cur, before, target.database)
    except Exception as exc:  # the database went away: nothing to end there either
        logger.warning("could not end the trial's statements: %s", " ".join(str(exc).split()))
        return []
    finally:
        try:
            conn.close()
        except Exception:
            pass


def _kill_mysql_queries(cur: Any, before: set[int], database: dict[str, Any]) -> list[int]:
    name, user = str(database.get("NAME") or ""), str(database.get("USER") or "")
    cur.execute(MYSQL_PROCESSES)
    ended = []
    for ident, who, db, command in cur.fetchall():
        ident = int(ident)
        if ident in before or (name and db != name) or (user and who != user):
            continue
        if command not in ("Query", "Execute"):
            continue
        try:
            cur.execute(f"KILL QUERY {ident}")
            ended.append(ident)
        except Exception:  # it ended meanwhile
            pass
    return ended
