"""Real headless Chromium for the page tests (Debian's chromium + chromium-driver, driven by Selenium).

Without them a browser test is skipped, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Screenshots of the page tests (git-ignored), for a person to look at after a run.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def chromium_or_skip(chromium: Path | None = None) -> None:
    """Skip (or under CI, fail) when the browser or its driver is missing."""
    missing = [str(path) for path in (chromium or CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if not missing:
        return
    reason = f"the browser test needs Debian's chromium and chromium-driver; missing: {', '.join(missing)}"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must install them: make test does)")
    pytest.skip(reason)


@contextmanager
def chromium(profile: Path, window: tuple[int, int] = (1000, 760)) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile; quit on exit."""
    chromium_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--window-size={window[0]},{window[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver: Any, name: str) -> Path:
    """Save a PNG of the page under test-artifacts/ and return its path (checked to be a real image)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path))
    png = path.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 5_000
    return path
