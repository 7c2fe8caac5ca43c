"""The production broker config with the generated accounts, ACL and certificates, on a real Mosquitto.

Each test provisions the fixture hall (plus the display in ``fixtures/displays.toml``) into its own
directory, makes a CA and server certificate, and starts ``config/mosquitto/hallq.conf`` with its two
listeners moved to free loopback ports and its file paths pointed at the generated files. Clients are raw
paho MQTT v5 clients so that every refusal is seen as the broker sends it (CONNACK and PUBACK reason codes).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from hall_controller import config as config_mod
from hall_controller.provision import CREDENTIAL_SUFFIX, provision, read_displays
from hall_controller.tls import ensure_certs
from hallq import wire
from hallq.topics import Topics
from testbed.broker import PrivateBroker, free_port, production_config
from tests.support import FIXTURES, HALL_CONFIG, HALL_ID, ControllerProcess, wait_until

NOT_AUTHORIZED = 135
BAD_CREDENTIALS = 134
# Options that belong to the listener line above them (mosquitto.conf(5), "Listener specific").


@dataclass
class SecuredHall:
    broker: PrivateBroker
    tls_port: int
    out: Path
    tls_dir: Path
    topics: Topics

    def password(self, username: str) -> str:
        return (self.out / "credentials" / f"{username}{CREDENTIAL_SUFFIX}").read_text(encoding="utf-8").strip()

    def broker_log(self) -> str:
        return self.broker.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[SecuredHall]:
    out, tls_dir = tmp_path / "broker-files", tmp_path / "broker-files" / "tls"
    cfg = config_mod.load(HALL_CONFIG)
    provision(cfg, out=out, displays=read_displays(FIXTURES / "displays.toml"))
    ensure_certs(tls_dir, hall=HALL_ID, names=["localhost", "127.0.0.1"])
    tls_port = free_port()
    (tmp_path / "broker").mkdir()
    template, tls_block = production_config(tmp_path / "broker" / "hallq-template.conf", out=out, tls_dir=tls_dir,
                                            tls_port=tls_port)
    with PrivateBroker(tmp_path / "broker", config=template, extra_lines=tls_block) as broker:
        yield SecuredHall(broker=broker, tls_port=tls_port, out=out, tls_dir=tls_dir, topics=Topics(hall=HALL_ID))


def _controller_config(hall: SecuredHall, directory: Path, *, tls: bool = False) -> Path:
    """The fixture hall's config with the controller's generated credential (and, with ``tls``, the CA)."""
    text = HALL_CONFIG.read_text(encoding="utf-8")
    mqtt = (f'[mqtt]\nusername = "controller"\n'
            f'password_file = "{hall.out / "credentials" / ("controller" + CREDENTIAL_SUFFIX)}"\n')
    if tls:
        mqtt += f'tls = true\nca_file = "{hall.tls_dir / "ca.crt"}"\n'
    path = directory / "hall-secured.toml"
    path.write_text(text.replace("[mqtt]\n", mqtt, 1), encoding="utf-8")
    return path


@pytest.fixture
def controller(hall: SecuredHall, tmp_path: Path) -> Iterator[ControllerProcess]:
    with ControllerProcess(config=_controller_config(hall, tmp_path), broker=hall.broker,
                           state_dir=tmp_path / "state") as process:
        yield process


class Client:
    """One raw paho v5 connection for one account; waits for CONNACK, PUBACK and SUBACK explicitly."""

    def __init__(self, port: int, username: str | None, password: str | None, *, client_id: str | None = None,
                 ca_file: Path | None = None, tls: bool = False) -> None:
        self.port = port
        self.host = "localhost" if tls else "127.0.0.1"  # TLS dials a name of the certificate
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or username or "",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=str(ca_file) if ca_file else None, cert_reqs=ssl.CERT_REQUIRED)
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.acks: dict[int, queue.Queue[int]] = {}
        self.granted: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.disconnected = threading.Event()
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.acks.setdefault(mid, queue.Queue()).put(rc.value)
        self.client.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.granted.put(rcs)
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_disconnect = lambda *_args: self.disconnected.set()

    def connect(self) -> ReasonCode:
        self.client.connect(self.host, self.port, keepalive=15)
        self.client.loop_start()
        return self.connack.get(timeout=5)

    def __enter__(self) -> Client:
        code = self.connect()
        assert not code.is_failure, f"connection refused: {code}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """The PUBACK reason code: 0 accepted (or accepted with no subscribers: 16), 135 refused by the ACL."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return self.acks.setdefault(info.mid, queue.Queue()).get(timeout=5)

    def subscribe(self, *topics: str) -> None:
        self.client.subscribe([(t, 1) for t in topics])
        codes = self.granted.get(timeout=5)
        assert all(not c.is_failure for c in codes), codes

    def expect(self, topic: str, *, timeout_s: float = 5.0) -> paho.MQTTMessage:
        """The next message on ``topic``; messages on other topics are passed over."""
        while True:
            message = self.messages.get(timeout=timeout_s)
            if message.topic == topic:
                return message

    def until(self, topic: str, payload: bytes, *, timeout_s: float = 5.0) -> list[tuple[str, bytes]]:
        """Every message received up to and including (``topic``, ``payload``), a marker: what was published
        before the marker, and was going to reach this client, has reached it."""
        received: list[tuple[str, bytes]] = []
        while not received or received[-1] != (topic, payload):
            message = self.messages.get(timeout=timeout_s)
            received.append((message.topic, bytes(message.payload)))
        return received

    def received_topics(self) -> list[str]:
        topics = []
        while not self.messages.empty():
            topics.append(self.messages.get_nowait().topic)
        return topics


