"""A hall's own certificate authority and the broker's TLS certificate, made with the ``openssl`` command.

    python -m hall_controller certs [--out /etc/hallq/broker/tls] [--hall NAME] [--name HOST_OR_IP]... [--renew]

Theory of operation: a hall is a closed network with no public name, so it has its own small CA. ``ca.key``
(mode 0600, root only) signs ``server.crt`` for the broker's TLS listener; ``ca.crt`` is public and goes to
every device (``[mqtt] tls = true``, ``ca_file = "/etc/hallq/ca.crt"``). Clients check that the name they
dial is in the server certificate's subjectAltName, so ``--name`` lists every name and address devices use
(by default the machine's host name, ``HOST.local``, ``localhost`` and ``127.0.0.1``).

Running it again keeps the CA (devices trust it) and the server certificate, unless the requested names
changed, the certificate expires within ``RENEW_BEFORE_DAYS`` or ``--renew`` is given; then only the server
certificate is re-issued, and devices keep working without a new ``ca.crt``.

Keys are EC P-256. The certificates carry the extensions strict verifiers require (basicConstraints,
keyUsage, subject/authority key identifiers, extendedKeyUsage serverAuth) so Python 3.13's
VERIFY_X509_STRICT accepts them as well.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hall_controller.provision import broker_group
from hallq import logsetup
from hallq.errors import EXIT_SOFTWARE, HallqError

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("/etc/hallq/broker/tls")
CA_DAYS = 7300
SERVER_DAYS = 1825
RENEW_BEFORE_DAYS = 60


class CertError(HallqError, RuntimeError):
    """openssl failed or is missing."""


@dataclass(frozen=True, slots=True)
class CertResult:
    ca_created: bool
    server_issued: bool
    names: tuple[str, ...]


def default_names() -> list[str]:
    """The names a device on the hall's network is likely to dial: host name, mDNS name, loopback."""
    host = socket.gethostname()
    return [host, f"{host}.local", "localhost", "127.0.0.1"]


def san_entries(names: Sequence[str]) -> list[str]:
    """``["DNS:broker.local", "IP:192.168.1.10"]``: addresses as IP entries, everything else as DNS entries."""
    entries = []
    for name in dict.fromkeys(names):
        try:
            entries.append(f"IP:{ipaddress.ip_address(name)}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return entries


def _openssl(*args: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise CertError("the openssl command is not installed (Debian: apt-get install openssl)") from None
    if done.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def current_names(cert: Path) -> set[str]:
    """The subjectAltName entries of a certificate, as ``DNS:x`` / ``IP:y`` strings."""
    text = _openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName")
    entries: set[str] = set()
    for line in text.splitlines()[1:]:
        for item in line.split(","):
            kind, _, value = item.strip().partition(":")
            if value and kind == "IP Address":
                entries.add(f"IP:{ipaddress.ip_address(value)}")  # openssl spells IPv6 out in full
            elif value:
                entries.add(f"{kind}:{value}")
    return entries


def expires_within(cert: Path, days: int) -> bool:
    done = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-checkend", str(days * 86400)],
                          capture_output=True, check=False)
    return done.returncode != 0


def make_ca(out: Path, *, hall: str) -> None:
    key, crt = out / "ca.key", out / "ca.crt"
    _new_key(key)
    _openssl("req", "-x509", "-new", "-key", str(key), "-sha256", "-days", str(CA_DAYS),
             "-subj", f"/O=hallq/CN=hallq {hall} CA",
             "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash",
             "-out", str(crt))
    crt.chmod(0o644)


def issue_server(out: Path, *, names: Sequence[str], group: int | None) -> None:
    key, crt = out / "server.key", out / "server.crt"
    _new_key(key)
    if group is not None:
        os.chown(key, -1, group)
        key.chmod(0o640)  # the broker (group mosquitto) reads it; nobody else
    extensions = "\n".join([
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid,issuer",
        f"subjectAltName={','.join(san_entries(names))}",
    ]) + "\n"
    with tempfile.TemporaryDirectory() as scratch:
        csr, ext = Path(scratch) / "server.csr", Path(scratch) / "server.ext"
        ext.write_text(extensions, encoding="utf-8")
        _openssl("req", "-new", "-key", str(key), "-subj", f"/O=hallq/CN={names[0]}", "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(out / "ca.crt"), "-CAkey", str(out / "ca.key"),
                 "-set_serial", str(int.from_bytes(os.urandom(16), "big") >> 1), "-days", str(SERVER_DAYS),
                 "-sha256", "-extfile", str(ext), "-out", str(crt))
    crt.chmod(0o644)


def _new_key(path: Path) -> None:
    # Created 0600 before openssl writes into it: the key is never readable by others, not even briefly.
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))


def ensure_certs(out: Path, *, hall: str, names: Sequence[str], renew: bool = False,
                 group_name: str = "mosquitto") -> CertResult:
    """Create the CA if missing and (re-)issue the server certificate when needed; see the module doc."""
    if not names:
        raise CertError("at least one --name is needed")
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o755)
    ca_created = not (out / "ca.crt").exists() or not (out / "ca.key").exists()
    if ca_created:
        make_ca(out, hall=hall)
        log.info("created the hall's CA cert=%s", out / "ca.crt")
    crt = out / "server.crt"
    reason = ("forced" if renew else "new CA" if ca_created else "missing" if not crt.exists()
              or not (out / "server.key").exists() else "names changed" if current_names(crt) != set(san_entries(names))
              else f"expires within {RENEW_BEFORE_DAYS} days" if expires_within(crt, RENEW_BEFORE_DAYS) else "")
    if reason:
        issue_server(out, names=names, group=broker_group(group_name))
        log.info("issued the broker's certificate reason=%s names=%s; restart the broker to use it",
                 reason, ",".join(names))
    else:
        log.info("the broker's certificate is current names=%s", ",".join(names))
    return CertResult(ca_created=ca_created, server_issued=bool(reason), names=tuple(names))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hall_controller certs",
                                     description="make the hall's CA and the broker's TLS certificate")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"directory of the files (default {DEFAULT_OUT})")
    parser.add_argument("--hall", default="hall", help="the hall's name in the CA's subject")
    parser.add_argument("--name", action="append", default=[], metavar="HOST_OR_IP",
                        help="a name or address devices dial (repeatable; default: this host's names and loopback)")
    parser.add_argument("--renew", action="store_true", help="issue a new server certificate even if current")
    parser.add_argument("--group", default="mosquitto", help="group that may read server.key (default mosquitto)")
    return parser


def main(argv: Sequence[str]) -> int:
    """``certs`` subcommand; exit 0, or 70 when openssl fails."""
    args = _parser().parse_args(argv)
    logsetup.setup("INFO")
    try:
        ensure_certs(args.out, hall=args.hall, names=args.name or default_names(), renew=args.renew,
                     group_name=args.group)
    except (CertError, OSError) as exc:
        log.error("cannot make certificates: %s", exc)
        return EXIT_SOFTWARE
    return 0
