"""The verified client certificate, as Envoy forwards it in ``x-forwarded-client-cert``.

Only meaningful when the app runs under ``control_api.server`` (which makes Envoy strip any
client-sent copy of the header and set its own): ``FLEETD_TRUST_XFCC=1`` says so.
"""

from __future__ import annotations

import os
from urllib.parse import unquote

from control_api.server import TRUST_XFCC_ENV

MAX_HEADER = 32 * 1024


def trusted() -> bool:
    return os.environ.get(TRUST_XFCC_ENV) == "1"


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
