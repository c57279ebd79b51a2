"""Bulk-provisioned devices for load tests: keys and certificates cached on disk, rows by COPY.

Enrolling a device through the API costs a token, a CSR and a transaction each; a load test
with 10,000 or 1,000,000 devices cannot wait for that. Here the devices ``load-0000000``,
``load-0000001``... get their own EC P-256 key and a certificate signed by the bench
deployment's CA through the same ``CertificateAuthority.sign_device_csr`` as enrolment (so
the certificate profile is the production one), generated in parallel and cached under
``build/bench-load/devices/`` in chunks, keyed by the CA: reruns only load them. The rows
(``devices`` and ``device_certificates``) go into a database with two COPYs.

    python -m bench.load.provision --devices 10000 [--database-url URL]

The CA and the server certificate live in ``build/bench-load/data/pki`` (created once by
``fleetd.services.pki.init_pki``); every load benchmark's deployment uses that data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import multiprocessing
import os
import pickle
import shutil
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.serialization import Encoding

import core_ext
from agent.credentials import generate_key_and_csr
from bench.harness import BENCH_DIR
from fleetd.services.pki import CertificateAuthority, init_pki
from fleetd.settings import Paths

ROOT = BENCH_DIR.parent / "build" / "bench-load"
FLEET = "default"
SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
CHUNK = 5_000
DEVICE_TYPES = ("raspberry-pi", "jetson-nano", "rock-5b", "x86-gateway")


def device_id(index: int) -> str:
    return f"load-{index:07d}"


@dataclass(frozen=True, slots=True)
class DeviceCert:
    """One simulated device: its id, key, certificate and the certificate's record."""

    device_id: str
    key_pem: bytes
    cert_pem: bytes
    serial: str
    fingerprint: str
    not_before: dt.datetime
    not_after: dt.datetime


def _make_chunk(data_dir: str, chunk: int, out: str) -> None:
    """Generate chunk ``chunk`` of the population into ``out`` (runs in a worker)."""
    ca = CertificateAuthority.load(Paths(Path(data_dir)), FLEET)
    devices = []
    for index in range(chunk * CHUNK, (chunk + 1) * CHUNK):
        did = device_id(index)
        key_pem, csr_pem = generate_key_and_csr(did)
        cert = ca.sign_device_csr(csr_pem, did)
        identity = core_ext.extract_identity(cert.public_bytes(Encoding.DER))
        devices.append(
            DeviceCert(
                did,
                key_pem,
                cert.public_bytes(Encoding.PEM),
                identity.serial,
                identity.fingerprint,
                cert.not_valid_before_utc,
                cert.not_valid_after_utc,
            )
        )
    tmp = Path(out + ".tmp")
    # Plain tuples: the pickle must not name this module (it may run as __main__).
    rows = [astuple(d) for d in devices]
    tmp.write_bytes(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(out)


class Population:
    """The cached simulated devices of the bench deployment in ``root``."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.paths = Paths(root / "data")
        self.cache = root / "devices"
        self.ca = init_pki(self.paths, FLEET, SERVER_NAMES)
        self.ca_pem = self.ca.cert_pem
        tag = hashlib.sha256(self.ca_pem).hexdigest()
        marker = self.cache / "ca.sha256"
        if marker.exists() and marker.read_text() != tag:
            shutil.rmtree(self.cache)  # another CA: the cached certificates are useless
        self.cache.mkdir(parents=True, exist_ok=True)
        marker.write_text(tag)

    def _chunk_path(self, chunk: int) -> Path:
        return self.cache / f"chunk-{chunk:05d}.pkl"

    def ensure(self, count: int, processes: int | None = None) -> float:
        """Make sure devices 0..count-1 are cached; returns the seconds spent generating."""
        chunks = range((count + CHUNK - 1) // CHUNK)
        missing = [c for c in chunks if not self._chunk_path(c).exists()]
        if not missing:
            return 0.0
        print(f"provision: generating {len(missing) * CHUNK:,} device keys and certificates")
        start = time.perf_counter()
        args = [(str(self.paths.root), c, str(self._chunk_path(c))) for c in missing]
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes or os.cpu_count() or 1) as pool:
            pool.starmap(_make_chunk, args)
        return time.perf_counter() - start

    def load(self, start: int, count: int) -> list[DeviceCert]:
        """Devices start..start+count-1 (generating any that are missing or expiring)."""
        self.ensure(start + count)
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        for chunk in range(start // CHUNK, (start + count + CHUNK - 1) // CHUNK):
            if read_devices(self.cache, chunk * CHUNK, 1)[0].not_after < soon:
                self._chunk_path(chunk).unlink()
        self.ensure(start + count)
        return read_devices(self.cache, start, count)


def read_devices(cache: Path, start: int, count: int) -> list[DeviceCert]:
    """Devices start..start+count-1 from a cache that ``Population.ensure`` filled."""
    out: list[DeviceCert] = []
    for chunk in range(start // CHUNK, (start + count + CHUNK - 1) // CHUNK):
        rows = pickle.loads((cache / f"chunk-{chunk:05d}.pkl").read_bytes())
        lo = max(start - chunk * CHUNK, 0)
        hi = min(start + count - chunk * CHUNK, CHUNK)
        out.extend(DeviceCert(*row) for row in rows[lo:hi])
    return out


async def insert_devices(conn: asyncpg.Connection, devices: Sequence[DeviceCert]) -> None:
    """The devices and their certificate records, by COPY (the database must lack them)."""
    await conn.copy_records_to_table(
        "devices",
        records=[
            (d.device_id, FLEET, d.device_id, DEVICE_TYPES[i % len(DEVICE_TYPES)], "1.0")
            for i, d in enumerate(devices)
        ],
        columns=["device_id", "fleet", "name", "device_type", "version"],
    )
    await conn.copy_records_to_table(
        "device_certificates",
        records=[
            (d.serial, d.device_id, d.fingerprint, d.not_before, d.not_after) for d in devices
        ],
        columns=["serial", "device_id", "fingerprint", "not_before", "not_after"],
    )


async def provision(database_url: str, devices: Sequence[DeviceCert]) -> float:
    """Insert ``devices`` into the database at ``database_url``; returns seconds taken."""
    start = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await insert_devices(conn, devices)
    finally:
        await conn.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument(
        "--database-url", help="also insert the devices there (a database migrated by fleetd)"
    )
    args = parser.parse_args()
    population = Population()
    spent = population.ensure(args.devices)
    print(f"provision: {args.devices:,} devices cached in {population.cache} ({spent:.1f}s)")
    if args.database_url:
        devices = population.load(0, args.devices)
        took = asyncio.run(provision(args.database_url, devices))
        print(f"provision: inserted {len(devices):,} devices in {took:.1f}s")


if __name__ == "__main__":
    main()
