"""What the locked-down broker costs: round trips and connects with accounts, ACL and TLS, on loopback.

    .venv/bin/python -m bench.broker_security_bench [--round-trips 2000] [--connects 100]

Three brokers' paths, each measured the same way: a dispenser account publishes a QoS 1 request on its own
request topic, a responder with the controller's account answers on the dispenser's ticket topic, and the
dispenser waits for it (one at a time, TCP_NODELAY on both ends as ``hallq.mqtt`` does).

- ``open``: the simulated hall's broker (config/mosquitto/hallq-local.conf: anonymous, no ACL)
- ``acl``: the production config (config/mosquitto/hallq.conf) on its loopback listener: passwords and ACL
- ``tls``: the production config on its TLS listener, with the hall's CA

Also the time from TCP connect to CONNACK, plain vs TLS (a device's reconnect after a broker restart).
Prints a table and saves bench/results/broker_security.json.
"""

from __future__ import annotations

import argparse
import queue
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.common import bench_hall_toml, report, summary_ms
from hall_controller import config as config_mod
from hall_controller.provision import CREDENTIAL_SUFFIX, provision
from hall_controller.tls import ensure_certs
from hallq.topics import Topics
from testbed.broker import PrivateBroker, free_port, production_config


def _client(username: str | None, password: str | None, *, ca: Path | None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=username or f"bench-{time.monotonic_ns()}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    if username:
        client.username_pw_set(username, password)
    if ca is not None:
        client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    return client


def _connect(client: paho.Client, port: int, *, tls: bool) -> None:
    done: queue.Queue[bool] = queue.Queue()

    def on_connect(c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        sock = c.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done.put(not rc.is_failure)

    client.on_connect = on_connect
    client.connect("localhost" if tls else "127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not done.get(timeout=10):
        raise RuntimeError(f"connection refused on port {port}")


def round_trips(port: int, *, topics: Topics, creds: dict[str, str] | None, ca: Path | None, count: int) -> list[float]:
    """``count`` sequential request → answer round trips between a dispenser and a responder."""
    tls = ca is not None
    responder = _client("controller" if creds else None, creds["controller"] if creds else None, ca=ca)
    requester = _client("b1" if creds else None, creds["b1"] if creds else None, ca=ca)
    answers: queue.Queue[bytes] = queue.Queue()
    subscribed: queue.Queue[int] = queue.Queue()
    # A bench responder may publish from paho's callback: it does nothing else, so nothing stalls behind it.

    def answer(c: paho.Client, _u: Any, m: paho.MQTTMessage) -> None:
        c.publish(topics.dispenser_ticket("b1"), m.payload, qos=1)

    responder.on_message = answer
    responder.on_subscribe = lambda *_a: subscribed.put(1)
    requester.on_message = lambda _c, _u, m: answers.put(bytes(m.payload))
    requester.on_subscribe = lambda *_a: subscribed.put(1)
    _connect(responder, port, tls=tls)
    _connect(requester, port, tls=tls)
    responder.subscribe(topics.dispenser_request("b1"), qos=1)
    requester.subscribe(topics.dispenser_ticket("b1"), qos=1)
    subscribed.get(timeout=5)
    subscribed.get(timeout=5)
    samples = []
    for n in range(count + 50):
        payload = f'{{"v": 1, "n": {n}}}'.encode()
        started = time.perf_counter()
        requester.publish(topics.dispenser_request("b1"), payload, qos=1)
        while answers.get(timeout=5) != payload:
            pass
        if n >= 50:  # the first round trips warm up both ends
            samples.append(time.perf_counter() - started)
    for client in (requester, responder):
        client.disconnect()
        client.loop_stop()
    return samples


def connect_times(port: int, *, creds: dict[str, str], ca: Path | None, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        client = _client("b1", creds["b1"], ca=ca)
        started = time.perf_counter()
        _connect(client, port, tls=ca is not None)
        samples.append(time.perf_counter() - started)
        client.disconnect()
        client.loop_stop()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--connects", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        # The controller's config wants a non-empty dispenser name when the key is there or not.
        hall_text = bench_hall_toml(dispensers=1).replace('id = "b1"', 'id = "b1"\nname = "Bench kiosk"')
        (work / "hall.toml").write_text(hall_text, encoding="utf-8")
        cfg = config_mod.load(work / "hall.toml")
        topics = Topics(hall=cfg.hall.id, base=cfg.base_topic)
        out = work / "broker-files"
        provision(cfg, out=out, displays=[])
        ensure_certs(out / "tls", hall=cfg.hall.id, names=["localhost", "127.0.0.1"])
        creds = {u: (out / "credentials" / f"{u}{CREDENTIAL_SUFFIX}").read_text(encoding="utf-8").strip()
                 for u in ("controller", "b1")}
        tls_port = free_port()
        (work / "secure").mkdir()
        template, tls_block = production_config(work / "secure" / "hallq-bench.conf", out=out, tls_dir=out / "tls",
                                                tls_port=tls_port, quiet=True)
        results: dict[str, Any] = {}
        with PrivateBroker(work / "open") as open_broker:
            results["open"] = summary_ms(round_trips(open_broker.port, topics=topics, creds=None, ca=None,
                                                     count=args.round_trips))
        with PrivateBroker(work / "secure", config=template, extra_lines=tls_block) as secure:
            results["acl"] = summary_ms(round_trips(secure.port, topics=topics, creds=creds, ca=None,
                                                    count=args.round_trips))
            results["tls"] = summary_ms(round_trips(tls_port, topics=topics, creds=creds, ca=out / "tls" / "ca.crt",
                                                    count=args.round_trips))
            results["connect_plain"] = summary_ms(connect_times(secure.port, creds=creds, ca=None,
                                                                count=args.connects))
            results["connect_tls"] = summary_ms(connect_times(tls_port, creds=creds, ca=out / "tls" / "ca.crt",
                                                              count=args.connects))
    rows = [
        ("round trip, open broker (p50 / p99)", f"{results['open']['p50_ms']} / {results['open']['p99_ms']} ms",
         "reference", True),
        ("round trip, accounts + ACL (p50 / p99)", f"{results['acl']['p50_ms']} / {results['acl']['p99_ms']} ms",
         "p99 < 10 ms", results["acl"]["p99_ms"] < 10),
        ("round trip, TLS + accounts + ACL (p50 / p99)", f"{results['tls']['p50_ms']} / {results['tls']['p99_ms']} ms",
         "p99 < 10 ms", results["tls"]["p99_ms"] < 10),
        ("connect to CONNACK, plain (p50)", f"{results['connect_plain']['p50_ms']} ms", "< 50 ms",
         results["connect_plain"]["p50_ms"] < 50),
        ("connect to CONNACK, TLS (p50)", f"{results['connect_tls']['p50_ms']} ms", "< 100 ms",
         results["connect_tls"]["p50_ms"] < 100),
    ]
    report("broker_security", rows, results)
    return 0 if all(row[3] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
