"""Buttons, LEDs and buzzer on gpiozero's own MockFactory."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from dispenser.core import ShowIndicators
from dispenser.hardware import (
    ButtonPanel,
    ButtonPressed,
    ButtonWiring,
    HardwareError,
    Indicators,
    LedWiring,
    make_pin_factory,
)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    yield mock
    mock.close()


def test_a_press_is_enqueued_with_its_key_and_the_time_it_happened(factory: MockFactory) -> None:
    inbox: queue.Queue[object] = queue.Queue()
    instants = iter([12.5, 13.0])
    panel = ButtonPanel([ButtonWiring("1", 17), ButtonWiring("2", 27)], pin_factory=factory, inbox=inbox,
                        clock=lambda: next(instants))
    factory.pin(27).drive_low()
    factory.pin(27).drive_high()
    factory.pin(17).drive_low()
    assert [inbox.get_nowait(), inbox.get_nowait()] == [ButtonPressed("2", 12.5), ButtonPressed("1", 13.0)]
    assert inbox.empty()
    panel.close()


def test_releasing_a_button_is_not_a_press(factory: MockFactory) -> None:
    inbox: queue.Queue[object] = queue.Queue()
    panel = ButtonPanel([ButtonWiring("1", 17)], pin_factory=factory, inbox=inbox)
    factory.pin(17).drive_low()
    factory.pin(17).drive_high()
    assert inbox.qsize() == 1
    panel.close()


def test_leds_follow_the_core(factory: MockFactory) -> None:
    leds = Indicators(LedWiring(ready=5, busy=6, fault=13), pin_factory=factory)
    leds.show(ShowIndicators(ready=False, busy=True, fault="on"))
    assert [factory.pin(p).state for p in (5, 6, 13)] == [False, True, True]
    leds.show(ShowIndicators(ready=True, busy=False, fault="off"))
    assert [factory.pin(p).state for p in (5, 6, 13)] == [True, False, False]
    leds.close()


def test_paper_low_blinks_the_fault_led(factory: MockFactory) -> None:
    leds = Indicators(LedWiring(fault=13), pin_factory=factory)
    leds.show(ShowIndicators(ready=True, busy=False, fault="blink"))
    assert leds.fault._blink_thread is not None  # gpiozero's own blinking, in the background
    leds.show(ShowIndicators(ready=True, busy=False, fault="off"))
    assert not factory.pin(13).state
    leds.close()


def test_buzzer_beeps_and_missing_parts_are_fine(factory: MockFactory) -> None:
    leds = Indicators(LedWiring(buzzer=19), pin_factory=factory)
    leds.beep("accepted")
    leds.show(ShowIndicators(ready=True, busy=False, fault="on"))  # no LEDs fitted: nothing to do
    leds.buzzer._blink_thread.join(2)  # one short beep, then gpiozero's thread ends
    assert [state for _, state in factory.pin(19).states][-2:] == [True, False]
    leds.close()


def test_a_pin_used_twice_is_a_hardware_error(factory: MockFactory) -> None:
    with pytest.raises(HardwareError, match="cannot set up buttons"):
        ButtonPanel([ButtonWiring("1", 17), ButtonWiring("2", 17)], pin_factory=factory, inbox=queue.Queue())


def test_pin_factories_by_name() -> None:
    assert make_pin_factory(None) is None
    mock = make_pin_factory("mock")
    assert isinstance(mock, MockFactory)
    mock.close()
    with pytest.raises(HardwareError, match="not installed"):
        make_pin_factory("nonsense")
