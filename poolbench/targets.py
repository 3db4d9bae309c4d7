"""The database a sweep benchmarks: an alias of the site, or an embedded PostgreSQL.

A :class:`Target` knows the alias's settings (the base of every trial's DATABASES entry), its
vendor, a password-free description, and gives the harness its own non-pooled connection for
checks and sampling, apart from the connections the trial server opens.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.db import connections
from django.db.utils import ConnectionHandler

from . import backends

logger = logging.getLogger(__name__)

HARNESS_ALIAS = "poolbench_harness"
EMBEDDED_ALIAS = "poolbench_embedded"


class TargetError(RuntimeError):
    """The target database cannot be used; the message names the fix."""


def describe(db: dict[str, Any]) -> str:
    """A password-free URL-like description of a DATABASES entry."""
    vendor = backends.vendor_of(db.get("ENGINE", ""))
    if vendor == "sqlite":
        return f"sqlite:///{db.get('NAME')}"
    user = db.get("USER") or ""
    host = db.get("HOST") or "localhost"
    port = db.get("PORT") or ""
    name = db.get("NAME") or ""
    if str(host).startswith("/"):
        return f"{vendor}://{quote(str(user))}@/{name}?host={host}"
    netloc = f"{quote(str(user))}@{host}" if user else str(host)
    if port:
        netloc += f":{port}"
    return f"{vendor}://{netloc}/{name}"


@dataclass
class Target:
    alias: str  # the alias whose DATABASES entry each trial overrides
    database: dict[str, Any]  # the base settings for a trial (the alias's own, or the embedded server's)
    vendor: str
    embedded: bool = False
    migrate_alias: str = ""  # where the probe table must exist: the alias itself, or the embedded one
    version: str = ""
    max_connections: int | None = None
    _server: Any = field(default=None, repr=False)
    _tmpdir: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return describe(self.database)

    @property
    def description(self) -> str:
        kind = "embedded PostgreSQL (pgserver, started for this sweep)" if self.embedded else f"alias '{self.alias}'"
        version = f" {self.version}" if self.version else ""
        return f"{backends.label(self.vendor)}{version}, {kind}: {self.url}"

    def harness_settings(self) -> dict[str, Any]:
        """Settings for poolbench's own plain connection: no pool, closed after use."""
        db = copy.deepcopy(self.database)
        options = dict(db.get("OPTIONS") or {})
        options.pop("pool", None)
        db["OPTIONS"] = options
        db.pop("POOL_OPTIONS", None)
        db["ENGINE"] = backends.base_engine(self.vendor)
        db["CONN_MAX_AGE"] = 0
        return db

    def harness_connection(self) -> Any:
        """A new, unshared DatabaseWrapper for the target; the caller closes it."""
        handler = ConnectionHandler({"default": {}, HARNESS_ALIAS: self.harness_settings()})
        return handler.create_connection(HARNESS_ALIAS)

    def inspect(self) -> None:
        """Connect once: fail early with the fix if the database cannot be reached; read version and limits."""
        conn = self.harness_connection()
        try:
            conn.ensure_connection()
            with conn.cursor() as cur:
                if self.vendor == "postgresql":
                    cur.execute("SHOW server_version")
                    self.version = cur.fetchone()[0].split()[0]
                    cur.execute("SHOW max_connections")
                else:
                    cur.execute("SELECT VERSION()")
                    self.version = cur.fetchone()[0]
                    cur.execute("SELECT @@max_connections")
                self.max_connections = int(cur.fetchone()[0])
        except Exception as exc:
            raise TargetError(
                f"cannot connect to the database of alias '{self.alias}' ({self.url}): "
                f"{' '.join(str(exc).split())}. Start the server or fix DATABASES / DATABASE_URL."
            ) from exc
        finally:
            conn.close()

    def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            try:
                server.cleanup()
            finally:
                _kill_leftover_postgres(self._tmpdir)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        if EMBEDDED_ALIAS in connections.settings:
            connections[EMBEDDED_ALIAS].close()


def resolve(alias: str, *, embedded: bool) -> Target:
    """The target for ``alias``; with ``embedded`` an embedded PostgreSQL stands in for the alias's database."""
    from django.conf import settings

    if alias not in settings.DATABASES:
        known = ", ".join(sorted(settings.DATABASES))
        raise TargetError(f"unknown database alias '{alias}'; use one of: {known} (see DATABASES)")
    base = copy.deepcopy(connections[alias].settings_dict)
    vendor = backends.vendor_of(base.get("ENGINE", ""))
    if embedded:
        return Target(alias=alias, database={}, vendor="postgresql", embedded=True, migrate_alias=EMBEDDED_ALIAS)
    if vendor not in backends.POOLABLE:
        raise TargetError(
            f"database '{alias}' uses {base.get('ENGINE')} ({backends.label(vendor)}), which has no connection pool "
            "to size; benchmark a PostgreSQL or MySQL/MariaDB alias (--database, or DATABASE_URL=postgres://... "
            "in the demo project), or use --embedded to benchmark an embedded PostgreSQL"
        )
    return Target(alias=alias, database=base, vendor=vendor, migrate_alias=alias)


def start_embedded(target: Target, *, max_connections: int, on_status: Any = None) -> None:
    """Start an embedded PostgreSQL for ``target`` (pgserver), raised to ``max_connections``."""
    try:
        import pgserver
    except ImportError as exc:
        raise TargetError(
            "the embedded PostgreSQL needs pgserver, which is not installed; pip install 'poolbench[embedded]', "
            "or set DATABASE_URL=postgres://... to benchmark your own server"
        ) from exc
    tmpdir = tempfile.mkdtemp(prefix="poolbench-pg-")
    target._tmpdir = tmpdir
    pgdata = Path(tmpdir) / "data"
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        target._server = server
        server.psql(f"ALTER SYSTEM SET max_connections = {int(max_connections)};")
        # max_connections needs a restart: stop the first server, start it again with the setting.
        target._server = None
        server.cleanup()
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        target._server = server
    except Exception as exc:
        target.close()
        raise TargetError(f"the embedded PostgreSQL did not start: {exc}") from exc
    socket_dir = str(server.get_uri()).split("host=", 1)[1].split("&", 1)[0]
    target.database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": socket_dir,
        "PORT": "",
        "CONN_MAX_AGE": 0,
        "OPTIONS": {},
    }
    configured = connections.configure_settings({"default": {}, EMBEDDED_ALIAS: dict(target.database)})
    connections.settings[EMBEDDED_ALIAS] = configured[EMBEDDED_ALIAS]


def _kill_leftover_postgres(datadir: str | None) -> None:
    if not datadir:
        return
    try:
        import psutil
    except ImportError:
        return
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if datadir in cmd and "postgres" in cmd:
            try:
                proc.kill()
            except psutil.Error:
                pass


def probe_ready(alias: str) -> bool:
    """Whether poolbench's migrations (the probe table and its row) are applied on ``alias``."""
    from django.db.migrations.recorder import MigrationRecorder

    recorder = MigrationRecorder(connections[alias])
    try:
        applied = recorder.applied_migrations()
    finally:
        connections[alias].close()
    return ("poolbench", "0002_probe_row") in applied
