"""The controller's intake: what every device sends arrives on a lane of its own, drained fairly.

Theory of operation: the controller receives each device's messages on a broker connection of its own (one
``MqttLink`` per device, see ``service.py``), and each connection's paho thread puts them on that device's
lane here. The service thread takes batches round-robin, one message per lane per turn, so a device that
sends a thousand messages cannot make another device's request wait behind them: neither in the broker
(each connection has its own queue there) nor here.

Backpressure instead of dropping: a lane holds at most ``lane_max_messages`` messages and
``lane_max_bytes`` of payload. When a lane is full, ``put`` blocks that lane's paho thread (and only it), so
the thread stops reading its socket, TCP pushes back on the broker, and the broker holds or drops the
excess of that one connection (QoS 1 up to its ``max_queued_messages``; QoS 0: Mosquitto drops what the
connection cannot take). A flood therefore costs the controller little: what waits is not even parsed.

Pausing: when a device has spent its rate allowance, the service ``pause``s its lane until the device has a
token again. A paused lane is not drained; what it held is handed back to be dropped (and acknowledged), and
it refills from its socket only up to its bound. ``LinkUp``/``LinkDown`` of the controller's own link also go
on a control queue that is always taken first and never bounded (they are rare and the service must see
them); any link's connection change wakes ``take``, so the service notices when every lane is up.

Thread-safety: one ``Condition`` guards everything; paho threads call ``put`` (through ``lane()``), the
service thread calls ``take``, ``pause`` and ``close``. Time is ``time.monotonic`` seconds unless a clock is
given (tests).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hallq.mqtt import InboxItem, LinkDown, LinkUp, Message

# A lane blocked longer than this waits again; the loop only re-checks ``close()``.
_BLOCK_POLL_S = 0.5


@dataclass(slots=True)
class _Lane:
    name: str
    items: deque[Message] = field(default_factory=deque)
    queued_bytes: int = 0
    paused_until: float | None = None
    ready: bool = False  # listed in Intake._ready
    connected: bool = False
    blocked: int = 0  # how many puts had to wait for room


class LaneInbox:
    """What a device's ``MqttLink`` puts into: messages go to the lane, link events update its state (and,
    for the lane of the controller's own link, also go on the control queue)."""

    def __init__(self, intake: Intake, name: str, *, control: bool) -> None:
        self._intake = intake
        self.name = name
        self._control = control

    def put(self, item: Any) -> None:
        if isinstance(item, Message):
            self._intake._put_message(self.name, item)
        elif isinstance(item, LinkUp | LinkDown):
            self._intake._set_connected(self.name, isinstance(item, LinkUp), item if self._control else None)


