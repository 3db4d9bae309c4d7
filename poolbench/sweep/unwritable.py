"""When the results cannot be written any more during a sweep (issue 16, item 2): the database went
away, its role lost LOGIN, or INSERT/UPDATE were revoked. A save that fails raises
:class:`ResultsUnwritable` *after* the clean-up it belongs to; the rows measured so far stay in memory
(``SweepRun.rows``) so that the command can still print them and write ``--json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from poolbench.sweep.base import SweepError, save_anyway
from poolbench.sweep.targets import describe, redact


class ResultsUnwritable(SweepError):
    """A save of the results failed mid-sweep; the message names the database, the reason and the fix."""


def unwritable_message(exc: BaseException) -> str:
    db = connections[DEFAULT_DB_ALIAS]
    reason = redact(" ".join(str(exc).split())) or type(exc).__name__
    return (
        f"cannot write results to the database '{DEFAULT_DB_ALIAS}' ({describe(db.settings_dict)}) any more: "
        f"{reason}. The sweep stopped; the figures measured so far are printed below but were not all stored. "
        "Give its user LOGIN and INSERT/UPDATE rights on poolbench's tables (or make the database "
        "reachable again) and run the sweep again"
    )


def save_results(obj: Any) -> None:
    """Save a Sweep or Trial row, or raise :class:`ResultsUnwritable` with the reason."""
    try:
        save_anyway(obj)
    except DatabaseError as exc:
        try:
            connections[DEFAULT_DB_ALIAS].close()
        except DatabaseError:
            pass
        raise ResultsUnwritable(unwritable_message(exc)) from exc


def trials_in_memory(sweep: Any, rows: Sequence[Any]) -> Any:
    """``sweep`` whose ``trials.all()`` (and ``size_summaries.all()``) answer from ``rows`` without a
    query: Django's own prefetch cache, filled by hand, as ``prefetch_related`` would."""
    cache: dict[str, Any] = {}
    for name, objects in (
        ("trials", sorted(rows, key=lambda t: (t.index, t.repeat))),
        ("size_summaries", []),
    ):
        queryset = getattr(sweep, name).all()
        queryset._result_cache = list(objects)
        queryset._prefetch_done = True
        cache[name] = queryset
    sweep._prefetched_objects_cache = cache
    return sweep


def lost_results(exc: BaseException) -> str:
    """The message of a sweep that stopped; when its own row could not be stored either (the results
    database is the one that went away), it says so."""
    message = str(exc)
    if getattr(exc, "results_lost", False) and not isinstance(exc, ResultsUnwritable):
        message += (
            f". The results database '{DEFAULT_DB_ALIAS}' cannot be written either: the figures printed "
            "above were not all stored"
        )
    return message
