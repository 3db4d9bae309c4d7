"""Sweep and Trial rows written directly, for the admin and report tests that don't need a fresh sweep.

They are poolbench's own models with awkward numbers on purpose (long floats, repeats of one size, a failed
trial, a trial with failures), so that exports must keep every digit and charts must show the spread.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from poolbench.models import Sweep, Trial
from poolbench.results.summary import write_summaries


def make_sweep(
    trials: list[dict[str, Any]],
    *,
    vendor: str = "postgresql",
    alias: str = "default",
    minutes_ago: int = 60,
    **fields: Any,
) -> Sweep:
    """A finished sweep whose trials are given as dicts of Trial fields (pool_size and rps at least)."""
    started = timezone.now() - timedelta(minutes=minutes_ago)
    sizes = sorted({t["pool_size"] for t in trials if t.get("pool_size")})
    sweep = Sweep.objects.create(
        started_at=started,
        finished_at=started + timedelta(minutes=2),
        status=fields.pop("status", Sweep.Status.DONE),
        command="manage.py poolbench --sizes " + ",".join(map(str, sizes)),
        alias=alias,
        vendor=vendor,
        target=fields.pop("target", f"{vendor}://root@127.0.0.1:5432/test"),
        db_version="PostgreSQL 15.14",
        db_max_connections=100,
        sizes=sizes,
        server={"workers": [2], "threads": [32], "worker_class": "gthread", "bind": "127.0.0.1"},
        load={"users": 64, "duration": 10.0, "warmup": 3.0},
        **fields,
    )
    for i, spec in enumerate(trials, start=1):
        spec = dict(spec)
        rps = spec.pop("rps")
        failures = spec.pop("failures", 0)
        requests = spec.pop("requests", int(rps * 10) + failures)
        Trial.objects.create(
            sweep=sweep,
            index=i,
            started_at=started + timedelta(seconds=15 * i),
            finished_at=started + timedelta(seconds=15 * i + 14),
            status=spec.pop("status", Trial.Status.OK),
            workers=spec.pop("workers", 2),
            threads=spec.pop("threads", 32),
            users=64,
            duration_s=10.0,
            requests=requests,
            failures=failures,
            failure_pct=spec.pop("failure_pct", 100.0 * failures / requests if requests else 0.0),
            rps=rps,
            latency_p50_ms=spec.pop("p50", 20.25),
            latency_p95_ms=spec.pop("p95", 61.0 + i / 3),
            latency_p99_ms=spec.pop("p99", 90.0 + i / 7),
            latency_max_ms=spec.pop("max", 240.5),
            db_stats={"peak_connections": min(spec.get("pool_size") or 0, 100) * 2},
            peak_connections=min(spec.get("pool_size") or 0, 100) * 2,
            errors=spec.pop("errors", []),
            **spec,
        )
    # The per-size rows a finished sweep has (the sweep's own fields are as given).
    made = list(sweep.trials.order_by("index"))
    write_summaries(sweep, made, list(dict.fromkeys(t.mode for t in made)), tolerance=0.05)
    return sweep


def typical_sweep(**kwargs: Any) -> Sweep:
    """Four sizes, size 10 run three times (spread), one trial with failures and one that did not run."""
    return make_sweep(
        [
            {"pool_size": 5, "rps": 512.3456789012345},
            {"pool_size": 10, "rps": 998.1000000000001},
            {"pool_size": 10, "rps": 1042.7071067811865},
            {"pool_size": 10, "rps": 1011.3333333333334},
            {"pool_size": 16, "rps": 1103.25, "p95": 44.4, "p99": 71.123456789},
            {
                "pool_size": 200,
                "rps": 701.9,
                "failures": 37,
                "p99": 3100.0,
                "errors": [
                    {
                        "message": "HTTP 503: PoolTimeout: couldn't get a connection after 10.00 sec",
                        "count": 37,
                    }
                ],
            },
            {
                "pool_size": 50,
                "rps": 0,
                "status": Trial.Status.ERROR,
                "p50": None,
                "p95": None,
                "p99": None,
                "max": None,
            },
        ],  # fmt: skip
        best_size=16,
        best_rps=1103.25,
        recommended_size=16,
        recommendation="Size 16 gave the most throughput (1103 req/s) with no failures.",
        **kwargs,
    )
