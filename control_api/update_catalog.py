"""The update catalogue: CreateUpdate, GetUpdate, ListUpdates.

CreateUpdate, in order (docs/updates.md explains the choices):

1. ``fleetd.domain.catalog.spec.validate``: every rule, before any IO (INVALID_ARGUMENT).
2. A quick (name, version) check (ALREADY_EXISTS), so a duplicate fetches nothing.
3. Content, outside any transaction: an uploaded binary is looked up (NOT_FOUND) and
   compared with the declared checksum/size (INVALID_ARGUMENT); a URL is fetched once into
   the blob store (``fleetd.services.catalog.fetch``); a container tag is resolved to its manifest
   digest (``fleetd.services.catalog.registry``) and the pin document stored as a blob.
4. One transaction under the catalogue lock: (name, version) checked again, release
   counters allocated, every artifact signed into TUF (``TufRepository.add_target``,
   which commits on its own), then the update and its artifacts inserted.

An update therefore never names an unsigned target. A failure between signing and the
commit leaves signed targets that no update names: harmless (devices are only ever
assigned artifacts of stored updates; the target just sits in the signed metadata), and
their release counters are skipped by the next create rather than reused.
"""

from __future__ import annotations

import secrets
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from control_api import convert, tuf_files, update_listing
from control_api.auth import audit_target, current_principal
from control_api.errors import invalid
from control_api.ordering import InvalidOrderBy
from control_api.pagination import InvalidPageToken, page_size
from control_api.resources import Resources, resources
from fleetd.domain.catalog import spec, targets
from fleetd.services.catalog import fetch, registry
from fleetd.services.tuf_repo import NewTarget, RepositoryFull, RepositoryMissing, TargetConflict
from fleetd.storage import updates as update_store
from fleetd.storage.blobs import Blob, FilesystemBlobStore, index_blob
from fleetd.v1 import update_pb2

Ctx = RequestContext[Any, Any]


def _source_error(field: str, exc: fetch.SourceError) -> ConnectError:
    if isinstance(exc, fetch.ContentMismatch):
        return invalid(f"{field}: {exc}")
    if isinstance(exc, fetch.SourceRefused):
        return ConnectError(Code.FAILED_PRECONDITION, f"{field}: {exc}")
    return ConnectError(Code.UNAVAILABLE, f"{field}: {exc}; nothing was stored, retry later")


class _Resolved:
    """An artifact plan with its content known."""

    def __init__(self, plan: spec.ArtifactPlan, content: targets.Content, blob: Blob) -> None:
        self.plan = plan
        self.content = content
        self.blob = blob


async def _resolve(
    res: Resources, store: FilesystemBlobStore, plan: spec.ArtifactPlan
) -> _Resolved:
    source = plan.source
    field = plan.field
    if isinstance(source, spec.FromBinary):
        binary = await update_store.binary_content(res.pool, source.binary_id)
        if binary is None:
            raise ConnectError(
                Code.NOT_FOUND, f"{field}.binary_id: binary {source.binary_id} not found"
            )
        if source.sha256 is not None and source.sha256 != binary.sha256:
            raise invalid(f"{field}.checksum: binary {binary.binary_id} has sha256:{binary.sha256}")
        if source.size is not None and source.size != binary.size_bytes:
            raise invalid(
                f"{field}.size_bytes: binary {binary.binary_id} is {binary.size_bytes} bytes"
            )
        if not await store.exists(binary.sha256):
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                f"{field}.binary_id: the content of binary {binary.binary_id} is missing "
                "from the blob store; upload it again",
            )
        blob = Blob(binary.sha256, binary.size_bytes)
        name = targets.file_name(binary.name)
    elif isinstance(source, spec.FromUrl):
        try:
            blob = await fetch.fetch_into(store, source.url, source.sha256, source.size)
        except fetch.SourceError as exc:
            raise _source_error(f"{field}.url", exc) from None
        name = targets.url_file_name(source.url)
    else:
        digest = source.digest
        if digest is None:
            try:
                digest = await registry.resolve_digest(
                    source.reference, insecure=res.settings.insecure_registries
                )
            except fetch.SourceError as exc:
                raise _source_error(f"{field}.container.image", exc) from None
        plan.spec.container.digest = digest
        document = targets.container_document(plan.spec.container.image, digest)
        async with store.writer(max_bytes=len(document)) as writer:
            await writer.write(document)
            blob = await writer.commit()
        name = targets.CONTAINER_FILE
    return _Resolved(plan, targets.Content(blob.sha256, blob.size, name), blob)


