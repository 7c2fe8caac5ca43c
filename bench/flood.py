"""Flood benchmark: one device publishes as fast as it can while well-behaved dispensers keep asking for tickets.

Run:  .venv/bin/python -m bench.flood [--quick] [--seconds S]

A real Mosquitto (the project's config), the controller process with the hall's limits of
``config/hall.example.toml`` (``[limits]``), four well-behaved dispensers that press once every 60 ms and
retry an unanswered request after 1 s with the same request id (as ``dispenser/`` does), and one flooder (in
a process of its own, as a faulty device is a machine of its own) on its own topic. Scenarios, each on a fresh
broker and controller:

  baseline     no flood: the well-behaved dispensers' press → ticket times (the "normal p99" of this run);
  valid-qos1-2000/s   valid requests with fresh ids at 2,000 a second (a flood the controller can drain);
  valid-qos1   the flooder sends valid ticket requests with fresh ids, QoS 1 (a kiosk whose code loops);
  junk-qos1    the flooder sends bytes that are not JSON, QoS 1;
  spray-qos1   the flooder sends valid requests under 1,000 made-up dispenser ids, QoS 1;
  junk-qos0    the flooder sends junk at QoS 0, which MQTT does not flow-control at all.

For each: the flooder's publish rate (messages the broker accepted), the dispensers' press → ticket p50/p99/
max and retries, the tickets the flooder obtained, and the controller's peak resident memory (VmHWM).
Target: the dispensers' p99 within 10 × the normal p99 (that of this run's baseline, and the controller
benchmark's 3.1 ms), peak RSS bounded. Results: bench/results/flood.json (flood-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.common import RESULTS, ROOT, bench_hall_toml, report, summary_ms
from hall_controller.ledger import Ledger
from hallq import wire
from hallq.mqtt import BrokerSettings, LinkDown, LinkUp, Message, MqttLink
from hallq.topics import Topics
from testbed.broker import PrivateBroker
from testbed.controller import ControllerProcess

TOPICS = Topics(hall="bench")
GOOD = ("b2", "b3", "b4", "b5")
FLOODER = "b1"
# Well-behaved: about 15 presses a second each, under the example config's 20 a second per device.
PRESS_INTERVAL_S = 0.06
RETRY_S = 1.0
Inbox = queue.Queue[Message | LinkUp | LinkDown]


def example_limits() -> dict[str, Any]:
    """The ``[limits]`` table of the example hall config: what a hall would run with."""
    data = tomllib.loads((ROOT / "config" / "hall.example.toml").read_text(encoding="utf-8"))
    limits: dict[str, Any] = data["limits"]
    return limits


def hall_toml(limits: dict[str, Any], *, devices: int = 5) -> str:
    """The flood's hall: ``devices`` configured kiosks b1..bN (the flooder and the well-behaved four among them;
    the others stay idle, their connections held by the controller's one I/O thread as in a large hall)."""
    lines = ["[limits]", *(f"{key} = {value!r}" for key, value in limits.items())]
    return bench_hall_toml(dispensers=devices) + "\n".join(lines) + "\n"


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class GoodDispenser(threading.Thread):
    """Presses every ``PRESS_INTERVAL_S``; one request in flight; retries after ``RETRY_S`` with the same id."""

    def __init__(self, broker: PrivateBroker, device: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.device = device
        self.stop_event = stop
        self.inbox: Inbox = queue.Queue()
        self.link = MqttLink(client_id=device, broker=BrokerSettings(port=broker.port), inbox=self.inbox,
                             subscriptions=[(TOPICS.dispenser_ticket(device), 1)])
        self.samples: list[float] = []
        self.retries = 0
        self.errors: list[str] = []
        self.tickets: list[wire.TicketInfo] = []

    def connect(self) -> None:
        self.link.start()
        if not self.link.wait_up(10):
            raise SystemExit(f"{self.device} could not connect")

    def run(self) -> None:
        topic = TOPICS.dispenser_request(self.device)
        while not self.stop_event.is_set():
            rid = uuid.uuid4().hex
            payload = wire.TicketRequest(request_id=rid, service="A").encode()
            pressed = sent = time.perf_counter()
            self.link.publish(topic, payload)
            while True:
                try:
                    item = self.inbox.get(timeout=max(0.0, sent + RETRY_S - time.perf_counter()))
                except queue.Empty:
                    self.retries += 1
                    sent = time.perf_counter()
                    self.link.publish(topic, payload)
                    continue
                if not isinstance(item, Message):
                    continue
                reply = wire.TicketReply.decode(item.payload)
                if reply.request_id != rid:
                    continue  # a late answer to an earlier retry
                self.samples.append(time.perf_counter() - pressed)
                if reply.ticket is None:
                    self.errors.append(reply.error_code or "?")
                else:
                    self.tickets.append(reply.ticket)
                break
            time.sleep(PRESS_INTERVAL_S)
        self.link.stop()


@dataclass
class FloodResult:
    accepted: int = 0
    replies: int = 0
    rate_limited: int = 0
    elapsed_s: float = 0.0


def _flood(port: int, scenario: str, stop: Any, results: Any) -> None:
    """The flooder's own process (a misbehaving device is another machine: it must not share the measuring
    clients' interpreter lock). Publishes until ``stop`` is set, then puts a ``FloodResult`` on ``results``."""
    spec = SCENARIOS[scenario]
    assert spec is not None
    qos, topic_of, payload_of, per_s = spec
    result = FloodResult()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=FLOODER, protocol=MQTTProtocolVersion.MQTTv5)
    # Bounded like hallq's own link: beyond it publish() refuses instead of growing this process.
    client.max_queued_messages_set(1000)

    def on_message(_client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        result.replies += 1
        result.rate_limited += b'"rate_limited"' in message.payload

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(TOPICS.dispenser_ticket(FLOODER), qos=1)
    client.loop_start()
    started = time.perf_counter()
    n = 0
    while not stop.is_set():
        n += 1
        info = client.publish(topic_of(n), payload_of(n), qos=qos)
        if info.rc == paho.MQTT_ERR_SUCCESS:
            result.accepted += 1
        elif info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0)  # paho's queue is full: the broker is the limit now
        if per_s is not None and n % 20 == 0:
            time.sleep(max(0.0, started + n / per_s - time.perf_counter()))
    result.elapsed_s = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    results.put(result)


