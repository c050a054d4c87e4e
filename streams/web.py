"""One small aiohttp listener the worker's web surfaces share (the expert page, the operator API)."""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from streams.errors import ConfigError, NotStartedError


class WebListener:
    """Serve ``self.app`` on a host and port; a subclass names itself and the port's setting.

    A port already in use is a :class:`ConfigError` that names the setting to change.
    """

    #: What the listener is, for errors ("the expert page").
    what: ClassVar[str] = "the web server"
    #: The environment variable that moves its port.
    port_setting: ClassVar[str] = "LABELLOOP_WEB_PORT"

    app: web.Application
    _runner: web.AppRunner | None = None
    _port: int | None = None

    def _runner_options(self) -> dict[str, Any]:
        """Keyword arguments of the AppRunner (e.g. the access logger); no access log by default."""
        return {"access_log": None}

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (port 0: a free one); the port bound."""
        runner = web.AppRunner(self.app, handle_signals=False, **self._runner_options())
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            await runner.cleanup()
            raise ConfigError(
                f"{self.what} cannot listen on {host}:{port} ({error.strerror or error}); "
                f"set {self.port_setting} to a free port"
            ) from error
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self._port

    async def stop(self) -> None:
        """Stop listening (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        """The port bound by :meth:`start`."""
        if self._port is None:
            raise NotStartedError(f"{self.what} is not listening")
        return self._port