class CatalogMethods:
    """UpdateService methods about updates themselves (mixed into UpdateServiceImpl)."""

    async def create_update(
        self, request: update_pb2.CreateUpdateRequest, ctx: Ctx
    ) -> update_pb2.CreateUpdateResponse:
        try:
            plan = spec.validate(request)
        except spec.InvalidSpec as exc:
            raise invalid(str(exc)) from None
        update_id = f"update-{secrets.token_hex(8)}"
        audit_target(update_id)
        res = resources()
        if await update_store.update_exists(res.pool, plan.name, plan.version):
            raise _exists(plan)
        store = FilesystemBlobStore(res.settings.paths.blobs)
        resolved = [await _resolve(res, store, a) for a in plan.artifacts]
        repo = tuf_files.repository()
        new = update_store.NewUpdate(
            update_id=update_id,
            name=plan.name,
            version=plan.version,
            description=plan.description,
            strategy=plan.strategy,
            metadata=plan.metadata,
            created_by=current_principal().id,
        )
        async with res.pool.acquire() as conn, conn.transaction():
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
        update = update_pb2.Update(
            id=update_id,
            name=plan.name,
            version=plan.version,
            description=plan.description,
            artifacts=[a.spec for a in artifacts],
            strategy=plan.strategy,
            metadata=plan.metadata,
            created_at=convert.timestamp(created_at),
            created_by=new.created_by,
        )
        return update_pb2.CreateUpdateResponse(
            update=update, update_id=update_id, created_at=update.created_at
        )

    async def get_update(
        self, request: update_pb2.GetUpdateRequest, ctx: Ctx
    ) -> update_pb2.GetUpdateResponse:
        if not request.update_id:
            raise invalid("update_id is required")
        update = await update_store.get_update(resources().pool, request.update_id)
        if update is None:
            raise ConnectError(Code.NOT_FOUND, f"update {request.update_id[:128]} not found")
        return update_pb2.GetUpdateResponse(update=update)

    async def list_updates(
        self, request: update_pb2.ListUpdatesRequest, ctx: Ctx
    ) -> update_pb2.ListUpdatesResponse:
        size = page_size(request.page_size)
        try:
            order = update_listing.parse_order(request.order_by)
            where = update_listing.compile_filter(request.filter)
        except (InvalidOrderBy, update_listing.InvalidFilter) as exc:
            raise invalid(str(exc)) from None
        res = resources()
        total = await update_store.count_updates(res.pool, where=where.sql, params=where.params)
        # A token is valid only for the query (filter and ordering) that issued it.
        scope = f"updates|{order.canonical}|{request.filter}"
        clauses, params = [where.sql], list(where.params)
        if request.page_token:
            try:
                after = res.page_tokens.decode(scope, request.page_token).get("after")
                if not isinstance(after, list):
                    raise InvalidPageToken("page_token is malformed")
                sql, after_params = order.after_sql(after, len(params) + 1)
            except (InvalidPageToken, InvalidOrderBy) as exc:
                raise invalid(str(exc)) from None
            clauses.append(sql)
            params.extend(after_params)
        found = await update_store.list_updates(
            res.pool,
            where=" AND ".join(f"({c})" for c in clauses),
            params=params,
            order_by=order.order_by_sql(),
            limit=size + 1,
        )
        response = update_pb2.ListUpdatesResponse(
            updates=found[:size], total_count=min(total, 2**31 - 1)
        )
        if len(found) > size:
            last = update_listing.position(order, found[size - 1])
            response.next_page_token = res.page_tokens.encode(scope, {"after": last})
        return response


def _exists(plan: spec.UpdatePlan) -> ConnectError:
    return ConnectError(
        Code.ALREADY_EXISTS,
        f"update {plan.name!r} version {plan.version} exists already; updates are "
        "immutable, create a new version",
    )


async def _sign(repo: Any, counted: list[tuple[_Resolved, int]]) -> list[update_store.NewArtifact]:
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
        raise ConnectError(Code.FAILED_PRECONDITION, str(exc)) from None
    except RepositoryFull as exc:
        raise ConnectError(Code.RESOURCE_EXHAUSTED, f"TUF repository: {exc}") from None
    except TargetConflict as exc:  # paths carry a fresh counter: a bug if it happens
        raise ConnectError(Code.INTERNAL, str(exc)) from None
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
