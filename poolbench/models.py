"""What poolbench measures: sweeps, their trials, and the one-row probe table."""

from __future__ import annotations

from typing import Any

from django.db import models


class Probe(models.Model):
    """The one-row table the probe view reads: Django's ``SELECT * FROM test``."""

    testcol = models.CharField(max_length=45)

    class Meta:
        db_table = "poolbench_probe"

    def __str__(self) -> str:
        return self.testcol


class Sweep(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"  # every trial failed
        INTERRUPTED = "interrupted", "interrupted"
        ERROR = "error", "error"  # the sweep itself stopped on an error
        ABANDONED = "abandoned", "abandoned"  # its command died (SIGKILL, a crash) while it ran

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    command = models.TextField(help_text="The command line, with any password removed.")
    alias = models.CharField(max_length=100)
    vendor = models.CharField(max_length=32, db_index=True)
    target = models.CharField(max_length=300, help_text="The database benchmarked, without password.")
    embedded = models.BooleanField(default=False)
    db_version = models.CharField(max_length=100, blank=True)
    db_max_connections = models.PositiveIntegerField(null=True, blank=True)
    sizes = models.JSONField(default=list)
    server = models.JSONField(default=dict, help_text="WSGI server settings.")
    load = models.JSONField(default=dict, help_text="Load generator settings.")
    options = models.JSONField(default=dict, help_text="Every other setting of the sweep.")
    host = models.JSONField(default=dict, help_text="The machine that ran the sweep.")
    best_size = models.PositiveIntegerField(null=True, blank=True)
    best_rps = models.FloatField(null=True, blank=True)
    recommended_size = models.PositiveIntegerField(null=True, blank=True)
    recommendation = models.TextField(blank=True)
    message = models.TextField(blank=True, help_text="Why the sweep stopped, when it did not finish.")
    # What limited the site (results/bottleneck.py): the printed line and its resource.
    bottleneck = models.TextField(
        blank=True, help_text="Bottleneck: <resource> - <evidence> - <what to change>"
    )
    bottleneck_resource = models.CharField(max_length=32, blank=True)
    seed = models.BigIntegerField(
        null=True, blank=True, help_text="Seed of the trial order (--seed replays it); empty for one pass."
    )

    # The formula's starting point (HikariCP: cores x 2 + effective spindles), with its inputs.
    formula_cores = models.PositiveIntegerField(null=True, blank=True, help_text="Database host cores.")
    formula_cores_source = models.CharField(
        max_length=200, blank=True, help_text="Where the cores came from."
    )
    formula_spindles = models.PositiveIntegerField(null=True, blank=True)
    formula_workers = models.PositiveIntegerField(null=True, blank=True, help_text="Fewest server workers.")
    formula_connections = models.PositiveIntegerField(null=True, blank=True, help_text="In total.")
    formula_per_worker = models.PositiveIntegerField(null=True, blank=True, help_text="As a pool size.")

    # The CI gates (--fail-under-rps, --max-failure-rate, --max-p99-ms): what was asked, the verdict.
    gate_fail_under_rps = models.FloatField(null=True, blank=True)
    gate_max_failure_rate = models.FloatField(null=True, blank=True, help_text="Percent of requests.")
    gate_max_p99_ms = models.FloatField(null=True, blank=True)
    gate_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="The pool size the gates judged."
    )
    gate_breaches = models.JSONField(default=list, blank=True, help_text="One message per breached gate.")
    gate_passed = models.BooleanField(null=True, blank=True, help_text="Empty when no gate was set.")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Sweep #{self.pk} {self.vendor} {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def formula(self) -> dict[str, Any] | None:
        """The formula's inputs and result as analysis.formula gives them; None before the summary."""
        if self.formula_connections is None:
            return None
        return {
            "cores": self.formula_cores,
            "cores_source": self.formula_cores_source,
            "spindles": self.formula_spindles or 0,
            "connections": self.formula_connections,
            "workers": self.formula_workers or 1,
            "per_worker": self.formula_per_worker,
        }

    def by_mode(self) -> dict[str, dict[str, Any]]:
        """Per mode, in the order the sweep ran them: the best size and req/s (the best median of a size
        without failures; the best trial for a mode without a pool), the recommended size and the failures."""
        out: dict[str, dict[str, Any]] = {}
        for s in self.size_summaries.all():
            entry = out.setdefault(s.mode, {"failures": 0})
            entry["failures"] += s.failures
            if s.size is None:
                entry["best_rps"] = max(entry.get("best_rps", s.rps_max), s.rps_max)
                continue
            entry.setdefault("recommended_size", None)
            if s.recommended:
                entry["recommended_size"] = s.size
            if not s.failures and s.rps > entry.get("best_rps", -1.0):  # the best failure-free size
                entry.update(best_size=s.size, best_rps=s.rps)
        return out


