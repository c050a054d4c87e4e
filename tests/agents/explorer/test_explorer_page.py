"""The explorer page in a real headless Chromium: search, a record's history, a correction, bulk, export.

The page is served as a worker serves it (the GET routes of ``api.py`` and the routes of
``actions_api.py`` on one aiohttp app) over an index in a SQLite file; the orders the page
causes are folded into that index at once, as the worker's publisher and indexer would.
Screenshots of the search page, a record page and a bulk preview land in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from agents.explorer.actions import RevisionOrder
from agents.explorer.actions_api import add_action_routes
from agents.explorer.api import ExplorerApi
from agents.explorer.query import Explorer
from agents.explorer.revise import MemoryActionLog
from agents.explorer.rows import Facts
from agents.explorer.store import IndexStore
from schemas import CrowdAnswer, LabelRequest, PredictionEvent, PredictionInput, RoutingTrace
from tests import factories
from tests.browser import chromium, save_screenshot

TOKEN = "page-s3cret"
WAIT_S = 10.0
START = datetime(2026, 1, 1, tzinfo=UTC)
HOSTILE = '<img src=x onerror="window.__pwned = 1"> refund <b>now</b>'
TEXTS = [
    "Please refund order {n}, it never arrived",
    "The printer on floor {n} is offline again",
    "Card used twice in one hour, order {n}",
]


def _event(n: int, text: str) -> PredictionEvent:
    predicted = ("billing", "hardware", "fraud")[n % 3]
    return PredictionEvent(
        event_id=f"ev-{n:03d}",
        model_name="support-model",
        model_version="2",
        task="support",
        created_at=START + timedelta(minutes=n),
        input=PredictionInput(text=text),
        predicted_label=predicted,
        scores={predicted: 0.7, "other": 0.3},
    )


class Served:
    """The explorer's web app on a free port, on an event loop of its own thread."""

    def __init__(self, folder: Path) -> None:
        self.explorer = Explorer(IndexStore(f"sqlite:///{folder / 'explorer.sqlite3'}"))
        facts = Facts()
        for n in range(30):
            event = _event(n, HOSTILE if n == 29 else TEXTS[n % 3].format(n=n))
            facts.add(event)
            facts.add(
                factories.human_label(
                    "low_confidence",
                    event_id=event.event_id,
                    task="support",
                    human_label=event.predicted_label if n % 4 else "other",
                    model_label=event.predicted_label,
                    decided_at=event.created_at + timedelta(seconds=30),
                )
            )
        # ev-001's request (with its routing trace) and two crowd answers.
        first = _event(1, TEXTS[1].format(n=1))
        trace = RoutingTrace(measure="max_probability", uncertainty=0.3, threshold=0.8, policy_version=4)
        facts.add(
            LabelRequest(
                prediction=first,
                route="low_confidence",
                reason="confidence 0.70 < 0.80",
                priority=0.3,
                uncertainty=0.3,
                routing=trace,
                requested_at=first.created_at + timedelta(seconds=1),
            )
        )
        for worker in ("w-ada", "w-bob"):
            facts.add(
                CrowdAnswer(
                    event_id=first.event_id,
                    task_id=f"task-{first.event_id}",
                    pool="simulated",
                    worker_id=worker,
                    label="hardware",
                    time_spent_s=4.0,
                    answered_at=first.created_at + timedelta(seconds=20),
                )
            )
        self.explorer.store.apply(facts, {})
        self.orders: list[RevisionOrder] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(folder), self.loop).result(WAIT_S)

    async def submit(self, orders: Sequence[RevisionOrder]) -> None:
        self.orders.extend(orders)
        facts = Facts()
        for order in orders:
            facts.add(order.label)
        await asyncio.to_thread(self.explorer.store.apply, facts, {})

    async def _start(self, folder: Path) -> None:
        app = web.Application()
        ExplorerApi(self.explorer).add_routes(app)
        add_action_routes(
            app,
            self.explorer,
            token=SecretStr(TOKEN),
            submit=self.submit,
            action_log=MemoryActionLog(),
            export_dir=folder / "exports",
            labels_topic="labelloop.labels",
            bulk_cap=100,
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(WAIT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT_S)
        self.loop.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile", window=(1400, 1000)) as driver:
        yield driver


def test_search_inspect_correct_bulk_undo_and_export(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    by_id = browser.find_element

    def text_of(element_id: str) -> str:
        return str(by_id(By.ID, element_id).text)

    def rows() -> list[Any]:
        return list(browser.find_elements(By.CSS_SELECTOR, "#results tbody tr"))

    browser.get(f"http://127.0.0.1:{served.port}/explorer/")
    wait.until(lambda _: text_of("total") == "30 events")
    assert len(rows()) == 30
    assert "source" in text_of("facets")

    # Text search and a filter; the facet counts follow the filter.
    by_id(By.ID, "q").send_keys("refund")
    by_id(By.ID, "search-button").click()
    wait.until(lambda _: text_of("total") == "11 events")  # ten refund tickets and the hostile one
    by_id(By.ID, "f-trusted").send_keys("billing")
    by_id(By.ID, "search-button").click()
    wait.until(lambda _: text_of("total") == "7 events")
    assert "billing (7)" in text_of("facets")
    # Sorting by confidence: the header says so.
    by_id(By.CSS_SELECTOR, "th[data-sort=confidence]").click()
    wait.until(
        lambda _: (
            "sorted-desc" in (by_id(By.CSS_SELECTOR, "th[data-sort=confidence]").get_attribute("class") or "")
        )
    )
    save_screenshot(browser, "explorer-search.png")

    # Hostile text is shown as text, never run.
    by_id(By.ID, "clear").click()
    wait.until(lambda _: text_of("total") == "30 events")
    assert browser.execute_script("return window.__pwned === undefined")
    assert any("<img" in row.text for row in rows())

    # The record page: input, prediction, every revision.
    by_id(By.ID, "q").send_keys("printer")
    by_id(By.ID, "search-button").click()
    wait.until(lambda _: text_of("total") == "10 events")
    target = next(row for row in rows() if row.get_attribute("data-event-id") == "ev-001")
    target.click()
    wait.until(lambda _: by_id(By.ID, "record").is_displayed())
    assert "printer on floor 1" in text_of("r-input")
    assert text_of("r-event") == "ev-001"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#r-revisions tbody tr")) == 1
    assert "w-ada" in text_of("r-answers")
    assert "w-bob" in text_of("r-answers")
    assert "policy_version" in text_of("r-routing")
    assert "0.7000" in text_of("r-scores")
    save_screenshot(browser, "explorer-record.png")

    # A correction needs the token; with it, the new revision shows with who and why.
    by_id(By.ID, "correct-label").send_keys("outage")
    by_id(By.ID, "correct-reason").send_keys("floor 1 power cut")
    by_id(By.ID, "correct-submit").click()
    wait.until(lambda _: "operator token is required" in text_of("message"))
    assert served.orders == []
    by_id(By.ID, "operator").send_keys("ana")
    by_id(By.ID, "token").send_keys(TOKEN)
    by_id(By.ID, "correct-submit").click()
    wait.until(lambda _: "revision 2 ordered" in text_of("correct-result"))
    wait.until(lambda _: len(browser.find_elements(By.CSS_SELECTOR, "#r-revisions tbody tr")) == 2)
    assert "operator ana" in text_of("r-revisions")
    assert "floor 1 power cut" in text_of("r-revisions")

    # More like this, then a bulk label of those: preview, apply, undo.
    by_id(By.ID, "more-like").click()
    wait.until(lambda _: "most similar events" in text_of("total"))
    assert "like ev-001" in text_of("mode")
    by_id(By.ID, "bulk-label").send_keys("hardware-outage")
    by_id(By.ID, "bulk-preview").click()
    wait.until(lambda _: "would get" in text_of("bulk-summary"))
    assert by_id(By.ID, "bulk-sample").is_displayed()
    assert served.orders[-1].kind == "correction"  # a preview orders nothing
    save_screenshot(browser, "explorer-bulk-preview.png")
    by_id(By.ID, "bulk-apply").click()
    wait.until(lambda _: by_id(By.ID, "bulk-done").is_displayed())
    bulk = [order for order in served.orders if order.kind == "bulk"]
    assert bulk
    assert {order.label.label for order in bulk} == {"hardware-outage"}
    by_id(By.ID, "bulk-undo").click()
    wait.until(lambda _: "undo:" in text_of("bulk-summary"))
    assert len([order for order in served.orders if order.kind == "undo"]) == len(bulk)

    # "More like this" from a free text.
    by_id(By.ID, "clear").click()
    wait.until(lambda _: text_of("total") == "30 events")
    by_id(By.ID, "q").send_keys("card used twice")
    by_id(By.ID, "more-like-text").click()
    wait.until(lambda _: "most similar events" in text_of("total"))
    assert "card used twice" in text_of("mode")
    assert "Card used twice" in rows()[0].text

    # Export the current filter.
    by_id(By.ID, "clear").click()
    wait.until(lambda _: text_of("total") == "30 events")
    by_id(By.ID, "export").click()
    wait.until(lambda _: "snap-" in text_of("export-result"))
    assert "30 labels" in text_of("export-result")
