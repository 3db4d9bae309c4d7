"""Open-model trials (``--rate``, ``--find-capacity``): what a trial's arrivals were, whether it was
offered its rate, its verdict against each ``--slo`` target, and the rate-mode recommendation: the
smallest size that meets every target at the rate times ``--headroom``. Pure over trials, except
:func:`record_rate`, which fills a trial's columns."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from poolbench.results import slo

# A trial was offered its rate when it sent at least this share of what its own schedule made due, and
# its achieved rate is within Poisson noise (3 standard deviations, at least 5%) of the target.
SENT_SHARE = 0.99
# The arrival scheduler's mean wake-up delay: above LAG_NOTE_MS the trial says its latencies include that
# much of the load generator's own delay; above LAG_MS the generator, not the server, set the pace.
LAG_NOTE_MS = 5.0
LAG_MS = 50.0


def little_bound(connections: int, query_delay_ms: float) -> float | None:
    """Little's law: ``connections`` each held ``query_delay_ms`` per request serve at most this many
    requests per second (None without a delay)."""
    if not query_delay_ms or connections <= 0:
        return None
    return connections * 1000.0 / query_delay_ms


def bound_warning(spec: Any, rate: float, query_delay_ms: float) -> str:
    """Said before a size runs when its Little's law bound is below the rate asked ('' otherwise)."""
    bound = little_bound(spec.usable_connections, query_delay_ms)
    if bound is None or rate <= bound:
        return ""
    return (
        f"{spec.label}, {spec.workers}x{spec.threads}: {rate:g} req/s is above what it can serve: "
        f"{spec.usable_connections} connection(s) / {query_delay_ms:g} ms per query = {bound:.0f} req/s "
        "at most (Little's law); expect it to miss the rate or the targets"
    )


def rate_tolerance(rate: float, seconds: float) -> float:
    """How far below the target a Poisson count may fall by chance: 3 sigma, at least 5%."""
    expected = rate * seconds
    return max(0.05, 3.0 / math.sqrt(expected)) if expected > 0 else 1.0


def offered_problem(arrivals: Mapping[str, Any], seconds: float) -> str:
    """Why the trial was not offered its rate ('' when it was)."""
    target = float(arrivals.get("target_rate") or 0)
    scheduled, sent = int(arrivals.get("scheduled") or 0), int(arrivals.get("sent") or 0)
    dropped, late = int(arrivals.get("dropped") or 0), int(arrivals.get("late") or 0)
    problems = []
    if dropped > max(2, (1 - SENT_SHARE) * scheduled):  # one or two may be on their way to a user
        problems.append(f"{dropped} arrival(s) due in the window were never sent")
    if late > (1 - SENT_SHARE) * max(1, sent):
        problems.append(f"{late} of {sent} requests were sent more than 10 ms late (no Locust user free)")
    achieved = float(arrivals.get("achieved_rate") or 0)
    if target and achieved < target * (1 - rate_tolerance(target, seconds)):
        problems.append(f"{achieved:.0f} req/s sent of {target:g} asked")
    lag = float(arrivals.get("lag_ms_mean") or 0)
    if lag > LAG_MS:
        problems.append(
            f"the arrival scheduler woke {lag:.0f} ms late on average (the load generator lagged)"
        )
    return "; ".join(problems)


def offered_cause(trial: Any, arrivals: Mapping[str, Any]) -> str:
    """Whose fault a rate not offered was: the load generator's or the server's."""
    if trial.load_bound or float(arrivals.get("lag_ms_mean") or 0) > LAG_MS:
        return "the load generator could not keep up: these figures are not the server's result"
    if not arrivals.get("late"):
        return "arrivals were still queued for a user when the window ended"
    return (
        f"every one of the {trial.users} Locust users was waiting for an answer: the server fell behind, "
        "so it was measured at the rate it could take, not at the target"
    )


def record_rate(trial: Any, spec: Any, output: Mapping[str, Any], options: Any) -> None:
    """The trial's arrivals and its --slo verdict, onto its columns (``output``: the plugin's JSON)."""
    arrivals = output.get("arrivals")
    if spec.rate and arrivals:
        trial.target_rate = spec.rate
        trial.achieved_rate = arrivals.get("achieved_rate")
        trial.arrivals = str(arrivals.get("arrivals") or "")[:16]
        trial.late_requests = arrivals.get("late")
        trial.dropped_requests = arrivals.get("dropped")
        trial.arrival_stats = dict(arrivals)  # the scheduler's detail: scheduled, sent, late, lag
        problem = offered_problem(arrivals, trial.duration_s or 0.0)
        trial.rate_offered = not problem
        if problem:
            trial.notes.append(f"could not offer its rate ({problem}); {offered_cause(trial, arrivals)}")
        elif float(arrivals.get("lag_ms_mean") or 0) > LAG_NOTE_MS:
            trial.notes.append(
                f"the arrival scheduler woke {arrivals['lag_ms_mean']:g} ms late on average (max "
                f"{arrivals.get('lag_ms_max', 0):g} ms): a busy machine; the latencies include that delay "
                "of the load generator's"
            )
        bound_note = bound_warning(spec, spec.rate, options.query_delay_ms)
        if bound_note:
            trial.notes.append(bound_note)
    targets = getattr(options, "slo", None) or []
    if targets:
        trial.slo_results = slo.judge(trial, targets)
        trial.slo_passed = slo.passed(trial.slo_results) and trial.rate_offered is not False


