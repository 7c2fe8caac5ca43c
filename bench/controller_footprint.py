"""Hall controller footprint on this machine: threads and memory. Run:  .venv/bin/python -m bench.controller_footprint
[--quick] [--runs N]

For two halls: the example hall (``config/hall.example.toml``: 3 kiosks and 20 counters, 23 devices) and a
generated one of 100 devices (``bench_hall_toml``: 96 kiosks, 4 counters). Each run starts a private Mosquitto
from the project's config and the controller process on a fresh ledger, and reads ``/proc/PID/status``:
  1. idle: ``Threads`` and ``VmRSS`` two seconds after the controller logged that it is ready;
  2. after a short load: every kiosk keeps one ticket request in flight, at most ``KIOSK_PER_S`` a second
     (under the example hall's own rate limit), and every counter presses `next` once a second, for a few
     seconds; ``Threads``, ``VmRSS`` when it ends and ``VmHWM`` (the peak).
The controller today has one broker connection, and so one paho thread, per configured device, plus its own,
``others`` and the service thread: its threads grow with the hall. No targets yet; the figures are for
judging a new shell against.

The example hall is used as shipped but for two lines, so that it issues tickets at any hour on any machine:
``trust_clock = "always"`` (this machine's clock sync may not be visible to the controller) and no opening
hours. Both halls log at INFO (one line per ticket), as the example hall does in production.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, bench_hall_toml, report
from hall_controller import config as config_mod
from hallq import wire
from hallq.mqtt import BrokerSettings, LinkDown, LinkUp, Message, MqttLink, stop_all
from hallq.topics import Topics
from testbed.broker import PrivateBroker
from testbed.controller import ControllerProcess

EXAMPLE_HALL = ROOT / "config" / "hall.example.toml"
KIOSK_PER_S = 15.0
COUNTER_PER_S = 1.0
IDLE_SETTLE_S = 2.0
Inbox = queue.Queue[Message | LinkUp | LinkDown]


def example_hall(work: Path) -> Path:
    """The example hall, trusting the clock and open at all hours (see the module doc)."""
    lines = []
    for line in EXAMPLE_HALL.read_text(encoding="utf-8").splitlines():
        if line.startswith("hours ="):
            continue
        lines.append('trust_clock = "always"' if line.startswith("trust_clock =") else line)
    path = work / "hall-example.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def proc_status(pid: int) -> dict[str, int]:
    """Threads, VmRSS, VmHWM and VmSize (KiB) of ``pid``."""
    wanted = {"Threads", "VmRSS", "VmHWM", "VmSize"}
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            found[key] = int(value.split()[0])
    return found


@dataclass
class _Device:
    link: MqttLink
    request_topic: str
    interval_s: float
    services: tuple[str, ...]
    counter: bool
    due: float = 0.0
    in_flight: bool = False
    sent: int = 0


def short_load(broker: PrivateBroker, config: Path, duration_s: float) -> dict[str, int]:
    """Kiosks and counters of the hall as described in the module doc; how many requests and answers."""
    cfg = config_mod.load(config)
    topics = Topics(hall=cfg.hall.id, base=cfg.base_topic)
    inbox: Inbox = queue.Queue()
    settings = BrokerSettings(port=broker.port)
    devices: dict[str, _Device] = {}
    for d in cfg.hall.dispensers:
        link = MqttLink(client_id=d.id, broker=settings, inbox=inbox,
                        subscriptions=[(topics.dispenser_ticket(d.id), 1)])
        devices[topics.dispenser_ticket(d.id)] = _Device(link, topics.dispenser_request(d.id), 1 / KIOSK_PER_S,
                                                         d.services or tuple(s.id for s in cfg.hall.services), False)
    for c in cfg.hall.counters:
        link = MqttLink(client_id=f"desk-{c.id}", broker=settings, inbox=inbox,
                        subscriptions=[(topics.counter_reply(c.id), 1)])
        devices[topics.counter_reply(c.id)] = _Device(link, topics.counter_command(c.id), 1 / COUNTER_PER_S, (), True)
    for device in devices.values():
        device.link.start()
    for device in devices.values():
        if not device.link.wait_up(10):
            raise SystemExit(f"load client {device.link.client_id} could not connect")
    time.sleep(0.3)  # their subscriptions acknowledged
    answers = 0
    start = time.monotonic()
    end = start + duration_s
    while True:
        now = time.monotonic()
        for device in devices.values():
            if now < end and not device.in_flight and now >= device.due:
                rid = uuid.uuid4().hex
                payload = (wire.CounterCommand(request_id=rid, action="next").encode() if device.counter else
                           wire.TicketRequest(request_id=rid, service=device.services[device.sent
                                                                                      % len(device.services)]).encode())
                device.link.publish(device.request_topic, payload)
                device.in_flight, device.due = True, now + device.interval_s
                device.sent += 1
        if now >= end and not any(d.in_flight for d in devices.values()):
            break
        if now > end + 10:
            raise SystemExit("the controller stopped answering")
        try:
            item = inbox.get(timeout=0.005)
        except queue.Empty:
            continue
        if isinstance(item, Message) and item.topic in devices:
            devices[item.topic].in_flight = False
            answers += 1
    stop_all([d.link for d in devices.values()])
    return {"requests": sum(d.sent for d in devices.values()), "answers": answers}


def one_run(work: Path, name: str, config: Path, n: int, load_s: float) -> dict[str, Any]:
    with PrivateBroker(work / f"broker-{name}-{n}") as broker:
        # INFO for both halls: the ready line is logged at INFO (and so is every ticket, as in production).
        controller = ControllerProcess(config=config, broker=broker, state_dir=work / f"state-{name}-{n}",
                                       extra_args=("--log-level", "INFO"))
        try:
            controller.start(timeout_s=30)
            assert controller.proc is not None
            pid = controller.proc.pid
            time.sleep(IDLE_SETTLE_S)
            idle = proc_status(pid)
            load = short_load(broker, config, load_s)
            loaded = proc_status(pid)
        finally:
            controller.stop()
    return {"idle": idle, "after_load": loaded, "load": load}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run per hall, a shorter load")
    parser.add_argument("--runs", type=int, help="runs per hall (default 3, 1 with --quick)")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    load_s = 2.0 if args.quick else 5.0
    load_before = os.getloadavg()
    data: dict[str, Any] = {}
    rows: list[tuple[str, str, str, bool]] = []
    with tempfile.TemporaryDirectory(prefix="hallq-footprint-") as tmp:
        work = Path(tmp)
        generated = work / "hall-100.toml"
        generated.write_text(bench_hall_toml(dispensers=96, counters=4), encoding="utf-8")
        for name, config in (("example", example_hall(work)), ("100 devices", generated)):
            cfg = config_mod.load(config)
            devices = len(cfg.hall.dispensers) + len(cfg.hall.counters)
            results = [one_run(work, name.replace(" ", "-"), config, n, load_s) for n in range(runs)]
            data[name] = {"devices": devices, "runs": results}

            def median(phase: str, key: str, results: list[dict[str, Any]] = results) -> float:
                return float(statistics.median(r[phase][key] for r in results))

            label = f"{name} hall ({devices} devices)" if name == "example" else f"{devices}-device hall"
            answers = sum(r["load"]["answers"] for r in results) / len(results)
            rows += [
                (f"{label}: threads idle / after load", f"{median('idle', 'Threads'):.0f} / "
                 f"{median('after_load', 'Threads'):.0f}", "(info)", True),
                (f"{label}: RSS idle / after load", f"{median('idle', 'VmRSS') / 1024:.1f} / "
                 f"{median('after_load', 'VmRSS') / 1024:.1f} MB", "(info)", True),
                (f"{label}: peak RSS (VmHWM)", f"{median('after_load', 'VmHWM') / 1024:.1f} MB", "(info)", True),
                # Each thread reserves address space for its stack: it matters on a 32-bit Raspberry Pi OS.
                (f"{label}: virtual size after load", f"{median('after_load', 'VmSize') / 1024:.0f} MB", "(info)",
                 True),
                (f"{label}: answers in {load_s:.0f} s of load", f"{answers:.0f}", "(info)", True),
            ]
    load_after = os.getloadavg()
    data["load_average"] = {"before": load_before, "after": load_after}
    rows.append(("load average (1 min) before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f}", "(info)",
                 True))
    report("controller_footprint" + ("-quick" if args.quick else ""), rows, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
