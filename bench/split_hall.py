"""A hall across a real network: the chaos run's devices and checks, each Pi in its own network namespace,
with Wi-Fi loss and delay on the kiosks' links, cables pulled and a partition, under load.

Run it (as root)::

    .venv/bin/python -m bench.split_hall                  # the full run: two rounds of faults, ~8 minutes
    .venv/bin/python -m bench.split_hall --short --no-doc # the CI form: one round, ~90 s

Topology (``bench/split_net.py``): one switch (a bridge in a namespace of its own) and one namespace per Pi,
each plugged in by a veth pair: the controller's Pi ``ctl`` (10.77.0.1: Mosquitto and ``python -m
hall_controller``, both started with ``ip netns exec``, and the presence watcher), six kiosks ``k01``-``k06``
(10.77.0.11-16), six counters ``c1``-``c6`` (10.77.0.21-26) and one display ``dsp`` (10.77.0.31). Kiosks,
counters and the display are the chaos run's simulated devices (``chaos_devices``), each its own MQTT client,
running as threads of this process that entered their Pi's namespace (``split_net.enter``) before connecting.

The kiosks are on Wi-Fi: nftables drops 5 % of their packets each way, and they reach the broker through
``DelayRelay`` on the controller's Pi (port 1884), which holds every chunk 20-100 ms each way, in order. The
counters and the display are wired and connect to 10.77.0.1:1883 directly.

Faults, one round (the full run makes two, on other devices):

* a kiosk's cable pulled right after it sent a request, for 30 s, then plugged back;
* the display's cable pulled across several calls;
* a counter partitioned from the broker (nftables) right after it sent ``next``;
* the controller's Pi (with its broker) unplugged from the switch for longer than the keepalive.

Afterwards the closing drain serves everyone, the controller stops and the ledger is checked by the chaos run's
checks (``chaos_checks.verdict_of``). One difference, stated: the display is cut on purpose, and a display
keeps a clean session, so calls made while it was offline never reach it and the retained board it paints on
reconnecting lists only the last ten. Such calls are "missed while the display was offline" (counted, and the
display must have repainted a board after reconnecting); a call missed outside an outage is still a violation.
The run measures, per fault and client, the time to notice the broken link (``LinkDown``: when the kiosk's
fault LED comes on, the counter's screen and the display's banner say offline), the broker's last will, and the
time to reconnect and to get a request answered once the link is back. Every namespace is deleted at the end,
also on failure or Ctrl-C. Exit status 0 when no check found a violation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from bench import split_net
from bench.chaos_checks import Verdict, replace_figures, verdict_of
from bench.chaos_devices import LinkLog, Listener, SimCounter, SimDispenser, close_the_day, decode_calls
from bench.chaos_hall import COUNTERS, SERVICE_IDS, SERVICES, TIME_ZONE, CounterDef
from bench.common import ROOT, percentile, report
from hall_controller.cli import LEDGER_FILE
from hall_controller.config import load as load_config
from hall_controller.engine.events import TicketCalled
from hall_controller.ledger import Ledger
from hall_controller.service import READY_LOG
from hallq import logsetup, wire
from hallq.mqtt import BrokerSettings, LinkDown, LinkUp, Message
from hallq.topics import Topics
from testbed.broker import LOCAL_CONFIG, PROJECT_ROOT, bound_to_parent, end_process, port_open
from testbed.children import ChildProcess

log = logging.getLogger(__name__)

DOC = ROOT / "docs" / "reliability.md"
FIGURES_START = "<!-- split-hall-figures:start -->"
FIGURES_END = "<!-- split-hall-figures:end -->"
HALL_ID = "split"
BROKER_PORT = 1883
RELAY_PORT = 1884
KIOSKS: tuple[str, ...] = tuple(f"k{n:02d}" for n in range(1, 7))
HALL_COUNTERS: tuple[CounterDef, ...] = COUNTERS[:6]  # 1-3 serve everything first by priority, 4-6 interleave
PIS: dict[str, int] = {"ctl": 1, **{k: 10 + n for n, k in enumerate(KIOSKS, 1)},
                       **{f"c{c.id}": 20 + n for n, c in enumerate(HALL_COUNTERS, 1)}, "dsp": 31}


# What a fault cost, counted from its start until every device is back and three seconds more: a press ignored
# while offline is a press met by the fault LED; an abandoned request is a press that ended in the "failed" beep.
KIOSK_EFFECTS = ("presses ignored while offline", "requests abandoned")
COUNTER_EFFECTS = ("counter commands given up", "counter late replies")


@dataclass(frozen=True, slots=True)
class Plan:
    """The shape of one run; times in seconds from the start of the load."""

    seed: int = 1
    load_s: float | None = None  # default: every round of faults, spaced by the keepalive (``load_of``)
    rounds: int = 2
    first_fault_s: float = 15.0
    kiosk_rate_per_s: float = 0.2  # presses per kiosk per second
    loss_percent: int = 5
    delay_s: tuple[float, float] = (0.02, 0.1)
    kiosk_cut_s: float = 30.0
    display_cut_s: float = 25.0
    partition_s: float = 20.0
    isolation_s: float | None = None  # default: three keepalives, at least 20 s
    service_s: tuple[float, float] = (1.0, 3.0)
    keepalive_s: int | None = None  # default: hallq.mqtt's
    reconnect_max_s: int | None = None
    recovery_limit_s: float = 60.0


SHORT = Plan(seed=3, load_s=75.0, rounds=1, first_fault_s=4.0, kiosk_rate_per_s=0.25, display_cut_s=20.0,
             partition_s=15.0)


def hall_toml(*, state_dir: str) -> str:
    """The controller's config: the chaos run's six services, six kiosks and counters 1-6; the business day began
    hours ago (no rollover in this run)."""
    starts = (datetime.now(ZoneInfo(TIME_ZONE)) - timedelta(hours=3)).strftime("%H:%M")
    lines = [
        "# Generated by bench/split_hall.py for one run.",
        "[hall]", f'id = "{HALL_ID}"', 'name_vi = "Trung tâm thử nghiệm mạng"', 'name_en = "Split network hall"',
        f'time_zone = "{TIME_ZONE}"', f'business_day_starts = "{starts}"', "default_service_time_s = 60",
        "[controller]", f'state_dir = "{state_dir}"', 'log_level = "INFO"', 'trust_clock = "always"',
        "[mqtt]", f'broker = "127.0.0.1:{BROKER_PORT}"',
    ]
    for service in SERVICES:
        lines += ["[[services]]", f'id = "{service.id}"', f'name_vi = "{service.name_vi}"',
                  f'name_en = "{service.name_en}"', f'prefix = "{service.id}"', "last_number = 9999",
                  "wrap = false", f'transfer_position = "{service.transfer_position}"']
        if service.priority_prefix:
            lines.append(f'priority_prefix = "{service.priority_prefix}"')
    for counter in HALL_COUNTERS:
        services = ", ".join(f'"{s}"' for s in counter.services)
        lines += ["[[counters]]", f'id = "{counter.id}"', f"services = [{services}]", f'policy = "{counter.policy}"',
                  f"interleave_ratio = {counter.interleave_ratio}"]
    for kiosk in KIOSKS:
        lines += ["[[dispensers]]", f'id = "{kiosk}"']
    return "\n".join(lines) + "\n"


# --- processes on the controller's Pi ---------------------------------------------------------------------------


class NetnsBroker:
    """Mosquitto from ``config/mosquitto/hallq-local.conf`` inside namespace ``ns``, listening on every address
    of the controller's Pi (the hall reaches it over ``eth0``), persistence in ``workdir``."""

    def __init__(self, workdir: Path, ns: str) -> None:
        self.workdir = workdir
        self.ns = ns
        self.log_path = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout_s: float = 5.0) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = []
        for line in LOCAL_CONFIG.read_text(encoding="utf-8").splitlines():
            word = line.split()[0] if line.split() else ""
            if word in ("pid_file", "user"):
                continue
            lines.append({"listener": f"listener {BROKER_PORT} 0.0.0.0",
                          "persistence_location": f"persistence_location {data}/"}.get(word, line))
        lines.append("user root")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(bound_to_parent(["ip", "netns", "exec", self.ns, "mosquitto", "-c",
                                                           str(conf)]),
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}; see {self.log_path}")
            if split_net.run_in(self.ns, lambda: port_open(BROKER_PORT)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen within {timeout_s} s; see {self.log_path}")

    def stop(self) -> None:
        if self._proc is None:
            return
        end_process(self._proc)
        self._proc = None


class NetnsChild(ChildProcess):
    """A hallq role started with ``ip netns exec NS python -m module …``: ``ChildProcess.spawn`` with the prefix."""

    def __init__(self, *, ns: str, name: str, module: str, args: list[str], log_path: Path) -> None:
        super().__init__(name=name, module=module, args=args, log_path=log_path)
        self.ns = ns

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self._follow_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                bound_to_parent(["ip", "netns", "exec", self.ns, sys.executable, "-m", self.module, *self.args]),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)


