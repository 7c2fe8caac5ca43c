"""The hall controller's defences against floods: per-device token buckets, a bounded inbox, throttled logs.

Theory of operation: everything a device publishes reaches the controller through one broker connection,
so one faulty or hostile device that publishes as fast as it can must not (1) crowd out the other devices,
(2) make the controller's memory grow without limit, or (3) bury the operator's log. Each part here is pure
(time is passed in) except ``BoundedInbox``, which is the queue paho's thread puts messages on:

* ``DeviceLimiter``: a token bucket per device (``rate_per_s`` tokens a second, up to ``burst``). Every
  message a device publishes costs one token; a message without a token is not decoded, not decided and
  not stored. The shell answers at most one ``rate_limited`` error a second per device and drops the rest.
  Ids the hall's configuration does not know share one bucket per role, so spraying made-up ids buys
  nothing, and the number of buckets is bounded by the configuration.
* ``BoundedInbox``: a ``queue.Queue`` whose ``put`` never blocks (blocking paho's thread would stall
  keepalives and acknowledgements for every device). Beyond ``max_messages`` queued messages or
  ``max_bytes`` of queued payload, new ``Message`` items are dropped and counted; ``LinkUp``/``LinkDown``
  are always accepted, so the service always learns about its connection.
* ``Throttle``: at most ``burst`` log lines per key in each ``window_s``; what it held back is reported as one
  summary line per key when the window ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hallq.mqtt import Message

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Limits:
    """The controller's flood limits (``[limits]`` in the hall config; see ``config/hall.example.toml``).

    The defaults leave room for the load benchmarks (one simulated dispenser sending ~1,000 requests a
    second for two seconds); a hall can set them much lower: a kiosk sends well under one message a second.
    """

    device_messages_per_s: float = 200.0
    device_burst: int = 2000
    inbox_max_messages: int = 20_000
    inbox_max_bytes: int = 16 * 1024 * 1024


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

    def allow(self, key: K, now_s: float) -> bool:
        """True if the event may be logged; otherwise it is counted for the key's summary."""
        window = self._windows.get(key)
        if window is not None and now_s - window.started_s >= self.window_s:
            self._close(key, window, now_s)
            window = None
        if window is None:
            window = self._windows[key] = _Window(started_s=now_s)
        window.count += 1
        if window.count <= self.burst:
            return True
        window.held_back += 1
        return False

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


class BoundedInbox(queue.Queue[Any]):
    """The controller's inbox: never blocks the putting thread; bounded in messages and payload bytes.

    ``dropped`` counts the messages refused because the inbox was full (read it from the consuming thread;
    ``take_dropped()`` returns and resets it).
    """

    def __init__(self, *, max_messages: int, max_bytes: int,
                 on_drop: Callable[[Message], None] | None = None) -> None:
        super().__init__()
        self.on_drop = on_drop  # e.g. acknowledge it: a dropped message is given up, not left with the broker
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.queued_messages = 0
        self.queued_bytes = 0
        self.peak_messages = 0
        self._dropped = 0
        self._dropped_lock = threading.Lock()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if isinstance(item, Message):
            with self.mutex:
                full = (self.queued_messages >= self.max_messages
                        or self.queued_bytes + len(item.payload) > self.max_bytes)
            if full:
                with self._dropped_lock:
                    self._dropped += 1
                if self.on_drop is not None:
                    self.on_drop(item)
                return
        super().put(item, block=False)

    def take_dropped(self) -> int:
        with self._dropped_lock:
            dropped, self._dropped = self._dropped, 0
        return dropped

    # Queue's documented hooks, called with self.mutex held.
    def _put(self, item: Any) -> None:
        if isinstance(item, Message):
            self.queued_messages += 1
            self.queued_bytes += len(item.payload)
            self.peak_messages = max(self.peak_messages, self.queued_messages)
        super()._put(item)

    def _get(self) -> Any:
        item = super()._get()
        if isinstance(item, Message):
            self.queued_messages -= 1
            self.queued_bytes -= len(item.payload)
        return item
