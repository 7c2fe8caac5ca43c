"""The hall controller's defences against floods: per-device token buckets and throttled logs.

Theory of operation: one faulty or hostile device that publishes as fast as it can must not (1) crowd out
the other devices, (2) make the controller's memory grow without limit, or (3) bury the operator's log.
(1) and (2) start in ``intake.py``: every device has its own broker connection and its own bounded inbox.
The parts here are pure (time is passed in):

* ``DeviceLimiter``: a token bucket per device (``rate_per_s`` tokens a second, up to ``burst``). Every
  message a device publishes costs one token; a message without a token is not decoded, not decided and
  not stored, and the device's inbox is paused until ``next_token_s``. The shell answers at most one
  ``rate_limited`` error a second per device and drops the rest. Ids the hall's configuration does not
  know share one bucket per role, so spraying made-up ids buys nothing, and the number of buckets is
  bounded by the configuration.
* ``Throttle``: at most ``burst`` log lines per key in each ``window_s``; what it held back is reported as one
  summary line per key when the window ends.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Limits:
    """The controller's flood limits (``[limits]`` in the hall config; see ``config/hall.example.toml``).

    The defaults leave room for the load benchmarks (one simulated dispenser sending ~1,000 requests a
    second for two seconds); a hall can set them much lower: a kiosk sends well under one message a second.
    ``inbox_*`` bound what the controller holds in memory, received but not yet handled, over all devices:
    each device's inbox gets an equal share (``inbox_bounds``).
    """

    device_messages_per_s: float = 200.0
    device_burst: int = 2000
    inbox_max_messages: int = 20_000
    inbox_max_bytes: int = 16 * 1024 * 1024

    def inbox_bounds(self, inboxes: int) -> tuple[int, int]:
        """(messages, payload bytes) one of ``inboxes`` device inboxes may hold: an equal share of the bounds, at
        most ``DEVICE_WINDOW`` messages, and at least one maximum-size MQTT packet of bytes."""
        messages = max(1, min(DEVICE_WINDOW, self.inbox_max_messages // max(1, inboxes)))
        return messages, max(MAX_PACKET_BYTES, self.inbox_max_bytes // max(1, inboxes))


# A device's inbox length and the MQTT 5 receive maximum its connection announces: enough for the load
# benchmark's bursts to stream; more would only let a flooding device's backlog grow. (Mosquitto 2.0.11 honours
# the receive maximum only until the first acknowledgement, then sends up to a window per acknowledgement; the
# inbox's bound, which stops reading the connection when full, is what holds.)
DEVICE_WINDOW = 64
# The brokers' max_packet_size (config/mosquitto/*.conf).
MAX_PACKET_BYTES = 65536


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class DeviceLimiter(Generic[K]):
    """Token buckets keyed by device (any hashable key); ``allow(key, now_s)`` spends one token if there is one."""

    def __init__(self, *, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[K, _Bucket] = {}

    def allow(self, key: K, now_s: float) -> bool:
        """True if ``key`` may send one more message at ``now_s`` (monotonic seconds); spends the token."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated_s=now_s)
        elif now_s > bucket.updated_s:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now_s - bucket.updated_s) * self.rate_per_s)
            bucket.updated_s = now_s
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def next_token_s(self, key: K, now_s: float) -> float:
        """When ``key`` will have a whole token again (``now_s`` if it has one or was never seen)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return now_s
        tokens = min(float(self.burst), bucket.tokens + max(0.0, now_s - bucket.updated_s) * self.rate_per_s)
        return now_s if tokens >= 1.0 else now_s + (1.0 - tokens) / self.rate_per_s

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(slots=True)
class _Window:
    started_s: float
    count: int = 0
    held_back: int = 0


class Throttle(Generic[K]):
    """At most ``burst`` events per key per ``window_s``; ``ended(now_s)`` reports what was held back."""

    def __init__(self, *, window_s: float, burst: int) -> None:
        self.window_s = window_s
        self.burst = burst
        self._windows: dict[K, _Window] = {}
        self._due: list[tuple[K, int, float]] = []

    def allow(self, key: K, now_s: float, count: int = 1) -> bool:
        """True if the (first of ``count``) event(s) may be logged; what may not is counted for the summary."""
        window = self._windows.get(key)
        if window is not None and now_s - window.started_s >= self.window_s:
            self._close(key, window, now_s)
            window = None
        if window is None:
            window = self._windows[key] = _Window(started_s=now_s)
        allowed = max(0, min(count, self.burst - window.count))
        window.count += count
        window.held_back += count - allowed
        return allowed > 0

    def ended(self, now_s: float) -> list[tuple[K, int, float]]:
        """(key, events held back, window length in s) for each window that ended with events held back."""
        for key, window in list(self._windows.items()):
            if now_s - window.started_s >= self.window_s:
                self._close(key, window, now_s)
        due, self._due = self._due, []
        return due

    def _close(self, key: K, window: _Window, now_s: float) -> None:
        del self._windows[key]
        if window.held_back:
            self._due.append((key, window.held_back, now_s - window.started_s))
