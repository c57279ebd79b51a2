from __future__ import annotations

from fleetd.domain import bearer_tokens


def test_minted_token_parses_to_its_id_and_matches_its_digest() -> None:
    secret = bearer_tokens.mint("api_key")
    assert bearer_tokens.parse(secret.token, "api_key") == secret.id
    assert bearer_tokens.matches(secret.token, secret.digest)


def test_token_of_another_kind_does_not_parse() -> None:
    secret = bearer_tokens.mint("enrollment_token")
    assert bearer_tokens.parse(secret.token, "api_key") is None


def test_malformed_tokens_do_not_parse() -> None:
    for bad in ("", "fk_", "fk_zz_x", "fk_0123456789abcdef_short", "x" * 200, "fk_0123'; --"):
        assert bearer_tokens.parse(bad, "api_key") is None


def test_altered_secret_does_not_match() -> None:
    secret = bearer_tokens.mint("api_key")
    altered = secret.token[:-1] + ("A" if secret.token[-1] != "A" else "B")
    assert not bearer_tokens.matches(altered, secret.digest)
