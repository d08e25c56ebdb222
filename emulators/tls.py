"""A test certificate authority (trustme) for the loopback emulators, so clients use real HTTPS."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TestTLS:
    __test__ = False  # not a pytest test class despite its name

    ca: trustme.CA
    ca_bundle: Path  # PEM file to hand to clients (REQUESTS_CA_BUNDLE, SSL_CERT_FILE, verify=)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(ctx)
        return ctx


def make_test_tls(directory: Path | None = None) -> TestTLS:
    ca = trustme.CA()
    folder = directory or Path(tempfile.mkdtemp(prefix="cipp-hardening-ca-"))
    bundle = folder / "test-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return TestTLS(ca, bundle)
