"""A fresh Debian 12 machine with systemd as PID 1, for the live unit tests (``tests/test_live_units.py``).

The root file system is built once with ``mmdebstrap`` from Debian's packages and kept in
``/var/cache/hallq-test-rootfs/KEY`` (outside any checkout, so a fresh clone on the same machine reuses it), where
KEY is a hash of everything that goes into it. It is built in a temporary directory beside it and renamed into
place: an interrupted build never leaves a half root file system under a key.

Each boot runs on an overlay of that tree (the cached tree is never written) under ``systemd-nspawn --boot``:

- ``--register=no --keep-unit``: this host's PID 1 need not be systemd (no machined, no system bus);
- ``--system-call-filter=bpf``: without it the units' ``IPAddressDeny=`` is not enforced inside;
- ``--network-veth``: a network namespace of its own (the host may run its own Mosquitto on 127.0.0.1:1883),
  ``host0`` given a static address from here (no DHCP wait) and NATed by an nftables table of the host's;
- the host's CA certificates are in the tree (HTTPS to PyPI through a TLS-inspecting proxy), and pip is told to
  use the system's bundle;
- ``/var/cache/hallq-test-pip`` on the host is bound into the guest as root's pip cache, and its ``wheels``
  folder is pip's ``find-links`` there: ``keep_wheels()`` stores every wheel the installed hallq uses, so a later
  run takes them from the disk (pip's HTTP cache keeps nothing here: the proxy's answers carry no validators).

Commands run inside with ``nsenter -t LEADER -a`` and a clean environment; the guest is powered off with
SIGRTMIN+4 to its PID 1. Everything made on the host (the overlay mount, the veth, the nftables table,
``ip_forward``) is undone by ``Guest.close()``, also after a failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE = Path("/var/cache/hallq-test-rootfs")
PIP_CACHE = Path("/var/cache/hallq-test-pip")
RUNS = Path("/var/tmp/hallq-live")
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# A booting systemd with what the field notes needed, and every Debian package deploy/install.sh installs for
# the four roles (controller: mosquitto openssl; dispenser: fonts-dejavu-core; display: espeak-ng
# fonts-dejavu-core cage curl chromium; all: python3-venv python3-pip), so the installer's package step finds
# them installed instead of downloading ~200 MB on every run.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "udev", "iproute2", "ca-certificates", "python3", "procps",
    "python3-venv", "python3-pip", "mosquitto", "openssl", "fonts-dejavu-core", "espeak-ng", "cage", "curl",
    "chromium",
)
HOST_CAS = Path("/usr/local/share/ca-certificates")
PIP_CONF = "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
GUEST_WHEELS = "/root/.cache/pip/wheels"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RECIPE = 1  # bump when the build below changes in a way the key does not see


def _host_cas() -> list[Path]:
    return sorted(path for path in HOST_CAS.rglob("*.crt") if path.is_file()) if HOST_CAS.is_dir() else []


def rootfs_key() -> str:
    """A hash of what goes into the root file system: suite, mirrors, packages, the host's CAs, the recipe."""
    digest = hashlib.sha256(json.dumps([RECIPE, SUITE, MIRRORS, PACKAGES, PIP_CONF]).encode())
    for ca in _host_cas():
        digest.update(ca.name.encode() + b"\0" + ca.read_bytes())
    return digest.hexdigest()[:16]


