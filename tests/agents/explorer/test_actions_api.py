"""The explorer's write routes over HTTP (aiohttp's test client): token, corrections, bulk, undo, export."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from agents.explorer.actions import RevisionOrder
from agents.explorer.actions_api import add_action_routes
from agents.explorer.query import Explorer
from agents.explorer.revise import MemoryActionLog
from agents.explorer.rows import Facts
from agents.explorer.store import IndexStore
from schemas import Label
from streams.snapshot import build_snapshot
from tests import factories

NOW = datetime(2026, 1, 3, tzinfo=UTC)
TOKEN = "op-s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _explorer(folder: Path, n: int = 12) -> Explorer:
    # A file: the routes query from a thread, and every thread has its own in-memory database.
    explorer = Explorer(IndexStore(f"sqlite:///{folder / 'explorer.sqlite3'}"))
    facts = Facts()
    for i in range(n):
        facts.add(factories.prediction(f"tx-{i:03d}"))
        facts.add(factories.human_label(event_id=f"tx-{i:03d}", human_label="ok" if i % 3 else "fraud"))
    explorer.store.apply(facts, {})
    return explorer


class Loop:
    """The part of the loop the routes talk to: the orders they submit, and the index fed with them."""

    def __init__(self, explorer: Explorer) -> None:
        self.explorer = explorer
        self.orders: list[RevisionOrder] = []
        self.log = MemoryActionLog()

    async def submit(self, orders: Sequence[RevisionOrder]) -> None:
        self.orders.extend(orders)
        # As the publisher and the indexer would: the ordered revisions land in the index.
        facts = Facts()
        for order in orders:
            facts.add(order.label)
        self.explorer.store.apply(facts, {})


Scenario = Callable[[TestClient[Any, Any], Loop], Awaitable[None]]


def run(scenario: Scenario, tmp_path: Path, *, token: str | None = TOKEN, bulk_cap: int = 5) -> Loop:
    loop = Loop(_explorer(tmp_path))
    app = web.Application()
    add_action_routes(
        app,
        loop.explorer,
        token=None if token is None else SecretStr(token),
        submit=loop.submit,
        action_log=loop.log,
        export_dir=tmp_path / "exports",
        labels_topic="labelloop.labels",
        bulk_cap=bulk_cap,
        clock=lambda: NOW,
    )

    async def main() -> None:
        async with TestClient(TestServer(app)) as client:
            await scenario(client, loop)

    asyncio.run(main())
    return loop


def test_every_action_needs_the_token_and_a_wrong_one_changes_nothing(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], loop: Loop) -> None:
        body = {"event_id": "tx-001", "label": "fraud", "reason": "r"}
        assert (await client.post("/explorer/api/corrections", json=body)).status == 401
        wrong = {"Authorization": "Bearer guess"}
        assert (
            await client.post("/explorer/api/bulk/apply", json={"label": "x"}, headers=wrong)
        ).status == 401
        assert (
            await client.post("/explorer/api/bulk/b-1/undo", headers={"X-Labelloop-Token": "no"})
        ).status == 401
        assert (await client.get("/explorer/api/export")).status == 401
        assert (await client.get("/explorer/")).status == 200  # the page itself is public

    loop = run(scenario, tmp_path)
    assert loop.orders == []
    assert not (tmp_path / "exports").exists()


def test_without_a_configured_token_the_actions_are_disabled(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], loop: Loop) -> None:
        found = await client.post("/explorer/api/corrections", json={}, headers=AUTH)
        assert found.status == 503

    assert run(scenario, tmp_path, token=None).orders == []


def test_a_correction_orders_the_next_expert_revision(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], loop: Loop) -> None:
        body = {"event_id": "tx-001", "label": "fraud", "reason": "chargeback", "operator": "ana"}
        found = await client.post("/explorer/api/corrections", json=body, headers=AUTH)
        assert found.status == 202
        revision = (await found.json())["revision"]
        assert (revision["revision"], revision["supersedes"], revision["source"]) == (2, 1, "expert")
        assert revision["provenance"]["operator"] == "ana"
        missing = await client.post(
            "/explorer/api/corrections", json={**body, "event_id": "nope"}, headers=AUTH
        )
        assert missing.status == 404

    loop = run(scenario, tmp_path)
    assert [(order.event_id, order.label.label, order.if_latest) for order in loop.orders] == [
        ("tx-001", "fraud", False)
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"event_id": "tx-001", "label": "", "reason": "r"},
        {"event_id": "tx 1", "label": "x", "reason": "r"},
        {"event_id": "tx-001", "label": "x", "reason": "r", "extra": 1},
        {"event_id": "tx-001", "label": "x", "reason": "r", "operator": "a b"},
        "not json",
        ["a list"],
    ],
)
def test_a_bad_correction_is_a_400_and_orders_nothing(tmp_path: Path, body: Any) -> None:
    async def scenario(client: TestClient[Any, Any], loop: Loop) -> None:
        data = body if isinstance(body, str) else json.dumps(body)
        found = await client.post("/explorer/api/corrections", data=data, headers=AUTH)
        assert found.status == 400
        assert "invalid" in (await found.json())["error"]

    assert run(scenario, tmp_path).orders == []


def test_bulk_preview_apply_and_undo(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], loop: Loop) -> None:
        body = {"filter": {"trusted": "ok"}, "label": "spam", "operator": "ana", "reason": "one outage"}
        preview = await (await client.post("/explorer/api/bulk/preview", json=body, headers=AUTH)).json()
        assert (preview["count"], preview["capped"], preview["cap"]) == (5, True, 5)  # 8 match, cap 5
        assert {row["new_label"] for row in preview["sample"]} == {"spam"}
        assert loop.orders == []  # a preview changes nothing
        applied = await client.post("/explorer/api/bulk/apply", json=body, headers=AUTH)
        assert applied.status == 202
        action = await applied.json()
        assert action["count"] == 5
        assert len(loop.orders) == 5
        assert {order.label.provenance.action_id for order in loop.orders} == {action["action_id"]}
        # One event moves on after the action: the undo leaves it alone.
        moved = loop.orders[0].event_id
        fix = {"event_id": moved, "label": "ham", "reason": "not spam", "operator": "bo"}
        assert (await client.post("/explorer/api/corrections", json=fix, headers=AUTH)).status == 202
        undo = await client.post(
            f"/explorer/api/bulk/{action['action_id']}/undo", json={"operator": "cy"}, headers=AUTH
        )
        assert undo.status == 202
        assert await undo.json() == {"action_id": action["action_id"], "count": 4, "left": 1}
        again = await client.post(f"/explorer/api/bulk/{action['action_id']}/undo", headers=AUTH)
        assert again.status == 409
        unknown = await client.post("/explorer/api/bulk/bulk-nope/undo", headers=AUTH)
        assert unknown.status == 404

    loop = run(scenario, tmp_path)
    restored = [order.label for order in loop.orders if order.kind == "undo"]
    assert len(restored) == 4
    assert {(label.label, label.revision, label.supersedes) for label in restored} == {("ok", 3, 2)}
    for label in restored:
        assert loop.explorer.latest(label.event_id) == label


def test_bulk_by_similarity(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], loop: Loop) -> None:
        body = {"similar_to": "tx-000", "k": 3, "label": "spam"}
        preview = await (await client.post("/explorer/api/bulk/preview", json=body, headers=AUTH)).json()
        assert preview["count"] == 3
        assert "tx-000" not in {row["event_id"] for row in preview["sample"]}

    run(scenario, tmp_path, bulk_cap=100)


@pytest.mark.parametrize(
    "body",
    [
        {"label": "spam"},  # neither a filter nor an event
        {"filter": {"per_page": 10**9}, "label": "spam"},
        {"filter": {"conf_min": "high"}, "label": "spam"},
        {"filter": {"q": "x'; DROP TABLE records; --", "nope": 1}, "label": "spam"},
        {"filter": {}, "label": "spam", "k": 0},
    ],
)
def test_a_bad_bulk_body_is_a_400_and_orders_nothing(tmp_path: Path, body: dict[str, Any]) -> None:
    async def scenario(client: TestClient[Any, Any], loop: Loop) -> None:
        for path in ("/explorer/api/bulk/preview", "/explorer/api/bulk/apply"):
            found = await client.post(path, json=body, headers=AUTH)
            assert found.status == 400, await found.text()

    loop = run(scenario, tmp_path)
    assert loop.orders == []
    assert loop.log.actions == {}


def test_sql_looking_text_is_only_text(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], loop: Loop) -> None:
        body = {"filter": {"q": "refund' OR 1=1; DROP TABLE records; --"}, "label": "spam"}
        found = await client.post("/explorer/api/bulk/preview", json=body, headers=AUTH)
        assert found.status == 200

    loop = run(scenario, tmp_path, bulk_cap=100)
    assert loop.explorer.latest("tx-001") is not None  # the table is still there


def test_export_writes_the_snapshot_labelloop_export_writes(tmp_path: Path) -> None:
    manifests: list[dict[str, Any]] = []

    async def scenario(client: TestClient[Any, Any], loop: Loop) -> None:
        found = await client.get("/explorer/api/export?trusted=fraud", headers=AUTH)
        assert found.status == 200
        manifests.append(await found.json())
        bad = await client.get("/explorer/api/export?per_page=-1", headers=AUTH)
        assert bad.status == 400

    loop = run(scenario, tmp_path)
    (manifest,) = manifests
    expected: list[Label] = [
        label for i in range(12) if (label := loop.explorer.latest(f"tx-{i:03d}")) and label.label == "fraud"
    ]
    same = build_snapshot(expected, topic="labelloop.labels")
    assert manifest["content_hash"] == same.content_hash
    assert manifest["label_count"] == 4
    folder = Path(manifest["path"])
    assert (folder / "labels.parquet").read_bytes() == same.data
    assert json.loads((folder / "filter.json").read_text()) == {"trusted": "fraud"}
