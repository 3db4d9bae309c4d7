"""The trial order (sweep/plan.py, --seed): each pass holds every configuration once, in a random
order of its own; the same seed gives the same order, and a sweep records the seed it used."""

from __future__ import annotations

import pytest
from django.test import override_settings

from poolbench.management.commands.poolbench import Command
from poolbench.sweep.plan import build_plan
from tests.conftest import assert_refused

GRID = {"sizes": [5, 10, 16, 200], "modes": ["pool"], "workers": [1], "threads": [32]}


def passes(plan) -> list[list[int]]:
    out: dict[int, list[int]] = {}
    for spec in plan.specs:
        out.setdefault(spec.repeat, []).append(spec.size)
    return [out[p] for p in sorted(out)]


def test_the_same_seed_gives_the_same_order_and_the_passes_are_reshuffled():
    one = build_plan(**GRID, repeat=5, seed=42)
    assert passes(one) == passes(build_plan(**GRID, repeat=5, seed=42))
    assert all(sorted(p) == [5, 10, 16, 200] for p in passes(one))  # every size once per pass
    assert len({tuple(p) for p in passes(one)}) > 1  # not one order repeated
    assert [s.index for s in one.specs] == list(range(1, 21))  # indexes follow the order run
    others = {tuple(map(tuple, passes(build_plan(**GRID, repeat=5, seed=seed)))) for seed in range(20)}
    assert len(others) == 20  # another seed, another order
    # One pass, or no seed: the order given.
    assert passes(build_plan(**GRID, repeat=1, seed=42)) == [[5, 10, 16, 200]]
    assert passes(build_plan(**GRID, repeat=2)) == [[5, 10, 16, 200]] * 2


def build(*args: str):
    cmd = Command()
    return cmd.build_options(vars(cmd.create_parser("manage.py", "poolbench").parse_args(list(args))))


def test_the_command_draws_a_seed_and_replays_a_given_one():
    drawn = build("--sizes", "5,10,16,200", "--repeat", "3")
    assert drawn.seed is not None and 0 <= drawn.seed < 2**32
    replay = build("--sizes", "5,10,16,200", "--repeat", "3", "--seed", str(drawn.seed))
    assert [s.size for s in replay.plan.specs] == [s.size for s in drawn.plan.specs]
    assert replay.seed == drawn.seed
    assert build("--sizes", "5,10", "--repeat", "1").seed is None  # one pass: the order given
    with override_settings(POOLBENCH={"MIGRATE": False, "EMBEDDED": False, "WORKERS": 1}):
        assert build("--sizes", "5,10").seed is not None  # the shipped default: five passes


@pytest.mark.django_db
def test_a_bad_seed_is_refused():
    assert_refused(
        ["--sizes", "2", "--seed", "x"], "--seed 'x' is not a whole number; give a non-negative integer"
    )
    assert_refused(["--sizes", "2", "--seed", "4294967296"], "--seed '4294967296' is larger than 4294967295")