def reachable(host: str, port: int, *, timeout_s: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def cached_rootfs() -> Path | None:
    path = CACHE / rootfs_key()
    return path if (path / "etc" / "os-release").exists() else None


def build_rootfs() -> tuple[Path, float]:
    """The cached root file system, built first if needed; and how long the build took (0 when cached)."""
    key = rootfs_key()
    final = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(".build-*"):  # an interrupted build's leftovers (.build-KEY-PID[.cas]): removed
        owner = re.search(r"-(\d+)(\.cas)?$", stale.name)
        if owner is None or not _pid_alive(int(owner.group(1))):
            shutil.rmtree(stale, ignore_errors=True)
    if (final / "etc" / "os-release").exists():
        return final, 0.0
    building = CACHE / f".build-{key}-{os.getpid()}"
    cas = building.with_name(building.name + ".cas")
    cas.mkdir(parents=True)
    for ca in _host_cas():
        shutil.copy2(ca, cas / ca.name)
    (cas / "pip.conf").write_text(PIP_CONF, encoding="utf-8")
    hook = (f'cp {cas}/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true; '
            f'cp {cas}/pip.conf "$1/etc/pip.conf"; chroot "$1" update-ca-certificates >/dev/null')
    started = time.monotonic()
    try:
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                        f"--customize-hook={hook}", SUITE, str(building), *MIRRORS],
                       check=True, capture_output=True, text=True, timeout=1800)
        building.rename(final)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"mmdebstrap failed ({exc.returncode}): {exc.stderr[-2000:]}") from exc
    finally:
        shutil.rmtree(cas, ignore_errors=True)
        shutil.rmtree(building, ignore_errors=True)
    for other in CACHE.iterdir():  # one root file system is kept: the newest
        if other.name != key and not other.name.startswith("."):
            shutil.rmtree(other, ignore_errors=True)
    return final, time.monotonic() - started


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Done:
    """One command's outcome inside the guest."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


class Guest:
    """A booted guest. ``run()`` a shell command inside; ``path()`` a guest path seen from the host."""

    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        self.number = os.getpid() % 200 + 20
        self.name = f"hqlive{os.getpid() % 10000:04d}"
        self.veth = f"ve-{self.name}"
        self.host_address = f"10.213.{self.number}.1"
        self.guest_address = f"10.213.{self.number}.2"
        self.dir = RUNS / self.name
        self.merged = self.dir / "merged"
        self.nft_table = f"hallq_live_{self.name}"
        self.process: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self._mounted = False
        self._forward_before: str | None = None
        self.boot_s = 0.0

    # --- life cycle ------------------------------------------------------------------------------------------

    def boot(self, *, timeout_s: float = 60.0) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        for sub in ("upper", "work", "merged"):
            (self.dir / sub).mkdir(parents=True)
        (PIP_CACHE / "wheels").mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.rootfs},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}",
                        str(self.merged)], check=True, capture_output=True)
        self._mounted = True
        self.path("/etc/pip.conf").write_text(f"{PIP_CONF}find-links = {GUEST_WHEELS}\n", encoding="utf-8")
        started = time.monotonic()
        with (self.dir / "console.log").open("wb") as console:
            self.process = subprocess.Popen(
                ["systemd-nspawn", "--boot", "--quiet", "--register=no", "--keep-unit", "--system-call-filter=bpf",
                 "--network-veth", f"--machine={self.name}", f"--directory={self.merged}", "--console=pipe",
                 "--resolv-conf=copy-host", f"--bind={PIP_CACHE}:/root/.cache/pip"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self.leader:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the guest did not start: {self.console_tail()}")
            self.leader = self._find_leader(self.process.pid)
            time.sleep(0.05)  # the polling interval: /proc has no event for a new process
        self._network()
        while True:
            state = self.run("systemctl is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the guest did not finish booting ({state}): {self.console_tail()}")
            time.sleep(0.1)  # the polling interval of the boot state
        self.boot_s = time.monotonic() - started

    @staticmethod
    def _find_leader(nspawn_pid: int) -> int:
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
                if int(fields.get("PPid", "0")) == nspawn_pid and fields.get("NSpid", "").split()[-1:] == ["1"]:
                    return int(status.parent.name)
        return 0

    def _network(self) -> None:
        def host(*argv: str) -> None:
            subprocess.run(argv, check=True, capture_output=True, text=True)

        host("ip", "address", "add", f"{self.host_address}/30", "dev", self.veth)
        host("ip", "link", "set", self.veth, "up")
        host("nsenter", "-t", str(self.leader), "-n", "sh", "-c",
             f"ip address add {self.guest_address}/30 dev host0 && ip link set host0 up"
             f" && ip route add default via {self.host_address}")
        forward = Path("/proc/sys/net/ipv4/ip_forward")
        self._forward_before = forward.read_text().strip()
        forward.write_text("1\n")
        host("nft", "add", "table", "ip", self.nft_table)
        host("nft", f"add chain ip {self.nft_table} post {{ type nat hook postrouting priority srcnat; }}")
        host("nft", f"add rule ip {self.nft_table} post ip saddr {self.guest_address} oifname != {self.veth} "
             "masquerade")

    def close(self) -> None:
        """Power the guest off and undo everything made on the host; safe after any failure."""
        if self.process is not None and self.process.poll() is None:
            if self.leader:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.leader, signal.SIGRTMIN + 4)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        subprocess.run(["nft", "delete", "table", "ip", self.nft_table], capture_output=True, check=False)
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
        if self._forward_before is not None and "hallq_live_" not in tables:  # no other live run still routing
            Path("/proc/sys/net/ipv4/ip_forward").write_text(self._forward_before + "\n")
        if Path(f"/sys/class/net/{self.veth}").exists():
            subprocess.run(["ip", "link", "delete", self.veth], capture_output=True, check=False)
        if self._mounted:
            done = subprocess.run(["umount", str(self.merged)], capture_output=True, check=False)
            if done.returncode != 0:
                subprocess.run(["umount", "--lazy", str(self.merged)], capture_output=True, check=False)
            self._mounted = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def console_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.dir / "console.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    # --- inside ----------------------------------------------------------------------------------------------

    def path(self, guest_path: str) -> Path:
        return self.merged / guest_path.lstrip("/")

    def run(self, command: str, *, check: bool = True, timeout_s: float = 300, stdin: str = "") -> Done:
        """``sh -c COMMAND`` as root inside the guest, in its namespaces, with a clean environment."""
        started = time.monotonic()
        done = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "env", "-i", f"PATH={GUEST_PATH}", "HOME=/root",
             "LANG=C.UTF-8", "sh", "-c", command],
            input=stdin, capture_output=True, text=True, check=False, timeout=timeout_s)
        result = Done(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        if check and done.returncode != 0:
            raise AssertionError(f"in the guest: {command}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}")
        return result

    def keep_wheels(self, venv: str) -> Done:
        """Store in the wheel cache every package of ``venv`` (but hallq itself) and what builds hallq's wheel
        (pyproject.toml's build requirements), each unless it is there already."""
        return self.run(f"{{ {venv}/bin/pip freeze --all --exclude hallq --exclude setuptools; echo 'setuptools>=77'; }}"
                        f" | {venv}/bin/pip download -q --no-deps -d {GUEST_WHEELS} -r /dev/stdin", timeout_s=300)

    def write(self, guest_path: str, text: str) -> None:
        """Write a file from inside the guest: also where the guest mounted its own file systems (/run)."""
        self.run(f"mkdir -p \"$(dirname '{guest_path}')\" && cat > '{guest_path}'", stdin=text)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.run(f"systemctl show {unit} -p {','.join(properties)}").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str, *, since_cursor: str | None = None) -> str:
        after = f" --after-cursor='{since_cursor}'" if since_cursor else ""
        return self.run(f"journalctl -u {unit} -o cat --no-pager{after}").stdout

    def cursor(self) -> str:
        out = self.run("journalctl -n 0 --show-cursor --no-pager").stdout
        return out.strip().rsplit("cursor: ", 1)[-1]

    def copy_tree(self, source: Path, files: Sequence[str], guest_dir: str) -> None:
        """Copy ``files`` (paths relative to ``source``) into ``guest_dir``, keeping their modes."""
        target = self.path(guest_dir)
        for name in files:
            src = source / name
            if not src.is_file():
                continue
            dst = target / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


@contextlib.contextmanager
def booted(rootfs: Path) -> Iterator[Guest]:
    guest = Guest(rootfs)
    try:
        guest.boot()
        yield guest
    finally:
        guest.close()
