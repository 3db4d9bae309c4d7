"""The database a sweep benchmarks: an alias of the site, or an embedded PostgreSQL.

A :class:`Target` knows the alias's settings (the base of every trial's DATABASES entry), its
vendor, a password-free description, and gives the harness its own non-pooled connection for
checks and sampling, apart from the connections the trial server opens.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import re
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from django.db import connections
from django.db.utils import ConnectionHandler

from poolbench import backends

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


def connect(conn: Any, what: str) -> None:
    """Open ``conn``, or raise TargetError saying which step failed (see :func:`connection_failure`)."""
    try:
        conn.ensure_connection()
    except Exception as exc:
        raise TargetError(connection_failure(conn, exc, what) + ".") from exc


def connection_failure(conn: Any, exc: BaseException, what: str) -> str:
    """Why opening ``conn`` (to ``what``) failed, with the fix.

    Django opens the connection, then runs the site's ``connection_created`` receivers on it. When the
    connection itself fails, the fix is the server or the settings; when a receiver (or the
    connection's set-up) fails after that, the database is up and the fix is in that code.
    """
    reason = " ".join(str(exc).split())
    if conn.connection is None:
        return f"cannot connect to {what}: {reason}. Start the server or fix DATABASES / DATABASE_URL"
    receiver = failing_receiver(exc)
    step = f"the site's connection_created receiver {receiver}" if receiver else "setting up the connection"
    return (
        f"connected to {what}, but then {step} raised {type(exc).__name__}: {reason}. "
        "The database is up: fix that code or the settings it reads"
    )


def failing_receiver(exc: BaseException) -> str:
    """``module.function`` of the signal receiver an exception came out of, or ''."""
    frames = traceback.extract_tb(exc.__traceback__)
    for outer, inner in zip(frames, frames[1:], strict=False):
        if outer.filename.endswith(os.path.join("django", "dispatch", "dispatcher.py")):
            module = _module_of(inner.filename)
            return f"{module}.{inner.name}" if module else f"{inner.name} ({inner.filename})"
    return ""


def _module_of(filename: str) -> str:
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return ""


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
        kind = (
            "embedded PostgreSQL (pgserver, started for this sweep)"
            if self.embedded
            else f"alias '{self.alias}'"
        )
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
        """A new DatabaseWrapper for the target, set as this thread's ``connections[HARNESS_ALIAS]``.

        The site's ``connection_created`` receivers run when it connects, and some look the connection
        up by alias (``django.contrib.postgres`` does ``connections[connection.alias]``): they find this
        very wrapper and use its connection rather than open another. The alias is not added to
        ``connections.settings``, so ``connections.all()`` (and the site's code that walks it) never
        sees it. The caller closes it.
        """
        handler = ConnectionHandler({"default": {}, HARNESS_ALIAS: self.harness_settings()})
        conn = handler.create_connection(HARNESS_ALIAS)
        connections[HARNESS_ALIAS] = conn
        return conn

    def inspect(self) -> None:
        """Connect once: fail early with the fix if the database cannot be reached; read version and limits."""
        conn = self.harness_connection()
        try:
            connect(conn, f"the database of alias '{self.alias}' ({self.url})")
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
        finally:
            conn.close()

    def check_alive(self) -> None:
        """Raise TargetError if the database no longer answers (it went away during the sweep)."""
        conn = self.harness_connection()
        try:
            conn.ensure_connection()
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
        except Exception as exc:
            raise TargetError(
                f"the database of alias '{self.alias}' ({self.url}) does not answer any more: "
                f"{' '.join(str(exc).split())}"
            ) from exc
        finally:
            conn.close()

    def close(self) -> None:
        from poolbench.sweep.children import shielded

        # Runs while the command is being interrupted: a second Ctrl-C must not cut it short.
        with shielded(reraise=False):
            self._close()

    def _close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            try:
                server.cleanup()
            except Exception as exc:  # the leftover sweep below still stops it
                logger.warning("stopping the embedded PostgreSQL: %s", exc)
            # pgserver also registered this at exit; it is done now, and its files are going.
            atexit.unregister(server._cleanup)
        # Also when the start itself was interrupted: pg_ctl may have started a postmaster that
        # no server object knows about yet.
        _kill_leftover_postgres(self._tmpdir)
        if self._tmpdir:
            # A process killed a moment ago (initdb, say) may still be writing: try again briefly.
            for _ in range(30):
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                if not os.path.exists(self._tmpdir):
                    break
                time.sleep(0.1)
            from poolbench.sweep import watchdog

            watchdog.remove_dir(self._tmpdir)
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
        return Target(
            alias=alias, database={}, vendor="postgresql", embedded=True, migrate_alias=EMBEDDED_ALIAS
        )
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
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset (root, CI): noise for the user.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pgserver
    except ImportError as exc:
        raise TargetError(
            "the embedded PostgreSQL needs pgserver, which is not installed; pip install 'poolbench[embedded]', "
            "or set DATABASE_URL=postgres://... to benchmark your own server"
        ) from exc
    from poolbench.sweep import watchdog

    tmpdir = str(watchdog.private_dir("poolbench-pg-", short=True))
    target._tmpdir = tmpdir
    watchdog.watch_postgres(tmpdir)  # pg_ctl daemonizes the server: the watchdog stops it if we die
    pgdata = Path(tmpdir) / "data"
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        target._server = server
        server.psql(f"ALTER SYSTEM SET max_connections = {int(max_connections)};")
        # max_connections needs a restart: stop the first server, start it again with the setting.
        target._server = None
        server.cleanup()
        atexit.unregister(server._cleanup)
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
    """Stop every process still working in ``datadir`` (a directory of this sweep's own)."""
    if datadir:
        from poolbench.sweep.watchdog import kill_postgres_in

        kill_postgres_in(datadir)


def known_passwords() -> list[str]:
    """Every database password in the settings: none of them may be stored, printed or logged."""
    from django.conf import settings

    found = {str(db.get("PASSWORD")) for db in settings.DATABASES.values() if db.get("PASSWORD")}
    return sorted(found, key=len, reverse=True)


# The password of a URL: everything between "user:" and the last "@" of the run of non-blank
# characters, so that an unencoded "/", "?", ":" or "@" in it is covered too.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^\s]*@")
# password=..., PASSWORD: '...', "PASSWORD": "..." (DSNs, settings reprs, keyword arguments).
_KEYWORD_PASSWORD = re.compile(
    r"""(?i)(?P<key>\b(?:password|passwd|pgpassword)['"]?\s*[:=]\s*)(?P<value>'[^']*'|"[^"]*"|[^\s,;}&)]+)"""
)
# A settings value is only replaced where it stands as a whole token, and only when it is long
# enough not to be an ordinary word or number: a one-character password would otherwise turn
# "Sweep #12" into "Sweep #*2*" and so reveal itself. Shorter ones are left to the patterns above.
MIN_TOKEN_PASSWORD = 4
_BEFORE = r"(?:(?<=^)|(?<=[\s'\"=:(\[<,]))"
_AFTER = r"(?=$|[\s'\"@,;.!?)\]>&])"


def redact(text: str, passwords: list[str] | None = None) -> str:
    """``text`` with database passwords removed, by structure: ``user:pass@`` in URLs, password=...
    keywords, and the settings' own passwords where one stands as a whole token (as given and
    percent-encoded); never a substring replacement of a short string."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    text = _KEYWORD_PASSWORD.sub(r"\g<key>***", text)
    secrets = tuple(known_passwords() if passwords is None else passwords)
    for pattern in _token_patterns(secrets):
        text = pattern.sub("***", text)
    # Any other percent-encoding of a password (%50 for P, say) is found by decoding each token.
    decoded = {s for s in secrets if len(s) >= MIN_TOKEN_PASSWORD}
    if decoded and "%" in text:
        text = _ENCODED_TOKEN.sub(lambda m: _hide_encoded(m.group(), decoded), text)
    return text


def _hide_encoded(token: str, secrets: set[str]) -> str:
    core = token.rstrip(".")  # a full stop after it ends the sentence
    return "***" + token[len(core) :] if unquote(core) in secrets else token


_ENCODED_TOKEN = re.compile(r"""[^\s'"=:(\[<,@;)\]>&/]*%[0-9A-Fa-f]{2}[^\s'"=:(\[<,@;)\]>&/]*""")


def _token_patterns(passwords: tuple[str, ...]) -> list[re.Pattern[str]]:
    forms: set[str] = set()
    for secret in passwords:
        forms.update({secret, quote(secret, safe=""), quote(secret)})
    long_enough = sorted((f for f in forms if len(f) >= MIN_TOKEN_PASSWORD), key=len, reverse=True)
    return [re.compile(_BEFORE + re.escape(form) + _AFTER, re.MULTILINE) for form in long_enough]


def probe_ready(alias: str) -> bool:
    """Whether poolbench's migrations (the probe table and its row) are applied on ``alias``."""
    from django.db.migrations.recorder import MigrationRecorder

    recorder = MigrationRecorder(connections[alias])
    try:
        applied = recorder.applied_migrations()
    finally:
        connections[alias].close()
    return ("poolbench", "0002_probe_row") in applied
