"""The organizer's journey through the console in a real Chromium: log in, create an event,
give it a ticket type, publish it, watch a sale (made through the API) appear on its live
dashboard without a reload, and find the buyer's order in the orders CSV."""

import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

import api
from test_dashboard import sold
from test_storefront import fill, heading_is, labelled, submit, wait


def set_time(browser, field_id, value):
    """A datetime-local field takes its value as the browser's own picker would set it."""
    field = browser.find_element(By.ID, field_id)
    browser.execute_script("arguments[0].value = arguments[1]", field, value)


def heading(browser):
    return browser.find_element(By.TAG_NAME, "h1").text


def test_an_organizer_creates_publishes_and_watches_an_event_sell(browser, base_url, screenshot):
    browser.get(base_url + "/manage")
    heading_is(browser, "Log in")
    fill(browser, "email", "organizer@eventhive.dev")
    fill(browser, "password", api.DEMO_PASSWORD)
    submit(browser, "form.account")
    heading_is(browser, "Organizer console")
    screenshot("console")

    browser.find_element(By.LINK_TEXT, "New event").click()
    heading_is(browser, "New event")
    title = f"Console Journey {uuid.uuid4().hex[:8]}"
    fill(browser, "title", title)
    fill(browser, "description", "Made in the browser journey.")
    fill(browser, "venue_name", "Paradiso")
    fill(browser, "venue_city", "Amsterdam")
    fill(browser, "venue_country", "NL")
    set_time(browser, "starts_at", "2027-09-01T19:30")
    # The end comes first: the page says so next to the field, in words.
    set_time(browser, "ends_at", "2027-09-01T18:00")
    submit(browser, "form.event")
    error = wait(browser).until(EC.visibility_of_element_located((By.ID, "ends_at-error")))
    assert "must be after the start" in error.text
    assert "ends_at-error" in labelled(browser, "Ends").get_attribute("aria-describedby")
    set_time(browser, "ends_at", "2027-09-01T23:00")
    submit(browser, "form.event")
    heading_is(browser, f"Manage: {title}")

    fill(browser, "ticket_name", "Standing")
    fill(browser, "price", "25.00")
    fill(browser, "capacity", "50")
    submit(browser, "form.ticket-type")
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "main"), "25.00 EUR"))
    submit(browser, "form.publish")
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "p.status"), "On sale"))
    screenshot("console-event")

    browser.find_element(By.LINK_TEXT, "Live figures").click()
    dashboard = browser.current_url
    # Analytics hears of a new event moments after it is published (a message on the bus).
    wait(browser).until(lambda b: heading(b) == f"Live: {title}" or b.get(dashboard))
    assert sold(browser) == 0
    browser.execute_script("window.stillTheSamePage = true")
    order_id, _ = api.buy_ticket(base_url, api.login(base_url, "buyer@eventhive.dev"), title)
    wait(browser).until(lambda b: sold(b) == 1)
    assert browser.execute_script("return window.stillTheSamePage") is True

    # The export, as the console's download link fetches it, with this browser's session.
    browser.get(dashboard + "/edit")
    heading_is(browser, f"Manage: {title}")
    link = browser.find_element(By.LINK_TEXT, "Orders (CSV)").get_attribute("href")
    csv = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done, e => done('failed: ' + e));",
        link,
    )
    rows = [line.split(",") for line in csv.strip().splitlines()]
    assert rows[0][:4] == ["order_id", "created_at", "status", "buyer_email"], csv
    assert [order_id, "paid", "buyer@eventhive.dev"] in [[r[0], r[2], r[3]] for r in rows[1:]], csv
