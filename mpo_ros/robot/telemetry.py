"""
The actor's bookkeeping of what it rejected and how fast it answered, without ROS.

:class:`Throttle` lets each kind of message through at most once per period (bounded however
many kinds a stranger invents), :class:`Rejections` counts rejected inputs per kind and words
the log line, and :class:`Latency` keeps receipt-to-command latencies and the step rate for the
node's ``~/timing`` report (and, for benchmarks, every latency for a ``.npy`` file).
"""

from __future__ import annotations

import collections
import re
import time
from typing import Callable

import numpy as np


class Throttle:
    """At most one pass per key and period; the key table is cleared beyond ``max_keys``."""

    def __init__(self, period_s: float = 5.0, max_keys: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Allow each key once per ``period_s`` seconds of ``clock``."""
        self.period_s, self.max_keys, self.clock = period_s, max_keys, clock
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        """Whether a message of ``key`` may pass now (and note that it did)."""
        if len(self._last) > self.max_keys:
            self._last.clear()
        now = self.clock()
        if now - self._last.get(key, -np.inf) <= self.period_s:
            return False
        self._last[key] = now
        return True


class Rejections:
    """Counts rejected inputs per kind; each distinct reason is worth a log line per period."""

    def __init__(self, throttle: Throttle) -> None:
        """Use ``throttle`` to space out log lines of the same reason."""
        self.counts: collections.Counter[str] = collections.Counter()
        self.throttle = throttle

    def reject(self, kind: str, text: str) -> str | None:
        """Count one rejected ``kind`` input; return the line to log, or None to stay quiet."""
        self.counts[kind] += 1
        if not self.throttle.allow(kind + ':' + re.sub(r'\d+', '#', text)):
            return None
        return f'{text} ({self.counts[kind]} {kind} input(s) rejected so far)'


class Latency:
    """Receipt-to-command latencies and the step rate over each reporting window."""

    def __init__(self, keep_all: bool = False) -> None:
        """``keep_all``: also keep ``(unix time, latency)`` of every command (benchmarks)."""
        self.window: collections.deque[float] = collections.deque(maxlen=100_000)
        self.keep_all = keep_all
        self.all: list[tuple[float, float]] = []
        self.window_steps, self.window_start = 0, time.monotonic()

    def acted(self, received: float, acted: bool) -> None:
        """Record the latency from ``received`` (perf_counter) if the message led to a command."""
        if acted:
            latency = time.perf_counter() - received
            self.window.append(latency)
            if self.keep_all:
                self.all.append((time.time(), latency))

    def report(self, steps_seen: int) -> list[float]:
        """Return ``[p50_ms, p99_ms, samples, steps_per_s]`` since the last report and reset."""
        now = time.monotonic()
        lat = np.asarray(self.window) * 1e3
        self.window.clear()
        rate = (steps_seen - self.window_steps) / max(now - self.window_start, 1e-9)
        self.window_steps, self.window_start = steps_seen, now
        if not lat.size:
            return [float('nan'), float('nan'), 0.0, rate]
        return [float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), float(lat.size),
                rate]

    def save(self, path: str) -> None:
        """Write every kept ``(unix time, latency s)`` pair to a ``.npy`` file."""
        np.save(path, np.asarray(self.all).reshape(-1, 2))