class Trial(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "running"
        OK = "ok", "ok"
        ERROR = "error", "error"  # the trial could not run (server did not start, ...)
        INTERRUPTED = "interrupted", "interrupted"
        ABANDONED = "abandoned", "abandoned"  # its sweep's command died while it ran

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="trials")
    index = models.PositiveIntegerField(help_text="Order in the sweep, from 1.")
    repeat = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    # Configuration.
    mode = models.CharField(max_length=16, default="pool")
    pool_size = models.PositiveIntegerField(null=True, blank=True)
    pool_min = models.PositiveIntegerField(null=True, blank=True)
    max_overflow = models.PositiveIntegerField(null=True, blank=True)
    pool_timeout = models.FloatField(null=True, blank=True)
    conn_max_age = models.IntegerField(null=True, blank=True)
    workers = models.PositiveIntegerField()
    threads = models.PositiveIntegerField()
    max_db_connections = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Connections this configuration may open: workers x (pool + overflow).",
    )
    users = models.PositiveIntegerField()

    # Measured window.
    duration_s = models.FloatField(null=True, blank=True)
    requests = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    failure_pct = models.FloatField(default=0)
    rps = models.FloatField(default=0, help_text="Successful requests per second in the measured window.")
    latency_avg_ms = models.FloatField(null=True, blank=True)
    latency_min_ms = models.FloatField(null=True, blank=True)
    latency_max_ms = models.FloatField(null=True, blank=True)
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_p90_ms = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    latency_p99_ms = models.FloatField(null=True, blank=True)
    latency_p999_ms = models.FloatField(null=True, blank=True)
    response_times = models.JSONField(default=dict, help_text="Locust's histogram {ms: count}.")
    endpoints = models.JSONField(default=list, help_text="Per path: requests, failures, status codes.")
    errors = models.JSONField(default=list, help_text="[{message, count, name}] grouped by message.")
    pool_stats = models.JSONField(default=dict, help_text="The pool's own statistics, summed over workers.")
    db_stats = models.JSONField(default=dict, help_text="What the database saw: connections.")
    cpu = models.JSONField(default=dict, help_text="CPU of load generator, server and database.")
    timing = models.JSONField(default=dict, help_text="Where the time went inside the server.")
    overhead = models.JSONField(default=dict, help_text="Seconds outside the measured window.")
    load_bound = models.BooleanField(default=False, help_text="The load generator was saturated.")
    # Saturation of the machine itself (the reasons stay in cpu["host_saturated"], the lag's detail in
    # cpu["load_lag"]): see poolbench/results/saturation.py.
    host_cores = models.FloatField(null=True, blank=True, help_text="Mean cores busy on the whole host.")
    host_cpu_saturated = models.BooleanField(
        default=False, help_text="The host's CPU was at least 85% busy over the window."
    )
    load_lag_ms = models.FloatField(
        null=True, blank=True, help_text="Locust's event-loop lag, mean ms (a 10 ms sleep's overshoot)."
    )
    load_lag_p99_ms = models.FloatField(null=True, blank=True, help_text="Locust's event-loop lag, p99 ms.")
    load_lag_max_ms = models.FloatField(null=True, blank=True, help_text="Locust's event-loop lag, max ms.")
    timeline = models.JSONField(
        default=dict, blank=True, help_text="Per second of the trial: requests, latency, DB connections."
    )

    # What the database saw (the detail stays in db_stats): the trial server's connections.
    peak_connections = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most at once, whole trial."
    )
    mean_connections = models.FloatField(null=True, blank=True, help_text="Mean over the measured window.")
    # Where the time went inside the server, ms per request (the histograms stay in timing).
    acquire_mean_ms = models.FloatField(null=True, blank=True, help_text="Waiting for a connection.")
    acquire_p95_ms = models.FloatField(null=True, blank=True)
    db_mean_ms = models.FloatField(null=True, blank=True, help_text="In the database.")
    db_p95_ms = models.FloatField(null=True, blank=True)
    app_mean_ms = models.FloatField(null=True, blank=True, help_text="The rest of the request.")
    app_p95_ms = models.FloatField(null=True, blank=True)
    total_mean_ms = models.FloatField(null=True, blank=True, help_text="The whole request, in the server.")
    total_p95_ms = models.FloatField(null=True, blank=True)
    # The truthful split of a request's time (server/timing.py), ms per request, mean / p95.
    queue_mean_ms = models.FloatField(null=True, blank=True, help_text="Queued in the server before Django.")
    queue_p95_ms = models.FloatField(null=True, blank=True)
    pool_wait_mean_ms = models.FloatField(null=True, blank=True, help_text="Waiting inside the pool.")
    pool_wait_p95_ms = models.FloatField(null=True, blank=True)
    connect_mean_ms = models.FloatField(null=True, blank=True, help_text="Opening connections.")
    connect_p95_ms = models.FloatField(null=True, blank=True)
    sql_mean_ms = models.FloatField(null=True, blank=True, help_text="In the database (statements).")
    sql_p95_ms = models.FloatField(null=True, blank=True)
    python_mean_ms = models.FloatField(null=True, blank=True, help_text="Running Python (thread CPU).")
    python_p95_ms = models.FloatField(null=True, blank=True)
    gil_mean_ms = models.FloatField(null=True, blank=True, help_text="Waiting for a CPU or the GIL.")
    gil_p95_ms = models.FloatField(null=True, blank=True)
    split_coverage = models.FloatField(
        null=True, blank=True, help_text="Share of Locust's mean latency the split covers (1.0 = all)."
    )
    # CPU cores used on average in the measured window (the peaks and busiest process stay in cpu).
    load_cores = models.FloatField(null=True, blank=True, help_text="Locust, every process.")
    server_cores = models.FloatField(null=True, blank=True, help_text="The trial server, every worker.")
    database_cores = models.FloatField(null=True, blank=True, help_text="The database server, when visible.")
    # Seconds outside the measured window (the rest stays in overhead).
    server_start_s = models.FloatField(null=True, blank=True, help_text="Until the server answered.")
    warmup_s = models.FloatField(null=True, blank=True, help_text="Locust's warm-up before the window.")

    # Open-model load (--rate, loadgen/arrivals.py); empty in a closed loop (--users).
    target_rate = models.FloatField(null=True, blank=True, help_text="Arrivals per second asked for.")
    achieved_rate = models.FloatField(
        null=True, blank=True, help_text="Requests sent per second in the measured window."
    )
    arrivals = models.CharField(max_length=16, blank=True, help_text="poisson or constant.")
    late_requests = models.PositiveIntegerField(
        null=True, blank=True, help_text="Sent more than 10 ms after their intended time (no user free)."
    )
    dropped_requests = models.PositiveIntegerField(
        null=True, blank=True, help_text="Due in the window but never sent before it ended."
    )
    arrival_stats = models.JSONField(
        default=dict, blank=True, help_text="The arrival scheduler's counts: scheduled, sent, late, lag."
    )
    rate_offered = models.BooleanField(
        null=True, blank=True, help_text="False: the target rate was not offered; not the server's result."
    )
    # Latency and error targets (--slo): one verdict per target, and all of them.
    slo_results = models.JSONField(default=list, blank=True, help_text="[{target, value, passed}].")
    slo_passed = models.BooleanField(null=True, blank=True, help_text="Empty when no --slo was given.")

    notes = models.JSONField(default=list)
    error_text = models.TextField(blank=True, help_text="Why the trial failed, with the server log tail.")

    class Meta:
        ordering = ["sweep", "index"]
        constraints = [
            models.UniqueConstraint(fields=["sweep", "index"], name="poolbench_trial_unique_index")
        ]

    def __str__(self) -> str:
        return f"Trial {self.index} of sweep #{self.sweep_id}: {self.label}"

    @property
    def label(self) -> str:
        from poolbench.backends import config_label

        return config_label(self.mode, self.pool_size, self.max_overflow, self.conn_max_age)


