"""Door staff check a ticket in from the door page in a real Chromium, and get a loud answer:
valid the first time, already checked in the second, and not a ticket for this event for a
ticket of another event."""

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

import api
from test_storefront import fill, heading_is, submit, wait


def check_in(browser, code):
    fill(browser, "code", code)
    submit(browser, "form.door")
    answer = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[role=alert] .word")))
    # The field is ready for the next code.
    assert browser.switch_to.active_element.get_attribute("id") == "code"
    return answer.text


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
