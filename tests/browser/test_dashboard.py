"""An organizer watches a sale appear on the event's live dashboard in a real Chromium: the
figures change by server push (the API's live stream), without the page reloading."""

from selenium.webdriver.common.by import By

import api
from test_door import open_the_door_page_as
from test_storefront import heading_is, wait


def sold(browser):
    # Read in one script: the script swaps the figures in at any moment, which would leave an
    # element found first and read after stale.
    return int(browser.execute_script("return document.querySelector('[data-figure=tickets_sold]').textContent"))


def test_an_organizer_sees_a_sale_appear_live(browser, base_url, screenshot):
    open_the_door_page_as(browser, base_url, "organizer@eventhive.dev")
    browser.find_element(By.XPATH, "//li[a[normalize-space()='Jazz by the Canal']]/a[normalize-space()='live figures']").click()
    heading_is(browser, "Live: Jazz by the Canal")
    before = sold(browser)
    # A mark on this very page: it must still be there when the figures have changed.
    browser.execute_script("window.stillTheSamePage = true")

    api.buy_ticket_code(base_url, api.login(base_url, "buyer@eventhive.dev"), "canal")
    wait(browser).until(lambda b: sold(b) >= before + 1)
    assert browser.execute_script("return window.stillTheSamePage") is True
    screenshot("dashboard")
