"""The chaos run: a compressed business day under faults, with nothing lost or handed out twice.

Run it::

    .venv/bin/python -m bench.chaos                       # the full run: 5,000 tickets in ~8 minutes
    .venv/bin/python -m bench.chaos --seed 7 --minutes 2 --tickets 1200 --kills 4 --broker-restarts 2

What runs, all on loopback: a private Mosquitto (``testbed.broker.PrivateBroker``), the hall controller as a
process (``python -m hall_controller``), 20 simulated dispensers and 20 simulated counters (each its own MQTT
client, connected through its own cuttable relay, see ``chaos_net``), a display subscriber of ``calls`` and
the retained ``board``, and a presence watcher. The hall config is generated in the run's directory with a
business day that starts during the load, so the controller rolls the day over by its own clock.

Faults, on a seeded schedule (``chaos_schedule``): the controller SIGKILLed and restarted, the broker
restarted on the same port (persistence kept), single devices cut mid-request and kept off for a while,
and print failures (each dispenser fails a seeded share of its prints and reports it).

Afterwards the closing drain serves everyone still waiting, the controller is stopped and the ledger is
opened; ``chaos_checks`` compares it with what every client recorded. The run prints a table, saves
``bench/results/chaos.json`` and, unless ``--no-doc``, writes the figures into ``docs/reliability.md``.
Exit status 0 when no check found a violation, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.chaos_checks import Verdict, replace_figures, verdict_of
from bench.chaos_devices import Listener, SimCounter, SimDispenser, close_the_day, decode_calls
from bench.chaos_hall import (
    COUNTERS,
    DISPENSERS,
    HALL_ID,
    SERVICE_IDS,
    TIME_ZONE,
    dispenser_services,
    hall_toml,
    rollover_after,
)
from bench.chaos_net import CutRelays
from bench.chaos_schedule import Fault, plan_faults
from bench.common import ROOT, percentile, report
from hall_controller.cli import LEDGER_FILE
from hall_controller.config import load as load_config
from hall_controller.ledger import Ledger
from hallq import logsetup, wire
from hallq.mqtt import BrokerSettings, Message
from hallq.topics import Topics
from testbed.broker import PrivateBroker
from testbed.controller import ControllerProcess

log = logging.getLogger(__name__)

DOC = ROOT / "docs" / "reliability.md"
FIGURES_START = "<!-- chaos-figures:start -->"
FIGURES_END = "<!-- chaos-figures:end -->"


@dataclass(frozen=True, slots=True)
class Plan:
    """The shape of one run. ``duration_s`` is the load; the day rolls over at the first whole minute at
    least ``rollover_min_s`` into it, and the load lasts at least ``after_rollover_s`` beyond that."""

    seed: int = 1
    tickets: int = 5000
    duration_s: float = 480.0
    kills: int = 12
    broker_restarts: int = 4
    cuts: int = 40
    print_fail_p: float = 0.02
    rollover_min_s: float = 200.0
    after_rollover_s: float = 20.0
    service_s: tuple[float, float] = (0.4, 2.2)
    recovery_limit_s: float = 30.0


@dataclass(slots=True)
class RunResult:
    plan: Plan
    verdict: Verdict
    rows: list[tuple[str, str, str, bool]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None


def _live_online(received: list[tuple[float, Message]], topic: str, since: int) -> bool:
    """True if a live (not retained) ``online`` presence arrived on ``topic`` after index ``since``."""
    for _at, message in received[since:]:
        if message.topic == topic and not message.retain and wire.Presence.decode(message.payload).state == "online":
            return True
    return False


class ChaosRun:
    """One run of ``plan`` in ``workdir``; ``run()`` returns the verdict and the figures."""

    def __init__(self, plan: Plan, workdir: Path, *, broker: PrivateBroker | None = None,
                 progress: bool = False) -> None:
        self.plan = plan
        self.workdir = workdir
        self.progress = progress
        self.topics = Topics(hall=HALL_ID)
        self.broker = broker or PrivateBroker(workdir / "broker")
        self.relays: CutRelays | None = None
        self.controller: ControllerProcess | None = None
        self.watch: Listener | None = None
        self.display: Listener | None = None
        self.dispensers: list[SimDispenser] = []
        self.counters: list[SimCounter] = []
        self.kill_restarts_s: list[float] = []
        self.broker_events: list[dict[str, float]] = []
        self.faults_done: Counter[str] = Counter()

    def say(self, text: str) -> None:
        if self.progress:
            sys.stdout.write(f"[chaos {time.strftime('%H:%M:%S')}] {text}\n")
            sys.stdout.flush()

    # --- setting up --------------------------------------------------------------------------------------

    def _start_controller(self, *, timeout_s: float = 20.0) -> float:
        """Start the controller; seconds until its live ``online`` presence (it has subscribed by then)."""
        assert self.controller is not None
        assert self.watch is not None
        since = len(self.watch.received)
        started = time.monotonic()
        self.controller.start(wait=False)  # online is awaited on the broker, below
        topic = self.topics.status("controller")
        if not self.watch.wait_for(lambda received: _live_online(received, topic, since), timeout_s):
            raise RuntimeError(f"controller not online within {timeout_s} s; see {self.controller.log_path}")
        return time.monotonic() - started

    def _setup(self) -> tuple[datetime, float]:
        plan = self.plan
        if not self.broker.running:
            self.broker.start()
        self.relays = CutRelays(self.broker.port, (*DISPENSERS, *(c.id for c in COUNTERS)))
        self.relays.start()
        direct = BrokerSettings(port=self.broker.port)
        self.watch = Listener("chaos-watch", broker=direct, subscriptions=[self.topics.all_status()])
        self.display = Listener("chaos-display", broker=direct,
                                subscriptions=[self.topics.calls(), self.topics.board()])
        self.watch.start()
        self.display.start()
        if not (self.watch.link.wait_up(10) and self.display.link.wait_up(10)):
            raise RuntimeError("the watcher and the display could not connect to the broker")
        # Setting up takes a few seconds; the rollover is a whole minute counted from the load's expected start.
        expected_start = datetime.now(ZoneInfo(TIME_ZONE)) + timedelta(seconds=4)
        rollover = rollover_after(expected_start, at_least_s=plan.rollover_min_s)
        config = self.workdir / "hall.toml"
        config.write_text(hall_toml(rollover=rollover, state_dir=str(self.workdir / "state")), encoding="utf-8")
        self.controller = ControllerProcess(config=config, broker=self.broker, state_dir=self.workdir / "state",
                                           log_path=self.workdir / "controller.log")
        self._start_controller()
        numbers: deque[tuple[str, str]] = deque(maxlen=400)
        for n, dispenser in enumerate(DISPENSERS):
            self.dispensers.append(SimDispenser(
                dispenser, broker=BrokerSettings(port=self.relays.ports[dispenser]), topics=self.topics,
                seed=plan.seed * 1000 + n, services=dispenser_services(dispenser),
                rate_per_s=plan.tickets / plan.duration_s / len(DISPENSERS),
                print_fail_p=plan.print_fail_p, numbers_seen=numbers))
        for n, spec in enumerate(COUNTERS):
            self.counters.append(SimCounter(
                spec.id, broker=BrokerSettings(port=self.relays.ports[spec.id]), topics=self.topics,
                seed=plan.seed * 1000 + 500 + n, services=spec.services, all_services=SERVICE_IDS,
                service_s=plan.service_s, numbers_seen=numbers))
        for device in (*self.dispensers, *self.counters):
            device.cut_hook = self.relays.cut
            device.start()
        for device in (*self.dispensers, *self.counters):
            if not device.link.wait_up(15):
                raise RuntimeError(f"simulated device {device.device_id} could not connect")
        load_start = datetime.now(ZoneInfo(TIME_ZONE))
        return rollover, (rollover - load_start).total_seconds()

    # --- faults ---------------------------------------------------------------------------------------------

    def _inject(self, fault: Fault) -> None:
        assert self.controller is not None
        if fault.kind == "kill_controller":
            self.controller.kill()
            self.faults_done["controller SIGKILLs"] += 1
            self.kill_restarts_s.append(self._start_controller())
        elif fault.kind == "restart_broker":
            stopped = time.monotonic()
            self.broker.stop()
            self.broker.start()
            up = time.monotonic()
            self.faults_done["broker restarts"] += 1
            self.broker_events.append({"stopped": stopped, "up": up})
        else:
            group = self.dispensers if fault.kind == "cut_dispenser" else self.counters
            for device in group:
                if device.device_id == fault.target:
                    device.arm_cut(fault.down_s)
            self.faults_done["connection cuts armed"] += 1

    # --- the run --------------------------------------------------------------------------------------------

    def run(self) -> RunResult:
        plan = self.plan
        try:
            rollover, rollover_at_s = self._setup()
            duration_s = max(plan.duration_s, rollover_at_s + plan.after_rollover_s)
            faults = plan_faults(seed=plan.seed, duration_s=duration_s, rollover_at_s=rollover_at_s, kills=plan.kills,
                                 broker_restarts=plan.broker_restarts, cuts=plan.cuts, dispensers=DISPENSERS,
                                 counters=tuple(c.id for c in COUNTERS))
            self.say(f"load for {duration_s:.0f} s, business day rolls over at {rollover:%H:%M} "
                     f"({rollover_at_s:.0f} s in), {len(faults)} faults scheduled; work dir {self.workdir}")
            started = time.monotonic()
            for device in self.dispensers:
                # A little above the target: presses while a link is down or a request is in flight are lost.
                device.rate_per_s = plan.tickets / duration_s / len(DISPENSERS) * 1.08
                device.pressing.set()
            for counter in self.counters:
                counter.running.set()
            for fault in faults:
                delay = started + fault.at_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # the schedule's clock, not synchronisation
                if fault.kind in ("kill_controller", "restart_broker"):
                    self.say(f"{fault.kind} at {time.monotonic() - started:.1f} s")
                self._inject(fault)
            time.sleep(max(0.0, started + duration_s - time.monotonic()))
            load_s = time.monotonic() - started
            self.say("load over: closing the kiosks and serving everyone left")
            drain_s = self._close_day()
            return self._verdict(rollover=rollover, load_s=load_s, drain_s=drain_s)
        finally:
            self._teardown()

    def _close_day(self) -> float:
        """Stop presses, let every request settle, then have every counter serve until its queue is empty."""
        assert self.controller is not None
        drain_s = close_the_day(self.dispensers, self.counters)
        self.controller.stop()
        return drain_s

    def _teardown(self) -> None:
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
        if self.relays is not None:
            self.relays.stop()
        self.broker.stop()

    # --- afterwards -----------------------------------------------------------------------------------------

    def _verdict(self, *, rollover: datetime, load_s: float, drain_s: float) -> RunResult:
        assert self.display is not None
        assert self.relays is not None
        config = load_config(self.workdir / "hall.toml")
        ledger = Ledger(self.workdir / "state" / LEDGER_FILE, hall_id=HALL_ID)
        try:
            rows = ledger.history()
            events = list(ledger.events())
        finally:
            ledger.close()
        last_seq = max((getattr(e, "seq", 0) for e in events), default=0)
        topics = self.topics

        def display_has_last(received: list[tuple[float, Message]]) -> bool:
            calls, boards = decode_calls(received, topics)
            return any(c.seq == last_seq for c in calls) or any(b.seq == last_seq for b in boards)

        self.display.wait_for(display_has_last, timeout_s=10)
        calls, boards = decode_calls(list(self.display.received), topics)
        printed = [p for d in self.dispensers for p in d.printed]
        given = [g for c in self.counters for g in c.given]
        verdict = verdict_of(spec=config.hall, rows=rows, events=events, printed=printed, given=given, calls=calls,
                             boards=boards)
        for counter in self.counters:
            if not counter.drained.is_set():
                verdict.fail("stranded", f"counter {counter.device_id} did not finish the closing drain")
        recovery = self._recovery(verdict)
        return self._figures(verdict, rollover=rollover, load_s=load_s, drain_s=drain_s, recovery=recovery)

    def _recovery(self, verdict: Verdict) -> list[dict[str, Any]]:
        """Per broker restart: each device's time from the broker listening again to its reconnect and to its
        first answered request; a device that did neither within ``recovery_limit_s`` is a violation."""
        out = []
        devices = [*self.dispensers, *self.counters]
        for n, event in enumerate(self.broker_events, 1):
            up = event["up"]
            reconnect: list[float] = []
            answered: list[float] = []
            for device in devices:
                ups = [t - up for t in device.links.ups if t >= event["stopped"]]
                answers = [t - up for t in device.links.answers if t >= up]
                if not ups or ups[0] > self.plan.recovery_limit_s:
                    verdict.fail("recovery", f"{device.device_id} did not reconnect within "
                                             f"{self.plan.recovery_limit_s:.0f} s of broker restart {n}")
                    continue
                reconnect.append(max(0.0, ups[0]))
                if not answers or answers[0] > self.plan.recovery_limit_s:
                    verdict.fail("recovery", f"{device.device_id} had no request answered within "
                                             f"{self.plan.recovery_limit_s:.0f} s of broker restart {n}")
                    continue
                answered.append(answers[0])
            out.append({"restart": n, "broker_down_s": round(up - event["stopped"], 3),
                        "reconnect_p50_s": round(percentile(reconnect, 50), 2) if reconnect else None,
                        "reconnect_max_s": round(max(reconnect), 2) if reconnect else None,
                        "first_answer_min_s": round(min(answered), 2) if answered else None,
                        "first_answer_max_s": round(max(answered), 2) if answered else None,
                        "devices_recovered": len(answered), "devices": len(devices)})
        return out

    def _figures(self, verdict: Verdict, *, rollover: datetime, load_s: float, drain_s: float,
                 recovery: list[dict[str, Any]]) -> RunResult:
        plan = self.plan
        assert self.relays is not None
        f = verdict.figures
        d_lat = [x for d in self.dispensers for x in d.stats.latencies_s]
        c_lat = [x for c in self.counters for x in c.stats.latencies_s]
        accepted: Counter[str] = Counter()
        refused: Counter[str] = Counter()
        for c in self.counters:
            accepted.update(c.stats.accepted)
            refused.update(c.stats.refused)
        d_refused: Counter[str] = Counter()
        for d in self.dispensers:
            d_refused.update(d.stats.refused)
        f["controller SIGKILLs"] = self.faults_done["controller SIGKILLs"]
        f["broker restarts"] = self.faults_done["broker restarts"]
        f["connection cuts (mid-request)"] = self.relays.cuts
        f["business day rolled over at"] = rollover.isoformat(timespec="seconds")
        f["load seconds"] = round(load_s, 1)
        f["closing drain seconds"] = round(drain_s, 1)
        f["controller restart to online p50/max s"] = (
            [round(statistics.median(self.kill_restarts_s), 2), round(max(self.kill_restarts_s), 2)]
            if self.kill_restarts_s else None)
        f["dispenser request to reply p50/p99/max ms (incl. retries)"] = (
            [round(percentile(d_lat, q) * 1000, 1) for q in (50, 99, 100)] if d_lat else None)
        f["counter command to reply p50/p99/max ms (incl. retries)"] = (
            [round(percentile(c_lat, q) * 1000, 1) for q in (50, 99, 100)] if c_lat else None)
        f["dispenser requests"] = sum(d.stats.requests for d in self.dispensers)
        f["dispenser re-sends (same request id)"] = sum(d.stats.resends for d in self.dispensers)
        f["dispenser requests abandoned"] = sum(d.stats.abandoned for d in self.dispensers)
        f["presses ignored while offline"] = sum(d.stats.ignored_offline for d in self.dispensers)
        f["dispenser refusals"] = dict(sorted(d_refused.items()))
        f["counter commands accepted"] = dict(sorted(accepted.items()))
        f["counter refusals"] = dict(sorted(refused.items()))
        f["counter re-sends (same request id)"] = sum(c.stats.resends for c in self.counters)
        f["counter commands given up"] = sum(c.stats.gave_up for c in self.counters)
        f["broker restart recovery"] = recovery
        rows = [
            ("tickets issued (ledger)", str(f["tickets issued"]), f"≥ {plan.tickets}" if plan.tickets else "-",
             f["tickets issued"] >= plan.tickets * 0.9),
            ("priority tickets", str(f["priority tickets"]), "> 0", f["priority tickets"] > 0),
            ("calls / recalls", f"{f['calls in the journal']} / {f['recalls in the journal']}", "> 0",
             f["calls in the journal"] > 0 and f["recalls in the journal"] > 0),
            ("counter actions used", str(len(accepted)), "9 of 9", len(accepted) == 9),
            ("controller SIGKILLs", str(f["controller SIGKILLs"]), f"{plan.kills}",
             f["controller SIGKILLs"] >= plan.kills),
            ("broker restarts", str(f["broker restarts"]), f"{plan.broker_restarts}",
             f["broker restarts"] >= plan.broker_restarts),
            ("connection cuts", str(f["connection cuts (mid-request)"]), "> 0" if plan.cuts else "-",
             f["connection cuts (mid-request)"] > 0 or not plan.cuts),
            ("prints failed → void", f"{f['prints reported failed']}", "> 0", f["prints reported failed"] > 0),
            ("business days", ", ".join(f["business days"]), "2", len(f["business days"]) >= 2),
            ("violations", str(verdict.total), "0", verdict.total == 0),
        ]
        data = {"plan": {k: getattr(plan, k) for k in plan.__dataclass_fields__}, "figures": f,
                "violations": verdict.violations, "violation_counts": dict(verdict.counts)}
        return RunResult(plan=plan, verdict=verdict, rows=rows, data=data, workdir=self.workdir)


def run_chaos(plan: Plan, workdir: Path, *, broker: PrivateBroker | None = None,
              progress: bool = False) -> RunResult:
    """One chaos run in ``workdir`` (created if missing), on ``broker`` if given (it is restarted by the run
    and stopped at its end), else on a private broker of its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    return ChaosRun(plan, workdir, broker=broker, progress=progress).run()