# --- devices on their own Pis -----------------------------------------------------------------------------------


class _OnItsPi:
    """A simulated device whose thread enters its Pi (network namespace ``netns``) before it connects."""

    netns: str

    def run(self) -> None:
        split_net.enter(self.netns)
        super().run()  # type: ignore[misc]  # the device class this is mixed into


class NsDispenser(_OnItsPi, SimDispenser):
    """A simulated kiosk living on its own Pi."""

    def __init__(self, device_id: str, *, netns: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        self.netns = netns


class NsCounter(_OnItsPi, SimCounter):
    """A simulated counter on its own Pi; an armed cut fires only after a ``next`` (a call in flight)."""

    def __init__(self, device_id: str, *, netns: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        self.netns = netns

    def _send(self, action: str, ticket: str | None, service: str | None, *, now: float) -> None:
        if action == "next" or self.cut_request is None:
            super()._send(action, ticket, service, now=now)
            return
        armed, self.cut_request = self.cut_request, None
        try:
            super()._send(action, ticket, service, now=now)
        finally:
            self.cut_request = armed


class NsListener(Listener):
    """A subscriber on its own Pi (the display, or the presence watcher) that also records its link's changes."""

    def __init__(self, client_id: str, *, netns: str, broker: BrokerSettings, subscriptions: list[str]) -> None:
        super().__init__(client_id, broker=broker, subscriptions=subscriptions)
        self.netns = netns
        self.links = LinkLog()

    @property
    def connected(self) -> bool:
        return self.link.up.is_set()

    def run(self) -> None:
        split_net.enter(self.netns)
        self.link.start()
        try:
            while not self.stopping.is_set():
                try:
                    item = self.inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                now = time.monotonic()
                if isinstance(item, LinkUp):
                    self.links.ups.append(now)
                elif isinstance(item, LinkDown):
                    self.links.downs.append(now)
                elif isinstance(item, Message):
                    with self.changed:
                        self.received.append((now, item))
                        self.changed.notify_all()
        finally:
            self.link.stop()


# --- faults -----------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FaultRecord:
    """One fault: what, on whom, when it began and ended (monotonic), and what the clients saw."""

    kind: str  # kiosk_cut, display_cut, counter_partition, controller_isolated
    pi: str
    at_s: float
    duration_s: float
    start: float | None = None
    end: float | None = None
    started: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)


def plan_faults(plan: Plan, *, keepalive_s: int) -> list[FaultRecord]:
    """Each round: a kiosk cut mid-request, the display cut, a counter partitioned mid-``next``, then the
    controller's Pi isolated, on devices chosen by the round (seeded). In the full run each fault starts once the
    one before is over and noticed (``gap_s`` apart); the CI form overlaps the first three (different Pis)."""
    isolation_s = isolation_of(plan, keepalive_s=keepalive_s)
    gap_s = gap_of(keepalive_s)
    out: list[FaultRecord] = []
    for n in range(plan.rounds):
        kiosk = KIOSKS[(plan.seed + 2 * n) % len(KIOSKS)]
        counter = f"c{HALL_COUNTERS[(plan.seed + 3 * n + 1) % len(HALL_COUNTERS)].id}"
        if plan.rounds == 1:
            base = plan.first_fault_s
            steps = (0.0, 3.0, 6.0, max(plan.kiosk_cut_s, plan.display_cut_s, plan.partition_s) + 12.0)
        else:
            base = plan.first_fault_s + n * round_of(plan, keepalive_s=keepalive_s)
            # An armed cut waits for the device's next send, at most ARMED_WAIT_S.
            steps = (0.0, plan.kiosk_cut_s + ARMED_WAIT_S + gap_s,
                     plan.kiosk_cut_s + plan.display_cut_s + ARMED_WAIT_S + 2 * gap_s,
                     plan.kiosk_cut_s + plan.display_cut_s + plan.partition_s + 2 * ARMED_WAIT_S + 3 * gap_s)
        out += [FaultRecord("kiosk_cut", kiosk, base + steps[0], plan.kiosk_cut_s),
                FaultRecord("display_cut", "dsp", base + steps[1], plan.display_cut_s),
                FaultRecord("counter_partition", counter, base + steps[2], plan.partition_s),
                FaultRecord("controller_isolated", "ctl", base + steps[3], isolation_s)]
    return sorted(out, key=lambda f: f.at_s)


ARMED_WAIT_S = 15.0


def isolation_of(plan: Plan, *, keepalive_s: int) -> float:
    """How long the controller's Pi is cut off: three keepalives (the broker gives up after one and a half), at
    least 20 s."""
    return plan.isolation_s if plan.isolation_s is not None else max(20.0, 3.0 * keepalive_s)


def gap_of(keepalive_s: int) -> float:
    """Between one fault's end and the next fault: time to notice a cut only after the link is back (two
    keepalives) and to reconnect."""
    return 20.0 + 2 * keepalive_s


def round_of(plan: Plan, *, keepalive_s: int) -> float:
    return (plan.kiosk_cut_s + plan.display_cut_s + plan.partition_s + isolation_of(plan, keepalive_s=keepalive_s)
            + 2 * ARMED_WAIT_S + 4 * gap_of(keepalive_s))


def load_of(plan: Plan, *, keepalive_s: int) -> float:
    """The load: ``plan.load_s``, or in the full run every round and a last gap."""
    if plan.load_s is not None:
        return plan.load_s
    return plan.first_fault_s + plan.rounds * round_of(plan, keepalive_s=keepalive_s) + 10.0


@dataclass(slots=True)
class RunResult:
    plan: Plan
    verdict: Verdict
    rows: list[tuple[str, str, str, bool]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


class SplitHall:
    """One run of ``plan`` in ``workdir``; ``run()`` builds the network, runs the load and faults, checks, and
    always tears everything down."""

    def __init__(self, plan: Plan, workdir: Path, *, progress: bool = False) -> None:
        self.plan = plan
        self.workdir = workdir
        self.progress = progress
        self.topics = Topics(hall=HALL_ID)
        self.net = split_net.HallNetwork()
        defaults = BrokerSettings()
        self.keepalive_s = plan.keepalive_s or defaults.keepalive_s
        self.reconnect_max_s = plan.reconnect_max_s or defaults.reconnect_max_s
        self.broker: NetnsBroker | None = None
        self.relay: split_net.DelayRelay | None = None
        self.controller: NetnsChild | None = None
        self.watch: NsListener | None = None
        self.display: NsListener | None = None
        self.dispensers: list[NsDispenser] = []
        self.counters: list[NsCounter] = []
        self.faults: list[FaultRecord] = []
        self.timers: list[threading.Timer] = []
        self.settling: list[threading.Thread] = []
        self.mono0 = time.monotonic()
        self.wall0 = datetime.now(UTC)

    def say(self, text: str) -> None:
        if self.progress:
            sys.stdout.write(f"[split {time.strftime('%H:%M:%S')}] {text}\n")
            sys.stdout.flush()

    def wall(self, mono: float) -> datetime:
        return self.wall0 + timedelta(seconds=mono - self.mono0)

    def _settings(self, pi: str, port: int) -> BrokerSettings:
        return BrokerSettings(host=self.net.addresses[pi], port=port, keepalive_s=self.keepalive_s,
                              reconnect_max_s=self.reconnect_max_s)

    # --- setting up --------------------------------------------------------------------------------------------

    def _setup(self) -> None:
        plan = self.plan
        self.net.start()
        for pi, host in PIS.items():
            self.net.add(pi, host)
        ctl = self.net.ns("ctl")
        self.broker = NetnsBroker(self.workdir / "broker", ctl)
        self.broker.start()
        self.relay = split_net.DelayRelay(ctl, listen=(self.net.addresses["ctl"], RELAY_PORT),
                                          upstream=("127.0.0.1", BROKER_PORT), seed=plan.seed, delay_s=plan.delay_s)
        self.relay.start()
        for kiosk in KIOSKS:
            self.net.lossy(kiosk, percent=plan.loss_percent)
        self.watch = NsListener("split-watch", netns=ctl, broker=BrokerSettings(port=BROKER_PORT),
                                subscriptions=[self.topics.all_status()])
        self.display = NsListener("split-display", netns=self.net.ns("dsp"), broker=self._settings("ctl", BROKER_PORT),
                                  subscriptions=[self.topics.calls(), self.topics.board()])
        self.watch.start()
        self.display.start()
        if not (self.watch.link.wait_up(10) and self.display.link.wait_up(10)):
            raise RuntimeError("the watcher and the display could not connect to the broker")
        config = self.workdir / "hall.toml"
        config.write_text(hall_toml(state_dir=str(self.workdir / "state")), encoding="utf-8")
        self.controller = NetnsChild(ns=ctl, name="controller", module="hall_controller",
                                     args=["--config", str(config), "--broker", f"127.0.0.1:{BROKER_PORT}",
                                           "--state-dir", str(self.workdir / "state")],
                                     log_path=self.workdir / "controller.log")
        self.controller.spawn()
        self.controller.wait_for_log(READY_LOG, timeout_s=30)
        numbers: deque[tuple[str, str]] = deque(maxlen=200)
        for n, kiosk in enumerate(KIOSKS):
            self.dispensers.append(NsDispenser(
                kiosk, netns=self.net.ns(kiosk), broker=self._settings("ctl", RELAY_PORT), topics=self.topics,
                seed=plan.seed * 1000 + n, services=SERVICE_IDS, rate_per_s=plan.kiosk_rate_per_s,
                print_fail_p=0.02, numbers_seen=numbers))
        for n, spec in enumerate(HALL_COUNTERS):
            self.counters.append(NsCounter(
                spec.id, netns=self.net.ns(f"c{spec.id}"), broker=self._settings("ctl", BROKER_PORT),
                topics=self.topics, seed=plan.seed * 1000 + 500 + n, services=spec.services,
                all_services=SERVICE_IDS, service_s=plan.service_s, numbers_seen=numbers))
        for device in (*self.dispensers, *self.counters):
            device.start()
        for device in (*self.dispensers, *self.counters):
            if not device.link.wait_up(20):
                raise RuntimeError(f"simulated device {device.device_id} could not connect")

    # --- faults ------------------------------------------------------------------------------------------------

    def _counts(self) -> dict[str, int]:
        """What citizens and clerks met so far: keys of ``KIOSK_EFFECTS`` and ``COUNTER_EFFECTS``."""
        return {
            "presses ignored while offline": sum(d.stats.ignored_offline for d in self.dispensers),
            "requests abandoned": sum(d.stats.abandoned for d in self.dispensers),
            "counter commands given up": sum(c.stats.gave_up for c in self.counters),
            "counter late replies": sum(c.stats.late_replies for c in self.counters),
        }

    def _begin(self, fault: FaultRecord, cut: Callable[[], None], restore: Callable[[], None]) -> None:
        if fault.started.is_set():
            return
        fault.before = self._counts()
        fault.start = time.monotonic()
        cut()
        fault.started.set()

        def end() -> None:
            restore()
            fault.end = time.monotonic()
            fault.ended.set()

        timer = threading.Timer(fault.duration_s, end)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def _inject(self, fault: FaultRecord) -> None:
        net = self.net
        if fault.kind == "kiosk_cut":
            device: NsDispenser | NsCounter = next(d for d in self.dispensers if d.device_id == fault.pi)
            actions = (lambda: net.unplug(fault.pi), lambda: net.plug(fault.pi))
        elif fault.kind == "counter_partition":
            device = next(c for c in self.counters if f"c{c.device_id}" == fault.pi)
            actions = (lambda: net.partition(fault.pi, "ctl"), lambda: net.heal(fault.pi))
        else:
            self._begin(fault, lambda: net.unplug(fault.pi), lambda: net.plug(fault.pi))
            return
        # Mid-request: the device cuts itself right after its next send (``_maybe_cut``); if it sends nothing for
        # a while (its link already down, a quiet kiosk), the cut comes anyway.
        device.cut_hook = lambda _id, _down_s: self._begin(fault, *actions)
        device.arm_cut(fault.duration_s)
        fallback = threading.Timer(ARMED_WAIT_S, lambda: self._begin(fault, *actions))
        fallback.daemon = True
        self.timers.append(fallback)
        fallback.start()

    # --- the run -----------------------------------------------------------------------------------------------

    def run(self) -> RunResult:
        plan = self.plan
        try:
            self.say(f"network {self.net.tag}: {len(PIS)} Pis on one switch; keepalive {self.keepalive_s} s, "
                     f"reconnect backoff up to {self.reconnect_max_s} s; work dir {self.workdir}")
            self._setup()
            self.faults = plan_faults(plan, keepalive_s=self.keepalive_s)
            load_s = load_of(plan, keepalive_s=self.keepalive_s)
            started = time.monotonic()
            self.say(f"load for {load_s:.0f} s with {len(self.faults)} faults")
            for device in self.dispensers:
                device.pressing.set()
            for counter in self.counters:
                counter.running.set()
            for fault in self.faults:
                time.sleep(max(0.0, started + fault.at_s - time.monotonic()))  # the schedule's clock
                self.say(f"{fault.kind} {fault.pi} for {fault.duration_s:.0f} s")
                self._inject(fault)
                settle = threading.Thread(target=self._settle, args=(fault,), daemon=True)
                settle.start()
                self.settling.append(settle)
            time.sleep(max(0.0, started + load_s - time.monotonic()))
            for fault in self.faults:
                fault.ended.wait(timeout=max(0.0, (fault.at_s + 20 + fault.duration_s) - (time.monotonic() - started)))
            for settle in self.settling:
                settle.join(timeout=self.plan.recovery_limit_s + 10)
            load_s = time.monotonic() - started
            self.say("load over: closing the kiosks and serving everyone left")
            drain_s = self._close_day()
            return self._verdict(load_s=load_s, drain_s=drain_s)
        finally:
            self._teardown()

    def _everyone_connected(self) -> bool:
        assert self.display is not None
        return all(d.connected for d in (*self.dispensers, *self.counters)) and self.display.connected

    def _settle(self, fault: FaultRecord) -> None:
        """After the fault ends: once every device is back (or the recovery limit passed), what it cost."""
        fault.ended.wait()
        deadline = time.monotonic() + self.plan.recovery_limit_s
        while not self._everyone_connected() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.0)  # a few presses and commands after the return
        fault.after = self._counts()

    def _close_day(self) -> float:
        assert self.controller is not None
        deadline = time.monotonic() + self.plan.recovery_limit_s
        while not self._everyone_connected() and time.monotonic() < deadline:
            time.sleep(0.1)
        drain_s = close_the_day(self.dispensers, self.counters)
        self.controller.stop()
        return drain_s

    def _teardown(self) -> None:
        for timer in self.timers:
            timer.cancel()
        for device in (*self.dispensers, *self.counters):
            device.stop()
        for device in (*self.dispensers, *self.counters):
            device.join(timeout=5)
        if self.controller is not None:
            self.controller.stop()
        for listener in (self.display, self.watch):
            if listener is not None:
                listener.stop()
                listener.join(timeout=5)
        if self.relay is not None:
            self.relay.stop()
        if self.broker is not None:
            self.broker.stop()
        self.net.close()

    # --- afterwards --------------------------------------------------------------------------------------------

    def _verdict(self, *, load_s: float, drain_s: float) -> RunResult:
        assert self.display is not None
        config = load_config(self.workdir / "hall.toml")
        ledger = Ledger(self.workdir / "state" / LEDGER_FILE, hall_id=HALL_ID)
        try:
            rows = ledger.history()
            events = list(ledger.events())
        finally:
            ledger.close()
        last_seq = max((e.seq for e in events if isinstance(e, TicketCalled)), default=0)
        topics = self.topics

        def display_has_last(received: list[tuple[float, Message]]) -> bool:
            calls, boards = decode_calls(received, topics)
            return any(c.seq == last_seq for c in calls) or any(b.seq == last_seq for b in boards)

        self.display.wait_for(display_has_last, timeout_s=10)
        received = list(self.display.received)
        calls, boards = decode_calls(received, topics)
        printed = [p for d in self.dispensers for p in d.printed]
        given = [g for c in self.counters for g in c.given]
        verdict = verdict_of(spec=config.hall, rows=rows, events=events, printed=printed, given=given, calls=calls,
                             boards=boards, expect_rollover=False)
        for counter in self.counters:
            if not counter.drained.is_set():
                verdict.fail("stranded", f"counter {counter.device_id} did not finish the closing drain")
        self._excuse_display_outages(verdict, events, calls, boards, received)
        faults = [self._fault_figures(f, verdict) for f in self.faults]
        return self._figures(verdict, faults=faults, load_s=load_s, drain_s=drain_s)

    def _display_outages(self) -> list[tuple[datetime, datetime, float | None]]:
        """(from, to, reconnected at) of each time the display was cut off: its cable, or the controller's Pi."""
        assert self.display is not None
        out = []
        for fault in self.faults:
            if fault.kind not in ("display_cut", "controller_isolated") or fault.start is None:
                continue
            end = fault.end if fault.end is not None else time.monotonic()
            up = next((t for t in self.display.links.ups if t >= fault.start), None)
            out.append((self.wall(fault.start), self.wall(up if up is not None else end), up))
        return out

    def _excuse_display_outages(self, verdict: Verdict, events: list[Any], calls: list[wire.Call],
                                boards: list[wire.Board], received: list[tuple[float, Message]]) -> None:
        """Calls ``check_calls`` found lost but made while the display was offline are not violations (a display
        keeps a clean session); the display must have painted a board after each reconnect."""
        seen = {c.seq for c in calls} | {c.seq for b in boards for c in b.calls}
        slack = timedelta(seconds=0.5)
        outages = self._display_outages()
        excused: set[int] = set()
        for e in events:
            if isinstance(e, TicketCalled) and e.seq not in seen and any(
                    start - slack <= e.at <= end + slack for start, end, _up in outages):
                excused.add(e.seq)
        if excused:
            verdict.counts["calls"] -= len(excused)
            kept = [x for x in verdict.violations.get("calls", []) if not any(x.startswith(f"seq {s} (")
                                                                           for s in excused)]
            if verdict.counts["calls"] <= 0:
                del verdict.counts["calls"]
                verdict.violations.pop("calls", None)
            else:
                verdict.violations["calls"] = kept
        for _start, _end, up in outages:
            if up is not None and not any(at >= up and m.topic == self.topics.board() for at, m in received):
                verdict.fail("calls", f"the display reconnected at {self.wall(up).isoformat()} but painted no board")
        verdict.figures["calls missed while the display was offline (not on the board it repainted)"] = len(excused)

    def _fault_figures(self, fault: FaultRecord, verdict: Verdict) -> dict[str, Any]:
        """Per client touched by ``fault``: seconds to notice (LinkDown), to the broker's last will, to reconnect
        after the link came back and to the first request answered."""
        assert self.display is not None
        assert self.watch is not None
        out: dict[str, Any] = {"kind": fault.kind, "pi": fault.pi, "duration_s": fault.duration_s}
        if fault.start is None or fault.end is None:
            verdict.fail("faults", f"{fault.kind} on {fault.pi} never ran")
            return out
        start, end = fault.start, fault.end
        clients: list[tuple[str, str, LinkLog]] = []
        if fault.kind in ("kiosk_cut", "controller_isolated"):
            clients += [("kiosk", d.device_id, d.links) for d in self.dispensers
                        if fault.kind == "controller_isolated" or d.device_id == fault.pi]
        if fault.kind in ("counter_partition", "controller_isolated"):
            clients += [("counter", c.device_id, c.links) for c in self.counters
                        if fault.kind == "controller_isolated" or f"c{c.device_id}" == fault.pi]
        if fault.kind in ("display_cut", "controller_isolated"):
            clients.append(("display", "dsp", self.display.links))
        per_client = []
        for role, client, links in clients:
            pi = client if role != "counter" else f"c{client}"
            # Only this fault's own notice and will: not those the next fault on the same Pi caused.
            until = min([end + 3 * self.keepalive_s + 5, *(f.start for f in self.faults if f.start is not None
                                                            and f.start > start and f.pi in (pi, "ctl"))])
            down = next((t for t in links.downs if start <= t <= until), None)
            will = next((at for at, m in self.watch.received
                         if start <= at <= until and not m.retain and m.topic == self.topics.status(client)
                         and wire.Presence.decode(m.payload).state == "offline"), None)
            up = next((t for t in links.ups if t >= (down if down is not None else end)), None)
            answered = next((t for t in links.answers if t >= end), None)
            row = {"role": role, "client": client,
                   "noticed_s": round(down - start, 2) if down is not None else None,
                   "will_s": round(will - start, 2) if will is not None else None,
                   "reconnected_s": round(up - end, 2) if down is not None and up is not None else None,
                   "offline_s": round(up - down, 2) if down is not None and up is not None else None,
                   "answered_s": round(answered - end, 2) if answered is not None and role != "display" else None}
            if down is not None and (up is None or up - end > self.plan.recovery_limit_s):
                verdict.fail("recovery", f"{client} did not reconnect within {self.plan.recovery_limit_s:.0f} s of "
                                         f"the end of {fault.kind} on {fault.pi}")
            per_client.append(row)
        out["clients"] = per_client
        relevant = {"kiosk_cut": KIOSK_EFFECTS, "counter_partition": COUNTER_EFFECTS, "display_cut": (),
                    "controller_isolated": KIOSK_EFFECTS + COUNTER_EFFECTS}[fault.kind]
        out["effects"] = {k: fault.after[k] - fault.before[k] for k in relevant if k in fault.after}
        return out

    def _figures(self, verdict: Verdict, *, faults: list[dict[str, Any]], load_s: float,
                 drain_s: float) -> RunResult:
        plan = self.plan
        f = verdict.figures
        d_lat = [x for d in self.dispensers for x in d.stats.latencies_s]
        c_lat = [x for c in self.counters for x in c.stats.latencies_s]
        f["keepalive s / reconnect backoff max s"] = [self.keepalive_s, self.reconnect_max_s]
        f["load seconds"] = round(load_s, 1)
        f["closing drain seconds"] = round(drain_s, 1)
        f["dispenser request to reply p50/p99/max ms (incl. retries)"] = (
            [round(percentile(d_lat, q) * 1000, 1) for q in (50, 99, 100)] if d_lat else None)
        f["counter command to reply p50/p99/max ms (incl. retries)"] = (
            [round(percentile(c_lat, q) * 1000, 1) for q in (50, 99, 100)] if c_lat else None)
        f["dispenser requests"] = sum(d.stats.requests for d in self.dispensers)
        f["dispenser re-sends (same request id)"] = sum(d.stats.resends for d in self.dispensers)
        f["dispenser requests abandoned"] = sum(d.stats.abandoned for d in self.dispensers)
        f["presses ignored while offline"] = sum(d.stats.ignored_offline for d in self.dispensers)
        f["counter commands accepted"] = sum(sum(c.stats.accepted.values()) for c in self.counters)
        f["counter re-sends (same request id)"] = sum(c.stats.resends for c in self.counters)
        f["counter commands given up"] = sum(c.stats.gave_up for c in self.counters)
        f["kiosk packets dropped by the Wi-Fi loss"] = sum(self.net.dropped(k) for k in KIOSKS)
        if self.relay is not None and self.relay.chunks:
            f["relay chunks delayed / mean delay ms"] = [self.relay.chunks,
                                                         round(self.relay.delay_total_s / self.relay.chunks * 1000, 1)]
        f["faults"] = faults
        ran = [x for x in faults if "clients" in x]
        rows = [
            ("tickets issued (ledger)", str(f["tickets issued"]), "> 0", f["tickets issued"] > 0),
            ("calls in the journal", str(f["calls in the journal"]), "> 0", f["calls in the journal"] > 0),
            ("faults injected", str(len(ran)), str(len(faults)), len(ran) == len(faults)),
            ("kiosk packets dropped", str(f["kiosk packets dropped by the Wi-Fi loss"]), "> 0",
             f["kiosk packets dropped by the Wi-Fi loss"] > 0),
            ("violations", str(verdict.total), "0", verdict.total == 0),
        ]
        data = {"plan": {k: getattr(plan, k) for k in plan.__dataclass_fields__}, "figures": f,
                "violations": verdict.violations, "violation_counts": dict(verdict.counts)}
        return RunResult(plan=plan, verdict=verdict, rows=rows, data=data)


def run_split_hall(plan: Plan, workdir: Path, *, progress: bool = False) -> RunResult:
    """One run in ``workdir`` (created if missing). Raises RuntimeError if namespaces cannot be made here."""
    reason = split_net.unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    return SplitHall(plan, workdir, progress=progress).run()


# --- the figures in docs/reliability.md -------------------------------------------------------------------------


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def figures_markdown(result: RunResult, command: str) -> str:
    f = result.data["figures"]
    lines = [f"Measured with `{command}` on {time.strftime('%Y-%m-%d')}"
             f" ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}).", "",
             "| figure | value |", "|---|---|"]
    for key, value in f.items():
        if key == "faults":
            continue
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
        lines.append(f"| {key} | {shown} |")
    lines.append(f"| **violations** | **{result.verdict.total}** |")
    lines += ["", "Per fault and client, seconds (median / max where several clients): *noticed* from the cut to "
              "the client's link reporting down, *will* from the cut to the broker publishing the client's "
              "last will, *back* from the link's return to the client subscribed again, *offline* from noticing "
              "to being back (fault LED on, offline banner), *answered* from the link's return to the first "
              "request or command answered.", "",
              "| fault | Pi | cut s | clients | noticed | will | back | offline | answered | what it cost |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for fault in f["faults"]:
        by_role: dict[str, list[dict[str, Any]]] = {}
        for c in fault.get("clients", []):
            by_role.setdefault(c["role"], []).append(c)
        effects = ", ".join(f"{k} {v}" for k, v in fault.get("effects", {}).items() if v)
        for role, clients in by_role.items():
            def col(key: str, rows: list[dict[str, Any]] = clients) -> str:
                return _spread([r[key] for r in rows if r[key] is not None])
            lines.append(f"| {fault['kind']} | {fault['pi']} | {fault['duration_s']:.0f} | {len(clients)} {role}"
                         f"{'s' if len(clients) > 1 else ''} | {col('noticed_s')} | {col('will_s')} | "
                         f"{col('reconnected_s')} | {col('offline_s')} | {col('answered_s')} | {effects or '-'} |")
            effects = ""
    lines += result.verdict.violation_lines()
    return "\n".join(lines)


def write_doc(result: RunResult, command: str, path: Path = DOC) -> None:
    replace_figures(path, start=FIGURES_START, end=FIGURES_END, markdown=figures_markdown(result, command))


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the run's finally blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=None, help="seeds the faults' targets, presses and delays")
    parser.add_argument("--short", action="store_true", help="the CI form: one round of faults, ~90 s")
    parser.add_argument("--keepalive", type=int, default=None, help="MQTT keepalive s (default: hallq.mqtt's)")
    parser.add_argument("--reconnect-max", type=int, default=None,
                        help="reconnect backoff ceiling s (default: hallq.mqtt's)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the run's files here (default: a temp dir)")
    parser.add_argument("--no-doc", action="store_true", help="do not write the figures into docs/reliability.md")
    args = parser.parse_args(argv)
    logsetup.setup("WARNING")
    logging.getLogger("hallq.mqtt").setLevel(logging.ERROR)  # the faults make reconnects routine here
    reason = split_net.unavailable()
    if reason is not None:
        sys.stderr.write(f"split hall: {reason}\n")
        return 2
    base = SHORT if args.short else Plan()
    plan = dataclasses.replace(base, seed=base.seed if args.seed is None else args.seed, keepalive_s=args.keepalive,
                               reconnect_max_s=args.reconnect_max)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hallq-split-"))
    try:
        result = run_split_hall(plan, workdir, progress=True)
    except KeyboardInterrupt:
        sys.stderr.write(f"split hall: interrupted; the network is removed, run files in {workdir}\n")
        return 130
    report("split-hall-short" if args.short else "split-hall", result.rows, result.data)
    for check, examples in result.verdict.violations.items():
        sys.stdout.write(f"VIOLATION {check} ({result.verdict.counts[check]}): {examples}\n")
    command = "python -m bench.split_hall " + " ".join(sys.argv[1:] if argv is None else argv)
    if not args.no_doc:
        write_doc(result, command.strip())
        sys.stdout.write(f"figures written to {DOC.relative_to(ROOT)}\n")
    sys.stdout.write(figures_markdown(result, command.strip()) + "\n")
    sys.stdout.write(f"run files in {workdir}\n")
    return 0 if result.verdict.total == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
