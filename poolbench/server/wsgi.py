"""The WSGI entry point of a trial server: ``gunicorn poolbench.server.wsgi:application``.

It runs in the child process only. Before Django starts it applies the trial's settings (the
alias's DATABASES entry for this trial's pool, 127.0.0.1 in ALLOWED_HOSTS, and the overrides of
``site.trial_overrides()`` such as plain static storage when the manifest is missing), loads the site's
own WSGI application (WSGI_APPLICATION, with its middleware) and puts poolbench's own endpoints
in front of it, under ``wire.PREFIX`` (/__poolbench__/). Nothing is mounted into the site's URLconf.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
from typing import Any

from poolbench.server.timing import Timing, instrument
from poolbench.server.timing import bucket as bucket  # still importable from here
from poolbench.wire import CONFIG_ENV, ERROR_HEADER, MEASURE_MARK, PREFIX, TOKEN_HEADER, WRITE_INTERVAL

# A test hook, never set by poolbench itself: with POOLBENCH_HOLD_IMPORT=<path> in the command's
# environment (the trial servers get it in sweep/server.py base_env, the fork server by its allow-list), each
# worker of a trial server writes "<path>.held" and then waits at import, before the site loads, until
# <path> exists (at most HOLD_LIMIT seconds). A test can then act while a server is certainly starting
# (tests/sweep/test_interrupt.py), instead of sleeping and hoping to hit that moment.
HOLD_IMPORT_ENV = "POOLBENCH_HOLD_IMPORT"
HOLD_LIMIT = 60.0


def _load_config() -> dict[str, Any]:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(
            f"{CONFIG_ENV} is not set: poolbench.server.wsgi is started by `manage.py poolbench` only"
        )
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _apply_settings(config: dict[str, Any]) -> None:
    from django.conf import settings

    settings.DATABASES[config["alias"]] = config["database"]
    hosts = list(settings.ALLOWED_HOSTS)
    if "*" not in hosts:
        for host in ("127.0.0.1", "localhost", "[::1]"):
            if host not in hosts:
                hosts.append(host)
        settings.ALLOWED_HOSTS = hosts
    from poolbench.server.overrides import apply_overrides

    apply_overrides(config.get("overrides", []))


class Collector:
    """Per-worker statistics, written to the trial's state directory for the stats endpoint."""

    def __init__(self, config: dict[str, Any]):
        self.alias = config["alias"]
        self.mode = config["mode"]
        self.state_dir = config["state_dir"]
        self.pid = os.getpid()
        self.timing = Timing()
        self.mark = os.path.join(self.state_dir, MEASURE_MARK)
        self.window = "whole run"
        self.pool_at_mark: dict[str, Any] | None = None
        self._stop = threading.Event()
        self.queuepool = QueuePoolWatch(self.alias) if self.mode == "queuepool" else None

    def pool_stats(self) -> dict[str, Any]:
        from django.db import connections

        try:
            wrapper = connections[self.alias]
        except Exception:
            return {}
        if self.mode == "pool":
            pool = type(wrapper)._connection_pools.get(self.alias)
            return dict(pool.get_stats()) if pool is not None else {}
        if self.queuepool is not None:
            return self.queuepool.stats()
        return {}

    def failed(self, exc: BaseException) -> None:
        if self.queuepool is not None and is_pool_timeout(exc):
            self.queuepool.timed_out()

    def snapshot(self) -> dict[str, Any]:
        timing = {**self.timing.snapshot(), "window": self.window}
        return {
            "pid": self.pid, "time": time.time(), "pool": self.pool_stats(), "timing": timing,
            "pool_at_mark": self.pool_at_mark,
        }  # fmt: skip

    def dump(self) -> dict[str, Any]:
        snap = self.snapshot()
        path = os.path.join(self.state_dir, f"stats-{self.pid}.json")
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(snap, fh)
        os.replace(tmp, path)
        return snap

    def mark_window(self) -> None:
        """The measured window starts: the timing restarts and the pool's counters are read at the same
        moment, so that the window's pool figures are the counters' growth from here."""
        with self.timing.lock:
            self.pool_at_mark = self.pool_stats()
            self.timing._reset()
            self.window = "measured"

    def start(self) -> None:
        def loop() -> None:
            ticks = 0
            while not self._stop.wait(0.1):
                ticks += 1
                try:
                    if self.window != "measured" and os.path.exists(self.mark):
                        self.mark_window()
                    if ticks % round(WRITE_INTERVAL / 0.1) == 0:
                        self.dump()
                except Exception:  # statistics must never take the worker down
                    pass

        threading.Thread(target=loop, name="poolbench-stats", daemon=True).start()

    def aggregate(self) -> dict[str, Any]:
        self.dump()
        workers: dict[str, Any] = {}
        for name in os.listdir(self.state_dir):
            if name.startswith("stats-") and name.endswith(".json"):
                try:
                    with open(os.path.join(self.state_dir, name), encoding="utf-8") as fh:
                        snap = json.load(fh)
                except (OSError, ValueError):
                    continue
                workers[str(snap["pid"])] = snap
        return {"workers": workers}


