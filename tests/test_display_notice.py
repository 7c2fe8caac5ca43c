"""The hall manager's notice on a real display service against a real Mosquitto: a retained notice is shown by
a display that starts after it was set, an empty retained message takes it away, an undecodable one is ignored
with one warning, and the voice never reads it."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hallq import wire
from hallq.topics import Topics
from testbed.broker import PrivateBroker, free_port
from testbed.display import DisplayProcess
from tests.support import FIXTURES, HALL_ID, Probe, wait_until

TOPICS = Topics(hall=HALL_ID)
NOTICE = wire.Notice(text_vi="Hệ thống tạm dừng 10 phút", text_en="The system pauses for 10 minutes",
                     at=datetime(2026, 11, 27, 3, 2, tzinfo=UTC), by="lan")


@pytest.fixture
def display(broker: PrivateBroker, tmp_path: Path) -> Iterator[DisplayProcess]:
    process = DisplayProcess(config=FIXTURES / "display.toml", broker_address=broker.address, port=free_port(),
                             log_path=tmp_path / "display.log")
    yield process
    process.stop()


def _screen(display: DisplayProcess) -> dict[str, Any]:
    """The screen model a page gets first on connecting to ``/events``."""
    connection = http.client.HTTPConnection("127.0.0.1", display.port, timeout=5)
    try:
        connection.request("GET", "/events")
        response = connection.getresponse()
        while True:
            line = response.readline().decode("utf-8")
            if line.startswith("data: "):
                return json.loads(line[len("data: "):])  # type: ignore[no-any-return]
            if not line:
                raise AssertionError("/events closed before the first screen")
    finally:
        connection.close()


def _notice(display: DisplayProcess) -> dict[str, Any] | None:
    return _screen(display)["notice"]  # type: ignore[no-any-return]


def test_a_notice_set_before_the_display_starts_is_shown_until_it_is_cleared(
        broker: PrivateBroker, display: DisplayProcess) -> None:
    with Probe(broker) as manager:
        assert manager.link.publish_and_wait(TOPICS.notice(), NOTICE.encode(), retain=True)
        display.start()
        shown = wait_until(lambda: _notice(display), timeout_s=5, what="the retained notice on the screen") or {}
        assert (shown.get("primary"), shown.get("secondary")) == (NOTICE.text_vi, NOTICE.text_en)
        assert manager.link.publish_and_wait(TOPICS.notice(), b"", retain=True)
        wait_until(lambda: _notice(display) is None, timeout_s=5, what="the notice gone from the screen")
    display.wait_for_log("notice cleared", timeout_s=5)
    assert "announcing" not in display.log_text()  # notices are for reading


def test_an_undecodable_notice_is_ignored_with_one_warning(broker: PrivateBroker, display: DisplayProcess) -> None:
    display.start()
    with Probe(broker) as manager:
        manager.publish(TOPICS.notice(), NOTICE.encode(), retain=True)
        wait_until(lambda: _notice(display), timeout_s=5, what="the notice on the screen")
        manager.publish(TOPICS.notice(), b'{"v":1,"text_vi":"no time"}', retain=True)
        display.wait_for_log("ignored undecodable message", timeout_s=5)
    assert (_notice(display) or {}).get("primary") == NOTICE.text_vi
    warnings = [line for line in display.log_text().splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and TOPICS.notice() in warnings[0], warnings
