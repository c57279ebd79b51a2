"""Creating an update from a validated plan: content resolved, artifacts signed, rows stored.

``CreateUpdate`` (control_api/update_catalog.py) validates the request
(``fleetd.domain.catalog.spec``), then calls :func:`create_update`, which does the rest in
this order (docs/updates.md explains the choices):

1. A quick (name, version) check, so a duplicate fetches nothing.
2. Content, outside any transaction: an uploaded binary is looked up and compared with
   the declared checksum/size; a URL is fetched once into the blob store
   (``fleetd.services.catalog.fetch``); a container tag is resolved to its manifest digest
   (``fleetd.services.catalog.registry``) and the pin document stored as a blob. Both
   reach out only through the outbound guard (``fleetd.services.outbound``), built from
   the operator's allowlist (``outbound_allow``, ``FLEETD_OUTBOUND_ALLOW``).
3. One transaction under the catalogue lock: (name, version) checked again, release
   counters allocated, every artifact signed into TUF (``TufRepository.add_targets``,
   which commits on its own), then the update and its artifacts inserted.

An update therefore never names an unsigned target. A failure between signing and the
commit leaves signed targets that no update names: harmless (devices are only ever
assigned artifacts of stored updates; the target just sits in the signed metadata), and
their release counters are skipped by the next create rather than reused.

Every refusal is a :class:`CreateRefused` whose ``refusal`` says what kind it is (the API
maps each kind to one status code) and whose message names the field and the problem.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from collections.abc import Collection
from dataclasses import dataclass

from fleetd.domain.catalog import spec, targets
from fleetd.services.catalog import fetch, registry
from fleetd.services.outbound import OutboundGuard
from fleetd.services.tuf_repo import (
    NewTarget,
    RepositoryFull,
    RepositoryMissing,
    TargetConflict,
    TufRepository,
)
from fleetd.storage import updates as update_store
from fleetd.storage.blobs import Blob, FilesystemBlobStore, index_blob
from fleetd.storage.types import Pool
from fleetd.v1 import update_pb2


class Refusal(enum.Enum):
    """Why an update was not created."""

    EXISTS = "exists"
    """(name, version) is taken: updates are immutable."""
    NOT_FOUND = "not_found"
    """A named binary does not exist."""
    INVALID = "invalid"
    """The content is not what the request declared."""
    PRECONDITION = "precondition"
    """Something outside the request must be fixed first (a source, the repository)."""
    UNAVAILABLE = "unavailable"
    """A source could not be reached; retrying later may work."""
    EXHAUSTED = "exhausted"
    """The TUF repository's metadata would grow past its limit."""
    BUG = "bug"
    """An invariant of this module did not hold."""