def figures_markdown(result: RunResult, command: str) -> str:
    """The figures block of docs/reliability.md for ``result``."""
    f = result.data["figures"]
    lines = [f"Measured with `{command}` on {time.strftime('%Y-%m-%d')}"
             f" ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}).", "",
             "| figure | value |", "|---|---|"]
    for key, value in f.items():
        if key == "broker restart recovery":
            continue
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
        lines.append(f"| {key} | {shown} |")
    lines.append(f"| **violations** | **{result.verdict.total}** |")
    lines += ["", "Recovery after each broker restart (seconds from the broker listening again; 40 simulated "
              "devices):", "", "| restart | broker down s | reconnect p50 / max | first answered request min / max "
              "| devices recovered |", "|---|---|---|---|---|"]
    for r in f["broker restart recovery"]:
        lines.append(f"| {r['restart']} | {r['broker_down_s']} | {r['reconnect_p50_s']} / {r['reconnect_max_s']} | "
                     f"{r['first_answer_min_s']} / {r['first_answer_max_s']} | {r['devices_recovered']} of "
                     f"{r['devices']} |")
    lines += result.verdict.violation_lines()
    return "\n".join(lines)


def write_doc(result: RunResult, command: str, path: Path = DOC) -> None:
    replace_figures(path, start=FIGURES_START, end=FIGURES_END, markdown=figures_markdown(result, command))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tickets", type=int, default=5000, help="tickets to aim for (default 5000)")
    parser.add_argument("--minutes", type=float, default=8.0, help="length of the load (default 8)")
    parser.add_argument("--kills", type=int, default=12, help="controller SIGKILLs (default 12)")
    parser.add_argument("--broker-restarts", type=int, default=4, help="broker restarts (default 4)")
    parser.add_argument("--cuts", type=int, default=40, help="device connections cut mid-request (default 40)")
    parser.add_argument("--print-fail", type=float, default=0.02, help="share of prints that fail (default 0.02)")
    parser.add_argument("--rollover-after", type=float, default=None,
                        help="seconds into the load before the business day may roll over (default: 45%% of it)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the run's files here (default: a temp dir)")
    parser.add_argument("--no-doc", action="store_true", help="do not write the figures into docs/reliability.md")
    args = parser.parse_args(argv)
    logsetup.setup("WARNING")
    # Forty clients lose the broker at every restart: their reconnect notices are expected, not news.
    logging.getLogger("hallq.mqtt").setLevel(logging.ERROR)
    duration_s = args.minutes * 60
    plan = Plan(seed=args.seed, tickets=args.tickets, duration_s=duration_s, kills=args.kills,
                broker_restarts=args.broker_restarts, cuts=args.cuts, print_fail_p=args.print_fail,
                rollover_min_s=args.rollover_after if args.rollover_after is not None else duration_s * 0.45)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hallq-chaos-"))
    result = run_chaos(plan, workdir, progress=True)
    name = "chaos" if plan.tickets >= 5000 else "chaos-short"
    report(name, result.rows, result.data)
    for check, examples in result.verdict.violations.items():
        sys.stdout.write(f"VIOLATION {check} ({result.verdict.counts[check]}): {examples}\n")
    command = "python -m bench.chaos " + " ".join(sys.argv[1:] if argv is None else argv)
    if not args.no_doc:
        write_doc(result, command.strip())
        sys.stdout.write(f"figures written to {DOC.relative_to(ROOT)}\n")
    sys.stdout.write(f"run files in {workdir}\n")
    return 0 if result.verdict.total == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
