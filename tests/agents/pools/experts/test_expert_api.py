"""The expert page's HTTP API (aiohttp TestServer/TestClient) and the ExpertPool behind it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from agents.pools.base import LabelingBackend
from agents.pools.experts import ExpertPool, ExpertPoolSettings, ExpertServer
from schemas import CrowdAnswer, LabelRequest, PoolStatus
from streams.errors import ConfigError
from tests.agents.pools.experts.expert_builders import ManualClock, expert_request

T = TypeVar("T")
TOKEN = "correct-horse-battery"
ANSWERED_AT = datetime(2026, 3, 1, tzinfo=UTC)
Scenario = Callable[[TestClient[Any, Any], ExpertPool, ManualClock], Awaitable[T]]


def make_pool(clock: ManualClock, **changes: object) -> ExpertPool:
    settings = ExpertPoolSettings.model_validate({"lease_s": 60.0, "port": 0} | changes)
    return ExpertPool(settings, clock=lambda: ANSWERED_AT, monotonic=clock)


def run_api(scenario: Scenario[T], **changes: object) -> T:
    """Run ``scenario`` against a pool's app on a TestServer."""
    clock = ManualClock()
    pool = make_pool(clock, **changes)

    async def main() -> T:
        server = ExpertServer(pool, token=pool.settings.token, monotonic=clock)
        async with TestClient(TestServer(server.app)) as client:
            return await scenario(client, pool, clock)

    return asyncio.run(main())


class Answers:
    """An AnswerSink that keeps what it is given."""

    def __init__(self) -> None:
        self.received: list[CrowdAnswer] = []

    async def __call__(self, answer: CrowdAnswer) -> None:
        self.received.append(answer)


async def queue(pool: ExpertPool, sink: Answers, *requests: LabelRequest) -> list[asyncio.Task[None]]:
    """Start ``label`` for each request and let them reach the queue."""
    tasks = [asyncio.create_task(pool.label(request, sink)) for request in requests]
    await asyncio.sleep(0)
    return tasks


async def answer(
    client: TestClient[Any, Any], event_id: str, expert: str, label: str
) -> aiohttp.ClientResponse:
    return await client.post("/api/answer", json={"event_id": event_id, "expert": expert, "label": label})


def test_the_pool_is_a_labeling_backend_of_the_expert_tier() -> None:
    pool = make_pool(ManualClock())

    assert isinstance(pool, LabelingBackend)
    assert (pool.name, pool.tier) == ("experts", "expert")


def test_next_shows_the_highest_priority_task_with_its_input_prediction_and_suggestion() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        labeling = await queue(
            pool,
            Answers(),
            expert_request("low", priority=0.1),
            expert_request(
                "high",
                priority=0.9,
                text="charge back <b>now</b>",
                features={"amount": 12.5},
                image_url="https://img.example/1.png",
            ),
        )
        response = await client.get("/api/next", params={"expert": "ada"})
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        view = await response.json()
        assert view["event_id"] == "high"
        assert view["input"] == {
            "text": "charge back <b>now</b>",
            "features": {"amount": 12.5},
            "image_url": "https://img.example/1.png",
        }
        assert view["labels"] == ["fraud", "ok", "spam"]
        assert view["prediction"]["label"] == "ok"
        assert view["prediction"]["confidence"] == 0.5
        assert view["suggestion"] == {"label": "fraud", "confidence": 0.7, "model_name": "online"}
        assert (view["route"], view["priority"]) == ("low_confidence", 0.9)
        assert view["reason"] == "confidence 0.50 < 0.80"
        assert view["lease_expires_in_s"] == 60.0
        assert view["counters"]["waiting"] == 1
        for task in labeling:
            task.cancel()

    run_api(scenario)


def test_204_when_nothing_waits_and_the_expert_must_be_named() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        assert (await client.get("/api/next", params={"expert": "ada"})).status == 204
        missing = await client.get("/api/next")
        assert missing.status == 400
        assert "expert is required" in (await missing.json())["error"]
        spaced = await client.get("/api/next", params={"expert": "Ada Lovelace"})
        assert spaced.status == 400
        assert "without spaces" in (await spaced.json())["error"]

    run_api(scenario)


