"""Latency and error targets (``--slo "p99<250ms,p95<100ms,errors<0.1%"``): parse them, and judge a
trial (or a size's median figures) against each. Pure: no I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Latency metrics and the Trial column each reads.
LATENCY = {
    "p50": "latency_p50_ms",
    "p90": "latency_p90_ms",
    "p95": "latency_p95_ms",
    "p99": "latency_p99_ms",
    "p999": "latency_p999_ms",
    "p99.9": "latency_p999_ms",
    "avg": "latency_avg_ms",
    "mean": "latency_avg_ms",
    "max": "latency_max_ms",
}
ERRORS = ("errors", "failures", "fail")
_TERM = re.compile(
    r"^\s*(?P<metric>[a-z][a-z0-9.]*)\s*(?P<op><=|<)\s*(?P<value>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|%)?\s*$",
    re.I,
)
EXAMPLE = '--slo "p99<250ms,p95<100ms,errors<0.1%"'


class SLOError(ValueError):
    """A bad --slo: the message names the term and the fix."""


@dataclass(frozen=True)
class Target:
    """One term: ``metric`` (p99, avg, errors...) below ``limit`` (ms for latency, percent for errors)."""

    metric: str
    limit: float
    inclusive: bool = False  # "<=" rather than "<"
    text: str = ""

    @property
    def unit(self) -> str:
        return "%" if self.metric == "errors" else "ms"

    @property
    def column(self) -> str:
        return "failure_pct" if self.metric == "errors" else LATENCY[self.metric]

    def met_by(self, value: float | None) -> bool:
        if value is None:
            return False  # no figure (no request answered) meets no target
        return value <= self.limit if self.inclusive else value < self.limit

    def __str__(self) -> str:
        return self.text or f"{self.metric}{'<=' if self.inclusive else '<'}{self.limit:g}{self.unit}"


def parse_slo(text: str, option: str = "--slo") -> list[Target]:
    """``p99<250ms,p95<100ms,errors<0.1%`` -> targets. Latency in ms or s; errors in percent."""
    if text is None or not str(text).strip():
        raise SLOError(f"{option} is empty; give targets such as {EXAMPLE}")
    targets: list[Target] = []
    for raw in str(text).split(","):
        term = raw.strip()
        if not term:
            raise SLOError(f"{option} {text!r} has an empty term; separate targets with single commas")
        targets.append(_term(term, text, option))
    seen = [t.metric for t in targets]
    repeated = sorted({m for m in seen if seen.count(m) > 1})
    if repeated:
        raise SLOError(f"{option} {text!r}: {', '.join(repeated)} is given twice; give each target once")
    return targets


def _term(term: str, text: str, option: str) -> Target:
    match = _TERM.match(term)
    if not match:
        raise SLOError(
            f"{option} {text!r}: term {term!r} is not METRIC<VALUE; use e.g. p99<250ms or errors<0.1% "
            f"({EXAMPLE})"
        )
    metric, unit = match["metric"].lower(), (match["unit"] or "").lower()
    value = float(match["value"])
    if metric in ERRORS:
        if unit != "%":
            raise SLOError(
                f"{option} {text!r}: term {term!r}: give the error rate in percent, e.g. errors<0.1%"
            )
        if value > 100:
            raise SLOError(f"{option} {text!r}: term {term!r}: an error rate is at most 100%")
        metric = "errors"
    elif metric in LATENCY:
        if unit not in ("ms", "s"):
            raise SLOError(f"{option} {text!r}: term {term!r}: give a unit, ms or s, e.g. {metric}<250ms")
        value = value * 1000.0 if unit == "s" else value
        if value <= 0:
            raise SLOError(f"{option} {text!r}: term {term!r}: a latency target must be above 0 ms")
        metric = "p999" if metric == "p99.9" else "avg" if metric == "mean" else metric
    else:
        known = "p50, p90, p95, p99, p99.9, avg, max, errors"
        raise SLOError(
            f"{option} {text!r}: term {term!r}: unknown metric {match['metric']!r}; use one of {known}"
        )
    return Target(metric=metric, limit=value, inclusive=match["op"] == "<=", text=term.replace(" ", ""))


def figure(source: Any, target: Target) -> float | None:
    """The figure ``target`` judges, from a Trial (or a mapping of its columns)."""
    if isinstance(source, Mapping):
        return source.get(target.column)
    return getattr(source, target.column, None)


def judge(source: Any, targets: Sequence[Target]) -> list[dict[str, Any]]:
    """One verdict per target: {"target", "metric", "limit", "value", "passed"}."""
    return [
        {"target": str(t), "metric": t.metric, "limit": t.limit, "value": figure(source, t),
         "passed": t.met_by(figure(source, t))}
        for t in targets
    ]  # fmt: skip


def passed(verdicts: Iterable[Mapping[str, Any]]) -> bool:
    return all(v["passed"] for v in verdicts)


def failed_text(verdicts: Iterable[Mapping[str, Any]]) -> str:
    """The targets missed, in words: 'p99 160 ms (target p99<100ms)'."""
    parts = []
    for v in verdicts:
        if v["passed"]:
            continue
        unit = "%" if v["metric"] == "errors" else " ms"
        shown = "no figure" if v["value"] is None else f"{v['value']:g}{unit}"
        parts.append(f"{v['metric']} {shown} (target {v['target']})")
    return ", ".join(parts)


def as_dicts(targets: Sequence[Target]) -> list[dict[str, Any]]:
    return [asdict(t) for t in targets]


def from_dicts(items: Iterable[Mapping[str, Any]]) -> list[Target]:
    return [Target(**dict(item)) for item in items]


def gate_breaches(trials: Sequence[Any], targets: Sequence[Target]) -> list[str]:
    """--gate: one message per target that a trial of the judged size missed, naming the worst trial."""
    out = []
    for target in targets:
        worst = max(trials, key=lambda t: math.inf if figure(t, target) is None else figure(t, target))
        value = figure(worst, target)
        if not target.met_by(value):
            unit = "%" if target.metric == "errors" else " ms"
            shown = "no figure" if value is None else f"{value:g}{unit}"
            out.append(f"--gate {target}: trial {worst.index} ({worst.label}) had {target.metric} {shown}")
    return out
