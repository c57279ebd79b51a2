"""Private keys of the TUF roles, as files: never in the database.

Layout under the data directory (directories 0700, key files 0600, PKCS#8 PEM, Ed25519):

- ``tuf/offline/root/<keyid>.key``, ``tuf/offline/targets/<keyid>.key`` — made by
  ``fleetd init``. Only ``fleetd tuf rotate-*`` needs them: they can (and in production
  should) be moved off the server, onto removable media handed over with ``--keys-dir``.
- ``tuf/online/{artifacts,snapshot,timestamp}/<keyid>.key`` — used by the control API.
  Every control API node needs the same files (like ``pki/server.key``), because any
  replica may add a target or renew the timestamp.
- ``tuf/offline/retired/`` — keys replaced by a rotation, kept until the operator has
  checked the new version and destroys them (a failed publish must not lose the only key
  that can sign the current root).

The file name is the TUF key id (securesystemslib's default: the SHA-256 of the public
key's canonical form), so the keys listed in metadata map to files without an index.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner

from fleetd.services.tuf_repo.roles import OFFLINE_ROLES

_KEYID = re.compile(r"^[0-9a-f]{64}$")


class MissingKeys(LookupError):
    """Not enough private keys of a role are at hand to reach its threshold."""


@dataclass(frozen=True, slots=True)
class KeyDirs:
    """Where the private keys are: ``offline`` may point at removable media."""

    online: Path
    offline: Path

    @classmethod
    def under(cls, data_dir: Path, offline: Path | None = None) -> KeyDirs:
        return cls(
            online=data_dir / "tuf" / "online", offline=offline or data_dir / "tuf" / "offline"
        )

    def role_dir(self, role: str) -> Path:
        return (self.offline if role in OFFLINE_ROLES else self.online) / role

    @property
    def retired(self) -> Path:
        return self.offline / "retired"

    def generate(self, role: str) -> CryptoSigner:
        """A new Ed25519 key for ``role``, written (0600) before it is returned."""
        signer = CryptoSigner.generate_ed25519()
        _write_private(self.role_dir(role), signer.public_key.keyid, signer.private_bytes)
        return signer

    def load(self, role: str, keyids: Iterable[str] | None = None) -> list[CryptoSigner]:
        """The signers of ``role`` found on disk, optionally only those of ``keyids``.

        Raises:
            ValueError: a key file whose key is not Ed25519 or not named by its key id.
        """
        directory = self.role_dir(role)
        wanted = set(keyids) if keyids is not None else None
        signers: list[CryptoSigner] = []
        for path in sorted(directory.glob("*.key")) if directory.is_dir() else []:
            if wanted is not None and path.stem not in wanted:
                continue
            signers.append(_read_private(path))
        return signers

    def retire(self, role: str, keyid: str) -> None:
        """Move a replaced key to ``retired/`` (renamed ``<role>-<keyid>.key``)."""
        if not _KEYID.match(keyid):
            raise ValueError(f"not a key id: {keyid!r}")
        source = self.role_dir(role) / f"{keyid}.key"
        if not source.exists():
            return
        _ensure_private_dir(self.retired)
        source.rename(self.retired / f"{role}-{keyid}.key")


def signers_for(
    dirs: KeyDirs, role: str, keyids: Iterable[str], threshold: int
) -> list[CryptoSigner]:
    """At least ``threshold`` signers of ``role`` among ``keyids``.

    Raises:
        MissingKeys: naming the directory searched and how many keys were found.
    """
    signers = dirs.load(role, keyids)
    if len(signers) < threshold:
        raise MissingKeys(
            f"{role}: {len(signers)} of the {threshold} private key(s) needed are in "
            f"{dirs.role_dir(role)}; pass the directory holding them with --keys-dir"
        )
    return signers


def _ensure_private_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)


def _write_private(directory: Path, keyid: str, pem: bytes) -> Path:
    _ensure_private_dir(directory)
    path = directory / f"{keyid}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def _read_private(path: Path) -> CryptoSigner:
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    signer = CryptoSigner(key)
    if signer.public_key.keyid != path.stem:
        raise ValueError(f"{path}: the file name is not the key's id {signer.public_key.keyid}")
    return signer
