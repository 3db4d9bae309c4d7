"""--slo and --gate: the targets' syntax, each trial's verdict, and a bad term named in the error."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from poolbench.results import slo
from poolbench.results.slo import SLOError, Target, parse_slo


def test_the_issue_s_example_parses_into_three_targets():
    targets = parse_slo("p99<250ms,p95<100ms,errors<0.1%")
    assert [(t.metric, t.limit, t.unit) for t in targets] == [
        ("p99", 250.0, "ms"), ("p95", 100.0, "ms"), ("errors", 0.1, "%"),
    ]  # fmt: skip
    assert [str(t) for t in targets] == ["p99<250ms", "p95<100ms", "errors<0.1%"]


def test_seconds_spaces_and_inclusive_bounds():
    (a, b, c) = parse_slo(" p99.9 <= 1.5s , avg<20ms,max<2s")
    assert (a.metric, a.limit, a.inclusive) == ("p999", 1500.0, True)
    assert (b.metric, b.limit, b.inclusive) == ("avg", 20.0, False)
    assert c.limit == 2000.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", '--slo is empty; give targets such as --slo "p99<250ms,p95<100ms,errors<0.1%"'),
        ("p99<250ms,,errors<1%", "--slo 'p99<250ms,,errors<1%' has an empty term; separate targets with single commas"),
        ("p99<250ms,p98<1s", "--slo 'p99<250ms,p98<1s': term 'p98<1s': unknown metric 'p98'; use one of p50, p90, p95, p99, p99.9, avg, max, errors"),
        ("p99<250", "--slo 'p99<250': term 'p99<250': give a unit, ms or s, e.g. p99<250ms"),
        ("errors<0.1", "--slo 'errors<0.1': term 'errors<0.1': give the error rate in percent, e.g. errors<0.1%"),
        ("p99>250ms", "--slo 'p99>250ms': term 'p99>250ms' is not METRIC<VALUE; use e.g. p99<250ms or errors<0.1% (--slo \"p99<250ms,p95<100ms,errors<0.1%\")"),
        ("p99<1s,p99<2s", "--slo 'p99<1s,p99<2s': p99 is given twice; give each target once"),
        ("errors<101%", "--slo 'errors<101%': term 'errors<101%': an error rate is at most 100%"),
    ],
)  # fmt: skip
def test_a_bad_term_is_named_with_the_fix(text, message):
    with pytest.raises(SLOError) as info:
        parse_slo(text)
    assert str(info.value) == message


def test_judge_passes_and_fails_each_target_on_the_trial_s_columns():
    trial = SimpleNamespace(latency_p99_ms=240.0, latency_p95_ms=90.0, failure_pct=0.0)
    verdicts = slo.judge(trial, parse_slo("p99<250ms,p95<90ms,errors<0.1%"))
    assert [v["passed"] for v in verdicts] == [True, False, True]  # 90 is not below 90
    assert not slo.passed(verdicts)
    assert slo.failed_text(verdicts) == "p95 90 ms (target p95<90ms)"
    assert slo.passed(slo.judge(trial, parse_slo("p95<=90ms")))


def test_no_figure_meets_no_target():
    assert not Target("p99", 100.0).met_by(None)


def test_gate_breaches_name_the_worst_trial():
    trials = [
        SimpleNamespace(index=1, label="pool 4", latency_p99_ms=80.0, failure_pct=0.0),
        SimpleNamespace(index=2, label="pool 4", latency_p99_ms=130.0, failure_pct=0.5),
    ]
    assert slo.gate_breaches(trials, parse_slo("p99<100ms,errors<1%", "--gate")) == [
        "--gate p99<100ms: trial 2 (pool 4) had p99 130 ms"
    ]
