"""The hall manager's web service as a child process, and its accounts: for the test suite and the live view's
latency benchmark (``bench/manager_live.py``). Not used by the manager itself.

``manager_toml`` writes a manager config for a private hall: plain HTTP on a loopback port (the only way the
manager serves without TLS), the hall config and the broker given, the users file and state in a directory of
the caller's. ``add_user`` creates an account through the real command line (``--password-stdin``), as an
installer's script would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.broker import PROJECT_ROOT, PrivateBroker, bound_to_parent
from testbed.children import ChildProcess

LISTENING_LOG = "manager listening on"


def manager_toml(path: Path, *, hall_config: Path, broker: PrivateBroker, port: int, state_dir: Path,
                 manager_id: str = "manager", offline_alarm_s: float = 120,
                 phones: Mapping[str, int | str] | None = None) -> Path:
    """Write a manager config at ``path`` for the hall ``hall_config`` (its ``[manager] id`` must be
    ``manager_id``) on ``127.0.0.1:port``; users in ``state_dir/users.json``; ``phones`` the ``[phones]`` keys
    (e.g. ``{"guest_listen": "127.0.0.1:8080", "max_connections": 600}``). Returns ``path``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    phones_table = "" if phones is None else "\n[phones]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in phones.items())
    path.write_text(
        "[manager]\n"
        f'id = "{manager_id}"\n'
        f'hall_config = "{hall_config}"\n'
        f'listen = "127.0.0.1:{port}"\n'
        f'users_file = "{state_dir / "users.json"}"\n'
        f'state_dir = "{state_dir}"\n'
        f"offline_alarm_s = {offline_alarm_s}\n"
        f"{phones_table}"
        "\n[mqtt]\n"
        f'broker = "{broker.address}"\n', encoding="utf-8")
    return path


def add_user(users_file: Path, name: str, *, password: str, role: str = "manager") -> None:
    """``hallq-manager users add NAME --role ROLE --users FILE --password-stdin``, the password on its standard
    input; AssertionError with its output if it refuses."""
    result = subprocess.run(
        bound_to_parent([sys.executable, "-m", "manager", "users", "add", name, "--role", role,
                         "--users", str(users_file), "--password-stdin"]),
        input=password + "\n", capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=30, check=False)
    if result.returncode != 0:
        raise AssertionError(f"users add {name} exited with {result.returncode}: {result.stderr.strip()}")


class ManagerProcess(ChildProcess):
    """``python -m manager run --config CONFIG`` on ``127.0.0.1:port`` (the config's ``listen`` is overridden),
    logging to ``log_path``. ``start()`` waits until this run logged that it listens and ``/healthz`` says it
    is healthy (HTTP up and the broker connected: what the service's ``READY=1`` means)."""

    def __init__(self, *, config: Path, port: int, log_path: Path) -> None:
        super().__init__(name="manager", module="manager",
                         args=["run", "--config", str(config), "--listen", f"127.0.0.1:{port}"], log_path=log_path)
        self.config = config
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 15.0) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout_s
        self.wait_for_log(LISTENING_LOG, timeout_s=timeout_s)
        while not self.healthy():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"manager exited with {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"manager not healthy within {timeout_s} s:\n{self.log_text()}")
            time.sleep(0.05)  # the polling interval: /healthz has no way to wait

    def healthy(self) -> bool:
        """Whether ``/healthz`` answers 200 with ``healthy`` (HTTP listening, broker connected)."""
        return bool(self.health().get("healthy"))

    def health(self) -> dict[str, Any]:
        """``/healthz``'s answer (``{}`` while it does not answer): ``healthy``, ``broker_connected``, ``phones``
        (status pages followed), ``guest_listening``..."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:  # noqa: S310 - our own URL
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503: not healthy, and says why
            try:
                answer = json.loads(exc.read())
            except (OSError, ValueError):
                return {}
        except (urllib.error.URLError, OSError, ValueError):
            return {}
        return answer if isinstance(answer, dict) else {}
