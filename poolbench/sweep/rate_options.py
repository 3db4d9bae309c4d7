"""The options of open-model load (``--rate``, ``--arrivals``, ``--headroom``, ``--find-capacity``) and of
latency and error targets (``--slo``, ``--gate``): their argparse types, the rules that join them to the
other options, and how many Locust users to provision. Used by sweep/options.py."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from poolbench.results.slo import SLOError, parse_slo
from poolbench.sweep.plan import PlanError, parse_number

MAX_RATE = 100_000.0  # requests per second
MAX_HEADROOM = 10.0
DEFAULT_HEADROOM = 1.2
# Users provisioned for --rate without --users: one second of arrivals in flight at once (a request
# slower than 1 s at the full rate is the only way an arrival waits for a user), and at least this many.
PROVISION_SECONDS = 1.0
MIN_USERS = 20
CAPACITY_USERS = 1000  # --find-capacity without --users: the search's rates are not known in advance
MAX_USERS = 5000


def parse_rate(text: str) -> float:
    rate = parse_number(text, "--rate")
    if rate > MAX_RATE:
        raise PlanError(f"--rate {text!r} is more than {MAX_RATE:,.0f} requests per second; give less")
    return rate


def parse_arrivals(text: str) -> str:
    value = str(text).strip().lower()
    if value not in ("poisson", "constant"):
        raise PlanError(
            f"--arrivals {text!r}: use poisson (random arrivals, the default) or constant (evenly spaced)"
        )
    return value


def parse_headroom(text: str) -> float:
    headroom = parse_number(text, "--headroom")
    if not 1.0 <= headroom <= MAX_HEADROOM:
        raise PlanError(
            f"--headroom {text!r} must be 1 to {MAX_HEADROOM:g} (1.2 = meet the targets at 120% of --rate)"
        )
    return headroom


def targets(option: str):  # noqa: ANN201 - an argparse type
    def convert(text: str) -> list[Any]:
        try:
            return parse_slo(text, option)
        except SLOError as exc:
            raise PlanError(str(exc)) from None

    convert.__name__ = f"parse_{option[2:]}"
    return convert


def check_rate(
    given: Mapping[str, Any], values: Mapping[str, Any], *, auto: bool, own_locustfile: bool
) -> None:
    """The rules of the open-model options: PlanError for the first broken."""
    rate, capacity = values.get("rate"), bool(values.get("find_capacity"))
    open_model = bool(rate) or capacity
    if values.get("arrivals") and not open_model:
        raise PlanError("--arrivals needs --rate R or --find-capacity (a closed loop has no arrivals)")
    if values.get("headroom") is not None and not rate:
        raise PlanError("--headroom needs --rate R (it multiplies the rate the sizes must hold)")
    if not open_model:
        return
    flag = "--find-capacity" if capacity else "--rate"
    if not values.get("slo"):
        raise PlanError(f'{flag} needs --slo to judge the sizes by, e.g. --slo "p99<250ms,errors<0.1%"')
    if capacity and (values.get("repeat") or 1) > 1:
        raise PlanError(
            "--find-capacity runs one trial per rate it tries; drop --repeat (or give --repeat 1)"
        )
    if auto:
        raise PlanError(f"{flag} cannot be combined with --sizes auto; give the sizes, e.g. --sizes 2,4,8")
    if own_locustfile:
        raise PlanError(
            f"{flag} drives poolbench's own scenario (the probe or your --path pages) from its arrival "
            "scheduler; drop --locustfile, or run your scenario as a closed loop with --users"
        )


def provisioned_users(given: Mapping[str, Any], values: Mapping[str, Any]) -> int:
    """Locust users for the sweep: --users when given (the provisioned pool in rate mode); else enough
    that an arrival never waits for a free user unless requests take over a second."""
    if given.get("users") is not None or not (values.get("rate") or values.get("find_capacity")):
        return int(values["users"])
    if values.get("find_capacity"):
        return CAPACITY_USERS
    top = values["rate"] * (values.get("headroom") or DEFAULT_HEADROOM)
    return max(MIN_USERS, min(MAX_USERS, math.ceil(top * PROVISION_SECONDS) + 10))
