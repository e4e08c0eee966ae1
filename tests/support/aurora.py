"""The strict Aurora Serverless v2 stand-in (localdev.aurora) as the tests run it: TLS with a
test CA, IAM database authentication checked against the tests' AWS keys, in front of the test
database, and the settings the functions need to reach it that way."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from localdev.aurora import AuroraServerlessStandIn, IamAuth
from localdev.rdsproxy import upstream_for
from tests.support.environment import TEST_APP_PASSWORD, TEST_APP_ROLE, TEST_DATABASE
from tests.support.tls_postgres import CertificateAuthority

# The AWS keys the test session's functions sign tokens with (tests/conftest.py `environment`).
TEST_ACCESS_KEYS = {"testing": "testing"}
HOST = "localhost"  # the name clients verify the certificate for and sign tokens for


@dataclass
class RunningAurora:
    stand_in: AuroraServerlessStandIn
    ca_file: str

    def settings(self, connect_timeout: float) -> dict[str, str]:
        """The functions' environment: IAM auth over verified TLS, through the stand-in."""
        url = f"postgresql://{TEST_APP_ROLE}@{HOST}:{self.stand_in.port}/{TEST_DATABASE}"
        return {
            "DATABASE_URL": url,
            "DB_IAM_AUTH": "true",
            "DB_SSL_MODE": "verify-full",
            "DB_SSL_ROOT_CERT": self.ca_file,
            "DB_CONNECT_TIMEOUT_SECONDS": str(connect_timeout),
            "DB_CONNECT_RETRY_AFTER_SECONDS": "15",  # as the starter profile sets it
        }


@contextmanager
def running_aurora(
    database_url: str, *, pause_after: float, resume_seconds: float
) -> Iterator[RunningAurora]:
    authority = CertificateAuthority.create("Taskline Aurora Test CA")
    key, certificate = authority.issue_server_certificate(HOST)
    with tempfile.TemporaryDirectory(prefix="aurora-") as folder:
        directory = Path(folder)
        (directory / "ca.pem").write_bytes(authority.pem())
        (directory / "server.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        (directory / "server.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(directory / "server.pem", directory / "server.key")
        stand_in = AuroraServerlessStandIn(
            upstream_for(database_url),
            pause_after=pause_after,
            resume_seconds=resume_seconds,
            tls_context=context,
            iam=IamAuth(HOST, TEST_ACCESS_KEYS),
            upstream_password=TEST_APP_PASSWORD,
        )
        try:
            yield RunningAurora(stand_in, str(directory / "ca.pem"))
        finally:
            stand_in.stop()
