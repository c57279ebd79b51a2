"""fleetd's compiled hot path (Rust): X.509 device certificate identity extraction.

The pure-Python reference ``core_ext.reference.identity`` defines the semantics; this module
must behave identically on every input, refusals included.
"""

from typing import Final, final

__all__ = ["MAX_CERTIFICATE_SIZE", "DeviceIdentity", "IdentityError", "extract_identity"]

MAX_CERTIFICATE_SIZE: Final[int]
"""Inputs longer than this many bytes (16384) are refused before any parsing."""

class IdentityError(ValueError):
    """The certificate does not establish a device identity; the message says why.

    Messages start with one of these prefixes (what follows is detail for logs):
    ``"certificate too large"``, ``"empty certificate"``, ``"malformed PEM"``,
    ``"malformed certificate"``, ``"CA certificate used as a device certificate"``,
    ``"certificate is not valid for client authentication"``,
    ``"missing or malformed device identity"``,
    ``"certificate common name does not match device identity"``,
    ``"unsupported key algorithm"``.
    """

@final
class DeviceIdentity:
    """The identity a device certificate establishes, with what the caller needs to check it.

    Immutable; equality and hash cover every field.
    """

    def __new__(
        cls,
        device_id: str,
        fleet: str,
        serial: str,
        fingerprint: str,
        not_before: int,
        not_after: int,
        key_algorithm: str,
    ) -> DeviceIdentity: ...
    @property
    def device_id(self) -> str:
        """The device, from the ``spiffe://<fleet>/device/<device_id>`` URI SAN.

        Equal to the subject common name.
        """
    @property
    def fleet(self) -> str:
        """The fleet the device belongs to, from the same URI."""
    @property
    def serial(self) -> str:
        """The certificate serial number: lowercase hex, no leading zeros, ``"0"`` for zero."""
    @property
    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the certificate's DER encoding."""
    @property
    def not_before(self) -> int:
        """Start of the validity period, Unix seconds (not checked by this module)."""
    @property
    def not_after(self) -> int:
        """End of the validity period, Unix seconds (not checked by this module)."""
    @property
    def key_algorithm(self) -> str:
        """``"EC-P256"``, ``"EC-P384"``, ``"EC-P521"``, ``"Ed25519"``, ``"Ed448"`` or
        ``"RSA-<modulus bits>"`` (e.g. ``"RSA-2048"``)."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def extract_identity(data: bytes) -> DeviceIdentity:
    """Extract the device identity from a client certificate.

    ``data`` is PEM (optional leading whitespace, then ``-----BEGIN CERTIFICATE-----``; only
    the first block is read) or DER, at most 16384 bytes. The certificate must not be a CA,
    must allow clientAuth, must carry exactly one ``spiffe://<fleet>/device/<device_id>``
    URI SAN, a subject CN equal to ``device_id`` and an EC P-256/P-384/P-521, Ed25519, Ed448
    or RSA key. Validity dates and signatures are reported, not checked.

    Checks run in this order: size, empty input, PEM armour, DER structure, CA flag,
    client-auth EKU, identity URI SAN, common name, key algorithm.

    Raises:
        IdentityError: when the certificate is refused (see its message prefixes).
        TypeError: when ``data`` is not ``bytes``.
    """
