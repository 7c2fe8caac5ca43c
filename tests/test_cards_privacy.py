"""Who can read a citizen's data: the production broker config with the provisioned accounts and ACL, a real
Mosquitto, the real controller reading cards. Only the dispenser that scanned (its own request), the controller,
and the counter that called (its own reply) ever receive it."""

from __future__ import annotations

import uuid
from pathlib import Path

from hall_controller import profiles
from hallq import wire
from tests.support import ControllerProcess
from tests.test_broker_security_broker import Client, SecuredHall, _account, _controller_config, hall  # noqa: F401
from tests.test_controller_cards import ELDER

PERSONAL = (b"Nguy", b"001050012345", b"0912 345 678", b"Tr\xc3\xa0ng Ti\xe1\xbb\x81n")


def test_a_display_another_counter_another_dispenser_the_manager_and_the_monitor_read_no_personal_data(
        hall: SecuredHall, tmp_path: Path) -> None:  # noqa: F811 - the secured hall fixture
    key = tmp_path / "profile.key"
    key.write_text(profiles.new_key_text(), encoding="ascii")
    config = _controller_config(hall, tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + f'\n[cards]\nkey_file = "{key}"\n', encoding="utf-8")
    t = hall.topics
    sensitive = [t.dispenser_request("d1"), t.counter_reply("1"), t.counter_command("1")]
    with ControllerProcess(config=config, broker=hall.broker, state_dir=tmp_path / "state"), \
            _account(hall, "d1") as d1, _account(hall, "counter-1") as counter1:
        spies = {name: _account(hall, name) for name in ("d2", "counter-2", "display-1", "manager", "monitor")}
        for spy in spies.values():
            spy.__enter__()
        try:
            for spy in spies.values():
                # Each asks for everything, and for the three topics by name; what the broker refuses or filters
                # is the point (a refused subscription is as good as an empty one).
                spy.client.subscribe([(topic, 1) for topic in [f"{t.root}/#", *sensitive]])
                spy.granted.get(timeout=5)
            d1.subscribe(t.dispenser_ticket("d1"))
            counter1.subscribe(t.counter_reply("1"))
            rid = uuid.uuid4().hex
            assert d1.publish(t.dispenser_request("d1"), wire.TicketRequest(
                request_id=rid, service="A", card=wire.CardScan("cccd", ELDER)).encode()) in (0, 16)
            reply = wire.TicketReply.decode(bytes(d1.expect(t.dispenser_ticket("d1")).payload))
            assert reply.ticket is not None and reply.ticket.card
            for action, edit in (("next", None), ("profile", wire.ProfileEdit(phone="0912 345 678")),
                                 ("complete", None)):
                assert counter1.publish(t.counter_command("1"), wire.CounterCommand(
                    request_id=uuid.uuid4().hex, action=action, profile=edit).encode()) in (0, 16)  # type: ignore[arg-type]
                answer = wire.CounterReply.decode(bytes(counter1.expect(t.counter_reply("1")).payload))
                assert answer.ok, answer
                if action != "complete":
                    assert answer.profile is not None and answer.profile.name == "Nguyễn Văn An"
            # The counter's state after `complete` is public and published after every reply above, by the same
            # connection: a spy that has it would have had the replies first, had the broker let them through.
            for name, spy in spies.items():
                seen: list[tuple[str, bytes]] = []
                while True:
                    message = spy.messages.get(timeout=5)
                    seen.append((message.topic, bytes(message.payload)))
                    if message.topic == t.counter_state("1") and not message.retain \
                            and b'"ticket":null' in message.payload:
                        break
                assert not [topic for topic, _ in seen if topic in sensitive], (name, [s[0] for s in seen])
                assert not [topic for topic, payload in seen if any(p in payload for p in PERSONAL)], name
        finally:
            for spy in spies.values():
                spy.close()
