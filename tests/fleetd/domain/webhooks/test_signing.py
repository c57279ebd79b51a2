"""fleetd's webhook signatures verify with the Standard Webhooks library (PyPI
``standardwebhooks``), as a receiver would, and its own verifier refuses what it must."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fleetd.domain.webhooks import signing

KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 132))
BODY = json.dumps(
    {
        "event": "device.offline",
        "timestamp": "2024-01-01T12:00:00Z",
        "data": {"device_id": "rpi-001", "last_seen": "2024-01-01T11:55:00Z"},
    }
).encode()


def _now() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


def test_a_delivery_verifies_with_the_standard_webhooks_library() -> None:
    now = _now()
    headers = signing.sign([KEY], "evt_01", now, BODY)
    receiver = Webhook(signing.encode_secret(KEY))
    assert receiver.verify(BODY, headers) == json.loads(BODY)
    # And the library signs exactly as fleetd does.
    expected = receiver.sign("evt_01", dt.datetime.fromtimestamp(now, dt.UTC), BODY.decode())
    assert headers["webhook-signature"] == expected


def test_during_a_rotation_receivers_with_either_secret_verify() -> None:
    headers = signing.sign([KEY, OLD_KEY], "evt_02", _now(), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for key in (KEY, OLD_KEY):
        Webhook(signing.encode_secret(key)).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.encode_secret(bytes(32))).verify(BODY, headers)


def test_a_tampered_body_or_a_stale_timestamp_is_refused() -> None:
    now = _now()
    headers = signing.sign([KEY], "evt_03", now, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.encode_secret(KEY)).verify(BODY + b" ", headers)
    assert signing.verify(KEY, headers, BODY, now=now) == "evt_03"
    with pytest.raises(signing.InvalidSignature, match="no webhook-signature matches"):
        signing.verify(KEY, headers, BODY.replace(b"rpi-001", b"rpi-002"), now=now)
    with pytest.raises(signing.InvalidSignature, match="too far"):
        signing.verify(KEY, headers, BODY, now=now + signing.TOLERANCE_SECONDS + 1)
    stale = signing.sign([KEY], "evt_04", now - 600, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.encode_secret(KEY)).verify(BODY, stale)


def test_headers_are_matched_case_insensitively_and_required() -> None:
    now = _now()
    headers = {k.upper(): v for k, v in signing.sign([KEY], "evt_05", now, BODY).items()}
    assert signing.verify(KEY, headers, BODY, now=now) == "evt_05"
    for missing in ("WEBHOOK-ID", "WEBHOOK-TIMESTAMP", "WEBHOOK-SIGNATURE"):
        partial = {k: v for k, v in headers.items() if k != missing}
        with pytest.raises(signing.InvalidSignature, match="required"):
            signing.verify(KEY, partial, BODY, now=now)
    with pytest.raises(signing.InvalidSignature, match="integer"):
        signing.verify(KEY, {**headers, "WEBHOOK-TIMESTAMP": "soon"}, BODY, now=now)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("abc", "starts with"),
        ("whsec_!!!", "base64"),
        ("whsec_" + "QUFB" * 2, "24 to 64 bytes"),
        (signing.encode_secret(bytes(64))[:-4] + "QUFBQUFB", "24 to 64 bytes"),
    ],
)
def test_bad_secrets_are_refused(secret: str, message: str) -> None:
    with pytest.raises(signing.InvalidSecret, match=message):
        signing.decode_secret(secret)


def test_secrets_round_trip_and_ids_are_checked() -> None:
    assert signing.decode_secret(signing.encode_secret(KEY)) == KEY
    with pytest.raises(signing.InvalidSecret):
        signing.encode_secret(bytes(10))
    with pytest.raises(ValueError, match="printable"):
        signing.sign([KEY], "evt\n1", _now(), BODY)
    with pytest.raises(ValueError, match="at least one"):
        signing.sign([], "evt_1", _now(), BODY)