@dataclass
class RateVerdict:
    size: int
    rate: float
    trials: int
    offered: bool
    verdicts: list[dict[str, Any]]

    @property
    def passed(self) -> bool:
        return self.offered and slo.passed(self.verdicts)


def at_rate(trials: Iterable[Any], rate: float, targets: Sequence[slo.Target]) -> list[RateVerdict]:
    """Per configuration and size, the medians over its finished trials at ``rate`` judged against the
    targets (the stable-answer work's confidence intervals would replace the medians here)."""
    groups: dict[tuple[str, int, int, int], list[Any]] = {}
    for t in trials:
        if t.status == "ok" and t.pool_size and t.target_rate and math.isclose(t.target_rate, rate):
            groups.setdefault((t.mode, t.workers, t.threads, t.pool_size), []).append(t)
    out = []
    for (_, _, _, size), group in sorted(groups.items()):
        medians = {}
        for target in targets:
            values = [slo.figure(t, target) for t in group]
            medians[target.column] = median(values) if None not in values else None
        offered = sum(1 for t in group if t.rate_offered) * 2 > len(group)
        out.append(RateVerdict(size, rate, len(group), offered, slo.judge(medians, targets)))
    return out


def recommend(
    trials: Sequence[Any], rate: float, headroom: float, targets: Sequence[slo.Target]
) -> tuple[int | None, str]:
    """The smallest size that met every target at ``rate`` x ``headroom`` (its trials at that rate)."""
    goal = rate * headroom
    verdicts = at_rate(trials, goal, targets)
    wanted = ", ".join(str(t) for t in targets)
    for v in verdicts:
        if v.passed:
            return v.size, (
                f"Size {v.size} is the smallest that met every target ({wanted}) at {goal:g} req/s "
                f"(--rate {rate:g} x --headroom {headroom:g}), median over {v.trials} trial(s)."
            )
    missed = []
    for v in at_rate(trials, rate, targets) + (verdicts if headroom != 1 else []):
        why = ", ".join(
            part
            for part in (slo.failed_text(v.verdicts), "" if v.offered else "the rate was not offered")
            if part
        )
        if why:
            missed.append(f"size {v.size} at {v.rate:g} req/s: {why}")
    return None, (
        f"No size met every target ({wanted}) at {goal:g} req/s (--rate {rate:g} x --headroom {headroom:g})"
        + (": " + "; ".join(missed) if missed else "")
        + ". Try larger sizes, more --workers, or a lower rate."
    )


def rate_line(t: Any) -> str:
    """One open-model trial in words: target and achieved rate, late and dropped, the SLO verdict."""
    verdict = ""
    if t.slo_results:
        missed = slo.failed_text(t.slo_results) or "the rate was not offered"
        verdict = ", SLO " + ("met" if t.slo_passed else f"missed: {missed}")
    offered = "" if t.rate_offered is not False else " RATE NOT OFFERED (see the trial's notes)"
    lag = t.arrival_stats or {}
    lagged = (
        f", scheduler lag {lag['lag_ms_mean']:g}/{lag['lag_ms_max']:g} ms" if "lag_ms_mean" in lag else ""
    )
    return (
        f"target {t.target_rate:g} req/s, sent {t.achieved_rate or 0:,.1f}/s, answered {t.rps:,.1f}/s, "
        f"late {t.late_requests or 0}, dropped {t.dropped_requests or 0}{lagged}{offered}{verdict}"
    )


def trial_lines(trials: Iterable[Any]) -> list[str]:
    """One line per open-model trial: target and achieved rate, late and dropped, the SLO verdict."""
    lines = []
    for t in trials:
        if t.target_rate is None:
            continue
        lines.append(f"  trial {t.index} ({t.label}): {rate_line(t)}")
        lines += [
            f"    {note}"
            for note in t.notes
            if note.startswith(("could not offer", "the arrival scheduler", "pool", "queuepool"))
        ]
    return (
        ["", "Open-model trials (latency from each request's intended send time):", *lines] if lines else []
    )
