"""The one way server code makes HTTP requests to addresses an operator or a remote server
chose (update URLs, container registries and their token services, later webhooks).

:meth:`OutboundGuard.stream` does, for the URL and again for every redirect:

1. **Parse** it strictly (``fleetd.domain.network_policy.parse_url``): http and https
   only; the host read the way the HTTP client reads it, so ``127.1``, ``2130706433`` or
   ``[::ffff:127.0.0.1]`` are seen as the loopback address they are.
2. **Resolve** a name (``getaddrinfo``, bounded by the connect timeout) and **check every
   address**: loopback, private, link-local, unique-local, multicast, unspecified,
   reserved... (``network_policy.internal_reason``) are refused unless
   ``FLEETD_OUTBOUND_ALLOW`` names them (``network_policy.refusal``). A name with any
   refused address is refused as a whole.
3. **Pin**: the request is made by a pyqwest (reqwest) transport built for this one hop,
   whose ``dns_overrides`` map the name to exactly the addresses checked, so the client
   never resolves it again (no DNS rebinding between check and connect) while the
   ``Host`` header, TLS SNI and certificate verification still use the name. Proxies from
   the environment (``HTTP_PROXY``...) are not used (a proxy would resolve the name
   itself); redirects are never followed by the client.
4. **Redirects** (301, 302, 303, 307, 308; at most ``max_redirects``) are followed here,
   each target going through 1-3 again; credentials (``Authorization``, ``Cookie``) are
   dropped when the origin changes. A redirect to another scheme (``gopher:``, ``file:``),
   from https down to plain http, or to a malformed URL is :class:`BadRedirect`.

**One refusal.** A destination that is not allowed, a name that does not resolve, a
refused or timed-out connection, a TLS failure, a broken or non-HTTP answer: all raise
:class:`Unreachable`, whose message is always :data:`REFUSED`, so that an operator
cannot tell an internal port that is open from one that is closed or one never tried.
What happened is logged (``fleetd.services.outbound``, WARNING), never returned.

**Bounds.** ``connect_timeout`` (resolving and connecting, per hop) and ``read_timeout``
(the longest wait for the next bytes); callers bound the whole exchange with
``asyncio.timeout`` and the body with :func:`read_limited` or their own cap. No content
decoding, no cookies, TLS verified against the system store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Literal
from urllib.parse import urljoin

import pyqwest

from fleetd.domain import network_policy
from fleetd.domain.network_policy import IPAddress, Target
from fleetd.settings import OutboundRule, parse_outbound_rule

log = logging.getLogger(__name__)

REFUSED = (
    "unreachable, or not an address this server may fetch from "
    "(an internal address must be listed in FLEETD_OUTBOUND_ALLOW)"
)
"""The text of every :class:`Unreachable`: the same for every cause, so it names every
remedy."""

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CREDENTIALS = ("authorization", "cookie", "proxy-authorization")
_UNUSED_PROXY = "http://no-proxy.invalid:9"
"""Never connected to: a proxy for the other scheme, there only so that reqwest ignores
proxy environment variables (an explicit proxy turns them off)."""

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    OSError,
    RuntimeError,  # pyqwest's "builder error" for a URL reqwest will not send
    pyqwest.ReadError,
    pyqwest.WriteError,
    pyqwest.RemoteProtocolError,
    pyqwest.TooManyRedirects,
)
"""What pyqwest raises when a request or its body fails."""


class OutboundError(Exception):
    """A guarded request was not made or did not complete."""


class Unreachable(OutboundError):
    """Not allowed, or no usable answer; always the same message (:data:`REFUSED`)."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


class BadUrl(OutboundError):
    """The URL given is not one the guard fetches (not http(s), malformed, ambiguous)."""


class BadRedirect(OutboundError):
    """The server redirected to a URL the guard will not follow, or too many times."""


class TooLarge(OutboundError):
    """A body was longer than the caller's limit."""


Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to (the system resolver, as any program would)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in found:
            found.append(address)
    return found


class Answer:
    """The response a guarded request ended with (after any redirects)."""

    def __init__(self, response: pyqwest.Response, target: Target) -> None:
        self._response = response
        self._target = target

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def headers(self) -> pyqwest.Headers:
        return self._response.headers

    @property
    def url(self) -> str:
        """The URL that answered (the last redirect's target)."""
        return self._target.url

    @property
    def content(self) -> AsyncIterator[bytes]:
        """The body in chunks; a failure while reading it is :class:`Unreachable`."""
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._response.content)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except NETWORK_ERRORS as exc:
                raise _unreachable(self._target, f"reading the body: {_describe(exc)}") from None
            yield bytes(chunk)


async def read_limited(answer: Answer, limit: int) -> bytes:
    """The whole body of ``answer``; :class:`TooLarge` past ``limit`` bytes."""
    body = bytearray()
    async for chunk in answer.content:
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"the answer is larger than {limit} bytes")
    return bytes(body)


