"""What poolbench measures: sweeps, their trials, and the one-row probe table."""

from __future__ import annotations

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

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Sweep #{self.pk} {self.vendor} {self.started_at:%Y-%m-%d %H:%M}"


class Trial(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "running"
        OK = "ok", "ok"
        ERROR = "error", "error"  # the trial could not run (server did not start, ...)
        INTERRUPTED = "interrupted", "interrupted"

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
    rps = models.FloatField(default=0, help_text="Requests per second in the measured window.")
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