class QueuePoolWatch:
    """What django-db-connection-pool's SQLAlchemy QueuePool did in this worker.

    dj_db_conn_pool keeps one ``sqlalchemy.pool.QueuePool`` per alias in
    ``dj_db_conn_pool.core.pool_container`` (a dict, per process), created on the first connection.
    Its status methods only tell the state now (after the load: everything checked in), so
    SQLAlchemy pool events count what happened during the trial: connections opened, checkouts, and
    the most connections checked out / open at once.
    """

    def __init__(self, alias: str):
        self.alias = alias
        self.lock = threading.Lock()
        self.counts = {"connects": 0, "checkouts": 0, "timeouts": 0, "peak_checked_out": 0, "peak_open": 0}
        from sqlalchemy import event
        from sqlalchemy.pool import QueuePool

        # Listening on the class covers the alias's pool, which does not exist yet.
        event.listen(QueuePool, "connect", self._on_connect)
        event.listen(QueuePool, "checkout", self._on_checkout)

    def pool(self) -> Any:
        from dj_db_conn_pool.core import pool_container

        # PoolContainer.get() raises when the pool is not created yet; the plain dict lookup does not.
        return dict.get(pool_container, self.alias)

    def _on_connect(self, dbapi_connection: Any, record: Any) -> None:
        with self.lock:
            self.counts["connects"] += 1

    def _on_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        pool = self.pool()
        with self.lock:
            self.counts["checkouts"] += 1
            if pool is not None:
                out = pool.checkedout()
                self.counts["peak_checked_out"] = max(self.counts["peak_checked_out"], out)
                self.counts["peak_open"] = max(self.counts["peak_open"], out + pool.checkedin())

    def timed_out(self) -> None:
        with self.lock:
            self.counts["timeouts"] += 1

    def stats(self) -> dict[str, Any]:
        pool = self.pool()
        with self.lock:
            out: dict[str, Any] = dict(self.counts)
        if pool is None:
            return out
        checked_in, checked_out = pool.checkedin(), pool.checkedout()
        out.update(
            {
                # Settings (the same in every worker).
                "pool_size": pool.size(),
                "max_overflow": pool._max_overflow,
                "timeout": pool.timeout(),
                # State at the time of the snapshot.
                "checked_in": checked_in,
                "checked_out": checked_out,
                "open": checked_in + checked_out,
                "overflow": max(0, pool.overflow()),  # negative while the pool is below its size
            }
        )
        return out


def error_text(exc: BaseException) -> str:
    """The failure as the load generator records it: 'Type: message', naming the driver's or pool's own
    exception rather than Django's wrapper (psycopg_pool's PoolTimeout reaches the view as Django's
    OperationalError, with the PoolTimeout as its cause)."""
    cause = exc.__cause__
    if cause is not None and type(exc).__module__ == "django.db.utils" and str(cause) == str(exc):
        exc = cause
    return f"{type(exc).__name__}: {exc}"


