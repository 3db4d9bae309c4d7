"""Loaded by Locust beside the scenario (``-f locust_plugin.py,scenario.py``): it excludes the warm-up
from the statistics and writes the measured window's full statistics to a JSON file.

Runs inside the Locust child only; it is never imported by the Django process.
"""

import json
import os
import re
import time

import gevent
import locust.runners
from locust import events
from locust.runners import WorkerRunner

_state = {}

# With --processes, workers send their statistics every WORKER_REPORT_INTERVAL (3 s by default): the
# warm-up reset can only be as sharp as that, so report more often.
locust.runners.WORKER_REPORT_INTERVAL = 0.5


@events.init_command_line_parser.add_listener
def _arguments(parser):
    parser.add_argument("--poolbench-warmup", type=float, default=0.0, include_in_web_ui=False)
    parser.add_argument("--poolbench-out", type=str, default="", include_in_web_ui=False)
    parser.add_argument("--poolbench-mark", type=str, default="", include_in_web_ui=False)
    parser.add_argument("--poolbench-duration", type=float, default=0.0, include_in_web_ui=False)


def _measure_from_now(environment):
    _state["measure_start"] = time.time()
    out = environment.parsed_options.poolbench_out
    if out:  # tells poolbench the measured window has begun
        with open(f"{out}.measuring", "w", encoding="utf-8") as fh:
            fh.write(str(_state["measure_start"]))
    duration = environment.parsed_options.poolbench_duration
    if duration > 0:
        # The window ends `duration` after it began, however late the warm-up ended on a busy
        # machine; --run-time is only the safety net.
        gevent.spawn_later(duration, environment.runner.quit)
    mark = environment.parsed_options.poolbench_mark
    if mark:
        # Tells the trial server's workers to start their own timing afresh (serve.MEASURE_MARK).
        with open(mark, "w", encoding="utf-8") as fh:
            fh.write(str(_state["measure_start"]))


@events.test_start.add_listener
def _start(environment, **kwargs):
    warmup = environment.parsed_options.poolbench_warmup
    if isinstance(environment.runner, WorkerRunner):
        # A worker drops what it has not reported yet when the master's warm-up ends too.
        if warmup > 0:
            gevent.spawn_later(warmup, environment.runner.stats.reset_all)
        return
    _state["test_start"] = time.time()

    def reset():
        gevent.sleep(warmup)
        environment.runner.stats.reset_all()
        _measure_from_now(environment)

    if warmup > 0:
        gevent.spawn(reset)
    else:
        _measure_from_now(environment)


@events.test_stop.add_listener
def _stop(environment, **kwargs):
    if not isinstance(environment.runner, WorkerRunner):
        _state.setdefault("measure_end", time.time())


_WRAPPED = re.compile(r"^(\w+)\((['\"])(.*)\2\)$", re.S)


def _message(error, host=""):
    """The failure's text, without Locust's wrapping and the trial server's address (it changes per trial)."""
    text = str(error)
    match = _WRAPPED.match(text)
    if match:
        kind, text = match.group(1), match.group(3)
        if kind != "CatchResponseError":
            text = f"{kind}: {text}"
    # Only the trial server's own address: other URLs in a message (SQLAlchemy's "Background on this
    # error at: https://sqlalche.me/...") are part of it.
    host = (host or "").rstrip("/")
    return text.replace(host, "") if host else text


def _entry(e):
    return {
        "name": e.name,
        "method": e.method,
        "num_requests": e.num_requests,
        "num_failures": e.num_failures,
        "total_response_time": e.total_response_time,
        "min_response_time": e.min_response_time,
        "max_response_time": e.max_response_time,
        "response_times": {str(k): v for k, v in e.response_times.items()},
        "start_time": e.start_time,
        "last_request_timestamp": e.last_request_timestamp,
    }


@events.quitting.add_listener
def _write(environment, **kwargs):
    runner = environment.runner
    path = environment.parsed_options.poolbench_out
    if isinstance(runner, WorkerRunner) or not path:
        return
    stats = runner.stats
    out = {
        "test_start": _state.get("test_start"),
        "measure_start": _state.get("measure_start"),
        "measure_end": _state.get("measure_end", time.time()),
        "warmup_done": "measure_start" in _state,
        "user_count": runner.user_count,
        "cpu_warning": bool(getattr(runner, "cpu_warning_emitted", False)),
        "worker_cpu_warning": bool(getattr(runner, "worker_cpu_warning_emitted", False)),
        "workers": len(getattr(runner, "clients", {}) or {}),
        "total": _entry(stats.total),
        "entries": [_entry(e) for e in stats.entries.values()],
        "errors": [
            {
                "method": e.method,
                "name": e.name,
                "message": _message(e.error, environment.host),
                "count": e.occurrences,
            }
            for e in stats.errors.values()
        ],
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    os.replace(tmp, path)
