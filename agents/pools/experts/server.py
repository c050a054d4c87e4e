"""The expert page's HTTP side: an aiohttp app that serves the page and its small JSON API.

Routes
------
``GET /``
    The page (plain HTML + vanilla JS from ``static/``, nothing from a CDN).
    ``/?token=...`` with the right token sets an HttpOnly cookie and redirects to ``/``,
    so the token does not stay in the address bar.
``GET /api/next?expert=<id>``
    Lease the next task to that expert: 200 with the task as JSON, 204 when nothing waits.
``POST /api/answer`` ``{"event_id", "expert", "label"}``
    Record an answer: 200, 400 (bad body or a label outside the task's label set),
    409 (task closed, not shown to this expert, or answered twice).
``GET /api/status[?expert=<id>]``
    The page's counters.

When a token is configured every ``/api/`` call must carry it (``Authorization: Bearer``,
``X-Labelloop-Token``, the cookie, or ``?token=``), else 401. The token is compared in
constant time and never logged or echoed: the access log writes paths without their query.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any, Protocol

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from agents.pools.experts.expert_queue import AnswerRefusedError, Lease
from schemas import CrowdAnswer, LabelRequest
from schemas.base import ClassLabel, Id
from streams.errors import BackendError
from streams.web import WebListener

log = logging.getLogger(__name__)

TOKEN_COOKIE = "labelloop_expert_token"
TOKEN_HEADER = "X-Labelloop-Token"
#: Largest request body the API reads (an answer is a few hundred bytes).
MAX_BODY_BYTES = 16 * 1024
_EXPERT_ID = TypeAdapter[str](Id)
_STATIC = resources.files(__package__) / "static"
_STATIC_FILES = {"page.js": "text/javascript", "page.css": "text/css"}
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' http: https: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class TaskCounters:
    """What the page shows beside the task (None where no expert was named)."""

    waiting: int
    waiting_for_you: int | None
    in_progress: int
    experts_active: int
    answered_by_you: int | None
    answers_total: int
    paused: bool


@dataclass(frozen=True)
class ShownTask:
    """A task leased to an expert, with the request it is about."""

    lease: Lease
    request: LabelRequest


class ExpertDesk(Protocol):
    """What the page needs from the pool behind it."""

    def next_task(self, expert: str) -> tuple[ShownTask | None, TaskCounters]: ...  # pragma: no cover

    def counters(self, expert: str | None) -> TaskCounters: ...  # pragma: no cover

    async def submit(self, expert: str, event_id: str, label: str) -> CrowdAnswer: ...  # pragma: no cover


class AnswerBody(BaseModel):
    """The body of ``POST /api/answer``."""

    event_id: Id
    expert: Id
    label: ClassLabel


def task_view(shown: ShownTask, counters: TaskCounters, now_s: float) -> dict[str, Any]:
    """The JSON the page renders for one task (the label set in a stable, alphabetical order).

    >>> from datetime import datetime, UTC
    >>> from schemas import PredictionEvent, PredictionInput, Suggestion
    >>> event = PredictionEvent(event_id="e1", model_name="m", model_version="1",
    ...                         created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                         input=PredictionInput(text="meow"), predicted_label="dog",
    ...                         scores={"dog": 0.6, "cat": 0.4})
    >>> request = LabelRequest(prediction=event, route="low_confidence", reason="low", priority=0.4,
    ...                        uncertainty=0.4, requested_at=event.created_at,
    ...                        suggestion=Suggestion(label="cat", confidence=0.7, model_name="online"))
    >>> counters = TaskCounters(3, 2, 1, 1, 0, 0, False)
    >>> view = task_view(ShownTask(Lease("e1", "ada", 0.0, 300.0), request), counters, now_s=10.0)
    >>> view["labels"], view["suggestion"]["label"], view["lease_expires_in_s"]
    (['cat', 'dog'], 'cat', 290.0)
    """
    request = shown.request
    prediction = request.prediction
    suggestion = request.suggestion
    return {
        "event_id": prediction.event_id,
        "task": prediction.task,
        "input": {
            "text": prediction.input.text,
            "image_url": None if prediction.input.image_url is None else str(prediction.input.image_url),
            "features": prediction.input.features,
        },
        "labels": sorted(prediction.scores),
        "prediction": {
            "label": prediction.predicted_label,
            "confidence": prediction.confidence,
            "scores": prediction.scores,
            "model_name": prediction.model_name,
            "model_version": prediction.model_version,
        },
        "suggestion": None if suggestion is None else suggestion.model_dump(mode="json"),
        "route": request.route,
        "reason": request.reason,
        "priority": request.priority,
        "lease_expires_in_s": round(max(0.0, shown.lease.expires_at_s - now_s), 3),
        "counters": asdict(counters),
    }


class _PathOnlyAccessLogger(AbstractAccessLogger):
    """Access log without query strings (a ``?token=`` must never reach a log)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %.1f ms", request.method, request.rel_url.path, response.status, time * 1000
        )