class SizeSummary(models.Model):
    """One configuration of a sweep (mode, workers x threads, pool size) over its finished repeats.

    Written by results.summary when the sweep ends. A mode without a pool (persistent, none) has one row
    per workers x threads with no size. ``on_plateau``: no failures, and neither significantly slower
    than the mode's best size nor of a significantly worse p99 (results/decision.py).
    """

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="size_summaries")
    position = models.PositiveIntegerField(help_text="Order in the sweep: modes as run, then size.")
    mode = models.CharField(max_length=16)
    workers = models.PositiveIntegerField()
    threads = models.PositiveIntegerField()
    size = models.PositiveIntegerField(null=True, blank=True, help_text="Pool size; empty without a pool.")
    trials = models.PositiveIntegerField(help_text="Finished trials (repeats).")
    rps = models.FloatField(help_text="Median successful requests per second.")
    rps_min = models.FloatField()
    rps_max = models.FloatField()
    rps_cv = models.FloatField(
        null=True, blank=True, help_text="Coefficient of variation; empty for one trial."
    )
    # results/decision.py: the percentile-bootstrap interval (95%) of the median over the repeats, and
    # the throughput against the mode's best size, paired by pass (t interval of the log ratios).
    rps_ci_low = models.FloatField(null=True, blank=True, help_text="95% interval of the median, low.")
    rps_ci_high = models.FloatField(null=True, blank=True, help_text="95% interval of the median, high.")
    vs_best = models.FloatField(null=True, blank=True, help_text="Throughput / the best size's.")
    vs_best_low = models.FloatField(null=True, blank=True, help_text="95% interval of vs_best, low.")
    vs_best_high = models.FloatField(null=True, blank=True, help_text="95% interval of vs_best, high.")
    p99_ms = models.FloatField(null=True, blank=True, help_text="Median of the trials' p99s.")
    failures = models.PositiveIntegerField(default=0)
    failure_pct = models.FloatField(default=0)
    load_bound = models.PositiveIntegerField(default=0, help_text="Trials the load generator limited.")
    on_plateau = models.BooleanField(default=False)
    recommended = models.BooleanField(default=False, help_text="The mode's recommended size.")

    class Meta:
        ordering = ["sweep", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["sweep", "position"], name="poolbench_sizesummary_unique_position"
            )
        ]
        verbose_name = "size summary"
        verbose_name_plural = "size summaries"

    def __str__(self) -> str:
        size = f" {self.size}" if self.size is not None else ""
        return f"{self.mode}{size} {self.workers}x{self.threads} of sweep #{self.sweep_id}"

    @property
    def rps_cv_pct(self) -> float | None:
        return None if self.rps_cv is None else 100 * self.rps_cv


