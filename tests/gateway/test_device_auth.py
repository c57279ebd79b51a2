"""DeviceAuthenticator: identities from the cache, standing (revocation) checked on every call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from fleetd.storage.devices import CertificateStanding
from gateway.device_auth import DeviceAuthenticator, Refused
from tests.support import certs

FLEET = certs.DEFAULT_FLEET


@dataclass
class StandingTable:
    """The PostgreSQL standing lookup as an in-memory table, counting lookups."""

    rows: dict[str, CertificateStanding] = field(default_factory=dict)
    lookups: int = 0

    async def __call__(self, serial: str, fingerprint: str) -> CertificateStanding | None:
        self.lookups += 1
        return self.rows.get(serial)


def _group_of(device_type: str, version: str) -> int:
    return 0


@pytest.fixture(scope="module")
def ca() -> certs.FleetCA:
    return certs.make_fleet_ca()


async def test_repeated_calls_parse_the_certificate_once(ca: certs.FleetCA) -> None:
    device = certs.make_device_cert(ca, "dev-1")
    serial = format(device.cert.serial_number, "x")
    table = StandingTable(
        {
            serial: CertificateStanding(
                "dev-1", revoked=False, offboarded=False, device_type="rpi", version="1"
            )
        }
    )
    authenticator = DeviceAuthenticator(FLEET, table, _group_of)
    for _ in range(3):
        caller = await authenticator.authenticate(bytes(bytearray(device.pem)))
        assert (caller.device_id, caller.fleet, caller.serial) == ("dev-1", FLEET, serial)
    cache = authenticator.identity_cache
    assert (cache.hits, cache.misses, len(cache)) == (2, 1, 1)


async def test_revocation_is_seen_although_the_identity_is_cached(ca: certs.FleetCA) -> None:
    device = certs.make_device_cert(ca, "dev-2")
    serial = format(device.cert.serial_number, "x")
    table = StandingTable(
        {
            serial: CertificateStanding(
                "dev-2", revoked=False, offboarded=False, device_type="rpi", version="1"
            )
        }
    )
    authenticator = DeviceAuthenticator(FLEET, table, _group_of)
    await authenticator.authenticate(device.pem)
    table.rows[serial] = CertificateStanding(
        "dev-2", revoked=True, offboarded=False, device_type="rpi", version="1"
    )
    authenticator.forget(serial)
    with pytest.raises(Refused, match="revoked"):
        await authenticator.authenticate(device.pem)
    assert authenticator.identity_cache.hits == 1


async def test_refused_certificate_is_refused_every_time(ca: certs.FleetCA) -> None:
    table = StandingTable()
    authenticator = DeviceAuthenticator(FLEET, table, _group_of)
    for _ in range(2):
        with pytest.raises(Refused, match=r"^client certificate refused: CA certificate"):
            await authenticator.authenticate(ca.pem)
    assert len(authenticator.identity_cache) == 0
    assert table.lookups == 0


async def test_certificate_of_another_fleet_is_refused(ca: certs.FleetCA) -> None:
    other = certs.make_device_cert(certs.make_fleet_ca("other.example"), "dev-3", "other.example")
    authenticator = DeviceAuthenticator(FLEET, StandingTable(), _group_of)
    with pytest.raises(Refused, match=r"fleet 'other\.example'"):
        await authenticator.authenticate(other.pem)


async def test_identity_cache_is_bounded_by_max_cached(ca: certs.FleetCA) -> None:
    authenticator = DeviceAuthenticator(FLEET, StandingTable(), _group_of, max_cached=2)
    for i in range(4):
        authenticator.identity(certs.make_device_cert(ca, f"dev-{i}").pem)
    assert len(authenticator.identity_cache) == 2
    assert authenticator.identity_cache.evictions == 2


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _standing(device_id: str, *, revoked: bool = False) -> CertificateStanding:
    return CertificateStanding(
        device_id, revoked=revoked, offboarded=False, device_type="rpi", version="1"
    )


async def test_an_expired_standing_answers_while_one_background_lookup_refreshes_it(
    ca: certs.FleetCA,
) -> None:
    device = certs.make_device_cert(ca, "dev-swr")
    serial = format(device.cert.serial_number, "x")
    table = StandingTable({serial: _standing("dev-swr")})
    clock = Clock()
    authenticator = DeviceAuthenticator(
        FLEET, table, _group_of, standing_ttl=300.0, stale_grace=300.0, clock=clock
    )
    await authenticator.authenticate(device.pem)
    assert table.lookups == 1
    # Revoked in PostgreSQL, and the notice was lost: seen once the TTL (+20 %) is past.
    table.rows[serial] = _standing("dev-swr", revoked=True)
    clock.now += 300.0 * 1.2 + 1.0
    # The calls that find it expired are answered from it, with one lookup between them...
    for _ in range(3):
        caller = await authenticator.authenticate(device.pem)
        assert caller.device_id == "dev-swr"
    await asyncio.sleep(0)  # the refresh runs
    assert table.lookups == 2
    # ...and the next call sees what that lookup found.
    with pytest.raises(Refused, match="revoked"):
        await authenticator.authenticate(device.pem)
    assert table.lookups == 2


async def test_standings_cached_together_do_not_expire_together(ca: certs.FleetCA) -> None:
    devices = [certs.make_device_cert(ca, f"dev-j{i}") for i in range(40)]
    table = StandingTable(
        {format(d.cert.serial_number, "x"): _standing(f"dev-j{i}") for i, d in enumerate(devices)}
    )
    clock = Clock()
    authenticator = DeviceAuthenticator(FLEET, table, _group_of, standing_ttl=300.0, clock=clock)
    for device in devices:
        await authenticator.authenticate(device.pem)
    # At the nominal TTL some have expired (a refresh each), the rest not yet.
    clock.now += 300.0
    for device in devices:
        await authenticator.authenticate(device.pem)
    await asyncio.sleep(0)
    refreshed = table.lookups - len(devices)
    assert 0 < refreshed < len(devices)


async def test_a_revocation_notice_cancels_a_refresh_in_flight(ca: certs.FleetCA) -> None:
    device = certs.make_device_cert(ca, "dev-race")
    release = asyncio.Event()
    lookups: list[str] = []

    async def slow_lookup(s: str, fingerprint: str) -> CertificateStanding | None:
        lookups.append(s)
        if len(lookups) > 1:
            await release.wait()  # the refresh read the standing before the revocation
        return _standing("dev-race")

    clock = Clock()
    authenticator = DeviceAuthenticator(FLEET, slow_lookup, _group_of, clock=clock)
    await authenticator.authenticate(device.pem)
    clock.now += 500.0  # expired (TTL 300 s +/- 20 %), within the stale grace (300 s)
    await authenticator.authenticate(device.pem)  # starts the refresh
    await asyncio.sleep(0)
    assert len(lookups) == 2
    authenticator.forget_devices(["dev-race"])
    release.set()
    await asyncio.sleep(0)
    # The refresh was cancelled: nothing cached, the next call looks it up again.
    await authenticator.authenticate(device.pem)
    assert len(lookups) == 3
