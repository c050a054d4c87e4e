"""The dashboard and the expert page in real headless Chromium while a loop runs on the real broker.

The charts must draw with live data, a drift alert must be marked on the time axis, and a pool
control clicked without the token must be refused, with it must reach the commands topic and the
pool. Screenshots go to test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

from agents.simulation.stream import SimulatedEvent, StreamSettings, simulate
from schemas import PoolCommand, utc_now
from schemas.drift import DriftSignal
from streams.codec import decode
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.browser import chromium, save_screenshot
from tests.integration.conftest import LoopUnderTest, TopicWatcher, publish_with_truth

pytestmark = pytest.mark.kafka

TOKEN = "dashboard-test-token"
WAIT_S = 60.0


def publish_steadily(
    loop: LoopUnderTest, events: list[SimulatedEvent], per_s: float, stop: threading.Event
) -> None:
    """Publish ``events`` at about ``per_s`` a second (a live stream, not one burst)."""
    names = topic_names(loop.settings)
    chunk = max(1, int(per_s / 4))
    with PredictionPublisher(loop.settings) as publisher:
        for start in range(0, len(events), chunk):
            if stop.is_set():
                return
            # Predicted as published: time to label is measured from here, as for a real producer.
            now = utc_now()
            batch = [
                dataclasses.replace(simulated, event=simulated.event.model_copy(update={"created_at": now}))
                for simulated in events[start : start + chunk]
            ]
            publish_with_truth(publisher, names.truth, batch)
            time.sleep(0.25)


def chart_has_live_data(driver: Any, chart: str) -> bool:
    """True once plotly drew a trace of ``chart`` with a positive value."""
    return bool(
        driver.execute_script(
            "const el = document.getElementById(arguments[0]);"
            "return !!(el && el.data && el.data.some(t => (t.y || []).some(v => v !== null && v > 0))"
            " && el.querySelector('.scatterlayer .trace, .barlayer .trace'));",
            chart,
        )
    )


def test_the_dashboard_draws_the_live_loop_and_its_controls_need_the_token(
    loop_under_test: Callable[..., LoopUnderTest], tmp_path: Path
) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    loop = loop_under_test(
        LABELLOOP_OPERATOR__TOKEN=TOKEN,
        LABELLOOP_ROUTER__ACCEPT_THRESHOLD="0.8",
        # A large control group, so the precision estimate is there within seconds.
        LABELLOOP_ROUTER__CONTROL_SHARE="0.2",
        LABELLOOP_POOLS__SIMULATED__MEAN_SERVICE_S="0.3",
        LABELLOOP_POOLS__SIMULATED__WORKERS="12",
        LABELLOOP_DASHBOARD__SAMPLE_EVERY_S="0.5",
        LABELLOOP_DASHBOARD__RATE_WINDOW_S="3",
        # Sensitive detectors, so that the short run's drift is flagged and marked on the charts. The
        # drift moves the model's error only (SEA's features stay put): the error detectors have
        # their own delta, and at its default (0.002) this test missed the drift in 3 runs of 20.
        LABELLOOP_MONITOR__ADWIN_DELTA="0.2",
        LABELLOOP_MONITOR__ERROR_DELTA="0.2",
        LABELLOOP_MONITOR__MIN_OBSERVATIONS="30",
    )
    names = topic_names(loop.settings)
    stream = list(
        # A large drift early (threshold 8 -> 9.5 at a fifth of the run: the model's error jumps ~13
        # points), so the detector fires within the run even on a loaded machine.
        simulate(
            StreamSettings(
                events=2_400, train_size=400, drift_at=0.2, variant_after=3, run_id=loop.settings.app_id
            )
        )
    )
    watcher = TopicWatcher(loop.settings, names.commands)
    stop = threading.Event()
    publisher = threading.Thread(target=publish_steadily, args=(loop, stream, 60.0, stop), daemon=True)
    try:
        loop.start_worker()
        web, expert = loop.web_port(), loop.expert_port()
        base = f"http://127.0.0.1:{web}"
        publisher.start()
        with chromium(tmp_path / "profile", window=(1440, 2150)) as driver:
            wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.25)
            driver.get(base + "/")  # redirects to /dashboard
            assert driver.current_url == base + "/dashboard"
            charts = (
                "chart-rate",
                "chart-backlog",
                "chart-workers",
                "chart-share",
                "chart-estimates",
                "chart-recall",
            )
            for chart in charts:
                wait.until(
                    lambda d, chart=chart: chart_has_live_data(d, chart), f"{chart} never drew live data"
                )
            assert driver.find_element(By.ID, "freshness").text.startswith("live")
            # What the page shows is what the worker's JSON says.
            series = httpx.get(base + "/dashboard/series.json", timeout=10).json()
            assert set(series["pools"]) == {"simulated", "experts"}
            assert int(driver.find_element(By.ID, "tile-predictions").text.replace(",", "")) > 0
            link = driver.find_element(By.ID, "expert-link")
            assert link.is_displayed()
            assert link.get_attribute("href") == f"http://127.0.0.1:{expert}/"
            save_screenshot(driver, "dashboard-live.png")

            # A pool control without the token: refused by the operator API, nothing sent.
            row = driver.find_element(By.CSS_SELECTOR, 'tr[data-pool="simulated"]')
            workers = row.find_element(By.CSS_SELECTOR, "input.scale-workers")
            workers.clear()
            workers.send_keys("7")
            row.find_element(By.CSS_SELECTOR, 'button[data-action="scale"]').click()
            result = driver.find_element(By.ID, "command-result")
            wait.until(lambda d: "refused" in result.text)
            assert "HTTP 401" in result.text
            assert "token" in result.text
            time.sleep(1.0)
            watcher.poll()
            assert not [
                r for r in watcher.records[names.commands] if b"operator:dashboard" in (r.value or b"")
            ]

            # With the token: 202, the command is on the commands topic and the pool follows it.
            driver.find_element(By.ID, "token-input").send_keys(TOKEN)
            driver.find_element(By.ID, "token-save").click()
            wait.until(lambda d: d.find_element(By.ID, "token-state").text == "token set for this tab")
            row.find_element(By.CSS_SELECTOR, 'button[data-action="scale"]').click()
            wait.until(lambda d: "sent:" in result.text)
            assert "HTTP 202" in result.text
            watcher.wait_for(
                lambda: any(
                    b"operator:dashboard" in (r.value or b"") for r in watcher.records[names.commands]
                ),
                30,
                "the dashboard's scale command",
                loop.worker_logs,
            )
            (command,) = [
                decode(PoolCommand, r.value)
                for r in watcher.records[names.commands]
                if b"operator:dashboard" in (r.value or b"")
            ]
            assert (command.pool, command.action, command.workers) == ("simulated", "scale", 7)
            cells = row.find_elements(By.TAG_NAME, "td")
            wait.until(lambda d: cells[3].text == "7", "the pool never reported 7 workers")
            wait.until(lambda d: cells[7].text == "operator:dashboard scale 7")
            # The token stays in the tab: never in the address bar or a cookie.
            assert TOKEN not in driver.current_url
            assert driver.execute_script("return document.cookie") == ""

            # The drift is marked on the time axis of every chart (the crowd may lag behind on a
            # loaded machine: give its labels time to reach the detector).
            try:
                WebDriverWait(driver, 2 * WAIT_S, poll_frequency=0.5).until(
                    lambda d: (
                        d.execute_script(
                            "return (document.getElementById('chart-rate').layout.shapes || []).length"
                        )
                        > 0
                    ),
                    "no drift alert was marked",
                )
            except TimeoutException:
                # Whether the loop stalled or the detectors never fired: the worker's partitions.
                pytest.fail(f"no drift alert was marked\n{loop.stalled_logs()}")
            assert driver.find_elements(By.CSS_SELECTOR, "#chart-share .shapelayer path")
            # Whichever of the monitor's signals fired first, the list names it.
            listed = driver.find_element(By.ID, "alerts").text
            assert any(signal in listed for signal in get_args(DriftSignal)), listed
            time.sleep(2.0)  # one more refresh, so the screenshot shows the scaled pool's curve
            save_screenshot(driver, "dashboard-after-scale-and-drift.png")

            # The expert page, from the dashboard's link.
            driver.get(link.get_attribute("href"))
            wait.until(lambda d: d.find_element(By.ID, "name-input")).send_keys("dashboard-visitor")
            driver.find_element(By.CSS_SELECTOR, "#name-form button[type=submit]").click()
            wait.until(
                lambda d: (
                    d.find_element(By.ID, "task-text").is_displayed()
                    or d.find_element(By.ID, "empty").is_displayed()
                )
            )
            assert driver.find_element(By.ID, "expert-name").text == "dashboard-visitor"
            save_screenshot(driver, "expert-page-live.png")
    finally:
        stop.set()
        publisher.join(timeout=30)
        watcher.close()
