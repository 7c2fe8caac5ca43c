"""The keypad against a live hall: gpiozero's MockFactory pins, a real Mosquitto and the controller process."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gpiozero
import pytest
from gpiozero.pins.mock import MockFactory

from counter import config as counter_config
from counter.core import NO_ANSWER
from counter.keypad import KeypadError
from counter.service import BACKLOG_LIMIT, KeypadService
from hallq import wire
from hallq.mqtt import BrokerSettings, LinkDown, Message, MqttLink
from hallq.topics import Topics
from testbed.broker import PrivateBroker
from tests.support import FIXTURES, HALL_ID, ControllerProcess, Probe

NEXT, RECALL, COMPLETE, LED, BUZZER = 17, 27, 22, 24, 25
TOPICS = Topics(hall=HALL_ID)


def _until(condition: Callable[[], bool], *, timeout_s: float = 3.0) -> bool:
    """Poll a hardware pin's state (gpiozero offers no event for an output changing)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@contextlib.contextmanager
def _running_keypad(broker: PrivateBroker | None, *, prefill: list[Any] | None = None,
                    **changes: Any) -> Iterator[tuple[KeypadService, MockFactory]]:
    """The fixture counter's keypad on mock pins, its loop on a thread; ``changes`` replace config fields and
    ``prefill`` goes on the inbox before the loop starts. Without a broker nothing reaches the inbox but that."""
    cfg = counter_config.load(FIXTURES / "counter.toml")
    cfg = replace(cfg, broker=BrokerSettings(port=broker.port if broker is not None else 1), **changes)
    factory = MockFactory()
    service = KeypadService(cfg, pin_factory=factory)
    for item in prefill or []:
        service.inbox.put(item)
    thread = threading.Thread(target=service.run, name="keypad")
    thread.start()
    try:
        yield service, factory
    finally:
        service.stop()
        thread.join(5)
        factory.reset()


@pytest.fixture
def keypad(broker: PrivateBroker, controller: ControllerProcess) -> Iterator[tuple[KeypadService, MockFactory]]:
    with _running_keypad(broker) as (service, factory):
        assert _until(lambda: service.counter.view.connected, timeout_s=5)  # subscribed to its replies
        yield service, factory


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


def test_the_keypad_ignores_a_citizens_profile_and_keeps_working(
    broker: PrivateBroker, keypad: tuple[KeypadService, MockFactory], caplog: pytest.LogCaptureFixture
) -> None:
    """A reply carrying a profile (as the controller sends for a ticket linked to a card) changes nothing at a
    keypad: it keeps no profile, logs none of it, and its keys go on working."""
    service, factory = keypad
    caplog.set_level(logging.DEBUG)
    with Probe(broker, subscriptions=[TOPICS.dispenser_ticket("d1"), TOPICS.counter_reply("1")]) as probe:
        assert probe.request_ticket("d1", "A").ticket is not None
        _press(factory, NEXT)
        ticket = wire.CounterReply.decode(probe.on(TOPICS.counter_reply("1")).payload).ticket
        assert ticket is not None
        profile = wire.CitizenProfile(ref="p7f3a9c2e41b", ticket=ticket.id, first_visit=False, name="Nguyễn Văn An",
                                      id_number="001050012345", address="Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội")
        recalled = replace(ticket, recalls=1)  # as a recall from another desk of this counter would answer
        probe.publish(TOPICS.counter_reply("1"), wire.CounterReply(
            request_id="elsewhere", action="recall", status="open", ticket=recalled, profile=profile).encode())
        assert _until(lambda: service.counter.view.ticket == recalled), "the reply was not taken"
        assert service.counter.view.profile is None
        assert factory.pin(LED).state, "serving LED is not lit"
        _press(factory, COMPLETE)
        assert _until(lambda: not factory.pin(LED).state), "complete did not put the serving LED out"
    # The counter's state (published before the reply) may put the LED out a moment before the reply is read.
    done = f"Đã hoàn thành số {ticket.number} (completed {ticket.number})"
    assert _until(lambda: service.counter.view.notice is not None and service.counter.view.notice.text == done), \
        service.counter.view.notice
    assert not any(personal in caplog.text for personal in ("Nguyễn", "001050012345", "Tràng Tiền"))


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


