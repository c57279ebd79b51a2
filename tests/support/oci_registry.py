"""A tiny OCI distribution registry double (plain HTTP on 127.0.0.1, a thread): just
enough of the API to resolve tags — ``HEAD``/``GET /v2/<name>/manifests/<tag>`` with
``Docker-Content-Digest`` — plus, when asked, Docker Hub's anonymous bearer-token flow
(``401`` + ``WWW-Authenticate: Bearer realm=...`` then ``GET /token``; ``realm`` points
the challenge elsewhere).

Server-side fetches refuse loopback addresses unless allowlisted: a test resolving tags
here names the registry (``OutboundGuard.allowing([registry.host])`` or
``Settings(outbound_allow=(registry.host,))``) as well as listing it as insecure."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    accept: str
    authorization: str


@dataclass
class Registry:
    port: int
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)
    require_token: bool = False
    digest_on_head: bool = True
    realm: str | None = None
    """The token service the 401 challenge names (default: this registry's /token)."""
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    seen: list[Seen] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def push(self, repository: str, tag: str) -> str:
        """Store a manifest for ``repository:tag``; returns its digest."""
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "tag": tag,
                "nonce": secrets.token_hex(4),
            }
        ).encode()
        self.manifests[(repository, tag)] = manifest
        return f"sha256:{hashlib.sha256(manifest).hexdigest()}"


@contextmanager
def oci_registry() -> Iterator[Registry]:
    state = Registry(0)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _handle(self, head: bool) -> None:
            parts = urlsplit(self.path)
            state.seen.append(
                Seen(
                    self.command,
                    self.path,
                    self.headers.get("accept", ""),
                    self.headers.get("authorization", ""),
                )
            )
            if parts.path == "/token":
                scope = parse_qs(parts.query).get("scope", [""])[0]
                body = json.dumps({"token": f"{state.token}|{scope}"}).encode()
                self._reply(200, body, {"content-type": "application/json"}, head)
                return
            if state.require_token:
                auth = self.headers.get("authorization", "")
                if not auth.startswith(f"Bearer {state.token}|repository:"):
                    realm = state.realm or f"http://127.0.0.1:{state.port}/token"
                    challenge = f'Bearer realm="{realm}",service="registry.test"'
                    self._reply(401, b"{}", {"www-authenticate": challenge}, head)
                    return
            name, sep, tag = parts.path.removeprefix("/v2/").rpartition("/manifests/")
            manifest = state.manifests.get((name, tag)) if sep else None
            if manifest is None:
                self._reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', {}, head)
                return
            headers = {"content-type": OCI_MANIFEST}
            if state.digest_on_head or not head:
                headers["docker-content-digest"] = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
            self._reply(200, manifest, headers, head)

        def do_GET(self) -> None:
            self._handle(head=False)

        def do_HEAD(self) -> None:
            self._handle(head=True)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