@dataclass(frozen=True, slots=True)
class OutboundGuard:
    """How server-side requests may reach out: the operator's allowlist and the bounds.

    ``resolver`` and ``extra_ca_pem`` (certificates trusted besides the system store) exist
    for tests and special deployments; production code passes neither."""

    allow: tuple[OutboundRule, ...] = ()
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    max_redirects: int = MAX_REDIRECTS
    extra_ca_pem: bytes | None = None
    resolver: Resolver = resolve

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> OutboundGuard:
        """A guard with the default bounds allowing ``entries`` (``FLEETD_OUTBOUND_ALLOW``
        syntax, as in ``Settings.outbound_allow``; ConfigError when one is malformed)."""
        return cls(allow=tuple(parse_outbound_rule(entry) for entry in entries))

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> AsyncIterator[Answer]:
        """Send ``method url`` through the guard (module docstring) and yield the final
        answer, its body not yet read.

        Raises:
            Unreachable: not allowed, or no usable answer.
            BadUrl: ``url`` is not an http(s) URL the guard fetches.
            BadRedirect: a redirect the guard will not follow.
        """
        try:
            target = network_policy.parse_url(url)
        except network_policy.InvalidUrl as exc:
            raise BadUrl(str(exc)) from None
        sending = {k.lower(): v for k, v in (headers or {}).items()}
        redirects = 0
        while True:
            stack = AsyncExitStack()
            try:
                response = await self._send(stack, target, method, sending, content)
                status = response.status
                location = response.headers.get("location") if status in REDIRECTS else None
                if location is not None:
                    await _close(stack)
            except BaseException:
                await _close(stack)
                raise
            if location is None:
                break
            redirects += 1
            if redirects > self.max_redirects:
                raise BadRedirect(f"more than {self.max_redirects} redirects")
            following = _redirect_target(target, location)
            if target.scheme == "https" and following.scheme == "http":
                # Whoever is on the path could then answer for the server (a registry's
                # digest, say); the credentials rule below would not protect that.
                raise BadRedirect("redirected from https to plain http")
            if following.origin != target.origin:
                for name in _CREDENTIALS:
                    sending.pop(name, None)
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, content = "GET", None
                sending.pop("content-type", None)
                sending.pop("content-length", None)
            target = following
        try:
            yield Answer(response, target)
        finally:
            await _close(stack)

    async def _send(
        self,
        stack: AsyncExitStack,
        target: Target,
        method: str,
        headers: Mapping[str, str],
        content: bytes | None,
    ) -> pyqwest.Response:
        addresses = await self._pin(target)
        other: Literal["http", "https"] = "https" if target.scheme == "http" else "http"
        try:
            transport = pyqwest.HTTPTransport(
                tls_ca_cert=self.extra_ca_pem,
                tls_include_system_certs=True,
                proxy=pyqwest.Proxy(_UNUSED_PROXY, scheme=other),
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                pool_max_idle_per_host=0,
                enable_gzip=False,
                enable_brotli=False,
                enable_zstd=False,
                dns_overrides={target.host: addresses} if addresses else None,
                follow_redirects=False,
                enable_otel=False,
            )
            stack.push_async_callback(transport.aclose)
            client = pyqwest.Client(transport)
            return await stack.enter_async_context(
                client.stream(method, target.url, dict(headers), content)
            )
        except NETWORK_ERRORS as exc:
            raise _unreachable(target, _describe(exc)) from None

    async def _pin(self, target: Target) -> list[str]:
        """The addresses to connect to for ``target`` (none for an address literal: the
        client connects to it without resolving), each checked; Unreachable if not."""
        if target.ip is not None:
            reason = network_policy.refusal(self.allow, None, target.ip, target.port)
            if reason is not None:
                raise _unreachable(target, f"refused before connecting: {reason}")
            return []
        try:
            async with asyncio.timeout(self.connect_timeout):
                found = await self.resolver(target.host, target.port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise _unreachable(target, f"resolving {target.host}: {_describe(exc)}") from None
        if not found:
            raise _unreachable(target, f"{target.host} resolves to no address")
        pinned: list[str] = []
        for address in found:
            reason = network_policy.refusal(self.allow, target.host, address, target.port)
            if reason is not None:
                raise _unreachable(
                    target, f"refused before connecting: {target.host} resolves to {reason}"
                )
            text = str(network_policy.canonical(address))
            if text not in pinned:
                pinned.append(text)
        return pinned


def _redirect_target(current: Target, location: str) -> Target:
    try:
        return network_policy.parse_url(urljoin(current.url, location))
    except network_policy.UnsupportedScheme as exc:
        raise BadRedirect(f"redirected to a URL that is not http or https ({exc})") from None
    except (network_policy.InvalidUrl, ValueError) as exc:
        raise BadRedirect(f"redirected to a URL the server does not follow: {exc}") from None


async def _close(stack: AsyncExitStack) -> None:
    with contextlib.suppress(*NETWORK_ERRORS):
        await stack.aclose()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _unreachable(target: Target, detail: str) -> Unreachable:
    """The uniform refusal, with what really happened logged."""
    shown = f"{target.scheme}://{target.host}:{target.port}{target.path.partition('?')[0]}"
    log.warning("outbound request to %s: %s", shown, detail)
    return Unreachable()