def test_a_late_answer_is_shown_and_pressing_again_does_not_call_a_second_citizen(
    broker: PrivateBroker, controller: ControllerProcess
) -> None:
    assert controller.proc is not None
    command_topic = TOPICS.counter_command("1")
    with Probe(broker, subscriptions=[TOPICS.dispenser_ticket("d1"), TOPICS.calls(), command_topic]) as probe, \
            _running_keypad(broker, reply_timeout_s=0.5) as (service, factory):
        assert _until(lambda: service.counter.view.connected, timeout_s=5)
        first, _second = (probe.request_ticket("d1", "A").ticket for _ in range(2))
        assert first is not None
        os.kill(controller.proc.pid, signal.SIGSTOP)  # busy elsewhere: the answer comes after the timeout
        try:
            _press(factory, NEXT)
            assert _until(lambda: NO_ANSWER in _notice(service)), _notice(service)
        finally:
            os.kill(controller.proc.pid, signal.SIGCONT)
        assert _until(lambda: bool(factory.pin(LED).state)), "serving LED did not light on the late answer"
        # The counter's state (published before the reply) may light the LED a moment before the reply is read.
        assert _until(lambda: NO_ANSWER not in _notice(service)), _notice(service)
        late_notice = _notice(service)
        _press(factory, NEXT)  # the clerk, having heard "no answer", presses again
        sent = [wire.CounterCommand.decode(probe.on(command_topic).payload) for _ in range(2)]
        assert _until(lambda: service.counter.view.pending is None)
        calls = [wire.Call.decode(m.payload) for m in _all_on(probe, TOPICS.calls(), settle_s=0.5)]
    assert [c.number for c in calls] == [first.number]
    assert sent[0].request_id == sent[1].request_id
    assert late_notice == f"Gọi số tiếp (next) đã thực hiện dù trả lời muộn (done after all): Đang mời số " \
                          f"{first.number} (called {first.number})"
    assert service.counter.view.ticket is not None and service.counter.view.ticket.number == first.number


def test_keypad_config_refuses_a_pin_not_on_the_header(tmp_path: Path) -> None:
    for spelling, problem in [('"GPIO99"', "'GPIO99' is not on the 40-pin header"),
                              ('"BOARD99"', "'BOARD99' is not a pin of the 40-pin header"),
                              ('"BOARD2"', "'BOARD2' is a 5 V pin, not a GPIO"),
                              ("28", "must be at most 27"),
                              ('"GPIO017"', "must be a GPIO number 0-27")]:
        text = (FIXTURES / "counter.toml").read_text(encoding="utf-8").replace('"GPIO25"', spelling)
        path = tmp_path / "counter.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=f"{path}: keypad.buzzer_pin: .*{problem}"):
            counter_config.load(path)


def test_keypad_config_refuses_one_pin_in_two_spellings(tmp_path: Path) -> None:
    text = (FIXTURES / "counter.toml").read_text(encoding="utf-8").replace('"GPIO25"', '"BOARD11"')
    path = tmp_path / "counter.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"keypad.buzzer_pin: pin GPIO17 \('BOARD11'\) is already used by next_pin"):
        counter_config.load(path)


@pytest.mark.parametrize("revision", ["d04170", "d03114", "902120"])  # Pi 5, Pi 4, Zero 2 W
def test_pin_spellings_mean_what_gpiozero_means(revision: str) -> None:
    board = MockFactory(revision=revision).board_info
    spellings = [*(f"{p}{n}" for p in ("GPIO", "BCM", "BOARD", "J8:", "WPI") for n in range(45)), "GPIO017", "gpio17"]
    for spelling in spellings:
        try:
            expected: str | None = board.to_gpio(spelling)
        except ValueError:
            expected = None
        try:
            ours: str | None = f"GPIO{counter_config.gpio_of(spelling)}"
        except ValueError:
            ours = None
        assert ours == expected, spelling


def test_a_pin_in_use_is_one_keypad_error_naming_the_key(broker: PrivateBroker) -> None:
    cfg = replace(counter_config.load(FIXTURES / "counter.toml"), broker=BrokerSettings(port=broker.port))
    factory = MockFactory()
    holder = gpiozero.LED("GPIO24", pin_factory=factory)  # something else drives the serving LED's pin
    try:
        with pytest.raises(KeypadError, match=r"^keypad.serving_led_pin = GPIO24: .*in use") as raised:
            KeypadService(cfg, pin_factory=factory)
        assert (raised.value.key, raised.value.pin) == ("keypad.serving_led_pin", "GPIO24")
        # The buttons it had already opened were given back: another keypad can have them.
        assert cfg.keypad is not None
        again = KeypadService(replace(cfg, keypad=replace(cfg.keypad, serving_led_pin="GPIO5")), pin_factory=factory)
        again.keypad.close()
    finally:
        holder.close()
        factory.reset()


