"""The keypad against a live hall: gpiozero's MockFactory pins, a real Mosquitto and the controller process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from counter import config as counter_config
from counter.service import KeypadService
from hallq import wire
from hallq.broker import PrivateBroker
from hallq.mqtt import BrokerSettings
from hallq.topics import Topics
from tests.support import FIXTURES, HALL_ID, ControllerProcess, Probe

NEXT, RECALL, LED, BUZZER = 17, 27, 24, 25
TOPICS = Topics(hall=HALL_ID)


def _until(condition: Callable[[], bool], *, timeout_s: float = 3.0) -> bool:
    """Poll a hardware pin's state (gpiozero offers no event for an output changing)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def keypad(broker: PrivateBroker, controller: ControllerProcess) -> Iterator[tuple[KeypadService, MockFactory]]:
    cfg = counter_config.load(FIXTURES / "counter.toml")
    cfg = replace(cfg, broker=BrokerSettings(port=broker.port))
    factory = MockFactory()
    service = KeypadService(cfg, pin_factory=factory)
    thread = threading.Thread(target=service.run, name="keypad")
    thread.start()
    try:
        assert service.counter.link.wait_connected(5)
        yield service, factory
    finally:
        service.stop()
        thread.join(5)
        factory.reset()


def _press(factory: MockFactory, pin: int) -> None:
    factory.pin(pin).drive_low()
    factory.pin(pin).drive_high()


def test_pressing_next_calls_a_ticket_and_lights_the_serving_led(
    broker: PrivateBroker, keypad: tuple[KeypadService, MockFactory]
) -> None:
    service, factory = keypad
    with Probe(broker, subscriptions=[TOPICS.dispenser_ticket("d1"), TOPICS.calls()]) as probe:
        issued = probe.request_ticket("d1", "A").ticket
        assert issued is not None
        assert not factory.pin(LED).state
        _press(factory, NEXT)
        call = wire.Call.decode(probe.on(probe.topics.calls()).payload)
    assert (call.number, call.counter) == (issued.number, "1")
    assert _until(lambda: bool(factory.pin(LED).state)), "serving LED did not light"
    assert service.counter.view.ticket is not None and service.counter.view.ticket.number == issued.number


def test_refused_next_beeps_and_leaves_the_led_off(keypad: tuple[KeypadService, MockFactory]) -> None:
    service, factory = keypad
    _press(factory, NEXT)  # nobody is waiting: queue_empty
    assert _until(lambda: service.counter.view.notice is not None and service.counter.view.notice.level == "error")
    assert _until(lambda: any(s.state for s in factory.pin(BUZZER).states)), "buzzer did not sound"
    assert not factory.pin(LED).state
    notice = service.counter.view.notice
    assert notice is not None and notice.text.startswith("Không còn số nào đang chờ (queue empty)")


def test_recall_is_announced_as_a_recall(broker: PrivateBroker, keypad: tuple[KeypadService, MockFactory]) -> None:
    service, factory = keypad
    with Probe(broker, subscriptions=[TOPICS.dispenser_ticket("d1"), TOPICS.calls()]) as probe:
        probe.request_ticket("d1", "B")
        _press(factory, NEXT)
        first = wire.Call.decode(probe.on(probe.topics.calls()).payload)
        assert _until(lambda: service.counter.view.pending is None and service.counter.view.serving)
        _press(factory, RECALL)
        again = wire.Call.decode(probe.on(probe.topics.calls()).payload)
    assert again.recall and again.number == first.number and again.seq == first.seq + 1


def test_keypad_config_refuses_a_pin_used_twice(tmp_path: Path) -> None:
    text = (FIXTURES / "counter.toml").read_text(encoding="utf-8").replace('buzzer_pin = "GPIO25"',
                                                                          'buzzer_pin = "GPIO17"')
    path = tmp_path / "counter.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"keypad.buzzer_pin: pin GPIO17 is already used by next_pin"):
        counter_config.load(path)
