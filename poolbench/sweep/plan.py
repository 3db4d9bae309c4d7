"""Arguments -> a list of trial specs. Pure: no I/O, no Django database access.

Every parser raises :class:`PlanError` with a message that names the problem and the fix;
:mod:`poolbench.sweep.options` makes them the command's argparse types, and the command refuses the
run before any process starts or any row is written.
"""

from __future__ import annotations

import itertools
import os
import random
import re
from dataclasses import dataclass, field

from poolbench.backends import MODES, POOLED_MODES, config_label
from poolbench.conf import DEFAULTS
from poolbench.sweep.load import DEFAULT_MASTER_PORT

MAX_SIZE = 10_000
MAX_WORKERS = 64
MAX_THREADS = 1_000


class PlanError(ValueError):
    """A bad argument: the message says what is wrong and how to fix it."""


_WHOLE = re.compile(r"\+?[0-9]+", re.ASCII)  # ASCII digits only: int() takes any script's


def _whole_number(text: str, maximum: int) -> int | None:
    """``text`` as a non-negative integer, None if it is not one; more than 20 digits count as
    ``maximum + 1`` (int() refuses over 4300 digits with an error of its own)."""
    if not _WHOLE.fullmatch(text):
        return None
    return int(text) if len(text) <= 20 else maximum + 1


def parse_whole_number(text: str, option: str, *, maximum: int, allow_zero: bool = False) -> int:
    """One whole number for ``option``: 1 (or 0 with ``allow_zero``) to ``maximum``."""
    number = _whole_number(str(text).strip(), maximum)
    if number is None:
        raise PlanError(
            f"{option} {text!r} is not a whole number; give a {'non-negative' if allow_zero else 'positive'} integer"
        )
    if number < (0 if allow_zero else 1):
        raise PlanError(f"{option} {text!r} must be {'0 or more' if allow_zero else '1 or more'}")
    if number > maximum:
        raise PlanError(f"{option} {text!r} is larger than {maximum}")
    return number


def parse_int_list(text: str, option: str, *, maximum: int, what: str = "value") -> list[int]:
    """Parse '5,10,16' into [5, 10, 16]: positive integers, not empty, no repeats."""
    if text is None or not str(text).strip():
        raise PlanError(
            f"{option} is empty; give a comma-separated list of positive integers, e.g. {option} 5,10"
        )
    items = [part.strip() for part in str(text).split(",")]
    values: list[int] = []
    for part in items:
        if not part:
            raise PlanError(
                f"{option} {text!r} has an empty item; separate {what}s with single commas, e.g. {option} 5,10"
            )
        value = _whole_number(part, maximum)
        if value is None:
            raise PlanError(
                f"{option} {text!r}: {part!r} is not a whole number; use positive integers, e.g. 5,10"
            )
        if value < 1:
            raise PlanError(
                f"{option} {text!r}: {what} {value} is not positive; every {what} must be 1 or more"
            )
        if value > maximum:
            raise PlanError(
                f"{option} {text!r}: {what} {value} is larger than {maximum}; use {maximum} or less"
            )
        if value in values:
            raise PlanError(
                f"{option} {text!r}: {what} {value} is repeated; list each {what} once (use --repeat)"
            )
        values.append(value)
    return values


def parse_sizes(text: str) -> list[int]:
    return parse_int_list(text, "--sizes", maximum=MAX_SIZE, what="size")


MAX_WEIGHT = 1_000


def parse_path(text: str) -> tuple[str, int]:
    """Parse one ``--path``: '/books/' or '/books/:3' (a weight after the last colon) -> (path, weight)."""
    raw = str(text if text is not None else "")
    if not raw.strip():
        raise PlanError("--path is empty; give a page of your site, e.g. --path /books/")
    path, weight = raw, 1
    head, sep, tail = raw.rpartition(":")
    # A colon followed by a slash belongs to the path (/a:b/); after the last colon only a weight.
    if sep and head.startswith("/") and "/" not in tail and "?" not in tail:
        number = _whole_number(tail.strip(), MAX_WEIGHT)
        if number is None or len(tail.strip().lstrip("+")) > 9:
            raise PlanError(
                f"--path {raw!r}: weight {tail!r} is not a whole number; put a positive integer after the "
                "last colon, e.g. --path /books/:3"
            )
        path, weight = head, number
        if weight < 1:
            raise PlanError(
                f"--path {raw!r}: weight {weight} is not positive; use 1 or more, e.g. --path /books/:3"
            )
        if weight > MAX_WEIGHT:
            raise PlanError(
                f"--path {raw!r}: weight {weight} is larger than {MAX_WEIGHT}; use {MAX_WEIGHT} or less"
            )
    if not path.startswith("/") or path.startswith("//"):
        raise PlanError(
            f"--path {raw!r} must start with a single / (a path on your site, not a URL; poolbench adds the "
            "trial server's host), e.g. --path /books/"
        )
    if any(ch.isspace() for ch in path):
        raise PlanError(f"--path {raw!r} contains white space; percent-encode it (%20), e.g. --path /a%20b/")
    return path, weight


