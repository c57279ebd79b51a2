"""The pure metadata edits: what each publishes, how versions and expiries move, and that
roots are signed by old and new keys. No IO: keys are generated in memory."""

from __future__ import annotations

import datetime as dt

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Snapshot, TargetFile

from fleetd.services.tuf_repo import edits
from fleetd.services.tuf_repo.roles import ARTIFACTS, ROOT, SNAPSHOT, TARGETS, TIMESTAMP

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _keys(n: int = 1) -> list[CryptoSigner]:
    return [CryptoSigner.generate_ed25519() for _ in range(n)]


def _online() -> edits.OnlineSigners:
    return edits.OnlineSigners(_keys(), _keys(), _keys())


def _repo(
    root_keys: list[CryptoSigner] | None = None, threshold: int = 1
) -> tuple[edits.Published, edits.OnlineSigners]:
    online = _online()
    publication = edits.create(
        root_keys=root_keys or _keys(),
        root_threshold=threshold,
        targets_keys=_keys(),
        online=online,
        now=NOW,
    )
    roles = dict(publication)
    state = edits.Published(
        roles[ROOT], roles[TARGETS], roles[ARTIFACTS], roles[SNAPSHOT], roles[TIMESTAMP]
    )
    return state, online


def _target(path: str = "fw/app.bin") -> TargetFile:
    return TargetFile(3, {"sha256": "ab" * 32}, path, {"custom": {"release_counter": 1}})


def test_created_repository_verifies_role_by_role() -> None:
    state, _ = _repo()
    root: Root = state.root.signed
    assert root.consistent_snapshot is True
    for role in (ROOT, TARGETS, SNAPSHOT, TIMESTAMP):
        md = state.by_role()[role]
        root.verify_delegate(role, md.signed_bytes, md.signatures)
    state.targets.signed.verify_delegate(
        ARTIFACTS, state.artifacts.signed_bytes, state.artifacts.signatures
    )
    assert state.timestamp.signed.expires == NOW + dt.timedelta(days=1)
    assert state.root.signed.expires == NOW + dt.timedelta(days=365)


def test_threshold_beyond_the_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        _repo(_keys(1), threshold=2)


def test_add_target_publishes_artifacts_snapshot_and_timestamp_in_order() -> None:
    state, online = _repo()
    publication = edits.add_targets(state, [_target()], online, NOW)
    assert [(r, md.signed.version) for r, md in publication] == [
        (ARTIFACTS, 2),
        (SNAPSHOT, 2),
        (TIMESTAMP, 2),
    ]
    after = state.apply(publication)
    assert "fw/app.bin" in after.artifacts.signed.targets
    assert after.snapshot.signed.meta["artifacts.json"].version == 2
    assert after.snapshot.signed.meta["targets.json"].version == 1
    assert after.timestamp.signed.snapshot_meta.version == 2
    # The input state is left as it was.
    assert state.artifacts.signed.version == 1 and not state.artifacts.signed.targets


def test_refresh_resigns_only_what_is_past_half_life_and_what_lists_it() -> None:
    state, online = _repo()
    assert edits.refresh(state, online, NOW + dt.timedelta(hours=11)) == []
    only_timestamp = edits.refresh(state, online, NOW + dt.timedelta(hours=13))
    assert [r for r, _ in only_timestamp] == [TIMESTAMP]
    snapshot_too = edits.refresh(state, online, NOW + dt.timedelta(days=4))
    assert [r for r, _ in snapshot_too] == [SNAPSHOT, TIMESTAMP]
    everything = edits.refresh(state, online, NOW + dt.timedelta(days=16))
    assert [r for r, _ in everything] == [ARTIFACTS, SNAPSHOT, TIMESTAMP]
    later = NOW + dt.timedelta(hours=13)
    assert only_timestamp[0][1].signed.expires == later + dt.timedelta(days=1)


def test_new_root_is_signed_by_the_old_and_the_new_keys() -> None:
    old = _keys()
    state, _ = _repo(old)
    new = _keys()
    root = edits.new_root(state, old_root_signers=old, new_root_signers=new, now=NOW)
    assert root.signed.version == 2
    assert set(root.signatures) == {old[0].public_key.keyid, new[0].public_key.keyid}
    state.root.signed.verify_delegate(ROOT, root.signed_bytes, root.signatures)
    root.signed.verify_delegate(ROOT, root.signed_bytes, root.signatures)


def test_new_root_without_the_old_keys_is_refused() -> None:
    state, _ = _repo()
    new = _keys()
    with pytest.raises(UnsignedMetadataError):
        edits.new_root(state, old_root_signers=[], new_root_signers=new, now=NOW)


def test_threshold_two_root_needs_two_old_signatures() -> None:
    old = _keys(2)
    state, _ = _repo(old, threshold=2)
    with pytest.raises(UnsignedMetadataError):
        edits.new_root(state, old_root_signers=old[:1], new_root_signers=_keys(2), now=NOW)
    root = edits.new_root(state, old_root_signers=old, new_root_signers=_keys(2), now=NOW)
    assert root.signed.roles[ROOT].threshold == 2
    assert len(root.signatures) == 4


def test_resign_targets_with_a_new_artifacts_key_moves_the_delegation() -> None:
    state, online = _repo()
    targets_key = _keys()
    artifacts_key = _keys()
    publication = edits.resign_targets(
        state,
        targets_key,
        edits.OnlineSigners(artifacts_key, online.snapshot, online.timestamp),
        NOW,
        artifacts_keys=[artifacts_key[0].public_key],
    )
    assert [r for r, _ in publication] == [TARGETS, ARTIFACTS, SNAPSHOT, TIMESTAMP]
    after = state.apply(publication)
    after.targets.signed.verify_delegate(
        ARTIFACTS, after.artifacts.signed_bytes, after.artifacts.signatures
    )
    snapshot = Metadata[Snapshot].from_bytes(after.snapshot.to_bytes())
    assert snapshot.signed.meta["targets.json"].version == 2
