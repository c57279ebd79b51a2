"""Identity extraction: compiled vs reference, uncached and through IdentityCache.

``python -m bench.core_identity`` issues device certificates with fleetd's own CA (as the
gateway sees them: PEM from grpc's ``auth_context()``), checks that both implementations
give the same identities, then times, interleaved in one run:

- uncached ``extract_identity``, compiled vs reference, per key type (target >= 10x);
- ``IdentityCache.get`` hits, compiled and reference, each lookup with a new ``bytes``
  object as every RPC brings (so Python's cached bytes hash cannot help; target <= 1 us).
  The copy that makes the new object is timed alone alongside and subtracted.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

import core_ext.compiled as compiled
import core_ext.reference as reference
from bench.harness import Report, interleaved
from fleetd.services.pki import CertificateAuthority

FLEET = "bench.example"
DeviceKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
KEY_TYPES: dict[str, Callable[[], DeviceKey]] = {
    "EC P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "Ed25519": ed25519.Ed25519PrivateKey.generate,
    "RSA-2048": lambda: rsa.generate_private_key(65537, 2048),
}
FIELDS = ("device_id", "fleet", "serial", "fingerprint", "not_before", "not_after", "key_algorithm")


def device_certificates(authority: CertificateAuthority, key_type: str, count: int) -> list[bytes]:
    """``count`` device certificates (PEM) issued through the enrolment path.

    Keys are reused (eight per type: RSA keys are slow to make); every certificate still
    differs by device id and serial number.
    """
    keys = [KEY_TYPES[key_type]() for _ in range(min(count, 8))]
    pems = []
    for i in range(count):
        key = keys[i % len(keys)]
        algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")]))
            .sign(key, algorithm)
        )
        device_id = f"{key_type.split()[0].split('-')[0].lower()}-{i:05}"
        cert = authority.sign_device_csr(csr.public_bytes(serialization.Encoding.PEM), device_id)
        pems.append(cert.public_bytes(serialization.Encoding.PEM))
    return pems


def fields(identity: object) -> tuple[object, ...]:
    return tuple(getattr(identity, name) for name in FIELDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certificates", type=int, default=200, help="per key type")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    report = Report("core_identity", "python -m bench.core_identity")
    # The machine may be shared: every row records how busy it was when the run started.
    load = os.getloadavg()[0]
    authority = CertificateAuthority.create(FLEET)

    for key_type in KEY_TYPES:
        pems = device_certificates(authority, key_type, args.certificates)
        for pem in pems:  # correctness before timing
            assert fields(compiled.extract_identity(pem)) == fields(reference.extract_identity(pem))

        def extract_all(extract: Callable[[bytes], object], pems: list[bytes] = pems) -> None:
            for pem in pems:
                extract(pem)

        times = interleaved(
            {
                "compiled": lambda: extract_all(compiled.extract_identity),
                "reference": lambda: extract_all(reference.extract_identity),
            },
            repeat=args.repeat,
        )
        per_cert = {name: seconds / len(pems) for name, seconds in times.items()}
        ratio = per_cert["reference"] / per_cert["compiled"]
        report.add(
            f"uncached extract_identity, {key_type} PEM from fleetd's CA",
            f"{ratio:.1f}x (compiled {per_cert['compiled'] * 1e6:.2f} us, "
            f"reference {per_cert['reference'] * 1e6:.1f} us)",
            ">= 10x",
            ratio >= 10,
            compiled_us=per_cert["compiled"] * 1e6,
            reference_us=per_cert["reference"] * 1e6,
            ratio=ratio,
            certificates=len(pems),
            load_average_1m_at_start=load,
        )

    # Cached lookups: the production key type, a warm cache holding every certificate.
    pems = device_certificates(authority, "EC P-256", args.certificates)
    lookups = 20_000
    caches: dict[str, compiled.IdentityCache | reference.IdentityCache] = {
        "compiled": compiled.IdentityCache(len(pems)),
        "reference": reference.IdentityCache(len(pems)),
    }
    for cache in caches.values():
        for pem in pems:
            cache.get(pem)
    for pem in pems:
        assert caches["compiled"].get(bytes(bytearray(pem))) is caches["compiled"].get(pem)
        assert fields(caches["compiled"].get(pem)) == fields(caches["reference"].get(pem))
    # Every RPC brings a new bytes object, just made (so in the CPU cache) and with no
    # cached hash. Emulate it by copying from a bytearray right before each lookup, and
    # subtract the copy alone, timed alongside.
    sources = [bytearray(p) for p in itertools.islice(itertools.cycle(pems), lookups)]

    def copy_only() -> None:
        for source in sources:
            bytes(source)

    def copy_and_get(cache: compiled.IdentityCache | reference.IdentityCache) -> Callable[[], None]:
        def run() -> None:
            get = cache.get
            for source in sources:
                get(bytes(source))

        return run

    times = interleaved(
        {"copy": copy_only, **{name: copy_and_get(cache) for name, cache in caches.items()}},
        repeat=args.repeat,
    )
    per_lookup = {name: (times[name] - times["copy"]) / lookups for name in caches}
    misses = {name: cache.misses for name, cache in caches.items()}
    assert misses == {"compiled": len(pems), "reference": len(pems)}, misses  # all hits
    report.add(
        "IdentityCache.get hit, EC P-256 PEM, a new bytes object per call",
        f"compiled {per_lookup['compiled'] * 1e9:.0f} ns "
        f"(reference {per_lookup['reference'] * 1e9:.0f} ns)",
        "<= 1 us",
        per_lookup["compiled"] <= 1e-6,
        compiled_ns=per_lookup["compiled"] * 1e9,
        reference_ns=per_lookup["reference"] * 1e9,
        copy_ns=times["copy"] / lookups * 1e9,
        entries=len(pems),
        lookups_per_sample=lookups,
        median_cert_bytes=statistics.median(len(p) for p in pems),
        load_average_1m_at_start=load,
    )
    report.write()


if __name__ == "__main__":
    main()
