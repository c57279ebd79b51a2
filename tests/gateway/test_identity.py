"""DeviceAuthenticator: identities from the cache, standing (revocation) checked on every call."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fleetd.storage.devices import CertificateStanding
from gateway.identity import DeviceAuthenticator, Refused
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
