"""Loaded by Locust beside the scenario (``-f locust_plugin.py,scenario.py``): it excludes the warm-up
from the statistics and writes the measured window's full statistics to a JSON file.

Runs inside the Locust child only (and inside Locust workers, local or remote); it is never imported by
the Django process.

Distributed runs (``--processes N`` or ``--master`` with workers elsewhere): a worker sends its
statistics to the master as deltas every 3 s, so resetting the master's statistics at the end of the
warm-up would still let up to 3 s of warm-up requests in (reports already sent or not yet sent). Instead
the master tells every worker to reset (message ``poolbench_reset``); from then on each worker marks its
reports as belonging to the window, and the master adds only marked reports into its own window
statistics. The boundary is thus drawn on each worker, in the same greenlet-atomic step that resets it.
"""

import json
import os
import re
import time

import gevent
import locust.runners
from locust import events
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import RequestStats, StatsEntry, StatsError

from poolbench.loadgen import arrivals

_state = {}

# Workers report every WORKER_REPORT_INTERVAL (3 s by default). The window's boundary does not depend on
# it (see poolbench_reset above), but fresher reports shorten what the master waits for at the end.
locust.runners.WORKER_REPORT_INTERVAL = 0.5
# The master's statistics of the measured window, built from the workers' marked reports only.
_window = RequestStats(use_response_times_cache=False)
# poolbench's timeline, per wall-clock second, warm-up included: [requests, failures, sum of ms,
# {ms rounded as Locust rounds: count}]. Workers send theirs with each report; the master adds them up.
_seconds = {}


def _rounded(ms):
    # Locust's own rounding of response times (StatsEntry._log_time_of_request): 2 significant digits.
    if ms < 100:
        return round(ms)
    return round(ms, -1 if ms < 1000 else -2 if ms < 10000 else -3)


@events.request.add_listener
def _count_second(response_time=0, exception=None, **kwargs):
    bucket = _seconds.setdefault(int(time.time()), [0, 0, 0.0, {}])
    bucket[0] += 1
    bucket[1] += exception is not None
    bucket[2] += response_time or 0
    key = _rounded(response_time or 0)
    bucket[3][key] = bucket[3].get(key, 0) + 1


def _seconds_out():
    # String keys and pairs: the workers' reports go through msgpack, which wants simple maps.
    return {str(s): [n, f, total, list(h.items())] for s, (n, f, total, h) in _seconds.items()}


def _add_seconds(sent):
    for sec, (n, f, total, hist) in (sent or {}).items():
        bucket = _seconds.setdefault(int(sec), [0, 0, 0.0, {}])
        bucket[0] += n
        bucket[1] += f
        bucket[2] += total
        for key, count in hist:
            bucket[3][key] = bucket[3].get(key, 0) + count


@events.init.add_listener
def _init(environment, **kwargs):
    runner = environment.runner
    go = getattr(environment.parsed_options, "poolbench_go", "")
    if go and not isinstance(runner, WorkerRunner):
        # poolbench starts Locust ahead (while the trial server boots, or while the previous trial ends),
        # so that importing Locust costs no time; the load starts the moment poolbench writes this file
        # with the trial server's URL (the server answers by then).
        deadline = time.time() + 600
        while not os.path.exists(go) and time.time() < deadline:
            time.sleep(0.01)
        if os.path.exists(go):
            with open(go, encoding="utf-8") as fh:
                text = fh.read().strip()
            try:
                go_ahead = json.loads(text) if text.startswith("{") else {"host": text}
            except ValueError:
                go_ahead = {}
            host = go_ahead.get("host")
            if go_ahead.get("rate"):  # --rate: this trial's arrival rate (the next may have another)
                environment.parsed_options.poolbench_rate = float(go_ahead["rate"])
            if host:  # Locust may have been started before the trial server's port was known
                environment.host = host
                environment.parsed_options.host = host
    arrivals.configure(
        environment.parsed_options.poolbench_rate, environment.parsed_options.poolbench_arrivals
    )
    if isinstance(runner, WorkerRunner):
        runner.register_message("poolbench_reset", _worker_reset)
        runner.register_message("poolbench_rate", _worker_rate)
        environment.events.report_to_master.add_listener(_mark_report)
    elif isinstance(runner, MasterRunner):
        environment.events.worker_report.add_listener(_add_window_report)


def _worker_reset(environment, msg, **kwargs):
    # Whatever this worker measured and has not reported yet is warm-up: drop it. No greenlet switch
    # happens between this and the flag, so a report is either all warm-up or all window.
    environment.runner.stats.reset_all()
    arrivals.reset()
    _state["window"] = True


def _worker_rate(environment, msg, **kwargs):
    # This worker's share of --rate (the master divided it); arrives before the first spawn message.
    arrivals.configure(msg.data["rate"], msg.data["arrivals"])


def _mark_report(client_id, data, **kwargs):
    data["poolbench_window"] = bool(_state.get("window"))
    data["poolbench_seconds"] = _seconds_out()
    _seconds.clear()
    if arrivals.enabled():
        data["poolbench_arrivals"] = arrivals.take_counts()


