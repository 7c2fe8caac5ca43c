"""The counter's shell: MQTT in and out around the pure core, and the keypad's main loop.

Wiring: ``CounterLink`` owns one ``MqttLink`` (client id = the counter's device id, retained presence on
``status/{client_id}`` with role ``counter``), subscribed to the counter's ``reply`` and retained ``state``
topics and to the hall's retained ``board`` (for the names of services a ticket can be transferred to).
Commands go out on ``counter/{id}/command`` at QoS 1. Payloads are decoded here, at the boundary: a payload
that does not decode is logged and dropped, the core only sees typed values. A link whose session another
client took over (one account used by two processes) stops connecting, rather than take it back and fight: the
core then says why, the keypad flashes its LED fast, and only a restart connects again.

A reply may carry the citizen's profile (personal data): the console's core keeps it for its screen, the
keypad's (``keep_profiles=False``) drops it on arrival. No log line here holds any of it: a reply names its
profile only by ``hallq.cards.reference_text``, a profile command only by the names of the fields it sets.

``KeypadService.run()`` is the keypad's one thread: it takes key presses and rating presses (from gpiozero's
thread) and MQTT items (from paho's thread) off one inbox, drives the core, and mirrors its view on the LED and
buzzer, and on the rating buttons' lamps when ``[rating]`` gives their pins (a rating's outcome goes to the
lamps, never to the clerk's buzzer). It
sends ``READY=1`` once connected, and ``WATCHDOG=1`` from this loop only while it keeps up with its inbox: a
loop that turns but falls ``BACKLOG_LIMIT`` items behind is as stuck as one that does not turn, and systemd
restarts it. ``stop()`` only sets an event (the loop looks at it at least every ``TICK_S``): it is called
from a signal handler, which must not take a lock the interrupted loop may hold, like the inbox's.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from counter.config import CounterConfig
from counter.core import CounterCore, CounterView, Feedback, Press
from counter.keypad import Keypad, KeyPress
from counter.rating import RatingPanel, RatingPress
from hallq import systemd, wire
from hallq.cards import reference_text
from hallq.errors import PayloadError
from hallq.mqtt import LinkDown, LinkUp, Message, MqttLink
from hallq.topics import TopicKind, Topics

log = logging.getLogger(__name__)

TICK_S = 0.2
# Items waiting in the inbox beyond which the loop counts as not keeping up (and stops feeding the watchdog).
# A keypad's inbox holds a few items: presses, the counter's state, the board.
BACKLOG_LIMIT = 500


class CounterLink:
    """The counter's contract: typed commands out, replies/state/board in, all through one core."""

    def __init__(self, config: CounterConfig, *, inbox: queue.Queue[Any], debounce_s: float = 0.0,
                 keep_profiles: bool = True, rating_wait_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.config = config
        self.topics = Topics(hall=config.hall, base=config.base_topic)
        self.core = CounterCore(counter=config.counter, debounce_s=debounce_s,
                                reply_timeout_s=config.reply_timeout_s, keep_profiles=keep_profiles,
                                rating_wait_s=rating_wait_s)
        self.clock = clock
        self.new_id = new_id
        process = f"counter {config.counter}, {socket.gethostname()} pid {os.getpid()}"
        self.link = MqttLink(
            client_id=config.client_id, broker=config.broker, inbox=inbox,
            subscriptions=[(self.topics.counter_reply(config.counter), 1),
                           (self.topics.counter_state(config.counter), 1), (self.topics.board(), 1)],
            presence_topic=self.topics.status(config.client_id),
            # Host and pid make this process's presence its own: how the link tells another process on its account.
            online_payload=wire.Presence(state="online", role="counter", detail=process).encode(),
            offline_payload=wire.Presence(state="offline", role="counter", detail=process).encode(),
            stop_when_taken_over=True, gone=_gone,
        )

    @property
    def view(self) -> CounterView:
        return self.core.view

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()

    def send(self, press: Press) -> bool:
        """Publish the command for ``press`` unless the core refused or dropped it; True if sent."""
        command = self.core.press(press, now_s=self.clock(), request_id=self.new_id())
        if command is None:
            return False
        # A profile edit is named by its fields only: their values are personal data.
        fields = ",".join(sorted(command.profile.to_obj())) if command.profile is not None else "-"
        log.info("sent command counter=%s action=%s request=%s ticket=%s service=%s fields=%s rating=%s",
                 self.config.counter, command.action, command.request_id, command.ticket or "-",
                 command.service or "-", fields, command.rating or "-")
        self.link.publish(self.topics.counter_command(self.config.counter), command.encode())
        return True

    def handle(self, item: Message | LinkUp | LinkDown) -> Feedback | None:
        """Feed one inbox item to the core; the feedback when it settled our command."""
        if isinstance(item, LinkUp):
            self.core.on_link(up=True)
            return None
        if isinstance(item, LinkDown):
            self.core.on_link(up=False, taken_over=item.taken_over)
            if not item.taken_over:
                return None
            log.error("stopped connecting counter=%s client=%s: another process logged in with this account; only "
                      "one console or keypad per counter account (close the other one, or give this desk its own "
                      "counter id); restart this one once the other has gone", self.config.counter,
                      self.config.client_id)
            notice = self.core.view.notice
            return None if notice is None else Feedback(ok=False, notice=notice)
        parsed = self.topics.parse(item.topic)
        try:
            if parsed is None:
                return None
            if parsed.kind is TopicKind.COUNTER_REPLY:
                reply = wire.CounterReply.decode(item.payload)
                feedback = self.core.on_reply(reply, now_s=self.clock())
                if feedback is not None:
                    log.log(logging.INFO if feedback.ok else logging.WARNING,
                            "reply counter=%s action=%s ok=%s ticket=%s code=%s profile=%s", self.config.counter,
                            reply.action, reply.ok, reply.ticket.number if reply.ticket else "-",
                            reply.error_code or "-", reference_text(reply.profile.ref) if reply.profile else "-")
                return feedback
            if parsed.kind is TopicKind.COUNTER_STATE:
                self.core.on_state(wire.CounterState.decode(item.payload))
            elif parsed.kind is TopicKind.BOARD:
                self.core.on_board(wire.Board.decode(item.payload))
        except PayloadError as exc:
            log.warning("ignored undecodable message topic=%s code=%s: %s", item.topic, exc.code, exc.message)
        return None

    def tick(self) -> Feedback | None:
        feedback = self.core.tick(now_s=self.clock())
        if feedback is not None:
            log.warning("no reply counter=%s within %.1f s", self.config.counter, self.config.reply_timeout_s)
        return feedback


class KeypadService:
    """The keypad's main loop. ``run()`` blocks until ``stop()``; ``pin_factory`` as for ``Keypad``."""

    def __init__(self, config: CounterConfig, *, pin_factory: Any = None) -> None:
        if config.keypad is None:
            raise ValueError("KeypadService needs a [keypad] table")
        self.inbox: queue.Queue[Any] = queue.Queue()
        # The pins first: KeypadError on a machine without usable GPIO, before anything else is set up.
        self.keypad = Keypad(config.keypad, pin_factory=pin_factory, inbox=self.inbox)
        self.rating: RatingPanel | None = None
        # Rating windows only with buttons to rate on (the keypad has no screen to offer them otherwise).
        rating_wait_s = config.rating.wait_s if config.rating.buttons else None
        try:
            if rating_wait_s is not None:
                self.rating = RatingPanel(config.rating, pin_factory=pin_factory, inbox=self.inbox)
            # No screen, so no profile: the keypad's core drops every one on arrival.
            self.counter = CounterLink(config, inbox=self.inbox, debounce_s=config.keypad.debounce_s,
                                       keep_profiles=False, rating_wait_s=rating_wait_s)
        except BaseException:
            if self.rating is not None:
                self.rating.close()
            self.keypad.close()
            raise
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Ask ``run()`` to finish within ``TICK_S``; safe from a signal handler or another thread."""
        self._stopping.set()

    @property
    def healthy(self) -> bool:
        """True while the loop keeps up with its inbox (fewer than ``BACKLOG_LIMIT`` items waiting)."""
        return self.inbox.qsize() < BACKLOG_LIMIT

    def run(self) -> None:
        self.counter.start()
        notifier = systemd.ServiceNotifier()
        log.info("counter keypad running counter=%s client=%s", self.counter.config.counter,
                 self.counter.config.client_id)
        try:
            while not self._stopping.is_set():
                try:
                    item = self.inbox.get(timeout=TICK_S)
                except queue.Empty:
                    item = None
                feedback: Feedback | None = None
                if isinstance(item, KeyPress):
                    self.counter.send(Press(item.action))
                elif isinstance(item, RatingPress):
                    self.counter.send(Press("rate", rating=item.level))
                elif isinstance(item, Message | LinkUp | LinkDown):
                    feedback = self.counter.handle(item)
                feedback = feedback or self.counter.tick()
                if feedback is not None and feedback.action == "rate":
                    if self.rating is not None:
                        self.rating.signal(feedback)
                elif feedback is not None:
                    self.keypad.signal(feedback)
                self.keypad.show(self.counter.view)
                if self.rating is not None:
                    self.rating.show(self.counter.view)
                # Taken over is as settled as connected: not ready, systemd would restart it into the fight.
                if self.counter.view.connected or self.counter.view.taken_over:
                    notifier.ready()
                notifier.tick(time.monotonic(), healthy=self.healthy)
        finally:
            notifier.stopping()
            self.counter.stop()
            self.keypad.close()
            if self.rating is not None:
                self.rating.close()
            log.info("counter keypad stopped")


_PROCESS = re.compile(r", (?P<host>\S+) pid (?P<pid>\d+)$")


def _gone(payload: bytes) -> bool:
    """Whether a counter presence names a process of this machine that no longer runs (the previous run, whose
    last will the broker kept over a power cut or a crash): no other console is fighting for the account."""
    try:
        detail = wire.Presence.decode(payload).detail or ""
    except PayloadError:
        return False
    match = _PROCESS.search(detail)
    if match is None or match["host"] != socket.gethostname():
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False