def test_watchdog_is_fed_only_while_the_loop_keeps_up_with_its_inbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    # A backlog the loop needs a while to work through (messages on a topic it does not read), and no broker,
    # so that the backlog only shrinks.
    stray = Message(topic="elsewhere/nothing", payload=b"", retain=False)
    with notify, _running_keypad(None, prefill=[stray] * (BACKLOG_LIMIT * 5)) as (service, _factory):
        assert notify.recv(64) == b"WATCHDOG=1"
        backlog_after_first_ping = service.inbox.qsize()
    assert backlog_after_first_ping < BACKLOG_LIMIT


def test_stop_takes_no_lock_the_interrupted_loop_may_hold(keypad: tuple[KeypadService, MockFactory]) -> None:
    service, _factory = keypad
    # A signal handler runs on the main thread between two bytecodes, possibly inside inbox.get() with the
    # inbox's lock held: whatever stop() does must not wait for that lock.
    with service.inbox.mutex:
        stopper = threading.Thread(target=service.stop)
        stopper.start()
        stopper.join(1)
        returned = not stopper.is_alive()
    stopper.join()
    assert returned, "stop() waited for the inbox's lock"


def _notice(service: KeypadService) -> str:
    notice = service.counter.view.notice
    return "" if notice is None else notice.text


def _all_on(probe: Probe, topic: str, *, settle_s: float) -> list[Message]:
    """Every message on ``topic`` the probe got, waiting ``settle_s`` for more (to show that none follows)."""
    found: list[Message] = []
    deadline = time.monotonic() + settle_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            found.append(probe.on(topic, timeout_s=left))
        except AssertionError:  # nothing more within settle_s
            break
    return found


def test_the_led_blinks_while_the_broker_is_unreachable_and_stops_when_it_is_back(broker: PrivateBroker) -> None:
    with _running_keypad(broker) as (service, factory):
        assert _until(lambda: service.counter.view.connected, timeout_s=5)
        broker.stop()
        led = factory.pin(LED)
        assert _until(lambda: sum(1 for s in led.states if s.state) >= 2, timeout_s=8), "LED did not blink"
        broker.start()
        assert _until(lambda: service.counter.view.connected, timeout_s=15)  # subscribed again: LinkUp
        assert _until(lambda: not led.state, timeout_s=3), "LED kept blinking after the broker came back"
        lit_since = sum(1 for s in led.states if s.state)
        # That it stays off is a time without an event (gpiozero has none for a pin that does not change):
        # longer than a blink period, bounded.
        time.sleep(1.2)
        assert sum(1 for s in led.states if s.state) == lit_since


def test_a_keypad_pushed_off_its_account_stops_connecting_and_flashes_its_led(broker: PrivateBroker) -> None:
    """Another process is logged in as counter-1 (a console elsewhere, with its own presence). The keypad, connecting
    second, pushes it off; it comes back a second later and pushes the keypad off; the keypad then stays off,
    flashing its LED fast and beeping, instead of taking the account back once a second."""
    who = "counter 1, desk-pc pid 4242"
    inbox: queue.Queue[object] = queue.Queue()
    other = MqttLink(client_id="counter-1", broker=BrokerSettings(port=broker.port), inbox=inbox,
                     subscriptions=[(TOPICS.counter_reply("1"), 1)], presence_topic=TOPICS.status("counter-1"),
                     online_payload=wire.Presence(state="online", role="counter", detail=who).encode(),
                     offline_payload=wire.Presence(state="offline", role="counter", detail=who).encode(),
                     stop_when_taken_over=True)
    other.start()
    try:
        assert other.wait_up(5)
        with _running_keypad(broker) as (service, factory):
            assert _until(lambda: service.counter.view.taken_over, timeout_s=8)
            assert not service.counter.view.connected
            assert "another console is connected as counter 1" in _notice(service)
            assert _until(lambda: any(s.state for s in factory.pin(BUZZER).states)), "buzzer did not sound"
            led = factory.pin(LED)
            lit = sum(1 for s in led.states if s.state)
            assert _until(lambda: sum(1 for s in led.states if s.state) - lit >= 3, timeout_s=1.0), \
                "LED does not flash fast"  # 0.1 s on, 0.1 off
            _press(factory, NEXT)  # refused at the desk: nothing is sent
            assert "another console is connected as counter 1" in _notice(service)
            # That the keypad does not take the account back is a time without an event: paho would have
            # reconnected twice by now (bounded; there is no marker for a reconnection that does not happen).
            time.sleep(2.0)
            items = []
            while not inbox.empty():
                items.append(inbox.get_nowait())
        assert other.up.is_set()
        assert [type(i).__name__ for i in items if not isinstance(i, Message)] == ["LinkUp", "LinkDown", "LinkUp"]
        assert not any(isinstance(i, LinkDown) and i.taken_over for i in items)
    finally:
        other.stop()
