"""The explorer's write routes and its page, on the worker's web server, behind the operator token.

Routes
------
``POST /explorer/api/corrections`` ``{"event_id", "label", "reason", "operator"}``
    202 with the revision ordered (the next one after the event's latest); 404 for an event
    without a Label in the index.
``POST /explorer/api/bulk/preview`` ``{"filter": {...} | null, "similar_to": id | null, "k", "label"}``
    ``{"count", "unchanged", "capped", "cap", "sample": [...]}``: what ``apply`` would change.
``POST /explorer/api/bulk/apply`` (same body, plus ``reason`` and ``operator``)
    202 with ``{"action_id", "count", "unchanged", "capped"}``; the action goes on the action log
    first, then one conditional revision order per event.
``POST /explorer/api/bulk/{action_id}/undo`` ``{"operator", "reason"}``
    202 with ``{"count", "left"}``: events restored, and events left alone because a later
    revision than the action's came meanwhile.
``GET /explorer/api/export?<filter>``
    Writes the latest Labels of the filter's events as a snapshot (``labelloop export``'s
    Parquet file and manifest, :mod:`agents.explorer.export`) under the data dir; the manifest.
``GET /explorer/``
    The page (static HTML and JavaScript, no build step, nothing from a CDN).

Every ``/explorer/api/`` call here needs the operator token exactly as ``/operator/`` does
(``Authorization: Bearer <token>`` or ``X-Labelloop-Token``: 401 without or with a wrong one,
503 with none configured); bad bodies are a 400 that says which field, and change nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from agents.explorer.actions import (
    MAX_BULK_CAP,
    ActionError,
    BulkPlan,
    OperatorName,
    RevisionOrder,
    action_parts,
    correction,
    new_action_id,
    not_yet_seen,
    plan_bulk,
    plan_undo,
    undone,
)
from agents.explorer.export import export_filter
from agents.explorer.query import Explorer, ExplorerFilter
from agents.explorer.revise import ActionLog, Submit
from schemas import Label, utc_now
from schemas.base import ClassLabel, Id, Reason

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Labelloop-Token"
STATIC = Path(__file__).parent / "static"
#: How long an undo waits for the index to see every revision of its action.
UNDO_WAIT_S = 10.0
#: Events shown in a bulk preview.
SAMPLE_SIZE = 20
DISABLED = "the explorer's actions are disabled: set LABELLOOP_OPERATOR__TOKEN"


class CorrectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Id
    label: ClassLabel
    reason: Reason
    operator: OperatorName = "api"


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    filter: dict[str, Any] | None = None
    similar_to: Id | None = None
    #: Neighbours looked at when selecting by similarity (default: the bulk cap).
    k: int | None = Field(default=None, ge=1, le=10_000)
    label: ClassLabel
    reason: Reason = "bulk label in the record explorer"
    operator: OperatorName = "api"


class UndoBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: OperatorName = "api"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store"})


def _invalid(error: ValidationError, what: str) -> web.Response:
    where = ", ".join(".".join(map(str, e["loc"])) or "body" for e in error.errors())
    return _error(400, f"{what} (invalid: {where})")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ActionRoutes:
    """The handlers (one instance per web app); see the module docstring for the routes."""

    def __init__(
        self,
        explorer: Explorer,
        *,
        token: SecretStr | None,
        submit: Submit,
        action_log: ActionLog,
        export_dir: Path,
        labels_topic: str,
        bulk_cap: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not 1 <= bulk_cap <= MAX_BULK_CAP:
            raise ValueError(f"bulk_cap must be in [1, {MAX_BULK_CAP}], got {bulk_cap}")
        self.explorer = explorer
        self._token = token
        self._submit = submit
        self.action_log = action_log
        self.export_dir = export_dir
        self.labels_topic = labels_topic
        self.bulk_cap = bulk_cap
        self._clock = clock

    # -- access --------------------------------------------------------------------------

    def guarded(self, handler: Handler) -> Handler:
        """``handler`` behind the operator token (as :class:`agents.operator_api.OperatorApi` guards)."""

        async def guard(request: web.Request) -> web.StreamResponse:
            if self._token is None:
                log.warning(
                    "explorer refused %s %s from %s: no token configured",
                    request.method,
                    request.path,
                    request.remote,
                )
                return _error(503, DISABLED)
            authorization = request.headers.get("Authorization", "")
            presented = (
                authorization.removeprefix("Bearer ").strip()
                if authorization.startswith("Bearer ")
                else request.headers.get(TOKEN_HEADER)
            )
            if not presented or not hmac.compare_digest(
                presented.encode(), self._token.get_secret_value().encode()
            ):
                log.warning(
                    "explorer refused %s %s from %s: %s",
                    request.method,
                    request.path,
                    request.remote,
                    "no token" if not presented else "wrong token",
                )
                return _error(401, "an operator token is required (Authorization: Bearer <token>)")
            try:
                response = await handler(request)
            except ActionError as error:
                return _error(error.status, error.message)
            response.headers["Cache-Control"] = "no-store"
            return response

        return guard

    @staticmethod
    async def _body(request: web.Request, model: type[BaseModel]) -> BaseModel | web.Response:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "the body is too large")
        try:
            return model.model_validate_json(raw if raw.strip() else b"{}")
        except ValidationError as error:
            return _invalid(error, "the body must be a JSON object of the action's fields")

    # -- corrections ---------------------------------------------------------------------

    async def correct(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, CorrectionBody)
        if isinstance(body, web.Response):
            return body
        assert isinstance(body, CorrectionBody)
        latest = await asyncio.to_thread(self.explorer.latest, body.event_id)
        if latest is None:
            return _error(404, f"no label of event {body.event_id!r} in the index")
        revised = correction(
            latest, label=body.label, operator=body.operator, reason=body.reason, now=self._clock()
        )
        await self._submit([RevisionOrder(label=revised, kind="correction")])
        log.info(
            "explorer: %s corrected %s to %r (%s)", body.operator, body.event_id, body.label, body.reason
        )
        return web.json_response({"revision": revised.model_dump(mode="json", exclude_none=True)}, status=202)

    # -- bulk ------------------------------------------------------------------------------

    def _selection(self, body: BulkBody) -> list[Label]:
        try:
            f = ExplorerFilter.model_validate(body.filter) if body.filter is not None else None
        except ValidationError as error:
            where = ", ".join(".".join(map(str, e["loc"])) for e in error.errors())
            raise ActionError(f"the filter is not valid (invalid: {where})") from error
        if f is None and body.similar_to is None:
            raise ActionError("a bulk action needs a filter or an event to be similar to")
        # One more than the cap: that is how the plan learns the selection was capped.
        k = body.k if body.k is not None else self.bulk_cap
        return self.explorer.select(f, similar_to=body.similar_to, k=k, cap=self.bulk_cap + 1)

    async def _plan(self, request: web.Request) -> tuple[BulkBody, list[Label], BulkPlan] | web.Response:
        body = await self._body(request, BulkBody)
        if isinstance(body, web.Response):
            return body
        assert isinstance(body, BulkBody)
        selected = await asyncio.to_thread(self._selection, body)
        now = self._clock()
        plan = plan_bulk(
            selected,
            label=body.label,
            operator=body.operator,
            reason=body.reason,
            now=now,
            cap=self.bulk_cap,
            action_id=new_action_id(now),
        )
        return body, selected, plan

    async def preview(self, request: web.Request) -> web.StreamResponse:
        planned = await self._plan(request)
        if isinstance(planned, web.Response):
            return planned
        _, selected, plan = planned
        current = {label.event_id: label for label in selected}
        sample = [
            {
                "event_id": order.event_id,
                "task": order.label.task,
                "label": current[order.event_id].label,
                "source": current[order.event_id].source,
                "revision": current[order.event_id].revision,
                "new_label": order.label.label,
            }
            for order in plan.orders[:SAMPLE_SIZE]
        ]
        return web.json_response(
            {
                "count": plan.count,
                "unchanged": plan.unchanged,
                "capped": plan.capped,
                "cap": self.bulk_cap,
                "sample": sample,
            }
        )

    async def apply(self, request: web.Request) -> web.StreamResponse:
        planned = await self._plan(request)
        if isinstance(planned, web.Response):
            return planned
        body, selected, plan = planned
        if plan.count:
            # The log first: an action whose orders went out is always undoable.
            parts = action_parts(
                plan,
                selected,
                operator=body.operator,
                reason=body.reason,
                label=body.label,
                now=self._clock(),
            )
            await self.action_log.append(parts)
            await self._submit(plan.orders)
        log.info(
            "explorer: %s bulk-labeled %d events %r (%s)",
            body.operator,
            plan.count,
            body.label,
            plan.action_id,
        )
        return web.json_response(
            {
                "action_id": plan.action_id,
                "count": plan.count,
                "unchanged": plan.unchanged,
                "capped": plan.capped,
            },
            status=202,
        )

    async def undo(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, UndoBody)
        if isinstance(body, web.Response):
            return body
        assert isinstance(body, UndoBody)
        action_id = request.match_info["action_id"]
        parts = await self.action_log.find(action_id)
        if not parts:
            return _error(404, f"no bulk action {action_id!r}")
        event_ids = [prior.event_id for part in parts for prior in part.events]
        latest = await asyncio.to_thread(self.explorer.latest_many, event_ids)
        # Right after an apply, the index may not have read every revision of it yet: wait a little.
        deadline = time.monotonic() + UNDO_WAIT_S
        while not_yet_seen(parts, latest) and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            latest = await asyncio.to_thread(self.explorer.latest_many, event_ids)
        now = self._clock()
        orders, left = plan_undo(parts, latest, operator=body.operator, now=now)
        await self.action_log.append(undone(parts, operator=body.operator, now=now))
        await self._submit(orders)
        log.info("explorer: %s undid %s (%d restored, %d left)", body.operator, action_id, len(orders), left)
        return web.json_response({"action_id": action_id, "count": len(orders), "left": left}, status=202)

    # -- export ----------------------------------------------------------------------------

    async def export(self, request: web.Request) -> web.StreamResponse:
        try:
            f = ExplorerFilter.from_query(request.query)
        except ValidationError as error:
            return _invalid(error, "the filter is not valid")
        manifest_path, snapshot = await asyncio.to_thread(
            export_filter, self.explorer, f, self.export_dir, topic=self.labels_topic
        )
        log.info("explorer: exported %d labels as %s", len(snapshot.rows), snapshot.snapshot_id)
        return web.json_response({**snapshot.manifest, "path": str(manifest_path.parent)})


async def _page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "explorer.html", headers={"Cache-Control": "no-cache"})


def add_action_routes(
    app: web.Application,
    explorer: Explorer,
    *,
    token: SecretStr | None,
    submit: Submit,
    action_log: ActionLog,
    export_dir: Path,
    labels_topic: str,
    bulk_cap: int,
    clock: Callable[[], datetime] = utc_now,
) -> ActionRoutes:
    """Add the explorer's POST routes, its export and its page (``/explorer/``) to ``app``."""
    routes = ActionRoutes(
        explorer,
        token=token,
        submit=submit,
        action_log=action_log,
        export_dir=export_dir,
        labels_topic=labels_topic,
        bulk_cap=bulk_cap,
        clock=clock,
    )
    app.router.add_post("/explorer/api/corrections", routes.guarded(routes.correct))
    app.router.add_post("/explorer/api/bulk/preview", routes.guarded(routes.preview))
    app.router.add_post("/explorer/api/bulk/apply", routes.guarded(routes.apply))
    app.router.add_post("/explorer/api/bulk/{action_id}/undo", routes.guarded(routes.undo))
    app.router.add_get("/explorer/api/export", routes.guarded(routes.export))
    app.router.add_get("/explorer/", _page)
    app.router.add_static("/explorer/static/", STATIC, show_index=False)
    return routes