def _account(hall: SecuredHall, username: str, **kwargs: Any) -> Client:
    return Client(hall.broker.port, username, hall.password(username), **kwargs)


def _refused(client: Client) -> bool:
    try:
        return client.connect().is_failure
    finally:
        client.close()


def _retained(client: Client, topic: str, *, marker: str) -> bool:
    """Whether the broker holds a retained message on ``topic``. The broker holds one on ``marker`` too:
    subscribed after ``topic``, it comes after ``topic``'s, if any. (Live messages come without the retain flag.)"""
    client.subscribe(topic)
    client.subscribe(marker)
    try:
        held = False
        while not ((message := client.messages.get(timeout=5)).topic == marker and message.retain):
            held = held or (message.topic == topic and message.retain)
        return held
    finally:
        client.client.unsubscribe([topic, marker])


def _request(client: Client, topics: Topics, dispenser: str, service: str = "A") -> bytes:
    rid = uuid.uuid4().hex
    assert client.publish(topics.dispenser_request(dispenser),
                          wire.TicketRequest(request_id=rid, service=service).encode()) in (0, 16)
    return rid.encode()


def _ticket(client: Client, topics: Topics, dispenser: str) -> str:
    """Request a ticket as ``dispenser`` and return its number (the client reads that dispenser's ticket topic)."""
    rid = _request(client, topics, dispenser)
    while True:
        reply = wire.TicketReply.decode(bytes(client.expect(topics.dispenser_ticket(dispenser)).payload))
        if reply.request_id.encode() == rid:
            assert reply.ticket is not None, reply.error
            return reply.ticket.number


def _next(client: Client, topics: Topics, counter: str) -> wire.CounterReply:
    rid = uuid.uuid4().hex
    assert client.publish(topics.counter_command(counter),
                          wire.CounterCommand(request_id=rid, action="next").encode()) in (0, 16)
    while True:
        reply = wire.CounterReply.decode(bytes(client.expect(topics.counter_reply(counter)).payload))
        if reply.request_id == rid:
            return reply


def test_anonymous_client_is_refused(hall: SecuredHall) -> None:
    assert Client(hall.broker.port, None, None, client_id="anon").connect().value == NOT_AUTHORIZED
    assert "not authorised" in hall.broker_log()


