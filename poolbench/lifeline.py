"""Die with the parent (Linux, ``PR_SET_PDEATHSIG``): a child of poolbench that is left without its
parent (the command killed with SIGKILL, say) is killed by the kernel instead of running on.

Stdlib only: it runs in the fork server, the trial server's processes and Locust. The signal is sent
when the parent *thread* that started the process ends; every poolbench child is started from its
parent's main thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
# The pid of the process that started this one, set by poolbench.sweep.children.spawn(): read later
# (after a slow import), os.getppid() would already name whoever adopted the orphan.
PARENT_ENV = "POOLBENCH_PARENT_PID"


def die_with_parent(parent: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies; True if it was set up.

    ``parent``: the pid the parent had (default: ``$POOLBENCH_PARENT_PID``): if it is gone already
    (reparented before the call), the process ends now, as the signal would have come too late.
    """
    if not sys.platform.startswith("linux"):
        return False
    if parent is None and os.environ.get(PARENT_ENV, "").isdigit():
        parent = int(os.environ[PARENT_ENV])
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True
