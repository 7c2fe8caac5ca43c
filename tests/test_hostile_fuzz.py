"""Property-based fuzzing of every topic the controller subscribes to, against the live process and a real broker.

Hypothesis generates hostile messages for ``dispenser/+/request``, ``dispenser/+/printed`` and
``counter/+/command``: bytes that are not JSON, JSON that is not an object, wrong types, huge strings and
numbers, unknown fields, other versions, unknown and malformed device ids, replayed request ids in any
order, and well-formed commands the hall must refuse (a closed counter, a counter serving nobody, a ticket
that does not exist, a service the counter does not serve). Every message is built so that the controller
must refuse it or answer it from what it already stored; an independent oracle says which answer each
request must get, and the test checks that answer. Meanwhile a well-behaved dispenser keeps asking for
tickets and its round trips are recorded.

Afterwards: the controller is still running, the ledger holds exactly the seed events plus the
well-behaved dispenser's tickets, and the board (calls and counters) is what it was.

How many payloads: ``HALLQ_FUZZ_PAYLOADS`` (default 1000: about 30 s, for CI), with ``HALLQ_FUZZ_SEED`` (default
20261127). The full run, with the figures written to ``bench/results/fuzz.json``::

    HALLQ_FUZZ_PAYLOADS=10000 HALLQ_FUZZ_RESULTS=bench/results/fuzz.json .venv/bin/pytest -q tests/test_hostile_fuzz.py
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import queue
import re
import sqlite3
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, reject, seed, settings
from hypothesis import strategies as st

from hall_controller.engine.events import Event, TicketIssued
from hall_controller.ledger import Ledger
from hallq import wire
from hallq.errors import PayloadError
from hallq.mqtt import Message
from hallq.topics import Topics, is_valid_id
from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, HALL_ID, ControllerProcess, Probe

PAYLOADS = int(os.environ.get("HALLQ_FUZZ_PAYLOADS", "1000"))
SEED = int(os.environ.get("HALLQ_FUZZ_SEED", "20261127"))
RESULTS = os.environ.get("HALLQ_FUZZ_RESULTS")
TOPICS = Topics(hall=HALL_ID)
DISPENSERS = ("d1", "d2", "d3")
COUNTERS = ("1", "2", "3", "4")
# Ids that are not ids: the controller must ignore these topics altogether. (MQTT forbids + # / and NUL in a
# published topic, and Mosquitto disconnects a client whose topic holds a control character: those never
# reach the controller.)
MALFORMED_IDS = ("", "a b", "x" * 40, "-lead", "quầy", "a:b", ".dot", "semi;colon")
BROKER_SAFE_BYTES = 60_000
NUMBER_LIKE = re.compile(r"^(A|B|C|UB)\d{3}$")
BASELINE_ROUND_TRIPS = 40                                   # the well-behaved dispenser's, before the fuzzing


# --- the hall as the seed leaves it --------------------------------------------------------------------------

@dataclass
class Seed:
    """What the seed stored: tickets by (dispenser, request id), accepted counter commands, ticket ids."""

    tickets: dict[tuple[str, str], wire.TicketInfo]
    commands: set[tuple[str, str]]
    printed: dict[str, str]          # ticket id -> dispenser, printed
    voided: dict[str, str]           # ticket id -> dispenser, voided
    serving_at_1: wire.ServingTicket


def _seed(probe: Probe) -> Seed:
    tickets = {}
    for dispenser, service, priority, rid in (("d1", "A", False, "seed-a"), ("d1", "A", False, "seed-b"),
                                              ("d1", "A", False, "seed-c"), ("d2", "B", True, "seed-p"),
                                              ("d3", "C", False, "seed-q")):
        reply = probe.request_ticket(dispenser, service, priority=priority, request_id=rid)
        assert reply.ticket is not None, reply.error
        tickets[(dispenser, rid)] = reply.ticket
    a1, a2, a3 = (tickets[("d1", r)] for r in ("seed-a", "seed-b", "seed-c"))
    ub1, c1 = tickets[("d2", "seed-p")], tickets[("d3", "seed-q")]
    for dispenser, ticket, ok in (("d1", a1, True), ("d1", a2, False), ("d1", a3, True), ("d2", ub1, True),
                                  ("d3", c1, True)):
        probe.publish(TOPICS.dispenser_printed(dispenser),
                      wire.PrintReport(ticket_id=ticket.id, ok=ok, reason=None if ok else "paper_out").encode())
    called = probe.command("1", "next", request_id="seed-next")        # priority first: UB001 at counter 1
    assert called.ticket is not None and called.ticket.number == ub1.number
    assert probe.command("3", "pause", request_id="seed-pause").status == "paused"
    return Seed(tickets=tickets, commands={("1", "seed-next"), ("3", "seed-pause")},
                printed={a1.id: "d1", a3.id: "d1", ub1.id: "d2", c1.id: "d3"}, voided={a2.id: "d1"},
                serving_at_1=called.ticket)


# --- generated messages and the answers they must get ---------------------------------------------------------

@dataclass(frozen=True)
class Hostile:
    """One message to publish, and the reply it must get: (reply topic, request id, code) or None."""

    topic: str
    payload: bytes
    expect: tuple[str, str, str] | None


# Long strings are a character repeated: as hostile to the decoder as random ones, and far cheaper to generate.
long_texts = st.builds(lambda ch, n: ch * n, st.characters(), st.integers(min_value=190, max_value=5000))
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False), st.text(max_size=30), long_texts,
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
request_ids = st.text(min_size=1, max_size=64).filter(lambda s: not s.startswith("valid-"))
unknown_fields = st.dictionaries(st.text(min_size=1, max_size=12).filter(
    lambda k: k not in {"v", "request_id", "service", "priority", "category", "ticket_id", "ok", "reason",
                        "action", "ticket"}), json_values, max_size=3)
versions = st.sampled_from([2, 0, -1, "1", 1.0, True, None, 10**30])


def _capped(payload: bytes) -> bytes:
    """Under the broker's 64 KiB packet limit: beyond it the broker drops the sender (tested in
    test_hostile_flood.py and test_controller_e2e.py), and the fuzzer would lose its replies."""
    return payload[:BROKER_SAFE_BYTES]


def _topic(role: str, device: str, leaf: str) -> str:
    """The topic a device publishes on; a hostile one may use a segment that ``Topics`` refuses to build."""
    return f"{TOPICS.root}/{role}/{device}/{leaf}"


def _loose_request_id(payload: bytes) -> str:
    """The request id the controller can echo from a payload that failed validation (the contract's rule)."""
    if len(payload) > wire.MAX_PAYLOAD_BYTES:
        return ""
    try:
        obj = json.loads(payload)
    except ValueError:
        return ""
    value = obj.get("request_id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else ""


def _raw_payloads() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        st.builds(lambda head, n: head + b"x" * n, st.binary(max_size=40),                 # around the size limit
                  st.integers(min_value=wire.MAX_PAYLOAD_BYTES - 50, max_value=wire.MAX_PAYLOAD_BYTES + 4000)),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.sampled_from([b"", b"null", b"[]", b"{", b'{"v":1}', b'{"v":NaN}', b"\xff\xfe", b'{"v":1e999}']),
    )


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


class Oracle:
    """The answer each message must get, from the seeded state alone (no accepted change is ever generated)."""

    def __init__(self, seeded: Seed) -> None:
        self.seed = seeded
        self.counter_services = {"1": ("A", "B", "C"), "2": ("A", "B"), "3": ("A",), "4": ("C",)}
        self.status = {"1": "open", "2": "open", "3": "paused", "4": "closed"}

    def request(self, device: str, payload: bytes) -> tuple[str, str, str] | None:
        if not is_valid_id(device):
            return None
        topic = TOPICS.dispenser_ticket(device)
        try:
            request = wire.TicketRequest.decode(payload)
        except PayloadError as exc:
            return (topic, _loose_request_id(payload), exc.code)
        rid = request.request_id
        if device not in DISPENSERS:
            return (topic, rid, "unknown_dispenser")
        if (device, rid) in self.seed.tickets:
            return (topic, rid, "ticket:" + self.seed.tickets[(device, rid)].id)
        if request.service not in ("A", "B", "C"):
            return (topic, rid, "unknown_service")
        if device == "d3" and request.service != "C":
            return (topic, rid, "not_allowed")
        return reject()  # it would issue a ticket: not hostile

    def printed(self, device: str, payload: bytes) -> None:
        if not is_valid_id(device) or device not in DISPENSERS:
            return
        try:
            report = wire.PrintReport.decode(payload)
        except PayloadError:
            return
        owner = self.seed.printed.get(report.ticket_id) or self.seed.voided.get(report.ticket_id)
        if owner != device:
            return                                          # unknown_ticket: no reply, no change
        if report.ok and report.ticket_id in self.seed.printed:
            return                                          # printed again: nothing new
        if not report.ok and report.ticket_id in self.seed.voided:
            return                                          # voided again: nothing new
        reject()  # it would print a voided ticket or void a printed one: a change

    def command(self, device: str, payload: bytes) -> tuple[str, str, str] | None:
        if not is_valid_id(device):
            return None
        topic = TOPICS.counter_reply(device)
        try:
            command = wire.CounterCommand.decode(payload)
        except PayloadError as exc:
            return (topic, _loose_request_id(payload), exc.code)
        rid = command.request_id
        if device not in COUNTERS:
            return (topic, rid, "unknown_counter")
        if (device, rid) in self.seed.commands:
            return (topic, rid, "ok")
        code = self._counter_refusal(device, command)
        if code is None:
            reject()  # an accepted command: not hostile
        return (topic, rid, code)

    def _counter_refusal(self, counter: str, command: wire.CounterCommand) -> str | None:
        status, services = self.status[counter], self.counter_services[counter]
        serving = self.seed.serving_at_1 if counter == "1" else None
        action = command.action
        if action == "open":
            return None                                     # accepted, even when already open
        if action == "pause":
            return "counter_closed" if status == "closed" else None
        if action == "close":
            return "counter_busy" if serving is not None else None
        if action in ("next", "call") and status == "closed":
            return "counter_closed"
        if action in ("recall", "complete", "no_show", "transfer"):
            if serving is None:
                return "not_serving"
            if action != "transfer":
                return None
            if command.service not in ("A", "B", "C"):
                return "unknown_service"
            return "not_allowed" if command.service == serving.service else None
        if action == "next":
            if command.service is not None and command.service not in services:
                return "not_allowed"
            return None
        assert action == "call", action
        number = command.ticket or ""
        if serving is not None and number == serving.number:
            return "not_allowed"                            # already called, here
        if number == self.seed.tickets[("d3", "seed-q")].number and "C" not in services:
            return "not_allowed"                            # waiting, but not this counter's service
        if NUMBER_LIKE.match(number):
            return None                                     # may exist: not certainly refused
        return "unknown_ticket"


def _request_messages(oracle: Oracle) -> st.SearchStrategy[Hostile]:
    devices = st.sampled_from(DISPENSERS) | st.sampled_from(("ghost", "d4", "D1", "kiosk-9")) \
        | st.sampled_from(MALFORMED_IDS)

    @st.composite
    def build(draw: st.DrawFn) -> Hostile:
        device = draw(devices)
        kind = draw(st.sampled_from(["raw", "typed", "replay", "refused", "version"]))
        if kind == "raw":
            payload = draw(_raw_payloads())
        elif kind == "replay":
            (owner, rid), _ = draw(st.sampled_from(sorted(oracle.seed.tickets.items())))
            device = draw(st.sampled_from([owner, owner, *DISPENSERS]))
            payload = _encode({"v": 1, "request_id": rid, "service": draw(st.sampled_from("ABCZ")),
                               **draw(unknown_fields)})
        elif kind == "refused":
            payload = _encode({"v": 1, "request_id": draw(request_ids),
                               "service": draw(st.sampled_from(["Z", "a", "AA", "D"]) | st.text(max_size=40)),
                               "priority": draw(st.booleans()), **draw(unknown_fields)})
        elif kind == "version":
            payload = _encode({"v": draw(versions), "request_id": draw(request_ids), "service": "A"})
        else:
            payload = _encode({"v": 1, "request_id": draw(json_values | request_ids), "service": draw(json_values),
                               "priority": draw(json_values), "category": draw(json_values)})
        payload = _capped(payload)
        return Hostile(_topic("dispenser", device, "request"), payload, oracle.request(device, payload))

    return build()


def _printed_messages(oracle: Oracle) -> st.SearchStrategy[Hostile]:
    known = sorted({**oracle.seed.printed, **oracle.seed.voided}.items())

    @st.composite
    def build(draw: st.DrawFn) -> Hostile:
        device = draw(st.sampled_from(DISPENSERS) | st.sampled_from(("ghost", *MALFORMED_IDS[:3])))
        kind = draw(st.sampled_from(["raw", "known", "unknown"]))
        if kind == "raw":
            payload = draw(_raw_payloads())
        elif kind == "known":
            ticket_id, owner = draw(st.sampled_from(known))
            device = draw(st.sampled_from([owner, *DISPENSERS]))
            ok = ticket_id in oracle.seed.printed if device == owner else draw(st.booleans())
            payload = _encode({"v": 1, "ticket_id": ticket_id, "ok": ok, "reason": draw(json_values),
                               **draw(unknown_fields)})
        else:
            payload = _encode({"v": draw(st.sampled_from([1, 1, 2])), "ticket_id": draw(json_values | request_ids),
                               "ok": draw(json_values), "reason": draw(json_values)})
        payload = _capped(payload)
        oracle.printed(device, payload)
        return Hostile(_topic("dispenser", device, "printed"), payload, None)

    return build()


def _command_messages(oracle: Oracle) -> st.SearchStrategy[Hostile]:
    actions = st.sampled_from(wire.COUNTER_ACTIONS)

    @st.composite
    def build(draw: st.DrawFn) -> Hostile:
        device = draw(st.sampled_from(COUNTERS) | st.sampled_from(("9", "counter-1", "01"))
                      | st.sampled_from(MALFORMED_IDS))
        kind = draw(st.sampled_from(["raw", "typed", "replay", "refused", "refused", "version"]))
        if kind == "raw":
            payload = draw(_raw_payloads())
        elif kind == "replay":
            counter, rid = draw(st.sampled_from(sorted(oracle.seed.commands)))
            payload = _encode({"v": 1, "request_id": rid, "action": draw(actions), **draw(unknown_fields)})
            device = counter
        elif kind == "refused":
            payload = _encode({"v": 1, "request_id": draw(request_ids), "action": draw(actions),
                               "ticket": draw(st.sampled_from(["A001", "UB001", "C001", "Z999", "A0001", "x"])
                                              | st.text(min_size=1, max_size=16)),
                               "service": draw(st.sampled_from(["A", "B", "C", "Z"]) | st.none()),
                               **draw(unknown_fields)})
        elif kind == "version":
            payload = _encode({"v": draw(versions), "request_id": draw(request_ids), "action": "next"})
        else:
            payload = _encode({"v": 1, "request_id": draw(json_values | request_ids),
                               "action": draw(json_values | actions), "ticket": draw(json_values),
                               "service": draw(json_values)})
        payload = _capped(payload)
        return Hostile(_topic("counter", device, "command"), payload, oracle.command(device, payload))

    return build()


# --- the well-behaved dispenser ------------------------------------------------------------------------------

def _reply_to(topic: str, request_id: str, message: Message) -> bool:
    return message.topic == topic and wire.TicketReply.decode(message.payload).request_id == request_id


def valid_dispenser(port: int, baseline: Any, fuzzing: Any, stop: Any, results: Any) -> None:
    """d2 asking for a ticket every 50 ms, recording each round trip; ``baseline`` is set once it has
    ``BASELINE_ROUND_TRIPS`` before the fuzzing starts.

    It takes A, B, C and priority B tickets in turn and stops asking after 900 of each (3,600 in all): nobody
    serves them, and each sequence has 999 numbers a day.

    Runs in its own process (``multiprocessing`` spawn), so that Hypothesis generating payloads in the test
    process does not hold the interpreter lock while a reply waits to be read: what is measured is the
    controller, not the fuzzer.
    """
    broker = PrivateBroker(Path("/nonexistent"), port=port)  # only its port is used: the test runs the broker
    round_trips_s: list[float] = []
    before_s: list[float] = []                              # before the fuzzing starts: this machine's normal
    tickets: dict[str, str] = {}
    failures: list[str] = []
    topic = TOPICS.dispenser_ticket("d2")
    with Probe(broker, subscriptions=[topic]) as probe:
        n = 0
        while not stop.is_set():
            n += 1
            if n > 3600:
                stop.wait(0.1)
                continue
            rid = f"valid-{uuid.uuid4().hex}"
            sent = time.perf_counter()
            service, priority = (("A", False), ("B", False), ("C", False), ("B", True))[n % 4]
            probe.publish(TOPICS.dispenser_request("d2"),
                          wire.TicketRequest(request_id=rid, service=service, priority=priority).encode())
            try:
                message = probe.expect(functools.partial(_reply_to, topic, rid), timeout_s=5)
            except AssertionError:
                failures.append(f"{rid}: no answer within 5 s")
                continue
            (round_trips_s if fuzzing.is_set() else before_s).append(time.perf_counter() - sent)
            if len(before_s) >= BASELINE_ROUND_TRIPS:
                baseline.set()
            probe.received.clear()                          # the fuzzer's replies to d2 are not ours
            reply = wire.TicketReply.decode(message.payload)
            if reply.ticket is None:
                failures.append(f"{rid}: {reply.error}")
            else:
                tickets[rid] = reply.ticket.id
            stop.wait(0.05)                                 # its pace: a dispenser, not a flood
    results.put((round_trips_s, before_s, tickets, failures))


# --- the run ---------------------------------------------------------------------------------------------

def _journal_count(state: Path) -> int:
    with sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM journal").fetchone()[0])


def _journal_since(state: Path, first: int) -> list[Event]:
    """The events stored after the first ``first`` ones (read once the controller has stopped)."""
    ledger = Ledger(state / "ledger.sqlite3", hall_id=HALL_ID)
    try:
        return list(ledger.events())[first:]
    finally:
        ledger.close()


def _board(broker: PrivateBroker) -> wire.Board:
    with Probe(broker, subscriptions=[TOPICS.board()]) as late:
        return wire.Board.decode(late.on(TOPICS.board()).payload)


def _board_showing(broker: PrivateBroker, seeded: Seed) -> wire.Board:
    """The retained board, once it shows the seed's call at counter 1 and counter 3 paused."""
    def shows_seed(message: Message) -> bool:
        if message.topic != TOPICS.board():
            return False
        counters = {c.counter: c for c in wire.Board.decode(message.payload).counters}
        return counters["1"].number == seeded.serving_at_1.number and counters["3"].status == "paused"

    with Probe(broker, subscriptions=[TOPICS.board()]) as watcher:
        return wire.Board.decode(watcher.expect(shows_seed).payload)


def _all_handled(probe: Probe) -> None:
    """Once this returns, the controller has handled every message published before it on any device's topics.

    Each of its connections (one per configured device, one for the other ids) keeps a publisher's messages in
    order, so one answered marker per connection follows everything sent there before it; each marker changes
    nothing. The board and counter states of a batch are published before its replies."""
    for dispenser in DISPENSERS:
        assert probe.request_ticket(dispenser, "Z").error_code == "unknown_service"
    for counter in COUNTERS:
        assert not probe.command(counter, "call", ticket="Z999").ok       # no such ticket, or counter closed
    assert probe.request_ticket("ghost", "A").error_code == "unknown_dispenser"


class Fuzzer:
    """Publishes each generated batch and checks every reply it must get (matched as a multiset per batch)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.sent = 0
        self.by_topic: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()

    def run_batch(self, batch: list[Hostile]) -> None:
        expected: Counter[tuple[str, str, str]] = Counter()
        for message in batch:
            self.probe.publish(message.topic, message.payload)
            self.sent += 1
            self.by_topic[message.topic.rsplit("/", 1)[-1]] += 1
            if message.expect is not None:
                expected[message.expect] += 1
                self.by_code[message.expect[2].split(":")[0]] += 1
        got: Counter[tuple[str, str, str]] = Counter()
        deadline = time.monotonic() + 10
        while sum(got.values()) < sum(expected.values()):
            left = deadline - time.monotonic()
            assert left > 0, f"missing replies: expected {expected}, got {got}"
            try:
                item = self.probe.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if not isinstance(item, Message):
                continue
            answer = _answer(item)
            if answer is not None and not answer[1].startswith("valid-"):
                got[answer] += 1
        assert got == expected


def _answer(message: Message) -> tuple[str, str, str] | None:
    if message.topic.endswith("/ticket"):
        reply = wire.TicketReply.decode(message.payload)
        outcome = "ticket:" + reply.ticket.id if reply.ticket is not None else (reply.error_code or "?")
        return (message.topic, reply.request_id, outcome)
    if message.topic.endswith("/reply"):
        command = wire.CounterReply.decode(message.payload)
        return (message.topic, command.request_id, "ok" if command.ok else (command.error_code or "?"))
    return None


def test_hostile_payloads_on_every_subscribed_topic_change_nothing_and_the_controller_serves_on(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    # Limits high enough that every generated payload reaches the decoder and the engine (the limits have
    # their own tests in test_hostile_flood.py).
    config = tmp_path / "hall.toml"
    config.write_text(HALL_CONFIG.read_text(encoding="utf-8")
                      + "\n[limits]\ndevice_messages_per_s = 100000\ndevice_burst = 1000000\n", encoding="utf-8")
    state = tmp_path / "state"
    with ControllerProcess(config=config, broker=broker, state_dir=state) as controller, \
            Probe(broker, subscriptions=[_topic("dispenser", "+", "ticket"), TOPICS.all_counter_replies()]) as probe:
        seeded = _seed(probe)
        probe.received.clear()
        board_before = _board_showing(broker, seeded)
        journal_before = _journal_count(state)
        oracle = Oracle(seeded)
        fuzzer = Fuzzer(probe)
        spawn = multiprocessing.get_context("spawn")
        baseline, fuzzing, stop, results = spawn.Event(), spawn.Event(), spawn.Event(), spawn.Queue()
        valid = spawn.Process(target=valid_dispenser, args=(broker.port, baseline, fuzzing, stop, results))
        messages = st.one_of(_request_messages(oracle), _printed_messages(oracle), _command_messages(oracle))

        @seed(SEED)
        @settings(max_examples=PAYLOADS, deadline=None, database=None, phases=(Phase.explicit, Phase.generate),
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(messages, min_size=1, max_size=10))
        def fuzz(batch: list[Hostile]) -> None:
            if fuzzer.sent < PAYLOADS:
                fuzzer.run_batch(batch)

        valid.start()
        try:
            assert baseline.wait(30), "the well-behaved dispenser did not get going"  # alone: the baseline
            fuzzing.set()
            started = time.perf_counter()
            fuzz()
            elapsed = time.perf_counter() - started
            stop.set()
            round_trips_s, before_s, valid_tickets, valid_failures = results.get(timeout=30)
        finally:
            stop.set()
            valid.join(timeout=10)
            if valid.is_alive():
                valid.terminate()
        assert controller.proc is not None and controller.proc.poll() is None, controller.log_text()[-3000:]
        _all_handled(probe)
        board_after = _board(broker)
        log = controller.log_text()

    assert fuzzer.sent >= PAYLOADS, f"only {fuzzer.sent} payloads were generated"
    assert "Traceback" not in log
    assert not valid_failures, valid_failures[:5]
    assert len(round_trips_s) > 10, "the well-behaved dispenser hardly ran"
    # Nothing but the well-behaved dispenser's tickets was stored; the board shows the same calls and counters.
    added = _journal_since(state, journal_before)
    assert all(isinstance(e, TicketIssued) and e.dispenser == "d2" for e in added), Counter(e.kind for e in added)
    assert {e.ticket_id for e in added if isinstance(e, TicketIssued)} == set(valid_tickets.values())
    assert board_after.calls == board_before.calls
    assert board_after.counters == board_before.counters

    if RESULTS:
        Path(RESULTS).write_text(json.dumps({
            "payloads": fuzzer.sent, "seed": SEED, "seconds": round(elapsed, 1),
            "payloads_per_topic": dict(fuzzer.by_topic), "expected_answers": dict(fuzzer.by_code),
            "valid_round_trips_before": _summary_ms(before_s),
            "valid_round_trips_during": {**_summary_ms(round_trips_s), "target_p99_ms": 10.0,
                                         "ok": _summary_ms(round_trips_s)["p99_ms"] <= 10.0},
        }, indent=2) + "\n", encoding="utf-8")


def _summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50_ms": round(ms[len(ms) // 2], 3),
            "p99_ms": round(ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))], 3), "max_ms": round(ms[-1], 3)}
