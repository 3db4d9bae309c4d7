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

The load generator's own lag: Locust exposes none (its only self-check is a CPU reading every 10 s), so
each process that runs users also runs a greenlet that sleeps LAG_INTERVAL and records how late it woke
up. Every greenlet of that process (a user reading its answer) waits as long for its turn, so the lag is
time Locust adds to the response times it reports, and a rising lag means Locust, not the server, is
slow. Workers send their lag with their reports; the master keeps the latest figure of each worker.
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

# Locust left running by a command killed with SIGKILL would load the site on with nobody to stop it.
# (A load machine of --expect-workers may have this file without the package: then nothing is set.)
try:
    from poolbench.lifeline import die_with_parent
except ImportError:  # pragma: no cover
    pass
else:
    die_with_parent()

# Workers report every WORKER_REPORT_INTERVAL (3 s by default). The window's boundary does not depend on
# it (see poolbench_reset above), but fresher reports shorten what the master waits for at the end.
locust.runners.WORKER_REPORT_INTERVAL = 0.5
# The master's statistics of the measured window, built from the workers' marked reports only.
_window = RequestStats(use_response_times_cache=False)
# The event-loop lag probe: sleep this long, record the overshoot (seconds) since the window began.
LAG_INTERVAL = 0.01
_lag: list[float] = []
_worker_lags: dict[str, dict] = {}  # master: each worker's latest lag summary


def _lag_probe():
    while True:
        start = time.perf_counter()
        gevent.sleep(LAG_INTERVAL)
        _lag.append(max(0.0, time.perf_counter() - start - LAG_INTERVAL))


def lag_summary(lags: list[float]) -> dict:
    """Mean, p50, p99 and max of the probe's overshoots, in ms."""
    if not lags:
        return {}
    ordered = sorted(lags)
    n = len(ordered)
    return {
        "interval_ms": LAG_INTERVAL * 1000,
        "samples": n,
        "mean_ms": round(1000 * sum(ordered) / n, 3),
        "p50_ms": round(1000 * ordered[n // 2], 3),
        "p99_ms": round(1000 * ordered[min(n - 1, int(0.99 * n))], 3),
        "max_ms": round(1000 * ordered[-1], 3),
        "processes": 1,
    }


def merge_lags(summaries: list[dict]) -> dict:
    """Over processes: samples and mean pooled; p50, p99 and max the worst process's (an upper bound)."""
    summaries = [s for s in summaries if s.get("samples")]
    if not summaries:
        return {}
    samples = sum(s["samples"] for s in summaries)
    return {
        "interval_ms": summaries[0]["interval_ms"],
        "samples": samples,
        "mean_ms": round(sum(s["mean_ms"] * s["samples"] for s in summaries) / samples, 3),
        **{k: max(s[k] for s in summaries) for k in ("p50_ms", "p99_ms", "max_ms")},
        "processes": len(summaries),
    }


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
    _lag.clear()
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
    if _state.get("window"):
        data["poolbench_lag"] = lag_summary(_lag)


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
    if data.get("poolbench_lag"):
        _worker_lags[client_id] = data["poolbench_lag"]
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
    if not isinstance(environment.runner, MasterRunner) and "lag_probe" not in _state:
        _state["lag_probe"] = gevent.spawn(_lag_probe)  # where the users run: a local runner or a worker
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
            _lag.clear()
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
        # Locust's own CPU warning is not passed on: it checks every 10 s and its first reading is 0,
        # so it cannot fire in a trial shorter than ~20 s. poolbench samples the CPU itself.
        "load_lag": merge_lags(list(_worker_lags.values())) if distributed else lag_summary(_lag),
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