def test_wrong_password_is_refused(hall: SecuredHall) -> None:
    code = Client(hall.broker.port, "d1", hall.password("d1") + "x").connect()
    assert code.value in (BAD_CREDENTIALS, NOT_AUTHORIZED)
    code = Client(hall.broker.port, "nobody", hall.password("d1")).connect()
    assert code.value in (BAD_CREDENTIALS, NOT_AUTHORIZED)


def test_every_device_connects_with_its_generated_credentials(hall: SecuredHall) -> None:
    codes = {}
    for username in ("controller", "d1", "d2", "d3", "counter-1", "counter-4", "display-1", "monitor"):
        client = _account(hall, username)
        codes[username] = client.connect().value
        client.close()
    assert codes == dict.fromkeys(codes, 0)  # CONNACK: success


def test_dispenser_cannot_command_a_counter_or_request_for_another_dispenser(
    hall: SecuredHall, controller: ControllerProcess
) -> None:
    t = hall.topics
    with _account(hall, "d1") as d1, _account(hall, "d2") as d2, _account(hall, "counter-1") as counter:
        d1.subscribe(t.dispenser_ticket("d1"))
        d2.subscribe(t.dispenser_ticket("d2"))
        counter.subscribe(t.counter_reply("1"))
        assert _ticket(d1, t, "d1") == "A001"
        forged_request = wire.TicketRequest(request_id="forged", service="A").encode()
        forged_next = wire.CounterCommand(request_id="forged", action="next").encode()
        assert d1.publish(t.dispenser_request("d2"), forged_request) == NOT_AUTHORIZED
        assert d1.publish(t.counter_command("1"), forged_next) == NOT_AUTHORIZED
        # Neither reached the controller: d2's next ticket is A002, and counter 1's first call gets A001.
        assert _ticket(d2, t, "d2") == "A002"
        reply = _next(counter, t, "1")
    assert reply.ticket is not None and reply.ticket.number == "A001"
    log = hall.broker_log()
    assert re.search(rf"Denied PUBLISH from d1 .*'{re.escape(t.dispenser_request('d2'))}'", log), log
    assert re.search(rf"Denied PUBLISH from d1 .*'{re.escape(t.counter_command('1'))}'", log), log


def test_dispenser_does_not_receive_another_dispensers_tickets(
    hall: SecuredHall, controller: ControllerProcess
) -> None:
    t = hall.topics
    with _account(hall, "d1") as d1, _account(hall, "d2") as d2:
        d1.subscribe(t.dispenser_ticket("d1"), t.dispenser_ticket("d2"))
        d2.subscribe(t.dispenser_ticket("d2"))
        _ticket(d2, t, "d2")
        # The controller answers in order: once d1 has its own reply, d2's earlier reply would have come first.
        _ticket(d1, t, "d1")
        assert t.dispenser_ticket("d2") not in d1.received_topics()


def test_counter_cannot_command_another_counter(hall: SecuredHall, controller: ControllerProcess) -> None:
    t = hall.topics
    with _account(hall, "counter-2") as counter2:
        counter2.subscribe(t.counter_reply("2"))
        assert counter2.publish(t.counter_command("1"), wire.CounterCommand(request_id="x", action="close").encode()) \
            == NOT_AUTHORIZED
        assert _next(counter2, t, "2").error_code == "queue_empty"


def test_display_cannot_publish_anything(hall: SecuredHall, controller: ControllerProcess) -> None:
    t = hall.topics
    with _account(hall, "display-1") as display:
        display.subscribe(t.board(), t.calls(), t.all_counter_states())
        board = wire.Board.decode(bytes(display.expect(t.board()).payload))  # retained, published by the controller
        for topic in (t.calls(), t.board(), t.counter_command("1"), t.dispenser_request("d1"),
                      t.dispenser_printed("d1"), t.counter_state("1"), t.status("display-1"), f"{t.root}/anything"):
            assert display.publish(topic, b'{"v": 1}') == NOT_AUTHORIZED, topic
    assert board.hall == HALL_ID


