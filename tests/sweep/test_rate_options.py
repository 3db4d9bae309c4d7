# ruff: noqa: E501  (a table of exact messages: one row per line reads best)
"""Bad open-model input is refused before any row or process, with a message naming the fix; and what
good input becomes (users provisioned, the sweep's settings)."""

from __future__ import annotations

import pytest

from poolbench.sweep.options import OPTIONS
from poolbench.sweep.options import build_options as _build
from tests.conftest import assert_refused


def build_options(given):
    """As the command calls it: every option's key, None when not given."""
    return _build({**{o.dest: None for o in OPTIONS}, "database": "default", **given})


SLO = ["--slo", "p99<250ms"]
BAD = [
    (["--rate", "0", *SLO], "--rate '0' must be more than 0"),
    (["--rate", "lots", *SLO], "--rate 'lots' is not a number"),
    (["--rate", "1e9", *SLO], "--rate '1e9' is more than 100,000 requests per second; give less"),
    (["--rate", "100"], '--rate needs --slo to judge the sizes by, e.g. --slo "p99<250ms,errors<0.1%"'),
    (
        ["--find-capacity"],
        '--find-capacity needs --slo to judge the sizes by, e.g. --slo "p99<250ms,errors<0.1%"',
    ),
    (
        ["--rate", "100", "--arrivals", "bursty", *SLO],
        "--arrivals 'bursty': use poisson (random arrivals, the default) or constant (evenly spaced)",
    ),
    (
        ["--arrivals", "constant"],
        "--arrivals needs --rate R or --find-capacity (a closed loop has no arrivals)",
    ),
    (["--headroom", "1.5"], "--headroom needs --rate R (it multiplies the rate the sizes must hold)"),
    (
        ["--rate", "100", "--headroom", "0.5", *SLO],
        "--headroom '0.5' must be 1 to 10 (1.2 = meet the targets at 120% of --rate)",
    ),
    (
        ["--rate", "100", "--slo", "p99<250ms,p97<1s"],
        "--slo 'p99<250ms,p97<1s': term 'p97<1s': unknown metric 'p97'; use one of p50, p90, p95, p99, p99.9, avg, max, errors",
    ),
    (
        ["--gate", "errors<1"],
        "--gate 'errors<1': term 'errors<1': give the error rate in percent, e.g. errors<0.1%",
    ),
    (
        ["--rate", "100", "--sizes", "auto", *SLO],
        "--rate cannot be combined with --sizes auto; give the sizes, e.g. --sizes 2,4,8",
    ),
    (
        ["--find-capacity", "--repeat", "2", *SLO],
        "--find-capacity runs one trial per rate it tries; drop --repeat (or give --repeat 1)",
    ),
    (
        ["--rate", "100", "--locustfile", "tests/locustfiles/phases.py", *SLO],
        "--rate drives poolbench's own scenario (the probe or your --path pages) from its arrival scheduler; drop --locustfile, or run your scenario as a closed loop with --users",
    ),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a)[:40] for a, _ in BAD])
def test_bad_open_model_input_is_refused_before_anything_runs(args, message):
    assert_refused(args, message)


@pytest.mark.django_db
def test_users_are_provisioned_for_one_second_of_arrivals_unless_given():
    opts = build_options({"rate": "200", "slo": "p99<250ms", "sizes": "2,8", "database": "default"})
    assert opts.load.users == 250 and opts.rate == 200 and opts.headroom == 1.2  # 200 x 1.2 + 10
    assert [str(t) for t in opts.slo] == ["p99<250ms"] and opts.load.arrivals == "poisson"
    given = build_options({"rate": "200", "slo": "p99<250ms", "users": "40", "database": "default"})
    assert given.load.users == 40  # --users with --rate: the provisioned pool
    capacity = build_options({"find_capacity": True, "slo": "p99<250ms", "database": "default"})
    assert capacity.load.users == 1000 and capacity.find_capacity
    closed = build_options({"users": "16", "database": "default", "gate": "p99<100ms"})
    assert (
        closed.load.users == 16
        and closed.rate is None
        and [str(t) for t in closed.gates.slo] == ["p99<100ms"]
    )


@pytest.mark.django_db
def test_find_capacity_runs_one_trial_per_rate_under_the_default_repeat(settings):
    # The shipped default REPEAT is 5 (tests pin 1): --find-capacity must not refuse the default, only
    # a --repeat given on its command line.
    settings.POOLBENCH = {**settings.POOLBENCH, "REPEAT": 5}
    capacity = build_options({"find_capacity": True, "slo": "p99<250ms", "sizes": "2,8"})
    assert capacity.find_capacity and {s.repeat for s in capacity.plan.specs} == {1}
    closed = build_options({"sizes": "2,8"})
    assert max(s.repeat for s in closed.plan.specs) == 5 and len(closed.plan.specs) == 10
    assert_refused(
        ["--find-capacity", "--repeat", "3", *SLO],
        "--find-capacity runs one trial per rate it tries; drop --repeat (or give --repeat 1)",
    )
