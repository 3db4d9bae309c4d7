"""Sampling during a trial: what the database saw (measure/database.py) and the CPU of each party
(measure/cpu.py), in threads of the command (measure/base.py). One import for both."""

from __future__ import annotations

from poolbench.measure.base import Sampler
from poolbench.measure.cpu import LOAD_BOUND_CORES, ProcessCPU, schedstat
from poolbench.measure.database import (
    DB_SAMPLE_SQL,
    MIN_WINDOW_SAMPLES,
    SESSIONS_SQL,
    DatabaseConnections,
    database_processes,
    summarize_connections,
)

__all__ = [
    "DB_SAMPLE_SQL",
    "LOAD_BOUND_CORES",
    "MIN_WINDOW_SAMPLES",
    "SESSIONS_SQL",
    "DatabaseConnections",
    "ProcessCPU",
    "Sampler",
    "database_processes",
    "schedstat",
    "summarize_connections",
]