def test_a_controller_connection_reads_only_its_devices_topics_and_publishes_nothing(hall: SecuredHall) -> None:
    """The intake account ``controller.dispenser.d1`` logs in with the controller's password, but may only read d1's
    requests and print reports: not another dispenser's, and it may not publish a call or a reply."""
    t = hall.topics
    with Client(hall.broker.port, "controller.dispenser.d1", hall.password("controller")) as intake, \
            _account(hall, "d1") as d1, _account(hall, "d2") as d2:
        intake.subscribe(t.dispenser_request("d1"), t.dispenser_request("d2"), t.calls())
        assert d1.publish(t.dispenser_request("d1"), b'{"v": 1}') in (0, 16)
        assert d2.publish(t.dispenser_request("d2"), b'{"v": 1}') in (0, 16)
        for topic in (t.calls(), t.dispenser_ticket("d1"), t.counter_reply("1"), t.board()):
            assert intake.publish(topic, b'{"v": 1}') == NOT_AUTHORIZED, topic
        assert d1.publish(t.dispenser_request("d1"), b'{"v": 2}') in (0, 16)  # a marker: d2's request came before
        assert intake.until(t.dispenser_request("d1"), b'{"v": 2}') == [(t.dispenser_request("d1"), b'{"v": 1}'),
                                                                        (t.dispenser_request("d1"), b'{"v": 2}')]


def test_the_others_connection_receives_only_ids_the_config_does_not_know(hall: SecuredHall) -> None:
    """The broker, not the controller, keeps the configured devices' messages off ``controller.others``: each is
    received once, on its device's own connection."""
    t = hall.topics
    with Client(hall.broker.port, "controller.others", hall.password("controller")) as others, \
            _account(hall, "controller") as sender:
        others.subscribe(t.all_dispenser_requests(), t.all_counter_commands())
        for topic in (t.dispenser_request("d1"), t.counter_command("1"), t.dispenser_request("ghost"),
                      t.counter_command("99")):
            assert sender.publish(topic, b'{"v": 1}') in (0, 16)
        assert sender.publish(t.dispenser_request("ghost"), b'{"v": 2}') in (0, 16)  # a marker: all before it came
        received: list[tuple[str, bytes]] = []
        while not received or received[-1] != (t.dispenser_request("ghost"), b'{"v": 2}'):
            message = others.messages.get(timeout=5)
            received.append((message.topic, bytes(message.payload)))
        assert [topic for topic, _ in received] == [t.dispenser_request("ghost"), t.counter_command("99"),
                                                    t.dispenser_request("ghost")]


def test_a_device_connection_that_cannot_log_in_does_not_keep_the_hall_offline(
    hall: SecuredHall, tmp_path: Path
) -> None:
    """d3 was added to the config but the broker was not given its intake account (provision not run again):
    the controller still goes online after its grace period, names the connection that is down, and serves
    everyone else."""
    passwd = hall.out / "passwd"
    passwd.write_text("".join(line for line in passwd.read_text(encoding="utf-8").splitlines(keepends=True)
                              if not line.startswith("controller.dispenser.d3:")), encoding="utf-8")
    assert hall.broker.pid is not None
    os.kill(hall.broker.pid, signal.SIGHUP)  # Mosquitto reads its password file again
    wait_until(lambda: _refused(Client(hall.broker.port, "controller.dispenser.d3", hall.password("controller"))),
               timeout_s=5, what="the broker refuses controller.dispenser.d3 after reading its password file")
    process = ControllerProcess(config=_controller_config(hall, tmp_path), broker=hall.broker,
                                state_dir=tmp_path / "state")
    try:
        process.start(timeout_s=20)  # the grace period is 10 s
        assert "receiving from 7 of 8 devices" in process.log_text()
        process.wait_for_log("device connections down", timeout_s=10)
        with _account(hall, "d1") as d1:
            d1.subscribe(hall.topics.dispenser_ticket("d1"))
            assert _ticket(d1, hall.topics, "d1") == "A001"
    finally:
        process.stop()
    log = process.log_text()
    line = next(line for line in log.splitlines() if "device connections down" in line)
    assert "WARNING" in line and "controller.dispenser.d3" in line and "provision" in line
    assert log.count("broker refused connection client=controller.dispenser.d3") == 1  # not once per retry


