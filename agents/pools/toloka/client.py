"""Talking to Toloka: settings, the toloka-kit client, retries with backoff, deterministic ids.

toloka-kit 1.2.3 retries 408/429/5xx itself, but a 429 carrying
``Retry-After`` (or its per-minute quota payload) crashes its retryer with a
TypeError, and it waits 0, 4, 8 s whatever the server asks (see the shared
PITFALLS). So the client gets a ``retryer_factory`` whose
:class:`~toloka.client.primitives.retry.TolokaRetry` ignores ``Retry-After``
(``respect_retry_after_header=False``, ``retry_quotas=None``) and retries only
5xx and 408 briefly at the transport, and never a POST (a create retried
after a lost answer would duplicate; tasks get operation ids, projects and
pools are looked up again before each create); everything that still fails (a 429,
5xx after those retries, a timeout) comes to :class:`RetryPolicy`, which
honours ``Retry-After`` and otherwise backs off exponentially with jitter.

Every create carries a deterministic ``operation_id`` (:func:`operation_id`,
a uuid5): when a timeout hides that Toloka did create, the retry is answered
``OPERATION_ALREADY_EXISTS`` and toloka-kit returns the first operation, so
no task is ever uploaded twice.

The OAuth token is a :class:`~pydantic.SecretStr` read from the settings (env)
or a token file; it is handed to toloka-kit only, and no message of ours
contains it (errors name the call, the exception class and the HTTP status).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx
import urllib3.exceptions
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from toloka.async_client import AsyncTolokaClient
from toloka.client.exceptions import ApiError
from toloka.client.primitives.retry import TolokaRetry

from agents.pools.toloka.audience import Audience
from streams.errors import ConfigError, RetryableBackendError
from streams.secrets import resolve_secret

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The namespace of every operation id Labelloop derives (uuid5 of a stable key).
OPERATION_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e8f-9a0b-1c2d3e4f5a6b")
#: Retried by toloka-kit at the transport; 429 is ours (it must honour Retry-After).
TRANSPORT_STATUSES = (408, 500, 502, 503, 504)


class TolokaSettings(BaseModel):
    """The Toloka pool (``LABELLOOP_POOLS__TOLOKA__*``).

    The token comes from ``token`` (env ``LABELLOOP_POOLS__TOLOKA__TOKEN``) or
    from ``token_file``; it is never printed (``SecretStr``).

    >>> settings = TolokaSettings(token="secret-token")
    >>> "secret-token" in repr(settings)
    False
    >>> settings.resolve_token().get_secret_value()
    'secret-token'
    """

    model_config = ConfigDict(frozen=True)

    name: str = "toloka"
    enabled: bool = False
    #: Toloka's base URL (toloka-kit adds ``/api/v1``); tests point it at the local stand-in.
    url: str = "https://toloka.dev"
    token: SecretStr | None = None
    token_file: Path | None = None
    #: The labeling spec (YAML); None uses the packaged default.
    spec_path: Path | None = None
    #: The pool's private name prefix (the spec's fingerprint is appended).
    pool_name: str = Field(default="labelloop", min_length=1, max_length=64)
    #: Tasks per task suite (one page a Toloker submits at once), golden tasks included.
    tasks_per_suite: int = Field(default=5, ge=1, le=100)
    #: Share of each task suite that is golden (honeypots); 0 turns golden tasks off.
    golden_rate: float = Field(default=0.2, ge=0.0, lt=1.0)
    #: USD per task suite; None takes the spec's.
    reward_per_assignment: float | None = Field(default=None, ge=0.005)
    #: Bounds within which the reward moves to staff the pool: when the autoscaler (or an
    #: operator) asks for more Tolokers than the pool attracts, the reward rises a step, up to
    #: ``reward_max``; when it asks for fewer, it falls, down to ``reward_min``. None: fixed reward.
    reward_min: float | None = Field(default=None, ge=0.005)
    reward_max: float | None = Field(default=None, ge=0.005)
    #: One step of the reward, relative (0.25: +25 % up, /1.25 down).
    reward_step: float = Field(default=0.25, gt=0.0, le=2.0)
    #: Seconds between two reward changes (Tolokers need time to notice one).
    reward_cooldown_s: float = Field(default=300.0, ge=0.0)
    #: Who may work the pool (toloka-kit filters on languages and regions); None: every Toloker.
    audience: Audience | None = None
    #: Extra pools for other audiences, opened in this order once the reward is at ``reward_max``
    #: (or fixed) and still too few Tolokers work; closed, newest first, once the others staff the
    #: target without them (JSON in env: ``[{"name": "de", "languages": ["DE"]}]``). Empty: none.
    extra_pools: tuple[Audience, ...] = ()
    #: At most this many extra pools open at once (None: every one listed).
    extra_pools_max: int | None = Field(default=None, ge=0)
    #: Seconds between two openings or closings of an extra pool.
    extra_pool_cooldown_s: float = Field(default=600.0, ge=0.0)
    #: Answers per task; None takes the spec's (minimum and maximum of the dynamic overlap).
    overlap_min: int | None = Field(default=None, ge=1, le=50)
    overlap_max: int | None = Field(default=None, ge=1, le=50)
    #: Posterior of the leading class at which a task stops asking for answers.
    overlap_confidence: float = Field(default=0.9, gt=0.0, lt=1.0)
    #: An assignment whose golden answers are right less often than this is rejected.
    accept_min_golden_accuracy: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Quality control: ban a Toloker whose golden accuracy (in %) falls below this ...
    ban_golden_accuracy_below_pct: int = Field(default=60, ge=0, le=100)
    #: ... once they answered at least this many golden tasks (out of the last ``ban_golden_history``).
    ban_golden_min_answers: int = Field(default=3, ge=1)
    ban_golden_history: int = Field(default=10, ge=1)
    #: Quality control: a task suite submitted faster than this is "fast" ...
    fast_submit_s: int = Field(default=5, ge=1)
    #: ... and this many fast ones out of the last ``fast_history`` get a ban.
    fast_submits_to_ban: int = Field(default=2, ge=1)
    fast_history: int = Field(default=5, ge=1)
    ban_days: int = Field(default=1, ge=1)
    #: How long a Toloker may hold a task suite.
    assignment_max_duration_s: int = Field(default=600, ge=60)
    #: Seconds between two polls of submitted assignments (and of a running operation).
    poll_interval_s: float = Field(default=2.0, gt=0.0)
    #: One HTTP request's timeout.
    request_timeout_s: float = Field(default=10.0, gt=0.0)
    #: Retries toloka-kit makes itself on 408/5xx before a failure reaches our policy.
    transport_retries: int = Field(default=2, ge=0, le=10)
    #: Toloka calls in flight at once (httpx pools 100 connections; beyond that calls time out waiting).
    max_concurrent_requests: int = Field(default=32, ge=1, le=100)
    #: Attempts of one call by our policy (429, 5xx and timeouts that got through).
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base_s: float = Field(default=0.5, ge=0.0)
    backoff_max_s: float = Field(default=30.0, ge=0.0)
    #: The longest Retry-After we obey; a longer one is cut to this.
    retry_after_max_s: float = Field(default=60.0, ge=0.0)
    #: How long a task upload (an asynchronous operation) may run.
    operation_timeout_s: float = Field(default=300.0, gt=0.0)
    #: Toloker capacity assumed per active worker (labels per minute), for pool-status.
    labels_per_worker_min: float = Field(default=2.0, ge=0.0)
    seed: int = 7

    @model_validator(mode="after")
    def _distinct_pools(self) -> TolokaSettings:
        names = [audience.name for audience in self.extra_pools]
        if len(set(names)) != len(names):
            raise ValueError(f"extra pools need distinct names, got {names}")
        return self

    @property
    def max_extra_pools(self) -> int:
        """Extra pools that may be open at once."""
        listed = len(self.extra_pools)
        return listed if self.extra_pools_max is None else min(listed, self.extra_pools_max)

    def resolve_token(self) -> SecretStr:
        """The OAuth token from ``token_file``, else the setting (raises ConfigError without one)."""
        token = resolve_secret(self.token, self.token_file, "the Toloka token_file")
        if token is None:
            raise ConfigError("no Toloka token: set LABELLOOP_POOLS__TOLOKA__TOKEN or ..._TOKEN_FILE")
        return token


def transport_retry(settings: TolokaSettings) -> TolokaRetry:
    """The retryer toloka-kit uses per request (see the module docstring)."""
    return TolokaRetry(
        retry_quotas=None,
        total=settings.transport_retries,
        status_forcelist=list(TRANSPORT_STATUSES),
        # Not POST: a create retried after a lost answer duplicates (tasks get operation ids from us).
        allowed_methods=["HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"],
        backoff_factor=settings.backoff_base_s,
        respect_retry_after_header=False,
        raise_on_status=False,
    )


def build_client(settings: TolokaSettings) -> AsyncTolokaClient:
    """An ``AsyncTolokaClient`` for ``settings.url`` with our retryer (never blocks the loop)."""
    token = settings.resolve_token()
    return AsyncTolokaClient(
        token=token.get_secret_value(),
        url=settings.url,
        timeout=settings.request_timeout_s,
        retry_quotas=None,
        retryer_factory=lambda: transport_retry(settings),
    )


def operation_id(*parts: str) -> uuid.UUID:
    """The deterministic operation id of a create, from its stable key.

    >>> operation_id("pool-1", "event-7") == operation_id("pool-1", "event-7")
    True
    >>> operation_id("pool-1", "event-7") == operation_id("pool-1", "event-8")
    False
    """
    return uuid.uuid5(OPERATION_NAMESPACE, "\x1f".join(parts))


def status_of(error: BaseException) -> int | None:
    """The HTTP status behind a toloka-kit or httpx error, if any."""
    if isinstance(error, ApiError):
        return error.status_code
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code
    return None


def describe(error: BaseException) -> str:
    """A log-safe description: the class and the HTTP status, never headers or the request."""
    status = status_of(error)
    code = getattr(error, "code", None) if isinstance(error, ApiError) else None
    return type(error).__name__ + (f" {status}" if status else "") + (f" {code}" if code else "")


def retry_after_s(error: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` of a 429/503), if it said.

    Delta-seconds per RFC 9110; a decimal is accepted too (a stand-in can ask for 0.05 s).
    """
    response = getattr(error, "response", None)
    if not isinstance(response, httpx.Response):
        return None
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def is_retryable(error: BaseException) -> bool:
    """429, 408 and 5xx answers, timeouts and broken connections are worth another try."""
    if isinstance(error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return True
    # toloka-kit maps httpx errors to urllib3's for its retryer, and re-raises those it does not retry.
    if isinstance(error, urllib3.exceptions.TimeoutError | urllib3.exceptions.ProtocolError):
        return True
    if isinstance(error, urllib3.exceptions.MaxRetryError | urllib3.exceptions.NewConnectionError):
        return True
    status = status_of(error)
    return status is not None and (status in (408, 429) or status >= 500)


class RetryPolicy:
    """Retry a Toloka call on 429 (after ``Retry-After``), 5xx and timeouts, with jittered backoff.

    Parameters
    ----------
    settings
        Attempts, backoff base and cap, the longest Retry-After obeyed.
    rng
        Jitter (seeded in tests).
    sleep
        How to wait.

    Examples
    --------
    >>> import asyncio
    >>> policy = RetryPolicy(TolokaSettings(backoff_base_s=0.0))
    >>> calls = []
    >>> async def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise httpx.ReadTimeout("slow")
    ...     return "done"
    >>> asyncio.run(policy.call(flaky, "get pool")), len(calls), policy.retries
    ('done', 3, 2)
    """

    def __init__(
        self,
        settings: TolokaSettings,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._rng = rng or random.Random(settings.seed)
        self._sleep = sleep
        #: Retries made so far, by what failed (for tests and pool-status).
        self.retries = 0
        self.rate_limited = 0
        self._in_flight: asyncio.Semaphore | None = None

    def backoff_s(self, attempt: int) -> float:
        """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
        settings = self.settings
        ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    async def call(
        self, operation: Callable[[], Awaitable[T]], what: str, *, event_id: str | None = None
    ) -> T:
        """Run ``operation`` until it succeeds, fails for good, or runs out of attempts."""
        attempt = 0
        while True:
            attempt += 1
            if self._in_flight is None:
                self._in_flight = asyncio.Semaphore(self.settings.max_concurrent_requests)
            try:
                async with self._in_flight:  # never while backing off
                    return await operation()
            except Exception as error:
                if not is_retryable(error):
                    raise
                asked = retry_after_s(error) if status_of(error) in (429, 503) else None
                if status_of(error) == 429:
                    self.rate_limited += 1
                wait_s = (
                    min(asked, self.settings.retry_after_max_s)
                    if asked is not None
                    else self.backoff_s(attempt)
                )
                if attempt >= self.settings.max_attempts:
                    raise RetryableBackendError(
                        f"toloka {what} failed after {attempt} attempts: {describe(error)}",
                        retry_after_s=max(wait_s, self.settings.backoff_base_s),
                        event_id=event_id,
                    ) from error
                self.retries += 1
                log.info(
                    "toloka %s: %s (attempt %d), retrying in %.3fs", what, describe(error), attempt, wait_s
                )
                await self._sleep(wait_s)