def test_answers_come_out_as_expert_crowd_answers_and_label_returns_after_overlap() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        sink = Answers()
        (labeling,) = await queue(pool, sink, expert_request("tx-1", overlap=2))
        for expert, label, spent_s in (("ada", "fraud", 12.0), ("bob", "spam", 3.0)):
            assert (await client.get("/api/next", params={"expert": expert})).status == 200
            clock.advance(spent_s)
            response = await answer(client, "tx-1", expert, label)
            assert response.status == 200
            assert (await response.json())["time_spent_s"] == spent_s
        await asyncio.wait_for(labeling, timeout=1.0)
        assert [(a.event_id, a.task_id, a.worker_id, a.label) for a in sink.received] == [
            ("tx-1", "tx-1/experts", "ada", "fraud"),
            ("tx-1", "tx-1/experts", "bob", "spam"),
        ]
        assert {(a.pool, a.tier, a.overlap, a.answered_at) for a in sink.received} == {
            ("experts", "expert", 2, ANSWERED_AT)
        }
        assert [a.time_spent_s for a in sink.received] == [12.0, 3.0]

    run_api(scenario)


def test_the_default_overlap_is_one_expert() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        sink = Answers()
        (labeling,) = await queue(pool, sink, expert_request("tx-1"))
        await client.get("/api/next", params={"expert": "ada"})
        assert (await answer(client, "tx-1", "ada", "ok")).status == 200
        await asyncio.wait_for(labeling, timeout=1.0)
        assert [a.overlap for a in sink.received] == [1]

    run_api(scenario)


def test_a_label_outside_the_label_set_is_a_400_that_says_which_labels_exist() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        sink = Answers()
        (labeling,) = await queue(pool, sink, expert_request("tx-1"))
        await client.get("/api/next", params={"expert": "ada"})

        bad = await answer(client, "tx-1", "ada", "cat")
        assert bad.status == 400
        body = await bad.json()
        assert body["kind"] == "unknown_label"
        assert body["error"] == "label 'cat' is not one of ['fraud', 'ok', 'spam']"
        incomplete = await client.post("/api/answer", json={"event_id": "tx-1", "expert": "ada"})
        assert incomplete.status == 400
        assert "label" in (await incomplete.json())["error"]
        form = await client.post("/api/answer", data={"event_id": "tx-1", "expert": "ada", "label": "ok"})
        assert form.status == 415
        assert sink.received == []
        assert (await answer(client, "tx-1", "ada", "ok")).status == 200  # the lease survived
        await asyncio.wait_for(labeling, timeout=1.0)

    run_api(scenario)


def test_tasks_come_in_priority_order_first_come_first_served_among_equals() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> list[str]:
        sink = Answers()
        labeling = await queue(
            pool,
            sink,
            *(expert_request(f"e{i}", priority=p) for i, p in enumerate((0.3, 0.8, 0.3, 0.95, 0.1))),
        )
        shown = []
        while (response := await client.get("/api/next", params={"expert": "ada"})).status == 200:
            event_id = (await response.json())["event_id"]
            shown.append(event_id)
            assert (await answer(client, event_id, "ok", "fraud")).status == 409  # "ok" was not shown it
            assert (await answer(client, event_id, "ada", "fraud")).status == 200
        await asyncio.wait_for(asyncio.gather(*labeling), timeout=1.0)
        assert [a.event_id for a in sink.received] == shown
        return shown

    assert run_api(scenario) == ["e3", "e1", "e0", "e2", "e4"]


def test_an_expired_lease_is_leased_again_and_a_late_answer_still_counts_once() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        sink = Answers()
        (labeling,) = await queue(pool, sink, expert_request("tx-1"))
        assert (await (await client.get("/api/next", params={"expert": "ada"})).json())["event_id"] == "tx-1"
        assert (await client.get("/api/next", params={"expert": "bob"})).status == 204  # ada holds it

        clock.advance(61.0)  # ada's lease ran out: the task is back in the queue
        assert pool.status(ANSWERED_AT).backlog == 1
        assert (await (await client.get("/api/next", params={"expert": "bob"})).json())["event_id"] == "tx-1"
        assert (await client.get("/api/next", params={"expert": "ada"})).status == 204  # never twice

        clock.advance(5.0)
        late = await answer(client, "tx-1", "ada", "fraud")
        assert late.status == 200
        assert (await late.json())["time_spent_s"] == 66.0
        closed = await answer(client, "tx-1", "bob", "ok")
        assert closed.status == 409
        assert (await closed.json())["kind"] == "closed"
        await asyncio.wait_for(labeling, timeout=1.0)
        assert [(a.worker_id, a.label) for a in sink.received] == [("ada", "fraud")]

    run_api(scenario)


