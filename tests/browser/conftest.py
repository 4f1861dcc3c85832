"""Fixtures of the browser journeys: the running storefront's URL and a headless Chromium.

scripts/browser-tests.sh starts `eventhive dev` and sets EVENTHIVE_WEB_URL. The browser and its
driver are Debian's (/usr/bin/chromium, /usr/bin/chromedriver): nothing is downloaded.
"""

import os
import pathlib

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


@pytest.fixture(scope="session")
def base_url():
    url = os.environ.get("EVENTHIVE_WEB_URL")
    if not url:
        pytest.fail("EVENTHIVE_WEB_URL is not set: run scripts/browser-tests.sh")
    return url.rstrip("/")


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("EVENTHIVE_CHROMIUM", "/usr/bin/chromium")
    for argument in (
        "--headless=new",
        # CI runs as root, where Chromium's sandbox cannot start.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    service = Service(executable_path=os.environ.get("EVENTHIVE_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    # Waits are explicit (WebDriverWait) everywhere; no implicit wait hides a slow page.
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser):
    """Saves a screenshot of the page as NAME.png when EVENTHIVE_SCREENSHOTS names a folder."""
    folder = os.environ.get("EVENTHIVE_SCREENSHOTS")

    def take(name):
        if folder:
            path = pathlib.Path(folder)
            path.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(path / f"{name}.png"))

    return take
