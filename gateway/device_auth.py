"""Who is calling: the device identity from the verified peer certificate, and its standing.

The TLS handshake has already verified the chain against the fleet CA. Here the
certificate is parsed by core_ext (``core_ext.IdentityCache``, keyed by the certificate's
bytes: a cached lookup costs well under a microsecond; refusals are not cached), its fleet
checked, and its standing (issued by us, not revoked, device not offboarded) looked up in
PostgreSQL (batched per loop iteration), cached for ``standing_ttl`` — revocation is
checked on every call, against that standing, never by the identity cache. The control API
announces offboardings on Redis (``gateway.pushes``), which drops the cached standing at
once; the TTL bounds how long a revocation goes unseen if that notice is lost.

Each standing's TTL is jittered (+/- 20 %), and an expired standing is refreshed in the
background while the call that found it expired is answered from it (stale while
revalidate, for one refresh round trip): standings cached together (a warm-up, a
reconnect storm) would otherwise all expire in the same second, and every call of that
second would wait on PostgreSQL at once. While PostgreSQL is unreachable, a standing that
expired less than ``stale_grace`` ago keeps serving (fail static: devices seen recently
keep heartbeating through an outage); other certificates get ``StandingUnavailable``.
Nothing in a request body is ever used to identify a device. The standing also carries
the device's group (device type and version), turned into the heartbeat batcher's group
id once per lookup, so a heartbeat costs no string work for its rollup group.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import core_ext
from fleetd.storage.devices import CertificateStanding
from fleetd.storage.errors import STORE_DOWN, StoreUnavailable

StandingLookup = Callable[[str, str], Awaitable[CertificateStanding | None]]
GroupOf = Callable[[str, str], int]
"""``(device_type, version) -> group id`` (``HeartbeatPipeline.group_id``)."""

log = logging.getLogger(__name__)

TTL_JITTER = 0.2
"""Each cached standing lives ``standing_ttl`` +/- this fraction."""


class Refused(Exception):
    """The caller is not a device this gateway serves; the message says why."""


class StandingUnavailable(StoreUnavailable):
    """PostgreSQL could not be asked about a certificate not seen recently."""


@dataclass(frozen=True, slots=True)
class CallerDevice:
    device_id: str
    fleet: str
    serial: str
    offboarded: bool
    group: int
    """The heartbeat batcher's id for the device's (device_type, version)."""


class DeviceAuthenticator:
    """Turns a peer certificate into a ``CallerDevice`` or refuses it."""

    def __init__(
        self,
        fleet: str,
        lookup_standing: StandingLookup,
        group_of: GroupOf,
        *,
        standing_ttl: float = 300.0,
        stale_grace: float = 300.0,
        max_cached: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fleet = fleet
        self._lookup = lookup_standing
        self._group_of = group_of
        self._ttl = standing_ttl
        self._stale_grace = stale_grace
        self._max_cached = max_cached
        self._clock = clock
        self._identities = core_ext.IdentityCache(max_cached)
        # serial -> (expiry, standing, group id); the group changes when the device
        # re-registers as another type, seen here within standing_ttl.
        self._standing: dict[str, tuple[float, CertificateStanding | None, int]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def identity(self, pem: bytes) -> core_ext.DeviceIdentity:
        """The identity ``pem`` establishes, parsed once per distinct certificate."""
        try:
            return self._identities.get(pem)
        except core_ext.IdentityError as exc:
            raise Refused(f"client certificate refused: {exc}") from None

    @property
    def identity_cache(self) -> core_ext.IdentityCache:
        """The parsed-certificate cache (its counters are worth exporting as metrics)."""
        return self._identities

    async def authenticate(self, pem: bytes | None) -> CallerDevice:
        if not pem:
            raise Refused("no client certificate")
        identity = self.identity(pem)
        if identity.fleet != self._fleet:
            raise Refused(f"certificate belongs to fleet {identity.fleet!r}, not this one")
        now = self._clock()
        cached = self._standing.get(identity.serial)
        if cached is not None and cached[0] > now:
            _, standing, group = cached
        elif cached is not None and cached[0] + self._stale_grace > now:
            # Expired: answered from it while one background lookup refreshes it (and,
            # should PostgreSQL be down, keeps answering until the grace runs out).
            _, standing, group = cached
            if identity.serial not in self._refreshing:
                task = asyncio.create_task(self._refresh(identity.serial, identity.fingerprint))
                self._refreshing[identity.serial] = task
        else:
            try:
                standing = await self._lookup(identity.serial, identity.fingerprint)
            except STORE_DOWN as exc:  # anything else is a bug: INTERNAL (gateway.aborts)
                raise StandingUnavailable("certificate standing unavailable") from exc
            group = self._store(identity.serial, standing, now)
        if standing is None or standing.device_id != identity.device_id:
            raise Refused("certificate was not issued to a registered device")
        # Offboarding revokes the device's certificates: such a device is still
        # identified, so that it can be told it was offboarded (once; see the service).
        if standing.revoked and not standing.offboarded:
            raise Refused("certificate has been revoked")
        return CallerDevice(
            identity.device_id, identity.fleet, identity.serial, standing.offboarded, group
        )

    def _store(self, serial: str, standing: CertificateStanding | None, now: float) -> int:
        """Cache ``standing`` with a jittered TTL; the device's batcher group id."""
        group = -1
        if standing is not None:
            group = self._group_of(standing.device_type, standing.version)
        if len(self._standing) >= self._max_cached:
            self._standing.clear()
        ttl = self._ttl * random.uniform(1.0 - TTL_JITTER, 1.0 + TTL_JITTER)
        self._standing[serial] = (now + ttl, standing, group)
        return group

    async def _refresh(self, serial: str, fingerprint: str) -> None:
        try:
            standing = await self._lookup(serial, fingerprint)
        except Exception as exc:  # PostgreSQL down: the stale standing serves (grace)
            log.debug("standing refresh of %s failed: %r", serial, exc)
        else:
            # Unless a revocation notice dropped it meanwhile (forget): then the next
            # call looks it up afresh, synchronously.
            if serial in self._standing:
                self._store(serial, standing, self._clock())
        finally:
            if self._refreshing.get(serial) is asyncio.current_task():
                del self._refreshing[serial]

    def forget(self, serial: str) -> None:
        """Drop the cached standing (after a revocation in this process), and any refresh
        of it in flight (it may have read the standing before the revocation)."""
        self._standing.pop(serial, None)
        refresh = self._refreshing.pop(serial, None)
        if refresh is not None:
            refresh.cancel()

    def forget_devices(self, device_ids: list[str]) -> None:
        """Drop the cached standings of these devices' certificates (they were revoked).

        One pass over the cache per notice: revocations are rare operator actions."""
        gone = set(device_ids)
        for serial in [
            serial
            for serial, (_, standing, _) in self._standing.items()
            if standing is not None and standing.device_id in gone
        ]:
            self.forget(serial)