def test_status_counts_what_waits_and_what_each_expert_did() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        labeling = await queue(pool, Answers(), expert_request("a", priority=0.9), expert_request("b"))
        await client.get("/api/next", params={"expert": "ada"})
        await answer(client, "a", "ada", "ok")
        await client.get("/api/next", params={"expert": "ada"})
        counters = await (await client.get("/api/status", params={"expert": "ada"})).json()
        assert counters == {
            "poll_s": 2.0,
            "waiting": 0,
            "waiting_for_you": 0,
            "in_progress": 1,
            "experts_active": 1,
            "answered_by_you": 1,
            "answers_total": 1,
            "paused": False,
        }
        anonymous = await (await client.get("/api/status")).json()
        assert anonymous["answered_by_you"] is None
        for task in labeling:
            task.cancel()

    run_api(scenario)


def test_without_the_token_every_api_call_is_401_and_the_token_is_never_echoed() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        labeling = await queue(pool, Answers(), expert_request("tx-1"))
        calls = [
            ("GET", "/api/next?expert=ada"),
            ("GET", "/api/status"),
            ("POST", "/api/answer"),
        ]
        for method, path in calls:
            for headers in ({}, {"X-Labelloop-Token": "wrong"}, {"Authorization": "Bearer wrong"}):
                response = await client.request(method, path, headers=headers, json={})
                assert response.status == 401, (method, path, headers)
                assert "token" in (await response.json())["error"]
            wrong_query = await client.request(method, path + ("&" if "?" in path else "?") + "token=wrong")
            assert wrong_query.status == 401
            assert "wrong" not in await wrong_query.text()
        assert pool.queue.in_progress(clock()) == 0  # nothing was leased without the token

        by_header = await client.get("/api/status", headers={"X-Labelloop-Token": TOKEN})
        assert by_header.status == 200
        assert TOKEN not in await by_header.text()
        by_bearer = await client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert by_bearer.status == 200
        assert (await client.get("/api/next", params={"expert": "ada", "token": TOKEN})).status == 200

        page = await client.get("/")  # the page itself holds no data
        assert page.status == 200
        assert TOKEN not in await page.text()
        link = await client.get("/", params={"token": TOKEN}, allow_redirects=False)
        assert link.status == 303
        assert link.headers["Location"] == "/"
        cookie = link.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        # the client's cookie jar now carries it
        assert (await client.get("/api/status")).status == 200
        for task in labeling:
            task.cancel()

    run_api(scenario, token=TOKEN)


def test_a_wrong_token_in_the_link_sets_no_cookie() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        link = await client.get("/", params={"token": "guess"}, allow_redirects=False)
        assert link.status == 303
        assert "Set-Cookie" not in link.headers
        assert (await client.get("/api/status")).status == 401

    run_api(scenario, token=TOKEN)


def test_the_page_and_its_assets_are_served_with_a_strict_content_policy() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        page = await client.get("/")
        assert page.content_type == "text/html"
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        html = await page.text()
        assert '<script src="/static/page.js"' in html
        assert "http" not in html.replace('content="no-referrer"', "")  # nothing from a CDN
        script = await client.get("/static/page.js")
        assert script.content_type == "text/javascript"
        source = await script.text()
        assert "textContent" in source
        assert "innerHTML" not in source
        assert (await client.get("/static/page.css")).content_type == "text/css"
        assert (await client.get("/static/../server.py")).status == 404
        assert (await client.get("/static/secrets.txt")).status == 404

    run_api(scenario)


def test_paused_hands_out_nothing_and_resume_hands_out_again() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        sink = Answers()
        (labeling,) = await queue(pool, sink, expert_request("tx-1"))
        pool.pause()
        assert (await client.get("/api/next", params={"expert": "ada"})).status == 204
        assert (await (await client.get("/api/status")).json())["paused"] is True
        assert not pool.status(ANSWERED_AT).active
        pool.resume()
        assert (await client.get("/api/next", params={"expert": "ada"})).status == 200
        await answer(client, "tx-1", "ada", "ok")
        await asyncio.wait_for(labeling, timeout=1.0)

    run_api(scenario)


def test_a_cancelled_request_leaves_the_queue_and_its_answer_is_refused() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        sink = Answers()
        (labeling,) = await queue(pool, sink, expert_request("tx-1"))
        await client.get("/api/next", params={"expert": "ada"})
        labeling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await labeling
        assert "tx-1" not in pool.queue
        assert (await answer(client, "tx-1", "ada", "ok")).status == 409
        assert sink.received == []

    run_api(scenario)


def test_the_same_event_asked_twice_is_one_task_and_both_callers_return() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        first, second = Answers(), Answers()
        labeling = await queue(pool, first, expert_request("tx-1"))
        labeling += await queue(pool, second, expert_request("tx-1"))
        assert pool.status(ANSWERED_AT).backlog == 1
        await client.get("/api/next", params={"expert": "ada"})
        await answer(client, "tx-1", "ada", "ok")
        await asyncio.wait_for(asyncio.gather(*labeling), timeout=1.0)
        assert (len(first.received), len(second.received)) == (0, 1)  # reported once, to the newest sink

    run_api(scenario)