def is_pool_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a pool giving up waiting for a connection (QueuePool or psycopg_pool)."""
    names = {f"{type(e).__module__}.{type(e).__name__}" for e in (exc, exc.__cause__) if e is not None}
    return bool(names & {"sqlalchemy.exc.TimeoutError", "psycopg_pool.PoolTimeout"})


class PoolbenchApp:
    """WSGI app: poolbench's endpoints under PREFIX, everything else to the site's own application."""

    def __init__(self, site_app: Any, config: dict[str, Any], collector: Collector):
        self.site_app = site_app
        self.config = config
        self.collector = collector
        self.token = config["token"].encode()
        self._local = threading.local()
        from django.core.signals import got_request_exception

        got_request_exception.connect(self._remember_exception, weak=False)

    def _remember_exception(self, sender: Any, request: Any = None, **kwargs: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if exc is not None:
            self._local.error = error_text(exc)
            self.collector.failed(exc)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX) and path != PREFIX + "probe":
            return self._own(path[len(PREFIX) :].strip("/"), environ, start_response)
        timing = self.collector.timing
        self._watch_queries()
        timing.begin()
        try:
            result = self._serve(path, environ, start_response)
        except BaseException:
            timing.end()
            raise
        # The request ends when the server closes the response: that is when Django hands the
        # connection back to the pool (request_finished).
        return _Closing(result, timing.end)

    def _watch_queries(self) -> None:
        # Each thread has its own DatabaseWrapper: put the timer first (outermost) in its
        # execute_wrappers once, where the site's own `with execute_wrapper()` blocks cannot pop it.
        from django.db import connections

        wrapper = connections[self.config["alias"]]
        if not getattr(wrapper, "_poolbench_watched", False):
            wrapper.execute_wrappers.insert(0, self.collector.timing.execute_wrapper)
            wrapper._poolbench_watched = True

    def _serve(self, path: str, environ: dict[str, Any], start_response: Any) -> Any:
        if path.startswith(PREFIX):
            return self._probe(environ, start_response)
        self._local.error = None

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            error = getattr(self._local, "error", None)
            if error:
                headers = [*headers, (ERROR_HEADER, _header_safe(error))]
            return start_response(status, headers, exc_info)

        return self.site_app(environ, start)

    def _own(self, name: str, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if name == "ping":
            return _reply(start_response, 200, {"ok": True, "pid": os.getpid()})
        if name == "probe":
            return self._probe(environ, start_response)
        if name == "stats":
            given = environ.get("HTTP_" + TOKEN_HEADER.upper().replace("-", "_"), "").encode()
            if not given or not hmac.compare_digest(given, self.token):
                return _reply(start_response, 403, {"error": f"missing or wrong {TOKEN_HEADER}"})
            return _reply(start_response, 200, self.collector.aggregate())
        return _reply(start_response, 404, {"error": f"no such poolbench endpoint: {name}"})

    def _probe(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        from django.core import signals
        from django.core.handlers.wsgi import WSGIRequest

        from poolbench.views import probe

        signals.request_started.send(sender=self.__class__, environ=environ)
        response = None
        try:
            response = probe(
                WSGIRequest(environ),
                alias=self.config["alias"],
                delay_ms=self.config.get("query_delay_ms", 0),
                cpu_ms=self.config.get("probe_cpu_ms", 0),
                db_work=self.config.get("probe_db_work", 0),
            )
            body = response.content
            status = f"{response.status_code} {response.reason_phrase}"
            start_response(status, list(response.items()))
            return [body]
        except Exception as exc:  # the failure text is what the load generator records
            self.collector.failed(exc)
            message = error_text(exc)
            return _reply(start_response, 503, {"error": message}, [(ERROR_HEADER, _header_safe(message))])
        finally:
            if response is not None:
                response.close()  # sends request_finished: the connection goes back to the pool
            else:
                signals.request_finished.send(sender=self.__class__)


class _Closing:
    """The response iterable, calling ``on_close`` after the application's own close()."""

    def __init__(self, result: Any, on_close: Any):
        self.result = result
        self.on_close = on_close

    def __iter__(self) -> Any:
        return iter(self.result)

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.on_close()


def _header_safe(text: str) -> str:
    return " ".join(str(text).split())[:500].encode("latin-1", "replace").decode("latin-1")


def _reply(
    start_response: Any, code: int, data: Any, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    reasons = {200: "OK", 403: "Forbidden", 404: "Not Found", 503: "Service Unavailable"}
    body = json.dumps(data).encode()
    start_response(
        f"{code} {reasons.get(code, 'Error')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


def build_application() -> PoolbenchApp:
    config = _load_config()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", config["settings_module"])
    _apply_settings(config)
    import django

    django.setup(set_prefix=False)
    from django.core.servers.basehttp import get_internal_wsgi_application

    site_app = get_internal_wsgi_application()
    collector = Collector(config)
    instrument(config["alias"], collector.timing, config["mode"])
    collector.start()
    return PoolbenchApp(site_app, config, collector)


def hold_import() -> None:
    """The test hook above: wait while ``$POOLBENCH_HOLD_IMPORT`` is set and its file does not exist."""
    path = os.environ.get(HOLD_IMPORT_ENV)
    if not path:
        return
    with open(f"{path}.held", "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + HOLD_LIMIT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)


if os.environ.get(CONFIG_ENV):
    hold_import()
    application = build_application()
else:
    application = None
