"""deploy/hallq-kiosk: it starts the browser only once the board page answers, with a bounded wait.

The page is served by a real HTTP server on loopback and polled with the real curl. Only the two programs the
launcher hands over to are stand-ins: ``cage`` records its arguments and XDG_RUNTIME_DIR and exits, and
``chromium`` only has to exist (cage would start it).
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from tests.support import ROOT

LAUNCHER = ROOT / "deploy" / "hallq-kiosk"
RECORD_ARGS = """#!/bin/sh
printf '%s\\n' "$XDG_RUNTIME_DIR" "$@" > "$HALLQ_TEST_RECORD"
"""


class _Page(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Unavailable(_Page):
    status = 503


@contextmanager
def _reserved_port() -> Iterator[socket.socket]:
    """A loopback port that is bound but not listening: connections to it are refused until ``listen()``."""
    reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reserved.bind(("127.0.0.1", 0))
    try:
        yield reserved
    finally:
        reserved.close()


@contextmanager
def _serving(reserved: socket.socket, handler: type[BaseHTTPRequestHandler]) -> Iterator[None]:
    """Start answering HTTP on the reserved port."""
    server = HTTPServer(reserved.getsockname(), handler, bind_and_activate=False)
    server.socket.close()
    server.socket = reserved
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join()


def _launch(tmp_path: Path, port: int, *, wait_s: int) -> subprocess.Popen[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("cage", RECORD_ARGS), ("chromium", "#!/bin/sh\nexit 0\n")):
        (bin_dir / name).write_text(text, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    (tmp_path / "run").mkdir(exist_ok=True)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HALLQ_KIOSK_URL": f"http://127.0.0.1:{port}/",
           "HALLQ_KIOSK_WAIT_S": str(wait_s), "CACHE_DIRECTORY": str(tmp_path / "cache"),
           "RUNTIME_DIRECTORY": str(tmp_path / "run"), "XDG_RUNTIME_DIR": "/run/user/990",
           "HALLQ_TEST_RECORD": str(tmp_path / "cage.args")}
    return subprocess.Popen([str(LAUNCHER)], env=env, stderr=subprocess.PIPE, text=True)


def _cage_args(tmp_path: Path) -> list[str]:
    return (tmp_path / "cage.args").read_text(encoding="utf-8").splitlines()


def test_browser_starts_on_the_page_at_once_when_it_answers(tmp_path: Path) -> None:
    with _reserved_port() as reserved, _serving(reserved, _Page):
        port = reserved.getsockname()[1]
        launcher = _launch(tmp_path, port, wait_s=5)
        _, stderr = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, stderr
    assert "waiting" not in stderr
    _, *args = _cage_args(tmp_path)
    assert args[:3] == ["-s", "--", "chromium"] and args[-1] == f"http://127.0.0.1:{port}/"


def test_wayland_socket_goes_in_the_units_runtime_directory_not_run_user(tmp_path: Path) -> None:
    with _reserved_port() as reserved, _serving(reserved, _Page):
        launcher = _launch(tmp_path, reserved.getsockname()[1], wait_s=5)
        launcher.communicate(timeout=30)
    assert _cage_args(tmp_path)[0] == str(tmp_path / "run")


def test_browser_waits_for_a_page_that_answers_late(tmp_path: Path) -> None:
    with _reserved_port() as reserved:
        port = reserved.getsockname()[1]
        launcher = _launch(tmp_path, port, wait_s=60)
        assert launcher.stderr is not None
        first = launcher.stderr.readline()
        assert first == f"hallq-kiosk: waiting up to 60 s for http://127.0.0.1:{port}/ to answer\n"
        assert not (tmp_path / "cage.args").exists()
        with _serving(reserved, _Page):
            _, rest = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, rest
    assert "answers" in rest and _cage_args(tmp_path)[-1] == f"http://127.0.0.1:{port}/"


def test_page_that_never_answers_ends_the_wait_with_status_1_and_no_browser(tmp_path: Path) -> None:
    with _reserved_port() as reserved:
        launcher = _launch(tmp_path, reserved.getsockname()[1], wait_s=1)
        _, stderr = launcher.communicate(timeout=30)
    assert launcher.returncode == 1
    assert "did not answer within 1 s" in stderr
    assert not (tmp_path / "cage.args").exists()


def test_an_error_status_is_not_an_answer(tmp_path: Path) -> None:
    with _reserved_port() as reserved, _serving(reserved, _Unavailable):
        launcher = _launch(tmp_path, reserved.getsockname()[1], wait_s=0)
        _, stderr = launcher.communicate(timeout=30)
    assert launcher.returncode == 1 and "did not answer within 0 s" in stderr
    assert not (tmp_path / "cage.args").exists()


def test_a_wait_that_is_not_a_number_is_refused() -> None:
    done = subprocess.run([str(LAUNCHER)], env={"PATH": "/usr/bin:/bin", "HALLQ_KIOSK_WAIT_S": "1m"},
                          capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 1 and "HALLQ_KIOSK_WAIT_S must be a whole number" in done.stderr
