"""docs/mqtt-contract.md and the code agree: every example decodes, every topic the code builds is documented."""

from __future__ import annotations

import inspect
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hallq import wire
from hallq.errors import PayloadError
from hallq.topics import Topics
from tests.support import ROOT

DOC = (ROOT / "docs" / "mqtt-contract.md").read_text(encoding="utf-8")
SECTION = re.compile(r"^### `(?P<topic>[^`]+)`\n(?P<body>.*?)(?=^### |^## |\Z)", re.M | re.S)
TYPES = {name: getattr(wire, name) for name in ("TicketRequest", "TicketReply", "PrintReport", "CounterCommand",
                                                "CounterReply", "CounterState", "Call", "Board", "Presence",
                                                "ManagerCommand", "ManagerReply", "Notice", "HallEvent")}


def _sections() -> dict[str, str]:
    return {m.group("topic"): m.group("body") for m in SECTION.finditer(DOC)}


def _templates_built_by_code() -> set[str]:
    topics = Topics(hall="HALL0")
    placeholders = {"dispenser": "{dispenser}", "counter": "{counter}", "client": "{client}", "manager": "{manager}"}
    templates = set()
    for name, method in inspect.getmembers(topics, inspect.ismethod):
        if name.startswith(("_", "all_", "parse")):
            continue
        params = list(inspect.signature(method).parameters)
        topic = method(*["DEV0" for _ in params])
        template = topic.replace("HALL0", "{hall}")
        if params:
            template = template.replace("DEV0", placeholders[params[0]])
        templates.add(template)
    return templates


def test_every_topic_the_code_builds_is_documented() -> None:
    built = _templates_built_by_code()
    assert len(built) == 13
    assert built == set(_sections())


@pytest.mark.parametrize("topic", sorted(_sections()))
def test_every_example_of_a_topic_decodes_with_its_documented_type(topic: str) -> None:
    body = _sections()[topic]
    type_name = re.search(r"Type `(\w+)`", body)
    assert type_name, f"{topic}: no 'Type `...`' line"
    decoder = TYPES[type_name.group(1)]
    examples = re.findall(r"```json\n(.*?)\n```", body, re.S)
    assert examples, f"{topic}: no example"
    for example in examples:
        decoded = decoder.decode(example.encode())
        # Round trip: what the code writes, it reads back the same.
        assert decoder.decode(decoded.encode()) == decoded


def test_the_documented_error_codes_are_the_codes_the_code_uses() -> None:
    table = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", DOC.split("### Error codes")[1].split("## Topics")[0], re.M))
    documented = {code for row in table for code in row if code}
    assert documented == set(wire.ERROR_CODES)


def test_readers_ignore_unknown_fields_and_refuse_other_versions() -> None:
    request = wire.TicketRequest.decode(b'{"v":1,"request_id":"r","service":"A","colour":"blue"}')
    assert request == wire.TicketRequest(request_id="r", service="A")
    with pytest.raises(PayloadError) as refused:
        wire.TicketRequest.decode(b'{"v":2,"request_id":"r","service":"A"}')
    assert refused.value.code == "unsupported_version"


def test_optional_empty_strings_round_trip() -> None:
    """A call without a ticket id and a board before the first business day encode and decode again."""
    at = datetime(2026, 11, 27, 8, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    call = wire.Call(seq=1, number="A001", counter="1", counter_name="Quầy 1", service="A", priority=False,
                     recall=False, at=at)
    assert wire.Call.decode(call.encode()) == call
    board = wire.Board(hall="h", hall_name_vi="H", hall_name_en="H", seq=0, calls=(), counters=(), services=(), at=at)
    assert wire.Board.decode(board.encode()) == board


def test_a_counter_commands_serving_tells_absent_from_nothing() -> None:
    """Left out or null: the sender claims nothing (not checked); "": it saw the counter serving nothing."""
    base = '{"v":1,"request_id":"r","action":"next"'
    assert wire.CounterCommand.decode(base + "}").serving is None
    assert wire.CounterCommand.decode(base + ',"serving":null}').serving is None
    assert wire.CounterCommand.decode(base + ',"serving":""}').serving == ""
    assert wire.CounterCommand.decode(base + ',"serving":"A015"}').serving == "A015"
    with pytest.raises(PayloadError, match="'serving'") as refused:
        wire.CounterCommand.decode(base + ',"serving":15}')
    assert refused.value.code == "bad_request"
    for serving in (None, "", "9b1d4c2a7e8f4a0b9c3d2e1f0a9b8c7d"):
        command = wire.CounterCommand(request_id="r", action="next", serving=serving)
        assert wire.CounterCommand.decode(command.encode()) == command
    assert b"serving" not in wire.CounterCommand(request_id="r", action="next").encode()
