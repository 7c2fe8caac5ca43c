"""The controller's intake: each device's messages wait in an inbox of their own, drained fairly.

Theory of operation: the controller receives each device's messages on a broker connection of its own (see
``connections.py``), and each connection puts them in that device's inbox here. The service takes batches
round-robin, one message per inbox per turn, so a device that sends a thousand messages cannot make another
device's request wait behind them: neither in the broker (each connection has its own queue there) nor here.

Backpressure instead of dropping: an inbox holds ``max_messages`` messages and ``max_bytes`` of payload. A
full inbox is not read (``accepts`` is False, and the ``LinkLoop`` stops watching that connection's socket), so
its messages wait in the kernel, TCP pushes back on the broker, and the broker holds or drops the excess of
that one connection (QoS 1 up to its ``max_queued_messages``; QoS 0: Mosquitto drops what the connection cannot
take). A flood therefore costs the controller little: what waits is not even parsed. One message past the bound
is accepted (a packet being read is finished), never more: ``accepts`` says no before the next read.

Pausing: when a device has spent its rate allowance, the service ``pause``s its inbox until the device has a
token again. A paused inbox is neither drained nor read; what it held is handed back to be dropped (and
acknowledged). ``LinkUp``/``LinkDown`` of the controller's own link also go on a control queue that is always
taken first (they are rare and the service must see them).

Threads: none of its own. Connections, ``take`` and ``pause`` all run on the controller's one thread. Time is
``time.monotonic`` seconds unless a clock is given (tests).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hallq.mqtt import InboxItem, LinkDown, LinkUp, Message


@dataclass(slots=True)
class _Inbox:
    name: str
    items: deque[Message] = field(default_factory=deque)
    queued_bytes: int = 0
    paused_until: float | None = None
    ready: bool = False  # listed in Intake._ready
    connected: bool = False
    full: bool = False
    full_count: int = 0  # how many times it filled up (a sign of a flood or a slow controller)


class DeviceInbox:
    """What one connection puts into: messages go to its inbox, link events update the inbox's state (and,
    for the controller's own link, also go on the control queue)."""

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
    """Per-device inboxes with round-robin ``take``; see the module doc."""

    def __init__(self, *, max_messages: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise ValueError("an inbox must hold at least one message and one byte")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._clock = clock
        self._inboxes: dict[str, _Inbox] = {}
        self._ready: deque[str] = deque()
        self._control: deque[LinkUp | LinkDown] = deque()
        self.queued_messages = 0
        self.peak_messages = 0

    def inbox(self, name: str, *, control: bool = False) -> DeviceInbox:
        """The inbox of a new connection ``name``. With ``control``, the link's ``LinkUp``/``LinkDown`` are also
        queued for the service (the controller's own link, whose connection state it acts on)."""
        if name in self._inboxes:
            raise ValueError(f"inbox {name!r} exists already")
        self._inboxes[name] = _Inbox(name)
        return DeviceInbox(self, name, control=control)

    def accepts(self, name: str) -> bool:
        """Whether connection ``name`` may be read now: its inbox is neither full nor paused."""
        inbox = self._inboxes[name]
        if inbox.paused_until is not None:
            if self._clock() < inbox.paused_until:
                return False
            self._resume(inbox)
        full = bool(inbox.items) and (len(inbox.items) >= self.max_messages or inbox.queued_bytes >= self.max_bytes)
        if full and not inbox.full:
            inbox.full_count += 1
        inbox.full = full
        return not full

    def _put_message(self, name: str, message: Message) -> None:
        inbox = self._inboxes[name]
        inbox.items.append(message)
        inbox.queued_bytes += len(message.payload)
        self.queued_messages += 1
        self.peak_messages = max(self.peak_messages, self.queued_messages)
        if not inbox.ready and inbox.paused_until is None:
            inbox.ready = True
            self._ready.append(name)

    def _set_connected(self, name: str, connected: bool, event: LinkUp | LinkDown | None) -> None:
        self._inboxes[name].connected = connected
        if event is not None:
            self._control.append(event)

    def has_items(self) -> bool:
        """Whether ``take`` would return something now (the service then does not wait for sockets)."""
        return bool(self._control or self._ready)

    def take(self, max_items: int) -> list[InboxItem]:
        """Up to ``max_items``: every queued link event first, then messages round-robin over the inboxes that
        are not paused. Never waits; ``[]`` if nothing is queued."""
        self.resume_due()
        batch: list[InboxItem] = list(self._control)
        self._control.clear()
        while self._ready and len(batch) < max_items:
            name = self._ready.popleft()
            inbox = self._inboxes[name]
            message = inbox.items.popleft()
            inbox.queued_bytes -= len(message.payload)
            self.queued_messages -= 1
            batch.append(message)
            if inbox.items:
                self._ready.append(name)
            else:
                inbox.ready = False
        return batch

    def pause(self, name: str, until_s: float) -> list[Message]:
        """Stop draining and reading inbox ``name`` until ``until_s``; returns (and removes) what it held, to be
        dropped."""
        inbox = self._inboxes[name]
        inbox.paused_until = until_s if inbox.paused_until is None else max(inbox.paused_until, until_s)
        if inbox.ready:
            self._ready.remove(name)
            inbox.ready = False
        dropped = list(inbox.items)
        inbox.items.clear()
        inbox.queued_bytes = 0
        self.queued_messages -= len(dropped)
        return dropped

    def resume_due(self) -> float:
        """Make inboxes whose pause ended drainable again; returns when the next pause ends (inf if none)."""
        now = self._clock()
        wake = float("inf")
        for inbox in self._inboxes.values():
            if inbox.paused_until is None:
                continue
            if now >= inbox.paused_until:
                self._resume(inbox)
            else:
                wake = min(wake, inbox.paused_until)
        return wake

    def _resume(self, inbox: _Inbox) -> None:
        inbox.paused_until = None
        if inbox.items and not inbox.ready:
            inbox.ready = True
            self._ready.append(inbox.name)

    # --- figures -------------------------------------------------------------------------------------------

    def disconnected(self) -> list[str]:
        """The connections that are not up (connected and subscribed) right now."""
        return [inbox.name for inbox in self._inboxes.values() if not inbox.connected]

    def paused(self) -> list[str]:
        return [inbox.name for inbox in self._inboxes.values() if inbox.paused_until is not None]

    def times_full(self) -> dict[str, int]:
        """Per connection, how many times its inbox filled up and its reading stopped."""
        return {inbox.name: inbox.full_count for inbox in self._inboxes.values() if inbox.full_count}
