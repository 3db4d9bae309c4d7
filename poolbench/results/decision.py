"""Statistics that decide: each size's median with a confidence interval over its repeats, each
size compared with the best one pass by pass, and the recommended size with its reason.

Two intervals, both at ``CONFIDENCE`` (95%):

- a size's own interval, the percentile bootstrap of the median of its successful requests/s over its
  repeats (``scipy.stats.bootstrap``, a fixed generator so that the same trials always give the same
  bounds): how far that size's figure moves from run to run;
- a size's throughput against the best size, the decision's interval: within each pass of the sweep
  (every size ran once, close in time) the ratio size / best, and the t interval of the mean of the
  log ratios over the passes (``scipy.stats.ttest_1samp``), taken back to a ratio. Pairing by pass
  takes out what a busy machine does to all sizes of a pass alike.

A size is *significantly slower* than the best when the whole interval of its ratio lies below 1 and
it loses more than the tolerance (a loss smaller than that is not worth a larger pool); its latency is
*significantly worse* when the whole interval of its p99 ratio lies above 1 and the p99 is more than
the tolerance (and one Locust rounding step) above the best's. With one pass there is no interval: the
point ratios are compared with the tolerance alone, and the reason says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from poolbench.results.analysis import SizeSummary

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 13  # fixed: the same trials give the same interval, in the command and in the admin


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The percentile-bootstrap interval of the median of ``values``; None for fewer than two."""
    if len(values) < 2:
        return None
    data = np.asarray(values, dtype=float)
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = stats.bootstrap(
        (data,), np.median, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED),
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass
class Ratio:
    """``value`` of one size over the best's: the point, the interval (None with one pass), the passes."""

    point: float
    low: float | None = None
    high: float | None = None
    passes: int = 1

    @property
    def half_width_pct(self) -> float | None:
        return None if self.low is None or self.high is None else 50.0 * (self.high - self.low)


def paired_ratio(
    mine: Mapping[int, float],
    best: Mapping[int, float],
    *,
    offset: float = 0.0,
    confidence: float = CONFIDENCE,
) -> Ratio | None:
    """Per pass ``mine[p] / (best[p] + offset)``, over the passes both have; the geometric mean and the
    t interval of the mean log ratio. None when they share no pass or a value is not positive."""
    ratios = [mine[p] / (best[p] + offset) for p in sorted(set(mine) & set(best))]
    if not ratios or any(not r > 0 or not math.isfinite(r) for r in ratios):
        return None
    logs = np.log(np.asarray(ratios))
    point = float(np.exp(logs.mean()))
    if len(logs) < 2:
        return Ratio(point)
    if np.all(logs == logs[0]):
        return Ratio(point, point, point, len(logs))
    ci = stats.ttest_1samp(logs, 0.0).confidence_interval(confidence)
    return Ratio(point, float(np.exp(ci.low)), float(np.exp(ci.high)), len(logs))


@dataclass
class Verdict:
    """One size against the best of its configuration: ``slower``/``worse_p99`` when significantly so."""

    size: int
    rps: Ratio | None
    p99: Ratio | None
    failures: int = 0
    slower: bool = False
    worse_p99: bool = False

    @property
    def acceptable(self) -> bool:
        return not (self.failures or self.slower or self.worse_p99)


def judge(mine: SizeSummary, best: SizeSummary, tolerance: float, step: float) -> Verdict:
    """``mine`` against ``best`` (analysis.SizeSummary): slower, or a worse p99, beyond the noise."""
    rps = paired_ratio(mine.samples_rps, best.samples_rps)
    p99 = paired_ratio(mine.samples_p99, best.samples_p99, offset=step)
    if rps is None and best.rps > 0:
        rps = Ratio(mine.rps / best.rps, passes=0)  # no pass in common
    verdict = Verdict(mine.size, rps, p99, failures=mine.failures)
    # Significantly slower: the interval lies below 1 and the point loses more than the tolerance
    # (with one pass, no interval: the point against the tolerance alone).
    if rps is not None:
        verdict.slower = rps.point < 1 - tolerance and (rps.high is None or rps.high < 1)
    if p99 is not None:
        verdict.worse_p99 = p99.point > 1 + tolerance and (p99.low is None or p99.low > 1)
    return verdict


