"""A citizen rates a visit on the counter's buttons, end to end: the keypad's ``KeypadService`` on gpiozero's
MockFactory pins, logged in with counter 1's provisioned account on the production broker config (its accounts
and ACL), a real Mosquitto, the real controller and its ledger."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from counter import config as counter_config
from counter.core import NO_ANSWER, NO_RATING, CounterView
from counter.service import KeypadService
from hall_controller.ledger import LEDGER_FILE
from hallq import wire
from hallq.labels import ERROR_LABELS
from hallq.mqtt import BrokerSettings
from tests.support import FIXTURES, ControllerProcess, wait_until
from tests.test_broker_security_broker import (  # noqa: F401 - the secured hall fixture
    NOT_AUTHORIZED,
    SecuredHall,
    _account,
    _controller_config,
    hall,
)

NEXT, COMPLETE = 17, 22
VERY_SATISFIED, SATISFIED = 5, 6
LAMPS = (12, 16, 20, 21)
RATING = """
[rating]
wait_s = 20
very_satisfied_pin = "GPIO5"
satisfied_pin = "GPIO6"
neutral_pin = "GPIO13"
dissatisfied_pin = "GPIO19"
very_satisfied_led_pin = "GPIO12"
satisfied_led_pin = "GPIO16"
neutral_led_pin = "GPIO20"
dissatisfied_led_pin = "GPIO21"
"""


@contextlib.contextmanager
def _keypad(hall: SecuredHall, tmp_path: Path) -> Iterator[tuple[KeypadService, MockFactory]]:  # noqa: F811
    """Counter 1's keypad with its rating buttons, logged in as ``counter-1``, its loop on a thread."""
    path = tmp_path / "counter.toml"
    path.write_text((FIXTURES / "counter.toml").read_text(encoding="utf-8") + RATING, encoding="utf-8")
    cfg = counter_config.load(path)
    # A short reply timeout: the test makes one answer late (the controller stopped for a moment).
    cfg = replace(cfg, reply_timeout_s=0.5, broker=BrokerSettings(
        port=hall.broker.port, username="counter-1", password=hall.password("counter-1")))
    factory = MockFactory()
    service = KeypadService(cfg, pin_factory=factory)
    thread = threading.Thread(target=service.run, name="keypad")
    thread.start()
    try:
        yield service, factory
    finally:
        service.stop()
        thread.join(5)
        factory.reset()


def _press(factory: MockFactory, pin: int) -> None:
    factory.pin(pin).drive_low()
    factory.pin(pin).drive_high()


def _lamps(factory: MockFactory) -> list[bool]:
    return [bool(factory.pin(pin).state) for pin in LAMPS]


def _times_lit(factory: MockFactory) -> list[int]:
    return [sum(1 for state in factory.pin(pin).states if state.state) for pin in LAMPS]


def _notice(service: KeypadService) -> str:
    notice = service.counter.view.notice
    return "" if notice is None else notice.text


def test_a_citizen_rates_once_on_the_buttons_and_no_other_counter_can_rate_for_them(
    hall: SecuredHall, tmp_path: Path  # noqa: F811 - the secured hall fixture
) -> None:
    t = hall.topics
    with ControllerProcess(config=_controller_config(hall, tmp_path), broker=hall.broker,
                           state_dir=tmp_path / "state") as controller, \
            _account(hall, "d1") as d1, _account(hall, "counter-2") as counter2, \
            _keypad(hall, tmp_path) as (service, factory):
        assert controller.proc is not None
        d1.subscribe(t.dispenser_ticket("d1"))
        counter2.subscribe(t.counter_reply("2"))
        rid = uuid.uuid4().hex
        assert d1.publish(t.dispenser_request("d1"), wire.TicketRequest(request_id=rid, service="A").encode()) in (0, 16)
        ticket = wire.TicketReply.decode(bytes(d1.expect(t.dispenser_ticket("d1")).payload)).ticket
        assert ticket is not None

        def view() -> CounterView:  # read afresh each time: the keypad's thread replaces it
            return service.counter.view

        wait_until(lambda: view().connected and view().status == "open", timeout_s=5, what="keypad connected")

        # The clerk calls and completes the citizen: the rating buttons light up.
        _press(factory, NEXT)
        called = wait_until(lambda: view().ticket, timeout_s=5, what="ticket called")
        assert called is not None and called.id == ticket.id
        assert _lamps(factory) == [False] * 4
        _press(factory, COMPLETE)
        wait_until(lambda: _lamps(factory) == [True] * 4, timeout_s=5, what="rating buttons lit after complete")

        # Counter 2's account may not publish on counter 1's command topic: the broker refuses it (MQTT 5 reason
        # 135), so the controller never sees it. On its own topic, its "rate" is refused: not its citizen.
        spy = wire.CounterCommand(request_id="spy-1", action="rate", ticket=ticket.id, rating="dissatisfied")
        assert counter2.publish(t.counter_command("1"), spy.encode()) == NOT_AUTHORIZED
        own = wire.CounterCommand(request_id="spy-2", action="rate", ticket=ticket.id, rating="dissatisfied")
        assert counter2.publish(t.counter_command("2"), own.encode()) in (0, 16)
        refused = wire.CounterReply.decode(bytes(counter2.expect(t.counter_reply("2")).payload))
        assert (refused.request_id, refused.error_code) == ("spy-2", "not_rateable")

        # The citizen presses "Hài lòng" while the controller is busy (stopped): no answer in time, the buttons
        # light again, and the citizen presses "Rất hài lòng" too. Both go out; the first one counts.
        os.kill(controller.proc.pid, signal.SIGSTOP)
        try:
            _press(factory, SATISFIED)
            wait_until(lambda: NO_ANSWER in _notice(service) and _lamps(factory) == [True] * 4, timeout_s=5,
                       what="no answer, the buttons lit again")
            _press(factory, VERY_SATISFIED)
            wait_until(lambda: view().pending == "rate", timeout_s=5, what="the second rating sent")
        finally:
            os.kill(controller.proc.pid, signal.SIGCONT)
        already = f"{ERROR_LABELS[wire.ErrorCode.ALREADY_RATED]}: {ticket.number} was rated already"
        wait_until(lambda: _notice(service).startswith(already), timeout_s=5, what="the second rating refused")
        # Lit after complete, lit again after no answer, then the three blinks of "thank you" for the first
        # rating's late acceptance, and dark.
        wait_until(lambda: _times_lit(factory) == [1 + 1 + 3] * 4 and _lamps(factory) == [False] * 4, timeout_s=3,
                   what="thank you blinked, then the buttons dark")
        assert view().rating is None
        # One more press now: the buttons are dark, nothing is sent.
        _press(factory, SATISFIED)
        wait_until(lambda: _notice(service) == NO_RATING, timeout_s=5, what="a dark button refused at the desk")
        log = controller.log_path.read_text(encoding="utf-8")

    with contextlib.closing(sqlite3.connect(f"file:{tmp_path / 'state' / LEDGER_FILE}?mode=ro", uri=True)) as db:
        ratings = db.execute("SELECT ticket_id, number, service, counter, level, channel FROM ratings").fetchall()
        events = db.execute("SELECT count(*) FROM journal WHERE kind = 'ticket_rated'").fetchone()[0]
    # The first press, under the served ticket's id; never counter 2's words.
    assert ratings == [(ticket.id, ticket.number, "A", "1", "satisfied", "counter")]
    assert events == 1
    assert "source=2 code=not_rateable" in log and "source=1 code=already_rated" in log
    assert log.count("rated ticket=") == 1 and log.count("refused rating") == 2