def test_a_failing_sink_fails_the_request_and_the_page_hears_503() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> None:
        async def broken(answer: CrowdAnswer) -> None:
            raise ConnectionError("broker gone")

        labeling = asyncio.create_task(pool.label(expert_request("tx-1"), broken))
        await asyncio.sleep(0)
        await client.get("/api/next", params={"expert": "ada"})
        response = await answer(client, "tx-1", "ada", "ok")
        assert response.status == 503
        with pytest.raises(ConnectionError):
            await labeling
        assert "tx-1" not in pool.queue

    run_api(scenario)


def test_status_reports_experts_backlog_rates_and_capacity_at_the_measured_pace() -> None:
    async def scenario(client: TestClient[Any, Any], pool: ExpertPool, clock: ManualClock) -> PoolStatus:
        before = pool.status(ANSWERED_AT)
        assert (before.workers, before.capacity_per_min) == (0, 0.0)
        labeling = await queue(pool, Answers(), *(expert_request(f"e{i}") for i in range(4)))
        for expert in ("ada", "bob"):
            await client.get("/api/next", params={"expert": expert})
            clock.advance(20.0)  # 20 s an answer: 3 a minute each
            shown = pool.queue.lease(expert, clock())
            assert shown is not None
            await answer(client, shown.event_id, expert, "ok")
        await client.get("/api/next", params={"expert": "ada"})
        status = pool.status(ANSWERED_AT)
        for task in labeling:
            task.cancel()
        return status

    status = run_api(scenario)
    assert (status.pool, status.backend, status.tier) == ("experts", "experts", "expert")
    assert status.workers == 2
    assert status.backlog == 1
    assert status.in_progress == 1
    assert status.answers_total == 2
    assert status.tasks_done == 2
    assert status.capacity_per_min == pytest.approx(6.0)
    assert status.arrival_rate_per_min == pytest.approx(4 * 60.0 / 40.0)  # 4 over the 40 s since
    assert status.overlap == 1
    assert status.reported_at == ANSWERED_AT


def test_resize_records_the_staffing_asked_for_and_reports_what_arrivals_need(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    pool = make_pool(clock, default_service_s=60.0)

    async def main() -> None:
        labeling = await queue(pool, Answers(), *(expert_request(f"e{i}") for i in range(30)))
        clock.advance(10.0)  # 30 requests in 10 s: 180 a minute, one expert answers 1 a minute
        with caplog.at_level(logging.INFO, logger="agents.pools.experts.backend"):
            pool.resize(5)
        for task in labeling:
            task.cancel()

    asyncio.run(main())
    staffing = pool.staffing()
    assert (staffing.requested, staffing.active, staffing.needed) == (5, 0, 180)
    assert "5 asked for, 0 active, 180 needed" in caplog.text
    assert pool.status(ANSWERED_AT).workers == 0  # asking hires nobody


def test_start_serves_on_a_free_port_and_never_logs_the_token(caplog: pytest.LogCaptureFixture) -> None:
    pool = ExpertPool(ExpertPoolSettings(port=0, token=SecretStr(TOKEN)))

    async def main() -> tuple[int, int]:
        await pool.start()
        await pool.start()  # idempotent
        try:
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{pool.port}"
                async with session.get(f"{base}/api/status?token={TOKEN}") as allowed:
                    allowed_status = allowed.status
                async with session.get(f"{base}/api/status?token=nope") as refused:
                    refused_status = refused.status
        finally:
            await pool.stop()
        return allowed_status, refused_status

    with caplog.at_level(logging.DEBUG):
        assert asyncio.run(main()) == (200, 401)
    assert "/api/status" in caplog.text  # the access log ran
    assert TOKEN not in caplog.text
    assert "nope" not in caplog.text
    assert TOKEN not in repr(pool.settings)
    with pytest.raises(RuntimeError, match="not running"):
        _ = pool.port


def test_a_port_in_use_is_a_config_error_that_names_the_setting() -> None:
    async def main() -> str:
        first = ExpertPool(ExpertPoolSettings(port=0))
        await first.start()
        try:
            second = ExpertPool(ExpertPoolSettings(port=first.port))
            with pytest.raises(ConfigError) as error:
                await second.start()
            return str(error.value)
        finally:
            await first.stop()

    message = asyncio.run(main())
    assert "cannot listen on 127.0.0.1:" in message
    assert "LABELLOOP_POOLS__EXPERTS__PORT" in message
