"""Run a private Mosquitto on a free loopback port, from one of the project's own broker configs.

For the simulated hall and the test suite only (production runs Debian's mosquitto from systemd with
``config/mosquitto/hallq.conf``). The config file is copied with three changes: the listener gets the
chosen port on 127.0.0.1, persistence goes to this instance's own directory, and the broker runs as the
current user (started as root, Mosquitto would otherwise drop to user ``mosquitto`` and lose access).
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from hallq.errors import HallqError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_CONFIG = PROJECT_ROOT / "config" / "mosquitto" / "hallq-local.conf"
PRODUCTION_CONFIG = PROJECT_ROOT / "config" / "mosquitto" / "hallq.conf"
# Options that belong to the listener line above them (see the comment in hallq.conf).
_LISTENER_OPTIONS = {"use_username_as_clientid", "cafile", "capath", "certfile", "keyfile", "tls_version",
                     "max_connections"}


class BrokerError(HallqError, RuntimeError):
    """The private broker could not be started."""


def bound_to_parent(command: list[str]) -> list[str]:
    """``command`` wrapped so that the kernel sends it SIGTERM when the process that started it dies.

    For helper processes (the private broker, simulated devices, the controller under test): an interrupted
    test run or simulation leaves nothing behind. ``setpriv`` (util-linux) sets the parent-death signal and
    execs the command; where it is missing the command runs unwrapped.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


def end_process(proc: subprocess.Popen[bytes], *, grace_s: float = 5.0) -> int:
    """SIGTERM, then SIGKILL if it has not ended after ``grace_s``; its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


class PrivateBroker:
    """A Mosquitto process on ``127.0.0.1:port`` with its own data directory under ``workdir``.

    ``stop()`` then ``start()`` restarts it on the same port with the same persistence, as a broker restart
    in a hall would. Use as a context manager to be sure the process ends.
    """

    def __init__(self, workdir: Path, *, config: Path = LOCAL_CONFIG, port: int | None = None,
                 extra_lines: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.config_template = config
        self.port = port or free_port()
        self.extra_lines = extra_lines
        self.log_path = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        replacements = {"listener": f"listener {self.port} 127.0.0.1",
                        "persistence_location": f"persistence_location {data_dir}/"}
        for original in self.config_template.read_text(encoding="utf-8").splitlines():
            word = original.split()[0] if original.split() else ""
            if word in ("pid_file", "user"):
                continue
            lines.append(replacements.get(word, original))
        lines.append(f"user {getpass.getuser()}")
        lines.extend(self.extra_lines)
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def start(self, *, timeout_s: float = 5.0) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        conf = self._write_config()
        log_file = self.log_path.open("ab")
        # A session of its own: Ctrl-C at the terminal reaches only the parent, which stops the broker last.
        self._proc = subprocess.Popen(bound_to_parent([exe, "-c", str(conf)]), stdout=log_file,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self._proc.returncode}; see {self.log_path}")
            if port_open(self.port):
                log.info("private broker listening on %s (pid %s)", self.address, self._proc.pid)
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.address} within {timeout_s} s")

    def stop(self) -> None:
        if self._proc is None:
            return
        end_process(self._proc)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (for measuring it)."""
        return self._proc.pid if self.running and self._proc is not None else None

    def __enter__(self) -> PrivateBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def production_config(path: Path, *, out: Path, tls_dir: Path, tls_port: int,
                      quiet: bool = False) -> tuple[Path, tuple[str, ...]]:
    """``hallq.conf`` for a ``PrivateBroker``, written to ``path``: its files pointed at ``out`` (passwd, acl)
    and ``tls_dir``, logging to stderr (``quiet``: no debug lines, one per packet), and its TLS listener split
    off on ``tls_port`` as the extra lines returned (PrivateBroker gives the first listener its own port)."""
    files = {"password_file": out / "passwd", "acl_file": out / "acl", "cafile": tls_dir / "ca.crt",
             "certfile": tls_dir / "server.crt", "keyfile": tls_dir / "server.key"}
    main: list[str] = []
    tls_block: list[str] = []
    in_tls = False
    for original in PRODUCTION_CONFIG.read_text(encoding="utf-8").splitlines():
        line = original
        words = line.split()
        word = words[0] if words else ""
        if word == "listener":
            in_tls = words[1] == "8883"
        elif word and not word.startswith("#") and word not in _LISTENER_OPTIONS:
            in_tls = False
        if word in files:
            line = f"{word} {files[word]}"
        elif word == "log_dest":
            line = "log_dest stderr"
        elif quiet and word == "log_type" and words[1] == "debug":
            line = "log_type notice"
        elif word == "listener" and in_tls:
            line = f"listener {tls_port} 127.0.0.1"
        (tls_block if in_tls else main).append(line)
    if not tls_block or not tls_block[0].startswith("listener"):
        raise HallqError(f"{PRODUCTION_CONFIG} has no TLS listener on 8883")
    path.write_text("\n".join(main) + "\n", encoding="utf-8")
    return path, tuple(tls_block)
