"""Serves a ``SimulatedRepository`` over real HTTP or HTTPS on 127.0.0.1 (a thread).

HTTPS uses a throwaway CA and a server certificate for 127.0.0.1, so a client that trusts
only that CA (the agent's fetcher with ``ca_file``) can be checked, and one that trusts
the wrong CA refused. With ``client_ca`` the server also requires a client certificate
issued by that CA (as fleetd's control API does of devices) and records the CN each
request presented (``RepositoryServer.clients``); ``make_client_identity`` issues one.
Every request path is recorded, so tests can assert what a client fetched. ``Endless``
overrides stream until the client hangs up.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.certs import FleetCA, make_fleet_ca
from tests.support.tuf_simulator import Endless, SimulatedRepository

PREFIX = "/repo/"


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """A CA (``ca_file`` is what clients trust) and the server's certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    ca: FleetCA | None = None
    """The CA itself, to issue client certificates with (``make_client_identity``)."""


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """A client certificate and its key, as PEM files (a device's ``device.pem``/``.key``)."""

    cert_file: Path
    key_file: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_client_identity(directory: Path, ca: FleetCA, name: str) -> ClientIdentity:
    """A client certificate for CN ``name`` signed by ``ca``, written to ``directory``
    as ``device.pem`` and ``device.key`` (replacing what is there, each atomically, as a
    renewal does)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    identity = ClientIdentity(directory / "device.pem", directory / "device.key")
    for path, data in (
        (identity.key_file, _key_pem(key)),
        (identity.cert_file, cert.public_bytes(serialization.Encoding.PEM)),
    ):
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(data)
        temporary.replace(path)
    return identity


def make_server_tls(directory: Path, ca: FleetCA | None = None) -> ServerTLS:
    """A CA and a certificate for ``127.0.0.1`` signed by it, as PEM files in ``directory``."""
    ca = ca if ca is not None else make_fleet_ca("tuf.test")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    tls = ServerTLS(directory / "ca.pem", directory / "server.pem", directory / "server.key", ca)
    tls.ca_file.write_bytes(ca.pem)
    tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key_file.write_bytes(_key_pem(key))
    return tls


@dataclass
class RepositoryServer:
    """A running server; URLs end with ``/``."""

    base_url: str
    requests: list[str] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    """The client certificate CN of each request ("" without one), with ``client_ca``."""

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}metadata/"

    @property
    def targets_url(self) -> str:
        return f"{self.base_url}targets/"

    def fetched(self, prefix: str) -> list[str]:
        """The recorded request paths (relative to the base) starting with ``prefix``."""
        return [r for r in self.requests if r.startswith(prefix)]


def _handler(repo: SimulatedRepository, server: RepositoryServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            relative = path[len(PREFIX) :] if path.startswith(PREFIX) else None
            server.requests.append(relative if relative is not None else path)
            server.clients.append(_peer_name(self.connection))
            body = repo.serve(relative) if relative is not None else None
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if isinstance(body, Endless):
                self.send_header("Connection", "close")
                self.end_headers()
                with contextlib.suppress(OSError):
                    while True:
                        self.wfile.write(body.chunk)
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def finish(self) -> None:
            # A client that hung up on an endless body: flushing the rest fails, as expected.
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the requests are recorded on the RepositoryServer."""

    return Handler


def _peer_name(connection: object) -> str:
    """The CN of the client certificate presented on ``connection`` ("" for none)."""
    if not isinstance(connection, ssl.SSLSocket):
        return ""
    der = connection.getpeercert(binary_form=True)
    if not der:
        return ""
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


@contextlib.contextmanager
def serve_repository(
    repo: SimulatedRepository, tls: ServerTLS | None = None, *, client_ca: Path | None = None
) -> Iterator[RepositoryServer]:
    """Serve ``repo`` under ``/repo/`` on a free port until the block ends; with
    ``client_ca`` (HTTPS only), only to clients presenting a certificate it issued."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    running = RepositoryServer(f"{scheme}://127.0.0.1:{httpd.server_address[1]}{PREFIX}")
    httpd.RequestHandlerClass = _handler(repo, running)
    thread = threading.Thread(target=httpd.serve_forever, name="tuf-repo-server", daemon=True)
    thread.start()
    try:
        yield running
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
