"""The verified client certificate, as Envoy forwards it in ``x-forwarded-client-cert``.

Only meaningful when the app runs under ``control_api.server`` (which makes Envoy strip any
client-sent copy of the header and set its own): ``FLEETD_TRUST_XFCC=1`` says so.

Why a client cannot forge it: Envoy's HTTP connection manager runs with
``forward_client_cert_details: SANITIZE_SET`` (``control_api/server.py``), so on every
request it removes whatever ``x-forwarded-client-cert`` the client sent and, only when the
TLS handshake verified a client certificate against the fleet CA (an unverifiable one fails
the handshake), sets its own. The app listens only behind that Envoy (pyvoy runs it in
process), so no other path can put the header there. Outside that launcher (a test app, a
proxy fleetd does not configure) ``trusted()`` is false and the header is ignored.
Both the operator API (``control_api/auth.py``) and the TUF files
(``control_api/tuf_files.py``) read it through this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from urllib.parse import unquote

from control_api.server import TRUST_XFCC_ENV

MAX_HEADER = 32 * 1024
HEADER = "x-forwarded-client-cert"


def trusted() -> bool:
    return os.environ.get(TRUST_XFCC_ENV) == "1"


def from_headers(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The forwarded certificate among raw ASGI request headers, if trusted and present.

    More than one copy of the header is refused outright (Envoy sets exactly one)."""
    if not trusted():
        return None
    name = HEADER.encode()
    values = [value for key, value in headers if key.lower() == name]
    if len(values) != 1:
        return None
    return certificate_pem(values[0].decode("latin-1"))


def certificate_pem(header: str | None) -> bytes | None:
    """The PEM in the header's ``Cert`` field, or None when absent or unparseable.

    Envoy writes one element like ``Hash=..;Cert="<url-encoded PEM>";Subject="..";URI=..``.
    """
    if not header or len(header) > MAX_HEADER or "," in header.split("Cert=", 1)[0]:
        return None
    for field in _split(header):
        key, sep, value = field.partition("=")
        if sep and key.strip().lower() == "cert":
            pem = unquote(value.strip().strip('"'))
            if pem.startswith("-----BEGIN CERTIFICATE-----"):
                return pem.encode()
    return None


def _split(header: str) -> list[str]:
    """Split on ';' outside double quotes."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields
