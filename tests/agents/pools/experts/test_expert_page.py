"""The expert page in a real headless Chromium: tasks by priority, a click and keys answer, text stays text.

Needs Debian's chromium and chromium-driver (``make test`` installs them). Without them the
test is skipped, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr

from agents.pools.experts import ExpertPool, ExpertPoolSettings
from schemas import CrowdAnswer
from tests import browser as browsers
from tests.agents.pools.experts.expert_builders import expert_request
from tests.browser import chromium, chromium_or_skip, save_screenshot

T = TypeVar("T")
WAIT_S = 10.0

URGENT = "Card used in Lisbon and Osaka within the same hour"
ROUTINE = "Please refund order 1234, it never arrived"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> & <b>bold?</b>'


class LoopThread:
    """An asyncio loop of its own in a background thread, where the pool and its server live."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="expert-page-loop", daemon=True)
        self._thread.start()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.submit(coroutine).result(timeout=WAIT_S)

    def call(self, function: Callable[[], T]) -> T:
        async def call() -> T:
            return function()

        return self.run(call())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=WAIT_S)
        self.loop.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


def wait_for_backlog(loop_thread: LoopThread, pool: ExpertPool, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while loop_thread.call(lambda: pool.queue.backlog(time.monotonic())) < count:
        assert time.monotonic() < deadline, "the requests never reached the queue"
        time.sleep(0.01)


def test_missing_chromium_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browsers, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium"):
        chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install them"):
        chromium_or_skip()


def test_an_expert_answers_by_click_and_by_key_in_priority_order(
    browser: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    pool = ExpertPool(ExpertPoolSettings(port=0, poll_s=0.2))
    loop_thread.run(pool.start())
    answers: list[CrowdAnswer] = []

    async def keep(answer: CrowdAnswer) -> None:
        answers.append(answer)

    requests = [
        expert_request("routine", priority=0.5, text=ROUTINE, suggestion="ok"),
        expert_request("hostile", priority=0.1, text=HOSTILE, suggestion=None),
        expert_request("urgent", priority=0.9, text=URGENT, suggestion="fraud", features={"amount": 912.5}),
    ]
    labeling = [loop_thread.submit(pool.label(request, keep)) for request in requests]
    try:
        wait_for_backlog(loop_thread, pool, len(requests))

        wait = WebDriverWait(browser, WAIT_S)
        browser.get(f"http://127.0.0.1:{pool.port}/")
        # The page asks the expert's name once.
        name = wait.until(lambda driver: driver.find_element(By.ID, "name-input"))
        name.send_keys("Ada Lovelace")
        browser.find_element(By.CSS_SELECTOR, "#name-form button[type=submit]").click()

        def task_text_is(text: str) -> Callable[[Any], bool]:
            def shown(driver: Any) -> bool:
                element = driver.find_element(By.ID, "task-text")
                return bool(element.is_displayed() and element.text == text)

            return shown

        # The highest priority first, with the model's prediction and the suggestion as pre-annotation.
        wait.until(task_text_is(URGENT))
        assert browser.find_element(By.ID, "expert-name").text == "Ada-Lovelace"
        assert browser.find_element(By.ID, "suggestion").is_displayed()
        assert browser.find_element(By.ID, "suggestion-label").text == "fraud"
        assert browser.find_element(By.ID, "prediction-label").text == "ok"
        assert browser.find_element(By.ID, "waiting").text == "2"
        assert "912.5" in browser.find_element(By.ID, "features").text
        buttons = browser.find_elements(By.CSS_SELECTOR, "#labels button")
        assert [button.get_attribute("data-label") for button in buttons] == ["fraud", "ok", "spam"]
        assert [button.text for button in buttons] == ["1fraud", "2ok", "3spam"]
        suggested = browser.find_elements(By.CSS_SELECTOR, "#labels button.suggested")
        assert [button.get_attribute("data-label") for button in suggested] == ["fraud"]
        save_screenshot(browser, "expert-page-unit.png")

        # One answer by a click (overruling the suggestion) ...
        browser.find_element(By.CSS_SELECTOR, '#labels button[data-label="spam"]').click()
        labeling[2].result(timeout=WAIT_S)
        # ... one by Enter, which accepts the suggestion ...
        wait.until(task_text_is(ROUTINE))
        ActionChains(browser).send_keys(Keys.ENTER).perform()
        labeling[0].result(timeout=WAIT_S)

        # ... and text from events is shown as text, never run as markup.
        wait.until(task_text_is(HOSTILE))
        assert browser.find_elements(By.CSS_SELECTOR, "#task-text *") == []
        assert browser.execute_script("return window.__pwned === undefined")
        assert not browser.find_element(By.ID, "suggestion").is_displayed()
        ActionChains(browser).send_keys("1").perform()
        labeling[1].result(timeout=WAIT_S)

        wait.until(lambda driver: driver.find_element(By.ID, "empty").is_displayed())
        assert browser.find_element(By.ID, "answered").text == "3"
        # The name is remembered across visits.
        browser.refresh()
        wait.until(lambda driver: driver.find_element(By.ID, "empty").is_displayed())
        assert not browser.find_element(By.ID, "name-form").is_displayed()
    finally:
        for future in labeling:
            future.cancel()
        loop_thread.run(pool.stop())

    assert [(a.event_id, a.label) for a in answers] == [
        ("urgent", "spam"),
        ("routine", "ok"),
        ("hostile", "fraud"),
    ]
    assert {(a.pool, a.tier, a.worker_id, a.overlap) for a in answers} == {
        ("experts", "expert", "Ada-Lovelace", 1)
    }
    assert all(a.time_spent_s > 0 for a in answers)


def test_with_a_token_the_page_works_from_the_operators_link(browser: Any, loop_thread: LoopThread) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pool = ExpertPool(ExpertPoolSettings(port=0, poll_s=0.2, token=SecretStr("link-secret")))
    loop_thread.run(pool.start())
    answers: list[CrowdAnswer] = []

    async def keep(answer: CrowdAnswer) -> None:
        answers.append(answer)

    labeling = loop_thread.submit(pool.label(expert_request("tx-1", text=ROUTINE), keep))
    try:
        wait_for_backlog(loop_thread, pool, 1)
        wait = WebDriverWait(browser, WAIT_S)
        base = f"http://127.0.0.1:{pool.port}/"
        browser.get(base)
        wait.until(lambda driver: driver.find_element(By.ID, "name-input")).send_keys("grace")
        browser.find_element(By.CSS_SELECTOR, "#name-form button[type=submit]").click()
        message = wait.until(lambda driver: driver.find_element(By.ID, "message"))
        wait.until(lambda driver: "needs an access token" in message.text)
        assert loop_thread.call(lambda: pool.queue.in_progress(time.monotonic())) == 0

        browser.get(base + "?token=link-secret")
        wait.until(lambda driver: driver.find_element(By.ID, "task-text").text == ROUTINE)
        assert browser.current_url == base  # the token left the address bar for an HttpOnly cookie
        assert browser.execute_script("return document.cookie") == ""
        browser.find_element(By.CSS_SELECTOR, '#labels button[data-label="ok"]').click()
        labeling.result(timeout=WAIT_S)
    finally:
        labeling.cancel()
        loop_thread.run(pool.stop())

    assert [(a.event_id, a.worker_id, a.label) for a in answers] == [("tx-1", "grace", "ok")]
