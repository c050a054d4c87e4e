"""The operator API on a worker: the actions of ``labelloop pools`` over HTTP, behind an operator token.

Routes
------
``GET /operator/pools``
    The status table as JSON: ``{"pools": [row, ...]}`` (see ``streams.operator.StatusRow``).
``POST /operator/pools/{name}/scale`` ``{"workers": 7}``
``POST /operator/pools/{name}/pause`` · ``/resume`` · ``/release``
``POST /operator/pools/{name}/set`` ``{"min_workers", "max_workers", "sla_p95_s", "budget_per_hour"}``
    (any of them). Every POST may add ``"reason"`` and ``"operator"`` (the name in
    ``issued_by="operator:<name>"``, default ``api``). 202 with the command sent to
    ``commands``; 400 with the reason when the command is not valid.

Every ``/operator/`` call must carry the token (``Authorization: Bearer <token>`` or
``X-Labelloop-Token``); without it, or with a wrong one, 401 and a WARNING log (method, path,
peer; never the token). With no token configured the API refuses every such call with 503: it
is never open.

The same listener is the worker's web server: ``/metrics`` and the dashboard
(:mod:`agents.dashboard.server`) are served beside the API and need no token.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError

from schemas import PoolCommand, utc_now
from schemas.base import Reason
from streams.errors import ConfigError
from streams.operator import CommandSender, OperatorCommandError, PoolBoard, build_command
from streams.secrets import resolve_secret
from streams.web import WebListener

if TYPE_CHECKING:
    from agents.loop import Loop

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Labelloop-Token"
#: Largest request body read (a command is a few hundred bytes).
MAX_BODY_BYTES = 8 * 1024
DISABLED = "operator API disabled: set LABELLOOP_OPERATOR__TOKEN"


class OperatorApiSettings(BaseModel):
    """Where the operator API listens and its token (``LABELLOOP_OPERATOR__*``).

    Examples
    --------
    >>> settings = OperatorApiSettings(token="s3cret")
    >>> settings.host, settings.port, settings.secret
    ('127.0.0.1', 6067, SecretStr('**********'))
    """

    # hide_input_in_errors: a validation error must never repeat the token it was given.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    enabled: bool = True
    #: Loopback by default: put a TLS proxy in front to reach it from elsewhere.
    host: str = "127.0.0.1"
    #: 0 picks a free port (tests; read it back from ``OperatorApi.port``).
    port: int = Field(default=6067, ge=0, le=65_535)
    token: SecretStr | None = None
    #: A file holding the token (wins over ``token``), e.g. a mounted secret.
    token_file: Path | None = None

    @property
    def secret(self) -> SecretStr | None:
        """The token, from the file or the setting; None when neither is set (the API then refuses all)."""
        return resolve_secret(self.token, self.token_file, "operator token_file")


class ActionBody(BaseModel):
    """The JSON body of a POST (every field optional; which ones an action needs is checked after)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason = "via the operator API"
    operator: Annotated[str, StringConstraints(min_length=1, max_length=55, pattern=r"^[^\s\x00-\x1f]+$")] = (
        "api"
    )
    workers: int | None = None
    min_workers: int | None = None
    max_workers: int | None = None
    sla_p95_s: float | None = None
    budget_per_hour: float | None = None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store"})


class OperatorApi(WebListener):
    """The aiohttp application of the operator API.

    Parameters
    ----------
    send
        Puts a command on ``commands`` (in a worker: the app's producer).
    board
        The pools' latest status and commands, kept up to date by the caller.
    token
        Required on every call; None refuses every call (503).
    clock
        The time commands are issued at.
    """

    what = "the operator API"
    port_setting = "LABELLOOP_OPERATOR__PORT"

    def __init__(
        self,
        send: CommandSender,
        board: PoolBoard,
        *,
        token: SecretStr | None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._send = send
        self.board = board
        self._token = token
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY_BYTES)
        self.app.router.add_get("/operator/pools", self._pools)
        self.app.router.add_post("/operator/pools/{name}/{action}", self._action)

    # -- access --------------------------------------------------------------------------

    @staticmethod
    def _presented(request: web.Request) -> str | None:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            return authorization.removeprefix("Bearer ").strip()
        return request.headers.get(TOKEN_HEADER)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/operator/"):
            return await handler(request)  # /metrics and the dashboard: read-only, no token
        if self._token is None:
            log.warning(
                "operator API refused %s %s from %s: no token configured",
                request.method,
                request.path,
                request.remote,
            )
            return _error(503, DISABLED)
        presented = self._presented(request)
        if not presented or not hmac.compare_digest(
            presented.encode(), self._token.get_secret_value().encode()
        ):
            log.warning(
                "operator API refused %s %s from %s: %s",
                request.method,
                request.path,
                request.remote,
                "no token" if not presented else "wrong token",
            )
            return _error(401, "an operator token is required (Authorization: Bearer <token>)")
        response = await handler(request)
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- routes --------------------------------------------------------------------------

    async def _pools(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"pools": self.board.as_json(self._clock())}, dumps=_dumps)

    async def _action(self, request: web.Request) -> web.StreamResponse:
        pool, action = request.match_info["name"], request.match_info["action"]
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            body = ActionBody.model_validate_json(raw) if raw.strip() else ActionBody()
        except ValidationError as error:
            where = ", ".join(".".join(map(str, e["loc"])) or "body" for e in error.errors())
            return _error(400, f"the body must be a JSON object of the command's fields (invalid: {where})")
        try:
            command = build_command(
                pool,
                action,
                operator=body.operator,
                reason=body.reason,
                now=self._clock(),
                workers=body.workers,
                min_workers=body.min_workers,
                max_workers=body.max_workers,
                sla_p95_s=body.sla_p95_s,
                budget_per_hour=body.budget_per_hour,
            )
        except OperatorCommandError as error:
            return _error(400, error.message)
        await self._send(command)
        log.info("operator API: %s %s by %s (%s)", action, pool, command.issued_by, command.reason)
        return web.json_response({"sent": command.model_dump(mode="json", exclude_none=True)}, status=202)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


def register(loop: Loop, settings: OperatorApiSettings) -> OperatorApi | None:
    """Serve the operator API from ``loop.app``: commands go to ``commands``, the board follows both topics.

    A worker whose port is taken (another worker on the same host) logs the error and runs
    without the API: the CLI reaches the same topics.
    """
    if not settings.enabled:
        return None
    from streams.broadcast import follow
    from streams.runtime import Record

    names = loop.names
    commands = loop.output(names.commands)

    async def send(command: PoolCommand) -> None:
        await commands.send(command.pool, command)

    board = PoolBoard()
    api = OperatorApi(send, board, token=settings.secret, clock=loop.clock)
    if settings.secret is None:
        log.warning("%s; every operator API call is refused", DISABLED)

    async def on_record(record: Record) -> None:
        board.observe(record, names.pool_status)

    @loop.app.task  # type: ignore[untyped-decorator]
    async def serve_operator_api() -> None:
        try:
            port = await api.start(settings.host, settings.port)
        except ConfigError as error:
            log.error("%s", error)
            return
        log.info(
            "worker web server on http://%s:%d/ (/dashboard, /metrics, operator API /operator/pools)",
            settings.host,
            port,
        )
        await follow(loop.settings, [names.pool_status, names.commands], on_record)

    async def stop_operator_api(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await api.stop()

    loop.app.on_before_shutdown.connect(stop_operator_api)
    return api