def unique_paths(pages: list[tuple[str, int]] | None) -> list[tuple[str, int]]:
    """Every parsed ``--path``, each path once (a weight gives a page a larger share)."""
    out: list[tuple[str, int]] = []
    for path, weight in pages or []:
        if any(p == path for p, _ in out):
            raise PlanError(
                f"--path {path} is given twice; give each path once, with a weight for a larger share, "
                f"e.g. --path {path}:3"
            )
        out.append((path, weight))
    return out


def parse_number(text: str, option: str, *, allow_zero: bool = False) -> float:
    """A finite number, more than 0 (or 0 or more with ``allow_zero``)."""
    try:
        number = float(str(text))
    except ValueError:
        raise PlanError(f"{option} {text!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise PlanError(f"{option} {text!r} is not a finite number")
    if number < 0 or (number == 0 and not allow_zero):
        raise PlanError(f"{option} {text!r} must be {'0 or more' if allow_zero else 'more than 0'}")
    return number


def parse_tolerance(text: str) -> float:
    """Percent of the best throughput a recommended size may lose: 0 to below 100."""
    tolerance = parse_number(text, "--tolerance", allow_zero=True)
    if tolerance >= 100:
        raise PlanError(f"--tolerance {text!r} must be below 100 (percent of the best throughput)")
    return tolerance


def parse_gate(text: str, option: str, unit: str, *, zero: bool = False) -> float:
    """A CI gate's threshold in ``unit``: a finite positive number (or 0 too with ``zero``)."""
    try:
        number = float(str(text))
    except ValueError:
        raise PlanError(f"{option} {text!r} is not a number; give {unit}") from None
    if number != number or abs(number) == float("inf") or number < 0 or (number == 0 and not zero):
        raise PlanError(
            f"{option} {text!r} must be a {'non-negative' if zero else 'positive'} number; give {unit}"
        )
    return number


def parse_failure_rate(text: str) -> float:
    """--max-failure-rate: a percent of requests, 0 to 100."""
    rate = parse_gate(text, "--max-failure-rate", "percent, e.g. 0.5", zero=True)
    if rate > 100:
        raise PlanError(f"--max-failure-rate {text!r} is a percent of requests; give 0 to 100")
    return rate


def parse_processes(text: str) -> int:
    """Locust --processes: 1 to 256, or -1 for one per core of this machine."""
    if str(text).strip() == "-1":
        return os.cpu_count() or 1
    return parse_whole_number(text, "--locust-processes", maximum=256)


def parse_master_bind(text: str) -> tuple[str, int]:
    """'HOST[:PORT]', '[::1]:5557' or ':5557' -> (host, port); the defaults are Locust's (*, 5557)."""
    value = str(text).strip()
    host, port_text = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            raise PlanError(f"--master-bind {text!r} is not HOST[:PORT]; e.g. --master-bind 0.0.0.0:5557")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    host = host or "*"
    if not port_text:
        return host, DEFAULT_MASTER_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise PlanError(
            f"--master-bind {text!r}: port {port_text!r} is not a port number 1-65535; e.g. --master-bind 0.0.0.0:5557"
        )
    return host, int(port_text)


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$", re.ASCII)
_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}


