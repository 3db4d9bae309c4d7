"""Inside the trial server (poolbench.server.wsgi): the error text of a pool timeout names the pool's exception."""

from __future__ import annotations

import psycopg_pool
import sqlalchemy.exc
from django.db import utils

from poolbench.server.wsgi import error_text, is_pool_timeout


def _wrapped(cause: Exception) -> Exception:
    """What Django's wrap_database_errors makes of a driver exception: its own class, same text, cause."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise utils.OperationalError(*exc.args) from exc
    except utils.OperationalError as wrapped:
        return wrapped


def test_error_text_names_the_pool_exception():
    timeout = psycopg_pool.PoolTimeout("couldn't get a connection after 0.30 sec")
    wrapped = _wrapped(timeout)
    assert error_text(wrapped) == "PoolTimeout: couldn't get a connection after 0.30 sec"
    assert is_pool_timeout(wrapped) and is_pool_timeout(timeout)
    queue = sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached")
    assert error_text(queue) == "TimeoutError: QueuePool limit of size 5 overflow 10 reached"
    assert is_pool_timeout(queue)
    assert not is_pool_timeout(ValueError("x")) and error_text(ValueError("x")) == "ValueError: x"
