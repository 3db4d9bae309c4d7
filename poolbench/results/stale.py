"""Sweeps whose command died: a SIGKILL or a crash leaves a sweep and its trial ``running`` forever.

Every sweep records its command's host, pid and the pid's start time (``Sweep.host``). At the start
of a sweep, and when the admin lists sweeps, a ``running`` sweep of this host whose process is gone
(or is another process now, the pid reused) is marked ``abandoned``, with its running trials. A sweep
of another machine, or one stored before the pid was recorded, cannot be checked and is left as it is.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from django.utils import timezone

from poolbench.models import Sweep, Trial

ABANDONED = "abandoned: the command that ran this sweep ({pid} on {host}) is gone (killed or crashed)"


def process_identity() -> dict[str, Any]:
    """What ``Sweep.host`` keeps to recognise the command later: its host, pid and the pid's start time."""
    return {"hostname": socket.gethostname(), "pid": os.getpid(), "pid_started": _started(os.getpid())}


def _started(pid: int) -> float | None:
    """The process's start time (seconds since the epoch), None if there is no such process."""
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:  # another user's process (AccessDenied): it exists
        return -1.0


def is_gone(host: dict[str, Any]) -> bool:
    """True if the sweep's command ran on this host and its process no longer exists."""
    pid = host.get("pid")
    if not isinstance(pid, int) or host.get("hostname") != socket.gethostname():
        return False
    started = _started(pid)
    if started is None:
        return True
    recorded = host.get("pid_started")
    # The pid now names a process started at another time: ours died and the pid was reused.
    return started != -1.0 and recorded is not None and abs(started - float(recorded)) > 1.0


def mark_abandoned(using: str | None = None) -> list[int]:
    """Mark this host's ``running`` sweeps whose command is gone, and their running trials, as
    abandoned; return their ids (one query when there are none)."""
    sweeps = Sweep.objects.using(using) if using else Sweep.objects.all()
    gone = [s for s in sweeps.filter(status=Sweep.Status.RUNNING).only("pk", "host") if is_gone(s.host)]
    now = timezone.now()
    for sweep in gone:
        message = ABANDONED.format(pid=f"pid {sweep.host['pid']}", host=sweep.host["hostname"])
        sweep.trials.filter(status=Trial.Status.RUNNING).update(
            status=Trial.Status.ABANDONED, error_text=message, finished_at=now
        )
        type(sweep).objects.db_manager(sweep._state.db).filter(
            pk=sweep.pk, status=Sweep.Status.RUNNING
        ).update(status=Sweep.Status.ABANDONED, message=message, finished_at=now)
    return [s.pk for s in gone]