def parse_duration(
    text: str | float | int, option: str, *, minimum: float = 0.0, allow_zero: bool = False
) -> float:
    """Parse '10', '10s', '1.5m', '500ms' into seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text or ""))
        if not match:
            raise PlanError(f"{option} {text!r} is not a duration; use seconds like 10, 10s, 500ms or 2m")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise PlanError(f"{option} {text!r} is not a finite duration; use seconds like 10 or 10s")
    if seconds == 0 and allow_zero:
        return 0.0
    if seconds <= 0 or seconds < minimum:
        least = f"at least {minimum:g}s" if minimum else "more than 0"
        raise PlanError(f"{option} {text!r} is too short; it must be {least}")
    if seconds > 24 * 3600:
        raise PlanError(f"{option} {text!r} is longer than a day; use a shorter duration")
    return seconds


def parse_modes(text: str, vendor: str) -> list[str]:
    modes = [m.strip().lower() for m in str(text or "").split(",")]
    if not any(modes):
        raise PlanError(f"--mode is empty; choose from {', '.join(MODES)}")
    out: list[str] = []
    for mode in modes:
        if mode not in MODES:
            raise PlanError(f"--mode: unknown mode {mode!r}; choose from {', '.join(MODES)}")
        if vendor not in MODES[mode]:
            hint = (
                "use --mode queuepool (SQLAlchemy QueuePool)"
                if mode == "pool"
                else f"choose from {', '.join(m for m, v in MODES.items() if vendor in v)}"
            )
            raise PlanError(f"--mode {mode} is not available on {vendor}; {hint}")
        if mode in out:
            raise PlanError(f"--mode: {mode!r} is repeated; list each mode once")
        out.append(mode)
    return out


@dataclass(frozen=True)
class TrialSpec:
    """One pool configuration to measure, in one fresh server process."""

    index: int
    mode: str
    size: int | None
    workers: int
    threads: int
    pool_min: int | None = None
    max_overflow: int = 0
    pool_timeout: float = 10.0
    conn_max_age: int | None = None
    repeat: int = 1
    rate: float | None = None  # --rate / --find-capacity: arrivals per second; None = closed loop

    @property
    def pooled(self) -> bool:
        return self.mode in POOLED_MODES

    @property
    def max_db_connections(self) -> int:
        """Connections this configuration may open at most, across all server workers."""
        if self.pooled:
            return self.workers * ((self.size or 0) + (self.max_overflow if self.mode == "queuepool" else 0))
        return self.workers * self.threads

    @property
    def usable_connections(self) -> int:
        """Connections the server can hold at once: no more than one per server thread."""
        return min(self.max_db_connections, self.workers * self.threads)

    @property
    def label(self) -> str:
        return config_label(self.mode, self.size, self.max_overflow, self.conn_max_age)


@dataclass
class Plan:
    specs: list[TrialSpec] = field(default_factory=list)

    @property
    def sizes(self) -> list[int]:
        return sorted({s.size for s in self.specs if s.size is not None})


def build_plan(
    *,
    sizes: list[int],
    modes: list[str],
    workers: list[int],
    threads: list[int],
    repeat: int = 1,
    pool_min: int | None = None,
    max_overflow: int = 0,
    pool_timeout: float = 10.0,
    conn_max_age: int = DEFAULTS["CONN_MAX_AGE"],
    seed: int | None = None,
) -> Plan:
    """The trials of a sweep: every combination, each repeat a full pass so drift hits all alike.
    With ``seed`` (and more than one pass) each pass runs in its own random order, drawn from one
    ``random.Random(seed)``: the same seed gives the same order, and the passes differ from each other."""
    if repeat < 1:
        raise PlanError(f"--repeat {repeat} must be 1 or more")
    if pool_min is not None:
        too_small = [s for s in sizes if s < pool_min]
        if too_small and any(m == "pool" for m in modes):
            raise PlanError(
                f"--pool-min {pool_min} is larger than size(s) {', '.join(map(str, too_small))}; "
                "use a --pool-min no larger than the smallest size"
            )
    specs: list[TrialSpec] = []
    shuffle = random.Random(seed).shuffle if seed is not None and repeat > 1 else None
    for rep in range(1, repeat + 1):
        one_pass = [
            (mode, w, t, size)
            for mode, w, t in itertools.product(modes, workers, threads)
            for size in (list(sizes) if mode in POOLED_MODES else [None])
        ]
        if shuffle is not None:
            shuffle(one_pass)
        for mode, w, t, size in one_pass:
            specs.append(
                TrialSpec(
                    index=len(specs) + 1,
                    mode=mode,
                    size=size,
                    workers=w,
                    threads=t,
                    pool_min=pool_min if mode == "pool" else None,
                    max_overflow=max_overflow if mode == "queuepool" else 0,
                    pool_timeout=pool_timeout,
                    conn_max_age=conn_max_age if mode == "persistent" else (0 if mode == "none" else None),
                    repeat=rep,
                )
            )
    return Plan(specs)
