"""Two clients acting as one counter, against a real Mosquitto and the controller process.

Each client is the counter's own code (``CounterLink``: the core that the console and the keypad share), on a
connection of its own, so both see the same retained counter state and press ``next`` at the same moment.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from counter import config as counter_config
from counter.core import Press
from counter.service import CounterLink
from hallq import wire
from hallq.mqtt import BrokerSettings
from hallq.topics import Topics
from testbed.broker import PrivateBroker
from tests.support import FIXTURES, HALL_ID, ControllerProcess, Probe

TOPICS = Topics(hall=HALL_ID)


class Desk:
    """One client acting as counter 1: a ``CounterLink`` whose inbox the test drains by hand."""

    def __init__(self, broker: PrivateBroker, client_id: str) -> None:
        cfg = counter_config.load(FIXTURES / "counter.toml")
        self.inbox: queue.Queue[Any] = queue.Queue()
        self._ids = (f"{client_id}-{n}" for n in itertools.count(1))
        self.request_ids: list[str] = []
        self.link = CounterLink(replace(cfg, client_id=client_id, broker=BrokerSettings(port=broker.port)),
                                inbox=self.inbox, new_id=self._new_id)

    def _new_id(self) -> str:
        self.request_ids.append(next(self._ids))
        return self.request_ids[-1]

    def pump(self, until: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.link.config.client_id}: condition not met; view {self.link.view}")
            with contextlib.suppress(queue.Empty):
                self.link.handle(self.inbox.get(timeout=min(left, 0.1)))

    def seen(self) -> str | None:
        """The number this desk shows as being served, once it waits for no answer."""
        view = self.link.view
        return None if view.ticket is None or view.pending is not None else view.ticket.number

    def press_next(self) -> str:
        """Press ``next``; the command's request id."""
        assert self.link.send(Press("next"))
        return self.request_ids[-1]


@pytest.fixture
def desks(broker: PrivateBroker, controller: ControllerProcess) -> Iterator[tuple[Desk, Desk]]:
    first, second = Desk(broker, "counter-1-desk-a"), Desk(broker, "counter-1-desk-b")
    for desk in (first, second):
        desk.link.start()
    try:
        for desk in (first, second):
            desk.pump(lambda d=desk: d.link.view.connected and d.link.view.status == "open")  # type: ignore[misc]
        yield first, second
    finally:
        for desk in (first, second):
            desk.link.stop()


def _reply(probe: Probe, request_id: str) -> wire.CounterReply:
    topic = TOPICS.counter_reply("1")
    message = probe.expect(lambda m: m.topic == topic and wire.CounterReply.decode(m.payload).request_id == request_id)
    return wire.CounterReply.decode(message.payload)


def test_two_desks_pressing_next_at_once_never_finish_a_ticket_one_has_not_seen(
    broker: PrivateBroker, desks: tuple[Desk, Desk]
) -> None:
    first, second = desks
    with Probe(broker, subscriptions=[TOPICS.dispenser_ticket("d1"), TOPICS.counter_reply("1"), TOPICS.calls(),
                                      TOPICS.counter_state("1")]) as probe:
        for _ in range(8):
            assert probe.request_ticket("d1", "A").ticket is not None
        called: list[str] = []
        for round_ in range(3):
            # Both desks show the same ticket (nothing, at first) before they press together.
            for desk in (first, second):
                desk.pump(lambda d=desk: d.seen() == (called[-1] if called else None))  # type: ignore[misc]
            before = first.seen()
            ids = [first.press_next(), second.press_next()]
            replies = [_reply(probe, rid) for rid in ids]
            accepted = [r for r in replies if r.ok]
            refused = [r for r in replies if not r.ok]
            assert len(accepted) == 1, f"round {round_}: {replies}"
            assert [r.error_code for r in refused] == ["conflict"], f"round {round_}: {replies}"
            assert accepted[0].ticket is not None
            number = accepted[0].ticket.number
            # The refusal changed nothing and tells the desk what the counter serves now.
            assert refused[0].ticket is not None and refused[0].ticket.number == number
            assert refused[0].error is not None and f"is serving {number}, not {before or 'nothing'}" in \
                refused[0].error.message
            call = wire.Call.decode(probe.on(TOPICS.calls()).payload)
            assert call.number == number and not call.recall
            called.append(number)
        # One call per round, each ticket called once; the last one is still being served (not finished unseen).
        assert called == ["A001", "A002", "A003"]
        with pytest.raises(AssertionError):
            probe.on(TOPICS.calls(), timeout_s=0.3)
        state = wire.CounterState.decode(
            probe.expect(lambda m: m.topic == TOPICS.counter_state("1")
                         and (s := wire.CounterState.decode(m.payload)).ticket is not None
                         and s.ticket.number == "A003").payload)
        assert {w.service: w.regular for w in state.waiting}["A"] == 5  # 8 issued, 3 called
    # Both desks show the counter as it is, whichever of them lost the race: each can act knowingly.
    for desk in (first, second):
        desk.pump(lambda d=desk: d.seen() == "A003")  # type: ignore[misc]
