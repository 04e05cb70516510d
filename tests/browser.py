"""Headless Chromium from Debian's packages (no browser download), driven by selenium."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


SKIP_REASON = "Debian's chromium and chromium-driver are not installed"


def start(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium()
    assert found is not None
    browser, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def show(driver: Any, uri: str, width: int, scheme: str = "light") -> None:
    """Load ``uri`` in a viewport ``width`` px wide (a phone's below 500 px) with the reader's
    colour scheme ``light`` or ``dark`` (prefers-color-scheme)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500})
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
    driver.get(uri)


def save_whole_page(driver: Any, width: int, target: Path) -> None:
    """A screenshot of the whole page, not just the first screenful."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
    target.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(target))
