"""Sliding-window rates (arrivals, answers per minute): pool status and the router's capacity gate."""

from __future__ import annotations

from collections import deque


class WindowRate:
    """Events per minute over the last ``window_s`` seconds of a monotonic clock.

    >>> rate = WindowRate(window_s=60.0)
    >>> for t in range(30):
    ...     rate.add(float(t))
    >>> rate.per_min(now=30.0)  # one a second
    60.0
    >>> rate.per_min(now=200.0)
    0.0
    """

    def __init__(self, window_s: float = 60.0, min_span_s: float = 10.0) -> None:
        self.window_s = window_s
        #: The shortest span a rate is measured over, so one early event is not read as a flood.
        self.min_span_s = min(min_span_s, window_s)
        self._times: deque[float] = deque()
        self._first: float | None = None

    def add(self, at: float, count: int = 1) -> None:
        """Record ``count`` events at time ``at`` (seconds)."""
        if self._first is None:
            self._first = at
        self._times.extend([at] * count)

    def per_min(self, now: float) -> float:
        """The rate over the window ending at ``now`` (shorter while the window fills)."""
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if self._first is None:
            return 0.0
        span_s = min(self.window_s, max(now - self._first, self.min_span_s))
        return len(self._times) * 60.0 / span_s
