"""The update catalogue: CreateUpdate, GetUpdate, ListUpdates.

CreateUpdate validates the request first, before any IO (``fleetd.domain.catalog.spec``,
INVALID_ARGUMENT), then hands the plan to ``fleetd.services.catalog.create``, which
resolves the content, signs the artifacts into TUF and stores the update (its docstring
gives the order and why); this module maps that service's refusals to status codes.
"""

from __future__ import annotations

import secrets
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from control_api import convert, tuf_files
from control_api.auth import audit_target, current_principal
from control_api.errors import invalid
from control_api.pagination import InvalidPageToken, page_size
from control_api.resources import resources
from fleetd.domain.catalog import spec
from fleetd.services.catalog import create
from fleetd.storage import update_listing
from fleetd.storage import updates as update_store
from fleetd.storage.blobs import FilesystemBlobStore
from fleetd.storage.ordering import InvalidOrderBy
from fleetd.v1 import update_pb2

Ctx = RequestContext[Any, Any]

REFUSAL_CODES: dict[create.Refusal, Code] = {
    create.Refusal.EXISTS: Code.ALREADY_EXISTS,
    create.Refusal.NOT_FOUND: Code.NOT_FOUND,
    create.Refusal.INVALID: Code.INVALID_ARGUMENT,
    create.Refusal.PRECONDITION: Code.FAILED_PRECONDITION,
    create.Refusal.UNAVAILABLE: Code.UNAVAILABLE,
    create.Refusal.EXHAUSTED: Code.RESOURCE_EXHAUSTED,
    create.Refusal.BUG: Code.INTERNAL,
}
"""CreateUpdate's status code for each refusal of the catalogue service."""


def _refused(exc: create.CreateRefused) -> ConnectError:
    if exc.refusal is create.Refusal.INVALID:
        return invalid(str(exc))
    return ConnectError(REFUSAL_CODES[exc.refusal], str(exc))


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
        created_by = current_principal().id
        try:
            created = await create.create_update(
                res.pool,
                tuf_files.repository(),
                FilesystemBlobStore(res.settings.paths.blobs),
                plan,
                update_id=update_id,
                created_by=created_by,
                insecure_registries=res.settings.insecure_registries,
                outbound_allow=res.settings.outbound_allow,
            )
        except create.CreateRefused as exc:
            raise _refused(exc) from None
        update = update_pb2.Update(
            id=update_id,
            name=plan.name,
            version=plan.version,
            description=plan.description,
            artifacts=created.artifacts,
            strategy=plan.strategy,
            metadata=plan.metadata,
            created_at=convert.timestamp(created.created_at),
            created_by=created_by,
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
        total = await update_store.count_updates(res.pool, where)
        # A token is valid only for the query (filter and ordering) that issued it.
        scope = f"updates|{order.canonical}|{request.filter}"
        after: list[Any] | None = None
        if request.page_token:
            try:
                after = res.page_tokens.decode(scope, request.page_token).get("after")
                if not isinstance(after, list):
                    raise InvalidPageToken("page_token is malformed")
                order.check_position(after)
            except (InvalidPageToken, InvalidOrderBy) as exc:
                raise invalid(str(exc)) from None
        found = await update_store.list_updates(
            res.pool, where=where, order=order, after=after, limit=size + 1
        )
        response = update_pb2.ListUpdatesResponse(
            updates=found[:size], total_count=min(total, 2**31 - 1)
        )
        if len(found) > size:
            last = update_listing.position(order, found[size - 1])
            response.next_page_token = res.page_tokens.encode(scope, {"after": last})
        return response