def _times(r: Ratio | None) -> str:
    if r is None:
        return "?"
    if r.low is None or r.high is None:
        return f"{r.point:.2f}x"
    return f"{r.point:.2f}x, {CONFIDENCE:.0%} interval {r.low:.2f}-{r.high:.2f}"


def why_not(v: Verdict) -> str:
    """Why size ``v.size`` is not the answer, in a few words."""
    if v.failures:
        return f"{v.size} had {v.failures} failures"
    if v.slower:
        return f"{v.size} was significantly slower ({_times(v.rps)})"
    return f"{v.size} had a significantly worse p99 ({_times(v.p99)})"


def sizes_text(sizes: Sequence[int]) -> str:
    """'5', '5 and 10', '5, 10, 16 and 200'."""
    names = [str(s) for s in sizes]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def noise_text(verdicts: Sequence[Verdict]) -> str:
    """'+-4%': the widest half-interval of the sizes' throughput ratios to the best."""
    widths = [v.rps.half_width_pct for v in verdicts if v.rps is not None and v.rps.half_width_pct]
    widest = max(widths, default=0.0)
    return f"+-{widest:.0f}%" if widest >= 1 else f"+-{widest:.1f}%"


@dataclass
class Decision:
    """The answer for one pooled mode: the size (None when no size qualifies), the reason, and every
    size of the best configuration judged against the best."""

    size: int | None
    reason: str
    best: int | None = None
    verdicts: dict[int, Verdict] | None = None
    config: tuple[str, int, int] | None = None  # the best's (mode, workers, threads)


def decide(
    summaries: Sequence[SizeSummary],
    tolerance: float = 0.05,
    without_data: Mapping[tuple[str, int, int], Sequence[int]] | None = None,
) -> Decision:
    """best = the failure-free size with the highest median successful requests/s (in its
    configuration, workers x threads); recommended = the smallest size of that configuration with no
    failures that is neither significantly slower nor of a significantly worse p99 than the best."""
    from poolbench.results.analysis import rounding_step

    clean = [s for s in summaries if not s.failures]
    if not clean:
        return Decision(None, no_size_text(summaries, tolerance))
    best = max(clean, key=lambda s: s.rps)
    group = sorted((s for s in summaries if s.config == best.config), key=lambda s: s.size)
    step = rounding_step(best.p99_ms) if best.p99_ms is not None else 0.0
    verdicts = {s.size: judge(s, best, tolerance, step) for s in group}
    verdicts[best.size] = Verdict(best.size, Ratio(1.0, 1.0, 1.0), Ratio(1.0, 1.0, 1.0))
    chosen = next(s for s in group if verdicts[s.size].acceptable)
    missing = [n for n in (without_data or {}).get(best.config, []) if n < chosen.size]
    if all(s.trials < 2 for s in group):
        reason = one_sample_text(chosen, best, tolerance, measured=bool(missing))
    else:
        reason = reason_text(chosen, best, group, verdicts, tolerance)
    reason += caveats(chosen, missing)
    return Decision(chosen.size, reason, best.size, verdicts, best.config)


def no_size_text(summaries: Sequence[SizeSummary], tolerance: float) -> str:
    best = max(summaries, key=lambda s: s.rps)
    return (
        f"No size met the bar: every size within {tolerance:.0%} of the best ({best.rps:.0f} req/s at size "
        f"{best.size}) had failures or a worse p99. Look at the errors: pool timeouts (PoolTimeout, "
        "QueuePool limit) call for larger sizes or a longer --pool-timeout; any other error comes from the "
        "app itself."
    )


