"""Is the machine itself the limit? The host-CPU rule and the load generator's own lag, from the
figures a trial stored (``Trial.cpu``, the plugin's ``load_lag``): pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The host's CPU counts as saturated from this share of all its cores, averaged over the window: the
# server, Locust and the database then wait for each other's CPU, and every figure understates what
# the server alone could do. (Not 100%: sampling at 0.5 s and idle gaps between bursts keep a fully
# contended machine's mean a little below it.)
HOST_SATURATED_SHARE = 0.85
# Locust's event loop was late by this share of the mean response time (and at least LAG_BOUND_MIN_MS):
# that much of each reported latency is Locust waiting for its own turn, not the server. A CPU-starved
# Locust shows it even when its CPU demand reads low (it sleeps on the server between its rare turns).
LAG_BOUND_SHARE = 0.25
LAG_BOUND_MIN_MS = 2.0


def host_share(cpu: Mapping[str, Any]) -> float | None:
    """The host's mean CPU use over the window as a share of all its cores (None: not sampled)."""
    host = cpu.get("host") or {}
    mean, count = host.get("mean_cores"), host.get("cpu_count")
    if mean is None or not count:
        return None
    return mean / count


def host_saturation_reasons(cpu: Mapping[str, Any]) -> list[str]:
    """Why the host's CPU was saturated in the window (empty when it was not)."""
    share = host_share(cpu)
    if share is None or share < HOST_SATURATED_SHARE:
        return []
    host = cpu["host"]
    parties = ", ".join(
        f"{name} {(cpu.get(role) or {}).get('mean_cores', 0):.2f}"
        for role, name in (("load", "Locust"), ("server", "server"), ("database", "database"))
        if (cpu.get(role) or {}).get("mean_cores") is not None
    )
    return [
        f"the host's CPU was {share:.0%} busy over the window ({host['mean_cores']:.2f} of "
        f"{host['cpu_count']} cores; {parties}; the rest is other processes), at or above "
        f"{HOST_SATURATED_SHARE:.0%}: the server, Locust and the database competed for the CPU, so the "
        "figures understate the server; stop other work on this machine, or run Locust or the database "
        "on another one"
    ]


def lag_reasons(output: Mapping[str, Any]) -> list[str]:
    """A load-bound reason when Locust's own lag is a large part of the latencies it reported."""
    lag = output.get("load_lag") or {}
    total = output.get("total") or {}
    mean_lag, requests = lag.get("mean_ms"), total.get("num_requests") or 0
    if mean_lag is None or not requests:
        return []
    latency = total.get("total_response_time", 0) / requests
    if mean_lag < LAG_BOUND_MIN_MS or mean_lag < LAG_BOUND_SHARE * latency:
        return []
    return [
        f"Locust's event loop ran {mean_lag:.1f} ms late on average (max {lag.get('max_ms', 0):.0f} ms), "
        f"{mean_lag / latency:.0%} of the mean response time ({latency:.1f} ms): that part of each latency is "
        "Locust waiting for its turn (short of CPU), not the server; give Locust a core of its own, "
        "fewer users per process or another machine"
    ]


def lag_cell(lag: Mapping[str, Any] | None) -> str:
    """'mean/max' ms of the load generator's event-loop lag, '-' when not measured."""
    if not lag or lag.get("mean_ms") is None:
        return "-"
    return f"{_short(lag['mean_ms'])}/{_short(lag['max_ms'])}"


def _short(ms: float) -> str:
    return f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"
