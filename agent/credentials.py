"""The agent's key material on disk: generated here, never sent anywhere.

Layout of the agent's data directory (mode 0700):
``device.key`` (0600, PKCS#8 PEM), ``device.pem`` (issued certificate), ``ca.pem`` (fleet
CA), ``enrollment.json`` (device id, fleet, gateway endpoint), ``tuf-root.json`` (the TUF
root handed out at enrolment, pinned: the trust anchor for every artifact; public, so it
survives offboarding like the artifacts it verified). Files are written with
write-to-temp + fsync + rename, so a power cut leaves either the old or the new file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.durable import write_atomic

log = logging.getLogger("fleetd.agent")

KEY_FILE = "device.key"
CERT_FILE = "device.pem"
CA_FILE = "ca.pem"
ENROLLMENT_FILE = "enrollment.json"
TUF_ROOT_FILE = "tuf-root.json"
NEXT_KEY_FILE = "device.key.next"
NEXT_CERT_FILE = "device.pem.next"
KEY_MATERIAL = (KEY_FILE, CERT_FILE, ENROLLMENT_FILE, NEXT_KEY_FILE, NEXT_CERT_FILE)


def generate_key_and_csr(device_id: str) -> tuple[bytes, bytes]:
    """A new EC P-256 key and a CSR for it: (key PEM, CSR PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class Enrollment:
    device_id: str
    fleet: str
    gateway: str


class CredentialStore:
    """Reads and writes the agent's credentials in its data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir

    def ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)

    def enrollment(self) -> Enrollment | None:
        try:
            raw = json.loads((self.dir / ENROLLMENT_FILE).read_text())
            key_ok = (self.dir / KEY_FILE).exists() and (self.dir / CERT_FILE).exists()
        except (FileNotFoundError, ValueError):
            return None
        if not key_ok:
            return None
        return Enrollment(str(raw["device_id"]), str(raw["fleet"]), str(raw["gateway"]))

    def pending_key(self, device_id: str) -> tuple[bytes, bytes]:
        """The key to enrol with: reuse one generated earlier (an interrupted enrolment)."""
        key_path = self.dir / KEY_FILE
        if key_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path}: not an EC key")
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
                .sign(key, hashes.SHA256())
            )
            return key_path.read_bytes(), csr.public_bytes(serialization.Encoding.PEM)
        key_pem, csr_pem = generate_key_and_csr(device_id)
        write_atomic(key_path, key_pem, 0o600)
        return key_pem, csr_pem

    def save_enrollment(
        self, enrollment: Enrollment, cert_pem: bytes, ca_pem: bytes, tuf_root: bytes = b""
    ) -> None:
        """Everything enrolment returned; ``enrollment.json`` last, as it marks completion.
        An empty ``tuf_root`` (a server without a TUF repository) writes no root."""
        write_atomic(self.dir / CA_FILE, ca_pem, 0o644)
        if tuf_root:
            write_atomic(self.dir / TUF_ROOT_FILE, tuf_root, 0o644)
        write_atomic(self.dir / CERT_FILE, cert_pem, 0o644)
        write_atomic(self.dir / ENROLLMENT_FILE, json.dumps(asdict(enrollment)).encode(), 0o600)

    def key(self) -> bytes:
        return (self.dir / KEY_FILE).read_bytes()

    def cert(self) -> bytes:
        return (self.dir / CERT_FILE).read_bytes()

    def ca(self) -> bytes:
        return (self.dir / CA_FILE).read_bytes()

    def tuf_root(self) -> bytes | None:
        """The TUF root pinned at enrolment, or None if the server handed out none."""
        try:
            return (self.dir / TUF_ROOT_FILE).read_bytes()
        except FileNotFoundError:
            return None

    def wipe(self, extra: Sequence[Path] = ()) -> None:
        """Offboarding: overwrite and remove key material and credentials — the key, the
        certificate, the enrolment record, the temporaries a crash may have left of them,
        and ``extra`` (the enrolment token file). Artifacts, the agent's state and the
        public trust anchors (fleet CA, TUF root) stay in place."""
        paths = [self.dir / name for name in KEY_MATERIAL]
        paths += [self.dir / f".{name}.tmp" for name in KEY_MATERIAL]
        for path in [*paths, *extra]:
            try:
                size = path.stat().st_size
                with open(path, "r+b") as f:  # overwrite before unlinking
                    f.write(b"\0" * size)
                    f.flush()
                    os.fsync(f.fileno())
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                # Go on with the rest (a token on a read-only path must not keep the key
                # in place), but say what could not be wiped.
                log.error("offboarding: could not wipe %s: %s", path, exc)
