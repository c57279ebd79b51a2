from __future__ import annotations

from fleetd import credentials


def test_minted_token_parses_to_its_id_and_matches_its_digest() -> None:
    secret = credentials.mint("api_key")
    assert credentials.parse(secret.token, "api_key") == secret.id
    assert credentials.matches(secret.token, secret.digest)


def test_token_of_another_kind_does_not_parse() -> None:
    secret = credentials.mint("enrollment_token")
    assert credentials.parse(secret.token, "api_key") is None


def test_malformed_tokens_do_not_parse() -> None:
    for bad in ("", "fk_", "fk_zz_x", "fk_0123456789abcdef_short", "x" * 200, "fk_0123'; --"):
        assert credentials.parse(bad, "api_key") is None


def test_altered_secret_does_not_match() -> None:
    secret = credentials.mint("api_key")
    altered = secret.token[:-1] + ("A" if secret.token[-1] != "A" else "B")
    assert not credentials.matches(altered, secret.digest)
