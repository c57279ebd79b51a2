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
http instead (a local or lab registry); nothing else ever is. Every request (the
manifest, the token service a challenge names, any redirect) goes through the outbound
guard (``fleetd.services.outbound``): a registry on an internal address must also be in
``FLEETD_OUTBOUND_ALLOW``.

Errors: ``SourceRefused`` (the registry answered but has no such tag, or wants
credentials, or redirected where the guard does not follow: FAILED_PRECONDITION) and
``SourceUnavailable`` (5xx; or no answer, or an address the guard refuses, always with
the same message: UNAVAILABLE), as for URL fetches.
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
from fleetd.services import outbound
from fleetd.services.catalog.fetch import (
    SourceError,
    SourceRefused,
    SourceUnavailable,
    unreachable,
)
from fleetd.services.outbound import OutboundGuard

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


async def resolve_digest(
    reference: ImageReference,
    *,
    insecure: Collection[str] = (),
    guard: OutboundGuard | None = None,
) -> str:
    """The manifest digest (``sha256:<hex>``) ``reference``'s tag points at now, asked
    through ``guard`` (default: no internal address allowed).

    Raises:
        SourceRefused, SourceUnavailable: see the module docstring.
    """
    if reference.digest:
        return reference.digest
    url = (
        f"{api_base(reference.registry, insecure)}/v2/{reference.repository}"
        f"/manifests/{reference.tag}"
    )
    where = f"registry {reference.registry}"
    try:
        async with asyncio.timeout(TIMEOUT):
            return await _resolve(guard or OutboundGuard(), reference, url)
    except SourceError:
        raise
    except (outbound.BadUrl, outbound.BadRedirect) as exc:
        raise SourceRefused(f"{where}: {exc}") from None
    except TimeoutError:
        outbound.log.warning("asking %s: no complete answer in %s s", where, TIMEOUT)
        raise unreachable(where) from None
    except outbound.Unreachable:
        raise unreachable(where) from None


async def _resolve(guard: OutboundGuard, reference: ImageReference, url: str) -> str:
    headers = {"accept": MANIFEST_TYPES, "user-agent": "fleetd"}
    async with guard.stream("HEAD", url, headers) as response:
        status, answer_headers = response.status, response.headers
    if status == 401:
        token = await _anonymous_token(guard, reference, answer_headers)
        headers["authorization"] = f"Bearer {token}"
        async with guard.stream("HEAD", url, headers) as response:
            status, answer_headers = response.status, response.headers
    _check_status(reference, status)
    digest = answer_headers.get("docker-content-digest")
    if digest is not None and DIGEST.match(digest):
        return digest
    # No (usable) digest header on HEAD: hash the manifest itself.
    async with guard.stream("GET", url, headers) as full:
        _check_status(reference, full.status)
        try:
            body = await outbound.read_limited(full, MAX_MANIFEST)
        except outbound.TooLarge:
            raise SourceRefused(
                f"{reference.name}: manifest larger than {MAX_MANIFEST} bytes"
            ) from None
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
    guard: OutboundGuard, reference: ImageReference, headers: pyqwest.Headers
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
    token_url = f"{realm}{separator}{urlencode(query)}"
    async with guard.stream("GET", token_url, {"user-agent": "fleetd"}) as response:
        if response.status != 200:
            _check_status(reference, 401)
        try:
            body = await outbound.read_limited(response, MAX_TOKEN_RESPONSE)
        except outbound.TooLarge:
            raise SourceRefused(
                f"registry {reference.registry}: token response too large"
            ) from None
    try:
        data = json.loads(body)
        token = data.get("token") or data.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise SourceRefused(f"registry {reference.registry}: the token service sent no token")
    return token
