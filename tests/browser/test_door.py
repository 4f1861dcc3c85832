"""Door staff check tickets in from the door page in a real Chromium, and get a loud answer:
valid the first time, already checked in the second, and not a ticket for this event for a
ticket of another event. Without a network, the page checks codes itself with the event's key,
refuses a second scan, and syncs when the network is back, showing what the server refused."""

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

import api
from test_storefront import fill, heading_is, submit, wait


def answers(browser):
    return int(browser.find_element(By.ID, "answer").get_attribute("data-scans") or 0)


def check_in(browser, code):
    """Scans `code` into the field (as a scanner that types would) and reads the answer."""
    # The page's script answers in place, once it is running.
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "form.door[data-ready]")))
    before = answers(browser)
    fill(browser, "code", code)
    browser.find_element(By.CSS_SELECTOR, "form.door button[type=submit]").click()
    wait(browser).until(lambda b: answers(b) > before)
    # The field is ready for the next code.
    assert browser.switch_to.active_element.get_attribute("id") == "code"
    return browser.find_element(By.CSS_SELECTOR, "#answer[role=alert] .word").text


def network(browser, online):
    """Cuts the browser off the network, or gives it back (Chromium's own emulation: requests
    fail and `navigator.onLine` follows)."""
    browser.execute_cdp_cmd("Network.enable", {})
    conditions = {"offline": not online, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)


def text_of(browser, css):
    return browser.find_element(By.CSS_SELECTOR, css).text


def open_the_door_page_as(browser, base_url, email):
    """Opens /door, which asks to log in first, and logs in as `email` (a demo login)."""
    browser.get(base_url + "/door")
    heading_is(browser, "Log in")
    fill(browser, "email", email)
    fill(browser, "password", api.DEMO_PASSWORD)
    submit(browser, "form.account")
    heading_is(browser, "Door")


def test_door_staff_check_a_ticket_in_once(browser, base_url, screenshot):
    buyer = api.login(base_url, "buyer@eventhive.dev")
    jazz = api.buy_ticket_code(base_url, buyer, "canal")
    aurora = api.buy_ticket_code(base_url, buyer, "aurora")

    open_the_door_page_as(browser, base_url, "door@eventhive.dev")
    browser.find_element(By.LINK_TEXT, "Jazz by the Canal").click()
    heading_is(browser, "Door: Jazz by the Canal")

    assert check_in(browser, jazz) == "Valid"
    screenshot("door-valid")
    assert check_in(browser, jazz) == "Already checked in"
    screenshot("door-already")
    assert check_in(browser, aurora) == "Not a ticket for this event"


def test_without_a_network_the_door_checks_codes_itself_and_syncs_later(browser, base_url, screenshot):
    buyer = api.login(base_url, "buyer@eventhive.dev")
    first = api.buy_ticket_code(base_url, buyer, "canal")
    elsewhere = api.buy_ticket_code(base_url, buyer, "canal")
    jazz = api.call(base_url, "GET", "/v1/events?q=canal")["items"][0]["id"]
    # Checked in at another door while this one is offline: this one cannot know.
    api.call(base_url, "POST", f"/v1/events/{jazz}/checkins", {"code": elsewhere}, api.login(base_url, "door@eventhive.dev"))

    open_the_door_page_as(browser, base_url, "door@eventhive.dev")
    browser.find_element(By.LINK_TEXT, "Jazz by the Canal").click()
    heading_is(browser, "Door: Jazz by the Canal")
    # The camera needs a browser that reads QR codes; headless Chromium on Linux does not.
    assert "cannot scan with the camera" in text_of(browser, "#camera-note")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "form.door[data-offline=ready]")))

    network(browser, online=False)
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "network"), "Offline"))
    assert check_in(browser, first) == "Valid"
    assert "offline" in text_of(browser, "#answer .offline-note")
    assert check_in(browser, first) == "Already checked in"
    # A code with a signature the event's key did not make.
    forged = first[:-10] + ("B" if first[-10] == "A" else "A") + first[-9:]
    assert check_in(browser, forged) == "Not a ticket for this event"
    assert check_in(browser, elsewhere) == "Valid"
    assert text_of(browser, "#pending") == "2 check-ins made offline waiting to sync."
    screenshot("door-offline")
    assert api.ticket_status(base_url, buyer, first) == "valid"

    network(browser, online=True)
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "pending"), "No check-in is waiting to sync."))
    refused = text_of(browser, "#refused")
    assert elsewhere in refused and "already checked in" in refused, refused
    assert first not in refused
    assert api.ticket_status(base_url, buyer, first) == "checked_in"
    # Back online, the server answers again, and knows the synced ticket.
    assert check_in(browser, first) == "Already checked in"
