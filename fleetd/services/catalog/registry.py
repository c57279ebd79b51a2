"""Resolving a container image tag to its manifest digest (OCI distribution API).

``HEAD /v2/<repository>/manifests/<tag>`` with ``Accept`` listing the OCI and Docker
manifest and index media types; the digest is the ``Docker-Content-Digest`` header. When
a registry leaves the header out of HEAD answers, a GET of the manifest (at most
MAX_MANIFEST bytes) is hashed instead, and a header it does send must agree.

Registries that ask for a bearer token (``401`` with ``WWW-Authenticate: Bearer
realm=...,service=...``, Docker Hub among them) get the anonymous token flow with a
``repository:<name>:pull`` scope. Private registries needing credentials are not
supported: give ``container.digest`` instead (the server then asks no registry).

Registries are reached over https. ``Settings.insecure_registries``
(``FLEETD_INSECURE_REGISTRIES=host:port,...``) lists the registries reached over plain
http instead (a local or lab registry); nothing else ever is.

Errors: ``SourceRefused`` (the registry answered but has no such tag, or wants
credentials: FAILED_PRECONDITION) and ``SourceUnavailable`` (no answer, 5xx:
UNAVAILABLE), as for URL fetches.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Collection
from urllib.parse import urlencode

import pyqwest

from fleetd.domain.catalog.image_ref import DIGEST, DOCKER_HUB, ImageReference
from fleetd.services.catalog.fetch import (
    NETWORK_ERRORS,
    SourceError,
    SourceRefused,
    SourceUnavailable,
    http_transport,
)

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
MAX_MANIFEST = 4 << 20
MAX_TOKEN_RESPONSE = 64 << 10
TIMEOUT = 30.0
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def api_base(registry: str, insecure: Collection[str]) -> str:
    """``https://host[:port]`` of the registry's API (``http://`` when it is listed as
    insecure; Docker Hub's API host for ``docker.io``)."""
    host = "registry-1.docker.io" if registry == DOCKER_HUB else registry
    scheme = "http" if registry in insecure else "https"
    return f"{scheme}://{host}"


async def resolve_digest(reference: ImageReference, *, insecure: Collection[str] = ()) -> str:
    """The manifest digest (``sha256:<hex>``) ``reference``'s tag points at now.

    Raises:
        SourceRefused, SourceUnavailable: see the module docstring.
    """
    if reference.digest:
        return reference.digest
    url = (
        f"{api_base(reference.registry, insecure)}/v2/{reference.repository}"
        f"/manifests/{reference.tag}"
    )
    try:
        async with asyncio.timeout(TIMEOUT), http_transport() as client:
            return await _resolve(client, reference, url)
    except SourceError:
        raise
    except TimeoutError:
        raise SourceUnavailable(f"registry {reference.registry}: timed out") from None
    except NETWORK_ERRORS as exc:
        raise SourceUnavailable(
            f"registry {reference.registry}: {exc or type(exc).__name__}"
        ) from None


async def _resolve(client: pyqwest.Client, reference: ImageReference, url: str) -> str:
    headers = {"accept": MANIFEST_TYPES, "user-agent": "fleetd"}
    response = await client.head(url, headers)
    if response.status == 401:
        token = await _anonymous_token(client, reference, response.headers)
        headers["authorization"] = f"Bearer {token}"
        response = await client.head(url, headers)
    _check_status(reference, response.status)
    digest = response.headers.get("docker-content-digest")
    if digest is not None and DIGEST.match(digest):
        return digest
    # No (usable) digest header on HEAD: hash the manifest itself.
    async with client.stream("GET", url, headers) as full:
        _check_status(reference, full.status)
        body = bytearray()
        async for chunk in full.content:
            body += chunk
            if len(body) > MAX_MANIFEST:
                raise SourceRefused(f"{reference.name}: manifest larger than {MAX_MANIFEST} bytes")
        computed = f"sha256:{hashlib.sha256(body).hexdigest()}"
        stated = full.headers.get("docker-content-digest")
        if stated is not None and stated != computed:
            raise SourceRefused(
                f"{reference.name}:{reference.tag}: the registry states digest {stated} but "
                f"the manifest hashes to {computed}"
            )
        return computed


def _check_status(reference: ImageReference, status: int) -> None:
    where = f"{reference.name}:{reference.tag}"
    if status == 200:
        return
    if status == 404:
        raise SourceRefused(f"{where}: no such image or tag in the registry")
    if status in (401, 403):
        raise SourceRefused(
            f"{where}: the registry wants credentials, which fleetd does not hold; give "
            "container.digest (sha256:...) instead"
        )
    if status >= 500:
        raise SourceUnavailable(f"{where}: the registry answered HTTP {status}")
    raise SourceRefused(f"{where}: the registry answered HTTP {status}")


async def _anonymous_token(
    client: pyqwest.Client, reference: ImageReference, headers: pyqwest.Headers
) -> str:
    challenge = headers.get("www-authenticate", "")
    scheme, _, params_text = challenge.partition(" ")
    params = dict(_CHALLENGE_PARAM.findall(params_text))
    realm = params.get("realm", "")
    if scheme.lower() != "bearer" or not realm.startswith(("https://", "http://")):
        _check_status(reference, 401)
    query = {"scope": f"repository:{reference.repository}:pull"}
    if "service" in params:
        query["service"] = params["service"]
    separator = "&" if "?" in realm else "?"
    async with client.stream("GET", f"{realm}{separator}{urlencode(query)}") as response:
        if response.status != 200:
            _check_status(reference, 401)
        body = bytearray()
        async for chunk in response.content:
            body += chunk
            if len(body) > MAX_TOKEN_RESPONSE:
                raise SourceRefused(f"registry {reference.registry}: token response too large")
    try:
        data = json.loads(body)
        token = data.get("token") or data.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise SourceRefused(f"registry {reference.registry}: the token service sent no token")
    return token
