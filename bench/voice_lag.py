"""How far the hall's voice is behind its screen: a call reaching the display → its words starting.

Run:  .venv/bin/python -m bench.voice_lag [--calls 60] [--paces 3.6,3,2]

For each pace and each set of spoken languages (Vietnamese only; Vietnamese + English), a private Mosquitto
and the real display service (``python -m display``, espeak-ng making every sentence, at the example
config's 140 words a minute) run side by side, all scenarios at once. A publisher acting as the controller
sends ``--calls`` calls on ``calls`` at the pace given (each interval drawn uniformly between half and one and
a half times it), from 20 counters, one call in ten a recall; 3.6 s is the simulated hall's default pace, 3 s
and 2 s a 20-counter peak.

The display logs, for each call, either ``announcing … lag_s=`` (its words start that long after the call
reached the display, measured on the display's own monotonic clock from the moment the MQTT message was
handed to its loop to the moment the segment's audio left for the player, plus the words' offset in the
segment) or ``not announced … reason=``. The benchmark reads those lines and reports the lag's p50, p95 and
max, and how many calls were said, merged under one chime, or skipped (and why).

Target: the voice is never more than 10 s behind the screen (max lag ≤ 10 s), at every pace. Prints a table
and saves bench/results/voice_lag.json.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import percentile, report
from hallq import wire
from hallq.mqtt import BrokerSettings, MqttLink
from hallq.topics import Topics
from testbed.broker import PrivateBroker, free_port
from testbed.display import DisplayProcess

TOPICS = Topics(hall="bench")
TARGET_MAX_S = 10.0
LINE = re.compile(r"(announcing|not announced) ticket=\S+ counter=\S+ seq=(\d+)(.*)")

DISPLAY_TOML = """
[display]
hall = "bench"
client_id = "display-bench"
[announce]
languages = {languages}
speed_wpm = 140
gap_s = 0.8
max_lag_s = {max_lag_s}
[mqtt]
broker = "127.0.0.1:1"
"""


@dataclass
class Scenario:
    pace_s: float
    languages: tuple[str, ...]
    lags_s: list[float] = field(default_factory=list)
    segments: Counter[int] = field(default_factory=Counter)  # calls per segment → segments
    skipped: Counter[str] = field(default_factory=Counter)
    english_said: int = 0
    calls: int = 0

    @property
    def name(self) -> str:
        return f"{self.pace_s:g} s, {' + '.join(self.languages)}"


def _calls(count: int, pace_s: float, seed: int) -> list[tuple[float, wire.Call]]:
    """(delay before it, the call): 20 counters, one in ten a recall of that counter's current number."""
    rng = random.Random(seed)
    current: dict[str, str] = {}
    result = []
    for seq in range(1, count + 1):
        counter = str(rng.randint(1, 20))
        recall = counter in current and rng.random() < 0.1
        number = current[counter] if recall else f"{'ABCD'[seq % 4]}{seq:03d}"
        current[counter] = number
        call = wire.Call(seq=seq, number=number, counter=counter, counter_name=f"Quầy {counter}",
                         service=number[0], priority=False, recall=recall, at=datetime.now(UTC))
        result.append((rng.uniform(0.5 * pace_s, 1.5 * pace_s), call))
    return result


def run_scenario(scenario: Scenario, *, calls: int, seed: int, max_lag_s: float, work: Path) -> None:
    work.mkdir(parents=True)
    config = work / "display.toml"
    languages = "[" + ", ".join(f'"{lang}"' for lang in scenario.languages) + "]"
    config.write_text(DISPLAY_TOML.format(languages=languages, max_lag_s=max_lag_s), encoding="utf-8")
    with PrivateBroker(work / "broker") as broker, DisplayProcess(
            config=config, broker_address=broker.address, port=free_port(), log_path=work / "display.log") as display:
        link = MqttLink(client_id=f"bench-voice-{seed}", broker=BrokerSettings(port=broker.port),
                        inbox=_Discard(), subscriptions=[])
        link.start()
        link.wait_up(5)
        for delay_s, call in _calls(calls, scenario.pace_s, seed):
            time.sleep(delay_s)
            link.publish(TOPICS.calls(), call.encode())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _settled(display.log_text(), calls):
            time.sleep(0.5)
        link.stop()
        _read(scenario, display.log_text())
        scenario.calls = calls


class _Discard:
    def put(self, _item: object) -> None:
        return


def _settled(log: str, calls: int) -> bool:
    first = {int(m.group(2)) for m in LINE.finditer(log)
             if ("voice=first" in m.group(3)) or "reason=superseded" in m.group(3) or "reason=late" in m.group(3)}
    return len(first) >= calls


def _read(scenario: Scenario, log: str) -> None:
    for match in LINE.finditer(log):
        what, rest = match.group(1), match.group(3)
        fields = dict(re.findall(r"(\w+)=(\S+)", rest))
        if what == "announcing" and fields.get("voice") == "first":
            scenario.lags_s.append(float(fields["lag_s"]))
            part, _, of = fields["part"].partition("/")
            if part == of:
                scenario.segments[int(of)] += 1
        elif what == "announcing":
            scenario.english_said += 1
        else:
            scenario.skipped[fields["reason"]] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=60, help="calls per scenario (default 60)")
    parser.add_argument("--paces", default="3.6,3,2", help="seconds between calls, comma-separated")
    parser.add_argument("--max-lag-s", type=float, default=TARGET_MAX_S, help="the display's [announce] max_lag_s")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    scenarios = [Scenario(pace_s=float(p), languages=langs) for p in args.paces.split(",")
                 for langs in (("vi",), ("vi", "en"))]
    with tempfile.TemporaryDirectory(prefix="hallq-bench-voice-") as work_text:
        threads = [threading.Thread(target=run_scenario, args=(s,), daemon=True,
                                    kwargs={"calls": args.calls, "seed": args.seed + i, "max_lag_s": args.max_lag_s,
                                            "work": Path(work_text) / f"s{i}"})
                   for i, s in enumerate(scenarios)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    rows: list[tuple[str, str, str, bool]] = []
    data: dict[str, Any] = {"calls": args.calls, "max_lag_s": args.max_lag_s, "scenarios": []}
    ok_all = True
    for s in scenarios:
        worst = max(s.lags_s) if s.lags_s else float("nan")
        ok = bool(s.lags_s) and worst <= TARGET_MAX_S
        ok_all &= ok
        merged = sum(n * count for n, count in s.segments.items() if n > 1)
        rows.append((f"{s.name}: lag p50 / p95 / max",
                     f"{percentile(s.lags_s, 50):.1f} / {percentile(s.lags_s, 95):.1f} / {worst:.1f} s",
                     f"max ≤ {TARGET_MAX_S:g} s", ok))
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(s.skipped.items())) or "none"
        rows.append((f"{s.name}: said / merged / skipped", f"{len(s.lags_s)}/{s.calls} / {merged} / {skipped}",
                     "", True))
        data["scenarios"].append({"pace_s": s.pace_s, "languages": s.languages, "lags_s": s.lags_s,
                                  "segments": dict(s.segments), "skipped": dict(s.skipped),
                                  "english_said": s.english_said, "calls": s.calls})
    report("voice_lag", rows, data)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