def _valid(n: int) -> bytes:
    return wire.TicketRequest(request_id=f"flood-{n}", service="B").encode()


# name: (QoS, topic of the n-th message, its payload, messages a second or None for "as fast as it can")
SCENARIOS: dict[str, tuple[int, Callable[[int], str], Callable[[int], bytes], float | None] | None] = {
    "baseline": None,
    "valid-qos1-2000/s": (1, lambda n: TOPICS.dispenser_request(FLOODER), _valid, 2000.0),
    "valid-qos1": (1, lambda n: TOPICS.dispenser_request(FLOODER), _valid, None),
    "junk-qos1": (1, lambda n: TOPICS.dispenser_request(FLOODER), lambda n: b"\x00junk" * 8, None),
    "spray-qos1": (1, lambda n: TOPICS.dispenser_request(f"x{n % 1000}"), _valid, None),
    "junk-qos0": (0, lambda n: TOPICS.dispenser_request(FLOODER), lambda n: b"\x00junk" * 8, None),
}


def run_scenario(work: Path, name: str, limits: dict[str, Any], seconds: float, *, devices: int = 5) -> dict[str, Any]:
    name_in_files = name.replace("/", "-per-")
    config = work / f"{name_in_files}.toml"
    config.write_text(hall_toml(limits, devices=devices), encoding="utf-8")
    state = work / f"state-{name_in_files}"
    with PrivateBroker(work / f"broker-{name_in_files}") as broker:
        log_path = work / f"{name_in_files}-controller.log"
        controller = ControllerProcess(config=config, broker=broker, state_dir=state, log_path=log_path,
                                       extra_args=("--log-level", "INFO"))
        try:
            controller.start(timeout_s=20)
            assert controller.proc is not None
            pid = controller.proc.pid
            stop = threading.Event()
            good = [GoodDispenser(broker, d, stop) for d in GOOD]
            for dispenser in good:
                dispenser.connect()
            time.sleep(0.3)
            spawn = multiprocessing.get_context("spawn")
            flood_stop, flood_results = spawn.Event(), spawn.Queue()
            flooding = None
            if SCENARIOS[name] is not None:
                flooding = spawn.Process(target=_flood, args=(broker.port, name, flood_stop, flood_results))
                flooding.start()
                time.sleep(1.5)  # the flood is on (the child has started) before the measured presses start
            cpu_before = (cpu_s(pid), cpu_s(broker.pid or 0))
            measured_from = time.monotonic()
            for dispenser in good:
                dispenser.start()
            time.sleep(seconds)
            cpu_after = (cpu_s(pid), cpu_s(broker.pid or 0))
            measured_s = time.monotonic() - measured_from
            stop.set()
            flood_stop.set()
            for dispenser in good:
                dispenser.join(timeout=RETRY_S * 3 + 5)
            flooder = flood_results.get(timeout=20) if flooding is not None else None
            if flooding is not None:
                flooding.join(timeout=10)
            alive = controller.proc.poll() is None
            rss_kib = peak_rss_kib(pid) if alive else 0
            broker_rss_kib = peak_rss_kib(broker.pid) if broker.pid is not None else 0
        finally:
            controller.stop()
    ledger = Ledger(state / "ledger.sqlite3", hall_id="bench")
    rows = ledger.history()
    ledger.close()
    numbers = [r["number"] for r in rows]
    samples = [s for d in good for s in d.samples]
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    return {
        "controller_alive": alive,
        "controller_peak_rss_mib": round(rss_kib / 1024, 1),
        "broker_peak_rss_mib": round(broker_rss_kib / 1024, 1),
        "controller_cpu_share": round((cpu_after[0] - cpu_before[0]) / measured_s, 2),
        "broker_cpu_share": round((cpu_after[1] - cpu_before[1]) / measured_s, 2),
        "rate_limit_log_lines": log_text.count("rate limit: dropping"),
        "flood_accepted_per_s": round(flooder.accepted / flooder.elapsed_s) if flooder and flooder.elapsed_s else 0,
        "flood_messages": flooder.accepted if flooder else 0,
        "flooder_replies": flooder.replies if flooder else 0,
        "flooder_rate_limited_replies": flooder.rate_limited if flooder else 0,
        "flooder_tickets": sum(1 for r in rows if r["dispenser"] not in GOOD),
        "good_presses": len(samples),
        "good_retries": sum(d.retries for d in good),
        "good_errors": sorted({e for d in good for e in d.errors}),
        "good_press_to_ticket": summary_ms(samples) if samples else {},
        "duplicate_numbers": len(numbers) - len(set(numbers)),
        "log_lines": log_text.count("\n"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s per scenario instead of 10")
    parser.add_argument("--seconds", type=float, help="seconds of measured presses per scenario")
    parser.add_argument("--devices", type=int, default=5, help="kiosks the hall configures (default 5; at least 5: "
                        "the flooder and four well-behaved ones, the rest idle)")
    args = parser.parse_args()
    if args.devices < 5:
        parser.error("--devices must be at least 5")
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    limits = example_limits()
    normal_bench_p99 = _controller_bench_p99()
    data: dict[str, Any] = {"limits": limits, "seconds_per_scenario": seconds, "controller_bench_p99_ms":
                            normal_bench_p99, "devices": args.devices, "scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="hallq-flood-") as tmp:
        for name in SCENARIOS:
            sys.stdout.write(f"scenario {name} ...\n")
            sys.stdout.flush()
            data["scenarios"][name] = run_scenario(Path(tmp), name, limits, seconds, devices=args.devices)
    scenarios = data["scenarios"]
    base_p99 = scenarios["baseline"]["good_press_to_ticket"]["p99_ms"]
    rows: list[tuple[str, str, str, bool]] = [
        ("baseline press → ticket p99", f"{base_p99:.2f} ms", "(normal)", True),
    ]
    for name in list(SCENARIOS)[1:]:
        result = scenarios[name]
        p99 = result["good_press_to_ticket"].get("p99_ms", float("inf"))
        limit = 10 * max(base_p99, normal_bench_p99 or 0)
        rows += [
            (f"{name}: flood accepted by broker", f"{result['flood_accepted_per_s']:,}/s", "-", True),
            (f"{name}: dispensers p99 (max)", f"{p99:.1f} ({result['good_press_to_ticket'].get('max_ms', 0):.0f}) ms",
             f"≤ {limit:.0f} ms", p99 <= limit),
            (f"{name}: dispensers' retries, errors", f"{result['good_retries']}, {len(result['good_errors'])}", "-, 0",
             not result["good_errors"]),
            (f"{name}: tickets the flooder got", f"{result['flooder_tickets']}", "≤ burst + rate × s",
             result["flooder_tickets"] <= limits["device_burst"] + limits["device_messages_per_s"] * (seconds + 3)),
            (f"{name}: controller peak RSS", f"{result['controller_peak_rss_mib']} MiB", "≤ 200 MiB",
             result["controller_alive"] and result["controller_peak_rss_mib"] <= 200),
            (f"{name}: broker peak RSS", f"{result['broker_peak_rss_mib']} MiB", "≤ 200 MiB",
             result["broker_peak_rss_mib"] <= 200),
            (f"{name}: CPU controller, broker (cores)",
             f"{result['controller_cpu_share']:.2f}, {result['broker_cpu_share']:.2f}", "-", True),
        ]
    report("flood" + ("-quick" if args.quick else "") + (f"-{args.devices}-devices" if args.devices != 5 else ""),
           rows, data)
    return 0 if all(r[3] for r in rows) else 1


def _controller_bench_p99() -> float | None:
    path = RESULTS / "controller.json"
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["data"]["round_trip"]["p99_ms"])
    except (OSError, KeyError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