def test_a_device_cannot_take_the_controllers_client_id(hall: SecuredHall, controller: ControllerProcess) -> None:
    """``use_username_as_clientid``: d1 asking for client id "controller" is still d1, and the controller stays."""
    t = hall.topics
    with _account(hall, "d1", client_id="controller") as impostor:
        impostor.subscribe(t.dispenser_ticket("d1"))
        assert _ticket(impostor, t, "d1") == "A001"
    assert "as d1 (p5" in hall.broker_log()
    assert not re.search(r"Client controller .*already connected, closing old connection", hall.broker_log())


def test_tls_listener_accepts_a_client_with_the_generated_ca(hall: SecuredHall) -> None:
    d1 = Client(hall.tls_port, "d1", hall.password("d1"), tls=True, ca_file=hall.tls_dir / "ca.crt")
    try:
        assert d1.connect().value == 0  # CONNACK: success
        assert isinstance(d1.client.socket(), ssl.SSLSocket)
        d1.client.subscribe(hall.topics.board(), qos=1)
        assert [code.is_failure for code in d1.granted.get(timeout=5)] == [False]
    finally:
        d1.close()


def test_tls_listener_is_refused_without_the_ca(hall: SecuredHall) -> None:
    client = Client(hall.tls_port, "d1", hall.password("d1"), tls=True)  # the system's CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect()


def test_tls_listener_still_requires_a_password(hall: SecuredHall) -> None:
    client = Client(hall.tls_port, "d1", "wrong", tls=True, ca_file=hall.tls_dir / "ca.crt")
    assert client.connect().value in (BAD_CREDENTIALS, NOT_AUTHORIZED)


def test_controller_serves_over_tls_from_its_config(hall: SecuredHall, tmp_path: Path) -> None:
    """The role's own config path: ``tls = true`` and ``ca_file`` in [mqtt], dialling the TLS listener by name."""
    config = _controller_config(hall, tmp_path, tls=True)
    # ControllerProcess passes the plain listener's --broker first; the last --broker wins.
    with ControllerProcess(config=config, broker=hall.broker, state_dir=tmp_path / "state",
                           extra_args=("--broker", f"localhost:{hall.tls_port}")) as process, \
            _account(hall, "d1") as d1:
        d1.subscribe(hall.topics.dispenser_ticket("d1"))
        assert _ticket(d1, hall.topics, "d1") == "A001"
    assert "connected to broker localhost" in process.log_text()


def test_under_the_provisioned_acl_the_controller_clears_what_a_device_retained(
    hall: SecuredHall, tmp_path: Path
) -> None:
    """A dispenser's own account may set the retain
    flag on its request topic, and the controller's account may clear it (it reads and writes the whole hall)."""
    t = hall.topics
    with _account(hall, "d1") as d1:
        stale = wire.TicketRequest(request_id="stale-request", service="A").encode()
        assert d1.publish(t.dispenser_request("d1"), stale, retain=True) in (0, 16)
    with ControllerProcess(config=_controller_config(hall, tmp_path), broker=hall.broker,
                           state_dir=tmp_path / "state") as controller:
        with _account(hall, "monitor") as monitor:
            monitor.subscribe(t.board())
            monitor.expect(t.board())  # the controller published its board: the broker holds it, the marker
            monitor.client.unsubscribe(t.board())
            wait_until(lambda: not _retained(monitor, t.dispenser_request("d1"), marker=t.board()), timeout_s=5,
                       what="the controller clears the retained request", every_s=0.1)
        with _account(hall, "d1") as d1:
            d1.subscribe(t.dispenser_ticket("d1"))
            assert _ticket(d1, t, "d1") == "A001"  # the stale request was never issued
    assert "ignored a retained message from dispenser=d1" in controller.log_text()
    assert "Denied PUBLISH from controller " not in hall.broker_log()
