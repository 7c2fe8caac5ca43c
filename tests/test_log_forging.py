"""No text from the wire can start a log line.

A device that put a line break in a request id or a service id used to write whole lines of its choosing
into the controller's log (``ERROR hall_controller.service: ledger damaged; move it aside``), which the
journal cannot tell from real ones. The decoders refuse control characters where the contract has no use for
them (ids, request ids, ticket numbers); every role's log formatter (``hallq/logsetup.py``) escapes them in
whatever else a line quotes.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from hallq import logsetup, wire
from hallq.errors import PayloadError
from testbed.broker import PrivateBroker
from tests.support import ROOT, ControllerProcess, Probe

FORGED = "ERROR hall_controller.service: ledger damaged; move it aside"


def _probe(broker: PrivateBroker) -> Probe:
    topics = Probe(broker).topics
    return Probe(broker, subscriptions=[topics.dispenser_ticket("d1"), topics.counter_reply("1")])


def _ticket_reply(probe: Probe, request_id: str) -> wire.TicketReply:
    topic = probe.topics.dispenser_ticket("d1")
    message = probe.expect(lambda m: m.topic == topic and wire.TicketReply.decode(m.payload).request_id == request_id)
    return wire.TicketReply.decode(message.payload)


def _command_reply(probe: Probe, request_id: str) -> wire.CounterReply:
    topic = probe.topics.counter_reply("1")
    message = probe.expect(lambda m: m.topic == topic and wire.CounterReply.decode(m.payload).request_id == request_id)
    return wire.CounterReply.decode(message.payload)


def _assert_no_forged_line(log_text: str) -> None:
    lines = log_text.splitlines()
    assert not any(line.startswith(FORGED) for line in lines), log_text
    for line in lines:
        if FORGED in line:  # quoted, never as a line of its own
            assert "\\n" + FORGED in line, line


def test_a_line_break_in_a_request_id_or_service_gets_a_plain_refusal_and_no_log_line(
    broker: PrivateBroker, controller: ControllerProcess
) -> None:
    t = Probe(broker).topics
    with _probe(broker) as probe:
        rid = "r\n" + FORGED
        probe.publish(t.dispenser_request("d1"), json.dumps({"v": 1, "request_id": rid, "service": "Z"}).encode())
        assert _ticket_reply(probe, rid).error_code == "bad_request"
        probe.publish(t.dispenser_request("d1"), json.dumps({"v": 1, "request_id": "r2",
                                                             "service": "Z\n" + FORGED}).encode())
        assert _ticket_reply(probe, "r2").error_code == "bad_request"
        probe.publish(t.counter_command("1"), json.dumps({"v": 1, "request_id": "c1", "action": "call",
                                                          "ticket": "A9\r\n" + FORGED}).encode())
        assert _command_reply(probe, "c1").error_code == "bad_request"
        # The hall goes on: nothing was issued.
        ticket = probe.request_ticket("d1", "A").ticket
        assert ticket is not None and ticket.number == "A001"
        # Free text the contract accepts (why a print failed) is logged, escaped.
        probe.publish(t.dispenser_printed("d1"), json.dumps({"v": 1, "ticket_id": ticket.id, "ok": False,
                                                             "reason": "jam\n" + FORGED}).encode())
        controller.wait_for_log(f"voided ticket={ticket.number}")
    log_text = controller.log_text()
    _assert_no_forged_line(log_text)
    assert f"reason=jam\\n{FORGED}" in log_text


@pytest.mark.parametrize("payload", [
    {"v": 1, "request_id": "r\n1", "service": "A"},
    {"v": 1, "request_id": "r\u2028" + "1", "service": "A"},
    {"v": 1, "request_id": "r1", "service": "A\n"},
])
def test_the_ticket_request_decoder_refuses_control_characters(payload: dict[str, object]) -> None:
    with pytest.raises(PayloadError) as refused:
        wire.TicketRequest.decode(json.dumps(payload).encode())
    assert refused.value.code == "bad_request"


@pytest.mark.parametrize("payload", [
    {"v": 1, "request_id": "c\x1b[2J", "action": "next"},
    {"v": 1, "request_id": "c1", "action": "transfer", "service": "B\r"},
    {"v": 1, "request_id": "c1", "action": "call", "ticket": "A001\n"},
])
def test_the_counter_command_decoder_refuses_control_characters(payload: dict[str, object]) -> None:
    with pytest.raises(PayloadError):
        wire.CounterCommand.decode(json.dumps(payload).encode())


def test_a_print_reports_ticket_id_is_an_id() -> None:
    with pytest.raises(PayloadError):
        wire.PrintReport.decode(json.dumps({"v": 1, "ticket_id": "t1\n", "ok": True}).encode())
    assert wire.PrintReport.decode(json.dumps({"v": 1, "ticket_id": "t1", "ok": False,
                                               "reason": "jam\n"}).encode()).reason == "jam\n"


def test_escape_controls_makes_one_line_of_any_text() -> None:
    text = "a\nb\r\tc\x00\x1b[31md\x7f\x85e\u2028f\u2029g"
    escaped = logsetup.escape_controls(text)
    assert escaped == "a\\nb\\r\\tc\\x00\\x1b[31md\\x7f\\x85e\\u2028f\\u2029g"
    assert len(escaped.splitlines()) == 1
    assert logsetup.escape_controls("Quầy 5 — số A015, \\n stays") == "Quầy 5 — số A015, \\n stays"


def _fail() -> None:
    raise RuntimeError("broken")


def test_the_formatter_escapes_the_message_and_keeps_a_traceback_readable() -> None:
    formatter = logsetup.OneLineFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord("hall_controller.service", logging.WARNING, __file__, 1,
                               "refused request=%s", ("r\n" + FORGED,), None)
    assert formatter.format(record) == f"WARNING hall_controller.service: refused request=r\\n{FORGED}"
    try:
        _fail()
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("a\nb",), sys.exc_info())
    lines = formatter.format(record).splitlines()
    assert lines[0] == "ERROR x: failed a\\nb"
    assert lines[1] == "Traceback (most recent call last):"


def test_every_role_logs_through_the_escaping_formatter() -> None:
    code = ("import logging; from hallq import logsetup; logsetup.setup('INFO'); "
            f"logging.getLogger('hall_controller.service').warning('request=%s', {('r' + chr(10) + FORGED)!r})")
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT,
                            timeout=30)
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.rstrip("\n").endswith(f"request=r\\n{FORGED}")
