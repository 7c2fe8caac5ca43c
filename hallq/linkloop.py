"""Many MQTT links, one thread: the caller's.

Theory of operation: the controller keeps one broker connection per device it receives from (the broker then
queues each device's messages apart, so a flooding device cannot delay another: see
``hall_controller/intake.py``). Given a thread each, a hall of 100 devices ran 100 paho threads that fought for
the interpreter, and every message crossed from one of them to the service thread and back. A ``LinkLoop``
drives all the links' sockets from the one thread that also runs the service: ``poll()`` waits on every socket
at once (epoll), lets paho read what arrived (its callbacks put messages on the links' inboxes, on this same
thread), writes what could not be written at once, pings on time and reconnects what was lost. A publish made
between polls is written at once by paho itself, on this thread, so a reply leaves the moment it is decided.

Reading is the caller's to allow: ``may_read(client_id)`` is asked before a socket is watched for input. A
link whose inbox is full or paused is not read at all, so its messages wait in the kernel and then in the broker
(backpressure on that one device), and nothing it sends is even parsed.

Connecting: the first link (the lead, the controller's own) connects first; the others try only while it is
connected, since they all reach the same broker: while the broker is unreachable one attempt fails, not a
hundred. An attempt blocks up to ``connect_timeout_s``; the hall's broker runs beside the controller, so it
is a loopback connect (refused or accepted at once). After a loss a link waits 1, 2, 4 ... s (up to the
broker's ``reconnect_max_s``) before trying again, as paho's own loop does.

Not thread-safe: every method runs on the one thread, except ``MqttLink.up`` which others may read.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hallq.mqtt import MqttLink

log = logging.getLogger(__name__)

KEEPALIVE_CHECK_S = 1.0  # how often every link's pings and timeouts are looked at


@dataclass(slots=True, eq=False)  # compared and hashed by identity
class _Driven:
    link: MqttLink
    sock: Any = None  # the socket registered with the selector, None if none
    events: int = 0  # what it is registered for
    retry_at: float = 0.0  # when to try to connect again (while it has no socket)
    delay_s: float = 0.0  # the current backoff


class LinkLoop:
    """Drives ``links`` (the first one is the lead) from the calling thread; see the module doc."""

    def __init__(self, links: Sequence[MqttLink], *, may_read: Callable[[str], bool] = lambda _client_id: True,
                 connect_timeout_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not links:
            raise ValueError("a LinkLoop needs at least one link")
        self._driven = [_Driven(link) for link in links]
        self._may_read = may_read
        self._connect_timeout_s = connect_timeout_s
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self._next_keepalive = 0.0
        self._started = False

    @property
    def links(self) -> list[MqttLink]:
        return [d.link for d in self._driven]

    def start(self) -> None:
        """Configure every link and connect the lead now (the others follow in ``poll()``)."""
        for driven in self._driven:
            driven.link.configure(connect_timeout_s=self._connect_timeout_s)
        self._started = True
        self._connect_due(self._clock())

    def poll(self, timeout_s: float) -> None:
        """One round: connect what is due, wait up to ``timeout_s`` for any socket, read and write what is
        ready, ping what is due. Returns early as soon as something was read or written."""
        now = self._clock()
        self._connect_due(now)
        pending = self._watch()
        if pending:
            timeout_s = 0.0
        else:
            waits = [d.retry_at - now for d in self._driven if d.sock is None and self._may_connect(d)]
            timeout_s = max(0.0, min([timeout_s, self._next_keepalive - now, *waits]))
        ready = self._selector.select(timeout_s) if self._selector.get_map() else _sleep(timeout_s)
        for key, mask in ready:
            driven: _Driven = key.data
            if mask & selectors.EVENT_READ and driven in pending:
                pending.discard(driven)
            ok = True
            if mask & selectors.EVENT_READ:
                ok = driven.link.read(more=self._reader(driven))
            if ok and mask & selectors.EVENT_WRITE:
                ok = driven.link.write()
            if not ok:
                self._lost(driven)
        for driven in pending:  # TLS bytes already decrypted: the kernel does not call them readable
            if (driven.link.socket() is not None and self._may_read(driven.link.client_id)
                    and not driven.link.read(more=self._reader(driven))):
                self._lost(driven)
        now = self._clock()
        if now >= self._next_keepalive:
            self._next_keepalive = now + KEEPALIVE_CHECK_S
            for driven in self._driven:
                if driven.link.socket() is not None and not driven.link.keepalive():
                    self._lost(driven)

    def stop(self, *, timeout_s: float = 2.0) -> None:
        """Publish every link's ``offline``, disconnect them all and send it; returns within ``timeout_s``."""
        for driven in self._driven:
            if driven.link.socket() is not None:
                driven.link.disconnect()
        deadline = self._clock() + timeout_s
        while any(d.link.socket() is not None and d.link.wants_write() for d in self._driven):
            if self._clock() >= deadline:
                break
            for driven in self._driven:
                if driven.link.socket() is not None and driven.link.wants_write():
                    driven.link.write()
            time.sleep(0.005)  # a kernel send buffer full on stop: rare, and bounded by the deadline
        for driven in self._driven:
            self._unregister(driven)
        self._selector.close()
        self._started = False

    # --- inside -------------------------------------------------------------------------------------------

    def _reader(self, driven: _Driven) -> Callable[[], bool]:
        client_id = driven.link.client_id
        return lambda: self._may_read(client_id)

    def _may_connect(self, driven: _Driven) -> bool:
        if driven.link.given_up or not self._started:
            return False
        lead = self._driven[0]
        return driven is lead or lead.link.socket() is not None

    def _connect_due(self, now: float) -> None:
        for driven in self._driven:
            if driven.link.socket() is not None or now < driven.retry_at or not self._may_connect(driven):
                continue
            if not driven.link.connect_now():
                self._backoff(driven, self._clock())
                if driven is self._driven[0]:
                    return  # the broker is not there: no point trying the others now

    def _backoff(self, driven: _Driven, now: float) -> None:
        ceiling = float(driven.link.broker.reconnect_max_s)
        driven.delay_s = min(ceiling, driven.delay_s * 2 if driven.delay_s else 1.0)
        driven.retry_at = now + driven.delay_s

    def _lost(self, driven: _Driven) -> None:
        """The link's connection is gone (paho closed the socket and queued ``LinkDown``): try again later."""
        self._unregister(driven)
        if driven.link.socket() is None:
            self._backoff(driven, self._clock())

    def _watch(self) -> set[_Driven]:
        """Register each connected socket for what it needs now; returns the links with TLS bytes pending."""
        for driven in self._driven:
            # Forget closed sockets first: a new socket elsewhere may have been given the same descriptor.
            if driven.sock is not None and driven.link.socket() is not driven.sock:
                if driven.link.socket() is None:
                    self._lost(driven)
                else:
                    self._unregister(driven)
        pending: set[_Driven] = set()
        for driven in self._driven:
            link = driven.link
            sock = link.socket()
            if sock is None:
                continue
            if link.up.is_set():
                driven.delay_s = 0.0  # it got all the way up: the next loss starts the backoff afresh
            events = selectors.EVENT_READ if self._may_read(link.client_id) else 0
            if link.wants_write():
                events |= selectors.EVENT_WRITE
            if sock is not driven.sock:
                if events:
                    self._selector.register(sock, events, driven)
                    driven.sock, driven.events = sock, events
                else:
                    driven.sock = sock
                    driven.events = 0
            elif events != driven.events:
                if driven.events and events:
                    self._selector.modify(sock, events, driven)
                elif events:
                    self._selector.register(sock, events, driven)
                else:
                    self._selector.unregister(sock)
                driven.events = events
            if events & selectors.EVENT_READ and link.pending_bytes() > 0:
                pending.add(driven)
        return pending

    def _unregister(self, driven: _Driven) -> None:
        if driven.sock is not None and driven.events:
            # Closed by paho already: the selector may have forgotten it with its file descriptor.
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(driven.sock)
        driven.sock, driven.events = None, 0


def _sleep(timeout_s: float) -> list[tuple[selectors.SelectorKey, int]]:
    """Nothing to watch (every link down): wait as a select would have."""
    time.sleep(timeout_s)
    return []
