"""The sampling thread every sampler of a trial runs in."""

from __future__ import annotations

import threading


class Sampler:
    """Calls ``sample()`` every ``interval`` seconds in a thread until stopped; keeps the values."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.values: list[float] = []
        self.error: str = ""
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def setup(self) -> None:  # in the sampling thread
        pass

    def sample(self) -> float | None:
        raise NotImplementedError

    def teardown(self) -> None:  # in the sampling thread
        pass

    def _run(self) -> None:
        try:
            try:
                self.setup()
            finally:
                self._ready.set()
            while True:
                value = self.sample()
                if value is not None:
                    self.values.append(value)
                if self._stop.wait(self.interval):
                    break
        except Exception as exc:  # a sampler must never stop a trial
            self.error = " ".join(str(exc).split())
        finally:
            try:
                self.teardown()
            except Exception:
                pass

    def start(self, *, wait_setup: bool = False, timeout: float = 10.0) -> Sampler:
        """Start sampling; with ``wait_setup``, return once ``setup()`` has run (or failed)."""
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if wait_setup:
            self._ready.wait(timeout)
        return self

    def stop(self) -> None:
        """Stop sampling and wait for the thread; a second call does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