class CreateRefused(Exception):
    """The update was not created; ``refusal`` says why, the message what (safe to show)."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class Created:
    """A stored update: its artifacts as GetUpdate returns them, and when it was made."""

    artifacts: list[update_pb2.Artifact]
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class _Resolved:
    """An artifact plan with its content known."""

    plan: spec.ArtifactPlan
    content: targets.Content
    blob: Blob


async def create_update(
    pool: Pool,
    repo: TufRepository,
    store: FilesystemBlobStore,
    plan: spec.UpdatePlan,
    *,
    update_id: str,
    created_by: str,
    insecure_registries: Collection[str] = (),
    outbound_allow: Collection[str] = (),
) -> Created:
    """Resolve, sign and store ``plan`` as update ``update_id``; CreateRefused if not.

    ``outbound_allow``: the internal destinations URL fetches and registry lookups may
    reach (``Settings.outbound_allow``); none by default."""
    if await update_store.update_exists(pool, plan.name, plan.version):
        raise _exists(plan)
    guard = OutboundGuard.allowing(outbound_allow)
    resolved = [
        await _resolve(pool, store, a, insecure_registries=insecure_registries, guard=guard)
        for a in plan.artifacts
    ]
    new = update_store.NewUpdate(
        update_id=update_id,
        name=plan.name,
        version=plan.version,
        description=plan.description,
        strategy=plan.strategy,
        metadata=plan.metadata,
        created_by=created_by,
    )
    async with pool.acquire() as conn, conn.transaction():
        await update_store.lock_catalogue(conn)
        if await update_store.update_exists(conn, plan.name, plan.version):
            raise _exists(plan)
        counters = await update_store.next_release_counters(
            conn, [(a.name, a.platform, targets.hardware(a.platform)) for a in plan.artifacts]
        )
        artifacts = await _sign(
            repo, [(r, counters[(r.plan.name, r.plan.platform)]) for r in resolved]
        )
        for r in resolved:
            await index_blob(conn, r.blob)
        created_at = await update_store.insert_update(conn, new, artifacts)
    return Created([a.spec for a in artifacts], created_at)


def _exists(plan: spec.UpdatePlan) -> CreateRefused:
    return CreateRefused(
        Refusal.EXISTS,
        f"update {plan.name!r} version {plan.version} exists already; updates are "
        "immutable, create a new version",
    )


def _source_refused(field: str, exc: fetch.SourceError) -> CreateRefused:
    if isinstance(exc, fetch.ContentMismatch):
        return CreateRefused(Refusal.INVALID, f"{field}: {exc}")
    if isinstance(exc, fetch.SourceRefused):
        return CreateRefused(Refusal.PRECONDITION, f"{field}: {exc}")
    return CreateRefused(Refusal.UNAVAILABLE, f"{field}: {exc}; nothing was stored, retry later")


async def _resolve(
    pool: Pool,
    store: FilesystemBlobStore,
    plan: spec.ArtifactPlan,
    *,
    insecure_registries: Collection[str],
    guard: OutboundGuard,
) -> _Resolved:
    source = plan.source
    field = plan.field
    if isinstance(source, spec.FromBinary):
        binary = await update_store.binary_content(pool, source.binary_id)
        if binary is None:
            raise CreateRefused(
                Refusal.NOT_FOUND, f"{field}.binary_id: binary {source.binary_id} not found"
            )
        if source.sha256 is not None and source.sha256 != binary.sha256:
            raise CreateRefused(
                Refusal.INVALID,
                f"{field}.checksum: binary {binary.binary_id} has sha256:{binary.sha256}",
            )
        if source.size is not None and source.size != binary.size_bytes:
            raise CreateRefused(
                Refusal.INVALID,
                f"{field}.size_bytes: binary {binary.binary_id} is {binary.size_bytes} bytes",
            )
        if not await store.exists(binary.sha256):
            raise CreateRefused(
                Refusal.PRECONDITION,
                f"{field}.binary_id: the content of binary {binary.binary_id} is missing "
                "from the blob store; upload it again",
            )
        blob = Blob(binary.sha256, binary.size_bytes)
        name = targets.file_name(binary.name)
    elif isinstance(source, spec.FromUrl):
        try:
            blob = await fetch.fetch_into(
                store, source.url, source.sha256, source.size, guard=guard
            )
        except fetch.SourceError as exc:
            raise _source_refused(f"{field}.url", exc) from None
        name = targets.url_file_name(source.url)
    else:
        digest = source.digest
        if digest is None:
            try:
                digest = await registry.resolve_digest(
                    source.reference, insecure=insecure_registries, guard=guard
                )
            except fetch.SourceError as exc:
                raise _source_refused(f"{field}.container.image", exc) from None
        plan.spec.container.digest = digest
        document = targets.container_document(plan.spec.container.image, digest)
        async with store.writer(max_bytes=len(document)) as writer:
            await writer.write(document)
            blob = await writer.commit()
        name = targets.CONTAINER_FILE
    return _Resolved(plan, targets.Content(blob.sha256, blob.size, name), blob)


async def _sign(
    repo: TufRepository, counted: list[tuple[_Resolved, int]]
) -> list[update_store.NewArtifact]:
    """Sign every artifact into TUF (one publication) and make their stored rows."""
    paths = [targets.target_path(r.plan, counter, r.content) for r, counter in counted]
    try:
        await repo.add_targets(
            [
                NewTarget(
                    path,
                    r.content.length,
                    {"sha256": r.content.sha256},
                    targets.target_custom(r.plan, counter),
                )
                for path, (r, counter) in zip(paths, counted, strict=True)
            ]
        )
    except RepositoryMissing as exc:
        raise CreateRefused(Refusal.PRECONDITION, str(exc)) from None
    except RepositoryFull as exc:
        raise CreateRefused(Refusal.EXHAUSTED, f"TUF repository: {exc}") from None
    except TargetConflict as exc:  # paths carry a fresh counter: a bug if it happens
        raise CreateRefused(Refusal.BUG, str(exc)) from None
    return [
        _artifact_row(r, counter, path) for path, (r, counter) in zip(paths, counted, strict=True)
    ]


def _artifact_row(resolved: _Resolved, counter: int, path: str) -> update_store.NewArtifact:
    plan = resolved.plan
    content = resolved.content
    artifact = update_pb2.Artifact()
    artifact.CopyFrom(plan.spec)
    artifact.id = f"artifact-{secrets.token_hex(8)}"
    artifact.tuf_target_path = path
    if plan.kind != "container":
        artifact.checksum = f"sha256:{content.sha256}"
        artifact.size_bytes = content.length
    return update_store.NewArtifact(
        artifact_id=artifact.id,
        position=plan.index,
        name=plan.name,
        platform=plan.platform,
        kind=plan.kind,
        version=plan.version,
        spec=artifact,
        assignment_template=targets.assignment_template(plan, path, content),
        target_path=path,
        sha256=content.sha256,
        length=content.length,
        release_counter=counter,
    )