class Intake:
    """Per-device lanes with round-robin ``take``; see the module doc."""

    def __init__(self, *, lane_max_messages: int, lane_max_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if lane_max_messages < 1 or lane_max_bytes < 1:
            raise ValueError("a lane must hold at least one message and one byte")
        self.lane_max_messages = lane_max_messages
        self.lane_max_bytes = lane_max_bytes
        self._clock = clock
        self._cond = threading.Condition()
        self._lanes: dict[str, _Lane] = {}
        self._ready: deque[str] = deque()
        self._control: deque[LinkUp | LinkDown] = deque()
        self._closed = False
        self._woken = False
        self.queued_messages = 0
        self.peak_messages = 0

    # --- the producers' side (paho threads) ------------------------------------------------------------

    def lane(self, name: str, *, control: bool = False) -> LaneInbox:
        """The inbox of a new lane ``name`` (a link). With ``control``, the link's ``LinkUp``/``LinkDown`` are
        also queued for the service (the controller's own link, whose connection state it acts on)."""
        with self._cond:
            if name in self._lanes:
                raise ValueError(f"lane {name!r} exists already")
            self._lanes[name] = _Lane(name)
        return LaneInbox(self, name, control=control)

    def _put_message(self, name: str, message: Message) -> None:
        size = len(message.payload)
        with self._cond:
            lane = self._lanes[name]
            waited = False
            # One message always fits an empty lane, whatever its size, so a lane can never deadlock.
            while lane.items and (len(lane.items) >= self.lane_max_messages
                                  or lane.queued_bytes + size > self.lane_max_bytes):
                if self._closed:
                    return  # not acknowledged: the broker delivers it again after the restart
                if not waited:
                    lane.blocked += 1
                    waited = True
                self._cond.wait(_BLOCK_POLL_S)
            if self._closed:
                return
            lane.items.append(message)
            lane.queued_bytes += size
            self.queued_messages += 1
            self.peak_messages = max(self.peak_messages, self.queued_messages)
            if not lane.ready and lane.paused_until is None:
                lane.ready = True
                self._ready.append(name)
            self._cond.notify_all()

    def _set_connected(self, name: str, connected: bool, event: LinkUp | LinkDown | None) -> None:
        with self._cond:
            self._lanes[name].connected = connected
            if event is not None:
                self._control.append(event)
            self._woken = True  # the service re-checks readiness now, not at its next tick
            self._cond.notify_all()

    # --- the consumer's side (the service thread) --------------------------------------------------------

    def take(self, max_items: int, timeout_s: float) -> list[InboxItem]:
        """Up to ``max_items``: every queued link event first, then messages round-robin over the lanes that
        are not paused. Waits up to ``timeout_s`` for the first item; ``[]`` if none came."""
        deadline = self._clock() + timeout_s
        with self._cond:
            while True:
                now = self._clock()
                wake = self._resume_paused(now)
                if self._control or self._ready or self._closed or self._woken:
                    break
                wait_s = min(deadline, wake) - now
                if now >= deadline:
                    return []
                self._cond.wait(max(0.0, wait_s))
            self._woken = False
            batch: list[InboxItem] = list(self._control)
            self._control.clear()
            while self._ready and len(batch) < max_items:
                name = self._ready.popleft()
                lane = self._lanes[name]
                message = lane.items.popleft()
                lane.queued_bytes -= len(message.payload)
                self.queued_messages -= 1
                batch.append(message)
                if lane.items:
                    self._ready.append(name)
                else:
                    lane.ready = False
            self._cond.notify_all()  # room on the lanes we took from
            return batch

    def pause(self, name: str, until_s: float) -> list[Message]:
        """Stop draining lane ``name`` until ``until_s``; returns (and removes) what it held, to be dropped."""
        with self._cond:
            lane = self._lanes[name]
            lane.paused_until = until_s if lane.paused_until is None else max(lane.paused_until, until_s)
            if lane.ready:
                self._ready.remove(name)
                lane.ready = False
            dropped = list(lane.items)
            lane.items.clear()
            lane.queued_bytes = 0
            self.queued_messages -= len(dropped)
            self._cond.notify_all()
            return dropped

    def close(self) -> None:
        """Release every blocked ``put`` (their messages stay unacknowledged) and end waits in ``take``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _resume_paused(self, now: float) -> float:
        """Make lanes whose pause ended drainable again; returns when the next pause ends (inf if none)."""
        wake = float("inf")
        for lane in self._lanes.values():
            if lane.paused_until is None:
                continue
            if now >= lane.paused_until:
                lane.paused_until = None
                if lane.items and not lane.ready:
                    lane.ready = True
                    self._ready.append(lane.name)
            else:
                wake = min(wake, lane.paused_until)
        return wake

    # --- figures -------------------------------------------------------------------------------------------

    def disconnected(self) -> list[str]:
        """The lanes whose link is not connected (and subscribed) right now."""
        with self._cond:
            return [lane.name for lane in self._lanes.values() if not lane.connected]

    def paused(self) -> list[str]:
        with self._cond:
            return [lane.name for lane in self._lanes.values() if lane.paused_until is not None]

    def blocked_puts(self) -> dict[str, int]:
        """Per lane, how many messages had to wait for room (a sign of a flood or a slow controller)."""
        with self._cond:
            return {lane.name: lane.blocked for lane in self._lanes.values() if lane.blocked}
