"""One definition of each field's limits (``hallq/limits.py``), used by every config reader and wire decoder:
whatever ``hallq-controller check`` accepts, every role can carry. (A counter name the config took but the
displays refused blanked every board and call of the hall.)"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hall_controller import config
from hall_controller.engine import Engine
from hall_controller.engine.events import ActAtCounter, IssueTicket
from hall_controller.engine.views import board, call, counter_state
from hallq import wire
from hallq.errors import ConfigError, PayloadError
from hallq.limits import MAX_ID_LEN, MAX_NAME_LEN
from hallq.topics import is_valid_id
from tests.support import HALL_CONFIG, ROOT
from tests.test_dispenser_helpers import DISPENSER_CONFIG

# Vietnamese, as a hall names things: characters, not bytes, are counted (most of these take 2-3 bytes).
WORDS = "Quầy tiếp nhận và trả kết quả thủ tục hành chính "

# (text in tests/fixtures/hall.toml, the key naming it) for every name that travels on the wire.
NAMES = [
    ('name_vi = "Trung tâm Phục vụ hành chính công (thử nghiệm)"', "hall.name_vi"),
    ('name_en = "Public Administrative Service Centre (test)"', "hall.name_en"),
    ('name_vi = "Hộ tịch"', 'services[id="A"].name_vi'),
    ('name_en = "Civil status registration"', 'services[id="A"].name_en'),
    ('name = "Quầy 2"', 'counters[id="2"].name'),
]


def _name(length: int) -> str:
    return (WORDS * (length // len(WORDS) + 1))[:length].replace(" ", "-")  # no trailing space to argue about


def _hall(tmp_path: Path, replacements: list[tuple[str, str]]) -> Path:
    text = HALL_CONFIG.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "hall.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _with_name(text: str, name: str) -> tuple[str, str]:
    return text, text.partition("=")[0] + f'= "{name}"'


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hall_controller", "check", "--config", str(path)],
                          check=False, capture_output=True, text=True, cwd=ROOT, timeout=30)


def test_the_longest_names_check_accepts_travel_in_every_board_call_and_counter_state(tmp_path: Path) -> None:
    longest = _name(MAX_NAME_LEN)
    path = _hall(tmp_path, [_with_name(text, longest) for text, _key in NAMES])
    assert _check(path).returncode == 0
    spec = config.load(path).hall
    engine, now = Engine(spec), datetime(2026, 11, 27, 8, 0, tzinfo=spec.zone)
    engine.handle(IssueTicket(dispenser="d1", request_id="r1", service="A", priority=False, category=None,
                              ticket_id="t1"), now=now)
    engine.handle(ActAtCounter(counter="2", request_id="c1", action="next"), now=now + timedelta(seconds=5))
    sent_call = wire.Call.decode(call(engine, engine.recent_calls[0]).encode())
    sent_board = wire.Board.decode(board(engine, now).encode())
    sent_state = wire.CounterState.decode(counter_state(engine, "2", now).encode())
    assert sent_call.counter_name == sent_state.name == longest
    assert sent_board.hall_name_vi == sent_board.hall_name_en == longest
    assert {c.counter: c.name for c in sent_board.counters}["2"] == longest
    assert (sent_board.services[0].name_vi, sent_board.services[0].name_en) == (longest, longest)
    assert sent_board.calls[0].counter_name == longest


@pytest.mark.parametrize(("text", "key"), NAMES, ids=[key for _text, key in NAMES])
def test_one_character_more_is_refused_by_check_naming_file_key_and_limit(tmp_path: Path, text: str, key: str) -> None:
    path = _hall(tmp_path, [_with_name(text, _name(MAX_NAME_LEN + 1))])
    result = _check(path)
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert f"{path}: {key}: must be at most {MAX_NAME_LEN} characters" in result.stderr, result.stderr


def test_a_line_break_in_a_name_is_refused_by_check(tmp_path: Path) -> None:
    path = _hall(tmp_path, [('name = "Quầy 2"', 'name = "Quầy 2\\nERROR hall_controller: forged"')])
    result = _check(path)
    assert result.returncode == 78
    assert f'{path}: counters[id="2"].name: must not contain control characters' in result.stderr, result.stderr


def test_a_hall_whose_board_would_outgrow_a_payload_is_refused_by_check(tmp_path: Path) -> None:
    """Each name within its limit, but together more than a display accepts in one board."""
    counters = "".join(f'\n[[counters]]\nid = "x{i}"\nname = "{_name(MAX_NAME_LEN)}"\nservices = ["A"]\n'
                       for i in range(60))
    path = _hall(tmp_path, [("[[dispensers]]", counters.lstrip("\n") + "\n[[dispensers]]")])
    result = _check(path)
    assert result.returncode == 78
    assert f"{path}: counters: " in result.stderr and f"{wire.MAX_PAYLOAD_BYTES} bytes" in result.stderr, \
        result.stderr


def test_decoders_refuse_one_character_more_than_the_config_accepts() -> None:
    at = datetime(2026, 11, 27, 8, 0).astimezone()
    for length, accepted in ((MAX_NAME_LEN, True), (MAX_NAME_LEN + 1, False)):
        payload = wire.Call(seq=1, number="A001", counter="2", counter_name=_name(length), service="A",
                            priority=False, recall=False, at=at).encode()
        if accepted:
            assert wire.Call.decode(payload).counter_name == _name(length)
        else:
            with pytest.raises(PayloadError, match=f"at most {MAX_NAME_LEN} characters"):
                wire.Call.decode(payload)


def test_ids_are_checked_whole_a_trailing_line_break_included() -> None:
    assert is_valid_id("d" * MAX_ID_LEN)
    assert not is_valid_id("d" * (MAX_ID_LEN + 1))
    assert not is_valid_id("d1\n")
    assert not is_valid_id("")


def test_a_dispensers_labels_follow_the_name_limit(tmp_path: Path) -> None:
    from dispenser import config as dispenser_config  # noqa: PLC0415 - the dispenser's imports are heavy

    text = DISPENSER_CONFIG.read_text(encoding="utf-8")
    for length, refused in ((MAX_NAME_LEN, False), (MAX_NAME_LEN + 1, True)):
        path = tmp_path / "dispenser.toml"
        path.write_text(text.replace('label_vi = "Hộ tịch"', f'label_vi = "{_name(length)}"', 1), encoding="utf-8")
        if not refused:
            assert dispenser_config.load(path).buttons[0].label_vi == _name(length)
            continue
        with pytest.raises(ConfigError) as caught:
            dispenser_config.load(path)
        assert caught.value.key == 'buttons[key="1"].label_vi'
        assert f"at most {MAX_NAME_LEN} characters" in caught.value.problem


# --- text that cannot be stored ---------------------------------------------------------------------------------

def test_a_lone_surrogate_reads_as_a_replacement_character_so_every_text_can_be_stored(tmp_path: Path) -> None:
    """JSON's "\\ud800" decodes to a lone surrogate, which UTF-8 (SQLite, logs, MQTT) cannot carry: a request id or
    a rating's comment holding one once made the ledger's write fail. The decoders replace it."""
    from hall_controller.engine.events import RateTicket  # noqa: PLC0415 - only this test rates
    from hall_controller.ledger import LEDGER_FILE, Ledger  # noqa: PLC0415

    request = wire.TicketRequest.decode(b'{"v":1,"request_id":"r\\udfff\\ud800","service":"A"}')
    assert request.request_id == "r\ufffd\ufffd"  # (the other way round they would be a pair: one character)
    command = wire.ManagerCommand.decode(
        '{"v":1,"request_id":"q","user":"phone","action":"rate_ticket","ticket":"t1","rating":"neutral",'
        '"comment":"Ch\\u1edd l\\u00e2u \\udc80"}')
    assert command.comment == "Chờ lâu \ufffd"
    with pytest.raises(PayloadError, match="comment"):  # a citizen's comment is one line of text
        wire.ManagerCommand.decode('{"v":1,"request_id":"q","user":"phone","action":"rate_ticket","ticket":"t1",'
                                   '"rating":"neutral","comment":"a\\u001b[2Jb"}')
    spec = config.load(HALL_CONFIG).hall
    engine, now = Engine(spec), datetime.now(spec.zone).replace(hour=9)
    events = list(engine.handle(IssueTicket("d1", request.request_id, "A", False, None, "t1"), now=now).events)
    counter = next(c.id for c in spec.counters if "A" in c.services)
    for action in ("next", "complete"):
        events += engine.handle(ActAtCounter(counter, action, action), now=now).events
    rated = engine.handle(RateTicket("phone", "manager", command.request_id, "t1", "neutral",
                                     comment=command.comment), now=now + timedelta(seconds=5))
    assert rated.ok, rated.refusal
    ledger = Ledger(tmp_path / LEDGER_FILE, hall_id=spec.id)
    try:
        ledger.append([*events, *rated.events])
        assert [e.kind for e in ledger.events()][-1] == "ticket_rated"
    finally:
        ledger.close()
