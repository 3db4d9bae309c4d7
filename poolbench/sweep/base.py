"""What every stage of a sweep shares: its settings (``SweepOptions``), its error, how it reports."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections

from poolbench.results import analysis
from poolbench.sweep.load import DEFAULT_LOCUSTFILE, LoadSettings, StartedLoad
from poolbench.sweep.plan import Plan
from poolbench.sweep.targets import Target

if TYPE_CHECKING:
    from poolbench.models import Sweep
    from poolbench.sweep.forkserver import ForkServer

Reporter = Callable[[str, str], None]  # (level, message); level: info | detail | warning | success


# --sizes auto measures at most this many sizes (each --repeat times).
AUTO_MAX_SIZES = 8


class SweepError(RuntimeError):
    """The sweep cannot start or go on; the message names the fix."""


@dataclass
class SweepOptions:
    """The settings of one sweep, as the command built them. What changes while it runs is in
    :class:`poolbench.sweep.run.SweepRun`."""

    plan: Plan
    target: Target
    load: LoadSettings
    command: str = ""
    query_delay_ms: float = 0.0
    probe_cpu_ms: float = 0.0  # --probe-cpu-ms: Python CPU per probe request
    probe_db_ms: float = 0.0  # --probe-db-ms: database CPU per probe request...
    probe_db_work: int = 0  # ...as units of work, calibrated before the first trial (sweep/probes.py)
    bind: str = "127.0.0.1"
    start_timeout: float = 30.0
    migrate: bool = False
    embedded_max_connections: int = 1000
    reserve: int = 5
    allow_over_max: bool = False
    tolerance: float = 0.05
    settings_module: str = ""
    login_user: Any = None  # the user object for --login-user, checked by the command
    overrides: dict[str, str] = field(default_factory=dict)  # site.trial_overrides(): {name: why}
    # The formula's starting point: the database host's cores (None = found out, see formula_cores())
    # and its effective spindles.
    db_cores: int | None = None
    spindles: int = 0
    # --sizes auto: search for the smallest size on the plateau instead of sweeping plan.sizes.
    auto: bool = False
    auto_max_sizes: int = AUTO_MAX_SIZES
    gates: analysis.Gates = field(default_factory=analysis.Gates)
    fork_server: bool = True
    # Open-model load (--rate, --find-capacity) and targets (--slo): sweep/rate.py, sweep/capacity.py.
    rate: float | None = None
    slo: list[Any] = field(default_factory=list)  # results.slo.Target
    headroom: float = 1.2
    find_capacity: bool = False
    seed: int | None = None  # the trial order's (plan.build_plan); None: one pass, in the order given
    server_source: str = ""  # workers x threads and where they came from (sweep/defaults.py)

    @property
    def uses_probe(self) -> bool:
        return not self.load.paths and self.load.locustfile == DEFAULT_LOCUSTFILE


@dataclass
class SweepRun:
    """A sweep while it runs: its settings and row, and what changes as it goes."""

    options: SweepOptions
    report: Reporter
    sweep: Sweep | None = None  # the row, once created
    # What the checks before the sweep found (prepare()), then what the --sizes auto search did:
    # recorded in Sweep.options.
    extra: dict[str, Any] = field(default_factory=dict)
    total: int = 0  # trials planned, for "[i/total]" (under --sizes auto: at most)
    # Every trial server's /__poolbench__/stats endpoint wants it.
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    forkserver: ForkServer | None = None  # the running fork server, if any
    pending_load: StartedLoad | None = None  # Locust started ahead for the next trial
    # For the time left in the progress lines: when the first trial began, and the trials done since.
    first_started: float | None = None
    done: int = 0

    def take_pending_load(self) -> StartedLoad | None:
        """The Locust started ahead for the trial that begins now (it is that trial's from now on)."""
        load, self.pending_load = self.pending_load, None
        return load


def quiet(level: str, message: str) -> None:
    """The reporter that says nothing."""


def save_anyway(obj: Any) -> None:
    """Save ``obj``; if the results connection was broken (e.g. a query cut short), reconnect once."""
    try:
        obj.save()
    except Exception:
        connections[DEFAULT_DB_ALIAS].close()
        obj.save()
