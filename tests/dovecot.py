"""A private Dovecot IMAP server for the bounce tests: Debian's ``dovecot-imapd`` started with a
config of its own in a temporary folder, on a free loopback port, one user with a password
file, mail in a Maildir there. Run as an ordinary user, every Dovecot process runs as that
user; run as root (CI), the login processes run as Debian's ``dovenull`` and the mail as
``nobody``, since Dovecot refuses to serve mail as root."""

from __future__ import annotations

import grp
import imaplib
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "bounces@northwind.example"
PASSWORD = "imap-test-password"


@dataclass(frozen=True)
class Imap:
    host: str
    port: int
    user: str
    password: str
    tls_port: int
    """IMAP over TLS (imaps), with the certificate in ``ca_file`` (self-signed for 127.0.0.1)."""
    ca_file: Path

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Put a message into the mailbox, as mail delivery would."""
        with self.connect() as imap:
            status, answer = imap.append(folder, None, None, raw)
            assert status == "OK", answer

    @contextmanager
    def connect(self) -> Iterator[imaplib.IMAP4]:
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            imap.login(self.user, self.password)
            yield imap
        finally:
            imap.logout()

    def flags(self) -> list[bytes]:
        """Each message's FLAGS answer, in UID order."""
        with self.connect() as imap:
            imap.select("INBOX")
            status, answer = imap.fetch("1:*", "(UID FLAGS)")
            assert status == "OK", answer
            return [a for a in answer if isinstance(a, bytes)]

    def clear_flags(self, flag: str) -> None:
        with self.connect() as imap:
            imap.select("INBOX")
            imap.store("1:*", "-FLAGS", f"({flag})")


def _free_ports() -> tuple[int, int]:
    """Two free loopback ports (held open together, so they differ)."""
    with socket.socket() as one, socket.socket() as two:
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        return int(one.getsockname()[1]), int(two.getsockname()[1])


def _accounts() -> tuple[str, str, str, int, int]:
    """(internal user, its group, login user, mail uid, mail gid) for this process."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        return me, group, me, os.geteuid(), os.getegid()
    nobody = pwd.getpwnam("nobody")
    return "dovecot", "dovecot", "dovenull", nobody.pw_uid, nobody.pw_gid


def config_text(folder: Path, port: int, tls_port: int) -> str:
    internal, group, login, uid, gid = _accounts()
    return f"""base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{folder}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={folder}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
"""


@contextmanager
def dovecot() -> Iterator[Imap]:
    """Dovecot serving IMAP on a free port until the block ends, in a folder of its own (not
    pytest's: run as root, its folders are closed to the users Dovecot's processes run as)."""
    with tempfile.TemporaryDirectory(prefix="digest-dovecot-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        with _serving(folder) as imap:
            yield imap


@contextmanager
def _serving(folder: Path) -> Iterator[Imap]:
    port, tls_port = _free_ports()
    _self_signed(folder)
    conf = folder / "dovecot.conf"
    conf.write_text(config_text(folder, port, tls_port))
    (folder / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    for name in ("run", "state", "mail", "home"):
        (folder / name).mkdir(exist_ok=True)
    _, _, _, uid, gid = _accounts()
    if os.geteuid() == 0:
        for name in ("mail", "home"):
            os.chown(folder / name, uid, gid)
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait_for_login(port, process, folder)
        yield Imap("127.0.0.1", port, USER, PASSWORD, tls_port, folder / "cert.pem")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _self_signed(folder: Path) -> None:
    """A key and a certificate for 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _wait_for_login(port: int, process: subprocess.Popen[bytes], folder: Path) -> None:
    deadline = time.monotonic() + 30  # only a failure waits this long
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (folder / "dovecot.log").read_text() if (folder / "dovecot.log").exists() else ""
            raise RuntimeError(f"dovecot stopped: {log[-2000:]}")
        try:
            imap = imaplib.IMAP4("127.0.0.1", port, timeout=5)
        except (OSError, imaplib.IMAP4.error):  # not listening yet, or its login not up
            time.sleep(0.05)
            continue
        imap.logout()
        return
    raise RuntimeError("dovecot did not answer in 30 s")