def reason_text(
    chosen: SizeSummary,
    best: SizeSummary,
    group: Sequence[SizeSummary],
    verdicts: dict[int, Verdict],
    tolerance: float,
) -> str:
    """The recommendation over repeats, in a sentence: within the noise, the best, or smaller."""
    passes = max(s.trials for s in group)
    clean = [verdicts[s.size] for s in group if not s.failures]
    rejected = [why_not(verdicts[s.size]) for s in group if s.size < chosen.size]
    figures = f"medians of successful req/s over up to {passes} passes: {chosen.size} {chosen.rps:,.0f}" + (
        " (the best)" if chosen is best else f", {best.size} (best) {best.rps:,.0f}"
    )
    if len(clean) > 1 and all(v.acceptable for v in clean):
        # None is slower beyond the noise; those that are, by less than the tolerance, are named so.
        within = (
            ""
            if all(v.rps is None or v.rps.high is None or v.rps.high >= 1 for v in clean)
            else (f" or the {tolerance:.0%} tolerance")
        )
        failed = [why_not(verdicts[s.size]) for s in group if s.failures]
        return (
            f"{sizes_text([v.size for v in clean])} are within the noise of each other ({noise_text(clean)})"
            f"{within}: use {chosen.size}, the smallest ({figures}"
            + (f"; {'; '.join(failed)}" if failed else "")
            + ")."
        )
    if chosen is best:
        tail = f"; {'; '.join(rejected)}" if rejected else ""
        return (
            f"Size {best.size} gave the most throughput ({best.rps:,.0f} req/s, the median of {best.trials}) "
            f"with no failures{', and no smaller size came close' if rejected else ''}{tail}."
        )
    v = verdicts[chosen.size]
    out = [
        why_not(verdicts[s.size]) for s in group if s.size > chosen.size and not verdicts[s.size].acceptable
    ]
    tail = f"; {'; '.join(rejected)}" if rejected else ""
    tail += f"; also out: {'; '.join(out)}" if out else ""
    return (
        f"Size {chosen.size} is the smallest size not significantly slower than the best (size {best.size}) "
        f"by more than {tolerance:.0%}, with no failures and a p99 not significantly worse: it reached "
        f"{_times(v.rps)} of the best's throughput ({figures}){tail}."
    )


ONE_SAMPLE = (
    " The answer rests on one sample per size (--repeat 1): a size's throughput moves between runs, "
    "so run --repeat 3 or more to tell the sizes apart."
)


def one_sample_text(chosen: SizeSummary, best: SizeSummary, tolerance: float, *, measured: bool) -> str:
    """One trial per size: the point figures against the tolerance, and a warning. ``measured``: a
    smaller size measured nothing, so "no smaller size" covers only those that did."""
    if chosen is best:
        smaller = "no smaller size measured" if measured else "no smaller size"
        return (
            f"Size {best.size} gave the most throughput ({best.rps:.0f} req/s) with no failures, "
            f"and {smaller} came within {tolerance:.0%} of it.{ONE_SAMPLE}"
        )
    return (
        f"Size {chosen.size} is the smallest that reached {chosen.rps:.0f} req/s, within {tolerance:.0%} of the "
        f"best ({best.rps:.0f} req/s at size {best.size}), with no failures and a p99 no worse than "
        f"the best's.{ONE_SAMPLE}"
    )


def caveats(chosen: SizeSummary, missing: Sequence[int]) -> str:
    """Load-generator bound trials of the chosen size; smaller sizes that measured nothing."""
    out = ""
    if chosen.load_bound:
        out += (
            f" But {chosen.load_bound} of its {chosen.trials} trial(s) were load-generator bound, so the "
            "server may do better than measured."
        )
    if missing:
        out += (
            f" Note: size {', '.join(map(str, missing))} measured nothing (its trials failed), so a smaller size "
            "may do as well: run it again."
        )
    return out
