"""Shared pieces of the benchmarks: a bench hall config, percentiles, result tables and JSON files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hall_controller.config import load as config_load
from hall_controller.engine import Engine
from hall_controller.engine.events import Event, IssueTicket
from hall_controller.ledger import Ledger
from hall_controller.provision import acl_text, devices_of
from hallq.topics import Topics
from testbed.broker import PrivateBroker

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def bench_hall_toml(*, dispensers: int, counters: int = 4, state_dir: str = "/tmp",
                    username: str | None = None) -> str:
    """A hall with four always-open services with wide ranges, ``dispensers`` kiosks b1..bN and counters; with
    ``username``, the controller logs in as that account (see ``provisioned_broker``)."""
    lines = [
        '[hall]', 'id = "bench"', 'name_vi = "Trung tâm đo hiệu năng"', 'name_en = "Benchmark hall"',
        '[controller]', f'state_dir = "{state_dir}"', 'log_level = "WARNING"', 'trust_clock = "always"',
        '[mqtt]', 'broker = "127.0.0.1:1883"', *([f'username = "{username}"'] if username else []),
    ]
    for sid in "ABCD":
        lines += ['[[services]]', f'id = "{sid}"', f'name_vi = "Dịch vụ {sid}"', f'name_en = "Service {sid}"',
                  f'prefix = "{sid}"', 'last_number = 99999', 'wrap = false']
    for n in range(1, counters + 1):
        lines += ['[[counters]]', f'id = "{n}"', 'services = ["A", "B", "C", "D"]', 'policy = "interleave"']
    for n in range(1, dispensers + 1):
        lines += ['[[dispensers]]', f'id = "b{n}"']
    return "\n".join(lines) + "\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 3), "p99_ms": round(percentile(ms, 99), 3),
            "max_ms": round(max(ms), 3), "mean_ms": round(statistics.fmean(ms), 3)}


def machine() -> dict[str, Any]:
    try:
        result = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
        mosquitto = result.stdout.split("\n")[0]
    except OSError:
        mosquitto = "?"
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": _cpus(), "mosquitto": mosquitto,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _cpus() -> int:
    return os.cpu_count() or 0


def report(name: str, rows: list[tuple[str, str, str, bool]], data: dict[str, Any]) -> Path:
    """Print a table (metric, measured, target, ok) and save everything as bench/results/NAME.json."""
    width = max(len(r[0]) for r in rows)
    sys.stdout.write(f"\n{name}\n")
    sys.stdout.write(f"{'metric'.ljust(width)}  {'measured':>22}  {'target':>14}  ok\n")
    for metric, measured, target, ok in rows:
        sys.stdout.write(f"{metric.ljust(width)}  {measured:>22}  {target:>14}  {'yes' if ok else 'NO'}\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "rows": [dict(zip(("metric", "measured", "target", "ok"), r, strict=True))
                                              for r in rows], "data": data}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.stdout.write(f"saved {path.relative_to(ROOT)}\n")
    return path


def provisioned_broker(workdir: Path, config: Path) -> PrivateBroker:
    """A private broker with the hall's provisioned ACL (``provision.acl_text``) but no passwords: every client
    logs in with its account's username (dispenser ``b1``, counter ``counter-1``, ``monitor``, the controller's
    intake accounts) and may use only that account's topics, as in a deployed hall. In particular the
    controller's ``others`` connection is denied the configured devices' topics, as it is in production."""
    cfg = config_load(config)
    acl = workdir / "acl"
    workdir.mkdir(parents=True, exist_ok=True)
    acl.write_text(acl_text(Topics(hall=cfg.hall.id, base=cfg.base_topic), devices_of(cfg, displays=[])),
                   encoding="utf-8")
    return PrivateBroker(workdir, extra_lines=(f"acl_file {acl}",))


def write_waiting_ledger(config: Path, path: Path, tickets: int) -> Engine:
    """A ledger at ``path`` with ``tickets`` tickets waiting (dispensers b1..b50, services A-D, one in seven
    priority), written through the real engine and ledger; returns the engine that wrote it."""
    cfg = config_load(config)
    engine = Engine(cfg.hall)
    ledger = Ledger(path, hall_id=cfg.hall.id)
    now = datetime.now(cfg.hall.zone) - timedelta(seconds=tickets // 100 + 60)
    batch: list[Event] = []
    for i in range(tickets):
        decision = engine.handle(IssueTicket(f"b{i % 50 + 1}", f"pre{i}", "ABCD"[i % 4], i % 7 == 0, None,
                                             uuid.uuid4().hex), now=now + timedelta(milliseconds=10 * i))
        batch.extend(decision.events)
        if len(batch) >= 5000:
            ledger.append(batch)
            batch.clear()
    ledger.append(batch)
    ledger.close()
    return engine