class SizeCapacity(models.Model):
    """``--find-capacity``: the highest arrival rate one configuration held within every --slo target,
    found by a bounded search (sweep/capacity.py); ``steps`` holds each rate tried and its verdict."""

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="capacities")
    mode = models.CharField(max_length=16)
    workers = models.PositiveIntegerField()
    threads = models.PositiveIntegerField()
    size = models.PositiveIntegerField(null=True, blank=True)
    capacity_rps = models.FloatField(
        null=True, blank=True, help_text="Highest rate that met every target; empty: none did."
    )
    bound_rps = models.FloatField(
        null=True, blank=True, help_text="Little's law bound (connections / --query-delay-ms), if known."
    )
    trials = models.PositiveIntegerField(default=0)
    steps = models.JSONField(default=list, help_text="[{rate, trial, passed, why}] in the order run.")
    best = models.BooleanField(default=False, help_text="Reached the largest capacity.")
    recommended = models.BooleanField(default=False, help_text="Smallest size within tolerance of the best.")

    class Meta:
        ordering = ["sweep", "mode", "workers", "threads", "size"]
        verbose_name = "capacity at SLO"
        verbose_name_plural = "capacities at SLO"

    def __str__(self) -> str:
        return f"{self.mode} {self.size} {self.workers}x{self.threads} of sweep #{self.sweep_id}"