def _error(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class ExpertServer(WebListener):
    """The aiohttp application of the expert page, bound to one :class:`ExpertDesk`.

    Parameters
    ----------
    desk
        The pool whose tasks the page shows.
    token
        When set, required on every API call.
    poll_s
        How often the page asks again while nothing waits.
    monotonic
        Seconds for the lease countdown (the desk's clock).
    """

    what = "the expert page"
    port_setting = "LABELLOOP_POOLS__EXPERTS__PORT"

    def __init__(
        self,
        desk: ExpertDesk,
        *,
        token: SecretStr | None = None,
        poll_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.desk = desk
        self._token = token
        self.poll_s = poll_s
        self._monotonic = monotonic
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.app = self._build()

    def _build(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/next", self._next)
        app.router.add_post("/api/answer", self._answer)
        app.router.add_get("/api/status", self._status)
        return app

    # -- serving -------------------------------------------------------------------------

    def _runner_options(self) -> dict[str, Any]:
        # The access log writes paths without their query string: a ?token= never reaches a log.
        return {"access_log_class": _PathOnlyAccessLogger}

    # -- access --------------------------------------------------------------------------

    def _token_ok(self, presented: str | None) -> bool:
        if self._token is None:
            return True
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._token.get_secret_value().encode())

    @staticmethod
    def _presented_token(request: web.Request) -> str | None:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            return authorization.removeprefix("Bearer ").strip()
        return (
            request.headers.get(TOKEN_HEADER)
            or request.cookies.get(TOKEN_COOKIE)
            or request.query.get("token")
        )

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/") and not self._token_ok(self._presented_token(request)):
            response: web.StreamResponse = _error(401, "an access token is required (ask the operator)")
        else:
            response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    # -- the page ------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if "token" in request.query:
            # Trade the link's token for a cookie, then drop it from the address bar.
            redirect = web.HTTPSeeOther("/")
            if self._token is not None and self._token_ok(request.query["token"]):
                redirect.set_cookie(TOKEN_COOKIE, request.query["token"], httponly=True, samesite="Strict")
            raise redirect
        return web.Response(
            text=(_STATIC / "page.html").read_text("utf-8"),
            content_type="text/html",
            headers={"Content-Security-Policy": _PAGE_POLICY, "Cache-Control": "no-store"},
        )

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            text=(_STATIC / name).read_text("utf-8"), content_type=_STATIC_FILES[name], charset="utf-8"
        )

    # -- the API -------------------------------------------------------------------------

    @staticmethod
    def _expert(request: web.Request) -> str | web.Response:
        raw = request.query.get("expert")
        if raw is None:
            return _error(400, "expert is required: /api/next?expert=<your name>")
        try:
            return _EXPERT_ID.validate_python(raw)
        except ValidationError:
            return _error(400, "expert must be 1-256 characters without spaces or control characters")

    async def _next(self, request: web.Request) -> web.StreamResponse:
        expert = self._expert(request)
        if isinstance(expert, web.Response):
            return expert
        shown, counters = self.desk.next_task(expert)
        if shown is None:
            return web.Response(status=204)
        return web.json_response(task_view(shown, counters, self._monotonic()))

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json":
            return _error(415, "send the answer as application/json")
        try:
            body = AnswerBody.model_validate_json(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the answer is larger than {MAX_BODY_BYTES} bytes")
        except ValidationError as error:
            where = ", ".join(".".join(map(str, e["loc"])) or "body" for e in error.errors())
            return _error(400, f"the answer needs event_id, expert and label (invalid: {where})")
        try:
            answer = await self.desk.submit(body.expert, body.event_id, body.label)
        except AnswerRefusedError as refused:
            status = 400 if refused.kind == "unknown_label" else 409
            return _error(status, refused.message, kind=refused.kind)
        except BackendError as error:
            log.warning("expert answer for %s not reported: %s", body.event_id, error)
            return _error(503, "the answer could not be recorded; it will be asked again")
        return web.json_response(
            {
                "event_id": answer.event_id,
                "label": answer.label,
                "time_spent_s": answer.time_spent_s,
                "counters": asdict(self.desk.counters(body.expert)),
            }
        )

    async def _status(self, request: web.Request) -> web.StreamResponse:
        expert: str | None = None
        if "expert" in request.query:
            checked = self._expert(request)
            if isinstance(checked, web.Response):
                return checked
            expert = checked
        return web.json_response({"poll_s": self.poll_s, **asdict(self.desk.counters(expert))})