def _add_window_report(client_id, data, **kwargs):
    _add_seconds(data.get("poolbench_seconds"))
    if not data.get("poolbench_window"):
        return
    if data.get("poolbench_arrivals"):
        counted = arrivals.add_counts(_state.setdefault("arrivals", {}), data["poolbench_arrivals"])
        if "measure_end" not in _state:
            # After the window's end the workers' users are being stopped and their queues grow: the
            # arrivals never sent are those queued at each worker's last report within the window.
            counted.setdefault("queued_by_worker", {})[client_id] = data["poolbench_arrivals"].get(
                "queued", 0
            )
    for entry_data in data.get("stats", []):
        entry = StatsEntry.unserialize(entry_data, _window)
        key = (entry.name, entry.method)
        if key not in _window.entries:
            _window.entries[key] = StatsEntry(_window, entry.name, entry.method)
        _window.entries[key].extend(entry)
    if data.get("stats_total"):
        _window.total.extend(StatsEntry.unserialize(data["stats_total"], _window))
    for key, error in (data.get("errors") or {}).items():
        if key in _window.errors:
            _window.errors[key].occurrences += error["occurrences"]
        else:
            _window.errors[key] = StatsError.unserialize(error)


@events.init_command_line_parser.add_listener
def _arguments(parser):
    parser.add_argument("--poolbench-warmup", type=float, default=0.0, include_in_web_ui=False)
    parser.add_argument("--poolbench-out", type=str, default="", include_in_web_ui=False)
    parser.add_argument("--poolbench-duration", type=float, default=0.0, include_in_web_ui=False)
    parser.add_argument("--poolbench-go", type=str, default="", include_in_web_ui=False)
    parser.add_argument("--poolbench-mark", type=str, default="", include_in_web_ui=False)
    parser.add_argument("--poolbench-rate", type=float, default=0.0, include_in_web_ui=False)
    parser.add_argument("--poolbench-arrivals", type=str, default="poisson", include_in_web_ui=False)


@events.test_start.add_listener
def _start(environment, **kwargs):
    if isinstance(environment.runner, WorkerRunner):
        arrivals.start()
        return
    _state["test_start"] = time.time()
    warmup = environment.parsed_options.poolbench_warmup
    duration = environment.parsed_options.poolbench_duration
    out = environment.parsed_options.poolbench_out

    def measuring():
        _state["measure_start"] = time.time()
        if out:  # tells poolbench the measured window has begun
            with open(f"{out}.measuring", "w", encoding="utf-8") as fh:
                fh.write(str(_state["measure_start"]))
        mark = environment.parsed_options.poolbench_mark
        if mark:
            # Tells the trial server's workers to start their own timing afresh (serve.MEASURE_MARK).
            with open(mark, "w", encoding="utf-8") as fh:
                fh.write(str(_state["measure_start"]))

    distributed = isinstance(environment.runner, MasterRunner)
    rate = environment.parsed_options.poolbench_rate
    if distributed and rate:
        workers = max(1, len(environment.runner.clients))
        share = {"rate": rate / workers, "arrivals": environment.parsed_options.poolbench_arrivals}
        environment.runner.send_message("poolbench_rate", share)
    elif rate:
        arrivals.start()

    def reset():
        if warmup > 0:
            gevent.sleep(warmup)
        if distributed:
            _window.reset_all()
            environment.runner.send_message("poolbench_reset")
        else:
            environment.runner.stats.reset_all()
            arrivals.reset()
        measuring()
        if duration > 0:
            # End the window ourselves: Locust's --run-time counts from before the users start and only
            # in whole seconds, which cut the window short on a busy machine. It stays as a safety net.
            gevent.sleep(duration)
            _state["measure_end"] = time.time()
            if not distributed:
                # Final now: write before Locust's own teardown (stopping users, summary), which poolbench
                # does not wait for. A master still has the workers' last reports to receive.
                _write(environment)
            environment.runner.quit()

    gevent.spawn(reset)


@events.test_stop.add_listener
def _stop(environment, **kwargs):
    if not isinstance(environment.runner, WorkerRunner):
        _state.setdefault("measure_end", time.time())
        # Counted now: by the time the results are written the workers have been told to quit.
        _state["workers"] = len(getattr(environment.runner, "clients", {}) or {})


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
    if isinstance(runner, WorkerRunner) or not path or _state.get("written"):
        return
    _state["written"] = True
    distributed = isinstance(runner, MasterRunner)
    stats = _window if distributed else runner.stats
    out = {
        "test_start": _state.get("test_start"),
        "measure_start": _state.get("measure_start"),
        "measure_end": _state.get("measure_end", time.time()),
        "warmup_done": "measure_start" in _state,
        "user_count": runner.user_count,
        "cpu_warning": bool(getattr(runner, "cpu_warning_emitted", False)),
        "worker_cpu_warning": bool(getattr(runner, "worker_cpu_warning_emitted", False)),
        "workers": _state.get("workers", len(getattr(runner, "clients", {}) or {})),
        "distributed": distributed,
        # The master's own totals (warm-up included): a cross-check of the window, not a result.
        "all_requests": runner.stats.total.num_requests,
        "total": _entry(stats.total),
        "entries": [_entry(e) for e in stats.entries.values()],
        "seconds": _seconds_out(),
        "arrivals": _arrivals(environment, distributed),
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


def _arrivals(environment, distributed):
    """--rate: the target, what was sent, late and never-sent arrivals in the window (None: closed loop)."""
    rate = environment.parsed_options.poolbench_rate
    if not rate:
        return None
    if distributed:
        raw = dict(_state.get("arrivals", {}))
        raw["queued"] = sum(raw.pop("queued_by_worker", {}).values())
    else:
        raw = arrivals.counts()
    seconds = (_state.get("measure_end") or time.time()) - (_state.get("measure_start") or time.time())
    return arrivals.summary(raw, rate, seconds)
